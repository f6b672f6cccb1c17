//! The content origin (issue 14): where session content runs, on hosts of a wildcard site of
//! its own (`server.content_site`, e.g. `*.octo-content.example.org`), never on the UI's.
//!
//! - `GET /api/sessions/{id}/view?path=P` on the UI's origin (a browser's navigation, signed
//!   in with the cookie; owner or admin) issues a **ticket**: random, single use, valid for
//!   [`TICKET_TTL`], bound to the host `files-<id>.<site>` and the path, and answers `303` to
//!   `https://files-<id>.<site>/__octo/ticket?t=<ticket>`. With no content site configured,
//!   the `303` goes to the file's download on the UI's origin instead (an attachment).
//! - On a content host, `/__octo/ticket` trades the ticket for the host's own cookie
//!   ([`COOKIE_NAME`]: `__Host-`, so host-only, `Secure`, `HttpOnly`, `SameSite=Lax` — a
//!   navigation from the UI's site must carry it) and answers `303` to the path. The cookie is
//!   a token signed with a key of this octod process alone (a restart ends every view), naming
//!   the host and the UI session it came from; every request checks it again, and the UI
//!   session behind it (signed out, password changed, disabled: refused), and the owner rule.
//! - `files-<id>` hosts serve the session's workspace: `/<path>` is the file at `path`, as the
//!   gateway's inline download with the content origin's headers
//!   ([`crate::proxy::view_file`]), so `r.html` and the `x.js` it loads run there, as a page of
//!   that host, with no credential of Octo's: the UI's cookie is host-only on the UI's site.
//!
//! Every content host is an origin of its own, so one session's page cannot read another's.
//! Nothing of octod's API is reachable on a content host: every path there is content.
//!
//! Error policy: refusals are [`ApiError`]s (JSON) with the content origin's headers; the
//! ticket and the cookie are never logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{FromRef, Path, Query, Request, State};
use axum::http::header::{
    CACHE_CONTROL, HOST, LOCATION, ORIGIN, REFERRER_POLICY, SET_COOKIE, UPGRADE,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::auth::{Auth, Authenticated, Claims, Credential};
use crate::config::ContentSite;
use crate::http::ApiError;
use crate::identity::CurrentUser;
use crate::proxy::{Given, Proxy, Service, Sessions};
use crate::session::SessionId;
use crate::store::{Secret, ShareLink};

/// What a path segment on a content host encodes: all but RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The content hosts' cookie.
pub const COOKIE_NAME: &str = crate::proxy::CONTENT_COOKIE;
/// The path on a content host that trades a ticket for the cookie.
pub const TICKET_PATH: &str = "/__octo/ticket";
/// The path on a preview host that trades a share link's token for the cookie.
pub const SHARE_PATH: &str = "/__octo/share";
/// How long a ticket may wait for its trade.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// Tickets waiting at most (a full table refuses new ones until some expire).
const MAX_TICKETS: usize = 10_000;

/// The content origin of an octod: its site, the key of its cookies, the tickets waiting.
pub struct ContentOrigin {
    site: ContentSite,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    tickets: Mutex<HashMap<String, Ticket>>,
}

impl std::fmt::Debug for ContentOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentOrigin")
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

/// A ticket's promise: this cookie, for this host, then this path.
struct Ticket {
    label: String,
    path: String,
    cookie: Secret,
    expires: Instant,
    /// For a frame in the UI (the preview pane): the cookie is then `SameSite=None;
    /// Partitioned`, so that it is sent in the UI's frame (a cross-site frame when the
    /// content site is another site than the UI's) and only there.
    embed: bool,
}

/// What a content host's cookie says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ContentClaims {
    /// The user.
    sub: String,
    /// The UI session's token id and the user's token generation then: the view ends with it.
    jti: String,
    #[serde(rename = "gen")]
    generation: u64,
    /// The UI session's expiry.
    exp: u64,
    /// The host label the cookie is for (`files-<id>`).
    host: String,
    /// A share link's cookie: the link's id (checked again on every request: a revoked link
    /// ends it); `sub` then names the session's owner, and `jti` and `gen` mean nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
}

