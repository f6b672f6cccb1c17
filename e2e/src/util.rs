//! Helpers shared by the checks: images built from the host's Debian packages, HTTP probes.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Prints a line of progress (the CI log shows it).
pub fn say(message: impl AsRef<str>) {
    println!("  - {}", message.as_ref());
}

/// Runs a command; a failure names it.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What goes into an image built from the host's busybox.
struct BusyboxImage<'a> {
    /// Applets linked to busybox in `/bin`.
    applets: &'a [&'a str],
    /// Empty directories.
    dirs: &'a [&'a str],
    /// `(path, contents)` of files.
    files: &'a [(&'a str, &'a str)],
    /// The image's `CMD`, as JSON.
    cmd: &'a str,
    /// The image's `USER`, if not root.
    user: Option<&'a str>,
    /// `(host path, path in the image)` of files copied in (programs, their libraries).
    host_files: &'a [(std::path::PathBuf, std::path::PathBuf)],
}

/// Imports an image made of the host's busybox (there is no registry here) under `name`,
/// unless it exists with the session runtime label octod checks (a stand-in declares the
/// runtime it stands in for: `org.octo.session-runtime`).
fn ensure_image_from_busybox(name: &str, image: &BusyboxImage<'_>) -> anyhow::Result<()> {
    let runtime = octod::render::SESSION_RUNTIME.to_string();
    let label = Command::new("podman")
        .args([
            "image",
            "inspect",
            "--format",
            &format!("{{{{index .Labels \"{}\"}}}}", octod::render::LABEL_RUNTIME),
            name,
        ])
        .output();
    if label
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == runtime)
    {
        return Ok(());
    }
    say(format!("building image {name} from the host's busybox"));
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("bin"))?;
    for sub in image.dirs {
        std::fs::create_dir_all(root.join(sub))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).context("copying /bin/busybox")?;
    for applet in image.applets {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    for (path, contents) in image.files {
        std::fs::write(root.join(path), contents)?;
        // Programs (`/usr/local/bin/…`, as the real image's health check) must be executable.
        if path.starts_with("usr/local/bin/") {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(root.join(path), std::fs::Permissions::from_mode(0o755))?;
        }
    }
    for (file, at) in image.host_files {
        let inside = root.join(at.strip_prefix("/").unwrap_or(at));
        if let Some(parent) = inside.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(file, &inside).with_context(|| format!("copying {}", file.display()))?;
    }
    let tar = dir.path().join("image.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."))?;
    let mut import = Command::new("podman");
    import.args(["import", "--change", &format!("CMD {}", image.cmd)]);
    import.args([
        "--change",
        &format!("LABEL {}={runtime}", octod::render::LABEL_RUNTIME),
    ]);
    if let Some(user) = image.user {
        import.args(["--change", &format!("USER {user}")]);
    }
    run(import.arg(&tar).arg(name))?;
    Ok(())
}

/// A tiny image: busybox, `sh`, and a web root with `index.html`.
pub fn ensure_busybox_image(name: &str) -> anyhow::Result<()> {
    ensure_image_from_busybox(
        name,
        &BusyboxImage {
            applets: &["sh"],
            dirs: &["www", "tmp"],
            files: &[("www/index.html", "octo smoke ok\n")],
            cmd: r#"["/bin/sh"]"#,
            user: None,
            host_files: &[],
        },
    )
}

/// The engine's test session image: the real gateway, `octo-fileserver` (beside this
/// program, with the libraries `ldd` names), serving the file API on the socket systemd
/// passes in as fd 3 with the token from its file; and a busybox httpd on 41820 inside the
/// container's own network for the health check. Under a shell that exits on SIGTERM, as
/// `dev`'s uid (1000), which owns the token file. The gateway is the smallest thing here that
/// truly accepts on fd 3: busybox has no server that takes an inherited listening socket.
pub fn ensure_session_test_image(name: &str) -> anyhow::Result<()> {
    gateway_image(
        name,
        "trap 'exit 0' TERM INT\n\
         /bin/busybox httpd -f -p 41820 -h /www &\n\
         /usr/local/bin/octo-fileserver --root /home/dev \
           --token-file /run/secrets/octo-token &\n\
         wait\n",
    )
}

