//! HTTP/1.1 over octod's admin Unix socket: one connection per request (hyper), JSON in and
//! out, streamed answers read line by line. Connection and HTTP failures become [`Failure`]s
//! with the exit code scripts rely on.

use std::path::{Path, PathBuf};

use bytes::{Buf as _, Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::Failure;

/// A client of one admin socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A request whose answer is JSON (or empty: `None`).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, Failure> {
        let response = self.send(method, path, body).await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::Failed(format!("reading octod's answer to {path}: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(self.http_failure(status, &bytes));
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Failure::Failed(format!("octod's answer to {path} is not JSON: {e}")))
    }

    /// A request whose answer is a stream of JSON lines; `each` sees every line as it arrives
    /// (the raw text and its parse).
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
        mut each: impl FnMut(&str, &Value) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let response = self.send(method, path, None).await?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            return Err(self.http_failure(status, &bytes));
        }
        let mut pending = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| Failure::Failed(format!("reading octod's stream {path}: {e}")))?;
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data.copy_to_bytes(data.remaining()));
            while let Some(at) = pending.iter().position(|b| *b == b'\n') {
                let line = pending.split_to(at + 1);
                let text = String::from_utf8_lossy(&line[..at]).into_owned();
                if text.trim().is_empty() {
                    continue;
                }
                let value: Value = serde_json::from_str(&text).map_err(|e| {
                    Failure::Failed(format!("octod's stream {path} sent a bad line: {e}"))
                })?;
                each(&text, &value)?;
            }
        }
        Ok(())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response<Incoming>, Failure> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| connect_failure(&self.socket, &e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| {
                Failure::Unreachable(format!(
                    "talking to octod on {}: {e}",
                    self.socket.display()
                ))
            })?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "octod");
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(bytes))
            .map_err(|e| Failure::Failed(format!("building the request {path}: {e}")))?;
        sender.send_request(request).await.map_err(|e| {
            Failure::Unreachable(format!(
                "octod on {} did not answer {path}: {e}",
                self.socket.display()
            ))
        })
    }

    fn http_failure(&self, status: StatusCode, body: &[u8]) -> Failure {
        let message = serde_json::from_slice::<octo_wire::ErrorBody>(body).map_or_else(
            |_| String::from_utf8_lossy(body).trim().to_owned(),
            |b| b.error.message,
        );
        http_failure(status, &message, &self.socket)
    }
}

/// An HTTP error status as a failure with its exit code. Pure.
pub fn http_failure(status: StatusCode, message: &str, socket: &Path) -> Failure {
    match status {
        StatusCode::NOT_FOUND => Failure::NotFound(message.to_owned()),
        StatusCode::FORBIDDEN => {
            Failure::Denied(format!("{message} (socket {})", socket.display()))
        }
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
            Failure::Failed(format!("refused: {message}"))
        }
        _ => Failure::Failed(format!("{message} ({status})")),
    }
}

/// A failed connect as a failure with its exit code. Pure.
pub fn connect_failure(socket: &Path, error: &std::io::Error) -> Failure {
    use std::io::ErrorKind;
    let path = socket.display();
    match error.kind() {
        ErrorKind::PermissionDenied => Failure::Denied(format!(
            "permission denied: octoctl needs root or membership in group octo-admin (socket {path})"
        )),
        ErrorKind::NotFound => Failure::Unreachable(format!(
            "octod is not running (no socket at {path}): systemctl start octod.socket"
        )),
        ErrorKind::ConnectionRefused => Failure::Unreachable(format!(
            "octod is not running (nothing listens on {path}): systemctl start octod.socket"
        )),
        _ => Failure::Unreachable(format!("connecting to octod on {path}: {error}")),
    }
}
