//! The `octo-fileserver` binary: flags and environment, logging, signals, the listening
//! socket (socket-activated or bound), then [`fileserver::serve_gateway`].

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use fileserver::listen::{self, StdListener};
use fileserver::{Config, ListenAddr, Listener, Relays, Token};

/// The file server inside an Octo session container, and the session's gateway. The bearer
/// token is read from the file `--token-file` names, else from `OCTO_SESSION_TOKEN` (never
/// a flag: flags are visible in `ps`).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on: host:port, or a Unix socket (unix:PATH or /PATH). Ignored when
    /// a socket is passed by socket activation (LISTEN_FDS).
    #[arg(long, env = "OCTO_FILESERVER_LISTEN", default_value = "0.0.0.0:41821")]
    listen: ListenAddr,
    /// A file holding the bearer token (a trailing newline is ignored).
    #[arg(long, env = "OCTO_GATEWAY_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Relay /opencode/* to opencode at this address (the container's loopback).
    #[arg(long, env = "OCTO_GATEWAY_OPENCODE")]
    opencode: Option<SocketAddr>,
    /// Relay /terminal (WebSocket) to ttyd listening on this Unix socket.
    #[arg(long, env = "OCTO_GATEWAY_TERMINAL_SOCKET")]
    terminal_socket: Option<PathBuf>,
    /// Octod's model gateway socket, mounted into the session; with --llm-listen, each
    /// connection to that loopback address is relayed to it (for opencode).
    #[arg(long, env = "OCTO_GATEWAY_LLM_SOCKET", requires = "llm_listen")]
    llm_socket: Option<PathBuf>,
    /// The loopback address opencode reaches the model gateway at.
    #[arg(long, env = "OCTO_GATEWAY_LLM_LISTEN", requires = "llm_socket")]
    llm_listen: Option<SocketAddr>,
    /// A port of the session's own services that previews never reach nor list (besides
    /// --opencode's and --llm-listen's); repeatable.
    #[arg(
        long = "reserved-port",
        env = "OCTO_GATEWAY_RESERVED_PORTS",
        value_delimiter = ','
    )]
    reserved_ports: Vec<u16>,
    /// Seconds a relayed request waits for its service to accept connections, then 503.
    #[arg(long, env = "OCTO_GATEWAY_UPSTREAM_WAIT", default_value_t = 30)]
    upstream_wait: u64,
    /// The workspace root: nothing outside it is served.
    #[arg(long, env = "OCTO_FILESERVER_ROOT", default_value = "/home/dev")]
    root: PathBuf,
    /// Largest upload, in bytes, or with a K, M, G or T suffix (powers of 1024).
    #[arg(long, env = "OCTO_FILESERVER_MAX_UPLOAD", default_value = "16G", value_parser = parse_size)]
    max_upload: u64,
    /// Seconds in-flight requests may run on after SIGTERM.
    #[arg(long, env = "OCTO_FILESERVER_SHUTDOWN_GRACE", default_value_t = 10)]
    shutdown_grace: u64,
    /// Most directories watched for live changes (inotify); past it, clients poll the rest.
    /// 0 turns watching off.
    #[arg(long, env = "OCTO_FILESERVER_WATCH_MAX_DIRS", default_value_t = fileserver::watcher::DEFAULT_MAX_DIRS)]
    watch_max_dirs: usize,
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

/// The variables of socket activation. Read once, then removed from the environment, so that
/// nothing started from here inherits a claim on descriptors it does not have.
const ACTIVATION_VARS: [&str; 3] = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

fn main() -> ExitCode {
    let listen_fds = std::env::var("LISTEN_FDS").ok();
    for var in ACTIVATION_VARS {
        // SAFETY: no other thread exists yet (the runtime starts in `run`), so nothing reads
        // the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::remove_var(var);
        }
    }
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
    match run(args, listen_fds.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("octo-fileserver: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args, listen_fds: Option<&str>) -> anyhow::Result<()> {
    let token = read_token(args.token_file.as_deref())?;
    let config = Config {
        root: args.root,
        token,
        max_upload_bytes: args.max_upload,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        watch_max_dirs: args.watch_max_dirs,
    };
    let mut reserved = args.reserved_ports.clone();
    reserved.extend(args.opencode.map(|a| a.port()));
    reserved.extend(args.llm_listen.map(|a| a.port()));
    let relays = Relays {
        opencode: args.opencode,
        terminal_socket: args.terminal_socket,
        wait: Duration::from_secs(args.upstream_wait),
        previews: Some(fileserver::preview::Previews::new(reserved)),
    };
    // Taken before the runtime starts: nothing else in the process can have claimed fd 3.
    let activated: Option<StdListener> = listen::activated(listen_fds)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let (listener, origin) = match activated {
            Some(l) => (
                Listener::from_std(l).context("using the socket-activated socket")?,
                "socket activation",
            ),
            None => (Listener::bind(&args.listen).await?, "bound"),
        };
        tracing::info!(
            listen = %listener.describe(),
            origin,
            root = %config.root.display(),
            max_upload = config.max_upload_bytes,
            watch_max_dirs = config.watch_max_dirs,
            opencode = ?relays.opencode,
            terminal = ?relays.terminal_socket,
            "octo-fileserver ready"
        );
        let bridge = match (args.llm_listen, args.llm_socket) {
            (Some(listen), Some(socket)) => {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("binding the model gateway bridge on {listen}"))?;
                tracing::info!(%listen, socket = %socket.display(), "model gateway bridge ready");
                Some(tokio::spawn(fileserver::llm_bridge::run(listener, socket)))
            }
            _ => None,
        };
        fileserver::serve_gateway(listener, config, relays, shutdown_signal()).await?;
        if let Some(bridge) = bridge {
            bridge.abort();
        }
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

/// The token: from `token_file` when given, else from `OCTO_SESSION_TOKEN`. Errors never
/// include the contents.
fn read_token(token_file: Option<&Path>) -> anyhow::Result<Token> {
    if let Some(path) = token_file {
        let raw = std::fs::read(path)
            .with_context(|| format!("reading the token file {}", path.display()))?;
        return Token::new(trim_newline(raw))
            .with_context(|| format!("the token file {}", path.display()));
    }
    let token = std::env::var("OCTO_SESSION_TOKEN")
        .context("no token: set OCTO_SESSION_TOKEN or --token-file (OCTO_GATEWAY_TOKEN_FILE)")?;
    Token::new(token).context("OCTO_SESSION_TOKEN")
}

/// A file's contents without the line ending editors and `echo` add.
fn trim_newline(mut raw: Vec<u8>) -> Vec<u8> {
    while raw.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        raw.pop();
    }
    raw
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
    use super::{parse_size, trim_newline};

    #[test]
    fn token_files_lose_their_line_ending() {
        let check =
            |input: &[u8], expected: &[u8]| assert_eq!(trim_newline(input.to_vec()), expected);
        check(b"tok\n", b"tok");
        check(b"tok\r\n", b"tok");
        check(b"tok", b"tok");
        check(b" tok \n\n", b" tok ");
        check(b"\n", b"");
    }

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