impl ContentClaims {
    /// The UI session a user's cookie stands for.
    fn ui_session(&self) -> Claims {
        Claims {
            sub: self.sub.clone(),
            // Informational in a token; `Auth::recheck` reads the stored role.
            role: crate::identity::Role::User,
            exp: self.exp,
            iat: 0,
            jti: self.jti.clone(),
            generation: self.generation,
            idp: None,
        }
    }
}

/// The kinds of content host, by their label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentHost {
    /// `files-<id>`: the session's workspace files.
    Files(SessionId),
    /// `p<port>-<id>`: the app listening on `port` in the session (a preview).
    Preview(SessionId, u16),
}

/// The lowest port a preview reaches (the gateway checks it too, with the session's own
/// services' ports).
pub const MIN_PREVIEW_PORT: u16 = 1024;

impl ContentHost {
    /// The host for `label` (case-insensitive), if it is one.
    pub fn parse(label: &str) -> Option<Self> {
        Self::parse_checked(label).ok()
    }

    /// [`Self::parse`], with the reason a label is not a content host.
    pub fn parse_checked(label: &str) -> Result<Self, ApiError> {
        let label = label.to_ascii_lowercase();
        let unknown = || ApiError::not_found("no such content host");
        if let Some(id) = label.strip_prefix("files-") {
            return id.parse().map(Self::Files).map_err(|_| unknown());
        }
        let (port, id) = label
            .strip_prefix('p')
            .and_then(|rest| rest.split_once('-'))
            .filter(|(port, _)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(unknown)?;
        let id: SessionId = id.parse().map_err(|_| unknown())?;
        let port = check_port(port)?;
        Ok(Self::Preview(id, port))
    }

    /// The label: `files-<id>`, `p<port>-<id>`.
    pub fn label(&self) -> String {
        match self {
            Self::Files(id) => format!("files-{id}"),
            Self::Preview(id, port) => format!("p{port}-{id}"),
        }
    }

    /// The session the host belongs to.
    pub fn session(&self) -> &SessionId {
        match self {
            Self::Files(id) | Self::Preview(id, _) => id,
        }
    }
}

/// The port `text` names, if a preview may reach it.
fn check_port(text: &str) -> Result<u16, ApiError> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p >= MIN_PREVIEW_PORT)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "previews reach ports {MIN_PREVIEW_PORT}–65535, not {text}"
            ))
        })
}

impl ContentOrigin {
    pub fn new(site: ContentSite) -> Result<Self, getrandom::Error> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self {
            site,
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            tickets: Mutex::new(HashMap::new()),
        })
    }

    pub fn site(&self) -> &ContentSite {
        &self.site
    }

    /// A ticket for `host` and `path` (the URL path on that host), for the UI session of
    /// `claims`; the URL that trades it.
    fn issue(
        &self,
        claims: &Claims,
        host: &ContentHost,
        path: String,
        embed: bool,
    ) -> Result<String, ApiError> {
        let label = host.label();
        let cookie = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &ContentClaims {
                sub: claims.sub.clone(),
                jti: claims.jti.clone(),
                generation: claims.generation,
                exp: claims.exp,
                host: label.clone(),
                link: None,
            },
            &self.encoding,
        )
        .map_err(|e| ApiError::internal(&e))?;
        let ticket = Secret::generate().map_err(|e| ApiError::internal(&e))?;
        let now = Instant::now();
        let mut tickets = self
            .tickets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tickets.retain(|_, t| t.expires > now);
        if tickets.len() >= MAX_TICKETS {
            return Err(ApiError::unavailable(
                "busy",
                "too many views are being opened; try again in a minute",
                TICKET_TTL.as_secs(),
            ));
        }
        tickets.insert(
            ticket.expose().to_owned(),
            Ticket {
                label: label.clone(),
                path,
                cookie: Secret::new(cookie),
                expires: now + TICKET_TTL,
                embed,
            },
        );
        Ok(format!(
            "{}{TICKET_PATH}?t={}",
            self.site.origin(&label),
            ticket.expose()
        ))
    }

    /// Takes the ticket `value` for host `label`: the cookie, the path and whether it is for
    /// a frame, once.
    fn redeem(&self, value: &str, label: &str) -> Option<(Secret, String, bool)> {
        let mut tickets = self
            .tickets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ticket = tickets.remove(value)?;
        (ticket.expires > Instant::now() && ticket.label.eq_ignore_ascii_case(label)).then_some((
            ticket.cookie,
            ticket.path,
            ticket.embed,
        ))
    }

    /// Whether `origin` (an `Origin` header's value) is a content host of session `id`.
    fn of_session(&self, origin: &str, id: &SessionId) -> bool {
        origin
            .strip_prefix("https://")
            .and_then(|host| self.site.label_of(host))
            .and_then(ContentHost::parse)
            .is_some_and(|host| host.session() == id)
    }

    /// What a content cookie for host `label` says, if it is one of ours and has not expired.
    fn claims(&self, cookie: &str, label: &str) -> Option<ContentClaims> {
        let data =
            jsonwebtoken::decode::<ContentClaims>(cookie, &self.decoding, &self.validation).ok()?;
        let c = data.claims;
        c.host.eq_ignore_ascii_case(label).then_some(c)
    }

    /// The cookie of share link `link` of session `owner`'s preview host `label`: until the
    /// link expires (and only while it stays: every request looks it up again).
    fn link_cookie(&self, owner: &str, label: &str, link: &ShareLink) -> Result<String, ApiError> {
        let exp = link
            .expires_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &ContentClaims {
                sub: owner.to_owned(),
                jti: String::new(),
                generation: 0,
                exp,
                host: label.to_owned(),
                link: Some(link.id.clone()),
            },
            &self.encoding,
        )
        .map_err(|e| ApiError::internal(&e))
    }
}

