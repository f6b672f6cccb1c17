//! The package checks of `cargo xtask ci`: the `.deb` installed into a bare Debian 13 test
//! host the way a sysadmin would (`apt install ./octo_*.deb caddy`, `systemctl enable --now
//! octod.socket`), then driven from the outside in by `octo-e2e package <phase>`: activation
//! through Caddy, a session, a reboot, an upgrade with the session running, remove, purge.
//! The `.rpm` is checked statically with `rpm -qp` (no RPM-based host here).
//!
//! Also the sysadmin's steps for `cargo xtask demo` ([`install_deb`], [`configure_caddy`]).

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, ensure};

use crate::dist::{self, Packages};
use crate::testhost::{self, ExecOptions};
use crate::util::{self, step};

/// Caddy's site in the test host (the host shares the machine's network: no port 443).
pub const SITE: &str = "localhost:8443";
/// The content origin of the test host: Chromium and curl resolve any `*.localhost` name to
/// the loopback, and a wildcard needs a third label to be accepted (testhost.md).
pub const CONTENT_SITE: &str = "*.content.localhost:8443";
/// Where packages are put inside the test host.
const GUEST_PKG_DIR: &str = "var/tmp/octo-packages";

fn root() -> ExecOptions {
    ExecOptions {
        user: None,
        env: vec![
            ("DEBIAN_FRONTEND".into(), "noninteractive".into()),
            ("RUST_BACKTRACE".into(), "1".into()),
        ],
    }
}

fn sh(script: &str) -> anyhow::Result<()> {
    testhost::exec_ok(&["sh", "-euc", script], &root())
}

/// Copies `deb` into the running test host; returns its path there.
fn stage(deb: &Path) -> anyhow::Result<String> {
    let dir = testhost::Paths::new().root().join(GUEST_PKG_DIR);
    fs::create_dir_all(&dir)?;
    let name = deb.file_name().context("a package has a file name")?;
    fs::copy(deb, dir.join(name)).with_context(|| format!("copying {}", deb.display()))?;
    Ok(format!("/{GUEST_PKG_DIR}/{}", name.to_string_lossy()))
}

/// `apt-get install ./octo_….deb` (plus `extra` packages), dependencies from the Debian
/// archive of the host's apt sources.
pub fn install_deb(deb: &Path, extra: &[&str]) -> anyhow::Result<()> {
    let guest = stage(deb)?;
    step(format!("apt-get install {guest} {}", extra.join(" ")));
    // As an unattended upgrade does: a configuration file the administrator changed (Caddy's
    // `caddy.env`) is kept without asking, the package's version beside it as `.dpkg-dist`.
    sh(&format!(
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
         -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold {guest} {}",
        extra.join(" ")
    ))
}

