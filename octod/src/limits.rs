//! Fair share on one host: the resource limits each session gets (`[limits]` in octod.toml,
//! per role, template and user, the most specific winning key by key) and admission control
//! (`[admission]`: how many sessions may run on the host and per user, and the memory floor).
//! Pure: parsing and validation of the configuration fragments, the resolution of a session's
//! limits, and the admission decision over the sessions that hold a slot. The host's facts
//! (memory, CPUs) are read by [`HostFacts::read`] and passed in.
//!
//! Kept apart from `config.rs` on purpose: `config.rs` owns the file format and its merge;
//! this module owns the meaning of two sections of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::identity::Role;
use crate::session::{DesiredState, Limits, SessionSpec, SessionState};

/// The smallest memory limit a session may get: opencode alone needs more than this.
pub const MIN_MEMORY: u64 = 64 << 20;
/// The smallest pids limit: the session's own services (tini, gateway, opencode, ttyd) and a
/// shell need a few dozen tasks.
pub const MIN_PIDS: u32 = 32;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

// ---------------------------------------------------------------------------------------------
// The file format
// ---------------------------------------------------------------------------------------------

/// `[limits]` of one file: the defaults and the per-role, per-template and per-user tables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFragment {
    pub memory: Option<toml::Value>,
    pub cpus: Option<toml::Value>,
    pub pids: Option<toml::Value>,
    /// The disk quota of each user: all their sessions' homes together (`"10G"`).
    pub disk: Option<toml::Value>,
    /// The snapshot storage quota of each user: all their sessions' snapshots together.
    pub snapshots: Option<toml::Value>,
    /// At what share of the quota the user and the agent are warned (percent, 1–100).
    pub disk_warn_percent: Option<u64>,
    /// How often a running session's home is measured (minutes, 1–1440).
    pub disk_measure_minutes: Option<u64>,
    #[serde(default)]
    pub roles: BTreeMap<String, LevelFragment>,
    #[serde(default)]
    pub templates: BTreeMap<String, LevelFragment>,
    #[serde(default)]
    pub users: BTreeMap<String, LevelFragment>,
}

/// The limits at one level; each a number, a size text (`"2G"`) or `"unlimited"`. `disk`
/// (the user's quota) only in the defaults, a role's or a user's table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelFragment {
    pub memory: Option<toml::Value>,
    pub cpus: Option<toml::Value>,
    pub pids: Option<toml::Value>,
    pub disk: Option<toml::Value>,
    pub snapshots: Option<toml::Value>,
}

/// `[admission]` of one file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionFragment {
    /// Sessions running at once on this host; 0: no maximum.
    pub max_running: Option<u32>,
    /// Sessions running at once per user; 0: no maximum.
    pub max_running_per_user: Option<u32>,
    /// Memory kept free beyond what a starting session may use (`"512M"`); `"off"` turns
    /// the memory floor off.
    pub memory_margin: Option<toml::Value>,
    /// Stop idle sessions to make room for a create or resume that would be refused.
    pub stop_idle_to_make_room: Option<bool>,
    /// How long without activity makes a running session idle enough to be stopped for room.
    pub make_room_idle_minutes: Option<u64>,
    /// The free space octod's state directory's file system must keep: below it, no session
    /// starts (`"1G"`); `"off"` turns the check off.
    pub state_free_floor: Option<toml::Value>,
}

/// Why `[limits]` or `[admission]` is not valid: the file, the dotted key, the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {key}: {message}")]
pub struct InvalidLimit {
    pub path: String,
    pub key: String,
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// Validated settings
// ---------------------------------------------------------------------------------------------

/// One limit as configured: a value, or explicitly none (which a more specific level uses to
/// lift a limit set at a broader one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting<T> {
    Limit(T),
    Unlimited,
}

impl<T: Copy> Setting<T> {
    fn value(self) -> Option<T> {
        match self {
            Self::Limit(v) => Some(v),
            Self::Unlimited => None,
        }
    }
}

/// The limits set at one level (the defaults, a role, a template or a user); unset keys fall
/// through to the next broader level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Level {
    pub memory: Option<Setting<u64>>,
    /// Hundredths of a CPU.
    pub cpu: Option<Setting<u32>>,
    pub pids: Option<Setting<u32>>,
    /// The user's disk quota (all their homes together).
    pub disk: Option<Setting<u64>>,
    /// The user's snapshot storage quota (all their snapshots together).
    pub snapshots: Option<Setting<u64>>,
}

/// A set key and the file it came from, for `octod config show` and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub key: String,
    pub value: String,
    pub path: PathBuf,
}

