// The Files pane's network side: requests to the session's file server through octod (cookie
// auth, same origin), with the one error shape, the sign-out event on 401 and waiting out a
// session that is still waking (503 + Retry-After). Uploads use XHR for progress.
import {
  FileError,
  ListingCache,
  parseError,
  parseListing,
  rangeTotal,
  urls,
  type ListingPage,
  type PathRef,
} from "./fileops";

/** How often a request is retried while octod says the session is waking up. */
const WAKE_RETRIES = 4;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });

function unauthorized(status: number) {
  if (status === 401) window.dispatchEvent(new Event("octo:unauthorized"));
}

/** `fetch` that turns a failed answer into a [`FileError`]. */
export async function request(url: string, init: RequestInit = {}): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    let response: Response;
    try {
      response = await fetch(url, { credentials: "same-origin", ...init });
    } catch (error) {
      if (init.signal?.aborted) throw error;
      throw new FileError(0, "network", "The server cannot be reached (network error).");
    }
    if (response.ok) return response;
    const text = await response.text().catch(() => "");
    if (response.status === 503 && attempt < WAKE_RETRIES) {
      const seconds = Number(response.headers.get("Retry-After"));
      await sleep((Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 10) : 2) * 1000, init.signal ?? undefined);
      continue;
    }
    unauthorized(response.status);
    const error = parseError(response.status, text);
    if (response.status === 401) throw new FileError(401, error.code, "Your sign-in has expired.");
    throw error;
  }
}

/** A page of a folder's entries (`LIST_PAGE` from `offset`; without it, the whole folder); with
 * `cache`, an answer the same as the last one is not parsed again. */
export async function list(
  sessionId: string,
  dir: PathRef,
  hidden: boolean,
  signal?: AbortSignal,
  cache?: ListingCache,
  offset?: number,
): Promise<ListingPage> {
  const url = urls.list(sessionId, dir, hidden, offset);
  const response = await request(url, { signal });
  if (!cache) return parseListing(await response.json());
  return cache.parse(url, await response.text());
}

export async function mkdir(sessionId: string, path: string): Promise<void> {
  await request(urls.mkdir(sessionId, path), { method: "POST" });
}

export async function move(sessionId: string, from: PathRef, to: string): Promise<void> {
  await request(urls.move(sessionId, from, to), { method: "POST" });
}

export async function remove(sessionId: string, path: PathRef, recursive: boolean): Promise<void> {
  await request(urls.remove(sessionId, path, recursive), { method: "DELETE" });
}

/** At most `limit` bytes of a response's body: the rest is not read (the request is cancelled),
 * so a server that ignores a `Range` costs no more than what is wanted. */
export async function readAtMost(response: Response, limit: number): Promise<Uint8Array<ArrayBuffer>> {
  const reader = response.body?.getReader();
  if (!reader) return new Uint8Array(await response.arrayBuffer()).subarray(0, limit);
  const parts: Uint8Array[] = [];
  let total = 0;
  while (total < limit) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    total += value.length;
  }
  if (total >= limit) await reader.cancel().catch(() => {});
  const out = new Uint8Array(Math.min(total, limit));
  let at = 0;
  for (const part of parts) {
    const take = part.subarray(0, out.length - at);
    out.set(take, at);
    at += take.length;
    if (at >= out.length) break;
  }
  return out;
}

/** A part of a file read for a preview. */
export interface FilePart {
  bytes: Uint8Array;
  /** The file's size as the answer gave it (null if it did not). */
  size: number | null;
  /** The file's version: later parts are asked for with `If-Match`, so a file that changed
   * meanwhile is refused (412) rather than shown as a mix of two versions. */
  etag: string | null;
}

/** `length` bytes of a file from `start` (a `Range` request; read bounded either way). With
 * `etag`, only of that version of the file (else a `FileError` with code `precondition_failed`). */
export async function readPart(
  sessionId: string,
  path: PathRef,
  start: number,
  length: number,
  etag: string | null,
  signal?: AbortSignal,
): Promise<FilePart> {
  const headers: Record<string, string> = { Range: `bytes=${start}-${start + length - 1}` };
  if (etag) headers["If-Match"] = etag;
  let response: Response;
  try {
    response = await request(urls.download(sessionId, path, true), { headers, signal });
  } catch (e) {
    // Asked from the end of the file or past it (it shrank, or is empty): nothing there.
    if (e instanceof FileError && e.code === "range_not_satisfiable") return { bytes: new Uint8Array(), size: start, etag };
    throw e;
  }
  const ranged = response.status === 206;
  const size = ranged ? rangeTotal(response.headers.get("Content-Range")) : Number(response.headers.get("Content-Length") ?? NaN);
  // A whole file (the server ignored the range): skip to `start` within the same bound.
  const bytes = await readAtMost(response, ranged ? length : start + length);
  return {
    bytes: ranged ? bytes : bytes.subarray(Math.min(start, bytes.length)),
    size: Number.isFinite(size) ? size : null,
    etag: response.headers.get("ETag") ?? etag,
  };
}

/** An image for a preview, at most `limit` bytes: a file grown past it since it was listed is a
 * `FileError` with code `too_large`. */
export async function readImage(sessionId: string, path: PathRef, type: string, limit: number, signal?: AbortSignal): Promise<Blob> {
  const response = await request(urls.download(sessionId, path, true), { signal });
  const bytes = await readAtMost(response, limit + 1);
  if (bytes.length > limit) throw new FileError(0, "too_large", "The image is larger than a preview shows.");
  return new Blob([bytes], { type });
}

export interface UploadHandle {
  abort(): void;
}

/** PUTs `file` with progress; `done` gets null on success, else the error (a 409 for a name
 * that exists has code `already_exists`). */
export function upload(
  sessionId: string,
  path: string,
  file: Blob,
  overwrite: boolean,
  onProgress: (loaded: number) => void,
  done: (error: FileError | null) => void,
): UploadHandle {
  const xhr = new XMLHttpRequest();
  xhr.open("PUT", urls.upload(sessionId, path, overwrite));
  xhr.withCredentials = true;
  xhr.upload.onprogress = (event) => onProgress(event.loaded);
  xhr.onload = () => {
    if (xhr.status >= 200 && xhr.status < 300) {
      done(null);
      return;
    }
    unauthorized(xhr.status);
    done(parseError(xhr.status, typeof xhr.responseText === "string" ? xhr.responseText : ""));
  };
  xhr.onerror = () => done(new FileError(0, "network", "The upload was interrupted (network error)."));
  xhr.onabort = () => done(new FileError(0, "aborted", "Cancelled."));
  xhr.send(file);
  return { abort: () => xhr.abort() };
}

/** Starts the browser's download of a file, or of a folder as a zip. */
export function download(sessionId: string, path: PathRef): void {
  const a = document.createElement("a");
  a.href = urls.download(sessionId, path);
  a.download = "";
  a.rel = "noopener";
  document.body.append(a);
  a.click();
  a.remove();
}
