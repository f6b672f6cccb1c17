//! `octo-e2e api-sdk`: clients of a session through the real `octod serve` and its proxy, in
//! the test host with the real session image and octod's own `[llm]` provider (a stub
//! OpenAI-compatible model, tests only):
//!
//! - the official `@opencode-ai/sdk` (node, `e2e/sdk/check.mjs`) with a user's cookie creates
//!   an opencode session, subscribes to the event stream, sends a prompt that the stub answers
//!   with a bash tool call writing a file, and receives the streamed events and the reply; the
//!   file is then read through the proxy's file server route;
//! - a 100 MiB upload and download through the proxy are byte-identical;
//! - an authorization matrix over every session route (API, opencode HTTP and SSE, files, the
//!   terminal's WebSocket upgrade) for anonymous, owner, another user, a disabled user and an
//!   admin: only the owner and the admin get through; and again with personal API tokens
//!   (another user's, a revoked one, the owner's read-only one, the owner's with every session
//!   scope), sent as a script does, without `Origin`.
//!
//! Needs `node` and `npm` in the test host and npm's configured registry (the SDK is installed
//! from `e2e/sdk/package-lock.json` into a temporary directory).

use std::fmt::Write as _;
use std::io::{BufReader, Read, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use crate::api::{Client, expect, sign_in, spawn_octod};
use crate::stub_llm::{AGENT_FILE, AGENT_FILE_TEXT, AGENT_REPLY, LLM_MODEL, stub_llm};
use crate::util::{self, say};

const PORT: u16 = 18_485;
const PORT_RANGE: &str = "23100-23199";
/// The stub model, reached from the containers through pasta (distinct from `image`'s).
const STUB_PORT: u16 = 44_897;
const SDK_DIR: &str = "/opt/octo/src/e2e/sdk";
/// The outer machine's extra CAs, staged by `cargo xtask testhost up` (see xtask/src/testhost.rs).
const EXTRA_CAS: &str = "/etc/octo-testhost/extra-cas.pem";
const BIG_FILE: &str = "big-upload.bin";
const MIB: usize = 1024 * 1024;
const BIG_MIB: usize = 100;

pub(crate) async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let home = std::path::PathBuf::from(std::env::var("HOME").context("HOME")?);
    let base = home.join("e2e-api-sdk");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    let config = base.join("octod.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nstate_dir = \"{}\"\n\n[sessions]\ntemplates_dir = \"/opt/octo/src/container/templates\"\nport_range = \"{PORT_RANGE}\"\nmax_per_user = 3\n\n[llm]\nbase_url = \"http://127.0.0.1:{STUB_PORT}/v1\"\nmodel = \"{LLM_MODEL}\"\napi_key = \"e2e-sdk-key\"\n",
            base.join("state").display()
        ),
    )?;
    let stub = tokio::spawn(stub_llm(
        tokio::net::TcpListener::bind(("0.0.0.0", STUB_PORT))
            .await
            .with_context(|| format!("binding the stub model on port {STUB_PORT}"))?,
    ));
    let (mut child, code_rx) = spawn_octod(PORT, &config)?;
    let mut cleanup = Cleanup::default();
    let result = scenario(&code_rx, &mut cleanup).await;
    if result.is_err() {
        cleanup.run();
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait()?;
    stub.abort();
    result?;
    ensure!(
        status.success(),
        "octod did not exit cleanly on SIGTERM: {status}"
    );
    say(format!(
        "api-sdk done in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Sessions to delete (with the admin's cookie) when the scenario fails half-way.
#[derive(Default)]
struct Cleanup {
    admin: Option<Client>,
    sessions: Vec<String>,
}

impl Cleanup {
    fn run(&self) {
        let Some(admin) = &self.admin else { return };
        for id in &self.sessions {
            match admin.call("DELETE", &format!("/api/sessions/{id}"), None) {
                Ok(answer) => eprintln!("    cleanup: DELETE session {id}: {}", answer.status),
                Err(error) => eprintln!("    cleanup: DELETE session {id}: {error:#}"),
            }
        }
    }
}

async fn scenario(
    code: &std::sync::mpsc::Receiver<String>,
    cleanup: &mut Cleanup,
) -> anyhow::Result<()> {
    let code = code
        .recv_timeout(Duration::from_secs(60))
        .context("octod logged no first admin invite code")?;
    util::eventually(Duration::from_secs(30), "octod's /api/health", async || {
        expect(
            &util::request(PORT, "GET", "/api/health", &[], None)?,
            200,
            "health",
        )
    })
    .await?;

    // Accounts: the first admin, then the owner, another user and one to be disabled.
    let answer = util::request(
        PORT,
        "POST",
        "/api/auth/register",
        &[],
        Some(&format!(
            r#"{{"invite_code":"{code}","username":"admin","password":"correct horse battery"}}"#
        )),
    )?;
    expect(&answer, 201, "register admin")?;
    let admin = sign_in(PORT, &answer)?;
    cleanup.admin = Some(Client {
        port: PORT,
        cookie: admin.cookie.clone(),
    });
    let owner = register(&admin, "owner")?;
    let other = register(&admin, "other")?;
    let disabled = register(&admin, "disabled")?;
    expect(
        &admin.call("POST", "/api/admin/users/disabled/disable", None)?,
        200,
        "disabling a user",
    )?;
    expect(
        &disabled.call("GET", "/api/me", None)?,
        401,
        "the disabled user's cookie",
    )?;
    say(
        "octod with [llm] → the stub model; users admin, owner, other, disabled (disabled by the admin)",
    );

    // The owner's sessions: one for the checks, one for the admin to delete.
    let created = Instant::now();
    let id = create_session(&owner, cleanup)?;
    let spare = create_session(&owner, cleanup)?;
    let spare2 = create_session(&owner, cleanup)?;
    for id in [&id, &spare, &spare2] {
        wait_running(&owner, id).await?;
    }
    say(format!(
        "the owner created sessions {id}, {spare} and {spare2} (coding-copilot); running after {:.1} s",
        created.elapsed().as_secs_f64()
    ));

    sdk_client(&owner, &id).await?;
    big_transfer(&owner, &id).await?;
    matrix(&admin, &owner, &other, &disabled, &id, [&spare, &spare2]).await?;
    Ok(())
}

fn register(admin: &Client, name: &str) -> anyhow::Result<Client> {
    let invite = admin.call("POST", "/api/admin/invite-codes", Some("{}"))?;
    ensure!(
        matches!(invite.status, 200 | 201),
        "invite code: {} {}",
        invite.status,
        invite.body
    );
    let code = invite.json()?["code"]
        .as_str()
        .context("invite code in the answer")?
        .to_owned();
    let answer = util::request(
        PORT,
        "POST",
        "/api/auth/register",
        &[],
        Some(&format!(
            r#"{{"invite_code":"{code}","username":"{name}","password":"a good password for {name}"}}"#
        )),
    )?;
    expect(&answer, 201, &format!("register {name}"))?;
    sign_in(PORT, &answer)
}

fn create_session(owner: &Client, cleanup: &mut Cleanup) -> anyhow::Result<String> {
    let answer = owner.call(
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
    cleanup.sessions.push(id.clone());
    Ok(id)
}

async fn wait_running(client: &Client, id: &str) -> anyhow::Result<()> {
    util::session_running(
        |path| client.call("GET", path, None),
        id,
        Duration::from_secs(120),
    )
    .await
}

/// `npm ci` of `e2e/sdk` into a temporary directory, then `node check.mjs` against the session
/// through the proxy; then the file the agent's tool wrote, through the proxy.
async fn sdk_client(owner: &Client, id: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for file in ["package.json", "package-lock.json", "check.mjs"] {
        std::fs::copy(Path::new(SDK_DIR).join(file), dir.path().join(file))
            .with_context(|| format!("copying {SDK_DIR}/{file}"))?;
    }
    let extra_cas = Path::new(EXTRA_CAS)
        .metadata()
        .is_ok_and(|m| m.len() > 0)
        .then_some(EXTRA_CAS);
    let npm_started = Instant::now();
    let mut npm = tokio::process::Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir.path())
        .kill_on_drop(true);
    if let Some(cas) = extra_cas {
        npm.env("NODE_EXTRA_CA_CERTS", cas);
    }
    let out = tokio::time::timeout(Duration::from_secs(300), npm.output())
        .await
        .context("npm ci: not within 300 s")?
        .context("starting npm (is nodejs/npm in the test host's packages?)")?;
    ensure!(
        out.status.success(),
        "npm ci failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let version = std::fs::read_to_string(
        dir.path()
            .join("node_modules/@opencode-ai/sdk/package.json"),
    )?;
    let version: serde_json::Value = serde_json::from_str(&version)?;
    let node_version = util::run(Command::new("node").arg("--version"))?;
    say(format!(
        "npm ci: @opencode-ai/sdk {} in {:.1} s (node {})",
        version["version"].as_str().unwrap_or("?"),
        npm_started.elapsed().as_secs_f64(),
        node_version.trim()
    ));

    let base_url = format!("http://127.0.0.1:{PORT}/sessions/{id}/opencode");
    let node_started = Instant::now();
    let mut node = tokio::process::Command::new("node");
    node.arg("check.mjs")
        .current_dir(dir.path())
        .env("OCTO_BASE_URL", &base_url)
        .env("OCTO_COOKIE", &owner.cookie)
        .env("OCTO_ORIGIN", owner.origin())
        .env("OCTO_EXPECT_REPLY", AGENT_REPLY)
        .env("OCTO_TIMEOUT_MS", "150000")
        .kill_on_drop(true);
    // The stub model answers on this thread's runtime while node runs.
    let out = tokio::time::timeout(Duration::from_secs(180), node.output())
        .await
        .context("node check.mjs: not within 180 s")?
        .context("starting node")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "node check.mjs failed ({}):\n{stdout}{stderr}",
        out.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    let seen: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("check.mjs printed: {stdout}"))?;
    let types: Vec<&str> = seen["types"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str()).collect())
        .unwrap_or_default();
    for wanted in ["server.connected", "message.part.updated"] {
        ensure!(
            types.contains(&wanted),
            "no {wanted} event on the stream: {seen}"
        );
    }
    ensure!(
        seen["toolCompleted"] == true && seen["replyStreamed"] == true && seen["idle"] == true,
        "the stream lacks the tool call, the reply or the idle session: {seen}"
    );
    say(format!(
        "@opencode-ai/sdk through the proxy ({base_url}, cookie only): session.create, \
         event.subscribe, session.prompt → reply {:?}; {} streamed events of types {types:?}, \
         bash tool completed, session idle; {} messages; {:.1} s",
        seen["reply"].as_str().unwrap_or_default(),
        seen["events"],
        seen["messages"],
        node_started.elapsed().as_secs_f64()
    ));

    let file = owner.call(
        "GET",
        &format!("/sessions/{id}/files/api/download?path={AGENT_FILE}"),
        None,
    )?;
    ensure!(
        file.status == 200 && file.body.trim() == AGENT_FILE_TEXT,
        "the file the agent's tool wrote, through the proxy: {} {:?}",
        file.status,
        file.body
    );
    say(format!(
        "the agent's bash tool wrote {AGENT_FILE}; the proxy's file server route returns it"
    ));
    Ok(())
}

/// 100 MiB up and down through the proxy, streamed both ways, compared byte for byte.
async fn big_transfer(owner: &Client, id: &str) -> anyhow::Result<()> {
    let cookie = owner.cookie.clone();
    let origin = owner.origin();
    let id = id.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let headers = [("Cookie", cookie.as_str()), ("Origin", origin.as_str())];
        let started = Instant::now();
        let (status, body, sent) = upload(
            &format!("/sessions/{id}/files/api/upload?path={BIG_FILE}&overwrite=true"),
            &headers,
        )?;
        ensure!(
            matches!(status, 200 | 201),
            "the 100 MiB upload through the proxy: {status} {body}"
        );
        let entry: serde_json::Value =
            serde_json::from_str(&body).with_context(|| format!("upload answer: {body}"))?;
        ensure!(
            entry["size"] == BIG_MIB * MIB,
            "the uploaded file's size: {entry}"
        );
        let up = started.elapsed();
        let started = Instant::now();
        let received = download(
            &format!("/sessions/{id}/files/api/download?path={BIG_FILE}"),
            &headers,
        )?;
        let down = started.elapsed();
        ensure!(
            sent == received,
            "checksums differ: sent {sent:016x}, received {received:016x}"
        );
        let mib = f64::from(u32::try_from(BIG_MIB).unwrap_or(u32::MAX));
        let rate = |d: Duration| mib / d.as_secs_f64();
        say(format!(
            "100 MiB through the proxy: upload {:.1} s ({:.0} MiB/s), download {:.1} s ({:.0} MiB/s); \
             byte-identical (compared byte for byte; checksum {sent:016x})",
            up.as_secs_f64(),
            rate(up),
            down.as_secs_f64(),
            rate(down)
        ));
        Ok(())
    })
    .await?
}

