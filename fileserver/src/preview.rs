//! Previews (issue 14): the apps a session runs, reached through its gateway. octod serves
//! them on the content origin (`p<port>-<id>.<content-site>`) and relays each request here.
//!
//! - `/preview/<port>/<path>`: relayed to `<path>` on `127.0.0.1:<port>` (or `[::1]:<port>`
//!   when nothing listens on the IPv4 loopback: `localhost` is `::1` first for Node), HTTP
//!   streamed both ways (SSE included) and upgrades (WebSocket: dev servers' hot reload)
//!   spliced byte for byte. `Host` is the app's own address, which dev servers that check it
//!   (Vite's `allowedHosts`) accept; `X-Forwarded-Host` says where the browser was.
//! - `GET /tunnel/<port>` with `Upgrade: octo-tunnel`: a connection to the app's port (found as
//!   above), answered `101` and then spliced byte for byte: the caller (octod) speaks HTTP to
//!   the app itself over it and keeps it for many requests, so a preview request costs the
//!   gateway two copies of bytes, not the parsing and rewriting of an HTTP relay. The caller
//!   sets `Host` and strips its own credential (the token travels on the tunnel's request
//!   alone). Refusals are the same as the relay's; `GET /tunnel/0` is `400`, which tells a
//!   caller that this gateway has tunnels (one from before them answers `404 no_route`).
//!   With `X-Octo-Tunnel: fd` on a Unix socket, the gateway does not even copy: after the
//!   `101` (which says `X-Octo-Tunnel: fd` too) and one byte from the caller (so that the
//!   caller reads the `101` alone, never the message that carries the descriptor), it sends
//!   the connected socket to the app as `SCM_RIGHTS` with one byte and closes its own copies.
//!   The caller then talks to the app directly; what it holds is one connection the gateway
//!   made, to a port the gateway allowed, and nothing else of the container;
//! - `GET /api/ports`: the TCP ports listening in the container (`/proc/net/tcp` and
//!   `/proc/net/tcp6`, state `LISTEN`, on a loopback or the wildcard address), without the
//!   session's own services.
//!
//! A port outside 1024–65535 is `400`, one of the session's own services (opencode, the model
//! gateway's bridge: [`Previews::reserved`]) `403`, and a port nothing listens on `502
//! nothing_listening` at once: no waiting, an app that is not running is no session starting.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::error::{ApiError, Code};
use crate::relay::{self, Upstream, UpstreamIo};

/// The lowest port a preview reaches: below it are system services, never an app of a user's.
pub const MIN_PORT: u16 = 1024;

/// What the gateway knows of previews: the ports it never relays nor lists, and its
/// connections to the apps.
#[derive(Debug, Clone, Default)]
pub struct Previews {
    /// The session's own services' ports (opencode's, the model gateway bridge's).
    pub reserved: Vec<u16>,
    pool: AppPool,
}

/// Connections to the apps, kept alive between requests: a dev server's page loads dozens of
/// files, and a connection of its own for each (connect, accept, handshake) cost most of a
/// preview request (`cargo xtask bench proxy`). The first request to a port finds its address
/// (the IPv4 loopback, else the IPv6 one) on a connection of its own; later ones go through
/// the pool to that address, until a connection to it is refused.
#[derive(Clone)]
struct AppPool {
    client: Client<HttpConnector, Body>,
    known: Arc<Mutex<HashMap<u16, SocketAddr>>>,
}

impl Default for AppPool {
    fn default() -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(relay::CONNECT_TIMEOUT));
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(http),
            known: Arc::default(),
        }
    }
}

impl std::fmt::Debug for AppPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppPool").finish_non_exhaustive()
    }
}

impl AppPool {
    fn known(&self, port: u16) -> Option<SocketAddr> {
        self.known.lock().ok()?.get(&port).copied()
    }

    fn remember(&self, port: u16, addr: SocketAddr) {
        if let Ok(mut known) = self.known.lock() {
            known.insert(port, addr);
        }
    }

    fn forget(&self, port: u16) {
        if let Ok(mut known) = self.known.lock() {
            known.remove(&port);
        }
    }

