// File operations: the pure logic behind the Files pane — paths inside the session's home,
// the file server's URLs (behind octod's `/sessions/<id>/files/` proxy), listings, errors,
// preview decisions and the upload queue. No DOM, no network: everything here is unit-tested.

/** One entry of a listing, with `path` absolute inside the home (`/src/main.rs`). */
export interface FileEntry {
  name: string;
  path: string;
  kind: "file" | "dir" | "symlink" | "other";
  size: number;
  mtime: number;
  /** What a symlink resolves to beneath the root; absent when it dangles or leads outside. */
  targetKind?: "file" | "dir" | "symlink" | "other";
  /** For names that are not UTF-8: the server's percent-encoded path, sent back as is. */
  rawPath?: string;
}

/** A failed file server (or proxy) request, with the server's stable error code. */
export class FileError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "FileError";
    this.status = status;
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------
// Paths

/** `p` as an absolute path inside the home: `/`-separated, no empty, `.` or `..` segments
 * (`..` never climbs above the root, as the file server confines paths to the home anyway). */
export function normalizePath(p: string): string {
  const out: string[] = [];
  for (const segment of p.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") out.pop();
    else out.push(segment);
  }
  return "/" + out.join("/");
}

/** `name` inside directory `dir`. */
export function joinPath(dir: string, name: string): string {
  return normalizePath(`${dir}/${name}`);
}

/** The directory that holds `p` (`/` for the root and its children). */
export function parentPath(p: string): string {
  const n = normalizePath(p);
  const i = n.lastIndexOf("/");
  return i <= 0 ? "/" : n.slice(0, i);
}

/** The last segment of `p` (empty for the root). */
export function baseName(p: string): string {
  const n = normalizePath(p);
  return n.slice(n.lastIndexOf("/") + 1);
}

/** True when `p` is `ancestor` or lies below it. */
export function isWithin(p: string, ancestor: string): boolean {
  const a = normalizePath(ancestor);
  const n = normalizePath(p);
  return a === "/" || n === a || n.startsWith(a + "/");
}

/** Why `name` cannot be a new file or folder name, or null when it can. */
export function validateName(name: string): string | null {
  if (name.trim() === "") return "The name is empty.";
  if (name.includes("/")) return "A name cannot contain “/”.";
  if (name.includes("\0")) return "A name cannot contain a NUL character.";
  if (name === "." || name === "..") return "“.” and “..” are not names.";
  if (new TextEncoder().encode(name).length > 255) return "The name is longer than 255 bytes.";
  return null;
}

// ---------------------------------------------------------------------------------------
// URLs

/** The file server's base URL for a session, as the browser reaches it through octod. */
export function filesBase(sessionId: string): string {
  return `/sessions/${encodeURIComponent(sessionId)}/files`;
}

/** A query value sent exactly as given: an entry's `raw_path`, already percent-encoded. */
export class RawQuery {
  constructor(readonly encoded: string) {}
}

type Params = Record<string, string | number | boolean | RawQuery | undefined>;

/** The URL of a file server API route with its query (paths go in the query, never the URL
 * path, so nothing on the way normalises them). */
export function apiUrl(sessionId: string, route: string, params: Params = {}): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === false) continue;
    if (value instanceof RawQuery) parts.push(`${encodeURIComponent(key)}=${value.encoded}`);
    else parts.push(new URLSearchParams([[key, String(value)]]).toString());
  }
  return `${filesBase(sessionId)}/api/${route}${parts.length ? `?${parts.join("&")}` : ""}`;
}

/** The path as the server wants it: relative to the home (the server accepts a leading `/`
 * too, but relative paths read better in logs). */
export function wirePath(p: string): string {
  return normalizePath(p).slice(1);
}

/** A path, or an entry: an entry whose path is not UTF-8 is sent back by its `raw_path` (its
 * `path` holds replacement characters and names nothing on disk). */
export type PathRef = string | Pick<FileEntry, "path" | "rawPath">;

export function wireRef(ref: PathRef): string | RawQuery {
  if (typeof ref === "string") return wirePath(ref);
  return ref.rawPath !== undefined ? new RawQuery(ref.rawPath) : wirePath(ref.path);
}

