//! `cargo xtask bench snapshot`: a snapshot, a restore and a fork's copy of a 1 GiB home of
//! 10,000 files by octod's snapshot worker (`octod snapshot-worker create|restore|copy`, the
//! code the transient units run) against `tar` + `zstd` of the same tree and a `cp -a
//! --reflink=auto`, side by side in one run, rounds alternating; medians and ratios printed,
//! and the worker's peak RSS (GNU time's maximum resident set size), the memory a snapshot
//! costs octod's side (octod's daemon only starts the unit and reads its progress file).
//!
//! The home is made once under `<target>/bench-snapshot/home` (deterministic content: half
//! of each file text-like, half noise, so that compression has work of both kinds) and
//! reused; everything else in that directory is rewritten by each run. Run on the host, no
//! test host needed: the worker is the same binary either way (in the units it runs under
//! `podman unshare`, which changes the ids it sees, not the work).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use crate::util::{cargo, run as run_cmd, step, target_dir};

const FILES: usize = 10_000;
const DIRS: usize = 100;
const HOME_BYTES: u64 = 1 << 30;
const ROUNDS: usize = 3;
const RSS_TARGET_KIB: u64 = 64 * 1024;

/// One operation's measures: its label, octod's times, the anchor's, the worker's peak RSS.
type Row = (&'static str, Vec<Duration>, Vec<Duration>, Vec<u64>);

pub(crate) fn run() -> anyhow::Result<()> {
    let work = target_dir().join("bench-snapshot");
    let home = work.join("home");
    let time = PathBuf::from("/usr/bin/time");
    ensure!(
        time.is_file(),
        "the worker's peak memory comes from GNU time: install Debian's `time`"
    );
    for tool in ["tar", "zstd", "cp"] {
        ensure!(
            Command::new(tool).arg("--version").output().is_ok(),
            "the anchor needs `{tool}`"
        );
    }
    step("building octod (release)");
    run_cmd(&mut cargo([
        "build",
        "--release",
        "--quiet",
        "-p",
        "octod",
        "--bin",
        "octod",
    ]))?;
    let octod = target_dir().join("release/octod");
    ensure!(octod.is_file(), "{} was not built", octod.display());

    make_home(&home)?;
    let (files, bytes) = measure_tree(&home)?;
    println!(
        "home: {files} files, {:.2} GiB in {}",
        gib(bytes),
        home.display()
    );

    let mut rows: Vec<Row> = vec![
        ("snapshot", Vec::new(), Vec::new(), Vec::new()),
        ("restore", Vec::new(), Vec::new(), Vec::new()),
        ("fork copy", Vec::new(), Vec::new(), Vec::new()),
    ];
    let mut sizes = (0, 0);
    for round in 1..=ROUNDS {
        step(format!("round {round} of {ROUNDS}"));
        let scratch = work.join("scratch");
        let _ = fs::remove_dir_all(&scratch);
        fs::create_dir_all(&scratch)?;

        // Snapshot: the worker's archive vs tar | zstd -3 (the worker's level), same tree.
        let partial = scratch.join(".partial-bench");
        let done = scratch.join("bench");
        fs::create_dir_all(&partial)?;
        fs::write(
            partial.join("snapshot.json"),
            serde_json::json!({
                "version": 1,
                "id": "sbench000001",
                "name": "bench",
                "session": "bench1",
                "owner": "bench",
                "created_at": 0,
                "was_running": false,
            })
            .to_string(),
        )?;
        let (octo, rss) = timed(
            &time,
            Command::new(&octod)
                .args(["snapshot-worker", "create", "--home"])
                .arg(&home)
                .arg("--partial")
                .arg(&partial)
                .arg("--done")
                .arg(&done),
        )?;
        let anchor_archive = scratch.join("anchor.tar.zst");
        let (anchor, _) = timed(
            &time,
            Command::new("sh").arg("-c").arg(format!(
                "tar -C '{}' -cf - . | zstd -3 -q -o '{}'",
                home.display(),
                anchor_archive.display()
            )),
        )?;
        rows[0].1.push(octo);
        rows[0].2.push(anchor);
        rows[0].3.push(rss);
        sizes = (
            fs::metadata(done.join("home.tar.zst"))?.len(),
            fs::metadata(&anchor_archive)?.len(),
        );

        // Restore: unpack beside a home and swap it in, vs zstd -d | tar x.
        let restored = scratch.join("restored");
        fs::create_dir_all(&restored)?;
        let (octo, rss) = timed(
            &time,
            Command::new(&octod)
                .args(["snapshot-worker", "restore", "--snapshot"])
                .arg(&done)
                .arg("--home")
                .arg(&restored)
                .arg("--progress")
                .arg(scratch.join("restore.progress")),
        )?;
        let unpacked = scratch.join("unpacked");
        fs::create_dir_all(&unpacked)?;
        let (anchor, _) = timed(
            &time,
            Command::new("sh").arg("-c").arg(format!(
                "zstd -dc -q '{}' | tar -C '{}' -xf -",
                anchor_archive.display(),
                unpacked.display()
            )),
        )?;
        ensure!(
            measure_tree(&restored)? == (files, bytes),
            "the restored home differs from the home"
        );
        rows[1].1.push(octo);
        rows[1].2.push(anchor);
        rows[1].3.push(rss);

        // A fork's copy (reflink where the file system has it) vs cp -a --reflink=auto.
        let forked = scratch.join("forked");
        fs::create_dir_all(&forked)?;
        let (octo, rss) = timed(
            &time,
            Command::new(&octod)
                .args(["snapshot-worker", "copy", "--from"])
                .arg(&home)
                .arg("--home")
                .arg(&forked),
        )?;
        let copied = scratch.join("copied");
        let (anchor, _) = timed(
            &time,
            Command::new("cp")
                .args(["-a", "--reflink=auto"])
                .arg(&home)
                .arg(&copied),
        )?;
        rows[2].1.push(octo);
        rows[2].2.push(anchor);
        rows[2].3.push(rss);
        let _ = fs::remove_dir_all(&scratch);
    }

    println!();
    println!(
        "{:<10} {:>12} {:>12} {:>8} {:>16}",
        "", "octod", "anchor", "ratio", "worker peak RSS"
    );
    let mut peak = 0;
    for (label, octo, anchor, rss) in &mut rows {
        octo.sort();
        anchor.sort();
        let (o, a) = (octo[octo.len() / 2], anchor[anchor.len() / 2]);
        let max_rss = rss.iter().copied().max().unwrap_or(0);
        peak = peak.max(max_rss);
        println!(
            "{label:<10} {:>10.2} s {:>10.2} s {:>7.2}× {:>12} MiB",
            o.as_secs_f64(),
            a.as_secs_f64(),
            a.as_secs_f64() / o.as_secs_f64(),
            max_rss / 1024
        );
    }
    println!(
        "\n(anchors: tar | zstd -3, zstd -d | tar x, cp -a --reflink=auto; ratio = anchor time / octod time, above 1 is faster than the anchor)"
    );
    #[allow(clippy::cast_precision_loss)]
    let ratio = sizes.0 as f64 / sizes.1 as f64;
    println!(
        "archive: {:.1} MiB by the worker, {:.1} MiB by tar | zstd ({ratio:.3}×)",
        mib(sizes.0),
        mib(sizes.1)
    );
    println!(
        "the worker's peak RSS: {} MiB (target ≤ {} MiB: {})",
        peak / 1024,
        RSS_TARGET_KIB / 1024,
        if peak <= RSS_TARGET_KIB {
            "met"
        } else {
            "missed"
        }
    );
    Ok(())
}

/// Wall time and peak RSS (KiB) of `cmd`, run under GNU time.
fn timed(time: &Path, cmd: &mut Command) -> anyhow::Result<(Duration, u64)> {
    let report = tempfile_path("time")?;
    let mut full = Command::new(time);
    full.arg("-f").arg("%M").arg("-o").arg(&report);
    full.arg(cmd.get_program()).args(cmd.get_args());
    full.stdout(std::process::Stdio::null());
    let started = Instant::now();
    let out = full
        .output()
        .with_context(|| format!("running {}", crate::util::display(cmd)))?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            crate::util::display(cmd),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rss = fs::read_to_string(&report)?
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("GNU time wrote no maximum RSS")?;
    let _ = fs::remove_file(&report);
    Ok((elapsed, rss))
}

fn tempfile_path(name: &str) -> anyhow::Result<PathBuf> {
    let dir = target_dir().join("bench-snapshot");
    fs::create_dir_all(&dir)?;
    Ok(dir.join(format!(".{name}-{}", std::process::id())))
}

/// The home, made once: `FILES` files in `DIRS` folders, `HOME_BYTES` in all.
fn make_home(home: &Path) -> anyhow::Result<()> {
    let marker = home.join(".bench-complete");
    if marker.is_file() {
        return Ok(());
    }
    step(format!(
        "making the home: {FILES} files, {:.0} GiB (once; kept for later runs)",
        gib(HOME_BYTES)
    ));
    let _ = fs::remove_dir_all(home);
    let per_file = usize::try_from(HOME_BYTES)? / FILES;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let words = [
        "fn ", "let ", "mut ", "self", "return ", "impl ", "struct ", "{\n", "}\n", "(", ")", "; ",
        "// ", "the ", "session ", "octo ", "=> ", "match ", "Ok(", "Err(",
    ];
    for i in 0..FILES {
        let dir = home.join(format!("dir{:03}", i % DIRS));
        fs::create_dir_all(&dir)?;
        let mut data = Vec::with_capacity(per_file);
        while data.len() < per_file / 2 {
            let w = words[usize::try_from(next() % 20)?];
            data.extend_from_slice(w.as_bytes());
        }
        while data.len() < per_file {
            data.extend_from_slice(&next().to_le_bytes());
        }
        data.truncate(per_file);
        let mut file = fs::File::create(dir.join(format!("file{i:05}.dat")))?;
        file.write_all(&data)?;
    }
    fs::write(&marker, b"")?;
    Ok(())
}

/// Files and bytes under `root` (the marker file left out).
fn measure_tree(root: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if entry.file_name() != ".bench-complete" {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    Ok((files, bytes))
}

#[allow(clippy::cast_precision_loss)]
fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1_u32 << 30)
}

#[allow(clippy::cast_precision_loss)]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1_u32 << 20)
}
