//! `GET /admin/v1/status`: versions, the session image, sessions by state, uptime, and the
//! warnings an administrator should act on.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;

use super::AdminState;
use crate::api::sessions::state_name;
use crate::http::ApiError;

/// The answer of `octoctl status`.
pub use octo_wire::{ImageStatus, StatusView};

/// The states a session can be in, as the API names them.
pub const STATES: [&str; 7] = [
    "creating", "starting", "running", "stopping", "stopped", "deleting", "failed",
];

pub(super) async fn status(State(state): State<AdminState>) -> Result<Json<StatusView>, ApiError> {
    let engine = &state.app.engine;
    let mut warnings = Vec::new();
    let podman_version = match engine.podman().version().await {
        Ok(v) => Some(v.to_string()),
        Err(e) => {
            warnings.push(format!("Podman does not answer: {e}"));
            None
        }
    };
    let reference = engine.config().image.clone();
    let image = match engine.podman().image_inspect(&reference).await {
        Ok(Some(info)) => {
            let fit = crate::engine::ImageFit::of(Some(&info.labels));
            if fit.is_outdated() {
                warnings.push(if engine.rebuilding() {
                    format!(
                        "the session image {reference} {fit}: octod is rebuilding it; sessions wait for it and then move onto it"
                    )
                } else {
                    format!(
                        "the session image {reference} {fit}: sessions wait until it is rebuilt (octoctl image build)"
                    )
                });
            }
            Some(ImageStatus {
                reference: reference.clone(),
                id: info.id,
                created: info.created,
                size: info.size,
                runtime: fit.found_runtime(),
            })
        }
        Ok(None) => {
            warnings.push(format!(
                "no session image {reference}: run `octoctl image build`"
            ));
            None
        }
        Err(e) => {
            warnings.push(format!("inspecting the session image {reference}: {e}"));
            None
        }
    };
    let records = engine.list().await.map_err(|e| ApiError::from(&e))?;
    let states = records.iter().map(|r| state_name(&r.state));
    let sessions = count_states(states);
    let render = &engine.config().render;
    warnings.extend(controller_warnings(
        &engine.config().limits,
        render.controllers,
    ));
    warnings.extend(engine.limits_warnings());
    if render.llm.is_none() {
        warnings.push(
            "no LLM provider configured ([llm] in octod.toml): agents cannot answer".to_owned(),
        );
    }
    if let Some(problem) = crate::config::build_problem(&state.config.build) {
        warnings.push(format!("`octoctl image build` cannot run: {problem}"));
    }
    if let Some(user) = &state.config.run_as {
        let linger = std::path::Path::new("/var/lib/systemd/linger").join(user);
        if !linger.exists() {
            warnings.push(format!(
                "linger is off for {user}: sessions stop when its last login ends and do not start at boot (loginctl enable-linger {user})"
            ));
        }
    }
    Ok(Json(StatusView {
        octod_version: crate::VERSION.to_owned(),
        podman_version,
        image,
        sessions,
        uptime_seconds: state.app.started.elapsed().as_secs(),
        warnings,
    }))
}

/// Counts by state name, every state present. Pure.
pub fn count_states<'a>(states: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = STATES.iter().map(|s| ((*s).to_owned(), 0)).collect();
    for state in states {
        *counts.entry(state.to_owned()).or_default() += 1;
    }
    counts
}

/// One warning per limit kind that `[limits]` sets while its cgroup controller is not
/// delegated to octod's user. Pure.
pub fn controller_warnings(
    limits: &crate::limits::LimitsPolicy,
    controllers: crate::render::Controllers,
) -> Vec<String> {
    let uid = nix::unistd::getuid().as_raw();
    let path =
        format!("/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers");
    crate::limits::controller_warnings(limits, controllers, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_is_counted_even_at_zero() {
        let counts = count_states(["running", "running", "failed"].into_iter());
        assert_eq!(counts.len(), STATES.len());
        assert_eq!(counts["running"], 2);
        assert_eq!(counts["failed"], 1);
        assert_eq!(counts["stopped"], 0);
    }

    #[test]
    fn a_warning_names_each_missing_controller_that_a_limit_needs() {
        use crate::render::Controllers;
        let fragment: crate::config::Fragment =
            toml::from_str("[limits]\nmemory = \"2G\"\n[limits.users.alice]\npids = 100\n")
                .expect("toml");
        let path = std::path::Path::new("/etc/octo/octod.toml");
        let (limits, _) = crate::limits::merge(std::iter::once((
            path,
            &fragment.limits,
            &fragment.admission,
        )))
        .expect("valid");
        let none = crate::limits::controller_warnings(&limits, Controllers::NONE, "/x");
        assert_eq!(
            none,
            [
                "[limits] sets memory, but the memory cgroup controller is not delegated to octod's user (not in /x): session memory limits are not enforced",
                "[limits] sets pids, but the pids cgroup controller is not delegated to octod's user (not in /x): session pids limits are not enforced",
            ]
        );
        assert!(crate::limits::controller_warnings(&limits, Controllers::ALL, "/x").is_empty());
        // No limits, nothing unenforced: no warning.
        let unlimited = crate::limits::LimitsPolicy::default();
        assert!(crate::limits::controller_warnings(&unlimited, Controllers::NONE, "/x").is_empty());
    }
}
