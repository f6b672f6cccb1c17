//! Header rules of the proxy: what crosses from the browser to a container and back.
//!
//! - Towards a container: hop-by-hop headers (and any the `Connection` header names), the
//!   browser's `Cookie` and `Authorization`, `Expect` (octod's own server already answered
//!   `100 Continue`), `Host` and `X-Octo-Quota` (octod's to set, on the file API) are
//!   removed; the service's credential and `X-Forwarded-*` are set.
//! - Towards the browser: only an allowlist of the session's headers passes ([`KEPT`]: the
//!   body's type, length, encoding and ranges, caching and validators, the download's name,
//!   `Retry-After`, the WebSocket handshake's and opencode's paging cursor). Everything else a
//!   session could send to steer the browser on octod's origin is dropped: `Set-Cookie`,
//!   `WWW-Authenticate` (a `Basic` challenge would ask the user for a password),
//!   `Service-Worker-Allowed`, `Refresh`, `Clear-Site-Data`, `Location`, `Link`, CORS
//!   (`Access-Control-*`), its own `Content-Security-Policy`, and anything unknown. Then
//!   every answer is hardened ([`harden`]): `X-Content-Type-Options: nosniff` and
//!   `Content-Security-Policy: sandbox; default-src 'none'`, a download is an `attachment`,
//!   and an active type (HTML, XML, SVG, PDF) is sent as opaque bytes. Session content that
//!   is meant to render does so on the content origin, never here (design.md).

use axum::http::header::{
    ACCEPT_RANGES, AGE, AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_DISPOSITION,
    CONTENT_ENCODING, CONTENT_LANGUAGE, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, COOKIE, DATE, ETAG, EXPECT, EXPIRES, HOST, HeaderMap, HeaderName, HeaderValue,
    LAST_MODIFIED, PRAGMA, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, REFERRER_POLICY, RETRY_AFTER,
    SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL, SET_COOKIE,
    STRICT_TRANSPORT_SECURITY, TE, TRAILER, TRANSFER_ENCODING, UPGRADE, VARY, WWW_AUTHENTICATE,
    X_CONTENT_TYPE_OPTIONS,
};

use crate::http::peer::ClientPeer;

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
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

/// opencode's cursor of a conversation's earlier messages: the chat pages with it.
const X_NEXT_CURSOR: HeaderName = HeaderName::from_static("x-next-cursor");

/// The only headers of a session's answer that reach the browser. Hop-by-hop ones are not
/// here: the server writes its own framing (and the terminal's `101` is octod's own).
const KEPT: [HeaderName; 19] = [
    // The body: what it is, how long, how encoded, which part.
    CONTENT_TYPE,
    CONTENT_LENGTH,
    CONTENT_ENCODING,
    CONTENT_LANGUAGE,
    CONTENT_RANGE,
    ACCEPT_RANGES,
    // A download's name (made an attachment by `harden`).
    CONTENT_DISPOSITION,
    // Caching and validators (previews read a file's parts `If-Match` its ETag).
    CACHE_CONTROL,
    EXPIRES,
    PRAGMA,
    AGE,
    DATE,
    ETAG,
    LAST_MODIFIED,
    VARY,
    RETRY_AFTER,
    // The WebSocket handshake's answer.
    SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_EXTENSIONS,
];

/// Whether a session's response header `name` may reach the browser.
fn kept(name: &HeaderName) -> bool {
    KEPT.contains(name) || *name == X_NEXT_CURSOR
}

/// The policy of everything the proxy answers on octod's origin: no script, no plugin, no
/// subresource, an opaque origin, so a session's answer opened as a page can do nothing as
/// the UI (the UI itself only fetches these answers; a policy does not apply to a fetch).
pub(crate) const SANDBOX_POLICY: &str = "sandbox; default-src 'none'";

/// Rewrites the headers of a container's response for the browser, in place: only the
/// allowlist passes. (The proxy's routes then [`harden`] every answer, this one included.)
pub(crate) fn prepare_response(headers: &mut HeaderMap) {
    // Names of what is not kept first: removing while iterating is not possible.
    let dropped: Vec<HeaderName> = headers.keys().filter(|n| !kept(n)).cloned().collect();
    for name in dropped {
        headers.remove(name);
    }
}

