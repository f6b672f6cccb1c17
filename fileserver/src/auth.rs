//! Bearer-token authentication: the session token from `OCTO_SESSION_TOKEN`, compared in
//! constant time.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::{ApiError, Code};

/// The session token. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct Token(Vec<u8>);

/// The token was empty.
#[derive(Debug, thiserror::Error)]
#[error("the session token is empty")]
pub struct EmptyToken;

impl Token {
    /// A token; refuses the empty string (it would let anyone in with `Bearer `).
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, EmptyToken> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(EmptyToken);
        }
        Ok(Token(secret))
    }

    /// Whether `given` is the token. Takes the same time wherever the first difference is;
    /// only the length (which is not secret: tokens have a fixed format) can be observed.
    pub fn matches(&self, given: &[u8]) -> bool {
        if given.len() != self.0.len() {
            return false;
        }
        let diff = self
            .0
            .iter()
            .zip(given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Middleware: 401 unless `Authorization: Bearer <token>`.
pub async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .and_then(|v| {
            let (scheme, rest) = v.split_at_checked(7)?;
            scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
        });
    if given.is_some_and(|t| state.token.matches(t)) {
        return next.run(request).await;
    }
    ApiError::new(Code::Unauthorized, "a valid bearer token is required")
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_exact_token() {
        let t = Token::new("s3cret-token").expect("token");
        assert!(t.matches(b"s3cret-token"));
        assert!(!t.matches(b"s3cret-tokeN"));
        assert!(!t.matches(b"s3cret-toke"));
        assert!(!t.matches(b""));
        assert!(Token::new("").is_err());
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
    }
}
