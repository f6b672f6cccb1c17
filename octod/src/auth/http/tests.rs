//! Router tests: `routes()` behind the same-origin middleware, driven with `oneshot` on a real
//! redb file and key file in a temporary directory.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::auth::tests::{Fixture, password_of};
use crate::auth::{AuthSettings, Bucket, LoginLimits, PasswordCost, token};
use crate::http::same_origin;

const HOST: &str = "octo.example";

fn app(f: &Fixture) -> Router {
    routes::<AuthState>()
        .with_state(f.auth.clone())
        .layer(axum::middleware::from_fn(same_origin))
}

/// One request. `cookie` is a session token sent as the browser would; every request is
/// same-origin unless `headers` says otherwise.
struct Call<'a> {
    method: Method,
    path: &'a str,
    body: Option<Value>,
    token: Option<&'a str>,
    headers: Vec<(&'static str, String)>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// The token in `Set-Cookie`, if one was set.
    fn cookie_token(&self) -> Option<String> {
        let v = self.headers.get("set-cookie")?.to_str().ok()?;
        let token = v.strip_prefix("octo_session=")?.split(';').next()?;
        (!token.is_empty()).then(|| token.to_owned())
    }
}

fn req(method: Method, path: &str) -> Call<'_> {
    Call {
        method,
        path,
        body: None,
        token: None,
        headers: Vec::new(),
    }
}

