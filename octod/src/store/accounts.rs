//! Accounts in the state database: users, invite codes, revoked tokens and the audit log.
//!
//! | table     | key                        | value                                        |
//! | --------- | -------------------------- | -------------------------------------------- |
//! | `users`   | user name (`&str`)         | versioned [`UserRecord`] (without the name)  |
//! | `invites` | invite code (`&str`)       | versioned [`Invite`] (without the code)      |
//! | `revoked` | token id, `jti` (`&str`)   | the token's expiry, ms since the epoch       |
//! | `audit`   | sequence number (`u64`)    | versioned [`AuditEntry`]                     |
//!
//! The tables are additive to schema 1: an older octod never opens them, a newer one creates
//! them on open. Every change is one write transaction and writes its audit entry in the same
//! transaction, so the audit log never misses an action that happened nor records one that did
//! not. Registration consumes one use of its invite code and creates the user in one
//! transaction: concurrent registrations with a single-use code create exactly one user.
//!
//! Nothing here hashes, signs or checks a password: that is `crate::auth`. The store holds the
//! Argon2id PHC string as given. Invite codes are stored in clear (like the session tokens, the
//! file is 0600) so that admins can list them; the audit log names a code only by its first
//! characters ([`code_hint`]).

use std::time::SystemTime;

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{DecodeError, Secret, Store, StoreError, codec, now};
use crate::identity::Role;

const USER_VERSION: u8 = 1;
const INVITE_VERSION: u8 = 1;
const AUDIT_VERSION: u8 = 1;

pub(super) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
pub(super) const INVITES: TableDefinition<&str, &[u8]> = TableDefinition::new("invites");
pub(super) const REVOKED: TableDefinition<&str, u64> = TableDefinition::new("revoked");
pub(super) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// The audit log keeps this many newest entries; each append beyond it drops the oldest.
pub const AUDIT_KEEP: u64 = 100_000;

/// Creates the account tables; called by [`Store::open`] inside its initializing transaction.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(USERS)?;
    txn.open_table(INVITES)?;
    txn.open_table(REVOKED)?;
    txn.open_table(AUDIT)?;
    Ok(())
}

/// What failed in an account operation.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("user {0} does not exist")]
    NoSuchUser(String),
    /// Unknown, expired or used up: the three are one answer, so a guesser learns nothing.
    #[error("the invite code is unknown, expired or used up")]
    InvalidInvite,
    #[error("no such invite code")]
    NoSuchInvite,
    #[error("no such API token")]
    NoSuchToken,
    #[error("a user may hold at most {0} API tokens; revoke one first")]
    TooManyTokens(usize),
    /// The change would leave no enabled admin.
    #[error("{0} is the last enabled admin")]
    LastAdmin(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("encoding the {what} of {key}: {source}")]
    Encode {
        what: &'static str,
        key: String,
        source: serde_json::Error,
    },
}

impl From<DecodeError> for AccountError {
    fn from(e: DecodeError) -> Self {
        Self::Store(e.into())
    }
}

macro_rules! account_from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for AccountError {
            fn from(e: $t) -> Self {
                Self::Store(e.into())
            }
        }
    )*};
}
account_from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl AccountError {
    fn context(self, action: impl FnOnce() -> String) -> Self {
        match self {
            Self::Store(e) => Self::Store(e.context(action)),
            other => other,
        }
    }
}

/// A user as stored. The name is the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    pub role: Role,
    /// Argon2id PHC string. `Debug` prints `***`.
    pub password_hash: Secret,
    pub disabled: bool,
    pub created_at: SystemTime,
    /// Every token carries the generation it was issued in; bumping it (password change,
    /// disable) invalidates all of the user's tokens at once.
    pub token_generation: u64,
    /// The OpenID Connect provider (its configured id) this account signs in with, for an
    /// account created by a first sign-in there; such an account has no password (an empty
    /// hash, which no password matches).
    pub identity_provider: Option<String>,
}

impl UserRecord {
    /// A new, enabled user in generation 0, created now.
    pub fn new(name: impl Into<String>, role: Role, password_hash: Secret) -> Self {
        Self {
            name: name.into(),
            role,
            password_hash,
            disabled: false,
            created_at: now(),
            token_generation: 0,
            identity_provider: None,
        }
    }

    fn is_enabled_admin(&self) -> bool {
        self.role == Role::Admin && !self.disabled
    }
}

