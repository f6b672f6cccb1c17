//! Previews over tunnels: octod speaks HTTP to a session's app itself, over a connection the
//! gateway splices to the app's port (`GET /tunnel/<port>` with `Upgrade: octo-tunnel`,
//! answered `101`), and keeps that connection for the next requests to the same port. The
//! gateway then only copies bytes: no parsing, no header maps, no second pooled client, which
//! was half of what a preview request cost (`cargo xtask bench proxy`).
//!
//! octod asks for the connection itself (`X-Octo-Tunnel: fd`): after the `101` it sends one
//! byte and receives the gateway's connected socket to the app (`SCM_RIGHTS`), checks that it
//! is a TCP stream, and speaks to the app on it directly; the gateway then has no part in the
//! requests at all. (A gateway that answers the `101` without `X-Octo-Tunnel: fd` splices the
//! connection instead, and octod speaks over that.)
//!
//! Tunnels have a pooled client of their own; its authority is the session's socket (as for
//! the gateway's pool, [`super::connect::authority`]) with the app's port as the URI's port, so
//! each (session, port) gets its own pool. The connector takes the session's token from the
//! [`Book`], which the proxy fills as requests pass (a token never travels in a URI).
//!
//! A gateway from before tunnels (a session still on an older image) answers `/tunnel/…`
//! with `404 no_route`. So a session's socket is asked once (`GET /tunnel/0`: `400` from a
//! gateway with tunnels) while its previews go through the gateway's HTTP relay as before;
//! only a socket known to have tunnels gets them, and one without is asked again after
//! [`RELAY_RECHECK`] (the session may have been restarted on a new image).

use std::collections::HashMap;
use std::error::Error as _;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use axum::http::{HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::upgrade::Upgraded;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpStream, UnixStream};

use super::connect::{authority, connect, socket_of};
use super::metrics::TunnelCounts;
use super::{CONNECT_TIMEOUT, credential};
use crate::store::Secret;

/// The `Upgrade` protocol of a tunnel (the gateway's `TUNNEL_PROTOCOL`).
const PROTOCOL: &str = "octo-tunnel";
/// How long a socket known to have no tunnels keeps the relay before it is asked again.
pub(super) const RELAY_RECHECK: Duration = Duration::from_secs(600);
/// Sockets the book remembers; past it, it starts over (entries come back with requests).
const BOOK_MAX: usize = 4096;
/// The largest refusal read from a gateway (its JSON error).
const MAX_REFUSAL: usize = 16 * 1024;
/// How long opening a tunnel may take: connecting may wake an idle session (its socket starts
/// it), which a request waits for up to [`super::resolve::WAKE_WAIT`]; the request's own wait
/// ends it sooner, and this bounds a gateway that never answers.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// What octod knows of a session socket's tunnels, and the token to open one.
#[derive(Debug, Default)]
pub(super) struct Book {
    entries: Mutex<HashMap<PathBuf, Entry>>,
}

#[derive(Debug)]
struct Entry {
    token: Secret,
    way: Way,
}

#[derive(Debug, Clone, Copy)]
enum Way {
    /// Not asked yet, or the question failed.
    Unknown,
    /// Being asked.
    Asking,
    Tunnel,
    /// No tunnels, as of then.
    Relay(Instant),
}

/// What a preview request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Tunnel,
    /// The gateway's relay; `ask`: this request should have the socket asked.
    Relay {
        ask: bool,
    },
}

