//! The HTTP API: accounts (`crate::auth::http`), sessions (`sessions`), health and metrics.
//! It turns requests into calls on the engine and the account store; the proxy into sessions
//! lives in `crate::proxy`.
//!
//! Error policy: every failure answers `{ "error": { "code", "message" } }` with a stable
//! `code` ([`ApiError`]); internal details are logged, never shown to the client.

pub mod error;
pub mod sessions;
pub mod wake;

use std::fmt::Write as _;
use std::time::Instant;

use axum::extract::{FromRef, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::{Json, Router, middleware, routing::get};

pub use error::ApiError;

use crate::auth::Auth;
use crate::engine::Engine;
use crate::session::SessionState;
use crate::store::AuditEntry;

/// Shared state of the handlers: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub auth: Auth,
    pub proxy: crate::proxy::Proxy,
    pub sessions: std::sync::Arc<wake::EngineSessions>,
    pub max_sessions_per_user: u32,
    pub started: Instant,
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

impl FromRef<AppState> for std::sync::Arc<wake::EngineSessions> {
    fn from_ref(state: &AppState) -> Self {
        std::sync::Arc::clone(&state.sessions)
    }
}

impl AppState {
    /// The state for an engine and accounts, with a fresh proxy.
    pub fn new(engine: Engine, auth: Auth, max_sessions_per_user: u32) -> Self {
        Self {
            sessions: std::sync::Arc::new(wake::EngineSessions {
                engine: engine.clone(),
                wake_wait: wake::WAKE_WAIT,
            }),
            engine,
            auth,
            proxy: crate::proxy::Proxy::new(),
            max_sessions_per_user,
            started: Instant::now(),
        }
    }

    /// Appends to the audit log; a failure to write it is logged, not fatal to the request.
    pub fn audit(&self, actor: &str, action: &str, target: &str) {
        let entry = AuditEntry::new(actor, action, target, "");
        if let Err(error) = self.engine.store().append_audit(&entry) {
            tracing::warn!("writing the audit log: {error}");
        }
    }
}

/// The body of `GET /api/health`.
pub use octo_wire::Health;

/// The OpenAPI 3.1 document of the whole HTTP surface, served at `GET /api/openapi.json`.
/// Hand-maintained JSON (no OpenAPI generator dependency); the tests below check it against
/// [`routes`] and the wire types.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route [`routes`] mounts, as (method, path) in axum's syntax; `ANY` is a route for
/// every method (the proxy). The tests check this list against the real router in both
/// directions and against the OpenAPI document; keep all three in step.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/health"),
    ("GET", "/api/openapi.json"),
    ("GET", "/metrics"),
    // crate::auth::routes
    ("POST", "/api/auth/register"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/logout"),
    ("GET", "/api/me"),
    ("POST", "/api/me/password"),
    ("GET", "/api/admin/users"),
    ("POST", "/api/admin/users"),
    ("POST", "/api/admin/users/{name}/disable"),
    ("POST", "/api/admin/users/{name}/enable"),
    ("POST", "/api/admin/users/{name}/role"),
    ("POST", "/api/admin/users/{name}/password"),
    ("GET", "/api/admin/invite-codes"),
    ("POST", "/api/admin/invite-codes"),
    ("DELETE", "/api/admin/invite-codes/{code}"),
    ("GET", "/api/admin/audit"),
    // sessions::routes
    ("GET", "/api/sessions"),
    ("POST", "/api/sessions"),
    ("GET", "/api/sessions/{id}"),
    ("DELETE", "/api/sessions/{id}"),
    ("POST", "/api/sessions/{id}/stop"),
    ("POST", "/api/sessions/{id}/resume"),
    ("GET", "/api/admin/sessions"),
    ("GET", "/api/templates"),
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
        .merge(crate::auth::routes())
        .merge(sessions::routes())
        .merge(crate::proxy::routes::<AppState, wake::EngineSessions>())
}

/// The whole HTTP surface of `octod`: API, metrics and the proxy into sessions.
pub fn router(state: AppState) -> Router {
    routes()
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(middleware::from_fn(crate::auth::same_origin))
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI)
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
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

fn state_name(state: &SessionState) -> &'static str {
    match state {
        SessionState::Creating => "creating",
        SessionState::Starting => "starting",
        SessionState::Running => "running",
        SessionState::Stopping => "stopping",
        SessionState::Stopped => "stopped",
        SessionState::Deleting => "deleting",
        SessionState::Failed(_) => "failed",
    }
}

