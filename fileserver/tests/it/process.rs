//! The `octo-fileserver` binary as a process: configuration, refusal without a token, and a
//! graceful SIGTERM that lets a running download finish.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{TOKEN, raw_request};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            start.elapsed() < within,
            "process did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn refuses_to_start_without_a_token() {
    let root = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_octo-fileserver"))
        .args(["--listen", "127.0.0.1:0", "--root"])
        .arg(root.path())
        .env_remove("OCTO_SESSION_TOKEN")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("OCTO_SESSION_TOKEN"));
}

#[test]
fn refuses_a_missing_root() {
    let out = Command::new(env!("CARGO_BIN_EXE_octo-fileserver"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--root",
            "/nonexistent/octo-root",
        ])
        .env("OCTO_SESSION_TOKEN", TOKEN)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/octo-root"));
}

#[test]
fn sigterm_lets_a_running_download_finish_then_exits_cleanly() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = vec![42u8; 32 << 20];
    std::fs::write(root.path().join("big"), &data).expect("write");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_octo-fileserver"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--root"])
        .arg(root.path())
        .env("OCTO_SESSION_TOKEN", TOKEN)
        .env("OCTO_FILESERVER_MAX_UPLOAD", "1M")
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(raw_request(addr, "GET", "/health", &[], b"").status, 200);
    // The env-configured limit is in force.
    let auth = [("Authorization", format!("Bearer {TOKEN}"))];
    let r = raw_request(
        addr,
        "PUT",
        "/api/upload?path=x",
        &auth,
        &vec![0u8; (1 << 20) + 1],
    );
    assert_eq!(r.status, 413);

    let mut conn = TcpStream::connect(addr).expect("connect");
    let req = format!(
        "GET /api/download?path=big HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(req.as_bytes()).expect("request");
    let mut first = vec![0u8; 1024];
    let n = conn.read(&mut first).expect("first bytes");
    assert!(n > 0);
    kill(
        Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        Signal::SIGTERM,
    )
    .expect("kill");
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).expect("rest of the download");
    let total = n + rest.len();
    let header_len = first[..n]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers")
        + 4;
    assert_eq!(
        total - header_len,
        data.len(),
        "the in-flight download completed"
    );
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

/// One request over a Unix socket (`Connection: close`).
fn unix_request(socket: &std::path::Path, target: &str, token: Option<&str>) -> crate::util::Resp {
    let mut conn = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    conn.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: g\r\nConnection: close\r\n{auth}\r\n").as_bytes(),
    )
    .expect("request");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).expect("answer");
    crate::util::parse_response(&raw, false)
}

/// As in the session container: Podman passes the activated socket as fd 3 with
/// `LISTEN_FDS=1` and `LISTEN_PID=1` (not our pid: we run under tini), and the token comes
/// from a file, not from the environment or argv.
#[test]
fn serves_the_socket_activated_fd_3_with_a_token_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).expect("root");
    std::fs::write(root.join("a.txt"), "a").expect("write");
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token");
    let socket = tmp.path().join("session.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    // The shell moves the inherited listener to fd 3, as systemd and Podman do.
    let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    nix::fcntl::fcntl(
        &listener,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .expect("inheritable");
    // (bash: dash takes only one-digit descriptors in redirections.)
    let moved = if fd == 3 {
        String::new()
    } else {
        format!("3<&{fd} {fd}<&-")
    };
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("exec \"$0\" \"$@\" {moved}"))
        .arg(env!("CARGO_BIN_EXE_octo-fileserver"))
        // Would fail to bind: proves the passed socket is used instead.
        .args(["--listen", "unix:/nonexistent/octo/x.sock", "--root"])
        .arg(&root)
        .arg("--token-file")
        .arg(&token_file)
        .env_remove("OCTO_SESSION_TOKEN")
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDNAMES", "http")
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(listener);

    let r = unix_request(&socket, "/api/list", Some(TOKEN));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["entries"][0]["name"], "a.txt");
    assert_eq!(unix_request(&socket, "/api/list", None).status, 401);
    assert_eq!(unix_request(&socket, "/health", None).status, 200);

    kill(
        Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        Signal::SIGTERM,
    )
    .expect("kill");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("log");
    assert!(log.contains("socket activation"), "{log}");
    assert!(!log.contains(TOKEN), "the token was logged: {log}");
}

#[test]
fn refuses_a_passed_descriptor_that_is_not_a_listening_socket() {
    let file = tempfile::NamedTempFile::new().expect("tmp");
    let out = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" \"$@\" 3<\"$OCTO_TEST_FILE\"")
        .arg(env!("CARGO_BIN_EXE_octo-fileserver"))
        .args(["--listen", "127.0.0.1:0", "--root", "/"])
        .env("OCTO_TEST_FILE", file.path())
        .env("OCTO_SESSION_TOKEN", TOKEN)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fd 3"), "{err}");
}
