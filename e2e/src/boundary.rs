//! `octo-e2e boundary <phase>`: the wall around a session (issue 13), proved through the real
//! `octod serve` (running as `octo`) with the real session image:
//!
//! - `wall` (as root): an unprivileged local user (`useradd`, `setpriv --clear-groups`) sees no
//!   TCP listener of Octo's sessions in `ss -ltn`, finds the session token in no
//!   `/proc/*/cmdline`, and is refused (EACCES) on the session's socket, which `octo` can use;
//!   the token is in no environment, unit file, `podman inspect`, journal or `/metrics`
//!   either. Then port squatting is impossible by construction: the session's container is
//!   killed and a request through octod at once is served by the restarted session. Every
//!   finding is collected, so one run shows all of what is missing.
//! - `wake` (as `octo`): after an idle stop, a connection to the session's socket starts the
//!   session with octod not running at all (so nothing called `StartUnit`); a request through
//!   octod wakes another one with no "waking session on access" in octod's log; a session the
//!   user stopped answers `409 session_stopped` and stays stopped.
//! - `reboot-setup` / `reboot-check` (as `octo`, a reboot between): a running, an idle-stopped
//!   and a user-stopped session, each with a file; after the reboot the running one is back
//!   before octod runs, the idle one wakes on its first request, the stopped one stays
//!   stopped until resumed; the files are intact in all three.
//! - `probe` (hidden): what the unprivileged user sees, printed as JSON for `wall`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

use crate::admin;
use crate::api::{self, Client};
use crate::util::{self, say};

const OCTO: &str = "octo";
/// The unprivileged local user of the host that tries to get in.
const PROBE_USER: &str = "octo-probe";
const TEMPLATE: &str = r#"{"template":"coding-copilot"}"#;
/// octod's ports of these checks (others: api 18484, api-sdk 18485, session-limit 18486,
/// admin 18490).
const WALL_PORT: u16 = 18_491;
const WAKE_PORT: u16 = 18_492;
const REBOOT_PORT: u16 = 18_493;
/// The phrase octod's proxy logs when it resumes a session itself (before issue 13).
const PROXY_RESUME_LOG: &str = "waking session on access";

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Phase {
    /// (root) No TCP listener, no token in argv, EACCES on the socket; no port squatting.
    Wall,
    /// Socket activation after an idle stop, without octod and through it; a user-stopped
    /// session stays stopped.
    Wake,
    /// Before a reboot: a running, an idle-stopped and a user-stopped session with files.
    RebootSetup,
    /// After the reboot: running is back, idle wakes on its first request, stopped stays.
    RebootCheck,
    /// Run by `wall` as the unprivileged user: `ss -ltn`, `/proc/*/cmdline` against the token
    /// read from standard input, and a connection to `socket`; prints JSON.
    #[command(hide = true)]
    Probe {
        #[arg(long)]
        socket: PathBuf,
    },
}

pub(crate) async fn run(phase: Phase) -> anyhow::Result<()> {
    match phase {
        Phase::Wall => wall().await,
        Phase::Wake => wake().await,
        Phase::RebootSetup => reboot_setup().await,
        Phase::RebootCheck => reboot_check().await,
        Phase::Probe { socket } => probe(&socket),
    }
}

/// Who runs the check: as root, everything of `octo`'s goes through `setpriv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runner {
    Root,
    Octo,
}

impl Runner {
    /// `args` as `octo`, with its user manager's environment.
    pub(crate) fn octo(self, args: &[&str]) -> anyhow::Result<Command> {
        match self {
            Self::Root => admin::as_user(OCTO, args),
            Self::Octo => {
                let (program, rest) = args.split_first().context("an empty command")?;
                let mut cmd = Command::new(program);
                cmd.args(rest);
                Ok(cmd)
            }
        }
    }

    pub(crate) fn output(self, args: &[&str]) -> anyhow::Result<String> {
        Ok(util::run(&mut self.octo(args)?)?.trim().to_owned())
    }

