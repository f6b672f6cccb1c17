//! `octo-e2e quadlet-generator`: session units rendered by `octod::render` go through Podman's
//! real Quadlet generator (`--user --dryrun`). Any warning or error, a non-zero exit, a
//! missing service or an `ExecStart=` that does not carry what the spec says fails the check.
//! Owner names and the health command hold quotes, `%`, `$` and spaces, so the check also
//! proves that the renderer's escaping survives Quadlet and systemd unchanged.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use octod::render::{self, Controllers, HealthConfig, LlmMount, RenderConfig};
use octod::session::{DesiredState, Limits, SessionSpec};

const GENERATOR: &str = "/usr/lib/systemd/system-generators/podman-system-generator";
const TEMPLATE: &str = "coding-copilot";

/// One rendered session and what its generated `ExecStart=` must contain.
struct Case {
    spec: SessionSpec,
    config: RenderConfig,
    /// Extra `(flag, value)` pairs (or lone flags with an empty value) beyond the common ones.
    extra: Vec<(String, String)>,
}

pub(crate) fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating the unit directory")?;
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(templates.join(TEMPLATE)).context("creating a template dir")?;
    let units = dir.path().join("units");
    std::fs::create_dir(&units).context("creating the Quadlet dir")?;

    // Socket units are not Quadlet's: they go, with the services the generator makes, to a
    // directory of their own for `systemd-analyze verify`.
    let sockets = dir.path().join("sockets");
    std::fs::create_dir(&sockets).context("creating the socket dir")?;

    let cases = cases(&templates)?;
    for case in &cases {
        let rendered = render::render(&case.spec, &case.config)
            .with_context(|| format!("rendering session {}", case.spec.id))?;
        for file in [&rendered.volume, &rendered.container] {
            std::fs::write(units.join(&file.file_name), &file.contents)
                .with_context(|| format!("writing {}", file.file_name))?;
        }
        std::fs::write(
            sockets.join(&rendered.socket.file_name),
            &rendered.socket.contents,
        )?;
    }

    let services = generate(&units)?;
    for case in &cases {
        check_case(case, &templates, &services)
            .with_context(|| format!("session {}", case.spec.id))?;
        verify_socket(&sockets, &case.spec, &services)
            .with_context(|| format!("session {}'s socket", case.spec.id))?;
    }
    println!(
        "  - {} sessions: the generator accepted every unit without a warning; systemd-analyze verified each socket unit",
        cases.len()
    );
    Ok(())
}

fn cases(templates: &Path) -> anyhow::Result<Vec<Case>> {
    let spec = |id: &str, owner: &str, _base: u16, desired| -> anyhow::Result<SessionSpec> {
        Ok(SessionSpec {
            id: id.parse()?,
            owner: owner.to_owned(),
            template: TEMPLATE.to_owned(),
            image: "localhost/octo-session:latest".to_owned(),
            limits: Limits::default(),
            desired,
        })
    };
    let plain = RenderConfig::new(templates);
    let pair = |flag: &str, value: &str| (flag.to_owned(), value.to_owned());

    // 1. The production defaults, running, no limits, no controllers.
    let first = Case {
        spec: spec("gen1", "alice", 40001, DesiredState::Running)?,
        config: plain.clone(),
        extra: vec![],
    };

    // 2. Stopped, every limit delegated, a provider secret, a test health command and an
    //    owner name full of characters that need escaping.
    let mut limited = spec(
        "gen2",
        "Zoë \"Z\" O'Neil 100% $HOME",
        40011,
        DesiredState::Stopped,
    )?;
    limited.limits = Limits {
        memory_bytes: Some(512 << 20),
        cpu_centis: Some(150),
        pids: Some(1000),
    };
    let health_cmd =
        r#"wget -q -O - http://127.0.0.1:41820/ | grep -q "ok" && test "$HOME" != '%h'"#;
    let second = Case {
        spec: limited.clone(),
        config: RenderConfig {
            health: HealthConfig {
                cmd: health_cmd.to_owned(),
                interval: Duration::from_millis(500),
                start_period: Duration::from_secs(5),
                retries: 2,
                timeout: Duration::from_secs(2),
            },
            start_timeout: Duration::from_secs(30),
            controllers: Controllers::ALL,
            llm: Some(LlmMount {
                sockets_dir: "/var/lib/octod/llm".into(),
                models: vec!["big".to_owned(), "small".to_owned()],
            }),
            add_capabilities: vec!["SETUID".to_owned()],
            ..plain.clone()
        },
        extra: vec![
            // octod's model gateway: the session's own directory, the models; no key.
            pair("-v", "/var/lib/octod/llm/gen2:/run/octo-llm:ro"),
            pair("--env", "OCTO_LLM_MODELS=big,small"),
            pair("--cap-add", "setuid"),
            pair("--pids-limit", "1000"),
            pair("--memory=536870912", ""),
            pair("--cpus=1.5", ""),
        ],
    };

    // 3. Limits with only some controllers delegated.
    let mut partly = spec("gen3", "bob", 40021, DesiredState::Running)?;
    partly.limits = limited.limits.clone();
    let third = Case {
        spec: partly,
        config: RenderConfig {
            controllers: Controllers::from_cgroup_controllers("cpuset cpu io"),
            ..plain
        },
        extra: vec![pair("--cpus=1.5", "")],
    };
    Ok(vec![first, second, third])
}

