import { describe, expect, it } from "vitest";
import { matchRoute, routePath, type Route } from "./router";

describe("matchRoute", () => {
  const check = (path: string, expected: Route) => expect(matchRoute(path)).toEqual(expected);

  it("maps every page", () => {
    check("/", { name: "sessions" });
    check("/login", { name: "login" });
    check("/register", { name: "register", invite: null });
    check("/register?invite=abc%20d", { name: "register", invite: "abc d" });
    check("/account", { name: "account" });
    check("/admin", { name: "admin-users" });
    check("/admin/users", { name: "admin-users" });
    check("/admin/invites", { name: "admin-invites" });
    check("/admin/sessions", { name: "admin-sessions" });
    check("/admin/audit", { name: "admin-audit" });
    check("/w/s-123", { name: "workspace", sessionId: "s-123" });
  });

  it("ignores trailing slashes", () => {
    check("/account/", { name: "account" });
    check("/w/abc/", { name: "workspace", sessionId: "abc" });
  });

  it("reports unknown paths", () => {
    check("/nope", { name: "not-found", path: "/nope" });
    check("/w/a/b", { name: "not-found", path: "/w/a/b" });
    check("/w/%E0%A4%A", { name: "not-found", path: "/w/%E0%A4%A" });
  });

  it("is the inverse of routePath", () => {
    const routes: Route[] = [
      { name: "sessions" },
      { name: "login" },
      { name: "register", invite: null },
      { name: "register", invite: "x/y?z" },
      { name: "account" },
      { name: "workspace", sessionId: "a b/c" },
      { name: "admin-users" },
      { name: "admin-invites" },
      { name: "admin-sessions" },
      { name: "admin-audit" },
    ];
    for (const route of routes) expect(matchRoute(routePath(route))).toEqual(route);
  });
});