    /// `request` (its target the app's path and query) to the app at `addr` over a pooled
    /// connection; the answer streamed back without hop-by-hop headers.
    async fn send(
        &self,
        port: u16,
        addr: SocketAddr,
        target: &Uri,
        request: Request,
    ) -> Result<Response, Failed> {
        let (mut parts, body) = request.into_parts();
        relay::remove_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::AUTHORIZATION);
        let host = HeaderValue::try_from(addr.to_string())
            .map_err(|_| Failed::Other(ApiError::new(Code::BadRequest, "malformed address")))?;
        parts.headers.insert(header::HOST, host);
        parts.uri = format!("http://{addr}{target}").parse().map_err(|_| {
            Failed::Other(ApiError::new(Code::BadRequest, "malformed request target"))
        })?;
        parts.version = axum::http::Version::HTTP_11;
        let answer = self
            .client
            .request(Request::from_parts(parts, body))
            .await
            .map_err(|e| {
                if e.is_connect() {
                    self.forget(port);
                    Failed::Refused
                } else {
                    tracing::warn!(port, error = %e, "a relayed preview request failed");
                    Failed::Other(ApiError::new(
                        Code::BadGateway,
                        "the app did not answer properly",
                    ))
                }
            })?;
        let (mut head, body) = answer.into_parts();
        relay::remove_hop_by_hop(&mut head.headers);
        Ok(Response::from_parts(head, Body::new(body)))
    }
}

/// Why a pooled request got no answer.
enum Failed {
    /// The app's address refused the connection: the app stopped, or listens elsewhere now.
    Refused,
    Other(ApiError),
}

/// A copy of `request`'s head with an empty body, if its own body is empty: what can be sent
/// again on a fresh connection when the pooled address refused it.
fn again(request: &Request) -> Option<Request> {
    use axum::body::HttpBody as _;
    if request.body().size_hint().exact() != Some(0) {
        return None;
    }
    let mut copy = Request::new(Body::empty());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

fn nothing_listening(port: u16) -> ApiError {
    ApiError::new(
        Code::NothingListening,
        format!("nothing in the session answers on port {port}; is the app running?"),
    )
}

impl Previews {
    /// Previews that never reach the session's own services on `reserved`.
    pub fn new(reserved: Vec<u16>) -> Self {
        Self {
            reserved,
            pool: AppPool::default(),
        }
    }

    /// The port `text` names, if a preview may reach it.
    pub fn check(&self, text: &str) -> Result<u16, ApiError> {
        let port = text
            .parse::<u32>()
            .ok()
            .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                ApiError::new(Code::BadRequest, format!("not a port number: {text:?}"))
            })?;
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p >= MIN_PORT)
            .ok_or_else(|| {
                ApiError::new(
                    Code::BadRequest,
                    format!("previews reach ports {MIN_PORT}–65535, not {port}"),
                )
            })?;
        if self.reserved.contains(&port) {
            return Err(ApiError::new(
                Code::PermissionDenied,
                format!("port {port} is one of the session's own services, not an app"),
            ));
        }
        Ok(port)
    }
}

/// One listening port, as `GET /api/ports` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listening {
    /// The port.
    pub port: u16,
    /// The address it listens on (`127.0.0.1`, `::1`, `0.0.0.0`, `::`).
    pub address: String,
}

/// The body of `GET /api/ports`.
#[derive(Debug, Serialize)]
pub struct Ports {
    /// Listening ports, ascending, each once (its first address).
    pub ports: Vec<Listening>,
}

/// `GET /api/ports`.
pub async fn ports(previews: Previews) -> Result<Json<Ports>, ApiError> {
    let found = crate::blocking(move || {
        let mut found = Vec::new();
        for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
            match std::fs::read_to_string(file) {
                Ok(text) => found.extend(listening(&text, v6)),
                // No IPv6 in the container: no tcp6 file.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ApiError::internal("reading the listening ports", &e)),
            }
        }
        Ok(found)
    })
    .await?;
    let mut ports: Vec<Listening> = Vec::new();
    for (address, port) in found {
        if port < MIN_PORT
            || previews.reserved.contains(&port)
            || ports.iter().any(|p| p.port == port)
        {
            continue;
        }
        ports.push(Listening {
            port,
            address: address.to_string(),
        });
    }
    ports.sort_by_key(|p| p.port);
    Ok(Json(Ports { ports }))
}

/// The sockets of a `/proc/net/tcp` (or `tcp6` when `v6`) text that listen on a loopback or
/// the wildcard address. Pure; lines it cannot read are skipped.
pub fn listening(text: &str, v6: bool) -> Vec<(IpAddr, u16)> {
    const LISTEN: &str = "0A";
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if state != LISTEN {
                return None;
            }
            let (addr, port) = local.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let addr = if v6 {
                IpAddr::V6(proc_ipv6(addr)?)
            } else {
                IpAddr::V4(Ipv4Addr::from(
                    u32::from_str_radix(addr, 16).ok()?.to_ne_bytes(),
                ))
            };
            let reachable = addr.is_loopback()
                || addr.is_unspecified()
                || matches!(addr, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()));
            reachable.then_some((addr, port))
        })
        .collect()
}

