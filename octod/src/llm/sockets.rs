//! One Unix socket of the model gateway per session: `<sockets_dir>/<id>/llm.sock`, in the
//! session's own directory, which its unit mounts read-only at `/run/octo-llm`
//! ([`crate::render::LlmMount`]). A session sees only its own directory, so the socket a
//! request arrives on is who sent it; other users of the host cannot pass the sessions'
//! directory (0700, octod's).
//!
//! [`run`] keeps the listeners in line with the store: a socket for every session that is not
//! being deleted (bound again at every octod start, replacing the file of the previous run:
//! the mount is the directory, so the container sees the new socket), none for the others.
//! The engine makes a session's directory before its container starts and removes it with
//! the session.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::render::{LLM_SOCKET_FILE, LlmMount};
use crate::session::{SessionId, SessionState};

use super::Gateway;

/// How often the listeners are compared with the store. A session's container starts after
/// its directory exists (the engine makes it); the gateway's bridge waits a few seconds for
/// the socket, which covers this interval.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Serves every session's socket until the task is dropped.
pub async fn run(gateway: Gateway) {
    let mount = gateway.mount().clone();
    let mut served: HashMap<SessionId, JoinHandle<()>> = HashMap::new();
    loop {
        match gateway.store().run(crate::store::Store::list).await {
            Ok(records) => {
                let wanted: HashSet<SessionId> = records
                    .into_iter()
                    .filter(|r| r.state != SessionState::Deleting)
                    .map(|r| r.spec.id)
                    .collect();
                sync(&gateway, &mount, &wanted, &mut served);
            }
            Err(error) => tracing::warn!("model gateway: listing the sessions: {error}"),
        }
        tokio::time::sleep(SYNC_EVERY).await;
    }
}

fn sync(
    gateway: &Gateway,
    mount: &LlmMount,
    wanted: &HashSet<SessionId>,
    served: &mut HashMap<SessionId, JoinHandle<()>>,
) {
    served.retain(|id, task| {
        let keep = wanted.contains(id) && !task.is_finished();
        if !keep {
            task.abort();
        }
        keep
    });
    for id in wanted {
        if served.contains_key(id) {
            continue;
        }
        match bind(mount, id) {
            Ok(listener) => {
                let router = gateway.router(id.clone());
                let session = id.clone();
                served.insert(
                    id.clone(),
                    tokio::spawn(async move {
                        if let Err(error) = axum::serve(listener, router).await {
                            tracing::warn!(%session, "model gateway socket: {error}");
                        }
                    }),
                );
            }
            Err(error) => tracing::warn!(session = %id, "model gateway: {error}"),
        }
    }
}

/// Binds the session's socket, replacing the file an earlier octod left. Mode 0666: `dev` in
/// the container is a subordinate uid of its own; the directories keep everyone else out.
fn bind(mount: &LlmMount, id: &SessionId) -> Result<tokio::net::UnixListener, String> {
    let dir = mount
        .prepare_session_dir(id)
        .map_err(|(path, e)| format!("preparing {}: {e}", path.display()))?;
    let path = dir.join(LLM_SOCKET_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("removing the old {}: {e}", path.display())),
    }
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| format!("binding {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| format!("setting the mode of {}: {e}", path.display()))?;
    Ok(listener)
}
