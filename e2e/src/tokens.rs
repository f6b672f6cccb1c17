//! Issue 16's personal API tokens and streams that follow the account, through the real
//! `octod serve` of the `api` check (its socket, its redb file, the real session image):
//!
//! - [`tokens`]: bob creates tokens with his cookie (a token cannot create one), reads with a
//!   read-only token and is refused a create (403 `insufficient_scope`), creates a session with
//!   a full token as a script would (no `Origin`), reaches its file API and its terminal with
//!   the token (no `Origin` either), is refused another user's session (404); a revoked token
//!   and a token of a disabled user are 401; the last use is recorded; nothing lists a secret.
//! - [`streams`]: terminal WebSockets and opencode event streams opened with a cookie or a
//!   token end within 5 s of a sign-out, a demotion (an admin's streams into another user's
//!   session), a disable, a token's revocation and a password change, each timed; streams of
//!   other credentials stay open through all of it.
//! - [`expired`]: with octod stopped, a token that expired is written into its real redb file
//!   beside a live one; octod started again refuses the first (401) and takes the second.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _, http};

use crate::api::{Client, expect};
use crate::util::{self, Answer, say};

/// How soon a stream must close after its access ended (the issue's bound).
const CLOSE_BOUND: Duration = Duration::from_secs(5);

