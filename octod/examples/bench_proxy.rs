//! The harness of `cargo xtask bench proxy`: one binary, several roles, each its own process
//! so that the proxy's memory is the proxy's alone.
//!
//! - `proxy <listen> <gateway-socket> <token> [tcp <addr>]`: `octod::proxy` routes (`<listen>`
//!   is `<ip>:<port>` or `unix:<path>`, for each role that listens) (every
//!   request is an admin's, every session resolves to the given gateway socket and token), on
//!   the same multi-threaded runtime octod uses and served as `octod serve` serves them
//!   (`TCP_NODELAY` on accepted connections, the peer's address for `X-Forwarded-For`); with `tcp <addr>`, HTTP goes to `addr` over
//!   TCP instead (the path before sessions had sockets), for comparison;
//! - `proxy-auth <listen> <gateway-socket> <token> <state-dir>`: the same routes with octod's
//!   real authentication (`CurrentUser` over `Auth` on a redb file in `state-dir`): it creates
//!   a user with a session cookie (JWT) and a personal API token (`sessions:connect`), writes
//!   them to `state-dir/credentials` (`cookie <jwt>` and `bearer <token>` lines), then serves;
//!   Its `/preview/<port>/<path>` is `octod::proxy::preview` (issue 14's preview relay, as a
//!   content host's request reaches it after its cookie check) to the gateway's preview relay;
//! - `app <listen>`: a small static page on every path, the app a preview reaches (a dev
//!   server's answer, written at once);
//! - `echo <listen> <socket>`: a ttyd-like WebSocket echo on `/ws` (subprotocol `tty`, any
//!   auth), on TCP and on a Unix socket (where the gateway relays `/terminal`);
//! - `rtt <messages> <url>…`: sequential small-message round trips over each URL (the first
//!   one direct, the others through proxies), interleaved in rounds; prints `median_ns p99_ns`,
//!   one line per URL;
//! - `hold <url> <count>`: opens `count` WebSockets, one echoed message on each, prints
//!   `ready <count>` and keeps them open until stdin closes.

use std::convert::Infallible;
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::response::IntoResponse as _;
use futures_util::{SinkExt as _, StreamExt as _};
use octod::http::ApiError;
use octod::identity::{CurrentUser, Role};
use octod::proxy::{Proxy, Service, Sessions, Upstream};
use octod::session::SessionId;
use octod::store::Secret;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as WsRequest, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Rounds the round trips are split into, alternating direct and proxied.
const RTT_ROUNDS: usize = 10;
/// Round trips before measuring, on each URL.
const RTT_WARMUP: usize = 200;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.as_slice() {
        ["proxy", listen, socket, token] => runtime.block_on(proxy(
            Listen::parse(listen)?,
            Path::new(socket),
            token,
            None,
        )),
        ["proxy", listen, socket, token, "tcp", addr] => runtime.block_on(proxy(
            Listen::parse(listen)?,
            Path::new(socket),
            token,
            Some(addr.parse()?),
        )),
        ["proxy-auth", listen, socket, token, state] => runtime.block_on(proxy_auth(
            Listen::parse(listen)?,
            Path::new(socket),
            token,
            Path::new(state),
        )),
        ["echo", listen, socket] => runtime.block_on(echo(listen.parse()?, Path::new(socket))),
        ["app", listen] => runtime.block_on(app(Listen::parse(listen)?)),
        ["rtt", messages, urls @ ..] if !urls.is_empty() => {
            runtime.block_on(rtt(messages.parse()?, urls))
        }
        ["hold", url, count] => runtime.block_on(hold(url, count.parse()?)),
        _ => bail!(
            "usage: bench_proxy proxy <listen> <gateway-socket> <token> [tcp <addr>] \
             | app <listen> | echo <listen> <socket> | rtt <messages> <url>… | hold <url> <count>"
        ),
    }
}

// ---------------------------------------------------------------------------------------
// The proxy.

/// Every request is an admin's: the benchmark measures the proxy, not authentication.
struct Admin;

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Infallible;

    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self)
    }
}

impl From<Admin> for CurrentUser {
    fn from(_: Admin) -> Self {
        CurrentUser {
            name: "bench".to_owned(),
            role: Role::Admin,
        }
    }
}

/// Every session is awake and has the same gateway.
struct FixedSessions {
    socket: PathBuf,
    token: Secret,
    activity: AtomicU64,
}

impl Sessions for FixedSessions {
    async fn resolve(
        &self,
        _user: &CurrentUser,
        _id: &SessionId,
        _service: Service,
    ) -> Result<Upstream, ApiError> {
        Ok(Upstream {
            socket: self.socket.clone(),
            token: self.token.clone(),
            wake: None,
            quota: None,
        })
    }

