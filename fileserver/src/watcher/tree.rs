//! The watched tree: one inotify instance with a watch on every directory beneath the root,
//! up to a cap, kept up to date as directories come, go and move.
//!
//! Confinement: each directory is opened with [`Root::open_real`] (`openat2` beneath the root,
//! following no symlink in any component) and the watch is added on that open descriptor
//! (`/proc/self/fd/N`), never on a path the kernel would resolve again. So a symlink, or a
//! directory swapped for one, never makes the watcher watch anything outside the root — or
//! even a directory inside it under a second name.
//!
//! The walk is breadth first, and directories that usually hold the most (names starting with
//! `.`, and [`DEFERRED`]) are walked after all the others: below the cap everything is
//! watched; over it, those are what is left out, and [`Tree::status`] names them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use nix::sys::stat::{SFlag, fstatat};

use super::Status;
use super::coalesce::Coalescer;
use crate::confine::{RelPath, Root};

/// Directory names walked after all others (with every name starting with `.`): where
/// dependencies and build output live. Watched like the rest while under the cap.
pub const DEFERRED: &[&[u8]] = &[b"node_modules", b"target", b"__pycache__", b"venv"];

/// Most prefixes [`Status::unwatched`] names; past it, the root (`""`): everything.
pub const MAX_UNWATCHED: usize = 64;

/// What a watch reports: entries created, deleted, moved, written or with changed attributes,
/// and the directory itself deleted. `IN_ONLYDIR`: only ever a directory.
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_ONLYDIR
        | IN_EXCL_UNLINK
}

/// `IN_EXCL_UNLINK` (inotify(7)), which nix does not name: no events from files that were
/// unlinked while open (a process writing a temporary file it deleted).
const IN_EXCL_UNLINK: AddWatchFlags = AddWatchFlags::from_bits_retain(0x0400_0000);

fn is_deferred(name: &[u8]) -> bool {
    name.starts_with(b".") || DEFERRED.contains(&name)
}

/// Why a walk stopped before the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Full {
    /// Our own cap (`--watch-max-dirs`).
    Cap,
    /// The kernel's (`fs.inotify.max_user_watches`).
    Kernel,
}

/// The watches and what they stand for.
pub struct Tree {
    inotify: Inotify,
    root: Root,
    max: usize,
    by_wd: HashMap<WatchDescriptor, RelPath>,
    by_path: BTreeMap<Vec<u8>, WatchDescriptor>,
    /// Prefixes below which some directory is not watched (`""`: anything may be).
    unwatched: BTreeSet<Vec<u8>>,
    full: Option<Full>,
    /// Events were lost: folders may have come that no event announced; walk everything again.
    rescan_due: bool,
}

