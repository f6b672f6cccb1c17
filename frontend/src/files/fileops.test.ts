// File operations: paths, URLs, listings, errors, preview decisions and the upload queue.
import { describe, expect, it } from "vitest";
import {
  FileError,
  ListingCache,
  TEXT_PREVIEW_BYTES,
  TEXT_PREVIEW_MAX,
  apiUrl,
  binaryMessage,
  compareNames,
  fillSlots,
  findEntry,
  LIST_PAGE,
  pagesOf,
  parsePlaceholder,
  placeholderPath,
  baseName,
  decodeChunk,
  decodeText,
  describeBinary,
  describeError,
  dropPaths,
  formatSize,
  isWithin,
  joinPath,
  nextChunk,
  normalizePath,
  parentPath,
  parseError,
  parseListing,
  planPreview,
  rangeTotal,
  renamePaths,
  sameListing,
  sortEntries,
  uploadFraction,
  uploadReducer,
  uploadsToStart,
  urls,
  viewable,
  validateName,
  visibleRows,
  type FileEntry,
  type Upload,
} from "./fileops";

const entry = (path: string, kind: FileEntry["kind"] = "file", extra: Partial<FileEntry> = {}): FileEntry => ({
  name: path.slice(path.lastIndexOf("/") + 1),
  path,
  kind,
  size: 1,
  mtime: 0,
  ...extra,
});

