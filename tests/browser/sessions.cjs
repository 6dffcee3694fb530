// Drives Chromium through the session application of tests/common/session_app.rs (see
// tests/browser.rs): argv = app origin, attacker origin, Chromium executable, password.
// Prints one JSON line per check and exits 0 only when every check holds.
'use strict';

const { check, run } = require('./checks.cjs');

const [app, evil, executablePath, password] = process.argv.slice(2);

async function checks(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${app}/`);

  const login = await page.evaluate(async (password) => {
    const response = await fetch('/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'ada', password }),
    });
    return response.status;
  }, password);
  check('logging in answers 200', login === 200, login);

  const session = (await context.cookies(app)).find((c) => c.name === '__Host-session');
  check('the browser keeps the __Host- cookie from http://127.0.0.1', session, session && session.name);
  check(
    'the cookie is HttpOnly, Secure, SameSite=Lax, Path=/, host-only',
    session && session.httpOnly && session.secure && session.sameSite === 'Lax' &&
      session.path === '/' && !session.domain.startsWith('.'),
    session && { ...session, value: '(hidden)' },
  );
  const scriptVisible = await page.evaluate(() => document.cookie);
  check('page scripts cannot read the session id', !scriptVisible.includes('__Host-session'), scriptVisible);

  const me = await page.evaluate(async () => {
    const response = await fetch('/me');
    return [response.status, await response.text()];
  });
  check('the session authenticates the page\'s requests', me[0] === 200 && me[1].includes('"ada"'), me);

  const save = await page.evaluate(async () => (await fetch('/settings', { method: 'POST' })).status);
  check('a same-origin POST with the cookie is accepted', save === 200, save);

  // Another origin on the same site (same host, another port): SameSite=Lax still sends the
  // cookie, so only the Sec-Fetch-Site check stands between it and the account.
  for (const [page_path, target, name] of [
    ['/forge-settings', '/settings', 'a forged same-site form post with the cookie is refused (CSRF)'],
    ['/forge-login', '/login', 'a forged same-site login post is refused (login CSRF)'],
  ]) {
    const attack = await context.newPage();
    const answered = attack.waitForResponse((r) => r.url() === `${app}${target}`);
    await attack.goto(`${evil}${page_path}`);
    const response = await answered;
    check(name, response.status() === 403, response.status());
    await attack.close();
  }

  const still = await page.evaluate(async () => (await (await fetch('/me')).text()));
  check('the browser is still logged in as ada, not mallory', still.includes('"ada"'), still);

  const logout = await page.evaluate(async () => (await fetch('/logout', { method: 'POST' })).status);
  check('logging out answers 204', logout === 204, logout);
  const left = (await context.cookies(app)).map((c) => c.name);
  check('the browser dropped the session cookie', !left.includes('__Host-session'), left);
  const after = await page.evaluate(async () => (await fetch('/me')).status);
  check('after logout the page is anonymous', after === 401, after);

  await redirects(browser);
}

// CWE-601: a sign-in link whose `next` names another site still lands the user on this one,
// in the browser's own reading of the `Location` header (WHATWG URL rules: `\` is `/`, tabs
// vanish).
async function redirects(browser) {
  const signIn = async (next) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${app}/signin?next=${encodeURIComponent(next)}`);
    await page.fill('input[name=username]', 'ada');
    await page.fill('input[name=password]', password);
    // A redirect to evil.example fails to resolve here: that failure is the finding.
    const landed = await Promise.all([
      page.waitForURL((url) => !url.href.startsWith(`${app}/signin`), { timeout: 10000 }),
      page.click('button[type=submit]'),
    ]).then(() => page.url(), (error) => `navigation failed: ${error.message.split('\n')[0]}`);
    const body = await page.textContent('body').catch(() => null);
    await context.close();
    return [landed, body];
  };
  for (const next of ['//evil.example', '/\\evil.example', '/\t/evil.example',
    'https://evil.example/', '/%2F%2Fevil.example']) {
    const [landed] = await signIn(next);
    check(`next=${JSON.stringify(next)} lands on this site's home page`, landed === `${app}/`, landed);
  }
  const [landed, body] = await signIn('/public?from=link');
  check('a local next is followed, signed in', landed === `${app}/public?from=link` && body === 'ada',
    [landed, body]);
}

run(executablePath, checks);