/// The validated `[limits]`: what [`LimitsPolicy::resolve`] makes of a session's owner, role
/// and template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsPolicy {
    pub default: Level,
    pub roles: BTreeMap<String, Level>,
    pub templates: BTreeMap<String, Level>,
    pub users: BTreeMap<String, Level>,
    /// Every set key, in file order (later wins).
    pub origins: Vec<Origin>,
    /// When to warn, how often to measure.
    pub disk: DiskPolicy,
}

/// `disk_warn_percent` and `disk_measure_minutes` of `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskPolicy {
    /// Warn at this share of the quota (percent).
    pub warn_percent: u8,
    /// Measure each running session's home this often.
    pub measure_every: Duration,
}

/// The default warning threshold: 90 % of the quota.
pub const DEFAULT_DISK_WARN_PERCENT: u8 = 90;
/// The default interval between two measurements of a running session's home.
pub const DEFAULT_DISK_MEASURE: Duration = Duration::from_secs(10 * 60);

impl Default for DiskPolicy {
    fn default() -> Self {
        Self {
            warn_percent: DEFAULT_DISK_WARN_PERCENT,
            measure_every: DEFAULT_DISK_MEASURE,
        }
    }
}

impl LimitsPolicy {
    /// A user's disk quota, for all their sessions' homes together: the user's setting, else
    /// the role's, else the default (templates have none: the quota is the user's).
    pub fn disk_quota(&self, user: &str, role: Role) -> Option<u64> {
        [
            self.users.get(user),
            self.roles.get(role.as_str()),
            Some(&self.default),
        ]
        .into_iter()
        .flatten()
        .find_map(|l| l.disk)
        .and_then(Setting::value)
    }

    /// A user's snapshot storage quota (the compressed archives of all their sessions'
    /// snapshots): the user's setting, else the role's, else the default.
    pub fn snapshot_quota(&self, user: &str, role: Role) -> Option<u64> {
        [
            self.users.get(user),
            self.roles.get(role.as_str()),
            Some(&self.default),
        ]
        .into_iter()
        .flatten()
        .find_map(|l| l.snapshots)
        .and_then(Setting::value)
    }

    /// A session's limits: for each of memory, CPU and pids the user's setting, else the
    /// template's, else the role's, else the default; `unlimited` at any level ends the search
    /// with no limit.
    pub fn resolve(&self, user: &str, role: Role, template: &str) -> Limits {
        let levels = [
            self.users.get(user),
            self.templates.get(template),
            self.roles.get(role.as_str()),
            Some(&self.default),
        ];
        let pick = |get: &dyn Fn(&Level) -> Option<Setting<u64>>| {
            levels
                .iter()
                .flatten()
                .find_map(|l| get(l))
                .and_then(Setting::value)
        };
        let memory = pick(&|l| l.memory);
        let cpu = pick(&|l| l.cpu.map(widen));
        let pids = pick(&|l| l.pids.map(widen));
        Limits {
            memory_bytes: memory,
            cpu_centis: cpu.and_then(|c| u32::try_from(c).ok()),
            pids: pids.and_then(|p| u32::try_from(p).ok()),
        }
    }

    /// Whether any level sets a limit on `controller` (`memory`, `cpu`, `pids`): only then is
    /// a missing controller worth a warning.
    pub fn uses(&self, controller: &str) -> bool {
        let all = std::iter::once(&self.default)
            .chain(self.roles.values())
            .chain(self.templates.values())
            .chain(self.users.values());
        let set = |s: Option<Setting<u64>>| matches!(s, Some(Setting::Limit(_)));
        all.into_iter().any(|l| match controller {
            "memory" => set(l.memory),
            "cpu" => set(l.cpu.map(widen)),
            "pids" => set(l.pids.map(widen)),
            _ => false,
        })
    }

    /// Every memory and CPU limit with its key and file, for the host checks.
    fn keyed(&self) -> impl Iterator<Item = (String, &Level)> {
        std::iter::once(("limits".to_owned(), &self.default))
            .chain(
                self.roles
                    .iter()
                    .map(|(n, l)| (format!("limits.roles.{n}"), l)),
            )
            .chain(
                self.templates
                    .iter()
                    .map(|(n, l)| (format!("limits.templates.{n}"), l)),
            )
            .chain(
                self.users
                    .iter()
                    .map(|(n, l)| (format!("limits.users.{n}"), l)),
            )
    }

    fn path_of(&self, key: &str) -> String {
        self.origins
            .iter()
            .rev()
            .find(|o| o.key == key)
            .map_or_else(|| "defaults".to_owned(), |o| o.path.display().to_string())
    }

