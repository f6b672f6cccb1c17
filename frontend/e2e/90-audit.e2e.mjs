// The audit log page (issue 19), last of the checks so that it lists what they did: the admin's
// invite codes and user changes, filtered by actor and action; a user registered here shows up
// as the actor of its own registration; a time filter in the future leaves nothing; pages go on.
import { expectNoConsoleErrors } from "./util.mjs";

export default async function audit(ctx) {
  const { baseUrl, admin } = ctx;
  const user = await ctx.newUser(); // the admin creates an invite code; the user registers with it
  const context = await ctx.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const consoleErrors = expectNoConsoleErrors(page);
  const rows = page.getByTestId("audit-row");
  /** Every shown row's `attr`, once the table shows what `ready` waits for. */
  const column = (attr) => rows.evaluateAll((list, a) => list.map((r) => r.getAttribute(a)), attr);
  try {
    await page.goto(`${baseUrl}/login`);
    await page.getByTestId("login-username").fill(admin.username);
    await page.getByTestId("login-password").fill(admin.password);
    await page.getByTestId("login-submit").click();
    await page.getByTestId("account-menu").waitFor();
    await page.getByRole("link", { name: "Admin" }).click();
    await page.getByRole("link", { name: "Audit log" }).click();
    await rows.first().waitFor();

    ctx.step("filtered by the admin: only the admin's actions, the checks' invite codes among them");
    await page.getByTestId("audit-actor").selectOption(admin.username);
    await page.locator(`[data-testid="audit-row"][data-action="invite.create"]`).first().waitFor();
    const actors = await column("data-actor");
    if (actors.some((a) => a !== admin.username)) throw new Error(`rows of other actors: ${[...new Set(actors)].join(", ")}`);
    await ctx.screenshot(page, "by-admin");

    ctx.step("and by action: the admin check's disabling of its user");
    await page.getByTestId("audit-action").selectOption("user.disable");
    await rows.first().waitFor();
    if ((await column("data-action")).some((a) => a !== "user.disable")) throw new Error("rows of other actions");

    ctx.step("the user registered here is the actor of its registration");
    await page.getByTestId("audit-action").selectOption("");
    await page.getByTestId("audit-actor").selectOption(user.username);
    await page.locator(`[data-testid="audit-row"][data-actor="${user.username}"][data-action="user.register"]`).waitFor();
    if ((await column("data-actor")).some((a) => a !== user.username)) throw new Error("rows of other actors for the new user");

    ctx.step("a time filter after now leaves nothing; cleared, the pages go on");
    await page.getByTestId("audit-actor").selectOption("");
    await page.getByTestId("audit-from").fill("2999-01-01T00:00");
    await page.getByTestId("audit-count").filter({ hasText: /^0 of/ }).waitFor();
    if ((await rows.count()) !== 0) throw new Error("rows after a future 'from'");
    await page.getByTestId("audit-from").fill("");
    await rows.first().waitFor();
    if (await page.getByTestId("audit-next").isVisible()) {
      const first = await rows.first().textContent();
      await page.getByTestId("audit-next").click();
      await page.getByTestId("audit-page").filter({ hasText: "Page 2" }).waitFor();
      if ((await rows.first().textContent()) === first) throw new Error("page 2 shows page 1's rows");
    }
    consoleErrors.check();
  } finally {
    await context.close();
  }
}
