//! `/api/sessions…`, `/api/admin/sessions` and `/api/templates`: the session API, thin over
//! [`crate::service::sessions`] (the owner rule, wait-then-202, create). The handlers that act
//! on one session or list them all are generic over the [`Caller`]: the admin socket mounts
//! the same ones with its own actor.

use axum::extract::{FromRef, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::time::SystemTime;

use axum::routing::{get, post};
use axum::{Json, Router};

use crate::auth::AuthState;
use crate::auth::http::RequireAdmin;
use crate::engine::Engine;
use crate::http::{ApiError, JsonBody};
use crate::identity::CurrentUser;
use crate::service::sessions::{self as service, MaxSessions, Operation, Outcome, WAIT};
use crate::service::{AdminCaller, Caller};
use crate::session::SessionState;
use crate::store::{SessionRecord, to_unix_ms};

/// The session routes; merge them into the application's router, whose state provides the
/// engine, the session limit and the accounts through `FromRef`.
pub fn routes<S>() -> Router<S>
where
    Engine: FromRef<S>,
    MaxSessions: FromRef<S>,
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/api/sessions", get(list).post(create))
        .route("/api/admin/sessions", get(list_all::<RequireAdmin>))
        .route("/api/templates", get(templates))
        .route("/api/sessions/{id}/fork", post(fork))
        .merge(one_session_routes::<S, CurrentUser>("/api/sessions"))
}

/// The routes on one session, `{prefix}/{id}` (show, rename, delete), `…/stop` and
/// `…/resume`, for a caller `C`: the API mounts them for the signed-in user, the admin socket
/// for its actor.
pub fn one_session_routes<S, C>(prefix: &str) -> Router<S>
where
    Engine: FromRef<S>,
    C: Caller + FromRequestParts<S> + 'static,
    S: Clone + Send + Sync + 'static,
{
    let at = |path: &str| format!("{prefix}{path}");
    // One handler per operation, waiting as long as the caller does.
    let run = |operation: Operation| {
        move |State(engine): State<Engine>, caller: C, Path(id): Path<String>| async move {
            let user = caller.user();
            let outcome = service::operate(&engine, &user, &id, operation, C::WAIT).await?;
            Ok::<_, ApiError>(answer(&engine, outcome, StatusCode::OK).await)
        }
    };
    Router::new()
        .route(
            &at("/{id}"),
            get(show::<C>)
                .patch(update::<C>)
                .delete(run(Operation::Delete)),
        )
        .route(&at("/{id}/keep-alive"), post(keep_alive::<C>))
        .route(&at("/{id}/stop"), post(run(Operation::Stop)))
        .route(&at("/{id}/resume"), post(run(Operation::Resume)))
        .route(
            &at("/{id}/snapshots"),
            get(list_snapshots::<C>).post(create_snapshot::<C>),
        )
        .route(
            &at("/{id}/snapshots/{snapshot}"),
            axum::routing::delete(delete_snapshot::<C>),
        )
        .route(
            &at("/{id}/snapshots/{snapshot}/restore"),
            post(restore_snapshot::<C>),
        )
}

/// A snapshot as the API shows it.
pub fn snapshot_view(meta: &crate::snapshot::Meta) -> octo_wire::SnapshotView {
    octo_wire::SnapshotView {
        id: meta.id.to_string(),
        name: meta.name.clone(),
        created_at: meta.created_at,
        size_bytes: meta.archive_bytes,
        home_bytes: meta.home_bytes,
        files: meta.files,
        was_running: meta.was_running,
    }
}

/// A snapshot job as the API shows it.
pub fn snapshot_job_view(job: &crate::engine::SnapshotJob) -> octo_wire::SnapshotJobView {
    use crate::engine::{SnapshotJobKind, SnapshotJobState};
    let (state, reason) = match &job.state {
        SnapshotJobState::Running => (octo_wire::SnapshotJobState::Running, None),
        SnapshotJobState::Done => (octo_wire::SnapshotJobState::Done, None),
        SnapshotJobState::Failed(reason) => {
            (octo_wire::SnapshotJobState::Failed, Some(reason.clone()))
        }
    };
    octo_wire::SnapshotJobView {
        kind: match job.kind {
            SnapshotJobKind::Create => octo_wire::SnapshotJobKind::Create,
            SnapshotJobKind::Restore => octo_wire::SnapshotJobKind::Restore,
        },
        state,
        snapshot: job.snapshot.to_string(),
        name: job.name.clone(),
        reason,
        done_bytes: job.progress.done,
        total_bytes: job.progress.total,
        started_at: job.started_at,
    }
}

