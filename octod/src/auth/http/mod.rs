//! The HTTP face of [`Auth`](super::Auth): the account routes and the extractors the rest of the
//! API uses to know who is asking. The admin handlers are generic over the
//! [`AdminCaller`]: the admin socket mounts the same ones with its own actor.
//!
//! | route                                        | who     | body → answer                       |
//! | -------------------------------------------- | ------- | ----------------------------------- |
//! | `POST /api/auth/register`                    | anyone  | `{invite_code, username, password}` → 201 user + cookie |
//! | `POST /api/auth/login`                       | anyone  | `{username, password}` → user + cookie |
//! | `POST /api/auth/logout`                      | anyone  | → 204, cookie cleared, token revoked |
//! | `GET /api/me`                                | user    | → user                              |
//! | `POST /api/me/password`                      | user    | `{current, new}` → 204 + new cookie |
//! | `GET /api/me/tokens`                         | user    | → `[token]`, newest first           |
//! | `POST /api/me/tokens`                        | user    | `{name, scopes, expires_in_days?}` → 201 `{token, info}` |
//! | `DELETE /api/me/tokens/{id}`                 | user    | → 204                               |
//! | `GET /api/admin/users`                       | admin   | → `[user]`                          |
//! | `POST /api/admin/users`                      | admin   | `{username, password, role?}` → 201 user |
//! | `POST /api/admin/users/{name}/disable`       | admin   | → user                              |
//! | `POST /api/admin/users/{name}/enable`        | admin   | → user                              |
//! | `POST /api/admin/users/{name}/role`          | admin   | `{role}` → user                     |
//! | `POST /api/admin/users/{name}/password`      | admin   | `{password}` → 204                  |
//! | `GET /api/admin/users/{name}/tokens`         | admin   | → `[token]`                         |
//! | `DELETE /api/admin/users/{name}/tokens/{id}` | admin   | → 204                               |
//! | `GET /api/admin/invite-codes`                | admin   | → `[invite]`                        |
//! | `POST /api/admin/invite-codes`               | admin   | `{role?, uses?, expires_in_seconds?}` → 201 invite |
//! | `DELETE /api/admin/invite-codes/{code}`      | admin   | → 204                               |
//! | `GET /api/admin/audit?limit=`                | admin   | → `[entry]`, newest first (default 100, at most 1000) |
//!
//! Times are milliseconds since the Unix epoch. Errors are the API's one shape; the codes are
//! listed in the `From<AuthError> for ApiError` mapping in [`crate::http::error`].
//!
//! The cookie: `octo_session=<JWT>; Path=/; HttpOnly; SameSite=Strict; Max-Age=<token ttl>`,
//! plus `Secure` when `secure_cookies` is set or the request came through a TLS proxy
//! (`X-Forwarded-Proto: https`). An API client may send the same JWT as
//! `Authorization: Bearer`.
//!
//! Personal API tokens are created by their user in the browser (the `/api/me/tokens` routes
//! take no API token: a token cannot mint another) or by root through the admin socket
//! (`POST /admin/v1/users/{name}/tokens`, [`token_create_route`]); admins list and revoke
//! anyone's. The token itself is in the creating answer only.

pub mod extract;
mod oidc;

use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use super::{AuthState, Authenticated, IssuedToken, NewApiToken, NewInvite};
use crate::http::{ApiError, JsonBody};
use crate::identity::{CurrentUser, Role};
use crate::service::AdminCaller;
use crate::store::{ApiTokenRecord, AuditEntry, Invite, UserRecord, to_unix_ms as unix_ms};

pub use extract::{COOKIE_NAME, Client, RequireAdmin};

/// The account routes; merge them into the application's router, whose state provides an
/// [`AuthState`] through `FromRef`.
pub fn routes<S>() -> Router<S>
where
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .merge(oidc::routes())
        .route("/api/me", get(me))
        .route("/api/me/password", post(change_password))
        .route("/api/me/tokens", get(my_tokens).post(create_my_token))
        .route("/api/me/tokens/{id}", delete(revoke_my_token))
        .route("/api/admin/audit", get(audit))
        .merge(account_routes::<S, RequireAdmin>("/api/admin"))
}

