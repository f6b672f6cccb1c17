// Light/dark theme: the stored choice, else the system's (prefers-color-scheme); applied as
// `data-theme` on <html> so the CSS variables in styles.css switch. Also the small localStorage
// helpers, and the "signed in" hint (the login cookie is HttpOnly, so the page cannot see it).
export type Theme = "light" | "dark";

const KEY = "octo.theme";

export function initialTheme(): Theme {
  const stored = safeGet(KEY);
  if (stored === "light" || stored === "dark") return stored;
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function applyTheme(theme: Theme, remember: boolean): void {
  document.documentElement.dataset.theme = theme;
  if (remember) safeSet(KEY, theme);
}

export function safeGet(key: string): string | null {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null;
  }
}

export function safeSet(key: string, value: string): void {
  try {
    window.localStorage.setItem(key, value);
  } catch {
    // Storage disabled (private mode, quota): the choice lasts for this page only.
  }
}

const SIGNED_IN_KEY = "octo.signedIn";

/** Whether this browser signed in last time (the cookie may still have expired since). */
export function hasSignedInHint(): boolean {
  return safeGet(SIGNED_IN_KEY) === "1";
}

/**
 * Whether this browser's sign-in was last seen expiring (a 401 while signed in). Kept across
 * reloads so that the next page load still says why the user is at sign-in, without asking the
 * server a question it can only answer with 401.
 */
export function hasExpiredHint(): boolean {
  return safeGet(SIGNED_IN_KEY) === "expired";
}

/** `true` after a sign-in, `"expired"` after a 401, `false` after signing out. */
export function setSignedInHint(signedIn: boolean | "expired"): void {
  try {
    if (signedIn === true) window.localStorage.setItem(SIGNED_IN_KEY, "1");
    else if (signedIn === "expired") window.localStorage.setItem(SIGNED_IN_KEY, "expired");
    else window.localStorage.removeItem(SIGNED_IN_KEY);
  } catch {
    // Storage disabled: every load asks the server.
  }
}
