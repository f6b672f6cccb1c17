// ttyd framing: the bytes the terminal sends and how it reads ttyd's frames.
import { describe, expect, it } from "vitest";
import {
  FlowControl,
  backoffDelay,
  binaryInputFrame,
  helloFrame,
  inputFrame,
  parseServerFrame,
  pauseFrame,
  resizeFrame,
  resumeFrame,
  shellExited,
  terminalUrl,
} from "./ttyd";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe("ttyd framing", () => {
  it("says hello with an empty AuthToken and whole, positive sizes", () => {
    expect(JSON.parse(text(helloFrame(120, 40)))).toEqual({ AuthToken: "", columns: 120, rows: 40 });
    expect(JSON.parse(text(helloFrame(0, 10.7)))).toEqual({ AuthToken: "", columns: 1, rows: 10 });
  });

  it("prefixes input with '0', as UTF-8", () => {
    expect(text(inputFrame("echo $((6*7))\r"))).toBe("0echo $((6*7))\r");
    expect([...inputFrame("é")]).toEqual([0x30, 0xc3, 0xa9]);
    expect([...inputFrame(new Uint8Array([1, 2]))]).toEqual([0x30, 1, 2]);
  });

  it("sends binary input byte for byte", () => {
    expect([...binaryInputFrame("\x1b[M\xff")]).toEqual([0x30, 0x1b, 0x5b, 0x4d, 0xff]);
  });

  it("sends resizes as '1' + JSON, and flow control as '2' and '3'", () => {
    expect(text(resizeFrame(100, 30))).toBe('1{"columns":100,"rows":30}');
    expect(text(pauseFrame())).toBe("2");
    expect(text(resumeFrame())).toBe("3");
  });

  it("reads output, title and preferences", () => {
    const out = parseServerFrame(new TextEncoder().encode("0hello\r\n").buffer);
    expect(out.type).toBe("output");
    if (out.type === "output") expect(text(out.data)).toBe("hello\r\n");
    expect(parseServerFrame("1dev@octo: ~")).toEqual({ type: "title", title: "dev@octo: ~" });
    expect(parseServerFrame('2{"fontSize":14}')).toEqual({ type: "prefs", prefs: { fontSize: 14 } });
    expect(parseServerFrame("2not json")).toEqual({ type: "prefs", prefs: {} });
    expect(parseServerFrame("2[1]")).toEqual({ type: "prefs", prefs: {} });
    expect(parseServerFrame("9x")).toEqual({ type: "unknown", command: "9" });
    expect(parseServerFrame(new Uint8Array())).toEqual({ type: "unknown", command: "" });
  });

  it("keeps output bytes as they came (a UTF-8 character split across frames)", () => {
    const euro = new TextEncoder().encode("€");
    const first = parseServerFrame(new Uint8Array([0x30, euro[0], euro[1]]));
    expect(first.type === "output" && [...first.data]).toEqual([euro[0], euro[1]]);
  });

  it("builds the WebSocket URL on the page's origin", () => {
    expect(terminalUrl("s1", { protocol: "https:", host: "octo.example" })).toBe("wss://octo.example/sessions/s1/terminal");
    expect(terminalUrl("s1", { protocol: "http:", host: "127.0.0.1:5172" })).toBe("ws://127.0.0.1:5172/sessions/s1/terminal");
  });
});

describe("reconnect and flow control", () => {
  it("backs off exponentially up to a ceiling, spread by the random factor", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 10].map((a) => backoffDelay(a))).toEqual([
      500, 1000, 2000, 4000, 8000, 15000, 15000, 15000,
    ]);
    expect(backoffDelay(0, 0)).toBe(438);
    expect(backoffDelay(0, 0.999)).toBe(562);
  });

  it("pauses above the high mark and resumes below the low one, once each", () => {
    const flow = new FlowControl(100, 20);
    expect(flow.written(60)).toBeNull();
    expect(flow.written(60)).toBe("pause");
    expect(flow.written(60)).toBeNull();
    expect(flow.rendered(100)).toBeNull();
    expect(flow.rendered(70)).toBe("resume");
    expect(flow.rendered(10)).toBeNull();
  });

  it("tells a shell that exited from a lost connection", () => {
    expect(shellExited(1000)).toBe(true);
    expect(shellExited(1006)).toBe(false);
    expect(shellExited(1011)).toBe(false);
  });
});
