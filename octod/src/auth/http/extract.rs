//! Extractors: who is asking ([`CurrentUser`], [`RequireAdmin`], [`Authenticated`]) and from
//! where ([`Client`]); the session cookie.
//!
//! The token comes from `Authorization: Bearer …` (API clients: a session JWT or a personal API
//! token) or else the `octo_session` cookie (the browser); with a bearer token the cookie is
//! never looked at. The first extractor that checks it keeps the result in the request's
//! extensions, so a handler with several of them checks the token once, and a [`Grant`] beside
//! it for the proxy's long-lived streams.
//!
//! An API token reaches only what its scopes allow ([`required_scope`]): `403
//! insufficient_scope` otherwise, and `403 token_not_allowed` on the routes only a person
//! signed in to the browser may use (the account's password, its tokens, sign-out).

use std::net::IpAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts, OriginalUri};

use crate::http::peer::ClientPeer;
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::super::{AuthState, Authenticated, Credential, IssuedToken};
use crate::http::ApiError;
use crate::identity::{CurrentUser, Scope};
use crate::service::{AdminCaller, Caller};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "octo_session";

impl<S> FromRequestParts<S> for Authenticated
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(done) = parts.extensions.get::<Authenticated>() {
            return Ok(done.clone());
        }
        let token = token_from(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let auth = AuthState::from_ref(state);
        let (authenticated, grant) = auth.authenticate_granted(&token).map_err(ApiError::from)?;
        if let Credential::Api(api) = &authenticated.credential {
            let path = parts
                .extensions
                .get::<OriginalUri>()
                .map_or_else(|| parts.uri.path(), |uri| uri.0.path());
            check_scope(&parts.method, path, &api.scopes)?;
        }
        parts.extensions.insert(authenticated.clone());
        parts.extensions.insert(grant);
        Ok(authenticated)
    }
}

/// What an API token needs for a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any valid token (`GET /api/me`).
    Any,
    Scope(Scope),
    /// Not for API tokens: the account's own settings, tokens and sign-out.
    Browser,
}

/// The scope a request needs from an API token, by its method and path. Everything not
/// listed is [`Need::Browser`], so a route added later is closed to tokens until it is listed.
pub fn required_scope(method: &Method, path: &str) -> Need {
    let read = matches!(*method, Method::GET | Method::HEAD);
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    // A view of a workspace file trades the browser's sign-in for a content host's cookie.
    if path.starts_with("/api/sessions/") && path.ends_with("/view") {
        return Need::Browser;
    }
    if under("/sessions") {
        Need::Scope(Scope::SessionsConnect)
    } else if under("/api/admin") {
        Need::Scope(Scope::Admin)
    } else if under("/api/sessions") || path == "/api/templates" {
        Need::Scope(if read {
            Scope::SessionsRead
        } else {
            Scope::SessionsWrite
        })
    } else if path == "/api/me" && read {
        Need::Any
    } else {
        Need::Browser
    }
}

fn check_scope(method: &Method, path: &str, scopes: &[Scope]) -> Result<(), ApiError> {
    match required_scope(method, path) {
        Need::Any => Ok(()),
        Need::Scope(scope) if scopes.contains(&scope) => Ok(()),
        Need::Scope(scope) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("this API token lacks the scope {}", scope.as_str()),
        )),
        Need::Browser => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token_not_allowed",
            "API tokens cannot be used for this; sign in to Octo instead",
        )),
    }
}

/// The signed-in, enabled user; 401 `unauthorized` otherwise.
impl<S> FromRequestParts<S> for CurrentUser
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Authenticated::from_request_parts(parts, state).await?.user)
    }
}

/// A signed-in admin: 401 when not signed in, 403 `forbidden` for other users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequireAdmin(pub CurrentUser);

