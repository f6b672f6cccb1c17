//! `cargo xtask dist`: the `octo` `.deb` (cargo-deb) and `.rpm` (rpmbuild, see [`crate::rpm`])
//! in `target/dist/`, from release binaries, the built UI, and the man pages and completions
//! that the programs generate from their clap definitions.
//!
//! The `.deb`'s metadata lives in `octod/Cargo.toml` (`[package.metadata.deb]`), the `.rpm`'s
//! in `xtask/src/rpm.rs`; the files beside the binaries in `packaging/`, `container/` and
//! `Caddyfile`. What is built here is staged under `target/release/octo-dist/share/` (laid out
//! as beneath `/usr/share`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::util::{self, step};

/// The packaging tool, pinned, installed with `cargo install --locked` under `target/tools/`
/// (also by `.ci/run`), so a rerun reuses it. (The `.rpm` is built by Debian's `rpmbuild`:
/// cargo-generate-rpm took four minutes of each clean CI run to compile.)
pub const TOOLS: &[(&str, &str)] = &[("cargo-deb", "3.8.0")];

/// The package name (both formats).
pub const PACKAGE: &str = "octo";

/// What `dist` builds.
#[derive(Debug, Clone)]
pub struct Options {
    /// The package revision (Debian revision, RPM release): a rebuilt package of the same
    /// version needs a higher one to be an upgrade.
    pub revision: u32,
    /// Skip the `.rpm`.
    pub no_rpm: bool,
}

/// The built packages.
#[derive(Debug, Clone)]
pub struct Packages {
    pub deb: PathBuf,
    pub rpm: Option<PathBuf>,
}

/// `target/dist/`.
pub fn dist_dir() -> PathBuf {
    util::target_dir().join("dist")
}

/// `cargo xtask dist`.
pub fn run(options: &Options) -> anyhow::Result<Packages> {
    step("building octod, octoctl and octo-fileserver (release)");
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
    let release = util::target_dir().join("release");
    let share = release.join("octo-dist").join("share");
    if share.exists() {
        fs::remove_dir_all(&share).with_context(|| format!("removing {}", share.display()))?;
    }
    fs::create_dir_all(&share)?;
    stage_ui(&share.join("octo/ui"))?;
    stage_generated(&release, &share)?;
    let tools = ensure_tools()?;
    let out = dist_dir();
    fs::create_dir_all(&out)?;
    let version = env!("CARGO_PKG_VERSION");
    let revision = options.revision.to_string();

    step(format!("cargo deb: {PACKAGE} {version}-{revision}"));
    let deb = out.join(format!("{PACKAGE}_{version}-{revision}_amd64.deb"));
    let _ = fs::remove_file(&deb);
    util::run(
        util::cargo([
            "deb",
            "-p",
            "octod",
            "--no-build",
            "--deb-revision",
            &revision,
        ])
        .arg("--output")
        .arg(&deb)
        .env("PATH", tool_path(&tools)?),
    )?;
    if !deb.exists() {
        bail!("cargo deb succeeded but {} is missing", deb.display());
    }
    let rpm = if options.no_rpm {
        None
    } else {
        let rpm = out.join(format!("{PACKAGE}-{version}-{revision}.x86_64.rpm"));
        let _ = fs::remove_file(&rpm);
        crate::rpm::build(version, &revision, &rpm)?;
        Some(rpm)
    };
    step(format!("packages in {}:", out.display()));
    println!("{}", deb.display());
    if let Some(rpm) = &rpm {
        println!("{}", rpm.display());
    }
    Ok(Packages { deb, rpm })
}

/// The built frontend (`npm ci && npm run build` in `frontend/`) into `dest`, or, while the
/// repository has no frontend yet, a page that says so.
fn stage_ui(dest: &Path) -> anyhow::Result<()> {
    let frontend = util::workspace_root().join("frontend");
    fs::create_dir_all(dest)?;
    if !frontend.join("package.json").exists() {
        step("warning: no frontend/package.json: the package gets a placeholder page as its UI");
        fs::write(
            dest.join("index.html"),
            "<!doctype html><meta charset=utf-8><title>Octo</title>\
             <p>This build of Octo has no browser UI (frontend/ was not in the source tree).\n",
        )?;
        return Ok(());
    }
    step("building the frontend (npm ci && npm run build)");
    util::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&frontend),
    )
    .context("npm ci in frontend/")?;
    util::run(
        Command::new("npm")
            .args(["run", "build"])
            .current_dir(&frontend),
    )
    .context("npm run build in frontend/")?;
    let dist = frontend.join("dist");
    if !dist.join("index.html").exists() {
        bail!(
            "npm run build left no {}",
            dist.join("index.html").display()
        );
    }
    util::run(
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", dist.display()))
            .arg(dest),
    )
}

/// Man pages and shell completions from `octoctl generate-assets` and `octod
/// generate-assets`, placed as beneath `/usr/share`; skipped with a warning by a program that
/// cannot generate them yet.
fn stage_generated(release: &Path, share: &Path) -> anyhow::Result<()> {
    let generated = release.join("octo-dist").join("generated");
    if generated.exists() {
        fs::remove_dir_all(&generated)?;
    }
    for program in ["octoctl", "octod"] {
        let dir = generated.join(program);
        fs::create_dir_all(&dir)?;
        let status = Command::new(release.join(program))
            .arg("generate-assets")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .with_context(|| format!("running {program} generate-assets"))?;
        if !status.success() {
            step(format!(
                "warning: `{program} generate-assets` failed ({status}): the package has no \
                 man pages or completions of {program}"
            ));
            continue;
        }
        // Completions where each shell looks for a distribution's files.
        let completions = [
            ("octoctl.bash", "bash-completion/completions/octoctl"),
            ("_octoctl", "zsh/vendor-completions/_octoctl"),
            ("octoctl.fish", "fish/vendor_completions.d/octoctl.fish"),
        ];
        for (name, to) in completions {
            let from = dir.join("completions").join(name);
            if from.exists() {
                let to = share.join(to);
                fs::create_dir_all(to.parent().context("a completion path has a parent")?)?;
                fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
            }
        }
        let man = dir.join("man");
        if let Ok(entries) = fs::read_dir(&man) {
            let man1 = share.join("man/man1");
            fs::create_dir_all(&man1)?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "1") {
                    let to = man1.join(entry.file_name());
                    fs::copy(&path, &to)?;
                    // Debian policy: man pages compressed with gzip -9n.
                    util::run(Command::new("gzip").arg("-9nf").arg(&to))?;
                }
            }
        }
    }
    Ok(())
}

/// `target/tools/`, where the packaging tools are installed.
pub fn tools_root() -> PathBuf {
    util::target_dir().join("tools")
}

/// Installs the packaging tools into [`tools_root`] unless there; returns their `bin/`.
pub fn ensure_tools() -> anyhow::Result<PathBuf> {
    let root = tools_root();
    let bin = root.join("bin");
    for (tool, version) in TOOLS {
        if bin.join(tool).exists() {
            continue;
        }
        step(format!(
            "installing {tool} {version} into {}",
            root.display()
        ));
        util::run(
            util::cargo(["install", "--locked", "--version", version, "--root"])
                .arg(&root)
                .arg(tool),
        )?;
    }
    Ok(bin)
}

/// `PATH` with the tools' `bin/` first, so `cargo deb` finds them.
fn tool_path(bin: &Path) -> anyhow::Result<std::ffi::OsString> {
    let mut paths = vec![bin.to_path_buf()];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).context("building PATH for the packaging tools")
}
