//! Versioned values: one format-version byte, then the value as JSON (serde_json) in the
//! shape of that version. A value from an unknown version is a typed [`DecodeError`], never a
//! panic, so an older octod refuses state written by a newer one with a clear message.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a stored value could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("reading {table}[{key}]: the stored value is empty")]
    Empty { table: &'static str, key: String },
    #[error(
        "reading {table}[{key}]: unknown format version {version} (this octod reads versions 1 to {supported}; was the state written by a newer octod?)"
    )]
    UnknownVersion {
        table: &'static str,
        key: String,
        version: u8,
        supported: u8,
    },
    #[error("reading {table}[{key}] (format version {version}): {source}")]
    Json {
        table: &'static str,
        key: String,
        version: u8,
        source: serde_json::Error,
    },
    #[error("reading {table}[{key}]: {source}")]
    BadId {
        table: &'static str,
        key: String,
        source: crate::session::InvalidSessionId,
    },
}

/// `version` followed by the JSON of `value`.
pub(super) fn encode<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = vec![version];
    serde_json::to_writer(&mut bytes, value)?;
    Ok(bytes)
}

/// Reads a value written by [`encode`] with any version from 1 to `supported`. The caller's
/// type reads every one of them: a newer version only ever adds a variant or drops a field
/// (serde ignores unknown fields). A change that needs more becomes a match on the version.
pub(super) fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: &str,
    supported: u8,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    let Some((&version, json)) = bytes.split_first() else {
        return Err(DecodeError::Empty {
            table,
            key: key.to_owned(),
        });
    };
    if version == 0 || version > supported {
        return Err(DecodeError::UnknownVersion {
            table,
            key: key.to_owned(),
            version,
            supported,
        });
    }
    serde_json::from_slice(json).map_err(|source| DecodeError::Json {
        table,
        key: key.to_owned(),
        version,
        source,
    })
}

/// Milliseconds since the Unix epoch; times before it count as the epoch.
pub fn to_unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(super) fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Serde for `SystemTime` as integer milliseconds since the Unix epoch.
pub(super) mod unix_ms {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(super::to_unix_ms(*t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        u64::deserialize(d).map(super::from_unix_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = encode(1, &vec!["a", "b"]).expect("encode");
        assert_eq!(bytes, b"\x01[\"a\",\"b\"]");
        let back: Vec<String> = decode("t", "k", 1, &bytes).expect("decode");
        assert_eq!(back, ["a", "b"]);
    }

    #[test]
    fn unknown_version_is_a_typed_error() {
        let err = decode::<Vec<String>>("sessions", "ab12", 1, b"\x07[]").expect_err("v7");
        assert!(
            matches!(
                err,
                DecodeError::UnknownVersion {
                    table: "sessions",
                    version: 7,
                    supported: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "reading sessions[ab12]: unknown format version 7 (this octod reads versions 1 to 1; was the state written by a newer octod?)"
        );
    }

    #[test]
    fn empty_and_garbled_values_are_typed_errors() {
        let err = decode::<Vec<String>>("t", "k", 1, b"").expect_err("empty");
        assert!(matches!(err, DecodeError::Empty { .. }), "{err:?}");
        let err = decode::<Vec<String>>("t", "k", 1, b"\x01[\"a\"").expect_err("truncated");
        assert!(
            matches!(err, DecodeError::Json { version: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn unix_ms() {
        assert_eq!(
            to_unix_ms(from_unix_ms(1_700_000_000_123)),
            1_700_000_000_123
        );
        assert_eq!(to_unix_ms(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
