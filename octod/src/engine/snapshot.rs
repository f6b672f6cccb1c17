//! Snapshot operations of the engine: create, restore, delete, list, and the reconciler's
//! sweep of what interrupted workers left ([`crate::snapshot`] is the storage and the worker).
//!
//! Each runs as the session's one operation ([`OpKind::Snapshot`], [`OpKind::Restore`],
//! [`OpKind::SnapshotDelete`]); a request while any operation runs on the session is refused
//! (`Busy`, 409) rather than queued, so that a user sees at once that a snapshot or restore is
//! under way. The work itself is a transient unit of the `octo` user's manager
//! (`octo-snapshot-<session>-<snapshot>.service`, `octo-restore-…`), which octod follows:
//! its progress file while it runs, its state when it ends.
//!
//! **Consistency of a running session**: the unit's `ExecStartPre=` pauses the container
//! (`podman pause`: the cgroup freezer), its `ExecStopPost=` unpauses it. Nothing in the
//! session writes while its home is read, and systemd runs `ExecStopPost=` however the worker
//! ends (success, failure, `kill -9`), so a session is never left frozen. The pause lasts as
//! long as the read: requests to the session wait meanwhile (the proxy holds them).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use zbus::zvariant::{OwnedValue, Value};

use crate::render::SessionNames;
use crate::session::{DesiredState, SessionId, SessionState};
use crate::snapshot::{self, Meta, Progress, Shelf, SnapshotId, SnapshotName};

use super::{Engine, EngineError, OpKind};

/// The podman binary the worker units run (systemd needs an absolute path).
const PODMAN: &str = "/usr/bin/podman";

/// What a snapshot job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Create,
    Restore,
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    Done,
    Failed(String),
}

/// A session's last snapshot job (create or restore), as the API and octoctl show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub kind: JobKind,
    pub snapshot: SnapshotId,
    pub name: String,
    pub unit: String,
    pub started_at: u64,
    pub progress: Progress,
    pub state: JobState,
}

impl Engine {
    /// The snapshot storage, under the state directory.
    fn shelf(&self) -> Result<Shelf, EngineError> {
        self.inner
            .config
            .state_dir
            .as_deref()
            .map(Shelf::new)
            .ok_or_else(|| EngineError::Internal("no state directory for snapshots".into()))
    }

    /// A session's snapshots, oldest first.
    pub async fn snapshots(&self, id: &SessionId) -> Result<Vec<Meta>, EngineError> {
        let shelf = self.shelf()?;
        let key = id.clone();
        blocking_io(move || shelf.list(&key)).await
    }