export const urls = {
  list: (id: string, dir: PathRef, hidden = false, offset?: number) =>
    offset === undefined
      ? apiUrl(id, "list", { path: wireRef(dir), hidden })
      : apiUrl(id, "list", { path: wireRef(dir), hidden, offset: String(offset), limit: String(LIST_PAGE) }),
  download: (id: string, p: PathRef, inline = false) => apiUrl(id, "download", { path: wireRef(p), inline }),
  watch: (id: string) => apiUrl(id, "watch"),
  upload: (id: string, p: string, overwrite = false) =>
    apiUrl(id, "upload", { path: wirePath(p), overwrite }),
  mkdir: (id: string, p: string) => apiUrl(id, "mkdir", { path: wirePath(p) }),
  move: (id: string, from: PathRef, to: string) => apiUrl(id, "move", { from: wireRef(from), to: wirePath(to) }),
  remove: (id: string, p: PathRef, recursive: boolean) =>
    apiUrl(id, "delete", { path: wireRef(p), recursive }),
  /** A view of the file on the content origin, where its scripts run with no credential of
   * Octo's (octod redirects through a one-time ticket; without a content origin, to the
   * download). */
  view: (id: string, p: string) => `/api/sessions/${encodeURIComponent(id)}/view?${new URLSearchParams([["path", wirePath(p)]]).toString()}`,
};

/** Types a browser renders as documents of their own: opened with "View" (on the content
 * origin), never on Octo's. */
const VIEWABLE = new Set(["html", "htm", "xhtml", "svg", "pdf"]);

/** Whether the Files pane offers "View" for this entry. */
export function viewable(entry: Pick<FileEntry, "name" | "kind" | "targetKind" | "rawPath">): boolean {
  const isFile = entry.kind === "file" || (entry.kind === "symlink" && entry.targetKind === "file");
  return isFile && entry.rawPath === undefined && VIEWABLE.has(extension(entry.name));
}

// ---------------------------------------------------------------------------------------
// Listings and errors

const KINDS = new Set(["file", "dir", "symlink", "other"]);

function asKind(v: unknown): FileEntry["kind"] | undefined {
  return typeof v === "string" && KINDS.has(v) ? (v as FileEntry["kind"]) : undefined;
}

/** Entries per listing request: a folder of 10,000 loads its first page, then the pages the
 * user scrolls to (the whole listing was one long task to parse, sort and lay out). */
export const LIST_PAGE = 500;

/** A page of a folder's listing: `entries` from `offset`, of `total` (the file server sorts). */
export interface ListingPage {
  entries: FileEntry[];
  truncated: boolean;
  total: number;
  offset: number;
}

/** The entries of a `GET /api/list` answer (a page, or the whole folder from a server that does
 * not page), validated and sorted; throws on a malformed body. */
export function parseListing(body: unknown): ListingPage {
  if (typeof body !== "object" || body === null || !Array.isArray((body as { entries?: unknown }).entries)) {
    throw new FileError(0, "bad_listing", "The file server sent a listing without entries.");
  }
  const raw = (body as { entries: unknown[]; truncated?: unknown }).entries;
  const entries: FileEntry[] = [];
  for (const item of raw) {
    if (typeof item !== "object" || item === null) continue;
    const e = item as Record<string, unknown>;
    const kind = asKind(e.kind);
    if (typeof e.name !== "string" || typeof e.path !== "string" || !kind) continue;
    const entry: FileEntry = {
      name: e.name,
      path: normalizePath(e.path),
      kind,
      size: typeof e.size === "number" ? e.size : 0,
      mtime: typeof e.mtime === "number" ? e.mtime : 0,
    };
    const target = asKind(e.target_kind);
    if (target) entry.targetKind = target;
    if (typeof e.raw_path === "string") entry.rawPath = e.raw_path;
    entries.push(entry);
  }
  const { total, offset } = body as { total?: unknown; offset?: unknown };
  return {
    entries: sortEntries(entries),
    truncated: (body as { truncated?: unknown }).truncated === true,
    total: typeof total === "number" && total >= 0 ? total : entries.length,
    offset: typeof offset === "number" && offset >= 0 ? offset : 0,
  };
}

/** The last listing text of each listing URL and its entries: a listing polled again that comes
 * back the same is neither parsed nor sorted again, and keeps its array (so the tree need not
 * re-render). */
export class ListingCache {
  private readonly last = new Map<string, { text: string; page: ListingPage }>();

