// Session list logic shared by the picker, the admin page and the workspace view: how a state is
// shown, which actions it allows, and when to poll again.
import { useCallback, useEffect, useRef, useState } from "react";
import { isTransitional, type IdleReason, type Session, type SessionState } from "./api";

/** How often the list is fetched while something is changing on its own. */
export const POLL_MS = 2500;

export interface StateView {
  label: string;
  /** CSS class of the badge: running (green), failed (red), busy (pulsing), or idle. */
  tone: "running" | "failed" | "busy" | "idle";
}

export function stateView(state: SessionState): StateView {
  switch (state) {
    case "creating":
      return { label: "Creating", tone: "busy" };
    case "starting":
      return { label: "Waking up", tone: "busy" };
    case "running":
      return { label: "Running", tone: "running" };
    case "stopping":
      return { label: "Stopping", tone: "busy" };
    case "stopped":
      return { label: "Stopped", tone: "idle" };
    case "deleting":
      return { label: "Deleting", tone: "busy" };
    case "failed":
      return { label: "Failed", tone: "failed" };
  }
}

export interface Actions {
  open: boolean;
  stop: boolean;
  resume: boolean;
  delete: boolean;
}

/** Which actions a session in a state offers. Opening a stopped session wakes it up. */
export function actionsFor(state: SessionState): Actions {
  return {
    open: state === "running" || state === "starting" || state === "creating" || state === "stopped",
    stop: state === "running" || state === "starting",
    resume: state === "stopped" || state === "failed",
    delete: state !== "deleting",
  };
}

/** Whether a session is on its way up (the picker shows it as waking). */
export function isWaking(state: SessionState): boolean {
  return state === "creating" || state === "starting";
}

/** While nothing is changing, the list is still refreshed this often (octod stops idle sessions). */
export const IDLE_POLL_MS = 30000;

/** The delay before the next fetch: short while something is changing on its own. */
export function nextPoll(sessions: readonly Session[], busy: boolean): number {
  return busy || sessions.some((s) => isTransitional(s.state)) ? POLL_MS : IDLE_POLL_MS;
}

/** Replaces one session in a list (or appends it), keeping the order; `null` removes it. */
export function upsert(sessions: readonly Session[], id: string, next: Session | null): Session[] {
  const index = sessions.findIndex((s) => s.id === id);
  if (next === null) return sessions.filter((s) => s.id !== id);
  if (index === -1) return [...sessions, next];
  const copy = sessions.slice();
  copy[index] = next;
  return copy;
}

/** Sessions by last activity, most recent first (then newest, then by id: a stable order). */
export function sortSessions(sessions: readonly Session[]): Session[] {
  return sessions
    .slice()
    .sort((a, b) => b.last_active_at - a.last_active_at || b.created_at - a.created_at || a.id.localeCompare(b.id));
}

/**
 * The sessions a filter box's text matches: every word of it (case- and accent-insensitive) in
 * the name, description, template (id or display name), owner or id. Empty text matches all.
 */
export function filterSessions(
  sessions: readonly Session[],
  query: string,
  templateName: (id: string) => string = (id) => id,
): Session[] {
  const words = fold(query).split(/\s+/).filter(Boolean);
  if (words.length === 0) return sessions.slice();
  return sessions.filter((s) => {
    const text = fold([s.name, s.description, s.template, templateName(s.template), s.owner, s.id].join("\n"));
    return words.every((word) => text.includes(word));
  });
}

function fold(text: string): string {
  return text.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();
}

/** Limits of a session's name and description, as octod checks them (characters, after trimming). */
export const NAME_MAX = 80;
export const DESCRIPTION_MAX = 280;

/** What is wrong with a name before it is sent (octod checks the same), or null. */
export function nameProblem(name: string): string | null {
  const trimmed = name.trim();
  if (trimmed === "") return "A name cannot be empty.";
  if ([...trimmed].length > NAME_MAX) return `A name has at most ${NAME_MAX} characters.`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(trimmed)) return "A name cannot contain control characters.";
  return null;
}

/**
 * A list of sessions fetched with `load`, refetched every POLL_MS while any is transitional or
 * while `busy` (e.g. a create request is under way: the server records the new session before it
 * answers, so the row appears while the request still waits), else every IDLE_POLL_MS (octod
 * stops idle sessions by itself). `refresh()` fetches now;
 * `replace(id, session|null)` applies an action's answer at once.
 */
