// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError } from "./api";
import {
  curlExample,
  DEFAULT_EXPIRY_DAYS,
  DEFAULT_SCOPES,
  describeAgo,
  describeLastUsed,
  describeSpan,
  expiryView,
  scopesFor,
  sortTokens,
  tokenNameProblem,
  tokenRequest,
  tokensApi,
  type ApiToken,
  type Scope,
} from "./tokens";

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);

const token = (over: Partial<ApiToken> = {}): ApiToken => ({
  id: "0123456789abcdef",
  user: "ann",
  name: "ci",
  scopes: [...DEFAULT_SCOPES],
  created_at: NOW - DAY,
  expires_at: NOW + 29 * DAY,
  last_used_at: null,
  ...over,
});

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("scopes offered", () => {
  it("offers admin only to admins, in one fixed order", () => {
    expect(scopesFor("user").map((s) => s.scope)).toEqual(["sessions:read", "sessions:write", "sessions:connect"]);
    expect(scopesFor("admin").map((s) => s.scope)).toEqual([
      "sessions:read",
      "sessions:write",
      "sessions:connect",
      "admin",
    ]);
  });

  it("checks every session scope by default and never admin", () => {
    expect(DEFAULT_SCOPES).toEqual(scopesFor("user").map((s) => s.scope));
    expect(DEFAULT_SCOPES).not.toContain("admin");
  });
});

describe("tokenNameProblem", () => {
  const check = (name: string, problem: RegExp | null) => {
    const found = tokenNameProblem(name);
    if (problem === null) expect(found, JSON.stringify(name)).toBeNull();
    else expect(found, JSON.stringify(name)).toMatch(problem);
  };

  it("wants 1 to 80 characters after trimming, counted as characters, on one line", () => {
    check("ci", null);
    check("  ci  ", null);
    check("", /needs a name/);
    check(" \t ", /needs a name/);
    check("x".repeat(80), null);
    check(`  ${"x".repeat(80)}  `, null);
    check("x".repeat(81), /at most 80/);
    // 80 emoji are 160 UTF-16 units but 80 characters.
    check("🐙".repeat(80), null);
    check("🐙".repeat(81), /at most 80/);
    check("ci\nlaptop", /control characters/);
    check("ci\u0007", /control characters/);
  });
});

describe("tokenRequest", () => {
  const form = (over: { name?: string; scopes?: Scope[]; days?: number } = {}) => ({
    name: over.name ?? "ci",
    scopes: new Set(over.scopes ?? DEFAULT_SCOPES),
    days: over.days ?? DEFAULT_EXPIRY_DAYS,
  });

  it("makes the default form into the request the API expects", () => {
    expect(tokenRequest(form({ name: "  ci  " }), "user")).toEqual({
      request: {
        name: "ci",
        scopes: ["sessions:read", "sessions:write", "sessions:connect"],
        expires_in_days: 30,
      },
    });
  });

  it("sends the scopes in their fixed order, whatever order they were ticked in", () => {
    const result = tokenRequest(form({ scopes: ["sessions:connect", "admin", "sessions:read"] }), "admin");
    expect(result).toEqual({
      request: { name: "ci", scopes: ["sessions:read", "sessions:connect", "admin"], expires_in_days: 30 },
    });
  });

  it("never sends admin for a user who is not an admin", () => {
    expect(tokenRequest(form({ scopes: ["admin", "sessions:read"] }), "user")).toEqual({
      request: { name: "ci", scopes: ["sessions:read"], expires_in_days: 30 },
    });
    expect(tokenRequest(form({ scopes: ["admin"] }), "user")).toEqual({ problem: "Choose at least one scope." });
  });

  it("refuses no scopes, a bad name and an expiry that is not a choice", () => {
    expect(tokenRequest(form({ scopes: [] }), "user")).toEqual({ problem: "Choose at least one scope." });
    expect(tokenRequest(form({ name: " " }), "user")).toEqual({ problem: "A token needs a name." });
    expect(tokenRequest(form({ days: 0 }), "user")).toHaveProperty("problem");
    expect(tokenRequest(form({ days: 366 }), "user")).toHaveProperty("problem");
    for (const days of [7, 30, 90, 365]) {
      expect(tokenRequest(form({ days }), "user")).toHaveProperty("request.expires_in_days", days);
    }
  });
});