  /** The page of `text`, the answer to `key` (the listing's URL). */
  parse(key: string, text: string): ListingPage {
    const old = this.last.get(key);
    if (old && old.text === text) return old.page;
    const page = parseListing(JSON.parse(text) as unknown);
    this.last.set(key, { text, page });
    return page;
  }
}

/** Whether the tree treats an entry as a folder (a symlink to a folder is one). */
export function isDir(e: Pick<FileEntry, "kind" | "targetKind">): boolean {
  return e.kind === "dir" || (e.kind === "symlink" && e.targetKind === "dir");
}

/** Folders first, then by name as people read it (`compareNames`): the file server's order, so
 * a listing it sorted stays as it is. */
export function sortEntries(entries: FileEntry[]): FileEntry[] {
  return [...entries].sort((a, b) => Number(isDir(b)) - Number(isDir(a)) || compareNames(a.name, b.name));
}

const isDigit = (c: number) => c >= 48 && c <= 57;

/** A code point folded for comparison: its lower case when that is one code point. */
function fold(ch: string): number {
  const lower = ch.toLowerCase();
  const cp = lower.codePointAt(0)!;
  return lower.length === String.fromCodePoint(cp).length ? cp : ch.codePointAt(0)!;
}

/** Natural, case-folded order of names (numbers by value: `file-9` before `file-10`), ties by
 * UTF-8 bytes: the file server's `order::compare_names`, tested on the same table. Not a
 * locale's collation: other scripts sort by code point after folding. */
export function compareNames(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  let i = 0;
  let j = 0;
  for (;;) {
    if (i >= x.length || j >= y.length) {
      const d = (i >= x.length ? 0 : 1) - (j >= y.length ? 0 : 1);
      if (d !== 0) return d;
      break;
    }
    const c = x[i].codePointAt(0)!;
    const e = y[j].codePointAt(0)!;
    if (isDigit(c) && isDigit(e)) {
      let m = i;
      while (m < x.length && isDigit(x[m].codePointAt(0)!)) m++;
      let n = j;
      while (n < y.length && isDigit(y[n].codePointAt(0)!)) n++;
      const p = x.slice(i, m).join("").replace(/^0+/, "");
      const q = y.slice(j, n).join("").replace(/^0+/, "");
      if (p.length !== q.length) return p.length - q.length;
      if (p !== q) return p < q ? -1 : 1;
      i = m;
      j = n;
      continue;
    }
    const d = fold(x[i]) - fold(y[j]);
    if (d !== 0) return d;
    i++;
    j++;
  }
  return compareBytes(a, b);
}

const utf8 = new TextEncoder();

