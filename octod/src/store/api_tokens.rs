//! Personal API tokens in the state database.
//!
//! | table        | key                  | value                                   |
//! | ------------ | -------------------- | --------------------------------------- |
//! | `api_tokens` | token id (`&str`)    | versioned [`ApiTokenRecord`] (no id)    |
//!
//! A token is `octo_<id>_<secret>`; only the SHA-256 of its secret is stored (the secret is 256
//! random bits, so a fast hash is enough: nothing can be guessed from it, and checking one
//! costs no more than checking a cookie). The table is additive: an older octod never opens
//! it, a newer one creates it on open. Creating and deleting a token write their audit entry
//! in the same transaction; marking one used writes none.

use std::time::SystemTime;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::accounts::{USERS, append_audit, get_user};
use super::{AccountError, AuditEntry, DecodeError, Store, StoreError, UserRecord, codec};
use crate::identity::Scope;

const API_TOKEN_VERSION: u8 = 1;

pub(super) const API_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_tokens");

/// The most tokens one user may hold (expired ones count until they are revoked or pruned).
pub const MAX_API_TOKENS_PER_USER: usize = 50;

/// A token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    pub id: String,
    pub user: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Lower-case hex SHA-256 of the token's secret part.
    pub secret_sha256: String,
    pub created_at: SystemTime,
    pub expires_at: SystemTime,
    pub last_used_at: Option<SystemTime>,
}

impl ApiTokenRecord {
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at <= now
    }
}

/// The v1 JSON of a token.
#[derive(Serialize, Deserialize)]
struct StoredApiToken {
    user: String,
    name: String,
    scopes: Vec<Scope>,
    secret_sha256: String,
    #[serde(with = "codec::unix_ms")]
    created_at: SystemTime,
    #[serde(with = "codec::unix_ms")]
    expires_at: SystemTime,
    last_used_at: Option<u64>,
}

/// What [`Store::api_token_status`] found for a token id, in one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenStatus {
    pub token: Option<ApiTokenRecord>,
    /// The token's user, when there is a token.
    pub user: Option<UserRecord>,
}

/// Expired tokens are dropped this long after their expiry, when their user creates another.
const PRUNE_AFTER: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

impl Store {
    /// Stores a new token with its audit entry: its user must exist and hold fewer than
    /// [`MAX_API_TOKENS_PER_USER`] (after dropping their tokens expired for over 30 days).
    pub fn create_api_token(
        &self,
        token: &ApiTokenRecord,
        audit: &AuditEntry,
    ) -> Result<(), AccountError> {
        self.accounts_write(
            || format!("creating an API token for {}", token.user),
            |txn| {
                if get_user(&txn.open_table(USERS)?, &token.user)?.is_none() {
                    return Err(AccountError::NoSuchUser(token.user.clone()));
                }
                let mut table = txn.open_table(API_TOKENS)?;
                let mut held = 0;
                let mut stale = Vec::new();
                for entry in table.iter()? {
                    let (key, value) = entry?;
                    let existing = decode(key.value(), value.value())?;
                    if existing.user != token.user {
                        continue;
                    }
                    if existing.expires_at + PRUNE_AFTER <= token.created_at {
                        stale.push(existing.id);
                    } else {
                        held += 1;
                    }
                }
                if held >= MAX_API_TOKENS_PER_USER {
                    return Err(AccountError::TooManyTokens(MAX_API_TOKENS_PER_USER));
                }
                for id in stale {
                    table.remove(id.as_str())?;
                }
                table.insert(token.id.as_str(), encode(token)?.as_slice())?;
                drop(table);
                append_audit(txn, audit)?;
                Ok(())
            },
        )
    }

    /// The tokens of `user` (all users' with `None`), newest first.
    pub fn api_tokens(&self, user: Option<&str>) -> Result<Vec<ApiTokenRecord>, AccountError> {
        self.accounts_read(
            || "listing API tokens".to_owned(),
            |txn| {
                let mut out = Vec::new();
                for entry in txn.open_table(API_TOKENS)?.iter()? {
                    let (key, value) = entry?;
                    let token = decode(key.value(), value.value())?;
                    if user.is_none_or(|u| u == token.user) {
                        out.push(token);
                    }
                }
                out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
                Ok(out)
            },
        )
    }

