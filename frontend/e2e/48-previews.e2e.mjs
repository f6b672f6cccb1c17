// Issue 14's previews, as a user meets them: a server the agent starts when a prompt asks it to
// (the stub model's bash tool call: `python3 -m http.server 3000` over a page whose app.js reports where it runs and what the UI's
// /api/me tells it) appears in the workspace's Ports menu; "Open" shows the app in a new tab on
// its own origin (p3000-<id>.<content site>), where it cannot read the UI's /api/me with the
// viewer's credentials; "Preview" shows the same app in the workspace's pane (a frame of the
// content origin, allowed by the UI's frame-src). Sharing: another user's browser is refused until
// the owner shares the port with everyone signed in; a share link opens it in a browser with no
// account until the owner revokes it. Needs a content origin (the package host's
// `*.content.localhost:<its port>`).
import { expectNoConsoleErrors } from "./util.mjs";

const LONG = { timeout: 180_000 };
const PORT = 3000;

export default async function previews(ctx) {
  const { baseUrl } = ctx;
  const user = await ctx.newUser();
  const context = await ctx.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  const consoleErrors = expectNoConsoleErrors(page);
  const byTest = (id) => page.getByTestId(id);
  const entry = (path) => page.locator(`[data-testid="file-entry"][data-path="${path}"]`);
  let sessionId = null;
  try {
    await page.goto(`${baseUrl}/login`);
    await byTest("login-username").fill(user.username);
    await byTest("login-password").fill(user.password);
    await byTest("login-submit").click();
    await byTest("template-card-coding-copilot").click();
    const row = byTest("session-row").first();
    await row.waitFor();
    sessionId = await row.getAttribute("data-session-id");
    await row.and(page.locator('[data-state="running"]')).waitFor(LONG);
    await row.getByTestId("session-open").click();
    await byTest("files-tree").waitFor();
    await entry("/AGENTS.md").waitFor();
    await page.locator('[data-testid="terminal-status"][data-state="connected"]').waitFor();

    ctx.step("an app in the workspace: index.html and its app.js");
    const script = `
const ui = ${JSON.stringify(baseUrl)};
fetch(ui + "/api/me", { credentials: "include" })
  .then((r) => r.text().then((t) => r.status + " " + t), (e) => "refused: " + e.name)
  .then((me) => { document.title = "done:" + JSON.stringify({ origin: location.origin, me, cookie: document.cookie }); });`;
    await byTest("files-upload-input").setInputFiles([
      { name: "index.html", mimeType: "text/html", buffer: Buffer.from('<!doctype html><title>app</title><p>the app</p><script src="app.js"></script>\n') },
      { name: "app.js", mimeType: "text/javascript", buffer: Buffer.from(script) },
    ]);
    await entry("/index.html").waitFor();
    await entry("/app.js").waitFor();
    ctx.step("a prompt: the agent (the stub model's bash tool call) starts the server");
    await page.locator("[data-testid=chat-connection][data-state=open]").waitFor({ timeout: 60_000 });
    await byTest("chat-input").fill(`Please serve the workspace on port ${PORT}.`);
    await byTest("chat-send").click();
    await page
      .locator("[data-testid=chat-tool][data-tool=bash][data-status=completed]")
      .waitFor({ timeout: 90_000 });

    ctx.step("the Ports menu lists the port");
    await byTest("ports-menu").click();
    const portRow = page.locator(`[data-testid="port-row"][data-port="${PORT}"]`);
    await portRow.waitFor({ timeout: 60_000 });
    const open = portRow.getByTestId("port-open");
    const href = await open.getAttribute("href");
    if (href !== `/api/sessions/${sessionId}/ports/${PORT}/open`) throw new Error(`Open links to ${href}`);
    await ctx.screenshot(page, "previews-ports-menu");

    ctx.step("Open: the app in a new tab on its own origin, without the UI's credentials");
    const [tab] = await Promise.all([context.waitForEvent("page"), open.click()]);
    const report = await finished(tab);
    await ctx.screenshot(tab, "previews-tab");
    const port = new URL(baseUrl).port;
    const origin = `https://p${PORT}-${sessionId}.content.localhost${port ? `:${port}` : ""}`;
    if (report.origin !== origin) throw new Error(`the app ran on ${report.origin}, not ${origin}`);
    if (report.cookie !== "") throw new Error(`the app reads cookies: ${report.cookie}`);
    if (report.me.includes(user.username) || /^2\d\d /.test(report.me)) {
      throw new Error(`the UI's /api/me from the preview answered with the user's credentials: ${report.me}`);
    }
    if (!(await tab.evaluate(() => window.opener === null))) throw new Error("the preview keeps its opener");
    ctx.step(`ran on ${report.origin}; the UI's /api/me: ${report.me}`);

    ctx.step("Preview: the same app in the workspace's pane");
    consoleErrors.check();
    // Open closed the menu behind it.
    await byTest("ports-popup").waitFor({ state: "detached" });
    await byTest("ports-menu").click();
    await portRow.getByTestId("port-preview").click();
    await byTest("preview-pane").waitFor();
    const frame = await frameOf(page, origin);
    await frame.waitForFunction(() => document.title.startsWith("done:"), null, { timeout: 30_000 });
    const embedded = JSON.parse((await frame.title()).slice("done:".length));
    if (embedded.origin !== origin || embedded.me.includes(user.username) || /^2\d\d /.test(embedded.me)) {
      throw new Error(`the pane's app: ${JSON.stringify(embedded)}`);
    }
    await ctx.screenshot(page, "previews-pane");
    await byTest("preview-close").click();
    await byTest("preview-pane").waitFor({ state: "detached" });

    ctx.step("another user's browser: refused until the owner shares the port, then the app opens");
    const other = await ctx.newUser();
    const otherContext = await ctx.newContext();
    const anonContext = await ctx.newContext();
    try {
      const otherPage = await otherContext.newPage();
      await otherPage.goto(`${baseUrl}/login`);
      await otherPage.getByTestId("login-username").fill(other.username);
      await otherPage.getByTestId("login-password").fill(other.password);
      await otherPage.getByTestId("login-submit").click();
      await otherPage.getByTestId("template-card-coding-copilot").waitFor();
      const openUrl = `${baseUrl}/api/sessions/${sessionId}/ports/${PORT}/open`;
      const refused = await otherPage.goto(openUrl);
      if (refused?.status() !== 404) throw new Error(`another user's open before the share: ${refused?.status()}`);
      await byTest("ports-menu").click();
      await portRow.waitFor();
      await portRow.getByTestId("port-share").click();
      await portRow.getByTestId("port-share-users").click();
      await portRow.getByTestId("port-shared").waitFor();
      await ctx.screenshot(page, "previews-shared");
      await otherPage.goto(openUrl);
      const shared = await finished(otherPage);
      if (shared.origin !== origin) throw new Error(`the shared app ran on ${shared.origin}`);
      if (shared.me.includes(other.username) || /^2\d\d /.test(shared.me)) {
        throw new Error(`the shared app read the other user's /api/me: ${shared.me}`);
      }

      ctx.step("a share link: a browser with no account opens the app; revoked, it is refused");
      const anonPage = await anonContext.newPage();
      const before = await anonPage.goto(`${origin}/`);
      if (before?.status() !== 401) throw new Error(`the preview without a link: ${before?.status()}`);
      await portRow.getByTestId("port-link-create").click();
      const linkUrl = await portRow.getByTestId("port-link-url").inputValue();
      if (!linkUrl.startsWith(`${origin}/__octo/share?t=`)) throw new Error(`the link: ${linkUrl}`);
      await portRow.getByTestId("port-link").waitFor();
      await anonPage.goto(linkUrl);
      const viaLink = await finished(anonPage);
      if (viaLink.origin !== origin) throw new Error(`the linked app ran on ${viaLink.origin}`);
      await portRow.getByTestId("port-link-revoke").click();
      await portRow.getByTestId("port-link").waitFor({ state: "detached" });
      const revoked = await anonPage.goto(`${origin}/`);
      if (revoked?.status() !== 403) throw new Error(`the revoked link's browser: ${revoked?.status()}`);
      const reused = await anonPage.goto(linkUrl);
      if (reused?.status() !== 403) throw new Error(`the revoked link: ${reused?.status()}`);

      ctx.step("unshared: the other user's browser is refused at its next request");
      await portRow.getByTestId("port-share-users").click();
      await portRow.getByTestId("port-shared").waitFor({ state: "detached" });
      const unshared = await otherPage.goto(`${origin}/`);
      if (unshared?.status() !== 404) throw new Error(`the other user after the unshare: ${unshared?.status()}`);
      await ctx.screenshot(page, "previews-unshared");
    } finally {
      await otherContext.close();
      await anonContext.close();
    }

    // The app's own credentialed fetch of the UI's /api/me, refused by CORS in the pane's frame,
    // is the one error expected.
    const unexpected = consoleErrors.errors.filter((e) => !/CORS policy|net::ERR_FAILED/.test(e));
    if (unexpected.length) throw new Error(`console errors:\n${unexpected.join("\n")}`);
  } finally {
    if (sessionId) {
      await context.request.delete(`${baseUrl}/api/sessions/${sessionId}`, { headers: { Origin: baseUrl } }).catch(() => {});
    }
    await context.close();
  }
}

/** The report app.js puts in the title of `page`. */
async function finished(page) {
  await page.waitForFunction(() => document.title.startsWith("done:"), null, { timeout: 30_000 });
  return JSON.parse((await page.title()).slice("done:".length));
}

/** The frame of `page` on `origin`, once it is there. */
async function frameOf(page, origin) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const frame = page.frames().find((f) => f.url().startsWith(origin));
    if (frame) return frame;
    if (Date.now() > deadline) throw new Error(`no frame of ${origin}: ${page.frames().map((f) => f.url()).join(", ")}`);
    await page.waitForTimeout(200);
  }
}
