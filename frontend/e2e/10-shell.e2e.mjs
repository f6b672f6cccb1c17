// The app shell: sign-in errors, sign in, the account menu, sign out, no console errors.
import { expectNoConsoleErrors } from "./util.mjs";

export default async function shell({ newContext, baseUrl, newUser, step, outDir }) {
  const user = await newUser();
  const context = await newContext();
  const page = await context.newPage();
  const consoleErrors = expectNoConsoleErrors(page);
  try {
    step("a wrong password shows the API's error");
    await page.goto(`${baseUrl}/`);
    await page.getByTestId("login-username").fill(user.username);
    await page.getByTestId("login-password").fill("wrong-password");
    await page.getByTestId("login-submit").click();
    await page.getByTestId("error").waitFor();

    step("signing in shows the sessions page");
    await page.getByTestId("login-password").fill(user.password);
    await page.getByTestId("login-submit").click();
    await page.getByTestId("account-menu").waitFor();
    if (new URL(page.url()).pathname !== "/") throw new Error(`after sign-in the page is ${page.url()}`);

    step("the account page changes the password (a wrong current one shows the API's error)");
    await page.getByTestId("account-menu").click();
    await page.getByRole("menuitem", { name: "Account" }).click();
    consoleErrors.allow(403);
    await page.getByTestId("password-current").fill("not-the-password");
    await page.getByTestId("password-new").fill(`${user.password}-2`);
    await page.getByTestId("password-repeat").fill(`${user.password}-2`);
    await page.getByTestId("password-submit").click();
    await page.getByTestId("error").waitFor();
    await page.getByTestId("password-current").fill(user.password);
    await page.getByTestId("password-submit").click();
    await page.getByTestId("password-changed").waitFor();
    user.password = `${user.password}-2`;

    step("the theme toggle switches and is remembered");
    const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
    const first = await theme();
    await page.getByTestId("theme-toggle").click();
    const second = await theme();
    if (second === first) throw new Error(`theme stayed ${first}`);
    await page.reload();
    await page.getByTestId("account-menu").waitFor();
    if ((await theme()) !== second) throw new Error("theme not remembered over a reload");

    step("signing out goes back to sign-in, and a reload stays there");
    await page.getByTestId("account-menu").click();
    await page.getByTestId("signout").click();
    await page.getByTestId("login-username").waitFor();
    await page.reload();
    await page.getByTestId("login-username").waitFor();

    step("the new password signs in");
    await page.getByTestId("login-username").fill(user.username);
    await page.getByTestId("login-password").fill(user.password);
    await page.getByTestId("login-submit").click();
    await page.getByTestId("account-menu").waitFor();
    consoleErrors.check();
  } catch (err) {
    await page.screenshot({ path: `${outDir}/shell-failure.png` }).catch(() => {});
    throw err;
  } finally {
    await context.close();
  }
}