    /// A session's last snapshot job since octod started, if any.
    pub fn snapshot_job(&self, id: &SessionId) -> Option<Job> {
        self.inner
            .snapshot_jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    fn set_job(&self, id: &SessionId, update: impl FnOnce(&mut Job)) {
        if let Some(job) = self
            .inner
            .snapshot_jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(id)
        {
            update(job);
        }
    }

    /// What a user's snapshots take, and their quota (`[limits] snapshots`).
    pub async fn snapshot_usage(&self, owner: &str) -> Result<(u64, Option<u64>), EngineError> {
        let shelf = self.shelf()?;
        let who = owner.to_owned();
        let used = blocking_io(move || shelf.used_by(&who)).await?;
        let name = owner.to_owned();
        let role = self
            .blocking(move |s| {
                s.user(&name)
                    .map_err(|e| EngineError::Internal(format!("reading user {name}: {e}")))
            })
            .await?
            .map_or(crate::identity::Role::User, |u| u.role);
        Ok((used, self.inner.config.limits.snapshot_quota(owner, role)))
    }

    /// Starts a snapshot of a session's home named `name`; returns once the worker unit runs
    /// (the job then goes on in the background: [`Self::snapshot_job`], [`Self::wait_snapshot_job`]).
    /// Refused: a name the session's snapshots have (`SnapshotExists`), the owner's quota
    /// reached (`SnapshotQuota`), another operation on the session (`Busy`).
    pub async fn snapshot_create(
        &self,
        id: &SessionId,
        name: SnapshotName,
    ) -> Result<Job, EngineError> {
        let record = self.get(id).await?;
        if record.state == SessionState::Deleting {
            return Err(EngineError::Deleting { id: id.clone() });
        }
        if self
            .snapshots(id)
            .await?
            .iter()
            .any(|m| m.name == name.as_str())
        {
            return Err(EngineError::SnapshotExists(name.as_str().to_owned()));
        }
        let (used, quota) = self.snapshot_usage(&record.spec.owner).await?;
        if let Some(quota) = quota
            && used >= quota
        {
            return Err(EngineError::SnapshotQuota { used, quota });
        }
        let home = self.home_dir(id).await?;
        let snapshot = SnapshotId::random()
            .map_err(|e| EngineError::Internal(format!("no randomness for a snapshot id: {e}")))?;
        let unit = snapshot::unit_name(false, id, &snapshot);
        let job = Job {
            kind: JobKind::Create,
            snapshot: snapshot.clone(),
            name: name.as_str().to_owned(),
            unit: unit.clone(),
            started_at: snapshot::now_ms(),
            progress: Progress::default(),
            state: JobState::Running,
        };
        let engine = self.clone();
        let (key, owner) = (id.clone(), record.spec.owner.clone());
        let limit = quota.map(|q| q - used);
        let started = job.clone();
        self.spawn_exclusive(
            id.clone(),
            OpKind::Snapshot,
            Box::pin(async move {
                engine.record_job(&key, started);
                let outcome = match engine.shelf() {
                    Ok(shelf) => {
                        let at = (
                            shelf.partial_dir(&key, &snapshot),
                            shelf.dir(&key, &snapshot),
                        );
                        engine
                            .run_create(&key, &owner, &snapshot, &name, &home, limit, at)
                            .await
                    }
                    Err(e) => Err(e),
                };
                engine.end_job(&key, outcome.as_ref().err());
                outcome.map(|()| None)
            }),
        )?;
        Ok(job)
    }

    /// Archives `home` into `partial`, renamed to `done` once complete (`at`); the container
    /// paused meanwhile if it runs.
    #[allow(clippy::too_many_arguments)]
    async fn run_create(
        &self,
        id: &SessionId,
        owner: &str,
        snapshot: &SnapshotId,
        name: &SnapshotName,
        home: &std::path::Path,
        limit: Option<u64>,
        at: (PathBuf, PathBuf),
    ) -> Result<(), EngineError> {
        let names = SessionNames::new(id);
        let running = self
            .inner
            .systemd
            .unit_state(&names.service)
            .await?
            .is_active();
        let (partial, done) = at;
        let meta = Meta {
            version: snapshot::FORMAT_VERSION,
            id: snapshot.clone(),
            name: name.as_str().to_owned(),
            session: id.clone(),
            owner: owner.to_owned(),
            created_at: snapshot::now_ms(),
            was_running: running,
            archive_bytes: 0,
            home_bytes: 0,
            files: 0,
            root: None,
        };
        let dir = partial.clone();
        blocking_io(move || {
            std::fs::create_dir_all(&dir)?;
            snapshot::write_meta(&dir.join(snapshot::META), &meta)
        })
        .await?;
        let mut args = vec![
            "create".to_owned(),
            "--home".to_owned(),
            path_arg(home),
            "--partial".to_owned(),
            path_arg(&partial),
            "--done".to_owned(),
            path_arg(&done),
        ];
        if let Some(limit) = limit {
            args.push("--limit".to_owned());
            args.push(limit.to_string());
        }
        let pause = running.then_some(names.container.as_str());
        tracing::info!(session = %id, snapshot = %snapshot, running, "taking a snapshot");
        let unit = snapshot::unit_name(false, id, snapshot);
        let progress = partial.join(snapshot::PROGRESS);
        let result = self.run_worker(id, &unit, &args, pause, &progress).await;
        if result.is_err() {
            // Nothing half-written stays: the partial directory is removed (the reconciler
            // removes it too, should octod stop before this).
            let dir = partial.clone();
            let _ = blocking_io(move || match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            })
            .await;
        }
        result
    }

