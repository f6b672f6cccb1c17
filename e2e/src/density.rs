//! `octo-e2e bench density` (as `octo`, in the benchmark's own test host: `cargo xtask bench
//! density`): issue 18's figures. Prints them; asserts nothing about time or size.
//!
//! 1. N = 1, 5 and 10 idle-running sessions of the real session image through the real
//!    `octod serve`: the memory a session takes (the proportional set size of its container's
//!    processes, from `/proc/<pid>/smaps_rollup`, so that the opencode binary's pages shared
//!    between sessions count once), and how much octod's own RSS grew per session (target
//!    ≤ 100 KiB).
//! 2. One reconcile pass of the engine (the stand-in image, a store of its own) over 20
//!    sessions (2 running, 18 stopped), then over 200 (the same 2 running, 198 stopped): the
//!    median of 5 passes each. Linear or better: the pass over 200 takes at most 10× the pass
//!    over 20.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use octod::session::{DesiredState, Limits, SessionId, SessionName, SessionState};
use octod::store::NewSession;

use crate::boundary::{self, Octod, Runner};
use crate::engine::{IMAGE, engine_with, request};
use crate::util::say;

/// octod's port for this benchmark (the checks use 18484–18493, session-start 18494).
const PORT: u16 = 18_495;
const COUNTS: [usize; 3] = [1, 5, 10];
const PASSES: usize = 5;
/// How long the sessions stay idle-running before they are measured.
const IDLE: Duration = Duration::from_secs(30);
const TARGET_OCTOD_KIB: f64 = 100.0;

#[allow(clippy::cast_precision_loss)]
pub(crate) async fn run() -> anyhow::Result<()> {
    let memory = memory().await?;
    let (twenty, two_hundred) = reconcile_passes().await?;
    println!();
    println!("density: idle-running sessions of the real image, through octod serve");
    println!("  sessions   memory per session (PSS)   octod RSS growth per session");
    for (n, pss, octod) in &memory {
        println!(
            "  {n:>8}   {:>22.1} MiB   {octod:>24.1} KiB",
            *pss as f64 / 1024.0
        );
    }
    let verdict = |kib: f64| {
        if kib <= TARGET_OCTOD_KIB {
            "met"
        } else {
            "NOT met"
        }
    };
    let worst = memory.iter().map(|m| m.2).fold(f64::MIN, f64::max);
    println!(
        "  octod's growth per session, largest of the three: {worst:.1} KiB (target ≤ {TARGET_OCTOD_KIB} KiB): {}",
        verdict(worst)
    );
    // What each session past the first adds: the first one's growth also holds what octod
    // allocates once, for any number of sessions.
    if let (Some(first), Some(last)) = (memory.first(), memory.last())
        && last.0 > first.0
    {
        let added = (last.2 * last.0 as f64 - first.2 * first.0 as f64) / (last.0 - first.0) as f64;
        println!(
            "  octod's growth per added session, {} → {} sessions: {added:.1} KiB (target ≤ {TARGET_OCTOD_KIB} KiB): {}",
            first.0,
            last.0,
            verdict(added)
        );
    }
    println!(
        "density: one reconcile pass (median of {PASSES}), 2 sessions running, the rest stopped"
    );
    println!(
        "  20 sessions    {twenty:>10.2?}   ({:.2?} per session)",
        twenty / 20
    );
    println!(
        "  200 sessions   {two_hundred:>10.2?}   ({:.2?} per session)",
        two_hundred / 200
    );
    let ratio = two_hundred.as_secs_f64() / twenty.as_secs_f64();
    println!(
        "  ratio 200/20   {ratio:>10.2}   (linear is 10; target ≤ 10: {})",
        if ratio <= 10.0 { "met" } else { "NOT met" }
    );
    Ok(())
}

