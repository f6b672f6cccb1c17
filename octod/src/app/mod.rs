//! The composition root of octod's HTTP surface: the handlers' shared state ([`AppState`]),
//! the one router (the sessions API [`crate::api`], the account routes [`crate::auth::http`],
//! the proxy [`crate::proxy`], behind the same-origin check), [`ROUTES`], the OpenAPI
//! document, health and metrics.
//!
//! Error policy: every failure answers `{ "error": { "code", "message" } }` with a stable
//! `code` ([`ApiError`]); internal details are logged, never shown to the client.

pub mod openapi;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRef, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::{Json, Router, middleware, routing::get};

use crate::api::sessions::{self, state_name};
use crate::auth::Auth;
use crate::engine::Engine;
use crate::http::ApiError;
use crate::proxy::EngineSessions;
use crate::service::sessions::MaxSessions;

/// Shared state of the handlers: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub auth: Auth,
    pub proxy: crate::proxy::Proxy,
    pub sessions: Arc<EngineSessions>,
    pub max_sessions_per_user: u32,
    pub started: Instant,
    /// The content origin ([`crate::content`]), if one is configured.
    pub content: crate::content::Content,
    /// octod's model gateway, when an LLM provider is configured (`serve` runs its sockets).
    pub llm: Option<crate::llm::Gateway>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl FromRef<AppState> for Auth {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for crate::proxy::Proxy {
    fn from_ref(state: &AppState) -> Self {
        state.proxy.clone()
    }
}

impl FromRef<AppState> for Arc<EngineSessions> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.sessions)
    }
}

impl FromRef<AppState> for crate::content::Content {
    fn from_ref(state: &AppState) -> Self {
        state.content.clone()
    }
}

impl FromRef<AppState> for Option<crate::llm::Gateway> {
    fn from_ref(state: &AppState) -> Self {
        state.llm.clone()
    }
}

impl FromRef<AppState> for Engine {
    fn from_ref(state: &AppState) -> Self {
        state.engine.clone()
    }
}

impl FromRef<AppState> for MaxSessions {
    fn from_ref(state: &AppState) -> Self {
        MaxSessions(state.max_sessions_per_user)
    }
}

impl AppState {
    /// The state for an engine and accounts, with a fresh proxy.
    pub fn new(engine: Engine, auth: Auth, max_sessions_per_user: u32) -> Self {
        Self {
            sessions: Arc::new(EngineSessions {
                engine: engine.clone(),
                wake_wait: crate::proxy::resolve::WAKE_WAIT,
            }),
            engine,
            auth,
            proxy: crate::proxy::Proxy::new(),
            max_sessions_per_user,
            started: Instant::now(),
            content: crate::content::Content::default(),
            llm: None,
        }
    }
}

/// The body of `GET /api/health`.
pub use octo_wire::Health;

/// The OpenAPI 3.1 document of the whole HTTP surface, served at `GET /api/openapi.json`:
/// derived from the wire types in [`openapi`], whose tests check it against [`routes`].
pub use openapi::OPENAPI;

/// Every route [`routes`] mounts, as (method, path) in axum's syntax; `ANY` is a route for
/// every method (the proxy). The tests (in [`openapi`]) check this list against the real
/// router in both directions and against the OpenAPI document; keep all three in step.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/health"),
    ("GET", "/api/openapi.json"),
    ("GET", "/metrics"),
    // crate::auth::http::routes
    ("POST", "/api/auth/register"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/logout"),
    ("GET", "/api/auth/providers"),
    ("GET", "/api/auth/oidc/{id}/start"),
    ("GET", "/api/auth/oidc/{id}/callback"),
    ("GET", "/api/me"),
    ("POST", "/api/me/password"),
    ("GET", "/api/me/tokens"),
    ("POST", "/api/me/tokens"),
    ("DELETE", "/api/me/tokens/{id}"),
    ("GET", "/api/admin/users"),
    ("POST", "/api/admin/users"),
    ("POST", "/api/admin/users/{name}/disable"),
    ("POST", "/api/admin/users/{name}/enable"),
    ("POST", "/api/admin/users/{name}/role"),
    ("POST", "/api/admin/users/{name}/budget"),
    ("POST", "/api/admin/users/{name}/password"),
    ("GET", "/api/admin/users/{name}/tokens"),
    ("DELETE", "/api/admin/users/{name}/tokens/{id}"),
    ("GET", "/api/admin/invite-codes"),
    ("POST", "/api/admin/invite-codes"),
    ("DELETE", "/api/admin/invite-codes/{code}"),
    ("GET", "/api/admin/audit"),
    // crate::api::sessions::routes
    ("GET", "/api/sessions"),
    ("POST", "/api/sessions"),
    ("GET", "/api/sessions/{id}"),
    ("PATCH", "/api/sessions/{id}"),
    ("DELETE", "/api/sessions/{id}"),
    ("POST", "/api/sessions/{id}/keep-alive"),
    ("POST", "/api/sessions/{id}/stop"),
    ("POST", "/api/sessions/{id}/resume"),
    ("GET", "/api/sessions/{id}/view"),
    ("GET", "/api/sessions/{id}/ports"),
    ("GET", "/api/sessions/{id}/ports/{port}/open"),
    ("POST", "/api/sessions/{id}/ports/{port}/share"),
    ("POST", "/api/sessions/{id}/ports/{port}/links"),
    ("DELETE", "/api/sessions/{id}/ports/{port}/links/{link}"),
    ("GET", "/api/sessions/{id}/snapshots"),
    ("POST", "/api/sessions/{id}/snapshots"),
    ("DELETE", "/api/sessions/{id}/snapshots/{snapshot}"),
    ("POST", "/api/sessions/{id}/snapshots/{snapshot}/restore"),
    ("POST", "/api/sessions/{id}/fork"),
    ("GET", "/api/admin/sessions"),
    ("GET", "/api/templates"),
    // crate::api::usage
    ("GET", "/api/usage"),
    ("GET", "/api/models"),
    // crate::proxy::routes
    ("ANY", "/sessions/{id}/opencode"),
    ("ANY", "/sessions/{id}/opencode/"),
    ("ANY", "/sessions/{id}/opencode/{*rest}"),
    ("ANY", "/sessions/{id}/files"),
    ("ANY", "/sessions/{id}/files/"),
    ("ANY", "/sessions/{id}/files/{*rest}"),
    ("GET", "/sessions/{id}/terminal"),
];

