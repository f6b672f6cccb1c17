//! `octo-e2e previews`: the apps a session runs, reached on the content origin (issue 14),
//! through the real `octod serve` (with `server.content_site`), the real session image and
//! its gateway, in the test host:
//!
//! - `python3 -m http.server` and a small node WebSocket echo, started in the session, are
//!   listed by `GET /api/sessions/{id}/ports` with their preview URLs;
//! - the owner's `…/ports/<port>/open` gives a ticket, traded on `p<port>-<id>.<site>` for the
//!   host's cookie; with it the app answers there (the request sent to octod with that
//!   `Host`, as Caddy does), and a WebSocket echo works through octod and the gateway;
//! - another user gets 404 for the listing and the ticket, a browser without the cookie 401,
//!   a page of another origin 403 for its upgrade; the session's own ports (opencode's 41820,
//!   the model gateway's 41830) are refused (403), a port below 1024 is 400, one with nothing
//!   listening 502;
//! - sharing: once the owner shares the port with every signed-in user, the other user opens
//!   it (and loses it at the next request once unshared); a share link opens it in a browser
//!   with no account until it is revoked or expires; the other user cannot share the owner's
//!   port; the audit log has each change; a WebSocket open through a link is cut when the link
//!   is revoked, and when the owner is disabled.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::api::{Client, expect, sign_in, spawn_octod};
use crate::util::{self, Answer, say};

const PORT: u16 = 18_510;
const SITE: &str = "content.localhost:8443";
const HTTP_APP: u16 = 8000;
const WS_APP: u16 = 8001;

/// A WebSocket echo in plain node (no package): RFC 6455's handshake, masked text frames in,
/// `echo:` + the text out.
const WS_ECHO: &str = r"
const http = require('http'), crypto = require('crypto');
const server = http.createServer((q, r) => r.end('ws echo\n'));
server.on('upgrade', (req, sock) => {
  const accept = crypto.createHash('sha1')
    .update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Accept: ' + accept + '\r\n\r\n');
  let buf = Buffer.alloc(0);
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2) {
      const op = buf[0] & 15; let len = buf[1] & 127, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127 || !(buf[1] & 128)) return sock.destroy();
      if (buf.length < off + 4 + len) return;
      const mask = buf.subarray(off, off + 4), payload = Buffer.alloc(len);
      for (let i = 0; i < len; i++) payload[i] = buf[off + 4 + i] ^ mask[i % 4];
      buf = buf.subarray(off + 4 + len);
      if (op === 8) return sock.end();
      if (op === 1) {
        const out = Buffer.from('echo:' + payload.toString());
        const head = out.length < 126 ? Buffer.from([0x81, out.length])
          : Buffer.from([0x81, 126, out.length >> 8, out.length & 255]);
        sock.write(Buffer.concat([head, out]));
      }
    }
  });
});
server.listen(Number(process.argv[1]), '127.0.0.1');
";

