//! The test host: a debootstrapped Debian 13 root booted with systemd-nspawn, driven with
//! nsenter (`../shared/testhost.md`). It gives every developer and CI a real systemd 257 and
//! Podman 5 with a lingering rootless `octo` user.
//!
//! Layout under `target/testhost/`:
//! - `cache/root-<key>/`: the pristine debootstrapped root, keyed by suite and package list;
//!   never booted, only copied.
//! - `<instance>/root/`: the working copy that boots; thrown away by `down`. The instance is
//!   `host` unless `OCTO_TESTHOST` names another.
//! - `<instance>/nspawn.pid`, `<instance>/console.log`: run state.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::util::{self, step};

/// The Debian suite of the test host.
const SUITE: &str = "trixie";

/// Packages of the test host. Changing this list changes the cache key.
const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "dbus-user-session",
    "libpam-systemd",
    "podman",
    "crun",
    "uidmap",
    "passt",
    "iproute2",
    "ca-certificates",
    "procps",
    "busybox-static",
    "curl",
    "less",
];

/// Packages of a bare host ([`Flavor::Bare`]): systemd and the tools the checks use, but no
/// Podman, no uidmap, no user bus: the `octo` package's dependencies must bring them.
const BARE_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "ca-certificates",
    "procps",
    "curl",
    "less",
];

/// Packages installed with apt after debootstrap, which cannot resolve their virtual
/// dependencies: node and npm for the SDK client of `octo-e2e api-sdk`. Part of the cache key.
const APT_PACKAGES: &[&str] = &["nodejs", "npm"];

/// Where the workspace and the target directory appear inside the host.
pub const GUEST_SRC: &str = "/opt/octo/src";
pub const GUEST_TARGET: &str = "/opt/octo/target";
/// The outer machine's extra CAs (a site's TLS-intercepting proxy) as one PEM bundle inside
/// the host, for clients that reach the network from there (`NODE_EXTRA_CA_CERTS` for npm).
pub const GUEST_EXTRA_CAS: &str = "/etc/octo-testhost/extra-cas.pem";

/// The rootless user that owns the sessions, as on a real install.
pub const OCTO_USER: &str = "octo";
/// Subordinate ids for `UserNS=auto`: 1024 per container, so this holds ~10,000 sessions.
const SUBID_RANGE: &str = "100000:10485760";

const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(60);

/// What a test host is provisioned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// The development host: Podman preinstalled, the `octo` user with linger and a large
    /// subordinate id range, as a real install would have them.
    Dev,
    /// A bare Debian 13 with systemd and nothing of Octo's: no `octo` user, no linger, no
    /// subordinate ids, no Podman. Installing the `octo` package must set all of it up.
    Bare,
}

/// Paths of the test host under the target directory.
#[derive(Debug, Clone)]
pub struct Paths {
    base: PathBuf,
    instance: String,
    flavor: Flavor,
}

impl Paths {
    /// The test host named by `OCTO_TESTHOST` (default `host`): several engineers can each
    /// run their own on one machine. They share the network namespace, so their tests must
    /// use distinct ports.
    pub fn new() -> Self {
        let instance = std::env::var("OCTO_TESTHOST")
            .ok()
            .filter(|name| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            .unwrap_or_else(|| "host".to_owned());
        Self::named(&instance)
    }

    /// A named instance, whatever `OCTO_TESTHOST` says.
    pub fn named(instance: &str) -> Self {
        Self {
            base: util::target_dir().join("testhost"),
            instance: instance.to_owned(),
            flavor: Flavor::Dev,
        }
    }

    /// The same instance, provisioned as `flavor` when it is brought up (once up, every
    /// other operation is the same for both).
    pub fn with_flavor(mut self, flavor: Flavor) -> Self {
        self.flavor = flavor;
        self
    }

    /// Debootstrap's packages and those apt installs afterwards, for this flavor.
    fn packages(&self) -> (&'static [&'static str], &'static [&'static str]) {
        match self.flavor {
            Flavor::Dev => (PACKAGES, APT_PACKAGES),
            Flavor::Bare => (BARE_PACKAGES, &[]),
        }
    }
    fn cache_root(&self) -> PathBuf {
        let (packages, apt_packages) = self.packages();
        let key = util::fnv1a(
            format!("{SUITE}:{}:{}", packages.join(","), apt_packages.join(",")).as_bytes(),
        );
        self.base.join("cache").join(format!("root-{key:016x}"))
    }
    fn dir(&self) -> PathBuf {
        self.base.join(&self.instance)
    }
    pub fn root(&self) -> PathBuf {
        self.dir().join("root")
    }
    /// nspawn keeps per-machine state under `/run/systemd/nspawn/propagate/<machine>`, so two
    /// checkouts running the same instance name must not share a machine name.
    fn machine(&self) -> String {
        let key = util::fnv1a(self.base.to_string_lossy().as_bytes());
        format!("octo-{}-{:08x}", self.instance, key & 0xffff_ffff)
    }
    fn pid_file(&self) -> PathBuf {
        self.dir().join("nspawn.pid")
    }
    fn console_log(&self) -> PathBuf {
        self.dir().join("console.log")
    }
    fn tmpfs_marker(&self) -> PathBuf {
        self.base.join("mounted-nspawn-tmpfs")
    }
}

