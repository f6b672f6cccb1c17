// End-to-end checks of the UI in a real browser (playwright-core driving Debian's chromium) against a
// running stack. Runs every `e2e/*.e2e.mjs` in name order; each exports
// `default async function (ctx)` and throws on failure. ctx: { browser, newContext, baseUrl, admin,
// newUser, apiLogin, step, outDir }.
//
// octod rate-limits sign-ins per client address, and every local client is 127.0.0.1 — shared with
// anyone else using the same octod. `newContext()` gives each browser context its own client address
// (X-Forwarded-For, which octod honours from a loopback peer, the way Caddy sends it), so the checks
// neither run into nor use up anyone else's limit. Use it instead of `browser.newContext()`.
//
//   OCTO_URL=http://127.0.0.1:5171 OCTO_ADMIN_USER=admin OCTO_ADMIN_PASSWORD=… npm run e2e [-- filter]
//
// OCTO_URL: where the UI is served (a Vite dev server with OCTO_DEV_BACKEND, or Caddy in front of octod).
// CHROMIUM: the browser binary (default /usr/bin/chromium). Screenshots of failures go to e2e/out/.
import { readdirSync, mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const baseUrl = (process.env.OCTO_URL ?? "http://127.0.0.1:5171").replace(/\/$/, "");
const admin = {
  username: process.env.OCTO_ADMIN_USER ?? "admin",
  password: process.env.OCTO_ADMIN_PASSWORD ?? "",
};
const filter = process.argv[2] ?? "";
const outDir = join(here, "out");
mkdirSync(outDir, { recursive: true });

let contextCounter = 0;
/** A browser context that looks like its own client (see above). */
async function newContext(options = {}) {
  contextCounter += 1;
  const address = `10.${(process.pid >> 8) & 255}.${process.pid & 255}.${contextCounter % 250 + 1}`;
  return browser.newContext({
    ...options,
    extraHTTPHeaders: { ...(options.extraHTTPHeaders ?? {}), "X-Forwarded-For": address },
  });
}

/** Signs in through the API in a fresh context's request object (sets the cookie). */
async function apiLogin(context, user) {
  const response = await context.request.post(`${baseUrl}/api/auth/login`, {
    data: { username: user.username, password: user.password },
    headers: { Origin: baseUrl },
  });
  if (!response.ok()) throw new Error(`signing in ${user.username}: HTTP ${response.status()} ${await response.text()}`);
}

let userCounter = 0;
let adminContext = null;
/** Creates a fresh user through an admin invite code and returns { username, password }. */
async function newUser(role = "user") {
  if (!adminContext) {
    // One admin sign-in for the whole run.
    adminContext = await newContext();
    await apiLogin(adminContext, admin);
  }
  const context = adminContext;
  {
    const invite = await context.request.post(`${baseUrl}/api/admin/invite-codes`, {
      data: { role, uses: 1 },
      headers: { Origin: baseUrl },
    });
    if (!invite.ok()) throw new Error(`creating an invite code: HTTP ${invite.status()} ${await invite.text()}`);
    const { code } = await invite.json();
    userCounter += 1;
    const user = {
      username: `e2e${Date.now().toString(36)}${userCounter}`,
      password: `pw-${Math.random().toString(36).slice(2)}-long`,
    };
    // Registering signs in: do it in a context of its own, so the admin's stays the admin's.
    const registering = await newContext();
    try {
      const register = await registering.request.post(`${baseUrl}/api/auth/register`, {
        data: { invite_code: code, username: user.username, password: user.password },
        headers: { Origin: baseUrl },
      });
      if (!register.ok()) throw new Error(`registering ${user.username}: HTTP ${register.status()} ${await register.text()}`);
    } finally {
      await registering.close();
    }
    return user;
  }
}

const files = readdirSync(here)
  .filter((name) => name.endsWith(".e2e.mjs") && name.includes(filter))
  .sort();
if (files.length === 0) {
  console.error(`no e2e/*.e2e.mjs matches "${filter}"`);
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
let failed = 0;
try {
  for (const file of files) {
    const started = Date.now();
    const ctx = {
      browser,
      newContext,
      baseUrl,
      admin,
      outDir,
      apiLogin,
      newUser,
      step: (message) => console.log(`    ${message}`),
    };
    console.log(`e2e: ${file}`);
    try {
      const module = await import(pathToFileURL(join(here, file)).href);
      await module.default(ctx);
      console.log(`e2e: ${file} ... ok (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    } catch (err) {
      failed += 1;
      console.log(`e2e: ${file} ... FAILED`);
      console.log(err instanceof Error ? err.stack : err);
    }
  }
} finally {
  await adminContext?.close();
  await browser.close();
}
console.log(`e2e: ${files.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