    /// Starts restoring a snapshot into the session's home: the session is stopped, its home
    /// replaced (atomically: [`crate::snapshot::restore`]), and started again if it ran.
    pub async fn snapshot_restore(
        &self,
        id: &SessionId,
        snapshot: &SnapshotId,
    ) -> Result<Job, EngineError> {
        let record = self.get(id).await?;
        if record.state == SessionState::Deleting {
            return Err(EngineError::Deleting { id: id.clone() });
        }
        let meta = self
            .snapshots(id)
            .await?
            .into_iter()
            .find(|m| &m.id == snapshot)
            .ok_or_else(|| EngineError::SnapshotNotFound(snapshot.to_string()))?;
        let home = self.home_dir(id).await?;
        let unit = snapshot::unit_name(true, id, snapshot);
        let job = Job {
            kind: JobKind::Restore,
            snapshot: snapshot.clone(),
            name: meta.name.clone(),
            unit,
            started_at: snapshot::now_ms(),
            progress: Progress::default(),
            state: JobState::Running,
        };
        let was_running = record.spec.desired == DesiredState::Running;
        let engine = self.clone();
        let (key, snap) = (id.clone(), snapshot.clone());
        let started = job.clone();
        self.spawn_exclusive(
            id.clone(),
            OpKind::Restore,
            Box::pin(async move {
                engine.record_job(&key, started);
                let outcome = engine.run_restore(&key, &snap, &home, was_running).await;
                engine.end_job(&key, outcome.as_ref().err());
                outcome.map(|()| None)
            }),
        )?;
        Ok(job)
    }

    async fn run_restore(
        &self,
        id: &SessionId,
        snapshot: &SnapshotId,
        home: &std::path::Path,
        was_running: bool,
    ) -> Result<(), EngineError> {
        let shelf = self.shelf()?;
        tracing::info!(session = %id, snapshot = %snapshot, was_running, "restoring a snapshot");
        // Stopped with its socket, so that no connection starts it while its home is swapped.
        self.do_stop(id).await?;
        let progress = shelf.restore_progress(id, snapshot);
        let args = vec![
            "restore".to_owned(),
            "--snapshot".to_owned(),
            path_arg(&shelf.dir(id, snapshot)),
            "--home".to_owned(),
            path_arg(home),
            "--progress".to_owned(),
            path_arg(&progress),
        ];
        let unit = snapshot::unit_name(true, id, snapshot);
        let result = self.run_worker(id, &unit, &args, None, &progress).await;
        let _ = std::fs::remove_file(&progress);
        if result.is_err() {
            // What the failed worker unpacked beside the home goes; the home is untouched.
            if let Err(e) = self.clean_beside(id, home).await {
                tracing::warn!(session = %id, "cleaning up after a failed restore: {e}");
            }
        }
        // Restored or not (then the old home is untouched), it runs again if it ran.
        if was_running {
            let started = self.do_start(id, false).await;
            result?;
            started?;
        } else {
            result?;
        }
        tracing::info!(session = %id, snapshot = %snapshot, "restored a snapshot");
        Ok(())
    }

