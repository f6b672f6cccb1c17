//! The HTTP API: routes, query parameters, and the thin handlers that call [`crate::fsops`],
//! [`crate::download`] and [`crate::upload`], the change stream ([`crate::watcher`]) and the
//! gateway's relays ([`crate::relay`]). Only this module (and those) know HTTP.
//!
//! Paths travel in the query string (`?path=…`), never in the URL path, so that proxies and
//! browsers, which normalise `..` and `//` in URL paths, cannot change which file is meant.
//! Query values are decoded to raw bytes, so names that are not UTF-8 can be addressed too.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, RawQuery, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, put};
use percent_encoding::percent_decode;
use serde::Serialize;
use tracing::Instrument;

use crate::confine::RelPath;
use crate::error::{ApiError, Code};
use crate::fsops::{self, ListOptions, Page, SearchOptions};
use crate::relay::{self, Relays};
use crate::upload::UploadOptions;
use crate::{AppState, blocking};

/// Deepest `depth` a listing accepts.
pub const MAX_LIST_DEPTH: usize = 16;
/// Most entries one listing returns (then `truncated` is set).
pub const MAX_LIST_ENTRIES: usize = 200_000;
/// Largest `limit` of a listing's page.
pub const MAX_LIST_PAGE: usize = 5_000;
/// Default and largest `limit` of a search.
pub const SEARCH_LIMIT: (usize, usize) = (200, 10_000);
/// Entries a search looks at before it gives up (`truncated`).
pub const SEARCH_MAX_VISITED: usize = 1_000_000;

/// The router of the file server alone: `/health` without auth, everything under `/api/`
/// with the bearer token.
pub fn router(state: Arc<AppState>) -> Router {
    gateway_router(state, &Relays::default())
}

/// The session gateway's router: the file server's routes plus the configured relays
/// (`/opencode`, `/opencode/*`, `/terminal`, `/preview/<port>/*` and `/tunnel/<port>` with
/// `/api/ports`), all
/// behind the same bearer token.
pub fn gateway_router(state: Arc<AppState>, relays: &Relays) -> Router {
    let mut routes = Router::new()
        .route("/api/list", get(list))
        .route("/api/stat", get(stat))
        .route("/api/download", get(download))
        .route("/api/upload", put(upload))
        .route("/api/mkdir", post(mkdir))
        .route("/api/move", post(move_))
        .route("/api/copy", post(copy))
        .route("/api/delete", delete(remove))
        .route("/api/search", get(search))
        .route("/api/watch", get(watch))
        .route("/api/usage", get(usage))
        .route("/api/terminal/jobs", get(crate::jobs::jobs));
    let wait = relays.wait;
    if let Some(addr) = relays.opencode {
        let ready = relay::OpencodeReady::default();
        let relay =
            any(move |request: Request| relay::opencode(addr, wait, ready.clone(), request));
        routes = routes
            .route("/opencode", relay.clone())
            .route("/opencode/{*rest}", relay);
    }
    if let Some(previews) = relays.previews.clone() {
        let listed = previews.clone();
        let tunnels = previews.clone();
        let relay = any(move |request: Request| crate::preview::relay(previews.clone(), request));
        routes = routes
            .route(
                "/api/ports",
                get(move || crate::preview::ports(listed.clone())),
            )
            .route("/preview/{port}", relay.clone())
            .route("/preview/{port}/", relay.clone())
            .route("/preview/{port}/{*rest}", relay)
            .route(
                "/tunnel/{port}",
                get(move |request: Request| crate::preview::tunnel(tunnels.clone(), request)),
            );
    }
    if let Some(socket) = relays.terminal_socket.clone() {
        routes = routes.route(
            "/terminal",
            get(move |request: Request| relay::terminal(socket.clone(), wait, request)),
        );
    }
    routes
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_token,
        ))
        .route("/health", get(health))
        .fallback(|| async { ApiError::new(Code::NoRoute, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::MethodNotAllowed, "method not allowed on this route")
        })
        .layer(middleware::from_fn(trace))
        .with_state(state)
}