/// An IPv6 address as the kernel prints it in `/proc/net/tcp6`: four 32-bit words in hex,
/// each the memory of the address's four bytes read as a number in the host's byte order.
fn proc_ipv6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
        let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Some(Ipv6Addr::from(bytes))
}

/// The `Upgrade` protocol of a tunnel.
pub const TUNNEL_PROTOCOL: &str = "octo-tunnel";

/// `GET /tunnel/<port>`: see the module's documentation.
pub async fn tunnel(previews: Previews, request: Request) -> Response {
    tunnel_checked(&previews, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn tunnel_checked(previews: &Previews, mut request: Request) -> Result<Response, ApiError> {
    let port = request
        .uri()
        .path()
        .strip_prefix("/tunnel/")
        .unwrap_or_default();
    let port = previews.check(port)?;
    let wanted = request.headers().get(header::UPGRADE).is_some_and(|v| {
        v.as_bytes()
            .eq_ignore_ascii_case(TUNNEL_PROTOCOL.as_bytes())
    });
    if !wanted {
        return Err(ApiError::new(
            Code::BadRequest,
            format!("a tunnel is an upgrade: send Upgrade: {TUNNEL_PROTOCOL}"),
        ));
    }
    // The connection handed over needs the caller's Unix socket (octod's).
    let hand_over = request
        .headers()
        .get(TUNNEL_HEADER)
        .is_some_and(|v| v.as_bytes() == b"fd")
        .then(|| {
            request
                .extensions()
                .get::<axum::extract::ConnectInfo<crate::listen::ConnSocket>>()
                .and_then(|info| info.0.0.clone())
        })
        .flatten();
    let (app, addr) = connect(port).await?;
    let handing_over = hand_over.is_some();
    let caller = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let caller = match caller.await {
            Ok(caller) => caller,
            Err(e) => {
                tracing::debug!(port, error = %e, "a tunnel's upgrade did not complete");
                return;
            }
        };
        if let Some(socket) = hand_over {
            if let Err(e) = send_connection(caller, &socket, app).await {
                tracing::info!(port, error = %e, "handing a connection to the app over failed");
            }
            return;
        }
        let (mut caller, mut app) = (hyper_util::rt::TokioIo::new(caller), app);
        match tokio::io::copy_bidirectional(&mut caller, &mut app).await {
            Ok((up, down)) => tracing::debug!(port, up, down, "tunnel closed"),
            Err(e) => tracing::debug!(port, error = %e, "tunnel ended"),
        }
    });
    let address = HeaderValue::try_from(addr.to_string())
        .map_err(|_| ApiError::new(Code::BadRequest, "malformed address"))?;
    let mut response = Response::builder()
        .status(axum::http::StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, TUNNEL_PROTOCOL)
        .header("x-octo-app", address);
    if handing_over {
        response = response.header(TUNNEL_HEADER, "fd");
    }
    response
        .body(Body::empty())
        .map_err(|_| ApiError::new(Code::BadRequest, "malformed answer"))
}

/// `X-Octo-Tunnel: fd`: the caller asks for the connection itself (see the module's
/// documentation), and the gateway's `101` says it follows.
const TUNNEL_HEADER: &str = "x-octo-tunnel";

/// Sends `app` to the caller on `socket` (the Unix socket under `caller`) once the caller has
/// sent its byte; then `caller` is dropped, which closes the gateway's end.
async fn send_connection(
    caller: hyper::upgrade::Upgraded,
    socket: &std::os::fd::OwnedFd,
    app: TcpStream,
) -> io::Result<()> {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd as _;

    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use tokio::io::AsyncReadExt as _;

    let mut caller = hyper_util::rt::TokioIo::new(caller);
    let mut byte = [0u8; 1];
    tokio::time::timeout(relay::CONNECT_TIMEOUT, caller.read_exact(&mut byte))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    let fds = [app.as_raw_fd()];
    // The socket is non-blocking and its send buffer empty (nothing was sent since the
    // `101`): a short wait covers the case where it is not.
    for _ in 0..100 {
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &[IoSlice::new(b"T")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EAGAIN) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::ErrorKind::TimedOut.into())
}

