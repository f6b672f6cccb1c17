//! `octod serve`: read the configuration, open the state, connect to systemd and Podman, start
//! the engine and its reconciler, serve the API, tell systemd we are ready (with a status line
//! and watchdog pings), and shut down cleanly on SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::Settings;
use crate::listen::{self, Origin};

/// The Podman secret that carried the LLM provider's settings, key included, into every
/// session before octod's model gateway (session runtime 2). Removed once no unit names it.
pub const OLD_LLM_SECRET: &str = "octo-llm";
/// The credential with the LLM provider's API key: `/etc/octo/credentials/llm-key`, loaded by
/// octod.service as `octo_llm-key`.
pub const LLM_KEY_CREDENTIAL: &str = "llm-key";

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let state = build_state(&settings).await?;
    let engine = state.engine.clone();
    let passed = listen::passed()?;
    let (listener, origin) =
        listen::http_listener(&passed, &settings.listen, settings.trusted_proxies.clone()).await?;
    // After an upgrade that changed the session runtime: the sessions wait for this. Before
    // the admin socket serves, so that `octoctl status` never sees an outdated image that is
    // not yet being rebuilt.
    crate::service::image::rebuild_if_outdated(
        &engine,
        settings.image_build_config(),
        settings.image_build.rebuild_outdated,
    );
    let admin = start_admin(&settings, &passed, state.clone());
    let local = listener.describe();
    match origin {
        Origin::SocketActivation => {
            tracing::info!(%local, "serving HTTP on the socket from systemd");
        }
        Origin::Bound => tracing::info!(%local, "serving HTTP"),
    }
    let reconciler = engine.spawn_background(Duration::from_secs(30));
    let llm = state.llm.clone().map(|gateway| {
        tracing::info!(
            sockets = %gateway.mount().sockets_dir.display(),
            models = %gateway.config().models.join(", "),
            "serving the model gateway to the sessions"
        );
        tokio::spawn(crate::llm::sockets::run(gateway))
    });
    let old_secret = tokio::spawn(remove_old_llm_secret(engine.clone()));
    let app = crate::app::router(state);
    notify(&[sd_notify::NotifyState::Ready]);
    let status = tokio::spawn(report_status(engine.clone()));
    let disk = tokio::spawn(measure_homes(engine.clone()));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<crate::http::peer::ClientPeer>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("serving HTTP")?;
    notify(&[sd_notify::NotifyState::Stopping]);
    if let Some(admin) = admin {
        admin.abort();
    }
    status.abort();
    disk.abort();
    old_secret.abort();
    if let Some(llm) = llm {
        llm.abort();
    }
    reconciler.abort();
    if let Err(error) = engine.store().flush_activity() {
        tracing::warn!("saving session activity: {error}");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Serves the admin socket (`octoctl`) as its own task. Without it octod still serves the
/// API, so a socket that cannot be bound is a loud warning, not a failed start.
fn start_admin(
    settings: &Settings,
    passed: &[(std::os::fd::RawFd, String)],
    app: crate::app::AppState,
) -> Option<tokio::task::JoinHandle<()>> {
    let path = settings.admin_socket.clone();
    let (listener, origin) = match listen::admin_listener(passed, &path) {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!("{error}: octoctl cannot reach this octod");
            return None;
        }
    };
    match origin {
        Origin::SocketActivation => {
            tracing::info!("serving the admin API on the socket from systemd");
        }
        Origin::Bound => tracing::info!(path = %path.display(), "serving the admin API"),
    }
    let config = crate::admin::AdminConfig {
        build: settings.image_build_config(),
        run_as: nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name),
    };
    let state = crate::admin::AdminState {
        app,
        config: std::sync::Arc::new(config),
    };
    Some(tokio::spawn(async move {
        if let Err(error) = crate::admin::serve(listener, state).await {
            tracing::error!("serving the admin socket: {error}");
        }
    }))
}