impl<S> FromRequestParts<S> for RequireAdmin
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if user.is_admin() {
            Ok(Self(user))
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// The signed-in user as the caller of the shared handlers.
impl Caller for CurrentUser {
    const WAIT: std::time::Duration = crate::service::sessions::WAIT;
    fn user(&self) -> CurrentUser {
        self.clone()
    }
}

/// The signed-in admin as the caller of the shared handlers.
impl Caller for RequireAdmin {
    const WAIT: std::time::Duration = crate::service::sessions::WAIT;
    fn user(&self) -> CurrentUser {
        self.0.clone()
    }
}

impl AdminCaller for RequireAdmin {}

/// The user name opencode's own client sends with its password as HTTP Basic.
pub const OPENCODE_BASIC_USER: &str = "opencode";

/// The bearer token, else an API token as opencode's client sends its password (HTTP Basic
/// `opencode:<token>`, so that `opencode attach` works with a token), else the session cookie's
/// value. Any other `Authorization` is no token, and never falls back to the cookie.
fn token_from(headers: &HeaderMap) -> Option<std::borrow::Cow<'_, str>> {
    use base64::Engine as _;
    use std::borrow::Cow;
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(token.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (user, password) = text.split_once(':')?;
            return (user == OPENCODE_BASIC_USER && crate::auth::api_token::looks_like(password))
                .then(|| Cow::Owned(password.to_owned()));
        }
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
            .map(Cow::Borrowed);
    }
    cookie_value(headers, COOKIE_NAME).map(Cow::Borrowed)
}

/// The value of the cookie `name` (quotes removed), if the request has a non-empty one.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|t| !t.is_empty())
}

/// Where a request came from: the client's address (for the login throttle and the audit log)
/// and whether it reached the proxy in front of octod over TLS.
///
/// The address is the peer's ([`ClientPeer`], recorded when the connection was accepted),
/// unless the peer is the trusted reverse proxy (octod's Unix socket, or a TCP peer in
/// `server.trusted_proxies`): then it is the last `X-Forwarded-For` entry, the one the proxy
/// added. Any other peer's forwarded headers are ignored, so no client can choose its address.
/// Without connection information (a router served without it) the address is `unknown`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub address: String,
    pub tls: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<ClientPeer>>()
            .map(|c| c.0);
        let trusted = peer.is_some_and(|p| p.trusted);
        let forwarded = trusted
            .then(|| last_value(&parts.headers, "x-forwarded-for"))
            .flatten()
            .and_then(|v| v.parse::<IpAddr>().ok());
        let address = forwarded
            .or_else(|| peer.and_then(|p| p.addr).map(|a| a.ip()))
            .map(crate::http::peer::canonical);
        let tls = trusted
            && last_value(&parts.headers, "x-forwarded-proto")
                .is_some_and(|p| p.eq_ignore_ascii_case("https"));
        Ok(Self {
            address: address.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
            tls,
        })
    }
}

/// The last comma-separated entry over all values of a header.
fn last_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|v| !v.is_empty())
}

