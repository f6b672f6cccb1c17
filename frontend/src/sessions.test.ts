import { describe, expect, it } from "vitest";
import type { Session, SessionState } from "./api";
import {
  actionsFor,
  filterSessions,
  IDLE_POLL_MS,
  idleView,
  keepAliveChoices,
  limitsView,
  diskView,
  nameProblem,
  nextPoll,
  POLL_MS,
  sortSessions,
  stateView,
  upsert,
} from "./sessions";

const ALL: SessionState[] = ["creating", "starting", "running", "stopping", "stopped", "deleting", "failed"];

const session = (id: string, state: SessionState, created_at = 0, more: Partial<Session> = {}): Session => ({
  id,
  owner: "ann",
  template: "t",
  name: "T",
  description: "",
  state,
  desired: "running",
  created_at,
  updated_at: created_at,
  last_active_at: created_at,
  limits: { unenforced: [] },
  ...more,
  urls: { opencode: "", files: "", terminal: "" },
});

describe("nextPoll", () => {
  it("polls while any session is transitional", () => {
    for (const state of ALL) {
      const expected = ["creating", "starting", "stopping", "deleting"].includes(state) ? POLL_MS : IDLE_POLL_MS;
      expect(nextPoll([session("a", "running"), session("b", state)], false)).toBe(expected);
    }
  });

  it("polls fast while the caller is busy, slowly otherwise", () => {
    expect(nextPoll([], true)).toBe(POLL_MS);
    expect(nextPoll([], false)).toBe(IDLE_POLL_MS);
    expect(IDLE_POLL_MS).toBeGreaterThan(POLL_MS);
  });
});

describe("actionsFor", () => {
  it("offers what the state allows", () => {
    expect(actionsFor("running")).toEqual({ open: true, stop: true, resume: false, delete: true });
    expect(actionsFor("stopped")).toEqual({ open: true, stop: false, resume: true, delete: true });
    expect(actionsFor("failed")).toEqual({ open: false, stop: false, resume: true, delete: true });
    expect(actionsFor("deleting")).toEqual({ open: false, stop: false, resume: false, delete: false });
    expect(actionsFor("stopping").stop).toBe(false);
  });

  it("labels every state", () => {
    for (const state of ALL) expect(stateView(state).label).not.toBe("");
    expect(stateView("starting").tone).toBe("busy");
  });
});

describe("upsert and sortSessions", () => {
  it("replaces, appends and removes", () => {
    const list = [session("a", "running"), session("b", "stopped")];
    expect(upsert(list, "b", session("b", "starting")).map((s) => s.state)).toEqual(["running", "starting"]);
    expect(upsert(list, "c", session("c", "creating")).map((s) => s.id)).toEqual(["a", "b", "c"]);
    expect(upsert(list, "a", null).map((s) => s.id)).toEqual(["b"]);
    expect(list.map((s) => s.state)).toEqual(["running", "stopped"]);
  });

  it("sorts by last activity, then newest first", () => {
    const sorted = sortSessions([
      session("old", "running", 1),
      session("new", "running", 5),
      session("mid", "running", 3),
      session("used", "stopped", 0, { last_active_at: 9 }),
    ]);
    expect(sorted.map((s) => s.id)).toEqual(["used", "new", "mid", "old"]);
  });
});

describe("filterSessions", () => {
  const list = [
    session("a1", "running", 0, { name: "Thesis draft", description: "chapter 2", template: "coding-copilot" }),
    session("b2", "stopped", 0, { name: "Café notes", template: "meeting-synth", owner: "bob" }),
    session("c3", "failed", 0, { name: "Research" }),
  ];
  const ids = (query: string) =>
    filterSessions(list, query, (t) => (t === "coding-copilot" ? "Coding Copilot" : t)).map((s) => s.id);

  it("matches every word in name, description, template, owner or id", () => {
    expect(ids("")).toEqual(["a1", "b2", "c3"]);
    expect(ids("   ")).toEqual(["a1", "b2", "c3"]);
    expect(ids("thesis")).toEqual(["a1"]);
    expect(ids("CHAPTER")).toEqual(["a1"]);
    expect(ids("copilot draft")).toEqual(["a1"]);
    expect(ids("cafe")).toEqual(["b2"]);
    expect(ids("bob")).toEqual(["b2"]);
    expect(ids("c3")).toEqual(["c3"]);
    expect(ids("thesis bob")).toEqual([]);
  });
});

describe("nameProblem", () => {
  it("checks what octod checks", () => {
    expect(nameProblem("  ok ")).toBeNull();
    expect(nameProblem("é".repeat(80))).toBeNull();
    expect(nameProblem(" ")).toMatch(/empty/);
    expect(nameProblem("x".repeat(81))).toMatch(/80/);
    expect(nameProblem("a\tb")).toMatch(/control/);
  });
});

