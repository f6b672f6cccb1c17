//! Downloads: a file streamed with `Range`, validators and conditional requests, or a
//! directory streamed as a zip.
//!
//! Files are read on the blocking pool in large chunks that flow to hyper through a small
//! bounded channel, so memory per download is constant and a slow client only parks one
//! blocking thread. Every download carries `X-Content-Type-Options: nosniff` and
//! `Content-Security-Policy: sandbox`: the files come from the workspace (the agent writes
//! HTML too) and are served on the app's own origin, so they must never run as the app.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, SFlag, fstat};
use percent_encoding::{NON_ALPHANUMERIC, percent_encode};
use tokio::sync::mpsc;

use crate::confine::RelPath;
use crate::error::{ApiError, Code};
use crate::{AppState, blocking};

/// Bytes per chunk handed to hyper. Large chunks mean few syscalls and few wake-ups.
const CHUNK: usize = 512 * 1024;
/// Chunks in flight per download (memory per download ≈ `CHUNK * (DEPTH + 2)`).
const DEPTH: usize = 4;

/// What was opened for a download.
enum Opened {
    File(File, FileStat),
    Dir(std::os::fd::OwnedFd),
}

/// `GET`/`HEAD /api/download?path=…[&inline=true]`.
pub async fn download(
    state: &std::sync::Arc<AppState>,
    path: RelPath,
    inline: bool,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let st = state.clone();
    let p = path.clone();
    let opened = blocking(move || {
        // O_NONBLOCK: opening a FIFO must not hang the server.
        let fd = st.root.open(&p, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
        let stat = fstat(&fd).map_err(|e| ApiError::fs(e, &p.display()))?;
        match SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFREG => Ok(Opened::File(File::from(fd), stat)),
            SFlag::S_IFDIR => Ok(Opened::Dir(fd)),
            _ => Err(ApiError::new(
                Code::NotAFile,
                format!("{}: not a regular file or directory", p.display()),
            )),
        }
    })
    .await?;
    match opened {
        Opened::File(file, stat) => Ok(file_response(file, &stat, &path, inline, method, headers)?),
        Opened::Dir(fd) => Ok(zip_response(fd, &path, method)),
    }
}

fn file_response(
    file: File,
    stat: &FileStat,
    path: &RelPath,
    inline: bool,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    let validators = Validators::of(stat);
    let etag = validators.etag_header();
    let last_modified = validators.last_modified_header();

    match evaluate_preconditions(headers, &validators) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r.headers_mut().insert(header::ETAG, etag);
            r.headers_mut().insert(header::LAST_MODIFIED, last_modified);
            return Ok(r);
        }
        Precondition::Failed => {
            return Err(ApiError::new(
                Code::PreconditionFailed,
                format!("{}: precondition failed", path.display()),
            ));
        }
    }

    let range = if method == Method::GET && if_range_holds(headers, &validators) {
        headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map_or(RangeRequest::Full, |v| parse_range(v, size))
    } else {
        RangeRequest::Full
    };
    let (status, start, len) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, size),
        RangeRequest::Part { start, len } => (StatusCode::PARTIAL_CONTENT, start, len),
        RangeRequest::Unsatisfiable => {
            return Err(ApiError::new(
                Code::RangeNotSatisfiable,
                format!("{}: range outside 0..{size}", path.display()),
            )
            .with_header(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{size}")),
            ));
        }
    };

    let body = if method == Method::HEAD || len == 0 {
        Body::empty()
    } else {
        file_body(file, start, len)
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    let name = path.file_name().unwrap_or(b"file");
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, etag);
    h.insert(header::LAST_MODIFIED, last_modified);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_DISPOSITION,
        disposition(if inline { "inline" } else { "attachment" }, name),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        let end = start + len - 1;
        h.insert(
            header::CONTENT_RANGE,
            header_value(&format!("bytes {start}-{end}/{size}")),
        );
    }
    protect(h);
    Ok(r)
}

fn zip_response(fd: std::os::fd::OwnedFd, path: &RelPath, method: &Method) -> Response {
    let top = path
        .file_name()
        .map_or_else(|| b"workspace".to_vec(), <[u8]>::to_vec);
    let mut file_name = top.clone();
    file_name.extend_from_slice(b".zip");
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        let (tx, rx) = mpsc::channel(DEPTH);
        let shown = path.display();
        tokio::task::spawn_blocking(move || {
            let out = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(CHUNK),
            };
            if let Err(e) = crate::zip::zip_directory(fd, &top, out) {
                tracing::info!(path = %shown, error = %e, "zip download ended early");
                // Make hyper abort the chunked body so the client sees a broken archive.
                let _ = tx.blocking_send(Err(e));
            }
        });
        channel_body(rx)
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_DISPOSITION,
        disposition("attachment", &file_name),
    );
    protect(h);
    r
}

