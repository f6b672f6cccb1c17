//! Session spec → Quadlet units (design.md, "One session = Quadlet files"). This is the only
//! module that maps a session onto Quadlet; the spec in [`crate::session`] knows nothing of it,
//! so a Kubernetes renderer can take the same spec later.
//!
//! For session `<id>` it renders:
//!
//! - `octo-<id>.volume`: the Podman volume `octo-<id>`, the persistent home;
//! - `octo-<id>.socket` (for the user's systemd directory, not Quadlet's): the session's one
//!   entry point, a Unix socket at `%t/octo/sessions/<id>.sock` (mode 0600: only the `octo`
//!   user connects) that activates the container's service; the gateway in the container
//!   accepts on it as fd 3. `[Install] WantedBy=sockets.target`, linked while the session is
//!   running or idle (see [`SessionNames::socket_unit`]);
//! - `octo-<id>.container`: the container `octo-<id>` from the session's image (`Pull=never`:
//!   images are local), `UserNS=auto`, no published port and a pinned network ([`PASTA`]),
//!   `Requires=`/`After=` its socket, the home volume at [`HOME_MOUNT`], the template
//!   directory read-only at [`TEMPLATE_MOUNT`], the session token from the Podman secret
//!   `octo-<id>-token` as a file at [`TOKEN_FILE`] readable by the image's user only, a
//!   health check with `Notify=healthy`, labels `octo.session`/`octo.owner`, all capabilities
//!   dropped and `NoNewPrivileges=true`, resource limits for delegated controllers only, a
//!   deliberate `TimeoutStartSec=`, and `[Install] WantedBy=default.target` only while the
//!   desired state is running (so running sessions come back after a reboot; idle ones wait
//!   for a connection to their socket, stopped ones stay stopped).
//!
//! Rendering is pure: no IO. The caller reads `cgroup.controllers`, writes the files, creates
//! the secret and logs [`RenderedSession::unenforced`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quadlet::{
    ContainerSection, ContainerUnit, EnvVar, HealthCheck, InstallSection, Label, ListenStream,
    Network, PidsLimit, PullPolicy, Restart, Secret, SecretTarget, ServiceSection, SocketSection,
    SocketUnit, UnitSection, UserNs, VolumeMount, VolumeSection, VolumeSource, VolumeUnit,
};

use crate::session::{DesiredState, Limits, SessionId, SessionSpec};

/// Where the persistent home volume is mounted in the container.
pub const HOME_MOUNT: &str = "/home/dev";
/// Where the session's template directory is mounted (read-only); the entrypoint applies it.
pub const TEMPLATE_MOUNT: &str = "/etc/octo/template";
/// Where the session token is, as a file, inside the container (the gateway's `--token-file`).
pub const TOKEN_FILE: &str = "/run/secrets/octo-token";
/// The options of the container's network, pasta(1) (passt(1) for the options; how Podman
/// adds its own: podman-run(1) `--network pasta`). Podman 5.4 would assume most of them, but
/// a `pasta_options` line in `containers.conf` could change that behind our back, so the
/// unit states them: the host's loopback must stay out of the session's reach (octod, the
/// admin socket and other local services listen there).
///
/// - `-T none`, `-U none`: no forwarding of the container's own loopback ports to the host's
///   loopback (pasta's `auto` would forward every port the host has bound);
/// - `-t none`, `-u none`: no forwarding of host ports into the container (nothing is
///   published: the session's one way in is its socket);
/// - `--no-map-gw`: the gateway address is not translated to the host's loopback (Podman's
///   default too: Podman 5.4.2 then passes it twice, which pasta accepts — seen in the test
///   host; `--map-gw` would undo it). `host.containers.internal` stays Podman's
///   `--map-guest-addr 169.254.1.2`, which reaches the host's *outward* address only: a
///   service bound to 127.0.0.1 on the host does not answer there.
pub const PASTA: [&str; 9] = [
    "--no-map-gw",
    "-t",
    "none",
    "-u",
    "none",
    "-T",
    "none",
    "-U",
    "none",
];
/// The environment variable that carries the session id inside the container.
pub const SESSION_ID_ENV: &str = "OCTO_SESSION_ID";
/// The health check of the real session image: checks all three services.
pub const DEFAULT_HEALTH_CMD: &str = "/usr/local/bin/octo-healthcheck";
/// The session runtime these units are written for: what the container must do to run under
/// them (accept on the socket unit's fd 3, read its token from [`TOKEN_FILE`], publish no
/// port). The session image declares the runtime it implements in [`LABEL_RUNTIME`]; octod
/// starts no session on an image of another runtime (an image built by an older package), and
/// rebuilds it first. Raise it with every change of that contract, in the Containerfile too.
/// Runtime 1 (no label) published TCP ports and took its token on the command line; runtime
/// 2 took the LLM provider (with its key) as the variable `OCTO_LLM_CONFIG`; runtime 3 reaches
/// octod's model gateway through the socket at [`LLM_MOUNT`] and names its models in
/// [`LLM_MODELS_ENV`]; runtime 4's gateway also relays `/preview/<port>/…` to the apps the
/// session runs and lists their ports (`/api/ports`), which octod's previews use.
pub const SESSION_RUNTIME: u32 = 4;
/// The URL of a preview with `{port}` in place of the port, for the agent to hand its user a
/// link (`https://p{port}-<id>.<content site>/`); set only with a content site.
pub const PREVIEW_URL_ENV: &str = "OCTO_PREVIEW_URL_TEMPLATE";
/// Where the session's directory of octod's model gateway (its socket, [`LLM_SOCKET_FILE`])
/// is mounted in the container.
pub const LLM_MOUNT: &str = "/run/octo-llm";
/// The model gateway's socket in a session's directory.
pub const LLM_SOCKET_FILE: &str = "llm.sock";
/// The models a session may use, comma-separated, the default first: not secret.
pub const LLM_MODELS_ENV: &str = "OCTO_LLM_MODELS";
/// The image label that carries the session runtime the image implements.
pub const LABEL_RUNTIME: &str = "org.octo.session-runtime";
/// Label keys on the container and the volume; cleanup finds orphans by them.
pub const LABEL_SESSION: &str = "octo.session";
pub const LABEL_OWNER: &str = "octo.owner";

