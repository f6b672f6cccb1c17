//! The bridge to octod's model gateway: opencode speaks HTTP to a loopback port of the
//! container, and each connection to it is relayed, byte for byte, to the Unix socket octod
//! mounted into the session (`/run/octo-llm/llm.sock`). The socket names the session, so no
//! credential passes here: whatever opencode sends as its API key is a placeholder, and octod
//! adds the provider's real key on its side of the wall.
//!
//! Bytes are copied as they come (no HTTP parsing, no buffering beyond one read), so a
//! streamed answer reaches opencode token by token. When octod's socket cannot be reached
//! (octod restarting), the connection is answered with a `502` in OpenAI's error shape, which
//! opencode shows in the chat.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream, UnixStream};

/// How long a connection waits for octod's socket to appear or accept (octod restarting,
/// or a session that started before octod bound its socket).
const CONNECT_WAIT: Duration = Duration::from_secs(5);
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Relays every connection `listener` accepts to `socket`.
pub async fn run(listener: TcpListener, socket: PathBuf) {
    loop {
        let (client, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and the like: pause rather than spin.
                tracing::warn!("model gateway bridge: accept: {error}");
                tokio::time::sleep(RETRY_EVERY).await;
                continue;
            }
        };
        let socket = socket.clone();
        tokio::spawn(async move {
            if let Err(error) = relay(client, &socket).await {
                tracing::debug!("model gateway bridge: {error}");
            }
        });
    }
}

async fn relay(mut client: TcpStream, socket: &Path) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let mut upstream = match connect(socket).await {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::warn!(socket = %socket.display(), "model gateway unreachable: {error}");
            client.write_all(UNREACHABLE.as_bytes()).await?;
            return client.shutdown().await;
        }
    };
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

async fn connect(socket: &Path) -> std::io::Result<UnixStream> {
    let deadline = tokio::time::Instant::now() + CONNECT_WAIT;
    loop {
        match UnixStream::connect(socket).await {
            Ok(stream) => return Ok(stream),
            Err(error) if tokio::time::Instant::now() >= deadline => return Err(error),
            Err(_) => tokio::time::sleep(RETRY_EVERY).await,
        }
    }
}

/// The answer when octod's socket is not there: OpenAI's error shape, so that the agent shows
/// the message.
const UNREACHABLE: &str = concat!(
    "HTTP/1.1 502 Bad Gateway\r\n",
    "Content-Type: application/json\r\n",
    "Connection: close\r\n",
    "Content-Length: 150\r\n",
    "\r\n",
    r#"{"error":{"message":"Octo's model gateway is not reachable from this session; try again in a moment","type":"api_error","code":"gateway_unreachable"}}"#,
);

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use std::net::SocketAddr;

    use super::*;

    #[test]
    fn the_unreachable_answer_has_the_length_it_declares() {
        let (head, body) = UNREACHABLE
            .split_once("\r\n\r\n")
            .expect("a head and a body");
        let declared: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("a length")
            .parse()
            .expect("a number");
        assert_eq!(body.len(), declared);
        serde_json::from_str::<serde_json::Value>(body).expect("JSON");
    }

    async fn bridge(socket: PathBuf) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(run(listener, socket));
        addr
    }

    #[tokio::test]
    async fn bytes_pass_both_ways_as_they_come() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("llm.sock");
        let unix = tokio::net::UnixListener::bind(&path).expect("bind unix");
        let addr = bridge(path).await;
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (mut server, _) = unix.accept().await.expect("accept");
        client.write_all(b"ping").await.expect("write");
        let mut buf = [0_u8; 4];
        server.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");
        // A first chunk arrives before the rest is written: nothing waits for a whole answer.
        server.write_all(b"data: 1\n\n").await.expect("write");
        let mut first = [0_u8; 9];
        client.read_exact(&mut first).await.expect("read");
        assert_eq!(&first, b"data: 1\n\n");
        server.write_all(b"data: 2\n\n").await.expect("write");
        drop(server);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.expect("read");
        assert_eq!(rest, b"data: 2\n\n");
    }

    #[tokio::test]
    async fn a_missing_socket_is_a_502_in_openai_shape() {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = bridge(dir.path().join("absent.sock")).await;
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
        assert!(
            answer.contains(r#""code":"gateway_unreachable""#),
            "{answer}"
        );
    }
}
