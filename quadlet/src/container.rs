//! `.container` units: the `[Container]` section with the keys we use, each documented from
//! podman-systemd.unit(5) (Podman 5.x). Quadlet turns the section into one `podman run`
//! command line (`ExecStart=`) of the generated `<name>.service`.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::{Error, Problem};
use crate::systemd::{InstallSection, ServiceSection, UnitSection};
use crate::value;
use crate::writer::{self, Section};

/// A whole `.container` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUnit {
    pub unit: UnitSection,
    pub container: ContainerSection,
    pub service: ServiceSection,
    /// `None` leaves the section out: the service then starts only when asked to.
    pub install: Option<InstallSection>,
}

impl ContainerUnit {
    /// The unit text, or the first value that cannot be written safely.
    pub fn render(&self) -> Result<String, Error> {
        let mut sections = vec![self.unit.write()?, self.container.write()?];
        sections.push(self.service.write()?);
        if let Some(install) = &self.install {
            sections.push(install.write()?);
        }
        Ok(writer::render(&sections))
    }
}

/// `[Container]`. Keys are written in the order of the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSection {
    /// `Image=`: the image to run, the only required key. Use a fully qualified name
    /// (`localhost/octo-session:latest`): the generator warns about short names.
    pub image: String,
    /// `ContainerName=`: the Podman container's name; Quadlet's default is `systemd-%N`.
    pub container_name: Option<String>,
    /// `Pull=`: the image pull policy (`--pull`).
    pub pull: Option<PullPolicy>,
    /// `UserNS=`: the user namespace mode (`--userns`).
    pub user_ns: Option<UserNs>,
    /// `Network=`: the network mode (`--network`); Podman's default when unset.
    pub network: Option<Network>,
    /// `PublishPort=`: `ip:hostPort:containerPort` (`--publish`), one line each.
    pub publish_ports: Vec<PublishPort>,
    /// `Volume=`: `SOURCE:CONTAINER-DIR[:OPTIONS]` (`--volume`), one line each. A source
    /// ending in `.volume` names a Quadlet `.volume` file: Quadlet uses its volume and adds
    /// `Requires=`/`After=` on its service.
    pub volumes: Vec<VolumeMount>,
    /// `Secret=`: a Podman secret exposed to the container (`--secret`), one line each.
    pub secrets: Vec<Secret>,
    /// `Environment=`: variables set in the container (`--env`), systemd `Environment=` format.
    pub environment: Vec<EnvVar>,
    /// `Label=`: OCI labels on the container (`--label`), `key=value` items.
    pub labels: Vec<Label>,
    /// `HealthCmd=` and friends, and `Notify=healthy`.
    pub health: Option<HealthCheck>,
    /// `DropCapability=`: capabilities dropped from Podman's default set; `ALL` drops all.
    pub drop_capabilities: Vec<String>,
    /// `AddCapability=`: capabilities added back after the drops.
    pub add_capabilities: Vec<String>,
    /// `NoNewPrivileges=`: when true, processes cannot gain privileges through setuid binaries
    /// or file capabilities (`--security-opt=no-new-privileges`). Default false; written only
    /// when true.
    pub no_new_privileges: bool,
    /// `PidsLimit=`: the container's pids limit (`--pids-limit`). Needs the `pids` cgroup
    /// controller unless it is [`PidsLimit::Unlimited`].
    pub pids_limit: Option<PidsLimit>,
    /// `PodmanArgs=`: extra arguments passed to the end of `podman run`, right before the
    /// image, for features Quadlet has no key for. Each element is one argument.
    pub podman_args: Vec<String>,
}