describe("paths", () => {
  it.each([
    ["", "/"],
    ["/", "/"],
    ["a", "/a"],
    ["/a/b/", "/a/b"],
    ["//a//./b", "/a/b"],
    ["a/../b", "/b"],
    ["/../../etc/passwd", "/etc/passwd"],
    ["a/b/../../..", "/"],
    ["/with space/ü", "/with space/ü"],
  ])("normalizes %j to %j", (input, expected) => {
    expect(normalizePath(input)).toBe(expected);
  });

  it("joins, splits and compares", () => {
    expect(joinPath("/", "x.txt")).toBe("/x.txt");
    expect(joinPath("/src", "main.rs")).toBe("/src/main.rs");
    expect(parentPath("/src/main.rs")).toBe("/src");
    expect(parentPath("/x")).toBe("/");
    expect(parentPath("/")).toBe("/");
    expect(baseName("/src/main.rs")).toBe("main.rs");
    expect(baseName("/")).toBe("");
    expect(isWithin("/a/b", "/a")).toBe(true);
    expect(isWithin("/a", "/a")).toBe(true);
    expect(isWithin("/ab", "/a")).toBe(false);
    expect(isWithin("/anything", "/")).toBe(true);
  });

  it("validates new names", () => {
    expect(validateName("notes.txt")).toBeNull();
    expect(validateName(".env")).toBeNull();
    expect(validateName("")).toMatch(/empty/);
    expect(validateName("  ")).toMatch(/empty/);
    expect(validateName("a/b")).toMatch(/\//);
    expect(validateName("..")).not.toBeNull();
    expect(validateName("a\0b")).toMatch(/NUL/);
    expect(validateName("é".repeat(127))).toBeNull(); // 254 bytes
    expect(validateName("é".repeat(128))).toMatch(/255 bytes/);
  });
});

describe("URLs", () => {
  it("puts paths in the query, encoded, relative to the home", () => {
    expect(urls.list("abc", "/")).toBe("/sessions/abc/files/api/list?path=");
    expect(urls.watch("abc")).toBe("/sessions/abc/files/api/watch");
    expect(urls.list("abc", "/src", true)).toBe("/sessions/abc/files/api/list?path=src&hidden=true");
    expect(urls.download("abc", "/a b/c&d.txt")).toBe("/sessions/abc/files/api/download?path=a+b%2Fc%26d.txt");
    expect(urls.download("abc", "/img.png", true)).toBe("/sessions/abc/files/api/download?path=img.png&inline=true");
    expect(urls.upload("abc", "/x/../y.bin")).toBe("/sessions/abc/files/api/upload?path=y.bin");
    expect(urls.upload("abc", "/y.bin", true)).toBe("/sessions/abc/files/api/upload?path=y.bin&overwrite=true");
    expect(urls.move("abc", "/a", "/d/b")).toBe("/sessions/abc/files/api/move?from=a&to=d%2Fb");
    expect(urls.remove("abc", "/d", true)).toBe("/sessions/abc/files/api/delete?path=d&recursive=true");
    expect(urls.remove("abc", "/f", false)).toBe("/sessions/abc/files/api/delete?path=f");
    expect(urls.mkdir("abc", "/new")).toBe("/sessions/abc/files/api/mkdir?path=new");
  });

  it("round-trips any name through the query", () => {
    const name = "100% ünïcode + spaces & #hash?.txt";
    const url = new URL(urls.download("s1", `/dir/${name}`), "http://x");
    expect(url.searchParams.get("path")).toBe(`dir/${name}`);
  });

  it("sends a non-UTF-8 entry back by its raw path, as is", () => {
    const entry = { path: "/d\ufffd/x", rawPath: "d%FF%2Fx" };
    expect(urls.download("s", entry)).toBe("/sessions/s/files/api/download?path=d%FF%2Fx");
    expect(urls.list("s", entry, true)).toBe("/sessions/s/files/api/list?path=d%FF%2Fx&hidden=true");
    expect(urls.move("s", entry, "/y z")).toBe("/sessions/s/files/api/move?from=d%FF%2Fx&to=y+z");
    expect(urls.remove("s", { path: "/plain" }, false)).toBe("/sessions/s/files/api/delete?path=plain");
  });

  it("encodes the session id and leaves out unset parameters", () => {
    expect(apiUrl("a/b", "stat", { path: "x", depth: undefined, hidden: false })).toBe(
      "/sessions/a%2Fb/files/api/stat?path=x",
    );
    expect(apiUrl("s", "list", { depth: 2 })).toBe("/sessions/s/files/api/list?depth=2");
  });
});

describe("listings", () => {
  it("parses the file server's answer into absolute, sorted entries", () => {
    const body = {
      path: "",
      truncated: false,
      entries: [
        { name: "b.txt", path: "b.txt", kind: "file", size: 3, mtime: 5, mode: 420 },
        { name: "src", path: "src", kind: "dir", size: 4096, mtime: 1, mode: 493 },
        { name: "link", path: "link", kind: "symlink", size: 3, mtime: 1, mode: 511, target: "src", target_kind: "dir" },
        { name: "dangling", path: "dangling", kind: "symlink", size: 3, mtime: 1, mode: 511, target: "nope" },
        { name: "bad\ufffd", path: "bad\ufffd", raw_path: "bad%FF", kind: "file", size: 0, mtime: 0, mode: 420 },
        { name: "broken" },
      ],
    };
    const { entries, truncated } = parseListing(body);
    expect(truncated).toBe(false);
    expect(entries.map((e) => e.path)).toEqual(["/link", "/src", "/b.txt", "/bad\ufffd", "/dangling"]);
    expect(entries[0].targetKind).toBe("dir");
    expect(entries[3].rawPath).toBe("bad%FF");
    expect(entries[4].targetKind).toBeUndefined();
  });

  it("refuses a body without entries", () => {
    expect(() => parseListing({ error: {} })).toThrow(FileError);
    expect(() => parseListing(null)).toThrow(/without entries/);
  });

  it("sorts folders first, then names as people read them", () => {
    const sorted = sortEntries([
      entry("/file10.txt"),
      entry("/File2.txt"),
      entry("/zdir", "dir"),
      entry("/file1.txt"),
      entry("/Adir", "dir"),
      entry("/file2.txt"),
    ]);
    expect(sorted.map((e) => e.name)).toEqual(["Adir", "zdir", "file1.txt", "File2.txt", "file2.txt", "file10.txt"]);
  });

  it("orders names as the file server does (its order.rs table)", () => {
    const ordered = [
      "", "-dash", "01.txt", "1.txt", "2.txt", "10.txt", "a", "A.md", "a.md", "a01", "a1", "a2", "a10",
      "B", "b", "file-9.txt", "file-00010.txt", "file-10.txt", "readme", "README.md", "zeta", "Ärger", "éclair",
    ];
    for (const [i, a] of ordered.entries()) {
      for (const [j, b] of ordered.entries()) expect(Math.sign(compareNames(a, b)), `${a} against ${b}`).toBe(Math.sign(i - j));
    }
  });

  it("reads a page's place in the folder, or takes a whole listing as one page", () => {
    const page = parseListing({ entries: [{ name: "x", path: "d/x", kind: "file" }], total: 1200, offset: 500 });
    expect([page.total, page.offset, page.entries.length]).toEqual([1200, 500, 1]);
    const whole = parseListing({ entries: [{ name: "x", path: "d/x", kind: "file" }], truncated: false });
    expect([whole.total, whole.offset]).toEqual([1, 0]);
    expect(urls.list("s", "/d", false, 500)).toBe(`${urls.list("s", "/d")}&offset=500&limit=${LIST_PAGE}`);
  });

  it("compares listings by content", () => {
    const a = [entry("/a"), entry("/b", "dir")];
    expect(sameListing(a, [entry("/a"), entry("/b", "dir")])).toBe(true);
    expect(sameListing(a, [entry("/a", "file", { size: 2 }), entry("/b", "dir")])).toBe(false);
    expect(sameListing(a, [entry("/a")])).toBe(false);
    expect(sameListing(undefined, [])).toBe(false);
  });
});

describe("errors", () => {
  it("reads the JSON error shape", () => {
    const e = parseError(409, '{"error":{"code":"already_exists","message":"x: already exists"}}');
    expect(e).toBeInstanceOf(FileError);
    expect([e.status, e.code, e.message]).toEqual([409, "already_exists", "x: already exists"]);
    expect(describeError("Renaming x", e)).toBe("Renaming x: something with that name already exists.");
  });

  it("falls back to the status for other bodies", () => {
    const e = parseError(502, "<html>Bad Gateway</html>");
    expect(e.code).toBe("http_502");
    expect(e.message).toBe("HTTP 502: <html>Bad Gateway</html>");
    expect(parseError(500, "").message).toBe("HTTP 500");
    expect(describeError("Listing /", new Error("offline"))).toBe("Listing /: offline");
  });
});

describe("tree", () => {
  it("shows expanded folders' entries below them, indented", () => {
    const listings = new Map<string, FileEntry[]>([
      ["/", [entry("/a", "dir"), entry("/b", "dir"), entry("/c.txt")]],
      ["/a", [entry("/a/x", "dir"), entry("/a/y.txt")]],
      ["/a/x", [entry("/a/x/deep.txt")]],
    ]);
    const rows = visibleRows(listings, new Set(["/a", "/a/x", "/b"]));
    expect(rows.map((r) => [r.entry.path, r.depth, r.expanded, r.loading])).toEqual([
      ["/a", 0, true, false],
      ["/a/x", 1, true, false],
      ["/a/x/deep.txt", 2, false, false],
      ["/a/y.txt", 1, false, false],
      ["/b", 0, true, true],
      ["/c.txt", 0, false, false],
    ]);
    expect(visibleRows(listings, new Set(["/a/x"])).map((r) => r.entry.path)).toEqual(["/a", "/b", "/c.txt"]);
  });

  it("stands in for the entries of pages not loaded yet, and fills them in as pages arrive", () => {
    const page = (offset: number, names: string[], total: number) => ({
      entries: names.map((n) => entry(`/big/${n}`)),
      truncated: false,
      total,
      offset,
    });
    // A folder of 5: its first page (2 entries, say) loaded, then the last one.
    let slots = fillSlots(5, [page(0, ["a", "b"], 5)]);
    const listings = () => new Map([["/", [entry("/big", "dir")]], ["/big", slots]]);
    let rows = visibleRows(listings(), new Set(["/big"]));
    expect(rows.map((r) => [r.entry.path, r.dir, r.index, r.placeholder ?? false])).toEqual([
      ["/big", "/", 0, false],
      ["/big/a", "/big", 0, false],
      ["/big/b", "/big", 1, false],
      [placeholderPath("/big", 2), "/big", 2, true],
      [placeholderPath("/big", 3), "/big", 3, true],
      [placeholderPath("/big", 4), "/big", 4, true],
    ]);
    expect(parsePlaceholder(rows[5].entry.path)).toEqual({ dir: "/big", index: 4 });
    expect(parsePlaceholder("/big/a")).toBeUndefined();
    slots = fillSlots(5, [page(4, ["e"], 5), page(2, ["stale"], 6)], slots);
    rows = visibleRows(listings(), new Set(["/big"]));
    expect(rows.map((r) => r.entry.name || "…")).toEqual(["big", "a", "b", "…", "…", "e"]);
    expect(findEntry(listings(), "/big/e")?.name).toBe("e");
    expect(sameListing(slots, fillSlots(5, [page(0, ["a", "b"], 5), page(4, ["e"], 5)]))).toBe(true);
    expect(sameListing(slots, fillSlots(5, [page(0, ["a", "b"], 5)]))).toBe(false);
    // The pages that rows 499 to 1000 need.
    expect(pagesOf(LIST_PAGE - 1, 2 * LIST_PAGE + 1)).toEqual([0, 1, 2]);
  });

  it("follows renames and deletes in the set of expanded paths", () => {
    const expanded = ["/a", "/a/b", "/ab", "/c"];
    expect([...renamePaths(expanded, "/a", "/z")].sort()).toEqual(["/ab", "/c", "/z", "/z/b"]);
    expect([...dropPaths(expanded, "/a")].sort()).toEqual(["/ab", "/c"]);
  });
});

describe("preview", () => {
  it("plans images by extension and size, everything else as capped text", () => {
    expect(planPreview(entry("/p.PNG", "file", { size: 10 }))).toEqual({ kind: "image", mime: "image/png", source: "blob" });
    // An SVG can carry script: never a same-origin blob: document.
    expect(planPreview(entry("/d.svg", "file", { size: 10 }))).toEqual({ kind: "image", mime: "image/svg+xml", source: "data" });
    expect(planPreview(entry("/p.jpg", "file", { size: 30 * 1024 * 1024 })).kind).toBe("none");
    expect(planPreview(entry("/notes.txt", "file", { size: 10 }))).toEqual({ kind: "text", truncated: false });
    expect(planPreview(entry("/big.log", "file", { size: 10 * 1024 * 1024 }))).toEqual({ kind: "text", truncated: true });
    expect(planPreview(entry("/d", "dir")).kind).toBe("none");
    expect(planPreview(entry("/l", "symlink", { targetKind: "file" })).kind).toBe("text");
  });

  it("decodes UTF-8 text and refuses binary", () => {
    const enc = new TextEncoder();
    expect(decodeText(enc.encode("héllo\n"), false)).toBe("héllo\n");
    expect(decodeText(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1]), false)).toBeNull();
    expect(decodeText(new Uint8Array([0xff, 0xfe, 0x41]), false)).toBeNull();
    // A read cut in the middle of "€" (e2 82 ac) is still text when truncated.
    const cut = enc.encode("ab€").subarray(0, 4);
    expect(decodeText(cut, true)).toBe("ab");
    expect(decodeText(cut, false)).toBeNull();
  });

  it("describes known binary types by extension without reading them", () => {
    expect(planPreview(entry("/a.zip", "file", { size: 5 }))).toEqual({ kind: "binary", description: "ZIP archive" });
    expect(planPreview(entry("/lib.SO", "file"))).toEqual({ kind: "binary", description: "shared library" });
    expect(planPreview(entry("/model.safetensors", "file")).kind).toBe("binary");
    // No extension, or one of text: read as text (and described by its bytes if binary).
    expect(planPreview(entry("/a.out", "file")).kind).toBe("text");
    expect(planPreview(entry("/Makefile", "file")).kind).toBe("text");
    expect(planPreview(entry("/huge.jpg", "file", { size: 30 * 1024 * 1024 }))).toEqual({
      kind: "none",
      reason: "An image of 30 MiB: images over 20 MiB are not shown. Download it to view it.",
    });
    expect(binaryMessage("ZIP archive", 3 * 1024 * 1024)).toBe("ZIP archive, 3.0 MiB. Download it to open it.");
  });

  it("tells what binary bytes are by their magic, else by extension", () => {
    const bytes = (...b: (number | string)[]) =>
      new Uint8Array(b.flatMap((x) => (typeof x === "string" ? Array.from(x, (c) => c.charCodeAt(0)) : [x])));
    expect(describeBinary("a.out", bytes(0x7f, "ELF", 2, 1, 1, 0))).toBe("ELF executable or library");
    expect(describeBinary("x", bytes(0x89, "PNG", 0x0d, 0x0a, 0x1a, 0x0a, 0))).toBe("PNG image");
    expect(describeBinary("x", bytes("%PDF-1.7", 0))).toBe("PDF document");
    expect(describeBinary("x", bytes("PK", 3, 4, 0))).toBe("ZIP archive");
    expect(describeBinary("x", bytes("RIFF", 0, 0, 0, 0, "WEBPVP8 "))).toBe("WebP image");
    expect(describeBinary("x", bytes("RIFF", 0, 0, 0, 0, "WAVEfmt "))).toBe("WAVE audio");
    expect(describeBinary("x", bytes(0, 0, 0, 0x18, "ftypmp42"))).toBe("MPEG-4 or QuickTime media");
    expect(describeBinary("x", bytes("SQLite format 3", 0))).toBe("SQLite database");
    const tar = new Uint8Array(512);
    tar.set(bytes("ustar"), 257);
    expect(describeBinary("backup", tar)).toBe("tar archive");
    // Nothing known in the bytes: the extension, else plain "Binary data".
    expect(describeBinary("weights.npy", bytes(1, 2, 0))).toBe("NumPy array");
    expect(describeBinary("blob", bytes(1, 2, 0))).toBe("Binary data");
    expect(describeBinary("short")).toBe("Binary data");
  });

  it("decodes parts of a text, carrying a character cut at a part's end to the next", () => {
    const text = "ab€cd"; // € is e2 82 ac
    const all = new TextEncoder().encode(text);
    const first = decodeChunk(all.subarray(0, 4), false);
    expect(first).toEqual({ text: "ab", used: 2 });
    const second = decodeChunk(all.subarray(first!.used), true);
    expect(second).toEqual({ text: "€cd", used: 5 });
    expect(first!.text + second!.text).toBe(text);
    // The last part may not end in half a character: that is not text.
    expect(decodeChunk(all.subarray(0, 4), true)).toBeNull();
    expect(decodeChunk(new Uint8Array([0x61, 0, 0x62]), false)).toBeNull();
    expect(decodeChunk(new Uint8Array(), true)).toEqual({ text: "", used: 0 });
  });

  it("reads a big text a part at a time, up to a bound, then only offers the download", () => {
    const size = 50 * 1024 * 1024;
    expect(nextChunk({ loaded: 0, size })).toEqual({ start: 0, length: TEXT_PREVIEW_BYTES });
    expect(nextChunk({ loaded: TEXT_PREVIEW_BYTES - 2, size })).toEqual({ start: TEXT_PREVIEW_BYTES - 2, length: TEXT_PREVIEW_BYTES });
    // Near the bound: only up to it.
    expect(nextChunk({ loaded: TEXT_PREVIEW_MAX - 10, size })).toEqual({ start: TEXT_PREVIEW_MAX - 10, length: 10 });
    expect(nextChunk({ loaded: TEXT_PREVIEW_MAX, size })).toBeNull();
    // A small file: nothing more once it is all shown.
    expect(nextChunk({ loaded: 100, size: 100 })).toBeNull();
    expect(nextChunk({ loaded: 0, size: 0 })).toBeNull();
    // Load more until the bound: it stops at TEXT_PREVIEW_MAX, never past it.
    let p = { loaded: 0, size };
    let reads = 0;
    for (let next = nextChunk(p); next; next = nextChunk(p)) {
      p = { loaded: next.start + next.length, size };
      reads++;
    }
    expect(p.loaded).toBe(TEXT_PREVIEW_MAX);
    expect(reads).toBe(TEXT_PREVIEW_MAX / TEXT_PREVIEW_BYTES);
  });

  it("reads the size from Content-Range", () => {
    expect(rangeTotal("bytes 0-262143/52428800")).toBe(52428800);
    expect(rangeTotal("bytes */100")).toBe(100);
    expect(rangeTotal("bytes 0-1/*")).toBeNull();
    expect(rangeTotal(null)).toBeNull();
  });

  it("formats sizes", () => {
    expect(formatSize(0)).toBe("0 B");
    expect(formatSize(1023)).toBe("1023 B");
    expect(formatSize(1536)).toBe("1.5 KiB");
    expect(formatSize(256 * 1024)).toBe("256 KiB");
    expect(formatSize(5 * 1024 ** 3)).toBe("5.0 GiB");
  });
});