/// Part 1: (N, memory per session in KiB, octod's RSS growth per session in KiB).
async fn memory() -> anyhow::Result<Vec<(usize, u64, f64)>> {
    let dir = boundary::fresh_dir("e2e-bench-density")?;
    let octod = Octod::start_with(
        Runner::Octo,
        PORT,
        &dir,
        "idle_timeout_minutes = 0\nmax_per_user = 10\n",
    )
    .await?;
    let client = octod.register_admin()?;
    let pid = octod.pid();
    // One session made, left idle-running as the measured ones are, and deleted first:
    // octod's one-time allocations (the image check, connection pools, the clients of the
    // idle pass's questions to a session, the allocator's arenas) are not a session's.
    let warm = boundary::create(&client).await?;
    tokio::time::sleep(IDLE).await;
    let deleted = client.call("DELETE", &format!("/api/sessions/{warm}"), None)?;
    crate::api::expect(&deleted, 204, "delete the warm-up session")?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let base = rss_kib(pid)?;
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for n in COUNTS {
        while ids.len() < n {
            ids.push(boundary::create(&client).await?);
        }
        // Idle: nothing asks them anything for a while (opencode settles after its start).
        tokio::time::sleep(IDLE).await;
        let mut pss = 0;
        for id in &ids {
            pss += container_pss_kib(&format!("octo-{id}"))?;
        }
        let rss = rss_kib(pid)?;
        #[allow(clippy::cast_precision_loss)]
        let growth = (rss as f64 - base as f64) / n as f64;
        let per = pss / n as u64;
        say(format!(
            "{n} idle-running sessions: {per} KiB each (PSS); octod {rss} KiB RSS ({growth:.1} KiB per session over {base} KiB)"
        ));
        out.push((n, per, growth));
    }
    for id in &ids {
        let _ = client.call("DELETE", &format!("/api/sessions/{id}"), None);
    }
    octod.stop()?;
    Ok(out)
}

/// Part 2: the median pass over 20 sessions and over 200.
async fn reconcile_passes() -> anyhow::Result<(Duration, Duration)> {
    let engine = engine_with(IMAGE).await?;
    let id = |i: usize| format!("dens{i:03}").parse::<SessionId>();
    let first: Vec<SessionId> = (0..20).map(id).collect::<Result<_, _>>()?;
    let creates = first.iter().map(|id| engine.create(request(id.as_str())));
    for created in futures_util::future::join_all(creates).await {
        created.map_err(|e| anyhow!("creating a session: {e}"))?;
    }
    for id in &first[2..] {
        engine
            .stop(id)
            .await
            .map_err(|e| anyhow!("stopping {id}: {e}"))?;
    }
    let twenty = passes(&engine).await?;
    // 180 more, stopped: records as a create leaves them, stopped; a first (unmeasured) pass
    // writes their units.
    let store = engine.store();
    for i in 20..200 {
        let id = id(i)?;
        store.create_session(NewSession {
            id: id.clone(),
            owner: "alice".into(),
            template: "coding-copilot".into(),
            name: SessionName::parse("Coding Copilot").map_err(|e| anyhow!("{e}"))?,
            image: IMAGE.into(),
            limits: Limits::default(),
            desired: DesiredState::Stopped,
            max_per_owner: None,
            admit: None,
        })?;
        store.set_state(&id, SessionState::Stopped)?;
    }
    let first_pass = engine.reconcile().await;
    say(format!(
        "200 sessions: the first pass wrote units for {}",
        first_pass.rewritten.len()
    ));
    let two_hundred = passes(&engine).await?;
    Ok((twenty, two_hundred))
}

/// The median of [`PASSES`] reconcile passes.
async fn passes(engine: &octod::engine::Engine) -> anyhow::Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..PASSES {
        let started = Instant::now();
        let report = engine.reconcile().await;
        times.push(started.elapsed());
        if !report.errors.is_empty() {
            say(format!("the pass reported: {:?}", report.errors));
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    say(format!(
        "reconcile passes: {times:.2?}, median {median:.2?}"
    ));
    Ok(median)
}

/// A process's resident set (`VmRSS`), KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    field_kib(&status, "VmRSS:").with_context(|| format!("no VmRSS for {pid}"))
}

/// The proportional set size of a container's processes, summed, KiB (each process's
/// `VmRSS` where its `smaps_rollup` cannot be read).
fn container_pss_kib(container: &str) -> anyhow::Result<u64> {
    let listed = std::process::Command::new("podman")
        .args(["top", container, "hpid"])
        .output()
        .context("podman top")?;
    anyhow::ensure!(
        listed.status.success(),
        "podman top {container}: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let mut total = 0;
    for pid in String::from_utf8_lossy(&listed.stdout)
        .lines()
        .skip(1)
        .filter_map(|line| line.trim().parse::<u32>().ok())
    {
        let pss = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .ok()
            .and_then(|text| field_kib(&text, "Pss:"));
        total += match pss {
            Some(kib) => kib,
            None => rss_kib(pid).unwrap_or(0),
        };
    }
    Ok(total)
}

fn field_kib(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}
