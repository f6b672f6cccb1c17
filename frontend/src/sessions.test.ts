import { describe, expect, it } from "vitest";
import type { Session, SessionState } from "./api";
import { actionsFor, IDLE_POLL_MS, nextPoll, POLL_MS, sortSessions, stateView, upsert } from "./sessions";

const ALL: SessionState[] = ["creating", "starting", "running", "stopping", "stopped", "deleting", "failed"];

const session = (id: string, state: SessionState, created_at = 0): Session => ({
  id,
  owner: "ann",
  template: "t",
  state,
  desired: "running",
  created_at,
  updated_at: created_at,
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

  it("sorts newest first", () => {
    const sorted = sortSessions([session("old", "running", 1), session("new", "running", 5), session("mid", "running", 3)]);
    expect(sorted.map((s) => s.id)).toEqual(["new", "mid", "old"]);
  });
});
