// ttyd framing: the WebSocket protocol of the session's terminal (subprotocol `tty`), and the
// reconnect policy. Pure functions, unit-tested; TerminalPane does the IO.
//
// Client → server: first a JSON hello `{"AuthToken","columns","rows"}` (ttyd sits behind the
// session's gateway and takes no credential, so the browser sends an empty one), then binary
// frames whose first byte is the command: '0' input, '1' resize (JSON columns/rows),
// '2' pause and '3' resume output (flow control).
// Server → client: '0' output bytes, '1' window title, '2' preferences (JSON).

export const SUBPROTOCOL = "tty";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The terminal's WebSocket URL for a session, on the page's own origin. */
export function terminalUrl(sessionId: string, location: Pick<Location, "protocol" | "host">): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/sessions/${encodeURIComponent(sessionId)}/terminal`;
}

function frame(command: string, payload: Uint8Array | string = ""): Uint8Array {
  const body = typeof payload === "string" ? encoder.encode(payload) : payload;
  const out = new Uint8Array(1 + body.length);
  out[0] = command.charCodeAt(0);
  out.set(body, 1);
  return out;
}

const size = (columns: number, rows: number) => ({
  columns: Math.max(1, Math.floor(columns)),
  rows: Math.max(1, Math.floor(rows)),
});

/** The first message: the terminal's size, and an empty AuthToken (ttyd checks none). */
export function helloFrame(columns: number, rows: number): Uint8Array {
  return encoder.encode(JSON.stringify({ AuthToken: "", ...size(columns, rows) }));
}

/** Keystrokes (xterm's `onData` gives a string; `onBinary` a string of byte values). */
export function inputFrame(data: string | Uint8Array): Uint8Array {
  return frame("0", data);
}

/** `onBinary` data: each char is one byte (xterm uses it for non-UTF-8 mouse reports). */
export function binaryInputFrame(data: string): Uint8Array {
  const bytes = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 0xff;
  return frame("0", bytes);
}

export function resizeFrame(columns: number, rows: number): Uint8Array {
  return frame("1", JSON.stringify(size(columns, rows)));
}

export const pauseFrame = (): Uint8Array => frame("2");
export const resumeFrame = (): Uint8Array => frame("3");

export type ServerMessage =
  | { type: "output"; data: Uint8Array }
  | { type: "title"; title: string }
  | { type: "prefs"; prefs: Record<string, unknown> }
  | { type: "unknown"; command: string };

/** One message from ttyd (binary, or text from a proxy that re-framed it). */
export function parseServerFrame(message: ArrayBuffer | Uint8Array | string): ServerMessage {
  const bytes =
    typeof message === "string"
      ? encoder.encode(message)
      : message instanceof Uint8Array
        ? message
        : new Uint8Array(message);
  if (bytes.length === 0) return { type: "unknown", command: "" };
  const command = String.fromCharCode(bytes[0]);
  const payload = bytes.subarray(1);
  switch (command) {
    case "0":
      return { type: "output", data: payload };
    case "1":
      return { type: "title", title: decoder.decode(payload) };
    case "2": {
      try {
        const prefs: unknown = JSON.parse(decoder.decode(payload));
        if (typeof prefs === "object" && prefs !== null && !Array.isArray(prefs)) {
          return { type: "prefs", prefs: prefs as Record<string, unknown> };
        }
      } catch {
        // fall through: preferences we cannot read are ignored
      }
      return { type: "prefs", prefs: {} };
    }
    default:
      return { type: "unknown", command };
  }
}

/** Reconnect delays: 0.5 s doubling up to 15 s; `random` in [0,1) spreads them by up to
 * a quarter so many tabs do not reconnect in step after octod restarts. */
export function backoffDelay(attempt: number, random = 0.5, base = 500, max = 15_000): number {
  const raw = Math.min(max, base * 2 ** Math.max(0, attempt));
  return Math.round(raw * (0.875 + random * 0.25));
}

/** Output flow control (as ttyd's own client): pause the server when this many bytes are
 * written but not yet rendered, resume below the low mark. */
export const FLOW_HIGH = 2 * 1024 * 1024;
export const FLOW_LOW = 512 * 1024;

export class FlowControl {
  private pending = 0;
  private paused = false;
  constructor(
    private readonly high = FLOW_HIGH,
    private readonly low = FLOW_LOW,
  ) {}

  /** Bytes handed to the terminal; returns "pause" when the server should stop sending. */
  written(bytes: number): "pause" | null {
    this.pending += bytes;
    if (!this.paused && this.pending > this.high) {
      this.paused = true;
      return "pause";
    }
    return null;
  }

  /** The terminal rendered `bytes`; returns "resume" when the server may go on. */
  rendered(bytes: number): "resume" | null {
    this.pending = Math.max(0, this.pending - bytes);
    if (this.paused && this.pending < this.low) {
      this.paused = false;
      return "resume";
    }
    return null;
  }

  reset(): void {
    this.pending = 0;
    this.paused = false;
  }
}

/** Whether a close means the shell ended (ttyd closes normally), rather than a lost link. */
export function shellExited(code: number): boolean {
  return code === 1000;
}