/// The content origin in the router's state: `None` when none is configured.
#[derive(Clone, Debug, Default)]
pub struct Content(pub Option<Arc<ContentOrigin>>);

#[derive(Deserialize)]
pub struct ViewQuery {
    path: Option<String>,
}

/// `GET /api/sessions/{id}/view?path=P`: see the module's documentation.
pub async fn view<R: Sessions>(
    State(Content(content)): State<Content>,
    State(sessions): State<Arc<R>>,
    authenticated: Authenticated,
    Path(id): Path<String>,
    Query(query): Query<ViewQuery>,
) -> Result<Response, ApiError> {
    let id: SessionId = id
        .parse()
        .map_err(|_| ApiError::not_found("no such session"))?;
    let path = query
        .path
        .filter(|p| !p.is_empty() && !p.contains('\0'))
        .ok_or_else(|| ApiError::bad_request("`path` names the file to view"))?;
    // The owner rule (another user's session is "not found"), and a stopped session is 409.
    sessions
        .resolve(&authenticated.user, &id, Service::Files)
        .await?;
    let Some(claims) = authenticated.claims() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token_not_allowed",
            "API tokens cannot open views; download the file instead",
        ));
    };
    let encoded = utf8_percent_encode(path.trim_start_matches('/'), NON_ALPHANUMERIC).to_string();
    let location = match &content {
        // No content origin: the file is a download on the UI's origin.
        None => format!("/sessions/{id}/files/api/download?path={encoded}"),
        Some(content) => {
            // The path on the content host: each segment percent-encoded but for RFC 3986's
            // unreserved characters (so `r.html` reads as itself), the slashes kept.
            let on_host: String = path
                .trim_start_matches('/')
                .split('/')
                .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
                .collect::<Vec<_>>()
                .join("/");
            content.issue(
                claims,
                &ContentHost::Files(id.clone()),
                format!("/{on_host}"),
                false,
            )?
        }
    };
    tracing::info!(session = %id, user = %authenticated.user.name, "a view of a workspace file");
    Ok(redirect(&location))
}

#[derive(Deserialize)]
pub struct OpenQuery {
    path: Option<String>,
    embed: Option<bool>,
    /// Answer `200` with the ticket's URL as JSON ([`octo_wire::PreviewTicket`]) instead of
    /// `303` to it: for the UI's preview pane, whose frame must start on the content origin
    /// (the UI's own pages may not be framed, and its `frame-src` names only the content site).
    json: Option<bool>,
}

