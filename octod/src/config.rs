//! octod's configuration: `/etc/octo/octod.toml` plus drop-ins `/etc/octo/octod.d/*.toml`
//! (read in name order, later files win key by key). Every field of a file is optional; the
//! merged fragments are validated into [`Settings`], which has no invalid states. Errors name
//! the file and the key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod oidc;

pub use oidc::{AuthConfig, AuthFragment, OidcFragment, OidcProvider};

/// The main configuration file.
pub const MAIN_FILE: &str = "/etc/octo/octod.toml";
/// The drop-in directory.
pub const DROPIN_DIR: &str = "/etc/octo/octod.d";
/// Where `octoctl` finds octod when systemd does not pass the socket.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/octod/admin.sock";
/// Templates as the packages install them.
pub const DEFAULT_TEMPLATES_DIR: &str = "/usr/share/octo/container/templates";
/// The session image's build context as the packages install it.
pub const DEFAULT_IMAGE_CONTEXT: &str = "/usr/share/octo/container";
/// The file server binary as the packages install it.
pub const DEFAULT_FILESERVER: &str = "/usr/libexec/octo/octo-fileserver";
/// The most `sessions.keep_alive_max_hours` may be: a week.
pub const MAX_KEEP_ALIVE_HOURS: u64 = 168;

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
    /// `[limits]` or `[admission]`, whose keys are built from names (`limits.users.alice`).
    #[error(transparent)]
    Limits(#[from] crate::limits::InvalidLimit),
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
    #[serde(default)]
    pub image: ImageFragment,
    #[serde(default)]
    pub auth: AuthFragment,
    /// Resource limits per session (`crate::limits`).
    #[serde(default)]
    pub limits: crate::limits::LimitsFragment,
    /// Admission control (`crate::limits`).
    #[serde(default)]
    pub admission: crate::limits::AdmissionFragment,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFragment {
    /// Address (`ip:port`) or absolute Unix socket path bound when systemd passes no socket
    /// (development).
    pub listen: Option<String>,
    /// Addresses or networks of reverse proxies reaching octod over TCP whose
    /// `X-Forwarded-For` is believed (a Unix socket peer always is).
    pub trusted_proxies: Option<Vec<String>>,
    /// Where redb, the JWT key and other state live.
    pub state_dir: Option<PathBuf>,
    /// Always mark the session cookie `Secure` (it is anyway behind TLS).
    pub secure_cookies: Option<bool>,
    /// The admin socket bound when systemd passes none (development).
    pub admin_socket: Option<PathBuf>,
    /// How long a running session may take to send a proxied response's head.
    pub proxy_head_timeout_seconds: Option<u64>,
    /// The content origin's wildcard site (`*.content.example.org`, with `:port` when not
    /// 443), Caddy's `OCTO_CONTENT_SITE`: where workspace files are viewed. None: views are
    /// downloads.
    pub content_site: Option<String>,
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
    /// No longer used: sessions publish no host ports since issue 13 (each has a Unix
    /// socket). Still accepted so that an existing file keeps working; `octod config check`
    /// warns about it.
    pub port_range: Option<String>,
    /// Most sessions one user may have.
    pub max_per_user: Option<u32>,
    /// Stop sessions idle this long; 0 never.
    pub idle_timeout_minutes: Option<u64>,
    /// The longest a user may keep a session running without activity ("keep alive for 8
    /// hours"); 0 turns keep-alive off.
    pub keep_alive_max_hours: Option<u64>,
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
    /// Development only: a service reads the systemd credential `llm-key`
    /// (`/etc/octo/credentials/llm-key`, `octoctl llm set-key`). Never logged, never in a
    /// session: octod's model gateway adds it to the requests it forwards.
    pub api_key: Option<String>,
    /// How long the provider may take to start answering a request.
    pub timeout_seconds: Option<u64>,
    /// Monthly token budgets per role (`[llm.budgets]`); unset: none.
    pub budgets: Option<BudgetsFragment>,
    /// More models of the same provider as `model`, which stays the default.
    pub models: Option<Vec<String>>,
    /// More providers, by id (`[llm.providers.<id>]`), each with its own endpoint, key and
    /// models.
    pub providers: Option<std::collections::BTreeMap<String, ProviderFragment>>,
    /// The models each role's users may use (`[llm.allow]`); a role left out: every model.
    pub allow: Option<AllowFragment>,
}

/// `[llm.providers.<id>]`: another OpenAI-compatible provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFragment {
    pub base_url: String,
    pub models: Vec<String>,
    /// Development only: a service reads the systemd credential `llm-key-<id>`
    /// (`octoctl llm set-key --provider <id>`).
    pub api_key: Option<String>,
}

/// `[llm.allow]`: the models a role's users may use. Unset for a role: every model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowFragment {
    pub user: Option<Vec<String>>,
    pub admin: Option<Vec<String>>,
}

impl AllowFragment {
    /// Whether `role`'s users may use `model`.
    pub fn allows(&self, role: crate::identity::Role, model: &str) -> bool {
        match self.for_role(role) {
            Some(list) => list.iter().any(|m| m == model),
            None => true,
        }
    }

    pub fn for_role(&self, role: crate::identity::Role) -> Option<&[String]> {
        match role {
            crate::identity::Role::Admin => self.admin.as_deref(),
            crate::identity::Role::User => self.user.as_deref(),
        }
    }
}

