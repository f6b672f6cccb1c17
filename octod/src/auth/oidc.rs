//! Sign-in with OpenID Connect providers: the authorization code flow with PKCE
//! (the `openidconnect` crate), for the providers of `[[auth.oidc]]`.
//!
//! 1. [`Oidc::start`] discovers the provider (`/.well-known/openid-configuration` and its keys,
//!    cached for [`DISCOVERY_TTL`]), makes a random `state`, `nonce` and PKCE verifier, keeps
//!    them in a bounded in-memory table for [`FLOW_TTL`] and returns the provider's
//!    authorization URL. The HTTP layer also puts the `state` in a host-only, `HttpOnly`,
//!    `SameSite=Lax` cookie, which binds the flow to the browser that started it.
//! 2. [`Oidc::finish`] takes the callback's `state` (which must equal the cookie's, and is
//!    removed from the table on first use: a replayed callback finds nothing), exchanges the
//!    code with the verifier (client secret by HTTP Basic), and verifies the ID token: its
//!    signature against the provider's keys (asymmetric algorithms the provider announces;
//!    never `none` or HMAC), `iss`, `aud` (this client only, or `azp` for several audiences),
//!    `exp` and `iat` with at most [`CLOCK_SKEW`] of skew, and the `nonce`.
//! 3. [`super::Auth::sign_in_oidc`] finds the account linked to the provider's `sub` (never a
//!    name or e-mail address: those the user or the provider's admin can change), or creates
//!    one on a first sign-in, and applies the provider's groups to who may sign in and to the
//!    admin role.
//!
//! The HTTP client talks TLS (rustls with the system's trusted roots), follows no redirects,
//! gives each request [`HTTP_TIMEOUT`] and reads at most [`MAX_RESPONSE_BYTES`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndSessionUrl, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, LogoutRequest, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope,
    TokenResponse as _,
};

use crate::config::OidcProvider;

/// How long discovered metadata and keys are used before they are fetched again (also
/// refetched at once when an ID token names a key that is not known).
pub const DISCOVERY_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a started sign-in may take at the provider.
pub const FLOW_TTL: Duration = Duration::from_secs(10 * 60);
/// The most sign-ins in progress; the oldest are dropped beyond it.
pub const MAX_FLOWS: usize = 10_000;
/// Tolerated difference between the provider's clock and ours.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Each request to a provider.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from a provider.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// The cookie that binds a sign-in to its browser.
pub const STATE_COOKIE: &str = "octo_oidc_state";

/// Why a sign-in with a provider failed; [`Self::code`] is what the sign-in page shows a
/// message for. Details go to the log, never to the browser.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("no provider {0:?} is configured")]
    UnknownProvider(String),
    #[error("provider {provider} is unavailable: {detail}")]
    Unavailable { provider: String, detail: String },
    #[error("the sign-in's state does not match this browser's")]
    StateMismatch,
    #[error("the sign-in expired or was already used")]
    Expired,
    #[error("the provider refused the sign-in: {0}")]
    Refused(String),
    #[error("the provider did not accept the code: {0}")]
    Exchange(String),
    #[error("the ID token is not valid: {0}")]
    InvalidIdToken(String),
    #[error("the ID token has no usable {claim:?} claim for the user name")]
    NoUsername { claim: String },
    #[error("{user} is in none of the groups allowed to sign in with {provider}")]
    NotAllowed { provider: String, user: String },
    #[error("a first sign-in with {0} needs an invite code")]
    InviteRequired(String),
}

impl OidcError {
    /// A stable code for the sign-in page.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownProvider(_) => "unknown_provider",
            Self::Unavailable { .. } => "provider_unavailable",
            Self::StateMismatch => "state_mismatch",
            Self::Expired => "expired",
            Self::Refused(_) => "refused",
            Self::Exchange(_) => "code_refused",
            Self::InvalidIdToken(_) => "invalid_id_token",
            Self::NoUsername { .. } => "no_username",
            Self::NotAllowed { .. } => "not_allowed",
            Self::InviteRequired(_) => "invite_required",
        }
    }
}

/// Who the provider says signed in, from a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub provider: String,
    pub sub: String,
    /// The configured username claim's value, if the token has it as a string.
    pub username: Option<String>,
    /// The configured groups claim's values (empty without one).
    pub groups: Vec<String>,
}

/// A finished flow: who signed in, and what the start asked for.
#[derive(Debug, Clone)]
pub struct Finished {
    pub identity: Identity,
    /// A same-origin path to go to afterwards.
    pub next: String,
    pub invite: Option<String>,
}

