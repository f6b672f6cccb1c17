//! The lifecycle operations. Each first records its intent in one store transaction, then
//! acts on Podman and systemd, then records the outcome.

use std::path::Path;

use crate::limits::{AdmitCheck, Refusal};
use crate::render::{self, SessionNames};
use crate::session::{DesiredState, Limits, SessionId, SessionState};
use crate::store::{NewSession, SessionRecord, StoreError};
use crate::systemd::ActiveState;

use super::plan::{self, RoomCandidate};
use super::{CreateRequest, Engine, EngineError};

/// How many idle sessions one start may stop to make room before it gives up.
const MAX_ROOM_STOPS: usize = 4;

/// Failure reasons kept in the store and shown to users are bounded.
const MAX_REASON: usize = 2000;

/// A random session id: a letter and eleven of `[a-z0-9]` (~57 bits).
pub fn random_id() -> Result<SessionId, EngineError> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes)
        .map_err(|e| EngineError::Internal(format!("no randomness for a session id: {e}")))?;
    let mut id = String::with_capacity(bytes.len());
    id.push(char::from(b'a' + bytes[0] % 26));
    for b in &bytes[1..] {
        id.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
    }
    Ok(id.parse()?)
}

fn bounded(reason: &str) -> String {
    if reason.len() <= MAX_REASON {
        return reason.to_owned();
    }
    let mut end = MAX_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &reason[..end])
}

impl Engine {
    /// Checks a create request before anything is written.
    pub(super) async fn validate_create(&self, request: &CreateRequest) -> Result<(), EngineError> {
        let templates = &self.inner.config.render.templates_dir;
        if crate::templates::resolve(templates, &request.template).is_none() {
            return Err(EngineError::UnknownTemplate(request.template.clone()));
        }
        if request.owner.is_empty() || request.owner.len() > 64 {
            return Err(EngineError::InvalidOwner(request.owner.clone()));
        }
        self.require_image(true).await
    }

    pub(super) async fn do_create(
        &self,
        id: SessionId,
        request: CreateRequest,
    ) -> Result<SessionRecord, EngineError> {
        // A small file read; the templates directory is local.
        let name = crate::templates::default_session_name(
            &self.inner.config.render.templates_dir,
            &request.template,
        );
        let limits = match request.limits {
            Some(limits) => limits,
            None => self.limits_for(&request.owner, &request.template).await?,
        };
        let new = NewSession {
            id: id.clone(),
            owner: request.owner,
            template: request.template,
            name,
            image: self.inner.config.image.clone(),
            limits,
            desired: DesiredState::Running,
            max_per_owner: request.max_per_owner,
            admit: None,
        };
        // The owner's limit, admission, token and the record in one transaction (state
        // `creating`); refused, idle sessions may be stopped to make room, then it is tried
        // again.
        let mut room_stops = 0;
        let record = loop {
            let mut new = new.clone();
            new.admit = Some(self.admit_check());
            match self.inner.store.run(move |s| s.create_session(new)).await {
                Ok((record, _token)) => break record,
                Err(StoreError::Refused(refusal)) => {
                    if room_stops < MAX_ROOM_STOPS && self.make_room(&id, &refusal).await {
                        room_stops += 1;
                        continue;
                    }
                    return Err(EngineError::Refused(refusal));
                }
                Err(e) => return Err(e.into()),
            }
        };
        tracing::info!(session = %id, owner = %record.spec.owner, template = %record.spec.template, limits = ?record.spec.limits, "creating session");
        // Admitted by the create's transaction: it holds its slot.
        self.do_start(&id, false).await
    }

    /// The limits `[limits]` gives a session of `owner` and `template` now (the owner's role
    /// read from the store; an owner without an account counts as a user).
    pub(super) async fn limits_for(
        &self,
        owner: &str,
        template: &str,
    ) -> Result<Limits, EngineError> {
        let name = owner.to_owned();
        let role = self
            .blocking(move |s| {
                s.user(&name)
                    .map_err(|e| EngineError::Internal(format!("reading user {name}: {e}")))
            })
            .await?
            .map_or(crate::identity::Role::User, |u| u.role);
        Ok(self.inner.config.limits.resolve(owner, role, template))
    }

