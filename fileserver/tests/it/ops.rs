//! Every operation, through HTTP, against real files.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::symlink;

use crate::util::{MARKER, Server, TOKEN, eventually, names, q, raw_request, read_zip};

#[test]
fn health_needs_no_token_and_the_api_does() {
    let s = Server::start();
    let r = raw_request(s.addr, "GET", "/health", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");

    let r = raw_request(s.addr, "GET", "/api/list", &[], b"");
    r.assert_error(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let wrong = raw_request(
        s.addr,
        "GET",
        "/api/list",
        &[("Authorization", "Bearer nope".into())],
        b"",
    );
    wrong.assert_error(401, "unauthorized");
    let prefix = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    raw_request(
        s.addr,
        "GET",
        "/api/list",
        &[("Authorization", prefix)],
        b"",
    )
    .assert_error(401, "unauthorized");
    let basic = raw_request(
        s.addr,
        "GET",
        "/api/list",
        &[("Authorization", format!("Basic {TOKEN}"))],
        b"",
    );
    basic.assert_error(401, "unauthorized");
    let lower = raw_request(
        s.addr,
        "GET",
        "/api/list",
        &[("Authorization", format!("bearer {TOKEN}"))],
        b"",
    );
    assert_eq!(lower.status, 200);
}

#[test]
fn unknown_routes_methods_and_bad_parameters_get_json_errors() {
    let s = Server::start();
    s.get("/api/nope").assert_error(404, "no_route");
    s.request("POST", "/api/list", &[], b"")
        .assert_error(405, "method_not_allowed");
    s.get("/api/stat").assert_error(400, "bad_request");
    s.get("/api/stat?path=a&path=b")
        .assert_error(400, "bad_request");
    s.get("/api/stat?path=a%00b")
        .assert_error(400, "invalid_path");
    s.get(&format!("/api/stat?path={}", "x".repeat(256)))
        .assert_error(400, "name_too_long");
    s.get(&format!("/api/stat?path={}", "a/".repeat(2100)))
        .assert_error(400, "name_too_long");
    s.get("/api/list?depth=0").assert_error(400, "bad_request");
    s.get("/api/list?hidden=perhaps")
        .assert_error(400, "bad_request");
    s.get("/api/stat?path=missing")
        .assert_error(404, "not_found");
}

#[test]
fn list_sorts_hides_dotfiles_and_describes_links() {
    let s = Server::start();
    let root = s.root();
    fs::create_dir_all(root.join("zdir/inner")).expect("mkdir");
    fs::write(root.join("b.txt"), "bb").expect("write");
    fs::write(root.join("a.txt"), "a").expect("write");
    fs::write(root.join(".hidden"), "h").expect("write");
    fs::write(root.join("zdir/inner/deep.txt"), "d").expect("write");
    symlink("zdir", root.join("link")).expect("symlink");
    symlink("nowhere", root.join("dangling")).expect("symlink");

    let r = s.get("/api/list");
    assert_eq!(r.status, 200);
    let v = r.json();
    let got: Vec<&str> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    // Folders first, a link to one among them; then the files.
    assert_eq!(got, ["link", "zdir", "a.txt", "b.txt", "dangling"]);
    let b = &v["entries"][3];
    assert_eq!(b["kind"], "file");
    assert_eq!(b["size"], 2);
    assert_eq!(b["path"], "b.txt");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(root.join("b.txt"))
            .expect("meta")
            .permissions(),
    );
    assert_eq!(b["mode"], mode & 0o7777);
    assert!(b["mtime"].as_i64().expect("mtime") > 1_600_000_000_000);
    let link = &v["entries"][0];
    assert_eq!(link["kind"], "symlink");
    assert_eq!(link["target"], "zdir");
    assert_eq!(link["target_kind"], "dir");
    assert!(
        v["entries"][4].get("target_kind").is_none(),
        "dangling link has no target kind"
    );
    assert_eq!(v["truncated"], false);
    assert!(v["entries"][1].get("children").is_none());
    assert!(v.get("total").is_none(), "only a page says its total");

    let hidden = s.get("/api/list?hidden=true").json();
    assert!(
        hidden["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["name"] == ".hidden")
    );

    let tree = s.get("/api/list?depth=3").json();
    let zdir = &tree["entries"][1];
    assert_eq!(zdir["children"][0]["name"], "inner");
    assert_eq!(
        zdir["children"][0]["children"][0]["path"],
        "zdir/inner/deep.txt"
    );
    // A listing through a symlink that stays inside works.
    let through = s.get("/api/list?path=link/inner").json();
    assert_eq!(through["entries"][0]["name"], "deep.txt");

    s.get("/api/list?path=a.txt")
        .assert_error(409, "not_a_directory");
    s.get("/api/list?path=nope").assert_error(404, "not_found");
}

#[test]
fn a_listing_pages_in_the_order_the_files_pane_shows() {
    let s = Server::start();
    let root = s.root();
    fs::create_dir(root.join("big")).expect("mkdir");
    for i in 0..25 {
        fs::write(root.join(format!("big/file-{i}.txt")), "x").expect("write");
    }
    fs::create_dir(root.join("big/Sub")).expect("mkdir");
    fs::write(root.join("big/.hidden"), "h").expect("write");
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["name"].as_str().expect("name").to_owned())
            .collect()
    };
    // Folders first, numbers by value (file-9 before file-10).
    let mut expected = vec!["Sub".to_owned()];
    expected.extend((0..25).map(|i| format!("file-{i}.txt")));
    let whole = s.get("/api/list?path=big").json();
    assert_eq!(names(&whole), expected);

    let mut paged = Vec::new();
    for offset in (0..30).step_by(10) {
        let page = s
            .get(&format!("/api/list?path=big&offset={offset}&limit=10"))
            .json();
        assert_eq!(page["total"], 26, "{page}");
        assert_eq!(page["offset"], offset);
        paged.extend(names(&page));
    }
    assert_eq!(paged, expected);
    // The first page without an offset; past the end, an empty page; hidden names count too.
    assert_eq!(
        names(&s.get("/api/list?path=big&limit=3").json()),
        expected[..3]
    );
    let past = s.get("/api/list?path=big&offset=99&limit=10").json();
    assert_eq!(
        (past["total"].as_u64(), past["offset"].as_u64()),
        (Some(26), Some(26))
    );
    assert!(names(&past).is_empty());
    assert_eq!(
        s.get("/api/list?path=big&hidden=1&limit=1").json()["total"],
        27
    );

    s.get("/api/list?path=big&limit=0")
        .assert_error(400, "bad_request");
    s.get("/api/list?path=big&limit=5001")
        .assert_error(400, "bad_request");
    s.get("/api/list?path=big&offset=10")
        .assert_error(400, "bad_request");
    s.get("/api/list?path=big&offset=-1&limit=5")
        .assert_error(400, "bad_request");
}