#[cfg(test)]
mod tests {
    //! The OpenAPI document against the real router and the real wire types.
    //!
    //! The router's routes are read from [`routes`] itself, which [`router`] serves: its paths
    //! from axum's `Debug` output of the route table, and each path's methods by probing:
    //! adding a route for a method the path already has panics in axum ("Overlapping method
    //! route"), so a probe that panics proves the method is mounted. [`ROUTES`] must equal
    //! what the probes find, and the document must list exactly [`ROUTES`].

    use std::collections::BTreeSet;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use axum::routing::{MethodFilter, any, on};
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    use super::*;

    /// The methods an `ANY` route answers, as the document lists them.
    const ANY_METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    const PROBES: [(&str, MethodFilter); 9] = [
        ("GET", MethodFilter::GET),
        ("HEAD", MethodFilter::HEAD),
        ("POST", MethodFilter::POST),
        ("PUT", MethodFilter::PUT),
        ("DELETE", MethodFilter::DELETE),
        ("PATCH", MethodFilter::PATCH),
        ("OPTIONS", MethodFilter::OPTIONS),
        ("TRACE", MethodFilter::TRACE),
        ("CONNECT", MethodFilter::CONNECT),
    ];

    fn doc() -> Value {
        serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
    }

    /// The paths of a router's route table, from its `Debug` output
    /// (`Node { paths: {RouteId(3): "/api/health", …} }`).
    fn router_paths(router: &Router<AppState>) -> BTreeSet<String> {
        let debug = format!("{router:?}");
        // Only the path router: the fallback router has axum's private catch-all paths.
        let end = debug.find("fallback_router").unwrap_or(debug.len());
        let debug = &debug[..end];
        let mut paths = BTreeSet::new();
        let mut rest = debug;
        while let Some(at) = rest.find("RouteId(") {
            rest = &rest[at + "RouteId(".len()..];
            let Some(close) = rest.find("): \"") else {
                continue;
            };
            if !rest[..close].bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let quoted = &rest[close + "): \"".len()..];
            let end = quoted.find('"').expect("a closing quote");
            paths.insert(quoted[..end].to_owned());
        }
        paths
    }

