// @vitest-environment jsdom
// Renaming in place against a scripted server: what is sent, what Escape and a refusal do.
import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Session } from "../api";
import { SessionLabel } from "./SessionLabel";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const session: Session = {
  id: "ab12",
  owner: "ann",
  template: "coding-copilot",
  name: "Coding Copilot",
  description: "",
  state: "running",
  desired: "running",
  created_at: 1,
  updated_at: 1,
  last_active_at: 1,
  limits: { unenforced: [] },
  urls: { opencode: "", files: "", terminal: "" },
};

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

let requests: { url: string; method: string; body: unknown }[];
let answer: () => Response;
let saved: Session[];
let root: Root;
let container: HTMLDivElement;

beforeEach(() => {
  requests = [];
  saved = [];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
    requests.push({ url, method: init.method ?? "GET", body: JSON.parse(String(init.body ?? "null")) });
    return answer();
  });
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
  vi.unstubAllGlobals();
});

const testid = (id: string) => container.querySelector<HTMLElement>(`[data-testid="${id}"]`);

async function render(withDescription = false) {
  await act(async () =>
    root.render(<SessionLabel session={session} withDescription={withDescription} onSaved={(s) => saved.push(s)} />),
  );
}

/** Types into a controlled input the way React notices. */
async function type(id: string, value: string) {
  const input = testid(id) as HTMLInputElement;
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")?.set;
  await act(async () => {
    setter?.call(input, value);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

async function click(id: string) {
  await act(async () => testid(id)?.click());
}

async function submit() {
  await act(async () => {
    testid("session-label")?.dispatchEvent(new Event("submit", { bubbles: true, cancelable: true }));
    await new Promise((resolve) => setTimeout(resolve, 0));
  });
}

describe("SessionLabel", () => {
  it("sends the changed fields and shows the answer's name", async () => {
    answer = () => json(200, { ...session, name: "Thesis", description: "ch. 2" });
    await render(true);
    expect(testid("session-name")?.textContent).toBe("Coding Copilot");
    await click("session-rename");
    await type("session-name-input", "  Thesis ");
    await type("session-description-input", "ch. 2");
    await submit();
    expect(requests).toEqual([{ url: "/api/sessions/ab12", method: "PATCH", body: { name: "  Thesis ", description: "ch. 2" } }]);
    expect(saved.map((s) => s.name)).toEqual(["Thesis"]);
    expect(testid("session-name-input")).toBeNull();
  });

  it("Escape cancels without a request", async () => {
    await render();
    await click("session-rename");
    await type("session-name-input", "Other");
    await act(async () => {
      testid("session-name-input")?.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    });
    expect(testid("session-name-input")).toBeNull();
    expect(testid("session-name")?.textContent).toBe("Coding Copilot");
    expect(requests).toEqual([]);
  });

  it("checks the name before sending, and shows octod's refusal", async () => {
    await render();
    await click("session-rename");
    await type("session-name-input", "   ");
    await submit();
    expect(testid("session-rename-error")?.textContent).toMatch(/cannot be empty/);
    expect(requests).toEqual([]);

    answer = () => json(400, { error: { code: "invalid_name", message: "a session's name is refused" } });
    await type("session-name-input", "Fine here");
    await submit();
    expect(testid("session-rename-error")?.textContent).toBe("a session's name is refused");
    expect(testid("session-name-input")).not.toBeNull();
    expect(saved).toEqual([]);
  });

  it("an unchanged name closes the editor without a request", async () => {
    await render();
    await click("session-rename");
    await submit();
    expect(testid("session-name-input")).toBeNull();
    expect(requests).toEqual([]);
  });
});
