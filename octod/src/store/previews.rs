//! Shared previews (issue 14): who besides a session's owner and the admins may open the app
//! on one of its ports.
//!
//! | table            | key                        | value                              |
//! | ---------------- | -------------------------- | ---------------------------------- |
//! | `preview_shares` | `<session id>:<port>`      | versioned [`PortShare`]            |
//!
//! A port is shared with every signed-in user of the instance, or by links that expire: a
//! link's token is 256 random bits of which only the SHA-256 is stored (as for API tokens).
//! A row with neither is removed; a session's rows go with the session
//! ([`Store::delete_session`]). Expired links are dropped when the row is next written and are
//! never returned. The table is additive: an older octod never opens it.

use std::collections::BTreeMap;
use std::time::SystemTime;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::secret::same_hash;
use super::{SESSIONS, Store, StoreError, codec};
use crate::session::SessionId;

const SHARE_VERSION: u8 = 1;

pub(super) const PREVIEW_SHARES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("preview_shares");

/// The most live links one port may have.
pub const MAX_SHARE_LINKS: usize = 20;

pub(super) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(PREVIEW_SHARES)?;
    Ok(())
}

/// How a port of a session is shared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortShare {
    /// Every signed-in user may open it.
    #[serde(default)]
    pub users: bool,
    /// Links that open it without an account, until they expire.
    #[serde(default)]
    pub links: Vec<ShareLink>,
}

impl PortShare {
    fn is_empty(&self) -> bool {
        !self.users && self.links.is_empty()
    }

    fn drop_expired(&mut self, now: SystemTime) {
        self.links.retain(|l| l.expires_at > now);
    }

    /// The live link whose token hashes to `token_sha256`.
    pub fn link_by_token(&self, token_sha256: &str, now: SystemTime) -> Option<&ShareLink> {
        self.links
            .iter()
            .find(|l| l.expires_at > now && same_hash(&l.token_sha256, token_sha256))
    }

    /// The live link `id`.
    pub fn link(&self, id: &str, now: SystemTime) -> Option<&ShareLink> {
        self.links.iter().find(|l| l.expires_at > now && l.id == id)
    }
}

/// One share link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareLink {
    /// Public: names the link in the API and the audit log.
    pub id: String,
    /// Lower-case hex SHA-256 of the link's token.
    pub token_sha256: String,
    /// Who made it.
    pub created_by: String,
    #[serde(with = "codec::unix_ms")]
    pub created_at: SystemTime,
    #[serde(with = "codec::unix_ms")]
    pub expires_at: SystemTime,
}

/// Why a share could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("session {0} does not exist")]
    NoSession(SessionId),
    #[error("this port has {MAX_SHARE_LINKS} live share links, the most allowed; revoke one first")]
    TooManyLinks,
    #[error("no such share link")]
    NoLink,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn key(id: &SessionId, port: u16) -> String {
    format!("{id}:{port}")
}

fn decode(key: &str, bytes: &[u8]) -> Result<PortShare, StoreError> {
    Ok(codec::decode("preview_shares", key, SHARE_VERSION, bytes)?)
}

impl Store {
    /// How `port` of session `id` is shared now (not at all when nothing is stored).
    pub fn preview_share(&self, id: &SessionId, port: u16) -> Result<PortShare, StoreError> {
        let key = key(id, port);
        self.read(
            || format!("reading the share of {key}"),
            |txn| {
                let table = txn.open_table(PREVIEW_SHARES)?;
                let Some(bytes) = table.get(key.as_str())? else {
                    return Ok(PortShare::default());
                };
                let mut share = decode(&key, bytes.value())?;
                share.drop_expired(SystemTime::now());
                Ok(share)
            },
        )
    }