impl<'a> Call<'a> {
    fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    fn token(mut self, token: &'a str) -> Self {
        self.token = Some(token);
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    async fn send(self, f: &Fixture) -> Answer {
        let mut builder = Request::builder()
            .method(self.method)
            .uri(self.path)
            .header("host", HOST);
        if !self.headers.iter().any(|(n, _)| *n == "origin") {
            builder = builder.header("origin", format!("https://{HOST}"));
        }
        if let Some(token) = self.token {
            builder = builder.header("cookie", format!("theme=dark; octo_session={token}"));
        }
        // An empty value means: leave the header out.
        for (name, value) in self.headers.into_iter().filter(|(_, v)| !v.is_empty()) {
            builder = builder.header(name, value);
        }
        let body = match self.body {
            Some(v) => {
                builder = builder.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut request = builder.body(body).expect("request");
        // As packaged: every request comes from Caddy over octod's Unix socket.
        request.extensions_mut().insert(axum::extract::ConnectInfo(
            crate::http::peer::ClientPeer::UNIX,
        ));
        let response = app(f).oneshot(request).await.expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        Answer {
            status,
            headers,
            json,
        }
    }
}

async fn login(f: &Fixture, name: &str) -> String {
    let a = req(Method::POST, "/api/auth/login")
        .json(json!({"username": name, "password": password_of(name)}))
        .send(f)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    a.cookie_token().expect("cookie")
}

#[track_caller]
fn check(a: &Answer, status: StatusCode, code: &str) {
    assert_eq!((a.status, a.code()), (status, code), "{}", a.json);
}

#[tokio::test]
async fn register_me_logout_round_trip() {
    let f = Fixture::new();
    let code = f
        .auth
        .bootstrap_admin_invite()
        .expect("boot")
        .expect("code");
    let a = req(Method::POST, "/api/auth/register")
        .json(json!({"invite_code": code.expose(), "username": "root", "password": "root-password-1"}))
        .send(&f)
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    assert_eq!(a.json["name"], "root");
    assert_eq!(a.json["role"], "admin");
    assert_eq!(a.json["disabled"], false);
    assert!(a.json["created_at"].as_u64().expect("ms") > 1_600_000_000_000);
    assert!(a.json.get("password_hash").is_none());
    let cookie = a.headers["set-cookie"].to_str().expect("ascii").to_owned();
    assert!(
        cookie.ends_with("; Path=/; HttpOnly; SameSite=Strict; Max-Age=604800"),
        "{cookie}"
    );
    let token = a.cookie_token().expect("token");

    let me = req(Method::GET, "/api/me").token(&token).send(&f).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json["name"], "root");
    // The same token as a bearer token, without cookie or origin (an API client).
    let me = req(Method::GET, "/api/me")
        .header("authorization", format!("Bearer {token}"))
        .send(&f)
        .await;
    assert_eq!(me.status, StatusCode::OK);

    let out = req(Method::POST, "/api/auth/logout")
        .token(&token)
        .send(&f)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(
        out.headers["set-cookie"],
        "octo_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    );
    check(
        &req(Method::GET, "/api/me").token(&token).send(&f).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // Logging out again (or without a session) still clears the cookie.
    let out = req(Method::POST, "/api/auth/logout")
        .token(&token)
        .send(&f)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let out = req(Method::POST, "/api/auth/logout").send(&f).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn register_errors() {
    let f = Fixture::new();
    f.user("root", Role::Admin).await;
    let invite = f
        .auth
        .create_invite(
            NewInvite {
                uses: Some(5),
                ..NewInvite::default()
            },
            "root",
        )
        .await
        .expect("invite");
    let code = invite.code.expose();
    let register = |code: &str, name: &str, password: &str| {
        req(Method::POST, "/api/auth/register")
            .json(json!({"invite_code": code, "username": name, "password": password}))
    };
    let cases = [
        (
            register(code, "Root", "long-enough-1"),
            StatusCode::BAD_REQUEST,
            "invalid_username",
        ),
        (
            register(code, "", "long-enough-1"),
            StatusCode::BAD_REQUEST,
            "invalid_username",
        ),
        (
            register(code, "ada", "short"),
            StatusCode::BAD_REQUEST,
            "invalid_password",
        ),
        (
            register(code, "ada", &"x".repeat(1025)),
            StatusCode::BAD_REQUEST,
            "invalid_password",
        ),
        (
            register("nope", "ada", "long-enough-1"),
            StatusCode::BAD_REQUEST,
            "invalid_invite",
        ),
        (
            register(code, "root", "long-enough-1"),
            StatusCode::CONFLICT,
            "username_taken",
        ),
        (
            req(Method::POST, "/api/auth/register").json(json!({"username": "ada"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_request",
        ),
        (
            req(Method::POST, "/api/auth/register"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_request",
        ),
    ];
    for (call, status, code) in cases {
        check(&call.send(&f).await, status, code);
    }
    // None of the refusals used the code.
    assert_eq!(f.auth.invites().await.expect("invites")[0].uses_left, 5);
    let a = register(code, "ada", "long-enough-1").send(&f).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.json["role"], "user");
    assert_eq!(f.auth.invites().await.expect("invites")[0].uses_left, 4);
}

#[tokio::test]
async fn login_answers_and_rate_limit() {
    let f = Fixture::with(AuthSettings {
        password_cost: PasswordCost::TEST,
        login_limits: LoginLimits {
            pair: Bucket {
                burst: 4,
                refill: Duration::from_secs(300),
            },
            ..LoginLimits::uniform(100)
        },
        ..AuthSettings::default()
    });
    f.user("root", Role::Admin).await;
    f.user("ada", Role::User).await;
    let login = |name: &str, password: &str| {
        req(Method::POST, "/api/auth/login").json(json!({"username": name, "password": password}))
    };
    let unknown = login("nobody", "some-password").send(&f).await;
    let wrong = login("ada", "some-password").send(&f).await;
    check(&unknown, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(unknown.json, wrong.json, "one answer for both");
    assert_eq!(unknown.status, wrong.status);
    assert!(unknown.headers.get("set-cookie").is_none());

    f.auth.disable("ada", "root").await.expect("disable");
    check(
        &login("ada", &password_of("ada")).send(&f).await,
        StatusCode::FORBIDDEN,
        "account_disabled",
    );
    assert_eq!(f.auth.failed_logins(), 3);

    // ada has had 2 failures (a disabled account's right password is one); two more empty
    // her bucket for this client.
    login("ada", "x-password-x").send(&f).await;
    login("ada", "x-password-x").send(&f).await;
    let limited = login("ada", "x-password-x").send(&f).await;
    check(&limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((290..=300).contains(&retry), "{retry}");
    // Others are not affected.
    login("root", &password_of("root")).send(&f).await;
    assert_eq!(
        login("root", &password_of("root")).send(&f).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn secure_cookie_behind_tls_or_when_configured() {
    let f = Fixture::new();
    f.user("ada", Role::User).await;
    let body = json!({"username": "ada", "password": password_of("ada")});
    let a = req(Method::POST, "/api/auth/login")
        .json(body.clone())
        .header("x-forwarded-proto", "https")
        .send(&f)
        .await;
    assert!(
        a.headers["set-cookie"]
            .to_str()
            .expect("ascii")
            .ends_with("; Secure"),
        "{:?}",
        a.headers
    );
    let f = Fixture::with(AuthSettings {
        secure_cookies: true,
        password_cost: PasswordCost::TEST,
        ..AuthSettings::default()
    });
    f.user("ada", Role::User).await;
    let a = req(Method::POST, "/api/auth/login")
        .json(body)
        .send(&f)
        .await;
    assert!(
        a.headers["set-cookie"]
            .to_str()
            .expect("ascii")
            .ends_with("; Secure")
    );
}

#[tokio::test]
async fn bad_tokens_are_refused() {
    let f = Fixture::new();
    f.user("ada", Role::User).await;
    let good = login(&f, "ada").await;
    let me = |token: &str| {
        req(Method::GET, "/api/me").header("authorization", format!("Bearer {token}"))
    };
    assert_eq!(me(&good).send(&f).await.status, StatusCode::OK);

    let now = token::unix_seconds(std::time::SystemTime::now());
    let claims = token::Claims {
        sub: "ada".to_owned(),
        role: Role::Admin,
        exp: now + 3600,
        iat: now,
        jti: "0123456789abcdef0123456789abcdef".to_owned(),
        generation: 0,
        idp: None,
    };
    let forged = token::Keys::from_secret(&[1; 64])
        .sign(&claims)
        .expect("sign");
    let expired_claims = token::Claims {
        exp: now - 1,
        ..claims.clone()
    };
    // Signed with the real key, expired: read the key file like an attacker with a backup
    // of an old token would not be able to — this proves expiry alone refuses it.
    let key = std::fs::read(f.dir.path().join(token::KEY_FILE)).expect("key");
    let real = token::Keys::from_secret(&key);
    let expired = real.sign(&expired_claims).expect("sign");
    let parts: Vec<&str> = good.split('.').collect();
    let payload = token::tests::b64(&serde_json::to_vec(&claims).expect("json"));
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    let none = format!(
        "{}.{payload}.",
        token::tests::b64(br#"{"alg":"none","typ":"JWT"}"#)
    );
    // Right key and claims but another user's generation: superseded.
    let stale = real
        .sign(&token::Claims {
            sub: "ada".to_owned(),
            generation: 7,
            ..claims.clone()
        })
        .expect("sign");
    let nobody = real
        .sign(&token::Claims {
            sub: "nobody".to_owned(),
            ..claims.clone()
        })
        .expect("sign");
    for bad in [
        forged.expose(),
        expired.expose(),
        &tampered,
        &none,
        stale.expose(),
        nobody.expose(),
        "garbage",
    ] {
        check(
            &me(bad).send(&f).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        check(
            &req(Method::GET, "/api/me").token(bad).send(&f).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    // The real key with the right generation is accepted: the refusals above are for the
    // reasons named, not for something else in the fixture.
    let fine = real.sign(&claims).expect("sign");
    let a = me(fine.expose()).send(&f).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.json["role"], "user",
        "the stored role, not the claimed one"
    );
    check(
        &req(Method::GET, "/api/me").send(&f).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

#[tokio::test]
async fn change_password_route() {
    let f = Fixture::new();
    f.user("ada", Role::User).await;
    let t1 = login(&f, "ada").await;
    let t2 = login(&f, "ada").await;
    let change = |token: &'static str, current: &str, new: &str| {
        req(Method::POST, "/api/me/password")
            .token(token)
            .json(json!({"current": current, "new": new}))
    };
    let t1: &'static str = Box::leak(t1.into_boxed_str());
    check(
        &change(t1, "wrong-password", "new-password-1")
            .send(&f)
            .await,
        StatusCode::FORBIDDEN,
        "wrong_password",
    );
    check(
        &change(t1, &password_of("ada"), "short").send(&f).await,
        StatusCode::BAD_REQUEST,
        "invalid_password",
    );
    check(
        &req(Method::POST, "/api/me/password")
            .json(json!({"current": "a", "new": "b"}))
            .send(&f)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let a = change(t1, &password_of("ada"), "new-password-1")
        .send(&f)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.json);
    let t3 = a.cookie_token().expect("a fresh cookie");
    for old in [t1, t2.as_str()] {
        check(
            &req(Method::GET, "/api/me").token(old).send(&f).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    assert_eq!(
        req(Method::GET, "/api/me").token(&t3).send(&f).await.status,
        StatusCode::OK
    );
}

/// Every admin route, for anonymous (401), a user (403), a disabled admin (401) and an
/// admin (through).
#[tokio::test]
async fn admin_routes_need_an_enabled_admin() {
    let f = Fixture::new();
    f.user("root", Role::Admin).await;
    f.user("boss", Role::Admin).await;
    f.user("ada", Role::User).await;
    // The target of the user routes, so that no caller's own token ends on the way.
    f.user("cy", Role::User).await;
    let root = leak(login(&f, "root").await);
    let boss = leak(login(&f, "boss").await);
    let ada = leak(login(&f, "ada").await);
    f.auth.disable("boss", "root").await.expect("disable boss");
    let routes: [(Method, &str, Value); 10] = [
        (Method::GET, "/api/admin/users", Value::Null),
        (
            Method::POST,
            "/api/admin/users",
            json!({"username": "new", "password": "new-password"}),
        ),
        (Method::POST, "/api/admin/users/cy/disable", Value::Null),
        (Method::POST, "/api/admin/users/cy/enable", Value::Null),
        (
            Method::POST,
            "/api/admin/users/cy/role",
            json!({"role": "user"}),
        ),
        (
            Method::POST,
            "/api/admin/users/cy/password",
            json!({"password": "ada-password-1"}),
        ),
        (Method::GET, "/api/admin/invite-codes", Value::Null),
        (Method::POST, "/api/admin/invite-codes", json!({})),
        (Method::DELETE, "/api/admin/invite-codes/nope", Value::Null),
        (Method::GET, "/api/admin/audit", Value::Null),
    ];
    for (method, path, body) in &routes {
        let call = |token: Option<&'static str>| {
            let mut c = req(method.clone(), path);
            if !body.is_null() {
                c = c.json(body.clone());
            }
            if let Some(t) = token {
                c = c.token(t);
            }
            c
        };
        let anonymous = call(None).send(&f).await;
        check(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized");
        check(
            &call(Some(boss)).send(&f).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        check(
            &call(Some(ada)).send(&f).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        let admin = call(Some(root)).send(&f).await;
        assert!(
            admin.status.is_success() || admin.code() == "not_found",
            "{method} {path}: {} {}",
            admin.status,
            admin.json
        );
    }
}

#[tokio::test]
async fn admin_user_management() {
    let f = Fixture::new();
    f.user("root", Role::Admin).await;
    let root = login(&f, "root").await;
    let post = |path: String, body: Value| {
        req(Method::POST, leak(path))
            .token(leak(root.clone()))
            .json(body)
    };

    let a = post(
        "/api/admin/users".into(),
        json!({"username": "ada", "password": "ada-password-1"}),
    )
    .send(&f)
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    assert_eq!(a.json["role"], "user");
    check(
        &post(
            "/api/admin/users".into(),
            json!({"username": "ada", "password": "ada-password-1"}),
        )
        .send(&f)
        .await,
        StatusCode::CONFLICT,
        "username_taken",
    );
    check(
        &post(
            "/api/admin/users".into(),
            json!({"username": "x", "password": "1", "extra": 1}),
        )
        .send(&f)
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_request",
    );
    let ada = login(&f, "ada").await;

    let list = req(Method::GET, "/api/admin/users")
        .token(&root)
        .send(&f)
        .await;
    let names: Vec<&str> = list
        .json
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["ada", "root"]);

    // Disable: ada's token stops working at once; enable lets her sign in again.
    let a = post("/api/admin/users/ada/disable".into(), Value::Null)
        .send(&f)
        .await;
    assert_eq!(
        (a.status, &a.json["disabled"]),
        (StatusCode::OK, &json!(true))
    );
    check(
        &req(Method::GET, "/api/me").token(&ada).send(&f).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let a = post("/api/admin/users/ada/enable".into(), Value::Null)
        .send(&f)
        .await;
    assert_eq!(a.json["disabled"], false);
    let ada = login(&f, "ada").await;

    // Role: ada becomes admin and can see the admin routes with the token she has.
    let a = post("/api/admin/users/ada/role".into(), json!({"role": "admin"}))
        .send(&f)
        .await;
    assert_eq!(a.json["role"], "admin");
    assert_eq!(
        req(Method::GET, "/api/admin/users")
            .token(&ada)
            .send(&f)
            .await
            .status,
        StatusCode::OK
    );
    check(
        &post("/api/admin/users/ada/role".into(), json!({"role": "god"}))
            .send(&f)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_request",
    );

    // Reset: ada's tokens end, the new password works.
    let a = post(
        "/api/admin/users/ada/password".into(),
        json!({"password": "reset-password"}),
    )
    .send(&f)
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    check(
        &req(Method::GET, "/api/me").token(&ada).send(&f).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    check(
        &post(
            "/api/admin/users/ada/password".into(),
            json!({"password": "short"}),
        )
        .send(&f)
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_password",
    );

    // Unknown users, and the last admin.
    for path in ["disable", "enable", "role", "password"] {
        let body = match path {
            "role" => json!({"role": "user"}),
            "password" => json!({"password": "long-enough-pw"}),
            _ => Value::Null,
        };
        check(
            &post(format!("/api/admin/users/nobody/{path}"), body)
                .send(&f)
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    post("/api/admin/users/ada/role".into(), json!({"role": "user"}))
        .send(&f)
        .await;
    check(
        &post("/api/admin/users/root/disable".into(), Value::Null)
            .send(&f)
            .await,
        StatusCode::CONFLICT,
        "last_admin",
    );
    check(
        &post("/api/admin/users/root/role".into(), json!({"role": "user"}))
            .send(&f)
            .await,
        StatusCode::CONFLICT,
        "last_admin",
    );
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[tokio::test]
async fn invite_code_routes() {
    let f = Fixture::new();
    f.user("root", Role::Admin).await;
    let root = login(&f, "root").await;
    let create = |body: Value| {
        req(Method::POST, "/api/admin/invite-codes")
            .token(leak(root.clone()))
            .json(body)
    };
    let a = create(json!({})).send(&f).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    assert_eq!(a.json["role"], "user");
    assert_eq!(a.json["uses_left"], 1);
    assert_eq!(a.json["created_by"], "root");
    let ttl = a.json["expires_at"].as_u64().expect("expiry")
        - a.json["created_at"].as_u64().expect("created");
    assert_eq!(ttl, 7 * 24 * 3600 * 1000);
    let default_code = a.json["code"].as_str().expect("code").to_owned();

    let a = create(json!({"role": "admin", "uses": 3, "expires_in_seconds": 60}))
        .send(&f)
        .await;
    assert_eq!(
        (a.json["role"].as_str(), a.json["uses_left"].as_u64()),
        (Some("admin"), Some(3))
    );
    let admin_code = a.json["code"].as_str().expect("code").to_owned();

    for bad in [
        json!({"uses": 0}),
        json!({"expires_in_seconds": 0}),
        json!({"expires_in_seconds": 400 * 24 * 3600}),
    ] {
        check(
            &create(bad).send(&f).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        );
    }
    check(
        &create(json!({"role": "owner"})).send(&f).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_request",
    );

    let list = req(Method::GET, "/api/admin/invite-codes")
        .token(&root)
        .send(&f)
        .await;
    let mut codes: Vec<&str> = list
        .json
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["code"].as_str().expect("code"))
        .collect();
    codes.sort_unstable();
    let mut expected = [default_code.as_str(), admin_code.as_str()];
    expected.sort_unstable();
    assert_eq!(codes, expected);

    let path = leak(format!("/api/admin/invite-codes/{default_code}"));
    let a = req(Method::DELETE, path).token(&root).send(&f).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    check(
        &req(Method::DELETE, path).token(&root).send(&f).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    check(
        &req(Method::POST, "/api/auth/register")
            .json(json!({"invite_code": default_code, "username": "ada", "password": "ada-password-1"}))
            .send(&f)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_invite",
    );
}

#[tokio::test]
async fn audit_route() {
    let f = Fixture::new();
    f.user("root", Role::Admin).await;
    let root = login(&f, "root").await;
    let _ = req(Method::POST, "/api/auth/login")
        .json(json!({"username": "root", "password": "wrong-password"}))
        .header("x-forwarded-for", "203.0.113.9")
        .send(&f)
        .await;
    let a = req(Method::GET, "/api/admin/audit")
        .token(&root)
        .send(&f)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let entries = a.json.as_array().expect("array");
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["login.failure", "login.success", "user.create"]);
    assert_eq!(entries[0]["detail"], "from 203.0.113.9");
    assert_eq!(entries[0]["target"], "root");
    assert_eq!(entries[0]["id"], 3);

    let a = req(Method::GET, "/api/admin/audit?limit=1")
        .token(&root)
        .send(&f)
        .await;
    assert_eq!(a.json.as_array().expect("array").len(), 1);
    for bad in ["0", "1001", "x", "-1"] {
        check(
            &req(Method::GET, leak(format!("/api/admin/audit?limit={bad}")))
                .token(&root)
                .send(&f)
                .await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        );
    }
}

#[tokio::test]
async fn state_changing_requests_must_be_same_origin() {
    let f = Fixture::new();
    f.user("ada", Role::User).await;
    let token = login(&f, "ada").await;
    let body = json!({"username": "ada", "password": password_of("ada")});
    // Cross-site login (login CSRF) and logout are refused before any handler runs.
    let a = req(Method::POST, "/api/auth/login")
        .json(body.clone())
        .header("origin", "https://evil.example")
        .send(&f)
        .await;
    check(&a, StatusCode::FORBIDDEN, "cross_origin");
    assert_eq!(f.auth.failed_logins(), 0);
    let a = req(Method::POST, "/api/auth/logout")
        .token(&token)
        .header("origin", "https://evil.example")
        .send(&f)
        .await;
    check(&a, StatusCode::FORBIDDEN, "cross_origin");
    assert_eq!(
        req(Method::GET, "/api/me")
            .token(&token)
            .send(&f)
            .await
            .status,
        StatusCode::OK
    );
    // A cookie with neither Origin nor Sec-Fetch-Site: refused; with Sec-Fetch-Site of the
    // same origin: through.
    let a = req(Method::POST, "/api/auth/logout")
        .token(&token)
        .header("origin", "")
        .send(&f)
        .await;
    check(&a, StatusCode::FORBIDDEN, "cross_origin");
    let a = req(Method::GET, "/api/me")
        .token(&token)
        .header("origin", "")
        .header("sec-fetch-site", "same-origin")
        .send(&f)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    // Reads pass whatever the origin (SameSite=Strict keeps the cookie off cross-site ones).
    let a = req(Method::GET, "/api/me")
        .token(&token)
        .header("origin", "https://evil.example")
        .send(&f)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    // Behind the proxy: Host is the upstream address, X-Forwarded-Host the public one.
    let a = req(Method::POST, "/api/auth/login")
        .json(body)
        .header("origin", "https://public.example")
        .header("x-forwarded-host", "public.example")
        .send(&f)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
}

#[tokio::test]
async fn key_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let meta = std::fs::metadata(f.dir.path().join(token::KEY_FILE)).expect("key file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

/// The token routes, and an API token as a bearer: its scopes, no cookie routes, no origin
/// check, and a cookie beside it ignored.
#[tokio::test]
async fn api_token_routes_and_bearer_use() {
    let f = Fixture::new();
    f.user("ada", Role::User).await;
    f.user("root", Role::Admin).await;
    let ada = login(&f, "ada").await;
    let root = login(&f, "root").await;

    let created = req(Method::POST, "/api/me/tokens")
        .token(&ada)
        .json(json!({"name": "ci", "scopes": ["sessions:read"], "expires_in_days": 7}))
        .send(&f)
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let token = created.json["token"].as_str().expect("token").to_owned();
    let id = created.json["info"]["id"].as_str().expect("id").to_owned();
    assert!(token.starts_with("octo_") && token.contains(&id));
    assert_eq!(created.json["info"]["scopes"], json!(["sessions:read"]));
    assert_eq!(created.json["info"]["last_used_at"], Value::Null);

    let bearer = format!("Bearer {token}");
    // GET /api/me with any token; no Origin needed, even for a POST.
    let me = req(Method::GET, "/api/me")
        .header("authorization", bearer.clone())
        .send(&f)
        .await;
    assert_eq!(me.json["name"], "ada", "{}", me.json);
    // Not for tokens: the account's tokens, password, sign-out.
    for (method, path) in [
        (Method::GET, "/api/me/tokens"),
        (Method::POST, "/api/me/tokens"),
        (Method::POST, "/api/me/password"),
    ] {
        let a = req(method.clone(), path)
            .header("authorization", bearer.clone())
            .header("origin", "https://evil.example")
            .json(json!({"name": "x", "scopes": ["admin"], "current": "a", "new": "b"}))
            .send(&f)
            .await;
        check(&a, StatusCode::FORBIDDEN, "token_not_allowed");
    }
    // The admin routes need the scope (and the role).
    let a = req(Method::GET, "/api/admin/users")
        .header("authorization", bearer.clone())
        .send(&f)
        .await;
    check(&a, StatusCode::FORBIDDEN, "insufficient_scope");
    // A bearer wins over a cookie: root's cookie does not make ada's token an admin.
    let a = req(Method::GET, "/api/admin/users")
        .token(&root)
        .header("authorization", bearer.clone())
        .send(&f)
        .await;
    check(&a, StatusCode::FORBIDDEN, "insufficient_scope");
    // Bad requests.
    for body in [
        json!({"name": "", "scopes": ["sessions:read"]}),
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": ["sessions:read"], "expires_in_days": 0}),
    ] {
        let a = req(Method::POST, "/api/me/tokens")
            .token(&ada)
            .json(body)
            .send(&f)
            .await;
        check(&a, StatusCode::BAD_REQUEST, "bad_request");
    }
    let a = req(Method::POST, "/api/me/tokens")
        .token(&ada)
        .json(json!({"name": "x", "scopes": ["everything"]}))
        .send(&f)
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.json);
    let a = req(Method::POST, "/api/me/tokens")
        .token(&ada)
        .json(json!({"name": "x", "scopes": ["admin"]}))
        .send(&f)
        .await;
    check(&a, StatusCode::FORBIDDEN, "forbidden");

    // Listed by its user and by an admin, never with a secret.
    let mine = req(Method::GET, "/api/me/tokens")
        .token(&ada)
        .send(&f)
        .await;
    assert_eq!(mine.json.as_array().map(Vec::len), Some(1), "{}", mine.json);
    assert!(!mine.json.to_string().contains(&token[20..]));
    let listed = req(Method::GET, "/api/admin/users/ada/tokens")
        .token(&root)
        .send(&f)
        .await;
    assert_eq!(listed.json[0]["id"], id.as_str(), "{}", listed.json);
    let a = req(Method::GET, "/api/admin/users/nobody/tokens")
        .token(&root)
        .send(&f)
        .await;
    check(&a, StatusCode::NOT_FOUND, "not_found");

    // Another user cannot revoke it (not revealed); its user can; then it is 401.
    f.user("bob", Role::User).await;
    let bob = login(&f, "bob").await;
    let a = req(Method::DELETE, &format!("/api/me/tokens/{id}"))
        .token(&bob)
        .send(&f)
        .await;
    check(&a, StatusCode::NOT_FOUND, "not_found");
    let a = req(Method::DELETE, &format!("/api/me/tokens/{id}"))
        .token(&ada)
        .send(&f)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.json);
    let a = req(Method::GET, "/api/me")
        .header("authorization", bearer)
        .send(&f)
        .await;
    check(&a, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[test]
fn what_each_route_needs_from_a_token() {
    use super::extract::{Need, required_scope};
    use crate::identity::Scope;
    let need = |m: Method, p: &str| required_scope(&m, p);
    assert_eq!(
        need(Method::GET, "/api/sessions"),
        Need::Scope(Scope::SessionsRead)
    );
    assert_eq!(
        need(Method::HEAD, "/api/sessions/ab12"),
        Need::Scope(Scope::SessionsRead)
    );
    assert_eq!(
        need(Method::GET, "/api/templates"),
        Need::Scope(Scope::SessionsRead)
    );
    assert_eq!(
        need(Method::POST, "/api/sessions"),
        Need::Scope(Scope::SessionsWrite)
    );
    assert_eq!(
        need(Method::PATCH, "/api/sessions/ab12"),
        Need::Scope(Scope::SessionsWrite)
    );
    assert_eq!(
        need(Method::DELETE, "/api/sessions/ab12"),
        Need::Scope(Scope::SessionsWrite)
    );
    assert_eq!(
        need(Method::POST, "/api/sessions/ab12/stop"),
        Need::Scope(Scope::SessionsWrite)
    );
    assert_eq!(
        need(Method::GET, "/sessions/ab12/files/api/list"),
        Need::Scope(Scope::SessionsConnect)
    );
    assert_eq!(
        need(Method::POST, "/sessions/ab12/opencode/session"),
        Need::Scope(Scope::SessionsConnect)
    );
    assert_eq!(
        need(Method::GET, "/sessions/ab12/terminal"),
        Need::Scope(Scope::SessionsConnect)
    );
    assert_eq!(
        need(Method::GET, "/api/admin/audit"),
        Need::Scope(Scope::Admin)
    );
    assert_eq!(
        need(Method::GET, "/api/admin/sessions"),
        Need::Scope(Scope::Admin)
    );
    assert_eq!(need(Method::GET, "/api/me"), Need::Any);
    // Prefixes match whole segments; everything unlisted is closed to tokens.
    for (m, p) in [
        (Method::GET, "/api/sessionsx"),
        (Method::GET, "/api/adminx"),
        (Method::POST, "/api/me"),
        (Method::GET, "/api/me/tokens"),
        (Method::POST, "/api/me/password"),
        (Method::POST, "/api/auth/logout"),
        (Method::GET, "/api/something-new"),
    ] {
        assert_eq!(need(m, p), Need::Browser, "{p}");
    }
}
