//! Sessions as the rest of octod sees them: identity, spec and state. Pure data: no IO, no
//! Quadlet, no HTTP (a Kubernetes renderer must fit the same spec later).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A session id: 1–32 characters of `[a-z0-9]`, starting with a letter. It is used in unit
/// names (`octo-<id>.container`), volume and secret names, so the alphabet is deliberately
/// small.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId(String);

/// Why a string is not a valid [`SessionId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid session id {0:?}: use 1-32 characters a-z and 0-9, starting with a letter")]
pub struct InvalidSessionId(pub String);

impl SessionId {
    pub const MAX_LEN: usize = 32;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SessionId {
    type Err = InvalidSessionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidSessionId(s.to_owned()))
        }
    }
}

impl TryFrom<String> for SessionId {
    type Error = InvalidSessionId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<SessionId> for String {
    fn from(id: SessionId) -> Self {
        id.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Resource limits; applied only where the host delegates the cgroup controllers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory limit in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU quota in hundredths of a CPU (150 = 1.5 CPUs).
    pub cpu_centis: Option<u32>,
    /// Maximum number of tasks.
    pub pids: Option<u32>,
}

/// What the user (or idle stop) wants the session to be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    /// Running now and after a reboot.
    Running,
    /// Stopped for lack of activity, not by its user: it does not start at boot, but the first
    /// connection to it wakes it (and makes it `Running` again).
    Idle,
    /// Stopped by its user: nothing wakes it but a resume.
    Stopped,
}

/// Everything needed to run a session, independent of how it is run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSpec {
    pub id: SessionId,
    /// The owner's user name (an account in octod's store).
    pub owner: String,
    /// Template directory name, e.g. `coding-copilot`.
    pub template: String,
    /// Container image reference, e.g. `localhost/octo-session:latest`.
    pub image: String,
    pub limits: Limits,
    pub desired: DesiredState,
}

/// The lifecycle states of design.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum SessionState {
    Creating,
    Starting,
    Running,
    Stopping,
    Stopped,
    Deleting,
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids() {
        for ok in ["a", "ab12", "z0000000000000000000000000000000"] {
            assert!(ok.parse::<SessionId>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "Abc",
            "a-b",
            "a.b",
            "a/b",
            "a b",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn session_id_serde_validates() {
        let ok: SessionId = serde_json::from_str("\"ab12\"").expect("valid");
        assert_eq!(ok.as_str(), "ab12");
        assert!(serde_json::from_str::<SessionId>("\"../x\"").is_err());
    }
}
