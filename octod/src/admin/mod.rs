//! The admin socket: HTTP/1.1 over a Unix socket for `octoctl`, under `/admin/v1/…`, with the
//! wire types of the HTTP API. Every request is authorized by the peer's credentials
//! ([`peer`]: root or group `octo-admin`), and acts as an admin named after the Unix user
//! (`root`, `alice`), who is the actor of the audit log.
//!
//! The handlers are thin: sessions go through the same `operate` as the sessions API, accounts
//! through the same [`Auth`](crate::auth::Auth) methods as the admin API, builds through
//! [`crate::image`], restarts through the engine.
//!
//! | route                                          | answer                                    |
//! | ---------------------------------------------- | ----------------------------------------- |
//! | `GET /admin/v1/status`                         | [`StatusView`]                            |
//! | `GET /admin/v1/sessions`                       | `[session]`                               |
//! | `GET /admin/v1/sessions/{id}`                  | session                                   |
//! | `POST /admin/v1/sessions/{id}/stop`, `/resume` | session (waits for the operation)         |
//! | `DELETE /admin/v1/sessions/{id}`               | 204                                       |
//! | `GET /admin/v1/sessions/{id}/logs?lines=&follow=` | stream of `line` events                |
//! | `GET`/`POST /admin/v1/users`                   | `[user]` / `{username, password, role?}` → 201 user |
//! | `POST /admin/v1/users/{name}/disable`, `/enable`, `/role`, `/password` | as `/api/admin/users/…` |
//! | `GET`/`POST /admin/v1/invite-codes`, `DELETE /admin/v1/invite-codes/{code}` | as `/api/admin/invite-codes` |
//! | `POST /admin/v1/image/build`                   | stream of `line` events, then `done`      |
//! | `POST /admin/v1/container/refresh?parallel=N`  | stream of `session` events, then `summary` |
//!
//! Streams are newline-delimited JSON (`application/x-ndjson`), one object per line with an
//! `event` field; a stream ends with `done`/`summary`, or with `error` when it failed.
//! Errors before a stream starts are the API's one error shape.

pub mod peer;
mod refresh;
mod status;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router, middleware};
use octo_wire::{BuildEvent, LogEvent};
use serde::Serialize;
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc;

use crate::api::sessions::{self, Operation, SessionView};
use crate::api::{ApiError, AppState};
use crate::auth::NewInvite;
use crate::auth::http::{
    CreateInvite, CreateUser, InviteView, JsonBody, ResetPassword, SetRole, UserView,
};
use crate::identity::Role;
use crate::render::SessionNames;

pub use peer::{Actor, Peer};
pub use status::StatusView;

/// How long a stop or resume over the admin socket waits before answering `202`: the
/// administrator at a terminal wants the outcome, and a start may take a while.
const WAIT: Duration = Duration::from_secs(300);

/// What the admin socket needs beyond the API's state.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Image builds (`[image]` in octod.toml).
    pub build: crate::image::BuildConfig,
    /// The user octod runs as, for the linger check of `status`.
    pub run_as: Option<String>,
}

/// Shared state of the admin handlers.
#[derive(Clone)]
pub struct AdminState {
    pub app: AppState,
    pub config: Arc<AdminConfig>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").finish_non_exhaustive()
    }
}

/// The admin routes, without the peer check.
pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/admin/v1/status", get(status::status))
        .route("/admin/v1/sessions", get(list_sessions))
        .route(
            "/admin/v1/sessions/{id}",
            get(show_session).delete(delete_session),
        )
        .route("/admin/v1/sessions/{id}/stop", post(stop_session))
        .route("/admin/v1/sessions/{id}/resume", post(resume_session))
        .route("/admin/v1/sessions/{id}/logs", get(session_logs))
        .route("/admin/v1/users", get(list_users).post(create_user))
        .route("/admin/v1/users/{name}/disable", post(disable_user))
        .route("/admin/v1/users/{name}/enable", post(enable_user))
        .route("/admin/v1/users/{name}/role", post(set_role))
        .route("/admin/v1/users/{name}/password", post(reset_password))
        .route(
            "/admin/v1/invite-codes",
            get(list_invites).post(create_invite),
        )
        .route("/admin/v1/invite-codes/{code}", delete(revoke_invite))
        .route("/admin/v1/image/build", post(image_build))
        .route("/admin/v1/container/refresh", post(refresh::refresh))
}

/// The admin socket's whole surface: every request authorized by its peer's credentials.
/// Serve it with `into_make_service_with_connect_info::<Peer>()`.
pub fn router(state: AdminState) -> Router {
    routes()
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(middleware::from_fn(peer::authorize))
        .with_state(state)
}