/// The names of everything that belongs to one session, in one place so that create, delete
/// and the reconciler agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionNames {
    /// `octo-<id>.container`
    pub container_file: String,
    /// `octo-<id>.volume`
    pub volume_file: String,
    /// `octo-<id>.socket`: the socket unit, also its file's name in the user's systemd
    /// directory and its enablement link's in `sockets.target.wants/`.
    pub socket_unit: String,
    /// `octo/sessions/<id>.sock`: the socket's path under the manager's runtime directory.
    pub socket_relative: String,
    /// `octo-<id>.service`: the unit to start and stop.
    pub service: String,
    /// `octo-<id>-volume.service`: Quadlet's oneshot that creates the volume.
    pub volume_service: String,
    /// `octo-<id>`: the Podman container.
    pub container: String,
    /// `octo-<id>`: the Podman volume.
    pub volume: String,
    /// `octo-<id>-token`: the Podman secret holding the session token.
    pub token_secret: String,
}

/// Which of a session's things a name names (see [`SessionNames`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `octo-<id>.container`
    ContainerFile,
    /// `octo-<id>.volume`
    VolumeFile,
    /// `octo-<id>.socket`: the socket unit and its file.
    SocketUnit,
    /// `octo-<id>.tmp`: a unit file being written (the engine writes it, then renames it).
    PartialFile,
    /// `octo-<id>.service`
    Service,
    /// `octo-<id>-volume.service`
    VolumeService,
    /// `octo-<id>`: the Podman container and the Podman volume.
    PodmanObject,
    /// `octo-<id>-token`
    TokenSecret,
}

impl SessionNames {
    /// The prefix of every name a session owns (and of octod's other units).
    pub const PREFIX: &str = "octo-";

    pub fn new(id: &SessionId) -> Self {
        let base = format!("{}{id}", Self::PREFIX);
        Self {
            container_file: format!("{base}.container"),
            volume_file: format!("{base}.volume"),
            socket_unit: format!("{base}.socket"),
            socket_relative: format!("octo/sessions/{id}.sock"),
            service: format!("{base}.service"),
            volume_service: format!("{base}-volume.service"),
            container: base.clone(),
            volume: base.clone(),
            token_secret: format!("{base}-token"),
        }
    }

    /// The session and the part that `name` names, if it is one of the names above.
    pub fn parse(name: &str) -> Option<(SessionId, Part)> {
        let rest = name.strip_prefix(Self::PREFIX)?;
        // Session ids are `[a-z0-9]`: the id ends where the suffix begins.
        let end = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
            .unwrap_or(rest.len());
        let part = match &rest[end..] {
            ".container" => Part::ContainerFile,
            ".volume" => Part::VolumeFile,
            ".socket" => Part::SocketUnit,
            ".tmp" => Part::PartialFile,
            ".service" => Part::Service,
            "-volume.service" => Part::VolumeService,
            "" => Part::PodmanObject,
            "-token" => Part::TokenSecret,
            _ => return None,
        };
        Some((rest[..end].parse().ok()?, part))
    }

    /// The session's socket on the host: `<runtime_dir>/octo/sessions/<id>.sock`, where
    /// `runtime_dir` is the `octo` user's `$XDG_RUNTIME_DIR` (systemd's `%t`).
    pub fn socket_path(&self, runtime_dir: &Path) -> PathBuf {
        runtime_dir.join(&self.socket_relative)
    }

    /// Whether `name` is a unit file being written (`octo-….tmp`), whatever its session.
    pub fn is_partial_file(name: &str) -> bool {
        name.starts_with(Self::PREFIX)
            && std::path::Path::new(name)
                .extension()
                .is_some_and(|e| e == "tmp")
    }
}

/// Whether two renderings of a unit differ in their `[Install]` section only (a stop or a
/// resume), so that a loaded unit is already right and only the boot-time link changes.
pub fn differ_only_in_install(old: &str, new: &str) -> bool {
    without_install(old) == without_install(new)
}

/// A unit's text up to its `[Install]` section (which the renderer writes last).
fn without_install(unit: &str) -> &str {
    unit.find("\n[Install]\n")
        .map_or(unit, |at| &unit[..at])
        .trim_end()
}

