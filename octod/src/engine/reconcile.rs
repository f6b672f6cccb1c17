//! The reconciler: makes systemd and Podman match redb. It runs at start, periodically, and
//! when a session unit's job ends badly or its unit changes state; it rewrites every unit
//! (restarting, once, a running session whose container unit changed: an upgrade), finishes
//! what a crash interrupted (a create, a delete), restarts what should run, marks what failed,
//! records a session woken through its socket as running, keeps idle sessions' sockets
//! listening, removes orphans, and stops idle sessions. What to do with each session is
//! decided by [`plan`](super::plan); this module reads the facts and does the IO. While the
//! session image does not fit this octod ([`ImageFit`](super::ImageFit)), it writes no unit
//! and starts nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;

use crate::render::{Part, SessionNames};
use crate::session::{SessionId, SessionState};
use crate::store::SessionRecord;

use super::Engine;
use super::plan::{self, Action, Session};
use crate::systemd::ActiveState;

/// The session units, for `ListUnitsByPatterns`.
const SESSION_UNITS: [&str; 2] = ["octo-*.service", "octo-*.socket"];

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub started: Vec<SessionId>,
    pub stopped: Vec<SessionId>,
    /// Running sessions restarted because their container unit changed (an upgrade).
    pub restarted: Vec<SessionId>,
    /// Idle sessions a connection woke, now recorded running.
    pub woken: Vec<SessionId>,
    /// Idle sessions whose socket was started.
    pub sockets_started: Vec<SessionId>,
    pub marked_running: Vec<SessionId>,
    pub marked_failed: Vec<SessionId>,
    pub rewritten: Vec<SessionId>,
    pub deleted: Vec<SessionId>,
    /// Names of orphaned units, files, containers, volumes and secrets removed.
    pub orphans_removed: Vec<String>,
    pub errors: Vec<String>,
}

impl ReconcileReport {
    pub fn is_quiet(&self) -> bool {
        *self == Self::default()
    }
}

