// The Terminal pane: xterm.js (DOM renderer) on the session's ttyd WebSocket through octod,
// fitted to the pane, reconnecting with backoff, with its connection state always visible.
import { useCallback, useEffect, useRef, useState } from "react";
import { Terminal, type ITheme } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import "./terminal.css";
import { ApiError, apiFetch, type Session } from "../api";
import {
  FlowControl,
  SUBPROTOCOL,
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

type LinkState = "connecting" | "connected" | "closed";

interface Status {
  state: LinkState;
  /** What the user should know: why it closed, when it retries. */
  detail: string;
}

/** Colours from the app's theme variables (styles.css), so the terminal follows the theme. */
function themeOf(element: HTMLElement): ITheme {
  const style = getComputedStyle(element);
  const v = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  const dark = v("color-scheme", "light").includes("dark") || matchMedia("(prefers-color-scheme: dark)").matches;
  const background = v("--bg", dark ? "#0d1117" : "#ffffff");
  const foreground = v("--fg", dark ? "#e6edf3" : "#1f2328");
  return {
    background,
    foreground,
    cursor: foreground,
    cursorAccent: background,
    selectionBackground: dark ? "#264f78" : "#add6ff",
  };
}

export function TerminalPane({ sessionId, active = true }: { sessionId: string; active?: boolean }): JSX.Element {
  const host = useRef<HTMLDivElement>(null);
  const terminal = useRef<Terminal | null>(null);
  const reconnect = useRef<() => void>(() => {});
  const [status, setStatus] = useState<Status>({ state: "connecting", detail: "Connecting…" });
  const [title, setTitle] = useState("");

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const term = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "SF Mono", "Cascadia Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      scrollback: 5000,
      theme: themeOf(element),
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(element);
    terminal.current = term;

    let socket: WebSocket | null = null;
    let attempt = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let disposed = false;
    let exited = false;
    const lifetime = new AbortController();
    const flow = new FlowControl();

    const send = (data: Uint8Array) => {
      if (socket?.readyState === WebSocket.OPEN) socket.send(data);
    };
    const fitNow = () => {
      // A hidden pane has no size; fitting it would shrink the shell to nothing.
      if (element.offsetWidth > 0 && element.offsetHeight > 0) {
        try {
          fit.fit();
        } catch {
          // Not rendered yet; the next resize fits.
        }
      }
    };

    const connect = () => {
      clearTimeout(timer);
      if (disposed) return;
      exited = false;
      setStatus({ state: "connecting", detail: attempt > 0 ? `Reconnecting (attempt ${attempt + 1})…` : "Connecting…" });
      fitNow();
      const ws = new WebSocket(terminalUrl(sessionId, window.location), [SUBPROTOCOL]);
      ws.binaryType = "arraybuffer";
      socket = ws;
      ws.onopen = () => {
        if (socket !== ws) return;
        flow.reset();
        ws.send(helloFrame(term.cols, term.rows));
        if (attempt > 0) term.write("\r\n\x1b[2m[reconnected]\x1b[0m\r\n");
        attempt = 0;
        setStatus({ state: "connected", detail: "Connected" });
      };
      ws.onmessage = (event: MessageEvent<ArrayBuffer | string>) => {
        const message = parseServerFrame(event.data);
        if (message.type === "output") {
          const length = message.data.length;
          if (flow.written(length) === "pause") send(pauseFrame());
          term.write(message.data, () => {
            if (flow.rendered(length) === "resume") send(resumeFrame());
          });
        } else if (message.type === "title") {
          setTitle(message.title);
        }
      };
      ws.onclose = (event) => {
        if (socket !== ws || disposed) return;
        socket = null;
        if (shellExited(event.code)) {
          exited = true;
          term.write("\r\n\x1b[2m[the shell exited — press Enter to start a new one]\x1b[0m\r\n");
          setStatus({ state: "closed", detail: "The shell exited. Press Enter or Reconnect." });
          return;
        }
        retryLater(`Connection lost${event.code ? ` (code ${event.code})` : ""}`);
      };
    };

    // Reconnecting wakes a stopped session (octod resumes on access), so after a lost
    // connection it waits until the session runs again: a stop — the user's or the idle
    // timeout's — then sticks. The Reconnect button connects at once, waking it on purpose.
    const retryLater = (why: string) => {
      const delay = backoffDelay(attempt, Math.random());
      attempt += 1;
      setStatus({ state: "closed", detail: `${why}; retrying in ${Math.ceil(delay / 1000)} s.` });
      timer = setTimeout(() => void retry(), delay);
    };
    const retry = async () => {
      let state: string;
      try {
        const path = `/api/sessions/${encodeURIComponent(sessionId)}`;
        state = (await apiFetch<Session>(path, { signal: lifetime.signal })).state;
      } catch (error) {
        if (disposed) return;
        if (error instanceof ApiError && error.status === 404) {
          setStatus({ state: "closed", detail: "This session no longer exists." });
          return;
        }
        retryLater("The server cannot be reached");
        return;
      }
      if (disposed) return;
      if (state === "running") connect();
      else retryLater(`The session is ${state}`);
    };
    reconnect.current = () => {
      attempt = 0;
      if (socket) {
        const old = socket;
        socket = null;
        old.close();
      }
      connect();
    };

    // Ctrl+C (⌘C) with a selection copies it, as in VS Code's terminal; without one it is ^C.
    term.attachCustomKeyEventHandler((event) => {
      const copy = event.type === "keydown" && (event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "c";
      if (copy && term.hasSelection()) {
        navigator.clipboard?.writeText(term.getSelection()).catch(() => {});
        term.clearSelection();
        return false;
      }
      return true;
    });

    const onData = term.onData((data) => {
      if (socket?.readyState === WebSocket.OPEN) send(inputFrame(data));
      else if (exited && data === "\r") reconnect.current();
    });
    const onBinary = term.onBinary((data) => send(binaryInputFrame(data)));
    const onResize = term.onResize(({ cols, rows }) => send(resizeFrame(cols, rows)));
    const onTitle = term.onTitleChange(setTitle);

    let frame = 0;
    const observer = new ResizeObserver(() => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(fitNow);
    });
    observer.observe(element);

    // Follow the app's theme (an attribute on <html>) and the system's.
    const retheme = () => {
      term.options.theme = themeOf(element);
    };
    const themeObserver = new MutationObserver(retheme);
    themeObserver.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme", "class", "style"] });
    const media = matchMedia("(prefers-color-scheme: dark)");
    media.addEventListener("change", retheme);

    connect();

    return () => {
      disposed = true;
      lifetime.abort();
      clearTimeout(timer);
      cancelAnimationFrame(frame);
      observer.disconnect();
      themeObserver.disconnect();
      media.removeEventListener("change", retheme);
      onData.dispose();
      onBinary.dispose();
      onResize.dispose();
      onTitle.dispose();
      const ws = socket;
      socket = null;
      if (ws) {
        // Closing a socket that is still connecting makes the browser log an error; let it
        // open first, then close it.
        if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close();
        else ws.close();
        ws.onmessage = null;
        ws.onclose = null;
      }
      terminal.current = null;
      term.dispose();
    };
  }, [sessionId]);

  useEffect(() => {
    if (active) terminal.current?.focus();
  }, [active]);

  const onReconnect = useCallback(() => {
    reconnect.current();
    terminal.current?.focus();
  }, []);

  return (
    <div className="terminal-pane">
      <div className="terminal-bar">
        <span className="terminal-title" title={title}>
          {title || "Terminal"}
        </span>
        <span
          className={`terminal-status terminal-status-${status.state}`}
          data-testid="terminal-status"
          data-state={status.state}
          role="status"
          aria-live="polite"
          title={status.detail}
        >
          <span className="terminal-dot" aria-hidden="true" />
          {status.state === "connected" ? "Connected" : status.state === "connecting" ? "Connecting…" : status.detail}
        </span>
        {status.state === "closed" && (
          <button type="button" className="btn small" onClick={onReconnect}>
            Reconnect
          </button>
        )}
      </div>
      <div className="terminal-host" data-testid="terminal" ref={host} />
    </div>
  );
}
