//! `cargo xtask bench ui`: the web UI's heavy cases in Chromium — a folder of 10,000 entries in
//! the Files pane, a conversation of 500 messages — timed by the page and Chromium's long-task
//! observer, and the requests per minute of an idle open workspace (the file tree's: the anchor
//! polls every 4 s, this tree follows the change stream) (`frontend/e2e/bench-ui.mjs`), this
//! tree's UI against the anchor's in one run.
//!
//! Both UIs are built with Vite into `<target>/bench-ui/` and served by
//! `frontend/e2e/bench-harness.mjs` with a small fake API, so the browser's work is measured
//! without the whole stack. The anchor is [`ANCHOR`] (the UI before issue 19) or `--baseline`:
//! its `frontend/` is exported with `git archive`, built once with this tree's `node_modules`
//! and cached by commit. `--base-url` measures a real stack (Caddy in front of octod) instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::util::{self, output, run as run_cmd, step, target_dir, workspace_root};

/// The commit whose UI is the anchor: main before issue 19's Files and chat work.
pub const ANCHOR: &str = "ca9ba2caec91eb57956ee9287f3b09b5ae997bb4";

/// Where the browser is (Debian's package).
const CHROMIUM: &str = "/usr/bin/chromium";

#[derive(Debug)]
pub struct Options {
    /// The anchor's commit (default [`ANCHOR`]).
    pub baseline: Option<String>,
    /// Runs of each scenario per UI (medians are printed).
    pub runs: u32,
    /// A real stack instead of the harness, with what `bench-ui.mjs` needs there.
    pub stack: Option<Stack>,
}

#[derive(Debug)]
pub struct Stack {
    pub base_url: String,
    pub user: String,
    pub password: String,
    pub session: String,
    pub folder: String,
}

pub(crate) fn run(opts: &Options) -> anyhow::Result<()> {
    if !Path::new(CHROMIUM).exists() {
        util::apt_install(&["chromium"])?;
    }
    let frontend = workspace_root().join("frontend");
    if !frontend.join("node_modules/playwright-core").is_dir() {
        step("frontend: npm ci");
        run_cmd(
            Command::new("npm")
                .current_dir(&frontend)
                .args(["ci", "--no-audit", "--no-fund"]),
        )
        .context("installing the frontend's dependencies (needs Node.js 18 or later and npm)")?;
    }
    let mut bench = Command::new("node");
    bench
        .current_dir(&frontend)
        .arg("e2e/bench-ui.mjs")
        .args(["--runs", &opts.runs.to_string()])
        .env("CHROMIUM", CHROMIUM);
    if let Some(stack) = &opts.stack {
        bench
            .args(["--base-url", &stack.base_url])
            .args(["--user", &stack.user])
            .args(["--password", &stack.password])
            .args(["--session", &stack.session])
            .args(["--folder", &stack.folder]);
    } else {
        let dir = target_dir().join("bench-ui");
        let this = dir.join("this/dist");
        step("building this tree's UI");
        vite_build(&frontend, &this)?;
        let commit = resolve(opts.baseline.as_deref().unwrap_or(ANCHOR))?;
        let anchor = anchor_dist(&frontend, &dir, &commit)?;
        bench
            .arg("--dist")
            .arg(&this)
            .arg("--anchor-dist")
            .arg(&anchor)
            .args(["--anchor-label", &format!("anchor {}", &commit[..7])]);
    }
    step("bench ui (Chromium, headless)");
    let status = util::status(&mut bench)?;
    if !status.success() {
        bail!("frontend/e2e/bench-ui.mjs failed ({status})");
    }
    Ok(())
}

/// `vite build` of the UI in `frontend` into `out` (no type check and no size budget: those
/// are `npm run build`'s, and the anchor's tree is not ours to check).
fn vite_build(frontend: &Path, out: &Path) -> anyhow::Result<()> {
    run_cmd(
        Command::new("npx")
            .current_dir(frontend)
            .args([
                "vite",
                "build",
                "--logLevel",
                "warn",
                "--emptyOutDir",
                "--outDir",
            ])
            .arg(out),
    )
    .with_context(|| format!("building the UI in {}", frontend.display()))
}

fn resolve(rev: &str) -> anyhow::Result<String> {
    let commit = output(
        Command::new("git")
            .current_dir(workspace_root())
            .args(["rev-parse", "--verify"])
            .arg(format!("{rev}^{{commit}}")),
    )
    .with_context(|| format!("resolving the anchor {rev}"))?;
    Ok(commit.trim().to_owned())
}

/// The anchor's built UI, `<dir>/<commit>/dist`: built on first use, then reused.
fn anchor_dist(frontend: &Path, dir: &Path, commit: &str) -> anyhow::Result<PathBuf> {
    let root = dir.join(commit);
    let dist = root.join("dist");
    if dist.join("index.html").is_file() {
        step(format!("anchor UI of {} (cached)", &commit[..7]));
        return Ok(dist);
    }
    step(format!("building the anchor's UI ({})", &commit[..7]));
    let src = root.join("src");
    if src.exists() {
        std::fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    }
    std::fs::create_dir_all(&src).with_context(|| format!("creating {}", src.display()))?;
    // `git archive | tar -x`: a plain copy of the commit's frontend, nothing to clean up in git.
    let archive = format!(
        "git -C {} archive {commit} frontend | tar -x -C {}",
        shell_quote(&workspace_root()),
        shell_quote(&src)
    );
    run_cmd(Command::new("sh").args(["-c", &archive]))
        .with_context(|| format!("exporting frontend/ of {commit}"))?;
    // This tree's dependencies: the anchor's lock may differ a little; Vite bundles what the
    // anchor's code imports either way.
    let modules = src.join("frontend/node_modules");
    std::os::unix::fs::symlink(frontend.join("node_modules"), &modules)
        .with_context(|| format!("linking {}", modules.display()))?;
    vite_build(&src.join("frontend"), &dist)?;
    Ok(dist)
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
