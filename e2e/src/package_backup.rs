//! `octo-e2e package backup-create` and `backup-restore`: issue 17's instance backup taken on
//! one packaged host and restored onto another, freshly installed. The dev host's `backup`
//! check proves the parts (faults, refusals, progress) on one host; this is what a sysadmin
//! does when a machine is lost: the archive leaves the old host, a new bare host gets the
//! package, `octoctl backup restore` brings everything back.
//!
//! 1. `backup-create`, on the package check's host (everything through Caddy, octod
//!    systemd's): two users with invite codes, three sessions (running; stopped; running with
//!    a snapshot), each with a tree of files, a spare invite code; `octoctl backup create`
//!    while a shell in the running session writes numbered files without pause. What the new
//!    host must show is written beside the archive ([`EXPECTED`]); `cargo xtask ci` carries
//!    both to the new host.
//! 2. `backup-restore`, on a fresh bare host with the same package, Caddy and the session
//!    image: `octoctl backup restore`, then every account of the old host is there, the
//!    two users sign in with their passwords through Caddy, the spare code registers a third,
//!    each session is in the state it was with its name, its files identical (paths, modes,
//!    SHA-256s), the numbered files a run without gaps (the home was read at one instant),
//!    the snapshot listed.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use crate::api::expect;
use crate::package::{Browser, as_octo, request, sh, sign_in, site, wait_running};
use crate::util::{self, say};

/// The archive, in both hosts.
pub(crate) const ARCHIVE: &str = "/var/tmp/octo-package.octo-backup";
/// What the restored host must show, in both hosts.
pub(crate) const EXPECTED: &str = "/var/tmp/octo-package-backup.json";
const PASSWORD: &str = "a long backup test password";

fn origin() -> String {
    format!("https://{}", site())
}

fn octoctl_json(args: &str) -> anyhow::Result<Value> {
    let out = sh(&format!("octoctl --json {args}"))?;
    serde_json::from_str(&out).with_context(|| format!("octoctl {args}: {out}"))
}

fn code() -> anyhow::Result<String> {
    Ok(octoctl_json("invite-codes generate")?["code"]
        .as_str()
        .context("code in octoctl's JSON")?
        .to_owned())
}