/// Another provider of [`Llm`], checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Provider {
    pub id: String,
    pub base_url: String,
    pub models: Vec<String>,
    pub api_key: Option<String>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("base_url", &self.base_url)
            .field("models", &self.models)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `[llm.budgets]`: the monthly token budget (prompt + completion) of each role's users,
/// unless `octoctl user set-budget` overrides it for a user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetsFragment {
    pub user: Option<u64>,
    pub admin: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageFragment {
    /// The build context: the `container/` directory of the source tree.
    pub context: Option<PathBuf>,
    /// The `octo-fileserver` binary copied into the image.
    pub fileserver: Option<PathBuf>,
    /// `BASE_IMAGE` build argument; unset keeps the Containerfile's default.
    pub base: Option<String>,
    /// A directory of extra CA certificates (`*.crt`) to trust inside the image.
    pub extra_ca_dir: Option<PathBuf>,
    /// How long a build may take.
    pub build_timeout_minutes: Option<u64>,
    /// Whether octod rebuilds, by itself, a session image that an older package built for
    /// another session runtime (after an upgrade).
    pub rebuild_outdated: Option<bool>,
}

/// How the session image is built (`octoctl image build`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSettings {
    pub context: PathBuf,
    pub fileserver: PathBuf,
    pub base: Option<String>,
    pub extra_ca_dir: Option<PathBuf>,
    pub build_timeout: Duration,
    /// Rebuild an outdated image at start (default true).
    pub rebuild_outdated: bool,
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
    /// The default model.
    pub model: String,
    /// The default provider's models, `model` first.
    pub models: Vec<String>,
    pub api_key: Option<String>,
    /// How long the provider may take to answer with a response head.
    pub timeout: Duration,
    /// Monthly token budgets per role.
    pub budgets: BudgetsFragment,
    /// The other providers (`[llm.providers.<id>]`), by id.
    pub providers: Vec<Provider>,
    pub allow: AllowFragment,
}

