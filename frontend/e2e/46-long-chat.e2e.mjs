// Issue 19's long conversation in a real session: the captured bash reply (chat/fixtures) replayed
// as 500 messages, with 10,000-line command outputs and big diffs, answered to the page in place
// of the session's own conversation list (the stub model would need 250 turns). The list is
// windowed: fewer than MAX_IN_DOM messages are in the DOM wherever it is scrolled; long outputs
// and diffs are collapsed with their size, and stay usable when shown whole; it scrolls to the
// top and back, by the scrollbar and from the keyboard, loading earlier pages (opencode's `limit`
// and `before`) on the way up; the chat still takes typing. Timings are
// the bench's (`cargo xtask bench ui`), not asserted here.
import { conversation } from "./bench-harness.mjs";
import { expectNoConsoleErrors } from "./util.mjs";

const LONG = { timeout: 180_000 };
const COUNT = 500;
/** What the check allows in the DOM (the pane shows a dozen short messages at this size). */
const MAX_IN_DOM = 60;

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
  // Paged as opencode pages it (`limit`, `before`, `X-Next-Cursor`): the chat loads the newest
  // page, then earlier ones as the list is scrolled up.
  await page.route(new RegExp(`/opencode/session/${chat.session.id}/message(\\?.*)?$`), (route) => {
    if (route.request().method() !== "GET") return route.continue();
    const answer = chat.page(new URL(route.request().url()).searchParams);
    return route.fulfill({ status: answer.status, body: answer.body, headers: answer.headers, contentType: "application/json" });
  });
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
    await checkLongChat(ctx, page, chat);
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

/** The checks, once `page` shows the workspace whose chat is answered with `chat` (`conversation()`;
 * also run against the bench harness while developing). */