    /// Refuses limits this host cannot give: a memory limit above its memory, a CPU limit
    /// above its CPUs (Podman refuses such a start; and a memory limit the host does not have
    /// would let the memory floor refuse every session that gets it).
    pub fn check_host(&self, host: &HostFacts) -> Result<(), InvalidLimit> {
        for (prefix, level) in self.keyed() {
            if let (Some(Setting::Limit(bytes)), Some(total)) = (level.memory, host.memory_total)
                && bytes > total
            {
                let key = format!("{prefix}.memory");
                return Err(InvalidLimit {
                    path: self.path_of(&key),
                    message: format!(
                        "{} is more than this host's memory ({})",
                        size(bytes),
                        size(total)
                    ),
                    key,
                });
            }
            if let (Some(Setting::Limit(centis)), Some(cpus)) = (level.cpu, host.cpus)
                && u64::from(centis) > u64::from(cpus) * 100
            {
                let key = format!("{prefix}.cpus");
                return Err(InvalidLimit {
                    path: self.path_of(&key),
                    message: format!(
                        "{} CPUs is more than this host has ({cpus})",
                        cpus_text(centis)
                    ),
                    key,
                });
            }
        }
        Ok(())
    }

    /// Valid but suspicious: per-user tables for accounts that do not exist, per-template
    /// tables for templates that are not offered. `users` and `templates` are what exists;
    /// `None` when unknown (not checked).
    pub fn warnings(&self, users: Option<&[String]>, templates: Option<&[String]>) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(users) = users {
            for name in self.users.keys().filter(|n| !users.contains(n)) {
                let key = format!("limits.users.{name}");
                out.push(format!(
                    "{key} ({}): there is no user {name:?}; the limits apply if such an account is made",
                    self.path_of_prefix(&key)
                ));
            }
        }
        if let Some(templates) = templates {
            for name in self.templates.keys().filter(|n| !templates.contains(n)) {
                let key = format!("limits.templates.{name}");
                out.push(format!(
                    "{key} ({}): there is no template {name:?} in the templates directory",
                    self.path_of_prefix(&key)
                ));
            }
        }
        out
    }

    fn path_of_prefix(&self, prefix: &str) -> String {
        self.origins
            .iter()
            .rev()
            .find(|o| o.key.starts_with(&format!("{prefix}.")))
            .map_or_else(|| "defaults".to_owned(), |o| o.path.display().to_string())
    }
}

fn widen(s: Setting<u32>) -> Setting<u64> {
    match s {
        Setting::Limit(v) => Setting::Limit(u64::from(v)),
        Setting::Unlimited => Setting::Unlimited,
    }
}

/// The validated `[admission]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Sessions that may run at once on this host.
    pub max_running: Option<u32>,
    /// Sessions that may run at once per user.
    pub max_running_per_user: Option<u32>,
    /// Memory kept free beyond a starting session's memory limit; `None`: no memory floor.
    pub memory_margin: Option<u64>,
    /// `Some(idle)`: stop running sessions without activity for `idle` to make room.
    pub make_room_after: Option<Duration>,
    /// The free space octod's state directory must keep; `None`: not checked.
    pub state_free_floor: Option<u64>,
    pub origins: Vec<Origin>,
}

impl Default for Admission {
    fn default() -> Self {
        Self {
            max_running: None,
            max_running_per_user: None,
            memory_margin: Some(DEFAULT_MARGIN),
            make_room_after: None,
            state_free_floor: Some(DEFAULT_STATE_FREE_FLOOR),
            origins: Vec::new(),
        }
    }
}

/// The default memory margin: what the host keeps beyond the sessions' limits.
pub const DEFAULT_MARGIN: u64 = 256 * MIB;
/// The default free-space floor of octod's state directory: redb needs room to commit, and
/// the journal and a package upgrade want some too.
pub const DEFAULT_STATE_FREE_FLOOR: u64 = 512 * MIB;

/// What the host has, read once by [`HostFacts::read`] (octod's start, `config check`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// `MemTotal` of `/proc/meminfo`.
    pub memory_total: Option<u64>,
    /// CPUs online.
    pub cpus: Option<u32>,
}

impl HostFacts {
    pub fn read() -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            memory_total: meminfo_field(&meminfo, "MemTotal"),
            cpus: std::thread::available_parallelism()
                .ok()
                .and_then(|n| u32::try_from(n.get()).ok()),
        }
    }
}

/// The space free for an unprivileged user on the file system that holds `path` (statvfs:
/// available blocks × fragment size); `None` when it cannot be read.
pub fn free_space(path: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    u64::from(stat.blocks_available()).checked_mul(u64::from(stat.fragment_size()))
}

