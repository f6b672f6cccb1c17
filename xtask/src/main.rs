//! Development automation for Octo: `cargo xtask ci | demo | testhost … | bench … | ui-e2e | oidc-e2e`.
//!
//! Every task installs what it needs itself, says what it is doing, and fails with a clear
//! message (never a panic) when something is missing.

mod bench;
mod ci;
mod demo;
mod dist;
mod image;
mod package;
mod rpm;
mod testhost;
mod ui;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Octo's development tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Everything CI checks: fmt, clippy, tests, and the end-to-end suite in the test host.
    Ci {
        /// Skip the end-to-end suite in the test host (for a quick local check only).
        #[arg(long, conflicts_with = "e2e_only")]
        no_e2e: bool,
        /// Only the end-to-end suite (skips fmt, clippy and the unit tests).
        #[arg(long)]
        e2e_only: bool,
        /// Of the end-to-end suite only the package checks (.deb in a bare host, .rpm).
        #[arg(long, conflicts_with = "no_e2e")]
        package_only: bool,
        /// Of the end-to-end suite only the dev-host checks (no package checks): with
        /// `OCTO_E2E_ONLY` and `OCTO_TESTHOST`, a quick run of a few checks beside another
        /// stack.
        #[arg(long, conflicts_with_all = ["no_e2e", "package_only"])]
        dev_host_only: bool,
        /// Of the package checks only the upgrade from the package before issue 13.
        #[arg(long, conflicts_with_all = ["no_e2e", "e2e_only", "package_only", "dev_host_only"])]
        previous_upgrade_only: bool,
    },
    /// (For `ci`: the package checks' release builds, run in the background while the
    /// dev-host checks run.)
    #[command(hide = true)]
    CiPrebuild,
    /// (For `ci`: the test hosts' and the base image's root file systems, debootstrapped in the
    /// background while the first checks compile and run.)
    #[command(hide = true)]
    CiWarm,
    /// Install the built .deb and Caddy into a throwaway test host as a sysadmin would; print
    /// the HTTPS URL and a first admin invite code. Ctrl-C tears it down.
    Demo {
        /// Run a stub model in the host and point octod's [llm] at it.
        #[arg(long)]
        stub_llm: bool,
    },
    /// Build the `octo` .deb and .rpm into target/dist/.
    Dist {
        /// Package revision (Debian revision, RPM release); a higher one upgrades.
        #[arg(long, default_value_t = 1)]
        revision: u32,
        /// Only the .deb.
        #[arg(long)]
        no_rpm: bool,
    },
    /// Manage the test host: a Debian 13 root with systemd and Podman 5, booted by nspawn.
    Testhost {
        #[command(subcommand)]
        command: TesthostCommand,
    },
    /// Benchmarks; each prints its ratio against its anchor.
    Bench {
        #[command(subcommand)]
        bench: Bench,
    },
    /// The browser end-to-end checks of the web UI against a running Octo (screenshots in
    /// target/ui-e2e/).
    UiE2e {
        /// Where the UI is served, e.g. https://127.0.0.1:8443 or a Vite dev server.
        #[arg(long)]
        base_url: String,
        /// An invite code to register the check's account with (an admin code covers every check).
        #[arg(long)]
        invite_code: String,
    },
    /// The OpenID Connect sign-in checks (a test provider, octod configured for it, the browser
    /// check 27-oidc) against the package installed in the running test host, e.g. by
    /// `cargo xtask demo --stub-llm` in another terminal; `cargo xtask ci` runs them too.
    OidcE2e,
}