/// An admin's routes on users and invite codes under `prefix`, for a caller `A`: the API
/// mounts them for the signed-in admin, the admin socket for its actor.
pub fn account_routes<S, A>(prefix: &str) -> Router<S>
where
    AuthState: FromRef<S>,
    A: AdminCaller + FromRequestParts<S> + 'static,
    S: Clone + Send + Sync + 'static,
{
    let at = |path: &str| format!("{prefix}{path}");
    Router::new()
        .route(&at("/users"), get(list_users::<A>).post(create_user::<A>))
        .route(&at("/users/{name}/disable"), post(disable_user::<A>))
        .route(&at("/users/{name}/enable"), post(enable_user::<A>))
        .route(&at("/users/{name}/role"), post(set_role::<A>))
        .route(&at("/users/{name}/password"), post(reset_password::<A>))
        .route(
            &at("/invite-codes"),
            get(list_invites::<A>).post(create_invite::<A>),
        )
        .route(&at("/invite-codes/{code}"), delete(delete_invite::<A>))
        .route(&at("/users/{name}/tokens"), get(user_tokens::<A>))
        .route(
            &at("/users/{name}/tokens/{id}"),
            delete(revoke_user_token::<A>),
        )
}

/// `POST {prefix}/users/{name}/tokens`: a token for a user, created by the caller `A`. Only the
/// admin socket mounts it (root, `octoctl user token create`): an admin in the browser cannot
/// mint a credential of another user.
pub fn token_create_route<S, A>(prefix: &str) -> Router<S>
where
    AuthState: FromRef<S>,
    A: AdminCaller + FromRequestParts<S> + 'static,
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(
        &format!("{prefix}/users/{{name}}/tokens"),
        post(create_user_token::<A>),
    )
}

// ---- Wire types (`octo_wire`), and their conversions from the account store's records.

pub use octo_wire::{
    ApiTokenView, AuditQuery, AuditView, CreateApiToken, CreateInvite, CreateUser, CreatedApiToken,
    InviteView, LoginRequest, PasswordChange, RegisterRequest, ResetPassword, SetRole, UserView,
};

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            name: u.name.clone(),
            role: u.role,
            disabled: u.disabled,
            created_at: unix_ms(u.created_at),
            identity_provider: u.identity_provider.clone(),
        }
    }
}

impl From<&Invite> for InviteView {
    fn from(i: &Invite) -> Self {
        Self {
            code: i.code.expose().to_owned(),
            role: i.role,
            uses_left: i.uses_left,
            expires_at: i.expires_at.map(unix_ms),
            created_by: i.created_by.clone(),
            created_at: unix_ms(i.created_at),
        }
    }
}

impl From<&ApiTokenRecord> for ApiTokenView {
    fn from(t: &ApiTokenRecord) -> Self {
        Self {
            id: t.id.clone(),
            user: t.user.clone(),
            name: t.name.clone(),
            scopes: t.scopes.clone(),
            created_at: unix_ms(t.created_at),
            expires_at: unix_ms(t.expires_at),
            last_used_at: t.last_used_at.map(unix_ms),
        }
    }
}

/// An audit log entry with its id as the API shows it.
fn audit_view((id, e): (u64, AuditEntry)) -> AuditView {
    AuditView {
        id,
        time: unix_ms(e.time),
        actor: e.actor,
        action: e.action,
        target: e.target,
        detail: e.detail,
    }
}

/// Audit entries returned without `limit`, and the most returned with one.
pub const AUDIT_DEFAULT_LIMIT: usize = 100;
pub const AUDIT_MAX_LIMIT: usize = 1000;

// ---- Handlers.

fn signed_in(
    auth: &AuthState,
    client: &Client,
    status: StatusCode,
    user: &UserRecord,
    issued: &IssuedToken,
) -> Response {
    let secure = auth.settings().secure_cookies || client.tls;
    let max_age = issued.claims.exp.saturating_sub(issued.claims.iat);
    (
        status,
        [extract::session_cookie(issued, max_age, secure)],
        axum::Json(UserView::from(user)),
    )
        .into_response()
}

