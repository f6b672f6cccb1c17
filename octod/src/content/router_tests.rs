//! The content origin through a router as octod mounts it (the view route, and the dispatch
//! in front of everything), with real accounts (redb, keys in a temporary directory) and a
//! gateway stand-in on a real Unix socket that answers `/api/download` the way the file
//! server does (its `sandbox` policy included).

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, Uri};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::*;
use crate::auth::tests::Fixture;
use crate::identity::Role;
use crate::proxy::Upstream;

const SITE: &str = "*.content.localhost:8443";

/// Sessions in memory: `ab12` is alice's, `cd34` bob's, both behind the stand-in.
struct Mem {
    socket: std::path::PathBuf,
    owners: HashMap<&'static str, &'static str>,
    /// Activity recorded, per session.
    active: std::sync::Mutex<HashMap<String, usize>>,
    /// Shared ports, per (session, port).
    shares: std::sync::Mutex<HashMap<(String, u16), crate::store::PortShare>>,
    /// Owners whose accounts are disabled.
    disabled: std::sync::Mutex<Vec<String>>,
}

impl Sessions for Mem {
    async fn resolve(
        &self,
        user: &CurrentUser,
        id: &SessionId,
        _service: Service,
    ) -> Result<Upstream, ApiError> {
        self.owners
            .get(id.as_str())
            .filter(|owner| user.may_access(owner))
            .ok_or_else(|| ApiError::not_found("no such session"))?;
        Ok(Upstream {
            socket: self.socket.clone(),
            token: Secret::new("t".into()),
            wake: None,
            quota: None,
        })
    }

    fn activity(&self, id: &SessionId) {
        *self
            .active
            .lock()
            .expect("lock")
            .entry(id.to_string())
            .or_default() += 1;
    }

    async fn preview_share(
        &self,
        id: &SessionId,
        port: u16,
    ) -> Option<crate::proxy::SharedPreview> {
        let owner = self.owners.get(id.as_str())?;
        let share = self
            .shares
            .lock()
            .expect("lock")
            .get(&(id.to_string(), port))
            .cloned()
            .unwrap_or_default();
        let owner_active = !self
            .disabled
            .lock()
            .expect("lock")
            .iter()
            .any(|d| d == owner);
        Some(crate::proxy::SharedPreview {
            owner: (*owner).to_owned(),
            share,
            owner_active,
        })
    }
}

/// The file server's download, as far as a view needs it: the path it was asked for (and,
/// for previews, an app's answer with headers an app may and may not send).
async fn download(uri: Uri, headers: HeaderMap) -> Response {
    if uri.path() == "/preview/3000/stream" {
        // An event stream that never ends by itself.
        let ticks = futures_util::stream::unfold(0u64, |n| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((
                Ok::<_, std::convert::Infallible>(format!("data: {n}\n\n")),
                n + 1,
            ))
        });
        return (
            [("content-type", "text/event-stream")],
            Body::from_stream(ticks),
        )
            .into_response();
    }
    if uri.path() == "/api/ports" {
        let ports = serde_json::json!({"ports": [
            {"port": 3000, "address": "0.0.0.0"},
            {"port": 5173, "address": "::1"},
        ]});
        return ([("content-type", "application/json")], ports.to_string()).into_response();
    }
    let body = serde_json::json!({
        "path": uri.path(),
        "query": uri.query(),
        "cookie": headers.get("cookie").map(|c| c.to_str().unwrap_or("?").to_owned()),
    });
    (
        [
            ("content-type", "text/html; charset=utf-8"),
            ("content-security-policy", "sandbox"),
            ("x-content-type-options", "nosniff"),
            ("content-disposition", "inline; filename=\"r.html\""),
            ("set-cookie", "__Host-octo_content=forged; Path=/; Secure"),
            ("set-cookie", "app=1; Path=/"),
            ("clear-site-data", "\"cookies\""),
        ],
        body.to_string(),
    )
        .into_response()
}

struct Env {
    app: Router,
    fixture: Fixture,
    activity: Arc<Mem>,
    _dir: tempfile::TempDir,
}

