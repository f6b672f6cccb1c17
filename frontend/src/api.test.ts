// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, apiFetch, oidcErrorMessage, oidcStartUrl, parseError, safeNext, UNAUTHORIZED_EVENT } from "./api";

type Call = { url: string; init: RequestInit };

function serve(status: number, body: string, contentType = "application/json"): Call[] {
  const calls: Call[] = [];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return new Response(status === 204 ? null : body, { status, headers: { "Content-Type": contentType } });
  });
  return calls;
}

async function thrown(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error("expected the call to throw");
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("apiFetch", () => {
  it("sends JSON and parses the answer", async () => {
    const calls = serve(200, '{"name":"ann","role":"user"}');
    const user = await apiFetch<{ name: string }>("/api/auth/login", { method: "POST", json: { username: "ann" } });
    expect(user.name).toBe("ann");
    expect(calls).toHaveLength(1);
    expect(calls[0].init.method).toBe("POST");
    expect(calls[0].init.body).toBe('{"username":"ann"}');
    expect(new Headers(calls[0].init.headers).get("Content-Type")).toBe("application/json");
    expect(calls[0].init.credentials).toBe("same-origin");
  });

  it("returns undefined for 204", async () => {
    serve(204, "");
    expect(await apiFetch("/api/me/password", { method: "POST" })).toBeUndefined();
  });

  it("throws the API's error shape", async () => {
    serve(409, '{"error":{"code":"conflict","message":"the session is busy"}}');
    const err = await thrown(apiFetch("/api/sessions/x/stop", { method: "POST" }));
    expect(err.status).toBe(409);
    expect(err.code).toBe("conflict");
    expect(err.message).toBe("the session is busy");
  });

  it("dispatches octo:unauthorized on 401 outside /api/auth/", async () => {
    const seen: string[] = [];
    const listener = (event: Event) => seen.push(((event as CustomEvent).detail as ApiError).code);
    window.addEventListener(UNAUTHORIZED_EVENT, listener);
    try {
      serve(401, '{"error":{"code":"unauthenticated","message":"sign in"}}');
      await thrown(apiFetch("/api/sessions"));
      expect(seen).toEqual(["unauthenticated"]);
      // A wrong password is not an expired login.
      serve(401, '{"error":{"code":"bad_credentials","message":"wrong"}}');
      const err = await thrown(apiFetch("/api/auth/login", { method: "POST", json: {} }));
      expect(err.code).toBe("bad_credentials");
      expect(seen).toEqual(["unauthenticated"]);
    } finally {
      window.removeEventListener(UNAUTHORIZED_EVENT, listener);
    }
  });

  it("turns a network failure into ApiError network", async () => {
    vi.stubGlobal("fetch", async () => {
      throw new TypeError("Failed to fetch");
    });
    const err = await thrown(apiFetch("/api/me"));
    expect(err.status).toBe(0);
    expect(err.code).toBe("network");
    expect(err.message).toContain("Failed to fetch");
  });

  it("rejects a 200 that is not JSON", async () => {
    serve(200, "<html>", "text/html");
    const err = await thrown(apiFetch("/api/me"));
    expect(err.code).toBe("bad_response");
  });
});

describe("parseError", () => {
  it("keeps a plain-text body's start", () => {
    const err = parseError(502, "Bad Gateway\n");
    expect(err.code).toBe("http_502");
    expect(err.message).toBe("HTTP 502: Bad Gateway");
  });

  it("falls back when the JSON is not the error shape", () => {
    expect(parseError(500, '{"error":"boom"}').code).toBe("http_500");
    expect(parseError(503, "").message).toBe("HTTP 503");
  });
});

describe("sign-in with a provider", () => {
  it("keeps next on this site", () => {
    expect(safeNext("/sessions/x")).toBe("/sessions/x");
    for (const bad of [null, "", "//evil.example", "https://evil.example", "/\\evil", "evil"]) expect(safeNext(bad)).toBeNull();
  });
  it("builds the start URL", () => {
    expect(oidcStartUrl("corp", null, null)).toBe("/api/auth/oidc/corp/start");
    expect(oidcStartUrl("corp", "/a?b=1", "xyz")).toBe("/api/auth/oidc/corp/start?next=%2Fa%3Fb%3D1&invite=xyz");
  });
  it("has a message for every refusal code, naming the provider", () => {
    expect(oidcErrorMessage("not_allowed", "Corp")).toContain("Your Corp account is not in a group allowed");
    expect(oidcErrorMessage("something_new", "Corp")).toContain("Something went wrong");
  });
});
