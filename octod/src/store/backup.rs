//! A consistent copy of the whole state through redb's own API (issue 17, part 3: instance
//! backup): every table read in **one read transaction** (a snapshot of the last commit, taken
//! while octod goes on writing) and written into a fresh redb file in one write transaction.
//! Not a copy of the file's bytes, which a concurrent commit could tear.
//!
//! The tables are listed here with their types ([`TABLES`]): redb opens a table only with its
//! own key and value types. A table in the file that this list does not name fails the copy
//! (a new table must be added here, not silently left out of backups); the test
//! `every_table_of_a_fresh_store_is_copied` fails first.

use std::fs::{OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use redb::{
    Database, Key, MultimapTableHandle as _, ReadTransaction, ReadableTable, TableDefinition,
    TableHandle as _, Value, WriteTransaction,
};

use super::{Store, StoreError};

/// What a copy holds: the tables and their rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: usize,
    pub rows: u64,
}

/// Every table octod keeps, by name: copies one from a read transaction into a write one.
type Copier = fn(&ReadTransaction, &WriteTransaction) -> Result<u64, StoreError>;

const TABLES: &[(&str, Copier)] = &[
    ("meta", |r, w| copy(r, w, super::META)),
    ("sessions", |r, w| copy(r, w, super::SESSIONS)),
    ("tokens", |r, w| copy(r, w, super::TOKENS)),
    ("activity", |r, w| copy(r, w, super::ACTIVITY)),
    ("disk_usage", |r, w| copy(r, w, super::DISK)),
    ("keep_alive", |r, w| copy(r, w, super::KEEP_ALIVE)),
    ("users", |r, w| copy(r, w, super::accounts::USERS)),
    ("invites", |r, w| copy(r, w, super::accounts::INVITES)),
    ("revoked", |r, w| copy(r, w, super::accounts::REVOKED)),
    ("audit", |r, w| copy(r, w, super::accounts::AUDIT)),
    ("api_tokens", |r, w| {
        copy(r, w, super::api_tokens::API_TOKENS)
    }),
    ("oidc_identities", |r, w| {
        copy(r, w, super::identities::IDENTITIES)
    }),
    ("llm_usage", |r, w| copy(r, w, super::llm_usage::LLM_USAGE)),
    ("llm_budgets", |r, w| {
        copy(r, w, super::llm_usage::LLM_BUDGETS)
    }),
    ("preview_shares", |r, w| {
        copy(r, w, super::previews::PREVIEW_SHARES)
    }),
];

fn copy<K: Key + 'static, V: Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let source = from.open_table(table)?;
    let mut target = to.open_table(table)?;
    let mut rows = 0;
    for row in source.iter()? {
        let (key, value) = row?;
        target.insert(key.value(), value.value())?;
        rows += 1;
    }
    Ok(rows)
}

impl Store {
    /// Writes a consistent copy of the whole state into a new redb file at `path` (created
    /// with mode 0600: it holds tokens and password hashes; it must not exist yet). Activity
    /// still in memory is flushed first, so the copy is as fresh as the store.
    pub fn copy_to(&self, path: &Path) -> Result<CopyReport, StoreError> {
        self.flush_activity()?;
        let action = || format!("copying the state into {}", path.display());
        let file_err = |source| StoreError::OpenFile {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(file_err)?;
        file.set_permissions(Permissions::from_mode(0o600))
            .map_err(file_err)?;
        let target = Database::builder()
            .create_file(file)
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        let run = || -> Result<CopyReport, StoreError> {
            let from = self.inner.db.begin_read()?;
            let unknown: Vec<String> = from
                .list_tables()?
                .map(|t| t.name().to_owned())
                .chain(from.list_multimap_tables()?.map(|t| t.name().to_owned()))
                .filter(|name| !TABLES.iter().any(|(known, _)| known == name))
                .collect();
            if !unknown.is_empty() {
                return Err(StoreError::UnknownTables(unknown));
            }
            let present: Vec<String> = from.list_tables()?.map(|t| t.name().to_owned()).collect();
            let to = target.begin_write()?;
            let mut report = CopyReport::default();
            for (name, copier) in TABLES {
                // A table an older file never created (additive ones are made on open).
                if !present.iter().any(|p| p == name) {
                    continue;
                }
                report.rows += copier(&from, &to)?;
                report.tables += 1;
            }
            to.commit()?;
            Ok(report)
        };
        let result = run().map_err(|e| e.context(action));
        if result.is_err() {
            drop(target);
            let _ = std::fs::remove_file(path);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_of_a_fresh_store_is_copied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("octod.redb")).expect("open");
        {
            let txn = store.inner.db.begin_write().expect("write");
            {
                let mut audit = txn
                    .open_table(crate::store::accounts::AUDIT)
                    .expect("audit");
                audit.insert(1, b"one".as_slice()).expect("insert");
                audit.insert(2, b"two".as_slice()).expect("insert");
            }
            txn.commit().expect("commit");
        }
        let copy = dir.path().join("copy.redb");
        let report = store.copy_to(&copy).expect("copy");
        let db = Database::open(&copy).expect("open the copy");
        let txn = db.begin_read().expect("read");
        let names: Vec<String> = txn
            .list_tables()
            .expect("tables")
            .map(|t| t.name().to_owned())
            .collect();
        assert_eq!(report.tables, names.len(), "{names:?}");
        let audit = txn
            .open_table(crate::store::accounts::AUDIT)
            .expect("audit");
        let rows: Vec<(u64, Vec<u8>)> = audit
            .iter()
            .expect("iter")
            .map(|r| {
                let (k, v) = r.expect("row");
                (k.value(), v.value().to_vec())
            })
            .collect();
        assert_eq!(rows, vec![(1, b"one".to_vec()), (2, b"two".to_vec())]);
        // The schema version and the two audit rows at least.
        assert!(report.rows >= 3, "{report:?}");
        for name in &names {
            assert!(
                TABLES.iter().any(|(known, _)| known == name),
                "{name} is not copied by a backup"
            );
        }
        assert_eq!(
            std::fs::metadata(&copy).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        assert!(
            store.copy_to(&copy).is_err(),
            "an existing file is never overwritten"
        );
    }
}
