// A real OpenID Connect provider for the sign-in checks: panva's oidc-provider over HTTPS, with
// its development sign-in pages (any login name, any password), the users below and their
// groups, and one test hook. `cargo xtask ci` (the package's oidc phase) runs it on the machine
// that runs the test host (they share the network), so the octod inside reaches it at
// https://localhost:<port> and trusts its CA.
//
//   node e2e/oidc-provider.mjs --port 9443 --cert cert.pem --key key.pem --site localhost:8443
//
// Clients (the secret of each is its id followed by "-secret"), registered with the redirect URIs
// of an Octo at --site:
//   octo           provider id "corp" in octod's configuration
//   octo-partners  provider id "partners" (require_invite)
//
// The hook `POST /test/next-id-token-audience` (body: the audience) makes the next token answer's
// ID token be signed, with the provider's own key, for that audience instead: an ID token issued
// to another client, which the relying party must refuse.
import { createServer } from "node:https";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { generateKeyPair, exportJWK, SignJWT, decodeJwt } from "jose";
import Provider from "oidc-provider";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "9443" },
    cert: { type: "string" },
    key: { type: "string" },
    site: { type: "string", default: "localhost:8443" },
  },
});
const port = Number(args.port);
const issuer = `https://localhost:${port}`;
const site = `https://${args.site}`;

/** The provider's users: their groups (the claim `groups`). */
const GROUPS = {
  alice: ["octo-users", "octo-admins"],
  bob: ["octo-users"],
  eve: ["other"],
  carol: ["octo-users"],
};

const { privateKey } = await generateKeyPair("RS256", { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: "e2e", alg: "RS256", use: "sig" };

const client = (id, provider) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  redirect_uris: [`${site}/api/auth/oidc/${provider}/callback`],
  post_logout_redirect_uris: [`${site}/login`],
  grant_types: ["authorization_code"],
  response_types: ["code"],
  token_endpoint_auth_method: "client_secret_basic",
});

const provider = new Provider(issuer, {
  clients: [client("octo", "corp"), client("octo-partners", "partners")],
  jwks: { keys: [jwk] },
  // The groups and user name travel in the ID token (as many providers can be set up to do).
  conformIdTokenClaims: false,
  claims: {
    openid: ["sub"],
    profile: ["preferred_username", "name"],
    email: ["email"],
    groups: ["groups"],
  },
  scopes: ["openid", "profile", "email", "groups"],
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  pkce: { required: () => true },
  async findAccount(_ctx, id) {
    const name = String(id).toLowerCase();
    return {
      accountId: name,
      async claims() {
        return {
          sub: `sub-${name}`,
          preferred_username: name,
          name,
          email: `${name}@corp.example`,
          groups: GROUPS[name] ?? [],
        };
      },
    };
  },
  cookies: { keys: ["e2e-cookie-key"] },
  ttl: { AuthorizationCode: 120, IdToken: 300, Session: 3600, Interaction: 600, Grant: 3600 },
});
// The development sign-in pages are meant for tests like this one.
provider.proxy = false;

let nextAudience = null;
// The provider is the Koa application: this middleware runs before its own.
provider.middleware.unshift(async (ctx, next) => {
  if (ctx.method === "POST" && ctx.path === "/test/next-id-token-audience") {
    let body = "";
    for await (const chunk of ctx.req) body += chunk;
    nextAudience = body.trim() || "someone-else";
    ctx.status = 204;
    return;
  }
  await next();
  if (ctx.path === "/token" && nextAudience && ctx.body && typeof ctx.body === "object" && ctx.body.id_token) {
    const claims = decodeJwt(ctx.body.id_token);
    ctx.body.id_token = await new SignJWT({ ...claims, aud: nextAudience, azp: nextAudience })
      .setProtectedHeader({ alg: "RS256", kid: "e2e", typ: "JWT" })
      .sign(privateKey);
    console.log(`oidc-provider: the ID token just issued names the audience ${nextAudience}`);
    nextAudience = null;
  }
});

createServer({ cert: readFileSync(args.cert), key: readFileSync(args.key) }, provider.callback()).listen(
  port,
  "127.0.0.1",
  () => console.log(`oidc-provider: ${issuer} for ${site}`),
);
