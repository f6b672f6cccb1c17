//! The `octod` binary: parse arguments, set up logging, run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The Octo daemon.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (socket-activated under systemd, or bound to --listen).
    Serve {
        /// Address to bind when systemd passes no socket (overrides server.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// The main configuration file; its drop-ins are `<name>.d/*.toml` beside it.
        #[arg(long, default_value = octod::config::MAIN_FILE)]
        config: PathBuf,
    },
    /// Write the man pages into DIR/man (for packaging).
    #[command(hide = true)]
    GenerateAssets {
        /// Where `man/` is written.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("octod: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    if let Command::GenerateAssets { dir } = &cli.command {
        return generate_assets(dir);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match &cli.command {
        Command::Serve { listen, config } => {
            let dropins = config.with_extension("d");
            let mut settings = octod::config::load(config, &dropins)?;
            if let Some(listen) = listen {
                settings.listen = *listen;
            }
            runtime.block_on(octod::serve::run(settings))
        }
        Command::GenerateAssets { .. } => Ok(()),
    }
}

/// `octod generate-assets DIR`: `DIR/man/octod.1` and one page per subcommand.
fn generate_assets(dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use clap::CommandFactory as _;
    let man = dir.join("man");
    std::fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    clap_mangen::generate_to(Cli::command(), &man)
        .with_context(|| format!("writing man pages into {}", man.display()))
}

/// Logs to the journal when started by systemd (it records time and unit), else to stderr.
fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("OCTOD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    if under_journal && let Ok(journald) = tracing_journald::layer() {
        tracing_subscriber::registry()
            .with(filter)
            .with(journald)
            .init();
        return;
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
}
