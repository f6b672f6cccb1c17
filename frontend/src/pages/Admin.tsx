// Admin pages (role admin): users (role, disable/enable, monthly token budget), invite codes (generate, copy, revoke),
// every user's sessions, the audit log (filtered by actor, action and time; paged).
import { useCallback, useEffect, useMemo, useState } from "react";
import { api, type AuditEntry, type Invite, type Role, type Template, type User } from "../api";
import { copyText } from "../clipboard";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { ErrorBanner } from "../components/ErrorBanner";
import { Link } from "../components/Link";
import { SessionTable } from "../components/SessionTable";
import type { Route } from "../router";
import { formatTime, usePolledSessions } from "../sessions";
import { AUDIT_FETCH, NO_FILTER, distinct, filterAudit, pageOf, parseLocalTime, type AuditFilter } from "./audit";
import { EXPIRY_CHOICES, inviteLink, inviteStatus } from "./invites";
import { budgetBody, type BudgetChoice } from "./usage";

export function AdminPage(props: { route: Route; self: User }): JSX.Element {
  const tabs = [
    { name: "admin-users", href: "/admin/users", label: "Users" },
    { name: "admin-invites", href: "/admin/invites", label: "Invite codes" },
    { name: "admin-sessions", href: "/admin/sessions", label: "All sessions" },
    { name: "admin-audit", href: "/admin/audit", label: "Audit log" },
  ] as const;
  return (
    <main className="page">
      <h1>Administration</h1>
      <nav className="subnav" aria-label="Administration">
        {tabs.map((tab) => (
          <Link key={tab.name} href={tab.href} aria-current={props.route.name === tab.name ? "page" : undefined}>
            {tab.label}
          </Link>
        ))}
      </nav>
      {props.route.name === "admin-users" && <UsersAdmin self={props.self} />}
      {props.route.name === "admin-invites" && <InvitesAdmin />}
      {props.route.name === "admin-sessions" && <SessionsAdmin />}
      {props.route.name === "admin-audit" && <AuditAdmin />}
    </main>
  );
}

