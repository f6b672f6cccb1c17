//! octo-fileserver: browse, upload, download and manage the files of one workspace.
//!
//! The binary (`main.rs`) parses flags and calls [`serve`]. The code map:
//! [`confine`] resolves every client path beneath the root with `openat2` (the security
//! boundary), [`fsops`] holds the file operations, [`download`], [`upload`] and [`zip`] the
//! streaming parts, [`api`] the routes, [`auth`] the bearer token, [`error`] the one error
//! type. The API is documented in `fileserver/README.md`.
//!
//! It is also the session's gateway: [`listen`] takes the socket-activated socket (or binds
//! TCP or a Unix socket) and closes connections without losing early answers, and [`relay`]
//! passes `/opencode/*` and `/terminal` on to the session's other services. [`watcher`]
//! streams the workspace's changes (inotify) to clients as server-sent events. [`llm_bridge`]
//! relays a loopback port to octod's model gateway socket, for opencode. [`preview`] relays
//! `/preview/<port>/*` to the apps the session runs and lists their ports.

pub mod api;
pub mod auth;
pub mod confine;
pub mod download;
pub mod error;
pub mod fsops;
pub mod jobs;
pub mod listen;
pub mod llm_bridge;
pub mod order;
pub mod preview;
pub mod relay;
pub mod upload;
pub mod usage;
pub mod watcher;
pub mod zip;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use api::{gateway_router, router};
pub use auth::Token;
pub use error::{ApiError, Code};
pub use listen::{ListenAddr, Listener};
pub use relay::Relays;

/// Everything the server needs, validated.
#[derive(Debug)]
pub struct Config {
    /// The workspace root; nothing outside it is ever touched.
    pub root: PathBuf,
    /// The bearer token every `/api/` request must carry.
    pub token: Token,
    /// Largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// How long in-flight requests may run on after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Most directories the change watcher watches (0: no watching; clients poll).
    pub watch_max_dirs: usize,
}

/// The state shared by all requests.
pub struct AppState {
    /// The workspace root.
    pub root: confine::Root,
    /// The session token.
    pub token: Token,
    /// Largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// The change watcher, shared by every `GET /api/watch`.
    pub watcher: watcher::Hub,
    /// Turns true when the server shuts down: open event streams end then.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The root directory could not be opened.
    #[error("opening the workspace root {path}: {source}")]
    Root {
        /// The configured root.
        path: PathBuf,
        /// The error.
        source: nix::errno::Errno,
    },
    /// Serving failed.
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
}

impl AppState {
    /// Opens the root and builds the state.
    pub fn new(config: &Config) -> Result<Self, ServeError> {
        let root = confine::Root::new(&config.root).map_err(|source| ServeError::Root {
            path: config.root.clone(),
            source,
        })?;
        Ok(AppState {
            root,
            token: config.token.clone(),
            max_upload_bytes: config.max_upload_bytes,
            watcher: watcher::Hub::new(config.watch_max_dirs),
            stopping: tokio::sync::watch::Sender::new(false),
        })
    }
}

/// Serves the API on `listener` until `shutdown` resolves; then stops accepting, lets
/// in-flight requests finish for up to `shutdown_grace`, and returns.
pub async fn serve(
    listener: impl Into<Listener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_gateway(listener, config, Relays::default(), shutdown).await
}

/// [`serve`], with the gateway's relays.
pub async fn serve_gateway(
    listener: impl Into<Listener>,
    config: Config,
    relays: Relays,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = Arc::new(AppState::new(&config)?);
    let app = gateway_router(state.clone(), &relays);
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let app = app.into_make_service_with_connect_info::<listen::ConnSocket>();
    let server = axum::serve(listener.into(), app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing requests");
        // Event streams never finish by themselves: end them, so they do not hold the exit.
        state.stopping.send_replace(true);
        let _ = stopping_tx.send(());
    });
    let grace = config.shutdown_grace;
    tokio::select! {
        result = server => result?,
        () = async {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "requests still running after the grace period; stopping anyway");
        }
    }
    Ok(())
}

/// Runs blocking file-system work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("file-system task", &e))?
}