/// A span per request with the matched route; one line per response. Never logs headers
/// (the token) or query strings (paths are the user's business).
async fn trace(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("-", MatchedPath::as_str)
        .to_owned();
    let span = tracing::info_span!("request", method = %request.method(), route = %route);
    async move {
        let start = Instant::now();
        let response = next.run(request).await;
        let status = response.status().as_u16();
        let ms = start.elapsed().as_millis();
        if route == "/health" {
            tracing::debug!(status, ms, "served");
        } else {
            tracing::info!(status, ms, "served");
        }
        response
    }
    .instrument(span)
    .await
}

/// Decoded query parameters (`application/x-www-form-urlencoded`: `+` is a space).
#[derive(Debug, Default)]
pub struct Params(Vec<(String, Vec<u8>)>);

impl Params {
    /// Parses a raw query string. A repeated key is an error: which one would count?
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode =
                |s: &str| percent_decode(s.replace('+', " ").as_bytes()).collect::<Vec<u8>>();
            let key = String::from_utf8_lossy(&decode(k)).into_owned();
            if out.iter().any(|(existing, _)| *existing == key) {
                return Err(ApiError::new(
                    Code::BadRequest,
                    format!("parameter `{key}` given twice"),
                ));
            }
            out.push((key, decode(v)));
        }
        Ok(Params(out))
    }

    fn get(&self, key: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// A required path parameter.
    pub fn path(&self, key: &str) -> Result<RelPath, ApiError> {
        let raw = self.get(key).ok_or_else(|| {
            ApiError::new(Code::BadRequest, format!("parameter `{key}` is required"))
        })?;
        RelPath::parse(raw)
    }

    /// An optional path parameter; the root when absent.
    pub fn path_or_root(&self, key: &str) -> Result<RelPath, ApiError> {
        self.get(key)
            .map_or_else(|| Ok(RelPath::root()), RelPath::parse)
    }

    /// A boolean flag: absent is false; `true`/`1`/`yes`/empty are true; `false`/`0`/`no`
    /// are false; anything else is an error.
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some(b"false" | b"0" | b"no") => Ok(false),
            Some(b"true" | b"1" | b"yes" | b"") => Ok(true),
            Some(_) => Err(ApiError::new(
                Code::BadRequest,
                format!("parameter `{key}` must be true or false"),
            )),
        }
    }

    /// A number in `1..=max`, `default` when absent.
    pub fn number(&self, key: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        let Some(raw) = self.get(key) else {
            return Ok(default);
        };
        std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::new(
                    Code::BadRequest,
                    format!("parameter `{key}` must be a number from 1 to {max}"),
                )
            })
    }

    /// A number from 0 to `max`; absent is 0.
    pub fn number_from_zero(&self, key: &str, max: usize) -> Result<usize, ApiError> {
        let Some(raw) = self.get(key) else {
            return Ok(0);
        };
        std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                ApiError::new(
                    Code::BadRequest,
                    format!("parameter `{key}` must be a number from 0 to {max}"),
                )
            })
    }

    /// A required, non-empty UTF-8 text parameter.
    pub fn text(&self, key: &str) -> Result<String, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .and_then(|v| String::from_utf8(v.to_vec()).ok())
            .ok_or_else(|| {
                ApiError::new(
                    Code::BadRequest,
                    format!("parameter `{key}` is required (UTF-8 text)"),
                )
            })
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

async fn list(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let path = params.path_or_root("path")?;
    let opts = ListOptions {
        hidden: params.flag("hidden")?,
        depth: params.number("depth", 1, MAX_LIST_DEPTH)?,
        max_entries: MAX_LIST_ENTRIES,
        page: match params.get("limit") {
            None if params.get("offset").is_some() => {
                return Err(ApiError::new(
                    Code::BadRequest,
                    "parameter `offset` needs `limit`",
                ));
            }
            None => None,
            Some(_) => Some(Page {
                limit: params.number("limit", MAX_LIST_PAGE, MAX_LIST_PAGE)?,
                offset: params.number_from_zero("offset", MAX_LIST_ENTRIES)?,
            }),
        },
    };
    let listing = blocking(move || fsops::list(&state.root, &path, opts)).await?;
    Ok(Json(listing).into_response())
}

async fn stat(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let path = Params::parse(q.as_deref())?.path("path")?;
    let entry = blocking(move || fsops::stat(&state.root, &path)).await?;
    Ok(Json(entry).into_response())
}

async fn download(
    State(state): State<Arc<AppState>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let path = params.path_or_root("path")?;
    let inline = params.flag("inline")?;
    crate::download::download(&state, path, inline, &method, &headers).await
}