    /// Forks a session: a new session of the same owner and template whose home becomes the
    /// source's current home (copied while the source is paused, with `cp --reflink=auto`) or
    /// one of its snapshots. Returns once the new session exists (its own id, token and units);
    /// the copy goes on as its operation (it is `starting` until it runs), and a failed copy
    /// leaves it `failed` with the reason.
    pub async fn fork(
        &self,
        source: &SessionId,
        snapshot: Option<SnapshotId>,
        max_per_owner: Option<u32>,
    ) -> Result<crate::store::SessionRecord, EngineError> {
        let record = self.get(source).await?;
        if record.state == SessionState::Deleting {
            return Err(EngineError::Deleting { id: source.clone() });
        }
        if let Some(snapshot) = &snapshot
            && !self
                .snapshots(source)
                .await?
                .iter()
                .any(|m| &m.id == snapshot)
        {
            return Err(EngineError::SnapshotNotFound(snapshot.to_string()));
        }
        // A copy of the current home needs the source's operation slot.
        if snapshot.is_none()
            && let Some(kind) = self.busy_with(source)
        {
            return Err(EngineError::Busy {
                id: source.clone(),
                kind,
            });
        }
        let source_home = self.home_dir(source).await?;
        let created = self
            .create(super::CreateRequest {
                id: None,
                owner: record.spec.owner.clone(),
                template: record.spec.template.clone(),
                limits: None,
                max_per_owner,
            })
            .await
            .map_err(unwrap_arc)?;
        let id = created.spec.id.clone();
        let name: String = format!("{} (fork)", record.name)
            .chars()
            .take(crate::session::SessionName::MAX_CHARS)
            .collect();
        let key = id.clone();
        self.inner
            .store
            .run(move |s| s.relabel(&key, crate::session::SessionName::parse(&name).ok(), None))
            .await?;
        // `starting` until its home is filled in: clients wait for it as for any start, and
        // open nothing in it meanwhile.
        let key = id.clone();
        let relabelled = self
            .inner
            .store
            .run(move |s| s.set_state(&key, SessionState::Starting))
            .await?;
        tracing::info!(session = %id, from = %source, snapshot = ?snapshot, "forking a session");
        let engine = self.clone();
        let (new, from) = (id.clone(), source.clone());
        self.spawn_exclusive(
            id.clone(),
            OpKind::Restore,
            Box::pin(async move {
                let copied = engine
                    .run_fork(&new, &from, snapshot.as_ref(), &source_home)
                    .await;
                match copied {
                    Ok(()) => engine.do_start(&new, false).await.map(Some),
                    Err(e) => {
                        let reason = format!("forking from session {from}: {e}");
                        let key = new.clone();
                        let _ = engine
                            .inner
                            .store
                            .run(move |s| s.set_state(&key, SessionState::Failed(reason)))
                            .await;
                        Err(e)
                    }
                }
            }),
        )?;
        Ok(relabelled)
    }

    /// The fork's copy: the new session stopped, then the snapshot unpacked, or the source's
    /// home copied under the source's own operation slot (paused while it runs).
    async fn run_fork(
        &self,
        new: &SessionId,
        source: &SessionId,
        snapshot: Option<&SnapshotId>,
        source_home: &std::path::Path,
    ) -> Result<(), EngineError> {
        // Its units stopped, its record left `starting` (the reconciler leaves a busy session
        // alone): nothing reaches or wakes it while its home is replaced.
        let names = SessionNames::new(new);
        let timeout = self.inner.config.stop_timeout;
        self.inner.systemd.stop(&names.service, timeout).await?;
        self.inner.systemd.stop(&names.socket_unit, timeout).await?;
        let home = self.home_dir(new).await?;
        let shelf = self.shelf()?;
        let job = SnapshotId::random()
            .map_err(|e| EngineError::Internal(format!("no randomness for a job id: {e}")))?;
        let unit = snapshot::unit_name(true, new, &job);
        let progress = shelf.restore_progress(new, &job);
        if let Some(snapshot) = snapshot {
            let args = vec![
                "restore".to_owned(),
                "--snapshot".to_owned(),
                path_arg(&shelf.dir(source, snapshot)),
                "--home".to_owned(),
                path_arg(&home),
                "--progress".to_owned(),
                path_arg(&progress),
            ];
            let result = self.run_worker(new, &unit, &args, None, &progress).await;
            let _ = std::fs::remove_file(&progress);
            return result;
        }
        let running = self
            .inner
            .systemd
            .unit_state(&SessionNames::new(source).service)
            .await?
            .is_active();
        let engine = self.clone();
        let (new, from, source_home) = (new.clone(), source.clone(), source_home.to_owned());
        let done = self.spawn_exclusive(
            source.clone(),
            OpKind::Snapshot,
            Box::pin(async move {
                let container = SessionNames::new(&from).container;
                let args = vec![
                    "copy".to_owned(),
                    "--from".to_owned(),
                    path_arg(&source_home),
                    "--home".to_owned(),
                    path_arg(&home),
                ];
                let pause = running.then_some(container.as_str());
                engine
                    .run_worker(&new, &unit, &args, pause, &progress)
                    .await
                    .map(|()| None)
            }),
        )?;
        wait_done(done).await
    }

