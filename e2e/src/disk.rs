//! `octo-e2e disk` (as root): issue 18's disk usage and quota through the real `octod serve`
//! (running as `octo`) and the stand-in session image with the real gateway.
//!
//! 1. With `[limits] disk = "4M"`, a warning at 50 % and a measurement every minute: the
//!    session's home is measured (the API's `disk`, `octoctl session list`'s `HOME` column,
//!    `octo_session_home_bytes` on `/metrics`).
//! 2. Uploads through octod's proxy count at once: past 2 MiB the API says `warning` (the UI's
//!    warning) and the agent's notice `OCTO-DISK-QUOTA.md` appears in the home; an upload
//!    that would pass the quota is `507 insufficient_storage` and leaves nothing behind.
//! 3. The home grows from inside (`podman exec … dd`, as an agent writing): the next measurement sees
//!    it, the state is `over`, and even a small upload is 507. Deleting files frees the space
//!    at the next measurement: the notice goes, an upload passes again.
//! 4. octod again with `admission.state_free_floor` above this host's free space: a create is
//!    `503 host_disk_low` with the reason, and `octoctl status` warns. Then everything goes.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use serde_json::Value;

use crate::admin::{as_user, bin, spawn_logged};
use crate::api::{Client, expect, sign_in};
use crate::util::{self, Answer, say};

const PORT: u16 = 18_497;
const IMAGE: &str = "localhost/octo-disk-e2e:gateway";
const WORK: &str = "/var/tmp/octo-disk-e2e";
const PASSWORD: &str = "correct horse battery";
const OCTO: &str = "octo";
const MIB: u64 = 1 << 20;

/// The `octo` side: the stand-in image, built afresh so that it has this tree's gateway.
pub(crate) fn prepare() -> anyhow::Result<()> {
    let _ = Command::new("podman").args(["rmi", "-f", IMAGE]).output();
    util::ensure_served_gateway_image(IMAGE)
}

pub(crate) async fn run() -> anyhow::Result<()> {
    let e2e = std::env::current_exe()?;
    let e2e = e2e.to_string_lossy();
    util::run(&mut as_user(OCTO, &[&e2e, "disk", "--prepare"])?)?;
    sh(&format!(
        "rm -rf {WORK} && mkdir -p {WORK} && chown {OCTO}: {WORK} && chmod 0755 {WORK}"
    ))?;

    write_config("state_free_floor = \"1M\"\n")?;
    let (mut child, lines) = spawn_octod()?;
    let result = quota(&lines).await;
    stop(&mut child);
    let (admin, id) = result?;

    // A floor above what this host has free.
    write_config("state_free_floor = \"1000T\"\n")?;
    let (mut child, _) = spawn_octod()?;
    let result = floor(&admin, &id).await;
    stop(&mut child);
    result
}

fn sh(script: &str) -> anyhow::Result<String> {
    util::run(Command::new("sh").args(["-c", script]))
}

