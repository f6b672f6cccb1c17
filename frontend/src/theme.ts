// Light/dark theme: the stored choice, else the system's (prefers-color-scheme); applied as
// `data-theme` on <html> so the CSS variables in styles.css switch.
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