impl Book {
    /// The route for a preview request to `socket`, remembering its `token`.
    pub(super) fn route(&self, socket: &Path, token: &Secret) -> Route {
        let Ok(mut entries) = self.entries.lock() else {
            return Route::Relay { ask: false };
        };
        if let Some(entry) = entries.get_mut(socket) {
            if entry.token != *token {
                entry.token = token.clone();
            }
            return match entry.way {
                Way::Tunnel => Route::Tunnel,
                Way::Asking => Route::Relay { ask: false },
                Way::Relay(since) if since.elapsed() < RELAY_RECHECK => Route::Relay { ask: false },
                Way::Unknown | Way::Relay(_) => {
                    entry.way = Way::Asking;
                    Route::Relay { ask: true }
                }
            };
        }
        if entries.len() >= BOOK_MAX {
            entries.clear();
        }
        entries.insert(
            socket.to_owned(),
            Entry {
                token: token.clone(),
                way: Way::Asking,
            },
        );
        Route::Relay { ask: true }
    }

    /// The answer to the question: `Some(true)` tunnels, `Some(false)` none, `None` unknown.
    fn answered(&self, socket: &Path, tunnels: Option<bool>) {
        if let Ok(mut entries) = self.entries.lock()
            && let Some(entry) = entries.get_mut(socket)
        {
            entry.way = match tunnels {
                Some(true) => Way::Tunnel,
                Some(false) => Way::Relay(Instant::now()),
                None => Way::Unknown,
            };
        }
    }

    fn token(&self, socket: &Path) -> Option<Secret> {
        Some(self.entries.lock().ok()?.get(socket)?.token.clone())
    }
}

/// Asks the gateway on `socket` whether it has tunnels, over the gateway's pool (`client`),
/// and writes the answer into `book`.
pub(super) async fn ask<C>(client: Client<C, Body>, book: Arc<Book>, socket: PathBuf, token: Secret)
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let answer = async {
        let uri = Uri::try_from(format!("http://{}/tunnel/0", authority(&socket))).ok()?;
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = uri;
        request
            .headers_mut()
            .insert(axum::http::header::AUTHORIZATION, credential(&token));
        let response = tokio::time::timeout(CONNECT_TIMEOUT, client.request(request))
            .await
            .ok()?
            .ok()?;
        match response.status() {
            StatusCode::BAD_REQUEST => Some(true),
            StatusCode::NOT_FOUND => Some(false),
            _ => None,
        }
    }
    .await;
    tracing::debug!(socket = %socket.display(), tunnels = ?answer, "asked a gateway for tunnels");
    book.answered(&socket, answer);
}

/// The pooled client of tunnels.
pub(super) type TunnelClient = Client<Connector, Body>;

pub(super) fn client(book: Arc<Book>, counts: Arc<TunnelCounts>) -> TunnelClient {
    Client::builder(TokioExecutor::new())
        // As the gateway's pool: a dev server's page loads dozens of files at once.
        .pool_max_idle_per_host(64)
        .pool_idle_timeout(Duration::from_secs(60))
        .build(Connector { book, counts })
}

/// `http://<socket as authority>:<port><path>?<query>`: the URI of a request to the app on
/// `port` over a tunnel of the session on `socket`.
pub(super) fn uri(socket: &Path, port: u16, path: &str, query: Option<&str>) -> Option<Uri> {
    let authority = authority(socket);
    let mut uri = String::with_capacity(
        "http://:65535".len() + authority.len() + path.len() + query.map_or(0, |q| q.len() + 1),
    );
    uri.push_str("http://");
    uri.push_str(&authority);
    uri.push(':');
    uri.push_str(&port.to_string());
    uri.push_str(path);
    if let Some(query) = query {
        uri.push('?');
        uri.push_str(query);
    }
    Uri::try_from(uri).ok()
}

/// The `Host` an app sees on a tunnel: its own address as a browser on the same machine would
/// name it (dev servers that check it, Vite's `allowedHosts`, accept `localhost`).
pub(super) fn host(port: u16) -> Option<HeaderValue> {
    HeaderValue::try_from(format!("localhost:{port}")).ok()
}