function compareBytes(a: string, b: string): number {
  if (a === b) return 0;
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** A failed response's error, from the `{"error":{"code","message"}}` body both octod and the
 * file server send; anything else becomes a message with the status. */
export function parseError(status: number, bodyText: string): FileError {
  try {
    const body = JSON.parse(bodyText) as { error?: { code?: unknown; message?: unknown } };
    const code = body.error?.code;
    const message = body.error?.message;
    if (typeof code === "string" && typeof message === "string") {
      return new FileError(status, code, message);
    }
  } catch {
    // Not JSON: a proxy's or a gateway's page.
  }
  const text = bodyText.trim().slice(0, 200);
  return new FileError(status, `http_${status}`, text ? `HTTP ${status}: ${text}` : `HTTP ${status}`);
}

/** A sentence for people about a failed operation. */
export function describeError(action: string, error: unknown): string {
  if (error instanceof FileError) {
    switch (error.code) {
      case "already_exists":
        return `${action}: something with that name already exists.`;
      case "directory_not_empty":
        return `${action}: the folder is not empty.`;
      case "payload_too_large":
        return `${action}: the file is larger than the server accepts.`;
      case "insufficient_storage":
        return `${action}: the workspace's disk is full.`;
      default:
        return `${action}: ${error.message}`;
    }
  }
  if (error instanceof Error) return `${action}: ${error.message}`;
  return `${action}: ${String(error)}`;
}

// ---------------------------------------------------------------------------------------
// Tree

/** A folder's listing as far as it is loaded: as long as the folder (`total` entries), with a
 * hole wherever a page has not arrived yet. */
export type Slots = readonly (FileEntry | undefined)[];

/** The rows a tree shows: the root's entries and, below each expanded folder, its own. */
export interface TreeRow {
  /** For a place whose page has not arrived: a stand-in named by `placeholderPath`. */
  entry: FileEntry;
  depth: number;
  expanded: boolean;
  /** Expanded but its listing has not arrived yet. */
  loading: boolean;
  /** The row's folder and its place there. */
  dir: string;
  index: number;
  /** A place whose page is still to be loaded. */
  placeholder?: true;
}

/** The path that stands for entry number `index` of `dir` until its page arrives (no real path
 * holds a NUL). */
export function placeholderPath(dir: string, index: number): string {
  return `${dir}\u0000${index}`;
}

export function parsePlaceholder(path: string): { dir: string; index: number } | undefined {
  const at = path.indexOf("\u0000");
  return at < 0 ? undefined : { dir: path.slice(0, at), index: Number(path.slice(at + 1)) };
}

export function visibleRows(listings: ReadonlyMap<string, Slots>, expanded: ReadonlySet<string>, root = "/"): TreeRow[] {
  const rows: TreeRow[] = [];
  const walk = (dir: string, depth: number) => {
    const slots = listings.get(dir) ?? [];
    for (let index = 0; index < slots.length; index++) {
      const entry = slots[index];
      if (!entry) {
        const path = placeholderPath(dir, index);
        const stand = { name: "", path, kind: "other" as const, size: 0, mtime: 0 };
        rows.push({ entry: stand, depth, expanded: false, loading: true, dir, index, placeholder: true });
        continue;
      }
      const open = isDir(entry) && expanded.has(entry.path);
      rows.push({ entry, depth, expanded: open, loading: open && !listings.has(entry.path), dir, index });
      if (open) walk(entry.path, depth + 1);
    }
  };
  walk(normalizePath(root), 0);
  return rows;
}

/** The entry at `path` in the listings loaded (undefined for the root, or one not loaded). */
export function findEntry(listings: ReadonlyMap<string, Slots>, path: string): FileEntry | undefined {
  return listings.get(parentPath(path))?.find((e) => e?.path === path);
}

/** The pages (numbers, `LIST_PAGE` entries each) holding places `from` to `to` (exclusive). */
export function pagesOf(from: number, to: number): number[] {
  const pages: number[] = [];
  for (let p = Math.floor(from / LIST_PAGE); p * LIST_PAGE < to; p++) pages.push(p);
  return pages;
}

/** A folder's slots from pages that answered: `total` places (the first page's), filled by each
 * page of that same total; with `base`, also its entries where no page answered, if it has the
 * same length (the folder did not grow or shrink meanwhile). */
export function fillSlots(total: number, pages: readonly ListingPage[], base?: Slots): (FileEntry | undefined)[] {
  const slots: (FileEntry | undefined)[] = base && base.length === total ? [...base] : new Array<FileEntry | undefined>(total);
  for (const page of pages) {
    if (page.total !== total) continue;
    page.entries.forEach((entry, i) => {
      if (page.offset + i < total) slots[page.offset + i] = entry;
    });
  }
  return slots;
}

/** After a rename or move from `from` to `to`: the same paths with that prefix replaced. */
export function renamePaths(paths: Iterable<string>, from: string, to: string): Set<string> {
  const out = new Set<string>();
  for (const p of paths) {
    if (isWithin(p, from) && normalizePath(from) !== "/") out.add(normalizePath(to + p.slice(normalizePath(from).length)));
    else out.add(p);
  }
  return out;
}

/** `paths` without `removed` and what lay below it. */
export function dropPaths(paths: Iterable<string>, removed: string): Set<string> {
  const out = new Set<string>();
  for (const p of paths) if (!isWithin(p, removed)) out.add(p);
  return out;
}

/** Listings are equal when they hold the same entries (then the tree need not re-render). */
export function sameListing(a: Slots | undefined, b: Slots): boolean {
  if (a === b) return true;
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const e = a[i];
    const f = b[i];
    if (e === f) continue;
    if (!e || !f) return false;
    if (e.path !== f.path || e.kind !== f.kind || e.size !== f.size || e.mtime !== f.mtime || e.targetKind !== f.targetKind) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Preview

/** A text preview reads this much at a time (a `Range` request): the first part, then each
 * "load more". */
export const TEXT_PREVIEW_BYTES = 256 * 1024;
/** A text preview shows at most this much; for the rest, the file is downloaded. */
export const TEXT_PREVIEW_MAX = 4 * 1024 * 1024;
/** Larger images are not previewed (and a fetch of one stops at this many bytes). */
export const IMAGE_PREVIEW_BYTES = 20 * 1024 * 1024;

const IMAGE_TYPES: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  avif: "image/avif",
  bmp: "image/bmp",
  ico: "image/x-icon",
  svg: "image/svg+xml",
};

/** What files of these extensions are, said instead of showing their bytes. */
const BINARY_TYPES: Record<string, string> = {
  zip: "ZIP archive",
  jar: "Java archive (ZIP)",
  whl: "Python wheel (ZIP)",
  gz: "gzip-compressed data",
  tgz: "gzip-compressed tar archive",
  tar: "tar archive",
  xz: "xz-compressed data",
  bz2: "bzip2-compressed data",
  zst: "Zstandard-compressed data",
  "7z": "7-Zip archive",
  rar: "RAR archive",
  pdf: "PDF document",
  docx: "Word document",
  xlsx: "Excel workbook",
  pptx: "PowerPoint presentation",
  odt: "OpenDocument text",
  ods: "OpenDocument spreadsheet",
  exe: "Windows executable",
  dll: "Windows library",
  so: "shared library",
  o: "object file",
  a: "static library",
  class: "Java class file",
  wasm: "WebAssembly module",
  pyc: "Python bytecode",
  pkl: "Python pickle",
  npy: "NumPy array",
  parquet: "Parquet data",
  sqlite: "SQLite database",
  sqlite3: "SQLite database",
  db: "database file",
  bin: "binary data",
  iso: "disk image",
  img: "disk image",
  dmg: "macOS disk image",
  mp3: "MP3 audio",
  wav: "WAVE audio",
  flac: "FLAC audio",
  ogg: "Ogg media",
  m4a: "MPEG-4 audio",
  mp4: "MPEG-4 video",
  mov: "QuickTime video",
  webm: "WebM video",
  mkv: "Matroska video",
  avi: "AVI video",
  woff: "WOFF font",
  woff2: "WOFF2 font",
  ttf: "TrueType font",
  otf: "OpenType font",
  tif: "TIFF image",
  tiff: "TIFF image",
  heic: "HEIC image",
  psd: "Photoshop image",
  onnx: "ONNX model",
  safetensors: "safetensors model weights",
  pt: "PyTorch data",
  pth: "PyTorch data",
};

/** What a file's first bytes say it is (magic numbers), else null. */
const MAGIC: [number[] | string, number, string][] = [
  [[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 0, "PNG image"],
  [[0xff, 0xd8, 0xff], 0, "JPEG image"],
  ["GIF8", 0, "GIF image"],
  ["%PDF-", 0, "PDF document"],
  [[0x50, 0x4b, 0x03, 0x04], 0, "ZIP archive"],
  [[0x50, 0x4b, 0x05, 0x06], 0, "ZIP archive (empty)"],
  [[0x1f, 0x8b], 0, "gzip-compressed data"],
  [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 0, "xz-compressed data"],
  ["BZh", 0, "bzip2-compressed data"],
  [[0x28, 0xb5, 0x2f, 0xfd], 0, "Zstandard-compressed data"],
  [[0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], 0, "7-Zip archive"],
  ["Rar!", 0, "RAR archive"],
  ["ustar", 257, "tar archive"],
  [[0x7f, 0x45, 0x4c, 0x46], 0, "ELF executable or library"],
  ["MZ", 0, "Windows executable"],
  [[0xcf, 0xfa, 0xed, 0xfe], 0, "Mach-O executable"],
  [[0xca, 0xfe, 0xba, 0xbe], 0, "Java class file or Mach-O universal binary"],
  [[0x00, 0x61, 0x73, 0x6d], 0, "WebAssembly module"],
  ["SQLite format 3", 0, "SQLite database"],
  ["PAR1", 0, "Parquet data"],
  ["ID3", 0, "MP3 audio"],
  ["OggS", 0, "Ogg media"],
  ["fLaC", 0, "FLAC audio"],
  ["ftyp", 4, "MPEG-4 or QuickTime media"],
  [[0x1a, 0x45, 0xdf, 0xa3], 0, "Matroska or WebM video"],
  ["wOFF", 0, "WOFF font"],
  ["wOF2", 0, "WOFF2 font"],
  [[0x00, 0x01, 0x00, 0x00, 0x00], 0, "TrueType font"],
  ["OTTO", 0, "OpenType font"],
  [[0x49, 0x49, 0x2a, 0x00], 0, "TIFF image"],
  [[0x4d, 0x4d, 0x00, 0x2a], 0, "TIFF image"],
  ["8BPS", 0, "Photoshop image"],
  [[0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59], 0, "NumPy array"],
];

function startsWith(bytes: Uint8Array, magic: number[] | string, at: number): boolean {
  const want = typeof magic === "string" ? Array.from(magic, (c) => c.charCodeAt(0)) : magic;
  if (bytes.length < at + want.length) return false;
  return want.every((b, i) => bytes[at + i] === b);
}

/** What a binary file is, for people: by its first bytes, else its extension, else "Binary
 * data". RIFF files are told apart by their form type. */
export function describeBinary(name: string, head: Uint8Array = new Uint8Array()): string {
  if (startsWith(head, "RIFF", 0)) {
    if (startsWith(head, "WEBP", 8)) return "WebP image";
    if (startsWith(head, "WAVE", 8)) return "WAVE audio";
    if (startsWith(head, "AVI ", 8)) return "AVI video";
    return "RIFF data";
  }
  for (const [magic, at, what] of MAGIC) if (startsWith(head, magic, at)) return what;
  return BINARY_TYPES[extension(name)] ?? "Binary data";
}

export function extension(name: string): string {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
}

export type PreviewPlan =
  /** An image, shown by an `<img>` of its bytes. `source`: how the `<img>` gets them. A
   * `blob:` URL is a document of the UI's origin when opened in a tab of its own, which an
   * SVG's script would run in as the viewer; an SVG therefore comes as a `data:` URL, whose
   * document (if a browser opens one at all) has an opaque origin. */
  | { kind: "image"; mime: string; source: "blob" | "data" }
  /** Read the first `TEXT_PREVIEW_BYTES` (what turns out to be binary is described then). */
  | { kind: "text"; truncated: boolean }
  /** Binary by its extension: said what it is, nothing read. */
  | { kind: "binary"; description: string }
  | { kind: "none"; reason: string };

/** How to preview a file: images by extension (up to a size), known binary types described
 * without reading them, anything else as text, read a part at a time. */
export function planPreview(entry: Pick<FileEntry, "name" | "kind" | "size" | "targetKind">): PreviewPlan {
  const isFile = entry.kind === "file" || (entry.kind === "symlink" && entry.targetKind === "file");
  if (!isFile) return { kind: "none", reason: "Not a regular file." };
  const ext = extension(entry.name);
  const mime = IMAGE_TYPES[ext];
  if (mime) {
    return entry.size <= IMAGE_PREVIEW_BYTES
      ? { kind: "image", mime, source: mime === "image/svg+xml" ? "data" : "blob" }
      : {
          kind: "none",
          reason: `An image of ${formatSize(entry.size)}: images over ${formatSize(IMAGE_PREVIEW_BYTES)} are not shown. Download it to view it.`,
        };
  }
  const binary = BINARY_TYPES[ext];
  if (binary) return { kind: "binary", description: binary };
  return { kind: "text", truncated: entry.size > TEXT_PREVIEW_BYTES };
}

/** The sentence a preview shows for a binary file. */
export function binaryMessage(description: string, size: number): string {
  return `${description}, ${formatSize(size)}. Download it to open it.`;
}

/** Bytes as the next part of a text preview: the text, and how many bytes it used — a UTF-8
 * character cut at the end of a part that is not the last is left for the next read — or null
 * when the bytes look binary (a NUL byte, or not UTF-8). */
export function decodeChunk(bytes: Uint8Array, last: boolean): { text: string; used: number } | null {
  if (bytes.includes(0)) return null;
  let end = bytes.length;
  if (!last) {
    // Step back over a UTF-8 sequence the range cut in half.
    let i = end - 1;
    let back = 0;
    while (i >= 0 && back < 3 && (bytes[i] & 0xc0) === 0x80) {
      i--;
      back++;
    }
    if (i >= 0 && bytes[i] >= 0xc0) {
      const need = bytes[i] >= 0xf0 ? 4 : bytes[i] >= 0xe0 ? 3 : 2;
      if (end - i < need) end = i;
    }
  }
  try {
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, end)), used: end };
  } catch {
    return null;
  }
}

