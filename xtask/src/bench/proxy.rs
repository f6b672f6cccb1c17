//! `cargo xtask bench proxy`: octod's proxy to a session's gateway over its Unix socket,
//! against the same proxy over TCP (the path before sessions had sockets) and against
//! Caddy's `reverse_proxy` to the same socket.
//!
//! Everything runs on the host in one run. The proxy side is `octod/examples/bench_proxy.rs`
//! (`octod::proxy` routes with an always-admin user and sessions that all resolve to the
//! same gateway socket; its `tcp` mode sends HTTP to a TCP address instead); the anchor is
//! Caddy with `handle_path` + `reverse_proxy unix//…` on the same paths, adding the same
//! `Authorization` header. The upstream is octo-fileserver as the session gateway, twice
//! from the same root: on a Unix socket (with `/terminal` relayed to the echo's socket) and
//! on 127.0.0.1 (octod's TCP mode and "direct"):
//!
//! - HTTP: `/api/download` of a tiny file and of 1 MiB, driven by wrk, rounds interleaved
//!   (octod over the socket, octod over TCP, Caddy, direct); median requests/s and p99
//!   latency. Also `/health` (a small body written at once): the download's headers and body
//!   leave the gateway in two writes, and a proxy passes them on as two, which any hop without
//!   `TCP_NODELAY` holds for a delayed ACK (~40 ms; the harness once served octod's side
//!   without it, and the small download measured that, not the proxies). With each run, the
//!   CPU time (user + system) the proxy process spent per request, from `/proc/<pid>/stat`
//!   (for "direct", the gateway's own): unlike requests/s and p99 it hardly moves when
//!   something else loads the machine, so it shows what each proxy costs;
//! - WebSocket: a ttyd-like echo (subprotocol `tty`) behind the gateway's `/terminal`, small
//!   messages one at a time; median round trip direct (to the echo), via octod and via Caddy
//!   (both through the gateway), interleaved in one client;
//! - memory: a fresh proxy process of each with 1,000 proxied WebSockets open (`VmRSS`);
//! - previews (issue 14): a small static page of an app (the harness's `app`) through Caddy →
//!   octod's preview relay → the gateway → the app, against Caddy straight to the same app
//!   (the anchor; target ≥ 0.8×), with octod → gateway → app and the app itself beside them;
//!   wrk, rounds interleaved, median requests/s and p99. As in the package, Caddy reaches
//!   octod on its Unix socket (`/run/octod/http.sock` there; its own harness process here)
//!   with the content site's `flush_interval -1`; the anchor is the same `reverse_proxy`
//!   with the app's address in place of octod's socket. Caddy straight to the app with
//!   `reverse_proxy`'s defaults (buffered flushing) is shown beside it. octod reaches the app
//!   over a tunnel of the gateway (its first request, while the gateway is asked whether it
//!   has tunnels, over the gateway's relay), as octod does with a session of this image.
//!
//! The working files live in `<target>/bench-proxy/`.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use crate::util::{cargo, output, run as run_cmd, step, target_dir};

const TOKEN: &str = "bench-token";
const SESSION: &str = "bench1";
const MIB: usize = 1 << 20;
const SMALL: &str = "hello from octo-fileserver\n";
const WRK_SECONDS: u32 = 5;
const WRK_ROUNDS: usize = 3;
const RTT_MESSAGES: usize = 5_000;
const SOCKETS: usize = 1_000;
const RSS_TARGET_KIB: u64 = 64 * 1024;
const RTT_TARGET_US: f64 = 100.0;
/// Open files each process may need: 1,000 sockets per side of the proxy, and some.
const NOFILE: u64 = 8_192;

