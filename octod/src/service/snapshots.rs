//! Snapshots of a session's home as both edges offer them: the owner rule first (another
//! user's session is "not found"), then the input, then the engine; an audit entry with the
//! caller as actor. Taking and restoring a snapshot answer as soon as the work has started:
//! its progress is the session's snapshot job ([`list`]).

use crate::engine::{Engine, EngineError, SnapshotJob};
use crate::identity::CurrentUser;
use crate::snapshot::{Meta, SnapshotId, SnapshotName};

use super::sessions::{SessionError, owned};

/// A session's snapshots, its last job, and its owner's usage against their quota.
#[derive(Debug, Clone)]
pub struct Listing {
    pub snapshots: Vec<Meta>,
    pub job: Option<SnapshotJob>,
    pub used: u64,
    pub quota: Option<u64>,
}

pub async fn list(engine: &Engine, user: &CurrentUser, id: &str) -> Result<Listing, SessionError> {
    let record = owned(engine, user, id).await?;
    let id = record.spec.id;
    let snapshots = engine.snapshots(&id).await?;
    let (used, quota) = engine.snapshot_usage(&record.spec.owner).await?;
    Ok(Listing {
        snapshots,
        job: engine.snapshot_job(&id),
        used,
        quota,
    })
}

/// Starts taking a snapshot named `name`.
pub async fn create(
    engine: &Engine,
    user: &CurrentUser,
    id: &str,
    name: &str,
) -> Result<SnapshotJob, SessionError> {
    let id = owned(engine, user, id).await?.spec.id;
    let name = SnapshotName::parse(name)?;
    let job = engine.snapshot_create(&id, name).await?;
    super::audit_detail(
        engine,
        &user.name,
        "session.snapshot",
        id.as_str(),
        &format!("{} {:?}", job.snapshot, job.name),
    );
    Ok(job)
}

/// Starts restoring a snapshot into the session's home.
pub async fn restore(
    engine: &Engine,
    user: &CurrentUser,
    id: &str,
    snapshot: &str,
) -> Result<SnapshotJob, SessionError> {
    let id = owned(engine, user, id).await?.spec.id;
    let snapshot = parse_id(snapshot)?;
    let job = engine.snapshot_restore(&id, &snapshot).await?;
    super::audit_detail(
        engine,
        &user.name,
        "session.snapshot.restore",
        id.as_str(),
        &format!("{} {:?}", job.snapshot, job.name),
    );
    Ok(job)
}

/// Deletes one of the session's snapshots.
pub async fn delete(
    engine: &Engine,
    user: &CurrentUser,
    id: &str,
    snapshot: &str,
) -> Result<(), SessionError> {
    let id = owned(engine, user, id).await?.spec.id;
    let snapshot = parse_id(snapshot)?;
    engine.snapshot_delete(&id, &snapshot).await?;
    super::audit_detail(
        engine,
        &user.name,
        "session.snapshot.delete",
        id.as_str(),
        snapshot.as_str(),
    );
    Ok(())
}

fn parse_id(snapshot: &str) -> Result<SnapshotId, SessionError> {
    snapshot
        .parse()
        .map_err(|_| EngineError::SnapshotNotFound(snapshot.to_owned()).into())
}

/// Forks a session into a new one of the same owner and template, from its current home or one
/// of its snapshots (`None`); the new session, which goes on being filled in the background.
pub async fn fork(
    engine: &Engine,
    user: &CurrentUser,
    id: &str,
    snapshot: Option<&str>,
    max: super::sessions::MaxSessions,
) -> Result<crate::store::SessionRecord, SessionError> {
    let record = owned(engine, user, id).await?;
    let snapshot = snapshot.map(parse_id).transpose()?;
    let id = record.spec.id;
    let forked = engine.fork(&id, snapshot.clone(), Some(max.0)).await?;
    let detail = match &snapshot {
        Some(s) => format!("from {id} snapshot {s}"),
        None => format!("from {id}"),
    };
    super::audit_detail(
        engine,
        &user.name,
        "session.fork",
        forked.spec.id.as_str(),
        &detail,
    );
    Ok(forked)
}
