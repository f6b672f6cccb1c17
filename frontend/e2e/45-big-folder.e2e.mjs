// Issue 19's big folder against a real session: 10,000 files made in the terminal open in the
// Files pane with fewer than 200 rows in the DOM, in order, listed a page at a time (the first
// page on opening, the others as they are scrolled to); the agent (the stub model's bash tool)
// writes a file in that folder and it appears without a reload, through the file server's change
// stream; the open tree then makes no requests at all while idle; the end is reached by scrolling
// and from the keyboard (End, PageUp, Home), and the selected row stays focused and in view.
import { expectNoConsoleErrors } from "./util.mjs";

const LONG = { timeout: 180_000 };
const COUNT = 10_000;
/** What the check allows in the DOM (the pane shows ~35 rows at this size, plus overscan). */
const MAX_ROWS = 200;
/** What the stub model's bash tool writes (e2e/src/stub_llm.rs), here into big/. */
const AGENT_FILE = "/big/agent-loop.txt";
/** How long the open tree is watched doing nothing. */
const IDLE_MS = 20_000;

export default async function bigFolder(ctx) {
  const { baseUrl } = ctx;
  const user = await ctx.newUser();
  const context = await ctx.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  const consoleErrors = expectNoConsoleErrors(page);
  const byTest = (id) => page.getByTestId(id);
  const entry = (path) => page.locator(`[data-testid="file-entry"][data-path="${path}"]`);
  // Rows of entries, and those standing in for entries whose page is on its way.
  const rowsInDom = () => page.locator('[data-testid="file-entry"], [data-testid="file-placeholder"]').count();
  const name = (i) => `/big/file-${String(i).padStart(5, "0")}.txt`;
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
    await entry("/AGENTS.md").waitFor();

    ctx.step(`${COUNT} files made in the terminal`);
    await byTest("terminal").click();
    await page.keyboard.type(`mkdir big && seq -f 'big/file-%05g.txt' 0 ${COUNT - 1} | xargs touch && ls big | wc -l | sed 's/^/made=/'`);
    await page.keyboard.press("Enter");
    await page.waitForFunction(
      (want) => {
        const rows = document.querySelector('[data-testid="terminal"] .xterm-rows');
        return rows !== null && Array.from(rows.children).some((r) => r.textContent.trim() === want);
      },
      `made=${COUNT}`,
      LONG,
    );

    ctx.step("the folder opens with its first rows only in the DOM, in order, its first page listed");
    await byTest("files-refresh").click();
    const listings = [];
    const listed = (request) => {
      const url = new URL(request.url());
      if (url.pathname.endsWith("/files/api/list") && url.searchParams.get("path") === "big") listings.push(url.search);
    };
    page.on("request", listed);
    await entry("/big").click();
    await entry(name(0)).waitFor();
    const opened = await rowsInDom();
    if (opened >= MAX_ROWS) throw new Error(`${opened} rows in the DOM after opening the folder`);
    const top = async (path) => (await entry(path).boundingBox()).y;
    if (!((await top(name(0))) < (await top(name(1))))) throw new Error("file-00000 is not above file-00001");
    const height = await byTest("files-tree").evaluate((tree) => tree.scrollHeight);
    if (height < COUNT * 24) throw new Error(`the tree scrolls ${height} px, not the whole folder's height`);
    page.off("request", listed);
    // (A change the watcher reports late may list the first page once more.)
    if (listings.length === 0 || !listings.every((q) => /[?&]limit=\d+/.test(q) && /[?&]offset=0\b/.test(q))) {
      throw new Error(`opening big/ asked for ${JSON.stringify(listings)}, not its first page`);
    }
    await ctx.screenshot(page, "opened");

    ctx.step("the agent writes a file in the folder: it appears without a reload");
    // Every request of the file tree from here on (the file server's API through octod).
    const fileRequests = [];
    page.on("request", (request) => {
      const path = new URL(request.url()).pathname;
      if (path.startsWith(`/sessions/${sessionId}/files/api/`)) fileRequests.push(`${request.method()} ${path}`);
    });
    await page.locator('[data-testid="files-live"][data-state="live"]').waitFor();
    await page.locator("[data-testid=chat-connection][data-state=open]").waitFor({ timeout: 60_000 });
    await byTest("chat-input").fill("Please write the file into big/.");
    await byTest("chat-send").click();
    await page.locator("[data-testid=chat-tool][data-tool=bash][data-status=completed]").waitFor(LONG);
    const written = Date.now();
    await entry(AGENT_FILE).waitFor({ timeout: 10_000 });
    ctx.step(`  shown ${Date.now() - written} ms after the tool call completed (the tree at the top of the folder, not reloaded)`);
    if ((await top(AGENT_FILE)) >= (await top(name(0)))) throw new Error("agent-loop.txt is not sorted before file-00000.txt");
    const afterChange = [...fileRequests];
    if (!afterChange.includes("GET /sessions/" + sessionId + "/files/api/list")) {
      throw new Error(`the folder was not listed again after the change: ${JSON.stringify(afterChange)}`);
    }
    await ctx.screenshot(page, "agent-file");

    ctx.step(`the open tree left alone for ${IDLE_MS / 1000} s makes no requests`);
    await page.locator("[data-testid=chat-abort]").waitFor({ state: "detached", timeout: 60_000 });
    await page.waitForTimeout(2000); // the reply's last changes (opencode's own files are hidden)
    fileRequests.length = 0;
    await page.waitForTimeout(IDLE_MS);
    if (fileRequests.length > 0) throw new Error(`an idle tree asked: ${JSON.stringify(fileRequests)}`);
    await page.locator('[data-testid="files-live"][data-state="live"]').waitFor({ timeout: 1000 });

    ctx.step("scrolled to its end: the last entry is shown, still fewer than 200 rows");
    await byTest("files-tree").evaluate((tree) => {
      tree.scrollTop = tree.scrollHeight;
    });
    await entry(name(COUNT - 1)).waitFor();
    const inView = async (path) => {
      const [box, tree] = [await entry(path).boundingBox(), await byTest("files-tree").boundingBox()];
      return box !== null && box.y >= tree.y - 1 && box.y + box.height <= tree.y + tree.height + 1;
    };
    if (!(await inView(name(COUNT - 1)))) throw new Error("the last entry is not in view at the end");
    const scrolled = await rowsInDom();
    if (scrolled >= MAX_ROWS) throw new Error(`${scrolled} rows in the DOM at the end`);
    await ctx.screenshot(page, "end");

    ctx.step("the keyboard reaches the end and back, the selected row focused and in view");
    const focused = (path) => page.locator(`[data-testid="file-entry"][data-path="${path}"][aria-selected="true"]:focus`);
    await byTest("files-tree").evaluate((tree) => {
      tree.scrollTop = 0;
    });
    await entry(name(0)).click();
    const current = () => page.locator('[data-testid="file-entry"][aria-selected="true"]:focus').getAttribute("data-path");
    // End: the tree's last row, a file of the home's (files sort after folders), past big/.
    await page.keyboard.press("End");
    await page.waitForFunction(() => document.querySelector('[data-testid="files-tree"]').scrollTop > 0);
    const last = await current();
    if (!last || last.startsWith("/big/") || !(await inView(last))) throw new Error(`End selected ${last}`);
    // PageUp from there lands among big/'s last entries, in view.
    await page.keyboard.press("PageUp");
    await page.locator('[data-testid="file-entry"][aria-selected="true"]:focus[data-path^="/big/file-09"]').waitFor();
    if (!(await inView(await current()))) throw new Error("PageUp: the selected entry is not in view");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Home");
    // Home: the tree's first row, selected, focused and scrolled into view.
    await page.locator('[data-testid="file-entry"][aria-level="1"][aria-selected="true"]:focus').waitFor();
    if (!(await inView(await current()))) throw new Error("Home: the first row is not in view");
    await entry("/big").click(); // selects the folder's row, and closes it
    await focused("/big").waitFor();
    await entry(name(0)).waitFor({ state: "detached" });
    await page.keyboard.press("ArrowRight"); // opens it again
    await entry(name(0)).waitFor();
    await page.keyboard.press("ArrowLeft"); // collapses the folder: its 10,000 rows go
    await entry(name(0)).waitFor({ state: "detached" });
    const collapsed = await byTest("files-tree").evaluate((tree) => tree.scrollHeight);
    if (collapsed >= height) throw new Error("the tree did not shrink when the folder closed");
    consoleErrors.check();
  } finally {
    if (sessionId) {
      await context.request
        .delete(`${baseUrl}/api/sessions/${encodeURIComponent(sessionId)}`, { headers: { Origin: baseUrl } })
        .catch(() => {});
    }
    await context.close();
  }
}
