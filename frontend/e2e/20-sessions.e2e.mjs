// The workspace picker and view against real sessions: create from a template (waking state,
// then running), name it (in the picker and in the workspace header: Escape cancels, Enter saves,
// a refused name says why; the filter box finds it), open the workspace, stop, resume, delete with
// confirmation; an expired login mid-use goes back to sign-in with a message.
import { expectNoConsoleErrors, expectText } from "./util.mjs";

const LONG = { timeout: 180_000 };

export default async function sessions({ newContext, baseUrl, newUser, step, outDir }) {
  const user = await newUser();
  const context = await newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const consoleErrors = expectNoConsoleErrors(page);
  let id = null;
  let deleted = false;
  const rowState = (id, state) => page.locator(`[data-testid=session-row][data-session-id="${id}"][data-state="${state}"]`);
  try {
    await page.goto(`${baseUrl}/login`);
    await page.getByTestId("login-username").fill(user.username);
    await page.getByTestId("login-password").fill(user.password);
    await page.getByTestId("login-submit").click();

    step("a template card creates a session; the row goes to running by itself");
    const card = page.locator("[data-testid^=template-card-]").first();
    const templateTitle = (await card.locator(".template-name").textContent()).trim();
    await card.click();
    const row = page.getByTestId("session-row").first();
    await row.waitFor(LONG);
    id = await row.getAttribute("data-session-id");
    const settled = page.locator(
      `[data-testid=session-row][data-session-id="${id}"]:is([data-state="running"], [data-state="failed"])`,
    );
    await settled.waitFor(LONG);
    if ((await settled.getAttribute("data-state")) === "failed") {
      throw new Error(`session ${id} failed to start: ${await settled.locator(".failure-reason").textContent()}`);
    }

    step("a new session is named after its template; rename it in the picker (Escape cancels, Enter saves)");
    const anyRow = page.locator(`[data-testid=session-row][data-session-id="${id}"]`);
    const rowName = anyRow.getByTestId("session-name");
    await expectText(rowName, templateTitle, "the default name");
    await anyRow.getByTestId("session-rename").click();
    await anyRow.getByTestId("session-name-input").fill("Not this one");
    await page.keyboard.press("Escape");
    await anyRow.getByTestId("session-name-input").waitFor({ state: "detached" });
    await expectText(rowName, templateTitle, "the name after Escape");
    await anyRow.getByTestId("session-rename").click();
    await anyRow.getByTestId("session-name-input").fill("   ");
    await page.keyboard.press("Enter");
    await expectText(anyRow.getByTestId("session-rename-error"), /cannot be empty/, "an empty name's error");
    await anyRow.getByTestId("session-name-input").fill("  Thesis — picker  ");
    await anyRow.getByTestId("session-description-input").fill("named in the browser");
    await anyRow.getByTestId("session-name-input").press("Enter");
    await expectText(rowName, "Thesis — picker", "the name after Enter");
    await expectText(anyRow.getByTestId("session-description"), "named in the browser", "the description");
    step("the name is octod's: it survives a reload, and the filter box finds the session by it");
    await page.reload();
    await expectText(rowName, "Thesis — picker", "the name after a reload");
    await page.getByTestId("session-filter").fill("thesis PICKER");
    await anyRow.waitFor();
    await page.getByTestId("session-filter").fill("no such session anywhere");
    await page.getByTestId("session-filter-empty").waitFor();
    await page.getByTestId("session-filter").press("Escape");
    await anyRow.waitFor();

    step("stop, then resume, from the list");
    await rowState(id, "running").getByTestId("session-stop").click();
    await rowState(id, "stopped").waitFor(LONG);
    await rowState(id, "stopped").getByTestId("session-resume").click();
    await rowState(id, "running").waitFor(LONG);

    step("open shows the workspace with the three panes");
    await rowState(id, "running").getByTestId("session-open").click();
    await page.locator(`[data-testid=workspace][data-session-id="${id}"]`).waitFor();
    await page.locator("#pane-chat").waitFor(LONG);
    await page.locator("#pane-files").waitFor();
    await page.locator("#pane-terminal").waitFor();

    step("the workspace header shows the name; rename it there (Escape cancels, Enter saves)");
    const bar = page.locator(".workspace-bar");
    const headerName = bar.getByTestId("session-name");
    await expectText(headerName, "Thesis — picker", "the header's name");
    await bar.getByTestId("session-rename").click();
    await bar.getByTestId("session-name-input").fill("Not this either");
    await bar.getByTestId("session-name-input").press("Escape");
    await expectText(headerName, "Thesis — picker", "the header after Escape");
    await bar.getByTestId("session-rename").click();
    await bar.getByTestId("session-name-input").fill("x".repeat(81));
    await bar.getByTestId("session-name-input").press("Enter");
    await expectText(bar.getByTestId("session-rename-error"), /at most 80/, "a long name's error");
    await bar.getByTestId("session-name-input").fill("Thesis — header");
    await bar.getByTestId("session-name-input").press("Enter");
    await expectText(headerName, "Thesis — header", "the header after Enter");
    const stored = await (await context.request.get(`${baseUrl}/api/sessions/${id}`)).json();
    if (stored.name !== "Thesis — header") throw new Error(`octod has the name ${JSON.stringify(stored.name)}`);
    await page.locator("#pane-chat").waitFor();

    step("a splitter moves with the keyboard and the layout survives a reload");
    const before = Number(await page.getByTestId("splitter-0").getAttribute("aria-valuenow"));
    await page.getByTestId("splitter-0").focus();
    await page.keyboard.press("Shift+ArrowRight");
    const after = Number(await page.getByTestId("splitter-0").getAttribute("aria-valuenow"));
    if (!(after > before)) throw new Error(`splitter did not move right: ${before} → ${after}`);
    await page.reload();
    await page.locator("#pane-chat").waitFor(LONG);
    const reloaded = Number(await page.getByTestId("splitter-0").getAttribute("aria-valuenow"));
    if (reloaded !== after) throw new Error(`layout not remembered: ${after} before reload, ${reloaded} after`);
    step("dragging a splitter with the mouse resizes the panes next to it");
    const splitter = page.getByTestId("splitter-1");
    const filesBefore = (await page.locator("#pane-files").boundingBox()).width;
    const box = await splitter.boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2 + 120, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    const filesAfter = (await page.locator("#pane-files").boundingBox()).width;
    if (!(filesAfter > filesBefore + 60)) throw new Error(`files pane ${filesBefore}px → ${filesAfter}px after dragging 120px`);

    step("stopping from the workspace closes the panes first, and the session stays stopped");
    await page.getByTestId("workspace-stop").click();
    await page.locator("#pane-chat").waitFor({ state: "detached" });
    await page.getByTestId("session-resume").waitFor(LONG);
    await page.getByTestId("back-to-sessions").click();
    await rowState(id, "stopped").waitFor();
    await expectText(rowName, "Thesis — header", "the picker after the header's rename");

    step("opening a stopped session wakes it up and shows the panes");
    await rowState(id, "stopped").getByTestId("session-open").click();
    await page.locator("#pane-chat").waitFor(LONG);
    await page.getByTestId("workspace-stop").click();
    await page.getByTestId("session-resume").waitFor(LONG);
    await page.getByTestId("back-to-sessions").click();
    await rowState(id, "stopped").waitFor();

    step("delete asks first: Esc and cancel keep it, confirm removes it");
    await rowState(id, "stopped").getByTestId("session-delete").click();
    await page.keyboard.press("Escape");
    await page.getByTestId("confirm-ok").waitFor({ state: "detached" });
    await rowState(id, "stopped").getByTestId("session-delete").click();
    await page.getByTestId("confirm-cancel").click();
    await page.getByTestId("confirm-ok").waitFor({ state: "detached" });
    await rowState(id, "stopped").getByTestId("session-delete").click();
    await page.getByTestId("confirm-ok").click();
    await page.locator(`[data-testid=session-row][data-session-id="${id}"]`).waitFor({ state: "detached", ...LONG });
    deleted = true;
    consoleErrors.check();

    step("an expired login (cookie gone) sends the user back to sign-in with a message");
    await context.clearCookies();
    await page.reload();
    await page.getByTestId("login-notice").waitFor();
  } catch (err) {
    await page.screenshot({ path: `${outDir}/sessions-failure.png` }).catch(() => {});
    throw err;
  } finally {
    // A failed run must not leave a session running on a shared stack.
    if (id && !deleted) {
      await context.request
        .delete(`${baseUrl}/api/sessions/${id}`, { headers: { Origin: baseUrl } })
        .catch(() => {});
    }
    await context.close();
  }
}
