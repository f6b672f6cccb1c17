//! Who is asking: the signed-in user as every part of octod sees them. Pure data; the auth
//! module produces it from the request (cookie, JWT) and the session API and the proxy decide
//! with it.

use serde::{Deserialize, Serialize};

/// A user's role (a wire type too: the API and the store name it alike).
pub use octo_wire::{Role, Scope};

/// The signed-in, enabled user of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub name: String,
    pub role: Role,
}

impl CurrentUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Owner or admin: the rule for every session route.
    pub fn may_access(&self, owner: &str) -> bool {
        self.is_admin() || self.name == owner
    }
}
