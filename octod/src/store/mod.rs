//! octod's persistent state in redb: session records and their tokens.
//! redb is the single source of desired state (design.md); every transition here is one
//! write transaction, so a crash at any moment leaves either the old or the new state.
//!
//! # On-disk format
//!
//! One redb 2 file (`/var/lib/octod/octod.redb` in production), created with mode 0600
//! because it holds session tokens. Tables:
//!
//! | table      | key                 | value                                          |
//! | ---------- | ------------------- | ---------------------------------------------- |
//! | `meta`     | `&str`              | `u64`; `"schema"` = [`SCHEMA_VERSION`]         |
//! | `sessions` | session id (`&str`) | versioned [`SessionRecord`]                    |
//! | `tokens`   | session id (`&str`) | versioned token string (64 hex characters)     |
//! | `activity` | session id (`&str`) | last activity, milliseconds since the epoch    |
//!
//! Accounts (users, invite codes, revoked tokens, the audit log) live in their own tables,
//! described in [`accounts`].
//!
//! **Versioned values** (`sessions`, `tokens`) are one format-version byte followed by the
//! JSON of the value in that version's shape (see [`codec`]). A reader that meets a version it
//! does not know returns [`DecodeError::UnknownVersion`]; it never panics. The v1 JSON of a
//! session record is the serde shape of [`SessionRecord`] and so of
//! [`SessionSpec`](crate::session::SessionSpec): changing either changes the format, so bump
//! the version and keep a reader for the older ones (the `record_format_is_pinned` test fails
//! first). Records are at version 3: version 2 had no `name` and `description` (they read as
//! empty, and the migration to schema 3 names every session); version 1 also had `spec.ports`
//! (sessions published host ports until issue 13) and no `idle` desired state; its JSON reads
//! with `ports` ignored. Plain values (ids, times) use redb's own types; their meaning is pinned by
//! the `meta` schema version, and [`Store::open`] refuses a file with a newer schema.
//!
//! **Migrations** run in [`Store::open_with`], in the transaction that sets the new schema
//! version: schema 1 → 2 drops the `ports` table (host port → session); 2 → 3 gives every
//! session its default name (the display name of its template, which the caller resolves: the
//! store does not read templates). Either rewrites every record as the current version; a
//! schema-1 file takes both steps in one transaction. An older octod then refuses the file
//! (newer schema) instead of misreading it.
//!
//! **Invariants**, kept by every write transaction and reported by [`Store::check`]: each
//! session has a token; `tokens` and `activity` hold nothing for sessions that do not exist.
//!
//! # Activity
//!
//! [`Store::record_activity`] is called by the proxy on every request, so it only updates a map
//! in memory. [`Store::flush_activity`] writes that map in one transaction; the engine calls it
//! periodically and before shutdown, and the store flushes once more when the last clone is
//! dropped. A crash loses at most the activity since the last flush, which at worst makes a
//! session look idle a little earlier.
//!
//! # Async callers
//!
//! redb is synchronous and a write transaction waits for an fsync. From async code use
//! [`Store::run`] (or `tokio::task::spawn_blocking` directly); `record_activity` is the
//! exception and is fine to call on the runtime. `Store` is a cheap `Clone` (an `Arc`) and
//! `Send + Sync`; redb serializes write transactions, which is what makes the per-owner
//! session limit safe under concurrent creates.

mod accounts;
mod api_tokens;
mod backup;
mod codec;
mod identities;
mod llm_usage;
mod previews;
mod secret;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

pub use accounts::{
    AUDIT_KEEP, AccountError, AuditEntry, Invite, TokenStatus, UserRecord, code_hint,
};
pub use api_tokens::{ApiTokenRecord, ApiTokenStatus, MAX_API_TOKENS_PER_USER};
pub use backup::CopyReport;
pub use codec::{DecodeError, to_unix_ms};
pub use identities::NewLinkedUser;
pub use llm_usage::{UNLIMITED, UsageEntry, UsageFilter, UsageRow};
pub use previews::{MAX_SHARE_LINKS, PortShare, ShareError, ShareLink};
pub use secret::{Secret, same_hash};