impl Tree {
    /// A tree with no watches yet, on its own inotify instance (non-blocking).
    pub fn new(root: Root, max: usize) -> Result<Tree, Errno> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        Ok(Tree {
            inotify,
            root,
            max,
            by_wd: HashMap::new(),
            by_path: BTreeMap::new(),
            unwatched: BTreeSet::new(),
            full: None,
            rescan_due: false,
        })
    }

    /// The inotify descriptor, to wait on.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// How many directories are watched.
    pub fn watched(&self) -> usize {
        self.by_wd.len()
    }

    /// What the watch covers now.
    pub fn status(&self) -> Status {
        let reason = match self.full {
            _ if self.unwatched.is_empty() => None,
            Some(Full::Kernel) => Some(
                "the kernel's limit of inotify watches (fs.inotify.max_user_watches) is reached"
                    .to_owned(),
            ),
            Some(Full::Cap) => Some(format!(
                "more folders than the watch limit of {} (--watch-max-dirs)",
                self.max
            )),
            None => Some("some folders cannot be watched (permissions, or no /proc)".to_owned()),
        };
        Status {
            complete: self.unwatched.is_empty(),
            watched: self.watched(),
            max: self.max,
            unwatched: self
                .unwatched
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
            reason,
        }
    }

    /// Watches `start` and every directory beneath it, breadth first, deferred names last,
    /// until the cap.
    pub fn walk(&mut self, start: &RelPath) {
        self.walk_from(start, false);
    }

    /// Walks the whole tree again, into folders already watched too: after lost events, the
    /// folders made meanwhile are found (and watched, under the cap).
    pub fn rescan(&mut self) {
        let started = Instant::now();
        self.walk_from(&RelPath::root(), true);
        tracing::info!(
            watched = self.watched(),
            ms = started.elapsed().as_millis(),
            "events were lost; walked the workspace again"
        );
    }

    fn walk_from(&mut self, start: &RelPath, rescan: bool) {
        let mut queue = VecDeque::from([start.clone()]);
        let mut deferred: VecDeque<RelPath> = VecDeque::new();
        // The deferred subtree being walked, once the others are done.
        let mut current: Option<RelPath> = None;
        loop {
            let dir = if let Some(dir) = queue.pop_front() {
                dir
            } else if let Some(dir) = deferred.pop_front() {
                current = Some(dir.clone());
                dir
            } else {
                return;
            };
            let children = match self.watch_dir(&dir, rescan) {
                Ok(children) => children,
                // A rescan goes on through the folders already watched.
                Err(full) if rescan => {
                    self.full = Some(full);
                    self.mark(&dir);
                    continue;
                }
                Err(full) => {
                    self.full = Some(full);
                    self.mark(&dir);
                    self.left_out(start, current.as_ref(), &deferred);
                    return;
                }
            };
            for name in children {
                let child = dir.join(&name);
                // Paths waiting are bounded by what the cap could still take (a rescan's by
                // the cap: they are mostly watched already).
                let room = if rescan {
                    self.max
                } else {
                    self.max.saturating_sub(self.by_wd.len())
                };
                if current.is_none() && is_deferred(&name) && deferred.len() < room {
                    deferred.push_back(child);
                } else if current.is_none() && is_deferred(&name) {
                    self.full = Some(Full::Cap);
                    self.mark(&child);
                } else if queue.len() < room {
                    queue.push_back(child);
                } else {
                    self.full = Some(Full::Cap);
                    self.mark(current.as_ref().unwrap_or(start));
                }
            }
        }
    }

    /// The walk of `start` stopped: what it did not reach.
    fn left_out(
        &mut self,
        start: &RelPath,
        current: Option<&RelPath>,
        deferred: &VecDeque<RelPath>,
    ) {
        match current {
            // Still among the others: anything below `start` may be missing.
            None => self.mark(start),
            Some(current) => {
                self.mark(current);
                for dir in deferred {
                    self.mark(dir);
                }
            }
        }
    }

    /// Records `dir` as (partly) unwatched: as the deferred directory it lies in, if any (so
    /// that `node_modules/a`, `node_modules/b`, … are one prefix), bounded in number.
    fn mark(&mut self, dir: &RelPath) {
        if self.unwatched.contains(&b""[..]) {
            return;
        }
        let mut prefix = Vec::new();
        for part in dir.components() {
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(part);
            if is_deferred(part) {
                break;
            }
        }
        if self.unwatched.iter().any(|p| within(&prefix, p)) {
            return;
        }
        self.unwatched.retain(|p| !within(p, &prefix));
        self.unwatched.insert(prefix);
        if self.unwatched.len() > MAX_UNWATCHED {
            self.unwatched.clear();
            self.unwatched.insert(Vec::new());
        }
    }

    /// Adds a watch on `dir` and returns the names of its subdirectories. A directory that
    /// cannot be opened (gone, a symlink now, no permission) is skipped; a full table (ours or
    /// the kernel's) is an error. With `known`, a directory already watched under this path is
    /// read too (a rescan).
    fn watch_dir(&mut self, dir: &RelPath, known: bool) -> Result<Vec<Vec<u8>>, Full> {
        let watched_here = self.by_path.contains_key(dir.as_bytes());
        if !watched_here && self.by_wd.len() >= self.max {
            return Err(Full::Cap);
        }
        let fd = match self
            .root
            .open_real(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
        {
            Ok(fd) => fd,
            // Gone, or not a directory (a symlink, swapped in): nothing to watch there.
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::EXDEV) => {
                return Ok(Vec::new());
            }
            // There, but not for us (permissions): said so, so that clients poll it.
            Err(e) => {
                tracing::debug!(path = %dir.display(), error = %e, "cannot watch");
                self.mark(dir);
                return Ok(Vec::new());
            }
        };
        // The descriptor's own magic link: the directory just opened, not a path again.
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let wd = match self.inotify.add_watch(link.as_str(), mask()) {
            Ok(wd) => wd,
            Err(Errno::ENOSPC) => return Err(Full::Kernel),
            // No `/proc` to name the descriptor by, or the kernel refuses: clients poll it.
            Err(e) => {
                tracing::debug!(path = %dir.display(), error = %e, "cannot watch");
                self.mark(dir);
                return Ok(Vec::new());
            }
        };
        match self.by_wd.get(&wd) {
            // Watched already under this path: a rescan reads it again.
            Some(path) if known && path == dir => {}
            // Under this path (a walk met it twice) or another one (a bind mount): its
            // subdirectories are watched or queued already.
            Some(_) => return Ok(Vec::new()),
            None => {
                if let Some(old) = self.by_path.insert(dir.as_bytes().to_vec(), wd) {
                    // A directory replaced by another of the same name before its removal
                    // was read.
                    self.by_wd.remove(&old);
                    let _ = self.inotify.rm_watch(old);
                }
                self.by_wd.insert(wd, dir.clone());
            }
        }
        let Ok(mut dir_stream) = Dir::from_fd(fd) else {
            return Ok(Vec::new());
        };
        let mut names = Vec::new();
        let mut unknown = Vec::new();
        for entry in dir_stream.iter() {
            let Ok(entry) = entry else { break };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            match entry.file_type() {
                Some(Type::Directory) => names.push(name.to_vec()),
                None => unknown.push(name.to_vec()),
                Some(_) => {}
            }
        }
        // File systems without d_type: ask, without following links.
        for name in unknown {
            let st = fstatat(
                dir_stream.as_fd(),
                OsStr::from_bytes(&name),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            );
            if st.is_ok_and(|st| {
                SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
            }) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Removes the watches of `dir` and everything beneath it (moved away).
    fn unwatch(&mut self, dir: &RelPath) {
        let prefix = dir.as_bytes();
        let gone: Vec<(Vec<u8>, WatchDescriptor)> = self
            .by_path
            .range(prefix.to_vec()..)
            .take_while(|(path, _)| path.starts_with(prefix))
            .filter(|(path, _)| within(path, prefix))
            .map(|(path, wd)| (path.clone(), *wd))
            .collect();
        for (path, wd) in gone {
            self.by_path.remove(&path);
            self.by_wd.remove(&wd);
            let _ = self.inotify.rm_watch(wd);
        }
        if !prefix.is_empty() {
            self.unwatched.retain(|p| !within(p, prefix));
        }
    }

    /// Reads what the kernel has queued (without waiting) into `changes`. Returns false when
    /// nothing was there.
    pub fn read(&mut self, changes: &mut Coalescer) -> bool {
        let mut any = false;
        // Bounded, so that batches still go out while a storm of events lasts.
        for _ in 0..64 {
            match self.inotify.read_events() {
                Ok(events) => {
                    any = true;
                    let now = Instant::now();
                    for event in events {
                        self.handle(event, changes, now);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "reading inotify events");
                    self.overflowed(changes, Instant::now());
                    break;
                }
            }
        }
        if self.rescan_due {
            self.rescan_due = false;
            self.rescan();
        }
        any
    }

    /// Events were lost: clients resync, and the tree is walked again (after what is queued).
    pub fn overflowed(&mut self, changes: &mut Coalescer, now: Instant) {
        changes.lost(now);
        self.rescan_due = true;
    }

    /// One event: what changed goes to `changes`; new directories are watched, directories
    /// moved away are not any more.
    pub fn handle(&mut self, event: InotifyEvent, changes: &mut Coalescer, now: Instant) {
        let mask = event.mask;
        if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            self.overflowed(changes, now);
            return;
        }
        if mask.contains(AddWatchFlags::IN_IGNORED) {
            // The watch is gone (its directory removed, or we removed it).
            if let Some(path) = self.by_wd.remove(&event.wd) {
                if self.by_path.get(path.as_bytes()) == Some(&event.wd) {
                    self.by_path.remove(path.as_bytes());
                }
            }
            return;
        }
        let Some(dir) = self.by_wd.get(&event.wd).cloned() else {
            return;
        };
        if mask.contains(AddWatchFlags::IN_DELETE_SELF) {
            changes.record(dir.as_bytes(), None, now);
            return;
        }
        let Some(name) = event.name else {
            return; // The directory's own attributes: its listing did not change.
        };
        let name = name.as_bytes();
        changes.record(dir.as_bytes(), Some(name), now);
        if !mask.contains(AddWatchFlags::IN_ISDIR) {
            return;
        }
        let child = dir.join(name);
        if mask.intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO) {
            self.walk(&child);
        } else if mask.contains(AddWatchFlags::IN_MOVED_FROM) {
            // Its watches would go on reporting under the old path: drop them; where it went,
            // an IN_MOVED_TO (if still beneath the root) walks it again.
            self.unwatch(&child);
            changes.record(child.as_bytes(), None, now);
        }
    }
}

