//! Session image builds (`octoctl image build`): stage the build context, run `podman build`
//! as a transient unit on the `octo` user's manager, stream its output, tag after success.
//!
//! The build runs under systemd, not as a child of octod (design.md, "Long work runs under
//! systemd too"): it is outside octod's sandboxing, survives an octod restart and logs to the
//! journal. octod follows the unit's journal lines ([`crate::journal`]) and reports each line.
//!
//! Tags: the build itself tags `<repository>:<version>`, and only a successful build tags at
//! all; `<repository>:latest` is moved to it afterwards. A failed build therefore leaves the
//! previous `:latest` (and the previous `:<version>`) in place.
//!
//! The staged context is the `container/` directory (`Containerfile`, `entrypoint`,
//! `healthcheck`, `setup.py`, `apt/`; `templates/` is left out: templates are mounted, not
//! built in) plus the `octo-fileserver` binary.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zbus::zvariant::{OwnedValue, Value};

use crate::journal;
use crate::systemd::{ActiveState, SubState, Systemd, SystemdError};

/// The prefix of every build unit's name; one build runs at a time.
pub const UNIT_PREFIX: &str = "octo-image-build-";
/// Where the Containerfile looks for extra CA certificates during the build.
pub const CA_MOUNT: &str = "/run/octo-build/ca";
/// The repository of the session image.
pub const DEFAULT_REPOSITORY: &str = "localhost/octo-session";

/// What to build and where.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// The `container/` directory (packaged as `/usr/share/octo/container`).
    pub container_dir: PathBuf,
    /// The `octo-fileserver` binary to put into the image.
    pub fileserver: PathBuf,
    /// Where contexts are staged, one subdirectory per build, removed afterwards. Must be
    /// readable by the `octo` user (e.g. `~octo/.cache/octo/image-build`).
    pub staging_dir: PathBuf,
    /// `localhost/octo-session`.
    pub repository: String,
    /// The version tag, e.g. octod's version.
    pub version: String,
    /// `--build-arg BASE_IMAGE=…`; `None` keeps the Containerfile's default.
    pub base_image: Option<String>,
    /// A directory of extra CA certificates (`*.crt`) to install into the image's trust store,
    /// for sites behind a TLS-intercepting proxy; mounted into the build, not copied into
    /// the context. Changing its contents needs a build without the layer cache.
    pub extra_ca_dir: Option<PathBuf>,
    /// The podman binary (systemd needs an absolute path).
    pub podman: PathBuf,
    /// How long the build may take before it is stopped.
    pub timeout: Duration,
}

impl BuildConfig {
    /// Defaults for a packaged install: `podman` from `/usr/bin`, one hour, octod's version.
    pub fn new(
        container_dir: impl Into<PathBuf>,
        fileserver: impl Into<PathBuf>,
        staging_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            container_dir: container_dir.into(),
            fileserver: fileserver.into(),
            staging_dir: staging_dir.into(),
            repository: DEFAULT_REPOSITORY.to_owned(),
            version: crate::VERSION.to_owned(),
            base_image: None,
            extra_ca_dir: None,
            podman: PathBuf::from("/usr/bin/podman"),
            timeout: Duration::from_secs(3600),
        }
    }

    /// `<repository>:<version>`.
    pub fn versioned_tag(&self) -> String {
        format!("{}:{}", self.repository, self.version)
    }

    /// `<repository>:latest`.
    pub fn latest_tag(&self) -> String {
        format!("{}:latest", self.repository)
    }
}

/// A finished, tagged build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// `<repository>:<version>`.
    pub image: String,
    /// `<repository>:latest`, now the same image.
    pub latest: String,
    /// The transient unit that ran the build (its journal holds the full log).
    pub unit: String,
    pub elapsed: Duration,
}

