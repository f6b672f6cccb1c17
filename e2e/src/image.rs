//! The session image for real: built by `octod::image` (a transient unit on the user manager,
//! journal streamed, tagged after success; a failing build leaves `:latest` alone), then one
//! session per template created through the engine (`octod::engine`, the same Quadlet units,
//! token secret, provider secret, read-only template and health check as octod uses), and each
//! service checked over its real protocol the way octod reaches it: through the session's
//! socket (its socket unit's `/run/user/<uid>/octo/sessions/<id>.sock`) and the gateway in the
//! container, with the session's bearer token: opencode's health (`/opencode/…`, refused
//! without the token) and the template's agent in its config, the file server's listing of
//! `/home/dev`, ttyd's WebSocket (`/terminal`) running `echo $((6*7))`. Also: every process
//! runs as `dev` on a subordinate host uid, the token is on no command line (inside or outside
//! the container) and secrets do not reach the user's shell or the log, opencode and ttyd hold
//! neither the gateway's listener nor `LISTEN_*`, user edits survive the engine's stop and
//! resume, a killed gateway is restarted on the same listener, and a stop takes less than
//! Podman's grace time. And the full agent loop: a stub OpenAI-compatible model on the test host (tests
//! only) answers a prompt sent through opencode's API with a shell tool call that writes a
//! file, which the file server then shows. Each session is deleted through the engine and
//! nothing of it is left.
//!
//! Needs the base image `localhost/debian:trixie-slim` (imported by `cargo xtask`'s image
//! helper, which also warms the layer cache) and `container/` at `/opt/octo/src/container`.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures_util::{SinkExt as _, StreamExt as _};
use octod::engine::{CreateRequest, Engine};
use octod::image::{BuildConfig, ImageError};
use octod::llm::{ApiKey, Gateway, GatewayConfig};
use octod::render::{LlmMount, SessionNames};
use octod::session::{SessionId, SessionState};
use octod::systemd::{ActiveState, Systemd};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _, http};

use crate::engine::{check_gone, engine_for_image};
use crate::stub_llm::{AGENT_FILE, AGENT_FILE_TEXT, AGENT_REPLY, LLM_MODEL, keys_seen, stub_llm};
use crate::util::{self, say};

const CONTAINER_DIR: &str = "/opt/octo/src/container";
const BASE_IMAGE: &str = "localhost/debian:trixie-slim";
/// Extra CAs the xtask helper put into the test host for the build (see xtask/src/image.rs).
const EXTRA_CA_DIR: &str = "/var/lib/octo/image-ca";
/// The image the engine's sessions use (built by [`build`]).
const IMAGE: &str = "localhost/octo-session:latest";
/// The provider's key, which octod's model gateway holds and no session may see.
const API_KEY: &str = "e2e-llm-key-must-not-be-logged";
/// The OpenAI-compatible stub model on the test host (tests only; the real provider is the
/// administrator's), reached by octod's model gateway (here in this process).
const STUB_PORT: u16 = 44_899;
/// `dev`'s uid (and gid) in the image, owner of the mounted token file.
const DEV_UID: u32 = 1000;

/// A template, the id of its session and what its opencode config must show.
struct Template {
    dir: &'static str,
    session: &'static str,
    default_agent: &'static str,
}

const TEMPLATES: &[Template] = &[
    Template {
        dir: "coding-copilot",
        session: "imgcoding",
        default_agent: "build",
    },
    Template {
        dir: "research-assistant",
        session: "imgresearch",
        default_agent: "research",
    },
    Template {
        dir: "meeting-synth",
        session: "imgmeeting",
        default_agent: "meeting-synth",
    },
];

pub(crate) async fn run() -> anyhow::Result<()> {
    let systemd = Systemd::connect_user().await?;
    let image = build(&systemd).await?;
    failed_build_keeps_latest(&systemd, &image).await?;
    supervisor_gives_up().await?;
    let stub = tokio::spawn(stub_llm(
        tokio::net::TcpListener::bind(("0.0.0.0", STUB_PORT))
            .await
            .with_context(|| format!("binding the stub model on port {STUB_PORT}"))?,
    ));
    // octod's model gateway, as `octod serve` runs it, in front of the stub model.
    let home = PathBuf::from(std::env::var("HOME").context("HOME")?);
    let mount = LlmMount {
        sockets_dir: home.join("e2e").join("llm"),
        models: vec![LLM_MODEL.to_owned()],
    };
    let mut sockets = None;
    let result = async {
        let engine = engine_for_image(
            IMAGE,
            &Path::new(CONTAINER_DIR).join("templates"),
            mount.clone(),
        )
        .await?;
        let gateway = Gateway::new(
            GatewayConfig {
                base_url: format!("http://127.0.0.1:{STUB_PORT}/v1"),
                api_key: Some(ApiKey::new(API_KEY)),
                models: mount.models.clone(),
                head_timeout: Duration::from_secs(60),
                max_body_bytes: octod::llm::MAX_BODY_BYTES,
                budgets: octod::config::BudgetsFragment::default(),
                providers: Vec::new(),
                allow: octod::config::AllowFragment::default(),
            },
            mount.clone(),
            engine.store().clone(),
        )?;
        sockets = Some(tokio::spawn(octod::llm::sockets::run(gateway)));
        let mut ready = Vec::new();
        for (index, template) in TEMPLATES.iter().enumerate() {
            let elapsed = template_session(&engine, template, index == 0)
                .await
                .with_context(|| format!("template {}", template.dir))?;
            ready.push((template.dir, elapsed));
        }
        for (dir, elapsed) in ready {
            say(format!(
                "{dir}: engine create→ready {:.1} s",
                elapsed.as_secs_f64()
            ));
        }
        Ok(())
    }
    .await;
    if let Some(sockets) = sockets {
        sockets.abort();
    }
    stub.abort();
    result
}

