//! The OpenAPI 3.1 document of the whole HTTP surface, served at `GET /api/openapi.json`: its
//! schemas are derived from the wire types (`octo_wire`, `utoipa::ToSchema`), its operations
//! are declared here, one row of [`OPERATIONS`] per route (the proxy's `ANY` routes by
//! [`proxy_paths`]), with each error status and its codes (`x-error-codes`).
//!
//! The tests below prove that the document lists exactly [`ROUTES`], which is exactly what the
//! router mounts, and that the wire types match its schemas. The document is also committed as
//! `octod/openapi.json`, the source of the web UI's generated types; a test fails when that copy
//! is stale (`OCTO_BLESS=1 cargo test -p octod openapi` rewrites it).
//!
//! [`ROUTES`]: super::ROUTES

use std::sync::LazyLock;

use octo_wire::{
    ApiTokenView, AuditView, BudgetView, CreateApiToken, CreateInvite, CreateSession,
    CreateSnapshot, CreateUser, CreatedApiToken, ErrorBody, ForkSession, Health, InviteView,
    KeepAlive, ListeningPort, LoginRequest, ModelList, ModelView, PasswordChange, RegisterRequest,
    ResetPassword, Role, Scope, SessionDisk, SessionIdle, SessionLimits, SessionPorts, SessionUrls,
    SessionView, SetBudget, SetRole, SignInOptions, SignInProvider, SignedOut, SnapshotJobView,
    SnapshotList, SnapshotView, TemplateView, UpdateSession, UsageReport, UsageRowView, UserView,
};
use utoipa::ToSchema;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::Tag;
use utoipa::openapi::{
    ArrayBuilder, Components, ComponentsBuilder, Content, InfoBuilder, ObjectBuilder, OpenApi,
    OpenApiBuilder, Paths, Ref, RefOr, Required, Response, ResponseBuilder, Schema, Server, Type,
};

/// The document as served, pretty-printed JSON.
pub static OPENAPI: LazyLock<String> = LazyLock::new(|| {
    // It has string keys and JSON values only, so this cannot fail; the tests read it.
    let mut json = document().to_pretty_json().unwrap_or_else(|e| {
        tracing::error!("serializing the OpenAPI document: {e}");
        String::from("{}")
    });
    json.push('\n');
    json
});

/// The document: info, security, tags, paths and components.
pub fn document() -> OpenApi {
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Octo")
                .version(crate::VERSION)
                .description(Some(DESCRIPTION))
                .build(),
        )
        .servers(Some([Server::new("/")]))
        .security(Some([
            SecurityRequirement::new("cookie", Vec::<String>::new()),
            SecurityRequirement::new("bearer", Vec::<String>::new()),
        ]))
        .tags(Some(TAGS.iter().map(|name| Tag::new(*name))))
        .paths(paths())
        .components(Some(components()))
        .build()
}

const DESCRIPTION: &str = "The HTTP API of octod. Errors are always `{ \"error\": { \"code\", \"message\" } }` (schema `Error`); each operation lists its codes in `x-error-codes` per status. Every unsafe method (POST, DELETE, ...) with the cookie must be same-origin (`Origin`/`Sec-Fetch-Site`), else 403 `cross_origin`; a bearer token's requests are exempt. A personal API token reaches only what its scopes allow (403 `insufficient_scope`, or `token_not_allowed` where only a person signed in may act). Times are milliseconds since the Unix epoch. Derived from the wire types (crate `octo-wire`) and the operation table of octod's `openapi.rs`, whose tests check it against the router.";

const TAGS: [&str; 7] = [
    "auth",
    "me",
    "admin",
    "sessions",
    "templates",
    "proxy",
    "operations",
];

/// One operation: a route of the API with its answers.
struct Op {
    method: HttpMethod,
    path: &'static str,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: Option<&'static str>,
    /// No sign-in needed (`security: []`).
    public: bool,
    params: &'static [Param],
    /// The JSON request body's schema.
    body: Option<fn() -> RefOr<Schema>>,
    answers: &'static [Answer],
}

impl Op {
    const fn new(
        method: HttpMethod,
        path: &'static str,
        id: &'static str,
        tag: &'static str,
        summary: &'static str,
    ) -> Self {
        Op {
            method,
            path,
            id,
            tag,
            summary,
            description: None,
            public: false,
            params: &[],
            body: None,
            answers: &[],
        }
    }
    const fn get(
        path: &'static str,
        id: &'static str,
        tag: &'static str,
        summary: &'static str,
    ) -> Self {
        Self::new(HttpMethod::Get, path, id, tag, summary)
    }
    const fn post(
        path: &'static str,
        id: &'static str,
        tag: &'static str,
        summary: &'static str,
    ) -> Self {
        Self::new(HttpMethod::Post, path, id, tag, summary)
    }
    const fn patch(
        path: &'static str,
        id: &'static str,
        tag: &'static str,
        summary: &'static str,
    ) -> Self {
        Self::new(HttpMethod::Patch, path, id, tag, summary)
    }
    const fn delete(
        path: &'static str,
        id: &'static str,
        tag: &'static str,
        summary: &'static str,
    ) -> Self {
        Self::new(HttpMethod::Delete, path, id, tag, summary)
    }
    const fn describe(self, description: &'static str) -> Self {
        Op {
            description: Some(description),
            ..self
        }
    }
    const fn public(self) -> Self {
        Op {
            public: true,
            ..self
        }
    }
    const fn params(self, params: &'static [Param]) -> Self {
        Op { params, ..self }
    }
    const fn body(self, body: fn() -> RefOr<Schema>) -> Self {
        Op {
            body: Some(body),
            ..self
        }
    }
    const fn answers(self, answers: &'static [Answer]) -> Self {
        Op { answers, ..self }
    }
}

/// A path or query parameter.
struct Param {
    name: &'static str,
    query: bool,
    description: &'static str,
    /// `integer` within these bounds; else `string`.
    range: Option<(u32, u32)>,
}

