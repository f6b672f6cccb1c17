//! `/api/sessions…`, `/api/admin/sessions` and `/api/templates`: the session API over the
//! engine. A user sees and controls only their own sessions (another user's answer `404`, so
//! their existence is not revealed); admins see all.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::auth::RequireAdmin;
use crate::auth::http::JsonBody;
use crate::engine::EngineError;
use crate::identity::CurrentUser;
use crate::session::{Limits, SessionId, SessionState};
use crate::store::{SessionRecord, StoreError};

/// How long a request waits for an operation before answering `202 Accepted` (the operation
/// goes on; the client polls the session).
pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/sessions", get(list).post(create))
        .route("/api/sessions/{id}", get(show).delete(delete))
        .route("/api/sessions/{id}/stop", post(stop))
        .route("/api/sessions/{id}/resume", post(resume))
        .route("/api/admin/sessions", get(list_all))
        .route("/api/templates", get(templates))
}

pub use octo_wire::{
    CreateSession, Desired, SessionStatus, SessionUrls, SessionView, TemplateView,
};

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl From<&SessionRecord> for SessionView {
    fn from(record: &SessionRecord) -> Self {
        let (state, reason) = match &record.state {
            SessionState::Creating => (SessionStatus::Creating, None),
            SessionState::Starting => (SessionStatus::Starting, None),
            SessionState::Running => (SessionStatus::Running, None),
            SessionState::Stopping => (SessionStatus::Stopping, None),
            SessionState::Stopped => (SessionStatus::Stopped, None),
            SessionState::Deleting => (SessionStatus::Deleting, None),
            SessionState::Failed(reason) => (SessionStatus::Failed, Some(reason.clone())),
        };
        let id = record.spec.id.as_str();
        Self {
            id: id.to_owned(),
            owner: record.spec.owner.clone(),
            template: record.spec.template.clone(),
            state,
            reason,
            desired: match record.spec.desired {
                crate::session::DesiredState::Running => Desired::Running,
                crate::session::DesiredState::Stopped => Desired::Stopped,
            },
            created_at: millis(record.created_at),
            updated_at: millis(record.updated_at),
            urls: SessionUrls {
                opencode: format!("/sessions/{id}/opencode/"),
                files: format!("/sessions/{id}/files/"),
                terminal: format!("/sessions/{id}/terminal"),
            },
        }
    }
}

/// Engine errors as API errors: bad input is the client's, the rest is logged.
pub(crate) fn engine_error(error: &EngineError) -> ApiError {
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
        EngineError::Deleting { .. } => ApiError::conflict("session_deleting", error.to_string()),
        EngineError::ImageMissing(_) => ApiError::unavailable(
            "image_missing",
            "the session image is not built yet; an administrator runs `octoctl image build`",
            60,
        ),
        EngineError::Store(StoreError::PortsExhausted { .. }) => ApiError::unavailable(
            "capacity",
            "this host has no room for another session right now",
            60,
        ),
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

/// The session if the user may see it; another user's session is "not found".
pub(crate) async fn owned(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
) -> Result<SessionRecord, ApiError> {
    let id: SessionId = id
        .parse()
        .map_err(|_| ApiError::not_found("no such session"))?;
    let record = state.engine.get(&id).await.map_err(|e| engine_error(&e))?;
    if !user.may_access(&record.spec.owner) {
        return Err(ApiError::not_found("no such session"));
    }
    Ok(record)
}

async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let records = state.engine.list().await.map_err(|e| engine_error(&e))?;
    Ok(Json(
        records
            .iter()
            .filter(|r| r.spec.owner == user.name)
            .map(SessionView::from)
            .collect(),
    ))
}

async fn list_all(
    State(state): State<AppState>,
    RequireAdmin(_): RequireAdmin,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let records = state.engine.list().await.map_err(|e| engine_error(&e))?;
    Ok(Json(records.iter().map(SessionView::from).collect()))
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(SessionView::from(&owned(&state, &user, &id).await?)))
}

/// Waits up to `wait` for an operation; `Ok(None)` means it goes on in the background.
async fn wait_for<T>(
    wait: Duration,
    operation: impl Future<Output = Result<T, std::sync::Arc<EngineError>>>,
) -> Result<Option<T>, ApiError> {
    match tokio::time::timeout(wait, operation).await {
        Ok(Ok(value)) => Ok(Some(value)),
        Ok(Err(error)) => Err(engine_error(&error)),
        Err(_) => Ok(None),
    }
}

