//! Who is on the other end of a connection to octod's HTTP server, and whether its
//! `X-Forwarded-*` headers are believed.
//!
//! Packaged, octod's HTTP socket is a Unix socket that only Caddy can open (`root:octo-proxy`,
//! 0660; Caddy's unit has the group): a Unix peer is the reverse proxy, so its forwarded
//! headers are trusted. A TCP peer's are trusted only when its address is in
//! `server.trusted_proxies` (empty by default): a local user who connects to a loopback port
//! cannot choose the client address that the login throttle and the audit log see.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

pub use crate::config::{ListenAddr, TrustedProxies, canonical};

/// A connection's peer as the server saw it when it accepted the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientPeer {
    /// The TCP peer's address; `None` for a Unix socket peer.
    pub addr: Option<SocketAddr>,
    /// The peer is the configured reverse proxy: its `X-Forwarded-*` headers are believed.
    pub trusted: bool,
}

impl ClientPeer {
    /// A peer over a Unix socket: the proxy (only it may connect).
    pub const UNIX: Self = Self {
        addr: None,
        trusted: true,
    };
}

impl Connected<IncomingStream<'_, HttpListener>> for ClientPeer {
    fn connect_info(stream: IncomingStream<'_, HttpListener>) -> Self {
        *stream.remote_addr()
    }
}

/// octod's HTTP listener: TCP (with `TCP_NODELAY` on every connection: the proxy passes a
/// response's head on as soon as it arrives, and with Nagle a body written apart from its head
/// waits for the client's delayed ACK, ~40 ms) or a Unix socket.
#[derive(Debug)]
pub enum HttpListener {
    Tcp {
        listener: TcpListener,
        trusted: Arc<TrustedProxies>,
    },
    Unix(UnixListener),
}

impl HttpListener {
    pub fn tcp(listener: TcpListener, trusted: TrustedProxies) -> Self {
        Self::Tcp {
            listener,
            trusted: Arc::new(trusted),
        }
    }

    /// What it listens on, for the log.
    pub fn describe(&self) -> String {
        match self {
            Self::Tcp { listener, .. } => listener
                .local_addr()
                .map_or_else(|e| format!("TCP ({e})"), |a| a.to_string()),
            Self::Unix(listener) => listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf))
                .map_or_else(|| "a Unix socket".to_owned(), |p| p.display().to_string()),
        }
    }

    async fn try_accept(&mut self) -> io::Result<(Conn, ClientPeer)> {
        match self {
            Self::Tcp { listener, trusted } => {
                let (tcp, addr) = listener.accept().await?;
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::debug!("setting TCP_NODELAY on an accepted connection: {error}");
                }
                let peer = ClientPeer {
                    addr: Some(addr),
                    trusted: trusted.contains(addr.ip()),
                };
                Ok((Conn::Tcp(tcp), peer))
            }
            Self::Unix(listener) => {
                let (unix, _) = listener.accept().await?;
                Ok((Conn::Unix(unix), ClientPeer::UNIX))
            }
        }
    }
}

impl axum::serve::Listener for HttpListener {
    type Io = Conn;
    type Addr = ClientPeer;

    async fn accept(&mut self) -> (Conn, ClientPeer) {
        loop {
            match self.try_accept().await {
                Ok(accepted) => return accepted,
                // As axum's own listeners: a failed accept (out of file descriptors, a
                // connection reset before it was taken) is logged, and accepting goes on.
                Err(error) => {
                    tracing::warn!("accepting an HTTP connection: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<ClientPeer> {
        match self {
            Self::Tcp { listener, .. } => listener.local_addr().map(|a| ClientPeer {
                addr: Some(a),
                trusted: false,
            }),
            Self::Unix(_) => Ok(ClientPeer::UNIX),
        }
    }
}

/// An accepted connection of [`HttpListener`].
#[derive(Debug)]
pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn peers_as_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("http.sock");
        let mut unix = HttpListener::Unix(UnixListener::bind(&path).expect("bind"));
        let _client = UnixStream::connect(&path).await.expect("connect");
        let (_, peer) = axum::serve::Listener::accept(&mut unix).await;
        assert_eq!(peer, ClientPeer::UNIX);

        for (trusted, expect) in [(vec!["127.0.0.1"], true), (vec![], false)] {
            let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = tcp.local_addr().expect("addr");
            let mut tcp = HttpListener::tcp(tcp, TrustedProxies::parse(&trusted).expect("parse"));
            let _client = TcpStream::connect(addr).await.expect("connect");
            let (conn, peer) = axum::serve::Listener::accept(&mut tcp).await;
            assert_eq!(peer.trusted, expect, "{trusted:?}");
            assert!(peer.addr.is_some_and(|a| a.ip().is_loopback()));
            let Conn::Tcp(stream) = conn else {
                panic!("a TCP connection")
            };
            assert!(stream.nodelay().expect("nodelay"), "TCP_NODELAY is set");
        }
    }
}
