// The Files pane: the session's home as a tree (through the file server behind octod), with
// preview, upload (button or drag and drop, with progress), download, new folder, rename and
// delete. The logic it relies on lives in fileops.ts; the requests in client.ts. The tree is
// windowed (WindowedRows.tsx): a folder of 10,000 entries puts only the rows in view in the DOM.
// It follows changes live (live.ts: the file server's change stream), re-listing only the folders
// that changed; it polls only while the stream is down, or the folders the stream does not watch.
import { useCallback, useEffect, useMemo, useReducer, useRef, useState } from "react";
import type { CSSProperties, DragEvent, KeyboardEvent, MouseEvent } from "react";
import { apiFetch, type Session } from "../api";
import { ConfirmDialog } from "../components/ConfirmDialog";
import * as client from "./client";
import {
  FileError,
  IMAGE_PREVIEW_BYTES,
  TEXT_PREVIEW_BYTES,
  binaryMessage,
  decodeChunk,
  describeBinary,
  describeError,
  dropPaths,
  fillSlots,
  findEntry,
  formatSize,
  isDir,
  isWithin,
  joinPath,
  LIST_PAGE,
  ListingCache,
  nextChunk,
  pagesOf,
  parentPath,
  parsePlaceholder,
  planPreview,
  renamePaths,
  sameListing,
  uploadFraction,
  uploadReducer,
  uploadsToStart,
  urls,
  validateName,
  viewable,
  visibleRows,
  type FileEntry,
  type Slots,
  type TreeRow,
  type Upload,
} from "./fileops";
import { foldersToPoll, foldersToRelist, linkedFolders, runWatch, type WatchStatus } from "./live";
import { WindowedRows, type WindowedHandle } from "./WindowedRows";
import { pageRows } from "./windowing";
import "./files.css";

/** While the pane is visible and the change stream is down (or does not watch a folder shown),
 * listings are refreshed this often (agents write files too). */
const POLL_MS = 4000;
/** Every row of the tree is this tall (files.css: `.file-entry`), which windowing relies on. */
const ROW_HEIGHT = 24;

type Preview =
  | { state: "loading"; entry: FileEntry }
  | {
      state: "text";
      entry: FileEntry;
      text: string;
      /** Bytes of the file shown; the next part starts there. */
      loaded: number;
      /** The file's size, as the server last said. */
      size: number;
      /** The version shown: later parts must be of the same one. */
      etag: string | null;
      loadingMore: boolean;
      /** Why no more can be loaded here (the file changed, the rest is binary, an error). */
      stopped?: string;
    }
  | { state: "image"; entry: FileEntry; url: string }
  | { state: "message"; entry: FileEntry; message: string };

type Dialog =
  | { kind: "mkdir"; dir: string }
  | { kind: "rename"; entry: FileEntry }
  | { kind: "delete"; entry: FileEntry };

/** A page whose request failed is asked for again after this pause. */
const PAGE_RETRY_MS = 2000;

