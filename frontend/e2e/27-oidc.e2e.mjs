// Sign-in with OpenID Connect against a real provider (panva's oidc-provider, e2e/oidc-provider.mjs),
// through Caddy: the package's oidc phase (`cargo xtask ci`) starts the provider, configures octod
// with two providers of it ("corp": groups claim, admins and allowed groups; "partners": an invite
// code on the first sign-in) and runs this check with OCTO_OIDC_ISSUER set. Without it (the
// general browser run) the check says it is skipped.
//
// The provider's users: alice (octo-users, octo-admins), bob (octo-users), eve (other), carol.
import { request as httpsRequest } from "node:https";
import { expectText } from "./util.mjs";

const CORP = "Corp SSO";

export default async function oidc({ newContext, baseUrl, inviteCode, step, screenshot }) {
  const issuer = process.env.OCTO_OIDC_ISSUER;
  if (!issuer) {
    step("skipped: no OpenID Connect provider in this run (the package's oidc phase runs this check with one)");
    return;
  }
  const origin = new URL(baseUrl).origin;
  const contexts = [];
  const errors = [];

  /** A fresh browser (its own cookies at Octo and at the provider). Console errors of Octo's
   * pages fail the check; the provider's development pages load web fonts, which are blocked. */
  async function browser() {
    const context = await newContext({ viewport: { width: 1100, height: 800 } });
    contexts.push(context);
    await context.route(/fonts\.googleapis\.com|fonts\.gstatic\.com/, (route) => route.abort());
    const page = await context.newPage();
    page.on("console", (message) => {
      const at = message.location()?.url ?? "";
      if (message.type() !== "error" || !at.startsWith(origin)) return;
      // Refusals answer 401 on /api/me by design.
      if (/status of 401/.test(message.text())) return;
      errors.push(`${at}: ${message.text()}`);
    });
    page.on("pageerror", (error) => {
      if (page.url().startsWith(origin)) errors.push(String(error));
    });
    return { context, page };
  }

  /** Clicks "Sign in with …" and signs in at the provider as `login` (any password), giving
   * consent when asked. Resolves once the browser is back at one of Octo's pages. */
  async function signIn(page, provider, login) {
    if (!page.url().startsWith(`${origin}/login`)) await page.goto(`${baseUrl}/login`);
    await atProvider(page, login, () => page.getByTestId(`oidc-${provider}`).click());
  }

  /** Runs `go` (which leaves for the provider) and answers the provider's pages until the
   * browser comes back through Octo's callback. */
  async function atProvider(page, login, go) {
    let back = false;
    const callback = page
      .waitForRequest((request) => /\/api\/auth\/oidc\/[^/]+\/callback/.test(request.url()), { timeout: 60_000 })
      .finally(() => {
        back = true;
      });
    await go();
    const form = page.locator("input[name=login]");
    const consent = page.getByRole("button", { name: "Continue" });
    while (!back) {
      if (await form.isVisible().catch(() => false)) {
        await form.fill(login);
        await page.locator("input[name=password]").fill("any password");
        await page.locator("button[type=submit]").click();
      } else if (await consent.isVisible().catch(() => false)) {
        await consent.click();
      }
      await Promise.race([callback.catch(() => {}), new Promise((resolve) => setTimeout(resolve, 250))]);
    }
    await callback;
    await page.waitForURL((url) => url.origin === origin && !url.pathname.startsWith("/api/"), { timeout: 30_000 });
    await page.waitForLoadState();
  }

  async function me(page) {
    const response = await page.request.get(`${baseUrl}/api/me`);
    return { status: response.status(), user: response.ok() ? await response.json() : null };
  }

  async function expectRefused(page, code, message, what) {
    await page.waitForURL((url) => url.pathname === "/login" && url.searchParams.get("oidc_error") === code, { timeout: 30_000 }).catch(() => {
      throw new Error(`${what}: expected /login?oidc_error=${code}, at ${page.url()}`);
    });
    await expectText(page.getByTestId("error"), message, what);
    const after = await me(page);
    if (after.status !== 401) throw new Error(`${what}: /api/me answers ${after.status} (${JSON.stringify(after.user)}), not 401`);
  }

  /** Rewrites the next callback request of `page` (its query) with `change`. */
  async function rewriteCallback(page, change) {
    await page.route(
      "**/api/auth/oidc/*/callback**",
      async (route) => {
        const url = new URL(route.request().url());
        change(url.searchParams);
        await route.continue({ url: url.toString() });
      },
      { times: 1 },
    );
  }

  try {
    step(`the sign-in page offers ${CORP} and Partners beside the password form`);
    const first = await browser();
    let page = first.page;
    const callbacks = [];
    page.on("request", (request) => {
      if (request.url().includes("/api/auth/oidc/corp/callback")) callbacks.push(request.url());
    });
    await page.goto(`${baseUrl}/login`);
    await expectText(page.getByTestId("oidc-corp"), `Sign in with ${CORP}`, "the corp button");
    await expectText(page.getByTestId("oidc-partners"), "Sign in with Partners", "the partners button");
    await page.getByTestId("login-username").waitFor();
    await screenshot(page, "providers");

    step("alice (group octo-admins) signs in at the provider and is an admin of Octo");
    await signIn(page, "corp", "alice");
    await page.getByTestId("account-menu").waitFor();
    const alice = await me(page);
    if (alice.user?.role !== "admin" || alice.user?.identity_provider !== "corp") {
      throw new Error(`alice is ${JSON.stringify(alice.user)}`);
    }
    if (!alice.user.name.startsWith("alice")) throw new Error(`alice's account is named ${alice.user.name}`);
    await page.locator('a[href="/admin/users"]').waitFor();
    await page.goto(`${baseUrl}/account`);
    await expectText(page.getByTestId("account-provider"), "corp", "the account page's provider");
    if ((await page.getByTestId("password-current").count()) !== 0) throw new Error("a password form for a provider's account");
    await screenshot(page, "alice-account");
    const aliceCallback = callbacks[0];
    if (!aliceCallback) throw new Error("no callback request was seen");

    step("signing out of Octo signs out at the provider too: the next sign-in asks for a login again");
    await page.getByTestId("account-menu").click();
    await page.getByTestId("signout").click();
    await page.waitForURL((url) => url.origin === new URL(issuer).origin);
    await page.getByRole("button", { name: "Yes, sign me out" }).click();
    await page.waitForURL((url) => url.origin === origin && url.pathname === "/login");
    if ((await me(page)).status !== 401) throw new Error("still signed in to Octo after signing out");
    await page.getByTestId("oidc-corp").click();
    await page.locator("input[name=login]").waitFor();
    await screenshot(page, "provider-asks-again");

    step("the callback replayed (in another browser) is refused: its state is bound to the first");
    ({ page } = await browser());
    await page.goto(aliceCallback);
    await expectRefused(page, "state_mismatch", /could not be matched to this browser/, "a replayed callback");

    step("a used code replayed with a fresh state is refused by the provider");
    ({ page } = await browser());
    const usedCode = new URL(aliceCallback).searchParams.get("code");
    await rewriteCallback(page, (query) => query.set("code", usedCode));
    await signIn(page, "corp", "bob");
    await expectRefused(page, "code_refused", /did not accept the sign-in/, "a replayed code");

    step("a tampered state is refused");
    ({ page } = await browser());
    await rewriteCallback(page, (query) => query.set("state", `${query.get("state")}x`));
    await signIn(page, "corp", "bob");
    await expectRefused(page, "state_mismatch", /could not be matched to this browser/, "a tampered state");

    step("an ID token issued for another audience is refused");
    ({ page } = await browser());
    await controlProvider(issuer, "/test/next-id-token-audience", "someone-else");
    await signIn(page, "corp", "bob");
    await expectRefused(page, "invalid_id_token", /could not be verified/, "an ID token for another audience");

    step("bob (octo-users only) signs in as a user");
    ({ page } = await browser());
    await signIn(page, "corp", "bob");
    await page.getByTestId("account-menu").waitFor();
    const bob = await me(page);
    if (bob.user?.role !== "user" || bob.user?.identity_provider !== "corp") throw new Error(`bob is ${JSON.stringify(bob.user)}`);
    if ((await page.locator('a[href="/admin/users"]').count()) !== 0) throw new Error("bob sees the admin pages");

    step("eve (in no allowed group) is refused with a clear page");
    ({ page } = await browser());
    await signIn(page, "corp", "eve");
    await expectRefused(page, "not_allowed", `Your ${CORP} account is not in a group allowed to use Octo. Ask an administrator for access.`, "eve");
    await screenshot(page, "eve-refused");

    step("carol's first sign-in with Partners asks for an invite code; with it she is in, with its role");
    ({ page } = await browser());
    await signIn(page, "partners", "carol");
    await expectRefused(page, "invite_required", /needs an invite code/, "carol without a code");
    await screenshot(page, "invite-asked");
    await page.getByTestId("oidc-invite").fill(inviteCode);
    await expectText(page.getByTestId("oidc-partners"), "Continue with Partners", "the continue button");
    await atProvider(page, "carol", () => page.getByTestId("oidc-partners").click());
    await page.getByTestId("account-menu").waitFor();
    const carol = await me(page);
    if (carol.user?.role !== "admin" || carol.user?.identity_provider !== "partners") throw new Error(`carol is ${JSON.stringify(carol.user)}`);

    step("the audit log names the sign-ins, the refusal and the accounts made, without secrets");
    const audit = await (await page.request.get(`${baseUrl}/api/admin/audit?limit=200`)).json();
    const has = (action, target, detail) =>
      audit.some((e) => e.action === action && e.target.startsWith(target) && detail.test(e.detail));
    for (const [action, target, detail] of [
      ["user.register", "alice", /signed in with corp/],
      ["login.success", "bob", /with corp/],
      ["login.refused", "eve", /no allowed group/],
      ["user.register", "carol", /signed in with partners, invite/],
    ]) {
      if (!has(action, target, detail)) throw new Error(`no audit entry ${action} ${target} ${detail}`);
    }
    if (JSON.stringify(audit).includes("-secret")) throw new Error("a client secret is in the audit log");
    if (errors.length) throw new Error(`console errors:\n${errors.join("\n")}`);
  } finally {
    for (const context of contexts) await context.close();
  }
}

/** A POST to the test provider's hook (its certificate is the test CA's). */
function controlProvider(issuer, path, body) {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(new URL(path, issuer), { method: "POST", rejectUnauthorized: false }, (response) => {
      response.resume();
      if (response.statusCode === 204) resolve();
      else reject(new Error(`the provider's ${path} answered ${response.statusCode}`));
    });
    request.on("error", reject);
    request.end(body);
  });
}
