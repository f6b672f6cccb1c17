//! Tests of [`Auth`] without HTTP, on a real redb file and key file in a temporary directory.

use std::time::Duration;

use tempfile::TempDir;

use super::*;

pub(crate) struct Fixture {
    pub dir: TempDir,
    pub auth: Auth,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with(AuthSettings {
            password_cost: PasswordCost::TEST,
            login_limits: LoginLimits::uniform(1000),
            ..AuthSettings::default()
        })
    }

    pub fn with(settings: AuthSettings) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("octod.redb")).expect("open store");
        let auth = Auth::open(dir.path(), store, settings).expect("open auth");
        Self { dir, auth }
    }

    /// Creates a user directly (as octoctl would).
    pub async fn user(&self, name: &str, role: Role) -> UserRecord {
        self.auth
            .add_user(name, &password_of(name), role, "test")
            .await
            .expect("add user")
    }

    pub async fn login(&self, name: &str) -> IssuedToken {
        self.auth
            .login(name, &password_of(name), "192.0.2.1")
            .await
            .expect("login")
            .1
    }
}

/// Every test user's password.
pub(crate) fn password_of(name: &str) -> String {
    format!("{name}-password-1")
}

#[tokio::test]
async fn bootstrap_code_once_then_registers_an_admin() {
    let f = Fixture::new();
    let code = f
        .auth
        .bootstrap_admin_invite()
        .expect("bootstrap")
        .expect("a code on first start");
    assert_eq!(code.expose().len(), 32);
    assert!(
        code.expose()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    );
    // A restart before anyone registered: the code is still usable, no second one.
    assert_eq!(f.auth.bootstrap_admin_invite().expect("again"), None);
    let invites = f.auth.invites().await.expect("invites");
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].role, Role::Admin);
    let expires = invites[0].expires_at.expect("expires");
    let ttl = expires
        .duration_since(invites[0].created_at)
        .expect("future");
    assert_eq!(ttl, Duration::from_secs(24 * 3600));

    let root = f
        .auth
        .register(code.expose(), "root", "root-password-1")
        .await
        .expect("register");
    assert_eq!(root.role, Role::Admin);
    assert_eq!(f.auth.bootstrap_admin_invite().expect("after"), None);
    assert_eq!(f.auth.invites().await.expect("invites"), []);
}

#[tokio::test]
async fn a_valid_token_names_the_user_with_the_stored_role() {
    let f = Fixture::new();
    f.user("root", Role::Admin).await;
    f.user("ada", Role::User).await;
    let issued = f.login("ada").await;
    let a = f.auth.authenticate(issued.token.expose()).expect("valid");
    assert_eq!(
        a.user,
        CurrentUser {
            name: "ada".to_owned(),
            role: Role::User
        }
    );
    assert_eq!(a.claims(), Some(&issued.claims));
    assert_eq!(
        issued.claims.exp - issued.claims.iat,
        7 * 24 * 3600,
        "default lifetime"
    );
    // A promotion counts at once, with the same token.
    f.auth
        .set_role("ada", Role::Admin, "root")
        .await
        .expect("role");
    let a = f.auth.authenticate(issued.token.expose()).expect("valid");
    assert_eq!(a.user.role, Role::Admin);
}

fn unauthenticated(r: &Result<Authenticated, AuthError>) -> bool {
    matches!(r, Err(AuthError::Unauthenticated))
}

#[tokio::test]
async fn logout_revokes_only_that_token() {
    let f = Fixture::new();
    f.user("ada", Role::User).await;
    let one = f.login("ada").await;
    let two = f.login("ada").await;
    f.auth.logout(&one.claims).await.expect("logout");
    assert!(unauthenticated(&f.auth.authenticate(one.token.expose())));
    assert!(f.auth.authenticate(two.token.expose()).is_ok());
    // Revocations survive a restart of octod (they are in redb).
    let store = f.auth.store().clone();
    let again = Auth::open(f.dir.path(), store, f.auth.settings().clone()).expect("reopen");
    assert!(unauthenticated(&again.authenticate(one.token.expose())));
    assert!(again.authenticate(two.token.expose()).is_ok());
}

