//! Listening sockets: taken from systemd socket activation (`LISTEN_FDS`, named by
//! `FileDescriptorName=`: `http` and `admin`) or, without it (development), bound from the
//! configured addresses.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};
use std::path::{Path, PathBuf};

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
    #[error("binding the admin socket {path}: {source}")]
    BindUnix {
        path: PathBuf,
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

/// The sockets systemd passed, with their names; read once (it unsets the variables).
pub fn passed() -> Result<Vec<(RawFd, String)>, ListenError> {
    let passed = sd_notify::listen_fds_with_names(true).map_err(ListenError::Activation)?;
    Ok(passed.collect())
}

/// Returns the HTTP listener: the passed socket named `http` (or the only one not named
/// `admin`), else a fresh one bound to `fallback`.
pub async fn http_listener(
    fds: &[(RawFd, String)],
    fallback: SocketAddr,
) -> Result<(tokio::net::TcpListener, Origin), ListenError> {
    if let Some((fd, name)) = pick_http(fds) {
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

/// The HTTP listener as octod serves it: `TCP_NODELAY` on every accepted connection. The
/// proxy passes a response's head on as soon as it arrives, and its body follows in another
/// write whenever the gateway sent them apart (a file download); with Nagle that write waits
/// for the client's delayed ACK, ~40 ms per response. The proxy benchmark serves through
/// this, as `serve` does, so that it measures what octod does.
pub fn without_nagle(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    fn no_delay(tcp: &mut tokio::net::TcpStream) {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!("setting TCP_NODELAY on an accepted connection: {error}");
        }
    }
    axum::serve::ListenerExt::tap_io(listener, no_delay)
}

/// Which passed socket serves HTTP: the one named `http`, else an unnamed one (`unknown`) or
/// the only one not named `admin`. Pure.
fn pick_http(fds: &[(RawFd, String)]) -> Option<&(RawFd, String)> {
    let candidates = fds.iter().filter(|(_, name)| name != ADMIN_NAME).count();
    fds.iter().find(|(_, name)| name == "http").or_else(|| {
        fds.iter()
            .find(|(_, name)| name != ADMIN_NAME && (name == "unknown" || candidates == 1))
    })
}

/// The `FileDescriptorName=` of the admin socket.
pub const ADMIN_NAME: &str = "admin";

/// Returns the admin listener: the passed socket named `admin`, else `path` bound here (its
/// parent directory created, a stale socket file replaced, mode 0666: every connection is
/// authorized by its peer credentials, see `crate::admin::peer`).
pub fn admin_listener(
    fds: &[(RawFd, String)],
    path: &Path,
) -> Result<(tokio::net::UnixListener, Origin), ListenError> {
    if let Some((fd, name)) = fds.iter().find(|(_, name)| name == ADMIN_NAME) {
        let listener = take_unix_listener(*fd).map_err(|source| ListenError::Unusable {
            name: name.clone(),
            source,
        })?;
        return Ok((listener, Origin::SocketActivation));
    }
    let err = |source| ListenError::BindUnix {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    // A socket file left by a previous run refuses the bind; anything else there is kept.
    if std::fs::symlink_metadata(path)
        .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
    {
        std::fs::remove_file(path).map_err(err)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .map_err(err)?;
    Ok((listener, Origin::Bound))
}

#[allow(unsafe_code)]
fn take_unix_listener(fd: RawFd) -> std::io::Result<tokio::net::UnixListener> {
    // SAFETY: as for `take_tcp_listener`: each passed descriptor is taken once.
    let std_listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
    std_listener.set_nonblocking(true)?;
    tokio::net::UnixListener::from_std(std_listener)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(fds: &[(RawFd, &str)], expected: Option<RawFd>) {
        let fds: Vec<(RawFd, String)> = fds.iter().map(|(fd, n)| (*fd, (*n).to_owned())).collect();
        assert_eq!(pick_http(&fds).map(|(fd, _)| *fd), expected, "{fds:?}");
    }

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        use axum::serve::Listener as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut listener = without_nagle(listener);
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (accepted, peer) = listener.accept().await;
        assert_eq!(peer, client.local_addr().expect("client addr"));
        assert!(accepted.nodelay().expect("nodelay"));
        assert!(
            !client.nodelay().expect("nodelay"),
            "the default is Nagle on"
        );
    }

    #[test]
    fn the_http_socket_is_picked_by_name_and_never_the_admin_one() {
        check(&[(3, "admin"), (4, "http")], Some(4));
        check(&[(3, "http"), (4, "admin")], Some(3));
        check(&[(3, "admin")], None);
        check(&[(3, "unknown")], Some(3));
        check(&[(3, "web")], Some(3));
        check(&[(3, "admin"), (4, "web")], Some(4));
        check(&[(3, "web"), (4, "other")], None);
        check(&[], None);
    }
}
