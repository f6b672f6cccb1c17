//! Live changes: the workspace watched with inotify and streamed to clients as server-sent
//! events (`GET /api/watch`), so that a file tree follows what the agent and the terminal do
//! without polling.
//!
//! One watcher serves every client: the first subscriber starts it (a thread of its own, see
//! [`tree`]), the last one leaving stops it (its inotify instance, and so every watch, goes).
//! Events are coalesced per directory ([`coalesce`]) and broadcast on a bounded channel: a
//! client that does not keep up loses its place and is told to resync, never buffered for
//! without bound. The protocol is in `fileserver/README.md` ("watch").

pub mod coalesce;
pub mod tree;

use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::confine::{RelPath, Root};
use coalesce::{Batch, Coalescer, DirChange, Limits};
use tree::Tree;

/// Default cap on watched directories (`--watch-max-dirs`).
pub const DEFAULT_MAX_DIRS: usize = 10_000;
/// Batches a subscriber may fall behind before it is told to resync.
pub const BACKLOG: usize = 32;
/// How often an idle stream carries a comment, so that proxies keep it open.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// What the watch covers: the first event of every stream, and again when it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Every directory beneath the root is watched.
    pub complete: bool,
    /// How many directories are watched.
    pub watched: usize,
    /// The cap.
    pub max: usize,
    /// Prefixes below which some directories are not watched (`""`: the root, anything);
    /// a client polls the folders it shows there. Empty when complete.
    pub unwatched: Vec<String>,
    /// Why it is not complete, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Status {
    /// Nothing is watched, for `reason`.
    fn nothing(max: usize, reason: String) -> Status {
        Status {
            complete: false,
            watched: 0,
            max,
            unwatched: vec![String::new()],
            reason: Some(reason),
        }
    }

    /// The same but for the number of directories watched (which alone is not news).
    fn same_coverage(&self, other: &Status) -> bool {
        self.complete == other.complete
            && self.unwatched == other.unwatched
            && self.reason == other.reason
    }
}

/// What the watcher broadcasts.
#[derive(Debug, Clone)]
pub enum Message {
    /// A `change` event's data (JSON, serialized once for every subscriber).
    Change(Arc<str>),
    /// Events were lost: re-list everything.
    Resync,
}

#[derive(Serialize)]
struct ChangeData<'a> {
    dirs: &'a [DirChange],
}

/// The shared watcher, started on demand.
pub struct Hub {
    max_dirs: usize,
    limits: Limits,
    running: Mutex<Weak<Running>>,
}

/// A running watcher; dropped with its last subscriber.
struct Running {
    events: broadcast::Sender<Message>,
    status: watch::Receiver<Option<Status>>,
    /// The write end of the thread's stop pipe: closing it ends the thread.
    _stop: Option<OwnedFd>,
}

/// One client's view of the watcher.
pub struct Subscription {
    /// Changes and resyncs, in order.
    pub events: broadcast::Receiver<Message>,
    /// What the watch covers; `None` until the first walk is done.
    pub status: watch::Receiver<Option<Status>>,
    /// Held, not read: the watcher runs while a subscription does.
    #[allow(dead_code)]
    running: Arc<Running>,
}

impl Hub {
    /// A hub watching at most `max_dirs` directories (0: watching is off).
    pub fn new(max_dirs: usize) -> Hub {
        Hub::with_limits(max_dirs, Limits::default())
    }

    /// [`Hub::new`] with other coalescing bounds.
    pub fn with_limits(max_dirs: usize, limits: Limits) -> Hub {
        Hub {
            max_dirs,
            limits,
            running: Mutex::new(Weak::new()),
        }
    }

    /// Subscribes to the changes beneath `root`, starting the watcher if none runs.
    pub fn subscribe(&self, root: &Root) -> Subscription {
        let mut slot = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let running = slot.upgrade().unwrap_or_else(|| {
            let running = Arc::new(Running::start(root, self.max_dirs, self.limits));
            *slot = Arc::downgrade(&running);
            running
        });
        Subscription {
            events: running.events.subscribe(),
            status: running.status.clone(),
            running,
        }
    }
}