impl Llm {
    /// Every model sessions may name, the default first.
    pub fn all_models(&self) -> Vec<String> {
        let mut all = self.models.clone();
        for provider in &self.providers {
            all.extend(provider.models.iter().cloned());
        }
        all
    }
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("budgets", &self.budgets)
            .field("models", &self.models)
            .field("providers", &self.providers)
            .field("allow", &self.allow)
            .finish()
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: ListenAddr,
    pub trusted_proxies: TrustedProxies,
    pub admin_socket: PathBuf,
    pub state_dir: PathBuf,
    pub secure_cookies: bool,
    /// How long a running session may take to send a proxied response's head (then `504`).
    pub proxy_head_timeout: Duration,
    /// `server.content_site`: the content origin, if there is one.
    pub content_site: Option<ContentSite>,
    pub image: String,
    pub templates_dir: PathBuf,
    pub quadlet_dir: Option<PathBuf>,
    /// `sessions.port_range` is set somewhere (ignored; `config check` warns).
    pub obsolete_port_range: bool,
    pub max_per_user: u32,
    pub idle_timeout: Option<Duration>,
    /// The longest keep-alive a user may ask for; zero: none.
    pub keep_alive_max: Duration,
    pub start_timeout: Duration,
    pub llm: Option<Llm>,
    pub image_build: ImageSettings,
    /// Sign-in: local passwords and OpenID Connect providers.
    pub auth: AuthConfig,
    /// `[limits]`: the memory, CPU and pids limits of sessions.
    pub limits: crate::limits::LimitsPolicy,
    /// `[admission]`: how many sessions may run, and the memory floor.
    pub admission: crate::limits::Admission,
    /// Where each set key came from (dotted key → file).
    pub sources: Vec<(&'static str, Source)>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
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
        .parse::<ListenAddr>()
        .map_err(|e| invalid(&at, "server.listen", e))?;
    let (trusted, at) = pick!("server.trusted_proxies", server.trusted_proxies);
    let trusted_proxies = TrustedProxies::parse(&trusted.unwrap_or_default())
        .map_err(|e| invalid(&at, "server.trusted_proxies", e))?;
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
    let (admin_socket, at) = pick!("server.admin_socket", server.admin_socket);
    let admin_socket = admin_socket.unwrap_or_else(|| PathBuf::from(DEFAULT_ADMIN_SOCKET));
    if !admin_socket.is_absolute() {
        return Err(invalid(
            &at,
            "server.admin_socket",
            "must be an absolute path".into(),
        ));
    }

    let (head, at) = pick!(
        "server.proxy_head_timeout_seconds",
        server.proxy_head_timeout_seconds
    );
    // The default of `proxy::HEAD_TIMEOUT`.
    let head = head.unwrap_or(300);
    if !(1..=86_400).contains(&head) {
        return Err(invalid(
            &at,
            "server.proxy_head_timeout_seconds",
            "must be 1–86400".into(),
        ));
    }

    let (content_site, at) = pick!("server.content_site", server.content_site);
    let content_site = content_site
        .as_deref()
        .map(ContentSite::parse)
        .transpose()
        .map_err(|e| invalid(&at, "server.content_site", e))?;

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
    let templates_dir = templates_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_TEMPLATES_DIR));
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
    let (range, _) = pick!("sessions.port_range", sessions.port_range);
    let obsolete_port_range = range.is_some();
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
    let (keep_alive, at) = pick!(
        "sessions.keep_alive_max_hours",
        sessions.keep_alive_max_hours
    );
    let keep_alive = keep_alive.unwrap_or(24);
    if keep_alive > MAX_KEEP_ALIVE_HOURS {
        return Err(invalid(
            &at,
            "sessions.keep_alive_max_hours",
            format!("must be at most {MAX_KEEP_ALIVE_HOURS} (a week), or 0 for no keep-alive"),
        ));
    }
    let keep_alive_max = Duration::from_secs(keep_alive * 3600);
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
    let (timeout, timeout_at) = pick!("llm.timeout_seconds", llm.timeout_seconds);
    let (budgets, _) = pick!("llm.budgets", llm.budgets);
    let (more_models, models_at) = pick!("llm.models", llm.models);
    let (providers, providers_at) = pick!("llm.providers", llm.providers);
    let (allow, allow_at) = pick!("llm.allow", llm.allow);
    if let Some(Source::File(file)) = sources
        .iter()
        .find(|(key, _)| *key == "llm.allow")
        .map(|(_, source)| source.clone())
    {
        sources.push(("llm.allow.user", Source::File(file.clone())));
        sources.push(("llm.allow.admin", Source::File(file)));
    }
    let timeout = timeout.unwrap_or(120);
    if !(1..=3600).contains(&timeout) {
        return Err(invalid(
            &timeout_at,
            "llm.timeout_seconds",
            "must be 1–3600".into(),
        ));
    }
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
            let mut models = vec![model.clone()];
            for extra in more_models.unwrap_or_default() {
                if !models.contains(&extra) {
                    models.push(extra);
                }
            }
            let providers = check_providers(providers.unwrap_or_default())
                .map_err(|message| invalid(&providers_at, "llm.providers", message))?;
            let mut llm = Llm {
                provider: provider.unwrap_or_else(|| "openai-compatible".into()),
                base_url,
                model,
                models,
                api_key,
                timeout: Duration::from_secs(timeout),
                budgets: budgets.unwrap_or_default(),
                providers,
                allow: allow.unwrap_or_default(),
            };
            check_models(&llm).map_err(|(key, message)| {
                invalid(
                    if key == "llm.allow" {
                        &allow_at
                    } else {
                        &models_at
                    },
                    key,
                    message,
                )
            })?;
            // A model listed twice in one allow list is the same model.
            for list in [&mut llm.allow.user, &mut llm.allow.admin]
                .into_iter()
                .flatten()
            {
                let mut seen = std::collections::HashSet::new();
                list.retain(|m| seen.insert(m.clone()));
            }
            Some(llm)
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
    let image_build = image_settings(fragments, &mut sources)?;
    let auth = oidc::auth_config(fragments, &mut sources)?;
    let (limits, admission) = crate::limits::merge(
        fragments
            .iter()
            .map(|(path, f)| (path.as_path(), &f.limits, &f.admission)),
    )?;
    Ok(Settings {
        listen,
        trusted_proxies,
        admin_socket,
        state_dir,
        secure_cookies: secure_cookies.unwrap_or(false),
        proxy_head_timeout: Duration::from_secs(head),
        content_site,
        image,
        templates_dir,
        quadlet_dir,
        obsolete_port_range,
        max_per_user,
        idle_timeout,
        keep_alive_max,
        start_timeout: Duration::from_secs(start),
        llm,
        image_build,
        auth,
        limits,
        admission,
        sources,
        files: fragments.iter().map(|(path, _)| path.clone()).collect(),
    })
}

/// The `[image]` section.
fn image_settings(
    fragments: &[(PathBuf, Fragment)],
    sources: &mut Vec<(&'static str, Source)>,
) -> Result<ImageSettings, ConfigError> {
    // The last fragment that sets a key: its value and where it came from.
    fn last<T: Clone>(
        fragments: &[(PathBuf, Fragment)],
        get: impl Fn(&ImageFragment) -> Option<&T>,
    ) -> Option<(T, PathBuf)> {
        fragments
            .iter()
            .rev()
            .find_map(|(path, f)| get(&f.image).map(|v| (v.clone(), path.clone())))
    }
    let mut absolute = |key: &'static str,
                        found: Option<(PathBuf, PathBuf)>,
                        default: Option<&str>|
     -> Result<Option<PathBuf>, ConfigError> {
        match found {
            Some((value, path)) => {
                if !value.is_absolute() {
                    return Err(ConfigError::Invalid {
                        path: path.display().to_string(),
                        key,
                        message: "must be an absolute path".into(),
                    });
                }
                sources.push((key, Source::File(path)));
                Ok(Some(value))
            }
            None => Ok(default.map(PathBuf::from)),
        }
    };
    let context = absolute(
        "image.context",
        last(fragments, |f| f.context.as_ref()),
        Some(DEFAULT_IMAGE_CONTEXT),
    )?
    .unwrap_or_default();
    let fileserver = absolute(
        "image.fileserver",
        last(fragments, |f| f.fileserver.as_ref()),
        Some(DEFAULT_FILESERVER),
    )?
    .unwrap_or_default();
    let extra_ca_dir = absolute(
        "image.extra_ca_dir",
        last(fragments, |f| f.extra_ca_dir.as_ref()),
        None,
    )?;
    let base = match last(fragments, |f| f.base.as_ref()) {
        Some((base, path)) => {
            if base.is_empty() || base.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ConfigError::Invalid {
                    path: path.display().to_string(),
                    key: "image.base",
                    message: format!("not an image reference: {base:?}"),
                });
            }
            sources.push(("image.base", Source::File(path)));
            Some(base)
        }
        None => None,
    };
    let minutes = match last(fragments, |f| f.build_timeout_minutes.as_ref()) {
        Some((minutes, path)) => {
            if !(1..=24 * 60).contains(&minutes) {
                return Err(ConfigError::Invalid {
                    path: path.display().to_string(),
                    key: "image.build_timeout_minutes",
                    message: "must be 1–1440".into(),
                });
            }
            sources.push(("image.build_timeout_minutes", Source::File(path)));
            minutes
        }
        None => 60,
    };
    let rebuild_outdated = match last(fragments, |f| f.rebuild_outdated.as_ref()) {
        Some((rebuild, path)) => {
            sources.push(("image.rebuild_outdated", Source::File(path)));
            rebuild
        }
        None => true,
    };
    Ok(ImageSettings {
        context,
        fileserver,
        base,
        extra_ca_dir,
        build_timeout: Duration::from_secs(minutes * 60),
        rebuild_outdated,
    })
}

