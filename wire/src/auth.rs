//! Accounts: users, invite codes, the audit log, and the bodies of the account routes.

use serde::{Deserialize, Serialize};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    /// The role as the wire names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

/// A user as the API shows it: never the hash or the token generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = User))]
pub struct UserView {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// The OpenID Connect provider (its id) the account signs in with; such an account has
    /// no password. Absent for a password account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<String>,
}

/// How one may sign in here: `GET /api/auth/providers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignInOptions {
    /// Whether a user name and password sign in (and invite codes register) directly.
    pub local_passwords: bool,
    /// The OpenID Connect providers, in the configured order. A browser signs in with one by
    /// going to `/api/auth/oidc/{id}/start`.
    pub providers: Vec<SignInProvider>,
}

/// An OpenID Connect provider as the sign-in page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignInProvider {
    pub id: String,
    pub name: String,
}

/// The answer of a sign-out from a browser that signed in with a provider that offers an
/// end-session endpoint: where to go to sign out there too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedOut {
    pub end_session_url: String,
}

/// An invite code as admins see it, code included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Invite))]
pub struct InviteView {
    pub code: String,
    pub role: Role,
    pub uses_left: u32,
    /// Milliseconds since the Unix epoch; null: never.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub expires_at: Option<u64>,
    pub created_by: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AuditEntry))]
pub struct AuditView {
    pub id: u64,
    /// Milliseconds since the Unix epoch.
    pub time: u64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// The body of `POST /api/auth/register`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub invite_code: String,
    pub username: String,
    pub password: String,
}

/// The body of `POST /api/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// The body of `POST /api/me/password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current: String,
    pub new: String,
}

/// The body of `POST /api/admin/users` (and the admin socket's `/admin/v1/users`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    /// Default `user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// The body of `POST /api/admin/users/{name}/role`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: Role,
}

/// The body of `POST /api/admin/users/{name}/password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    pub password: String,
}

/// The body of `POST /api/admin/invite-codes`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateInvite {
    /// Default `user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Default 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
    /// Default: never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
}

/// The query of `GET /api/admin/audit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub limit: Option<usize>,
}

/// What a personal API token may do. A token is accepted as `Authorization: Bearer` on
/// `/api/*` and `/sessions/*`; each route needs one scope (and `admin` also the admin role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scope {
    /// `GET` on `/api/sessions…`, `/api/templates`.
    #[serde(rename = "sessions:read")]
    SessionsRead,
    /// Create, rename, stop, resume and delete sessions.
    #[serde(rename = "sessions:write")]
    SessionsWrite,
    /// The proxied services: `/sessions/{id}/opencode|files|terminal`.
    #[serde(rename = "sessions:connect")]
    SessionsConnect,
    /// `/api/admin/*` (for a user with the admin role).
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::SessionsRead,
        Scope::SessionsWrite,
        Scope::SessionsConnect,
        Scope::Admin,
    ];

    /// The scope as the wire names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::SessionsRead => "sessions:read",
            Scope::SessionsWrite => "sessions:write",
            Scope::SessionsConnect => "sessions:connect",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `name`, if any.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A personal API token as its owner (and admins) see it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ApiToken))]
pub struct ApiTokenView {
    /// The token's public id (also the part after `octo_` in the token itself).
    pub id: String,
    pub user: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Milliseconds since the Unix epoch.
    pub expires_at: u64,
    /// Milliseconds since the Unix epoch, to the minute; null: never used.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub last_used_at: Option<u64>,
}

/// The body of `POST /api/me/tokens` (and the admin socket's `POST
/// /admin/v1/users/{name}/tokens`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    /// 1 to 80 characters.
    pub name: String,
    /// At least one.
    pub scopes: Vec<Scope>,
    /// 1 to 365; default 30.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// A token just created: the only answer that ever holds its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = CreatedApiToken))]
pub struct CreatedApiToken {
    /// `octo_<id>_<secret>`: shown once, stored only as a hash.
    pub token: String,
    pub info: ApiTokenView,
}