/// Which cgroup controllers the `octo` user's systemd manager may use (delegated to it).
/// Limits for other controllers cannot be enforced: Podman would fail the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Controllers {
    pub memory: bool,
    pub cpu: bool,
    pub pids: bool,
}

impl Controllers {
    pub const NONE: Self = Self {
        memory: false,
        cpu: false,
        pids: false,
    };
    pub const ALL: Self = Self {
        memory: true,
        cpu: true,
        pids: true,
    };

    /// Reads the contents of a `cgroup.controllers` file (space-separated controller names),
    /// e.g. that of `user@<uid>.service` for the `octo` user.
    pub fn from_cgroup_controllers(contents: &str) -> Self {
        let has = |name: &str| contents.split_whitespace().any(|c| c == name);
        Self {
            memory: has("memory"),
            cpu: has("cpu"),
            pids: has("pids"),
        }
    }
}

/// A requested limit that is left out because its controller is not delegated. Its
/// `Display` is the warning to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnenforcedLimit {
    /// The cgroup controller that is missing: `memory`, `cpu` or `pids`.
    pub controller: &'static str,
    /// The limit as requested, e.g. `memory 1073741824 bytes`.
    pub limit: String,
}

impl fmt::Display for UnenforcedLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} limit not enforced: the cgroup controller '{}' is not delegated to the octo \
             user's systemd manager",
            self.limit, self.controller
        )
    }
}

/// The requested limits whose controllers are not delegated (pure; the caller logs them).
pub fn unenforced_limits(limits: &Limits, controllers: Controllers) -> Vec<UnenforcedLimit> {
    let mut out = Vec::new();
    if let (Some(bytes), false) = (limits.memory_bytes, controllers.memory) {
        out.push(UnenforcedLimit {
            controller: "memory",
            limit: format!("memory {bytes} bytes"),
        });
    }
    if let (Some(centis), false) = (limits.cpu_centis, controllers.cpu) {
        out.push(UnenforcedLimit {
            controller: "cpu",
            limit: format!("cpu {} CPUs", cpus(centis)),
        });
    }
    if let (Some(pids), false) = (limits.pids, controllers.pids) {
        out.push(UnenforcedLimit {
            controller: "pids",
            limit: format!("pids {pids} tasks"),
        });
    }
    out
}

/// The container health check. The real image checks its three services with
/// [`DEFAULT_HEALTH_CMD`]; tests with a tiny image use a command of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// Run through `/bin/sh -c` in the container; exit 0 = healthy.
    pub cmd: String,
    /// Time between checks. It bounds how late a start notices readiness (a failed first
    /// check is retried after one interval), and every check costs a `podman healthcheck run`
    /// on the host, for every running session.
    pub interval: Duration,
    /// Grace time in which failures do not count towards `retries`.
    pub start_period: Duration,
    /// Consecutive failures after the grace time before the container is unhealthy.
    pub retries: u32,
    /// Time one check may take.
    pub timeout: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            cmd: DEFAULT_HEALTH_CMD.to_owned(),
            interval: Duration::from_secs(2),
            start_period: Duration::from_secs(60),
            retries: 3,
            timeout: Duration::from_secs(5),
        }
    }
}

/// octod's model gateway, as the sessions see it: one directory per session under
/// `sockets_dir` (`<sockets_dir>/<id>/`, holding octod's socket for that session, and nothing
/// else) mounted read-only at [`LLM_MOUNT`], and the models' names. No key: the socket names
/// the session, octod adds the provider's key on its side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmMount {
    /// The host directory of the sessions' directories (octod's, mode 0700, so that no other
    /// user of the host reaches a socket in it).
    pub sockets_dir: PathBuf,
    /// The models sessions may use, the default first.
    pub models: Vec<String>,
}

impl LlmMount {
    /// The session's directory on the host: what is mounted at [`LLM_MOUNT`].
    pub fn session_dir(&self, id: &SessionId) -> PathBuf {
        self.sockets_dir.join(id.as_str())
    }

    /// Creates the sessions' directory (0700: only octod, and Podman as the same user, get
    /// through it) and the session's (0755: `dev`, a subordinate uid in the container, must
    /// reach the socket in it). Idempotent.
    ///
    /// # Errors
    /// The path that could not be created or changed, and why.
    pub fn prepare_session_dir(
        &self,
        id: &SessionId,
    ) -> Result<PathBuf, (PathBuf, std::io::Error)> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = self.session_dir(id);
        std::fs::create_dir_all(&dir).map_err(|e| (dir.clone(), e))?;
        for (path, mode) in [(&self.sockets_dir, 0o700), (&dir, 0o755)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| (path.clone(), e))?;
        }
        Ok(dir)
    }
}

