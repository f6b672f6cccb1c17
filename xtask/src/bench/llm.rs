//! `cargo xtask bench llm`: streaming through Octo's model gateway against straight to the same
//! provider (issue 15): the time to the first token and the tokens per second, side by side in
//! one run, with the ratio.
//!
//! The path measured is a session's whole path to the model outside the container: a client
//! (as opencode) speaks HTTP to the session gateway's loopback bridge (the real
//! `octo-fileserver` with `--llm-listen`/`--llm-socket`), which relays each connection to the
//! session's Unix socket, where octod's gateway (`octod::llm`, as `octod serve` runs it, with a
//! real redb store recording usage) checks the request, adds the key and forwards it to the
//! provider, passing the stream back chunk by chunk. The provider is a stub
//! (`octod/examples/bench_llm.rs`) that streams one token per chunk, paced like a fast model
//! (2 ms a token) and unpaced (as fast as the sockets take it: the ceiling of each path).
//! Requests alternate between the two paths, round after round, so noise falls on both.
//!
//! The working files live in `<target>/bench-llm/`.

use std::fs;
use std::process::Command;

use anyhow::{Context as _, ensure};

use super::proxy::{Server, free_addr};
use crate::util::{cargo, output, run as run_cmd, step, target_dir};

/// (label, tokens per request, microseconds between tokens, rounds)
const SCENARIOS: [(&str, u32, u32, u32); 2] = [
    ("paced, 2 ms a token", 250, 2_000, 20),
    ("unpaced", 20_000, 0, 10),
];
const FIRST_TOKEN_TARGET_US: f64 = 2_000.0;
const THROUGHPUT_TARGET: f64 = 0.95;

pub(crate) fn run() -> anyhow::Result<()> {
    let work = target_dir().join("bench-llm");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(work.join("root"))
        .with_context(|| format!("creating {}", work.display()))?;

    step("building octo-fileserver and the model gateway harness (release)");
    run_cmd(&mut cargo([
        "build",
        "--release",
        "--quiet",
        "-p",
        "octo-fileserver",
    ]))?;
    run_cmd(&mut cargo([
        "build",
        "--release",
        "--quiet",
        "-p",
        "octod",
        "--example",
        "bench_llm",
    ]))?;
    let fileserver = target_dir().join("release/octo-fileserver");
    let harness = target_dir().join("release/examples/bench_llm");
    for binary in [&fileserver, &harness] {
        ensure!(binary.is_file(), "{} was not built", binary.display());
    }

    step("starting the stub provider, octod's model gateway and the session gateway's bridge");
    let provider_addr = free_addr()?;
    let _provider = Server::start(
        Command::new(&harness)
            .arg("provider")
            .arg(provider_addr.to_string()),
        provider_addr,
        &work.join("provider.log"),
    )?;
    let state = work.join("state");
    let socket = state.join("llm/bench1/llm.sock");
    let _gateway = Server::start_unix(
        Command::new(&harness)
            .arg("gateway")
            .arg(&state)
            .arg(format!("http://{provider_addr}"))
            .env("RUST_LOG", "warn"),
        &socket,
        &work.join("gateway.log"),
    )?;
    let files_addr = free_addr()?;
    let bridge_addr = free_addr()?;
    let _session_gateway = Server::start(
        Command::new(&fileserver)
            .arg("--listen")
            .arg(files_addr.to_string())
            .arg("--root")
            .arg(work.join("root"))
            .arg("--llm-socket")
            .arg(&socket)
            .arg("--llm-listen")
            .arg(bridge_addr.to_string())
            .env("OCTO_SESSION_TOKEN", "bench-token")
            .env("RUST_LOG", "warn"),
        files_addr,
        &work.join("octo-fileserver.log"),
    )?;
    wait_for(&bridge_addr)?;

    let direct = format!("direct=http://{provider_addr}");
    let through = format!("gateway=http://{bridge_addr}");
    println!();
    println!(
        "{:<22} {:>14} {:>14} {:>12} {:>14} {:>14} {:>8}",
        "", "first direct", "first octo", "overhead", "tok/s direct", "tok/s octo", "ratio"
    );
    let mut lines = Vec::new();
    for (label, tokens, interval, rounds) in SCENARIOS {
        step(format!(
            "{label}: {rounds} rounds of {tokens} tokens each way"
        ));
        let printed = output(
            Command::new(&harness)
                .arg("measure")
                .arg(rounds.to_string())
                .arg(tokens.to_string())
                .arg(interval.to_string())
                .arg(&direct)
                .arg(&through),
        )?;
        let (direct, octo) = parse(&printed)?;
        let overhead = octo.0 - direct.0;
        let ratio = octo.1 / direct.1;
        let line = format!(
            "{label:<22} {:>11.0} µs {:>11.0} µs {:>9.0} µs {:>14.0} {:>14.0} {:>7.3}×",
            direct.0, octo.0, overhead, direct.1, octo.1, ratio
        );
        lines.push((label, overhead, ratio));
        println!("{line}");
    }
    println!();
    // The targets are about a model's stream: the paced scenario. The unpaced one shows how
    // far each path goes when nothing else limits it (a ceiling far above any model's rate).
    if let Some((label, overhead, ratio)) = lines.first() {
        println!(
            "{label}: first-token overhead {overhead:.0} µs (target ≤ {FIRST_TOKEN_TARGET_US:.0} µs: {}), throughput {ratio:.3}× (target ≥ {THROUGHPUT_TARGET}×: {})",
            if *overhead <= FIRST_TOKEN_TARGET_US {
                "met"
            } else {
                "missed"
            },
            if *ratio >= THROUGHPUT_TARGET {
                "met"
            } else {
                "missed"
            },
        );
    }
    if let Some((label, _, ratio)) = lines.get(1) {
        println!(
            "{label}: the ceiling of each path, {ratio:.3}× (no target: no model streams this fast)"
        );
    }
    println!(
        "(medians; the gateway's usage records are in {})",
        state.join("octod.redb").display()
    );
    Ok(())
}

/// The bridge binds after the file API; wait until it accepts too.
fn wait_for(addr: &std::net::SocketAddr) -> anyhow::Result<()> {
    for _ in 0..500 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    anyhow::bail!("the model gateway bridge did not listen on {addr}")
}

/// `(first token µs, tokens/s)` of the direct and the gateway lines of `measure`.
fn parse(printed: &str) -> anyhow::Result<((f64, f64), (f64, f64))> {
    let line = |label: &str| -> anyhow::Result<(f64, f64)> {
        let fields: Vec<&str> = printed
            .lines()
            .find(|l| l.starts_with(&format!("{label} ")))
            .with_context(|| format!("no `{label}` line in: {printed}"))?
            .split_whitespace()
            .collect();
        ensure!(fields.len() == 3, "malformed line from measure: {fields:?}");
        Ok((fields[1].parse()?, fields[2].parse()?))
    };
    Ok((line("direct")?, line("gateway")?))
}
