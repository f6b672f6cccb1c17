//! Sessions and templates.

use serde::{Deserialize, Serialize};

/// A session as the API shows it: no ports, no token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Session))]
pub struct SessionView {
    pub id: String,
    pub owner: String,
    pub template: String,
    /// What its user calls it: 1–80 characters; at first the template's name.
    pub name: String,
    /// Its user's short note (at most 280 characters); empty when there is none.
    pub description: String,
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub state: SessionStatus,
    /// Why it failed; only for `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub reason: Option<String>,
    // No doc comment: utoipa would wrap the inlined enum in a `oneOf` to describe it.
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub desired: Desired,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Milliseconds since the Unix epoch.
    pub updated_at: u64,
    /// When it was last used (traffic through octod to its services: chat, files, terminal,
    /// previews), else when it was created; milliseconds since the Unix epoch. Recorded for
    /// the idle stop, saved about once a minute.
    pub last_active_at: u64,
    pub urls: SessionUrls,
    /// The resource limits it runs with: `[limits]` of octod.toml as they were at its last
    /// start or stop (a changed limit applies at the next start).
    pub limits: SessionLimits,
    /// Its home's size and its owner's storage quota.
    #[serde(default)]
    pub disk: SessionDisk,
    /// What the idle stop will do with it, and its keep-alive.
    #[serde(default)]
    pub idle: SessionIdle,
}

/// What the idle stop will do with a session, and what keeps it running.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionIdle {
    /// When the idle stop will stop it if nothing keeps it longer (within the reconciler's
    /// period); milliseconds since the Unix epoch. Absent when the idle stop will not stop it:
    /// it is off (`sessions.idle_timeout_minutes = 0`), or the session is not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub stops_at: Option<u64>,
    /// What keeps it running now: `agent` (its agent is in a turn, or waits on a permission
    /// prompt or a question), `keep_alive` (its user asked to keep it running), `activity` (it
    /// was used within the idle time: chat, files, an open terminal, previews).
    pub kept_by: Vec<IdleReason>,
    /// Until when its user keeps it running without activity; milliseconds since the Unix
    /// epoch. Absent: no keep-alive (or one that has ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub keep_alive_until: Option<u64>,
    /// The longest keep-alive the administrator allows, in minutes; 0: none.
    pub keep_alive_max_minutes: u32,
}

/// Why a session is not idle-stopped now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IdleReason {
    Agent,
    Terminal,
    KeepAlive,
    Activity,
}

impl IdleReason {
    /// The reason as the wire names it.
    pub fn as_str(self) -> &'static str {
        match self {
            IdleReason::Agent => "agent",
            IdleReason::Terminal => "terminal",
            IdleReason::KeepAlive => "keep_alive",
            IdleReason::Activity => "activity",
        }
    }
}

/// `POST /api/sessions/{id}/keep-alive`: keep the session running without activity for this
/// long from now; `0` ends a keep-alive.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeepAlive {
    /// Minutes from now, at most the administrator's `sessions.keep_alive_max_hours`.
    pub minutes: u32,
}

/// A session's home size and its owner's storage quota (all their sessions' homes together).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionDisk {
    /// The home's size in bytes: its last measurement (every `limits.disk_measure_minutes`
    /// while it runs) plus what was uploaded through Octo since; absent before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub used_bytes: Option<u64>,
    /// When the home was last measured; milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub measured_at: Option<u64>,
    /// What all the owner's homes hold together, in bytes.
    pub owner_used_bytes: u64,
    /// The owner's storage quota, in bytes; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub quota_bytes: Option<u64>,
    // No doc comment: utoipa would wrap the inlined enum in a `oneOf` to describe it.
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub quota_state: QuotaState,
}

/// Where the owner stands against their quota: `warning` from `limits.disk_warn_percent` of
/// it, `over` at or past it (uploads are refused with 507).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QuotaState {
    #[default]
    Ok,
    Warning,
    Over,
}

impl QuotaState {
    /// The state as the wire names it.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaState::Ok => "ok",
            QuotaState::Warning => "warning",
            QuotaState::Over => "over",
        }
    }
}

/// A session's lifecycle state as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Creating,
    Starting,
    Running,
    Stopping,
    Stopped,
    Deleting,
    Failed,
}

impl SessionStatus {
    /// Every state, in lifecycle order.
    pub const ALL: [SessionStatus; 7] = [
        SessionStatus::Creating,
        SessionStatus::Starting,
        SessionStatus::Running,
        SessionStatus::Stopping,
        SessionStatus::Stopped,
        SessionStatus::Deleting,
        SessionStatus::Failed,
    ];

    /// The state as the wire names it.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Creating => "creating",
            SessionStatus::Starting => "starting",
            SessionStatus::Running => "running",
            SessionStatus::Stopping => "stopping",
            SessionStatus::Stopped => "stopped",
            SessionStatus::Deleting => "deleting",
            SessionStatus::Failed => "failed",
        }
    }
}

/// Whether the user wants the session running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Desired {
    Running,
    Stopped,
}

impl Desired {
    /// The desired state as the wire names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Stopped => "stopped",
        }
    }
}

/// A session's resource limits; an absent limit is none.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionLimits {
    /// Memory, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub memory_bytes: Option<u64>,
    /// CPU time, in hundredths of a CPU (150: one and a half CPUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub cpu_centis: Option<u32>,
    /// Tasks (processes and threads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub pids: Option<u32>,
    /// The kinds of limit set here that this host cannot enforce (`memory`, `cpu`, `pids`:
    /// their cgroup controller is not delegated to Octo); empty when all are.
    pub unenforced: Vec<String>,
}

