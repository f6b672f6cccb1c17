// The workspace's Ports menu, as pure logic: what each listening port of a session shows and
// where its "Open" and its preview pane go. A preview runs on its own origin (the content
// site, `p<port>-<id>.<site>`); the browser gets there through octod's `open` navigation,
// which trades a one-time ticket for that host's cookie.
import type { ListeningPort, SessionPorts } from "../api";

export interface PortRow {
  port: number;
  /** Where it listens, in words. */
  where: string;
  /** The navigation for a new tab, or null without previews. */
  openHref: string | null;
  /** The navigation for the preview pane (a frame of this page), or null without previews. */
  embedHref: string | null;
  /** The preview's own origin, shown to the user. */
  url: string | null;
}

/** Where a socket listens, in words. */
export function whereLabel(address: string): string {
  if (address === "0.0.0.0" || address === "::") return "all addresses";
  if (address === "127.0.0.1" || address === "::1" || address === "::ffff:127.0.0.1") return "loopback";
  return address;
}

/** `open` with the preview path and, for the pane, `embed=true`. */
export function openHref(open: string, options: { embed?: boolean; path?: string } = {}): string {
  const params = new URLSearchParams();
  if (options.path !== undefined && options.path !== "/") params.set("path", options.path);
  if (options.embed) params.set("embed", "true");
  const query = params.toString();
  return query === "" ? open : `${open}?${query}`;
}

export function portRow(port: ListeningPort): PortRow {
  const open = port.open ?? null;
  return {
    port: port.port,
    where: whereLabel(port.address),
    openHref: open === null ? null : openHref(open),
    embedHref: open === null ? null : openHref(open, { embed: true }),
    url: port.url ?? null,
  };
}

/** The rows of the menu and the line under them. */
export function portsView(ports: SessionPorts): { rows: PortRow[]; note: string | null } {
  const rows = ports.ports.map(portRow);
  let note: string | null = null;
  if (!ports.running) note = "The session is not running.";
  else if (rows.length === 0) note = "Nothing listens yet. Start a server on a port from 1024 up (e.g. python3 -m http.server 3000).";
  else if (!ports.previews) note = "Previews are off: the administrator has not configured a content site.";
  return { rows, note };
}
