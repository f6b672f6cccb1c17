//! Session tokens: HS256 JWTs signed with a key that octod generates on first start and keeps,
//! mode 0600, in its state directory.
//!
//! Validation is pinned to HS256: a token whose header names any other algorithm (`none`,
//! `HS512`, `RS256`, …) is refused before its signature is looked at. Expiry is checked with
//! no leeway, since octod both issues and checks the tokens with one clock. What the signature
//! cannot tell (logout, password change, disabled user) is checked against the store by
//! [`crate::auth::Auth::authenticate`].

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::identity::Role;
use crate::store::Secret;

/// The key file's name in the state directory.
pub const KEY_FILE: &str = "jwt.key";
/// Bytes of a generated key (HS256 wants at least 32).
pub const KEY_BYTES: usize = 64;
/// A key file shorter than this is refused.
pub const MIN_KEY_BYTES: usize = 32;

/// The claims of an octod token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user name.
    pub sub: String,
    /// The role when the token was issued; informational, requests use the stored role.
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Token id (32 hex characters), what logout revokes.
    pub jti: String,
    /// The user's token generation at issue (claim `gen`).
    #[serde(rename = "gen")]
    pub generation: u64,
    /// The OpenID Connect provider the browser signed in with (claim `idp`), for signing out
    /// there too; absent for a password sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
}

impl Claims {
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.exp)
    }
}

/// Why the key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{action} token signing key {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "token signing key {path} holds {len} bytes, fewer than {MIN_KEY_BYTES}; remove it to have a new one generated (this signs everyone out)"
    )]
    TooShort { path: PathBuf, len: usize },
    #[error("reading random bytes for the token signing key: {0}")]
    Random(#[from] getrandom::Error),
}

/// Why a token was refused. Only ever logged at debug level; clients get a plain 401.
#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct InvalidToken(#[from] jsonwebtoken::errors::Error);

/// The signing key and the pinned validation.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(***)")
    }
}

impl Keys {
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Loads `dir/jwt.key`, or generates it (0600) when there is none. A key file with wider
    /// permissions is narrowed to 0600.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        let path = dir.join(KEY_FILE);
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyError::Io {
                action,
                path,
                source,
            }
        };
        let secret = match File::open(&path) {
            Ok(mut file) => {
                file.set_permissions(Permissions::from_mode(0o600))
                    .map_err(io("securing", &path))?;
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).map_err(io("reading", &path))?;
                if bytes.len() < MIN_KEY_BYTES {
                    return Err(KeyError::TooShort {
                        path,
                        len: bytes.len(),
                    });
                }
                bytes
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = vec![0u8; KEY_BYTES];
                getrandom::fill(&mut bytes)?;
                // Written whole to a temporary file and renamed, so a crash never leaves a
                // short key behind.
                let tmp = dir.join(format!("{KEY_FILE}.tmp"));
                let _ = fs::remove_file(&tmp);
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io("creating", &tmp))?;
                file.write_all(&bytes).map_err(io("writing", &tmp))?;
                file.sync_all().map_err(io("writing", &tmp))?;
                fs::rename(&tmp, &path).map_err(io("creating", &path))?;
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
                tracing::info!("generated a new token signing key in {}", path.display());
                bytes
            }
            Err(e) => return Err(io("opening", &path)(e)),
        };
        Ok(Self::from_secret(&secret))
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<Secret, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map(Secret::new)
    }

    /// Checks signature, algorithm and expiry; returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, InvalidToken> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims)
    }
}

/// A fresh token id: 16 random bytes as hex.
pub fn new_jti() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// Seconds since the epoch.
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn claims(exp_from_now: i64) -> Claims {
        let now = unix_seconds(SystemTime::now());
        Claims {
            sub: "ada".to_owned(),
            role: Role::User,
            exp: now.saturating_add_signed(exp_from_now),
            iat: now,
            jti: new_jti().expect("jti"),
            generation: 0,
            idp: None,
        }
    }

    /// base64url without padding, as JWTs use it.
    pub(crate) fn b64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }

    #[test]
    fn round_trip() {
        let keys = Keys::from_secret(&[7; 32]);
        let c = claims(60);
        let token = keys.sign(&c).expect("sign");
        assert_eq!(keys.verify(token.expose()).expect("verify"), c);
    }

    #[test]
    fn forged_expired_tampered_and_other_algorithms_are_refused() {
        let keys = Keys::from_secret(&[7; 32]);
        let c = claims(60);
        let token = keys.sign(&c).expect("sign");

        // Signed with another key.
        let forged = Keys::from_secret(&[8; 32]).sign(&c).expect("sign");
        assert!(keys.verify(forged.expose()).is_err());

        // Expired a second ago: no leeway.
        let expired = keys.sign(&claims(-1)).expect("sign");
        assert!(keys.verify(expired.expose()).is_err());

        // Payload changed to another user, signature kept.
        let parts: Vec<&str> = token.expose().split('.').collect();
        let mut evil = c.clone();
        evil.sub = "root".to_owned();
        evil.role = Role::Admin;
        let payload = b64(&serde_json::to_vec(&evil).expect("json"));
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert!(keys.verify(&tampered).is_err());

        // alg: none, with and without a signature.
        let none = b64(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys.verify(&format!("{none}.{payload}.")).is_err());
        assert!(
            keys.verify(&format!("{none}.{payload}.{}", parts[2]))
                .is_err()
        );

        // HS512 with the right key is still refused: HS256 only.
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &c,
            &EncodingKey::from_secret(&[7; 32]),
        )
        .expect("sign");
        assert!(keys.verify(&hs512).is_err());

        assert!(keys.verify("").is_err());
        assert!(keys.verify("a.b.c").is_err());
    }

    #[test]
    fn key_is_generated_0600_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Keys::load_or_create(dir.path()).expect("create");
        let path = dir.path().join(KEY_FILE);
        let meta = fs::metadata(&path).expect("key file");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), KEY_BYTES as u64);
        let token = a.sign(&claims(60)).expect("sign");
        // Widened permissions are narrowed on the next start; the key is the same.
        fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
        let b = Keys::load_or_create(dir.path()).expect("load");
        assert!(b.verify(token.expose()).is_ok());
        let mode = fs::metadata(&path).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.path().join(format!("{KEY_FILE}.tmp")).exists());
    }

    #[test]
    fn short_key_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(KEY_FILE), [1u8; 16]).expect("write");
        let err = Keys::load_or_create(dir.path()).expect_err("short");
        assert!(matches!(err, KeyError::TooShort { len: 16, .. }), "{err}");
    }
}
