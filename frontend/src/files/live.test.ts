// Live changes: the change stream's events, which folders they make the tree list again or poll,
// and the connection's life (reconnects only while the session runs, the EventSource's own
// reconnect never used), against a scripted EventSource.
import { describe, expect, it } from "vitest";
import {
  foldersToPoll,
  foldersToRelist,
  linkedFolders,
  parseWatchEvent,
  reconnectDelay,
  runWatch,
  type EventSourceLike,
  type LiveState,
  type WatchEvent,
  type WatchStatus,
} from "./live";
import type { FileEntry } from "./fileops";

const complete: WatchStatus = { complete: true, watched: 3, max: 10_000, unwatched: [] };

describe("parseWatchEvent", () => {
  it("reads a status, with paths made absolute in the home", () => {
    expect(parseWatchEvent("status", '{"complete":true,"watched":3,"max":10000,"unwatched":[]}')).toEqual({
      type: "status",
      status: complete,
    });
    expect(
      parseWatchEvent("status", '{"complete":false,"watched":10000,"max":10000,"unwatched":["node_modules",""],"reason":"cap"}'),
    ).toEqual({
      type: "status",
      status: { complete: false, watched: 10000, max: 10000, unwatched: ["/node_modules", "/"], reason: "cap" },
    });
    // Incomplete with nothing named: everything counts as unwatched.
    expect(parseWatchEvent("status", '{"complete":false,"unwatched":[]}')).toMatchObject({ status: { unwatched: ["/"] } });
  });

  it("reads changes: the root is /, names may be many (null)", () => {
    expect(parseWatchEvent("change", '{"dirs":[{"path":"","names":["a.txt"]},{"path":"big","names":null},{"nope":1}]}')).toEqual({
      type: "change",
      dirs: [
        { path: "/", names: ["a.txt"] },
        { path: "/big", names: null },
      ],
    });
    expect(parseWatchEvent("resync", "{}")).toEqual({ type: "resync" });
  });

  it("drops what it cannot read", () => {
    expect(parseWatchEvent("change", "not json")).toBeNull();
    expect(parseWatchEvent("change", '{"dirs":3}')).toBeNull();
    expect(parseWatchEvent("status", '{"complete":"yes"}')).toBeNull();
    expect(parseWatchEvent("other", "{}")).toBeNull();
  });
});

describe("foldersToRelist", () => {
  const listed = new Set(["/", "/src", "/big"]);

  it("lists again only the folders the tree shows that changed, once each", () => {
    expect(
      foldersToRelist(
        [
          { path: "/big", names: ["agent-loop.txt"] },
          { path: "/node_modules/x", names: ["y"] },
          { path: "/src", names: null },
          { path: "/big", names: ["other"] },
        ],
        listed,
        false,
      ),
    ).toEqual(["/big", "/src"]);
  });

  it("skips changes of hidden names alone while hidden files are not shown", () => {
    const history = [{ path: "/", names: [".bash_history"] }];
    expect(foldersToRelist(history, listed, false)).toEqual([]);
    expect(foldersToRelist(history, listed, true)).toEqual(["/"]);
    expect(foldersToRelist([{ path: "/", names: [".octo-partial-1", "up.txt"] }], listed, false)).toEqual(["/"]);
    // Many names (unknown which): listed again.
    expect(foldersToRelist([{ path: "/", names: null }], listed, false)).toEqual(["/"]);
  });
});

describe("foldersToPoll", () => {
  const listed = ["/", "/src", "/node_modules", "/node_modules/react"];

  it("polls everything while no stream is live, nothing while it watches everything", () => {
    expect(foldersToPoll(null, listed)).toEqual(listed);
    expect(foldersToPoll(complete, listed)).toEqual([]);
  });

  it("polls only the folders within those the stream does not watch", () => {
    const partial = { ...complete, complete: false, unwatched: ["/node_modules", "/.cache"] };
    expect(foldersToPoll(partial, listed)).toEqual(["/node_modules", "/node_modules/react"]);
    expect(foldersToPoll({ ...partial, unwatched: ["/"] }, listed)).toEqual(listed);
  });

  it("polls folders opened through a symlink even while everything is watched", () => {
    const entry = (path: string, kind: FileEntry["kind"]): FileEntry => ({ name: path.split("/").pop()!, path, kind, size: 0, mtime: 0, targetKind: "dir" });
    const listings = new Map<string, FileEntry[]>([
      ["/", [entry("/src", "dir"), entry("/docs", "symlink")]],
      ["/src", [entry("/src/lib", "dir")]],
      ["/docs", [entry("/docs/api", "dir")]],
    ]);
    const open = ["/src", "/src/lib", "/docs", "/docs/api"];
    expect(linkedFolders(listings, open)).toEqual(["/docs", "/docs/api"]);
    expect(foldersToPoll(complete, ["/", ...open], linkedFolders(listings, open))).toEqual(["/docs", "/docs/api"]);
  });
});

