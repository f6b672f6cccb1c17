//! The one error of rendering: a value that cannot be written safely, caught before any text
//! exists.

/// A value refused by validation. Nothing is rendered when any value is refused.
///
/// `value` is the offending value as given (units never carry secrets, only secret names).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {key}= value {value:?}: {problem}")]
pub struct Error {
    /// The unit key the value was meant for, e.g. `PublishPort`.
    pub key: &'static str,
    pub value: String,
    pub problem: Problem,
}

/// Why a value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("it is empty")]
    Empty,
    #[error("it contains a control character (newlines included)")]
    ControlCharacter,
    #[error("it starts or ends with whitespace, which the unit parser would drop")]
    SurroundingWhitespace,
    #[error("it ends with a backslash, which would continue the line")]
    TrailingBackslash,
    #[error("it is wrapped in double quotes, which Quadlet would strip")]
    SurroundingQuotes,
    #[error("it contains whitespace")]
    Whitespace,
    #[error("it is not an absolute path")]
    NotAbsolute,
    #[error("it is not a plain relative path (no leading '/', empty or '..' parts)")]
    NotRelative,
    #[error("it contains ':', the field separator of this key")]
    Colon,
    #[error(
        "it is not a valid name: use letters, digits, '_', '.' and '-', starting with a letter or digit"
    )]
    BadName,
    #[error(
        "it is not an environment variable name: use A-Z, a-z, 0-9 and '_', not starting with a digit"
    )]
    BadEnvName,
    #[error("it is not a label key: use letters, digits, '.', '_', '/' and '-'")]
    BadLabelKey,
    #[error("it is not a capability name: use letters and '_' (e.g. ALL, CAP_CHOWN)")]
    BadCapability,
    #[error("it is not a systemd unit name (name.target, name.service, ...)")]
    BadUnitName,
    #[error("it does not name a Quadlet .volume file")]
    NotVolumeUnit,
    #[error("it contains ',', the option separator of this key")]
    Comma,
    #[error("port 0 cannot be published")]
    ZeroPort,
    #[error("a zero duration disables the setting; leave the setting out instead")]
    ZeroDuration,
}

/// A unit file that could not be parsed (the parser exists for tests and diagnostics).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}
