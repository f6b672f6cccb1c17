//! Passwords and user names: the rules for them, Argon2id hashing and verification.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

use crate::store::Secret;

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest password accepted, in bytes: long passphrases yes, megabytes to hash no.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The longest user name.
pub const MAX_USERNAME_CHARS: usize = 32;

/// Argon2id cost. The default is the OWASP recommendation (19 MiB, 2 passes, 1 lane); tests
/// use [`PasswordCost::TEST`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

impl PasswordCost {
    /// The cheapest valid cost: for tests only.
    pub const TEST: Self = Self {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
}

/// Why a user name or password was refused. The messages go to the user as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCredential {
    #[error("a user name is 1 to 32 characters of a-z, 0-9, '_' and '-', starting with a letter")]
    Username,
    #[error("a password needs at least 10 characters")]
    PasswordTooShort,
    #[error("a password may be at most 1024 bytes long")]
    PasswordTooLong,
}

/// 1–32 of `[a-z0-9_-]`, starting with a letter.
pub fn check_username(name: &str) -> Result<(), InvalidCredential> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && name.len() <= MAX_USERNAME_CHARS {
        Ok(())
    } else {
        Err(InvalidCredential::Username)
    }
}

/// At least [`MIN_PASSWORD_CHARS`] characters, at most [`MAX_PASSWORD_BYTES`] bytes.
pub fn check_password(password: &str) -> Result<(), InvalidCredential> {
    if password.len() > MAX_PASSWORD_BYTES {
        Err(InvalidCredential::PasswordTooLong)
    } else if password.chars().count() < MIN_PASSWORD_CHARS {
        Err(InvalidCredential::PasswordTooShort)
    } else {
        Ok(())
    }
}

/// Why hashing failed: bad parameters or no randomness. Never a wrong password.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid Argon2 parameters {cost:?}: {message}")]
    Params { cost: PasswordCost, message: String },
    #[error("hashing a password: {0}")]
    Hash(String),
    #[error("reading random bytes for a password salt: {0}")]
    Random(#[from] getrandom::Error),
}

/// Hashes and verifies with one Argon2id configuration.
#[derive(Debug, Clone)]
pub struct Hasher {
    argon2: Argon2<'static>,
}

impl Hasher {
    pub fn new(cost: PasswordCost) -> Result<Self, HashError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| HashError::Params {
                cost,
                message: e.to_string(),
            })?;
        Ok(Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        })
    }

    /// The PHC string (`$argon2id$v=19$m=…`) of `password` with a fresh 16-byte salt.
    pub fn hash(&self, password: &str) -> Result<Secret, HashError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt)?;
        let hash = self
            .argon2
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map_err(|e| HashError::Hash(e.to_string()))?;
        Ok(Secret::new(hash.to_string()))
    }

    /// Whether `password` matches `phc`. A malformed PHC string matches nothing. The cost
    /// comes from the PHC string, so hashes made with an older cost keep working.
    pub fn verify(&self, password: &str, phc: &Secret) -> bool {
        self.argon2
            .verify_password(password.as_bytes(), phc.expose())
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["a", "ada", "a-b_c9", "abcdefghijklmnopqrstuvwxyz012345"] {
            assert_eq!(check_username(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "9lives",
            "_a",
            "-a",
            "Ada",
            "a b",
            "a.b",
            "é",
            "abcdefghijklmnopqrstuvwxyz0123456",
        ] {
            assert_eq!(
                check_username(bad),
                Err(InvalidCredential::Username),
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords() {
        assert_eq!(
            check_password("123456789"),
            Err(InvalidCredential::PasswordTooShort)
        );
        assert_eq!(check_password("1234567890"), Ok(()));
        // Characters, not bytes, count for the minimum.
        assert_eq!(
            check_password("ééééééééé"),
            Err(InvalidCredential::PasswordTooShort)
        );
        assert_eq!(check_password(&"x".repeat(1024)), Ok(()));
        assert_eq!(
            check_password(&"x".repeat(1025)),
            Err(InvalidCredential::PasswordTooLong)
        );
    }

    #[test]
    fn hash_is_argon2id_salted_and_verifies() {
        let hasher = Hasher::new(PasswordCost::TEST).expect("hasher");
        let a = hasher.hash("correct horse").expect("hash");
        let b = hasher.hash("correct horse").expect("hash");
        assert!(
            a.expose().starts_with("$argon2id$v=19$m=8,t=1,p=1$"),
            "{}",
            a.expose()
        );
        assert_ne!(a, b, "salted");
        assert!(hasher.verify("correct horse", &a));
        assert!(!hasher.verify("correct horsE", &a));
        assert!(!hasher.verify("correct horse", &Secret::new("garbage".to_owned())));
        // A hash made with another cost still verifies.
        let default = Hasher::new(PasswordCost::default()).expect("hasher");
        assert!(default.verify("correct horse", &a));
    }

    #[test]
    fn default_cost_is_owasp() {
        let c = PasswordCost::default();
        assert_eq!(
            (c.memory_kib, c.iterations, c.parallelism),
            (19 * 1024, 2, 1)
        );
        assert!(Hasher::new(PasswordCost { memory_kib: 0, ..c }).is_err());
    }
}