/// The outer tools the test host needs.
pub fn install_prerequisites() -> anyhow::Result<()> {
    util::apt_install(&["debootstrap", "systemd-container", "util-linux", "rsync"])
}

/// The cached root file systems of both flavours ([`Flavor::Dev`], [`Flavor::Bare`]),
/// debootstrapped if missing; nothing is booted.
pub fn warm_caches() -> anyhow::Result<()> {
    install_prerequisites()?;
    ensure_cache(&Paths::new())?;
    ensure_cache(&Paths::new().with_flavor(Flavor::Bare))?;
    Ok(())
}

/// `testhost up`: a fresh working root from the cache, booted.
pub fn up() -> anyhow::Result<()> {
    util::require_root("testhost up")?;
    up_at(&Paths::new())
}

/// `up` of a given instance.
pub fn up_at(paths: &Paths) -> anyhow::Result<()> {
    let paths = paths.clone();
    if let Some(leader) = leader(&paths) {
        step(format!(
            "the test host is already up (PID 1 is {leader} outside)"
        ));
        return Ok(());
    }
    install_prerequisites()?;
    let cache = ensure_cache(&paths)?;
    cleanup_leftovers(&paths)?;
    step("copying the cached root file system to a fresh working root");
    let root = paths.root();
    fs::create_dir_all(root.parent().context("root has a parent")?)?;
    util::run(
        Command::new("cp")
            .arg("-a")
            .arg("--reflink=auto")
            .arg(&cache)
            .arg(&root),
    )?;
    match paths.flavor {
        Flavor::Dev => provision(&root)?,
        Flavor::Bare => provision_host(&root)?,
    }
    boot(&paths)
}

/// `up` of the `OCTO_TESTHOST` instance as a bare host ([`Flavor::Bare`]), for the package
/// checks.
pub fn up_bare() -> anyhow::Result<()> {
    util::require_root("testhost up")?;
    up_at(&Paths::new().with_flavor(Flavor::Bare))
}

/// `testhost down`: power off, then remove the working root and every mount we made.
pub fn down() -> anyhow::Result<()> {
    util::require_root("testhost down")?;
    down_at(&Paths::new())
}

