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
    let result = start_octod();
    if let Err(error) = result {
        let _ = testhost::down();
        return Err(error);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    println!();
    println!("Octo is running in the test host:");
    println!("    http://{LISTEN}/          (health: http://{LISTEN}/api/health)");
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

fn start_octod() -> anyhow::Result<()> {
    let binary = format!("{}/debug/octod", testhost::GUEST_TARGET);
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
            "--setenv=OCTOD_LOG=info",
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
    Ok(())
}
