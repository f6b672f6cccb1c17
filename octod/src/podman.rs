//! Podman access for what systemd does not do: the version check at start, session token
//! secrets, image presence, and removal/listing of containers and volumes for orphan cleanup.
//!
//! A small typed client for the libpod REST API on the user's Podman socket
//! (`$XDG_RUNTIME_DIR/podman/podman.sock`, socket-activated by the user unit `podman.socket`),
//! over hyper 1. We do not use the `podman-api` crate: it targets libpod 4.x (its Podman 5
//! support is an unmerged draft) and brings a second HTTP stack (hyper 0.14) and ~125 crates
//! for the dozen calls octod makes.
//!
//! Policy: one connection per request (octod makes few, small calls; no pool to go stale when
//! the socket unit restarts); every request has a timeout; answers are size-limited; removals
//! of what is already gone succeed (cleanup must be idempotent). Request bodies are never
//! logged — a secret's body is the session token.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use crate::systemd::{Systemd, SystemdError};

/// The libpod API version we speak (its paths are prefixed with it).
const API: &str = "/v5.0.0/libpod";
/// The largest answer we read; octod's listings are far smaller.
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// The default time one request may take.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The user unit that provides the API socket.
pub const SOCKET_UNIT: &str = "podman.socket";

/// The oldest Podman that Octo runs on: Quadlet with `Notify=healthy` needs 5.0.
pub const MIN_VERSION: Version = Version::new(5, 0, 0);

/// Errors from the Podman API.
#[derive(Debug, thiserror::Error)]
pub enum PodmanError {
    /// The API socket could not be reached (or `podman.socket` could not be started).
    #[error("connecting to the Podman API at {}: {source}", socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the Podman API socket: {0}")]
    SocketUnit(#[source] SystemdError),
    /// The HTTP exchange broke off.
    #[error("{what}: talking to Podman: {source}")]
    Http {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{what}: no answer from Podman within {after:?}")]
    Timeout { what: String, after: Duration },
    /// Podman answered with an error status.
    #[error("{what}: Podman answered {status}: {message}")]
    Api {
        what: String,
        status: u16,
        message: String,
    },
    /// Podman's answer was not what its API documents.
    #[error("{what}: unexpected answer from Podman: {detail}")]
    Decode { what: String, detail: String },
    #[error(
        "Podman {found} is too old: Octo needs Podman ≥ {}.{} for Quadlet's Notify=healthy \
         (sessions report ready only once healthy); install Podman {}.{} or newer",
        needed.major, needed.minor, needed.major, needed.minor
    )]
    TooOld { found: Version, needed: Version },
}

