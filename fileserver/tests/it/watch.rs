//! `GET /api/watch` over a real socket: the event stream's head, its first status, a change
//! written on disk arriving as an event, the token, and streams that end at shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::util::{Server, TOKEN, raw_request};

/// One server-sent event (comments are skipped).
#[derive(Debug)]
struct Event {
    name: String,
    data: serde_json::Value,
}

/// A client of the event stream on its own connection; a read fails after 30 s of silence
/// rather than hang.
struct Events {
    reader: BufReader<TcpStream>,
    status_line: String,
    headers: Vec<(String, String)>,
    /// The body read so far, de-chunked, not yet parsed into events.
    body: String,
}

impl Events {
    fn open(server: &Server) -> Events {
        let mut conn = TcpStream::connect(server.addr).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        write!(
            conn,
            "GET /api/watch HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\
             Authorization: Bearer {TOKEN}\r\n\r\n"
        )
        .expect("request");
        let mut reader = BufReader::new(conn);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).expect("status line");
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("head");
            let Some((k, v)) = line.trim_end().split_once(':') else {
                break;
            };
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        Events {
            reader,
            status_line,
            headers,
            body: String::new(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads one chunk of the (chunked) body; false at its end.
    fn read_chunk(&mut self) -> bool {
        let mut size = String::new();
        if self.reader.read_line(&mut size).expect("chunk size") == 0 {
            return false;
        }
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            return false;
        }
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk).expect("chunk");
        chunk.truncate(size);
        self.body
            .push_str(&String::from_utf8(chunk).expect("UTF-8 events"));
        true
    }

    /// The next event; `None` when the stream ends.
    fn next(&mut self) -> Option<Event> {
        loop {
            while let Some(end) = self.body.find("\n\n") {
                let block: String = self.body.drain(..end + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if let Some(name) = name {
                    let data = serde_json::from_str(&data).expect("JSON data");
                    return Some(Event { name, data });
                }
            }
            if !self.read_chunk() {
                return None;
            }
        }
    }

    fn expect(&mut self, name: &str) -> Event {
        let event = self.next().expect("the stream goes on");
        assert_eq!(event.name, name, "{event:?}");
        event
    }
}

#[test]
fn changes_on_disk_arrive_as_events() {
    let server = Server::start();
    std::fs::create_dir(server.root().join("src")).expect("mkdir");
    let mut events = Events::open(&server);
    assert!(
        events.status_line.contains(" 200 "),
        "{}",
        events.status_line
    );
    assert_eq!(events.header("content-type"), Some("text/event-stream"));
    assert_eq!(events.header("cache-control"), Some("no-cache"));
    let status = events.expect("status").data;
    assert_eq!(status["complete"], true, "{status}");
    assert_eq!(status["watched"], 2, "{status}");
    assert_eq!(status["unwatched"], serde_json::json!([]));

    std::fs::write(server.root().join("src/lib.rs"), "// new").expect("write");
    let change = events.expect("change").data;
    assert_eq!(
        change,
        serde_json::json!({"dirs": [{"path": "src", "names": ["lib.rs"]}]})
    );
    // Through the API too: an upload is a change like any other.
    let up = server.request("PUT", "/api/upload?path=up.txt", &[], b"x");
    assert_eq!(up.status, 201);
    // The upload's hidden temporary file may come in a batch of its own before the rename
    // (a loaded machine splits the coalescing window): read on until `up.txt` is named.
    let mut seen = Vec::new();
    loop {
        let change = events.expect("change").data;
        assert_eq!(change["dirs"][0]["path"], "", "{change}");
        let named = change["dirs"][0]["names"]
            .as_array()
            .is_some_and(|n| n.contains(&serde_json::json!("up.txt")));
        seen.push(change);
        if named {
            break;
        }
        assert!(seen.len() < 5, "no change names up.txt: {seen:?}");
    }
}

#[test]
fn the_stream_needs_the_token() {
    let server = Server::start();
    let answer = raw_request(server.addr, "GET", "/api/watch", &[], b"");
    answer.assert_error(401, "unauthorized");
}

#[test]
fn open_streams_end_when_the_server_shuts_down() {
    // A grace period of an hour: if the stream held the shutdown, dropping the server would
    // wait that long (and the test harness would time out) instead of returning.
    let server = Server::with(|c| c.shutdown_grace = Duration::from_secs(3600));
    let mut events = Events::open(&server);
    events.expect("status");
    drop(server);
    assert!(events.next().is_none(), "the stream ended");
}

#[test]
fn with_watching_off_the_status_says_to_poll() {
    let server = Server::with(|c| c.watch_max_dirs = 0);
    let mut events = Events::open(&server);
    let status = events.expect("status").data;
    assert_eq!(status["complete"], false);
    assert_eq!(status["unwatched"], serde_json::json!([""]));
    assert!(status["reason"].as_str().is_some_and(|r| r.contains("off")));
}