impl ContainerSection {
    /// A section with only `Image=` set.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            container_name: None,
            pull: None,
            user_ns: None,
            network: None,
            publish_ports: Vec::new(),
            volumes: Vec::new(),
            secrets: Vec::new(),
            environment: Vec::new(),
            labels: Vec::new(),
            health: None,
            drop_capabilities: Vec::new(),
            add_capabilities: Vec::new(),
            no_new_privileges: false,
            pids_limit: None,
            podman_args: Vec::new(),
        }
    }

    fn write(&self) -> Result<Section, Error> {
        let mut s = Section::required("Container");
        value::check_no_whitespace("Image", &self.image)?;
        s.raw("Image", &self.image)?;
        if let Some(name) = &self.container_name {
            value::check_name("ContainerName", name)?;
            s.raw("ContainerName", name)?;
        }
        if let Some(pull) = self.pull {
            s.raw("Pull", pull.as_str())?;
        }
        if let Some(user_ns) = self.user_ns {
            s.raw("UserNS", user_ns.as_str())?;
        }
        if let Some(network) = &self.network {
            s.raw("Network", &network.encode()?)?;
        }
        for port in &self.publish_ports {
            s.raw("PublishPort", &port.encode()?)?;
        }
        for volume in &self.volumes {
            s.raw("Volume", &volume.encode()?)?;
        }
        for secret in &self.secrets {
            s.words("Secret", &[secret.encode()?])?;
        }
        for var in &self.environment {
            value::check_env_name("Environment", &var.name)?;
            s.words("Environment", &[format!("{}={}", var.name, var.value)])?;
        }
        for label in &self.labels {
            value::check_label_key("Label", &label.key)?;
            s.words("Label", &[format!("{}={}", label.key, label.value)])?;
        }
        if let Some(health) = &self.health {
            health.write(&mut s)?;
        }
        for cap in &self.drop_capabilities {
            value::check_capability("DropCapability", cap)?;
        }
        s.words("DropCapability", &self.drop_capabilities)?;
        for cap in &self.add_capabilities {
            value::check_capability("AddCapability", cap)?;
        }
        s.words("AddCapability", &self.add_capabilities)?;
        if self.no_new_privileges {
            s.bool("NoNewPrivileges", true)?;
        }
        if let Some(limit) = self.pids_limit {
            s.raw("PidsLimit", &limit.encode())?;
        }
        s.words("PodmanArgs", &self.podman_args)?;
        Ok(s)
    }
}

/// `Pull=` values (podman-run(1) `--pull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// `never`: use the local image only; a missing image fails the start at once.
    Never,
    /// `missing`: pull only when the image is not present (Podman's default).
    Missing,
}

impl PullPolicy {
    fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::Missing => "missing",
        }
    }
}

/// `UserNS=` values (podman-run(1) `--userns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserNs {
    /// `auto`: a user namespace of its own, with a UID/GID range allocated from the running
    /// user's subordinate ranges that no other `auto` container uses, sized from the image.
    Auto,
}

impl UserNs {
    fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
        }
    }
}

/// `Network=` values (podman-run(1) `--network`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// `pasta:OPTION,OPTION,…`: rootless user-mode networking through pasta(1); each option
    /// is one argument of pasta's command line (passt(1)). Podman adds its own defaults only
    /// for options not given here.
    Pasta(Vec<String>),
}

impl Network {
    fn encode(&self) -> Result<String, Error> {
        match self {
            Self::Pasta(options) if options.is_empty() => Ok("pasta".to_owned()),
            Self::Pasta(options) => {
                for option in options {
                    value::check_no_whitespace("Network", option)?;
                    if option.contains(',') {
                        return Err(Error {
                            key: "Network",
                            value: option.clone(),
                            problem: Problem::Comma,
                        });
                    }
                }
                Ok(format!("pasta:{}", options.join(",")))
            }
        }
    }
}

/// One `PublishPort=ip:hostPort:containerPort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishPort {
    /// The host address to bind; `127.0.0.1` keeps the port off the network.
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
}

impl PublishPort {
    fn encode(&self) -> Result<String, Error> {
        for port in [self.host_port, self.container_port] {
            if port == 0 {
                return Err(Error {
                    key: "PublishPort",
                    value: format!("{}:{}", self.host_port, self.container_port),
                    problem: Problem::ZeroPort,
                });
            }
        }
        Ok(match self.host_ip {
            IpAddr::V4(ip) => format!("{ip}:{}:{}", self.host_port, self.container_port),
            IpAddr::V6(ip) => format!("[{ip}]:{}:{}", self.host_port, self.container_port),
        })
    }
}

/// One `Volume=SOURCE:CONTAINER-DIR[:ro]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub source: VolumeSource,
    /// Absolute path inside the container.
    pub target: String,
    /// Adds the `ro` option: mounted read-only.
    pub read_only: bool,
    /// Adds the `U` option: Podman chowns the source to the container's user (through its
    /// user namespace) when the container starts. With `UserNS=auto` a container may get a
    /// different id range at every start; without `U` its old files would belong to nobody.
    pub chown: bool,
}

/// Where a [`VolumeMount`] comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A Quadlet `.volume` file name, e.g. `octo-ab12.volume`.
    Unit(String),
    /// An absolute host path (bind mount). It is not relabelled for SELinux: relabelling
    /// (`:z`) a shared host directory such as `/usr/share/...` would be wrong, and container
    /// processes may read `usr_t` files anyway.
    HostPath(String),
}

