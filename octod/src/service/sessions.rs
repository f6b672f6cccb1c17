//! Session operations as both edges offer them. A user sees and controls only their own
//! sessions (another user's is "not found", so its existence is not revealed); admins all.
//! An operation is waited for a bounded time, then goes on in the background as the engine's
//! own task: the [`Outcome`] says which.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{CreateRequest, Engine, EngineError};
use crate::identity::CurrentUser;
use crate::session::{InvalidLabel, SessionDescription, SessionId, SessionName, SessionState};
use crate::store::SessionRecord;

/// How long an API request waits for an operation before answering `202 Accepted` (the
/// operation goes on; the client polls the session).
pub const WAIT: Duration = Duration::from_secs(10);

/// The most sessions one user may have (`max_sessions_per_user` in octod.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxSessions(pub u32);

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No such session, or another user's.
    #[error("no such session")]
    NotFound,
    /// A name or description that is not valid.
    #[error(transparent)]
    Invalid(#[from] InvalidLabel),
    /// A snapshot name that is not valid.
    #[error(transparent)]
    InvalidSnapshotName(#[from] crate::snapshot::InvalidSnapshotName),
    #[error(transparent)]
    Engine(#[from] Arc<EngineError>),
    /// A keep-alive longer than the administrator allows (`max` zero: keep-alive is off).
    #[error("{}", keep_alive_refusal(*.max))]
    KeepAliveTooLong { max: Duration },
}

fn keep_alive_refusal(max: Duration) -> String {
    if max.is_zero() {
        "keeping sessions running is turned off on this host (sessions.keep_alive_max_hours = 0)"
            .to_owned()
    } else {
        format!(
            "a session can be kept running for at most {} hours (sessions.keep_alive_max_hours)",
            max.as_secs() / 3600
        )
    }
}

impl From<EngineError> for SessionError {
    fn from(error: EngineError) -> Self {
        Self::Engine(Arc::new(error))
    }
}

/// Where an operation stands when the caller stops waiting.
#[derive(Debug)]
pub enum Outcome {
    /// It finished: the session as it is now.
    Done(SessionRecord),
    /// It goes on in the background: the session as it is now.
    Pending(SessionRecord),
    /// The session was deleted.
    Deleted,
}

/// The three operations on an existing session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Stop,
    Resume,
    Delete,
}

/// The session if the user may see it; another user's session is "not found".
pub async fn owned(
    engine: &Engine,
    user: &CurrentUser,
    id: &str,
) -> Result<SessionRecord, SessionError> {
    let id: SessionId = id.parse().map_err(|_| SessionError::NotFound)?;
    let record = engine.get(&id).await?;
    if !user.may_access(&record.spec.owner) {
        return Err(SessionError::NotFound);
    }
    Ok(record)
}

/// Creates a session of `template` owned by the user, unless they have `max` sessions
/// already (counted by the store in the transaction that creates it); waits up to `wait`
/// for it to run.
pub async fn create(
    engine: &Engine,
    user: &CurrentUser,
    template: String,
    max: MaxSessions,
    wait: Duration,
) -> Result<Outcome, SessionError> {
    let id = crate::engine::random_id()?;
    let request = CreateRequest {
        id: Some(id.to_string()),
        owner: user.name.clone(),
        template,
        // The limits `[limits]` gives this user and template.
        limits: None,
        // Counted in the store's creating transaction: concurrent creates cannot pass it.
        max_per_owner: Some(max.0),
    };
    let task = engine.clone();
    let created = wait_for(wait, async move { task.create(request).await }).await?;
    super::audit(engine, &user.name, "session.create", id.as_str());
    current(engine, &id, created.is_some()).await
}

/// Checks the owner, runs the operation (waiting up to `wait`), writes the audit log with
/// the user as actor.
pub async fn operate(
    engine: &Engine,
    user: &CurrentUser,
    id: &str,
    operation: Operation,
    wait: Duration,
) -> Result<Outcome, SessionError> {
    let id = owned(engine, user, id).await?.spec.id;
    let (task, key) = (engine.clone(), id.clone());
    let running = async move {
        match operation {
            Operation::Stop => task.stop(&key).await.map(drop),
            Operation::Resume => task.resume(&key).await.map(drop),
            Operation::Delete => task.delete(&key).await,
        }
    };
    let done = wait_for(wait, running).await?.is_some();
    let action = match operation {
        Operation::Stop => "session.stop",
        Operation::Resume => "session.resume",
        Operation::Delete => "session.delete",
    };
    super::audit(engine, &user.name, action, id.as_str());
    if operation == Operation::Delete && done {
        return Ok(Outcome::Deleted);
    }
    current(engine, &id, done).await
}

/// A change of a session's name and description as a client asks for it: unchecked text,
/// `None` keeps the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relabel {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// Renames a session and/or sets its description: the owner rule first (another user's
/// session is "not found" whatever the input), then the input ([`SessionName`],
/// [`SessionDescription`]), then one store transaction. A changed name is audited as
/// `session.rename`, a changed description as `session.describe`, with the caller as actor;
/// a change to what is already there writes and audits nothing. A session being deleted is
/// not relabelled (`EngineError::Deleting`).
pub async fn relabel(
    engine: &Engine,
    user: &CurrentUser,
    id: &str,
    change: Relabel,
) -> Result<SessionRecord, SessionError> {
    let record = owned(engine, user, id).await?;
    let name = change.name.as_deref().map(SessionName::parse).transpose()?;
    let description = change
        .description
        .as_deref()
        .map(SessionDescription::parse)
        .transpose()?;
    let id = record.spec.id;
    if record.state == SessionState::Deleting {
        return Err(EngineError::Deleting { id }.into());
    }
    let key = id.clone();
    let (before, after) = engine
        .store()
        .run(move |s| s.relabel(&key, name, description))
        .await
        .map_err(EngineError::from)?;
    if after.name != before.name {
        let detail = format!("{:?} → {:?}", before.name, after.name);
        super::audit_detail(engine, &user.name, "session.rename", id.as_str(), &detail);
    }
    if after.description != before.description {
        super::audit(engine, &user.name, "session.describe", id.as_str());
    }
    Ok(after)
}

/// Keeps a session running without activity for `minutes` from now (`0` ends a keep-alive),
/// for its owner or an admin: bounded by `sessions.keep_alive_max_hours`, refused for a
/// session being deleted, audited as `session.keep_alive` with the time asked for.
pub async fn keep_alive(
    engine: &Engine,
    user: &CurrentUser,
    id: &str,
    minutes: u32,
) -> Result<SessionRecord, SessionError> {
    let record = owned(engine, user, id).await?;
    let max = engine.config().keep_alive_max;
    let asked = Duration::from_secs(u64::from(minutes) * 60);
    if asked > max {
        return Err(SessionError::KeepAliveTooLong { max });
    }
    let id = record.spec.id.clone();
    if record.state == SessionState::Deleting {
        return Err(EngineError::Deleting { id }.into());
    }
    let until = (minutes > 0).then(|| std::time::SystemTime::now() + asked);
    engine.set_keep_alive(&id, until).await?;
    let detail = if minutes == 0 {
        "ended".to_owned()
    } else {
        format!("{minutes} minutes")
    };
    super::audit_detail(
        engine,
        &user.name,
        "session.keep_alive",
        id.as_str(),
        &detail,
    );
    Ok(record)
}

/// Waits up to `wait` for an operation; `Ok(None)` means it goes on in the background.
async fn wait_for<T>(
    wait: Duration,
    operation: impl Future<Output = Result<T, Arc<EngineError>>>,
) -> Result<Option<T>, SessionError> {
    match tokio::time::timeout(wait, operation).await {
        Ok(Ok(value)) => Ok(Some(value)),
        Ok(Err(error)) => Err(SessionError::Engine(error)),
        Err(_) => Ok(None),
    }
}

/// The session as it is now, and whether its operation finished.
async fn current(engine: &Engine, id: &SessionId, done: bool) -> Result<Outcome, SessionError> {
    let record = engine.get(id).await?;
    Ok(if done {
        Outcome::Done(record)
    } else {
        Outcome::Pending(record)
    })
}
