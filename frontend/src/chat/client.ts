// The opencode client of one Octo session: the official SDK (`@opencode-ai/sdk/v2`) pointed at
// octod's proxy, `/sessions/<id>/opencode` on this origin. The browser sends the `octo_session`
// cookie itself (same origin) and octod injects the session's token; nothing secret lives here.
import { createOpencodeClient, type Event, type OpencodeClient } from "@opencode-ai/sdk/v2/client";
import { UNAUTHORIZED_EVENT } from "../api";
import type { LoadedMessage } from "./state";

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

/** Messages asked for per request: the newest page opens a conversation, older pages load as the
 * user scrolls up. A conversation of 500 messages with long tool outputs is ~20 MB of JSON, whose
 * parse alone held the page for a long task. */
export const MESSAGE_PAGE = 50;

/** One page of a conversation, oldest first, and the cursor of the page before it. */
export interface MessagePage {
  messages: LoadedMessage[];
  /** opencode's cursor (`X-Next-Cursor`) for the messages before these; absent at the start. */
  older?: string;
}

/**
 * The newest `MESSAGE_PAGE` messages of a conversation, or with `before` (a page's `older`) the
 * ones before them. opencode (1.18) answers `limit` with the newest messages, oldest first, and
 * while older ones remain names them by an opaque cursor in `X-Next-Cursor`, which `before` takes
 * back. A server that does not page answers everything and no cursor: then the page is whole.
 */
export async function messagePage(client: OpencodeClient, sessionID: string, before?: string): Promise<MessagePage> {
  let cursor: string | null = null;
  const messages = await call(
    before ? "Loading earlier messages" : "Loading the conversation",
    client.session
      .messages({ sessionID, limit: MESSAGE_PAGE, before })
      .then((result) => {
        cursor = result.response?.headers.get("x-next-cursor") ?? null;
        return result;
      }),
  );
  return cursor ? { messages, older: cursor } : { messages };
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
