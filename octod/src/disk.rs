//! Disk usage of the session homes and the users' quotas (issue 18, part 3).
//!
//! A home is measured by the session's own gateway (`GET /api/usage`: a walk as the
//! session's user, who can read all of it, at the lowest priority), one session at a time and
//! each running session at most once per `limits.disk_measure_minutes` ([`next_to_measure`]).
//! A stopped home does not change, so its last measurement stands (kept in redb). What octod
//! proxies into a home between two measurements (uploads) is added to the last one.
//!
//! A user's quota covers all their homes together. The gateway enforces it on uploads from
//! the `X-Octo-Quota` header octod sets ([`quota_header`]); from the warning threshold on, the
//! UI shows a warning and the agent finds [`NOTICE_FILE`] in its home, which the shipped
//! templates list among opencode's `instructions`, so it is in the agent's prompt.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::session::SessionId;
use crate::store::Secret;

/// The gateway's usage walk.
pub const USAGE_PATH: &str = "/api/usage";
/// The notice the agent and the user find in the home's top directory while the user is at
/// or past the warning threshold; removed once they are under it again.
pub const NOTICE_FILE: &str = "OCTO-DISK-QUOTA.md";
/// How long one walk may take: a home of millions of files, at idle I/O priority.
pub const MEASURE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long writing or removing the notice may take.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ANSWER: usize = 64 * 1024;

/// A home's size as last measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    pub bytes: u64,
    pub at: SystemTime,
}

/// Where a user stands against their quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QuotaLevel {
    /// No quota, or under the warning threshold.
    Ok,
    /// At or past the warning threshold, under the quota.
    Warning,
    /// At or past the quota: uploads are refused.
    Over,
}

impl QuotaLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Over => "over",
        }
    }
}

/// `used` against `quota` with a warning at `warn_percent` of it. Pure.
pub fn level(used: u64, quota: Option<u64>, warn_percent: u8) -> QuotaLevel {
    let Some(quota) = quota else {
        return QuotaLevel::Ok;
    };
    if used >= quota {
        return QuotaLevel::Over;
    }
    // used / quota >= warn / 100, in integers (u128: no overflow).
    if u128::from(used) * 100 >= u128::from(quota) * u128::from(warn_percent) {
        QuotaLevel::Warning
    } else {
        QuotaLevel::Ok
    }
}

/// The `X-Octo-Quota` value the gateway reads: `used=<bytes>, limit=<bytes>`.
pub fn quota_header(used: u64, limit: u64) -> String {
    format!("used={used}, limit={limit}")
}

/// Which running session to measure now, if any: the first never tried, else the one tried
/// longest ago, once its last try is `every` old. `tried` is when each session was last
/// measured or tried (a failed walk counts, so a session that cannot answer waits its turn
/// and does not starve the others). One at a time, so that walks never pile up on the host's
/// disks; ties go to the lowest id (a stable order). Pure.
pub fn next_to_measure<'a>(
    running: impl IntoIterator<Item = &'a SessionId>,
    tried: &BTreeMap<SessionId, SystemTime>,
    now: SystemTime,
    every: Duration,
) -> Option<&'a SessionId> {
    running
        .into_iter()
        .map(|id| (tried.get(id).copied(), id))
        .filter(|(at, _)| {
            at.is_none_or(|at| now.duration_since(at).unwrap_or(Duration::ZERO) >= every)
        })
        .min()
        .map(|(_, id)| id)
}

/// The notice's text for a user at `level` (none for `Ok`: the notice is removed).
pub fn notice(used: u64, quota: u64, level: QuotaLevel) -> Option<String> {
    let size = crate::limits::size;
    let head = match level {
        QuotaLevel::Ok => return None,
        QuotaLevel::Warning => "Your storage is almost full",
        QuotaLevel::Over => "Your storage is full",
    };
    Some(format!(
        "# {head}\n\n\
         This workspace's owner uses {} of their storage quota of {} (all their Octo sessions \
         together). Past the quota, uploads are refused.\n\n\
         To the agent: before writing large files (downloads, builds, caches, datasets), tell \
         the user, and suggest what could be deleted (`du -sh ~/* ~/.cache`). Prefer cleaning \
         caches you created. This file is written by Octo and removed once usage is under the \
         warning threshold again; do not edit it.\n",
        size(used),
        size(quota),
    ))
}

