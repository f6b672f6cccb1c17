//! `octo-e2e admin` (as root): the real `octod serve` running as `octo` with its admin socket,
//! driven by the real `octoctl` as root, as a member of group `octo-admin` and as an
//! unprivileged user: status, users, invite codes, sessions (stop, resume, logs, delete), an
//! image build with live progress, and a container refresh that moves a running session onto
//! the rebuilt image while a file in its home survives.
//!
//! Then the same octod socket-activated (`systemd-socket-activate`, fds named `http` and
//! `admin`). The parts that need the `octo` user's Podman run as `octo-e2e admin --prepare` under
//! `setpriv`, as the test host's `exec --user` does.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use crate::util::{self, say};

const PORT: u16 = 18_490;
const BASE_IMAGE: &str = "localhost/octo-admin-e2e-base:latest";
const IMAGE: &str = "localhost/octo-admin-e2e:latest";
const RUN_DIR: &str = "/run/octo-admin-e2e";
const WORK: &str = "/var/tmp/octo-admin-e2e";
const OCTO: &str = "octo";
const GUEST: &str = "guest";
const OPERATOR: &str = "operator1";

pub(crate) fn bin(name: &str) -> String {
    format!(
        "{}/{name}",
        std::env::var("OCTO_BIN_DIR").unwrap_or_else(|_| "/opt/octo/target/debug".into())
    )
}

fn socket() -> PathBuf {
    Path::new(RUN_DIR).join("admin.sock")
}

/// The `octo` side: the stand-in session image, and `:latest` reset to it.
pub(crate) fn prepare() -> anyhow::Result<()> {
    util::ensure_served_session_image(BASE_IMAGE)?;
    util::run(Command::new("podman").args(["tag", BASE_IMAGE, IMAGE]))?;
    Ok(())
}

/// A user's uid and home from the passwd database.
pub(crate) fn user(name: &str) -> anyhow::Result<(u32, PathBuf)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let fields = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[0] == name)
        .with_context(|| format!("no user {name}"))?;
    Ok((fields[2].parse()?, PathBuf::from(fields[5])))
}

/// `command` as `name`, with its user manager's environment, as `testhost exec --user`.
pub(crate) fn as_user(name: &str, command: &[&str]) -> anyhow::Result<Command> {
    let (uid, home) = user(name)?;
    let mut cmd = Command::new("setpriv");
    cmd.current_dir(&home)
        .args(["--reuid", name, "--regid", name, "--init-groups", "--"])
        .args(["env", "-i"])
        .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .arg(format!("HOME={}", home.display()))
        .arg(format!("USER={name}"))
        .arg(format!("XDG_RUNTIME_DIR=/run/user/{uid}"))
        .arg(format!(
            "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{uid}/bus"
        ))
        .args(command);
    Ok(cmd)
}

/// Runs `octoctl` (as root unless `user` is given) with the check's socket.
fn octoctl(user: Option<&str>, args: &[&str]) -> anyhow::Result<Output> {
    let octoctl = bin("octoctl");
    let socket = socket();
    let socket = socket.to_string_lossy();
    let mut full = vec![octoctl.as_str(), "--socket", &socket];
    full.extend(args);
    let mut cmd = match user {
        Some(name) => as_user(name, &full)?,
        None => {
            let mut cmd = Command::new(&octoctl);
            cmd.args(&full[1..]);
            cmd
        }
    };
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("running octoctl {args:?}"))
}

