// @vitest-environment jsdom
// The shell's sign-in flow against a scripted server: the fetch answers are real `Response`s, the
// rendering is React's, the events are the ones `apiFetch` dispatches.
import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { App } from "./App";
import { apiFetch, ApiError } from "./api";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

type Handler = (url: string, init: RequestInit) => Response;
let handler: Handler;
let root: Root;
let container: HTMLDivElement;

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
const user = { name: "ann", role: "user", disabled: false, created_at: 0 };

beforeEach(() => {
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => handler(url, init));
  window.localStorage.clear();
  window.history.replaceState(null, "", "/");
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
  vi.unstubAllGlobals();
});

const testid = (id: string) => container.querySelector(`[data-testid="${id}"]`);

async function render() {
  await act(async () => root.render(<App />));
}

async function settle() {
  await act(async () => {
    await new Promise((resolve) => setTimeout(resolve, 0));
  });
}

describe("App", () => {
  it("shows sign-in without asking the server when this browser never signed in", async () => {
    const calls: string[] = [];
    handler = (url) => {
      calls.push(url);
      return json(200, []);
    };
    await render();
    expect(testid("login-username")).not.toBeNull();
    // Only the public sign-in options (never 401), not /api/me.
    expect(calls).toEqual(["/api/auth/providers"]);
  });

  it("coming back from a provider's sign-in, loads the user, remembers the sign-in and goes on to next", async () => {
    window.history.replaceState(null, "", "/login?signed_in=1&next=%2Faccount");
    handler = (url) => (url === "/api/me" ? json(200, { ...user, identity_provider: "corp" }) : json(200, []));
    await render();
    await settle();
    expect(window.location.pathname).toBe("/account");
    expect(window.localStorage.getItem("octo.signedIn")).toBe("1");
    expect(testid("account-provider")?.textContent).toBe("corp");
    window.history.replaceState(null, "", "/");
  });

  it("offers the providers, shows a refused sign-in's message and asks for an invite code", async () => {
    window.history.replaceState(null, "", "/login?oidc_error=invite_required&provider=corp");
    handler = (url) => {
      if (url === "/api/auth/providers")
        return json(200, { local_passwords: false, providers: [{ id: "corp", name: "Corp SSO" }] });
      return json(404, { error: { code: "not_found", message: "no" } });
    };
    await render();
    await settle();
    expect(testid("error")?.textContent).toContain("Your first sign-in with Corp SSO needs an invite code");
    // Passwords are off: no password form.
    expect(testid("login-username")).toBeNull();
    const input = testid("oidc-invite") as HTMLInputElement;
    await act(async () => {
      const setValue = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")?.set;
      setValue?.call(input, "code 1");
      input.dispatchEvent(new Event("input", { bubbles: true }));
    });
    const link = testid("oidc-corp") as HTMLAnchorElement;
    expect(link.textContent).toBe("Continue with Corp SSO");
    expect(link.getAttribute("href")).toBe("/api/auth/oidc/corp/start?invite=code+1");
    window.history.replaceState(null, "", "/");
  });

  it("goes back to sign-in with a message when the login expires", async () => {
    window.localStorage.setItem("octo.signedIn", "1");
    let signedIn = true;
    handler = (url) => {
      if (!signedIn) return json(401, { error: { code: "unauthenticated", message: "sign in" } });
      if (url === "/api/me") return json(200, user);
      return json(200, []);
    };
    await render();
    await settle();
    expect(testid("account-menu")?.textContent).toContain("ann");

    signedIn = false;
    await act(async () => {
      await apiFetch("/api/sessions").catch((err: unknown) => expect(err).toBeInstanceOf(ApiError));
    });
    expect(testid("login-username")).not.toBeNull();
    expect(testid("login-notice")?.textContent).toMatch(/expired/);
    expect(window.localStorage.getItem("octo.signedIn")).toBe("expired");
  });

  it("a reload after the 401 still says the sign-in expired, without asking the server", async () => {
    window.localStorage.setItem("octo.signedIn", "expired");
    const asked: string[] = [];
    handler = (url) => {
      asked.push(url);
      return json(401, { error: { code: "unauthenticated", message: "sign in" } });
    };
    await render();
    await settle();
    expect(testid("login-notice")?.textContent).toMatch(/expired/);
    expect(asked).not.toContain("/api/me");
  });

  it("shows the API's error for a wrong password, and signs in with the right one", async () => {
    handler = (url, init) => {
      if (url === "/api/auth/login") {
        const body = JSON.parse(String(init.body)) as { password: string };
        return body.password === "right"
          ? json(200, user)
          : json(401, { error: { code: "bad_credentials", message: "wrong user name or password" } });
      }
      return json(200, []);
    };
    await render();
    const submit = async (password: string) => {
      const input = (id: string, value: string) => {
        const element = testid(id) as HTMLInputElement;
        const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")?.set;
        setter?.call(element, value);
        element.dispatchEvent(new Event("input", { bubbles: true }));
      };
      await act(async () => {
        input("login-username", "ann");
        input("login-password", password);
      });
      await act(async () => {
        (testid("login-submit") as HTMLButtonElement).click();
      });
      await settle();
    };
    await submit("wrong");
    expect(testid("error")?.textContent).toContain("wrong user name or password");
    expect(testid("error")?.textContent).toContain("bad_credentials");
    await submit("right");
    expect(testid("account-menu")).not.toBeNull();
    expect(window.localStorage.getItem("octo.signedIn")).toBe("1");
  });
});
