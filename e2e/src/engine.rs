//! `octo-e2e engine …`: the session engine (`octod::engine`) against the real systemd user
//! manager and Podman, with a minimal session image built from the host's busybox and the
//! real gateway (`octo-fileserver`), which serves on the socket systemd passes in as fd 3.
//!
//! Phases: `lifecycle` (create → running → stop → resume → delete, nothing left behind),
//! `concurrent` (20 creates at once), `bad-input`, `crash` (kill -9 of a worker during create
//! and delete, then the reconciler converges), `idle` (idle stop keeps the socket listening;
//! a connection wakes the session without octod), `reboot-setup` / `reboot-check` (after a
//! reboot a running session is back with its files, an idle one's socket listens and wakes
//! it, a stopped one stays stopped).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use octod::engine::{CreateRequest, Engine, EngineConfig, EngineError};
use octod::podman::Podman;
use octod::render::{HealthConfig, LlmMount, RenderConfig, SessionNames};
use octod::session::{DesiredState, SessionId, SessionState};
use octod::store::Store;
use octod::systemd::{ActiveState, Systemd};

use crate::util::{self, say};

/// The stand-in session image (a new tag for the gateway: an older image of the same host
/// had three httpd on published ports).
pub(crate) const IMAGE: &str = "localhost/octo-e2e-session:gateway";
const TEMPLATE: &str = "coding-copilot";

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Phase {
    /// Create → running → stop → resume → delete; a file survives stop/resume.
    Lifecycle,
    /// 20 sessions created at once all run, each behind its own socket, none listening on a
    /// host port.
    Concurrent,
    /// Unknown template, invalid id, image missing: typed errors, no change.
    BadInput,
    /// kill -9 of the engine at random points during create and delete; the reconciler
    /// converges with no orphan left.
    Crash {
        #[arg(long, default_value_t = 12)]
        rounds: u32,
    },
    /// Before a reboot: one running, one idle and one stopped session, each with a file.
    RebootSetup,
    /// After the reboot: the running one came back by itself, the idle one's socket listens
    /// and a connection wakes it, the stopped one stays down.
    RebootCheck,
    /// Idle stop: a session without activity for the idle time is idle-stopped (its socket
    /// listening), an active one is not; a connection to the socket wakes it without octod;
    /// the background reconciler notices a unit stopped behind its back.
    Idle,
    /// Upgrade in place: a running session whose container unit octod would render
    /// differently (beyond `[Install]`) is restarted once by the reconciler, home kept.
    UpgradeRestart,
    /// Issue 18 part 4: a session idle by its traffic is not idle-stopped while its agent
    /// (a stand-in opencode behind the real gateway) says it is in a turn, and stops once the
    /// turn has ended and the idle time has passed.
    Agent,
    /// Used by `crash`: run one operation, to be killed midway.
    Worker { op: String, id: String },
}

pub(crate) async fn run(phase: Phase) -> anyhow::Result<()> {
    match phase {
        Phase::Lifecycle => lifecycle().await,
        Phase::Concurrent => concurrent().await,
        Phase::BadInput => bad_input().await,
        Phase::Crash { rounds } => crash(rounds).await,
        Phase::RebootSetup => reboot_setup().await,
        Phase::RebootCheck => reboot_check().await,
        Phase::Idle => idle().await,
        Phase::Agent => agent().await,
        Phase::UpgradeRestart => upgrade_restart().await,
        Phase::Worker { op, id } => worker(&op, &id).await,
    }
}

fn home() -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(
        std::env::var("HOME").context("HOME is not set")?,
    ))
}

/// The engine as octod would build it, over this host's real parts, with the busybox test
/// image's health check and a test template.
pub(crate) async fn engine_with(image: &str) -> anyhow::Result<Engine> {
    engine_configured(image, |_| {}).await
}

/// [`engine_with`], with a last say on the engine's configuration.
pub(crate) async fn engine_configured(
    image: &str,
    adjust: impl FnOnce(&mut EngineConfig),
) -> anyhow::Result<Engine> {
    util::ensure_session_test_image(IMAGE)?;
    let base = home()?.join("e2e");
    let templates = base.join("templates");
    std::fs::create_dir_all(templates.join(TEMPLATE))?;
    std::fs::write(
        templates.join(TEMPLATE).join("AGENTS.md"),
        "# test template\n",
    )?;
    let mut render = RenderConfig::new(&templates);
    render.health = HealthConfig {
        cmd: health_cmd(),
        interval: Duration::from_secs(1),
        start_period: Duration::from_secs(5),
        retries: 3,
        timeout: Duration::from_secs(5),
    };
    // Short, so that a start that hangs at boot is restarted (Restart=on-failure) well
    // within the reboot check's wait.
    render.start_timeout = Duration::from_secs(40);
    engine_from(
        EngineSetup {
            image: image.to_owned(),
            redb: base.join("octod.redb"),
            render,
        },
        adjust,
    )
    .await
}

