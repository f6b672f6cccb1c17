//! HTTP through the proxy: one request in, one request to the session's gateway over the
//! pooled client, bodies streamed frame by frame in both directions (never collected), so SSE
//! events reach the browser as they are written and 100 MiB transfers stay small in memory.
//!
//! The answer is passed on as soon as its head arrives, also while the request body is still
//! being sent: a gateway that refuses an upload early (`413`, `401`) is heard at once, and
//! the rest of the body is then dropped with the connection (hyper does not reuse a
//! connection whose request body did not finish).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{OriginalUri, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{Extensions, HeaderValue, Method, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Instant;

use super::headers;
use super::{
    ACTIVITY_INTERVAL, Proxy, Service, Sessions, Target, access_ended, credential, parse_target,
};
use crate::auth::Grant;
use crate::http::ApiError;
use crate::http::peer::ClientPeer;
use crate::identity::CurrentUser;
use crate::session::SessionId;

pub(super) async fn forward<R: Sessions>(
    proxy: &Proxy,
    sessions: &Arc<R>,
    user: &CurrentUser,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    // The path as the client sent it, also when the routes are nested.
    let uri = match parts.extensions.remove::<OriginalUri>() {
        Some(OriginalUri(uri)) => uri,
        None => std::mem::take(&mut parts.uri),
    };
    let Some(target) = parse_target(uri.path()) else {
        return ApiError::not_found("no such session").into_response();
    };
    let service = target.service;
    let response = match proxy_request(
        proxy,
        sessions,
        user,
        &target,
        uri.query(),
        parts,
        body,
        Origin::Ui,
    )
    .await
    {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    proxy.metrics().record(service, response.status().as_u16());
    response
}

/// Which origin an answer goes out on: octod's own (the UI's; the proxy's routes then harden
/// it), the content origin ([`headers::for_content`]), or an app's preview host there (the
/// browser's cookies but the content origin's own go to the app, and the app's answer keeps
/// its headers but hop-by-hop ones; the content origin filters them: `for_preview`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    Ui,
    Content,
    /// The preview host of the app on `port` (`target.rest` is `/preview/<port><path>`).
    Preview {
        port: u16,
    },
}

