//! The test fixture: a real server on a real TCP socket over a real temp directory, and a
//! tiny HTTP/1.1 client on `std::net::TcpStream` (so tests can also misbehave on purpose).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fileserver::{Config, Token};

pub const TOKEN: &str = "test-token-0123456789";
/// Appears in every file and in names outside the root; must never appear in a response.
pub const MARKER: &str = "ZZOUTSIDEMARKERZZ";

/// A running server. Layout: `<tmp>/root` is served; `<tmp>/outside` holds a secret.
pub struct Server {
    pub addr: SocketAddr,
    pub tmp: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start() -> Server {
        Server::with(|_| {})
    }

    pub fn with_limit(max_upload_bytes: u64) -> Server {
        Server::with(|config| config.max_upload_bytes = max_upload_bytes)
    }

    /// A server whose configuration `change` adjusts first.
    pub fn with(change: impl FnOnce(&mut Config)) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("root")).expect("mkdir root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(outside.join("dir")).expect("mkdir outside");
        std::fs::write(outside.join("secret"), format!("{MARKER} secret")).expect("write");
        std::fs::write(outside.join(format!("{MARKER}-name")), MARKER).expect("write");
        std::fs::write(outside.join("dir").join("nested"), MARKER).expect("write");
        std::fs::write(tmp.path().join(format!("{MARKER}-parent")), MARKER).expect("write");

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let mut config = Config {
            root: tmp.path().join("root"),
            token: Token::new(TOKEN).expect("token"),
            max_upload_bytes: 1 << 30,
            shutdown_grace: Duration::from_secs(2),
            watch_max_dirs: fileserver::watcher::DEFAULT_MAX_DIRS,
        };
        change(&mut config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                fileserver::serve(listener, config, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
            });
        });
        Server {
            addr,
            tmp,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    pub fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    pub fn get(&self, target: &str) -> Resp {
        self.request("GET", target, &[], b"")
    }

    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut all = vec![("Authorization", format!("Bearer {TOKEN}"))];
        all.extend(headers.iter().map(|(k, v)| (*k, (*v).to_owned())));
        raw_request(self.addr, method, target, &all, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an error response with this status and stable code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(self.json()["error"]["code"], code, "body: {}", self.text());
        assert!(self.json()["error"]["message"].is_string());
    }
}

/// One request on a fresh connection (`Connection: close`); reads the whole response.
pub fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Resp {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    let mut has_length = false;
    for (k, v) in headers {
        has_length |=
            k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding");
        let _ = write!(head, "{k}: {v}\r\n");
    }
    if !has_length && (!body.is_empty() || method == "PUT" || method == "POST") {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    // The server may answer (413) before taking the whole body; that is fine.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // A reset after a complete early answer (the server did not read our body).
        Err(e) if !raw.is_empty() => eprintln!("read ended with {e}"),
        Err(e) => panic!("reading response: {e}"),
    }
    parse_response(&raw, method == "HEAD")
}

pub fn parse_response(raw: &[u8], head_only: bool) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .expect("status")
        .parse()
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if head_only {
        rest.to_vec()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            panic!("truncated chunked body");
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        data = &data[eol + 2..];
        if size == 0 {
            return out;
        }
        assert!(data.len() >= size + 2, "truncated chunk");
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Percent-encodes a query value.
pub fn q(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Names in a directory (sorted).
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Polls `cond` for up to five seconds.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for: {what}");
}

/// A recursive snapshot of a tree: path → (kind, content or link text), not following links.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let meta = std::fs::symlink_metadata(&p).expect("lstat");
            let v = if meta.is_symlink() {
                format!(
                    "link:{}",
                    std::fs::read_link(&p).expect("readlink").display()
                )
            } else if meta.is_dir() {
                stack.push(p.clone());
                format!(
                    "dir:{:o}",
                    std::os::unix::fs::PermissionsExt::mode(&meta.permissions())
                )
            } else {
                format!(
                    "file:{}",
                    String::from_utf8_lossy(&std::fs::read(&p).expect("read"))
                )
            };
            out.insert(p, v);
        }
    }
    out
}

/// Checks a zip with Python's `zipfile` (an independent reader): CRCs, and returns
/// `name -> (mode >> 16, content)`.
pub fn read_zip(bytes: &[u8]) -> std::collections::BTreeMap<String, (u32, Vec<u8>)> {
    let file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(file.path(), bytes).expect("write zip");
    let script = r#"
import json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
bad = z.testzip()
assert bad is None, "bad CRC in " + str(bad)
print(json.dumps({i.filename: [i.external_attr >> 16, z.read(i).hex()] for i in z.infolist()}))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(file.path())
        .output()
        .expect("python3 (needed to check zip files independently)");
    assert!(
        out.status.success(),
        "zipfile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v.as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| {
            let mode = u32::try_from(v[0].as_u64().expect("mode")).expect("u32");
            let hex = v[1].as_str().expect("hex");
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            (k.clone(), (mode, bytes))
        })
        .collect()
}