/// One key of the effective configuration, for `octod config show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Dotted key, e.g. `sessions.image`.
    pub key: &'static str,
    /// The value as TOML (secrets shown as `"***"`); `None` when unset.
    pub value: Option<String>,
    pub source: Source,
}

impl Settings {
    /// Every key with its effective value and where it came from.
    pub fn effective(&self) -> Vec<Entry> {
        fn text(s: &str) -> Option<String> {
            Some(toml::Value::String(s.to_owned()).to_string())
        }
        fn path(p: &Path) -> Option<String> {
            text(&p.display().to_string())
        }
        fn list(items: &[String]) -> String {
            toml::Value::Array(items.iter().cloned().map(toml::Value::String).collect()).to_string()
        }
        let llm = self.llm.as_ref();
        let image = &self.image_build;
        let values: Vec<(&'static str, Option<String>)> = vec![
            ("server.listen", text(&self.listen.to_string())),
            (
                "server.trusted_proxies",
                Some(
                    toml::Value::Array(
                        self.trusted_proxies
                            .entries()
                            .into_iter()
                            .map(toml::Value::String)
                            .collect(),
                    )
                    .to_string(),
                ),
            ),
            ("server.admin_socket", path(&self.admin_socket)),
            ("server.state_dir", path(&self.state_dir)),
            (
                "server.secure_cookies",
                Some(self.secure_cookies.to_string()),
            ),
            (
                "server.proxy_head_timeout_seconds",
                Some(self.proxy_head_timeout.as_secs().to_string()),
            ),
            (
                "server.content_site",
                self.content_site
                    .as_ref()
                    .and_then(|site| text(&format!("*.{}", site.suffix()))),
            ),
            ("sessions.image", text(&self.image)),
            ("sessions.templates_dir", path(&self.templates_dir)),
            (
                "sessions.quadlet_dir",
                self.quadlet_dir.as_deref().and_then(path),
            ),
            ("sessions.max_per_user", Some(self.max_per_user.to_string())),
            (
                "sessions.idle_timeout_minutes",
                Some(
                    self.idle_timeout
                        .map_or(0, |d| d.as_secs() / 60)
                        .to_string(),
                ),
            ),
            (
                "sessions.keep_alive_max_hours",
                Some((self.keep_alive_max.as_secs() / 3600).to_string()),
            ),
            (
                "sessions.start_timeout_seconds",
                Some(self.start_timeout.as_secs().to_string()),
            ),
            ("image.context", path(&image.context)),
            ("image.fileserver", path(&image.fileserver)),
            ("image.base", image.base.as_deref().and_then(text)),
            (
                "image.extra_ca_dir",
                image.extra_ca_dir.as_deref().and_then(path),
            ),
            (
                "image.build_timeout_minutes",
                Some((image.build_timeout.as_secs() / 60).to_string()),
            ),
            (
                "image.rebuild_outdated",
                Some(image.rebuild_outdated.to_string()),
            ),
            ("llm.provider", llm.and_then(|l| text(&l.provider))),
            ("llm.base_url", llm.and_then(|l| text(&l.base_url))),
            ("llm.model", llm.and_then(|l| text(&l.model))),
            (
                "llm.api_key",
                llm.and_then(|l| l.api_key.as_ref())
                    .and_then(|_| text("***")),
            ),
            (
                "llm.timeout_seconds",
                llm.map(|l| l.timeout.as_secs().to_string()),
            ),
            (
                "llm.budgets.user",
                llm.and_then(|l| l.budgets.user).map(|t| t.to_string()),
            ),
            (
                "llm.budgets.admin",
                llm.and_then(|l| l.budgets.admin).map(|t| t.to_string()),
            ),
            ("llm.models", llm.map(|l| list(&l.models))),
            (
                "llm.providers",
                llm.filter(|l| !l.providers.is_empty()).map(|l| {
                    let mut table = toml::value::Table::new();
                    for p in &l.providers {
                        let mut provider = toml::value::Table::new();
                        provider.insert("base_url".into(), toml::Value::String(p.base_url.clone()));
                        provider.insert(
                            "models".into(),
                            toml::Value::Array(
                                p.models.iter().cloned().map(toml::Value::String).collect(),
                            ),
                        );
                        if p.api_key.is_some() {
                            provider.insert("api_key".into(), toml::Value::String("***".into()));
                        }
                        table.insert(p.id.clone(), toml::Value::Table(provider));
                    }
                    toml::Value::Table(table).to_string()
                }),
            ),
            (
                "llm.allow.user",
                llm.and_then(|l| l.allow.user.as_deref()).map(list),
            ),
            (
                "llm.allow.admin",
                llm.and_then(|l| l.allow.admin.as_deref()).map(list),
            ),
            (
                "auth.local_passwords",
                Some(self.auth.local_passwords.to_string()),
            ),
            ("auth.oidc", Some(self.auth.oidc_toml())),
        ];
        values
            .into_iter()
            .map(|(key, value)| Entry {
                key,
                value,
                source: self
                    .sources
                    .iter()
                    .rev()
                    .find(|(k, _)| *k == key)
                    .map_or(Source::Default, |(_, s)| s.clone()),
            })
            .collect()
    }