describe("upload queue", () => {
  const add = (q: Upload[], names: string[], dir = "/", firstId = q.length + 1) =>
    uploadReducer(q, { type: "add", files: names.map((name) => ({ name, size: 100 })), dir, firstId });

  it("queues files into a folder and starts at most the limit", () => {
    let q = add([], ["a.txt", "b.txt", "c.txt"], "/src");
    expect(q.map((u) => [u.id, u.target, u.status])).toEqual([
      [1, "/src/a.txt", "queued"],
      [2, "/src/b.txt", "queued"],
      [3, "/src/c.txt", "queued"],
    ]);
    expect(uploadsToStart(q, 2).map((u) => u.id)).toEqual([1, 2]);
    q = uploadReducer(q, { type: "start", id: 1 });
    expect(uploadsToStart(q, 2).map((u) => u.id)).toEqual([2]);
    q = uploadReducer(q, { type: "start", id: 2 });
    expect(uploadsToStart(q, 2)).toEqual([]);
    q = uploadReducer(q, { type: "done", id: 1 });
    expect(uploadsToStart(q, 2).map((u) => u.id)).toEqual([3]);
  });

  it("tracks progress without going backwards or past the size", () => {
    let q = uploadReducer(add([], ["a"]), { type: "start", id: 1 });
    q = uploadReducer(q, { type: "progress", id: 1, loaded: 40 });
    expect(uploadFraction(q[0])).toBeCloseTo(0.4);
    q = uploadReducer(q, { type: "progress", id: 1, loaded: 10 });
    expect(q[0].loaded).toBe(40);
    q = uploadReducer(q, { type: "progress", id: 1, loaded: 500 });
    expect(q[0].loaded).toBe(100);
    q = uploadReducer(q, { type: "done", id: 1 });
    expect([q[0].status, uploadFraction(q[0])]).toEqual(["done", 1]);
    // Progress after the end changes nothing.
    expect(uploadReducer(q, { type: "progress", id: 1, loaded: 1 })).toEqual(q);
  });

  it("offers replacing on a conflict, then retries with overwrite", () => {
    let q = uploadReducer(add([], ["a"]), { type: "start", id: 1 });
    q = uploadReducer(q, { type: "failed", id: 1, error: "exists", conflict: true });
    expect([q[0].status, q[0].error]).toEqual(["conflict", "exists"]);
    q = uploadReducer(q, { type: "replace", id: 1 });
    expect([q[0].status, q[0].overwrite, q[0].error]).toEqual(["queued", true, undefined]);
    expect(uploadsToStart(q).map((u) => u.id)).toEqual([1]);
  });

  it("cancels, fails and clears what is finished", () => {
    let q = add([], ["a", "b", "c", "d"]);
    q = uploadReducer(q, { type: "start", id: 1 });
    q = uploadReducer(q, { type: "start", id: 2 });
    q = uploadReducer(q, { type: "failed", id: 1, error: "disk full" });
    q = uploadReducer(q, { type: "cancel", id: 2 });
    q = uploadReducer(q, { type: "cancel", id: 3 });
    expect(q.map((u) => u.status)).toEqual(["error", "cancelled", "cancelled", "queued"]);
    // A cancelled upload is not started again, nor does a late "done" revive it.
    expect(uploadReducer(q, { type: "done", id: 2 })[1].status).toBe("cancelled");
    expect(uploadsToStart(q).map((u) => u.id)).toEqual([4]);
    expect(uploadReducer(q, { type: "clear" }).map((u) => u.id)).toEqual([4]);
  });

  it("counts an empty file as sent only when done", () => {
    const base = { size: 0, loaded: 0 };
    expect(uploadFraction({ ...base, status: "uploading" })).toBe(0);
    expect(uploadFraction({ ...base, status: "done" })).toBe(1);
  });
});