const SESSION_ID: Param = Param {
    name: "id",
    query: false,
    description: "Session id.",
    range: None,
};
const SNAPSHOT_ID: Param = Param {
    name: "snapshot",
    query: false,
    description: "Snapshot id.",
    range: None,
};
const USER_NAME: Param = Param {
    name: "name",
    query: false,
    description: "User name.",
    range: None,
};
const TOKEN_ID: Param = Param {
    name: "id",
    query: false,
    description: "The API token's id.",
    range: None,
};
const INVITE_CODE: Param = Param {
    name: "code",
    query: false,
    description: "The invite code.",
    range: None,
};
const OIDC_PROVIDER: Param = Param {
    name: "id",
    query: false,
    description: "The provider's id (`[[auth.oidc]]` `id`).",
    range: None,
};
const OIDC_NEXT: Param = Param {
    name: "next",
    query: true,
    description: "A path of this site to go to once signed in (default `/`).",
    range: None,
};
const OIDC_INVITE: Param = Param {
    name: "invite",
    query: true,
    description: "An invite code for a first sign-in (required where the provider's `require_invite` is set; its role is given).",
    range: None,
};
const AUDIT_LIMIT: Param = Param {
    name: "limit",
    query: true,
    description: "How many entries (default 100).",
    range: Some((1, 1000)),
};
const VIEW_PATH: Param = Param {
    name: "path",
    query: true,
    description: "The workspace file to view, relative to the workspace.",
    range: None,
};
const PORT: Param = Param {
    name: "port",
    query: false,
    description: "A port listening in the session.",
    range: Some((1024, 65535)),
};
const SHARE_LINK_ID: Param = Param {
    name: "link",
    query: false,
    description: "A share link's id.",
    range: None,
};
const PREVIEW_JSON: Param = Param {
    name: "json",
    query: true,
    description: "`true`: answer 200 with the URL as JSON instead of 303 to it.",
    range: None,
};
const PREVIEW_PATH: Param = Param {
    name: "path",
    query: true,
    description: "The path of the preview to open (default `/`), with its query.",
    range: None,
};
const PREVIEW_EMBED: Param = Param {
    name: "embed",
    query: true,
    description: "`true` for a frame of Octo's UI (the preview pane): the content host's cookie is then partitioned (`SameSite=None; Partitioned`), for that frame alone.",
    range: None,
};
const USAGE_DAYS: Param = Param {
    name: "since_days",
    query: true,
    description: "The last N days, today included (default 30).",
    range: Some((1, 366)),
};
const USAGE_USER: Param = Param {
    name: "user",
    query: true,
    description: "Only this user's usage (admins; a user sees only their own).",
    range: None,
};
const REST: Param = Param {
    name: "rest",
    query: false,
    description: "The rest of the path, passed on to the service; it may contain `/` (the router matches `{*rest}`).",
    range: None,
};

/// A success answer's body.
#[derive(Clone, Copy)]
enum Body {
    Empty,
    Json(fn() -> RefOr<Schema>),
    /// Any JSON object (the document itself).
    Object,
    Text,
}

/// One answer of an operation.
enum Answer {
    Ok(&'static str, &'static str, Body),
    /// A success that sets the session cookie; the header's description.
    Cookie(&'static str, &'static str, Body, &'static str),
    Fail(&'static Failure),
}

/// An error answer: the one error shape, with the codes it may carry.
struct Failure {
    status: &'static str,
    description: &'static str,
    codes: &'static [&'static str],
    /// Sent with `Retry-After`.
    retry_after: bool,
}

const fn fail(
    status: &'static str,
    description: &'static str,
    codes: &'static [&'static str],
) -> Failure {
    Failure {
        status,
        description,
        codes,
        retry_after: false,
    }
}

const INTERNAL: Failure = fail(
    "500",
    "Internal error (details are in the server log).",
    &["internal"],
);
const UNAUTHORIZED: Failure = fail(
    "401",
    "Not signed in, or the token is invalid, expired or revoked.",
    &["unauthorized"],
);
const TOO_LARGE: Failure = fail("413", "The body is too large.", &["bad_request"]);
const NOT_JSON: Failure = fail(
    "415",
    "The body is not `application/json`.",
    &["bad_request"],
);
const BAD_SHAPE: Failure = fail(
    "422",
    "The JSON does not match the expected shape (unknown or missing fields).",
    &["bad_request"],
);
const BAD_REQUEST: Failure = fail("400", "Invalid request.", &["bad_request"]);
const BAD_PASSWORD: Failure = fail(
    "400",
    "Invalid request.",
    &["bad_request", "invalid_password"],
);
const CROSS_ORIGIN: Failure = fail("403", "Refused.", &["cross_origin"]);
const DISABLED: Failure = fail("403", "Refused.", &["account_disabled"]);
const DISABLED_OR_CROSS_ORIGIN: Failure =
    fail("403", "Refused.", &["account_disabled", "cross_origin"]);
const NOT_ADMIN: Failure = fail("403", "Refused.", &["forbidden", "account_disabled"]);
const NOT_ADMIN_OR_CROSS_ORIGIN: Failure = fail(
    "403",
    "Refused.",
    &["forbidden", "account_disabled", "cross_origin"],
);
const NO_USER: Failure = fail("404", "No such user.", &["not_found"]);
const NO_TOKEN: Failure = fail("404", "No such API token (of this user).", &["not_found"]);
const BROWSER_ONLY: Failure = fail(
    "403",
    "Refused.",
    &["account_disabled", "token_not_allowed"],
);
const LAST_ADMIN: Failure = fail("409", "This would leave no enabled admin.", &["last_admin"]);
const USERNAME_TAKEN: Failure = fail("409", "The user name is taken.", &["username_taken"]);
const NO_SESSION: Failure = fail(
    "404",
    "No such session, or another user's (not revealed).",
    &["not_found"],
);
const SESSION_FAILED: Failure = fail(
    "500",
    "The session did not start, or an internal error.",
    &["session_failed", "internal"],
);
const DELETING: Failure = fail(
    "409",
    "The session is being deleted.",
    &["session_deleting"],
);
/// The proxy's 409: a stop in progress, or a session its user stopped (access wakes only
/// idle sessions).
const PROXY_CONFLICT: Failure = fail(
    "409",
    "The session is stopping (`session_stopping`: a stop was asked for and is not undone by access), or was stopped by its user (`session_stopped`). Resume it to use it; an idle session is woken by access instead, unless its user has the most sessions running already (`running_limit`).",
    &["session_stopping", "session_stopped", "running_limit"],
);
const WAKING: Failure = Failure {
    retry_after: true,
    ..fail(
        "503",
        "The session is being woken (its socket started it) and has not answered yet; retry. Or an idle session may not wake: the host is full (`host_full`), short of memory (`host_memory_low`) or of disk space for octod's state (`host_disk_low`).",
        &[
            "session_waking",
            "host_full",
            "host_memory_low",
            "host_disk_low",
        ],
    )
};
/// Admission control: a full host, or too little memory for the session's limit.
const HOST_FULL: Failure = Failure {
    retry_after: true,
    ..fail(
        "503",
        "The host is full (`host_full`: admission.max_running sessions run), short of memory for this session (`host_memory_low`), short of disk space for octod's own state (`host_disk_low`: below `admission.state_free_floor`), or has no session image yet (`image_missing`). The message says which and what to do.",
        &[
            "host_full",
            "host_memory_low",
            "host_disk_low",
            "image_missing",
        ],
    )
};
const HEAD_TIMEOUT: Failure = fail(
    "504",
    "The running session sent no response head in time.",
    &["upstream_timeout"],
);

