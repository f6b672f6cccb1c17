//! `octo-e2e package clients`: issue 16's clients through Caddy's TLS site of the installed
//! package, with the agents answered by the stub model (`cargo xtask ci` runs it after the
//! browser checks, which start the stub):
//!
//! - a personal API token made with a cookie creates a session as a script does (no
//!   `Origin`, no cookie) and waits for it;
//! - opencode's own CLI — the binary of the session image, copied out of it and run on the
//!   host, outside any session — runs a prompt attached to the session through Caddy with the
//!   token as its password (`opencode run --attach https://…/sessions/<id>/opencode
//!   --password <token>`, which sends HTTP Basic `opencode:<token>`): the stub model's `bash`
//!   tool call and its reply come back, and the file the tool wrote is in the workspace;
//! - event streams through Caddy (curl, one with the cookie, one with the token) end within
//!   5 s of the cookie's sign-out and of the token's revocation, each timed, and only their
//!   own; then the revoked token's CLI run is refused.

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use crate::api::expect;
use crate::package::{CADDY_CA, as_octo, port, request, sh, site};
use crate::stub_llm::{AGENT_FILE, AGENT_FILE_TEXT, AGENT_REPLY};
use crate::util::{self, Answer, say};

const USER: &str = "pkgclient";
const PASSWORD: &str = "a long client test password";
/// Where the image's opencode binary is put on the host.
const CLI: &str = "/usr/local/bin/opencode-from-image";
/// How soon a stream must end after its access did.
const CLOSE_BOUND: Duration = Duration::from_secs(5);

fn origin() -> String {
    format!("https://{}", site())
}

