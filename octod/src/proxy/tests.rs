//! The proxy over real sockets: a gateway stand-in on a Unix socket (an HTTP echo, a slow
//! large body, an SSE stream, a ttyd-like WebSocket echo at `/terminal`), the real session
//! gateway (`octo-fileserver` as a library, on its Unix socket, relaying to an opencode
//! stand-in on 127.0.0.1 and a ttyd stand-in on a Unix socket), the proxy's routes served on
//! a real listener, and real clients (hyper, tungstenite, raw TCP). The signed-in user comes
//! from a test header; the engine is an in-memory [`Sessions`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as WsRequest, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message};

use super::*;
use crate::identity::Role as UserRole;

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// Generous: any test that hangs (a buffering proxy deadlocks the lockstep tests) fails.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// The user: `x-test-user: alice` or `x-test-user: admin:root`; none is 401.

struct TestUser(CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for TestUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get("x-test-user")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let (role, name) = match value.strip_prefix("admin:") {
            Some(name) => (UserRole::Admin, name),
            None => (UserRole::User, value),
        };
        Ok(Self(CurrentUser {
            name: name.to_owned(),
            role,
        }))
    }
}

impl From<TestUser> for CurrentUser {
    fn from(user: TestUser) -> Self {
        user.0
    }
}

// ---------------------------------------------------------------------------------------
// The engine, in memory.

struct Entry {
    owner: &'static str,
    socket: PathBuf,
    /// A session that is not running: the proxy waits this long for its answer.
    wake: Option<Duration>,
    /// The owner's quota: (used, limit).
    quota: Option<(u64, u64)>,
}

#[derive(Default)]
struct MemSessions {
    sessions: HashMap<&'static str, Entry>,
    activity: AtomicUsize,
    /// Bytes uploaded through the proxy ([`Sessions::stored`]).
    stored: std::sync::atomic::AtomicU64,
}

impl Sessions for MemSessions {
    async fn resolve(
        &self,
        user: &CurrentUser,
        id: &SessionId,
        _service: Service,
    ) -> Result<Upstream, ApiError> {
        let entry = self
            .sessions
            .get(id.as_str())
            .filter(|e| user.may_access(e.owner))
            .ok_or_else(|| ApiError::not_found("no such session"))?;
        Ok(Upstream {
            socket: entry.socket.clone(),
            token: Secret::new(TOKEN.to_owned()),
            wake: entry.wake,
            quota: entry.quota,
        })
    }

    fn activity(&self, _id: &SessionId) {
        self.activity.fetch_add(1, Ordering::Relaxed);
    }

    fn stored(&self, _id: &SessionId, bytes: u64) {
        self.stored.fetch_add(bytes, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct TestState {
    proxy: Proxy,
    sessions: Arc<MemSessions>,
}

impl FromRef<TestState> for Proxy {
    fn from_ref(state: &TestState) -> Self {
        state.proxy.clone()
    }
}

impl FromRef<TestState> for Arc<MemSessions> {
    fn from_ref(state: &TestState) -> Self {
        Arc::clone(&state.sessions)
    }
}

// ---------------------------------------------------------------------------------------
// Bodies: a fixed pseudo-random pattern whose period (a prime) is no multiple of any chunk
// size, so lost, repeated or reordered bytes never line up again.

const PERIOD: usize = 1_048_573;
const CHUNK: usize = 64 * 1024;

fn pattern() -> &'static [u8] {
    static PATTERN: OnceLock<Vec<u8>> = OnceLock::new();
    PATTERN.get_or_init(|| {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[3]
            })
            .collect()
    })
}

/// `len` bytes of the endless pattern from `offset`.
fn chunk_at(offset: u64, len: usize) -> Bytes {
    let mut out = Vec::with_capacity(len);
    let mut at = usize::try_from(offset % PERIOD as u64).expect("small");
    while out.len() < len {
        let take = (len - out.len()).min(PERIOD - at);
        out.extend_from_slice(&pattern()[at..at + take]);
        at = 0;
    }
    Bytes::from(out)
}

/// Whether `data` is the pattern from `offset`.
fn matches_at(offset: u64, data: &[u8]) -> bool {
    let mut at = usize::try_from(offset % PERIOD as u64).expect("small");
    let mut rest = data;
    while !rest.is_empty() {
        let take = rest.len().min(PERIOD - at);
        if rest[..take] != pattern()[at..at + take] {
            return false;
        }
        rest = &rest[take..];
        at = 0;
    }
    true
}

/// A stream of `size` pattern bytes that counts what it produced, pausing once after the
/// first chunk until `gate` is notified (when given).
fn pattern_stream(
    size: u64,
    produced: Arc<AtomicU64>,
    gate: Option<Arc<Notify>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures_util::stream::unfold((0u64, gate), move |(offset, gate)| {
        let produced = Arc::clone(&produced);
        async move {
            if offset >= size {
                return None;
            }
            let gate = match gate {
                Some(gate) if offset > 0 => {
                    gate.notified().await;
                    None
                }
                gate => gate,
            };
            let len = usize::try_from((size - offset).min(CHUNK as u64)).expect("small");
            produced.fetch_add(len as u64, Ordering::SeqCst);
            Some((Ok(chunk_at(offset, len)), (offset + len as u64, gate)))
        }
    })
}

// ---------------------------------------------------------------------------------------
// The gateway stand-in: the file API's place at the root, opencode's under `/opencode`, the
// terminal at `/terminal`.

struct UpstreamState {
    /// Bytes of `/download` produced so far.
    download_produced: Arc<AtomicU64>,
    /// Lets `/download` go on after its first chunk.
    download_gate: Arc<Notify>,
    /// `/upload` got its first chunk.
    upload_started: Notify,
    /// Lets `/upload` read on after its first chunk.
    upload_gate: Notify,
    /// Lets `/events` send its next event.
    sse_gate: Arc<Notify>,
    /// What the terminal saw.
    ws_events: mpsc::UnboundedSender<WsEvent>,
}

impl UpstreamState {
    fn new(ws_events: mpsc::UnboundedSender<WsEvent>) -> Self {
        Self {
            download_produced: Arc::default(),
            download_gate: Arc::default(),
            upload_started: Notify::new(),
            upload_gate: Notify::new(),
            sse_gate: Arc::default(),
            ws_events,
        }
    }
}

