// The Files and Terminal panes in depth, against a real session: new folder, upload into it by
// the button and by drag and drop (several files, progress rows), text and image previews,
// replacing an existing file, rename, a folder's zip download, delete with confirmation, names
// that need encoding or are not UTF-8; the terminal follows the pane's size (stty), and a new
// shell starts after the old one exits.
import { readFile } from "node:fs/promises";
import { expectNoConsoleErrors } from "./util.mjs";

const LONG = { timeout: 180_000 };
/** A 2×1 PNG (one red, one blue pixel). */
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAIAAAB7QOjdAAAAEElEQVR4nGP4z8DAwMDAAAAeAgH/5HLcqQAAAABJRU5ErkJggg==",
  "base64",
);

export default async function files(ctx) {
  const { baseUrl } = ctx;
  const user = await ctx.newUser();
  const context = await ctx.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  const consoleErrors = expectNoConsoleErrors(page);
  // Chromium's console line for an HTTP error has no URL; these say which request it was.
  const failedRequests = [];
  let current = "start";
  const step = (message) => {
    current = message;
    ctx.step(message);
  };
  const issuedDuring = new WeakMap();
  page.on("request", (r) => issuedDuring.set(r, current));
  page.on("response", (r) => {
    if (r.status() >= 400 && r.status() !== 401) {
      const issued = issuedDuring.get(r.request());
      failedRequests.push(`${r.status()} ${r.request().method()} ${r.url()} (sent during: ${issued}; answered during: ${current})`);
    }
  });
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

    step("new folder (a name that needs encoding), selected as the upload target");
    const folder = "/Ünïcode & co #1";
    await byTest("files-new-folder").click();
    await byTest("files-name-input").fill("bad/name");
    if (!(await byTest("confirm-ok").isDisabled())) throw new Error("a name with / was accepted");
    await byTest("files-name-input").fill(folder.slice(1));
    await byTest("confirm-ok").click();
    await entry(folder).waitFor();
    await entry(folder).click(); // selects and expands it

    step("upload two files into it with the button, each with its progress row");
    await byTest("files-upload-input").setInputFiles([
      { name: "a.txt", mimeType: "text/plain", buffer: Buffer.from("first file\n") },
      { name: "pixel.png", mimeType: "image/png", buffer: PNG },
    ]);
    await entry(`${folder}/a.txt`).waitFor();
    await entry(`${folder}/pixel.png`).waitFor();
    await page.locator(`[data-testid="upload-row"][data-path="${folder}/a.txt"][data-status="done"]`).waitFor();
    await page.locator(`[data-testid="upload-row"][data-path="${folder}/pixel.png"][data-status="done"]`).waitFor();

    step("previews: text, and the image decoded");
    await entry(`${folder}/a.txt`).click();
    await page.locator(`[data-testid="file-preview"][data-path="${folder}/a.txt"]`, { hasText: "first file" }).waitFor();
    await entry(`${folder}/pixel.png`).click();
    const image = page.locator(`[data-testid="file-preview"][data-path="${folder}/pixel.png"] img`);
    await image.waitFor();
    await page.waitForFunction((img) => img.complete && img.naturalWidth === 2 && img.naturalHeight === 1, await image.elementHandle());
    await ctx.screenshot(page, "previews");

    step("uploading over an existing file asks first; Replace overwrites it");
    consoleErrors.allow(409); // the refused first attempt
    // pixel.png is selected, so uploads go to its folder.
    await byTest("files-upload-input").setInputFiles({ name: "a.txt", mimeType: "text/plain", buffer: Buffer.from("second version\n") });
    const again = page.locator(`[data-testid="upload-row"][data-path="${folder}/a.txt"]`).last();
    await again.and(page.locator('[data-status="conflict"]')).waitFor();
    await again.getByRole("button", { name: "Replace" }).click();
    await again.and(page.locator('[data-status="done"]')).waitFor();
    await entry(`${folder}/a.txt`).click();
    await page.locator(`[data-testid="file-preview"][data-path="${folder}/a.txt"]`, { hasText: "second version" }).waitFor();

    step("drop two files on the folder's row");
    await entry(folder).evaluate((target) => {
      const data = new DataTransfer();
      data.items.add(new File(["dropped one\n"], "drop1.txt", { type: "text/plain" }));
      data.items.add(new File(["dropped two\n"], "drop2.txt", { type: "text/plain" }));
      for (const type of ["dragenter", "dragover", "drop"]) {
        target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: data }));
      }
    });
    await entry(`${folder}/drop1.txt`).waitFor();
    await entry(`${folder}/drop2.txt`).waitFor();

    step("rename a file");
    await entry(`${folder}/drop2.txt`).hover();
    await entry(`${folder}/drop2.txt`).getByTestId("file-rename").click();
    await byTest("files-name-input").fill("renamed.txt");
    await byTest("confirm-ok").click();
    await entry(`${folder}/renamed.txt`).waitFor();
    await entry(`${folder}/drop2.txt`).waitFor({ state: "detached" });

    step("download the folder as a zip holding its four files");
    await entry(folder).hover();
    const [zip] = await Promise.all([page.waitForEvent("download"), entry(folder).getByTestId("file-download").click()]);
    if (!zip.suggestedFilename().endsWith(".zip")) throw new Error(`the folder downloaded as ${zip.suggestedFilename()}`);
    const names = zipNames(await readFile(await zip.path()));
    for (const name of ["a.txt", "drop1.txt", "pixel.png", "renamed.txt"]) {
      if (!names.some((n) => n === `${folder.slice(1)}/${name}` || n === name)) {
        throw new Error(`the zip lacks ${name}; it holds ${names.join(", ")}`);
      }
    }
    await ctx.screenshot(page, "tree");

    step("the tree works from the keyboard");
    const selected = (path) => page.locator(`[data-testid="file-entry"][data-path="${path}"][aria-selected="true"]:focus`);
    await entry(`${folder}/a.txt`).click();
    await page.keyboard.press("ArrowDown");
    await selected(`${folder}/drop1.txt`).waitFor();
    await page.keyboard.press("ArrowLeft");
    await selected(folder).waitFor();
    await page.keyboard.press("ArrowLeft");
    await entry(`${folder}/a.txt`).waitFor({ state: "detached" });
    await page.keyboard.press("ArrowRight");
    await entry(`${folder}/a.txt`).waitFor();

    step("delete: cancel keeps it, confirm removes the folder and everything in it");
    await entry(folder).hover();
    await entry(folder).getByTestId("file-delete").click();
    await byTest("confirm-cancel").click();
    await entry(folder).waitFor();
    await entry(folder).hover();
    await entry(folder).getByTestId("file-delete").click();
    await byTest("confirm-ok").click();
    await entry(folder).waitFor({ state: "detached" });
    await entry(`${folder}/a.txt`).waitFor({ state: "detached" });

    step("the terminal follows the pane's size");
    await page.locator('[data-testid="terminal-status"][data-state="connected"]').waitFor();
    const before = await terminalSize(page, 1);
    const screenWidth = () => page.locator('[data-testid="terminal"] .xterm-screen').evaluate((e) => e.getBoundingClientRect().width);
    const wide = await screenWidth();
    await page.setViewportSize({ width: 1000, height: 700 });
    // xterm re-lays its screen out once it has fitted the new size (and sent ttyd the resize).
    await page.waitForFunction(
      (width) => document.querySelector('[data-testid="terminal"] .xterm-screen').getBoundingClientRect().width < width,
      wide,
    );
    const after = await terminalSize(page, 2);
    if (!(after.cols < before.cols && after.rows < before.rows)) {
      throw new Error(`stty size went from ${before.rows}x${before.cols} to ${after.rows}x${after.cols}`);
    }

    step("files the terminal writes appear in the tree by themselves");
    await typeLine(page, "mkdir -p from-shell && echo hi > from-shell/x.txt && echo made-$((1+1))");
    await waitForRow(page, "made-2");
    await entry("/from-shell").waitFor();
    await ctx.screenshot(page, "terminal");

    step("a name that is not UTF-8: previewed and deleted by its raw path");
    await typeLine(page, "printf 'raw bytes\\n' > $'bad\\xffname.txt' && echo made-raw");
    await waitForRow(page, "made-raw");
    const raw = entry("/bad\ufffdname.txt");
    await raw.waitFor();
    await raw.click();
    await page.locator('[data-testid="file-preview"]', { hasText: "raw bytes" }).waitFor();
    await raw.hover();
    await raw.getByTestId("file-delete").click();
    await byTest("confirm-ok").click();
    await raw.waitFor({ state: "detached" });
    await typeLine(page, "ls bad* 2>/dev/null | wc -l | sed 's/^/left=/'");
    await waitForRow(page, "left=0");

    step("Ctrl+C copies the terminal's selection (and sends no ^C)");
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseUrl });
    await typeLine(page, "echo copy-$((3*5))-me");
    await waitForRow(page, "copy-15-me");
    const copied = page.locator('[data-testid="terminal"] .xterm-rows > div', { hasText: /^copy-15-me\s*$/ });
    // xterm's screen lies over its rows and takes the mouse: double-click where the word is.
    const box = await copied.boundingBox();
    await page.mouse.dblclick(box.x + 20, box.y + box.height / 2);
    await page.keyboard.press("Control+c");
    await page.waitForFunction(() => navigator.clipboard.readText().then((t) => t.includes("copy-15-me")));
    await typeLine(page, "echo after-copy");
    await waitForRow(page, "after-copy");
    const interrupted = await page.locator('[data-testid="terminal"] .xterm-rows').evaluate((rows) => rows.textContent.includes("^C"));
    if (interrupted) throw new Error("Ctrl+C with a selection also sent ^C to the shell");

    step("when the shell exits the terminal says so, and Enter starts a new shell");
    await typeLine(page, "exit");
    await page.locator('[data-testid="terminal-status"][data-state="closed"]').waitFor();
    await page.keyboard.press("Enter");
    await page.locator('[data-testid="terminal-status"][data-state="connected"]').waitFor();
    await typeLine(page, "echo again-$((2*3))");
    await waitForRow(page, "again-6");
    consoleErrors.check();
  } catch (err) {
    await ctx.screenshot(page, "failure").catch(() => {});
    if (failedRequests.length > 0) err.message += `\nfailed requests:\n${failedRequests.join("\n")}`;
    throw err;
  } finally {
    if (sessionId) {
      await context.request.delete(`${baseUrl}/api/sessions/${sessionId}`, { headers: { Origin: baseUrl } }).catch(() => {});
    }
    await context.close();
  }
}