impl Running {
    fn start(root: &Root, max: usize, limits: Limits) -> Running {
        let (events, _) = broadcast::channel(BACKLOG);
        let (status_tx, status) = watch::channel(None);
        let failed = |reason: String| {
            tracing::warn!(%reason, "not watching the workspace; clients poll");
            status_tx.send_replace(Some(Status::nothing(max, reason)));
        };
        if max == 0 {
            failed("watching is off (--watch-max-dirs 0)".to_owned());
            return Running {
                events,
                status,
                _stop: None,
            };
        }
        let started = (|| -> Result<OwnedFd, String> {
            let root = root
                .try_clone()
                .map_err(|e| format!("duplicating the root: {e}"))?;
            let tree = Tree::new(root, max).map_err(|e| format!("inotify is unavailable: {e}"))?;
            let (stop_rx, stop_tx) =
                nix::unistd::pipe().map_err(|e| format!("creating a pipe: {e}"))?;
            let events = events.clone();
            let status_tx = status_tx.clone();
            std::thread::Builder::new()
                .name("octo-watch".to_owned())
                .spawn(move || run(tree, &stop_rx, &events, &status_tx, limits))
                .map_err(|e| format!("starting the watcher thread: {e}"))?;
            Ok(stop_tx)
        })();
        match started {
            Ok(stop) => Running {
                events,
                status,
                _stop: Some(stop),
            },
            Err(reason) => {
                failed(reason);
                Running {
                    events,
                    status,
                    _stop: None,
                }
            }
        }
    }
}

/// The watcher thread: the first walk, then events until the stop pipe closes.
fn run(
    mut tree: Tree,
    stop: &OwnedFd,
    events: &broadcast::Sender<Message>,
    status: &watch::Sender<Option<Status>>,
    limits: Limits,
) {
    let started = Instant::now();
    tree.walk(&RelPath::root());
    let mut published = tree.status();
    tracing::info!(
        watched = published.watched,
        complete = published.complete,
        ms = started.elapsed().as_millis(),
        "watching the workspace"
    );
    status.send_replace(Some(published.clone()));
    let mut changes = Coalescer::new(limits);
    loop {
        let timeout = changes.deadline().map_or(PollTimeout::NONE, |due| {
            // Rounded up: waking before the deadline would only poll again.
            let wait = due.saturating_duration_since(Instant::now());
            let ms = wait.as_micros().div_ceil(1000);
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        });
        let mut fds = [
            PollFd::new(tree.fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::error!(error = %e, "waiting for inotify events; the watcher stops");
                let reason = format!("the watcher failed: {e}");
                status.send_replace(Some(Status::nothing(published.max, reason)));
                return;
            }
        }
        if fds[1].any().unwrap_or(true) {
            tracing::debug!("no subscribers left: the watcher stops");
            return;
        }
        if fds[0].any().unwrap_or(false) {
            tree.read(&mut changes);
            let now = tree.status();
            if now.same_coverage(&published) {
                // Only the count moved: kept for the next subscriber, not announced.
                status.send_if_modified(|s| {
                    *s = Some(now.clone());
                    false
                });
            } else {
                tracing::info!(complete = now.complete, unwatched = ?now.unwatched, "the watch changed");
                status.send_replace(Some(now.clone()));
                published = now;
            }
        }
        while let Some(batch) = changes.flush(Instant::now()) {
            let message = match batch {
                Batch::Changes(dirs) => match serde_json::to_string(&ChangeData { dirs: &dirs }) {
                    Ok(json) => Message::Change(json.into()),
                    Err(_) => Message::Resync,
                },
                Batch::Resync => Message::Resync,
            };
            // No receiver (the last one just left) is not an error.
            let _ = events.send(message);
        }
    }
}

/// The `GET /api/watch` stream of one subscriber: `status` first (once the watch is set up),
/// then `change` and `resync` events, and `status` again whenever the coverage changes; a
/// comment every [`HEARTBEAT`]. Ends when `stopping` turns true (the server shuts down).
pub fn sse(
    subscription: Subscription,
    stopping: watch::Receiver<bool>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(events(subscription, stopping))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("keep-alive"))
}

/// One item of a subscriber's stream, before it is an SSE event.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// `event: status`: what the watch covers.
    Status(Status),
    /// `event: change`: directories whose entries changed (JSON).
    Change(Arc<str>),
    /// `event: resync`: events were lost; re-list everything.
    Resync,
}

impl Out {
    fn into_event(self) -> Event {
        match self {
            Out::Status(status) => Event::default()
                .event("status")
                .json_data(&status)
                .unwrap_or_else(|_| Event::default().event("resync").data("{}")),
            Out::Change(data) => Event::default().event("change").data(&*data),
            Out::Resync => Event::default().event("resync").data("{}"),
        }
    }
}

