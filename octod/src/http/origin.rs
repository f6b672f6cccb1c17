//! The same-origin check for state-changing requests (CSRF defence in depth; the cookie is
//! already `SameSite=Strict`).
//!
//! `POST`, `PUT`, `PATCH` and `DELETE` (every method but `GET`, `HEAD`, `OPTIONS`, `TRACE`) pass
//! only when:
//! - an `Origin` header is present and its host (and port) equals the request's `Host` or
//!   `X-Forwarded-Host` (default ports ignored, `Origin: null` refused); or
//! - there is no `Origin` and `Sec-Fetch-Site` is `same-origin` or `none`; or
//! - there is neither header **and no `Cookie`**: a client that is not a browser (curl with a
//!   bearer token, scripts). A browser sends `Origin` with every cross-origin `POST`, and a
//!   request without a cookie carries no ambient credential to abuse.
//!
//! A request with `Authorization: Bearer …` passes whatever its origin: a bearer token is no
//! ambient credential (a page of another origin cannot send the header without a CORS
//! preflight, which octod never grants), and with one the cookie is not looked at.
//!
//! `X-Forwarded-Host` is trusted because a cross-origin page cannot set it: a custom header
//! makes the browser send a CORS preflight, which octod does not grant.

use axum::extract::Request;
use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Middleware: refuses state-changing requests that are not same-origin with 403
/// `cross_origin`. Layer it on the whole router with `axum::middleware::from_fn(same_origin)`.
pub async fn same_origin(req: Request, next: Next) -> Response {
    if is_safe(req.method()) || has_bearer(req.headers()) || is_same_origin(req.headers()) {
        next.run(req).await
    } else {
        tracing::debug!(
            method = %req.method(),
            path = req.uri().path(),
            "refused a cross-origin request"
        );
        ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "cross-origin request refused",
        )
        .into_response()
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Whether the request carries a bearer token (in which case the cookie is not used).
pub fn has_bearer(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
}

/// Whether the headers show a same-origin request (rules in the module documentation). Also
/// for WebSocket upgrades, which are `GET`s that the middleware lets through.
pub fn is_same_origin(headers: &HeaderMap) -> bool {
    if let Some(origin) = headers.get(ORIGIN) {
        let Some((scheme, origin_host)) = origin.to_str().ok().and_then(parse_origin) else {
            return false;
        };
        let hosts = headers
            .get_all(HOST)
            .iter()
            .chain(headers.get_all("x-forwarded-host").iter())
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim);
        return hosts
            .filter(|h| !h.is_empty())
            .any(|h| normalize(scheme, h) == origin_host);
    }
    match headers.get("sec-fetch-site").map(|v| v.to_str()) {
        Some(Ok(site)) => matches!(site, "same-origin" | "none"),
        Some(Err(_)) => false,
        None => !headers.contains_key(COOKIE),
    }
}

/// `https://Example.com:443` → (`https`, `example.com`). Anything else (`null`, a path, an
/// unknown scheme) is `None`.
fn parse_origin(origin: &str) -> Option<(&'static str, String)> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => "http",
        "https" => "https",
        _ => return None,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    Some((scheme, normalize(scheme, rest)))
}

/// Lower-cases a `host[:port]` and drops the scheme's default port.
fn normalize(scheme: &str, host: &str) -> String {
    let host = host.to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    match host.strip_suffix(default) {
        Some(bare) => bare.to_owned(),
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn check(headers: &[(&'static str, &'static str)], expected: bool) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, HeaderValue::from_static(v));
        }
        assert_eq!(is_same_origin(&map), expected, "{headers:?}");
    }

    #[test]
    fn origin_must_match_host_or_forwarded_host() {
        check(
            &[("origin", "https://octo.example"), ("host", "octo.example")],
            true,
        );
        check(
            &[
                ("origin", "https://OCTO.example:443"),
                ("host", "octo.example"),
            ],
            true,
        );
        check(
            &[
                ("origin", "http://octo.example"),
                ("host", "octo.example:80"),
            ],
            true,
        );
        check(
            &[
                ("origin", "http://localhost:8080"),
                ("host", "localhost:8080"),
            ],
            true,
        );
        check(
            &[
                ("origin", "https://octo.example"),
                ("host", "127.0.0.1:8080"),
                ("x-forwarded-host", "octo.example"),
            ],
            true,
        );
        check(
            &[("origin", "https://evil.example"), ("host", "octo.example")],
            false,
        );
        check(
            &[
                ("origin", "https://octo.example:8443"),
                ("host", "octo.example"),
            ],
            false,
        );
        check(
            &[
                ("origin", "https://octo.example.evil"),
                ("host", "octo.example"),
            ],
            false,
        );
        check(&[("origin", "null"), ("host", "octo.example")], false);
        check(&[("origin", "https://octo.example")], false);
        check(
            &[("origin", "file://octo.example"), ("host", "octo.example")],
            false,
        );
        // The origin wins over Sec-Fetch-Site.
        check(
            &[
                ("origin", "https://evil.example"),
                ("host", "octo.example"),
                ("sec-fetch-site", "same-origin"),
            ],
            false,
        );
    }

    #[test]
    fn without_origin_sec_fetch_site_decides() {
        check(
            &[("sec-fetch-site", "same-origin"), ("cookie", "a=b")],
            true,
        );
        check(&[("sec-fetch-site", "none"), ("cookie", "a=b")], true);
        check(&[("sec-fetch-site", "same-site"), ("cookie", "a=b")], false);
        check(&[("sec-fetch-site", "cross-site")], false);
    }

    #[test]
    fn without_either_only_cookieless_requests_pass() {
        check(&[("host", "octo.example")], true);
        check(
            &[("host", "octo.example"), ("authorization", "Bearer x")],
            true,
        );
        check(
            &[("host", "octo.example"), ("cookie", "octo_session=x")],
            false,
        );
    }
}
