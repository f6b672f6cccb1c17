//! Confinement: an escape corpus and a property test over generated paths and symlink farms,
//! with a thread swapping a directory and an escaping link underneath the server. Nothing
//! outside the root may ever be read, written, listed or deleted.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::util::{MARKER, Resp, Server, q, snapshot};

/// Everything outside the root: the `outside` tree and the names next to the root.
fn outside_state(s: &Server) -> (BTreeMap<PathBuf, String>, Vec<String>) {
    (snapshot(&s.outside()), crate::util::names(s.tmp.path()))
}

/// No response may carry anything from outside: the marker (in every outside file and
/// name) or the host's `/etc/passwd`.
#[track_caller]
fn assert_clean(r: &Resp, what: &str) {
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        !body.contains(MARKER),
        "{what}: response leaks outside data: {body}"
    );
    assert!(
        !body.contains("root:x:0:0"),
        "{what}: response leaks /etc/passwd"
    );
    assert!(r.status != 500, "{what}: internal error: {body}");
}

/// Each operation the API offers, aimed at `path` (and `other`, a path inside).
fn every_operation(s: &Server, path: &str, other: &str) -> Vec<(String, Resp)> {
    let p = q(path);
    let o = q(other);
    let uniq = format!("escaped-{}", std::process::id());
    let calls: Vec<(&str, String, &[u8])> = vec![
        (
            "GET",
            format!("/api/list?path={p}&hidden=true&depth=3"),
            b"",
        ),
        ("GET", format!("/api/stat?path={p}"), b""),
        ("GET", format!("/api/download?path={p}"), b""),
        ("GET", format!("/api/search?path={p}&q=e&hidden=true"), b""),
        (
            "PUT",
            format!("/api/upload?path={p}&overwrite=true"),
            b"overwritten",
        ),
        (
            "PUT",
            format!("/api/upload?path={p}/{uniq}&parents=true"),
            b"written",
        ),
        (
            "POST",
            format!("/api/mkdir?path={p}/{uniq}-dir&parents=true"),
            b"",
        ),
        (
            "POST",
            format!("/api/copy?from={p}&to={o}-copy&overwrite=true"),
            b"",
        ),
        (
            "POST",
            format!("/api/copy?from={o}&to={p}/{uniq}-copy&overwrite=true"),
            b"",
        ),
        (
            "POST",
            format!("/api/move?from={o}&to={p}/{uniq}-moved"),
            b"",
        ),
        (
            "POST",
            format!("/api/move?from={p}/secret&to={o}-moved"),
            b"",
        ),
        ("DELETE", format!("/api/delete?path={p}/secret"), b""),
        (
            "DELETE",
            format!("/api/delete?path={p}/dir&recursive=true"),
            b"",
        ),
    ];
    calls
        .into_iter()
        .map(|(m, target, body)| {
            let r = s.request(m, &target, &[], body);
            (format!("{m} {target}"), r)
        })
        .collect()
}

/// A root full of traps. `inner/` is a legitimate directory.
fn build_traps(root: &Path, outside: &Path) {
    fs::create_dir_all(root.join("inner/dir")).expect("mkdir");
    fs::write(root.join("inner/secret"), "inner file").expect("write");
    fs::write(root.join("inner/file"), "inner file").expect("write");
    let links: &[(&str, &str)] = &[
        ("up", ".."),
        ("up2", "../.."),
        ("abs", "/"),
        ("etc", "/etc"),
        ("outrel", "../outside"),
        ("chain1", "chain2"),
        ("chain2", "chain3"),
        ("chain3", "../outside"),
        ("loop1", "loop2"),
        ("loop2", "loop1"),
        ("self", "."),
        ("proc", "/proc/self/root"),
        ("cwd", "/proc/self/cwd"),
        ("fd", "/proc/self/fd"),
        ("inner/deep_up", "../../outside"),
        ("inner/back", "../inner"),
    ];
    for (name, target) in links {
        symlink(target, root.join(name)).expect("symlink");
    }
    symlink(outside, root.join("outabs")).expect("symlink");
}

const CORPUS: &[&str] = &[
    "..",
    "../outside",
    "../outside/secret",
    "/../outside/secret",
    "inner/../../outside/secret",
    "inner/../..",
    "up",
    "up/outside",
    "up/outside/secret",
    "up2",
    "abs",
    "abs/etc/passwd",
    "etc/passwd",
    "outabs",
    "outabs/secret",
    "outrel/secret",
    "chain1",
    "chain1/secret",
    "loop1",
    "loop1/x",
    "self/up/outside/secret",
    "proc/etc/passwd",
    "cwd",
    "fd/0",
    "inner/deep_up",
    "inner/deep_up/secret",
    "inner/back/../../outside/secret",
    "self/self/up",
];

