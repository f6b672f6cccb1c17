// Personal API tokens (`/api/me/tokens`): the wire types, the three calls, and the pure logic of the
// account page's "API tokens" section — which scopes are offered and checked by default, the
// create form's checks, and how expiry and last use read relative to now.
import { apiFetch, type Role } from "./api";
import type { components } from "./api-types.gen";

type Schemas = components["schemas"];

// The wire types, generated from octod's OpenAPI document (octo-wire's `Scope`, `ApiToken`,
// `CreateApiToken`, `CreatedApiToken`). Times are ms since the Unix epoch; `last_used_at` is to the
// minute, null when never used; `expires_in_days` is 1 to 365 (octod's default 30).
export type Scope = Schemas["Scope"];
export type ApiToken = Schemas["ApiToken"];
export type CreateApiToken = Schemas["CreateApiToken"];
export type CreatedApiToken = Schemas["CreatedApiToken"];

export const tokensApi = {
  /** The signed-in user's tokens, newest first. */
  list: () => apiFetch<ApiToken[]>("/api/me/tokens"),
  create: (request: CreateApiToken) =>
    apiFetch<CreatedApiToken>("/api/me/tokens", { method: "POST", json: request }),
  revoke: (id: string) => apiFetch<void>(`/api/me/tokens/${encodeURIComponent(id)}`, { method: "DELETE" }),
};

export interface ScopeInfo {
  scope: Scope;
  /** What it allows, in a few words, for the create form. */
  description: string;
  /** Offered only to users with the admin role (octod answers 403 otherwise). */
  adminOnly: boolean;
}

/** Every scope, in the order the form lists them and requests send them. */
export const SCOPES: readonly ScopeInfo[] = [
  { scope: "sessions:read", description: "list and read sessions and templates", adminOnly: false },
  { scope: "sessions:write", description: "create, rename, stop, resume and delete sessions", adminOnly: false },
  { scope: "sessions:connect", description: "use a session's agent, files and terminal", adminOnly: false },
  { scope: "admin", description: "the admin API", adminOnly: true },
];

/** The scopes a new token has unless the user unticks them: everything but `admin`. */
export const DEFAULT_SCOPES: readonly Scope[] = ["sessions:read", "sessions:write", "sessions:connect"];

/** The scopes the form offers to a user with `role`. */
export function scopesFor(role: Role): ScopeInfo[] {
  return SCOPES.filter((s) => !s.adminOnly || role === "admin");
}

/** The expiry choices of the form, in days; octod accepts 1 to 365. */
export const EXPIRY_DAYS: readonly number[] = [7, 30, 90, 365];
export const DEFAULT_EXPIRY_DAYS = 30;

/** The longest name octod accepts (characters). */
export const TOKEN_NAME_MAX = 80;

/**
 * What is wrong with a token's name before it is sent, or null. The name is trimmed first (as
 * sent); it is one line in the token list, so control characters are refused too. octod checks
 * the length itself and its message is shown for anything else it refuses.
 */
export function tokenNameProblem(name: string): string | null {
  const trimmed = name.trim();
  if (trimmed === "") return "A token needs a name.";
  if ([...trimmed].length > TOKEN_NAME_MAX) return `A token's name has at most ${TOKEN_NAME_MAX} characters.`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(trimmed)) return "A token's name cannot contain control characters.";
  return null;
}

/** The create form as the user filled it in. */
export interface TokenForm {
  name: string;
  scopes: ReadonlySet<Scope>;
  days: number;
}

/**
 * The request the form makes, or what is wrong with it: the name trimmed, the scopes in
 * `SCOPES` order and only those `role` is offered, the expiry one of the choices.
 */
export function tokenRequest(form: TokenForm, role: Role): { request: CreateApiToken } | { problem: string } {
  const nameProblem = tokenNameProblem(form.name);
  if (nameProblem) return { problem: nameProblem };
  const scopes = scopesFor(role)
    .map((s) => s.scope)
    .filter((scope) => form.scopes.has(scope));
  if (scopes.length === 0) return { problem: "Choose at least one scope." };
  if (!EXPIRY_DAYS.includes(form.days)) return { problem: `Choose an expiry of ${EXPIRY_DAYS.join(", ")} days.` };
  return { request: { name: form.name.trim(), scopes, expires_in_days: form.days } };
}

/** Whether a token no longer works at `now` (ms): octod refuses it from `expires_at` on. */
export function isExpired(token: ApiToken, now: number): boolean {
  return token.expires_at <= now;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** A span in the largest whole unit that fits: "5 min", "3 h", "1 day", "30 days" (rounded). */
export function describeSpan(ms: number): string {
  const minutes = Math.round(ms / MINUTE);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.round(ms / HOUR);
  if (hours < 24) return `${hours} h`;
  const days = Math.round(ms / DAY);
  return days === 1 ? "1 day" : `${days} days`;
}

/** A past time relative to `now`: "just now", "5 min ago", "2 days ago" (a future one is "just now"). */
export function describeAgo(ms: number, now: number): string {
  const ago = now - ms;
  if (ago < MINUTE) return "just now";
  return `${describeSpan(ago)} ago`;
}

/** When a token expires, relative to `now`: `{ expired: false, text: "in 30 days" }` or `{ expired: true, text: "2 h ago" }`. */
export function expiryView(token: ApiToken, now: number): { expired: boolean; text: string } {
  if (isExpired(token, now)) return { expired: true, text: describeAgo(token.expires_at, now) };
  const left = token.expires_at - now;
  return { expired: false, text: left < MINUTE ? "in under a minute" : `in ${describeSpan(left)}` };
}

/** When a token was last used, relative to `now`, or "never". */
export function describeLastUsed(token: ApiToken, now: number): string {
  return token.last_used_at === null ? "never" : describeAgo(token.last_used_at, now);
}

/** Newest first (the API's order, kept when a list is changed here), then by id. */
export function sortTokens(tokens: readonly ApiToken[]): ApiToken[] {
  return tokens.slice().sort((a, b) => b.created_at - a.created_at || a.id.localeCompare(b.id));
}

/** A command that tries a token on this site, for the "created" notice (the token itself in $OCTO_TOKEN). */
export function curlExample(origin: string): string {
  return `curl -H "Authorization: Bearer $OCTO_TOKEN" ${origin}/api/sessions`;
}