fn upstream_router(state: Arc<UpstreamState>) -> Router {
    Router::new()
        .route("/download", axum::routing::get(download))
        .route("/upload", axum::routing::put(upload))
        .route("/opencode/events", axum::routing::get(events))
        .route("/hostile", axum::routing::get(hostile))
        .route("/terminal", axum::routing::get(gateway_terminal))
        .fallback(echo)
        .with_state(state)
}

/// Serves `app` on a new Unix socket at `path`.
fn serve_unix(path: &Path, app: Router) {
    let listener = UnixListener::bind(path).expect("bind");
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// Answers with what arrived, and with headers that must not reach the browser.
async fn echo(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in &headers {
        seen.entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let body = serde_json::json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": seen,
    });
    (
        [
            ("set-cookie", "container=1; Path=/"),
            ("www-authenticate", "Basic realm=\"opencode\""),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("x-unknown", "yes"),
        ],
        axum::Json(body),
    )
        .into_response()
}

/// A page a prompt-injected agent would serve: HTML that asks for a service worker over the
/// whole origin, a redirect, wiped site data, CORS, and a policy of its own.
async fn hostile() -> Response {
    (
        [
            ("content-type", "text/html; charset=utf-8"),
            ("service-worker-allowed", "/"),
            ("refresh", "0; url=https://evil.example/"),
            ("clear-site-data", "\"cookies\", \"storage\""),
            ("access-control-allow-origin", "https://evil.example"),
            ("access-control-allow-credentials", "true"),
            ("content-security-policy", "script-src *"),
            ("content-disposition", "inline; filename=\"r.html\""),
            ("etag", "\"v1\""),
        ],
        "<script src=x.js></script>",
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct Size {
    size: u64,
}

async fn download(
    State(state): State<Arc<UpstreamState>>,
    axum::extract::Query(Size { size }): axum::extract::Query<Size>,
) -> Response {
    let stream = pattern_stream(
        size,
        Arc::clone(&state.download_produced),
        Some(Arc::clone(&state.download_gate)),
    );
    Body::from_stream(stream).into_response()
}

async fn upload(State(state): State<Arc<UpstreamState>>, body: Body) -> Response {
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    let mut intact = true;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        intact &= matches_at(received, &chunk);
        if received == 0 {
            state.upload_started.notify_one();
            state.upload_gate.notified().await;
        }
        received += chunk.len() as u64;
    }
    axum::Json(serde_json::json!({"received": received, "intact": intact})).into_response()
}

async fn events(State(state): State<Arc<UpstreamState>>) -> Response {
    let gate = Arc::clone(&state.sse_gate);
    let stream = futures_util::stream::unfold(0u32, move |n| {
        let gate = Arc::clone(&gate);
        async move {
            if n == 3 {
                return None;
            }
            if n > 0 {
                gate.notified().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let event = format!("event: tick\ndata: {n}\n\n");
            Some((Ok::<_, std::io::Error>(Bytes::from(event)), n + 1))
        }
    });
    (
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// The upstream terminal: ttyd's handshake rules, an echo, and commands to ping and close.

#[derive(Debug, PartialEq)]
enum WsEvent {
    First(Message),
    Ping(Bytes),
    Close(Option<CloseFrame>),
}

/// The gateway's `/terminal` as the proxy sees it: the session's bearer token and
/// subprotocol `tty` are demanded, then the WebSocket is served here.
async fn gateway_terminal(
    State(state): State<Arc<UpstreamState>>,
    mut request: axum::extract::Request,
) -> Response {
    let headers = request.headers();
    let authorized = headers
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == format!("Bearer {TOKEN}").as_bytes());
    let tty = headers
        .get("sec-websocket-protocol")
        .is_some_and(|v| v == "tty");
    let Some(key) = headers.get("sec-websocket-key").cloned() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if !authorized || !tty {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let events = state.ws_events.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let socket = WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        terminal_echo(socket, events).await;
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            ("connection", "upgrade".to_owned()),
            ("upgrade", "websocket".to_owned()),
            ("sec-websocket-protocol", "tty".to_owned()),
            ("sec-websocket-accept", derive_accept_key(key.as_bytes())),
        ],
    )
        .into_response()
}

/// ttyd on its Unix socket behind the real gateway: `/ws`, subprotocol `tty`, no credential.
async fn ttyd(listener: UnixListener, events: mpsc::UnboundedSender<WsEvent>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let events = events.clone();
        tokio::spawn(async move {
            // tungstenite's callback signature fixes the error type.
            #[allow(clippy::result_large_err)]
            let check = |request: &WsRequest, mut response: WsResponse| {
                let tty = request
                    .headers()
                    .get("sec-websocket-protocol")
                    .is_some_and(|v| v == "tty");
                if !tty || request.uri().path() != "/ws" {
                    let mut refused = ErrorResponse::new(Some("refused".to_owned()));
                    *refused.status_mut() = StatusCode::BAD_REQUEST;
                    return Err(refused);
                }
                response
                    .headers_mut()
                    .insert("sec-websocket-protocol", "tty".parse().expect("value"));
                Ok(response)
            };
            if let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, check).await {
                terminal_echo(socket, events).await;
            }
        });
    }
}

/// A terminal: echoes data, reports the first data message, pings and closes on command.
async fn terminal_echo<S>(mut socket: WebSocketStream<S>, events: mpsc::UnboundedSender<WsEvent>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut first = true;
    while let Some(Ok(message)) = socket.next().await {
        if first && (message.is_text() || message.is_binary()) {
            first = false;
            let _ = events.send(WsEvent::First(message.clone()));
        }
        match message {
            Message::Text(text) if text.as_str() == "ping-me" => {
                let _ = socket.send(Message::Ping(Bytes::from_static(b"hb"))).await;
            }
            Message::Text(text) if text.as_str() == "close-me" => {
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Library(4002),
                        reason: "done".into(),
                    })))
                    .await;
            }
            Message::Text(_) | Message::Binary(_) => {
                let _ = socket.send(message).await;
            }
            Message::Ping(payload) => {
                let _ = events.send(WsEvent::Ping(payload));
            }
            Message::Close(frame) => {
                let _ = events.send(WsEvent::Close(frame));
            }
            Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// The fixture: upstreams, the proxy on a real listener, a client.

