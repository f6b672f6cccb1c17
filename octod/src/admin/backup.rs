//! The admin socket's part of an instance backup (issue 17, part 3). `octoctl backup create`
//! runs as root and writes the archive itself (a file of the administrator's choosing, holding
//! the configuration and its credentials, which `octo` cannot read); octod does what only it
//! can do, so that the backup is consistent while Octo keeps running:
//!
//! - `POST /admin/v1/backup/state`: the state database copied through redb's own API in one
//!   read transaction ([`crate::store::Store::copy_to`]) into `<state>/backup/<job>/octod.redb`,
//!   with the sessions to back up and where their units are. Audited as `backup.create`
//!   (before the copy, so the backup holds its own entry).
//! - `POST /admin/v1/backup/sessions/{id}/home`: the session's home archived by the snapshot
//!   worker as a transient unit, its container paused while it is read
//!   ([`crate::engine::Engine::backup_home`]), into `<state>/backup/<job>/`; progress events
//!   while it runs. `busy` while another operation runs on the session (octoctl asks again).
//!
//! octoctl reads what these leave under `<state>/backup/` and removes it; what a killed
//! octoctl leaves there is removed by the next backup once it is a day old.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse as _, Response};
use octo_wire::{BackupHomeEvent, BackupSession, BackupState};
use tokio::sync::mpsc;

use super::{Actor, AdminState, ndjson};
use crate::engine::EngineError;
use crate::http::ApiError;
use crate::session::{DesiredState, SessionId, SessionState};

/// What a backup leaves under the state directory while octoctl reads it.
const DIR: &str = "backup";
/// Leftovers of a killed backup older than this are removed by the next one.
const STALE: Duration = Duration::from_secs(24 * 3600);

fn backup_dir(state: &AdminState) -> Result<PathBuf, ApiError> {
    state
        .app
        .engine
        .config()
        .state_dir
        .as_deref()
        .map(|d| d.join(DIR))
        .ok_or_else(|| ApiError::conflict("not_configured", "octod has no state directory"))
}

/// A fresh directory for one backup's files: `<state>/backup/<prefix>-<random>`, 0700.
fn job_dir(root: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)?;
    let id = crate::snapshot::SnapshotId::random()?;
    let dir = root.join(format!("{prefix}-{id}"));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE);
        if old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `POST /admin/v1/backup/state`.
pub(super) async fn state_copy(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
) -> Result<Response, ApiError> {
    let engine = state.app.engine.clone();
    let root = backup_dir(&state)?;
    crate::service::audit(&engine, &actor.0, "backup.create", "instance");
    let store = engine.store().clone();
    let (dir, report) = tokio::task::spawn_blocking(move || {
        remove_stale(&root);
        let dir = job_dir(&root, "state").map_err(|e| ApiError::internal(&e))?;
        let report = store
            .copy_to(&dir.join("octod.redb"))
            .map_err(|e| ApiError::internal(&e))?;
        Ok::<_, ApiError>((dir, report))
    })
    .await
    .map_err(|e| ApiError::internal(&e))??;
    let sessions = engine
        .list()
        .await
        .map_err(|e| ApiError::from(&e))?
        .into_iter()
        // A session being deleted is not backed up (its home may be gone already).
        .filter(|r| r.state != SessionState::Deleting)
        .map(|r| BackupSession {
            id: r.spec.id.to_string(),
            owner: r.spec.owner.clone(),
            name: r.name.clone(),
            desired: match r.spec.desired {
                DesiredState::Running => "running",
                DesiredState::Idle => "idle",
                DesiredState::Stopped => "stopped",
            }
            .to_owned(),
        })
        .collect();
    let config = engine.config();
    let answer = BackupState {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        state_dir: path_text(config.state_dir.as_deref().unwrap_or(Path::new(""))),
        state_copy: path_text(&dir.join("octod.redb")),
        tables: report.tables,
        rows: report.rows,
        quadlet_dir: path_text(&config.quadlet_dir),
        systemd_user_dir: path_text(&config.systemd_user_dir),
        sessions,
    };
    tracing::info!(actor = %actor.0, tables = report.tables, rows = report.rows, "backup: copied the state");
    Ok(axum::Json(answer).into_response())
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `POST /admin/v1/backup/sessions/{id}/home`.
pub(super) async fn home(
    State(state): State<AdminState>,
    Extension(actor): Extension<Actor>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let record = crate::service::sessions::owned(&state.app.engine, &actor.as_user(), &id).await?;
    let id: SessionId = record.spec.id.clone();
    let root = backup_dir(&state)?;
    let dir = tokio::task::spawn_blocking({
        let root = root.clone();
        let id = id.clone();
        move || job_dir(&root, &format!("home-{id}"))
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(|e| ApiError::internal(&e))?;
    let partial = dir.join(".partial");
    let done = dir.join("home");
    let engine = state.app.engine.clone();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let progress = partial.join(crate::snapshot::PROGRESS);
        let work = engine.backup_home(&id, partial, done.clone());
        tokio::pin!(work);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut last = None;
        let outcome = loop {
            tokio::select! {
                outcome = &mut work => break outcome,
                _ = tick.tick() => {
                    if let Some(p) = crate::snapshot::read_progress(&progress)
                        && last != Some(p)
                    {
                        last = Some(p);
                        let _ = tx.send(BackupHomeEvent::Progress { done: p.done, total: p.total });
                    }
                }
            }
        };
        let event = match outcome {
            Ok(Some(meta)) => BackupHomeEvent::Done {
                dir: path_text(&done),
                home_bytes: meta.home_bytes,
                files: meta.files,
                archive_bytes: meta.archive_bytes,
            },
            Ok(None) => {
                let _ = std::fs::remove_dir_all(&dir);
                BackupHomeEvent::Skipped {
                    reason: "it has no home yet (never started)".into(),
                }
            }
            Err(e @ EngineError::Busy { .. }) => {
                let _ = std::fs::remove_dir_all(&dir);
                BackupHomeEvent::Busy {
                    message: e.to_string(),
                }
            }
            Err(e) => {
                tracing::warn!(session = %id, "backup of the home: {e}");
                let _ = std::fs::remove_dir_all(&dir);
                BackupHomeEvent::Error {
                    message: e.to_string(),
                }
            }
        };
        let _ = tx.send(event);
    });
    Ok(ndjson(rx))
}
