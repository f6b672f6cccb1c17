// The workspace header's Snapshots menu against a real session: take a named snapshot (the job's
// line says it is done, the row lists it with size and time), change the home, restore with a
// confirmation (Cancel leaves it; Restore stops, replaces the home, starts again: the workspace
// comes back with the snapshot's files), fork from it (a new session opens with its files), then
// delete it with a confirmation.
import { expectNoConsoleErrors, expectText } from "./util.mjs";

const LONG = { timeout: 180_000 };

export default async function snapshots(ctx) {
  const { baseUrl } = ctx;
  const user = await ctx.newUser();
  const context = await ctx.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  const consoleErrors = expectNoConsoleErrors(page);
  const byTest = (id) => page.getByTestId(id);
  const entry = (path) => page.locator(`[data-testid="file-entry"][data-path="${path}"]`);
  const files = (id, rest) => `${baseUrl}/sessions/${id}/files/api/${rest}`;
  const put = async (id, path, text) => {
    const response = await context.request.put(files(id, `upload?path=${encodeURIComponent(path)}&overwrite=true`), {
      data: text,
      headers: { Origin: baseUrl },
    });
    if (!response.ok()) throw new Error(`upload ${path}: HTTP ${response.status()} ${await response.text()}`);
  };
  let sessionId = null;
  let forkId = null;
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
    await put(sessionId, "note.txt", "as it was\n");
    await row.getByTestId("session-open").click();
    await byTest("files-tree").waitFor();
    await entry("/note.txt").waitFor();

    ctx.step("take a named snapshot from the header's Snapshots menu");
    await byTest("snapshots-menu").click();
    await byTest("snapshots-popup").waitFor();
    await byTest("snapshot-name").fill("Before the experiment");
    await byTest("snapshot-take").click();
    await expectText(byTest("snapshot-job"), "Took “Before the experiment”.", "the job's line", 120_000);
    const snapshotRow = byTest("snapshot-row").filter({ hasText: "Before the experiment" });
    await snapshotRow.waitFor();
    await expectText(snapshotRow.locator(".snapshot-meta"), /(KiB|MiB|bytes) · just now/, "size and time");
    await ctx.screenshot(page, "snapshots-taken");

    ctx.step("the home changes; a restore asks first, and Cancel changes nothing");
    await put(sessionId, "new.txt", "added later\n");
    await put(sessionId, "note.txt", "overwritten\n");
    await snapshotRow.getByTestId("snapshot-restore").click();
    await expectText(page.locator("#confirm-title"), "Restore “Before the experiment”?", "the confirmation");
    await byTest("confirm-cancel").click();
    await page.locator("dialog[open]").waitFor({ state: "detached" });

    ctx.step("Restore: the session stops, its home is replaced, it runs again with the snapshot's files");
    await snapshotRow.getByTestId("snapshot-restore").click();
    await byTest("confirm-ok").click();
    await expectText(byTest("snapshot-job"), "Restored “Before the experiment”.", "the restore's line", 180_000);
    await page.locator(`[data-testid=workspace][data-session-id="${sessionId}"]`).waitFor();
    await byTest("files-tree").waitFor(LONG);
    await entry("/note.txt").waitFor(LONG);
    const note = await context.request.get(files(sessionId, "download?path=note.txt"));
    if ((await note.text()) !== "as it was\n") throw new Error(`note.txt after the restore: ${await note.text()}`);
    const added = await context.request.get(files(sessionId, "stat?path=new.txt"));
    if (added.status() !== 404) throw new Error(`new.txt is still there after the restore: ${added.status()}`);
    await ctx.screenshot(page, "snapshots-restored");

    ctx.step("Fork from the snapshot: a new session opens in its own workspace with the snapshot's files");
    if (!(await byTest("snapshots-popup").isVisible())) await byTest("snapshots-menu").click();
    await snapshotRow.getByTestId("snapshot-fork").click();
    await page.waitForURL((url) => url.pathname.startsWith("/w/") && !url.pathname.endsWith(sessionId));
    forkId = decodeURIComponent(new URL(page.url()).pathname.slice(3));
    await expectText(page.locator(".workspace-bar").getByTestId("session-name"), /\(fork\)$/, "the fork's name");
    await byTest("files-tree").waitFor(LONG);
    await entry("/note.txt").waitFor(LONG);
    const forkedNote = await context.request.get(files(forkId, "download?path=note.txt"));
    if ((await forkedNote.text()) !== "as it was\n") throw new Error(`note.txt in the fork: ${await forkedNote.text()}`);
    await ctx.screenshot(page, "snapshots-forked");
    await page.goto(`${baseUrl}/w/${sessionId}`);
    await byTest("files-tree").waitFor(LONG);

    ctx.step("delete the snapshot, with a confirmation");
    if (!(await byTest("snapshots-popup").isVisible())) await byTest("snapshots-menu").click();
    await snapshotRow.getByTestId("snapshot-delete").click();
    await byTest("confirm-ok").click();
    await snapshotRow.waitFor({ state: "detached" });
    await byTest("snapshots-popup").getByText("No snapshots yet.").waitFor();
    consoleErrors.check();
  } catch (err) {
    await ctx.screenshot(page, "snapshots-failure").catch(() => {});
    throw err;
  } finally {
    if (forkId) {
      await context.request.delete(`${baseUrl}/api/sessions/${forkId}`, { headers: { Origin: baseUrl } }).catch(() => {});
    }
    if (sessionId) {
      await context.request.delete(`${baseUrl}/api/sessions/${sessionId}`, { headers: { Origin: baseUrl } }).catch(() => {});
    }
    await context.close();
  }
}