struct Fixture {
    addr: SocketAddr,
    upstream: Arc<UpstreamState>,
    ws_events: mpsc::UnboundedReceiver<WsEvent>,
    proxy: Proxy,
    sessions: Arc<MemSessions>,
    client: Client<HttpConnector, Body>,
    /// The sockets; removed with the fixture.
    _dir: tempfile::TempDir,
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// How long the fixture's proxy waits for a running session's response head.
const HEAD_WAIT: Duration = Duration::from_secs(2);
/// How long the fixture's proxy waits for a waking session's response head.
const WAKE_WAIT: Duration = Duration::from_millis(300);
/// The real gateway's upload limit.
const GATEWAY_UPLOAD_LIMIT: u64 = MIB;

async fn fixture() -> Fixture {
    fixture_with_head_wait(HEAD_WAIT).await
}

/// The fixture with another head wait: a test whose upstream answers only after a large body
/// must not meet the short one on a loaded machine.
async fn fixture_with_head_wait(head_wait: Duration) -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (events_tx, ws_events) = mpsc::unbounded_channel();
    let upstream = Arc::new(UpstreamState::new(events_tx.clone()));
    let stand_in = dir.path().join("stand-in.sock");
    serve_unix(&stand_in, upstream_router(Arc::clone(&upstream)));

    // A socket that accepts connections and never answers (a session whose service does not
    // come up, or hangs).
    let silent = dir.path().join("silent.sock");
    let silent_listener = UnixListener::bind(&silent).expect("bind");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent_listener.accept().await {
            held.push(conn);
        }
    });

    let gateway = real_gateway(dir.path(), events_tx).await;
    let nothing = dir.path().join("nothing.sock");
    // A gateway from before tunnels: its preview relay, and `404` for `/tunnel/…`.
    let elder = dir.path().join("elder.sock");
    serve_unix(
        &elder,
        Router::new()
            .route("/preview/{*rest}", axum::routing::any(echo))
            .fallback(|| async { StatusCode::NOT_FOUND }),
    );

    let mut sessions = MemSessions::default();
    for (id, owner, socket, wake, quota) in [
        ("alpha", "alice", &stand_in, None, None),
        ("bravo", "bob", &stand_in, None, None),
        ("sleepy", "alice", &silent, Some(WAKE_WAIT), None),
        ("hung", "alice", &silent, None, None),
        ("gone", "alice", &nothing, None, None),
        ("unborn", "alice", &nothing, Some(WAKE_WAIT), None),
        ("real", "alice", &gateway, None, Some((0, 1000))),
        ("elder", "alice", &elder, None, None),
    ] {
        sessions.sessions.insert(
            id,
            Entry {
                owner,
                socket: socket.clone(),
                wake,
                quota,
            },
        );
    }
    let sessions = Arc::new(sessions);
    let proxy = Proxy::new()
        .with_terminal_keepalive(KEEPALIVE)
        .with_head_timeout(head_wait);
    let state = TestState {
        proxy: proxy.clone(),
        sessions: Arc::clone(&sessions),
    };
    let app = routes_with_user::<TestState, MemSessions, TestUser>().with_state(state);
    let front = listener().await;
    let addr = front.local_addr().expect("address");
    // Served as `octod serve` serves a TCP listener with no trusted proxy.
    let front =
        crate::http::peer::HttpListener::tcp(front, crate::http::peer::TrustedProxies::default());
    tokio::spawn(async move {
        axum::serve(
            front,
            app.into_make_service_with_connect_info::<crate::http::peer::ClientPeer>(),
        )
        .await
    });
    Fixture {
        addr,
        upstream,
        ws_events,
        proxy,
        sessions,
        client: Client::builder(TokioExecutor::new()).build_http(),
        _dir: dir,
    }
}

/// The real session gateway on `dir/gateway.sock`: the file API over `dir/root` (uploads up to
/// [`GATEWAY_UPLOAD_LIMIT`]), `/opencode/…` relayed to an echo on 127.0.0.1, `/terminal` to a
/// ttyd stand-in on `dir/ttyd.sock`. Returns the socket.
async fn real_gateway(dir: &Path, events: mpsc::UnboundedSender<WsEvent>) -> PathBuf {
    let opencode = listener().await;
    let opencode_addr = opencode.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(opencode, Router::new().fallback(echo)).await });
    let ttyd_socket = dir.join("ttyd.sock");
    tokio::spawn(ttyd(
        UnixListener::bind(&ttyd_socket).expect("bind"),
        events,
    ));

    let root = dir.join("root");
    std::fs::create_dir(&root).expect("root");
    let socket = dir.join("gateway.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    let config = fileserver::Config {
        root,
        token: fileserver::Token::new(TOKEN).expect("token"),
        max_upload_bytes: GATEWAY_UPLOAD_LIMIT,
        shutdown_grace: Duration::from_secs(1),
        watch_max_dirs: fileserver::watcher::DEFAULT_MAX_DIRS,
    };
    let relays = fileserver::Relays {
        opencode: Some(opencode_addr),
        terminal_socket: Some(ttyd_socket),
        wait: Duration::from_secs(1),
        previews: Some(fileserver::preview::Previews::new(vec![
            opencode_addr.port(),
        ])),
    };
    tokio::spawn(async move {
        fileserver::serve_gateway(listener, config, relays, std::future::pending()).await
    });
    socket
}

impl Fixture {
    fn request(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
    ) -> axum::http::request::Builder {
        let builder = axum::http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        match user {
            Some(user) => builder.header("x-test-user", user),
            None => builder,
        }
    }

    async fn send(&self, request: axum::http::Request<Body>) -> axum::http::Response<Incoming> {
        self.client.request(request).await.expect("response")
    }

    async fn get(&self, path: &str, user: Option<&str>) -> axum::http::Response<Incoming> {
        self.send(
            self.request(Method::GET, path, user)
                .body(Body::empty())
                .expect("request"),
        )
        .await
    }

