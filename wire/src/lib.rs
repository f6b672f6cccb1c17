//! The wire types of Octo: what octod's HTTP API (`/api/*`) and its admin socket
//! (`/admin/v1/*`) send and accept, written once. octod serializes them (and derives its OpenAPI
//! document from them, with the `openapi` feature), octoctl deserializes them, and the web UI's
//! TypeScript types are generated from that document.
//!
//! The serde attributes are the wire format: changing one changes what clients see. Domain
//! types and their conversions into these stay in octod.

pub mod admin;
pub mod auth;
pub mod error;
pub mod sessions;
pub mod usage;

pub use admin::{
    BackupHomeEvent, BackupSession, BackupState, BuildEvent, ImageStatus, LogEvent, LogsQuery,
    RefreshEvent, RefreshQuery, RefreshStatus, StatusView,
};
pub use auth::{
    ApiTokenView, AuditQuery, AuditView, CreateApiToken, CreateInvite, CreateUser, CreatedApiToken,
    InviteView, LoginRequest, PasswordChange, RegisterRequest, ResetPassword, Role, Scope, SetRole,
    SignInOptions, SignInProvider, SignedOut, UserView,
};
pub use error::{ErrorBody, ErrorDetail};
pub use sessions::{
    CreateSession, CreateShareLink, CreateSnapshot, Desired, ForkSession, IdleReason, KeepAlive,
    ListeningPort, PortShare, PreviewTicket, QuotaState, SessionDisk, SessionIdle, SessionLimits,
    SessionPorts, SessionStatus, SessionUrls, SessionView, SetPortShare, ShareLinkCreated,
    ShareLinkView, SnapshotJobKind, SnapshotJobState, SnapshotJobView, SnapshotList, SnapshotView,
    TemplateView, UpdateSession,
};
pub use usage::{
    BudgetView, ModelList, ModelView, SetBudget, UsageQuery, UsageReport, UsageRowView,
};

use serde::{Deserialize, Serialize};

/// The body of `GET /api/health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    pub version: String,
    pub uptime_seconds: u64,
}