    /// For an instance backup (issue 17, part 3): the session's home archived by the snapshot
    /// worker into `partial`, renamed to `done` when complete (a snapshot directory's format:
    /// `home.tar.zst` and `snapshot.json`, but not on the shelf, so not listed and not counted
    /// against a quota), with the container paused while it is read, as the session's one
    /// operation (`Busy` while another runs). `Ok(None)`: the session has no home yet (never
    /// started). Progress: `partial`'s [`snapshot::PROGRESS`] file while it runs.
    pub async fn backup_home(
        &self,
        id: &SessionId,
        partial: PathBuf,
        done: PathBuf,
    ) -> Result<Option<Meta>, EngineError> {
        let record = self.get(id).await?;
        if record.state == SessionState::Deleting {
            return Err(EngineError::Deleting { id: id.clone() });
        }
        let volume = SessionNames::new(id).volume;
        let Some(home) = self.inner.podman.volume_mountpoint(&volume).await? else {
            return Ok(None);
        };
        let snapshot = SnapshotId::random()
            .map_err(|e| EngineError::Internal(format!("no randomness for a job id: {e}")))?;
        let name = SnapshotName::parse("backup")
            .map_err(|e| EngineError::Internal(format!("the backup's name: {e}")))?;
        let engine = self.clone();
        let key = id.clone();
        let owner = record.spec.owner.clone();
        let meta_path = done.join(snapshot::META);
        let ran = self.spawn_exclusive(
            id.clone(),
            OpKind::Snapshot,
            Box::pin(async move {
                let result = engine
                    .run_create(&key, &owner, &snapshot, &name, &home, None, (partial, done))
                    .await;
                result.map(|()| None)
            }),
        )?;
        wait_done(ran).await?;
        blocking_io(move || snapshot::read_meta(&meta_path))
            .await
            .map(Some)
    }

    /// The kind of the operation running on a session, if any.
    fn busy_with(&self, id: &SessionId) -> Option<OpKind> {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .map(|f| f.kind)
    }

    /// Deletes one of a session's snapshots.
    pub async fn snapshot_delete(
        &self,
        id: &SessionId,
        snapshot: &SnapshotId,
    ) -> Result<(), EngineError> {
        if !self.snapshots(id).await?.iter().any(|m| &m.id == snapshot) {
            return Err(EngineError::SnapshotNotFound(snapshot.to_string()));
        }
        let shelf = self.shelf()?;
        let (key, snap) = (id.clone(), snapshot.clone());
        let done = self.spawn_exclusive(
            id.clone(),
            OpKind::SnapshotDelete,
            Box::pin(async move {
                blocking_io(move || shelf.remove(&key, &snap)).await?;
                Ok(None)
            }),
        )?;
        wait_done(done).await
    }

    /// Waits up to `wait` for the session's snapshot job to end; the job as it is then.
    pub async fn wait_snapshot_job(&self, id: &SessionId, wait: Duration) -> Option<Job> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let job = self.snapshot_job(id);
            let running = job.as_ref().is_some_and(|j| j.state == JobState::Running);
            if !running || tokio::time::Instant::now() >= deadline {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn record_job(&self, id: &SessionId, job: Job) {
        self.inner
            .snapshot_jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.clone(), job);
    }

    fn end_job(&self, id: &SessionId, error: Option<&EngineError>) {
        self.set_job(id, |job| {
            job.state = match error {
                None => JobState::Done,
                Some(e) => JobState::Failed(e.to_string()),
            };
            if job.state == JobState::Done {
                job.progress.done = job.progress.total;
            }
        });
    }

    /// The home's directory on the host: the session volume's mount point.
    async fn home_dir(&self, id: &SessionId) -> Result<PathBuf, EngineError> {
        let volume = SessionNames::new(id).volume;
        self.inner
            .podman
            .volume_mountpoint(&volume)
            .await?
            .ok_or_else(|| EngineError::Failed {
                id: id.clone(),
                message: "its home has not been created yet: start it once first".into(),
            })
    }

