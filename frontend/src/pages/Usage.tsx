// The Usage page: model tokens used through Octo's model gateway, as a chart per day and a table
// per session and model. A user sees their own; an admin everyone's, or one user's.
import { useEffect, useState } from "react";
import { api, type UsageReport, type User } from "../api";
import { ErrorBanner } from "../components/ErrorBanner";
import { budgetStanding, byDay, bySessionAndModel } from "./usage";

const PERIODS = [7, 30, 90];

export function UsagePage(props: { user: User }): JSX.Element {
  const admin = props.user.role === "admin";
  const [days, setDays] = useState(30);
  const [who, setWho] = useState("");
  const [report, setReport] = useState<UsageReport | null>(null);
  const [error, setError] = useState<unknown>(undefined);

  useEffect(() => {
    let live = true;
    setError(undefined);
    api
      .usage(days, admin && who ? who : undefined)
      .then((r) => live && setReport(r))
      .catch((err: unknown) => live && setError(err));
    return () => {
      live = false;
    };
  }, [days, who, admin]);

  const today = new Date().toISOString().slice(0, 10);
  const perDay = report ? byDay(report.rows, report.since, today) : [];
  const peak = Math.max(1, ...perDay.map((d) => d.prompt + d.completion));
  const groups = report ? bySessionAndModel(report.rows) : [];
  const users = report ? [...new Set(report.rows.map((r) => r.user))].sort() : [];

  return (
    <main className="page">
      <h1>Usage</h1>
      <p className="muted">
        Model tokens your sessions' agents used{admin ? " (as an admin: every user's)" : ""}, as the provider reported them.
      </p>
      <div className="usage-controls">
        <label>
          Period{" "}
          <select value={days} onChange={(e) => setDays(Number(e.target.value))} data-testid="usage-period">
            {PERIODS.map((p) => (
              <option key={p} value={p}>
                last {p} days
              </option>
            ))}
          </select>
        </label>
        {admin && (
          <label>
            User{" "}
            <select value={who} onChange={(e) => setWho(e.target.value)} data-testid="usage-user">
              <option value="">everyone</option>
              {[...new Set([...users, ...(who ? [who] : [])])].map((u) => (
                <option key={u} value={u}>
                  {u}
                </option>
              ))}
            </select>
          </label>
        )}
      </div>
      <ErrorBanner error={error} onDismiss={() => setError(undefined)} />
      {report === null && !error && <p className="muted">Loading usage…</p>}
      {report && (
        <>
          <section className="card" aria-label="Totals">
            <dl className="facts">
              <dt>Prompt tokens</dt>
              <dd data-testid="usage-prompt">{report.prompt_tokens.toLocaleString()}</dd>
              <dt>Completion tokens</dt>
              <dd data-testid="usage-completion">{report.completion_tokens.toLocaleString()}</dd>
              <dt>Requests</dt>
              <dd data-testid="usage-requests">{report.requests.toLocaleString()}</dd>
            </dl>
          </section>
          {report.budget && <BudgetCard budget={report.budget} mine={!report.user || report.user === props.user.name} />}
          <section className="card" aria-label="Tokens per day">
            <h2>Tokens per day</h2>
            <div className="usage-chart" role="img" aria-label={`Tokens per day since ${report.since}`}>
              {perDay.map((d) => {
                const total = d.prompt + d.completion;
                return (
                  <div key={d.day} className="usage-bar" title={`${d.day}: ${d.prompt} prompt + ${d.completion} completion tokens`}>
                    <div className="usage-bar-fill" style={{ height: `${(100 * total) / peak}%` }} data-day={d.day} data-tokens={total} />
                  </div>
                );
              })}
            </div>
            <div className="usage-axis muted small-text">
              <span>{report.since}</span>
              <span>{today}</span>
            </div>
          </section>
          <section aria-label="By session and model">
            <h2>By session and model</h2>
            {groups.length === 0 ? (
              <p className="muted">No model requests in this period.</p>
            ) : (
              <table className="table" data-testid="usage-table">
                <thead>
                  <tr>
                    {admin && <th>User</th>}
                    <th>Session</th>
                    <th>Model</th>
                    <th>Prompt</th>
                    <th>Completion</th>
                    <th>Requests</th>
                  </tr>
                </thead>
                <tbody>
                  {groups.map((g) => (
                    <tr key={g.key} data-testid="usage-row" data-session={g.session} data-model={g.model}>
                      {admin && <td>{g.user}</td>}
                      <td>{g.session}</td>
                      <td>{g.model}</td>
                      <td data-testid="usage-row-prompt">{g.prompt.toLocaleString()}</td>
                      <td data-testid="usage-row-completion">{g.completion.toLocaleString()}</td>
                      <td>{g.requests.toLocaleString()}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
        </>
      )}
    </main>
  );
}

/** The monthly budget: used, left, when it resets, whose it is. */
function BudgetCard(props: { budget: NonNullable<UsageReport["budget"]>; mine: boolean }): JSX.Element {
  const { budget } = props;
  const { left, percent, over } = budgetStanding(budget);
  return (
    <section className="card" aria-label="Monthly budget" data-testid="usage-budget">
      <h2>Monthly token budget</h2>
      <div
        className={`usage-budget-meter${over ? " over" : ""}`}
        role="meter"
        aria-valuemin={0}
        aria-valuemax={budget.tokens}
        aria-valuenow={Math.min(budget.used, budget.tokens)}
        aria-label="Tokens used this month"
      >
        <div className="usage-budget-fill" style={{ width: `${percent}%` }} />
      </div>
      <p data-testid="usage-budget-text">
        {budget.used.toLocaleString()} of {budget.tokens.toLocaleString()} tokens used this month
        {over ? " — the budget is reached" : `; ${left.toLocaleString()} left`}. It resets on {budget.resets_on} (UTC).{" "}
        <span className="muted">
          {budget.set_for === "user"
            ? `A budget set for ${props.mine ? "you" : "this user"} by an admin.`
            : `The budget of ${props.mine ? "your" : "this user's"} role.`}
        </span>
      </p>
    </section>
  );
}