/// The test data: `BIG_MIB` chunks of 1 MiB from xorshift64*.
struct Data {
    state: u64,
}

impl Data {
    fn new() -> Self {
        Self {
            state: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn fill(&mut self, chunk: &mut [u8]) {
        for word in chunk.chunks_exact_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            word.copy_from_slice(&self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
    }
}

/// FNV-1a over 64-bit words, chunk by chunk.
fn checksum(sum: &mut u64, chunk: &[u8]) {
    for word in chunk.chunks_exact(8) {
        let mut bytes = [0_u8; 8];
        bytes.copy_from_slice(word);
        *sum ^= u64::from_le_bytes(bytes);
        *sum = sum.wrapping_mul(0x0000_0100_0000_01B3);
    }
}

const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;

fn connect() -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", PORT))
        .with_context(|| format!("connecting to octod on {PORT}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.set_write_timeout(Some(Duration::from_secs(120)))?;
    Ok(stream)
}

fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nConnection: close\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head
}

/// Streams the test data as a `PUT` body; returns the status, the answer's body and the
/// checksum of what was sent.
fn upload(path: &str, headers: &[(&str, &str)]) -> anyhow::Result<(u16, String, u64)> {
    let mut stream = connect()?;
    let mut request = head("PUT", path, headers);
    let _ = write!(
        request,
        "Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        BIG_MIB * MIB
    );
    stream.write_all(request.as_bytes())?;
    let mut data = Data::new();
    let mut chunk = vec![0_u8; MIB];
    let mut sum = FNV_OFFSET;
    for index in 0..BIG_MIB {
        data.fill(&mut chunk);
        checksum(&mut sum, &chunk);
        stream
            .write_all(&chunk)
            .with_context(|| format!("sending MiB {index} of the upload"))?;
    }
    let mut reader = BufReader::new(stream);
    let (status, response_headers) = read_head(&mut reader)?;
    let mut body = Vec::new();
    if chunked(&response_headers) {
        Dechunked::new(reader).read_to_end(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned(), sum))
}

/// Downloads the file, compares it with the test data byte for byte and returns its checksum.
fn download(path: &str, headers: &[(&str, &str)]) -> anyhow::Result<u64> {
    let mut stream = connect()?;
    let mut request = head("GET", path, headers);
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let (status, response_headers) = read_head(&mut reader)?;
    ensure!(status == 200, "the 100 MiB download: status {status}");
    let mut body: Box<dyn Read> = if chunked(&response_headers) {
        Box::new(Dechunked::new(reader))
    } else {
        let length: u64 = header(&response_headers, "content-length")
            .and_then(|v| v.parse().ok())
            .context("a download without Content-Length or chunked encoding")?;
        ensure!(
            length == (BIG_MIB * MIB) as u64,
            "the download's Content-Length is {length}"
        );
        Box::new(reader.take(length))
    };
    let mut data = Data::new();
    let mut expected = vec![0_u8; MIB];
    let mut got = vec![0_u8; MIB];
    let mut sum = FNV_OFFSET;
    for index in 0..BIG_MIB {
        body.read_exact(&mut got)
            .with_context(|| format!("reading MiB {index} of the download"))?;
        data.fill(&mut expected);
        if let Some(at) = got.iter().zip(&expected).position(|(a, b)| a != b) {
            bail!("the download differs at byte {}", index * MIB + at);
        }
        checksum(&mut sum, &got);
    }
    let mut rest = Vec::new();
    body.read_to_end(&mut rest)?;
    ensure!(
        rest.is_empty(),
        "the download is {} bytes too long",
        rest.len()
    );
    Ok(sum)
}

/// Reads a response's status line and headers (lower-case names).
fn read_head(reader: &mut impl std::io::BufRead) -> anyhow::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .context("reading the status line")?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        ensure!(
            reader.read_line(&mut line)? > 0,
            "the connection closed in the headers"
        );
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    Ok((status, headers))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn chunked(headers: &[(String, String)]) -> bool {
    header(headers, "transfer-encoding").is_some_and(|v| v.contains("chunked"))
}

/// A chunked body as a plain reader.
struct Dechunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: std::io::BufRead> Dechunked<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            left: 0,
            done: false,
        }
    }
}

