//! Session image builds with the engine told: after a build, the engine checks the image again
//! and a reconcile pass runs at once, so sessions that waited for a fitting image
//! ([`ImageFit`]) move onto it without anyone restarting them. And the rebuild that an upgrade
//! needs: when octod starts and finds an image of another session runtime, it rebuilds it by
//! itself ([`rebuild_if_outdated`]), as a transient unit like `octoctl image build`.

use std::time::Instant;

use crate::engine::{Engine, ImageFit};
use crate::image::{BuildConfig, Built, ImageError};

/// Builds the session image ([`crate::image::build`]); on success, checks the image again and
/// starts a reconcile pass in the background.
pub async fn build(
    engine: &Engine,
    config: &BuildConfig,
    progress: impl FnMut(&str),
) -> Result<Built, ImageError> {
    let built = crate::image::build(engine.systemd(), config, progress).await?;
    if engine.check_image().await.is_current() {
        let engine = engine.clone();
        tokio::spawn(async move {
            let report = engine.reconcile().await;
            if !report.is_quiet() {
                tracing::info!(?report, "reconciled after the image build");
            }
        });
    }
    Ok(built)
}

/// Why octod does not rebuild an outdated image by itself. Pure.
pub fn rebuild_refusal(
    fit: &ImageFit,
    session_image: &str,
    config: &BuildConfig,
    enabled: bool,
) -> Option<String> {
    if !fit.is_outdated() {
        return Some(format!("the session image is {fit}"));
    }
    if !enabled {
        return Some("image.rebuild_outdated is false: run `octoctl image build`".to_owned());
    }
    // A build tags `<repository>:<version>` and `:latest`; an image under another tag (one the
    // administrator builds elsewhere) would not change, and the sessions would wait forever.
    if session_image != config.latest_tag() && session_image != config.versioned_tag() {
        return Some(format!(
            "sessions.image {session_image} is not an image octod builds ({}): rebuild it from /usr/share/octo/container yourself",
            config.latest_tag()
        ));
    }
    if let Some(problem) = crate::config::build_problem(config) {
        return Some(format!("the build cannot run: {problem}"));
    }
    None
}

/// Starts a rebuild of the session image when it is outdated (an upgrade changed the session
/// runtime) and `enabled`; the sessions wait for it and move onto the new image when it is
/// done. Returns at once; the build's progress goes to the log.
pub fn rebuild_if_outdated(engine: &Engine, config: BuildConfig, enabled: bool) {
    let fit = engine.image_fit();
    if let Some(why) = rebuild_refusal(&fit, &engine.config().image, &config, enabled) {
        if fit.is_outdated() {
            tracing::warn!(
                "the session image {} {fit}; it is not rebuilt by octod: {why}. Sessions wait for it.",
                engine.config().image
            );
        }
        return;
    }
    let engine = engine.clone();
    // Set before the task runs: whoever asks right after (octoctl status) hears of it.
    engine.set_rebuilding(true);
    tokio::spawn(async move {
        let started = Instant::now();
        tracing::warn!(
            image = %engine.config().image,
            "the session image {fit}: rebuilding it now (`journalctl --user-unit 'octo-image-build-*'` as octo for the whole log); sessions wait for it"
        );
        // The build's steps are its progress; every line is in its unit's journal.
        let result = build(&engine, &config, |line| {
            if line.starts_with("STEP ") {
                tracing::info!("image rebuild: {line}");
            }
        })
        .await;
        engine.set_rebuilding(false);
        match result {
            Ok(built) => tracing::info!(
                image = %built.image,
                unit = %built.unit,
                "rebuilt the session image in {:.0?}; moving the sessions onto it",
                started.elapsed()
            ),
            // Someone else's build (an earlier octod's, which survives a restart): the
            // reconciler takes up its image when it is done.
            Err(ImageError::AlreadyRunning { unit }) => tracing::info!(
                "an image build runs already ({unit}); the sessions move onto its image when it is done"
            ),
            Err(error) => tracing::error!(
                "rebuilding the session image failed: {error}. Sessions stay on their old units until `octoctl image build` succeeds"
            ),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_octod_rebuilds_by_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fileserver = dir.path().join("octo-fileserver");
        std::fs::write(dir.path().join("Containerfile"), "FROM x\n").expect("Containerfile");
        std::fs::write(&fileserver, "").expect("fileserver");
        let config = BuildConfig::new(dir.path(), &fileserver, dir.path().join("staging"));
        let outdated = ImageFit::Outdated { found: None };
        let latest = config.latest_tag();
        let check = |fit: &ImageFit, image: &str, config: &BuildConfig, enabled, rebuilds| {
            let refusal = rebuild_refusal(fit, image, config, enabled);
            assert_eq!(refusal.is_none(), rebuilds, "{fit:?} {image} {refusal:?}");
        };
        check(&outdated, &latest, &config, true, true);
        check(&outdated, &config.versioned_tag(), &config, true, true);
        check(&outdated, &latest, &config, false, false);
        check(&ImageFit::Current, &latest, &config, true, false);
        check(&ImageFit::Missing, &latest, &config, true, false);
        check(&ImageFit::Unknown, &latest, &config, true, false);
        check(
            &outdated,
            "registry.example/team/octo:custom",
            &config,
            true,
            false,
        );
        let mut broken = config.clone();
        broken.container_dir = dir.path().join("nowhere");
        check(&outdated, &latest, &broken, true, false);
    }
}
