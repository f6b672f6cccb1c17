//! The admin socket: HTTP/1.1 over a Unix socket for `octoctl`, under `/admin/v1/…`, with the
//! wire types of the HTTP API. Every request is authorized by the peer's credentials
//! ([`peer`]: root or group `octo-admin`), and acts as an admin named after the Unix user
//! (`root`, `alice`), who is the actor of the audit log.
//!
//! Sessions, users and invite codes are served by the very handlers of the HTTP API
//! ([`crate::api::sessions`], [`crate::auth::http`]) with the [`Actor`] as their caller; builds
//! go through [`crate::image`], restarts through the engine.
//!
//! | route                                          | answer                                    |
//! | ---------------------------------------------- | ----------------------------------------- |
//! | `GET /admin/v1/status`                         | [`StatusView`]                            |
//! | `GET /admin/v1/sessions`                       | `[session]`                               |
//! | `GET /admin/v1/sessions/{id}`                  | session                                   |
//! | `PATCH /admin/v1/sessions/{id}`                | `{name?, description?}` → session         |
//! | `POST /admin/v1/sessions/{id}/stop`, `/resume` | session (waits for the operation)         |
//! | `POST /admin/v1/sessions/{id}/keep-alive`      | `{minutes}` → session                     |
//! | `DELETE /admin/v1/sessions/{id}`               | 204                                       |
//! | `GET /admin/v1/sessions/{id}/logs?lines=&follow=` | stream of `line` events                |
//! | `GET`/`POST /admin/v1/users`                   | `[user]` / `{username, password, role?}` → 201 user |
//! | `POST /admin/v1/users/{name}/disable`, `/enable`, `/role`, `/password` | as `/api/admin/users/…` |
//! | `GET`/`POST /admin/v1/invite-codes`, `DELETE /admin/v1/invite-codes/{code}` | as `/api/admin/invite-codes` |
//! | `POST /admin/v1/image/build`                   | stream of `line` events, then `done`      |
//! | `POST /admin/v1/container/refresh?parallel=N`  | stream of `session` events, then `summary` |
//! | `GET /admin/v1/usage?user=U&since_days=N`       | as `/api/usage` (everyone's without `user`) |
//! | `POST /admin/v1/users/{name}/budget`           | `{"monthly_tokens":N}`, `{"unlimited":true}` or `{}` (the role's) → 204 |
//! | `POST /admin/v1/backup/state`                  | [`octo_wire::BackupState`]: the state copied through redb ([`backup`]) |
//! | `POST /admin/v1/backup/sessions/{id}/home`     | stream of `progress`, then `done`/`skipped`/`busy`/`error` |
//!
//! Streams are newline-delimited JSON (`application/x-ndjson`), one object per line with an
//! `event` field; a stream ends with `done`/`summary`, or with `error` when it failed.
//! Errors before a stream starts are the API's one error shape.

mod backup;
pub mod peer;
mod refresh;
mod status;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router, middleware};
use octo_wire::{BuildEvent, LogEvent};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::api::sessions;
use crate::app::AppState;
use crate::auth::Auth;
use crate::auth::http as accounts;
use crate::engine::Engine;
use crate::http::ApiError;
use crate::render::SessionNames;
use crate::service::{AdminCaller, Caller};

pub use peer::{Actor, Peer};
pub use status::StatusView;

/// The admin socket's caller: an admin named after the Unix user.
impl Caller for Actor {
    /// The administrator at a terminal wants the outcome, and a start may take a while.
    const WAIT: Duration = Duration::from_secs(300);
    fn user(&self) -> crate::identity::CurrentUser {
        self.as_user()
    }
}

impl AdminCaller for Actor {}

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

impl FromRef<AdminState> for Option<crate::llm::Gateway> {
    fn from_ref(state: &AdminState) -> Self {
        state.app.llm.clone()
    }
}

impl FromRef<AdminState> for Engine {
    fn from_ref(state: &AdminState) -> Self {
        state.app.engine.clone()
    }
}

impl FromRef<AdminState> for Auth {
    fn from_ref(state: &AdminState) -> Self {
        state.app.auth.clone()
    }
}

/// The admin routes, without the peer check.
pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/admin/v1/status", get(status::status))
        .route("/admin/v1/sessions", get(sessions::list_all::<Actor>))
        .merge(sessions::one_session_routes::<_, Actor>(
            "/admin/v1/sessions",
        ))
        .route("/admin/v1/sessions/{id}/logs", get(session_logs))
        .merge(accounts::account_routes::<_, Actor>("/admin/v1"))
        .merge(accounts::token_create_route::<_, Actor>("/admin/v1"))
        .route("/admin/v1/image/build", post(image_build))
        .route("/admin/v1/container/refresh", post(refresh::refresh))
        .route("/admin/v1/usage", get(crate::api::usage::usage::<Actor>))
        .route(
            "/admin/v1/users/{name}/budget",
            post(crate::api::usage::set_budget::<Actor>),
        )
        .route("/admin/v1/backup/state", post(backup::state_copy))
        .route("/admin/v1/backup/sessions/{id}/home", post(backup::home))
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

// ---- Session logs.

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
    let record = crate::service::sessions::owned(&state.app.engine, &actor.as_user(), &id).await?;
    let unit = SessionNames::new(&record.spec.id).service;
    let lines = crate::journal::Lines::Last(query.lines.unwrap_or(50));
    let format = crate::journal::Format::Timestamped;
    let follow = query.follow.unwrap_or(false);
    let mut reader =
        crate::journal::open(&unit, format, lines, follow).map_err(|e| ApiError::internal(&e))?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                line = reader.next_line() => match line {
                    Some(line) => {
                        if tx.send(LogEvent::Line { line }).is_err() {
                            break reader.stop().await;
                        }
                    }
                    None => {
                        let event = match reader.finish().await {
                            Ok(()) => LogEvent::Done { unit },
                            Err(e) => LogEvent::Error {
                                message: e.to_string(),
                            },
                        };
                        let _ = tx.send(event);
                        break;
                    }
                },
                // The client went away: a follower would never end by itself.
                () = tx.closed() => break reader.stop().await,
            }
        }
    });
    Ok(ndjson(rx))
}

// ---- Image build.

/// Builds the session image as a transient unit and streams its journal lines; the build
/// goes on if the client goes away.
async fn image_build(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
) -> Result<Response, ApiError> {
    let config = state.config.build.clone();
    if let Some(problem) = crate::config::build_problem(&config) {
        return Err(ApiError::conflict("not_configured", problem));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let app = state.app.clone();
    tokio::spawn(async move {
        crate::service::audit(
            &app.engine,
            &actor.0,
            "image.build",
            &config.versioned_tag(),
        );
        let _ = tx.send(BuildEvent::Start {
            image: config.versioned_tag(),
            latest: config.latest_tag(),
        });
        let lines = tx.clone();
        let result = crate::service::image::build(&app.engine, &config, |line| {
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

#[cfg(test)]
mod tests;
