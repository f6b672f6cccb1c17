//! Previews through the proxy (issue 14): a request on an app's preview host, already
//! authorized by the content origin ([`crate::content`]), goes to the session's gateway as
//! `/preview/<port>/<path>` over the session's socket, with the session's token. HTTP streams
//! both ways as for every service ([`super::http`]); an upgrade (a dev server's hot-reload
//! WebSocket, any protocol) gets a connection of its own to the gateway, and after the app's
//! `101` the browser's connection and that one are spliced byte for byte: frames are the
//! app's business. Traffic either way is the session's activity (the idle stop), and a spliced
//! connection ends when the viewer's access does, like the terminal (for a shared preview,
//! when the share does: [`super::Given`]).
//!
//! Also the listing of a session's listening ports (`GET /api/ports` of the gateway), which
//! neither wakes a session nor counts as its activity: the UI may ask while nobody uses it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{AUTHORIZATION, CONNECTION, COOKIE, HOST, UPGRADE};
use axum::http::{HeaderValue, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::http::{Origin, proxy_request};
use super::{ACTIVITY_INTERVAL, Proxy, Service, Sessions, Target, access_ended, credential};
use crate::auth::Grant;
use crate::http::ApiError;
use crate::http::peer::ClientPeer;
use crate::identity::CurrentUser;
use crate::session::SessionId;

/// The largest port listing read from a gateway.
const MAX_LISTING: usize = 256 * 1024;
/// How long a gateway may take to list its ports.
const LISTING_TIMEOUT: Duration = Duration::from_secs(5);

/// A request on the preview host of `port` in session `id`, for `user` (the owner rule as
/// always): the answer of the app, or octod's error. Its headers are the app's but hop-by-hop
/// ones; the content origin filters them.
pub async fn preview<R: Sessions>(
    proxy: &Proxy,
    sessions: &Arc<R>,
    user: &CurrentUser,
    id: SessionId,
    port: u16,
    request: Request,
) -> Response {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", axum::http::uri::PathAndQuery::as_str);
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (path_and_query.to_owned(), None),
    };
    let rest = format!("/preview/{port}{path}");
    let upgrading = request.headers().contains_key(UPGRADE);
    let response = if upgrading {
        upgrade(proxy, sessions, user, &id, &rest, query.as_deref(), request).await
    } else {
        let (parts, body) = request.into_parts();
        let target = Target {
            id,
            service: Service::Preview,
            rest: &rest,
        };
        proxy_request(
            proxy,
            sessions,
            user,
            &target,
            query.as_deref(),
            parts,
            body,
            Origin::Preview { port },
        )
        .await
    };
    let response = response.unwrap_or_else(IntoResponse::into_response);
    proxy
        .metrics()
        .record(Service::Preview, response.status().as_u16());
    response
}

