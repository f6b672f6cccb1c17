//! The session image in the test host. There is no container registry here
//! (`../shared/testhost.md`), so the base image is built from Debian packages: a debootstrapped
//! trixie `minbase` root, tarred and cached under `target/testhost/cache/`, imported for the
//! `octo` user as [`BASE_IMAGE`]; the session image (`container/Containerfile`) is then built on
//! it with `podman build --build-arg BASE_IMAGE=…`, as `octo`, like `octoctl image build` does.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::testhost::{self, ExecOptions};
use crate::util::{self, step};

/// The base image's name inside the test host.
pub(crate) const BASE_IMAGE: &str = "localhost/debian:trixie-slim";
/// The session image's repository; tagged `:<version>` and `:latest`.
pub(crate) const SESSION_IMAGE: &str = "localhost/octo-session";
/// The workspace version, which tags the session image.
const VERSION: &str = env!("CARGO_PKG_VERSION");

const SUITE: &str = "trixie";
/// Packages beyond `minbase`, like the official slim image: none. Changing this list (or the
/// suite) changes the cache key.
const BASE_PACKAGES: &[&str] = &[];
/// The label on the imported base image that records which tarball it came from.
const BASE_KEY_LABEL: &str = "org.octo.base-key";

/// The cache key of the base root: suite, variant and package list.
fn base_key() -> String {
    format!(
        "{:016x}",
        util::fnv1a(format!("{SUITE}:minbase:{}", BASE_PACKAGES.join(",")).as_bytes())
    )
}

/// Debootstraps a Debian trixie `minbase` root (cached, keyed by its package list) and tars
/// it; returns the tarball's path. Needs root. The root's apt sources name the outer machine's
/// mirror ([`testhost::debian_mirror`]), which the image's `apt-get` then uses; they live
/// only in the cache, never in the repository.
pub(crate) fn ensure_base_rootfs() -> anyhow::Result<PathBuf> {
    let cache = util::target_dir().join("testhost").join("cache");
    let tarball = cache.join(format!("base-{}.tar", base_key()));
    if tarball.exists() {
        return Ok(tarball);
    }
    util::require_root("building the base image")?;
    testhost::install_prerequisites()?;
    let mirror = testhost::debian_mirror()?;
    let root = cache.join(format!("base-{}.partial", base_key()));
    if root.exists() {
        fs::remove_dir_all(&root).context("removing a partial base root from an earlier try")?;
    }
    fs::create_dir_all(&root)?;
    step(format!(
        "debootstrapping a Debian {SUITE} minbase root for the base image into {}",
        root.display()
    ));
    let started = Instant::now();
    let mut debootstrap = Command::new("debootstrap");
    debootstrap.arg("--variant=minbase");
    if !BASE_PACKAGES.is_empty() {
        debootstrap.arg(format!("--include={}", BASE_PACKAGES.join(",")));
    }
    util::run(debootstrap.arg(SUITE).arg(&root).arg(&mirror))
        .context("debootstrap of the base image's root failed (see its log above)")?;
    ensure_apt_sources(&root, &mirror)?;
    // Like the official slim image: no package cache, no lists, no logs.
    util::run(
        Command::new("sh")
            .arg("-c")
            .arg(
                "cd \"$1\" && rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin \
                 var/lib/apt/lists/* var/log/* && mkdir -p var/lib/apt/lists/partial",
            )
            .arg("sh")
            .arg(&root),
    )?;
    let partial_tar = tarball.with_extension("tar.partial");
    util::run(
        Command::new("tar")
            .arg("--numeric-owner")
            .arg("--xattrs")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&partial_tar)
            .arg("."),
    )?;
    fs::rename(&partial_tar, &tarball).context("moving the base tarball into the cache")?;
    fs::remove_dir_all(&root).context("removing the base root after taring it")?;
    step(format!(
        "base root ready in {:.0?}: {}",
        started.elapsed(),
        tarball.display()
    ));
    Ok(tarball)
}

/// debootstrap writes `etc/apt/sources.list` for the mirror it used; should it not, the
/// image's `apt-get` would have nowhere to go, so write it from the same mirror.
fn ensure_apt_sources(root: &Path, mirror: &str) -> anyhow::Result<()> {
    let list = root.join("etc/apt/sources.list");
    let has_source = fs::read_to_string(&list).is_ok_and(|text| {
        text.lines()
            .any(|line| line.trim_start().starts_with("deb "))
    }) || fs::read_dir(root.join("etc/apt/sources.list.d"))
        .is_ok_and(|dir| dir.flatten().next().is_some());
    if !has_source {
        fs::write(&list, format!("deb {mirror} {SUITE} main\n"))
            .context("writing the base root's apt sources")?;
    }
    Ok(())
}

/// What [`build_session_image`] measured.
#[derive(Debug, Clone)]
pub(crate) struct ImageBuild {
    /// `localhost/octo-session:<version>`.
    pub(crate) image: String,
    /// Wall time of `podman build` alone.
    pub(crate) build_secs: f64,
    /// The image's size as Podman reports it.
    pub(crate) size: String,
}

impl std::fmt::Display for ImageBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: podman build {:.1} s, {} bytes",
            self.image, self.build_secs, self.size
        )
    }
}

