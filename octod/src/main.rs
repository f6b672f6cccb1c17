//! The `octod` binary: parse arguments, set up logging, run.

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
        /// Address (ip:port) or Unix socket path to bind when systemd passes no socket
        /// (overrides server.listen).
        #[arg(long)]
        listen: Option<octod::http::peer::ListenAddr>,
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
    /// The snapshot worker: run by octod as a transient unit under `podman unshare`.
    #[command(hide = true)]
    SnapshotWorker {
        /// Where the error is written when the work fails, for octod to read (its journal
        /// lines can reach the journal after octod has seen the unit fail).
        #[arg(long)]
        report: Option<PathBuf>,
        #[command(subcommand)]
        command: WorkerCommand,
    },
    /// Show or check the configuration (`/etc/octo/octod.toml` and `octod.d/*.toml`).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
        /// The main configuration file; its drop-ins are `<name>.d/*.toml` beside it.
        #[arg(long, global = true, default_value = octod::config::MAIN_FILE)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum WorkerCommand {
    /// Archive HOME into PARTIAL, then rename PARTIAL to DONE.
    Create {
        #[arg(long)]
        home: PathBuf,
        #[arg(long)]
        partial: PathBuf,
        #[arg(long)]
        done: PathBuf,
        /// The most bytes the archive may take (what is left of the user's quota).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Copy FROM beside HOME (reflink where possible) and swap it in (a fork).
    Copy {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        home: PathBuf,
    },
    /// Remove what an interrupted restore or fork left beside HOME.
    Clean {
        #[arg(long)]
        home: PathBuf,
    },
    /// Unpack the snapshot in SNAPSHOT beside HOME and swap it in.
    Restore {
        #[arg(long)]
        snapshot: PathBuf,
        #[arg(long)]
        home: PathBuf,
        #[arg(long)]
        progress: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration and where each value came from.
    Show,
    /// Validate the configuration; exit 1 with the file and key at fault.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::SnapshotWorker { report, command } = &cli.command {
        // Its lines go to the unit's journal; a failure's reason also to the report file,
        // where octod reads it once the unit has ended.
        return match snapshot_worker(command) {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("octod snapshot-worker: {error}");
                if let Some(report) = report {
                    if let Err(e) = std::fs::write(report, error.to_string()) {
                        eprintln!("octod snapshot-worker: writing {}: {e}", report.display());
                    }
                }
                ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
            }
        };
    }
    if let Command::Config { command, config } = &cli.command {
        // No logging and no runtime: a plain report on stdout, errors on stderr.
        return match config_command(command, config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("octod: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
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
                settings.listen = listen.clone();
            }
            runtime.block_on(octod::serve::run(settings))
        }
        Command::GenerateAssets { .. } | Command::SnapshotWorker { .. } => Ok(()),
        Command::Config { command, config } => config_command(command, config),
    }
}

fn snapshot_worker(command: &WorkerCommand) -> Result<String, octod::snapshot::WorkerError> {
    match command {
        WorkerCommand::Create {
            home,
            partial,
            done,
            limit,
        } => {
            let meta = octod::snapshot::create(home, partial, done, *limit)?;
            Ok(format!(
                "snapshot {} of session {}: {} files, {} bytes, archived in {} bytes",
                meta.id, meta.session, meta.files, meta.home_bytes, meta.archive_bytes
            ))
        }
        WorkerCommand::Copy { from, home } => {
            octod::snapshot::clean(home)?;
            octod::snapshot::copy(from, home)?;
            Ok(format!("copied {} into {}", from.display(), home.display()))
        }
        WorkerCommand::Clean { home } => {
            octod::snapshot::clean(home)?;
            Ok(format!("cleaned beside {}", home.display()))
        }
        WorkerCommand::Restore {
            snapshot,
            home,
            progress,
        } => {
            octod::snapshot::clean(home)?;
            octod::snapshot::restore(snapshot, home, progress)?;
            Ok(format!(
                "restored {} into {}",
                snapshot.display(),
                home.display()
            ))
        }
    }
}

fn config_command(command: &ConfigCommand, config: &std::path::Path) -> anyhow::Result<()> {
    let dropins = config.with_extension("d");
    let settings = octod::config::load(config, &dropins)?;
    match command {
        ConfigCommand::Show => print!("{}", settings.show()),
        ConfigCommand::Check => {
            settings
                .limits
                .check_host(&octod::limits::HostFacts::read())?;
            let mut limits =
                octod::limits::check_warnings(&settings.limits, &settings.templates_dir);
            // The homes are the octo user's, where there is one; else this user's.
            let home = nix::unistd::User::from_name("octo")
                .ok()
                .flatten()
                .map(|u| u.dir)
                .or_else(|| std::env::var_os("HOME").map(std::path::PathBuf::from));
            if let Some(home) = home {
                limits.extend(octod::limits::state_dir_warnings(
                    &settings.admission,
                    &settings.state_dir,
                    &octod::limits::volumes_dir(&home),
                ));
            }
            for warning in octod::config::warnings(&settings).into_iter().chain(limits) {
                eprintln!("octod: warning: {warning}");
            }
            let files: Vec<String> = settings
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            if files.is_empty() {
                println!(
                    "configuration OK (no files at {} or {}: defaults only)",
                    config.display(),
                    dropins.display()
                );
            } else {
                println!("configuration OK: {}", files.join(", "));
            }
        }
    }
    Ok(())
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
