//! `cargo xtask demo`: the built `.deb` installed into a throwaway bare test host the way a
//! sysadmin would (`apt install ./octo_*.deb caddy`, Caddy's site, `systemctl enable --now
//! octod.socket`, `octoctl image build`), then the HTTPS URL and a first admin invite code.
//! Ctrl-C tears it down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::package::{self, SITE};
use crate::testhost::{self, ExecOptions};
use crate::util::{self, step};

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Run `octo-e2e stub-llm` in the host and point octod's `[llm]` at it.
    pub stub_llm: bool,
}

pub fn run(options: Options) -> anyhow::Result<()> {
    util::require_root("demo")?;
    let paths = testhost::Paths::new();
    if paths.root().exists() {
        bail!(
            "a test host named {:?} exists already: take it down first (`cargo xtask testhost \
             down`), or pick another name with OCTO_TESTHOST",
            std::env::var("OCTO_TESTHOST").unwrap_or_else(|_| "host".into())
        );
    }
    let packages = crate::dist::run(&crate::dist::Options {
        revision: 1,
        no_rpm: true,
    })?;
    if options.stub_llm {
        util::run(&mut util::cargo(["build", "-p", "octo-e2e"]))?;
    }
    testhost::up_bare()?;
    let code = match install(&packages.deb, options) {
        Ok(code) => code,
        Err(error) => {
            let _ = testhost::down();
            return Err(error);
        }
    };
    let ca = util::target_dir().join("demo-caddy-root.crt");
    let _ = std::fs::copy(
        paths
            .root()
            .join("var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"),
        &ca,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    println!();
    println!("Octo is installed from its .deb in the test host, behind Caddy:");
    println!("    https://{SITE}/");
    println!("    first admin invite code: {code}");
    println!(
        "    Caddy's local CA (trust it in your browser, or curl --cacert): {}",
        ca.display()
    );
    println!("    as root inside: cargo xtask testhost exec -- octoctl status");
    if options.stub_llm {
        println!(
            "    the agents answer from a stub model on port {}",
            package::STUB_LLM_PORT
        );
    }
    println!();
    println!("Press Ctrl-C (or run `cargo xtask testhost down`) to stop and clean up.");
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(300));
        if !paths.root().exists() {
            step("the test host was taken down");
            return Ok(());
        }
    }
    println!();
    testhost::down()
}

fn sh(script: &str) -> anyhow::Result<()> {
    testhost::exec_ok(&["sh", "-euc", script], &ExecOptions::default())
}

/// The sysadmin's steps; returns the first admin invite code.
fn install(deb: &std::path::Path, options: Options) -> anyhow::Result<String> {
    package::install_deb(deb, &["caddy"])?;
    package::configure_caddy(SITE, true)?;
    step("systemctl enable --now octod.socket");
    sh("systemctl enable --now octod.socket")?;
    package::build_image()?;
    if options.stub_llm {
        package::start_stub_llm()?;
    }
    step(format!("checking https://{SITE}/api/health through Caddy"));
    let out = testhost::exec_output(&[
        "curl",
        "-fsS",
        "--retry",
        "20",
        "--retry-all-errors",
        "--retry-delay",
        "1",
        "--cacert",
        "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt",
        &format!("https://{SITE}/api/health"),
    ])?;
    println!("{}", out.trim());
    invite_code()
}

/// A first admin invite code: from `octoctl`, or, while octoctl cannot make one yet, the
/// one octod logged at its first start.
fn invite_code() -> anyhow::Result<String> {
    if let Ok(out) = testhost::exec_output(&[
        "octoctl",
        "--json",
        "invite-codes",
        "generate",
        "--role",
        "admin",
    ]) {
        let value: serde_json::Value =
            serde_json::from_str(&out).with_context(|| format!("octoctl's JSON: {out}"))?;
        if let Some(code) = value["code"].as_str() {
            return Ok(code.to_owned());
        }
    }
    step("warning: octoctl cannot generate invite codes yet: the one octod logged");
    let out = testhost::exec_output(&["journalctl", "-u", "octod", "-o", "cat", "--no-pager"])?;
    out.lines()
        .rev()
        .find_map(|line| {
            line.rsplit_once("invite code ")
                .map(|(_, code)| code.trim().to_owned())
        })
        .context("octod did not log a first admin invite code (is there an admin already?)")
}