fn bearer(
    port: u16,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<Answer> {
    util::request(
        port,
        method,
        path,
        &[("Authorization", &format!("Bearer {token}"))],
        body,
    )
}

/// Creates a token with `client`'s cookie: (token, id).
fn create(client: &Client, name: &str, scopes: &[&str]) -> anyhow::Result<(String, String)> {
    let body = serde_json::json!({"name": name, "scopes": scopes, "expires_in_days": 7});
    let answer = client.call("POST", "/api/me/tokens", Some(&body.to_string()))?;
    expect(&answer, 201, &format!("creating token {name}"))?;
    let json = answer.json()?;
    let token = json["token"].as_str().context("token")?.to_owned();
    let id = json["info"]["id"].as_str().context("id")?.to_owned();
    ensure!(
        token.starts_with("octo_") && token.len() == 86,
        "token format: {token:.12}…"
    );
    Ok((token, id))
}

fn code_of(answer: &Answer) -> String {
    answer
        .json()
        .ok()
        .and_then(|j| j["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// API tokens through the real octod; `admin_session` is the admin's running session.
pub(crate) async fn tokens(
    admin: &Client,
    bob: &Client,
    admin_session: &str,
) -> anyhow::Result<()> {
    let port = bob.port;
    let (full, _) = create(
        bob,
        "ci",
        &["sessions:read", "sessions:write", "sessions:connect"],
    )?;
    let (reader, reader_id) = create(bob, "reader", &["sessions:read"])?;
    let listed = bob.call("GET", "/api/me/tokens", None)?;
    expect(&listed, 200, "listing tokens")?;
    ensure!(
        listed.json()?.as_array().map(Vec::len) == Some(2)
            && !listed.body.contains(&full[22..])
            && !listed.body.contains(&reader[22..]),
        "the list: {}",
        listed.body
    );
    // A token cannot make another, nor see the account's tokens.
    let minted = bearer(
        port,
        &full,
        "POST",
        "/api/me/tokens",
        Some(r#"{"name":"x","scopes":["sessions:read"]}"#),
    )?;
    ensure!(
        minted.status == 403 && code_of(&minted) == "token_not_allowed",
        "a token minting a token: {} {}",
        minted.status,
        minted.body
    );
    say(
        "bob created two tokens with his cookie (shown once; the list holds no secret); a token cannot mint another (403 token_not_allowed)",
    );

    // Read-only: lists, cannot create.
    expect(
        &bearer(port, &reader, "GET", "/api/sessions", None)?,
        200,
        "read token lists",
    )?;
    let refused = bearer(
        port,
        &reader,
        "POST",
        "/api/sessions",
        Some(r#"{"template":"coding-copilot"}"#),
    )?;
    ensure!(
        refused.status == 403 && code_of(&refused) == "insufficient_scope",
        "a read-only token creating a session: {} {}",
        refused.status,
        refused.body
    );
    say("a token with only sessions:read lists sessions; its create is 403 insufficient_scope");

    // A script with the full token: creates a session (no Origin), waits, reaches its files.
    let created = bearer(
        port,
        &full,
        "POST",
        "/api/sessions",
        Some(r#"{"template":"coding-copilot"}"#),
    )?;
    ensure!(
        matches!(created.status, 201 | 202),
        "a token's create: {} {}",
        created.status,
        created.body
    );
    let id = created.json()?["id"].as_str().context("id")?.to_owned();
    util::session_running(
        |path| bearer(port, &full, "GET", path, None),
        &id,
        Duration::from_secs(180),
    )
    .await?;
    let files = format!("/sessions/{id}/files/api/list?path=");
    util::eventually(
        Duration::from_secs(60),
        "the file API with a token",
        async || {
            expect(
                &bearer(port, &full, "GET", &files, None)?,
                200,
                "files with a token",
            )
        },
    )
    .await?;
    let no_connect = bearer(port, &reader, "GET", &files, None)?;
    ensure!(
        no_connect.status == 403 && code_of(&no_connect) == "insufficient_scope",
        "the file API with a read-only token: {} {}",
        no_connect.status,
        no_connect.body
    );
    let url = format!("ws://127.0.0.1:{port}/sessions/{id}/terminal");
    let auth = format!("Bearer {full}");
    let output = crate::image::terminal_at(
        &url,
        &[("Authorization", auth.as_str())],
        "",
        &["echo $((6*9))"],
        "54",
    )
    .await?;
    ensure!(output.contains("54"), "terminal output: {output}");
    // Another user's session: not revealed, whatever the scopes.
    for path in [
        format!("/api/sessions/{admin_session}"),
        format!("/sessions/{admin_session}/files/api/list?path="),
    ] {
        expect(
            &bearer(port, &full, "GET", &path, None)?,
            404,
            "bob's token on admin's session",
        )?;
    }
    say(format!(
        "bob's full token, as a script (no Origin, no cookie): created session {id}, listed its files, ran echo $((6*9)) → 54 in its terminal; admin's session is 404 to it; the read-only token is 403 on the files"
    ));

    // The last use is recorded (to the minute, in the background).
    util::eventually(
        Duration::from_secs(10),
        "the token's last use",
        async || {
            let list = bob.call("GET", "/api/me/tokens", None)?.json()?;
            let used = list
                .as_array()
                .and_then(|l| l.iter().find(|t| t["name"] == "ci"))
                .and_then(|t| t["last_used_at"].as_u64());
            ensure!(used.is_some(), "not recorded: {list}");
            Ok(())
        },
    )
    .await?;

    // Deleting with the token (and so freeing the host for the next checks).
    let deleted = bearer(port, &full, "DELETE", &format!("/api/sessions/{id}"), None)?;
    ensure!(
        matches!(deleted.status, 202 | 204),
        "a token's delete: {} {}",
        deleted.status,
        deleted.body
    );

    // Revoked: 401 from the next request. Disabled user: 401; enabled again: back.
    expect(
        &bob.call("DELETE", &format!("/api/me/tokens/{reader_id}"), None)?,
        204,
        "revoking",
    )?;
    expect(
        &bearer(port, &reader, "GET", "/api/sessions", None)?,
        401,
        "a revoked token",
    )?;
    expect(
        &admin.call("POST", "/api/admin/users/bob/disable", None)?,
        200,
        "disable bob",
    )?;
    expect(
        &bearer(port, &full, "GET", "/api/sessions", None)?,
        401,
        "a disabled user's token",
    )?;
    expect(
        &admin.call("POST", "/api/admin/users/bob/enable", None)?,
        200,
        "enable bob",
    )?;
    expect(
        &bearer(port, &full, "GET", "/api/sessions", None)?,
        200,
        "the token after enabling",
    )?;
    // An admin sees and revokes anyone's tokens.
    let theirs = admin.call("GET", "/api/admin/users/bob/tokens", None)?;
    expect(&theirs, 200, "admin lists bob's tokens")?;
    let full_id = theirs.json()?[0]["id"].as_str().context("id")?.to_owned();
    expect(
        &admin.call(
            "DELETE",
            &format!("/api/admin/users/bob/tokens/{full_id}"),
            None,
        )?,
        204,
        "admin revokes bob's token",
    )?;
    expect(
        &bearer(port, &full, "GET", "/api/sessions", None)?,
        401,
        "a token an admin revoked",
    )?;
    say(
        "revoked (by bob, by an admin) → 401 at the next request; bob disabled → his token 401, enabled → 200",
    );

    let audit = admin.call("GET", "/api/admin/audit?limit=50", None)?;
    ensure!(
        audit.body.contains("token.create")
            && audit.body.contains("token.revoke")
            && !audit.body.contains(&full[22..]),
        "the audit log: {}",
        audit.body
    );
    Ok(())
}

/// An open stream: when it ended, and the terminal's close code.
struct Open {
    what: String,
    ended: tokio::sync::oneshot::Receiver<(Instant, String)>,
}

impl Open {
    fn still_open(&mut self) -> anyhow::Result<()> {
        match self.ended.try_recv() {
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => Ok(()),
            Ok((_, how)) => bail!("{} ended too early ({how})", self.what),
            Err(e) => bail!("{}: {e}", self.what),
        }
    }
}

/// `GET /sessions/{id}/opencode/event` with `headers`, read until the connection ends.
fn event_stream(port: u16, id: &str, headers: &[(&str, &str)], what: &str) -> anyhow::Result<Open> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    let mut head = format!(
        "GET /sessions/{id}/opencode/event HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
    );
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    ensure!(status.contains(" 200 "), "{what}: {status}");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    // No read timeout from here: opencode's stream is quiet between heartbeats.
    reader.get_ref().set_read_timeout(None)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let how = loop {
            match reader.read(&mut buf) {
                Ok(0) => break "EOF".to_owned(),
                Ok(_) => {}
                Err(e) => break format!("error: {e}"),
            }
        };
        let _ = tx.send((Instant::now(), how));
    });
    Ok(Open {
        what: what.to_owned(),
        ended: rx,
    })
}

/// The session's terminal WebSocket with `headers`, read until it closes.
async fn terminal(
    port: u16,
    id: &str,
    headers: &[(&str, &str)],
    what: &str,
) -> anyhow::Result<Open> {
    let url = format!("ws://127.0.0.1:{port}/sessions/{id}/terminal");
    let mut request = url.as_str().into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        http::HeaderValue::from_static("tty"),
    );
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes())?,
            http::HeaderValue::from_str(value)?,
        );
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("{what}: the WebSocket"))?;
    let hello = serde_json::json!({"AuthToken": "", "columns": 80, "rows": 24});
    ws.send(Message::Text(hello.to_string().into())).await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let how = loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => {
                    break frame.map_or_else(
                        || "close without a code".to_owned(),
                        |f| format!("close {} {}", u16::from(f.code), f.reason),
                    );
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break format!("error: {e}"),
                None => break "EOF".to_owned(),
            }
        };
        let _ = tx.send((Instant::now(), how));
    });
    Ok(Open {
        what: what.to_owned(),
        ended: rx,
    })
}

