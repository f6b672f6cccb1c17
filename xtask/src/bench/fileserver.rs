//! `cargo xtask bench fileserver`: octo-fileserver against Caddy's `file_server`.
//!
//! Both serve the same directory on 127.0.0.1 in one run, measured with the same client
//! (curl), interleaved run by run so that drift hits both alike:
//!
//! - download of a 1 GiB file (page cache warm): median throughput of several runs;
//! - listing of a 10,000-entry directory as JSON (Caddy: browse with `Accept:
//!   application/json`): median time of many requests;
//! - upload of 1 GiB to a freshly started octo-fileserver: its peak RSS (`VmHWM`). Caddy's
//!   `file_server` has no upload, so the anchor there is the 64 MiB target.
//!
//! The working files live in `<target>/bench-fileserver/` and are reused between runs.

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use crate::util::{cargo, output, run as run_cmd, step, target_dir};

const GIB: u64 = 1 << 30;
const ENTRIES: usize = 10_000;
const DOWNLOAD_RUNS: usize = 5;
const LIST_RUNS: usize = 40;
const TOKEN: &str = "bench-token";
const RSS_TARGET_KIB: u64 = 64 * 1024;

pub fn run() -> anyhow::Result<()> {
    let work = target_dir().join("bench-fileserver");
    let files = work.join("files");
    fs::create_dir_all(&files).with_context(|| format!("creating {}", files.display()))?;

    step("building octo-fileserver (release)");
    run_cmd(&mut cargo([
        "build",
        "--release",
        "--quiet",
        "-p",
        "octo-fileserver",
    ]))?;
    let binary = target_dir().join("release/octo-fileserver");
    ensure!(binary.is_file(), "{} was not built", binary.display());
    let caddy = which("caddy").context("Caddy is the anchor: install Debian's `caddy` package")?;
    which("curl").context("the benchmark drives both servers with curl: install `curl`")?;
    let caddy_version = output(Command::new(&caddy).arg("version"))?;
    let caddy_version = caddy_version
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned();

    step("preparing files (1 GiB file, 10,000-entry directory; reused between runs)");
    let big = files.join("big.bin");
    make_big_file(&big)?;
    make_many(&files.join("many"))?;
    fs::create_dir_all(files.join("uploads"))?;
    // Warm the page cache so the download measures the servers, not the disk.
    run_cmd(Command::new("cat").arg(&big).stdout(Stdio::null()))?;

    step("starting octo-fileserver and caddy on 127.0.0.1");
    let octo = Server::octo(&binary, &files, &work)?;
    let caddy = Server::caddy(&caddy, &files, &work)?;

    step(format!(
        "download of 1 GiB, {DOWNLOAD_RUNS} runs each, interleaved"
    ));
    let octo_dl = format!("http://{}/api/download?path=big.bin", octo.addr);
    let caddy_dl = format!("http://{}/big.bin", caddy.addr);
    let (mut octo_speed, mut caddy_speed) = (Vec::new(), Vec::new());
    for _ in 0..DOWNLOAD_RUNS {
        octo_speed.push(curl(&octo_dl, &[&auth()], GIB)?.speed);
        caddy_speed.push(curl(&caddy_dl, &[], GIB)?.speed);
    }

    step(format!(
        "listing of {ENTRIES} entries as JSON, {LIST_RUNS} requests each, interleaved"
    ));
    let octo_ls = format!("http://{}/api/list?path=many", octo.addr);
    let caddy_ls = format!("http://{}/many/", caddy.addr);
    check_listing(&octo_ls, &[&auth()], |v| {
        v["entries"].as_array().map(Vec::len)
    })?;
    check_listing(&caddy_ls, &["Accept: application/json"], |v| {
        v.as_array().map(Vec::len)
    })?;
    let (mut octo_list, mut caddy_list) = (Vec::new(), Vec::new());
    for _ in 0..LIST_RUNS {
        octo_list.push(curl(&octo_ls, &[&auth()], 0)?.seconds);
        caddy_list.push(curl(&caddy_ls, &["Accept: application/json"], 0)?.seconds);
    }
    drop(octo);
    drop(caddy);

    step("upload of 1 GiB to a fresh octo-fileserver, watching its peak RSS");
    let octo = Server::octo(&binary, &files, &work)?;
    let idle_kib = vm_hwm_kib(octo.pid())?;
    let up = format!(
        "http://{}/api/upload?path=uploads/big.bin&overwrite=true",
        octo.addr
    );
    let status = output(
        Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                &auth(),
                "-T",
            ])
            .arg(&big)
            .arg(&up),
    )?;
    ensure!(
        status == "200" || status == "201",
        "upload answered HTTP {status}"
    );
    let peak_kib = vm_hwm_kib(octo.pid())?;
    let uploaded = fs::metadata(files.join("uploads/big.bin"))?.len();
    ensure!(uploaded == GIB, "the uploaded file has {uploaded} bytes");
    drop(octo);
    fs::remove_file(files.join("uploads/big.bin"))?;

    let dl = (median(&mut octo_speed), median(&mut caddy_speed));
    let ls = (median(&mut octo_list), median(&mut caddy_list));
    println!();
    println!(
        "octo-fileserver vs Caddy {caddy_version} file_server — 127.0.0.1, same files, curl, {} CPUs",
        cpus()
    );
    println!(
        "{:<38} {:>14} {:>14} {:>9}   target",
        "", "octo", "caddy", "ratio"
    );
    println!(
        "{:<38} {:>14} {:>14} {:>8.2}×   ≥ 1.0× (octo/caddy throughput)",
        format!("download 1 GiB (median of {DOWNLOAD_RUNS})"),
        format!("{:.2} GB/s", dl.0 / 1e9),
        format!("{:.2} GB/s", dl.1 / 1e9),
        dl.0 / dl.1
    );
    println!(
        "{:<38} {:>14} {:>14} {:>8.2}×   ≥ 1.0× (caddy/octo time)",
        format!("list {ENTRIES} entries JSON (median of {LIST_RUNS})"),
        format!("{:.1} ms", ls.0 * 1e3),
        format!("{:.1} ms", ls.1 * 1e3),
        ls.1 / ls.0
    );
    #[allow(clippy::cast_precision_loss)] // KiB counts are far below 2^52
    let rss_ratio = peak_kib as f64 / RSS_TARGET_KIB as f64;
    println!(
        "{:<38} {:>14} {:>14} {:>8.2}    ≤ 1.0 (of the 64 MiB target; idle {:.1} MiB)",
        "upload 1 GiB: peak RSS (VmHWM)",
        format!("{:.1} MiB", kib_to_mib(peak_kib)),
        "n/a",
        rss_ratio,
        kib_to_mib(idle_kib)
    );
    println!(
        "(ratios above 1.0 mean octo-fileserver is faster; the RSS ratio should stay below 1.0)"
    );
    Ok(())
}

