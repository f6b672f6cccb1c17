// The workspace's Ports menu, as pure logic: what each listening port of a session shows and
// where its "Open" and its preview pane go. A preview runs on its own origin (the content
// site, `p<port>-<id>.<site>`); the browser gets there through octod's `open` navigation,
// which trades a one-time ticket for that host's cookie.
import type { ListeningPort, PortShare, SessionPorts } from "../api";

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
  /** Who besides the owner may open it. */
  share: PortShare;
}

/** The lifetimes a share link may be given from the menu. */
export const LINK_LIFETIMES: { label: string; seconds: number }[] = [
  { label: "1 hour", seconds: 3600 },
  { label: "1 day", seconds: 86_400 },
  { label: "7 days", seconds: 7 * 86_400 },
];

/** How long until `expiresAt` (ms since the epoch), in words: "expires in 3 h". */
export function expiresIn(expiresAt: number, now: number): string {
  const left = expiresAt - now;
  if (left <= 0) return "expired";
  const minutes = Math.ceil(left / 60_000);
  if (minutes < 60) return `expires in ${minutes} min`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `expires in ${hours} h`;
  return `expires in ${Math.round(hours / 24)} days`;
}

/** The row's sharing in a few words, or null when it is the owner's alone. */
export function shareSummary(share: PortShare, now: number): string | null {
  const links = share.links.filter((l) => l.expires_at > now).length;
  const parts: string[] = [];
  if (share.users) parts.push("shared with everyone signed in");
  if (links > 0) parts.push(links === 1 ? "1 link" : `${links} links`);
  return parts.length === 0 ? null : parts.join(", ");
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
    share: port.share ?? { users: false, links: [] },
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