/// The engine over the real session image (`octo-e2e image`): the shipped templates, the
/// production health check (the image's `octo-healthcheck`) and the LLM provider's secret,
/// with a store of its own.
pub(crate) async fn engine_for_image(
    image: &str,
    templates: &Path,
    llm: LlmMount,
) -> anyhow::Result<Engine> {
    let base = home()?.join("e2e");
    std::fs::create_dir_all(&base)?;
    let mut render = RenderConfig::new(templates);
    render.llm = Some(llm);
    engine_from(
        EngineSetup {
            image: image.to_owned(),
            redb: base.join("octod-image.redb"),
            render,
        },
        |_| {},
    )
    .await
}

/// What differs between the engines of the checks.
struct EngineSetup {
    image: String,
    redb: PathBuf,
    render: RenderConfig,
}

async fn engine_from(
    setup: EngineSetup,
    adjust: impl FnOnce(&mut EngineConfig),
) -> anyhow::Result<Engine> {
    let store = Store::open(setup.redb)?;
    let systemd = Systemd::connect_user().await?;
    let podman = Podman::connect_user(&systemd).await?;
    let mut config = EngineConfig {
        quadlet_dir: util::quadlet_dir()?.join("octo"),
        systemd_user_dir: systemd_user_dir()?,
        runtime_dir: octod::serve::runtime_dir(),
        reports_dir: octod::serve::worker_reports_dir(),
        render: setup.render,
        image: setup.image,
        stop_timeout: Duration::from_secs(60),
        idle_timeout: None,
        keep_alive_max: Duration::from_secs(24 * 3600),
        limits: octod::limits::LimitsPolicy::default(),
        admission: octod::limits::Admission::default(),
        state_dir: None,
    };
    adjust(&mut config);
    Ok(Engine::new(store, systemd, podman, config).await?)
}

async fn engine() -> anyhow::Result<Engine> {
    engine_with(IMAGE).await
}

/// The user's systemd directory, where session sockets are.
fn systemd_user_dir() -> anyhow::Result<PathBuf> {
    Ok(home()?.join(".config/systemd/user"))
}

/// The test image's health check: its httpd answers inside the container.
pub(crate) fn health_cmd() -> String {
    "wget -q -O /dev/null http://127.0.0.1:41820/".to_owned()
}

pub(crate) fn request(id: &str) -> CreateRequest {
    CreateRequest {
        id: Some(id.to_owned()),
        owner: "alice".into(),
        template: TEMPLATE.into(),
        limits: None,
        max_per_owner: None,
    }
}

fn exec(container: &str, script: &str) -> anyhow::Result<String> {
    util::run(Command::new("podman").args(["exec", container, "/bin/sh", "-c", script]))
}

/// The gateway answers on the session's socket (with the store's token, which reached the
/// container as a file only), and the container publishes no port.
async fn check_running(engine: &Engine, id: &SessionId) -> anyhow::Result<()> {
    let record = engine.get(id).await?;
    ensure!(
        record.state == SessionState::Running,
        "{id} is {:?}",
        record.state
    );
    let token = engine.store().token(id)?;
    let socket = engine.socket_path(id);
    let (status, _) = util::unix_get(&socket, "/api/list?path=/", Some(token.expose()))
        .with_context(|| format!("session {id}"))?;
    ensure!(
        status == 200,
        "{id}: the gateway answered {status} with the token"
    );
    let (status, _) = util::unix_get(&socket, "/api/list?path=/", None)?;
    ensure!(
        status == 401,
        "{id}: the gateway answered {status} without a token"
    );
    let names = SessionNames::new(id);
    let inside = exec(&names.container, "cat /run/secrets/octo-token")?;
    ensure!(
        inside.trim() == token.expose(),
        "the container's token file differs from the store's"
    );
    let env = exec(&names.container, "env")?;
    ensure!(
        !env.contains(token.expose()),
        "the token is in the container's environment"
    );
    let published = util::run(Command::new("podman").args(["port", &names.container]))?;
    ensure!(
        published.trim().is_empty(),
        "{id} publishes ports: {published}"
    );
    Ok(())
}

/// Whether the session's socket unit is active and its enablement link present.
async fn socket_state(engine: &Engine, id: &SessionId) -> anyhow::Result<(bool, bool)> {
    let names = SessionNames::new(id);
    let systemd = Systemd::connect_user().await?;
    let active = systemd.unit_state(&names.socket_unit).await?.is_active();
    let linked = systemd_user_dir()?
        .join("sockets.target.wants")
        .join(&names.socket_unit)
        .symlink_metadata()
        .is_ok();
    let _ = engine;
    Ok((active, linked))
}