fn auth() -> String {
    format!("Authorization: Bearer {TOKEN}")
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

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A 1 GiB file of non-repeating, incompressible-looking bytes (not sparse: real reads).
fn make_big_file(path: &Path) -> anyhow::Result<()> {
    if fs::metadata(path).is_ok_and(|m| m.len() == GIB) {
        return Ok(());
    }
    let mut out = std::io::BufWriter::new(
        fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..(GIB >> 20) {
        for chunk in block.chunks_exact_mut(8) {
            // xorshift64: fast and good enough to defeat any compression or dedup.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        out.write_all(&block)?;
    }
    out.flush()?;
    Ok(())
}

fn make_many(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    if fs::read_dir(dir)?.count() == ENTRIES {
        return Ok(());
    }
    for i in 0..ENTRIES {
        let p = dir.join(format!("file-{i:05}.txt"));
        if !p.exists() {
            fs::write(&p, format!("entry {i}\n"))
                .with_context(|| format!("writing {}", p.display()))?;
        }
    }
    Ok(())
}

/// A server we started; killed (by its own pid) when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn octo(binary: &Path, root: &Path, work: &Path) -> anyhow::Result<Server> {
        let addr = free_addr()?;
        let log = fs::File::create(work.join("octo-fileserver.log"))?;
        let child = Command::new(binary)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--root")
            .arg(root)
            .args(["--max-upload", "2G"])
            .env("OCTO_SESSION_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Server::ready(child, addr, "/health")
    }

    fn caddy(caddy: &Path, root: &Path, work: &Path) -> anyhow::Result<Server> {
        let addr = free_addr()?;
        let log = fs::File::create(work.join("caddy.log"))?;
        let child = Command::new(caddy)
            .args(["file-server", "--browse", "--root"])
            .arg(root)
            .arg("--listen")
            .arg(addr.to_string())
            // Keep Caddy's autosave and storage out of the home directory.
            .env("XDG_CONFIG_HOME", work.join("caddy-config"))
            .env("XDG_DATA_HOME", work.join("caddy-data"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", caddy.display()))?;
        Server::ready(child, addr, "/")
    }

    fn ready(mut child: Child, addr: SocketAddr, path: &str) -> anyhow::Result<Server> {
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "server on {addr} exited at start: {status} (see its log in the bench directory)"
                );
            }
            if start.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                bail!("server on {addr} did not start listening within 15 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let server = Server { child, addr };
        let code = output(
            Command::new("curl")
                .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("http://{addr}{path}")),
        )?;
        ensure!(
            code == "200",
            "server on {addr} answered {path} with HTTP {code}"
        );
        Ok(server)
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

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

struct Transfer {
    speed: f64,
    seconds: f64,
}

/// One GET with curl to /dev/null; checks the status (and the size when `expect_size > 0`).
fn curl(url: &str, headers: &[&str], expect_size: u64) -> anyhow::Result<Transfer> {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download} %{speed_download} %{time_total}",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = output(cmd.arg(url))?;
    let fields: Vec<&str> = out.split_whitespace().collect();
    let [code, size, speed, seconds] = fields.as_slice() else {
        bail!("unexpected curl output {out:?}");
    };
    ensure!(*code == "200", "{url}: HTTP {code}");
    if expect_size > 0 {
        ensure!(
            size.parse::<u64>()? == expect_size,
            "{url}: got {size} bytes, expected {expect_size}"
        );
    }
    Ok(Transfer {
        speed: speed.parse()?,
        seconds: seconds.parse()?,
    })
}

/// Both listings must really hold every entry, or the comparison means nothing.
fn check_listing(
    url: &str,
    headers: &[&str],
    count: impl Fn(&serde_json::Value) -> Option<usize>,
) -> anyhow::Result<()> {
    let mut cmd = Command::new("curl");
    cmd.arg("-sS");
    for h in headers {
        cmd.args(["-H", h]);
    }
    let body = output(cmd.arg(url))?;
    let value: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("{url}: not JSON"))?;
    let n = count(&value).with_context(|| format!("{url}: unexpected JSON shape"))?;
    ensure!(
        n == ENTRIES,
        "{url}: listed {n} entries, expected {ENTRIES}"
    );
    Ok(())
}

/// Peak resident set size of a process, from `/proc/<pid>/status`.
fn vm_hwm_kib(pid: u32) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/<pid>/status")
}
