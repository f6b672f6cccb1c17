// A small router on the History API: `matchRoute` maps a path to a route (pure, tested), `navigate`
// pushes a path, `useLocationPath` re-renders on navigation and back/forward.
import { useSyncExternalStore } from "react";

export type Route =
  | { name: "sessions" }
  | { name: "login" }
  | { name: "register"; invite: string | null }
  | { name: "account" }
  | { name: "usage" }
  | { name: "workspace"; sessionId: string }
  | { name: "admin-users" }
  | { name: "admin-invites" }
  | { name: "admin-sessions" }
  | { name: "admin-audit" }
  | { name: "not-found"; path: string };

/** The route for a path plus search string (e.g. `/register?invite=abc`). */
export function matchRoute(pathAndSearch: string): Route {
  const url = new URL(pathAndSearch, "http://octo.invalid");
  const path = url.pathname.replace(/\/+$/, "") || "/";
  switch (path) {
    case "/":
      return { name: "sessions" };
    case "/login":
      return { name: "login" };
    case "/register":
      return { name: "register", invite: url.searchParams.get("invite") };
    case "/account":
      return { name: "account" };
    case "/usage":
      return { name: "usage" };
    case "/admin":
    case "/admin/users":
      return { name: "admin-users" };
    case "/admin/invites":
      return { name: "admin-invites" };
    case "/admin/sessions":
      return { name: "admin-sessions" };
    case "/admin/audit":
      return { name: "admin-audit" };
  }
  const workspace = /^\/w\/([^/]+)$/.exec(path);
  if (workspace) {
    try {
      return { name: "workspace", sessionId: decodeURIComponent(workspace[1]) };
    } catch {
      return { name: "not-found", path };
    }
  }
  return { name: "not-found", path };
}

/** The path of a route, the inverse of `matchRoute`. */
export function routePath(route: Route): string {
  switch (route.name) {
    case "sessions":
      return "/";
    case "login":
      return "/login";
    case "register":
      return route.invite ? `/register?invite=${encodeURIComponent(route.invite)}` : "/register";
    case "account":
      return "/account";
    case "usage":
      return "/usage";
    case "workspace":
      return `/w/${encodeURIComponent(route.sessionId)}`;
    case "admin-users":
      return "/admin/users";
    case "admin-invites":
      return "/admin/invites";
    case "admin-sessions":
      return "/admin/sessions";
    case "admin-audit":
      return "/admin/audit";
    case "not-found":
      return route.path;
  }
}

const NAVIGATE_EVENT = "octo:navigate";

/** Goes to a path (same origin) without reloading; `replace` replaces the history entry. */
export function navigate(path: string, options: { replace?: boolean } = {}): void {
  if (currentPath() === path) return;
  if (options.replace) window.history.replaceState(null, "", path);
  else window.history.pushState(null, "", path);
  window.dispatchEvent(new Event(NAVIGATE_EVENT));
}

function currentPath(): string {
  return window.location.pathname + window.location.search;
}

function subscribe(onChange: () => void): () => void {
  window.addEventListener("popstate", onChange);
  window.addEventListener(NAVIGATE_EVENT, onChange);
  return () => {
    window.removeEventListener("popstate", onChange);
    window.removeEventListener(NAVIGATE_EVENT, onChange);
  };
}

/** The current path and search; re-renders on every navigation. */
export function useLocationPath(): string {
  return useSyncExternalStore(subscribe, currentPath, () => "/");
}

/**
 * Click handler for in-app links: plain left clicks navigate in place; modified clicks (new tab)
 * keep the browser's default.
 */
export function linkClick(event: React.MouseEvent<HTMLAnchorElement>): void {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const href = event.currentTarget.getAttribute("href");
  if (!href || !href.startsWith("/")) return;
  event.preventDefault();
  navigate(href);
}
