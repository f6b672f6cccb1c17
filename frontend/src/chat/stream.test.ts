import { describe, expect, it } from "vitest";
import type { Event } from "@opencode-ai/sdk/v2/client";
import { defaultBackoff, runEventStream } from "./stream";
import type { ConnectionState } from "./state";

const connected = { id: "e0", type: "server.connected", properties: {} } as unknown as Event;
const idle = (n: number) => ({ id: `e${n}`, type: "session.idle", properties: { sessionID: `ses_${n}` } }) as unknown as Event;

/** A scripted server: each call to subscribe plays the next script (events, then end or throw). */
function scripted(scripts: (Event[] | { events: Event[]; fail: Error } | "hang")[], done: () => void) {
  let call = 0;
  return async (signal: AbortSignal): Promise<AsyncIterable<Event>> => {
    const script = scripts[call++];
    if (script === undefined) {
      done();
      return (async function* () {})();
    }
    if (script === "hang") {
      return (async function* () {
        if (!signal.aborted) await new Promise((resolve) => signal.addEventListener("abort", resolve));
      })();
    }
    const { events, fail } = Array.isArray(script) ? { events: script, fail: undefined } : script;
    return (async function* () {
      for (const event of events) yield event;
      if (fail) throw fail;
    })();
  };
}

describe("runEventStream", () => {
  it("passes events on, reconnects after an end or a failure with growing pauses, and resyncs", async () => {
    const controller = new AbortController();
    const seen: string[] = [];
    const states: [ConnectionState, string?][] = [];
    const pauses: number[] = [];
    const connections: boolean[] = [];
    await runEventStream({
      subscribe: scripted(
        [
          [connected, idle(1)],
          { events: [], fail: new Error("SSE failed: 502 Bad Gateway") },
          { events: [connected, idle(2)], fail: new Error("network") },
          [connected, idle(3)],
        ],
        () => controller.abort(),
      ),
      onEvent: (event) => seen.push(event.id),
      onState: (state, error) => states.push([state, error ? String(error) : undefined]),
      onConnected: (reconnected) => connections.push(reconnected),
      signal: controller.signal,
      sleep: async (ms) => {
        pauses.push(ms);
      },
    });
    expect(seen).toEqual(["e0", "e1", "e0", "e2", "e0", "e3"]);
    // Every connection asks for a load; only the later ones are reconnects.
    expect(connections).toEqual([false, true, true]);
    expect(states[0]).toEqual(["connecting", undefined]);
    expect(states[1]).toEqual(["open", undefined]);
    expect(states).toContainEqual(["reconnecting", "Error: SSE failed: 502 Bad Gateway"]);
    expect(states).toContainEqual(["reconnecting", "Error: the event stream ended"]);
    // Pauses grow while attempts fail, and start over once connected.
    expect(pauses.slice(0, 3)).toEqual([defaultBackoff(1), defaultBackoff(2), defaultBackoff(1)]);
  });

  it("stops at once when aborted, even in the middle of a stream", async () => {
    const controller = new AbortController();
    let subscribed = 0;
    const running = runEventStream({
      subscribe: async (signal) => {
        subscribed += 1;
        return scripted(["hang"], () => {})(signal);
      },
      onEvent: () => {},
      onState: () => {},
      onConnected: () => {},
      signal: controller.signal,
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort();
    await running;
    expect(subscribed).toBe(1);
  });

  it("treats a silent stream as dead and connects again", async () => {
    const controller = new AbortController();
    const states: ConnectionState[] = [];
    let calls = 0;
    await runEventStream({
      subscribe: async (signal) => {
        calls += 1;
        if (calls === 2) controller.abort();
        return scripted(["hang"], () => {})(signal);
      },
      onEvent: () => {},
      onState: (state) => states.push(state),
      onConnected: () => {},
      signal: controller.signal,
      silenceMs: 20,
      sleep: async () => {},
    });
    expect(calls).toBe(2);
    expect(states).toContain("reconnecting");
  });

  it("reconnects only when allowed, asking again after each pause", async () => {
    const controller = new AbortController();
    const answers = [false, false, true];
    const asked: number[] = [];
    const states: [ConnectionState, string?][] = [];
    let subscribed = 0;
    const script = scripted([[connected], [connected]], () => controller.abort());
    await runEventStream({
      subscribe: (signal) => {
        subscribed += 1;
        return script(signal);
      },
      onEvent: () => {},
      onState: (state, error) => states.push([state, error ? String(error) : undefined]),
      onConnected: () => {},
      mayReconnect: async () => {
        asked.push(subscribed);
        return answers.shift() ?? true;
      },
      signal: controller.signal,
      sleep: async () => {},
    });
    // Not asked before the first connection; asked three times before the second one.
    expect(asked).toEqual([1, 1, 1, 2]);
    expect(states).toContainEqual(["reconnecting", "Error: the session is not running"]);
  });

  it("backs off up to a ceiling", () => {
    expect(defaultBackoff(1)).toBe(500);
    expect(defaultBackoff(2)).toBe(1000);
    expect(defaultBackoff(20)).toBe(15_000);
  });
});
