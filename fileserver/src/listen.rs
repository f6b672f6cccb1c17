//! Where the server listens: a socket passed by systemd or Podman (`LISTEN_FDS`, fd 3), or
//! one bound here (TCP, or a Unix socket for the session gateway), and the connections it
//! accepts, which close gracefully (see [`Conn`]).
//!
//! Socket activation is taken without checking `LISTEN_PID`: inside the session container
//! Podman sets it to 1 (the container's init, `tini`), and the gateway is a grandchild of it.
//! Instead the descriptor itself is checked: it must be a listening stream socket.

use std::fmt;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use nix::sys::socket::{self, AddressFamily, SockType, SockaddrLike, SockaddrStorage, sockopt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// How long a closed connection keeps reading (and discarding) what the client still sends.
pub const LINGER: Duration = Duration::from_secs(5);
/// How much a closed connection reads (and discards) at most before it gives up.
pub const LINGER_BYTES: u64 = 64 << 20;

/// An address to bind: `host:port`, or a Unix socket path (`unix:/run/x.sock` or `/run/x.sock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(std::net::SocketAddr),
    /// A Unix stream socket at this path.
    Unix(PathBuf),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path".to_owned());
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        if s.starts_with('/') {
            return Ok(ListenAddr::Unix(PathBuf::from(s)));
        }
        s.parse()
            .map(ListenAddr::Tcp)
            .map_err(|_| format!("not an address (host:port, unix:PATH or /PATH): {s:?}"))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Why no listener could be had.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// `LISTEN_FDS` was not a number.
    #[error("LISTEN_FDS is not a number: {0:?}")]
    BadCount(String),
    /// The passed descriptor is not what we can serve on.
    #[error("fd {LISTEN_FDS_START} passed by socket activation is unusable: {0}")]
    Unusable(String),
    /// Binding failed.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// What we tried to bind.
        addr: ListenAddr,
        /// Why it failed.
        source: io::Error,
    },
}

/// A listening socket of either kind, not yet registered with the async runtime (so it can be
/// taken before the runtime starts).
#[derive(Debug)]
pub enum StdListener {
    /// TCP.
    Tcp(std::net::TcpListener),
    /// A Unix stream socket.
    Unix(std::os::unix::net::UnixListener),
}

/// Takes the socket passed by socket activation, given the value of `LISTEN_FDS`: `None`
/// when it is absent or `0`. Only fd 3 is used; further descriptors are left alone (and
/// logged). The caller unsets `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES` so that no
/// child inherits them. Fd 3 is taken at most once per process: a second call is an error.
pub fn activated(listen_fds: Option<&str>) -> Result<Option<StdListener>, ListenError> {
    let Some(raw) = listen_fds else {
        return Ok(None);
    };
    let count: u32 = raw
        .trim()
        .parse()
        .map_err(|_| ListenError::BadCount(raw.to_owned()))?;
    if count == 0 {
        return Ok(None);
    }
    if count > 1 {
        tracing::warn!(
            count,
            "socket activation passed several sockets; serving only fd 3"
        );
    }
    let fd = take_fd()?;
    let unusable = |what: &str, e: nix::errno::Errno| ListenError::Unusable(format!("{what}: {e}"));
    if socket::getsockopt(&fd, sockopt::SockType).map_err(|e| unusable("SO_TYPE", e))?
        != SockType::Stream
    {
        return Err(ListenError::Unusable("not a stream socket".to_owned()));
    }
    if !socket::getsockopt(&fd, sockopt::AcceptConn).map_err(|e| unusable("SO_ACCEPTCONN", e))? {
        return Err(ListenError::Unusable("not listening".to_owned()));
    }
    let local: SockaddrStorage = socket::getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd))
        .map_err(|e| unusable("getsockname", e))?;
    let listener = match local.family() {
        Some(AddressFamily::Unix) => StdListener::Unix(fd.into()),
        Some(AddressFamily::Inet | AddressFamily::Inet6) => StdListener::Tcp(fd.into()),
        other => {
            return Err(ListenError::Unusable(format!(
                "unsupported address family {other:?}"
            )));
        }
    };
    Ok(Some(listener))
}

