//! Whether the session image fits this octod: it implements the session runtime that octod's
//! units are written for ([`SESSION_RUNTIME`], declared by the image's [`LABEL_RUNTIME`]).
//!
//! After a package upgrade that changes the runtime, the image on the host is still the one
//! the previous package built. Units of the new runtime do not run on it (its entrypoint
//! expects the old contract), so until the image is rebuilt the engine leaves every session on
//! the units it has: it writes no unit, starts and restarts nothing, refuses creates and
//! resumes with `503 image_outdated`, and the proxy answers `503 session_upgrading`. A running
//! session keeps running on its old units meanwhile. Once the image fits, the next pass
//! rewrites the units and restarts each running session onto them, once.

use std::collections::BTreeMap;

use crate::render::{LABEL_RUNTIME, SESSION_RUNTIME};

/// What octod knows of the session image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFit {
    /// Not checked yet, or Podman did not answer.
    Unknown,
    /// There is no image under the configured reference.
    Missing,
    /// It implements another session runtime: `found` is its label (`None`: no label, the
    /// images built before the label existed, runtime 1).
    Outdated { found: Option<u32> },
    /// It implements [`SESSION_RUNTIME`].
    Current,
}

impl ImageFit {
    /// The fit of an image with these labels (`None`: no such image). Pure.
    pub fn of(labels: Option<&BTreeMap<String, String>>) -> Self {
        let Some(labels) = labels else {
            return Self::Missing;
        };
        let found = labels
            .get(LABEL_RUNTIME)
            .and_then(|v| v.trim().parse::<u32>().ok());
        if found == Some(SESSION_RUNTIME) {
            Self::Current
        } else {
            Self::Outdated { found }
        }
    }

    pub fn is_current(&self) -> bool {
        *self == Self::Current
    }

    pub fn is_outdated(&self) -> bool {
        matches!(self, Self::Outdated { .. })
    }

    /// The runtime the image declares, as the administrator reads it (`1` for no label).
    pub fn found_runtime(&self) -> Option<u32> {
        match self {
            Self::Outdated { found } => Some(found.unwrap_or(1)),
            Self::Current => Some(SESSION_RUNTIME),
            Self::Unknown | Self::Missing => None,
        }
    }
}

impl std::fmt::Display for ImageFit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown => f.write_str("not checked (Podman did not answer)"),
            Self::Missing => f.write_str("missing"),
            Self::Outdated { found } => write!(
                f,
                "implements session runtime {} (an image of another package); this octod needs runtime {SESSION_RUNTIME}",
                found.unwrap_or(1)
            ),
            Self::Current => write!(f, "current (session runtime {SESSION_RUNTIME})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(labels: Option<&[(&str, &str)]>, expected: ImageFit) {
        let labels: Option<BTreeMap<String, String>> = labels.map(|l| {
            l.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        });
        assert_eq!(ImageFit::of(labels.as_ref()), expected, "{labels:?}");
    }

    #[test]
    fn fit_by_the_runtime_label() {
        let current = SESSION_RUNTIME.to_string();
        let older = (SESSION_RUNTIME - 1).to_string();
        check(None, ImageFit::Missing);
        check(Some(&[(LABEL_RUNTIME, &current)]), ImageFit::Current);
        check(
            Some(&[("org.octo.version", "0.1.0"), (LABEL_RUNTIME, &current)]),
            ImageFit::Current,
        );
        // The images of the packages before the label: runtime 1.
        check(Some(&[]), ImageFit::Outdated { found: None });
        check(
            Some(&[("org.octo.version", "0.1.0")]),
            ImageFit::Outdated { found: None },
        );
        check(
            Some(&[(LABEL_RUNTIME, &older)]),
            ImageFit::Outdated {
                found: Some(SESSION_RUNTIME - 1),
            },
        );
        // A newer image (a downgraded package) does not fit either.
        check(
            Some(&[(LABEL_RUNTIME, "99")]),
            ImageFit::Outdated { found: Some(99) },
        );
        check(
            Some(&[(LABEL_RUNTIME, "two")]),
            ImageFit::Outdated { found: None },
        );
        assert_eq!(ImageFit::Outdated { found: None }.found_runtime(), Some(1));
    }
}