/// `/preview/<port>` and `/preview/<port>/*`: see the module's documentation.
pub async fn relay(previews: Previews, request: Request) -> Response {
    relay_checked(&previews, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn relay_checked(previews: &Previews, request: Request) -> Result<Response, ApiError> {
    let path = request.uri().path();
    let after = path.strip_prefix("/preview/").unwrap_or_default();
    let (port, rest) = match after.find('/') {
        Some(i) => after.split_at(i),
        None => (after, "/"),
    };
    let port = previews.check(port)?;
    let target: Uri = match request.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    }
    .parse()
    .map_err(|_| ApiError::new(Code::BadRequest, "malformed request target"))?;
    let upgrading = request.headers().contains_key(header::UPGRADE);
    // A known address goes through the pool; when it refuses (the app restarted, perhaps on
    // the other loopback), a request without a body looks for the app again at once.
    let request = if !upgrading && let Some(addr) = previews.pool.known(port) {
        let copy = again(&request);
        match previews.pool.send(port, addr, &target, request).await {
            Ok(answer) => return Ok(answer),
            Err(Failed::Other(e)) => return Err(e),
            Err(Failed::Refused) => copy.ok_or_else(|| nothing_listening(port))?,
        }
    } else {
        request
    };
    let (app, addr) = connect(port).await?;
    let io = UpstreamIo::Tcp(app);
    let upstream = Upstream::App(addr);
    if upgrading {
        let host = HeaderValue::try_from(addr.to_string())
            .map_err(|_| ApiError::new(Code::BadRequest, "malformed address"))?;
        return relay::upgrade(&upstream, io, target, host, request).await;
    }
    previews.pool.remember(port, addr);
    let (mut parts, body) = request.into_parts();
    parts.uri = target;
    relay::exchange(&upstream, io, Request::from_parts(parts, body)).await
}

/// A connection to the app on `port`: the IPv4 loopback, else the IPv6 one.
async fn connect(port: u16) -> Result<(TcpStream, SocketAddr), ApiError> {
    let mut last = None;
    for ip in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        let addr = SocketAddr::new(ip, port);
        match tokio::time::timeout(relay::CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr));
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(io::ErrorKind::TimedOut.into()),
        }
    }
    let reason = last.map_or_else(String::new, |e| format!(" ({})", e.kind()));
    Err(ApiError::new(
        Code::NothingListening,
        format!("nothing in the session answers on port {port}{reason}; is the app running?"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A2DC 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0
   1: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0BB8 0100007F:D0A2 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0200000A:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4 1 0000000000000000 100 0 0 10 0
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1435 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:22B8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 6 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:2328 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7 1 0000000000000000 100 0 0 10 0
   3: 000080FE00000000FF005450B6AD1DFE:2329 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 8 1 0000000000000000 100 0 0 10 0
";

    fn check(text: &str, v6: bool, expected: &[(&str, u16)]) {
        let got: Vec<(String, u16)> = listening(text, v6)
            .into_iter()
            .map(|(a, p)| (a.to_string(), p))
            .collect();
        let expected: Vec<(String, u16)> = expected
            .iter()
            .map(|(a, p)| ((*a).to_owned(), *p))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn listening_sockets_on_loopback_or_any_address() {
        // An established connection (st 01) and a listener on another address are not apps
        // a preview reaches.
        check(TCP, false, &[("127.0.0.1", 41692), ("0.0.0.0", 3000)]);
        check(
            TCP6,
            true,
            &[("::1", 5173), ("::", 8888), ("::ffff:127.0.0.1", 9000)],
        );
        check("header only\n", false, &[]);
        check("h\n 0: zz:zz 0 0A\n 1: 0100007F\n", false, &[]);
    }

    #[test]
    fn ports_a_preview_may_reach() {
        let previews = Previews::new(vec![41820, 41830]);
        assert_eq!(previews.check("3000").expect("an app's port"), 3000);
        assert_eq!(previews.check("1024").expect("the lowest"), 1024);
        assert_eq!(previews.check("65535").expect("the highest"), 65535);
        for (text, code) in [
            ("80", Code::BadRequest),
            ("0", Code::BadRequest),
            ("65536", Code::BadRequest),
            ("+3000", Code::BadRequest),
            ("3000x", Code::BadRequest),
            ("", Code::BadRequest),
            ("41820", Code::PermissionDenied),
            ("41830", Code::PermissionDenied),
        ] {
            assert_eq!(previews.check(text).expect_err(text).code, code, "{text}");
        }
    }
}