impl Env {
    fn activity_of(&self, id: &str) -> usize {
        self.activity
            .active
            .lock()
            .expect("lock")
            .get(id)
            .copied()
            .unwrap_or_default()
    }
}

async fn env(site: Option<&str>) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("gateway.sock");
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
    tokio::spawn(async move { axum::serve(listener, Router::new().fallback(download)).await });
    let fixture = Fixture::new();
    fixture.user("alice", Role::User).await;
    fixture.user("bob", Role::User).await;
    fixture.user("root", Role::Admin).await;
    let sessions = Arc::new(Mem {
        socket,
        owners: HashMap::from([("ab12", "alice"), ("cd34", "bob")]),
        active: std::sync::Mutex::new(HashMap::new()),
        shares: std::sync::Mutex::new(HashMap::new()),
        disabled: std::sync::Mutex::new(Vec::new()),
    });
    let activity = Arc::clone(&sessions);
    let content = Content(site.map(|site| {
        Arc::new(ContentOrigin::new(ContentSite::parse(site).expect("site")).expect("random"))
    }));
    let dispatch = Dispatch {
        content: content.clone(),
        auth: fixture.auth.clone(),
        proxy: Proxy::new(),
        sessions: Arc::clone(&sessions),
    };
    let app = Router::new()
        .route("/api/sessions/{id}/view", axum::routing::get(view::<Mem>))
        .route("/api/sessions/{id}/ports", axum::routing::get(ports::<Mem>))
        .route(
            "/api/sessions/{id}/ports/{port}/open",
            axum::routing::get(open_preview::<Mem>),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(ViewState {
            content,
            auth: fixture.auth.clone(),
            sessions,
            proxy: Proxy::new(),
        })
        .layer(axum::middleware::from_fn_with_state(dispatch, dispatch_mem));
    Env {
        app,
        fixture,
        activity,
        _dir: dir,
    }
}

async fn dispatch_mem(
    state: State<Dispatch<Mem>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    dispatch::<Mem>(state, request, next).await
}

#[derive(Clone)]
struct ViewState {
    content: Content,
    auth: Auth,
    sessions: Arc<Mem>,
    proxy: Proxy,
}

impl FromRef<ViewState> for Proxy {
    fn from_ref(state: &ViewState) -> Self {
        state.proxy.clone()
    }
}

impl FromRef<ViewState> for Content {
    fn from_ref(state: &ViewState) -> Self {
        state.content.clone()
    }
}

