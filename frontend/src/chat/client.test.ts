// @vitest-environment jsdom
import { afterEach, describe, expect, it } from "vitest";
import { call, ChatError } from "./client";
import { UNAUTHORIZED_EVENT } from "../api";

function response(status: number, headers: Record<string, string> = {}): Response {
  return new Response(null, { status, headers });
}

describe("call", () => {
  const seen: Event[] = [];
  const listener = (event: Event) => seen.push(event);
  window.addEventListener(UNAUTHORIZED_EVENT, listener);
  afterEach(() => {
    seen.length = 0;
  });

  it("returns the data of a successful call", async () => {
    await expect(call("Listing", Promise.resolve({ data: [1, 2], response: response(200) }))).resolves.toEqual([1, 2]);
  });

  it("names what failed with octod's error message", async () => {
    const failing = call(
      "Sending the message",
      Promise.resolve({ error: { error: { code: "not_found", message: "no such session" } }, response: response(404) }),
    );
    await expect(failing).rejects.toThrow("Sending the message failed: HTTP 404: no such session");
    await expect(failing).rejects.toBeInstanceOf(ChatError);
  });

  it("names what failed with opencode's error message", async () => {
    const failing = call(
      "Stopping the reply",
      Promise.resolve({ error: { name: "NotFoundError", data: { message: "Session not found" } }, response: response(404) }),
    );
    await expect(failing).rejects.toThrow("Stopping the reply failed: HTTP 404: Session not found");
  });

  it("says a waking session will answer soon", async () => {
    const failing = call("Listing", Promise.resolve({ error: {}, response: response(503, { "retry-after": "5" }) }));
    await expect(failing).rejects.toThrow("Listing failed: HTTP 503 (the session is waking up; retry in 5 s)");
  });

  it("reports a network failure and tells the shell about an expired login", async () => {
    await expect(call("Listing", Promise.reject(new TypeError("Failed to fetch")))).rejects.toThrow(
      "Listing failed: Failed to fetch",
    );
    expect(seen).toHaveLength(0);
    await expect(call("Listing", Promise.resolve({ error: "", response: response(401) }))).rejects.toThrow(
      "Listing failed: HTTP 401",
    );
    expect(seen).toHaveLength(1);
  });
});
