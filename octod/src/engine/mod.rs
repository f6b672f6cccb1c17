//! The session engine: the lifecycle API of octod (create, start, stop, resume, delete, list,
//! get) and the reconciler that makes systemd match redb.
//!
//! - redb holds desired state; systemd holds observed state. Every transition is one write
//!   transaction in the store, written *before* the side effects it asks for, so a crash at
//!   any point leaves a record that says what was being done and the reconciler finishes it.
//! - One operation per session at a time. A request for the operation already running joins
//!   it (and gets its result); a request for another operation waits for it to end.
//! - Operations run as their own tasks: a client that goes away does not cancel them.

mod disk;
mod image_fit;
mod ops;
mod plan;
mod reconcile;
mod snapshot;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::podman::{Podman, PodmanError};
use crate::render::{RenderConfig, RenderError};
use crate::session::{InvalidSessionId, SessionId};
use crate::store::{SessionRecord, Store, StoreError};
use crate::systemd::{Systemd, SystemdError};

pub use disk::DiskFacts;
pub use image_fit::ImageFit;
pub use ops::random_id;
pub use plan::{IdleOutlook, KeptBy};
pub use reconcile::ReconcileReport;
pub use snapshot::{Job as SnapshotJob, JobKind as SnapshotJobKind, JobState as SnapshotJobState};

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where session units are written: `~octo/.config/containers/systemd/octo/`.
    pub quadlet_dir: PathBuf,
    /// Where session socket units are written, and enabled by a link in
    /// `sockets.target.wants/`: the user's systemd directory, `~octo/.config/systemd/user/`
    /// (Quadlet reads no `.socket` files from its own directory).
    pub systemd_user_dir: PathBuf,
    /// The `octo` user's runtime directory (`$XDG_RUNTIME_DIR`, `/run/user/<uid>`): systemd's
    /// `%t`, under which the session sockets are.
    pub runtime_dir: PathBuf,
    /// Where snapshot workers write why they failed (`--report`): a tmpfs, writable by octod
    /// and by the workers (`serve::worker_reports_dir`).
    pub reports_dir: PathBuf,
    /// Host paths, health check, timeouts and controllers for rendering.
    pub render: RenderConfig,
    /// The image new sessions use, e.g. `localhost/octo-session:latest`.
    pub image: String,
    /// How long to wait for a stop job.
    pub stop_timeout: Duration,
    /// Sessions without activity for this long are stopped; `None` disables idle stop.
    pub idle_timeout: Option<Duration>,
    /// The longest keep-alive a user may ask for (`sessions.keep_alive_max_hours`); zero:
    /// none.
    pub keep_alive_max: Duration,
    /// `[limits]`: each session's limits, resolved at every start (create, resume, restart)
    /// and stop, so that a changed limit applies at the session's next start.
    pub limits: crate::limits::LimitsPolicy,
    /// `[admission]`: checked by creates and resumes (not by the reconciler, which restores
    /// what was admitted).
    pub admission: crate::limits::Admission,
    /// octod's state directory, whose file system's free space `admission.state_free_floor`
    /// checks; `None`: not checked.
    pub state_dir: Option<PathBuf>,
}

impl EngineConfig {
    /// How long to wait for a start job: longer than the unit's own `TimeoutStartSec=`, so that
    /// systemd, not we, decides that a start failed.
    pub fn start_job_timeout(&self) -> Duration {
        self.render.start_timeout + Duration::from_secs(30)
    }
}