/// `GET /api/sessions/{id}/ports/{port}/open?path=/&embed=false`: a browser's way into a
/// preview, like [`view`]: a ticket for `p<port>-<id>`, answered with `303` to the host's
/// ticket path, which sets the host's cookie and goes on to `path`. `embed=true` for the UI's
/// preview pane (the cookie is then partitioned, for that frame). No content site: `409`.
pub async fn open_preview<R: Sessions>(
    State(Content(content)): State<Content>,
    State(sessions): State<Arc<R>>,
    authenticated: Authenticated,
    Path((id, port)): Path<(String, String)>,
    Query(query): Query<OpenQuery>,
) -> Result<Response, ApiError> {
    let id: SessionId = id
        .parse()
        .map_err(|_| ApiError::not_found("no such session"))?;
    let port = check_port(&port)?;
    if let Err(refused) = sessions
        .resolve(&authenticated.user, &id, Service::Preview)
        .await
    {
        // Another user's session is "not found", unless this port is shared with every
        // signed-in user.
        let shared = refused.status == StatusCode::NOT_FOUND
            && sessions
                .preview_share(&id, port)
                .await
                .is_some_and(|s| s.share.users);
        if !shared {
            return Err(refused);
        }
    }
    let Some(content) = content else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "previews_off",
            "previews need a content site (server.content_site in octod.toml, OCTO_CONTENT_SITE for Caddy)",
        ));
    };
    let Some(claims) = authenticated.claims() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token_not_allowed",
            "API tokens cannot open previews; open it in a browser signed in to Octo",
        ));
    };
    let path = query.path.unwrap_or_else(|| "/".to_owned());
    // A path of the preview host, never another place: one leading slash, no scheme, no
    // authority, nothing a `Location` would read as another host.
    if !path.starts_with('/')
        || path.starts_with("//")
        || path.contains('\\')
        || path.bytes().any(|b| b.is_ascii_control() || b == b' ')
    {
        return Err(ApiError::bad_request(
            "`path` is a path of the preview, such as `/` or `/app?x=1`",
        ));
    }
    let location = content.issue(
        claims,
        &ContentHost::Preview(id.clone(), port),
        path,
        query.embed.unwrap_or(false),
    )?;
    tracing::info!(session = %id, port, user = %authenticated.user.name, "a preview opened");
    if query.json.unwrap_or(false) {
        let mut response = axum::Json(octo_wire::PreviewTicket { url: location }).into_response();
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(response);
    }
    Ok(redirect(&location))
}