/// Nothing named after the session is left: files, units, socket, container, volume, secret.
pub(crate) async fn check_gone(engine: &Engine, id: &SessionId) -> anyhow::Result<()> {
    let names = SessionNames::new(id);
    let dir = util::quadlet_dir()?.join("octo");
    for file in [&names.container_file, &names.volume_file] {
        ensure!(!dir.join(file).exists(), "{file} is left");
    }
    let user = systemd_user_dir()?;
    for path in [
        user.join(&names.socket_unit),
        user.join("sockets.target.wants").join(&names.socket_unit),
        engine.socket_path(id),
    ] {
        ensure!(
            path.symlink_metadata().is_err(),
            "{} is left",
            path.display()
        );
    }
    ensure!(engine.get(id).await.is_err(), "the record of {id} is left");
    let systemd = Systemd::connect_user().await?;
    for unit in [&names.service, &names.socket_unit, &names.volume_service] {
        let state = systemd.unit_state(unit).await?;
        ensure!(!state.exists(), "{unit} still loaded: {state:?}");
    }
    let podman = Podman::connect_user(&systemd).await?;
    ensure!(
        !podman.secret_exists(&names.token_secret).await?,
        "secret left"
    );
    ensure!(!podman.volume_exists(&names.volume).await?, "volume left");
    let containers =
        util::run(Command::new("podman").args(["ps", "-a", "--format", "{{.Names}}"]))?;
    ensure!(
        !containers.lines().any(|c| c == names.container),
        "container {} left",
        names.container
    );
    Ok(())
}

/// No `octo-*` artifact exists at all (after cleanup of every session).
async fn check_no_orphans(engine: &Engine) -> anyhow::Result<()> {
    let dir = util::quadlet_dir()?.join("octo");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let left: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        ensure!(left.is_empty(), "files left in {}: {left:?}", dir.display());
    }
    let user = systemd_user_dir()?;
    for dir in [user.clone(), user.join("sockets.target.wants")] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let left: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("octo-"))
                .collect();
            ensure!(left.is_empty(), "files left in {}: {left:?}", dir.display());
        }
    }
    ensure!(
        engine.list().await?.is_empty(),
        "sessions left in the store"
    );
    for (what, args) in [
        ("secrets", &["secret", "ls", "--format", "{{.Name}}"][..]),
        ("containers", &["ps", "-a", "--format", "{{.Names}}"][..]),
        ("volumes", &["volume", "ls", "--format", "{{.Name}}"][..]),
    ] {
        let out = util::run(Command::new("podman").args(args))?;
        let octo: Vec<&str> = out.lines().filter(|l| l.starts_with("octo-")).collect();
        ensure!(octo.is_empty(), "{what} left: {octo:?}");
    }
    let systemd = Systemd::connect_user().await?;
    let units = systemd.list_units(&["octo-*"]).await?;
    let live: Vec<_> = units
        .iter()
        .filter(|(_, state)| **state != ActiveState::Inactive)
        .collect();
    ensure!(live.is_empty(), "units left: {live:?}");
    Ok(())
}