    /// The token with id `id` and its user, in one read transaction: what every request with
    /// a token asks.
    pub fn api_token_status(&self, id: &str) -> Result<ApiTokenStatus, AccountError> {
        self.accounts_read(
            || "checking an API token".to_owned(),
            |txn| {
                let Some(value) = txn.open_table(API_TOKENS)?.get(id)? else {
                    return Ok(ApiTokenStatus {
                        token: None,
                        user: None,
                    });
                };
                let token = decode(id, value.value())?;
                let user = get_user(&txn.open_table(USERS)?, &token.user)?;
                Ok(ApiTokenStatus {
                    token: Some(token),
                    user,
                })
            },
        )
    }

    /// Deletes token `id` of `user` with its audit entry; [`AccountError::NoSuchToken`] when
    /// there is none, or it is another user's.
    pub fn delete_api_token(
        &self,
        user: &str,
        id: &str,
        audit: &AuditEntry,
    ) -> Result<ApiTokenRecord, AccountError> {
        self.accounts_write(
            || format!("revoking an API token of {user}"),
            |txn| {
                let mut table = txn.open_table(API_TOKENS)?;
                let found = match table.get(id)? {
                    Some(value) => Some(decode(id, value.value())?),
                    None => None,
                };
                let Some(token) = found.filter(|t| t.user == user) else {
                    return Err(AccountError::NoSuchToken);
                };
                table.remove(id)?;
                drop(table);
                append_audit(txn, audit)?;
                Ok(token)
            },
        )
    }

    /// Records that token `id` was used at `at` (no audit entry). A token deleted meanwhile
    /// stays deleted.
    pub fn touch_api_token(&self, id: &str, at: SystemTime) -> Result<(), AccountError> {
        self.accounts_write(
            || "recording an API token's use".to_owned(),
            |txn| {
                let mut table = txn.open_table(API_TOKENS)?;
                let found = match table.get(id)? {
                    Some(value) => Some(decode(id, value.value())?),
                    None => None,
                };
                if let Some(mut token) = found {
                    token.last_used_at = Some(at);
                    table.insert(id, encode(&token)?.as_slice())?;
                }
                Ok(())
            },
        )
    }
}

fn encode(token: &ApiTokenRecord) -> Result<Vec<u8>, AccountError> {
    let stored = StoredApiToken {
        user: token.user.clone(),
        name: token.name.clone(),
        scopes: token.scopes.clone(),
        secret_sha256: token.secret_sha256.clone(),
        created_at: token.created_at,
        expires_at: token.expires_at,
        last_used_at: token.last_used_at.map(codec::to_unix_ms),
    };
    codec::encode(API_TOKEN_VERSION, &stored).map_err(|source| AccountError::Encode {
        what: "record",
        key: format!("API token {}", token.id),
        source,
    })
}

fn decode(id: &str, bytes: &[u8]) -> Result<ApiTokenRecord, DecodeError> {
    let stored: StoredApiToken = codec::decode("api_tokens", id, API_TOKEN_VERSION, bytes)?;
    Ok(ApiTokenRecord {
        id: id.to_owned(),
        user: stored.user,
        name: stored.name,
        scopes: stored.scopes,
        secret_sha256: stored.secret_sha256,
        created_at: stored.created_at,
        expires_at: stored.expires_at,
        last_used_at: stored.last_used_at.map(codec::from_unix_ms),
    })
}

