//! Snapshots of a session's home (issue 17, part 1): where they are kept, their names, and the
//! worker that writes and restores them.
//!
//! **Storage.** `<state dir>/snapshots/<session>/<snapshot>/` holds `home.tar.zst` (the home as
//! a tar stream, zstd-compressed) and `snapshot.json` ([`Meta`]). A snapshot being written is
//! `.partial-<snapshot>/` beside it and becomes visible only by the rename of that directory
//! once the archive and its sizes are complete: a crash, a `kill -9` or a full disk leaves at
//! most a `.partial-*` directory, which no listing shows and the reconciler removes
//! ([`leftovers`]).
//!
//! **The worker** (`octod snapshot-worker …`, [`worker`]) runs as a transient unit of the `octo`
//! user's manager under `podman unshare`: in the user namespace of the rootless containers,
//! where the home's files (owned by the container's subordinate ids) are readable and their
//! owners can be set again on restore. It streams: one file at a time through the tar builder
//! and the zstd encoder into the archive, never a whole home in memory. Its progress is a
//! small JSON file ([`Progress`]) that octod reads while it follows the unit.
//!
//! **Restore** unpacks into `.octo-restore-<snapshot>` beside the volume's `_data` and swaps
//! the two with one `renameat2(RENAME_EXCHANGE)`: before the swap the old home is untouched,
//! after it the new one is complete; the old tree is then removed.

use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::session::SessionId;

/// The archive in a snapshot's directory.
pub const ARCHIVE: &str = "home.tar.zst";
/// The description in a snapshot's directory.
pub const META: &str = "snapshot.json";
/// The progress file the worker keeps up to date.
pub const PROGRESS: &str = "progress.json";
/// The prefix of a snapshot directory being written.
pub const PARTIAL_PREFIX: &str = ".partial-";
/// The prefix of a home being restored, beside the volume's `_data`.
pub const RESTORE_PREFIX: &str = ".octo-restore-";
/// The prefix of the worker units: `octo-snapshot-<session>-<snapshot>.service` (create) and
/// `octo-restore-<session>-<snapshot>.service`. Not a session's name ([`crate::render::SessionNames::parse`]
/// reads neither), so the reconciler's orphan pass leaves them alone.
pub const CREATE_UNIT_PREFIX: &str = "octo-snapshot-";
pub const RESTORE_UNIT_PREFIX: &str = "octo-restore-";
/// The exit code of a worker that stopped at the user's snapshot quota.
pub const EXIT_QUOTA: i32 = 3;
/// The zstd level: the library's default, fast and a good ratio for source trees.
const ZSTD_LEVEL: i32 = 3;

/// A snapshot id: `s` and eleven of `[a-z0-9]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SnapshotId(String);

/// Why a string is not a snapshot id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid snapshot id {0:?}")]
pub struct InvalidSnapshotId(pub String);

impl SnapshotId {
    /// A fresh random id.
    pub fn random() -> io::Result<Self> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut bytes = [0u8; 11];
        getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
        let mut id = String::from("s");
        id.extend(
            bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])),
        );
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SnapshotId {
    type Err = InvalidSnapshotId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = s.len() == 12
            && s.starts_with('s')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidSnapshotId(s.to_owned()))
        }
    }
}

impl TryFrom<String> for SnapshotId {
    type Error = InvalidSnapshotId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<SnapshotId> for String {
    fn from(id: SnapshotId) -> Self {
        id.0
    }
}

impl std::fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A snapshot's name as its user gave it: 1–80 characters after trimming, no control
/// characters; unique among the session's snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotName(String);

/// Why a snapshot name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSnapshotName {
    #[error("a snapshot's name cannot be empty")]
    Empty,
    #[error("a snapshot's name has at most {max} characters, not {found}", max = SnapshotName::MAX_CHARS)]
    Long { found: usize },
    #[error("a snapshot's name cannot contain control characters (such as line breaks or tabs)")]
    ControlCharacter,
}

