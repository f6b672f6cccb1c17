// The event stream's connection: subscribes, hands every event on, and when the stream ends or
// fails (octod restarted, the session was stopped and woke up again, the network blinked) connects
// again with a growing pause, and each time it connects asks for a (re)load of what the stream
// does not replay. A stream that
// stays silent longer than `silenceMs` is treated as dead (opencode sends a heartbeat meanwhile).
import type { Event } from "@opencode-ai/sdk/v2/client";
import type { ConnectionState } from "./state";

export interface StreamOptions {
  /** Opens the stream; resolves to its events. Called again for every reconnect. */
  subscribe: (signal: AbortSignal) => Promise<AsyncIterable<Event>>;
  onEvent: (event: Event) => void;
  onState: (state: ConnectionState, error?: unknown) => void;
  /**
   * On every connection (the first included): load what the stream does not replay — the state
   * before it connected, and after a reconnect whatever happened while it was down.
   */
  onConnected: (reconnected: boolean) => void;
  signal: AbortSignal;
  /**
   * Asked before every reconnect (not the first connection): false waits another pause instead.
   * Octo wakes a stopped session on any request through its proxy, so the pane asks octod's API
   * (which does not) whether the session still runs, and never wakes one that was stopped.
   */
  mayReconnect?: () => Promise<boolean>;
  /** Pause before reconnect attempt n (1-based). */
  backoff?: (attempt: number) => number;
  silenceMs?: number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export const defaultBackoff = (attempt: number): number => Math.min(500 * 2 ** (attempt - 1), 15_000);

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** Runs until `signal` aborts. Never rejects. */
export async function runEventStream(options: StreamOptions): Promise<void> {
  const { signal, onEvent, onState, onConnected } = options;
  const backoff = options.backoff ?? defaultBackoff;
  const sleep = options.sleep ?? abortableSleep;
  const silenceMs = options.silenceMs ?? 60_000;
  let failures = 0;
  let everConnected = false;
  while (!signal.aborted) {
    onState(everConnected ? "reconnecting" : "connecting");
    if (failures > 0 && options.mayReconnect && !(await options.mayReconnect().catch(() => false))) {
      if (signal.aborted) break;
      failures += 1;
      onState("reconnecting", new Error("the session is not running"));
      await sleep(backoff(failures), signal);
      continue;
    }
    const attempt = new AbortController();
    const stop = () => attempt.abort();
    signal.addEventListener("abort", stop, { once: true });
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => attempt.abort(), silenceMs);
    };
    let error: unknown;
    try {
      arm();
      const events = await options.subscribe(attempt.signal);
      for await (const event of events) {
        if (signal.aborted) break;
        arm();
        if (event.type === "server.connected") {
          onState("open");
          failures = 0;
          onConnected(everConnected);
          everConnected = true;
        }
        onEvent(event);
      }
    } catch (caught) {
      error = caught;
    } finally {
      clearTimeout(watchdog);
      signal.removeEventListener("abort", stop);
    }
    if (signal.aborted) break;
    failures += 1;
    onState("reconnecting", error ?? new Error("the event stream ended"));
    await sleep(backoff(failures), signal);
  }
}