/// Creates the table; called by [`Store::open`] inside its initializing transaction.
pub(super) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(API_TOKENS)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::identity::Role;
    use crate::store::Secret;

    fn token(id: &str, user: &str, created_at: SystemTime, ttl: Duration) -> ApiTokenRecord {
        ApiTokenRecord {
            id: id.to_owned(),
            user: user.to_owned(),
            name: format!("token {id}"),
            scopes: vec![Scope::SessionsRead],
            secret_sha256: "00".repeat(32),
            created_at,
            expires_at: created_at + ttl,
            last_used_at: None,
        }
    }

    fn audit() -> AuditEntry {
        AuditEntry::new("test", "token.create", "x", "")
    }

    #[test]
    fn create_list_status_touch_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("octod.redb");
        let store = Store::open(&path).expect("open");
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let missing = store
            .create_api_token(&token("a1", "ann", now, day), &audit())
            .expect_err("no such user");
        assert!(matches!(missing, AccountError::NoSuchUser(_)), "{missing}");
        for name in ["ann", "bob"] {
            store
                .add_user(
                    UserRecord::new(name, Role::User, Secret::new("h".into())),
                    "t",
                )
                .expect("user");
        }
        store
            .create_api_token(&token("a1", "ann", now, day), &audit())
            .expect("a1");
        store
            .create_api_token(
                &token("a2", "ann", now + Duration::from_secs(1), day),
                &audit(),
            )
            .expect("a2");
        store
            .create_api_token(&token("b1", "bob", now, day), &audit())
            .expect("b1");
        let ann: Vec<_> = store
            .api_tokens(Some("ann"))
            .expect("list")
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(ann, ["a2", "a1"], "newest first, only ann's");
        assert_eq!(store.api_tokens(None).expect("all").len(), 3);

        let status = store.api_token_status("a1").expect("status");
        assert_eq!(status.user.expect("user").name, "ann");
        assert_eq!(status.token.expect("token").scopes, [Scope::SessionsRead]);
        assert_eq!(
            store.api_token_status("zz").expect("status"),
            ApiTokenStatus {
                token: None,
                user: None
            }
        );

        store.touch_api_token("a1", now).expect("touch");
        let used = store
            .api_token_status("a1")
            .expect("status")
            .token
            .expect("token");
        assert_eq!(
            used.last_used_at.map(codec::to_unix_ms),
            Some(codec::to_unix_ms(now))
        );

        // Another user's token is not there to delete.
        let other = store
            .delete_api_token("bob", "a1", &audit())
            .expect_err("not bob's");
        assert!(matches!(other, AccountError::NoSuchToken));
        store
            .delete_api_token("ann", "a1", &audit())
            .expect("delete");
        assert!(
            store
                .api_token_status("a1")
                .expect("status")
                .token
                .is_none()
        );
        store
            .touch_api_token("a1", now)
            .expect("touch of a deleted token");
        assert!(
            store
                .api_token_status("a1")
                .expect("status")
                .token
                .is_none()
        );

        // Survives a reopen: it is a real file.
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.api_tokens(Some("ann")).expect("list").len(), 1);
    }

    #[test]
    fn a_user_holds_at_most_the_limit_and_long_expired_tokens_make_room() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("octod.redb")).expect("open");
        store
            .add_user(
                UserRecord::new("ann", Role::User, Secret::new("h".into())),
                "t",
            )
            .expect("user");
        let now = SystemTime::now();
        let long_ago = now - Duration::from_secs(100 * 86_400);
        let day = Duration::from_secs(86_400);
        store
            .create_api_token(&token("old", "ann", long_ago, day), &audit())
            .expect("old");
        for i in 1..MAX_API_TOKENS_PER_USER {
            store
                .create_api_token(&token(&format!("t{i:02}"), "ann", now, day), &audit())
                .expect("under the limit");
        }
        // 49 live + 1 long expired: the next one drops the expired one.
        store
            .create_api_token(&token("t50", "ann", now, day), &audit())
            .expect("room made by pruning");
        assert!(
            store
                .api_token_status("old")
                .expect("status")
                .token
                .is_none()
        );
        let full = store
            .create_api_token(&token("t51", "ann", now, day), &audit())
            .expect_err("limit");
        assert!(matches!(full, AccountError::TooManyTokens(50)), "{full}");
        assert_eq!(
            store.api_tokens(Some("ann")).expect("list").len(),
            MAX_API_TOKENS_PER_USER
        );
    }
}