const RATE_LIMITED: Failure = Failure {
    retry_after: true,
    ..fail("429", "Too many attempts.", &["rate_limited"])
};

/// A `$ref` to a wire type's schema.
fn json<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

/// An array of a wire type.
fn list<T: ToSchema>() -> RefOr<Schema> {
    ArrayBuilder::new().items(json::<T>()).into()
}

/// Every operation but the proxy's `ANY` routes.
const OPERATIONS: &[Op] = &[
    Op::get("/api/health", "health", "operations", "Liveness and version.")
        .public()
        .answers(&[
            Answer::Ok("200", "octod is up.", Body::Json(json::<Health>)),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/openapi.json", "openapi", "operations", "This document.")
        .public()
        .answers(&[
            Answer::Ok("200", "The OpenAPI 3.1 document of the API.", Body::Object),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/metrics", "metrics", "operations", "Prometheus metrics.")
        .describe("Prometheus text format 0.0.4: sessions by state, create/resume latency histograms (`octo_session_create_seconds`, `octo_session_resume_seconds`), proxied requests by service and status, open WebSockets, failed and rate-limited sign-ins, uptime, build info.")
        .public()
        .answers(&[
            Answer::Ok("200", "Metrics.", Body::Text),
        ]),
    Op::post("/api/auth/register", "register", "auth", "Create an account with an invite code; signs in.")
        .public()
        .body(json::<RegisterRequest>)
        .answers(&[
            Answer::Cookie("201", "The new user; the session cookie is set.", Body::Json(json::<UserView>), "`octo_session=<JWT>; Path=/; HttpOnly; SameSite=Strict; Max-Age=<token ttl>` (plus `Secure` behind TLS)"),
            Answer::Fail(&fail("400", "Invalid request.", &["bad_request", "invalid_invite", "invalid_username", "invalid_password"])),
            Answer::Fail(&CROSS_ORIGIN),
            Answer::Fail(&USERNAME_TAKEN),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/auth/login", "login", "auth", "Sign in.")
        .public()
        .body(json::<LoginRequest>)
        .answers(&[
            Answer::Cookie("200", "The user; the session cookie is set.", Body::Json(json::<UserView>), "`octo_session=<JWT>; Path=/; HttpOnly; SameSite=Strict; Max-Age=<token ttl>` (plus `Secure` behind TLS)"),
            Answer::Fail(&BAD_REQUEST),
            Answer::Fail(&fail("401", "Wrong user name or password.", &["invalid_credentials"])),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&RATE_LIMITED),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/auth/logout", "logout", "auth", "Sign out: revokes the token (if any) and clears the cookie.")
        .public()
        .answers(&[
            Answer::Cookie("200", "Signed out of a session that began at an OpenID Connect provider with an end-session endpoint: the browser goes to `end_session_url` to sign out there too.", Body::Json(json::<SignedOut>), "Clears `octo_session`."),
            Answer::Cookie("204", "Signed out; the cookie is cleared.", Body::Empty, "Clears `octo_session`."),
            Answer::Fail(&CROSS_ORIGIN),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/auth/providers", "signInOptions", "auth", "How one may sign in: with a password, and with which OpenID Connect providers.")
        .public()
        .answers(&[
            Answer::Ok("200", "The options.", Body::Json(json::<SignInOptions>)),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/auth/oidc/{id}/start", "oidcStart", "auth", "A browser's sign-in with an OpenID Connect provider: redirects to the provider.")
        .describe("A navigation, not an API call. Sets the `octo_oidc_state` cookie (`Path=/api/auth/oidc/; HttpOnly; SameSite=Lax`, 10 minutes) and answers 303 to the provider's authorization endpoint (code flow with PKCE, state and nonce). A provider that is unknown or unreachable sends the browser to `/login?oidc_error=<code>&provider=<id>` instead.")
        .public()
        .params(&[OIDC_PROVIDER, OIDC_NEXT, OIDC_INVITE])
        .answers(&[
            Answer::Ok("303", "To the provider, or to the sign-in page with `oidc_error`.", Body::Empty),
        ]),
    Op::get("/api/auth/oidc/{id}/callback", "oidcCallback", "auth", "Where the provider sends the browser back: signs in and redirects.")
        .describe("Checks the `state` against the browser's `octo_oidc_state` cookie (single use), exchanges the code, verifies the ID token (signature, issuer, audience, expiry, nonce), finds or creates the account linked to the provider's `sub`, sets the session cookie and answers 303 to the `next` path of the start. A refusal answers 303 to `/login?oidc_error=<code>&provider=<id>`, the code one of `unknown_provider`, `provider_unavailable`, `state_mismatch`, `expired`, `refused`, `code_refused`, `invalid_id_token`, `no_username`, `not_allowed`, `invite_required`, `invalid_invite`, `account_disabled`, `internal`.")
        .public()
        .params(&[OIDC_PROVIDER])
        .answers(&[
            Answer::Ok("303", "Signed in (the session cookie is set) or refused: see the description.", Body::Empty),
        ]),
    Op::get("/api/me", "me", "me", "The signed-in user.")
        .answers(&[
            Answer::Ok("200", "The user.", Body::Json(json::<UserView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/me/password", "changePassword", "me", "Change one's own password; other tokens are revoked.")
        .body(json::<PasswordChange>)
        .answers(&[
            Answer::Cookie("204", "Changed; a new session cookie is set.", Body::Empty, "`octo_session=<JWT>; Path=/; HttpOnly; SameSite=Strict; Max-Age=<token ttl>` (plus `Secure` behind TLS)"),
            Answer::Fail(&BAD_PASSWORD),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&fail("403", "Refused.", &["account_disabled", "wrong_password", "cross_origin"])),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&RATE_LIMITED),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/me/tokens", "listMyTokens", "me", "The signed-in user's personal API tokens, newest first (never their secrets).")
        .answers(&[
            Answer::Ok("200", "Tokens.", Body::Json(list::<ApiTokenView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&BROWSER_ONLY),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/me/tokens", "createMyToken", "me", "Create a personal API token; the answer is the only time its secret is shown.")
        .body(json::<CreateApiToken>)
        .answers(&[
            Answer::Ok("201", "The token and its description.", Body::Json(json::<CreatedApiToken>)),
            Answer::Fail(&BAD_REQUEST),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&fail("403", "Refused (`forbidden`: the admin scope without the admin role).", &["forbidden", "account_disabled", "cross_origin", "token_not_allowed"])),
            Answer::Fail(&fail("409", "The user holds the most tokens allowed.", &["too_many_tokens"])),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&INTERNAL),
        ]),
    Op::delete("/api/me/tokens/{id}", "revokeMyToken", "me", "Revoke one of the signed-in user's API tokens: it fails from the next request on, and streams opened with it close.")
        .params(&[TOKEN_ID])
        .answers(&[
            Answer::Ok("204", "Revoked.", Body::Empty),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&fail("403", "Refused.", &["account_disabled", "cross_origin", "token_not_allowed"])),
            Answer::Fail(&NO_TOKEN),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/admin/users/{name}/tokens", "listUserTokens", "admin", "A user's API tokens (never their secrets).")
        .params(&[USER_NAME])
        .answers(&[
            Answer::Ok("200", "Tokens.", Body::Json(list::<ApiTokenView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN),
            Answer::Fail(&NO_USER),
            Answer::Fail(&INTERNAL),
        ]),
    Op::delete("/api/admin/users/{name}/tokens/{id}", "revokeUserToken", "admin", "Revoke a user's API token.")
        .params(&[USER_NAME, TOKEN_ID])
        .answers(&[
            Answer::Ok("204", "Revoked.", Body::Empty),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_TOKEN),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/admin/users", "listUsers", "admin", "All users.")
        .answers(&[
            Answer::Ok("200", "Users.", Body::Json(list::<UserView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/admin/users", "createUser", "admin", "Create a user.")
        .body(json::<CreateUser>)
        .answers(&[
            Answer::Ok("201", "The new user.", Body::Json(json::<UserView>)),
            Answer::Fail(&fail("400", "Invalid request.", &["bad_request", "invalid_username", "invalid_password"])),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN_OR_CROSS_ORIGIN),
            Answer::Fail(&USERNAME_TAKEN),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/admin/users/{name}/disable", "disableUser", "admin", "Disable a user (their tokens stop working).")
        .params(&[USER_NAME])
        .answers(&[
            Answer::Ok("200", "The user.", Body::Json(json::<UserView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_USER),
            Answer::Fail(&LAST_ADMIN),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/admin/users/{name}/enable", "enableUser", "admin", "Enable a user.")
        .params(&[USER_NAME])
        .answers(&[
            Answer::Ok("200", "The user.", Body::Json(json::<UserView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_USER),
            Answer::Fail(&LAST_ADMIN),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/admin/users/{name}/budget", "setBudget", "admin", "Set a user's monthly token budget.")
        .describe("`{\"monthly_tokens\":N}` for a budget of the user's own, `{\"unlimited\":true}` for none, `{}` for their role's (`[llm.budgets]`). Audited as `user.budget`. `octoctl user set-budget` does the same on the admin socket.")
        .params(&[USER_NAME])
        .body(json::<SetBudget>)
        .answers(&[
            Answer::Ok("204", "Set.", Body::Empty),
            Answer::Fail(&BAD_REQUEST),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_USER),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/admin/users/{name}/role", "setRole", "admin", "Set a user's role.")
        .params(&[USER_NAME])
        .body(json::<SetRole>)
        .answers(&[
            Answer::Ok("200", "The user.", Body::Json(json::<UserView>)),
            Answer::Fail(&BAD_REQUEST),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_USER),
            Answer::Fail(&LAST_ADMIN),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/admin/users/{name}/password", "resetPassword", "admin", "Set a user's password; their tokens are revoked.")
        .params(&[USER_NAME])
        .body(json::<ResetPassword>)
        .answers(&[
            Answer::Ok("204", "Done.", Body::Empty),
            Answer::Fail(&BAD_PASSWORD),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_USER),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/admin/invite-codes", "listInvites", "admin", "All invite codes.")
        .answers(&[
            Answer::Ok("200", "Invite codes.", Body::Json(list::<InviteView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/admin/invite-codes", "createInvite", "admin", "Create an invite code.")
        .body(json::<CreateInvite>)
        .answers(&[
            Answer::Ok("201", "The new invite code.", Body::Json(json::<InviteView>)),
            Answer::Fail(&BAD_REQUEST),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN_OR_CROSS_ORIGIN),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&INTERNAL),
        ]),
    Op::delete("/api/admin/invite-codes/{code}", "deleteInvite", "admin", "Revoke an invite code.")
        .params(&[INVITE_CODE])
        .answers(&[
            Answer::Ok("204", "Revoked.", Body::Empty),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN_OR_CROSS_ORIGIN),
            Answer::Fail(&fail("404", "No such invite code.", &["not_found"])),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/admin/audit", "audit", "admin", "The audit log, newest first.")
        .params(&[AUDIT_LIMIT])
        .answers(&[
            Answer::Ok("200", "Entries.", Body::Json(list::<AuditView>)),
            Answer::Fail(&BAD_REQUEST),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/admin/sessions", "listAllSessions", "admin", "Every user's sessions.")
        .answers(&[
            Answer::Ok("200", "Sessions.", Body::Json(list::<SessionView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/sessions", "listSessions", "sessions", "The user's sessions.")
        .answers(&[
            Answer::Ok("200", "Sessions.", Body::Json(list::<SessionView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/sessions", "createSession", "sessions", "Create and start a session.")
        .body(json::<CreateSession>)
        .answers(&[
            Answer::Ok("201", "Created and running.", Body::Json(json::<SessionView>)),
            Answer::Ok("202", "The operation goes on in the background (it did not finish within 10 s); poll the session.", Body::Json(json::<SessionView>)),
            Answer::Fail(&fail("400", "Invalid request.", &["bad_request", "unknown_template", "invalid_id"])),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&fail("409", "The user has the most sessions allowed (`session_limit`: sessions.max_per_user), or the most running (`running_limit`: admission.max_running_per_user).", &["session_limit", "running_limit"])),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&SESSION_FAILED),
            Answer::Fail(&HOST_FULL),
        ]),
    Op::get("/api/sessions/{id}", "getSession", "sessions", "One session.")
        .params(&[SESSION_ID])
        .answers(&[
            Answer::Ok("200", "The session.", Body::Json(json::<SessionView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED),
            Answer::Fail(&NO_SESSION),
            Answer::Fail(&INTERNAL),
        ]),
    Op::patch("/api/sessions/{id}", "updateSession", "sessions", "Rename a session, or set its description.")
        .describe("Owner or admin, like every route on a session: another user's session is 404 whatever the body. Fields left out (or `null`) are kept; text is trimmed. A new name is audited as `session.rename`, a new description as `session.describe`.")
        .params(&[SESSION_ID])
        .body(json::<UpdateSession>)
        .answers(&[
            Answer::Ok("200", "The session as it is now.", Body::Json(json::<SessionView>)),
            Answer::Fail(&fail("400", "Invalid name (1–80 characters after trimming, no control characters) or description (at most 280 characters, no control characters).", &["invalid_name", "invalid_description", "bad_request"])),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_SESSION),
            Answer::Fail(&DELETING),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&INTERNAL),
        ]),
    Op::delete("/api/sessions/{id}", "deleteSession", "sessions", "Delete a session and its workspace.")
        .params(&[SESSION_ID])
        .answers(&[
            Answer::Ok("202", "The operation goes on in the background (it did not finish within 10 s); poll the session.", Body::Json(json::<SessionView>)),
            Answer::Ok("204", "Deleted.", Body::Empty),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_SESSION),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/sessions/{id}/keep-alive", "keepSessionAlive", "sessions", "Keep a session running without activity for a while.")
        .describe("The idle stop leaves the session running until `minutes` from now (and an idle time after its last activity, as always); `0` ends a keep-alive. At most `sessions.keep_alive_max_hours` (24 by default; 0 turns keep-alive off). Owner or admin; audited as `session.keep_alive`. The session's `idle` says when it will stop and what keeps it running.")
        .params(&[SESSION_ID])
        .body(json::<KeepAlive>)
        .answers(&[
            Answer::Ok("200", "The session as it is now.", Body::Json(json::<SessionView>)),
            Answer::Fail(&fail("400", "Longer than the administrator allows (`keep_alive_too_long`).", &["keep_alive_too_long", "bad_request"])),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_SESSION),
            Answer::Fail(&DELETING),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/sessions/{id}/stop", "stopSession", "sessions", "Stop a session, keeping its workspace.")
        .params(&[SESSION_ID])
        .answers(&[
            Answer::Ok("200", "Stopped.", Body::Json(json::<SessionView>)),
            Answer::Ok("202", "The operation goes on in the background (it did not finish within 10 s); poll the session.", Body::Json(json::<SessionView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_SESSION),
            Answer::Fail(&DELETING),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/sessions/{id}/resume", "resumeSession", "sessions", "Start a stopped or failed session.")
        .params(&[SESSION_ID])
        .answers(&[
            Answer::Ok("200", "Running.", Body::Json(json::<SessionView>)),
            Answer::Ok("202", "The operation goes on in the background (it did not finish within 10 s); poll the session.", Body::Json(json::<SessionView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_SESSION),
            Answer::Fail(&fail("409", "The session is being deleted (`session_deleting`), or its user has the most sessions running (`running_limit`: admission.max_running_per_user).", &["session_deleting", "running_limit"])),
            Answer::Fail(&SESSION_FAILED),
            Answer::Fail(&HOST_FULL),
        ]),
    Op::get("/api/sessions/{id}/view", "viewFile", "sessions", "A browser's view of a workspace file: redirects to the content origin.")
        .describe("A navigation, not an API call (signed in with the cookie; API tokens are refused). With a content origin configured (`server.content_site`), answers 303 to `https://files-<id>.<content site>/__octo/ticket?t=<ticket>`: the ticket (single use, 60 s) is traded there for that host's own cookie (`__Host-octo_content`), then the file is shown there, where its scripts run with no credential of Octo's. Without one, answers 303 to the file's download (an attachment) on this origin.")
        .params(&[SESSION_ID, VIEW_PATH])
        .answers(&[
            Answer::Ok("303", "To the content origin (or the download).", Body::Empty),
            Answer::Fail(&BAD_REQUEST),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&BROWSER_ONLY),
            Answer::Fail(&NO_SESSION),
            Answer::Fail(&fail("409", "The session is stopped or stopping.", &["session_stopped", "session_stopping"])),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/sessions/{id}/ports", "listPorts", "sessions", "The TCP ports listening in a running session, with their previews.")
        .describe("Read by the session's gateway from inside the container (`/proc/net/tcp`, `tcp6`: listening on a loopback or the wildcard address, 1024 and up, without the session's own services). A session that is not running has none (`running: false`); asking neither wakes it nor counts as its activity. With a content site configured, each port has its preview's origin (`https://p<port>-<id>.<content site>/`) and the navigation that opens it (`open`).")
        .params(&[SESSION_ID])
        .answers(&[
            Answer::Ok("200", "The ports.", Body::Json(json::<SessionPorts>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED),
            Answer::Fail(&NO_SESSION),
            Answer::Fail(&fail("409", "The session is stopped or stopping.", &["session_stopped", "session_stopping"])),
            Answer::Fail(&fail("502", "The session did not list its ports.", &["upstream_failed"])),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/sessions/{id}/ports/{port}/open", "openPreview", "sessions", "A browser's way into the preview of a port: redirects to its host on the content origin.")
        .describe("A navigation, not an API call (signed in with the cookie; API tokens are refused). Answers 303 to `https://p<port>-<id>.<content site>/__octo/ticket?t=<ticket>`: the ticket (single use, 60 s) is traded there for that host's own cookie (`__Host-octo_content`), then the browser goes on to `path`. There every request is relayed to the app on that port in the session (HTTP, server-sent events, WebSocket upgrades), checked again each time (the owner or an admin, still signed in). Without a content site: 409 `previews_off`.")
        .params(&[SESSION_ID, PORT, PREVIEW_PATH, PREVIEW_EMBED, PREVIEW_JSON])
        .answers(&[
            Answer::Ok("303", "To the preview's host.", Body::Empty),
            Answer::Ok("200", "With `json=true`: the URL the browser goes to (for a frame of the UI, which must start on the content origin).", Body::Json(json::<octo_wire::PreviewTicket>)),
            Answer::Fail(&fail("400", "Not a port previews reach (1024–65535), or a path that is not one of the preview's.", &["bad_request"])),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&BROWSER_ONLY),
            Answer::Fail(&NO_SESSION),
            Answer::Fail(&fail("409", "The session is stopped or stopping, or no content site is configured.", &["session_stopped", "session_stopping", "previews_off"])),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/sessions/{id}/ports/{port}/share", "sharePreview", "sessions", "Share the preview of a port with every signed-in user, or stop.")
        .describe("With `users: true`, every signed-in user of this Octo may open the preview (through `…/open`, as the owner does); the app then sees them as the owner's browser would. `false` ends that at the next request (share links stay). The share outlives the app: it holds for whatever listens on the port. Owner or admin; audited as `preview.share` / `preview.unshare`.")
        .params(&[SESSION_ID, PORT])
        .body(json::<octo_wire::SetPortShare>)
        .answers(&[
            Answer::Ok("200", "The port's share as it is now.", Body::Json(json::<octo_wire::PortShare>)),
            Answer::Fail(&fail("400", "Not a port previews reach (1024–65535).", &["bad_request"])),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_SESSION),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/sessions/{id}/ports/{port}/links", "createShareLink", "sessions", "A link that opens the preview of a port without an account, until it expires.")
        .describe("The answer holds the link's URL (`https://p<port>-<id>.<content site>/__octo/share?t=<token>`), shown this once: only a hash of its token is kept. Anyone who opens it gets that host's cookie for as long as the link lives; revoking it (`DELETE …/links/{link}`) refuses their next request. At most 20 live links per port. Owner or admin; audited as `preview.link`.")
        .params(&[SESSION_ID, PORT])
        .body(json::<octo_wire::CreateShareLink>)
        .answers(&[
            Answer::Ok("201", "The link, with its URL.", Body::Json(json::<octo_wire::ShareLinkCreated>)),
            Answer::Fail(&fail("400", "Not a port previews reach, or a lifetime outside 10 s to 30 days.", &["bad_request"])),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_SESSION),
            Answer::Fail(&fail("409", "No content site is configured, or the port has 20 live links.", &["previews_off", "too_many_links"])),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&INTERNAL),
        ]),
    Op::delete("/api/sessions/{id}/ports/{port}/links/{link}", "revokeShareLink", "sessions", "Revoke a share link: it opens nothing more, and browsers it opened are refused from their next request.")
        .describe("Owner or admin; audited as `preview.unlink`.")
        .params(&[SESSION_ID, PORT, SHARE_LINK_ID])
        .answers(&[
            Answer::Ok("204", "Revoked.", Body::Empty),
            Answer::Fail(&fail("400", "Not a port previews reach.", &["bad_request"])),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&fail("404", "No such session, or another user's (not revealed), or no such live link.", &["not_found"])),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/sessions/{id}/snapshots", "listSnapshots", "snapshots", "A session's snapshots, its last snapshot job with its progress, and its owner's snapshot quota.")
        .params(&[SESSION_ID])
        .answers(&[
            Answer::Ok("200", "The snapshots (oldest first) and the last job.", Body::Json(json::<SnapshotList>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED),
            Answer::Fail(&NO_SESSION),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/sessions/{id}/snapshots", "createSnapshot", "snapshots", "Take a snapshot of a session's home, running or stopped.")
        .describe("The work runs as a transient unit of the `octo` user's manager; the answer comes once it has started. A running session's container is paused while its home is read, so the copy is consistent. Poll `GET …/snapshots` for the job's progress and outcome. Audited as `session.snapshot`.")
        .params(&[SESSION_ID])
        .body(json::<CreateSnapshot>)
        .answers(&[
            Answer::Ok("202", "Started; the job.", Body::Json(json::<SnapshotJobView>)),
            Answer::Fail(&fail("400", "Invalid name (1–80 characters after trimming, no control characters).", &["invalid_name", "bad_request"])),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_SESSION),
            Answer::Fail(&fail("409", "A snapshot of that name exists (`snapshot_exists`), another operation runs on the session (`operation_running`), the session is being deleted (`session_deleting`), or its home was never created (`no_home`).", &["snapshot_exists", "operation_running", "session_deleting", "no_home"])),
            Answer::Fail(&fail("507", "The owner's snapshots take their whole snapshot quota (`[limits] snapshots`).", &["snapshot_quota"])),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&INTERNAL),
        ]),
    Op::delete("/api/sessions/{id}/snapshots/{snapshot}", "deleteSnapshot", "snapshots", "Delete one of a session's snapshots.")
        .describe("Audited as `session.snapshot.delete`.")
        .params(&[SESSION_ID, SNAPSHOT_ID])
        .answers(&[
            Answer::Ok("204", "Deleted.", Body::Empty),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&fail("404", "No such session, or another user's (not revealed), or no such snapshot.", &["not_found", "snapshot_not_found"])),
            Answer::Fail(&fail("409", "Another operation runs on the session.", &["operation_running"])),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/sessions/{id}/snapshots/{snapshot}/restore", "restoreSnapshot", "snapshots", "Restore a snapshot into a session's home.")
        .describe("The session is stopped, its home replaced by the snapshot's in one atomic swap (until then the old home is untouched), and started again if it was running. The answer comes once the work has started; poll `GET …/snapshots`. Audited as `session.snapshot.restore`.")
        .params(&[SESSION_ID, SNAPSHOT_ID])
        .answers(&[
            Answer::Ok("202", "Started; the job.", Body::Json(json::<SnapshotJobView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&fail("404", "No such session, or another user's (not revealed), or no such snapshot.", &["not_found", "snapshot_not_found"])),
            Answer::Fail(&fail("409", "Another operation runs on the session (`operation_running`), it is being deleted (`session_deleting`), or its home was never created (`no_home`).", &["operation_running", "session_deleting", "no_home"])),
            Answer::Fail(&INTERNAL),
        ]),
    Op::post("/api/sessions/{id}/fork", "forkSession", "sessions", "Fork a session: a new session of the same owner and template from its current home or one of its snapshots.")
        .describe("The new session has its own id, name (`<name> (fork)`), credential and units. From the current home, the source is paused while its home is copied (`cp --reflink=auto`: copy-on-write where the file system offers it); from a snapshot, the snapshot is unpacked. The answer comes once the new session exists; it is `starting` while its home is filled in, `failed` with the reason if that fails. Counts against the per-user session limit. Audited as `session.fork`.")
        .params(&[SESSION_ID])
        .body(json::<ForkSession>)
        .answers(&[
            Answer::Ok("202", "The new session; its home is being filled in.", Body::Json(json::<SessionView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&fail("404", "No such session, or another user's (not revealed), or no such snapshot.", &["not_found", "snapshot_not_found"])),
            Answer::Fail(&fail("409", "Another operation runs on the session (`operation_running`), it is being deleted (`session_deleting`), its home was never created (`no_home`), or the user has the most sessions (`session_limit`).", &["operation_running", "session_deleting", "no_home", "session_limit"])),
            Answer::Fail(&HOST_FULL),
            Answer::Fail(&TOO_LARGE),
            Answer::Fail(&NOT_JSON),
            Answer::Fail(&BAD_SHAPE),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/templates", "listTemplates", "templates", "The session templates.")
        .answers(&[
            Answer::Ok("200", "Templates.", Body::Json(list::<TemplateView>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/usage", "usage", "usage", "The model gateway's usage: tokens per day, user, session and model.")
        .describe("A user sees their own usage; an admin everyone's, or one user's with `user`.")
        .params(&[USAGE_DAYS, USAGE_USER])
        .answers(&[
            Answer::Ok("200", "The usage of the period.", Body::Json(json::<UsageReport>)),
            Answer::Fail(&BAD_REQUEST),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&NOT_ADMIN),
            Answer::Fail(&INTERNAL),
        ]),
    Op::get("/api/models", "listModels", "usage", "The models the signed-in user may choose for a prompt.")
        .describe("The models of the model gateway that the caller's role may use (`[llm.allow]`), the instance's default first; empty without a model gateway. A prompt names one as opencode's `{providerID: opencode_provider, modelID: id}`; the gateway refuses any other with 403 `model_not_allowed`.")
        .answers(&[
            Answer::Ok("200", "The models.", Body::Json(json::<ModelList>)),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED),
        ]),
    Op::get("/sessions/{id}/terminal", "terminal", "proxy", "The session's terminal (ttyd) as a WebSocket.")
        .describe("A WebSocket upgrade (`Connection: upgrade`, `Upgrade: websocket`, `Sec-WebSocket-Version: 13`), same-origin only; subprotocol `tty` is passed on.")
        .params(&[SESSION_ID])
        .answers(&[
            Answer::Ok("101", "Switching protocols: the WebSocket to the terminal.", Body::Empty),
            Answer::Fail(&UNAUTHORIZED),
            Answer::Fail(&DISABLED_OR_CROSS_ORIGIN),
            Answer::Fail(&NO_SESSION),
            Answer::Fail(&fail("426", "Not a WebSocket upgrade.", &["upgrade_required"])),
            Answer::Fail(&PROXY_CONFLICT),
            Answer::Fail(&fail("502", "The terminal is not answering or refused the connection.", &["upstream_unavailable", "upstream_failed"])),
            Answer::Fail(&WAKING),
            Answer::Fail(&HEAD_TIMEOUT),
            Answer::Fail(&SESSION_FAILED),
        ]),
];

/// The proxy's routes: opencode and the files under `/sessions/{id}/…` for every method (axum's
/// `ANY`; OpenAPI has no wildcard, so `{rest}` stands for `{*rest}`), and the terminal.
fn proxy_paths(paths: &mut Paths) {
    const ANY: [HttpMethod; 8] = [
        HttpMethod::Get,
        HttpMethod::Put,
        HttpMethod::Post,
        HttpMethod::Delete,
        HttpMethod::Options,
        HttpMethod::Head,
        HttpMethod::Patch,
        HttpMethod::Trace,
    ];
    let services = [
        (
            "opencode",
            "opencode's HTTP API and server-sent events, through the session's gateway (the session's token is injected). Authorized as the session's owner or an admin; an idle session is woken by access (its socket starts it).",
        ),
        (
            "files",
            "The session's file API (the gateway's root): uploads and downloads streamed both ways; an upload over the gateway's limit is refused (`413`) before its body is sent. Authorized as the session's owner or an admin; an idle session is woken by access (its socket starts it).",
        ),
    ];
    for (service, description) in services {
        for (suffix, params) in [
            ("", &[SESSION_ID][..]),
            ("/", &[SESSION_ID][..]),
            ("/{rest}", &[SESSION_ID, REST][..]),
        ] {
            let mut item = PathItem::default();
            item.summary = Some(format!("Proxy to the session's {service}"));
            item.description = Some(description.to_owned());
            item.parameters = Some(params.iter().map(parameter).collect());
            for method in ANY.clone() {
                let mut op = OperationBuilder::new()
                    .tag("proxy")
                    .summary(Some(format!("{} through to {service}", method_name(&method))))
                    .response(
                        "2XX",
                        Response::new(format!("Whatever the session's {service} answers, passed on as it is (any status, streamed; server-sent events included).")),
                    );
                for (status, _) in PROXY_FAILURES {
                    op = op.response(status, Ref::from_response_name(format!("Proxy{status}")));
                }
                item.merge_operations(PathItem::new(method, op.build()));
            }
            paths
                .paths
                .insert(format!("/sessions/{{id}}/{service}{suffix}"), item);
        }
    }
}

/// The error answers every proxied route shares (`components/responses/Proxy<status>`).
const PROXY_FAILURES: [(&str, &Failure); 8] = [
    ("401", &UNAUTHORIZED),
    ("403", &DISABLED_OR_CROSS_ORIGIN),
    ("404", &NO_SESSION),
    ("409", &PROXY_CONFLICT),
    (
        "502",
        &fail(
            "502",
            "The service is not answering or did not complete the request.",
            &["upstream_unavailable", "upstream_failed"],
        ),
    ),
    ("503", &WAKING),
    ("504", &HEAD_TIMEOUT),
    ("500", &SESSION_FAILED),
];

fn method_name(method: &HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "GET",
        HttpMethod::Put => "PUT",
        HttpMethod::Post => "POST",
        HttpMethod::Delete => "DELETE",
        HttpMethod::Options => "OPTIONS",
        HttpMethod::Head => "HEAD",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Trace => "TRACE",
    }
}

fn paths() -> Paths {
    let mut paths = Paths::new();
    for op in OPERATIONS {
        let mut builder = OperationBuilder::new()
            .tag(op.tag)
            .summary(Some(op.summary))
            .description(op.description);
        if !op.id.is_empty() {
            builder = builder.operation_id(Some(op.id));
        }
        if op.public {
            builder = builder.securities(Some(Vec::<SecurityRequirement>::new()));
        }
        if !op.params.is_empty() {
            builder = builder.parameters(Some(op.params.iter().map(parameter)));
        }
        if let Some(schema) = op.body {
            builder = builder.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("application/json", Content::new(Some(schema())))
                    .build(),
            ));
        }
        for answer in op.answers {
            builder = match answer {
                Answer::Ok(status, description, body) => {
                    builder.response(*status, success(description, *body))
                }
                Answer::Cookie(status, description, body, cookie) => {
                    let mut response = success(description, *body);
                    response.headers.insert(
                        "Set-Cookie".to_owned(),
                        HeaderBuilder::new()
                            .schema(ObjectBuilder::new().schema_type(Type::String))
                            .description(Some(*cookie))
                            .build(),
                    );
                    builder.response(*status, response)
                }
                Answer::Fail(failure) => builder.response(failure.status, error(failure)),
            };
        }
        paths.add_path_operation(op.path, vec![op.method.clone()], builder.build());
    }
    proxy_paths(&mut paths);
    paths
}

fn parameter(param: &Param) -> utoipa::openapi::path::Parameter {
    let schema = match param.range {
        Some((min, max)) => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min))
            .maximum(Some(max)),
        None => ObjectBuilder::new().schema_type(Type::String),
    };
    ParameterBuilder::new()
        .name(param.name)
        .parameter_in(if param.query {
            ParameterIn::Query
        } else {
            ParameterIn::Path
        })
        .required(if param.query {
            Required::False
        } else {
            Required::True
        })
        .description(Some(param.description))
        .schema(Some(schema))
        .build()
}

fn success(description: &str, body: Body) -> Response {
    let response = ResponseBuilder::new().description(description);
    match body {
        Body::Empty => response,
        Body::Json(schema) => response.content("application/json", Content::new(Some(schema()))),
        Body::Object => response.content(
            "application/json",
            Content::new(Some(ObjectBuilder::new().schema_type(Type::Object))),
        ),
        Body::Text => response.content(
            "text/plain",
            Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
        ),
    }
    .build()
}

/// The one error shape with the codes this answer may carry.
fn error(failure: &Failure) -> Response {
    let mut response = ResponseBuilder::new()
        .description(failure.description)
        .content("application/json", Content::new(Some(json::<ErrorBody>())))
        .extensions(Some(
            Extensions::builder()
                .add("x-error-codes", failure.codes)
                .build(),
        ));
    if failure.retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    response.build()
}

fn components() -> Components {
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::http::COOKIE_NAME,
                "The session cookie set by register/login (a JWT).",
            ))),
        )
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or octo_<id>_<secret>")
                    .description(Some(
                        "For API clients: a personal API token (`octo_…`, limited to its scopes: `sessions:read` for GET on sessions and templates, `sessions:write` for the other session routes, `sessions:connect` for `/sessions/*`, `admin` for `/api/admin/*`; 403 `insufficient_scope` otherwise, 403 `token_not_allowed` on the account's own routes but `GET /api/me`), or the session JWT. With a bearer token the cookie is ignored and the same-origin rule does not apply.",
                    ))
                    .build(),
            ),
        )
        .schema_from::<ErrorBody>()
        .schema_from::<Role>()
        .schema_from::<UserView>()
        .schema_from::<SignInOptions>()
        .schema_from::<SignInProvider>()
        .schema_from::<SignedOut>()
        .schema_from::<InviteView>()
        .schema_from::<Scope>()
        .schema_from::<ApiTokenView>()
        .schema_from::<CreateApiToken>()
        .schema_from::<CreatedApiToken>()
        .schema_from::<AuditView>()
        .schema_from::<UsageReport>()
        .schema_from::<UsageRowView>()
        .schema_from::<ModelList>()
        .schema_from::<BudgetView>()
        .schema_from::<SetBudget>()
        .schema_from::<ModelView>()
        .schema_from::<Health>()
        .schema_from::<TemplateView>()
        .schema_from::<SessionUrls>()
        .schema_from::<SessionLimits>()
        .schema_from::<SessionDisk>()
        .schema_from::<octo_wire::IdleReason>()
        .schema_from::<SessionIdle>()
        .schema_from::<KeepAlive>()
        .schema_from::<SessionView>()
        .schema_from::<ListeningPort>()
        .schema_from::<octo_wire::ShareLinkView>()
        .schema_from::<octo_wire::PortShare>()
        .schema_from::<octo_wire::PreviewTicket>()
        .schema_from::<SessionPorts>()
        .schema_from::<octo_wire::SetPortShare>()
        .schema_from::<octo_wire::CreateShareLink>()
        .schema_from::<octo_wire::ShareLinkCreated>()
        .schema_from::<RegisterRequest>()
        .schema_from::<LoginRequest>()
        .schema_from::<PasswordChange>()
        .schema_from::<CreateUser>()
        .schema_from::<SetRole>()
        .schema_from::<ResetPassword>()
        .schema_from::<CreateInvite>()
        .schema_from::<CreateSession>()
        .schema_from::<UpdateSession>()
        .schema_from::<SnapshotView>()
        .schema_from::<SnapshotJobView>()
        .schema_from::<SnapshotList>()
        .schema_from::<CreateSnapshot>()
        .schema_from::<ForkSession>();
    for (status, failure) in PROXY_FAILURES {
        components = components.response(format!("Proxy{status}"), error(failure));
    }
    components.build()
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

    use axum::Router;
    use axum::response::IntoResponse as _;

    use super::OPENAPI;
    use crate::api::sessions::{self, state_name};
    use crate::app::{AppState, Health, ROUTES, routes};
    use crate::http::ApiError;
    use crate::session::SessionState;

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
        serde_json::from_str(&OPENAPI).expect("the document is JSON")
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
                    .any(|s| s.starts_with('1') || s.starts_with('2') || s.starts_with('3')),
                "{method} {path}: no success response"
            );
            for (status, response) in responses {
                // 3xx: the OpenID Connect navigations, which redirect for every outcome.
                if status.starts_with('1') || status.starts_with('2') || status.starts_with('3') {
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
        // utoipa lists an `Option`'s `{"type": "null"}` first: sample the other alternative.
        if let Some(first) = schema["oneOf"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["type"] != "null"))
        {
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
        // utoipa leaves out an empty `required` (CreateInvite's).
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
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
        check_request::<sessions::UpdateSession>(&doc, "UpdateSession");
        check_request::<octo_wire::KeepAlive>(&doc, "KeepAlive");
        check_request::<octo_wire::CreateSnapshot>(&doc, "CreateSnapshot");
        check_request::<octo_wire::ForkSession>(&doc, "ForkSession");
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
            identity_provider: None,
        };
        assert_response_schema(&doc, "User", &to_value(&user));
        let linked = UserView {
            identity_provider: Some("corp".into()),
            ..user
        };
        assert_response_schema(&doc, "User", &to_value(&linked));
        let options = octo_wire::SignInOptions {
            local_passwords: false,
            providers: vec![octo_wire::SignInProvider {
                id: "corp".into(),
                name: "Corp".into(),
            }],
        };
        assert_response_schema(&doc, "SignInOptions", &to_value(&options));
        let out = octo_wire::SignedOut {
            end_session_url: "https://id.example/end".into(),
        };
        assert_response_schema(&doc, "SignedOut", &to_value(&out));
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
                name: "Default".into(),
                description: String::new(),
                state,
                reason,
                desired: sessions::Desired::Running,
                created_at: 1,
                updated_at: 2,
                last_active_at: 3,
                urls: sessions::SessionUrls {
                    opencode: "/sessions/s1/opencode/".into(),
                    files: "/sessions/s1/files/".into(),
                    terminal: "/sessions/s1/terminal".into(),
                },
                limits: octo_wire::SessionLimits {
                    memory_bytes: Some(2 << 30),
                    cpu_centis: Some(150),
                    pids: None,
                    unenforced: vec!["memory".into()],
                },
                disk: octo_wire::SessionDisk {
                    used_bytes: Some(5 << 20),
                    measured_at: Some(4),
                    owner_used_bytes: 9 << 30,
                    quota_bytes: Some(10 << 30),
                    quota_state: octo_wire::QuotaState::Warning,
                },
                idle: octo_wire::SessionIdle {
                    stops_at: Some(5),
                    kept_by: vec![
                        octo_wire::IdleReason::Agent,
                        octo_wire::IdleReason::KeepAlive,
                        octo_wire::IdleReason::Activity,
                    ],
                    keep_alive_until: Some(6),
                    keep_alive_max_minutes: 1440,
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

    #[test]
    fn the_committed_document_is_current() {
        // `octod/openapi.json` is what the web UI generates its types from (`npm run gen:api`).
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        if std::env::var_os("OCTO_BLESS").is_some_and(|v| v == "1") {
            std::fs::write(&path, OPENAPI.as_str()).expect("writing openapi.json");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == *OPENAPI,
            "{} is stale: regenerate it with `OCTO_BLESS=1 cargo test -p octod openapi`, then \
             `npm run gen:api` in frontend/",
            path.display()
        );
    }
}