/// `Set-Cookie` for a new token. `Secure` when configured or the client came over TLS.
pub fn session_cookie(
    issued: &IssuedToken,
    max_age_secs: u64,
    secure: bool,
) -> (axum::http::HeaderName, HeaderValue) {
    cookie(issued.token.expose(), max_age_secs, secure)
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> (axum::http::HeaderName, HeaderValue) {
    cookie("", 0, secure)
}

fn cookie(value: &str, max_age_secs: u64, secure: bool) -> (axum::http::HeaderName, HeaderValue) {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    );
    // A JWT is base64url and dots: always a valid header value.
    let value = HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""));
    (SET_COOKIE, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn token_from_bearer_or_cookie() {
        assert_eq!(
            token_from(&headers(&[("authorization", "Bearer abc")])).as_deref(),
            Some("abc")
        );
        assert_eq!(
            token_from(&headers(&[("authorization", "bearer  abc ")])).as_deref(),
            Some("abc")
        );
        // A non-bearer Authorization is no token, even with a cookie.
        assert_eq!(
            token_from(&headers(&[
                ("authorization", "Basic x"),
                ("cookie", "octo_session=c")
            ]))
            .as_deref(),
            None
        );
        assert_eq!(
            token_from(&headers(&[("cookie", "a=1; octo_session=tok; b=2")])).as_deref(),
            Some("tok")
        );
        assert_eq!(
            token_from(&headers(&[
                ("cookie", "a=1"),
                ("cookie", "octo_session=tok")
            ]))
            .as_deref(),
            Some("tok")
        );
        assert_eq!(
            token_from(&headers(&[("cookie", "xocto_session=tok")])).as_deref(),
            None
        );
        assert_eq!(
            token_from(&headers(&[("cookie", "octo_session=")])).as_deref(),
            None
        );
        assert_eq!(token_from(&headers(&[])).as_deref(), None);
    }

    #[test]
    fn an_api_token_as_opencodes_basic_password() {
        use base64::Engine as _;
        let basic = |credentials: &str| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            let value = HeaderValue::from_str(&format!("Basic {encoded}")).expect("value");
            let mut map = HeaderMap::new();
            map.insert(AUTHORIZATION, value);
            map.insert(COOKIE, HeaderValue::from_static("octo_session=cookie"));
            token_from(&map).map(std::borrow::Cow::into_owned)
        };
        let token = format!("octo_{}_{}", "a".repeat(16), "b".repeat(64));
        assert_eq!(basic(&format!("opencode:{token}")), Some(token.clone()));
        // Another user name, a JWT as the password, garbage: no token (and not the cookie).
        assert_eq!(basic(&format!("admin:{token}")), None);
        assert_eq!(basic("opencode:eyJhbGciOiJIUzI1NiJ9.e30.x"), None);
        assert_eq!(basic("opencode"), None);
        let mut map = HeaderMap::new();
        map.insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(token_from(&map).as_deref(), None);
    }

    #[test]
    fn cookie_attributes() {
        let (name, value) = cookie("tok", 60, false);
        assert_eq!(name, SET_COOKIE);
        assert_eq!(
            value,
            "octo_session=tok; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        let (_, value) = clear_cookie(true);
        assert_eq!(
            value,
            "octo_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
        );
    }

    fn tcp(addr: &str, trusted: bool) -> Option<ClientPeer> {
        Some(ClientPeer {
            addr: Some(addr.parse::<SocketAddr>().expect("addr")),
            trusted,
        })
    }

    async fn client(pairs: &[(&'static str, &'static str)], peer: Option<ClientPeer>) -> Client {
        let mut req = axum::http::Request::get("/").body(()).expect("request");
        *req.headers_mut() = headers(pairs);
        if let Some(peer) = peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        let (mut parts, ()) = req.into_parts();
        let Ok(client) = Client::from_request_parts(&mut parts, &()).await;
        client
    }

    #[tokio::test]
    async fn client_address_trusts_forwarded_for_only_from_the_proxy() {
        let xff = ("x-forwarded-for", "10.0.0.1, 203.0.113.7");
        // Caddy over the Unix socket, or a configured proxy over TCP: its last entry.
        assert_eq!(
            client(&[xff], Some(ClientPeer::UNIX)).await.address,
            "203.0.113.7"
        );
        assert_eq!(
            client(&[xff], tcp("192.0.2.1:5000", true)).await.address,
            "203.0.113.7"
        );
        // A local user on a loopback port, or anyone else: its own address.
        assert_eq!(
            client(&[xff], tcp("127.0.0.1:5000", false)).await.address,
            "127.0.0.1"
        );
        assert_eq!(
            client(&[xff], tcp("198.51.100.2:5000", false))
                .await
                .address,
            "198.51.100.2"
        );
        assert_eq!(
            client(&[], tcp("[::ffff:192.0.2.9]:5000", false))
                .await
                .address,
            "192.0.2.9"
        );
        assert_eq!(client(&[xff], None).await.address, "unknown");
        assert_eq!(client(&[], Some(ClientPeer::UNIX)).await.address, "unknown");
        assert_eq!(
            client(&[("x-forwarded-for", "junk")], Some(ClientPeer::UNIX))
                .await
                .address,
            "unknown"
        );
    }

    #[tokio::test]
    async fn tls_from_forwarded_proto_of_the_proxy() {
        let unix = Some(ClientPeer::UNIX);
        assert!(client(&[("x-forwarded-proto", "https")], unix).await.tls);
        assert!(!client(&[("x-forwarded-proto", "http")], unix).await.tls);
        assert!(!client(&[], unix).await.tls);
        let local = tcp("127.0.0.1:5000", false);
        assert!(!client(&[("x-forwarded-proto", "https")], local).await.tls);
    }
}