    /// The effective configuration as TOML, each key commented with its origin.
    pub fn show(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::from("# The effective configuration of octod.\n");
        if self.files.is_empty() {
            out.push_str("# No configuration files: every value is a default.\n");
        } else {
            out.push_str("# Read, later files winning key by key:\n");
            for file in &self.files {
                let _ = writeln!(out, "#   {}", file.display());
            }
        }
        let mut section = "";
        for entry in self.effective() {
            let (table, name) = entry.key.split_once('.').unwrap_or(("", entry.key));
            if table != section {
                let _ = write!(out, "\n[{table}]\n");
                section = table;
            }
            match &entry.value {
                Some(value) => {
                    let line = format!("{name} = {value}");
                    let _ = writeln!(out, "{line:<56} # {}", entry.source);
                }
                None => {
                    let _ = writeln!(out, "# {name} is not set");
                }
            }
        }
        out.push_str(&crate::limits::show(&self.limits, &self.admission));
        out
    }

    /// The build settings of `octoctl image build` from `[image]`: builds are staged under the
    /// state directory (which the `octo` user owns) and tagged in the repository of
    /// `sessions.image`.
    pub fn image_build_config(&self) -> crate::image::BuildConfig {
        let image = &self.image_build;
        let mut config = crate::image::BuildConfig::new(
            image.context.clone(),
            image.fileserver.clone(),
            self.state_dir.join("image-build"),
        );
        repository_of(&self.image).clone_into(&mut config.repository);
        config.base_image.clone_from(&image.base);
        config.extra_ca_dir.clone_from(&image.extra_ca_dir);
        config.timeout = image.build_timeout;
        config
    }
}

/// What keeps a build from starting: a missing context or file server. Checked up front so
/// the administrator reads the config key, not a staging error.
pub fn build_problem(config: &crate::image::BuildConfig) -> Option<String> {
    if !config.container_dir.join("Containerfile").is_file() {
        return Some(format!(
            "no Containerfile in the build context {} (image.context in octod.toml)",
            config.container_dir.display()
        ));
    }
    if !config.fileserver.is_file() {
        return Some(format!(
            "no octo-fileserver binary at {} (image.fileserver in octod.toml)",
            config.fileserver.display()
        ));
    }
    None
}

/// `localhost/octo-session:latest` → `localhost/octo-session` (a registry port is kept).
pub fn repository_of(image: &str) -> &str {
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(colon) => &image[..name_start + colon],
        None => image,
    }
}

/// Things that are valid but probably wrong on this host, for `octod config check`.
pub fn warnings(settings: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    let key = |k: &str| {
        settings
            .sources
            .iter()
            .rev()
            .find(|(key, _)| *key == k)
            .map_or_else(|| format!("{k} (default)"), |(_, s)| format!("{k} ({s})"))
    };
    if !settings.templates_dir.is_dir() {
        out.push(format!(
            "{}: {} is not a directory: no templates to offer",
            key("sessions.templates_dir"),
            settings.templates_dir.display()
        ));
    }
    if !settings.image_build.context.join("Containerfile").is_file() {
        out.push(format!(
            "{}: no Containerfile in {}: `octoctl image build` cannot work",
            key("image.context"),
            settings.image_build.context.display()
        ));
    }
    if !settings.image_build.fileserver.is_file() {
        out.push(format!(
            "{}: {} does not exist: `octoctl image build` cannot work",
            key("image.fileserver"),
            settings.image_build.fileserver.display()
        ));
    }
    if settings.obsolete_port_range {
        out.push(format!(
            "{}: ignored: sessions publish no host ports any more (each has a Unix socket); \
             remove the key",
            key("sessions.port_range")
        ));
    }
    if settings.llm.is_none() {
        out.push("no [llm] provider: agents in sessions cannot answer".to_owned());
    }
    for provider in &settings.auth.oidc {
        if provider.client_secret.is_some() {
            out.push(format!(
                "{}: provider {} has its client_secret in a configuration file; put it in {}/oidc-{} (root only) instead",
                key("auth.oidc"),
                provider.id,
                CREDENTIALS_DIR,
                provider.id
            ));
        } else if !Path::new(CREDENTIALS_DIR)
            .join(format!("oidc-{}", provider.id))
            .exists()
        {
            out.push(format!(
                "{}: no client secret for provider {} ({}/oidc-{} does not exist or is not readable): octod signs in as a public client, which most providers refuse",
                key("auth.oidc"),
                provider.id,
                CREDENTIALS_DIR,
                provider.id
            ));
        }
    }
    out
}

