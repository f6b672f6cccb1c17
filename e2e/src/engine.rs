//! `octo-e2e engine …`: the session engine (`octod::engine`) against the real systemd user
//! manager and Podman, with a minimal session image built from the host's busybox whose three
//! "services" are busybox httpd on 41820–41822.
//!
//! Phases: `lifecycle` (create → running → stop → resume → delete, nothing left behind),
//! `concurrent` (20 creates at once), `bad-input`, `crash` (kill -9 of a worker during create
//! and delete, then the reconciler converges), `reboot-setup` / `reboot-check` (a running
//! session comes back after a reboot with its files; a stopped one stays stopped).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use octod::engine::{CreateRequest, Engine, EngineConfig, EngineError};
use octod::podman::Podman;
use octod::render::{EnvSecret, HealthConfig, RenderConfig, SessionNames};
use octod::session::{Limits, SessionId, SessionState};
use octod::store::{PortRange, Store};
use octod::systemd::{ActiveState, Systemd};

use crate::util::{self, say};

pub(crate) const IMAGE: &str = "localhost/octo-e2e-session:latest";
const TEMPLATE: &str = "coding-copilot";
const PORTS: (u16, u16) = (20_000, 20_299);

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Phase {
    /// Create → running → stop → resume → delete; a file survives stop/resume.
    Lifecycle,
    /// 20 sessions created at once get distinct ports and all run.
    Concurrent,
    /// Unknown template, invalid id, ports exhausted, image missing: typed errors, no change.
    BadInput,
    /// kill -9 of the engine at random points during create and delete; the reconciler
    /// converges with no orphan left.
    Crash {
        #[arg(long, default_value_t = 12)]
        rounds: u32,
    },
    /// Before a reboot: one running and one stopped session, each with a file.
    RebootSetup,
    /// After the reboot: the running one came back by itself, the stopped one did not.
    RebootCheck,
    /// Idle stop: a session without activity for the idle time is stopped, an active one is
    /// not; the background reconciler notices a unit stopped behind its back.
    Idle,
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
pub(crate) async fn engine_with(image: &str, ports: PortRange) -> anyhow::Result<Engine> {
    engine_configured(image, ports, |_| {}).await
}

/// [`engine_with`], with a last say on the engine's configuration.
pub(crate) async fn engine_configured(
    image: &str,
    ports: PortRange,
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
            ports,
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
    provider_secret: EnvSecret,
    ports: PortRange,
) -> anyhow::Result<Engine> {
    let base = home()?.join("e2e");
    std::fs::create_dir_all(&base)?;
    let mut render = RenderConfig::new(templates);
    render.provider_secret = Some(provider_secret);
    engine_from(
        EngineSetup {
            image: image.to_owned(),
            ports,
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
    ports: PortRange,
    redb: PathBuf,
    render: RenderConfig,
}

async fn engine_from(
    setup: EngineSetup,
    adjust: impl FnOnce(&mut EngineConfig),
) -> anyhow::Result<Engine> {
    let store = Store::open(setup.redb, setup.ports)?;
    let systemd = Systemd::connect_user().await?;
    let podman = Podman::connect_user(&systemd).await?;
    let mut config = EngineConfig {
        quadlet_dir: util::quadlet_dir()?.join("octo"),
        render: setup.render,
        image: setup.image,
        stop_timeout: Duration::from_secs(60),
        idle_timeout: None,
    };
    adjust(&mut config);
    Ok(Engine::new(store, systemd, podman, config).await?)
}

async fn engine() -> anyhow::Result<Engine> {
    engine_with(IMAGE, PortRange::new(PORTS.0, PORTS.1)?).await
}

/// The test image's health check: all three "services" answer.
pub(crate) fn health_cmd() -> String {
    [41820, 41821, 41822]
        .map(|port| format!("wget -q -O /dev/null http://127.0.0.1:{port}/"))
        .join(" && ")
}

pub(crate) fn request(id: &str) -> CreateRequest {
    CreateRequest {
        id: Some(id.to_owned()),
        owner: "alice".into(),
        template: TEMPLATE.into(),
        limits: Limits::default(),
        max_per_owner: None,
    }
}

fn exec(container: &str, script: &str) -> anyhow::Result<String> {
    util::run(Command::new("podman").args(["exec", container, "/bin/sh", "-c", script]))
}

/// The three published ports answer, and the token reached the container as a secret.
async fn check_running(engine: &Engine, id: &SessionId) -> anyhow::Result<()> {
    let record = engine.get(id).await?;
    ensure!(
        record.state == SessionState::Running,
        "{id} is {:?}",
        record.state
    );
    let ports = record.spec.ports;
    for port in [ports.opencode, ports.files, ports.terminal] {
        util::http_get(port, "/").with_context(|| format!("session {id}, port {port}"))?;
    }
    let token = engine.store().token(id)?;
    let inside = exec(
        &SessionNames::new(id).container,
        "echo \"$OCTO_SESSION_TOKEN\"",
    )?;
    ensure!(
        inside.trim() == token.expose(),
        "the container's token differs from the store's"
    );
    Ok(())
}

/// Nothing named after the session is left: files, units, container, volume, secret, ports.
pub(crate) async fn check_gone(engine: &Engine, id: &SessionId) -> anyhow::Result<()> {
    let names = SessionNames::new(id);
    let dir = util::quadlet_dir()?.join("octo");
    for file in [&names.container_file, &names.volume_file] {
        ensure!(!dir.join(file).exists(), "{file} is left");
    }
    ensure!(engine.get(id).await.is_err(), "the record of {id} is left");
    ensure!(
        !engine
            .store()
            .allocated_ports()?
            .values()
            .any(|owner| owner == id),
        "ports of {id} are still allocated"
    );
    let systemd = Systemd::connect_user().await?;
    for unit in [&names.service, &names.volume_service] {
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
    ensure!(
        engine.list().await?.is_empty(),
        "sessions left in the store"
    );
    ensure!(
        engine.store().allocated_ports()?.is_empty(),
        "ports left allocated"
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
        "create → running in {:.2?}: ports {:?}",
        started.elapsed(),
        record.spec.ports
    ));
    check_running(&engine, &id).await?;
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
        std::net::TcpStream::connect(("127.0.0.1", record.spec.ports.files)).is_err(),
        "a stopped session's port still answers"
    );
    say("stop → stopped; no [Install]; ports closed");

    let started = std::time::Instant::now();
    engine
        .resume(&id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    say(format!("resume → running in {:.2?}", started.elapsed()));
    check_running(&engine, &id).await?;
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
    say("delete: no file, unit, container, volume, secret or port left");
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
    let mut triples = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for (id, result) in ids.iter().zip(results) {
        let record = result.map_err(|e| anyhow::anyhow!("{id}: {e}"))?;
        ensure!(
            record.state == SessionState::Running,
            "{id}: {:?}",
            record.state
        );
        let p = record.spec.ports;
        triples.insert((p.opencode, p.files, p.terminal));
        ports.extend([p.opencode, p.files, p.terminal]);
    }
    ensure!(
        triples.len() == 20 && ports.len() == 60,
        "ports were handed out twice"
    );
    say(format!(
        "20 concurrent creates: all running in {:.2?}, 60 distinct ports",
        started.elapsed()
    ));
    for id in &ids {
        check_running(&engine, &id.parse()?).await?;
    }
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

    let missing = engine_with(
        "localhost/octo-no-such-image:1",
        PortRange::new(PORTS.0, PORTS.1)?,
    )
    .await?;
    expect(
        "image missing",
        missing.create(request("bad2")).await,
        |e| matches!(e, EngineError::ImageMissing(_)),
    )?;
    drop(missing);

    // A range that holds one session: the second create finds it exhausted.
    let small = engine_with(IMAGE, PortRange::new(PORTS.0, PORTS.0 + 2)?).await?;
    small
        .create(request("bad3"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let before_second = snapshot(&small).await?;
    expect(
        "ports exhausted",
        small.create(request("bad4")).await,
        |e| {
            matches!(
                e,
                EngineError::Store(octod::store::StoreError::PortsExhausted { .. })
            )
        },
    )?;
    ensure!(
        snapshot(&small).await? == before_second,
        "a refused create changed something"
    );
    small
        .delete(&"bad3".parse()?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(
        snapshot(&small).await? == before,
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

async fn reboot_setup() -> anyhow::Result<()> {
    let engine = engine().await?;
    for id in ["bootrun", "bootstop"] {
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
        .stop(&"bootstop".parse()?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    say("bootrun is running, bootstop is stopped; each wrote /home/dev/boot.txt");
    Ok(())
}

async fn reboot_check() -> anyhow::Result<()> {
    let systemd = Systemd::connect_user().await?;
    let run = SessionNames::new(&"bootrun".parse()?);
    util::eventually(
        Duration::from_secs(150),
        "bootrun active after the reboot",
        async || {
            let state = systemd.unit_state(&run.service).await?;
            ensure!(state.is_active(), "{} is {}", run.service, state.active);
            Ok(())
        },
    )
    .await?;
    say("bootrun came back by itself (WantedBy=default.target + linger)");
    let engine = engine().await?;
    let report = engine.reconcile().await;
    ensure!(
        report.errors.is_empty(),
        "reconcile errors: {:?}",
        report.errors
    );
    ensure!(
        report.started.is_empty(),
        "the reconciler had to start something: {report:?}"
    );
    check_running(&engine, &"bootrun".parse()?).await?;
    let text = exec(&run.container, "cat /home/dev/boot.txt")?;
    ensure!(
        text.trim() == "bootrun",
        "the workspace file is gone after the reboot"
    );
    let stop = SessionNames::new(&"bootstop".parse()?);
    let state = systemd.unit_state(&stop.service).await?;
    ensure!(!state.is_active(), "bootstop started at boot: {state:?}");
    ensure!(
        engine.get(&"bootstop".parse()?).await?.state == SessionState::Stopped,
        "bootstop not stopped"
    );
    say("bootstop stayed stopped");
    engine
        .resume(&"bootstop".parse()?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = exec(&stop.container, "cat /home/dev/boot.txt")?;
    ensure!(
        text.trim() == "bootstop",
        "the stopped session's file is gone after the reboot"
    );
    say("bootstop resumed with its file after the reboot");
    for id in ["bootrun", "bootstop"] {
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
    let engine = engine_configured(IMAGE, PortRange::new(PORTS.0, PORTS.1)?, |config| {
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
    let record = engine.get(&quiet).await?;
    ensure!(
        record.state == SessionState::Stopped
            && record.spec.desired == octod::session::DesiredState::Stopped,
        "the idle session was not stopped: {:?}",
        record.state
    );
    ensure!(
        engine.get(&busy).await?.state == SessionState::Running,
        "the busy session stopped"
    );
    say(format!(
        "idle stop: quiet session stopped after {idle_for:?} without activity; busy one kept"
    ));

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
    background.abort();
    for id in [&busy, &quiet] {
        engine
            .delete(id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    check_no_orphans(&engine).await
}