/// Why a build did not produce a tagged image. In every case `:latest` is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("another image build is running ({unit})")]
    AlreadyRunning { unit: String },
    #[error("invalid image version {version:?}: use letters, digits, '.', '_' and '-'")]
    Version { version: String },
    #[error("staging the build context in {path}: {source}")]
    Stage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image build: {0}")]
    Systemd(#[from] SystemdError),
    #[error("image build {unit} failed: {reason}")]
    Failed { unit: String, reason: String },
    #[error("image build {unit} did not finish within {timeout:?}; it was stopped")]
    Timeout { unit: String, timeout: Duration },
    #[error("tagging {image} as {tag}: {message}")]
    Tag {
        image: String,
        tag: String,
        message: String,
    },
}

/// Builds the session image. Each output line of `podman build` is passed to `progress` as
/// it appears in the journal. Returns once the image is tagged `:<version>` and `:latest`.
pub async fn build(
    systemd: &Systemd,
    config: &BuildConfig,
    mut progress: impl FnMut(&str),
) -> Result<Built, ImageError> {
    if !valid_tag(&config.version) {
        return Err(ImageError::Version {
            version: config.version.clone(),
        });
    }
    let running = systemd
        .list_units(&[&format!("{UNIT_PREFIX}*.service")])
        .await?;
    if let Some((unit, _)) = running.iter().find(|(_, state)| {
        matches!(
            state,
            ActiveState::Active | ActiveState::Activating | ActiveState::Reloading
        )
    }) {
        return Err(ImageError::AlreadyRunning { unit: unit.clone() });
    }
    let started = Instant::now();
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stem = format!("{UNIT_PREFIX}{}-{stamp}", unit_safe(&config.version));
    let unit = format!("{stem}.service");
    let context = config.staging_dir.join(&stem);
    stage(config, &context).await?;
    let result = run_build(systemd, config, &unit, &context, &mut progress).await;
    // The context is only needed while podman reads it.
    let _ = tokio::fs::remove_dir_all(&context).await;
    result?;
    let image = config.versioned_tag();
    let latest = config.latest_tag();
    tag(systemd, &image, &latest).await?;
    Ok(Built {
        image,
        latest,
        unit,
        elapsed: started.elapsed(),
    })
}

/// The `podman build` arguments (after the program) for a staged context.
pub fn build_args(config: &BuildConfig, context: &Path) -> Vec<String> {
    let mut args = vec![
        "build".to_owned(),
        "--layers".to_owned(),
        "--tag".to_owned(),
        config.versioned_tag(),
        "--label".to_owned(),
        format!("org.octo.version={}", config.version),
    ];
    if let Some(base) = &config.base_image {
        args.push("--build-arg".to_owned());
        args.push(format!("BASE_IMAGE={base}"));
    }
    if let Some(dir) = &config.extra_ca_dir {
        args.push("--volume".to_owned());
        args.push(format!("{}:{CA_MOUNT}:ro", dir.display()));
    }
    args.push("--file".to_owned());
    args.push(context.join("Containerfile").to_string_lossy().into_owned());
    args.push(context.to_string_lossy().into_owned());
    args
}

/// Copies `container/` (without `templates/`) and the file server into `context`.
pub async fn stage(config: &BuildConfig, context: &Path) -> Result<(), ImageError> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| ImageError::Stage { path, source }
    };
    if tokio::fs::try_exists(context).await.map_err(err(context))? {
        tokio::fs::remove_dir_all(context)
            .await
            .map_err(err(context))?;
    }
    copy_dir(&config.container_dir, context, &["templates"])
        .await
        .map_err(err(&config.container_dir))?;
    let target = context.join("octo-fileserver");
    tokio::fs::copy(&config.fileserver, &target)
        .await
        .map_err(err(&config.fileserver))?;
    set_mode(&target, 0o755).await.map_err(err(&target))?;
    let containerfile = context.join("Containerfile");
    if !tokio::fs::try_exists(&containerfile)
        .await
        .map_err(err(&containerfile))?
    {
        return Err(ImageError::Stage {
            path: config.container_dir.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no Containerfile"),
        });
    }
    Ok(())
}

async fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).await
}