/// Why an engine operation failed. Bad input fails before anything is changed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    InvalidId(#[from] InvalidSessionId),
    #[error("unknown template {0:?}: no such directory in the templates directory")]
    UnknownTemplate(String),
    #[error("the session image {0} is missing: build it with `octoctl image build`")]
    ImageMissing(String),
    #[error(
        "the session image {image} does not fit this octod ({fit}): it must be rebuilt with `octoctl image build` (octod starts that by itself after an upgrade)"
    )]
    ImageOutdated { image: String, fit: ImageFit },
    #[error("invalid owner {0:?}: 1-64 characters")]
    InvalidOwner(String),
    #[error("{0}")]
    Internal(String),
    #[error("no session {0}")]
    NotFound(SessionId),
    #[error("session {id} is being deleted")]
    Deleting { id: SessionId },
    /// Admission control refused a create or resume; the message is for the user.
    #[error(transparent)]
    Refused(crate::limits::Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Systemd(#[from] SystemdError),
    #[error(transparent)]
    Podman(#[from] PodmanError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("writing {path}: {source}")]
    Files {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("deleting session {id} left things behind: {}", problems.join("; "))]
    Cleanup {
        id: SessionId,
        problems: Vec<String>,
    },
    #[error("session {id}: {message}")]
    Failed { id: SessionId, message: String },
    /// Another operation runs on the session (snapshots and restores do not queue).
    #[error("session {id} is busy: {kind:?} is under way; try again when it ends")]
    Busy { id: SessionId, kind: OpKind },
    #[error("the session has a snapshot named {0:?} already")]
    SnapshotExists(String),
    #[error("no snapshot {0}")]
    SnapshotNotFound(String),
    #[error(
        "the storage quota for snapshots is reached: your snapshots take {} of {}; delete one first",
        crate::limits::size(*used),
        crate::limits::size(*quota)
    )]
    SnapshotQuota { used: u64, quota: u64 },
}

/// What a create asks for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// A chosen id, or `None` for a random one.
    pub id: Option<String>,
    pub owner: String,
    pub template: String,
    /// `None`: the limits `[limits]` gives the owner and template; `Some`: exactly these.
    pub limits: Option<crate::session::Limits>,
    /// Refuse the create when the owner has this many sessions already ([`StoreError::SessionLimit`]).
    pub max_per_owner: Option<u32>,
}

/// The kinds of operation; one runs per session at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Create,
    Start,
    Stop,
    /// Stop for lack of activity: the socket stays, a connection wakes the session.
    IdleStop,
    /// Restart of a running session, onto the image its tag names now (`container refresh`).
    Restart,
    Delete,
    /// A snapshot of the session's home is taken.
    Snapshot,
    /// A snapshot is restored into the session's home.
    Restore,
    /// One of its snapshots is deleted.
    SnapshotDelete,
}

type OpResult = Result<Option<SessionRecord>, Arc<EngineError>>;

/// An operation's future, boxed: it is moved into its own task, and the callers' futures stay
/// small.
type BoxedOp = std::pin::Pin<
    Box<dyn Future<Output = Result<Option<SessionRecord>, EngineError>> + Send + 'static>,
>;

/// An operation in flight: its kind and where its result will appear.
struct InFlight {
    kind: OpKind,
    done: tokio::sync::watch::Receiver<Option<OpResult>>,
}

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

struct Inner {
    store: Store,
    systemd: Systemd,
    podman: Podman,
    config: EngineConfig,
    in_flight: Mutex<HashMap<SessionId, InFlight>>,
    metrics: crate::metrics::EngineMetrics,
    /// The session image's fit as last checked ([`Engine::check_image`]).
    image_fit: Mutex<ImageFit>,
    /// A rebuild of an outdated image is under way (set by whoever runs it).
    rebuilding: AtomicBool,
    /// The homes' sizes ([`disk`]).
    disk: Mutex<disk::DiskBook>,
    /// Each running session's work as the idle stop last found it (absent: not asked yet).
    agents: Mutex<HashMap<SessionId, plan::Work>>,
    /// Each session's last snapshot job since octod started ([`snapshot`]).
    snapshot_jobs: Mutex<HashMap<SessionId, snapshot::Job>>,
}

impl Engine {
    /// An engine over connected parts. Refuses Podman older than 5.0.
    pub async fn new(
        store: Store,
        systemd: Systemd,
        podman: Podman,
        config: EngineConfig,
    ) -> Result<Self, EngineError> {
        podman.require_v5().await?;
        let engine = Self {
            inner: Arc::new(Inner {
                store,
                systemd,
                podman,
                config,
                in_flight: Mutex::new(HashMap::new()),
                agents: Mutex::new(HashMap::new()),
                metrics: crate::metrics::EngineMetrics::default(),
                image_fit: Mutex::new(ImageFit::Unknown),
                rebuilding: AtomicBool::new(false),
                disk: Mutex::new(disk::DiskBook::default()),
                snapshot_jobs: Mutex::new(HashMap::new()),
            }),
        };
        engine.load_disk().await?;
        engine.check_image().await;
        Ok(engine)
    }