export function FilesPane({ sessionId }: { sessionId: string }): JSX.Element {
  const [listings, setListings] = useState<ReadonlyMap<string, Slots>>(new Map());
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(new Set());
  const [selected, setSelected] = useState<string | null>(null);
  const [preview, setPreview] = useState<Preview | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [dialog, setDialog] = useState<Dialog | null>(null);
  const [hidden, setHidden] = useState(false);
  const [dropTarget, setDropTarget] = useState<string | null>(null);
  const [uploads, dispatch] = useReducer(uploadReducer, []);
  const uploadId = useRef(1);
  const handles = useRef(new Map<number, client.UploadHandle>());
  const input = useRef<HTMLInputElement>(null);
  const tree = useRef<HTMLDivElement>(null);
  const windowed = useRef<WindowedHandle>(null);
  // The last listing's text per folder: a poll that brings the same text back is not parsed
  // again (10,000 entries take a while to parse and sort, every 4 s).
  const listingCache = useRef(new ListingCache());
  const expandedRef = useRef(expanded);
  expandedRef.current = expanded;
  const listingsRef = useRef(listings);
  listingsRef.current = listings;
  const hiddenRef = useRef(hidden);
  hiddenRef.current = hidden;
  // What the change stream watches, while it is live; null while it is down (then: poll).
  const [live, setLive] = useState<WatchStatus | null>(null);
  const liveRef = useRef(live);
  liveRef.current = live;
  // The latest listing asked for, per folder: an older answer that arrives later is dropped.
  const loadSeq = useRef(new Map<string, number>());
  // Aborted when the pane goes: a request still running then (say, to a session being stopped
  // or deleted) must not fail later in the console, nor touch the session at all.
  const lifetime = useRef(new AbortController());
  useEffect(() => {
    const controller = new AbortController();
    lifetime.current = controller;
    return () => controller.abort();
  }, []);

  const rows = useMemo(() => visibleRows(listings, expanded), [listings, expanded]);
  const rowsRef = useRef(rows);
  rowsRef.current = rows;
  const rowKeys = useMemo(() => rows.map((r) => r.entry.path), [rows]);
  const selectedEntry = useMemo(() => (selected ? findEntry(listings, selected) : undefined), [listings, selected]);
  const selectedIndex = useMemo(() => (selected ? rows.findIndex((r) => r.entry.path === selected) : -1), [rows, selected]);
  // The rows the tree renders (WindowedRows'), for the pages to load and keep.
  const shownRange = useRef({ start: 0, end: 0 });
  /** The pages of `dir` that rows in view show. */
  const pagesInView = (dir: string): number[] => {
    const places: number[] = [];
    const { start, end } = shownRange.current;
    for (let i = start; i < Math.min(end, rowsRef.current.length); i++) {
      const row = rowsRef.current[i];
      if (row.dir === dir) places.push(row.index);
    }
    return places.length ? pagesOf(Math.min(...places), Math.max(...places) + 1) : [];
  };
  /** Where uploads and new folders go: the selected folder, or the selected file's folder. */
  const targetDir = selectedEntry ? (isDir(selectedEntry) ? selectedEntry.path : parentPath(selectedEntry.path)) : "/";

  const load = useCallback(
    async (dir: string, quiet = false) => {
      const seq = (loadSeq.current.get(dir) ?? 0) + 1;
      loadSeq.current.set(dir, seq);
      const superseded = () => loadSeq.current.get(dir) !== seq;
      try {
        const signal = lifetime.current.signal;
        const ref = findEntry(listingsRef.current, dir) ?? dir;
        // The first page (it says how many entries there are) and those in view; the others are
        // dropped and load again when scrolled to (the folder may have changed anywhere).
        const wanted = [...new Set([0, ...pagesInView(dir)])];
        const pages = await Promise.all(
          wanted.map((page) => client.list(sessionId, ref, hidden, signal, listingCache.current, page * LIST_PAGE)),
        );
        if (signal.aborted || superseded()) return;
        const fresh = fillSlots(pages[0].total, pages);
        setListings((old) => {
          if (sameListing(old.get(dir), fresh)) return old;
          const next = new Map(old);
          next.set(dir, fresh);
          return next;
        });
        if (!quiet) setError(null);
      } catch (e) {
        if (lifetime.current.signal.aborted || superseded()) return;
        if (e instanceof FileError && e.code === "not_found" && dir !== "/") {
          // The folder went away (deleted in the terminal, by the agent): forget it.
          setExpanded((old) => dropPaths(old, dir));
          setListings((old) => new Map([...old].filter(([k]) => !isWithin(k, dir))));
          return;
        }
        if (!quiet) setError(describeError(`Listing ${dir}`, e));
      }
    },
    [sessionId, hidden],
  );

  // Pages asked for, per folder (not asked again while on their way).
  const pagesLoading = useRef(new Set<string>());
  /** Loads the pages of `dir` whose places rows in view stand for. */
  const loadPages = useCallback(
    async (dir: string, pages: number[]) => {
      const todo = pages.filter((p) => !pagesLoading.current.has(`${dir}\u0000${p}`));
      if (todo.length === 0) return;
      for (const p of todo) pagesLoading.current.add(`${dir}\u0000${p}`);
      const seq = loadSeq.current.get(dir) ?? 0;
      try {
        const signal = lifetime.current.signal;
        const ref = findEntry(listingsRef.current, dir) ?? dir;
        const answers = await Promise.all(
          todo.map((page) => client.list(sessionId, ref, hidden, signal, listingCache.current, page * LIST_PAGE)),
        );
        for (const p of todo) pagesLoading.current.delete(`${dir}\u0000${p}`);
        if (signal.aborted || loadSeq.current.get(dir) !== seq) return;
        const base = listingsRef.current.get(dir);
        if (!base || answers.some((a) => a.total !== base.length)) {
          // The folder grew or shrank meanwhile: list it again (first page and those in view).
          void loadRef.current(dir, true);
          return;
        }
        setListings((old) => {
          const slots = old.get(dir);
          if (!slots || slots.length !== base.length) return old;
          const next = new Map(old);
          next.set(dir, fillSlots(slots.length, answers, slots));
          return next;
        });
      } catch (e) {
        if (lifetime.current.signal.aborted) return;
        setError(describeError(`Listing ${dir}`, e));
        // Asked again (by the rows still standing in for them) after a pause, not at every render.
        setTimeout(() => {
          for (const p of todo) pagesLoading.current.delete(`${dir}\u0000${p}`);
        }, PAGE_RETRY_MS);
      }
    },
    [sessionId, hidden],
  );

  /** WindowedRows' rendered range: the pages its stand-in rows need are loaded. */
  const onRange = useCallback(
    (start: number, end: number) => {
      shownRange.current = { start, end };
      const wanted = new Map<string, Set<number>>();
      const shown = rowsRef.current;
      for (let i = start; i < Math.min(end, shown.length); i++) {
        const row = shown[i];
        if (!row.placeholder) continue;
        let pages = wanted.get(row.dir);
        if (!pages) wanted.set(row.dir, (pages = new Set()));
        pages.add(Math.floor(row.index / LIST_PAGE));
      }
      for (const [dir, pages] of wanted) void loadPages(dir, [...pages]);
    },
    [loadPages],
  );

  const refresh = useCallback(
    async (quiet = false) => {
      const dirs = ["/", ...expandedRef.current];
      await Promise.all(dirs.map((d) => load(d, quiet)));
    },
    [load],
  );
  // For the change stream's callbacks, which outlive a render.
  const loadRef = useRef(load);
  loadRef.current = load;
  const refreshRef = useRef(refresh);
  refreshRef.current = refresh;

  // First listing, and again when the session or the hidden-files choice changes.
  useEffect(() => {
    setListings(new Map());
    void refresh();
  }, [refresh]);

  useEffect(() => {
    setExpanded(new Set());
    setSelected(null);
    setPreview(null);
  }, [sessionId]);

  // Follow changes while the page is visible: the file server's change stream, reconnected (with
  // a growing pause) only while the session runs — a request to its files would wake a session
  // that is stopping (octod resumes on access), so a stop would not stick.
  const [visible, setVisible] = useState(() => document.visibilityState === "visible");
  useEffect(() => {
    const update = () => setVisible(document.visibilityState === "visible");
    document.addEventListener("visibilitychange", update);
    return () => document.removeEventListener("visibilitychange", update);
  }, []);
  useEffect(() => {
    if (!visible) return;
    const controller = new AbortController();
    const { signal } = controller;
    void runWatch({
      url: urls.watch(sessionId),
      signal,
      mayConnect: async () => (await apiFetch<Session>(`/api/sessions/${encodeURIComponent(sessionId)}`, { signal })).state === "running",
      onState: (state) => {
        if (signal.aborted) return;
        if (state.kind === "down") {
          setLive(null);
          return;
        }
        setLive(state.status);
        // A connection's first status: changes from before it (or while it was down) are not
        // replayed, so the folders shown are listed again (an unchanged answer is not re-parsed).
        if (state.first) void refreshRef.current(true);
      },
      onEvent: (event) => {
        if (signal.aborted) return;
        if (event.type === "resync") {
          void refreshRef.current(true);
          return;
        }
        const listed = new Set(["/", ...expandedRef.current]);
        for (const dir of foldersToRelist(event.dirs, listed, hiddenRef.current)) void loadRef.current(dir, true);
      },
    });
    return () => {
      controller.abort();
      setLive(null);
    };
  }, [sessionId, visible]);

  // Poll while visible and not followed live (the stream is down, or does not watch a folder
  // shown), so files the agent or the terminal writes show up — only while the session runs
  // (see above). A live, complete stream: no timer work, no requests.
  useEffect(() => {
    const timer = setInterval(() => {
      if (document.visibilityState !== "visible") return;
      const open = expandedRef.current;
      const dirs = foldersToPoll(liveRef.current, ["/", ...open], linkedFolders(listingsRef.current, open));
      if (dirs.length === 0) return;
      const signal = lifetime.current.signal;
      apiFetch<Session>(`/api/sessions/${encodeURIComponent(sessionId)}`, { signal }).then(
        (session) => {
          if (session.state !== "running" || signal.aborted) return;
          for (const dir of dirs) void load(dir, true);
        },
        () => {},
      );
    }, POLL_MS);
    return () => clearInterval(timer);
  }, [load, sessionId]);

  // --- Tree

  const toggle = useCallback(
    (entry: FileEntry, open?: boolean) => {
      const isOpen = expandedRef.current.has(entry.path);
      const want = open ?? !isOpen;
      if (want === isOpen) return;
      setExpanded((old) => {
        const next = new Set(old);
        if (want) next.add(entry.path);
        else next.delete(entry.path);
        return next;
      });
      if (want) void load(entry.path);
    },
    [load],
  );

  // --- Preview

  useEffect(() => {
    if (!preview || preview.state !== "image") return;
    const url = preview.url;
    return () => revokeImageUrl(url);
  }, [preview]);

  const openPreview = useCallback(
    async (entry: FileEntry) => {
      const plan = planPreview(entry);
      if (plan.kind === "none") {
        setPreview({ state: "message", entry, message: plan.reason });
        return;
      }
      if (plan.kind === "binary") {
        setPreview({ state: "message", entry, message: binaryMessage(plan.description, entry.size) });
        return;
      }
      setPreview({ state: "loading", entry });
      const current = (p: Preview | null) => p?.entry.path === entry.path;
      const signal = lifetime.current.signal;
      try {
        if (plan.kind === "image") {
          const blob = await client.readImage(sessionId, entry, plan.mime, IMAGE_PREVIEW_BYTES, signal);
          const url = plan.source === "data" ? await dataUrl(blob) : URL.createObjectURL(blob);
          setPreview((p) => {
            if (current(p)) return { state: "image", entry, url };
            revokeImageUrl(url);
            return p;
          });
          return;
        }
        // The first part only (a Range request): a 50 MB log shows at once, and "Load more"
        // reads on from where it stops.
        const part =
          entry.size === 0
            ? { bytes: new Uint8Array(), size: 0, etag: null }
            : await client.readPart(sessionId, entry, 0, TEXT_PREVIEW_BYTES, null, signal);
        const size = part.size ?? entry.size;
        const decoded = decodeChunk(part.bytes, part.bytes.length >= size);
        setPreview((p) => {
          if (!current(p)) return p;
          if (decoded === null) return { state: "message", entry, message: binaryMessage(describeBinary(entry.name, part.bytes), size) };
          return { state: "text", entry, text: decoded.text, loaded: decoded.used, size, etag: part.etag, loadingMore: false };
        });
      } catch (e) {
        const message =
          e instanceof FileError && e.code === "too_large"
            ? `The image has grown past ${formatSize(IMAGE_PREVIEW_BYTES)} since it was listed: download it to view it.`
            : describeError("Preview", e);
        setPreview((p) => (current(p) ? { state: "message", entry, message } : p));
      }
    },
    [sessionId],
  );

  const loadMore = useCallback(async () => {
    const shown = preview;
    if (shown?.state !== "text" || shown.loadingMore || shown.stopped) return;
    const next = nextChunk(shown);
    if (!next) return;
    const { entry } = shown;
    type Text = Extract<Preview, { state: "text" }>;
    const update = (change: (p: Text) => Text) =>
      setPreview((p) => (p?.state === "text" && p.entry.path === entry.path ? change(p) : p));
    update((p) => ({ ...p, loadingMore: true }));
    try {
      const part = await client.readPart(sessionId, entry, next.start, next.length, shown.etag, lifetime.current.signal);
      const size = part.size ?? shown.size;
      const decoded = decodeChunk(part.bytes, next.start + part.bytes.length >= size);
      update((p) => {
        if (decoded === null) return { ...p, loadingMore: false, stopped: "The rest of the file is not text: download it to see it." };
        // Nothing usable (the file shrank under the preview): stop here.
        if (decoded.used === 0) return { ...p, loadingMore: false, size: p.loaded };
        return { ...p, text: p.text + decoded.text, loaded: p.loaded + decoded.used, size, loadingMore: false };
      });
    } catch (e) {
      const stopped =
        e instanceof FileError && e.code === "precondition_failed"
          ? "The file changed since this preview opened: open it again to see it as it is now."
          : describeError("Loading more", e);
      update((p) => ({ ...p, loadingMore: false, stopped }));
    }
  }, [preview, sessionId]);

  const activate = useCallback(
    (entry: FileEntry) => {
      setSelected(entry.path);
      if (isDir(entry)) toggle(entry);
      else void openPreview(entry);
    },
    [toggle, openPreview],
  );

  // --- Operations

  const run = useCallback(async (action: string, op: () => Promise<void>) => {
    try {
      await op();
      setError(null);
    } catch (e) {
      setError(describeError(action, e));
    }
  }, []);

  const createFolder = async (dir: string, name: string) => {
    const path = joinPath(dir, name);
    await run(`Creating ${path}`, async () => {
      await client.mkdir(sessionId, path);
      if (dir !== "/") setExpanded((old) => new Set(old).add(dir));
      await load(dir);
      setSelected(path);
    });
  };

  const rename = async (entry: FileEntry, name: string) => {
    const to = joinPath(parentPath(entry.path), name);
    if (to === entry.path) return;
    await run(`Renaming ${entry.path}`, async () => {
      await client.move(sessionId, entry, to);
      setExpanded((old) => renamePaths(old, entry.path, to));
      setListings((old) => new Map([...old].filter(([k]) => !isWithin(k, entry.path))));
      setSelected(to);
      if (preview && isWithin(preview.entry.path, entry.path)) setPreview(null);
      await load(parentPath(entry.path));
    });
  };

  const remove = async (entry: FileEntry) => {
    await run(`Deleting ${entry.path}`, async () => {
      await client.remove(sessionId, entry, isDir(entry));
      setExpanded((old) => dropPaths(old, entry.path));
      setListings((old) => new Map([...old].filter(([k]) => !isWithin(k, entry.path))));
      if (selected && isWithin(selected, entry.path)) setSelected(null);
      if (preview && isWithin(preview.entry.path, entry.path)) setPreview(null);
      await load(parentPath(entry.path));
    });
  };

  // --- Uploads

  const files = useRef(new Map<number, File>());

  const addFiles = useCallback((list: File[], dir: string) => {
    if (list.length === 0) return;
    const firstId = uploadId.current;
    uploadId.current += list.length;
    list.forEach((f, i) => files.current.set(firstId + i, f));
    dispatch({ type: "add", files: list.map((f) => ({ name: f.name, size: f.size })), dir, firstId });
  }, []);

  useEffect(() => {
    for (const u of uploadsToStart(uploads)) {
      const file = files.current.get(u.id);
      if (!file) continue;
      dispatch({ type: "start", id: u.id });
      const handle = client.upload(
        sessionId,
        u.target,
        file,
        u.overwrite,
        (loaded) => dispatch({ type: "progress", id: u.id, loaded }),
        (e) => {
          handles.current.delete(u.id);
          if (e === null) {
            files.current.delete(u.id);
            dispatch({ type: "done", id: u.id });
            void load(parentPath(u.target));
          } else if (e.code !== "aborted") {
            dispatch({
              type: "failed",
              id: u.id,
              error: describeError(`Uploading ${u.name}`, e),
              conflict: e.code === "already_exists",
            });
          }
        },
      );
      handles.current.set(u.id, handle);
    }
  }, [uploads, sessionId, load]);

  useEffect(
    () => () => {
      for (const h of handles.current.values()) h.abort();
    },
    [],
  );

  const cancelUpload = (u: Upload) => {
    dispatch({ type: "cancel", id: u.id });
    handles.current.get(u.id)?.abort();
    files.current.delete(u.id);
  };

  // --- Drag and drop

  const dirOfEvent = (event: DragEvent): string => {
    const row = (event.target as HTMLElement).closest<HTMLElement>("[data-drop-dir]");
    return row?.dataset.dropDir ?? "/";
  };
  const carriesFiles = (event: DragEvent) => Array.from(event.dataTransfer.types).includes("Files");

  const onDragOver = (event: DragEvent) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    const dir = dirOfEvent(event);
    if (dir !== dropTarget) setDropTarget(dir);
  };
  const onDragLeave = (event: DragEvent) => {
    if (!event.currentTarget.contains(event.relatedTarget as Node | null)) setDropTarget(null);
  };
  const onDrop = (event: DragEvent) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    setDropTarget(null);
    const dir = dirOfEvent(event);
    const items = Array.from(event.dataTransfer.items);
    const folders = items.filter((i) => i.webkitGetAsEntry?.()?.isDirectory).length;
    const list = Array.from(event.dataTransfer.files).filter((_, i) => !items[i]?.webkitGetAsEntry?.()?.isDirectory);
    if (folders > 0) setError("Folders cannot be dropped here; drop their files, or upload a zip.");
    addFiles(list, dir);
  };

  // --- Keyboard

  const focusRow = (path: string) => {
    setSelected(path);
    // Only rows in view are in the DOM: scroll it into view first (the selected row stays
    // rendered while it is out of view, so focus is not lost to the page meanwhile).
    const index = rows.findIndex((r) => r.entry.path === path);
    if (index >= 0) windowed.current?.reveal(index);
    requestAnimationFrame(() => {
      tree.current?.querySelector<HTMLElement>(`[data-path="${CSS.escape(path)}"]`)?.focus();
    });
  };

  // The keyboard landed on a stand-in (End in a folder whose last page is on its way): once the
  // page arrives, the entry in its place is selected and focused.
  useEffect(() => {
    const place = selected ? parsePlaceholder(selected) : undefined;
    const entry = place ? listings.get(place.dir)?.[place.index] : undefined;
    if (entry && tree.current?.contains(document.activeElement)) focusRow(entry.path);
    else if (entry) setSelected(entry.path);
  });

  const onTreeKey = (event: KeyboardEvent) => {
    if (dialog) return;
    const index = selectedIndex;
    const at = rows[index] as TreeRow | undefined;
    // A stand-in for an entry on its way moves like a row but cannot be acted on.
    const row = at?.placeholder ? undefined : at;
    const go = (i: number) => {
      const r = rows[Math.max(0, Math.min(rows.length - 1, i))];
      if (r) focusRow(r.entry.path);
    };
    switch (event.key) {
      case "ArrowDown":
        go(index + 1);
        break;
      case "ArrowUp":
        go(index < 0 ? 0 : index - 1);
        break;
      case "PageDown":
      case "PageUp": {
        const step = pageRows(ROW_HEIGHT, windowed.current?.viewport().height ?? 0);
        go(index < 0 ? 0 : event.key === "PageDown" ? index + step : index - step);
        break;
      }
      case "Home":
        go(0);
        break;
      case "End":
        go(rows.length - 1);
        break;
      case "ArrowRight":
        if (row && isDir(row.entry)) {
          if (!row.expanded) toggle(row.entry, true);
          else go(index + 1);
        }
        break;
      case "ArrowLeft":
        if (row && row.expanded) toggle(row.entry, false);
        else if (at && at.depth > 0) focusRow(at.dir);
        break;
      case "Enter":
        if (row) activate(row.entry);
        break;
      case "F2":
        if (row) setDialog({ kind: "rename", entry: row.entry });
        break;
      case "Delete":
        if (row) setDialog({ kind: "delete", entry: row.entry });
        break;
      default:
        return;
    }
    event.preventDefault();
  };

  const rootListed = listings.has("/");
  // Whether the tree follows changes live: "live" (every folder shown), "partial" (the stream
  // does not watch some folders shown: those are polled), "off" (no stream: all polled).
  const liveness =
    live === null ? "off" : foldersToPoll(live, ["/", ...expanded], linkedFolders(listings, expanded)).length === 0 ? "live" : "partial";
  const livenessTitle =
    liveness === "live"
      ? "Changes show as they happen."
      : liveness === "partial"
        ? `Some folders are refreshed every ${POLL_MS / 1000} s instead of live: ${live?.reason ?? "folders opened through a link"}.`
        : `Not connected to the change stream: the tree is refreshed every ${POLL_MS / 1000} s.`;
  const active = uploads.filter((u) => u.status !== "done" && u.status !== "cancelled");

  return (
    // Drops anywhere in the pane upload (onto a folder's row: into it; elsewhere: into ~), so a
    // file dropped beside the tree is not opened by the browser in place of the app.
    <div className="files-pane" onDragOver={onDragOver} onDragLeave={onDragLeave} onDrop={onDrop}>
      <div className="files-toolbar" role="toolbar" aria-label="File actions">
        <span className="files-heading" title={`Uploads and new folders go to ${targetDir}`}>
          Files <span className="files-target">{targetDir === "/" ? "~" : `~${targetDir}`}</span>
        </span>
        <button type="button" className="btn small ghost" onClick={() => input.current?.click()} title="Upload files">
          Upload
        </button>
        <input
          ref={input}
          type="file"
          multiple
          hidden
          data-testid="files-upload-input"
          onChange={(event) => {
            addFiles(Array.from(event.target.files ?? []), targetDir);
            event.target.value = "";
          }}
        />
        <button
          type="button"
          className="btn small ghost"
          data-testid="files-new-folder"
          onClick={() => setDialog({ kind: "mkdir", dir: targetDir })}
          title="New folder"
        >
          New folder
        </button>
        <button
          type="button"
          className="btn small ghost"
          data-testid="files-refresh"
          onClick={() => void refresh()}
          title="Refresh"
          aria-label="Refresh"
        >
          <Icon name="refresh" />
        </button>
        <span className={`files-live files-live-${liveness}`} data-testid="files-live" data-state={liveness} title={livenessTitle} role="img" aria-label={livenessTitle} />
        <label className="files-hidden-toggle" title="Show hidden files">
          <input type="checkbox" checked={hidden} onChange={(e) => setHidden(e.target.checked)} /> Hidden
        </label>
      </div>

      {error && (
        <div className="error-banner files-error" role="alert" data-testid="files-error">
          <span className="error-text">{error}</span>
          <button type="button" className="btn ghost small" onClick={() => setError(null)} aria-label="Dismiss error">
            ×
          </button>
        </div>
      )}

      <div
        className={`files-tree${dropTarget === "/" ? " drop-root" : ""}`}
        data-testid="files-tree"
        role="tree"
        aria-label="Files in the workspace"
        aria-busy={!rootListed}
        ref={tree}
        tabIndex={selectedEntry ? -1 : 0}
        onKeyDown={onTreeKey}
        onFocus={(e) => {
          if (e.target === e.currentTarget && rows.length > 0 && !selectedEntry) focusRow(rows[0].entry.path);
        }}
      >
        {!rootListed && !error && <div className="files-empty">Loading…</div>}
        {rootListed && rows.length === 0 && <div className="files-empty">The workspace is empty. Drop files here to upload.</div>}
        <WindowedRows
          scroller={tree}
          handle={windowed}
          count={rows.length}
          keys={rowKeys}
          rowHeight={ROW_HEIGHT}
          pinned={selectedIndex >= 0 ? selectedIndex : undefined}
          onRange={onRange}
          renderRow={(index, style) => {
            const row = rows[index];
            if (row.placeholder) return <PlaceholderRow key={row.entry.path} row={row} style={style} selected={row.entry.path === selected} />;
            return (
              <Row
                key={row.entry.path}
                row={row}
                style={style}
                selected={row.entry.path === selected}
                dropping={dropTarget === row.entry.path}
                onActivate={activate}
                onDownload={(e) => client.download(sessionId, e)}
                onRename={(e) => setDialog({ kind: "rename", entry: e })}
                onDelete={(e) => setDialog({ kind: "delete", entry: e })}
              />
            );
          }}
        />
      </div>

      {uploads.length > 0 && (
        <div className="files-uploads" aria-label="Uploads">
          <div className="files-uploads-head">
            <span>{active.length > 0 ? `Uploading ${active.length} file${active.length === 1 ? "" : "s"}` : "Uploads"}</span>
            <button type="button" className="btn ghost small" onClick={() => dispatch({ type: "clear" })}>
              Clear finished
            </button>
          </div>
          {uploads.map((u) => (
            <UploadRow
              key={u.id}
              upload={u}
              onCancel={() => cancelUpload(u)}
              onReplace={() => dispatch({ type: "replace", id: u.id })}
            />
          ))}
        </div>
      )}

      {preview && (
        <PreviewPanel preview={preview} onClose={() => setPreview(null)} onMore={() => void loadMore()} sessionId={sessionId} />
      )}

      {dialog?.kind === "mkdir" && (
        <NameDialog
          title={`New folder in ${dialog.dir === "/" ? "~" : `~${dialog.dir}`}`}
          initial=""
          confirmLabel="Create"
          onCancel={() => setDialog(null)}
          onSubmit={(name) => {
            setDialog(null);
            void createFolder(dialog.dir, name);
          }}
        />
      )}
      {dialog?.kind === "rename" && (
        <NameDialog
          title={`Rename ${dialog.entry.name}`}
          initial={dialog.entry.name}
          confirmLabel="Rename"
          onCancel={() => setDialog(null)}
          onSubmit={(name) => {
            setDialog(null);
            void rename(dialog.entry, name);
          }}
        />
      )}
      {dialog?.kind === "delete" && (
        <ConfirmDialog
          title={`Delete ${dialog.entry.name}?`}
          confirmLabel="Delete"
          danger
          onCancel={() => setDialog(null)}
          onConfirm={() => {
            const entry = dialog.entry;
            setDialog(null);
            void remove(entry);
          }}
        >
          {isDir(dialog.entry)
            ? `The folder ~${dialog.entry.path} and everything in it will be deleted. This cannot be undone.`
            : `~${dialog.entry.path} will be deleted. This cannot be undone.`}
        </ConfirmDialog>
      )}
    </div>
  );
}