/// Serves the admin router on `listener` until the task is dropped or aborted.
pub async fn serve(listener: tokio::net::UnixListener, state: AdminState) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<Peer>(),
    )
    .await
}

// ---- Streams.

/// A stream of events: the handler's task sends, the response body carries one JSON object
/// per line. The task goes on if the client goes away (its sends then fail quietly).
///
/// Each event goes through a [`serde_json::Value`], whose object keys are sorted: the lines are the ones
/// octod sent before the events were typed (`event` is not always the first key).
pub(crate) fn ndjson<E: Serialize + Send + 'static>(rx: mpsc::UnboundedReceiver<E>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        let event = serde_json::to_value(&event).unwrap_or_else(|e| {
            serde_json::to_value(LogEvent::Error {
                message: format!("serializing an event: {e}"),
            })
            .unwrap_or_default()
        });
        let mut line = event.to_string();
        line.push('\n');
        Some((Ok::<_, Infallible>(line), rx))
    });
    (
        [(CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

// ---- Sessions.

async fn list_sessions(
    State(state): State<AdminState>,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let records = state
        .app
        .engine
        .list()
        .await
        .map_err(|e| sessions::engine_error(&e))?;
    Ok(Json(records.iter().map(SessionView::from).collect()))
}

async fn show_session(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let record = sessions::owned(&state.app, &actor.as_user(), &id).await?;
    Ok(Json(SessionView::from(&record)))
}

async fn operate(
    state: &AdminState,
    actor: &Actor,
    id: &str,
    operation: Operation,
) -> Result<Response, ApiError> {
    let (id, done) = sessions::operate(&state.app, &actor.as_user(), id, operation, WAIT).await?;
    if operation == Operation::Delete && done {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    sessions::current(&state.app, &id, done).await
}

async fn stop_session(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    operate(&state, &actor, &id, Operation::Stop).await
}

async fn resume_session(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    operate(&state, &actor, &id, Operation::Resume).await
}

async fn delete_session(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    operate(&state, &actor, &id, Operation::Delete).await
}

/// `?lines=N&follow=true`.
pub use octo_wire::LogsQuery;

/// The session unit's journal (`journalctl --user-unit octo-<id>.service`), as `line` events;
/// with `follow`, new lines as they come until the client goes away.
async fn session_logs(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let record = sessions::owned(&state.app, &actor.as_user(), &id).await?;
    let unit = SessionNames::new(&record.spec.id).service;
    let lines = query.lines.unwrap_or(50);
    let mut command = tokio::process::Command::new("journalctl");
    command
        .args(["--quiet", "--no-pager", "--output", "short-iso", "--lines"])
        .arg(lines.to_string())
        .arg("--user-unit")
        .arg(&unit)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if query.follow.unwrap_or(false) {
        command.arg("--follow");
    }
    let mut child = command
        .spawn()
        .map_err(|e| ApiError::internal(&format!("starting journalctl for {unit}: {e}")))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ApiError::internal(&"journalctl without pipes"));
    };
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Read concurrently: a full stderr pipe would block journalctl.
        let errors = tokio::spawn(async move {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(
                &mut tokio::io::BufReader::new(stderr),
                &mut text,
            )
            .await;
            text
        });
        let mut out = tokio::io::BufReader::new(stdout).lines();
        let mut gone = false;
        loop {
            tokio::select! {
                line = out.next_line() => match line {
                    Ok(Some(line)) => {
                        if tx.send(LogEvent::Line { line }).is_err() {
                            gone = true;
                            break;
                        }
                    }
                    _ => break,
                },
                () = tx.closed() => {
                    gone = true;
                    break;
                }
            }
        }
        if gone {
            // The client went away: a follower would never end by itself.
            let _ = child.start_kill();
            let _ = child.wait().await;
            return;
        }
        let status = child.wait().await;
        let err = errors.await.unwrap_or_default();
        let event = match status {
            Ok(s) if s.success() => LogEvent::Done { unit },
            Ok(s) => LogEvent::Error {
                message: format!("journalctl for {unit}: {s}: {}", err.trim()),
            },
            Err(e) => LogEvent::Error {
                message: format!("journalctl for {unit}: {e}"),
            },
        };
        let _ = tx.send(event);
    });
    Ok(ndjson(rx))
}

// ---- Users and invite codes: the same `Auth` calls as `/api/admin/…`.

