import { describe, expect, it } from "vitest";
import type { Invite } from "../api";
import { inviteLink, inviteStatus } from "./invites";
import { matchRoute } from "../router";

const invite = (over: Partial<Invite>): Invite => ({
  code: "c",
  role: "user",
  uses_left: 1,
  expires_at: null,
  created_by: "admin",
  created_at: 0,
  ...over,
});

describe("inviteStatus", () => {
  it("tells valid, expired and used-up codes apart", () => {
    expect(inviteStatus(invite({}), 1000)).toBe("valid");
    expect(inviteStatus(invite({ expires_at: 2000 }), 1000)).toBe("valid");
    expect(inviteStatus(invite({ expires_at: 1000 }), 1000)).toBe("expired");
    expect(inviteStatus(invite({ uses_left: 0 }), 1000)).toBe("used up");
  });
});

describe("inviteLink", () => {
  it("opens the register page with the code", () => {
    const link = inviteLink("https://octo.example", "a+b/c");
    expect(matchRoute(link.replace("https://octo.example", ""))).toEqual({ name: "register", invite: "a+b/c" });
  });
});