/// What `octod config check` and `octoctl status` say about octod's state directory: its
/// free space below `admission.state_free_floor` (sessions do not start), and a state
/// directory on the same file system as the session homes (`homes`: Podman's volume
/// directory), which a full workspace can fill.
pub fn state_dir_warnings(admission: &Admission, state_dir: &Path, homes: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = Vec::new();
    if let (Some(floor), Some(free)) = (admission.state_free_floor, free_space(state_dir))
        && free < floor
    {
        out.push(format!(
            "octod's state directory {} has {} free, below admission.state_free_floor ({}): no session starts until space is freed there",
            state_dir.display(),
            size(free),
            size(floor)
        ));
    }
    if let (Ok(state), Ok(home)) = (std::fs::metadata(state_dir), std::fs::metadata(homes))
        && state.dev() == home.dev()
    {
        out.push(format!(
            "octod's state directory {} is on the same file system as the session homes ({}): a full workspace can fill it and stop octod from recording anything; give one of them a file system of its own (README: \"Disk layout\")",
            state_dir.display(),
            homes.display()
        ));
    }
    out
}

/// Where Podman keeps the named volumes (the session homes) of the user whose home is
/// `home`: `~/.local/share/containers/storage/volumes`, the rootless default.
pub fn volumes_dir(home: &Path) -> PathBuf {
    home.join(".local/share/containers/storage/volumes")
}

/// The host's available memory now (`MemAvailable`), for the memory floor.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_field(&meminfo, "MemAvailable")
}

/// A field of `/proc/meminfo` (`MemTotal:  16318580 kB`) in bytes.
pub fn meminfo_field(meminfo: &str, field: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        kib.checked_mul(KIB)
    })
}

/// The cgroup controllers delegated to the user `uid`'s systemd manager, and the file that
/// says so (`…/user@<uid>.service/cgroup.controllers`; unreadable: none).
pub fn delegated_controllers(uid: u32) -> (crate::render::Controllers, String) {
    let path =
        format!("/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    (
        crate::render::Controllers::from_cgroup_controllers(&text),
        path,
    )
}

/// What `octod config check` warns about in `[limits]`: per-template tables for templates
/// that `templates_dir` does not have, and limits whose controller is not delegated to the
/// user `octo` (or, where there is no such user, to the one running the check). Users are
/// not checked here: the state database is octod's while it runs.
pub fn check_warnings(policy: &LimitsPolicy, templates_dir: &Path) -> Vec<String> {
    let templates: Vec<String> = crate::templates::list(templates_dir)
        .into_iter()
        .map(|t| t.id)
        .collect();
    let mut out = policy.warnings(None, Some(&templates));
    let uid = nix::unistd::User::from_name("octo")
        .ok()
        .flatten()
        .map_or_else(|| nix::unistd::getuid().as_raw(), |u| u.uid.as_raw());
    let (controllers, path) = delegated_controllers(uid);
    out.extend(controller_warnings(policy, controllers, &path));
    out
}

/// One warning per limit kind that `[limits]` sets while its cgroup controller is not
/// delegated (`path` is where that was read): such limits are left out of the units.
pub fn controller_warnings(
    policy: &LimitsPolicy,
    controllers: crate::render::Controllers,
    path: &str,
) -> Vec<String> {
    [
        ("memory", "memory", controllers.memory),
        ("cpu", "cpus", controllers.cpu),
        ("pids", "pids", controllers.pids),
    ]
    .into_iter()
    .filter(|(name, _, on)| !on && policy.uses(name))
    .map(|(name, key, _)| {
        format!(
            "[limits] sets {key}, but the {name} cgroup controller is not delegated to octod's user (not in {path}): session {name} limits are not enforced"
        )
    })
    .collect()
}

// ---------------------------------------------------------------------------------------------
// Merging and validating the fragments
// ---------------------------------------------------------------------------------------------

/// Merges `[limits]` and `[admission]` of each file, in order.
pub fn merge<'a>(
    fragments: impl Iterator<Item = (&'a Path, &'a LimitsFragment, &'a AdmissionFragment)>,
) -> Result<(LimitsPolicy, Admission), InvalidLimit> {
    let (mut limits, mut admission) = (Vec::new(), Vec::new());
    for (path, l, a) in fragments {
        limits.push((path, l));
        admission.push((path, a));
    }
    Ok((merge_limits(&limits)?, merge_admission(&admission)?))
}

