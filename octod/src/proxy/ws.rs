//! The terminal: the browser's WebSocket relayed to the gateway's `/terminal` (which splices
//! it to ttyd's Unix socket), frame by frame.
//!
//! The browser's upgrade is answered only after the gateway accepted ours (over the session's
//! Unix socket, with the session's bearer token and subprotocol `tty`), so a session that
//! cannot be reached gets a JSON error instead of a socket that closes at once. Both sides are
//! tungstenite streams, so text, binary, ping, pong and close frames (with their codes) pass
//! through unchanged, ttyd's first message (the browser's hello) included: ttyd behind the
//! gateway takes no credential of its own.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{OriginalUri, Request};
use axum::http::StatusCode;
use axum::http::header::{
    AUTHORIZATION, CONNECTION, HeaderMap, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, select};
use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::{Proxy, Service, Sessions, Upstream, credential, parse_target};
use crate::http::ApiError;
use crate::identity::CurrentUser;
use crate::session::SessionId;

/// ttyd's subprotocol.
const SUBPROTOCOL: &str = "tty";
/// After one side closed, how long the other may take to finish its closing handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Small buffers: terminal frames are small, and 1,000 open terminals must stay cheap
/// (tungstenite allocates its read buffer eagerly, 128 KiB by default).
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
}

pub(super) async fn upgrade<R: Sessions>(
    proxy: Proxy,
    sessions: Arc<R>,
    user: &CurrentUser,
    request: Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    let uri = match parts.extensions.remove::<OriginalUri>() {
        Some(OriginalUri(uri)) => uri,
        None => std::mem::take(&mut parts.uri),
    };
    let response = match accept(&proxy, sessions, user, uri.path(), parts).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    proxy
        .metrics()
        .record(Service::Terminal, response.status().as_u16());
    response
}

async fn accept<R: Sessions>(
    proxy: &Proxy,
    sessions: Arc<R>,
    user: &CurrentUser,
    path: &str,
    mut parts: axum::http::request::Parts,
) -> Result<Response, ApiError> {
    let Some(target) = parse_target(path).filter(|t| t.service == Service::Terminal) else {
        return Err(ApiError::not_found("no such session"));
    };
    // Checked before resolving, so that a plain GET does not wake a session.
    let key = client_key(&parts.headers)?;
    // An upgrade is a GET, which the same-origin middleware lets through; a cross-site page
    // must not open a terminal with the user's cookie.
    // A bearer token is no ambient credential: a script's terminal needs no origin.
    if !crate::http::has_bearer(&parts.headers) && !crate::http::is_same_origin(&parts.headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "cross-origin request refused",
        ));
    }
    let offers_tty = offers_protocol(&parts.headers, SUBPROTOCOL);
    let on_upgrade = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::internal(&"the HTTP server does not support upgrades"))?;

    let id = target.id;
    let grant = parts.extensions.remove::<crate::auth::Grant>();
    let upstream = sessions.resolve(user, &id, Service::Terminal).await?;
    sessions.activity(&id);
    let (wait, late) = proxy.head_wait(&upstream, Service::Terminal);
    let Ok(upstream_socket) = tokio::time::timeout(wait, connect(&upstream)).await else {
        tracing::info!(session = %id, waited_ms = wait.as_millis(), "the terminal did not answer in time");
        return Err(late);
    };
    let upstream_socket = upstream_socket?;

    let proxy = proxy.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(session = %id, "terminal upgrade failed: {error}");
                return;
            }
        };
        let client =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config()))
                .await;
        let _open = proxy.metrics().websocket_opened();
        let keepalive = proxy.terminal_keepalive();
        let ended = super::access_ended(
            grant,
            None,
            Arc::clone(&sessions),
            id.clone(),
            Service::Terminal,
        );
        relay(client, upstream_socket, &*sessions, &id, keepalive, ended).await;
    });

    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::try_from(derive_accept_key(key.as_bytes())) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    if offers_tty {
        headers.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    Ok(response)
}

/// The client's `Sec-WebSocket-Key` of a valid WebSocket upgrade request (RFC 6455 4.2.1).
fn client_key(headers: &HeaderMap) -> Result<HeaderValue, ApiError> {
    let upgrade_required = || {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "the terminal is a WebSocket",
        )
    };
    let has_token = |name, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(CONNECTION, "upgrade")
        || !has_token(UPGRADE, "websocket")
        || headers.get(SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13")
    {
        return Err(upgrade_required());
    }
    headers
        .get(SEC_WEBSOCKET_KEY)
        .cloned()
        .ok_or_else(upgrade_required)
}