export function usePolledSessions(load: () => Promise<Session[]>, busy = false) {
  const [sessions, setSessions] = useState<Session[] | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const [generation, setGeneration] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  const busyRef = useRef(busy);
  busyRef.current = busy;

  useEffect(() => {
    let cancelled = false;
    let timer: number | undefined;
    const tick = async () => {
      try {
        const list = sortSessions(await loadRef.current());
        if (cancelled) return;
        setSessions(list);
        setError(undefined);
        timer = window.setTimeout(() => void tick(), nextPoll(list, busyRef.current));
      } catch (err) {
        if (cancelled) return;
        setError(err);
        // Keep trying while the page is open: the server may be restarting.
        timer = window.setTimeout(() => void tick(), POLL_MS * 2);
      }
    };
    void tick();
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [generation, busy]);

  const refresh = useCallback(() => setGeneration((g) => g + 1), []);
  const replace = useCallback(
    (id: string, next: Session | null) => {
      setSessions((current) => (current ? sortSessions(upsert(current, id, next)) : current));
      // An action's answer may be transitional (202): start polling again.
      setGeneration((g) => g + 1);
    },
    [],
  );
  return { sessions, error, refresh, replace };
}

export function formatTime(ms: number): string {
  const date = new Date(ms);
  const now = Date.now();
  const seconds = Math.round((now - ms) / 1000);
  if (seconds >= 0 && seconds < 60) return "just now";
  if (seconds >= 0 && seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds >= 0 && seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return date.toLocaleDateString();
}

/** Bytes as people read them: `2 GiB`, `1.5 GiB`, `512 MiB`. */
export function binarySize(bytes: number): string {
  const units: [string, number][] = [
    ["TiB", 2 ** 40],
    ["GiB", 2 ** 30],
    ["MiB", 2 ** 20],
    ["KiB", 2 ** 10],
  ];
  for (const [unit, size] of units) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(1))} ${unit}`;
  }
  return `${bytes} bytes`;
}

/**
 * A session's home size and its owner's storage quota: the size for its row (`Home 1.5 GiB`, or
 * null before the first measurement) and, from the warning threshold on, what the user should know
 * (`warning` tone: almost full; `danger`: full, uploads refused).
 */
export function diskView(disk: Session["disk"] | undefined): {
  text: string | null;
  warning: string | null;
  tone: "warning" | "danger" | null;
} {
  if (disk === undefined) return { text: null, warning: null, tone: null };
  const text = disk.used_bytes !== undefined ? `Home ${binarySize(disk.used_bytes)}` : null;
  if (disk.quota_bytes === undefined || disk.quota_state === "ok") return { text, warning: null, tone: null };
  const share = `${binarySize(disk.owner_used_bytes)} of your ${binarySize(disk.quota_bytes)} storage quota used (all your sessions together)`;
  return disk.quota_state === "over"
    ? { text, warning: `Storage full: ${share}. Uploads are refused until you delete files.`, tone: "danger" }
    : { text, warning: `Storage almost full: ${share}. Delete files you no longer need.`, tone: "warning" };
}

/**
 * A session's resource limits for its row: the text (`2 GiB memory · 1.5 CPUs · 512 tasks`, or
 * null without limits) and, when the host cannot enforce some of them, a note saying which.
 */
export function limitsView(limits: Session["limits"]): { text: string | null; note: string | null } {
  const parts: string[] = [];
  if (limits.memory_bytes !== undefined) parts.push(`${binarySize(limits.memory_bytes)} memory`);
  if (limits.cpu_centis !== undefined) {
    const cpus = limits.cpu_centis / 100;
    parts.push(`${cpus} ${cpus === 1 ? "CPU" : "CPUs"}`);
  }
  if (limits.pids !== undefined) parts.push(`${limits.pids} tasks`);
  const note =
    limits.unenforced.length > 0
      ? `Not enforced on this host (its cgroup controllers are not delegated): ${limits.unenforced.join(", ")}`
      : null;
  return { text: parts.length > 0 ? parts.join(" · ") : null, note };
}

/** A clock time for the idle stop's line: `14:32`, or `Mon 14:32` when not today. */
function clockTime(ms: number, now: number): string {
  const at = new Date(ms);
  const hm = `${String(at.getHours()).padStart(2, "0")}:${String(at.getMinutes()).padStart(2, "0")}`;
  const today = new Date(now).toDateString() === at.toDateString();
  return today ? hm : `${at.toLocaleDateString(undefined, { weekday: "short" })} ${hm}`;
}

/**
 * What the idle stop will do with a running session, for the workspace header: a short line
 * (`Idle stop ≈ 14:32`, `Kept running until 18:00`), the reasons it keeps running (`Agent
 * working`, …) and a longer explanation for its tooltip; null when the idle stop will not stop it.
 */
const IDLE_REASONS: Record<IdleReason, { label: string; why: string }> = {
  agent: { label: "Agent working", why: "its agent is working on a turn (it is never stopped mid-turn)" },
  terminal: {
    label: "Command running",
    why: "a command runs in its terminal (it is not stopped until the command ends)",
  },
  keep_alive: { label: "Kept alive", why: "you asked to keep it running" },
  activity: { label: "In use", why: "it was used recently (chat, files, an open terminal, previews)" },
};

export function idleView(
  idle: Session["idle"] | undefined,
  now: number,
): { text: string; reasons: string[]; title: string } | null {
  if (idle?.stops_at === undefined) return null;
  const keptAlive = idle.keep_alive_until !== undefined && idle.keep_alive_until > now;
  const reasons = idle.kept_by.map((reason) => IDLE_REASONS[reason].label);
  const stops = clockTime(idle.stops_at, now);
  const text = keptAlive && idle.keep_alive_until !== undefined && idle.stops_at <= idle.keep_alive_until
    ? `Kept running until ${clockTime(idle.keep_alive_until, now)}`
    : `Idle stop ≈ ${stops}`;
  const why =
    idle.kept_by.length === 0
      ? "Nothing keeps it running: it stops at the next check."
      : `Running because: ${idle.kept_by
          .map((reason) => IDLE_REASONS[reason].why)
          .join("; ")}.`;
  return {
    text,
    reasons,
    title: `${why} Without activity it stops at about ${stops}; its files are kept and it wakes when opened.`,
  };
}

/** The keep-alive lengths to offer (minutes), up to the administrator's maximum; empty when off. */
export function keepAliveChoices(maxMinutes: number): { minutes: number; label: string }[] {
  const choices = [60, 120, 240, 480, 1440, 2880, 10080].filter((m) => m <= maxMinutes);
  if (maxMinutes > 0 && !choices.includes(maxMinutes)) choices.push(maxMinutes);
  return choices.map((minutes) => ({
    minutes,
    label:
      minutes % 1440 === 0
        ? `${minutes / 1440} ${minutes === 1440 ? "day" : "days"}`
        : minutes % 60 === 0
          ? `${minutes / 60} ${minutes === 60 ? "hour" : "hours"}`
          : `${minutes} minutes`,
  }));
}
