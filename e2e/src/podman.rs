//! `podman-client`: every operation of `octod::podman` against the real Podman API of the
//! test host's `octo` user, cross-checked with the `podman` command.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use octod::podman::{MIN_VERSION, Podman, PodmanError, SOCKET_UNIT, VolumeFilter, check_version};
use octod::systemd::Systemd;

use crate::util::{ensure_busybox_image, run as sh, say};

const IMAGE: &str = "localhost/octo-e2e-busybox:latest";
const SECRET: &str = "octo-e2e-podman-token";
const CONTAINER: &str = "octo-e2e-podman";
const VOLUME: &str = "octo-e2e-podman-home";
const LABEL: &str = "octo.session=e2e-podman";

pub(crate) async fn run() -> anyhow::Result<()> {
    leftovers_from_an_earlier_run();
    let systemd = Systemd::connect_user().await?;
    // connect_user must bring the socket up itself: stop it first.
    systemd.stop(SOCKET_UNIT, Duration::from_secs(30)).await?;
    ensure!(
        !systemd.unit_state(SOCKET_UNIT).await?.is_active(),
        "{SOCKET_UNIT} still active after stop"
    );
    let podman = Podman::connect_user(&systemd).await?;
    ensure!(
        systemd.unit_state(SOCKET_UNIT).await?.is_active(),
        "{SOCKET_UNIT} is not active after connect_user"
    );
    say(format!(
        "{SOCKET_UNIT} started; API socket {}",
        podman.socket().display()
    ));

    version(&podman).await?;
    secrets(&podman).await?;
    images(&podman).await?;
    containers_and_volumes(&podman).await?;
    unreachable_socket().await?;
    Ok(())
}

async fn version(podman: &Podman) -> anyhow::Result<()> {
    let version = podman.version().await?;
    let cli = sh(Command::new("podman").args(["version", "--format", "{{.Server.Version}}"]))?;
    ensure!(
        version.to_string() == cli.trim().split(['-', '+']).next().unwrap_or_default(),
        "the API reports Podman {version}, the command {}",
        cli.trim()
    );
    ensure!(version >= MIN_VERSION, "this host runs Podman {version}");
    podman.require_v5().await?;
    let refused = check_version("4.3.1");
    match &refused {
        Err(e @ PodmanError::TooOld { .. })
            if e.to_string()
                .starts_with("Podman 4.3.1 is too old: Octo needs Podman ≥ 5") => {}
        other => bail!("Podman 4.3.1 was not refused clearly: {other:?}"),
    }
    say(format!(
        "version {version} accepted; 4.3.1 refused: {}",
        refused.err().map(|e| e.to_string()).unwrap_or_default()
    ));
    Ok(())
}

async fn secrets(podman: &Podman) -> anyhow::Result<()> {
    ensure!(
        !podman.secret_exists(SECRET).await?,
        "{SECRET} exists before the test"
    );
    let id = podman.create_secret(SECRET, b"first value", false).await?;
    ensure!(!id.is_empty(), "creating {SECRET} returned no ID");
    ensure!(
        podman.secret_exists(SECRET).await?,
        "{SECRET} missing after create"
    );
    ensure!(
        cli_secrets()?.iter().any(|n| n == SECRET),
        "`podman secret ls` does not show {SECRET}"
    );
    ensure!(
        podman.list_secrets().await?.iter().any(|n| n == SECRET),
        "list_secrets does not show {SECRET}"
    );

    // Without replace, a second create is refused; with it, the value is replaced.
    match podman.create_secret(SECRET, b"other", false).await {
        Err(PodmanError::Api {
            status, message, ..
        }) => {
            say(format!("second create refused: {status} {message}"));
        }
        other => bail!("creating {SECRET} twice without replace: {other:?}"),
    }
    podman
        .create_secret(SECRET, b"second\0value\n", true)
        .await?;
    let data = sh(Command::new("podman").args([
        "secret",
        "inspect",
        "--showsecret",
        "--format",
        "{{.SecretData}}",
        SECRET,
    ]))?;
    ensure!(
        data.strip_suffix('\n') == Some("second\0value\n"),
        "after replace, {SECRET} holds {data:?}"
    );

    ensure!(
        podman.delete_secret(SECRET).await?,
        "deleting {SECRET}: not found"
    );
    ensure!(
        !podman.delete_secret(SECRET).await?,
        "deleting {SECRET} twice: found again"
    );
    ensure!(
        !podman.secret_exists(SECRET).await?,
        "{SECRET} exists after delete"
    );
    ensure!(
        !cli_secrets()?.iter().any(|n| n == SECRET),
        "`podman secret ls` still shows {SECRET}"
    );
    say(
        "secret: create, refuse duplicate, replace (value checked), delete twice, agree with `podman secret ls`",
    );
    Ok(())
}

async fn images(podman: &Podman) -> anyhow::Result<()> {
    ensure_busybox_image(IMAGE)?;
    ensure!(podman.image_exists(IMAGE).await?, "{IMAGE} not found");
    let info = podman
        .image_inspect(IMAGE)
        .await?
        .with_context(|| format!("inspecting {IMAGE}: not found"))?;
    let cli_id =
        sh(Command::new("podman").args(["image", "inspect", "--format", "{{.Id}}", IMAGE]))?;
    ensure!(
        info.id == cli_id.trim(),
        "{IMAGE}: API id {} vs `podman image inspect` {}",
        info.id,
        cli_id.trim()
    );
    ensure!(info.size > 0, "{IMAGE}: size 0");
    ensure!(info.created.is_some(), "{IMAGE}: no creation time");
    let missing = "localhost/octo-e2e-no-such-image:latest";
    ensure!(!podman.image_exists(missing).await?, "{missing} exists");
    ensure!(
        podman.image_inspect(missing).await?.is_none(),
        "{missing} inspected"
    );
    say(format!(
        "image: {IMAGE} exists (id {}…, {} bytes), a missing one does not",
        &info.id[..12.min(info.id.len())],
        info.size
    ));
    Ok(())
}