fn write_config(admission: &str) -> anyhow::Result<()> {
    let text = format!(
        "[server]\nstate_dir = \"{WORK}/state\"\nadmin_socket = \"{WORK}/admin.sock\"\n\n\
         [sessions]\nimage = \"{IMAGE}\"\ntemplates_dir = \"/opt/octo/src/container/templates\"\nidle_timeout_minutes = 0\n\n\
         [limits]\ndisk = \"4M\"\ndisk_warn_percent = 50\ndisk_measure_minutes = 1\n\n\
         [admission]\n{admission}"
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
    let spawned = spawn_logged(&[
        "env",
        "OCTOD_LOG=info",
        &octod,
        "serve",
        "--listen",
        &listen,
        "--config",
        &config,
    ])?;
    Ok(spawned)
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

fn session(user: &Client, id: &str) -> anyhow::Result<Value> {
    let answer = user.call("GET", &format!("/api/sessions/{id}"), None)?;
    expect(&answer, 200, "get session")?;
    answer.json()
}

/// `PUT` `bytes` bytes to `path` in the session's home, through octod's proxy.
fn upload(user: &Client, id: &str, path: &str, bytes: u64) -> anyhow::Result<Answer> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", PORT))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "PUT /sessions/{id}/files/api/upload?path={path} HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\n\
         Connection: close\r\nCookie: {}\r\nOrigin: {}\r\nContent-Length: {bytes}\r\n\r\n",
        user.cookie,
        user.origin()
    )?;
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64))?;
        // A refused upload may close the connection before the body is all sent.
        if stream.write_all(&chunk[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    util::parse_answer(&raw)
}

/// Registers the first admin with the logged invite code; creates a session and waits for it.
async fn quota(lines: &std::sync::mpsc::Receiver<String>) -> anyhow::Result<(Client, String)> {
    let code = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .context("octod logged no first admin invite code")?;
        if let Some((_, code)) = line.split_once("first admin invite code: ") {
            break code.trim().to_owned();
        }
    };
    wait_for_octod().await?;
    let answer = util::request(
        PORT,
        "POST",
        "/api/auth/register",
        &[],
        Some(&format!(
            r#"{{"invite_code":"{code}","username":"disk1","password":"{PASSWORD}"}}"#
        )),
    )?;
    expect(&answer, 201, "register disk1")?;
    let user = sign_in(PORT, &answer)?;
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

    // 1. Measured in the background (the first tick after it runs), shown everywhere.
    let disk = util::eventually(Duration::from_secs(60), "the home measured", async || {
        let disk = session(&user, &id)?["disk"].clone();
        ensure!(disk["measured_at"].is_u64(), "not measured: {disk}");
        Ok(disk)
    })
    .await?;
    let base = disk["used_bytes"].as_u64().context("used_bytes")?;
    ensure!(
        disk["quota_bytes"] == 4 * MIB && disk["quota_state"] == "ok" && base < MIB,
        "disk: {disk}"
    );
    say(format!("measured: {disk}"));
    let list = octoctl(&["session", "list"])?;
    ensure!(
        list.lines().next().is_some_and(|h| h.contains("HOME"))
            && list.lines().any(|l| l.starts_with(&id)),
        "octoctl session list: {list}"
    );
    say(format!("octoctl session list:\n{list}"));
    let metrics = util::request(PORT, "GET", "/metrics", &[], None)?;
    let line = format!("octo_session_home_bytes{{session=\"{id}\"}} ");
    ensure!(
        metrics.body.lines().any(|l| l.starts_with(&line)),
        "no {line} in /metrics: {}",
        metrics.body
    );
    ensure!(
        metrics.body.contains("octod_state_free_bytes "),
        "/metrics: {}",
        metrics.body
    );

    // 2. Uploads count at once; the warning before the quota; 507 past it.
    let answer = upload(&user, &id, "one.bin", MIB + MIB / 2)?;
    expect(&answer, 201, "a 1.5 MiB upload")?;
    let answer = upload(&user, &id, "two.bin", MIB)?;
    expect(&answer, 201, "a 1 MiB upload")?;
    let disk = session(&user, &id)?["disk"].clone();
    ensure!(
        disk["quota_state"] == "warning"
            && disk["owner_used_bytes"].as_u64() >= Some(base + 5 * MIB / 2),
        "after 2.5 MiB: {disk}"
    );
    say(format!("the warning before the quota: {disk}"));
    let notice = util::eventually(Duration::from_secs(60), "the agent's notice", async || {
        let answer = user.call(
            "GET",
            &format!("/sessions/{id}/files/api/download?path=OCTO-DISK-QUOTA.md"),
            None,
        )?;
        expect(&answer, 200, "the notice")?;
        Ok(answer.body)
    })
    .await?;
    ensure!(
        notice.starts_with("# Your storage is almost full"),
        "notice: {notice}"
    );
    say("the agent's notice OCTO-DISK-QUOTA.md is in the home");
    let answer = upload(&user, &id, "three.bin", 2 * MIB)?;
    refused_507(&answer)?;
    let listing = user.call(
        "GET",
        &format!("/sessions/{id}/files/api/list?hidden=true"),
        None,
    )?;
    ensure!(
        !listing.body.contains("three.bin") && !listing.body.contains(".octo-partial"),
        "a refused upload left something: {}",
        listing.body
    );
    say(format!(
        "past the quota: 507 {}",
        answer.json()?["error"]["message"]
    ));

    // 3. The home grows from inside; the next measurement finds it.
    let container = format!("octo-{id}");
    util::run(&mut as_user(
        OCTO,
        &[
            "podman",
            "exec",
            &container,
            "/bin/busybox",
            "dd",
            "if=/dev/zero",
            "of=/home/dev/big.bin",
            "bs=1048576",
            "count=2",
        ],
    )?)?;
    let disk = util::eventually(
        Duration::from_secs(150),
        "the growth measured",
        async || {
            let disk = session(&user, &id)?["disk"].clone();
            ensure!(disk["quota_state"] == "over", "not over yet: {disk}");
            Ok(disk)
        },
    )
    .await?;
    say(format!("measured past the quota: {disk}"));
    refused_507(&upload(&user, &id, "small.bin", 10)?)?;
    let list = octoctl(&["session", "list"])?;
    ensure!(
        list.lines().any(|l| l.starts_with(&id) && l.contains(" !")),
        "octoctl session list marks the user past the quota: {list}"
    );
    let status = octoctl(&["status"])?;
    ensure!(
        status.contains("disk1 uses") && status.contains("disk quota of 4 MiB"),
        "octoctl status: {status}"
    );

    // Deleting frees the space at the next measurement: the notice goes, uploads pass again.
    for path in ["big.bin", "one.bin", "two.bin"] {
        let answer = user.call(
            "DELETE",
            &format!("/sessions/{id}/files/api/delete?path={path}"),
            None,
        )?;
        expect(&answer, 204, &format!("deleting {path}"))?;
    }
    util::eventually(Duration::from_secs(150), "the space freed", async || {
        let disk = session(&user, &id)?["disk"].clone();
        ensure!(disk["quota_state"] == "ok", "not freed yet: {disk}");
        let notice = user.call(
            "GET",
            &format!("/sessions/{id}/files/api/stat?path=OCTO-DISK-QUOTA.md"),
            None,
        )?;
        expect(&notice, 404, "the notice removed")
    })
    .await?;
    expect(
        &upload(&user, &id, "again.bin", MIB)?,
        201,
        "an upload after freeing space",
    )?;
    say("deleting files freed the space: the notice is gone, uploads pass");
    Ok((user, id))
}