/// The events of [`sse`], as a stream.
pub fn events(
    subscription: Subscription,
    stopping: watch::Receiver<bool>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(Outs::new(subscription, stopping), |mut outs| async move {
        let out = outs.next().await?;
        Some((Ok(out.into_event()), outs))
    })
}

/// A subscriber's stream as [`Out`]s: `status` first, once the watch is set up; then changes
/// and resyncs (a subscriber that fell more than [`BACKLOG`] batches behind gets one resync
/// instead of what it missed), and `status` again when the coverage changes.
pub struct Outs {
    sub: Subscription,
    stopping: watch::Receiver<bool>,
    /// The coverage last sent; `None` before the first status.
    sent: Option<Status>,
    status_open: bool,
}

impl Outs {
    /// The stream of `subscription`, ending when `stopping` turns true.
    pub fn new(subscription: Subscription, stopping: watch::Receiver<bool>) -> Outs {
        Outs {
            sub: subscription,
            stopping,
            sent: None,
            status_open: true,
        }
    }

    /// The next item, or `None` at the end.
    pub async fn next(&mut self) -> Option<Out> {
        loop {
            if *self.stopping.borrow() {
                return None;
            }
            let current = self.sub.status.borrow_and_update().clone();
            if let Some(status) = current {
                if self.sent.as_ref().is_none_or(|s| !s.same_coverage(&status)) {
                    self.sent = Some(status.clone());
                    return Some(Out::Status(status));
                }
            }
            let started = self.sent.is_some();
            if !self.status_open && !started {
                // The watcher went before its first walk was done: say so, so that the client
                // polls.
                let status = Status::nothing(0, "the watcher stopped".to_owned());
                self.sent = Some(status.clone());
                return Some(Out::Status(status));
            }
            tokio::select! {
                biased;
                changed = self.stopping.changed() => {
                    if changed.is_err() {
                        return None; // The server is gone.
                    }
                }
                changed = self.sub.status.changed(), if self.status_open => {
                    if changed.is_err() {
                        self.status_open = false;
                    }
                }
                message = self.sub.events.recv(), if started => match message {
                    Ok(Message::Change(data)) => return Some(Out::Change(data)),
                    Ok(Message::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Some(Out::Resync);
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The watcher on real inotify over a temporary directory. No test measures time: each
    //! waits (up to a generous deadline) for what must come, and orders its steps by the
    //! events it has seen.

    use std::path::{Path, PathBuf};

    use serde_json::{Value, json};

    use super::*;

    /// Reports at once, so that each step's change is its own batch.
    fn fast() -> Limits {
        Limits {
            window: Duration::from_millis(5),
            cooldown: Duration::ZERO,
            ..Limits::default()
        }
    }

    struct Fixture {
        tmp: tempfile::TempDir,
        root: Root,
        hub: Hub,
        stopping: watch::Sender<bool>,
    }

    /// `<tmp>/root` (made by `layout`) watched with a cap of `max`; `<tmp>/outside` beside it.
    fn fixture(max: usize, layout: impl FnOnce(&Path)) -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("root")).expect("root");
        std::fs::create_dir_all(tmp.path().join("outside/deep")).expect("outside");
        layout(&tmp.path().join("root"));
        let root = Root::new(&tmp.path().join("root")).expect("open root");
        Fixture {
            tmp,
            root,
            hub: Hub::with_limits(max, fast()),
            stopping: watch::Sender::new(false),
        }
    }

    impl Fixture {
        fn path(&self, rel: &str) -> PathBuf {
            self.tmp.path().join("root").join(rel)
        }

        fn outs(&self) -> Outs {
            Outs::new(self.hub.subscribe(&self.root), self.stopping.subscribe())
        }
    }

    fn mkdirs(root: &Path, dirs: &[&str]) {
        for dir in dirs {
            std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        }
    }

    async fn next(outs: &mut Outs) -> Out {
        tokio::time::timeout(Duration::from_secs(30), outs.next())
            .await
            .expect("an event within 30 s")
            .expect("the stream goes on")
    }

    async fn status(outs: &mut Outs) -> Status {
        match next(outs).await {
            Out::Status(status) => status,
            other => panic!("expected a status, got {other:?}"),
        }
    }

    /// The next `change` event's directories (statuses are skipped; a resync is a failure).
    async fn change(outs: &mut Outs) -> Value {
        loop {
            match next(outs).await {
                Out::Change(data) => {
                    let data: Value = serde_json::from_str(&data).expect("JSON");
                    return data["dirs"].clone();
                }
                Out::Status(_) => {}
                Out::Resync => panic!("unexpected resync"),
            }
        }
    }

    /// Changes until one names `name` in `dir`; returns that change's directories.
    async fn change_naming(outs: &mut Outs, dir: &str, name: &str) -> Value {
        loop {
            let dirs = change(outs).await;
            let found = dirs.as_array().expect("dirs").iter().any(|d| {
                d["path"] == dir
                    && d["names"]
                        .as_array()
                        .is_some_and(|n| n.contains(&json!(name)))
            });
            if found {
                return dirs;
            }
        }
    }

    #[tokio::test]
    async fn a_written_file_is_one_change_of_its_folder() {
        let fx = fixture(100, |r| mkdirs(r, &["src"]));
        let mut outs = fx.outs();
        let ready = status(&mut outs).await;
        assert_eq!(
            ready,
            Status {
                complete: true,
                watched: 2,
                max: 100,
                unwatched: vec![],
                reason: None
            }
        );
        std::fs::write(fx.path("src/main.rs"), "fn main() {}").expect("write");
        assert_eq!(
            change(&mut outs).await,
            json!([{"path": "src", "names": ["main.rs"]}])
        );
    }

    #[tokio::test]
    async fn new_folders_are_watched_and_moved_ones_report_where_they_are() {
        let fx = fixture(100, |_| {});
        let mut outs = fx.outs();
        status(&mut outs).await;
        // One level at a time: a change naming a new folder comes after its watch was added.
        for (parent, dir) in [("", "a"), ("a", "a/b"), ("a/b", "a/b/c")] {
            std::fs::create_dir(fx.path(dir)).expect("mkdir");
            change_naming(&mut outs, parent, dir.rsplit('/').next().expect("name")).await;
        }
        std::fs::write(fx.path("a/b/c/f"), "1").expect("write");
        change_naming(&mut outs, "a/b/c", "f").await;

        std::fs::rename(fx.path("a"), fx.path("z")).expect("rename");
        let moved = change_naming(&mut outs, "", "z").await;
        // The old place is reported too (as the folder itself, gone), unless in a batch of
        // its own before.
        let _ = moved;
        std::fs::write(fx.path("z/b/c/g"), "2").expect("write");
        assert_eq!(
            change(&mut outs).await,
            json!([{"path": "z/b/c", "names": ["g"]}]),
            "the moved folder's changes carry its new path"
        );
    }

    #[tokio::test]
    async fn symlinks_never_lead_the_watch_elsewhere() {
        let fx = fixture(100, |r| {
            mkdirs(r, &["sub"]);
            std::os::unix::fs::symlink("sub", r.join("in")).expect("symlink");
            std::os::unix::fs::symlink("../outside", r.join("out")).expect("symlink");
            let abs = r.parent().expect("tmp").join("outside");
            std::os::unix::fs::symlink(abs, r.join("abs")).expect("symlink");
        });
        let mut outs = fx.outs();
        let ready = status(&mut outs).await;
        assert_eq!(
            ready.watched, 2,
            "the root and sub/, nothing through a link"
        );
        assert!(ready.complete);
        // Writes outside (reachable through two links) come first, then one inside: the first
        // change is the inside one alone.
        std::fs::write(fx.tmp.path().join("outside/x"), "x").expect("write");
        std::fs::write(fx.tmp.path().join("outside/deep/y"), "y").expect("write");
        std::fs::write(fx.path("marker"), "m").expect("write");
        assert_eq!(
            change(&mut outs).await,
            json!([{"path": "", "names": ["marker"]}])
        );
        // Through the inner link: reported under the real folder.
        std::fs::write(fx.path("in/z"), "z").expect("write");
        assert_eq!(
            change(&mut outs).await,
            json!([{"path": "sub", "names": ["z"]}])
        );
    }

    #[tokio::test]
    async fn node_modules_is_watched_while_under_the_cap() {
        let fx = fixture(100, |r| mkdirs(r, &["node_modules/p/q", ".cache/x", "src"]));
        let mut outs = fx.outs();
        let ready = status(&mut outs).await;
        assert!(ready.complete, "{ready:?}");
        assert_eq!(ready.watched, 7);
        std::fs::write(fx.path("node_modules/p/q/index.js"), "").expect("write");
        assert_eq!(
            change(&mut outs).await,
            json!([{"path": "node_modules/p/q", "names": ["index.js"]}])
        );
    }

    #[tokio::test]
    async fn over_the_cap_the_deferred_folders_are_left_out_and_named() {
        let fx = fixture(3, |r| {
            mkdirs(r, &["a", "b", "node_modules/p/q", ".cache/x"]);
        });
        let mut outs = fx.outs();
        let ready = status(&mut outs).await;
        assert!(!ready.complete);
        assert_eq!(ready.watched, 3, "the root, a and b");
        assert_eq!(ready.unwatched, [".cache", "node_modules"]);
        assert!(
            ready
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("limit of 3")),
            "{ready:?}"
        );
        // The others stay live.
        std::fs::write(fx.path("a/f"), "").expect("write");
        assert_eq!(
            change(&mut outs).await,
            json!([{"path": "a", "names": ["f"]}])
        );
        // A new folder past the cap is named too, in a new status.
        std::fs::create_dir(fx.path("c")).expect("mkdir");
        loop {
            if let Out::Status(now) = next(&mut outs).await {
                assert_eq!(now.unwatched, [".cache", "c", "node_modules"]);
                break;
            }
        }
    }

    #[tokio::test]
    async fn over_the_cap_among_the_others_anything_may_be_unwatched() {
        let fx = fixture(2, |r| mkdirs(r, &["a", "b"]));
        let mut outs = fx.outs();
        let ready = status(&mut outs).await;
        assert!(!ready.complete);
        assert_eq!(ready.watched, 2);
        assert_eq!(ready.unwatched, [""]);
    }

    #[tokio::test]
    async fn a_removed_folder_is_reported_itself() {
        let fx = fixture(100, |r| mkdirs(r, &["gone/inner"]));
        let mut outs = fx.outs();
        status(&mut outs).await;
        std::fs::remove_dir_all(fx.path("gone")).expect("rm -r");
        loop {
            let dirs = change(&mut outs).await;
            if dirs
                .as_array()
                .expect("dirs")
                .contains(&json!({"path": "gone", "names": null}))
            {
                break;
            }
        }
    }

    #[tokio::test]
    async fn watching_off_says_so_at_once() {
        let fx = fixture(0, |_| {});
        let mut outs = fx.outs();
        let ready = status(&mut outs).await;
        assert!(!ready.complete);
        assert_eq!(ready.unwatched, [""]);
        assert!(ready.reason.as_deref().is_some_and(|r| r.contains("off")));
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_gets_a_resync_not_a_backlog() {
        let fx = fixture(100, |_| {});
        let mut slow = fx.outs();
        let mut fast = fx.outs();
        status(&mut slow).await;
        status(&mut fast).await;
        // One batch per file (each waited for by the fast one), more than the backlog.
        for i in 0..=BACKLOG + 1 {
            let name = format!("f{i}");
            std::fs::write(fx.path(&name), "").expect("write");
            change_naming(&mut fast, "", &name).await;
        }
        assert_eq!(next(&mut slow).await, Out::Resync);
        // Then it goes on with what is still there.
        assert!(matches!(next(&mut slow).await, Out::Change(_)));
    }

    #[tokio::test]
    async fn streams_end_when_the_server_stops() {
        let fx = fixture(100, |_| {});
        let mut outs = fx.outs();
        status(&mut outs).await;
        fx.stopping.send_replace(true);
        assert_eq!(outs.next().await, None);
    }

    #[tokio::test]
    async fn subscribers_share_one_watcher_and_the_last_one_stops_it() {
        let fx = fixture(100, |_| {});
        let first = fx.hub.subscribe(&fx.root);
        let second = fx.hub.subscribe(&fx.root);
        assert!(Arc::ptr_eq(&first.running, &second.running));
        let running = Arc::downgrade(&first.running);
        drop((first, second));
        assert!(running.upgrade().is_none(), "nothing holds the watcher");
        let third = fx.hub.subscribe(&fx.root);
        assert!(!std::ptr::eq(Arc::as_ptr(&third.running), running.as_ptr()));
    }
}
