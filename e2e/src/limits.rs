//! `octo-e2e limits`: issue 18's limits and admission control through the real `octod serve`
//! and the stand-in session image, as `octo`.
//!
//! 1. Bad input: `octod config check` and `octod serve` refuse a limit that does not parse and
//!    one above the host's memory, naming file and key; a good file passes, with a warning for
//!    each limit whose cgroup controller is not delegated here.
//! 2. Limits: a session gets `[limits]` as its owner, role and template resolve them; the
//!    API shows them (and which are not enforced); its unit and `podman inspect` carry them
//!    where the controllers are delegated and leave them out where not.
//! 3. Admission, `max_running_per_user = 1` and `max_running = 2`: 6 concurrent creates by one
//!    user leave 1 session (5 × 409 `running_limit`); a third user's create is 503 `host_full`
//!    with the reason; a resume that would cross the host's maximum likewise.
//! 4. octod again with `stop_idle_to_make_room` and a changed memory limit: the resume stops
//!    the longest idle session and starts, with the new limit; the idle-stopped session may
//!    not wake through the proxy while the host is full.
//! 5. octod again with a memory margin larger than the host: a resume is 503
//!    `host_memory_low`. Then every session is deleted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use serde_json::Value;

use crate::api::{Client, expect, sign_in, spawn_octod};
use crate::util::{self, Answer, say};

const PORT: u16 = 18_487;
const IMAGE: &str = "localhost/octo-limits-e2e:gateway";
const PASSWORD: &str = "correct horse battery";
const CREATES: usize = 6;
const MIB: u64 = 1 << 20;

pub(crate) async fn run() -> anyhow::Result<()> {
    util::ensure_served_gateway_image(IMAGE)?;
    let home = PathBuf::from(std::env::var("HOME").context("HOME")?);
    let base = home.join("e2e-limits");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    let controllers = delegated();
    say(format!(
        "cgroup controllers delegated to octo: {controllers:?}"
    ));

    bad_input(&base, &controllers)?;

    let config = base.join("octod.toml");
    std::fs::write(
        &config,
        settings(
            &base,
            "512M",
            "max_running = 2\nmax_running_per_user = 1\nmemory_margin = \"64M\"\n",
        ),
    )?;
    let (child, code) = spawn_octod(PORT, &config)?;
    let first = first_phase(&code, &controllers).await;
    stop_octod(child)?;
    let (lim1, lim2, lim3, ids) = first?;

    std::fs::write(
        &config,
        settings(
            &base,
            "640M",
            "max_running = 2\nmax_running_per_user = 1\nmemory_margin = \"64M\"\nstop_idle_to_make_room = true\nmake_room_idle_minutes = 0\n",
        ),
    )?;
    let (child, _) = spawn_octod(PORT, &config)?;
    let second = make_room(&lim1, &lim2, &ids).await;
    stop_octod(child)?;
    second?;

    std::fs::write(&config, settings(&base, "640M", "memory_margin = \"1T\"\n"))?;
    let (child, _) = spawn_octod(PORT, &config)?;
    let third = memory_floor(&lim2, &ids).await;
    let cleaned = delete_all(&lim1).await;
    stop_octod(child)?;
    let _ = lim3;
    third?;
    cleaned
}

/// The config file: the stand-in image, no idle stop, `[limits]` with `memory` as the default
/// (lim2 has 768M of its own, the research template no pids limit), and `admission`.
fn settings(base: &Path, memory: &str, admission: &str) -> String {
    format!(
        "[server]\nstate_dir = \"{state}\"\nadmin_socket = \"{admin}\"\n\n\
         [sessions]\nimage = \"{IMAGE}\"\ntemplates_dir = \"/opt/octo/src/container/templates\"\nidle_timeout_minutes = 0\n\n\
         [limits]\nmemory = \"{memory}\"\ncpus = 0.5\npids = 256\n\n\
         [limits.users.lim2]\nmemory = \"768M\"\n\n\
         [limits.templates.research-assistant]\npids = \"unlimited\"\n\n\
         [admission]\n{admission}",
        state = base.join("state").display(),
        admin = base.join("admin.sock").display(),
    )
}