    /// Whether adding `probe` at `path` panics as an overlap: the method is already mounted.
    fn mounted(router: &Router<AppState>, path: &str, probe: MethodRouterFor) -> bool {
        let router = router.clone();
        let outcome = catch_unwind(AssertUnwindSafe(move || {
            let _ = router.route(path, probe());
        }));
        match outcome {
            Ok(()) => false,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                assert!(
                    message.contains("Overlapping method route")
                        || message.contains("both have a fallback"),
                    "probing {path} panicked for another reason: {message}"
                );
                true
            }
        }
    }

    type MethodRouterFor = Box<dyn FnOnce() -> axum::routing::MethodRouter<AppState>>;

    /// (method, path) of every route the router mounts, found by probing.
    fn probed_routes() -> BTreeSet<(String, String)> {
        let router = routes();
        let paths = router_paths(&router);
        assert!(
            paths.contains("/api/health") && paths.len() > 20,
            "reading the route table from axum's Debug output failed: {paths:?}"
        );
        let mut found = BTreeSet::new();
        for path in &paths {
            if mounted(&router, path, Box::new(|| any(|| async {}))) {
                found.insert(("ANY".to_owned(), path.clone()));
                continue;
            }
            let methods: BTreeSet<&str> = PROBES
                .iter()
                .filter(|(_, filter)| {
                    let filter = *filter;
                    mounted(&router, path, Box::new(move || on(filter, || async {})))
                })
                .map(|(name, _)| *name)
                .collect();
            assert!(
                !methods.is_empty(),
                "{path} is in the table but answers no method"
            );
            for method in &methods {
                // `get` also answers HEAD.
                if *method == "HEAD" && methods.contains("GET") {
                    continue;
                }
                found.insert(((*method).to_owned(), path.clone()));
            }
        }
        found
    }

    fn routes_const() -> BTreeSet<(String, String)> {
        let set: BTreeSet<_> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(set.len(), ROUTES.len(), "ROUTES has duplicates");
        set
    }

    #[test]
    fn routes_const_is_exactly_what_the_router_mounts() {
        let probed = probed_routes();
        let listed = routes_const();
        let missing: Vec<_> = probed.difference(&listed).collect();
        let extra: Vec<_> = listed.difference(&probed).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "mounted but not in ROUTES: {missing:?}; in ROUTES but not mounted: {extra:?}"
        );
    }

    #[test]
    fn the_probe_sees_a_route_that_is_not_listed() {
        // The check above can fail: a route added to the router is found by the probe.
        let router = routes().route("/api/extra", axum::routing::put(|| async {}));
        assert!(router_paths(&router).contains("/api/extra"));
        assert!(mounted(
            &router,
            "/api/extra",
            Box::new(|| on(MethodFilter::PUT, || async {}))
        ));
        assert!(!mounted(
            &router,
            "/api/extra",
            Box::new(|| on(MethodFilter::GET, || async {}))
        ));
    }

    /// A document path item, following a `$ref` into `components/pathItems`.
    fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(pointer) => doc
                .pointer(pointer.strip_prefix('#').expect("a local $ref"))
                .unwrap_or_else(|| panic!("unresolved $ref {pointer}")),
            None => value,
        }
    }

    const DOC_METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    /// (method, path) of every operation in the document, in [`ROUTES`]' terms.
    fn document_routes(doc: &Value) -> BTreeSet<(String, String)> {
        let mut found = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let item = resolve(doc, item);
            let methods: BTreeSet<&str> = DOC_METHODS
                .iter()
                .copied()
                .filter(|m| item.get(*m).is_some())
                .collect();
            // OpenAPI has no wildcard: `{rest}` stands for axum's `{*rest}`.
            let path = path.replace("{rest}", "{*rest}");
            if methods == ANY_METHODS.into_iter().collect() {
                found.insert(("ANY".to_owned(), path));
            } else {
                for m in methods {
                    found.insert((m.to_uppercase(), path.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn document_lists_exactly_the_routes() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], crate::VERSION);
        let documented = document_routes(&doc);
        let listed = routes_const();
        let missing: Vec<_> = listed.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&listed).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "routes not documented: {missing:?}; documented but not routed: {extra:?}"
        );
    }

    /// Every operation of the document with its path and method.
    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let item = resolve(doc, item);
            for m in DOC_METHODS {
                if let Some(op) = item.get(m) {
                    ops.push((m.to_owned(), path.clone(), op));
                }
            }
        }
        ops
    }

    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    if key == "$ref" {
                        out.push(v.as_str().expect("a string $ref").to_owned());
                    }
                    refs(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_ref_resolves_and_path_parameters_are_declared() {
        let doc = doc();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for pointer in all {
            let local = pointer.strip_prefix('#').expect("local $ref");
            assert!(doc.pointer(local).is_some(), "unresolved $ref {pointer}");
        }
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let item = resolve(&doc, item);
            for (method, op) in DOC_METHODS.iter().filter_map(|m| Some((m, item.get(*m)?))) {
                let declared: BTreeSet<&str> = item["parameters"]
                    .as_array()
                    .into_iter()
                    .chain(op["parameters"].as_array())
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                let in_path: BTreeSet<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                assert_eq!(declared, in_path, "{method} {path}: path parameters");
            }
        }
    }

    #[test]
    fn errors_use_the_one_shape_with_their_codes() {
        let doc = doc();
        assert_eq!(
            doc["components"]["securitySchemes"]["cookie"],
            json!({
                "type": "apiKey", "in": "cookie", "name": crate::auth::http::COOKIE_NAME,
                "description": doc["components"]["securitySchemes"]["cookie"]["description"],
            })
        );
        for (method, path, op) in operations(&doc) {
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses
                    .keys()
                    .any(|s| s.starts_with('1') || s.starts_with('2')),
                "{method} {path}: no success response"
            );
            for (status, response) in responses {
                if status.starts_with('1') || status.starts_with('2') {
                    continue;
                }
                let response = resolve(&doc, response);
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{method} {path} {status}: not the error shape"
                );
                let codes = response["x-error-codes"].as_array();
                assert!(
                    codes.is_some_and(|c| !c.is_empty()),
                    "{method} {path} {status}: no x-error-codes"
                );
            }
            let public = op["security"].as_array().is_some_and(Vec::is_empty);
            if !public {
                let has = |status: &str, code: &str| {
                    responses
                        .get(status)
                        .map_or(&Value::Null, |r| resolve(&doc, r))["x-error-codes"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c == code))
                };
                assert!(has("401", "unauthorized"), "{method} {path}: no 401");
                if path.starts_with("/api/admin/") {
                    assert!(has("403", "forbidden"), "{method} {path}: no 403 forbidden");
                }
            }
            if method != "get" && method != "head" && method != "options" && method != "trace" {
                let cross_origin = responses
                    .get("403")
                    .and_then(|r| resolve(&doc, r)["x-error-codes"].as_array())
                    .is_some_and(|c| c.iter().any(|c| c == "cross_origin"));
                assert!(cross_origin, "{method} {path}: no 403 cross_origin");
            }
        }
    }

    #[tokio::test]
    async fn the_error_schema_is_what_api_error_sends() {
        use http_body_util::BodyExt as _;
        let response = ApiError::not_found("no such route").into_response();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body: Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_response_schema(&doc(), "Error", &body);
    }

    fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
        doc.pointer(&format!("/components/schemas/{name}"))
            .unwrap_or_else(|| panic!("no schema {name}"))
    }

    /// A serialized value has exactly the schema's properties (nested objects too); the
    /// schema's required ones are the ones always there.
    fn assert_response_schema(doc: &Value, name: &str, value: &Value) {
        let schema = resolve(doc, schema(doc, name));
        check_object(doc, name, schema, value);
    }

    fn check_object(doc: &Value, name: &str, schema: &Value, value: &Value) {
        let schema = resolve(doc, schema);
        let Some(object) = value.as_object() else {
            if let Some(values) = schema["enum"].as_array() {
                assert!(values.contains(value), "{name}: {value} not in {values:?}");
            }
            return;
        };
        let props = schema["properties"].as_object().expect("properties");
        let sent: BTreeSet<&str> = object.keys().map(String::as_str).collect();
        let documented: BTreeSet<&str> = props.keys().map(String::as_str).collect();
        assert!(
            sent.is_subset(&documented),
            "{name}: sent {sent:?}, documented {documented:?}"
        );
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            required.is_subset(&sent),
            "{name}: required {required:?}, sent {sent:?}"
        );
        for (key, v) in object {
            check_object(doc, &format!("{name}.{key}"), &props[key], v);
        }
    }

    /// A value of each documented property, from its schema.
    fn sample(doc: &Value, schema: &Value) -> Value {
        let schema = resolve(doc, schema);
        if let Some(first) = schema["oneOf"].as_array().and_then(|a| a.first()) {
            return sample(doc, first);
        }
        if let Some(first) = schema["enum"].as_array().and_then(|a| a.first()) {
            return first.clone();
        }
        let ty = match &schema["type"] {
            Value::Array(types) => types.first().cloned().unwrap_or_default(),
            other => other.clone(),
        };
        match ty.as_str() {
            Some("string") => json!("x1"),
            Some("integer") => json!(1),
            Some("boolean") => json!(true),
            other => panic!("no sample for {other:?}"),
        }
    }

    /// The document's request schema `name` against the type the handler deserializes (all of
    /// them `deny_unknown_fields`): every documented property is accepted, the required ones
    /// are enough, and leaving out any required one is refused.
    fn check_request<T: DeserializeOwned>(doc: &Value, name: &str) {
        let schema = schema(doc, name);
        let props = schema["properties"].as_object().expect("properties");
        let required: Vec<&str> = schema["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let full: serde_json::Map<String, Value> = props
            .iter()
            .map(|(k, s)| (k.clone(), sample(doc, s)))
            .collect();
        serde_json::from_value::<T>(Value::Object(full.clone()))
            .unwrap_or_else(|e| panic!("{name}: all documented properties refused: {e}"));
        let minimal: serde_json::Map<String, Value> = full
            .iter()
            .filter(|(k, _)| required.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        serde_json::from_value::<T>(Value::Object(minimal.clone()))
            .unwrap_or_else(|e| panic!("{name}: the required properties are not enough: {e}"));
        for key in &required {
            let mut without = minimal.clone();
            without.remove(*key);
            assert!(
                serde_json::from_value::<T>(Value::Object(without)).is_err(),
                "{name}: {key} is documented as required but is optional"
            );
        }
        let mut unknown = full;
        unknown.insert("not_a_field".into(), json!(1));
        assert!(
            serde_json::from_value::<T>(Value::Object(unknown)).is_err(),
            "{name}: unknown fields must be refused (deny_unknown_fields)"
        );
    }

    #[test]
    fn request_schemas_match_the_handlers_types() {
        use crate::auth::http::{
            CreateInvite, CreateUser, LoginRequest, PasswordChange, RegisterRequest, ResetPassword,
            SetRole,
        };
        let doc = doc();
        check_request::<RegisterRequest>(&doc, "RegisterRequest");
        check_request::<LoginRequest>(&doc, "LoginRequest");
        check_request::<PasswordChange>(&doc, "PasswordChange");
        check_request::<CreateUser>(&doc, "CreateUser");
        check_request::<SetRole>(&doc, "SetRole");
        check_request::<ResetPassword>(&doc, "ResetPassword");
        check_request::<CreateInvite>(&doc, "CreateInvite");
        check_request::<sessions::CreateSession>(&doc, "CreateSession");
        // Every role the document names is one the server accepts, and back.
        for role in schema(&doc, "Role")["enum"].as_array().expect("enum") {
            serde_json::from_value::<crate::identity::Role>(role.clone()).expect("a role");
        }
        for role in [crate::identity::Role::Admin, crate::identity::Role::User] {
            let value = serde_json::to_value(role).expect("role");
            check_object(&doc, "Role", schema(&doc, "Role"), &value);
        }
    }

    fn to_value(value: impl Serialize) -> Value {
        serde_json::to_value(value).expect("serializes")
    }

    #[test]
    fn response_schemas_match_the_wire_types() {
        use crate::auth::http::{AuditView, InviteView, UserView};
        use crate::identity::Role;
        let doc = doc();
        let user = UserView {
            name: "ada".into(),
            role: Role::Admin,
            disabled: false,
            created_at: 1,
        };
        assert_response_schema(&doc, "User", &to_value(&user));
        for expires_at in [None, Some(5)] {
            let invite = InviteView {
                code: "c".into(),
                role: Role::User,
                uses_left: 1,
                expires_at,
                created_by: "ada".into(),
                created_at: 1,
            };
            assert_response_schema(&doc, "Invite", &to_value(&invite));
        }
        let entry = AuditView {
            id: 1,
            time: 2,
            actor: "ada".into(),
            action: "user.create".into(),
            target: "bob".into(),
            detail: String::new(),
        };
        assert_response_schema(&doc, "AuditEntry", &to_value(&entry));
        let health = Health {
            status: "ok".into(),
            version: crate::VERSION.into(),
            uptime_seconds: 3,
        };
        assert_response_schema(&doc, "Health", &to_value(&health));
        let template = sessions::TemplateView {
            id: "default".into(),
            name: "Default".into(),
            description: String::new(),
        };
        assert_response_schema(&doc, "Template", &to_value(&template));
        for (state, reason) in [
            (sessions::SessionStatus::Running, None),
            (
                sessions::SessionStatus::Failed,
                Some("the start job failed".to_owned()),
            ),
        ] {
            let view = sessions::SessionView {
                id: "s1".into(),
                owner: "ada".into(),
                template: "default".into(),
                state,
                reason,
                desired: sessions::Desired::Running,
                created_at: 1,
                updated_at: 2,
                urls: sessions::SessionUrls {
                    opencode: "/sessions/s1/opencode/".into(),
                    files: "/sessions/s1/files/".into(),
                    terminal: "/sessions/s1/terminal".into(),
                },
            };
            assert_response_schema(&doc, "Session", &to_value(&view));
        }
        // Every documented session state is one the API sends.
        let states: BTreeSet<&str> = schema(&doc, "Session")["properties"]["state"]["enum"]
            .as_array()
            .expect("enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let sent: BTreeSet<&str> = [
            SessionState::Creating,
            SessionState::Starting,
            SessionState::Running,
            SessionState::Stopping,
            SessionState::Stopped,
            SessionState::Deleting,
            SessionState::Failed(String::new()),
        ]
        .iter()
        .map(state_name)
        .collect();
        assert_eq!(states, sent);
    }

    #[test]
    fn every_documented_schema_is_checked_or_used() {
        // A schema nobody references is probably stale.
        let doc = doc();
        let mut all = Vec::new();
        refs(&doc["paths"], &mut all);
        refs(&doc["components"]["pathItems"], &mut all);
        refs(&doc["components"]["schemas"], &mut all);
        let used: BTreeSet<String> = all.into_iter().collect();
        for name in doc["components"]["schemas"]
            .as_object()
            .expect("schemas")
            .keys()
        {
            let pointer = format!("#/components/schemas/{name}");
            assert!(used.contains(&pointer), "schema {name} is unused");
        }
    }
}
