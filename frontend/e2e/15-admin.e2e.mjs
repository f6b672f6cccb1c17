// Admin pages: generate an invite code in the UI, register with it through the sign-up link,
// disable that user (their sign-in is refused with the API's message), enable again, revoke a code.
import { expectNoConsoleErrors } from "./util.mjs";

export default async function admin({ newContext, baseUrl, admin, step, outDir }) {
  const adminContext = await newContext();
  const page = await adminContext.newPage();
  const userContext = await newContext();
  const userPage = await userContext.newPage();
  const consoleErrors = expectNoConsoleErrors(page);
  try {
    step("the admin signs in and generates a one-use invite code");
    await page.goto(`${baseUrl}/login`);
    await page.getByTestId("login-username").fill(admin.username);
    await page.getByTestId("login-password").fill(admin.password);
    await page.getByTestId("login-submit").click();
    await page.getByTestId("account-menu").waitFor();
    await page.getByRole("link", { name: "Admin" }).click();
    await page.getByRole("link", { name: "Invite codes" }).click();
    await page.getByTestId("invite-uses").fill("1");
    await page.getByTestId("invite-generate").click();
    const code = (await page.getByTestId("invite-new-code").textContent())?.trim();
    if (!code) throw new Error("no invite code shown after generating one");
    await page.locator(`[data-testid=invite-row][data-code="${code}"]`).waitFor();

    step("the code and the sign-up link copy to the clipboard");
    await adminContext.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseUrl });
    await page.getByTestId("invite-copy").click();
    await page.getByTestId("invite-copy").filter({ hasText: "Copied" }).waitFor();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    if (copied !== code) throw new Error(`clipboard holds ${JSON.stringify(copied)}, not the code ${code}`);
    await page.getByTestId("invite-copy-link").click();
    await page.getByTestId("invite-copy-link").filter({ hasText: "Copied" }).waitFor();
    const link = await page.evaluate(() => navigator.clipboard.readText());
    if (link !== `${baseUrl}/register?invite=${encodeURIComponent(code)}`) throw new Error(`copied link is ${link}`);

    step("a new user registers with the sign-up link");
    const username = `adm${Date.now().toString(36)}`;
    const password = "a-long-password-1";
    await userPage.goto(`${baseUrl}/register?invite=${encodeURIComponent(code)}`);
    if ((await userPage.getByTestId("register-invite").inputValue()) !== code) throw new Error("invite not prefilled");
    await userPage.getByTestId("register-username").fill(username);
    await userPage.getByTestId("register-password").fill(password);
    await userPage.getByTestId("register-submit").click();
    await userPage.getByTestId("account-menu").waitFor();

    step("the code is used up; using it again shows the API's error");
    consoleErrors.allow(403);
    const other = await newContext();
    const otherPage = await other.newPage();
    await otherPage.goto(`${baseUrl}/register?invite=${encodeURIComponent(code)}`);
    await otherPage.getByTestId("register-username").fill(`${username}x`);
    await otherPage.getByTestId("register-password").fill(password);
    await otherPage.getByTestId("register-submit").click();
    await otherPage.getByTestId("error").waitFor();
    await other.close();

    step("the admin disables the user: their next request sends them to sign-in with a message");
    await page.getByRole("link", { name: "Users" }).click();
    const row = page.locator(`[data-testid=user-row][data-user="${username}"]`);
    await row.getByTestId("user-disable").click();
    await row.getByTestId("user-enable").waitFor();
    await userPage.reload();
    await userPage.getByTestId("login-notice").waitFor();
    await userPage.getByTestId("login-username").fill(username);
    await userPage.getByTestId("login-password").fill(password);
    await userPage.getByTestId("login-submit").click();
    await userPage.getByTestId("error").waitFor();

    step("enabled again, the user signs in; the role can be changed");
    await row.getByTestId("user-enable").click();
    await row.getByTestId("user-disable").waitFor();
    await row.getByTestId("user-role").selectOption("admin");
    await page.reload();
    const role = await page.locator(`[data-testid=user-row][data-user="${username}"]`).getByTestId("user-role").inputValue();
    if (role !== "admin") throw new Error(`role after change and reload is ${role}`);
    await userPage.getByTestId("login-submit").click();
    await userPage.getByTestId("account-menu").waitFor();

    step("a revoked code disappears from the list");
    await page.getByRole("link", { name: "Invite codes" }).click();
    await page.getByTestId("invite-generate").click();
    const second = (await page.getByTestId("invite-new-code").textContent())?.trim();
    const secondRow = page.locator(`[data-testid=invite-row][data-code="${second}"]`);
    await secondRow.getByTestId("invite-revoke").click();
    await page.getByTestId("confirm-ok").click();
    await secondRow.waitFor({ state: "detached" });
    consoleErrors.check();
  } catch (err) {
    await page.screenshot({ path: `${outDir}/admin-failure.png` }).catch(() => {});
    await userPage.screenshot({ path: `${outDir}/admin-user-failure.png` }).catch(() => {});
    throw err;
  } finally {
    await adminContext.close();
    await userContext.close();
  }
}