/** Bytes as text for a preview, or null when they look binary ([`decodeChunk`] of a first part
 * that is `truncated` or the whole file). */
export function decodeText(bytes: Uint8Array, truncated: boolean): string | null {
  return decodeChunk(bytes, !truncated)?.text ?? null;
}

/** A text preview's progress through the file. */
export interface TextProgress {
  /** Bytes of the file shown so far (the next read starts there). */
  loaded: number;
  /** The file's size as the server last said it. */
  size: number;
}

/** The byte range to read next ("load more"), or null when nothing more is shown here: the
 * whole file is shown, or [`TEXT_PREVIEW_MAX`] is (the rest is for downloading). */
export function nextChunk(p: TextProgress): { start: number; length: number } | null {
  if (p.loaded >= p.size || p.loaded >= TEXT_PREVIEW_MAX) return null;
  return { start: p.loaded, length: Math.min(TEXT_PREVIEW_BYTES, TEXT_PREVIEW_MAX - p.loaded) };
}

/** The size a `Content-Range: bytes a-b/size` header gives, else null. */
export function rangeTotal(header: string | null): number | null {
  const m = header ? /\/(\d+)\s*$/.exec(header) : null;
  return m ? Number(m[1]) : null;
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let u = 0;
  while (value >= 1024 && u < units.length - 1) {
    value /= 1024;
    u++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[u]}`;
}

// ---------------------------------------------------------------------------------------
// Upload queue

export type UploadStatus = "queued" | "uploading" | "done" | "error" | "conflict" | "cancelled";

export interface Upload {
  id: number;
  name: string;
  /** Where the file goes, absolute inside the home. */
  target: string;
  size: number;
  loaded: number;
  status: UploadStatus;
  overwrite: boolean;
  error?: string;
}

export type UploadAction =
  | { type: "add"; files: { name: string; size: number }[]; dir: string; firstId: number }
  | { type: "start"; id: number }
  | { type: "progress"; id: number; loaded: number }
  | { type: "done"; id: number }
  | { type: "failed"; id: number; error: string; conflict?: boolean }
  | { type: "cancel"; id: number }
  | { type: "replace"; id: number }
  | { type: "clear" };

/** At most this many uploads run at once; the rest wait their turn. */
export const UPLOAD_CONCURRENCY = 2;

export function uploadReducer(queue: readonly Upload[], action: UploadAction): Upload[] {
  const update = (id: number, change: (u: Upload) => Upload) =>
    queue.map((u) => (u.id === id ? change(u) : u));
  switch (action.type) {
    case "add":
      return [
        ...queue,
        ...action.files.map((f, i) => ({
          id: action.firstId + i,
          name: f.name,
          target: joinPath(action.dir, f.name),
          size: f.size,
          loaded: 0,
          status: "queued" as const,
          overwrite: false,
        })),
      ];
    case "start":
      return update(action.id, (u) => (u.status === "queued" ? { ...u, status: "uploading", loaded: 0 } : u));
    case "progress":
      return update(action.id, (u) =>
        u.status === "uploading" ? { ...u, loaded: Math.min(Math.max(action.loaded, u.loaded), u.size) } : u,
      );
    case "done":
      return update(action.id, (u) => (u.status === "uploading" ? { ...u, status: "done", loaded: u.size } : u));
    case "failed":
      return update(action.id, (u) =>
        u.status === "uploading" ? { ...u, status: action.conflict ? "conflict" : "error", error: action.error } : u,
      );
    case "cancel":
      return update(action.id, (u) =>
        u.status === "queued" || u.status === "uploading" || u.status === "conflict"
          ? { ...u, status: "cancelled" }
          : u,
      );
    case "replace":
      return update(action.id, (u) =>
        u.status === "conflict" ? { ...u, status: "queued", overwrite: true, loaded: 0, error: undefined } : u,
      );
    case "clear":
      return queue.filter((u) => u.status === "queued" || u.status === "uploading" || u.status === "conflict");
  }
}

/** The queued uploads to start now, oldest first, keeping at most `limit` running. */
export function uploadsToStart(queue: readonly Upload[], limit = UPLOAD_CONCURRENCY): Upload[] {
  const running = queue.filter((u) => u.status === "uploading").length;
  return queue.filter((u) => u.status === "queued").slice(0, Math.max(0, limit - running));
}

/** Fraction (0–1) of an upload sent; an empty file counts as sent once done. */
export function uploadFraction(u: Pick<Upload, "loaded" | "size" | "status">): number {
  if (u.status === "done") return 1;
  return u.size === 0 ? 0 : Math.min(1, u.loaded / u.size);
}
