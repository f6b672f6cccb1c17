//! The session gateway over real sockets: early refusals that reach a client still sending,
//! serving on a Unix socket, and the relays to a stand-in opencode (HTTP, SSE) and a
//! WebSocket echo on a Unix socket standing in for ttyd (the same upgrade and framing).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use fileserver::{Config, Relays, Token};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::util::{Resp, Server, TOKEN, parse_response};

// ---------------------------------------------------------------------------------------
// Refusals that arrive (issue 13, item 5).

/// Sends `head` with a `Content-Length` far larger than what follows, then body bytes slowly
/// (like a browser uploading over a slow link) while reading the answer. The answer must
/// arrive, complete and followed by a clean end of stream (no reset), within a second.
/// `conn` and `writer` are the two ends of one connection (`try_clone`), TCP or Unix.
#[track_caller]
fn check_refusal(
    mut conn: impl Read + Write,
    mut writer: impl Write + Send + 'static,
    head: &str,
    expected_status: u16,
    expected_code: &str,
) {
    conn.write_all(head.as_bytes()).expect("head");
    let sending = std::thread::spawn(move || {
        let chunk = vec![b'x'; 16 * 1024];
        let start = Instant::now();
        let mut sent = 0usize;
        while start.elapsed() < Duration::from_secs(2) {
            if writer.write_all(&chunk).is_err() {
                return (sent, false);
            }
            sent += chunk.len();
            std::thread::sleep(Duration::from_millis(5));
        }
        (sent, true)
    });
    let start = Instant::now();
    let mut raw = Vec::new();
    let read = conn.read_to_end(&mut raw);
    let took = start.elapsed();
    let (sent, kept_sending) = sending.join().expect("sender");
    assert!(
        read.is_ok(),
        "the answer ended in {read:?} after {} bytes: {:?}",
        raw.len(),
        String::from_utf8_lossy(&raw)
    );
    assert!(took < Duration::from_secs(1), "answer took {took:?}");
    let resp = parse_response(&raw, false);
    resp.assert_error(expected_status, expected_code);
    // The gateway read (and dropped) what came after its answer instead of resetting.
    assert!(kept_sending, "the upload was cut off after {sent} bytes");
}

