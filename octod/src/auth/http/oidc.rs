//! The OpenID Connect routes (see [`crate::auth::oidc`] for the flow):
//!
//! | route                                   | answer                                          |
//! | --------------------------------------- | ----------------------------------------------- |
//! | `GET /api/auth/providers`               | how one may sign in: [`SignInOptions`]          |
//! | `GET /api/auth/oidc/{id}/start?next=&invite=` | 303 to the provider, with the state cookie |
//! | `GET /api/auth/oidc/{id}/callback?code=&state=` | 303 to `/login?signed_in=1&next=…` signed in, or to `/login?oidc_error=<code>&provider=<id>` |
//!
//! The start and the callback are browser navigations, so they answer with redirects, never
//! JSON: a refusal lands on the sign-in page, which shows a message for its code. The
//! redirect URI given to the provider is `<origin>/api/auth/oidc/<id>/callback`, the origin
//! being the one the browser used (the `Host` header, `https` behind the TLS proxy): register
//! that URI at the provider, and `<origin>/login` as the post-logout redirect URI.

use axum::Router;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::header::{HOST, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use octo_wire::{SignInOptions, SignInProvider};
use serde::Deserialize;

use super::extract::{self, Client};
use crate::auth::oidc::{FLOW_TTL, OidcError, STATE_COOKIE};
use crate::auth::{AuthError, AuthState};

pub fn routes<S>() -> Router<S>
where
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/api/auth/providers", get(providers))
        .route("/api/auth/oidc/{id}/start", get(start))
        .route("/api/auth/oidc/{id}/callback", get(callback))
}

async fn providers(State(auth): State<AuthState>) -> axum::Json<SignInOptions> {
    axum::Json(SignInOptions {
        local_passwords: auth.settings().local_passwords,
        providers: auth
            .oidc()
            .providers()
            .map(|p| SignInProvider {
                id: p.id.clone(),
                name: p.name.clone(),
            })
            .collect(),
    })
}

#[derive(Deserialize)]
struct StartQuery {
    next: Option<String>,
    invite: Option<String>,
}

async fn start(
    State(auth): State<AuthState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<StartQuery>,
) -> Response {
    let Some(origin) = origin(&headers, &client) else {
        return refused(&id, "bad_request");
    };
    let next = query
        .next
        .filter(|n| safe_next(n))
        .unwrap_or_else(|| "/".to_owned());
    let invite = query
        .invite
        .map(|i| i.trim().chars().take(128).collect::<String>())
        .filter(|i| !i.is_empty());
    let redirect = format!("{origin}/api/auth/oidc/{id}/callback");
    match auth.oidc().start(&id, &redirect, next, invite).await {
        Ok((url, state)) => {
            let secure = auth.settings().secure_cookies || client.tls;
            let cookie = state_cookie(&state, FLOW_TTL.as_secs(), secure);
            redirect_to(&url, Some(cookie))
        }
        Err(error) => {
            tracing::warn!("a sign-in with {id:?} could not start: {error}");
            refused(&id, error.code())
        }
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(auth): State<AuthState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let secure = auth.settings().secure_cookies || client.tls;
    let clear = state_cookie("", 0, secure);
    let outcome = async {
        if let Some(error) = &query.error {
            let mut detail: String = error.chars().take(64).collect();
            if let Some(description) = &query.error_description {
                detail.push_str(": ");
                detail.extend(description.chars().take(200));
            }
            return Err(AuthError::Oidc(OidcError::Refused(detail)));
        }
        let (Some(code), Some(state)) = (&query.code, &query.state) else {
            return Err(AuthError::Oidc(OidcError::StateMismatch));
        };
        let cookie = state_from(&headers);
        let finished = auth
            .oidc()
            .finish(&id, state, cookie.as_deref(), code)
            .await?;
        let next = finished.next.clone();
        let (user, issued) = auth.sign_in_oidc(finished, &client.address).await?;
        Ok((user, issued, next))
    }
    .await;
    match outcome {
        Ok((_user, issued, next)) => {
            let max_age = issued.claims.exp.saturating_sub(issued.claims.iat);
            let (_, session) = extract::session_cookie(&issued, max_age, secure);
            // The sign-in page, which sees `signed_in`, loads the user and goes on to `next`
            // (the UI keeps a hint of being signed in that only it can set).
            let next: String =
                percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
                    .to_string();
            let mut response = redirect_to(&format!("/login?signed_in=1&next={next}"), Some(clear));
            response.headers_mut().append(SET_COOKIE, session);
            response
        }
        Err(error) => {
            let code = match &error {
                AuthError::Oidc(e) => e.code(),
                AuthError::Disabled => "account_disabled",
                AuthError::Account(crate::store::AccountError::InvalidInvite) => "invalid_invite",
                AuthError::Account(crate::store::AccountError::UserExists(_)) => "username_taken",
                _ => "internal",
            };
            if code == "internal" {
                tracing::error!("a sign-in with {id:?} failed: {error}");
            } else {
                tracing::info!("a sign-in with {id:?} was refused: {error}");
            }
            let mut response = refused(&id, code);
            response.headers_mut().append(SET_COOKIE, clear);
            response
        }
    }
}

/// `https://host` (or `http://host` without the TLS proxy) as the browser addressed octod.
pub(super) fn origin(headers: &HeaderMap, client: &Client) -> Option<String> {
    let host = headers.get(HOST)?.to_str().ok()?;
    let valid = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    valid.then(|| format!("{}://{host}", if client.tls { "https" } else { "http" }))
}

/// A path of this site: `/…`, not `//…` (another host) nor with a backslash or control
/// characters, at most 1,024 bytes.
fn safe_next(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= 1024
        && !next.chars().any(|c| c == '\\' || c.is_control())
}

fn state_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    // Lax: the provider's redirect back is a cross-site top-level navigation.
    let text = format!(
        "{STATE_COOKIE}={value}; Path=/api/auth/oidc/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    );
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn state_from(headers: &HeaderMap) -> Option<String> {
    extract::cookie_value(headers, STATE_COOKIE).map(str::to_owned)
}

fn redirect_to(location: &str, cookie: Option<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::try_from(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    if let Some(cookie) = cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

/// To the sign-in page with the refusal's code.
fn refused(provider: &str, code: &str) -> Response {
    let provider: String = provider
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(32)
        .collect();
    redirect_to(
        &format!("/login?oidc_error={code}&provider={provider}"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::COOKIE;

    #[test]
    fn next_stays_on_this_site() {
        for ok in ["/", "/sessions/abc", "/account?x=1"] {
            assert!(safe_next(ok), "{ok}");
        }
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "",
            "/a\nb",
            "evil",
        ] {
            assert!(!safe_next(bad), "{bad}");
        }
    }

    #[test]
    fn the_state_cookie_is_lax_and_scoped() {
        assert_eq!(
            state_cookie("s", 600, true),
            "octo_oidc_state=s; Path=/api/auth/oidc/; HttpOnly; SameSite=Lax; Max-Age=600; Secure"
        );
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1; octo_oidc_state=xyz"));
        assert_eq!(state_from(&headers).as_deref(), Some("xyz"));
    }

    #[test]
    fn the_origin_is_the_hosts() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("octo.example:8443"));
        let tls = Client {
            address: "x".into(),
            tls: true,
        };
        assert_eq!(
            origin(&headers, &tls).as_deref(),
            Some("https://octo.example:8443")
        );
        headers.insert(HOST, HeaderValue::from_static("evil/x"));
        assert_eq!(origin(&headers, &tls), None);
    }
}