/// `[limits]` and `[admission]` as `octod config show` prints them: each set key with its
/// file, the defaults named.
pub fn show(policy: &LimitsPolicy, admission: &Admission) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("\n[limits]\n");
    if policy.origins.is_empty() {
        out.push_str("# no limits: sessions may use what the host has\n");
    }
    let mut section = String::from("limits");
    for origin in last_of_each(&policy.origins) {
        let (table, name) = origin
            .key
            .rsplit_once('.')
            .unwrap_or(("limits", &origin.key));
        if table != section {
            let _ = writeln!(out, "[{table}]");
            table.clone_into(&mut section);
        }
        let line = format!("{name} = {}", origin.value);
        let _ = writeln!(out, "{line:<56} # {}", origin.path.display());
    }
    out.push_str("\n[admission]\n");
    let set: Vec<&Origin> = last_of_each(&admission.origins);
    let source = |key: &str| {
        set.iter()
            .find(|o| o.key == format!("admission.{key}"))
            .map_or_else(|| "default".to_owned(), |o| o.path.display().to_string())
    };
    let minutes = admission.make_room_after.map_or(10, |d| d.as_secs() / 60);
    for (name, value) in [
        (
            "max_running",
            admission.max_running.unwrap_or(0).to_string(),
        ),
        (
            "max_running_per_user",
            admission.max_running_per_user.unwrap_or(0).to_string(),
        ),
        (
            "memory_margin",
            admission
                .memory_margin
                .map_or_else(|| "\"off\"".to_owned(), |m| format!("\"{}\"", size(m))),
        ),
        (
            "stop_idle_to_make_room",
            admission.make_room_after.is_some().to_string(),
        ),
        ("make_room_idle_minutes", minutes.to_string()),
        (
            "state_free_floor",
            admission
                .state_free_floor
                .map_or_else(|| "\"off\"".to_owned(), |m| format!("\"{}\"", size(m))),
        ),
    ] {
        let line = format!("{name} = {value}");
        let _ = writeln!(out, "{line:<56} # {}", source(name));
    }
    out
}

/// The last origin of each key, in the order keys were first set.
fn last_of_each(origins: &[Origin]) -> Vec<&Origin> {
    let mut keys: Vec<&str> = Vec::new();
    for o in origins {
        if !keys.contains(&o.key.as_str()) {
            keys.push(&o.key);
        }
    }
    // Stable: the keys of one table keep their order; the defaults come first.
    keys.sort_by_key(|k| {
        let table = k.rsplit_once('.').map_or("", |(t, _)| t);
        (table != "limits", table.to_owned())
    });
    keys.iter()
        .filter_map(|k| origins.iter().rev().find(|o| o.key == *k))
        .collect()
}

/// Merges the `[limits]` of each file (later files win key by key) and validates every value.
pub fn merge_limits(fragments: &[(&Path, &LimitsFragment)]) -> Result<LimitsPolicy, InvalidLimit> {
    let mut policy = LimitsPolicy::default();
    for (path, fragment) in fragments {
        let mut origins = Vec::new();
        let default = LevelFragment {
            memory: fragment.memory.clone(),
            cpus: fragment.cpus.clone(),
            pids: fragment.pids.clone(),
            disk: fragment.disk.clone(),
            snapshots: fragment.snapshots.clone(),
        };
        set_level("limits", &mut policy.default, &default, path, &mut origins)?;
        let invalid = |key: &str, message: &str| InvalidLimit {
            path: path.display().to_string(),
            key: format!("limits.{key}"),
            message: message.to_owned(),
        };
        if let Some(percent) = fragment.disk_warn_percent {
            policy.disk.warn_percent = u8::try_from(percent)
                .ok()
                .filter(|p| (1..=100).contains(p))
                .ok_or_else(|| {
                    invalid("disk_warn_percent", "must be 1–100 (percent of the quota)")
                })?;
            origins.push(Origin {
                key: "limits.disk_warn_percent".into(),
                value: percent.to_string(),
                path: path.to_path_buf(),
            });
        }
        if let Some(minutes) = fragment.disk_measure_minutes {
            if !(1..=24 * 60).contains(&minutes) {
                return Err(invalid("disk_measure_minutes", "must be 1–1440 (a day)"));
            }
            policy.disk.measure_every = Duration::from_secs(minutes * 60);
            origins.push(Origin {
                key: "limits.disk_measure_minutes".into(),
                value: minutes.to_string(),
                path: path.to_path_buf(),
            });
        }
        for (kind, from, into) in [
            ("roles", &fragment.roles, &mut policy.roles),
            ("templates", &fragment.templates, &mut policy.templates),
            ("users", &fragment.users, &mut policy.users),
        ] {
            for (name, level) in from {
                let prefix = format!("limits.{kind}.{name}");
                check_name(kind, name).map_err(|message| InvalidLimit {
                    path: path.display().to_string(),
                    key: prefix.clone(),
                    message,
                })?;
                if kind == "templates" && level.snapshots.is_some() {
                    return Err(InvalidLimit {
                        path: path.display().to_string(),
                        key: format!("{prefix}.snapshots"),
                        message: "the snapshot quota is a user's, for all their sessions together: set it in [limits], a role's or a user's table".into(),
                    });
                }
                if kind == "templates" && level.disk.is_some() {
                    return Err(InvalidLimit {
                        path: path.display().to_string(),
                        key: format!("{prefix}.disk"),
                        message: "the disk quota is a user's, for all their sessions together: set it in [limits], a role's or a user's table".into(),
                    });
                }
                set_level(
                    &prefix,
                    into.entry(name.clone()).or_default(),
                    level,
                    path,
                    &mut origins,
                )?;
            }
        }
        policy.origins.extend(origins);
    }
    Ok(policy)
}