describe("ListingCache", () => {
  const body = (names: string[]) =>
    JSON.stringify({ path: "d", entries: names.map((n) => ({ name: n, path: `d/${n}`, kind: "file", size: 1, mtime: 2 })), truncated: false });

  it("parses and sorts a new listing", () => {
    const cache = new ListingCache();
    expect(cache.parse("u", body(["b", "a"])).entries.map((e) => e.name)).toEqual(["a", "b"]);
  });

  it("gives the same array back for the same text, so the tree does not re-render", () => {
    const cache = new ListingCache();
    const first = cache.parse("u", body(["a"]));
    expect(cache.parse("u", body(["a"]))).toBe(first);
    expect(sameListing(first.entries, cache.parse("u", body(["a"])).entries)).toBe(true);
  });

  it("parses again when the text changed, and keeps URLs apart", () => {
    const cache = new ListingCache();
    const first = cache.parse("u", body(["a"]));
    expect(cache.parse("v", body(["a"]))).not.toBe(first);
    expect(cache.parse("u", body(["a", "c"])).entries.map((e) => e.name)).toEqual(["a", "c"]);
  });

  it("throws on a malformed answer and caches nothing", () => {
    const cache = new ListingCache();
    expect(() => cache.parse("u", "{}")).toThrow(FileError);
    expect(() => cache.parse("u", "<html>")).toThrow(SyntaxError);
  });
});

describe("views on the content origin", () => {
  it("offers View for pages, SVG and PDF, through octod's ticket route", () => {
    expect(urls.view("s1", "/site/r b+&.html")).toBe("/api/sessions/s1/view?path=site%2Fr+b%2B%26.html");
    expect(viewable(entry("/r.html", "file"))).toBe(true);
    expect(viewable(entry("/d.SVG", "file"))).toBe(true);
    expect(viewable(entry("/doc.pdf", "file"))).toBe(true);
    expect(viewable(entry("/x.js", "file"))).toBe(false);
    expect(viewable(entry("/site.html", "dir"))).toBe(false);
  });
});
