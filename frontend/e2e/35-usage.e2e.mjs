// Issue 15's Usage page, as a user meets it: after a prompt answered by the stub model through
// octod's model gateway, the Usage page shows the same tokens as `/api/usage` (per session and
// model, as the gateway recorded what the stub reported), and the monthly budget an admin sets
// appears as a meter with what is used and left. Past the budget, a prompt ends at once with the
// budget's message in the chat (opencode does not retry the gateway's 402).
import { expectNoConsoleErrors } from "./util.mjs";

const LONG = { timeout: 180_000 };

export default async function usage(ctx) {
  const { baseUrl } = ctx;
  const user = await ctx.newUser();
  const context = await ctx.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  const consoleErrors = expectNoConsoleErrors(page);
  const byTest = (id) => page.getByTestId(id);
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

    ctx.step("a prompt answered by the stub model through the model gateway");
    await page.goto(`${baseUrl}/w/${sessionId}`);
    await page.locator("[data-testid=chat-connection][data-state=open]").waitFor({ timeout: 60_000 });
    await byTest("chat-input").fill("Please create the file.");
    await byTest("chat-send").click();
    await page
      .locator("[data-testid=chat-tool][data-tool=bash][data-status=completed]")
      .waitFor({ timeout: 90_000 });
    await page.locator("[data-testid=chat-message][data-role=assistant] .md").last().waitFor({ timeout: 60_000 });

    ctx.step("the Usage page shows what /api/usage says: totals, and a row for the session");
    // opencode may make a request of its own after the reply (a title): compare page and API
    // until both have settled on the same numbers.
    let seen = "";
    for (let attempt = 0; ; attempt += 1) {
      const answer = await context.request.get(`${baseUrl}/api/usage?since_days=30`);
      if (!answer.ok()) throw new Error(`/api/usage: ${answer.status()}`);
      const report = await answer.json();
      await page.goto(`${baseUrl}/usage`);
      await byTest("usage-prompt").waitFor();
      const shown = {
        prompt: await byTest("usage-prompt").textContent(),
        completion: await byTest("usage-completion").textContent(),
        requests: await byTest("usage-requests").textContent(),
      };
      const expected = {
        prompt: report.prompt_tokens.toLocaleString("en-US"),
        completion: report.completion_tokens.toLocaleString("en-US"),
        requests: report.requests.toLocaleString("en-US"),
      };
      seen = `page ${JSON.stringify(shown)}, API ${JSON.stringify(expected)}`;
      if (report.requests > 0 && JSON.stringify(shown) === JSON.stringify(expected)) {
        const rows = page.locator(`[data-testid=usage-row][data-session="${sessionId}"]`);
        if ((await rows.count()) < 1) throw new Error(`no usage row for session ${sessionId}`);
        const apiPrompt = report.rows
          .filter((r) => r.session === sessionId)
          .reduce((sum, r) => sum + r.prompt_tokens, 0);
        let pagePrompt = 0;
        for (const cell of await rows.getByTestId("usage-row-prompt").allTextContents()) {
          pagePrompt += Number(cell.replace(/[^0-9]/g, ""));
        }
        if (pagePrompt !== apiPrompt) throw new Error(`the session's prompt tokens: page ${pagePrompt}, API ${apiPrompt}`);
        ctx.step(`  ${expected.requests} requests, ${expected.prompt} prompt and ${expected.completion} completion tokens`);
        break;
      }
      if (attempt >= 10) throw new Error(`the Usage page and /api/usage differ: ${seen}`);
      await page.waitForTimeout(1000);
    }
    await ctx.screenshot(page, "usage-page");

    ctx.step("an admin sets the user's monthly budget: the page shows it as a meter, used and left");
    const admin = await ctx.newContext();
    try {
      await ctx.apiLogin(admin, ctx.admin);
      const set = await admin.request.post(`${baseUrl}/api/admin/users/${user.username}/budget`, {
        data: { monthly_tokens: 1_000_000 },
        headers: { Origin: baseUrl },
      });
      if (!set.ok()) throw new Error(`setting the budget: ${set.status()} ${await set.text()}`);
    } finally {
      await admin.close();
    }
    await page.reload();
    const text = byTest("usage-budget-text");
    await text.waitFor();
    const report = await (await context.request.get(`${baseUrl}/api/usage?since_days=30`)).json();
    const used = report.budget?.used;
    if (typeof used !== "number") throw new Error(`no budget in /api/usage: ${JSON.stringify(report.budget)}`);
    const words = await text.textContent();
    if (!words.includes("of 1,000,000 tokens used this month") || !words.includes("A budget set for you by an admin")) {
      throw new Error(`the budget text: ${words}`);
    }
    const meter = page.locator('[data-testid=usage-budget] [role=meter]');
    if ((await meter.getAttribute("aria-valuemax")) !== "1000000") throw new Error("the meter's maximum");
    if (Number(await meter.getAttribute("aria-valuenow")) < 1) throw new Error("the meter shows nothing used");
    await ctx.screenshot(page, "usage-budget");

    ctx.step("past the budget (an admin sets it to 1 token), the chat shows the budget's message");
    const admin2 = await ctx.newContext();
    try {
      await ctx.apiLogin(admin2, ctx.admin);
      const set = await admin2.request.post(`${baseUrl}/api/admin/users/${user.username}/budget`, {
        data: { monthly_tokens: 1 },
        headers: { Origin: baseUrl },
      });
      if (!set.ok()) throw new Error(`setting the budget: ${set.status()} ${await set.text()}`);
    } finally {
      await admin2.close();
    }
    await page.goto(`${baseUrl}/w/${sessionId}`);
    await page.locator("[data-testid=chat-connection][data-state=open]").waitFor({ timeout: 60_000 });
    await byTest("chat-input").fill("One more, please.");
    await byTest("chat-send").click();
    const refusal = page.getByText(/^monthly token budget of 1 reached; resets on \d{4}-\d{2}-01$/).first();
    await refusal.waitFor({ timeout: 60_000 });
    // Not retried: the agent is idle again (no Stop button), and no "retrying" note.
    await byTest("chat-abort").waitFor({ state: "hidden", timeout: 30_000 });
    if ((await page.getByText(/retrying \(attempt/i).count()) > 0) throw new Error("the chat shows a retry");
    await ctx.screenshot(page, "usage-over-budget");
    consoleErrors.check();
  } finally {
    if (sessionId) {
      await context.request.delete(`${baseUrl}/api/sessions/${sessionId}`, { headers: { Origin: baseUrl } }).catch(() => {});
    }
    await context.close();
  }
}