/// Role names are the roles there are; template and user names what those allow.
fn check_name(kind: &str, name: &str) -> Result<(), String> {
    match kind {
        "roles" if !matches!(name, "user" | "admin") => Err(format!(
            "no role {name:?}: the roles are \"user\" and \"admin\""
        )),
        _ if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
        {
            Err(format!(
                "{name:?} is not a {} name",
                kind.trim_end_matches('s')
            ))
        }
        _ => Ok(()),
    }
}

fn set_level(
    prefix: &str,
    level: &mut Level,
    fragment: &LevelFragment,
    path: &Path,
    origins: &mut Vec<Origin>,
) -> Result<(), InvalidLimit> {
    let invalid = |name: &str, message: String| InvalidLimit {
        path: path.display().to_string(),
        key: format!("{prefix}.{name}"),
        message,
    };
    let mut origin = |name: &str, value: &toml::Value| {
        origins.push(Origin {
            key: format!("{prefix}.{name}"),
            value: value.to_string(),
            path: path.to_owned(),
        });
    };
    if let Some(value) = &fragment.memory {
        level.memory = Some(parse_memory(value).map_err(|m| invalid("memory", m))?);
        origin("memory", value);
    }
    if let Some(value) = &fragment.cpus {
        level.cpu = Some(parse_cpus(value).map_err(|m| invalid("cpus", m))?);
        origin("cpus", value);
    }
    if let Some(value) = &fragment.pids {
        level.pids = Some(parse_pids(value).map_err(|m| invalid("pids", m))?);
        origin("pids", value);
    }
    if let Some(value) = &fragment.disk {
        level.disk = Some(parse_disk(value).map_err(|m| invalid("disk", m))?);
        origin("disk", value);
    }
    if let Some(value) = &fragment.snapshots {
        level.snapshots = Some(parse_disk(value).map_err(|m| invalid("snapshots", m))?);
        origin("snapshots", value);
    }
    Ok(())
}

/// Merges `[admission]` (later files win key by key).
pub fn merge_admission(
    fragments: &[(&Path, &AdmissionFragment)],
) -> Result<Admission, InvalidLimit> {
    let mut admission = Admission::default();
    let mut stop_idle = false;
    let mut idle_minutes = 10;
    for (path, f) in fragments {
        let mut origin = |key: &str, value: String| {
            admission.origins.push(Origin {
                key: format!("admission.{key}"),
                value,
                path: path.to_path_buf(),
            });
        };
        if let Some(n) = f.max_running {
            origin("max_running", n.to_string());
            admission.max_running = (n > 0).then_some(n);
        }
        if let Some(n) = f.max_running_per_user {
            origin("max_running_per_user", n.to_string());
            admission.max_running_per_user = (n > 0).then_some(n);
        }
        if let Some(value) = &f.memory_margin {
            admission.memory_margin = match value {
                toml::Value::String(s) if s == "off" => None,
                other => Some(parse_size(other).map_err(|message| InvalidLimit {
                    path: path.display().to_string(),
                    key: "admission.memory_margin".into(),
                    message: format!("{message}, or \"off\""),
                })?),
            };
            origin("memory_margin", value.to_string());
        }
        if let Some(on) = f.stop_idle_to_make_room {
            origin("stop_idle_to_make_room", on.to_string());
            stop_idle = on;
        }
        if let Some(minutes) = f.make_room_idle_minutes {
            if minutes > 7 * 24 * 60 {
                return Err(InvalidLimit {
                    path: path.display().to_string(),
                    key: "admission.make_room_idle_minutes".into(),
                    message: "must be 0–10080 (a week)".into(),
                });
            }
            origin("make_room_idle_minutes", minutes.to_string());
            idle_minutes = minutes;
        }
        if let Some(value) = &f.state_free_floor {
            admission.state_free_floor = match value {
                toml::Value::String(s) if s == "off" => None,
                other => Some(parse_size(other).map_err(|message| InvalidLimit {
                    path: path.display().to_string(),
                    key: "admission.state_free_floor".into(),
                    message: format!("{message}, or \"off\""),
                })?),
            };
            origin("state_free_floor", value.to_string());
        }
    }
    admission.make_room_after = stop_idle.then(|| Duration::from_secs(idle_minutes * 60));
    Ok(admission)
}