/// The controllers delegated to this user's systemd manager (`memory`, `cpu`, `pids`, …).
fn delegated() -> Vec<String> {
    use std::os::unix::fs::MetadataExt as _;
    // The owner of this user's runtime directory is this user.
    let uid = std::fs::metadata(octod::serve::runtime_dir()).map_or(0, |m| m.uid());
    std::fs::read_to_string(format!(
        "/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers"
    ))
    .unwrap_or_default()
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

fn octod() -> String {
    format!(
        "{}/octod",
        std::env::var("OCTO_BIN_DIR").unwrap_or_else(|_| "/opt/octo/target/debug".into())
    )
}

/// `octod ARGS…`: its exit status and stderr.
fn octod_run(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let output = Command::new(octod())
        .args(args)
        .env("OCTOD_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .context("running octod")?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

fn bad_input(base: &Path, controllers: &[String]) -> anyhow::Result<()> {
    let file = base.join("bad.toml");
    let path = file.display().to_string();
    for (text, expected) in [
        (
            "[limits]\nmemory = \"lots\"\n",
            format!(
                "{path}: limits.memory: \"lots\" is not a size: use a number with K, M, G or T, or \"unlimited\""
            ),
        ),
        (
            "[limits.users.lim2]\nmemory = \"64T\"\n",
            format!("{path}: limits.users.lim2.memory: 64 TiB is more than this host's memory ("),
        ),
        (
            "[limits.roles.owner]\npids = 100\n",
            format!(
                "{path}: limits.roles.owner: no role \"owner\": the roles are \"user\" and \"admin\""
            ),
        ),
    ] {
        std::fs::write(&file, text)?;
        let (ok, stderr) = octod_run(&["config", "check", "--config", &path])?;
        ensure!(
            !ok && stderr.contains(&expected),
            "octod config check of {text:?}: ok={ok}, expected {expected:?} in: {stderr}"
        );
        // octod itself refuses to start with it.
        let (ok, stderr) = octod_run(&[
            "serve",
            "--listen",
            &format!("127.0.0.1:{PORT}"),
            "--config",
            &path,
        ])?;
        ensure!(
            !ok && stderr.contains(&expected),
            "octod serve with {text:?}: ok={ok}, expected {expected:?} in: {stderr}"
        );
        say(format!(
            "refused by config check and octod serve: {expected}"
        ));
    }
    // A good file passes, with a warning for each limit it cannot enforce here.
    std::fs::write(&file, settings(base, "512M", "max_running = 2\n"))?;
    let (ok, stderr) = octod_run(&["config", "check", "--config", &path])?;
    ensure!(ok, "octod config check of a good file failed: {stderr}");
    for (controller, key) in [("memory", "memory"), ("cpu", "cpus"), ("pids", "pids")] {
        let warning = format!(
            "[limits] sets {key}, but the {controller} cgroup controller is not delegated to octod's user"
        );
        let delegated = controllers.iter().any(|c| c == controller);
        ensure!(
            stderr.contains(&warning) != delegated,
            "config check, {controller} delegated: {delegated}, warning {warning:?} in: {stderr}"
        );
    }
    say(format!(
        "a good file passes config check; its warnings: {}",
        stderr.trim()
    ));
    Ok(())
}

/// Registers lim1 (the first admin) with the logged code, invites lim2 and lim3.
fn accounts(code: &std::sync::mpsc::Receiver<String>) -> anyhow::Result<(Client, Client, Client)> {
    let code = code
        .recv_timeout(Duration::from_secs(60))
        .context("octod logged no first admin invite code")?;
    let register = |code: &str, name: &str| -> anyhow::Result<Client> {
        let answer = util::request(
            PORT,
            "POST",
            "/api/auth/register",
            &[],
            Some(&format!(
                r#"{{"invite_code":"{code}","username":"{name}","password":"{PASSWORD}"}}"#
            )),
        )?;
        expect(&answer, 201, &format!("register {name}"))?;
        sign_in(PORT, &answer)
    };
    let lim1 = register(&code, "lim1")?;
    let mut others = Vec::new();
    for name in ["lim2", "lim3"] {
        let invite = lim1.call("POST", "/api/admin/invite-codes", Some("{}"))?;
        ensure!(
            matches!(invite.status, 200 | 201),
            "invite: {}",
            invite.body
        );
        let code = invite.json()?["code"]
            .as_str()
            .context("invite code")?
            .to_owned();
        others.push(register(&code, name)?);
    }
    let lim3 = others.pop().context("lim3")?;
    let lim2 = others.pop().context("lim2")?;
    Ok((lim1, lim2, lim3))
}

async fn wait_for_octod() -> anyhow::Result<()> {
    util::eventually(Duration::from_secs(30), "octod's /api/health", async || {
        expect(
            &util::request(PORT, "GET", "/api/health", &[], None)?,
            200,
            "health",
        )
    })
    .await
}

fn stop_octod(mut child: std::process::Child) -> anyhow::Result<()> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait()?;
    ensure!(status.success(), "octod did not exit cleanly: {status}");
    Ok(())
}

/// A create's answer: the session (201, or 202 and then polled until running).
async fn created(user: &Client, answer: &Answer, what: &str) -> anyhow::Result<Value> {
    ensure!(
        matches!(answer.status, 201 | 202),
        "{what}: {} {}",
        answer.status,
        answer.body
    );
    let id = answer.json()?["id"]
        .as_str()
        .context("session id")?
        .to_owned();
    running(user, &id).await
}

/// The session once it runs.
async fn running(user: &Client, id: &str) -> anyhow::Result<Value> {
    util::eventually(
        Duration::from_secs(120),
        "the session running",
        async || {
            let answer = user.call("GET", &format!("/api/sessions/{id}"), None)?;
            expect(&answer, 200, "get session")?;
            let session = answer.json()?;
            ensure!(session["state"] == "running", "state {}", session["state"]);
            Ok(session)
        },
    )
    .await
}

fn session(user: &Client, id: &str) -> anyhow::Result<Value> {
    let answer = user.call("GET", &format!("/api/sessions/{id}"), None)?;
    expect(&answer, 200, "get session")?;
    answer.json()
}

#[track_caller]
fn refused(answer: &Answer, status: u16, code: &str, message: &str) -> anyhow::Result<()> {
    let body = answer.json().unwrap_or_default();
    ensure!(
        answer.status == status
            && body["error"]["code"] == code
            && body["error"]["message"] == message,
        "expected {status} {code} {message:?}, got {} {}",
        answer.status,
        answer.body
    );
    if status == 503 {
        ensure!(
            answer.header("retry-after").is_some(),
            "a 503 without Retry-After"
        );
    }
    Ok(())
}

/// Sessions' ids after the first phase: lim1's, lim2's, lim3's.
type Ids = [String; 3];

async fn first_phase(
    code: &std::sync::mpsc::Receiver<String>,
    controllers: &[String],
) -> anyhow::Result<(Client, Client, Client, Ids)> {
    wait_for_octod().await?;
    let (lim1, lim2, lim3) = accounts(code)?;

    // 6 concurrent creates by lim1, who may run 1.
    let answers = concurrent_creates(&[&lim1; CREATES])?;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let ok: Vec<&Answer> = answers
        .iter()
        .filter(|a| matches!(a.status, 201 | 202))
        .collect();
    let limited = answers
        .iter()
        .filter(|a| {
            refused(
                a,
                409,
                "running_limit",
                "lim1 has 1 of 1 sessions running, the most allowed; stop one first",
            )
            .is_ok()
        })
        .count();
    ensure!(
        ok.len() == 1 && limited == CREATES - 1,
        "{CREATES} concurrent creates with max_running_per_user = 1: {statuses:?} ({})",
        answers
            .iter()
            .map(|a| a.body.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let a1 = created(&lim1, ok[0], "lim1's create").await?;
    let listed = lim1.call("GET", "/api/sessions", None)?.json()?;
    ensure!(
        listed.as_array().map(Vec::len) == Some(1),
        "lim1's sessions: {listed}"
    );
    say(format!(
        "{CREATES} concurrent creates by one user with max_running_per_user = 1: {statuses:?}; one session, the others 409 running_limit with the reason"
    ));
    check_limits(&a1, Some(512 * MIB), Some(50), Some(256), controllers)?;

    // lim2: its own memory, the research template's unlimited pids.
    let answer = lim2.call(
        "POST",
        "/api/sessions",
        Some(r#"{"template":"research-assistant"}"#),
    )?;
    let a2 = created(&lim2, &answer, "lim2's create").await?;
    check_limits(&a2, Some(768 * MIB), Some(50), None, controllers)?;

    // The host runs 2 of 2: lim3 is refused with the reason.
    let full = "the host is full: 2 of 2 sessions running; stop one or ask an administrator";
    let answer = lim3.call(
        "POST",
        "/api/sessions",
        Some(r#"{"template":"coding-copilot"}"#),
    )?;
    refused(&answer, 503, "host_full", full)?;
    say(format!(
        "a third create on a full host: 503 host_full \"{full}\""
    ));

    // lim1 stops: one slot is free, and lim1 and lim3 send 3 creates each at once.
    let id1 = a1["id"].as_str().context("id")?.to_owned();
    let answer = lim1.call("POST", &format!("/api/sessions/{id1}/stop"), None)?;
    ensure!(matches!(answer.status, 200 | 202), "stop: {}", answer.body);
    let answers = concurrent_creates(&[&lim1, &lim3, &lim1, &lim3, &lim1, &lim3])?;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let won: Vec<(usize, &Answer)> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a.status, 201 | 202))
        .collect();
    let lost = answers
        .iter()
        .filter(|a| {
            let code = a.json().unwrap_or_default()["error"]["code"].clone();
            (a.status == 503 && code == "host_full") || (a.status == 409 && code == "running_limit")
        })
        .count();
    ensure!(
        won.len() == 1 && lost == answers.len() - 1,
        "6 concurrent creates by two users for the host's last slot: {statuses:?}"
    );
    let (index, answer) = won[0];
    let winner = if index % 2 == 0 { &lim1 } else { &lim3 };
    let won_id = created(winner, answer, "the last slot's create").await?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let answer = winner.call("DELETE", &format!("/api/sessions/{won_id}"), None)?;
    ensure!(
        matches!(answer.status, 202 | 204),
        "delete: {}",
        answer.body
    );
    util::eventually(Duration::from_secs(60), "the winner deleted", async || {
        let answer = winner.call("GET", &format!("/api/sessions/{won_id}"), None)?;
        expect(&answer, 404, "deleted session")
    })
    .await?;
    say(format!(
        "6 concurrent creates by two users for the host's last slot: {statuses:?}; one ran (deleted again), the others 503 host_full or 409 running_limit"
    ));

    // lim3 takes the slot; lim1's resume is refused.
    let answer = lim3.call(
        "POST",
        "/api/sessions",
        Some(r#"{"template":"coding-copilot"}"#),
    )?;
    let a3 = created(&lim3, &answer, "lim3's create after a stop").await?;
    let answer = lim1.call("POST", &format!("/api/sessions/{id1}/resume"), None)?;
    refused(&answer, 503, "host_full", full)?;
    ensure!(
        session(&lim1, &id1)?["state"] == "stopped",
        "a refused resume changed the session"
    );
    say(
        "after a stop the third user's create runs; the first user's resume is then 503 host_full and leaves the session stopped",
    );
    let id = |v: &Value| v["id"].as_str().map(str::to_owned).context("id");
    Ok((lim1, lim2, lim3, [id1, id(&a2)?, id(&a3)?]))
}

/// Checks a session's limits as the API shows them, in its unit and in `podman inspect`.
fn check_limits(
    session: &Value,
    memory: Option<u64>,
    cpu_centis: Option<u32>,
    pids: Option<u32>,
    controllers: &[String],
) -> anyhow::Result<()> {
    let id = session["id"].as_str().context("id")?;
    let limits = &session["limits"];
    ensure!(
        limits["memory_bytes"].as_u64() == memory
            && limits["cpu_centis"].as_u64() == cpu_centis.map(u64::from)
            && limits["pids"].as_u64() == pids.map(u64::from),
        "session {id}: limits {limits}, expected memory {memory:?}, cpu {cpu_centis:?}, pids {pids:?}"
    );
    let has = |c: &str| controllers.iter().any(|d| d == c);
    let unenforced: Vec<&str> = limits["unenforced"]
        .as_array()
        .context("unenforced")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let expected: Vec<&str> = [
        ("memory", memory.is_some()),
        ("cpu", cpu_centis.is_some()),
        ("pids", pids.is_some()),
    ]
    .into_iter()
    .filter(|(c, set)| *set && !has(c))
    .map(|(c, _)| c)
    .collect();
    ensure!(
        unenforced == expected,
        "session {id}: unenforced {unenforced:?}, expected {expected:?}"
    );
    let unit = std::fs::read_to_string(
        util::quadlet_dir()?
            .join("octo")
            .join(format!("octo-{id}.container")),
    )?;
    let inspect = Command::new("podman")
        .args(["inspect", "--format", "json", &format!("octo-{id}")])
        .output()?;
    ensure!(inspect.status.success(), "podman inspect octo-{id}");
    let inspect: Value = serde_json::from_slice(&inspect.stdout)?;
    let host = &inspect[0]["HostConfig"];
    // Podman reports no limit as 0.
    let (memory_in_unit, memory_seen) = match memory.filter(|_| has("memory")) {
        Some(bytes) => (Some(format!("--memory={bytes}")), bytes),
        None => (None, 0),
    };
    let (cpu_in_unit, quota_seen) = match cpu_centis.filter(|_| has("cpu")) {
        Some(c) => (
            Some(format!("--cpus={}", f64::from(c) / 100.0)),
            u64::from(c) * 1000,
        ),
        None => (None, 0),
    };
    let (pids_in_unit, pids_seen) = match pids.filter(|_| has("pids")) {
        Some(n) => (Some(format!("PidsLimit={n}")), u64::from(n)),
        None => (None, 0),
    };
    for (wanted, needle) in [
        (memory_in_unit.as_deref(), "--memory="),
        (cpu_in_unit.as_deref(), "--cpus="),
        (pids_in_unit.as_deref(), "PidsLimit="),
    ] {
        match wanted {
            Some(text) => ensure!(unit.contains(text), "unit of {id} lacks {text}:\n{unit}"),
            None => ensure!(
                !unit.contains(needle),
                "unit of {id} has {needle} where it cannot be enforced:\n{unit}"
            ),
        }
    }
    ensure!(
        host["Memory"].as_u64() == Some(memory_seen)
            && host["CpuQuota"].as_u64() == Some(quota_seen)
            && host["PidsLimit"].as_u64().unwrap_or(0) == pids_seen,
        "podman inspect octo-{id}: Memory {}, CpuQuota {}, PidsLimit {}; expected {memory_seen}, {quota_seen}, {pids_seen}",
        host["Memory"],
        host["CpuQuota"],
        host["PidsLimit"]
    );
    say(format!(
        "session {id}: limits {limits}; podman inspect Memory {} CpuQuota {} PidsLimit {}; unit lines: {}",
        host["Memory"],
        host["CpuQuota"],
        host["PidsLimit"],
        unit.lines()
            .filter(|l| l.starts_with("PodmanArgs=") || l.starts_with("PidsLimit="))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    Ok(())
}

/// One create by each of `users`, each on its own connection, released together.
fn concurrent_creates(users: &[&Client]) -> anyhow::Result<Vec<Answer>> {
    let start = Barrier::new(users.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = users
            .iter()
            .map(|user| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    user.call(
                        "POST",
                        "/api/sessions",
                        Some(r#"{"template":"coding-copilot"}"#),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a create's thread panicked"))?
            })
            .collect()
    })
}

/// octod with `stop_idle_to_make_room` (any running session counts as idle) and 640M: lim1's
/// resume stops lim2's session (the longest without activity) and runs with the new limit.
async fn make_room(lim1: &Client, lim2: &Client, ids: &Ids) -> anyhow::Result<()> {
    wait_for_octod().await?;
    let [id1, id2, id3] = ids;
    let answer = lim1.call("POST", &format!("/api/sessions/{id1}/resume"), None)?;
    ensure!(
        matches!(answer.status, 200 | 202),
        "resume with room to make: {} {}",
        answer.status,
        answer.body
    );
    let a1 = running(lim1, id1).await?;
    ensure!(
        a1["limits"]["memory_bytes"].as_u64() == Some(640 * MIB),
        "the resumed session did not take the changed limit: {}",
        a1["limits"]
    );
    let a2 = session(lim2, id2)?;
    if a2["state"] != "stopped" {
        let all = lim1.call("GET", "/api/admin/sessions", None)?.body;
        anyhow::bail!("lim2's idle session was not stopped to make room: {a2}; all: {all}");
    }
    let a3 = session(lim1, id3)?;
    ensure!(
        a3["state"] == "running" && a3["limits"]["memory_bytes"].as_u64() == Some(512 * MIB),
        "lim3's session changed: {a3}"
    );
    say(format!(
        "resume on a full host with stop_idle_to_make_room: {id2} (the longest idle) stopped, {id1} runs with the changed memory limit (640 MiB); {id3} keeps 512 MiB until its next start"
    ));
    // The idle session may not wake through the proxy while the host is full.
    let answer = lim2.call(
        "GET",
        &format!("/sessions/{id2}/files/api/list?path="),
        None,
    )?;
    refused(
        &answer,
        503,
        "host_full",
        "the host is full: 2 of 2 sessions running; stop one or ask an administrator",
    )?;
    ensure!(
        session(lim2, id2)?["state"] == "stopped",
        "the idle session woke on a full host"
    );
    say("an idle session's request on a full host: 503 host_full, and it stays stopped");
    Ok(())
}

/// octod with a memory margin larger than any host: lim2's resume is refused for memory.
async fn memory_floor(lim2: &Client, ids: &Ids) -> anyhow::Result<()> {
    wait_for_octod().await?;
    let id2 = &ids[1];
    let answer = lim2.call("POST", &format!("/api/sessions/{id2}/resume"), None)?;
    let body = answer.json().unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    ensure!(
        answer.status == 503
            && body["error"]["code"] == "host_memory_low"
            && message.starts_with("the host is short of memory: ")
            && message.ends_with(
                "available, this session may use 768 MiB and 1 TiB is kept free; stop a session or ask an administrator"
            ),
        "resume below the memory floor: {} {}",
        answer.status,
        answer.body
    );
    say(format!(
        "a resume below the memory floor: 503 host_memory_low \"{message}\""
    ));
    Ok(())
}

/// Deletes every session (lim1 is the admin) and waits until none is left.
async fn delete_all(admin: &Client) -> anyhow::Result<()> {
    let list = admin.call("GET", "/api/admin/sessions", None)?;
    expect(&list, 200, "all sessions")?;
    for s in list.json()?.as_array().context("a list")? {
        let id = s["id"].as_str().context("id")?;
        let answer = admin.call("DELETE", &format!("/api/sessions/{id}"), None)?;
        ensure!(
            matches!(answer.status, 202 | 204),
            "deleting {id}: {} {}",
            answer.status,
            answer.body
        );
    }
    util::eventually(Duration::from_secs(120), "no session left", async || {
        let list = admin.call("GET", "/api/admin/sessions", None)?.json()?;
        ensure!(
            list.as_array().is_some_and(Vec::is_empty),
            "sessions left: {list}"
        );
        Ok(())
    })
    .await
}