pub(crate) async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let home = std::path::PathBuf::from(std::env::var("HOME").context("HOME")?);
    let base = home.join("e2e-previews");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    let config = base.join("octod.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nstate_dir = \"{}\"\ncontent_site = \"*.{SITE}\"\n\n[sessions]\ntemplates_dir = \"/opt/octo/src/container/templates\"\nmax_per_user = 2\n",
            base.join("state").display()
        ),
    )?;
    let (mut child, code_rx) = spawn_octod(PORT, &config)?;
    let mut session = None;
    let result = scenario(&code_rx, &mut session).await;
    if let Some((owner, id)) = &session {
        let _ = owner.call("DELETE", &format!("/api/sessions/{id}"), None);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait()?;
    result?;
    ensure!(
        status.success(),
        "octod did not exit cleanly on SIGTERM: {status}"
    );
    say(format!(
        "previews done in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

async fn scenario(
    code: &std::sync::mpsc::Receiver<String>,
    session: &mut Option<(Client, String)>,
) -> anyhow::Result<()> {
    let admin = crate::api::first_admin(PORT, code).await?;
    let owner = register(&admin, "owner")?;
    let other = register(&admin, "other")?;

    let id = crate::api::create_session(&owner, "coding-copilot")?;
    *session = Some((
        Client {
            port: PORT,
            cookie: owner.cookie.clone(),
        },
        id.clone(),
    ));
    util::session_running(
        |path| owner.call("GET", path, None),
        &id,
        Duration::from_secs(120),
    )
    .await?;
    say(format!(
        "the owner's session {id} runs (coding-copilot, the real image)"
    ));

    // The apps, started in the session as its agent would.
    let container = format!("octo-{id}");
    util::run(Command::new("podman").args([
        "exec",
        "-d",
        "-w",
        "/home/dev",
        &container,
        "python3",
        "-m",
        "http.server",
        &HTTP_APP.to_string(),
        "--bind",
        "127.0.0.1",
    ]))?;
    util::run(Command::new("podman").args([
        "exec",
        "-d",
        &container,
        "node",
        "-e",
        WS_ECHO,
        &WS_APP.to_string(),
    ]))?;
    util::run(Command::new("podman").args([
        "exec",
        &container,
        "sh",
        "-c",
        "echo 'preview ok' > /home/dev/hello.txt",
    ]))?;

    // Listed, with their previews; not the session's own services.
    let ports_path = format!("/api/sessions/{id}/ports");
    let listed = util::eventually(Duration::from_secs(30), "both apps listed", async || {
        let answer = owner.call("GET", &ports_path, None)?;
        expect(&answer, 200, "the ports")?;
        let listed = answer.json()?;
        let ports: Vec<u64> = listed["ports"]
            .as_array()
            .context("ports")?
            .iter()
            .filter_map(|p| p["port"].as_u64())
            .collect();
        ensure!(
            ports.contains(&u64::from(HTTP_APP)) && ports.contains(&u64::from(WS_APP)),
            "not yet: {listed}"
        );
        Ok(listed)
    })
    .await?;
    ensure!(
        listed["running"] == true && listed["previews"] == true,
        "{listed}"
    );
    let ports = listed["ports"].as_array().context("ports")?;
    for own in [41_820u64, 41_830] {
        ensure!(
            ports.iter().all(|p| p["port"] != own),
            "the session's own port {own} is listed: {listed}"
        );
    }
    let http = ports
        .iter()
        .find(|p| p["port"] == HTTP_APP)
        .context("the http app")?;
    ensure!(
        http["url"] == format!("https://p{HTTP_APP}-{id}.{SITE}/").as_str()
            && http["open"] == format!("/api/sessions/{id}/ports/{HTTP_APP}/open").as_str(),
        "{http}"
    );
    say(format!(
        "GET /ports lists {HTTP_APP} and {WS_APP} with their preview URLs, not 41820/41830"
    ));

    // Another user: not found, as every session route; an anonymous browser: no ticket.
    expect(
        &other.call("GET", &ports_path, None)?,
        404,
        "another user's /ports",
    )?;
    let open_path = format!("/api/sessions/{id}/ports/{HTTP_APP}/open");
    expect(
        &other.call("GET", &open_path, None)?,
        404,
        "another user's open",
    )?;
    expect(
        &util::request(PORT, "GET", &open_path, &[], None)?,
        401,
        "an anonymous open",
    )?;
    let host = format!("p{HTTP_APP}-{id}.{SITE}");
    expect(
        &on_host(&host, "GET", "/hello.txt", &[])?,
        401,
        "the preview without its cookie",
    )?;
    let other_ticket = other.call("GET", &open_path, None)?;
    ensure!(
        other_ticket.header("location").is_none(),
        "a ticket for another user"
    );
    say("another user: 404 for /ports and open; no cookie: 401 on the preview host");

    // The owner's ticket, traded for the host's cookie; the app answers on its own host.
    let cookie = open(&owner, &id, HTTP_APP, "/hello.txt")?;
    let page = on_host(&host, "GET", "/hello.txt", &[("Cookie", &cookie)])?;
    expect(&page, 200, "the app through its preview")?;
    ensure!(
        page.body == "preview ok\n",
        "the app's answer: {:?}",
        page.body
    );
    let listing = on_host(&host, "GET", "/", &[("Cookie", &cookie)])?;
    expect(&listing, 200, "the app's directory listing")?;
    ensure!(
        listing.body.contains("Directory listing for /") && listing.body.contains("hello.txt"),
        "{}",
        listing.body
    );
    ensure!(
        listing.header("content-security-policy").is_none()
            && listing.header("x-content-type-options") == Some("nosniff"),
        "a preview runs on its own origin, without the UI's sandbox: {:?}",
        listing.headers
    );
    // Once octod knows that this gateway has tunnels (it asks it once, meanwhile the gateway
    // relays), the gateway hands each connection to the app over to octod (SCM_RIGHTS from
    // the container's user namespace), and octod speaks to the app on it.
    let mut handed_over = 0;
    for _ in 0..100 {
        let page = on_host(&host, "GET", "/hello.txt", &[("Cookie", &cookie)])?;
        expect(&page, 200, "the app through its preview")?;
        ensure!(page.body == "preview ok\n", "{:?}", page.body);
        let metrics = util::request(PORT, "GET", "/metrics", &[], None)?;
        handed_over = tunnels(&metrics.body, "handed_over");
        if handed_over > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        handed_over > 0,
        "no connection to the app was handed over by the gateway"
    );
    let metrics = util::request(PORT, "GET", "/metrics", &[], None)?;
    ensure!(tunnels(&metrics.body, "spliced") == 0, "{}", metrics.body);
    say(format!(
        "requests reach the app on connections the gateway handed over ({handed_over} so far), none spliced"
    ));
    // The cookie is this host's only.
    let other_port = format!("p{WS_APP}-{id}.{SITE}");
    expect(
        &on_host(&other_port, "GET", "/", &[("Cookie", &cookie)])?,
        401,
        "the cookie on another port's host",
    )?;
    say(
        "the owner's ticket → the host's cookie; python3 -m http.server answers through octod and the gateway",
    );

    // A WebSocket echo through octod and the gateway (a dev server's hot reload).
    let ws_cookie = open(&owner, &id, WS_APP, "/")?;
    let ws_host = format!("p{WS_APP}-{id}.{SITE}");
    let reply = websocket(&ws_host, &ws_cookie, &format!("https://{ws_host}"), "hello").await?;
    ensure!(reply == "echo:hello", "the echo: {reply:?}");
    // From a page of another origin (another session's app, the UI): refused.
    for origin in [
        format!("https://p{WS_APP}-zz99.{SITE}"),
        "https://localhost:8443".to_owned(),
    ] {
        let refused = websocket(&ws_host, &ws_cookie, &origin, "hi").await;
        ensure!(
            refused
                .as_ref()
                .is_err_and(|e| format!("{e:#}").contains("403")),
            "an upgrade from {origin}: {refused:?}"
        );
    }
    say("a WebSocket echo through the preview host; an upgrade from another origin 403");

    sharing(&owner, &other, &admin, &id).await?;

    // Ports that are not an app's.
    for (port, status, code) in [
        (41_820u16, 403, "permission_denied"),
        (41_830, 403, "permission_denied"),
        (8_999, 502, "nothing_listening"),
    ] {
        let cookie = open(&owner, &id, port, "/")?;
        let answer = on_host(
            &format!("p{port}-{id}.{SITE}"),
            "GET",
            "/",
            &[("Cookie", &cookie)],
        )?;
        expect(&answer, status, &format!("port {port}"))?;
        ensure!(answer.body.contains(code), "port {port}: {}", answer.body);
    }
    let low = on_host(&format!("p80-{id}.{SITE}"), "GET", "/", &[])?;
    expect(&low, 400, "port 80")?;
    expect(
        &owner.call("GET", &format!("/api/sessions/{id}/ports/22/open"), None)?,
        400,
        "open of port 22",
    )?;
    say("the session's own ports 41820/41830: 403; nothing on 8999: 502; below 1024: 400");

    // Last: disabling the owner ends their sign-in; they sign in again for the cleanup.
    socket_cut_when_shares_end(&owner, &admin, &id).await?;
    let answer = util::request(
        PORT,
        "POST",
        "/api/auth/login",
        &[],
        Some(r#"{"username":"owner","password":"a good password for owner"}"#),
    )?;
    expect(&answer, 200, "the owner signs in again")?;
    *session = Some((sign_in(PORT, &answer)?, id));
    Ok(())
}

/// The owner shares port [`HTTP_APP`] with every signed-in user, then by links.
async fn sharing(owner: &Client, other: &Client, admin: &Client, id: &str) -> anyhow::Result<()> {
    let host = format!("p{HTTP_APP}-{id}.{SITE}");
    let share_path = format!("/api/sessions/{id}/ports/{HTTP_APP}/share");
    let links_path = format!("/api/sessions/{id}/ports/{HTTP_APP}/links");
    let hello = |cookie: &str| on_host(&host, "GET", "/hello.txt", &[("Cookie", cookie)]);

    // A link that expires in 10 s, made first so that its expiry comes during the rest.
    let short = owner.call("POST", &links_path, Some(r#"{"expires_in_seconds":10}"#))?;
    expect(&short, 201, "a 10 s share link")?;
    let short_made = Instant::now();
    let short = short.json()?;
    let short_url = short["url"].as_str().context("the link's url")?.to_owned();
    let short_cookie = trade_link(&host, &short_url)?;
    expect(&hello(&short_cookie)?, 200, "the app through the 10 s link")?;

    // The other user cannot share the owner's port.
    expect(
        &other.call("POST", &share_path, Some(r#"{"users":true}"#))?,
        404,
        "another user's share",
    )?;
    expect(
        &other.call("POST", &links_path, Some("{}"))?,
        404,
        "another user's link",
    )?;
    for bad in [
        r#"{"expires_in_seconds":5}"#,
        r#"{"expires_in_seconds":99999999}"#,
        r#"{"forever":true}"#,
    ] {
        let refused = owner.call("POST", &links_path, Some(bad))?;
        ensure!(
            matches!(refused.status, 400 | 422),
            "a link of {bad}: {} {}",
            refused.status,
            refused.body
        );
    }

    // Shared with every signed-in user: the other user opens it; unshared, their next
    // request is refused.
    let shared = owner.call("POST", &share_path, Some(r#"{"users":true}"#))?;
    expect(&shared, 200, "share with every user")?;
    ensure!(shared.json()?["users"] == true, "{}", shared.body);
    let others = open(other, id, HTTP_APP, "/hello.txt")?;
    let page = hello(&others)?;
    expect(&page, 200, "the shared app for the other user")?;
    ensure!(page.body == "preview ok\n", "{:?}", page.body);
    expect(
        &on_host(&host, "GET", "/hello.txt", &[])?,
        401,
        "the shared app without a cookie",
    )?;
    let listed = owner
        .call("GET", &format!("/api/sessions/{id}/ports"), None)?
        .json()?;
    let row = listed["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|p| p["port"] == HTTP_APP))
        .context("the app in the listing")?;
    ensure!(row["share"]["users"] == true, "the listing's share: {row}");
    expect(
        &owner.call("POST", &share_path, Some(r#"{"users":false}"#))?,
        200,
        "unshare",
    )?;
    expect(&hello(&others)?, 404, "the other user after the unshare")?;
    say("shared with every signed-in user: the other user opens it; unshared: 404 at once");

    // A link for a day: a browser with no account opens it; revoked, it is refused at once.
    let day = owner.call("POST", &links_path, Some("{}"))?;
    expect(&day, 201, "a share link")?;
    let day = day.json()?;
    let day_id = day["id"].as_str().context("the link's id")?.to_owned();
    let day_url = day["url"].as_str().context("the link's url")?.to_owned();
    ensure!(
        day_url.starts_with(&format!("https://{host}/__octo/share?t=")),
        "{day_url}"
    );
    let anonymous = trade_link(&host, &day_url)?;
    let page = hello(&anonymous)?;
    expect(&page, 200, "the app through a share link")?;
    ensure!(page.body == "preview ok\n", "{:?}", page.body);
    // The link's cookie is that port's only.
    expect(
        &on_host(
            &format!("p{WS_APP}-{id}.{SITE}"),
            "GET",
            "/",
            &[("Cookie", &anonymous)],
        )?,
        401,
        "a link's cookie on another port",
    )?;
    let listed = owner.call("GET", &format!("/api/sessions/{id}/ports"), None)?;
    ensure!(
        listed.body.contains(&day_id)
            && !listed
                .body
                .contains(day_url.rsplit_once("t=").map_or("?", |(_, t)| t)),
        "the listing shows the link, not its token: {}",
        listed.body
    );
    expect(
        &owner.call("DELETE", &format!("{links_path}/{day_id}"), None)?,
        204,
        "revoke the link",
    )?;
    let revoked = hello(&anonymous)?;
    expect(&revoked, 403, "the revoked link's cookie")?;
    ensure!(
        revoked.body.contains("share_link_invalid"),
        "{}",
        revoked.body
    );
    let again = on_host(&host, "GET", share_target(&host, &day_url)?, &[])?;
    expect(&again, 403, "the revoked link")?;
    say("a share link: opened with no account; revoked: 403 for its cookie and the link");

    // The 10 s link, expired: the link and its cookie open nothing.
    let left = Duration::from_secs(11).saturating_sub(short_made.elapsed());
    tokio::time::sleep(left).await;
    let expired = on_host(&host, "GET", share_target(&host, &short_url)?, &[])?;
    expect(&expired, 403, "the expired link")?;
    let expired_cookie = hello(&short_cookie)?;
    ensure!(
        matches!(expired_cookie.status, 401 | 403),
        "the expired link's cookie: {} {}",
        expired_cookie.status,
        expired_cookie.body
    );
    say("the 10 s link, expired: 403, and its cookie is refused");

    let audit = admin.call("GET", "/api/admin/audit?limit=200", None)?;
    expect(&audit, 200, "the audit log")?;
    for action in [
        "preview.share",
        "preview.unshare",
        "preview.link",
        "preview.unlink",
    ] {
        ensure!(audit.body.contains(action), "the audit log lacks {action}");
    }
    say("the audit log has preview.share, unshare, link and unlink");
    Ok(())
}

/// A WebSocket open through a share link is cut when the link is revoked (not only its next
/// request refused), and a disabled owner's links open nothing and their sockets are cut.
async fn socket_cut_when_shares_end(
    owner: &Client,
    admin: &Client,
    id: &str,
) -> anyhow::Result<()> {
    let ws_host = format!("p{WS_APP}-{id}.{SITE}");
    let links_path = format!("/api/sessions/{id}/ports/{WS_APP}/links");
    let origin = format!("https://{ws_host}");
    let owner_name = "owner";
    for (ending, after) in [
        ("revoked", "the link was revoked"),
        ("owner disabled", "the owner was disabled"),
    ] {
        let link = owner.call("POST", &links_path, Some("{}"))?;
        expect(&link, 201, "a share link to the WebSocket app")?;
        let link = link.json()?;
        let link_id = link["id"].as_str().context("the link's id")?.to_owned();
        let url = link["url"].as_str().context("the link's url")?.to_owned();
        let cookie = trade_link(&ws_host, &url)?;
        let mut request = format!("ws://{ws_host}/hmr").into_client_request()?;
        request.headers_mut().insert("Cookie", cookie.parse()?);
        request.headers_mut().insert("Origin", origin.parse()?);
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", PORT)).await?;
        let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .context("the WebSocket handshake through a share link")?;
        ws.send(Message::text("before")).await?;
        let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .context("no echo within 10 s")?
            .context("closed")??;
        ensure!(
            reply.to_text()? == "echo:before",
            "the echo through the link: {reply:?}"
        );
        let started = Instant::now();
        match ending {
            "revoked" => expect(
                &owner.call("DELETE", &format!("{links_path}/{link_id}"), None)?,
                204,
                "revoke the link",
            )?,
            _ => expect(
                &admin.call(
                    "POST",
                    &format!("/api/admin/users/{owner_name}/disable"),
                    None,
                )?,
                200,
                "disable the owner",
            )?,
        }
        // The socket ends (closed, reset or a close frame) without the browser doing anything.
        let cut = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match ws.next().await {
                    None | Some(Err(_) | Ok(Message::Close(_))) => break,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        ensure!(
            cut.is_ok(),
            "the socket through the link stayed open once {ending}"
        );
        let refused = on_host(&ws_host, "GET", "/", &[("Cookie", &cookie)])?;
        expect(&refused, 403, &format!("the link's cookie once {ending}"))?;
        say(format!(
            "a WebSocket open through a share link was cut {} ms after {after}; its cookie is refused (403)",
            started.elapsed().as_millis()
        ));
    }
    expect(
        &admin.call(
            "POST",
            &format!("/api/admin/users/{owner_name}/enable"),
            None,
        )?,
        200,
        "enable the owner again",
    )?;
    Ok(())
}

/// The path and query of a share link on its host.
fn share_target<'a>(host: &str, url: &'a str) -> anyhow::Result<&'a str> {
    url.strip_prefix(&format!("https://{host}"))
        .with_context(|| format!("a link to another host: {url}"))
}

/// A browser with no account opens a share link: the host's cookie (`name=value`).
fn trade_link(host: &str, url: &str) -> anyhow::Result<String> {
    let traded = on_host(host, "GET", share_target(host, url)?, &[])?;
    expect(&traded, 303, "the share link's trade")?;
    ensure!(
        traded.header("location") == Some("/"),
        "the link goes on to {:?}",
        traded.header("location")
    );
    let set = traded.header("set-cookie").context("the link's cookie")?;
    ensure!(
        set.starts_with("__Host-octo_content=") && set.contains("HttpOnly"),
        "{set}"
    );
    Ok(set.split(';').next().unwrap_or_default().to_owned())
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

/// The owner's way into the preview of `port`: `open`, then the ticket traded on the
/// preview's host; the host's cookie (`name=value`).
fn open(owner: &Client, id: &str, port: u16, path: &str) -> anyhow::Result<String> {
    let answer = owner.call(
        "GET",
        &format!(
            "/api/sessions/{id}/ports/{port}/open?path={}",
            path.replace('/', "%2F")
        ),
        None,
    )?;
    expect(&answer, 303, &format!("open of port {port}"))?;
    let location = answer.header("location").context("open's location")?;
    let host = format!("p{port}-{id}.{SITE}");
    let ticket = location
        .strip_prefix(&format!("https://{host}"))
        .with_context(|| format!("open went elsewhere: {location}"))?;
    let traded = on_host(&host, "GET", ticket, &[])?;
    expect(&traded, 303, "the ticket's trade")?;
    ensure!(
        traded.header("location") == Some(path),
        "the trade goes on to {:?}",
        traded.header("location")
    );
    let set = traded.header("set-cookie").context("the host's cookie")?;
    ensure!(
        set.starts_with("__Host-octo_content=")
            && set.contains("HttpOnly")
            && set.contains("Secure"),
        "{set}"
    );
    Ok(set.split(';').next().unwrap_or_default().to_owned())
}

/// `octod_proxy_preview_tunnels_total{how="<how>"}` in octod's `/metrics`.
fn tunnels(metrics: &str, how: &str) -> u64 {
    let prefix = format!("octod_proxy_preview_tunnels_total{{how=\"{how}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

/// A request to octod as Caddy forwards one for a content host: that `Host`.
fn on_host(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", PORT))
        .with_context(|| format!("connecting to 127.0.0.1:{PORT}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    util::parse_answer(&raw)
}

/// One text message through a WebSocket to `host`'s `/hmr` with `cookie`, sent from a page of
/// `origin`; the answer.
async fn websocket(host: &str, cookie: &str, origin: &str, text: &str) -> anyhow::Result<String> {
    let mut request = format!("ws://{host}/hmr").into_client_request()?;
    request.headers_mut().insert("Cookie", cookie.parse()?);
    request.headers_mut().insert("Origin", origin.parse()?);
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", PORT)).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .context("the WebSocket handshake through the preview")?;
    ws.send(Message::text(text)).await?;
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .context("no echo within 10 s")?
        .context("closed")??;
    let _ = ws.close(None).await;
    Ok(reply.into_text()?.as_str().to_owned())
}
