// Helpers shared by the e2e checks.
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

/**
 * Collects console errors and uncaught page errors; `check()` throws listing them. Chromium logs
 * every HTTP error answer as a console error: a 401 (expired login, wrong password) is always
 * expected, other statuses only after `allow(status)` where a check provokes them on purpose.
 */
export function expectNoConsoleErrors(page) {
  const errors = [];
  const allowed = new Set([401]);
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = message.text();
    const status = /status of (\d{3})/.exec(text);
    if (status && allowed.has(Number(status[1]))) return;
    errors.push(text);
  });
  page.on("pageerror", (error) => errors.push(String(error)));
  return {
    errors,
    allow(status) {
      allowed.add(status);
    },
    check() {
      if (errors.length) throw new Error(`console errors:\n${errors.join("\n")}`);
    },
  };
}

/**
 * Waits until `locator`'s text (trimmed) equals `expected` (a string) or matches it (a RegExp);
 * throws saying `what` and the last text seen.
 */
export async function expectText(locator, expected, what, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  let last = null;
  for (;;) {
    last = await locator
      .first()
      .textContent({ timeout: Math.max(1, deadline - Date.now()) })
      .catch(() => null);
    const text = last?.trim() ?? null;
    if (text !== null && (expected instanceof RegExp ? expected.test(text) : text === expected)) return;
    if (Date.now() >= deadline) throw new Error(`${what}: expected ${expected}, saw ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * A request from Node whose only credential is `Authorization: Bearer <token>` (no cookie, no
 * `Origin`: what a script or curl sends); `token` null sends none. node:http(s) rather than
 * `fetch`, because a test host's Caddy serves a self-signed certificate that `fetch` refuses.
 * Resolves `{ status, text, json() }`.
 */
export function bearerRequest(baseUrl, method, path, token, body) {
  const url = new URL(path, baseUrl);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (payload !== undefined) {
    headers["Content-Type"] = "application/json";
    headers["Content-Length"] = Buffer.byteLength(payload);
  }
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { method, headers, rejectUnauthorized: false, timeout: 30_000 }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode, text, json: () => JSON.parse(text) });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url}: no answer within 30 s`)));
    req.on("error", reject);
    req.end(payload);
  });
}