/// [`ensure_session_test_image`] with a stand-in opencode: a second busybox httpd on 41821,
/// serving `/home/dev/agent` (so a check writes what "opencode" answers, such as
/// `session/status`), behind the gateway's `/opencode/` relay.
pub fn ensure_agent_test_image(name: &str) -> anyhow::Result<()> {
    gateway_image(
        name,
        "trap 'exit 0' TERM INT\n\
         /bin/busybox httpd -f -p 41820 -h /www &\n\
         mkdir -p /home/dev/agent/global && echo '{\"healthy\":true}' > /home/dev/agent/global/health\n\
         /bin/busybox httpd -f -p 41821 -h /home/dev/agent &\n\
         /usr/local/bin/octo-fileserver --root /home/dev \
           --token-file /run/secrets/octo-token --opencode 127.0.0.1:41821 &\n\
         wait\n",
    )
}

/// A stand-in for the real session image that `octod serve` runs unchanged, with the real
/// gateway on fd 3 as the real image has (so whatever octod asks of a session, such as its
/// agent's status, is answered: a socket no one accepts on would keep the connection queued,
/// and systemd would start the session again after a stop): busybox httpd on 41820 standing
/// in for opencode (it has no `/session/status`: the agent is never busy) and the production
/// health check path.
pub fn ensure_served_gateway_image(name: &str) -> anyhow::Result<()> {
    gateway_image_with(
        name,
        "trap 'exit 0' TERM INT\n\
         /bin/busybox httpd -f -p 41820 -h /www &\n\
         /usr/local/bin/octo-fileserver --root /home/dev \
           --token-file /run/secrets/octo-token --opencode 127.0.0.1:41820 &\n\
         wait\n",
        &[(
            "usr/local/bin/octo-healthcheck",
            "#!/bin/sh\nwget -q -O /dev/null http://127.0.0.1:41820/ || exit 1\n",
        )],
    )
}

fn gateway_image(name: &str, start: &str) -> anyhow::Result<()> {
    gateway_image_with(name, start, &[])
}

fn gateway_image_with(name: &str, start: &str, more: &[(&str, &str)]) -> anyhow::Result<()> {
    let gateway = std::env::current_exe()?.with_file_name("octo-fileserver");
    anyhow::ensure!(
        gateway.is_file(),
        "{} is missing: cargo build -p octo-fileserver",
        gateway.display()
    );
    let mut host_files: Vec<_> = shared_libraries(&gateway)?
        .into_iter()
        .map(|lib| (lib.clone(), lib))
        .collect();
    host_files.push((gateway, "/usr/local/bin/octo-fileserver".into()));
    ensure_image_from_busybox(
        name,
        &BusyboxImage {
            applets: &["sh", "wget", "cat", "echo", "httpd", "mkdir"],
            dirs: &["www", "tmp", "home/dev", "usr/local/bin"],
            files: &[
                &[("www/index.html", "octo session ok\n"), ("start.sh", start)],
                more,
            ]
            .concat(),
            cmd: r#"["/bin/sh", "/start.sh"]"#,
            user: Some("1000:1000"),
            host_files: &host_files,
        },
    )
}