/// The gateway's answer when it opened no tunnel (`nothing_listening`, a reserved port): the
/// error a connect of the tunnel client carries.
#[derive(Debug)]
pub(super) struct Refused {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the gateway opened no tunnel: {}", self.status)
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// The refusal in `error`'s chain of sources, if the connect failed with one.
    pub(super) fn of(error: &hyper_util::client::legacy::Error) -> Option<&Refused> {
        let mut source = error.source();
        while let Some(error) = source {
            if let Some(refused) = error.downcast_ref::<Refused>() {
                return Some(refused);
            }
            if let Some(inner) = error
                .downcast_ref::<io::Error>()
                .and_then(|e| e.get_ref())
                .and_then(|e| e.downcast_ref::<Refused>())
            {
                return Some(inner);
            }
            source = error.source();
        }
        None
    }

    /// The gateway's answer as the browser gets it.
    pub(super) fn response(&self) -> Response {
        let mut response = (self.status, self.body.clone()).into_response();
        if let Some(content_type) = &self.content_type {
            response
                .headers_mut()
                .insert(CONTENT_TYPE, content_type.clone());
        }
        response
    }
}

/// Opens tunnels: connects to the session's socket named by the URI's authority, asks for a
/// tunnel to the URI's port with the token from the book, and hands hyper the spliced
/// connection once the gateway answered `101`.
#[derive(Debug, Clone)]
pub(super) struct Connector {
    book: Arc<Book>,
    counts: Arc<TunnelCounts>,
}

impl tower::Service<Uri> for Connector {
    type Response = Tunnel;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Tunnel>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let book = Arc::clone(&self.book);
        let counts = Arc::clone(&self.counts);
        Box::pin(async move {
            let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "not a tunnel's URI");
            let socket = socket_of(&uri).ok_or_else(invalid)?;
            let port = uri.port_u16().ok_or_else(invalid)?;
            let token = book
                .token(&socket)
                .ok_or_else(|| io::Error::other("no token for the session's socket"))?;
            let stream = connect(&socket).await?;
            let tunnel = tokio::time::timeout(OPEN_TIMEOUT, open(stream, port, &token))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "opening a tunnel"))??;
            let count = match tunnel {
                Tunnel::Direct(_) => &counts.handed_over,
                Tunnel::Spliced(_) => &counts.spliced,
            };
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(tunnel)
        })
    }
}

/// Asks the gateway on `stream` for a tunnel to `port`.
async fn open(stream: UnixStream, port: u16, token: &Secret) -> io::Result<Tunnel> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "a tunnel's handshake connection failed");
        }
    });
    let mut request = Request::new(Empty::<Bytes>::new());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = Uri::try_from(format!("/tunnel/{port}")).map_err(io::Error::other)?;
    let headers = request.headers_mut();
    headers.insert(HOST, HeaderValue::from_static("gateway"));
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static(PROTOCOL));
    headers.insert(axum::http::header::AUTHORIZATION, credential(token));
    headers.insert(TUNNEL_HEADER, HeaderValue::from_static("fd"));
    let mut response = sender
        .send_request(request)
        .await
        .map_err(io::Error::other)?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = response.status();
        let content_type = response.headers().get(CONTENT_TYPE).cloned();
        let body = Limited::new(response.into_body(), MAX_REFUSAL)
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        return Err(io::Error::other(Refused {
            status,
            content_type,
            body,
        }));
    }
    let handed_over = response
        .headers()
        .get(TUNNEL_HEADER)
        .is_some_and(|v| v.as_bytes() == b"fd");
    let upgraded = hyper::upgrade::on(&mut response)
        .await
        .map_err(io::Error::other)?;
    if !handed_over {
        return Ok(Tunnel::Spliced(upgraded));
    }
    let parts = upgraded
        .downcast::<TokioIo<UnixStream>>()
        .map_err(|_| io::Error::other("the tunnel's connection is not the session's socket"))?;
    if !parts.read_buf.is_empty() {
        return Err(io::Error::other(
            "the gateway sent data before the connection",
        ));
    }
    let stream = parts.io.into_inner();
    let app = receive_connection(&stream).await?;
    Ok(Tunnel::Direct(TokioIo::new(app)))
}