impl SnapshotName {
    pub const MAX_CHARS: usize = 80;

    pub fn parse(s: &str) -> Result<Self, InvalidSnapshotName> {
        let s = s.trim();
        if s.is_empty() {
            return Err(InvalidSnapshotName::Empty);
        }
        let found = s.chars().count();
        if found > Self::MAX_CHARS {
            return Err(InvalidSnapshotName::Long { found });
        }
        if s.chars().any(char::is_control) {
            return Err(InvalidSnapshotName::ControlCharacter);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `snapshot.json`: what a snapshot is. Written by octod into the partial directory before
/// the worker starts, completed by the worker (sizes, the home's top directory) before the
/// rename that makes it visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The format of this file and the archive; a reader refuses a newer one.
    pub version: u32,
    pub id: SnapshotId,
    pub name: String,
    pub session: SessionId,
    pub owner: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Whether the session was running (its container paused while its home was read).
    pub was_running: bool,
    /// The archive's size on disk (what counts against the quota); 0 until complete.
    #[serde(default)]
    pub archive_bytes: u64,
    /// The home's size: the bytes of its files.
    #[serde(default)]
    pub home_bytes: u64,
    #[serde(default)]
    pub files: u64,
    /// The home's top directory: its mode, owner and group (the archive holds what is in it).
    #[serde(default)]
    pub root: Option<RootMeta>,
}

/// The format of snapshots this octod writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The home's top directory as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootMeta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// How far a worker is: `done` of `total` bytes (the home's files when creating, the archive
/// when restoring).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// The snapshots of every session: `<state dir>/snapshots`.
#[derive(Debug, Clone)]
pub struct Shelf {
    root: PathBuf,
}

impl Shelf {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            root: state_dir.join("snapshots"),
        }
    }

    /// The directory of one session's snapshots.
    pub fn session_dir(&self, session: &SessionId) -> PathBuf {
        self.root.join(session.as_str())
    }

    /// A complete snapshot's directory.
    pub fn dir(&self, session: &SessionId, id: &SnapshotId) -> PathBuf {
        self.session_dir(session).join(id.as_str())
    }

    /// A snapshot's directory while it is written.
    pub fn partial_dir(&self, session: &SessionId, id: &SnapshotId) -> PathBuf {
        self.session_dir(session)
            .join(format!("{PARTIAL_PREFIX}{id}"))
    }

    /// Where a restore's worker writes its progress.
    pub fn restore_progress(&self, session: &SessionId, id: &SnapshotId) -> PathBuf {
        self.session_dir(session)
            .join(format!(".restore-{id}.progress"))
    }

    /// A session's complete snapshots, oldest first. Partial directories are not listed; a
    /// directory whose description cannot be read is logged and skipped.
    pub fn list(&self, session: &SessionId) -> io::Result<Vec<Meta>> {
        let dir = self.session_dir(session);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.parse::<SnapshotId>().is_err() {
                continue;
            }
            match read_meta(&entry.path().join(META)) {
                Ok(meta) => out.push(meta),
                Err(e) => tracing::warn!("snapshot {}: {e}", entry.path().display()),
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// Every complete snapshot of every session (for a user's quota: their sessions' own).
    pub fn list_all(&self) -> io::Result<Vec<Meta>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            if let Some(session) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<SessionId>().ok())
            {
                out.extend(self.list(&session)?);
            }
        }
        Ok(out)
    }

    /// The bytes a user's snapshots take (all their sessions').
    pub fn used_by(&self, owner: &str) -> io::Result<u64> {
        Ok(self
            .list_all()?
            .iter()
            .filter(|m| m.owner == owner)
            .map(|m| m.archive_bytes)
            .sum())
    }

    /// Removes a complete snapshot: renamed to a partial name first (it leaves the listing at
    /// once), then removed.
    pub fn remove(&self, session: &SessionId, id: &SnapshotId) -> io::Result<()> {
        let dir = self.dir(session, id);
        let doomed = self.partial_dir(session, id);
        std::fs::rename(&dir, &doomed)?;
        std::fs::remove_dir_all(&doomed)
    }

    /// Removes every snapshot of a session (the session is deleted).
    pub fn remove_session(&self, session: &SessionId) -> io::Result<()> {
        match std::fs::remove_dir_all(self.session_dir(session)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// What a crashed or killed worker left under the shelf: partial snapshot directories and
    /// restore progress files, except those of `busy` (the sessions whose worker still runs).
    pub fn leftovers(&self, busy: &[SessionId]) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(sessions) = std::fs::read_dir(&self.root) else {
            return out;
        };
        for session in sessions.flatten() {
            let Some(id) = session
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<SessionId>().ok())
            else {
                continue;
            };
            if busy.contains(&id) {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(session.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if leftover_name(&name) {
                    out.push(entry.path());
                }
            }
        }
        out
    }
}