/// The shared libraries `program` loads, as `ldd` resolves them here.
fn shared_libraries(program: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let out = run(Command::new("ldd").arg(program))?;
    Ok(out
        .lines()
        .filter_map(|line| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux… (0x…)`
            let path = line.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/')
                .then(|| std::path::PathBuf::from(path))
        })
        .collect())
}

/// A stand-in for the real session image that `octod serve` can run unchanged: three busybox
/// httpd on the session ports, the production health check path
/// (`/usr/local/bin/octo-healthcheck`), and a start line in the log naming the image's
/// variant (`/etc/octo-variant`, replaced by derived images).
pub fn ensure_served_session_image(name: &str) -> anyhow::Result<()> {
    ensure_image_from_busybox(
        name,
        &BusyboxImage {
            applets: &["sh", "wget", "cat", "echo"],
            dirs: &["www", "tmp", "home/dev", "usr/local/bin", "etc"],
            files: &[
                ("www/index.html", "octo session ok\n"),
                ("etc/octo-variant", "base\n"),
                (
                    "usr/local/bin/octo-healthcheck",
                    "#!/bin/sh\n\
                     for p in 41820 41821 41822; do wget -q -O /dev/null http://127.0.0.1:$p/ || exit 1; done\n",
                ),
                (
                    "start.sh",
                    "trap 'exit 0' TERM INT\n\
                     for p in 41820 41821 41822; do /bin/busybox httpd -f -p $p -h /www & done\n\
                     echo \"session up: $(cat /etc/octo-variant)\"\n\
                     wait\n",
                ),
            ],
            cmd: r#"["/bin/sh", "/start.sh"]"#,
            user: None,
            host_files: &[],
        },
    )
}

/// `GET path` over the Unix socket at `socket`, with the bearer `token` if any; returns the
/// status code and the body. A tiny client: what octod's proxy does, without octod.
pub fn unix_get(socket: &Path, path: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: session\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let answer = parse_answer(&response)?;
    Ok((answer.status, answer.body))
}

/// `GET path` on 127.0.0.1:port; returns the body of a 200 answer.
pub fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!(
            "GET {path} on port {port}: {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.to_owned())
}

/// Retries `probe` until it succeeds or `timeout` passes.
pub async fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(value) => return Ok(value),
            Err(error) if Instant::now() > deadline => {
                return Err(error.context(format!("{what}: not within {timeout:?}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// The user's Quadlet directory.
pub fn quadlet_dir() -> anyhow::Result<std::path::PathBuf> {
    let home = std::env::var("HOME").context("HOME is not set")?;
    Ok(Path::new(&home).join(".config/containers/systemd"))
}

/// Waits until `GET /api/sessions/<id>`, sent by `get`, says the session runs; a `failed`
/// state ends the wait at once with the API's answer.
pub async fn session_running(
    get: impl Fn(&str) -> anyhow::Result<Answer>,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let path = format!("/api/sessions/{id}");
    eventually(timeout, &format!("session {id} running"), async || {
        let answer = get(&path)?;
        let state = answer.json()?["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if state == "failed" {
            bail!("the session failed: {}", answer.body);
        }
        anyhow::ensure!(state == "running", "state {state}");
        Ok(())
    })
    .await
}

/// An HTTP/1.1 answer: status, headers (lower-case names), body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {}", self.body))
    }
}

/// A small HTTP/1.1 client over a real socket (`Connection: close`, chunked bodies decoded).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> anyhow::Result<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if let Some(body) = body {
        let _ = write!(
            head,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(body) = body {
        stream.write_all(body.as_bytes())?;
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_answer(&raw)
}

/// Parses a whole HTTP/1.1 answer (the connection closed after it); a chunked body is
/// decoded.
pub fn parse_answer(raw: &[u8]) -> anyhow::Result<Answer> {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP answer")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The HTTP/1.1 client of [`request`] over a Unix socket (a session's socket, as octod
/// reaches it); `Err` carries the `io::Error` of the connection attempt (EACCES, ENOENT).
pub fn request_unix(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<Answer> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    stream.set_read_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: session\r\nConnection: close\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_answer(&raw)
}

/// A tree's manifest, read on the host as root: each path `find {find}` lists in `dir`,
/// sorted, with its mode and the SHA-256 of each file or the target of each link. Two homes
/// with the same manifest hold the same files.
pub(crate) fn tree_manifest(dir: &str, find: &str) -> anyhow::Result<String> {
    run(Command::new("sh").args([
        "-c",
        &format!(
            "cd '{dir}' && find {find} | sort | while read -r p; do \
               if [ -L \"$p\" ]; then echo \"$p link $(readlink \"$p\")\"; \
               elif [ -f \"$p\" ]; then echo \"$p $(stat -c %a \"$p\") $(sha256sum < \"$p\")\"; \
               else echo \"$p $(stat -c '%a %F' \"$p\")\"; fi; done"
        ),
    ]))
}

/// The numbers of the complete files `N.txt` a writer leaves in `dir` (each must hold its own
/// number), sorted, and the number of the one being written (`N.tmp`, before its rename), if
/// any: the backup checks' proof that a home was read at one instant.
pub(crate) fn numbered_files(dir: &Path) -> anyhow::Result<(Vec<u64>, Option<u64>)> {
    let mut out = Vec::new();
    let mut writing = None;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_suffix(".tmp").and_then(|n| n.parse().ok()) {
            anyhow::ensure!(writing.is_none(), "two files being written: {name}");
            writing = Some(n);
            continue;
        }
        let n: u64 = name
            .strip_suffix(".txt")
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("a stray file {name}"))?;
        let text = std::fs::read_to_string(entry.path())?;
        anyhow::ensure!(
            text.trim() == n.to_string(),
            "{name} holds {text:?}: written in part"
        );
        out.push(n);
    }
    out.sort_unstable();
    Ok((out, writing))
}
