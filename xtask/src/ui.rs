//! The browser end-to-end check of the web UI: `frontend/e2e/run.mjs` (playwright-core driving
//! Debian's chromium, headless) against a running Octo, with a screenshot of every step under
//! `target/ui-e2e/`.
//!
//! [`browser_e2e`] is what the package host flow calls; `cargo xtask ui-e2e` runs it by hand.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::util::{self, step};

/// Where the checks find the browser (Debian's package).
const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs every browser check against the UI at `base_url` (e.g. `https://127.0.0.1:8443`; a
/// self-signed certificate is accepted). The workspace check registers a new account with
/// `invite_code`; with an admin code that account also makes the users of the later checks.
/// The stack needs a model: the stub one (`octo-e2e stub-llm`) behind octod's `[llm]`.
pub fn browser_e2e(base_url: &str, invite_code: &str) -> anyhow::Result<()> {
    browser_e2e_filtered(base_url, invite_code, "", &[])
}

/// [`browser_e2e`] of the checks whose file name contains `filter`, with extra environment
/// variables (screenshots under `target/ui-e2e/<filter>/` when filtered).
pub fn browser_e2e_filtered(
    base_url: &str,
    invite_code: &str,
    filter: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<()> {
    if !Path::new(CHROMIUM).exists() {
        util::apt_install(&["chromium"])?;
    }
    let frontend = util::workspace_root().join("frontend");
    if !frontend.join("node_modules/playwright-core").is_dir() {
        step("frontend: npm ci (for playwright-core)");
        util::run(Command::new("npm").current_dir(&frontend).args([
            "ci",
            "--no-audit",
            "--no-fund",
        ]))
        .context("installing the frontend's dependencies (needs Node.js 18 or later and npm)")?;
    }
    let mut screenshots = util::target_dir().join("ui-e2e");
    if !filter.is_empty() {
        screenshots = screenshots.join(filter);
    }
    if screenshots.exists() {
        std::fs::remove_dir_all(&screenshots)
            .with_context(|| format!("removing old screenshots in {}", screenshots.display()))?;
    }
    std::fs::create_dir_all(&screenshots)
        .with_context(|| format!("creating {}", screenshots.display()))?;

    step(format!("browser e2e against {base_url}"));
    let status = util::status(
        Command::new("node")
            .current_dir(&frontend)
            .arg("e2e/run.mjs")
            .arg("--base-url")
            .arg(base_url)
            .arg("--invite-code")
            .arg(invite_code)
            .arg("--screenshots")
            .arg(&screenshots)
            .args((!filter.is_empty()).then_some(filter))
            .envs(env.iter().copied())
            .env("CHROMIUM", CHROMIUM),
    )?;
    if !status.success() {
        bail!(
            "the browser e2e failed ({status}); screenshots of each step and of the failure are in {}",
            screenshots.display()
        );
    }
    step(format!(
        "browser e2e passed; screenshots in {}",
        screenshots.display()
    ));
    Ok(())
}
