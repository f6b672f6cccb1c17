//! `octo-e2e api`: the real `octod serve` binary in the test host, driven over its real socket
//! with the real session image: the first admin registers with the bootstrap invite code,
//! invites a second user, creates a session and controls it; the other user, an anonymous
//! client and a cross-origin request are refused; `/metrics` counts; SIGTERM stops it cleanly.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, ensure};

use crate::util::{self, Answer, say};

const PORT: u16 = 18_484;
const ORIGIN: &str = "http://127.0.0.1:18484";
const ADMIN_PASSWORD: &str = "correct horse battery";

/// A signed-in client of the octod on `port`: its cookie.
pub(crate) struct Client {
    pub(crate) port: u16,
    pub(crate) cookie: String,
}

impl Client {
    /// octod's own origin, which its state-changing requests must carry.
    pub(crate) fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<Answer> {
        util::request(
            self.port,
            method,
            path,
            &[("Cookie", &self.cookie), ("Origin", &self.origin())],
            body,
        )
    }
}

pub(crate) fn sign_in(port: u16, answer: &Answer) -> anyhow::Result<Client> {
    let set = answer
        .header("set-cookie")
        .context("no session cookie in the answer")?;
    ensure!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "weak cookie: {set}"
    );
    let cookie = set.split(';').next().unwrap_or_default().to_owned();
    Ok(Client { port, cookie })
}

