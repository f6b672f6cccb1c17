//! `cargo xtask ci`: everything CI checks, in the order that fails fastest.

use std::os::unix::process::CommandExt as _;
use std::time::Instant;

use anyhow::Context as _;

use crate::testhost::{self, ExecOptions};
use crate::util::{self, step};

#[derive(Debug, Clone)]
// Four independent switches of the command line, one per part of the run.
#[allow(clippy::struct_excessive_bools)]
pub struct Options {
    /// The end-to-end suite in the test host.
    pub e2e: bool,
    /// fmt, clippy and the unit and integration tests.
    pub checks: bool,
    /// The dev-host checks of the end-to-end suite.
    pub dev_host: bool,
    /// The package checks of the end-to-end suite.
    pub package: bool,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let started = Instant::now();
    if options.e2e {
        util::require_root("ci")?;
        testhost::install_prerequisites()?;
    }
    // The root file systems the end-to-end checks boot from are debootstrapped meanwhile:
    // that waits mostly on the network and the disk, the checks on the processor.
    let warm = if options.e2e {
        Some(Background::start(
            "ci-warm",
            "the test hosts' and the base image's root file systems",
        )?)
    } else {
        None
    };
    if options.checks
        && let Err(e) = checks()
    {
        if let Some(warm) = warm {
            warm.stop();
        }
        return Err(e);
    }
    if let Some(warm) = warm {
        warm.finish()?;
    }
    if options.e2e {
        // The package checks' release builds go on in the background while the dev-host
        // checks run: those mostly wait on systemd and Podman, so the builds cost the run
        // little time there, and much after them.
        let prebuild = if options.dev_host && options.package {
            Some(Background::start(
                "ci-prebuild",
                "the release builds of the package checks",
            )?)
        } else {
            None
        };
        if options.dev_host {
            let checked = e2e();
            if let Some(prebuild) = prebuild {
                if checked.is_ok() {
                    prebuild.finish()?;
                } else {
                    prebuild.stop();
                }
            }
            checked?;
        }
        if options.package {
            step("package checks: the .deb in a bare test host, the .rpm with rpm -qp");
            util::run(&mut util::cargo(["build", "-p", "octo-e2e"]))?;
            crate::package::check()?;
        }
    }
    step(format!("ci passed in {:.0?}", started.elapsed()));
    Ok(())
}

