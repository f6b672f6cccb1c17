// End-to-end checks of the UI in a real browser (playwright-core driving Debian's chromium,
// headless) against a running stack. Runs every `e2e/*.e2e.mjs` in name order; each exports
// `default async function (ctx)` and throws on failure.
//
//   node e2e/run.mjs --base-url URL [--invite-code CODE] [--screenshots DIR]
//                    [--admin-user NAME --admin-password PASS] [FILTER]
//
// --base-url (env OCTO_URL): where the UI is served (Caddy in front of octod, or a Vite dev server
//   with OCTO_DEV_BACKEND). --invite-code: the code the workspace check registers with; when it is
//   an admin code that account is the admin of the later checks. Without it the admin account
//   (--admin-user/--admin-password, env OCTO_ADMIN_USER/OCTO_ADMIN_PASSWORD) makes one.
// --screenshots DIR (default e2e/out): a screenshot of every step, and of every failure.
// CHROMIUM: the browser binary (default /usr/bin/chromium).
//
// octod throttles failed sign-ins per client address; through Caddy every local client is
// 127.0.0.1 (Caddy replaces any X-Forwarded-For a client sends, and octod believes only Caddy's).
// `newContext()` still sends an X-Forwarded-For of its own (a dev server that forwards it keeps
// contexts apart); use it instead of `browser.newContext()`.
//
// ctx: { browser, baseUrl, inviteCode, admin, outDir, apiLogin, freshCredentials, newUser,
//        newInviteCode, setAdmin, newContext, step, screenshot }. Checks fail on any console
// error or uncaught page error of their pages (util.mjs: expectNoConsoleErrors).
import { readdirSync, mkdirSync } from "node:fs";
import { join, dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const { values: args, positionals } = parseArgs({
  options: {
    "base-url": { type: "string" },
    "invite-code": { type: "string" },
    screenshots: { type: "string" },
    "admin-user": { type: "string" },
    "admin-password": { type: "string" },
  },
  allowPositionals: true,
});
const baseUrl = (args["base-url"] ?? process.env.OCTO_URL ?? "http://127.0.0.1:5171").replace(/\/$/, "");
const inviteCode = args["invite-code"] ?? process.env.OCTO_INVITE_CODE ?? null;
let admin = {
  username: args["admin-user"] ?? process.env.OCTO_ADMIN_USER ?? "admin",
  password: args["admin-password"] ?? process.env.OCTO_ADMIN_PASSWORD ?? "",
};
const filter = positionals[0] ?? "";
const outDir = resolve(args.screenshots ?? join(here, "out"));
mkdirSync(outDir, { recursive: true });

/** A state-changing API call from a context's request object (same-origin, as octod demands). */
async function post(context, path, data, what) {
  const response = await context.request.post(`${baseUrl}${path}`, { data, headers: { Origin: baseUrl } });
  if (!response.ok()) throw new Error(`${what}: HTTP ${response.status()} ${await response.text()}`);
  return response;
}

/** Signs in through the API in a context (sets its cookie). */
async function apiLogin(context, user) {
  await post(context, "/api/auth/login", { username: user.username, password: user.password }, `signing in ${user.username}`);
}

let contextCounter = 0;
/** A browser context that looks like its own client (see above). */
async function newContext(options = {}) {
  contextCounter += 1;
  const address = `10.${(process.pid >> 8) & 255}.${process.pid & 255}.${(contextCounter % 250) + 1}`;
  return browser.newContext({
    ignoreHTTPSErrors: true,
    acceptDownloads: true,
    ...options,
    extraHTTPHeaders: { ...(options.extraHTTPHeaders ?? {}), "X-Forwarded-For": address },
  });
}

let adminContext = null;
/** A fresh invite code from the admin account (signed in once for the whole run). */
async function newInviteCode(role = "user") {
  if (!admin.password) {
    throw new Error("this check needs an admin account: pass --admin-password, or an admin --invite-code");
  }
  if (!adminContext) {
    adminContext = await newContext();
    await apiLogin(adminContext, admin);
  }
  const invite = await post(adminContext, "/api/admin/invite-codes", { role, uses: 1 }, "creating an invite code");
  return (await invite.json()).code;
}

let userCounter = 0;
/** A unique user name and password for a check. */
function freshCredentials(prefix = "e2e") {
  userCounter += 1;
  return {
    username: `${prefix}${Date.now().toString(36)}${userCounter}`,
    password: `pw-${Math.random().toString(36).slice(2)}-long`,
  };
}

/** Creates a fresh user through an admin invite code and returns { username, password }. */
async function newUser(role = "user") {
  const code = await newInviteCode(role);
  // Registering signs in: do it in a context of its own, so the admin's stays the admin's.
  const context = await newContext();
  try {
    const user = freshCredentials();
    await post(context, "/api/auth/register", { invite_code: code, ...user }, `registering ${user.username}`);
    return user;
  } finally {
    await context.close();
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
  headless: true,
  // Caddy in a test host serves its own internal CA's certificate.
  args: ["--no-sandbox", "--ignore-certificate-errors"],
});
let failed = 0;
let shot = 0;
try {
  for (const file of files) {
    const started = Date.now();
    const name = file.replace(/\.e2e\.mjs$/, "");
    const ctx = {
      browser,
      baseUrl,
      inviteCode,
      get admin() {
        return admin;
      },
      outDir,
      apiLogin,
      freshCredentials,
      newUser,
      newInviteCode,
      /** Makes `user` the admin of the following checks (an account registered with an admin code). */
      setAdmin: async (user) => {
        admin = user;
        await adminContext?.close();
        adminContext = null;
      },
      newContext,
      step: (message) => console.log(`    ${message}`),
      /** Saves `DIR/<nn>-<check>-<label>.png` of the page. */
      screenshot: async (page, label) => {
        shot += 1;
        const path = join(outDir, `${String(shot).padStart(2, "0")}-${name}-${label}.png`);
        await page.screenshot({ path });
        return path;
      },
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
console.log(`e2e: ${files.length - failed} passed, ${failed} failed; screenshots in ${outDir}`);
process.exit(failed ? 1 : 0);
