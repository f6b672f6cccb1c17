//! `cargo xtask demo`: a throwaway test host running the current build of `octod`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;

use crate::testhost::{self, ExecOptions};
use crate::util::{self, step};

/// Where octod listens; the test host shares the outer network namespace.
const LISTEN: &str = "127.0.0.1:8484";

pub fn run() -> anyhow::Result<()> {
    util::require_root("demo")?;
    step("building octod");
    util::run(&mut util::cargo(["build", "-p", "octod"]))?;
    testhost::up()?;
    let code = match start_octod() {
        Ok(code) => code,
        Err(error) => {
            let _ = testhost::down();
            return Err(error);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    println!();
    println!("Octo is running in the test host:");
    println!("    http://{LISTEN}/          (health: http://{LISTEN}/api/health)");
    println!("    first admin invite code: {code}");
    println!(
        "    register: curl -H 'Content-Type: application/json' -d '{{\"invite_code\":\"{code}\",\"username\":\"admin\",\"password\":\"…\"}}' http://{LISTEN}/api/auth/register"
    );
    println!();
    println!("Press Ctrl-C (or run `cargo xtask testhost down`) to stop and clean up.");
    let paths = testhost::Paths::new();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(300));
        if !paths.root().exists() {
            step("the test host was taken down");
            return Ok(());
        }
    }
    println!();
    testhost::down()
}

/// The demo's configuration: state and units under the `octo` user's home, templates from
/// the workspace.
const CONFIG: &str = "[server]\n\
state_dir = \"/var/lib/octo/octod\"\n\
\n\
[sessions]\n\
templates_dir = \"/opt/octo/src/container/templates\"\n";

fn start_octod() -> anyhow::Result<String> {
    let binary = format!("{}/debug/octod", testhost::GUEST_TARGET);
    let root = testhost::Paths::new().root();
    std::fs::create_dir_all(root.join("etc/octo"))?;
    std::fs::write(root.join("etc/octo/octod.toml"), CONFIG)?;
    step("starting octod in the test host (a notify service as the octo user)");
    testhost::exec_ok(
        &[
            "systemd-run",
            "--unit=octod",
            "--uid=octo",
            "--gid=octo",
            "--property=Type=notify",
            "--property=Wants=network-online.target",
            "--property=After=network-online.target",
            "--property=After=user@996.service",
            "--setenv=OCTOD_LOG=info",
            "--setenv=HOME=/var/lib/octo",
            &binary,
            "serve",
            "--listen",
            LISTEN,
        ],
        &ExecOptions::default(),
    )?;
    step("checking /api/health from outside");
    let body = util::output(std::process::Command::new("curl").args([
        "-fsS",
        "--retry",
        "10",
        "--retry-connrefused",
        "--retry-delay",
        "1",
        &format!("http://{LISTEN}/api/health"),
    ]))?;
    println!("{}", body.trim());
    // octod logs the first admin invite code once, on its first start.
    invite_code()
}

/// The first admin invite code from octod's journal.
fn invite_code() -> anyhow::Result<String> {
    let out = testhost::exec_output(&["journalctl", "-u", "octod", "-o", "cat", "--no-pager"])?;
    out.lines()
        .rev()
        .find_map(|line| {
            line.rsplit_once("invite code ")
                .map(|(_, code)| code.trim().to_owned())
        })
        .context("octod did not log a first admin invite code (is there an admin already?)")
}