/** Small line icons (16×16, currentColor): fonts on servers often lack the symbol glyphs. */
const ICONS = {
  download: "M8 2v8m-3.5-3.5L8 10l3.5-3.5M3 13h10",
  rename: "M10.5 2.5l3 3L6 13H3v-3z",
  delete: "M3 4.5h10M6.5 4.5V3h3v1.5M4.5 4.5l.7 8.5h5.6l.7-8.5",
  refresh: "M13 8a5 5 0 1 1-1.5-3.5M13 2.5v3h-3",
  close: "M4 4l8 8M12 4l-8 8",
};

/** An image's bytes as a `data:` URL (an SVG's: see `PreviewPlan`). */
function dataUrl(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error("reading the image failed"));
    reader.readAsDataURL(blob);
  });
}

function revokeImageUrl(url: string): void {
  if (url.startsWith("blob:")) URL.revokeObjectURL(url);
}

function Icon({ name }: { name: keyof typeof ICONS }): JSX.Element {
  return (
    <svg width="14" height="14" viewBox="0 0 16 16" aria-hidden="true" fill="none" stroke="currentColor" strokeWidth="1.4" strokeLinecap="round" strokeLinejoin="round">
      <path d={ICONS[name]} />
    </svg>
  );
}

/** A place whose page is on its way: the row's height, focusable (the keyboard may land on it),
 * no actions; it turns into its entry when the page arrives. */