/// Everything about rendering that is not per session: host paths, health, timeouts,
/// delegated controllers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderConfig {
    /// The host directory with one subdirectory per template (packaged as
    /// `/usr/share/octo/container/templates`); `<templates_dir>/<template>` is mounted read-only.
    pub templates_dir: PathBuf,
    pub health: HealthConfig,
    /// `TimeoutStartSec=`: the start job's bound, covering container start and the first
    /// passing health check. Keep it above `health.start_period`; the engine's job wait must
    /// be longer than this.
    pub start_timeout: Duration,
    /// Controllers delegated to the `octo` user; limits of the others are left out.
    pub controllers: Controllers,
    /// octod's model gateway, if an LLM provider is configured.
    pub llm: Option<LlmMount>,
    /// The content site's suffix (`content.example.org[:port]`), if one is configured: the
    /// previews' URLs are told to the session ([`PREVIEW_URL_ENV`]).
    pub content_site: Option<String>,
    /// Capabilities added back after `DropCapability=ALL`. Empty for the session image, which
    /// runs as an unprivileged user and needs none.
    pub add_capabilities: Vec<String>,
    /// Who owns the token file ([`TOKEN_FILE`], mode 0400) inside the container: the image's
    /// user, `dev` (`useradd --uid 1000 --user-group` in `container/Containerfile`).
    pub token_owner: (u32, u32),
}

impl RenderConfig {
    /// The production defaults for a templates directory; no controller assumed delegated.
    pub fn new(templates_dir: impl Into<PathBuf>) -> Self {
        Self {
            templates_dir: templates_dir.into(),
            health: HealthConfig::default(),
            start_timeout: Duration::from_secs(120),
            controllers: Controllers::NONE,
            llm: None,
            content_site: None,
            add_capabilities: Vec::new(),
            token_owner: (1000, 1000),
        }
    }
}

/// One rendered file: its name in the Quadlet directory and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub file_name: String,
    pub contents: String,
}

/// The units of one session, plus the limits that could not be applied (to be logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedSession {
    pub volume: RenderedFile,
    pub container: RenderedFile,
    /// For the user's systemd directory (`~/.config/systemd/user/`), not Quadlet's.
    pub socket: RenderedFile,
    pub unenforced: Vec<UnenforcedLimit>,
}

/// Why a session could not be rendered. Nothing is rendered in that case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(
        "session {id}: invalid template name {template:?}: use letters, digits, '.', '_' and \
         '-', starting with a letter or digit"
    )]
    Template { id: SessionId, template: String },
    #[error("session {id}: the templates directory {path:?} is not an absolute UTF-8 path")]
    TemplatesDir { id: SessionId, path: PathBuf },
    #[error("session {id}: the model gateway's directory {path:?} is not a UTF-8 path")]
    LlmDir { id: SessionId, path: PathBuf },
    #[error("session {id}: a zero {what} limit is not a limit")]
    ZeroLimit { id: SessionId, what: &'static str },
    #[error("session {id}: {source}")]
    Unit {
        id: SessionId,
        #[source]
        source: quadlet::Error,
    },
}

/// Renders the session's `.volume`, `.container` and `.socket` files.
pub fn render(spec: &SessionSpec, config: &RenderConfig) -> Result<RenderedSession, RenderError> {
    let names = SessionNames::new(&spec.id);
    let unit_error = |source| RenderError::Unit {
        id: spec.id.clone(),
        source,
    };
    let volume = VolumeUnit {
        unit: UnitSection {
            description: Some(format!("Octo session {} home volume", spec.id)),
            ..UnitSection::default()
        },
        volume: VolumeSection {
            volume_name: Some(names.volume.clone()),
            labels: labels(spec),
        },
        install: None,
    }
    .render()
    .map_err(unit_error)?;
    let container = container_unit(spec, config, &names)?
        .render()
        .map_err(unit_error)?;
    let socket = socket_unit(spec, &names).render().map_err(unit_error)?;
    Ok(RenderedSession {
        volume: RenderedFile {
            file_name: names.volume_file,
            contents: volume,
        },
        container: RenderedFile {
            file_name: names.container_file,
            contents: container,
        },
        socket: RenderedFile {
            file_name: names.socket_unit,
            contents: socket,
        },
        unenforced: unenforced_limits(&spec.limits, config.controllers),
    })
}

/// The session's socket: the same text whatever the desired state (whether it is enabled is
/// a link, not the file).
fn socket_unit(spec: &SessionSpec, names: &SessionNames) -> SocketUnit {
    SocketUnit {
        unit: UnitSection {
            description: Some(format!("Octo session {}: its gateway's socket", spec.id)),
            ..UnitSection::default()
        },
        socket: SocketSection {
            listen_stream: ListenStream::RuntimeDir(names.socket_relative.clone()),
            socket_mode: Some(0o600),
            directory_mode: Some(0o700),
            // The socket file goes with the socket: octod cannot remove it itself (its
            // sandbox, ProtectSystem=strict, keeps /run read-only), and a stopped session's
            // path should not look like a listening one.
            remove_on_stop: true,
            service: Some(names.service.clone()),
        },
        install: Some(InstallSection {
            wanted_by: vec!["sockets.target".to_owned()],
        }),
    }
}

fn labels(spec: &SessionSpec) -> Vec<Label> {
    vec![
        Label::new(LABEL_SESSION, spec.id.as_str()),
        Label::new(LABEL_OWNER, spec.owner.as_str()),
    ]
}