    /// `systemctl --user VERB UNIT`'s word (`active`, `inactive`, `enabled`, …), whatever
    /// its exit code.
    pub(crate) fn unit(self, verb: &str, unit: &str) -> anyhow::Result<String> {
        let out = self.octo(&["systemctl", "--user", verb, unit])?.output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The session token as the store's secret holds it (never on a command line here).
    pub(crate) fn token(self, id: &str) -> anyhow::Result<String> {
        let token = self.output(&[
            "podman",
            "secret",
            "inspect",
            "--showsecret",
            "--format",
            "{{.SecretData}}",
            &format!("octo-{id}-token"),
        ])?;
        ensure!(!token.is_empty(), "the secret octo-{id}-token is empty");
        Ok(token)
    }

    /// Writes `text` to `~dev/name` in the session's container.
    fn write_file(self, id: &str, name: &str, text: &str) -> anyhow::Result<()> {
        self.output(&[
            "podman",
            "exec",
            &format!("octo-{id}"),
            "sh",
            "-c",
            &format!("printf '%s\\n' {text} > /home/dev/{name}"),
        ])
        .map(drop)
    }

    fn started_at(self, id: &str) -> anyhow::Result<String> {
        self.output(&[
            "podman",
            "container",
            "inspect",
            "--format",
            "{{.State.StartedAt}}",
            &format!("octo-{id}"),
        ])
    }
}

/// `octo`'s uid and home.
pub(crate) fn octo_user() -> anyhow::Result<(u32, PathBuf)> {
    admin::user(OCTO)
}

/// The session's socket on the host, as the contract names it.
pub(crate) fn socket_path(uid: u32, id: &str) -> PathBuf {
    PathBuf::from(format!("/run/user/{uid}/octo/sessions/{id}.sock"))
}

/// The real `octod serve` as `octo`, its log kept.
pub(crate) struct Octod {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    codes: std::sync::mpsc::Receiver<String>,
}

impl Octod {
    /// Writes `dir/octod.toml` (state in `dir/state`, sessions idle-stopped after
    /// `idle_minutes`, 0 never) and starts octod on `port` with it.
    pub(crate) async fn start(
        runner: Runner,
        port: u16,
        dir: &Path,
        idle_minutes: u64,
    ) -> anyhow::Result<Self> {
        Self::start_with(
            runner,
            port,
            dir,
            &format!("idle_timeout_minutes = {idle_minutes}\n"),
        )
        .await
    }

    /// [`Octod::start`] with `sessions` as the rest of the `[sessions]` table.
    pub(crate) async fn start_with(
        runner: Runner,
        port: u16,
        dir: &Path,
        sessions: &str,
    ) -> anyhow::Result<Self> {
        let config = dir.join("octod.toml");
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            &config,
            format!(
                "[server]\nstate_dir = \"{}\"\n\n[sessions]\ntemplates_dir = \"/opt/octo/src/container/templates\"\n{sessions}",
                dir.join("state").display()
            ),
        )?;
        if runner == Runner::Root {
            util::run(Command::new("chown").args(["-R", "octo:octo"]).arg(dir))?;
        }
        let octod = admin::bin("octod");
        let listen = format!("127.0.0.1:{port}");
        let config = config.to_string_lossy().into_owned();
        let mut child = runner
            .octo(&[
                "env",
                "OCTOD_LOG=info",
                &octod,
                "serve",
                "--listen",
                &listen,
                "--config",
                &config,
            ])?
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting octod")?;
        let stderr = child.stderr.take().context("octod's stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, codes) = std::sync::mpsc::channel();
        std::thread::spawn({
            let log = Arc::clone(&log);
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some((_, code)) = line.split_once("first admin invite code: ") {
                        let _ = tx.send(code.trim().to_owned());
                    }
                    eprintln!("    octod: {line}");
                    if let Ok(mut log) = log.lock() {
                        log.push(line);
                    }
                }
            }
        });
        let octod = Self {
            child,
            port,
            log,
            codes,
        };
        util::eventually(Duration::from_secs(60), "octod's /api/health", async || {
            let answer = util::request(port, "GET", "/api/health", &[], None)?;
            api::expect(&answer, 200, "health")
        })
        .await?;
        Ok(octod)
    }

    /// Registers the first admin with the invite code octod logged.
    pub(crate) fn register_admin(&self) -> anyhow::Result<Client> {
        let code = self
            .codes
            .recv_timeout(Duration::from_secs(30))
            .context("octod logged no first admin invite code")?;
        let body = format!(
            r#"{{"invite_code":"{code}","username":"wall","password":"correct horse battery"}}"#
        );
        let answer = util::request(self.port, "POST", "/api/auth/register", &[], Some(&body))?;
        api::expect(&answer, 201, "register the first admin")?;
        api::sign_in(self.port, &answer)
    }

    fn log_len(&self) -> usize {
        self.log.lock().map_or(0, |log| log.len())
    }

    fn log_since(&self, mark: usize) -> Vec<String> {
        self.log
            .lock()
            .map(|log| log.iter().skip(mark).cloned().collect())
            .unwrap_or_default()
    }

    /// SIGTERM; octod must exit cleanly.
    /// octod's process id (`setpriv` and `env` exec it: the child is octod itself).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        // `setpriv` execs `env`, which execs octod: the child is octod itself.
        util::run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]))?;
        let status = self.child.wait()?;
        ensure!(status.success(), "octod did not exit cleanly: {status}");
        Ok(())
    }
}