/// Caddy as the README tells a sysadmin: Octo's site imported into `/etc/caddy/Caddyfile`,
/// its address and the content origin's in `/etc/octo/caddy.env`, and the content origin in
/// octod's configuration too (`octod_content`: not for a package from before it, whose octod
/// refuses the key). The test host shares the machine's network, so Caddy's own ports move
/// off 80 and 2019 too.
pub fn configure_caddy(site: &str, octod_content: bool) -> anyhow::Result<()> {
    step(format!(
        "configuring Caddy for https://{site} and the content origin https://{CONTENT_SITE}"
    ));
    if octod_content {
        sh(&format!(
            "mkdir -p /etc/octo/octod.d
             printf '[server]\\ncontent_site = \"{CONTENT_SITE}\"\\n' > /etc/octo/octod.d/40-content-site.toml
             octod config check
             systemctl try-restart octod.service"
        ))?;
    }
    sh(&format!(
        "printf 'OCTO_SITE={site}\\nOCTO_CONTENT_SITE={CONTENT_SITE}\\n' >> /etc/octo/caddy.env
         cat > /etc/caddy/Caddyfile <<'EOF'
{{
\thttp_port 8480
\tadmin localhost:2119
}}
import /etc/caddy/Caddyfile.d/*.caddyfile
EOF
         systemctl restart caddy"
    ))
}

/// Imports the test host's base image for `octo` and builds the session image the way
/// the package would: `octoctl image build` with `[image] base` in a drop-in, or, while
/// octoctl has no `image build`, the development build as `octo`.
pub fn build_image() -> anyhow::Result<()> {
    let tarball = crate::image::ensure_base_rootfs()?;
    crate::image::import_base_image(&tarball)?;
    let has_build = testhost::exec(
        &["octoctl", "image", "build", "--help"].map(String::from),
        &root(),
    )? == 0;
    if has_build {
        sh(&format!(
            "printf '[image]\\nbase = \"{base}\"\\nextra_ca_dir = \"/etc/octo-testhost/cas\"\\n' \
               > /etc/octo/octod.d/50-testhost-image.toml
             mkdir -p /etc/octo-testhost/cas
             cp {cas} /etc/octo-testhost/cas/outer.crt
             octod config check
             systemctl try-restart octod.service",
            base = crate::image::BASE_IMAGE,
            cas = testhost::GUEST_EXTRA_CAS,
        ))?;
        step("octoctl image build");
        sh("octoctl image build")
    } else {
        step(
            "warning: this octoctl has no `image build` yet: building the session image as octo directly",
        );
        crate::image::build_session_image().map(|build| step(format!("session image: {build}")))
    }
}

/// The stub model's port in the test host (`octo-e2e stub-llm`).
pub const STUB_LLM_PORT: u16 = 45_100;

/// Runs `octo-e2e stub-llm` in the host as a transient unit and points octod's `[llm]` at
/// it with a drop-in (the agents then answer from the stub, through octod's model gateway),
/// its key as the credential `octoctl llm set-key` writes, restarting octod if it runs.
pub fn start_stub_llm() -> anyhow::Result<()> {
    let program = format!("{}/debug/octo-e2e", testhost::GUEST_TARGET);
    step(format!(
        "a stub model on port {STUB_LLM_PORT} for the agents"
    ));
    sh(&format!(
        "systemctl stop octo-stub-llm.service 2>/dev/null || true
         systemd-run --unit=octo-stub-llm {program} stub-llm --port {STUB_LLM_PORT}
         printf '[llm]\\nbase_url = \"http://127.0.0.1:{STUB_LLM_PORT}/v1\"\\nmodel = \"e2e-model\"\\nmodels = [\"e2e-other\"]\\n' \\
           > /etc/octo/octod.d/60-stub-llm.toml
         echo stub-llm-key | octoctl llm set-key
         octod config check
         systemctl try-restart octod.service"
    ))
}

fn e2e(phase: &str) -> anyhow::Result<()> {
    step(format!("e2e: package {phase}"));
    let program = format!("{}/debug/octo-e2e", testhost::GUEST_TARGET);
    testhost::exec_ok(&[program.as_str(), "package", phase], &root())
}

/// The web UI's browser checks (`crate::ui`) against the installed package through Caddy,
/// with the agents answered by the stub model.
fn browser_checks() -> anyhow::Result<()> {
    start_stub_llm()?;
    let out = testhost::exec_output(&[
        "octoctl",
        "--json",
        "invite-codes",
        "generate",
        "--role",
        "admin",
    ])?;
    let value: serde_json::Value =
        serde_json::from_str(&out).with_context(|| format!("octoctl's JSON: {out}"))?;
    let code = value["code"]
        .as_str()
        .context("no code in octoctl's JSON")?;
    crate::ui::browser_e2e(&format!("https://{SITE}"), code)
}

/// The OpenID Connect provider of the sign-in checks (`frontend/e2e/oidc-provider.mjs`), on
/// this machine: the test host shares its network, so octod reaches it at localhost.
const OIDC_PORT: u16 = 9443;

/// Sign-in with OpenID Connect (issue 16): a real provider (panva's oidc-provider over HTTPS,
/// its certificate from a throwaway CA that the test host then trusts), octod configured with
/// two providers of it (client secrets as files of /etc/octo/credentials, which octod.service
/// passes as systemd credentials), and the browser check `27-oidc` through Caddy. Afterwards
/// the configuration is taken away again (`OCTO_OIDC_KEEP=1`: left, for debugging).
pub fn oidc_checks() -> anyhow::Result<()> {
    let dir = util::target_dir().join("oidc-e2e");
    fs::create_dir_all(&dir)?;
    step("a throwaway CA and a certificate for https://localhost:9443");
    util::run(Command::new("sh").current_dir(&dir).args([
        "-euc",
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
           -subj '/CN=Octo e2e OpenID Connect CA' \
           -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
         openssl req -newkey rsa:2048 -nodes -keyout key.pem -out req.csr -subj /CN=localhost 2>/dev/null
         printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > ext
         openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem \
           -days 2 -extfile ext 2>/dev/null",
    ]))
    .context("making the test provider's certificate (openssl)")?;
    let host = testhost::Paths::new().root();
    fs::create_dir_all(host.join("usr/local/share/ca-certificates"))?;
    fs::copy(
        dir.join("ca.pem"),
        host.join("usr/local/share/ca-certificates/octo-e2e-oidc.crt"),
    )?;
    sh(
        "command -v update-ca-certificates >/dev/null || apt-get install -y -q ca-certificates
        update-ca-certificates >/dev/null",
    )?;

    step(format!(
        "the OpenID Connect provider on https://localhost:{OIDC_PORT}"
    ));
    let frontend = util::workspace_root().join("frontend");
    let log = fs::File::create(dir.join("provider.log"))?;
    let mut provider = Command::new("node")
        .current_dir(&frontend)
        .arg("e2e/oidc-provider.mjs")
        .args(["--port", &OIDC_PORT.to_string(), "--site", SITE])
        .arg("--cert")
        .arg(dir.join("cert.pem"))
        .arg("--key")
        .arg(dir.join("key.pem"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting node e2e/oidc-provider.mjs")?;
    let result = (|| {
        let issuer = format!("https://localhost:{OIDC_PORT}");
        // Ready once the host itself (trusting the new CA) reads its discovery document.
        sh(&format!(
            "for i in $(seq 1 60); do
               curl -sf {issuer}/.well-known/openid-configuration >/dev/null && exit 0; sleep 0.5
             done
             echo 'the test provider did not answer in 30 s' >&2; exit 1"
        ))?;
        step("octod: providers corp (groups) and partners (invite codes), secrets as credentials");
        let credentials = host.join("etc/octo/credentials");
        fs::write(credentials.join("oidc-corp"), "octo-secret\n")?;
        fs::write(credentials.join("oidc-partners"), "octo-partners-secret\n")?;
        fs::write(
            host.join("etc/octo/octod.d/70-e2e-oidc.toml"),
            format!(
                "[[auth.oidc]]\nid = \"corp\"\nname = \"Corp SSO\"\nissuer = \"{issuer}\"\n\
                 client_id = \"octo\"\nscopes = [\"openid\", \"profile\", \"groups\"]\n\
                 groups_claim = \"groups\"\nadmin_groups = [\"octo-admins\"]\n\
                 allowed_groups = [\"octo-users\"]\n\n\
                 [[auth.oidc]]\nid = \"partners\"\nname = \"Partners\"\nissuer = \"{issuer}\"\n\
                 client_id = \"octo-partners\"\nrequire_invite = true\n"
            ),
        )?;
        sh("command -v curl >/dev/null || apt-get install -y -q curl
            chmod 600 /etc/octo/credentials/oidc-*
            octod config check
            systemctl restart octod.service
            curl -sfk https://localhost:8443/api/auth/providers | grep -q '\"id\":\"partners\"'
            # The secrets are nowhere but in the root-only files and octod's credentials.
            ! grep -rqs -- -secret /etc/octo/octod.toml /etc/octo/octod.d /usr/lib/systemd/system/octod.service
            ! systemctl show octod.service | grep -q -- -secret
            test \"$(stat -c %a /etc/octo/credentials)\" = 700")
        .context("configuring octod's OpenID Connect providers")?;
        let out = testhost::exec_output(&[
            "octoctl",
            "--json",
            "invite-codes",
            "generate",
            "--role",
            "admin",
        ])?;
        let value: serde_json::Value =
            serde_json::from_str(&out).with_context(|| format!("octoctl's JSON: {out}"))?;
        let code = value["code"]
            .as_str()
            .context("no code in octoctl's JSON")?;
        crate::ui::browser_e2e_filtered(
            &format!("https://{SITE}"),
            code,
            "27-oidc",
            &[("OCTO_OIDC_ISSUER", issuer.as_str())],
        )?;
        sh("! journalctl -u octod.service --no-pager | grep -q -- -secret")
            .context("a client secret is in octod's journal")
    })();
    if std::env::var_os("OCTO_OIDC_KEEP").is_some() {
        // Debugging the check: the provider and octod's configuration stay.
        step(format!(
            "kept: the provider (pid {}) and octod's configuration",
            provider.id()
        ));
        return result;
    }
    let _ = provider.kill();
    let _ = provider.wait();
    let cleanup = sh(
        "rm -f /etc/octo/octod.d/70-e2e-oidc.toml /etc/octo/credentials/oidc-*
                      systemctl restart octod.service",
    );
    if result.is_err() {
        step(format!(
            "the test provider's log: {}",
            dir.join("provider.log").display()
        ));
    }
    result?;
    cleanup
}

/// The whole package scenario in a fresh bare host; always takes the host down.
pub fn check() -> anyhow::Result<()> {
    let first = dist::run(&dist::Options {
        revision: 1,
        no_rpm: false,
    })?;
    if let Some(rpm) = &first.rpm {
        check_rpm(rpm)?;
    }
    check_deb_statically(&first.deb)?;
    testhost::down()?;
    testhost::up_bare()?;
    let result = scenario(&first);
    let down = testhost::down();
    let second = result?;
    down?;
    restore_on_a_new_host(&second)?;
    upgrade_from_previous(Some(&second))
}

/// The backup's archive and what the restored host must show, carried from the package
/// check's host to the next one (`e2e/src/package_backup.rs`).
const BACKUP_FILES: [&str; 2] = [
    "var/tmp/octo-package.octo-backup",
    "var/tmp/octo-package-backup.json",
];

fn backup_carry_dir() -> std::path::PathBuf {
    util::target_dir().join("package-backup")
}

/// Copies [`BACKUP_FILES`] out of the running test host (`out`) or into it.
fn carry_backup(out: bool) -> anyhow::Result<()> {
    let guest = testhost::Paths::new().root();
    let outside = backup_carry_dir();
    fs::create_dir_all(&outside)?;
    for file in BACKUP_FILES {
        let (inside, beside) = (
            guest.join(file),
            outside.join(file.rsplit('/').next().unwrap_or(file)),
        );
        let (from, to) = if out {
            (&inside, &beside)
        } else {
            (&beside, &inside)
        };
        fs::copy(from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// Issue 17's restore onto another machine: a fresh bare host, the same package, Caddy and
/// the session image, then `octoctl backup restore` of the archive the package check's host
/// wrote; always takes the host down.
fn restore_on_a_new_host(package: &Packages) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    testhost::down()?;
    testhost::up_bare()?;
    let result = (|| {
        install_deb(&package.deb, &["caddy"])?;
        configure_caddy(SITE, true)?;
        sh("systemctl enable --now octod.socket")?;
        build_image()?;
        carry_backup(false)?;
        e2e("backup-restore")
    })();
    let down = testhost::down();
    result?;
    down?;
    let _ = fs::remove_dir_all(backup_carry_dir());
    step(format!(
        "backup restored onto a new host: passed in {:.0?}",
        started.elapsed()
    ));
    Ok(())
}

/// The commit before issue 13 (the session boundary): integrate2's tip then, with the same
/// package as main after issue 12. Its sessions publish TCP ports; upgrading from it must
/// convert them. Pinned, since a merge-base stops meaning that once issue 13 lands.
const PREVIOUS_COMMIT: &str = "e9fdeec48cfb50de8f1ae60dcee33d9788800a01";

/// The `.deb` of [`PREVIOUS_COMMIT`]: built once (`cargo xtask dist --no-rpm` in a detached
/// `git worktree` with a target directory of its own) and cached under
/// `target/previous-package/<commit>/`.
pub(crate) fn previous_deb() -> anyhow::Result<std::path::PathBuf> {
    let base = util::target_dir()
        .join("previous-package")
        .join(PREVIOUS_COMMIT);
    let cached = base.join("octo-previous.deb");
    if cached.exists() {
        step(format!(
            "the previous package (cached): {}",
            cached.display()
        ));
        return Ok(cached);
    }
    let started = std::time::Instant::now();
    let src = base.join("src");
    let target = base.join("target");
    fs::create_dir_all(&base)?;
    if !src.join("Cargo.toml").exists() {
        let _ = fs::remove_dir_all(&src);
        let root = util::workspace_root();
        util::run(
            Command::new("git")
                .current_dir(&root)
                .args(["worktree", "prune"]),
        )?;
        util::run(
            Command::new("git")
                .current_dir(&root)
                .args(["worktree", "add", "--detach"])
                .arg(&src)
                .arg(PREVIOUS_COMMIT),
        )
        .context("checking out the previous commit (is it in this repository?)")?;
    }
    // The packaging tools are the same: share them rather than build them again.
    let tools = dist::ensure_tools()?;
    fs::create_dir_all(&target)?;
    let link = target.join("tools");
    if !link.exists() {
        std::os::unix::fs::symlink(tools.parent().context("the tools' root")?, &link)?;
    }
    // Most of its dependencies are the ones this tree's release build just compiled, at the
    // same versions and features: seeding its target directory with a copy of those lets
    // cargo reuse them (their fingerprints match) and build little more than the previous
    // workspace itself. A copy, not hard links: the two builds must not write into each
    // other's files.
    let ours = util::target_dir().join("release");
    let seeded = target.join("release");
    if ours.join("deps").is_dir() && !seeded.exists() {
        step("seeding its build with this tree's compiled release dependencies");
        fs::create_dir_all(&seeded)?;
        for dir in ["deps", "build", ".fingerprint"] {
            if ours.join(dir).is_dir() {
                util::run(
                    Command::new("cp")
                        .arg("-a")
                        .arg(ours.join(dir))
                        .arg(&seeded),
                )?;
            }
        }
    }
    step(format!(
        "building the package of {} (release, once; cached)",
        &PREVIOUS_COMMIT[..7]
    ));
    util::run(
        util::cargo(["xtask", "dist", "--no-rpm", "--revision", "1"])
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", &target),
    )?;
    let deb = fs::read_dir(target.join("dist"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("the previous commit's dist built no .deb")?;
    fs::copy(&deb, &cached)?;
    step(format!(
        "built the previous package in {:.0?}: {}",
        started.elapsed(),
        cached.display()
    ));
    Ok(cached)
}

/// Issue 13's upgrade in place, in a bare host of its own: the previous package with a
/// running session (publishing ports) and a file in its home, then this package (revision 2
/// so that apt upgrades), and nothing else: octod must rebuild the previous package's image
/// (another session runtime) by itself and move the session onto it; the session must run
/// with the same home, hold no TCP port, and have its socket.
/// `current`: this tree's package with revision 2, when built already.
pub fn upgrade_from_previous(current: Option<&Packages>) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let previous = previous_deb()?;
    let built;
    let current = match current {
        Some(current) => current,
        None => {
            built = dist::run(&dist::Options {
                revision: 2,
                no_rpm: true,
            })?;
            &built
        }
    };
    testhost::down()?;
    testhost::up_bare()?;
    let result = (|| {
        install_deb(&previous, &["caddy"])?;
        configure_caddy(SITE, false)?;
        sh("systemctl enable --now octod.socket")?;
        e2e("activate")?;
        build_image()?;
        e2e("install")?;
        e2e("before-boundary-upgrade")?;
        step("upgrading to this package with the session running");
        install_deb(&current.deb, &[])?;
        sh("dpkg-query -W -f='${Version}' octo | grep -q -- '-2$'")
            .context("the upgraded package is not installed")?;
        // No `octoctl image build`, no refresh: octod rebuilds the outdated image and moves
        // the session by itself.
        e2e("after-boundary-upgrade")
    })();
    let down = testhost::down();
    result?;
    down?;
    step(format!(
        "upgrade from {}: passed in {:.0?}",
        &PREVIOUS_COMMIT[..7],
        started.elapsed()
    ));
    Ok(())
}

/// The package check's host, from a bare one to the purge; returns the package it upgraded to.
fn scenario(first: &Packages) -> anyhow::Result<Packages> {
    sh("! id octo 2>/dev/null && ! command -v podman")
        .context("the bare host already has an octo user or Podman")?;
    install_deb(&first.deb, &["caddy"])?;
    sh(
        "id octo && grep -q '^octo:' /etc/subuid && grep -q '^octo:' /etc/subgid \
        && test -e /var/lib/systemd/linger/octo && id -nG octo | grep -qw systemd-journal \
        && getent group octo-admin && podman --version",
    )
    .context("the package did not set up the octo user, its ids, linger and Podman")?;
    configure_caddy(SITE, true)?;
    step("systemctl enable --now octod.socket");
    sh("systemctl enable --now octod.socket")?;
    e2e("activate")?;
    build_image()?;
    e2e("install")?;
    e2e("throttle")?;
    browser_checks()?;
    e2e("clients")?;
    oidc_checks()?;
    testhost::reboot()?;
    e2e("after-reboot")?;

    step("rebuilding the package with a higher revision, upgrading while the session runs");
    let second = dist::run(&dist::Options {
        revision: 2,
        no_rpm: true,
    })?;
    install_deb(&second.deb, &[])?;
    sh("dpkg-query -W -f='${Version}' octo | grep -q -- '-2$'")
        .context("the upgraded package is not installed")?;
    e2e("after-upgrade")?;
    e2e("backup-create")?;
    carry_backup(true)?;

    step("apt-get remove octo");
    sh("apt-get remove -y -q octo")?;
    e2e("after-remove")?;
    step("apt-get purge octo");
    sh("apt-get purge -y -q octo")?;
    e2e("after-purge")?;
    Ok(second)
}

/// The `.deb`'s control data: name, dependencies, conffiles, scripts.
fn check_deb_statically(deb: &Path) -> anyhow::Result<()> {
    let info = util::output(Command::new("dpkg-deb").arg("--info").arg(deb))?;
    for needle in [
        "Package: octo",
        "podman (>= 5)",
        "passt",
        "uidmap",
        "Recommends: caddy",
        "conffiles",
        "postinst",
        "prerm",
        "postrm",
    ] {
        ensure!(
            info.contains(needle),
            "the .deb's control lacks {needle:?}:\n{info}"
        );
    }
    let conffiles = util::output(
        Command::new("sh")
            .args([
                "-c",
                "dpkg-deb --ctrl-tarfile \"$1\" | tar -xO ./conffiles",
                "sh",
            ])
            .arg(deb),
    )?;
    for conf in [
        "/etc/octo/octod.toml",
        "/etc/octo/caddy.env",
        "/etc/caddy/Caddyfile.d/octo.caddyfile",
    ] {
        ensure!(
            conffiles.lines().any(|l| l == conf),
            "{conf} is not a conffile of the .deb: {conffiles}"
        );
    }
    step("deb: control fields, dependencies, conffiles and maintainer scripts as expected");
    Ok(())
}

/// `rpm -qp` checks of the `.rpm`: the files (every file of `container/` among them), the
/// config files, the scriptlets and the dependencies.
fn check_rpm(rpm: &Path) -> anyhow::Result<()> {
    util::apt_install(&["rpm"])?;
    step(format!("rpm -qp checks of {}", rpm.display()));
    let query = |args: &[&str]| util::output(Command::new("rpm").arg("-qp").args(args).arg(rpm));
    let name = query(&["--queryformat", "%{NAME} %{VERSION}-%{RELEASE} %{ARCH}"])?;
    ensure!(name.starts_with("octo 0."), "rpm name/version: {name}");
    let files = query(&["--list"])?;
    let mut expected: Vec<String> = [
        "/usr/bin/octod",
        "/usr/bin/octoctl",
        "/usr/libexec/octo/octo-fileserver",
        "/usr/lib/systemd/system/octod.service",
        "/usr/lib/systemd/system/octod.socket",
        "/usr/lib/systemd/system/octod-admin.socket",
        "/usr/lib/systemd/system/caddy.service.d/octo.conf",
        "/usr/lib/sysusers.d/octo.conf",
        "/usr/lib/tmpfiles.d/octo.conf",
        "/usr/share/octo/ui/index.html",
        "/etc/octo/octod.toml",
        "/etc/octo/caddy.env",
        "/etc/caddy/Caddyfile.d/octo.caddyfile",
    ]
    .map(String::from)
    .to_vec();
    let tracked = util::output(
        Command::new("git")
            .args(["ls-files", "container"])
            .current_dir(util::workspace_root()),
    )?;
    expected.extend(tracked.lines().map(|f| format!("/usr/share/octo/{f}")));
    let missing: Vec<&String> = expected
        .iter()
        .filter(|f| !files.lines().any(|l| l == f.as_str()))
        .collect();
    ensure!(missing.is_empty(), "the .rpm lacks {missing:?}");
    let modes = query(&["--queryformat", "[%{FILEMODES:perms} %{FILENAMES}\\n]"])?;
    for exe in [
        "/usr/bin/octod",
        "/usr/share/octo/container/entrypoint",
        "/usr/share/octo/container/healthcheck",
    ] {
        ensure!(
            modes
                .lines()
                .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(exe)),
            "{exe} is not executable in the .rpm:\n{modes}"
        );
    }
    let config = query(&["--configfiles"])?;
    for conf in [
        "/etc/octo/octod.toml",
        "/etc/octo/caddy.env",
        "/etc/caddy/Caddyfile.d/octo.caddyfile",
    ] {
        ensure!(
            config.lines().any(|l| l == conf),
            "{conf} is not a %config file: {config}"
        );
    }
    let noreplace = query(&["--queryformat", "[%{FILEFLAGS:fflags} %{FILENAMES}\\n]"])?;
    ensure!(
        noreplace
            .lines()
            .any(|l| l.ends_with("/etc/octo/octod.toml") && l.starts_with("cn")),
        "/etc/octo/octod.toml is not %config(noreplace):\n{noreplace}"
    );
    let scripts = query(&["--scripts"])?;
    for needle in [
        "postinstall scriptlet",
        "systemd-sysusers octo.conf",
        "--add-subuids",
        "enable-linger octo",
        "preuninstall scriptlet",
        "systemctl stop octod.socket",
        "postuninstall scriptlet",
        "try-restart octod.service",
    ] {
        ensure!(
            scripts.contains(needle),
            "the .rpm's scriptlets lack {needle:?}:\n{scripts}"
        );
    }
    let requires = query(&["--requires"])?;
    for needle in ["podman >= 5", "passt", "shadow-utils", "systemd", "/bin/sh"] {
        ensure!(
            requires.lines().any(|l| l.trim().starts_with(needle)),
            "the .rpm does not require {needle}:\n{requires}"
        );
    }
    let recommends = query(&["--recommends"])?;
    ensure!(
        recommends.contains("caddy"),
        "the .rpm does not recommend caddy"
    );
    step(format!(
        "rpm: {name}: {} files, config files, scriptlets and dependencies as expected",
        files.lines().count()
    ));
    Ok(())
}