/// Whether a name in a session's snapshot directory is what an unfinished worker leaves.
pub fn leftover_name(name: &str) -> bool {
    name.starts_with(PARTIAL_PREFIX) || name.starts_with(".restore-")
}

pub fn read_meta(path: &Path) -> io::Result<Meta> {
    let text = std::fs::read(path)?;
    let meta: Meta = serde_json::from_slice(&text).map_err(io::Error::other)?;
    if meta.version > FORMAT_VERSION {
        return Err(io::Error::other(format!(
            "snapshot format {} is newer than this octod's ({FORMAT_VERSION})",
            meta.version
        )));
    }
    Ok(meta)
}

/// Writes a file through a temporary name and a rename: a reader sees the old or the new one.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

pub fn write_meta(path: &Path, meta: &Meta) -> io::Result<()> {
    let text = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
    write_atomic(path, &text)
}

pub fn read_progress(path: &Path) -> Option<Progress> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The worker unit's name for creating or restoring `snapshot` of `session`.
pub fn unit_name(restore: bool, session: &SessionId, snapshot: &SnapshotId) -> String {
    let prefix = if restore {
        RESTORE_UNIT_PREFIX
    } else {
        CREATE_UNIT_PREFIX
    };
    format!("{prefix}{session}-{snapshot}.service")
}