it("waits longer after each failed reconnect, up to 30 s, spread", () => {
  expect([1, 2, 3, 6, 20].map((n) => reconnectDelay(n))).toEqual([1000, 2000, 4000, 30_000, 30_000]);
  expect(reconnectDelay(1, 0)).toBe(875);
  expect(reconnectDelay(1, 0.999)).toBe(1125);
});

/** A scripted EventSource: the test sends events and errors; it records being closed. */
class FakeSource implements EventSourceLike {
  listeners = new Map<string, ((event: MessageEvent<string>) => void)[]>();
  onerror: ((event: Event) => void) | null = null;
  closed = false;
  constructor(readonly url: string) {}
  addEventListener(type: string, listener: (event: MessageEvent<string>) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  emit(type: string, data: unknown) {
    for (const l of this.listeners.get(type) ?? []) l({ data: JSON.stringify(data) } as MessageEvent<string>);
  }
  fail() {
    this.onerror?.(new Event("error"));
  }
  close() {
    this.closed = true;
  }
}

/** runWatch against FakeSources, with sleeps and "is the session running" under the test's control. */
function harness() {
  const sources: FakeSource[] = [];
  const states: LiveState[] = [];
  const events: WatchEvent[] = [];
  const sleeps: number[] = [];
  const asked: ((running: boolean) => void)[] = [];
  const wakers: (() => void)[] = [];
  const controller = new AbortController();
  const done = runWatch({
    url: "/sessions/s/files/api/watch",
    signal: controller.signal,
    open: (url) => {
      const s = new FakeSource(url);
      sources.push(s);
      return s;
    },
    onState: (s) => states.push(s),
    onEvent: (e) => events.push(e),
    mayConnect: () => new Promise<boolean>((resolve) => asked.push(resolve)),
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        sleeps.push(ms);
        wakers.push(resolve);
      }),
    random: () => 0.5,
  });
  const tick = () => new Promise((r) => setTimeout(r, 0));
  return { sources, states, events, sleeps, asked, wakers, controller, done, tick };
}

describe("runWatch", () => {
  it("is live from the first status and hands on changes and resyncs", async () => {
    const h = harness();
    await h.tick();
    expect(h.sources.map((s) => s.url)).toEqual(["/sessions/s/files/api/watch"]);
    h.sources[0].emit("status", complete);
    h.sources[0].emit("change", { dirs: [{ path: "big", names: ["new.txt"] }] });
    h.sources[0].emit("resync", {});
    h.sources[0].emit("status", { ...complete, complete: false, unwatched: ["c"] });
    expect(h.states).toEqual([
      { kind: "live", status: complete, first: true },
      { kind: "live", status: { ...complete, complete: false, unwatched: ["/c"] }, first: false },
    ]);
    expect(h.events).toEqual([{ type: "change", dirs: [{ path: "/big", names: ["new.txt"] }] }, { type: "resync" }]);
    h.controller.abort();
    await h.done;
    expect(h.sources[0].closed).toBe(true);
  });

  it("on an error closes the source and reconnects only after a pause and once the session runs", async () => {
    const h = harness();
    await h.tick();
    h.sources[0].emit("status", complete);
    h.sources[0].fail();
    await h.tick();
    // Closed at once (the browser's own reconnect would wake a stopped session), down, pausing.
    expect(h.sources[0].closed).toBe(true);
    expect(h.states.at(-1)).toEqual({ kind: "down" });
    expect(h.sleeps).toEqual([1000]);
    h.wakers.shift()!();
    await h.tick();
    // Asked whether the session runs: it does not (stopped). No new source; a longer pause.
    expect(h.asked).toHaveLength(1);
    h.asked.shift()!(false);
    await h.tick();
    expect(h.sources).toHaveLength(1);
    expect(h.sleeps).toEqual([1000, 2000]);
    h.wakers.shift()!();
    await h.tick();
    h.asked.shift()!(true);
    await h.tick();
    expect(h.sources).toHaveLength(2);
    // Its first status is a first again (the pane lists what it shows once more).
    h.sources[1].emit("status", complete);
    expect(h.states.at(-1)).toEqual({ kind: "live", status: complete, first: true });
    // A connection that got its status resets the pause.
    h.sources[1].fail();
    await h.tick();
    expect(h.sleeps.at(-1)).toBe(1000);
    h.controller.abort();
    h.wakers.shift()!();
    await h.done;
    expect(h.sources).toHaveLength(2);
  });
});