#[tokio::test]
async fn password_change_ends_all_other_tokens_and_issues_a_new_one() {
    let f = Fixture::new();
    f.user("ada", Role::User).await;
    let old = f.login("ada").await;
    let (_, fresh) = f
        .auth
        .change_password("ada", &password_of("ada"), "a-new-password", "192.0.2.1")
        .await
        .expect("change");
    assert!(unauthenticated(&f.auth.authenticate(old.token.expose())));
    assert!(f.auth.authenticate(fresh.token.expose()).is_ok());
    assert!(matches!(
        f.auth.login("ada", &password_of("ada"), "x").await,
        Err(AuthError::InvalidCredentials)
    ));
    f.auth
        .login("ada", "a-new-password", "x")
        .await
        .expect("new password");
    assert!(matches!(
        f.auth
            .change_password("ada", "wrong-current", "another-password", "x")
            .await,
        Err(AuthError::WrongPassword)
    ));
}

#[tokio::test]
async fn disable_and_reset_end_tokens_enable_does_not_revive_them() {
    let f = Fixture::new();
    f.user("root", Role::Admin).await;
    f.user("ada", Role::User).await;
    let t = f.login("ada").await;
    f.auth.disable("ada", "root").await.expect("disable");
    assert!(unauthenticated(&f.auth.authenticate(t.token.expose())));
    assert!(matches!(
        f.auth.login("ada", &password_of("ada"), "x").await,
        Err(AuthError::Disabled)
    ));
    // A wrong password for a disabled account is just a wrong password.
    assert!(matches!(
        f.auth.login("ada", "not-her-password", "x").await,
        Err(AuthError::InvalidCredentials)
    ));
    f.auth.enable("ada", "root").await.expect("enable");
    assert!(unauthenticated(&f.auth.authenticate(t.token.expose())));
    let t = f.login("ada").await;
    f.auth
        .reset_password("ada", "reset-password", "root")
        .await
        .expect("reset");
    assert!(unauthenticated(&f.auth.authenticate(t.token.expose())));
    f.auth
        .login("ada", "reset-password", "x")
        .await
        .expect("reset password works");
}

#[tokio::test]
async fn unknown_user_and_wrong_password_are_one_answer_and_counted() {
    let f = Fixture::new();
    f.user("ada", Role::User).await;
    let unknown = f.auth.login("bob", "whatever-password", "x").await;
    let wrong = f.auth.login("ada", "whatever-password", "x").await;
    let invalid = f.auth.login("Not A Name", "whatever-password", "x").await;
    let huge = f.auth.login("ada", &"x".repeat(2000), "x").await;
    for r in [&unknown, &wrong, &invalid, &huge] {
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    }
    assert_eq!(f.auth.failed_logins(), 4);
    let log = f.auth.audit_log(10).await.expect("audit");
    let failures: Vec<&str> = log
        .iter()
        .filter(|(_, e)| e.action == "login.failure")
        .map(|(_, e)| e.target.as_str())
        .collect();
    assert_eq!(failures, ["ada", "(invalid name)", "ada", "bob"]);
}