/// Everything the handlers share, from the configuration.
pub async fn build_state(settings: &Settings) -> anyhow::Result<crate::app::AppState> {
    use crate::engine::{Engine, EngineConfig};
    use crate::render::{LlmMount, RenderConfig};

    // A limit this host cannot give is an error now, not a session that never starts.
    settings
        .limits
        .check_host(&crate::limits::HostFacts::read())?;
    std::fs::create_dir_all(&settings.state_dir).with_context(|| {
        format!(
            "creating the state directory {}",
            settings.state_dir.display()
        )
    })?;
    // Sessions stored before they had names are named after their template when the store
    // migrates (schema 3).
    let templates_dir = settings.templates_dir.clone();
    let store = crate::store::Store::open_with(settings.state_dir.join("octod.redb"), &|id| {
        crate::templates::default_session_name(&templates_dir, id)
    })
    .context("opening the state database")?;
    if settings.obsolete_port_range {
        tracing::warn!(
            "sessions.port_range is set but ignored: sessions publish no host ports any more"
        );
    }
    let auth = crate::auth::Auth::open(
        &settings.state_dir,
        store.clone(),
        crate::auth::AuthSettings {
            secure_cookies: settings.secure_cookies,
            local_passwords: settings.auth.local_passwords,
            oidc: settings.auth.oidc.clone(),
            // systemd's credentials (octod.service loads /etc/octo/credentials/).
            credentials_dir: credentials_dir(),
            ..crate::auth::AuthSettings::default()
        },
    )
    .context("opening accounts")?;
    if let Some(code) = auth
        .bootstrap_admin_invite()
        .context("checking for an admin")?
    {
        // The one secret octod logs on purpose: without it nobody can become the first admin.
        tracing::warn!(
            "no administrator yet: register the first admin account with invite code {}",
            code.expose()
        );
        eprintln!("octod: first admin invite code: {}", code.expose());
    }
    let systemd = crate::systemd::Systemd::connect_user()
        .await
        .context("connecting to the systemd user manager (is linger enabled for this user?)")?;
    let podman = crate::podman::Podman::connect_user(&systemd)
        .await
        .context("connecting to Podman")?;

    let controllers = delegated_controllers(&settings.limits);
    let mut render = RenderConfig::new(&settings.templates_dir);
    render.start_timeout = settings.start_timeout;
    render.controllers = controllers;
    render.content_site = settings
        .content_site
        .as_ref()
        .map(|site| site.suffix().to_owned());
    let llm = match &settings.llm {
        Some(llm) => {
            let mount = LlmMount {
                sockets_dir: settings.state_dir.join("llm"),
                models: llm.all_models(),
            };
            render.llm = Some(mount.clone());
            let api_key = match &llm.api_key {
                Some(key) => Some(key.clone()),
                None => read_llm_key(LLM_KEY_CREDENTIAL)?,
            };
            let mut providers = Vec::new();
            for provider in &llm.providers {
                let credential = format!("{LLM_KEY_CREDENTIAL}-{}", provider.id);
                let key = match &provider.api_key {
                    Some(key) => Some(key.clone()),
                    None => read_llm_key(&credential)?,
                };
                if key.is_none() {
                    tracing::warn!(
                        provider = %provider.id,
                        "no API key for this LLM provider (no credential {credential}: `octoctl llm set-key --provider {}`): requests are forwarded without one",
                        provider.id
                    );
                }
                providers.push(crate::llm::ProviderRoute {
                    id: provider.id.clone(),
                    base_url: provider.base_url.clone(),
                    api_key: key.map(crate::llm::ApiKey::new),
                    models: provider.models.clone(),
                });
            }
            if api_key.is_none() {
                tracing::warn!(
                    "no API key for the LLM provider (no credential {LLM_KEY_CREDENTIAL}: `octoctl llm set-key`): requests are forwarded without one"
                );
            }
            let config = crate::llm::GatewayConfig {
                base_url: llm.base_url.clone(),
                api_key: api_key.map(crate::llm::ApiKey::new),
                models: mount.models.clone(),
                head_timeout: llm.timeout,
                max_body_bytes: crate::llm::MAX_BODY_BYTES,
                budgets: llm.budgets,
                providers,
                allow: llm.allow.clone(),
            };
            Some((config, mount))
        }
        None => {
            tracing::warn!(
                "no LLM provider configured ([llm] in octod.toml): agents cannot answer"
            );
            None
        }
    };
    let home = home_dir()?;
    let quadlet_dir = match &settings.quadlet_dir {
        Some(dir) => dir.clone(),
        None => home.join(".config/containers/systemd/octo"),
    };
    let config = EngineConfig {
        quadlet_dir,
        // The user manager reads socket units from here (Quadlet's directory has none).
        systemd_user_dir: home.join(".config/systemd/user"),
        runtime_dir: runtime_dir(),
        reports_dir: worker_reports_dir(),
        render,
        image: settings.image.clone(),
        stop_timeout: Duration::from_secs(60),
        idle_timeout: settings.idle_timeout,
        keep_alive_max: settings.keep_alive_max,
        limits: settings.limits.clone(),
        admission: settings.admission.clone(),
        state_dir: Some(settings.state_dir.clone()),
    };
    let engine = Engine::new(store, systemd, podman, config)
        .await
        .context("starting the session engine")?;
    for warning in engine.limits_warnings() {
        tracing::warn!("{warning}");
    }
    let llm = match llm {
        Some((config, mount)) => Some(
            crate::llm::Gateway::new(config, mount, engine.store().clone())
                .context("starting the model gateway's HTTP client")?,
        ),
        None => None,
    };
    let mut state = crate::app::AppState::new(engine, auth, settings.max_per_user);
    state.llm = llm;
    state.proxy = state.proxy.with_head_timeout(settings.proxy_head_timeout);
    if let Some(site) = &settings.content_site {
        let content = crate::content::ContentOrigin::new(site.clone())
            .context("making the content origin's cookie key")?;
        tracing::info!("the content origin: https://*.{}", site.suffix());
        state.content = crate::content::Content(Some(std::sync::Arc::new(content)));
    }
    Ok(state)
}