    /// Removes what an interrupted restore or fork left beside the session's `home` (by the
    /// worker, as a transient unit: those files are the session's user namespace's).
    async fn clean_beside(
        &self,
        id: &SessionId,
        home: &std::path::Path,
    ) -> Result<(), EngineError> {
        let unit = format!("{}{id}-clean.service", snapshot::RESTORE_UNIT_PREFIX);
        let args = vec!["clean".to_owned(), "--home".to_owned(), path_arg(home)];
        self.run_worker(id, &unit, &args, None, std::path::Path::new(""))
            .await
    }

    /// The reconciler's part for homes: what an interrupted restore or fork unpacked beside a
    /// session's home (its worker killed, with or without octod) is removed, as the session's
    /// one operation (never while another runs for it).
    async fn sweep_staging(&self, busy: &[SessionId]) -> Vec<String> {
        let mut removed = Vec::new();
        let label = crate::podman::VolumeFilter::Label(crate::render::LABEL_SESSION.into());
        let volumes = match self.inner.podman.list_volumes(&label).await {
            Ok(volumes) => volumes,
            Err(e) => {
                tracing::warn!("listing session volumes for interrupted restores: {e}");
                return removed;
            }
        };
        for volume in volumes {
            let (Some((id, _)), Some(home)) =
                (SessionNames::parse(&volume.name), volume.mountpoint)
            else {
                continue;
            };
            if busy.contains(&id) {
                continue;
            }
            let staged = home
                .parent()
                .and_then(|parent| std::fs::read_dir(parent).ok())
                .is_some_and(|mut entries| {
                    entries.any(|e| {
                        e.is_ok_and(|e| {
                            e.file_name()
                                .to_string_lossy()
                                .starts_with(snapshot::RESTORE_PREFIX)
                        })
                    })
                });
            if !staged {
                continue;
            }
            let engine = self.clone();
            let (key, at) = (id.clone(), home.clone());
            let Ok(mut done) = self.spawn_exclusive(
                id.clone(),
                OpKind::Restore,
                Box::pin(async move { engine.clean_beside(&key, &at).await.map(|()| None) }),
            ) else {
                continue;
            };
            match done.wait_for(Option::is_some).await.map(|r| r.clone()) {
                Ok(Some(Ok(_))) => removed.push(format!(
                    "what an interrupted restore left beside {}",
                    home.display()
                )),
                Ok(Some(Err(e))) => tracing::warn!(session = %id, "{e}"),
                _ => {}
            }
        }
        removed
    }

