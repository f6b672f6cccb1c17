//! `POST /admin/v1/container/refresh?parallel=N`: restarts running sessions whose container
//! runs another image than the one the session image's tag names now, or whose limits are not
//! those `[limits]` gives them now, N at a time (default 2), so they move onto both; their
//! home volumes are kept. Streams a `session` event per
//! session and step, then a `summary`. It goes on if the client goes away.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::StreamExt as _;
use octo_wire::{RefreshEvent, RefreshStatus};
use tokio::sync::mpsc;

use super::{Actor, AdminState, ndjson};
use crate::http::ApiError;
use crate::render::{LABEL_SESSION, SessionNames};
use crate::service::audit;
use crate::session::{DesiredState, SessionId, SessionState};

/// The default number of sessions restarted at once.
pub const DEFAULT_PARALLEL: usize = 2;

pub use octo_wire::RefreshQuery;

/// What a refresh does with one running session. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Its container runs the current image already, with the current limits.
    Current,
    /// Its container runs another image (or none is found), or its limits changed: restart
    /// it.
    Restart,
}

/// Compares a container's image with the current one (IDs with or without `sha256:`), and
/// whether the session's limits are those of the configuration now.
pub fn plan(container_image: Option<&str>, current: &str, limits_current: bool) -> Plan {
    let bare = |s: &str| s.trim_start_matches("sha256:").to_owned();
    match container_image {
        Some(image) if bare(image) == bare(current) && limits_current => Plan::Current,
        _ => Plan::Restart,
    }
}

pub(super) async fn refresh(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
    query: Result<Query<RefreshQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let parallel = query.parallel.unwrap_or(DEFAULT_PARALLEL);
    if !(1..=64).contains(&parallel) {
        return Err(ApiError::bad_request("parallel must be 1 to 64"));
    }
    let engine = state.app.engine.clone();
    let reference = engine.config().image.clone();
    let current = engine
        .podman()
        .image_inspect(&reference)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| {
            ApiError::conflict(
                "image_missing",
                format!("no session image {reference}: run `octoctl image build` first"),
            )
        })?;
    let containers: HashMap<String, String> = engine
        .podman()
        .list_containers(LABEL_SESSION)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .into_iter()
        .map(|c| (c.name.trim_start_matches('/').to_owned(), c.image_id))
        .collect();
    let records = engine.list().await.map_err(|e| ApiError::from(&e))?;
    let mut running: Vec<(SessionId, bool)> = Vec::new();
    for r in records
        .iter()
        .filter(|r| r.spec.desired == DesiredState::Running && r.state == SessionState::Running)
    {
        let now = engine
            .limits_now(&r.spec.owner, &r.spec.template)
            .await
            .map_err(|e| ApiError::from(&e))?;
        running.push((r.spec.id.clone(), now == r.spec.limits));
    }

    let (tx, rx) = mpsc::unbounded_channel();
    let app = state.app.clone();
    tokio::spawn(async move {
        audit(&app.engine, &actor.0, "container.refresh", &reference);
        let _ = tx.send(RefreshEvent::Start {
            image: reference,
            id: current.id.clone(),
            running: running.len(),
            parallel,
        });
        let mut skipped = 0_usize;
        let mut to_restart = Vec::new();
        for (id, limits_current) in running {
            let name = SessionNames::new(&id).container;
            let image = containers.get(&name).map(String::as_str);
            match plan(image, &current.id, limits_current) {
                Plan::Current => {
                    skipped += 1;
                    let _ = tx.send(session_event(&id, RefreshStatus::Current));
                }
                Plan::Restart => to_restart.push(id),
            }
        }
        let results: Vec<bool> = futures_util::stream::iter(to_restart)
            .map(|id| {
                let engine = app.engine.clone();
                let tx = tx.clone();
                let actor = actor.clone();
                let app = app.clone();
                async move {
                    let _ = tx.send(session_event(&id, RefreshStatus::Restarting));
                    let started = std::time::Instant::now();
                    match engine.restart(&id).await {
                        Ok(_) => {
                            audit(&app.engine, &actor.0, "session.refresh", id.as_str());
                            let _ = tx.send(RefreshEvent::Session {
                                id: id.as_str().to_owned(),
                                status: RefreshStatus::Refreshed,
                                seconds: Some(started.elapsed().as_secs_f64()),
                                message: None,
                            });
                            true
                        }
                        Err(error) => {
                            let _ = tx.send(RefreshEvent::Session {
                                id: id.as_str().to_owned(),
                                status: RefreshStatus::Failed,
                                seconds: None,
                                message: Some(error.to_string()),
                            });
                            false
                        }
                    }
                }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
        let refreshed = results.iter().filter(|ok| **ok).count();
        let failed = results.len() - refreshed;
        tracing::info!(refreshed, skipped, failed, "container refresh done");
        let _ = tx.send(RefreshEvent::Summary {
            refreshed,
            skipped,
            failed,
        });
    });
    Ok(ndjson(rx))
}

/// A session's step without timing or message.
fn session_event(id: &SessionId, status: RefreshStatus) -> RefreshEvent {
    RefreshEvent::Session {
        id: id.as_str().to_owned(),
        status,
        seconds: None,
        message: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_on_the_current_image_is_left_alone() {
        assert_eq!(plan(Some("abc"), "abc", true), Plan::Current);
        assert_eq!(plan(Some("sha256:abc"), "abc", true), Plan::Current);
    }

    #[test]
    fn a_container_on_another_image_or_without_one_is_restarted() {
        assert_eq!(plan(Some("old"), "abc", true), Plan::Restart);
        assert_eq!(plan(None, "abc", true), Plan::Restart);
    }

    #[test]
    fn a_container_whose_limits_changed_is_restarted() {
        assert_eq!(plan(Some("abc"), "abc", false), Plan::Restart);
    }
}