use crate::session::{
    DesiredState, Limits, SessionDescription, SessionId, SessionName, SessionSpec, SessionState,
};

/// The schema version this octod writes into `meta` and the newest it opens.
pub const SCHEMA_VERSION: u64 = 3;
const SCHEMA_KEY: &str = "schema";
/// Format version of values in `sessions` (1, with ports, and 2, without names, are still
/// read).
const RECORD_VERSION: u8 = 3;
/// Format version of values in `tokens`.
const TOKEN_VERSION: u8 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
/// Schema 1's host ports (port → session); dropped by the migration to schema 2.
const OLD_PORTS: &str = "ports";
const ACTIVITY: TableDefinition<&str, u64> = TableDefinition::new("activity");
/// Each session's home size as last measured: (bytes, milliseconds since the epoch).
/// Additive (created on open); a record deleted with its session.
const DISK: TableDefinition<&str, (u64, u64)> = TableDefinition::new("disk_usage");
/// Session id → until when its user keeps it running without activity (Unix ms).
const KEEP_ALIVE: TableDefinition<&str, u64> = TableDefinition::new("keep_alive");

/// What failed in the store. Each message names the operation and the session.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening state database {path}: {source}")]
    OpenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening state database {path}: {source}")]
    Open {
        path: PathBuf,
        source: Box<redb::DatabaseError>,
    },
    #[error(
        "state database {path} has schema version {found}, newer than the {supported} this octod understands; run a newer octod"
    )]
    NewerSchema {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    /// A redb error; `action` says what the store was doing (empty only transiently, while a
    /// transaction body propagates it to the method that adds the context).
    #[error("{action}: {source}")]
    Db {
        action: String,
        source: Box<redb::Error>,
    },
    #[error("session {0} already exists")]
    AlreadyExists(SessionId),
    /// A create would take the owner past [`NewSession::max_per_owner`].
    #[error("{owner} has {count} sessions, the most allowed ({limit})")]
    SessionLimit {
        owner: String,
        limit: u32,
        count: usize,
    },
    #[error("session {0} does not exist")]
    NotFound(SessionId),
    /// Admission control refused a start ([`crate::limits::AdmitCheck`]), checked in the
    /// transaction that records it.
    #[error(transparent)]
    Refused(#[from] crate::limits::Refusal),
    #[error("session {id} has no token in the state database")]
    MissingToken { id: SessionId },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("encoding the {what} of session {id}: {source}")]
    Encode {
        what: &'static str,
        id: SessionId,
        source: serde_json::Error,
    },
    #[error("generating the token for session {id}: {source}")]
    Random {
        id: SessionId,
        source: getrandom::Error,
    },
    /// An [`Store::update`] closure changed a field that the store owns.
    #[error("updating session {id}: its {field} cannot be changed by an update")]
    Immutable { id: SessionId, field: &'static str },
    #[error("a blocking state database task did not finish: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// A backup met tables it does not know ([`backup`]): a new table must be added there.
    #[error("the state has tables a backup does not know: {}", .0.join(", "))]
    UnknownTables(Vec<String>),
}

impl StoreError {
    fn context(self, action: impl FnOnce() -> String) -> Self {
        match self {
            Self::Db { action: a, source } if a.is_empty() => Self::Db {
                action: action(),
                source,
            },
            other => other,
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Db { action: String::new(), source: Box::new(e.into()) }
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A new session as the lifecycle asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: SessionId,
    pub owner: String,
    pub template: String,
    /// Its name at first: the template's display name.
    pub name: SessionName,
    pub image: String,
    pub limits: Limits,
    pub desired: DesiredState,
    /// Refuse the create when the owner has this many sessions already (counted in the
    /// creating transaction, so concurrent creates cannot pass it together).
    pub max_per_owner: Option<u32>,
    /// Admission control, checked against every other session in the same transaction, so
    /// that concurrent creates cannot take the last slot together.
    pub admit: Option<crate::limits::AdmitCheck>,
}

/// A session as stored: its spec, its lifecycle state and when things happened. The token is
/// kept apart ([`Store::token`]) so that a record can be logged or sent to a client as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub spec: SessionSpec,
    pub state: SessionState,
    /// What its user calls it (a [`SessionName`] when set through the store). Not part of the
    /// spec: running the session does not depend on it. Absent before record version 3.
    #[serde(default)]
    pub name: String,
    /// Its user's short note (a [`SessionDescription`]), often empty. Absent before record
    /// version 3.
    #[serde(default)]
    pub description: String,
    #[serde(with = "codec::unix_ms")]
    pub created_at: SystemTime,
    /// The last write of this record.
    #[serde(with = "codec::unix_ms")]
    pub updated_at: SystemTime,
    /// When `state` last changed, e.g. since when a session has been running.
    #[serde(with = "codec::unix_ms")]
    pub state_changed_at: SystemTime,
}

/// A violation of the store's invariants, found by [`Store::check`]. None should ever exist;
/// the check is there for tests and for `octoctl` diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inconsistency {
    MissingToken(SessionId),
    OrphanToken(String),
    OrphanActivity(String),
}

impl fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingToken(id) => write!(f, "session {id} has no token"),
            Self::OrphanToken(key) => {
                write!(f, "a token is stored for {key:?}, which is not a session")
            }
            Self::OrphanActivity(key) => {
                write!(f, "activity is stored for {key:?}, which is not a session")
            }
        }
    }
}