fn protect(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
}

fn header_value(s: &str) -> HeaderValue {
    // Only ever called with ASCII we formatted ourselves.
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// RFC 5987 `attr-char`s stay as they are in `filename*`.
const ATTR: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `Content-Disposition` with an ASCII fallback name and the exact UTF-8 name (RFC 6266).
fn disposition(kind: &str, name: &[u8]) -> HeaderValue {
    let fallback: String = String::from_utf8_lossy(name)
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let exact = percent_encode(name, ATTR);
    header_value(&format!(
        "{kind}; filename=\"{fallback}\"; filename*=UTF-8''{exact}"
    ))
}

/// Streams `len` bytes of `file` from `start`, read on the blocking pool.
fn file_body(file: File, start: u64, len: u64) -> Body {
    let (tx, rx) = mpsc::channel(DEPTH);
    tokio::task::spawn_blocking(move || {
        let mut offset = start;
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
            let mut buf = vec![0u8; want];
            let result = match file.read_at(&mut buf, offset) {
                // The file shrank under us: fail the body so the client sees a short read
                // instead of a silently truncated file.
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank during download",
                )),
                Ok(n) => {
                    buf.truncate(n);
                    offset += n as u64;
                    left -= n as u64;
                    Ok(Bytes::from(buf))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let failed = result.is_err();
            if tx.blocking_send(result).is_err() || failed {
                return; // the client went away, or we told it about the failure
            }
        }
    });
    channel_body(rx)
}

fn channel_body(rx: mpsc::Receiver<io::Result<Bytes>>) -> Body {
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// An `io::Write` that sends full chunks into the body channel (for the zip writer).
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The validators of a file: a strong ETag from inode, size and mtime (nanoseconds), and
/// the mtime in whole seconds for `Last-Modified`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    etag: String,
    mtime: u64,
}

impl Validators {
    fn of(st: &FileStat) -> Self {
        Validators {
            etag: format!(
                "\"{:x}-{:x}-{:x}.{:x}\"",
                st.st_ino, st.st_size, st.st_mtime, st.st_mtime_nsec
            ),
            mtime: u64::try_from(st.st_mtime).unwrap_or(0),
        }
    }

    fn etag_header(&self) -> HeaderValue {
        header_value(&self.etag)
    }

    fn last_modified_header(&self) -> HeaderValue {
        header_value(&httpdate::fmt_http_date(
            UNIX_EPOCH + Duration::from_secs(self.mtime),
        ))
    }
}

/// The outcome of the conditional headers (RFC 9110 §13.2.2).
#[derive(Debug, PartialEq, Eq)]
enum Precondition {
    Proceed,
    NotModified,
    Failed,
}