impl<R: std::io::BufRead> Read for Dechunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            if line.trim().is_empty() {
                // The CRLF after the previous chunk.
                line.clear();
                self.inner.read_line(&mut line)?;
            }
            let size = line.trim().split(';').next().unwrap_or_default();
            self.left = usize::from_str_radix(size, 16).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad chunk size {line:?}"),
                )
            })?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n;
        Ok(n)
    }
}

/// A route of the matrix and what a client that may pass gets.
struct Route {
    name: &'static str,
    method: &'static str,
    path: String,
    /// Extra request headers (the WebSocket upgrade).
    upgrade: bool,
    allowed: u16,
}

/// Who asks, with which cookie or token, and what they must get.
struct Principal {
    name: &'static str,
    /// A cookie (sent with the page's `Origin`, as a browser does) or `Bearer …` (sent with
    /// no `Origin`, as a script does).
    credential: Option<String>,
    expect: Expect,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The route's own success status.
    Through,
    Refused(u16),
    /// A token with only `sessions:read`: `GET /api/sessions/{id}` passes, the rest is 403.
    ReadOnly,
}

/// A personal API token of `client` with `scopes`, made with its cookie.
fn token_of(client: &Client, scopes: &[&str]) -> anyhow::Result<(String, String)> {
    let body = serde_json::json!({"name": "matrix", "scopes": scopes}).to_string();
    let answer = client.call("POST", "/api/me/tokens", Some(&body))?;
    expect(&answer, 201, "creating a token")?;
    let json = answer.json()?;
    Ok((
        format!("Bearer {}", json["token"].as_str().context("token")?),
        json["info"]["id"].as_str().context("id")?.to_owned(),
    ))
}