fn register(code: &str, name: &str) -> anyhow::Result<()> {
    let body = format!(r#"{{"invite_code":"{code}","username":"{name}","password":"{PASSWORD}"}}"#);
    let answer = request(
        "POST",
        "/api/auth/register",
        &[("Origin", &origin())],
        Some(&body),
    )?;
    expect(&answer, 201, &format!("register {name} through Caddy"))
}

fn login(name: &str) -> anyhow::Result<Browser> {
    let answer = request(
        "POST",
        "/api/auth/login",
        &[("Origin", &origin())],
        Some(&format!(
            r#"{{"username":"{name}","password":"{PASSWORD}"}}"#
        )),
    )?;
    expect(&answer, 200, &format!("sign-in of {name} through Caddy"))?;
    sign_in(&answer)
}

/// The accounts, as `octoctl user list` gives them: `name role` lines, sorted.
fn accounts() -> anyhow::Result<Vec<String>> {
    let list = octoctl_json("user list")?;
    let users = list
        .as_array()
        .with_context(|| format!("octoctl user list: {list}"))?;
    let mut out: Vec<String> = users
        .iter()
        .map(|u| {
            format!(
                "{} {}",
                u["name"].as_str().unwrap_or("?"),
                u["role"].as_str().unwrap_or("?")
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

fn in_container(id: &str, script: &str) -> anyhow::Result<String> {
    as_octo(&format!(
        "podman exec octo-{id} sh -c {}",
        shell_quote(script)
    ))
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The session's home on the host (its volume's mount point).
fn home(id: &str) -> anyhow::Result<String> {
    Ok(as_octo(&format!(
        "podman volume inspect --format '{{{{.Mountpoint}}}}' octo-{id}"
    ))?
    .trim()
    .to_owned())
}

/// Every path under the home's `bk/` with its mode and the SHA-256 of each file or the
/// target of each link, read on the host as root (the session may be stopped). Only `bk/`:
/// the agent writes its own logs elsewhere in the home whenever it starts.
fn manifest(id: &str) -> anyhow::Result<String> {
    util::tree_manifest(&home(id)?, "bk")
}

/// The numbers of the complete files in the home's `live/`, sorted.
fn live(id: &str) -> anyhow::Result<Vec<u64>> {
    Ok(util::numbered_files(&Path::new(&home(id)?).join("live"))?.0)
}

/// A session of `user` that runs, with a tree of files under `bk/`.
async fn session_with_files(user: &Browser, name: &str) -> anyhow::Result<String> {
    let answer = user.call(
        "POST",
        "/api/sessions",
        Some(r#"{"template":"coding-copilot"}"#),
    )?;
    ensure!(
        matches!(answer.status, 201 | 202),
        "create {name:?}: {} {}",
        answer.status,
        answer.body
    );
    let id = answer.json()?["id"].as_str().context("id")?.to_owned();
    wait_running(user, &id).await?;
    let answer = user.call(
        "PATCH",
        &format!("/api/sessions/{id}"),
        Some(&json!({ "name": name }).to_string()),
    )?;
    expect(&answer, 200, "rename")?;
    in_container(
        &id,
        &format!(
            "cd ~ && mkdir -p bk/src/deep bk/empty && echo {name:?} > bk/src/deep/a.txt && \
             head -c 1048576 /dev/urandom > bk/noise.bin && chmod 600 bk/noise.bin && \
             chmod 700 bk/src && ln -s src/deep/a.txt bk/link"
        ),
    )?;
    Ok(id)
}

fn session(user: &Browser, id: &str) -> anyhow::Result<Value> {
    let answer = user.call("GET", &format!("/api/sessions/{id}"), None)?;
    expect(&answer, 200, "a session")?;
    answer.json()
}

fn snapshots(user: &Browser, id: &str) -> anyhow::Result<Value> {
    let answer = user.call("GET", &format!("/api/sessions/{id}/snapshots"), None)?;
    expect(&answer, 200, "list snapshots")?;
    answer.json()
}

pub(crate) async fn create() -> anyhow::Result<()> {
    register(&code()?, "bk-ann")?;
    register(&code()?, "bk-ben")?;
    let (ann, ben) = (login("bk-ann")?, login("bk-ben")?);
    let spare = code()?;
    say("two users registered through Caddy with invite codes; a spare code");

    let running = session_with_files(&ann, "Backup — running").await?;
    let stopped = session_with_files(&ann, "Backup — stopped").await?;
    let answer = ann.call("POST", &format!("/api/sessions/{stopped}/stop"), None)?;
    ensure!(
        matches!(answer.status, 200 | 202),
        "stop: {} {}",
        answer.status,
        answer.body
    );
    util::eventually(
        Duration::from_secs(120),
        "the session stopped",
        async || {
            let state = session(&ann, &stopped)?["state"].clone();
            ensure!(state == "stopped", "{state}");
            Ok(())
        },
    )
    .await?;
    let snapped = session_with_files(&ben, "Backup — with a snapshot").await?;
    let answer = ben.call(
        "POST",
        &format!("/api/sessions/{snapped}/snapshots"),
        Some(r#"{"name":"before the move"}"#),
    )?;
    expect(&answer, 202, "take a snapshot")?;
    let snapshot = answer.json()?["snapshot"]
        .as_str()
        .context("snapshot")?
        .to_owned();
    util::eventually(Duration::from_secs(120), "the snapshot", async || {
        let list = snapshots(&ben, &snapped)?;
        ensure!(
            list["snapshots"].as_array().map(Vec::len) == Some(1),
            "not listed yet: {list}"
        );
        Ok(())
    })
    .await?;
    // The home moves on after the snapshot (once the worker's unit has unpaused it).
    util::eventually(
        Duration::from_secs(60),
        "a write after the snapshot",
        async || in_container(&snapped, "echo after > ~/bk/after-the-snapshot.txt"),
    )
    .await?;
    say(format!(
        "three sessions: {running} running, {stopped} stopped, {snapped} running with snapshot {snapshot}"
    ));

    // Numbered files written without pause while the backup runs (each `N.tmp`, then
    // renamed to `N.txt`).
    as_octo(&format!(
        "podman exec -d octo-{running} sh -c {}",
        shell_quote(
            "mkdir -p ~/live && cd ~/live && i=0 && while :; do i=$((i+1)); \
             echo $i > $i.tmp && mv $i.tmp $i.txt; sleep 0.02; done"
        )
    ))?;
    util::eventually(Duration::from_secs(30), "the writer", async || {
        ensure!(live(&running)?.len() >= 10, "fewer than 10 files yet");
        Ok(())
    })
    .await?;
    let mut sessions = Vec::new();
    for (id, owner, state) in [
        (&running, "bk-ann", "running"),
        (&stopped, "bk-ann", "stopped"),
        (&snapped, "bk-ben", "running"),
    ] {
        let user = if owner == "bk-ann" { &ann } else { &ben };
        sessions.push(json!({
            "id": id,
            "owner": owner,
            "state": state,
            "name": session(user, id)?["name"],
            "manifest": manifest(id)?,
        }));
    }
    let backup = sh(&format!(
        "rm -f {ARCHIVE} && octoctl backup create {ARCHIVE} 2>&1"
    ))?;
    let written = live(&running)?;
    ensure!(
        written.len() > 10,
        "the writer stopped during the backup: {} files",
        written.len()
    );
    say(format!(
        "octoctl backup create while the running session wrote files ({} of them by the end):\n{}",
        written.len(),
        backup.trim_end()
    ));
    let expected = json!({
        "accounts": accounts()?,
        "spare": spare,
        "sessions": sessions,
        "running": running,
        "snapshot": { "session": snapped, "id": snapshot, "name": "before the move" },
    });
    std::fs::write(EXPECTED, serde_json::to_string_pretty(&expected)?)?;
    let size = std::fs::metadata(ARCHIVE)?.len();
    say(format!(
        "the archive: {ARCHIVE}, {size} bytes; what the new host must show: {EXPECTED}"
    ));
    Ok(())
}

pub(crate) async fn restore() -> anyhow::Result<()> {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(EXPECTED).with_context(|| format!("reading {EXPECTED}"))?,
    )?;
    ensure!(
        accounts()?.is_empty(),
        "the new host has accounts before the restore: {:?}",
        accounts()?
    );
    let restored = sh(&format!("octoctl backup restore {ARCHIVE} 2>&1"))?;
    say(format!("octoctl backup restore:\n{}", restored.trim_end()));
    util::eventually(
        Duration::from_secs(90),
        "/api/health through Caddy after the restore",
        async || expect(&request("GET", "/api/health", &[], None)?, 200, "health"),
    )
    .await?;

    let want: Vec<String> = serde_json::from_value(expected["accounts"].clone())?;
    let have = accounts()?;
    ensure!(
        have == want,
        "the accounts after the restore: {have:?}, on the old host {want:?}"
    );
    let (ann, ben) = (login("bk-ann")?, login("bk-ben")?);
    say(format!(
        "every account of the old host is back ({}); bk-ann and bk-ben sign in through Caddy with their passwords",
        have.len()
    ));
    register(expected["spare"].as_str().context("spare")?, "bk-cy")?;
    login("bk-cy")?;
    say("the spare invite code registers a third user");

    for s in expected["sessions"].as_array().context("sessions")? {
        let id = s["id"].as_str().context("id")?;
        let user = if s["owner"] == "bk-ann" { &ann } else { &ben };
        if s["state"] == "running" {
            wait_running(user, id).await?;
        } else {
            util::eventually(Duration::from_secs(60), "the recorded state", async || {
                let state = session(user, id)?["state"].clone();
                ensure!(state == s["state"], "{id}: {state}, wanted {}", s["state"]);
                Ok(())
            })
            .await?;
        }
        let now = session(user, id)?;
        ensure!(
            now["name"] == s["name"],
            "{id} is named {}, was {}",
            now["name"],
            s["name"]
        );
        let files = manifest(id)?;
        ensure!(
            files == s["manifest"].as_str().unwrap_or_default(),
            "{id}: the files differ:\n--- before\n{}\n--- after\n{files}",
            s["manifest"].as_str().unwrap_or_default()
        );
        say(format!(
            "{id} ({}, of {}): {} as it was, its {} paths identical",
            s["name"].as_str().unwrap_or_default(),
            s["owner"].as_str().unwrap_or_default(),
            s["state"].as_str().unwrap_or_default(),
            files.lines().count()
        ));
    }
    let running = expected["running"].as_str().context("running")?;
    let numbers = live(running)?;
    let last = numbers.last().copied().unwrap_or(0);
    ensure!(
        last > 0 && numbers.iter().copied().eq(1..=last),
        "the numbered files are not a run without gaps: {} files up to {last}",
        numbers.len()
    );
    say(format!(
        "the running session's numbered files are 1 to {last} without a gap: its home was read at one instant"
    ));
    let snapshot = &expected["snapshot"];
    let session_id = snapshot["session"].as_str().context("session")?;
    let list = snapshots(&ben, session_id)?;
    ensure!(
        list["snapshots"].as_array().is_some_and(|l| l.len() == 1
            && l[0]["id"] == snapshot["id"]
            && l[0]["name"] == snapshot["name"]),
        "the snapshot after the restore: {list}"
    );
    say(format!(
        "the snapshot {:?} of {session_id} is listed",
        snapshot["name"].as_str().unwrap_or_default()
    ));
    let _ = std::fs::remove_file(ARCHIVE);
    Ok(())
}
