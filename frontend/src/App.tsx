// The app shell: who is signed in, which route is shown, the header. The workspace view (and with it
// xterm, the opencode SDK and the panes) is loaded lazily so the sign-in page's JS stays small.
import { lazy, Suspense, useCallback, useEffect, useState } from "react";
import { api, ApiError, errorMessage, safeNext, UNAUTHORIZED_EVENT, type User } from "./api";
import { hasExpiredHint, hasSignedInHint, setSignedInHint } from "./theme";
import { matchRoute, navigate, useLocationPath, type Route } from "./router";
import { Header } from "./components/Header";
import { ErrorBanner } from "./components/ErrorBanner";
import { LoginPage, RegisterPage } from "./pages/Auth";
import { AccountPage } from "./pages/Account";
import { UsagePage } from "./pages/Usage";
import { SessionsPage } from "./pages/Sessions";
import { AdminPage } from "./pages/Admin";

const loadWorkspace = () => import("./workspace/Workspace");
const WorkspacePage = lazy(loadWorkspace);

type Auth =
  | { kind: "loading" }
  | { kind: "failed"; message: string }
  | { kind: "signed-out"; notice: string | null }
  | { kind: "signed-in"; user: User };

const EXPIRED_NOTICE = "Your sign-in has expired. Please sign in again.";

export function App(): JSX.Element {
  const path = useLocationPath();
  const route = matchRoute(path);
  const [auth, setAuth] = useState<Auth>({ kind: "loading" });

  const loadMe = useCallback(() => {
    // Without the hint this browser has not signed in: skip the request that could only answer
    // 401 (which browsers log as a console error). A provider's sign-in comes back to
    // `/login?signed_in=1`, with the cookie set but no hint yet.
    const fromProvider = new URLSearchParams(window.location.search).has("signed_in");
    if (!hasSignedInHint() && !fromProvider) {
      setAuth({ kind: "signed-out", notice: hasExpiredHint() ? EXPIRED_NOTICE : null });
      return;
    }
    setAuth({ kind: "loading" });
    api.me().then(
      (user) => {
        if (fromProvider) {
          setSignedInHint(true);
          navigate(safeNext(new URLSearchParams(window.location.search).get("next")) ?? "/", { replace: true });
        }
        setAuth({ kind: "signed-in", user });
      },
      (err: unknown) => {
        if (err instanceof ApiError && err.status === 401) {
          setSignedInHint("expired");
          setAuth({ kind: "signed-out", notice: EXPIRED_NOTICE });
        } else setAuth({ kind: "failed", message: errorMessage(err) });
      },
    );
  }, []);

  useEffect(loadMe, [loadMe]);

  const title = auth.kind === "signed-in" ? pageTitle(route) : route.name === "register" ? "Create account" : "Sign in";
  useEffect(() => {
    document.title = `${title} · Octo`;
  }, [title]);

  useEffect(() => {
    const onUnauthorized = () => {
      setSignedInHint("expired");
      setAuth((current) =>
        current.kind === "signed-in"
          ? { kind: "signed-out", notice: EXPIRED_NOTICE }
          : current,
      );
    };
    window.addEventListener(UNAUTHORIZED_EVENT, onUnauthorized);
    return () => window.removeEventListener(UNAUTHORIZED_EVENT, onUnauthorized);
  }, []);

  const signedIn = (user: User) => {
    setSignedInHint(true);
    setAuth({ kind: "signed-in", user });
    if (route.name === "login" || route.name === "register") {
      navigate(safeNext(new URLSearchParams(window.location.search).get("next")) ?? "/", { replace: true });
    }
  };
  const signedOut = (notice: string | null) => {
    setSignedInHint(false);
    setAuth({ kind: "signed-out", notice });
    navigate("/login");
  };

  if (auth.kind === "loading") return <div className="center-page muted">Loading…</div>;
  if (auth.kind === "failed")
    return (
      <div className="center-page">
        <div className="card narrow">
          <h1>Octo</h1>
          <ErrorBanner message={`Could not reach Octo: ${auth.message}`} />
          <button className="btn primary" onClick={loadMe}>
            Try again
          </button>
        </div>
      </div>
    );
  if (auth.kind === "signed-out") {
    if (route.name === "register") return <RegisterPage invite={route.invite} onSignedIn={signedIn} />;
    return <LoginPage notice={auth.notice} onSignedIn={signedIn} />;
  }
  return (
    <SignedIn route={route} user={auth.user} onSignedOut={signedOut} />
  );
}

function SignedIn(props: {
  route: Route;
  user: User;
  onSignedOut: (notice: string | null) => void;
}): JSX.Element {
  const { route, user } = props;
  // Signed in, the workspace view is the likely next page: fetch its code while the browser idles
  // (it stays out of the sign-in page's initial JS).
  useEffect(() => {
    const timer = window.setTimeout(() => void loadWorkspace().catch(() => {}), 1500);
    return () => window.clearTimeout(timer);
  }, []);
  useEffect(() => {
    if (route.name === "login" || route.name === "register") navigate("/", { replace: true });
  }, [route.name]);

  let body: JSX.Element;
  switch (route.name) {
    case "workspace":
      body = (
        <Suspense fallback={<div className="center-page muted">Loading workspace…</div>}>
          <WorkspacePage sessionId={route.sessionId} />
        </Suspense>
      );
      break;
    case "account":
      body = <AccountPage user={user} onSignedOut={props.onSignedOut} />;
      break;
    case "usage":
      body = <UsagePage user={user} />;
      break;
    case "admin-users":
    case "admin-invites":
    case "admin-sessions":
    case "admin-audit":
      body =
        user.role === "admin" ? (
          <AdminPage route={route} self={user} />
        ) : (
          <main className="page">
            <ErrorBanner message="Only administrators can see this page." />
          </main>
        );
      break;
    case "not-found":
      body = (
        <main className="page">
          <h1>Not found</h1>
          <p className="muted">There is no page at {route.path}.</p>
        </main>
      );
      break;
    default:
      body = <SessionsPage />;
  }
  return (
    <div className={route.name === "workspace" ? "app app-workspace" : "app"}>
      <Header user={user} route={route} onSignedOut={props.onSignedOut} />
      {body}
    </div>
  );
}

function pageTitle(route: Route): string {
  switch (route.name) {
    case "sessions":
      return "Sessions";
    case "account":
      return "Account";
    case "usage":
      return "Usage";
    case "workspace":
      return `Session ${route.sessionId}`;
    case "admin-users":
      return "Users";
    case "admin-invites":
      return "Invite codes";
    case "admin-sessions":
      return "All sessions";
    case "admin-audit":
      return "Audit log";
    case "not-found":
      return "Not found";
    default:
      return "Octo";
  }
}
