//! `octo-e2e`: end-to-end checks that run inside the test host, against a real systemd user
//! manager and real rootless Podman. `cargo xtask ci` runs each subcommand in order (with a
//! reboot of the host where a check needs one); a non-zero exit fails the check.

// The checks are long sequential scenarios awaited once each; boxing them buys nothing.
#![allow(clippy::large_futures)]

mod admin;
mod api;
mod api_sdk;
mod backup;
mod bench;
mod boundary;
mod clients;
mod density;
mod disk;
mod engine;
mod generator;
mod idle_work;
mod image;
mod limits;
mod llm;
mod package;
mod package_backup;
mod podman;
mod previews;
mod session_limit;
mod smoke;
mod snapshot;
mod stub_llm;
mod tokens;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Octo's end-to-end checks (run inside the test host)")]
struct Cli {
    #[command(subcommand)]
    check: Check,
}

#[derive(Debug, Subcommand)]
enum Check {
    /// A Quadlet unit driven over D-Bus: start, survive a reboot, stop and remove.
    Smoke {
        #[command(subcommand)]
        phase: smoke::Phase,
    },
    /// Session units rendered by octod go through Podman's real Quadlet generator.
    QuadletGenerator,
    /// Benchmarks that need the test host; they print numbers and assert none.
    Bench {
        #[command(subcommand)]
        bench: BenchKind,
    },
    /// The session image: build through octod, each template's services, the agent loop.
    Image,
    /// The real `octod serve` over its socket: accounts, sessions, authorization.
    Api,
    /// octod's model gateway (issue 15): the key as a credential, the walls between sessions,
    /// the usage book, bad input, the provider down.
    Llm,
    /// The session's wall (issue 13): no TCP port, no token in argv, the socket refused to
    /// others, no port squatting; socket activation; a reboot with running, idle-stopped and
    /// user-stopped sessions. `wall` runs as root, the others as `octo`.
    Boundary {
        #[command(subcommand)]
        phase: boundary::Phase,
    },
    /// The per-user session limit under 10 concurrent creates through the real `octod serve`.
    SessionLimit,
    /// Issue 18: limits from `[limits]` in units and `podman inspect`, bad limits refused,
    /// admission control (running maxima under concurrent creates, the memory floor, idle
    /// sessions stopped to make room) through the real `octod serve`.
    Limits,
    /// Issue 18: disk usage measured and shown (API, `octoctl session list`, `/metrics`), the
    /// per-user quota (the warning, the agent's notice, 507 on uploads past it) and the free-space
    /// floor of octod's state directory (runs as root, octod as `octo`).
    Disk {
        /// The part that runs as `octo` (the stand-in image); the check runs it itself.
        #[arg(long, hide = true)]
        prepare: bool,
    },
    /// Issue 17: snapshots of a session's home (take while running, list, restore
    /// byte-identical, owner checks, 409s, kill -9 of the worker and of octod, the quota)
    /// through the real `octod serve` (runs as root, octod as `octo`).
    Snapshot {
        /// The part that runs as `octo` (the stand-in image); the check runs it itself.
        #[arg(long, hide = true)]
        prepare: bool,
    },
    /// Issue 17, part 3: `octoctl backup create` of a running instance (a session written to
    /// meanwhile), `verify`, refusals of a damaged or future archive, then a wiped host
    /// restored: users, invite codes, sessions (running ones running), files, snapshots, the
    /// audit log (runs as root, octod as `octo`).
    Backup {
        /// The part that runs as `octo` (the stand-in image); the check runs it itself.
        #[arg(long, hide = true)]
        prepare: bool,
    },
    /// `octoctl` over octod's admin socket, as root, octo-admin and an unprivileged user
    /// (runs as root).
    Admin {
        /// The part that runs as `octo` (images); the check runs it itself.
        #[arg(long, hide = true)]
        prepare: bool,
    },
    /// Clients through octod's proxy: the opencode SDK, 100 MiB transfers, authorization.
    ApiSdk,
    /// Previews: apps in a session on the content origin, through octod and the gateway.
    Previews,
    /// The idle stop leaves an agent's long turn and a terminal's command alone, and stops a
    /// quiet session on time (issue 18, part 4).
    IdleWork,
    /// octod's Podman API client against the real Podman 5 socket.
    PodmanClient,
    /// The installed `octo` package through Caddy: activation, octoctl, a session, reboot,
    /// upgrade, remove, purge (one phase per step; run as root in a bare host).
    Package {
        #[command(subcommand)]
        phase: package::Phase,
    },
    /// The session engine: lifecycle, concurrency, bad input, crashes, reboots.
    Engine {
        #[command(subcommand)]
        phase: engine::Phase,
    },
    /// Not a check: serves the stub OpenAI-compatible model of the agent-loop checks on
    /// 0.0.0.0:PORT until killed (for the UI's development stack and its browser checks).
    StubLlm {
        #[arg(long)]
        port: u16,
    },
    /// Not a check: runs `echo $((6*7))` in a session's terminal through its gateway's
    /// `/terminal` on the session's socket (the token read from a file) and prints the output.
    Terminal {
        #[arg(long)]
        socket: std::path::PathBuf,
        #[arg(long)]
        token_file: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum BenchKind {
    /// Engine create→ready and resume→ready against podman run→healthy.
    SessionStart {
        #[arg(long, default_value_t = 7)]
        rounds: u32,
    },
    /// Memory of N idle-running sessions and octod's RSS per session; a reconcile pass over
    /// 20 sessions against one over 200 (issue 18).
    Density,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `OCTO_E2E_LOG=octod=debug` shows what the engine does, with timings.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("OCTO_E2E_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("octo-e2e: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.check {
            Check::Smoke { phase } => smoke::run(phase).await,
            Check::QuadletGenerator => generator::run(),
            Check::Engine { phase } => engine::run(phase).await,
            Check::PodmanClient => podman::run().await,
            Check::Image => image::run().await,
            Check::Api => api::run().await,
            Check::Llm => llm::run().await,
            Check::Boundary { phase } => boundary::run(phase).await,
            Check::SessionLimit => session_limit::run().await,
            Check::Limits => limits::run().await,
            Check::Disk { prepare: true } => disk::prepare(),
            Check::Disk { prepare: false } => disk::run().await,
            Check::Snapshot { prepare: true } => snapshot::prepare(),
            Check::Snapshot { prepare: false } => snapshot::run().await,
            Check::Backup { prepare: true } => backup::prepare(),
            Check::Backup { prepare: false } => backup::run().await,
            Check::Admin { prepare: true } => admin::prepare(),
            Check::Admin { prepare: false } => admin::run().await,
            Check::ApiSdk => api_sdk::run().await,
            Check::Previews => previews::run().await,
            Check::IdleWork => idle_work::run().await,
            Check::Package { phase } => package::run(phase).await,
            Check::StubLlm { port } => stub_llm::serve(port).await,
            Check::Terminal { socket, token_file } => {
                image::terminal_probe(&socket, &token_file).await
            }
            Check::Bench {
                bench: BenchKind::SessionStart { rounds },
            } => bench::session_start(rounds).await,
            Check::Bench {
                bench: BenchKind::Density,
            } => density::run().await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("octo-e2e: FAILED: {error:#}");
            ExitCode::FAILURE
        }
    }
}
