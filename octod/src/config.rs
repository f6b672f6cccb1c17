//! octod's configuration: `/etc/octo/octod.toml` plus drop-ins `/etc/octo/octod.d/*.toml`
//! (read in name order, later files win key by key). Every field of a file is optional; the
//! merged fragments are validated into [`Settings`], which has no invalid states. Errors name
//! the file and the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::store::PortRange;

/// The main configuration file.
pub const MAIN_FILE: &str = "/etc/octo/octod.toml";
/// The drop-in directory.
pub const DROPIN_DIR: &str = "/etc/octo/octod.d";

/// Why the configuration is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: String,
        key: &'static str,
        message: String,
    },
}

/// One file's worth of configuration: everything optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fragment {
    #[serde(default)]
    pub server: ServerFragment,
    #[serde(default)]
    pub sessions: SessionsFragment,
    #[serde(default)]
    pub llm: LlmFragment,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFragment {
    /// Address bound when systemd passes no socket (development).
    pub listen: Option<String>,
    /// Where redb, the JWT key and other state live.
    pub state_dir: Option<PathBuf>,
    /// Always mark the session cookie `Secure` (it is anyway behind TLS).
    pub secure_cookies: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsFragment {
    /// The image new sessions run.
    pub image: Option<String>,
    /// One directory per template.
    pub templates_dir: Option<PathBuf>,
    /// Where session units are written; default `~/.config/containers/systemd/octo`.
    pub quadlet_dir: Option<PathBuf>,
    /// Host ports for sessions, `"start-end"`; three per session.
    pub port_range: Option<String>,
    /// Most sessions one user may have.
    pub max_per_user: Option<u32>,
    /// Stop sessions idle this long; 0 never.
    pub idle_timeout_minutes: Option<u64>,
    /// `TimeoutStartSec=` of a session unit.
    pub start_timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmFragment {
    /// A display name for the provider.
    pub provider: Option<String>,
    /// An OpenAI-compatible endpoint, e.g. `https://llm.example/v1`.
    pub base_url: Option<String>,
    pub model: Option<String>,
    /// Never logged; reaches sessions as a Podman secret.
    pub api_key: Option<String>,
}

/// Where a value came from, for `octod config show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The LLM provider sessions use.
#[derive(Clone, PartialEq, Eq)]
pub struct Llm {
    pub provider: String,
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub secure_cookies: bool,
    pub image: String,
    pub templates_dir: PathBuf,
    pub quadlet_dir: Option<PathBuf>,
    pub port_range: PortRange,
    pub max_per_user: u32,
    pub idle_timeout: Option<Duration>,
    pub start_timeout: Duration,
    pub llm: Option<Llm>,
    /// Where each set key came from (dotted key → file).
    pub sources: Vec<(&'static str, Source)>,
}

/// Reads the main file (if it exists) and the drop-ins of `dropins` (if it exists).
pub fn load(main: &Path, dropins: &Path) -> Result<Settings, ConfigError> {
    let mut files = Vec::new();
    if main.exists() {
        files.push(main.to_owned());
    }
    if let Ok(entries) = std::fs::read_dir(dropins) {
        let mut more: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        more.sort();
        files.extend(more);
    }
    let mut fragments = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let fragment: Fragment = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        fragments.push((path, fragment));
    }
    merge(&fragments)
}

/// Merges fragments (later wins) and validates.
pub fn merge(fragments: &[(PathBuf, Fragment)]) -> Result<Settings, ConfigError> {
    let mut sources = Vec::new();
    // The last fragment that sets a key, and its value.
    macro_rules! pick {
        ($key:literal, $($field:ident).+) => {{
            let mut found = None;
            for (path, fragment) in fragments {
                if let Some(value) = &fragment.$($field).+ {
                    found = Some((path.clone(), value.clone()));
                }
            }
            match found {
                Some((path, value)) => {
                    sources.push(($key, Source::File(path.clone())));
                    (Some(value), path.display().to_string())
                }
                None => (None, "defaults".to_owned()),
            }
        }};
    }
    let invalid = |path: &str, key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_owned(),
        key,
        message,
    };

    let (listen, at) = pick!("server.listen", server.listen);
    let listen = listen
        .as_deref()
        .unwrap_or("127.0.0.1:8484")
        .parse::<SocketAddr>()
        .map_err(|e| invalid(&at, "server.listen", format!("not an address:port: {e}")))?;
    let (state_dir, at) = pick!("server.state_dir", server.state_dir);
    let state_dir = state_dir.unwrap_or_else(|| PathBuf::from("/var/lib/octod"));
    if !state_dir.is_absolute() {
        return Err(invalid(
            &at,
            "server.state_dir",
            "must be an absolute path".into(),
        ));
    }
    let (secure_cookies, _) = pick!("server.secure_cookies", server.secure_cookies);

    let (image, at) = pick!("sessions.image", sessions.image);
    let image = image.unwrap_or_else(|| "localhost/octo-session:latest".into());
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            &at,
            "sessions.image",
            format!("not an image reference: {image:?}"),
        ));
    }
    let (templates_dir, at) = pick!("sessions.templates_dir", sessions.templates_dir);
    let templates_dir = templates_dir.unwrap_or_else(|| PathBuf::from("/usr/share/octo/templates"));
    if !templates_dir.is_absolute() {
        return Err(invalid(
            &at,
            "sessions.templates_dir",
            "must be an absolute path".into(),
        ));
    }
    let (quadlet_dir, at) = pick!("sessions.quadlet_dir", sessions.quadlet_dir);
    if quadlet_dir.as_ref().is_some_and(|d| !d.is_absolute()) {
        return Err(invalid(
            &at,
            "sessions.quadlet_dir",
            "must be an absolute path".into(),
        ));
    }
    let (range, at) = pick!("sessions.port_range", sessions.port_range);
    let port_range = parse_range(range.as_deref().unwrap_or("40000-44999"))
        .map_err(|message| invalid(&at, "sessions.port_range", message))?;
    let (max, at) = pick!("sessions.max_per_user", sessions.max_per_user);
    let max_per_user = max.unwrap_or(5);
    if max_per_user == 0 {
        return Err(invalid(
            &at,
            "sessions.max_per_user",
            "must be at least 1".into(),
        ));
    }
    let (idle, _) = pick!(
        "sessions.idle_timeout_minutes",
        sessions.idle_timeout_minutes
    );
    let idle_timeout = match idle.unwrap_or(120) {
        0 => None,
        minutes => Some(Duration::from_secs(minutes.saturating_mul(60))),
    };
    let (start, at) = pick!(
        "sessions.start_timeout_seconds",
        sessions.start_timeout_seconds
    );
    let start = start.unwrap_or(120);
    if !(10..=3600).contains(&start) {
        return Err(invalid(
            &at,
            "sessions.start_timeout_seconds",
            "must be 10–3600".into(),
        ));
    }

    let (base_url, at) = pick!("llm.base_url", llm.base_url);
    let (model, model_at) = pick!("llm.model", llm.model);
    let (provider, _) = pick!("llm.provider", llm.provider);
    let (api_key, _) = pick!("llm.api_key", llm.api_key);
    let llm = match (base_url, model) {
        (None, None) => None,
        (Some(base_url), Some(model)) => {
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                return Err(invalid(
                    &at,
                    "llm.base_url",
                    "must be an http(s) URL".into(),
                ));
            }
            Some(Llm {
                provider: provider.unwrap_or_else(|| "openai-compatible".into()),
                base_url,
                model,
                api_key,
            })
        }
        (Some(_), None) => {
            return Err(invalid(
                &at,
                "llm.model",
                "is needed with llm.base_url".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                &model_at,
                "llm.base_url",
                "is needed with llm.model".into(),
            ));
        }
    };
    Ok(Settings {
        listen,
        state_dir,
        secure_cookies: secure_cookies.unwrap_or(false),
        image,
        templates_dir,
        quadlet_dir,
        port_range,
        max_per_user,
        idle_timeout,
        start_timeout: Duration::from_secs(start),
        llm,
        sources,
    })
}

