//! The session gateway's relays: `/opencode/*` to opencode on the container's loopback (HTTP
//! and SSE, streamed both ways) and `/terminal` to ttyd on a Unix socket (a WebSocket upgrade,
//! then bytes spliced both ways; no frame is parsed here).
//!
//! Both are behind the same bearer check as the file API (see [`crate::api::gateway_router`]);
//! the gateway's `Authorization` is removed before a request goes on, since it is the
//! gateway's credential, not the service's. A service that refuses connections (still
//! starting) is retried until [`Relays::wait`] runs out, then the client gets
//! `503 upstream_unavailable` with `Retry-After`; any other failure is `502 bad_gateway`.
//! Each relayed request opens its own upstream connection: on the loopback or a Unix socket
//! that costs microseconds, and it keeps a long SSE stream from holding up other requests.
//!
//! opencode (1.18) accepts connections about a second before it serves them, and a request
//! sent on a connection made in that window is never answered (seen in the session image:
//! such requests hang for minutes, later ones answer in milliseconds). So opencode counts as
//! ready only once it has answered `GET /global/health` on a probe connection of the
//! gateway's own ([`OpencodeReady`]); until then, and again after it refused a connection
//! (restarted), a relayed request first probes, each probe bounded by [`PROBE_TIMEOUT`],
//! within the same [`Relays::wait`]. Every connection attempt is bounded too
//! ([`CONNECT_TIMEOUT`]): a service that listens but does not accept (opencode busy
//! starting, its accept queue full of early connections) makes the kernel drop new SYNs, and
//! an unbounded connect() waited through their retransmissions, minutes (seen after an
//! upgrade moved a session: its first `/opencode` request never answered).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use crate::error::{ApiError, Code};

/// ttyd's WebSocket path; `/terminal` is relayed to it.
pub const TTYD_WS_PATH: &str = "/ws";
/// The default of [`Relays::wait`].
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// What a `503` tells the client to wait before trying again, in seconds.
const RETRY_AFTER_SECS: &str = "2";
/// How long one readiness probe of opencode may take; a probe on a connection opencode will
/// never serve is abandoned after this and a new one is made.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long one connection attempt to a relayed service may take; one that takes longer is
/// abandoned and retried while the request's wait lasts.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// opencode's health route, the readiness probe.
const OPENCODE_HEALTH: &str = "/global/health";

/// Whether opencode has answered a readiness probe since it last refused a connection; one
/// per gateway, shared by its relayed requests.
#[derive(Debug, Clone, Default)]
pub struct OpencodeReady(Arc<AtomicBool>);

/// Which services the gateway relays to; nothing is relayed unless configured.
#[derive(Debug, Clone)]
pub struct Relays {
    /// opencode's address on the container's loopback (`/opencode/*`).
    pub opencode: Option<SocketAddr>,
    /// ttyd's Unix socket (`/terminal`).
    pub terminal_socket: Option<PathBuf>,
    /// How long a request waits for a service that refuses connections (still starting).
    pub wait: Duration,
    /// `/preview/<port>/*` and `/api/ports` ([`crate::preview`]): the apps the session runs,
    /// with the ports of the session's own services, which are never relayed or listed.
    pub previews: Option<crate::preview::Previews>,
}

impl Default for Relays {
    fn default() -> Self {
        Relays {
            opencode: None,
            terminal_socket: None,
            wait: DEFAULT_WAIT,
            previews: None,
        }
    }
}

/// Where a relayed request goes.
#[derive(Debug, Clone)]
pub(crate) enum Upstream {
    /// opencode.
    Tcp(SocketAddr),
    /// ttyd.
    Unix(PathBuf),
    /// An app the session runs (a preview).
    App(SocketAddr),
}

