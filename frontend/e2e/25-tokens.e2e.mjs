// Personal API tokens on the account page: create one named "ci" with the default scopes, read it
// (shown once) and copy it; from Node with only `Authorization: Bearer` it lists the sessions, and
// after that its "last used" is no longer "never"; revoked through the UI (after a confirmation) it
// is refused with 401. A token without sessions:write may read but gets 403 creating a session.
import { bearerRequest, expectNoConsoleErrors, expectText } from "./util.mjs";

const TOKEN = /^octo_[0-9a-f]{16}_[0-9a-f]{64}$/;
const DEFAULT_SCOPES = ["sessions:read", "sessions:write", "sessions:connect"];

export default async function tokens({ newContext, baseUrl, newUser, step, screenshot }) {
  const user = await newUser();
  const context = await newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const consoleErrors = expectNoConsoleErrors(page);
  const made = []; // ids of the tokens this check created, revoked at the end whatever happens
  const row = (id) => page.locator(`[data-testid=token-row][data-token-id="${id}"]`);
  const bearer = (method, path, token, body) => bearerRequest(baseUrl, method, path, token, body);

  /** Creates a token in the form (the scopes in `untick` unticked) and returns { id, token }. */
  async function createInPage(name, untick = []) {
    await page.getByTestId("token-name").fill(name);
    for (const scope of untick) await page.getByTestId(`token-scope-${scope}`).uncheck();
    await page.getByTestId("token-create").click();
    const created = page.locator(`[data-testid=token-created]`);
    await expectText(created.locator(".token-created-label"), `New token “${name}”`, "the new token's label");
    const id = await created.getAttribute("data-token-id");
    made.push(id);
    const token = await page.getByTestId("token-value").inputValue();
    if (!TOKEN.test(token)) throw new Error(`the page shows ${JSON.stringify(token)}, not an octo_ token`);
    await row(id).waitFor();
    return { id, token };
  }

  try {
    await page.goto(`${baseUrl}/login`);
    await page.getByTestId("login-username").fill(user.username);
    await page.getByTestId("login-password").fill(user.password);
    await page.getByTestId("login-submit").click();
    await page.getByTestId("account-menu").waitFor();

    step("the account page has no tokens yet; the session scopes are ticked, admin is not offered");
    await page.goto(`${baseUrl}/account`);
    await page.getByTestId("tokens-empty").waitFor();
    for (const scope of DEFAULT_SCOPES) {
      if (!(await page.getByTestId(`token-scope-${scope}`).isChecked())) throw new Error(`${scope} is not ticked`);
    }
    if ((await page.getByTestId("token-scope-admin").count()) !== 0) throw new Error("admin offered to a user");
    if ((await page.getByTestId("token-expiry").inputValue()) !== "30") throw new Error("the expiry is not 30 days");

    step('create a token named "ci" with the default scopes: shown once, copied, listed');
    const ci = await createInPage("ci");
    await expectText(page.getByTestId("token-created"), /will not be shown again/, "the show-once warning");
    await expectText(page.getByTestId("token-curl"), `curl -H "Authorization: Bearer $OCTO_TOKEN" ${new URL(baseUrl).origin}/api/sessions`, "the hint");
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseUrl });
    await page.getByTestId("token-copy").click();
    await page.getByTestId("token-copy").filter({ hasText: "Copied" }).waitFor();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    if (copied !== ci.token) throw new Error("the clipboard does not hold the token");
    const scopes = await row(ci.id).locator(".token-scopes code").allTextContents();
    if (scopes.join(" ") !== DEFAULT_SCOPES.join(" ")) throw new Error(`ci is listed with scopes ${scopes}`);
    await expectText(row(ci.id).getByTestId("token-last-used"), "never", "ci's last use before any");
    await expectText(row(ci.id).getByTestId("token-expires"), "in 30 days", "ci's expiry");
    await row(ci.id).scrollIntoViewIfNeeded();
    await screenshot(page, "created");

    step("from Node, the token alone (no cookie) lists the sessions; no token is 401");
    const listed = await bearer("GET", "/api/sessions", ci.token);
    if (listed.status !== 200) throw new Error(`GET /api/sessions with the token: ${listed.status} ${listed.text}`);
    if (!Array.isArray(listed.json())) throw new Error(`GET /api/sessions answered ${listed.text}`);
    const anonymous = await bearer("GET", "/api/sessions", null);
    if (anonymous.status !== 401) throw new Error(`GET /api/sessions without a token: ${anonymous.status}`);

    step("after a reload the token is listed but not shown, and it was used");
    const deadline = Date.now() + 15_000;
    for (;;) {
      await page.reload();
      await row(ci.id).waitFor();
      const lastUsed = (await row(ci.id).getByTestId("token-last-used").textContent())?.trim();
      if (lastUsed !== "never") break;
      if (Date.now() > deadline) throw new Error("ci's last use is still never after it was used");
      await page.waitForTimeout(1000);
    }
    if ((await page.getByTestId("token-value").count()) !== 0) throw new Error("the token is shown again");
    if ((await page.content()).includes(ci.token)) throw new Error("the page still holds the token");
    await row(ci.id).scrollIntoViewIfNeeded();
    await screenshot(page, "used");

    step("revoke it: cancel keeps it, confirm removes it, and the token is refused");
    await row(ci.id).getByRole("button", { name: "Revoke token ci" }).click();
    await page.getByTestId("confirm-cancel").click();
    await page.getByTestId("confirm-ok").waitFor({ state: "detached" });
    await row(ci.id).getByTestId("token-revoke").click();
    await screenshot(page, "confirm-revoke");
    await page.getByTestId("confirm-ok").click();
    await row(ci.id).waitFor({ state: "detached" });
    await page.getByTestId("tokens-empty").waitFor();
    made.splice(made.indexOf(ci.id), 1);
    const refused = await bearer("GET", "/api/sessions", ci.token);
    if (refused.status !== 401) throw new Error(`GET /api/sessions with the revoked token: ${refused.status} ${refused.text}`);

    step("a token without sessions:write reads the sessions but may not create one (403)");
    const reader = await createInPage("read-only", ["sessions:write"]);
    const readerScopes = await row(reader.id).locator(".token-scopes code").allTextContents();
    if (readerScopes.includes("sessions:write")) throw new Error(`read-only has scopes ${readerScopes}`);
    const read = await bearer("GET", "/api/sessions", reader.token);
    if (read.status !== 200) throw new Error(`GET /api/sessions with read-only: ${read.status} ${read.text}`);
    const write = await bearer("POST", "/api/sessions", reader.token, { template: "coding-copilot" });
    if (write.status < 300) {
      // Must not happen; a session it made must not stay on a shared stack.
      const id = write.json().id;
      await context.request.delete(`${baseUrl}/api/sessions/${id}`, { headers: { Origin: baseUrl } }).catch(() => {});
      throw new Error(`POST /api/sessions with a token without sessions:write: ${write.status} ${write.text}`);
    }
    // 403 for the scope, not the same-origin check (which a cookie-less request passes).
    const code = write.status === 403 ? write.json().error?.code : null;
    if (write.status !== 403 || code === "cross_origin") {
      throw new Error(`POST /api/sessions with a token without sessions:write: ${write.status} ${write.text}`);
    }
    consoleErrors.check();
  } catch (err) {
    await screenshot(page, "failure").catch(() => {});
    throw err;
  } finally {
    for (const id of made) {
      await context.request
        .delete(`${baseUrl}/api/me/tokens/${encodeURIComponent(id)}`, { headers: { Origin: baseUrl } })
        .catch(() => {});
    }
    await context.close();
  }
}