/// The state database. See the module documentation for the format and the invariants.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    path: PathBuf,
    /// Activity recorded since the last flush, newest time per session.
    pending: Mutex<HashMap<SessionId, SystemTime>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// [`Self::open_with`] naming migrated sessions after their template's id: for tests and
    /// tools that have no templates directory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, &|template| SessionName::lossy(template, template))
    }

    /// Opens the database at `path`, creating the file (mode 0600) and its tables if needed,
    /// and migrating an older schema (see the module documentation); `default_name` names a
    /// session of a template (by id) that an older schema stored without a name. Fails if
    /// another process has the file open.
    pub fn open_with(
        path: impl AsRef<Path>,
        default_name: &dyn Fn(&str) -> SessionName,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let file_err = |source| StoreError::OpenFile {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(file_err)?;
        // Also for a file created by someone else: it holds the session tokens.
        file.set_permissions(Permissions::from_mode(0o600))
            .map_err(file_err)?;
        let db = Database::builder()
            .create_file(file)
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source: Box::new(source),
            })?;

        let init = || -> Result<Option<u64>, StoreError> {
            let txn = db.begin_write()?;
            {
                let mut meta = txn.open_table(META)?;
                let found = meta.get(SCHEMA_KEY)?.map(|v| v.value());
                match found {
                    Some(found) if found > SCHEMA_VERSION => return Ok(Some(found)),
                    Some(SCHEMA_VERSION) => {}
                    Some(found) => {
                        migrate(&txn, found, default_name)?;
                        meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
                    }
                    None => {
                        meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
                    }
                }
                txn.open_table(SESSIONS)?;
                txn.open_table(TOKENS)?;
                txn.open_table(ACTIVITY)?;
                txn.open_table(DISK)?;
                txn.open_table(KEEP_ALIVE)?;
                accounts::create_tables(&txn)?;
                api_tokens::create_tables(&txn)?;
                llm_usage::create_tables(&txn)?;
                previews::create_tables(&txn)?;
            }
            txn.commit()?;
            Ok(None)
        };
        match init()
            .map_err(|e| e.context(|| format!("initializing state database {}", path.display())))?
        {
            Some(found) => Err(StoreError::NewerSchema {
                path,
                found,
                supported: SCHEMA_VERSION,
            }),
            None => Ok(Self {
                inner: Arc::new(Inner {
                    db,
                    path,
                    pending: Mutex::new(HashMap::new()),
                }),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Creates a session in state `creating`: checks the owner's session limit, generates its
    /// token and stores it with the record, in one write transaction. Returns the record and
    /// the token.
    pub fn create_session(&self, new: NewSession) -> Result<(SessionRecord, Secret), StoreError> {
        // Before the transaction: the OS random source is not the database's business.
        let token = Secret::generate().map_err(|source| StoreError::Random {
            id: new.id.clone(),
            source,
        })?;
        let token_bytes =
            codec::encode(TOKEN_VERSION, &token.expose()).map_err(|source| StoreError::Encode {
                what: "token",
                id: new.id.clone(),
                source,
            })?;
        let id = new.id.clone();
        let record = self.write(
            || format!("creating session {id}"),
            |txn| {
                let mut sessions = txn.open_table(SESSIONS)?;
                if sessions.get(new.id.as_str())?.is_some() {
                    return Err(StoreError::AlreadyExists(new.id));
                }
                if let Some(limit) = new.max_per_owner {
                    let mut count = 0;
                    for entry in sessions.iter()? {
                        let (key, value) = entry?;
                        count += usize::from(
                            decode_record(key.value(), value.value())?.spec.owner == new.owner,
                        );
                    }
                    if count >= usize::try_from(limit).unwrap_or(usize::MAX) {
                        return Err(StoreError::SessionLimit {
                            owner: new.owner,
                            limit,
                            count,
                        });
                    }
                }
                let spec = SessionSpec {
                    id: new.id,
                    owner: new.owner,
                    template: new.template,
                    image: new.image,
                    limits: new.limits,
                    desired: new.desired,
                };
                if let Some(admit) = &new.admit {
                    let others = all_records(&sessions)?;
                    admit.check(&spec, others.iter().map(|r| (&r.spec, &r.state)))?;
                }
                let now = now();
                let record = SessionRecord {
                    spec,
                    state: SessionState::Creating,
                    name: new.name.into_string(),
                    description: String::new(),
                    created_at: now,
                    updated_at: now,
                    state_changed_at: now,
                };
                sessions.insert(record.spec.id.as_str(), encode_record(&record)?.as_slice())?;
                txn.open_table(TOKENS)?
                    .insert(record.spec.id.as_str(), token_bytes.as_slice())?;
                txn.open_table(ACTIVITY)?.remove(record.spec.id.as_str())?;
                Ok(record)
            },
        )?;
        // Activity recorded for this id before it existed is not this session's.
        self.inner.lock_pending().remove(&record.spec.id);
        Ok((record, token))
    }

    /// The session's record, or `None` if there is no such session.
    pub fn get(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.read(
            || format!("reading session {id}"),
            |txn| {
                let sessions = txn.open_table(SESSIONS)?;
                get_record(&sessions, id)
            },
        )
    }

    /// All sessions, ordered by id.
    pub fn list(&self) -> Result<Vec<SessionRecord>, StoreError> {
        self.list_where(|_| true)
    }

    /// The sessions of one owner, ordered by id. A scan of all records: a host has hundreds of
    /// sessions, not millions, and an index would be one more thing to keep consistent.
    pub fn list_by_owner(&self, owner: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.list_where(|r| r.spec.owner == owner)
    }

    fn list_where(
        &self,
        keep: impl Fn(&SessionRecord) -> bool,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.read(
            || "listing sessions".to_owned(),
            |txn| {
                let sessions = txn.open_table(SESSIONS)?;
                let mut out = Vec::new();
                for entry in sessions.iter()? {
                    let (key, value) = entry?;
                    let record = decode_record(key.value(), value.value())?;
                    if keep(&record) {
                        out.push(record);
                    }
                }
                Ok(out)
            },
        )
    }

    /// The session's token.
    pub fn token(&self, id: &SessionId) -> Result<Secret, StoreError> {
        self.read(
            || format!("reading the token of session {id}"),
            |txn| {
                let tokens = txn.open_table(TOKENS)?;
                let Some(bytes) = tokens.get(id.as_str())? else {
                    let sessions = txn.open_table(SESSIONS)?;
                    return Err(if sessions.get(id.as_str())?.is_some() {
                        StoreError::MissingToken { id: id.clone() }
                    } else {
                        StoreError::NotFound(id.clone())
                    });
                };
                let token: String =
                    codec::decode("tokens", id.as_str(), TOKEN_VERSION, bytes.value())?;
                Ok(Secret::new(token))
            },
        )
    }

    /// Reads the record, lets `f` change it and writes it back, in one write transaction. If
    /// `f` fails, nothing is written and its error is returned; if it changes nothing, nothing
    /// is written either. `updated_at` is set, and `state_changed_at` when the state changed.
    /// The id and `created_at` belong to the store: changing them fails with
    /// [`StoreError::Immutable`].
    pub fn update<T, E: From<StoreError>>(
        &self,
        id: &SessionId,
        f: impl FnOnce(&mut SessionRecord) -> Result<T, E>,
    ) -> Result<T, E> {
        self.modify(id, f).map(|(out, _)| out)
    }

    /// Sets the observed lifecycle state; returns the new record.
    pub fn set_state(
        &self,
        id: &SessionId,
        state: SessionState,
    ) -> Result<SessionRecord, StoreError> {
        self.modify(id, |r| {
            r.state = state;
            Ok::<_, StoreError>(())
        })
        .map(|((), record)| record)
    }

    /// Sets the desired state; returns the new record.
    pub fn set_desired(
        &self,
        id: &SessionId,
        desired: DesiredState,
    ) -> Result<SessionRecord, StoreError> {
        self.modify(id, |r| {
            r.spec.desired = desired;
            Ok::<_, StoreError>(())
        })
        .map(|((), record)| record)
    }

    /// Sets the session's name and/or description (`None` keeps it), in one write
    /// transaction. Returns the record before and after; equal when nothing changed, and then
    /// nothing is written.
    pub fn relabel(
        &self,
        id: &SessionId,
        name: Option<SessionName>,
        description: Option<SessionDescription>,
    ) -> Result<(SessionRecord, SessionRecord), StoreError> {
        self.modify(id, |r| {
            let before = r.clone();
            if let Some(name) = name {
                r.name = name.into_string();
            }
            if let Some(description) = description {
                r.description = description.into_string();
            }
            Ok::<_, StoreError>(before)
        })
    }

    /// [`Self::update`], also returning the record as written.
    fn modify<T, E: From<StoreError>>(
        &self,
        id: &SessionId,
        f: impl FnOnce(&mut SessionRecord) -> Result<T, E>,
    ) -> Result<(T, SessionRecord), E> {
        self.modify_among(id, false, |record, _| f(record))
    }

    /// [`Self::update`] whose closure also sees every session's record as it is in the same
    /// transaction (its own included): for decisions that count the others, such as
    /// admission control, which concurrent writers must not pass together.
    pub fn update_among<T, E: From<StoreError>>(
        &self,
        id: &SessionId,
        f: impl FnOnce(&mut SessionRecord, &[SessionRecord]) -> Result<T, E>,
    ) -> Result<T, E> {
        self.modify_among(id, true, f).map(|(out, _)| out)
    }

    fn modify_among<T, E: From<StoreError>>(
        &self,
        id: &SessionId,
        with_others: bool,
        f: impl FnOnce(&mut SessionRecord, &[SessionRecord]) -> Result<T, E>,
    ) -> Result<(T, SessionRecord), E> {
        let attempt = || -> Result<Result<(T, SessionRecord), E>, StoreError> {
            let txn = self.inner.db.begin_write()?;
            let (out, record) = {
                let mut sessions = txn.open_table(SESSIONS)?;
                let before =
                    get_record(&sessions, id)?.ok_or_else(|| StoreError::NotFound(id.clone()))?;
                let others = if with_others {
                    all_records(&sessions)?
                } else {
                    Vec::new()
                };
                let mut record = before.clone();
                let out = match f(&mut record, &others) {
                    Ok(out) => out,
                    // Dropping the transaction without a commit discards it.
                    Err(e) => return Ok(Err(e)),
                };
                if record == before {
                    return Ok(Ok((out, before)));
                }
                let immutable = |field| StoreError::Immutable {
                    id: id.clone(),
                    field,
                };
                if record.spec.id != before.spec.id {
                    return Err(immutable("id"));
                }
                if record.created_at != before.created_at {
                    return Err(immutable("creation time"));
                }
                let now = now();
                record.updated_at = now;
                if record.state != before.state {
                    record.state_changed_at = now;
                }
                sessions.insert(id.as_str(), encode_record(&record)?.as_slice())?;
                (out, record)
            };
            txn.commit()?;
            Ok(Ok((out, record)))
        };
        attempt()
            .map_err(|e| E::from(e.context(|| format!("updating session {id}"))))
            .and_then(|r| r)
    }

    /// Removes the session's record, its token and activity, in one write transaction. Returns
    /// the removed record. The engine calls this last, after the units, container, secret and
    /// volume are gone, so that a failed cleanup is retried from the record.
    pub fn delete_session(&self, id: &SessionId) -> Result<SessionRecord, StoreError> {
        let record = self.write(
            || format!("deleting session {id}"),
            |txn| {
                let mut sessions = txn.open_table(SESSIONS)?;
                let record =
                    get_record(&sessions, id)?.ok_or_else(|| StoreError::NotFound(id.clone()))?;
                sessions.remove(id.as_str())?;
                txn.open_table(TOKENS)?.remove(id.as_str())?;
                txn.open_table(ACTIVITY)?.remove(id.as_str())?;
                txn.open_table(DISK)?.remove(id.as_str())?;
                txn.open_table(KEEP_ALIVE)?.remove(id.as_str())?;
                previews::delete_shares(txn, id)?;
                Ok(record)
            },
        )?;
        self.inner.lock_pending().remove(id);
        Ok(record)
    }

    /// Records a measurement of the session's home: `bytes` at `when`. A session deleted
    /// meanwhile is left alone (`false`).
    pub fn record_disk(
        &self,
        id: &SessionId,
        bytes: u64,
        when: SystemTime,
    ) -> Result<bool, StoreError> {
        self.write(
            || format!("recording the disk usage of session {id}"),
            |txn| {
                if txn.open_table(SESSIONS)?.get(id.as_str())?.is_none() {
                    return Ok(false);
                }
                txn.open_table(DISK)?
                    .insert(id.as_str(), (bytes, codec::to_unix_ms(when)))?;
                Ok(true)
            },
        )
    }

    /// Every session's home size as last measured, and when.
    pub fn disk_usage(&self) -> Result<BTreeMap<SessionId, (u64, SystemTime)>, StoreError> {
        self.read(
            || "reading disk usage".to_owned(),
            |txn| {
                let disk = txn.open_table(DISK)?;
                let mut out = BTreeMap::new();
                for entry in disk.iter()? {
                    let (key, value) = entry?;
                    let id = parse_id("disk_usage", key.value(), key.value())?;
                    let (bytes, ms) = value.value();
                    out.insert(id, (bytes, codec::from_unix_ms(ms)));
                }
                Ok(out)
            },
        )
    }

    /// Keeps the session running without activity until `until` (`None`: no longer). A
    /// session deleted meanwhile is left alone (`false`).
    pub fn set_keep_alive(
        &self,
        id: &SessionId,
        until: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        self.write(
            || format!("setting the keep-alive of session {id}"),
            |txn| {
                if txn.open_table(SESSIONS)?.get(id.as_str())?.is_none() {
                    return Ok(false);
                }
                let mut table = txn.open_table(KEEP_ALIVE)?;
                match until {
                    Some(until) => {
                        table.insert(id.as_str(), codec::to_unix_ms(until))?;
                    }
                    None => {
                        table.remove(id.as_str())?;
                    }
                }
                Ok(true)
            },
        )
    }

    /// Every session's keep-alive, past ones included (they count for nothing).
    pub fn keep_alives(&self) -> Result<BTreeMap<SessionId, SystemTime>, StoreError> {
        self.read(
            || "reading keep-alives".to_owned(),
            |txn| {
                let table = txn.open_table(KEEP_ALIVE)?;
                let mut out = BTreeMap::new();
                for entry in table.iter()? {
                    let (key, ms) = entry?;
                    let id = parse_id("keep_alive", key.value(), key.value())?;
                    out.insert(id, codec::from_unix_ms(ms.value()));
                }
                Ok(out)
            },
        )
    }

    /// Notes activity on a session at `when`. Memory only, no IO: cheap enough for every
    /// proxied request. Becomes durable with the next [`Self::flush_activity`].
    pub fn record_activity(&self, id: &SessionId, when: SystemTime) {
        let mut pending = self.inner.lock_pending();
        match pending.get_mut(id) {
            Some(t) => *t = (*t).max(when),
            None => {
                pending.insert(id.clone(), when);
            }
        }
    }

    /// The last recorded activity of a session, flushed or not; `None` if there has been none
    /// since it was created.
    pub fn last_activity(&self, id: &SessionId) -> Result<Option<SystemTime>, StoreError> {
        let stored = self.read(
            || format!("reading the activity of session {id}"),
            |txn| {
                let activity = txn.open_table(ACTIVITY)?;
                Ok(activity
                    .get(id.as_str())?
                    .map(|ms| codec::from_unix_ms(ms.value())))
            },
        )?;
        let pending = self.inner.lock_pending().get(id).copied();
        Ok(stored.max(pending))
    }

    /// The last recorded activity of every session that has any, flushed or not: what the idle
    /// reaper compares with its timeout (falling back to `state_changed_at` for sessions
    /// without activity).
    pub fn activity(&self) -> Result<BTreeMap<SessionId, SystemTime>, StoreError> {
        let pending = self.inner.lock_pending().clone();
        self.read(
            || "reading session activity".to_owned(),
            |txn| {
                let sessions = txn.open_table(SESSIONS)?;
                let activity = txn.open_table(ACTIVITY)?;
                let mut out = BTreeMap::new();
                for entry in activity.iter()? {
                    let (key, ms) = entry?;
                    let id = parse_id("activity", key.value(), key.value())?;
                    out.insert(id, codec::from_unix_ms(ms.value()));
                }
                for (id, when) in pending {
                    if sessions.get(id.as_str())?.is_some() {
                        let t = out.entry(id).or_insert(when);
                        *t = (*t).max(when);
                    }
                }
                Ok(out)
            },
        )
    }

    /// Writes the activity recorded in memory, in one write transaction, and returns how many
    /// sessions' times moved forward. Activity of sessions that no longer exist is dropped.
    pub fn flush_activity(&self) -> Result<usize, StoreError> {
        self.inner.flush_activity()
    }

    /// Looks for violations of the invariants in the module documentation; an empty list when
    /// the state is consistent.
    pub fn check(&self) -> Result<Vec<Inconsistency>, StoreError> {
        self.read(
            || "checking the state database".to_owned(),
            |txn| {
                let sessions = txn.open_table(SESSIONS)?;
                let tokens = txn.open_table(TOKENS)?;
                let activity = txn.open_table(ACTIVITY)?;
                let mut found = Vec::new();
                let mut records = BTreeMap::new();
                for entry in sessions.iter()? {
                    let (key, value) = entry?;
                    let record = decode_record(key.value(), value.value())?;
                    records.insert(record.spec.id.as_str().to_owned(), record);
                }
                for (name, record) in &records {
                    let id = &record.spec.id;
                    if tokens.get(name.as_str())?.is_none() {
                        found.push(Inconsistency::MissingToken(id.clone()));
                    }
                }
                for entry in tokens.iter()? {
                    let (key, _) = entry?;
                    if !records.contains_key(key.value()) {
                        found.push(Inconsistency::OrphanToken(key.value().to_owned()));
                    }
                }
                for entry in activity.iter()? {
                    let (key, _) = entry?;
                    if !records.contains_key(key.value()) {
                        found.push(Inconsistency::OrphanActivity(key.value().to_owned()));
                    }
                }
                Ok(found)
            },
        )
    }

    /// Runs `f` on tokio's blocking pool: how async code calls the store. A panic in `f` is
    /// resumed in the caller.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::Task(e)),
        }
    }

    fn write<T>(
        &self,
        action: impl FnOnce() -> String,
        body: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.inner.write(action, body)
    }

    fn read<T>(
        &self,
        action: impl FnOnce() -> String,
        body: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let run = || -> Result<T, StoreError> {
            let txn = self.inner.db.begin_read()?;
            body(&txn)
        };
        run().map_err(|e| e.context(action))
    }
}