fn tcp(server: &Server) -> (std::net::TcpStream, std::net::TcpStream) {
    let conn = std::net::TcpStream::connect(server.addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let writer = conn.try_clone().expect("clone");
    (conn, writer)
}

fn upload_head(path: &str, token: &str, length: u64) -> String {
    format!(
        "PUT {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[test]
fn an_oversized_upload_gets_its_413_while_still_sending() {
    let server = Server::with_limit(1 << 20);
    let (conn, writer) = tcp(&server);
    check_refusal(
        conn,
        writer,
        &upload_head("/api/upload?path=big", TOKEN, 100 << 20),
        413,
        "payload_too_large",
    );
    assert!(!server.root().join("big").exists());
}

#[test]
fn a_401_or_404_before_the_body_is_read_arrives_too() {
    let server = Server::with_limit(1 << 30);
    let (conn, writer) = tcp(&server);
    check_refusal(
        conn,
        writer,
        &upload_head("/api/upload?path=big", "wrong-token", 100 << 20),
        401,
        "unauthorized",
    );
    let (conn, writer) = tcp(&server);
    check_refusal(
        conn,
        writer,
        &upload_head("/api/nothing-here", TOKEN, 100 << 20),
        404,
        "no_route",
    );
}

// ---------------------------------------------------------------------------------------
// The gateway on a Unix socket, with relays.

/// A gateway on a Unix socket in a temp dir, a stand-in opencode on the loopback and a
/// WebSocket echo on a Unix socket; all on one runtime owned by the fixture.
struct Gateway {
    socket: PathBuf,
    opencode: SocketAddr,
    terminal: PathBuf,
    events: Arc<tokio::sync::Notify>,
    tmp: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

impl Gateway {
    /// `opencode_up`: whether the stand-in opencode listens from the start.
    fn start(opencode_up: bool, wait: Duration) -> Gateway {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("root")).expect("root");
        std::fs::write(tmp.path().join("root/hello.txt"), "hi").expect("write");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let socket = tmp.path().join("gateway.sock");
        let terminal = tmp.path().join("ttyd.sock");
        let events = Arc::new(tokio::sync::Notify::new());
        let opencode = free_port();
        if opencode_up {
            rt.block_on(start_opencode(opencode, events.clone()));
        }
        start_ws_echo(&rt, &terminal);
        let listener = {
            let _guard = rt.enter();
            tokio::net::UnixListener::bind(&socket).expect("bind")
        };
        let config = Config {
            root: tmp.path().join("root"),
            token: Token::new(TOKEN).expect("token"),
            max_upload_bytes: 1 << 30,
            shutdown_grace: Duration::from_secs(1),
            watch_max_dirs: fileserver::watcher::DEFAULT_MAX_DIRS,
        };
        let relays = Relays {
            opencode: Some(opencode),
            terminal_socket: Some(terminal.clone()),
            wait,
            previews: Some(fileserver::preview::Previews::new(vec![opencode.port()])),
        };
        rt.spawn(async move {
            fileserver::serve_gateway(listener, config, relays, std::future::pending())
                .await
                .expect("serve");
        });
        Gateway {
            socket,
            opencode,
            terminal,
            events,
            tmp,
            rt,
        }
    }

    fn connect(&self) -> UnixStream {
        let conn = UnixStream::connect(&self.socket).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        conn
    }

    /// One request with `Connection: close` (plus `extra` headers), the whole answer read.
    fn request(
        &self,
        method: &str,
        target: &str,
        token: Option<&str>,
        extra: &str,
        body: &[u8],
    ) -> Resp {
        let mut conn = self.connect();
        conn.write_all(head(method, target, token, extra, body.len()).as_bytes())
            .expect("head");
        conn.write_all(body).expect("body");
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).expect("answer");
        parse_response(&raw, method == "HEAD")
    }
}

fn head(method: &str, target: &str, token: Option<&str>, extra: &str, length: usize) -> String {
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "{method} {target} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n{auth}{extra}Content-Length: {length}\r\n\r\n"
    )
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

/// The stand-in opencode: `/global/health` reports what it received; `/echo` returns the
/// body; `/event` is an SSE stream whose second event waits for `events`.
async fn start_opencode(addr: SocketAddr, events: Arc<tokio::sync::Notify>) {
    async fn seen(request: Request) -> axum::Json<serde_json::Value> {
        let h = request.headers();
        axum::Json(serde_json::json!({
            "target": request.uri().to_string(),
            "authorization": h.get(header::AUTHORIZATION).is_some(),
            "x_hop": h.get("x-hop").is_some(),
            "x_kept": h.get("x-kept").is_some(),
        }))
    }
    async fn echo(body: Body) -> impl IntoResponse {
        let bytes = axum::body::to_bytes(body, 64 << 20).await.expect("body");
        (StatusCode::CREATED, bytes)
    }
    let sse = move || {
        let events = events.clone();
        async move {
            let stream = futures_util::stream::unfold(0u8, move |n| {
                let events = events.clone();
                async move {
                    match n {
                        0 => Some((Ok::<_, std::io::Error>("data: one\n\n"), 1)),
                        1 => {
                            events.notified().await;
                            Some((Ok("data: two\n\n"), 2))
                        }
                        _ => None,
                    }
                }
            });
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                "text/event-stream".parse().expect("v"),
            );
            (headers, Body::from_stream(stream))
        }
    };
    let app = axum::Router::new()
        .route("/global/health", get(seen))
        .route("/echo", any(echo))
        .route("/event", get(sse));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind opencode");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("opencode") });
}

/// The stand-in ttyd: a WebSocket echo on a Unix socket that accepts only `/ws` without the
/// gateway's `Authorization`, and answers every message with `echo:` + the message.
fn start_ws_echo(rt: &tokio::runtime::Runtime, path: &Path) {
    let listener = {
        let _guard = rt.enter();
        tokio::net::UnixListener::bind(path).expect("bind ttyd")
    };
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, ttyd_handshake).await
                else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    let reply = match message {
                        Message::Text(t) => Message::text(format!("echo:{}", t.as_str())),
                        Message::Binary(b) => {
                            let mut v = b"echo:".to_vec();
                            v.extend_from_slice(&b);
                            Message::binary(v)
                        }
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    if ws.send(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// The stand-in ttyd's handshake: only `/ws`, never the gateway's credential; answers with
/// ttyd's subprotocol. (The signature is tungstenite's callback's.)
#[allow(clippy::result_large_err)]
fn ttyd_handshake(
    request: &tokio_tungstenite::tungstenite::handshake::server::Request,
    mut response: tokio_tungstenite::tungstenite::handshake::server::Response,
) -> Result<
    tokio_tungstenite::tungstenite::handshake::server::Response,
    tokio_tungstenite::tungstenite::handshake::server::ErrorResponse,
> {
    if request.uri().path() == "/ws" && request.headers().get(header::AUTHORIZATION).is_none() {
        response
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "tty".parse().expect("v"));
        Ok(response)
    } else {
        let mut refusal = tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(
            Some("wrong path or leaked credential".to_owned()),
        );
        *refusal.status_mut() = StatusCode::FORBIDDEN;
        Err(refusal)
    }
}

#[test]
fn the_file_api_answers_on_a_unix_socket() {
    let gw = Gateway::start(true, Duration::from_secs(5));
    let r = gw.request("GET", "/api/list", Some(TOKEN), "", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["entries"][0]["name"], "hello.txt");
    gw.request("GET", "/api/list", None, "", b"")
        .assert_error(401, "unauthorized");
    assert_eq!(gw.request("GET", "/health", None, "", b"").status, 200);
}

#[test]
fn refusals_arrive_on_a_unix_socket_too() {
    let gw = Gateway::start(true, Duration::from_secs(5));
    let conn = gw.connect();
    let writer = conn.try_clone().expect("clone");
    check_refusal(
        conn,
        writer,
        &upload_head("/api/upload?path=big", "wrong-token", 100 << 20),
        401,
        "unauthorized",
    );
    let conn = gw.connect();
    let writer = conn.try_clone().expect("clone");
    check_refusal(
        conn,
        writer,
        &upload_head("/opencode/session", "wrong-token", 100 << 20),
        401,
        "unauthorized",
    );
}

#[test]
fn opencode_is_relayed_without_the_prefix_the_credential_or_hop_headers() {
    let gw = Gateway::start(true, Duration::from_secs(5));
    let r = gw.request(
        "GET",
        "/opencode/global/health?directory=%2Fhome%2Fdev",
        Some(TOKEN),
        "Connection: x-hop\r\nX-Hop: 1\r\nX-Kept: 1\r\n",
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({
            "target": "/global/health?directory=%2Fhome%2Fdev",
            "authorization": false,
            "x_hop": false,
            "x_kept": true,
        })
    );
    // The same bearer check as the file API; nothing reaches opencode without it.
    gw.request("GET", "/opencode/global/health", None, "", b"")
        .assert_error(401, "unauthorized");
    gw.request("GET", "/opencode/global/health", Some("nope"), "", b"")
        .assert_error(401, "unauthorized");
    // Bodies go through whole, both ways.
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let r = gw.request("POST", "/opencode/echo", Some(TOKEN), "", &body);
    assert_eq!(r.status, 201);
    assert!(
        r.body == body,
        "echoed body differs ({} bytes)",
        r.body.len()
    );
}

#[test]
fn opencode_events_stream_as_they_come() {
    let gw = Gateway::start(true, Duration::from_secs(5));
    let mut conn = gw.connect();
    conn.write_all(
        head(
            "GET",
            "/opencode/event",
            Some(TOKEN),
            "Accept: text/event-stream\r\n",
            0,
        )
        .as_bytes(),
    )
    .expect("head");
    let mut seen = Vec::new();
    let mut read_until = |needle: &str| {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = conn.read(&mut buf).expect("the event arrived unbuffered");
            assert!(n > 0, "stream ended before {needle:?}");
            seen.extend_from_slice(&buf[..n]);
        }
    };
    read_until("data: one");
    // The second event exists only once the first has reached the client.
    gw.events.notify_one();
    read_until("data: two");
    let text = String::from_utf8_lossy(&seen).to_lowercase();
    assert!(text.contains("content-type: text/event-stream"), "{text}");
}

#[test]
fn opencode_requests_wait_for_it_to_start_then_get_through() {
    let gw = Gateway::start(false, Duration::from_secs(10));
    let (opencode, events) = (gw.opencode, gw.events.clone());
    let handle = gw.rt.handle().clone();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        handle.block_on(start_opencode(opencode, events));
    });
    let start = Instant::now();
    let r = gw.request("GET", "/opencode/global/health", Some(TOKEN), "", b"");
    late.join().expect("late start");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(start.elapsed() >= Duration::from_millis(400));
}

