//! `octo-e2e bench session-start`: create→ready through the engine against `podman run` plus
//! waiting until healthy, of the same image with the same health check, user namespace,
//! published ports and home volume, in alternating rounds. Also resume→ready. Prints medians
//! and the ratio; asserts nothing about time.
//!
//! With the real session image present (`cargo xtask testhost image`), also through the real
//! `octod serve` (issue 13): wake on access (the first byte of a request on an idle-stopped
//! session's socket) against `podman start` + healthy of the same container, and the time
//! until the file list and the terminal answer after a create against the time until
//! opencode does.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use octod::session::SessionId;

use crate::api::{self, Client};
use crate::boundary::{self, Octod, Runner};
use crate::engine::{IMAGE, engine_with, health_cmd, request};
use crate::util::{self, say};

pub(crate) async fn session_start(rounds: u32) -> anyhow::Result<()> {
    let engine = engine_with(IMAGE).await?;
    let systemd = octod::systemd::Systemd::connect_user().await?;
    let (mut create, mut resume, mut podman, mut quadlet) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // One unmeasured round of each warms caches (image layers, the generator, pasta).
    for round in 0..=rounds {
        let id: SessionId = format!("bench{round}").parse()?;
        let started = Instant::now();
        engine
            .create(request(id.as_str()))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let created = started.elapsed();
        engine.stop(&id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let started = Instant::now();
        engine
            .resume(&id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let resumed = started.elapsed();
        // The same unit started by systemd alone: Quadlet's `podman run --sdnotify=healthy`
        // under a start job, without anything of the engine.
        let unit = octod::render::SessionNames::new(&id).service;
        systemd.stop(&unit, Duration::from_secs(60)).await?;
        let started = Instant::now();
        systemd.start(&unit, Duration::from_secs(120)).await?;
        let unit_only = started.elapsed();
        engine
            .delete(&id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;

        let anchor = podman_run_until_healthy(round)?;
        if round > 0 {
            create.push(created);
            resume.push(resumed);
            podman.push(anchor);
            quadlet.push(unit_only);
            say(format!(
                "round {round}: engine create→ready {created:.2?}, resume→ready {resumed:.2?}; \
                 unit start alone {unit_only:.2?}; podman run→healthy {anchor:.2?}"
            ));
        }
    }
    let (c, r, p) = (
        median(&mut create),
        median(&mut resume),
        median(&mut podman),
    );
    let q = median(&mut quadlet);
    println!();
    println!("session-start ({rounds} rounds, medians)");
    println!("  engine create→ready     {c:>10.2?}");
    println!("  podman run→healthy      {p:>10.2?}   (anchor)");
    println!(
        "  ratio engine/podman     {:>10.2}   (target ≤ 1.2)",
        c.as_secs_f64() / p.as_secs_f64()
    );
    println!("  engine resume→ready     {r:>10.2?}");
    println!("  unit start, no engine   {q:>10.2?}   (systemd start job of the same Quadlet unit)");
    println!(
        "  engine's own share      {:>10.2?}   (create − unit start: store, secret, files, reload, D-Bus, volume unit)",
        c.saturating_sub(q)
    );
    if Command::new("podman")
        .args(["image", "exists", REAL_IMAGE])
        .status()
        .is_ok_and(|s| s.success())
    {
        through_octod(rounds).await
    } else {
        println!(
            "  wake on access, time to files/terminal: SKIPPED (no {REAL_IMAGE}: `cargo xtask testhost image`)"
        );
        Ok(())
    }
}

/// The real session image (octod's default).
const REAL_IMAGE: &str = "localhost/octo-session:latest";
/// octod's port for the benchmark (the checks use 18484–18493).
const BENCH_PORT: u16 = 18_494;

/// The parts measured through the real `octod serve` and the real image.
async fn through_octod(rounds: u32) -> anyhow::Result<()> {
    let runner = Runner::Octo;
    let dir = boundary::fresh_dir("e2e-bench-octod")?;
    let octod = Octod::start(runner, BENCH_PORT, &dir, 0).await?;
    let client = octod.register_admin()?;
    let (mut files, mut terminal, mut opencode) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=rounds.min(5) {
        let (f, t, o) = first_answers(&client).await?;
        if round > 0 {
            say(format!(
                "round {round}: after create: files {f:.2?}, terminal {t:.2?}, opencode {o:.2?}"
            ));
            files.push(f);
            terminal.push(t);
            opencode.push(o);
        }
    }
    let id = boundary::create(&client).await?;
    // octod's reconciler would start a session stopped behind its back: measure without it.
    octod.stop()?;
    let wake = wake_rounds(runner, &id, rounds);
    let octod = Octod::start(runner, BENCH_PORT, &dir, 0).await?;
    let deleted = client.call("DELETE", &format!("/api/sessions/{id}"), None)?;
    api::expect(&deleted, 204, "delete")?;
    octod.stop()?;
    let (mut woken, mut started) = wake?;
    let (f, t, o) = (
        median(&mut files),
        median(&mut terminal),
        median(&mut opencode),
    );
    let (wake, anchor) = (median(&mut woken), median(&mut started));
    println!();
    println!(
        "through octod, the real session image ({} rounds, medians)",
        woken.len()
    );
    println!(
        "  wake on access          {wake:>10.2?}   (first byte of a request on an idle-stopped session's socket)"
    );
    println!("  podman start→healthy    {anchor:>10.2?}   (anchor: the same container)");
    println!(
        "  ratio wake/podman       {:>10.2}   (target ≤ 1.2)",
        wake.as_secs_f64() / anchor.as_secs_f64()
    );
    println!("  create → file list      {f:>10.2?}");
    println!("  create → terminal       {t:>10.2?}");
    println!("  create → opencode       {o:>10.2?}   (files and terminal must come well before)");
    Ok(())
}

/// Creates a session through octod and measures from the create request until the file
/// list, the terminal and opencode each answer through the proxy; deletes it.
async fn first_answers(client: &Client) -> anyhow::Result<(Duration, Duration, Duration)> {
    let started = Instant::now();
    let answer = client.call(
        "POST",
        "/api/sessions",
        Some(r#"{"template":"coding-copilot"}"#),
    )?;
    anyhow::ensure!(
        matches!(answer.status, 201 | 202),
        "create: {} {}",
        answer.status,
        answer.body
    );
    let id = answer.json()?["id"]
        .as_str()
        .context("session id")?
        .to_owned();
    let poll = |path: String| {
        let (port, cookie, origin) = (client.port, client.cookie.clone(), client.origin());
        tokio::task::spawn_blocking(move || -> anyhow::Result<Duration> {
            loop {
                let answer = util::request(
                    port,
                    "GET",
                    &path,
                    &[("Cookie", &cookie), ("Origin", &origin)],
                    None,
                );
                if answer.is_ok_and(|a| a.status == 200) {
                    return Ok(started.elapsed());
                }
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(180),
                    "{path}: no 200 within 180 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let files = poll(format!("/sessions/{id}/files/api/list?path="));
    let opencode = poll(format!("/sessions/{id}/opencode/global/health"));
    let url = format!("ws://127.0.0.1:{}/sessions/{id}/terminal", client.port);
    let origin = client.origin();
    let terminal = util::eventually(Duration::from_secs(180), "the terminal", async || {
        crate::image::terminal_at(
            &url,
            &[
                ("Cookie", client.cookie.as_str()),
                ("Origin", origin.as_str()),
            ],
            "the browser does not know the session token",
            &["echo $((6*7))"],
            "42",
        )
        .await?;
        Ok(started.elapsed())
    })
    .await?;
    let files = files.await??;
    let opencode = opencode.await??;
    let deleted = client.call("DELETE", &format!("/api/sessions/{id}"), None)?;
    api::expect(&deleted, 204, "delete")?;
    Ok((files, terminal, opencode))
}

/// Alternating rounds: the session's service stopped (its socket listening, as after an idle
/// stop), then the first byte of a request on the socket; and the anchor container started
/// with `podman start` until healthy.
fn wake_rounds(
    runner: Runner,
    id: &str,
    rounds: u32,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let (uid, _) = boundary::octo_user()?;
    let socket = boundary::socket_path(uid, id);
    let service = format!("octo-{id}.service");
    let bearer = format!("Bearer {}", runner.token(id)?);
    let anchor = anchor_from_unit(runner, &service)?;
    let (mut woken, mut started) = (Vec::new(), Vec::new());
    for round in 0..=rounds {
        runner.output(&["systemctl", "--user", "stop", &service])?;
        let t0 = Instant::now();
        let mut stream = std::os::unix::net::UnixStream::connect(&socket)
            .with_context(|| format!("connecting to {}", socket.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        std::io::Write::write_all(
            &mut stream,
            format!("GET /api/list?path= HTTP/1.1\r\nHost: session\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n").as_bytes(),
        )?;
        let mut first = [0_u8; 1];
        std::io::Read::read_exact(&mut stream, &mut first)
            .context("the woken session's first byte")?;
        let wake = t0.elapsed();
        drop(stream);
        runner.output(&["systemctl", "--user", "stop", &service])?;
        let t0 = Instant::now();
        runner.output(&["podman", "start", &anchor])?;
        runner.output(&[
            "podman",
            "wait",
            "--condition=healthy",
            "--interval=50ms",
            &anchor,
        ])?;
        let anchor_time = t0.elapsed();
        runner.output(&["podman", "stop", "-t", "10", &anchor])?;
        if round > 0 {
            say(format!(
                "round {round}: wake on access {wake:.2?}; podman start→healthy {anchor_time:.2?}"
            ));
            woken.push(wake);
            started.push(anchor_time);
        }
    }
    runner.output(&["podman", "rm", "-f", "-t", "0", &anchor])?;
    Ok((woken, started))
}

/// The anchor: a container created with the session unit's own `podman run` arguments (its
/// image, user namespace, secret, home volume, health check), minus what only systemd's
/// start job uses; named `<session>-anchor`.
fn anchor_from_unit(runner: Runner, service: &str) -> anyhow::Result<String> {
    let exec = runner.output(&[
        "systemctl",
        "--user",
        "show",
        "-p",
        "ExecStart",
        "--value",
        service,
    ])?;
    let argv = exec
        .split("argv[]=")
        .nth(1)
        .and_then(|rest| rest.split(" ;").next())
        .context("no argv in the unit's ExecStart")?;
    let name = format!("{}-anchor", service.trim_end_matches(".service"));
    let _ = runner.output(&["podman", "rm", "-f", "-t", "0", &name]);
    let mut args = vec![
        "podman".to_owned(),
        "create".to_owned(),
        "--name".to_owned(),
        name.clone(),
    ];
    let mut words = argv.split_whitespace().skip(2).peekable();
    while let Some(word) = words.next() {
        if word == "--name" {
            words.next();
            continue;
        }
        let systemd_only = word.contains('%')
            || [
                "--cidfile",
                "--replace",
                "--rm",
                "--sdnotify",
                "--cgroups",
                "--name=",
            ]
            .iter()
            .any(|p| word.starts_with(p))
            || word == "-d";
        if !systemd_only {
            args.push(word.to_owned());
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    runner
        .output(&args)
        .context("creating the anchor container from the session unit's arguments")?;
    Ok(name)
}

/// The anchor: what a bare `podman run` of the same container needs to be usable.
fn podman_run_until_healthy(round: u32) -> anyhow::Result<Duration> {
    let name = format!("anchor{round}");
    let base = 21_500 + u16::try_from(round)? * 3;
    let started = Instant::now();
    util::run(Command::new("podman").args([
        "run",
        "-d",
        "--name",
        &name,
        "--userns=auto",
        "--cap-drop=all",
        "--security-opt=no-new-privileges",
        "-p",
        &format!("127.0.0.1:{base}:41820"),
        "-p",
        &format!("127.0.0.1:{}:41821", base + 1),
        "-p",
        &format!("127.0.0.1:{}:41822", base + 2),
        "-v",
        &format!("{name}:/home/dev:U"),
        "--health-cmd",
        &health_cmd(),
        "--health-interval=1s",
        "--health-start-period=5s",
        IMAGE,
    ]))
    .context("podman run of the anchor")?;
    util::run(Command::new("podman").args([
        "wait",
        "--condition=healthy",
        "--interval=50ms",
        &name,
    ]))?;
    let elapsed = started.elapsed();
    util::run(Command::new("podman").args(["rm", "-f", "-t", "0", &name]))?;
    util::run(Command::new("podman").args(["volume", "rm", "-f", &name]))?;
    Ok(elapsed)
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}