/// `X-Octo-Tunnel: fd` (the gateway's `TUNNEL_HEADER`).
const TUNNEL_HEADER: &str = "x-octo-tunnel";

/// Sends the byte the gateway waits for on `stream`, then receives the connection to the app
/// it sends back: a TCP stream, or an error.
async fn receive_connection(stream: &UnixStream) -> io::Result<TcpStream> {
    use std::io::IoSliceMut;
    use std::os::fd::{AsRawFd as _, RawFd};

    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use tokio::io::Interest;

    loop {
        stream.writable().await?;
        match stream.try_write(b"R") {
            Ok(1) => break,
            Ok(_) => return Err(io::ErrorKind::WriteZero.into()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    let fds: Vec<RawFd> = stream
        .async_io(Interest::READABLE, || {
            let mut byte = [0u8; 1];
            let mut iov = [IoSliceMut::new(&mut byte)];
            let mut space = nix::cmsg_space!([RawFd; 1]);
            let message = recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(io::Error::from)?;
            let mut fds = Vec::new();
            for cmsg in message.cmsgs().map_err(io::Error::from)? {
                if let ControlMessageOwned::ScmRights(received) = cmsg {
                    fds.extend(received);
                }
            }
            if fds.is_empty() && message.bytes == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            Ok(fds)
        })
        .await?;
    let mut owned = fds.into_iter().map(adopt);
    let app = owned
        .next()
        .ok_or_else(|| io::Error::other("the gateway sent no connection"))?;
    // More than one: each is closed as it drops.
    drop(owned);
    let app = std::net::TcpStream::from(app);
    // A TCP stream the gateway connected, or nothing: any other descriptor is refused.
    let address = app.peer_addr()?;
    if !address.ip().is_loopback() {
        return Err(io::Error::other(format!(
            "the gateway sent a connection to {address}, not to the loopback"
        )));
    }
    app.set_nonblocking(true)?;
    app.set_nodelay(true)?;
    TcpStream::from_std(app)
}

/// Takes ownership of a descriptor the kernel installed in this process for a received
/// `SCM_RIGHTS` message.
#[allow(unsafe_code)]
fn adopt(fd: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd as _;
    // SAFETY: `recvmsg` just installed `fd` in this process's table for this message alone
    // (with close-on-exec); nothing else refers to it, so owning it here is sound.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// A connection to an app: its socket, handed over by the session's gateway, or the gateway's
/// connection spliced to it.
#[derive(Debug)]
pub(super) enum Tunnel {
    Direct(TokioIo<TcpStream>),
    Spliced(Upgraded),
}

impl Connection for Tunnel {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Tunnel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Tunnel::Direct(io) => Pin::new(io).poll_read(cx, buf),
            Tunnel::Spliced(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Tunnel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Tunnel::Direct(io) => Pin::new(io).poll_write(cx, buf),
            Tunnel::Spliced(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Tunnel::Direct(io) => Pin::new(io).poll_flush(cx),
            Tunnel::Spliced(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Tunnel::Direct(io) => Pin::new(io).poll_shutdown(cx),
            Tunnel::Spliced(io) => Pin::new(io).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Tunnel::Direct(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Tunnel::Spliced(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Tunnel::Direct(io) => io.is_write_vectored(),
            Tunnel::Spliced(io) => io.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_is_asked_once_and_then_takes_its_answer() {
        let book = Book::default();
        let socket = Path::new("/run/octo/s1.sock");
        let token = Secret::new("t1".to_owned());
        assert_eq!(book.route(socket, &token), Route::Relay { ask: true });
        // While asked, the relay, without asking again.
        assert_eq!(book.route(socket, &token), Route::Relay { ask: false });
        book.answered(socket, Some(true));
        assert_eq!(book.route(socket, &token), Route::Tunnel);
        // A new token (the session was recreated) replaces the old one for the connector.
        let fresh = Secret::new("t2".to_owned());
        assert_eq!(book.route(socket, &fresh), Route::Tunnel);
        assert!(book.token(socket).is_some_and(|t| t == fresh));
        // No tunnels: the relay until the recheck; a failed question is asked again.
        book.answered(socket, Some(false));
        assert_eq!(book.route(socket, &fresh), Route::Relay { ask: false });
        book.answered(socket, None);
        assert_eq!(book.route(socket, &fresh), Route::Relay { ask: true });
    }

    /// A gateway's end of the handover: waits for the caller's byte, then sends `fd`.
    async fn send(gateway: &UnixStream, fd: std::os::fd::RawFd) {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        use std::os::fd::AsRawFd as _;
        let mut byte = [0u8; 1];
        loop {
            gateway.readable().await.expect("readable");
            if gateway.try_read(&mut byte).is_ok() {
                break;
            }
        }
        gateway.writable().await.expect("writable");
        sendmsg::<()>(
            gateway.as_raw_fd(),
            &[std::io::IoSlice::new(b"T")],
            &[ControlMessage::ScmRights(&[fd])],
            MsgFlags::empty(),
            None,
        )
        .expect("sendmsg");
    }

    #[tokio::test]
    async fn a_handed_over_connection_is_a_tcp_stream_to_the_loopback_or_refused() {
        use std::os::fd::AsRawFd as _;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        // A connection to an app on the loopback: taken, and it is the app's.
        let app = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = app.local_addr().expect("address");
        let connected = TcpStream::connect(addr).await.expect("connect");
        let (mut served, _) = app.accept().await.expect("accept");
        let (ours, gateway) = UnixStream::pair().expect("pair");
        let (received, ()) = tokio::join!(
            receive_connection(&ours),
            send(&gateway, connected.as_raw_fd())
        );
        drop(connected);
        let mut received = received.expect("a connection");
        assert_eq!(received.peer_addr().expect("peer"), addr);
        received.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        served.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"ping");

        // A hostile gateway's other descriptors: a Unix socket, a file, a listening socket.
        let (other, _keep) = UnixStream::pair().expect("pair");
        let file = std::fs::File::open("/proc/self/status").expect("file");
        for fd in [other.as_raw_fd(), file.as_raw_fd(), app.as_raw_fd()] {
            let (ours, gateway) = UnixStream::pair().expect("pair");
            let (received, ()) = tokio::join!(receive_connection(&ours), send(&gateway, fd));
            assert!(received.is_err(), "descriptor {fd} was taken");
        }
        // A gateway that sends no descriptor, or closes.
        let (ours, gateway) = UnixStream::pair().expect("pair");
        let silent = async {
            let mut byte = [0u8; 1];
            gateway.readable().await.expect("readable");
            let _ = gateway.try_read(&mut byte);
            gateway.writable().await.expect("writable");
            gateway.try_write(b"T").expect("write");
        };
        let (received, ()) = tokio::join!(receive_connection(&ours), silent);
        assert!(received.is_err());
        let (ours, gateway) = UnixStream::pair().expect("pair");
        drop(gateway);
        assert!(receive_connection(&ours).await.is_err());
    }

    #[test]
    fn tunnel_uris_carry_the_socket_and_the_apps_port() {
        let socket = Path::new("/run/user/1000/octo/sessions/abc1.sock");
        let uri = uri(socket, 5173, "/src/main.ts", Some("t=1&x=%2F")).expect("uri");
        assert_eq!(socket_of(&uri).as_deref(), Some(socket));
        assert_eq!(uri.port_u16(), Some(5173));
        assert_eq!(
            uri.path_and_query()
                .map(axum::http::uri::PathAndQuery::as_str),
            Some("/src/main.ts?t=1&x=%2F")
        );
        assert_eq!(host(5173), Some(HeaderValue::from_static("localhost:5173")));
    }
}