/// The session a worker unit's name is about.
pub fn unit_session(unit: &str) -> Option<SessionId> {
    let rest = unit
        .strip_prefix(CREATE_UNIT_PREFIX)
        .or_else(|| unit.strip_prefix(RESTORE_UNIT_PREFIX))?;
    rest.split('-').next()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The worker
// ---------------------------------------------------------------------------------------------

/// Writes progress at most every quarter second (and at the end).
struct Reporter {
    path: PathBuf,
    progress: Progress,
    last: Option<Instant>,
}

impl Reporter {
    fn new(path: PathBuf, total: u64) -> Self {
        Self {
            path,
            progress: Progress { done: 0, total },
            last: None,
        }
    }

    fn add(&mut self, bytes: u64) {
        self.progress.done = self.progress.done.saturating_add(bytes);
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(250))
        {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.last = Some(Instant::now());
        if let Ok(text) = serde_json::to_vec(&self.progress) {
            // Progress is advisory: a failed write only delays what octod shows.
            let _ = write_atomic(&self.path, &text);
        }
    }
}

/// Why the worker failed: its exit code and message.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the snapshot would pass the storage quota for snapshots ({limit} bytes left)")]
    Quota { limit: u64 },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl WorkerError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Quota { .. } => EXIT_QUOTA,
            Self::Io { .. } => 1,
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> WorkerError {
    let what = what.into();
    move |source| WorkerError::Io { what, source }
}

/// The output: counts what is written and refuses to pass `limit`.
struct Bounded<W> {
    inner: W,
    written: u64,
    limit: Option<u64>,
}

/// The marker of a write past the quota inside the io errors of tar and zstd.
#[derive(Debug, thiserror::Error)]
#[error("over the snapshot quota")]
struct OverQuota;

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        if self
            .limit
            .is_some_and(|l| self.written.saturating_add(len) > l)
        {
            return Err(io::Error::other(OverQuota));
        }
        let n = self.inner.write(buf)?;
        self.written += u64::try_from(n).unwrap_or(u64::MAX);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn is_over_quota(error: &io::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.get_ref().map(|e| e as _);
    while let Some(e) = source {
        if e.is::<OverQuota>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io
                .get_ref()
                .is_some_and(<dyn std::error::Error + Send + Sync>::is::<OverQuota>)
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// The entries of a tree, depth first, names sorted: (path relative to `root`, metadata).
fn walk(root: &Path) -> io::Result<Vec<(PathBuf, std::fs::Metadata)>> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let mut names: Vec<_> = std::fs::read_dir(root.join(&rel))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        let mut dirs = Vec::new();
        for name in names {
            let path = rel.join(&name);
            let meta = std::fs::symlink_metadata(root.join(&path))?;
            if meta.is_dir() {
                dirs.push(path.clone());
            }
            out.push((path, meta));
        }
        // Reversed, so that the stack pops them in name order.
        pending.extend(dirs.into_iter().rev());
    }
    Ok(out)
}

/// `octod snapshot-worker create`: archives `home` into `partial/home.tar.zst`, completes
/// `partial/snapshot.json` and renames `partial` to `done`. The archive may take at most
/// `limit` bytes. Sockets are skipped (they mean nothing without their process); hard links
/// are stored as separate files.
pub fn create(
    home: &Path,
    partial: &Path,
    done: &Path,
    limit: Option<u64>,
) -> Result<Meta, WorkerError> {
    let meta_path = partial.join(META);
    let mut meta =
        read_meta(&meta_path).map_err(io_err(format!("reading {}", meta_path.display())))?;
    let root =
        std::fs::symlink_metadata(home).map_err(io_err(format!("reading {}", home.display())))?;
    let entries = walk(home).map_err(io_err(format!("walking {}", home.display())))?;
    let total: u64 = entries
        .iter()
        .filter(|(_, m)| m.is_file())
        .map(|(_, m)| m.len())
        .sum();
    let mut reporter = Reporter::new(partial.join(PROGRESS), total);
    reporter.flush();
    let archive_path = partial.join(ARCHIVE);
    let file = std::fs::File::create(&archive_path)
        .map_err(io_err(format!("creating {}", archive_path.display())))?;
    let result = (|| -> io::Result<(u64, u64)> {
        let out = Bounded {
            inner: io::BufWriter::with_capacity(256 * 1024, file),
            written: 0,
            limit,
        };
        let encoder = zstd::Encoder::new(out, ZSTD_LEVEL)?;
        let mut builder = tar::Builder::new(encoder);
        builder.follow_symlinks(false);
        let mut files = 0;
        for (rel, meta) in &entries {
            if meta.file_type().is_socket() {
                continue;
            }
            builder.append_path_with_name(home.join(rel), rel)?;
            if meta.is_file() {
                files += 1;
                reporter.add(meta.len());
            }
        }
        let encoder = builder.into_inner()?;
        let mut out = encoder.finish()?;
        out.flush()?;
        let written = out.written;
        let file = out
            .inner
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        Ok((written, files))
    })();
    let (written, files) = match result {
        Ok(done) => done,
        Err(e) if is_over_quota(&e) => {
            return Err(WorkerError::Quota {
                limit: limit.unwrap_or(0),
            });
        }
        Err(e) => return Err(io_err(format!("writing {}", archive_path.display()))(e)),
    };
    reporter.flush();
    meta.archive_bytes = written;
    meta.home_bytes = total;
    meta.files = files;
    meta.root = Some(RootMeta {
        mode: root.permissions().mode() & 0o7777,
        uid: root.uid(),
        gid: root.gid(),
    });
    write_meta(&meta_path, &meta).map_err(io_err(format!("writing {}", meta_path.display())))?;
    let _ = std::fs::remove_file(partial.join(PROGRESS));
    sync_dir(partial);
    // The commit point: the snapshot is listed from here on.
    std::fs::rename(partial, done).map_err(io_err(format!("renaming {}", partial.display())))?;
    if let Some(parent) = done.parent() {
        sync_dir(parent);
    }
    Ok(meta)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A reader that reports how much of it was read.
struct Counted<'a, R> {
    inner: R,
    reporter: &'a mut Reporter,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.reporter.add(u64::try_from(n).unwrap_or(0));
        Ok(n)
    }
}