async fn register(
    State(auth): State<AuthState>,
    client: Client,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<Response, ApiError> {
    let user = auth
        .register(&req.invite_code, &req.username, &req.password)
        .await?;
    let issued = auth.issue(&user)?;
    Ok(signed_in(
        &auth,
        &client,
        StatusCode::CREATED,
        &user,
        &issued,
    ))
}

async fn login(
    State(auth): State<AuthState>,
    client: Client,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let (user, issued) = auth
        .login(&req.username, &req.password, &client.address)
        .await?;
    Ok(signed_in(&auth, &client, StatusCode::OK, &user, &issued))
}

/// Always succeeds: revokes the token if there is a valid one and clears the cookie. A
/// browser that signed in with a provider offering an end-session endpoint gets 200 with its
/// URL, to sign out there too; otherwise 204.
async fn logout(
    State(auth): State<AuthState>,
    client: Client,
    headers: axum::http::HeaderMap,
    session: Result<Authenticated, ApiError>,
) -> Result<Response, ApiError> {
    let claims = session.as_ref().ok().and_then(Authenticated::claims);
    if let Some(claims) = claims {
        auth.logout(claims).await?;
    }
    let secure = auth.settings().secure_cookies || client.tls;
    let end_session = match (
        claims.and_then(|c| c.idp.as_deref()),
        oidc::origin(&headers, &client),
    ) {
        (Some(idp), Some(origin)) => {
            auth.oidc()
                .end_session_url(idp, &format!("{origin}/login"))
                .await
        }
        _ => None,
    };
    Ok(match end_session {
        Some(end_session_url) => (
            StatusCode::OK,
            [extract::clear_cookie(secure)],
            axum::Json(octo_wire::SignedOut { end_session_url }),
        )
            .into_response(),
        None => (StatusCode::NO_CONTENT, [extract::clear_cookie(secure)]).into_response(),
    })
}

async fn me(State(auth): State<AuthState>, user: CurrentUser) -> Result<Response, ApiError> {
    let name = user.name;
    let record = auth
        .store()
        .user(&name)
        .map_err(super::AuthError::from)?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(axum::Json(UserView::from(&record)).into_response())
}

async fn change_password(
    State(auth): State<AuthState>,
    client: Client,
    user: CurrentUser,
    JsonBody(req): JsonBody<PasswordChange>,
) -> Result<Response, ApiError> {
    let (record, issued) = auth
        .change_password(&user.name, &req.current, &req.new, &client.address)
        .await?;
    let mut response = signed_in(&auth, &client, StatusCode::NO_CONTENT, &record, &issued);
    // 204 has no body; the cookie is what matters.
    *response.body_mut() = axum::body::Body::empty();
    response
        .headers_mut()
        .remove(axum::http::header::CONTENT_TYPE);
    Ok(response)
}

async fn my_tokens(State(auth): State<AuthState>, user: CurrentUser) -> Result<Response, ApiError> {
    token_list(&auth, &user.name).await
}

async fn create_my_token(
    State(auth): State<AuthState>,
    user: CurrentUser,
    JsonBody(req): JsonBody<CreateApiToken>,
) -> Result<Response, ApiError> {
    token_create(&auth, &user.name, req, &user.name).await
}

async fn revoke_my_token(
    State(auth): State<AuthState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.revoke_api_token(&user.name, &id, &user.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn user_tokens<A: AdminCaller>(
    State(auth): State<AuthState>,
    _: A,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if auth
        .store()
        .user(&name)
        .map_err(super::AuthError::from)?
        .is_none()
    {
        return Err(ApiError::not_found("no such user"));
    }
    token_list(&auth, &name).await
}

async fn create_user_token<A: AdminCaller>(
    State(auth): State<AuthState>,
    admin: A,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<CreateApiToken>,
) -> Result<Response, ApiError> {
    token_create(&auth, &name, req, &admin.user().name).await
}

async fn revoke_user_token<A: AdminCaller>(
    State(auth): State<AuthState>,
    admin: A,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    auth.revoke_api_token(&name, &id, &admin.user().name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn token_list(auth: &AuthState, user: &str) -> Result<Response, ApiError> {
    let tokens = auth.api_tokens(Some(user)).await?;
    Ok(axum::Json(tokens.iter().map(ApiTokenView::from).collect::<Vec<_>>()).into_response())
}

async fn token_create(
    auth: &AuthState,
    user: &str,
    req: CreateApiToken,
    actor: &str,
) -> Result<Response, ApiError> {
    let new = NewApiToken {
        name: req.name,
        scopes: req.scopes,
        expires_in_days: req.expires_in_days,
    };
    let (token, record) = auth.create_api_token(user, new, actor).await?;
    let created = CreatedApiToken {
        token: token.expose().to_owned(),
        info: ApiTokenView::from(&record),
    };
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

async fn list_users<A: AdminCaller>(
    State(auth): State<AuthState>,
    _: A,
) -> Result<Response, ApiError> {
    let users = auth.users().await?;
    Ok(axum::Json(users.iter().map(UserView::from).collect::<Vec<_>>()).into_response())
}

async fn create_user<A: AdminCaller>(
    State(auth): State<AuthState>,
    admin: A,
    JsonBody(req): JsonBody<CreateUser>,
) -> Result<Response, ApiError> {
    let user = auth
        .add_user(
            &req.username,
            &req.password,
            req.role.unwrap_or(Role::User),
            &admin.user().name,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(UserView::from(&user))).into_response())
}

async fn disable_user<A: AdminCaller>(
    State(auth): State<AuthState>,
    admin: A,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let user = auth.disable(&name, &admin.user().name).await?;
    Ok(axum::Json(UserView::from(&user)).into_response())
}

async fn enable_user<A: AdminCaller>(
    State(auth): State<AuthState>,
    admin: A,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let user = auth.enable(&name, &admin.user().name).await?;
    Ok(axum::Json(UserView::from(&user)).into_response())
}

async fn set_role<A: AdminCaller>(
    State(auth): State<AuthState>,
    admin: A,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<SetRole>,
) -> Result<Response, ApiError> {
    let user = auth.set_role(&name, req.role, &admin.user().name).await?;
    Ok(axum::Json(UserView::from(&user)).into_response())
}

async fn reset_password<A: AdminCaller>(
    State(auth): State<AuthState>,
    admin: A,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<ResetPassword>,
) -> Result<StatusCode, ApiError> {
    auth.reset_password(&name, &req.password, &admin.user().name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_invites<A: AdminCaller>(
    State(auth): State<AuthState>,
    _: A,
) -> Result<Response, ApiError> {
    let invites = auth.invites().await?;
    Ok(axum::Json(invites.iter().map(InviteView::from).collect::<Vec<_>>()).into_response())
}

async fn create_invite<A: AdminCaller>(
    State(auth): State<AuthState>,
    admin: A,
    JsonBody(req): JsonBody<CreateInvite>,
) -> Result<Response, ApiError> {
    let new = NewInvite {
        role: req.role.unwrap_or(Role::User),
        uses: req.uses,
        expires_in: req.expires_in_seconds.map(Duration::from_secs),
    };
    let invite = auth.create_invite(new, &admin.user().name).await?;
    Ok((StatusCode::CREATED, axum::Json(InviteView::from(&invite))).into_response())
}

async fn delete_invite<A: AdminCaller>(
    State(auth): State<AuthState>,
    admin: A,
    Path(code): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.revoke_invite(&code, &admin.user().name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn audit(
    State(auth): State<AuthState>,
    RequireAdmin(_): RequireAdmin,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(AUDIT_DEFAULT_LIMIT);
    if !(1..=AUDIT_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {AUDIT_MAX_LIMIT}"
        )));
    }
    let entries = auth.audit_log(limit).await?;
    Ok(axum::Json(entries.into_iter().map(audit_view).collect::<Vec<_>>()).into_response())
}

#[cfg(test)]
mod tests;