function PlaceholderRow(props: { row: TreeRow; style: CSSProperties; selected: boolean }): JSX.Element {
  const { row, selected } = props;
  return (
    <div
      className={`file-entry file-placeholder${selected ? " selected" : ""}`}
      data-testid="file-placeholder"
      data-path={row.entry.path}
      role="treeitem"
      aria-level={row.depth + 1}
      aria-selected={selected}
      aria-busy="true"
      aria-label="Loading…"
      tabIndex={selected ? 0 : -1}
      style={{ ...props.style, paddingLeft: 6 + row.depth * 14 }}
    >
      <span className="file-twisty" aria-hidden="true" />
      <span className="file-name muted">…</span>
    </div>
  );
}

function Row(props: {
  row: TreeRow;
  style: CSSProperties;
  selected: boolean;
  dropping: boolean;
  onActivate: (e: FileEntry) => void;
  onDownload: (e: FileEntry) => void;
  onRename: (e: FileEntry) => void;
  onDelete: (e: FileEntry) => void;
}): JSX.Element {
  const { row, selected, dropping } = props;
  const { entry } = row;
  const dir = isDir(entry);
  const stop = (f: (e: FileEntry) => void) => (event: MouseEvent) => {
    event.stopPropagation();
    f(entry);
  };
  return (
    <div
      className={`file-entry${selected ? " selected" : ""}${dropping ? " dropping" : ""}`}
      data-testid="file-entry"
      data-path={entry.path}
      data-kind={dir ? "dir" : "file"}
      data-drop-dir={dir ? entry.path : parentPath(entry.path)}
      role="treeitem"
      aria-level={row.depth + 1}
      aria-expanded={dir ? row.expanded : undefined}
      aria-selected={selected}
      tabIndex={selected ? 0 : -1}
      style={{ ...props.style, paddingLeft: 6 + row.depth * 14 }}
      onClick={() => props.onActivate(entry)}
      title={entry.kind === "symlink" ? `${entry.path} (link)` : entry.path}
    >
      <span className="file-twisty" aria-hidden="true">
        {dir ? (row.expanded ? "▾" : "▸") : ""}
      </span>
      <span className={`file-icon ${dir ? "dir" : "file"}`} aria-hidden="true" />
      <span className="file-name">
        {entry.name}
        {entry.kind === "symlink" && <span className="file-link"> ↗</span>}
      </span>
      {row.loading && <span className="file-meta">…</span>}
      {!dir && <span className="file-meta">{formatSize(entry.size)}</span>}
      <span className="file-actions">
        <button
          type="button"
          className="btn icon ghost small"
          data-testid="file-download"
          aria-label={`Download ${entry.name}${dir ? " as zip" : ""}`}
          title={dir ? "Download as zip" : "Download"}
          tabIndex={-1}
          onClick={stop(props.onDownload)}
        >
          <Icon name="download" />
        </button>
        <button
          type="button"
          className="btn icon ghost small"
          data-testid="file-rename"
          aria-label={`Rename ${entry.name}`}
          title="Rename (F2)"
          tabIndex={-1}
          onClick={stop(props.onRename)}
        >
          <Icon name="rename" />
        </button>
        <button
          type="button"
          className="btn icon ghost small danger-hover"
          data-testid="file-delete"
          aria-label={`Delete ${entry.name}`}
          title="Delete (Del)"
          tabIndex={-1}
          onClick={stop(props.onDelete)}
        >
          <Icon name="delete" />
        </button>
      </span>
    </div>
  );
}

