//! JSON request bodies whose rejections (bad JSON, wrong content type) answer in the API's one
//! error shape instead of axum's plain text.

use axum::Json;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body whose rejections answer `bad_request` with axum's explanation.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "bad_request",
                rejection.body_text(),
            )),
        }
    }
}

/// The largest API request body read before its handler runs ([`read_small_bodies`]).
pub const READ_AHEAD_BYTES: u64 = 64 * 1024;

/// Reads a small API request body (`/api/…`, a `Content-Length` of at most
/// [`READ_AHEAD_BYTES`]) before the rest of the stack sees the request. A refusal that comes
/// before the handler reads its body (a token's scope, the same-origin check, a missing
/// session) would otherwise close the connection with the body unread in the socket, which
/// the kernel answers with a reset that can overtake the answer: the proxy in front (Caddy)
/// then answers `502` instead of the refusal (seen in the package check's browser run).
/// Larger bodies and the proxy's streams (`/sessions/…`) pass as they are.
pub async fn read_small_bodies(
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let small = req.uri().path().starts_with("/api/")
        && req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > 0 && n <= READ_AHEAD_BYTES);
    if !small {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let limit = usize::try_from(READ_AHEAD_BYTES).unwrap_or(usize::MAX);
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(_) => axum::response::IntoResponse::into_response(ApiError::bad_request(
            "the request body could not be read",
        )),
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::post;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    /// The handler sees the body whole, read ahead or not.
    #[tokio::test]
    async fn bodies_reach_their_handlers_whole() {
        let app = Router::new()
            .route(
                "/api/echo",
                post(|body: axum::body::Bytes| async move { body }),
            )
            .route(
                "/sessions/echo",
                post(|body: axum::body::Bytes| async move { body }),
            )
            .layer(axum::middleware::from_fn(super::read_small_bodies));
        let big = "x".repeat(100 * 1024);
        for (path, body) in [
            ("/api/echo", r#"{"template":"coding-copilot"}"#.to_owned()),
            ("/api/echo", big.clone()),
            ("/sessions/echo", big),
        ] {
            let request = Request::post(path)
                .header("content-length", body.len())
                .body(Body::from(body.clone()))
                .expect("request");
            let answer = app.clone().oneshot(request).await.expect("answer");
            assert_eq!(answer.status(), StatusCode::OK);
            let echoed = answer.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(echoed, body.as_bytes(), "{path}");
        }
    }
}
