// The workspace view of one session: a header with the session's name and state, then — once the
// session runs — the three panes (chat, files, terminal) side by side with draggable, keyboard-
// resizable splitters (layout remembered), or one pane at a time with tabs on narrow screens.
// A stopped session is woken up on opening; while it starts the view shows that and polls.
import { useCallback, useEffect, useRef, useState } from "react";
import { flushSync } from "react-dom";
import { api, ApiError, isTransitional, type Session } from "../api";
import { ChatPane } from "../chat/ChatPane";
import { FilesPane } from "../files/FilesPane";
import { TerminalPane } from "../terminal/TerminalPane";
import { ErrorBanner } from "../components/ErrorBanner";
import { Link } from "../components/Link";
import { SessionLabel } from "../components/SessionLabel";
import { StateBadge } from "../components/SessionTable";
import { diskView, idleView, keepAliveChoices } from "../sessions";
import { POLL_MS } from "../sessions";
import { keyDelta, loadLayout, moveSplitter, saveLayout, type Layout } from "./layout";
import { SnapshotsMenu } from "./SnapshotsMenu";
import { PortsMenu, PreviewPane } from "./PortsMenu";
import type { PortRow } from "./ports";
import "./workspace.css";

/** While running, the state is checked this often to notice an idle stop. */
const RUNNING_POLL_MS = 15000;
const NARROW_QUERY = "(max-width: 820px)";

type PaneId = "chat" | "files" | "terminal";
const PANES: { id: PaneId; label: string }[] = [
  { id: "chat", label: "Chat" },
  { id: "files", label: "Files" },
  { id: "terminal", label: "Terminal" },
];

/** The storage warning above the panes while the owner nears or passes their quota. */
function DiskWarning(props: { session: Session }): JSX.Element | null {
  const view = diskView(props.session.disk);
  if (view.warning === null) return null;
  return (
    <div className={`workspace-error disk-warning ${view.tone ?? ""}`} role="status" data-testid="workspace-disk-warning">
      {view.warning}
    </div>
  );
}

/**
 * The idle stop's outlook in the header (when it stops, what keeps it running) and the "Keep
 * running" menu: a keep-alive of a chosen length, up to the administrator's maximum, or its end.
 */