/// Imports the base image into the running test host for the `octo` user (again when the
/// cached tarball changed) and builds the session image there from the staged context:
/// `container/` plus the release `octo-fileserver`. Tags `:<version>` and, after success
/// only, `:latest`. The test host must be up (`cargo xtask testhost up`).
pub(crate) fn build_session_image() -> anyhow::Result<ImageBuild> {
    let tarball = ensure_base_rootfs()?;
    import_base_image(&tarball)?;
    step("building octo-fileserver (release) for the image");
    // A target directory of its own (`target/image`): `cargo xtask ci` builds the package
    // checks' release binaries in the background meanwhile, holding `target/release`'s lock
    // for minutes, and the image needs only this one program.
    util::run(
        util::cargo(["build", "--release", "-p", "octo-fileserver"])
            .arg("--target-dir")
            .arg(util::target_dir().join("image")),
    )?;
    let image = format!("{SESSION_IMAGE}:{VERSION}");
    let context = "/var/lib/octo/image-context";
    let ca_dir = stage_extra_cas()?;
    let stage = format!(
        "set -eu; rm -rf {context}; mkdir -p {context}; \
         cp -a {src}/container/. {context}/; \
         cp {target}/image/release/octo-fileserver {context}/octo-fileserver",
        src = testhost::GUEST_SRC,
        target = testhost::GUEST_TARGET,
    );
    as_octo(&["sh", "-c", &stage])?;
    step(format!("podman build of {image} in the test host, as octo"));
    let started = Instant::now();
    as_octo(&[
        "podman",
        "build",
        "--pull=never",
        "--build-arg",
        &format!("BASE_IMAGE={BASE_IMAGE}"),
        "--volume",
        &format!("{ca_dir}:/run/octo-build/ca:ro"),
        "--tag",
        &image,
        "--file",
        &format!("{context}/Containerfile"),
        context,
    ])?;
    let build_secs = started.elapsed().as_secs_f64();
    as_octo(&["podman", "tag", &image, &format!("{SESSION_IMAGE}:latest")])?;
    let size = octo_output(&[
        "podman",
        "image",
        "inspect",
        "--format",
        "{{.Size}}",
        &image,
    ])?;
    let size = size.trim().to_owned();
    step(format!(
        "built {image} in {build_secs:.1} s; size {size} bytes"
    ));
    Ok(ImageBuild {
        image,
        build_secs,
        size,
    })
}

/// The outer machine's locally added CAs (`/usr/local/share/ca-certificates/*.crt`, e.g. an
/// egress proxy's) copied into the test host, for the build's npm to reach its registry. They
/// are mounted into the build only, never put into the repository or the build context.
/// Returns the directory's path inside the test host (empty when there are none).
fn stage_extra_cas() -> anyhow::Result<String> {
    let guest = "var/lib/octo/image-ca";
    let inside = testhost::Paths::new().root().join(guest);
    if inside.exists() {
        fs::remove_dir_all(&inside)?;
    }
    fs::create_dir_all(&inside)?;
    if let Ok(dir) = fs::read_dir("/usr/local/share/ca-certificates") {
        for entry in dir.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "crt") && path.is_file() {
                fs::copy(&path, inside.join(entry.file_name()))?;
            }
        }
    }
    Ok(format!("/{guest}"))
}

/// Imports the base tarball as [`BASE_IMAGE`] for `octo`, unless the image there already came
/// from this tarball.
pub(crate) fn import_base_image(tarball: &Path) -> anyhow::Result<()> {
    let key = base_key();
    let current = octo_output(&[
        "sh",
        "-c",
        &format!(
            "podman image inspect --format '{{{{index .Config.Labels \"{BASE_KEY_LABEL}\"}}}}' \
             {BASE_IMAGE} 2>/dev/null || true"
        ),
    ])?;
    if current.trim() == key {
        return Ok(());
    }
    step(format!("importing {BASE_IMAGE} into the test host"));
    // The tarball goes into the guest's root (a directory on this machine), where octo can
    // read it; a hard link when possible, since both live under target/.
    let guest_path = "var/tmp/octo-base.tar";
    let inside = testhost::Paths::new().root().join(guest_path);
    let _ = fs::remove_file(&inside);
    if fs::hard_link(tarball, &inside).is_err() {
        fs::copy(tarball, &inside).context("copying the base tarball into the test host")?;
    }
    let result = as_octo(&[
        "podman",
        "import",
        "--change",
        "CMD=[\"/bin/bash\"]",
        "--change",
        &format!("LABEL={BASE_KEY_LABEL}={key}"),
        &format!("/{guest_path}"),
        BASE_IMAGE,
    ]);
    let _ = fs::remove_file(&inside);
    result
}

fn octo() -> ExecOptions {
    ExecOptions {
        user: Some(testhost::OCTO_USER.to_owned()),
        env: Vec::new(),
    }
}

fn as_octo(command: &[&str]) -> anyhow::Result<()> {
    testhost::exec_ok(command, &octo())
}

/// Runs a command as `octo` in the test host and returns its standard output.
fn octo_output(command: &[&str]) -> anyhow::Result<String> {
    let out = tempfile_in_guest()?;
    let script = format!("\"$@\" > /{out}", out = out.0);
    let mut args = vec!["sh", "-c", script.as_str(), "sh"];
    args.extend_from_slice(command);
    as_octo(&args)?;
    let text = fs::read_to_string(&out.1).context("reading a command's output in the test host");
    let _ = fs::remove_file(&out.1);
    text
}

/// A fresh file path in the guest's `/var/tmp` (guest path without the leading `/`, and the
/// same file seen from outside), for command output.
fn tempfile_in_guest() -> anyhow::Result<(String, PathBuf)> {
    let name = format!("var/tmp/octo-xtask-{}.out", std::process::id());
    let outside = testhost::Paths::new().root().join(&name);
    if !outside.parent().is_some_and(Path::is_dir) {
        bail!("the test host's root has no /var/tmp: is it up?");
    }
    Ok((name, outside))
}
