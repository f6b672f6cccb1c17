//! Monthly token budgets: each user's, from `octoctl user set-budget`, else their role's
//! (`[llm.budgets]`), else none. A request is admitted while what the user used this month
//! (UTC) plus what their requests in flight may use stays under the budget; otherwise it gets
//! `402` in OpenAI's shape with a message opencode shows in the chat.
//!
//! Why 402 and not 429: opencode (1.18) retries a 429 without end (its session retry, backing
//! off to 30 s), so a reached budget showed as "retrying" and kept the agent busy, which also
//! keeps the session from its idle stop. A 402 is final: opencode ends the turn with the
//! message as the reply's error. Providers answer exhausted credit the same way (OpenRouter's
//! 402).
//!
//! What a request in flight may use is reserved at admission: the largest request the user
//! has made since octod started (at least [`FIRST_RESERVE`]). Admission reads the book and
//! reserves under one lock, and a reservation is released only after the request's usage is
//! in the book, so concurrent requests at the edge of a budget are admitted one at a time:
//! they overspend by at most one request's worth.

use axum::http::StatusCode;

use super::{Gateway, OpenAiError};

/// What a user's first request reserves, before any of theirs was seen.
pub const FIRST_RESERVE: u64 = 4096;

/// A user's requests in flight.
#[derive(Debug, Default)]
pub struct Ledger {
    reserved: u64,
    largest: u64,
}

/// Tokens reserved for one request in flight; released when dropped.
pub struct Reservation {
    gateway: Gateway,
    user: String,
    tokens: u64,
}

impl Reservation {
    /// What the request used, for the user's next reservations.
    pub fn observed(&self, tokens: u64) {
        let mut ledger = self.gateway.ledger();
        let entry = ledger.entry(self.user.clone()).or_default();
        entry.largest = entry.largest.max(tokens);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut ledger = self.gateway.ledger();
        if let Some(entry) = ledger.get_mut(&self.user) {
            entry.reserved = entry.reserved.saturating_sub(self.tokens);
        }
    }
}

/// The first day of this month and of the next (UTC, `YYYY-MM-DD`).
pub fn month_bounds(today: chrono::NaiveDate) -> (String, String) {
    use chrono::Datelike as _;
    let first = today.with_day(1).unwrap_or(today);
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    (
        first.format("%Y-%m-%d").to_string(),
        next.format("%Y-%m-%d").to_string(),
    )
}

/// `2000000` → `2,000,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Admits a request of `user` against their budget: `None` without a budget, a reservation
/// within it, `402 budget_exceeded` past it.
///
/// # Errors
/// Over budget, or the book cannot be read.
pub async fn admit(gateway: &Gateway, user: &str) -> Result<Option<Reservation>, OpenAiError> {
    let gateway = gateway.clone();
    let user = user.to_owned();
    tokio::task::spawn_blocking(move || admit_blocking(&gateway, &user))
        .await
        .map_err(|_| unavailable())?
}

fn admit_blocking(gateway: &Gateway, user: &str) -> Result<Option<Reservation>, OpenAiError> {
    let store = gateway.store();
    let Some((budget, _)) = budget_of(gateway, user).map_err(|e| logged(&e))? else {
        return Ok(None);
    };
    let (first, next) = month_bounds(chrono::Utc::now().date_naive());
    // The book is read under the lock: a request that ends meanwhile is either in the book or
    // still reserved, never neither.
    let mut ledger = gateway.ledger();
    let used = store
        .llm_tokens_since(user, &first)
        .map_err(|e| logged(&e))?;
    let entry = ledger.entry(user.to_owned()).or_default();
    if used.saturating_add(entry.reserved) >= budget {
        return Err(OpenAiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_quota",
            "budget_exceeded",
            format!(
                "monthly token budget of {} reached; resets on {next}",
                thousands(budget)
            ),
        ));
    }
    let tokens = entry.largest.max(FIRST_RESERVE);
    entry.reserved = entry.reserved.saturating_add(tokens);
    drop(ledger);
    Ok(Some(Reservation {
        gateway: gateway.clone(),
        user: user.to_owned(),
        tokens,
    }))
}

/// The user's monthly budget and whether it is their own (`true`) or their role's; `None`
/// without one (unlimited, or no budget for the role). Blocking (the store).
///
/// # Errors
/// The store cannot be read.
pub fn budget_of(gateway: &Gateway, user: &str) -> Result<Option<(u64, bool)>, String> {
    let store = gateway.store();
    match store.llm_budget(user).map_err(|e| e.to_string())? {
        Some(crate::store::UNLIMITED) => Ok(None),
        Some(tokens) => Ok(Some((tokens, true))),
        None => {
            let admin = store
                .user(user)
                .map_err(|e| e.to_string())?
                .is_some_and(|u| u.role == crate::identity::Role::Admin);
            let budgets = gateway.config().budgets;
            Ok(if admin { budgets.admin } else { budgets.user }.map(|t| (t, false)))
        }
    }
}

/// A user's budget and their use of it this month, for the Usage page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub tokens: u64,
    pub used: u64,
    /// `YYYY-MM-DD`: the first of next month (UTC).
    pub resets_on: String,
    /// The user's own budget, not their role's.
    pub own: bool,
}

/// [`Standing`] of `user`, `None` without a budget. Blocking (the store).
///
/// # Errors
/// The store cannot be read.
pub fn standing(gateway: &Gateway, user: &str) -> Result<Option<Standing>, String> {
    let Some((tokens, own)) = budget_of(gateway, user)? else {
        return Ok(None);
    };
    let (first, next) = month_bounds(chrono::Utc::now().date_naive());
    let used = gateway
        .store()
        .llm_tokens_since(user, &first)
        .map_err(|e| e.to_string())?;
    Ok(Some(Standing {
        tokens,
        used,
        resets_on: next,
        own,
    }))
}

fn logged(error: &dyn std::fmt::Display) -> OpenAiError {
    tracing::error!("model gateway: reading the budget: {error}");
    unavailable()
}

fn unavailable() -> OpenAiError {
    OpenAiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "api_error",
        "gateway_error",
        "Octo's model gateway cannot serve this request now; try again".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_numbers() {
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).expect("date");
        assert_eq!(
            month_bounds(day(2026, 12, 3)),
            ("2026-12-01".to_owned(), "2027-01-01".to_owned())
        );
        assert_eq!(
            month_bounds(day(2027, 1, 31)),
            ("2027-01-01".to_owned(), "2027-02-01".to_owned())
        );
        assert_eq!(thousands(2_000_000), "2,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }
}