/// A workspace file as the content origin serves it: the gateway's
/// `GET /api/download?path=<path>&inline=true` for `user` (owner or admin, as always),
/// with the content origin's headers.
pub(super) async fn view_file<R: Sessions>(
    proxy: &Proxy,
    sessions: &Arc<R>,
    user: &CurrentUser,
    id: SessionId,
    query: &str,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let target = Target {
        id,
        service: Service::Files,
        rest: "/api/download",
    };
    let mut response = match proxy_request(
        proxy,
        sessions,
        user,
        &target,
        Some(query),
        parts,
        body,
        Origin::Content,
    )
    .await
    {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    headers::for_content(response.headers_mut());
    proxy
        .metrics()
        .record(Service::Files, response.status().as_u16());
    response
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn proxy_request<R: Sessions>(
    proxy: &Proxy,
    sessions: &Arc<R>,
    user: &CurrentUser,
    target: &Target<'_>,
    query: Option<&str>,
    mut parts: axum::http::request::Parts,
    body: Body,
    origin: Origin,
) -> Result<Response, ApiError> {
    let service = target.service;
    let upstream = sessions.resolve(user, &target.id, service).await?;
    sessions.activity(&target.id);

    let peer = parts
        .extensions
        .get::<ConnectInfo<ClientPeer>>()
        .map(|c| c.0);
    let grant = parts.extensions.remove::<Grant>();
    let given = parts.extensions.remove::<super::Given>();
    // A preview goes over a tunnel to the app where the gateway has them ([`super::tunnel`]).
    let tunnel = match origin {
        Origin::Preview { port } => match proxy.inner.book.route(&upstream.socket, &upstream.token)
        {
            super::tunnel::Route::Tunnel => Some(port),
            super::tunnel::Route::Relay { ask } => {
                if ask {
                    tokio::spawn(super::tunnel::ask(
                        proxy.inner.client.clone(),
                        Arc::clone(&proxy.inner.book),
                        upstream.socket.clone(),
                        upstream.token.clone(),
                    ));
                }
                None
            }
        },
        Origin::Ui | Origin::Content => None,
    };
    parts.uri = match tunnel {
        Some(port) => {
            let path = target
                .rest
                .strip_prefix("/preview/")
                .and_then(|after| after.find('/').map(|i| &after[i..]))
                .unwrap_or("/");
            super::tunnel::uri(&upstream.socket, port, path, query)
                .ok_or_else(|| ApiError::bad_request("invalid request path"))?
        }
        None => upstream_uri(&upstream.socket, service, target.rest, query)?,
    };
    parts.version = Version::HTTP_11;
    // Nothing of octod's request state (the user, upgrade handles) goes to the client.
    parts.extensions = Extensions::new();
    let app_cookies = matches!(origin, Origin::Preview { .. })
        .then(|| headers::app_cookies(&parts.headers))
        .flatten();
    headers::prepare_request(&mut parts.headers, peer, credential(&upstream.token));
    if let Some(cookies) = app_cookies {
        parts.headers.insert(axum::http::header::COOKIE, cookies);
    }
    if let Some(port) = tunnel {
        // The app gets no credential of the gateway's, and its own address as the host (the
        // gateway's relay does the same).
        parts.headers.remove(axum::http::header::AUTHORIZATION);
        if let Some(host) = super::tunnel::host(port) {
            parts.headers.insert(axum::http::header::HOST, host);
        }
    }
    if let Some((used, limit)) = upstream.quota
        && let Ok(value) = HeaderValue::try_from(crate::disk::quota_header(used, limit))
    {
        parts.headers.insert(headers::X_OCTO_QUOTA, value);
    }
    // An upload's size, counted against the quota once the gateway has stored it.
    let upload =
        (service == Service::Files && parts.method == Method::PUT && target.rest == "/api/upload")
            .then(|| {
                parts
                    .headers
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            })
            .flatten();

    let body = Body::new(Activity::new(body, Arc::clone(sessions), target.id.clone()));
    let (wait, late) = proxy.head_wait(&upstream, service);
    let request = Request::from_parts(parts, body);
    let request = match tunnel {
        Some(_) => proxy.inner.tunnels.request(request),
        None => proxy.inner.client.request(request),
    };
    let Ok(answer) = tokio::time::timeout(wait, request).await else {
        tracing::info!(session = %target.id, service = service.as_str(), waited_ms = wait.as_millis(), "no response head in time");
        return Err(late);
    };
    match answer {
        Ok(response) => {
            if let Some(bytes) = upload
                && matches!(response.status().as_u16(), 200 | 201)
            {
                sessions.stored(&target.id, bytes);
            }
            let (mut parts, body) = response.into_parts();
            match origin {
                Origin::Ui => headers::prepare_response(&mut parts.headers),
                Origin::Content => {
                    headers::prepare_response(&mut parts.headers);
                    headers::for_content(&mut parts.headers);
                }
                Origin::Preview { .. } => headers::strip_hop_by_hop(&mut parts.headers),
            }
            let body = Activity::new(body, Arc::clone(sessions), target.id.clone());
            let body = Revocable {
                inner: body,
                grant: (grant.is_some() || given.is_some()).then(|| {
                    (
                        grant,
                        given,
                        Arc::clone(sessions),
                        target.id.clone(),
                        service,
                    )
                }),
                ended: None,
            };
            Ok(Response::from_parts(parts, Body::new(body)))
        }
        Err(ref error) if let Some(refused) = super::tunnel::Refused::of(error) => {
            // The gateway's own answer (nothing listens on the port, a reserved port).
            Ok(refused.response())
        }
        Err(error) if error.is_connect() => {
            tracing::debug!(session = %target.id, service = service.as_str(), "connecting to the session's socket: {error}");
            // A session on its way up whose socket is not listening yet (being created):
            // the client retries; a running session's socket that refuses is broken.
            Err(match upstream.wake {
                Some(_) => super::waking(),
                None => super::unavailable(service),
            })
        }
        Err(error) => {
            tracing::debug!(session = %target.id, service = service.as_str(), "proxied request failed: {error}");
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                format!(
                    "the session's {} did not complete the request",
                    service.as_str()
                ),
            ))
        }
    }
}

