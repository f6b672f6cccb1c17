//! Tests against a real redb file in a temporary directory.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};
use std::time::{Duration, UNIX_EPOCH};

use tempfile::TempDir;

use super::*;

fn id(s: &str) -> SessionId {
    s.parse().expect("valid session id")
}

fn new(session: &str, owner: &str) -> NewSession {
    NewSession {
        id: id(session),
        owner: owner.to_owned(),
        template: "coding-copilot".to_owned(),
        name: SessionName::parse("Coding Copilot").expect("valid name"),
        image: "localhost/octo-session:latest".to_owned(),
        limits: Limits::default(),
        desired: DesiredState::Running,
        max_per_owner: None,
        admit: None,
    }
}

struct Fixture {
    dir: TempDir,
    store: Store,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("octod.redb")).expect("open store");
        Self { dir, store }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("octod.redb")
    }

    /// Closes the store and opens the same file again.
    fn reopen(&mut self) {
        let placeholder = Store::open(self.dir.path().join("other.redb")).expect("open");
        drop(std::mem::replace(&mut self.store, placeholder));
        self.store = Store::open(self.path()).expect("reopen store");
    }

    fn create(&self, session: &str, owner: &str) -> (SessionRecord, Secret) {
        self.store
            .create_session(new(session, owner))
            .expect("create session")
    }

    #[track_caller]
    fn assert_consistent(&self) {
        assert_eq!(self.store.check().expect("check"), []);
    }

    /// Writes raw bytes into a table, bypassing the store's encoding.
    fn put_raw(&self, table: TableDefinition<&str, &[u8]>, key: &str, value: &[u8]) {
        let txn = self.store.inner.db.begin_write().expect("begin");
        txn.open_table(table)
            .expect("table")
            .insert(key, value)
            .expect("insert");
        txn.commit().expect("commit");
    }
}

#[test]
fn store_is_send_sync_and_clone() {
    fn assert_bounds<T: Send + Sync + Clone + 'static>() {}
    assert_bounds::<Store>();
}

#[test]
fn create_get_list_delete() {
    let fx = Fixture::new();
    let (a, token) = fx.create("alpha", "ann");
    assert_eq!(a.spec.id, id("alpha"));
    assert_eq!(a.spec.owner, "ann");
    assert_eq!(a.spec.desired, DesiredState::Running);
    assert_eq!(a.state, SessionState::Creating);
    assert_eq!(a.created_at, a.updated_at);
    assert_eq!(a.created_at, a.state_changed_at);
    assert_eq!(token.expose().len(), 64);
    assert_eq!(fx.store.token(&id("alpha")).expect("token"), token);

    let (b, token_b) = fx.create("beta", "bob");
    let (c, _) = fx.create("gamma", "ann");
    assert_ne!(token, token_b);
    assert_eq!(fx.store.get(&id("beta")).expect("get"), Some(b.clone()));
    assert_eq!(fx.store.get(&id("nope")).expect("get"), None);
    assert_eq!(
        fx.store.list().expect("list"),
        [a.clone(), b.clone(), c.clone()]
    );
    assert_eq!(fx.store.list_by_owner("ann").expect("list"), [a.clone(), c]);
    assert_eq!(fx.store.list_by_owner("nobody").expect("list"), []);
    fx.assert_consistent();

    assert_eq!(fx.store.delete_session(&id("alpha")).expect("delete"), a);
    assert_eq!(fx.store.get(&id("alpha")).expect("get"), None);
    assert!(matches!(
        fx.store.token(&id("alpha")),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(fx.store.list().expect("list").len(), 2);
    fx.assert_consistent();

    let err = fx
        .store
        .delete_session(&id("alpha"))
        .expect_err("second delete");
    assert!(
        matches!(err, StoreError::NotFound(ref i) if *i == id("alpha")),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "session alpha does not exist");
}

#[test]
fn creating_an_existing_session_fails_and_changes_nothing() {
    let fx = Fixture::new();
    let (a, token) = fx.create("alpha", "ann");
    let err = fx
        .store
        .create_session(new("alpha", "eve"))
        .expect_err("duplicate");
    assert!(
        matches!(err, StoreError::AlreadyExists(ref i) if *i == id("alpha")),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "session alpha already exists");
    assert_eq!(fx.store.list().expect("list"), [a]);
    assert_eq!(fx.store.token(&id("alpha")).expect("token"), token);
    fx.assert_consistent();
}

#[test]
fn data_survives_reopening_the_file() {
    let mut fx = Fixture::new();
    let (a, token) = fx.create("alpha", "ann");
    let b = fx
        .store
        .set_state(
            &fx.create("beta", "bob").0.spec.id,
            SessionState::Failed("boom".into()),
        )
        .expect("set state");
    let when = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    fx.store.record_activity(&id("alpha"), when);
    fx.reopen();
    assert_eq!(fx.store.list().expect("list"), [a, b]);
    assert_eq!(fx.store.token(&id("alpha")).expect("token"), token);
    // Flushed by the drop of the last clone.
    assert_eq!(
        fx.store.last_activity(&id("alpha")).expect("activity"),
        Some(when)
    );
    fx.create("gamma", "ann");
    fx.assert_consistent();
}

#[test]
fn the_file_is_private_and_locked() {
    let fx = Fixture::new();
    let mode = std::fs::metadata(fx.path())
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let err = Store::open(fx.path()).expect_err("opened twice");
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("opening state database {}: ", fx.path().display())),
        "{err}"
    );
}

