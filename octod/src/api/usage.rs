//! `GET /api/usage` (and the admin socket's `GET /admin/v1/usage`): the model gateway's usage
//! book over a period. A user sees their own; an admin everyone's, or one user's.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;

use crate::engine::Engine;
use crate::http::ApiError;
use crate::service::Caller;
use crate::store::UsageFilter;
use octo_wire::{
    BudgetView, ModelList, ModelView, SetBudget, UsageQuery, UsageReport, UsageRowView,
};

/// The period without `since_days`, and the longest.
pub const DEFAULT_DAYS: u32 = 30;
pub const MAX_DAYS: u32 = 366;

/// The first day (UTC, `YYYY-MM-DD`) of the last `days` days, today included.
pub fn first_day(days: u32) -> String {
    let today = chrono::Utc::now().date_naive();
    (today - chrono::Days::new(u64::from(days.saturating_sub(1))))
        .format("%Y-%m-%d")
        .to_string()
}

pub async fn usage<C: Caller>(
    State(engine): State<Engine>,
    State(llm): State<Option<crate::llm::Gateway>>,
    caller: C,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UsageReport>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let days = query.since_days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::bad_request(format!(
            "since_days must be 1 to {MAX_DAYS}"
        )));
    }
    let me = caller.user();
    let user = match query.user {
        Some(user) if user != me.name && !me.is_admin() => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only admins see other users' usage",
            ));
        }
        Some(user) => Some(user),
        None if me.is_admin() => None,
        None => Some(me.name.clone()),
    };
    let since = first_day(days);
    let filter = UsageFilter {
        user: user.clone(),
        since_day: Some(since.clone()),
    };
    let rows = engine
        .store()
        .run(move |s| s.llm_usage(&filter))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let rows: Vec<UsageRowView> = rows
        .into_iter()
        .map(|r| UsageRowView {
            day: r.day,
            user: r.user,
            session: r.session,
            model: r.model,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            requests: r.requests,
        })
        .collect();
    // One user's report carries their budget's standing this month.
    let budget = match (&user, llm) {
        (Some(name), Some(gateway)) => {
            let name = name.clone();
            tokio::task::spawn_blocking(move || crate::llm::budget::standing(&gateway, &name))
                .await
                .map_err(|e| ApiError::internal(&e))?
                .map_err(|e| ApiError::internal(&e))?
                .map(|s| BudgetView {
                    tokens: s.tokens,
                    used: s.used,
                    resets_on: s.resets_on,
                    set_for: if s.own { "user" } else { "role" }.to_owned(),
                })
        }
        _ => None,
    };
    Ok(Json(UsageReport {
        since,
        budget,
        user,
        prompt_tokens: rows.iter().map(|r| r.prompt_tokens).sum(),
        completion_tokens: rows.iter().map(|r| r.completion_tokens).sum(),
        requests: rows.iter().map(|r| r.requests).sum(),
        rows,
    }))
}

/// `POST /admin/v1/users/{name}/budget` (`octoctl user set-budget`): a user's monthly token
/// budget, unlimited, or back to the role's. Audited as `user.budget`.
pub async fn set_budget<A: crate::service::AdminCaller>(
    State(engine): State<Engine>,
    admin: A,
    axum::extract::Path(name): axum::extract::Path<String>,
    crate::http::JsonBody(body): crate::http::JsonBody<SetBudget>,
) -> Result<StatusCode, ApiError> {
    let tokens = match (body.monthly_tokens, body.unlimited) {
        (Some(_), true) => {
            return Err(ApiError::bad_request(
                "give monthly_tokens or unlimited, not both",
            ));
        }
        (Some(tokens), false) => Some(tokens),
        (None, true) => Some(crate::store::UNLIMITED),
        (None, false) => None,
    };
    let store = engine.store().clone();
    let who = name.clone();
    let known = tokio::task::spawn_blocking(move || store.user(&who))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?
        .is_some();
    if !known {
        return Err(ApiError::not_found(format!("no user {name}")));
    }
    let who = name.clone();
    engine
        .store()
        .run(move |s| s.set_llm_budget(&who, tokens))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let detail = match tokens {
        Some(crate::store::UNLIMITED) => "unlimited".to_owned(),
        Some(tokens) => format!("{tokens} tokens a month"),
        None => "the role's".to_owned(),
    };
    crate::service::audit_detail(&engine, &admin.user().name, "user.budget", &name, &detail);
    Ok(StatusCode::NO_CONTENT)
}

/// opencode's provider id for the model gateway in every session (`container/setup.py`).
pub const OPENCODE_PROVIDER: &str = "octo";

/// `GET /api/models`: the models the caller may choose for a prompt (`[llm.allow]` of their
/// role), the default first; none without a model gateway.
pub async fn models<C: Caller>(
    State(llm): State<Option<crate::llm::Gateway>>,
    caller: C,
) -> Json<ModelList> {
    let role = if caller.user().is_admin() {
        crate::identity::Role::Admin
    } else {
        crate::identity::Role::User
    };
    let Some(llm) = llm else {
        return Json(ModelList {
            models: Vec::new(),
            default: None,
            opencode_provider: OPENCODE_PROVIDER.to_owned(),
        });
    };
    let config = llm.config();
    let models: Vec<ModelView> = config
        .models_for(role)
        .into_iter()
        .map(|id| ModelView {
            provider: config
                .providers
                .iter()
                .find(|p| p.models.contains(&id))
                .map_or_else(|| "default".to_owned(), |p| p.id.clone()),
            id,
        })
        .collect();
    let default = config
        .models
        .first()
        .filter(|m| models.iter().any(|v| &v.id == *m))
        .cloned();
    Json(ModelList {
        models,
        default,
        opencode_provider: OPENCODE_PROVIDER.to_owned(),
    })
}
