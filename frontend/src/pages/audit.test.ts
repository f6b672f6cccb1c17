import { describe, expect, it } from "vitest";
import type { AuditEntry } from "../api";
import { NO_FILTER, distinct, filterAudit, pageOf, parseLocalTime } from "./audit";

const entry = (id: number, actor: string, action: string, time: number): AuditEntry => ({ id, actor, action, time, target: "t", detail: "" });
const log = [
  entry(4, "root", "user.disable", 4000),
  entry(3, "admin", "invite.create", 3000),
  entry(2, "alice", "session.create", 2000),
  entry(1, "admin", "user.register", 1000),
];

describe("filterAudit", () => {
  const ids = (f: Parameters<typeof filterAudit>[1]) => filterAudit(log, f).map((e) => e.id);
  it("keeps everything without a filter, in order", () => expect(ids(NO_FILTER)).toEqual([4, 3, 2, 1]));
  it("filters by actor", () => expect(ids({ ...NO_FILTER, actor: "admin" })).toEqual([3, 1]));
  it("filters by action", () => expect(ids({ ...NO_FILTER, action: "session.create" })).toEqual([2]));
  it("bounds time: from inclusive, to exclusive", () => expect(ids({ ...NO_FILTER, from: 2000, to: 4000 })).toEqual([3, 2]));
  it("combines the filters", () => expect(ids({ actor: "admin", action: "user.register", from: 0 })).toEqual([1]));
  it("matches actors exactly", () => expect(ids({ ...NO_FILTER, actor: "adm" })).toEqual([]));
});

describe("distinct", () => {
  it("lists actors once, sorted", () => expect(distinct(log, "actor")).toEqual(["admin", "alice", "root"]));
});

describe("pageOf", () => {
  const items = Array.from({ length: 120 }, (_, i) => i);
  it("cuts pages", () => expect(pageOf(items, 1)).toEqual({ items: items.slice(50, 100), page: 1, pages: 3 }));
  it("clamps a page past the end (after a narrower filter)", () => expect(pageOf(items, 9).page).toBe(2));
  it("has one empty page for nothing", () => expect(pageOf([], 3)).toEqual({ items: [], page: 0, pages: 1 }));
});

describe("parseLocalTime", () => {
  it("reads a datetime-local value", () => expect(parseLocalTime("2026-01-02T03:04")).toBe(new Date(2026, 0, 2, 3, 4).getTime()));
  it("is undefined when empty or invalid", () => {
    expect(parseLocalTime("")).toBeUndefined();
    expect(parseLocalTime("nonsense")).toBeUndefined();
  });
});
