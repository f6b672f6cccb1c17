//! Listening sockets: taken from systemd socket activation (`LISTEN_FDS`, named by
//! `FileDescriptorName=`: `http` and `admin`) or, without it (development), bound from the
//! configured addresses.

use std::net::SocketAddr;

use crate::http::peer::{HttpListener, ListenAddr, TrustedProxies};
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
    #[error("binding the Unix socket {path}: {source}")]
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
/// `admin`), TCP or Unix, else a fresh one bound to `fallback`. Forwarded headers from a TCP
/// peer are believed when it is one of `trusted` (see [`crate::http::peer`]).
pub async fn http_listener(
    fds: &[(RawFd, String)],
    fallback: &ListenAddr,
    trusted: TrustedProxies,
) -> Result<(HttpListener, Origin), ListenError> {
    if let Some((fd, name)) = pick_http(fds) {
        let unusable = |source| ListenError::Unusable {
            name: name.clone(),
            source,
        };
        let listener = if is_unix_socket(*fd).map_err(unusable)? {
            HttpListener::Unix(take_unix_listener(*fd).map_err(unusable)?)
        } else {
            HttpListener::tcp(take_tcp_listener(*fd).map_err(unusable)?, trusted)
        };
        return Ok((listener, Origin::SocketActivation));
    }
    let listener = match fallback {
        ListenAddr::Tcp(addr) => HttpListener::tcp(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ListenError::Bind {
                    addr: *addr,
                    source,
                })?,
            trusted,
        ),
        // Development: whoever may open the file is the proxy.
        ListenAddr::Unix(path) => HttpListener::Unix(bind_unix(path, 0o660)?),
    };
    Ok((listener, Origin::Bound))
}

/// Whether a passed descriptor is a Unix socket (else it is taken as TCP).
fn is_unix_socket(fd: RawFd) -> std::io::Result<bool> {
    use nix::sys::socket::{AddressFamily, SockaddrLike as _, SockaddrStorage, getsockname};
    let addr = getsockname::<SockaddrStorage>(fd).map_err(std::io::Error::from)?;
    Ok(addr.family() == Some(AddressFamily::Unix))
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
    Ok((bind_unix(path, 0o666)?, Origin::Bound))
}

/// Binds a Unix socket at `path`: its parent directory created, a stale socket file replaced,
/// the file given `mode`.
fn bind_unix(path: &Path, mode: u32) -> Result<tokio::net::UnixListener, ListenError> {
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
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(err)?;
    Ok(listener)
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
    async fn a_passed_socket_is_served_as_what_it_is() {
        use std::os::fd::IntoRawFd as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let unix = std::os::unix::net::UnixListener::bind(dir.path().join("s")).expect("bind");
        let fds = vec![(unix.into_raw_fd(), "http".to_owned())];
        let fallback = ListenAddr::Tcp("127.0.0.1:1".parse().expect("addr"));
        let (listener, origin) = http_listener(&fds, &fallback, TrustedProxies::default())
            .await
            .expect("listener");
        assert!(matches!(listener, HttpListener::Unix(_)), "{listener:?}");
        assert_eq!(origin, Origin::SocketActivation);

        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let fds = vec![(tcp.into_raw_fd(), "http".to_owned())];
        let (listener, _) = http_listener(&fds, &fallback, TrustedProxies::default())
            .await
            .expect("listener");
        assert!(matches!(listener, HttpListener::Tcp { .. }), "{listener:?}");
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