#[derive(Debug, Subcommand)]
enum TesthostCommand {
    /// Debootstrap (cached) and boot a fresh test host.
    Up {
        /// A bare Debian 13 with systemd only (no Podman, no octo user), for the packages.
        #[arg(long)]
        bare: bool,
    },
    /// Run a command inside the test host (as root, or --user octo with its user manager).
    Exec {
        #[arg(long)]
        user: Option<String>,
        #[arg(required = true, last = true)]
        command: Vec<String>,
    },
    /// Power off and boot the same root again.
    Reboot,
    /// Power off and remove the working root; leaves no process or mount behind.
    Down,
    /// Whether the test host is up, and its systemd state.
    Status,
    /// Build the session image in the running test host (as `cargo xtask ci` does).
    #[command(hide = true)]
    Image,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// octo-fileserver vs Caddy's file_server.
    Fileserver,
    /// octod's proxy vs Caddy's reverse_proxy (HTTP, WebSocket round trip, RSS).
    Proxy,
    /// The proxy path with a personal API token vs with the session cookie (issue 16).
    ProxyAuth,
    /// Engine create→ready vs podman run + wait-until-healthy, in the test host.
    SessionStart,
    /// Memory of 1, 5 and 10 idle-running sessions and octod's RSS per session; a reconcile
    /// pass over 200 sessions vs over 20 (issue 18), in the test host.
    Density,
    /// Streaming through octod's model gateway vs straight to the same provider (issue 15).
    Llm,
    /// A snapshot, restore and fork copy of a 1 GiB home by octod's worker vs tar + zstd and
    /// cp --reflink (issue 17).
    Snapshot,
    /// The web UI in Chromium (a 10,000-entry folder, a 500-message conversation): this
    /// tree's UI vs the anchor's, long tasks and timings.
    Ui {
        /// The anchor's commit (default: the UI before issue 19).
        #[arg(long)]
        baseline: Option<String>,
        /// Runs of each scenario per UI; medians are printed.
        #[arg(long, default_value_t = 5)]
        runs: u32,
        /// Measure a real stack (Caddy in front of octod) instead of the harness: sign in as
        /// --user/--password and open --folder in --session.
        #[arg(long, requires_all = ["user", "password", "session", "folder"], conflicts_with = "baseline")]
        base_url: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        session: Option<String>,
        /// An existing folder of the session, e.g. /big.
        #[arg(long)]
        folder: Option<String>,
    },
}

fn main() -> ExitCode {
    util::start_clock();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.task {
        Task::Ci {
            previous_upgrade_only: true,
            ..
        } => ci::previous_upgrade()?,
        Task::Ci {
            no_e2e,
            e2e_only,
            package_only,
            dev_host_only,
            previous_upgrade_only: false,
        } => ci::run(&ci::Options {
            e2e: !no_e2e,
            checks: !e2e_only && !package_only && !dev_host_only,
            dev_host: !package_only,
            package: !dev_host_only,
        })?,
        Task::CiPrebuild => ci::prebuild()?,
        Task::CiWarm => ci::warm()?,
        Task::Demo { stub_llm } => demo::run(demo::Options { stub_llm })?,
        Task::Dist { revision, no_rpm } => {
            dist::run(&dist::Options { revision, no_rpm })?;
        }
        Task::Testhost { command } => match command {
            TesthostCommand::Up { bare: false } => testhost::up()?,
            TesthostCommand::Up { bare: true } => testhost::up_bare()?,
            TesthostCommand::Down => testhost::down()?,
            TesthostCommand::Reboot => testhost::reboot()?,
            TesthostCommand::Status => testhost::status()?,
            TesthostCommand::Image => {
                let build = image::build_session_image()?;
                println!("session image: {build}");
            }
            TesthostCommand::Exec { user, command } => {
                let code = testhost::exec(&command, &testhost::ExecOptions { user, env: vec![] })?;
                return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
            }
        },
        Task::Bench { bench } => match bench {
            Bench::Fileserver => bench::fileserver::run()?,
            Bench::Proxy => bench::proxy::run()?,
            Bench::ProxyAuth => bench::proxy::run_auth()?,
            Bench::SessionStart => bench::session_start::run()?,
            Bench::Density => bench::session_start::run_in_bench_host("density")?,
            Bench::Llm => bench::llm::run()?,
            Bench::Snapshot => bench::snapshot::run()?,
            Bench::Ui {
                baseline,
                runs,
                base_url,
                user,
                password,
                session,
                folder,
            } => {
                let stack = match (base_url, user, password, session, folder) {
                    (Some(base_url), Some(user), Some(password), Some(session), Some(folder)) => {
                        Some(bench::ui::Stack {
                            base_url,
                            user,
                            password,
                            session,
                            folder,
                        })
                    }
                    _ => None,
                };
                bench::ui::run(&bench::ui::Options {
                    baseline,
                    runs,
                    stack,
                })?;
            }
        },
        Task::UiE2e {
            base_url,
            invite_code,
        } => ui::browser_e2e(&base_url, &invite_code)?,
        Task::OidcE2e => package::oidc_checks()?,
    }
    Ok(ExitCode::SUCCESS)
}
