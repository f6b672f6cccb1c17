//! The per-session token: a secret string that never shows up in `Debug` output or logs.

use std::fmt;

/// A secret string, such as a session token. `Debug` prints `***`; there is no `Display` and
/// no `Serialize`, so a secret only leaves through [`Secret::expose`], where the call site says
/// so. Comparison runs in constant time for equal lengths.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Random bytes in a generated token; 256 bits.
    pub const TOKEN_BYTES: usize = 32;

    /// A fresh token: [`Self::TOKEN_BYTES`] bytes from the OS's random source as lower-case hex
    /// (64 characters). Hex because the token travels as an environment variable, an HTTP
    /// basic password and a bearer token, where it needs no escaping.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; Self::TOKEN_BYTES];
        getrandom::fill(&mut bytes)?;
        let mut hex = String::with_capacity(2 * Self::TOKEN_BYTES);
        for b in bytes {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        Ok(Self(hex))
    }

    /// Wraps an existing secret value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret value itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        // The length of a token is not secret; its bytes are.
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for Secret {}

/// Compares two hashes (or other public-length strings) in time independent of where they
/// differ.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_64_hex_chars_and_differ() {
        let a = Secret::generate().expect("random");
        let b = Secret::generate().expect("random");
        assert_eq!(a.expose().len(), 64);
        assert!(
            a.expose().bytes().all(|c| HEX.contains(&c)),
            "{}",
            a.expose()
        );
        assert_ne!(a, b);
        assert_eq!(a, a.clone());
    }

    #[test]
    fn debug_hides_the_value() {
        let s = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
    }

    #[test]
    fn equality_compares_content_and_length() {
        let s = |v: &str| Secret::new(v.to_owned());
        assert_eq!(s("abc"), s("abc"));
        assert_ne!(s("abc"), s("abd"));
        assert_ne!(s("abc"), s("abcd"));
    }
}
