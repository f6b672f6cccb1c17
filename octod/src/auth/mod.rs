//! Accounts and sign-in: registration with invite codes, Argon2id passwords, HS256 session
//! tokens and their revocation, the login rate limit, and the admin operations on users and
//! invite codes that both the HTTP API and `octoctl` use.
//!
//! [`Auth`] holds no HTTP; [`http`] turns it into routes and extractors.
//!
//! # Tokens and revocation
//!
//! A token is a JWT (HS256, see [`token`]) with the claims `sub`, `role`, `exp`, `iat`, `jti`
//! and `gen`. Every authenticated request checks, in one read transaction, that the user still
//! exists and is enabled, that `gen` equals the user's current token generation and that `jti`
//! is not revoked. The role that counts is the stored one, so a role change takes effect at the
//! next request. Logout revokes the token's `jti` until the token would have expired anyway;
//! disabling a user and every password change or reset bump the generation, which ends all of
//! that user's tokens at once (the changing session gets a fresh token).
//!
//! # API tokens
//!
//! A personal API token ([`api_token`]: `octo_<id>_<secret>`, only the secret's SHA-256
//! stored) stands for its user with a set of [`Scope`]s and an expiry. It authenticates like a
//! session token, as `Authorization: Bearer`, in one read transaction (the token and its user);
//! what a scope allows is the HTTP edge's table (`http::extract`).
//!
//! # Streams follow the account
//!
//! Every change that can end a credential or narrow what it allows (logout, a password change
//! or reset, a disable, a role change, a token's revocation) moves one counter ([`Auth`]'s
//! `changes`). A long-lived request holds a [`Grant`]: it waits for that counter (or its
//! credential's expiry), checks its credential again and tells the proxy, which closes the
//! stream or WebSocket when the credential no longer holds or no longer reaches the session.
//!
//! # Login
//!
//! An unknown user name and a wrong password get the same answer, and take comparable time:
//! an unknown name is verified against a dummy hash made with the configured cost. A disabled
//! account is only reported as such after the right password. Attempts are rate-limited per
//! client address and per user name ([`limit`]). At most one Argon2 computation per CPU runs at
//! a time, so a burst of logins queues instead of exhausting memory.

pub mod api_token;
pub mod http;
pub mod limit;
pub mod oidc;
pub mod password;
pub mod token;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;

use crate::identity::{CurrentUser, Role, Scope};
use crate::store::{
    AccountError, ApiTokenRecord, ApiTokenStatus, AuditEntry, Invite, Secret, Store, UserRecord,
};

pub use limit::{Bucket, LoginLimits};
pub use password::{InvalidCredential, PasswordCost};
pub use token::Claims;

/// The state the auth routes and extractors need: a cheap `Clone`. The lead's application
/// state implements `FromRef` for it.
pub type AuthState = Auth;

/// How auth behaves; every field has a sensible default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// Lifetime of a session token (and its cookie). Default 7 days.
    pub token_ttl: Duration,
    /// Always mark the cookie `Secure`. Without it, the cookie is `Secure` when the request
    /// came through a TLS proxy (`X-Forwarded-Proto: https`, which Caddy sets).
    pub secure_cookies: bool,
    pub login_limits: LoginLimits,
    pub password_cost: PasswordCost,
    /// Expiry of an invite code made without one. Default 7 days.
    pub invite_ttl: Duration,
    /// Expiry of the admin code logged on first start. Default 24 hours; a restart without an
    /// admin logs a new one once the old one expired.
    pub bootstrap_invite_ttl: Duration,
    /// Whether users may sign in and register with a password (`auth.local_passwords`).
    pub local_passwords: bool,
    /// The OpenID Connect providers (`[[auth.oidc]]`).
    pub oidc: Vec<crate::config::OidcProvider>,
    /// Where the providers' client secrets are (`$CREDENTIALS_DIRECTORY`).
    pub credentials_dir: Option<std::path::PathBuf>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(7 * 24 * 3600),
            secure_cookies: false,
            login_limits: LoginLimits::default(),
            password_cost: PasswordCost::default(),
            invite_ttl: Duration::from_secs(7 * 24 * 3600),
            bootstrap_invite_ttl: Duration::from_secs(24 * 3600),
            local_passwords: true,
            oidc: Vec::new(),
            credentials_dir: None,
        }
    }
}