/// Creates the template's session through the engine, checks it, deletes it through the
/// engine and checks that nothing of it is left. Returns how long the create took (until
/// the unit's start job ended: the container is healthy).
async fn template_session(
    engine: &Engine,
    template: &Template,
    first: bool,
) -> anyhow::Result<Duration> {
    let id: SessionId = template.session.parse()?;
    // Left over from an interrupted run.
    if engine.get(&id).await.is_ok() {
        delete(engine, &id).await?;
    }
    let result = async {
        let started = Instant::now();
        let record = engine
            .create(CreateRequest {
                id: Some(id.to_string()),
                owner: "e2e".into(),
                template: template.dir.into(),
                limits: None,
                max_per_owner: None,
            })
            .await
            .map_err(|e| anyhow::anyhow!("creating session {id}: {e}"))?;
        let elapsed = started.elapsed();
        ensure!(
            record.state == SessionState::Running,
            "{id} after create: {:?}",
            record.state
        );
        let socket = engine.socket_path(&id);
        say(format!(
            "{}: session {id} created through the engine, running (healthy) after {:.1} s; socket {}",
            template.dir,
            elapsed.as_secs_f64(),
            socket.display()
        ));
        let session = Session {
            name: SessionNames::new(&id).container,
            token: engine.store().token(&id)?.expose().to_owned(),
            socket,
            id: id.clone(),
        };
        check_session(engine, &session, template, first).await?;
        Ok(elapsed)
    }
    .await;
    if result.is_err() {
        let name = SessionNames::new(&id);
        let _ = Command::new("podman")
            .args(["logs", "--tail", "40", &name.container])
            .status();
        let _ = Command::new("journalctl")
            .args(["--user", "--no-pager", "-n", "40", "-u", &name.service])
            .status();
    }
    let deleted = if engine.get(&id).await.is_ok() {
        delete(engine, &id).await
    } else {
        Ok(())
    };
    let elapsed = result?;
    deleted?;
    check_gone(engine, &id).await?;
    say(format!(
        "{}: deleted through the engine; no file, unit, container, volume, secret or port left",
        template.dir
    ));
    Ok(elapsed)
}

async fn delete(engine: &Engine, id: &SessionId) -> anyhow::Result<()> {
    engine
        .delete(id)
        .await
        .map_err(|e| anyhow::anyhow!("deleting session {id}: {e}"))
}

fn build_config(version: &str, container_dir: &Path) -> anyhow::Result<BuildConfig> {
    let home = std::env::var("HOME").context("HOME is not set")?;
    let release = Path::new("/opt/octo/target/release/octo-fileserver");
    let fileserver = if release.exists() {
        release.to_owned()
    } else {
        PathBuf::from("/opt/octo/target/debug/octo-fileserver")
    };
    let extra_ca = Path::new(EXTRA_CA_DIR);
    Ok(BuildConfig {
        version: version.to_owned(),
        base_image: Some(BASE_IMAGE.to_owned()),
        extra_ca_dir: extra_ca.is_dir().then(|| extra_ca.to_owned()),
        timeout: Duration::from_secs(1800),
        ..BuildConfig::new(
            container_dir,
            fileserver,
            Path::new(&home).join(".cache/octo/image-build"),
        )
    })
}

