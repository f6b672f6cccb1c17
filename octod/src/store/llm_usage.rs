//! The model gateway's usage book: tokens per day, user, session and model.
//!
//! | table       | key                                        | value                                   |
//! | ----------- | ------------------------------------------ | --------------------------------------- |
//! | `llm_usage` | `<YYYY-MM-DD>\t<user>\t<session>\t<model>` | (prompt tokens, completion tokens, requests) |
//!
//! Days are UTC. The key starts with the day, so a period is one range read. Each request's
//! counts are added in one write transaction, once (`crate::llm` records a request when its
//! answer has ended). The table is additive: an older octod never opens it, a newer one
//! creates it on open. Rows stay when their session is deleted: usage is the user's.

use redb::{ReadableTable, TableDefinition};

use super::{Store, StoreError};

pub(super) const LLM_USAGE: TableDefinition<&str, (u64, u64, u64)> =
    TableDefinition::new("llm_usage");

/// Per-user overrides of the monthly token budget: user → tokens ([`UNLIMITED`]: none).
pub(super) const LLM_BUDGETS: TableDefinition<&str, u64> = TableDefinition::new("llm_budgets");

/// A budget override that means "no budget".
pub const UNLIMITED: u64 = u64::MAX;

pub(super) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(LLM_USAGE)?;
    txn.open_table(LLM_BUDGETS)?;
    Ok(())
}

/// One row of the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub user: String,
    pub session: String,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub requests: u64,
}

/// Which rows to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    /// Only this user's.
    pub user: Option<String>,
    /// From this day on (`YYYY-MM-DD`, inclusive).
    pub since_day: Option<String>,
}

/// What one request used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEntry<'a> {
    pub day: &'a str,
    pub user: &'a str,
    pub session: &'a str,
    pub model: &'a str,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

fn key(entry: &UsageEntry<'_>) -> Option<String> {
    let parts = [entry.day, entry.user, entry.session, entry.model];
    // A tab or newline would make the key ambiguous; such names are refused upstream.
    if parts.iter().any(|p| p.contains(['\t', '\n'])) {
        return None;
    }
    Some(parts.join("\t"))
}

impl Store {
    /// Adds one request's tokens to its row. Names with a tab or newline are not recorded
    /// (`false`).
    pub fn record_llm_usage(&self, entry: &UsageEntry<'_>) -> Result<bool, StoreError> {
        let Some(key) = key(entry) else {
            return Ok(false);
        };
        self.write(
            || format!("recording the model usage of session {}", entry.session),
            |txn| {
                let mut table = txn.open_table(LLM_USAGE)?;
                let (prompt, completion, requests) =
                    table.get(key.as_str())?.map_or((0, 0, 0), |v| v.value());
                table.insert(
                    key.as_str(),
                    (
                        prompt.saturating_add(entry.prompt_tokens),
                        completion.saturating_add(entry.completion_tokens),
                        requests.saturating_add(1),
                    ),
                )?;
                Ok(true)
            },
        )
    }

    /// Sets (`Some`) or removes (`None`: the role's default applies again) a user's monthly
    /// token budget; [`UNLIMITED`] for none.
    pub fn set_llm_budget(&self, user: &str, tokens: Option<u64>) -> Result<(), StoreError> {
        self.write(
            || format!("setting the token budget of {user}"),
            |txn| {
                let mut table = txn.open_table(LLM_BUDGETS)?;
                match tokens {
                    Some(tokens) => {
                        table.insert(user, tokens)?;
                    }
                    None => {
                        table.remove(user)?;
                    }
                }
                Ok(())
            },
        )
    }

    /// A user's budget override, if any.
    pub fn llm_budget(&self, user: &str) -> Result<Option<u64>, StoreError> {
        self.read(
            || format!("reading the token budget of {user}"),
            |txn| match txn.open_table(LLM_BUDGETS) {
                Ok(table) => Ok(table.get(user)?.map(|v| v.value())),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(e.into()),
            },
        )
    }

    /// The tokens (prompt and completion) a user used from `since_day` on.
    pub fn llm_tokens_since(&self, user: &str, since_day: &str) -> Result<u64, StoreError> {
        let rows = self.llm_usage(&UsageFilter {
            user: Some(user.to_owned()),
            since_day: Some(since_day.to_owned()),
        })?;
        Ok(rows
            .iter()
            .map(|r| r.prompt_tokens.saturating_add(r.completion_tokens))
            .fold(0, u64::saturating_add))
    }

    /// The rows the filter selects, by day, user, session and model.
    pub fn llm_usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>, StoreError> {
        self.read(
            || "reading the model usage".to_owned(),
            |txn| {
                let table = match txn.open_table(LLM_USAGE) {
                    Ok(table) => table,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                    Err(e) => return Err(e.into()),
                };
                let since = filter.since_day.as_deref().unwrap_or("");
                let mut rows = Vec::new();
                for entry in table.range(since..)? {
                    let (key, value) = entry?;
                    let mut parts = key.value().splitn(4, '\t');
                    let (Some(day), Some(user), Some(session), Some(model)) =
                        (parts.next(), parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    if filter.user.as_deref().is_some_and(|u| u != user) {
                        continue;
                    }
                    let (prompt_tokens, completion_tokens, requests) = value.value();
                    rows.push(UsageRow {
                        day: day.to_owned(),
                        user: user.to_owned(),
                        session: session.to_owned(),
                        model: model.to_owned(),
                        prompt_tokens,
                        completion_tokens,
                        requests,
                    });
                }
                Ok(rows)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(day: &'a str, user: &'a str, session: &'a str, p: u64, c: u64) -> UsageEntry<'a> {
        UsageEntry {
            day,
            user,
            session,
            model: "m",
            prompt_tokens: p,
            completion_tokens: c,
        }
    }

    #[test]
    fn requests_add_up_per_day_user_session_and_model() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("octod.redb")).expect("open");
        assert!(
            store
                .llm_usage(&UsageFilter::default())
                .expect("read")
                .is_empty()
        );
        for e in [
            entry("2026-12-01", "alice", "a1", 10, 1),
            entry("2026-12-01", "alice", "a1", 20, 2),
            entry("2026-12-02", "alice", "a1", 5, 5),
            entry("2026-12-02", "bob", "b1", 7, 7),
        ] {
            assert!(store.record_llm_usage(&e).expect("recorded"));
        }
        assert!(
            !store
                .record_llm_usage(&entry("2026-12-02", "eve\tx", "b1", 1, 1))
                .expect("refused quietly")
        );
        let all = store.llm_usage(&UsageFilter::default()).expect("read");
        assert_eq!(all.len(), 3);
        assert_eq!(
            (
                all[0].prompt_tokens,
                all[0].completion_tokens,
                all[0].requests
            ),
            (30, 3, 2)
        );
        let alice_since = store
            .llm_usage(&UsageFilter {
                user: Some("alice".into()),
                since_day: Some("2026-12-02".into()),
            })
            .expect("read");
        assert_eq!(alice_since.len(), 1);
        assert_eq!(
            (alice_since[0].day.as_str(), alice_since[0].prompt_tokens),
            ("2026-12-02", 5)
        );
    }
}