/// Recursive copy of regular files and directories (modes kept), skipping top-level `skip`.
async fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> std::io::Result<()> {
    let mut pending = vec![(from.to_owned(), to.to_owned())];
    let mut top = true;
    while let Some((src, dst)) = pending.pop() {
        tokio::fs::create_dir_all(&dst).await?;
        let mut entries = tokio::fs::read_dir(&src).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name();
            if top && skip.iter().any(|s| name == *s) {
                continue;
            }
            let kind = entry.file_type().await?;
            if kind.is_dir() {
                pending.push((entry.path(), dst.join(&name)));
            } else if kind.is_file() {
                // tokio::fs::copy keeps the permission bits.
                tokio::fs::copy(entry.path(), dst.join(&name)).await?;
            }
        }
        top = false;
    }
    Ok(())
}

async fn run_build(
    systemd: &Systemd,
    config: &BuildConfig,
    unit: &str,
    context: &Path,
    progress: &mut impl FnMut(&str),
) -> Result<(), ImageError> {
    let properties = transient_properties(config, context)?;
    // The journal is followed from before the start, so no line is missed.
    let mut follower =
        journal::open(unit, journal::Format::Message, journal::Lines::All, true).ok();
    systemd
        .start_transient_service(unit, properties, Duration::from_secs(30))
        .await?;
    let deadline = Instant::now() + config.timeout;
    let mut streamed = 0_usize;
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    let finished = loop {
        tokio::select! {
            line = next_line(&mut follower) => {
                if let Some(line) = line {
                    streamed += 1;
                    progress(&line);
                } else {
                    // journalctl is unavailable or ended: fall back to polling the state.
                    follower = None;
                }
            }
            _ = poll.tick() => {
                let state = systemd.unit_state(unit).await?;
                // RemainAfterExit: a successful build stays active (exited); a failed one
                // stays failed. Either way the unit is still there to be read.
                if state.is_failed() || (state.is_active() && state.sub == SubState::Exited) {
                    break state;
                }
                if Instant::now() > deadline {
                    let _ = systemd.stop(unit, Duration::from_secs(60)).await;
                    let _ = systemd.reset_failed(unit).await;
                    return Err(ImageError::Timeout {
                        unit: unit.to_owned(),
                        timeout: config.timeout,
                    });
                }
            }
        }
    };
    if let Some(follower) = follower {
        follower.stop().await;
    }
    // The lines the follower had not delivered yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = journal::all_lines(unit).await;
    for line in all.iter().skip(streamed) {
        progress(line);
    }
    if finished.is_failed() {
        let reason = systemd.failure_reason(unit).await;
        let _ = systemd.reset_failed(unit).await;
        return Err(ImageError::Failed {
            unit: unit.to_owned(),
            reason,
        });
    }
    // Unloads the finished unit (it is transient).
    let _ = systemd.stop(unit, Duration::from_secs(30)).await;
    Ok(())
}

/// The transient unit: `podman build` in the staged context, kept after exit so its result
/// can be read.
fn transient_properties(
    config: &BuildConfig,
    context: &Path,
) -> Result<Vec<(&'static str, OwnedValue)>, ImageError> {
    let podman = config.podman.to_string_lossy().into_owned();
    let mut argv = vec![podman.clone()];
    argv.extend(build_args(config, context));
    let owned = |value: Value<'_>| {
        OwnedValue::try_from(value).map_err(|e| {
            ImageError::Systemd(SystemdError::Call {
                action: "preparing",
                unit: "image build".to_owned(),
                source: zbus::Error::Variant(e),
            })
        })
    };
    Ok(vec![
        (
            "Description",
            owned(Value::from(format!(
                "Octo session image build {}",
                config.versioned_tag()
            )))?,
        ),
        ("Type", owned(Value::from("exec"))?),
        ("RemainAfterExit", owned(Value::from(true))?),
        (
            "WorkingDirectory",
            owned(Value::from(context.to_string_lossy().into_owned()))?,
        ),
        (
            "ExecStart",
            owned(Value::from(vec![(podman, argv, false)]))?,
        ),
    ])
}

/// The follower's next line; never resolves when there is no follower.
async fn next_line(follower: &mut Option<journal::Reader>) -> Option<String> {
    match follower {
        Some(f) => f.next_line().await,
        None => std::future::pending().await,
    }
}