    fn activity(&self, _id: &SessionId) {
        self.activity.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct BenchState {
    proxy: Proxy,
    sessions: Arc<FixedSessions>,
}

impl FromRef<BenchState> for Proxy {
    fn from_ref(state: &BenchState) -> Self {
        state.proxy.clone()
    }
}

impl FromRef<BenchState> for Arc<FixedSessions> {
    fn from_ref(state: &BenchState) -> Self {
        Arc::clone(&state.sessions)
    }
}

async fn proxy(
    listen: Listen,
    socket: &Path,
    token: &str,
    tcp: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let state = BenchState {
        proxy: tcp.map_or_else(Proxy::new, Proxy::over_tcp_for_benchmark),
        sessions: Arc::new(FixedSessions {
            socket: socket.to_owned(),
            token: Secret::new(token.to_owned()),
            activity: AtomicU64::new(0),
        }),
    };
    let app = octod::proxy::routes_with_user::<BenchState, FixedSessions, Admin>()
        // Both: axum's wildcard matches no empty rest, and `/` is the page measured.
        .route("/preview/{port}/", axum::routing::any(preview))
        .route("/preview/{port}/{*rest}", axum::routing::any(preview))
        .with_state(state);
    // Served as `octod serve` serves: octod's listener (no Nagle on accepted connections: a
    // response whose head and body reach the proxy apart, the gateway's downloads, would
    // leave in two writes, and the second wait for wrk's delayed ACK, ~40 ms) and the peer
    // for `X-Forwarded-For`.
    serve(listen, app).await
}

/// Where a role listens: `<ip>:<port>`, or `unix:<path>` (as octod behind Caddy in the
/// package: `/run/octod/http.sock`).
enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Listen {
    fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(match text.strip_prefix("unix:") {
            Some(path) => Self::Unix(PathBuf::from(path)),
            None => Self::Tcp(text.parse()?),
        })
    }
}

/// Serves `app` as `octod serve` serves: octod's listener (`TCP_NODELAY` on accepted
/// connections, or a Unix socket) and the peer for `X-Forwarded-For`.
async fn serve(listen: Listen, app: axum::Router) -> anyhow::Result<()> {
    let listener = match listen {
        Listen::Tcp(addr) => octod::http::peer::HttpListener::tcp(
            TcpListener::bind(addr).await?,
            octod::http::peer::TrustedProxies::default(),
        ),
        Listen::Unix(path) => {
            let _ = std::fs::remove_file(&path);
            octod::http::peer::HttpListener::Unix(UnixListener::bind(&path)?)
        }
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<octod::http::peer::ClientPeer>(),
    )
    .await?;
    Ok(())
}

/// `/preview/<port>/<rest>`: the preview relay for `<rest>` on that port of the session.
async fn preview(
    axum::extract::State(state): axum::extract::State<BenchState>,
    mut request: axum::extract::Request,
) -> axum::response::Response {
    let Some(port) = request
        .uri()
        .path()
        .strip_prefix("/preview/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse::<u16>().ok())
    else {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    };
    let prefix = format!("/preview/{port}");
    let rest = request
        .uri()
        .path_and_query()
        .map_or("/", axum::http::uri::PathAndQuery::as_str)
        .strip_prefix(&prefix)
        .unwrap_or("/")
        .to_owned();
    if let Ok(uri) = rest.parse() {
        *request.uri_mut() = uri;
    }
    let Ok(id) = "bench1".parse::<SessionId>() else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    octod::proxy::preview(
        &state.proxy,
        &state.sessions,
        &CurrentUser::from(Admin),
        id,
        port,
        request,
    )
    .await
}

// ---------------------------------------------------------------------------------------
// The app a preview reaches.

/// What the app answers: a small page, as a dev server's index might be.
const APP_PAGE: &str = "<!doctype html><title>app</title><p>hello from the app</p>\n";

async fn app(listen: Listen) -> anyhow::Result<()> {
    let app = axum::Router::new().fallback(|| async {
        (
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            APP_PAGE,
        )
    });
    serve(listen, app).await
}

/// [`BenchState`] with octod's accounts, for the real `CurrentUser` extractor.
#[derive(Clone)]
struct AuthBenchState {
    proxy: Proxy,
    sessions: Arc<FixedSessions>,
    auth: octod::auth::Auth,
}

impl FromRef<AuthBenchState> for Proxy {
    fn from_ref(state: &AuthBenchState) -> Self {
        state.proxy.clone()
    }
}

impl FromRef<AuthBenchState> for Arc<FixedSessions> {
    fn from_ref(state: &AuthBenchState) -> Self {
        Arc::clone(&state.sessions)
    }
}

impl FromRef<AuthBenchState> for octod::auth::Auth {
    fn from_ref(state: &AuthBenchState) -> Self {
        state.auth.clone()
    }
}

async fn proxy_auth(
    listen: Listen,
    socket: &Path,
    token: &str,
    state_dir: &Path,
) -> anyhow::Result<()> {
    use octod::auth::{Auth, AuthSettings, NewApiToken};
    let _ = std::fs::remove_dir_all(state_dir);
    std::fs::create_dir_all(state_dir)?;
    let store = octod::store::Store::open(state_dir.join("octod.redb"))?;
    let auth = Auth::open(state_dir, store, AuthSettings::default())?;
    let user = auth
        .add_user("bench", "bench-password-1", Role::User, "bench")
        .await?;
    let cookie = auth.issue(&user)?;
    let (bearer, _) = auth
        .create_api_token(
            "bench",
            NewApiToken {
                name: "bench".to_owned(),
                scopes: vec![octod::identity::Scope::SessionsConnect],
                expires_in_days: None,
            },
            "bench",
        )
        .await?;
    std::fs::write(
        state_dir.join("credentials"),
        format!(
            "cookie {}\nbearer {}\n",
            cookie.token.expose(),
            bearer.expose()
        ),
    )?;
    let state = AuthBenchState {
        proxy: Proxy::new(),
        sessions: Arc::new(FixedSessions {
            socket: socket.to_owned(),
            token: Secret::new(token.to_owned()),
            activity: AtomicU64::new(0),
        }),
        auth,
    };
    let app = octod::proxy::routes::<AuthBenchState, FixedSessions>().with_state(state);
    serve(listen, app).await
}

// ---------------------------------------------------------------------------------------
// The echo server.

/// Small buffers, as the proxy has: 1,000 echo sockets need not cost 128 MiB.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
}

async fn echo(listen: SocketAddr, socket: &Path) -> anyhow::Result<()> {
    let tcp = TcpListener::bind(listen).await?;
    let unix = UnixListener::bind(socket)?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = unix.accept().await {
            tokio::spawn(echo_one(stream));
        }
    });
    loop {
        let (stream, _) = tcp.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(echo_one(stream));
    }
}