/// Formatting, lints, the Rust tests and the web UI's checks.
fn checks() -> anyhow::Result<()> {
    step("cargo fmt --check");
    util::run(&mut util::cargo(["fmt", "--all", "--check"]))
        .context("formatting differs: run `cargo fmt --all`")?;
    step("cargo clippy --workspace --all-targets -- -D warnings");
    util::run(&mut util::cargo([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    step("unit and integration tests");
    util::run(&mut util::cargo(["test", "--workspace"]))?;
    frontend()?;
    Ok(())
}

/// `cargo xtask ci-prebuild`: this tree's release binaries, the packaging tool, then the
/// previous package (built once and cached; [`crate::package::previous_deb`] seeds its build
/// with this tree's release dependencies, so it comes after them).
pub fn prebuild() -> anyhow::Result<()> {
    util::run(&mut util::cargo([
        "build",
        "--release",
        "-p",
        "octod",
        "-p",
        "octoctl",
        "-p",
        "octo-fileserver",
    ]))?;
    // The .deb's packaging tool (cargo-deb, compiled from source the first time).
    crate::dist::ensure_tools()?;
    crate::package::previous_deb()?;
    Ok(())
}

/// `cargo xtask ci-warm`: the cached root file systems of the test hosts (both flavours) and
/// of the session image's base, debootstrapped where missing.
pub fn warm() -> anyhow::Result<()> {
    testhost::warm_caches()?;
    crate::image::ensure_base_rootfs()?;
    Ok(())
}

/// A task of this program (`ci-prebuild`, `ci-warm`) run as a child process beside the
/// checks, niced, its output in a log file under the target directory.
struct Background {
    child: std::process::Child,
    what: &'static str,
    log: std::path::PathBuf,
    started: Instant,
}

impl Background {
    fn start(task: &'static str, what: &'static str) -> anyhow::Result<Self> {
        let log = util::target_dir().join(format!("{task}.log"));
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let exe = std::env::current_exe().context("this program's path")?;
        step(format!(
            "in the background: {what} (log: {})",
            log.display()
        ));
        let child = std::process::Command::new("nice")
            .args(["-n", "15"])
            // A group of its own, so that `stop` ends its children with it.
            .process_group(0)
            .arg(exe)
            .arg(task)
            .current_dir(util::workspace_root())
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {what} in the background"))?;
        Ok(Self {
            child,
            what,
            log,
            started: Instant::now(),
        })
    }

    /// Waits for the task; a failure shows the end of its log.
    fn finish(mut self) -> anyhow::Result<()> {
        step(format!("waiting for {}", self.what));
        let status = self.child.wait()?;
        if status.success() {
            step(format!(
                "{} finished ({:.0?} after they started)",
                self.what,
                self.started.elapsed()
            ));
            return Ok(());
        }
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(60)..] {
            eprintln!("  {line}");
        }
        anyhow::bail!(
            "{} failed in the background ({status}); the whole log is {}",
            self.what,
            self.log.display()
        )
    }

    /// Ends the task (a check failed: the run stops here).
    fn stop(mut self) {
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

/// `cargo xtask ci --previous-upgrade-only`: the upgrade from the package before issue 13
/// in a bare test host, alone.
pub fn previous_upgrade() -> anyhow::Result<()> {
    util::require_root("ci")?;
    testhost::install_prerequisites()?;
    util::run(&mut util::cargo(["build", "-p", "octo-e2e"]))?;
    crate::package::upgrade_from_previous(None)
}

/// The web UI in `frontend/`: a clean install from the lock file, its unit tests, and the
/// production build (which fails when the sign-in page's initial JS is over its size budget).
fn frontend() -> anyhow::Result<()> {
    let dir = util::workspace_root().join("frontend");
    let npm = |args: &[&str]| {
        let mut cmd = std::process::Command::new("npm");
        cmd.current_dir(&dir).args(args);
        cmd
    };
    step("frontend: package-lock.json names every platform package");
    let mut check = std::process::Command::new("node");
    check
        .current_dir(&dir)
        .args(["scripts/complete-lock.mjs", "--check"]);
    util::run(&mut check)?;
    step("frontend: npm ci");
    util::run(&mut npm(&["ci", "--no-audit", "--no-fund"]))
        .context("installing the frontend's dependencies (needs Node.js 18 or later and npm)")?;
    step("frontend: npm test");
    util::run(&mut npm(&["test"]))?;
    step("frontend: npm run build");
    util::run(&mut npm(&["run", "build"]))?;
    Ok(())
}

/// A named end-to-end check run inside the test host.
struct Check {
    name: &'static str,
    user: Option<&'static str>,
    args: &'static [&'static str],
    /// Reboot the host before this check.
    reboot_before: bool,
}

const fn check(name: &'static str, args: &'static [&'static str]) -> Check {
    Check {
        name,
        user: Some(testhost::OCTO_USER),
        args,
        reboot_before: false,
    }
}

/// The suite, in order: later checks build on earlier ones, and two reboots in the middle
/// prove what must survive them.
const CHECKS: &[Check] = &[
    check(
        "rendered session units pass Podman's Quadlet generator without warnings",
        &["quadlet-generator"],
    ),
    check(
        "octod's Podman client against the real Podman 5 API",
        &["podman-client"],
    ),
    check(
        "session image: every template through the engine, its services checked for real, the agent loop",
        &["image"],
    ),
    check(
        "octod serve: invite codes, sessions through the API and the proxy, owner-only access, a stopped session refused (409)",
        &["api"],
    ),
    Check {
        name: "the session's wall: an unprivileged user sees no TCP port, no token in argv, EACCES on the socket; no port squatting after podman kill",
        user: None,
        args: &["boundary", "wall"],
        reboot_before: false,
    },
    check(
        "socket activation: an idle-stopped session wakes on a connection with octod stopped, and through octod without octod starting it; a user-stopped one answers 409 and stays stopped",
        &["boundary", "wake"],
    ),
    check(
        "octod serve: 10 concurrent creates by one user against a limit of 2 leave exactly 2 sessions",
        &["session-limit"],
    ),
    check(
        "limits and admission: [limits] in units and podman inspect, bad limits refused; max running per user and host under concurrent creates, idle sessions stopped to make room, the memory floor",
        &["limits"],
    ),
    Check {
        name: "disk usage and quota: homes measured (API, octoctl session list, /metrics), the warning and the agent's notice before the quota, 507 on uploads past it, a start refused (503) below the state directory's free-space floor",
        user: None,
        args: &["disk"],
        reboot_before: false,
    },
    Check {
        name: "snapshots: a running session's home taken (paused), listed (API, octoctl), restored byte-identical (manifest of paths, modes, SHA-256s); another user 404, a taken name and a busy session 409; kill -9 of the worker and of octod leave nothing listed or left after a reconcile; the quota 507",
        user: None,
        args: &["snapshot"],
        reboot_before: false,
    },
    Check {
        name: "instance backup: octoctl backup create while a session is written to (progress, 0600, verify), a truncated and a future archive refused changing nothing, then a wiped host restored: users sign in, the invite code works, the running session runs with its files read at one instant, the stopped one stopped, snapshots and the audit log back",
        user: None,
        args: &["backup"],
        reboot_before: false,
    },
    check(
        "octod's proxy: the opencode SDK with a cookie, 100 MiB both ways, the authorization matrix",
        &["api-sdk"],
    ),
    check(
        "idle stop with work: an agent's three-minute tool call and a `sleep 180` in a tmux pane keep their sessions running (no browser), each stops an idle time after its work; a quiet session stops on time",
        &["idle-work"],
    ),
    check(
        "previews: apps started in a session listed by /ports, reached on their content host with a ticket (python3 -m http.server, a WebSocket echo), another user 404, the session's own ports 403, nothing listening 502",
        &["previews"],
    ),
    check(
        "the model gateway: the key only in octod's credential, a prompt answered through it, sessions walled from each other's sockets, usage on the right user and session, OpenAI-shaped errors, the provider down",
        &["llm"],
    ),
    Check {
        name: "octoctl over the admin socket: root, octo-admin, refused for others; users, invite codes, sessions, image build, container refresh",
        user: None,
        args: &["admin"],
        reboot_before: false,
    },
    check(
        "quadlet unit started over D-Bus, port answers",
        &["smoke", "start"],
    ),
    check(
        "engine: create → running → stop → resume → delete, nothing left behind",
        &["engine", "lifecycle"],
    ),
    check(
        "engine: bad input gives typed errors and changes nothing",
        &["engine", "bad-input"],
    ),
    check(
        "engine: 20 concurrent creates, distinct sockets, all running",
        &["engine", "concurrent"],
    ),
    check(
        "engine: kill -9 during create and delete, the reconciler converges",
        &["engine", "crash"],
    ),
    check(
        "engine: idle stop keeps the socket, a connection wakes the session without octod, the reconciler reacts to a unit's PropertiesChanged",
        &["engine", "idle"],
    ),
    check(
        "engine: a session whose agent is in a turn is not idle-stopped; it stops the idle time after the turn ends",
        &["engine", "agent"],
    ),
    check(
        "engine: a running session whose container unit changed is restarted once (upgrade in place)",
        &["engine", "upgrade-restart"],
    ),
    check(
        "engine: a running, an idle and a stopped session before a reboot",
        &["engine", "reboot-setup"],
    ),
    Check {
        name: "the smoke unit came back after a reboot",
        user: Some(testhost::OCTO_USER),
        args: &["smoke", "after-reboot"],
        reboot_before: true,
    },
    check(
        "engine: after the reboot the running session is back with its files, the idle one's socket listens and wakes it, the stopped one stayed stopped",
        &["engine", "reboot-check"],
    ),
    // A reboot of its own: the boundary's `octod serve` has a store of its own, and its
    // reconciler removes every `octo-*` session its store does not know (as one octod per host
    // should), the engine check's sessions included; and the engine check's reconcile would
    // remove the boundary's.
    check(
        "boundary: a running, an idle-stopped and a user-stopped session, each with a file, before a reboot",
        &["boundary", "reboot-setup"],
    ),
    Check {
        name: "boundary after the reboot: running is back, idle wakes on its first request, stopped stays stopped; files intact",
        user: Some(testhost::OCTO_USER),
        args: &["boundary", "reboot-check"],
        reboot_before: true,
    },
    check("the smoke unit stops and is removed", &["smoke", "remove"]),
];

/// The end-to-end suite: builds the programs, boots a fresh test host, runs each check in it,
/// and always takes the host down again.
fn e2e() -> anyhow::Result<()> {
    step("building octod and the end-to-end programs");
    util::run(&mut util::cargo([
        "build", "-p", "octod", "-p", "octoctl", "-p", "octo-e2e",
    ]))?;
    // A host left over from an interrupted run would not be fresh.
    testhost::down()?;
    testhost::up()?;
    let result = crate::image::build_session_image()
        .map(|build| step(format!("session image: {build}")))
        .and_then(|()| run_checks());
    let down = testhost::down();
    let (passed, failed) = result?;
    down?;
    println!("e2e: {passed} passed, {failed} failed");
    if failed > 0 {
        anyhow::bail!("{failed} end-to-end checks failed");
    }
    Ok(())
}

fn run_checks() -> anyhow::Result<(usize, usize)> {
    let program = format!("{}/debug/octo-e2e", testhost::GUEST_TARGET);
    let (mut passed, mut failed) = (0, 0);
    // For development: `OCTO_E2E_ONLY=api,api-sdk` runs only those checks (their arguments
    // joined by spaces, e.g. `engine idle`), in the suite's order.
    let only: Option<Vec<String>> = std::env::var("OCTO_E2E_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    for check in CHECKS {
        if only
            .as_ref()
            .is_some_and(|only| !only.contains(&check.args.join(" ")))
        {
            continue;
        }
        if check.reboot_before {
            testhost::reboot()?;
        }
        step(format!("e2e: {}", check.name));
        let mut command = vec![program.clone()];
        command.extend(check.args.iter().map(ToString::to_string));
        let options = ExecOptions {
            user: check.user.map(str::to_owned),
            env: vec![("RUST_BACKTRACE".into(), "1".into())],
        };
        let code = testhost::exec(&command, &options)?;
        if code == 0 {
            passed += 1;
            println!("e2e: {} ... ok", check.name);
        } else {
            failed += 1;
            println!("e2e: {} ... FAILED (exit code {code})", check.name);
            // Later checks depend on earlier ones; stop here.
            break;
        }
    }
    Ok((passed, failed))
}
