// Issue 14's hole, as a user meets it: a workspace page `r.html` whose `x.js` tries to use the
// viewer's Octo credentials (read /api/me; make its own author an admin). Opened from the Files
// pane with "View", it runs on the content origin (files-<id>.<content site>), not on Octo's:
// the script runs there, its credentialed fetch of the UI's /api/me gets no user, and the
// promotion it tries from an admin's browser changes no role. The one-time ticket works once;
// a browser without one is refused. Needs a content origin (the package host's
// `*.content.localhost:<its port>`).
import { expectNoConsoleErrors } from "./util.mjs";

const LONG = { timeout: 180_000 };

export default async function contentOrigin(ctx) {
  const { baseUrl } = ctx;
  const user = await ctx.newUser();
  const context = await ctx.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  const consoleErrors = expectNoConsoleErrors(page);
  const byTest = (id) => page.getByTestId(id);
  const entry = (path) => page.locator(`[data-testid="file-entry"][data-path="${path}"]`);
  let sessionId = null;
  const extra = [];
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

    ctx.step("a prompt-injected page in the workspace: r.html and its x.js");
    // What x.js reports lands in the page's title: where it ran, what the UI's /api/me told it
    // with credentials, and what a promotion of the session's owner to admin answered.
    const script = `
const ui = ${JSON.stringify(baseUrl)};
const out = { origin: location.origin, cookie: document.cookie };
const said = (r) => r.text().then((t) => r.status + " " + t);
const refused = (e) => "refused: " + e.name;
Promise.all([
  fetch(ui + "/api/me", { credentials: "include" }).then(said, refused),
  fetch(ui + "/api/admin/users/${user.username}/role", {
    method: "POST", credentials: "include", headers: { "Content-Type": "text/plain" },
    body: JSON.stringify({ role: "admin" }),
  }).then(said, refused),
  fetch("/api/me", { credentials: "include" }).then(said, refused),
]).then(([me, promote, local]) => {
  Object.assign(out, { me, promote, local });
  document.title = "done:" + JSON.stringify(out);
});`;
    await byTest("files-upload-input").setInputFiles([
      { name: "r.html", mimeType: "text/html", buffer: Buffer.from('<!doctype html><title>r</title><p>a workspace page</p><script src="x.js"></script>\n') },
      { name: "x.js", mimeType: "text/javascript", buffer: Buffer.from(script) },
    ]);
    await entry("/r.html").waitFor();
    await entry("/x.js").waitFor();

    ctx.step("View r.html from the Files pane: it opens on the content origin, in a new tab");
    await entry("/r.html").click();
    const view = byTest("file-view");
    await view.waitFor();
    const href = await view.getAttribute("href");
    if (href !== `/api/sessions/${sessionId}/view?path=r.html`) throw new Error(`View links to ${href}`);
    const [viewer] = await Promise.all([context.waitForEvent("page"), view.click()]);
    const report = await finished(viewer);
    await ctx.screenshot(viewer, "content-origin-view");
    const port = new URL(baseUrl).port;
    const contentOrigin = `https://files-${sessionId}.content.localhost${port ? `:${port}` : ""}`;
    if (report.origin !== contentOrigin) throw new Error(`r.html ran on ${report.origin}, not ${contentOrigin}`);
    if (report.cookie !== "") throw new Error(`the content page reads cookies: ${report.cookie}`);
    for (const [what, answer] of [["the UI's /api/me", report.me], ["the promotion", report.promote]]) {
      if (answer.includes(user.username) || /"role"/.test(answer) || /^2\d\d /.test(answer)) {
        throw new Error(`${what} from the content origin answered with the user's credentials: ${answer}`);
      }
    }
    if (!/^404 /.test(report.local) || report.local.includes(user.username)) {
      throw new Error(`/api/me on the content host is not a workspace path that is missing: ${report.local}`);
    }
    if (!(await viewer.evaluate(() => window.opener === null))) throw new Error("the view keeps its opener");
    ctx.step(`ran on ${report.origin}; UI /api/me: ${report.me}; promotion: ${report.promote}; its own /api/me: ${report.local.slice(0, 40)}…`);

    ctx.step("the ticket works once; a browser without one is refused");
    // Another view, as View asks for it; its ticket is in the redirect chain.
    const again = await viewer.goto(`${baseUrl}/api/sessions/${sessionId}/view?path=r.html`);
    const landed = new URL(again.url());
    if (again.status() !== 200 || landed.origin !== contentOrigin || decodeURIComponent(landed.pathname) !== "/r.html") {
      throw new Error(`a second view: ${again.status()} ${again.url()}`);
    }
    const chain = [];
    for (let r = again.request(); r; r = r.redirectedFrom()) chain.unshift(r.url());
    const used = chain.find((url) => url.includes("/__octo/ticket?t="));
    if (!used) throw new Error(`no ticket in the redirect chain: ${chain.join(" → ")}`);
    const reuse = await viewer.goto(used);
    if (reuse.status() !== 403) throw new Error(`a used ticket answered ${reuse.status()}`);
    const anonymous = await ctx.newContext();
    extra.push(anonymous);
    const stranger = await anonymous.newPage();
    const refused = await stranger.goto(`${contentOrigin}/r.html`);
    if (refused.status() !== 401) throw new Error(`r.html without a ticket: ${refused.status()}`);

    ctx.step("an admin's browser views the user's page: no role changes");
    const adminContext = await ctx.newContext();
    extra.push(adminContext);
    await ctx.apiLogin(adminContext, ctx.admin);
    const adminPage = await adminContext.newPage();
    const adminView = await finished(adminPage, `${baseUrl}/api/sessions/${sessionId}/view?path=r.html`);
    if (adminView.origin !== contentOrigin || adminView.me.includes(ctx.admin.username) || /^2\d\d /.test(adminView.promote)) {
      throw new Error(`the admin's view: ${JSON.stringify(adminView)}`);
    }
    const users = await (await adminContext.request.get(`${baseUrl}/api/admin/users`)).json();
    const listed = users.find((u) => u.name === user.username);
    if (!listed || listed.role !== "user") throw new Error(`the page's author after an admin viewed it: ${JSON.stringify(listed)}`);
    ctx.step(`the admin's view ran on ${adminView.origin}; ${user.username} is still a user`);
    consoleErrors.check();
  } finally {
    if (sessionId) {
      await context.request.delete(`${baseUrl}/api/sessions/${sessionId}`, { headers: { Origin: baseUrl } }).catch(() => {});
    }
    for (const c of extra) await c.close().catch(() => {});
    await context.close();
  }
}

/** The report x.js puts in the title of `page` (after going to `url`, when given). */
async function finished(page, url) {
  page.on("console", () => {});
  if (url) await page.goto(url);
  await page.waitForFunction(() => document.title.startsWith("done:"), null, { timeout: 30_000 });
  return JSON.parse((await page.title()).slice("done:".length));
}