    /// Runs the worker as a transient unit and follows it to its end: its progress file
    /// into the job while it runs, then its result. `pause`: the container frozen meanwhile.
    async fn run_worker(
        &self,
        id: &SessionId,
        unit: &str,
        args: &[String],
        pause: Option<&str>,
        progress: &std::path::Path,
    ) -> Result<(), EngineError> {
        let systemd = &self.inner.systemd;
        let exe = std::env::current_exe()
            .map_err(|e| EngineError::Internal(format!("finding octod's own program: {e}")))?;
        let report = self.worker_report(unit);
        if let Some(dir) = report.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| EngineError::Internal(format!("creating {}: {e}", dir.display())))?;
        }
        let _ = std::fs::remove_file(&report);
        let properties = worker_properties(id, &exe, &report, args, pause)
            .map_err(|e| EngineError::Internal(format!("preparing the unit {unit}: {e}")))?;
        let _ = systemd.reset_failed(unit).await;
        systemd
            .start_transient_service(unit, properties, Duration::from_secs(60))
            .await?;
        let mut poll = tokio::time::interval(Duration::from_millis(300));
        let finished = loop {
            poll.tick().await;
            if let Some(p) = snapshot::read_progress(progress) {
                self.set_job(id, |job| job.progress = p);
            }
            let state = systemd.unit_state(unit).await?;
            if state.is_failed()
                || (state.is_active() && state.sub == crate::systemd::SubState::Exited)
                || !state.exists()
                || state.active == crate::systemd::ActiveState::Inactive
            {
                break state;
            }
        };
        if let Some(container) = pause {
            // The unit's ExecStopPost= unpauses, unless it was killed with the worker.
            if let Err(e) = self.inner.podman.unpause_container(container).await {
                tracing::warn!(session = %id, "{e}");
            }
        }
        if finished.is_failed() || !finished.is_active() {
            // The worker's own words when it wrote them (its journal lines may come later
            // than the unit's end), else the unit's result and its last journal lines.
            let reason = match read_report(&report) {
                Some(text) => text,
                None => systemd.failure_reason(unit).await,
            };
            let _ = std::fs::remove_file(&report);
            let _ = systemd.reset_failed(unit).await;
            let _ = systemd.stop(unit, Duration::from_secs(30)).await;
            if reason.contains(QUOTA_MARK) {
                let (used, quota) = self.snapshot_usage(&self.get(id).await?.spec.owner).await?;
                return Err(EngineError::SnapshotQuota {
                    used,
                    quota: quota.unwrap_or(used),
                });
            }
            return Err(EngineError::Failed {
                id: id.clone(),
                message: format!("{unit} failed: {reason}"),
            });
        }
        // Unloads the finished unit (it is transient); ExecStopPost= unpauses.
        systemd.stop(unit, Duration::from_secs(60)).await?;
        Ok(())
    }

    /// Where a worker unit writes why it failed: in a runtime directory (a tmpfs, so a full
    /// snapshot storage does not keep the reason from being written).
    fn worker_report(&self, unit: &str) -> std::path::PathBuf {
        self.inner.config.reports_dir.join(format!("{unit}.report"))
    }

    /// The reconciler's part: worker units that ended while no octod followed them are
    /// unloaded, and what interrupted workers left under the snapshot storage is removed
    /// (never for a session whose worker still runs). Returns what it removed.
    pub(super) async fn sweep_snapshots(&self) -> Vec<String> {
        let mut removed = Vec::new();
        let Ok(shelf) = self.shelf() else {
            return removed;
        };
        let systemd = &self.inner.systemd;
        let units = match systemd
            .list_units(&[
                &format!("{}*.service", snapshot::CREATE_UNIT_PREFIX),
                &format!("{}*.service", snapshot::RESTORE_UNIT_PREFIX),
            ])
            .await
        {
            Ok(units) => units,
            Err(e) => {
                tracing::warn!("listing snapshot units: {e}");
                return removed;
            }
        };
        let mut busy: Vec<SessionId> = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        for (unit, active) in units {
            let Some(session) = snapshot::unit_session(&unit) else {
                continue;
            };
            if busy.contains(&session) {
                continue;
            }
            if matches!(
                active,
                crate::systemd::ActiveState::Activating | crate::systemd::ActiveState::Deactivating
            ) || (active == crate::systemd::ActiveState::Active
                && systemd
                    .unit_state(&unit)
                    .await
                    .is_ok_and(|s| s.sub != crate::systemd::SubState::Exited))
            {
                // Still working (octod restarted meanwhile): its files are not leftovers.
                busy.push(session);
                continue;
            }
            let _ = systemd.reset_failed(&unit).await;
            let _ = systemd.stop(&unit, Duration::from_secs(30)).await;
            let _ = std::fs::remove_file(self.worker_report(&unit));
            removed.push(unit);
        }
        // A container paused by a worker whose ExecStopPost= was killed with it.
        match self.inner.podman.list_containers("octo.session").await {
            Ok(containers) => {
                for c in containers.iter().filter(|c| c.state == "paused") {
                    let Some((session, _)) = SessionNames::parse(&c.name) else {
                        continue;
                    };
                    if busy.contains(&session) {
                        continue;
                    }
                    match self.inner.podman.unpause_container(&c.name).await {
                        Ok(true) => removed.push(format!("the pause of {}", c.name)),
                        Ok(false) => {}
                        Err(e) => tracing::warn!("{e}"),
                    }
                }
            }
            Err(e) => tracing::warn!("listing containers for paused ones: {e}"),
        }
        removed.extend(self.sweep_staging(&busy).await);
        let leftovers = {
            let shelf = shelf.clone();
            blocking_io(move || Ok(shelf.leftovers(&busy))).await
        }
        .unwrap_or_default();
        for path in leftovers {
            let gone = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match gone {
                Ok(()) => removed.push(path.display().to_string()),
                Err(e) => tracing::warn!("removing {}: {e}", path.display()),
            }
        }
        removed
    }

    /// Removes a deleted session's snapshots.
    pub(super) fn remove_snapshots(&self, id: &SessionId) -> Result<(), String> {
        let Ok(shelf) = self.shelf() else {
            return Ok(());
        };
        shelf
            .remove_session(id)
            .map_err(|e| format!("removing the snapshots of {id}: {e}"))
    }
}