impl Inner {
    fn lock_pending(&self) -> MutexGuard<'_, HashMap<SessionId, SystemTime>> {
        // The map only holds times; a panic elsewhere cannot leave it half-updated.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write<T>(
        &self,
        action: impl FnOnce() -> String,
        body: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let run = || -> Result<T, StoreError> {
            let txn = self.db.begin_write()?;
            let out = body(&txn)?;
            txn.commit()?;
            Ok(out)
        };
        run().map_err(|e| e.context(action))
    }

    fn flush_activity(&self) -> Result<usize, StoreError> {
        let pending = std::mem::take(&mut *self.lock_pending());
        if pending.is_empty() {
            return Ok(0);
        }
        let result = self.write(
            || "saving session activity".to_owned(),
            |txn| {
                let sessions = txn.open_table(SESSIONS)?;
                let mut activity = txn.open_table(ACTIVITY)?;
                let mut moved = 0;
                for (id, when) in &pending {
                    if sessions.get(id.as_str())?.is_none() {
                        continue;
                    }
                    let ms = codec::to_unix_ms(*when);
                    let stored = activity.get(id.as_str())?.map(|v| v.value());
                    if stored.is_none_or(|stored| stored < ms) {
                        activity.insert(id.as_str(), ms)?;
                        moved += 1;
                    }
                }
                Ok(moved)
            },
        );
        if result.is_err() {
            // Keep what we could not write for the next flush.
            let mut current = self.lock_pending();
            for (id, when) in pending {
                let t = current.entry(id).or_insert(when);
                *t = (*t).max(when);
            }
        }
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.flush_activity() {
            tracing::warn!("state database {}: {e}", self.path.display());
        }
    }
}