describe("limitsView", () => {
  it("shows the limits a session has, and which the host does not enforce", () => {
    expect(limitsView({ unenforced: [] })).toEqual({ text: null, note: null });
    expect(limitsView({ memory_bytes: 1.5 * 2 ** 30, cpu_centis: 150, pids: 512, unenforced: [] })).toEqual({
      text: "1.5 GiB memory · 1.5 CPUs · 512 tasks",
      note: null,
    });
    expect(limitsView({ memory_bytes: 512 * 2 ** 20, cpu_centis: 100, unenforced: ["memory"] })).toEqual({
      text: "512 MiB memory · 1 CPU",
      note: "Not enforced on this host (its cgroup controllers are not delegated): memory",
    });
  });
});

describe("diskView", () => {
  const disk = {
    used_bytes: 3 * 2 ** 29,
    measured_at: 1,
    owner_used_bytes: 9 * 2 ** 30,
    quota_bytes: 10 * 2 ** 30,
    quota_state: "ok" as const,
  };
  it("shows the home's size, and nothing before its first measurement", () => {
    expect(diskView(undefined)).toEqual({ text: null, warning: null, tone: null });
    expect(diskView({ owner_used_bytes: 0, quota_state: "ok" })).toEqual({ text: null, warning: null, tone: null });
    expect(diskView(disk)).toEqual({ text: "Home 1.5 GiB", warning: null, tone: null });
  });
  it("warns near the quota and says uploads are refused past it", () => {
    expect(diskView({ ...disk, quota_state: "warning" })).toEqual({
      text: "Home 1.5 GiB",
      warning:
        "Storage almost full: 9 GiB of your 10 GiB storage quota used (all your sessions together). Delete files you no longer need.",
      tone: "warning",
    });
    expect(diskView({ ...disk, owner_used_bytes: 10 * 2 ** 30, quota_state: "over" })).toEqual({
      text: "Home 1.5 GiB",
      warning:
        "Storage full: 10 GiB of your 10 GiB storage quota used (all your sessions together). Uploads are refused until you delete files.",
      tone: "danger",
    });
  });
});

describe("idleView", () => {
  const now = new Date(2026, 11, 3, 12, 0).getTime();
  const at = (h: number, m: number) => new Date(2026, 11, 3, h, m).getTime();
  it("is null when the idle stop will not stop the session", () => {
    expect(idleView(undefined, now)).toBeNull();
    expect(idleView({ kept_by: [], keep_alive_max_minutes: 1440 }, now)).toBeNull();
  });
  it("says when a session in use stops", () => {
    const view = idleView({ stops_at: at(14, 5), kept_by: ["activity"], keep_alive_max_minutes: 1440 }, now);
    expect(view?.text).toBe("Idle stop ≈ 14:05");
    expect(view?.reasons).toEqual(["In use"]);
    expect(view?.title).toContain("used recently");
  });
  it("names a working agent and a keep-alive", () => {
    const view = idleView(
      { stops_at: at(18, 0), kept_by: ["agent", "keep_alive"], keep_alive_until: at(18, 0), keep_alive_max_minutes: 1440 },
      now,
    );
    expect(view?.text).toBe("Kept running until 18:00");
    expect(view?.reasons).toEqual(["Agent working", "Kept alive"]);
    expect(view?.title).toContain("never stopped mid-turn");
    expect(view?.title).toContain("you asked to keep it running");
  });
  it("names a command running in a terminal", () => {
    const view = idleView({ stops_at: at(12, 10), kept_by: ["terminal"], keep_alive_max_minutes: 1440 }, now);
    expect(view?.text).toBe("Idle stop ≈ 12:10");
    expect(view?.reasons).toEqual(["Command running"]);
    expect(view?.title).toContain("a command runs in its terminal");
  });
  it("says when nothing keeps it", () => {
    expect(idleView({ stops_at: at(11, 0), kept_by: [], keep_alive_max_minutes: 0 }, now)?.title).toContain(
      "Nothing keeps it running",
    );
  });
});

describe("keepAliveChoices", () => {
  it("offers lengths up to the maximum, the maximum included", () => {
    expect(keepAliveChoices(0)).toEqual([]);
    expect(keepAliveChoices(1440).map((c) => c.label)).toEqual(["1 hour", "2 hours", "4 hours", "8 hours", "1 day"]);
    expect(keepAliveChoices(300).map((c) => c.minutes)).toEqual([60, 120, 240, 300]);
    expect(keepAliveChoices(300).at(-1)?.label).toBe("5 hours");
    expect(keepAliveChoices(90).map((c) => c.label)).toEqual(["1 hour", "90 minutes"]);
  });
});