/// The gateway's path for `rest` of `service`: the file API at the root, opencode under
/// `/opencode`. `""` stands for the service's root.
fn gateway_path(service: Service, rest: &str) -> (&'static str, &str) {
    match (service, rest) {
        (Service::Files, "") => ("", "/"),
        // Previews: `rest` is `/preview/<port>/…` already.
        (Service::Files | Service::Preview, rest) => ("", rest),
        (Service::Opencode, rest) => ("/opencode", rest),
        (Service::Terminal, _) => ("/terminal", ""),
    }
}

/// `http://<socket as authority><gateway path>?<query>`, the path and query byte for byte.
fn upstream_uri(
    socket: &std::path::Path,
    service: Service,
    rest: &str,
    query: Option<&str>,
) -> Result<Uri, ApiError> {
    let (prefix, path) = gateway_path(service, rest);
    let authority = super::connect::authority(socket);
    let mut uri = String::with_capacity(
        "http://".len()
            + authority.len()
            + prefix.len()
            + path.len()
            + query.map_or(0, |q| q.len() + 1),
    );
    uri.push_str("http://");
    uri.push_str(&authority);
    uri.push_str(prefix);
    uri.push_str(path);
    if let Some(query) = query {
        uri.push('?');
        uri.push_str(query);
    }
    Uri::try_from(uri).map_err(|_| ApiError::bad_request("invalid request path"))
}

/// A body that reports its session's activity while frames flow, at most once per
/// [`ACTIVITY_INTERVAL`], so a long SSE stream or transfer keeps its session from idling.
struct Activity<B, R> {
    inner: B,
    sessions: Arc<R>,
    id: SessionId,
    next: Instant,
}

impl<B, R> Activity<B, R> {
    fn new(inner: B, sessions: Arc<R>, id: SessionId) -> Self {
        Self {
            inner,
            sessions,
            id,
            next: Instant::now() + ACTIVITY_INTERVAL,
        }
    }
}

impl<B, R> HttpBody for Activity<B, R>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
    R: Sessions,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if frame.is_some() {
            let now = Instant::now();
            if now >= this.next {
                this.next = now + ACTIVITY_INTERVAL;
                this.sessions.activity(&this.id);
            }
        }
        Poll::Ready(frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a [`Revocable`] body watches, once it has to wait: the request's grant or the access
/// its owner gave, and what it reaches.
type Watch<R> = (
    Option<Grant>,
    Option<super::Given>,
    Arc<R>,
    SessionId,
    Service,
);

/// A body that ends with an error (which aborts the response: the client sees its stream cut)
/// once the request's access ended ([`access_ended`]). The watch starts only when the body
/// first has to wait, so a short answer costs nothing.
struct Revocable<B, R> {
    inner: B,
    grant: Option<Watch<R>>,
    ended: Option<super::Ending>,
}

impl<B, R> HttpBody for Revocable<B, R>
where
    B: HttpBody<Data = Bytes, Error = axum::BoxError> + Unpin,
    R: Sessions,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.ended.is_none() {
            let Some((grant, given, sessions, id, service)) = this.grant.take() else {
                return Poll::Pending;
            };
            this.ended = Some(access_ended(grant, given, sessions, id, service));
        }
        match this.ended.as_mut().map(|ended| ended.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => {
                Poll::Ready(Some(Err("the request's sign-in or token ended".into())))
            }
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uris_keep_path_and_query_bytes() {
        let socket = std::path::Path::new("/s");
        let check = |service, rest, query, expected: &str| {
            let uri = upstream_uri(socket, service, rest, query).expect("uri");
            assert_eq!(uri.to_string(), format!("http://2f73{expected}"));
        };
        check(
            Service::Files,
            "/api/list",
            Some("path=a%2Fb+c&x=%ZZ&&"),
            "/api/list?path=a%2Fb+c&x=%ZZ&&",
        );
        check(Service::Files, "", None, "/");
        check(Service::Files, "/", Some(""), "/?");
        check(Service::Opencode, "", None, "/opencode");
        check(Service::Opencode, "/", None, "/opencode/");
        check(
            Service::Opencode,
            "/session/a%20b//c",
            Some("x=1"),
            "/opencode/session/a%20b//c?x=1",
        );
    }
}
