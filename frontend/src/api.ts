// The one client for octod's JSON API (`/api/...`): every pane and page calls `apiFetch`.
// Errors come back as `ApiError` with the API's `{ "error": { code, message } }` fields, or a
// synthesized code (`network`, `http_<status>`) when the response was not that shape. A 401 outside
// `/api/auth/` means the login expired: `octo:unauthorized` is dispatched on `window` and the shell
// goes back to sign-in.

import type { components } from "./api-types.gen";

// The wire types, generated from octod's OpenAPI document (`npm run gen:api`): a field renamed in
// octod fails `tsc` here and wherever it is used.
type Schemas = components["schemas"];
export type Role = Schemas["Role"];
export type User = Schemas["User"];
export type Invite = Schemas["Invite"];
export type Template = Schemas["Template"];
export type Session = Schemas["Session"];
export type IdleReason = Schemas["IdleReason"];
export type AuditEntry = Schemas["AuditEntry"];
export type SignInOptions = Schemas["SignInOptions"];
export type UsageReport = Schemas["UsageReport"];
export type ModelList = Schemas["ModelList"];
export type UsageRow = Schemas["UsageRowView"];
export type SessionState = Session["state"];
export type Snapshot = Schemas["Snapshot"];
export type SnapshotJob = Schemas["SnapshotJob"];
export type SnapshotList = Schemas["SnapshotList"];
export type SessionPorts = Schemas["SessionPorts"];
export type ListeningPort = Schemas["ListeningPort"];
export type PortShare = Schemas["PortShare"];
export type ShareLinkCreated = Schemas["ShareLinkCreated"];

/** The name of the window event dispatched when the API answers 401 (login expired or revoked). */
export const UNAUTHORIZED_EVENT = "octo:unauthorized";

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

export interface ApiInit extends RequestInit {
  /** Sent as the JSON request body (sets Content-Type). */
  json?: unknown;
}

/**
 * Calls the API and returns the parsed JSON body (`undefined` for an empty body such as 204).
 * Throws `ApiError` for a non-2xx answer or a network failure.
 */
export async function apiFetch<T = unknown>(path: string, init: ApiInit = {}): Promise<T> {
  const { json, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (!headers.has("Accept")) headers.set("Accept", "application/json");
  let body = rest.body;
  if (json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  }
  let response: Response;
  try {
    response = await fetch(path, { credentials: "same-origin", ...rest, headers, body });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ApiError(0, "network", `Could not reach the server (${reason}).`);
  }
  const text = await response.text();
  if (!response.ok) {
    const error = parseError(response.status, text);
    if (response.status === 401 && !path.startsWith("/api/auth/")) notifyUnauthorized(error);
    throw error;
  }
  if (text === "") return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(response.status, "bad_response", `The server sent a response that is not JSON (${path}).`);
  }
}

/**
 * Tells the shell the login is gone (it shows sign-in with a message). `apiFetch` calls it on a
 * 401; panes call it when their own traffic (`/sessions/<id>/…`) answers 401.
 */
export function notifyUnauthorized(error?: ApiError): void {
  window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT, { detail: error }));
}

/** Builds an `ApiError` from an error response's status and body text. */
export function parseError(status: number, text: string): ApiError {
  try {
    const parsed: unknown = JSON.parse(text);
    if (isErrorBody(parsed)) return new ApiError(status, parsed.error.code, parsed.error.message);
  } catch {
    // Not JSON: a proxy's or the server's plain error page.
  }
  const snippet = text.trim().slice(0, 200);
  return new ApiError(status, `http_${status}`, snippet ? `HTTP ${status}: ${snippet}` : `HTTP ${status}`);
}

function isErrorBody(value: unknown): value is Schemas["Error"] {
  if (typeof value !== "object" || value === null) return false;
  const error = (value as { error?: unknown }).error;
  return (
    typeof error === "object" &&
    error !== null &&
    typeof (error as { code?: unknown }).code === "string" &&
    typeof (error as { message?: unknown }).message === "string"
  );
}

/** A message for people from anything thrown. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The session states in which the picker polls, because they change on their own. */
export function isTransitional(state: SessionState): boolean {
  return state === "creating" || state === "starting" || state === "stopping" || state === "deleting";
}