/// `octod snapshot-worker restore`: unpacks the snapshot in `snapshot_dir` beside `home`,
/// then swaps it with `home` in one `renameat2(RENAME_EXCHANGE)` and removes the old tree.
/// Until the swap, `home` is untouched.
pub fn restore(snapshot_dir: &Path, home: &Path, progress: &Path) -> Result<(), WorkerError> {
    let meta_path = snapshot_dir.join(META);
    let meta = read_meta(&meta_path).map_err(io_err(format!("reading {}", meta_path.display())))?;
    let archive_path = snapshot_dir.join(ARCHIVE);
    let file = std::fs::File::open(&archive_path)
        .map_err(io_err(format!("opening {}", archive_path.display())))?;
    let total = file.metadata().map_or(0, |m| m.len());
    let parent = home
        .parent()
        .ok_or_else(|| io_err("the home")(io::Error::other("has no parent directory")))?;
    let staging = parent.join(format!("{RESTORE_PREFIX}{}", meta.id));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .map_err(io_err(format!("removing {}", staging.display())))?;
    }
    std::fs::create_dir(&staging).map_err(io_err(format!("creating {}", staging.display())))?;
    let mut reporter = Reporter::new(progress.to_owned(), total);
    reporter.flush();
    let unpacked = (|| -> io::Result<()> {
        let reader = Counted {
            inner: io::BufReader::with_capacity(256 * 1024, file),
            reporter: &mut reporter,
        };
        let mut archive = tar::Archive::new(zstd::Decoder::new(reader)?);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(true);
        archive.unpack(&staging)?;
        if let Some(root) = meta.root {
            std::os::unix::fs::lchown(&staging, Some(root.uid), Some(root.gid))?;
            std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(root.mode))?;
        }
        Ok(())
    })();
    if let Err(e) = unpacked {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(io_err(format!("unpacking {}", archive_path.display()))(e));
    }
    reporter.flush();
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &staging,
        nix::fcntl::AT_FDCWD,
        home,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
    .map_err(|e| {
        io_err(format!(
            "swapping {} and {}",
            staging.display(),
            home.display()
        ))(e.into())
    })?;
    sync_dir(parent);
    // `staging` now holds the old home.
    std::fs::remove_dir_all(&staging).map_err(io_err(format!(
        "removing the old home {}",
        staging.display()
    )))?;
    let _ = std::fs::remove_file(progress);
    Ok(())
}

/// `octod snapshot-worker copy` (a fork from a session's current home): copies `from` beside
/// `home` with `cp -a --reflink=auto` (copy-on-write where the file system offers it, a
/// streamed copy otherwise; modes, owners, times and links kept), then swaps it in like a
/// restore.
pub fn copy(from: &Path, home: &Path) -> Result<(), WorkerError> {
    let parent = home
        .parent()
        .ok_or_else(|| io_err("the home")(io::Error::other("has no parent directory")))?;
    let staging = parent.join(format!("{RESTORE_PREFIX}fork"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .map_err(io_err(format!("removing {}", staging.display())))?;
    }
    let status = std::process::Command::new("cp")
        .args(["-a", "--reflink=auto", "--"])
        .arg(from)
        .arg(&staging)
        .status()
        .map_err(io_err("running cp"))?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(io_err(format!("copying {}", from.display()))(
            io::Error::other(format!("cp -a --reflink=auto {status}")),
        ));
    }
    swap_in(&staging, home)
}