/// The v1 JSON of a user.
#[derive(Serialize, Deserialize)]
struct StoredUser {
    role: Role,
    password_hash: String,
    disabled: bool,
    #[serde(with = "codec::unix_ms")]
    created_at: SystemTime,
    token_generation: u64,
    /// Added with OpenID Connect sign-in; absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity_provider: Option<String>,
}

/// An invite code and what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The code itself; `Debug` prints `***`.
    pub code: Secret,
    /// The role a user registered with this code gets.
    pub role: Role,
    pub uses_left: u32,
    pub expires_at: Option<SystemTime>,
    pub created_by: String,
    pub created_at: SystemTime,
}

impl Invite {
    /// Whether the code can still register someone at `now`.
    pub fn is_usable(&self, now: SystemTime) -> bool {
        self.uses_left > 0 && self.expires_at.is_none_or(|t| t > now)
    }
}

/// The v1 JSON of an invite.
#[derive(Serialize, Deserialize)]
struct StoredInvite {
    role: Role,
    uses_left: u32,
    /// Milliseconds since the epoch.
    expires_at: Option<u64>,
    created_by: String,
    #[serde(with = "codec::unix_ms")]
    created_at: SystemTime,
}

/// One line of the audit log. Never holds a secret: no password, hash, token or invite code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    #[serde(with = "codec::unix_ms")]
    pub time: SystemTime,
    /// Who did it: a user name, `octoctl …` or `octod`.
    pub actor: String,
    /// What, as `noun.verb`: `user.register`, `login.failure`, `invite.create`, …
    pub action: String,
    /// To whom or what: usually a user name.
    pub target: String,
    pub detail: String,
}

impl AuditEntry {
    /// An entry stamped now.
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            time: now(),
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            detail: detail.into(),
        }
    }
}

/// How the audit log names an invite code: its first four characters, enough to tell codes
/// apart in a list, far too few to use one.
pub fn code_hint(code: &str) -> String {
    let head: String = code.chars().take(4).collect();
    format!("{head}…")
}

/// What [`Store::token_status`] found for a token's user and id, in one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStatus {
    pub user: Option<UserRecord>,
    pub revoked: bool,
}

impl Store {
    /// Registers `user` with an invite code: checks the code at `now`, consumes one use
    /// (removing the code when none is left), creates the user with the code's role and writes
    /// the audit entry, all in one write transaction. `user.role` is ignored.
    pub fn register_with_invite(
        &self,
        code: &str,
        mut user: UserRecord,
        now: SystemTime,
    ) -> Result<UserRecord, AccountError> {
        let name = user.name.clone();
        self.accounts_write(
            || format!("registering user {name}"),
            |txn| {
                let mut invites = txn.open_table(INVITES)?;
                let Some(mut invite) = get_invite(&invites, code)? else {
                    return Err(AccountError::InvalidInvite);
                };
                if !invite.is_usable(now) {
                    return Err(AccountError::InvalidInvite);
                }
                let mut users = txn.open_table(USERS)?;
                if users.get(user.name.as_str())?.is_some() {
                    return Err(AccountError::UserExists(user.name.clone()));
                }
                invite.uses_left -= 1;
                if invite.uses_left == 0 {
                    invites.remove(code)?;
                } else {
                    invites.insert(code, encode_invite(&invite)?.as_slice())?;
                }
                user.role = invite.role;
                users.insert(user.name.as_str(), encode_user(&user)?.as_slice())?;
                append_audit(
                    txn,
                    &AuditEntry::new(
                        &user.name,
                        "user.register",
                        &user.name,
                        format!("role {}, invite {}", role_name(user.role), code_hint(code)),
                    ),
                )?;
                Ok(user)
            },
        )
    }