/// A sign-in between start and callback.
struct Flow {
    provider: String,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    redirect: RedirectUrl,
    next: String,
    invite: Option<String>,
    started: Instant,
}

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

struct Discovered {
    client: Client,
    end_session: Option<EndSessionUrl>,
    fetched: Instant,
}

struct Provider {
    config: OidcProvider,
    secret: Option<ClientSecret>,
    discovered: tokio::sync::Mutex<Option<Arc<Discovered>>>,
}

/// The configured providers and the sign-ins in progress. A cheap `Clone`.
#[derive(Clone)]
pub struct Oidc {
    inner: Arc<Inner>,
}

struct Inner {
    providers: Vec<Provider>,
    http: HttpClient,
    flows: std::sync::Mutex<HashMap<String, Flow>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field(
                "providers",
                &self
                    .inner
                    .providers
                    .iter()
                    .map(|p| &p.config.id)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The file of `/etc/octo/credentials/` (root only) that holds a provider's client secret.
/// octod.service loads that directory with `LoadCredential=octo:/etc/octo/credentials`, so
/// the file `oidc-<id>` is the credential `octo_oidc-<id>`; a credential named `oidc-<id>`
/// (an administrator's own `LoadCredential=` or `LoadCredentialEncrypted=`) is used first.
pub fn credential_name(provider: &str) -> String {
    format!("oidc-{provider}")
}

/// The credential names tried for a provider's secret, in order.
fn credential_names(provider: &str) -> [String; 2] {
    let name = credential_name(provider);
    [name.clone(), format!("octo_{name}")]
}

impl Oidc {
    /// Sets up the providers: each client secret from the configuration, else from the
    /// credential directory (`credentials`, normally `$CREDENTIALS_DIRECTORY`), else none (a
    /// public client, with PKCE). Nothing is fetched yet.
    pub fn new(
        providers: &[OidcProvider],
        credentials: Option<&std::path::Path>,
    ) -> Result<Self, std::io::Error> {
        let providers = providers
            .iter()
            .map(|config| {
                let secret = match (&config.client_secret, credentials) {
                    (Some(secret), _) => Some(secret.clone()),
                    (None, Some(dir)) => {
                        let [own, loaded] = credential_names(&config.id);
                        match read_credential(dir, &own)? {
                            Some(secret) => Some(secret),
                            None => read_credential(dir, &loaded)?,
                        }
                    }
                    (None, None) => None,
                };
                if secret.is_none() {
                    tracing::info!(
                        "OpenID Connect provider {}: no client secret (no file /etc/octo/credentials/{}), signing in as a public client",
                        config.id,
                        credential_name(&config.id)
                    );
                }
                Ok(Provider {
                    config: config.clone(),
                    secret: secret.map(ClientSecret::new),
                    discovered: tokio::sync::Mutex::new(None),
                })
            })
            .collect::<Result<_, std::io::Error>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                providers,
                http: HttpClient::new()?,
                flows: std::sync::Mutex::default(),
            }),
        })
    }

    /// The providers' ids and names, for the sign-in page.
    pub fn providers(&self) -> impl Iterator<Item = &OidcProvider> {
        self.inner.providers.iter().map(|p| &p.config)
    }

    pub fn provider(&self, id: &str) -> Option<&OidcProvider> {
        self.find(id).ok().map(|p| &p.config)
    }

    fn find(&self, id: &str) -> Result<&Provider, OidcError> {
        self.inner
            .providers
            .iter()
            .find(|p| p.config.id == id)
            .ok_or_else(|| OidcError::UnknownProvider(id.chars().take(64).collect()))
    }

    /// Starts a sign-in with `provider`: returns the URL to send the browser to and the
    /// `state` for its cookie.
    pub async fn start(
        &self,
        provider: &str,
        redirect: &str,
        next: String,
        invite: Option<String>,
    ) -> Result<(String, String), OidcError> {
        let found = self.find(provider)?;
        let discovered = self.discover(found, false).await?;
        let redirect =
            RedirectUrl::new(redirect.to_owned()).map_err(|e| OidcError::Unavailable {
                provider: provider.to_owned(),
                detail: format!("redirect URL {redirect:?}: {e}"),
            })?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = discovered.client.clone().set_redirect_uri(redirect.clone());
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in found.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let now = Instant::now();
        let mut flows = self.inner.flows.lock().expect("oidc flows");
        flows.retain(|_, flow| now.duration_since(flow.started) < FLOW_TTL);
        if flows.len() >= MAX_FLOWS
            && let Some(oldest) = flows
                .iter()
                .min_by_key(|(_, flow)| flow.started)
                .map(|(key, _)| key.clone())
        {
            flows.remove(&oldest);
        }
        flows.insert(
            state.secret().clone(),
            Flow {
                provider: provider.to_owned(),
                nonce,
                verifier,
                redirect,
                next,
                invite,
                started: now,
            },
        );
        Ok((url.to_string(), state.secret().clone()))
    }

    /// Finishes a sign-in at its callback: `state` from the query, `cookie` from the browser.
    pub async fn finish(
        &self,
        provider: &str,
        state: &str,
        cookie: Option<&str>,
        code: &str,
    ) -> Result<Finished, OidcError> {
        let found = self.find(provider)?;
        if cookie.is_none_or(|c| !constant_time_eq(c.as_bytes(), state.as_bytes())) {
            return Err(OidcError::StateMismatch);
        }
        let flow = self
            .inner
            .flows
            .lock()
            .expect("oidc flows")
            .remove(state)
            .filter(|flow| flow.started.elapsed() < FLOW_TTL && flow.provider == provider)
            .ok_or(OidcError::Expired)?;
        let discovered = self.discover(found, false).await?;
        let client = discovered
            .client
            .clone()
            .set_redirect_uri(flow.redirect.clone());
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Unavailable {
                provider: provider.to_owned(),
                detail: e.to_string(),
            })?
            .set_pkce_verifier(flow.verifier)
            .request_async(&self.inner.http)
            .await
            .map_err(|e| OidcError::Exchange(describe_token_error(&e)))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::InvalidIdToken("the provider sent no ID token".into()))?;
        let mut verified = Self::verify(&discovered.client, id_token, &flow.nonce);
        if matches!(&verified, Err(e) if e.contains("key")) {
            // The provider may have rotated its keys since they were fetched.
            let fresh = self.discover(found, true).await?;
            verified = Self::verify(&fresh.client, id_token, &flow.nonce);
        }
        let sub = verified.map_err(OidcError::InvalidIdToken)?;
        let claims = payload(&id_token.to_string()).map_err(OidcError::InvalidIdToken)?;
        let username = claims
            .get(&found.config.username_claim)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        let groups = found
            .config
            .groups_claim
            .as_ref()
            .map(|claim| groups(claims.get(claim)))
            .unwrap_or_default();
        Ok(Finished {
            identity: Identity {
                provider: provider.to_owned(),
                sub,
                username,
                groups,
            },
            next: flow.next,
            invite: flow.invite,
        })
    }

    /// Checks an ID token; the subject, or why not.
    fn verify(
        client: &Client,
        id_token: &openidconnect::core::CoreIdToken,
        nonce: &Nonce,
    ) -> Result<String, String> {
        let skew = chrono::Duration::from_std(CLOCK_SKEW).unwrap_or_default();
        let verifier = client
            .id_token_verifier()
            // Asymmetric signatures only: an HMAC "signed" with the client secret would let
            // anyone holding the secret mint tokens.
            .set_allowed_algs([
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
                CoreJwsSigningAlgorithm::RsaSsaPssSha256,
                CoreJwsSigningAlgorithm::RsaSsaPssSha384,
                CoreJwsSigningAlgorithm::RsaSsaPssSha512,
                CoreJwsSigningAlgorithm::EcdsaP256Sha256,
                CoreJwsSigningAlgorithm::EcdsaP384Sha384,
                CoreJwsSigningAlgorithm::EdDsa,
            ])
            // `exp` is checked against a clock that runs `CLOCK_SKEW` late…
            .set_time_fn(move || chrono::Utc::now() - skew)
            // …and `iat` may be at most that far ahead.
            .set_issue_time_verifier_fn(move |iat| {
                if iat > chrono::Utc::now() + skew {
                    Err(format!("issued in the future ({iat})"))
                } else {
                    Ok(())
                }
            });
        id_token
            .claims(&verifier, nonce)
            .map(|claims| claims.subject().as_str().to_owned())
            .map_err(|e| e.to_string())
    }

    /// The provider's end-session URL for a browser signing out, if it has one.
    pub async fn end_session_url(&self, provider: &str, post_logout: &str) -> Option<String> {
        let found = self.find(provider).ok()?;
        let discovered = self.discover(found, false).await.ok()?;
        let endpoint = discovered.end_session.clone()?;
        let mut request = LogoutRequest::from(endpoint)
            .set_client_id(ClientId::new(found.config.client_id.clone()));
        if let Ok(url) = PostLogoutRedirectUrl::new(post_logout.to_owned()) {
            request = request.set_post_logout_redirect_uri(url);
        }
        Some(request.http_get_url().to_string())
    }

    async fn discover(
        &self,
        provider: &Provider,
        fresh: bool,
    ) -> Result<Arc<Discovered>, OidcError> {
        let mut cached = provider.discovered.lock().await;
        if let Some(found) = cached.as_ref()
            && !fresh
            && found.fetched.elapsed() < DISCOVERY_TTL
        {
            return Ok(found.clone());
        }
        let unavailable = |detail: String| OidcError::Unavailable {
            provider: provider.config.id.clone(),
            detail,
        };
        let issuer = IssuerUrl::new(provider.config.issuer.clone())
            .map_err(|e| unavailable(e.to_string()))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.inner.http)
            .await
            .map_err(|e| unavailable(error_chain(&e)))?;
        let end_session = metadata.additional_metadata().end_session_endpoint.clone();
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(provider.config.client_id.clone()),
            provider.secret.clone(),
        );
        let found = Arc::new(Discovered {
            client,
            end_session,
            fetched: Instant::now(),
        });
        *cached = Some(found.clone());
        Ok(found)
    }
}

