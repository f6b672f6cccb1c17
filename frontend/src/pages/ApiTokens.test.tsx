// @vitest-environment jsdom
// The account page's token section against a scripted server (real `Response`s, React's rendering):
// what the list shows, the request the form sends, the token shown once, errors inline, revoking
// only after the confirmation.
import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { User } from "../api";
import type { ApiToken } from "../tokens";
import { ApiTokensSection } from "./ApiTokens";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

type Call = { url: string; method: string; body: unknown };
type Handler = (call: Call) => Response;
let handler: Handler;
let calls: Call[];
let root: Root;
let container: HTMLDivElement;

const json = (status: number, body: unknown) =>
  new Response(status === 204 ? null : JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
const DAY = 86_400_000;
const now = Date.now();
const ann: User = { name: "ann", role: "user", disabled: false, created_at: 0 };
const token = (over: Partial<ApiToken>): ApiToken => ({
  id: "0123456789abcdef",
  user: "ann",
  name: "laptop",
  scopes: ["sessions:read"],
  created_at: now - 2 * DAY,
  expires_at: now + 5 * DAY,
  last_used_at: null,
  ...over,
});
const SECRET = `octo_${"1".repeat(16)}_${"f".repeat(64)}`;

beforeEach(() => {
  calls = [];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit = {}) => {
    const call = { url, method: init.method ?? "GET", body: init.body ? JSON.parse(String(init.body)) : undefined };
    calls.push(call);
    return handler(call);
  });
  // jsdom has <dialog> but not its modal methods.
  HTMLDialogElement.prototype.showModal = function (this: HTMLDialogElement) {
    this.open = true;
  };
  HTMLDialogElement.prototype.close = function (this: HTMLDialogElement) {
    this.open = false;
  };
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
  vi.unstubAllGlobals();
});

const $ = (id: string) => container.querySelector<HTMLElement>(`[data-testid="${id}"]`);
const $$ = (id: string) => [...container.querySelectorAll<HTMLElement>(`[data-testid="${id}"]`)];

async function render(user: User = ann) {
  await act(async () => root.render(<ApiTokensSection user={user} />));
  await settle();
}

async function settle() {
  await act(async () => {
    await new Promise((resolve) => setTimeout(resolve, 0));
  });
}

async function click(element: HTMLElement | null) {
  expect(element).not.toBeNull();
  await act(async () => element?.click());
  await settle();
}

