//! How one value is written for one key: validation, quoting and escaping.
//!
//! A value passes through up to three parsers before it reaches Podman, and each one has its
//! own rules, so the encoding depends on the key (see [`Kind`]):
//!
//! 1. the unit-file parser (systemd's and Quadlet's): a line is `Key=value`; leading and
//!    trailing whitespace is dropped, a trailing `\` continues the line, and there is no way
//!    to write a newline;
//! 2. Quadlet reads a key either as one raw string (`Image=`, `HealthCmd=`, `PublishPort=`,
//!    `Volume=`, …) or splits it into words with systemd's quoting rules (`Label=`,
//!    `Environment=`, `Secret=`, `PodmanArgs=`, `DropCapability=`, …);
//! 3. Quadlet writes every `[Container]`/`[Volume]` value into the generated `ExecStart=`
//!    command line, where systemd resolves `%` specifiers and `$VAR` references. So `%` is
//!    written `%%` and `$` is written `$$` there; in `[Unit]`, `[Service]` and `[Install]`
//!    systemd resolves only specifiers, so only `%` is doubled.
//!
//! Values that cannot survive this trip (control characters, surrounding whitespace in a raw
//! value, a trailing backslash) are refused with an [`Error`] instead of being mangled.

use crate::error::{Error, Problem};

/// How Quadlet and systemd read the value of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One raw string; systemd resolves `%` specifiers in it.
    Raw,
    /// One raw string that ends up in `ExecStart=`: `%` and `$` are escaped.
    RawExec,
    /// A list of words with systemd quoting; resolves `%` specifiers.
    Words,
    /// A list of words with systemd quoting that ends up in `ExecStart=`.
    WordsExec,
}

/// The one table of how each key we write is read back. The renderer and the parser both
/// use it, so the two cannot disagree.
pub(crate) fn kind(section: &str, key: &str) -> Kind {
    match (section, key) {
        (
            "Container",
            "Label" | "Environment" | "Secret" | "PodmanArgs" | "DropCapability" | "AddCapability",
        )
        | ("Volume", "Label" | "PodmanArgs") => Kind::WordsExec,
        ("Container" | "Volume", _) => Kind::RawExec,
        ("Install", "WantedBy") | ("Unit", "Requires" | "After") => Kind::Words,
        _ => Kind::Raw,
    }
}

fn err(key: &'static str, value: &str, problem: Problem) -> Error {
    Error {
        key,
        value: value.to_owned(),
        problem,
    }
}

/// Refuses what no key can carry: empty values and control characters.
pub(crate) fn check_text(key: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(err(key, value, Problem::Empty));
    }
    if value.chars().any(char::is_control) {
        return Err(err(key, value, Problem::ControlCharacter));
    }
    Ok(())
}

/// Escapes systemd's specifiers (and, for `ExecStart=`, variable references).
fn escape_expansions(value: &str, exec: bool, out: &mut String) {
    for c in value.chars() {
        match c {
            '%' => out.push_str("%%"),
            '$' if exec => out.push_str("$$"),
            c => out.push(c),
        }
    }
}

/// Encodes a raw (unsplit) value.
pub(crate) fn raw(key: &'static str, value: &str, exec: bool) -> Result<String, Error> {
    check_text(key, value)?;
    if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
        return Err(err(key, value, Problem::SurroundingWhitespace));
    }
    if value.ends_with('\\') {
        return Err(err(key, value, Problem::TrailingBackslash));
    }
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        return Err(err(key, value, Problem::SurroundingQuotes));
    }
    let mut out = String::with_capacity(value.len());
    escape_expansions(value, exec, &mut out);
    Ok(out)
}