/// A stand-in for opencode's start: it accepts connections at once but never answers those
/// made in the first `mute`; later ones get `200 ok`.
async fn start_mute_then_serving(addr: SocketAddr, mute: Duration) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let started = Instant::now();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let muted = started.elapsed() < mute;
            tokio::spawn(async move {
                if muted {
                    // Held open, never answered (as opencode does).
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                let mut seen = Vec::new();
                let mut buf = [0_u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
}

#[test]
fn opencode_is_probed_until_it_serves_so_no_request_hangs_on_its_start() {
    let gw = Gateway::start(false, Duration::from_secs(10));
    let mute = Duration::from_millis(800);
    gw.rt.block_on(start_mute_then_serving(gw.opencode, mute));
    let start = Instant::now();
    let r = gw.request("GET", "/opencode/global/health", Some(TOKEN), "", b"");
    let took = start.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "ok");
    assert!(took >= mute && took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn opencode_not_answering_in_time_is_a_503_with_retry_after() {
    let gw = Gateway::start(false, Duration::from_secs(1));
    let start = Instant::now();
    let r = gw.request("POST", "/opencode/session", Some(TOKEN), "", b"{}");
    let took = start.elapsed();
    r.assert_error(503, "upstream_unavailable");
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

fn ws_request(token: Option<&str>) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = "ws://gateway/terminal"
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "tty".parse().expect("v"));
    if let Some(t) = token {
        request.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {t}").parse().expect("v"),
        );
    }
    request
}

#[test]
fn the_terminal_websocket_is_spliced_to_the_unix_socket() {
    let gw = Gateway::start(true, Duration::from_secs(5));
    assert!(gw.terminal.exists());
    gw.rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(&gw.socket)
            .await
            .expect("connect");
        let (mut ws, response) = tokio_tungstenite::client_async(ws_request(Some(TOKEN)), stream)
            .await
            .expect("handshake through the gateway");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        ws.send(Message::text("ls -l")).await.expect("send");
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("reply in time")
            .expect("open")
            .expect("frame");
        assert_eq!(reply, Message::text("echo:ls -l"));
        let big = vec![7u8; 1 << 20];
        ws.send(Message::binary(big.clone())).await.expect("send");
        let reply = ws.next().await.expect("open").expect("frame");
        assert_eq!(reply.into_data().len(), big.len() + 5);
        ws.close(None).await.expect("close");
    });
    // Without the token the upgrade is refused before anything reaches the terminal.
    let refused = gw.rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(&gw.socket)
            .await
            .expect("connect");
        tokio_tungstenite::client_async(ws_request(None), stream).await
    });
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    // A plain GET is not an upgrade.
    gw.request("GET", "/terminal", Some(TOKEN), "", b"")
        .assert_error(400, "bad_request");
    drop(gw.tmp);
}