/// Whether `path` is `prefix` or lies below it (`""` holds everything).
fn within(path: &[u8], prefix: &[u8]) -> bool {
    prefix.is_empty()
        || (path.starts_with(prefix) && (path.len() == prefix.len() || path[prefix.len()] == b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watcher::coalesce::{Batch, Limits};

    #[test]
    fn after_lost_events_the_folders_made_meanwhile_are_found() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("a")).expect("mkdir");
        let mut tree = Tree::new(Root::new(tmp.path()).expect("root"), 100).expect("inotify");
        tree.walk(&RelPath::root());
        assert_eq!(tree.watched(), 2);
        std::fs::create_dir_all(tmp.path().join("a/b/c")).expect("mkdir");
        std::fs::create_dir(tmp.path().join("d")).expect("mkdir");
        // The events that announced them are lost.
        while tree.inotify.read_events().is_ok_and(|e| !e.is_empty()) {}
        assert_eq!(tree.watched(), 2);
        let mut changes = Coalescer::new(Limits::default());
        let now = Instant::now();
        tree.overflowed(&mut changes, now);
        tree.read(&mut changes);
        assert_eq!(tree.watched(), 5, "the root, a, a/b, a/b/c and d");
        assert_eq!(
            changes.flush(now + Duration::from_secs(1)),
            Some(Batch::Resync)
        );
    }

    #[test]
    fn a_rescan_at_the_cap_still_goes_through_what_is_watched() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("a/b")).expect("mkdir");
        let mut tree = Tree::new(Root::new(tmp.path()).expect("root"), 3).expect("inotify");
        tree.walk(&RelPath::root());
        assert!(tree.status().complete);
        std::fs::create_dir(tmp.path().join("x")).expect("mkdir");
        std::fs::create_dir(tmp.path().join("a/b/y")).expect("mkdir");
        while tree.inotify.read_events().is_ok_and(|e| !e.is_empty()) {}
        tree.rescan();
        assert_eq!(tree.watched(), 3);
        assert_eq!(tree.status().unwatched, ["a/b/y", "x"]);
    }

    #[test]
    fn prefixes() {
        assert!(within(b"a/b", b"a"));
        assert!(within(b"a", b"a"));
        assert!(within(b"a", b""));
        assert!(!within(b"ab", b"a"));
        assert!(!within(b"a", b"a/b"));
    }
}