#[tokio::test]
async fn login_throttle_counts_failures_and_spares_the_owner() {
    let mut limits = LoginLimits::uniform(100);
    limits.pair.burst = 3;
    limits.client.burst = 5;
    let f = Fixture::with(AuthSettings {
        password_cost: PasswordCost::TEST,
        login_limits: limits,
        ..AuthSettings::default()
    });
    f.user("ada", Role::User).await;
    // Successes cost nothing.
    for _ in 0..10 {
        f.auth
            .login("ada", &password_of("ada"), "10.0.0.1")
            .await
            .expect("sign in");
    }
    for _ in 0..3 {
        assert!(matches!(
            f.auth.login("ada", "wrong-password", "10.0.0.1").await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    // The guesser's place is throttled for this name, even with the right password...
    let r = f.auth.login("ada", &password_of("ada"), "10.0.0.1").await;
    let Err(AuthError::RateLimited { retry_after }) = r else {
        panic!("{r:?}")
    };
    assert!(retry_after > Duration::from_secs(290), "{retry_after:?}");
    assert_eq!(f.auth.rate_limited_logins(), 1);
    assert_eq!(f.auth.failed_logins(), 3);
    // ...and the owner signs in from anywhere else.
    f.auth
        .login("ada", &password_of("ada"), "10.0.0.2")
        .await
        .expect("the owner from another address");
    // The client 10.0.0.1 has 2 failures left, for other names.
    for name in ["bob", "cy"] {
        assert!(matches!(
            f.auth.login(name, "wrong-password", "10.0.0.1").await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    assert!(matches!(
        f.auth.login("dan", "wrong-password", "10.0.0.1").await,
        Err(AuthError::RateLimited { .. })
    ));
}

#[tokio::test]
async fn admin_operations_refuse_bad_input_and_unknown_users() {
    let f = Fixture::new();
    f.user("root", Role::Admin).await;
    assert!(matches!(
        f.auth
            .add_user("Bad Name", "long-enough-pw", Role::User, "t")
            .await,
        Err(AuthError::Invalid(InvalidCredential::Username))
    ));
    assert!(matches!(
        f.auth.add_user("ok", "short", Role::User, "t").await,
        Err(AuthError::Invalid(InvalidCredential::PasswordTooShort))
    ));
    assert!(matches!(
        f.auth
            .add_user("root", "long-enough-pw", Role::User, "t")
            .await,
        Err(AuthError::Account(AccountError::UserExists(_)))
    ));
    assert!(matches!(
        f.auth.disable("nobody", "t").await,
        Err(AuthError::Account(AccountError::NoSuchUser(_)))
    ));
    assert!(matches!(
        f.auth.reset_password("root", "short", "t").await,
        Err(AuthError::Invalid(InvalidCredential::PasswordTooShort))
    ));
    assert!(matches!(
        f.auth.disable("root", "root").await,
        Err(AuthError::Account(AccountError::LastAdmin(_)))
    ));
    for bad in [
        NewInvite {
            uses: Some(0),
            ..NewInvite::default()
        },
        NewInvite {
            expires_in: Some(Duration::ZERO),
            ..NewInvite::default()
        },
        NewInvite {
            expires_in: Some(MAX_INVITE_TTL + Duration::from_secs(1)),
            ..NewInvite::default()
        },
    ] {
        assert!(matches!(
            f.auth.create_invite(bad, "root").await,
            Err(AuthError::InvalidInvite(_))
        ));
    }
    let invite = f
        .auth
        .create_invite(NewInvite::default(), "root")
        .await
        .expect("invite");
    assert_eq!((invite.role, invite.uses_left), (Role::User, 1));
    f.auth
        .revoke_invite(invite.code.expose(), "root")
        .await
        .expect("revoke");
    assert!(matches!(
        f.auth.revoke_invite(invite.code.expose(), "root").await,
        Err(AuthError::Account(AccountError::NoSuchInvite))
    ));
}

#[tokio::test]
async fn the_audit_log_never_holds_a_secret() {
    let f = Fixture::new();
    let code = f
        .auth
        .bootstrap_admin_invite()
        .expect("bootstrap")
        .expect("code");
    f.auth
        .register(code.expose(), "root", "root-password-1")
        .await
        .expect("register");
    let t = f.login("root").await;
    let _ = f.auth.login("root", "wrong-password-x", "x").await;
    f.auth
        .change_password("root", "root-password-1", "root-password-2", "x")
        .await
        .expect("change");
    let invite = f
        .auth
        .create_invite(NewInvite::default(), "root")
        .await
        .expect("invite");
    f.auth.logout(&t.claims).await.expect("logout");
    let log = f.auth.audit_log(1000).await.expect("log");
    let text = format!("{log:?}");
    for secret in [
        code.expose(),
        invite.code.expose(),
        t.token.expose(),
        "root-password",
        "wrong-password",
        "argon2",
        &t.claims.jti,
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let actions: Vec<&str> = log.iter().rev().map(|(_, e)| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "invite.create",
            "user.register",
            "login.success",
            "login.failure",
            "user.password_change",
            "invite.create",
            "logout"
        ]
    );
}

fn new_token(name: &str, scopes: &[Scope]) -> NewApiToken {
    NewApiToken {
        name: name.to_owned(),
        scopes: scopes.to_vec(),
        expires_in_days: None,
    }
}

#[tokio::test]
async fn api_tokens_authenticate_with_their_scopes_until_revoked() {
    let f = Fixture::new();
    f.user("ada", Role::User).await;
    let (token, record) = f
        .auth
        .create_api_token(
            "ada",
            new_token(
                " ci ",
                &[
                    Scope::SessionsWrite,
                    Scope::SessionsRead,
                    Scope::SessionsRead,
                ],
            ),
            "ada",
        )
        .await
        .expect("create");
    assert_eq!(record.name, "ci");
    assert_eq!(record.scopes, [Scope::SessionsRead, Scope::SessionsWrite]);
    assert_eq!(
        record
            .expires_at
            .duration_since(record.created_at)
            .expect("later"),
        Duration::from_secs(30 * 24 * 3600),
        "default lifetime"
    );
    assert!(!record.secret_sha256.is_empty());
    assert!(!token.expose().contains(&record.secret_sha256));

    let a = f.auth.authenticate(token.expose()).expect("valid");
    assert_eq!(a.user.name, "ada");
    assert_eq!(a.claims(), None);
    let Credential::Api(grant) = &a.credential else {
        panic!("an API credential: {a:?}");
    };
    assert_eq!(grant.id, record.id);
    assert_eq!(grant.scopes, record.scopes);

    // A wrong secret for a real id, a malformed token: refused.
    let (id, _) = api_token::parse(token.expose()).expect("parse");
    let forged = format!("octo_{id}_{}", "0".repeat(64));
    assert!(unauthenticated(&f.auth.authenticate(&forged)));
    assert!(unauthenticated(&f.auth.authenticate("octo_x")));

    // The first use is recorded (in the background, at most once a minute).
    for _ in 0..100 {
        let listed = f.auth.api_tokens(Some("ada")).await.expect("list");
        if listed[0].last_used_at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listed = f.auth.api_tokens(Some("ada")).await.expect("list");
    assert!(listed[0].last_used_at.is_some(), "{listed:?}");

    // A disabled user's tokens fail; enabled again, they work.
    f.user("root", Role::Admin).await;
    f.auth.disable("ada", "root").await.expect("disable");
    assert!(unauthenticated(&f.auth.authenticate(token.expose())));
    f.auth.enable("ada", "root").await.expect("enable");
    assert!(f.auth.authenticate(token.expose()).is_ok());
    // A password change ends browser sessions, not API tokens.
    f.auth
        .reset_password("ada", "another-password-1", "root")
        .await
        .expect("reset");
    assert!(f.auth.authenticate(token.expose()).is_ok());

    // Another user cannot revoke it; its user can.
    f.user("bob", Role::User).await;
    let other = f.auth.revoke_api_token("bob", &record.id, "bob").await;
    assert!(matches!(
        other,
        Err(AuthError::Account(AccountError::NoSuchToken))
    ));
    f.auth
        .revoke_api_token("ada", &record.id, "ada")
        .await
        .expect("revoke");
    assert!(unauthenticated(&f.auth.authenticate(token.expose())));

    let log = f.auth.audit_log(100).await.expect("log");
    let text = format!("{log:?}");
    assert!(!text.contains(token.expose()), "the token in the audit log");
    assert!(
        !text.contains(&record.secret_sha256),
        "its hash in the audit log"
    );
    let actions: Vec<&str> = log.iter().map(|(_, e)| e.action.as_str()).collect();
    assert!(
        actions.contains(&"token.create") && actions.contains(&"token.revoke"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn api_token_requests_are_checked() {
    let f = Fixture::new();
    f.user("ada", Role::User).await;
    f.user("root", Role::Admin).await;
    let invalid = |r: Result<(Secret, ApiTokenRecord), AuthError>| {
        matches!(r, Err(AuthError::InvalidApiToken(_)))
    };
    assert!(invalid(
        f.auth
            .create_api_token("ada", new_token("", &[Scope::SessionsRead]), "ada")
            .await
    ));
    assert!(invalid(
        f.auth
            .create_api_token("ada", new_token("x", &[]), "ada")
            .await
    ));
    for days in [0, 366] {
        let new = NewApiToken {
            expires_in_days: Some(days),
            ..new_token("x", &[Scope::SessionsRead])
        };
        assert!(
            invalid(f.auth.create_api_token("ada", new, "ada").await),
            "{days}"
        );
    }
    let admin = f
        .auth
        .create_api_token("ada", new_token("x", &[Scope::Admin]), "ada")
        .await;
    assert!(
        matches!(admin, Err(AuthError::AdminScopeNotAllowed)),
        "{admin:?}"
    );
    f.auth
        .create_api_token("root", new_token("x", &[Scope::Admin]), "root")
        .await
        .expect("an admin's admin token");
    let nobody = f
        .auth
        .create_api_token("nobody", new_token("x", &[Scope::SessionsRead]), "root")
        .await;
    assert!(matches!(
        nobody,
        Err(AuthError::Account(AccountError::NoSuchUser(_)))
    ));
    assert!(
        f.auth
            .api_tokens(Some("ada"))
            .await
            .expect("list")
            .is_empty()
    );
}

/// A grant wakes on every account change and says whether its credential still holds.
#[tokio::test]
async fn grants_end_with_their_credential() {
    let f = Fixture::new();
    f.user("ada", Role::User).await;
    f.user("root", Role::Admin).await;
    let wait = |mut grant: Grant| {
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(user) = grant.next_change().await {
                seen.push(user.role);
            }
            seen
        })
    };
    let in_time = |task: tokio::task::JoinHandle<Vec<Role>>| async move {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the grant ended in time")
            .expect("task")
    };

    // A cookie: a role change is a change it survives (with the new role); logout ends it.
    let issued = f.login("ada").await;
    let (_, grant) = f
        .auth
        .authenticate_granted(issued.token.expose())
        .expect("valid");
    let task = wait(grant);
    tokio::task::yield_now().await;
    f.auth
        .set_role("ada", Role::Admin, "root")
        .await
        .expect("promote");
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.auth.logout(&issued.claims).await.expect("logout");
    assert_eq!(in_time(task).await, [Role::Admin]);

    // A disable ends a cookie's grant and a token's.
    let issued = f.login("ada").await;
    let (token, record) = f
        .auth
        .create_api_token("ada", new_token("t", &[Scope::SessionsConnect]), "ada")
        .await
        .expect("token");
    let (_, cookie_grant) = f
        .auth
        .authenticate_granted(issued.token.expose())
        .expect("ok");
    let (_, token_grant) = f.auth.authenticate_granted(token.expose()).expect("ok");
    let (cookie_task, token_task) = (wait(cookie_grant), wait(token_grant));
    f.auth.disable("ada", "root").await.expect("disable");
    assert_eq!(in_time(cookie_task).await, []);
    assert_eq!(in_time(token_task).await, []);

    // A revocation ends the token's grant.
    f.auth.enable("ada", "root").await.expect("enable");
    let (_, token_grant) = f.auth.authenticate_granted(token.expose()).expect("ok");
    let task = wait(token_grant);
    f.auth
        .revoke_api_token("ada", &record.id, "root")
        .await
        .expect("revoke");
    assert_eq!(in_time(task).await, [Role::Admin; 0]);
}