    /// Creates a user without an invite code (admins, octoctl).
    pub fn add_user(&self, user: UserRecord, actor: &str) -> Result<UserRecord, AccountError> {
        let name = user.name.clone();
        self.accounts_write(
            || format!("creating user {name}"),
            |txn| {
                let mut users = txn.open_table(USERS)?;
                if users.get(user.name.as_str())?.is_some() {
                    return Err(AccountError::UserExists(user.name.clone()));
                }
                users.insert(user.name.as_str(), encode_user(&user)?.as_slice())?;
                append_audit(
                    txn,
                    &AuditEntry::new(
                        actor,
                        "user.create",
                        &user.name,
                        format!("role {}", role_name(user.role)),
                    ),
                )?;
                Ok(user)
            },
        )
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, AccountError> {
        self.accounts_read(
            || format!("reading user {name}"),
            |txn| get_user(&txn.open_table(USERS)?, name),
        )
    }

    /// All users, ordered by name.
    pub fn users(&self) -> Result<Vec<UserRecord>, AccountError> {
        self.accounts_read(
            || "listing users".to_owned(),
            |txn| {
                let users = txn.open_table(USERS)?;
                let mut out = Vec::new();
                for entry in users.iter()? {
                    let (key, value) = entry?;
                    out.push(decode_user(key.value(), value.value())?);
                }
                Ok(out)
            },
        )
    }

    /// Changes a user in one transaction with its audit entry: `change` edits the record (and
    /// may refuse); afterwards at least one enabled admin must remain, or nothing is written
    /// and the answer is [`AccountError::LastAdmin`]. Returns the new record.
    pub fn modify_user(
        &self,
        name: &str,
        audit: &AuditEntry,
        change: impl FnOnce(&mut UserRecord) -> Result<(), AccountError>,
    ) -> Result<UserRecord, AccountError> {
        self.accounts_write(
            || format!("changing user {name}"),
            |txn| {
                let mut users = txn.open_table(USERS)?;
                let Some(before) = get_user(&users, name)? else {
                    return Err(AccountError::NoSuchUser(name.to_owned()));
                };
                let mut after = before.clone();
                change(&mut after)?;
                after.name.clone_from(&before.name);
                if before.is_enabled_admin() && !after.is_enabled_admin() {
                    let mut others = false;
                    for entry in users.iter()? {
                        let (key, value) = entry?;
                        if key.value() != name
                            && decode_user(key.value(), value.value())?.is_enabled_admin()
                        {
                            others = true;
                            break;
                        }
                    }
                    if !others {
                        return Err(AccountError::LastAdmin(name.to_owned()));
                    }
                }
                users.insert(name, encode_user(&after)?.as_slice())?;
                append_audit(txn, audit)?;
                Ok(after)
            },
        )
    }

    /// Whether some admin can sign in.
    pub fn has_enabled_admin(&self) -> Result<bool, AccountError> {
        self.accounts_read(
            || "looking for an admin".to_owned(),
            |txn| any_enabled_admin(&txn.open_table(USERS)?),
        )
    }

    /// Stores a new invite code with its audit entry.
    pub fn create_invite(&self, invite: &Invite) -> Result<(), AccountError> {
        self.accounts_write(
            || "creating an invite code".to_owned(),
            |txn| insert_invite(txn, invite),
        )
    }

    /// For the first start: stores `invite` (an admin code) unless an enabled admin exists or
    /// a usable admin code does, checked in the same transaction. Returns whether it did.
    pub fn create_bootstrap_invite(
        &self,
        invite: &Invite,
        now: SystemTime,
    ) -> Result<bool, AccountError> {
        self.accounts_write(
            || "creating the bootstrap invite code".to_owned(),
            |txn| {
                if any_enabled_admin(&txn.open_table(USERS)?)? {
                    return Ok(false);
                }
                let invites = txn.open_table(INVITES)?;
                for entry in invites.iter()? {
                    let (key, value) = entry?;
                    let existing = decode_invite(key.value(), value.value())?;
                    if existing.role == Role::Admin && existing.is_usable(now) {
                        return Ok(false);
                    }
                }
                drop(invites);
                insert_invite(txn, invite)?;
                Ok(true)
            },
        )
    }

    /// All invite codes, usable or not, ordered by code.
    pub fn invites(&self) -> Result<Vec<Invite>, AccountError> {
        self.accounts_read(
            || "listing invite codes".to_owned(),
            |txn| {
                let invites = txn.open_table(INVITES)?;
                let mut out = Vec::new();
                for entry in invites.iter()? {
                    let (key, value) = entry?;
                    out.push(decode_invite(key.value(), value.value())?);
                }
                Ok(out)
            },
        )
    }

    /// Deletes an invite code; [`AccountError::NoSuchInvite`] if there is none.
    pub fn delete_invite(&self, code: &str, actor: &str) -> Result<Invite, AccountError> {
        self.accounts_write(
            || "deleting an invite code".to_owned(),
            |txn| {
                let mut invites = txn.open_table(INVITES)?;
                let Some(invite) = get_invite(&invites, code)? else {
                    return Err(AccountError::NoSuchInvite);
                };
                invites.remove(code)?;
                append_audit(
                    txn,
                    &AuditEntry::new(actor, "invite.delete", code_hint(code), ""),
                )?;
                Ok(invite)
            },
        )
    }

    /// Records a token id as revoked until the token's own expiry, prunes revocations of
    /// tokens that have expired anyway, and writes `audit`, in one transaction.
    pub fn revoke_token(
        &self,
        jti: &str,
        expires_at: SystemTime,
        audit: Option<&AuditEntry>,
    ) -> Result<(), AccountError> {
        self.accounts_write(
            || "revoking a token".to_owned(),
            |txn| {
                let mut revoked = txn.open_table(REVOKED)?;
                let now = codec::to_unix_ms(SystemTime::now());
                revoked.retain(|_, expiry| expiry > now)?;
                revoked.insert(jti, codec::to_unix_ms(expires_at))?;
                drop(revoked);
                if let Some(audit) = audit {
                    append_audit(txn, audit)?;
                }
                Ok(())
            },
        )
    }

    /// Number of stored revocations (for tests and diagnostics).
    pub fn revoked_count(&self) -> Result<u64, AccountError> {
        self.accounts_read(
            || "counting revoked tokens".to_owned(),
            |txn| Ok(txn.open_table(REVOKED)?.len()?),
        )
    }

    /// The user a token names and whether its id is revoked, in one read transaction: what
    /// every authenticated request asks.
    pub fn token_status(&self, name: &str, jti: &str) -> Result<TokenStatus, AccountError> {
        self.accounts_read(
            || format!("checking a token of {name}"),
            |txn| {
                let user = get_user(&txn.open_table(USERS)?, name)?;
                let revoked = txn.open_table(REVOKED)?.get(jti)?.is_some();
                Ok(TokenStatus { user, revoked })
            },
        )
    }

    /// Appends one entry to the audit log in its own transaction (for events that change no
    /// other state, such as a login). Returns its sequence number.
    pub fn append_audit(&self, entry: &AuditEntry) -> Result<u64, AccountError> {
        self.accounts_write(
            || format!("writing audit entry {}", entry.action),
            |txn| append_audit(txn, entry),
        )
    }

    /// The newest `limit` audit entries with their sequence numbers, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<(u64, AuditEntry)>, AccountError> {
        self.accounts_read(
            || "reading the audit log".to_owned(),
            |txn| {
                let audit = txn.open_table(AUDIT)?;
                let mut out = Vec::new();
                for entry in audit.iter()?.rev().take(limit) {
                    let (key, value) = entry?;
                    let seq = key.value();
                    out.push((
                        seq,
                        codec::decode("audit", &seq.to_string(), AUDIT_VERSION, value.value())?,
                    ));
                }
                Ok(out)
            },
        )
    }