impl FromRef<ViewState> for Auth {
    fn from_ref(state: &ViewState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<ViewState> for Arc<Mem> {
    fn from_ref(state: &ViewState) -> Self {
        Arc::clone(&state.sessions)
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Env {
    async fn get(&self, host: &str, path: &str, cookie: Option<&str>) -> Answer {
        self.send("GET", host, path, cookie, &[]).await
    }

    async fn send(
        &self,
        method: &str,
        host: &str,
        path: &str,
        cookie: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("answer");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// alice's UI cookie.
    async fn ui_cookie(&self, name: &str) -> (String, Claims) {
        let issued = self.fixture.login(name).await;
        (
            format!("octo_session={}", issued.token.expose()),
            issued.claims,
        )
    }

    /// A view of `path` in session `id` for the UI cookie, traded on its content host: the
    /// content host's cookie and where the trade sends the browser.
    async fn view(&self, ui: &str, id: &str, path: &str) -> (String, String) {
        let view = self
            .get(
                "localhost:8443",
                &format!("/api/sessions/{id}/view?path={path}"),
                Some(ui),
            )
            .await;
        assert_eq!(view.status, StatusCode::SEE_OTHER, "{}", view.body);
        let location = view.header("location").expect("location");
        let host = format!("files-{id}.content.localhost:8443");
        let ticket = location
            .strip_prefix(&format!("https://{host}"))
            .expect("to the session's content host");
        assert!(ticket.starts_with("/__octo/ticket?t="), "{location}");
        let traded = self.get(&host, ticket, None).await;
        assert_eq!(traded.status, StatusCode::SEE_OTHER, "{}", traded.body);
        let cookie = traded.header("set-cookie").expect("a cookie").to_owned();
        assert!(
            cookie.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"),
            "{cookie}"
        );
        let again = self.get(&host, ticket, None).await;
        assert_eq!(again.status, StatusCode::FORBIDDEN, "a ticket works once");
        (
            cookie.split(';').next().expect("pair").to_owned(),
            traded.header("location").expect("location").to_owned(),
        )
    }
}

#[tokio::test]
async fn a_view_runs_the_file_on_its_content_host_with_a_cookie_of_its_own() {
    let env = env(Some(SITE)).await;
    let (ui, claims) = env.ui_cookie("alice").await;
    let (cookie, next) = env.view(&ui, "ab12", "site%2Fr%C3%A9+1.html").await;
    assert_eq!(next, "/site/r%C3%A9%201.html");
    let host = "files-ab12.content.localhost:8443";

    let page = env.get(host, &next, Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let seen: serde_json::Value = serde_json::from_str(&page.body).expect("json");
    assert_eq!(seen["path"], "/api/download");
    assert_eq!(seen["query"], "path=site%2Fr%C3%A9%201%2Ehtml&inline=true");
    // Neither cookie reaches the session.
    assert_eq!(seen["cookie"], serde_json::Value::Null);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("content-security-policy"), None);
    assert_eq!(page.header("set-cookie"), None, "the session set no cookie");
    assert_eq!(
        page.header("cross-origin-resource-policy"),
        Some("same-origin")
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));

    // Every path is content: octod's API is not here.
    let me = env.get(host, "/api/me", Some(&cookie)).await;
    let seen: serde_json::Value = serde_json::from_str(&me.body).expect("json");
    assert_eq!(seen["query"], "path=api%2Fme&inline=true");

    for (what, host, cookie) in [
        ("no cookie", host, None),
        ("the UI's cookie", host, Some(ui.as_str())),
        (
            "another session's host",
            "files-cd34.content.localhost:8443",
            Some(cookie.as_str()),
        ),
        ("a forged cookie", host, Some("__Host-octo_content=forged")),
    ] {
        let refused = env.get(host, "/r.html", cookie).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            refused.body
        );
    }

    // Signing out of the UI ends the view.
    env.fixture.auth.logout(&claims).await.expect("logout");
    let after = env.get(host, &next, Some(&cookie)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_the_owner_or_an_admin_gets_a_view() {
    let env = env(Some(SITE)).await;
    let (bob, _) = env.ui_cookie("bob").await;
    let refused = env
        .get(
            "localhost:8443",
            "/api/sessions/ab12/view?path=r.html",
            Some(&bob),
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    let anonymous = env
        .get(
            "localhost:8443",
            "/api/sessions/ab12/view?path=r.html",
            None,
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let (root, _) = env.ui_cookie("root").await;
    let (cookie, next) = env.view(&root, "ab12", "r.html").await;
    let page = env
        .get("files-ab12.content.localhost:8443", &next, Some(&cookie))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let (alice, _) = env.ui_cookie("alice").await;
    let missing = env
        .get("localhost:8443", "/api/sessions/ab12/view", Some(&alice))
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn without_a_content_site_a_view_is_the_download() {
    let env = env(None).await;
    let (alice, _) = env.ui_cookie("alice").await;
    let view = env
        .get(
            "localhost:8443",
            "/api/sessions/ab12/view?path=d%2Fr.html",
            Some(&alice),
        )
        .await;
    assert_eq!(view.status, StatusCode::SEE_OTHER);
    assert_eq!(
        view.header("location"),
        Some("/sessions/ab12/files/api/download?path=d%2Fr%2Ehtml")
    );
    // And a content host's name is nothing special then.
    let other = env
        .get("files-ab12.content.localhost:8443", "/r.html", None)
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

impl Env {
    /// A preview of `port` in session `id` opened for the UI cookie, traded on its host: the
    /// host's cookie (name=value) and its full `Set-Cookie`, and where the trade sends the
    /// browser.
    async fn open(&self, ui: &str, id: &str, port: u16, query: &str) -> (String, String, String) {
        let open = self
            .get(
                "localhost:8443",
                &format!("/api/sessions/{id}/ports/{port}/open{query}"),
                Some(ui),
            )
            .await;
        assert_eq!(open.status, StatusCode::SEE_OTHER, "{}", open.body);
        let location = open.header("location").expect("location");
        let host = format!("p{port}-{id}.content.localhost:8443");
        let ticket = location
            .strip_prefix(&format!("https://{host}"))
            .expect("to the preview's host");
        let traded = self.get(&host, ticket, None).await;
        assert_eq!(traded.status, StatusCode::SEE_OTHER, "{}", traded.body);
        let set = traded.header("set-cookie").expect("a cookie").to_owned();
        (
            set.split(';').next().expect("pair").to_owned(),
            set,
            traded.header("location").expect("location").to_owned(),
        )
    }
}

#[tokio::test]
async fn a_preview_relays_to_the_apps_port_on_its_own_host() {
    let env = env(Some(SITE)).await;
    let (ui, claims) = env.ui_cookie("alice").await;
    let (cookie, set, next) = env.open(&ui, "ab12", 3000, "?path=/app%3Fx%3D1").await;
    assert!(
        set.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"),
        "{set}"
    );
    assert_eq!(next, "/app?x=1");
    let host = "p3000-ab12.content.localhost:8443";

    let before = env.activity_of("ab12");
    let page = env
        .get(host, "/app?x=1", Some(&format!("theme=dark; {cookie}")))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // A preview's traffic is the session's activity (the idle stop).
    assert!(env.activity_of("ab12") > before, "no activity recorded");
    let seen: serde_json::Value = serde_json::from_str(&page.body).expect("json");
    assert_eq!(seen["path"], "/preview/3000/app");
    assert_eq!(seen["query"], "x=1");
    // The app's own cookies reach it; the key to its host does not.
    assert_eq!(seen["cookie"], "theme=dark");
    // The app's headers pass (its policy too: it runs scripts on its own origin), but what
    // reaches beyond its host.
    assert_eq!(page.header("content-security-policy"), Some("sandbox"));
    let cookies: Vec<&str> = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("text"))
        .collect();
    assert_eq!(cookies, ["app=1; Path=/"]);
    assert_eq!(page.header("clear-site-data"), None);
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));

    // Writes and upgrades only from the session's own hosts (or from no page at all).
    for (origin, expected) in [
        ("https://p3000-ab12.content.localhost:8443", StatusCode::OK),
        ("https://p8000-ab12.content.localhost:8443", StatusCode::OK),
        ("https://files-ab12.content.localhost:8443", StatusCode::OK),
        (
            "https://p3000-cd34.content.localhost:8443",
            StatusCode::FORBIDDEN,
        ),
        ("https://localhost:8443", StatusCode::FORBIDDEN),
        ("https://evil.example", StatusCode::FORBIDDEN),
        ("null", StatusCode::FORBIDDEN),
    ] {
        let post = env
            .send("POST", host, "/api", Some(&cookie), &[("origin", origin)])
            .await;
        assert_eq!(post.status, expected, "{origin}: {}", post.body);
    }
    let no_page = env.send("POST", host, "/api", Some(&cookie), &[]).await;
    assert_eq!(no_page.status, StatusCode::OK, "{}", no_page.body);

    // The cookie is this host's alone: another port, another session, no cookie.
    for (what, host, cookie) in [
        ("no cookie", host, None),
        (
            "another port",
            "p3001-ab12.content.localhost:8443",
            Some(cookie.as_str()),
        ),
        (
            "another session",
            "p3000-cd34.content.localhost:8443",
            Some(cookie.as_str()),
        ),
        ("the UI's cookie", host, Some(ui.as_str())),
    ] {
        let refused = env.get(host, "/", cookie).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            refused.body
        );
    }
    // Ports no app may have: a clear refusal.
    let low = env
        .get("p80-ab12.content.localhost:8443", "/", Some(&cookie))
        .await;
    assert_eq!(low.status, StatusCode::BAD_REQUEST, "{}", low.body);
    assert!(low.body.contains("1024"), "{}", low.body);

    // Signing out ends the preview.
    env.fixture.auth.logout(&claims).await.expect("logout");
    let after = env.get(host, "/", Some(&cookie)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_preview_pane_gets_a_partitioned_cookie_and_paths_stay_on_the_host() {
    let env = env(Some(SITE)).await;
    let (ui, _) = env.ui_cookie("alice").await;
    let (_, set, next) = env.open(&ui, "ab12", 5173, "?embed=true").await;
    assert!(
        set.ends_with("; Path=/; Secure; HttpOnly; SameSite=None; Partitioned"),
        "{set}"
    );
    assert_eq!(next, "/");
    // The pane's frame starts on the content origin: the UI asks for the URL as JSON.
    let json = env
        .get(
            "localhost:8443",
            "/api/sessions/ab12/ports/5173/open?embed=true&json=true",
            Some(&ui),
        )
        .await;
    assert_eq!(json.status, StatusCode::OK, "{}", json.body);
    assert_eq!(json.header("cache-control"), Some("no-store"));
    let ticket: serde_json::Value = serde_json::from_str(&json.body).expect("json");
    let url = ticket["url"].as_str().expect("url");
    let host = "p5173-ab12.content.localhost:8443";
    let traded = env
        .get(
            host,
            url.strip_prefix(&format!("https://{host}"))
                .expect("on the host"),
            None,
        )
        .await;
    assert_eq!(traded.status, StatusCode::SEE_OTHER, "{}", traded.body);
    assert!(
        traded
            .header("set-cookie")
            .is_some_and(|c| c.ends_with("SameSite=None; Partitioned")),
        "{:?}",
        traded.header("set-cookie")
    );
    for path in [
        "//evil.example/",
        "https://evil.example/",
        "x",
        "/a\\b",
        "/a%0d",
    ] {
        let refused = env
            .get(
                "localhost:8443",
                &format!("/api/sessions/ab12/ports/3000/open?path={path}"),
                Some(&ui),
            )
            .await;
        // `%0d` decodes to a control character: refused like the others.
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            refused.body
        );
    }
}

#[tokio::test]
async fn ports_are_listed_for_the_owner_with_their_previews() {
    let env = env(Some(SITE)).await;
    env.share("ab12", 5173, |s| s.users = true);
    let (alice, _) = env.ui_cookie("alice").await;
    let listed = env
        .get("localhost:8443", "/api/sessions/ab12/ports", Some(&alice))
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    // Asking which ports listen is no use of the session: a UI left open keeps nothing alive.
    assert_eq!(env.activity_of("ab12"), 0);
    let listed: serde_json::Value = serde_json::from_str(&listed.body).expect("json");
    assert_eq!(
        listed,
        serde_json::json!({
            "running": true,
            "previews": true,
            "ports": [
                {"port": 3000, "address": "0.0.0.0",
                 "url": "https://p3000-ab12.content.localhost:8443/",
                 "open": "/api/sessions/ab12/ports/3000/open",
                 "share": {"users": false, "links": []}},
                {"port": 5173, "address": "::1",
                 "url": "https://p5173-ab12.content.localhost:8443/",
                 "open": "/api/sessions/ab12/ports/5173/open",
                 "share": {"users": true, "links": []}},
            ],
        })
    );
    let (bob, _) = env.ui_cookie("bob").await;
    // The listing stays the owner's, even of a shared port.
    for path in [
        "/api/sessions/ab12/ports",
        "/api/sessions/ab12/ports/3000/open",
    ] {
        let refused = env.get("localhost:8443", path, Some(&bob)).await;
        assert_eq!(
            refused.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            refused.body
        );
        let anonymous = env.get("localhost:8443", path, None).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let low = env
        .get(
            "localhost:8443",
            "/api/sessions/ab12/ports/22/open",
            Some(&alice),
        )
        .await;
    assert_eq!(low.status, StatusCode::BAD_REQUEST, "{}", low.body);

    // Without a content site: listed, not openable.
    let env = env_without_site().await;
    let (alice, _) = env.ui_cookie("alice").await;
    let listed = env
        .get("localhost:8443", "/api/sessions/ab12/ports", Some(&alice))
        .await;
    let listed: serde_json::Value = serde_json::from_str(&listed.body).expect("json");
    assert_eq!(listed["previews"], false);
    assert_eq!(
        listed["ports"][0],
        serde_json::json!({"port": 3000, "address": "0.0.0.0",
                           "share": {"users": false, "links": []}})
    );
    let off = env
        .get(
            "localhost:8443",
            "/api/sessions/ab12/ports/3000/open",
            Some(&alice),
        )
        .await;
    assert_eq!(off.status, StatusCode::CONFLICT, "{}", off.body);
}

async fn env_without_site() -> Env {
    env(None).await
}

impl Env {
    fn share(&self, id: &str, port: u16, change: impl FnOnce(&mut crate::store::PortShare)) {
        change(
            self.activity
                .shares
                .lock()
                .expect("lock")
                .entry((id.to_owned(), port))
                .or_default(),
        );
    }
}

#[tokio::test]
async fn a_shared_preview_opens_for_other_users_and_links_until_revoked_or_expired() {
    let env = env(Some(SITE)).await;
    let host = "p3000-ab12.content.localhost:8443";
    let (bob, _) = env.ui_cookie("bob").await;
    let open_path = "/api/sessions/ab12/ports/3000/open";

    // Not shared: bob's open is "not found", and a cookie of his own would not pass either.
    let refused = env.get("localhost:8443", open_path, Some(&bob)).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);

    // Shared with every signed-in user: bob opens it, and the app sees alice's session.
    env.share("ab12", 3000, |s| s.users = true);
    let (cookie, _, _) = env.open(&bob, "ab12", 3000, "").await;
    let page = env.get(host, "/", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let seen: serde_json::Value = serde_json::from_str(&page.body).expect("json");
    assert_eq!(seen["path"], "/preview/3000/");
    // Only that port: another port of the session stays alice's.
    let other_port = env
        .get(
            "localhost:8443",
            "/api/sessions/ab12/ports/5173/open",
            Some(&bob),
        )
        .await;
    assert_eq!(other_port.status, StatusCode::NOT_FOUND);
    // Unshared: bob's next request is refused (the proxy's owner rule: not found).
    env.share("ab12", 3000, |s| s.users = false);
    let after = env.get(host, "/", Some(&cookie)).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND, "{}", after.body);

    // A link: no account needed, until it is revoked.
    let token = "a1b2c3d4e5f6";
    let link = |id: &str, expires_at: SystemTime| crate::store::ShareLink {
        id: id.into(),
        token_sha256: crate::auth::api_token::secret_sha256(token),
        created_by: "alice".into(),
        created_at: SystemTime::now(),
        expires_at,
    };
    let wrong = env.get(host, "/__octo/share?t=nope", None).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.body);
    env.share("ab12", 3000, |s| {
        s.links = vec![link("l1", SystemTime::now() + Duration::from_secs(600))];
    });
    let traded = env
        .get(host, &format!("/__octo/share?t={token}"), None)
        .await;
    assert_eq!(traded.status, StatusCode::SEE_OTHER, "{}", traded.body);
    assert_eq!(traded.header("location"), Some("/"));
    let set = traded.header("set-cookie").expect("a cookie").to_owned();
    assert!(
        set.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"),
        "{set}"
    );
    let anonymous = set.split(';').next().expect("pair").to_owned();
    let page = env.get(host, "/", Some(&anonymous)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // The link's token on another port's host opens nothing, nor its cookie.
    let elsewhere = env
        .get(
            "p5173-ab12.content.localhost:8443",
            &format!("/__octo/share?t={token}"),
            None,
        )
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::FORBIDDEN,
        "{}",
        elsewhere.body
    );
    let elsewhere = env
        .get("p5173-ab12.content.localhost:8443", "/", Some(&anonymous))
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        elsewhere.body
    );
    // Revoked: the cookie it gave is refused at once, the link too.
    env.share("ab12", 3000, |s| s.links.clear());
    let revoked = env.get(host, "/", Some(&anonymous)).await;
    assert_eq!(revoked.status, StatusCode::FORBIDDEN, "{}", revoked.body);
    assert!(
        revoked.body.contains("share_link_invalid"),
        "{}",
        revoked.body
    );
    let again = env
        .get(host, &format!("/__octo/share?t={token}"), None)
        .await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
    // Expired: refused.
    env.share("ab12", 3000, |s| {
        s.links = vec![link("l2", SystemTime::now() - Duration::from_secs(1))];
    });
    let expired = env
        .get(host, &format!("/__octo/share?t={token}"), None)
        .await;
    assert_eq!(expired.status, StatusCode::FORBIDDEN, "{}", expired.body);
    // A file host knows no share links.
    let files = env
        .get(
            "files-ab12.content.localhost:8443",
            &format!("/__octo/share?t={token}"),
            None,
        )
        .await;
    assert_eq!(files.status, StatusCode::NOT_FOUND, "{}", files.body);
}

impl Env {
    /// A request's answer whose body is still streaming.
    async fn stream(&self, host: &str, path: &str, cookie: &str) -> Body {
        let request = Request::builder()
            .uri(path)
            .header("host", host)
            .header("cookie", cookie)
            .body(Body::empty())
            .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body()
    }
}

/// Reads `body` until it fails, which it must within a bound far above [`SHARE_RECHECK`]; it
/// must not end cleanly (the stream never ends by itself).
async fn cut(body: Body, what: &str) {
    let mut body = body;
    let read = async {
        let mut frames = 0;
        loop {
            match body.frame().await {
                Some(Ok(_)) => frames += 1,
                Some(Err(_)) => return frames,
                None => panic!("{what}: the stream ended cleanly"),
            }
        }
    };
    let frames = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .unwrap_or_else(|_| panic!("{what}: the stream was not cut"));
    assert!(frames > 0, "{what}: nothing came through before the cut");
}

#[tokio::test]
async fn streams_through_a_share_end_when_the_share_does() {
    let env = env(Some(SITE)).await;
    let host = "p3000-ab12.content.localhost:8443";
    let (bob, _) = env.ui_cookie("bob").await;

    // Shared with every signed-in user, then unshared: bob's open stream is cut.
    env.share("ab12", 3000, |s| s.users = true);
    let (cookie, _, _) = env.open(&bob, "ab12", 3000, "").await;
    let stream = env.stream(host, "/stream", &cookie).await;
    let unshare = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        env.share("ab12", 3000, |s| s.users = false);
    };
    tokio::join!(cut(stream, "unshared"), unshare);

    // A link's stream, then the link revoked.
    let token = "f00dfeed";
    env.share("ab12", 3000, |s| {
        s.links = vec![crate::store::ShareLink {
            id: "l1".into(),
            token_sha256: crate::auth::api_token::secret_sha256(token),
            created_by: "alice".into(),
            created_at: SystemTime::now(),
            expires_at: SystemTime::now() + Duration::from_secs(600),
        }];
    });
    let traded = env
        .get(host, &format!("/__octo/share?t={token}"), None)
        .await;
    let set = traded.header("set-cookie").expect("a cookie").to_owned();
    let anonymous = set.split(';').next().expect("pair").to_owned();
    let stream = env.stream(host, "/stream", &anonymous).await;
    let revoke = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        env.share("ab12", 3000, |s| s.links.clear());
    };
    tokio::join!(cut(stream, "revoked"), revoke);

    // The owner disabled: the link's stream is cut, and the link opens nothing more.
    env.share("ab12", 3000, |s| {
        s.links = vec![crate::store::ShareLink {
            id: "l2".into(),
            token_sha256: crate::auth::api_token::secret_sha256(token),
            created_by: "alice".into(),
            created_at: SystemTime::now(),
            expires_at: SystemTime::now() + Duration::from_secs(600),
        }];
    });
    let traded = env
        .get(host, &format!("/__octo/share?t={token}"), None)
        .await;
    let set = traded.header("set-cookie").expect("a cookie").to_owned();
    let anonymous = set.split(';').next().expect("pair").to_owned();
    let stream = env.stream(host, "/stream", &anonymous).await;
    let disable = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        env.activity
            .disabled
            .lock()
            .expect("lock")
            .push("alice".into());
    };
    tokio::join!(cut(stream, "owner disabled"), disable);
    let refused = env.get(host, "/", Some(&anonymous)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let again = env
        .get(host, &format!("/__octo/share?t={token}"), None)
        .await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.body);
}
