//! octod's model gateway: the sessions' only LLM endpoint (issue 15). An OpenAI-compatible
//! API — `POST /v1/chat/completions` (streamed or not) and `GET /v1/models`; every other route
//! is refused in OpenAI's error shape — served on one Unix socket per session
//! ([`sockets`]), so the socket a request arrives on names the session and its owner: nothing
//! secret is inside a session. octod forwards to the configured provider with the provider's
//! key (a systemd credential, or the config in development) and passes the answer through as
//! it comes, chunk by chunk.
//!
//! Error policy: every refusal is `{"error":{"message","type","code"}}` (what opencode shows in
//! the chat); the provider's own errors are passed through unchanged. Logs name the session,
//! its owner, the model, the status and the time taken, never a key or any prompt text.

pub mod budget;
pub mod sockets;
pub mod usage;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::render::LlmMount;
use crate::session::SessionId;
use crate::store::Store;

/// The largest request body the gateway takes (a long conversation with its tool output).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The provider's API key. Its `Debug` shows no part of it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Where and how the gateway forwards.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The provider's OpenAI-compatible base URL, e.g. `https://llm.example/v1`.
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    /// The models sessions may ask for, the default first.
    pub models: Vec<String>,
    /// How long the provider may take to answer with a response head.
    pub head_timeout: Duration,
    pub max_body_bytes: usize,
    /// Monthly token budgets per role (a user's override in the store wins).
    pub budgets: crate::config::BudgetsFragment,
    /// The other providers; a model of theirs goes to them, every other to `base_url`.
    pub providers: Vec<ProviderRoute>,
    /// The models each role may use.
    pub allow: crate::config::AllowFragment,
}

/// Another provider: its endpoint, key and models.
#[derive(Debug, Clone)]
pub struct ProviderRoute {
    pub id: String,
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    pub models: Vec<String>,
}

impl GatewayConfig {
    /// Where `model` is served, and with which key.
    pub fn upstream(&self, model: &str) -> (&str, Option<&ApiKey>) {
        self.providers
            .iter()
            .find(|p| p.models.iter().any(|m| m == model))
            .map_or((self.base_url.as_str(), self.api_key.as_ref()), |p| {
                (p.base_url.as_str(), p.api_key.as_ref())
            })
    }

    /// The models `role`'s users may use, the default first.
    pub fn models_for(&self, role: crate::identity::Role) -> Vec<String> {
        self.models
            .iter()
            .filter(|m| self.allow.allows(role, m))
            .cloned()
            .collect()
    }
}

type Client = HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The gateway: its configuration, the HTTP client to the provider and the store (who owns a
/// session). Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    config: GatewayConfig,
    mount: LlmMount,
    metrics: usage::Metrics,
    ledger: Mutex<HashMap<String, budget::Ledger>>,
    client: Client,
    store: Store,
}

impl Gateway {
    /// # Errors
    /// When the system's TLS roots cannot be read.
    pub fn new(
        config: GatewayConfig,
        mount: LlmMount,
        store: Store,
    ) -> Result<Self, std::io::Error> {
        let mut http = HttpConnector::new();
        // Streamed tokens go out as they come.
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                mount,
                metrics: usage::Metrics::default(),
                ledger: Mutex::default(),
                client,
                store,
            }),
        })
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// Where the sessions' sockets are, as their units mount them.
    pub fn mount(&self) -> &LlmMount {
        &self.inner.mount
    }

    /// The counters of `/metrics`, by model.
    pub fn metrics(&self) -> &usage::Metrics {
        &self.inner.metrics
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, HashMap<String, budget::Ledger>> {
        self.inner
            .ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The routes of one session's socket: every request on it is that session's.
    pub fn router(&self, session: SessionId) -> Router {
        Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/models", get(models))
            .fallback(unsupported)
            .with_state(SessionGateway {
                gateway: self.clone(),
                session,
            })
    }
}

/// A session's view of the gateway: the state of its socket's routes.
#[derive(Clone)]
struct SessionGateway {
    gateway: Gateway,
    session: SessionId,
}

/// A refusal in OpenAI's error shape.
#[derive(Debug)]
pub struct OpenAiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
}

impl OpenAiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: String) -> Self {
        Self {
            status,
            kind,
            code,
            message,
        }
    }

    fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message.into(),
        )
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "code": self.code,
                "param": serde_json::Value::Null,
            }
        });
        (self.status, axum::Json(body)).into_response()
    }
}