pub(crate) fn run() -> anyhow::Result<()> {
    let work = target_dir().join("bench-proxy");
    let files = work.join("files");
    fs::create_dir_all(&files).with_context(|| format!("creating {}", files.display()))?;

    step("building octo-fileserver and the proxy harness (release)");
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
        "bench_proxy",
    ]))?;
    let fileserver = target_dir().join("release/octo-fileserver");
    let harness = target_dir().join("release/examples/bench_proxy");
    for binary in [&fileserver, &harness] {
        ensure!(binary.is_file(), "{} was not built", binary.display());
    }
    let caddy = which("caddy").context("Caddy is the anchor: install Debian's `caddy` package")?;
    let wrk = which("wrk").context("the HTTP load comes from wrk: install Debian's `wrk`")?;
    which("curl").context("the checks use curl: install `curl`")?;
    let caddy_version = output(Command::new(&caddy).arg("version"))?;
    let caddy_version = caddy_version
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned();

    fs::write(files.join("small.txt"), SMALL)?;
    let mib: Vec<u8> = (0..MIB).flat_map(|i| u8::try_from(i * 31 % 251)).collect();
    fs::write(files.join("mib.bin"), &mib)?;

    step("starting the echo, the gateway (Unix socket and TCP), octod's proxy and caddy");
    let echo_socket = work.join("echo.sock");
    let gateway = work.join("gateway.sock");
    for socket in [&echo_socket, &gateway] {
        let _ = fs::remove_file(socket);
    }
    let echo_addr = free_addr()?;
    let echo = Server::start(
        Command::new(&harness)
            .arg("echo")
            .arg(echo_addr.to_string())
            .arg(&echo_socket),
        echo_addr,
        &work.join("echo.log"),
    )?;
    let upstream_unix = Server::start_unix(
        Command::new(&fileserver)
            .arg("--listen")
            .arg(format!("unix:{}", gateway.display()))
            .arg("--terminal-socket")
            .arg(&echo_socket)
            .arg("--root")
            .arg(&files)
            .env("OCTO_SESSION_TOKEN", TOKEN)
            .env("RUST_LOG", "warn"),
        &gateway,
        &work.join("octo-fileserver-unix.log"),
    )?;
    let files_addr = free_addr()?;
    let upstream = Server::start(
        Command::new(&fileserver)
            .arg("--listen")
            .arg(files_addr.to_string())
            .arg("--root")
            .arg(&files)
            .env("OCTO_SESSION_TOKEN", TOKEN)
            .env("RUST_LOG", "warn"),
        files_addr,
        &work.join("octo-fileserver.log"),
    )?;
    let app_addr = free_addr()?;
    let app = Server::start(
        Command::new(&harness).arg("app").arg(app_addr.to_string()),
        app_addr,
        &work.join("app.log"),
    )?;
    let octo = start_octo(&harness, &work, &gateway, None)?;
    let octo_tcp = start_octo(&harness, &work, &gateway, Some(files_addr))?;
    // octod as Caddy reaches it in the package: on a Unix socket.
    let octo_socket = work.join("octod-http.sock");
    let octo_unix = Server::start_unix(
        Command::new(&harness)
            .arg("proxy")
            .arg(format!("unix:{}", octo_socket.display()))
            .arg(&gateway)
            .arg(TOKEN),
        &octo_socket,
        &work.join("octod-proxy-unix.log"),
    )?;
    let anchor = start_caddy(
        &caddy,
        &work,
        &gateway,
        Some((octo_socket.as_path(), app_addr)),
    )?;

    // (label, address, path prefix, extra header, the process whose CPU time counts)
    let targets = [
        (
            "octod",
            octo.addr,
            format!("/sessions/{SESSION}/files"),
            None,
            octo.pid(),
        ),
        (
            "octod/tcp",
            octo_tcp.addr,
            format!("/sessions/{SESSION}/files"),
            None,
            octo_tcp.pid(),
        ),
        (
            "caddy",
            anchor.addr,
            format!("/sessions/{SESSION}/files"),
            None,
            anchor.pid(),
        ),
        (
            "direct",
            files_addr,
            String::new(),
            Some(format!("Authorization: Bearer {TOKEN}")),
            upstream.pid(),
        ),
    ];
    // (label, path, expected size, wrk connections)
    let loads = [
        (
            "small",
            "/api/download?path=small.txt",
            Some(SMALL.len()),
            64_u32,
        ),
        ("1 MiB", "/api/download?path=mib.bin", Some(MIB), 16),
        ("/health", "/health", None, 64),
    ];
    for (_, addr, prefix, header, _) in &targets {
        for (_, path, size, _) in &loads {
            let url = format!("http://{addr}{prefix}{path}");
            check_download(&url, header.as_deref(), *size)?;
        }
    }

    step(format!(
        "HTTP with wrk: {WRK_ROUNDS} rounds of {WRK_SECONDS} s per target and size, interleaved"
    ));
    // results[load][target]: one Wrk per round.
    let mut results: Vec<Vec<Vec<Wrk>>> = loads
        .iter()
        .map(|_| targets.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..WRK_ROUNDS {
        for (li, (load, path, _, connections)) in loads.iter().enumerate() {
            for (ti, (name, addr, prefix, header, pid)) in targets.iter().enumerate() {
                let url = format!("http://{addr}{prefix}{path}");
                let before = cpu_seconds(*pid)?;
                let mut result = wrk_run(&wrk, &url, header.as_deref(), *connections)?;
                result.cpu = (cpu_seconds(*pid)? - before) / result.requests;
                eprintln!(
                    "    round {} {load:<7} {name:<9} {:>10.0} req/s  p99 {:>8.2} ms  {:>7.1} µs CPU/req",
                    round + 1,
                    result.rps,
                    result.p99 * 1e3,
                    result.cpu * 1e6
                );
                results[li][ti].push(result);
            }
        }
    }

    let processes = [
        ("caddy", anchor.pid()),
        ("octod", octo_unix.pid()),
        ("octod (TCP)", octo.pid()),
        ("gateway", upstream_unix.pid()),
        ("app", app.pid()),
    ];
    let previews = preview_rounds(&wrk, &octo, &anchor, &app, &processes)?;
    drop(octo_unix);

    step(format!(
        "WebSocket echo: {RTT_MESSAGES} sequential round trips each, direct / octod / caddy"
    ));
    let terminal = format!("/sessions/{SESSION}/terminal");
    let rtt_out = output(
        Command::new(&harness)
            .arg("rtt")
            .arg(RTT_MESSAGES.to_string())
            .arg(format!("ws://{echo_addr}/ws"))
            .arg(format!("ws://{}{terminal}", octo.addr))
            .arg(format!("ws://{}{terminal}", anchor.addr)),
    )?;
    let rtt: Vec<(f64, f64)> = rtt_out
        .lines()
        .map(|line| {
            let mut fields = line.split_whitespace().map(str::parse::<f64>);
            match (fields.next(), fields.next()) {
                (Some(Ok(median)), Some(Ok(p99))) => Ok((median / 1e3, p99 / 1e3)),
                _ => bail!("unexpected rtt output {line:?}"),
            }
        })
        .collect::<anyhow::Result<_>>()?;
    let [direct_rtt, octo_rtt, caddy_rtt] = rtt.as_slice() else {
        bail!("unexpected rtt output {rtt_out:?}");
    };
    drop(octo);
    drop(octo_tcp);
    drop(anchor);

    step(format!(
        "memory: {SOCKETS} WebSockets held open through a fresh proxy of each"
    ));
    let octo = start_octo(&harness, &work, &gateway, None)?;
    let octo_rss = rss_with_sockets(&harness, &octo, &terminal)?;
    drop(octo);
    let anchor = start_caddy(&caddy, &work, &gateway, None)?;
    let caddy_rss = rss_with_sockets(&harness, &anchor, &terminal)?;
    drop(anchor);
    drop(app);
    drop(echo);
    drop(upstream);
    drop(upstream_unix);

    println!();
    println!(
        "octod proxy (Unix socket / TCP) vs Caddy {caddy_version} reverse_proxy (Unix socket) — \
         same gateway, {} CPUs",
        cpus()
    );
    println!(
        "{:<36} {:>11} {:>11} {:>11} {:>11} {:>9} {:>9}",
        "", "octod", "octod/tcp", "caddy", "direct", "unix/tcp", "vs caddy"
    );
    for (li, (load, _, _, connections)) in loads.iter().enumerate() {
        let [o, t, c, d] = [0, 1, 2, 3].map(|ti| {
            let runs = &results[li][ti];
            (
                median(runs.iter().map(|r| r.rps).collect()),
                median(runs.iter().map(|r| r.p99).collect()),
                median(runs.iter().map(|r| r.cpu).collect()),
            )
        });
        println!(
            "{:<36} {:>11} {:>11} {:>11} {:>11} {:>8.2}× {:>8.2}×",
            format!("HTTP {load}: req/s (wrk -c{connections})"),
            format!("{:.0}", o.0),
            format!("{:.0}", t.0),
            format!("{:.0}", c.0),
            format!("{:.0}", d.0),
            o.0 / t.0,
            o.0 / c.0
        );
        println!(
            "{:<36} {:>11} {:>11} {:>11} {:>11} {:>8.2}× {:>8.2}×",
            format!("HTTP {load}: p99 latency"),
            format!("{:.2} ms", o.1 * 1e3),
            format!("{:.2} ms", t.1 * 1e3),
            format!("{:.2} ms", c.1 * 1e3),
            format!("{:.2} ms", d.1 * 1e3),
            t.1 / o.1,
            c.1 / o.1
        );
        println!(
            "{:<36} {:>11} {:>11} {:>11} {:>11} {:>8.2}× {:>8.2}×",
            format!("HTTP {load}: CPU per request"),
            format!("{:.1} µs", o.2 * 1e6),
            format!("{:.1} µs", t.2 * 1e6),
            format!("{:.1} µs", c.2 * 1e6),
            format!("{:.1} µs", d.2 * 1e6),
            t.2 / o.2,
            c.2 / o.2
        );
    }
    println!();
    println!(
        "{:<36} {:>13} {:>13} {:>13} {:>8}   target",
        "", "octod", "caddy", "direct", "ratio"
    );
    println!(
        "{:<36} {:>13} {:>13} {:>13} {:>7.2}×   ≥ 1.0× (caddy/octod)",
        "WebSocket echo: median round trip",
        format!("{:.1} µs", octo_rtt.0),
        format!("{:.1} µs", caddy_rtt.0),
        format!("{:.1} µs", direct_rtt.0),
        caddy_rtt.0 / octo_rtt.0
    );
    println!(
        "{:<36} {:>13} {:>13} {:>13} {:>8}   ≤ {RTT_TARGET_US:.0} µs (octod)",
        "WebSocket echo: median overhead",
        format!("{:.1} µs", octo_rtt.0 - direct_rtt.0),
        format!("{:.1} µs", caddy_rtt.0 - direct_rtt.0),
        "",
        ""
    );
    println!(
        "{:<36} {:>13} {:>13} {:>13} {:>7.2}×",
        "WebSocket echo: p99 round trip",
        format!("{:.1} µs", octo_rtt.1),
        format!("{:.1} µs", caddy_rtt.1),
        format!("{:.1} µs", direct_rtt.1),
        caddy_rtt.1 / octo_rtt.1
    );
    println!(
        "{:<36} {:>13} {:>13} {:>13} {:>7.2}×   ≤ 64 MiB (octod; {:.2} of it)",
        format!("RSS, {SOCKETS} WebSockets open"),
        format!("{:.1} MiB", kib_to_mib(octo_rss.with)),
        format!("{:.1} MiB", kib_to_mib(caddy_rss.with)),
        "",
        ratio(caddy_rss.with, octo_rss.with),
        ratio(octo_rss.with, RSS_TARGET_KIB)
    );
    println!(
        "{:<36} {:>13} {:>13}",
        "RSS idle (fresh process)",
        format!("{:.1} MiB", kib_to_mib(octo_rss.idle)),
        format!("{:.1} MiB", kib_to_mib(caddy_rss.idle)),
    );
    println!(
        "{:<36} {:>13} {:>13}",
        "RSS per open WebSocket",
        format!("{:.1} KiB", per_socket(&octo_rss)),
        format!("{:.1} KiB", per_socket(&caddy_rss)),
    );
    print_previews(&previews);
    println!(
        "(ratios above 1.0 mean octod over its Unix socket is better: \"unix/tcp\" against the \
         same proxy over TCP, \"vs caddy\" against Caddy; \"direct\" is the gateway on TCP \
         without a proxy, or the echo itself; medians of {WRK_ROUNDS} wrk runs of {WRK_SECONDS} s)"
    );
    println!(
        "(CPU per request: user + system time of the proxy process over a run, divided by its \
         requests; for \"direct\" the gateway's own)"
    );
    println!(
        "(HTTP /health: the upstream's small body written at once, so the row shows the proxies' \
         own cost; the small download's headers and body leave the gateway in two writes, and \
         every hop here has TCP_NODELAY, so neither waits for a delayed ACK)"
    );
    Ok(())
}

