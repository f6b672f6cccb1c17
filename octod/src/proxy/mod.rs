//! The proxy into each session: `/sessions/{id}/opencode/…` (HTTP and server-sent events),
//! `/sessions/{id}/files/…` (streamed both ways) and `/sessions/{id}/terminal` (WebSocket) to
//! the session's gateway on its Unix socket (`…/octo/sessions/<id>.sock`, listened on by
//! systemd, so a connection to an idle session starts it), with the session's token injected
//! as `Authorization: Bearer`. The gateway serves the file API at its root and relays
//! `/opencode/…` and `/terminal` to the session's other services.
//!
//! Every request is authorized by a [`Sessions`] implementation (the engine's is
//! [`resolve::EngineSessions`]); this module only moves bytes. Bodies stream through
//! unbuffered, so SSE and long transfers work; only the wait for the response head is
//! bounded. Header rules are in [`headers`], the per-session connection pool in [`connect`].
//!
//! Streams follow the account: a request authenticated by auth's extractor carries a
//! [`Grant`]; an answer's body that is still streaming (an event stream, a download) and an open
//! terminal end as soon as the grant says its credential no longer holds (sign-out, password
//! change, disable, token revoked) or the user no longer reaches the session (a demoted
//! admin): see [`access_ended`].
//!
//! Error policy: failures before the gateway answers use [`ApiError`] (`not_found` for a
//! session the user may not see, `session_stopped`/`session_stopping` 409 from the resolver,
//! `session_waking` 503 + `Retry-After` for a session that is starting and has not answered
//! within its wake bound, `upstream_unavailable` 502 when a running session's socket refuses,
//! `upstream_timeout` 504 when no response head comes in time); whatever the gateway answers
//! is passed on as it is.

mod connect;
mod headers;
mod http;
mod metrics;
mod preview;
pub mod resolve;
mod tunnel;
mod ws;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{any, get};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub use headers::CONTENT_COOKIE;
pub use metrics::ProxyMetrics;
pub use preview::{listening_ports, preview};
pub use resolve::EngineSessions;

use crate::auth::Grant;
use crate::http::ApiError;
use crate::identity::CurrentUser;
use crate::session::SessionId;
use crate::store::Secret;

/// A service in a session, as the gateway serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `opencode serve` behind the gateway's `/opencode/…`: HTTP and server-sent events.
    Opencode,
    /// The gateway's own file API at its root: HTTP, large bodies both ways.
    Files,
    /// ttyd behind the gateway's `/terminal`: one WebSocket.
    Terminal,
    /// The apps the session runs, behind the gateway's `/preview/<port>/…`, served on the
    /// content origin only ([`preview`]): HTTP, SSE and upgrades.
    Preview,
}

impl Service {
    pub const ALL: [Self; 4] = [Self::Opencode, Self::Files, Self::Terminal, Self::Preview];

    /// The path segment after `/sessions/{id}/`, also the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opencode => "opencode",
            Self::Files => "files",
            Self::Terminal => "terminal",
            Self::Preview => "preview",
        }
    }

    /// The service of a `/sessions/{id}/<segment>/…` path on the UI's origin; previews are
    /// never there.
    fn from_segment(segment: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .filter(|s| *s != Self::Preview)
            .find(|s| s.as_str() == segment)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where a session's gateway listens, and what it demands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The gateway's Unix socket.
    pub socket: PathBuf,
    /// The session's token, sent as `Authorization: Bearer`.
    pub token: Secret,
    /// Set when the session is not known to be running (idle, starting, woken by this very
    /// connection): how long to wait for the response head before answering
    /// `503 session_waking`. `None`: the proxy's head timeout applies (then `504`).
    pub wake: Option<Duration>,
    /// The owner's storage quota for the file API: (bytes used, the quota), sent to the
    /// gateway as `X-Octo-Quota` ([`crate::disk`]); `None`: no quota (or not the file API).
    pub quota: Option<(u64, u64)>,
}

/// What the proxy needs from the engine. Implemented over the engine by the API; tests have
/// an in-memory one.
pub trait Sessions: Send + Sync + 'static {
    /// The upstream of `service` in session `id` for `user`. Checks owner-or-admin (another
    /// user's session is `ApiError::not_found`, so its existence is not revealed) and refuses
    /// sessions that must not be woken (user-stopped, stopping, deleting). Does not start
    /// anything: connecting to an idle session's socket wakes it.
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

    /// `bytes` were uploaded into session `id`'s home through the proxy (the gateway said
    /// 200/201), for the quota until its home is measured again.
    fn stored(&self, id: &SessionId, bytes: u64) {
        let _ = (id, bytes);
    }

    /// How `port` of session `id` is shared beyond its owner and the admins, and its owner
    /// (as whom a shared preview is reached): `None` for no such session. Default: shared
    /// with no one.
    fn preview_share(
        &self,
        id: &SessionId,
        port: u16,
    ) -> impl Future<Output = Option<SharedPreview>> + Send {
        let _ = (id, port);
        std::future::ready(None)
    }
}