/// Secrets passed to octod as systemd credentials (`LoadCredential=` in octod.service).
pub const CREDENTIALS_DIR: &str = "/etc/octo/credentials";

/// The content origin's wildcard site (`server.content_site`): every host directly beneath
/// it is one origin of session content (`files-<id>.<suffix>`, …). Kept as the suffix after
/// `*.`, lowercase, with its port if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentSite {
    suffix: String,
}

impl ContentSite {
    /// `*.content.example.org[:port]` (the `*.` may be left out).
    pub fn parse(text: &str) -> Result<Self, String> {
        let suffix = text.trim().strip_prefix("*.").unwrap_or(text.trim());
        let suffix = suffix.to_ascii_lowercase();
        let (name, port) = match suffix.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (suffix.as_str(), None),
        };
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if !name.split('.').all(label_ok) || !name.contains('.') {
            return Err(format!(
                "not a wildcard site such as \"*.content.example.org\" (a domain of two labels or more beneath the `*.`): {text:?}"
            ));
        }
        if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
            return Err(format!("not a port in {text:?}"));
        }
        Ok(Self { suffix })
    }

    /// `content.example.org[:port]`: what follows a content host's own label.
    pub fn suffix(&self) -> &str {
        &self.suffix
    }

    /// The label of `host` (a `Host` header) when it is a host of this site: `files-ab12`
    /// for `files-ab12.content.example.org[:port]`. Case-insensitive; one label only.
    pub fn label_of<'a>(&self, host: &'a str) -> Option<&'a str> {
        let (label, rest) = host.split_once('.')?;
        (rest.eq_ignore_ascii_case(&self.suffix) && !label.is_empty()).then_some(label)
    }

    /// `https://<label>.<suffix>`.
    pub fn origin(&self, label: &str) -> String {
        format!("https://{label}.{}", self.suffix)
    }
}

/// Addresses and networks whose forwarded headers are trusted (`server.trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses `address` or `address/prefix` entries; an error names the bad entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| parse_net(entry.as_ref().trim()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|&(net, bits)| in_net(ip, net, bits))
    }
}

impl TrustedProxies {
    /// Each entry as `address/prefix`.
    pub fn entries(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(ip, bits)| format!("{ip}/{bits}"))
            .collect()
    }
}

fn parse_net(entry: &str) -> Result<(IpAddr, u8), String> {
    let (addr, bits) = match entry.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits)),
        None => (entry, None),
    };
    let ip = canonical(
        addr.parse::<IpAddr>()
            .map_err(|_| format!("{entry:?} is not an IP address or network"))?,
    );
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        None => max,
        Some(bits) => bits
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("{entry:?}: the prefix length must be 0 to {max}"))?,
    };
    Ok((ip, bits))
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Where octod serves HTTP: `address:port`, or an absolute path for a Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with('/') {
            return Ok(Self::Unix(PathBuf::from(s)));
        }
        s.parse::<SocketAddr>().map(Self::Tcp).map_err(|e| {
            format!("not an address:port ({e}) nor an absolute path for a Unix socket")
        })
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `[llm.providers]`: ids that can name a credential, http(s) endpoints, some models each.
fn check_providers(
    fragments: std::collections::BTreeMap<String, ProviderFragment>,
) -> Result<Vec<Provider>, String> {
    let mut out = Vec::new();
    for (id, provider) in fragments {
        let id_ok = !id.is_empty()
            && id.len() <= 32
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(format!(
                "provider id {id:?}: use 1–32 lowercase letters, digits or '-' (it names the credential llm-key-<id>)"
            ));
        }
        if !(provider.base_url.starts_with("http://") || provider.base_url.starts_with("https://"))
        {
            return Err(format!("{id}.base_url must be an http(s) URL"));
        }
        if provider.models.is_empty() {
            return Err(format!("{id}.models names no model"));
        }
        out.push(Provider {
            id,
            base_url: provider.base_url,
            models: provider.models,
            api_key: provider.api_key,
        });
    }
    Ok(out)
}