    /// The admission rules, the host's available memory and the state directory's free space now.
    pub(super) fn admit_check(&self) -> AdmitCheck {
        let rules = self.inner.config.admission.clone();
        let available_memory = rules
            .memory_margin
            .and_then(|_| crate::limits::available_memory());
        let state_free = rules
            .state_free_floor
            .zip(self.inner.config.state_dir.as_deref())
            .and_then(|(_, dir)| crate::limits::free_space(dir));
        AdmitCheck {
            rules,
            available_memory,
            state_free,
        }
    }

    /// Idle-stops one session to make room for `starting`, which `refusal` kept out, if the
    /// administrator allows it (`admission.stop_idle_to_make_room`) and one is idle enough
    /// ([`plan::rooms_to_make`]). Says whether one was stopped.
    async fn make_room(&self, starting: &SessionId, refusal: &Refusal) -> bool {
        let Some(idle_after) = self.inner.config.admission.make_room_after else {
            return false;
        };
        let (Ok(records), Ok(activity), Ok(keep_alives)) = (
            self.list().await,
            self.activity().await,
            self.keep_alives().await,
        ) else {
            return false;
        };
        let now = std::time::SystemTime::now();
        let candidates: Vec<RoomCandidate<'_>> = records
            .iter()
            .map(|r| RoomCandidate {
                session: self.facts(r),
                id: &r.spec.id,
                owner: &r.spec.owner,
                idle_for: plan::idle_for(
                    activity.get(&r.spec.id).copied(),
                    r.state_changed_at,
                    now,
                ),
            })
            .collect();
        let mut victim = None;
        for id in plan::rooms_to_make(&candidates, starting, refusal, idle_after) {
            // Its user asked to keep it running.
            if plan::kept_alive(keep_alives.get(id).copied(), now) {
                continue;
            }
            // An agent in a turn, a command in a terminal: not idle, whatever its traffic says.
            if plan::work_keeps_running(self.work(id).await) {
                self.record_activity(id);
                continue;
            }
            victim = Some(id.clone());
            break;
        }
        let Some(victim) = victim else {
            return false;
        };
        tracing::info!(session = %victim, for_session = %starting, "stopping an idle session to make room: {refusal}");
        match self.idle_stop(&victim).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(session = %victim, "stopping it to make room failed: {e}");
                false
            }
        }
    }

    /// Start or resume: desired running with the limits `[limits]` gives it now (and, when
    /// `admit`, if admission control lets it: checked in the same transaction), files, link
    /// and secret in place, the socket started, then the service's start job awaited.
    pub(super) async fn do_start(
        &self,
        id: &SessionId,
        admit: bool,
    ) -> Result<SessionRecord, EngineError> {
        self.require_image(false).await?;
        let current = self.get(id).await?;
        let limits = self
            .limits_for(&current.spec.owner, &current.spec.template)
            .await?;
        let mut room_stops = 0;
        let record = loop {
            let check = admit.then(|| self.admit_check());
            match self.begin_start(id, limits.clone(), check).await {
                Err(EngineError::Refused(refusal))
                    if room_stops < MAX_ROOM_STOPS && self.make_room(id, &refusal).await =>
                {
                    room_stops += 1;
                }
                other => break other?,
            }
        };
        let names = SessionNames::new(id);
        let started = std::time::Instant::now();
        let outcome = async {
            let systemd = &self.inner.systemd;
            // The secret and the files are independent: do both at once.
            let (secret, units) = tokio::join!(self.ensure_secret(id, &names), async {
                let loaded = systemd.unit_state(&names.service).await?.exists();
                let change = self.write_units(&record)?;
                // A resume only adds `[Install]` back: the loaded unit is already right, so the
                // start need not wait for the reload that updates the boot-time link.
                let reload_first = change.changed && !(loaded && change.only_install);
                if reload_first {
                    systemd.reload().await?;
                }
                Ok::<_, EngineError>(change.changed && !reload_first)
            });
            secret?;
            let reload_after = units?;
            tracing::debug!(session = %id, elapsed = ?started.elapsed(), "secret and units ready");
            // The socket first (the service requires it anyway): its listening fd is what
            // Podman passes into the container.
            for unit in [&names.socket_unit, &names.service] {
                systemd.reset_failed(unit).await?;
            }
            systemd
                .start(&names.socket_unit, self.inner.config.stop_timeout)
                .await?;
            systemd
                .start(&names.service, self.inner.config.start_job_timeout())
                .await?;
            tracing::debug!(session = %id, elapsed = ?started.elapsed(), "start job done");
            if reload_after {
                systemd.reload().await?;
            }
            Ok::<_, EngineError>(())
        }
        .await;
        self.finish(id, outcome, SessionState::Running).await
    }

    /// Restart (`container refresh`): only a session meant to run; `podman run --replace`
    /// under the restarted unit recreates the container from the image its tag names now.
    pub(super) async fn do_restart(&self, id: &SessionId) -> Result<SessionRecord, EngineError> {
        self.require_image(false).await?;
        let current = self.get(id).await?;
        if current.spec.desired != DesiredState::Running {
            return Err(EngineError::Failed {
                id: id.clone(),
                message: "not restarted: it is stopped".into(),
            });
        }
        let limits = self
            .limits_for(&current.spec.owner, &current.spec.template)
            .await?;
        let record = self
            .begin(
                id,
                DesiredState::Running,
                SessionState::Starting,
                Some(limits),
            )
            .await?;
        let names = SessionNames::new(id);
        let started = std::time::Instant::now();
        tracing::info!(session = %id, limits = ?record.spec.limits, "restarting session");
        let outcome = async {
            let systemd = &self.inner.systemd;
            self.ensure_secret(id, &names).await?;
            if self.write_units(&record)?.changed {
                systemd.reload().await?;
            }
            systemd.reset_failed(&names.service).await?;
            systemd
                .restart(&names.service, self.inner.config.start_job_timeout())
                .await?;
            tracing::info!(session = %id, elapsed = ?started.elapsed(), "restarted session");
            Ok::<_, EngineError>(())
        }
        .await;
        self.finish(id, outcome, SessionState::Running).await
    }

    /// Stop by the user: desired stopped (no `[Install]`, the socket's link removed, so it
    /// stays stopped at boot), the service's then the socket's stop job awaited: nothing
    /// listens for it any more.
    pub(super) async fn do_stop(&self, id: &SessionId) -> Result<SessionRecord, EngineError> {
        self.stop_as(id, DesiredState::Stopped).await
    }

    /// Idle stop: desired idle (no `[Install]`; the socket stays linked and listening), the
    /// service's stop job awaited. A connection to the socket starts the service again.
    pub(super) async fn do_idle_stop(&self, id: &SessionId) -> Result<SessionRecord, EngineError> {
        self.stop_as(id, DesiredState::Idle).await
    }

    pub(super) async fn stop_as(
        &self,
        id: &SessionId,
        desired: DesiredState,
    ) -> Result<SessionRecord, EngineError> {
        // The limits of now, for the units it wakes with (an idle session's socket starts it
        // without octod).
        let current = self.get(id).await?;
        let limits = self
            .limits_for(&current.spec.owner, &current.spec.template)
            .await?;
        let record = self
            .begin(id, desired, SessionState::Stopping, Some(limits))
            .await?;
        let names = SessionNames::new(id);
        let outcome = async {
            let systemd = &self.inner.systemd;
            if self.write_units(&record)?.changed {
                systemd.reload().await?;
            }
            let timeout = self.inner.config.stop_timeout;
            systemd.stop(&names.service, timeout).await?;
            if desired == DesiredState::Stopped {
                systemd.stop(&names.socket_unit, timeout).await?;
            }
            Ok::<_, EngineError>(())
        }
        .await;
        self.finish(id, outcome, SessionState::Stopped).await
    }

    /// Delete: marks the session `deleting`, removes everything it owns, collecting problems
    /// and going on; the record goes last, only when nothing is left.
    pub(super) async fn do_delete(&self, id: &SessionId) -> Result<(), EngineError> {
        let key = id.clone();
        self.blocking(move |s| {
            s.update(&key, |r| {
                r.spec.desired = DesiredState::Stopped;
                r.state = SessionState::Deleting;
                Ok::<_, EngineError>(())
            })
        })
        .await?;
        tracing::info!(session = %id, "deleting session");
        let mut problems = self.remove_session_artifacts(id).await;
        if let Err(problem) = self.remove_snapshots(id) {
            problems.push(problem);
        }
        if !problems.is_empty() {
            return Err(EngineError::Cleanup {
                id: id.clone(),
                problems,
            });
        }
        let key = id.clone();
        self.inner
            .store
            .run(move |s| s.delete_session(&key))
            .await?;
        tracing::info!(session = %id, "deleted session");
        Ok(())
    }

    /// Removes units, files, socket, container, volume and secret of a session id (also used
    /// for orphans that have no record). Returns what could not be removed.
    pub(super) async fn remove_session_artifacts(&self, id: &SessionId) -> Vec<String> {
        let names = SessionNames::new(id);
        let mut problems = Vec::new();
        let systemd = &self.inner.systemd;
        let podman = &self.inner.podman;
        let config = &self.inner.config;
        // The container first, then its socket (or a connection would start it again), then
        // Quadlet's volume oneshot (it stays active, "exited", until stopped, and would stay
        // loaded after its file is gone).
        for unit in [&names.service, &names.socket_unit, &names.volume_service] {
            match systemd.unit_state(unit).await {
                Ok(state)
                    if state.exists()
                        && state.active != ActiveState::Inactive
                        && !state.is_failed() =>
                {
                    if let Err(e) = systemd.stop(unit, self.inner.config.stop_timeout).await {
                        problems.push(e.to_string());
                    }
                }
                Ok(_) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }
        let quadlet = &config.quadlet_dir;
        let user = &config.systemd_user_dir;
        let mut removed_file = false;
        for path in [
            quadlet.join(&names.container_file),
            quadlet.join(&names.volume_file),
            user.join(SOCKETS_WANTS).join(&names.socket_unit),
            user.join(&names.socket_unit),
        ] {
            match std::fs::remove_file(&path) {
                Ok(()) => removed_file = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => problems.push(format!("removing {}: {e}", path.display())),
            }
        }
        // The socket file is systemd's: `RemoveOnStop=yes` removes it with the socket above.
        // (octod's sandbox keeps /run read-only, so it could not remove it itself.)
        if removed_file && let Err(e) = systemd.reload().await {
            problems.push(e.to_string());
        }
        for unit in [&names.service, &names.socket_unit, &names.volume_service] {
            if let Err(e) = systemd.reset_failed(unit).await {
                problems.push(e.to_string());
            }
        }
        if let Err(e) = podman.remove_container(&names.container, true).await {
            problems.push(e.to_string());
        }
        if let Err(e) = podman.remove_volume(&names.volume, true).await {
            problems.push(e.to_string());
        }
        if let Err(e) = podman.delete_secret(&names.token_secret).await {
            problems.push(e.to_string());
        }
        if let Some(llm) = &config.render.llm {
            let dir = llm.session_dir(id);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => problems.push(format!("removing {}: {e}", dir.display())),
            }
        }
        problems
    }

    /// Records what the user now wants and the state the operation starts in, in one
    /// transaction; refused while the session is being deleted.
    async fn begin(
        &self,
        id: &SessionId,
        desired: DesiredState,
        state: SessionState,
        limits: Option<Limits>,
    ) -> Result<SessionRecord, EngineError> {
        let key = id.clone();
        self.blocking(move |s| {
            s.update(&key, |r| {
                if r.state == SessionState::Deleting {
                    return Err(EngineError::Deleting {
                        id: r.spec.id.clone(),
                    });
                }
                r.spec.desired = desired;
                r.state = state;
                if let Some(limits) = limits {
                    r.spec.limits = limits;
                }
                Ok(r.clone())
            })
        })
        .await
    }

    /// [`Self::begin`] of a start: desired running, `starting`, the given limits, and, with
    /// `admit`, admission control over every other session in the same transaction.
    async fn begin_start(
        &self,
        id: &SessionId,
        limits: Limits,
        admit: Option<AdmitCheck>,
    ) -> Result<SessionRecord, EngineError> {
        let key = id.clone();
        self.blocking(move |s| {
            s.update_among(&key, |r, others| {
                if r.state == SessionState::Deleting {
                    return Err(EngineError::Deleting {
                        id: r.spec.id.clone(),
                    });
                }
                r.spec.limits = limits;
                if let Some(check) = &admit {
                    check
                        .check(&r.spec, others.iter().map(|o| (&o.spec, &o.state)))
                        .map_err(EngineError::Refused)?;
                }
                r.spec.desired = DesiredState::Running;
                r.state = SessionState::Starting;
                Ok(r.clone())
            })
        })
        .await
    }

    /// Records the outcome of a start or stop and returns the record, or the error after
    /// recording `failed(reason)`.
    async fn finish(
        &self,
        id: &SessionId,
        outcome: Result<(), EngineError>,
        success: SessionState,
    ) -> Result<SessionRecord, EngineError> {
        let state = match &outcome {
            Ok(()) => success,
            Err(error) => {
                tracing::warn!(session = %id, "{error}");
                SessionState::Failed(bounded(&error.to_string()))
            }
        };
        let key = id.clone();
        let record = self
            .inner
            .store
            .run(move |s| s.set_state(&key, state))
            .await?;
        outcome.map(|()| record)
    }

    /// Creates the session's token secret unless it exists (the token itself is in redb).
    async fn ensure_secret(&self, id: &SessionId, names: &SessionNames) -> Result<(), EngineError> {
        let podman = &self.inner.podman;
        if podman.secret_exists(&names.token_secret).await? {
            return Ok(());
        }
        let key = id.clone();
        let token = self.inner.store.run(move |s| s.token(&key)).await?;
        podman
            .create_secret(&names.token_secret, token.expose().as_bytes(), true)
            .await?;
        Ok(())
    }

    /// Renders the session's units and writes those that differ (atomically: a temporary
    /// file, then rename): volume and container in the Quadlet directory, the socket in the
    /// user's systemd directory, and the socket's enablement link
    /// (`sockets.target.wants/octo-<id>.socket`) present while the session is running or idle.
    /// Says whether anything changed, i.e. whether a reload is due.
    ///
    /// The link is what `systemctl --user enable` makes for a unit in that directory with
    /// `WantedBy=sockets.target`. Written here rather than through D-Bus `EnableUnitFiles`: it
    /// is one more file of the session's, written in the same step as the others and
    /// re-checked by every reconciler pass without a D-Bus call per session, and the one
    /// reload that follows makes systemd see it.
    pub(super) fn write_units(&self, record: &SessionRecord) -> Result<UnitChange, EngineError> {
        let rendered = render::render(&record.spec, &self.inner.config.render)?;
        let config = &self.inner.config;
        let wants = config.systemd_user_dir.join(SOCKETS_WANTS);
        for dir in [&config.quadlet_dir, &config.systemd_user_dir, &wants] {
            std::fs::create_dir_all(dir).map_err(|source| EngineError::Files {
                path: dir.clone(),
                source,
            })?;
        }
        if let Some(llm) = &config.render.llm {
            // Podman refuses to start a container whose bind mount's source is missing; the
            // socket in it is octod's model gateway's, bound when it sees the session.
            llm.prepare_session_dir(&record.spec.id)
                .map_err(|(path, source)| EngineError::Files { path, source })?;
        }
        let mut change = UnitChange {
            changed: false,
            only_install: true,
            container_changed: false,
        };
        for (dir, file, is_container) in [
            (&config.quadlet_dir, &rendered.volume, false),
            (&config.quadlet_dir, &rendered.container, true),
            (&config.systemd_user_dir, &rendered.socket, false),
        ] {
            let path = dir.join(&file.file_name);
            let old = std::fs::read_to_string(&path).ok();
            if write_if_changed(&path, &file.contents)? {
                change.changed = true;
                let install_only = old
                    .as_deref()
                    .is_some_and(|old| render::differ_only_in_install(old, &file.contents));
                change.only_install &= install_only;
                if is_container && old.is_some() && !install_only {
                    change.container_changed = true;
                }
                // Once per unit written, not on every pass that finds it unchanged.
                if is_container && !install_only {
                    for limit in &rendered.unenforced {
                        tracing::warn!(session = %record.spec.id, "{limit}");
                    }
                }
            }
        }
        let enabled = matches!(
            record.spec.desired,
            DesiredState::Running | DesiredState::Idle
        );
        let link = wants.join(&rendered.socket.file_name);
        let target = config.systemd_user_dir.join(&rendered.socket.file_name);
        if set_link(&link, enabled.then_some(target.as_path()))? {
            // Like `[Install]`: only what happens at boot changes.
            change.changed = true;
        }
        Ok(change)
    }

    /// Runs store work on the blocking pool, with engine errors (a missing record becomes
    /// [`EngineError::NotFound`]).
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::store::Store) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let store = self.inner.store.clone();
        let result = tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| EngineError::Internal(format!("store task: {e}")))?;
        match result {
            Err(EngineError::Store(StoreError::NotFound(id))) => Err(EngineError::NotFound(id)),
            other => other,
        }
    }
}