/// A port's share and the session's owner: see [`Sessions::preview_share`].
#[derive(Debug, Clone)]
pub struct SharedPreview {
    pub owner: String,
    pub share: crate::store::PortShare,
    /// The owner's account exists and is enabled: a disabled owner's shares open nothing.
    pub owner_active: bool,
}

/// Access a session's owner gave (a shared preview), not the viewer's own: a request that
/// carries it (as an extension, in place of a [`Grant`]) has its long answers (an event
/// stream, a spliced socket) end when the future it makes resolves: the share withdrawn, the
/// link revoked or expired, the owner disabled.
#[derive(Clone)]
pub struct Given(Arc<dyn Fn() -> Ending + Send + Sync>);

/// A future that resolves when a request's access ended.
pub type Ending = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

impl Given {
    pub fn new(ends: impl Fn() -> Ending + Send + Sync + 'static) -> Self {
        Self(Arc::new(ends))
    }
}

impl std::fmt::Debug for Given {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Given").finish_non_exhaustive()
    }
}

/// How often an open terminal counts as activity although nothing flows: design.md counts an
/// open terminal as use, so a shell left open (a long build, `tail -f`, a person reading) keeps
/// its session from the idle stop.
pub const TERMINAL_KEEPALIVE: Duration = Duration::from_secs(60);

/// How often a long-running body (an SSE stream, a large transfer) reports activity.
pub const ACTIVITY_INTERVAL: Duration = Duration::from_secs(5);

/// How long connecting to a session's socket may take. Refusals come at once; this only
/// bounds a socket whose backlog is full.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default of [`Proxy::with_head_timeout`]: how long a running session may take to send
/// a response head (opencode's long prompt calls send their head early and then stream).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(300);

/// What `503 session_waking` tells the client to wait, in seconds.
pub const WAKING_RETRY_AFTER: u64 = 5;

type HttpClient = Client<connect::SessionConnector, axum::body::Body>;

/// The proxy: a pooled HTTP/1 client for the gateways (one pool per session socket) and the
/// counters. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Proxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: HttpClient,
    /// Previews' tunnels to the apps ([`tunnel`]), and what is known of each socket's.
    tunnels: tunnel::TunnelClient,
    book: Arc<tunnel::Book>,
    metrics: ProxyMetrics,
    terminal_keepalive: Duration,
    head_timeout: Duration,
}

impl Default for Proxy {
    fn default() -> Self {
        Self::new()
    }
}

impl Proxy {
    pub fn new() -> Self {
        Self::with_connector(connect::SessionConnector::default())
    }

    /// A proxy whose HTTP requests all go to `addr` over TCP instead of each session's
    /// socket: the path before sessions had sockets, kept only so that `cargo xtask bench
    /// proxy` can compare both in one run. Not for octod.
    #[doc(hidden)]
    pub fn over_tcp_for_benchmark(addr: std::net::SocketAddr) -> Self {
        Self::with_connector(connect::SessionConnector { tcp: Some(addr) })
    }

    fn with_connector(connector: connect::SessionConnector) -> Self {
        let client = Client::builder(TokioExecutor::new())
            // Idle keep-alive connections kept per session socket. Unix connections are cheap
            // to keep and not free to reopen under load (the proxy benchmark drives hundreds
            // of concurrent requests at one session).
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let book = Arc::new(tunnel::Book::default());
        let metrics = ProxyMetrics::default();
        Self {
            inner: Arc::new(Inner {
                client,
                tunnels: tunnel::client(Arc::clone(&book), Arc::clone(&metrics.tunnels)),
                book,
                metrics,
                terminal_keepalive: TERMINAL_KEEPALIVE,
                head_timeout: HEAD_TIMEOUT,
            }),
        }
    }