/// `down` of a given instance.
pub fn down_at(paths: &Paths) -> anyhow::Result<()> {
    let paths = paths.clone();
    poweroff(&paths)?;
    cleanup_leftovers(&paths)?;
    let root = paths.root();
    if root.exists() {
        step("removing the working root");
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    if paths.tmpfs_marker().exists() && !any_nspawn_running() {
        let _ = Command::new("umount").arg("/run/systemd/nspawn").status();
        let _ = fs::remove_file(paths.tmpfs_marker());
    }
    step("the test host is down");
    Ok(())
}

/// `testhost reboot`: poweroff and boot of the same root.
pub fn reboot() -> anyhow::Result<()> {
    util::require_root("testhost reboot")?;
    let paths = Paths::new();
    if !paths.root().exists() {
        bail!("no test host to reboot: run `cargo xtask testhost up` first");
    }
    step("rebooting the test host");
    poweroff(&paths)?;
    cleanup_leftovers(&paths)?;
    boot(&paths)
}

/// `testhost status`: whether it runs, and the state systemd reports.
pub fn status() -> anyhow::Result<()> {
    let paths = Paths::new();
    match leader(&paths) {
        None => {
            println!("down");
            if paths.root().exists() {
                println!(
                    "(a working root exists at {}; `down` removes it)",
                    paths.root().display()
                );
            }
        }
        Some(leader) => {
            let state = util::output(nsenter(leader).args(["systemctl", "is-system-running"]))
                .unwrap_or_else(|_| "unknown".into());
            println!(
                "up: PID 1 is {leader} outside; system state: {}",
                state.trim()
            );
            println!("root: {}", paths.root().display());
            println!("console log: {}", paths.console_log().display());
        }
    }
    Ok(())
}

/// How `exec` runs its command.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Run as this user with its systemd user manager's environment (`XDG_RUNTIME_DIR`,
    /// `DBUS_SESSION_BUS_ADDRESS`), else as root.
    pub user: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

/// `testhost exec -- CMD…`: runs a command inside; returns its exit code.
pub fn exec(command: &[String], options: &ExecOptions) -> anyhow::Result<i32> {
    exec_at(&Paths::new(), command, options)
}

/// `exec` in a given instance.
pub fn exec_at(paths: &Paths, command: &[String], options: &ExecOptions) -> anyhow::Result<i32> {
    let paths = paths.clone();
    let Some(leader) = leader(&paths) else {
        bail!("the test host is not up: run `cargo xtask testhost up` first");
    };
    let mut cmd = exec_command(&paths, leader, command, options)?;
    let status = util::status(&mut cmd)?;
    Ok(status.code().unwrap_or(128))
}

/// Runs a command inside as root and returns its standard output.
pub fn exec_output(command: &[&str]) -> anyhow::Result<String> {
    let paths = Paths::new();
    let Some(leader) = leader(&paths) else {
        bail!("the test host is not up: run `cargo xtask testhost up` first");
    };
    let command: Vec<String> = command.iter().map(ToString::to_string).collect();
    let mut cmd = exec_command(&paths, leader, &command, &ExecOptions::default())?;
    util::output(&mut cmd)
}

/// Like `exec`, but a failure is an error naming the command.
pub fn exec_ok(command: &[&str], options: &ExecOptions) -> anyhow::Result<()> {
    let command: Vec<String> = command.iter().map(ToString::to_string).collect();
    let code = exec(&command, options)?;
    if code != 0 {
        bail!(
            "`{}` failed in the test host with exit code {code}",
            command.join(" ")
        );
    }
    Ok(())
}

fn exec_command(
    paths: &Paths,
    leader: u32,
    command: &[String],
    options: &ExecOptions,
) -> anyhow::Result<Command> {
    let mut cmd = nsenter(leader);
    let mut env = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        "LANG=C.UTF-8".to_owned(),
    ];
    if let Ok(term) = std::env::var("TERM") {
        env.push(format!("TERM={term}"));
    }
    let home = match &options.user {
        None => "/root".to_owned(),
        Some(user) => {
            let (uid, home) = guest_user(&paths.root(), user)?;
            wait_user_manager(leader, user, uid)?;
            cmd.args([
                "setpriv",
                "--reuid",
                user,
                "--regid",
                user,
                "--init-groups",
                "--",
            ]);
            env.push(format!("USER={user}"));
            env.push(format!("XDG_RUNTIME_DIR=/run/user/{uid}"));
            env.push(format!(
                "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{uid}/bus"
            ));
            home
        }
    };
    env.push(format!("HOME={home}"));
    env.extend(options.env.iter().map(|(k, v)| format!("{k}={v}")));
    cmd.args(["env", "-i"]).args(&env);
    // Start in the home directory, as a login would.
    cmd.args(["sh", "-c", "cd \"$HOME\" && exec \"$@\"", "sh"]);
    cmd.args(command);
    Ok(cmd)
}

