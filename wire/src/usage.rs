//! The model gateway's usage: tokens per day, user, session and model (`GET /api/usage`,
//! `GET /admin/v1/usage`).

use serde::{Deserialize, Serialize};

/// The query of `GET /api/usage`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Only this user's usage (an admin's choice; a user sees only their own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The last N days, today included (default 30, at most 366).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_days: Option<u32>,
}

/// One row: what one session used of one model on one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageRowView {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub user: String,
    pub session: String,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub requests: u64,
}

/// A user's monthly token budget (prompt + completion) and this month's use of it (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BudgetView {
    pub tokens: u64,
    /// Used since the first of this month, UTC.
    pub used: u64,
    /// The day the month's use starts again from zero, `YYYY-MM-DD` (UTC).
    pub resets_on: String,
    /// Whose budget it is: `user` (set for the user: `octoctl user set-budget`) or `role`
    /// (`[llm.budgets]`).
    pub set_for: String,
}

/// The usage of a period, and its sums.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageReport {
    /// The first day counted, `YYYY-MM-DD` (UTC).
    pub since: String,
    /// The user the report is limited to, if any.
    pub user: Option<String>,
    /// By day, then user, session and model.
    pub rows: Vec<UsageRowView>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub requests: u64,
    /// The monthly token budget of the report's user and what they used of it this month;
    /// absent for a report of several users, or a user without a budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetView>,
}

/// The body of `POST /admin/v1/users/{name}/budget`: a monthly token budget for one user.
/// `{"monthly_tokens": N}` sets it, `{"unlimited": true}` lifts it, `{}` goes back to the
/// role's (`[llm.budgets]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetBudget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unlimited: bool,
}

/// A model the signed-in user may choose for a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelView {
    /// The model's name, as sessions ask the model gateway for it (opencode's provider
    /// `octo`).
    pub id: String,
    /// The provider that serves it: `default`, or the id of `[llm.providers.<id>]`.
    pub provider: String,
}

/// The models the signed-in user may use, the instance's default first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelList {
    pub models: Vec<ModelView>,
    /// The instance's default model, when the user may use it.
    pub default: Option<String>,
    /// opencode's provider id of every model here (what a prompt names with the model).
    pub opencode_provider: String,
}
