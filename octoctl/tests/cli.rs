//! The `octoctl` binary against real Unix sockets: a missing socket, a socket nobody listens
//! on, and a server that answers like octod (403, 404, a JSON list, a stream). Checks the
//! exit codes scripts rely on and the messages people read.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn octoctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_octoctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("OCTOCTL_SOCKET")
        .output()
        .expect("running octoctl")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Serves one request on a fresh socket with a canned answer; returns the socket's path and
/// a handle yielding the request line.
fn serve_once(
    dir: &Path,
    status: &str,
    content_type: &str,
    body: &str,
) -> (PathBuf, std::thread::JoinHandle<String>) {
    let path = dir.join(format!("admin-{}.sock", status.replace(' ', "-")));
    let listener = UnixListener::bind(&path).expect("bind");
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).expect("request line");
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().expect("length");
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        let mut stream = reader.into_inner();
        stream.write_all(answer.as_bytes()).expect("answer");
        let request_line = request_line.trim().trim_end_matches(" HTTP/1.1");
        format!("{request_line} {}", String::from_utf8_lossy(&body))
    });
    (path, handle)
}

#[test]
fn no_socket_is_exit_5_with_how_to_start_octod() {
    let dir = tempfile::tempdir().expect("dir");
    let out = octoctl(&dir.path().join("none.sock"), &["status"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("octod is not running (no socket at"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("systemctl start octod.socket"));
}

#[test]
fn a_socket_nobody_listens_on_is_exit_5() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("stale.sock");
    drop(UnixListener::bind(&path).expect("bind"));
    let out = octoctl(&path, &["session", "list"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
}

#[test]
fn refused_by_octod_is_exit_4_and_names_the_group() {
    let dir = tempfile::tempdir().expect("dir");
    let body = r#"{"error":{"code":"forbidden","message":"permission denied: bob is neither root nor a member of group octo-admin"}}"#;
    let (path, server) = serve_once(dir.path(), "403 Forbidden", "application/json", body);
    let out = octoctl(&path, &["status"]);
    assert_eq!(server.join().expect("server"), "GET /admin/v1/status ");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("group octo-admin"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unknown_session_is_exit_3() {
    let dir = tempfile::tempdir().expect("dir");
    let body = r#"{"error":{"code":"not_found","message":"no such session"}}"#;
    let (path, server) = serve_once(dir.path(), "404 Not Found", "application/json", body);
    let out = octoctl(&path, &["session", "stop", "nope"]);
    assert_eq!(
        server.join().expect("server"),
        "POST /admin/v1/sessions/nope/stop "
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("not found: no such session"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn invite_codes_generate_sends_role_uses_and_expiry_and_prints_json() {
    let dir = tempfile::tempdir().expect("dir");
    let body = r#"{"code":"ABCD1234","role":"admin","uses_left":3,"expires_at":null,"created_by":"root","created_at":0}"#;
    let (path, server) = serve_once(dir.path(), "201 Created", "application/json", body);
    let out = octoctl(
        &path,
        &[
            "--json",
            "invite-codes",
            "generate",
            "--role",
            "admin",
            "--uses",
            "3",
            "--expires",
            "7d",
        ],
    );
    let request = server.join().expect("server");
    assert!(
        request.starts_with("POST /admin/v1/invite-codes "),
        "{request}"
    );
    let body = request.splitn(3, ' ').nth(2).expect("a body");
    let sent: serde_json::Value = serde_json::from_str(body).expect("JSON body");
    assert_eq!(sent["role"], "admin");
    assert_eq!(sent["uses"], 3);
    assert_eq!(sent["expires_in_seconds"], 604_800);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(printed["code"], "ABCD1234");
}

#[test]
fn a_refresh_stream_with_failures_is_exit_1_after_printing_progress() {
    let dir = tempfile::tempdir().expect("dir");
    let body = concat!(
        r#"{"event":"start","image":"localhost/octo-session:latest","id":"abc","running":2,"parallel":2}"#,
        "\n",
        r#"{"event":"session","id":"s1","status":"refreshed","seconds":1.5}"#,
        "\n",
        r#"{"event":"session","id":"s2","status":"failed","message":"start job failed"}"#,
        "\n",
        r#"{"event":"summary","refreshed":1,"skipped":0,"failed":1}"#,
        "\n",
    );
    let (path, server) = serve_once(dir.path(), "200 OK", "application/x-ndjson", body);
    let out = octoctl(&path, &["container", "refresh", "--parallel", "2"]);
    assert_eq!(
        server.join().expect("server"),
        "POST /admin/v1/container/refresh?parallel=2 "
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("s1: refreshed (1.5 s)"), "{stdout}");
    assert!(stdout.contains("s2: FAILED: start job failed"), "{stdout}");
    assert!(
        stdout.contains("refreshed 1, skipped 0, failed 1"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn usage_errors_are_exit_2() {
    let dir = tempfile::tempdir().expect("dir");
    let out = octoctl(
        &dir.path().join("x.sock"),
        &["invite-codes", "generate", "--expires", "7y"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown unit 'y'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn user_token_create_sends_scopes_and_days_and_prints_the_token_once() {
    let dir = tempfile::tempdir().expect("dir");
    let body = r#"{"token":"octo_0123456789abcdef_x","info":{"id":"0123456789abcdef","user":"ada","name":"ci","scopes":["sessions:read","sessions:connect"],"created_at":0,"expires_at":1209600000,"last_used_at":null}}"#;
    let (path, server) = serve_once(dir.path(), "201 Created", "application/json", body);
    let out = octoctl(
        &path,
        &[
            "user",
            "token",
            "create",
            "ada",
            "--name",
            "ci",
            "--scope",
            "sessions:read",
            "--scope",
            "sessions:connect",
            "--expires",
            "2w",
        ],
    );
    let request = server.join().expect("server");
    assert!(
        request.starts_with("POST /admin/v1/users/ada/tokens "),
        "{request}"
    );
    let sent: serde_json::Value =
        serde_json::from_str(request.splitn(3, ' ').nth(2).expect("a body")).expect("JSON");
    assert_eq!(sent["name"], "ci");
    assert_eq!(
        sent["scopes"],
        serde_json::json!(["sessions:read", "sessions:connect"])
    );
    assert_eq!(sent["expires_in_days"], 14);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("octo_0123456789abcdef_x"), "{stdout}");
    assert!(stdout.contains("shown only now"), "{stdout}");

    // Bad scopes and lifetimes are refused before anything is sent.
    for args in [
        &["user", "token", "create", "ada", "--scope", "everything"][..],
        &["user", "token", "create", "ada", "--expires", "12h"][..],
        &["user", "token", "create", "ada", "--expires", "400d"][..],
    ] {
        let out = octoctl(&dir.path().join("nobody.sock"), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}
