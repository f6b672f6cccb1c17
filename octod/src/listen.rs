//! Listening sockets: taken from systemd socket activation (`LISTEN_FDS`, named by
//! `FileDescriptorName=`) or, without it (development), bound from the configured address.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};

/// Where the listeners came from, for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    SocketActivation,
    Bound,
}

/// Errors while obtaining listeners.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("reading the sockets passed by systemd (LISTEN_FDS): {0}")]
    Activation(#[source] std::io::Error),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("socket {name:?} passed by systemd is not usable: {source}")]
    Unusable {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// Returns the HTTP listener: the socket named `http` (or the only unnamed one) when systemd
/// passed sockets, else a fresh one bound to `fallback`.
pub async fn http_listener(
    fallback: SocketAddr,
) -> Result<(tokio::net::TcpListener, Origin), ListenError> {
    let passed = sd_notify::listen_fds_with_names(true).map_err(ListenError::Activation)?;
    let fds: Vec<(RawFd, String)> = passed.collect();
    if let Some((fd, name)) = fds
        .iter()
        .find(|(_, name)| name == "http" || name == "unknown" || fds.len() == 1)
    {
        let listener = take_tcp_listener(*fd).map_err(|source| ListenError::Unusable {
            name: name.clone(),
            source,
        })?;
        return Ok((listener, Origin::SocketActivation));
    }
    let listener = tokio::net::TcpListener::bind(fallback)
        .await
        .map_err(|source| ListenError::Bind {
            addr: fallback,
            source,
        })?;
    Ok((listener, Origin::Bound))
}

#[allow(unsafe_code)]
fn take_tcp_listener(fd: RawFd) -> std::io::Result<tokio::net::TcpListener> {
    // SAFETY: systemd passes each descriptor once, numbered from SD_LISTEN_FDS_START, and
    // `listen_fds_with_names(true)` unset the variables so nothing else in this process takes
    // ownership of it again.
    let std_listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    std_listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(std_listener)
}
