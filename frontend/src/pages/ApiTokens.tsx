// The account page's "API tokens" section: the user's tokens (scopes, created, expiry, last use),
// revoking one after a confirmation, and a form that creates one and shows it once.
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError, type User } from "../api";
import { copyText } from "../clipboard";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { ErrorBanner } from "../components/ErrorBanner";
import {
  curlExample,
  DEFAULT_EXPIRY_DAYS,
  DEFAULT_SCOPES,
  describeAgo,
  describeLastUsed,
  EXPIRY_DAYS,
  expiryView,
  scopesFor,
  sortTokens,
  TOKEN_NAME_MAX,
  tokenRequest,
  tokensApi,
  type ApiToken,
  type CreatedApiToken,
  type Scope,
} from "../tokens";

export function ApiTokensSection(props: { user: User }): JSX.Element {
  const offered = scopesFor(props.user.role);
  const [tokens, setTokens] = useState<ApiToken[] | null>(null);
  const [listError, setListError] = useState<unknown>(undefined);
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<ReadonlySet<Scope>>(() => new Set(DEFAULT_SCOPES));
  const [days, setDays] = useState(DEFAULT_EXPIRY_DAYS);
  const [busy, setBusy] = useState(false);
  const [formError, setFormError] = useState<unknown>(undefined);
  const [created, setCreated] = useState<CreatedApiToken | null>(null);
  const [copied, setCopied] = useState(false);
  const [revoking, setRevoking] = useState<ApiToken | null>(null);
  const tokenField = useRef<HTMLInputElement>(null);
  const nameField = useRef<HTMLInputElement>(null);

  const load = useCallback(() => {
    tokensApi.list().then((list) => {
      setTokens(sortTokens(list));
      setListError(undefined);
    }, setListError);
  }, []);
  useEffect(load, [load]);

  // The new token gets the focus, so keyboard and screen reader users land on it and its warning.
  useEffect(() => {
    if (created) tokenField.current?.focus();
  }, [created]);

  const toggle = (scope: Scope, on: boolean) =>
    setScopes((current) => {
      const next = new Set(current);
      if (on) next.add(scope);
      else next.delete(scope);
      return next;
    });

  const create = async (event: React.FormEvent) => {
    event.preventDefault();
    const checked = tokenRequest({ name, scopes, days }, props.user.role);
    if ("problem" in checked) {
      setFormError(new Error(checked.problem));
      return;
    }
    setBusy(true);
    setFormError(undefined);
    setCopied(false);
    try {
      setCreated(await tokensApi.create(checked.request));
      setName("");
      load();
    } catch (err) {
      setFormError(err);
    } finally {
      setBusy(false);
    }
  };

  const copy = async (token: string) => {
    try {
      await copyText(token);
      setCopied(true);
    } catch {
      setFormError(new Error("The browser did not allow copying; select the token and copy it by hand."));
    }
  };

  const dismissCreated = () => {
    setCreated(null);
    setCopied(false);
    nameField.current?.focus();
  };

  const revoke = async (token: ApiToken) => {
    setRevoking(null);
    setListError(undefined);
    try {
      await tokensApi.revoke(token.id);
    } catch (err) {
      // Already gone (revoked elsewhere): what the user asked for is done.
      if (!(err instanceof ApiError && err.status === 404)) setListError(err);
    }
    if (created?.info.id === token.id) setCreated(null);
    load();
  };

  const now = Date.now();
  const origin = window.location.origin;
  return (
    <section className="card tokens" aria-labelledby="tokens-title" data-testid="tokens">
      <h2 id="tokens-title">API tokens</h2>
      <p className="muted small-text">
        A token lets a script or a tool act as you, sent as <code>Authorization: Bearer &lt;token&gt;</code>. It can
        do only what its scopes allow, until it expires or you revoke it.
      </p>

      {created && (
        <div className="notice success token-created" data-testid="token-created" data-token-id={created.info.id}>
          <label className="token-created-label" htmlFor="token-value">
            New token “{created.info.name}”
          </label>
          <div className="token-value-row">
            <input
              id="token-value"
              ref={tokenField}
              className="mono"
              data-testid="token-value"
              readOnly
              value={created.token}
              aria-describedby="token-once"
              spellCheck={false}
              onFocus={(event) => event.target.select()}
            />
            <button type="button" className="btn" data-testid="token-copy" onClick={() => void copy(created.token)}>
              {copied ? "Copied ✓" : "Copy"}
            </button>
          </div>
          <p id="token-once">
            <strong>Copy it now: it will not be shown again.</strong> Octo keeps only a hash of it.
          </p>
          <p className="small-text">
            Try it with the token in <code>OCTO_TOKEN</code>:
          </p>
          <pre className="token-hint">
            <code data-testid="token-curl">{curlExample(origin)}</code>
          </pre>
          {created.info.scopes.includes("sessions:connect") && (
            <>
              <p className="small-text">Or attach to a session's agent, the token as the password:</p>
              <pre className="token-hint">
                <code>opencode attach {origin}/sessions/&lt;id&gt;/opencode</code>
              </pre>
            </>
          )}
          <button type="button" className="btn small" data-testid="token-dismiss" onClick={dismissCreated}>
            Done
          </button>
        </div>
      )}

      <form className="token-form" data-testid="token-form" onSubmit={(event) => void create(event)}>
        <h3>New token</h3>
        <ErrorBanner error={formError} onDismiss={() => setFormError(undefined)} />
        <label className="field">
          <span>Name</span>
          <input
            ref={nameField}
            data-testid="token-name"
            required
            autoComplete="off"
            placeholder="e.g. laptop, CI"
            aria-describedby="token-name-hint"
            value={name}
            onChange={(event) => setName(event.target.value)}
          />
          <small id="token-name-hint" className="muted small-text">
            What it is for; 1 to {TOKEN_NAME_MAX} characters.
          </small>
        </label>
        <fieldset className="scope-choices">
          <legend>Scopes</legend>
          {offered.map((info) => (
            <label key={info.scope} className="scope-choice">
              <input
                type="checkbox"
                data-testid={`token-scope-${info.scope}`}
                checked={scopes.has(info.scope)}
                onChange={(event) => toggle(info.scope, event.target.checked)}
              />
              <code>{info.scope}</code>
              <span className="muted">{info.description}</span>
            </label>
          ))}
        </fieldset>
        <label className="field">
          <span>Expires after</span>
          <select data-testid="token-expiry" value={days} onChange={(event) => setDays(Number(event.target.value))}>
            {EXPIRY_DAYS.map((d) => (
              <option key={d} value={d}>
                {d} days
              </option>
            ))}
          </select>
        </label>
        <button className="btn primary" type="submit" data-testid="token-create" disabled={busy}>
          {busy ? "Creating…" : "Create token"}
        </button>
      </form>

      <h3>Your tokens</h3>
      <ErrorBanner error={listError} onDismiss={() => setListError(undefined)} />
      {tokens === null && !listError && <p className="muted">Loading tokens…</p>}
      {tokens && tokens.length === 0 && (
        <p className="muted" data-testid="tokens-empty">
          No tokens.
        </p>
      )}
      {tokens && tokens.length > 0 && (
        <ul className="token-list" aria-label="Your tokens">
          {tokens.map((token) => {
            const expiry = expiryView(token, now);
            const expired = expiry.expired;
            return (
              <li
                key={token.id}
                className="token-item"
                data-testid="token-row"
                data-token-id={token.id}
                data-token-name={token.name}
                data-expired={expired ? "true" : "false"}
              >
                <div className="token-main">
                  <div>
                    <span className="token-name">{token.name}</span>
                    {expired && <span className="badge failed token-status">expired</span>}
                  </div>
                  <ul className="token-scopes" aria-label="Scopes">
                    {token.scopes.map((scope) => (
                      <li key={scope}>
                        <code>{scope}</code>
                      </li>
                    ))}
                  </ul>
                  <div className="token-meta">
                    <span title={new Date(token.created_at).toLocaleString()}>
                      Created {describeAgo(token.created_at, now)}
                    </span>
                    <span title={new Date(token.expires_at).toLocaleString()}>
                      {expired ? "Expired" : "Expires"}{" "}
                      <span data-testid="token-expires">{expiry.text}</span>
                    </span>
                    <span title={token.last_used_at === null ? undefined : new Date(token.last_used_at).toLocaleString()}>
                      Last used <span data-testid="token-last-used">{describeLastUsed(token, now)}</span>
                    </span>
                  </div>
                </div>
                <button
                  className="btn small danger"
                  data-testid="token-revoke"
                  aria-label={`Revoke token ${token.name}`}
                  onClick={() => setRevoking(token)}
                >
                  Revoke
                </button>
              </li>
            );
          })}
        </ul>
      )}
      {revoking && (
        <ConfirmDialog
          title="Revoke this token?"
          confirmLabel="Revoke"
          danger
          onCancel={() => setRevoking(null)}
          onConfirm={() => void revoke(revoking)}
        >
          <p>
            “{revoking.name}” stops working at once: whatever uses it is refused. This cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
