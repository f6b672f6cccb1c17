//! Who is on the other end of the admin socket, and whether they may administer Octo: root,
//! or a member (primary or supplementary) of group `octo-admin`. Decided from the kernel's
//! `SO_PEERCRED`, never from anything the client says.

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use tokio::net::UnixListener;

use crate::http::ApiError;

/// The group whose members may use the admin socket.
pub const ADMIN_GROUP: &str = "octo-admin";

/// The peer's credentials as the kernel reported them when it connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(cred) => Self {
                uid: cred.uid(),
                gid: cred.gid(),
                pid: cred.pid(),
            },
            // No credentials: an identity that no rule allows.
            Err(error) => {
                tracing::warn!("reading the admin peer's credentials: {error}");
                Self {
                    uid: u32::MAX,
                    gid: u32::MAX,
                    pid: None,
                }
            }
        }
    }
}

/// The authorized caller of an admin request: `root` or the Unix user's name. It is the
/// actor of the audit log, and handlers act as an admin of this name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    /// The caller as the session API's notion of a user: an admin.
    pub fn as_user(&self) -> crate::identity::CurrentUser {
        crate::identity::CurrentUser {
            name: self.0.clone(),
            role: crate::identity::Role::Admin,
        }
    }
}

/// The actor [`authorize`] put into the request (refused outside the middleware).
impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let actor = parts.extensions.get().cloned();
        actor.ok_or_else(ApiError::forbidden)
    }
}

/// What is known about a peer for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFacts {
    pub uid: u32,
    /// The user's name, when the uid has one.
    pub user: Option<String>,
    /// Primary and supplementary groups.
    pub gids: Vec<u32>,
    /// The gid of `octo-admin`, when the group exists.
    pub admin_gid: Option<u32>,
}

/// The decision: the actor's name, or why not. Pure.
pub fn decide(facts: &PeerFacts) -> Result<Actor, String> {
    let name = || {
        facts
            .user
            .clone()
            .unwrap_or_else(|| format!("uid {}", facts.uid))
    };
    if facts.uid == 0 {
        return Ok(Actor("root".to_owned()));
    }
    match facts.admin_gid {
        Some(gid) if facts.gids.contains(&gid) => Ok(Actor(name())),
        Some(_) => Err(format!(
            "{} is neither root nor a member of group {ADMIN_GROUP}",
            name()
        )),
        None => Err(format!(
            "{} is not root, and group {ADMIN_GROUP} does not exist on this host",
            name()
        )),
    }
}

/// The supplementary groups on the `Groups:` line of `/proc/<pid>/status`. Pure.
pub fn parse_proc_groups(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    line.split_whitespace().map(|g| g.parse().ok()).collect()
}

/// Gathers the facts about a peer from `/proc` (the groups of the connecting process itself)
/// or, where `/proc` hides it (`hidepid`), the group database.
pub fn facts(peer: Peer) -> PeerFacts {
    use nix::unistd::{Gid, Group, Uid, User};
    let user = User::from_uid(Uid::from_raw(peer.uid)).ok().flatten();
    let mut gids = vec![peer.gid];
    let from_proc = peer
        .pid
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .and_then(|status| parse_proc_groups(&status));
    match from_proc {
        Some(groups) => gids.extend(groups),
        None => {
            if let Some(user) = &user
                && let Ok(name) = std::ffi::CString::new(user.name.as_str())
                && let Ok(groups) = nix::unistd::getgrouplist(&name, Gid::from_raw(peer.gid))
            {
                gids.extend(groups.into_iter().map(Gid::as_raw));
            }
        }
    }
    PeerFacts {
        uid: peer.uid,
        user: user.map(|u| u.name),
        gids,
        admin_gid: Group::from_name(ADMIN_GROUP)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw()),
    }
}

/// Middleware: authorizes every request by its peer, puts the [`Actor`] into the request's
/// extensions, or answers 403 `forbidden` with what is needed.
pub async fn authorize(
    ConnectInfo(peer): ConnectInfo<Peer>,
    mut request: Request,
    next: Next,
) -> Response {
    let facts = match tokio::task::spawn_blocking(move || facts(peer)).await {
        Ok(facts) => facts,
        Err(error) => return ApiError::internal(&error).into_response(),
    };
    match decide(&facts) {
        Ok(actor) => {
            request.extensions_mut().insert(actor);
            next.run(request).await
        }
        Err(why) => {
            tracing::info!(uid = peer.uid, "admin socket: refused: {why}");
            ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                format!("permission denied: {why}"),
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(uid: u32, gids: &[u32], admin_gid: Option<u32>, expected: Result<&str, &str>) {
        let facts = PeerFacts {
            uid,
            user: (uid != 4242).then(|| format!("user{uid}")),
            gids: gids.to_vec(),
            admin_gid,
        };
        let got = decide(&facts);
        match expected {
            Ok(actor) => assert_eq!(got, Ok(Actor(actor.to_owned())), "{facts:?}"),
            Err(part) => {
                let why = got.expect_err("refused");
                assert!(why.contains(part), "{why:?} lacks {part:?}");
            }
        }
    }

    #[test]
    fn root_is_allowed_without_the_group() {
        check(0, &[0], None, Ok("root"));
        check(0, &[0], Some(990), Ok("root"));
    }

    #[test]
    fn members_of_octo_admin_are_allowed_by_primary_or_supplementary_group() {
        check(1000, &[990], Some(990), Ok("user1000"));
        check(1000, &[1000, 27, 990], Some(990), Ok("user1000"));
    }

    #[test]
    fn others_are_refused_with_the_reason() {
        check(
            1000,
            &[1000, 27],
            Some(990),
            Err("user1000 is neither root nor a member of group octo-admin"),
        );
        check(1000, &[1000], None, Err("group octo-admin does not exist"));
        check(4242, &[4242], Some(990), Err("uid 4242"));
    }

    #[test]
    fn proc_status_groups_are_parsed() {
        let status = "Name:\tbash\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 990 \nNgid:\t0\n";
        assert_eq!(parse_proc_groups(status), Some(vec![4, 24, 990]));
        assert_eq!(parse_proc_groups("Groups:\t\n"), Some(vec![]));
        assert_eq!(parse_proc_groups("Name:\tx\n"), None);
        assert_eq!(parse_proc_groups("Groups:\tx\n"), None);
    }
}
