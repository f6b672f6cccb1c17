//! The operations both HTTP edges offer (the API, the admin socket of `octoctl`) as library
//! calls with no HTTP in them: typed failures ([`crate::http`] says what each means in HTTP),
//! an audit entry with the caller as actor. Sessions are [`sessions`] (owner rule,
//! wait-then-202, create); accounts and invite codes are the methods of
//! [`Auth`](crate::auth::Auth). Both edges mount the same handlers, generic over the
//! [`Caller`]: the signed-in user on the API, the Unix user on the admin socket. Session
//! image builds are [`image`]: the engine takes up a new image at once, and an image of an
//! older session runtime is rebuilt when octod starts.

pub mod image;
pub mod sessions;
pub mod snapshots;

use std::time::Duration;

use crate::engine::Engine;
use crate::identity::CurrentUser;
use crate::store::AuditEntry;

/// Who calls an operation: the user the owner rule and the audit log see, and how long the
/// caller waits for an operation before it goes on in the background.
pub trait Caller: Send + Sync {
    /// How long an operation is waited for before the answer says it goes on.
    const WAIT: Duration;
    fn user(&self) -> CurrentUser;
}

/// A caller that is an admin by construction: the signed-in admin of the API, the authorized
/// Unix user of the admin socket. The account and invite operations ask for one.
pub trait AdminCaller: Caller {}

/// Appends to the audit log; a failure to write it is logged, not fatal to the operation.
pub fn audit(engine: &Engine, actor: &str, action: &str, target: &str) {
    audit_detail(engine, actor, action, target, "");
}

/// [`audit`] with a detail (what changed).
pub fn audit_detail(engine: &Engine, actor: &str, action: &str, target: &str, detail: &str) {
    let entry = AuditEntry::new(actor, action, target, detail);
    if let Err(error) = engine.store().append_audit(&entry) {
        tracing::warn!("writing the audit log: {error}");
    }
}
