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

    fn activity(&self, _id: &SessionId) {}
}

/// The file server's download, as far as a view needs it: the path it was asked for.
async fn download(uri: Uri, headers: HeaderMap) -> Response {
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
        ],
        body.to_string(),
    )
        .into_response()
}

struct Env {
    app: Router,
    fixture: Fixture,
    _dir: tempfile::TempDir,
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
    });
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
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(ViewState {
            content,
            auth: fixture.auth.clone(),
            sessions,
        })
        .layer(axum::middleware::from_fn_with_state(dispatch, dispatch_mem));
    Env {
        app,
        fixture,
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
        let mut request = Request::get(path).header("host", host);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
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
