//! The proxy into each session: `/sessions/{id}/opencode/…` (HTTP and server-sent events),
//! `/sessions/{id}/files/…` (streamed both ways) and `/sessions/{id}/terminal` (WebSocket) to
//! the session's services on 127.0.0.1, with the session's token injected.
//!
//! Every request is authorized and, for a stopped session, woken by a [`Sessions`]
//! implementation (the engine's is [`resolve::EngineSessions`]); this module only moves bytes. Bodies stream through
//! unbuffered, with no timeouts, so SSE and long transfers work; header rules are in
//! [`headers`].
//!
//! Error policy: failures before the container answers use [`ApiError`] (`not_found` for
//! a session the user may not see, `session_waking` 503 + `Retry-After` from the resolver,
//! `upstream_unavailable` 502 when the service refuses the connection); whatever the
//! container answers is passed on as it is.

mod headers;
mod http;
mod metrics;
pub mod resolve;
mod ws;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::{any, get};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub use metrics::ProxyMetrics;
pub use resolve::EngineSessions;

use crate::http::ApiError;
use crate::identity::CurrentUser;
use crate::session::SessionId;
use crate::store::Secret;

/// A service in a session container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `opencode serve`: HTTP and server-sent events.
    Opencode,
    /// `octo-fileserver`: HTTP, large bodies both ways.
    Files,
    /// ttyd: one WebSocket.
    Terminal,
}

impl Service {
    pub const ALL: [Self; 3] = [Self::Opencode, Self::Files, Self::Terminal];

    /// The path segment after `/sessions/{id}/`, also the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opencode => "opencode",
            Self::Files => "files",
            Self::Terminal => "terminal",
        }
    }

    fn from_segment(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == segment)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where a session's service listens: `127.0.0.1:<port>`, demanding `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub port: u16,
    pub token: Secret,
}

/// The user name opencode's HTTP basic auth expects (`OPENCODE_SERVER_USERNAME` in the
/// session image's entrypoint).
pub const OPENCODE_USER: &str = "opencode";
/// The user name of ttyd's `-c octo:<token>`.
pub const TERMINAL_USER: &str = "octo";

/// What the proxy needs from the engine. Implemented over the engine by the API; tests have
/// an in-memory one.
pub trait Sessions: Send + Sync + 'static {
    /// The upstream of `service` in session `id` for `user`. Checks owner-or-admin (another
    /// user's session is `ApiError::not_found`, so its existence is not revealed), wakes a
    /// stopped session and waits until it is ready, bounded (then
    /// `ApiError::unavailable("session_waking", …, retry_after)`).
    fn resolve(
        &self,
        user: &CurrentUser,
        id: &SessionId,
        service: Service,
    ) -> impl Future<Output = Result<Upstream, ApiError>> + Send;

    /// Traffic for session `id` (for idle stop). Called on every proxied request, on every
    /// WebSocket message, and at most once per [`ACTIVITY_INTERVAL`] while a body streams:
    /// keep it cheap and non-blocking.
    fn activity(&self, id: &SessionId);
}

/// How often an open terminal counts as activity although nothing flows: design.md counts an
/// open terminal as use, so a shell left open (a long build, `tail -f`, a person reading) keeps
/// its session from the idle stop.
pub const TERMINAL_KEEPALIVE: Duration = Duration::from_secs(60);

/// How often a long-running body (an SSE stream, a large transfer) reports activity.
pub const ACTIVITY_INTERVAL: Duration = Duration::from_secs(5);

/// How long connecting to a service on 127.0.0.1 may take. Refusals come at once; this only
/// bounds a container whose network namespace is wedged.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type HttpClient = Client<HttpConnector, axum::body::Body>;

/// The proxy: a pooled HTTP/1 client for the services and the counters. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Proxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: HttpClient,
    metrics: ProxyMetrics,
    terminal_keepalive: Duration,
}

impl Default for Proxy {
    fn default() -> Self {
        Self::new()
    }
}

impl Proxy {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            // Idle keep-alive connections kept per session service. Loopback connections are
            // cheap to keep and not free to reopen under load (the proxy benchmark drives
            // hundreds of concurrent requests at one session).
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self {
            inner: Arc::new(Inner {
                client,
                metrics: ProxyMetrics::default(),
                terminal_keepalive: TERMINAL_KEEPALIVE,
            }),
        }
    }

    /// How often an open terminal reports activity while nothing is typed (default
    /// [`TERMINAL_KEEPALIVE`]).
    #[must_use]
    pub fn with_terminal_keepalive(self, every: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                client: self.inner.client.clone(),
                metrics: ProxyMetrics::default(),
                terminal_keepalive: every,
            }),
        }
    }

    pub(crate) fn terminal_keepalive(&self) -> Duration {
        self.inner.terminal_keepalive
    }

    /// The counters, for `/metrics`.
    pub fn metrics(&self) -> &ProxyMetrics {
        &self.inner.metrics
    }
}

/// The proxy's routes, to be merged (not nested) into octod's router. `S` is the router's
/// state; it provides the [`Proxy`] and the [`Sessions`] implementation `R` through `FromRef`,
/// and the signed-in user through auth's [`CurrentUser`] extractor (its rejection, `401`,
/// answers before anything else happens).
pub fn routes<S, R>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    R: Sessions,
    Proxy: FromRef<S>,
    Arc<R>: FromRef<S>,
    CurrentUser: FromRequestParts<S>,
{
    routes_with_user::<S, R, CurrentUser>()
}