/// A stand-in for opencode busy starting: it listens but never accepts, and its accept queue
/// is full, so the kernel drops new SYNs and a plain connect() would wait through its
/// retransmissions for minutes. Returns the queued connections (kept open).
fn listening_but_full(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
) -> (tokio::net::TcpListener, Vec<std::net::TcpStream>) {
    let listener = {
        let _guard = rt.enter();
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuse");
        socket.bind(addr).expect("bind");
        socket.listen(0).expect("listen")
    };
    let mut queued = Vec::new();
    while let Ok(stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
        queued.push(stream);
        assert!(queued.len() < 64, "the accept queue never filled");
    }
    (listener, queued)
}

#[test]
fn opencode_that_accepts_nothing_is_a_503_in_time_not_a_hang() {
    let gw = Gateway::start(false, Duration::from_secs(2));
    let _full = listening_but_full(&gw.rt, gw.opencode);
    // The request's read timeout is 10 s: a connect() left to the kernel's SYN retries
    // would not answer within it.
    let r = gw.request("GET", "/opencode/global/health", Some(TOKEN), "", b"");
    r.assert_error(503, "upstream_unavailable");
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
}

// ---------------------------------------------------------------------------------------
// Previews: the apps a session runs (issue 14).

/// A stand-in app on the loopback: `/seen` reports what reached it.
async fn start_app(addr: SocketAddr) {
    async fn seen(request: Request) -> axum::Json<serde_json::Value> {
        let h = request.headers();
        let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        axum::Json(serde_json::json!({
            "target": request.uri().to_string(),
            "host": text("host"),
            "authorization": h.get(header::AUTHORIZATION).is_some(),
            "cookie": text("cookie"),
        }))
    }
    let app = axum::Router::new().route("/seen", any(seen));
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind app");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("app") });
}

