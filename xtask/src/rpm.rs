//! The `.rpm`, built by `rpmbuild` (from the `rpm` package) from a spec written here: the
//! files listed in [`ASSETS`] are staged under `target/release/octo-dist/rpm/root/`, and the
//! spec's `%install` copies that tree into the build root. `rpmbuild` adds the ELF library
//! requirements and `/bin/sh` for the scriptlets by itself; no stripping, no debuginfo (the
//! binaries are installed as cargo built them, as in the `.deb`).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::dist::PACKAGE;
use crate::util::{self, step};

/// One file or tree of the package.
struct Asset {
    /// From the workspace root; a trailing `/**` takes every file beneath that directory.
    source: &'static str,
    /// The installed path; for a tree, the directory its files go into.
    dest: &'static str,
    mode: u32,
    /// `%config(noreplace)`: an administrator's edits survive an upgrade.
    config: bool,
}

const fn file(source: &'static str, dest: &'static str, mode: u32) -> Asset {
    Asset {
        source,
        dest,
        mode,
        config: false,
    }
}

const fn config(source: &'static str, dest: &'static str) -> Asset {
    Asset {
        source,
        dest,
        mode: 0o644,
        config: true,
    }
}

/// What the `.rpm` installs: the `.deb`'s files (`octod/Cargo.toml`'s
/// `[package.metadata.deb]`), with the same modes.
const ASSETS: &[Asset] = &[
    file("target/release/octod", "/usr/bin/octod", 0o755),
    file("target/release/octoctl", "/usr/bin/octoctl", 0o755),
    file(
        "target/release/octo-fileserver",
        "/usr/libexec/octo/octo-fileserver",
        0o755,
    ),
    file(
        "packaging/migrate-http-socket",
        "/usr/libexec/octo/migrate-http-socket",
        0o755,
    ),
    file(
        "packaging/octod.service",
        "/usr/lib/systemd/system/octod.service",
        0o644,
    ),
    file(
        "packaging/octod.socket",
        "/usr/lib/systemd/system/octod.socket",
        0o644,
    ),
    file(
        "packaging/octod-admin.socket",
        "/usr/lib/systemd/system/octod-admin.socket",
        0o644,
    ),
    file(
        "packaging/caddy-octo.conf",
        "/usr/lib/systemd/system/caddy.service.d/octo.conf",
        0o644,
    ),
    file(
        "packaging/sysusers.conf",
        "/usr/lib/sysusers.d/octo.conf",
        0o644,
    ),
    file(
        "packaging/tmpfiles.conf",
        "/usr/lib/tmpfiles.d/octo.conf",
        0o644,
    ),
    config("packaging/octod.toml", "/etc/octo/octod.toml"),
    config("packaging/caddy.env", "/etc/octo/caddy.env"),
    config("Caddyfile", "/etc/caddy/Caddyfile.d/octo.caddyfile"),
    // The session image's build context and the templates; the tree's modes decide which
    // are executable (the entrypoint, the health check, the setup scripts).
    file("container/**", "/usr/share/octo/container", 0),
    // The UI, man pages and completions staged by `dist`.
    file("target/release/octo-dist/share/**", "/usr/share", 0o644),
];

/// `Requires:` beside what rpmbuild finds in the ELF files and scriptlets.
const REQUIRES: &[&str] = &[
    "podman >= 5",
    "passt",
    "shadow-utils",
    "systemd",
    "procps-ng",
];

const SUMMARY: &str = "Persistent, isolated browser workspaces as rootless Podman Quadlet sessions";

const DESCRIPTION: &str = "\
Octo gives each user persistent, isolated workspaces in the browser: rootless Podman
containers run as Quadlet units of the octo user's systemd manager, each with an AI coding
agent (opencode), a file server and a web terminal. octod is socket-activated
(systemctl enable --now octod.socket), octoctl administers it, Caddy serves the UI.";

/// The scriptlets, from `packaging/rpm/`.
const SCRIPTS: &[(&str, &str)] = &[
    ("%post", "packaging/rpm/post.sh"),
    ("%preun", "packaging/rpm/preun.sh"),
    ("%postun", "packaging/rpm/postun.sh"),
];

/// A staged file: where it is now, where it is installed, how.
struct Staged {
    dest: String,
    mode: u32,
    config: bool,
}