/// `GET …/{id}/snapshots`: the snapshots, the last job with its progress, the quota.
async fn list_snapshots<C: Caller>(
    State(engine): State<Engine>,
    caller: C,
    Path(id): Path<String>,
) -> Result<Json<octo_wire::SnapshotList>, ApiError> {
    let listing = crate::service::snapshots::list(&engine, &caller.user(), &id).await?;
    Ok(Json(octo_wire::SnapshotList {
        snapshots: listing.snapshots.iter().map(snapshot_view).collect(),
        job: listing.job.as_ref().map(snapshot_job_view),
        used_bytes: listing.used,
        quota_bytes: listing.quota,
    }))
}

/// `POST …/{id}/snapshots`: starts taking a snapshot; `202` with the job.
async fn create_snapshot<C: Caller>(
    State(engine): State<Engine>,
    caller: C,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<octo_wire::CreateSnapshot>,
) -> Result<Response, ApiError> {
    let job = crate::service::snapshots::create(&engine, &caller.user(), &id, &body.name).await?;
    Ok((StatusCode::ACCEPTED, Json(snapshot_job_view(&job))).into_response())
}

/// `POST /api/sessions/{id}/fork`: a new session from this one's current home or a snapshot;
/// `202` with the new session while its home is filled in.
async fn fork(
    State(engine): State<Engine>,
    State(max): State<MaxSessions>,
    user: CurrentUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<octo_wire::ForkSession>,
) -> Result<Response, ApiError> {
    let record =
        crate::service::snapshots::fork(&engine, &user, &id, body.snapshot.as_deref(), max).await?;
    Ok((StatusCode::ACCEPTED, Json(view_of(&engine, &record).await)).into_response())
}