/// Every session route for anonymous, another user, a disabled user, the admin and the owner,
/// with cookies; then again with personal API tokens: another user's, a revoked one, the
/// owner's read-only one and the owner's with every session scope. The allowed DELETEs come
/// last in their rows: the admin deletes the owner's first spare session, the owner's token
/// the second and the owner the checked one, which ends the scenario.
async fn matrix(
    admin: &Client,
    owner: &Client,
    other: &Client,
    disabled: &Client,
    id: &str,
    [spare, spare2]: [&str; 2],
) -> anyhow::Result<()> {
    let all = ["sessions:read", "sessions:write", "sessions:connect"];
    let (owner_all, _) = token_of(owner, &all)?;
    let (owner_read, _) = token_of(owner, &["sessions:read"])?;
    let (other_all, _) = token_of(other, &all)?;
    let (revoked, revoked_id) = token_of(owner, &all)?;
    expect(
        &owner.call("DELETE", &format!("/api/me/tokens/{revoked_id}"), None)?,
        204,
        "revoking a token",
    )?;
    let routes = |id: &str| {
        let api = format!("/api/sessions/{id}");
        let session = format!("/sessions/{id}");
        vec![
            Route {
                name: "GET /api/sessions/{id}",
                method: "GET",
                path: api.clone(),
                upgrade: false,
                allowed: 200,
            },
            Route {
                name: "POST …/stop",
                method: "POST",
                path: format!("{api}/stop"),
                upgrade: false,
                allowed: 200,
            },
            Route {
                name: "POST …/resume",
                method: "POST",
                path: format!("{api}/resume"),
                upgrade: false,
                allowed: 200,
            },
            Route {
                name: "GET /sessions/{id}/opencode/global/health",
                method: "GET",
                path: format!("{session}/opencode/global/health"),
                upgrade: false,
                allowed: 200,
            },
            Route {
                name: "GET /sessions/{id}/opencode/event (SSE)",
                method: "GET",
                path: format!("{session}/opencode/event"),
                upgrade: false,
                allowed: 200,
            },
            Route {
                name: "GET /sessions/{id}/files/api/list",
                method: "GET",
                path: format!("{session}/files/api/list?path="),
                upgrade: false,
                allowed: 200,
            },
            Route {
                name: "GET /sessions/{id}/terminal (WebSocket)",
                method: "GET",
                path: format!("{session}/terminal"),
                upgrade: true,
                allowed: 101,
            },
            Route {
                name: "DELETE /api/sessions/{id}",
                method: "DELETE",
                path: api,
                upgrade: false,
                allowed: 204,
            },
        ]
    };
    let principal = |name, credential: Option<&str>, expect| Principal {
        name,
        credential: credential.map(str::to_owned),
        expect,
    };
    let principals = [
        principal("anonymous", None, Expect::Refused(401)),
        principal("other user", Some(&other.cookie), Expect::Refused(404)),
        principal(
            "disabled user",
            Some(&disabled.cookie),
            Expect::Refused(401),
        ),
        principal("other's token", Some(&other_all), Expect::Refused(404)),
        principal("revoked token", Some(&revoked), Expect::Refused(401)),
        principal("read token", Some(&owner_read), Expect::ReadOnly),
        principal("admin", Some(&admin.cookie), Expect::Through),
        principal("owner's token", Some(&owner_all), Expect::Through),
        principal("owner", Some(&owner.cookie), Expect::Through),
    ];
    let origin = owner.origin();
    let names: Vec<&str> = routes(id).iter().map(|r| r.name).collect();
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut failures = Vec::new();
    for principal in &principals {
        let mut row = Vec::new();
        for route in routes(id) {
            // The admin's DELETE is of the first spare session, the owner's token's of the
            // second; the owner's ends the checked one.
            let route = match (principal.name, route.method) {
                ("admin", "DELETE") => routes(spare).pop().context("the DELETE route")?,
                ("owner's token", "DELETE") => routes(spare2).pop().context("the DELETE route")?,
                _ => route,
            };
            let want = match principal.expect {
                Expect::Through => route.allowed,
                Expect::Refused(status) => status,
                Expect::ReadOnly if route.name == "GET /api/sessions/{id}" => route.allowed,
                Expect::ReadOnly => 403,
            };
            let through = want == route.allowed;
            let cookie = principal.credential.clone();
            let origin = origin.clone();
            let (method, path, upgrade) = (route.method, route.path.clone(), route.upgrade);
            let probe = async || {
                let (cookie, origin, path) = (cookie.clone(), origin.clone(), path.clone());
                tokio::task::spawn_blocking(move || {
                    status_of(method, &path, cookie.as_deref(), &origin, upgrade)
                })
                .await?
            };
            let mut got = probe().await?;
            // A just-resumed session's services may still be coming up.
            let deadline = Instant::now() + Duration::from_secs(60);
            while through && matches!(got.0, 502 | 503) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(500)).await;
                got = probe().await?;
            }
            let (status, content_type) = got;
            let mut ok = status == want;
            if ok && route.name.contains("SSE") && through {
                ok = content_type.contains("text/event-stream");
            }
            if !ok {
                failures.push(format!(
                    "{} {} {}: expected {want}, got {status} ({content_type})",
                    principal.name, route.method, route.path
                ));
            }
            row.push(format!("{status}{}", if ok { "" } else { "!" }));
        }
        table.push(row);
    }
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let mut text = format!("{:width$}", "authorization matrix (session route)");
    for principal in &principals {
        let _ = write!(text, " | {:>13}", principal.name);
    }
    for (index, name) in names.iter().enumerate() {
        let _ = write!(text, "\n    {name:width$}");
        for row in &table {
            let _ = write!(text, " | {:>13}", row[index]);
        }
    }
    say(text);
    ensure!(
        failures.is_empty(),
        "the authorization matrix:\n{}",
        failures.join("\n")
    );
    expect(
        &owner.call("GET", &format!("/api/sessions/{id}"), None)?,
        404,
        "the session the owner deleted",
    )?;
    expect(
        &admin.call("GET", &format!("/api/sessions/{spare}"), None)?,
        404,
        "the session the admin deleted",
    )?;
    expect(
        &owner.call("GET", &format!("/api/sessions/{spare2}"), None)?,
        404,
        "the session the owner's token deleted",
    )?;
    say(
        "only the owner and the admin get through (anonymous 401, disabled 401, other user 404); \
         with tokens: the owner's passes, its read-only one only reads (403), another user's is 404, a revoked one 401; \
         all three sessions deleted",
    );
    Ok(())
}

/// One request on its own connection; returns the status and the content type, reading only
/// the head (the SSE stream and the WebSocket stay open until dropped).
fn status_of(
    method: &str,
    path: &str,
    cookie: Option<&str>,
    origin: &str,
    upgrade: bool,
) -> anyhow::Result<(u16, String)> {
    let mut stream = connect()?;
    let mut headers = Vec::new();
    match cookie {
        // A script with a token: no Origin, no cookie.
        Some(token) if token.starts_with("Bearer ") => headers.push(("Authorization", token)),
        Some(cookie) => headers.extend([("Origin", origin), ("Cookie", cookie)]),
        None => headers.push(("Origin", origin)),
    }
    let mut request = head(method, path, &headers);
    if upgrade {
        request = request.replace("Connection: close\r\n", "Connection: Upgrade\r\n");
        request.push_str(
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: tty\r\n",
        );
    }
    if method != "GET" {
        request.push_str("Content-Length: 0\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let (status, headers) =
        read_head(&mut reader).with_context(|| format!("{method} {path}: the answer's head"))?;
    let content_type = header(&headers, "content-type")
        .unwrap_or_default()
        .to_owned();
    Ok((status, content_type))
}