    /// One write transaction whose body may refuse with an [`AccountError`]; a refusal
    /// aborts the transaction, so nothing of it is written.
    pub(super) fn accounts_write<T>(
        &self,
        action: impl FnOnce() -> String,
        body: impl FnOnce(&WriteTransaction) -> Result<T, AccountError>,
    ) -> Result<T, AccountError> {
        let run = || -> Result<T, AccountError> {
            let txn = self.inner.db.begin_write()?;
            let out = body(&txn)?;
            txn.commit()?;
            Ok(out)
        };
        run().map_err(|e| e.context(action))
    }

    pub(super) fn accounts_read<T>(
        &self,
        action: impl FnOnce() -> String,
        body: impl FnOnce(&redb::ReadTransaction) -> Result<T, AccountError>,
    ) -> Result<T, AccountError> {
        let run = || -> Result<T, AccountError> {
            let txn = self.inner.db.begin_read()?;
            body(&txn)
        };
        run().map_err(|e| e.context(action))
    }
}

pub(super) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::User => "user",
    }
}

pub(super) fn encode_user(user: &UserRecord) -> Result<Vec<u8>, AccountError> {
    let stored = StoredUser {
        role: user.role,
        password_hash: user.password_hash.expose().to_owned(),
        disabled: user.disabled,
        created_at: user.created_at,
        token_generation: user.token_generation,
        identity_provider: user.identity_provider.clone(),
    };
    codec::encode(USER_VERSION, &stored).map_err(|source| AccountError::Encode {
        what: "record",
        key: format!("user {}", user.name),
        source,
    })
}