/// `POST …/{id}/snapshots/{snapshot}/restore`: starts a restore; `202` with the job.
async fn restore_snapshot<C: Caller>(
    State(engine): State<Engine>,
    caller: C,
    Path((id, snapshot)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let job = crate::service::snapshots::restore(&engine, &caller.user(), &id, &snapshot).await?;
    Ok((StatusCode::ACCEPTED, Json(snapshot_job_view(&job))).into_response())
}

/// `DELETE …/{id}/snapshots/{snapshot}`: `204` once it is gone.
async fn delete_snapshot<C: Caller>(
    State(engine): State<Engine>,
    caller: C,
    Path((id, snapshot)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    crate::service::snapshots::delete(&engine, &caller.user(), &id, &snapshot).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub use octo_wire::{
    CreateSession, Desired, IdleReason, KeepAlive, SessionIdle, SessionStatus, SessionUrls,
    SessionView, TemplateView, UpdateSession,
};

/// A session as the API shows it; `last_activity` is the store's (none: never used since it
/// was created, so its creation counts).
pub fn view(
    record: &SessionRecord,
    last_activity: Option<SystemTime>,
    controllers: crate::render::Controllers,
    disk: octo_wire::SessionDisk,
    idle: SessionIdle,
) -> SessionView {
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
    SessionView {
        id: id.to_owned(),
        owner: record.spec.owner.clone(),
        template: record.spec.template.clone(),
        name: record.name.clone(),
        description: record.description.clone(),
        state,
        reason,
        desired: match record.spec.desired {
            crate::session::DesiredState::Running => Desired::Running,
            // The wire keeps two values: an idle session is stopped to its user (it wakes
            // on access, which the user sees as it starting).
            crate::session::DesiredState::Idle | crate::session::DesiredState::Stopped => {
                Desired::Stopped
            }
        },
        created_at: to_unix_ms(record.created_at),
        updated_at: to_unix_ms(record.updated_at),
        last_active_at: to_unix_ms(
            last_activity.map_or(record.created_at, |t| t.max(record.created_at)),
        ),
        urls: SessionUrls {
            opencode: format!("/sessions/{id}/opencode/"),
            files: format!("/sessions/{id}/files/"),
            terminal: format!("/sessions/{id}/terminal"),
        },
        limits: limits_view(&record.spec.limits, controllers),
        disk,
        idle,
    }
}

/// What the idle stop will do with a session, as the API shows it.
pub fn idle_view(
    engine: &Engine,
    record: &SessionRecord,
    last_activity: Option<SystemTime>,
    keep_alive_until: Option<SystemTime>,
) -> SessionIdle {
    let now = SystemTime::now();
    let outlook = engine.idle_outlook(record, last_activity, keep_alive_until);
    SessionIdle {
        stops_at: outlook.as_ref().map(|o| to_unix_ms(o.stops_at)),
        kept_by: outlook
            .map(|o| {
                o.kept_by
                    .into_iter()
                    .map(|reason| match reason {
                        crate::engine::KeptBy::Agent => IdleReason::Agent,
                        crate::engine::KeptBy::Terminal => IdleReason::Terminal,
                        crate::engine::KeptBy::KeepAlive => IdleReason::KeepAlive,
                        crate::engine::KeptBy::Activity => IdleReason::Activity,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        keep_alive_until: keep_alive_until
            .filter(|until| *until > now)
            .map(to_unix_ms),
        keep_alive_max_minutes: u32::try_from(engine.config().keep_alive_max.as_secs() / 60)
            .unwrap_or(u32::MAX),
    }
}

/// A session's disk figures as the API shows them.
pub fn disk_view(facts: &crate::engine::DiskFacts) -> octo_wire::SessionDisk {
    octo_wire::SessionDisk {
        used_bytes: facts.used,
        measured_at: facts.measured_at.map(to_unix_ms),
        owner_used_bytes: facts.owner_used,
        quota_bytes: facts.quota,
        quota_state: match facts.level {
            crate::disk::QuotaLevel::Ok => octo_wire::QuotaState::Ok,
            crate::disk::QuotaLevel::Warning => octo_wire::QuotaState::Warning,
            crate::disk::QuotaLevel::Over => octo_wire::QuotaState::Over,
        },
    }
}

/// A session's limits, and those of them the host does not enforce.
pub fn limits_view(
    limits: &crate::session::Limits,
    controllers: crate::render::Controllers,
) -> octo_wire::SessionLimits {
    octo_wire::SessionLimits {
        memory_bytes: limits.memory_bytes,
        cpu_centis: limits.cpu_centis,
        pids: limits.pids,
        unenforced: crate::render::unenforced_limits(limits, controllers)
            .into_iter()
            .map(|u| u.controller.to_owned())
            .collect(),
    }
}

/// [`view`] with the session's last activity read from the store. That read failing costs
/// only precision (the creation time stands in), not the answer.
async fn view_of(engine: &Engine, record: &SessionRecord) -> SessionView {
    let activity = engine
        .last_activity(&record.spec.id)
        .await
        .inspect_err(|e| tracing::warn!("reading the activity of session {}: {e}", record.spec.id))
        .ok()
        .flatten();
    let disk = engine.disk_facts(&record.spec.id, &record.spec.owner).await;
    let keep_alive = engine
        .keep_alives()
        .await
        .inspect_err(|e| tracing::warn!("reading keep-alives: {e}"))
        .ok()
        .and_then(|all| all.get(&record.spec.id).copied());
    let idle = idle_view(engine, record, activity, keep_alive);
    view(
        record,
        activity,
        engine.config().render.controllers,
        disk_view(&disk),
        idle,
    )
}

/// [`view`] of each record, with the activity of all sessions read once.
async fn views<'a>(
    engine: &Engine,
    records: impl Iterator<Item = &'a SessionRecord>,
) -> Result<Vec<SessionView>, ApiError> {
    let activity = engine.activity().await.map_err(|e| ApiError::from(&e))?;
    let keep_alives = engine.keep_alives().await.map_err(|e| ApiError::from(&e))?;
    let mut out = Vec::new();
    for r in records {
        let disk = engine.disk_facts(&r.spec.id, &r.spec.owner).await;
        let last = activity.get(&r.spec.id).copied();
        let idle = idle_view(engine, r, last, keep_alives.get(&r.spec.id).copied());
        out.push(view(
            r,
            last,
            engine.config().render.controllers,
            disk_view(&disk),
            idle,
        ));
    }
    Ok(out)
}

/// A session state as the API names it.
pub fn state_name(state: &SessionState) -> &'static str {
    match state {
        SessionState::Creating => "creating",
        SessionState::Starting => "starting",
        SessionState::Running => "running",
        SessionState::Stopping => "stopping",
        SessionState::Stopped => "stopped",
        SessionState::Deleting => "deleting",
        SessionState::Failed(_) => "failed",
    }
}

/// An operation's outcome as an answer: `done` (`200`, or `201` for a create) with the
/// session when it finished, `202` with the session while it goes on, `204` once deleted.
async fn answer(engine: &Engine, outcome: Outcome, done: StatusCode) -> Response {
    match outcome {
        Outcome::Done(record) => (done, Json(view_of(engine, &record).await)).into_response(),
        Outcome::Pending(record) => {
            (StatusCode::ACCEPTED, Json(view_of(engine, &record).await)).into_response()
        }
        Outcome::Deleted => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn list(
    State(engine): State<Engine>,
    user: CurrentUser,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let records = engine.list().await.map_err(|e| ApiError::from(&e))?;
    let mine = records.iter().filter(|r| r.spec.owner == user.name);
    Ok(Json(views(&engine, mine).await?))
}

/// Every session, for an admin.
pub async fn list_all<A: AdminCaller>(
    State(engine): State<Engine>,
    _: A,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let records = engine.list().await.map_err(|e| ApiError::from(&e))?;
    Ok(Json(views(&engine, records.iter()).await?))
}

async fn show<C: Caller>(
    State(engine): State<Engine>,
    caller: C,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let record = service::owned(&engine, &caller.user(), &id).await?;
    Ok(Json(view_of(&engine, &record).await))
}

/// `PATCH {prefix}/{id}`: a new name and/or description (owner or admin, like every route on
/// a session; bad input is `400 invalid_name`/`invalid_description`).
async fn update<C: Caller>(
    State(engine): State<Engine>,
    caller: C,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateSession>,
) -> Result<Json<SessionView>, ApiError> {
    let change = service::Relabel {
        name: body.name,
        description: body.description,
    };
    let record = service::relabel(&engine, &caller.user(), &id, change).await?;
    Ok(Json(view_of(&engine, &record).await))
}

/// `POST {prefix}/{id}/keep-alive`: keep the session running without activity for the
/// minutes asked (`0` ends it), at most `sessions.keep_alive_max_hours`
/// (`400 keep_alive_too_long`). Owner or admin.
async fn keep_alive<C: Caller>(
    State(engine): State<Engine>,
    caller: C,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<KeepAlive>,
) -> Result<Json<SessionView>, ApiError> {
    let record = service::keep_alive(&engine, &caller.user(), &id, body.minutes).await?;
    Ok(Json(view_of(&engine, &record).await))
}

async fn create(
    State(engine): State<Engine>,
    State(max): State<MaxSessions>,
    user: CurrentUser,
    JsonBody(body): JsonBody<CreateSession>,
) -> Result<Response, ApiError> {
    let outcome = service::create(&engine, &user, body.template, max, WAIT).await?;
    Ok(answer(&engine, outcome, StatusCode::CREATED).await)
}

impl From<crate::templates::Template> for TemplateView {
    fn from(template: crate::templates::Template) -> Self {
        Self {
            id: template.id,
            name: template.name,
            description: template.description,
        }
    }
}

async fn templates(
    State(engine): State<Engine>,
    _user: CurrentUser,
) -> Result<Json<Vec<TemplateView>>, ApiError> {
    let dir = engine.config().render.templates_dir.clone();
    let list = tokio::task::spawn_blocking(move || {
        crate::templates::list(&dir)
            .into_iter()
            .map(TemplateView::from)
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(list))
}