export const api = {
  me: () => apiFetch<User>("/api/me"),
  login: (username: string, password: string) =>
    apiFetch<User>("/api/auth/login", { method: "POST", json: { username, password } satisfies Schemas["LoginRequest"] }),
  register: (invite_code: string, username: string, password: string) =>
    apiFetch<User>("/api/auth/register", { method: "POST", json: { invite_code, username, password } satisfies Schemas["RegisterRequest"] }),
  /** Signs out; for a sign-in that began at a provider with an end-session endpoint, where to go
   * to sign out there too. */
  logout: () => apiFetch<Schemas["SignedOut"] | undefined>("/api/auth/logout", { method: "POST" }),
  signInOptions: () => apiFetch<SignInOptions>("/api/auth/providers"),
  changePassword: (current: string, next: string) =>
    apiFetch<void>("/api/me/password", { method: "POST", json: { current, new: next } satisfies Schemas["PasswordChange"] }),
  templates: () => apiFetch<Template[]>("/api/templates"),
  /** The model gateway's usage of the last `days` days: the user's own, or (admins) everyone's
   * or `user`'s. */
  usage: (days: number, user?: string) =>
    apiFetch<UsageReport>(`/api/usage?since_days=${days}${user ? `&user=${encodeURIComponent(user)}` : ""}`),
  /** The models the user may choose for a prompt, the instance's default first. */
  models: () => apiFetch<ModelList>("/api/models"),
  sessions: () => apiFetch<Session[]>("/api/sessions"),
  session: (id: string) => apiFetch<Session>(`/api/sessions/${encodeURIComponent(id)}`),
  createSession: (template: string) => apiFetch<Session>("/api/sessions", { method: "POST", json: { template } satisfies Schemas["CreateSession"] }),
  /** Renames a session and/or sets its description (owner or admin); a field left out is kept. */
  updateSession: (id: string, change: Schemas["UpdateSession"]) =>
    apiFetch<Session>(`/api/sessions/${encodeURIComponent(id)}`, { method: "PATCH", json: change }),
  /** Keeps a running session from its idle stop for `minutes` from now (0 ends a keep-alive). */
  keepAlive: (id: string, minutes: number) =>
    apiFetch<Session>(`/api/sessions/${encodeURIComponent(id)}/keep-alive`, {
      method: "POST",
      json: { minutes } satisfies Schemas["KeepAlive"],
    }),
  stopSession: (id: string) =>
    apiFetch<Session>(`/api/sessions/${encodeURIComponent(id)}/stop`, { method: "POST" }),
  resumeSession: (id: string) =>
    apiFetch<Session>(`/api/sessions/${encodeURIComponent(id)}/resume`, { method: "POST" }),
  ports: (id: string) => apiFetch<SessionPorts>(`/api/sessions/${encodeURIComponent(id)}/ports`),
  /** Where the preview pane's frame goes: `open`'s ticket URL on the content origin, as JSON
   * (`href` is a port's `open` navigation, with its query). */
  previewTicket: (href: string) =>
    apiFetch<Schemas["PreviewTicket"]>(`${href}${href.includes("?") ? "&" : "?"}json=true`),
  /** Shares a port's preview with every signed-in user (or stops). */
  sharePort: (id: string, port: number, users: boolean) =>
    apiFetch<PortShare>(`/api/sessions/${encodeURIComponent(id)}/ports/${port}/share`, {
      method: "POST",
      json: { users } satisfies Schemas["SetPortShare"],
    }),
  /** A link that opens a port's preview without an account until it expires; its URL is in this answer only. */
  createShareLink: (id: string, port: number, expiresInSeconds: number) =>
    apiFetch<ShareLinkCreated>(`/api/sessions/${encodeURIComponent(id)}/ports/${port}/links`, {
      method: "POST",
      json: { expires_in_seconds: expiresInSeconds } satisfies Schemas["CreateShareLink"],
    }),
  revokeShareLink: (id: string, port: number, link: string) =>
    apiFetch<void>(
      `/api/sessions/${encodeURIComponent(id)}/ports/${port}/links/${encodeURIComponent(link)}`,
      { method: "DELETE" },
    ),
  snapshots: (id: string) => apiFetch<SnapshotList>(`/api/sessions/${encodeURIComponent(id)}/snapshots`),
  createSnapshot: (id: string, name: string) =>
    apiFetch<SnapshotJob>(`/api/sessions/${encodeURIComponent(id)}/snapshots`, {
      method: "POST",
      json: { name } satisfies Schemas["CreateSnapshot"],
    }),
  restoreSnapshot: (id: string, snapshot: string) =>
    apiFetch<SnapshotJob>(
      `/api/sessions/${encodeURIComponent(id)}/snapshots/${encodeURIComponent(snapshot)}/restore`,
      { method: "POST" },
    ),
  forkSession: (id: string, snapshot?: string) =>
    apiFetch<Session>(`/api/sessions/${encodeURIComponent(id)}/fork`, {
      method: "POST",
      json: (snapshot === undefined ? {} : { snapshot }) satisfies Schemas["ForkSession"],
    }),
  deleteSnapshot: (id: string, snapshot: string) =>
    apiFetch<void>(`/api/sessions/${encodeURIComponent(id)}/snapshots/${encodeURIComponent(snapshot)}`, {
      method: "DELETE",
    }),
  deleteSession: (id: string) =>
    apiFetch<Session | undefined>(`/api/sessions/${encodeURIComponent(id)}`, { method: "DELETE" }),
  admin: {
    users: () => apiFetch<User[]>("/api/admin/users"),
    setRole: (name: string, role: Role) =>
      apiFetch<User>(`/api/admin/users/${encodeURIComponent(name)}/role`, { method: "POST", json: { role } satisfies Schemas["SetRole"] }),
    disable: (name: string) =>
      apiFetch<User>(`/api/admin/users/${encodeURIComponent(name)}/disable`, { method: "POST" }),
    enable: (name: string) => apiFetch<User>(`/api/admin/users/${encodeURIComponent(name)}/enable`, { method: "POST" }),
    /** A user's monthly token budget: their own, unlimited, or (`{}`) their role's. */
    setBudget: (name: string, body: Schemas["SetBudget"]) =>
      apiFetch<void>(`/api/admin/users/${encodeURIComponent(name)}/budget`, { method: "POST", json: body }),
    invites: () => apiFetch<Invite[]>("/api/admin/invite-codes"),
    createInvite: (role: Role, uses: number, expires_in_seconds: number | null) =>
      apiFetch<Invite>("/api/admin/invite-codes", { method: "POST", json: { role, uses, expires_in_seconds } satisfies Schemas["CreateInvite"] }),
    revokeInvite: (code: string) =>
      apiFetch<void>(`/api/admin/invite-codes/${encodeURIComponent(code)}`, { method: "DELETE" }),
    sessions: () => apiFetch<Session[]>("/api/admin/sessions"),
    audit: (limit: number) => apiFetch<AuditEntry[]>(`/api/admin/audit?limit=${limit}`),
  },
};