/// The session's current view with `200`, or `202` while its operation goes on.
pub(crate) async fn current(
    state: &AppState,
    id: &SessionId,
    done: bool,
) -> Result<Response, ApiError> {
    let record = state.engine.get(id).await.map_err(|e| engine_error(&e))?;
    let status = if done {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(SessionView::from(&record))).into_response())
}

async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    JsonBody(body): JsonBody<CreateSession>,
) -> Result<Response, ApiError> {
    let mine = state
        .engine
        .list()
        .await
        .map_err(|e| engine_error(&e))?
        .iter()
        .filter(|r| r.spec.owner == user.name)
        .count();
    if mine >= usize::try_from(state.max_sessions_per_user).unwrap_or(usize::MAX) {
        return Err(ApiError::conflict(
            "session_limit",
            format!("you have {mine} sessions, the most allowed; delete one first"),
        ));
    }
    let id = crate::engine::random_id().map_err(|e| ApiError::internal(&e))?;
    let request = crate::engine::CreateRequest {
        id: Some(id.to_string()),
        owner: user.name.clone(),
        template: body.template,
        limits: Limits::default(),
    };
    let engine = state.engine.clone();
    // The operation runs as the engine's own task; waiting here only bounds the answer.
    let created = wait_for(WAIT, async move { engine.create(request).await }).await?;
    state.audit(&user.name, "session.create", id.as_str());
    let mut response = current(&state, &id, created.is_some()).await?;
    if created.is_some() {
        *response.status_mut() = StatusCode::CREATED;
    }
    Ok(response)
}

/// The three operations on an existing session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Stop,
    Resume,
    Delete,
}

/// Checks the owner, runs the operation (waiting up to `wait`), writes the audit log with
/// the user as actor. Returns the session id and whether the operation finished. The admin
/// socket calls it too, as an admin named after the Unix user.
pub(crate) async fn operate(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    operation: Operation,
    wait: Duration,
) -> Result<(SessionId, bool), ApiError> {
    let id = owned(state, user, id).await?.spec.id;
    let engine = state.engine.clone();
    let key = id.clone();
    let (done, action) = match operation {
        Operation::Stop => (
            wait_for(wait, async move { engine.stop(&key).await })
                .await?
                .is_some(),
            "session.stop",
        ),
        Operation::Resume => (
            wait_for(wait, async move { engine.resume(&key).await })
                .await?
                .is_some(),
            "session.resume",
        ),
        Operation::Delete => (
            wait_for(wait, async move { engine.delete(&key).await })
                .await?
                .is_some(),
            "session.delete",
        ),
    };
    state.audit(&user.name, action, id.as_str());
    Ok((id, done))
}

async fn stop(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (id, done) = operate(&state, &user, &id, Operation::Stop, WAIT).await?;
    current(&state, &id, done).await
}

async fn resume(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (id, done) = operate(&state, &user, &id, Operation::Resume, WAIT).await?;
    current(&state, &id, done).await
}

async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (id, done) = operate(&state, &user, &id, Operation::Delete, WAIT).await?;
    if done {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        current(&state, &id, false).await
    }
}

#[derive(Debug, Deserialize)]
struct TemplateToml {
    name: String,
    #[serde(default)]
    description: String,
}

async fn templates(
    State(state): State<AppState>,
    _user: CurrentUser,
) -> Result<Json<Vec<TemplateView>>, ApiError> {
    let dir = state.engine.config().render.templates_dir.clone();
    let list = tokio::task::spawn_blocking(move || list_templates(&dir))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(list))
}

/// The templates in a directory: each subdirectory with a readable `template.toml`.
pub fn list_templates(dir: &std::path::Path) -> Vec<TemplateView> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut list: Vec<TemplateView> = entries
        .flatten()
        .filter_map(|entry| {
            let id = entry.file_name().to_str()?.to_owned();
            let text = std::fs::read_to_string(entry.path().join("template.toml")).ok()?;
            let parsed: TemplateToml = toml::from_str(&text)
                .inspect_err(|e| tracing::warn!(template = %id, "template.toml: {e}"))
                .ok()?;
            Some(TemplateView {
                id,
                name: parsed.name,
                description: parsed.description,
            })
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}