#[test]
fn escape_corpus_is_refused_for_every_operation() {
    let s = Server::start();
    let before = outside_state(&s);
    for path in CORPUS {
        // Fresh traps for each path: some operations legitimately remove links.
        let root = s.root();
        for e in fs::read_dir(&root).expect("read_dir") {
            let p = e.expect("entry").path();
            if fs::symlink_metadata(&p).expect("lstat").is_dir() {
                fs::remove_dir_all(&p).expect("rm");
            } else {
                fs::remove_file(&p).expect("rm");
            }
        }
        build_traps(&root, &s.outside());
        for (what, r) in every_operation(&s, path, "inner/file") {
            assert_clean(&r, &what);
            if what.starts_with("GET /api/download") || what.starts_with("GET /api/list") {
                assert!(
                    r.status >= 400,
                    "{what}: should be refused, got {}: {}",
                    r.status,
                    r.text()
                );
            }
            assert_eq!(
                outside_state(&s),
                before,
                "{what}: changed something outside the root"
            );
        }
    }
    // The legitimate links still work.
    let r = s.get("/api/download?path=inner/back/file");
    assert_eq!((r.status, r.text().as_str()), (200, "inner file"));
    let r = s.get("/api/stat?path=outabs");
    assert_eq!(r.json()["kind"], "symlink");
    assert!(
        r.json().get("target_kind").is_none(),
        "an escaping link has no target kind"
    );
    for place in [
        PathBuf::from("/"),
        PathBuf::from("/tmp"),
        s.tmp.path().to_path_buf(),
    ] {
        let stray = crate::util::names(&place)
            .into_iter()
            .filter(|n| n.starts_with(&format!("escaped-{}", std::process::id())))
            .collect::<Vec<_>>();
        assert!(
            stray.is_empty(),
            "wrote outside in {}: {stray:?}",
            place.display()
        );
    }
}

/// Keeps swapping `swap` between a real directory inside the root and a link to the
/// outside (atomically, with `RENAME_EXCHANGE`), recreating either side if an operation
/// removed it.
fn swapper(root: PathBuf, outside: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let (a, b) = (root.join("swap"), root.join("swap_alt"));
        let mut swaps = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let is_link = |p: &Path| fs::symlink_metadata(p).map(|m| m.is_symlink());
            match (is_link(&a), is_link(&b)) {
                (Ok(x), Ok(y)) if x != y => {}
                _ => {
                    let _ = fs::remove_dir_all(&a).or_else(|_| fs::remove_file(&a));
                    let _ = fs::remove_dir_all(&b).or_else(|_| fs::remove_file(&b));
                    let _ = fs::create_dir_all(a.join("dir"));
                    let _ = fs::write(a.join("secret"), "inside");
                    let _ = symlink(&outside, &b);
                    continue;
                }
            }
            if nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &a,
                nix::fcntl::AT_FDCWD,
                &b,
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            )
            .is_ok()
            {
                swaps += 1;
            }
        }
        swaps
    })
}

/// Path components the generator draws from: links of the farm, real names, `..`, the
/// swapped entry, and names that exist only outside.
fn component() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "..", ".", "a", "b", "f", "l0", "l1", "l2", "l3", "swap", "secret", "outside", "dir", "new",
    ])
    .prop_map(str::to_owned)
}

fn rel_path() -> impl Strategy<Value = String> {
    (prop::collection::vec(component(), 1..6), any::<bool>())
        .prop_map(|(parts, lead)| format!("{}{}", if lead { "/" } else { "" }, parts.join("/")))
}

