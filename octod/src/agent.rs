//! What a session's agent and terminals are doing, asked of the session itself: opencode's
//! `GET /session/status` through the session's gateway (its socket, its bearer token), and
//! the gateway's list of the commands running in the foreground of its terminals, so that the
//! idle stop never stops an agent in the middle of a turn nor a command its user left running
//! (issue 18, part 4). One connection per question, bounded in time and size; no answer
//! counts as "not known", never as busy, so a broken session cannot keep itself running.

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::store::Secret;

/// The gateway's relay to opencode's session status.
pub const STATUS_PATH: &str = "/opencode/session/status";
/// How long the question may take: a session whose agent is working answers at once.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// The largest answer read (one short entry per opencode session).
const MAX_ANSWER: usize = 256 * 1024;

/// Why the agent's state is not known.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("connecting to {socket}: {source}")]
    Connect {
        socket: String,
        source: std::io::Error,
    },
    #[error("asking the agent's status: {0}")]
    Http(Box<dyn std::error::Error + Send + Sync>),
    #[error("asking the agent's status: no answer within {0:?}")]
    Timeout(Duration),
    #[error("asking the agent's status: HTTP {0}")]
    Status(u16),
    #[error("the agent's status is not the JSON expected: {0}")]
    Decode(String),
}

/// Whether any of the session's agent sessions is in a turn: opencode reports it `busy`, or
/// `retry` (waiting to try the model again, still in the turn). A pending permission prompt
/// or question keeps the turn, and so the session, busy. Pure.
pub fn parse_busy(body: &[u8]) -> Result<bool, AgentError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| AgentError::Decode(e.to_string()))?;
    let map = value
        .as_object()
        .ok_or_else(|| AgentError::Decode(format!("not an object: {value}")))?;
    Ok(map
        .values()
        .any(|status| matches!(status["type"].as_str(), Some("busy" | "retry"))))
}

/// Asks the session on `socket` whether its agent is in a turn.
pub async fn busy(socket: &Path, token: &Secret) -> Result<bool, AgentError> {
    parse_busy(&ask(socket, token, STATUS_PATH).await?)
}

/// The gateway's list of the commands running in the foreground of the session's terminals.
pub const JOBS_PATH: &str = "/api/terminal/jobs";

/// The command names of the jobs in `body` (`{"jobs":[{"pgid":…,"command":…}]}`). Pure.
pub fn parse_jobs(body: &[u8]) -> Result<Vec<String>, AgentError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| AgentError::Decode(e.to_string()))?;
    let jobs = value["jobs"]
        .as_array()
        .ok_or_else(|| AgentError::Decode(format!("no jobs: {value}")))?;
    Ok(jobs
        .iter()
        .filter_map(|job| job["command"].as_str().map(str::to_owned))
        .collect())
}

/// Asks the session on `socket` which commands run in the foreground of its terminals.
pub async fn terminal_jobs(socket: &Path, token: &Secret) -> Result<Vec<String>, AgentError> {
    parse_jobs(&ask(socket, token, JOBS_PATH).await?)
}

/// One `GET path` to the session's gateway on `socket`: the answer's body, bounded in time
/// and size.
async fn ask(socket: &Path, token: &Secret, path: &'static str) -> Result<Bytes, AgentError> {
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|source| AgentError::Connect {
                socket: socket.display().to_string(),
                source,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| AgentError::Http(e.into()))?;
        tokio::spawn(connection);
        let request = Request::builder()
            .uri(path)
            .header(hyper::header::HOST, "session")
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| AgentError::Http(e.into()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| AgentError::Http(e.into()))?;
        if !response.status().is_success() {
            return Err(AgentError::Status(response.status().as_u16()));
        }
        Ok(Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(AgentError::Http)?
            .to_bytes())
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| AgentError::Timeout(TIMEOUT))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_in_progress_is_busy() {
        let check = |body: &str| parse_busy(body.as_bytes()).map_err(|e| e.to_string());
        assert_eq!(check("{}"), Ok(false));
        assert_eq!(check(r#"{"ses_1":{"type":"idle"}}"#), Ok(false));
        assert_eq!(
            check(r#"{"ses_1":{"type":"idle"},"ses_2":{"type":"busy"}}"#),
            Ok(true)
        );
        assert_eq!(
            check(r#"{"ses_1":{"type":"retry","attempt":2,"message":"rate limited","next":1}}"#),
            Ok(true)
        );
        assert_eq!(
            check("[]"),
            Err("the agent's status is not the JSON expected: not an object: []".to_owned())
        );
        assert!(check("<html>").is_err());
    }

    #[test]
    fn terminal_jobs_are_named_by_their_commands() {
        let check = |body: &str| parse_jobs(body.as_bytes()).map_err(|e| e.to_string());
        assert_eq!(check(r#"{"jobs":[]}"#), Ok(vec![]));
        assert_eq!(
            check(r#"{"jobs":[{"pgid":31,"command":"sleep"},{"pgid":40,"command":"vim"}]}"#),
            Ok(vec!["sleep".to_owned(), "vim".to_owned()])
        );
        assert!(check("{}").is_err());
        assert!(check("<html>").is_err());
    }
}