#[test]
fn non_utf8_names_are_listed_with_a_raw_path_that_works() {
    use std::os::unix::ffi::OsStrExt;
    let s = Server::start();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    fs::write(s.root().join(name), "latin1").expect("write");
    let v = s.get("/api/list").json();
    let raw = v["entries"][0]["raw_path"]
        .as_str()
        .expect("raw_path")
        .to_owned();
    assert_eq!(raw, "caf%E9%2Etxt");
    let r = s.get(&format!("/api/download?path={raw}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"latin1");
}

#[test]
fn stat_does_not_follow_the_final_link() {
    let s = Server::start();
    fs::write(s.root().join("f"), "12345").expect("write");
    symlink("f", s.root().join("l")).expect("symlink");
    let f = s.get("/api/stat?path=f").json();
    assert_eq!(
        (f["kind"].as_str(), f["size"].as_u64()),
        (Some("file"), Some(5))
    );
    let l = s.get("/api/stat?path=/l").json();
    assert_eq!(
        (
            l["kind"].as_str(),
            l["target"].as_str(),
            l["target_kind"].as_str()
        ),
        (Some("symlink"), Some("f"), Some("file"))
    );
    let root = s.get("/api/stat?path=/").json();
    assert_eq!(root["kind"], "dir");
}

#[test]
fn download_streams_with_headers() {
    let s = Server::start();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(s.root().join("big.bin"), &data).expect("write");
    fs::write(s.root().join("page.html"), "<script>alert(1)</script>").expect("write");

    let r = s.get("/api/download?path=big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), data.len());
    assert!(r.body == data, "content differs");
    assert_eq!(r.header("content-length"), Some("3000000"));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.header("etag").expect("etag").starts_with('"'));
    assert!(r.header("last-modified").expect("lm").ends_with("GMT"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"big.bin\"; filename*=UTF-8''big.bin")
    );

    let page = s.get("/api/download?path=page.html&inline=true");
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.header("content-disposition")
            .expect("cd")
            .starts_with("inline;")
    );
    assert_eq!(page.header("content-security-policy"), Some("sandbox"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));

    let head = s.request("HEAD", "/api/download?path=big.bin", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("3000000"));
    assert!(head.body.is_empty());

    fs::write(s.root().join("empty"), "").expect("write");
    let empty = s.get("/api/download?path=empty");
    assert_eq!((empty.status, empty.body.len()), (200, 0));
}

#[test]
fn download_ranges() {
    let s = Server::start();
    fs::write(s.root().join("f.txt"), "0123456789").expect("write");
    let range = |spec: &str| s.request("GET", "/api/download?path=f.txt", &[("Range", spec)], b"");

    let r = range("bytes=2-5");
    assert_eq!((r.status, r.text().as_str()), (206, "2345"));
    assert_eq!(r.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(r.header("content-length"), Some("4"));
    let r = range("bytes=7-");
    assert_eq!(
        (r.status, r.text().as_str(), r.header("content-range")),
        (206, "789", Some("bytes 7-9/10"))
    );
    let r = range("bytes=-3");
    assert_eq!((r.status, r.text().as_str()), (206, "789"));
    let r = range("bytes=5-100");
    assert_eq!((r.status, r.text().as_str()), (206, "56789"));
    let r = range("bytes=10-");
    r.assert_error(416, "range_not_satisfiable");
    assert_eq!(r.header("content-range"), Some("bytes */10"));
    // Multiple ranges are answered with the whole file, as RFC 9110 allows.
    let r = range("bytes=0-1,4-5");
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    // Big-file ranges cross chunk boundaries correctly.
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(s.root().join("big"), &data).expect("write");
    let r = s.request(
        "GET",
        "/api/download?path=big",
        &[("Range", "bytes=524000-1600000")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert!(r.body == data[524_000..=1_600_000]);
}

#[test]
fn download_conditional_requests() {
    let s = Server::start();
    fs::write(s.root().join("f"), "content").expect("write");
    let first = s.get("/api/download?path=f");
    let etag = first.header("etag").expect("etag").to_owned();
    let lm = first.header("last-modified").expect("lm").to_owned();
    let get = |h: &[(&str, &str)]| s.request("GET", "/api/download?path=f", h, b"");

    let r = get(&[("If-None-Match", &etag)]);
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(
        get(&[("If-None-Match", &format!("\"other\", W/{etag}"))]).status,
        304
    );
    assert_eq!(get(&[("If-None-Match", "\"other\"")]).status, 200);
    assert_eq!(get(&[("If-Modified-Since", &lm)]).status, 304);
    assert_eq!(
        get(&[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")]).status,
        200
    );
    // If-None-Match wins over If-Modified-Since.
    assert_eq!(
        get(&[("If-None-Match", "\"other\""), ("If-Modified-Since", &lm)]).status,
        200
    );

    get(&[("If-Match", "\"other\"")]).assert_error(412, "precondition_failed");
    get(&[("If-Match", &format!("W/{etag}"))]).assert_error(412, "precondition_failed");
    assert_eq!(get(&[("If-Match", &etag)]).status, 200);
    assert_eq!(get(&[("If-Match", "*")]).status, 200);
    get(&[("If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")])
        .assert_error(412, "precondition_failed");
    assert_eq!(get(&[("If-Unmodified-Since", &lm)]).status, 200);

    let r = get(&[("Range", "bytes=0-2"), ("If-Range", &etag)]);
    assert_eq!((r.status, r.text().as_str()), (206, "con"));
    let r = get(&[("Range", "bytes=0-2"), ("If-Range", "\"stale\"")]);
    assert_eq!((r.status, r.text().as_str()), (200, "content"));
    let r = get(&[("Range", "bytes=0-2"), ("If-Range", &lm)]);
    assert_eq!(r.status, 206);

    // A changed file gets a new validator.
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(s.root().join("f"), "changed").expect("write");
    assert_eq!(get(&[("If-None-Match", &etag)]).status, 200);
}

#[test]
fn download_of_a_directory_is_a_zip() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start();
    let d = s.root().join("proj");
    fs::create_dir_all(d.join("src/empty")).expect("mkdir");
    fs::write(d.join("src/main.rs"), "fn main() {}").expect("write");
    fs::write(d.join(".env"), "HIDDEN=1").expect("write");
    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i % 241) as u8).collect();
    fs::write(d.join("big.bin"), &big).expect("write");
    fs::set_permissions(d.join("big.bin"), fs::Permissions::from_mode(0o750)).expect("chmod");
    symlink("src/main.rs", d.join("link")).expect("symlink");
    symlink("../../outside/secret", d.join("escape")).expect("symlink");

    let r = s.get("/api/download?path=proj");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/zip"));
    assert!(
        r.header("content-disposition")
            .expect("cd")
            .contains("filename=\"proj.zip\"")
    );
    let zip = read_zip(&r.body);
    let names: Vec<&str> = zip.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "proj/",
            "proj/.env",
            "proj/big.bin",
            "proj/escape",
            "proj/link",
            "proj/src/",
            "proj/src/empty/",
            "proj/src/main.rs"
        ]
    );
    assert_eq!(zip["proj/src/main.rs"].1, b"fn main() {}");
    assert!(zip["proj/big.bin"].1 == big);
    assert_eq!(zip["proj/big.bin"].0, 0o100_750);
    // Links are stored as links, never followed.
    assert_eq!(zip["proj/link"], (0o120_777, b"src/main.rs".to_vec()));
    assert_eq!(zip["proj/escape"].1, b"../../outside/secret");
    assert!(!String::from_utf8_lossy(&r.body).contains(MARKER));

    let whole = read_zip(&s.get("/api/download").body);
    assert!(whole.contains_key("workspace/proj/src/main.rs"));
}

#[test]
fn zip64_records_are_readable() {
    let mut zip = fileserver::zip::ZipWriter::new_zip64(Vec::new());
    zip.add_dir(b"d", 1_700_000_000, 0o755).expect("dir");
    zip.add_file(b"d/a", 1_700_000_000, 0o644, 3, &mut &b"abc"[..])
        .expect("file");
    zip.add_symlink(b"d/l", 1_700_000_000, b"a").expect("link");
    let bytes = zip.finish().expect("finish");
    let z = read_zip(&bytes);
    assert_eq!(z["d/a"].1, b"abc");
    assert_eq!(z["d/l"].1, b"a");
    assert_eq!(z.len(), 3);
}

#[test]
fn zip_with_more_than_65535_entries_uses_zip64_end_records() {
    let mut zip = fileserver::zip::ZipWriter::new(Vec::new());
    for i in 0..70_000u32 {
        zip.add_file(
            format!("f{i}").as_bytes(),
            1_700_000_000,
            0o644,
            1,
            &mut &b"x"[..],
        )
        .expect("add");
    }
    let z = read_zip(&zip.finish().expect("finish"));
    assert_eq!(z.len(), 70_000);
    assert_eq!(z["f69999"].1, b"x");
}

fn partials(dir: &std::path::Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with(".octo-partial"))
        .collect()
}

