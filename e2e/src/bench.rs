//! `octo-e2e bench session-start`: create→ready through the engine against `podman run` plus
//! waiting until healthy, of the same image with the same health check, user namespace,
//! published ports and home volume, in alternating rounds. Also resume→ready. Prints medians
//! and the ratio; asserts nothing about time.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use octod::session::SessionId;

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
    Ok(())
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
