// Invite code helpers for the admin page.
import type { Invite } from "../api";

const DAY = 86400;

export const EXPIRY_CHOICES: readonly { label: string; seconds: number | null }[] = [
  { label: "1 hour", seconds: 3600 },
  { label: "1 day", seconds: DAY },
  { label: "7 days", seconds: 7 * DAY },
  { label: "30 days", seconds: 30 * DAY },
  { label: "Never", seconds: null },
];

/** The sign-up page's address with the code filled in. */
export function inviteLink(origin: string, code: string): string {
  return `${origin}/register?invite=${encodeURIComponent(code)}`;
}

/** Whether a code can still be used at `now` (ms). */
export function inviteStatus(invite: Invite, now: number): "valid" | "expired" | "used up" {
  if (invite.expires_at !== null && invite.expires_at <= now) return "expired";
  if (invite.uses_left === 0) return "used up";
  return "valid";
}
