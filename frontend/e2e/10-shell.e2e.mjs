// The app shell: sign-in errors, sign in, the account menu, sign out, no console errors.
import { expectNoConsoleErrors } from "./util.mjs";

export default async function shell({ browser, baseUrl, newUser, step, outDir }) {
  const user = await newUser();
  const context = await browser.newContext();
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

    step("signing out goes back to sign-in, and a reload stays there");
    await page.getByTestId("account-menu").click();
    await page.getByTestId("signout").click();
    await page.getByTestId("login-username").waitFor();
    await page.reload();
    await page.getByTestId("login-username").waitFor();
    consoleErrors.check();
  } catch (err) {
    await page.screenshot({ path: `${outDir}/shell-failure.png` }).catch(() => {});
    throw err;
  } finally {
    await context.close();
  }
}