/// Why a measurement or a notice failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("connecting to {socket}: {source}")]
    Connect {
        socket: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Http {
        what: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{what}: no answer within {after:?}")]
    Timeout { what: &'static str, after: Duration },
    #[error("{what}: HTTP {status}")]
    Status { what: &'static str, status: u16 },
    #[error("the gateway's usage answer is not the JSON expected: {0}")]
    Decode(String),
}

/// Parses the gateway's `{"bytes": …}`. Pure.
pub fn parse_usage(body: &[u8]) -> Result<u64, DiskError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| DiskError::Decode(e.to_string()))?;
    value["bytes"]
        .as_u64()
        .ok_or_else(|| DiskError::Decode(format!("no \"bytes\" in {value}")))
}

/// Asks the session's gateway to walk its home; the bytes it holds.
pub async fn measure(socket: &Path, token: &Secret) -> Result<u64, DiskError> {
    const WHAT: &str = "measuring the home";
    let (status, body) = exchange(
        socket,
        token,
        "GET",
        USAGE_PATH.to_owned(),
        Bytes::new(),
        WHAT,
        MEASURE_TIMEOUT,
    )
    .await?;
    if status != 200 {
        return Err(DiskError::Status { what: WHAT, status });
    }
    parse_usage(&body)
}

/// Writes the notice into the session's home (`Some`), or removes it (`None`; gone is fine).
pub async fn set_notice(
    socket: &Path,
    token: &Secret,
    text: Option<String>,
) -> Result<(), DiskError> {
    const WHAT: &str = "the disk quota notice";
    let (status, _) = match text {
        Some(text) => {
            exchange(
                socket,
                token,
                "PUT",
                format!("/api/upload?path={NOTICE_FILE}&overwrite=true"),
                Bytes::from(text),
                WHAT,
                NOTICE_TIMEOUT,
            )
            .await?
        }
        None => {
            exchange(
                socket,
                token,
                "DELETE",
                format!("/api/delete?path={NOTICE_FILE}"),
                Bytes::new(),
                WHAT,
                NOTICE_TIMEOUT,
            )
            .await?
        }
    };
    match status {
        200..=299 | 404 => Ok(()),
        status => Err(DiskError::Status { what: WHAT, status }),
    }
}

/// One request to the gateway on `socket` with the session's token: the status and (at most
/// [`MAX_ANSWER`] of) the body.
async fn exchange(
    socket: &Path,
    token: &Secret,
    method: &str,
    path: String,
    body: Bytes,
    what: &'static str,
    timeout: Duration,
) -> Result<(u16, Bytes), DiskError> {
    let http = |source: Box<dyn std::error::Error + Send + Sync>| DiskError::Http { what, source };
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|source| DiskError::Connect {
                socket: socket.display().to_string(),
                source,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http(e.into()))?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "session")
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            )
            .body(Full::new(body))
            .map_err(|e| http(e.into()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http(e.into()))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(http)?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| DiskError::Timeout {
            what,
            after: timeout,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn quota_levels() {
        let check = |used, quota, expected| {
            assert_eq!(level(used, quota, 90), expected, "{used} of {quota:?}");
        };
        check(u64::MAX, None, QuotaLevel::Ok);
        check(0, Some(10 * GIB), QuotaLevel::Ok);
        check(9 * GIB - 1, Some(10 * GIB), QuotaLevel::Ok);
        check(9 * GIB, Some(10 * GIB), QuotaLevel::Warning);
        check(10 * GIB - 1, Some(10 * GIB), QuotaLevel::Warning);
        check(10 * GIB, Some(10 * GIB), QuotaLevel::Over);
        check(u64::MAX, Some(u64::MAX - 1), QuotaLevel::Over);
        // No overflow near the top.
        assert_eq!(level(u64::MAX - 1, Some(u64::MAX), 100), QuotaLevel::Ok);
        assert_eq!(level(1, Some(100), 1), QuotaLevel::Warning);
    }

    #[test]
    fn the_header_is_what_the_gateway_parses() {
        assert_eq!(quota_header(5, 10), "used=5, limit=10");
        assert_eq!(quota_header(11, 10), "used=11, limit=10");
    }

    fn id(s: &str) -> SessionId {
        s.parse().expect("id")
    }

    #[test]
    fn the_scheduler_measures_the_unmeasured_then_the_stalest_one_at_a_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let every = Duration::from_secs(600);
        let (a, b, c) = (id("a"), id("b"), id("c"));
        let running = [a.clone(), b.clone(), c.clone()];
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let check =
            |measured: &[(&SessionId, SystemTime)], now: u64, expected: Option<&SessionId>| {
                let measured: BTreeMap<_, _> =
                    measured.iter().map(|(i, m)| ((*i).clone(), *m)).collect();
                assert_eq!(
                    next_to_measure(&running, &measured, t0 + Duration::from_secs(now), every),
                    expected,
                    "{measured:?} at {now}"
                );
            };
        // Nothing measured: the lowest id first.
        check(&[], 0, Some(&a));
        // The one never measured before any measured one.
        check(&[(&a, at(0)), (&c, at(0))], 0, Some(&b));
        // All fresh: nothing.
        check(&[(&a, at(0)), (&b, at(10)), (&c, at(20))], 599, None);
        // Due: the stalest first (a failed try counts as a try: the caller records it).
        check(&[(&a, at(30)), (&b, at(10)), (&c, at(20))], 700, Some(&b));
        check(&[(&a, at(30)), (&b, at(10)), (&c, at(20))], 615, Some(&b));
        check(&[(&a, at(30)), (&b, at(100)), (&c, at(20))], 625, Some(&c));
        // A clock that went back counts as fresh, not as due for ever.
        check(&[(&a, at(900)), (&b, at(900)), (&c, at(900))], 0, None);
        // Stopped sessions are not measured: their homes do not change.
        let measured = BTreeMap::new();
        assert_eq!(next_to_measure([], &measured, t0, every), None);
    }

    #[test]
    fn the_notice_says_how_full_and_goes_away_under_the_threshold() {
        assert_eq!(notice(GIB, 10 * GIB, QuotaLevel::Ok), None);
        let text = notice(9 * GIB, 10 * GIB, QuotaLevel::Warning).expect("a notice");
        assert!(
            text.starts_with("# Your storage is almost full\n"),
            "{text}"
        );
        assert!(
            text.contains("uses 9 GiB of their storage quota of 10 GiB"),
            "{text}"
        );
        let text = notice(11 * GIB, 10 * GIB, QuotaLevel::Over).expect("a notice");
        assert!(text.starts_with("# Your storage is full\n"), "{text}");
    }

    #[test]
    fn usage_answers_parse() {
        assert_eq!(
            parse_usage(br#"{"bytes":123,"entries":4,"skipped":0,"took_ms":1}"#).ok(),
            Some(123)
        );
        assert!(parse_usage(b"{}").is_err());
        assert!(parse_usage(b"<html>").is_err());
    }
}