/// `octoctl` that must succeed; its standard output.
fn ok(user: Option<&str>, args: &[&str]) -> anyhow::Result<String> {
    let out = octoctl(user, args)?;
    ensure!(
        out.status.success(),
        "octoctl {args:?} as {}: {}\n{}{}",
        user.unwrap_or("root"),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `octoctl --json …` that must succeed; its parsed answer.
fn json(args: &[&str]) -> anyhow::Result<Value> {
    let mut full = vec!["--json"];
    full.extend(args);
    let out = ok(None, &full)?;
    serde_json::from_str(&out).with_context(|| format!("octoctl --json {args:?} printed {out}"))
}

/// `octoctl` that must fail with `code`; its standard error.
fn fails(user: Option<&str>, args: &[&str], code: i32) -> anyhow::Result<String> {
    let out = octoctl(user, args)?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        out.status.code() == Some(code),
        "octoctl {args:?} as {}: expected exit {code}, got {}: {stderr}",
        user.unwrap_or("root"),
        out.status
    );
    Ok(stderr)
}

fn sh(script: &str) -> anyhow::Result<String> {
    util::run(Command::new("sh").args(["-c", script]))
}

pub(crate) async fn run() -> anyhow::Result<()> {
    setup_host()?;
    let octod = bin("octod");
    let config = format!("{WORK}/octod.toml");
    let listen = format!("127.0.0.1:{PORT}");
    let (mut child, _log) = spawn_logged(&[
        "env",
        "OCTOD_LOG=info",
        &octod,
        "serve",
        "--listen",
        &listen,
        "--config",
        &config,
    ])?;
    let result = scenario(&mut child).await;
    if result.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    result?;

    // Socket activation: both sockets passed by systemd's protocol, named `http` and `admin`
    // (as octod.socket and octod-admin.socket do); the first connection starts octod.
    let _ = std::fs::remove_file(socket());
    let admin = format!("{}", socket().display());
    let (mut child, log) = spawn_logged(&[
        "systemd-socket-activate",
        "--listen",
        &listen,
        "--listen",
        &admin,
        "--fdname=http:admin",
        "env",
        "OCTOD_LOG=info",
        &octod,
        "serve",
        "--config",
        &config,
    ])?;
    let result = activated(&log).await;
    let _ = sh(&format!("kill -TERM {}", child.id()));
    let _ = child.wait();
    result
}

/// Against the socket-activated octod: the admin socket is the passed one.
async fn activated(log: &std::sync::mpsc::Receiver<String>) -> anyhow::Result<()> {
    util::eventually(
        Duration::from_secs(60),
        "octoctl status (socket-activated)",
        async || ok(None, &["status"]),
    )
    .await?;
    let health = util::request(PORT, "GET", "/api/health", &[], None)?;
    crate::api::expect(&health, 200, "health on the passed HTTP socket")?;
    let lines: Vec<String> = log.try_iter().collect();
    ensure!(
        lines
            .iter()
            .any(|l| l.contains("serving the admin API on the socket from systemd"))
            && lines
                .iter()
                .any(|l| l.contains("serving HTTP on the socket from systemd")),
        "octod did not take both passed sockets: {lines:?}"
    );
    say("socket-activated (fds named http and admin): octoctl status and /api/health answer");
    Ok(())
}

/// Users, groups, directories, the config, the images.
fn setup_host() -> anyhow::Result<()> {
    sh(&format!(
        "getent group octo-admin >/dev/null || groupadd --system octo-admin
         id {GUEST} >/dev/null 2>&1 || useradd --create-home {GUEST}
         id {OPERATOR} >/dev/null 2>&1 || useradd --create-home --groups octo-admin {OPERATOR}
         rm -rf {WORK} {RUN_DIR} ~{OCTO}/e2e-admin
         mkdir -p {WORK}/context {RUN_DIR}
         chown {OCTO}: {RUN_DIR}
         chmod 0755 {WORK} {WORK}/context {RUN_DIR}"
    ))?;
    // The build context of `octoctl image build`: the stand-in image with another variant.
    std::fs::write(
        Path::new(WORK).join("context/Containerfile"),
        format!(
            "ARG BASE_IMAGE={BASE_IMAGE}\nFROM ${{BASE_IMAGE}}\nCOPY variant /etc/octo-variant\nCOPY octo-fileserver /usr/local/bin/octo-fileserver\n"
        ),
    )?;
    std::fs::write(Path::new(WORK).join("context/variant"), "rebuilt\n")?;
    let (_, octo_home) = user(OCTO)?;
    let config = Path::new(WORK).join("octod.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nstate_dir = \"{state}\"\nadmin_socket = \"{socket}\"\n\n\
             [sessions]\nimage = \"{IMAGE}\"\ntemplates_dir = \"/opt/octo/src/container/templates\"\nport_range = \"30000-30199\"\n\n\
             [image]\ncontext = \"{WORK}/context\"\nfileserver = \"{fileserver}\"\nbase = \"{BASE_IMAGE}\"\n",
            state = octo_home.join("e2e-admin/state").display(),
            socket = socket().display(),
            // Any executable will do: the stand-in image does not run it.
            fileserver = "/usr/bin/true",
        ),
    )?;
    let e2e = bin("octo-e2e");
    let out = as_user(OCTO, &[&e2e, "admin", "--prepare"])?.output()?;
    ensure!(
        out.status.success(),
        "preparing the images as {OCTO}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    say("users guest and operator1 (group octo-admin), the stand-in session image, the config");
    Ok(())
}

/// Starts `command` as `octo`; its standard error is echoed, and each line also sent to the
/// returned channel.
pub(crate) fn spawn_logged(
    command: &[&str],
) -> anyhow::Result<(Child, std::sync::mpsc::Receiver<String>)> {
    let mut child = as_user(OCTO, command)?
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {command:?} as {OCTO}"))?;
    let stderr = child.stderr.take().context("octod's stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("    octod: {line}");
            let _ = tx.send(line);
        }
    });
    Ok((child, rx))
}