#[test]
fn upload_creates_refuses_overwrite_and_replaces_on_request() {
    let s = Server::start();
    let r = s.request("PUT", "/api/upload?path=new.txt", &[], b"first");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["path"], "new.txt");
    assert_eq!(fs::read(s.root().join("new.txt")).expect("read"), b"first");

    s.request("PUT", "/api/upload?path=new.txt", &[], b"second")
        .assert_error(409, "already_exists");
    assert_eq!(fs::read(s.root().join("new.txt")).expect("read"), b"first");

    let r = s.request(
        "PUT",
        "/api/upload?path=new.txt&overwrite=true",
        &[],
        b"second",
    );
    assert_eq!(r.status, 200);
    assert_eq!(fs::read(s.root().join("new.txt")).expect("read"), b"second");

    s.request("PUT", "/api/upload?path=a/b/c.txt", &[], b"x")
        .assert_error(404, "not_found");
    let r = s.request("PUT", "/api/upload?path=a/b/c.txt&parents=true", &[], b"x");
    assert_eq!(r.status, 201);
    assert_eq!(fs::read(s.root().join("a/b/c.txt")).expect("read"), b"x");

    s.request("PUT", "/api/upload?path=a&overwrite=true", &[], b"x")
        .assert_error(409, "is_a_directory");
    s.request("PUT", "/api/upload?path=/", &[], b"x")
        .assert_error(400, "invalid_path");

    // Chunked bodies stream as well.
    let r = s.request(
        "PUT",
        "/api/upload?path=chunked",
        &[("Transfer-Encoding", "chunked")],
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        fs::read(s.root().join("chunked")).expect("read"),
        b"hello world"
    );

    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 239) as u8).collect();
    assert_eq!(
        s.request("PUT", "/api/upload?path=big", &[], &big).status,
        201
    );
    assert!(fs::read(s.root().join("big")).expect("read") == big);
    assert!(partials(&s.root()).is_empty());
    assert!(partials(&s.root().join("a/b")).is_empty());
}

