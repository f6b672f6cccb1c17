// Issue 19's long conversation in a real session: the captured bash reply (chat/fixtures) replayed
// as 500 messages, with 10,000-line command outputs and big diffs, answered to the page in place
// of the session's own conversation list (the stub model would need 250 turns). It is shown
// whole, long outputs collapsed with their size; it scrolls to the top and back; the chat still
// takes typing. Timings are the bench's (`cargo xtask bench ui`), not asserted here.
import { conversation } from "./bench-harness.mjs";
import { expectNoConsoleErrors } from "./util.mjs";

const LONG = { timeout: 180_000 };
const COUNT = 500;

export default async function longChat(ctx) {
  const { baseUrl } = ctx;
  const user = await ctx.newUser();
  const context = await ctx.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  const consoleErrors = expectNoConsoleErrors(page);
  const byTest = (id) => page.getByTestId(id);
  const chat = await conversation(COUNT);
  await page.route(/\/sessions\/[^/]+\/opencode\/session(\?.*)?$/, (route) =>
    route.request().method() === "GET" ? route.fulfill({ json: [chat.session] }) : route.continue(),
  );
  await page.route(new RegExp(`/opencode/session/${chat.session.id}/message(\\?.*)?$`), (route) =>
    route.request().method() === "GET" ? route.fulfill({ body: chat.messages, contentType: "application/json" }) : route.continue(),
  );
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

    ctx.step(`${COUNT} messages shown, long outputs collapsed with their size`);
    const messages = page.locator('[data-testid="chat-message"]');
    await messages.nth(COUNT - 1).waitFor(LONG);
    const tool = page.locator('[data-testid="chat-tool"][data-tool="bash"]').first();
    await tool.locator("summary").click();
    const more = tool.getByTestId("chat-output-more");
    const label = await more.textContent();
    if (!/9,800 earlier lines; show all 10,000 \(\d+ KiB\)/.test(label)) throw new Error(`the collapsed output says: ${label}`);
    const lines = await tool.locator(".chat-terminal").evaluate((e) => e.textContent.split("\n").length);
    if (lines > 300) throw new Error(`a collapsed output shows ${lines} lines`);

    ctx.step("scrolled to the top and back");
    const list = byTest("chat-messages");
    const scrollTo = (where) =>
      list.evaluate(async (el, w) => {
        for (let i = 0; i < 200; i++) {
          el.scrollTop = w === "top" ? 0 : el.scrollHeight;
          await new Promise((r) => requestAnimationFrame(r));
          if (w === "top" ? el.scrollTop === 0 : el.scrollTop + el.clientHeight >= el.scrollHeight - 2) return;
        }
      }, where);
    await scrollTo("top");
    await messages.first().scrollIntoViewIfNeeded();
    const [first, box] = [await messages.first().boundingBox(), await list.boundingBox()];
    if (first.y < box.y - 1 || first.y > box.y + box.height) throw new Error("the first message is not in view at the top");
    await ctx.screenshot(page, "top");
    await scrollTo("bottom");

    ctx.step("the chat takes typing");
    await byTest("chat-input").click();
    await page.keyboard.type("still responsive");
    const typed = await byTest("chat-input").inputValue();
    if (typed !== "still responsive") throw new Error(`the input holds ${JSON.stringify(typed)}`);
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