/// What every answer of the proxy carries on octod's origin, the proxy's own errors too:
/// `nosniff`, the sandbox policy, a download as an `attachment`, active types as bytes.
pub(crate) fn harden(headers: &mut HeaderMap) {
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SANDBOX_POLICY),
    );
    if let Some(value) = headers.get(CONTENT_DISPOSITION)
        && let Some(attachment) = as_attachment(value)
    {
        headers.insert(CONTENT_DISPOSITION, attachment);
    }
    if headers.get(CONTENT_TYPE).is_some_and(is_active_type) {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
}

/// What an answer carries on the content origin, where session content is meant to run (on
/// an origin of its own, with no credential of Octo's): the gateway's `sandbox` policy is
/// dropped, and the answer may be neither sniffed, nor embedded by another origin, nor keep an
/// opener (the UI's tab that opened it), nor tell where it was linked from.
pub(crate) fn for_content(headers: &mut HeaderMap) {
    headers.remove(CONTENT_SECURITY_POLICY);
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// The content origin's cookie (`crate::content::COOKIE_NAME`): the key to a content host,
/// never the business of the app behind it.
pub const CONTENT_COOKIE: &str = "__Host-octo_content";

/// The browser's cookies for an app on its preview host: all of them but the content
/// origin's own (the app's sessions are its own; the key to its host is not).
pub(crate) fn app_cookies(headers: &HeaderMap) -> Option<HeaderValue> {
    let kept: Vec<&str> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            !pair.is_empty()
                && pair
                    .split_once('=')
                    .is_none_or(|(name, _)| name.trim() != CONTENT_COOKIE)
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::try_from(kept.join("; ")).ok()
}

const CLEAR_SITE_DATA: HeaderName = HeaderName::from_static("clear-site-data");
const ALT_SVC: HeaderName = HeaderName::from_static("alt-svc");
const ACCESS_CONTROL_ALLOW_ORIGIN: HeaderName =
    HeaderName::from_static("access-control-allow-origin");
const ACCESS_CONTROL_ALLOW_CREDENTIALS: HeaderName =
    HeaderName::from_static("access-control-allow-credentials");

/// What an app's answer keeps on its preview host. An app there runs on an origin of its own
/// (`p<port>-<id>.<content site>`) with no credential of Octo's, so, unlike the UI's origin,
/// its headers pass (its own `Content-Security-Policy`, `Location`, `Set-Cookie`, `Link`,
/// service workers: all of that origin alone) except what would reach beyond its host:
///
/// - `Set-Cookie` with a `Domain` attribute (a cookie for the whole content site would reach
///   every other session's hosts: cookie tossing) or for the content origin's own cookie
///   (the key to this host is octod's to set);
/// - `Clear-Site-Data` (its `"cookies"` clear the whole registrable domain, which may be the
///   UI's as well: a page could sign its viewer out of Octo, or out of other previews);
/// - `Access-Control-Allow-Origin` naming an origin other than `*` or a host of the same
///   session (`shared_with`), and then `Access-Control-Allow-Credentials` with it: the
///   viewer's cookie for this host is sent by the other content hosts (the same site), so a
///   permissive app would share its answers with another user's app;
/// - `Strict-Transport-Security` and `Alt-Svc` (the site's, which Caddy sets);
/// - `WWW-Authenticate` (a password prompt on a content host could pass for Octo's; the
///   browser's `Authorization` never reaches the app anyway: it is octod's to the gateway).
///
/// Then [`for_content`]'s rules, but the app's own policy stays (it only adds restrictions).
pub(crate) fn for_preview(headers: &mut HeaderMap, shared_with: &dyn Fn(&str) -> bool) {
    let cookies: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter(|v| app_may_set(v))
        .cloned()
        .collect();
    headers.remove(SET_COOKIE);
    for cookie in cookies {
        headers.append(SET_COOKIE, cookie);
    }
    for name in [
        CLEAR_SITE_DATA,
        STRICT_TRANSPORT_SECURITY,
        ALT_SVC,
        WWW_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    let shared = headers.get(ACCESS_CONTROL_ALLOW_ORIGIN).map(|v| {
        v.to_str()
            .is_ok_and(|o| o.trim() == "*" || shared_with(o.trim()))
    });
    if shared == Some(false) {
        headers.remove(ACCESS_CONTROL_ALLOW_ORIGIN);
        headers.remove(ACCESS_CONTROL_ALLOW_CREDENTIALS);
    }
    let policies: Vec<HeaderValue> = headers
        .get_all(CONTENT_SECURITY_POLICY)
        .iter()
        .cloned()
        .collect();
    for_content(headers);
    for policy in policies {
        headers.append(CONTENT_SECURITY_POLICY, policy);
    }
}

/// Whether an app may set the cookie of a `Set-Cookie` value: host-only, not the content
/// origin's own.
fn app_may_set(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mut parts = value.split(';');
    let name = parts
        .next()
        .and_then(|pair| pair.split_once('='))
        .map_or("", |(name, _)| name.trim());
    if name.eq_ignore_ascii_case(CONTENT_COOKIE) {
        return false;
    }
    !parts.any(|attribute| {
        attribute
            .split_once('=')
            .map_or(attribute, |(key, _)| key)
            .trim()
            .eq_ignore_ascii_case("domain")
    })
}

/// `inline; filename=…` (or any disposition other than `attachment`) as `attachment; filename=…`.
/// `None` when it is an attachment already.
fn as_attachment(value: &HeaderValue) -> Option<HeaderValue> {
    let bytes = value.as_bytes();
    let end = bytes.iter().position(|&b| b == b';').unwrap_or(bytes.len());
    if bytes[..end]
        .trim_ascii()
        .eq_ignore_ascii_case(b"attachment")
    {
        return None;
    }
    let mut out = b"attachment".to_vec();
    out.extend_from_slice(&bytes[end..]);
    Some(HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static("attachment")))
}

/// Whether a `Content-Type` is one a browser runs or renders as a document with script or
/// forms of its own: HTML, any XML (SVG, XHTML), PDF. Unknown or unparsable types count as
/// active.
fn is_active_type(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return true;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "text/html"
        || essence == "text/xml"
        || essence == "application/xml"
        || essence == "application/pdf"
        || essence.ends_with("+xml")
        || !essence.contains('/')
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

    /// The headers of a session's answer as the browser gets them.
    fn answer(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = map(pairs);
        prepare_response(&mut headers);
        harden(&mut headers);
        headers
    }

    /// `name: value` from a session does not reach the browser.
    fn check_dropped(name: &str, value: &str) {
        let headers = answer(&[(name, value), ("content-type", "application/json")]);
        assert!(
            headers.get(name).is_none(),
            "{name} reached the browser: {headers:?}"
        );
        assert_eq!(headers[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn set_cookie_is_dropped() {
        check_dropped("set-cookie", "octo_session=forged; Path=/");
    }

    #[test]
    fn set_cookie2_is_dropped() {
        check_dropped("set-cookie2", "c=3");
    }

    #[test]
    fn www_authenticate_is_dropped() {
        check_dropped("www-authenticate", "Basic realm=\"opencode\"");
    }

    #[test]
    fn service_worker_allowed_is_dropped() {
        check_dropped("service-worker-allowed", "/");
    }

    #[test]
    fn refresh_is_dropped() {
        check_dropped("refresh", "0; url=https://evil.example/");
    }

    #[test]
    fn clear_site_data_is_dropped() {
        check_dropped("clear-site-data", "\"cookies\", \"storage\"");
    }

    #[test]
    fn location_is_dropped() {
        check_dropped("location", "https://evil.example/");
    }

    #[test]
    fn link_is_dropped() {
        check_dropped("link", "</sessions/a/files/x.js>; rel=preload; as=script");
    }

    #[test]
    fn access_control_headers_are_dropped() {
        for name in [
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "access-control-allow-headers",
            "access-control-allow-methods",
            "access-control-expose-headers",
            "access-control-max-age",
        ] {
            check_dropped(name, "*");
        }
    }

    #[test]
    fn cross_origin_policies_are_dropped() {
        check_dropped("cross-origin-resource-policy", "cross-origin");
        check_dropped("cross-origin-opener-policy", "unsafe-none");
        check_dropped("cross-origin-embedder-policy", "unsafe-none");
        check_dropped("timing-allow-origin", "*");
    }

    #[test]
    fn a_sessions_own_policies_are_dropped() {
        check_dropped("content-security-policy-report-only", "default-src *");
        check_dropped("permissions-policy", "camera=*");
        check_dropped("x-frame-options", "ALLOWALL");
        check_dropped("referrer-policy", "unsafe-url");
        check_dropped("strict-transport-security", "max-age=0");
        check_dropped("origin-agent-cluster", "?0");
    }

    #[test]
    fn reporting_headers_are_dropped() {
        check_dropped("report-to", "{\"group\":\"x\"}");
        check_dropped("reporting-endpoints", "x=\"https://evil.example/\"");
        check_dropped("nel", "{\"report_to\":\"x\"}");
        check_dropped("alt-svc", "h3=\":443\"");
        check_dropped("server-timing", "x;dur=1");
    }

    #[test]
    fn hop_by_hop_and_unknown_headers_are_dropped() {
        check_dropped("connection", "x-internal");
        check_dropped("x-internal", "1");
        check_dropped("transfer-encoding", "chunked");
        check_dropped("keep-alive", "timeout=5");
        check_dropped("upgrade", "h2c");
        check_dropped("x-powered-by", "opencode");
        check_dropped("server", "opencode");
    }

    #[test]
    fn the_sessions_csp_is_replaced_by_the_sandbox() {
        let headers = answer(&[
            ("content-security-policy", "script-src *"),
            ("x-content-type-options", "sniff"),
        ]);
        assert_eq!(
            headers
                .get_all(CONTENT_SECURITY_POLICY)
                .iter()
                .collect::<Vec<_>>(),
            [SANDBOX_POLICY]
        );
        assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[test]
    fn what_the_ui_reads_passes() {
        let headers = answer(&[
            ("content-type", "text/event-stream"),
            ("content-length", "12"),
            ("content-encoding", "gzip"),
            ("content-range", "bytes 0-1/9"),
            ("accept-ranges", "bytes"),
            ("cache-control", "no-cache"),
            ("etag", "\"1-2\""),
            ("last-modified", "Thu, 01 Jan 2026 00:00:00 GMT"),
            ("vary", "accept"),
            ("retry-after", "5"),
            ("x-next-cursor", "eyJpZCI6Im1zZ18xIn0"),
        ]);
        assert_eq!(
            names(&headers),
            [
                "accept-ranges",
                "cache-control",
                "content-encoding",
                "content-length",
                "content-range",
                "content-security-policy",
                "content-type",
                "etag",
                "last-modified",
                "retry-after",
                "vary",
                "x-content-type-options",
                "x-next-cursor",
            ]
        );
        assert_eq!(headers[CONTENT_TYPE], "text/event-stream");
        assert_eq!(headers["x-next-cursor"], "eyJpZCI6Im1zZ18xIn0");
    }

    #[test]
    fn the_content_origin_runs_the_page_without_the_gateways_sandbox() {
        let mut headers = map(&[
            ("content-type", "text/html"),
            ("content-security-policy", "sandbox"),
            ("content-disposition", "inline; filename=\"r.html\""),
            ("service-worker-allowed", "/"),
        ]);
        prepare_response(&mut headers);
        for_content(&mut headers);
        assert_eq!(
            names(&headers),
            [
                "content-disposition",
                "content-type",
                "cross-origin-opener-policy",
                "cross-origin-resource-policy",
                "referrer-policy",
                "x-content-type-options",
            ]
        );
        assert_eq!(headers[CONTENT_TYPE], "text/html");
        assert_eq!(headers[CONTENT_DISPOSITION], "inline; filename=\"r.html\"");
    }

    #[test]
    fn downloads_are_attachments() {
        let check = |sent: &str, expected: &str| {
            let headers = answer(&[("content-disposition", sent)]);
            assert_eq!(headers[CONTENT_DISPOSITION], expected, "{sent}");
        };
        check(
            "inline; filename=\"r.html\"; filename*=UTF-8''r.html",
            "attachment; filename=\"r.html\"; filename*=UTF-8''r.html",
        );
        check("INLINE", "attachment");
        check("attachment; filename=\"a\"", "attachment; filename=\"a\"");
        check(" Attachment ;filename=a", " Attachment ;filename=a");
        check("form-data; name=x", "attachment; name=x");
    }

    #[test]
    fn active_types_become_bytes() {
        for active in [
            "text/html",
            "text/html; charset=utf-8",
            "TEXT/HTML",
            "application/xhtml+xml",
            "image/svg+xml",
            "text/xml",
            "application/xml",
            "application/pdf",
            "nonsense",
        ] {
            let headers = answer(&[("content-type", active)]);
            assert_eq!(
                headers[CONTENT_TYPE], "application/octet-stream",
                "{active}"
            );
        }
        for passive in [
            "application/json",
            "text/plain; charset=utf-8",
            "text/event-stream",
            "image/png",
            "application/zip",
        ] {
            let headers = answer(&[("content-type", passive)]);
            assert_eq!(headers[CONTENT_TYPE], passive);
        }
    }

    fn same_session(origin: &str) -> bool {
        origin == "https://p8000-ab12.content.example"
    }

    #[test]
    fn an_apps_cookies_reach_it_but_the_content_origins_own() {
        let check = |cookies: &[&str], expected: Option<&str>| {
            let pairs: Vec<(&str, &str)> = cookies.iter().map(|c| ("cookie", *c)).collect();
            let got = app_cookies(&map(&pairs));
            assert_eq!(got.as_ref().map(|v| v.to_str().expect("text")), expected);
        };
        check(
            &["app=1; __Host-octo_content=secret; theme=dark"],
            Some("app=1; theme=dark"),
        );
        check(&["__Host-octo_content=secret"], None);
        check(&["a=1", "b=2"], Some("a=1; b=2"));
        check(&[], None);
    }

    #[test]
    fn a_preview_drops_what_reaches_beyond_its_host() {
        let mut headers = map(&[
            ("content-type", "text/html"),
            ("content-security-policy", "script-src 'self'"),
            ("location", "/next"),
            ("set-cookie", "sid=1; Path=/; HttpOnly"),
            ("set-cookie", "wide=1; Domain=content.example; Path=/"),
            ("set-cookie", "__Host-octo_content=forged; Path=/; Secure"),
            ("set-cookie", "WIDE=2; path=/; domain = .content.example"),
            ("clear-site-data", "\"cookies\""),
            ("strict-transport-security", "max-age=1; includeSubDomains"),
            ("alt-svc", "h3=\":443\""),
            ("www-authenticate", "Basic realm=\"Octo\""),
            ("service-worker-allowed", "/"),
            (
                "access-control-allow-origin",
                "https://p3000-evil.content.example",
            ),
            ("access-control-allow-credentials", "true"),
        ]);
        for_preview(&mut headers, &same_session);
        let cookies: Vec<&str> = headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("text"))
            .collect();
        assert_eq!(cookies, ["sid=1; Path=/; HttpOnly"]);
        assert_eq!(
            names(&headers),
            [
                "content-security-policy",
                "content-type",
                "cross-origin-opener-policy",
                "cross-origin-resource-policy",
                "location",
                "referrer-policy",
                "service-worker-allowed",
                "set-cookie",
                "x-content-type-options",
            ]
        );
        // The app's own policy stays: a preview runs its scripts, on its own origin.
        assert_eq!(headers[CONTENT_SECURITY_POLICY], "script-src 'self'");
        assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");

        // Sharing with the same session's other ports, or with anyone (no credentials), stays.
        for origin in ["https://p8000-ab12.content.example", "*"] {
            let mut headers = map(&[
                ("access-control-allow-origin", origin),
                ("access-control-allow-credentials", "true"),
            ]);
            for_preview(&mut headers, &same_session);
            assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], origin);
            assert!(headers.contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));
        }
    }
}
