// Drives Semantik's own web app (upstream `apps/webui-react`, served by the example from
// WEBUI_STATIC_DIR) in Chromium against the Semantik example; see tests/semantik_webui.rs.
// argv = server origin, Chromium executable. Prints one JSON line per check and exits 0 only
// when every check holds. Only the app's own screens are used: its labels, its storage.
'use strict';

const { check, run } = require('../../../../tests/browser/checks.cjs');

const [app, executablePath] = process.argv.slice(2);
const username = 'grace_hopper';
const password = 'a long enough password';

// What the app keeps in localStorage (zustand's `auth-storage`), or null.
async function stored(page) {
  return page.evaluate(() => {
    const raw = localStorage.getItem('auth-storage');
    return raw ? JSON.parse(raw).state : null;
  });
}

const signedInHome = (page) =>
  page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: 15000 }).then(() => true, () => false);

async function checks(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const failures = [];
  page.on('response', (response) => {
    if (response.status() >= 500) failures.push(`${response.status()} ${response.url()}`);
  });
  // The app's own operations feed, opened by its layout on every signed-in page.
  const sockets = [];
  page.on('websocket', (socket) => {
    if (new URL(socket.url()).pathname !== '/ws/operations') return;
    const seen = { socket, closed: false };
    socket.on('close', () => { seen.closed = true; });
    sockets.push(seen);
  });

  // Sign-up, which signs the new account in.
  await page.goto(`${app}/login`);
  await page.getByRole('button', { name: "Don't have an account? Sign up" }).click();
  await page.fill('#username', username);
  await page.fill('#email', 'grace@example.com');
  await page.fill('#fullName', 'Grace Hopper');
  await page.fill('#password', password);
  await page.fill('#confirmPassword', password);
  await page.getByRole('button', { name: 'Create account', exact: true }).click();
  check('sign-up lands signed in on the home page', await signedInHome(page) && page.url() === `${app}/`,
    page.url());
  let state = await stored(page);
  check('the app stores the access and refresh tokens and the user the server returned',
    state && state.token && state.refreshToken && state.user && state.user.username === username &&
      state.user.full_name === 'Grace Hopper' && typeof state.user.is_superuser === 'boolean',
    state && { user: state.user, token: Boolean(state.token), refreshToken: Boolean(state.refreshToken) });

  // The operations WebSocket: the app's own, and the same handshake made by hand to read it.
  await page.waitForTimeout(1500);
  const feed = sockets[sockets.length - 1];
  check('the app opens its operations WebSocket and the server keeps it open',
    feed && !feed.closed, feed ? { url: feed.socket.url(), closed: feed.closed } : 'none opened');
  const echoed = await page.evaluate((token) => new Promise((resolve) => {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/operations`;
    const socket = new WebSocket(url, [`access_token.${token}`]);
    const timer = setTimeout(() => resolve({ timeout: true }), 5000);
    socket.onopen = () => socket.send(JSON.stringify({ type: 'ping' }));
    const received = [];
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      received.push(message.type);
      if (message.type !== 'pong') return;
      clearTimeout(timer);
      resolve({ protocol: socket.protocol, received });
      socket.close();
    };
    socket.onclose = (event) => { clearTimeout(timer); resolve({ closed: event.code }); };
  }), state.token);
  check('the subprotocol token is echoed back and a ping is answered',
    echoed.protocol === `access_token.${state.token}` && echoed.received && echoed.received.includes('pong'),
    { ...echoed, protocol: echoed.protocol && '(access_token.<token>)' });
  const refused = await page.evaluate(() => new Promise((resolve) => {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/operations`;
    const socket = new WebSocket(url, ['access_token.not-a-token']);
    socket.onclose = (event) => resolve(event.code);
  }));
  check('a bad subprotocol token is closed with 1008', refused === 1008, refused);

  // Sign-out: the app posts its refresh token, which must stop working.
  const firstRefresh = state.refreshToken;
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${app}/login`, { timeout: 15000 }).catch(() => {});
  state = await stored(page);
  check('sign-out returns to the login page and forgets the tokens',
    page.url() === `${app}/login` && !(state && state.token), [page.url(), state]);
  const replay = await page.evaluate(async (refresh_token) => {
    const response = await fetch('/api/auth/refresh', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token }),
    });
    return response.status;
  }, firstRefresh);
  check('the refresh token the app signed out with is refused afterwards', replay === 401, replay);

  // Sign-in, then a reload keeps the session.
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  check('sign-in lands on the home page', await signedInHome(page) && page.url() === `${app}/`, page.url());
  state = await stored(page);
  check('sign-in stores the user from /api/auth/me', state && state.user && state.user.username === username &&
    state.user.email === 'grace@example.com', state && state.user);
  await page.reload();
  check('a reload keeps the user signed in', await signedInHome(page) && page.url() === `${app}/`, page.url());
  const me = await page.evaluate(async (token) => {
    const response = await fetch('/api/auth/me', { headers: { authorization: `Bearer ${token}` } });
    return [response.status, (await response.json()).username];
  }, (await stored(page)).token);
  check('the stored access token still authenticates after the reload', me[0] === 200 && me[1] === username, me);

  // The API-keys page: create, list, revoke.
  await page.goto(`${app}/settings?tab=api-keys`);
  const empty = await page.getByText('No API keys').waitFor({ timeout: 15000 }).then(() => true, () => false);
  check('the API-keys page lists no key at first', empty, page.url());
  await page.getByRole('button', { name: 'Create API Key' }).first().click();
  await page.fill('#key-name', 'Browser key');
  const created = page.waitForResponse((r) => r.url() === `${app}/api/v2/api-keys` && r.request().method() === 'POST');
  await page.getByRole('button', { name: 'Create Key', exact: true }).click();
  const creation = await created;
  const key = (await creation.json()).api_key || '';
  check('creating a key answers 201 with the secret once', creation.status() === 201 && key.startsWith('smtk_'),
    creation.status());
  const shown = await page.getByText('API Key Created').waitFor({ timeout: 10000 }).then(() => true, () => false);
  check('the app shows the new key in its dialog', shown, shown);
  await page.getByRole('button', { name: "I've copied my key" }).click();
  const card = page.locator('div.rounded-lg', { has: page.getByRole('heading', { name: 'Browser key' }) }).last();
  const listed = await card.getByText('Active', { exact: true }).waitFor({ timeout: 10000 }).then(() => true, () => false);
  check('the new key is listed as active', listed, listed);
  const keyWorks = async () => page.evaluate(async (key) =>
    (await fetch('/api/collections', { headers: { authorization: `Bearer ${key}` } })).status, key);
  const before = await keyWorks();
  check('the key authenticates a request', before === 200, before);

  await card.getByRole('button', { name: 'Revoke' }).click();
  const disabled = await card.getByText('Disabled', { exact: true }).waitFor({ timeout: 10000 })
    .then(() => true, () => false);
  check('revoking shows the key as disabled', disabled, disabled);
  const after = await keyWorks();
  check('the revoked key is refused', after === 401, after);
  await page.reload();
  const still = await page.locator('div.rounded-lg', { has: page.getByRole('heading', { name: 'Browser key' }) })
    .last().getByText('Disabled', { exact: true }).waitFor({ timeout: 15000 }).then(() => true, () => false);
  check('after a reload the revoked key is still listed, disabled (soft revoke)', still, still);

  check('no request the app made was answered with a 5xx', failures.length === 0, failures);
  await context.close();
}

run(executablePath, checks);
