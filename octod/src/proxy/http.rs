//! HTTP through the proxy: one request in, one request to the service over the pooled
//! client, bodies streamed frame by frame in both directions (never collected), so SSE
//! events reach the browser as they are written and 100 MiB transfers stay small in memory.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{OriginalUri, Request};
use axum::http::{Extensions, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Instant;

use super::headers::{self, Peer};
use super::{ACTIVITY_INTERVAL, Proxy, Sessions, Target, credential, parse_target};
use crate::http::ApiError;
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
    let response =
        match proxy_request(proxy, sessions, user, &target, uri.query(), parts, body).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        };
    proxy.metrics().record(service, response.status().as_u16());
    response
}

async fn proxy_request<R: Sessions>(
    proxy: &Proxy,
    sessions: &Arc<R>,
    user: &CurrentUser,
    target: &Target<'_>,
    query: Option<&str>,
    mut parts: axum::http::request::Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let service = target.service;
    let upstream = sessions.resolve(user, &target.id, service).await?;
    sessions.activity(&target.id);

    let peer = Peer {
        addr: parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0),
    };
    parts.uri = upstream_uri(upstream.port, target.rest, query)?;
    parts.version = Version::HTTP_11;
    // Nothing of octod's request state (the user, upgrade handles) goes to the client.
    parts.extensions = Extensions::new();
    headers::prepare_request(
        &mut parts.headers,
        peer,
        credential(service, &upstream.token),
    );

    let body = Body::new(Activity::new(body, Arc::clone(sessions), target.id.clone()));
    match proxy
        .inner
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            headers::prepare_response(&mut parts.headers);
            let body = Activity::new(body, Arc::clone(sessions), target.id.clone());
            Ok(Response::from_parts(parts, Body::new(body)))
        }
        Err(error) if error.is_connect() => {
            tracing::debug!(session = %target.id, service = service.as_str(), "connecting to the service: {error}");
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                format!("the session's {} is not answering", service.as_str()),
            ))
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

/// `http://127.0.0.1:<port><rest>?<query>`, the query byte for byte.
fn upstream_uri(port: u16, rest: &str, query: Option<&str>) -> Result<Uri, ApiError> {
    use std::fmt::Write as _;
    let path = if rest.is_empty() { "/" } else { rest };
    let mut uri = String::with_capacity(
        "http://127.0.0.1:65535".len() + path.len() + query.map_or(0, |q| q.len() + 1),
    );
    let _ = write!(uri, "http://127.0.0.1:{port}{path}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uri_keeps_path_and_query_bytes() {
        let uri = upstream_uri(4100, "/api/list", Some("path=a%2Fb+c&x=%ZZ&&")).expect("uri");
        assert_eq!(
            uri.to_string(),
            "http://127.0.0.1:4100/api/list?path=a%2Fb+c&x=%ZZ&&"
        );
        let uri = upstream_uri(1, "", None).expect("uri");
        assert_eq!(uri.to_string(), "http://127.0.0.1:1/");
        let uri = upstream_uri(1, "/", Some("")).expect("uri");
        assert_eq!(uri.to_string(), "http://127.0.0.1:1/?");
    }
}
