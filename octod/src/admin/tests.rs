//! The admin router's peer check driven with `oneshot` (the credentials as the kernel would
//! report them).

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Extension, Router, middleware};
use tower::ServiceExt as _;

use super::*;

/// A router with the real middleware in front of a handler that echoes the actor.
fn guarded(peer: Peer) -> Router {
    Router::new()
        .route(
            "/admin/v1/whoami",
            get(|Extension(actor): Extension<Actor>| async move { actor.0 }),
        )
        .layer(middleware::from_fn(peer::authorize))
        .layer(MockConnectInfo(peer))
}

async fn call(peer: Peer) -> (StatusCode, String) {
    let response = guarded(peer)
        .oneshot(
            Request::get("/admin/v1/whoami")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("answer");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn root_is_served_as_root() {
    let (status, body) = call(Peer {
        uid: 0,
        gid: 0,
        pid: None,
    })
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "root"));
}

#[tokio::test]
async fn an_unknown_uid_gets_a_403_in_the_api_error_shape() {
    // A uid without a passwd entry, not in any group: refused, and told what is needed.
    let (status, body) = call(Peer {
        uid: 4_000_000,
        gid: 4_000_000,
        pid: None,
    })
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["error"]["code"], "forbidden");
    let message = json["error"]["message"].as_str().expect("message");
    assert!(message.contains("uid 4000000"), "{message}");
    assert!(message.contains("octo-admin"), "{message}");
}

/// The paths the admin router mounts (the API's own handlers among them, mounted with the
/// admin socket's actor), read from its route table's `Debug` output as the OpenAPI tests
/// read the API's: `RouteId(3): "/admin/v1/status"`.
#[test]
fn the_admin_routes_are_the_documented_ones() {
    let debug = format!("{:?}", routes());
    let debug = &debug[..debug.find("fallback_router").unwrap_or(debug.len())];
    let mut paths: Vec<&str> = debug
        .split("RouteId(")
        .filter_map(|rest| {
            let (id, quoted) = rest.split_once("): \"")?;
            id.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
            quoted.split('"').next()
        })
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "/admin/v1/backup/sessions/{id}/home",
            "/admin/v1/backup/state",
            "/admin/v1/container/refresh",
            "/admin/v1/image/build",
            "/admin/v1/invite-codes",
            "/admin/v1/invite-codes/{code}",
            "/admin/v1/sessions",
            "/admin/v1/sessions/{id}",
            "/admin/v1/sessions/{id}/keep-alive",
            "/admin/v1/sessions/{id}/logs",
            "/admin/v1/sessions/{id}/resume",
            "/admin/v1/sessions/{id}/snapshots",
            "/admin/v1/sessions/{id}/snapshots/{snapshot}",
            "/admin/v1/sessions/{id}/snapshots/{snapshot}/restore",
            "/admin/v1/sessions/{id}/stop",
            "/admin/v1/status",
            "/admin/v1/usage",
            "/admin/v1/users",
            "/admin/v1/users/{name}/budget",
            "/admin/v1/users/{name}/disable",
            "/admin/v1/users/{name}/enable",
            "/admin/v1/users/{name}/password",
            "/admin/v1/users/{name}/role",
            "/admin/v1/users/{name}/tokens",
            "/admin/v1/users/{name}/tokens/{id}",
        ]
    );
}