/// Paths of the session's services through the proxy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionUrls {
    pub opencode: String,
    pub files: String,
    pub terminal: String,
}

/// The body of `POST /api/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// A template id from `GET /api/templates`.
    pub template: String,
}

/// The body of `PATCH /api/sessions/{id}`: what to change; a field left out (or `null`) is
/// kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateSession {
    /// The new name: 1–80 characters after trimming, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The new description: at most 280 characters after trimming, no control characters;
    /// `""` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One template as `GET /api/templates` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Template))]
pub struct TemplateView {
    pub id: String,
    pub name: String,
    pub description: String,
}

/// One snapshot of a session's home.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Snapshot))]
pub struct SnapshotView {
    pub id: String,
    /// What its user called it; unique among the session's snapshots.
    pub name: String,
    /// When it was taken; milliseconds since the Unix epoch.
    pub created_at: u64,
    /// What it takes on disk (compressed): what counts against the snapshot quota.
    pub size_bytes: u64,
    /// The bytes of the home's files when it was taken.
    pub home_bytes: u64,
    pub files: u64,
    /// Whether the session was running (then its container was paused while it was read).
    pub was_running: bool,
}

/// What a snapshot job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SnapshotJobKind {
    Create,
    Restore,
}

/// Where a snapshot job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SnapshotJobState {
    Running,
    Done,
    Failed,
}

/// A session's last snapshot job (a snapshot being taken or restored) and its progress.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SnapshotJob))]
pub struct SnapshotJobView {
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub kind: SnapshotJobKind,
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub state: SnapshotJobState,
    /// The snapshot taken or restored.
    pub snapshot: String,
    pub name: String,
    /// Why it failed; only for `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub reason: Option<String>,
    /// Progress: bytes of the home read (create) or of the archive unpacked (restore).
    pub done_bytes: u64,
    pub total_bytes: u64,
    /// Milliseconds since the Unix epoch.
    pub started_at: u64,
}

/// `GET /api/sessions/{id}/snapshots`: the snapshots, the last job, the owner's quota.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotList {
    /// Oldest first.
    pub snapshots: Vec<SnapshotView>,
    /// The session's last snapshot job since octod started.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub job: Option<SnapshotJobView>,
    /// What the owner's snapshots (of all their sessions) take.
    pub used_bytes: u64,
    /// The owner's snapshot storage quota (`[limits] snapshots`); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub quota_bytes: Option<u64>,
}

/// The body of `POST /api/sessions/{id}/snapshots`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshot {
    /// 1–80 characters after trimming, no control characters; unique in the session.
    pub name: String,
}

/// The body of `POST /api/sessions/{id}/fork`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ForkSession {
    /// Fork from this snapshot of the session; absent: from its current home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// The TCP ports listening in a running session (`GET /api/sessions/{id}/ports`): the apps
/// its agent or user started, without the session's own services.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionPorts {
    /// Whether the session is running; a session that is not has no ports (asking does not
    /// wake it).
    pub running: bool,
    /// Whether previews are on (a content site is configured): without, ports are listed
    /// but cannot be opened.
    pub previews: bool,
    /// Ascending.
    pub ports: Vec<ListeningPort>,
}

/// One listening port of a session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListeningPort {
    pub port: u16,
    /// The address it listens on in the container (`127.0.0.1`, `::1`, `0.0.0.0`, `::`).
    pub address: String,
    /// The preview's own origin, `https://p<port>-<id>.<content site>/`; absent without a
    /// content site. A browser gets in through `open`, which signs it in there.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub url: Option<String>,
    /// `/api/sessions/{id}/ports/{port}/open` on this origin: a navigation that opens the
    /// preview (a ticket traded there for the host's cookie); absent without a content site.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub open: Option<String>,
    /// Who besides the owner and the admins may open it.
    #[serde(default)]
    pub share: PortShare,
}

/// `GET /api/sessions/{id}/ports/{port}/open?json=true`: where the browser goes to open the
/// preview (its host's ticket path; single use, 60 s).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewTicket {
    pub url: String,
}

/// How a session's port is shared (`PUT /api/sessions/{id}/ports/{port}/share`, and share
/// links): the owner and the admins always open it; besides them, every signed-in user when
/// `users`, and anyone holding one of the live `links`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortShare {
    /// Every signed-in user of this Octo may open the preview.
    pub users: bool,
    /// The live share links (their URLs are shown once, when made), soonest to expire first.
    pub links: Vec<ShareLinkView>,
}

/// `PUT /api/sessions/{id}/ports/{port}/share`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetPortShare {
    /// Share with every signed-in user (`true`) or stop (`false`; links stay).
    pub users: bool,
}

/// `POST /api/sessions/{id}/ports/{port}/links`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateShareLink {
    /// How long the link opens the preview, in seconds: 10 to 2,592,000 (30 days); default
    /// 86,400 (a day).
    #[serde(default)]
    pub expires_in_seconds: Option<u64>,
}

/// A share link as listed: its URL is not (it was shown once).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareLinkView {
    pub id: String,
    /// Who made it.
    pub created_by: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Milliseconds since the Unix epoch; the link opens nothing from then on.
    pub expires_at: u64,
}

/// A new share link (`201` of `POST /api/sessions/{id}/ports/{port}/links`): its URL, shown
/// this once; anyone who has it opens the preview until it expires or is revoked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareLinkCreated {
    #[serde(flatten)]
    pub link: ShareLinkView,
    pub url: String,
}