/// Encodes a list of words, quoting each word that needs it.
pub(crate) fn words<S: AsRef<str>>(
    key: &'static str,
    words: &[S],
    exec: bool,
) -> Result<String, Error> {
    let mut out = String::new();
    for (i, word) in words.iter().enumerate() {
        let word = word.as_ref();
        check_text(key, word)?;
        if i > 0 {
            out.push(' ');
        }
        let mut escaped = String::with_capacity(word.len());
        escape_expansions(word, exec, &mut escaped);
        let needs_quotes = escaped
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'));
        if needs_quotes {
            out.push('"');
            for c in escaped.chars() {
                if matches!(c, '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(&escaped);
        }
    }
    Ok(out)
}

/// Undoes [`raw`] or [`words`] for a value read back from a unit file.
pub(crate) fn decode(kind: Kind, value: &str) -> Result<Vec<String>, String> {
    match kind {
        Kind::Raw => Ok(vec![unescape_expansions(value, false)]),
        Kind::RawExec => Ok(vec![unescape_expansions(value, true)]),
        Kind::Words => split_words(value).map(|w| {
            w.iter()
                .map(|w| unescape_expansions(w, false))
                .collect::<Vec<_>>()
        }),
        Kind::WordsExec => split_words(value).map(|w| {
            w.iter()
                .map(|w| unescape_expansions(w, true))
                .collect::<Vec<_>>()
        }),
    }
}

fn unescape_expansions(value: &str, exec: bool) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        let doubled = c == '%' || (exec && c == '$');
        if doubled && chars.peek() == Some(&c) {
            chars.next();
        }
        out.push(c);
    }
    out
}

/// Splits like systemd's `extract_first_word` with unquoting and C unescaping (the subset of
/// escapes a unit written by hand is likely to hold).
fn split_words(value: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = value.chars();
    let mut current: Option<String> = None;
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if let Some(word) = current.take() {
                    words.push(word);
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                current.get_or_insert_with(String::new);
            }
            (Some(q), c) if c == q => quote = None,
            (_, '\\') => {
                let escaped = chars
                    .next()
                    .ok_or_else(|| format!("trailing backslash in {value:?}"))?;
                let unescaped = match escaped {
                    'n' => '\n',
                    't' => '\t',
                    's' => ' ',
                    '\\' | '"' | '\'' => escaped,
                    other => return Err(format!("unsupported escape \\{other} in {value:?}")),
                };
                current.get_or_insert_with(String::new).push(unescaped);
            }
            (_, c) => current.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return Err(format!("unbalanced quotes in {value:?}"));
    }
    words.extend(current);
    Ok(words)
}

/// A Podman object name (container, volume, secret): `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, the rule
/// Podman itself enforces.
pub(crate) fn check_name(key: &'static str, value: &str) -> Result<(), Error> {
    check_text(key, value)?;
    let valid = value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(err(key, value, Problem::BadName))
    }
}

/// An absolute path usable in `Volume=` (which separates fields with `:`).
pub(crate) fn check_volume_path(key: &'static str, value: &str) -> Result<(), Error> {
    check_text(key, value)?;
    if !value.starts_with('/') {
        return Err(err(key, value, Problem::NotAbsolute));
    }
    if value.contains(':') {
        return Err(err(key, value, Problem::Colon));
    }
    if value.ends_with(char::is_whitespace) {
        return Err(err(key, value, Problem::SurroundingWhitespace));
    }
    Ok(())
}

/// An environment variable name.
pub(crate) fn check_env_name(key: &'static str, value: &str) -> Result<(), Error> {
    check_text(key, value)?;
    let valid = !value.starts_with(|c: char| c.is_ascii_digit())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(err(key, value, Problem::BadEnvName))
    }
}

/// A label key (`octo.session`, `io.containers.autoupdate`, …).
pub(crate) fn check_label_key(key: &'static str, value: &str) -> Result<(), Error> {
    check_text(key, value)?;
    let valid = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'));
    if valid {
        Ok(())
    } else {
        Err(err(key, value, Problem::BadLabelKey))
    }
}

/// A capability name, as Podman accepts it (`ALL`, `CAP_CHOWN`, `chown`).
pub(crate) fn check_capability(key: &'static str, value: &str) -> Result<(), Error> {
    check_text(key, value)?;
    if value.chars().all(|c| c.is_ascii_alphabetic() || c == '_') {
        Ok(())
    } else {
        Err(err(key, value, Problem::BadCapability))
    }
}

