//! `cargo xtask bench session-start`: the engine's create→ready against `podman run` +
//! wait-until-healthy of the same image, measured inside a test host of its own; with the
//! real session image built there, also wake on access against `podman start` + healthy, and
//! the time until files and terminal answer after a create against opencode's.

use crate::testhost::{self, ExecOptions};
use crate::util::{self, step};

/// The test-host instance the benchmark uses, so that it never disturbs a developer's host.
const INSTANCE: &str = "bench";

pub(crate) fn run() -> anyhow::Result<()> {
    run_in_bench_host("session-start")
}

/// `octo-e2e bench <bench>` in the benchmark's own test host, with the session image built
/// there (`session-start`, `density`).
pub(crate) fn run_in_bench_host(bench: &str) -> anyhow::Result<()> {
    util::require_root(&format!("bench {bench}"))?;
    step("building the end-to-end program");
    util::run(&mut util::cargo(["build", "-p", "octo-e2e"]))?;
    let paths = testhost::Paths::named(INSTANCE);
    testhost::down_at(&paths)?;
    testhost::up_at(&paths)?;
    // The image is built for the instance `OCTO_TESTHOST` names: this same program, told so.
    step("building the session image in the benchmark's host");
    let image = util::run(
        std::process::Command::new(std::env::current_exe()?)
            .args(["testhost", "image"])
            .env("OCTO_TESTHOST", INSTANCE),
    );
    if let Err(error) = image {
        let _ = testhost::down_at(&paths);
        return Err(error);
    }
    let program = format!("{}/debug/octo-e2e", testhost::GUEST_TARGET);
    let result = testhost::exec_at(
        &paths,
        &[program, "bench".into(), bench.into()],
        &ExecOptions {
            user: Some(testhost::OCTO_USER.into()),
            env: vec![],
        },
    );
    let down = testhost::down_at(&paths);
    let code = result?;
    down?;
    if code != 0 {
        anyhow::bail!("the benchmark failed in the test host (exit code {code})");
    }
    Ok(())
}