/// Tags `image` as `tag` through Podman's API. Not the `podman` command: octod's sandbox
/// (read-only `/run/user`, `NoNewPrivileges=`, `RestrictNamespaces=`) stops the CLI from
/// entering the rootless user namespace, while the API's service runs under the user manager.
async fn tag(systemd: &Systemd, image: &str, tag: &str) -> Result<(), ImageError> {
    let error = |message: String| ImageError::Tag {
        image: image.to_owned(),
        tag: tag.to_owned(),
        message,
    };
    let podman = crate::podman::Podman::connect_user(systemd)
        .await
        .map_err(|e| error(e.to_string()))?;
    podman
        .tag_image(image, tag)
        .await
        .map_err(|e| error(e.to_string()))
}

/// An image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A tag made safe for a unit name (systemd allows `.`, but a version's dots read oddly
/// next to `.service`).
fn unit_safe(version: &str) -> String {
    version
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BuildConfig {
        BuildConfig {
            version: "1.2.3".to_owned(),
            base_image: Some("localhost/debian:trixie-slim".to_owned()),
            ..BuildConfig::new("/c", "/f", "/s")
        }
    }

    #[test]
    fn build_arguments_tag_the_version_only() {
        let args = build_args(&config(), Path::new("/s/ctx"));
        assert_eq!(
            args.join(" "),
            "build --layers --tag localhost/octo-session:1.2.3 --label org.octo.version=1.2.3 \
             --build-arg BASE_IMAGE=localhost/debian:trixie-slim --file /s/ctx/Containerfile \
             /s/ctx"
        );
        assert!(!args.iter().any(|a| a.ends_with(":latest")));
    }

    #[test]
    fn default_base_is_left_to_the_containerfile() {
        let config = BuildConfig {
            base_image: None,
            ..config()
        };
        let args = build_args(&config, Path::new("/x"));
        assert!(!args.iter().any(|a| a == "--build-arg"));
    }

    #[test]
    fn tags_are_checked() {
        assert!(valid_tag("0.1.0"));
        assert!(valid_tag("0.1.0-rc.1"));
        assert!(!valid_tag(""));
        assert!(!valid_tag("-x"));
        assert!(!valid_tag("a/b"));
        assert!(!valid_tag("a b"));
        assert_eq!(unit_safe("0.1.0-rc.1"), "0_1_0_rc_1");
    }

    #[test]
    fn the_unit_runs_podman_build_in_the_context() -> Result<(), ImageError> {
        let props = transient_properties(&config(), Path::new("/s/ctx"))?;
        let names: Vec<&str> = props.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "Description",
                "Type",
                "RemainAfterExit",
                "WorkingDirectory",
                "ExecStart"
            ]
        );
        let exec = &props[4].1;
        assert_eq!(exec.value_signature().to_string(), "a(sasb)");
        Ok(())
    }

    #[tokio::test]
    async fn staging_copies_the_context_without_templates() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("container");
        std::fs::create_dir_all(src.join("apt"))?;
        std::fs::create_dir_all(src.join("templates/coding-copilot"))?;
        std::fs::write(src.join("Containerfile"), "FROM x\n")?;
        std::fs::write(src.join("apt/add-forky-source"), "#!/bin/sh\n")?;
        std::fs::write(src.join("templates/coding-copilot/AGENTS.md"), "x")?;
        let fileserver = dir.path().join("fs-bin");
        std::fs::write(&fileserver, "bin")?;
        let config = BuildConfig::new(&src, &fileserver, dir.path().join("staging"));
        let context = dir.path().join("staging/ctx");
        stage(&config, &context).await?;
        assert!(context.join("Containerfile").is_file());
        assert!(context.join("apt/add-forky-source").is_file());
        assert!(context.join("octo-fileserver").is_file());
        assert!(!context.join("templates").exists());
        // A second staging replaces the first.
        stage(&config, &context).await?;
        let missing = BuildConfig::new(dir.path().join("nope"), &fileserver, dir.path());
        assert!(stage(&missing, &context).await.is_err());
        Ok(())
    }
}
