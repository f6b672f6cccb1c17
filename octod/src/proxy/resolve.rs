//! The proxy's view of sessions ([`Sessions`]) over the engine: the owner check on every
//! request and upgrade, which sessions may be reached (and so woken), where their gateway
//! listens, and activity for idle stop.
//!
//! Waking is systemd's: an idle session's socket stays listening, and the proxy's connection
//! to it starts the session's service. The engine is not asked to start anything here; its
//! reconciler sees the unit become active and records the session as running.

use std::time::Duration;

use axum::http::StatusCode;

use super::{Service, Sessions, Upstream};
use crate::engine::Engine;
use crate::http::ApiError;
use crate::identity::CurrentUser;
use crate::session::{DesiredState, SessionId, SessionState};

/// How long a request to a session that is not running yet is held for its response head
/// while the session wakes; then `503 session_waking` with `Retry-After` (the session goes on
/// starting).
pub const WAKE_WAIT: Duration = Duration::from_secs(25);

/// Sessions as the proxy needs them.
#[derive(Debug, Clone)]
pub struct EngineSessions {
    pub engine: Engine,
    pub wake_wait: Duration,
}

/// What a request to a session in a given state gets.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    /// Connect; the service is active.
    Connect,
    /// Connect; the connection wakes the session (or it is starting anyway), so the wait for
    /// the response head is the wake bound.
    Wake,
    Refuse(Refusal),
}

#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// Being deleted: as if it did not exist.
    NotFound,
    /// A stop in progress was asked for: a request still in flight from a page that is
    /// closing must not undo it.
    Stopping,
    /// Stopped by its user: its socket is not listening, and access must not start it.
    Stopped,
}

fn access(desired: DesiredState, state: &SessionState) -> Access {
    match state {
        SessionState::Deleting => Access::Refuse(Refusal::NotFound),
        SessionState::Stopping => Access::Refuse(Refusal::Stopping),
        _ if desired == DesiredState::Stopped => Access::Refuse(Refusal::Stopped),
        SessionState::Running => Access::Connect,
        // Idle (stopped with its socket listening), starting, being created, or failed (the
        // socket may start it again): the connection is held while it comes up.
        _ => Access::Wake,
    }
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
        // After an upgrade that changed the session runtime, the session is on its old units
        // until the image is rebuilt and the reconciler moves it (engine/image_fit.rs); its
        // socket is not there yet.
        if self.engine.image_fit().is_outdated() {
            return Err(ApiError::unavailable(
                "session_upgrading",
                "Octo was upgraded and this session moves to the new version once its image is rebuilt; try again in a few minutes",
                30,
            ));
        }
        let wake = match access(record.spec.desired, &record.state) {
            Access::Connect => None,
            Access::Wake => {
                // Waking takes a running slot: admission control as for a resume.
                if record.spec.desired == DesiredState::Idle
                    && let Err(refusal) = self.engine.admit_wake(&record).await
                {
                    return Err(ApiError::from(&refusal));
                }
                tracing::debug!(session = %id, state = ?record.state, "connecting to a session that is not running; its socket wakes it");
                Some(self.wake_wait)
            }
            Access::Refuse(Refusal::NotFound) => return Err(not_found()),
            Access::Refuse(Refusal::Stopping) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "session_stopping",
                    "the session is stopping; resume it to use it again",
                ));
            }
            Access::Refuse(Refusal::Stopped) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "session_stopped",
                    "the session is stopped; resume it to use it",
                ));
            }
        };
        let token = self
            .engine
            .store()
            .token(id)
            .map_err(|e| ApiError::internal(&e))?;
        let quota = match service {
            Service::Files => self
                .engine
                .quota_of(&record.spec.owner)
                .await
                .map_err(|e| ApiError::internal(&e))?,
            Service::Opencode | Service::Terminal | Service::Preview => None,
        };
        Ok(Upstream {
            socket: self.engine.socket_path(id),
            token,
            wake,
            quota,
        })
    }

    fn activity(&self, id: &SessionId) {
        self.engine.record_activity(id);
    }

    async fn preview_share(&self, id: &SessionId, port: u16) -> Option<super::SharedPreview> {
        let record = self.engine.get(id).await.ok()?;
        if record.state == SessionState::Deleting {
            return None;
        }
        let key = id.clone();
        let owner = record.spec.owner.clone();
        let (share, owner_active) = self
            .engine
            .store()
            .run(move |s| {
                let share = s.preview_share(&key, port)?;
                if !share.users && share.links.is_empty() {
                    // Nothing shared (the owner's own requests, mostly): no account to read.
                    return Ok((share, true));
                }
                // Fails closed: an owner who cannot be read shares nothing.
                let active = s.user(&owner).map_or_else(
                    |e| {
                        tracing::warn!(%owner, "reading a preview's owner: {e}");
                        false
                    },
                    |u| u.is_some_and(|u| !u.disabled),
                );
                Ok((share, active))
            })
            .await
            .map_err(|e| tracing::warn!(session = %id, port, "reading a preview's share: {e}"))
            .ok()?;
        Some(super::SharedPreview {
            owner: record.spec.owner,
            share,
            owner_active,
        })
    }

    fn stored(&self, id: &SessionId, bytes: u64) {
        self.engine.disk_added(id, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_by_desired_and_actual_state() {
        use DesiredState::{Idle, Running as WantRunning, Stopped as WantStopped};
        let check = |desired, state, expected| {
            assert_eq!(access(desired, &state), expected, "{desired:?} {state:?}");
        };
        check(WantRunning, SessionState::Running, Access::Connect);
        // Idle-stopped: its socket listens, and the connection wakes it.
        check(Idle, SessionState::Stopped, Access::Wake);
        for waking in [
            SessionState::Stopped,
            SessionState::Starting,
            SessionState::Creating,
            SessionState::Failed("exit 1".to_owned()),
        ] {
            check(WantRunning, waking, Access::Wake);
        }
        check(
            WantRunning,
            SessionState::Stopping,
            Access::Refuse(Refusal::Stopping),
        );
        check(
            WantStopped,
            SessionState::Stopping,
            Access::Refuse(Refusal::Stopping),
        );
        check(
            WantStopped,
            SessionState::Stopped,
            Access::Refuse(Refusal::Stopped),
        );
        check(
            WantStopped,
            SessionState::Running,
            Access::Refuse(Refusal::Stopped),
        );
        check(
            WantRunning,
            SessionState::Deleting,
            Access::Refuse(Refusal::NotFound),
        );
    }
}
