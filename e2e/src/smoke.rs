//! The first end-to-end check: a Quadlet `.container` unit for a small image, driven over
//! D-Bus with the same `octod::systemd` client that octod uses: daemon-reload, `StartUnit`
//! with the job awaited through `JobRemoved`, `ActiveState=active`, the published port
//! answers; after a reboot the unit is back by itself (`WantedBy=default.target` + linger);
//! then it is stopped and removed.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use octod::systemd::{ActiveState, Systemd};

use crate::util::{self, say};

// Outside octod's `octo-*` namespace: the engine's reconciler removes `octo-*` units that no
// session owns, and this unit runs beside the engine checks.
const IMAGE: &str = "localhost/e2e-smoke:latest";
const UNIT: &str = "e2e-smoke.service";
const FILE: &str = "e2e-smoke.container";
const PORT: u16 = 18_080;
/// Long enough for a start that times out at boot (seen rarely: the health check's timer
/// never fired) to be restarted by `Restart=on-failure` and pass, as session units do.
const TIMEOUT: Duration = Duration::from_secs(150);

#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum Phase {
    /// Write the unit, reload, start it over D-Bus, check it answers.
    Start,
    /// After a reboot: the unit came back by itself.
    AfterReboot,
    /// Stop it over D-Bus, remove the file, reload: the unit is gone.
    Remove,
}

pub async fn run(phase: Phase) -> anyhow::Result<()> {
    let systemd = Systemd::connect_user().await?;
    match phase {
        Phase::Start => start(&systemd).await,
        Phase::AfterReboot => after_reboot(&systemd).await,
        Phase::Remove => remove(&systemd).await,
    }
}

fn unit_text() -> String {
    format!(
        "[Unit]\n\
         Description=Octo end-to-end smoke test\n\
         \n\
         [Container]\n\
         Image={IMAGE}\n\
         ContainerName=e2e-smoke\n\
         Exec=/bin/sh -c \"trap 'exit 0' TERM; /bin/busybox httpd -f -p 8080 -h /www & wait\"\n\
         PublishPort=127.0.0.1:{PORT}:8080\n\
         UserNS=auto\n\
         HealthCmd=/bin/busybox wget -q -O /dev/null http://127.0.0.1:8080/\n\
         HealthInterval=2s\n\
         HealthStartPeriod=1s\n\
         Notify=healthy\n\
         \n\
         [Service]\n\
         TimeoutStartSec=30\n\
         Restart=on-failure\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    )
}

async fn start(systemd: &Systemd) -> anyhow::Result<()> {
    util::ensure_busybox_image(IMAGE)?;
    let dir = util::quadlet_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(FILE), unit_text())?;
    say(format!("wrote {}", dir.join(FILE).display()));
    systemd.reload().await?;
    let state = systemd.unit_state(UNIT).await?;
    ensure!(
        state.exists(),
        "the Quadlet generator made no {UNIT}: {state:?}"
    );
    say(format!(
        "daemon-reload over D-Bus: {UNIT} is {}",
        state.load
    ));
    let started = std::time::Instant::now();
    systemd.start(UNIT, TIMEOUT).await?;
    say(format!(
        "StartUnit job done (JobRemoved matched) in {:.2?}",
        started.elapsed()
    ));
    let state = systemd.unit_state(UNIT).await?;
    ensure!(
        state.is_active(),
        "{UNIT} is not active after its start job: {state:?}"
    );
    say(format!(
        "ActiveState={} SubState={}",
        state.active, state.sub
    ));
    check_port()?;
    check_userns()?;
    Ok(())
}

async fn after_reboot(systemd: &Systemd) -> anyhow::Result<()> {
    // The user manager starts the unit at boot; wait for its start job to finish.
    let state = util::eventually(TIMEOUT, "the unit active after the reboot", async || {
        let state = systemd.unit_state(UNIT).await?;
        if state.is_failed() {
            bail!(
                "{UNIT} failed after the reboot: {}",
                systemd.failure_reason(UNIT).await
            );
        }
        ensure!(state.is_active(), "{UNIT} is {}", state.active);
        Ok(state)
    })
    .await?;
    say(format!(
        "after the reboot: ActiveState={} SubState={}",
        state.active, state.sub
    ));
    check_port()
}

async fn remove(systemd: &Systemd) -> anyhow::Result<()> {
    systemd.stop(UNIT, TIMEOUT).await?;
    let state = systemd.unit_state(UNIT).await?;
    ensure!(
        state.active == ActiveState::Inactive,
        "{UNIT} is not cleanly inactive after StopUnit: {state:?}"
    );
    say(format!("StopUnit job done: ActiveState={}", state.active));
    let file = util::quadlet_dir()?.join(FILE);
    std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
    systemd.reload().await?;
    let state = systemd.unit_state(UNIT).await?;
    ensure!(
        !state.exists(),
        "{UNIT} still known after removal: {state:?}"
    );
    say(format!(
        "after removal and reload: LoadState={}",
        state.load
    ));
    let containers = util::run(std::process::Command::new("podman").args(["ps", "-aq"]))?;
    ensure!(
        containers.trim().is_empty(),
        "containers left behind: {containers}"
    );
    util::run(std::process::Command::new("podman").args(["rmi", IMAGE]))?;
    ensure!(
        std::net::TcpStream::connect(("127.0.0.1", PORT)).is_err(),
        "port {PORT} still answers after the unit was removed"
    );
    Ok(())
}

fn check_port() -> anyhow::Result<()> {
    let body = util::http_get(PORT, "/")?;
    ensure!(
        body.contains("octo smoke ok"),
        "unexpected body on port {PORT}: {body:?}"
    );
    say(format!("127.0.0.1:{PORT} answers: {}", body.trim()));
    Ok(())
}

/// `UserNS=auto`: the container's root is a subordinate id of the host, not the octo user.
/// Read from outside (this process is in the host's initial user namespace), the
/// container's `uid_map` shows host ids.
fn check_userns() -> anyhow::Result<()> {
    let pid = util::run(std::process::Command::new("podman").args([
        "inspect",
        "--format",
        "{{.State.Pid}}",
        "e2e-smoke",
    ]))?;
    let map = std::fs::read_to_string(format!("/proc/{}/uid_map", pid.trim()))
        .context("reading the container's uid_map")?;
    let outside: u64 = map
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("parsing the container's uid_map")?;
    ensure!(
        outside >= 100_000,
        "container root maps to host uid {outside}, not a subordinate id: {map}"
    );
    say(format!(
        "UserNS=auto: container uid 0 is host uid {outside}"
    ));
    Ok(())
}