impl Upstream {
    fn name(&self) -> &'static str {
        match self {
            Upstream::Tcp(_) => "opencode",
            Upstream::Unix(_) => "the terminal",
            Upstream::App(_) => "the app",
        }
    }

    /// Connects, retrying while the service refuses (it is starting) until `wait` runs out.
    async fn connect(&self, wait: Duration) -> Result<UpstreamIo, ApiError> {
        self.connect_noting_refusals(wait).await.map(|(io, _)| io)
    }

    /// [`Upstream::connect`], also telling whether the service refused at first (so it has
    /// just started).
    async fn connect_noting_refusals(
        &self,
        wait: Duration,
    ) -> Result<(UpstreamIo, bool), ApiError> {
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(25);
        let mut refused = false;
        loop {
            // Bounded: a listener that does not accept (a service busy starting, its accept
            // queue full) makes the kernel drop our SYN, and connect() would wait through
            // its retransmissions, minutes, far past `wait`.
            let bound = CONNECT_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
            let connect = async {
                match self {
                    Upstream::Tcp(addr) | Upstream::App(addr) => {
                        TcpStream::connect(addr).await.map(|s| {
                            let _ = s.set_nodelay(true);
                            UpstreamIo::Tcp(s)
                        })
                    }
                    Upstream::Unix(path) => UnixStream::connect(path).await.map(UpstreamIo::Unix),
                }
            };
            let attempt = tokio::time::timeout(bound, connect)
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
            let error = match attempt {
                Ok(io) => return Ok((io, refused)),
                Err(e) => e,
            };
            if error.kind() == io::ErrorKind::TimedOut {
                tracing::info!(
                    upstream = self.name(),
                    "a relayed service accepted no connection within {} ms; retrying",
                    bound.as_millis()
                );
            }
            // Refused: nothing listens yet. Not found: ttyd has not created its socket yet.
            // Timed out: it listens but does not accept yet.
            let starting = matches!(
                error.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::NotFound
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::WouldBlock
            );
            let now = Instant::now();
            if !starting {
                tracing::warn!(upstream = self.name(), error = %error, "connecting to a relayed service");
                return Err(ApiError::new(
                    Code::BadGateway,
                    format!("{} cannot be reached", self.name()),
                ));
            }
            if now >= deadline {
                tracing::info!(
                    upstream = self.name(),
                    waited_ms = wait.as_millis(),
                    "relayed service not answering"
                );
                return Err(ApiError::new(
                    Code::UpstreamUnavailable,
                    format!(
                        "{} is not answering yet (waited {} s); try again",
                        self.name(),
                        wait.as_secs()
                    ),
                )
                .with_header(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                ));
            }
            refused = true;
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

/// A connection to a relayed service.
pub(crate) enum UpstreamIo {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// `/opencode` and `/opencode/*`: the request without the prefix, streamed to opencode and
/// its answer streamed back (SSE included: frames are passed on as they come).
pub async fn opencode(
    addr: SocketAddr,
    wait: Duration,
    ready: OpencodeReady,
    request: Request,
) -> Response {
    relay_http(&Upstream::Tcp(addr), wait, &ready, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// A connection to opencode that it will serve: probes first while it is not known to be
/// ready, or when it refused at first (it has just restarted).
async fn connect_opencode(
    upstream: &Upstream,
    wait: Duration,
    ready: &OpencodeReady,
) -> Result<UpstreamIo, ApiError> {
    let deadline = Instant::now() + wait;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if ready.0.load(Ordering::Acquire) {
            let (io, refused) = upstream.connect_noting_refusals(remaining).await?;
            if !refused {
                return Ok(io);
            }
            ready.0.store(false, Ordering::Release);
        }
        let (io, _) = upstream.connect_noting_refusals(remaining).await?;
        if probe(io).await {
            ready.0.store(true, Ordering::Release);
            tracing::info!(upstream = upstream.name(), "relayed service ready");
            continue;
        }
        if Instant::now() >= deadline {
            return Err(ApiError::new(
                Code::UpstreamUnavailable,
                format!(
                    "{} is not answering yet (waited {} s); try again",
                    upstream.name(),
                    wait.as_secs()
                ),
            )
            .with_header(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether opencode answers `GET /global/health` (with any status) on `io` within
/// [`PROBE_TIMEOUT`]. The connection is closed either way (nothing is left waiting on it).
async fn probe(io: UpstreamIo) -> bool {
    let UpstreamIo::Tcp(io) = io else {
        return false;
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await
    else {
        return false;
    };
    // Driven by a task of its own, so that an answer is seen even when opencode closes the
    // connection right after it; aborting the task closes the connection.
    let conn = tokio::spawn(conn);
    let answered = match Request::builder()
        .uri(OPENCODE_HEALTH)
        .header(header::HOST, "localhost")
        .body(Body::empty())
    {
        // Any answer shows opencode serves its connections now.
        Ok(request) => matches!(
            tokio::time::timeout(PROBE_TIMEOUT, sender.send_request(request)).await,
            Ok(Ok(_))
        ),
        Err(_) => false,
    };
    conn.abort();
    answered
}

async fn relay_http(
    upstream: &Upstream,
    wait: Duration,
    ready: &OpencodeReady,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    parts.uri = strip_prefix(&parts.uri, "/opencode")?;
    let io = connect_opencode(upstream, wait, ready).await?;
    exchange(upstream, io, Request::from_parts(parts, body)).await
}

/// Sends `request` (its target already the service's) on `io` and passes the answer back,
/// streamed both ways, without the hop-by-hop headers or the gateway's credential.
pub(crate) async fn exchange(
    upstream: &Upstream,
    io: UpstreamIo,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::AUTHORIZATION);
    if let Upstream::Tcp(addr) | Upstream::App(addr) = upstream {
        if let Ok(host) = HeaderValue::from_str(&addr.to_string()) {
            parts.headers.insert(header::HOST, host);
        }
    }
    let response = match io {
        UpstreamIo::Tcp(s) => send(upstream, s, Request::from_parts(parts, body), false).await?,
        UpstreamIo::Unix(s) => send(upstream, s, Request::from_parts(parts, body), false).await?,
    };
    let (mut head, body) = response.into_parts();
    remove_hop_by_hop(&mut head.headers);
    Ok(Response::from_parts(head, Body::new(body)))
}

/// Sends one request on a fresh HTTP/1.1 connection; the connection is driven by a task of
/// its own until the response body has been passed on (or dropped).
async fn send<S>(
    upstream: &Upstream,
    io: S,
    request: Request,
    upgrades: bool,
) -> Result<hyper::Response<hyper::body::Incoming>, ApiError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let name = upstream.name();
    let failed = move |e: hyper::Error| {
        tracing::warn!(upstream = name, error = %e, "relayed request failed");
        ApiError::new(Code::BadGateway, format!("{name} did not answer properly"))
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(failed)?;
    if upgrades {
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(upstream = name, error = %e, "relay connection ended");
            }
        });
    } else {
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(upstream = name, error = %e, "relay connection ended");
            }
        });
    }
    sender.send_request(request).await.map_err(failed)
}

/// `/terminal`: the WebSocket upgrade forwarded to ttyd's `/ws` over its Unix socket; after
/// its `101` the two connections are spliced byte for byte until either side closes.
pub async fn terminal(socket: PathBuf, wait: Duration, request: Request) -> Response {
    relay_upgrade(&Upstream::Unix(socket), wait, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn relay_upgrade(
    upstream: &Upstream,
    wait: Duration,
    request: Request,
) -> Result<Response, ApiError> {
    let wants_upgrade = request
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if !wants_upgrade {
        return Err(ApiError::new(
            Code::BadRequest,
            "the terminal is a WebSocket: send Upgrade: websocket",
        ));
    }
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let target: Uri = format!("{TTYD_WS_PATH}{query}")
        .parse()
        .map_err(|_| ApiError::new(Code::BadRequest, "malformed query"))?;
    let io = upstream.connect(wait).await?;
    upgrade(
        upstream,
        io,
        target,
        HeaderValue::from_static("localhost"),
        request,
    )
    .await
}

/// Forwards an upgrade request (`Connection: upgrade`, any `Upgrade` protocol) to `target` on
/// `io`; after the service's `101` the two connections are spliced byte for byte until
/// either side closes. Any other answer goes back as it is.
pub(crate) async fn upgrade(
    upstream: &Upstream,
    io: UpstreamIo,
    target: Uri,
    host: HeaderValue,
    mut request: Request,
) -> Result<Response, ApiError> {
    let client_upgrade = hyper::upgrade::on(&mut request);
    let (mut parts, _body) = request.into_parts();
    parts.uri = target;
    // The upgrade's own hop-by-hop headers (Connection, Upgrade) must reach the service.
    parts.headers.remove(header::AUTHORIZATION);
    parts.headers.remove(header::PROXY_AUTHORIZATION);
    parts.headers.insert(header::HOST, host);
    let request = Request::from_parts(parts, Body::empty());
    let mut response = match io {
        UpstreamIo::Unix(io) => send(upstream, io, request, true).await?,
        UpstreamIo::Tcp(io) => send(upstream, io, request, true).await?,
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The service refused the upgrade: its answer goes back as it is.
        let (mut head, body) = response.into_parts();
        remove_hop_by_hop(&mut head.headers);
        return Ok(Response::from_parts(head, Body::new(body)));
    }
    let upstream_upgrade = hyper::upgrade::on(&mut response);
    let name = upstream.name();
    tokio::spawn(async move {
        let (client, service) = match tokio::try_join!(client_upgrade, upstream_upgrade) {
            Ok(both) => both,
            Err(e) => {
                tracing::info!(upstream = name, error = %e, "upgrade did not complete");
                return;
            }
        };
        let (mut client, mut service) = (TokioIo::new(client), TokioIo::new(service));
        match tokio::io::copy_bidirectional(&mut client, &mut service).await {
            Ok((up, down)) => {
                tracing::debug!(upstream = name, up, down, "upgraded connection closed");
            }
            Err(e) => tracing::debug!(upstream = name, error = %e, "upgraded connection ended"),
        }
    });
    let (head, _) = response.into_parts();
    Ok(Response::from_parts(head, Body::empty()))
}

/// `/opencode/x?y` → `/x?y`; `/opencode` → `/`.
pub(crate) fn strip_prefix(uri: &Uri, prefix: &str) -> Result<Uri, ApiError> {
    let path = uri.path().strip_prefix(prefix).unwrap_or(uri.path());
    let path = if path.is_empty() { "/" } else { path };
    let target = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    target
        .parse()
        .map_err(|_| ApiError::new(Code::BadRequest, "malformed request target"))
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1): the standard
/// ones and those the `Connection` header names.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_prefix(input: &str, expected: &str) {
        let uri: Uri = input.parse().expect("uri");
        assert_eq!(
            strip_prefix(&uri, "/opencode").expect("strip").to_string(),
            expected
        );
    }

    #[test]
    fn prefix_is_stripped() {
        check_prefix("/opencode", "/");
        check_prefix("/opencode/", "/");
        check_prefix("/opencode/global/health", "/global/health");
        check_prefix(
            "/opencode/event?directory=%2Fhome",
            "/event?directory=%2Fhome",
        );
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        remove_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type"]);
    }
}