/// A systemd unit name with a type suffix (`default.target`).
pub(crate) fn check_unit_name(key: &'static str, value: &str) -> Result<(), Error> {
    check_text(key, value)?;
    let chars_ok = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '@' | '\\'));
    let suffix_ok = value
        .rsplit_once('.')
        .is_some_and(|(stem, suffix)| !stem.is_empty() && !suffix.is_empty());
    if chars_ok && suffix_ok {
        Ok(())
    } else {
        Err(err(key, value, Problem::BadUnitName))
    }
}

/// Refuses values containing whitespace (image references and the like).
pub(crate) fn check_no_whitespace(key: &'static str, value: &str) -> Result<(), Error> {
    check_text(key, value)?;
    if value.contains(char::is_whitespace) {
        Err(err(key, value, Problem::Whitespace))
    } else {
        Ok(())
    }
}

/// Formats a duration so that both systemd (`TimeoutStartSec=`) and Podman (Go's
/// `time.ParseDuration`, `HealthInterval=`) read it: `90s`, or `1500ms` below whole seconds.
pub(crate) fn duration(key: &'static str, value: std::time::Duration) -> Result<String, Error> {
    if value.is_zero() {
        return Err(err(key, "0", Problem::ZeroDuration));
    }
    if value.subsec_millis() == 0 && value.subsec_nanos() == 0 {
        Ok(format!("{}s", value.as_secs()))
    } else {
        // Sub-millisecond precision is meaningless for these settings; round up so that a
        // tiny non-zero duration never renders as zero.
        Ok(format!("{}ms", value.as_nanos().div_ceil(1_000_000)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_quote_only_when_needed() {
        let w = words(
            "Label",
            &["a=b", "c=d e", r#"q="x""#, r"b=\", "p=50%", "v=$HOME"],
            true,
        )
        .expect("valid");
        assert_eq!(w, r#"a=b "c=d e" "q=\"x\"" "b=\\" p=50%% v=$$HOME"#);
        assert_eq!(
            decode(Kind::WordsExec, &w).expect("decodes"),
            ["a=b", "c=d e", r#"q="x""#, r"b=\", "p=50%", "v=$HOME"]
        );
    }

    #[test]
    fn raw_escapes_specifiers_and_refuses_what_cannot_survive() {
        assert_eq!(
            raw("HealthCmd", "echo 100% $X", true).expect("ok"),
            "echo 100%% $$X"
        );
        assert_eq!(
            raw("Description", "100% $X", false).expect("ok"),
            "100%% $X"
        );
        let problem = |v: &str| raw("HealthCmd", v, true).expect_err(v).problem;
        assert_eq!(problem(""), Problem::Empty);
        assert_eq!(problem("a\nb"), Problem::ControlCharacter);
        assert_eq!(problem("a\tb"), Problem::ControlCharacter);
        assert_eq!(problem(" a"), Problem::SurroundingWhitespace);
        assert_eq!(problem("a "), Problem::SurroundingWhitespace);
        assert_eq!(problem(r"a\"), Problem::TrailingBackslash);
        assert_eq!(problem(r#""a b""#), Problem::SurroundingQuotes);
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(duration("T", Duration::from_secs(90)).expect("ok"), "90s");
        assert_eq!(
            duration("T", Duration::from_millis(1500)).expect("ok"),
            "1500ms"
        );
        assert_eq!(duration("T", Duration::from_nanos(1)).expect("ok"), "1ms");
        assert_eq!(
            duration("T", Duration::ZERO).expect_err("zero").problem,
            Problem::ZeroDuration
        );
    }

    #[test]
    fn names() {
        assert!(check_name("ContainerName", "octo-ab12").is_ok());
        for bad in ["-x", "a b", "a/b", "é", ".x"] {
            assert_eq!(
                check_name("ContainerName", bad).expect_err(bad).problem,
                Problem::BadName
            );
        }
        assert!(check_unit_name("WantedBy", "default.target").is_ok());
        for bad in ["default", ".target", "a/b.target", "a b.target"] {
            assert!(check_unit_name("WantedBy", bad).is_err(), "{bad}");
        }
        assert!(check_env_name("Secret", "OCTO_SESSION_TOKEN").is_ok());
        assert!(check_env_name("Secret", "1X").is_err());
        assert!(check_env_name("Secret", "A-B").is_err());
    }
}