async function type(id: string, value: string) {
  const element = $(id) as HTMLInputElement;
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")?.set;
  await act(async () => {
    setter?.call(element, value);
    element.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

/** A server with a token list that creating and revoking change. */
function server(initial: ApiToken[]) {
  let list = initial.slice();
  handler = ({ url, method, body }) => {
    if (url === "/api/me/tokens" && method === "GET") return json(200, list);
    if (url === "/api/me/tokens" && method === "POST") {
      const request = body as { name: string; scopes: ApiToken["scopes"]; expires_in_days: number };
      const info = token({
        id: "1111111111111111",
        name: request.name,
        scopes: request.scopes,
        created_at: Date.now(),
        expires_at: Date.now() + request.expires_in_days * DAY,
      });
      list = [info, ...list];
      return json(201, { token: SECRET, info });
    }
    const revoked = /^\/api\/me\/tokens\/(.+)$/.exec(url);
    if (revoked && method === "DELETE") {
      const before = list.length;
      list = list.filter((t) => t.id !== revoked[1]);
      return list.length < before
        ? json(204, null)
        : json(404, { error: { code: "not_found", message: "no such token" } });
    }
    return json(500, { error: { code: "unexpected", message: `${method} ${url}` } });
  };
}

describe("ApiTokensSection", () => {
  it("lists tokens with scopes, expiry (expired visibly) and last use or never", async () => {
    server([
      token({ id: "a", name: "laptop", last_used_at: now - 3 * 60_000 }),
      token({ id: "b", name: "old", scopes: ["sessions:read", "sessions:connect"], expires_at: now - DAY }),
    ]);
    await render();
    const rows = $$("token-row");
    expect(rows.map((r) => r.dataset.tokenName)).toEqual(["laptop", "old"]);
    const [laptop, old] = rows;
    expect(laptop.dataset.expired).toBe("false");
    expect(laptop.querySelector('[data-testid="token-expires"]')?.textContent).toBe("in 5 days");
    expect(laptop.querySelector('[data-testid="token-last-used"]')?.textContent).toBe("3 min ago");
    expect(laptop.querySelector(".badge")).toBeNull();
    expect(old.dataset.expired).toBe("true");
    expect(old.querySelector(".badge")?.textContent).toBe("expired");
    expect(old.textContent).toContain("Expired 1 day ago");
    expect(old.querySelector('[data-testid="token-last-used"]')?.textContent).toBe("never");
    expect([...old.querySelectorAll(".token-scopes code")].map((c) => c.textContent)).toEqual([
      "sessions:read",
      "sessions:connect",
    ]);
    expect(old.querySelector('[data-testid="token-revoke"]')?.getAttribute("aria-label")).toBe("Revoke token old");
  });

  it("offers the admin scope only to admins, the session scopes ticked by default", async () => {
    server([]);
    await render();
    expect($("tokens-empty")).not.toBeNull();
    expect($("token-scope-admin")).toBeNull();
    for (const scope of ["sessions:read", "sessions:write", "sessions:connect"]) {
      expect(($(`token-scope-${scope}`) as HTMLInputElement).checked).toBe(true);
    }
    await act(async () => root.unmount());
    root = createRoot(container);
    await render({ ...ann, role: "admin" });
    expect(($("token-scope-admin") as HTMLInputElement | null)?.checked).toBe(false);
  });

  it("creates a token with the form's choices and shows it once, with a usage hint", async () => {
    server([]);
    await render();
    await type("token-name", "  ci  ");
    await click($("token-scope-sessions:write"));
    const expiry = $("token-expiry") as HTMLSelectElement;
    await act(async () => {
      expiry.value = "90";
      expiry.dispatchEvent(new Event("change", { bubbles: true }));
    });
    await click($("token-create"));
    expect(calls.find((c) => c.method === "POST")?.body).toEqual({
      name: "ci",
      scopes: ["sessions:read", "sessions:connect"],
      expires_in_days: 90,
    });
    const shown = $("token-value") as HTMLInputElement;
    expect(shown.value).toBe(SECRET);
    expect(shown.readOnly).toBe(true);
    expect(document.activeElement).toBe(shown);
    expect($("token-created")?.textContent).toContain("it will not be shown again");
    expect($("token-curl")?.textContent).toBe(
      `curl -H "Authorization: Bearer $OCTO_TOKEN" ${window.location.origin}/api/sessions`,
    );
    expect($$("token-row").map((r) => r.dataset.tokenName)).toEqual(["ci"]);
    expect(($("token-name") as HTMLInputElement).value).toBe("");

    await click($("token-dismiss"));
    expect($("token-created")).toBeNull();
    expect(container.textContent).not.toContain(SECRET);
    expect(document.activeElement).toBe($("token-name"));
  });

  it("shows the form's problems and the API's errors inline, sending nothing it can refuse itself", async () => {
    server([]);
    await render();
    await type("token-name", "ci");
    for (const scope of ["sessions:read", "sessions:write", "sessions:connect"]) await click($(`token-scope-${scope}`));
    await click($("token-create"));
    expect($("error")?.textContent).toContain("Choose at least one scope.");
    expect(calls.filter((c) => c.method === "POST")).toEqual([]);

    await click($("token-scope-sessions:read"));
    handler = () => json(409, { error: { code: "too_many_tokens", message: "at most 50 tokens per user" } });
    await click($("token-create"));
    expect($("error")?.textContent).toContain("at most 50 tokens per user");
    expect($("error")?.textContent).toContain("too_many_tokens");
    expect($("token-created")).toBeNull();
  });

  it("revokes only after the confirmation; a token already gone counts as revoked", async () => {
    server([token({ id: "a", name: "laptop" }), token({ id: "b", name: "ci" })]);
    await render();
    const revokeButton = (name: string) =>
      container.querySelector<HTMLElement>(`[data-token-name="${name}"] [data-testid="token-revoke"]`);

    await click(revokeButton("laptop"));
    expect(container.querySelector("dialog")?.textContent).toContain("laptop");
    await click($("confirm-cancel"));
    expect(container.querySelector("dialog")).toBeNull();
    expect(calls.filter((c) => c.method === "DELETE")).toEqual([]);

    await click(revokeButton("laptop"));
    await click($("confirm-ok"));
    expect(calls.filter((c) => c.method === "DELETE").map((c) => c.url)).toEqual(["/api/me/tokens/a"]);
    expect($$("token-row").map((r) => r.dataset.tokenName)).toEqual(["ci"]);

    // Revoked meanwhile elsewhere: the server answers 404 and the list no longer has it.
    const stale = token({ id: "gone", name: "stale" });
    const previous = handler;
    let listed = false;
    handler = (call) => {
      if (call.method === "GET" && !listed) {
        listed = true;
        return json(200, [stale]);
      }
      return previous(call);
    };
    await act(async () => root.unmount());
    root = createRoot(container);
    await render();
    await click(revokeButton("stale"));
    await click($("confirm-ok"));
    expect($("error")).toBeNull();
    expect($$("token-row").map((r) => r.dataset.tokenName)).toEqual(["ci"]);
  });
});
