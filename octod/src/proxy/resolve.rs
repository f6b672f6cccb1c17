//! The proxy's view of sessions ([`Sessions`]) over the engine: the owner check
//! on every request and upgrade, wake on access, and activity for idle stop.

use std::time::Duration;

use super::{Service, Sessions, Upstream};
use crate::engine::Engine;
use crate::http::ApiError;
use crate::identity::CurrentUser;
use crate::session::{SessionId, SessionState};

/// How long a request to a stopped session is held while it wakes; then `503` with
/// `Retry-After` (the session goes on starting).
pub const WAKE_WAIT: Duration = Duration::from_secs(25);

/// Sessions as the proxy needs them.
#[derive(Debug, Clone)]
pub struct EngineSessions {
    pub engine: Engine,
    pub wake_wait: Duration,
}

impl Sessions for EngineSessions {
    async fn resolve(
        &self,
        user: &CurrentUser,
        id: &SessionId,
        service: Service,
    ) -> Result<Upstream, ApiError> {
        let not_found = || ApiError::not_found("no such session");
        let record = self.engine.get(id).await.map_err(|_| not_found())?;
        // Checked on every request and every upgrade: only the owner or an admin.
        if !user.may_access(&record.spec.owner) {
            return Err(not_found());
        }
        let record = match record.state {
            SessionState::Running => record,
            SessionState::Deleting => return Err(not_found()),
            // A stop in progress was asked for: a request still in flight from a page that
            // is closing must not undo it. Once stopped, access wakes the session again.
            SessionState::Stopping => {
                return Err(ApiError::new(
                    axum::http::StatusCode::CONFLICT,
                    "session_stopping",
                    "the session is stopping; resume it to use it again",
                ));
            }
            // Stopped, failed, or on its way: resume (a resume in flight is joined).
            _ => {
                tracing::info!(session = %id, "waking session on access");
                let engine = self.engine.clone();
                let key = id.clone();
                match tokio::time::timeout(self.wake_wait, async move { engine.resume(&key).await })
                    .await
                {
                    Ok(Ok(record)) => record,
                    Ok(Err(error)) => return Err(ApiError::from(&*error)),
                    Err(_) => {
                        return Err(ApiError::unavailable(
                            "session_waking",
                            "the session is starting; try again in a moment",
                            5,
                        ));
                    }
                }
            }
        };
        // FIXME(issue 13): sessions publish no ports any more; h/b-proxy connects to
        // `self.engine.socket_path(id)` instead. Until that merges, the proxy has no upstream.
        let _ = (record, service);
        Err(ApiError::unavailable(
            "session_waking",
            "the proxy to session sockets is not wired yet",
            5,
        ))
    }

    fn activity(&self, id: &SessionId) {
        self.engine.record_activity(id);
    }
}