    /// Inspects the session image, records whether it fits this octod ([`ImageFit`]) and
    /// logs a change. Every reconcile pass checks again, so an image rebuilt by any means is
    /// taken up within one period.
    pub async fn check_image(&self) -> ImageFit {
        let image = &self.inner.config.image;
        let fit = match self.inner.podman.image_inspect(image).await {
            Ok(info) => ImageFit::of(info.as_ref().map(|i| &i.labels)),
            Err(error) => {
                tracing::warn!("inspecting the session image {image}: {error}");
                ImageFit::Unknown
            }
        };
        let previous = std::mem::replace(
            &mut *self
                .inner
                .image_fit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            fit,
        );
        if previous != fit {
            match &fit {
                ImageFit::Outdated { .. } => tracing::warn!(
                    "the session image {image} {fit}: sessions stay on the units they have, and none starts, until it is rebuilt"
                ),
                ImageFit::Missing => tracing::warn!(
                    "the session image {image} is missing: build it with `octoctl image build`"
                ),
                ImageFit::Current if previous != ImageFit::Unknown => {
                    tracing::info!("the session image {image} fits this octod now");
                }
                ImageFit::Current | ImageFit::Unknown => {}
            }
        }
        fit
    }

    /// The session image's fit as last checked.
    pub fn image_fit(&self) -> ImageFit {
        *self
            .inner
            .image_fit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that a rebuild of the outdated image runs (or ended), for what users are told.
    pub fn set_rebuilding(&self, rebuilding: bool) {
        self.inner.rebuilding.store(rebuilding, Ordering::Relaxed);
    }

    /// Whether a rebuild of the outdated image runs.
    pub fn rebuilding(&self) -> bool {
        self.inner.rebuilding.load(Ordering::Relaxed)
    }

    /// Refuses work that would start a session on an image that does not fit. `fresh`
    /// inspects the image again even when it fitted at the last check (a create, which must
    /// find the image present); a start trusts a fit recorded as current.
    async fn require_image(&self, fresh: bool) -> Result<(), EngineError> {
        let image = &self.inner.config.image;
        let fit = match self.image_fit() {
            ImageFit::Current if !fresh => ImageFit::Current,
            _ => self.check_image().await,
        };
        match fit {
            // Unknown: Podman did not answer; the start fails on its own with Podman's error.
            ImageFit::Current | ImageFit::Unknown => Ok(()),
            ImageFit::Missing => Err(EngineError::ImageMissing(image.clone())),
            fit @ ImageFit::Outdated { .. } => Err(EngineError::ImageOutdated {
                image: image.clone(),
                fit,
            }),
        }
    }

    /// Whether admission control lets an idle session wake (a connection to its socket starts
    /// it, through systemd): the same rules as a resume, read outside a transaction, since
    /// the start is systemd's. Two wakes at the same moment may both pass; creates and resumes
    /// are counted exactly.
    pub async fn admit_wake(&self, record: &SessionRecord) -> Result<(), crate::limits::Refusal> {
        let Ok(records) = self.list().await else {
            return Ok(());
        };
        let mut spec = record.spec.clone();
        // Its units carry the limits of its last stop.
        spec.desired = crate::session::DesiredState::Running;
        self.admit_check()
            .check(&spec, records.iter().map(|r| (&r.spec, &r.state)))
    }

    /// The limits `[limits]` gives a session of `owner` and `template` now; a session runs with
    /// those of its last start or stop (`container refresh` restarts it when they differ).
    pub async fn limits_now(
        &self,
        owner: &str,
        template: &str,
    ) -> Result<crate::session::Limits, EngineError> {
        self.limits_for(owner, template).await
    }

    /// What is valid but probably wrong in `[limits]` and `[admission]` (per-user tables for
    /// no account, per-template tables for no template), and a full host, for the log at
    /// start and `octoctl status`.
    pub fn limits_warnings(&self) -> Vec<String> {
        let config = &self.inner.config;
        let users: Option<Vec<String>> = self
            .inner
            .store
            .users()
            .ok()
            .map(|users| users.into_iter().map(|u| u.name).collect());
        let templates: Vec<String> = crate::templates::list(&config.render.templates_dir)
            .into_iter()
            .map(|t| t.id)
            .collect();
        let mut out = config.limits.warnings(users.as_deref(), Some(&templates));
        if let (Some(max), Ok(records)) = (config.admission.max_running, self.inner.store.list()) {
            let running = records
                .iter()
                .filter(|r| crate::limits::holds_slot(&r.spec, &r.state))
                .count();
            if running >= usize::try_from(max).unwrap_or(usize::MAX) {
                out.push(format!(
                    "the host is full: {running} of {max} sessions running (admission.max_running): creates and resumes are refused"
                ));
            }
        }
        if let Some(state_dir) = &config.state_dir {
            let homes = std::env::var_os("HOME")
                .map_or_else(|| PathBuf::from("/var/lib/octo"), PathBuf::from);
            out.extend(crate::limits::state_dir_warnings(
                &config.admission,
                state_dir,
                &crate::limits::volumes_dir(&homes),
            ));
        }
        out.extend(self.quota_warnings());
        out
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The systemd user manager the engine drives (image builds run on it too).
    pub fn systemd(&self) -> &Systemd {
        &self.inner.systemd
    }

    /// The Podman client the engine uses.
    pub fn podman(&self) -> &Podman {
        &self.inner.podman
    }

    /// Latency histograms of successful creates and resumes, for `/metrics`.
    pub fn metrics(&self) -> &crate::metrics::EngineMetrics {
        &self.inner.metrics
    }

    /// The session's socket on the host (`<runtime dir>/octo/sessions/<id>.sock`): connecting
    /// to it reaches the session's gateway, and wakes the session if it is idle.
    pub fn socket_path(&self, id: &SessionId) -> PathBuf {
        crate::render::SessionNames::new(id).socket_path(&self.inner.config.runtime_dir)
    }

    /// Whether the session's agent is in a turn, as its opencode says through the gateway;
    /// `None` when it does not answer ([`crate::agent`]).
    pub async fn agent_busy(&self, id: &SessionId) -> Option<bool> {
        let key = id.clone();
        let token = self.inner.store.run(move |s| s.token(&key)).await.ok()?;
        match crate::agent::busy(&self.socket_path(id), &token).await {
            Ok(busy) => Some(busy),
            Err(error) => {
                tracing::debug!(session = %id, "{error}");
                None
            }
        }
    }

    /// What the session is doing that keeps it from its idle stop: its agent in a turn, a
    /// command in the foreground of a terminal; both asked of the session's gateway at once,
    /// and what does not answer counts as nothing ([`crate::agent`]).
    pub async fn work(&self, id: &SessionId) -> plan::Work {
        let key = id.clone();
        let Ok(token) = self.inner.store.run(move |s| s.token(&key)).await else {
            return plan::Work::default();
        };
        let socket = self.socket_path(id);
        let (agent, jobs) = tokio::join!(
            crate::agent::busy(&socket, &token),
            crate::agent::terminal_jobs(&socket, &token)
        );
        let agent = agent.unwrap_or_else(|error| {
            tracing::debug!(session = %id, "{error}");
            false
        });
        let terminal = match jobs {
            Ok(jobs) if !jobs.is_empty() => {
                tracing::debug!(session = %id, ?jobs, "commands running in its terminals");
                true
            }
            Ok(_) => false,
            Err(error) => {
                tracing::debug!(session = %id, "{error}");
                false
            }
        };
        plan::Work { agent, terminal }
    }

    /// Keeps the session running without activity until `until` (`None`: ends a keep-alive).
    /// The caller bounds it by [`EngineConfig::keep_alive_max`].
    pub async fn set_keep_alive(
        &self,
        id: &SessionId,
        until: Option<std::time::SystemTime>,
    ) -> Result<(), EngineError> {
        let key = id.clone();
        if self
            .inner
            .store
            .run(move |s| s.set_keep_alive(&key, until))
            .await?
        {
            tracing::info!(session = %id, ?until, "keep-alive set");
            Ok(())
        } else {
            Err(EngineError::NotFound(id.clone()))
        }
    }

    /// Every session's keep-alive (past ones included).
    pub async fn keep_alives(
        &self,
    ) -> Result<std::collections::BTreeMap<SessionId, std::time::SystemTime>, EngineError> {
        Ok(self.inner.store.run(Store::keep_alives).await?)
    }

    /// What the idle stop will do with the session: `None` when it will not stop it (idle
    /// stop off, or the session is not running as wanted), else when and what keeps it now.
    pub fn idle_outlook(
        &self,
        record: &SessionRecord,
        last_activity: Option<std::time::SystemTime>,
        keep_alive_until: Option<std::time::SystemTime>,
    ) -> Option<plan::IdleOutlook> {
        let idle = self.inner.config.idle_timeout?;
        if !plan::may_idle_stop(self.facts(record)) {
            return None;
        }
        let work = self
            .inner
            .agents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&record.spec.id)
            .copied()
            .unwrap_or_default();
        Some(plan::idle_outlook(
            idle,
            last_activity,
            record.state_changed_at,
            keep_alive_until,
            work,
            std::time::SystemTime::now(),
        ))
    }

    /// Records activity (proxied traffic) for idle stop; cheap, no IO.
    pub fn record_activity(&self, id: &SessionId) {
        self.inner
            .store
            .record_activity(id, std::time::SystemTime::now());
    }

    /// When each session that has been used was last used (proxied traffic), flushed or not.
    pub async fn activity(
        &self,
    ) -> Result<std::collections::BTreeMap<SessionId, std::time::SystemTime>, EngineError> {
        Ok(self.inner.store.run(Store::activity).await?)
    }

    /// When one session was last used; `None` if it has not been since it was created.
    pub async fn last_activity(
        &self,
        id: &SessionId,
    ) -> Result<Option<std::time::SystemTime>, EngineError> {
        let key = id.clone();
        Ok(self.inner.store.run(move |s| s.last_activity(&key)).await?)
    }

    /// All sessions.
    pub async fn list(&self) -> Result<Vec<SessionRecord>, EngineError> {
        Ok(self.inner.store.run(crate::store::Store::list).await?)
    }

    /// One session.
    pub async fn get(&self, id: &SessionId) -> Result<SessionRecord, EngineError> {
        let key = id.clone();
        self.inner
            .store
            .run(move |s| s.get(&key))
            .await?
            .ok_or_else(|| EngineError::NotFound(id.clone()))
    }

    /// Creates a session and starts it; returns once it is running (healthy) or failed.
    pub async fn create(&self, request: CreateRequest) -> Result<SessionRecord, Arc<EngineError>> {
        let id = match &request.id {
            Some(id) => id.parse::<SessionId>().map_err(|e| Arc::new(e.into()))?,
            None => ops::random_id().map_err(Arc::new)?,
        };
        // Validation that needs no lock: fails before anything is written.
        self.validate_create(&request).await.map_err(Arc::new)?;
        let engine = self.clone();
        let key = id.clone();
        self.run_op(
            id.clone(),
            OpKind::Create,
            Box::pin(async move {
                // Timed inside the operation's task: recorded once, even if callers go away.
                let started = std::time::Instant::now();
                let record = engine.do_create(key, request).await?;
                engine.inner.metrics.create.observe(started.elapsed());
                Ok(Some(record))
            }),
        )
        .await
        .and_then(|r| r.ok_or_else(|| Arc::new(EngineError::NotFound(id))))
    }

    /// Starts (resumes) a stopped or failed session, if admission control lets it (making
    /// room first where the administrator allows); returns once it is running.
    pub async fn resume(&self, id: &SessionId) -> Result<SessionRecord, Arc<EngineError>> {
        self.start_op(id, true).await
    }

    /// Starts a session that should run and does not (the reconciler): it was admitted when
    /// it was created or resumed, so it is not checked again.
    async fn restore(&self, id: &SessionId) -> Result<SessionRecord, Arc<EngineError>> {
        self.start_op(id, false).await
    }

    async fn start_op(
        &self,
        id: &SessionId,
        admit: bool,
    ) -> Result<SessionRecord, Arc<EngineError>> {
        let engine = self.clone();
        let key = id.clone();
        self.run_op(
            id.clone(),
            OpKind::Start,
            Box::pin(async move {
                let started = std::time::Instant::now();
                let record = engine.do_start(&key, admit).await?;
                engine.inner.metrics.resume.observe(started.elapsed());
                Ok(Some(record))
            }),
        )
        .await
        .and_then(|r| r.ok_or_else(|| Arc::new(EngineError::NotFound(id.clone()))))
    }

    /// Stops an idle session's container but keeps its socket listening, so that the next
    /// connection wakes it (systemd starts it; octod need not be asked). Desired: `idle`.
    pub async fn idle_stop(&self, id: &SessionId) -> Result<SessionRecord, Arc<EngineError>> {
        let engine = self.clone();
        let key = id.clone();
        self.run_op(
            id.clone(),
            OpKind::IdleStop,
            Box::pin(async move { engine.do_idle_stop(&key).await.map(Some) }),
        )
        .await
        .and_then(|r| r.ok_or_else(|| Arc::new(EngineError::NotFound(id.clone()))))
    }

    /// Stops a session and its socket, keeping its workspace; it stays stopped across reboots
    /// and no connection wakes it.
    pub async fn stop(&self, id: &SessionId) -> Result<SessionRecord, Arc<EngineError>> {
        let engine = self.clone();
        let key = id.clone();
        self.run_op(
            id.clone(),
            OpKind::Stop,
            Box::pin(async move { engine.do_stop(&key).await.map(Some) }),
        )
        .await
        .and_then(|r| r.ok_or_else(|| Arc::new(EngineError::NotFound(id.clone()))))
    }

    /// Restarts a running session: its container is recreated from the image its tag names
    /// now, its home volume kept. Returns once it is running (healthy) again; refuses a session
    /// that is not meant to run.
    pub async fn restart(&self, id: &SessionId) -> Result<SessionRecord, Arc<EngineError>> {
        let engine = self.clone();
        let key = id.clone();
        self.run_op(
            id.clone(),
            OpKind::Restart,
            Box::pin(async move { engine.do_restart(&key).await.map(Some) }),
        )
        .await
        .and_then(|r| r.ok_or_else(|| Arc::new(EngineError::NotFound(id.clone()))))
    }

    /// Deletes a session and everything it owns: units, socket, container, volume, secret.
    pub async fn delete(&self, id: &SessionId) -> Result<(), Arc<EngineError>> {
        let engine = self.clone();
        let key = id.clone();
        self.run_op(
            id.clone(),
            OpKind::Delete,
            Box::pin(async move { engine.do_delete(&key).await.map(|()| None) }),
        )
        .await
        .map(|_| ())
    }

    /// Runs `op` as the session's one operation unless one runs already (then `Busy`);
    /// returns where its result will appear.
    fn spawn_exclusive(
        &self,
        id: SessionId,
        kind: OpKind,
        op: BoxedOp,
    ) -> Result<tokio::sync::watch::Receiver<Option<OpResult>>, EngineError> {
        let mut in_flight = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(running) = in_flight.get(&id) {
            return Err(EngineError::Busy {
                id,
                kind: running.kind,
            });
        }
        let (tx, rx) = tokio::sync::watch::channel(None);
        in_flight.insert(
            id.clone(),
            InFlight {
                kind,
                done: rx.clone(),
            },
        );
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let result = op.await.map_err(Arc::new);
            inner
                .in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&id);
            let _ = tx.send(Some(result));
        });
        Ok(rx)
    }

    /// Runs `op` as the session's one operation, or joins the same operation in flight.
    async fn run_op(&self, id: SessionId, kind: OpKind, op: BoxedOp) -> OpResult {
        let mut op = Some(op);
        loop {
            let waiting = {
                let mut in_flight = self
                    .inner
                    .in_flight
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match in_flight.get(&id) {
                    Some(running) => (running.kind == kind, running.done.clone()),
                    None => {
                        let (tx, rx) = tokio::sync::watch::channel(None);
                        in_flight.insert(
                            id.clone(),
                            InFlight {
                                kind,
                                done: rx.clone(),
                            },
                        );
                        let inner = Arc::clone(&self.inner);
                        let key = id.clone();
                        let Some(op) = op.take() else {
                            // Unreachable: the op is taken only here, then we return.
                            return Err(Arc::new(EngineError::Failed {
                                id,
                                message: "operation started twice".into(),
                            }));
                        };
                        tokio::spawn(async move {
                            let result = op.await.map_err(Arc::new);
                            inner
                                .in_flight
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .remove(&key);
                            let _ = tx.send(Some(result));
                        });
                        (true, rx)
                    }
                }
            };
            let (same, mut done) = waiting;
            let result = done
                .wait_for(Option::is_some)
                .await
                .map(|r| r.clone())
                .ok()
                .flatten();
            if same {
                return result.unwrap_or_else(|| {
                    Err(Arc::new(EngineError::Failed {
                        id: id.clone(),
                        message: "the operation ended without a result".into(),
                    }))
                });
            }
            // Another kind of operation was running: now it is done, run ours.
        }
    }
}