/// The most uses an invite code may have, and the longest expiry.
pub const MAX_INVITE_USES: u32 = 10_000;
pub const MAX_INVITE_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// What failed. [`http`] maps each to a status and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Invalid(#[from] InvalidCredential),
    /// Unknown user or wrong password: one answer for both.
    #[error("wrong user name or password")]
    InvalidCredentials,
    /// The right password for a disabled account.
    #[error("this account is disabled")]
    Disabled,
    /// The current password given to a password change was wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("too many attempts; retry in {} s", limit::retry_after_secs(*.retry_after))]
    RateLimited { retry_after: Duration },
    /// No valid token, or one that was revoked, superseded or belongs to a disabled user.
    #[error("not signed in")]
    Unauthenticated,
    /// A new API token's name, scopes or expiry.
    #[error("{0}")]
    InvalidApiToken(String),
    /// The `admin` scope for a user without the admin role.
    #[error("only admins may create tokens with the admin scope")]
    AdminScopeNotAllowed,
    #[error("invalid invite code settings: {0}")]
    InvalidInvite(String),
    /// `auth.local_passwords = false`.
    #[error("signing in with a password is turned off here; sign in with {0}")]
    PasswordsOff(String),
    /// A password change for an account that signs in with a provider.
    #[error("this account signs in with {0} and has no password here")]
    ExternalAccount(String),
    #[error(transparent)]
    Oidc(#[from] oidc::OidcError),
    #[error("setting up sign-in with OpenID Connect: {0}")]
    OidcSetup(std::io::Error),
    #[error(transparent)]
    Hash(#[from] password::HashError),
    #[error(transparent)]
    Key(#[from] token::KeyError),
    #[error("signing a token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error("reading random bytes: {0}")]
    Random(#[from] getrandom::Error),
    #[error("a blocking auth task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A token just issued, with what the cookie needs.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: Secret,
    pub claims: Claims,
}

/// The user and credential of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub user: CurrentUser,
    pub credential: Credential,
}

impl Authenticated {
    /// The claims of a browser session's token; `None` for an API token.
    pub fn claims(&self) -> Option<&Claims> {
        match &self.credential {
            Credential::Session(claims) => Some(claims),
            Credential::Api(_) => None,
        }
    }
}

/// What a request was authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A session token (the browser's cookie, or the same JWT as a bearer token): all the
    /// user may do.
    Session(Claims),
    /// A personal API token: only its scopes.
    Api(ApiGrant),
}

impl Credential {
    fn expires_at(&self) -> SystemTime {
        match self {
            Self::Session(claims) => claims.expires_at(),
            Self::Api(grant) => grant.expires_at,
        }
    }
}

/// The part of an API token a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiGrant {
    pub id: String,
    pub scopes: Vec<Scope>,
    pub expires_at: SystemTime,
}

/// A new API token's request (the wire's `CreateApiToken`, checked by
/// [`Auth::create_api_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiToken {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Default [`API_TOKEN_DEFAULT_DAYS`].
    pub expires_in_days: Option<u32>,
}

/// An API token's lifetime without one asked for, and the longest.
pub const API_TOKEN_DEFAULT_DAYS: u32 = 30;
pub const API_TOKEN_MAX_DAYS: u32 = 365;

/// A token's last use is written at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// What a long-lived request (an event stream, a WebSocket) holds to learn that its
/// credential ended: see [`Grant::next_change`].
#[derive(Clone)]
pub struct Grant {
    auth: Auth,
    credential: Credential,
    changes: tokio::sync::watch::Receiver<u64>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant").finish_non_exhaustive()
    }
}

impl Grant {
    /// Waits for the next change to any account (or for the credential's expiry), then checks
    /// the credential again: `None` when it no longer holds (signed out, revoked, expired, the
    /// password changed, the user disabled or gone), else the user as they are now (the role
    /// may have changed; the caller checks what the user reaches).
    pub async fn next_change(&mut self) -> Option<CurrentUser> {
        let left = self
            .credential
            .expires_at()
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .min(Duration::from_secs(24 * 3600));
        tokio::select! {
            changed = self.changes.changed() => {
                if changed.is_err() {
                    // Auth is gone: octod is shutting down.
                    return None;
                }
            }
            () = tokio::time::sleep(left) => {}
        }
        match self.auth.recheck(&self.credential) {
            Ok(user) => Some(user),
            Err(error) => {
                tracing::debug!("a stream's credential ended: {error}");
                None
            }
        }
    }
}