/// `GET /api/sessions/{id}/ports`: the ports listening in the session, each with its preview's
/// URLs when a content site is configured. Owner or admin (another user's session is `404`);
/// a session that is not running has none and is not woken.
pub async fn ports<R: Sessions>(
    State(Content(content)): State<Content>,
    State(sessions): State<Arc<R>>,
    State(proxy): State<Proxy>,
    authenticated: Authenticated,
    Path(id): Path<String>,
) -> Result<axum::Json<octo_wire::SessionPorts>, ApiError> {
    let id: SessionId = id
        .parse()
        .map_err(|_| ApiError::not_found("no such session"))?;
    let listed = crate::proxy::listening_ports(&proxy, &sessions, &authenticated.user, &id).await?;
    let running = listed.is_some();
    let mut ports = Vec::new();
    for p in listed
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.port >= MIN_PREVIEW_PORT)
    {
        let share = sessions
            .preview_share(&id, p.port)
            .await
            .map(|s| share::view(&s.share))
            .unwrap_or_default();
        ports.push({
            let host = ContentHost::Preview(id.clone(), p.port);
            octo_wire::ListeningPort {
                port: p.port,
                address: p.address,
                url: content
                    .as_ref()
                    .map(|c| format!("{}/", c.site.origin(&host.label()))),
                open: content
                    .as_ref()
                    .map(|_| format!("/api/sessions/{id}/ports/{}/open", p.port)),
                share,
            }
        });
    }
    Ok(axum::Json(octo_wire::SessionPorts {
        running,
        previews: content.is_some(),
        ports,
    }))
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::try_from(location) {
        headers.insert(LOCATION, value);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// What the content hosts' middleware needs.
pub struct Dispatch<R> {
    pub content: Content,
    pub auth: Auth,
    pub proxy: Proxy,
    pub sessions: Arc<R>,
}

impl<R> Clone for Dispatch<R> {
    fn clone(&self) -> Self {
        Self {
            content: self.content.clone(),
            auth: self.auth.clone(),
            proxy: self.proxy.clone(),
            sessions: Arc::clone(&self.sessions),
        }
    }
}

impl<R> FromRef<Dispatch<R>> for Content {
    fn from_ref(state: &Dispatch<R>) -> Self {
        state.content.clone()
    }
}

/// The middleware in front of octod's router: a request for a content host is served here
/// (and never reaches octod's API); any other goes on.
pub async fn dispatch<R: Sessions>(
    State(state): State<Dispatch<R>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(content) = &state.content.0 else {
        return next.run(request).await;
    };
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(axum::http::uri::Authority::as_str)
        });
    let Some(label) = host.and_then(|h| content.site.label_of(h)) else {
        return next.run(request).await;
    };
    let label = label.to_ascii_lowercase();
    let preview = matches!(ContentHost::parse(&label), Some(ContentHost::Preview(..)));
    match serve(&state, content, &label, request).await {
        // An app's answer has had the preview's rules (its own policy kept).
        Ok(response) if preview => response,
        Ok(mut response) => {
            crate::proxy::content_headers(response.headers_mut());
            response
        }
        Err(error) => {
            let mut response = error.into_response();
            crate::proxy::content_headers(response.headers_mut());
            response
        }
    }
}

/// How much of a refused request's body is read before the refusal is sent.
const DRAINED_BODY_BYTES: usize = 64 * 1024;

async fn serve<R: Sessions>(
    state: &Dispatch<R>,
    content: &ContentOrigin,
    label: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let host = ContentHost::parse_checked(label)?;
    let read_only = matches!(host, ContentHost::Files(_));
    let path = request.uri().path();
    if (read_only || path == TICKET_PATH || path == SHARE_PATH)
        && !matches!(*request.method(), Method::GET | Method::HEAD)
    {
        // Read (a bounded part of) the body first: answering before it arrived and closing
        // the connection can reset it under the proxy in front, which then answers 502
        // instead of this 405 (seen once through Caddy).
        let _ = axum::body::to_bytes(request.into_body(), DRAINED_BODY_BYTES).await;
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "session content is read-only here",
        ));
    }
    if request.uri().path() == TICKET_PATH {
        let ticket = request
            .uri()
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("t="))
            .unwrap_or_default();
        let Some((cookie, path, embed)) = content.redeem(ticket, label) else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "ticket_invalid",
                "this link was used already or has expired; open it from Octo again",
            ));
        };
        let mut response = redirect(&path);
        let same_site = if embed {
            "SameSite=None; Partitioned"
        } else {
            "SameSite=Lax"
        };
        let value = format!(
            "{COOKIE_NAME}={}; Path=/; Secure; HttpOnly; {same_site}",
            cookie.expose()
        );
        let mut value = HeaderValue::try_from(value).map_err(|e| ApiError::internal(&e))?;
        value.set_sensitive(true);
        response.headers_mut().insert(SET_COOKIE, value);
        return Ok(response);
    }
    if request.uri().path() == SHARE_PATH {
        return share_link(state, content, &host, label, request.uri().query()).await;
    }
    let (user, grant, given) = authorize(state, content, &host, label, request.headers()).await?;
    match host {
        ContentHost::Files(id) => {
            let path = request.uri().path().trim_start_matches('/');
            if path.is_empty() {
                return Err(ApiError::not_found("no file named"));
            }
            let bytes: Vec<u8> = percent_decode_str(path).collect();
            let query = format!(
                "path={}&inline=true",
                percent_encoding::percent_encode(&bytes, NON_ALPHANUMERIC)
            );
            Ok(
                crate::proxy::view_file(&state.proxy, &state.sessions, &user, id, &query, request)
                    .await,
            )
        }
        ContentHost::Preview(id, port) => {
            // Another site's page may not write to an app or open its sockets with the
            // viewer's cookie: a state-changing request or an upgrade from a page comes from
            // this session's own hosts (its other ports call each other) or from nowhere.
            let safe = matches!(*request.method(), Method::GET | Method::HEAD)
                && !request.headers().contains_key(UPGRADE);
            let foreign = request
                .headers()
                .get(ORIGIN)
                .map(|o| o.to_str().map_or(true, |o| !content.of_session(o, &id)));
            if !safe && foreign == Some(true) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "cross_origin",
                    "a page of another origin may not send this to the preview",
                ));
            }
            let mut request = request;
            if let Some(grant) = grant {
                request.extensions_mut().insert(grant);
            }
            if let Some(given) = given {
                request.extensions_mut().insert(given);
            }
            let mut response = crate::proxy::preview(
                &state.proxy,
                &state.sessions,
                &user,
                id.clone(),
                port,
                request,
            )
            .await;
            crate::proxy::preview_headers(response.headers_mut(), &|origin| {
                content.of_session(origin, &id)
            });
            Ok(response)
        }
    }
}