    async fn terminal(
        &self,
        id: &str,
        user: &str,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tungstenite::Error,
    > {
        self.terminal_from(id, user, &format!("http://{}", self.addr))
            .await
    }

    /// Opens the terminal like a browser on the page at `origin`, with its cookie.
    async fn terminal_from(
        &self,
        id: &str,
        user: &str,
        origin: &str,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tungstenite::Error,
    > {
        let mut request = format!("ws://{}/sessions/{id}/terminal", self.addr)
            .into_client_request()
            .expect("request");
        let headers = request.headers_mut();
        headers.insert("x-test-user", user.parse().expect("value"));
        headers.insert("sec-websocket-protocol", "tty".parse().expect("value"));
        headers.insert("cookie", "octo_session=jwt".parse().expect("value"));
        headers.insert("origin", origin.parse().expect("value"));
        let (socket, response) = tokio_tungstenite::connect_async(request).await?;
        assert_eq!(response.headers()["sec-websocket-protocol"], "tty");
        Ok(socket)
    }
}

async fn json(response: axum::http::Response<Incoming>) -> serde_json::Value {
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&body).expect("json body")
}

/// Runs a test body with a deadline, so that a buffering proxy fails instead of hanging.
/// The terminal keepalive of the fixture's proxy: short, so that a test sees several.
const KEEPALIVE: Duration = Duration::from_millis(50);

#[tokio::test]
async fn an_open_terminal_counts_as_activity_with_nothing_typed() {
    within(async {
        let fx = fixture().await;
        let mut socket = fx.terminal("alpha", "alice").await.expect("connected");
        socket
            .send(Message::Binary(Bytes::from_static(
                br#"{"AuthToken":"","columns":80,"rows":24}"#,
            )))
            .await
            .expect("send");
        let _echo = socket.next().await;
        let start = fx.sessions.activity.load(Ordering::Relaxed);
        // Nothing more is sent either way; the count still grows while the socket is open.
        while fx.sessions.activity.load(Ordering::Relaxed) < start + 3 {
            tokio::time::sleep(KEEPALIVE).await;
        }
        socket.close(None).await.expect("close");
        while socket.next().await.is_some() {}
        // Closed: the keepalive stops with the relay.
        tokio::time::sleep(KEEPALIVE * 4).await;
        let after_close = fx.sessions.activity.load(Ordering::Relaxed);
        tokio::time::sleep(KEEPALIVE * 4).await;
        assert_eq!(fx.sessions.activity.load(Ordering::Relaxed), after_close);
    })
    .await;
}

async fn within<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test finished in time");
}

// ---------------------------------------------------------------------------------------
// Previews over tunnels

