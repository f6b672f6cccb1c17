// Screenshots of the main pages in both themes, for looking at the UI (not a check):
//   OCTO_URL=… OCTO_ADMIN_PASSWORD=… node e2e/screens.mjs [session-id]   → e2e/out/*.png
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const baseUrl = (process.env.OCTO_URL ?? "http://127.0.0.1:5171").replace(/\/$/, "");
const out = new URL("./out/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });
const sessionId = process.argv[2];

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  for (const theme of ["light", "dark"]) {
    // Its own client address for octod's sign-in rate limit (see run.mjs).
    const context = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      colorScheme: theme,
      extraHTTPHeaders: { "X-Forwarded-For": `10.250.${process.pid & 255}.${theme === "light" ? 1 : 2}` },
    });
    const page = await context.newPage();
    page.on("console", (m) => m.type() === "error" && console.log(`console error (${page.url()}): ${m.text()}`));
    await page.goto(`${baseUrl}/login`);
    await page.getByTestId("login-username").waitFor();
    await page.screenshot({ path: `${out}${theme}-login.png` });
    await page.goto(`${baseUrl}/register?invite=abc`);
    await page.getByTestId("register-username").waitFor();
    await page.screenshot({ path: `${out}${theme}-register.png` });
    await page.goto(`${baseUrl}/login`);
    await page.getByTestId("login-username").fill(process.env.OCTO_ADMIN_USER ?? "admin");
    await page.getByTestId("login-password").fill(process.env.OCTO_ADMIN_PASSWORD ?? "");
    await page.getByTestId("login-submit").click();
    await page.getByTestId("account-menu").waitFor();
    await page.waitForTimeout(500);
    await page.screenshot({ path: `${out}${theme}-sessions.png`, fullPage: true });
    for (const path of ["/account", "/admin/users", "/admin/invites", "/admin/sessions"]) {
      await page.goto(`${baseUrl}${path}`);
      await page.waitForTimeout(700);
      await page.screenshot({ path: `${out}${theme}-${path.slice(1).replace("/", "-")}.png`, fullPage: true });
    }
    if (sessionId) {
      await page.goto(`${baseUrl}/w/${sessionId}`);
      await page.waitForTimeout(2500);
      await page.screenshot({ path: `${out}${theme}-workspace.png` });
    }
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(`screenshots in ${out}`);