fn refused_507(answer: &Answer) -> anyhow::Result<()> {
    let body = answer.json().unwrap_or_default();
    ensure!(
        answer.status == 507
            && body["error"]["code"] == "insufficient_storage"
            && body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("the storage quota is full")),
        "expected 507 insufficient_storage, got {} {}",
        answer.status,
        answer.body
    );
    Ok(())
}

/// 4. The free-space floor: a create is refused with the reason; status warns.
async fn floor(user: &Client, id: &str) -> anyhow::Result<()> {
    wait_for_octod().await?;
    let answer = user.call(
        "POST",
        "/api/sessions",
        Some(r#"{"template":"coding-copilot"}"#),
    )?;
    let body = answer.json().unwrap_or_default();
    ensure!(
        answer.status == 503
            && body["error"]["code"] == "host_disk_low"
            && body["error"]["message"].as_str().is_some_and(|m| m
                .starts_with("the host is short of disk space for Octo's own state: ")
                && m.contains("is kept free")),
        "a create below the floor: {} {}",
        answer.status,
        answer.body
    );
    ensure!(answer.header("retry-after").is_some(), "no Retry-After");
    say(format!("below the floor: 503 {}", body["error"]["message"]));
    let status = octoctl(&["status"])?;
    ensure!(
        status.contains("below admission.state_free_floor"),
        "octoctl status: {status}"
    );
    // Cleanup.
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
    .await
}
