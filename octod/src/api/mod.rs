//! The HTTP API. Only this module knows HTTP; it turns requests into calls on the engine.
//!
//! Error policy: every failure answers `{ "error": { "code", "message" } }` with a stable
//! `code`; internal details are logged, never shown to the client.

pub mod error;

use axum::{Json, Router, routing::get};

pub use error::ApiError;
use serde::Serialize;

/// Shared state of the API handlers.
#[derive(Debug, Clone, Default)]
pub struct AppState {}

/// The body of `GET /api/health`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
}

/// The whole HTTP surface of `octod`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .with_state(state)
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: crate::VERSION,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn health_answers_ok_with_version() {
        let response = router(AppState::default())
            .oneshot(
                axum::http::Request::get("/api/health")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["status"], "ok");
        assert_eq!(json["version"], crate::VERSION);
    }
}
