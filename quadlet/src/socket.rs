//! `.socket` units: not Quadlet's (Quadlet reads no `.socket` files), but the plain systemd
//! socket unit (systemd.socket(5)) that activates a Quadlet container's service. systemd
//! listens on the socket and starts the service on the first connection; Podman passes the
//! listening socket into the container as fd 3 (`LISTEN_FDS=1`).

use crate::error::{Error, Problem};
use crate::systemd::{InstallSection, UnitSection};
use crate::value;
use crate::writer::{self, Section};

/// A whole `.socket` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketUnit {
    pub unit: UnitSection,
    pub socket: SocketSection,
    /// `None` leaves the section out. A unit file in a user's systemd directory is enabled
    /// (its `WantedBy=` linked) by `systemctl enable`, not by the file alone.
    pub install: Option<InstallSection>,
}

impl SocketUnit {
    /// The unit text, or the first value that cannot be written safely.
    pub fn render(&self) -> Result<String, Error> {
        let mut sections = vec![self.unit.write()?, self.socket.write()?];
        if let Some(install) = &self.install {
            sections.push(install.write()?);
        }
        Ok(writer::render(&sections))
    }
}

/// Where a stream socket listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenStream {
    /// A Unix socket at a path relative to the manager's runtime directory: `%t/PATH`
    /// (`$XDG_RUNTIME_DIR` for a user manager, `/run/user/<uid>`).
    RuntimeDir(String),
}

impl ListenStream {
    fn encode(&self) -> Result<String, Error> {
        match self {
            Self::RuntimeDir(path) => {
                value::check_no_whitespace("ListenStream", path)?;
                if path.starts_with('/') || path.split('/').any(|p| p.is_empty() || p == "..") {
                    return Err(Error {
                        key: "ListenStream",
                        value: path.clone(),
                        problem: Problem::NotRelative,
                    });
                }
                // `%t` is the one specifier we mean; any `%` of the path itself is escaped.
                Ok(format!("%t/{}", value::raw("ListenStream", path, false)?))
            }
        }
    }
}

/// `[Socket]`. Keys are written in the order of the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSection {
    /// `ListenStream=`: the stream socket to listen on.
    pub listen_stream: ListenStream,
    /// `SocketMode=`: the socket file's mode (octal); only its owner may connect at `0600`.
    pub socket_mode: Option<u32>,
    /// `DirectoryMode=`: the mode of directories systemd creates for the socket (octal).
    pub directory_mode: Option<u32>,
    /// `RemoveOnStop=`: whether systemd removes the socket file when the socket stops (its
    /// default leaves it).
    pub remove_on_stop: bool,
    /// `Service=`: the service activated by a connection (default: the socket's own name).
    pub service: Option<String>,
}

impl SocketSection {
    fn write(&self) -> Result<Section, Error> {
        let mut s = Section::required("Socket");
        s.encoded("ListenStream", self.listen_stream.encode()?);
        if let Some(mode) = self.socket_mode {
            s.raw("SocketMode", &format!("{mode:04o}"))?;
        }
        if let Some(mode) = self.directory_mode {
            s.raw("DirectoryMode", &format!("{mode:04o}"))?;
        }
        if self.remove_on_stop {
            s.raw("RemoveOnStop", "yes")?;
        }
        if let Some(service) = &self.service {
            value::check_unit_name("Service", service)?;
            s.raw("Service", service)?;
        }
        Ok(s)
    }
}