fn decode_user(name: &str, bytes: &[u8]) -> Result<UserRecord, DecodeError> {
    let stored: StoredUser = codec::decode("users", name, USER_VERSION, bytes)?;
    Ok(UserRecord {
        name: name.to_owned(),
        role: stored.role,
        password_hash: Secret::new(stored.password_hash),
        disabled: stored.disabled,
        created_at: stored.created_at,
        token_generation: stored.token_generation,
        identity_provider: stored.identity_provider,
    })
}

pub(super) fn get_user(
    users: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<UserRecord>, AccountError> {
    match users.get(name)? {
        Some(bytes) => Ok(Some(decode_user(name, bytes.value())?)),
        None => Ok(None),
    }
}

fn any_enabled_admin(
    users: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<bool, AccountError> {
    for entry in users.iter()? {
        let (key, value) = entry?;
        if decode_user(key.value(), value.value())?.is_enabled_admin() {
            return Ok(true);
        }
    }
    Ok(false)
}

pub(super) fn encode_invite(invite: &Invite) -> Result<Vec<u8>, AccountError> {
    let stored = StoredInvite {
        role: invite.role,
        uses_left: invite.uses_left,
        expires_at: invite.expires_at.map(codec::to_unix_ms),
        created_by: invite.created_by.clone(),
        created_at: invite.created_at,
    };
    codec::encode(INVITE_VERSION, &stored).map_err(|source| AccountError::Encode {
        what: "record",
        key: format!("invite {}", code_hint(invite.code.expose())),
        source,
    })
}

fn decode_invite(code: &str, bytes: &[u8]) -> Result<Invite, DecodeError> {
    // The key in an error message would reveal the code.
    let stored: StoredInvite = codec::decode("invites", &code_hint(code), INVITE_VERSION, bytes)?;
    Ok(Invite {
        code: Secret::new(code.to_owned()),
        role: stored.role,
        uses_left: stored.uses_left,
        expires_at: stored.expires_at.map(codec::from_unix_ms),
        created_by: stored.created_by,
        created_at: stored.created_at,
    })
}

pub(super) fn get_invite(
    invites: &impl ReadableTable<&'static str, &'static [u8]>,
    code: &str,
) -> Result<Option<Invite>, AccountError> {
    match invites.get(code)? {
        Some(bytes) => Ok(Some(decode_invite(code, bytes.value())?)),
        None => Ok(None),
    }
}

fn insert_invite(txn: &WriteTransaction, invite: &Invite) -> Result<(), AccountError> {
    let code = invite.code.expose();
    txn.open_table(INVITES)?
        .insert(code, encode_invite(invite)?.as_slice())?;
    let expiry = invite.expires_at.map_or_else(
        || "no expiry".to_owned(),
        |t| format!("expires at {} ms", codec::to_unix_ms(t)),
    );
    append_audit(
        txn,
        &AuditEntry::new(
            &invite.created_by,
            "invite.create",
            code_hint(code),
            format!(
                "role {}, {} use(s), {expiry}",
                role_name(invite.role),
                invite.uses_left
            ),
        ),
    )?;
    Ok(())
}

/// Appends `entry` with the next sequence number inside `txn` and drops the entry that falls
/// out of the kept window. Sequence numbers start at 1 and never repeat.
pub(super) fn append_audit(
    txn: &WriteTransaction,
    entry: &AuditEntry,
) -> Result<u64, AccountError> {
    let mut audit = txn.open_table(AUDIT)?;
    let seq = audit.last()?.map_or(0, |(k, _)| k.value()) + 1;
    let bytes = codec::encode(AUDIT_VERSION, entry).map_err(|source| AccountError::Encode {
        what: "entry",
        key: format!("audit {seq}"),
        source,
    })?;
    audit.insert(seq, bytes.as_slice())?;
    if seq > AUDIT_KEEP {
        audit.remove(seq - AUDIT_KEEP)?;
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use tempfile::TempDir;

    use super::*;

    fn open() -> (TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("octod.redb")).expect("open store");
        (dir, store)
    }

    fn user(name: &str, role: Role) -> UserRecord {
        UserRecord::new(name, role, Secret::new(format!("$argon2id$fake${name}")))
    }

    fn invite(code: &str, role: Role, uses: u32, expires_at: Option<SystemTime>) -> Invite {
        Invite {
            code: Secret::new(code.to_owned()),
            role,
            uses_left: uses,
            expires_at,
            created_by: "root".to_owned(),
            created_at: now(),
        }
    }

    fn actions(store: &Store) -> Vec<String> {
        store
            .audit_log(usize::MAX)
            .expect("audit")
            .into_iter()
            .rev()
            .map(|(_, e)| e.action)
            .collect()
    }

    #[test]
    fn user_round_trip_and_debug_hides_the_hash() {
        let (_dir, store) = open();
        let u = store
            .add_user(user("ada", Role::Admin), "octoctl")
            .expect("add");
        assert_eq!(store.user("ada").expect("read"), Some(u.clone()));
        assert_eq!(store.users().expect("list"), std::slice::from_ref(&u));
        assert!(!format!("{u:?}").contains("argon2"), "{u:?}");
        assert!(matches!(
            store.add_user(user("ada", Role::User), "octoctl"),
            Err(AccountError::UserExists(n)) if n == "ada"
        ));
        assert_eq!(store.user("bob").expect("read"), None);
        assert_eq!(actions(&store), ["user.create"]);
    }

    #[test]
    fn registration_consumes_uses_and_takes_the_role_of_the_code() {
        let (_dir, store) = open();
        store
            .create_invite(&invite("twouses", Role::Admin, 2, None))
            .expect("invite");
        let a = store
            .register_with_invite("twouses", user("a", Role::User), now())
            .expect("first");
        assert_eq!(a.role, Role::Admin);
        assert_eq!(store.invites().expect("list")[0].uses_left, 1);
        // A taken name consumes nothing.
        assert!(matches!(
            store.register_with_invite("twouses", user("a", Role::User), now()),
            Err(AccountError::UserExists(_))
        ));
        assert_eq!(store.invites().expect("list")[0].uses_left, 1);
        store
            .register_with_invite("twouses", user("b", Role::User), now())
            .expect("second");
        assert_eq!(store.invites().expect("list"), []);
        assert!(matches!(
            store.register_with_invite("twouses", user("c", Role::User), now()),
            Err(AccountError::InvalidInvite)
        ));
        assert!(matches!(
            store.register_with_invite("nosuch", user("c", Role::User), now()),
            Err(AccountError::InvalidInvite)
        ));
        assert_eq!(
            actions(&store),
            ["invite.create", "user.register", "user.register"]
        );
    }

    #[test]
    fn expired_codes_register_nobody() {
        let (_dir, store) = open();
        let past = now() - Duration::from_secs(1);
        store
            .create_invite(&invite("old", Role::User, 1, Some(past)))
            .expect("invite");
        assert!(matches!(
            store.register_with_invite("old", user("a", Role::User), now()),
            Err(AccountError::InvalidInvite)
        ));
        assert_eq!(store.user("a").expect("read"), None);
    }

    /// The issue's proof: 50 threads race one single-use code on a real file.
    #[test]
    fn fifty_concurrent_registrations_with_a_single_use_code_create_one_user() {
        let (_dir, store) = open();
        store
            .create_invite(&invite("once", Role::User, 1, None))
            .expect("invite");
        let barrier = Arc::new(Barrier::new(50));
        let threads: Vec<_> = (0..50)
            .map(|i| {
                let (store, barrier) = (store.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    store.register_with_invite("once", user(&format!("u{i}"), Role::User), now())
                })
            })
            .collect();
        let results: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "{results:?}");
        assert!(
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .all(|e| matches!(e, AccountError::InvalidInvite)),
            "{results:?}"
        );
        assert_eq!(store.users().expect("users").len(), 1);
        assert_eq!(store.invites().expect("invites"), []);
    }

    #[test]
    fn the_last_enabled_admin_cannot_be_disabled_or_demoted() {
        let (_dir, store) = open();
        store.add_user(user("root", Role::Admin), "t").expect("add");
        store.add_user(user("bob", Role::User), "t").expect("add");
        let disable = |name: &str| {
            store.modify_user(name, &AuditEntry::new("t", "user.disable", name, ""), |u| {
                u.disabled = true;
                u.token_generation += 1;
                Ok(())
            })
        };
        assert!(matches!(disable("root"), Err(AccountError::LastAdmin(_))));
        assert!(matches!(
            store.modify_user(
                "root",
                &AuditEntry::new("t", "user.role", "root", ""),
                |u| {
                    u.role = Role::User;
                    Ok(())
                }
            ),
            Err(AccountError::LastAdmin(_))
        ));
        assert!(!store.user("root").expect("read").expect("root").disabled);
        let bob = disable("bob").expect("disable bob");
        assert!(bob.disabled);
        assert_eq!(bob.token_generation, 1);
        assert!(matches!(
            disable("nobody"),
            Err(AccountError::NoSuchUser(_))
        ));
        // With a second admin, the first may go.
        store.add_user(user("eve", Role::Admin), "t").expect("add");
        disable("root").expect("disable root");
        // A refused change wrote no audit entry.
        assert_eq!(
            actions(&store),
            [
                "user.create",
                "user.create",
                "user.disable",
                "user.create",
                "user.disable"
            ]
        );
    }

    #[test]
    fn bootstrap_invite_only_without_admin_or_usable_admin_code() {
        let (_dir, store) = open();
        let code = |c: &str, exp| invite(c, Role::Admin, 1, exp);
        assert!(
            store
                .create_bootstrap_invite(&code("a", None), now())
                .expect("1")
        );
        assert!(
            !store
                .create_bootstrap_invite(&code("b", None), now())
                .expect("2")
        );
        store.delete_invite("a", "t").expect("delete");
        let soon = now() + Duration::from_secs(60);
        assert!(
            store
                .create_bootstrap_invite(&code("c", Some(soon)), now())
                .expect("3")
        );
        // Once that code has expired, a new one is due.
        let later = soon + Duration::from_secs(1);
        assert!(
            store
                .create_bootstrap_invite(&code("d", None), later)
                .expect("4")
        );
        store
            .register_with_invite("d", user("root", Role::User), later)
            .expect("register");
        store.delete_invite("c", "t").expect("delete");
        assert!(store.has_enabled_admin().expect("admin"));
        assert!(
            !store
                .create_bootstrap_invite(&code("e", None), now())
                .expect("5")
        );
        assert!(matches!(
            store.delete_invite("e", "t"),
            Err(AccountError::NoSuchInvite)
        ));
    }

    #[test]
    fn revocations_are_found_and_expired_ones_pruned() {
        let (_dir, store) = open();
        store.add_user(user("ada", Role::User), "t").expect("add");
        let past = SystemTime::now() - Duration::from_secs(10);
        let future = SystemTime::now() + Duration::from_secs(3600);
        store.revoke_token("old", past, None).expect("revoke");
        store.revoke_token("new", future, None).expect("revoke");
        // The first revocation had expired when the second was written.
        assert_eq!(store.revoked_count().expect("count"), 1);
        let s = store.token_status("ada", "new").expect("status");
        assert!(s.revoked);
        assert_eq!(s.user.expect("user").name, "ada");
        let s = store.token_status("nobody", "other").expect("status");
        assert_eq!(
            s,
            TokenStatus {
                user: None,
                revoked: false
            }
        );
    }

    #[test]
    fn audit_log_is_newest_first_and_limited() {
        let (_dir, store) = open();
        for i in 0..5 {
            let seq = store
                .append_audit(&AuditEntry::new("t", format!("a.{i}"), "x", ""))
                .expect("append");
            assert_eq!(seq, i + 1);
        }
        let log = store.audit_log(2).expect("log");
        assert_eq!(
            log.iter()
                .map(|(s, e)| (*s, e.action.as_str()))
                .collect::<Vec<_>>(),
            [(5, "a.4"), (4, "a.3")]
        );
    }

    #[test]
    fn invite_errors_and_debug_never_show_the_code() {
        let inv = invite("supersecretcode", Role::User, 1, None);
        assert!(!format!("{inv:?}").contains("supersecret"));
        assert_eq!(code_hint("supersecretcode"), "supe…");
        let err = decode_invite("supersecretcode", b"\x09{}").expect_err("bad version");
        assert!(!err.to_string().contains("supersecret"), "{err}");
    }

    #[test]
    fn user_format_is_pinned() {
        let mut u = user("ada", Role::User);
        u.created_at = codec::from_unix_ms(1_700_000_000_000);
        let bytes = encode_user(&u).expect("encode");
        assert_eq!(
            String::from_utf8_lossy(&bytes[1..]),
            r#"{"role":"user","password_hash":"$argon2id$fake$ada","disabled":false,"created_at":1700000000000,"token_generation":0}"#
        );
        assert_eq!(bytes[0], 1);
        assert_eq!(decode_user("ada", &bytes).expect("decode"), u);
    }
}
