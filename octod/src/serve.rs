//! `octod serve`: obtain the listeners, serve the API, tell systemd we are ready, and shut
//! down cleanly on SIGTERM.

use std::net::SocketAddr;

use crate::listen::{self, Origin};

/// Options of `octod serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address bound when systemd passed no socket.
    pub listen: SocketAddr,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(options: ServeOptions) -> anyhow::Result<()> {
    use anyhow::Context as _;

    let (listener, origin) = listen::http_listener(options.listen).await?;
    let local = listener
        .local_addr()
        .context("reading the listener's address")?;
    match origin {
        Origin::SocketActivation => {
            tracing::info!(%local, "serving HTTP on the socket from systemd");
        }
        Origin::Bound => tracing::info!(%local, "serving HTTP"),
    }
    let app = crate::api::router(crate::api::AppState::default());

    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("serving"),
    ]);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopped");
    Ok(())
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