async fn models(State(state): State<SessionGateway>) -> Response {
    let role = match owner_of(&state).await {
        Ok((_, role)) => role,
        Err(error) => return error.into_response(),
    };
    let data: Vec<_> = state
        .gateway
        .config()
        .models_for(role)
        .iter()
        .map(
            |id| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "octo"}),
        )
        .collect();
    axum::Json(serde_json::json!({"object": "list", "data": data})).into_response()
}

/// The session's owner and their role: who a request on this socket is billed to.
async fn owner_of(state: &SessionGateway) -> Result<(String, crate::identity::Role), OpenAiError> {
    let session = &state.session;
    let key = session.clone();
    let unavailable = || {
        OpenAiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "gateway_error",
            "Octo's model gateway cannot serve this request now; try again".into(),
        )
    };
    let owner = match state.gateway.inner.store.run(move |s| s.get(&key)).await {
        Ok(Some(record)) => record.spec.owner,
        Ok(None) => {
            return Err(OpenAiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                "session_gone",
                "this session no longer exists".into(),
            ));
        }
        Err(error) => {
            tracing::error!(%session, "model gateway: reading the session: {error}");
            return Err(unavailable());
        }
    };
    let store = state.gateway.store().clone();
    let who = owner.clone();
    let role = match tokio::task::spawn_blocking(move || store.user(&who)).await {
        Ok(Ok(user)) => user.map_or(crate::identity::Role::User, |u| u.role),
        Ok(Err(error)) => {
            tracing::error!(%session, %owner, "model gateway: reading the owner: {error}");
            return Err(unavailable());
        }
        Err(_) => return Err(unavailable()),
    };
    Ok((owner, role))
}

async fn unsupported(method: Method, uri: axum::http::Uri) -> OpenAiError {
    OpenAiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "unsupported_route",
        format!(
            "{method} {} is not served by Octo's model gateway: it serves POST /v1/chat/completions and GET /v1/models",
            uri.path()
        ),
    )
}

/// What a chat completion request asks for, checked.
#[derive(Debug, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub stream: bool,
    /// The body to forward: the client's, with `stream_options.include_usage` asked for
    /// when streamed (the provider's `usage` is what is recorded).
    pub body: serde_json::Map<String, serde_json::Value>,
}

/// Checks a chat completion body against the allowed models.
///
/// # Errors
/// A malformed body, or a model that is not allowed, in OpenAI's error shape.
pub fn parse_chat(raw: &[u8], models: &[String]) -> Result<ChatRequest, OpenAiError> {
    let mut body: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(raw)
        .map_err(|e| {
            OpenAiError::invalid(
                "invalid_json",
                format!("the request body is not a JSON object: {e}"),
            )
        })?;
    let model = match body.get("model") {
        Some(serde_json::Value::String(model)) if !model.is_empty() => model.clone(),
        _ => {
            return Err(OpenAiError::invalid(
                "missing_model",
                "the request body needs \"model\", a model's name",
            ));
        }
    };
    if !models.contains(&model) {
        return Err(OpenAiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!(
                "the model {model:?} is not available here; available: {}",
                models.join(", ")
            ),
        ));
    }
    if !body
        .get("messages")
        .is_some_and(serde_json::Value::is_array)
    {
        return Err(OpenAiError::invalid(
            "invalid_messages",
            "the request body needs \"messages\", an array",
        ));
    }
    let stream = match body.get("stream") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(stream)) => *stream,
        Some(_) => {
            return Err(OpenAiError::invalid(
                "invalid_stream",
                "\"stream\" must be true or false",
            ));
        }
    };
    if stream {
        let options = body
            .entry("stream_options")
            .or_insert_with(|| serde_json::json!({}));
        match options {
            serde_json::Value::Object(options) => {
                options.insert("include_usage".into(), serde_json::Value::Bool(true));
            }
            _ => {
                return Err(OpenAiError::invalid(
                    "invalid_stream_options",
                    "\"stream_options\" must be an object",
                ));
            }
        }
    }
    Ok(ChatRequest {
        model,
        stream,
        body,
    })
}

