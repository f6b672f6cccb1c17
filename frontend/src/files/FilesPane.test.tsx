// @vitest-environment jsdom
// The Files pane against a scripted file server: the change stream's events applied to the tree
// (only the changed folders listed again, the selection kept), polling only while the stream is
// down or does not watch a folder shown, and bounded previews (the first part of a big text, then
// more of the same version; binary files described). fetch answers are real `Response`s; the
// EventSource is scripted; the rendering is React's.
import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FilesPane } from "./FilesPane";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

interface Listed {
  name: string;
  kind: "file" | "dir";
  size?: number;
}

/** The scripted workspace: folder (relative, "" for the root) → entries. */
let disk: Map<string, Listed[]>;
/** Every request: method, URL and headers. */
let requests: { url: string; headers: Record<string, string> }[];
/** Answers to downloads, by the test. */
let download: (url: string, headers: Record<string, string>) => Response;
let sources: FakeSource[];
let root: Root;
let container: HTMLDivElement;

class FakeSource {
  listeners = new Map<string, ((event: MessageEvent<string>) => void)[]>();
  onerror: ((event: Event) => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    sources.push(this);
  }
  addEventListener(type: string, listener: (event: MessageEvent<string>) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  close() {
    this.closed = true;
  }
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

function serve(url: string, init: RequestInit = {}): Response {
  // As sent (jsdom's Headers drops `Range`, which a browser sends).
  const raw = (init.headers ?? {}) as Record<string, string>;
  const headers = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k.toLowerCase(), v]));
  requests.push({ url, headers });
  const u = new URL(url, "http://octo.test");
  if (u.pathname === "/api/sessions/s1") return json({ id: "s1", state: "running" });
  if (u.pathname === "/sessions/s1/files/api/list") {
    const dir = u.searchParams.get("path") ?? "";
    const entries = disk.get(dir);
    if (!entries) return json({ error: { code: "not_found", message: `${dir}: no such file or directory` } }, 404);
    const path = (name: string) => (dir ? `${dir}/${name}` : name);
    const all = entries.map((e) => ({ name: e.name, path: path(e.name), kind: e.kind, size: e.size ?? 1, mtime: 0 }));
    if (!u.searchParams.has("limit")) return json({ path: dir, entries: all, truncated: false });
    // A page, as the file server answers `offset` and `limit`.
    const offset = Math.min(Number(u.searchParams.get("offset") ?? 0), all.length);
    const page = all.slice(offset, offset + Number(u.searchParams.get("limit")));
    return json({ path: dir, entries: page, truncated: false, total: all.length, offset });
  }
  if (u.pathname === "/sessions/s1/files/api/download") return download(url, headers);
  return json({ error: { code: "no_route", message: "no such route" } }, 404);
}