#[test]
fn upload_size_limit_is_enforced_while_streaming() {
    let s = Server::with_limit(1000);
    assert_eq!(
        s.request("PUT", "/api/upload?path=ok", &[], &[7u8; 1000])
            .status,
        201
    );
    // Declared too large: refused before the body.
    s.request("PUT", "/api/upload?path=declared", &[], &[7u8; 1001])
        .assert_error(413, "payload_too_large");
    // Not declared (chunked): refused once the stream passes the limit.
    let mut body = Vec::new();
    for _ in 0..4 {
        body.extend_from_slice(b"190\r\n");
        body.extend_from_slice(&[b'x'; 400]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    s.request(
        "PUT",
        "/api/upload?path=streamed",
        &[("Transfer-Encoding", "chunked")],
        &body,
    )
    .assert_error(413, "payload_too_large");
    eventually("no partial files", || names(&s.root()) == ["ok"]);
}

#[test]
fn uploads_past_the_quota_octod_sends_are_507_and_leave_nothing() {
    let s = Server::start();
    let quota = [("X-Octo-Quota", "used=900, limit=1000")];
    assert_eq!(
        s.request("PUT", "/api/upload?path=fits", &quota, &[7u8; 100])
            .status,
        201
    );
    // Declared past the quota: refused before the body, in the API's error shape.
    let r = s.request("PUT", "/api/upload?path=declared", &quota, &[7u8; 101]);
    r.assert_error(507, "insufficient_storage");
    assert_eq!(
        r.json()["error"]["message"],
        "declared: the storage quota is full: 900 bytes of 1000 bytes used, 100 bytes left; delete files to make room"
    );
    // Streamed (chunked): refused once the bytes cross it.
    let mut body = Vec::new();
    for _ in 0..4 {
        body.extend_from_slice(b"40\r\n");
        body.extend_from_slice(&[b'x'; 64]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    s.request(
        "PUT",
        "/api/upload?path=streamed",
        &[quota[0], ("Transfer-Encoding", "chunked")],
        &body,
    )
    .assert_error(507, "insufficient_storage");
    // Over the quota: even a byte is refused; no header, no quota.
    s.request(
        "PUT",
        "/api/upload?path=byte",
        &[("X-Octo-Quota", "used=1001, limit=1000")],
        b"x",
    )
    .assert_error(507, "insufficient_storage");
    assert_eq!(
        s.request("PUT", "/api/upload?path=free", &[], &[7u8; 2000])
            .status,
        201
    );
    eventually("no partial files", || names(&s.root()) == ["fits", "free"]);
}

#[test]
fn usage_walks_the_workspace() {
    let s = Server::start();
    fs::create_dir_all(s.root().join("a/b")).expect("mkdir");
    fs::write(s.root().join("a/b/big"), vec![1u8; 1 << 20]).expect("write");
    let r = s.get("/api/usage");
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = r.json();
    let bytes = usage["bytes"].as_u64().expect("bytes");
    assert!((1 << 20..2 << 20).contains(&bytes), "{usage}");
    assert_eq!(usage["skipped"], 0);
    assert!(usage["took_ms"].is_u64(), "{usage}");
}

#[test]
fn aborted_upload_leaves_no_file() {
    let s = Server::start();
    let mut conn = TcpStream::connect(s.addr).expect("connect");
    let head = format!(
        "PUT /api/upload?path=aborted.bin HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        10 << 20
    );
    conn.write_all(head.as_bytes()).expect("head");
    conn.write_all(&vec![1u8; 1 << 20])
        .expect("part of the body");
    // The upload is really under way: its staged file exists.
    eventually("a staged file", || !partials(&s.root()).is_empty());
    drop(conn); // the connection drops mid-body
    eventually("the staged file removed", || names(&s.root()).is_empty());
    // And the server is still fine.
    assert_eq!(
        s.request("PUT", "/api/upload?path=aborted.bin", &[], b"ok")
            .status,
        201
    );
}

#[test]
fn mkdir_with_and_without_parents() {
    let s = Server::start();
    let r = s.request("POST", "/api/mkdir?path=d", &[], b"");
    assert_eq!((r.status, r.json()["kind"].as_str()), (201, Some("dir")));
    s.request("POST", "/api/mkdir?path=d", &[], b"")
        .assert_error(409, "already_exists");
    s.request("POST", "/api/mkdir?path=x/y/z", &[], b"")
        .assert_error(404, "not_found");
    assert_eq!(
        s.request("POST", "/api/mkdir?path=x/y/z&parents=true", &[], b"")
            .status,
        201
    );
    assert!(s.root().join("x/y/z").is_dir());
    assert_eq!(
        s.request("POST", "/api/mkdir?path=x/y/z&parents=true", &[], b"")
            .status,
        200
    );
    fs::write(s.root().join("file"), "").expect("write");
    s.request("POST", "/api/mkdir?path=file/sub&parents=true", &[], b"")
        .assert_error(409, "not_a_directory");
}

#[test]
fn move_renames_without_clobbering_unless_asked() {
    let s = Server::start();
    let root = s.root();
    fs::write(root.join("a"), "A").expect("write");
    fs::write(root.join("b"), "B").expect("write");
    fs::create_dir(root.join("dir")).expect("mkdir");
    fs::write(root.join("target"), "T").expect("write");
    symlink("target", root.join("link")).expect("symlink");

    let r = s.request("POST", "/api/move?from=a&to=dir/a2", &[], b"");
    assert_eq!((r.status, r.json()["path"].as_str()), (200, Some("dir/a2")));
    assert_eq!(fs::read(root.join("dir/a2")).expect("read"), b"A");
    s.request("POST", "/api/move?from=b&to=dir/a2", &[], b"")
        .assert_error(409, "already_exists");
    assert_eq!(fs::read(root.join("b")).expect("read"), b"B");
    assert_eq!(
        s.request(
            "POST",
            "/api/move?from=b&to=dir/a2&overwrite=true",
            &[],
            b""
        )
        .status,
        200
    );
    assert_eq!(fs::read(root.join("dir/a2")).expect("read"), b"B");
    s.request("POST", "/api/move?from=dir&to=dir/inside", &[], b"")
        .assert_error(400, "invalid_move");
    s.request("POST", "/api/move?from=missing&to=x", &[], b"")
        .assert_error(404, "not_found");
    s.request("POST", "/api/move?from=/&to=x", &[], b"")
        .assert_error(400, "invalid_path");
    // Moving a link moves the link, not its target.
    assert_eq!(
        s.request("POST", "/api/move?from=link&to=moved", &[], b"")
            .status,
        200
    );
    assert_eq!(
        fs::read_link(root.join("moved"))
            .expect("readlink")
            .to_str(),
        Some("target")
    );
    assert_eq!(fs::read(root.join("target")).expect("read"), b"T");
}

#[test]
fn copy_files_links_and_trees() {
    let s = Server::start();
    let root = s.root();
    fs::create_dir_all(root.join("src/sub")).expect("mkdir");
    fs::write(root.join("src/a"), "A").expect("write");
    fs::write(root.join("src/sub/b"), "B").expect("write");
    symlink("../../outside/secret", root.join("src/out")).expect("symlink");

    let r = s.request("POST", "/api/copy?from=src/a&to=a2", &[], b"");
    assert_eq!(r.status, 201);
    assert_eq!(fs::read(root.join("a2")).expect("read"), b"A");
    s.request("POST", "/api/copy?from=src/a&to=a2", &[], b"")
        .assert_error(409, "already_exists");
    fs::write(root.join("src/a"), "A!").expect("write");
    assert_eq!(
        s.request(
            "POST",
            "/api/copy?from=src/a&to=a2&overwrite=true",
            &[],
            b""
        )
        .status,
        200
    );
    assert_eq!(fs::read(root.join("a2")).expect("read"), b"A!");

    assert_eq!(
        s.request("POST", "/api/copy?from=src&to=dst", &[], b"")
            .status,
        201
    );
    assert_eq!(fs::read(root.join("dst/sub/b")).expect("read"), b"B");
    // The escaping link is copied as a link; its target is never read.
    assert_eq!(
        fs::read_link(root.join("dst/out")).expect("link").to_str(),
        Some("../../outside/secret")
    );

    // Copying a directory into itself copies it as it was, without recursing into the copy.
    assert_eq!(
        s.request("POST", "/api/copy?from=src&to=src/sub/again", &[], b"")
            .status,
        201
    );
    assert!(root.join("src/sub/again/sub/b").is_file());
    assert!(!root.join("src/sub/again/sub/again").exists());
    for dir in ["", "src", "src/sub", "dst"] {
        assert!(partials(&root.join(dir)).is_empty(), "partials in {dir}");
    }
}

#[test]
fn delete_needs_recursive_for_trees_and_never_follows_links() {
    let s = Server::start();
    let root = s.root();
    fs::create_dir_all(root.join("tree/a/b")).expect("mkdir");
    fs::write(root.join("tree/a/b/f"), "f").expect("write");
    fs::create_dir(root.join("empty")).expect("mkdir");
    fs::write(root.join("file"), "x").expect("write");
    fs::create_dir(root.join("keep")).expect("mkdir");
    fs::write(root.join("keep/precious"), "p").expect("write");
    symlink("keep", root.join("link")).expect("symlink");
    symlink("../../keep", root.join("tree/a/up")).expect("symlink");

    let del = |p: &str| s.request("DELETE", &format!("/api/delete?path={p}"), &[], b"");
    assert_eq!(del("file").status, 204);
    assert_eq!(del("empty").status, 204);
    del("tree").assert_error(409, "directory_not_empty");
    assert_eq!(del("tree&recursive=true").status, 204);
    assert!(!root.join("tree").exists());
    assert_eq!(del("link&recursive=true").status, 204);
    assert!(
        root.join("keep/precious").is_file(),
        "link target untouched"
    );
    del("missing").assert_error(404, "not_found");
    del("/").assert_error(400, "invalid_path");
    del("keep/..").assert_error(400, "invalid_path");
    assert_eq!(names(&root), ["keep"]);
}

#[test]
fn search_by_name() {
    let s = Server::start();
    let root = s.root();
    fs::create_dir_all(root.join("a/deep/er")).expect("mkdir");
    fs::create_dir_all(root.join(".git")).expect("mkdir");
    fs::write(root.join("a/deep/er/Report.md"), "").expect("write");
    fs::write(root.join("a/report.txt"), "").expect("write");
    fs::write(root.join(".git/report"), "").expect("write");
    symlink("a", root.join("alias")).expect("symlink");

    let v = s.get("/api/search?q=REPORT").json();
    let mut paths: Vec<&str> = v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|e| e["path"].as_str().expect("path"))
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, ["a/deep/er/Report.md", "a/report.txt"]);
    assert_eq!(v["truncated"], false);

    let v = s.get("/api/search?q=report&hidden=true").json();
    assert_eq!(v["results"].as_array().expect("results").len(), 3);
    let v = s.get("/api/search?q=report&limit=1").json();
    assert_eq!(
        (
            v["results"].as_array().expect("r").len(),
            v["truncated"].as_bool()
        ),
        (1, Some(true))
    );
    let v = s
        .get(&format!("/api/search?path=a/deep&q={}", q("er")))
        .json();
    assert_eq!(v["results"][0]["path"], "a/deep/er");
    // The link is found by name but not descended into (no duplicates through it).
    let v = s.get("/api/search?q=alias").json();
    assert_eq!(v["results"].as_array().expect("r").len(), 1);
    s.get("/api/search").assert_error(400, "bad_request");
}

#[test]
fn keep_alive_connection_serves_several_requests() {
    let s = Server::start();
    fs::write(s.root().join("f"), "abc").expect("write");
    let mut c = TcpStream::connect(s.addr).expect("connect");
    let req = format!(
        "GET /api/download?path=f HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    c.write_all(req.as_bytes()).expect("write");
    c.write_all(req.as_bytes()).expect("write");
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while got.windows(3).filter(|w| *w == b"abc").count() < 2 {
        let n = c.read(&mut buf).expect("read");
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
    }
}
