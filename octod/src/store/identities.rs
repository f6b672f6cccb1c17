//! Accounts linked to an OpenID Connect provider's subject.
//!
//! | table             | key                       | value                          |
//! | ----------------- | ------------------------- | ------------------------------ |
//! | `oidc_identities` | `<provider id> <sub>`     | versioned [`StoredIdentity`]   |
//!
//! An account made by a first sign-in with a provider is found again by the provider's `sub`
//! (stable and never reassigned, unlike a user name or e-mail address, which the user or the
//! provider's admin may change). The table is additive: an older octod never opens it, a newer
//! one creates it when the first identity is linked.

use std::time::SystemTime;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::accounts::{
    INVITES, USERS, append_audit, code_hint, encode_invite, encode_user, get_invite, get_user,
    role_name,
};
use super::{AccountError, AuditEntry, Secret, Store, UserRecord, codec};
use crate::identity::Role;

const IDENTITY_VERSION: u8 = 1;

pub(super) const IDENTITIES: TableDefinition<&str, &[u8]> = TableDefinition::new("oidc_identities");

/// A link as stored.
#[derive(Serialize, Deserialize)]
struct StoredIdentity {
    user: String,
    #[serde(with = "codec::unix_ms")]
    linked_at: SystemTime,
}

/// A new account for a provider's subject (see [`Store::create_linked_user`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLinkedUser {
    pub provider: String,
    pub sub: String,
    /// The name asked for (checked by the caller); taken names get `-2`, `-3`, … .
    pub name: String,
    /// The role the provider's groups give; an invite code's admin role wins over it.
    pub role: Role,
    /// An invite code to consume (a first sign-in that needs one).
    pub invite: Option<String>,
}

/// The most suffixes tried for a taken name.
const MAX_NAME_SUFFIX: u32 = 99;

fn key(provider: &str, sub: &str) -> String {
    format!("{provider} {sub}")
}

