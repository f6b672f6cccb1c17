// The workspace header's Ports menu: the TCP ports listening in the session (the apps its agent or
// user started), each with "Open" (a new tab on the preview's own origin, through octod's ticket
// navigation, like the Files pane's View) and "Preview" (the same app in the preview pane of this
// page), and "Share" (with everyone signed in to Octo, or by a link that expires). The list is
// asked for only while the menu is open, then every few seconds: an idle workspace makes no
// requests for it.
import { useCallback, useEffect, useRef, useState } from "react";
import { api, errorMessage, type SessionPorts } from "../api";
import { expiresIn, LINK_LIFETIMES, portsView, shareSummary, type PortRow } from "./ports";

const POLL_MS = 4000;

export function PortsMenu(props: { sessionId: string; onPreview: (row: PortRow) => void }): JSX.Element {
  const { sessionId, onPreview } = props;
  const [open, setOpen] = useState(false);
  const [ports, setPorts] = useState<SessionPorts | null>(null);
  const [error, setError] = useState<string | null>(null);
  /** The port whose sharing is shown. */
  const [sharing, setSharing] = useState<number | null>(null);
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
                <li key={row.port} data-testid="port-row" data-port={row.port} className="port-row">
                  <span className="snapshot-name mono">{row.port}</span>
                  <span className="muted snapshot-meta" title={row.url ?? undefined}>
                    {row.where}
                    {row.url ? ` · ${row.url}` : ""}
                    {shareSummary(row.share, Date.now()) && (
                      <span data-testid="port-shared"> · {shareSummary(row.share, Date.now())}</span>
                    )}
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
                    {row.embedHref && (
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
                    {row.openHref && (
                      <button
                        className="btn small"
                        data-testid="port-share"
                        aria-expanded={sharing === row.port}
                        onClick={() => setSharing((p) => (p === row.port ? null : row.port))}
                      >
                        Share
                      </button>
                    )}
                  </span>
                  {sharing === row.port && <SharePanel sessionId={sessionId} row={row} onChanged={load} />}
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
 * A port's sharing: with everyone signed in to Octo (a checkbox), and links that open it without
 * an account until they expire. A new link's URL is shown once, with Copy: only its hash is kept.
 */
function SharePanel(props: { sessionId: string; row: PortRow; onChanged: () => Promise<void> }): JSX.Element {
  const { sessionId, row, onChanged } = props;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [lifetime, setLifetime] = useState(LINK_LIFETIMES[1]?.seconds ?? 86_400);
  const [created, setCreated] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  const act = async (work: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await work();
      await onChanged();
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  const now = Date.now();
  const links = row.share.links.filter((l) => l.expires_at > now);
  return (
    <div className="port-share" data-testid="port-share-panel">
      <label className="port-share-users">
        <input
          type="checkbox"
          data-testid="port-share-users"
          checked={row.share.users}
          disabled={busy}
          onChange={(event) => {
            const users = event.target.checked;
            void act(() => api.sharePort(sessionId, row.port, users));
          }}
        />{" "}
        Everyone signed in to Octo may open it
      </label>
      <div className="port-share-link">
        <select
          aria-label="How long the link works"
          data-testid="port-link-lifetime"
          value={lifetime}
          disabled={busy}
          onChange={(event) => setLifetime(Number(event.target.value))}
        >
          {LINK_LIFETIMES.map((l) => (
            <option key={l.seconds} value={l.seconds}>
              {l.label}
            </option>
          ))}
        </select>
        <button
          className="btn small"
          data-testid="port-link-create"
          disabled={busy}
          onClick={() =>
            void act(async () => {
              const link = await api.createShareLink(sessionId, row.port, lifetime);
              setCreated(link.url);
              setCopied(false);
            })
          }
        >
          Create link
        </button>
      </div>
      {created && (
        <div className="port-share-created">
          <input className="mono" readOnly value={created} data-testid="port-link-url" aria-label="The new link" onFocus={(e) => e.target.select()} />
          <button
            className="btn small"
            data-testid="port-link-copy"
            onClick={() => {
              void navigator.clipboard?.writeText(created).then(() => setCopied(true), () => setCopied(false));
            }}
          >
            {copied ? "Copied" : "Copy"}
          </button>
          <p className="muted">Anyone with this link can open the app until it expires. It is shown only now.</p>
        </div>
      )}
      {links.length > 0 && (
        <ul className="port-share-links">
          {links.map((link) => (
            <li key={link.id} data-testid="port-link" data-link={link.id}>
              <span className="muted">
                Link by {link.created_by}, {expiresIn(link.expires_at, now)}
              </span>
              <button
                className="btn small ghost"
                data-testid="port-link-revoke"
                disabled={busy}
                onClick={() => void act(() => api.revokeShareLink(sessionId, row.port, link.id))}
              >
                Revoke
              </button>
            </li>
          ))}
        </ul>
      )}
      {error && (
        <div className="danger" role="alert" data-testid="port-share-error">
          {error}
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
  // The frame starts on the content origin: the UI's own pages may not be framed (and its
  // frame-src names only the content site), so the ticket's URL is asked for as JSON, a new
  // one for each load (a ticket opens once).
  const [src, setSrc] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const embedHref = row.embedHref;
  useEffect(() => {
    if (!embedHref) return;
    let live = true;
    setSrc(null);
    setError(null);
    api.previewTicket(embedHref).then(
      (ticket) => {
        if (live) setSrc(ticket.url);
      },
      (err: unknown) => {
        if (live) setError(errorMessage(err));
      },
    );
    return () => {
      live = false;
    };
  }, [embedHref, generation]);
  if (!embedHref) return null;
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
      {error && (
        <div className="danger preview-error" role="alert" data-testid="preview-error">
          {error}
        </div>
      )}
      {src && (
        <iframe
          key={src}
          className="preview-frame"
          data-testid="preview-frame"
          title={`Preview of port ${row.port}`}
          src={src}
          sandbox="allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox allow-modals allow-downloads"
          referrerPolicy="no-referrer"
        />
      )}
    </div>
  );
}