async fn echo_one<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    // The error type is tungstenite's callback signature.
    #[allow(clippy::result_large_err)]
    let callback = |request: &WsRequest, mut response: WsResponse| {
        if request.uri().path() != "/ws" {
            let mut refusal = ErrorResponse::new(Some("not /ws".to_owned()));
            *refusal.status_mut() = axum::http::StatusCode::NOT_FOUND;
            return Err(refusal);
        }
        let offers_tty = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.split(',').any(|p| p.trim() == "tty"))
            });
        if offers_tty {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static("tty"));
        }
        Ok(response)
    };
    let Ok(mut socket) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config())).await
    else {
        return;
    };
    while let Some(Ok(message)) = socket.next().await {
        if message.is_text() || message.is_binary() {
            if socket.send(message).await.is_err() {
                return;
            }
        } else if message.is_close() {
            let _ = socket.close(None).await;
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The clients.

async fn connect(url: &str) -> anyhow::Result<WebSocketStream<TcpStream>> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("tty"));
    let host = request.uri().host().context("no host")?.to_owned();
    let port = request.uri().port_u16().context("no port")?;
    let stream = TcpStream::connect((host.as_str(), port)).await?;
    stream.set_nodelay(true)?;
    let (socket, response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
            .await
            .with_context(|| format!("opening {url}"))?;
    ensure!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .is_some_and(|v| v == "tty"),
        "{url}: subprotocol tty not accepted"
    );
    Ok(socket)
}

/// One round trip: a small binary message out, its echo back.
async fn round_trip(socket: &mut WebSocketStream<TcpStream>, payload: &[u8]) -> anyhow::Result<()> {
    socket
        .send(Message::Binary(payload.to_vec().into()))
        .await?;
    loop {
        match socket.next().await.context("closed")?? {
            Message::Binary(bytes) => {
                ensure!(bytes[..] == *payload, "echo differs");
                return Ok(());
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => bail!("unexpected {other:?}"),
        }
    }
}

async fn rtt(messages: usize, urls: &[&str]) -> anyhow::Result<()> {
    let payload = b"0bench-rt";
    let mut sockets = Vec::new();
    for url in urls {
        sockets.push(connect(url).await?);
    }
    for socket in &mut sockets {
        for _ in 0..RTT_WARMUP {
            round_trip(socket, payload).await?;
        }
    }
    let per_round = messages.div_ceil(RTT_ROUNDS);
    let mut samples = vec![Vec::new(); sockets.len()];
    for _ in 0..RTT_ROUNDS {
        for (socket, samples) in sockets.iter_mut().zip(&mut samples) {
            for _ in 0..per_round {
                let start = Instant::now();
                round_trip(socket, payload).await?;
                samples.push(start.elapsed());
            }
        }
    }
    for samples in &mut samples {
        samples.sort();
        let at = |q: f64| {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let i = ((samples.len() as f64 * q) as usize).min(samples.len() - 1);
            samples[i].as_nanos()
        };
        println!("{} {}", at(0.5), at(0.99));
    }
    for socket in &mut sockets {
        let _ = socket.close(None).await;
    }
    Ok(())
}

async fn hold(url: &str, count: usize) -> anyhow::Result<()> {
    let mut sockets = Vec::with_capacity(count);
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..count {
        ensure!(
            Instant::now() < deadline,
            "opened only {i} WebSockets in 60 s"
        );
        let mut socket = connect(url).await?;
        round_trip(&mut socket, b"0hold").await?;
        sockets.push(socket);
    }
    println!("ready {}", sockets.len());
    // Until the benchmark closes our stdin (or goes away).
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin()
            .lock()
            .read_line(&mut line)
            .is_ok_and(|n| n > 0)
        {
            line.clear();
        }
    })
    .await?;
    drop(sockets);
    Ok(())
}
