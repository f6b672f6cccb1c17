//! `octo-e2e backup` (as root): issue 17's instance backup and restore through the real
//! `octod serve` (running as `octo`), the real `octoctl` as root, the snapshot worker's
//! transient units and the stand-in session image with the real gateway.
//!
//! 1. Two users, a spare invite code, a running session and a stopped one, each with files
//!    and a snapshot, a credential file in the configuration.
//! 2. `octoctl backup create` while a shell in the running session writes numbered files
//!    without pause: progress shown, the archive 0600, `backup verify` reads it intact.
//! 3. A truncated archive and one whose header has a format from the future are refused by
//!    `backup restore` with clear errors and change nothing; the intact archive is refused on
//!    an instance in use.
//! 4. Everything wiped (the sessions deleted with their units, volumes and snapshots, the
//!    state directory and the credential removed: a fresh install on the same host), then
//!    `backup restore`, then octod started: both users sign in, the spare invite code
//!    registers a third, the running session runs with its files (the numbered files a run
//!    without gaps: the home was read at one instant), the stopped one is stopped with its
//!    files, the snapshots are listed, the audit log has the old entries and the credential
//!    is back with its mode.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use serde_json::Value;

use crate::admin::{as_user, bin, spawn_logged};
use crate::api::{Client, expect, sign_in};
use crate::util::{self, say};

const PORT: u16 = 18_531;
const IMAGE: &str = "localhost/octo-backup-e2e:gateway";
const WORK: &str = "/var/tmp/octo-backup-e2e";
const PASSWORD: &str = "correct horse battery";
const OCTO: &str = "octo";
const SECRET: &str = "not-a-real-key-0123456789";

/// The `octo` side: the stand-in image, built afresh so that it has this tree's gateway.
pub(crate) fn prepare() -> anyhow::Result<()> {
    let _ = Command::new("podman").args(["rmi", "-f", IMAGE]).output();
    util::ensure_served_gateway_image(IMAGE)
}

pub(crate) async fn run() -> anyhow::Result<()> {
    let e2e = std::env::current_exe()?;
    let e2e = e2e.to_string_lossy();
    util::run(&mut as_user(OCTO, &[&e2e, "backup", "--prepare"])?)?;
    sh(&format!(
        "rm -rf {WORK} && mkdir -p {WORK}/etc/credentials && chown {OCTO}: {WORK} && chmod 0755 {WORK} {WORK}/etc && \
         chmod 0700 {WORK}/etc/credentials && printf %s {SECRET} > {WORK}/etc/credentials/llm-key && \
         chmod 0600 {WORK}/etc/credentials/llm-key"
    ))?;
    std::fs::write(
        Path::new(WORK).join("etc/octod.toml"),
        format!(
            "[server]\nstate_dir = \"{WORK}/state\"\nadmin_socket = \"{WORK}/admin.sock\"\n\n\
             [sessions]\nimage = \"{IMAGE}\"\ntemplates_dir = \"/opt/octo/src/container/templates\"\nidle_timeout_minutes = 0\n"
        ),
    )?;
    let (mut child, lines) = spawn_octod()?;
    let result = scenario(&mut child, &lines).await;
    stop(&mut child);
    result
}

fn sh(script: &str) -> anyhow::Result<String> {
    util::run(Command::new("sh").args(["-c", script]))
}