/// Looks up a user's uid and home in the guest's `/etc/passwd`.
fn guest_user(root: &Path, user: &str) -> anyhow::Result<(u32, String)> {
    let passwd =
        fs::read_to_string(root.join("etc/passwd")).context("reading the guest's /etc/passwd")?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 6 && fields[0] == user {
            let uid = fields[2]
                .parse()
                .with_context(|| format!("uid of {user}"))?;
            return Ok((uid, fields[5].to_owned()));
        }
    }
    bail!("the test host has no user {user:?}")
}

/// Waits until the user's systemd manager (started by linger at boot) answers.
fn wait_user_manager(leader: u32, user: &str, uid: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let bus = format!("/run/user/{uid}/bus");
    loop {
        let ok = nsenter(leader)
            .args([
                "setpriv",
                "--reuid",
                user,
                "--regid",
                user,
                "--init-groups",
                "--",
            ])
            .arg("env")
            .arg(format!("XDG_RUNTIME_DIR=/run/user/{uid}"))
            .arg(format!("DBUS_SESSION_BUS_ADDRESS=unix:path={bus}"))
            .args(["systemctl", "--user", "is-system-running", "--wait"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success() || s.code() == Some(1));
        // Exit code 1 with "degraded" still means the manager answers.
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the systemd user manager of {user} did not come up within {BOOT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn nsenter(leader: u32) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg("-t").arg(leader.to_string()).arg("-a");
    cmd
}

/// The Debian mirror, from `OCTO_DEBIAN_MIRROR` or else the outer machine's apt sources, so
/// that no registry host is written into the repository.
pub(crate) fn debian_mirror() -> anyhow::Result<String> {
    if let Ok(mirror) = std::env::var("OCTO_DEBIAN_MIRROR") {
        return Ok(mirror);
    }
    let mut texts = Vec::new();
    if let Ok(text) = fs::read_to_string("/etc/apt/sources.list") {
        texts.push(text);
    }
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        for entry in dir.flatten() {
            if let Ok(text) = fs::read_to_string(entry.path()) {
                texts.push(text);
            }
        }
    }
    mirror_from_sources(&texts).context(
        "cannot find a Debian mirror in /etc/apt/sources.list{,.d}: set OCTO_DEBIAN_MIRROR to \
         the URL of a Debian archive (the directory holding dists/ and pool/)",
    )
}

/// Picks the first archive URI of a Debian source (not security, not a third party).
fn mirror_from_sources(texts: &[String]) -> Option<String> {
    let is_debian = |uri: &str| {
        let uri = uri.trim_end_matches('/');
        (uri.starts_with("http://") || uri.starts_with("https://")) && uri.ends_with("/debian")
    };
    for text in texts {
        for line in text.lines() {
            let line = line.trim();
            // One-line format: deb [options] URI suite components…
            if let Some(rest) = line.strip_prefix("deb ") {
                let uri = rest.split_whitespace().find(|word| word.contains("://"));
                if let Some(uri) = uri.filter(|uri| is_debian(uri)) {
                    return Some(uri.trim_end_matches('/').to_owned());
                }
            }
            // deb822 format: URIs: …
            if let Some(rest) = line.strip_prefix("URIs:") {
                if let Some(uri) = rest.split_whitespace().find(|uri| is_debian(uri)) {
                    return Some(uri.trim_end_matches('/').to_owned());
                }
            }
        }
    }
    None
}

/// Debootstraps the cached root unless it exists (about 75 s; keyed by the package list).
fn ensure_cache(paths: &Paths) -> anyhow::Result<PathBuf> {
    let cache = paths.cache_root();
    if cache.join("etc/os-release").exists() {
        return Ok(cache);
    }
    let mirror = debian_mirror()?;
    let partial = cache.with_extension("partial");
    if partial.exists() {
        fs::remove_dir_all(&partial).context("removing a partial root from an earlier try")?;
    }
    fs::create_dir_all(&partial)?;
    step(format!(
        "debootstrapping Debian {SUITE} into {} (cached for later runs)",
        cache.display()
    ));
    let (packages, apt_packages) = paths.packages();
    util::run(
        Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", packages.join(",")))
            .arg(SUITE)
            .arg(&partial)
            .arg(&mirror),
    )
    .context("debootstrap of the test host's root failed (see its log above)")?;
    if !apt_packages.is_empty() {
        util::run(
            Command::new("chroot")
                .arg(&partial)
                .args(["apt-get", "install", "-y", "--no-install-recommends"])
                .args(apt_packages)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .context("installing the test host's apt packages")?;
    }
    // The root's apt cache is not needed and makes every copy bigger.
    let _ = Command::new("sh")
        .arg("-c")
        .arg("rm -rf \"$1\"/var/cache/apt/archives/*.deb \"$1\"/var/lib/apt/lists/*_Packages")
        .arg("sh")
        .arg(&partial)
        .status();
    fs::rename(&partial, &cache).context("moving the new root into the cache")?;
    Ok(cache)
}

/// Configures a fresh working root for this host: container settings, the `octo` user with
/// linger and a large subordinate id range, and a reachable `network-online.target`.
fn provision(root: &Path) -> anyhow::Result<()> {
    step("provisioning the root: containers.conf, the octo user, linger");
    provision_host(root)?;
    let passwd = fs::read_to_string(root.join("etc/passwd"))?;
    if !passwd.lines().any(|l| l.starts_with("octo:")) {
        util::run(Command::new("chroot").arg(root).args([
            "useradd",
            "--system",
            "--user-group",
            "--create-home",
            "--home-dir",
            "/var/lib/octo",
            "--shell",
            "/usr/sbin/nologin",
            OCTO_USER,
        ]))?;
    }
    for file in ["etc/subuid", "etc/subgid"] {
        let path = root.join(file);
        let existing = fs::read_to_string(&path).unwrap_or_default();
        let mut text = String::new();
        for line in existing.lines().filter(|l| !l.starts_with("octo:")) {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(OCTO_USER);
        text.push(':');
        text.push_str(SUBID_RANGE);
        text.push('\n');
        fs::write(&path, text)?;
    }
    // octod reads its units' journal lines for failure reasons; system users log to the
    // system journal.
    util::run(Command::new("chroot").arg(root).args([
        "usermod",
        "-aG",
        "systemd-journal",
        OCTO_USER,
    ]))?;
    fs::create_dir_all(root.join("var/lib/systemd/linger"))?;
    fs::write(root.join("var/lib/systemd/linger").join(OCTO_USER), "")?;
    // Rootless Quadlet units wait for the system's network-online.target; have it reached.
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants)?;
    let link = wants.join("network-online.target");
    if !link.exists() {
        std::os::unix::fs::symlink("/usr/lib/systemd/system/network-online.target", &link)?;
    }
    Ok(())
}

/// What any host built on this machine needs, whatever runs on it: settings for the nspawn
/// environment (which a real host does not need) and the outer machine's CAs.
fn provision_host(root: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(root.join("etc/containers"))?;
    fs::write(
        root.join("etc/containers/containers.conf"),
        "# Written by `cargo xtask testhost`: this nspawn host delegates no cgroup\n\
         # controllers and mounts /proc/sys read-only.\n\
         [containers]\npids_limit = 0\ndefault_sysctls = []\n",
    )?;
    fs::write(root.join("etc/hostname"), "octo-testhost\n")?;
    // nspawn creates /dev/net/tun as 0600; rootless pasta opens it as the user (a real
    // host has 0666 from udev).
    fs::create_dir_all(root.join("etc/tmpfiles.d"))?;
    fs::write(
        root.join("etc/tmpfiles.d/octo-testhost.conf"),
        "z /dev/net/tun 0666 root root -\n",
    )?;
    stage_extra_cas(root)
}

/// Copies the outer machine's extra CAs (`/usr/local/share/ca-certificates/*.crt`) into one
/// bundle at [`GUEST_EXTRA_CAS`] (empty when there are none).
fn stage_extra_cas(root: &Path) -> anyhow::Result<()> {
    let mut bundle = String::new();
    if let Ok(dir) = fs::read_dir("/usr/local/share/ca-certificates") {
        let mut paths: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "crt") && p.is_file())
            .collect();
        paths.sort();
        for path in paths {
            let pem =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            bundle.push_str(pem.trim_end());
            bundle.push('\n');
        }
    }
    let inside = root.join(GUEST_EXTRA_CAS.trim_start_matches('/'));
    fs::create_dir_all(inside.parent().context("the bundle has a parent")?)?;
    fs::write(&inside, bundle)?;
    Ok(())
}

fn ensure_nspawn_tmpfs(paths: &Paths) -> anyhow::Result<()> {
    let dir = Path::new("/run/systemd/nspawn");
    fs::create_dir_all(dir)?;
    let mounted = Command::new("mountpoint")
        .arg("-q")
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    let run_is_tmpfs = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(4) == Some(&"/run") && l.contains(" - tmpfs ")
        });
    if !mounted && !run_is_tmpfs {
        // nspawn refuses to boot when /run is not tmpfs (testhost.md).
        util::run(
            Command::new("mount")
                .args(["-t", "tmpfs", "tmpfs"])
                .arg(dir),
        )?;
        fs::write(paths.tmpfs_marker(), "")?;
    }
    Ok(())
}

