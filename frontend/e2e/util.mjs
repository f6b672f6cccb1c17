// Helpers shared by the e2e checks.

/**
 * Collects console errors and uncaught page errors; `check()` throws listing them. 401s of the
 * initial `/api/me` (signed out) are expected and not counted.
 */
export function expectNoConsoleErrors(page) {
  const errors = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = message.text();
    // A 401 is how the server answers an expired login or a wrong password; the page handles it.
    if (/status of 401/.test(text)) return;
    errors.push(text);
  });
  page.on("pageerror", (error) => errors.push(String(error)));
  return {
    errors,
    check() {
      if (errors.length) throw new Error(`console errors:\n${errors.join("\n")}`);
    },
  };
}
