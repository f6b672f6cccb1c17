//! The admin socket's own shapes (`/admin/v1/…`): the status view, the queries, and the events
//! of its newline-delimited JSON streams. Each stream event is one JSON object with an `event`
//! field; a stream ends with `done`/`summary`, or with `error` when it failed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The answer of `GET /admin/v1/status` (`octoctl status`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusView {
    pub octod_version: String,
    /// `None` when Podman did not answer (a warning says why).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub podman_version: Option<String>,
    /// The configured session image, `None` when it is not built.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub image: Option<ImageStatus>,
    /// Session counts by state; every state is listed.
    pub sessions: BTreeMap<String, usize>,
    pub uptime_seconds: u64,
    pub warnings: Vec<String>,
}

/// The session image as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageStatus {
    pub reference: String,
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub created: Option<String>,
    pub size: u64,
    /// The session runtime the image implements (its `org.octo.session-runtime` label; 1
    /// without one); octod starts sessions only on its own runtime.
    #[serde(default)]
    pub runtime: Option<u32>,
}

/// `GET /admin/v1/sessions/{id}/logs?lines=N&follow=true`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    pub lines: Option<u32>,
    pub follow: Option<bool>,
}

/// `POST /admin/v1/container/refresh?parallel=N`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshQuery {
    pub parallel: Option<usize>,
}

/// An event of `GET /admin/v1/sessions/{id}/logs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LogEvent {
    /// A journal line.
    Line {
        line: String,
    },
    /// journalctl finished (without `follow`).
    Done {
        unit: String,
    },
    Error {
        message: String,
    },
}

/// An event of `POST /admin/v1/image/build`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BuildEvent {
    /// The build started: the versioned tag it builds and the tag it moves on success.
    Start {
        image: String,
        latest: String,
    },
    /// A line of the build's journal.
    Line {
        line: String,
    },
    /// Built: `id` is the image ID `latest` names now (null if Podman did not say).
    Done {
        image: String,
        latest: String,
        id: Option<String>,
        unit: String,
        elapsed_seconds: u64,
    },
    Error {
        message: String,
    },
}

/// An event of `POST /admin/v1/container/refresh`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RefreshEvent {
    /// The image and its ID, the running sessions, how many restart at once.
    Start {
        image: String,
        id: String,
        running: usize,
        parallel: usize,
    },
    /// A step of one session: `seconds` with `refreshed`, `message` with `failed`.
    Session {
        id: String,
        status: RefreshStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        seconds: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    Summary {
        refreshed: usize,
        skipped: usize,
        failed: usize,
    },
}

/// Where a session is in a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RefreshStatus {
    /// Already on the current image: left alone.
    Current,
    Restarting,
    Refreshed,
    Failed,
}

/// The answer of `POST /admin/v1/backup/state` (issue 17, part 3): octod's state copied
/// through redb's own API into `state_copy` (a fresh redb file, 0600, which the backup reads
/// and removes), where the rest of the state lies, and the sessions to back up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupState {
    /// octod's version (the package's).
    pub version: String,
    /// The state directory (`/var/lib/octod`).
    pub state_dir: String,
    /// The copy of the state database, under the state directory.
    pub state_copy: String,
    /// The tables and rows copied.
    pub tables: usize,
    pub rows: u64,
    /// The `octo` user's Quadlet directory and systemd user directory (the sessions' units).
    pub quadlet_dir: String,
    pub systemd_user_dir: String,
    pub sessions: Vec<BackupSession>,
}

/// A session as a backup lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupSession {
    pub id: String,
    pub owner: String,
    pub name: String,
    /// The desired state: `running`, `idle` or `stopped`.
    pub desired: String,
}

/// An event of `POST /admin/v1/backup/sessions/{id}/home`: the session's home archived by the
/// snapshot worker (its container paused while it is read) into a directory of the state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BackupHomeEvent {
    /// Bytes of the home's files read so far.
    Progress {
        done: u64,
        total: u64,
    },
    /// The archive is complete: `dir` holds `home.tar.zst` and `snapshot.json` (the backup
    /// reads it, then removes `dir`).
    Done {
        dir: String,
        home_bytes: u64,
        files: u64,
        archive_bytes: u64,
    },
    /// The session has no home (it was never started).
    Skipped {
        reason: String,
    },
    /// Another operation runs on the session: ask again later.
    Busy {
        message: String,
    },
    Error {
        message: String,
    },
}

#[cfg(test)]
mod tests {
    //! The stream events' lines are pinned: octod sends each event through a
    //! `serde_json::Value` (sorted keys), as it did when they were `json!` literals.

    use super::*;

    fn check(event: impl Serialize, expected: &str) {
        let value = serde_json::to_value(event).expect("serializes");
        assert_eq!(value.to_string(), expected);
    }

    #[test]
    fn log_events() {
        check(
            LogEvent::Line { line: "a".into() },
            r#"{"event":"line","line":"a"}"#,
        );
        check(
            LogEvent::Done { unit: "u".into() },
            r#"{"event":"done","unit":"u"}"#,
        );
    }

    #[test]
    fn build_events() {
        check(
            BuildEvent::Done {
                image: "i:1".into(),
                latest: "i:latest".into(),
                id: None,
                unit: "u".into(),
                elapsed_seconds: 3,
            },
            r#"{"elapsed_seconds":3,"event":"done","id":null,"image":"i:1","latest":"i:latest","unit":"u"}"#,
        );
        check(
            BuildEvent::Error {
                message: "m".into(),
            },
            r#"{"event":"error","message":"m"}"#,
        );
    }

    #[test]
    fn refresh_events() {
        check(
            RefreshEvent::Start {
                image: "i".into(),
                id: "abc".into(),
                running: 2,
                parallel: 2,
            },
            r#"{"event":"start","id":"abc","image":"i","parallel":2,"running":2}"#,
        );
        check(
            RefreshEvent::Session {
                id: "s1".into(),
                status: RefreshStatus::Current,
                seconds: None,
                message: None,
            },
            r#"{"event":"session","id":"s1","status":"current"}"#,
        );
        check(
            RefreshEvent::Session {
                id: "s1".into(),
                status: RefreshStatus::Refreshed,
                seconds: Some(1.5),
                message: None,
            },
            r#"{"event":"session","id":"s1","seconds":1.5,"status":"refreshed"}"#,
        );
        check(
            RefreshEvent::Summary {
                refreshed: 1,
                skipped: 0,
                failed: 1,
            },
            r#"{"event":"summary","failed":1,"refreshed":1,"skipped":0}"#,
        );
    }
}
