// Sign-in and registration (with an invite code) pages, with the OpenID Connect providers
// the server offers.
import { useEffect, useState } from "react";
import { api, oidcErrorMessage, oidcStartUrl, safeNext, type SignInOptions, type User } from "../api";
import { ErrorBanner } from "../components/ErrorBanner";
import { Link } from "../components/Link";
import { ThemeToggle } from "../components/ThemeToggle";

/** How one may sign in here; until known, passwords (the server's default) and no providers. */
function useSignInOptions(): SignInOptions | null {
  const [options, setOptions] = useState<SignInOptions | null>(null);
  useEffect(() => {
    let live = true;
    api.signInOptions().then(
      (found) => live && setOptions(Array.isArray(found?.providers) ? found : { local_passwords: true, providers: [] }),
      () => live && setOptions({ local_passwords: true, providers: [] }),
    );
    return () => {
      live = false;
    };
  }, []);
  return options;
}

/** "Sign in with …" buttons: navigations to the provider, carrying an invite code if given. */
function ProviderButtons(props: { options: SignInOptions | null; invite: string; verb: string }): JSX.Element | null {
  if (!props.options || props.options.providers.length === 0) return null;
  const next = safeNext(new URLSearchParams(window.location.search).get("next"));
  return (
    <div className="provider-buttons" data-testid="oidc-providers">
      {props.options.providers.map((provider) => (
        <a
          key={provider.id}
          className="btn block"
          data-testid={`oidc-${provider.id}`}
          href={oidcStartUrl(provider.id, next, props.invite.trim() || null)}
        >
          {props.verb} {provider.name}
        </a>
      ))}
    </div>
  );
}

export function LoginPage(props: { notice: string | null; onSignedIn: (user: User) => void }): JSX.Element {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const options = useSignInOptions();
  const query = new URLSearchParams(window.location.search);
  const oidcError = query.get("oidc_error");
  const oidcProvider = query.get("provider") ?? "";
  const providerName = options?.providers.find((p) => p.id === oidcProvider)?.name ?? "The sign-in provider";
  const asksInvite = oidcError === "invite_required" || oidcError === "invalid_invite";
  const [invite, setInvite] = useState("");
  const passwords = options?.local_passwords ?? true;

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
        {oidcError && (
          <ErrorBanner message={oidcErrorMessage(oidcError, providerName)} />
        )}
        <ErrorBanner error={error} />
        {asksInvite && (
          <label className="field">
            <span>Invite code</span>
            <input
              data-testid="oidc-invite"
              name="invite"
              autoComplete="off"
              value={invite}
              onChange={(event) => setInvite(event.target.value)}
            />
          </label>
        )}
        <ProviderButtons options={options} invite={invite} verb={asksInvite ? "Continue with" : "Sign in with"} />
        {passwords && options && options.providers.length > 0 && (
          <p className="muted small-text or-line" aria-hidden="true">
            or
          </p>
        )}
        {passwords && (
          <>
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
          </>
        )}
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
  const options = useSignInOptions();
  const passwords = options?.local_passwords ?? true;

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
        <ProviderButtons options={options} invite={invite} verb="Create it with" />
        {passwords && options && options.providers.length > 0 && (
          <p className="muted small-text or-line" aria-hidden="true">
            or choose a user name and password
          </p>
        )}
        {passwords && (
          <>
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
          </>
        )}
        <p className="muted small-text">
          Already have an account? <Link href="/login">Sign in</Link>
        </p>
      </form>
    </main>
  );
}
