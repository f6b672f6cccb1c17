//! The one error type of octod's HTTP edges, and what each domain error means in HTTP.
//!
//! Error policy: every failure answers `{ "error": { "code", "message" } }` with a stable,
//! machine-readable `code` and a short message for people. Internal errors are logged with
//! their full chain and shown to the client only as `internal`. Bad input is the client's;
//! the domain errors' mappings below are the only place that gives them a status and a code.

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use octo_wire::{ErrorBody, ErrorDetail};

use crate::auth::{AuthError, InvalidCredential};
use crate::engine::EngineError;
use crate::service::sessions::SessionError;
use crate::store::{AccountError, StoreError};

/// An API failure: status, stable code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for `Retry-After` (503 while a session wakes, 429 for rate limits).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first")
    }
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "not allowed")
    }
    /// Also used for another user's session: its existence is not revealed.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn too_many_requests(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many attempts; try again later",
            )
        }
    }
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }
    /// Logs the cause and hides it from the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!("internal error: {cause:#}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code: self.code.to_owned(),
                    message: self.message,
                },
            }),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

/// Engine errors: bad input is the client's, the rest is logged.
impl From<&EngineError> for ApiError {
    fn from(error: &EngineError) -> Self {
        match error {
            EngineError::InvalidId(e) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string())
            }
            EngineError::UnknownTemplate(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_template",
                error.to_string(),
            ),
            EngineError::InvalidOwner(_) => ApiError::bad_request(error.to_string()),
            EngineError::NotFound(_) => ApiError::not_found("no such session"),
            EngineError::Deleting { .. } => {
                ApiError::conflict("session_deleting", error.to_string())
            }
            EngineError::ImageMissing(_) => ApiError::unavailable(
                "image_missing",
                "the session image is not built yet; an administrator runs `octoctl image build`",
                60,
            ),
            EngineError::ImageOutdated { .. } => ApiError::unavailable(
                "image_outdated",
                "Octo was upgraded and its session image is being rebuilt for the new version; try again in a few minutes",
                60,
            ),
            EngineError::Refused(refusal) | EngineError::Store(StoreError::Refused(refusal)) => {
                ApiError::from(refusal)
            }
            EngineError::Store(StoreError::SessionLimit { count, .. }) => ApiError::conflict(
                "session_limit",
                format!("you have {count} sessions, the most allowed; delete one first"),
            ),
            EngineError::Busy { .. } => ApiError::conflict("operation_running", error.to_string()),
            EngineError::SnapshotExists(_) => {
                ApiError::conflict("snapshot_exists", error.to_string())
            }
            EngineError::SnapshotNotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "snapshot_not_found",
                "no such snapshot",
            ),
            EngineError::SnapshotQuota { .. } => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "snapshot_quota",
                error.to_string(),
            ),
            EngineError::Failed { message, .. }
                if message.starts_with("its home has not been created yet") =>
            {
                ApiError::conflict("no_home", error.to_string())
            }
            EngineError::Systemd(e) => {
                tracing::warn!("{e}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "session_failed",
                    "the session did not start; see its state for the reason",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

/// Admission control: a full host, too little memory or disk for octod's state is the host's state (`503`, try
/// later); a user at their own maximum is theirs to change (`409`).
impl From<&crate::limits::Refusal> for ApiError {
    fn from(refusal: &crate::limits::Refusal) -> Self {
        use crate::limits::Refusal;
        match refusal {
            Refusal::HostFull { .. } => ApiError::unavailable("host_full", refusal.to_string(), 60),
            Refusal::LowMemory { .. } => {
                ApiError::unavailable("host_memory_low", refusal.to_string(), 60)
            }
            Refusal::LowStateDisk { .. } => {
                ApiError::unavailable("host_disk_low", refusal.to_string(), 300)
            }
            Refusal::UserFull { .. } => ApiError::conflict("running_limit", refusal.to_string()),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::NotFound => ApiError::not_found("no such session"),
            SessionError::Invalid(invalid) => ApiError::new(
                StatusCode::BAD_REQUEST,
                if invalid.is_name() {
                    "invalid_name"
                } else {
                    "invalid_description"
                },
                invalid.to_string(),
            ),
            SessionError::InvalidSnapshotName(invalid) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", invalid.to_string())
            }
            SessionError::Engine(error) => ApiError::from(&*error),
            SessionError::KeepAliveTooLong { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "keep_alive_too_long",
                error.to_string(),
            ),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        match e {
            AuthError::Account(AccountError::UserExists(_)) => {
                ApiError::conflict("username_taken", "this user name is taken")
            }
            AuthError::Account(AccountError::NoSuchUser(_)) => ApiError::not_found("no such user"),
            AuthError::Account(AccountError::InvalidInvite) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_invite", message)
            }
            AuthError::Account(AccountError::NoSuchInvite) => {
                ApiError::not_found("no such invite code")
            }
            AuthError::Account(AccountError::NoSuchToken) => {
                ApiError::not_found("no such API token")
            }
            AuthError::Account(AccountError::TooManyTokens(_)) => {
                ApiError::conflict("too_many_tokens", message)
            }
            AuthError::AdminScopeNotAllowed => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            AuthError::Account(AccountError::LastAdmin(_)) => {
                ApiError::conflict("last_admin", "this would leave no enabled admin")
            }
            AuthError::Invalid(InvalidCredential::Username) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_username", message)
            }
            AuthError::Invalid(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_password", message)
            }
            AuthError::InvalidCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", message)
            }
            AuthError::Disabled => {
                ApiError::new(StatusCode::FORBIDDEN, "account_disabled", message)
            }
            AuthError::WrongPassword => {
                ApiError::new(StatusCode::FORBIDDEN, "wrong_password", message)
            }
            AuthError::RateLimited { retry_after } => {
                ApiError::too_many_requests(crate::auth::limit::retry_after_secs(retry_after))
            }
            AuthError::Unauthenticated => ApiError::unauthorized(),
            AuthError::PasswordsOff(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "password_sign_in_off", message)
            }
            AuthError::ExternalAccount(_) => ApiError::conflict("external_account", message),
            AuthError::Oidc(e) => ApiError::new(StatusCode::BAD_REQUEST, e.code(), message),
            AuthError::InvalidInvite(m) | AuthError::InvalidApiToken(m) => ApiError::bad_request(m),
            e @ (AuthError::Account(_)
            | AuthError::Hash(_)
            | AuthError::Key(_)
            | AuthError::Sign(_)
            | AuthError::Random(_)
            | AuthError::Task(_)
            | AuthError::OidcSetup(_)) => ApiError::internal(&e),
        }
    }
}