/// Issue 19's named sessions on the admin's running session `id`: the default name, a rename
/// and a description through `PATCH`, the audit entry; bad input is 400 with a code and changes
/// nothing; bob (another user) gets 404 as on every session route, a cross-origin PATCH 403,
/// an anonymous one 401.
fn names(admin: &Client, bob: &Client, id: &str) -> anyhow::Result<()> {
    let path = format!("/api/sessions/{id}");
    let shown = |client: &Client| -> anyhow::Result<serde_json::Value> {
        let answer = client.call("GET", &path, None)?;
        expect(&answer, 200, "show")?;
        answer.json()
    };
    let before = shown(admin)?;
    ensure!(
        before["name"] == "Coding Copilot" && before["description"] == "",
        "a new session is named after its template, with no description: {before}"
    );
    let created = before["created_at"].as_u64().context("created_at")?;
    ensure!(
        before["last_active_at"].as_u64() >= Some(created),
        "last activity before creation: {before}"
    );

    let patch = |client: &Client, body: &str| client.call("PATCH", &path, Some(body));
    let renamed = patch(admin, r#"{"name":"  Thesis — draft 2  "}"#)?;
    expect(&renamed, 200, "rename")?;
    let renamed = renamed.json()?;
    ensure!(
        renamed["name"] == "Thesis — draft 2" && renamed["id"] == id,
        "rename answered {renamed}"
    );
    let described = patch(admin, r#"{"description":"chapter 2, with the figures"}"#)?;
    expect(&described, 200, "describe")?;
    let now = shown(admin)?;
    ensure!(
        now["name"] == "Thesis — draft 2" && now["description"] == "chapter 2, with the figures",
        "after the rename: {now}"
    );
    let list = admin.call("GET", "/api/sessions", None)?.json()?;
    ensure!(
        list.as_array().is_some_and(|l| l
            .iter()
            .any(|s| s["id"] == id && s["name"] == "Thesis — draft 2")),
        "the list does not show the new name: {list}"
    );

    let long_name = format!(r#"{{"name":"{}"}}"#, "n".repeat(81));
    let long_description = format!(r#"{{"description":"{}"}}"#, "d".repeat(281));
    for (body, status, code) in [
        (r#"{"name":""}"#, 400, "invalid_name"),
        (r#"{"name":"   "}"#, 400, "invalid_name"),
        (long_name.as_str(), 400, "invalid_name"),
        (r#"{"name":"two\nlines"}"#, 400, "invalid_name"),
        (
            r#"{"name":"ok","description":"tab\there"}"#,
            400,
            "invalid_description",
        ),
        (long_description.as_str(), 400, "invalid_description"),
        (r#"{"title":"x"}"#, 422, "bad_request"),
        (r#"{"name":5}"#, 422, "bad_request"),
        ("not json", 400, "bad_request"),
    ] {
        let answer = patch(admin, body)?;
        expect(&answer, status, &format!("PATCH {body:.40}"))?;
        ensure!(
            answer.json()?["error"]["code"] == code,
            "PATCH {body:.40}: expected code {code}: {}",
            answer.body
        );
    }
    ensure!(
        shown(admin)?["name"] == "Thesis — draft 2",
        "a refused PATCH changed the session"
    );
    say(
        "PATCH: trimmed rename and a description; empty, long, control characters, unknown fields refused (400/422 with a code), nothing changed",
    );

    for body in [r#"{"name":"bob's now"}"#, r#"{"name":""}"#] {
        expect(&patch(bob, body)?, 404, "bob renames admin's session")?;
    }
    expect(
        &bob.call(
            "PATCH",
            "/api/sessions/nosuchsession",
            Some(r#"{"name":"x"}"#),
        )?,
        404,
        "bob renames a session that does not exist",
    )?;
    expect(
        &util::request(PORT, "PATCH", &path, &[], Some(r#"{"name":"x"}"#))?,
        401,
        "an anonymous rename",
    )?;
    let cross = util::request(
        PORT,
        "PATCH",
        &path,
        &[("Cookie", &admin.cookie), ("Origin", "http://evil.example")],
        Some(r#"{"name":"pwned"}"#),
    )?;
    expect(&cross, 403, "a cross-origin rename")?;
    ensure!(
        shown(admin)?["name"] == "Thesis — draft 2",
        "a refused rename changed the session"
    );
    say(
        "PATCH: bob gets 404 (even with a bad body), anonymous 401, cross-origin 403; the name is unchanged",
    );

    let audit = admin
        .call("GET", "/api/admin/audit?limit=100", None)?
        .json()?;
    let entry = audit
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|e| e["action"] == "session.rename" && e["target"] == id)
        })
        .with_context(|| format!("no session.rename of {id} in the audit log: {audit}"))?;
    ensure!(
        entry["actor"] == "admin"
            && entry["detail"]
                .as_str()
                .is_some_and(|d| d.contains("Coding Copilot") && d.contains("Thesis — draft 2")),
        "the rename's audit entry: {entry}"
    );
    say(format!("audited: {} {}", entry["action"], entry["detail"]));
    Ok(())
}

/// Issue 18's keep-alive on the admin's running session `id` (idle stop at its default 120
/// minutes, keep-alive at most 24 hours): the session's `idle` outlook names its recent use;
/// a keep-alive of 8 hours moves its stop to then and says so; longer than the maximum is 400
/// and changes nothing; bob gets 404; `0` ends it; the audit log has both.
fn keep_alive(admin: &Client, bob: &Client, id: &str) -> anyhow::Result<()> {
    let path = format!("/api/sessions/{id}/keep-alive");
    let idle = |client: &Client| -> anyhow::Result<serde_json::Value> {
        let answer = client.call("GET", &format!("/api/sessions/{id}"), None)?;
        expect(&answer, 200, "show")?;
        Ok(answer.json()?["idle"].clone())
    };
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    let before = idle(admin)?;
    let stops_at = before["stops_at"].as_u64().context("stops_at")?;
    ensure!(
        before["kept_by"] == serde_json::json!(["activity"])
            && before["keep_alive_max_minutes"] == 1440
            && before.get("keep_alive_until").is_none()
            && stops_at > now_ms() + 100 * 60_000
            && stops_at <= now_ms() + 120 * 60_000,
        "a session just used stops about 120 minutes after its last use: {before}"
    );

    let asked = now_ms();
    let kept = admin.call("POST", &path, Some(r#"{"minutes":480}"#))?;
    expect(&kept, 200, "keep alive for 8 hours")?;
    let kept = kept.json()?["idle"].clone();
    let until = kept["keep_alive_until"]
        .as_u64()
        .context("keep_alive_until")?;
    ensure!(
        until >= asked + 480 * 60_000
            && until <= now_ms() + 480 * 60_000
            && kept["stops_at"].as_u64() == Some(until)
            && kept["kept_by"] == serde_json::json!(["keep_alive", "activity"]),
        "kept alive for 8 hours: {kept}"
    );
    for (body, status, code) in [
        (r#"{"minutes":1441}"#, 400, "keep_alive_too_long"),
        (r#"{"minutes":-1}"#, 422, "bad_request"),
        (r#"{"hours":8}"#, 422, "bad_request"),
    ] {
        let answer = admin.call("POST", &path, Some(body))?;
        expect(&answer, status, &format!("keep-alive {body}"))?;
        ensure!(
            answer.json()?["error"]["code"] == code,
            "keep-alive {body}: expected code {code}: {}",
            answer.body
        );
    }
    expect(
        &bob.call("POST", &path, Some(r#"{"minutes":60}"#))?,
        404,
        "bob keeps admin's session alive",
    )?;
    ensure!(
        idle(admin)?["keep_alive_until"].as_u64() == Some(until),
        "a refused keep-alive changed it"
    );
    say(format!(
        "keep-alive: 8 hours moves the idle stop to {until}; 1441 minutes is 400 keep_alive_too_long, bob 404, nothing changed"
    ));

    let ended = admin.call("POST", &path, Some(r#"{"minutes":0}"#))?;
    expect(&ended, 200, "end the keep-alive")?;
    let ended = ended.json()?["idle"].clone();
    ensure!(
        ended.get("keep_alive_until").is_none()
            && ended["kept_by"] == serde_json::json!(["activity"]),
        "after ending the keep-alive: {ended}"
    );
    let audit = admin
        .call("GET", "/api/admin/audit?limit=100", None)?
        .json()?;
    let details: Vec<&str> = audit
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|e| e["action"] == "session.keep_alive" && e["target"] == id)
                .filter_map(|e| e["detail"].as_str())
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        details.contains(&"480 minutes") && details.contains(&"ended") && details.len() == 2,
        "the keep-alive's audit entries: {details:?}"
    );
    say("keep-alive: ended with 0; audited as session.keep_alive (480 minutes, ended)");
    Ok(())
}

/// The first admin of a fresh `octod serve` on `port`: the invite code it logged (from
/// [`spawn_octod`]'s channel), once its API answers, registered as `admin` with
/// [`ADMIN_PASSWORD`] and signed in.
pub(crate) async fn first_admin(
    port: u16,
    code: &std::sync::mpsc::Receiver<String>,
) -> anyhow::Result<Client> {
    let code = code
        .recv_timeout(Duration::from_secs(60))
        .context("octod logged no first admin invite code")?;
    util::eventually(Duration::from_secs(30), "octod's /api/health", async || {
        expect(
            &util::request(port, "GET", "/api/health", &[], None)?,
            200,
            "health",
        )
    })
    .await?;
    let answer = util::request(
        port,
        "POST",
        "/api/auth/register",
        &[],
        Some(&format!(
            r#"{{"invite_code":"{code}","username":"admin","password":"{ADMIN_PASSWORD}"}}"#
        )),
    )?;
    expect(&answer, 201, "register admin")?;
    sign_in(port, &answer)
}

/// A new session of `template` for `client`: its id once the create is accepted.
pub(crate) fn create_session(client: &Client, template: &str) -> anyhow::Result<String> {
    let answer = client.call(
        "POST",
        "/api/sessions",
        Some(&format!(r#"{{"template":"{template}"}}"#)),
    )?;
    ensure!(
        matches!(answer.status, 201 | 202),
        "create: {} {}",
        answer.status,
        answer.body
    );
    Ok(answer.json()?["id"]
        .as_str()
        .context("session id")?
        .to_owned())
}

pub(crate) fn expect(answer: &Answer, status: u16, what: &str) -> anyhow::Result<()> {
    ensure!(
        answer.status == status,
        "{what}: expected {status}, got {} {}",
        answer.status,
        answer.body
    );
    Ok(())
}

pub(crate) async fn run() -> anyhow::Result<()> {
    let home = std::path::PathBuf::from(std::env::var("HOME").context("HOME")?);
    let base = home.join("e2e-api");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    let config = base.join("octod.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nstate_dir = \"{}\"\n\n[sessions]\ntemplates_dir = \"/opt/octo/src/container/templates\"\nport_range = \"23000-23099\"\nmax_per_user = 1\n",
            base.join("state").display()
        ),
    )?;
    let (mut child, code_rx) = spawn_octod(PORT, &config)?;
    let result = scenario(&code_rx).await;
    // SIGTERM: a clean shutdown.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait()?;
    result?;
    ensure!(
        status.success(),
        "octod did not exit cleanly on SIGTERM: {status}"
    );
    say("SIGTERM: octod stopped cleanly");

    // Expiry, on the real redb file: tokens planted while octod is stopped.
    let (expired, live) = crate::tokens::plant_tokens(&base.join("state"))?;
    let (mut child, _) = spawn_octod(PORT, &config)?;
    let result = async {
        util::eventually(Duration::from_secs(30), "octod's /api/health", async || {
            expect(
                &util::request(PORT, "GET", "/api/health", &[], None)?,
                200,
                "health",
            )
        })
        .await?;
        crate::tokens::expired(PORT, &expired, &live)
    }
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait()?;
    result
}

/// Starts `octod serve` on 127.0.0.1:`port` with `config`; its log goes to stderr, and the
/// first admin invite code it logs to the returned channel.
pub(crate) fn spawn_octod(
    port: u16,
    config: &std::path::Path,
) -> anyhow::Result<(std::process::Child, std::sync::mpsc::Receiver<String>)> {
    spawn_octod_with(port, config, &[])
}

/// [`spawn_octod`] with extra environment variables (e.g. `CREDENTIALS_DIRECTORY`).
pub(crate) fn spawn_octod_with(
    port: u16,
    config: &std::path::Path,
    env: &[(&str, &std::path::Path)],
) -> anyhow::Result<(std::process::Child, std::sync::mpsc::Receiver<String>)> {
    let octod = format!(
        "{}/octod",
        std::env::var("OCTO_BIN_DIR").unwrap_or_else(|_| "/opt/octo/target/debug".into())
    );
    let mut child = Command::new(&octod)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(config)
        .env("OCTOD_LOG", "warn")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {octod}"))?;
    let stderr = child.stderr.take().context("octod's stderr")?;
    let (code_tx, code_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some((_, code)) = line.split_once("first admin invite code: ") {
                let _ = code_tx.send(code.trim().to_owned());
            }
            eprintln!("    octod: {line}");
        }
    });
    Ok((child, code_rx))
}

async fn scenario(code: &std::sync::mpsc::Receiver<String>) -> anyhow::Result<()> {
    let code = code
        .recv_timeout(Duration::from_secs(60))
        .context("octod logged no first admin invite code")?;
    util::eventually(Duration::from_secs(30), "octod's /api/health", async || {
        let answer = util::request(PORT, "GET", "/api/health", &[], None)?;
        expect(&answer, 200, "health")
    })
    .await?;
    say("octod serves; it logged a first admin invite code");

    // Registration needs the invite code, and it works once.
    let body =
        format!(r#"{{"invite_code":"{code}","username":"admin","password":"{ADMIN_PASSWORD}"}}"#);
    let bad = body.replace(&code, "wrongcode");
    expect(
        &util::request(PORT, "POST", "/api/auth/register", &[], Some(&bad))?,
        400,
        "bad code",
    )
    .or_else(|_| {
        expect(
            &util::request(PORT, "POST", "/api/auth/register", &[], Some(&bad))?,
            403,
            "bad code",
        )
    })?;
    let answer = util::request(PORT, "POST", "/api/auth/register", &[], Some(&body))?;
    expect(&answer, 201, "register admin")?;
    let admin = sign_in(PORT, &answer)?;
    let again = body.replace("\"admin\"", "\"admin2\"");
    ensure!(
        util::request(PORT, "POST", "/api/auth/register", &[], Some(&again))?.status >= 400,
        "a single-use invite code worked twice"
    );
    let me = admin.call("GET", "/api/me", None)?;
    expect(&me, 200, "me")?;
    ensure!(
        me.json()?["role"] == "admin",
        "the first user is not admin: {}",
        me.body
    );
    say("registered the first admin with the invite code; the code does not work twice");

    // A second user through an admin-made invite code.
    let invite = admin.call("POST", "/api/admin/invite-codes", Some("{}"))?;
    expect(&invite, 201, "invite code").or_else(|_| expect(&invite, 200, "invite code"))?;
    let bob_code = invite.json()?["code"]
        .as_str()
        .context("invite code in the answer")?
        .to_owned();
    let answer = util::request(
        PORT,
        "POST",
        "/api/auth/register",
        &[],
        Some(&format!(
            r#"{{"invite_code":"{bob_code}","username":"bob","password":"{}"}}"#,
            crate::tokens::BOB_PASSWORD
        )),
    )?;
    expect(&answer, 201, "register bob")?;
    let bob = sign_in(PORT, &answer)?;

    let templates = admin.call("GET", "/api/templates", None)?;
    expect(&templates, 200, "templates")?;
    let ids: Vec<String> = templates
        .json()?
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .collect();
    ensure!(
        ids.len() == 3 && ids.contains(&"coding-copilot".to_owned()),
        "templates: {ids:?}"
    );
    say(format!("templates: {ids:?}"));

    // Bad input, then a real session.
    let answer = admin.call("POST", "/api/sessions", Some(r#"{"template":"nope"}"#))?;
    expect(&answer, 400, "unknown template")?;
    ensure!(
        answer.json()?["error"]["code"] == "unknown_template",
        "{}",
        answer.body
    );
    let answer = admin.call(
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
    let session = answer.json()?;
    let id = session["id"].as_str().context("session id")?.to_owned();
    let path = format!("/api/sessions/{id}");
    util::session_running(
        |path| admin.call("GET", path, None),
        &id,
        Duration::from_secs(120),
    )
    .await?;
    say(format!("created session {id} through the API; it runs"));
    let limit = admin.call(
        "POST",
        "/api/sessions",
        Some(r#"{"template":"coding-copilot"}"#),
    )?;
    expect(&limit, 409, "the per-user limit")?;

    // Only the owner (and admins) see it.
    expect(
        &bob.call("GET", &path, None)?,
        404,
        "bob reads admin's session",
    )?;
    expect(
        &bob.call("POST", &format!("{path}/stop"), None)?,
        404,
        "bob stops admin's session",
    )?;
    expect(
        &bob.call("DELETE", &path, None)?,
        404,
        "bob deletes admin's session",
    )?;
    let list = bob.call("GET", "/api/sessions", None)?;
    ensure!(
        list.json()?.as_array().is_some_and(Vec::is_empty),
        "bob sees sessions: {}",
        list.body
    );
    expect(
        &bob.call("GET", "/api/admin/sessions", None)?,
        403,
        "bob lists all sessions",
    )?;
    expect(
        &util::request(PORT, "GET", &path, &[], None)?,
        401,
        "anonymous",
    )?;
    let cross = util::request(
        PORT,
        "POST",
        &format!("{path}/stop"),
        &[("Cookie", &admin.cookie), ("Origin", "http://evil.example")],
        None,
    )?;
    expect(&cross, 403, "a cross-origin stop")?;
    say("another user gets 404, anonymous 401, cross-origin 403");

    names(&admin, &bob, &id)?;
    keep_alive(&admin, &bob, &id)?;

    let answer = admin.call("POST", &format!("{path}/stop"), None)?;
    ensure!(
        answer.status == 200 && answer.json()?["state"] == "stopped",
        "stop: {}",
        answer.body
    );
    let answer = admin.call("POST", &format!("{path}/resume"), None)?;
    ensure!(
        answer.status == 200 && answer.json()?["state"] == "running",
        "resume: {}",
        answer.body
    );
    say("stop → stopped, resume → running");

    // Through the proxy: each service with the browser's cookie; octod injects the token.
    let files = admin.call("GET", &format!("/sessions/{id}/files/api/list?path="), None)?;
    expect(&files, 200, "the file server through the proxy")?;
    ensure!(files.json().is_ok(), "file listing: {}", files.body);
    let health = admin.call(
        "GET",
        &format!("/sessions/{id}/opencode/global/health"),
        None,
    )?;
    expect(&health, 200, "opencode through the proxy")?;
    ensure!(
        health.body.contains("healthy"),
        "opencode health: {}",
        health.body
    );
    expect(
        &bob.call("GET", &format!("/sessions/{id}/files/api/list?path="), None)?,
        404,
        "bob through the proxy",
    )?;
    expect(
        &util::request(
            PORT,
            "GET",
            &format!("/sessions/{id}/opencode/global/health"),
            &[],
            None,
        )?,
        401,
        "anonymous through the proxy",
    )?;
    let url = format!("ws://127.0.0.1:{PORT}/sessions/{id}/terminal");
    let output = crate::image::terminal_at(
        &url,
        &[("Cookie", admin.cookie.as_str()), ("Origin", ORIGIN)],
        "the browser does not know the session token",
        &["echo $((6*7))"],
        "42",
    )
    .await?;
    ensure!(output.contains("42"), "terminal output: {output}");
    let refused = crate::image::terminal_at(
        &url,
        &[("Cookie", bob.cookie.as_str()), ("Origin", ORIGIN)],
        "x",
        &["echo $((6*7))"],
        "42",
    )
    .await;
    ensure!(refused.is_err(), "bob got a terminal in admin's session");
    say("through the proxy: files, opencode and the terminal (echo $((6*7)) → 42); bob refused");
    let used = admin.call("GET", &path, None)?.json()?;
    let (created, active) = (
        used["created_at"].as_u64().context("created_at")?,
        used["last_active_at"].as_u64().context("last_active_at")?,
    );
    ensure!(
        active > created,
        "the proxied traffic is not the session's last activity: created {created}, last active {active}"
    );
    say(format!(
        "last activity moved with the proxied traffic: {:.1} s after its creation",
        Duration::from_millis(active - created).as_secs_f64()
    ));

    // A session its user stopped is not woken by a request (its socket is stopped too: only
    // an idle-stopped session wakes on access, the `boundary wake` check): 409, and it stays
    // stopped until resumed.
    let answer = admin.call("POST", &format!("{path}/stop"), None)?;
    ensure!(
        answer.json()?["state"] == "stopped",
        "stop: {}",
        answer.body
    );
    let refused = admin.call(
        "GET",
        &format!("/sessions/{id}/opencode/global/health"),
        None,
    )?;
    expect(&refused, 409, "a request to a stopped session")?;
    ensure!(
        refused.body.contains("session_stopped"),
        "a request to a stopped session: {}",
        refused.body
    );
    let state = admin.call("GET", &path, None)?;
    ensure!(
        state.json()?["state"] == "stopped",
        "the stopped session after a request: {}",
        state.body
    );
    let answer = admin.call("POST", &format!("{path}/resume"), None)?;
    expect(&answer, 200, "resume")?;
    util::eventually(
        Duration::from_secs(120),
        "the resumed session answering",
        async || {
            let answer = admin.call(
                "GET",
                &format!("/sessions/{id}/opencode/global/health"),
                None,
            )?;
            expect(&answer, 200, "opencode after resuming")
        },
    )
    .await?;
    say(
        "a request to the stopped session: 409 session_stopped, and it stays stopped; resumed, it answers",
    );

    // Issue 16: API tokens, and streams that end with their sign-in or token.
    crate::tokens::tokens(&admin, &bob, &id).await?;
    let admin = crate::tokens::streams(&admin, &bob, &id, ADMIN_PASSWORD).await?;

    let metrics = util::request(PORT, "GET", "/metrics", &[], None)?;
    ensure!(
        metrics.body.contains("octo_sessions{state=\"running\"} 1"),
        "metrics: {}",
        metrics.body
    );

    let answer = admin.call("DELETE", &path, None)?;
    expect(&answer, 204, "delete")?;
    expect(&admin.call("GET", &path, None)?, 404, "the deleted session")?;
    let logout = admin.call("POST", "/api/auth/logout", None)?;
    ensure!(logout.status < 300, "logout: {}", logout.body);
    expect(
        &admin.call("GET", "/api/me", None)?,
        401,
        "a revoked cookie",
    )?;
    say("delete → 404; after logout the old cookie is refused");
    Ok(())
}