/// Builds the image through octod; returns the image id of `:latest`.
async fn build(systemd: &Systemd) -> anyhow::Result<String> {
    let config = build_config(octod::VERSION, Path::new(CONTAINER_DIR))?;
    say(format!(
        "building {} with octod::image (transient unit, journal followed)",
        config.versioned_tag()
    ));
    let mut lines = Vec::new();
    let built = octod::image::build(systemd, &config, |line| lines.push(line.to_owned()))
        .await
        .context("octod::image::build")?;
    ensure!(
        lines.iter().any(|l| l.starts_with("STEP ")),
        "the build's progress did not stream podman's STEP lines (got {} lines)",
        lines.len()
    );
    let versioned = image_id(&built.image)?;
    let latest = image_id(&built.latest)?;
    ensure!(
        versioned == latest,
        "{} ({versioned}) and {} ({latest}) differ",
        built.image,
        built.latest
    );
    let size = util::run(Command::new("podman").args([
        "image",
        "inspect",
        "--format",
        "{{.Size}}",
        &built.image,
    ]))?;
    say(format!(
        "built {} in {:.1} s through {} ({} progress lines, {} bytes)",
        built.image,
        built.elapsed.as_secs_f64(),
        built.unit,
        lines.len(),
        size.trim()
    ));
    Ok(latest)
}

/// A build that fails leaves `:latest` where it was and tags nothing.
async fn failed_build_keeps_latest(systemd: &Systemd, latest: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let broken = dir.path().join("container");
    util::run(Command::new("cp").arg("-a").arg(CONTAINER_DIR).arg(&broken))?;
    let containerfile = broken.join("Containerfile");
    let mut text = std::fs::read_to_string(&containerfile)?;
    text.push_str("RUN echo 'e2e: this build must fail' && false\n");
    std::fs::write(&containerfile, text)?;
    let config = build_config("e2e-broken", &broken)?;
    match octod::image::build(systemd, &config, |_| {}).await {
        Err(ImageError::Failed { reason, .. }) => {
            ensure!(
                reason.contains("this build must fail") || reason.contains("exit-code"),
                "the failure reason does not say why: {reason}"
            );
        }
        Err(other) => bail!("a failing build ended with the wrong error: {other}"),
        Ok(built) => bail!("a build with `RUN false` succeeded: {built:?}"),
    }
    ensure!(
        image_id(&config.latest_tag())? == latest,
        "a failed build moved :latest"
    );
    ensure!(
        image_id(&config.versioned_tag()).is_err(),
        "a failed build tagged {}",
        config.versioned_tag()
    );
    say("a failing build leaves :latest in place and tags nothing");
    Ok(())
}

fn image_id(image: &str) -> anyhow::Result<String> {
    Ok(
        util::run(Command::new("podman").args(["image", "inspect", "--format", "{{.Id}}", image]))?
            .trim()
            .to_owned(),
    )
}

/// A session the engine created, as the checks reach it.
struct Session {
    id: SessionId,
    /// The container, `octo-<id>`.
    name: String,
    /// The session's token from the store.
    token: String,
    /// The session's socket on the host (its socket unit's), where the gateway answers.
    socket: PathBuf,
}

impl Session {
    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn exec(&self, script: &str) -> anyhow::Result<String> {
        util::run(Command::new("podman").args(["exec", &self.name, "sh", "-c", script]))
    }