/// A size: bytes as an integer, or a number with a binary unit (`512M`, `1.5G`, `2GiB`).
fn parse_size(value: &toml::Value) -> Result<u64, String> {
    let text = match value {
        toml::Value::Integer(n) => {
            return u64::try_from(*n).map_err(|_| format!("{n} is not a size"));
        }
        toml::Value::String(s) => s.trim(),
        other => {
            return Err(format!(
                "{other} is not a size: use bytes or a text like \"2G\""
            ));
        }
    };
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let unit = unit.trim();
    let multiplier = match unit.trim_end_matches("iB").trim_end_matches('B') {
        "" => 1,
        "K" | "k" => KIB,
        "M" | "m" => MIB,
        "G" | "g" => GIB,
        "T" | "t" => TIB,
        _ => {
            return Err(format!(
                "{text:?} is not a size: use a number with K, M, G or T"
            ));
        }
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size: use a number with K, M, G or T"))?;
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let bytes = (number * multiplier as f64).round();
    if !bytes.is_finite() || bytes >= 1.8e19 {
        return Err(format!("{text:?} is too large"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes as u64)
}

fn is_unlimited(value: &toml::Value) -> bool {
    matches!(value, toml::Value::String(s) if s == "unlimited")
}

/// `memory`: a size of at least [`MIN_MEMORY`], or `"unlimited"`.
fn parse_memory(value: &toml::Value) -> Result<Setting<u64>, String> {
    if is_unlimited(value) {
        return Ok(Setting::Unlimited);
    }
    let bytes = parse_size(value).map_err(|m| format!("{m}, or \"unlimited\""))?;
    if bytes < MIN_MEMORY {
        return Err(format!(
            "{} is too little to run a session: at least {}",
            size(bytes),
            size(MIN_MEMORY)
        ));
    }
    Ok(Setting::Limit(bytes))
}

/// The smallest disk quota: a session's home starts with a few MiB of dot files.
pub const MIN_DISK: u64 = MIB;

/// `disk`: a size of at least [`MIN_DISK`], or `"unlimited"`.
fn parse_disk(value: &toml::Value) -> Result<Setting<u64>, String> {
    if is_unlimited(value) {
        return Ok(Setting::Unlimited);
    }
    let bytes = parse_size(value).map_err(|m| format!("{m}, or \"unlimited\""))?;
    if bytes < MIN_DISK {
        return Err(format!(
            "{} is too little for a home: at least {}",
            size(bytes),
            size(MIN_DISK)
        ));
    }
    Ok(Setting::Limit(bytes))
}

/// `cpus`: a number of CPUs above 0 in hundredths (`1.5`), or `"unlimited"`.
fn parse_cpus(value: &toml::Value) -> Result<Setting<u32>, String> {
    if is_unlimited(value) {
        return Ok(Setting::Unlimited);
    }
    let cpus = match value {
        #[allow(clippy::cast_precision_loss)]
        toml::Value::Integer(n) => *n as f64,
        toml::Value::Float(f) => *f,
        other => {
            return Err(format!(
                "{other} is not a number of CPUs: use a number such as 1.5, or \"unlimited\""
            ));
        }
    };
    let centis = (cpus * 100.0).round();
    if !(1.0..=100_000.0).contains(&centis) || (cpus * 100.0 - centis).abs() > 1e-6 {
        return Err(format!(
            "{cpus} is not a number of CPUs: use 0.01 or more, in hundredths (1.5), or \"unlimited\""
        ));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Setting::Limit(centis as u32))
}

/// `pids`: at least [`MIN_PIDS`] tasks, or `"unlimited"`.
fn parse_pids(value: &toml::Value) -> Result<Setting<u32>, String> {
    if is_unlimited(value) {
        return Ok(Setting::Unlimited);
    }
    match value {
        toml::Value::Integer(n) => match u32::try_from(*n) {
            Ok(n) if n >= MIN_PIDS => Ok(Setting::Limit(n)),
            _ => Err(format!(
                "{n} is not a task limit: use {MIN_PIDS} to {}, or \"unlimited\"",
                u32::MAX
            )),
        },
        other => Err(format!(
            "{other} is not a task limit: use a whole number, or \"unlimited\""
        )),
    }
}

/// Bytes for people: `2 GiB`, `1.5 GiB`, `512 MiB`.
pub fn size(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    for (unit, div) in [("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        if bytes >= div {
            #[allow(clippy::cast_precision_loss)]
            let v = b / div as f64;
            let text = format!("{v:.1}");
            return format!("{} {unit}", text.trim_end_matches(".0"));
        }
    }
    format!("{bytes} bytes")
}

/// Hundredths of a CPU for people: `1.5`, `2`, `0.25`.
pub fn cpus_text(centis: u32) -> String {
    let text = format!("{}.{:02}", centis / 100, centis % 100);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

// ---------------------------------------------------------------------------------------------
// Admission
// ---------------------------------------------------------------------------------------------

/// Whether a session holds one of the host's running slots: it is meant to run and is not
/// down (a failed session waits for its user; an idle one is stopped, its socket listening).
pub fn holds_slot(spec: &SessionSpec, state: &SessionState) -> bool {
    spec.desired == DesiredState::Running
        && matches!(
            state,
            SessionState::Creating | SessionState::Starting | SessionState::Running
        )
}

/// Why a start was refused; its `Display` is what the user reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the host is full: {running} of {max} sessions running; stop one or ask an administrator"
    )]
    HostFull { running: usize, max: u32 },
    #[error("{owner} has {running} of {max} sessions running, the most allowed; stop one first")]
    UserFull {
        owner: String,
        running: usize,
        max: u32,
    },
    #[error(
        "the host is short of memory: {} available, this session may use {} and {} is kept free; stop a session or ask an administrator",
        size(*available), size(*limit), size(*margin)
    )]
    LowMemory {
        available: u64,
        limit: u64,
        margin: u64,
    },
    #[error(
        "the host is short of disk space for Octo's own state: {} free where octod keeps it, {} is kept free; ask an administrator to free space",
        size(*free), size(*floor)
    )]
    LowStateDisk { free: u64, floor: u64 },
}

