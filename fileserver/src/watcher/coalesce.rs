//! Coalescing: file-system events in, "these directories changed" out, bounded in time,
//! rate and memory. Pure: the caller passes the clock, so tests run on made-up instants.
//!
//! A directory's first event is reported [`Limits::window`] later (the agent's create, writes
//! and close of one file become one change); a directory reported less than
//! [`Limits::cooldown`] ago waits until then (a log written all the time is one change a
//! second, not a stream). Names are kept per directory up to [`Limits::names_per_dir`] (then
//! "many": the client re-lists it all the same). Past [`Limits::dirs`] pending directories,
//! or when the kernel lost events, everything pending is dropped for one [`Batch::Resync`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The bounds of a [`Coalescer`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long after its first event a directory is reported.
    pub window: Duration,
    /// The least time between two reports of one directory.
    pub cooldown: Duration,
    /// Most directories pending at once; more become a resync.
    pub dirs: usize,
    /// Most names kept for one directory; more become "many".
    pub names_per_dir: usize,
    /// Most names kept in all; more become "many" for the directory that went over.
    pub names_total: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            window: Duration::from_millis(100),
            cooldown: Duration::from_secs(1),
            dirs: 128,
            names_per_dir: 64,
            names_total: 1024,
        }
    }
}

/// One directory whose entries changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirChange {
    /// The directory, relative to the root (`""` is the root; lossy UTF-8).
    pub path: String,
    /// The names that changed in it (sorted, lossy UTF-8), or `None` for "many" (or the
    /// directory itself: removed or moved away).
    pub names: Option<Vec<String>>,
}

/// What a flush hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Batch {
    /// These directories changed.
    Changes(Vec<DirChange>),
    /// Events were lost or too many directories changed at once: re-list everything.
    Resync,
}

#[derive(Debug)]
struct Pending {
    since: Instant,
    /// `None`: many (or the directory itself).
    names: Option<BTreeSet<Vec<u8>>>,
}

/// Events in, batches out. See the module's documentation.
#[derive(Debug)]
pub struct Coalescer {
    limits: Limits,
    pending: BTreeMap<Vec<u8>, Pending>,
    names_held: usize,
    /// Since when a resync is due (events were lost).
    lost_since: Option<Instant>,
    /// When each directory was last reported (only those within the cooldown are kept).
    reported: HashMap<Vec<u8>, Instant>,
}

impl Coalescer {
    /// An empty coalescer.
    pub fn new(limits: Limits) -> Self {
        Coalescer {
            limits,
            pending: BTreeMap::new(),
            names_held: 0,
            lost_since: None,
            reported: HashMap::new(),
        }
    }

    /// Records that `name` changed in `dir` (a `/`-separated path from the root), or with no
    /// name, that the directory itself did (removed, moved away).
    pub fn record(&mut self, dir: &[u8], name: Option<&[u8]>, now: Instant) {
        if self.lost_since.is_some() {
            return; // The resync that is due covers it.
        }
        if !self.pending.contains_key(dir) && self.pending.len() >= self.limits.dirs {
            self.lost(now);
            return;
        }
        let pending = self.pending.entry(dir.to_vec()).or_insert_with(|| Pending {
            since: now,
            names: Some(BTreeSet::new()),
        });
        let Some(names) = &mut pending.names else {
            return;
        };
        let Some(name) = name else {
            self.names_held -= names.len();
            pending.names = None;
            return;
        };
        if names.contains(name) {
            return;
        }
        if names.len() >= self.limits.names_per_dir || self.names_held >= self.limits.names_total {
            self.names_held -= names.len();
            pending.names = None;
        } else {
            names.insert(name.to_vec());
            self.names_held += 1;
        }
    }

    /// Records that events were lost (the kernel's queue overflowed): what is pending is
    /// dropped for one resync.
    pub fn lost(&mut self, now: Instant) {
        self.lost_since.get_or_insert(now);
        self.pending.clear();
        self.names_held = 0;
    }

    fn due(&self, dir: &[u8], pending: &Pending) -> Instant {
        let first = pending.since + self.limits.window;
        match self.reported.get(dir) {
            Some(at) => first.max(*at + self.limits.cooldown),
            None => first,
        }
    }

    /// When the next batch is due, if anything is pending.
    pub fn deadline(&self) -> Option<Instant> {
        if let Some(since) = self.lost_since {
            return Some(since + self.limits.window);
        }
        self.pending
            .iter()
            .map(|(dir, pending)| self.due(dir, pending))
            .min()
    }