/// A WebSocket echo on the loopback, at any path (a dev server's hot reload).
async fn start_tcp_ws_echo(addr: SocketAddr) {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind echo");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(Message::Text(t))) = ws.next().await {
                    if ws
                        .send(Message::text(format!("echo:{}", t.as_str())))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
}

#[test]
fn previews_relay_an_apps_port_http_and_websocket() {
    let gw = Gateway::start(true, Duration::from_secs(5));
    let app = free_port();
    let echo = free_port();
    gw.rt.block_on(start_app(app));
    gw.rt.block_on(start_tcp_ws_echo(echo));

    let r = gw.request(
        "POST",
        &format!("/preview/{}/seen?x=%2F1", app.port()),
        Some(TOKEN),
        "Cookie: app=1\r\n",
        b"body",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({
            "target": "/seen?x=%2F1",
            "host": format!("127.0.0.1:{}", app.port()),
            "authorization": false,
            "cookie": "app=1",
        })
    );
    // Behind the same bearer check as everything else.
    gw.request(
        "GET",
        &format!("/preview/{}/seen", app.port()),
        None,
        "",
        b"",
    )
    .assert_error(401, "unauthorized");
    // The session's own services, ports outside 1024–65535, and a port nothing listens on.
    let opencode = gw.opencode.port();
    gw.request(
        "GET",
        &format!("/preview/{opencode}/"),
        Some(TOKEN),
        "",
        b"",
    )
    .assert_error(403, "permission_denied");
    for port in ["80", "0", "70000", "x"] {
        gw.request("GET", &format!("/preview/{port}/"), Some(TOKEN), "", b"")
            .assert_error(400, "bad_request");
    }
    let closed = free_port().port();
    gw.request("GET", &format!("/preview/{closed}"), Some(TOKEN), "", b"")
        .assert_error(502, "nothing_listening");

    // The listening ports, without opencode's (a reserved one).
    let listed = gw.request("GET", "/api/ports", Some(TOKEN), "", b"").json();
    let ports: Vec<u64> = listed["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["port"].as_u64())
        .collect();
    assert!(ports.contains(&u64::from(app.port())), "{listed}");
    assert!(ports.contains(&u64::from(echo.port())), "{listed}");
    assert!(!ports.contains(&u64::from(opencode)), "{listed}");

    // A WebSocket upgrade, spliced to the app.
    gw.rt.block_on(async {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://gateway/preview/{}/hmr?v=1", echo.port())
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {TOKEN}").parse().expect("v"),
        );
        let stream = tokio::net::UnixStream::connect(&gw.socket)
            .await
            .expect("connect");
        let (mut ws, response) = tokio_tungstenite::client_async(request, stream)
            .await
            .expect("handshake through the gateway");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        ws.send(Message::text("reload")).await.expect("send");
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("reply in time")
            .expect("open")
            .expect("frame");
        assert_eq!(reply, Message::text("echo:reload"));
        ws.close(None).await.expect("close");
    });
}