impl Store {
    /// The account linked to `sub` at `provider`, in one read.
    pub fn linked_user(
        &self,
        provider: &str,
        sub: &str,
    ) -> Result<Option<UserRecord>, AccountError> {
        let link = key(provider, sub);
        self.accounts_read(
            || format!("looking up a sign-in with {provider}"),
            |txn| {
                let identities = match txn.open_table(IDENTITIES) {
                    Ok(table) => table,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let Some(bytes) = identities.get(link.as_str())? else {
                    return Ok(None);
                };
                let stored: StoredIdentity =
                    codec::decode("oidc_identities", &link, IDENTITY_VERSION, bytes.value())?;
                get_user(&txn.open_table(USERS)?, &stored.user)
            },
        )
    }

    /// Creates an account without a password for `new.sub` at `new.provider` and links it, in
    /// one write transaction with its audit entry: consumes the invite code if one is given
    /// (refusing an unusable one), and picks the first free name of `name`, `name-2`, … .
    /// If another sign-in linked the subject meanwhile, returns that account instead.
    pub fn create_linked_user(
        &self,
        new: &NewLinkedUser,
        now: SystemTime,
    ) -> Result<UserRecord, AccountError> {
        let link = key(&new.provider, &new.sub);
        self.accounts_write(
            || format!("creating the account of a sign-in with {}", new.provider),
            |txn| {
                let mut identities = txn.open_table(IDENTITIES)?;
                let mut users = txn.open_table(USERS)?;
                if let Some(bytes) = identities.get(link.as_str())? {
                    let stored: StoredIdentity =
                        codec::decode("oidc_identities", &link, IDENTITY_VERSION, bytes.value())?;
                    if let Some(user) = get_user(&users, &stored.user)? {
                        return Ok(user);
                    }
                }
                let mut role = new.role;
                let mut via = String::new();
                if let Some(code) = &new.invite {
                    let mut invites = txn.open_table(INVITES)?;
                    let Some(mut invite) = get_invite(&invites, code)? else {
                        return Err(AccountError::InvalidInvite);
                    };
                    if !invite.is_usable(now) {
                        return Err(AccountError::InvalidInvite);
                    }
                    invite.uses_left -= 1;
                    if invite.uses_left == 0 {
                        invites.remove(code.as_str())?;
                    } else {
                        invites.insert(code.as_str(), encode_invite(&invite)?.as_slice())?;
                    }
                    if invite.role == Role::Admin {
                        role = Role::Admin;
                    }
                    via = format!(", invite {}", code_hint(code));
                }
                let mut name = new.name.clone();
                let mut n = 1;
                while users.get(name.as_str())?.is_some() {
                    n += 1;
                    if n > MAX_NAME_SUFFIX {
                        return Err(AccountError::UserExists(new.name.clone()));
                    }
                    name = suffixed(&new.name, n);
                }
                let mut user = UserRecord::new(name, role, Secret::new(String::new()));
                user.created_at = now;
                user.identity_provider = Some(new.provider.clone());
                users.insert(user.name.as_str(), encode_user(&user)?.as_slice())?;
                let stored = StoredIdentity {
                    user: user.name.clone(),
                    linked_at: now,
                };
                let bytes = codec::encode(IDENTITY_VERSION, &stored).map_err(|source| {
                    AccountError::Encode {
                        what: "link",
                        key: format!("user {}", user.name),
                        source,
                    }
                })?;
                identities.insert(link.as_str(), bytes.as_slice())?;
                append_audit(
                    txn,
                    &AuditEntry::new(
                        &user.name,
                        "user.register",
                        &user.name,
                        format!(
                            "role {}, signed in with {}{via}",
                            role_name(user.role),
                            new.provider
                        ),
                    ),
                )?;
                Ok(user)
            },
        )
    }
}

/// `name-n`, shortened so that it stays a valid user name (at most 32 characters).
fn suffixed(name: &str, n: u32) -> String {
    let suffix = format!("-{n}");
    let keep = 32 - suffix.len();
    let stem: String = name.chars().take(keep).collect();
    format!("{}{suffix}", stem.trim_end_matches(['-', '_']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Invite;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("ok");
        let store = Store::open(dir.path().join("octo.redb")).expect("ok");
        (dir, store)
    }

    fn new(sub: &str, name: &str) -> NewLinkedUser {
        NewLinkedUser {
            provider: "corp".into(),
            sub: sub.into(),
            name: name.into(),
            role: Role::User,
            invite: None,
        }
    }

    #[test]
    fn a_subject_is_linked_once_and_found_again() {
        let (_dir, store) = store();
        assert_eq!(store.linked_user("corp", "s1").expect("ok"), None);
        let user = store
            .create_linked_user(&new("s1", "ada"), SystemTime::now())
            .expect("ok");
        assert_eq!(user.name, "ada");
        assert_eq!(user.identity_provider.as_deref(), Some("corp"));
        assert!(user.password_hash.expose().is_empty());
        let found = store.linked_user("corp", "s1").expect("ok").expect("ok");
        assert_eq!(
            (found.name, found.identity_provider),
            (user.name.clone(), user.identity_provider.clone())
        );
        // Another provider's subject of the same value is someone else.
        assert_eq!(store.linked_user("other", "s1").expect("ok"), None);
        // A second creation (a concurrent sign-in) returns the same account.
        let again = store
            .create_linked_user(&new("s1", "bob"), SystemTime::now())
            .expect("ok");
        assert_eq!(again.name, "ada");
        // The record survives a reopen with its provider.
        let path = store.path().to_owned();
        drop(store);
        let store = Store::open(path).expect("ok");
        assert_eq!(
            store
                .user("ada")
                .expect("ok")
                .expect("ok")
                .identity_provider
                .as_deref(),
            Some("corp")
        );
    }

    #[test]
    fn a_taken_name_is_never_linked_but_suffixed() {
        let (_dir, store) = store();
        store
            .add_user(
                UserRecord::new("ada", Role::Admin, Secret::new("x".into())),
                "test",
            )
            .expect("ok");
        let user = store
            .create_linked_user(&new("s1", "ada"), SystemTime::now())
            .expect("ok");
        assert_eq!(user.name, "ada-2");
        assert_eq!(user.role, Role::User);
        assert_eq!(
            store.user("ada").expect("ok").expect("ok").role,
            Role::Admin
        );
        assert_eq!(
            suffixed("abcdefghijklmnopqrstuvwxyz012345", 12),
            "abcdefghijklmnopqrstuvwxyz012-12"
        );
    }

    #[test]
    fn an_invite_is_consumed_and_its_admin_role_given() {
        let (_dir, store) = store();
        let now = SystemTime::now();
        store
            .create_invite(&Invite {
                code: Secret::new("abc".into()),
                role: Role::Admin,
                uses_left: 1,
                expires_at: None,
                created_by: "test".into(),
                created_at: now,
            })
            .expect("ok");
        let mut first = new("s1", "ada");
        first.invite = Some("abc".into());
        assert_eq!(
            store.create_linked_user(&first, now).expect("ok").role,
            Role::Admin
        );
        let mut second = new("s2", "bob");
        second.invite = Some("abc".into());
        assert!(matches!(
            store.create_linked_user(&second, now),
            Err(AccountError::InvalidInvite)
        ));
        assert_eq!(store.linked_user("corp", "s2").expect("ok"), None);
        assert_eq!(store.user("bob").expect("ok"), None);
    }
}