async fn scenario(octod: &mut Child) -> anyhow::Result<()> {
    util::eventually(Duration::from_secs(60), "octoctl status", async || {
        ok(None, &["status"])
    })
    .await?;

    // status, as root.
    let table = ok(None, &["status"])?;
    ensure!(
        table.contains("octod") && table.contains(IMAGE),
        "status: {table}"
    );
    let status = json(&["status"])?;
    ensure!(
        status["octod_version"] == octod::VERSION
            && status["podman_version"]
                .as_str()
                .is_some_and(|v| v.starts_with('5'))
            && status["image"]["reference"] == IMAGE
            && status["image"]["id"]
                .as_str()
                .is_some_and(|i| i.len() >= 12)
            && status["sessions"]["running"] == 0
            && status["warnings"].is_array(),
        "status: {status}"
    );
    say(format!("octoctl status as root:\n{table}"));

    // Who may use it.
    let refused = fails(Some(GUEST), &["status"], 4)?;
    ensure!(
        refused.contains("octo-admin") && refused.contains(GUEST),
        "the refusal does not say what is needed: {refused}"
    );
    ok(Some(OPERATOR), &["status"])?;
    say(format!(
        "refused for {GUEST} (exit 4: {}); allowed for {OPERATOR}, a member of octo-admin",
        refused.trim()
    ));
    // As octod-admin.socket makes it (group octo-admin, 0660): the kernel refuses the connect.
    sh(&format!(
        "chgrp octo-admin {0} && chmod 0660 {0}",
        socket().display()
    ))?;
    let denied = fails(Some(GUEST), &["status"], 4)?;
    ensure!(
        denied.contains("permission denied: octoctl needs root or membership in group octo-admin"),
        "{denied}"
    );
    ok(Some(OPERATOR), &["status"])?;
    say(format!(
        "with the socket 0660 root:octo-admin: {}",
        denied.trim()
    ));

    // Users.
    let added = ok(None, &["user", "add", "carol"])?;
    ensure!(added.contains("password: "), "user add: {added}");
    fails(None, &["user", "add", "carol"], 1)?;
    ok(Some(OPERATOR), &["user", "disable", "carol"])?;
    let users = json(&["user", "list"])?;
    let carol = users
        .as_array()
        .and_then(|l| l.iter().find(|u| u["name"] == "carol"))
        .context("carol in the user list")?;
    ensure!(carol["disabled"] == true, "carol: {carol}");
    ok(None, &["user", "enable", "carol"])?;
    ok(None, &["user", "set-role", "carol", "admin"])?;
    fails(None, &["user", "disable", "nobody"], 3)?;
    say("user add/list/disable/enable/set-role; an unknown user is exit 3");

    // API tokens made by root for carol: printed once, usable as a bearer, listed without the
    // secret, revoked.
    let created = json(&[
        "user",
        "token",
        "create",
        "carol",
        "--name",
        "nightly",
        "--scope",
        "sessions:read",
        "--expires",
        "7d",
    ])?;
    let token = created["token"].as_str().context("token")?.to_owned();
    let token_id = created["info"]["id"].as_str().context("id")?.to_owned();
    let bearer = format!("Bearer {token}");
    let with_token =
        |path: &str| util::request(PORT, "GET", path, &[("Authorization", &bearer)], None);
    crate::api::expect(
        &with_token("/api/sessions")?,
        200,
        "carol's token from octoctl",
    )?;
    let listed = ok(None, &["user", "token", "list", "carol"])?;
    ensure!(
        listed.contains(&token_id) && listed.contains("nightly") && !listed.contains(&token[22..]),
        "token list: {listed}"
    );
    fails(
        None,
        &["user", "token", "create", "carol", "--scope", "nope"],
        2,
    )?;
    fails(None, &["user", "token", "create", "nobody"], 3)?;
    ok(None, &["user", "token", "revoke", "carol", &token_id])?;
    crate::api::expect(
        &with_token("/api/sessions")?,
        401,
        "a token octoctl revoked",
    )?;
    fails(None, &["user", "token", "revoke", "carol", &token_id], 3)?;
    say(
        "user token create (shown once; works as a bearer), list (no secret), revoke (401 next request); bad scope exit 2, unknown user exit 3",
    );

    // Invite codes.
    let invite = json(&[
        "invite-codes",
        "generate",
        "--role",
        "admin",
        "--uses",
        "1",
        "--expires",
        "1d",
    ])?;
    let code = invite["code"].as_str().context("code")?.to_owned();
    ensure!(
        invite["role"] == "admin" && invite["expires_at"].is_u64(),
        "{invite}"
    );
    let spare = json(&["invite-codes", "generate"])?["code"]
        .as_str()
        .context("code")?
        .to_owned();
    let listed = ok(None, &["invite-codes", "list"])?;
    ensure!(
        listed.contains(&code) && listed.contains(&spare),
        "list: {listed}"
    );
    ok(None, &["invite-codes", "revoke", &spare])?;
    ensure!(
        !ok(None, &["invite-codes", "list"])?.contains(&spare),
        "a revoked code is still listed"
    );
    fails(None, &["invite-codes", "revoke", &spare], 3)?;
    say("invite codes: generate (role, uses, expiry), list, revoke");

    // A session through the HTTP API, registered with the code from octoctl.
    let body = format!(
        r#"{{"invite_code":"{code}","username":"alice","password":"correct horse battery"}}"#
    );
    let answer = util::request(PORT, "POST", "/api/auth/register", &[], Some(&body))?;
    crate::api::expect(&answer, 201, "register with the octoctl code")?;
    let alice = crate::api::sign_in(PORT, &answer)?;
    let answer = alice.call(
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
    let id = answer.json()?["id"]
        .as_str()
        .context("session id")?
        .to_owned();
    wait_state(&id, "running").await?;
    let list = json(&["session", "list"])?;
    let row = list
        .as_array()
        .and_then(|l| l.iter().find(|s| s["id"] == id.as_str()))
        .context("the session in the list")?;
    ensure!(
        row["owner"] == "alice" && row["state"] == "running" && row["template"] == "coding-copilot",
        "{row}"
    );
    let container = format!("octo-{id}");
    podman(&[
        "exec",
        &container,
        "sh",
        "-c",
        "echo kept > /home/dev/kept.txt",
    ])?;
    say(format!(
        "session {id} of alice runs; a file written in its home"
    ));

    // Names: the default from the template, a rename by root, the list and show with it.
    let table = ok(None, &["session", "list"])?;
    let header = table.lines().next().unwrap_or_default();
    ensure!(
        header.contains("NAME") && header.contains("LAST ACTIVE"),
        "session list's columns: {table}"
    );
    ensure!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("Coding Copilot")),
        "session list does not show the default name: {table}"
    );
    let renamed = ok(None, &["session", "rename", &id, "Alice's thesis"])?;
    ensure!(renamed.contains("Alice's thesis"), "rename: {renamed}");
    ok(
        Some(OPERATOR),
        &["session", "rename", &id, "--description", "chapter 2"],
    )?;
    let table = ok(None, &["session", "list"])?;
    ensure!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("Alice's thesis")),
        "session list after the rename: {table}"
    );
    let row = json(&["session", "list"])?
        .as_array()
        .and_then(|l| l.iter().find(|s| s["id"] == id.as_str()).cloned())
        .context("the session in the list")?;
    ensure!(
        row["name"] == "Alice's thesis"
            && row["description"] == "chapter 2"
            && row["last_active_at"].as_u64() >= row["created_at"].as_u64(),
        "session list --json: {row}"
    );
    let shown = ok(None, &["session", "show", &id])?;
    ensure!(
        shown.contains("Alice's thesis") && shown.contains("chapter 2"),
        "session show: {shown}"
    );
    let refused = fails(None, &["session", "rename", &id, " "], 1)?;
    ensure!(
        refused.contains("name cannot be empty"),
        "an empty name: {refused}"
    );
    fails(None, &["session", "rename", "nosuchsession", "x"], 3)?;
    fails(None, &["session", "rename", &id], 2)?;
    ensure!(
        json(&["session", "show", &id])?["name"] == "Alice's thesis",
        "a refused rename changed the name"
    );
    say(format!(
        "session list shows names and last activity; rename (root), --description (operator1); an empty name is refused (exit 1), an unknown session exit 3:\n{table}"
    ));

    ok(None, &["session", "stop", &id])?;
    ensure!(
        json(&["session", "show", &id])?["state"] == "stopped",
        "not stopped"
    );
    ok(Some(OPERATOR), &["session", "resume", &id])?;
    ensure!(
        json(&["session", "show", &id])?["state"] == "running",
        "not running"
    );
    let logs = ok(None, &["session", "logs", &id, "-n", "200"])?;
    ensure!(logs.contains("session up: base"), "logs: {logs}");
    fails(None, &["session", "stop", "nosuchsession"], 3)?;
    say("session stop (root), resume (operator1), logs show the container's output");

    // Image build with live progress, then a rolling refresh onto it.
    let before = podman(&["inspect", "--format", "{{.Image}}", &container])?;
    let mut follow = Command::new(bin("octoctl"))
        .arg("--socket")
        .arg(socket())
        .args(["session", "logs", &id, "--follow", "-n", "1"])
        .stdout(Stdio::piped())
        .spawn()?;
    let follow_out = follow.stdout.take().context("follow's stdout")?;
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(follow_out).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let built = ok(None, &["image", "build"])?;
    ensure!(
        built.contains("STEP") && built.contains("built localhost/octo-admin-e2e:"),
        "image build: {built}"
    );
    let latest = podman(&["image", "inspect", "--format", "{{.Id}}", IMAGE])?;
    ensure!(latest != before, "the build did not move {IMAGE}");
    say(format!(
        "octoctl image build streamed {} lines; {IMAGE} is now {}",
        built.lines().count(),
        &latest[..12.min(latest.len())]
    ));
    let refreshed = ok(None, &["container", "refresh", "--parallel", "2"])?;
    ensure!(
        refreshed.contains(&format!("{id}: refreshed"))
            && refreshed.contains("refreshed 1, skipped 0, failed 0"),
        "refresh: {refreshed}"
    );
    let after = podman(&["inspect", "--format", "{{.Image}}", &container])?;
    ensure!(
        after == latest,
        "the session runs {after}, not the new {latest}"
    );
    let kept = podman(&["exec", &container, "cat", "/home/dev/kept.txt"])?;
    ensure!(kept == "kept", "the home lost its file: {kept:?}");
    ensure!(
        json(&["session", "show", &id])?["state"] == "running",
        "not running after the refresh"
    );
    let again = ok(None, &["container", "refresh"])?;
    ensure!(
        again.contains("refreshed 0, skipped 1, failed 0"),
        "second refresh: {again}"
    );
    say(format!(
        "container refresh:\n{refreshed}the file in the home survived; a second refresh skips it"
    ));

    // The follower saw the restarted container's first line as it came.
    let saw = util::eventually(
        Duration::from_secs(30),
        "the followed log showing the rebuilt image",
        async || {
            while let Ok(line) = line_rx.try_recv() {
                if line.contains("session up: rebuilt") {
                    return Ok(line);
                }
            }
            bail!("not yet")
        },
    )
    .await;
    let _ = follow.kill();
    let _ = follow.wait();
    say(format!("session logs --follow streamed: {}", saw?.trim()));
    // octod ends its journal follower when the client goes away.
    util::eventually(
        Duration::from_secs(30),
        "octod's journalctl --follow ending with its client",
        async || {
            let left = Command::new("pgrep")
                .args(["-u", OCTO, "-f", "journalctl.*--user-unit octo-.*--follow"])
                .output()?;
            ensure!(
                !left.status.success(),
                "still running: {}",
                String::from_utf8_lossy(&left.stdout).trim()
            );
            Ok(())
        },
    )
    .await?;

    // Delete needs a confirmation; then the session is gone.
    fails(None, &["session", "delete", &id], 1)?;
    ok(None, &["session", "delete", &id, "--yes"])?;
    fails(None, &["session", "show", &id], 3)?;
    say("session delete asks for --yes, then the session is gone");

    // Audit: actors are the Unix users.
    let audit = alice.call("GET", "/api/admin/audit?limit=1000", None)?;
    let entries = audit.json()?;
    let by = |actor: &str, action: &str| {
        entries.as_array().is_some_and(|l| {
            l.iter()
                .any(|e| e["actor"] == actor && e["action"] == action)
        })
    };
    ensure!(
        by("root", "user.create"),
        "no user creation by root in the audit log: {entries}"
    );
    ensure!(
        by("root", "session.rename") && by(OPERATOR, "session.describe"),
        "no session.rename by root or session.describe by {OPERATOR}: {entries}"
    );
    ensure!(
        by(OPERATOR, "user.disable") && by(OPERATOR, "session.resume"),
        "no actions by {OPERATOR} in the audit log: {entries}"
    );
    say("the audit log names root and operator1 as actors");

    // SIGTERM: octod stops; octoctl then says it is not running.
    sh(&format!("kill -TERM {}", octod.id()))?;
    let status = octod.wait()?;
    // `setpriv` execs `env`, which execs octod: the child is octod itself.
    ensure!(status.success(), "octod did not exit cleanly: {status}");
    let gone = fails(None, &["status"], 5)?;
    ensure!(gone.contains("octod is not running"), "{gone}");
    say(format!("octod stopped; octoctl: {}", gone.trim()));
    Ok(())
}

fn podman(args: &[&str]) -> anyhow::Result<String> {
    let mut full = vec!["podman"];
    full.extend(args);
    Ok(util::run(&mut as_user(OCTO, &full)?)?.trim().to_owned())
}

async fn wait_state(id: &str, state: &str) -> anyhow::Result<()> {
    util::eventually(
        Duration::from_secs(120),
        &format!("session {id} {state}"),
        async || {
            let show = json(&["session", "show", id])?;
            if show["state"] == "failed" {
                bail!("the session failed: {show}");
            }
            ensure!(show["state"] == state, "state {}", show["state"]);
            Ok(())
        },
    )
    .await
}
