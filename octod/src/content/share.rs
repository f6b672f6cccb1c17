//! Sharing a preview (issue 14): `PUT /api/sessions/{id}/ports/{port}/share` (every signed-in
//! user, or no longer), `POST …/links` (a link that opens it without an account until it
//! expires; its URL shown once), `DELETE …/links/{link}`. Owner or admin, as every session
//! route (another user's session is `404`); each change is in the audit log. The content
//! origin checks a share again on every request ([`super::authorize`]).

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{Content, ContentHost, SHARE_PATH, check_port};
use crate::engine::Engine;
use crate::http::{ApiError, JsonBody};
use crate::identity::CurrentUser;
use crate::service::sessions::owned;
use crate::session::{SessionId, SessionState};
use crate::store::{PortShare, Secret, ShareError, ShareLink, to_unix_ms};

/// A link's lifetime when the request names none: a day.
pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(24 * 3600);
/// The shortest and the longest a link may live.
pub const MIN_LINK_TTL: Duration = Duration::from_secs(10);
pub const MAX_LINK_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The wire view of a share.
pub fn view(share: &PortShare) -> octo_wire::PortShare {
    let mut links: Vec<octo_wire::ShareLinkView> = share.links.iter().map(link_view).collect();
    links.sort_by_key(|l| l.expires_at);
    octo_wire::PortShare {
        users: share.users,
        links,
    }
}

fn link_view(link: &ShareLink) -> octo_wire::ShareLinkView {
    octo_wire::ShareLinkView {
        id: link.id.clone(),
        created_by: link.created_by.clone(),
        created_at: to_unix_ms(link.created_at),
        expires_at: to_unix_ms(link.expires_at),
    }
}

/// The session (owner or admin) and the port a share route names.
async fn target(
    engine: &Engine,
    user: &CurrentUser,
    id: &str,
    port: &str,
) -> Result<(SessionId, u16), ApiError> {
    let record = owned(engine, user, id).await?;
    if record.state == SessionState::Deleting {
        return Err(ApiError::not_found("no such session"));
    }
    Ok((record.spec.id, check_port(port)?))
}

fn refusal(error: &ShareError) -> ApiError {
    match error {
        ShareError::NoSession(_) => ApiError::not_found("no such session"),
        ShareError::NoLink => ApiError::not_found("no such share link"),
        ShareError::TooManyLinks => {
            ApiError::new(StatusCode::CONFLICT, "too_many_links", error.to_string())
        }
        ShareError::Store(e) => ApiError::internal(e),
    }
}

async fn update(
    engine: &Engine,
    id: &SessionId,
    port: u16,
    change: impl FnOnce(&mut PortShare) -> Result<(), ShareError> + Send + 'static,
) -> Result<PortShare, ApiError> {
    let key = id.clone();
    let store = engine.store().clone();
    tokio::task::spawn_blocking(move || store.update_preview_share(&key, port, change))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| refusal(&e))
}

/// `PUT /api/sessions/{id}/ports/{port}/share`.
pub async fn set_share(
    State(engine): State<Engine>,
    user: CurrentUser,
    Path((id, port)): Path<(String, String)>,
    JsonBody(body): JsonBody<octo_wire::SetPortShare>,
) -> Result<Json<octo_wire::PortShare>, ApiError> {
    let (id, port) = target(&engine, &user, &id, &port).await?;
    let users = body.users;
    let share = update(&engine, &id, port, move |share| {
        share.users = users;
        Ok(())
    })
    .await?;
    let action = if users {
        "preview.share"
    } else {
        "preview.unshare"
    };
    crate::service::audit_detail(
        &engine,
        &user.name,
        action,
        id.as_str(),
        &format!("port {port}, every signed-in user"),
    );
    tracing::info!(session = %id, port, user = %user.name, shared = users, "a preview's share with every user changed");
    Ok(Json(view(&share)))
}

/// `POST /api/sessions/{id}/ports/{port}/links`: `201` with the link's URL, shown this once.
pub async fn create_link(
    State(engine): State<Engine>,
    State(Content(content)): State<Content>,
    user: CurrentUser,
    Path((id, port)): Path<(String, String)>,
    JsonBody(body): JsonBody<octo_wire::CreateShareLink>,
) -> Result<Response, ApiError> {
    let (id, port) = target(&engine, &user, &id, &port).await?;
    let Some(content) = content else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "previews_off",
            "previews need a content site (server.content_site in octod.toml, OCTO_CONTENT_SITE for Caddy)",
        ));
    };
    let ttl = body
        .expires_in_seconds
        .map_or(DEFAULT_LINK_TTL, Duration::from_secs);
    if !(MIN_LINK_TTL..=MAX_LINK_TTL).contains(&ttl) {
        return Err(ApiError::bad_request(format!(
            "`expires_in_seconds` is {} to {} (30 days)",
            MIN_LINK_TTL.as_secs(),
            MAX_LINK_TTL.as_secs()
        )));
    }
    let token = Secret::generate().map_err(|e| ApiError::internal(&e))?;
    let link_id = Secret::generate().map_err(|e| ApiError::internal(&e))?;
    let now = SystemTime::now();
    let link = ShareLink {
        id: link_id.expose().chars().take(12).collect(),
        token_sha256: crate::auth::api_token::secret_sha256(token.expose()),
        created_by: user.name.clone(),
        created_at: now,
        expires_at: now + ttl,
    };
    let stored = link.clone();
    update(&engine, &id, port, move |share| {
        share.links.push(stored);
        Ok(())
    })
    .await?;
    crate::service::audit_detail(
        &engine,
        &user.name,
        "preview.link",
        id.as_str(),
        &format!("port {port}, link {}, for {} s", link.id, ttl.as_secs()),
    );
    tracing::info!(session = %id, port, user = %user.name, link = %link.id, "a preview share link made");
    let url = format!(
        "{}{SHARE_PATH}?t={}",
        content
            .site()
            .origin(&ContentHost::Preview(id, port).label()),
        token.expose()
    );
    let created = octo_wire::ShareLinkCreated {
        link: link_view(&link),
        url,
    };
    let mut response = (StatusCode::CREATED, Json(created)).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// `DELETE /api/sessions/{id}/ports/{port}/links/{link}`: `204`; the link opens nothing more,
/// and a browser it opened is refused from its next request.
pub async fn delete_link(
    State(engine): State<Engine>,
    user: CurrentUser,
    Path((id, port, link)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let (id, port) = target(&engine, &user, &id, &port).await?;
    let wanted = link.clone();
    update(&engine, &id, port, move |share| {
        let before = share.links.len();
        share.links.retain(|l| l.id != wanted);
        if share.links.len() == before {
            return Err(ShareError::NoLink);
        }
        Ok(())
    })
    .await?;
    crate::service::audit_detail(
        &engine,
        &user.name,
        "preview.unlink",
        id.as_str(),
        &format!("port {port}, link {link}"),
    );
    Ok(StatusCode::NO_CONTENT)
}