async fn upgrade<R: Sessions>(
    proxy: &Proxy,
    sessions: &Arc<R>,
    user: &CurrentUser,
    id: &SessionId,
    rest: &str,
    query: Option<&str>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let upstream = sessions.resolve(user, id, Service::Preview).await?;
    sessions.activity(id);
    let on_upgrade = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::internal(&"the HTTP server does not support upgrades"))?;
    let grant = request.extensions_mut().remove::<Grant>();
    let given = request.extensions_mut().remove::<super::Given>();
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<ClientPeer>>()
        .map(|c| c.0);
    let (mut parts, _body) = request.into_parts();
    let protocol = parts.headers.get(UPGRADE).cloned();
    let cookies = super::headers::app_cookies(&parts.headers);
    super::headers::prepare_request(&mut parts.headers, peer, credential(&upstream.token));
    if let Some(protocol) = protocol {
        parts.headers.insert(UPGRADE, protocol);
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if let Some(cookies) = cookies {
        parts.headers.insert(COOKIE, cookies);
    }
    parts
        .headers
        .insert(HOST, HeaderValue::from_static("session"));
    let target = match query {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    parts.uri = Uri::try_from(target).map_err(|_| ApiError::bad_request("invalid request path"))?;
    parts.version = Version::HTTP_11;
    parts.extensions = axum::http::Extensions::new();

    let (wait, late) = proxy.head_wait(&upstream, Service::Preview);
    let exchange = async {
        let stream = super::connect::connect(&upstream.socket)
            .await
            .map_err(|error| {
                tracing::debug!(session = %id, "connecting to the session's socket: {error}");
                match upstream.wake {
                    Some(_) => super::waking(),
                    None => super::unavailable(Service::Preview),
                }
            })?;
        let failed = |error: hyper::Error| {
            tracing::debug!(session = %id, "a preview's upgrade failed: {error}");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                "the session's preview did not complete the request",
            )
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(failed)?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!("a preview's upgraded connection ended: {error}");
            }
        });
        sender
            .send_request(Request::from_parts(parts, Body::empty()))
            .await
            .map_err(failed)
    };
    let Ok(answer) = tokio::time::timeout(wait, exchange).await else {
        return Err(late);
    };
    let mut response = answer?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut head, body) = response.into_parts();
        super::headers::strip_hop_by_hop(&mut head.headers);
        return Ok(Response::from_parts(head, Body::new(body)));
    }
    let app_upgrade = hyper::upgrade::on(&mut response);
    let sessions = Arc::clone(sessions);
    let id = id.clone();
    let metrics = proxy.clone();
    tokio::spawn(async move {
        let (browser, app) = match tokio::try_join!(on_upgrade, app_upgrade) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(session = %id, "a preview's upgrade did not complete: {error}");
                return;
            }
        };
        let _open = metrics.metrics().websocket_opened();
        let mut browser = Active::new(TokioIo::new(browser), Arc::clone(&sessions), id.clone());
        let mut app = Active::new(TokioIo::new(app), Arc::clone(&sessions), id.clone());
        let ended = access_ended(grant, given, sessions, id.clone(), Service::Preview);
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut browser, &mut app) => {
                tracing::debug!(session = %id, "a preview's upgraded connection closed: {result:?}");
            }
            () = ended => {}
        }
    });
    let (mut head, _) = response.into_parts();
    // The handshake's own headers (Connection, Upgrade) go back to the browser as they came.
    head.headers.remove(axum::http::header::TRANSFER_ENCODING);
    Ok(Response::from_parts(head, Body::empty()))
}

/// A connection whose reads are the session's activity, at most once per
/// [`ACTIVITY_INTERVAL`]: a hot-reload socket that carries nothing does not keep a session.
struct Active<T, R> {
    inner: T,
    sessions: Arc<R>,
    id: SessionId,
    next: Instant,
}

impl<T, R> Active<T, R> {
    fn new(inner: T, sessions: Arc<R>, id: SessionId) -> Self {
        Self {
            inner,
            sessions,
            id,
            next: Instant::now() + ACTIVITY_INTERVAL,
        }
    }
}

impl<T: AsyncRead + Unpin, R: Sessions> AsyncRead for Active<T, R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let now = Instant::now();
            if now >= this.next {
                this.next = now + ACTIVITY_INTERVAL;
                this.sessions.activity(&this.id);
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin, R: Sessions> AsyncWrite for Active<T, R> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One port as the gateway lists it.
#[derive(Debug, serde::Deserialize)]
pub struct Listed {
    pub port: u16,
    pub address: String,
}

#[derive(serde::Deserialize)]
struct Listing {
    ports: Vec<Listed>,
}

/// The ports listening in session `id` for `user` (the owner rule): `None` when the session
/// is not running (it is not woken to be asked). Not the session's activity.
pub async fn listening_ports<R: Sessions>(
    proxy: &Proxy,
    sessions: &Arc<R>,
    user: &CurrentUser,
    id: &SessionId,
) -> Result<Option<Vec<Listed>>, ApiError> {
    let upstream = sessions.resolve(user, id, Service::Preview).await?;
    if upstream.wake.is_some() {
        return Ok(None);
    }
    let uri = format!(
        "http://{}/api/ports",
        super::connect::authority(&upstream.socket)
    );
    let mut request = Request::get(uri)
        .body(Body::empty())
        .map_err(|e| ApiError::internal(&e))?;
    request
        .headers_mut()
        .insert(AUTHORIZATION, credential(&upstream.token));
    let failed = |why: String| {
        tracing::info!(session = %id, "listing the session's ports: {why}");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_failed",
            "the session did not list its ports",
        )
    };
    let asked = async {
        let response = proxy
            .inner
            .client
            .request(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if response.status() != StatusCode::OK {
            return Err(failed(format!("HTTP {}", response.status())));
        }
        let body = Limited::new(response.into_body(), MAX_LISTING)
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?
            .to_bytes();
        serde_json::from_slice::<Listing>(&body).map_err(|e| failed(e.to_string()))
    };
    match tokio::time::timeout(LISTING_TIMEOUT, asked).await {
        Ok(listing) => Ok(Some(listing?.ports)),
        Err(_) => Err(failed(format!("no answer within {LISTING_TIMEOUT:?}"))),
    }
}