fn container_unit(
    spec: &SessionSpec,
    config: &RenderConfig,
    names: &SessionNames,
) -> Result<ContainerUnit, RenderError> {
    let template_dir = template_dir(spec, config)?;
    let (uid, gid) = config.token_owner;
    // A file, not a variable: an environment variable is inherited by every process in the
    // session (the agent's shell included) and readable in /proc.
    let secrets = vec![Secret {
        name: names.token_secret.clone(),
        target: SecretTarget::File {
            path: TOKEN_FILE.to_owned(),
            mode: 0o400,
            uid,
            gid,
        },
    }];
    let mut volumes = vec![
        VolumeMount {
            source: VolumeSource::Unit(names.volume_file.clone()),
            target: HOME_MOUNT.to_owned(),
            read_only: false,
            chown: true,
        },
        VolumeMount {
            source: VolumeSource::HostPath(template_dir),
            target: TEMPLATE_MOUNT.to_owned(),
            read_only: true,
            chown: false,
        },
    ];
    let mut environment = vec![EnvVar {
        name: SESSION_ID_ENV.to_owned(),
        value: spec.id.to_string(),
    }];
    if let Some(llm) = &config.llm {
        let dir = llm.session_dir(&spec.id);
        let source = dir.to_str().ok_or_else(|| RenderError::LlmDir {
            id: spec.id.clone(),
            path: dir.clone(),
        })?;
        volumes.push(VolumeMount {
            source: VolumeSource::HostPath(source.to_owned()),
            target: LLM_MOUNT.to_owned(),
            read_only: true,
            chown: false,
        });
        environment.push(EnvVar {
            name: LLM_MODELS_ENV.to_owned(),
            value: llm.models.join(","),
        });
    }
    if let Some(site) = &config.content_site {
        // Not a secret, and the same for every process in the session: the agent reads it.
        environment.push(EnvVar {
            name: PREVIEW_URL_ENV.to_owned(),
            value: format!("https://p{{port}}-{}.{site}/", spec.id),
        });
    }
    let (pids_limit, podman_args) = limits(spec, config.controllers)?;
    let health = &config.health;
    Ok(ContainerUnit {
        unit: UnitSection {
            description: Some(format!("Octo session {} of {}", spec.id, spec.owner)),
            // The socket first: Podman passes the listening socket in only if it is there
            // when the container starts; and stopping the socket stops the session.
            requires: vec![names.socket_unit.clone()],
            after: vec![names.socket_unit.clone()],
        },
        container: ContainerSection {
            container_name: Some(names.container.clone()),
            pull: Some(PullPolicy::Never),
            user_ns: Some(UserNs::Auto),
            network: Some(Network::Pasta(
                PASTA.iter().map(|&o| o.to_owned()).collect(),
            )),
            volumes,
            secrets,
            environment,
            labels: labels(spec),
            health: Some(HealthCheck {
                cmd: health.cmd.clone(),
                interval: Some(health.interval),
                start_period: Some(health.start_period),
                retries: Some(health.retries),
                timeout: Some(health.timeout),
                notify_healthy: true,
            }),
            drop_capabilities: vec!["ALL".to_owned()],
            add_capabilities: config.add_capabilities.clone(),
            no_new_privileges: true,
            pids_limit,
            podman_args,
            ..ContainerSection::new(spec.image.clone())
        },
        service: ServiceSection {
            timeout_start: Some(config.start_timeout),
            // Crashes restart; note that a start timeout is a failure too, so a session that
            // never becomes healthy is retried after each timeout until the engine stops it.
            restart: Some(Restart::OnFailure),
        },
        install: match spec.desired {
            DesiredState::Running => Some(InstallSection {
                wanted_by: vec!["default.target".to_owned()],
            }),
            DesiredState::Idle | DesiredState::Stopped => None,
        },
    })
}

/// `<templates_dir>/<template>`, refusing template names that could leave the directory.
fn template_dir(spec: &SessionSpec, config: &RenderConfig) -> Result<String, RenderError> {
    let template = &spec.template;
    let valid = template.starts_with(|c: char| c.is_ascii_alphanumeric())
        && template
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(RenderError::Template {
            id: spec.id.clone(),
            template: template.clone(),
        });
    }
    let dir = config.templates_dir.join(template);
    match dir.to_str() {
        Some(path) if dir.is_absolute() => Ok(path.to_owned()),
        _ => Err(RenderError::TemplatesDir {
            id: spec.id.clone(),
            path: config.templates_dir.clone(),
        }),
    }
}

/// `PidsLimit=` and the `PodmanArgs=` for the limits whose controllers are delegated.
///
/// Memory and CPU go through `PodmanArgs=--memory=`/`--cpus=`: Quadlet's own `Memory=` key came
/// after Podman 5.4 (the 5.4.2 generator refuses it as an unsupported key and drops the whole
/// unit). Where `pids` is not delegated no `PidsLimit=` is written: even `-1` makes crun
/// write `pids.max` and fail the start (seen in the test host). Podman's default limit then
/// comes from `containers.conf`, which a host without the pids controller must set to 0.
fn limits(
    spec: &SessionSpec,
    controllers: Controllers,
) -> Result<(Option<PidsLimit>, Vec<String>), RenderError> {
    let zero = |what| RenderError::ZeroLimit {
        id: spec.id.clone(),
        what,
    };
    let limits = &spec.limits;
    let mut args = Vec::new();
    if let Some(bytes) = limits.memory_bytes {
        if bytes == 0 {
            return Err(zero("memory"));
        }
        if controllers.memory {
            args.push(format!("--memory={bytes}"));
        }
    }
    if let Some(centis) = limits.cpu_centis {
        if centis == 0 {
            return Err(zero("cpu"));
        }
        if controllers.cpu {
            args.push(format!("--cpus={}", cpus(centis)));
        }
    }
    let pids = match (limits.pids, controllers.pids) {
        (Some(0), _) => return Err(zero("pids")),
        (Some(n), true) => Some(PidsLimit::Max(n)),
        (None, true) | (_, false) => None,
    };
    Ok((pids, args))
}