/// What a start is checked against, inside the store transaction that records it: the rules
/// and the memory available when the start was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmitCheck {
    pub rules: Admission,
    /// `MemAvailable` now; `None` when unknown (no memory floor then).
    pub available_memory: Option<u64>,
    /// The free space of octod's state directory's file system now; `None` when unknown or
    /// not checked.
    pub state_free: Option<u64>,
}

impl AdmitCheck {
    /// Admits `candidate` among `others` (every other session, whatever its state). Sessions
    /// that hold a slot count against both maxima; those still creating or starting have not
    /// taken their memory yet, so their memory limits are subtracted from what is available.
    pub fn check<'a>(
        &self,
        candidate: &SessionSpec,
        others: impl IntoIterator<Item = (&'a SessionSpec, &'a SessionState)>,
    ) -> Result<(), Refusal> {
        let mut running = 0;
        let mut mine = 0;
        let mut reserved: u64 = 0;
        for (spec, state) in others {
            if spec.id == candidate.id || !holds_slot(spec, state) {
                continue;
            }
            running += 1;
            mine += usize::from(spec.owner == candidate.owner);
            if matches!(state, SessionState::Creating | SessionState::Starting) {
                reserved = reserved.saturating_add(spec.limits.memory_bytes.unwrap_or(0));
            }
        }
        let rules = &self.rules;
        if let (Some(floor), Some(free)) = (rules.state_free_floor, self.state_free)
            && free < floor
        {
            return Err(Refusal::LowStateDisk { free, floor });
        }
        if let Some(max) = rules.max_running_per_user
            && mine >= usize::try_from(max).unwrap_or(usize::MAX)
        {
            return Err(Refusal::UserFull {
                owner: candidate.owner.clone(),
                running: mine,
                max,
            });
        }
        if let Some(max) = rules.max_running
            && running >= usize::try_from(max).unwrap_or(usize::MAX)
        {
            return Err(Refusal::HostFull { running, max });
        }
        if let (Some(margin), Some(available)) = (rules.memory_margin, self.available_memory) {
            let limit = candidate.limits.memory_bytes.unwrap_or(0);
            let available = available.saturating_sub(reserved);
            if available < limit.saturating_add(margin) {
                return Err(Refusal::LowMemory {
                    available,
                    limit,
                    margin,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
