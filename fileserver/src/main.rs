//! The `octo-fileserver` binary: flags and environment, logging, signals, then [`fileserver::serve`].

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use fileserver::{Config, Token};

/// The file server inside an Octo session container. The bearer token is read from
/// `OCTO_SESSION_TOKEN` (never a flag: flags are visible in `ps`).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "OCTO_FILESERVER_LISTEN", default_value = "0.0.0.0:41821")]
    listen: SocketAddr,
    /// The workspace root: nothing outside it is served.
    #[arg(long, env = "OCTO_FILESERVER_ROOT", default_value = "/home/dev")]
    root: PathBuf,
    /// Largest upload, in bytes, or with a K, M, G or T suffix (powers of 1024).
    #[arg(long, env = "OCTO_FILESERVER_MAX_UPLOAD", default_value = "16G", value_parser = parse_size)]
    max_upload: u64,
    /// Seconds in-flight requests may run on after SIGTERM.
    #[arg(long, env = "OCTO_FILESERVER_SHUTDOWN_GRACE", default_value_t = 10)]
    shutdown_grace: u64,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix in {s:?} (use K, M, G or T)")),
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?}"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // The container runtime's log driver (journald) stamps every line already.
        .without_time()
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("octo-fileserver: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let token = std::env::var("OCTO_SESSION_TOKEN").context("reading OCTO_SESSION_TOKEN")?;
    let token = Token::new(token).context("OCTO_SESSION_TOKEN")?;
    let config = Config {
        root: args.root,
        token,
        max_upload_bytes: args.max_upload,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        tracing::info!(listen = %args.listen, root = %config.root.display(), max_upload = config.max_upload_bytes, "octo-fileserver ready");
        fileserver::serve(listener, config, shutdown_signal()).await?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

/// Resolves on SIGTERM (systemd, podman stop) or SIGINT (a terminal).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; shut down with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("16g"), Ok(16 << 30));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999T").is_err());
    }
}