/// What the worker prints when it stops at the quota (found in its journal lines).
pub const QUOTA_MARK: &str = "snapshot would pass the storage quota";

/// The most of a worker's report read (its error is one line).
const REPORT_MAX: u64 = 8 * 1024;

/// What a worker wrote to its report, trimmed and bounded; `None` when it wrote nothing.
fn read_report(path: &std::path::Path) -> Option<String> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(REPORT_MAX).read_to_end(&mut bytes))
        .ok()?;
    let text = String::from_utf8_lossy(&bytes).trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn path_arg(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The worker's transient unit: `podman unshare octod snapshot-worker …` (in the rootless
/// containers' user namespace), the container paused before and unpaused after when asked.
fn worker_properties(
    id: &SessionId,
    exe: &std::path::Path,
    report: &std::path::Path,
    args: &[String],
    pause: Option<&str>,
) -> Result<Vec<(&'static str, OwnedValue)>, zbus::zvariant::Error> {
    let exe = exe.to_string_lossy().into_owned();
    let mut argv = vec![
        PODMAN.to_owned(),
        "unshare".to_owned(),
        exe,
        "snapshot-worker".to_owned(),
        "--report".to_owned(),
        path_arg(report),
    ];
    argv.extend(args.iter().cloned());
    let owned = |value: Value<'_>| OwnedValue::try_from(value);
    let mut properties = vec![
        (
            "Description",
            owned(Value::from(format!("Octo snapshot worker of session {id}")))?,
        ),
        ("Type", owned(Value::from("exec"))?),
        ("RemainAfterExit", owned(Value::from(true))?),
        // The worker is batch work: it yields to the sessions.
        ("Nice", owned(Value::from(10_i32))?),
        (
            "ExecStart",
            owned(Value::from(vec![(PODMAN.to_owned(), argv, false)]))?,
        ),
    ];
    if let Some(container) = pause {
        let cmd = |verb: &str| {
            vec![(
                PODMAN.to_owned(),
                vec![PODMAN.to_owned(), verb.to_owned(), container.to_owned()],
                // ExecStopPost=: ignore a failure (the container may have stopped).
                verb == "unpause",
            )]
        };
        properties.push(("ExecStartPre", owned(Value::from(cmd("pause")))?));
        properties.push(("ExecStopPost", owned(Value::from(cmd("unpause")))?));
    }
    Ok(properties)
}

async fn blocking_io<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Internal(format!("snapshot task: {e}")))?
        .map_err(|e| EngineError::Internal(format!("snapshot storage: {e}")))
}

async fn wait_done(
    mut done: tokio::sync::watch::Receiver<Option<super::OpResult>>,
) -> Result<(), EngineError> {
    let result = done
        .wait_for(Option::is_some)
        .await
        .map(|r| r.clone())
        .ok()
        .flatten();
    match result {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(unwrap_arc(e)),
        None => Err(EngineError::Internal(
            "the operation ended without a result".into(),
        )),
    }
}

fn unwrap_arc(error: Arc<EngineError>) -> EngineError {
    Arc::try_unwrap(error).unwrap_or_else(|e| EngineError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_read_trimmed_and_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("octo-snapshot-x-y.service.report");
        assert_eq!(read_report(&path), None, "no report");
        std::fs::write(&path, " \n").expect("write");
        assert_eq!(read_report(&path), None, "an empty report");
        std::fs::write(&path, "writing x: No space left on device (os error 28)\n").expect("write");
        assert_eq!(
            read_report(&path).as_deref(),
            Some("writing x: No space left on device (os error 28)")
        );
        std::fs::write(&path, "x".repeat(1 << 20)).expect("write");
        assert_eq!(
            read_report(&path).map(|r| r.len()),
            usize::try_from(REPORT_MAX).ok()
        );
    }
}
