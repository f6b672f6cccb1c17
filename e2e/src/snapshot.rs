//! `octo-e2e snapshot` (as root): issue 17's snapshots of a session's home through the real
//! `octod serve` (running as `octo`), its transient worker units and the stand-in session image
//! with the real gateway.
//!
//! 1. A running session's home gets files (nested, a symlink, modes, random bytes); a
//!    snapshot taken through the API while it runs (its container paused meanwhile) is listed
//!    with its name, size and time (API and `octoctl session snapshot list`); the same name
//!    again is `409 snapshot_exists`; another user gets `404` for all of it.
//! 2. The home changes (from inside the container and by an upload through octod's proxy);
//!    `octoctl session snapshot restore` shows progress, the session runs again, and its home
//!    is byte-identical to the snapshot: a manifest of paths, modes and SHA-256s.
//! 3. `kill -9` of the worker unit midway: the job fails, nothing is listed, nothing is left
//!    under the state directory, the container is not left paused. A second request while a
//!    snapshot runs is `409 operation_running`.
//! 4. `kill -9` of octod *and* the worker midway: a partial directory is on disk; the next
//!    octod's reconciler removes it and unloads the unit, and lists nothing partial.
//! 4. (and) `kill -9` of a restore's worker midway, then of octod and the worker: the home
//!    stays the old one (its manifest), and what was unpacked beside it is removed (after the
//!    failed job; after the crash, by the next octod's reconciler).
//!    A full disk midway (the snapshot storage on a 16 MiB tmpfs): the job fails saying so,
//!    nothing partial is listed or left, the container runs.
//! 5. octod again with `[limits] snapshots = "1M"`, which the first snapshot already passes:
//!    a create is `507 snapshot_quota` with a clear message. Then everything goes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use serde_json::Value;

use crate::admin::{as_user, bin, spawn_logged};
use crate::api::{Client, expect, sign_in};
use crate::util::{self, say};

const PORT: u16 = 18_537;
const IMAGE: &str = "localhost/octo-snapshot-e2e:gateway";
const WORK: &str = "/var/tmp/octo-snapshot-e2e";
const PASSWORD: &str = "correct horse battery";
const OCTO: &str = "octo";

/// The `octo` side: the stand-in image, built afresh so that it has this tree's gateway.
pub(crate) fn prepare() -> anyhow::Result<()> {
    let _ = Command::new("podman").args(["rmi", "-f", IMAGE]).output();
    util::ensure_served_gateway_image(IMAGE)
}

pub(crate) async fn run() -> anyhow::Result<()> {
    let e2e = std::env::current_exe()?;
    let e2e = e2e.to_string_lossy();
    util::run(&mut as_user(OCTO, &[&e2e, "snapshot", "--prepare"])?)?;
    sh(&format!(
        "rm -rf {WORK} && mkdir -p {WORK} && chown {OCTO}: {WORK} && chmod 0755 {WORK}"
    ))?;

    write_config("")?;
    let (mut child, lines) = spawn_octod()?;
    let result = scenario(&mut child, &lines).await;
    stop(&mut child);
    let (user, id) = result?;

    // 5. A quota the first snapshot already passes.
    write_config("snapshots = \"1M\"\n")?;
    let (mut child, _) = spawn_octod()?;
    let result = quota(&user, &id).await;
    stop(&mut child);
    result
}

fn sh(script: &str) -> anyhow::Result<String> {
    util::run(Command::new("sh").args(["-c", script]))
}

fn write_config(limits: &str) -> anyhow::Result<()> {
    let text = format!(
        "[server]\nstate_dir = \"{WORK}/state\"\nadmin_socket = \"{WORK}/admin.sock\"\n\n\
         [sessions]\nimage = \"{IMAGE}\"\ntemplates_dir = \"/opt/octo/src/container/templates\"\nidle_timeout_minutes = 0\n\n\
         [limits]\n{limits}"
    );
    let path = Path::new(WORK).join("octod.toml");
    std::fs::write(&path, text)?;
    sh(&format!("chown {OCTO}: {}", path.display()))?;
    Ok(())
}