/// Hundredths of a CPU as Podman's `--cpus` decimal: 150 → `1.5`, 200 → `2`, 5 → `0.05`.
fn cpus(centis: u32) -> String {
    let (whole, frac) = (centis / 100, centis % 100);
    match frac {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn the_session_image_declares_the_runtime_the_units_are_written_for() {
        let containerfile = include_str!("../../container/Containerfile");
        let label = format!("LABEL {LABEL_RUNTIME}={SESSION_RUNTIME}\n");
        assert!(
            containerfile.contains(&label),
            "container/Containerfile must carry `{}`",
            label.trim_end()
        );
    }

    fn spec() -> SessionSpec {
        SessionSpec {
            id: "ab12".parse().expect("id"),
            owner: "alice".into(),
            template: "coding-copilot".into(),
            image: "localhost/octo-session:latest".into(),
            limits: Limits::default(),
            desired: DesiredState::Running,
        }
    }

    fn config() -> RenderConfig {
        RenderConfig::new("/usr/share/octo/templates")
    }

    /// Renders and compares both files and the warnings with one expected text.
    #[track_caller]
    fn check(spec: &SessionSpec, config: &RenderConfig, expected: &str) {
        let r = render(spec, config).expect("renders");
        let mut actual = format!(
            "--- {}\n{}--- {}\n{}--- {}\n{}",
            r.volume.file_name,
            r.volume.contents,
            r.container.file_name,
            r.container.contents,
            r.socket.file_name,
            r.socket.contents
        );
        for warning in &r.unenforced {
            writeln!(actual, "--- warning: {warning}").expect("writes to a String");
        }
        let expected = expected.strip_prefix('\n').unwrap_or(expected);
        assert!(
            actual == expected,
            "rendered session differs\n=== expected\n{expected}=== actual\n{actual}==="
        );
    }

    #[track_caller]
    fn check_container(spec: &SessionSpec, config: &RenderConfig, expected: &str) {
        let r = render(spec, config).expect("renders");
        let expected = expected.strip_prefix('\n').unwrap_or(expected);
        assert!(
            r.container.contents == expected,
            "container differs\n=== expected\n{expected}=== actual\n{}===",
            r.container.contents
        );
    }

    #[test]
    fn running_without_limits() {
        check(
            &spec(),
            &config(),
            r"
--- octo-ab12.volume
[Unit]
Description=Octo session ab12 home volume

[Volume]
VolumeName=octo-ab12
Label=octo.session=ab12
Label=octo.owner=alice
--- octo-ab12.container
[Unit]
Description=Octo session ab12 of alice
Requires=octo-ab12.socket
After=octo-ab12.socket

[Container]
Image=localhost/octo-session:latest
ContainerName=octo-ab12
Pull=never
UserNS=auto
Network=pasta:--no-map-gw,-t,none,-u,none,-T,none,-U,none
Volume=octo-ab12.volume:/home/dev:U
Volume=/usr/share/octo/templates/coding-copilot:/etc/octo/template:ro
Secret=octo-ab12-token,type=mount,target=/run/secrets/octo-token,mode=0400,uid=1000,gid=1000
Environment=OCTO_SESSION_ID=ab12
Label=octo.session=ab12
Label=octo.owner=alice
HealthCmd=/usr/local/bin/octo-healthcheck
HealthInterval=2s
HealthStartPeriod=60s
HealthRetries=3
HealthTimeout=5s
Notify=healthy
DropCapability=ALL
NoNewPrivileges=true

[Service]
TimeoutStartSec=120s
Restart=on-failure

[Install]
WantedBy=default.target
--- octo-ab12.socket
[Unit]
Description=Octo session ab12: its gateway's socket

[Socket]
ListenStream=%t/octo/sessions/ab12.sock
SocketMode=0600
DirectoryMode=0700
RemoveOnStop=yes
Service=octo-ab12.service

[Install]
WantedBy=sockets.target
",
        );
    }

    #[test]
    fn idle_and_stopped_have_no_install_section() {
        let running = render(&spec(), &config()).expect("renders");
        for desired in [DesiredState::Idle, DesiredState::Stopped] {
            let other = SessionSpec { desired, ..spec() };
            let r = render(&other, &config()).expect("renders");
            assert_eq!(r.volume, running.volume);
            // The socket's file is the same; whether it is enabled is a link.
            assert_eq!(r.socket, running.socket);
            let expected = running
                .container
                .contents
                .replace("\n[Install]\nWantedBy=default.target\n", "");
            assert_ne!(expected, running.container.contents);
            check_container(&other, &config(), &expected);
        }
    }

    #[test]
    fn socket_path_under_the_runtime_dir() {
        let names = SessionNames::new(&"ab12".parse().expect("id"));
        assert_eq!(
            names.socket_path(Path::new("/run/user/998")),
            Path::new("/run/user/998/octo/sessions/ab12.sock")
        );
    }

    fn limited() -> SessionSpec {
        SessionSpec {
            limits: Limits {
                memory_bytes: Some(2 << 30),
                cpu_centis: Some(150),
                pids: Some(1000),
            },
            ..spec()
        }
    }

    #[test]
    fn limits_where_delegated() {
        let config = RenderConfig {
            controllers: Controllers::ALL,
            ..config()
        };
        let r = render(&limited(), &config).expect("renders");
        assert_eq!(r.unenforced, []);
        let unlimited = render(&spec(), &config).expect("renders");
        let expected = unlimited.container.contents.replace(
            "NoNewPrivileges=true\n",
            "NoNewPrivileges=true\nPidsLimit=1000\nPodmanArgs=--memory=2147483648 --cpus=1.5\n",
        );
        assert_ne!(expected, unlimited.container.contents);
        check_container(&limited(), &config, &expected);
    }

    #[test]
    fn limits_partly_delegated_warn() {
        let config = RenderConfig {
            controllers: Controllers::from_cgroup_controllers("cpuset cpu io\n"),
            ..config()
        };
        let r = render(&limited(), &config).expect("renders");
        assert!(
            r.container
                .contents
                .contains("\nNoNewPrivileges=true\nPodmanArgs=--cpus=1.5\n")
        );
        assert!(!r.container.contents.contains("--memory"));
        let warnings: Vec<String> = r.unenforced.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "memory 2147483648 bytes limit not enforced: the cgroup controller 'memory' is \
                 not delegated to the octo user's systemd manager",
                "pids 1000 tasks limit not enforced: the cgroup controller 'pids' is not \
                 delegated to the octo user's systemd manager",
            ]
        );
    }

    #[test]
    fn test_image_config() {
        let config = RenderConfig {
            health: HealthConfig {
                cmd: "wget -q -O /dev/null http://127.0.0.1:41820/ && test -f /tmp/ready".into(),
                interval: Duration::from_millis(500),
                start_period: Duration::from_secs(5),
                retries: 2,
                timeout: Duration::from_secs(2),
            },
            start_timeout: Duration::from_secs(30),
            llm: Some(LlmMount {
                sockets_dir: "/var/lib/octod/llm".into(),
                models: vec!["big".into(), "small".into()],
            }),
            add_capabilities: vec!["SETUID".into(), "SETGID".into()],
            content_site: Some("content.example.org:8443".into()),
            ..config()
        };
        let r = render(&spec(), &config).expect("renders");
        let c = &r.container.contents;
        for line in [
            // The model gateway: the session's own directory of sockets and the model names;
            // no provider secret.
            "Volume=/var/lib/octod/llm/ab12:/run/octo-llm:ro\n",
            "Secret=octo-ab12-token,type=mount,target=/run/secrets/octo-token,mode=0400,uid=1000,gid=1000\n\
             Environment=OCTO_SESSION_ID=ab12\nEnvironment=OCTO_LLM_MODELS=big,small\n\
             Environment=OCTO_PREVIEW_URL_TEMPLATE=https://p{port}-ab12.content.example.org:8443/\n",
            "HealthCmd=wget -q -O /dev/null http://127.0.0.1:41820/ && test -f /tmp/ready\n\
             HealthInterval=500ms\nHealthStartPeriod=5s\nHealthRetries=2\nHealthTimeout=2s\n",
            "DropCapability=ALL\nAddCapability=SETUID SETGID\n",
            "TimeoutStartSec=30s\n",
        ] {
            assert!(c.contains(line), "{line} missing in\n{c}");
        }
    }

    #[test]
    fn escaping_reaches_the_units() {
        let odd = SessionSpec {
            owner: "Zoë 100% O'Neil".into(),
            ..spec()
        };
        let r = render(&odd, &config()).expect("renders");
        assert!(
            r.volume
                .contents
                .contains("\nLabel=\"octo.owner=Zoë 100%% O'Neil\"\n")
        );
        assert!(
            r.container
                .contents
                .contains("\nDescription=Octo session ab12 of Zoë 100%% O'Neil\n")
        );
        let parsed = quadlet::UnitFile::parse(&r.container.contents).expect("parses");
        assert_eq!(
            parsed.values("Container", "Label").expect("decodes"),
            ["octo.session=ab12", "octo.owner=Zoë 100% O'Neil"]
        );
    }

    #[test]
    fn validation_failures() {
        let fails = |spec: SessionSpec, config: RenderConfig| {
            render(&spec, &config).expect_err("refused").to_string()
        };
        for template in ["../etc", "", "a/b", ".hidden", "a b"] {
            let e = fails(
                SessionSpec {
                    template: template.into(),
                    ..spec()
                },
                config(),
            );
            assert!(e.contains("invalid template name"), "{template}: {e}");
        }
        assert_eq!(
            fails(spec(), RenderConfig::new("templates")),
            "session ab12: the templates directory \"templates\" is not an absolute UTF-8 path"
        );
        assert_eq!(
            fails(
                SessionSpec {
                    owner: "eve\nLabel=octo.owner=admin".into(),
                    ..spec()
                },
                config()
            ),
            "session ab12: invalid Label= value \"octo.owner=eve\\nLabel=octo.owner=admin\": it \
             contains a control character (newlines included)"
        );
        assert_eq!(
            fails(
                SessionSpec {
                    image: "localhost/x y".into(),
                    ..spec()
                },
                config()
            ),
            "session ab12: invalid Image= value \"localhost/x y\": it contains whitespace"
        );
        let mut zero_memory = spec();
        zero_memory.limits.memory_bytes = Some(0);
        assert_eq!(
            fails(zero_memory, config()),
            "session ab12: a zero memory limit is not a limit"
        );
        let bad_health = RenderConfig {
            health: HealthConfig {
                cmd: "check\n".into(),
                ..HealthConfig::default()
            },
            ..config()
        };
        assert!(fails(spec(), bad_health).contains("invalid HealthCmd= value"));
    }

    #[test]
    fn controllers_from_cgroup_file() {
        assert_eq!(
            Controllers::from_cgroup_controllers("cpuset cpu io memory pids\n"),
            Controllers::ALL
        );
        assert_eq!(Controllers::from_cgroup_controllers(""), Controllers::NONE);
        assert_eq!(
            Controllers::from_cgroup_controllers("cpuset io memory"),
            Controllers {
                memory: true,
                cpu: false,
                pids: false
            }
        );
    }

    #[test]
    fn cpu_decimal() {
        for (centis, text) in [
            (150, "1.5"),
            (200, "2"),
            (5, "0.05"),
            (125, "1.25"),
            (1, "0.01"),
        ] {
            assert_eq!(cpus(centis), text);
        }
    }

    #[test]
    fn names() {
        let n = SessionNames::new(&"ab12".parse().expect("id"));
        assert_eq!(
            [
                n.container_file.as_str(),
                &n.volume_file,
                &n.socket_unit,
                &n.socket_relative,
                &n.service,
                &n.volume_service,
                &n.container,
                &n.volume,
                &n.token_secret
            ],
            [
                "octo-ab12.container",
                "octo-ab12.volume",
                "octo-ab12.socket",
                "octo/sessions/ab12.sock",
                "octo-ab12.service",
                "octo-ab12-volume.service",
                "octo-ab12",
                "octo-ab12",
                "octo-ab12-token"
            ]
        );
    }

    #[test]
    fn names_parse_back_to_their_session() {
        let ab12: SessionId = "ab12".parse().expect("id");
        let n = SessionNames::new(&ab12);
        for (name, part) in [
            (&n.container_file, Part::ContainerFile),
            (&n.volume_file, Part::VolumeFile),
            (&n.socket_unit, Part::SocketUnit),
            (&n.service, Part::Service),
            (&n.volume_service, Part::VolumeService),
            (&n.container, Part::PodmanObject),
            (&n.volume, Part::PodmanObject),
            (&n.token_secret, Part::TokenSecret),
        ] {
            assert_eq!(
                SessionNames::parse(name),
                Some((ab12.clone(), part)),
                "{name}"
            );
        }
    }

    #[test]
    fn session_ids_from_artifact_names() {
        let check = |name: &str, expected: Option<(&str, Part)>| {
            let expected = expected.map(|(id, part)| (id.parse().expect("id"), part));
            assert_eq!(SessionNames::parse(name), expected, "{name}");
        };
        check("octo-ab1.container", Some(("ab1", Part::ContainerFile)));
        check("octo-ab1.volume", Some(("ab1", Part::VolumeFile)));
        check("octo-ab1.tmp", Some(("ab1", Part::PartialFile)));
        check("octo-ab1-token", Some(("ab1", Part::TokenSecret)));
        check("octo-ab1", Some(("ab1", Part::PodmanObject)));
        check(
            "octo-ab1-volume.service",
            Some(("ab1", Part::VolumeService)),
        );
        check("octo-ab1.service", Some(("ab1", Part::Service)));
        check("other-ab1.container", None);
        check("octo-AB.container", None);
        check("octo-smoke.service", Some(("smoke", Part::Service)));
        check("octo-image-build-1_2-17.service", None);
        check("octo-ab1.socket", Some(("ab1", Part::SocketUnit)));
        check("octo-ab1.sock", None);
        check("octo-.service", None);
        check("octo-1ab.service", None);
    }

    #[test]
    fn partial_files_are_recognized_without_a_session() {
        for (name, expected) in [
            ("octo-ab1.tmp", true),
            ("octo-AB.tmp", true),
            ("octo-ab1.container", false),
            ("other-ab1.tmp", false),
        ] {
            assert_eq!(SessionNames::is_partial_file(name), expected, "{name}");
        }
    }

    #[test]
    fn install_section_is_cut_off() {
        let running =
            "[Unit]\nDescription=x\n\n[Container]\nImage=i\n\n[Install]\nWantedBy=default.target\n";
        let stopped = "[Unit]\nDescription=x\n\n[Container]\nImage=i\n";
        assert_eq!(without_install(running), without_install(stopped));
        assert_eq!(without_install(stopped), stopped.trim_end());
        assert_ne!(without_install(running), without_install("[Unit]\n"));
        assert!(differ_only_in_install(running, stopped));
        assert!(differ_only_in_install(stopped, running));
        assert!(!differ_only_in_install(running, "[Unit]\n"));
        let other_image = stopped.replace("Image=i", "Image=j");
        assert!(!differ_only_in_install(running, &other_image));
    }
}