/// A Podman release version (`major.minor.patch`; pre-release suffixes are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Version {
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses `5.4.2`, `5.4`, `5.4.0-dev`, `5.4.0-rc1+build`. `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let core = text.trim().trim_start_matches('v');
        let core = core.split(['-', '+', '~']).next().unwrap_or(core);
        let mut parts = core.split('.');
        let mut number = |required: bool| match parts.next() {
            Some(part) if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) => {
                part.parse().ok()
            }
            None if !required => Some(0),
            _ => None,
        };
        let version = Self::new(number(true)?, number(false)?, number(false)?);
        parts.next().is_none().then_some(version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Checks a version string as Podman reports it against [`MIN_VERSION`]. Pure: octod's start
/// check and its tests share it.
pub fn check_version(reported: &str) -> Result<Version, PodmanError> {
    let found = Version::parse(reported).ok_or_else(|| PodmanError::Decode {
        what: "reading the Podman version".to_owned(),
        detail: format!("not a version: {reported:?}"),
    })?;
    if found < MIN_VERSION {
        return Err(PodmanError::TooOld {
            found,
            needed: MIN_VERSION,
        });
    }
    Ok(found)
}

/// The few facts about an image that octod shows and checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The full image ID (hex, without `sha256:`).
    pub id: String,
    /// When it was built, as Podman reports it (RFC 3339).
    pub created: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// The image's labels (`LABEL` in its Containerfile).
    pub labels: BTreeMap<String, String>,
}

/// A container as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    /// `created`, `running`, `exited`, `paused`, …
    pub state: String,
    /// The full ID of the image it was created from (hex, without `sha256:`).
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
}

/// A volume as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSummary {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Where its data is on the host.
    pub mountpoint: Option<PathBuf>,
}

/// Which volumes [`Podman::list_volumes`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeFilter {
    All,
    /// Names starting with this (matched here, exactly; Podman's `name` filter is a regex).
    NamePrefix(String),
    /// `key` or `key=value`, as Podman's `label` filter.
    Label(String),
}

/// A client for the libpod API on one Unix socket. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Podman {
    socket: PathBuf,
    timeout: Duration,
}

impl Podman {
    /// A client for the API socket at `socket`; nothing is connected until the first call.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The current user's API socket: `$XDG_RUNTIME_DIR/podman/podman.sock`, else
    /// `/run/user/<uid>/podman/podman.sock`.
    pub fn user_socket_path() -> PathBuf {
        let runtime = std::env::var_os("XDG_RUNTIME_DIR").map_or_else(
            || PathBuf::from(format!("/run/user/{}", nix::unistd::getuid().as_raw())),
            PathBuf::from,
        );
        runtime.join("podman/podman.sock")
    }

    /// Starts the user's `podman.socket` (a no-op when it listens already) and returns a
    /// client for it.
    pub async fn connect_user(systemd: &Systemd) -> Result<Self, PodmanError> {
        systemd
            .start(SOCKET_UNIT, Duration::from_secs(30))
            .await
            .map_err(PodmanError::SocketUnit)?;
        Ok(Self::new(Self::user_socket_path()))
    }

    /// Sets the time one request may take.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    // --- version ---

    /// The server's version.
    pub async fn version(&self) -> Result<Version, PodmanError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(rename = "Version")]
            version: String,
        }
        let what = "reading the Podman version";
        // The unversioned compat endpoint: it answers on every Podman, so an old one is
        // reported as too old rather than failing the versioned path.
        let answer: Answer = self.get_json(what, "/version".to_owned()).await?;
        Version::parse(&answer.version).ok_or_else(|| PodmanError::Decode {
            what: what.to_owned(),
            detail: format!("not a version: {:?}", answer.version),
        })
    }

    /// Refuses a Podman older than [`MIN_VERSION`] with [`PodmanError::TooOld`].
    pub async fn require_v5(&self) -> Result<Version, PodmanError> {
        let found = self.version().await?;
        check_version(&found.to_string())
    }

    // --- secrets ---

    /// Creates the secret `name` holding `value` (file driver); with `replace`, an existing
    /// one is overwritten, otherwise that is an error. Returns the secret's ID.
    pub async fn create_secret(
        &self,
        name: &str,
        value: &[u8],
        replace: bool,
    ) -> Result<String, PodmanError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(rename = "ID")]
            id: String,
        }
        let what = format!("creating secret {name}");
        let path = format!(
            "{API}/secrets/create?name={}&driver=file&replace={replace}",
            query(name)
        );
        let (status, body) = self
            .request(
                &what,
                Method::POST,
                path,
                Some(Bytes::copy_from_slice(value)),
            )
            .await?;
        let answer: Answer = decode_ok(&what, status, &body)?;
        Ok(answer.id)
    }

    /// Removes a secret; one that does not exist counts as removed. Returns whether it existed.
    pub async fn delete_secret(&self, name: &str) -> Result<bool, PodmanError> {
        let what = format!("removing secret {name}");
        let path = format!("{API}/secrets/{}", segment(name));
        self.remove(&what, path).await
    }

    pub async fn secret_exists(&self, name: &str) -> Result<bool, PodmanError> {
        let what = format!("checking for secret {name}");
        self.exists(&what, format!("{API}/secrets/{}/exists", segment(name)))
            .await
    }

    /// The names of all secrets.
    pub async fn list_secrets(&self) -> Result<Vec<String>, PodmanError> {
        #[derive(Deserialize)]
        struct Secret {
            #[serde(rename = "Spec")]
            spec: Spec,
        }
        #[derive(Deserialize)]
        struct Spec {
            #[serde(rename = "Name")]
            name: String,
        }
        let secrets: Vec<Secret> = self
            .get_json("listing secrets", format!("{API}/secrets/json"))
            .await?;
        Ok(secrets.into_iter().map(|s| s.spec.name).collect())
    }

    // --- images ---

    pub async fn image_exists(&self, reference: &str) -> Result<bool, PodmanError> {
        let what = format!("checking for image {reference}");
        self.exists(&what, format!("{API}/images/{}/exists", segment(reference)))
            .await
    }

    /// Tags `image` as `reference` (`repository:tag`); the image must exist.
    pub async fn tag_image(&self, image: &str, reference: &str) -> Result<(), PodmanError> {
        let what = format!("tagging {image} as {reference}");
        let (repo, tag) = match reference.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (reference, "latest"),
        };
        let path = format!(
            "{API}/images/{}/tag?repo={}&tag={}",
            segment(image),
            query(repo),
            query(tag)
        );
        let (status, body) = self.request(&what, Method::POST, path, None).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(api_error(&what, status, &body))
        }
    }

    /// ID, creation time, size and labels of a local image; `None` when there is no such image.
    pub async fn image_inspect(&self, reference: &str) -> Result<Option<ImageInfo>, PodmanError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(rename = "Id")]
            id: String,
            #[serde(rename = "Created")]
            created: Option<String>,
            #[serde(rename = "Size", default)]
            size: u64,
            #[serde(rename = "Labels", default)]
            labels: Option<BTreeMap<String, String>>,
        }
        let what = format!("inspecting image {reference}");
        let path = format!("{API}/images/{}/json", segment(reference));
        let (status, body) = self.request(&what, Method::GET, path, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let answer: Answer = decode_ok(&what, status, &body)?;
        Ok(Some(ImageInfo {
            id: answer.id,
            created: answer.created,
            size: answer.size,
            labels: answer.labels.unwrap_or_default(),
        }))
    }

    // --- containers ---

    /// Removes a container (with `force`, also a running one) and its anonymous volumes;
    /// one that does not exist counts as removed. Returns whether it existed.
    pub async fn remove_container(&self, name: &str, force: bool) -> Result<bool, PodmanError> {
        let what = format!("removing container {name}");
        let path = format!("{API}/containers/{}?force={force}&v=true", segment(name));
        self.remove(&what, path).await
    }

    /// Unpauses a paused container (a snapshot worker's `ExecStopPost=` does it; this is for
    /// when that was killed too). Says whether it was paused.
    pub async fn unpause_container(&self, name: &str) -> Result<bool, PodmanError> {
        let what = format!("unpausing container {name}");
        let path = format!("{API}/containers/{}/unpause", segment(name));
        let (status, body) = self.request(&what, Method::POST, path, None).await?;
        match status {
            s if s.is_success() => Ok(true),
            // Not paused (409/500 "not paused") or gone.
            StatusCode::NOT_FOUND | StatusCode::CONFLICT => Ok(false),
            StatusCode::INTERNAL_SERVER_ERROR
                if String::from_utf8_lossy(&body).contains("not paused") =>
            {
                Ok(false)
            }
            _ => Err(api_error(&what, status, &body)),
        }
    }

    /// All containers (running or not) that carry `label` (`key` or `key=value`).
    pub async fn list_containers(&self, label: &str) -> Result<Vec<ContainerSummary>, PodmanError> {
        #[derive(Deserialize)]
        struct Container {
            #[serde(rename = "Id")]
            id: String,
            #[serde(rename = "Names", default)]
            names: Vec<String>,
            #[serde(rename = "State", default)]
            state: String,
            #[serde(rename = "ImageID", default)]
            image_id: String,
            #[serde(rename = "Labels", default)]
            labels: Option<BTreeMap<String, String>>,
        }
        let what = format!("listing containers labelled {label}");
        let path = format!(
            "{API}/containers/json?all=true&filters={}",
            label_filter(label)
        );
        let containers: Vec<Container> = self.get_json(&what, path).await?;
        Ok(containers
            .into_iter()
            .map(|c| ContainerSummary {
                name: c.names.into_iter().next().unwrap_or_default(),
                id: c.id,
                state: c.state,
                image_id: c.image_id.trim_start_matches("sha256:").to_owned(),
                labels: c.labels.unwrap_or_default(),
            })
            .collect())
    }

    // --- volumes ---

    /// Removes a volume (with `force`, also one in use, together with its containers); one
    /// that does not exist counts as removed. Returns whether it existed.
    pub async fn remove_volume(&self, name: &str, force: bool) -> Result<bool, PodmanError> {
        let what = format!("removing volume {name}");
        let path = format!("{API}/volumes/{}?force={force}", segment(name));
        self.remove(&what, path).await
    }

    pub async fn volume_exists(&self, name: &str) -> Result<bool, PodmanError> {
        let what = format!("checking for volume {name}");
        self.exists(&what, format!("{API}/volumes/{}/exists", segment(name)))
            .await
    }

    /// Where a volume's data is on the host (`Mountpoint`); `None` when there is no volume.
    pub async fn volume_mountpoint(&self, name: &str) -> Result<Option<PathBuf>, PodmanError> {
        #[derive(Deserialize)]
        struct Volume {
            #[serde(rename = "Mountpoint")]
            mountpoint: PathBuf,
        }
        if !self.volume_exists(name).await? {
            return Ok(None);
        }
        let what = format!("inspecting volume {name}");
        let volume: Volume = self
            .get_json(&what, format!("{API}/volumes/{}/json", segment(name)))
            .await?;
        Ok(Some(volume.mountpoint))
    }

    pub async fn list_volumes(
        &self,
        filter: &VolumeFilter,
    ) -> Result<Vec<VolumeSummary>, PodmanError> {
        #[derive(Deserialize)]
        struct Volume {
            #[serde(rename = "Name")]
            name: String,
            #[serde(rename = "Labels", default)]
            labels: Option<BTreeMap<String, String>>,
            #[serde(rename = "Mountpoint", default)]
            mountpoint: Option<PathBuf>,
        }
        let (what, path) = match filter {
            VolumeFilter::Label(label) => (
                format!("listing volumes labelled {label}"),
                format!("{API}/volumes/json?filters={}", label_filter(label)),
            ),
            VolumeFilter::All | VolumeFilter::NamePrefix(_) => {
                ("listing volumes".to_owned(), format!("{API}/volumes/json"))
            }
        };
        let volumes: Vec<Volume> = self.get_json(&what, path).await?;
        Ok(volumes
            .into_iter()
            .filter(|v| match filter {
                VolumeFilter::NamePrefix(prefix) => v.name.starts_with(prefix.as_str()),
                _ => true,
            })
            .map(|v| VolumeSummary {
                name: v.name,
                labels: v.labels.unwrap_or_default(),
                mountpoint: v.mountpoint,
            })
            .collect())
    }

    // --- plumbing ---

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: String,
    ) -> Result<T, PodmanError> {
        let (status, body) = self.request(what, Method::GET, path, None).await?;
        decode_ok(what, status, &body)
    }

    /// `GET …/exists`: 204 yes, 404 no.
    async fn exists(&self, what: &str, path: String) -> Result<bool, PodmanError> {
        let (status, body) = self.request(what, Method::GET, path, None).await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(api_error(what, status, &body)),
        }
    }

    /// `DELETE`: any success is removed, 404 was already gone.
    async fn remove(&self, what: &str, path: String) -> Result<bool, PodmanError> {
        let (status, body) = self.request(what, Method::DELETE, path, None).await?;
        if status.is_success() {
            Ok(true)
        } else if status == StatusCode::NOT_FOUND {
            Ok(false)
        } else {
            Err(api_error(what, status, &body))
        }
    }

    /// One request on a fresh connection, under the timeout. Logs the method and path only.
    async fn request(
        &self,
        what: &str,
        method: Method,
        path: String,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), PodmanError> {
        tracing::debug!(%method, %path, "podman API");
        let exchange = async {
            let stream = tokio::net::UnixStream::connect(&self.socket)
                .await
                .map_err(|source| PodmanError::Connect {
                    socket: self.socket.clone(),
                    source,
                })?;
            let http = |source: Box<dyn std::error::Error + Send + Sync>| PodmanError::Http {
                what: what.to_owned(),
                source,
            };
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| http(e.into()))?;
            // The connection task ends when the answer has been read and the sender dropped.
            tokio::spawn(connection);
            let mut builder = Request::builder()
                .method(method)
                .uri(&path)
                .header(hyper::header::HOST, "d");
            if body.is_some() {
                builder = builder.header(hyper::header::CONTENT_TYPE, "application/octet-stream");
            }
            let request = builder
                .body(Full::new(body.unwrap_or_default()))
                .map_err(|e| http(e.into()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| http(e.into()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(http)?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| PodmanError::Timeout {
                what: what.to_owned(),
                after: self.timeout,
            })?
    }
}

/// Decodes a success answer as `T`; an error status becomes [`PodmanError::Api`].
fn decode_ok<T: serde::de::DeserializeOwned>(
    what: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<T, PodmanError> {
    if !status.is_success() {
        return Err(api_error(what, status, body));
    }
    serde_json::from_slice(body).map_err(|e| PodmanError::Decode {
        what: what.to_owned(),
        detail: e.to_string(),
    })
}

/// Podman's error body is `{"cause": …, "message": …, "response": status}`; the message says
/// it best. Anything else is shown as text, shortened.
fn api_error(what: &str, status: StatusCode, body: &[u8]) -> PodmanError {
    #[derive(Deserialize)]
    struct Answer {
        message: String,
    }
    let message = if let Ok(answer) = serde_json::from_slice::<Answer>(body) {
        answer.message
    } else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            status.canonical_reason().unwrap_or("no message").to_owned()
        } else {
            text.chars().take(300).collect()
        }
    };
    PodmanError::Api {
        what: what.to_owned(),
        status: status.as_u16(),
        message,
    }
}

/// Characters escaped in a path segment. `/`, `:` and `@` stay: image references contain
/// them and libpod's routes take the rest of the path as the name.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'&')
    .add(b'+')
    .add(b'=')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

fn segment(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

fn query(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

/// libpod's `filters` query value: JSON `{"label": [label]}`, escaped.
fn label_filter(label: &str) -> String {
    query(&serde_json::json!({ "label": [label] }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `check_version` on Podman's version text: `Ok(version)` or the error message.
    fn check(reported: &str, expected: Result<&str, &str>) {
        let actual = check_version(reported)
            .map(|v| v.to_string())
            .map_err(|e| e.to_string());
        let expected = expected.map(str::to_owned).map_err(str::to_owned);
        assert_eq!(actual, expected, "for {reported:?}");
    }

    #[test]
    fn version_five_and_later_pass() {
        check("5.0.0", Ok("5.0.0"));
        check("5.4.2", Ok("5.4.2"));
        check("5.4", Ok("5.4.0"));
        check("5.5.0-dev", Ok("5.5.0"));
        check("5.0.0-rc1+abc", Ok("5.0.0"));
        check("6.0.0", Ok("6.0.0"));
        check("10.1.3", Ok("10.1.3"));
    }

    #[test]
    fn version_below_five_is_refused_clearly() {
        check(
            "4.3.1",
            Err(
                "Podman 4.3.1 is too old: Octo needs Podman ≥ 5.0 for Quadlet's \
                 Notify=healthy (sessions report ready only once healthy); install Podman \
                 5.0 or newer",
            ),
        );
        assert!(matches!(
            check_version("4.9.5"),
            Err(PodmanError::TooOld { .. })
        ));
        // A release candidate of 5.0 is still 5.0 (the suffix is ignored).
        assert!(check_version("5.0.0-rc1").is_ok());
    }

    #[test]
    fn version_garbage_is_a_decode_error() {
        for bad in ["", "five", "5..1", "5.4.2.1", "5.x", "-5.0"] {
            assert!(
                matches!(check_version(bad), Err(PodmanError::Decode { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn version_order_is_numeric() {
        assert!(Version::new(5, 10, 0) > Version::new(5, 9, 9));
        assert!(Version::new(4, 99, 99) < MIN_VERSION);
    }

    #[test]
    fn names_are_escaped_for_paths_and_queries() {
        assert_eq!(
            segment("localhost/octo-session:latest"),
            "localhost/octo-session:latest"
        );
        assert_eq!(segment("a b?c#d%"), "a%20b%3Fc%23d%25");
        assert_eq!(query("octo-ab12-token"), "octo%2Dab12%2Dtoken");
        assert_eq!(
            label_filter("octo.session"),
            "%7B%22label%22%3A%5B%22octo%2Esession%22%5D%7D"
        );
    }

    #[test]
    fn api_errors_carry_podman_message() {
        let body = br#"{"cause":"no such secret","message":"nope: no such secret","response":404}"#;
        let error = api_error("removing secret x", StatusCode::NOT_FOUND, body);
        assert_eq!(
            error.to_string(),
            "removing secret x: Podman answered 404: nope: no such secret"
        );
        let error = api_error("x", StatusCode::INTERNAL_SERVER_ERROR, b"  plain text\n");
        assert_eq!(error.to_string(), "x: Podman answered 500: plain text");
        let error = api_error("x", StatusCode::BAD_GATEWAY, b"");
        assert_eq!(error.to_string(), "x: Podman answered 502: Bad Gateway");
    }
}