export async function checkLongChat(ctx, page, chat) {
  const byTest = (id) => page.getByTestId(id);
  // The conversation in the order the chat shows it (by id), and the messages to look at.
  const listed = JSON.parse(chat.messages).sort((a, b) => (a.info.id < b.info.id ? -1 : 1));
  const ids = listed.map((m) => m.info.id);
  const outputOf = (m) => m.parts.find((p) => p.type === "tool")?.state?.output ?? "";
  const longOutput = listed.find((m) => outputOf(m).split("\n").length === 10_000).info.id;
  const bigDiff = listed.find((m) => m.parts.some((p) => p.type === "text" && p.text.includes("```diff"))).info.id;
  const message = (id) => page.locator(`[data-testid="chat-message"][data-message-id="${id}"]`);
  const list = byTest("chat-messages");
  const inDom = () => page.locator('[data-testid="chat-message"]').count();
  const expectFewInDom = async (where) => {
    const count = await inDom();
    if (count >= MAX_IN_DOM) throw new Error(`${count} messages in the DOM ${where}`);
  };
  /** Whether message `id` is rendered and within the list's viewport. */
  const seen = (id) =>
    list.evaluate((el, id) => {
      const m = el.querySelector(`[data-message-id="${id}"]`);
      if (!m) return false;
      const [box, view] = [m.getBoundingClientRect(), el.getBoundingClientRect()];
      return box.bottom > view.top && box.top < view.bottom;
    }, id);
  /** Scrolls the list, a viewport at a time, towards message `id` (by its place in `ids`) until
   * it is rendered, then brings its top into view. */
  const reveal = (id) =>
    list.evaluate(
      async (el, { id, ids }) => {
        const target = ids.indexOf(id);
        for (let i = 0; i < 2000 && !el.querySelector(`[data-message-id="${id}"]`); i++) {
          const shown = [...el.querySelectorAll("[data-message-id]")].map((m) => ids.indexOf(m.dataset.messageId));
          const below = shown.length > 0 && Math.min(...shown) > target;
          el.scrollTop += (below ? -1 : 1) * el.clientHeight;
          await new Promise((r) => requestAnimationFrame(r));
        }
        el.querySelector(`[data-message-id="${id}"]`)?.scrollIntoView({ block: "start" });
        await new Promise((r) => requestAnimationFrame(r));
      },
      { id, ids },
    );
  /** Scrolls the list to its top or end, waiting a frame per try until it stays there; the top
   * is the conversation's first message (earlier pages load on the way). */
  const scrollTo = (where) =>
    list.evaluate(
      async (el, { w, first }) => {
        const deadline = Date.now() + 120_000;
        while (Date.now() < deadline) {
          el.scrollTop = w === "top" ? 0 : el.scrollHeight;
          await new Promise((r) => requestAnimationFrame(r));
          if (w === "top" ? el.scrollTop === 0 && el.querySelector(`[data-message-id="${first}"]`) : el.scrollTop + el.clientHeight >= el.scrollHeight - 2) return;
        }
      },
      { w: where, first: ids[0] },
    );

  ctx.step(`${COUNT} messages open at the end, few of them in the DOM`);
  await message(ids.at(-1)).waitFor(LONG);
  if (!(await seen(ids.at(-1)))) throw new Error("the last message is not in view");
  await expectFewInDom("at the end");
  const pageCount = await page.locator('[data-testid="chat-older"]').count();
  if (pageCount !== 1) throw new Error("a paged conversation does not say that earlier messages remain");

  ctx.step("a 10,000-line output is collapsed with its size, and shown whole when asked");
  const tool = message(longOutput).locator('[data-testid="chat-tool"][data-tool="bash"]');
  // An earlier page that loads as the list nears its top can move the message out of the
  // rendered window again after it was brought into view: reveal it until the click lands.
  for (let attempt = 1; ; attempt++) {
    await reveal(longOutput);
    try {
      await tool.locator("summary").click({ timeout: 3_000 });
      break;
    } catch (error) {
      if (attempt >= 10) throw error;
    }
  }
  const more = tool.getByTestId("chat-output-more");
  const label = await more.textContent();
  if (!/9,800 earlier lines; show all 10,000 \(\d+ KiB\)/.test(label)) throw new Error(`the collapsed output says: ${label}`);
  const terminalLines = () => tool.locator(".chat-terminal").evaluate((e) => e.textContent.split("\n").length);
  const collapsed = await terminalLines();
  if (collapsed > 300) throw new Error(`a collapsed output shows ${collapsed} lines`);
  await more.click();
  const whole = await terminalLines();
  if (whole < 10_000) throw new Error(`the whole output shows ${whole} lines`);
  await expectFewInDom("with a 10,000-line output shown");
  // Closed again, the card's body leaves the DOM.
  await tool.locator("summary").click();
  await tool.locator(".chat-terminal").waitFor({ state: "detached" });

  ctx.step("a 2,000-line diff in a reply shows its first 200 lines and its length");
  const diffMore = message(bigDiff).locator(".md-code-more");
  for (let attempt = 1; ; attempt++) {
    await reveal(bigDiff);
    if ((await diffMore.count()) > 0) break;
    if (attempt >= 10) throw new Error("the diff's message stays out of the rendered window");
    await page.waitForTimeout(300);
  }
  const diffLabel = await diffMore.textContent();
  if (!/showing 200 of 2,000 lines/.test(diffLabel)) throw new Error(`the clipped diff says: ${diffLabel}`);
  const codeLines = await message(bigDiff).locator("pre.md-code-clipped code").evaluate((e) => e.textContent.split("\n").length);
  if (codeLines !== 200) throw new Error(`a clipped diff shows ${codeLines} lines`);
  await ctx.screenshot(page, "diff");

  ctx.step("scrolled to the top and back");
  await scrollTo("top");
  await message(ids[0]).waitFor();
  if (!(await seen(ids[0]))) throw new Error("the first message is not in view at the top");
  await expectFewInDom("at the top");
  if ((await page.locator('[data-testid="chat-older"]').count()) !== 0) throw new Error("earlier messages are still offered at the start");
  const height = await list.evaluate((el) => el.scrollHeight);
  if (height < COUNT * 30) throw new Error(`the list scrolls ${height} px, not the whole conversation's height`);
  await ctx.screenshot(page, "top");
  await scrollTo("bottom");
  await message(ids.at(-1)).waitFor();
  if (!(await seen(ids.at(-1)))) throw new Error("the last message is not in view back at the end");
  await expectFewInDom("back at the end");

  ctx.step("the list scrolls from the keyboard");
  await list.focus();
  await page.keyboard.press("Home");
  await page.waitForFunction((id) => {
    const el = document.querySelector('[data-testid="chat-messages"]');
    return el.scrollTop === 0 && el.querySelector(`[data-message-id="${id}"]`) !== null;
  }, ids[0]);
  await page.keyboard.press("End");
  await page.waitForFunction((id) => document.querySelector(`[data-message-id="${id}"]`) !== null, ids.at(-1));

  ctx.step("the chat takes typing");
  await byTest("chat-input").click();
  await page.keyboard.type("still responsive");
  const typed = await byTest("chat-input").inputValue();
  if (typed !== "still responsive") throw new Error(`the input holds ${JSON.stringify(typed)}`);
}