/// Whether fd 3 has been taken (made an `OwnedFd`) already.
static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[allow(unsafe_code)]
fn take_fd() -> Result<OwnedFd, ListenError> {
    if TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Err(ListenError::Unusable("already taken".to_owned()));
    }
    // SAFETY: fd 3 is only borrowed here to ask the kernel whether it is open at all
    // (F_GETFD fails with EBADF otherwise), so an `OwnedFd` is never made of a closed number.
    let open = nix::fcntl::fcntl(
        unsafe { std::os::fd::BorrowedFd::borrow_raw(LISTEN_FDS_START) },
        nix::fcntl::FcntlArg::F_GETFD,
    );
    if let Err(e) = open {
        return Err(ListenError::Unusable(format!("not open: {e}")));
    }
    // SAFETY: the descriptor is open (checked above) and socket activation hands it to this
    // process once; `TAKEN` makes sure it becomes an `OwnedFd` only once, and the binary calls
    // this before anything else could have claimed fd 3.
    Ok(unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) })
}

/// A listener of either kind, serving [`Conn`]s. `axum::serve` accepts it.
#[derive(Debug)]
pub enum Listener {
    /// TCP (`TCP_NODELAY` is set on every connection).
    Tcp(TcpListener),
    /// A Unix stream socket.
    Unix(UnixListener),
}

impl Listener {
    /// Binds `addr`. A Unix socket's parent directory must exist; a stale socket file there is
    /// replaced (anything else is kept and the bind fails); the socket is made mode 0600.
    pub async fn bind(addr: &ListenAddr) -> Result<Listener, ListenError> {
        let err = |source| ListenError::Bind {
            addr: addr.clone(),
            source,
        };
        match addr {
            ListenAddr::Tcp(a) => Ok(Listener::Tcp(TcpListener::bind(a).await.map_err(err)?)),
            ListenAddr::Unix(path) => {
                remove_stale_socket(path).map_err(err)?;
                let listener = UnixListener::bind(path).map_err(err)?;
                std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                    .map_err(err)?;
                Ok(Listener::Unix(listener))
            }
        }
    }

    /// Registers a listener taken before the runtime started.
    pub fn from_std(listener: StdListener) -> io::Result<Listener> {
        Ok(match listener {
            StdListener::Tcp(l) => {
                l.set_nonblocking(true)?;
                Listener::Tcp(TcpListener::from_std(l)?)
            }
            StdListener::Unix(l) => {
                l.set_nonblocking(true)?;
                Listener::Unix(UnixListener::from_std(l)?)
            }
        })
    }

    /// What it listens on, for the log.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp".to_owned(), |a| a.to_string()),
            Listener::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
                .unwrap_or_else(|| "unix socket".to_owned()),
        }
    }
}

fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            std::fs::remove_file(path)
        }
        _ => Ok(()),
    }
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

impl From<UnixListener> for Listener {
    fn from(l: UnixListener) -> Self {
        Listener::Unix(l)
    }
}

/// The peer of a connection, for the log.
#[derive(Debug, Clone)]
pub enum Peer {
    /// A TCP peer.
    Tcp(std::net::SocketAddr),
    /// A Unix socket peer (octod; unnamed).
    Unix,
}

impl axum::serve::Listener for Listener {
    type Io = Conn;
    type Addr = Peer;