/// Who a request on a content host acts as, and the grant that ends a long answer (an event
/// stream, a spliced socket) when the viewer's access does:
///
/// - a user's cookie (any one that holds: a browser may hold two of the name on a host, a
///   tab's and, partitioned, the preview pane's): the user as they are now, with the grant;
///   the proxy then applies the owner rule (another user's session is `404`);
/// - on a preview host of a port shared with every signed-in user, another user's cookie acts
///   as the owner (with the role of a user): a share is looked up again on every request, so
///   unsharing refuses the next one, and a long answer holds what ends it ([`share_ends`]);
/// - a share link's cookie acts as the owner while its link is live (looked up again on every
///   request: a revoked or expired link opens nothing more; its long answers end too).
///
/// A disabled owner's shares open nothing.
async fn authorize<R: Sessions>(
    state: &Dispatch<R>,
    content: &ContentOrigin,
    host: &ContentHost,
    label: &str,
    headers: &axum::http::HeaderMap,
) -> Result<(CurrentUser, Option<crate::auth::Grant>, Option<Given>), ApiError> {
    let refused = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "open this from Octo: the Files pane's View, or the workspace's Ports (its link signs this page in)",
        )
    };
    let now = SystemTime::now();
    let cookies: Vec<ContentClaims> = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE_NAME)
        .filter_map(|(_, value)| content.claims(value.trim_matches('"'), label))
        .collect();
    let viewer = cookies
        .iter()
        .filter(|c| c.link.is_none())
        .map(ContentClaims::ui_session)
        .filter(|claims| claims.expires_at() > now)
        .find_map(|claims| state.auth.recheck_granted(Credential::Session(claims)).ok());
    let ContentHost::Preview(id, port) = host else {
        return viewer
            .map(|(user, grant)| (user, Some(grant), None))
            .ok_or_else(refused);
    };
    let links: Vec<&str> = cookies.iter().filter_map(|c| c.link.as_deref()).collect();
    if viewer.is_none() && links.is_empty() {
        return Err(refused());
    }
    // An admin reaches every session as themself: no share to read.
    if links.is_empty()
        && let Some((user, grant)) = viewer
            .as_ref()
            .filter(|(user, _)| user.role == crate::identity::Role::Admin)
    {
        return Ok((user.clone(), Some(grant.clone()), None));
    }
    let shared = state.sessions.preview_share(id, *port).await;
    let as_owner = |owner: &str| CurrentUser {
        name: owner.to_owned(),
        role: crate::identity::Role::User,
    };
    if let Some(shared) = &shared
        && shared.owner_active
    {
        let others = viewer
            .as_ref()
            .is_none_or(|(user, _)| !user.may_access(&shared.owner));
        let by_users = viewer.is_some() && shared.share.users;
        let live: Vec<String> = links
            .iter()
            .filter(|l| shared.share.link(l, now).is_some())
            .map(|l| (*l).to_owned())
            .collect();
        if others && (by_users || !live.is_empty()) {
            let viewer = viewer.filter(|_| by_users).map(|(_, grant)| grant);
            let given = share_ends(Arc::clone(&state.sessions), id.clone(), *port, viewer, live);
            return Ok((as_owner(&shared.owner), None, Some(given)));
        }
    }
    viewer
        .map(|(user, grant)| (user, Some(grant), None))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "share_link_invalid",
                "this share link has expired or was revoked; ask the session's owner for a new one",
            )
        })
}

