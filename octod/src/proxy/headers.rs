//! Header rules of the proxy: what crosses from the browser to a container and back.
//!
//! - Towards a container: hop-by-hop headers (and any the `Connection` header names), the
//!   browser's `Cookie` and `Authorization`, `Expect` (octod's own server already answered
//!   `100 Continue`), `Host` and `X-Octo-Quota` (octod's to set, on the file API) are
//!   removed; the service's credential and `X-Forwarded-*` are set.
//! - Towards the browser: hop-by-hop headers, `Set-Cookie` (a container must not set cookies
//!   on octod's origin) and `WWW-Authenticate` (the credential is octod's, not the user's; a
//!   `Basic` challenge would make the browser ask for a password) are removed.

use axum::http::header::{
    AUTHORIZATION, CONNECTION, COOKIE, EXPECT, HOST, HeaderMap, HeaderName, HeaderValue,
    PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
    WWW_AUTHENTICATE,
};

use crate::http::peer::ClientPeer;

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const SET_COOKIE2: HeaderName = HeaderName::from_static("set-cookie2");
/// The storage quota octod tells the gateway ([`crate::disk`]); never the browser's.
pub(crate) const X_OCTO_QUOTA: HeaderName = HeaderName::from_static("x-octo-quota");

/// Hop-by-hop headers (RFC 9110 7.6.1, plus the non-standard `Keep-Alive` and
/// `Proxy-Connection`): they describe one connection and are never forwarded.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    PROXY_CONNECTION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes the hop-by-hop headers and every header that `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if let Some(named) = connection_named(headers) {
        for name in named {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The names listed in `Connection` that are not hop-by-hop anyway. Browsers send
/// `Connection: keep-alive` with every request; that case allocates nothing.
fn connection_named(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut named = None;
    for value in headers.get_all(CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim) {
            if token.is_empty()
                || token.eq_ignore_ascii_case("close")
                || HOP_BY_HOP
                    .iter()
                    .any(|h| token.eq_ignore_ascii_case(h.as_str()))
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                named.get_or_insert_with(Vec::new).push(name);
            }
        }
    }
    named
}

/// Rewrites the headers of a browser's request for a container, in place.
/// `peer` is where the request came from ([`ClientPeer`]): forwarding headers from the trusted
/// reverse proxy are kept and extended; from any other peer (or an unknown one) they could be
/// forged, so they are replaced.
pub(crate) fn prepare_request(
    headers: &mut HeaderMap,
    peer: Option<ClientPeer>,
    credential: HeaderValue,
) {
    strip_hop_by_hop(headers);
    headers.remove(COOKIE);
    headers.remove(EXPECT);
    headers.remove(X_OCTO_QUOTA);
    let host = headers.remove(HOST);
    set_forwarded(headers, peer, host);
    headers.insert(AUTHORIZATION, credential);
}

fn set_forwarded(headers: &mut HeaderMap, peer: Option<ClientPeer>, host: Option<HeaderValue>) {
    let trusted = peer.is_some_and(|p| p.trusted);
    if !trusted {
        headers.remove(X_FORWARDED_FOR);
        headers.remove(X_FORWARDED_PROTO);
        headers.remove(X_FORWARDED_HOST);
    }
    if let Some(addr) = peer.and_then(|p| p.addr) {
        let ip = crate::http::peer::canonical(addr.ip());
        let value = match headers.get(X_FORWARDED_FOR).map(HeaderValue::to_str) {
            Some(Ok(previous)) if !previous.trim().is_empty() => {
                HeaderValue::try_from(format!("{previous}, {ip}"))
            }
            _ => HeaderValue::try_from(ip.to_string()),
        };
        if let Ok(value) = value {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    if !headers.contains_key(X_FORWARDED_PROTO) {
        // octod itself speaks plain HTTP; TLS ends at Caddy, which sets the header.
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if let Some(host) = host {
        if !headers.contains_key(X_FORWARDED_HOST) {
            headers.insert(X_FORWARDED_HOST, host);
        }
    }
}

/// Rewrites the headers of a container's response for the browser, in place.
pub(crate) fn prepare_response(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    headers.remove(SET_COOKIE);
    headers.remove(SET_COOKIE2);
    headers.remove(WWW_AUTHENTICATE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    fn names(headers: &HeaderMap) -> Vec<String> {
        let mut names: Vec<String> = headers.keys().map(|k| k.as_str().to_owned()).collect();
        names.sort();
        names
    }

    fn peer(addr: &str, trusted: bool) -> Option<ClientPeer> {
        Some(ClientPeer {
            addr: Some(addr.parse().expect("addr")),
            trusted,
        })
    }

    #[test]
    fn request_loses_hop_by_hop_cookie_authorization_and_connection_named_headers() {
        let mut headers = map(&[
            ("connection", "keep-alive, X-Secret, close"),
            ("connection", "upgrade"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("expect", "100-continue"),
            ("cookie", "octo_session=jwt"),
            ("authorization", "Bearer browser"),
            ("host", "octo.example:8443"),
            ("accept", "text/event-stream"),
            ("content-length", "12"),
        ]);
        prepare_request(
            &mut headers,
            peer("127.0.0.1:5000", false),
            HeaderValue::from_static("Bearer upstream"),
        );
        assert_eq!(
            names(&headers),
            [
                "accept",
                "authorization",
                "content-length",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
            ]
        );
        assert_eq!(headers[AUTHORIZATION], "Bearer upstream");
        assert_eq!(headers[X_FORWARDED_HOST], "octo.example:8443");
        assert_eq!(headers[X_FORWARDED_FOR], "127.0.0.1");
        assert_eq!(headers[X_FORWARDED_PROTO], "http");
    }

    #[test]
    fn forwarding_headers_from_the_proxy_are_extended() {
        let mut headers = map(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "octo.example"),
            ("host", "127.0.0.1:8080"),
        ]);
        prepare_request(
            &mut headers,
            peer("[::ffff:127.0.0.1]:5000", true),
            HeaderValue::from_static("x"),
        );
        assert_eq!(headers[X_FORWARDED_FOR], "203.0.113.7, 127.0.0.1");
        assert_eq!(headers[X_FORWARDED_PROTO], "https");
        assert_eq!(headers[X_FORWARDED_HOST], "octo.example");
    }

    #[test]
    fn forwarding_headers_from_a_remote_peer_are_replaced() {
        let mut headers = map(&[
            ("x-forwarded-for", "10.9.9.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("host", "octo.example"),
        ]);
        prepare_request(
            &mut headers,
            peer("198.51.100.4:5000", false),
            HeaderValue::from_static("x"),
        );
        assert_eq!(headers[X_FORWARDED_FOR], "198.51.100.4");
        assert_eq!(headers[X_FORWARDED_PROTO], "http");
        assert_eq!(headers[X_FORWARDED_HOST], "octo.example");
    }

    #[test]
    fn response_loses_cookies_challenges_and_hop_by_hop_headers() {
        let mut headers = map(&[
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("set-cookie2", "c=3"),
            ("www-authenticate", "Basic realm=\"opencode\""),
            ("connection", "x-internal"),
            ("x-internal", "1"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
            // opencode's cursor of a conversation's earlier messages: the chat pages with it.
            ("x-next-cursor", "eyJpZCI6Im1zZ18xIn0"),
        ]);
        prepare_response(&mut headers);
        assert_eq!(
            names(&headers),
            ["cache-control", "content-type", "x-next-cursor"]
        );
    }
}