/// Runs the generator on `units`; returns the generated services by file name.
fn generate(units: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let out = Command::new(GENERATOR)
        .args(["--user", "--dryrun"])
        .env("QUADLET_UNIT_DIRS", units)
        .output()
        .with_context(|| format!("running {GENERATOR}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // In dry-run mode the generator also logs debug lines ("Loading source unit file …") to
    // stderr; only warnings and errors fail the check.
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|line| {
            let lower = line.to_lowercase();
            [
                "warn",
                "error",
                "unsupported",
                "invalid",
                "failed",
                "converting",
            ]
            .iter()
            .any(|word| lower.contains(word))
        })
        .collect();
    ensure!(
        out.status.success() && complaints.is_empty(),
        "the generator complained ({}):\n{}\n--- full stderr:\n{stderr}",
        out.status,
        complaints.join("\n")
    );

    // Dry-run output: `---name.service---` followed by the file.
    let mut services = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in stdout.lines() {
        if let Some(name) = line
            .strip_prefix("---")
            .and_then(|l| l.strip_suffix("---"))
            .filter(|n| n.ends_with(".service"))
        {
            services.extend(current.take());
            current = Some((name.to_owned(), String::new()));
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    services.extend(current);
    Ok(services)
}

/// systemd's own checks of the session's socket unit, beside the service Quadlet generated for
/// it: it loads without a complaint, and its service is the session's.
fn verify_socket(
    dir: &Path,
    spec: &SessionSpec,
    services: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let names = render::SessionNames::new(&spec.id);
    let service = services
        .get(&names.service)
        .with_context(|| format!("no {} generated", names.service))?;
    std::fs::write(dir.join(&names.service), service)?;
    let out = Command::new("systemd-analyze")
        .args(["--user", "verify"])
        .arg(dir.join(&names.socket_unit))
        .current_dir(dir)
        .output()
        .context("running systemd-analyze verify")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains(&names.socket_unit))
        .collect();
    ensure!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify {} ({}):\n{stderr}",
        names.socket_unit,
        out.status
    );
    Ok(())
}

fn check_case(
    case: &Case,
    templates: &Path,
    services: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let spec = &case.spec;
    let names = render::SessionNames::new(&spec.id);
    let service = services
        .get(&names.service)
        .with_context(|| format!("no {} generated; got {:?}", names.service, services.keys()))?;
    let volume_service = services
        .get(&names.volume_service)
        .with_context(|| format!("no {} generated", names.volume_service))?;

    let exec = exec_start(service)?;
    let template_dir = templates.join(&spec.template);
    let health = &case.config.health;
    let mut expected: Vec<(String, String)> = vec![
        ("--name".into(), names.container.clone()),
        ("--userns".into(), "auto".into()),
        ("--pull".into(), "never".into()),
        ("--sdnotify=healthy".into(), String::new()),
        ("--security-opt=no-new-privileges".into(), String::new()),
        ("--cap-drop".into(), "all".into()),
        (
            "--network".into(),
            format!("pasta:{}", render::PASTA.join(",")),
        ),
        ("-v".into(), format!("{}:/home/dev:U", names.volume)),
        (
            "-v".into(),
            format!("{}:/etc/octo/template:ro", template_dir.display()),
        ),
        (
            "--secret".into(),
            format!(
                "{},type=mount,target={},mode=0400,uid=1000,gid=1000",
                names.token_secret,
                render::TOKEN_FILE
            ),
        ),
        ("--env".into(), format!("OCTO_SESSION_ID={}", spec.id)),
        ("--label".into(), format!("octo.session={}", spec.id)),
        ("--label".into(), format!("octo.owner={}", spec.owner)),
        ("--health-cmd".into(), health.cmd.clone()),
        ("--health-retries".into(), health.retries.to_string()),
    ];
    expected.extend(case.extra.iter().cloned());
    for (flag, value) in &expected {
        let found = exec
            .windows(2)
            .any(|w| w[0] == *flag && (value.is_empty() || w[1] == *value))
            || (value.is_empty() && exec.last() == Some(flag));
        ensure!(
            found,
            "ExecStart lacks `{flag} {value}`; it is:\n{}",
            exec.join("\n")
        );
    }
    ensure!(
        !exec
            .iter()
            .any(|a| a == "--publish" || a.starts_with("--publish=")),
        "a session publishes no port: {exec:?}"
    );
    // Without the pids controller no limit at all: crun fails on any `--pids-limit`.
    ensure!(
        case.config.controllers.pids || !exec.iter().any(|a| a == "--pids-limit"),
        "a pids limit without the pids controller: {exec:?}"
    );
    ensure!(
        exec.last().map(String::as_str) == Some(spec.image.as_str()),
        "the image is not the last argument of ExecStart: {exec:?}"
    );

    let timeout = format!("TimeoutStartSec={}s", case.config.start_timeout.as_secs());
    for line in [
        timeout.as_str(),
        "Restart=on-failure",
        "Type=notify",
        &format!("Requires={}", names.volume_service),
        &format!("Requires={}", names.socket_unit),
        &format!("After={}", names.socket_unit),
    ] {
        ensure!(
            service.lines().any(|l| l == line),
            "{} lacks {line:?}:\n{service}",
            names.service
        );
    }
    let wanted = service.lines().any(|l| l == "WantedBy=default.target");
    match spec.desired {
        DesiredState::Running => ensure!(wanted, "running session without WantedBy"),
        DesiredState::Idle | DesiredState::Stopped => {
            ensure!(!wanted, "stopped or idle session with WantedBy");
        }
    }

    let volume_exec = exec_start(volume_service)?;
    for (flag, value) in [
        ("--label", format!("octo.owner={}", spec.owner)),
        ("--label", format!("octo.session={}", spec.id)),
    ] {
        ensure!(
            volume_exec
                .windows(2)
                .any(|w| w[0] == flag && w[1] == value),
            "volume ExecStart lacks `{flag} {value}`: {volume_exec:?}"
        );
    }
    ensure!(
        volume_exec.last() == Some(&names.volume),
        "volume ExecStart does not create {}: {volume_exec:?}",
        names.volume
    );
    Ok(())
}

/// The words of the service's `ExecStart=`, as systemd reads them (quotes removed, `\`
/// escapes, `$$` and `%%` undone).
fn exec_start(service: &str) -> anyhow::Result<Vec<String>> {
    let line = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .context("no ExecStart= line")?;
    let mut words = Vec::new();
    let mut current: Option<String> = None;
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                current.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => words.extend(current.take()),
            '\\' => {
                let next = chars.next().context("trailing backslash in ExecStart")?;
                let unescaped = match next {
                    'n' => '\n',
                    't' => '\t',
                    other => other,
                };
                current.get_or_insert_with(String::new).push(unescaped);
            }
            '$' | '%' if chars.peek() == Some(&c) => {
                chars.next();
                current.get_or_insert_with(String::new).push(c);
            }
            c => current.get_or_insert_with(String::new).push(c),
        }
    }
    if quoted {
        bail!("unbalanced quotes in ExecStart: {line}");
    }
    words.extend(current);
    Ok(words)
}