    /// The batch due at `now`, if any: every directory whose time has come.
    pub fn flush(&mut self, now: Instant) -> Option<Batch> {
        if let Some(since) = self.lost_since {
            if now < since + self.limits.window {
                return None;
            }
            self.lost_since = None;
            self.reported.clear();
            return Some(Batch::Resync);
        }
        let cooldown = self.limits.cooldown;
        self.reported.retain(|_, at| *at + cooldown > now);
        let due: Vec<Vec<u8>> = self
            .pending
            .iter()
            .filter(|(dir, pending)| self.due(dir, pending) <= now)
            .map(|(dir, _)| dir.clone())
            .collect();
        if due.is_empty() {
            return None;
        }
        let mut changes = Vec::with_capacity(due.len());
        for dir in due {
            let Some(pending) = self.pending.remove(&dir) else {
                continue;
            };
            let names = pending.names.map(|names| {
                self.names_held -= names.len();
                names.iter().map(|n| lossy(n)).collect()
            });
            changes.push(DirChange {
                path: lossy(&dir),
                names,
            });
            self.reported.insert(dir, now);
        }
        Some(Batch::Changes(changes))
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn limits() -> Limits {
        Limits {
            window: 100 * MS,
            cooldown: 1000 * MS,
            dirs: 3,
            names_per_dir: 2,
            names_total: 3,
        }
    }

    fn change(path: &str, names: Option<&[&str]>) -> DirChange {
        DirChange {
            path: path.to_owned(),
            names: names.map(|n| n.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    #[test]
    fn one_files_create_writes_and_close_are_one_change_after_the_window() {
        let t = Instant::now();
        let mut c = Coalescer::new(limits());
        assert_eq!(c.deadline(), None);
        c.record(b"src", Some(b"main.rs"), t);
        c.record(b"src", Some(b"main.rs"), t + 5 * MS);
        c.record(b"src", Some(b"main.rs"), t + 90 * MS);
        // Later events do not push the report back: it is due a window after the first.
        assert_eq!(c.deadline(), Some(t + 100 * MS));
        assert_eq!(c.flush(t + 99 * MS), None);
        assert_eq!(
            c.flush(t + 100 * MS),
            Some(Batch::Changes(vec![change("src", Some(&["main.rs"]))]))
        );
        assert_eq!(c.deadline(), None);
        assert_eq!(c.flush(t + 200 * MS), None);
    }

    #[test]
    fn a_directory_is_reported_at_most_once_per_cooldown() {
        let t = Instant::now();
        let mut c = Coalescer::new(limits());
        c.record(b"logs", Some(b"app.log"), t);
        assert!(c.flush(t + 100 * MS).is_some());
        // Written again at once: held until a second after the last report.
        c.record(b"logs", Some(b"app.log"), t + 150 * MS);
        // Another directory is not held by it.
        c.record(b"", Some(b"notes.md"), t + 150 * MS);
        assert_eq!(c.deadline(), Some(t + 250 * MS));
        assert_eq!(
            c.flush(t + 250 * MS),
            Some(Batch::Changes(vec![change("", Some(&["notes.md"]))]))
        );
        assert_eq!(c.deadline(), Some(t + 1100 * MS));
        assert_eq!(c.flush(t + 1099 * MS), None);
        assert_eq!(
            c.flush(t + 1100 * MS),
            Some(Batch::Changes(vec![change("logs", Some(&["app.log"]))]))
        );
        // A quiet directory is reported a window after its next event again.
        c.record(b"logs", Some(b"app.log"), t + 5000 * MS);
        assert_eq!(c.deadline(), Some(t + 5100 * MS));
    }

    #[test]
    fn names_are_bounded_per_directory_and_in_all() {
        let t = Instant::now();
        let mut c = Coalescer::new(limits());
        c.record(b"a", Some(b"1"), t);
        c.record(b"a", Some(b"2"), t);
        c.record(b"a", Some(b"3"), t); // over 2 for one directory: many
        c.record(b"a", Some(b"4"), t);
        c.record(b"b", Some(b"1"), t);
        c.record(b"b", Some(b"2"), t);
        c.record(b"c", Some(b"1"), t);
        c.record(b"c", Some(b"2"), t); // over 3 in all: many
        assert_eq!(
            c.flush(t + 100 * MS),
            Some(Batch::Changes(vec![
                change("a", None),
                change("b", Some(&["1", "2"])),
                change("c", None),
            ]))
        );
        // What was held is given back: names are kept again.
        c.record(b"d", Some(b"x"), t + 2000 * MS);
        assert_eq!(
            c.flush(t + 2100 * MS),
            Some(Batch::Changes(vec![change("d", Some(&["x"]))]))
        );
    }

    #[test]
    fn the_directory_itself_is_reported_without_names() {
        let t = Instant::now();
        let mut c = Coalescer::new(limits());
        c.record(b"gone", Some(b"f"), t);
        c.record(b"gone", None, t);
        c.record(b"gone", Some(b"g"), t);
        assert_eq!(
            c.flush(t + 100 * MS),
            Some(Batch::Changes(vec![change("gone", None)]))
        );
    }

    #[test]
    fn too_many_directories_or_lost_events_are_one_resync() {
        let t = Instant::now();
        let mut c = Coalescer::new(limits());
        for dir in [&b"a"[..], b"b", b"c"] {
            c.record(dir, Some(b"x"), t);
        }
        c.record(b"d", Some(b"x"), t + 10 * MS); // a fourth: over the bound
        c.record(b"e", Some(b"x"), t + 20 * MS);
        assert_eq!(c.deadline(), Some(t + 110 * MS));
        assert_eq!(c.flush(t + 109 * MS), None);
        assert_eq!(c.flush(t + 110 * MS), Some(Batch::Resync));
        assert_eq!(c.flush(t + 500 * MS), None);

        c.record(b"a", Some(b"x"), t + 1000 * MS);
        c.lost(t + 1010 * MS);
        assert_eq!(c.flush(t + 1110 * MS), Some(Batch::Resync));
        assert_eq!(c.deadline(), None);
    }

    #[test]
    fn names_that_are_not_utf8_are_shown_lossily() {
        let t = Instant::now();
        let mut c = Coalescer::new(limits());
        c.record(b"d\xff", Some(b"n\xfe"), t);
        assert_eq!(
            c.flush(t + 100 * MS),
            Some(Batch::Changes(vec![change(
                "d\u{fffd}",
                Some(&["n\u{fffd}"])
            )]))
        );
    }
}
