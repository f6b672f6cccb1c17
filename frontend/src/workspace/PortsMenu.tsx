// The workspace header's Ports menu: the TCP ports listening in the session (the apps its agent or
// user started), each with "Open" (a new tab on the preview's own origin, through octod's ticket
// navigation, like the Files pane's View) and "Preview" (the same app in the preview pane of this
// page). The list is asked for only while the menu is open, then every few seconds: an idle
// workspace makes no requests for it.
import { useCallback, useEffect, useRef, useState } from "react";
import { api, errorMessage, type SessionPorts } from "../api";
import { portsView, type PortRow } from "./ports";

const POLL_MS = 4000;
/** The embedded preview pane: off until its frame loads through Caddy in Chromium (the package
 * check's frame ended on `chrome-error://`); Open in a new tab works. */
const EMBEDDED_PREVIEW = false;

export function PortsMenu(props: { sessionId: string; onPreview: (row: PortRow) => void }): JSX.Element {
  const { sessionId, onPreview } = props;
  const [open, setOpen] = useState(false);
  const [ports, setPorts] = useState<SessionPorts | null>(null);
  const [error, setError] = useState<string | null>(null);
  const menuRef = useRef<HTMLDivElement>(null);

  const load = useCallback(async () => {
    try {
      setPorts(await api.ports(sessionId));
      setError(null);
    } catch (err) {
      setError(errorMessage(err));
    }
  }, [sessionId]);

  useEffect(() => {
    if (!open) return;
    void load();
    const timer = window.setInterval(() => void load(), POLL_MS);
    return () => window.clearInterval(timer);
  }, [open, load]);

  useEffect(() => {
    if (!open) return;
    const onClick = (event: MouseEvent) => {
      if (menuRef.current?.contains(event.target as Node)) return;
      setOpen(false);
    };
    document.addEventListener("mousedown", onClick);
    return () => document.removeEventListener("mousedown", onClick);
  }, [open]);

  const view = ports ? portsView(ports) : null;
  return (
    <div className="menu" ref={menuRef}>
      <button
        className="btn small"
        data-testid="ports-menu"
        aria-haspopup="dialog"
        aria-expanded={open}
        onClick={() => setOpen((o) => !o)}
      >
        Ports
      </button>
      {open && (
        <div className="snapshots-popup ports-popup" role="dialog" aria-label="Ports" data-testid="ports-popup">
          {error && (
            <div className="snapshots-job danger" role="alert" data-testid="ports-error">
              {error}
            </div>
          )}
          {view === null && !error && <p className="muted snapshots-empty">Looking for listening ports…</p>}
          {view && view.rows.length > 0 && (
            <ul className="snapshots-list">
              {view.rows.map((row) => (
                <li key={row.port} data-testid="port-row" data-port={row.port}>
                  <span className="snapshot-name mono">{row.port}</span>
                  <span className="muted snapshot-meta" title={row.url ?? undefined}>
                    {row.where}
                    {row.url ? ` · ${row.url}` : ""}
                  </span>
                  <span className="snapshot-actions">
                    {row.openHref && (
                      <a
                        className="btn small"
                        data-testid="port-open"
                        href={row.openHref}
                        target="_blank"
                        rel="noopener noreferrer"
                        // The menu closes once the tab is on its way, as after Preview (the
                        // link's own navigation runs first).
                        onClick={() => window.setTimeout(() => setOpen(false), 0)}
                      >
                        Open
                      </a>
                    )}
                    {EMBEDDED_PREVIEW && row.embedHref && (
                      <button
                        className="btn small"
                        data-testid="port-preview"
                        onClick={() => {
                          setOpen(false);
                          onPreview(row);
                        }}
                      >
                        Preview
                      </button>
                    )}
                  </span>
                </li>
              ))}
            </ul>
          )}
          {view?.note && (
            <p className="muted snapshots-quota" data-testid="ports-note">
              {view.note}
            </p>
          )}
        </div>
      )}
    </div>
  );
}

/**
 * The preview pane: the app in a frame of its own origin, above the panes. The frame may run its
 * scripts and forms on that origin, but not navigate this page.
 */
export function PreviewPane(props: { row: PortRow; onClose: () => void }): JSX.Element | null {
  const { row } = props;
  const [generation, setGeneration] = useState(0);
  if (!row.embedHref) return null;
  return (
    <div className="preview-pane" data-testid="preview-pane" data-port={row.port}>
      <div className="preview-bar">
        <span className="mono">Port {row.port}</span>
        {row.url && <span className="muted preview-url">{row.url}</span>}
        <span className="preview-actions">
          {row.openHref && (
            <a className="btn small" href={row.openHref} target="_blank" rel="noopener noreferrer">
              Open in a tab
            </a>
          )}
          <button className="btn small" data-testid="preview-reload" onClick={() => setGeneration((g) => g + 1)}>
            Reload
          </button>
          <button className="btn small ghost" data-testid="preview-close" onClick={props.onClose} aria-label="Close the preview">
            Close
          </button>
        </span>
      </div>
      <iframe
        key={generation}
        className="preview-frame"
        data-testid="preview-frame"
        title={`Preview of port ${row.port}`}
        src={row.embedHref}
        sandbox="allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox allow-modals allow-downloads"
        referrerPolicy="no-referrer"
      />
    </div>
  );
}
