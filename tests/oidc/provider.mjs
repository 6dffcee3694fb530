// A real OpenID Connect provider for the sign-in tests (npm `oidc-provider`, installed by
// scripts/services.sh): authorization code with PKCE, signed ID tokens, discovery and JWKS,
// and its development login and consent pages, which the tests fill in as a person would.
//
//   NODE_PATH=<node_modules> node tests/oidc/provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
//
// Any login name signs in. The account's `sub` is the name; its email is the name when it
// holds an `@`, verified unless the name starts with `unverified.`. Prints `listening on
// ISSUER` when ready.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

// An ES module ignores NODE_PATH: the package is imported from there by its path.
const modules = process.env.NODE_PATH;
const { default: Provider } = await import(
  pathToFileURL(path.join(modules, 'oidc-provider', 'lib', 'index.js')).href);

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  // The scopes' claims in the ID token too, as Google puts them there.
  conformIdTokenClaims: false,
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'picture'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const email = id.includes('@') ? id.replace(/^unverified\./, '') : undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email,
          email_verified: email ? !id.startsWith('unverified.') : undefined,
          name: `Person ${id}`,
          picture: 'https://example.com/picture.png',
        };
      },
    };
  },
});
provider.proxy = false;
provider.listen(Number(port), '127.0.0.1', () => console.log(`listening on ${issuer}`));