/// octod's proxy to the gateway on `gateway`, or (HTTP only) to `tcp` over TCP.
fn start_octo(
    harness: &Path,
    work: &Path,
    gateway: &Path,
    tcp: Option<SocketAddr>,
) -> anyhow::Result<Server> {
    let addr = free_addr()?;
    let mut cmd = Command::new(harness);
    cmd.arg("proxy")
        .arg(addr.to_string())
        .arg(gateway)
        .arg(TOKEN);
    if let Some(tcp) = tcp {
        cmd.arg("tcp").arg(tcp.to_string());
    }
    let log = if tcp.is_some() {
        "octod-proxy-tcp.log"
    } else {
        "octod-proxy.log"
    };
    Server::start(&mut cmd, addr, &work.join(log))
}

/// The preview targets: (label, URL) — the path through Caddy and octod first, the anchor
/// (Caddy straight to the app) second.
fn preview_targets(octo: &Server, anchor: &Server, app: &Server) -> [(&'static str, String); 5] {
    [
        ("caddy→octod→gw→app", format!("http://{}/pv/", anchor.addr)),
        ("caddy→app", format!("http://{}/app/", anchor.addr)),
        (
            "caddy→app (defaults)",
            format!("http://{}/app-defaults/", anchor.addr),
        ),
        (
            "octod→gw→app",
            format!("http://{}/preview/{}/", octo.addr, app.addr.port()),
        ),
        ("app", format!("http://{}/", app.addr)),
    ]
}

/// Per preview target: median req/s and p99 over the rounds, and the median CPU seconds per
/// request of each process in [`preview_rounds`]' list.
type PreviewResults = Vec<(&'static str, f64, f64, Vec<(&'static str, f64)>)>;

