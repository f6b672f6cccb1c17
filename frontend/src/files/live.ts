// Live changes for the Files pane: the file server's change stream (`GET /api/watch`, server-sent
// events through octod) parsed, turned into the folders to list again, and kept connected —
// reconnecting with a growing pause, and only while the session runs (a request to a stopped
// session's files would wake it). Polling is the fallback while the stream is down, and for the
// folders the stream says it does not watch. See fileserver/README.md ("watch").
import { isWithin, normalizePath, parentPath, type FileEntry } from "./fileops";

/** What the server's watch covers (its `status` event). Paths are absolute in the home. */
export interface WatchStatus {
  /** Every folder is watched: nothing needs polling. */
  complete: boolean;
  watched: number;
  max: number;
  /** Folders below which some are not watched (`/`: anything may be). */
  unwatched: string[];
  reason?: string;
}

/** A folder whose entries changed; `names` null for many (or the folder itself). */
export interface DirChange {
  path: string;
  names: string[] | null;
}

export type WatchEvent =
  | { type: "status"; status: WatchStatus }
  | { type: "change"; dirs: DirChange[] }
  | { type: "resync" };

/** One event of the stream, validated; null for anything malformed or unknown. */
export function parseWatchEvent(type: string, data: string): WatchEvent | null {
  if (type === "resync") return { type: "resync" };
  let body: unknown;
  try {
    body = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof body !== "object" || body === null) return null;
  const b = body as Record<string, unknown>;
  if (type === "status") {
    if (typeof b.complete !== "boolean" || !Array.isArray(b.unwatched)) return null;
    const unwatched = b.unwatched.filter((p): p is string => typeof p === "string").map(normalizePath);
    const status: WatchStatus = {
      complete: b.complete,
      watched: typeof b.watched === "number" ? b.watched : 0,
      max: typeof b.max === "number" ? b.max : 0,
      // Not complete but nothing named: treat everything as unwatched.
      unwatched: !b.complete && unwatched.length === 0 ? ["/"] : unwatched,
    };
    if (typeof b.reason === "string") status.reason = b.reason;
    return { type: "status", status };
  }
  if (type === "change") {
    if (!Array.isArray(b.dirs)) return null;
    const dirs: DirChange[] = [];
    for (const d of b.dirs as unknown[]) {
      if (typeof d !== "object" || d === null) continue;
      const { path, names } = d as Record<string, unknown>;
      if (typeof path !== "string") continue;
      dirs.push({
        path: normalizePath(path),
        names: Array.isArray(names) ? names.filter((n): n is string => typeof n === "string") : null,
      });
    }
    return { type: "change", dirs };
  }
  return null;
}

/** The folders to list again after a change: the ones the tree has listed (the root and the
 * open folders) that changed — unless only hidden names changed and hidden files are not shown. */
export function foldersToRelist(dirs: readonly DirChange[], listed: ReadonlySet<string>, showHidden: boolean): string[] {
  const out: string[] = [];
  for (const d of dirs) {
    if (!listed.has(d.path) || out.includes(d.path)) continue;
    if (!showHidden && d.names !== null && d.names.every((n) => n.startsWith("."))) continue;
    out.push(d.path);
  }
  return out;
}

/** The listed folders to poll: all of them while no stream is live (`status` null); else those
 * within a folder the stream does not watch, and those in `linked` (reached through a symlink:
 * the stream reports changes under real paths only). */
export function foldersToPoll(status: WatchStatus | null, listed: readonly string[], linked: readonly string[] = []): string[] {
  if (status === null) return [...listed];
  return listed.filter((dir) => linked.includes(dir) || status.unwatched.some((prefix) => isWithin(dir, prefix)));
}

/** The open folders whose path goes through a symlink (the link itself, or a folder below one),
 * as the listings show them. */
export function linkedFolders(listings: ReadonlyMap<string, readonly (FileEntry | undefined)[]>, open: Iterable<string>): string[] {
  const out: string[] = [];
  for (const dir of open) {
    for (let p = normalizePath(dir); p !== "/"; p = parentPath(p)) {
      const entry = listings.get(parentPath(p))?.find((e) => e?.path === p);
      if (entry?.kind === "symlink") {
        out.push(dir);
        break;
      }
    }
  }
  return out;
}

/** The pause before reconnect attempt `n` (1-based): 1 s doubling up to 30 s, spread by up to
 * a quarter (`random` in [0,1)) so that many tabs do not reconnect in step. */
export function reconnectDelay(n: number, random = 0.5): number {
  const raw = Math.min(30_000, 1000 * 2 ** Math.max(0, n - 1));
  return Math.round(raw * (0.875 + random * 0.25));
}

/** What the pane is told about the stream. */
export type LiveState =
  /** Connected and the first status arrived: from here on changes come as events. */
  | { kind: "live"; status: WatchStatus; first: boolean }
  /** Not connected (connecting, failed, waiting to reconnect): poll. */
  | { kind: "down" };

/** The browser's EventSource, as much of it as this module uses (tests pass a fake). */
export interface EventSourceLike {
  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void;
  onerror: ((event: Event) => void) | null;
  close(): void;
}

export interface WatchOptions {
  url: string;
  onState: (state: LiveState) => void;
  /** Changes and resyncs (statuses come through `onState`). */
  onEvent: (event: Extract<WatchEvent, { type: "change" | "resync" }>) => void;
  /** Asked before every reconnect: false waits another pause (the session is not running). */
  mayConnect: () => Promise<boolean>;
  signal: AbortSignal;
  open?: (url: string) => EventSourceLike;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  random?: () => number;
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** Keeps the change stream connected until `signal` aborts. The EventSource's own reconnect is
 * never used: on an error the source is closed and this reconnects, after a pause and only once
 * `mayConnect` says the session runs. Never rejects. */
export async function runWatch(options: WatchOptions): Promise<void> {
  const { signal, onState, onEvent } = options;
  const open = options.open ?? ((url: string) => new EventSource(url) as EventSourceLike);
  const sleep = options.sleep ?? abortableSleep;
  const random = options.random ?? Math.random;
  let failures = 0;
  while (!signal.aborted) {
    if (failures > 0) {
      await sleep(reconnectDelay(failures, random()), signal);
      if (signal.aborted) break;
      if (!(await options.mayConnect().catch(() => false))) {
        failures += 1;
        continue;
      }
    }
    const source = open(options.url);
    const ended = new Promise<void>((resolve) => {
      let first = true;
      source.addEventListener("status", (event) => {
        const parsed = parseWatchEvent("status", event.data);
        if (parsed?.type !== "status") return;
        failures = 0;
        onState({ kind: "live", status: parsed.status, first });
        first = false;
      });
      for (const type of ["change", "resync"] as const) {
        source.addEventListener(type, (event) => {
          const parsed = parseWatchEvent(type, event.data);
          if (parsed && parsed.type !== "status") onEvent(parsed);
        });
      }
      source.onerror = () => resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
    await ended;
    source.close();
    onState({ kind: "down" });
    failures += 1;
  }
}