function UsersAdmin(props: { self: User }): JSX.Element {
  const [users, setUsers] = useState<User[] | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const [pending, setPending] = useState<string | null>(null);
  const [budgetOf, setBudgetOf] = useState<string | null>(null);

  const load = useCallback(() => {
    api.admin.users().then(
      (list) => setUsers(list.slice().sort((a, b) => a.name.localeCompare(b.name))),
      setError,
    );
  }, []);
  useEffect(load, [load]);

  const change = async (user: User, action: () => Promise<User>) => {
    setPending(user.name);
    setError(undefined);
    try {
      const next = await action();
      setUsers((list) => list?.map((u) => (u.name === next.name ? next : u)) ?? null);
    } catch (err) {
      setError(err);
      load();
    } finally {
      setPending(null);
    }
  };

  return (
    <section aria-label="Users">
      <ErrorBanner error={error} onDismiss={() => setError(undefined)} />
      {users === null && !error && <p className="muted">Loading users…</p>}
      {budgetOf && <BudgetDialog name={budgetOf} onDone={() => setBudgetOf(null)} />}
      {users && (
        <table className="table">
          <thead>
            <tr>
              <th>User</th>
              <th>Role</th>
              <th>Status</th>
              <th>Created</th>
              <th className="actions">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {users.map((user) => {
              const self = user.name === props.self.name;
              return (
                <tr key={user.name} data-testid="user-row" data-user={user.name}>
                  <td>
                    <strong>{user.name}</strong>
                    {self && <span className="muted small-text"> (you)</span>}
                  </td>
                  <td>
                    <select
                      aria-label={`Role of ${user.name}`}
                      data-testid="user-role"
                      value={user.role}
                      disabled={self || pending === user.name}
                      onChange={(event) => {
                        const role = event.target.value as Role;
                        void change(user, () => api.admin.setRole(user.name, role));
                      }}
                    >
                      <option value="user">user</option>
                      <option value="admin">admin</option>
                    </select>
                  </td>
                  <td>
                    <span className={user.disabled ? "badge failed" : "badge running"}>
                      {user.disabled ? "Disabled" : "Active"}
                    </span>
                  </td>
                  <td className="muted">{formatTime(user.created_at)}</td>
                  <td className="actions">
                    <button
                      className="btn small"
                      data-testid="user-budget"
                      disabled={pending === user.name}
                      onClick={() => setBudgetOf(user.name)}
                    >
                      Budget…
                    </button>{" "}
                    {user.disabled ? (
                      <button
                        className="btn small"
                        data-testid="user-enable"
                        disabled={pending === user.name}
                        onClick={() => void change(user, () => api.admin.enable(user.name))}
                      >
                        Enable
                      </button>
                    ) : (
                      <button
                        className="btn small danger"
                        data-testid="user-disable"
                        disabled={self || pending === user.name}
                        title={self ? "You cannot disable yourself" : undefined}
                        onClick={() => void change(user, () => api.admin.disable(user.name))}
                      >
                        Disable
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

function InvitesAdmin(): JSX.Element {
  const [invites, setInvites] = useState<Invite[] | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const [role, setRole] = useState<Role>("user");
  const [uses, setUses] = useState("1");
  const [expiry, setExpiry] = useState<string>(String(EXPIRY_CHOICES[2].seconds));
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<Invite | null>(null);
  const [copied, setCopied] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<Invite | null>(null);

  const load = useCallback(() => {
    api.admin.invites().then(
      (list) => setInvites(list.slice().sort((a, b) => b.created_at - a.created_at)),
      setError,
    );
  }, []);
  useEffect(load, [load]);

  const generate = async (event: React.FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    setCopied(null);
    try {
      const seconds = expiry === "" ? null : Number(expiry);
      const invite = await api.admin.createInvite(role, Number(uses), seconds);
      setCreated(invite);
      load();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const copy = async (text: string, what: string) => {
    try {
      await copyText(text);
      setCopied(what);
    } catch {
      setError(new Error("The browser did not allow copying; select the code and copy it by hand."));
    }
  };

  const revoke = async (invite: Invite) => {
    setRevoking(null);
    setError(undefined);
    try {
      await api.admin.revokeInvite(invite.code);
      if (created?.code === invite.code) setCreated(null);
    } catch (err) {
      setError(err);
    }
    load();
  };

  const now = Date.now();
  return (
    <section aria-label="Invite codes">
      <form className="card inline-form" onSubmit={(event) => void generate(event)}>
        <label className="field">
          <span>Role</span>
          <select data-testid="invite-role" value={role} onChange={(event) => setRole(event.target.value as Role)}>
            <option value="user">user</option>
            <option value="admin">admin</option>
          </select>
        </label>
        <label className="field">
          <span>Uses</span>
          <input
            data-testid="invite-uses"
            type="number"
            min={1}
            max={1000}
            required
            value={uses}
            onChange={(event) => setUses(event.target.value)}
            style={{ width: 90 }}
          />
        </label>
        <label className="field">
          <span>Expires</span>
          <select data-testid="invite-expiry" value={expiry} onChange={(event) => setExpiry(event.target.value)}>
            {EXPIRY_CHOICES.map((choice) => (
              <option key={choice.label} value={choice.seconds === null ? "" : String(choice.seconds)}>
                {choice.label}
              </option>
            ))}
          </select>
        </label>
        <button className="btn primary" type="submit" data-testid="invite-generate" disabled={busy}>
          {busy ? "Generating…" : "Generate invite code"}
        </button>
      </form>
      <ErrorBanner error={error} onDismiss={() => setError(undefined)} />
      {created && (
        <div className="notice success new-invite" role="status">
          <div>
            New invite code: <code data-testid="invite-new-code">{created.code}</code>
          </div>
          <div className="new-invite-actions">
            <button className="btn small" data-testid="invite-copy" onClick={() => void copy(created.code, "code")}>
              {copied === "code" ? "Copied ✓" : "Copy code"}
            </button>
            <button
              className="btn small"
              data-testid="invite-copy-link"
              onClick={() => void copy(inviteLink(window.location.origin, created.code), "link")}
            >
              {copied === "link" ? "Copied ✓" : "Copy sign-up link"}
            </button>
          </div>
        </div>
      )}
      {invites === null && !error && <p className="muted">Loading invite codes…</p>}
      {invites && invites.length === 0 && <p className="muted">No invite codes.</p>}
      {invites && invites.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th>Code</th>
              <th>Role</th>
              <th>Uses left</th>
              <th>Expires</th>
              <th>Created by</th>
              <th className="actions">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {invites.map((invite) => {
              const status = inviteStatus(invite, now);
              return (
                <tr key={invite.code} data-testid="invite-row" data-code={invite.code}>
                  <td>
                    <code>{invite.code}</code>
                    {status !== "valid" && <span className="badge failed invite-status">{status}</span>}
                  </td>
                  <td>{invite.role}</td>
                  <td>{invite.uses_left}</td>
                  <td className="muted">
                    {invite.expires_at === null ? "never" : new Date(invite.expires_at).toLocaleString()}
                  </td>
                  <td className="muted">
                    {invite.created_by}, {formatTime(invite.created_at)}
                  </td>
                  <td className="actions">
                    <button className="btn small" onClick={() => void copy(invite.code, invite.code)}>
                      {copied === invite.code ? "Copied ✓" : "Copy"}
                    </button>
                    <button className="btn small danger" data-testid="invite-revoke" onClick={() => setRevoking(invite)}>
                      Revoke
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {revoking && (
        <ConfirmDialog
          title="Revoke this invite code?"
          confirmLabel="Revoke"
          danger
          onCancel={() => setRevoking(null)}
          onConfirm={() => void revoke(revoking)}
        >
          <p>
            <code>{revoking.code}</code> can no longer be used to create an account. Accounts already created with it
            stay.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}

function SessionsAdmin(): JSX.Element {
  const { sessions, error, replace } = usePolledSessions(api.admin.sessions);
  const [templates, setTemplates] = useState<Template[] | null>(null);
  useEffect(() => {
    api.templates().then(setTemplates, () => setTemplates([]));
  }, []);
  return (
    <section aria-label="All sessions">
      <ErrorBanner error={error} />
      {sessions === null && !error && <p className="muted">Loading sessions…</p>}
      {sessions && sessions.length === 0 && <p className="muted">No sessions.</p>}
      {sessions && sessions.length > 0 && (
        <SessionTable sessions={sessions} templates={templates} showOwner onChanged={replace} />
      )}
    </section>
  );
}

function AuditAdmin(): JSX.Element {
  const [entries, setEntries] = useState<AuditEntry[] | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const [filter, setFilter] = useState<AuditFilter>(NO_FILTER);
  const [times, setTimes] = useState({ from: "", to: "" });
  const [page, setPage] = useState(0);

  const load = useCallback(() => {
    api.admin.audit(AUDIT_FETCH).then((list) => {
      setEntries(list);
      setError(undefined);
    }, setError);
  }, []);
  useEffect(load, [load]);

  const actors = useMemo(() => distinct(entries ?? [], "actor"), [entries]);
  const actions = useMemo(() => distinct(entries ?? [], "action"), [entries]);
  const matching = useMemo(() => filterAudit(entries ?? [], filter), [entries, filter]);
  const shown = pageOf(matching, page);
  const change = (next: Partial<AuditFilter>) => {
    setFilter((f) => ({ ...f, ...next }));
    setPage(0);
  };

  return (
    <section aria-label="Audit log">
      <form className="card inline-form" data-testid="audit-filter" onSubmit={(event) => event.preventDefault()}>
        <label className="field">
          <span>Actor</span>
          <select data-testid="audit-actor" value={filter.actor} onChange={(e) => change({ actor: e.target.value })}>
            <option value="">anyone</option>
            {actors.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Action</span>
          <select data-testid="audit-action" value={filter.action} onChange={(e) => change({ action: e.target.value })}>
            <option value="">any</option>
            {actions.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>From</span>
          <input
            type="datetime-local"
            data-testid="audit-from"
            value={times.from}
            onChange={(e) => {
              setTimes((t) => ({ ...t, from: e.target.value }));
              change({ from: parseLocalTime(e.target.value) });
            }}
          />
        </label>
        <label className="field">
          <span>Until</span>
          <input
            type="datetime-local"
            data-testid="audit-to"
            value={times.to}
            onChange={(e) => {
              setTimes((t) => ({ ...t, to: e.target.value }));
              change({ to: parseLocalTime(e.target.value) });
            }}
          />
        </label>
        <button type="button" className="btn" data-testid="audit-refresh" onClick={load}>
          Refresh
        </button>
      </form>
      <ErrorBanner error={error} onDismiss={() => setError(undefined)} />
      {entries === null && !error && <p className="muted">Loading the audit log…</p>}
      {entries && (
        <p className="muted" data-testid="audit-count">
          {matching.length} of the newest {entries.length} entries
          {entries.length >= AUDIT_FETCH ? ` (the log keeps more; the newest ${AUDIT_FETCH} are searched)` : ""}.
        </p>
      )}
      {entries && shown.items.length > 0 && (
        <table className="table" data-testid="audit-table">
          <thead>
            <tr>
              <th>Time</th>
              <th>Actor</th>
              <th>Action</th>
              <th>Target</th>
              <th>Detail</th>
            </tr>
          </thead>
          <tbody>
            {shown.items.map((e) => (
              <tr key={e.id} data-testid="audit-row" data-actor={e.actor} data-action={e.action}>
                <td title={new Date(e.time).toLocaleString()}>{formatTime(e.time)}</td>
                <td>{e.actor}</td>
                <td>
                  <code>{e.action}</code>
                </td>
                <td>{e.target}</td>
                <td>{e.detail}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {entries && shown.pages > 1 && (
        <nav className="pager" aria-label="Audit log pages">
          <button type="button" className="btn small" data-testid="audit-prev" disabled={shown.page === 0} onClick={() => setPage(shown.page - 1)}>
            Newer
          </button>
          <span data-testid="audit-page">
            Page {shown.page + 1} of {shown.pages}
          </span>
          <button
            type="button"
            className="btn small"
            data-testid="audit-next"
            disabled={shown.page + 1 >= shown.pages}
            onClick={() => setPage(shown.page + 1)}
          >
            Older
          </button>
        </nav>
      )}
    </section>
  );
}

/** An admin sets one user's monthly token budget: their role's, unlimited, or their own. */
function BudgetDialog(props: { name: string; onDone: () => void }): JSX.Element {
  const [standing, setStanding] = useState<string>("Loading…");
  const [choice, setChoice] = useState<BudgetChoice>("role");
  const [tokens, setTokens] = useState("");
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => {
    let live = true;
    api.usage(1, props.name).then(
      (report) => {
        if (!live) return;
        const b = report.budget;
        if (!b) {
          setStanding("No budget: unlimited.");
          return;
        }
        setStanding(
          `${b.used.toLocaleString()} of ${b.tokens.toLocaleString()} tokens used this month (${b.set_for === "user" ? "their own budget" : "their role's"}); resets on ${b.resets_on}.`,
        );
        if (b.set_for === "user") {
          setChoice("own");
          setTokens(String(b.tokens));
        }
      },
      (err: unknown) => live && setError(err),
    );
    return () => {
      live = false;
    };
  }, [props.name]);
  const save = () => {
    const made = budgetBody(choice, tokens);
    if ("error" in made) {
      setError(new Error(made.error));
      return;
    }
    api.admin.setBudget(props.name, made.body).then(props.onDone, setError);
  };
  return (
    <ConfirmDialog title={`Monthly token budget of ${props.name}`} confirmLabel="Save" onConfirm={save} onCancel={props.onDone}>
      <p className="muted" data-testid="budget-standing">
        {standing}
      </p>
      <ErrorBanner error={error} onDismiss={() => setError(undefined)} />
      <fieldset className="budget-choices">
        <legend className="visually-hidden">Budget</legend>
        <label>
          <input type="radio" name="budget" data-testid="budget-role" checked={choice === "role"} onChange={() => setChoice("role")} />{" "}
          Their role's budget
        </label>
        <label>
          <input
            type="radio"
            name="budget"
            data-testid="budget-unlimited"
            checked={choice === "unlimited"}
            onChange={() => setChoice("unlimited")}
          />{" "}
          Unlimited
        </label>
        <label>
          <input type="radio" name="budget" data-testid="budget-own" checked={choice === "own"} onChange={() => setChoice("own")} />{" "}
          Their own:{" "}
          <input
            type="text"
            inputMode="numeric"
            data-testid="budget-tokens"
            aria-label="Tokens a month"
            value={tokens}
            placeholder="2,000,000"
            onFocus={() => setChoice("own")}
            onChange={(event) => setTokens(event.target.value)}
          />{" "}
          tokens a month
        </label>
      </fieldset>
    </ConfirmDialog>
  );
}