describe("relative times", () => {
  it("describes a span in its largest whole unit", () => {
    const cases: [number, string][] = [
      [0, "0 min"],
      [5 * MIN, "5 min"],
      [59 * MIN, "59 min"],
      [59 * MIN + 50_000, "1 h"],
      [90 * MIN - 1, "1 h"],
      [3 * HOUR, "3 h"],
      [23 * HOUR + 40 * MIN, "1 day"],
      [DAY, "1 day"],
      [30 * DAY - 5, "30 days"],
      [365 * DAY, "365 days"],
    ];
    for (const [ms, text] of cases) expect(describeSpan(ms), `${ms} ms`).toBe(text);
  });

  it("says just now for under a minute ago, and for a time a little ahead (clock skew)", () => {
    expect(describeAgo(NOW, NOW)).toBe("just now");
    expect(describeAgo(NOW - 59_000, NOW)).toBe("just now");
    expect(describeAgo(NOW + 5_000, NOW)).toBe("just now");
    expect(describeAgo(NOW - 3 * MIN, NOW)).toBe("3 min ago");
    expect(describeAgo(NOW - 2 * DAY, NOW)).toBe("2 days ago");
  });

  it("tells a token that still works from one that expired, at the exact instant too", () => {
    const created = token({ created_at: NOW, expires_at: NOW + 30 * DAY });
    expect(expiryView(created, NOW + 5)).toEqual({ expired: false, text: "in 30 days" });
    expect(expiryView(token({ expires_at: NOW + 30_000 }), NOW)).toEqual({ expired: false, text: "in under a minute" });
    expect(expiryView(token({ expires_at: NOW + 1 }), NOW)).toEqual({ expired: false, text: "in under a minute" });
    expect(expiryView(token({ expires_at: NOW }), NOW)).toEqual({ expired: true, text: "just now" });
    expect(expiryView(token({ expires_at: NOW - 2 * HOUR }), NOW)).toEqual({ expired: true, text: "2 h ago" });
  });

  it("says never for a token not used yet", () => {
    expect(describeLastUsed(token({ last_used_at: null }), NOW)).toBe("never");
    expect(describeLastUsed(token({ last_used_at: NOW - 10 * MIN }), NOW)).toBe("10 min ago");
  });
});

describe("sortTokens", () => {
  it("puts the newest first, then orders by id", () => {
    const list = [
      token({ id: "b", created_at: 1 }),
      token({ id: "c", created_at: 3 }),
      token({ id: "a", created_at: 1 }),
    ];
    expect(sortTokens(list).map((t) => t.id)).toEqual(["c", "a", "b"]);
  });
});

describe("curlExample", () => {
  it("lists sessions on this site with the token from the environment", () => {
    expect(curlExample("https://octo.example")).toBe(
      'curl -H "Authorization: Bearer $OCTO_TOKEN" https://octo.example/api/sessions',
    );
  });
});

describe("tokensApi", () => {
  type Call = { url: string; method: string; body: unknown };
  function serve(status: number, body: unknown): Call[] {
    const calls: Call[] = [];
    vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
      calls.push({ url, method: init.method ?? "GET", body: init.body ? JSON.parse(String(init.body)) : undefined });
      return new Response(status === 204 ? null : JSON.stringify(body), {
        status,
        headers: { "Content-Type": "application/json" },
      });
    });
    return calls;
  }

  it("lists, creates and revokes at the contract's routes", async () => {
    let calls = serve(200, [token()]);
    expect(await tokensApi.list()).toEqual([token()]);
    expect(calls).toEqual([{ url: "/api/me/tokens", method: "GET", body: undefined }]);

    const created = { token: `octo_${"a".repeat(16)}_${"b".repeat(64)}`, info: token() };
    calls = serve(201, created);
    const request = { name: "ci", scopes: ["sessions:read" as const], expires_in_days: 7 };
    expect(await tokensApi.create(request)).toEqual(created);
    expect(calls).toEqual([{ url: "/api/me/tokens", method: "POST", body: request }]);

    calls = serve(204, null);
    expect(await tokensApi.revoke("a/b")).toBeUndefined();
    expect(calls).toEqual([{ url: "/api/me/tokens/a%2Fb", method: "DELETE", body: undefined }]);
  });

  it("throws the API's error, e.g. the per-user limit", async () => {
    serve(409, { error: { code: "too_many_tokens", message: "at most 50 tokens per user" } });
    const err = await tokensApi.create({ name: "ci", scopes: ["sessions:read"] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 409, code: "too_many_tokens", message: "at most 50 tokens per user" });
  });
});
