// Drives the Semantik example from a web app served by the example itself (WEBUI_STATIC_DIR
// = tests/webui/app), in Chromium; see tests/semantik_webui.rs. argv = server origin,
// Chromium executable. Prints one JSON line per check and exits 0 only when every check holds.
'use strict';

const { check, run } = require('../../../../tests/browser/checks.cjs');

const [app, executablePath] = process.argv.slice(2);
const user = { username: 'grace_hopper', email: 'grace@example.com', full_name: 'Grace Hopper',
  password: 'a long enough password' };

async function checks(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const failures = [];
  page.on('response', (response) => {
    if (response.status() >= 500) failures.push(`${response.status()} ${response.url()}`);
  });
  const ready = async () => page.locator('#status').getByText('ready').waitFor({ timeout: 15000 })
    .then(() => true, () => false);
  const inPage = (fn, arg) => page.evaluate(fn, arg);

  // The page on a client-side route, its module from /assets, its icon.
  await page.goto(`${app}/login`);
  check('a client-side route serves the page and its module from /assets', await ready(), page.url());
  const icon = await inPage(async () => (await fetch('/vite.svg')).status);
  check('the icon beside the page is served', icon === 200, icon);
  const missing = await inPage(async () => {
    const response = await fetch('/assets/missing.js');
    return [response.status, (await response.json()).detail];
  });
  check('a missing asset is the API\'s JSON 404', missing[0] === 404 && typeof missing[1] === 'string', missing);

  // Sign-up, which the app follows with a sign-in and /api/auth/me.
  const me = await inPage((fields) => window.semantik.signUp(fields), user);
  let state = await inPage(() => window.semantik.stored());
  check('sign-up then sign-in stores the tokens and the user /api/auth/me returned',
    me.status === 200 && state && state.token && state.refreshToken && state.user.username === user.username &&
      state.user.full_name === user.full_name && typeof state.user.is_superuser === 'boolean',
    { status: me.status, user: state && state.user });

  // The operations WebSocket: a browser closes a socket whose subprotocol is not echoed.
  const echoed = await inPage((token) => window.semantik.operations(token), state.token);
  check('the subprotocol token is echoed back and a ping is answered',
    echoed.protocol === `access_token.${state.token}` && echoed.received.includes('pong'),
    { ...echoed, protocol: echoed.protocol && '(access_token.<token>)' });
  const refused = await inPage(() => window.semantik.operations('not-a-token'));
  check('a bad subprotocol token is closed with 1008', refused.closed === 1008, refused);

  // Sign-out with the refresh token in the body; that token must stop working.
  const firstRefresh = state.refreshToken;
  const out = await inPage(() => window.semantik.signOut());
  check('sign-out is answered 2xx', out.status >= 200 && out.status < 300, out);
  const replay = await inPage((refresh_token) =>
    window.semantik.call('POST', '/api/auth/refresh', { body: { refresh_token }, token: '' }), firstRefresh);
  check('the refresh token signed out with is refused afterwards', replay.status === 401, replay);

  // Sign-in, then a reload keeps the stored tokens working.
  const again = await inPage((u) => window.semantik.signIn(u.username, u.password), user);
  check('sign-in answers /api/auth/me with the user', again.status === 200 &&
    again.body.email === user.email, again);
  await page.goto(`${app}/settings`);
  await ready();
  const reloaded = await inPage(() => window.semantik.call('GET', '/api/auth/me'));
  check('after navigating to another page the stored access token still authenticates',
    reloaded.status === 200 && reloaded.body.username === user.username, reloaded);

  // API keys: create, list, use, revoke (soft).
  const created = await inPage(() => window.semantik.keys.create('Browser key'));
  const key = created.body.api_key || '';
  check('creating a key answers 201 with the secret once', created.status === 201 && key.startsWith('smtk_'),
    created.status);
  const listed = await inPage(() => window.semantik.keys.list());
  const entry = listed.body.api_keys && listed.body.api_keys.find((k) => k.id === created.body.id);
  check('the new key is listed as active, without its secret',
    listed.status === 200 && entry && entry.is_active === true && !('api_key' in entry), listed);
  const use = (secret) => inPage((token) => window.semantik.call('GET', '/api/collections', { token }), secret);
  const before = await use(key);
  check('the key authenticates a request', before.status === 200, before);
  const revoked = await inPage((id) => window.semantik.keys.revoke(id), created.body.id);
  check('revoking answers 200 with the key inactive', revoked.status === 200 &&
    revoked.body.is_active === false, revoked);
  const after = await use(key);
  check('the revoked key is refused with a Bearer challenge', after.status === 401, after);
  const still = await inPage(() => window.semantik.keys.list());
  check('the revoked key is still listed, inactive (soft revoke)',
    still.body.api_keys.some((k) => k.id === created.body.id && k.is_active === false), still.body);

  check('no request the page made was answered with a 5xx', failures.length === 0, failures);
  await context.close();
}

run(executablePath, checks);