fn spawn_octod() -> anyhow::Result<(std::process::Child, std::sync::mpsc::Receiver<String>)> {
    let octod = bin("octod");
    let config = format!("{WORK}/octod.toml");
    let listen = format!("127.0.0.1:{PORT}");
    spawn_logged(&[
        "env",
        "OCTOD_LOG=info",
        &octod,
        "serve",
        "--listen",
        &listen,
        "--config",
        &config,
    ])
}

fn stop(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// `octoctl --socket … ARGS` as root: its standard output.
fn octoctl(args: &[&str]) -> anyhow::Result<String> {
    let socket = format!("{WORK}/admin.sock");
    util::run(
        Command::new(bin("octoctl"))
            .args(["--socket", &socket])
            .args(args),
    )
}

/// A command as `octo` (podman, systemctl --user): its standard output.
fn as_octo(command: &[&str]) -> anyhow::Result<String> {
    util::run(&mut as_user(OCTO, command)?)
}

/// A worker unit held still: its cgroup frozen through `cgroup.freeze` (the kernel's freezer,
/// which systemd does not track), so that a fast machine cannot finish the work between the
/// moment the test sees it midway and the moment it kills it.
struct Held {
    unit: String,
    freeze: std::path::PathBuf,
}

impl Held {
    /// Waits until `unit` is active and `midway` holds while it is frozen; between looks the
    /// worker runs for 20 ms.
    async fn midway(unit: &str, midway: impl Fn() -> bool) -> anyhow::Result<Self> {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            ensure!(
                std::time::Instant::now() < deadline,
                "{unit} never got midway"
            );
            let show = as_octo(&[
                "systemctl",
                "--user",
                "show",
                "-p",
                "SubState",
                "-p",
                "ControlGroup",
                unit,
            ])?;
            let property = |name: &str| {
                show.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or_default()
                    .to_owned()
            };
            let (state, group) = (property("SubState"), property("ControlGroup"));
            ensure!(
                !matches!(state.as_str(), "exited" | "failed"),
                "{unit} ended before the test could hold it midway ({state})"
            );
            if state != "running" || group.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let dir = Path::new("/sys/fs/cgroup").join(group.trim_start_matches('/'));
            let held = Self {
                unit: unit.to_owned(),
                freeze: dir.join("cgroup.freeze"),
            };
            held.set(true)?;
            let events = dir.join("cgroup.events");
            let frozen = std::time::Instant::now() + Duration::from_secs(10);
            while !std::fs::read_to_string(&events)
                .with_context(|| events.display().to_string())?
                .lines()
                .any(|l| l == "frozen 1")
            {
                ensure!(std::time::Instant::now() < frozen, "{unit} did not freeze");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if midway() {
                return Ok(held);
            }
            held.set(false)?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn set(&self, frozen: bool) -> anyhow::Result<()> {
        std::fs::write(&self.freeze, if frozen { "1" } else { "0" })
            .with_context(|| format!("writing {}", self.freeze.display()))
    }

    /// `kill -9` of every process of the unit (a fatal signal ends a frozen process), then the
    /// cgroup thawed, so that the unit's `ExecStopPost=` (which lands in it) runs.
    fn kill(self) -> anyhow::Result<()> {
        as_octo(&["systemctl", "--user", "kill", "--signal=KILL", &self.unit])?;
        match std::fs::write(&self.freeze, "0") {
            // The unit is gone already, and its cgroup with it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            done => done.with_context(|| format!("writing {}", self.freeze.display())),
        }
    }
}

async fn wait_for_octod() -> anyhow::Result<()> {
    util::eventually(Duration::from_secs(60), "octod's /api/health", async || {
        expect(
            &util::request(PORT, "GET", "/api/health", &[], None)?,
            200,
            "health",
        )
    })
    .await
}

/// Runs a shell script in the session's container, as its user.
fn in_container(id: &str, script: &str) -> anyhow::Result<String> {
    as_octo(&[
        "podman",
        "exec",
        &format!("octo-{id}"),
        "/bin/busybox",
        "sh",
        "-c",
        script,
    ])
}

/// Every path of the home with its mode, and the SHA-256 of each file or the target of
/// each link.
fn manifest(id: &str) -> anyhow::Result<String> {
    in_container(
        id,
        "cd /home/dev && B=/bin/busybox && $B find . | $B sort | while read -r p; do \
           if [ -L \"$p\" ]; then echo \"$p link $($B readlink \"$p\")\"; \
           elif [ -f \"$p\" ]; then echo \"$p $($B stat -c %a \"$p\") $($B sha256sum < \"$p\")\"; \
           else echo \"$p $($B stat -c '%a %F' \"$p\")\"; fi; done",
    )
}

fn snapshots(user: &Client, id: &str) -> anyhow::Result<Value> {
    let answer = user.call("GET", &format!("/api/sessions/{id}/snapshots"), None)?;
    expect(&answer, 200, "list snapshots")?;
    answer.json()
}

/// Waits for the session's snapshot job on `snapshot` to end; the job.
async fn job_ended(user: &Client, id: &str, snapshot: &str) -> anyhow::Result<Value> {
    util::eventually(
        Duration::from_secs(300),
        "the snapshot job's end",
        async || {
            let job = snapshots(user, id)?["job"].clone();
            ensure!(
                job["snapshot"] == snapshot && job["state"] != "running",
                "still running: {job}"
            );
            Ok(job)
        },
    )
    .await
}

/// What is under the session's snapshot storage.
fn stored(id: &str) -> anyhow::Result<Vec<String>> {
    let dir = Path::new(WORK).join("state/snapshots").join(id);
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    names.sort();
    Ok(names)
}

/// The container's state as Podman says it (`running`, `paused`, …).
fn container_state(id: &str) -> anyhow::Result<String> {
    Ok(as_octo(&[
        "podman",
        "inspect",
        "--format",
        "{{.State.Status}}",
        &format!("octo-{id}"),
    ])?
    .trim()
    .to_owned())
}

async fn register(lines: &std::sync::mpsc::Receiver<String>) -> anyhow::Result<(Client, Client)> {
    let code = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .context("octod logged no first admin invite code")?;
        if let Some((_, code)) = line.split_once("first admin invite code: ") {
            break code.trim().to_owned();
        }
    };
    wait_for_octod().await?;
    let register = |code: &str, name: &str| {
        util::request(
            PORT,
            "POST",
            "/api/auth/register",
            &[],
            Some(&format!(
                r#"{{"invite_code":"{code}","username":"{name}","password":"{PASSWORD}"}}"#
            )),
        )
    };
    let answer = register(&code, "snap1")?;
    expect(&answer, 201, "register snap1")?;
    let user = sign_in(PORT, &answer)?;
    let invite = user.call("POST", "/api/admin/invite-codes", Some("{}"))?;
    ensure!(
        invite.status == 201,
        "invite: {} {}",
        invite.status,
        invite.body
    );
    let code = invite.json()?["code"].as_str().context("code")?.to_owned();
    let answer = register(&code, "snap2")?;
    expect(&answer, 201, "register snap2")?;
    let other = sign_in(PORT, &answer)?;
    Ok((user, other))
}

/// Steps 1–4.
async fn scenario(
    octod: &mut std::process::Child,
    lines: &std::sync::mpsc::Receiver<String>,
) -> anyhow::Result<(Client, String)> {
    let (user, other) = register(lines).await?;
    let answer = user.call(
        "POST",
        "/api/sessions",
        Some(r#"{"template":"coding-copilot"}"#),
    )?;
    ensure!(
        matches!(answer.status, 201 | 202),
        "create: {} {}",
        answer.status,
        answer.body
    );
    let id = answer.json()?["id"].as_str().context("id")?.to_owned();
    util::session_running(|p| user.call("GET", p, None), &id, Duration::from_secs(120)).await?;

    // 1. Files of every kind, then a snapshot of the running session.
    in_container(
        &id,
        "cd /home/dev && B=/bin/busybox && $B mkdir -p src/deep conversations && \
         echo hello > src/deep/a.txt && echo '{\"turns\":1}' > conversations/one.json && \
         $B dd if=/dev/urandom of=noise.bin bs=1024 count=1536 2>/dev/null && \
         $B chmod 600 noise.bin && $B chmod 750 src && $B ln -s src/deep/a.txt link",
    )?;
    let before = manifest(&id)?;
    ensure!(
        before.contains("./noise.bin 600 ") && before.contains("./link link src/deep/a.txt"),
        "manifest: {before}"
    );
    let answer = user.call(
        "POST",
        &format!("/api/sessions/{id}/snapshots"),
        Some(r#"{"name":"before refactor"}"#),
    )?;
    expect(&answer, 202, "take a snapshot")?;
    let snapshot = answer.json()?["snapshot"]
        .as_str()
        .context("snapshot")?
        .to_owned();
    let job = job_ended(&user, &id, &snapshot).await?;
    ensure!(job["state"] == "done", "the snapshot failed: {job}");
    let list = snapshots(&user, &id)?;
    let listed = &list["snapshots"][0];
    ensure!(
        list["snapshots"].as_array().map(Vec::len) == Some(1)
            && listed["id"] == snapshot.as_str()
            && listed["name"] == "before refactor"
            && listed["size_bytes"].as_u64() > Some(1 << 20)
            && listed["created_at"].as_u64() > Some(0)
            && listed["was_running"] == true,
        "listing: {list}"
    );
    ensure!(
        container_state(&id)? == "running",
        "the container stays paused"
    );
    say(format!("a snapshot of the running session: {listed}"));
    let table = octoctl(&["session", "snapshot", "list", &id])?;
    ensure!(
        table.contains("before refactor") && table.contains(&snapshot),
        "octoctl session snapshot list: {table}"
    );
    say(format!("octoctl session snapshot list:\n{table}"));
    let again = user.call(
        "POST",
        &format!("/api/sessions/{id}/snapshots"),
        Some(r#"{"name":"before refactor"}"#),
    )?;
    ensure!(
        again.status == 409 && again.json()?["error"]["code"] == "snapshot_exists",
        "the same name again: {} {}",
        again.status,
        again.body
    );
    let bad = user.call(
        "POST",
        &format!("/api/sessions/{id}/snapshots"),
        Some(r#"{"name":"  "}"#),
    )?;
    ensure!(
        bad.status == 400,
        "an empty name: {} {}",
        bad.status,
        bad.body
    );
    for (method, path, body) in [
        ("GET", format!("/api/sessions/{id}/snapshots"), None),
        (
            "POST",
            format!("/api/sessions/{id}/snapshots"),
            Some(r#"{"name":"mine now"}"#),
        ),
        (
            "POST",
            format!("/api/sessions/{id}/snapshots/{snapshot}/restore"),
            None,
        ),
        (
            "DELETE",
            format!("/api/sessions/{id}/snapshots/{snapshot}"),
            None,
        ),
    ] {
        let answer = other.call(method, &path, body)?;
        expect(&answer, 404, &format!("another user's {method} {path}"))?;
    }
    say("the same name is 409, an empty one 400; another user gets 404 for everything");

    // 2. Changes from inside and through the proxy, then a restore with octoctl.
    in_container(
        &id,
        "cd /home/dev && B=/bin/busybox && echo changed > src/deep/a.txt && $B rm noise.bin && \
         echo new > new.txt && $B chmod 700 src && $B rm link && $B mkdir more",
    )?;
    let upload = user.call(
        "PUT",
        &format!("/sessions/{id}/files/api/upload?path=conversations/two.json"),
        Some("{\"turns\":2}"),
    )?;
    expect(&upload, 201, "an upload")?;
    ensure!(manifest(&id)? != before, "the home did not change");
    let restored = octoctl(&["session", "snapshot", "restore", &id, &snapshot, "--yes"])?;
    ensure!(
        restored.contains("done"),
        "octoctl session snapshot restore: {restored}"
    );
    say(format!("octoctl session snapshot restore:\n{restored}"));
    util::session_running(|p| user.call("GET", p, None), &id, Duration::from_secs(120)).await?;
    let after = manifest(&id)?;
    ensure!(
        after == before,
        "the restored home differs:\n--- snapshot\n{before}\n--- restored\n{after}"
    );
    say(format!(
        "restored: the home is byte-identical to the snapshot ({} paths)",
        after.lines().count()
    ));

    // 2b. Forks, from the current home and from the snapshot: side by side, apart.
    for (body, what) in [
        ("{}".to_owned(), "the current home"),
        (format!(r#"{{"snapshot":"{snapshot}"}}"#), "the snapshot"),
    ] {
        let answer = user.call("POST", &format!("/api/sessions/{id}/fork"), Some(&body))?;
        expect(&answer, 202, &format!("a fork from {what}"))?;
        let fork = answer.json()?;
        let fork_id = fork["id"].as_str().context("id")?.to_owned();
        ensure!(
            fork_id != id && fork["name"].as_str().is_some_and(|n| n.ends_with("(fork)")),
            "the fork: {fork}"
        );
        let forked = util::eventually(Duration::from_secs(180), "the fork filled in", async || {
            let answer = user.call("GET", &format!("/api/sessions/{fork_id}"), None)?;
            let state = answer.json()?["state"].clone();
            ensure!(state != "failed", "the fork failed: {}", answer.body);
            ensure!(state == "running", "not running yet: {state}");
            let manifest = manifest(&fork_id)?;
            ensure!(manifest == before, "not the source's home yet:\n{manifest}");
            Ok(manifest)
        })
        .await?;
        in_container(&fork_id, "echo only-in-fork > /home/dev/fork.txt")?;
        in_container(&id, "echo only-in-source > /home/dev/source.txt")?;
        let (source_now, fork_now) = (manifest(&id)?, manifest(&fork_id)?);
        ensure!(
            !source_now.contains("fork.txt")
                && !fork_now.contains("source.txt")
                && fork_now.contains("fork.txt")
                && source_now.contains("source.txt"),
            "the fork and its source share changes:\n{source_now}\n---\n{fork_now}"
        );
        in_container(&id, "/bin/busybox rm /home/dev/source.txt")?;
        say(format!(
            "a fork from {what} runs beside its source with the same {} paths; changes stay apart",
            forked.lines().count()
        ));
        let answer = user.call("DELETE", &format!("/api/sessions/{fork_id}"), None)?;
        ensure!(
            matches!(answer.status, 202 | 204),
            "deleting the fork: {}",
            answer.status
        );
    }

    // 3. kill -9 of the worker midway; a second request meanwhile is 409.
    in_container(
        &id,
        "/bin/busybox dd if=/dev/urandom of=/home/dev/big.bin bs=1048576 count=160 2>/dev/null",
    )?;
    let (big, worker) = start_big(&user, &id, "big").await?;
    let busy = user.call(
        "POST",
        &format!("/api/sessions/{id}/snapshots/{snapshot}/restore"),
        None,
    )?;
    ensure!(
        busy.status == 409 && busy.json()?["error"]["code"] == "operation_running",
        "a restore while a snapshot runs: {} {}",
        busy.status,
        busy.body
    );
    ensure!(
        container_state(&id)? == "paused",
        "the container is not paused while its home is read"
    );
    worker.kill()?;
    let job = job_ended(&user, &id, &big).await?;
    ensure!(job["state"] == "failed", "after kill -9: {job}");
    let list = snapshots(&user, &id)?;
    ensure!(
        list["snapshots"].as_array().map(Vec::len) == Some(1),
        "a killed snapshot is listed: {list}"
    );
    ensure!(
        stored(&id)? == vec![snapshot.clone()],
        "left under the state directory: {:?}",
        stored(&id)?
    );
    util::eventually(
        Duration::from_secs(30),
        "the container unpaused",
        async || {
            ensure!(container_state(&id)? == "running", "not running yet");
            Ok(())
        },
    )
    .await?;
    say(format!(
        "kill -9 of the worker: the job failed ({}), nothing listed or left, the container runs",
        job["reason"]
            .as_str()
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
    ));

    // 4. kill -9 of octod and the worker midway: the next octod's reconciler cleans up.
    let (_, worker) = start_big(&user, &id, "big again").await?;
    let unit = worker.unit.clone();
    let _ = octod.kill();
    let _ = octod.wait();
    worker.kill()?;
    let left = stored(&id)?;
    ensure!(
        left.iter().any(|n| n.starts_with(".partial-")),
        "no partial directory to clean up: {left:?}"
    );
    let (fresh, _) = spawn_octod()?;
    *octod = fresh;
    wait_for_octod().await?;
    util::eventually(
        Duration::from_secs(60),
        "the reconciler's cleanup",
        async || {
            let left = stored(&id)?;
            ensure!(left == vec![snapshot.clone()], "still there: {left:?}");
            let load = as_octo(&["systemctl", "--user", "show", "-p", "LoadState", &unit])?;
            ensure!(load.trim() == "LoadState=not-found", "{unit}: {load}");
            Ok(())
        },
    )
    .await?;
    ensure!(
        container_state(&id)? == "running",
        "the container stays paused"
    );
    ensure!(
        snapshots(&user, &id)?["snapshots"].as_array().map(Vec::len) == Some(1),
        "listing after the crash"
    );
    say(
        "kill -9 of octod and the worker: the reconciler removed the partial snapshot and the unit",
    );

    restore_killed(&user, &id, octod).await?;
    disk_full(&user, &id, &snapshot).await?;

    // Delete through the API frees the name.
    in_container(&id, "/bin/busybox rm /home/dev/big.bin")?;
    Ok((user, id))
}

/// 4b. `kill -9` during a restore, of the worker and then of octod with the worker: the home
/// stays the old one (the swap is one rename, after the unpacking), and what was unpacked
/// beside it goes: after the failed job, and after a crash at the next octod's reconcile.
async fn restore_killed(
    user: &Client,
    id: &str,
    octod: &mut std::process::Child,
) -> anyhow::Result<()> {
    let answer = user.call(
        "POST",
        &format!("/api/sessions/{id}/snapshots"),
        Some(r#"{"name":"large and whole"}"#),
    )?;
    expect(&answer, 202, "a large snapshot")?;
    let large = answer.json()?["snapshot"]
        .as_str()
        .context("snapshot")?
        .to_owned();
    let job = job_ended(user, id, &large).await?;
    ensure!(job["state"] == "done", "the large snapshot failed: {job}");
    // A change after the snapshot: the home a failed restore must keep.
    in_container(id, "echo after > /home/dev/after-the-snapshot.txt")?;
    let kept = manifest(id)?;
    let mountpoint = as_octo(&[
        "podman",
        "volume",
        "inspect",
        "--format",
        "{{.Mountpoint}}",
        &format!("octo-{id}"),
    ])?;
    let volume_dir = Path::new(mountpoint.trim())
        .parent()
        .context("the volume's directory")?
        .to_owned();
    let staging = volume_dir.join(format!(".octo-restore-{large}"));
    let unit = format!("octo-restore-{id}-{large}.service");
    let start_restore = async || -> anyhow::Result<Held> {
        let answer = user.call(
            "POST",
            &format!("/api/sessions/{id}/snapshots/{large}/restore"),
            None,
        )?;
        expect(&answer, 202, "restore the large snapshot")?;
        // Held, to be killed, as soon as it unpacks beside the home.
        Held::midway(&unit, || staging.is_dir()).await
    };

    // The worker killed: the job fails, the session runs again on its old home, and nothing
    // is left beside it.
    start_restore().await?.kill()?;
    let job = job_ended(user, id, &large).await?;
    ensure!(
        job["state"] == "failed",
        "the restore was to be killed midway (it ended first?): {job}"
    );
    util::session_running(
        |path| user.call("GET", path, None),
        id,
        Duration::from_secs(120),
    )
    .await?;
    let home = manifest(id)?;
    ensure!(
        home == kept,
        "the home after a killed restore is not the old one:\n--- before\n{kept}\n--- after\n{home}"
    );
    util::eventually(
        Duration::from_secs(60),
        "the unpacked files beside the home removed",
        async || {
            ensure!(!staging.exists(), "{} is still there", staging.display());
            Ok(())
        },
    )
    .await?;
    say(format!(
        "kill -9 of the restore's worker: the job failed ({}), the session runs on its old home (same manifest), nothing is left beside it",
        job["reason"]
            .as_str()
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
    ));

    // octod and the worker killed: the files stay beside the home until the next octod's
    // reconcile; the home is the old one.
    let worker = start_restore().await?;
    let _ = octod.kill();
    let _ = octod.wait();
    worker.kill()?;
    ensure!(staging.exists(), "nothing unpacked to clean up");
    let (fresh, _) = spawn_octod()?;
    *octod = fresh;
    wait_for_octod().await?;
    util::eventually(
        Duration::from_secs(120),
        "the reconciler's cleanup beside the home",
        async || {
            ensure!(!staging.exists(), "{} is still there", staging.display());
            let load = as_octo(&["systemctl", "--user", "show", "-p", "LoadState", &unit])?;
            ensure!(load.trim() == "LoadState=not-found", "{unit}: {load}");
            Ok(())
        },
    )
    .await?;
    // The restore had stopped the session; it is started again by its owner.
    util::eventually(
        Duration::from_secs(60),
        "the session to resume",
        async || {
            let answer = user.call("POST", &format!("/api/sessions/{id}/resume"), None)?;
            ensure!(
                matches!(answer.status, 200 | 202),
                "resume: {} {}",
                answer.status,
                answer.body
            );
            Ok(())
        },
    )
    .await?;
    util::session_running(
        |path| user.call("GET", path, None),
        id,
        Duration::from_secs(120),
    )
    .await?;
    let home = manifest(id)?;
    ensure!(
        home == kept,
        "the home after a crash during a restore is not the old one"
    );
    say(
        "kill -9 of octod and the restore's worker: the next octod's reconciler removed what was unpacked beside the home and the unit; the home is the old one",
    );
    in_container(id, "/bin/busybox rm /home/dev/after-the-snapshot.txt")?;
    expect(
        &user.call(
            "DELETE",
            &format!("/api/sessions/{id}/snapshots/{large}"),
            None,
        )?,
        204,
        "delete the large snapshot",
    )?;
    Ok(())
}

/// 4c. The disk fills up midway: the session's snapshot storage on a small file system of its
/// own (a 16 MiB tmpfs holding what was there), then a snapshot of the 160 MiB home. The job
/// fails saying so, nothing partial is listed or left, the container runs, the home is as it
/// was; the other snapshot is untouched.
async fn disk_full(user: &Client, id: &str, snapshot: &str) -> anyhow::Result<()> {
    let dir = Path::new(WORK).join("state/snapshots").join(id);
    let aside = Path::new(WORK).join(format!("aside-{id}"));
    let home = manifest(id)?;
    let uid = util::run(Command::new("id").args(["-u", OCTO]))?;
    let gid = util::run(Command::new("id").args(["-g", OCTO]))?;
    util::run(Command::new("cp").args(["-a"]).arg(&dir).arg(&aside))?;
    util::run(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!(
                "size=16m,mode=0700,uid={},gid={}",
                uid.trim(),
                gid.trim()
            ))
            .arg("tmpfs")
            .arg(&dir),
    )?;
    let result = async {
        util::run(
            Command::new("cp")
                .args(["-a"])
                .arg(format!("{}/.", aside.display()))
                .arg(&dir),
        )?;
        let answer = user.call(
            "POST",
            &format!("/api/sessions/{id}/snapshots"),
            Some(r#"{"name":"on a full disk"}"#),
        )?;
        expect(&answer, 202, "a snapshot onto a small file system")?;
        let full = answer.json()?["snapshot"]
            .as_str()
            .context("snapshot")?
            .to_owned();
        let job = job_ended(user, id, &full).await?;
        let reason = job["reason"].as_str().unwrap_or_default().to_owned();
        ensure!(
            job["state"] == "failed" && reason.contains("No space left on device"),
            "a snapshot onto a full disk: {job}"
        );
        let list = snapshots(user, id)?;
        ensure!(
            list["snapshots"].as_array().map(Vec::len) == Some(1)
                && list["snapshots"][0]["id"] == snapshot,
            "listed after the full disk: {list}"
        );
        ensure!(
            stored(id)? == vec![snapshot.to_owned()],
            "left on the full disk: {:?}",
            stored(id)?
        );
        util::eventually(Duration::from_secs(30), "the container unpaused", async || {
            ensure!(container_state(id)? == "running", "not running yet");
            Ok(())
        })
        .await?;
        ensure!(manifest(id)? == home, "the home changed");
        // The reason came from the worker's report, which octod removed once read.
        let reports = Path::new("/run/user").join(uid.trim()).join("octo/workers");
        let left: Vec<_> = std::fs::read_dir(&reports)
            .with_context(|| format!("reading {}", reports.display()))?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        ensure!(left.is_empty(), "worker reports left: {left:?}");
        say(format!(
            "a full disk midway (16 MiB for a 160 MiB home): the job failed ({}), nothing partial listed or left, the container runs, the home is as it was",
            reason
                .lines()
                .find(|l| l.contains("No space left"))
                .unwrap_or_default()
                .trim()
        ));
        Ok(())
    }
    .await;
    let unmounted = util::run(Command::new("umount").arg(&dir));
    let _ = std::fs::remove_dir_all(&aside);
    result?;
    unmounted?;
    ensure!(
        stored(id)? == vec![snapshot.to_owned()],
        "the snapshot storage after the full disk: {:?}",
        stored(id)?
    );
    Ok(())
}

/// Starts a snapshot of the (large) home and holds its worker still once it is writing the
/// archive.
async fn start_big(user: &Client, id: &str, name: &str) -> anyhow::Result<(String, Held)> {
    let answer = user.call(
        "POST",
        &format!("/api/sessions/{id}/snapshots"),
        Some(&format!(r#"{{"name":"{name}"}}"#)),
    )?;
    expect(&answer, 202, "take a large snapshot")?;
    let snapshot = answer.json()?["snapshot"]
        .as_str()
        .context("snapshot")?
        .to_owned();
    let unit = format!("octo-snapshot-{id}-{snapshot}.service");
    let partial = Path::new(WORK)
        .join("state/snapshots")
        .join(id)
        .join(format!(".partial-{snapshot}/home.tar.zst"));
    let held = Held::midway(&unit, || partial.is_file()).await?;
    Ok((snapshot, held))
}

/// 5. The quota: the first snapshot passes 1 MiB already.
async fn quota(user: &Client, id: &str) -> anyhow::Result<()> {
    wait_for_octod().await?;
    let answer = user.call(
        "POST",
        &format!("/api/sessions/{id}/snapshots"),
        Some(r#"{"name":"one more"}"#),
    )?;
    let body = answer.json().unwrap_or_default();
    ensure!(
        answer.status == 507
            && body["error"]["code"] == "snapshot_quota"
            && body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("storage quota for snapshots is reached")
                    && m.contains("of 1 MiB")),
        "past the quota: {} {}",
        answer.status,
        answer.body
    );
    let list = snapshots(user, id)?;
    ensure!(list["quota_bytes"] == 1 << 20, "quota: {list}");
    say(format!("past the quota: 507 {}", body["error"]["message"]));
    // Delete the snapshot, then the session.
    let snapshot = list["snapshots"][0]["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let answer = user.call(
        "DELETE",
        &format!("/api/sessions/{id}/snapshots/{snapshot}"),
        None,
    )?;
    expect(&answer, 204, "delete the snapshot")?;
    ensure!(stored(id)?.is_empty(), "after delete: {:?}", stored(id)?);
    let audit = user
        .call("GET", "/api/admin/audit?limit=100", None)?
        .json()?;
    // The restore was octoctl's, as root.
    for (action, actor) in [
        ("session.fork", "snap1"),
        ("session.snapshot", "snap1"),
        ("session.snapshot.restore", "root"),
        ("session.snapshot.delete", "snap1"),
    ] {
        ensure!(
            audit
                .as_array()
                .is_some_and(|l| l.iter().any(|e| e["action"] == action
                    && e["actor"] == actor
                    // A fork's entry names the new session, and its source in the detail.
                    && (e["target"] == id
                        || e["detail"]
                            .as_str()
                            .is_some_and(|d| d.starts_with(&format!("from {id}")))))),
            "no {action} of {id} by {actor} in the audit log: {audit}"
        );
    }
    say("the audit log has the snapshot, the restore and the delete");
    let answer = user.call("DELETE", &format!("/api/sessions/{id}"), None)?;
    ensure!(
        matches!(answer.status, 202 | 204),
        "delete: {} {}",
        answer.status,
        answer.body
    );
    util::eventually(
        Duration::from_secs(120),
        "the session deleted",
        async || {
            let answer = user.call("GET", &format!("/api/sessions/{id}"), None)?;
            expect(&answer, 404, "deleted")
        },
    )
    .await?;
    say("deleted the snapshot and the session");
    Ok(())
}
