// A table of sessions with their name (renamed in place), live state, last activity and the
// actions the state allows (open, stop, resume, delete with confirmation). Used by the picker
// and by the admin's all-sessions page.
import { useState } from "react";
import { api, type Session, type SessionState, type Template } from "../api";
import { actionsFor, diskView, formatTime, isWaking, limitsView, stateView } from "../sessions";
import { routePath } from "../router";
import { ConfirmDialog } from "./ConfirmDialog";
import { ErrorBanner } from "./ErrorBanner";
import { Link } from "./Link";
import { SessionLabel } from "./SessionLabel";

export function StateBadge(props: { session: Session }): JSX.Element {
  const view = stateView(props.session.state);
  return (
    <span className={`badge ${view.tone}`} data-testid="session-state" title={props.session.reason}>
      {view.label}
    </span>
  );
}

/** The session's resource limits, and a note when the host does not enforce some. */
function SessionLimits(props: { session: Session }): JSX.Element | null {
  // A session from an older octod (or a test's fake API) may come without limits.
  if (props.session.limits === undefined) return null;
  const view = limitsView(props.session.limits);
  if (view.text === null) return null;
  return (
    <div className="muted small-text" data-testid="session-limits" title={view.note ?? undefined}>
      {view.text}
      {view.note !== null && " (not enforced)"}
    </div>
  );
}

/** The session's home size, and a warning when its owner nears or passes the storage quota. */
export function SessionDisk(props: { session: Session }): JSX.Element | null {
  const view = diskView(props.session.disk);
  if (view.text === null && view.warning === null) return null;
  return (
    <div className="small-text" data-testid="session-disk">
      {view.text !== null && <span className="muted">{view.text}</span>}
      {view.warning !== null && (
        <div className={`disk-warning ${view.tone ?? ""}`} role="status" data-testid="disk-warning">
          {view.warning}
        </div>
      )}
    </div>
  );
}

export function templateName(templates: readonly Template[] | null, id: string): string {
  return templates?.find((t) => t.id === id)?.name ?? id;
}

export function SessionTable(props: {
  sessions: Session[];
  templates: Template[] | null;
  showOwner?: boolean;
  onChanged: (id: string, next: Session | null) => void;
}): JSX.Element {
  // While an action's request runs (the server waits a while for it), the row shows the state the
  // action moves through, so the user sees at once that something is happening.
  const [pending, setPending] = useState<Record<string, SessionState>>({});
  const [error, setError] = useState<unknown>(undefined);
  const [confirmDelete, setConfirmDelete] = useState<Session | null>(null);

  const run = async (
    session: Session,
    through: SessionState,
    action: () => Promise<Session | undefined>,
    gone = false,
  ) => {
    setPending((p) => ({ ...p, [session.id]: through }));
    setError(undefined);
    try {
      const next = await action();
      props.onChanged(session.id, next ?? (gone ? null : session));
    } catch (err) {
      setError(err);
      props.onChanged(session.id, session);
    } finally {
      setPending((p) => {
        const copy = { ...p };
        delete copy[session.id];
        return copy;
      });
    }
  };

  return (
    <>
      <ErrorBanner error={error} onDismiss={() => setError(undefined)} />
      <table className="table sessions-table">
        <thead>
          <tr>
            <th>Session</th>
            {props.showOwner && <th>Owner</th>}
            <th>State</th>
            <th>Last active</th>
            <th className="actions">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {props.sessions.map((listed) => {
            const through = pending[listed.id];
            const session = through ? { ...listed, state: through } : listed;
            const actions = actionsFor(session.state);
            const busy = through !== undefined;
            const name = session.name;
            return (
              <tr key={session.id} data-testid="session-row" data-session-id={session.id} data-state={session.state}>
                <td>
                  <SessionLabel
                    session={listed}
                    withDescription
                    onSaved={(next) => props.onChanged(session.id, next)}
                  />
                  <div className="mono muted small-text">
                    {templateName(props.templates, session.template)} · {session.id}
                  </div>
                  <SessionLimits session={session} />
                  <SessionDisk session={session} />
                </td>
                {props.showOwner && <td>{session.owner}</td>}
                <td>
                  <StateBadge session={session} />
                  {isWaking(session.state) && (
                    <span className="muted small-text waking" data-testid="session-waking">
                      {" "}
                      starting up…
                    </span>
                  )}
                  {session.state === "failed" && session.reason && (
                    <div className="small-text failure-reason">{session.reason}</div>
                  )}
                </td>
                <td
                  className="muted"
                  data-testid="session-last-active"
                  title={`Last active ${new Date(session.last_active_at).toLocaleString()}; created ${new Date(session.created_at).toLocaleString()}`}
                >
                  {formatTime(session.last_active_at)}
                </td>
                <td className="actions">
                  {actions.open && (
                    <Link
                      className="btn small primary"
                      data-testid="session-open"
                      href={routePath({ name: "workspace", sessionId: session.id })}
                      aria-label={`Open ${name} ${session.id}`}
                    >
                      Open
                    </Link>
                  )}
                  {actions.stop && (
                    <button
                      className="btn small"
                      data-testid="session-stop"
                      disabled={busy}
                      onClick={() => void run(listed, "stopping", () => api.stopSession(session.id))}
                    >
                      Stop
                    </button>
                  )}
                  {actions.resume && (
                    <button
                      className="btn small"
                      data-testid="session-resume"
                      disabled={busy}
                      onClick={() => void run(listed, "starting", () => api.resumeSession(session.id))}
                    >
                      Resume
                    </button>
                  )}
                  {actions.delete && (
                    <button
                      className="btn small danger"
                      data-testid="session-delete"
                      disabled={busy}
                      onClick={() => setConfirmDelete(session)}
                    >
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {confirmDelete && (
        <ConfirmDialog
          title="Delete this session?"
          confirmLabel="Delete session"
          danger
          onCancel={() => setConfirmDelete(null)}
          onConfirm={() => {
            const session = confirmDelete;
            setConfirmDelete(null);
            void run(session, "deleting", () => api.deleteSession(session.id), true);
          }}
        >
          <p>
            {confirmDelete.name} <span className="mono">{confirmDelete.id}</span>{" "}
            and all files in its workspace are deleted. This cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </>
  );
}
