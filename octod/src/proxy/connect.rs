//! The connector of the proxy's pooled client: every session's gateway listens on its own Unix
//! socket, so the socket path travels in the request's authority (hex-encoded, a valid
//! host name) and [`SessionConnector`] decodes it back. hyper-util's pool is keyed by scheme and
//! authority, so each session gets its own pool of keep-alive connections without the
//! connector holding any state.
//!
//! For the proxy benchmark only, the connector can instead send everything to one TCP
//! address (the path sessions took before they had sockets), so that one run compares both.

use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::CONNECT_TIMEOUT;

/// The authority that stands for `socket`: the path's bytes in lowercase hex.
pub(crate) fn authority(socket: &Path) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = socket.as_os_str().as_bytes();
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// The socket path an [`authority`] stands for.
pub(crate) fn socket_of(uri: &Uri) -> Option<PathBuf> {
    let host = uri.host()?.as_bytes();
    if host.is_empty() || host.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = host
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect::<Option<Vec<u8>>>()?;
    Some(PathBuf::from(OsStr::from_bytes(&bytes)))
}

/// Connects to the Unix socket named by a URI's authority (or, benchmarking, to `tcp`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SessionConnector {
    pub(crate) tcp: Option<SocketAddr>,
}

impl tower::Service<Uri> for SessionConnector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tcp = self.tcp;
        Box::pin(async move {
            if let Some(addr) = tcp {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                return Ok(TokioIo::new(Stream::Tcp(stream)));
            }
            let socket = socket_of(&uri).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "not a session socket")
            })?;
            Ok(TokioIo::new(Stream::Unix(connect(&socket).await?)))
        })
    }
}

/// A connection to a gateway.
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
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
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Unix(s) => s.is_write_vectored(),
            Stream::Tcp(s) => s.is_write_vectored(),
        }
    }
}

/// Connects to `socket`. Refusals come at once; the bound only matters for a listening socket
/// whose backlog is full (systemd holds connections to a waking session in it).
pub(crate) async fn connect(socket: &Path) -> io::Result<UnixStream> {
    match tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(socket)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "connecting to the session's socket timed out",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_round_trip_socket_paths() {
        let check = |path: &str| {
            let uri: Uri = format!("http://{}/x?y", authority(Path::new(path)))
                .parse()
                .expect("uri");
            assert_eq!(socket_of(&uri), Some(PathBuf::from(path)), "{path}");
        };
        check("/run/user/1000/octo/sessions/abc1.sock");
        check("/tmp/a b/ü:@?#.sock");
        assert_eq!(authority(Path::new("/a")), "2f61");
        let not = |uri: &str| socket_of(&uri.parse().expect("uri"));
        assert_eq!(not("http://127.0.0.1/"), None);
        assert_eq!(not("http://2f6/"), None);
    }
}