/// A request for a new invite code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewInvite {
    pub role: Role,
    /// Default 1.
    pub uses: Option<u32>,
    /// Default [`AuthSettings::invite_ttl`].
    pub expires_in: Option<Duration>,
}

impl Default for NewInvite {
    fn default() -> Self {
        Self {
            role: Role::User,
            uses: None,
            expires_in: None,
        }
    }
}

/// Accounts and sign-in; see the module documentation. A cheap `Clone`.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    keys: token::Keys,
    settings: AuthSettings,
    hasher: password::Hasher,
    /// What an unknown user's password is checked against.
    dummy_hash: Secret,
    limiter: limit::LoginLimiter,
    /// One Argon2 computation per CPU at a time.
    hash_slots: Semaphore,
    failed_logins: AtomicU64,
    rate_limited_logins: AtomicU64,
    /// Moved by every change that may end a credential; see the module documentation.
    changes: tokio::sync::watch::Sender<u64>,
    /// API tokens whose last use is being written.
    touching: std::sync::Mutex<std::collections::HashSet<String>>,
    oidc: oidc::Oidc,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("store", &self.inner.store)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Loads or creates the token signing key in `state_dir` and sets up sign-in over `store`.
    pub fn open(
        state_dir: impl AsRef<Path>,
        store: Store,
        settings: AuthSettings,
    ) -> Result<Self, AuthError> {
        let keys = token::Keys::load_or_create(state_dir.as_ref())?;
        let hasher = password::Hasher::new(settings.password_cost)?;
        let dummy_hash = hasher.hash(&token::new_jti()?)?;
        let slots = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let oidc = oidc::Oidc::new(&settings.oidc, settings.credentials_dir.as_deref())
            .map_err(AuthError::OidcSetup)?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                keys,
                hasher,
                dummy_hash,
                limiter: limit::LoginLimiter::new(settings.login_limits),
                hash_slots: Semaphore::new(slots),
                settings,
                failed_logins: AtomicU64::new(0),
                rate_limited_logins: AtomicU64::new(0),
                changes: tokio::sync::watch::Sender::new(0),
                touching: std::sync::Mutex::default(),
                oidc,
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    /// The OpenID Connect providers and the sign-ins in progress.
    pub fn oidc(&self) -> &oidc::Oidc {
        &self.inner.oidc
    }

    /// Refuses a password sign-in or registration when `auth.local_passwords` is off.
    fn check_passwords_on(&self) -> Result<(), AuthError> {
        if self.inner.settings.local_passwords {
            return Ok(());
        }
        let names: Vec<&str> = self
            .inner
            .oidc
            .providers()
            .map(|p| p.name.as_str())
            .collect();
        Err(AuthError::PasswordsOff(names.join(" or ")))
    }

    /// Logins refused for a wrong user name or password or a disabled account, since start
    /// (the `/metrics` counter).
    pub fn failed_logins(&self) -> u64 {
        self.inner.failed_logins.load(Ordering::Relaxed)
    }

    /// Logins refused by the rate limit, since start.
    pub fn rate_limited_logins(&self) -> u64 {
        self.inner.rate_limited_logins.load(Ordering::Relaxed)
    }

    /// On a start without an enabled admin and without a usable admin invite code: creates a
    /// single-use admin code (expiring after [`AuthSettings::bootstrap_invite_ttl`]) and
    /// returns it for octod to log, once. Otherwise `None`. Synchronous: one small write
    /// transaction at start.
    pub fn bootstrap_admin_invite(&self) -> Result<Option<Secret>, AuthError> {
        let now = SystemTime::now();
        let invite = Invite {
            code: new_invite_code()?,
            role: Role::Admin,
            uses_left: 1,
            expires_at: Some(now + self.inner.settings.bootstrap_invite_ttl),
            created_by: "octod (first start)".to_owned(),
            created_at: now,
        };
        let created = self.inner.store.create_bootstrap_invite(&invite, now)?;
        Ok(created.then_some(invite.code))
    }

    /// Registers a user with an invite code; the user gets the code's role.
    pub async fn register(
        &self,
        invite_code: &str,
        username: &str,
        password: &str,
    ) -> Result<UserRecord, AuthError> {
        self.check_passwords_on()?;
        password::check_username(username)?;
        password::check_password(password)?;
        // Cheap checks first: a bad code or a taken name costs no hashing. The transaction
        // below checks both again.
        let code = invite_code.to_owned();
        let name = username.to_owned();
        self.blocking(move |store| {
            let now = SystemTime::now();
            if !store
                .invites()?
                .iter()
                .any(|i| i.code.expose() == code && i.is_usable(now))
            {
                return Err(AccountError::InvalidInvite.into());
            }
            if store.user(&name)?.is_some() {
                return Err(AccountError::UserExists(name).into());
            }
            Ok(())
        })
        .await?;
        let hash = self.hash(password).await?;
        let code = invite_code.to_owned();
        let user = UserRecord::new(username, Role::User, hash);
        self.blocking(move |store| {
            Ok(store.register_with_invite(&code, user, SystemTime::now())?)
        })
        .await
    }

    /// Checks a user name and password from `client` (an address, for the rate limit and the
    /// audit log) and issues a token.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: &str,
    ) -> Result<(UserRecord, IssuedToken), AuthError> {
        self.check_passwords_on()?;
        // The limiter key is bounded whatever the client sends.
        let limit_key: String = username.chars().take(64).collect();
        let reservation = match self
            .inner
            .limiter
            .attempt(client, &limit_key, Instant::now())
        {
            Ok(reservation) => reservation,
            Err(retry_after) => {
                self.inner
                    .rate_limited_logins
                    .fetch_add(1, Ordering::Relaxed);
                return Err(AuthError::RateLimited { retry_after });
            }
        };
        let valid_name = password::check_username(username).is_ok();
        let user = if valid_name {
            let name = username.to_owned();
            self.blocking(move |store| Ok(store.user(&name)?)).await?
        } else {
            None
        };
        // No stored password is longer; skipping the hash reveals nothing about the user.
        let matches = password.len() <= password::MAX_PASSWORD_BYTES && {
            // An account without a password (one that signs in with a provider) is checked
            // against the dummy hash, like an unknown name, and never matches.
            let hash = user
                .as_ref()
                .map(|u| u.password_hash.clone())
                .filter(|h| !h.expose().is_empty())
                .unwrap_or_else(|| self.inner.dummy_hash.clone());
            self.verify(password, hash).await?
                && user
                    .as_ref()
                    .is_some_and(|u| !u.password_hash.expose().is_empty())
        };
        let target = if valid_name {
            username
        } else {
            "(invalid name)"
        };
        match user {
            Some(user) if matches && !user.disabled => {
                self.inner.limiter.succeeded(reservation);
                let issued = self.issue(&user)?;
                self.audit(AuditEntry::new(
                    &user.name,
                    "login.success",
                    &user.name,
                    format!("from {client}"),
                ))
                .await?;
                Ok((user, issued))
            }
            Some(user) if matches => {
                self.inner.failed_logins.fetch_add(1, Ordering::Relaxed);
                self.audit(AuditEntry::new(
                    &user.name,
                    "login.refused",
                    &user.name,
                    format!("account disabled; from {client}"),
                ))
                .await?;
                Err(AuthError::Disabled)
            }
            _ => {
                self.inner.failed_logins.fetch_add(1, Ordering::Relaxed);
                self.audit(AuditEntry::new(
                    "anonymous",
                    "login.failure",
                    target,
                    format!("from {client}"),
                ))
                .await?;
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    /// A new token for `user` in their current generation.
    pub fn issue(&self, user: &UserRecord) -> Result<IssuedToken, AuthError> {
        self.issue_from(user, None)
    }

    /// A new token for `user`, who signed in with the provider `idp` if given.
    fn issue_from(&self, user: &UserRecord, idp: Option<&str>) -> Result<IssuedToken, AuthError> {
        let now = SystemTime::now();
        let claims = Claims {
            sub: user.name.clone(),
            role: user.role,
            exp: token::unix_seconds(now + self.inner.settings.token_ttl),
            iat: token::unix_seconds(now),
            jti: token::new_jti()?,
            generation: user.token_generation,
            idp: idp.map(str::to_owned),
        };
        Ok(IssuedToken {
            token: self.inner.keys.sign(&claims)?,
            claims,
        })
    }

    /// Checks a token: a session token's signature (HS256 only), expiry, revocation, the
    /// user's generation and that the user exists and is enabled; an API token's hash,
    /// expiry and user. Any failure is [`AuthError::Unauthenticated`] (the reason is logged
    /// at debug level), except a store failure.
    ///
    /// Synchronous and meant to be called on the runtime: one read transaction, which never
    /// waits for writers.
    pub fn authenticate(&self, token: &str) -> Result<Authenticated, AuthError> {
        if api_token::looks_like(token) {
            return self.authenticate_api(token);
        }
        let claims = self.inner.keys.verify(token).map_err(|e| {
            tracing::debug!("refused a token: {e}");
            AuthError::Unauthenticated
        })?;
        let user = self.check_session(&claims)?;
        Ok(Authenticated {
            user,
            credential: Credential::Session(claims),
        })
    }

    /// [`Self::authenticate`], and the [`Grant`] a long-lived request holds (subscribed before
    /// the check, so no change between the two is missed).
    pub fn authenticate_granted(&self, token: &str) -> Result<(Authenticated, Grant), AuthError> {
        let changes = self.inner.changes.subscribe();
        let authenticated = self.authenticate(token)?;
        let grant = Grant {
            auth: self.clone(),
            credential: authenticated.credential.clone(),
            changes,
        };
        Ok((authenticated, grant))
    }

    /// [`Self::recheck`], and the [`Grant`] of a long-lived request made with it (subscribed
    /// before the check, so no change between the two is missed).
    pub fn recheck_granted(
        &self,
        credential: Credential,
    ) -> Result<(CurrentUser, Grant), AuthError> {
        let changes = self.inner.changes.subscribe();
        let user = self.recheck(&credential)?;
        Ok((
            user,
            Grant {
                auth: self.clone(),
                credential,
                changes,
            },
        ))
    }

    /// Checks an already verified credential again against the store and the clock.
    pub fn recheck(&self, credential: &Credential) -> Result<CurrentUser, AuthError> {
        match credential {
            Credential::Session(claims) => {
                if claims.expires_at() <= SystemTime::now() {
                    return Err(AuthError::Unauthenticated);
                }
                self.check_session(claims)
            }
            Credential::Api(grant) => {
                let status = self.inner.store.api_token_status(&grant.id)?;
                Self::check_api(status, None).map(|(user, _)| user)
            }
        }
    }

    fn check_session(&self, claims: &Claims) -> Result<CurrentUser, AuthError> {
        let status = self.inner.store.token_status(&claims.sub, &claims.jti)?;
        let refuse = |why: &str| {
            tracing::debug!("refused a token of {}: {why}", claims.sub);
            AuthError::Unauthenticated
        };
        let Some(user) = status.user else {
            return Err(refuse("no such user"));
        };
        if status.revoked {
            return Err(refuse("revoked"));
        }
        if user.disabled {
            return Err(refuse("user disabled"));
        }
        if user.token_generation != claims.generation {
            return Err(refuse("superseded by a password change or disable"));
        }
        Ok(CurrentUser {
            name: user.name,
            role: user.role,
        })
    }

    fn authenticate_api(&self, token: &str) -> Result<Authenticated, AuthError> {
        let Some((id, secret)) = api_token::parse(token) else {
            tracing::debug!("refused a malformed API token");
            return Err(AuthError::Unauthenticated);
        };
        let status = self.inner.store.api_token_status(id)?;
        let (user, record) = Self::check_api(status, Some(secret))?;
        let now = SystemTime::now();
        if record.last_used_at.is_none_or(|t| t + TOUCH_EVERY <= now) {
            self.touch(&record.id, now);
        }
        Ok(Authenticated {
            user,
            credential: Credential::Api(ApiGrant {
                id: record.id,
                scopes: record.scopes,
                expires_at: record.expires_at,
            }),
        })
    }

    /// An API token's record and user must exist, the token be unexpired, the user enabled
    /// and, when `secret` is given, the secret's hash match.
    fn check_api(
        status: ApiTokenStatus,
        secret: Option<&str>,
    ) -> Result<(CurrentUser, ApiTokenRecord), AuthError> {
        let refuse = |why: &str| {
            tracing::debug!("refused an API token: {why}");
            AuthError::Unauthenticated
        };
        let Some(record) = status.token else {
            return Err(refuse("no such token"));
        };
        if secret.is_some_and(|s| {
            !api_token::same_hash(&api_token::secret_sha256(s), &record.secret_sha256)
        }) {
            return Err(refuse("wrong secret"));
        }
        if record.is_expired(SystemTime::now()) {
            return Err(refuse("expired"));
        }
        let Some(user) = status.user.filter(|u| !u.disabled) else {
            return Err(refuse("its user is disabled or gone"));
        };
        Ok((
            CurrentUser {
                name: user.name,
                role: user.role,
            },
            record,
        ))
    }

    /// Writes a token's last use in the background, once at a time per token.
    fn touch(&self, id: &str, at: SystemTime) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut touching = self
                .inner
                .touching
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if touching.len() > 10_000 || !touching.insert(id.to_owned()) {
                return;
            }
        }
        let inner = Arc::clone(&self.inner);
        let id = id.to_owned();
        handle.spawn_blocking(move || {
            if let Err(error) = inner.store.touch_api_token(&id, at) {
                tracing::warn!("recording an API token's use: {error}");
            }
            inner
                .touching
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&id);
        });
    }

    /// Creates an API token for `user`: returns the token (to be shown once) and its record.
    pub async fn create_api_token(
        &self,
        user: &str,
        new: NewApiToken,
        actor: &str,
    ) -> Result<(Secret, ApiTokenRecord), AuthError> {
        let name = api_token::check_name(&new.name).map_err(AuthError::InvalidApiToken)?;
        let mut scopes = new.scopes;
        scopes.sort_unstable();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(AuthError::InvalidApiToken(
                "a token needs at least one scope".to_owned(),
            ));
        }
        let days = new.expires_in_days.unwrap_or(API_TOKEN_DEFAULT_DAYS);
        if !(1..=API_TOKEN_MAX_DAYS).contains(&days) {
            return Err(AuthError::InvalidApiToken(format!(
                "a token expires in 1 to {API_TOKEN_MAX_DAYS} days"
            )));
        }
        let (id, token, secret_sha256) = api_token::generate()?;
        let now = SystemTime::now();
        let record = ApiTokenRecord {
            id,
            user: user.to_owned(),
            name,
            scopes,
            secret_sha256,
            created_at: now,
            expires_at: now + Duration::from_secs(u64::from(days) * 24 * 3600),
            last_used_at: None,
        };
        let detail = format!(
            "token {} \"{}\", scopes {}, expires in {days} day(s)",
            record.id,
            record.name,
            record
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let audit = AuditEntry::new(actor, "token.create", user, detail);
        let stored = record.clone();
        let owner = user.to_owned();
        self.blocking(move |store| {
            let holder = store
                .user(&owner)?
                .ok_or_else(|| AccountError::NoSuchUser(owner.clone()))?;
            if stored.scopes.contains(&Scope::Admin) && holder.role != Role::Admin {
                return Err(AuthError::AdminScopeNotAllowed);
            }
            Ok(store.create_api_token(&stored, &audit)?)
        })
        .await?;
        Ok((token, record))
    }

    /// The API tokens of `user` (of all users with `None`), newest first.
    pub async fn api_tokens(&self, user: Option<&str>) -> Result<Vec<ApiTokenRecord>, AuthError> {
        let user = user.map(str::to_owned);
        self.blocking(move |store| Ok(store.api_tokens(user.as_deref())?))
            .await
    }

    /// Revokes token `id` of `user`: it fails from the next request on, and the streams
    /// opened with it close.
    pub async fn revoke_api_token(
        &self,
        user: &str,
        id: &str,
        actor: &str,
    ) -> Result<ApiTokenRecord, AuthError> {
        let audit = AuditEntry::new(actor, "token.revoke", user, format!("token {id}"));
        let (user, id) = (user.to_owned(), id.to_owned());
        let record = self
            .blocking(move |store| Ok(store.delete_api_token(&user, &id, &audit)?))
            .await?;
        self.account_changed();
        Ok(record)
    }

    /// Tells every [`Grant`] to check its credential again.
    fn account_changed(&self) {
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Revokes the token with these claims.
    pub async fn logout(&self, claims: &Claims) -> Result<(), AuthError> {
        let claims = claims.clone();
        self.blocking(move |store| {
            let audit = AuditEntry::new(&claims.sub, "logout", &claims.sub, "");
            Ok(store.revoke_token(&claims.jti, claims.expires_at(), Some(&audit))?)
        })
        .await?;
        self.account_changed();
        Ok(())
    }

    /// A user changes their own password. Rate-limited like a login (a stolen session must not
    /// become a password oracle). Ends all of the user's tokens and returns a fresh one.
    pub async fn change_password(
        &self,
        name: &str,
        current: &str,
        new: &str,
        client: &str,
    ) -> Result<(UserRecord, IssuedToken), AuthError> {
        password::check_password(new)?;
        let owned = name.to_owned();
        if let Some(provider) = self
            .blocking(move |store| Ok(store.user(&owned)?))
            .await?
            .and_then(|u| u.identity_provider)
        {
            let shown = self
                .inner
                .oidc
                .provider(&provider)
                .map_or(provider.clone(), |p| p.name.clone());
            return Err(AuthError::ExternalAccount(shown));
        }
        let reservation = self
            .inner
            .limiter
            .attempt(client, name, Instant::now())
            .map_err(|retry_after| AuthError::RateLimited { retry_after })?;
        let owned = name.to_owned();
        let user = self
            .blocking(move |store| {
                store
                    .user(&owned)?
                    .ok_or_else(|| AccountError::NoSuchUser(owned).into())
            })
            .await?;
        let ok = current.len() <= password::MAX_PASSWORD_BYTES
            && self.verify(current, user.password_hash.clone()).await?;
        if !ok {
            self.audit(AuditEntry::new(
                name,
                "user.password_change_refused",
                name,
                format!("wrong current password; from {client}"),
            ))
            .await?;
            return Err(AuthError::WrongPassword);
        }
        self.inner.limiter.succeeded(reservation);
        let user = self
            .set_password(
                name,
                new,
                AuditEntry::new(name, "user.password_change", name, ""),
            )
            .await?;
        let issued = self.issue(&user)?;
        Ok((user, issued))
    }

    // ---- Admin operations: the HTTP admin routes and octoctl call these. `actor` names who
    // ---- asks, for the audit log: an admin's user name, or e.g. `octoctl (uid 0)`.

    /// Creates a user directly, without an invite code.
    pub async fn add_user(
        &self,
        name: &str,
        password: &str,
        role: Role,
        actor: &str,
    ) -> Result<UserRecord, AuthError> {
        password::check_username(name)?;
        password::check_password(password)?;
        let hash = self.hash(password).await?;
        let user = UserRecord::new(name, role, hash);
        let actor = actor.to_owned();
        self.blocking(move |store| Ok(store.add_user(user, &actor)?))
            .await
    }

    pub async fn users(&self) -> Result<Vec<UserRecord>, AuthError> {
        self.blocking(|store| Ok(store.users()?)).await
    }

    /// Changes a user's role; refused for the last enabled admin.
    pub async fn set_role(
        &self,
        name: &str,
        role: Role,
        actor: &str,
    ) -> Result<UserRecord, AuthError> {
        let detail = match role {
            Role::Admin => "admin",
            Role::User => "user",
        };
        self.modify(
            name,
            AuditEntry::new(actor, "user.role", name, detail),
            move |u| {
                u.role = role;
            },
        )
        .await
    }

    /// Disables a user and ends all their tokens; refused for the last enabled admin.
    pub async fn disable(&self, name: &str, actor: &str) -> Result<UserRecord, AuthError> {
        self.modify(
            name,
            AuditEntry::new(actor, "user.disable", name, ""),
            |u| {
                if !u.disabled {
                    u.disabled = true;
                    u.token_generation += 1;
                }
            },
        )
        .await
    }

    pub async fn enable(&self, name: &str, actor: &str) -> Result<UserRecord, AuthError> {
        self.modify(name, AuditEntry::new(actor, "user.enable", name, ""), |u| {
            u.disabled = false;
        })
        .await
    }

    /// Sets a user's password and ends all their tokens.
    pub async fn reset_password(
        &self,
        name: &str,
        password: &str,
        actor: &str,
    ) -> Result<UserRecord, AuthError> {
        password::check_password(password)?;
        self.set_password(
            name,
            password,
            AuditEntry::new(actor, "user.password_reset", name, ""),
        )
        .await
    }

    /// Mints an invite code.
    pub async fn create_invite(&self, new: NewInvite, actor: &str) -> Result<Invite, AuthError> {
        let uses = new.uses.unwrap_or(1);
        if !(1..=MAX_INVITE_USES).contains(&uses) {
            return Err(AuthError::InvalidInvite(format!(
                "uses must be 1 to {MAX_INVITE_USES}"
            )));
        }
        let ttl = new.expires_in.unwrap_or(self.inner.settings.invite_ttl);
        if ttl.is_zero() || ttl > MAX_INVITE_TTL {
            return Err(AuthError::InvalidInvite(format!(
                "the expiry must be 1 to {} seconds",
                MAX_INVITE_TTL.as_secs()
            )));
        }
        let now = SystemTime::now();
        let invite = Invite {
            code: new_invite_code()?,
            role: new.role,
            uses_left: uses,
            expires_at: Some(now + ttl),
            created_by: actor.to_owned(),
            created_at: now,
        };
        let stored = invite.clone();
        self.blocking(move |store| Ok(store.create_invite(&stored)?))
            .await?;
        Ok(invite)
    }

    pub async fn invites(&self) -> Result<Vec<Invite>, AuthError> {
        self.blocking(|store| Ok(store.invites()?)).await
    }

    /// Deletes an invite code.
    pub async fn revoke_invite(&self, code: &str, actor: &str) -> Result<(), AuthError> {
        let (code, actor) = (code.to_owned(), actor.to_owned());
        self.blocking(move |store| {
            store.delete_invite(&code, &actor)?;
            Ok(())
        })
        .await
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit_log(&self, limit: usize) -> Result<Vec<(u64, AuditEntry)>, AuthError> {
        self.blocking(move |store| Ok(store.audit_log(limit)?))
            .await
    }

    async fn set_password(
        &self,
        name: &str,
        password: &str,
        audit: AuditEntry,
    ) -> Result<UserRecord, AuthError> {
        let hash = self.hash(password).await?;
        self.modify(name, audit, move |u| {
            u.password_hash = hash;
            u.token_generation += 1;
        })
        .await
    }

    async fn modify(
        &self,
        name: &str,
        audit: AuditEntry,
        change: impl FnOnce(&mut UserRecord) + Send + 'static,
    ) -> Result<UserRecord, AuthError> {
        let name = name.to_owned();
        let user = self
            .blocking(move |store| {
                Ok(store.modify_user(&name, &audit, |u| {
                    change(u);
                    Ok(())
                })?)
            })
            .await?;
        self.account_changed();
        Ok(user)
    }

    async fn audit(&self, entry: AuditEntry) -> Result<(), AuthError> {
        self.blocking(move |store| {
            store.append_audit(&entry)?;
            Ok(())
        })
        .await
    }

    async fn hash(&self, password: &str) -> Result<Secret, AuthError> {
        let _slot = self.hash_slot().await;
        let inner = self.inner.clone();
        let password = password.to_owned();
        Ok(tokio::task::spawn_blocking(move || inner.hasher.hash(&password)).await??)
    }

    async fn verify(&self, password: &str, hash: Secret) -> Result<bool, AuthError> {
        let _slot = self.hash_slot().await;
        let inner = self.inner.clone();
        let password = password.to_owned();
        Ok(tokio::task::spawn_blocking(move || inner.hasher.verify(&password, &hash)).await?)
    }

    async fn hash_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed; `None` would only mean running unthrottled.
        self.inner.hash_slots.acquire().await.ok()
    }

    /// Runs store work off the runtime (a write transaction waits for an fsync).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || f(&store)).await?
    }
}

/// A fresh invite code: 20 random bytes as 32 characters of lower-case base32 (`a-z2-7`),
/// easy to paste and to read out, 160 bits.
fn new_invite_code() -> Result<Secret, getrandom::Error> {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes)?;
    let mut code = String::with_capacity(32);
    for chunk in bytes.chunks(5) {
        let n = chunk.iter().fold(0u64, |n, &b| n << 8 | u64::from(b));
        for i in (0..8).rev() {
            let index = u8::try_from((n >> (5 * i)) & 31).unwrap_or(0);
            code.push(char::from(ALPHABET[usize::from(index)]));
        }
    }
    Ok(Secret::new(code))
}

#[cfg(test)]
pub(crate) mod tests;