/// Model names: not empty, each served by one provider only, and every model an allow list
/// names is served.
fn check_models(llm: &Llm) -> Result<(), (&'static str, String)> {
    let all = llm.all_models();
    let mut seen = std::collections::HashSet::new();
    for model in &all {
        if model.trim().is_empty() || model.len() > 200 || model.contains(',') {
            return Err((
                "llm.models",
                format!("{model:?} is not a model name (1–200 characters, no ',')"),
            ));
        }
        if !seen.insert(model.as_str()) {
            return Err((
                "llm.models",
                format!("the model {model:?} is served by two providers; name each model once"),
            ));
        }
    }
    for (role, list) in [("user", &llm.allow.user), ("admin", &llm.allow.admin)] {
        let Some(list) = list else { continue };
        if list.is_empty() {
            return Err((
                "llm.allow",
                format!("{role} allows no model; leave it out to allow every model"),
            ));
        }
        if let Some(unknown) = list.iter().find(|m| !seen.contains(m.as_str())) {
            return Err((
                "llm.allow",
                format!("{role} allows {unknown:?}, which no provider serves"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn content_sites_are_wildcards_of_two_labels_or_more() {
        let site = ContentSite::parse("*.Content.Localhost:8443").expect("valid");
        assert_eq!(site.suffix(), "content.localhost:8443");
        assert_eq!(
            site.label_of("files-ab12.content.localhost:8443"),
            Some("files-ab12")
        );
        assert_eq!(
            site.label_of("FILES-ab12.CONTENT.localhost:8443"),
            Some("FILES-ab12")
        );
        assert_eq!(site.label_of("content.localhost:8443"), None);
        assert_eq!(site.label_of("a.b.content.localhost:8443"), None);
        assert_eq!(site.label_of("files-ab12.content.localhost"), None);
        assert_eq!(site.label_of("localhost:8443"), None);
        assert_eq!(
            site.origin("files-ab12"),
            "https://files-ab12.content.localhost:8443"
        );
        assert_eq!(
            ContentSite::parse("octo-content.example.org")
                .expect("valid")
                .suffix(),
            "octo-content.example.org"
        );
        for bad in [
            "*.localhost",
            "localhost",
            "*.a..b",
            "*.-a.b",
            "*.a.b:0",
            "*.a.b:x",
            "*.a b.c",
            "",
        ] {
            assert!(ContentSite::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn trusted_proxies_match_addresses_and_networks() {
        let t = TrustedProxies::parse(&["10.1.0.0/16", "192.0.2.7", "2001:db8::/32"]).expect("ok");
        assert!(t.contains(ip("10.1.200.3")));
        assert!(!t.contains(ip("10.2.0.1")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        assert!(t.contains(ip("2001:db8:1::5")));
        assert!(!t.contains(ip("2001:db9::1")));
        // An IPv4-mapped IPv6 peer is its IPv4 address.
        assert!(t.contains(ip("::ffff:10.1.0.9")));
        assert!(
            !t.contains(ip("127.0.0.1")),
            "loopback is not trusted unless listed"
        );
        assert!(TrustedProxies::default().is_empty());
        let all = TrustedProxies::parse(&["0.0.0.0/0"]).expect("ok");
        assert!(all.contains(ip("203.0.113.1")));
        assert!(
            !all.contains(ip("::1")),
            "an IPv4 network holds no IPv6 address"
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let e = TrustedProxies::parse(&["10.0.0.0/33"]).expect_err("prefix");
        assert!(e.contains("10.0.0.0/33") && e.contains("0 to 32"), "{e}");
        let e = TrustedProxies::parse(&["localhost"]).expect_err("name");
        assert!(e.contains("localhost"), "{e}");
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            "127.0.0.1:8484".parse::<ListenAddr>(),
            Ok(ListenAddr::Tcp("127.0.0.1:8484".parse().expect("addr")))
        );
        assert_eq!(
            "/run/octod/http.sock".parse::<ListenAddr>(),
            Ok(ListenAddr::Unix("/run/octod/http.sock".into()))
        );
        let e = "run/octod.sock"
            .parse::<ListenAddr>()
            .expect_err("relative");
        assert!(e.contains("absolute path"), "{e}");
    }

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
        let bad = fragment("[sessions]\nmax_per_user = 0\n");
        let error = merge(&[bad]).expect_err("invalid limit").to_string();
        assert!(error.contains("sessions.max_per_user"), "{error}");
        assert!(error.contains("/etc/octo/"), "{error}");
        let bad = fragment("[llm]\nbase_url = \"https://x/v1\"\n");
        let error = merge(&[bad]).expect_err("model missing").to_string();
        assert!(error.contains("llm.model"), "{error}");
        assert!(toml::from_str::<Fragment>("[sessions]\nnope = 1\n").is_err());
    }

    #[test]
    fn several_providers_and_models_per_role() {
        let f = fragment(
            "[llm]\nbase_url = \"https://a/v1\"\nmodel = \"big\"\nmodels = [\"small\", \"big\"]\n\
             [llm.providers.other]\nbase_url = \"http://b:9/v1\"\nmodels = [\"o1\"]\napi_key = \"sk-b\"\n\
             [llm.allow]\nuser = [\"small\", \"o1\", \"small\"]\n",
        );
        let settings = merge(&[f]).expect("valid");
        let llm = settings.llm.as_ref().expect("llm");
        assert_eq!(llm.models, ["big", "small"]);
        assert_eq!(llm.all_models(), ["big", "small", "o1"]);
        assert_eq!(llm.providers.len(), 1);
        assert_eq!(llm.providers[0].id, "other");
        assert_eq!(
            llm.allow.user.as_deref(),
            Some(&["small".to_owned(), "o1".to_owned()][..])
        );
        assert!(llm.allow.allows(crate::identity::Role::User, "o1"));
        assert!(!llm.allow.allows(crate::identity::Role::User, "big"));
        assert!(llm.allow.allows(crate::identity::Role::Admin, "big"));
        let shown = settings.show();
        assert!(shown.contains("other = {"), "{shown}");
        assert!(!shown.contains("sk-b"), "{shown}");
        // Still a configuration that reads back the same (the key masked).
        let again = merge(&[fragment(&shown)]).expect(&shown);
        let again = again.llm.expect("llm");
        assert_eq!(again.all_models(), llm.all_models());
        assert_eq!(again.allow, llm.allow);
        assert_eq!(again.providers[0].api_key.as_deref(), Some("***"));

        let refused = |text: &str, key: &str, says: &str| {
            let error = merge(&[fragment(text)]).expect_err(text).to_string();
            assert!(
                error.contains(key) && error.contains(says),
                "{text}: {error}"
            );
        };
        let base = "[llm]\nbase_url = \"https://a/v1\"\nmodel = \"big\"\n";
        refused(
            &format!("{base}[llm.providers.b]\nbase_url = \"https://b/v1\"\nmodels = [\"big\"]\n"),
            "llm.models",
            "two providers",
        );
        refused(
            &format!("{base}[llm.providers.B_x]\nbase_url = \"https://b/v1\"\nmodels = [\"m\"]\n"),
            "llm.providers",
            "lowercase",
        );
        refused(
            &format!("{base}[llm.providers.b]\nbase_url = \"ftp://b\"\nmodels = [\"m\"]\n"),
            "llm.providers",
            "http(s)",
        );
        refused(
            &format!("{base}[llm.providers.b]\nbase_url = \"https://b\"\nmodels = []\n"),
            "llm.providers",
            "no model",
        );
        refused(
            &format!("{base}[llm.allow]\nuser = [\"gpt-9\"]\n"),
            "llm.allow",
            "gpt-9",
        );
        refused(
            &format!("{base}[llm.allow]\nadmin = []\n"),
            "llm.allow",
            "no model",
        );
        refused(
            &format!("{base}models = [\"a,b\"]\n"),
            "llm.models",
            "not a model name",
        );
    }

    #[test]
    fn an_old_port_range_is_accepted_and_warned_about() {
        let old = fragment("[sessions]\nport_range = \"40000-44999\"\n");
        let settings = merge(&[old]).expect("still valid");
        assert!(settings.obsolete_port_range);
        let warnings = warnings(&settings);
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("sessions.port_range (/etc/octo/") && w.contains("ignored")),
            "{warnings:?}"
        );
        assert!(!settings.show().contains("port_range"));
        assert!(!merge(&[]).expect("defaults").obsolete_port_range);
    }

    #[test]
    fn show_names_each_value_and_its_origin_and_hides_the_api_key() {
        let f = fragment(
            "[server]\nadmin_socket = \"/run/x/admin.sock\"\n[llm]\nbase_url = \"https://x/v1\"\nmodel = \"m\"\napi_key = \"sk-secret\"\n[image]\nbase = \"localhost/debian:trixie-slim\"\n",
        );
        let file = f.0.display().to_string();
        let settings = merge(&[f]).expect("valid");
        let text = settings.show();
        assert!(!text.contains("sk-secret"), "{text}");
        let line = |key: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{key} =")))
                .unwrap_or_else(|| panic!("{key} missing in\n{text}"))
                .to_owned()
        };
        assert!(line("admin_socket").contains(&file), "{text}");
        assert!(line("listen").ends_with("# default"), "{text}");
        assert!(line("api_key").contains("\"***\""), "{text}");
        assert!(
            line("base").contains("localhost/debian:trixie-slim"),
            "{text}"
        );
        assert!(
            text.contains("\n[image]\n") && text.contains("\n[llm]\n"),
            "{text}"
        );
        assert!(text.contains("# quadlet_dir is not set"), "{text}");
        // What show prints is itself a valid configuration (comments aside, secrets masked).
        assert!(toml::from_str::<Fragment>(&text).is_ok(), "{text}");
    }

    #[test]
    fn image_paths_must_be_absolute() {
        let bad = fragment("[image]\ncontext = \"container\"\n");
        let error = merge(&[bad]).expect_err("relative").to_string();
        assert!(error.contains("image.context"), "{error}");
        let defaults = merge(&[]).expect("defaults");
        assert_eq!(
            defaults.image_build.context,
            PathBuf::from(DEFAULT_IMAGE_CONTEXT)
        );
        assert_eq!(defaults.admin_socket, PathBuf::from(DEFAULT_ADMIN_SOCKET));
    }

    #[test]
    fn api_key_is_not_in_debug_output() {
        let f = fragment(
            "[llm]\nbase_url = \"https://x/v1\"\nmodel = \"m\"\napi_key = \"sk-secret\"\n",
        );
        let settings = merge(&[f]).expect("valid");
        assert!(!format!("{settings:?}").contains("sk-secret"));
    }

    #[test]
    fn repository_drops_only_the_tag() {
        assert_eq!(
            repository_of("localhost/octo-session:latest"),
            "localhost/octo-session"
        );
        assert_eq!(
            repository_of("localhost:5000/octo:1.2"),
            "localhost:5000/octo"
        );
        assert_eq!(repository_of("localhost:5000/octo"), "localhost:5000/octo");
        assert_eq!(repository_of("octo"), "octo");
    }
}