impl Engine {
    /// One reconciliation pass over every session and every `octo-*` artifact.
    pub async fn reconcile(&self) -> ReconcileReport {
        let mut report = ReconcileReport::default();
        let records = match self.list().await {
            Ok(records) => records,
            Err(e) => {
                report.errors.push(e.to_string());
                return report;
            }
        };
        let known: BTreeSet<SessionId> = records.iter().map(|r| r.spec.id.clone()).collect();
        // Units of this octod's session runtime do not run on an image of another: until the
        // image fits, every session stays on the units it has and nothing is started
        // (image_fit.rs). Stops, deletes and records of what the units do go on.
        let image_fits = self.check_image().await.is_current();

        // Files first, one reload for all of them.
        let mut rewrote = false;
        let mut container_changed = BTreeSet::new();
        for record in &records {
            if !image_fits || !plan::writes_units(self.facts(record)) {
                continue;
            }
            match self.write_units(record) {
                Ok(change) if change.changed => {
                    rewrote = true;
                    report.rewritten.push(record.spec.id.clone());
                    if change.container_changed {
                        container_changed.insert(record.spec.id.clone());
                    }
                }
                Ok(_) => {}
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        if rewrote && let Err(e) = self.inner.systemd.reload().await {
            report.errors.push(e.to_string());
        }
        // A running container whose unit changed is not what its unit says: restart it.
        for record in records
            .iter()
            .filter(|r| container_changed.contains(&r.spec.id))
        {
            let id = &record.spec.id;
            let service = SessionNames::new(id).service;
            let Ok(observed) = self.inner.systemd.unit_state(&service).await else {
                continue;
            };
            if plan::restarts_after_rewrite(self.facts(record), true, &observed.active) {
                tracing::info!(session = %id, "its container unit changed: restarting it");
                match self.restart(id).await {
                    Ok(_) => report.restarted.push(id.clone()),
                    Err(e) => report.errors.push(e.to_string()),
                }
            }
        }

        // The session units' states, all in one call: asking each unit (a `LoadUnit`, which
        // loads a stopped unit again, and its properties) made a pass over many stopped sessions
        // grow faster than their number. A unit not listed is not loaded, so inactive. A
        // session whose listed state calls for anything is read again, alone, before acting:
        // the list is as old as the pass.
        let listed = match self.inner.systemd.list_units(&SESSION_UNITS).await {
            Ok(units) => Some(units),
            Err(e) => {
                tracing::warn!("listing the session units: {e}; reading them one by one");
                None
            }
        };
        let listed_state = |unit: &str| {
            listed
                .as_ref()
                .map(|units| units.get(unit).cloned().unwrap_or(ActiveState::Inactive))
        };
        for record in records {
            let id = record.spec.id.clone();
            let names = SessionNames::new(&id);
            let facts = self.facts(&record);
            if image_fits {
                let socket = listed_state(&names.socket_unit);
                self.keep_listening(&record, &names, socket, &mut report)
                    .await;
            }
            let mut action = plan::plan(facts, None);
            if action == Action::ReadUnit
                && let Some(state) = listed_state(&names.service)
            {
                action = plan::plan(facts, Some(&state));
                if action != Action::Leave {
                    action = Action::ReadUnit;
                }
            }
            if action == Action::ReadUnit {
                let observed = match self.inner.systemd.unit_state(&names.service).await {
                    Ok(observed) => observed,
                    Err(e) => {
                        report.errors.push(e.to_string());
                        continue;
                    }
                };
                action = plan::plan(facts, Some(&observed.active));
            }
            match action {
                Action::Leave | Action::ReadUnit => {}
                // Starting it, or recording it as woken (which rewrites its units), waits for
                // an image that fits.
                Action::Start | Action::MarkWoken if !image_fits => {}
                Action::FinishDelete => match self.delete(&id).await {
                    Ok(()) => report.deleted.push(id),
                    Err(e) => report.errors.push(e.to_string()),
                },
                Action::Start => match self.restore(&id).await {
                    Ok(_) => report.started.push(id),
                    Err(e) => report.errors.push(e.to_string()),
                },
                Action::Stop => match self.stop(&id).await {
                    Ok(_) => report.stopped.push(id),
                    Err(e) => report.errors.push(e.to_string()),
                },
                Action::MarkRunning => {
                    self.mark(&id, SessionState::Running, &mut report).await;
                    report.marked_running.push(id);
                }
                Action::MarkFailed => {
                    let reason = self.inner.systemd.failure_reason(&names.service).await;
                    self.mark(&id, SessionState::Failed(reason), &mut report)
                        .await;
                    report.marked_failed.push(id);
                }
                Action::MarkStopped => {
                    self.mark(&id, SessionState::Stopped, &mut report).await;
                }
                Action::MarkWoken => match self.mark_woken(&id).await {
                    Ok(()) => report.woken.push(id),
                    Err(e) => report.errors.push(e.to_string()),
                },
            }
        }
        self.remove_orphans(&known, &mut report).await;
        // Snapshot workers that ended unfollowed, and what interrupted ones left.
        report.orphans_removed.extend(self.sweep_snapshots().await);
        if let Err(e) = self.inner.store.flush_activity() {
            report.errors.push(e.to_string());
        }
        report
    }

    /// Starts an idle session's socket when it does not listen ([`plan::starts_socket`]);
    /// `listed` is the socket's state in the pass's list of units, read again before a start.
    async fn keep_listening(
        &self,
        record: &SessionRecord,
        names: &SessionNames,
        listed: Option<ActiveState>,
        report: &mut ReconcileReport,
    ) {
        if record.spec.desired != crate::session::DesiredState::Idle {
            return;
        }
        if listed.is_some_and(|state| !plan::starts_socket(self.facts(record), &state)) {
            return;
        }
        let systemd = &self.inner.systemd;
        let socket = match systemd.unit_state(&names.socket_unit).await {
            Ok(socket) => socket,
            Err(e) => return report.errors.push(e.to_string()),
        };
        if !plan::starts_socket(self.facts(record), &socket.active) {
            return;
        }
        let started = async {
            systemd.reset_failed(&names.socket_unit).await?;
            systemd
                .start(&names.socket_unit, self.inner.config.stop_timeout)
                .await
        };
        match started.await {
            Ok(()) => report.sockets_started.push(record.spec.id.clone()),
            Err(e) => report.errors.push(e.to_string()),
        }
    }

    /// An idle session woken through its socket: desired and recorded running again (unless
    /// something changed it meanwhile), and its units rendered with `[Install]` again.
    async fn mark_woken(&self, id: &SessionId) -> Result<(), super::EngineError> {
        use crate::session::DesiredState;
        let key = id.clone();
        let record = self
            .blocking(move |s| {
                s.update(&key, |r| {
                    if r.spec.desired == DesiredState::Idle {
                        r.spec.desired = DesiredState::Running;
                        r.state = SessionState::Running;
                    }
                    Ok::<_, super::EngineError>(r.clone())
                })
            })
            .await?;
        tracing::info!(session = %id, "woken by a connection to its socket");
        if self.write_units(&record)?.changed {
            self.inner.systemd.reload().await?;
        }
        Ok(())
    }

    /// Idle-stops running sessions without activity for the configured idle time: they
    /// become desired `idle`, their sockets listening. Activity comes from
    /// [`Engine::record_activity`]; a session never active counts from its last state change.
    pub async fn reap_idle(&self) -> Vec<SessionId> {
        let Some(idle) = self.inner.config.idle_timeout else {
            return Vec::new();
        };
        // An idle stop rewrites the units, for a socket that the image may not serve yet.
        if !self.image_fit().is_current() {
            return Vec::new();
        }
        let Ok(records) = self.list().await else {
            return Vec::new();
        };
        // Every running session is asked on every pass (a few at a time) what it is doing: one
        // whose agent is in a turn or whose terminal runs a command counts as active now, so it
        // stops no sooner than the idle time after the last pass that saw that work end.
        let probes: Vec<_> = records
            .iter()
            .filter(|r| plan::may_idle_stop(self.facts(r)))
            .map(|r| {
                let (engine, id) = (self.clone(), r.spec.id.clone());
                async move {
                    let work = engine.work(&id).await;
                    (id, work)
                }
            })
            .collect();
        let answers: Vec<(SessionId, plan::Work)> = futures_util::stream::iter(probes)
            .buffer_unordered(8)
            .collect()
            .await;
        *self
            .inner
            .agents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = answers.iter().cloned().collect();
        let keep_alives = self.keep_alives().await.unwrap_or_default();
        let now = SystemTime::now();
        let mut stopped = Vec::new();
        for (id, work) in answers {
            if plan::work_keeps_running(work) {
                tracing::debug!(session = %id, ?work, "at work: active");
                self.record_activity(&id);
                continue;
            }
            if plan::kept_alive(keep_alives.get(&id).copied(), now) {
                continue;
            }
            let Some(record) = records.iter().find(|r| r.spec.id == id) else {
                continue;
            };
            let last = self.inner.store.last_activity(&id).ok().flatten();
            let idle_for = plan::idle_for(last, record.state_changed_at, now);
            if idle_for >= idle {
                tracing::info!(session = %id, ?idle_for, "stopping idle session");
                if self.idle_stop(&id).await.is_ok() {
                    stopped.push(id);
                }
            }
        }
        stopped
    }

    /// Runs the reconciler and idle stop forever: every `period`, soon after a session unit's
    /// job ends in anything but `done`, and when a session unit's `ActiveState` changes to
    /// `failed`, `inactive` or `active` behind our back (its `PropertiesChanged` signals; a
    /// connection to an idle session's socket makes it `active`).
    pub fn spawn_background(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut jobs = engine.inner.systemd.job_results().await.ok();
            let changed = Arc::new(tokio::sync::Notify::new());
            let mut watchers: HashMap<SessionId, tokio::task::JoinHandle<()>> = HashMap::new();
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = changed.notified() => {
                        tracing::debug!("a session unit changed state: reconciling");
                    }
                    Some((unit, result)) = async {
                        match jobs.as_mut() {
                            Some(stream) => stream.next().await,
                            None => std::future::pending().await,
                        }
                    } => {
                        if !(unit.starts_with(SessionNames::PREFIX) && result != "done") {
                            continue;
                        }
                        tracing::debug!(%unit, %result, "session unit job ended badly: reconciling");
                    }
                }
                let report = engine.reconcile().await;
                if !report.is_quiet() {
                    tracing::info!(?report, "reconciled");
                }
                engine.reap_idle().await;
                engine.watch_units(&mut watchers, &changed).await;
            }
        })
    }

    /// Keeps one `ActiveState` watcher per session unit, and none for deleted sessions.
    async fn watch_units(
        &self,
        watchers: &mut HashMap<SessionId, tokio::task::JoinHandle<()>>,
        changed: &Arc<tokio::sync::Notify>,
    ) {
        let Ok(records) = self.list().await else {
            return;
        };
        let ids: BTreeSet<SessionId> = records.into_iter().map(|r| r.spec.id).collect();
        watchers.retain(|id, task| {
            let keep = ids.contains(id) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        let mut added = false;
        for id in ids {
            if watchers.contains_key(&id) {
                continue;
            }
            let unit = SessionNames::new(&id).service;
            let Ok(mut states) = self.inner.systemd.watch_active_state(&unit).await else {
                continue;
            };
            added = true;
            let changed = Arc::clone(changed);
            watchers.insert(
                id,
                tokio::spawn(async move {
                    while let Some(state) = states.next().await {
                        if plan::unit_change_wakes(&state) {
                            changed.notify_one();
                        }
                    }
                }),
            );
        }
        // A unit that changed between the last pass and its watcher's subscription sent its
        // signal to no one (seen under load: a unit stopped behind octod's back while the idle
        // stop still asked the agents stayed down until the next periodic pass, an hour): one
        // more pass after new watchers sees it.
        if added {
            changed.notify_one();
        }
    }

    /// What the plan needs to know of a record.
    pub(super) fn facts<'a>(&self, record: &'a SessionRecord) -> Session<'a> {
        Session {
            state: &record.state,
            desired: record.spec.desired,
            busy: self.busy(&record.spec.id),
        }
    }

    fn busy(&self, id: &SessionId) -> bool {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(id)
    }

    /// Whether `id` is a session now: an operation on it runs, or the store has it. When the
    /// store cannot tell, it counts as current: removing a live session's parts is the worse
    /// mistake.
    fn is_current(&self, id: &SessionId) -> bool {
        self.busy(id) || !matches!(self.inner.store.get(id), Ok(None))
    }

    async fn mark(&self, id: &SessionId, state: SessionState, report: &mut ReconcileReport) {
        let key = id.clone();
        if let Err(e) = self
            .inner
            .store
            .run(move |s| s.set_state(&key, state))
            .await
        {
            report.errors.push(e.to_string());
        }
    }

    /// Removes `octo-*` files, units, containers, volumes and secrets that belong to no
    /// session in the store.
    /// The orphan removal of a reconcile pass whose view of the store, `known`, may be stale:
    /// what a pass does when sessions are created between its reading the store and its
    /// scanning for leftovers. For the end-to-end checks; [`Engine::reconcile`] calls it with
    /// the list it just read.
    #[doc(hidden)]
    pub async fn remove_orphans_seen_from(&self, known: &BTreeSet<SessionId>) -> ReconcileReport {
        let mut report = ReconcileReport::default();
        self.remove_orphans(known, &mut report).await;
        report
    }

    async fn remove_orphans(&self, known: &BTreeSet<SessionId>, report: &mut ReconcileReport) {
        let mut orphans: BTreeSet<SessionId> = BTreeSet::new();
        let config = &self.inner.config;
        for dir in [&config.quadlet_dir, &config.systemd_user_dir] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                // Leftover temporary files of an interrupted write (not one being written now).
                if SessionNames::is_partial_file(name)
                    && !SessionNames::parse(name).is_some_and(|(id, _)| self.is_current(&id))
                {
                    let _ = std::fs::remove_file(entry.path());
                    report.orphans_removed.push(name.to_owned());
                    continue;
                }
                if let Some((id, Part::ContainerFile | Part::VolumeFile | Part::SocketUnit)) =
                    SessionNames::parse(name)
                    && !known.contains(&id)
                {
                    orphans.insert(id);
                }
            }
        }
        let podman = &self.inner.podman;
        match podman.list_secrets().await {
            Ok(secrets) => {
                for name in secrets {
                    if let Some((id, Part::TokenSecret)) = SessionNames::parse(&name)
                        && !known.contains(&id)
                    {
                        orphans.insert(id);
                    }
                }
            }
            Err(e) => report.errors.push(e.to_string()),
        }
        match podman.list_containers(crate::render::LABEL_SESSION).await {
            Ok(containers) => {
                for container in containers {
                    if let Some((id, Part::PodmanObject)) = SessionNames::parse(&container.name)
                        && !known.contains(&id)
                    {
                        orphans.insert(id);
                    }
                }
            }
            Err(e) => report.errors.push(e.to_string()),
        }
        let label = crate::podman::VolumeFilter::Label(crate::render::LABEL_SESSION.into());
        match podman.list_volumes(&label).await {
            Ok(volumes) => {
                for volume in volumes {
                    if let Some((id, Part::PodmanObject)) = SessionNames::parse(&volume.name)
                        && !known.contains(&id)
                    {
                        orphans.insert(id);
                    }
                }
            }
            Err(e) => report.errors.push(e.to_string()),
        }
        match self.inner.systemd.list_units(&SESSION_UNITS).await {
            Ok(units) => {
                for unit in units.keys() {
                    if let Some((id, Part::Service | Part::VolumeService | Part::SocketUnit)) =
                        SessionNames::parse(unit)
                        && !known.contains(&id)
                    {
                        orphans.insert(id);
                    }
                }
            }
            Err(e) => report.errors.push(e.to_string()),
        }
        for id in orphans {
            // `known` was read before the scan: a session created since then has its record
            // (written before any of its files, units or secrets) or is still being created.
            // Its parts are not orphans.
            if self.is_current(&id) {
                continue;
            }
            tracing::info!(session = %id, "removing an orphaned session's leftovers");
            let problems = self.remove_session_artifacts(&id).await;
            report.orphans_removed.push(format!("octo-{id}"));
            report.errors.extend(problems);
        }
    }
}