/// One walk at a time per gateway: octod measures one session at a time anyway, and a
/// browser asking again waits for the walk under way.
static WALK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Serialize)]
struct UsageAnswer {
    #[serde(flatten)]
    usage: crate::usage::Usage,
    /// How long the walk took.
    took_ms: u64,
}

/// `GET /api/usage`: the workspace's size, walked now at the lowest priority.
async fn usage(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let _one = WALK.lock().await;
    let root = state
        .root
        .try_clone()
        .map_err(|e| ApiError::internal("duplicating the root", &e))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = std::time::Instant::now();
    std::thread::Builder::new()
        .name("usage".into())
        .spawn(move || {
            crate::usage::lower_priority();
            let _ = tx.send(crate::usage::measure(&root));
        })
        .map_err(|e| ApiError::internal("starting the usage walk", &e))?;
    let usage = rx
        .await
        .map_err(|e| ApiError::internal("the usage walk", &e))?
        .map_err(|e| ApiError::fs(e, "/"))?;
    let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(Json(UsageAnswer { usage, took_ms }).into_response())
}

async fn upload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let path = params.path("path")?;
    let opts = UploadOptions {
        overwrite: params.flag("overwrite")?,
        parents: params.flag("parents")?,
    };
    let (status, entry) = crate::upload::upload(&state, path, opts, &headers, body).await?;
    Ok((status, Json(entry)).into_response())
}

async fn mkdir(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let path = params.path("path")?;
    let parents = params.flag("parents")?;
    let (entry, created) = blocking(move || fsops::mkdir(&state.root, &path, parents)).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(entry)).into_response())
}

async fn move_(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let (from, to) = (params.path("from")?, params.path("to")?);
    let overwrite = params.flag("overwrite")?;
    let entry = blocking(move || fsops::rename(&state.root, &from, &to, overwrite)).await?;
    Ok(Json(entry).into_response())
}

async fn copy(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let (from, to) = (params.path("from")?, params.path("to")?);
    let overwrite = params.flag("overwrite")?;
    let (entry, replaced) =
        blocking(move || fsops::copy(&state.root, &from, &to, overwrite)).await?;
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(entry)).into_response())
}

async fn remove(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let path = params.path("path")?;
    let recursive = params.flag("recursive")?;
    blocking(move || fsops::delete(&state.root, &path, recursive)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn search(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let path = params.path_or_root("path")?;
    let opts = SearchOptions {
        query: params.text("q")?,
        hidden: params.flag("hidden")?,
        limit: params.number("limit", SEARCH_LIMIT.0, SEARCH_LIMIT.1)?,
        max_visited: SEARCH_MAX_VISITED,
    };
    let result = blocking(move || fsops::search(&state.root, &path, &opts)).await?;
    Ok(Json(result).into_response())
}

/// The workspace's changes as server-sent events (`crate::watcher`).
async fn watch(State(state): State<Arc<AppState>>) -> Response {
    let subscription = state.watcher.subscribe(&state.root);
    crate::watcher::sse(subscription, state.stopping.subscribe()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_decode_to_raw_bytes() {
        let p = Params::parse(Some("path=a%2Fb+c%FF&overwrite&depth=3")).expect("parse");
        assert_eq!(p.path("path").expect("path").as_bytes(), b"a/b c\xFF");
        assert!(p.flag("overwrite").expect("flag"));
        assert!(!p.flag("parents").expect("flag"));
        assert_eq!(p.number("depth", 1, 16).expect("n"), 3);
        assert_eq!(p.number("limit", 7, 16).expect("n"), 7);
    }

    #[test]
    fn params_refuse_ambiguity_and_junk() {
        assert_eq!(
            Params::parse(Some("path=a&path=b")).expect_err("dup").code,
            Code::BadRequest
        );
        let p = Params::parse(Some("overwrite=maybe&depth=0&path=a%00b")).expect("parse");
        assert_eq!(
            p.flag("overwrite").expect_err("flag").code,
            Code::BadRequest
        );
        assert_eq!(
            p.number("depth", 1, 16).expect_err("n").code,
            Code::BadRequest
        );
        assert_eq!(p.path("path").expect_err("nul").code, Code::InvalidPath);
        assert_eq!(
            p.path("missing").expect_err("missing").code,
            Code::BadRequest
        );
    }
}
