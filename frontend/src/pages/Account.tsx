// The account page: who you are, change password, API tokens, sign out.
import { useState } from "react";
import { api, signOut as signOutEverywhere, type User } from "../api";
import { ErrorBanner } from "../components/ErrorBanner";
import { ApiTokensSection } from "./ApiTokens";

export function AccountPage(props: { user: User; onSignedOut: (notice: string | null) => void }): JSX.Element {
  const { user } = props;
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [repeat, setRepeat] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [done, setDone] = useState(false);

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    setDone(false);
    if (next !== repeat) {
      setError(new Error("The new passwords differ."));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await api.changePassword(current, next);
      setDone(true);
      setCurrent("");
      setNext("");
      setRepeat("");
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const signOut = async () => {
    // Even if the request failed the user asked to leave: show the sign-in page (unless the
    // browser is leaving for the provider's end-session page).
    if (await signOutEverywhere()) props.onSignedOut(null);
  };

  return (
    <main className="page narrow-page">
      <h1>Account</h1>
      <section className="card">
        <dl className="facts">
          <dt>Username</dt>
          <dd data-testid="account-username">{user.name}</dd>
          <dt>Role</dt>
          <dd>{user.role}</dd>
          <dt>Member since</dt>
          <dd>{new Date(user.created_at).toLocaleDateString()}</dd>
          {user.identity_provider && (
            <>
              <dt>Signs in with</dt>
              <dd data-testid="account-provider">{user.identity_provider}</dd>
            </>
          )}
        </dl>
      </section>
      {!user.identity_provider && (
      <section className="card">
        <h2>Change password</h2>
        <p className="muted small-text">Other browsers signed in to this account are signed out.</p>
        <form onSubmit={(event) => void submit(event)}>
          <ErrorBanner error={error} />
          {done && (
            <div className="notice success" role="status" data-testid="password-changed">
              Password changed.
            </div>
          )}
          <label className="field">
            <span>Current password</span>
            <input
              type="password"
              data-testid="password-current"
              autoComplete="current-password"
              required
              value={current}
              onChange={(event) => setCurrent(event.target.value)}
            />
          </label>
          <label className="field">
            <span>New password</span>
            <input
              type="password"
              data-testid="password-new"
              autoComplete="new-password"
              required
              value={next}
              onChange={(event) => setNext(event.target.value)}
            />
          </label>
          <label className="field">
            <span>Repeat new password</span>
            <input
              type="password"
              data-testid="password-repeat"
              autoComplete="new-password"
              required
              value={repeat}
              onChange={(event) => setRepeat(event.target.value)}
            />
          </label>
          <button className="btn primary" type="submit" data-testid="password-submit" disabled={busy}>
            {busy ? "Changing…" : "Change password"}
          </button>
        </form>
      </section>
      )}
      <ApiTokensSection user={user} />
      <section className="card">
        <h2>Sign out</h2>
        <p className="muted small-text">Ends this browser's sign-in.</p>
        <button className="btn" onClick={() => void signOut()}>
          Sign out
        </button>
      </section>
    </main>
  );
}
