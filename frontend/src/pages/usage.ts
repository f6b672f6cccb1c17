// The usage book's rows summed for the Usage page (pure, tested): tokens per day for the chart,
// and per session and model for the table.
import type { UsageRow } from "../api";

export interface DayTotal {
  day: string;
  prompt: number;
  completion: number;
}

export interface GroupTotal {
  key: string;
  user: string;
  session: string;
  model: string;
  prompt: number;
  completion: number;
  requests: number;
}

/** Every day from `since` to `until` (YYYY-MM-DD, UTC), with the tokens used on it (0 for none). */
export function byDay(rows: UsageRow[], since: string, until: string): DayTotal[] {
  const totals = new Map<string, DayTotal>();
  for (let day = new Date(`${since}T00:00:00Z`); ; day = new Date(day.getTime() + 86_400_000)) {
    const key = day.toISOString().slice(0, 10);
    if (key > until || totals.size > 400) break;
    totals.set(key, { day: key, prompt: 0, completion: 0 });
  }
  for (const row of rows) {
    const total = totals.get(row.day) ?? { day: row.day, prompt: 0, completion: 0 };
    total.prompt += row.prompt_tokens;
    total.completion += row.completion_tokens;
    totals.set(row.day, total);
  }
  return [...totals.values()].sort((a, b) => a.day.localeCompare(b.day));
}

/** The rows summed per user, session and model, most tokens first. */
export function bySessionAndModel(rows: UsageRow[]): GroupTotal[] {
  const groups = new Map<string, GroupTotal>();
  for (const row of rows) {
    const key = `${row.user}\t${row.session}\t${row.model}`;
    const group = groups.get(key) ?? { key, user: row.user, session: row.session, model: row.model, prompt: 0, completion: 0, requests: 0 };
    group.prompt += row.prompt_tokens;
    group.completion += row.completion_tokens;
    group.requests += row.requests;
    groups.set(key, group);
  }
  return [...groups.values()].sort((a, b) => b.prompt + b.completion - (a.prompt + a.completion) || a.key.localeCompare(b.key));
}

/** A budget's standing for the Usage page: what is left, and how full, 0–100 (pure, tested). */
export function budgetStanding(budget: { tokens: number; used: number }): { left: number; percent: number; over: boolean } {
  const left = Math.max(0, budget.tokens - budget.used);
  const percent = budget.tokens > 0 ? Math.min(100, Math.round((budget.used / budget.tokens) * 100)) : 100;
  return { left, percent, over: budget.used >= budget.tokens };
}

/** The admin's choice of a user's budget. */
export type BudgetChoice = "role" | "unlimited" | "own";

/**
 * The body of `POST /api/admin/users/{name}/budget` for a choice, or why it cannot be sent
 * (pure, tested). `tokens` is what the admin typed: digits, with or without separators.
 */
export function budgetBody(
  choice: BudgetChoice,
  tokens: string,
): { body: { monthly_tokens?: number; unlimited?: boolean } } | { error: string } {
  if (choice === "role") return { body: {} };
  if (choice === "unlimited") return { body: { unlimited: true } };
  const digits = tokens.replace(/[\s,._']/g, "");
  if (!/^\d+$/.test(digits)) return { error: "Give the budget as a whole number of tokens." };
  const n = Number(digits);
  if (!Number.isSafeInteger(n) || n < 1) return { error: "The budget must be at least 1 token." };
  return { body: { monthly_tokens: n } };
}