    /// How long a running session may take to send a response head (or to accept the
    /// terminal's WebSocket) before the client gets `504 upstream_timeout` (default
    /// [`HEAD_TIMEOUT`]).
    #[must_use]
    pub fn with_head_timeout(self, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                client: self.inner.client.clone(),
                tunnels: self.inner.tunnels.clone(),
                book: Arc::clone(&self.inner.book),
                metrics: ProxyMetrics::with_tunnels(Arc::clone(&self.inner.metrics.tunnels)),
                terminal_keepalive: self.inner.terminal_keepalive,
                head_timeout: timeout,
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
                tunnels: self.inner.tunnels.clone(),
                book: Arc::clone(&self.inner.book),
                metrics: ProxyMetrics::with_tunnels(Arc::clone(&self.inner.metrics.tunnels)),
                terminal_keepalive: every,
                head_timeout: self.inner.head_timeout,
            }),
        }
    }

    pub(crate) fn terminal_keepalive(&self) -> Duration {
        self.inner.terminal_keepalive
    }

    /// The bound on the wait for a response head from `upstream`, and the error when it
    /// runs out: `503 session_waking` for a session that is starting, else `504`.
    pub(crate) fn head_wait(&self, upstream: &Upstream, service: Service) -> (Duration, ApiError) {
        match upstream.wake {
            Some(wake) => (wake, waking()),
            None => (
                self.inner.head_timeout,
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    format!("the session's {} did not answer in time", service.as_str()),
                ),
            ),
        }
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
        // Every answer on these paths, octod's own refusals too, is hardened for octod's
        // origin (`nosniff`, the sandbox policy, attachments): see [`headers`].
        .layer(axum::middleware::map_response(harden))
}

async fn harden(mut response: Response) -> Response {
    headers::harden(response.headers_mut());
    response
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

/// A workspace file on the content origin ([`crate::content`]): the gateway's download with
/// `query` (`path=…&inline=true`), for `user` (the owner rule as always), with the content
/// origin's headers ([`content_headers`]) instead of the UI origin's sandbox.
pub async fn view_file<R: Sessions>(
    proxy: &Proxy,
    sessions: &Arc<R>,
    user: &CurrentUser,
    id: SessionId,
    query: &str,
    request: Request,
) -> Response {
    http::view_file(proxy, sessions, user, id, query, request).await
}

/// The headers of every answer on the content origin: see `headers::for_content`.
pub fn content_headers(headers: &mut axum::http::HeaderMap) {
    headers::for_content(headers);
}

/// The headers of an app's answer on its preview host: see `headers::for_preview`.
/// `shared_with` says whether an origin named in `Access-Control-Allow-Origin` is one the
/// app may share its answers with (a host of the same session).
pub fn preview_headers(headers: &mut axum::http::HeaderMap, shared_with: &dyn Fn(&str) -> bool) {
    headers::for_preview(headers, shared_with);
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

/// Resolves when the request's credential stops reaching `service` of session `id`: at every
/// account change the grant checks the credential again, and the session's owner rule is
/// asked again with the user as they are now. Without a grant, when the access the owner
/// gave ends ([`Given`]); never without either (a router whose user extractor gives none, as
/// in the proxy's own tests).
fn access_ended<R: Sessions>(
    grant: Option<Grant>,
    given: Option<Given>,
    sessions: Arc<R>,
    id: SessionId,
    service: Service,
) -> Ending {
    let Some(mut grant) = grant else {
        return match given {
            Some(given) => (given.0)(),
            None => Box::pin(std::future::pending()),
        };
    };
    Box::pin(async move {
        while let Some(user) = grant.next_change().await {
            if let Err(error) = sessions.resolve(&user, &id, service).await {
                tracing::debug!(session = %id, user = %user.name, "access ended: {}", error.code);
                break;
            }
        }
        tracing::info!(session = %id, service = service.as_str(), "closing a stream whose access ended");
    })
}

/// `503 session_waking` with `Retry-After`: the session is starting and has not answered yet.
pub(crate) fn waking() -> ApiError {
    ApiError::unavailable(
        "session_waking",
        "the session is starting; try again in a moment",
        WAKING_RETRY_AFTER,
    )
}

/// `502 upstream_unavailable`: nothing accepts connections on the session's socket.
pub(crate) fn unavailable(service: Service) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_unavailable",
        format!("the session's {} is not answering", service.as_str()),
    )
}

/// The `Authorization` value the gateway demands: the session's token as a bearer token.
fn credential(token: &Secret) -> HeaderValue {
    // Tokens are hex (Secret::generate); a value a header cannot carry cannot authenticate
    // either, and the gateway answers 401.
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose()))
        .unwrap_or(HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
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
    fn the_credential_is_a_sensitive_bearer_token() {
        let token = Secret::new("tok".to_owned());
        assert_eq!(credential(&token), "Bearer tok");
        assert!(credential(&token).is_sensitive());
    }
}