    /// Every shared port of session `id`.
    pub fn preview_shares(&self, id: &SessionId) -> Result<BTreeMap<u16, PortShare>, StoreError> {
        let start = format!("{id}:");
        // `;` follows `:`: the range holds exactly this session's keys.
        let end = format!("{id};");
        self.read(
            || format!("reading the shares of session {id}"),
            |txn| {
                let table = txn.open_table(PREVIEW_SHARES)?;
                let now = SystemTime::now();
                let mut out = BTreeMap::new();
                for row in table.range(start.as_str()..end.as_str())? {
                    let (key, value) = row?;
                    let Some(port) = key
                        .value()
                        .rsplit_once(':')
                        .and_then(|(_, port)| port.parse::<u16>().ok())
                    else {
                        continue;
                    };
                    let mut share = decode(key.value(), value.value())?;
                    share.drop_expired(now);
                    if !share.is_empty() {
                        out.insert(port, share);
                    }
                }
                Ok(out)
            },
        )
    }

    /// Changes the share of `port` of session `id` with `change` (expired links dropped first)
    /// in one write transaction; the share as it is then.
    pub fn update_preview_share(
        &self,
        id: &SessionId,
        port: u16,
        change: impl FnOnce(&mut PortShare) -> Result<(), ShareError>,
    ) -> Result<PortShare, ShareError> {
        let key = key(id, port);
        let attempt = || -> Result<Result<PortShare, ShareError>, StoreError> {
            let txn = self.inner.db.begin_write()?;
            let share = {
                if txn.open_table(SESSIONS)?.get(id.as_str())?.is_none() {
                    return Ok(Err(ShareError::NoSession(id.clone())));
                }
                let mut table = txn.open_table(PREVIEW_SHARES)?;
                let mut share = match table.get(key.as_str())? {
                    Some(bytes) => decode(&key, bytes.value())?,
                    None => PortShare::default(),
                };
                share.drop_expired(SystemTime::now());
                if let Err(refused) = change(&mut share) {
                    return Ok(Err(refused));
                }
                if share.links.len() > MAX_SHARE_LINKS {
                    return Ok(Err(ShareError::TooManyLinks));
                }
                if share.is_empty() {
                    table.remove(key.as_str())?;
                } else {
                    let bytes = codec::encode(SHARE_VERSION, &share).map_err(|source| {
                        StoreError::Encode {
                            what: "preview share",
                            id: id.clone(),
                            source,
                        }
                    })?;
                    table.insert(key.as_str(), bytes.as_slice())?;
                }
                share
            };
            txn.commit()?;
            Ok(Ok(share))
        };
        attempt()
            .map_err(|e| ShareError::Store(e.context(|| format!("sharing {key}"))))
            .and_then(|r| r)
    }
}

/// Removes every share of session `id` (in the transaction that deletes it).
pub(super) fn delete_shares(
    txn: &redb::WriteTransaction,
    id: &SessionId,
) -> Result<(), StoreError> {
    let start = format!("{id}:");
    let end = format!("{id};");
    let mut table = txn.open_table(PREVIEW_SHARES)?;
    let keys: Vec<String> = table
        .range(start.as_str()..end.as_str())?
        .map(|row| row.map(|(k, _)| k.value().to_owned()))
        .collect::<Result<_, _>>()?;
    for key in keys {
        table.remove(key.as_str())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn link(id: &str, expires_at: SystemTime) -> ShareLink {
        ShareLink {
            id: id.into(),
            token_sha256: format!("hash-{id}"),
            created_by: "alice".into(),
            created_at: SystemTime::now(),
            expires_at,
        }
    }

    #[test]
    fn an_expired_link_opens_nothing() {
        let now = SystemTime::now();
        let share = PortShare {
            users: false,
            links: vec![
                link("old", now - Duration::from_secs(1)),
                link("new", now + Duration::from_secs(60)),
            ],
        };
        assert!(share.link_by_token("hash-old", now).is_none());
        assert!(share.link("old", now).is_none());
        assert_eq!(
            share.link_by_token("hash-new", now).map(|l| l.id.as_str()),
            Some("new")
        );
        assert!(share.link_by_token("hash-other", now).is_none());
    }
}
