//! The text of personal API tokens: `octo_<id>_<secret>`, where the id is 16 lower-case hex
//! characters (64 random bits, public: listed, named in the audit log) and the secret 64 (256
//! random bits). Only the SHA-256 of the secret is stored ([`crate::store::ApiTokenRecord`]).
//! The `octo_` prefix lets secret scanners recognise a leaked token and tells octod which kind
//! of bearer token it has (a session JWT never starts so).

use sha2::{Digest, Sha256};

use crate::store::Secret;

/// What every API token starts with.
pub const PREFIX: &str = "octo_";
const ID_HEX: usize = 16;
const SECRET_HEX: usize = 64;
/// The length of a token.
pub const TOKEN_LEN: usize = PREFIX.len() + ID_HEX + 1 + SECRET_HEX;

/// A new token: (its id, the whole token, the stored hash of its secret).
pub fn generate() -> Result<(String, Secret, String), getrandom::Error> {
    let mut id = [0u8; ID_HEX / 2];
    let mut secret = [0u8; SECRET_HEX / 2];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let id = hex(&id);
    let secret = hex(&secret);
    let hash = secret_sha256(&secret);
    Ok((
        id.clone(),
        Secret::new(format!("{PREFIX}{id}_{secret}")),
        hash,
    ))
}

/// Whether `token` is meant as an API token (by its prefix; [`parse`] checks the rest).
pub fn looks_like(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// `(id, secret)` of a well-formed token; `None` for anything else.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    if token.len() != TOKEN_LEN {
        return None;
    }
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (id.len() == ID_HEX && secret.len() == SECRET_HEX && lower_hex(id) && lower_hex(secret))
        .then_some((id, secret))
}

/// Lower-case hex SHA-256 of a secret.
pub fn secret_sha256(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Compares two hashes in time independent of where they differ.
pub use crate::store::same_hash;

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A token's name: 1 to 80 characters after trimming, no control characters.
pub fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err("a token's name must be 1 to 80 characters".to_owned());
    }
    if name.chars().any(char::is_control) {
        return Err("a token's name may not hold control characters".to_owned());
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_hash_to_what_is_stored() {
        let (id, token, hash) = generate().expect("random");
        assert_eq!(token.expose().len(), TOKEN_LEN);
        assert!(looks_like(token.expose()));
        let (parsed_id, secret) = parse(token.expose()).expect("well formed");
        assert_eq!(parsed_id, id);
        assert!(same_hash(&secret_sha256(secret), &hash));
        let (other, _, _) = generate().expect("random");
        assert_ne!(id, other);
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        let (_, token, _) = generate().expect("random");
        let t = token.expose();
        assert!(parse(&t[..t.len() - 1]).is_none(), "short");
        assert!(parse(&format!("{t}0")).is_none(), "long");
        assert!(parse(&t.to_uppercase()).is_none(), "upper case");
        assert!(parse(&t.replacen('_', "-", 2)).is_none(), "separators");
        let moved = format!("{PREFIX}{}_{}", &t[5..20], &t[20..]);
        assert!(parse(&moved).is_none(), "id of the wrong length");
        assert!(parse("eyJhbGciOiJIUzI1NiJ9.e30.x").is_none(), "a JWT");
    }

    #[test]
    fn hashes_compare_fully() {
        assert!(same_hash("abcd", "abcd"));
        assert!(!same_hash("abcd", "abce"));
        assert!(!same_hash("abcd", "abc"));
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name("  ci ").as_deref(), Ok("ci"));
        assert!(check_name(" ").is_err());
        assert!(check_name(&"x".repeat(81)).is_err());
        assert!(check_name("a\u{7}b").is_err());
        assert!(check_name(&"é".repeat(80)).is_ok());
    }
}