/** Where a browser starts a sign-in with an OpenID Connect provider (a navigation, not a fetch). */
export function oidcStartUrl(provider: string, next: string | null, invite: string | null): string {
  const query = new URLSearchParams();
  if (next) query.set("next", next);
  if (invite) query.set("invite", invite);
  const text = query.toString();
  return `/api/auth/oidc/${encodeURIComponent(provider)}/start${text ? `?${text}` : ""}`;
}

/** A path of this site to go to after signing in, or null (never another origin). */
export function safeNext(next: string | null): string | null {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.includes("\\")) return null;
  return next;
}

/** Signs out of Octo and, where the sign-in came from a provider that offers it, of the
 * provider too (the browser leaves for its end-session page). `false` when it navigated away. */
export async function signOut(): Promise<boolean> {
  let out: Schemas["SignedOut"] | undefined;
  try {
    out = await api.logout();
  } catch {
    // The user asked to leave: the sign-in page is shown anyway.
  }
  if (out?.end_session_url) {
    window.location.assign(out.end_session_url);
    return false;
  }
  return true;
}

const OIDC_MESSAGES: Record<string, string> = {
  unknown_provider: "That sign-in provider is not configured here.",
  provider_unavailable: "{provider} could not be reached. Try again in a moment, or ask an administrator.",
  state_mismatch: "The sign-in could not be matched to this browser (was it started in another tab?). Please start again.",
  expired: "The sign-in took too long or was already used. Please start again.",
  refused: "{provider} did not sign you in.",
  code_refused: "{provider} did not accept the sign-in (its code was used or expired). Please start again.",
  invalid_id_token: "{provider}'s answer could not be verified, so you were not signed in. Ask an administrator to check the provider's settings.",
  no_username: "{provider} did not send a user name Octo can use. Ask an administrator.",
  not_allowed: "Your {provider} account is not in a group allowed to use Octo. Ask an administrator for access.",
  invite_required: "Your first sign-in with {provider} needs an invite code. Enter it below, then continue.",
  invalid_invite: "That invite code is unknown, expired or used up.",
  account_disabled: "This account is disabled. Ask an administrator.",
  internal: "Something went wrong while signing you in. Try again, or ask an administrator.",
};

/** The sign-in page's message for a refused provider sign-in (`/login?oidc_error=…`). */
export function oidcErrorMessage(code: string, providerName: string): string {
  const text = OIDC_MESSAGES[code] ?? OIDC_MESSAGES.internal;
  return text.replace("{provider}", providerName);
}