/// Creates a session through the API and waits until it runs.
pub(crate) async fn create(client: &Client) -> anyhow::Result<String> {
    let answer = client.call("POST", "/api/sessions", Some(TEMPLATE))?;
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
    util::session_running(
        |path| client.call("GET", path, None),
        &id,
        Duration::from_secs(180),
    )
    .await?;
    Ok(id)
}

fn file_path(id: &str, name: &str) -> String {
    format!("/sessions/{id}/files/api/download?path={name}")
}

/// A file through octod's proxy, retried while the session is waking (502/503/504 or a
/// refused connection) for up to `timeout`. Returns the first answer's status and the
/// content.
async fn fetch_file(
    client: &Client,
    id: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<(u16, String)> {
    let mut first = None;
    let body = util::eventually(
        timeout,
        &format!("{name} of {id} through octod"),
        async || {
            let answer = client.call("GET", &file_path(id, name), None)?;
            first.get_or_insert(answer.status);
            api::expect(&answer, 200, &format!("{name} of {id} through octod"))?;
            Ok(answer.body)
        },
    )
    .await?;
    Ok((first.unwrap_or(200), body))
}

fn expect_text(body: &str, text: &str, what: &str) -> anyhow::Result<()> {
    ensure!(
        body.trim() == text,
        "{what}: expected {text:?}, got {body:?}"
    );
    Ok(())
}

/// A fresh directory for a check's octod under `octo`'s home.
pub(crate) fn fresh_dir(name: &str) -> anyhow::Result<PathBuf> {
    let (_, home) = octo_user()?;
    let dir = home.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

// ---------------------------------------------------------------------------------------------
// wall

/// A TCP listener of the host with the processes that hold it (`ss -ltnp` as root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listener {
    pub(crate) local: String,
    /// `(uid, command name, pid)` of each process holding the socket.
    pub(crate) holders: Vec<(u32, String, u32)>,
}

/// Every TCP listener this host's processes hold, with their owners. The test host shares
/// the machine's network, so listeners of other hosts show up without holders; only the
/// owners tell Octo's apart.
pub(crate) fn listeners() -> anyhow::Result<Vec<Listener>> {
    let out = util::run(Command::new("ss").args(["-ltnpH"]))?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = (*fields.get(3)?).to_owned();
            let holders = line
                .split("pid=")
                .skip(1)
                .filter_map(|rest| {
                    let pid: u32 = rest
                        .split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse()
                        .ok()?;
                    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                    let uid = status
                        .lines()
                        .find_map(|l| l.strip_prefix("Uid:"))?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()?;
                    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                    Some((uid, comm, pid))
                })
                .collect();
            Some(Listener { local, holders })
        })
        .collect())
}

/// The listeners held by a process of `uid`, except those on `except_port` (octod's own).
pub(crate) fn owned_by(listeners: &[Listener], uid: u32, except_port: u16) -> Vec<Listener> {
    listeners
        .iter()
        .filter(|l| l.holders.iter().any(|(u, _, _)| *u == uid))
        .filter(|l| !l.local.ends_with(&format!(":{except_port}")))
        .cloned()
        .collect()
}