fn spawn_octod() -> anyhow::Result<(std::process::Child, std::sync::mpsc::Receiver<String>)> {
    let octod = bin("octod");
    let config = format!("{WORK}/etc/octod.toml");
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

/// `octoctl --socket … ARGS` as root.
fn octoctl(args: &[&str]) -> anyhow::Result<Output> {
    let socket = format!("{WORK}/admin.sock");
    Command::new(bin("octoctl"))
        .args(["--socket", &socket])
        .args(args)
        .output()
        .with_context(|| format!("running octoctl {args:?}"))
}

/// `octoctl` that must succeed: its standard output and error.
fn ok(args: &[&str]) -> anyhow::Result<(String, String)> {
    let out = octoctl(args)?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    ensure!(
        out.status.success(),
        "octoctl {args:?}: {}\n{stdout}{stderr}",
        out.status
    );
    Ok((stdout, stderr))
}

/// `octoctl` that must fail: its standard error.
fn fails(args: &[&str]) -> anyhow::Result<String> {
    let out = octoctl(args)?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        !out.status.success(),
        "octoctl {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(stderr)
}

fn as_octo(command: &[&str]) -> anyhow::Result<String> {
    util::run(&mut as_user(OCTO, command)?)
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

/// The session's home on the host (its volume's mount point).
fn home(id: &str) -> anyhow::Result<String> {
    Ok(as_octo(&[
        "podman",
        "volume",
        "inspect",
        "--format",
        "{{.Mountpoint}}",
        &format!("octo-{id}"),
    ])?
    .trim()
    .to_owned())
}

/// Every path of the home with its mode and the SHA-256 of each file or the target of each
/// link, read on the host (the session may be stopped); `live/` left out.
fn manifest(id: &str) -> anyhow::Result<String> {
    util::tree_manifest(&home(id)?, ". -path ./live -prune -o -print")
}

/// The numbers of the complete files in the home's `live/` (each must hold its own number),
/// and the number of the one being written (`N.tmp`, before its rename), if any.
fn live(id: &str) -> anyhow::Result<(Vec<u64>, Option<u64>)> {
    util::numbered_files(&Path::new(&home(id)?).join("live"))
}

fn register(code: &str, name: &str) -> anyhow::Result<util::Answer> {
    util::request(
        PORT,
        "POST",
        "/api/auth/register",
        &[],
        Some(&format!(
            r#"{{"invite_code":"{code}","username":"{name}","password":"{PASSWORD}"}}"#
        )),
    )
}

fn login(name: &str) -> anyhow::Result<Client> {
    let answer = util::request(
        PORT,
        "POST",
        "/api/auth/login",
        &[],
        Some(&format!(
            r#"{{"username":"{name}","password":"{PASSWORD}"}}"#
        )),
    )?;
    expect(&answer, 200, &format!("sign-in of {name}"))?;
    sign_in(PORT, &answer)
}

fn invite(admin: &Client) -> anyhow::Result<String> {
    let invite = admin.call("POST", "/api/admin/invite-codes", Some("{}"))?;
    expect(&invite, 201, "an invite code")?;
    Ok(invite.json()?["code"].as_str().context("code")?.to_owned())
}

fn session(user: &Client, id: &str) -> anyhow::Result<Value> {
    let answer = user.call("GET", &format!("/api/sessions/{id}"), None)?;
    expect(&answer, 200, "a session")?;
    answer.json()
}

fn snapshots(user: &Client, id: &str) -> anyhow::Result<Value> {
    let answer = user.call("GET", &format!("/api/sessions/{id}/snapshots"), None)?;
    expect(&answer, 200, "list snapshots")?;
    answer.json()
}

/// A running session of `user` with files, and a snapshot of it named `name`.
async fn session_with_snapshot(user: &Client, name: &str) -> anyhow::Result<String> {
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
    in_container(
        &id,
        &format!(
            "cd /home/dev && B=/bin/busybox && $B mkdir -p src/deep && echo {name} > src/deep/a.txt && \
             $B dd if=/dev/urandom of=noise.bin bs=1024 count=512 2>/dev/null && $B chmod 600 noise.bin && \
             $B ln -s src/deep/a.txt link"
        ),
    )?;
    let answer = user.call(
        "POST",
        &format!("/api/sessions/{id}/snapshots"),
        Some(&format!(r#"{{"name":"{name}"}}"#)),
    )?;
    expect(&answer, 202, "take a snapshot")?;
    util::eventually(Duration::from_secs(120), "the snapshot", async || {
        let list = snapshots(user, &id)?;
        ensure!(
            list["snapshots"].as_array().map(Vec::len) == Some(1),
            "not listed yet: {list}"
        );
        Ok(())
    })
    .await?;
    // The home moves on after the snapshot. The snapshot is listed when its worker renames it
    // into place; octod unpauses the container when the worker's unit has ended, a moment
    // later (seen under load: an exec in between found the container paused).
    util::eventually(
        Duration::from_secs(60),
        "a write after the snapshot",
        async || in_container(&id, "echo after > /home/dev/after-snapshot.txt"),
    )
    .await?;
    Ok(id)
}

async fn scenario(
    octod: &mut std::process::Child,
    lines: &std::sync::mpsc::Receiver<String>,
) -> anyhow::Result<()> {
    // 1. Users, an invite code, two sessions.
    let code = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .context("octod logged no first admin invite code")?;
        if let Some((_, code)) = line.split_once("first admin invite code: ") {
            break code.trim().to_owned();
        }
    };
    wait_for_octod().await?;
    expect(&register(&code, "bk1")?, 201, "register bk1")?;
    let admin = login("bk1")?;
    expect(&register(&invite(&admin)?, "bk2")?, 201, "register bk2")?;
    let other = login("bk2")?;
    let spare = invite(&admin)?;
    let running = session_with_snapshot(&admin, "running one").await?;
    let stopped = session_with_snapshot(&other, "stopped one").await?;
    let answer = other.call("POST", &format!("/api/sessions/{stopped}/stop"), None)?;
    ensure!(
        matches!(answer.status, 200 | 202),
        "stop: {} {}",
        answer.status,
        answer.body
    );
    util::eventually(Duration::from_secs(120), "the stop", async || {
        let s = session(&other, &stopped)?;
        ensure!(s["state"] == "stopped", "{s}");
        Ok(())
    })
    .await?;
    let (running_files, stopped_files) = (manifest(&running)?, manifest(&stopped)?);
    say(format!(
        "users bk1 (admin) and bk2, a spare invite code; session {running} running and {stopped} stopped, each with {} paths and a snapshot",
        running_files.lines().count()
    ));

    // 2. A backup while a shell writes numbered files into the running session.
    let writer = {
        let id = running.clone();
        std::thread::spawn(move || {
            in_container(
                &id,
                "cd /home/dev && /bin/busybox mkdir -p live && i=0; \
                 while [ ! -e stop ]; do echo $i > live/$i.tmp && /bin/busybox mv live/$i.tmp live/$i.txt; i=$((i+1)); done; echo $i",
            )
        })
    };
    util::eventually(
        Duration::from_secs(30),
        "the writer's first files",
        async || {
            ensure!(live(&running)?.0.len() > 10, "not yet");
            Ok(())
        },
    )
    .await?;
    let archive = format!("{WORK}/instance.octo-backup");
    let config_dir = format!("{WORK}/etc");
    let (out, progress) = ok(&["backup", "create", &archive, "--config-dir", &config_dir])?;
    in_container(&running, "touch /home/dev/stop")?;
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    ensure!(
        progress.contains("the state copied")
            && progress.contains("session 1/2")
            && progress.contains("session 2/2"),
        "no progress shown: {progress}"
    );
    let mode = sh(&format!("stat -c %a {archive}"))?;
    ensure!(mode.trim() == "600", "the archive's mode is {mode}");
    say(format!(
        "octoctl backup create while {} files were written: {}{}",
        written.trim(),
        progress,
        out.trim()
    ));
    let (verified, _) = ok(&["backup", "verify", &archive])?;
    ensure!(
        verified.contains("intact") && verified.contains(&running) && verified.contains(&stopped),
        "verify: {verified}"
    );
    say(format!("octoctl backup verify:\n{verified}"));
    let lean = format!("{WORK}/lean.octo-backup");
    ok(&[
        "backup",
        "create",
        &lean,
        "--config-dir",
        &config_dir,
        "--without-credentials",
        "--without-snapshots",
    ])?;
    let (text, _) = ok(&["--json", "backup", "verify", &lean])?;
    let lean_view: Value = serde_json::from_str(&text)?;
    let holds_key = |path: &str| -> anyhow::Result<bool> {
        let bytes = std::fs::read(path)?;
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut zstd::Decoder::new(bytes.as_slice())?, &mut plain)?;
        Ok(plain.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()))
    };
    ensure!(
        holds_key(&archive)?,
        "the full archive lacks the credential"
    );
    ensure!(
        lean_view["header"]["with_credentials"] == false
            && lean_view["header"]["with_snapshots"] == false
            && lean_view["sessions"].as_array().is_some_and(
                |l| l.len() == 2 && l.iter().all(|s| s["snapshots"] == serde_json::json!([]))
            )
            && !holds_key(&lean)?,
        "--without-credentials --without-snapshots: {lean_view}"
    );
    say("--without-credentials --without-snapshots: neither the key nor a snapshot in the archive");

    // 3. Refusals that change nothing.
    let users_before = ok(&["--json", "user", "list"])?.0;
    let bytes = std::fs::read(&archive)?;
    let truncated = format!("{WORK}/truncated.octo-backup");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2])?;
    let error = fails(&["backup", "restore", &truncated, "--config-dir", &config_dir])?;
    ensure!(error.contains("damaged"), "a truncated archive: {error}");
    say(format!("a truncated archive is refused: {}", error.trim()));
    let future = format!("{WORK}/future.octo-backup");
    future_archive(&future)?;
    let error = fails(&["backup", "restore", &future, "--config-dir", &config_dir])?;
    ensure!(
        error.contains("format is 99, newer than the 1"),
        "an archive from the future: {error}"
    );
    say(format!(
        "an archive of a future format is refused: {}",
        error.trim()
    ));
    let error = fails(&["backup", "restore", &archive, "--config-dir", &config_dir])?;
    ensure!(
        error.contains("in use"),
        "restore on an instance in use: {error}"
    );
    say(format!(
        "restore onto an instance in use is refused: {}",
        error.trim()
    ));
    ensure!(
        ok(&["--json", "user", "list"])?.0 == users_before,
        "the refusals changed the users"
    );
    ensure!(
        session(&admin, &running)?["state"] == "running" && live(&running).is_ok(),
        "the refusals changed the running session"
    );

    // 4. A fresh install on the same host: the sessions deleted (units, volumes, secrets,
    //    snapshots), octod stopped, its state and the credential removed.
    for (user, id) in [(&admin, &running), (&other, &stopped)] {
        let answer = user.call("DELETE", &format!("/api/sessions/{id}"), None)?;
        ensure!(
            matches!(answer.status, 202 | 204),
            "delete: {} {}",
            answer.status,
            answer.body
        );
        util::eventually(Duration::from_secs(120), "the delete", async || {
            let answer = user.call("GET", &format!("/api/sessions/{id}"), None)?;
            expect(&answer, 404, "deleted")
        })
        .await?;
    }
    stop(octod);
    sh(&format!("rm -rf {WORK}/state {WORK}/etc/credentials"))?;
    let volumes = as_octo(&["podman", "volume", "ls", "--format", "{{.Name}}"])?;
    ensure!(
        !volumes.contains(&running) && !volumes.contains(&stopped),
        "volumes left: {volumes}"
    );
    say("wiped: sessions, units, volumes, snapshots, the state and the credential");

    // A fresh octod answering is not stopped by octoctl (it is not octod.service here).
    let (fresh, _) = spawn_octod()?;
    *octod = fresh;
    wait_for_octod().await?;
    let error = fails(&["backup", "restore", &archive, "--config-dir", &config_dir])?;
    ensure!(error.contains("stop it first"), "a running octod: {error}");
    stop(octod);
    sh(&format!("rm -rf {WORK}/state"))?;

    let (out, progress) = ok(&["backup", "restore", &archive, "--config-dir", &config_dir])?;
    ensure!(
        progress.contains("home restored (1 of 2 homes)")
            && progress.contains("home restored (2 of 2 homes)"),
        "restore progress: {progress}"
    );
    say(format!("octoctl backup restore:\n{progress}{}", out.trim()));
    let (fresh, _) = spawn_octod()?;
    *octod = fresh;
    wait_for_octod().await?;

    let admin = login("bk1")?;
    let other = login("bk2")?;
    expect(
        &register(&spare, "bk3")?,
        201,
        "register bk3 with the spare code",
    )?;
    say("bk1 and bk2 sign in with their passwords; the spare invite code registers bk3");
    util::session_running(
        |p| admin.call("GET", p, None),
        &running,
        Duration::from_secs(180),
    )
    .await?;
    ensure!(
        manifest(&running)? == running_files,
        "the running session's files differ:\n{}\n---\n{running_files}",
        manifest(&running)?
    );
    // One instant: files 0..n complete, and at most file n in the middle of its writing.
    let (numbers, writing) = live(&running)?;
    let count = u64::try_from(numbers.len())?;
    let expected: Vec<u64> = (0..count).collect();
    ensure!(
        !numbers.is_empty() && numbers == expected && writing.is_none_or(|n| n == count),
        "the numbered files have gaps: the home was not read at one instant: {numbers:?}, writing {writing:?}"
    );
    in_container(&running, "test -f /home/dev/after-snapshot.txt")?;
    ensure!(
        manifest(&stopped)? == stopped_files,
        "the stopped session's files differ:\n{}\n---\n{stopped_files}",
        manifest(&stopped)?
    );
    // Stopped it stays: it is not started by the reconciler's passes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let s = session(&other, &stopped)?;
    ensure!(s["state"] == "stopped", "the stopped session: {s}");
    say(format!(
        "session {running} runs with its files and numbered files 0..{} without a gap; {stopped} is stopped with its files",
        numbers.len()
    ));
    for (user, id, name) in [
        (&admin, &running, "running one"),
        (&other, &stopped, "stopped one"),
    ] {
        let list = snapshots(user, id)?;
        ensure!(
            list["snapshots"].as_array().map(Vec::len) == Some(1)
                && list["snapshots"][0]["name"] == name,
            "the snapshots of {id}: {list}"
        );
    }
    let audit = admin
        .call("GET", "/api/admin/audit?limit=200", None)?
        .json()?;
    for (action, actor) in [
        ("session.snapshot", "bk1"),
        ("session.snapshot", "bk2"),
        ("backup.create", "root"),
    ] {
        ensure!(
            audit.as_array().is_some_and(|l| l
                .iter()
                .any(|e| e["action"] == action && e["actor"] == actor)),
            "no {action} by {actor} in the audit log: {audit}"
        );
    }
    let key = sh(&format!(
        "stat -c %a {WORK}/etc/credentials/llm-key && cat {WORK}/etc/credentials/llm-key"
    ))?;
    ensure!(key == format!("600\n{SECRET}"), "the credential: {key}");
    say(
        "the snapshots are listed, the audit log has the old entries, the credential is back (0600)",
    );

    for (user, id) in [(&admin, &running), (&other, &stopped)] {
        let _ = user.call("DELETE", &format!("/api/sessions/{id}"), None);
    }
    Ok(())
}

/// An archive whose header says format 99.
fn future_archive(path: &str) -> anyhow::Result<()> {
    let header = serde_json::json!({
        "kind": "octo-backup", "format": 99, "octo_version": "99.0.0", "created_at": 0,
        "host": "future"
    })
    .to_string();
    let out = std::fs::File::create(path)?;
    let mut tar = tar::Builder::new(zstd::Encoder::new(out, 3)?);
    let mut h = tar::Header::new_gnu();
    h.set_size(u64::try_from(header.len())?);
    h.set_mode(0o600);
    h.set_cksum();
    tar.append_data(&mut h, "octo-backup.json", header.as_bytes())?;
    tar.into_inner()?.finish()?;
    Ok(())
}
