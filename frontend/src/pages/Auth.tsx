// Sign-in and registration (with an invite code) pages.
import { useState } from "react";
import { api, type User } from "../api";
import { ErrorBanner } from "../components/ErrorBanner";
import { Link } from "../components/Link";
import { ThemeToggle } from "../components/ThemeToggle";

export function LoginPage(props: { notice: string | null; onSignedIn: (user: User) => void }): JSX.Element {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      props.onSignedIn(await api.login(username, password));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <main className="center-page">
      <div className="corner-actions">
        <ThemeToggle />
      </div>
      <form className="card narrow auth-card" onSubmit={(event) => void submit(event)} aria-labelledby="login-title">
        <div className="auth-brand" aria-hidden="true">◉</div>
        <h1 id="login-title">Sign in to Octo</h1>
        {props.notice && (
          <div className="notice" role="status" data-testid="login-notice">
            {props.notice}
          </div>
        )}
        <ErrorBanner error={error} />
        <label className="field">
          <span>Username</span>
          <input
            data-testid="login-username"
            name="username"
            autoComplete="username"
            autoFocus
            required
            value={username}
            onChange={(event) => setUsername(event.target.value)}
          />
        </label>
        <label className="field">
          <span>Password</span>
          <input
            data-testid="login-password"
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(event) => setPassword(event.target.value)}
          />
        </label>
        <button className="btn primary block" data-testid="login-submit" type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p className="muted small-text">
          Have an invite code?{" "}
          <Link href="/register" data-testid="goto-register">
            Create an account
          </Link>
        </p>
      </form>
    </main>
  );
}

export function RegisterPage(props: { invite: string | null; onSignedIn: (user: User) => void }): JSX.Element {
  const [invite, setInvite] = useState(props.invite ?? "");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    if (confirm !== "" && confirm !== password) {
      setError(new Error("The two passwords differ."));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      props.onSignedIn(await api.register(invite.trim(), username, password));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <main className="center-page">
      <div className="corner-actions">
        <ThemeToggle />
      </div>
      <form className="card narrow auth-card" onSubmit={(event) => void submit(event)} aria-labelledby="register-title">
        <div className="auth-brand" aria-hidden="true">◉</div>
        <h1 id="register-title">Create your Octo account</h1>
        <ErrorBanner error={error} />
        <label className="field">
          <span>Invite code</span>
          <input
            data-testid="register-invite"
            name="invite"
            autoComplete="off"
            required
            autoFocus={!props.invite}
            value={invite}
            onChange={(event) => setInvite(event.target.value)}
          />
        </label>
        <label className="field">
          <span>Username</span>
          <input
            data-testid="register-username"
            name="username"
            autoComplete="username"
            required
            autoFocus={!!props.invite}
            value={username}
            onChange={(event) => setUsername(event.target.value)}
          />
        </label>
        <label className="field">
          <span>Password</span>
          <input
            data-testid="register-password"
            name="password"
            type="password"
            autoComplete="new-password"
            required
            value={password}
            onChange={(event) => setPassword(event.target.value)}
          />
        </label>
        <label className="field">
          <span>Repeat password (optional)</span>
          <input
            name="confirm"
            type="password"
            autoComplete="new-password"
            value={confirm}
            onChange={(event) => setConfirm(event.target.value)}
          />
        </label>
        <button className="btn primary block" data-testid="register-submit" type="submit" disabled={busy}>
          {busy ? "Creating account…" : "Create account"}
        </button>
        <p className="muted small-text">
          Already have an account? <Link href="/login">Sign in</Link>
        </p>
      </form>
    </main>
  );
}