fn with_cookie(
    cookie: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<Answer> {
    request(
        method,
        path,
        &[("Cookie", cookie), ("Origin", &origin())],
        body,
    )
}

fn with_token(token: &str, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<Answer> {
    request(
        method,
        path,
        &[("Authorization", &format!("Bearer {token}"))],
        body,
    )
}

fn sign_in() -> anyhow::Result<String> {
    let body = serde_json::json!({"username": USER, "password": PASSWORD}).to_string();
    let answer = request(
        "POST",
        "/api/auth/login",
        &[("Origin", &origin())],
        Some(&body),
    )?;
    expect(&answer, 200, "signing in through Caddy")?;
    let set = answer.header("set-cookie").context("no cookie")?;
    Ok(set.split(';').next().unwrap_or_default().to_owned())
}

/// An event stream through Caddy with curl, as a client outside the browser keeps one.
struct Stream {
    what: &'static str,
    child: Child,
    output: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl Stream {
    fn open(what: &'static str, id: &str, header: &str) -> anyhow::Result<Self> {
        let mut child = Command::new("curl")
            .args([
                "-sSfN",
                "--resolve",
                &format!("localhost:{}:127.0.0.1", port()),
                "--cacert",
                CADDY_CA,
                "-H",
            ])
            .arg(header)
            .arg(format!(
                "https://{}/sessions/{id}/opencode/global/event",
                site()
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting curl")?;
        let mut stdout = child.stdout.take().context("curl's stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut stream = Self {
            what,
            child,
            output: rx,
        };
        // It must be a live event stream: opencode greets a subscriber at once.
        let first = stream
            .output
            .recv_timeout(Duration::from_secs(30))
            .with_context(|| format!("{what}: no event within 30 s"))?;
        let text = String::from_utf8_lossy(&first).into_owned();
        ensure!(
            text.contains("data:"),
            "{what}: not an event stream: {text}"
        );
        stream.still_open()?;
        Ok(stream)
    }

    fn still_open(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} ended ({status})", self.what);
        }
        Ok(())
    }

    /// Waits for curl to exit; how long after `since`.
    fn ended_after(&mut self, since: Instant) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(since.elapsed());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("{} still open 15 s after its access ended", self.what);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The session image's opencode on the host: `cat` of its binary out of the image (as `octo`,
/// whose images they are), outside any session.
fn install_cli() -> anyhow::Result<String> {
    as_octo(
        "podman run --rm --network none --entrypoint cat localhost/octo-session:latest \
         /usr/local/bin/opencode > /var/lib/octo/opencode-from-image",
    )?;
    sh(&format!(
        "install -m 0755 /var/lib/octo/opencode-from-image {CLI} && rm /var/lib/octo/opencode-from-image"
    ))?;
    Ok(sh(&format!("{CLI} --version"))?.trim().to_owned())
}

/// `opencode run --attach` through Caddy with `token` as the password; its JSON events.
fn cli_prompt(id: &str, token: &str, prompt: &str, limit: u32) -> anyhow::Result<(bool, String)> {
    std::fs::create_dir_all("/root/opencode-cli-home")?;
    let out = Command::new("timeout")
        .arg(limit.to_string())
        .args([CLI, "run", "--attach"])
        .arg(format!("https://{}/sessions/{id}/opencode", site()))
        .args(["--password", token, "--format", "json", prompt])
        // Bun, like Node, takes extra CAs from here: Caddy's internal CA.
        .env("NODE_EXTRA_CA_CERTS", CADDY_CA)
        .env("HOME", "/root/opencode-cli-home")
        .stdin(Stdio::null())
        .output()
        .context("running opencode")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

pub(crate) async fn run() -> anyhow::Result<()> {
    // An account for the clients, from root's octoctl (no browser involved).
    sh(&format!(
        "printf '%s\\n' '{PASSWORD}' | octoctl user add {USER} --password-stdin"
    ))?;
    let cookie = sign_in()?;
    let body = serde_json::json!({
        "name": "clients",
        "scopes": ["sessions:read", "sessions:write", "sessions:connect"],
        "expires_in_days": 1,
    })
    .to_string();
    let created = with_cookie(&cookie, "POST", "/api/me/tokens", Some(&body))?;
    expect(&created, 201, "a token with the cookie")?;
    let created = created.json()?;
    let token = created["token"].as_str().context("token")?.to_owned();
    let token_id = created["info"]["id"].as_str().context("id")?.to_owned();

    // A script: a session with the token alone.
    let answer = with_token(
        &token,
        "POST",
        "/api/sessions",
        Some(r#"{"template":"coding-copilot"}"#),
    )?;
    ensure!(
        matches!(answer.status, 201 | 202),
        "a session made with a token: {} {}",
        answer.status,
        answer.body
    );
    let id = answer.json()?["id"].as_str().context("id")?.to_owned();
    util::session_running(
        |path| with_token(&token, "GET", path, None),
        &id,
        Duration::from_secs(180),
    )
    .await?;
    util::eventually(
        Duration::from_secs(60),
        "opencode with the token",
        async || {
            expect(
                &with_token(
                    &token,
                    "GET",
                    &format!("/sessions/{id}/opencode/global/health"),
                    None,
                )?,
                200,
                "health",
            )
        },
    )
    .await?;
    say(format!(
        "through Caddy, a token alone (no Origin, no cookie) created session {id}; it runs"
    ));

    // opencode's own client, attached through Caddy with the token.
    let version = install_cli()?;
    let started = Instant::now();
    let (ok, out) = cli_prompt(&id, &token, "please write the file", 180)?;
    ensure!(ok, "opencode run --attach failed:\n{out}");
    ensure!(
        out.contains("\"tool\":\"bash\"") || out.contains("\"tool\": \"bash\""),
        "no bash tool call in opencode's events:\n{out}"
    );
    // The reply: in the CLI's events if it waited for it, else in the conversation it made
    // (`opencode run` may return once the tool step is done, while the reply still streams).
    if !out.contains(AGENT_REPLY) {
        let conversation = out
            .split("\"sessionID\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .context("no opencode session id in the CLI's events")?
            .to_owned();
        let path = format!("/sessions/{id}/opencode/session/{conversation}/message");
        util::eventually(
            Duration::from_secs(60),
            "the stub model's reply",
            async || {
                let messages = with_token(&token, "GET", &path, None)?;
                expect(&messages, 200, "the conversation's messages")?;
                ensure!(messages.body.contains(AGENT_REPLY), "no reply yet");
                Ok(())
            },
        )
        .await?;
    }
    let file = with_token(
        &token,
        "GET",
        &format!("/sessions/{id}/files/api/download?path={AGENT_FILE}"),
        None,
    )?;
    expect(&file, 200, "the file the agent wrote")?;
    ensure!(
        file.body.trim() == AGENT_FILE_TEXT,
        "{AGENT_FILE}: {}",
        file.body
    );
    say(format!(
        "opencode {version} (the image's binary, on the host) ran a prompt attached through Caddy with the token as its password in {:.1} s: the stub's bash tool call in its events, the reply in the conversation, ~/{AGENT_FILE} in the workspace",
        started.elapsed().as_secs_f64()
    ));

    // Streams: one with the cookie, one with the token; each ends with its own credential.
    let mut by_cookie = Stream::open(
        "the cookie's event stream",
        &id,
        &format!("Cookie: {cookie}"),
    )?;
    let mut by_token = Stream::open(
        "the token's event stream",
        &id,
        &format!("Authorization: Bearer {token}"),
    )?;
    std::thread::sleep(Duration::from_secs(1));
    let since = Instant::now();
    let logout = with_cookie(&cookie, "POST", "/api/auth/logout", None)?;
    expect(&logout, 204, "signing out")?;
    let took = by_cookie.ended_after(since)?;
    ensure!(
        took <= CLOSE_BOUND,
        "the cookie's stream ended only {took:?} after the sign-out"
    );
    std::thread::sleep(Duration::from_millis(500));
    by_token.still_open()?;
    say(format!(
        "sign-out: the cookie's event stream through Caddy ended after {} ms; the token's stays open",
        took.as_millis()
    ));

    let admin_cookie = sign_in()?;
    let since = Instant::now();
    let revoked = with_cookie(
        &admin_cookie,
        "DELETE",
        &format!("/api/me/tokens/{token_id}"),
        None,
    )?;
    expect(&revoked, 204, "revoking the token")?;
    let took = by_token.ended_after(since)?;
    ensure!(
        took <= CLOSE_BOUND,
        "the token's stream ended only {took:?} after its revocation"
    );
    // What opencode's client sends with the revoked token: refused.
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("opencode:{token}"))
    };
    let refused = request(
        "GET",
        &format!("/sessions/{id}/opencode/global/health"),
        &[("Authorization", &format!("Basic {basic}"))],
        None,
    )?;
    expect(
        &refused,
        401,
        "opencode's Basic credential with the revoked token",
    )?;
    say(format!(
        "token revoked: its event stream through Caddy ended after {} ms; opencode with it is refused",
        took.as_millis()
    ));

    let deleted = with_cookie(
        &admin_cookie,
        "DELETE",
        &format!("/api/sessions/{id}"),
        None,
    )?;
    ensure!(
        matches!(deleted.status, 202 | 204),
        "delete: {} {}",
        deleted.status,
        deleted.body
    );
    Ok(())
}