function UploadRow(props: { upload: Upload; onCancel: () => void; onReplace: () => void }): JSX.Element {
  const { upload: u } = props;
  const percent = Math.round(uploadFraction(u) * 100);
  return (
    <div className={`upload-row upload-is-${u.status}`} data-testid="upload-row" data-status={u.status} data-path={u.target}>
      <div className="upload-line">
        <span className="upload-name" title={u.target}>
          {u.name}
        </span>
        <span className="upload-state">
          {u.status === "uploading" && `${percent}%`}
          {u.status === "queued" && "Waiting"}
          {u.status === "done" && "Done"}
          {u.status === "cancelled" && "Cancelled"}
          {(u.status === "error" || u.status === "conflict") && "Failed"}
        </span>
        {u.status === "conflict" && (
          <button type="button" className="btn small" onClick={props.onReplace}>
            Replace
          </button>
        )}
        {(u.status === "queued" || u.status === "uploading" || u.status === "conflict") && (
          <button type="button" className="btn ghost small" onClick={props.onCancel} aria-label={`Cancel uploading ${u.name}`}>
            ×
          </button>
        )}
      </div>
      <progress max={100} value={percent} aria-label={`${u.name}: ${percent}%`} />
      {u.error && <div className="upload-error">{u.error}</div>}
    </div>
  );
}