fn offers_protocol(headers: &HeaderMap, protocol: &str) -> bool {
    headers.get_all(SEC_WEBSOCKET_PROTOCOL).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|p| p.trim() == protocol))
    })
}

/// Opens the gateway's `/terminal` WebSocket over the session's socket.
async fn connect(upstream: &Upstream) -> Result<WebSocketStream<UnixStream>, ApiError> {
    let stream = match super::connect::connect(&upstream.socket).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::debug!(socket = %upstream.socket.display(), "connecting to the session's socket: {error}");
            return Err(match upstream.wake {
                Some(_) => super::waking(),
                None => super::unavailable(Service::Terminal),
            });
        }
    };
    // The host is not looked at: the socket is the address.
    let mut request = "ws://session/terminal"
        .into_client_request()
        .map_err(|e| ApiError::internal(&e))?;
    let headers = request.headers_mut();
    headers.insert(AUTHORIZATION, credential(&upstream.token));
    headers.insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    match tokio_tungstenite::client_async_with_config(request, stream, Some(config())).await {
        Ok((socket, _response)) => Ok(socket),
        Err(error) => {
            tracing::debug!(socket = %upstream.socket.display(), "terminal handshake failed: {error}");
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                "the session's terminal refused the connection",
            ))
        }
    }
}

/// Relays frames both ways until both sides have closed (or one has and the other does not
/// finish within [`CLOSE_GRACE`]), or until `ended` (the user's access ended): then nothing
/// more is relayed, the browser gets close code 1008 and the terminal a normal close. While
/// both are open the session counts as active every `keepalive`, typed into or not.
async fn relay<C, R: Sessions>(
    client: WebSocketStream<C>,
    upstream: WebSocketStream<UnixStream>,
    sessions: &R,
    id: &SessionId,
    keepalive: Duration,
    ended: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    {
        let to_upstream = pin!(pipe(&mut client_rx, &mut upstream_tx, sessions, id));
        let to_client = pin!(pipe(&mut upstream_rx, &mut client_tx, sessions, id));
        let open = pin!(async {
            let mut ticks = tokio::time::interval(keepalive);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                sessions.activity(id);
            }
        });
        let relaying = select(to_upstream, to_client);
        match select(select(relaying, open), ended).await {
            Either::Left((Either::Left((Either::Left(((), rest)), _)), _)) => {
                let _ = tokio::time::timeout(CLOSE_GRACE, rest).await;
                return;
            }
            Either::Left((Either::Left((Either::Right(((), rest)), _)), _)) => {
                let _ = tokio::time::timeout(CLOSE_GRACE, rest).await;
                return;
            }
            Either::Left((Either::Right(((), _)), _)) => return,
            // Access ended: the pipes are dropped here, then both sides are closed.
            Either::Right(((), _)) => {}
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = client_tx
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Policy,
                reason: "your sign-in or token ended".into(),
            })))
            .await;
        let _ = client_tx.close().await;
        let _ = upstream_tx
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
        let _ = upstream_tx.close().await;
    })
    .await;
}

/// Forwards messages from `rx` to `tx`. A side that goes away without a close frame is
/// reported to the other as 1011.
async fn pipe<Rx, Tx, R>(rx: &mut Rx, tx: &mut Tx, sessions: &R, id: &SessionId)
where
    Rx: Stream<Item = Result<Message, WsError>> + Unpin,
    Tx: Sink<Message, Error = WsError> + Unpin,
    R: Sessions,
{
    let mut closed = false;
    while let Some(Ok(message)) = rx.next().await {
        sessions.activity(id);
        closed |= message.is_close();
        if tx.send(message).await.is_err() {
            return;
        }
    }
    if !closed {
        let _ = tx
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Error,
                reason: "connection lost".into(),
            })))
            .await;
    }
    let _ = tx.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_requests_are_recognised() {
        let headers = |pairs: &[(&str, &str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.append(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    HeaderValue::from_str(v).expect("value"),
                );
            }
            map
        };
        let valid = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "foo, tty"),
        ];
        assert_eq!(
            client_key(&headers(&valid)).expect("valid"),
            "dGhlIHNhbXBsZSBub25jZQ=="
        );
        assert!(offers_protocol(&headers(&valid), "tty"));
        assert!(!offers_protocol(&headers(&valid[..4]), "tty"));
        let error = client_key(&headers(&valid[1..])).expect_err("no connection: upgrade");
        assert_eq!(error.status, StatusCode::UPGRADE_REQUIRED);
        assert!(client_key(&headers(&valid[..3])).is_err(), "no key");
    }
}