    fn logs(&self) -> anyhow::Result<String> {
        let out = Command::new("podman")
            .args(["logs", &self.name])
            .output()
            .context("podman logs")?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn create_secret(name: &str, value: &str) -> anyhow::Result<()> {
    let _ = Command::new("podman").args(["secret", "rm", name]).output();
    let mut child = Command::new("podman")
        .args(["secret", "create", name, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("podman secret create")?;
    child
        .stdin
        .take()
        .context("stdin of podman secret create")?
        .write_all(value.as_bytes())?;
    ensure!(
        child.wait()?.success(),
        "podman secret create {name} failed"
    );
    Ok(())
}

async fn check_session(
    engine: &Engine,
    session: &Session,
    template: &Template,
    first: bool,
) -> anyhow::Result<()> {
    let socket = session.socket.as_path();
    let token = session.token.as_str();
    let bearer = format!("Bearer {token}");

    // opencode through the gateway: the bearer token opens it, nothing else does (opencode
    // itself has no password: only the gateway reaches it).
    let (status, body) = http(socket, "/opencode/global/health", Some(&bearer))?;
    ensure!(
        status == 200 && body.contains("\"healthy\":true"),
        "opencode /global/health through the gateway with the token: {status} {body}"
    );
    let (status, _) = http(socket, "/opencode/global/health", None)?;
    ensure!(
        status == 401,
        "opencode through the gateway without the token answered {status}, not 401"
    );
    let (status, _) = http(
        socket,
        "/opencode/global/health",
        Some("Bearer not-the-token"),
    )?;
    ensure!(
        status == 401,
        "opencode through the gateway with a wrong token answered {status}, not 401"
    );
    // The template is in effect: its default agent, and that agent exists.
    let (status, config) = http(socket, "/opencode/config", Some(&bearer))?;
    ensure!(status == 200, "opencode /config: {status}");
    let config: serde_json::Value = serde_json::from_str(&config).context("opencode /config")?;
    ensure!(
        config["default_agent"] == template.default_agent,
        "opencode's default_agent is {}, the template says {}",
        config["default_agent"],
        template.default_agent
    );
    let (status, agents) = http(socket, "/opencode/agent", Some(&bearer))?;
    ensure!(status == 200, "opencode /agent: {status}");
    let agents: serde_json::Value = serde_json::from_str(&agents).context("opencode /agent")?;
    ensure!(
        agents
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["name"] == template.default_agent)),
        "opencode has no agent {}",
        template.default_agent
    );
    say(format!(
        "{}: opencode through the gateway: 200 with the token, 401 without or wrong; default agent {}",
        template.dir, template.default_agent
    ));

    // The file server lists the workspace, with the template's files in it.
    let (status, body) = http(socket, "/api/list?path=/", Some(&bearer))?;
    ensure!(status == 200, "fileserver list: {status} {body}");
    for file in ["AGENTS.md", "opencode.json"] {
        ensure!(
            body.contains(&format!("\"name\":\"{file}\"")),
            "the workspace listing lacks {file}: {body}"
        );
    }
    let (status, _) = http(socket, "/api/list?path=/", None)?;
    ensure!(
        status == 401,
        "fileserver without the token answered {status}"
    );
    say(format!(
        "{}: the gateway lists /home/dev (AGENTS.md, opencode.json)",
        template.dir
    ));

    // ttyd over its WebSocket protocol, through the gateway's /terminal. The shell has no
    // token, no LISTEN_* variable and not the gateway's listener.
    let output = terminal(
        socket,
        token,
        &[
            "echo $((6*7))",
            "echo \"clean:[${OCTO_SESSION_TOKEN:-}${LISTEN_FDS:-}${LISTEN_PID:-}]\"",
        ],
        "clean:[]",
    )
    .await?;
    ensure!(
        output.lines().any(|l| l.trim() == "42"),
        "the terminal did not print 42:\n{output}"
    );
    ensure!(
        terminal_refused(socket).await?,
        "the gateway opened the terminal without the token"
    );
    say(format!(
        "{}: ttyd through the gateway's /terminal ran `echo $((6*7))` and printed 42; no token \
         or LISTEN_* in the shell; refused without the token",
        template.dir
    ));
    let logs = session.logs()?;
    ensure!(
        !logs.is_empty() && !logs.contains(token),
        "the session token is in the container's log (or the log is empty)"
    );
    no_token_on_command_lines(session)?;
    listener_only_in_the_gateway(session)?;
    say(format!(
        "{}: the token is on no command line inside or outside the container; opencode and \
         ttyd hold neither the gateway's listener nor LISTEN_*",
        template.dir
    ));

    // Every process runs as dev, on a host uid of the user namespace, not octo's own.
    let top = util::run(Command::new("podman").args(["top", &session.name, "user", "huser"]))?;
    let mut processes = 0;
    for line in top.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        ensure!(
            fields.first() == Some(&"dev"),
            "a process does not run as dev: {line}"
        );
        // `?`: the process ended while podman read it (a health check's, say).
        if fields.get(1) == Some(&"?") {
            continue;
        }
        let host_uid: u32 = fields.get(1).and_then(|u| u.parse().ok()).unwrap_or(0);
        ensure!(
            host_uid >= 100_000,
            "a process runs as host uid {host_uid}: {line}"
        );
        processes += 1;
    }
    ensure!(
        processes >= 4,
        "only {processes} processes in the container:\n{top}"
    );

    if first {
        llm_provider(session)?;
        agent_loop(session).await?;
        key_nowhere_in_the_session(engine, session)?;
        supervisor_restarts_a_service(session).await?;
        user_edits_survive_a_restart(engine, session).await?;
    }
    Ok(())
}

/// `ps -eo args` in the container and on the host (where the octo user sees every process,
/// the container's included) shows no token.
fn no_token_on_command_lines(session: &Session) -> anyhow::Result<()> {
    let inside = session.exec("ps -eo args")?;
    ensure!(
        inside.lines().count() >= 4 && !inside.contains(&session.token),
        "the token is on a command line in the container (or ps shows nothing):\n{inside}"
    );
    let outside = util::run(Command::new("ps").args(["-eo", "args"]))?;
    ensure!(
        outside.contains("octo-fileserver") && !outside.contains(&session.token),
        "the token is on a command line on the host (or the host's ps misses the gateway)"
    );
    Ok(())
}

/// The socket unit's listener (fd 3 of the gateway) is in no opencode or ttyd process, and
/// neither has a `LISTEN_*` variable.
fn listener_only_in_the_gateway(session: &Session) -> anyhow::Result<()> {
    let report = session.exec(
        r#"gw=$(pgrep -x octo-fileserver | head -1)
listener=$(readlink /proc/$gw/fd/3)
case "$listener" in socket:*) ;; *) echo "the gateway's fd 3 is $listener"; exit 0;; esac
for p in $(pgrep -x opencode) $(pgrep -x ttyd); do
    for fd in /proc/$p/fd/*; do
        [ "$(readlink "$fd")" = "$listener" ] && echo "process $p holds the listener as $fd"
    done
    tr '\0' '\n' < /proc/$p/environ | grep '^LISTEN_' | sed "s/^/process $p has /"
done
true"#,
    )?;
    ensure!(report.trim().is_empty(), "{}", report.trim());
    Ok(())
}

/// opencode's `octo` provider is octod's model gateway, bridged to the container's loopback,
/// with a placeholder key; the session sees its own gateway directory and nothing else there.
fn llm_provider(session: &Session) -> anyhow::Result<()> {
    let bearer = session.bearer();
    let (status, body) = http(&session.socket, "/opencode/config/providers", Some(&bearer))?;
    ensure!(status == 200, "opencode /config/providers: {status}");
    let providers: serde_json::Value = serde_json::from_str(&body).context("/config/providers")?;
    let octo = providers["providers"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["id"] == "octo"))
        .context("opencode lists no provider `octo`")?;
    ensure!(
        octo["models"].get(LLM_MODEL).is_some(),
        "the octo provider has no model {LLM_MODEL}: {octo}"
    );
    let config = session.exec("cat /home/dev/.config/opencode/opencode.json")?;
    let config: serde_json::Value = serde_json::from_str(&config).context("opencode.json")?;
    let options = &config["provider"]["octo"]["options"];
    ensure!(
        options["baseURL"] == "http://127.0.0.1:41830/v1" && options["apiKey"] == "octo-session",
        "the octo provider is not the gateway's bridge with the placeholder key: {options}"
    );
    let listed =
        session.exec("ls -A /run/octo-llm; test -w /run/octo-llm && echo writable; true")?;
    ensure!(
        listed.trim() == "llm.sock",
        "/run/octo-llm holds more than the session's socket, or is writable: {listed:?}"
    );
    say(
        "opencode's `octo` provider is octod's model gateway (loopback bridge, placeholder key); /run/octo-llm holds only llm.sock, read-only",
    );
    Ok(())
}

/// The stub model saw the provider's key (octod added it), and nothing of the session holds
/// it: its home, every process's environment (PID 1's included), `podman inspect`, its unit
/// files, its log. The key is never put on a command line here either: the session's files
/// are searched with the key on `grep`'s standard input.
fn key_nowhere_in_the_session(engine: &Engine, session: &Session) -> anyhow::Result<()> {
    let seen = keys_seen();
    let bearer = format!("Bearer {API_KEY}");
    ensure!(
        !seen.is_empty() && seen.iter().all(|k| *k == bearer),
        "the stub model did not see the provider's key on every request: {seen:?}"
    );
    let mut grep = Command::new("podman")
        .args([
            "exec",
            "-i",
            &session.name,
            "sh",
            "-c",
            "grep -rlF -f /dev/stdin /home/dev /tmp /run/octo 2>/dev/null; true",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("podman exec grep")?;
    grep.stdin
        .take()
        .context("grep's stdin")?
        .write_all(format!("{API_KEY}\n").as_bytes())?;
    let found = grep.wait_with_output()?;
    let found = String::from_utf8_lossy(&found.stdout);
    ensure!(
        found.trim().is_empty(),
        "the provider's key is in the session's files: {found}"
    );
    let environ = session
        .exec("for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ; done 2>/dev/null; true")?;
    ensure!(
        environ.contains("OCTO_SESSION_ID=") && !environ.contains(API_KEY),
        "the provider's key is in a process's environment (or none was read)"
    );
    let pid1 = session.exec("tr '\\0' '\\n' < /proc/1/environ")?;
    ensure!(
        pid1.contains("OCTO_LLM_MODELS=")
            && !pid1.contains(API_KEY)
            && !pid1.contains("OCTO_LLM_CONFIG"),
        "PID 1's environment: {pid1}"
    );
    let inspect = util::run(Command::new("podman").args(["inspect", &session.name]))?;
    ensure!(
        !inspect.contains(API_KEY),
        "the provider's key is in podman inspect"
    );
    let names = SessionNames::new(&session.id);
    let config = engine.config();
    for path in [
        config.quadlet_dir.join(&names.container_file),
        config.quadlet_dir.join(&names.volume_file),
        config.systemd_user_dir.join(&names.socket_unit),
    ] {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        ensure!(
            !text.contains(API_KEY),
            "the provider's key is in {}",
            path.display()
        );
        ensure!(
            !text.contains("octo-llm,") && !text.contains("OCTO_LLM_CONFIG"),
            "{} names the old provider secret",
            path.display()
        );
    }
    ensure!(
        !session.logs()?.contains(API_KEY),
        "the provider's key is in the container's log"
    );
    say(format!(
        "the stub model saw the provider's key on all {} requests; the session's home, environments (PID 1's too), podman inspect, unit files and log hold none of it",
        seen.len()
    ));
    Ok(())
}

/// The full loop: a prompt through opencode's API, the stub model answers with a shell tool
/// call that writes a file, the file shows up through the file server, and the model's final
/// answer is in opencode's message list.
async fn agent_loop(session: &Session) -> anyhow::Result<()> {
    let socket = session.socket.clone();
    let bearer = session.bearer();
    let (status, created) = request(
        &socket,
        "POST",
        "/opencode/session",
        Some(&bearer),
        Some(&serde_json::json!({})),
    )?;
    ensure!(
        status == 200,
        "creating an opencode session: {status} {created}"
    );
    let created: serde_json::Value = serde_json::from_str(&created)?;
    let id = created["id"]
        .as_str()
        .context("opencode session without id")?;
    let prompt =
        serde_json::json!({"parts": [{"type": "text", "text": "Please create the file."}]});
    // Blocking I/O on another thread: the stub model answers on this (single) thread.
    let path = format!("/opencode/session/{id}/message");
    let auth = bearer.clone();
    let (status, answer) = tokio::task::spawn_blocking(move || {
        request(&socket, "POST", &path, Some(&auth), Some(&prompt))
    })
    .await??;
    ensure!(
        status == 200 && answer.contains(AGENT_REPLY),
        "prompting opencode: {status} {answer}"
    );
    let (status, messages) = http(
        &session.socket,
        &format!("/opencode/session/{id}/message"),
        Some(&bearer),
    )?;
    ensure!(status == 200, "opencode's messages: {status}");
    let (status, text) = http(
        &session.socket,
        &format!("/api/download?path={AGENT_FILE}"),
        Some(&bearer),
    )?;
    ensure!(
        status == 200 && text.trim() == AGENT_FILE_TEXT,
        "the file the agent's tool wrote: {status} {text:?}; opencode's messages: {messages}"
    );
    ensure!(
        messages.contains(AGENT_REPLY) && messages.contains("\"tool\":\"bash\""),
        "opencode's message list lacks the tool call or the reply: {messages}"
    );
    say(format!(
        "agent loop: prompt -> stub model -> bash tool wrote {AGENT_FILE} (seen by the file server) -> reply"
    ));
    Ok(())
}

/// A service that dies is started again by the entrypoint; a restarted gateway gets the same
/// listener (the socket unit's, kept open by the entrypoint), so the session's socket answers
/// again without systemd or Podman noticing.
async fn supervisor_restarts_a_service(session: &Session) -> anyhow::Result<()> {
    session.exec("pkill -x octo-fileserver")?;
    util::eventually(
        Duration::from_secs(30),
        "the gateway's restart",
        async || {
            let (status, _) = http(&session.socket, "/health", None)?;
            ensure!(status == 200, "gateway /health: {status}");
            let logs = session.logs()?;
            ensure!(
                logs.contains("fileserver: exited with status"),
                "no restart in the log yet"
            );
            Ok(())
        },
    )
    .await?;
    say("a killed gateway was restarted by the entrypoint and answers on the same socket");
    Ok(())
}

/// A service that keeps dying makes the entrypoint give up and exit 1, so that systemd
/// restarts the whole unit.
async fn supervisor_gives_up() -> anyhow::Result<()> {
    const TOKEN: &str = "e2e-give-up-token-4f9c1d2b7a";
    let name = "octo-e2e-image-give-up";
    let secret = format!("{name}-token");
    let _ = Command::new("podman")
        .args(["rm", "--force", name])
        .output();
    create_secret(&secret, TOKEN)?;
    // Not socket-activated: the gateway listens on a Unix socket inside the container.
    util::run(Command::new("podman").args([
        "run",
        "--detach",
        "--name",
        name,
        "--userns=auto",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        &format!("--secret={secret},type=mount,target=/run/secrets/octo-token,mode=0400,uid={DEV_UID},gid={DEV_UID}"),
        "--env=OCTO_MAX_RESTARTS=1",
        IMAGE,
    ]))?;
    let result = util::eventually(
        Duration::from_secs(60),
        "the entrypoint giving up",
        async || {
            let _ = Command::new("podman")
                .args(["exec", name, "pkill", "-x", "octo-fileserver"])
                .output();
            let state = util::run(Command::new("podman").args([
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                name,
            ]))?;
            ensure!(
                state.trim() == "exited 1",
                "container state: {}",
                state.trim()
            );
            Ok(())
        },
    )
    .await;
    let logs = Command::new("podman").args(["logs", name]).output();
    let _ = Command::new("podman")
        .args(["rm", "--force", name])
        .output();
    let _ = Command::new("podman")
        .args(["secret", "rm", &secret])
        .output();
    result?;
    let logs = logs.context("podman logs")?;
    let logs = String::from_utf8_lossy(&logs.stdout);
    ensure!(
        logs.contains("fileserver: exited with status") && logs.contains("giving up"),
        "the log does not tell the restarts and the giving up:\n{logs}"
    );
    say("a service that keeps dying makes the container exit 1 (systemd restarts the unit)");
    Ok(())
}

/// An edited AGENTS.md is kept across the engine's stop and resume; the stop is quick (tini
/// forwards SIGTERM) and clean (the unit ends inactive, not failed).
async fn user_edits_survive_a_restart(engine: &Engine, session: &Session) -> anyhow::Result<()> {
    session.exec("echo '# my own notes' >> /home/dev/AGENTS.md")?;
    let started = Instant::now();
    let record = engine
        .stop(&session.id)
        .await
        .map_err(|e| anyhow::anyhow!("engine.stop: {e}"))?;
    let stop = started.elapsed();
    ensure!(
        record.state == SessionState::Stopped,
        "after engine.stop: {:?}",
        record.state
    );
    // The entrypoint kills what outlasts its 5 s grace; Podman would only after 10 s.
    ensure!(
        stop < Duration::from_secs(8),
        "stopping took {stop:?}: SIGTERM did not stop the services"
    );
    let service = SessionNames::new(&session.id).service;
    let state = Systemd::connect_user().await?.unit_state(&service).await?;
    ensure!(
        state.active == ActiveState::Inactive,
        "{service} after the stop: {state:?} (the entrypoint did not exit cleanly on SIGTERM)"
    );
    let started = Instant::now();
    let record = engine
        .resume(&session.id)
        .await
        .map_err(|e| anyhow::anyhow!("engine.resume: {e}"))?;
    let resume = started.elapsed();
    ensure!(
        record.state == SessionState::Running,
        "after engine.resume: {:?}",
        record.state
    );
    let (status, _) = http(
        &session.socket,
        "/opencode/global/health",
        Some(&session.bearer()),
    )?;
    ensure!(status == 200, "opencode after the resume: {status}");
    let agents = session.exec("cat /home/dev/AGENTS.md")?;
    ensure!(
        agents.contains("# my own notes"),
        "the user's edit of AGENTS.md was overwritten"
    );
    util::eventually(
        Duration::from_secs(15),
        "the entrypoint's report of keeping AGENTS.md",
        async || {
            ensure!(
                session
                    .logs()?
                    .contains("AGENTS.md: changed by the user; kept"),
                "the entrypoint did not report keeping AGENTS.md"
            );
            Ok(())
        },
    )
    .await?;
    say(format!(
        "engine.stop took {:.2} s (unit inactive, not failed), engine.resume → ready {:.1} s; \
         the edited AGENTS.md survived",
        stop.as_secs_f64(),
        resume.as_secs_f64()
    ));
    Ok(())
}

/// Runs commands in ttyd's shell through the gateway's `/terminal` on the session's socket
/// and returns the terminal output once it contains `until`.
pub(crate) async fn terminal(
    socket: &Path,
    token: &str,
    commands: &[&str],
    until: &str,
) -> anyhow::Result<String> {
    let ws = terminal_socket(socket, Some(token))
        .await
        .with_context(|| format!("WebSocket to /terminal on {}", socket.display()))?;
    // ttyd runs without a credential of its own (the gateway checked the token): an empty
    // AuthToken in the hello.
    terminal_over(ws, "", commands, until).await
}

/// `octo-e2e terminal`: `echo $((6*7))` through the gateway's `/terminal`; prints the output
/// and fails unless a line is 42.
pub(crate) async fn terminal_probe(socket: &Path, token_file: &Path) -> anyhow::Result<()> {
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("reading {}", token_file.display()))?;
    let output = terminal(socket, token.trim_end(), &["echo $((6*7))"], "42").await?;
    println!("{output}");
    Ok(())
}

/// Opens the WebSocket at the gateway's `/terminal` on `socket`, subprotocol `tty`, with the
/// bearer token if given.
async fn terminal_socket(
    socket: &Path,
    token: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>,
    tokio_tungstenite::tungstenite::Error,
> {
    let stream = tokio::net::UnixStream::connect(socket).await?;
    // The host part only fills `Host:`; the stream is already connected.
    let mut request = "ws://session/terminal".into_client_request()?;
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        http::HeaderValue::from_static("tty"),
    );
    if let Some(token) = token {
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
    }
    let (ws, _) = tokio_tungstenite::client_async(request, stream).await?;
    Ok(ws)
}

/// Runs commands in a ttyd terminal at `url` (directly, or through octod's proxy with the
/// browser's headers) and returns the output once a line equals `until`.
pub(crate) async fn terminal_at(
    url: &str,
    extra_headers: &[(&str, &str)],
    auth_token: &str,
    commands: &[&str],
    until: &str,
) -> anyhow::Result<String> {
    let mut request = url.into_client_request()?;
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        http::HeaderValue::from_static("tty"),
    );
    for (name, value) in extra_headers {
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes())?,
            http::HeaderValue::from_str(value)?,
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("WebSocket to {url}"))?;
    terminal_over(ws, auth_token, commands, until).await
}

/// [`terminal_at`] over a WebSocket that is already open (e.g. through TLS).
pub(crate) async fn terminal_over<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    auth_token: &str,
    commands: &[&str],
    until: &str,
) -> anyhow::Result<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // ttyd's protocol: a JSON hello with the credential and the size, then binary frames
    // whose first byte is the command ('0' input / output, '1' resize or title, '2' prefs).
    let hello = serde_json::json!({"AuthToken": auth_token, "columns": 100, "rows": 30});
    ws.send(Message::Text(hello.to_string().into())).await?;
    for command in commands {
        let mut frame = b"0".to_vec();
        frame.extend_from_slice(command.as_bytes());
        frame.push(b'\r');
        ws.send(Message::Binary(frame.into())).await?;
    }
    let mut output = String::new();
    let read = async {
        while let Some(message) = ws.next().await {
            let data = match message? {
                Message::Binary(data) => data.to_vec(),
                Message::Text(text) => text.as_bytes().to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            if data.first() == Some(&b'0') {
                output.push_str(&String::from_utf8_lossy(&data[1..]));
                // The echoed command line contains `until` only with quotes around the
                // parameter expansion, so a match here is the command's output.
                if strip_ansi(&output).lines().any(|l| l.trim() == until) {
                    return Ok::<_, anyhow::Error>(true);
                }
            }
        }
        Ok(false)
    };
    let done = tokio::time::timeout(Duration::from_secs(30), read).await;
    let _ = ws.close(None).await;
    match done {
        Ok(Ok(true)) => Ok(strip_ansi(&output)),
        Ok(Ok(false)) => bail!("ttyd closed the WebSocket; output so far:\n{output}"),
        Ok(Err(error)) => {
            Err(error.context(format!("reading from ttyd; output so far:\n{output}")))
        }
        Err(_) => bail!("no `{until}` from ttyd within 30 s; output:\n{output}"),
    }
}

/// The text without terminal escape sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// True when the gateway refuses `/terminal` without the token (401 to the upgrade).
async fn terminal_refused(socket: &Path) -> anyhow::Result<bool> {
    match terminal_socket(socket, None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Ok(response.status() == http::StatusCode::UNAUTHORIZED)
        }
        Err(error) => Err(error).context("opening /terminal without the token"),
        Ok(_) => Ok(false),
    }
}

/// `GET path` on the session's socket (the gateway) with an optional `Authorization`; returns
/// the status and the body (chunked bodies decoded). Reads by `Content-Length` or to the last
/// chunk: not every server closes the connection after its answer.
fn http(socket: &Path, path: &str, authorization: Option<&str>) -> anyhow::Result<(u16, String)> {
    request(socket, "GET", path, authorization, None)
}

/// An HTTP request with an optional JSON body; see [`http`].
fn request(
    socket: &Path,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    json: Option<&serde_json::Value>,
) -> anyhow::Result<(u16, String)> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    // An agent turn waits for the model and the tools.
    stream.set_read_timeout(Some(Duration::from_secs(90)))?;
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let body = json.map(ToString::to_string).unwrap_or_default();
    let content = if json.is_some() {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
    } else {
        String::new()
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: session\r\n{auth}{content}Connection: close\r\n\r\n{body}"
    )?;
    let mut response = Vec::new();
    let mut buf = [0_u8; 16 * 1024];
    loop {
        let n = stream
            .read(&mut buf)
            .with_context(|| format!("reading the answer to {method} {path}"))?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        if complete(&response) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("malformed HTTP answer to {method} {path}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    let body = if header(head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// A header's value (names compared without case).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Whether a response read so far is complete (by its length or its last chunk).
fn complete(response: &[u8]) -> bool {
    let text = String::from_utf8_lossy(response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    if let Some(length) = header(head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        return body.len() >= length;
    }
    if header(head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return body.ends_with("0\r\n\r\n");
    }
    false
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size || !rest.is_char_boundary(size) {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