/// [`routes`] with another extractor `U` of the signed-in user (the tests use a header).
pub fn routes_with_user<S, R, U>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    R: Sessions,
    Proxy: FromRef<S>,
    Arc<R>: FromRef<S>,
    U: FromRequestParts<S> + Send + 'static,
    CurrentUser: From<U>,
{
    let http = any(http_handler::<R, U>);
    Router::new()
        .route("/sessions/{id}/opencode", http.clone())
        .route("/sessions/{id}/opencode/", http.clone())
        .route("/sessions/{id}/opencode/{*rest}", http.clone())
        .route("/sessions/{id}/files", http.clone())
        .route("/sessions/{id}/files/", http.clone())
        .route("/sessions/{id}/files/{*rest}", http)
        .route("/sessions/{id}/terminal", get(terminal_handler::<R, U>))
}

async fn http_handler<R, U>(
    State(proxy): State<Proxy>,
    State(sessions): State<Arc<R>>,
    user: U,
    request: Request,
) -> Response
where
    R: Sessions,
    CurrentUser: From<U>,
{
    http::forward(&proxy, &sessions, &CurrentUser::from(user), request).await
}

async fn terminal_handler<R, U>(
    State(proxy): State<Proxy>,
    State(sessions): State<Arc<R>>,
    user: U,
    request: Request,
) -> Response
where
    R: Sessions,
    CurrentUser: From<U>,
{
    ws::upgrade(proxy, sessions, &CurrentUser::from(user), request).await
}

/// A request path split into its session, service and the rest, which is what the
/// container sees (`""` stands for `/`). Works on the raw path, so percent-encoding in the
/// rest reaches the container unchanged.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    id: SessionId,
    service: Service,
    rest: &'a str,
}

fn parse_target(path: &str) -> Option<Target<'_>> {
    let after = path.strip_prefix("/sessions/")?;
    let (id, after) = after.split_once('/')?;
    let (segment, rest) = match after.find('/') {
        Some(i) => after.split_at(i),
        None => (after, ""),
    };
    Some(Target {
        id: id.parse().ok()?,
        service: Service::from_segment(segment)?,
        rest,
    })
}

/// The `Authorization` value a service demands.
fn credential(service: Service, token: &Secret) -> HeaderValue {
    let value = match service {
        Service::Opencode => basic(OPENCODE_USER, token),
        Service::Terminal => basic(TERMINAL_USER, token),
        Service::Files => format!("Bearer {}", token.expose()),
    };
    // Tokens are hex (Secret::generate); a value a header cannot carry cannot authenticate
    // either, and the container answers 401.
    let mut value = HeaderValue::try_from(value).unwrap_or(HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

fn basic(user: &str, token: &Secret) -> String {
    let mut out = String::from("Basic ");
    base64_into(&mut out, user.as_bytes(), token.expose().as_bytes());
    out
}

/// Standard base64 (RFC 4648, padded) of `a` followed by `:` and `b`, appended to `out`: the
/// user-pass of HTTP basic auth, and ttyd's `AuthToken`.
fn base64_into(out: &mut String, a: &[u8], b: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = a.iter().chain(b":").chain(b).copied();
    out.reserve((a.len() + b.len() + 1).div_ceil(3) * 4);
    while let Some(b0) = bytes.next() {
        let b1 = bytes.next();
        let b2 = bytes.next();
        let n = u32::from(b0) << 16 | u32::from(b1.unwrap_or(0)) << 8 | u32::from(b2.unwrap_or(0));
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 0x3f) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if b1.is_some() { sextet(6) } else { '=' });
        out.push(if b2.is_some() { sextet(0) } else { '=' });
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn targets_split_on_the_raw_path() {
        let t = |path| parse_target(path).map(|t| (t.id.to_string(), t.service, t.rest));
        let id = || "abc1".to_owned();
        assert_eq!(
            t("/sessions/abc1/opencode"),
            Some((id(), Service::Opencode, ""))
        );
        assert_eq!(
            t("/sessions/abc1/opencode/"),
            Some((id(), Service::Opencode, "/"))
        );
        assert_eq!(
            t("/sessions/abc1/files/api/list%20x//y/../z"),
            Some((id(), Service::Files, "/api/list%20x//y/../z"))
        );
        assert_eq!(
            t("/sessions/abc1/terminal"),
            Some((id(), Service::Terminal, ""))
        );
        assert_eq!(t("/sessions/ABC/files/x"), None);
        assert_eq!(t("/sessions/%61bc/files/x"), None);
        assert_eq!(t("/sessions/abc1/other/x"), None);
        assert_eq!(t("/sessions/abc1"), None);
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let enc = |a: &str, b: &str| {
            let mut out = String::new();
            base64_into(&mut out, a.as_bytes(), b.as_bytes());
            out
        };
        // "f:" "fo:" "foo:" cover every padding case.
        assert_eq!(enc("f", ""), "Zjo=");
        assert_eq!(enc("fo", ""), "Zm86");
        assert_eq!(enc("foo", ""), "Zm9vOg==");
        assert_eq!(
            enc("Aladdin", "open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(enc("octo", "tok"), "b2N0bzp0b2s=");
    }

    #[test]
    fn credentials_per_service() {
        let token = Secret::new("tok".to_owned());
        assert_eq!(
            credential(Service::Opencode, &token),
            "Basic b3BlbmNvZGU6dG9r" // opencode:tok
        );
        assert_eq!(credential(Service::Terminal, &token), "Basic b2N0bzp0b2s=");
        assert_eq!(credential(Service::Files, &token), "Bearer tok");
        assert!(credential(Service::Files, &token).is_sensitive());
    }
}