async fn lifecycle() -> anyhow::Result<()> {
    let engine = engine().await?;
    let id: SessionId = "life1".parse()?;
    let started = std::time::Instant::now();
    let record = engine
        .create(request(id.as_str()))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    say(format!(
        "create → running in {:.2?}: socket {}",
        started.elapsed(),
        engine.socket_path(&record.spec.id).display()
    ));
    check_running(&engine, &id).await?;
    ensure!(
        socket_state(&engine, &id).await? == (true, true),
        "a running session's socket must listen and be enabled"
    );
    let names = SessionNames::new(&id);
    let unit = std::fs::read_to_string(
        util::quadlet_dir()?
            .join("octo")
            .join(&names.container_file),
    )?;
    ensure!(
        unit.contains("WantedBy=default.target"),
        "a running session must start at boot"
    );
    exec(&names.container, "echo kept > /home/dev/keep.txt")?;

    let record = engine.stop(&id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(
        record.state == SessionState::Stopped,
        "after stop: {:?}",
        record.state
    );
    let unit = std::fs::read_to_string(
        util::quadlet_dir()?
            .join("octo")
            .join(&names.container_file),
    )?;
    ensure!(
        !unit.contains("WantedBy="),
        "a stopped session must not start at boot"
    );
    ensure!(
        socket_state(&engine, &id).await? == (false, false),
        "a stopped session's socket must be stopped and disabled"
    );
    ensure!(
        util::unix_get(&engine.socket_path(&id), "/health", None).is_err(),
        "a stopped session's socket still answers"
    );
    say("stop → stopped; no [Install]; socket stopped and disabled, nothing answers");

    let started = std::time::Instant::now();
    engine
        .resume(&id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    say(format!("resume → running in {:.2?}", started.elapsed()));
    check_running(&engine, &id).await?;
    ensure!(
        socket_state(&engine, &id).await? == (true, true),
        "a resumed session's socket must listen and be enabled"
    );
    let kept = exec(&names.container, "cat /home/dev/keep.txt")?;
    ensure!(
        kept.trim() == "kept",
        "the workspace file did not survive stop/resume"
    );
    say("/home/dev/keep.txt survived stop/resume");

    // A repeated request joins the one in flight.
    let (a, b) = tokio::join!(engine.stop(&id), engine.stop(&id));
    ensure!(a.is_ok() && b.is_ok(), "joined stops: {a:?} {b:?}");

    engine
        .delete(&id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    check_gone(&engine, &id).await?;
    say("delete: no file, unit, socket, container, volume or secret left");
    Ok(())
}

async fn concurrent() -> anyhow::Result<()> {
    let engine = engine().await?;
    let ids: Vec<String> = (0..20).map(|i| format!("conc{i}")).collect();
    let started = std::time::Instant::now();
    // The reconciler runs over and over meanwhile, as its timer and unit signals make it do:
    // a session being created is never an orphan (regression: its volume unit was removed
    // when a pass read the store just before the create and scanned the files just after).
    let reconciling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reconciler = tokio::spawn({
        let engine = engine.clone();
        let reconciling = std::sync::Arc::clone(&reconciling);
        async move {
            let mut passes = 0_u32;
            let mut removed = Vec::new();
            while reconciling.load(std::sync::atomic::Ordering::SeqCst) {
                removed.extend(engine.reconcile().await.orphans_removed);
                passes += 1;
            }
            (passes, removed)
        }
    });
    let results = futures_join_all(ids.iter().map(|id| {
        let engine = engine.clone();
        let id = id.clone();
        async move { engine.create(request(&id)).await }
    }))
    .await;
    reconciling.store(false, std::sync::atomic::Ordering::SeqCst);
    let (passes, removed) = reconciler.await?;
    ensure!(
        removed.is_empty(),
        "the reconciler removed parts of sessions being created: {removed:?}"
    );
    say(format!("{passes} reconciler passes ran during the creates"));
    // The race itself, made certain: a pass that read the store before these sessions existed
    // scans for leftovers after they do. Their records (or their operations in flight) keep them.
    let stale = engine
        .remove_orphans_seen_from(&BTreeSet::new())
        .await
        .orphans_removed;
    ensure!(
        stale.is_empty(),
        "a reconcile pass with a view of the store older than the sessions removed their parts: {stale:?}"
    );
    let mut sockets = BTreeSet::new();
    for (id, result) in ids.iter().zip(results) {
        let record = result.map_err(|e| anyhow::anyhow!("{id}: {e}"))?;
        ensure!(
            record.state == SessionState::Running,
            "{id}: {:?}",
            record.state
        );
        sockets.insert(engine.socket_path(&record.spec.id));
    }
    ensure!(sockets.len() == 20, "sockets are shared: {sockets:?}");
    say(format!(
        "20 concurrent creates: all running in {:.2?}, 20 distinct sockets",
        started.elapsed()
    ));
    // Each answers on its own socket with its own token; none publishes a host port.
    for id in &ids {
        check_running(&engine, &id.parse()?).await?;
    }
    say("each gateway answers on its socket with its token; no container publishes a port");
    let results = futures_join_all(ids.iter().map(|id| {
        let engine = engine.clone();
        let id: Result<SessionId, _> = id.parse();
        async move {
            let id = id.map_err(|e| std::sync::Arc::new(EngineError::InvalidId(e)))?;
            engine.delete(&id).await
        }
    }))
    .await;
    for result in results {
        result.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    check_no_orphans(&engine).await?;
    say("all 20 deleted, nothing left");
    Ok(())
}

async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        match handle.await {
            Ok(value) => out.push(value),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

async fn bad_input() -> anyhow::Result<()> {
    let engine = engine().await?;
    let before = snapshot(&engine).await?;
    let expect = |what: &str,
                  result: Result<_, std::sync::Arc<EngineError>>,
                  ok: fn(&EngineError) -> bool|
     -> anyhow::Result<()> {
        match result {
            Ok(_) => bail!("{what}: accepted"),
            Err(e) if ok(&e) => {
                say(format!("{what}: {e}"));
                Ok(())
            }
            Err(e) => bail!("{what}: wrong error: {e:?}"),
        }
    };
    let mut req = request("bad1");
    req.template = "no-such-template".into();
    expect("unknown template", engine.create(req).await, |e| {
        matches!(e, EngineError::UnknownTemplate(_))
    })?;
    let mut req = request("bad1");
    req.template = "../etc".into();
    expect(
        "template escaping the directory",
        engine.create(req).await,
        |e| matches!(e, EngineError::UnknownTemplate(_)),
    )?;
    expect("invalid id", engine.create(request("Bad/Id")).await, |e| {
        matches!(e, EngineError::InvalidId(_))
    })?;
    drop(engine);

    let missing = engine_with("localhost/octo-no-such-image:1").await?;
    expect(
        "image missing",
        missing.create(request("bad2")).await,
        |e| matches!(e, EngineError::ImageMissing(_)),
    )?;
    ensure!(
        snapshot(&missing).await? == before,
        "bad input changed something"
    );
    Ok(())
}

/// Sessions in the store and files in the unit directory.
async fn snapshot(engine: &Engine) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let sessions = engine
        .list()
        .await?
        .into_iter()
        .map(|r| r.spec.id.to_string())
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(util::quadlet_dir()?.join("octo"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    Ok((sessions, files))
}

async fn worker(op: &str, id: &str) -> anyhow::Result<()> {
    let engine = engine().await?;
    match op {
        "create" => drop(engine.create(request(id)).await),
        "delete" => drop(engine.delete(&id.parse()?).await),
        other => bail!("unknown worker op {other}"),
    }
    Ok(())
}

/// Kills a worker after a pseudo-random delay (deterministic per round, spread over the
/// operation's length), then lets a fresh engine reconcile.
async fn crash(rounds: u32) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    for round in 0..rounds {
        let id = format!("crash{round}");
        for op in ["create", "delete"] {
            // Spread kill points over 150 ms–1.35 s, across the worker's start-up and the
            // operation: before the record, mid-files, mid-start, mid-delete.
            let delay = Duration::from_millis(
                u64::from((round * 7 + if op == "create" { 0 } else { 5 }) % 13) * 100 + 150,
            );
            let mut child = Command::new(&exe)
                .args(["engine", "worker", op, &id])
                .spawn()
                .context("starting a worker")?;
            tokio::time::sleep(delay).await;
            let _ = child.kill();
            let _ = child.wait();
            say(format!("round {round}: killed `{op} {id}` after {delay:?}"));
            let engine = engine().await?;
            converge(&engine).await?;
            let record = engine.get(&id.parse()?).await.ok();
            // Either the operation never got as far as its first transaction (the session is
            // as before), or it was recorded and the reconciler finished it: a created session
            // runs, a deleted one is gone. Nothing is left half-way.
            if let Some(record) = record {
                ensure!(
                    record.state == SessionState::Running,
                    "after a killed {op}: {:?}",
                    record.state
                );
                check_running(&engine, &record.spec.id).await?;
            }
        }
        // Whatever the crash left, deleting now leaves nothing.
        let engine = engine().await?;
        if let Ok(record) = engine.get(&id.parse()?).await {
            engine
                .delete(&record.spec.id)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        converge(&engine).await?;
        check_no_orphans(&engine).await?;
    }
    say(format!(
        "{rounds} rounds of kill -9 during create and delete: converged, no orphans"
    ));
    Ok(())
}

/// Reconciles until a pass changes nothing and no session is between states (a start job
/// that the killed worker began goes on in systemd), within a bound.
async fn converge(engine: &Engine) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let report = engine.reconcile().await;
        ensure!(
            report.errors.is_empty(),
            "reconcile errors: {:?}",
            report.errors
        );
        if !report.is_quiet() {
            say(format!("reconciled: {report:?}"));
        }
        let settled = engine
            .list()
            .await?
            .iter()
            .all(|r| matches!(r.state, SessionState::Running | SessionState::Stopped));
        if report.is_quiet() && settled {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the reconciler did not converge within 180 s: {:?}",
                engine.list().await?
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits for the session's service to be active.
async fn service_active(systemd: &Systemd, id: &SessionId, within: Duration) -> anyhow::Result<()> {
    let service = SessionNames::new(id).service;
    util::eventually(within, &format!("{service} active"), async || {
        let state = systemd.unit_state(&service).await?;
        ensure!(state.is_active(), "{service} is {}", state.active);
        Ok(())
    })
    .await
}

/// An idle session: recorded stopped with desired idle, its service down, its socket
/// listening and enabled; then a connection to the socket wakes it with no engine involved
/// (systemd starts the service and the gateway answers), and a reconcile pass records it
/// running, desired running, with `[Install]` back.
async fn check_idle_then_wake(engine: &Engine, id: &SessionId) -> anyhow::Result<()> {
    let record = engine.get(id).await?;
    ensure!(
        record.state == SessionState::Stopped && record.spec.desired == DesiredState::Idle,
        "{id} is not idle: {:?}, desired {:?}",
        record.state,
        record.spec.desired
    );
    let names = SessionNames::new(id);
    let systemd = Systemd::connect_user().await?;
    let service = systemd.unit_state(&names.service).await?;
    ensure!(!service.is_active(), "{id}'s service runs: {service:?}");
    ensure!(
        socket_state(engine, id).await? == (true, true),
        "an idle session's socket must listen and be enabled"
    );
    let unit_path = util::quadlet_dir()?
        .join("octo")
        .join(&names.container_file);
    let unit = std::fs::read_to_string(&unit_path)?;
    ensure!(
        !unit.contains("WantedBy="),
        "an idle session must not start at boot by itself"
    );
    // As `octo`, like octod's proxy would, but octod is not asked: systemd starts it.
    let started = std::time::Instant::now();
    let (status, _) = util::unix_get(&engine.socket_path(id), "/health", None)?;
    ensure!(status == 200, "the woken gateway answered {status}");
    say(format!(
        "{id}: a connection to its socket woke it; first answer after {:.2?}",
        started.elapsed()
    ));
    service_active(&systemd, id, Duration::from_secs(60)).await?;
    let report = engine.reconcile().await;
    ensure!(
        report.woken.contains(id),
        "the reconciler did not record the wake: {report:?}"
    );
    let record = engine.get(id).await?;
    ensure!(
        record.state == SessionState::Running && record.spec.desired == DesiredState::Running,
        "after the wake: {:?}, desired {:?}",
        record.state,
        record.spec.desired
    );
    let unit = std::fs::read_to_string(&unit_path)?;
    ensure!(
        unit.contains("WantedBy=default.target"),
        "a woken session must start at boot again"
    );
    check_running(engine, id).await?;
    say(format!(
        "{id}: recorded running (desired running, [Install] back)"
    ));
    Ok(())
}

async fn reboot_setup() -> anyhow::Result<()> {
    let engine = engine().await?;
    for id in ["bootrun", "bootidle", "bootstop"] {
        engine
            .create(request(id))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        exec(
            &format!("octo-{id}"),
            &format!("echo {id} > /home/dev/boot.txt"),
        )?;
    }
    engine
        .idle_stop(&"bootidle".parse()?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    engine
        .stop(&"bootstop".parse()?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    say("bootrun is running, bootidle idle, bootstop stopped; each wrote /home/dev/boot.txt");
    Ok(())
}

async fn reboot_check() -> anyhow::Result<()> {
    let systemd = Systemd::connect_user().await?;
    let running: SessionId = "bootrun".parse()?;
    service_active(&systemd, &running, Duration::from_secs(150)).await?;
    say("bootrun came back by itself (WantedBy=default.target + linger)");
    let engine = engine().await?;
    // The idle one first, before any reconcile pass: only systemd has been at work.
    let idle: SessionId = "bootidle".parse()?;
    let service = systemd
        .unit_state(&SessionNames::new(&idle).service)
        .await?;
    ensure!(
        !service.is_active(),
        "bootidle started at boot: {service:?}"
    );
    check_idle_then_wake(&engine, &idle).await?;
    let text = exec(
        &SessionNames::new(&idle).container,
        "cat /home/dev/boot.txt",
    )?;
    ensure!(
        text.trim() == "bootidle",
        "bootidle's file is gone after the reboot"
    );
    say("bootidle: its socket listened after the reboot; woken with its file");
    let report = engine.reconcile().await;
    ensure!(
        report.errors.is_empty(),
        "reconcile errors: {:?}",
        report.errors
    );
    ensure!(
        report.started.is_empty() && report.restarted.is_empty(),
        "the reconciler had to start something: {report:?}"
    );
    check_running(&engine, &running).await?;
    let text = exec(
        &SessionNames::new(&running).container,
        "cat /home/dev/boot.txt",
    )?;
    ensure!(
        text.trim() == "bootrun",
        "the workspace file is gone after the reboot"
    );
    let stopped: SessionId = "bootstop".parse()?;
    let stop = SessionNames::new(&stopped);
    let state = systemd.unit_state(&stop.service).await?;
    ensure!(!state.is_active(), "bootstop started at boot: {state:?}");
    ensure!(
        socket_state(&engine, &stopped).await? == (false, false),
        "bootstop's socket listens after the reboot"
    );
    ensure!(
        engine.get(&stopped).await?.state == SessionState::Stopped,
        "bootstop not stopped"
    );
    say("bootstop stayed stopped, its socket too");
    engine
        .resume(&stopped)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = exec(&stop.container, "cat /home/dev/boot.txt")?;
    ensure!(
        text.trim() == "bootstop",
        "the stopped session's file is gone after the reboot"
    );
    say("bootstop resumed with its file after the reboot");
    for id in ["bootrun", "bootidle", "bootstop"] {
        engine
            .delete(&id.parse()?)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    check_no_orphans(&engine).await?;
    Ok(())
}

async fn idle() -> anyhow::Result<()> {
    let idle_for = Duration::from_secs(3);
    let engine = engine_configured(IMAGE, |config| {
        config.idle_timeout = Some(idle_for);
    })
    .await?;
    let (busy, quiet): (SessionId, SessionId) = ("idlebusy".parse()?, "idlequiet".parse()?);
    for id in [&busy, &quiet] {
        engine
            .create(request(id.as_str()))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    // `busy` keeps having activity (as the proxy would record it); `quiet` has none.
    let deadline = std::time::Instant::now() + idle_for + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        engine.record_activity(&busy);
        let stopped = engine.reap_idle().await;
        ensure!(
            !stopped.contains(&busy),
            "a session with activity was stopped as idle"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(
        engine.get(&busy).await?.state == SessionState::Running,
        "the busy session stopped"
    );
    say(format!(
        "idle stop: quiet session idle after {idle_for:?} without activity; busy one kept"
    ));
    check_idle_then_wake(&engine, &quiet).await?;

    // A unit stopped behind the engine's back: the background reconciler's PropertiesChanged
    // watcher notices it long before its periodic pass (an hour here) and starts it again.
    let background = engine.spawn_background(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let systemd = Systemd::connect_user().await?;
    let unit = SessionNames::new(&busy).service;
    engine.record_activity(&busy);
    systemd.stop(&unit, Duration::from_secs(60)).await?;
    util::eventually(
        Duration::from_secs(60),
        "the stopped unit restarted by the reconciler",
        async || {
            engine.record_activity(&busy);
            let state = systemd.unit_state(&unit).await?;
            ensure!(state.is_active(), "{unit} is {}", state.active);
            Ok(())
        },
    )
    .await?;
    say("a unit stopped behind the engine's back was started again on its signal");

    // With the background reconciler running, a wake is recorded on the unit's signal.
    engine
        .idle_stop(&quiet)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    engine.record_activity(&quiet);
    let (status, _) = util::unix_get(&engine.socket_path(&quiet), "/health", None)?;
    ensure!(status == 200, "the woken gateway answered {status}");
    util::eventually(
        Duration::from_secs(30),
        "the wake recorded by the background reconciler",
        async || {
            engine.record_activity(&busy);
            engine.record_activity(&quiet);
            let record = engine.get(&quiet).await?;
            ensure!(
                record.state == SessionState::Running
                    && record.spec.desired == DesiredState::Running,
                "{:?}, desired {:?}",
                record.state,
                record.spec.desired
            );
            Ok(())
        },
    )
    .await?;
    say("with the engine's reconciler running, the wake was recorded on the unit's signal");
    background.abort();
    for id in [&busy, &quiet] {
        engine
            .delete(id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    check_no_orphans(&engine).await
}

/// The container's start time, as Podman reports it.
fn started_at(container: &str) -> anyhow::Result<String> {
    Ok(util::run(Command::new("podman").args([
        "inspect",
        "--format",
        "{{.State.StartedAt}}",
        container,
    ]))?
    .trim()
    .to_owned())
}

async fn upgrade_restart() -> anyhow::Result<()> {
    let engine = engine().await?;
    let id: SessionId = "upgr1".parse()?;
    engine
        .create(request(id.as_str()))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let names = SessionNames::new(&id);
    exec(&names.container, "echo kept > /home/dev/keep.txt")?;
    // What an older octod left: a unit that differs beyond [Install], its container running
    // from it.
    let path = util::quadlet_dir()?
        .join("octo")
        .join(&names.container_file);
    let current = std::fs::read_to_string(&path)?;
    let old = current.replace(
        "\n[Container]\n",
        "\n[Container]\nEnvironment=OCTO_OLD_UNIT=1\n",
    );
    ensure!(old != current, "no [Container] section in {current}");
    std::fs::write(&path, old)?;
    let systemd = Systemd::connect_user().await?;
    systemd.reload().await?;
    systemd
        .restart(&names.service, Duration::from_secs(120))
        .await?;
    ensure!(
        exec(&names.container, "env")?.contains("OCTO_OLD_UNIT=1"),
        "the container does not run from the old unit"
    );
    let before = started_at(&names.container)?;
    let report = engine.reconcile().await;
    ensure!(
        report.errors.is_empty() && report.restarted == [id.clone()],
        "the reconciler did not restart the session once: {report:?}"
    );
    ensure!(
        !exec(&names.container, "env")?.contains("OCTO_OLD_UNIT"),
        "the container still runs from the old unit"
    );
    ensure!(
        started_at(&names.container)? != before,
        "the container was not restarted"
    );
    ensure!(
        exec(&names.container, "cat /home/dev/keep.txt")?.trim() == "kept",
        "the home did not survive the restart"
    );
    check_running(&engine, &id).await?;
    let again = engine.reconcile().await;
    ensure!(
        again.restarted.is_empty() && again.errors.is_empty(),
        "a second pass restarted again: {again:?}"
    );
    say("a running session whose unit changed was restarted once onto the new unit, home kept");
    engine
        .delete(&id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    check_no_orphans(&engine).await
}

/// The stand-in opencode's answer to `GET /session/status`, written into the session.
fn set_agent_status(id: &SessionId, status: &str) -> anyhow::Result<()> {
    let json = format!(r#"{{"ses_1":{{"type":"{status}"}}}}"#);
    let out = std::process::Command::new("podman")
        .args([
            "exec",
            &SessionNames::new(id).container,
            "sh",
            "-c",
            &format!(
                "mkdir -p /home/dev/agent/session && echo '{json}' > /home/dev/agent/session/status"
            ),
        ])
        .output()?;
    ensure!(
        out.status.success(),
        "writing the agent's status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

async fn agent() -> anyhow::Result<()> {
    const AGENT_IMAGE: &str = "localhost/octo-e2e-session:agent";
    util::ensure_agent_test_image(AGENT_IMAGE)?;
    let idle_for = Duration::from_secs(3);
    let engine = engine_configured(AGENT_IMAGE, |config| {
        config.idle_timeout = Some(idle_for);
    })
    .await?;
    let id: SessionId = "agentturn".parse()?;
    engine
        .create(request(id.as_str()))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let result = async {
        // No status yet (404 through the gateway): not known, which keeps nothing running.
        ensure!(
            engine.agent_busy(&id).await.is_none(),
            "an agent without a status was taken for known"
        );
        set_agent_status(&id, "busy")?;
        ensure!(
            engine.agent_busy(&id).await == Some(true),
            "the agent's busy status did not come through the gateway"
        );
        // Twice the idle time without traffic, the agent in its turn: not stopped.
        let deadline = std::time::Instant::now() + idle_for * 2;
        while std::time::Instant::now() < deadline {
            let stopped = engine.reap_idle().await;
            ensure!(
                !stopped.contains(&id),
                "a session whose agent is in a turn was idle-stopped"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        say(format!(
            "{id}: no traffic for {:?}, its agent busy: kept running",
            idle_for * 2
        ));
        let record = engine.get(&id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let outlook = engine
            .idle_outlook(&record, engine.last_activity(&id).await?, None)
            .context("a running session has an idle outlook")?;
        ensure!(
            outlook.kept_by.contains(&octod::engine::KeptBy::Agent),
            "the outlook does not name the agent's turn: {outlook:?}"
        );
        // The turn ends: it stops, no sooner than the idle time after the last busy answer.
        // (Timed from before the write: `podman exec` takes a while, and the turn may end at
        // any moment of it.)
        let ended = std::time::Instant::now();
        set_agent_status(&id, "idle")?;
        let stopped_after = loop {
            if engine.reap_idle().await.contains(&id) {
                break ended.elapsed();
            }
            ensure!(
                ended.elapsed() < idle_for * 4,
                "the session did not stop after its agent's turn ended"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        ensure!(
            stopped_after + Duration::from_millis(600) >= idle_for,
            "stopped {stopped_after:?} after the turn ended, before the idle time {idle_for:?}"
        );
        say(format!(
            "{id}: its agent's turn ended; idle-stopped {stopped_after:?} later (idle time {idle_for:?})"
        ));

        // A keep-alive: no traffic, the agent idle, and still not stopped until it ends.
        engine
            .resume(&id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let until = std::time::SystemTime::now() + idle_for * 3;
        engine.set_keep_alive(&id, Some(until)).await?;
        while std::time::SystemTime::now() + Duration::from_millis(500) < until {
            ensure!(
                !engine.reap_idle().await.contains(&id),
                "a session kept alive was idle-stopped"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let record = engine.get(&id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        ensure!(
            record.state == SessionState::Running,
            "kept alive, but {:?}",
            record.state
        );
        let stopped_after = loop {
            if engine.reap_idle().await.contains(&id) {
                break until.elapsed().unwrap_or_default();
            }
            ensure!(
                until.elapsed().unwrap_or_default() < idle_for * 2,
                "the session did not stop when its keep-alive ended"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        say(format!(
            "{id}: kept alive for {:?} without traffic; idle-stopped {stopped_after:?} after the keep-alive ended",
            idle_for * 3
        ));
        Ok(())
    }
    .await;
    let deleted = engine.delete(&id).await.map_err(|e| anyhow::anyhow!("{e}"));
    result?;
    deleted
}