async function typeLine(page, line) {
  await page.getByTestId("terminal").click();
  await page.keyboard.type(line);
  await page.keyboard.press("Enter");
}

async function waitForRow(page, text) {
  await page.waitForFunction((want) => {
    const rows = document.querySelector('[data-testid="terminal"] .xterm-rows');
    return rows !== null && Array.from(rows.children).some((row) => row.textContent.trim() === want);
  }, text);
}

/** The shell's idea of the terminal's size: `stty size` prints "rows cols" (after a marker that
 * the echoed command line itself does not start with). */
async function terminalSize(page, n) {
  await typeLine(page, `stty size | sed 's/^/size${n}=/'`);
  const handle = await page.waitForFunction((marker) => {
    const rows = document.querySelector('[data-testid="terminal"] .xterm-rows');
    const pattern = new RegExp(`^${marker}\\d+ \\d+$`);
    const line = rows && Array.from(rows.children).map((r) => r.textContent.trim()).find((t) => pattern.test(t));
    return line ?? null;
  }, `size${n}=`);
  const [rows, cols] = (await handle.jsonValue()).split("=")[1].split(" ").map(Number);
  return { rows, cols };
}

/** The entry names in a zip's central directory. */
function zipNames(buffer) {
  const names = [];
  for (let i = buffer.length - 22; i >= 0; i--) {
    if (buffer.readUInt32LE(i) !== 0x06054b50) continue;
    let offset = buffer.readUInt32LE(i + 16);
    const count = buffer.readUInt16LE(i + 10);
    for (let n = 0; n < count && offset !== 0xffffffff; n++) {
      if (buffer.readUInt32LE(offset) !== 0x02014b50) break;
      const nameLength = buffer.readUInt16LE(offset + 28);
      const extra = buffer.readUInt16LE(offset + 30);
      const comment = buffer.readUInt16LE(offset + 32);
      names.push(buffer.subarray(offset + 46, offset + 46 + nameLength).toString("utf8"));
      offset += 46 + nameLength + extra + comment;
    }
    break;
  }
  return names;
}