function IdleStatus(props: { session: Session; onChange: (next: Session) => void; onError: (err: unknown) => void }): JSX.Element | null {
  const { session } = props;
  const [busy, setBusy] = useState(false);
  const view = idleView(session.idle, Date.now());
  if (view === null) return null;
  const choices = keepAliveChoices(session.idle?.keep_alive_max_minutes ?? 0);
  const keptAlive = session.idle?.keep_alive_until !== undefined;
  const choose = async (value: string) => {
    if (value === "") return;
    setBusy(true);
    try {
      props.onChange(await api.keepAlive(session.id, Number(value)));
    } catch (err) {
      props.onError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <span className="idle-status" data-testid="idle-status" title={view.title}>
      <span className="muted" data-testid="idle-stop-at">
        {view.text}
      </span>
      {view.reasons.map((reason) => (
        <span key={reason} className="idle-reason" data-testid="idle-reason">
          {reason}
        </span>
      ))}
      {(choices.length > 0 || keptAlive) && (
        <select
          className="btn small"
          aria-label="Keep this session running without activity"
          data-testid="keep-alive"
          value=""
          disabled={busy}
          onChange={(event) => void choose(event.target.value)}
        >
          <option value="">Keep running…</option>
          {choices.map((choice) => (
            <option key={choice.minutes} value={choice.minutes}>
              for {choice.label}
            </option>
          ))}
          {keptAlive && <option value="0">End keep-alive</option>}
        </select>
      )}
    </span>
  );
}

export default function Workspace(props: { sessionId: string }): JSX.Element {
  const { sessionId } = props;
  const [session, setSession] = useState<Session | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const [notFound, setNotFound] = useState(false);
  const [generation, setGeneration] = useState(0);
  const [preview, setPreview] = useState<PortRow | null>(null);
  const loadedOnce = useRef(false);

  useEffect(() => {
    let cancelled = false;
    let timer: number | undefined;
    const tick = async () => {
      try {
        let current = await api.session(sessionId);
        if (cancelled) return;
        // Opening a stopped session wakes it up: only on the first load of this view (a session
        // stopped while the view is open stays stopped; a failed one waits for the user).
        const first = !loadedOnce.current;
        loadedOnce.current = true;
        if (first && current.state === "stopped") {
          // The resume request waits while the session starts: show it waking meanwhile.
          setSession({ ...current, state: "starting" });
          current = await api.resumeSession(sessionId);
          if (cancelled) return;
        }
        setSession(current);
        setError(undefined);
        const delay = isTransitional(current.state) ? POLL_MS : current.state === "running" ? RUNNING_POLL_MS : null;
        if (delay !== null) timer = window.setTimeout(() => void tick(), delay);
      } catch (err) {
        if (cancelled) return;
        if (err instanceof ApiError && err.status === 404) {
          setNotFound(true);
          return;
        }
        setError(err);
        timer = window.setTimeout(() => void tick(), POLL_MS * 2);
      }
    };
    void tick();
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [sessionId, generation]);

  const act = async (action: () => Promise<Session | undefined>) => {
    setError(undefined);
    try {
      const next = await action();
      if (next) setSession(next);
    } catch (err) {
      setError(err);
    }
    setGeneration((g) => g + 1);
  };

  // A restore stopped the session and started it again: load it afresh (the panes reconnect).
  const onRestored = useCallback(() => setGeneration((g) => g + 1), []);
  // As for a stop: the panes go first, so that none reconnects to the session while it stops.
  const onRestoring = useCallback(() => {
    flushSync(() => setSession((current) => (current ? { ...current, state: "stopping" } : current)));
  }, []);

  const stop = () => {
    if (!session) return;
    // Unmount the panes first: octod wakes a session that is accessed while it stops, and a pane's
    // event stream reconnecting (its upstream closes as the container stops) would do exactly that.
    flushSync(() => setSession({ ...session, state: "stopping" }));
    void act(() => api.stopSession(sessionId));
  };

  let body: JSX.Element;
  if (notFound) {
    body = (
      <div className="workspace-message">
        <h2>No such session</h2>
        <p className="muted">It may have been deleted.</p>
        <Link href="/" className="btn">
          Back to sessions
        </Link>
      </div>
    );
  } else if (!session) {
    body = <div className="workspace-message muted">{error ? null : "Loading session…"}</div>;
  } else if (session.state === "running") {
    body = <Panes sessionId={sessionId} />;
  } else {
    body = <NotRunning session={session} onResume={() => void act(() => api.resumeSession(sessionId))} />;
  }

  return (
    <div className="workspace" data-testid="workspace" data-session-id={sessionId}>
      <div className="workspace-bar">
        <Link href="/" data-testid="back-to-sessions" className="btn ghost small" aria-label="Back to sessions">
          ← Sessions
        </Link>
        <span className="workspace-sep" aria-hidden="true">
          /
        </span>
        {session ? (
          <SessionLabel
            session={session}
            heading
            className="workspace-title"
            onSaved={(next) => setSession((current) => (current ? { ...current, name: next.name } : next))}
          />
        ) : (
          <h1 className="workspace-title">Session</h1>
        )}
        <span className="mono muted workspace-id">{sessionId}</span>
        {session && <StateBadge session={session} />}
        <span className="workspace-bar-right">
          {session?.state === "running" && <PortsMenu sessionId={sessionId} onPreview={setPreview} />}
          {session && session.state !== "deleting" && (
            <SnapshotsMenu sessionId={sessionId} onRestoring={onRestoring} onRestored={onRestored} />
          )}
          {session?.state === "running" && (
            <IdleStatus session={session} onChange={setSession} onError={setError} />
          )}
          {session?.state === "running" && (
            <button className="btn small" data-testid="workspace-stop" onClick={stop}>
              Stop session
            </button>
          )}
        </span>
      </div>
      {session && <DiskWarning session={session} />}
      {error !== undefined && (
        <div className="workspace-error">
          <ErrorBanner error={error} onDismiss={() => setError(undefined)} />
        </div>
      )}
      {session?.state === "running" && preview && <PreviewPane row={preview} onClose={() => setPreview(null)} />}
      {body}
    </div>
  );
}

function NotRunning(props: { session: Session; onResume: () => void }): JSX.Element {
  const { session } = props;
  if (session.state === "creating" || session.state === "starting") {
    return (
      <div className="workspace-message" data-testid="session-waking" role="status">
        <div className="spinner" aria-hidden="true" />
        <h2>{session.state === "creating" ? "Creating your session…" : "Waking up your session…"}</h2>
        <p className="muted">This usually takes a few seconds. The workspace opens when it is ready.</p>
      </div>
    );
  }
  if (session.state === "failed") {
    return (
      <div className="workspace-message">
        <h2>This session failed</h2>
        {session.reason && <p className="failure-reason mono">{session.reason}</p>}
        <button className="btn primary" data-testid="session-resume" onClick={props.onResume}>
          Try to start it again
        </button>
      </div>
    );
  }
  if (session.state === "stopped") {
    return (
      <div className="workspace-message">
        <h2>This session is stopped</h2>
        <p className="muted">Its files are kept. Resume it to continue.</p>
        <button className="btn primary" data-testid="session-resume" onClick={props.onResume}>
          Resume
        </button>
      </div>
    );
  }
  return (
    <div className="workspace-message" role="status">
      <div className="spinner" aria-hidden="true" />
      <h2>{session.state === "deleting" ? "Deleting this session…" : "Stopping this session…"}</h2>
    </div>
  );
}

function useMediaQuery(query: string): boolean {
  const [matches, setMatches] = useState(() => window.matchMedia?.(query).matches ?? false);
  useEffect(() => {
    const list = window.matchMedia?.(query);
    if (!list) return;
    const onChange = () => setMatches(list.matches);
    list.addEventListener("change", onChange);
    onChange();
    return () => list.removeEventListener("change", onChange);
  }, [query]);
  return matches;
}

function Panes(props: { sessionId: string }): JSX.Element {
  const { sessionId } = props;
  const [layout, setLayout] = useState<Layout>(loadLayout);
  const [tab, setTab] = useState<PaneId>("chat");
  const narrow = useMediaQuery(NARROW_QUERY);
  const container = useRef<HTMLDivElement>(null);

  const update = useCallback((next: Layout) => {
    setLayout(next);
    saveLayout(next);
  }, []);

  const paneContent = (id: PaneId, visible: boolean) => {
    switch (id) {
      case "chat":
        return <ChatPane sessionId={sessionId} />;
      case "files":
        return <FilesPane sessionId={sessionId} />;
      case "terminal":
        return <TerminalPane sessionId={sessionId} active={visible} />;
    }
  };

  if (narrow) {
    return (
      <div className="workspace-tabs-layout">
        <div className="pane-tabs" role="tablist" aria-label="Panes">
          {PANES.map((pane) => (
            <button
              key={pane.id}
              role="tab"
              id={`pane-tab-${pane.id}`}
              aria-selected={tab === pane.id}
              aria-controls={`pane-${pane.id}`}
              className="pane-tab"
              onClick={() => setTab(pane.id)}
            >
              {pane.label}
            </button>
          ))}
        </div>
        {PANES.map((pane) => (
          <section
            key={pane.id}
            id={`pane-${pane.id}`}
            role="tabpanel"
            aria-labelledby={`pane-tab-${pane.id}`}
            className="pane"
            hidden={tab !== pane.id}
          >
            {paneContent(pane.id, tab === pane.id)}
          </section>
        ))}
      </div>
    );
  }

  return (
    <div className="workspace-panes" ref={container}>
      {PANES.map((pane, index) => (
        <PaneWithSplitter
          key={pane.id}
          id={pane.id}
          label={pane.label}
          fraction={layout[index]}
          splitter={index < 2 ? (index as 0 | 1) : null}
          layout={layout}
          container={container}
          onLayout={update}
        >
          {paneContent(pane.id, true)}
        </PaneWithSplitter>
      ))}
    </div>
  );
}

function PaneWithSplitter(props: {
  id: PaneId;
  label: string;
  fraction: number;
  splitter: 0 | 1 | null;
  layout: Layout;
  container: React.RefObject<HTMLDivElement | null>;
  onLayout: (layout: Layout) => void;
  children: React.ReactNode;
}): JSX.Element {
  const { splitter, layout } = props;
  const drag = useRef<{ startX: number; start: Layout; width: number } | null>(null);

  const onPointerDown = (event: React.PointerEvent<HTMLDivElement>) => {
    if (event.button !== 0 || !props.container.current) return;
    event.preventDefault();
    event.currentTarget.setPointerCapture(event.pointerId);
    drag.current = { startX: event.clientX, start: layout, width: props.container.current.clientWidth };
    document.body.classList.add("resizing");
  };
  const onPointerMove = (event: React.PointerEvent<HTMLDivElement>) => {
    const state = drag.current;
    if (!state || splitter === null || state.width === 0) return;
    props.onLayout(moveSplitter(state.start, splitter, (event.clientX - state.startX) / state.width));
  };
  const endDrag = () => {
    drag.current = null;
    document.body.classList.remove("resizing");
  };
  const onKeyDown = (event: React.KeyboardEvent<HTMLDivElement>) => {
    if (splitter === null) return;
    const delta = keyDelta(event.key, event.shiftKey);
    if (delta === null) return;
    event.preventDefault();
    props.onLayout(moveSplitter(layout, splitter, delta));
  };

  return (
    <>
      <section
        className="pane"
        id={`pane-${props.id}`}
        aria-label={props.label}
        style={{ flexGrow: props.fraction, flexBasis: 0 }}
      >
        {props.children}
      </section>
      {splitter !== null && (
        <div
          className="splitter"
          role="separator"
          aria-orientation="vertical"
          aria-label={`Resize ${props.label}`}
          aria-controls={`pane-${props.id}`}
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={Math.round(props.fraction * 100)}
          tabIndex={0}
          data-testid={`splitter-${splitter}`}
          onPointerDown={onPointerDown}
          onPointerMove={onPointerMove}
          onPointerUp={endDrag}
          onPointerCancel={endDrag}
          onLostPointerCapture={endDrag}
          onKeyDown={onKeyDown}
        />
      )}
    </>
  );
}