#[test]
fn a_loose_file_mode_is_tightened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("octod.redb");
    std::fs::write(&path, b"").expect("create");
    std::fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
    let _store = Store::open(&path).expect("open");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn concurrent_creates_all_get_a_record_and_a_token() {
    const N: u16 = 20;
    let fx = Fixture::new();
    let barrier = Arc::new(Barrier::new(N.into()));
    let threads: Vec<_> = (0..N)
        .map(|i| {
            let store = fx.store.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                store.create_session(new(&format!("s{i}"), "ann"))
            })
        })
        .collect();
    let mut tokens = BTreeSet::new();
    for t in threads {
        let (_, token) = t.join().expect("thread").expect("create");
        tokens.insert(token.expose().to_owned());
    }
    assert_eq!(tokens.len(), usize::from(N));
    assert_eq!(fx.store.list().expect("list").len(), usize::from(N));
    fx.assert_consistent();
}

/// The per-user limit was checked before the create, outside its transaction: 10 concurrent
/// creates by one user against a limit of 5 were all accepted.
#[test]
fn concurrent_creates_by_one_owner_stop_at_the_limit() {
    const N: u16 = 10;
    let fx = Fixture::new();
    fx.create("other", "bob");
    let barrier = Arc::new(Barrier::new(N.into()));
    let threads: Vec<_> = (0..N)
        .map(|i| {
            let store = fx.store.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                store.create_session(NewSession {
                    max_per_owner: Some(2),
                    admit: None,
                    ..new(&format!("s{i}"), "ann")
                })
            })
        })
        .collect();
    let mut created = 0;
    for t in threads {
        match t.join().expect("thread") {
            Ok(_) => created += 1,
            Err(StoreError::SessionLimit {
                owner,
                limit: 2,
                count: 2,
            }) if owner == "ann" => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(created, 2);
    assert_eq!(fx.store.list_by_owner("ann").expect("list").len(), 2);
    fx.assert_consistent();
    // Other owners have their own count; no limit, no count.
    let limited = |session: &str, owner: &str, max| NewSession {
        max_per_owner: max,
        admit: None,
        ..new(session, owner)
    };
    assert!(
        fx.store
            .create_session(limited("b2", "bob", Some(2)))
            .is_ok()
    );
    assert!(matches!(
        fx.store.create_session(limited("b3", "bob", Some(2))),
        Err(StoreError::SessionLimit { count: 2, .. })
    ));
    assert!(fx.store.create_session(limited("a3", "ann", None)).is_ok());
}

#[test]
fn transitions() {
    let fx = Fixture::new();
    let (a, _) = fx.create("alpha", "ann");
    let alpha = &a.spec.id;
    std::thread::sleep(Duration::from_millis(2));

    let b = fx
        .store
        .set_state(alpha, SessionState::Running)
        .expect("state");
    assert_eq!(b.state, SessionState::Running);
    assert!(b.updated_at > a.updated_at);
    assert_eq!(b.state_changed_at, b.updated_at);
    assert_eq!(b.created_at, a.created_at);
    assert_eq!(fx.store.get(alpha).expect("get"), Some(b.clone()));
    std::thread::sleep(Duration::from_millis(2));

    let c = fx
        .store
        .set_desired(alpha, DesiredState::Stopped)
        .expect("desired");
    assert_eq!(c.spec.desired, DesiredState::Stopped);
    assert!(c.updated_at > b.updated_at);
    assert_eq!(
        c.state_changed_at, b.state_changed_at,
        "desired is not a state change"
    );

    // No change, no write.
    let same = fx
        .store
        .set_desired(alpha, DesiredState::Stopped)
        .expect("desired");
    assert_eq!(same, c);

    assert!(matches!(
        fx.store.set_state(&id("nope"), SessionState::Stopped),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn update_is_all_or_nothing() {
    #[derive(Debug, thiserror::Error)]
    enum EngineError {
        #[error("not allowed while {0:?}")]
        Busy(SessionState),
        #[error(transparent)]
        Store(#[from] StoreError),
    }

    let fx = Fixture::new();
    let (a, _) = fx.create("alpha", "ann");
    let alpha = &a.spec.id;

    let out = fx.store.update(alpha, |r| {
        r.state = SessionState::Deleting;
        Err::<(), _>(EngineError::Busy(SessionState::Creating))
    });
    assert!(matches!(out, Err(EngineError::Busy(_))), "{out:?}");
    assert_eq!(fx.store.get(alpha).expect("get"), Some(a.clone()));

    let previous = fx
        .store
        .update(alpha, |r| {
            let previous = r.state.clone();
            r.state = SessionState::Starting;
            r.spec.image = "localhost/other:1".to_owned();
            Ok::<_, EngineError>(previous)
        })
        .expect("update");
    assert_eq!(previous, SessionState::Creating);
    let b = fx.store.get(alpha).expect("get").expect("exists");
    assert_eq!(
        (b.state, b.spec.image.as_str()),
        (SessionState::Starting, "localhost/other:1")
    );

    for (field, change) in [
        (
            "id",
            (|r: &mut SessionRecord| r.spec.id = id("other")) as fn(&mut SessionRecord),
        ),
        ("creation time", |r| r.created_at = UNIX_EPOCH),
    ] {
        let err = fx
            .store
            .update(alpha, |r| {
                change(r);
                r.state = SessionState::Stopped;
                Ok::<_, StoreError>(())
            })
            .expect_err(field);
        assert!(
            matches!(err, StoreError::Immutable { field: fld, .. } if fld == field),
            "{err:?}"
        );
    }
    assert_eq!(
        fx.store.get(alpha).expect("get").expect("exists").state,
        SessionState::Starting
    );
    fx.assert_consistent();
}

#[test]
fn unknown_value_versions_are_typed_errors() {
    let fx = Fixture::new();
    let (a, _) = fx.create("alpha", "ann");
    let mut bytes = encode_record(&a).expect("encode");
    bytes[0] = 9;
    fx.put_raw(SESSIONS, "alpha", &bytes);

    let err = fx.store.get(&id("alpha")).expect_err("v9");
    assert!(
        matches!(
            err,
            StoreError::Decode(DecodeError::UnknownVersion {
                table: "sessions",
                version: 9,
                supported: 3,
                ref key,
            }) if key == "alpha"
        ),
        "{err:?}"
    );
    assert!(matches!(fx.store.list(), Err(StoreError::Decode(_))));
    assert!(matches!(
        fx.store.set_state(&id("alpha"), SessionState::Running),
        Err(StoreError::Decode(_))
    ));

    fx.put_raw(TOKENS, "alpha", b"\x02\"abc\"");
    assert!(matches!(
        fx.store.token(&id("alpha")),
        Err(StoreError::Decode(DecodeError::UnknownVersion {
            table: "tokens",
            version: 2,
            ..
        }))
    ));

    fx.put_raw(SESSIONS, "alpha", b"");
    assert!(matches!(
        fx.store.get(&id("alpha")),
        Err(StoreError::Decode(DecodeError::Empty { .. }))
    ));
    fx.put_raw(SESSIONS, "alpha", b"\x01{\"spec\":");
    assert!(matches!(
        fx.store.get(&id("alpha")),
        Err(StoreError::Decode(DecodeError::Json { version: 1, .. }))
    ));
}

#[test]
fn a_newer_schema_is_refused() {
    let mut fx = Fixture::new();
    {
        let txn = fx.store.inner.db.begin_write().expect("begin");
        txn.open_table(META)
            .expect("meta")
            .insert(SCHEMA_KEY, SCHEMA_VERSION + 1)
            .expect("insert");
        txn.commit().expect("commit");
    }
    let placeholder = Store::open(fx.dir.path().join("other.redb"));
    drop(std::mem::replace(&mut fx.store, placeholder.expect("open")));
    let err = Store::open(fx.path()).expect_err("newer schema");
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 4,
                supported: 3,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn record_format_is_pinned() {
    let record = SessionRecord {
        spec: SessionSpec {
            id: id("alpha"),
            owner: "ann".to_owned(),
            template: "coding-copilot".to_owned(),
            image: "localhost/octo-session:latest".to_owned(),
            limits: Limits {
                memory_bytes: Some(1 << 30),
                cpu_centis: None,
                pids: Some(512),
            },
            desired: DesiredState::Idle,
        },
        state: SessionState::Failed("unit failed".to_owned()),
        name: "Thesis \"draft\"".to_owned(),
        description: "chapter 2".to_owned(),
        created_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        updated_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_500),
        state_changed_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_250),
    };
    let bytes = encode_record(&record).expect("encode");
    let expected = concat!(
        "\u{3}",
        r#"{"spec":{"id":"alpha","owner":"ann","template":"coding-copilot","#,
        r#""image":"localhost/octo-session:latest","#,
        r#""limits":{"memory_bytes":1073741824,"cpu_centis":null,"pids":512},"#,
        r#""desired":"idle"},"#,
        r#""state":{"state":"failed","reason":"unit failed"},"#,
        r#""name":"Thesis \"draft\"","description":"chapter 2","#,
        r#""created_at":1700000000000,"updated_at":1700000000500,"state_changed_at":1700000000250}"#,
    );
    assert_eq!(String::from_utf8(bytes.clone()).expect("utf-8"), expected);
    assert_eq!(decode_record("alpha", &bytes).expect("decode"), record);
}

#[test]
fn activity_is_kept_in_memory_until_flushed() {
    let mut fx = Fixture::new();
    fx.create("alpha", "ann");
    fx.create("beta", "ann");
    let (alpha, beta) = (id("alpha"), id("beta"));
    let t = |ms: u64| UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms);

    assert_eq!(fx.store.last_activity(&alpha).expect("activity"), None);
    fx.store.record_activity(&alpha, t(20));
    fx.store.record_activity(&alpha, t(10)); // out of order: the newest time wins
    fx.store.record_activity(&id("ghost"), t(5)); // no such session
    assert_eq!(
        fx.store.last_activity(&alpha).expect("activity"),
        Some(t(20))
    );
    assert_eq!(
        fx.store.activity().expect("activity"),
        BTreeMap::from([(alpha.clone(), t(20))])
    );

    assert_eq!(fx.store.flush_activity().expect("flush"), 1);
    assert_eq!(fx.store.flush_activity().expect("flush"), 0);
    fx.store.record_activity(&alpha, t(15)); // older than what is stored
    fx.store.record_activity(&beta, t(30));
    assert_eq!(fx.store.flush_activity().expect("flush"), 1);
    fx.assert_consistent();

    fx.store.record_activity(&beta, t(40));
    fx.reopen();
    assert_eq!(
        fx.store.activity().expect("activity"),
        BTreeMap::from([(alpha.clone(), t(20)), (beta.clone(), t(40))])
    );

    fx.store.record_activity(&alpha, t(50));
    fx.store.delete_session(&alpha).expect("delete");
    assert_eq!(fx.store.last_activity(&alpha).expect("activity"), None);
    assert_eq!(fx.store.flush_activity().expect("flush"), 0);
    fx.create("alpha", "ann");
    assert_eq!(fx.store.last_activity(&alpha).expect("activity"), None);
    fx.assert_consistent();
}

#[test]
fn check_reports_broken_invariants() {
    let fx = Fixture::new();
    fx.create("alpha", "ann");
    {
        let txn = fx.store.inner.db.begin_write().expect("begin");
        {
            let mut tokens = txn.open_table(TOKENS).expect("tokens");
            tokens.remove("alpha").expect("remove");
            tokens
                .insert("ghost", b"\x01\"x\"".as_slice())
                .expect("insert");
        }
        txn.commit().expect("commit");
    }
    assert_eq!(
        fx.store.check().expect("check"),
        [
            Inconsistency::MissingToken(id("alpha")),
            Inconsistency::OrphanToken("ghost".to_owned()),
        ]
    );
    assert!(matches!(
        fx.store.token(&id("alpha")),
        Err(StoreError::MissingToken { .. })
    ));
    assert_eq!(
        Inconsistency::OrphanToken("ghost".to_owned()).to_string(),
        r#"a token is stored for "ghost", which is not a session"#
    );
}

/// A state file as octod wrote it before issue 13 (schema 1: a `ports` table, version-1
/// records with `spec.ports`), built here with those table and record shapes.
fn write_schema_1(path: &Path) {
    let db = Database::create(path).expect("create");
    let txn = db.begin_write().expect("begin");
    {
        txn.open_table(META)
            .expect("meta")
            .insert(SCHEMA_KEY, 1)
            .expect("schema");
        let mut sessions = txn.open_table(SESSIONS).expect("sessions");
        let mut tokens = txn.open_table(TOKENS).expect("tokens");
        let ports: TableDefinition<u16, &str> = TableDefinition::new("ports");
        let mut ports = txn.open_table(ports).expect("ports");
        for (i, (name, desired, state)) in [
            ("alpha", "running", r#"{"state":"running"}"#),
            ("beta", "stopped", r#"{"state":"stopped"}"#),
        ]
        .into_iter()
        .enumerate()
        {
            let base = 42000 + 3 * u16::try_from(i).expect("small");
            let record = format!(
                concat!(
                    "\u{1}",
                    r#"{{"spec":{{"id":"{name}","owner":"ann","template":"coding-copilot","#,
                    r#""image":"localhost/octo-session:latest","#,
                    r#""ports":{{"opencode":{a},"files":{b},"terminal":{c}}},"#,
                    r#""limits":{{"memory_bytes":null,"cpu_centis":null,"pids":null}},"#,
                    r#""desired":"{desired}"}},"state":{state},"#,
                    r#""created_at":1700000000000,"updated_at":1700000000500,"state_changed_at":1700000000250}}"#,
                ),
                name = name,
                a = base,
                b = base + 1,
                c = base + 2,
                desired = desired,
                state = state,
            );
            sessions.insert(name, record.as_bytes()).expect("record");
            tokens
                .insert(name, format!("\u{1}\"{}\"", "ab".repeat(32)).as_bytes())
                .expect("token");
            for port in base..base + 3 {
                ports.insert(port, name).expect("port");
            }
        }
    }
    txn.commit().expect("commit");
}

#[test]
fn a_schema_1_file_is_migrated_and_its_sessions_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("octod.redb");
    write_schema_1(&path);
    let store = Store::open(&path).expect("open migrates");
    let records = store.list().expect("list");
    let summary: Vec<(&str, DesiredState, SessionState)> = records
        .iter()
        .map(|r| (r.spec.id.as_str(), r.spec.desired, r.state.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("alpha", DesiredState::Running, SessionState::Running),
            ("beta", DesiredState::Stopped, SessionState::Stopped),
        ]
    );
    // Schema 1 → 3 in one go: the ports are gone and the sessions have their default names.
    assert!(
        records.iter().all(|r| r.name == "coding-copilot"),
        "{records:?}"
    );
    assert_eq!(
        records[0].created_at,
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    );
    assert_eq!(
        store.token(&id("beta")).expect("token").expose(),
        "ab".repeat(32)
    );
    assert_eq!(store.check().expect("check"), []);
    {
        let txn = store.inner.db.begin_read().expect("read");
        let ports: TableDefinition<u16, &str> = TableDefinition::new("ports");
        assert!(
            matches!(
                txn.open_table(ports),
                Err(redb::TableError::TableDoesNotExist(_))
            ),
            "the ports table is left"
        );
        let meta = txn.open_table(META).expect("meta");
        assert_eq!(
            meta.get(SCHEMA_KEY).expect("get").map(|v| v.value()),
            Some(SCHEMA_VERSION)
        );
        let sessions = txn.open_table(SESSIONS).expect("sessions");
        let alpha = sessions.get("alpha").expect("get").expect("alpha");
        assert_eq!(
            alpha.value()[0],
            RECORD_VERSION,
            "rewritten as the current version"
        );
        assert!(!String::from_utf8_lossy(alpha.value()).contains("ports"));
    }
    // And again: a migrated file opens as is, and takes new sessions.
    drop(store);
    let store = Store::open(&path).expect("reopen");
    assert_eq!(store.list().expect("list").len(), 2);
    store.create_session(new("gamma", "ann")).expect("create");
    assert_eq!(store.check().expect("check"), []);
}

/// A state file as octod wrote it before sessions had names (schema 2: version-2 records,
/// no `ports` table), built here with that record shape: `(id, template)` per session.
fn write_schema_2(path: &Path, sessions: &[(&str, &str)]) {
    let db = Database::create(path).expect("create");
    let txn = db.begin_write().expect("begin");
    {
        txn.open_table(META)
            .expect("meta")
            .insert(SCHEMA_KEY, 2)
            .expect("schema");
        let mut records = txn.open_table(SESSIONS).expect("sessions");
        let mut tokens = txn.open_table(TOKENS).expect("tokens");
        let mut activity = txn.open_table(ACTIVITY).expect("activity");
        for (name, template) in sessions {
            let record = format!(
                concat!(
                    "\u{2}",
                    r#"{{"spec":{{"id":"{name}","owner":"ann","template":"{template}","#,
                    r#""image":"localhost/octo-session:latest","#,
                    r#""limits":{{"memory_bytes":null,"cpu_centis":null,"pids":null}},"#,
                    r#""desired":"idle"}},"state":{{"state":"stopped"}},"#,
                    r#""created_at":1700000000000,"updated_at":1700000000500,"state_changed_at":1700000000250}}"#,
                ),
                name = name,
                template = template,
            );
            records.insert(*name, record.as_bytes()).expect("record");
            tokens
                .insert(*name, format!("\u{1}\"{}\"", "cd".repeat(32)).as_bytes())
                .expect("token");
            activity.insert(*name, 1_700_000_100_000).expect("activity");
        }
    }
    txn.commit().expect("commit");
}

#[test]
fn a_schema_2_file_is_migrated_and_its_sessions_get_their_templates_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("octod.redb");
    write_schema_2(
        &path,
        &[
            ("alpha", "coding-copilot"),
            ("beta", "meeting-synth"),
            ("gamma", "removed-since"),
        ],
    );
    // What serve passes: the templates' display names, the id for one that is gone.
    let names = |template: &str| {
        let display = match template {
            "coding-copilot" => "Coding Copilot",
            "meeting-synth" => "Meeting\nSynth",
            _ => "",
        };
        SessionName::lossy(display, template)
    };
    let store = Store::open_with(&path, &names).expect("open migrates");
    let records = store.list().expect("list");
    let summary: Vec<(&str, &str, &str, DesiredState)> = records
        .iter()
        .map(|r| {
            (
                r.spec.id.as_str(),
                r.name.as_str(),
                r.description.as_str(),
                r.spec.desired,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("alpha", "Coding Copilot", "", DesiredState::Idle),
            ("beta", "Meeting Synth", "", DesiredState::Idle),
            ("gamma", "removed-since", "", DesiredState::Idle),
        ]
    );
    assert_eq!(records[0].state, SessionState::Stopped);
    assert_eq!(
        records[0].created_at,
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    );
    assert_eq!(
        store.token(&id("alpha")).expect("token").expose(),
        "cd".repeat(32)
    );
    assert_eq!(
        store.last_activity(&id("beta")).expect("activity"),
        Some(UNIX_EPOCH + Duration::from_secs(1_700_000_100))
    );
    assert_eq!(store.check().expect("check"), []);
    {
        let txn = store.inner.db.begin_read().expect("read");
        let meta = txn.open_table(META).expect("meta");
        assert_eq!(
            meta.get(SCHEMA_KEY).expect("get").map(|v| v.value()),
            Some(3)
        );
        let sessions = txn.open_table(SESSIONS).expect("sessions");
        let alpha = sessions.get("alpha").expect("get").expect("alpha");
        assert_eq!(alpha.value()[0], 3, "rewritten as version 3");
    }
    // A name given later is kept: reopening a migrated file does not rename anything.
    store
        .relabel(
            &id("alpha"),
            Some(SessionName::parse("Thesis").expect("name")),
            None,
        )
        .expect("rename");
    drop(store);
    let store =
        Store::open_with(&path, &|_| SessionName::parse("Wrong").expect("name")).expect("reopen");
    let names: Vec<String> = store
        .list()
        .expect("list")
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["Thesis", "Meeting Synth", "removed-since"]);
}

#[test]
fn relabel_changes_name_and_description_in_one_write() {
    let fx = Fixture::new();
    let (created, _) = fx.create("alpha", "ann");
    assert_eq!(
        (created.name.as_str(), created.description.as_str()),
        ("Coding Copilot", "")
    );

    let name = |s: &str| Some(SessionName::parse(s).expect("name"));
    let description = |s: &str| Some(SessionDescription::parse(s).expect("description"));
    let (before, after) = fx
        .store
        .relabel(&id("alpha"), name("Thesis"), None)
        .expect("rename");
    assert_eq!(before, created);
    assert_eq!(
        (after.name.as_str(), after.description.as_str()),
        ("Thesis", "")
    );
    assert!(after.updated_at >= before.updated_at);
    assert_eq!(after.state_changed_at, before.state_changed_at);

    let (_, after) = fx
        .store
        .relabel(&id("alpha"), None, description("chapter 2"))
        .expect("describe");
    assert_eq!(
        (after.name.as_str(), after.description.as_str()),
        ("Thesis", "chapter 2")
    );
    // Nothing to change: nothing written.
    let (before, unchanged) = fx
        .store
        .relabel(&id("alpha"), name("Thesis"), None)
        .expect("same name");
    assert_eq!(before, unchanged);
    assert_eq!(fx.store.get(&id("alpha")).expect("get"), Some(after));

    let err = fx
        .store
        .relabel(&id("nope"), name("x"), None)
        .expect_err("no such session");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

#[test]
fn debug_output_never_shows_the_token() {
    let fx = Fixture::new();
    let created = fx.create("alpha", "ann");
    let token = created.1.expose().to_owned();
    let shown = format!(
        "{created:?} {:?} {:?}",
        fx.store,
        fx.store.token(&id("alpha"))
    );
    assert!(!shown.contains(&token), "{shown}");
    assert!(shown.contains("***"), "{shown}");
}

#[tokio::test]
async fn async_callers_use_run() {
    let fx = Fixture::new();
    let (record, _) = fx
        .store
        .run(|s| s.create_session(new("alpha", "ann")))
        .await
        .expect("create");
    let listed = fx.store.run(Store::list).await.expect("list");
    assert_eq!(listed, [record]);
    let err = fx
        .store
        .run(|s| s.delete_session(&id("nope")))
        .await
        .expect_err("missing");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

/// Admission control is counted in the transaction that records a start: 10 concurrent
/// creates on a host with 3 running slots (one taken) leave 2 more, and resumes through
/// `update_among` cannot pass it together either.
#[test]
fn concurrent_starts_take_at_most_the_free_slots() {
    use crate::limits::{Admission, AdmitCheck, Refusal};
    const N: u16 = 10;
    let fx = Fixture::new();
    fx.create("taken", "bob");
    fx.store
        .set_state(&id("taken"), SessionState::Running)
        .expect("running");
    let check = AdmitCheck {
        rules: Admission {
            max_running: Some(3),
            ..Admission::default()
        },
        available_memory: None,
        state_free: None,
    };
    let barrier = Arc::new(Barrier::new(N.into()));
    let threads: Vec<_> = (0..N)
        .map(|i| {
            let (store, barrier, check) = (fx.store.clone(), Arc::clone(&barrier), check.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.create_session(NewSession {
                    admit: Some(check),
                    ..new(&format!("s{i}"), "ann")
                })
            })
        })
        .collect();
    let mut created = 0;
    for t in threads {
        match t.join().expect("thread") {
            Ok(_) => created += 1,
            Err(StoreError::Refused(Refusal::HostFull { running: 3, max: 3 })) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(created, 2);
    assert_eq!(fx.store.list().expect("list").len(), 3);
    fx.assert_consistent();

    // Stopped sessions resumed concurrently: one slot free (one of ann's stopped), one taken.
    for record in fx.store.list_by_owner("ann").expect("list") {
        fx.store
            .update(&record.spec.id, |r| {
                r.spec.desired = DesiredState::Stopped;
                r.state = SessionState::Stopped;
                Ok::<_, StoreError>(())
            })
            .expect("stopped");
    }
    fx.create("c1", "carl");
    let ids: Vec<SessionId> = fx
        .store
        .list_by_owner("ann")
        .expect("list")
        .into_iter()
        .map(|r| r.spec.id)
        .collect();
    let barrier = Arc::new(Barrier::new(ids.len()));
    let threads: Vec<_> = ids
        .into_iter()
        .map(|sid| {
            let (store, barrier, check) = (fx.store.clone(), Arc::clone(&barrier), check.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.update_among(&sid, |r, others| {
                    check
                        .check(&r.spec, others.iter().map(|o| (&o.spec, &o.state)))
                        .map_err(StoreError::from)?;
                    r.spec.desired = DesiredState::Running;
                    r.state = SessionState::Starting;
                    Ok::<_, StoreError>(())
                })
            })
        })
        .collect();
    let resumed = threads
        .into_iter()
        .filter_map(|t| t.join().expect("thread").ok())
        .count();
    assert_eq!(resumed, 1, "taken and c1 hold two of the three slots");
}

#[test]
fn a_keep_alive_is_kept_across_a_reopen_and_goes_with_its_session() {
    let mut fx = Fixture::new();
    fx.create("alpha", "ann");
    fx.create("beta", "ann");
    let (alpha, beta) = (id("alpha"), id("beta"));
    let t = |ms: u64| UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms);

    assert!(fx.store.keep_alives().expect("keep-alives").is_empty());
    assert!(fx.store.set_keep_alive(&alpha, Some(t(10))).expect("set"));
    assert!(fx.store.set_keep_alive(&alpha, Some(t(20))).expect("set")); // replaces
    assert!(fx.store.set_keep_alive(&beta, Some(t(30))).expect("set"));
    assert!(
        !fx.store
            .set_keep_alive(&id("ghost"), Some(t(5)))
            .expect("set")
    );
    fx.reopen();
    assert_eq!(
        fx.store.keep_alives().expect("keep-alives"),
        BTreeMap::from([(alpha.clone(), t(20)), (beta.clone(), t(30))])
    );
    assert!(fx.store.set_keep_alive(&beta, None).expect("clear"));
    fx.store.delete_session(&alpha).expect("delete");
    assert!(fx.store.keep_alives().expect("keep-alives").is_empty());
    fx.create("alpha", "ann");
    assert!(fx.store.keep_alives().expect("keep-alives").is_empty());
    fx.assert_consistent();
}

#[test]
fn a_preview_share_is_kept_across_a_reopen_and_goes_with_its_session() {
    let mut fx = Fixture::new();
    fx.create("alpha", "ann");
    fx.create("alphabet", "ann");
    let (alpha, alphabet) = (id("alpha"), id("alphabet"));
    let link = |id: &str, secs_left: i64| crate::store::ShareLink {
        id: id.into(),
        token_sha256: format!("sha-{id}"),
        created_by: "ann".into(),
        created_at: SystemTime::now(),
        expires_at: if secs_left >= 0 {
            SystemTime::now() + Duration::from_secs(secs_left.unsigned_abs())
        } else {
            SystemTime::now() - Duration::from_secs(secs_left.unsigned_abs())
        },
    };
    assert_eq!(
        fx.store.preview_share(&alpha, 3000).expect("read"),
        crate::store::PortShare::default()
    );
    fx.store
        .update_preview_share(&alpha, 3000, |s| {
            s.users = true;
            Ok(())
        })
        .expect("share with users");
    fx.store
        .update_preview_share(&alpha, 5173, |s| {
            s.links.push(link("l1", 3600));
            s.links.push(link("gone", -1));
            Ok(())
        })
        .expect("a link");
    fx.store
        .update_preview_share(&alphabet, 3000, |s| {
            s.users = true;
            Ok(())
        })
        .expect("another session's");
    let ghost = fx.store.update_preview_share(&id("ghost"), 3000, |s| {
        s.users = true;
        Ok(())
    });
    assert!(
        matches!(ghost, Err(crate::store::ShareError::NoSession(_))),
        "{ghost:?}"
    );
    fx.reopen();
    let shares = fx.store.preview_shares(&alpha).expect("shares");
    assert_eq!(shares.keys().copied().collect::<Vec<_>>(), vec![3000, 5173]);
    assert!(shares[&3000].users);
    // The expired link is not returned.
    let links: Vec<&str> = shares[&5173].links.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(links, vec!["l1"]);
    // Too many links are refused and change nothing.
    let many = fx.store.update_preview_share(&alpha, 5173, |s| {
        for n in 0..crate::store::MAX_SHARE_LINKS {
            s.links.push(link(&format!("m{n}"), 60));
        }
        Ok(())
    });
    assert!(
        matches!(many, Err(crate::store::ShareError::TooManyLinks)),
        "{many:?}"
    );
    assert_eq!(
        fx.store
            .preview_share(&alpha, 5173)
            .expect("read")
            .links
            .len(),
        1
    );
    // Unshared, the row goes.
    fx.store
        .update_preview_share(&alpha, 3000, |s| {
            s.users = false;
            Ok(())
        })
        .expect("unshare");
    assert_eq!(
        fx.store
            .preview_shares(&alpha)
            .expect("shares")
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![5173]
    );
    // Deleting a session removes its shares, and only its own (`alphabet` shares the prefix).
    fx.store.delete_session(&alpha).expect("delete");
    fx.create("alpha", "ann");
    assert!(fx.store.preview_shares(&alpha).expect("shares").is_empty());
    assert!(fx.store.preview_share(&alphabet, 3000).expect("read").users);
    fx.assert_consistent();
}