async fn containers_and_volumes(podman: &Podman) -> anyhow::Result<()> {
    sh(Command::new("podman").args(["volume", "create", "--label", LABEL, VOLUME]))?;
    sh(Command::new("podman").args([
        "run",
        "-d",
        "--name",
        CONTAINER,
        "--label",
        LABEL,
        "-v",
        &format!("{VOLUME}:/home/dev"),
        IMAGE,
        "/bin/busybox",
        "sleep",
        "600",
    ]))?;

    let listed = podman.list_containers("octo.session").await?;
    let mine = listed
        .iter()
        .find(|c| c.name == CONTAINER)
        .with_context(|| format!("{CONTAINER} not listed by label octo.session: {listed:?}"))?;
    ensure!(mine.state == "running", "{CONTAINER} is {}", mine.state);
    ensure!(
        mine.labels.get("octo.session").map(String::as_str) == Some("e2e-podman"),
        "{CONTAINER} labels: {:?}",
        mine.labels
    );
    ensure!(
        podman
            .list_containers(LABEL)
            .await?
            .iter()
            .any(|c| c.name == CONTAINER),
        "{CONTAINER} not listed by {LABEL}"
    );
    ensure!(
        !podman
            .list_containers("octo.session=someone-else")
            .await?
            .iter()
            .any(|c| c.name == CONTAINER),
        "{CONTAINER} listed under another label value"
    );

    ensure!(podman.volume_exists(VOLUME).await?, "{VOLUME} not found");
    for filter in [
        VolumeFilter::All,
        VolumeFilter::NamePrefix("octo-e2e-podman".to_owned()),
        VolumeFilter::Label(LABEL.to_owned()),
    ] {
        let volumes = podman.list_volumes(&filter).await?;
        let found = volumes
            .iter()
            .find(|v| v.name == VOLUME)
            .with_context(|| format!("{VOLUME} not listed with {filter:?}: {volumes:?}"))?;
        ensure!(
            found.labels.get("octo.session").map(String::as_str) == Some("e2e-podman"),
            "{VOLUME} labels: {:?}",
            found.labels
        );
    }
    for filter in [
        VolumeFilter::NamePrefix("octo-e2e-podmanx".to_owned()),
        VolumeFilter::Label("octo.session=someone-else".to_owned()),
    ] {
        let volumes = podman.list_volumes(&filter).await?;
        ensure!(
            !volumes.iter().any(|v| v.name == VOLUME),
            "{VOLUME} listed with {filter:?}"
        );
    }

    // A volume in use is not removed without force; a running container neither.
    match podman.remove_volume(VOLUME, false).await {
        Err(PodmanError::Api { status, .. }) => say(format!("volume in use refused: {status}")),
        other => bail!("removing {VOLUME} in use without force: {other:?}"),
    }
    match podman.remove_container(CONTAINER, false).await {
        Err(PodmanError::Api { status, .. }) => {
            say(format!("running container refused without force: {status}"));
        }
        other => bail!("removing running {CONTAINER} without force: {other:?}"),
    }
    ensure!(
        podman.remove_container(CONTAINER, true).await?,
        "removing {CONTAINER}: not found"
    );
    ensure!(
        !podman.remove_container(CONTAINER, true).await?,
        "removing {CONTAINER} twice: found again"
    );
    ensure!(
        !cli_succeeds(&["container", "exists", CONTAINER]),
        "`podman container exists` still finds {CONTAINER}"
    );
    ensure!(
        !podman
            .list_containers(LABEL)
            .await?
            .iter()
            .any(|c| c.name == CONTAINER),
        "{CONTAINER} still listed"
    );

    ensure!(
        podman.remove_volume(VOLUME, false).await?,
        "removing {VOLUME}: not found"
    );
    ensure!(
        !podman.remove_volume(VOLUME, true).await?,
        "removing {VOLUME} twice: found again"
    );
    ensure!(
        !podman.volume_exists(VOLUME).await?,
        "{VOLUME} exists after removal"
    );
    ensure!(
        !cli_succeeds(&["volume", "exists", VOLUME]),
        "`podman volume exists` still finds {VOLUME}"
    );
    say(
        "container and volume: listed by label/prefix, in-use refused, removed (twice), gone for `podman`",
    );
    Ok(())
}

async fn unreachable_socket() -> anyhow::Result<()> {
    let socket = "/nonexistent/podman.sock";
    match Podman::new(socket).version().await {
        Err(e @ PodmanError::Connect { .. }) if e.to_string().contains(socket) => {
            say(format!("no socket: {e}"));
            Ok(())
        }
        other => bail!("version() on {socket}: {other:?}"),
    }
}

fn cli_secrets() -> anyhow::Result<Vec<String>> {
    let out = sh(Command::new("podman").args(["secret", "ls", "--format", "{{.Name}}"]))?;
    Ok(out.lines().map(str::to_owned).collect())
}

fn cli_succeeds(args: &[&str]) -> bool {
    Command::new("podman")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// A failed earlier run may have left its objects; they would fail the first checks.
fn leftovers_from_an_earlier_run() {
    for args in [
        &["rm", "-f", "--ignore", CONTAINER][..],
        &["volume", "rm", "-f", VOLUME],
        &["secret", "rm", "--ignore", SECRET],
    ] {
        let _ = Command::new("podman")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
