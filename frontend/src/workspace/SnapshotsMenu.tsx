// The workspace header's Snapshots menu: take a named snapshot of the session's home, restore one
// (after a confirmation: the home's current files are replaced), delete one. The list and the last
// job's progress come from `GET /api/sessions/{id}/snapshots`, polled while the menu is open (and
// while a job runs, so that a finished restore reloads the workspace).
import { useCallback, useEffect, useRef, useState } from "react";
import { api, errorMessage, type Snapshot, type SnapshotList } from "../api";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { navigate } from "../router";
import { binarySize, formatTime } from "../sessions";
import { defaultSnapshotName, jobLine } from "./snapshots";

const POLL_MS = 1000;

export function SnapshotsMenu(props: {
  sessionId: string;
  /** Before a restore is asked for: the panes go (their reconnects would hit the stopping session). */
  onRestoring: () => void;
  /** After a restore ended (or was refused): the session is loaded again. */
  onRestored: () => void;
}): JSX.Element {
  const { sessionId, onRestoring, onRestored } = props;
  const [open, setOpen] = useState(false);
  const [list, setList] = useState<SnapshotList | null>(null);
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [confirm, setConfirm] = useState<{ kind: "restore" | "delete"; snapshot: Snapshot } | null>(null);
  const menuRef = useRef<HTMLDivElement>(null);
  // The restore whose end reloads the workspace.
  const restoring = useRef<string | null>(null);
  const running = list?.job?.state === "running";

  const load = useCallback(async () => {
    try {
      const next = await api.snapshots(sessionId);
      setList(next);
      const job = next.job;
      if (restoring.current && job && job.snapshot === restoring.current && job.state !== "running") {
        restoring.current = null;
        onRestored();
      }
    } catch (err) {
      setError(errorMessage(err));
    }
  }, [sessionId, onRestored]);

  useEffect(() => {
    if (!open && !running) return;
    void load();
    const timer = window.setInterval(() => void load(), POLL_MS);
    return () => window.clearInterval(timer);
  }, [open, running, load]);

  // A click outside closes the menu (not while a confirmation is open).
  useEffect(() => {
    if (!open) return;
    const onClick = (event: MouseEvent) => {
      if (confirm || menuRef.current?.contains(event.target as Node)) return;
      setOpen(false);
    };
    document.addEventListener("mousedown", onClick);
    return () => document.removeEventListener("mousedown", onClick);
  }, [open, confirm]);

  const take = async () => {
    setError(null);
    try {
      await api.createSnapshot(sessionId, name.trim() === "" ? defaultSnapshotName(new Date()) : name);
      setName("");
      await load();
    } catch (err) {
      setError(errorMessage(err));
    }
  };

  const restore = async (snapshot: Snapshot) => {
    setConfirm(null);
    setError(null);
    try {
      restoring.current = snapshot.id;
      onRestoring();
      await api.restoreSnapshot(sessionId, snapshot.id);
      await load();
    } catch (err) {
      restoring.current = null;
      setError(errorMessage(err));
      onRestored();
    }
  };

  // A fork opens in its own workspace, which shows it starting until its home is filled in.
  const fork = async (snapshot?: Snapshot) => {
    setError(null);
    try {
      const forked = await api.forkSession(sessionId, snapshot?.id);
      setOpen(false);
      navigate(`/w/${encodeURIComponent(forked.id)}`);
    } catch (err) {
      setError(errorMessage(err));
    }
  };

  const remove = async (snapshot: Snapshot) => {
    setConfirm(null);
    setError(null);
    try {
      await api.deleteSnapshot(sessionId, snapshot.id);
      await load();
    } catch (err) {
      setError(errorMessage(err));
    }
  };

  const job = list?.job ? jobLine(list.job) : null;
  return (
    <div className="menu" ref={menuRef}>
      <button
        className="btn small"
        data-testid="snapshots-menu"
        aria-haspopup="dialog"
        aria-expanded={open}
        onClick={() => setOpen((o) => !o)}
      >
        Snapshots{running ? " …" : ""}
      </button>
      {open && (
        <div className="snapshots-popup" role="dialog" aria-label="Snapshots" data-testid="snapshots-popup">
          <form
            className="snapshots-take"
            onSubmit={(event) => {
              event.preventDefault();
              void take();
            }}
          >
            <input
              data-testid="snapshot-name"
              placeholder={defaultSnapshotName(new Date())}
              aria-label="Name of the new snapshot"
              maxLength={80}
              value={name}
              onChange={(event) => setName(event.target.value)}
            />
            <button className="btn primary small" type="submit" data-testid="snapshot-take" disabled={running}>
              Take snapshot
            </button>
          </form>
          <button
            className="btn small"
            data-testid="session-fork"
            disabled={running}
            title="A new session with a copy of this one's files, to try another direction"
            onClick={() => void fork()}
          >
            Fork this session as it is now
          </button>
          {job && (
            <div className={`snapshots-job ${job.tone}`} role="status" data-testid="snapshot-job" data-state={list?.job?.state}>
              {job.text}
            </div>
          )}
          {error && (
            <div className="snapshots-job danger" role="alert" data-testid="snapshot-error">
              {error}
            </div>
          )}
          {list && list.snapshots.length === 0 && <p className="muted snapshots-empty">No snapshots yet.</p>}
          {list && list.snapshots.length > 0 && (
            <ul className="snapshots-list">
              {[...list.snapshots].reverse().map((s) => (
                <li key={s.id} data-testid="snapshot-row" data-snapshot-id={s.id}>
                  <span className="snapshot-name" data-testid="snapshot-row-name">
                    {s.name}
                  </span>
                  <span className="muted snapshot-meta">
                    {binarySize(s.size_bytes)} · {formatTime(s.created_at)}
                  </span>
                  <span className="snapshot-actions">
                    <button
                      className="btn small"
                      data-testid="snapshot-restore"
                      disabled={running}
                      onClick={() => setConfirm({ kind: "restore", snapshot: s })}
                    >
                      Restore
                    </button>
                    <button
                      className="btn small"
                      data-testid="snapshot-fork"
                      disabled={running}
                      title="A new session with this snapshot's files"
                      onClick={() => void fork(s)}
                    >
                      Fork
                    </button>
                    <button
                      className="btn small ghost"
                      data-testid="snapshot-delete"
                      disabled={running}
                      onClick={() => setConfirm({ kind: "delete", snapshot: s })}
                    >
                      Delete
                    </button>
                  </span>
                </li>
              ))}
            </ul>
          )}
          {list && (
            <p className="muted snapshots-quota">
              Your snapshots take {binarySize(list.used_bytes)}
              {list.quota_bytes !== undefined ? ` of ${binarySize(list.quota_bytes)}` : ""}.
            </p>
          )}
        </div>
      )}
      {confirm?.kind === "restore" && (
        <ConfirmDialog
          title={`Restore “${confirm.snapshot.name}”?`}
          confirmLabel="Restore"
          danger
          onConfirm={() => void restore(confirm.snapshot)}
          onCancel={() => setConfirm(null)}
        >
          The session stops, its home is replaced by this snapshot, and it starts again. Files changed
          since {formatTime(confirm.snapshot.created_at)} are lost, unless you take a snapshot first.
        </ConfirmDialog>
      )}
      {confirm?.kind === "delete" && (
        <ConfirmDialog
          title={`Delete “${confirm.snapshot.name}”?`}
          confirmLabel="Delete"
          danger
          onConfirm={() => void remove(confirm.snapshot)}
          onCancel={() => setConfirm(null)}
        >
          The snapshot is gone for good; the session's home is not touched.
        </ConfirmDialog>
      )}
    </div>
  );
}
