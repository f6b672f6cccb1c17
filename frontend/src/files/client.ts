// The Files pane's network side: requests to the session's file server through octod (cookie
// auth, same origin), with the one error shape, the sign-out event on 401 and waiting out a
// session that is still waking (503 + Retry-After). Uploads use XHR for progress.
import {
  FileError,
  ListingCache,
  parseError,
  parseListing,
  urls,
  type FileEntry,
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

/** A folder's entries; with `cache`, an answer the same as the last one is not parsed again. */
export async function list(
  sessionId: string,
  dir: PathRef,
  hidden: boolean,
  signal?: AbortSignal,
  cache?: ListingCache,
): Promise<FileEntry[]> {
  const url = urls.list(sessionId, dir, hidden);
  const response = await request(url, { signal });
  if (!cache) return parseListing(await response.json()).entries;
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

/** The first `limit` bytes of a file (a `Range` request when the file is larger). */
export async function readHead(
  sessionId: string,
  path: PathRef,
  limit: number,
  ranged: boolean,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const headers: HeadersInit = ranged ? { Range: `bytes=0-${limit - 1}` } : {};
  const response = await request(urls.download(sessionId, path, true), { headers, signal });
  const bytes = new Uint8Array(await response.arrayBuffer());
  return bytes.length > limit ? bytes.subarray(0, limit) : bytes;
}

export async function readBlob(sessionId: string, path: PathRef, type: string, signal?: AbortSignal): Promise<Blob> {
  const response = await request(urls.download(sessionId, path, true), { signal });
  return new Blob([await response.arrayBuffer()], { type });
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