/// How often a long answer through a share (an event stream, a spliced socket) looks the
/// share up again.
const SHARE_RECHECK: Duration = Duration::from_secs(2);

/// What ends a long answer given through a share of `port`: it looks the share up every
/// [`SHARE_RECHECK`] and resolves once neither route still holds: the share with every
/// signed-in user while `viewer`'s sign-in holds (watched at once, through its grant), or one
/// of the `links` (live, unrevoked); a disabled owner or a deleted session holds neither.
fn share_ends<R: Sessions>(
    sessions: Arc<R>,
    id: SessionId,
    port: u16,
    viewer: Option<crate::auth::Grant>,
    links: Vec<String>,
) -> Given {
    Given::new(move || {
        let sessions = Arc::clone(&sessions);
        let id = id.clone();
        let mut viewer = viewer.clone();
        let links = links.clone();
        Box::pin(async move {
            loop {
                if let Some(grant) = viewer.as_mut() {
                    let signed_in = tokio::select! {
                        user = grant.next_change() => user.is_some(),
                        () = tokio::time::sleep(SHARE_RECHECK) => true,
                    };
                    if !signed_in {
                        viewer = None;
                    }
                } else {
                    tokio::time::sleep(SHARE_RECHECK).await;
                }
                let now = SystemTime::now();
                let holds = sessions.preview_share(&id, port).await.is_some_and(|s| {
                    s.owner_active
                        && ((viewer.is_some() && s.share.users)
                            || links.iter().any(|l| s.share.link(l, now).is_some()))
                });
                if !holds {
                    break;
                }
            }
            tracing::info!(session = %id, port, "closing a shared preview's stream: its share ended");
        })
    })
}

/// `GET /__octo/share?t=<token>` on a preview host: a live share link's token traded for the
/// host's cookie (for as long as the link lives), then the app's `/`.
async fn share_link<R: Sessions>(
    state: &Dispatch<R>,
    content: &ContentOrigin,
    host: &ContentHost,
    label: &str,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let invalid = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "share_link_invalid",
            "this share link has expired or was revoked; ask the session's owner for a new one",
        )
    };
    let ContentHost::Preview(id, port) = host else {
        return Err(ApiError::not_found("share links open previews only"));
    };
    let token = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("t="))
        .filter(|t| !t.is_empty() && t.len() <= 128)
        .ok_or_else(invalid)?;
    let shared = state
        .sessions
        .preview_share(id, *port)
        .await
        .filter(|shared| shared.owner_active)
        .ok_or_else(invalid)?;
    let hash = crate::auth::api_token::secret_sha256(token);
    let link = shared
        .share
        .link_by_token(&hash, SystemTime::now())
        .ok_or_else(invalid)?;
    let cookie = content.link_cookie(&shared.owner, label, link)?;
    tracing::info!(session = %id, port, link = %link.id, "a share link opened a preview");
    let mut response = redirect("/");
    let mut value = HeaderValue::try_from(format!(
        "{COOKIE_NAME}={cookie}; Path=/; Secure; HttpOnly; SameSite=Lax"
    ))
    .map_err(|e| ApiError::internal(&e))?;
    value.set_sensitive(true);
    response.headers_mut().insert(SET_COOKIE, value);
    Ok(response)
}

/// Seconds since the epoch.
#[cfg(test)]
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod router_tests;