/// Reads one HTTP/1.1 answer with a `Content-Length` (or none: an empty body) from `conn`:
/// its head, then its body.
fn read_answer(conn: &mut UnixStream) -> (String, Vec<u8>) {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(
            conn.read(&mut byte).expect("read"),
            1,
            "closed in a head: {raw:?}"
        );
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).expect("utf-8 head");
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).expect("body");
    (head, body)
}

#[test]
fn a_tunnel_is_a_connection_to_the_app_for_many_requests() {
    let gw = Gateway::start(true, Duration::from_secs(5));
    let app = free_port();
    gw.rt.block_on(start_app(app));
    let tunnel = format!("/tunnel/{}", app.port());
    let upgrade = "Connection: upgrade\r\nUpgrade: octo-tunnel\r\n";

    // The refusals of the relay, and the probe's answer: port 0 is 400 on a gateway with
    // tunnels (one from before them answers 404 no_route).
    gw.request("GET", &tunnel, None, upgrade, b"")
        .assert_error(401, "unauthorized");
    gw.request("GET", "/tunnel/0", Some(TOKEN), "", b"")
        .assert_error(400, "bad_request");
    gw.request("GET", &tunnel, Some(TOKEN), "", b"")
        .assert_error(400, "bad_request");
    let opencode = gw.opencode.port();
    gw.request(
        "GET",
        &format!("/tunnel/{opencode}"),
        Some(TOKEN),
        upgrade,
        b"",
    )
    .assert_error(403, "permission_denied");
    let closed = free_port().port();
    gw.request(
        "GET",
        &format!("/tunnel/{closed}"),
        Some(TOKEN),
        upgrade,
        b"",
    )
    .assert_error(502, "nothing_listening");

    // The tunnel: 101, then HTTP to the app itself, request after request on one connection;
    // what the app sees is what the caller sent (the gateway adds and strips nothing).
    let mut conn = gw.connect();
    conn.write_all(
        format!(
            "GET {tunnel} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {TOKEN}\r\n{upgrade}\r\n"
        )
        .as_bytes(),
    )
    .expect("upgrade");
    let (head, _) = read_answer(&mut conn);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("x-octo-app: {app}")),
        "{head}"
    );
    for i in 0..3 {
        conn.write_all(
            format!(
                "POST /seen?i={i} HTTP/1.1\r\nHost: localhost:{}\r\nCookie: app=1\r\nContent-Length: 1\r\n\r\nx",
                app.port()
            )
            .as_bytes(),
        )
        .expect("request");
        let (head, body) = read_answer(&mut conn);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let seen: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            seen,
            serde_json::json!({
                "target": format!("/seen?i={i}"),
                "host": format!("localhost:{}", app.port()),
                "authorization": false,
                "cookie": "app=1",
            })
        );
    }
    // The caller closing its end closes the app's.
    conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).expect("end");
    assert!(rest.is_empty(), "{rest:?}");
}