beforeEach(() => {
  disk = new Map([
    ["", [{ name: "big", kind: "dir" }, { name: "notes.md", kind: "file" }]],
    ["big", [{ name: "file-0.txt", kind: "file" }]],
  ]);
  requests = [];
  sources = [];
  download = () => json({ error: { code: "not_found", message: "no" } }, 404);
  vi.stubGlobal("fetch", async (url: string, init?: RequestInit) => serve(url, init));
  vi.stubGlobal("EventSource", FakeSource);
  vi.stubGlobal(
    "ResizeObserver",
    class {
      observe() {}
      disconnect() {}
    },
  );
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

async function settle() {
  for (let i = 0; i < 5; i++) {
    await act(async () => {
      await new Promise((resolve) => setTimeout(resolve, 0));
    });
  }
}

async function render() {
  await act(async () => root.render(<FilesPane sessionId="s1" />));
  await settle();
}

const row = (path: string) => container.querySelector<HTMLElement>(`[data-testid="file-entry"][data-path="${path}"]`);
const lists = () => requests.filter((r) => r.url.includes("/api/list")).map((r) => new URL(r.url, "http://x").searchParams.get("path"));

/** Sends a server-sent event on the pane's (latest) stream. */
async function emit(type: string, data: unknown) {
  const source = sources.at(-1)!;
  await act(async () => {
    for (const l of source.listeners.get(type) ?? []) l({ data: JSON.stringify(data) } as MessageEvent<string>);
  });
  await settle();
}

const complete = { complete: true, watched: 2, max: 10000, unwatched: [] };

describe("FilesPane, live", () => {
  it("lists again only the folders that changed, and keeps the selection", async () => {
    await render();
    expect(sources.map((s) => s.url)).toEqual(["/sessions/s1/files/api/watch"]);
    await act(async () => row("/big")!.click()); // selects and opens it
    await settle();
    expect(row("/big/file-0.txt")).not.toBeNull();
    // The stream's first status: what the tree shows is listed once more (changes before it
    // are not replayed).
    requests = [];
    await emit("status", complete);
    expect(lists().sort()).toEqual(["", "big"]);

    // The agent writes a file in big/ (and something changes in a folder not shown).
    requests = [];
    disk.get("big")!.unshift({ name: "agent-loop.txt", kind: "file" });
    await emit("change", {
      dirs: [
        { path: "big", names: ["agent-loop.txt"] },
        { path: "node_modules/x", names: ["y"] },
      ],
    });
    expect(lists()).toEqual(["big"]);
    expect(row("/big/agent-loop.txt")).not.toBeNull();
    expect(row("/big")!.getAttribute("aria-selected")).toBe("true");

    // Only hidden names changed, hidden files not shown: nothing asked.
    requests = [];
    await emit("change", { dirs: [{ path: "", names: [".bash_history"] }] });
    expect(requests).toEqual([]);

    // A folder removed while open: its listing is gone; the tree forgets it.
    disk.set("", [{ name: "notes.md", kind: "file" }]);
    disk.delete("big");
    await emit("change", {
      dirs: [
        { path: "", names: ["big"] },
        { path: "big", names: null },
      ],
    });
    expect(row("/big")).toBeNull();
    expect(row("/big/agent-loop.txt")).toBeNull();
    expect(container.querySelector('[data-testid="files-error"]')).toBeNull();

    // A resync: everything shown is listed again.
    requests = [];
    await emit("resync", {});
    expect(lists()).toEqual([""]);
  });

  it("lists a big folder a page at a time: the first page when it opens, again when it changes", async () => {
    disk.set(
      "big",
      Array.from({ length: 1200 }, (_, i) => ({ name: `file-${i}.txt`, kind: "file" as const })),
    );
    await render();
    requests = [];
    await act(async () => row("/big")!.click());
    await settle();
    const listed = () => requests.filter((r) => r.url.includes("/api/list")).map((r) => new URL(r.url, "http://x").search);
    expect(listed()).toEqual(["?path=big&offset=0&limit=500"]);
    // Its first rows are the entries, in the server's order; the rest stand in (not in the DOM
    // here: jsdom has no viewport, so only the overscan is rendered).
    expect(row("/big/file-0.txt")).not.toBeNull();
    expect(row("/big/file-1.txt")).not.toBeNull();
    expect(container.querySelectorAll('[data-testid="file-entry"], [data-testid="file-placeholder"]').length).toBeLessThan(40);

    // A change in it: its first page again (and the pages in view), not the whole folder.
    requests = [];
    disk.get("big")!.unshift({ name: "agent-loop.txt", kind: "file" });
    await emit("status", complete);
    requests = [];
    await emit("change", { dirs: [{ path: "big", names: ["agent-loop.txt"] }] });
    expect(listed()).toEqual(["?path=big&offset=0&limit=500"]);
    expect(row("/big/agent-loop.txt")).not.toBeNull();
  });

  it("polls only while the stream is down, or for folders it does not watch", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    await render();
    const tick = async (ms: number) => {
      await act(async () => {
        vi.advanceTimersByTime(ms);
      });
      await settle();
    };
    // Not live yet: polled (after asking octod whether the session runs).
    requests = [];
    await tick(4000);
    expect(requests.map((r) => new URL(r.url, "http://x").pathname)).toEqual(["/api/sessions/s1", "/sessions/s1/files/api/list"]);

    const liveness = () => container.querySelector('[data-testid="files-live"]')!.getAttribute("data-state");
    expect(liveness()).toBe("off");
    // Live and complete: nothing at all, however long.
    await emit("status", complete);
    expect(liveness()).toBe("live");
    requests = [];
    await tick(60_000);
    expect(requests).toEqual([]);

    // Partial, but not where the tree looks: still nothing.
    await emit("status", { ...complete, complete: false, unwatched: ["node_modules"] });
    await tick(8000);
    expect(requests).toEqual([]);
    expect(liveness()).toBe("live");

    // Partial everywhere: the root is polled again.
    await emit("status", { ...complete, complete: false, unwatched: [""] });
    await tick(4000);
    expect(lists()).toEqual([""]);
    expect(liveness()).toBe("partial");

    // The stream fails: closed at once (no browser reconnect), and polling takes over.
    await emit("status", complete);
    requests = [];
    await act(async () => sources[0].onerror?.(new Event("error")));
    await settle();
    expect(sources[0].closed).toBe(true);
    expect(liveness()).toBe("off");
    await tick(4000);
    expect(lists()).toEqual([""]);
  });
});

describe("FilesPane, previews", () => {
  const MiB = 1024 * 1024;

  it("opens a 50 MiB text as its first part, loads more of the same version, and says when it changed", async () => {
    disk.set("", [{ name: "big.log", kind: "file", size: 50 * MiB }]);
    const part = (start: number, length: number) =>
      new Response(new Uint8Array(length).fill(0x61), {
        status: 206,
        headers: { "Content-Range": `bytes ${start}-${start + length - 1}/${50 * MiB}`, ETag: '"v1"' },
      });
    download = (_url, headers) => {
      const [, a, b] = /bytes=(\d+)-(\d+)/.exec(headers.range ?? "") ?? [];
      if (headers["if-match"] === '"v2"') return json({ error: { code: "precondition_failed", message: "changed" } }, 412);
      return part(Number(a), Number(b) - Number(a) + 1);
    };
    await render();
    await act(async () => row("/big.log")!.click());
    await settle();
    const downloads = () => requests.filter((r) => r.url.includes("/api/download"));
    expect(downloads().map((r) => [r.headers.range, r.headers["if-match"]])).toEqual([["bytes=0-262143", undefined]]);
    const text = () => container.querySelector('[data-testid="file-preview-text"]')!.textContent!;
    expect(text()).toHaveLength(256 * 1024);
    const more = () => container.querySelector<HTMLElement>('[data-testid="file-preview-more"]')!;
    expect(more().textContent).toContain("Showing the first 256 KiB of 50 MiB.");

    await act(async () => container.querySelector<HTMLElement>('[data-testid="file-preview-load-more"]')!.click());
    await settle();
    expect(downloads().map((r) => [r.headers.range, r.headers["if-match"]])[1]).toEqual(["bytes=262144-524287", '"v1"']);
    expect(text()).toHaveLength(512 * 1024);
    expect(more().textContent).toContain("Showing the first 512 KiB of 50 MiB.");

    // The file changes: the next part is refused rather than shown from another version.
    download = () => json({ error: { code: "precondition_failed", message: "the file changed" } }, 412);
    await act(async () => container.querySelector<HTMLElement>('[data-testid="file-preview-load-more"]')!.click());
    await settle();
    expect(text()).toHaveLength(512 * 1024);
    expect(more().textContent).toContain("The file changed since this preview opened");
    expect(container.querySelector('[data-testid="file-preview-load-more"]')).toBeNull();
  });

  it("says what a binary file is instead of showing it", async () => {
    disk.set("", [
      { name: "a.out", kind: "file", size: 5000 },
      { name: "site.zip", kind: "file", size: 3 * MiB },
    ]);
    download = () => new Response(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0]), { status: 206, headers: { "Content-Range": "bytes 0-9/5000" } });
    await render();
    const message = () => container.querySelector('[data-testid="file-preview-message"]')?.textContent;
    await act(async () => row("/a.out")!.click());
    await settle();
    expect(message()).toBe("ELF executable or library, 4.9 KiB. Download it to open it.");
    // Known by its extension: not even read.
    requests = [];
    await act(async () => row("/site.zip")!.click());
    await settle();
    expect(message()).toBe("ZIP archive, 3.0 MiB. Download it to open it.");
    expect(requests).toEqual([]);
  });

  it("shows an SVG from a data: URL, never a same-origin blob: document", async () => {
    disk.set("", [
      { name: "d.svg", kind: "file", size: 60 },
      { name: "p.png", kind: "file", size: 4 },
    ]);
    const svg = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>';
    download = (url) => new Response(url.includes("d.svg") ? svg : new Uint8Array([0x89, 0x50, 0x4e, 0x47]), { status: 200 });
    const created: string[] = [];
    vi.stubGlobal(
      "URL",
      class extends URL {
        static createObjectURL(blob: Blob) {
          created.push(blob.type);
          return `blob:octo/${created.length}`;
        }
        static revokeObjectURL() {}
      },
    );
    await render();
    await act(async () => row("/d.svg")!.click());
    await settle();
    const src = () => container.querySelector<HTMLImageElement>(".file-preview-body img")?.getAttribute("src");
    expect(src()).toMatch(/^data:image\/svg\+xml;base64,/);
    expect(atob(src()!.split(",")[1])).toBe(svg);
    expect(created).toEqual([]);
    await act(async () => row("/p.png")!.click());
    await settle();
    expect(src()).toBe("blob:octo/1");
    expect(created).toEqual(["image/png"]);
  });
});