/// Opens a terminal and an event stream with `headers` (the terminal with `ws_headers`).
async fn open_pair(
    port: u16,
    id: &str,
    headers: &[(&str, &str)],
    ws_headers: &[(&str, &str)],
    who: &str,
) -> anyhow::Result<Vec<Open>> {
    let sse = {
        let (port, id, what) = (port, id.to_owned(), format!("{who}'s event stream"));
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            event_stream(port, &id, &headers, &what)
        })
        .await??
    };
    let term = terminal(port, id, ws_headers, &format!("{who}'s terminal")).await?;
    Ok(vec![term, sse])
}

/// Checks that `streams` are open, runs `trigger`, and waits for each to end within
/// [`CLOSE_BOUND`]; `controls` must stay open. Returns how long each took.
async fn ends_on(
    what: &str,
    streams: Vec<Open>,
    controls: &mut [Open],
    trigger: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut streams = streams;
    for stream in streams.iter_mut().chain(controls.iter_mut()) {
        stream.still_open()?;
    }
    let start = Instant::now();
    trigger()?;
    let mut took = Vec::new();
    for stream in streams {
        let (at, how) = tokio::time::timeout(Duration::from_secs(15), stream.ended)
            .await
            .with_context(|| format!("{what}: {} still open after 15 s", stream.what))??;
        let after = at.saturating_duration_since(start);
        ensure!(
            after <= CLOSE_BOUND,
            "{what}: {} ended only after {after:?}",
            stream.what
        );
        if stream.what.contains("terminal") {
            ensure!(
                how.starts_with("close 1008"),
                "{what}: {} ended with {how}",
                stream.what
            );
        }
        took.push(format!(
            "{} {:.0} ms ({how})",
            stream.what,
            after.as_secs_f64() * 1000.0
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for control in controls.iter_mut() {
        control.still_open()?;
    }
    say(format!("{what}: {}", took.join(", ")));
    Ok(())
}

/// Bob's password in the `api` check.
pub(crate) const BOB_PASSWORD: &str = "another good one";

fn bob_name(_: &Client) -> String {
    "bob".to_owned()
}

fn login(port: u16, name: &str, password: &str) -> anyhow::Result<Client> {
    let body = serde_json::json!({"username": name, "password": password}).to_string();
    let answer = util::request(port, "POST", "/api/auth/login", &[], Some(&body))?;
    expect(&answer, 200, &format!("{name} signs in"))?;
    crate::api::sign_in(port, &answer)
}

/// Streams that follow the account, on the admin's running session `id`. Changes the
/// admin's password (back to `password`) and returns the admin's new client.
pub(crate) async fn streams(
    admin: &Client,
    bob: &Client,
    id: &str,
    password: &str,
) -> anyhow::Result<Client> {
    let port = admin.port;
    let origin = admin.origin();
    let open_cookie = |c: &Client, who: &'static str| {
        let headers = [
            ("Cookie".to_owned(), c.cookie.clone()),
            ("Origin".to_owned(), origin.clone()),
        ];
        async move {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            open_pair(port, id, &headers, &headers, who).await
        }
    };
    // Bob's cookie of the caller ended with the tokens check's disable: a new sign-in.
    let bob = &login(port, &bob_name(bob), BOB_PASSWORD)?;

    // A second sign-in of the admin whose streams must outlive everything but its own end.
    let keeper = login(port, "admin", password)?;
    let mut controls = open_cookie(&keeper, "the admin's other sign-in").await?;

    // Sign-out.
    let leaving = login(port, "admin", password)?;
    let streams = open_cookie(&leaving, "a signed-out cookie").await?;
    ends_on("sign-out", streams, &mut controls, || {
        let answer = leaving.call("POST", "/api/auth/logout", None)?;
        ensure!(answer.status == 204, "logout: {}", answer.status);
        Ok(())
    })
    .await?;

    // Demotion: bob as an admin watches the admin's session, then is made a user again.
    expect(
        &admin.call(
            "POST",
            "/api/admin/users/bob/role",
            Some(r#"{"role":"admin"}"#),
        )?,
        200,
        "promote bob",
    )?;
    let streams = open_cookie(bob, "bob (admin)").await?;
    ends_on("demotion", streams, &mut controls, || {
        expect(
            &admin.call(
                "POST",
                "/api/admin/users/bob/role",
                Some(r#"{"role":"user"}"#),
            )?,
            200,
            "demote bob",
        )
    })
    .await?;

    // Disable.
    expect(
        &admin.call(
            "POST",
            "/api/admin/users/bob/role",
            Some(r#"{"role":"admin"}"#),
        )?,
        200,
        "promote bob",
    )?;
    let streams = open_cookie(bob, "bob (admin, to be disabled)").await?;
    ends_on("disable", streams, &mut controls, || {
        expect(
            &admin.call("POST", "/api/admin/users/bob/disable", None)?,
            200,
            "disable bob",
        )
    })
    .await?;
    expect(
        &admin.call("POST", "/api/admin/users/bob/enable", None)?,
        200,
        "enable bob",
    )?;
    expect(
        &admin.call(
            "POST",
            "/api/admin/users/bob/role",
            Some(r#"{"role":"user"}"#),
        )?,
        200,
        "bob a user again",
    )?;

    // A token's revocation (the terminal with the token alone: no Origin, no cookie).
    let (token, token_id) = create(admin, "streams", &["sessions:connect"])?;
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str())];
    let streams = open_pair(port, id, &headers, &headers, "a token").await?;
    ends_on("token revoked", streams, &mut controls, || {
        expect(
            &admin.call("DELETE", &format!("/api/me/tokens/{token_id}"), None)?,
            204,
            "revoke",
        )
    })
    .await?;

    // A password change ends every other sign-in: here the keeper's own streams.
    let mut none: Vec<Open> = Vec::new();
    let mut new_cookie = None;
    ends_on("password change", controls, &mut none, || {
        let body =
            serde_json::json!({"current": password, "new": "a brand new password"}).to_string();
        let answer = admin.call("POST", "/api/me/password", Some(&body))?;
        expect(&answer, 204, "password change")?;
        new_cookie = Some(crate::api::sign_in(port, &answer)?);
        Ok(())
    })
    .await?;
    let changed = new_cookie.context("no cookie after the password change")?;
    let body = serde_json::json!({"current": "a brand new password", "new": password}).to_string();
    let answer = changed.call("POST", "/api/me/password", Some(&body))?;
    expect(&answer, 204, "password back")?;
    crate::api::sign_in(port, &answer)
}

/// With octod stopped: an expired token and a live one written into its redb file.
/// Returns (expired, live).
pub(crate) fn plant_tokens(state_dir: &std::path::Path) -> anyhow::Result<(String, String)> {
    use octod::store::{ApiTokenRecord, AuditEntry, Store};
    let store = Store::open(state_dir.join("octod.redb")).context("opening octod's state")?;
    let now = std::time::SystemTime::now();
    let mut out = Vec::new();
    for (name, expires_at) in [
        ("expired", now - Duration::from_secs(60)),
        ("live", now + Duration::from_secs(3600)),
    ] {
        let (id, token, hash) = octod::auth::api_token::generate()?;
        let record = ApiTokenRecord {
            id,
            user: "bob".to_owned(),
            name: name.to_owned(),
            scopes: vec![octod::identity::Scope::SessionsRead],
            secret_sha256: hash,
            created_at: now - Duration::from_secs(7200),
            expires_at,
            last_used_at: None,
        };
        store.create_api_token(
            &record,
            &AuditEntry::new("e2e", "token.create", "bob", name),
        )?;
        out.push(token.expose().to_owned());
    }
    Ok((out[0].clone(), out[1].clone()))
}

/// octod started again over the planted tokens: the expired one is 401, the live one 200.
pub(crate) fn expired(port: u16, expired: &str, live: &str) -> anyhow::Result<()> {
    expect(
        &bearer(port, live, "GET", "/api/sessions", None)?,
        200,
        "the live token",
    )?;
    let answer = bearer(port, expired, "GET", "/api/sessions", None)?;
    expect(&answer, 401, "the expired token")?;
    say(
        "an expired token (written into the stopped octod's redb) is 401; a live one beside it 200",
    );
    Ok(())
}