/// Swaps `staging` and `home` in one `renameat2(RENAME_EXCHANGE)`, then removes the old home.
fn swap_in(staging: &Path, home: &Path) -> Result<(), WorkerError> {
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        staging,
        nix::fcntl::AT_FDCWD,
        home,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
    .map_err(|e| {
        io_err(format!(
            "swapping {} and {}",
            staging.display(),
            home.display()
        ))(e.into())
    })?;
    if let Some(parent) = home.parent() {
        sync_dir(parent);
    }
    std::fs::remove_dir_all(staging).map_err(io_err(format!(
        "removing the old home {}",
        staging.display()
    )))
}

/// `octod snapshot-worker clean`: removes what an interrupted restore left beside a home.
pub fn clean(home: &Path) -> Result<(), WorkerError> {
    let Some(parent) = home.parent() else {
        return Ok(());
    };
    let entries = match std::fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(format!("reading {}", parent.display()))(e)),
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(RESTORE_PREFIX)
        {
            std::fs::remove_dir_all(entry.path())
                .map_err(io_err(format!("removing {}", entry.path().display())))?;
        }
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    crate::store::to_unix_ms(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(session: &SessionId, id: &SnapshotId) -> Meta {
        Meta {
            version: FORMAT_VERSION,
            id: id.clone(),
            name: "first".into(),
            session: session.clone(),
            owner: "alice".into(),
            created_at: 1,
            was_running: false,
            archive_bytes: 0,
            home_bytes: 0,
            files: 0,
            root: None,
        }
    }

    /// A manifest of a tree: path, mode, and the contents of files or the target of links.
    fn manifest(root: &Path) -> Vec<(PathBuf, u32, Vec<u8>)> {
        walk(root)
            .expect("walk")
            .into_iter()
            .map(|(rel, m)| {
                let full = root.join(&rel);
                let data = if m.is_file() {
                    std::fs::read(&full).expect("read")
                } else if m.file_type().is_symlink() {
                    std::fs::read_link(&full)
                        .expect("link")
                        .into_os_string()
                        .into_encoded_bytes()
                } else {
                    Vec::new()
                };
                (rel, m.permissions().mode(), data)
            })
            .collect()
    }

    #[test]
    fn a_snapshot_restores_the_home_it_was_taken_of_and_only_complete_ones_are_listed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let volume = tmp.path().join("volume");
        let home = volume.join("_data");
        std::fs::create_dir_all(home.join("src/deep")).expect("mkdir");
        std::fs::write(home.join("src/deep/a.txt"), b"hello").expect("write");
        std::fs::write(home.join("big.bin"), vec![7u8; 3 << 20]).expect("write");
        std::fs::set_permissions(home.join("big.bin"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        std::os::unix::fs::symlink("src/deep/a.txt", home.join("link")).expect("symlink");
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o750)).expect("chmod");
        let before = manifest(&home);

        let shelf = Shelf::new(&tmp.path().join("state"));
        let session: SessionId = "abc".parse().expect("id");
        let id = SnapshotId::random().expect("id");
        let partial = shelf.partial_dir(&session, &id);
        std::fs::create_dir_all(&partial).expect("mkdir");
        write_meta(&partial.join(META), &meta(&session, &id)).expect("meta");
        assert!(
            shelf.list(&session).expect("list").is_empty(),
            "a partial is not listed"
        );
        assert_eq!(shelf.leftovers(&[]), vec![partial.clone()]);
        assert!(
            shelf.leftovers(std::slice::from_ref(&session)).is_empty(),
            "busy sessions are left alone"
        );

        let done = create(&home, &partial, &shelf.dir(&session, &id), None).expect("create");
        assert_eq!(done.files, 2);
        assert_eq!(done.home_bytes, (3 << 20) + 5);
        assert!(
            done.archive_bytes > 0 && done.archive_bytes < 1 << 20,
            "compressed: {done:?}"
        );
        let listed = shelf.list(&session).expect("list");
        assert_eq!(listed, vec![done.clone()]);
        assert_eq!(shelf.used_by("alice").expect("used"), done.archive_bytes);
        assert_eq!(shelf.used_by("bob").expect("used"), 0);
        assert!(shelf.leftovers(&[]).is_empty());

        // The home changes, then is restored.
        std::fs::write(home.join("src/deep/a.txt"), b"changed").expect("write");
        std::fs::write(home.join("new.txt"), b"new").expect("write");
        std::fs::remove_file(home.join("big.bin")).expect("rm");
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let progress = shelf.restore_progress(&session, &id);
        restore(&shelf.dir(&session, &id), &home, &progress).expect("restore");
        assert_eq!(manifest(&home), before);
        assert_eq!(
            std::fs::metadata(&home).expect("home").permissions().mode() & 0o7777,
            0o750
        );
        let beside: Vec<_> = std::fs::read_dir(&volume)
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            beside,
            vec![std::ffi::OsString::from("_data")],
            "nothing left beside the home"
        );

        shelf.remove(&session, &id).expect("remove");
        assert!(shelf.list(&session).expect("list").is_empty());
    }

    #[test]
    fn a_snapshot_past_the_quota_fails_and_is_not_listed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).expect("mkdir");
        // Incompressible: random bytes.
        let mut noise = vec![0u8; 1 << 20];
        getrandom::fill(&mut noise).expect("random");
        std::fs::write(home.join("noise"), &noise).expect("write");
        let shelf = Shelf::new(&tmp.path().join("state"));
        let session: SessionId = "abc".parse().expect("id");
        let id = SnapshotId::random().expect("id");
        let partial = shelf.partial_dir(&session, &id);
        std::fs::create_dir_all(&partial).expect("mkdir");
        write_meta(&partial.join(META), &meta(&session, &id)).expect("meta");
        let error = create(&home, &partial, &shelf.dir(&session, &id), Some(100 << 10))
            .expect_err("over the quota");
        assert!(matches!(error, WorkerError::Quota { .. }), "{error}");
        assert_eq!(error.exit_code(), EXIT_QUOTA);
        assert!(shelf.list(&session).expect("list").is_empty());
    }

    #[test]
    fn names_and_ids_are_checked() {
        assert_eq!(
            SnapshotName::parse("  before refactor ")
                .expect("ok")
                .as_str(),
            "before refactor"
        );
        assert_eq!(SnapshotName::parse(" "), Err(InvalidSnapshotName::Empty));
        assert_eq!(
            SnapshotName::parse("a\nb"),
            Err(InvalidSnapshotName::ControlCharacter)
        );
        assert_eq!(
            SnapshotName::parse(&"x".repeat(81)),
            Err(InvalidSnapshotName::Long { found: 81 })
        );
        let id = SnapshotId::random().expect("id");
        assert_eq!(id.as_str().parse::<SnapshotId>(), Ok(id.clone()));
        assert!("s../etc".parse::<SnapshotId>().is_err());
        assert!("abc".parse::<SnapshotId>().is_err());
        let session: SessionId = "ab12".parse().expect("id");
        let unit = unit_name(true, &session, &id);
        assert_eq!(unit_session(&unit), Some(session.clone()));
        assert_eq!(
            unit_session(&unit_name(false, &session, &id)),
            Some(session)
        );
        assert_eq!(
            crate::render::SessionNames::parse(&unit),
            None,
            "not a session's unit"
        );
        assert!(leftover_name(".partial-s123"));
        assert!(!leftover_name("s12345678901"));
    }
}