/// The enablement links of units in the user's systemd directory wanted by `sockets.target`.
const SOCKETS_WANTS: &str = "sockets.target.wants";

/// What writing a session's units changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UnitChange {
    /// Some file or link was written: systemd needs a reload to see it.
    pub changed: bool,
    /// Only `[Install]` and the socket's link differ from what was there (stop ↔ resume).
    pub only_install: bool,
    /// The container's unit was there and changed beyond `[Install]`: a running container is
    /// not what its unit says (an upgrade of octod), see [`super::plan::restarts_after_rewrite`].
    pub container_changed: bool,
}

/// Makes `link` a symlink to `target`, or removes it for `None`; says whether it changed.
fn set_link(link: &Path, target: Option<&Path>) -> Result<bool, EngineError> {
    let err = |source| EngineError::Files {
        path: link.to_owned(),
        source,
    };
    let current = std::fs::read_link(link).ok();
    match target {
        Some(target) if current.as_deref() == Some(target) => Ok(false),
        Some(target) => {
            if current.is_some() {
                std::fs::remove_file(link).map_err(err)?;
            }
            std::os::unix::fs::symlink(target, link).map_err(err)?;
            Ok(true)
        }
        None => match std::fs::remove_file(link) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(err(e)),
        },
    }
}

/// Writes `contents` to `path` through a temporary file and a rename, unless it is already
/// there. The temporary name does not end in `.container`/`.volume`, so Quadlet ignores it.
pub(super) fn write_if_changed(path: &Path, contents: &str) -> Result<bool, EngineError> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    let err = |source| EngineError::Files {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(true)
}