/// Receives the one descriptor of an `SCM_RIGHTS` message on `conn`.
#[allow(unsafe_code)]
fn receive_fd(conn: &UnixStream) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};

    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let message = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg");
    let fd = message
        .cmsgs()
        .expect("cmsgs")
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .expect("a descriptor");
    // SAFETY: the kernel installed `fd` in this process for this message alone.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

#[test]
fn a_tunnel_hands_the_connection_to_the_app_over() {
    let gw = Gateway::start(true, Duration::from_secs(5));
    let app = free_port();
    gw.rt.block_on(start_app(app));

    let mut conn = gw.connect();
    conn.write_all(
        format!(
            "GET /tunnel/{} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {TOKEN}\r\n\
             Connection: upgrade\r\nUpgrade: octo-tunnel\r\nX-Octo-Tunnel: fd\r\n\r\n",
            app.port()
        )
        .as_bytes(),
    )
    .expect("upgrade");
    let (head, _) = read_answer(&mut conn);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("x-octo-tunnel: fd"),
        "{head}"
    );
    // Nothing comes before the caller's byte; then the connection itself, and the gateway
    // closes its end: it keeps no copy and takes no further part.
    conn.write_all(b"R").expect("ready");
    let mut tcp = std::net::TcpStream::from(receive_fd(&conn));
    assert_eq!(tcp.peer_addr().expect("peer"), app);
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).expect("end");
    assert!(rest.is_empty(), "{rest:?}");

    // The gateway's socket was non-blocking, and the open file is shared.
    tcp.set_nonblocking(false).expect("blocking");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    for i in 0..2 {
        tcp.write_all(
            format!(
                "GET /seen?i={i} HTTP/1.1\r\nHost: localhost:{}\r\n\r\n",
                app.port()
            )
            .as_bytes(),
        )
        .expect("request");
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).expect("head");
            raw.push(byte[0]);
        }
        let head = String::from_utf8(raw).expect("utf-8");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().expect("n"))
            })
            .expect("length");
        let mut body = vec![0u8; length];
        tcp.read_exact(&mut body).expect("body");
        let seen: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(seen["target"], format!("/seen?i={i}"));
    }
}

/// A stand-in app that answers every path with the address of the connection it came on.
async fn start_peer_app(addr: SocketAddr) {
    use axum::extract::ConnectInfo;
    async fn peer(ConnectInfo(from): ConnectInfo<SocketAddr>) -> String {
        from.to_string()
    }
    let app = axum::Router::new().fallback(peer);
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind app");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("app");
    });
}

#[test]
fn previews_keep_connections_to_an_app_and_find_it_again_when_it_restarts() {
    let gw = Gateway::start(true, Duration::from_secs(5));
    let port = free_port().port();
    // The app on the IPv4 loopback, in a runtime of its own: dropping it is the app dying.
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    first.block_on(start_peer_app(SocketAddr::from(([127, 0, 0, 1], port))));
    let path = format!("/preview/{port}/page");
    let peers: Vec<String> = (0..3)
        .map(|_| {
            let r = gw.request("GET", &path, Some(TOKEN), "", b"");
            assert_eq!(r.status, 200, "{}", r.text());
            r.text()
        })
        .collect();
    // The first request finds the app on a connection of its own; the later ones share one.
    assert_eq!(peers[1], peers[2], "{peers:?}");

    // The app dies and comes back on the IPv6 loopback: the next request finds it there.
    first.shutdown_timeout(Duration::from_secs(5));
    gw.request("GET", &path, Some(TOKEN), "", b"")
        .assert_error(502, "nothing_listening");
    gw.rt.block_on(start_peer_app(SocketAddr::from((
        std::net::Ipv6Addr::LOCALHOST,
        port,
    ))));
    let r = gw.request("GET", &path, Some(TOKEN), "", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().starts_with("[::1]:"), "{}", r.text());
    // A request with a body goes through the pool to the new address too.
    let again = gw.request("POST", &path, Some(TOKEN), "", b"x");
    assert_eq!(again.status, 200, "{}", again.text());
}