function PreviewPanel(props: { preview: Preview; sessionId: string; onClose: () => void; onMore: () => void }): JSX.Element {
  const { preview } = props;
  const { entry } = preview;
  const [pixels, setPixels] = useState<string | null>(null);
  useEffect(() => setPixels(null), [entry.path]);
  const download = () => client.download(props.sessionId, entry);
  const more = preview.state === "text" && !preview.stopped ? nextChunk(preview) : null;
  return (
    <div className="file-preview" data-testid="file-preview" data-path={entry.path} data-state={preview.state}>
      <div className="file-preview-head">
        <span className="file-preview-name" title={entry.path}>
          {entry.name}
        </span>
        {pixels && <span className="file-meta">{pixels}</span>}
        <span className="file-meta">{formatSize(preview.state === "text" ? preview.size : entry.size)}</span>
        {viewable(entry) && (
          // A navigation: octod answers with a one-time ticket to the content origin.
          <a
            className="btn ghost small"
            href={urls.view(props.sessionId, entry.path)}
            target="_blank"
            rel="noopener noreferrer"
            data-testid="file-view"
            aria-label={`View ${entry.name} in a new tab`}
          >
            View
          </a>
        )}
        <button type="button" className="btn icon ghost small" aria-label={`Download ${entry.name}`} onClick={download}>
          <Icon name="download" />
        </button>
        <button type="button" className="btn icon ghost small" aria-label="Close preview" onClick={props.onClose}>
          <Icon name="close" />
        </button>
      </div>
      <div className="file-preview-body">
        {preview.state === "loading" && <div className="files-empty">Loading…</div>}
        {preview.state === "message" && (
          <div className="files-empty" data-testid="file-preview-message">
            {preview.message}
          </div>
        )}
        {preview.state === "image" && (
          <img
            src={preview.url}
            alt={entry.name}
            onLoad={(e) => setPixels(`${e.currentTarget.naturalWidth} × ${e.currentTarget.naturalHeight} px`)}
          />
        )}
        {preview.state === "text" && (
          <>
            <pre data-testid="file-preview-text">{preview.text}</pre>
            {preview.loaded < preview.size && (
              <div className="file-preview-more" data-testid="file-preview-more">
                <span>
                  Showing the first {formatSize(preview.loaded)} of {formatSize(preview.size)}.
                  {!more && !preview.stopped && " Download the file for the rest."}
                  {preview.stopped && ` ${preview.stopped}`}
                </span>
                {more && (
                  <button
                    type="button"
                    className="btn small"
                    data-testid="file-preview-load-more"
                    disabled={preview.loadingMore}
                    onClick={props.onMore}
                  >
                    {preview.loadingMore ? "Loading…" : `Load ${formatSize(more.length)} more`}
                  </button>
                )}
                <button type="button" className="btn small ghost" onClick={download}>
                  Download
                </button>
              </div>
            )}
          </>
        )}
      </div>
    </div>
  );
}