/// The routes of `octod`, without state, fallback or middleware: what [`router`] serves.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .merge(crate::auth::http::routes())
        .merge(sessions::routes())
        .route(
            "/api/sessions/{id}/view",
            get(crate::content::view::<EngineSessions>),
        )
        .route(
            "/api/sessions/{id}/ports",
            get(crate::content::ports::<EngineSessions>),
        )
        .route(
            "/api/sessions/{id}/ports/{port}/open",
            get(crate::content::open_preview::<EngineSessions>),
        )
        .route(
            "/api/sessions/{id}/ports/{port}/share",
            axum::routing::post(crate::content::share::set_share),
        )
        .route(
            "/api/sessions/{id}/ports/{port}/links",
            axum::routing::post(crate::content::share::create_link),
        )
        .route(
            "/api/sessions/{id}/ports/{port}/links/{link}",
            axum::routing::delete(crate::content::share::delete_link),
        )
        .route(
            "/api/usage",
            get(crate::api::usage::usage::<crate::identity::CurrentUser>),
        )
        .route(
            "/api/admin/users/{name}/budget",
            axum::routing::post(crate::api::usage::set_budget::<crate::auth::http::RequireAdmin>),
        )
        .route(
            "/api/models",
            get(crate::api::usage::models::<crate::identity::CurrentUser>),
        )
        .merge(crate::proxy::routes::<AppState, EngineSessions>())
}

/// The whole HTTP surface of `octod`: API, metrics and the proxy into sessions.
pub fn router(state: AppState) -> Router {
    // Requests for a content host never reach the routes: the content origin serves them.
    let content = crate::content::Dispatch {
        content: state.content.clone(),
        auth: state.auth.clone(),
        proxy: state.proxy.clone(),
        sessions: Arc::clone(&state.sessions),
    };
    routes()
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(middleware::from_fn(crate::http::same_origin))
        .layer(middleware::from_fn(crate::http::read_small_bodies))
        .layer(middleware::from_fn_with_state(
            content,
            crate::content::dispatch::<EngineSessions>,
        ))
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI.as_str())
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        version: crate::VERSION.to_owned(),
        uptime_seconds: state.started.elapsed().as_secs(),
    })
}

/// Prometheus text format.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let records = state.engine.list().await.unwrap_or_default();
    let _ = writeln!(out, "# HELP octo_sessions Sessions by state.");
    let _ = writeln!(out, "# TYPE octo_sessions gauge");
    for name in [
        "creating", "starting", "running", "stopping", "stopped", "deleting", "failed",
    ] {
        let count = records
            .iter()
            .filter(|r| state_name(&r.state) == name)
            .count();
        let _ = writeln!(out, "octo_sessions{{state=\"{name}\"}} {count}");
    }
    let sizes = state.engine.disk_sizes();
    let _ = writeln!(
        out,
        "# HELP octo_session_home_bytes A session's home size: its last measurement plus uploads through octod since."
    );
    let _ = writeln!(out, "# TYPE octo_session_home_bytes gauge");
    for (id, bytes) in &sizes {
        let _ = writeln!(out, "octo_session_home_bytes{{session=\"{id}\"}} {bytes}");
    }
    if let Some(free) = state
        .engine
        .config()
        .state_dir
        .as_deref()
        .and_then(crate::limits::free_space)
    {
        let _ = writeln!(
            out,
            "# HELP octod_state_free_bytes Free space on the file system of octod's state directory."
        );
        let _ = writeln!(out, "# TYPE octod_state_free_bytes gauge");
        let _ = writeln!(out, "octod_state_free_bytes {free}");
    }
    let _ = writeln!(out, "# HELP octo_failed_logins_total Failed sign-ins.");
    let _ = writeln!(out, "# TYPE octo_failed_logins_total counter");
    let _ = writeln!(
        out,
        "octo_failed_logins_total {}",
        state.auth.failed_logins()
    );
    let _ = writeln!(
        out,
        "# HELP octo_rate_limited_logins_total Sign-ins refused by the rate limit."
    );
    let _ = writeln!(out, "# TYPE octo_rate_limited_logins_total counter");
    let _ = writeln!(
        out,
        "octo_rate_limited_logins_total {}",
        state.auth.rate_limited_logins()
    );
    let _ = writeln!(
        out,
        "# HELP octod_uptime_seconds Seconds since octod started."
    );
    let _ = writeln!(out, "# TYPE octod_uptime_seconds gauge");
    let _ = writeln!(
        out,
        "octod_uptime_seconds {}",
        state.started.elapsed().as_secs()
    );
    let _ = writeln!(out, "octod_build_info{{version=\"{}\"}} 1", crate::VERSION);
    state.engine.metrics().render_prometheus(&mut out);
    state.proxy.metrics().render_prometheus(&mut out);
    if let Some(llm) = &state.llm {
        llm.metrics().render(&mut out);
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