pub mod share;

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> ContentOrigin {
        ContentOrigin::new(ContentSite::parse("*.content.localhost:8443").expect("site"))
            .expect("random")
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "alice".into(),
            role: crate::identity::Role::User,
            exp,
            iat: 0,
            jti: "j1".into(),
            generation: 3,
            idp: None,
        }
    }

    fn ticket_of(url: &str) -> &str {
        url.rsplit_once("t=").expect("a ticket").1
    }

    #[test]
    fn content_hosts_are_files_of_a_session() {
        let id: SessionId = "ab12".parse().expect("id");
        assert_eq!(
            ContentHost::parse("files-ab12"),
            Some(ContentHost::Files(id.clone()))
        );
        assert_eq!(
            ContentHost::parse("FILES-AB12"),
            Some(ContentHost::Files(id.clone()))
        );
        assert_eq!(ContentHost::Files(id).label(), "files-ab12");
        assert_eq!(
            ContentHost::parse("P3000-ab12"),
            Some(ContentHost::Preview("ab12".parse().expect("id"), 3000))
        );
        assert_eq!(
            ContentHost::Preview("ab12".parse().expect("id"), 5173).label(),
            "p5173-ab12"
        );
        for other in [
            "files-",
            "files-AB_1",
            "ab12",
            "files-1ab",
            "p-ab12",
            "px-ab12",
            "p3000",
            "p3000-",
            "p+3000-ab12",
            "q3000-ab12",
        ] {
            assert_eq!(ContentHost::parse(other), None, "{other}");
        }
        // A preview of a port no app may have is a clear refusal, not "no such host".
        for port in ["80", "0", "65536", "1023"] {
            let refusal = ContentHost::parse_checked(&format!("p{port}-ab12")).expect_err(port);
            assert_eq!(refusal.status, StatusCode::BAD_REQUEST, "{port}");
        }
    }

    #[test]
    fn a_ticket_is_for_one_host_and_one_use() {
        let content = origin();
        let host = ContentHost::parse("files-ab12").expect("host");
        let url = content
            .issue(&claims(now_secs() + 600), &host, "/r.html".into(), false)
            .expect("issued");
        assert!(
            url.starts_with("https://files-ab12.content.localhost:8443/__octo/ticket?t="),
            "{url}"
        );
        let ticket = ticket_of(&url).to_owned();
        assert!(
            content.redeem(&ticket, "files-cd34").is_none(),
            "another host"
        );
        // A wrong host's attempt used the ticket up.
        assert!(content.redeem(&ticket, "files-ab12").is_none());

        let url = content
            .issue(&claims(now_secs() + 600), &host, "/d/r.html".into(), false)
            .expect("issued");
        let (cookie, path, _) = content
            .redeem(ticket_of(&url), "files-ab12")
            .expect("traded");
        assert_eq!(path, "/d/r.html");
        assert!(
            content.redeem(ticket_of(&url), "files-ab12").is_none(),
            "used"
        );
        let back = content.claims(cookie.expose(), "files-ab12").expect("ours");
        assert_eq!(
            (back.sub.as_str(), back.jti.as_str(), back.generation),
            ("alice", "j1", 3)
        );
        assert!(
            content.claims(cookie.expose(), "files-cd34").is_none(),
            "another host"
        );
        assert!(
            origin().claims(cookie.expose(), "files-ab12").is_none(),
            "another key"
        );
        assert!(content.claims("x.y.z", "files-ab12").is_none());
    }

    #[test]
    fn an_expired_ticket_is_refused() {
        let content = origin();
        let host = ContentHost::parse("files-ab12").expect("host");
        let url = content
            .issue(&claims(now_secs() + 600), &host, "/r.html".into(), false)
            .expect("issued");
        for ticket in content.tickets.lock().expect("lock").values_mut() {
            ticket.expires = Instant::now();
        }
        assert!(content.redeem(ticket_of(&url), "files-ab12").is_none());
    }

    #[test]
    fn an_expired_cookie_is_not_ours() {
        let content = origin();
        let host = ContentHost::parse("files-ab12").expect("host");
        let url = content
            .issue(&claims(now_secs() - 5), &host, "/r.html".into(), false)
            .expect("issued");
        let (cookie, _, _) = content
            .redeem(ticket_of(&url), "files-ab12")
            .expect("traded");
        assert!(content.claims(cookie.expose(), "files-ab12").is_none());
    }
}
