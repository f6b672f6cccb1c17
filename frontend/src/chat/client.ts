// The opencode client of one Octo session: the official SDK (`@opencode-ai/sdk/v2`) pointed at
// octod's proxy, `/sessions/<id>/opencode` on this origin. The browser sends the `octo_session`
// cookie itself (same origin) and octod injects the session's token; nothing secret lives here.
import { createOpencodeClient, type Event, type OpencodeClient } from "@opencode-ai/sdk/v2/client";
import { UNAUTHORIZED_EVENT } from "../api";

export type { OpencodeClient };

/**
 * `lifetime` gives the signal of the pane that owns the client: once it is aborted (the pane
 * closed), every request of the client still on its way is cancelled and no new one is sent. A
 * request left running would otherwise be answered after the session stopped or was deleted
 * (octod: 502/404), a failure in the console of a page that has moved on.
 */
export function opencodeClient(sessionId: string, lifetime?: () => AbortSignal | undefined): OpencodeClient {
  return createOpencodeClient({
    baseUrl: `${window.location.origin}/sessions/${encodeURIComponent(sessionId)}/opencode`,
    credentials: "same-origin",
    fetch: (input: RequestInfo | URL, init?: RequestInit) => {
      const owner = lifetime?.();
      if (!owner) return fetch(input, init);
      const own = init?.signal ?? (input instanceof Request ? input.signal : undefined);
      const signal = own ? AbortSignal.any([own, owner]) : owner;
      return fetch(input, { ...init, signal });
    },
  });
}

/** An SDK call that failed, with a message that says what failed and why. */
export class ChatError extends Error {
  readonly status?: number;
  constructor(message: string, status?: number) {
    super(message);
    this.name = "ChatError";
    this.status = status;
  }
}

interface SdkResult<T> {
  data?: T;
  error?: unknown;
  response?: Response;
}

/** Why a response failed, from whichever error shape came back (octod's or opencode's). */
function reason(error: unknown, response?: Response): string {
  const body = error as
    | { error?: { message?: unknown; code?: unknown }; data?: { message?: unknown }; message?: unknown; name?: unknown }
    | string
    | undefined;
  let text = "";
  if (typeof body === "string") text = body;
  else if (body && typeof body === "object") {
    if (body.error && typeof body.error.message === "string") text = body.error.message;
    else if (body.data && typeof body.data.message === "string") text = body.data.message;
    else if (typeof body.message === "string") text = body.message;
    else if (typeof body.name === "string") text = body.name;
  }
  const status = response ? `HTTP ${response.status}` : "no response";
  return text ? `${status}: ${text}` : status;
}

/**
 * Awaits an SDK call and returns its data; throws a `ChatError` naming `what` on failure. A 401
 * means the Octo login expired: the shell is told (it goes back to sign-in).
 */
export async function call<T>(what: string, request: Promise<SdkResult<T>>): Promise<T> {
  let result: SdkResult<T>;
  try {
    result = await request;
  } catch (error) {
    throw new ChatError(`${what} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  const { response } = result;
  if (result.error !== undefined || (response && !response.ok)) {
    if (response?.status === 401) window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT));
    const retryAfter = response?.headers.get("retry-after");
    const hint = response?.status === 503 && retryAfter ? ` (the session is waking up; retry in ${retryAfter} s)` : "";
    throw new ChatError(`${what} failed: ${reason(result.error, response)}${hint}`, response?.status);
  }
  return result.data as T;
}

/**
 * The event stream as an async iterable for `runEventStream`: one connection attempt (the SDK's
 * own retries are off; `runEventStream` reconnects and resyncs), ending with the error that ended it.
 */
export async function subscribeEvents(client: OpencodeClient, signal: AbortSignal): Promise<AsyncIterable<Event>> {
  let failure: unknown;
  const result = await client.event.subscribe(
    {},
    {
      signal,
      sseMaxRetryAttempts: 1,
      onSseError: (error) => {
        failure = error;
      },
    },
  );
  return (async function* () {
    for await (const event of result.stream) yield event as Event;
    if (failure !== undefined && !signal.aborted) {
      if (/\b401\b/.test(String(failure))) window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT));
      throw failure;
    }
  })();
}