    async fn accept(&mut self) -> (Conn, Peer) {
        loop {
            let accepted = match self {
                Listener::Tcp(l) => TcpListener::accept(l).await.map(|(s, a)| {
                    // No Nagle: a response's head and body leave in separate writes, and with
                    // Nagle the body waits for the client's delayed ACK (~40 ms per download).
                    let _ = s.set_nodelay(true);
                    (Stream::Tcp(s), Peer::Tcp(a))
                }),
                Listener::Unix(l) => UnixListener::accept(l)
                    .await
                    .map(|(s, _)| (Stream::Unix(s), Peer::Unix)),
            };
            match accepted {
                Ok((stream, peer)) => return (Conn::new(stream), peer),
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning (as axum does).
                    tracing::error!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        match self {
            Listener::Tcp(l) => l.local_addr().map(Peer::Tcp),
            Listener::Unix(_) => Ok(Peer::Unix),
        }
    }
}

/// The Unix socket of a connection (a duplicate of its descriptor), for a handler that hands
/// something over on it (`SCM_RIGHTS`: the preview tunnels); `None` on TCP. axum gives it to
/// handlers as `ConnectInfo<ConnSocket>`.
#[derive(Debug, Clone)]
pub struct ConnSocket(pub Option<Arc<std::os::fd::OwnedFd>>);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Listener>>
    for ConnSocket
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, Listener>) -> Self {
        use std::os::fd::AsFd as _;
        Self(
            stream
                .io()
                .unix()
                .and_then(|s| s.as_fd().try_clone_to_owned().ok())
                .map(Arc::new),
        )
    }
}

/// An accepted stream of either kind.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix.
    Unix(UnixStream),
}

/// An accepted connection that closes without losing its last answer.
///
/// When the server answers before reading the whole request body (a `413` decided from
/// `Content-Length`, a `401`, a `404`) and then closes, the kernel answers the client's
/// further data with a reset, and a client still sending sees the reset instead of the
/// answer. So, once the HTTP layer has shut the write side down (the answer is complete and
/// followed by a FIN) and drops the connection, a task keeps reading and discarding what the
/// client still sends, until it closes, for at most [`LINGER`] and [`LINGER_BYTES`]; only then
/// is the socket closed. A connection dropped without a clean shutdown (an error) closes at
/// once.
#[derive(Debug)]
pub struct Conn {
    stream: Option<Stream>,
    shut_down: bool,
}

impl Conn {
    fn new(stream: Stream) -> Conn {
        Conn {
            stream: Some(stream),
            shut_down: false,
        }
    }

    /// The Unix stream of a connection accepted on a Unix socket.
    pub fn unix(&self) -> Option<&UnixStream> {
        match self.stream.as_ref()? {
            Stream::Unix(stream) => Some(stream),
            Stream::Tcp(_) => None,
        }
    }

    fn stream(&mut self) -> Pin<&mut Stream> {
        // The stream is taken only in `drop`.
        Pin::new(self.stream.as_mut().expect("stream present until drop"))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        if !self.shut_down {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(stream));
        }
    }
}

/// Reads and discards until the peer closes, for at most [`LINGER`] and [`LINGER_BYTES`].
async fn drain(mut stream: Stream) {
    let _ = tokio::time::timeout(LINGER, async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut total = 0u64;
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            total += n as u64;
            if total > LINGER_BYTES {
                break;
            }
        }
    })
    .await;
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = std::task::ready!(this.stream().poll_shutdown(cx));
        this.shut_down = result.is_ok();
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<ListenAddr, ()>) {
        // `ok()` on both: an error carries nothing to compare.
        let got = input.parse::<ListenAddr>().ok();
        assert_eq!(got, expected.ok(), "{input}");
    }

    #[test]
    fn listen_addresses() {
        check(
            "127.0.0.1:41821",
            Ok(ListenAddr::Tcp("127.0.0.1:41821".parse().expect("addr"))),
        );
        check(
            "[::1]:80",
            Ok(ListenAddr::Tcp("[::1]:80".parse().expect("addr"))),
        );
        check(
            "unix:/run/g.sock",
            Ok(ListenAddr::Unix("/run/g.sock".into())),
        );
        check("/run/g.sock", Ok(ListenAddr::Unix("/run/g.sock".into())));
        check("unix:", Err(()));
        check("localhost", Err(()));
        check("", Err(()));
    }

    #[test]
    fn no_activation_without_listen_fds() {
        assert!(matches!(activated(None), Ok(None)));
        assert!(matches!(activated(Some("0")), Ok(None)));
        assert!(matches!(
            activated(Some("x")),
            Err(ListenError::BadCount(_))
        ));
    }
}