/// [`WRK_ROUNDS`] rounds over the preview targets, interleaved.
fn preview_rounds(
    wrk: &Path,
    octo: &Server,
    anchor: &Server,
    app: &Server,
    processes: &[(&'static str, u32)],
) -> anyhow::Result<PreviewResults> {
    let targets = preview_targets(octo, anchor, app);
    for (label, url) in &targets {
        let body = output(Command::new("curl").args(["-sS", "--fail", "--max-time", "10", url]))
            .with_context(|| format!("the app through {label} ({url})"))?;
        ensure!(
            body.contains("hello from the app"),
            "{label} answered {body:?}"
        );
    }
    step(format!(
        "previews with wrk: {WRK_ROUNDS} rounds of {WRK_SECONDS} s per target, interleaved"
    ));
    let mut runs: Vec<Vec<Wrk>> = targets.iter().map(|_| Vec::new()).collect();
    // cpus[target][process]: CPU seconds per request, one per round.
    let mut cpus: Vec<Vec<Vec<f64>>> = targets
        .iter()
        .map(|_| processes.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..WRK_ROUNDS {
        for (ti, (label, url)) in targets.iter().enumerate() {
            let before = processes
                .iter()
                .map(|(_, pid)| cpu_seconds(*pid))
                .collect::<anyhow::Result<Vec<f64>>>()?;
            let result = wrk_run(wrk, url, None, 64)?;
            for (pi, (_, pid)) in processes.iter().enumerate() {
                cpus[ti][pi].push((cpu_seconds(*pid)? - before[pi]) / result.requests);
            }
            eprintln!(
                "    round {} preview {label:<20} {:>10.0} req/s  p99 {:>8.2} ms",
                round + 1,
                result.rps,
                result.p99 * 1e3
            );
            runs[ti].push(result);
        }
    }
    Ok(targets
        .iter()
        .zip(runs)
        .zip(cpus)
        .map(|(((label, _), runs), cpus)| {
            (
                *label,
                median(runs.iter().map(|r| r.rps).collect()),
                median(runs.iter().map(|r| r.p99).collect()),
                processes
                    .iter()
                    .zip(cpus)
                    .map(|((name, _), cpu)| (*name, median(cpu)))
                    .collect(),
            )
        })
        .collect())
}

fn print_previews(previews: &PreviewResults) {
    let [
        (_, via_rps, via_p99, _),
        (_, anchor_rps, anchor_p99, _),
        (_, defaults_rps, defaults_p99, _),
        ..,
    ] = previews.as_slice()
    else {
        return;
    };
    println!();
    println!(
        "{:<36} {:>13} {:>13}   CPU per request (µs) of each process",
        "Preview of a small page (wrk -c64)", "req/s", "p99"
    );
    for (label, rps, p99, cpus) in previews {
        let cpu: Vec<String> = cpus
            .iter()
            .filter(|(_, seconds)| *seconds * 1e6 >= 0.5)
            .map(|(name, seconds)| format!("{name} {:.1}", seconds * 1e6))
            .collect();
        println!(
            "{:<36} {:>13} {:>13}   {}",
            label,
            format!("{rps:.0}"),
            format!("{:.2} ms", p99 * 1e3),
            cpu.join(", ")
        );
    }
    println!(
        "{:<36} {:>12.2}× {:>12.2}×   target ≥ 0.8× (req/s, caddy→octod→gw→app / caddy→app, \
         both with flush_interval -1)",
        "preview ratio",
        via_rps / anchor_rps,
        anchor_p99 / via_p99
    );
    println!(
        "{:<36} {:>12.2}× {:>12.2}×   (against caddy→app with reverse_proxy's defaults)",
        "",
        via_rps / defaults_rps,
        defaults_p99 / via_p99
    );
}

/// Caddy with the gateway's routes as octod has them and, with `previews` (octod's socket,
/// the app's address), `/pv/*` to octod's preview relay of the app's port and `/app/*`
/// straight to the app, both with the content site's `flush_interval -1`, and
/// `/app-defaults/*` to the app with `reverse_proxy`'s defaults.
fn start_caddy(
    caddy: &Path,
    work: &Path,
    gateway: &Path,
    previews: Option<(&Path, SocketAddr)>,
) -> anyhow::Result<Server> {
    let gateway = gateway.display();
    let addr = free_addr()?;
    let preview_routes = previews.map_or_else(String::new, |(octo, app)| {
        format!(
            "\thandle_path /pv/* {{
\t\trewrite * /preview/{}{{uri}}
\t\treverse_proxy unix/{} {{
\t\t\tflush_interval -1
\t\t}}
\t}}
\thandle_path /app/* {{
\t\treverse_proxy {app} {{
\t\t\tflush_interval -1
\t\t}}
\t}}
\thandle_path /app-defaults/* {{
\t\treverse_proxy {app}
\t}}
",
            app.port(),
            octo.display()
        )
    });
    let caddyfile = work.join("Caddyfile");
    fs::write(
        &caddyfile,
        format!(
            "{{
\tadmin off
\tauto_https off
}}

http://{addr} {{
\thandle_path /sessions/{SESSION}/files/* {{
\t\treverse_proxy unix/{gateway} {{
\t\t\theader_up Authorization \"Bearer {TOKEN}\"
\t\t}}
\t}}
\thandle /sessions/{SESSION}/terminal {{
\t\trewrite * /terminal
\t\treverse_proxy unix/{gateway} {{
\t\t\theader_up Authorization \"Bearer {TOKEN}\"
\t\t}}
\t}}
{preview_routes}}}
"
        ),
    )?;
    Server::start(
        Command::new(caddy)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&caddyfile)
            // Keep Caddy's autosave and storage out of the home directory.
            .env("XDG_CONFIG_HOME", work.join("caddy-config"))
            .env("XDG_DATA_HOME", work.join("caddy-data")),
        addr,
        &work.join("caddy.log"),
    )
}

struct Rss {
    idle: u64,
    with: u64,
}

/// `VmRSS` of `server` when fresh, then with [`SOCKETS`] WebSockets open through it.
fn rss_with_sockets(harness: &Path, server: &Server, path: &str) -> anyhow::Result<Rss> {
    // Let the runtime settle after start.
    std::thread::sleep(Duration::from_millis(300));
    let idle = vm_rss_kib(server.pid())?;
    let mut holder = Command::new(harness)
        .arg("hold")
        .arg(format!("ws://{}{path}", server.addr))
        .arg(SOCKETS.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the WebSocket holder")?;
    raise_nofile(holder.id())?;
    let result = wait_ready(holder.stdout.take(), &mut holder).and_then(|()| {
        // Let buffers and tasks settle before reading.
        std::thread::sleep(Duration::from_millis(500));
        vm_rss_kib(server.pid())
    });
    drop(holder.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    while holder.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = holder.kill();
            let _ = holder.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Rss {
        idle,
        with: result?,
    })
}

/// Waits (bounded) for the holder's `ready <n>` line.
fn wait_ready(stdout: Option<ChildStdout>, holder: &mut Child) -> anyhow::Result<()> {
    let stdout = stdout.context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(line) if line.trim() == format!("ready {SOCKETS}") => Ok(()),
        Ok(line) => {
            let status = holder.wait()?;
            bail!("the WebSocket holder failed ({status}): {line:?}")
        }
        Err(_) => {
            let _ = holder.kill();
            let _ = holder.wait();
            bail!("the WebSocket holder did not get {SOCKETS} sockets open in 90 s")
        }
    }
}

#[allow(clippy::cast_precision_loss)] // KiB counts are far below 2^52
fn per_socket(rss: &Rss) -> f64 {
    rss.with.saturating_sub(rss.idle) as f64 / SOCKETS as f64
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b as f64
}

#[allow(clippy::cast_precision_loss)]
fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
}

fn which(program: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .with_context(|| format!("`{program}` not found in PATH"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

pub(super) fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The open-files limits (soft, hard) this process runs with, which children inherit.
fn nofile_limits() -> anyhow::Result<(u64, Option<u64>)> {
    let limits = fs::read_to_string("/proc/self/limits")?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no open-files limit in /proc/self/limits")?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let parse = |f: Option<&str>| f.and_then(|f| f.parse::<u64>().ok());
    let soft = parse(fields.next()).unwrap_or(u64::MAX); // "unlimited"
    Ok((soft, parse(fields.next())))
}

/// Raises a child's soft open-files limit to [`NOFILE`] (within its hard limit) when the
/// inherited one is lower, with util-linux's `prlimit`.
fn raise_nofile(pid: u32) -> anyhow::Result<()> {
    let (soft, hard) = nofile_limits()?;
    if soft >= NOFILE {
        return Ok(());
    }
    let want = hard.map_or(NOFILE, |h| h.min(NOFILE));
    run_cmd(
        Command::new("prlimit")
            .arg("--pid")
            .arg(pid.to_string())
            .arg(format!("--nofile={want}:")),
    )
}

/// A process we started; killed (by its own pid) when dropped.
pub(super) struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts a server and waits until it accepts TCP connections on `addr`.
    pub(super) fn start(cmd: &mut Command, addr: SocketAddr, log: &Path) -> anyhow::Result<Server> {
        Self::start_until(cmd, addr, &addr.to_string(), log, || {
            TcpStream::connect(addr).is_ok()
        })
    }

    /// Starts a server and waits until it accepts connections on the Unix socket `path`.
    pub(super) fn start_unix(cmd: &mut Command, path: &Path, log: &Path) -> anyhow::Result<Server> {
        // Not a TCP server: its `addr` is never used.
        let unused = SocketAddr::from(([0, 0, 0, 0], 0));
        Self::start_until(cmd, unused, &path.display().to_string(), log, || {
            std::os::unix::net::UnixStream::connect(path).is_ok()
        })
    }

    fn start_until(
        cmd: &mut Command,
        addr: SocketAddr,
        on: &str,
        log: &Path,
        ready: impl Fn() -> bool,
    ) -> anyhow::Result<Server> {
        let log_file =
            fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", crate::util::display(cmd)))?;
        if let Err(error) = raise_nofile(child.id()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(error);
        }
        let start = Instant::now();
        while !ready() {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "server on {on} exited at start: {status} (see {})",
                    log.display()
                );
            }
            if start.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                let _ = child.wait();
                bail!("server on {on} did not start listening within 15 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Server { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET with curl must answer 200 (with `size` bytes when given), or the comparison means
/// nothing.
fn check_download(url: &str, header: Option<&str>, size: Option<usize>) -> anyhow::Result<()> {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download}",
    ]);
    if let Some(header) = header {
        cmd.args(["-H", header]);
    }
    let out = output(cmd.arg(url))?;
    let ok = match size {
        Some(size) => out == format!("200 {size}"),
        None => out.starts_with("200 "),
    };
    ensure!(
        ok,
        "{url}: expected status 200 and {size:?} bytes, got `{out}`"
    );
    Ok(())
}

struct Wrk {
    rps: f64,
    /// Seconds.
    p99: f64,
    requests: f64,
    /// CPU seconds per request of the process measured with this run (set by the caller).
    cpu: f64,
}

fn wrk_run(wrk: &Path, url: &str, header: Option<&str>, connections: u32) -> anyhow::Result<Wrk> {
    let mut cmd = Command::new(wrk);
    cmd.args(["-t2", "--latency", "--timeout", "5s"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{WRK_SECONDS}s"));
    if let Some(header) = header {
        cmd.args(["-H", header]);
    }
    let out = output(cmd.arg(url))?;
    for bad in ["Non-2xx or 3xx responses", "Socket errors"] {
        if let Some(line) = out.lines().find(|l| l.contains(bad)) {
            bail!("{url}: wrk reports `{}`", line.trim());
        }
    }
    let field = |prefix: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(str::trim)
            .with_context(|| format!("{url}: no `{prefix}` in wrk's output:\n{out}"))
    };
    let requests = out
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .with_context(|| format!("{url}: no request count in wrk's output:\n{out}"))?;
    Ok(Wrk {
        rps: field("Requests/sec:")?.parse()?,
        p99: seconds(field("99%")?)?,
        requests: requests.parse()?,
        cpu: f64::NAN,
    })
}

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, 100 in every Linux ABI).
const USER_HZ: f64 = 100.0;

/// CPU time (user + system, all threads, exited ones included) a process has used, in
/// seconds, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces: the state
    // is field 3, utime and stime fields 14 and 15.
    let (_, after) = stat
        .rsplit_once(')')
        .with_context(|| format!("unexpected /proc/{pid}/stat: {stat:?}"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i)
            .with_context(|| format!("short /proc/{pid}/stat: {stat:?}"))?
            .parse()?)
    };
    #[allow(clippy::cast_precision_loss)] // tick counts are far below 2^52
    Ok((ticks(11)? + ticks(12)?) as f64 / USER_HZ)
}

/// wrk's durations: `812.00us`, `1.25ms`, `1.02s`, `2.00m`.
fn seconds(value: &str) -> anyhow::Result<f64> {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {value:?}"))?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse()?;
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        _ => bail!("unknown unit in {value:?}"),
    };
    Ok(number * scale)
}

/// Resident set size of a process, from `/proc/<pid>/status`.
fn vm_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}

/// `cargo xtask bench proxy-auth`: the cost of checking a personal API token on the proxy path
/// against checking the session cookie, on one octod proxy with its real authentication
/// (`bench_proxy proxy-auth`: `Auth` over a redb file) in front of the gateway on its Unix
/// socket. The same small download, driven by wrk with `Cookie: octo_session=<JWT>` and with
/// `Authorization: Bearer octo_…`, in interleaved rounds; median requests/s and CPU time per
/// request of the proxy process for each, and their ratios (token over cookie for requests/s,
/// cookie over token for CPU: above 1.0, the token is cheaper). Issue 16 asks ≥ 0.98.
pub(crate) fn run_auth() -> anyhow::Result<()> {
    const ROUNDS: usize = 5;
    let work = target_dir().join("bench-proxy-auth");
    let files = work.join("files");
    fs::create_dir_all(&files).with_context(|| format!("creating {}", files.display()))?;
    step("building octo-fileserver and the proxy harness (release)");
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
        "bench_proxy",
    ]))?;
    let fileserver = target_dir().join("release/octo-fileserver");
    let harness = target_dir().join("release/examples/bench_proxy");
    let wrk = which("wrk").context("the HTTP load comes from wrk: install Debian's `wrk`")?;
    which("curl").context("the checks use curl: install `curl`")?;
    fs::write(files.join("small.txt"), SMALL)?;

    step("starting the gateway and octod's proxy with its accounts");
    let gateway = work.join("gateway.sock");
    let _ = fs::remove_file(&gateway);
    let _upstream = Server::start_unix(
        Command::new(&fileserver)
            .arg("--listen")
            .arg(format!("unix:{}", gateway.display()))
            .arg("--root")
            .arg(&files)
            .env("OCTO_SESSION_TOKEN", TOKEN)
            .env("RUST_LOG", "warn"),
        &gateway,
        &work.join("octo-fileserver.log"),
    )?;
    let state = work.join("state");
    let addr = free_addr()?;
    let octo = Server::start(
        Command::new(&harness)
            .arg("proxy-auth")
            .arg(addr.to_string())
            .arg(&gateway)
            .arg(TOKEN)
            .arg(&state),
        addr,
        &work.join("octod-proxy-auth.log"),
    )?;
    let credentials = fs::read_to_string(state.join("credentials"))?;
    let value = |kind: &str| {
        credentials
            .lines()
            .find_map(|l| l.strip_prefix(kind))
            .map(|v| v.trim().to_owned())
            .with_context(|| format!("no {kind} in the harness's credentials"))
    };
    let headers = [
        (
            "cookie",
            format!("Cookie: octo_session={}", value("cookie ")?),
        ),
        (
            "token",
            format!("Authorization: Bearer {}", value("bearer ")?),
        ),
    ];
    let url = format!("http://{addr}/sessions/{SESSION}/files/api/download?path=small.txt");
    for (_, header) in &headers {
        check_download(&url, Some(header), Some(SMALL.len()))?;
    }
    // Without a credential: refused, so the load above is really authenticated.
    let refused = output(
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(&url),
    )?;
    ensure!(refused == "401", "without a credential: {refused}");

    step(format!(
        "wrk, 64 connections: {ROUNDS} rounds of {WRK_SECONDS} s, cookie and token interleaved"
    ));
    let mut results: Vec<Vec<Wrk>> = headers.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        for (i, (name, header)) in headers.iter().enumerate() {
            let before = cpu_seconds(octo.pid())?;
            let mut result = wrk_run(&wrk, &url, Some(header), 64)?;
            result.cpu = (cpu_seconds(octo.pid())? - before) / result.requests;
            eprintln!(
                "    round {} {name:<6} {:>10.0} req/s  p99 {:>8.2} ms  {:>7.1} µs CPU/req",
                round + 1,
                result.rps,
                result.p99 * 1e3,
                result.cpu * 1e6
            );
            results[i].push(result);
        }
    }
    let rps: Vec<f64> = results
        .iter()
        .map(|r| median(r.iter().map(|w| w.rps).collect()))
        .collect();
    let cpu: Vec<f64> = results
        .iter()
        .map(|r| median(r.iter().map(|w| w.cpu).collect()))
        .collect();
    let p99: Vec<f64> = results
        .iter()
        .map(|r| median(r.iter().map(|w| w.p99).collect()))
        .collect();
    println!();
    println!(
        "proxy path, small download, 64 connections, {ROUNDS} × {WRK_SECONDS} s (medians), {} CPUs",
        cpus()
    );
    println!(
        "{:<8} {:>12} {:>12} {:>14}",
        "", "req/s", "p99 ms", "CPU µs/req"
    );
    for (i, (name, _)) in headers.iter().enumerate() {
        println!(
            "{name:<8} {:>12.0} {:>12.2} {:>14.1}",
            rps[i],
            p99[i] * 1e3,
            cpu[i] * 1e6
        );
    }
    println!(
        "ratio token/cookie, req/s: {:.3}   cookie/token, CPU per request: {:.3}   (issue 16: ≥ 0.98)",
        rps[1] / rps[0],
        cpu[0] / cpu[1]
    );
    Ok(())
}