fn parse_range(text: &str) -> Result<PortRange, String> {
    let (start, end) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?} is not \"start-end\""))?;
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .map_err(|_| format!("{s:?} is not a port number"))
    };
    PortRange::new(port(start)?, port(end)?).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(text: &str) -> (PathBuf, Fragment) {
        (
            PathBuf::from(format!("/etc/octo/{}.toml", text.len())),
            toml::from_str(text).expect("valid toml"),
        )
    }

    #[test]
    fn defaults_without_files() {
        let settings = merge(&[]).expect("defaults are valid");
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8484");
        assert_eq!(settings.image, "localhost/octo-session:latest");
        assert_eq!(settings.max_per_user, 5);
        assert_eq!(settings.idle_timeout, Some(Duration::from_secs(7200)));
        assert!(settings.llm.is_none());
        assert!(settings.sources.is_empty());
    }

    #[test]
    fn later_fragments_win_key_by_key() {
        let a = fragment("[sessions]\nmax_per_user = 3\nimage = \"localhost/a:1\"\n");
        let b = fragment("[sessions]\nmax_per_user = 9\n");
        let settings = merge(&[a, b.clone()]).expect("valid");
        assert_eq!(settings.max_per_user, 9);
        assert_eq!(settings.image, "localhost/a:1");
        assert!(
            settings
                .sources
                .contains(&("sessions.max_per_user", Source::File(b.0)))
        );
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let bad = fragment("[sessions]\nport_range = \"5-2\"\n");
        let error = merge(&[bad]).expect_err("invalid range").to_string();
        assert!(error.contains("sessions.port_range"), "{error}");
        assert!(error.contains("/etc/octo/"), "{error}");
        let bad = fragment("[llm]\nbase_url = \"https://x/v1\"\n");
        let error = merge(&[bad]).expect_err("model missing").to_string();
        assert!(error.contains("llm.model"), "{error}");
        assert!(toml::from_str::<Fragment>("[sessions]\nnope = 1\n").is_err());
    }

    #[test]
    fn api_key_is_not_in_debug_output() {
        let f = fragment(
            "[llm]\nbase_url = \"https://x/v1\"\nmodel = \"m\"\napi_key = \"sk-secret\"\n",
        );
        let settings = merge(&[f]).expect("valid");
        assert!(!format!("{settings:?}").contains("sk-secret"));
    }
}