impl VolumeMount {
    fn encode(&self) -> Result<String, Error> {
        let source = match &self.source {
            VolumeSource::Unit(name) => {
                value::check_name("Volume", name)?;
                if !name.ends_with(".volume") {
                    return Err(Error {
                        key: "Volume",
                        value: name.clone(),
                        problem: Problem::NotVolumeUnit,
                    });
                }
                name
            }
            VolumeSource::HostPath(path) => {
                value::check_volume_path("Volume", path)?;
                path
            }
        };
        value::check_volume_path("Volume", &self.target)?;
        let options: Vec<&str> = [(self.read_only, "ro"), (self.chown, "U")]
            .into_iter()
            .filter_map(|(on, option)| on.then_some(option))
            .collect();
        if options.is_empty() {
            Ok(format!("{source}:{}", self.target))
        } else {
            Ok(format!("{source}:{}:{}", self.target, options.join(",")))
        }
    }
}

/// One `Secret=`: the Podman secret `name` (created beforehand with `podman secret create`)
/// exposed to the container. Its value never appears in the unit, the generated service or
/// `podman inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    pub target: SecretTarget,
}

/// How a [`Secret`] reaches the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretTarget {
    /// `type=env,target=VAR`: the environment variable `VAR` (inherited by every process of
    /// the container and readable in `/proc/<pid>/environ` of each).
    Env(String),
    /// `type=mount,target=PATH,mode=…,uid=…,gid=…`: a file at the absolute `PATH`, owned by
    /// `uid:gid` inside the container's user namespace, with `mode`.
    File {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

impl Secret {
    fn encode(&self) -> Result<String, Error> {
        value::check_name("Secret", &self.name)?;
        match &self.target {
            SecretTarget::Env(var) => {
                value::check_env_name("Secret", var)?;
                Ok(format!("{},type=env,target={var}", self.name))
            }
            SecretTarget::File {
                path,
                mode,
                uid,
                gid,
            } => {
                value::check_volume_path("Secret", path)?;
                if path.contains(',') {
                    return Err(Error {
                        key: "Secret",
                        value: path.clone(),
                        problem: Problem::Comma,
                    });
                }
                Ok(format!(
                    "{},type=mount,target={path},mode={mode:04o},uid={uid},gid={gid}",
                    self.name
                ))
            }
        }
    }
}

/// One `Environment=NAME=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

/// One `Label=key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub key: String,
    pub value: String,
}

impl Label {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// The container's health check (podman-run(1) `--health-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// `HealthCmd=`: the command, run inside the container through `/bin/sh -c` (a string
    /// command is Podman's `CMD-SHELL` form); exit status 0 means healthy.
    pub cmd: String,
    /// `HealthInterval=`: time between checks. Each check is a `podman healthcheck run` from a
    /// systemd timer, so this is also the delay before a failed first check is retried.
    pub interval: Option<Duration>,
    /// `HealthStartPeriod=`: the bootstrap time during which failing checks do not count
    /// towards `HealthRetries=`.
    pub start_period: Option<Duration>,
    /// `HealthRetries=`: consecutive failures (after the start period) before the container
    /// is marked unhealthy.
    pub retries: Option<u32>,
    /// `HealthTimeout=`: how long one check may run before it counts as failed.
    pub timeout: Option<Duration>,
    /// `Notify=healthy`: systemd is told the service is started only once the container is
    /// healthy, so the start job (and `systemctl start`) ends when the session is usable.
    /// Without it the service counts as started as soon as the container runs.
    pub notify_healthy: bool,
}

impl HealthCheck {
    fn write(&self, s: &mut Section) -> Result<(), Error> {
        s.raw("HealthCmd", &self.cmd)?;
        if let Some(interval) = self.interval {
            s.raw(
                "HealthInterval",
                &value::duration("HealthInterval", interval)?,
            )?;
        }
        if let Some(period) = self.start_period {
            s.raw(
                "HealthStartPeriod",
                &value::duration("HealthStartPeriod", period)?,
            )?;
        }
        if let Some(retries) = self.retries {
            s.raw("HealthRetries", &retries.to_string())?;
        }
        if let Some(timeout) = self.timeout {
            s.raw("HealthTimeout", &value::duration("HealthTimeout", timeout)?)?;
        }
        if self.notify_healthy {
            s.raw("Notify", "healthy")?;
        }
        Ok(())
    }
}

/// `PidsLimit=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidsLimit {
    /// `-1`: no limit. Also keeps Podman from applying its default limit (2048), which fails
    /// the start where the `pids` controller is not delegated.
    Unlimited,
    /// At most this many tasks.
    Max(u32),
}

impl PidsLimit {
    fn encode(self) -> String {
        match self {
            Self::Unlimited => "-1".to_owned(),
            Self::Max(n) => n.to_string(),
        }
    }
}
