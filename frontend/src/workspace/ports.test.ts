import { describe, expect, it } from "vitest";
import { expiresIn, openHref, portsView, shareSummary, whereLabel } from "./ports";

describe("ports", () => {
  it("says where a port listens", () => {
    expect(whereLabel("0.0.0.0")).toBe("all addresses");
    expect(whereLabel("::")).toBe("all addresses");
    expect(whereLabel("127.0.0.1")).toBe("loopback");
    expect(whereLabel("::1")).toBe("loopback");
    expect(whereLabel("10.0.2.100")).toBe("10.0.2.100");
  });

  it("opens a preview in a tab, or embedded in the pane, at a path", () => {
    const open = "/api/sessions/ab12/ports/3000/open";
    expect(openHref(open)).toBe(open);
    expect(openHref(open, { embed: true })).toBe(`${open}?embed=true`);
    expect(openHref(open, { path: "/app?x=1" })).toBe(`${open}?path=%2Fapp%3Fx%3D1`);
    expect(openHref(open, { path: "/" })).toBe(open);
  });

  it("lists the ports with their previews, and says why there are none", () => {
    const view = portsView({
      running: true,
      previews: true,
      ports: [
        { port: 3000, address: "0.0.0.0", url: "https://p3000-ab12.c.example/", open: "/api/sessions/ab12/ports/3000/open" },
      ],
    });
    expect(view.note).toBeNull();
    expect(view.rows).toEqual([
      {
        port: 3000,
        where: "all addresses",
        openHref: "/api/sessions/ab12/ports/3000/open",
        embedHref: "/api/sessions/ab12/ports/3000/open?embed=true",
        url: "https://p3000-ab12.c.example/",
        share: { users: false, links: [] },
      },
    ]);
    const off = portsView({ running: true, previews: false, ports: [{ port: 8000, address: "::1" }] });
    expect(off.rows[0]?.openHref).toBeNull();
    expect(off.rows[0]?.embedHref).toBeNull();
    expect(off.note).toMatch(/Previews are off/);
    expect(portsView({ running: true, previews: true, ports: [] }).note).toMatch(/Nothing listens yet/);
    expect(portsView({ running: false, previews: true, ports: [] }).note).toMatch(/not running/);
  });

  it("says how a port is shared and when its links expire", () => {
    const now = 1_000_000_000;
    const link = (id: string, expires_at: number) => ({ id, created_by: "ann", created_at: now - 1, expires_at });
    expect(shareSummary({ users: false, links: [] }, now)).toBeNull();
    expect(shareSummary({ users: true, links: [] }, now)).toBe("shared with everyone signed in");
    expect(shareSummary({ users: false, links: [link("a", now + 10), link("b", now - 10)] }, now)).toBe("1 link");
    expect(shareSummary({ users: true, links: [link("a", now + 10), link("b", now + 20)] }, now)).toBe(
      "shared with everyone signed in, 2 links",
    );
    expect(expiresIn(now - 1, now)).toBe("expired");
    expect(expiresIn(now + 30_000, now)).toBe("expires in 1 min");
    expect(expiresIn(now + 3 * 3_600_000, now)).toBe("expires in 3 h");
    expect(expiresIn(now + 7 * 86_400_000, now)).toBe("expires in 7 days");
  });
});