/// What the unprivileged user saw (`octo-e2e boundary probe`'s JSON).
fn run_probe(socket: &Path, token: &str) -> anyhow::Result<Value> {
    let e2e = admin::bin("octo-e2e");
    let mut child = Command::new("setpriv")
        .args([
            "--reuid",
            PROBE_USER,
            "--regid",
            PROBE_USER,
            "--clear-groups",
            "--",
            &e2e,
            "boundary",
            "probe",
            "--socket",
        ])
        .arg(socket)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the probe as the unprivileged user")?;
    // The token on standard input: a command line would show it to everyone.
    child
        .stdin
        .take()
        .context("the probe's stdin")?
        .write_all(token.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "the probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).context("the probe's JSON")
}

/// The probe itself, as the unprivileged user.
fn probe(socket: &Path) -> anyhow::Result<()> {
    let mut token = String::new();
    std::io::stdin().read_to_string(&mut token)?;
    let token = token.trim();
    let listeners: Vec<String> = util::run(Command::new("ss").args(["-ltnH"]))?
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .collect();
    let (mut scanned, mut holders) = (0, Vec::new());
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        scanned += 1;
        if !token.is_empty() && String::from_utf8_lossy(&cmdline).contains(token) {
            let args = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            // Never print the token itself: name the process and where it sits.
            holders.push(format!("pid {name}: {}", args.replace(token, "<TOKEN>")));
        }
    }
    let connect = match std::os::unix::net::UnixStream::connect(socket) {
        Ok(_) => "connected".to_owned(),
        Err(error) => format!("{:?} ({error})", error.kind()),
    };
    let uid = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")?
                .split_whitespace()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let report = json!({
        "uid": uid,
        "listeners": listeners,
        "cmdlines_scanned": scanned,
        "token_in_cmdline": holders,
        "socket": connect,
    });
    println!("{report}");
    Ok(())
}

/// Processes whose environment (readable as root) holds `token`.
fn token_in_environ(token: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            String::from_utf8_lossy(&environ).contains(token).then(|| {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                format!(
                    "pid {} ({})",
                    entry.file_name().to_string_lossy(),
                    comm.trim()
                )
            })
        })
        .collect()
}

async fn wall() -> anyhow::Result<()> {
    util::run(Command::new("sh").args([
        "-c",
        &format!("id {PROBE_USER} >/dev/null 2>&1 || useradd --create-home {PROBE_USER}"),
    ]))?;
    let (octo_uid, _) = octo_user()?;
    let dir = fresh_dir("e2e-boundary-wall")?;
    let before = listeners()?;
    let octod = Octod::start(Runner::Root, WALL_PORT, &dir, 0).await?;
    let result = wall_scenario(&octod, octo_uid, &before).await;
    let stopped = octod.stop();
    result?;
    stopped
}

