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

/// What a user calls a session: 1–80 characters after trimming, none of them a control
/// character (names are shown in tables, headers and the audit log, one line each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionName(String);

/// A session's short description: at most 280 characters after trimming, none of them a
/// control character; may be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription(String);

/// Why a name or a description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLabel {
    #[error("a session's name cannot be empty")]
    EmptyName,
    #[error("a session's name has at most {max} characters, not {found}", max = SessionName::MAX_CHARS)]
    LongName { found: usize },
    #[error("a session's description has at most {max} characters, not {found}", max = SessionDescription::MAX_CHARS)]
    LongDescription { found: usize },
    #[error("a session's {field} cannot contain control characters (such as line breaks or tabs)")]
    ControlCharacter { field: &'static str },
}

impl InvalidLabel {
    /// Whether the name, rather than the description, was refused.
    pub fn is_name(&self) -> bool {
        match self {
            Self::EmptyName | Self::LongName { .. } => true,
            Self::LongDescription { .. } => false,
            Self::ControlCharacter { field } => *field == "name",
        }
    }
}

impl SessionName {
    /// The most characters (Unicode scalar values) a name has.
    pub const MAX_CHARS: usize = 80;

    /// The name a user gave, trimmed, if it is valid.
    pub fn parse(s: &str) -> Result<Self, InvalidLabel> {
        let s = s.trim();
        if s.is_empty() {
            return Err(InvalidLabel::EmptyName);
        }
        if s.chars().any(char::is_control) {
            return Err(InvalidLabel::ControlCharacter { field: "name" });
        }
        let found = s.chars().count();
        if found > Self::MAX_CHARS {
            return Err(InvalidLabel::LongName { found });
        }
        Ok(Self(s.to_owned()))
    }

    /// A valid name made from any text (a template's display name, which no user typed):
    /// control characters become spaces, runs of space collapse, the rest is cut at
    /// [`Self::MAX_CHARS`]; `fallback` (a template id) if nothing is left.
    pub fn lossy(s: &str, fallback: &str) -> Self {
        let cleaned: String = s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(Self::MAX_CHARS)
            .collect();
        match Self::parse(&cleaned) {
            Ok(name) => name,
            Err(_) if s != fallback => Self::lossy(fallback, fallback),
            Err(_) => Self("Session".to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl SessionDescription {
    /// The most characters (Unicode scalar values) a description has.
    pub const MAX_CHARS: usize = 280;

    /// The description a user gave, trimmed, if it is valid (empty clears it).
    pub fn parse(s: &str) -> Result<Self, InvalidLabel> {
        let s = s.trim();
        if s.chars().any(char::is_control) {
            return Err(InvalidLabel::ControlCharacter {
                field: "description",
            });
        }
        let found = s.chars().count();
        if found > Self::MAX_CHARS {
            return Err(InvalidLabel::LongDescription { found });
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
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

    /// `check(input, expected)`: the name `parse` makes of `input`, or its error's message.
    #[track_caller]
    fn check_name(input: &str, expected: Result<&str, &str>) {
        let got = SessionName::parse(input);
        match expected {
            Ok(name) => assert_eq!(got.map(|n| n.0), Ok(name.to_owned()), "{input:?}"),
            Err(message) => assert_eq!(
                got.map_err(|e| e.to_string()),
                Err(message.to_owned()),
                "{input:?}"
            ),
        }
    }

    #[test]
    fn session_names_are_trimmed_bounded_and_printable() {
        check_name("My project", Ok("My project"));
        check_name("  padded\u{a0} ", Ok("padded"));
        check_name("x", Ok("x"));
        check_name(&"é".repeat(80), Ok(&"é".repeat(80)));
        check_name("Zoë's 日本語 🚀", Ok("Zoë's 日本語 🚀"));
        check_name("", Err("a session's name cannot be empty"));
        check_name(" \t ", Err("a session's name cannot be empty"));
        check_name(
            &"é".repeat(81),
            Err("a session's name has at most 80 characters, not 81"),
        );
        for bad in [
            "two\nlines",
            "tab\there",
            "nul\0",
            "esc\u{1b}[31m",
            "del\u{7f}",
            "c\u{85}1",
        ] {
            check_name(
                bad,
                Err(
                    "a session's name cannot contain control characters (such as line breaks or tabs)",
                ),
            );
        }
        assert!(SessionName::parse("").expect_err("empty").is_name());
    }

    #[test]
    fn session_descriptions_may_be_empty_and_are_bounded() {
        let parse = |s: &str| SessionDescription::parse(s).map(|d| d.0);
        assert_eq!(parse(""), Ok(String::new()));
        assert_eq!(parse("  a note "), Ok("a note".to_owned()));
        assert_eq!(parse(&"x".repeat(280)), Ok("x".repeat(280)));
        let long = SessionDescription::parse(&"x".repeat(281)).expect_err("281");
        assert_eq!(
            long.to_string(),
            "a session's description has at most 280 characters, not 281"
        );
        assert!(!long.is_name());
        let control = SessionDescription::parse("a\nb").expect_err("newline");
        assert!(!control.is_name(), "{control}");
    }

    #[test]
    fn default_names_are_made_valid() {
        let lossy = |s: &str| SessionName::lossy(s, "coding-copilot").0;
        assert_eq!(lossy("Coding Copilot"), "Coding Copilot");
        assert_eq!(lossy(" Two\nlines\t here "), "Two lines here");
        assert_eq!(lossy(&"n".repeat(100)), "n".repeat(80));
        assert_eq!(lossy(""), "coding-copilot");
        assert_eq!(lossy("\n\t"), "coding-copilot");
        assert_eq!(SessionName::lossy("", "").0, "Session");
    }

    #[test]
    fn session_id_serde_validates() {
        let ok: SessionId = serde_json::from_str("\"ab12\"").expect("valid");
        assert_eq!(ok.as_str(), "ab12");
        assert!(serde_json::from_str::<SessionId>("\"../x\"").is_err());
    }
}