/// systemd's credentials directory (octod.service loads /etc/octo/credentials/).
fn credentials_dir() -> Option<PathBuf> {
    std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from)
}

/// A provider's key from the credential `credential` ([`LLM_KEY_CREDENTIAL`] for the default
/// provider, `llm-key-<id>` for another; as the file's own name, or as octod.service's
/// `LoadCredential=octo:…` names it), if there is one.
fn read_llm_key(credential: &str) -> anyhow::Result<Option<String>> {
    let Some(dir) = credentials_dir() else {
        return Ok(None);
    };
    for name in [credential.to_owned(), format!("octo_{credential}")] {
        match std::fs::read_to_string(dir.join(&name)) {
            Ok(text) => {
                let key = text.trim_end_matches(['\n', '\r']);
                if !key.is_empty() {
                    return Ok(Some(key.to_owned()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading the credential {name}")),
        }
    }
    Ok(None)
}

/// Removes the Podman secret that carried the provider's key into sessions before the model
/// gateway ([`OLD_LLM_SECRET`]), once no container unit names it any more: the reconciler
/// rewrites the units of an upgraded install (after the image of the new session runtime is
/// built), and a unit that still names a missing secret would not start.
async fn remove_old_llm_secret(engine: crate::engine::Engine) {
    let needle = format!("Secret={OLD_LLM_SECRET},");
    loop {
        let dir = engine.config().quadlet_dir.clone();
        let needle = needle.clone();
        let named = tokio::task::spawn_blocking(move || {
            std::fs::read_dir(&dir).ok().is_some_and(|entries| {
                entries.flatten().any(|entry| {
                    entry.path().extension().is_some_and(|e| e == "container")
                        && std::fs::read_to_string(entry.path())
                            .is_ok_and(|text| text.contains(&needle))
                })
            })
        })
        .await
        .unwrap_or(true);
        if !named {
            match engine.podman().secret_exists(OLD_LLM_SECRET).await {
                Ok(false) => return,
                Ok(true) => match engine.podman().delete_secret(OLD_LLM_SECRET).await {
                    Ok(_) => {
                        tracing::info!(
                            "removed the Podman secret {OLD_LLM_SECRET}: sessions reach the model through octod now"
                        );
                        return;
                    }
                    Err(error) => {
                        tracing::warn!("removing the Podman secret {OLD_LLM_SECRET}: {error}");
                    }
                },
                Err(error) => {
                    tracing::warn!("looking for the Podman secret {OLD_LLM_SECRET}: {error}");
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
}

/// This user's runtime directory, systemd's `%t` for its user manager: `$XDG_RUNTIME_DIR`,
/// else `/run/user/<uid>` (what logind creates for a lingering user).
pub fn runtime_dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(
            || PathBuf::from(format!("/run/user/{}", nix::unistd::getuid().as_raw())),
            PathBuf::from,
        )
}

/// Where snapshot workers write why they failed: `$RUNTIME_DIRECTORY` (the package's
/// `RuntimeDirectory=octod/workers`, owned by `octo`, emptied when octod stops; octod's
/// sandbox leaves `/run/user` read-only), else `<runtime_dir>/octo/workers`.
pub fn worker_reports_dir() -> PathBuf {
    std::env::var("RUNTIME_DIRECTORY")
        .ok()
        .and_then(|dirs| dirs.split(':').next().map(str::to_owned))
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| runtime_dir().join("octo/workers"), PathBuf::from)
}

fn home_dir() -> anyhow::Result<PathBuf> {
    if let Some(home) = std::env::var_os("HOME") {
        return Ok(PathBuf::from(home));
    }
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.dir)
        .context("finding this user's home directory")
}

/// The cgroup controllers delegated to this user's systemd manager; a clear warning for each
/// that is missing while `[limits]` sets a limit of its kind, since those are not enforced.
fn delegated_controllers(limits: &crate::limits::LimitsPolicy) -> crate::render::Controllers {
    let uid = nix::unistd::getuid().as_raw();
    let (controllers, path) = crate::limits::delegated_controllers(uid);
    for warning in crate::limits::controller_warnings(limits, controllers, &path) {
        tracing::warn!("{warning}");
    }
    controllers
}

/// How often the home measurement looks for a session that is due (one walk per tick at
/// most), and brings the quota notices in line.
const DISK_TICK: Duration = Duration::from_secs(10);

/// Measures the running sessions' homes in the background, one at a time
/// ([`crate::engine::Engine::disk_tick`]), and warns the agents of users near their quota.
async fn measure_homes(engine: crate::engine::Engine) {
    loop {
        if let Err(error) = engine.disk_tick().await {
            tracing::warn!("measuring the session homes: {error}");
        }
        tokio::time::sleep(DISK_TICK).await;
    }
}

/// Keeps systemd's status line current and pings the watchdog when one is set.
async fn report_status(engine: crate::engine::Engine) {
    let mut usec = 0;
    let watchdog =
        sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec));
    let period = watchdog.map_or(Duration::from_secs(15), |w| w / 2);
    loop {
        let sessions = engine.list().await.unwrap_or_default();
        let running = sessions
            .iter()
            .filter(|r| r.state == crate::session::SessionState::Running)
            .count();
        let status = format!("{} sessions, {running} running", sessions.len());
        let mut states = vec![sd_notify::NotifyState::Status(&status)];
        if watchdog.is_some() {
            states.push(sd_notify::NotifyState::Watchdog);
        }
        notify(&states);
        tokio::time::sleep(period).await;
    }
}

/// Sends a notification to systemd when it is listening (`NOTIFY_SOCKET`); a failure is only
/// worth a log line, never a crash.
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(false, states) {
        tracing::warn!(%error, "notifying systemd");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}