fn evaluate_preconditions(headers: &HeaderMap, v: &Validators) -> Precondition {
    let text = |name| {
        headers
            .get(name)
            .and_then(|h: &HeaderValue| h.to_str().ok())
    };
    if let Some(if_match) = text(header::IF_MATCH) {
        if !etag_list_matches(if_match, &v.etag, true) {
            return Precondition::Failed;
        }
    } else if let Some(since) = text(header::IF_UNMODIFIED_SINCE).and_then(http_date_secs) {
        if v.mtime > since {
            return Precondition::Failed;
        }
    }
    if let Some(if_none_match) = text(header::IF_NONE_MATCH) {
        if etag_list_matches(if_none_match, &v.etag, false) {
            return Precondition::NotModified;
        }
    } else if let Some(since) = text(header::IF_MODIFIED_SINCE).and_then(http_date_secs) {
        if v.mtime <= since {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Does `If-Range` (if any) still hold? Only a strong ETag or the exact date counts.
fn if_range_holds(headers: &HeaderMap, v: &Validators) -> bool {
    let Some(value) = headers.get(header::IF_RANGE).and_then(|h| h.to_str().ok()) else {
        return true;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        value == v.etag
    } else {
        http_date_secs(value) == Some(v.mtime)
    }
}

fn http_date_secs(s: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// `*` or a comma-separated list of entity tags. `strong` refuses weak tags on either side.
fn etag_list_matches(list: &str, etag: &str, strong: bool) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    list.split(',')
        .map(str::trim)
        .any(|tag| match tag.strip_prefix("W/") {
            Some(weak) => !strong && weak == etag,
            None => tag == etag,
        })
}

/// A parsed `Range` header against a file of some size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send the whole file (also for multiple ranges, which we do not
    /// serve as multipart, and for syntax we do not understand, as RFC 9110 allows).
    Full,
    /// One satisfiable range.
    Part {
        /// First byte.
        start: u64,
        /// Number of bytes.
        len: u64,
    },
    /// A valid range that lies outside the file: 416.
    Unsatisfiable,
}

/// Parses a `Range` header value for a file of `size` bytes.
pub fn parse_range(value: &str, size: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.is_empty(), last.is_empty()) {
        (true, true) => RangeRequest::Full,
        (true, false) => match parse(last) {
            None => RangeRequest::Full,
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if size == 0 => RangeRequest::Unsatisfiable,
            Some(n) => {
                let len = n.min(size);
                RangeRequest::Part {
                    start: size - len,
                    len,
                }
            }
        },
        (false, _) => {
            let Some(start) = parse(first) else {
                return RangeRequest::Full;
            };
            let end = if last.is_empty() {
                None
            } else {
                match parse(last) {
                    Some(end) if end >= start => Some(end),
                    _ => return RangeRequest::Full,
                }
            };
            if start >= size {
                return RangeRequest::Unsatisfiable;
            }
            let end = end.map_or(size - 1, |e| e.min(size - 1));
            RangeRequest::Part {
                start,
                len: end - start + 1,
            }
        }
    }
}

/// A `Content-Type` from the file name's extension; text types carry `charset=utf-8`.
pub fn content_type(name: &[u8]) -> &'static str {
    let ext = name
        .iter()
        .rposition(|&b| b == b'.')
        .map(|i| name[i + 1..].to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_slice() {
        b"html" | b"htm" => "text/html; charset=utf-8",
        b"css" => "text/css; charset=utf-8",
        b"js" | b"mjs" | b"cjs" => "text/javascript; charset=utf-8",
        b"json" | b"map" => "application/json",
        b"md" | b"markdown" => "text/markdown; charset=utf-8",
        b"csv" => "text/csv; charset=utf-8",
        b"xml" => "application/xml",
        b"svg" => "image/svg+xml",
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"webp" => "image/webp",
        b"avif" => "image/avif",
        b"ico" => "image/vnd.microsoft.icon",
        b"pdf" => "application/pdf",
        b"zip" => "application/zip",
        b"gz" | b"tgz" => "application/gzip",
        b"tar" => "application/x-tar",
        b"wasm" => "application/wasm",
        b"mp4" => "video/mp4",
        b"webm" => "video/webm",
        b"mp3" => "audio/mpeg",
        b"wav" => "audio/wav",
        b"ogg" => "audio/ogg",
        b"woff" => "font/woff",
        b"woff2" => "font/woff2",
        b"ttf" => "font/ttf",
        b"txt" | b"log" | b"rs" | b"py" | b"go" | b"c" | b"h" | b"cpp" | b"hpp" | b"java"
        | b"ts" | b"tsx" | b"jsx" | b"sh" | b"toml" | b"yaml" | b"yml" | b"ini" | b"conf"
        | b"sql" | b"rb" | b"lock" | b"diff" | b"patch" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str, size: u64, expected: RangeRequest) {
        assert_eq!(
            parse_range(value, size),
            expected,
            "Range: {value} of {size}"
        );
    }

    #[test]
    fn ranges() {
        use RangeRequest::{Full, Part, Unsatisfiable};
        check("bytes=0-9", 100, Part { start: 0, len: 10 });
        check("bytes=90-", 100, Part { start: 90, len: 10 });
        check("bytes=90-1000", 100, Part { start: 90, len: 10 });
        check("bytes=-10", 100, Part { start: 90, len: 10 });
        check("bytes=-1000", 100, Part { start: 0, len: 100 });
        check("bytes=100-", 100, Unsatisfiable);
        check("bytes=-0", 100, Unsatisfiable);
        check("bytes=0-0", 0, Unsatisfiable);
        check("bytes=5-1", 100, Full);
        check("bytes=0-1,5-6", 100, Full);
        check("items=0-1", 100, Full);
        check("bytes=a-b", 100, Full);
        check("bytes=+1-2", 100, Full);
    }

    #[test]
    fn etag_lists() {
        let tag = "\"abc\"";
        assert!(etag_list_matches("\"x\", \"abc\"", tag, true));
        assert!(etag_list_matches("*", tag, true));
        assert!(etag_list_matches("W/\"abc\"", tag, false));
        assert!(!etag_list_matches("W/\"abc\"", tag, true));
        assert!(!etag_list_matches("\"abd\"", tag, false));
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(b"index.HTML"), "text/html; charset=utf-8");
        assert_eq!(content_type(b"main.rs"), "text/plain; charset=utf-8");
        assert_eq!(content_type(b"Makefile"), "application/octet-stream");
        assert_eq!(content_type(b"photo.jpeg"), "image/jpeg");
    }

    #[test]
    fn disposition_keeps_exact_name_and_ascii_fallback() {
        let v = disposition("attachment", "résumé \"final\".pdf".as_bytes());
        let s = v.to_str().expect("ascii");
        assert!(
            s.starts_with("attachment; filename=\"r_sum_ _final_.pdf\""),
            "{s}"
        );
        assert!(
            s.ends_with("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"),
            "{s}"
        );
    }
}