/** Asks for a file or folder name, checked as it is typed; Esc cancels. */
function NameDialog(props: {
  title: string;
  initial: string;
  confirmLabel: string;
  onSubmit: (name: string) => void;
  onCancel: () => void;
}): JSX.Element {
  const ref = useRef<HTMLDialogElement>(null);
  const [name, setName] = useState(props.initial);
  const [touched, setTouched] = useState(false);
  const clean = name.trim();
  const problem = validateName(clean);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    // Select the name without its extension, as file managers do.
    const field = dialog?.querySelector("input");
    if (field) {
      const dot = props.initial.lastIndexOf(".");
      field.setSelectionRange(0, dot > 0 ? dot : props.initial.length);
    }
    return () => dialog?.close();
  }, []);
  return (
    <dialog
      ref={ref}
      className="dialog"
      aria-labelledby="files-name-title"
      onCancel={(event) => {
        event.preventDefault();
        props.onCancel();
      }}
    >
      <form
        method="dialog"
        onSubmit={(event) => {
          event.preventDefault();
          setTouched(true);
          if (!problem) props.onSubmit(clean);
        }}
      >
        <h2 id="files-name-title">{props.title}</h2>
        <label className="field">
          <span>Name</span>
          <input
            data-testid="files-name-input"
            value={name}
            autoFocus
            spellCheck={false}
            aria-invalid={touched && problem !== null}
            aria-describedby="files-name-problem"
            onChange={(e) => {
              setName(e.target.value);
              setTouched(true);
            }}
          />
        </label>
        <div id="files-name-problem" className="files-name-problem" role="status">
          {touched && problem}
        </div>
        <div className="dialog-actions">
          <button type="button" className="btn" data-testid="confirm-cancel" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" className="btn primary" data-testid="confirm-ok" disabled={touched && problem !== null}>
            {props.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}