async fn chat_completions(State(state): State<SessionGateway>, request: Request) -> Response {
    match forward(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn forward(state: &SessionGateway, request: Request) -> Result<Response, OpenAiError> {
    let started = Instant::now();
    let config = state.gateway.config();
    let session = &state.session;
    let (owner, role) = owner_of(state).await?;
    let limit = config.max_body_bytes;
    let raw = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| {
            OpenAiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                format!(
                    "the request body is larger than {} MiB",
                    limit / (1024 * 1024)
                ),
            )
        })?;
    let chat = parse_chat(&raw, &config.models)?;
    if !config.allow.allows(role, &chat.model) {
        return Err(OpenAiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "model_not_allowed",
            format!(
                "the model {} is not allowed for your account; allowed: {}",
                chat.model,
                config.models_for(role).join(", ")
            ),
        ));
    }
    let (base_url, api_key) = config.upstream(&chat.model);
    // Held until the answer's usage is in the book (or the request failed): concurrent
    // requests see it.
    let reservation = budget::admit(&state.gateway, &owner).await?;
    let body = serde_json::to_vec(&chat.body)
        .map_err(|e| OpenAiError::invalid("invalid_json", format!("the request body: {e}")))?;
    let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
    let mut upstream = hyper::Request::builder()
        .method(Method::POST)
        .uri(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::ACCEPT,
            if chat.stream {
                "text/event-stream"
            } else {
                "application/json"
            },
        );
    if let Some(key) = api_key {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
            .map_err(|_| provider_error("the provider's API key is not a valid header value"))?;
        value.set_sensitive(true);
        upstream = upstream.header(header::AUTHORIZATION, value);
    }
    let upstream = upstream
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| provider_error("the provider's base URL is not a valid URL"))?;
    let answer = match tokio::time::timeout(
        config.head_timeout,
        state.gateway.inner.client.request(upstream),
    )
    .await
    {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => {
            tracing::warn!(%session, %owner, model = %chat.model, "model provider unreachable: {error}");
            return Err(OpenAiError::new(
                StatusCode::BAD_GATEWAY,
                "api_error",
                "provider_unreachable",
                "the model provider cannot be reached; try again later".into(),
            ));
        }
        Err(_) => {
            tracing::warn!(%session, %owner, model = %chat.model, "model provider: no answer in {:?}", config.head_timeout);
            return Err(OpenAiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "api_error",
                "provider_timeout",
                format!(
                    "the model provider did not answer within {} s; try again later",
                    config.head_timeout.as_secs()
                ),
            ));
        }
    };
    let status = answer.status();
    tracing::info!(
        %session,
        %owner,
        model = %chat.model,
        stream = chat.stream,
        status = status.as_u16(),
        head_ms = started.elapsed().as_millis(),
        "model request"
    );
    let (parts, incoming) = answer.into_parts();
    let body = if status.is_success() {
        let on_end = record_usage(
            state.gateway.clone(),
            session.clone(),
            owner,
            chat.model,
            chrono::Utc::now().format("%Y-%m-%d").to_string(),
            reservation,
        );
        Body::new(usage::Tapped::new(
            incoming,
            usage::Scanner::new(chat.stream),
            on_end,
        ))
    } else {
        state.gateway.metrics().record(&chat.model, false, None);
        Body::new(incoming)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
        if let Some(value) = parts.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    Ok(response)
}

/// What happens when an answer has ended: its tokens added to the usage book (once; a
/// stream cut before its usage event counts as a request without tokens) and the counters.
fn record_usage(
    gateway: Gateway,
    session: SessionId,
    owner: String,
    model: String,
    day: String,
    reservation: Option<budget::Reservation>,
) -> usage::OnEnd {
    Box::new(move |tokens| {
        gateway.metrics().record(&model, true, tokens);
        let tokens = tokens.unwrap_or_default();
        if let Some(reservation) = &reservation {
            reservation.observed(tokens.prompt.saturating_add(tokens.completion));
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(%session, "model usage not recorded: no runtime");
            return;
        };
        runtime.spawn(async move {
            let result = gateway
                .store()
                .run(move |store| {
                    store.record_llm_usage(&crate::store::UsageEntry {
                        day: &day,
                        user: &owner,
                        session: session.as_str(),
                        model: &model,
                        prompt_tokens: tokens.prompt,
                        completion_tokens: tokens.completion,
                    })
                })
                .await;
            if let Err(error) = result {
                tracing::warn!("recording model usage: {error}");
            }
            // Released only now that the book holds what the request used.
            drop(reservation);
        });
    })
}

fn provider_error(message: &str) -> OpenAiError {
    tracing::error!("model gateway: {message}");
    OpenAiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        "gateway_misconfigured",
        "Octo's model gateway is misconfigured; tell the administrator".into(),
    )
}

#[cfg(test)]
mod tests;