fn boot(paths: &Paths) -> anyhow::Result<()> {
    ensure_nspawn_tmpfs(paths)?;
    let root = paths.root();
    // Appended, so that the log of a poweroff stays readable after the next boot.
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.console_log())?;
    let log_err = log.try_clone()?;
    let ws = util::workspace_root();
    let target = util::target_dir();
    step("booting the test host with systemd-nspawn");
    // Each host gets a cgroup of its own: with `--keep-unit`, nspawn roots the container in
    // the cgroup it runs in, and two hosts in one cgroup share `user.slice/user-<uid>.slice`,
    // so one host's poweroff waits for the other's user processes to leave it.
    let cgroup = own_cgroup(paths)?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("echo $$ > \"$0/cgroup.procs\" && exec \"$@\"")
        .arg(&cgroup)
        .arg("systemd-nspawn");
    cmd.arg("-q")
        .arg("-D")
        .arg(&root)
        .args([
            "--register=no",
            "--keep-unit",
            "--system-call-filter=@keyring",
            "--console=passive",
        ])
        .arg(format!("--machine={}", paths.machine()))
        .args(bind_args(&ws, &target)?)
        .arg("-b")
        .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        // Its own process group: Ctrl-C in the terminal that started it does not reach it.
        .process_group(0);
    let child = cmd.spawn().context("starting systemd-nspawn")?;
    let pid = child.id();
    fs::write(paths.pid_file(), pid.to_string())?;
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let leader = loop {
        if let Some(leader) = leader(paths) {
            break leader;
        }
        if !alive(pid) || Instant::now() > deadline {
            let console = fs::read_to_string(paths.console_log()).unwrap_or_default();
            bail!("systemd-nspawn exited or did not start the container's systemd:\n{console}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // The system bus appears a moment after PID 1; until then systemctl cannot answer.
    let state = loop {
        let out = nsenter(leader)
            .args(["timeout", "170", "systemctl", "is-system-running", "--wait"])
            .stderr(Stdio::null())
            .output()
            .context("running systemctl in the test host")?;
        let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !state.is_empty() && state != "offline" {
            break state;
        }
        if !alive(pid) || Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    match state.as_str() {
        "running" => step("the test host is running"),
        "degraded" => {
            step("the test host is running, degraded; failed units:");
            let _ = util::status(nsenter(leader).args(["systemctl", "--failed", "--no-pager"]));
        }
        other => bail!(
            "the test host did not finish booting (state {other:?}); console log: {}",
            paths.console_log().display()
        ),
    }
    Ok(())
}

/// Read-only binds of the workspace and the build output (`debug`, `release`, `image`). The root itself lives under
/// `target/`, so neither the workspace nor `target/` is bound whole: the container would see
/// its own mounts through the bind, and systemd would try to unmount them all at poweroff.
fn bind_args(ws: &Path, target: &Path) -> anyhow::Result<Vec<String>> {
    let mut args = Vec::new();
    for entry in fs::read_dir(ws).context("listing the workspace")? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        if name == "target" || name.starts_with('.') || path == target || target.starts_with(&path)
        {
            continue;
        }
        args.push(format!(
            "--bind-ro={}:{GUEST_SRC}/{name}:norbind",
            path.display()
        ));
    }
    // `image`: the session image's own build of octo-fileserver (image.rs).
    for profile in ["debug", "release", "image"] {
        let dir = target.join(profile);
        fs::create_dir_all(&dir)?;
        args.push(format!(
            "--bind-ro={}:{GUEST_TARGET}/{profile}:norbind",
            dir.display()
        ));
    }
    Ok(args)
}

/// The outer cgroup v2 directory for this host (created): under the unified hierarchy,
/// wherever the outer machine mounts it.
fn own_cgroup(paths: &Paths) -> anyhow::Result<PathBuf> {
    let unified = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("cgroup.procs").exists() && p.join("cgroup.subtree_control").exists())
        .context("no cgroup v2 hierarchy on this machine: systemd-nspawn needs one")?;
    let dir = unified.join("octo-testhost").join(paths.machine());
    fs::create_dir_all(&dir).with_context(|| format!("creating cgroup {}", dir.display()))?;
    Ok(dir)
}

/// Removes this host's cgroup tree (empty once nspawn has exited), deepest first.
fn remove_own_cgroup(paths: &Paths) {
    let Ok(top) = own_cgroup(paths) else { return };
    let mut dirs = Vec::new();
    let mut stack = vec![top];
    while let Some(dir) = stack.pop() {
        if let Ok(entries) = fs::read_dir(&dir) {
            stack.extend(
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.path()),
            );
        }
        dirs.push(dir);
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in dirs {
        let _ = fs::remove_dir(&dir);
    }
}

/// PID 1 of the container, seen from outside, if it runs.
fn leader(paths: &Paths) -> Option<u32> {
    let pid: u32 = fs::read_to_string(paths.pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if !alive(pid) || comm(pid).as_deref() != Some("systemd-nspawn") {
        return None;
    }
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .find(|child| comm(*child).as_deref() == Some("systemd"))
}

fn comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// True while the process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

fn any_nspawn_running() -> bool {
    fs::read_dir("/proc").is_ok_and(|dir| {
        dir.flatten().any(|e| {
            e.file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
                .is_some_and(|pid| comm(pid).as_deref() == Some("systemd-nspawn") && alive(pid))
        })
    })
}

/// Clean shutdown; kills the container's PID 1 when that does not finish in time (a start
/// job stuck in `activating` can hang poweroff, testhost.md).
fn poweroff(paths: &Paths) -> anyhow::Result<()> {
    let Ok(text) = fs::read_to_string(paths.pid_file()) else {
        return Ok(());
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return Ok(());
    };
    if !alive(pid) || comm(pid).as_deref() != Some("systemd-nspawn") {
        let _ = fs::remove_file(paths.pid_file());
        return Ok(());
    }
    if let Some(leader) = leader(paths) {
        step("powering the test host off");
        let _ = nsenter(leader)
            .args(["systemctl", "poweroff", "--no-block"])
            .status();
    }
    let deadline = Instant::now() + POWEROFF_TIMEOUT;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    if alive(pid) {
        step("clean poweroff did not finish in time: killing the container");
        if let Some(leader) = leader(paths) {
            let _ = Command::new("kill")
                .args(["-KILL", &leader.to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        if alive(pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let _ = fs::remove_file(paths.pid_file());
    remove_own_cgroup(paths);
    Ok(())
}

/// Unmounts anything left mounted beneath the working root (after a crash of nspawn).
fn cleanup_leftovers(paths: &Paths) -> anyhow::Result<()> {
    let root = paths.root();
    let root = root.to_string_lossy();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .filter(|m| m == &*root || m.starts_with(&format!("{root}/")))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in mounts {
        step(format!("unmounting leftover {mount}"));
        let _ = Command::new("umount").arg("-l").arg(&mount).status();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_from_one_line_and_deb822_sources() {
        let one =
            "# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n".to_owned();
        assert_eq!(
            mirror_from_sources(&[one]).as_deref(),
            Some("http://mirror.example/debian")
        );
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian-security\n\nTypes: deb\nURIs: https://m.example/debian/\nSuites: bookworm\n".to_owned();
        assert_eq!(
            mirror_from_sources(&[deb822]).as_deref(),
            Some("https://m.example/debian")
        );
        let other = "deb https://packages.example/apt cloud-sdk main\n".to_owned();
        assert_eq!(mirror_from_sources(&[other]), None);
    }
}