async fn list_users(State(state): State<AdminState>) -> Result<Json<Vec<UserView>>, ApiError> {
    let users = state.app.auth.users().await?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

async fn create_user(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
    JsonBody(req): JsonBody<CreateUser>,
) -> Result<Response, ApiError> {
    let user = state
        .app
        .auth
        .add_user(
            &req.username,
            &req.password,
            req.role.unwrap_or(Role::User),
            &actor.0,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))).into_response())
}

async fn disable_user(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let user = state.app.auth.disable(&name, &actor.0).await?;
    Ok(Json(UserView::from(&user)))
}

async fn enable_user(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let user = state.app.auth.enable(&name, &actor.0).await?;
    Ok(Json(UserView::from(&user)))
}

async fn set_role(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<SetRole>,
) -> Result<Json<UserView>, ApiError> {
    let user = state.app.auth.set_role(&name, req.role, &actor.0).await?;
    Ok(Json(UserView::from(&user)))
}

async fn reset_password(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<ResetPassword>,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .auth
        .reset_password(&name, &req.password, &actor.0)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_invites(State(state): State<AdminState>) -> Result<Json<Vec<InviteView>>, ApiError> {
    let invites = state.app.auth.invites().await?;
    Ok(Json(invites.iter().map(InviteView::from).collect()))
}

async fn create_invite(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
    JsonBody(req): JsonBody<CreateInvite>,
) -> Result<Response, ApiError> {
    let new = NewInvite {
        role: req.role.unwrap_or(Role::User),
        uses: req.uses,
        expires_in: req.expires_in_seconds.map(Duration::from_secs),
    };
    let invite = state.app.auth.create_invite(new, &actor.0).await?;
    Ok((StatusCode::CREATED, Json(InviteView::from(&invite))).into_response())
}

async fn revoke_invite(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
    Path(code): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.auth.revoke_invite(&code, &actor.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- Image build.

/// Builds the session image as a transient unit and streams its journal lines; the build
/// goes on if the client goes away.
async fn image_build(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
) -> Result<Response, ApiError> {
    let config = state.config.build.clone();
    if let Some(problem) = build_problem(&config) {
        return Err(ApiError::conflict("not_configured", problem));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let app = state.app.clone();
    tokio::spawn(async move {
        app.audit(&actor.0, "image.build", &config.versioned_tag());
        let _ = tx.send(BuildEvent::Start {
            image: config.versioned_tag(),
            latest: config.latest_tag(),
        });
        let lines = tx.clone();
        let result = crate::image::build(app.engine.systemd(), &config, |line| {
            let _ = lines.send(BuildEvent::Line { line: line.into() });
        })
        .await;
        let event = match result {
            Ok(built) => {
                let id = app
                    .engine
                    .podman()
                    .image_inspect(&built.latest)
                    .await
                    .ok()
                    .flatten()
                    .map(|i| i.id);
                tracing::info!(image = %built.image, unit = %built.unit, "built the session image");
                BuildEvent::Done {
                    image: built.image,
                    latest: built.latest,
                    id,
                    unit: built.unit,
                    elapsed_seconds: built.elapsed.as_secs(),
                }
            }
            Err(error) => {
                tracing::warn!("image build: {error}");
                BuildEvent::Error {
                    message: error.to_string(),
                }
            }
        };
        let _ = tx.send(event);
    });
    Ok(ndjson(rx))
}

/// What keeps a build from starting: a missing context or file server. Checked up front so
/// the administrator reads the config key, not a staging error.
pub fn build_problem(config: &crate::image::BuildConfig) -> Option<String> {
    if !config.container_dir.join("Containerfile").is_file() {
        return Some(format!(
            "no Containerfile in the build context {} (image.context in octod.toml)",
            config.container_dir.display()
        ));
    }
    if !config.fileserver.is_file() {
        return Some(format!(
            "no octo-fileserver binary at {} (image.fileserver in octod.toml)",
            config.fileserver.display()
        ));
    }
    None
}

/// The build settings from `[image]`: where builds are staged (under the state directory,
/// which the `octo` user owns) and the repository of the configured session image.
pub fn build_config(
    image: &str,
    context: PathBuf,
    fileserver: PathBuf,
    state_dir: &std::path::Path,
) -> crate::image::BuildConfig {
    let mut config =
        crate::image::BuildConfig::new(context, fileserver, state_dir.join("image-build"));
    repository_of(image).clone_into(&mut config.repository);
    config
}

/// `localhost/octo-session:latest` → `localhost/octo-session` (a registry port is kept).
pub fn repository_of(image: &str) -> &str {
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(colon) => &image[..name_start + colon],
        None => image,
    }
}

#[cfg(test)]
mod tests;
