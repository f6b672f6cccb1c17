//! The gateway's pure checks; the forwarding is tested over real sockets below.

use super::*;

fn models() -> Vec<String> {
    vec!["big".to_owned(), "small".to_owned()]
}

#[test]
fn a_streamed_request_asks_for_usage() {
    let chat = parse_chat(
        br#"{"model":"big","stream":true,"messages":[],"stream_options":{"x":1}}"#,
        &models(),
    )
    .expect("valid");
    assert!(chat.stream);
    assert_eq!(
        chat.body["stream_options"],
        serde_json::json!({"x": 1, "include_usage": true})
    );
    let plain = parse_chat(br#"{"model":"small","messages":[]}"#, &models()).expect("valid");
    assert!(!plain.stream);
    assert!(plain.body.get("stream_options").is_none());
}

#[test]
fn bad_bodies_are_refused_with_a_code() {
    let check = |raw: &[u8], status: u16, code: &str| {
        let error = parse_chat(raw, &models()).expect_err("refused");
        assert_eq!(
            (error.status.as_u16(), error.code),
            (status, code),
            "{}",
            error.message
        );
    };
    check(b"not json", 400, "invalid_json");
    check(b"[1]", 400, "invalid_json");
    check(br#"{"messages":[]}"#, 400, "missing_model");
    check(
        br#"{"model":"gpt-9","messages":[]}"#,
        404,
        "model_not_found",
    );
    check(br#"{"model":"big"}"#, 400, "invalid_messages");
    check(
        br#"{"model":"big","messages":[],"stream":"yes"}"#,
        400,
        "invalid_stream",
    );
    check(
        br#"{"model":"big","messages":[],"stream":true,"stream_options":1}"#,
        400,
        "invalid_stream_options",
    );
}

#[test]
fn the_key_is_not_in_debug_output() {
    let key = ApiKey::new("sk-very-secret");
    assert!(!format!("{key:?}").contains("very-secret"));
}

/// Over real sockets: a stub provider on TCP, the gateway on a session's Unix socket.
mod forwarding {
    use std::path::PathBuf;
    use std::sync::Mutex;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::session::{DesiredState, Limits, SessionName};
    use crate::store::NewSession;

    /// What the stub provider saw: the `Authorization` header and the body of each request.
    type Seen = Arc<Mutex<Vec<(Option<String>, serde_json::Value)>>>;

    /// A stub provider: answers a streamed request with two SSE chunks and a usage chunk, a
    /// plain one with a JSON completion; `/slow/...` never answers.
    async fn provider() -> (String, Seen) {
        let seen: Seen = Arc::default();
        let record = seen.clone();
        let app = Router::new()
            .route(
                "/v1/chat/completions",
                post(move |headers: axum::http::HeaderMap, body: Bytes| {
                    let record = record.clone();
                    async move {
                        let body: serde_json::Value =
                            serde_json::from_slice(&body).expect("JSON from the gateway");
                        let auth = headers
                            .get(header::AUTHORIZATION)
                            .map(|v| v.to_str().expect("text").to_owned());
                        let stream = body["stream"] == true;
                        record.lock().expect("lock").push((auth, body));
                        if stream {
                            (
                                [(header::CONTENT_TYPE, "text/event-stream")],
                                "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
                                 data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n\
                                 data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n\
                                 data: [DONE]\n\n",
                            )
                                .into_response()
                        } else {
                            axum::Json(serde_json::json!({
                                "choices": [{"message": {"role": "assistant", "content": "Hello"}}],
                                "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
                            }))
                            .into_response()
                        }
                    }
                }),
            )
            .route(
                "/slow/v1/chat/completions",
                post(std::future::pending::<&'static str>),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), seen)
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        socket: PathBuf,
        store: Store,
        gateway: Gateway,
    }

    fn gateway(base_url: String, head_timeout: Duration) -> Fixture {
        gateway_with(
            base_url,
            head_timeout,
            crate::config::BudgetsFragment::default(),
        )
    }

    fn gateway_with(
        base_url: String,
        head_timeout: Duration,
        budgets: crate::config::BudgetsFragment,
    ) -> Fixture {
        gateway_configured(base_url, head_timeout, |config| config.budgets = budgets)
    }

    fn gateway_configured(
        base_url: String,
        head_timeout: Duration,
        tweak: impl FnOnce(&mut GatewayConfig),
    ) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("octod.redb")).expect("store");
        store
            .create_session(NewSession {
                id: "alpha".parse().expect("id"),
                owner: "alice".into(),
                template: "coding-copilot".into(),
                name: SessionName::parse("A").expect("name"),
                image: "localhost/x:latest".into(),
                limits: Limits::default(),
                desired: DesiredState::Running,
                max_per_owner: None,
                admit: None,
            })
            .expect("create");
        let mount = LlmMount {
            sockets_dir: dir.path().join("llm"),
            models: vec!["big".into()],
        };
        let mut config = GatewayConfig {
            base_url,
            api_key: Some(ApiKey::new("sk-the-real-key")),
            models: mount.models.clone(),
            head_timeout,
            max_body_bytes: 4096,
            budgets: crate::config::BudgetsFragment::default(),
            providers: Vec::new(),
            allow: crate::config::AllowFragment::default(),
        };
        tweak(&mut config);
        let gateway = Gateway::new(config, mount, store.clone()).expect("gateway");
        tokio::spawn(sockets::run(gateway.clone()));
        let socket = dir.path().join("llm/alpha/llm.sock");
        Fixture {
            _dir: dir,
            socket,
            store,
            gateway,
        }
    }

    /// One HTTP/1.1 request over the Unix socket; the whole answer as text.
    async fn call(socket: &std::path::Path, method: &str, path: &str, body: &str) -> String {
        let mut stream = loop {
            if let Ok(stream) = tokio::net::UnixStream::connect(socket).await {
                break stream;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: octo\r\nAuthorization: Bearer octo-session\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer
    }

    #[tokio::test]
    async fn requests_reach_the_provider_with_its_key_and_come_back_whole() {
        let (url, seen) = provider().await;
        let fixture = gateway(format!("{url}/v1"), Duration::from_secs(30));
        let streamed = call(
            &fixture.socket,
            "POST",
            "/v1/chat/completions",
            r#"{"model":"big","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .await;
        assert!(streamed.starts_with("HTTP/1.1 200 "), "{streamed}");
        assert!(streamed.contains("text/event-stream"), "{streamed}");
        assert!(
            streamed.contains("\"Hel\"") && streamed.contains("data: [DONE]"),
            "{streamed}"
        );
        let plain = call(
            &fixture.socket,
            "POST",
            "/v1/chat/completions",
            r#"{"model":"big","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .await;
        assert!(plain.contains("\"Hello\""), "{plain}");
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 2);
        for (auth, _) in &seen {
            // The session's placeholder never reaches the provider; the real key does.
            assert_eq!(auth.as_deref(), Some("Bearer sk-the-real-key"));
        }
        assert_eq!(seen[0].1["stream_options"]["include_usage"], true);
        let models = call(&fixture.socket, "GET", "/v1/models", "").await;
        assert!(models.contains(r#""id":"big""#), "{models}");
        // Both answers' usage, on the socket's session and its owner, once each.
        let rows = loop {
            let rows = fixture
                .store
                .llm_usage(&crate::store::UsageFilter::default())
                .expect("usage");
            if rows.first().is_some_and(|r| r.requests == 2) {
                break rows;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(rows.len(), 1, "{rows:?}");
        let row = &rows[0];
        assert_eq!(
            (
                row.user.as_str(),
                row.session.as_str(),
                row.model.as_str(),
                row.prompt_tokens,
                row.completion_tokens
            ),
            ("alice", "alpha", "big", 14, 4)
        );
    }

    #[tokio::test]
    async fn each_model_goes_to_its_provider_and_a_role_gets_only_its_models() {
        let (url_a, seen_a) = provider().await;
        let (url_b, seen_b) = provider().await;
        let fixture = gateway_configured(format!("{url_a}/v1"), Duration::from_secs(30), |c| {
            c.models = vec!["big".into(), "small".into(), "other".into()];
            c.providers = vec![ProviderRoute {
                id: "b".into(),
                base_url: format!("{url_b}/v1"),
                api_key: Some(ApiKey::new("sk-of-b")),
                models: vec!["other".into()],
            }];
            c.allow = crate::config::AllowFragment {
                user: Some(vec!["big".into(), "other".into()]),
                admin: None,
            };
        });
        let ask = |model: &str| {
            format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#)
        };
        let other = call(
            &fixture.socket,
            "POST",
            "/v1/chat/completions",
            &ask("other"),
        )
        .await;
        assert!(other.contains("\"Hello\""), "{other}");
        let big = call(&fixture.socket, "POST", "/v1/chat/completions", &ask("big")).await;
        assert!(big.contains("\"Hello\""), "{big}");
        let small = call(
            &fixture.socket,
            "POST",
            "/v1/chat/completions",
            &ask("small"),
        )
        .await;
        assert!(small.starts_with("HTTP/1.1 403 "), "{small}");
        assert!(
            small.contains(r#""code":"model_not_allowed""#)
                && small.contains("allowed: big, other"),
            "{small}"
        );
        let models = call(&fixture.socket, "GET", "/v1/models", "").await;
        assert!(
            models.contains(r#""id":"big""#)
                && models.contains(r#""id":"other""#)
                && !models.contains(r#""id":"small""#),
            "{models}"
        );
        // Each provider saw only its own model, with its own key.
        let a: Vec<_> = seen_a.lock().expect("lock").clone();
        let b: Vec<_> = seen_b.lock().expect("lock").clone();
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].0.as_deref(), Some("Bearer sk-the-real-key"));
        assert_eq!(a[0].1["model"], "big");
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].0.as_deref(), Some("Bearer sk-of-b"));
        assert_eq!(b[0].1["model"], "other");

        // The owner made an admin: every model.
        fixture
            .store
            .add_user(
                crate::store::UserRecord {
                    name: "alice".into(),
                    role: crate::identity::Role::Admin,
                    password_hash: crate::store::Secret::new(String::new()),
                    disabled: false,
                    created_at: std::time::SystemTime::now(),
                    token_generation: 0,
                    identity_provider: None,
                },
                "test",
            )
            .expect("alice");
        let small = call(
            &fixture.socket,
            "POST",
            "/v1/chat/completions",
            &ask("small"),
        )
        .await;
        assert!(small.contains("\"Hello\""), "{small}");
        let models = call(&fixture.socket, "GET", "/v1/models", "").await;
        assert!(models.contains(r#""id":"small""#), "{models}");
    }

    #[tokio::test]
    async fn refusals_are_in_openai_shape() {
        let (url, seen) = provider().await;
        let fixture = gateway(format!("{url}/v1"), Duration::from_secs(30));
        let check = |answer: String, status: &str, code: &str| {
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status} ")),
                "{answer}"
            );
            assert!(answer.contains(&format!(r#""code":"{code}""#)), "{answer}");
            assert!(answer.contains(r#""type":""#), "{answer}");
        };
        check(
            call(
                &fixture.socket,
                "POST",
                "/v1/chat/completions",
                r#"{"model":"gpt-9","messages":[]}"#,
            )
            .await,
            "404",
            "model_not_found",
        );
        check(
            call(&fixture.socket, "POST", "/v1/chat/completions", "{").await,
            "400",
            "invalid_json",
        );
        check(
            call(&fixture.socket, "POST", "/v1/embeddings", "{}").await,
            "404",
            "unsupported_route",
        );
        let big = format!(
            r#"{{"model":"big","messages":[],"pad":"{}"}}"#,
            "x".repeat(8192)
        );
        check(
            call(&fixture.socket, "POST", "/v1/chat/completions", &big).await,
            "413",
            "request_too_large",
        );
        assert!(
            seen.lock().expect("lock").is_empty(),
            "nothing refused was forwarded"
        );
    }

    #[tokio::test]
    async fn a_provider_that_is_down_or_slow_is_a_clear_error() {
        // A port that was just free: nothing listens there.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr")
        };
        let down = gateway(format!("http://{closed}/v1"), Duration::from_secs(30));
        let answer = call(
            &down.socket,
            "POST",
            "/v1/chat/completions",
            r#"{"model":"big","messages":[]}"#,
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
        assert!(answer.contains("provider_unreachable"), "{answer}");

        let (url, _) = provider().await;
        let slow = gateway(format!("{url}/slow/v1"), Duration::from_millis(300));
        let answer = call(
            &slow.socket,
            "POST",
            "/v1/chat/completions",
            r#"{"model":"big","messages":[]}"#,
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 504 "), "{answer}");
        assert!(answer.contains("provider_timeout"), "{answer}");
    }

    const PLAIN: &str = r#"{"model":"big","messages":[{"role":"user","content":"hi"}]}"#;

    #[tokio::test]
    async fn past_the_budget_requests_get_402_with_the_message() {
        let (url, seen) = provider().await;
        // alice is a user; users' budget: 5 tokens a month. One request uses 9.
        let fixture = gateway_with(
            format!("{url}/v1"),
            Duration::from_secs(30),
            crate::config::BudgetsFragment {
                user: Some(5),
                admin: None,
            },
        );
        let first = call(&fixture.socket, "POST", "/v1/chat/completions", PLAIN).await;
        assert!(first.starts_with("HTTP/1.1 200 "), "{first}");
        // Whether the first one's usage is in the book yet or still reserved: refused.
        let second = call(&fixture.socket, "POST", "/v1/chat/completions", PLAIN).await;
        assert!(second.starts_with("HTTP/1.1 402 "), "{second}");
        assert!(second.contains(r#""code":"budget_exceeded""#), "{second}");
        assert!(
            second.contains("monthly token budget of 5 reached; resets on "),
            "{second}"
        );
        assert_eq!(seen.lock().expect("lock").len(), 1);
        // What the Usage page shows: the role's budget, and the first request's 9 tokens once
        // its usage is in the book.
        let standing = loop {
            let standing = budget::standing(&fixture.gateway, "alice")
                .expect("standing")
                .expect("a budget");
            if standing.used > 0 {
                break standing;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(
            (standing.tokens, standing.used, standing.own),
            (5, 9, false)
        );
        assert!(standing.resets_on.ends_with("-01"), "{standing:?}");
        // An override lifts it: unlimited.
        fixture
            .store
            .set_llm_budget("alice", Some(crate::store::UNLIMITED))
            .expect("override");
        let third = call(&fixture.socket, "POST", "/v1/chat/completions", PLAIN).await;
        assert!(third.starts_with("HTTP/1.1 200 "), "{third}");
        assert_eq!(
            budget::standing(&fixture.gateway, "alice").expect("standing"),
            None
        );
        fixture
            .store
            .set_llm_budget("alice", Some(100))
            .expect("own budget");
        let own = budget::standing(&fixture.gateway, "alice")
            .expect("standing")
            .expect("a budget");
        assert_eq!((own.tokens, own.own), (100, true));
    }

    #[tokio::test]
    async fn concurrent_requests_at_the_edge_overspend_by_one_request_at_most() {
        let (url, seen) = provider().await;
        let fixture = gateway_with(
            format!("{url}/v1"),
            Duration::from_secs(30),
            crate::config::BudgetsFragment {
                user: Some(1),
                admin: None,
            },
        );
        let socket = fixture.socket.clone();
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let socket = socket.clone();
                tokio::spawn(
                    async move { call(&socket, "POST", "/v1/chat/completions", PLAIN).await },
                )
            })
            .collect();
        let mut ok = 0;
        for call in calls {
            let answer = call.await.expect("task");
            if answer.starts_with("HTTP/1.1 200 ") {
                ok += 1;
            } else {
                assert!(answer.contains("budget_exceeded"), "{answer}");
            }
        }
        assert_eq!(ok, 1, "20 concurrent requests against a budget of 1 token");
        assert_eq!(seen.lock().expect("lock").len(), 1);
    }
}
