// Helpers shared by the e2e checks.

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