/// A link target: relative component chains, absolute paths, `/proc` magic.
fn link_target(outside: String) -> impl Strategy<Value = String> {
    prop_oneof![
        rel_path(),
        Just("/".to_owned()),
        Just(outside),
        Just("/proc/self/root".to_owned()),
        Just("/proc/self/cwd".to_owned()),
        Just("/etc".to_owned()),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    List(String),
    Stat(String),
    Download(String),
    Search(String),
    Upload(String, bool),
    Mkdir(String),
    Move(String, String, bool),
    Copy(String, String, bool),
    Delete(String, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        rel_path().prop_map(Op::List),
        rel_path().prop_map(Op::Stat),
        rel_path().prop_map(Op::Download),
        rel_path().prop_map(Op::Search),
        (rel_path(), any::<bool>()).prop_map(|(p, o)| Op::Upload(p, o)),
        rel_path().prop_map(Op::Mkdir),
        (rel_path(), rel_path(), any::<bool>()).prop_map(|(a, b, o)| Op::Move(a, b, o)),
        (rel_path(), rel_path(), any::<bool>()).prop_map(|(a, b, o)| Op::Copy(a, b, o)),
        (rel_path(), any::<bool>()).prop_map(|(p, r)| Op::Delete(p, r)),
    ]
}

fn run(s: &Server, op: &Op) -> (String, Resp) {
    let (m, target): (&str, String) = match op {
        Op::List(p) => ("GET", format!("/api/list?path={}&hidden=1&depth=4", q(p))),
        Op::Stat(p) => ("GET", format!("/api/stat?path={}", q(p))),
        Op::Download(p) => ("GET", format!("/api/download?path={}", q(p))),
        Op::Search(p) => ("GET", format!("/api/search?path={}&q=e&hidden=1", q(p))),
        Op::Upload(p, o) => (
            "PUT",
            format!("/api/upload?path={}&overwrite={o}&parents=true", q(p)),
        ),
        Op::Mkdir(p) => ("POST", format!("/api/mkdir?path={}&parents=true", q(p))),
        Op::Move(a, b, o) => (
            "POST",
            format!("/api/move?from={}&to={}&overwrite={o}", q(a), q(b)),
        ),
        Op::Copy(a, b, o) => (
            "POST",
            format!("/api/copy?from={}&to={}&overwrite={o}", q(a), q(b)),
        ),
        Op::Delete(p, r) => ("DELETE", format!("/api/delete?path={}&recursive={r}", q(p))),
    };
    let r = s.request(m, &target, &[], b"uploaded");
    (format!("{m} {target}"), r)
}

#[test]
fn generated_paths_and_link_farms_never_escape_even_with_links_swapped_concurrently() {
    let s = Server::start();
    let before = outside_state(&s);
    let outside = s.outside().to_string_lossy().into_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = swapper(s.root(), s.outside(), stop.clone());

    let farm = prop::collection::vec(
        (
            prop::sample::select(vec!["l0", "l1", "l2", "l3", "a/l0", "a/b/l1", "a/l3"]),
            link_target(outside),
        ),
        1..7,
    );
    let ops = prop::collection::vec(op(), 1..6);
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&(farm, ops), |(farm, ops)| {
        // A fresh farm under the root; `swap`/`swap_alt` belong to the swapper.
        let root = s.root();
        for e in fs::read_dir(&root).expect("read_dir") {
            let p = e.expect("entry").path();
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with("swap") {
                continue;
            }
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&p).expect("rm"),
                Ok(_) => fs::remove_file(&p).expect("rm"),
                Err(_) => {}
            }
        }
        fs::create_dir_all(root.join("a/b/dir")).expect("mkdir");
        fs::write(root.join("f"), "inner").expect("write");
        fs::write(root.join("a/b/secret"), "inner").expect("write");
        for (name, target) in &farm {
            let _ = symlink(target, root.join(name));
        }
        for op in &ops {
            let (what, r) = run(&s, op);
            assert_clean(&r, &what);
            prop_assert_eq!(
                &outside_state(&s),
                &before,
                "{}: changed something outside",
                what
            );
        }
        Ok(())
    });
    stop.store(true, Ordering::Relaxed);
    let swaps = swaps.join().expect("swapper");
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        swaps > 100,
        "the swapper barely ran ({swaps} swaps): the test proved little"
    );
}

#[test]
fn hammering_a_swapped_link_never_reads_or_writes_outside() {
    let s = Server::start();
    let before = outside_state(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = swapper(s.root(), s.outside(), stop.clone());
    let mut inside_reads = 0;
    for i in 0..400 {
        let r = s.get("/api/download?path=swap/secret");
        assert_clean(&r, "download swap/secret");
        if r.status == 200 {
            assert_eq!(r.text(), "inside");
            inside_reads += 1;
        }
        assert_clean(&s.get("/api/list?path=swap"), "list swap");
        assert_clean(&s.get("/api/download?path=swap"), "zip swap");
        let up = s.request("PUT", &format!("/api/upload?path=swap/up{i}"), &[], b"x");
        assert_clean(&up, "upload");
        let del = s.request(
            "DELETE",
            "/api/delete?path=swap/dir&recursive=true",
            &[],
            b"",
        );
        assert_clean(&del, "delete");
        assert_eq!(
            outside_state(&s),
            before,
            "round {i}: changed something outside"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swaps.join().expect("swapper");
    assert!(swaps > 100, "the swapper barely ran ({swaps} swaps)");
    assert!(
        inside_reads > 0,
        "never caught the directory side: the race was not exercised"
    );
}
