// The audit log page's logic: filtering the entries by actor, action and time, and paging them.
// The API answers the newest entries only (`limit`, at most AUDIT_FETCH); the page filters and
// pages those in the browser. Pure, unit-tested.
import type { AuditEntry } from "../api";

/** What the page asks the API for: its largest `limit`. */
export const AUDIT_FETCH = 1000;
/** Rows per page. */
export const AUDIT_PAGE = 50;

export interface AuditFilter {
  /** An actor's exact name, or "" for all. */
  actor: string;
  /** An action's exact name, or "" for all. */
  action: string;
  /** Milliseconds since the epoch: entries at or after it (undefined: no bound). */
  from?: number;
  /** Milliseconds since the epoch: entries before it. */
  to?: number;
}

export const NO_FILTER: AuditFilter = { actor: "", action: "" };

export function filterAudit(entries: readonly AuditEntry[], f: AuditFilter): AuditEntry[] {
  return entries.filter(
    (e) =>
      (f.actor === "" || e.actor === f.actor) &&
      (f.action === "" || e.action === f.action) &&
      (f.from === undefined || e.time >= f.from) &&
      (f.to === undefined || e.time < f.to),
  );
}

/** The distinct values of `key` among the entries, sorted, for the filter's choices. */
export function distinct(entries: readonly AuditEntry[], key: "actor" | "action"): string[] {
  return [...new Set(entries.map((e) => e[key]))].sort((a, b) => a.localeCompare(b));
}

export interface Page<T> {
  items: T[];
  /** 0-based, clamped to the pages there are. */
  page: number;
  pages: number;
}

export function pageOf<T>(items: readonly T[], page: number, size = AUDIT_PAGE): Page<T> {
  const pages = Math.max(1, Math.ceil(items.length / size));
  const p = Math.min(Math.max(0, Math.floor(page)), pages - 1);
  return { items: items.slice(p * size, (p + 1) * size), page: p, pages };
}

/** A `<input type="datetime-local">` value as milliseconds (local time), or undefined if empty
 * or invalid. */
export function parseLocalTime(value: string): number | undefined {
  if (!value) return undefined;
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? ms : undefined;
}
