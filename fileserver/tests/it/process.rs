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