async fn wall_scenario(octod: &Octod, octo_uid: u32, before: &[Listener]) -> anyhow::Result<()> {
    let runner = Runner::Root;
    let client = octod.register_admin()?;
    let probe_before = run_probe(Path::new("/nonexistent"), "")?;
    let id = create(&client).await?;
    say(format!(
        "session {id} runs (octod as {OCTO}, the real session image)"
    ));
    let socket = socket_path(octo_uid, &id);
    let mut findings: Vec<String> = Vec::new();

    // TCP listeners: the unprivileged user's `ss -ltn` before and after, the owners as root.
    let after = listeners()?;
    let baseline = owned_by(before, octo_uid, WALL_PORT);
    let new: Vec<Listener> = owned_by(&after, octo_uid, WALL_PORT)
        .into_iter()
        .filter(|l| !baseline.contains(l))
        .collect();
    let token = runner.token(&id)?;
    let probe_after = run_probe(&socket, &token)?;
    let seen = |report: &Value| -> Vec<String> {
        report["listeners"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let appeared: Vec<String> = seen(&probe_after)
        .into_iter()
        .filter(|l| !seen(&probe_before).contains(l))
        .collect();
    say(format!(
        "as {PROBE_USER} (uid {}): `ss -ltn` shows {} listeners, {} new since before the session: {appeared:?}",
        probe_after["uid"],
        seen(&probe_after).len(),
        appeared.len()
    ));
    if new.is_empty() {
        say(format!(
            "no TCP listener held by a process of {OCTO} besides octod's own port {WALL_PORT}"
        ));
    } else {
        let shown: Vec<String> = new
            .iter()
            .map(|l| format!("{} ({:?})", l.local, l.holders))
            .collect();
        let visible = new.iter().filter(|l| appeared.contains(&l.local)).count();
        findings.push(format!(
            "the session listens on TCP ports of the host ({visible} of them in {PROBE_USER}'s `ss -ltn`): {shown:?}"
        ));
    }

    // The token: in no command line (as the unprivileged user sees them), nowhere else.
    let holders = probe_after["token_in_cmdline"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if holders.is_empty() {
        say(format!(
            "the session token is in none of the {} command lines {PROBE_USER} can read",
            probe_after["cmdlines_scanned"]
        ));
    } else {
        findings.push(format!(
            "the session token is on command lines {PROBE_USER} can read: {holders:?}"
        ));
    }
    let environ = token_in_environ(&token);
    if environ.is_empty() {
        say("the token is in no process's environment (it is a mounted secret file)");
    } else {
        findings.push(format!(
            "the token is in the environment of {environ:?} (the contract: a secret mounted as a file)"
        ));
    }
    let (_, home) = octo_user()?;
    let mut leaks = Vec::new();
    let inspect = runner.output(&["podman", "inspect", &format!("octo-{id}")])?;
    if inspect.contains(&token) {
        leaks.push("`podman inspect`".to_owned());
    }
    for dir in [".config/containers/systemd/octo", ".config/systemd/user"] {
        for entry in std::fs::read_dir(home.join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            if std::fs::read_to_string(entry.path()).is_ok_and(|t| t.contains(&token)) {
                leaks.push(entry.path().display().to_string());
            }
        }
    }
    let journal = util::run(Command::new("journalctl").args(["-o", "cat", "--no-pager", "-b"]))?;
    if journal.contains(&token) {
        leaks.push("the journal".to_owned());
    }
    let metrics = util::request(WALL_PORT, "GET", "/metrics", &[], None)?;
    if metrics.body.contains(&token) {
        leaks.push("/metrics".to_owned());
    }
    if octod.log_since(0).iter().any(|l| l.contains(&token)) {
        leaks.push("octod's log".to_owned());
    }
    if leaks.is_empty() {
        say("the token is in no unit file, `podman inspect`, journal, octod log or /metrics");
    } else {
        findings.push(format!("the session token shows in {leaks:?}"));
    }

    // The socket: refused to the unprivileged user, served to octo.
    let refused = probe_after["socket"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let octo_side = runner.octo(&[
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "30",
        "--unix-socket",
        &socket.to_string_lossy(),
        "http://session/health",
    ])?;
    let octo_out = octo_side.output_checked();
    match (refused.starts_with("PermissionDenied"), &octo_out) {
        (true, Ok(code)) => say(format!(
            "{}: {PROBE_USER} is refused ({refused}); {OCTO} gets HTTP {code}",
            socket.display()
        )),
        _ => findings.push(format!(
            "{}: {PROBE_USER} gets {refused} (expected PermissionDenied), {OCTO} gets {octo_out:?} (expected an HTTP answer)",
            socket.display()
        )),
    }

    // Port squatting: kill the container, ask through octod at once.
    let text = format!("squat-proof-{id}");
    runner.write_file(&id, "squat.txt", &text)?;
    let started = runner.started_at(&id)?;
    runner.output(&["podman", "kill", &format!("octo-{id}")])?;
    let killed = Instant::now();
    match fetch_file(&client, &id, "squat.txt", Duration::from_secs(120)).await {
        Ok((first, body)) if body.trim() == text => {
            let now = runner.started_at(&id).unwrap_or_default();
            if now == started {
                findings.push(format!(
                    "after `podman kill` the file was served, but by a container that did not restart (started {started})"
                ));
            } else {
                say(format!(
                    "podman kill, then a request through octod at once: first answer {first}, the file served by the restarted session after {:.1?} (started {started} → {now})",
                    killed.elapsed()
                ));
            }
        }
        Ok((first, body)) => findings.push(format!(
            "after `podman kill` the request was answered by something else: first {first}, body {body:?}"
        )),
        Err(error) => findings.push(format!(
            "after `podman kill` the session was not served again: {error:#}"
        )),
    }

    let deleted = client.call("DELETE", &format!("/api/sessions/{id}"), None)?;
    api::expect(&deleted, 204, "delete")?;
    if findings.is_empty() {
        say("the wall holds");
        Ok(())
    } else {
        for finding in &findings {
            eprintln!("  ✗ {finding}");
        }
        bail!("{} breaches of the session's wall", findings.len())
    }
}

/// `Command::output` that fails on a non-zero exit, returning standard output.
trait OutputChecked {
    fn output_checked(self) -> anyhow::Result<String>;
}

impl OutputChecked for Command {
    fn output_checked(mut self) -> anyhow::Result<String> {
        util::run(&mut self).map(|s| s.trim().to_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// wake

/// Waits until each session's service is inactive (stopped as idle by octod).
async fn idle_stopped(runner: Runner, ids: &[&str]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    util::eventually(
        Duration::from_secs(240),
        "the idle stop of the quiet sessions",
        async || {
            for id in ids {
                let state = runner.unit("is-active", &format!("octo-{id}.service"))?;
                ensure!(state == "inactive", "octo-{id}.service is {state}");
            }
            Ok(())
        },
    )
    .await?;
    Ok(started.elapsed())
}

/// An idle-stopped session: service inactive, socket listening.
fn expect_idle(runner: Runner, id: &str) -> anyhow::Result<()> {
    let service = runner.unit("is-active", &format!("octo-{id}.service"))?;
    let socket = runner.unit("is-active", &format!("octo-{id}.socket"))?;
    ensure!(
        service == "inactive" && socket == "active",
        "an idle-stopped session: octo-{id}.service is {service} (expected inactive), octo-{id}.socket is {socket} (expected active: it must keep listening)"
    );
    Ok(())
}

/// A user-stopped session: service and socket inactive, the socket not enabled.
fn expect_stopped(runner: Runner, id: &str) -> anyhow::Result<()> {
    let service = runner.unit("is-active", &format!("octo-{id}.service"))?;
    let socket = runner.unit("is-active", &format!("octo-{id}.socket"))?;
    let enabled = runner.unit("is-enabled", &format!("octo-{id}.socket"))?;
    ensure!(
        service != "active" && socket != "active" && enabled != "enabled",
        "a user-stopped session: octo-{id}.service {service}, octo-{id}.socket {socket}, {enabled} (expected nothing active or enabled)"
    );
    Ok(())
}

/// A request through octod to a user-stopped session: 409 `session_stopped`, and it stays
/// stopped.
async fn expect_refused_stopped(client: &Client, runner: Runner, id: &str) -> anyhow::Result<()> {
    let answer = client.call("GET", &file_path(id, "x"), None)?;
    ensure!(
        answer.status == 409 && answer.json()?["error"]["code"] == "session_stopped",
        "a request to a user-stopped session: expected 409 session_stopped, got {} {}",
        answer.status,
        answer.body
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    expect_stopped(runner, id)
}

async fn wake() -> anyhow::Result<()> {
    let runner = Runner::Octo;
    let dir = fresh_dir("e2e-boundary-wake")?;
    let (uid, _) = octo_user()?;
    // One minute is octod's shortest idle time (its reaper runs every 30 s).
    let octod = Octod::start(runner, WAKE_PORT, &dir, 1).await?;
    let client = octod.register_admin()?;
    let (direct, proxied, stopped) = (
        create(&client).await?,
        create(&client).await?,
        create(&client).await?,
    );
    for id in [&direct, &proxied, &stopped] {
        runner.write_file(id, "wake.txt", &format!("wake-{id}"))?;
    }
    let answer = client.call("POST", &format!("/api/sessions/{stopped}/stop"), None)?;
    api::expect(&answer, 200, "stop")?;
    say(format!(
        "sessions {direct} and {proxied} left alone to go idle, {stopped} stopped by its user"
    ));
    let waited = idle_stopped(runner, &[&direct, &proxied]).await?;
    say(format!("both idle-stopped after {waited:.0?}"));
    for id in [&direct, &proxied] {
        expect_idle(runner, id)?;
    }
    expect_stopped(runner, &stopped)?;
    say("their sockets keep listening; the user-stopped session's socket is stopped and disabled");

    // octod gone: nothing can call StartUnit. A connection to the socket starts the session.
    octod.stop()?;
    let token = runner.token(&direct)?;
    let bearer = format!("Bearer {token}");
    let started = Instant::now();
    let answer = util::request_unix(
        &socket_path(uid, &direct),
        "GET",
        "/api/download?path=wake.txt",
        &[("Authorization", &bearer)],
        Duration::from_secs(90),
    )?;
    let took = started.elapsed();
    api::expect(
        &answer,
        200,
        "the file straight from the woken session's socket",
    )?;
    expect_text(&answer.body, &format!("wake-{direct}"), "wake.txt")?;
    // The gateway answers before the unit is healthy (`activating`); it then becomes active.
    util::eventually(
        Duration::from_secs(90),
        "the socket-activated service active",
        async || {
            let state = runner.unit("is-active", &format!("octo-{direct}.service"))?;
            ensure!(state == "active", "octo-{direct}.service is {state}");
            Ok(())
        },
    )
    .await?;
    say(format!(
        "octod stopped: a request on {direct}'s socket started it by socket activation and got its file in {took:.2?}"
    ));

    // Through octod (never idle-stopping now): the proxy connects, systemd starts it.
    let octod = Octod::start(runner, WAKE_PORT, &dir, 0).await?;
    let mark = octod.log_len();
    let started = Instant::now();
    let (first, body) = fetch_file(&client, &proxied, "wake.txt", Duration::from_secs(90)).await?;
    expect_text(&body, &format!("wake-{proxied}"), "wake.txt through octod")?;
    let resumed: Vec<String> = octod
        .log_since(mark)
        .into_iter()
        .filter(|l| l.contains(PROXY_RESUME_LOG))
        .collect();
    ensure!(
        resumed.is_empty(),
        "octod woke the session itself (it must leave that to the socket): {resumed:?}"
    );
    say(format!(
        "through octod: {proxied} woke on the request (first answer {first}, the file after {:.2?}); octod's log has no {PROXY_RESUME_LOG:?}",
        started.elapsed()
    ));
    for id in [&direct, &proxied] {
        util::session_running(
            |path| client.call("GET", path, None),
            id,
            Duration::from_secs(60),
        )
        .await
        .with_context(|| format!("the reconciler recording the woken {id} as running"))?;
    }
    say("octod records both woken sessions as running");

    expect_refused_stopped(&client, runner, &stopped).await?;
    let direct_stopped = util::request_unix(
        &socket_path(uid, &stopped),
        "GET",
        "/health",
        &[],
        Duration::from_secs(5),
    );
    ensure!(
        direct_stopped.is_err(),
        "the user-stopped session's socket answered: {direct_stopped:?}"
    );
    say(format!(
        "{stopped} (stopped by its user): 409 session_stopped through octod, no socket to connect to, still stopped"
    ));
    for id in [&direct, &proxied, &stopped] {
        let deleted = client.call("DELETE", &format!("/api/sessions/{id}"), None)?;
        api::expect(&deleted, 204, "delete")?;
        let socket = runner.unit("is-active", &format!("octo-{id}.socket"))?;
        ensure!(
            socket != "active",
            "octo-{id}.socket still listens after delete"
        );
    }
    octod.stop()
}

// ---------------------------------------------------------------------------------------------
// reboot

const REBOOT_DIR: &str = "e2e-boundary-reboot";

async fn reboot_setup() -> anyhow::Result<()> {
    let runner = Runner::Octo;
    let dir = fresh_dir(REBOOT_DIR)?;
    let octod = Octod::start(runner, REBOOT_PORT, &dir, 1).await?;
    let client = octod.register_admin()?;
    let (running, idle, stopped) = (
        create(&client).await?,
        create(&client).await?,
        create(&client).await?,
    );
    for id in [&running, &idle, &stopped] {
        runner.write_file(id, "boot.txt", &format!("boot-{id}"))?;
    }
    let answer = client.call("POST", &format!("/api/sessions/{stopped}/stop"), None)?;
    api::expect(&answer, 200, "stop")?;
    // The running one has activity (through the proxy) until the idle one was stopped.
    let started = Instant::now();
    util::eventually(
        Duration::from_secs(240),
        "the idle stop of the quiet session",
        async || {
            let (_, body) =
                fetch_file(&client, &running, "boot.txt", Duration::from_secs(30)).await?;
            expect_text(&body, &format!("boot-{running}"), "boot.txt")?;
            tokio::time::sleep(Duration::from_secs(4)).await;
            let state = runner.unit("is-active", &format!("octo-{idle}.service"))?;
            ensure!(state == "inactive", "octo-{idle}.service is {state}");
            Ok(())
        },
    )
    .await?;
    expect_idle(runner, &idle)?;
    expect_stopped(runner, &stopped)?;
    let state = runner.unit("is-active", &format!("octo-{running}.service"))?;
    ensure!(state == "active", "the busy session is {state}");
    say(format!(
        "{running} runs, {idle} idle-stopped after {:.0?}, {stopped} stopped by its user; each has ~/boot.txt",
        started.elapsed()
    ));
    std::fs::write(
        dir.join("reboot.json"),
        json!({"cookie": client.cookie, "running": running, "idle": idle, "stopped": stopped})
            .to_string(),
    )?;
    octod.stop()
}

async fn reboot_check() -> anyhow::Result<()> {
    let runner = Runner::Octo;
    let (uid, home) = octo_user()?;
    let dir = home.join(REBOOT_DIR);
    let state: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reboot.json"))?)?;
    let get = |key: &str| -> anyhow::Result<String> {
        state[key]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{key} in reboot.json"))
    };
    let (running, idle, stopped) = (get("running")?, get("idle")?, get("stopped")?);

    // Before octod runs: what systemd did at boot by itself.
    util::eventually(
        Duration::from_secs(150),
        "the running session back after the reboot",
        async || {
            let state = runner.unit("is-active", &format!("octo-{running}.service"))?;
            ensure!(state == "active", "octo-{running}.service is {state}");
            Ok(())
        },
    )
    .await?;
    say(format!(
        "{running} came back at boot by itself (octod not running)"
    ));
    expect_idle(runner, &idle)?;
    let socket = socket_path(uid, &idle);
    ensure!(
        socket.exists(),
        "{} does not exist after the reboot",
        socket.display()
    );
    expect_stopped(runner, &stopped)?;
    say(format!(
        "{idle} is not running but its socket listens; {stopped} has neither"
    ));

    // octod (no idle stop now) does not start the idle one by itself either.
    let octod = Octod::start(runner, REBOOT_PORT, &dir, 0).await?;
    let client = Client {
        port: REBOOT_PORT,
        cookie: get("cookie")?,
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    expect_idle(runner, &idle).context("after octod started")?;
    let (_, body) = fetch_file(&client, &running, "boot.txt", Duration::from_secs(60)).await?;
    expect_text(
        &body,
        &format!("boot-{running}"),
        "the running session's file",
    )?;
    let started = Instant::now();
    let (first, body) = fetch_file(&client, &idle, "boot.txt", Duration::from_secs(90)).await?;
    expect_text(&body, &format!("boot-{idle}"), "the idle session's file")?;
    say(format!(
        "{idle} woke on its first request (first answer {first}, the file after {:.2?})",
        started.elapsed()
    ));
    expect_refused_stopped(&client, runner, &stopped).await?;
    let answer = client.call("POST", &format!("/api/sessions/{stopped}/resume"), None)?;
    api::expect(&answer, 200, "resume")?;
    let (_, body) = fetch_file(&client, &stopped, "boot.txt", Duration::from_secs(90)).await?;
    expect_text(
        &body,
        &format!("boot-{stopped}"),
        "the stopped session's file",
    )?;
    say(format!(
        "{stopped} stayed stopped (409) until resumed; its file is intact too"
    ));
    for id in [&running, &idle, &stopped] {
        let deleted = client.call("DELETE", &format!("/api/sessions/{id}"), None)?;
        api::expect(&deleted, 204, "delete")?;
    }
    octod.stop()
}