/// Now, truncated to the millisecond precision of the stored format, so that a record read
/// back equals the one that was written.
fn now() -> SystemTime {
    codec::from_unix_ms(codec::to_unix_ms(SystemTime::now()))
}

/// Every record of the table, in id order.
fn all_records(
    sessions: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<SessionRecord>, StoreError> {
    let mut out = Vec::new();
    for entry in sessions.iter()? {
        let (key, value) = entry?;
        out.push(decode_record(key.value(), value.value())?);
    }
    Ok(out)
}

fn encode_record(record: &SessionRecord) -> Result<Vec<u8>, StoreError> {
    codec::encode(RECORD_VERSION, record).map_err(|source| StoreError::Encode {
        what: "record",
        id: record.spec.id.clone(),
        source,
    })
}

/// Reads a record of any version this octod knows: version 2's JSON lacks `name` and
/// `description` (read as empty: only the schema-3 migration reads such records, and names
/// them); version 1's also has the `spec.ports` that later versions ignore.
fn decode_record(key: &str, bytes: &[u8]) -> Result<SessionRecord, DecodeError> {
    codec::decode("sessions", key, RECORD_VERSION, bytes)
}

/// Schema `from` → [`SCHEMA_VERSION`], inside the caller's transaction (all or nothing with
/// the new schema version): from 1, drops the `ports` table; from 1 or 2, names every session
/// (`default_name` of its template); then rewrites every record as the current version.
fn migrate(
    txn: &WriteTransaction,
    from: u64,
    default_name: &dyn Fn(&str) -> SessionName,
) -> Result<(), StoreError> {
    let mut sessions = txn.open_table(SESSIONS)?;
    let mut records = Vec::new();
    for entry in sessions.iter()? {
        let (key, value) = entry?;
        records.push(decode_record(key.value(), value.value())?);
    }
    for record in &mut records {
        if from < 3 && record.name.is_empty() {
            record.name = default_name(&record.spec.template).into_string();
        }
        sessions.insert(record.spec.id.as_str(), encode_record(record)?.as_slice())?;
    }
    if from < 2 {
        let old_ports: redb::TableDefinition<u16, &str> = TableDefinition::new(OLD_PORTS);
        txn.delete_table(old_ports)?;
    }
    tracing::info!(
        sessions = records.len(),
        from,
        to = SCHEMA_VERSION,
        "state database migrated: host ports dropped (from 1), sessions named (from 2)"
    );
    Ok(())
}

fn get_record(
    sessions: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &SessionId,
) -> Result<Option<SessionRecord>, StoreError> {
    match sessions.get(id.as_str())? {
        Some(bytes) => Ok(Some(decode_record(id.as_str(), bytes.value())?)),
        None => Ok(None),
    }
}

fn parse_id(table: &'static str, key: &str, value: &str) -> Result<SessionId, DecodeError> {
    value.parse().map_err(|source| DecodeError::BadId {
        table,
        key: key.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