/// An app on the loopback that answers every request with what it saw of it: its target,
/// `Host`, whether an `Authorization` came, its cookies, and the connection it came on.
async fn start_seen_app() -> SocketAddr {
    async fn seen(
        axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
        uri: Uri,
        headers: HeaderMap,
    ) -> axum::Json<serde_json::Value> {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        axum::Json(serde_json::json!({
            "target": uri.to_string(),
            "host": text("host"),
            "authorization": headers.contains_key("authorization"),
            "cookie": text("cookie"),
            "peer": peer.to_string(),
        }))
    }
    let app = listener().await;
    let addr = app.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(
            app,
            Router::new()
                .fallback(seen)
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

impl Fixture {
    /// `GET <path>` on the preview host of `port` in session `id`, as alice, with her cookie
    /// for that host and one of the app's own: the status and the JSON answer.
    async fn preview(&self, id: &str, port: u16, path: &str) -> (StatusCode, serde_json::Value) {
        let request = axum::http::Request::builder()
            .uri(path)
            .header(
                "cookie",
                format!("theme=dark; {CONTENT_COOKIE}=the-key-to-this-host"),
            )
            .body(Body::empty())
            .expect("request");
        let alice = CurrentUser {
            name: "alice".to_owned(),
            role: UserRole::User,
        };
        let response = preview(
            &self.proxy,
            &self.sessions,
            &alice,
            id.parse().expect("id"),
            port,
            request,
        )
        .await;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }
}

#[tokio::test]
async fn previews_take_a_tunnel_to_the_app_once_the_gateway_is_known_to_have_them() {
    within(async {
        let f = fixture().await;
        let app = start_seen_app().await;
        let port = app.port();

        // The first request goes through the gateway's relay while the gateway is asked.
        let (status, first) = f.preview("real", port, "/page?x=%2F1").await;
        assert_eq!(status, StatusCode::OK, "{first}");
        assert_eq!(first["host"], format!("127.0.0.1:{port}"), "{first}");
        let mut tunneled = None;
        for _ in 0..200 {
            let (status, seen) = f.preview("real", port, "/page?x=%2F1").await;
            assert_eq!(status, StatusCode::OK, "{seen}");
            if seen["host"] == format!("localhost:{port}") {
                tunneled = Some(seen);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let tunneled = tunneled.expect("a request over a tunnel");
        // What the app sees over a tunnel is what the relay gave it: the path and query byte
        // for byte, its own cookies but not the key to the host, no credential of the
        // gateway's, its own address as the host.
        assert_eq!(tunneled["target"], "/page?x=%2F1");
        assert_eq!(tunneled["cookie"], "theme=dark");
        assert_eq!(tunneled["authorization"], false);
        // Request after request on one connection to the app.
        let mut peers = std::collections::HashSet::new();
        for i in 0..5 {
            let (status, seen) = f.preview("real", port, &format!("/n/{i}")).await;
            assert_eq!(status, StatusCode::OK, "{seen}");
            assert_eq!(seen["target"], format!("/n/{i}"));
            assert_eq!(seen["host"], format!("localhost:{port}"));
            peers.insert(seen["peer"].as_str().expect("peer").to_owned());
        }
        assert_eq!(peers.len(), 1, "{peers:?}");
        // The real gateway handed the connections over: none was spliced.
        let mut metrics = String::new();
        f.proxy.metrics().render_prometheus(&mut metrics);
        assert!(
            metrics.contains("octod_proxy_preview_tunnels_total{how=\"handed_over\"} 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("octod_proxy_preview_tunnels_total{how=\"spliced\"} 0\n"),
            "{metrics}"
        );

        // The gateway's refusals come back as it gave them.
        let closed = listener().await.local_addr().expect("address").port();
        let (status, refused) = f.preview("real", closed, "/").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{refused}");
        assert_eq!(refused["error"]["code"], "nothing_listening", "{refused}");
        let (status, refused) = f.preview("real", 80, "/").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");

        // A gateway from before tunnels keeps the relay: asked once, it answers 404.
        for _ in 0..20 {
            let (status, seen) = f.preview("elder", port, "/old").await;
            assert_eq!(status, StatusCode::OK, "{seen}");
            assert_eq!(seen["path"], format!("/preview/{port}/old"), "{seen}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// HTTP

#[tokio::test]
async fn uploads_past_the_owners_quota_are_507_from_the_real_gateway_and_counted_when_stored() {
    within(async {
        let fx = fixture().await;
        let put = |bytes: usize, forged: bool| {
            let mut request = fx.request(
                Method::PUT,
                &format!("/sessions/real/files/api/upload?path=f{bytes}"),
                Some("alice"),
            );
            if forged {
                // The browser's own quota header is dropped: octod's is sent.
                request = request.header("x-octo-quota", "used=0, limit=99999999");
            }
            request.body(Body::from(vec![7u8; bytes])).expect("request")
        };
        let response = fx.send(put(600, false)).await;
        assert_eq!(response.status(), 201);
        assert_eq!(fx.sessions.stored.load(Ordering::Relaxed), 600);
        let response = fx.send(put(1200, true)).await;
        assert_eq!(response.status(), 507);
        let body = json(response).await;
        assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");
        assert_eq!(
            body["error"]["message"],
            "f1200: the storage quota is full: 0 bytes of 1000 bytes used, 1000 bytes left; delete files to make room"
        );
        // Refused: not counted.
        assert_eq!(fx.sessions.stored.load(Ordering::Relaxed), 600);
    })
    .await;
}

#[tokio::test]
async fn headers_are_stripped_and_injected_both_ways() {
    within(async {
        let fx = fixture().await;
        let request = fx
            .request(
                Method::POST,
                "/sessions/alpha/opencode/session/a%20b//c?x=1&y=%2F",
                Some("alice"),
            )
            .header("cookie", "octo_session=jwt")
            .header("authorization", "Bearer browser-token")
            .header("connection", "keep-alive, x-secret")
            .header("x-secret", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-authorization", "Basic eDp5")
            .header("te", "trailers")
            .header("x-octo-quota", "used=0, limit=999999999")
            .header("host", "octo.example")
            .header("accept", "application/json")
            .body(Body::from("{}"))
            .expect("request");
        let response = fx.send(request).await;
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        assert!(headers.get("set-cookie").is_none(), "{headers:?}");
        assert!(headers.get("www-authenticate").is_none(), "{headers:?}");
        assert!(headers.get("x-hop").is_none(), "{headers:?}");
        assert!(headers.get("x-unknown").is_none(), "{headers:?}");
        let seen = json(response).await;
        assert_eq!(seen["method"], "POST");
        assert_eq!(seen["path"], "/opencode/session/a%20b//c");
        assert_eq!(seen["query"], "x=1&y=%2F");
        let seen = &seen["headers"];
        for gone in [
            "cookie",
            "x-secret",
            "keep-alive",
            "proxy-authorization",
            "te",
            "x-octo-quota",
            "x-test-user-not-sent",
        ] {
            assert!(
                seen.get(gone).is_none(),
                "{gone} reached the container: {seen}"
            );
        }
        assert_eq!(
            seen["authorization"],
            serde_json::json!([format!("Bearer {TOKEN}")])
        );
        assert_eq!(seen["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
        assert_eq!(seen["x-forwarded-proto"], serde_json::json!(["http"]));
        assert_eq!(
            seen["x-forwarded-host"],
            serde_json::json!(["octo.example"])
        );
        assert_eq!(seen["accept"], serde_json::json!(["application/json"]));
        assert_eq!(seen["content-length"], serde_json::json!(["2"]));
        assert!(fx.sessions.activity.load(Ordering::Relaxed) >= 1);
    })
    .await;
}

#[tokio::test]
async fn a_sessions_html_arrives_as_a_sandboxed_attachment_without_its_headers() {
    within(async {
        let fx = fixture().await;
        for path in [
            "/sessions/alpha/files/hostile",
            "/sessions/alpha/opencode/x",
        ] {
            let response = fx.get(path, Some("alice")).await;
            assert_eq!(response.status(), 200);
            let headers = response.headers();
            assert_eq!(
                headers["content-security-policy"], "sandbox; default-src 'none'",
                "{path}"
            );
            assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        }
        let response = fx.get("/sessions/alpha/files/hostile", Some("alice")).await;
        let headers = response.headers();
        for gone in [
            "service-worker-allowed",
            "refresh",
            "clear-site-data",
            "access-control-allow-origin",
            "access-control-allow-credentials",
        ] {
            assert!(headers.get(gone).is_none(), "{gone}: {headers:?}");
        }
        assert_eq!(headers.get_all("content-security-policy").iter().count(), 1);
        assert_eq!(headers["content-type"], "application/octet-stream");
        assert_eq!(
            headers["content-disposition"],
            "attachment; filename=\"r.html\""
        );
        assert_eq!(headers["etag"], "\"v1\"");
        // octod's own refusals on these paths carry the policy too.
        let refused = fx.get("/sessions/bravo/files/hostile", Some("alice")).await;
        assert_eq!(refused.status(), 404);
        assert_eq!(
            refused.headers()["content-security-policy"],
            "sandbox; default-src 'none'"
        );
        let anonymous = fx.get("/sessions/alpha/files/hostile", None).await;
        assert_eq!(anonymous.status(), 401);
        assert_eq!(anonymous.headers()["x-content-type-options"], "nosniff");
    })
    .await;
}

#[tokio::test]
async fn files_get_a_bearer_token_and_the_query_byte_for_byte() {
    within(async {
        let fx = fixture().await;
        let query = "path=%2Fsrc%2F..%2Fa+b%C3%A9&&overwrite&x=%ZZ;y";
        let response = fx
            .get(
                &format!("/sessions/alpha/files/api/list?{query}"),
                Some("alice"),
            )
            .await;
        assert_eq!(response.status(), 200);
        let seen = json(response).await;
        assert_eq!(seen["path"], "/api/list");
        assert_eq!(seen["query"], query);
        assert_eq!(
            seen["headers"]["authorization"],
            serde_json::json!([format!("Bearer {TOKEN}")])
        );
    })
    .await;
}

#[tokio::test]
async fn service_roots_map_to_slash() {
    within(async {
        let fx = fixture().await;
        for (path, gateway) in [
            ("/sessions/alpha/opencode", "/opencode"),
            ("/sessions/alpha/opencode/", "/opencode/"),
            ("/sessions/alpha/files", "/"),
            ("/sessions/alpha/files/", "/"),
        ] {
            let response = fx.get(path, Some("alice")).await;
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(json(response).await["path"], gateway, "{path}");
        }
    })
    .await;
}

#[tokio::test]
async fn only_owner_and_admin_get_through() {
    within(async {
        let fx = fixture().await;
        for (path, user, status, code) in [
            ("/sessions/alpha/files/x", Some("alice"), 200, None),
            ("/sessions/alpha/files/x", Some("admin:root"), 200, None),
            (
                "/sessions/alpha/files/x",
                Some("bob"),
                404,
                Some("not_found"),
            ),
            (
                "/sessions/alpha/opencode/x",
                Some("bob"),
                404,
                Some("not_found"),
            ),
            ("/sessions/alpha/files/x", None, 401, Some("unauthorized")),
            (
                "/sessions/nosuch/files/x",
                Some("alice"),
                404,
                Some("not_found"),
            ),
            (
                "/sessions/Bad-Id/files/x",
                Some("alice"),
                404,
                Some("not_found"),
            ),
            (
                "/sessions/bravo/files/x",
                Some("alice"),
                404,
                Some("not_found"),
            ),
            ("/sessions/bravo/files/x", Some("bob"), 200, None),
        ] {
            let response = fx.get(path, user).await;
            assert_eq!(response.status(), status, "{path} as {user:?}");
            if let Some(code) = code {
                assert_eq!(
                    json(response).await["error"]["code"],
                    code,
                    "{path} as {user:?}"
                );
            }
        }
        // A terminal upgrade by another user is refused the same way.
        let refused = fx.terminal("alpha", "bob").await.expect_err("refused");
        let tungstenite::Error::Http(response) = refused else {
            panic!("expected an HTTP refusal: {refused:?}");
        };
        assert_eq!(response.status(), 404);
        assert_eq!(fx.proxy.metrics().requests(Service::Terminal, 404), 1);
    })
    .await;
}

#[tokio::test]
async fn a_session_that_does_not_wake_in_time_is_503_with_retry_after() {
    within(async {
        let fx = fixture().await;
        // Its socket accepts (systemd holds the connection) but nothing answers.
        let start = tokio::time::Instant::now();
        let response = fx.get("/sessions/sleepy/opencode/x", Some("alice")).await;
        assert!(start.elapsed() >= WAKE_WAIT, "held for the wake bound");
        assert!(start.elapsed() < HEAD_WAIT, "not for the head timeout");
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "5");
        assert_eq!(json(response).await["error"]["code"], "session_waking");
        assert_eq!(fx.proxy.metrics().requests(Service::Opencode, 503), 1);
        // Its socket is not there yet (being created): at once, the same answer.
        let response = fx.get("/sessions/unborn/files/x", Some("alice")).await;
        assert_eq!(response.status(), 503);
        assert_eq!(json(response).await["error"]["code"], "session_waking");
        // The terminal too.
        let refused = fx.terminal("sleepy", "alice").await.expect_err("refused");
        let tungstenite::Error::Http(response) = refused else {
            panic!("expected an HTTP refusal: {refused:?}");
        };
        assert_eq!(response.status(), 503);
    })
    .await;
}

#[tokio::test]
async fn a_running_session_that_sends_no_head_in_time_is_504() {
    within(async {
        let fx = fixture().await;
        let start = tokio::time::Instant::now();
        let response = fx.get("/sessions/hung/opencode/x", Some("alice")).await;
        assert!(start.elapsed() >= HEAD_WAIT);
        assert_eq!(response.status(), 504);
        assert_eq!(json(response).await["error"]["code"], "upstream_timeout");
        let refused = fx.terminal("hung", "alice").await.expect_err("refused");
        let tungstenite::Error::Http(response) = refused else {
            panic!("expected an HTTP refusal: {refused:?}");
        };
        assert_eq!(response.status(), 504);
    })
    .await;
}

#[tokio::test]
async fn a_service_that_is_down_is_502_upstream_unavailable() {
    within(async {
        let fx = fixture().await;
        for path in ["/sessions/gone/opencode/x", "/sessions/gone/files/x"] {
            let response = fx.get(path, Some("alice")).await;
            assert_eq!(response.status(), 502, "{path}");
            assert_eq!(
                json(response).await["error"]["code"],
                "upstream_unavailable"
            );
        }
        let refused = fx.terminal("gone", "alice").await.expect_err("refused");
        let tungstenite::Error::Http(response) = refused else {
            panic!("expected an HTTP refusal: {refused:?}");
        };
        assert_eq!(response.status(), 502);
        let body = response.body().as_deref().unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(body).expect("json");
        assert_eq!(body["error"]["code"], "upstream_unavailable");
    })
    .await;
}

#[tokio::test]
async fn server_sent_events_arrive_one_by_one() {
    within(async {
        let fx = fixture().await;
        let response = fx
            .get("/sessions/alpha/opencode/events", Some("alice"))
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.into_body();
        let mut received = String::new();
        // The upstream sends event n+1 only after the client has seen event n: a proxy that
        // buffered the stream would never deliver event 0, and the test would time out.
        for n in 0..3 {
            let expected = format!("event: tick\ndata: {n}\n\n");
            while !received.ends_with(&expected) {
                let frame = body
                    .frame()
                    .await
                    .expect("stream still open")
                    .expect("frame");
                if let Ok(data) = frame.into_data() {
                    received.push_str(std::str::from_utf8(&data).expect("utf-8"));
                }
            }
            fx.upstream.sse_gate.notify_one();
        }
        assert!(
            body.frame().await.is_none(),
            "the stream ends after 3 events"
        );
        assert_eq!(
            received,
            "event: tick\ndata: 0\n\nevent: tick\ndata: 1\n\nevent: tick\ndata: 2\n\n"
        );
    })
    .await;
}

/// At most this much of a body may be in flight between a stalled reader and its writer:
/// kernel socket buffers on two loopback connections and hyper's own buffers. A proxy that
/// read ahead without bound would hold all 100 MiB.
const IN_FLIGHT_BOUND: u64 = 40 * MIB;
const BIG: u64 = 100 * MIB;

#[tokio::test]
async fn a_100_mib_download_streams_byte_identical_with_bounded_memory() {
    within(async {
        let fx = fixture().await;
        let response = fx
            .get(
                &format!("/sessions/alpha/files/download?size={BIG}"),
                Some("alice"),
            )
            .await;
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut received: u64 = 0;
        let mut first = true;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.expect("frame").into_data() else {
                continue;
            };
            assert!(matches_at(received, &data), "bytes differ at {received}");
            received += data.len() as u64;
            if first {
                first = false;
                // The first bytes arrived while the upstream had produced one chunk and
                // waits for us: nothing buffers the whole body.
                assert_eq!(
                    fx.upstream.download_produced.load(Ordering::SeqCst),
                    CHUNK as u64
                );
                fx.upstream.download_gate.notify_one();
                // Stall: the upstream may run ahead only as far as buffers reach.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let ahead = fx.upstream.download_produced.load(Ordering::SeqCst);
                assert!(
                    ahead < IN_FLIGHT_BOUND,
                    "{} MiB produced while the client was not reading",
                    ahead / MIB
                );
            }
        }
        assert_eq!(received, BIG);
    })
    .await;
}

#[tokio::test]
async fn a_100_mib_upload_streams_byte_identical_with_bounded_memory() {
    within(async {
        // The answer's head comes after the whole body: the test's own bound, not the
        // fixture's 2 s, so that a loaded machine does not turn it into a 504.
        let fx = fixture_with_head_wait(TEST_TIMEOUT).await;
        let produced = Arc::new(AtomicU64::new(0));
        let body = Body::from_stream(pattern_stream(BIG, Arc::clone(&produced), None));
        let request = fx
            .request(Method::PUT, "/sessions/alpha/files/upload", Some("alice"))
            .body(body)
            .expect("request");
        let response = tokio::spawn({
            let client = fx.client.clone();
            async move { client.request(request).await }
        });
        // The upstream has the first chunk and stops reading: the client may run ahead only
        // as far as buffers reach.
        fx.upstream.upload_started.notified().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ahead = produced.load(Ordering::SeqCst);
        assert!(
            ahead < IN_FLIGHT_BOUND,
            "{} MiB sent while the upstream was not reading",
            ahead / MIB
        );
        fx.upstream.upload_gate.notify_one();
        let response = response.await.expect("task").expect("response");
        assert_eq!(response.status(), 200);
        assert_eq!(
            json(response).await,
            serde_json::json!({"received": BIG, "intact": true})
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// WebSocket

#[tokio::test]
async fn terminal_frames_pings_and_the_hello_are_relayed() {
    within(async {
        let mut fx = fixture().await;
        let mut socket = fx.terminal("alpha", "alice").await.expect("connected");
        assert_eq!(fx.proxy.metrics().requests(Service::Terminal, 101), 1);

        // ttyd's first message (the browser's hello) passes unchanged: ttyd behind the
        // gateway takes no credential.
        let hello = Bytes::from_static(br#"{"AuthToken":"","columns":80,"rows":24}"#);
        socket
            .send(Message::Binary(hello.clone()))
            .await
            .expect("send");
        assert_eq!(
            fx.ws_events.recv().await,
            Some(WsEvent::First(Message::Binary(hello.clone())))
        );
        assert_eq!(
            socket.next().await.expect("open").expect("frame"),
            Message::Binary(hello)
        );

        // Later frames pass unchanged, text as text, binary as binary.
        socket.send(Message::text("0ls\n")).await.expect("send");
        assert_eq!(
            socket.next().await.expect("open").expect("frame"),
            Message::text("0ls\n")
        );
        let blob = chunk_at(0, 200_000);
        socket
            .send(Message::Binary(blob.clone()))
            .await
            .expect("send");
        assert_eq!(
            socket.next().await.expect("open").expect("frame"),
            Message::Binary(blob)
        );

        // A ping from the browser reaches the terminal, and a pong comes back.
        socket
            .send(Message::Ping(Bytes::from_static(b"are you there")))
            .await
            .expect("send");
        assert_eq!(
            fx.ws_events.recv().await,
            Some(WsEvent::Ping(Bytes::from_static(b"are you there")))
        );
        // A ping from the terminal reaches the browser.
        socket.send(Message::text("ping-me")).await.expect("send");
        let mut pongs = 0;
        loop {
            match socket.next().await.expect("open").expect("frame") {
                Message::Pong(payload) => {
                    assert_eq!(payload, Bytes::from_static(b"are you there"));
                    pongs += 1;
                }
                Message::Ping(payload) => {
                    assert_eq!(payload, Bytes::from_static(b"hb"));
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(pongs >= 1, "the browser's ping was answered");
        assert_eq!(fx.proxy.metrics().websockets_open(), 1);

        // The browser's close code reaches the terminal.
        socket
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Library(4001),
                reason: "bye".into(),
            })))
            .await
            .expect("send");
        let close = loop {
            match fx.ws_events.recv().await.expect("event") {
                WsEvent::Close(frame) => break frame,
                WsEvent::Ping(_) | WsEvent::First(_) => {}
            }
        };
        let close = close.expect("a close frame with a code");
        assert_eq!(close.code, CloseCode::Library(4001));
        assert_eq!(close.reason.as_str(), "bye");
        while socket.next().await.is_some() {}
        // The relay ends, and the gauge with it.
        for _ in 0..100 {
            if fx.proxy.metrics().websockets_open() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(fx.proxy.metrics().websockets_open(), 0);
        assert!(fx.sessions.activity.load(Ordering::Relaxed) >= 6);
    })
    .await;
}

#[tokio::test]
async fn the_terminal_close_code_reaches_the_browser() {
    within(async {
        let fx = fixture().await;
        let mut socket = fx.terminal("alpha", "admin:root").await.expect("connected");
        socket
            .send(Message::text(r#"{"AuthToken":"","columns":1,"rows":1}"#))
            .await
            .expect("send");
        assert!(matches!(socket.next().await, Some(Ok(Message::Text(_)))));
        socket.send(Message::text("close-me")).await.expect("send");
        let frame = loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => {}
                other => panic!("no close frame: {other:?}"),
            }
        };
        let frame = frame.expect("a close frame with a code");
        assert_eq!(frame.code, CloseCode::Library(4002));
        assert_eq!(frame.reason.as_str(), "done");
    })
    .await;
}

#[tokio::test]
async fn a_terminal_upgrade_from_another_origin_is_403() {
    within(async {
        let fx = fixture().await;
        let refused = fx
            .terminal_from("alpha", "alice", "https://evil.example")
            .await
            .expect_err("refused");
        let tungstenite::Error::Http(response) = refused else {
            panic!("expected an HTTP refusal: {refused:?}");
        };
        assert_eq!(response.status(), 403);
    })
    .await;
}

/// The real wiring compiles: with auth's state in the router's, `routes` takes the user
/// from auth's `CurrentUser` extractor.
#[allow(dead_code)]
fn routes_plug_into_auth<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Proxy: FromRef<S>,
    Arc<MemSessions>: FromRef<S>,
    crate::auth::AuthState: FromRef<S>,
{
    routes::<S, MemSessions>()
}

#[tokio::test]
async fn a_plain_get_of_the_terminal_is_426_and_wakes_nothing() {
    within(async {
        let fx = fixture().await;
        let response = fx.get("/sessions/sleepy/terminal", Some("alice")).await;
        assert_eq!(response.status(), 426);
        assert_eq!(json(response).await["error"]["code"], "upgrade_required");
    })
    .await;
}

#[tokio::test]
async fn metrics_count_requests_by_service_and_status() {
    within(async {
        let fx = fixture().await;
        let _ = fx.get("/sessions/alpha/files/x", Some("alice")).await;
        let _ = fx.get("/sessions/alpha/files/x", Some("alice")).await;
        let _ = fx.get("/sessions/bravo/opencode/x", Some("alice")).await;
        let mut out = String::new();
        fx.proxy.metrics().render_prometheus(&mut out);
        assert!(
            out.contains("octod_proxy_requests_total{service=\"files\",status=\"200\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("octod_proxy_requests_total{service=\"opencode\",status=\"404\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("octod_proxy_websockets_open 0\n"), "{out}");
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Through the real gateway

#[tokio::test]
async fn files_opencode_and_the_terminal_through_the_real_gateway() {
    within(async {
        let mut fx = fixture().await;
        // The file API: an upload, then a listing that shows it.
        let request = fx
            .request(
                Method::PUT,
                "/sessions/real/files/api/upload?path=notes.txt",
                Some("alice"),
            )
            .header("cookie", "octo_session=jwt")
            .body(Body::from("hello"))
            .expect("request");
        let response = fx.send(request).await;
        assert_eq!(response.status(), 201);
        let response = fx
            .get("/sessions/real/files/api/list?path=", Some("alice"))
            .await;
        assert_eq!(response.status(), 200);
        let listing = json(response).await.to_string();
        assert!(listing.contains("notes.txt"), "{listing}");

        // opencode's API: the gateway strips `/opencode` and its own credential.
        let response = fx
            .get("/sessions/real/opencode/session?x=%2F", Some("alice"))
            .await;
        assert_eq!(response.status(), 200);
        let seen = json(response).await;
        assert_eq!(seen["path"], "/session");
        assert_eq!(seen["query"], "x=%2F");
        assert!(seen["headers"].get("authorization").is_none(), "{seen}");
        assert!(seen["headers"].get("cookie").is_none(), "{seen}");

        // The terminal: the hello reaches ttyd unchanged, and the echo comes back.
        let mut socket = fx.terminal("real", "alice").await.expect("connected");
        let hello = Message::text(r#"{"AuthToken":"","columns":80,"rows":24}"#);
        socket.send(hello.clone()).await.expect("send");
        assert_eq!(
            fx.ws_events.recv().await,
            Some(WsEvent::First(hello.clone()))
        );
        assert_eq!(socket.next().await.expect("open").expect("frame"), hello);
        socket.close(None).await.expect("close");
    })
    .await;
}

#[tokio::test]
async fn the_gateways_change_stream_passes_through_as_it_comes() {
    within(async {
        let fx = fixture().await;
        let response = fx
            .get("/sessions/real/files/api/watch", Some("alice"))
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.into_body();
        let mut received = String::new();
        // Each event is awaited before the next step: a proxy that buffered the stream would
        // never deliver the first, and the test would time out.
        let mut until = async |text: &str| {
            while !received.contains(text) {
                let frame = body.frame().await.expect("stream open").expect("frame");
                if let Ok(data) = frame.into_data() {
                    received.push_str(std::str::from_utf8(&data).expect("utf-8"));
                }
            }
        };
        until("event: status").await;
        let request = fx
            .request(
                Method::PUT,
                "/sessions/real/files/api/upload?path=live.txt",
                Some("alice"),
            )
            .body(Body::from("hello"))
            .expect("request");
        assert_eq!(fx.send(request).await.status(), 201);
        until("live.txt").await;
        assert!(received.contains("event: change"), "{received}");
    })
    .await;
}

#[tokio::test]
async fn an_upload_over_the_gateway_limit_is_413_at_once_while_still_sending() {
    within(async {
        let fx = fixture().await;
        // A raw client: a huge Content-Length, then the body trickles in and never ends.
        let mut conn = tokio::net::TcpStream::connect(fx.addr)
            .await
            .expect("connect");
        let huge = 10 * 1024 * MIB;
        let head = format!(
            "PUT /sessions/real/files/api/upload?path=big HTTP/1.1\r\nhost: octo\r\n\
             x-test-user: alice\r\ncontent-length: {huge}\r\n\r\n"
        );
        let start = tokio::time::Instant::now();
        conn.write_all(head.as_bytes()).await.expect("send head");
        let (mut read, mut write) = conn.into_split();
        let sender = tokio::spawn(async move {
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0u64;
            while write.write_all(&chunk).await.is_ok() {
                sent += chunk.len() as u64;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            sent
        });
        // The whole answer (its body is JSON with a content length) within a second.
        let mut answer = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let complete = |answer: &[u8]| {
            let text = String::from_utf8_lossy(answer);
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                return false;
            };
            head.lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|n| n.trim().parse::<usize>().ok())
                .is_some_and(|n| body.len() >= n)
        };
        while !complete(&answer) {
            let n = tokio::time::timeout_at(start + Duration::from_secs(1), read.read(&mut buf))
                .await
                .expect("the 413 arrives within a second")
                .expect("read");
            assert!(
                n > 0,
                "closed before the answer: {:?}",
                String::from_utf8_lossy(&answer)
            );
            answer.extend_from_slice(&buf[..n]);
        }
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("payload_too_large"), "{answer}");
        // The rest of the body is not relayed forever: octod stops reading it and the
        // connection ends (the gateway's lingering close bounds it to a few seconds).
        let sent = tokio::time::timeout(Duration::from_secs(15), sender)
            .await
            .expect("the client's body is refused in the end")
            .expect("task");
        assert!(sent < huge, "{sent}");
        assert_eq!(fx.proxy.metrics().requests(Service::Files, 413), 1);
    })
    .await;
}