/// Builds `out` (`octo-VERSION-REVISION.x86_64.rpm`) from the release build that `dist` has
/// just made.
pub fn build(version: &str, revision: &str, out: &Path) -> anyhow::Result<()> {
    step(format!("rpmbuild: {PACKAGE} {version}-{revision}"));
    util::apt_install(&["rpm"])?;
    let root = util::workspace_root();
    let work = util::target_dir()
        .join("release")
        .join("octo-dist")
        .join("rpm");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    let stage = work.join("root");
    let mut staged = Vec::new();
    for asset in ASSETS {
        stage_asset(&root, asset, &stage, &mut staged)?;
    }
    staged.sort_by(|a, b| a.dest.cmp(&b.dest));
    let spec = spec(version, revision, &root, &stage, &staged)?;
    let spec_path = work.join(format!("{PACKAGE}.spec"));
    fs::write(&spec_path, spec)?;
    let rpms = work.join("rpms");
    util::run(
        Command::new("rpmbuild")
            .arg("-bb")
            .arg("--quiet")
            .arg("--define")
            .arg(format!("_topdir {}", work.join("top").display()))
            .arg("--define")
            .arg(format!("_rpmdir {}", rpms.display()))
            .arg("--define")
            .arg("_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm")
            .arg(&spec_path),
    )
    .context("rpmbuild")?;
    let built = rpms.join(format!("{PACKAGE}-{version}-{revision}.x86_64.rpm"));
    if !built.exists() {
        bail!("rpmbuild succeeded but {} is missing", built.display());
    }
    fs::rename(&built, out).with_context(|| format!("moving the .rpm to {}", out.display()))?;
    Ok(())
}

/// Copies one asset into the stage and records its files.
fn stage_asset(
    root: &Path,
    asset: &Asset,
    stage: &Path,
    staged: &mut Vec<Staged>,
) -> anyhow::Result<()> {
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    if let Some(dir) = asset.source.strip_suffix("/**") {
        let base = root.join(dir);
        let mut pending = vec![base.clone()];
        while let Some(current) = pending.pop() {
            let entries =
                fs::read_dir(&current).with_context(|| format!("reading {}", current.display()))?;
            for entry in entries {
                let path = entry?.path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(&base)?.to_string_lossy().into_owned();
                    files.push((path, format!("{}/{relative}", asset.dest)));
                }
            }
        }
        if files.is_empty() {
            bail!("the package's {} holds no file", base.display());
        }
    } else {
        files.push((root.join(asset.source), asset.dest.to_owned()));
    }
    for (from, dest) in files {
        let mode = if asset.mode == 0 {
            // From the tree: executable or not.
            use std::os::unix::fs::PermissionsExt as _;
            let tree = fs::metadata(&from)
                .with_context(|| format!("{}", from.display()))?
                .permissions()
                .mode();
            if tree & 0o111 == 0 { 0o644 } else { 0o755 }
        } else {
            asset.mode
        };
        // A name the spec's file list could not take as is.
        if dest
            .chars()
            .any(|c| c.is_whitespace() || "%\"[]*?{}\\".contains(c))
        {
            bail!("{dest}: a name the .rpm's file list cannot hold");
        }
        let to = stage.join(dest.trim_start_matches('/'));
        fs::create_dir_all(to.parent().context("a staged file has a parent")?)?;
        fs::copy(&from, &to).with_context(|| format!("staging {}", from.display()))?;
        staged.push(Staged {
            dest,
            mode,
            config: asset.config,
        });
    }
    Ok(())
}

/// The spec: metadata, `%install` from the stage, the scriptlets, the file list.
fn spec(
    version: &str,
    revision: &str,
    root: &Path,
    stage: &Path,
    staged: &[Staged],
) -> anyhow::Result<String> {
    let mut s = String::new();
    // The binaries go in as built: no strip, no debuginfo package, no build-id links, no
    // byte-compiling; gzip, which every rpm reads.
    for line in [
        "%global debug_package %{nil}",
        "%global __os_install_post %{nil}",
        "%global __arch_install_post %{nil}",
        "%global _build_id_links none",
        "%global _binary_payload w6.gzdio",
        // The image's build context runs inside the image, not on the host: its shebangs
        // (bash, python3) are no requirements of the package.
        "%global __requires_exclude_from ^/usr/share/octo/container/.*$",
    ] {
        writeln!(s, "{line}")?;
    }
    writeln!(s, "Name: {PACKAGE}")?;
    writeln!(s, "Version: {version}")?;
    writeln!(s, "Release: {revision}")?;
    writeln!(s, "Summary: {SUMMARY}")?;
    writeln!(s, "License: {}", env!("CARGO_PKG_LICENSE"))?;
    writeln!(s, "BuildArch: x86_64")?;
    for requires in REQUIRES {
        writeln!(s, "Requires: {requires}")?;
    }
    writeln!(s, "Recommends: caddy")?;
    writeln!(s, "\n%description\n{DESCRIPTION}\n")?;
    writeln!(s, "%install")?;
    writeln!(s, "mkdir -p %{{buildroot}}")?;
    writeln!(s, "cp -a '{}/.' %{{buildroot}}/\n", stage.display())?;
    for (section, path) in SCRIPTS {
        let body =
            fs::read_to_string(root.join(path)).with_context(|| format!("reading {path}"))?;
        // rpm expands macros in scriptlets: a literal `%` is `%%`.
        writeln!(s, "{section}\n{}\n", body.replace('%', "%%").trim_end())?;
    }
    writeln!(s, "%files")?;
    for file in staged {
        let config = if file.config {
            "%config(noreplace) "
        } else {
            ""
        };
        writeln!(
            s,
            "{config}%attr({:04o},root,root) {}",
            file.mode, file.dest
        )?;
    }
    Ok(s)
}