fn read_credential(dir: &std::path::Path, name: &str) -> Result<Option<String>, std::io::Error> {
    match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("reading the credential {name}: {e}"),
        )),
    }
}

/// The claims of a compact JWS whose signature was checked already.
fn payload(jws: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let part = jws.split('.').nth(1).ok_or("not a compact JWS")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| format!("payload: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("payload: {e}"))
}

/// A groups claim: an array of strings, or one string (some providers send one group so).
fn groups(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(serde_json::Value::as_str)
            .take(1000)
            .map(str::to_owned)
            .collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn describe_token_error<E: std::error::Error>(
    error: &openidconnect::RequestTokenError<
        E,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> String {
    match error {
        openidconnect::RequestTokenError::ServerResponse(response) => {
            let mut text = response.error().to_string();
            if let Some(description) = response.error_description() {
                text.push_str(": ");
                text.extend(description.chars().take(200));
            }
            text
        }
        other => error_chain(other),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

// ---- Accounts.

impl super::Auth {
    /// Signs in the user of a finished flow from `client`: refuses one outside the allowed
    /// groups or disabled, finds the account linked to the provider's subject or creates it
    /// (with an invite code where the provider requires one), sets the role from the admin
    /// groups, and issues a token that remembers the provider.
    pub async fn sign_in_oidc(
        &self,
        finished: Finished,
        client: &str,
    ) -> Result<(crate::store::UserRecord, super::IssuedToken), super::AuthError> {
        use crate::identity::Role;
        use crate::store::{AuditEntry, NewLinkedUser};

        let identity = finished.identity;
        let config = self
            .inner
            .oidc
            .provider(&identity.provider)
            .ok_or_else(|| OidcError::UnknownProvider(identity.provider.clone()))?
            .clone();
        let shown = identity
            .username
            .clone()
            .unwrap_or_else(|| identity.sub.clone());
        if !config.allowed_groups.is_empty()
            && !identity
                .groups
                .iter()
                .any(|g| config.allowed_groups.contains(g))
        {
            self.audit(AuditEntry::new(
                "anonymous",
                "login.refused",
                &shown,
                format!("{} is in no allowed group; from {client}", config.id),
            ))
            .await?;
            return Err(OidcError::NotAllowed {
                provider: config.name.clone(),
                user: shown,
            }
            .into());
        }
        let role = (config.groups_claim.is_some() && !config.admin_groups.is_empty()).then(|| {
            if identity
                .groups
                .iter()
                .any(|g| config.admin_groups.contains(g))
            {
                Role::Admin
            } else {
                Role::User
            }
        });
        let (provider, sub) = (identity.provider.clone(), identity.sub.clone());
        let linked = self
            .blocking(move |store| Ok(store.linked_user(&provider, &sub)?))
            .await?;
        let mut user = match linked {
            Some(user) => user,
            None => {
                if config.require_invite && finished.invite.is_none() {
                    return Err(OidcError::InviteRequired(config.name.clone()).into());
                }
                let name = username_from(identity.username.as_deref()).ok_or_else(|| {
                    OidcError::NoUsername {
                        claim: config.username_claim.clone(),
                    }
                })?;
                let new = NewLinkedUser {
                    provider: identity.provider.clone(),
                    sub: identity.sub.clone(),
                    name,
                    role: role.unwrap_or(Role::User),
                    invite: finished.invite.clone(),
                };
                self.blocking(move |store| {
                    Ok(store.create_linked_user(&new, std::time::SystemTime::now())?)
                })
                .await?
            }
        };
        if user.disabled {
            self.audit(AuditEntry::new(
                &user.name,
                "login.refused",
                &user.name,
                format!("account disabled; with {}; from {client}", config.id),
            ))
            .await?;
            return Err(super::AuthError::Disabled);
        }
        if let Some(role) = role
            && role != user.role
        {
            let actor = format!("oidc:{}", config.id);
            match self.set_role(&user.name, role, &actor).await {
                Ok(changed) => user = changed,
                Err(super::AuthError::Account(crate::store::AccountError::LastAdmin(_))) => {
                    tracing::warn!(
                        "{} left the admin groups of {} but stays admin: the last enabled admin",
                        user.name,
                        config.id
                    );
                }
                Err(e) => return Err(e),
            }
        }
        let issued = self.issue_from(&user, Some(&config.id))?;
        self.audit(AuditEntry::new(
            &user.name,
            "login.success",
            &user.name,
            format!("with {}; from {client}", config.id),
        ))
        .await?;
        Ok((user, issued))
    }
}

/// An Octo user name from a provider's claim: the part before any `@`, lower-cased, other
/// characters as `-`, starting with a letter, at most 32 characters. `None` when nothing
/// usable is left.
pub fn username_from(claim: Option<&str>) -> Option<String> {
    let local = claim?.split('@').next().unwrap_or_default();
    let mut name = String::new();
    for c in local.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
            c
        } else {
            '-'
        };
        if name.is_empty() && !c.is_ascii_lowercase() {
            continue;
        }
        if c == '-' && name.ends_with('-') {
            continue;
        }
        name.push(c);
    }
    let name: String = name.chars().take(32).collect();
    let name = name.trim_end_matches(['-', '_']).to_owned();
    super::password::check_username(&name).ok().map(|()| name)
}

// ---- The HTTP client the `openidconnect` crate calls.

/// HTTPS (and `http` to loopback issuers, which the configuration allows) with the system's
/// roots, no redirects, bounded in time and size.
#[derive(Clone)]
pub struct HttpClient {
    client: HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Request(String),
    #[error("no answer in {} s", HTTP_TIMEOUT.as_secs())]
    Timeout,
    #[error("the answer is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
}

impl HttpClient {
    pub fn new() -> Result<Self, std::io::Error> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: HyperClient::builder(TokioExecutor::new()).build(connector),
        })
    }

    async fn send(
        &self,
        request: openidconnect::HttpRequest,
    ) -> Result<openidconnect::HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let request = hyper::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| HttpError::Request(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        HttpError::TooLarge
                    } else {
                        HttpError::Request(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(hyper::Response::from_parts(parts, body.to_vec()))
        };
        tokio::time::timeout(HTTP_TIMEOUT, exchange)
            .await
            .map_err(|_| HttpError::Timeout)?
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_an_array_or_one_string() {
        let v = serde_json::json!(["a", 1, "b"]);
        assert_eq!(groups(Some(&v)), ["a", "b"]);
        assert_eq!(groups(Some(&serde_json::json!("a"))), ["a"]);
        assert!(groups(Some(&serde_json::json!({"a": 1}))).is_empty());
        assert!(groups(None).is_empty());
    }

    #[test]
    fn the_payload_of_a_compact_jws() {
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"x","groups":["g"]}"#);
        let claims = payload(&format!("e30.{body}.sig")).expect("ok");
        assert_eq!(claims["sub"], "x");
        assert!(payload("nodots").is_err());
    }

    #[test]
    fn user_names_from_claims() {
        let cases = [
            (Some("ada"), Some("ada")),
            (Some("Ada.Lovelace@corp.example"), Some("ada-lovelace")),
            (Some("9lives"), Some("lives")),
            (Some("Jürgen Groß"), Some("j-rgen-gro")),
            (Some("@corp"), None),
            (Some("---"), None),
            (None, None),
            (
                Some("a-very-long-name-that-goes-on-and-on-and-on"),
                Some("a-very-long-name-that-goes-on-an"),
            ),
        ];
        for (claim, expected) in cases {
            assert_eq!(username_from(claim).as_deref(), expected, "{claim:?}");
        }
    }

    #[test]
    fn states_compare_in_full() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
