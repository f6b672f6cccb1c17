//! The plain systemd sections a Quadlet file carries: Quadlet copies `[Unit]`, `[Service]`
//! and `[Install]` into the generated service unchanged (systemd.unit(5), systemd.service(5)).

use std::time::Duration;

use crate::error::Error;
use crate::value;
use crate::writer::Section;

/// `[Unit]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitSection {
    /// `Description=`: a human-readable name shown by `systemctl status` and in the journal.
    /// systemd resolves `%` specifiers here; the renderer escapes `%` as `%%`.
    pub description: Option<String>,
    /// `Requires=`: units started with this one; when one of them stops, this one stops too.
    pub requires: Vec<String>,
    /// `After=`: units this one starts after (ordering only).
    pub after: Vec<String>,
}

impl UnitSection {
    pub(crate) fn write(&self) -> Result<Section, Error> {
        let mut s = Section::new("Unit");
        if let Some(description) = &self.description {
            s.raw("Description", description)?;
        }
        for (key, units) in [("Requires", &self.requires), ("After", &self.after)] {
            for unit in units {
                value::check_unit_name(key, unit)?;
            }
            s.words(key, units)?;
        }
        Ok(s)
    }
}

/// `Restart=` of systemd.service(5): when systemd restarts the service by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// `no`: never.
    No,
    /// `on-failure`: after an unclean exit code or signal, a timeout (start timeouts included)
    /// or a watchdog timeout.
    OnFailure,
    /// `always`.
    Always,
}

impl Restart {
    fn as_str(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::OnFailure => "on-failure",
            Self::Always => "always",
        }
    }
}

/// `[Service]`. Quadlet sets `Type=notify`, `KillMode=mixed`, `ExecStart=`/`ExecStop=` itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSection {
    /// `TimeoutStartSec=`: how long the start job may take before the unit fails. With
    /// `Notify=healthy` this covers the container start *and* the wait for the first passing
    /// health check; without it systemd's default (90 s) applies.
    pub timeout_start: Option<Duration>,
    /// `Restart=`.
    pub restart: Option<Restart>,
}

impl ServiceSection {
    pub(crate) fn write(&self) -> Result<Section, Error> {
        let mut s = Section::new("Service");
        if let Some(timeout) = self.timeout_start {
            s.raw(
                "TimeoutStartSec",
                &value::duration("TimeoutStartSec", timeout)?,
            )?;
        }
        if let Some(restart) = self.restart {
            s.raw("Restart", restart.as_str())?;
        }
        Ok(s)
    }
}

/// `[Install]`. The Quadlet generator applies it itself while generating (a generated unit
/// cannot be `systemctl enable`d): with `WantedBy=default.target` the user manager starts the
/// service whenever `default.target` starts, i.e. at boot for a lingering user. Without the
/// section the service starts only when asked to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallSection {
    /// `WantedBy=`: units (e.g. `default.target`) that pull this one in when they start.
    pub wanted_by: Vec<String>,
}

impl InstallSection {
    pub(crate) fn write(&self) -> Result<Section, Error> {
        let mut s = Section::new("Install");
        for unit in &self.wanted_by {
            value::check_unit_name("WantedBy", unit)?;
        }
        s.words("WantedBy", &self.wanted_by)?;
        Ok(s)
    }
}
