// Signs in to the Khoj example through a real OpenID Connect provider (oidc-provider, its
// development login and consent pages filled in as a person would), in Chromium: next kept
// through the round trip; a replayed callback, a tampered state and a wrong nonce refused.
// See tests/khoj_browser.rs. argv = Khoj's origin, the provider's issuer, Chromium.
// Prints one JSON line per check and exits 0 only when every check holds.
'use strict';

const { check, run } = require('../../../../tests/browser/checks.cjs');

const [origin, issuer, executablePath] = process.argv.slice(2);

/** At the provider: signs in as `login` and consents; resolves once back on Khoj. */
async function atProvider(page, login) {
  await page.waitForURL((url) => url.href.startsWith(`${issuer}/interaction/`));
  await page.locator('input[name=login]').fill(login);
  await page.locator('input[name=password]').fill('any password');
  await Promise.all([page.waitForNavigation(), page.locator('button[type=submit]').click()]);
  if (page.url().startsWith(`${issuer}/interaction/`)) {
    // The consent page.
    await Promise.all([
      page.waitForURL((url) => url.href.startsWith(origin)),
      page.locator('button[type=submit]').click(),
    ]);
  }
  await page.waitForLoadState();
}

/**
 * At the provider: signs in as `login` and consents, but stops short of following the
 * provider back: the callback URL it would send the browser to. (Playwright cannot rewrite a
 * redirect, so the last hops are taken by hand with the browser's cookies.)
 */
async function callbackOf(page, login) {
  await page.waitForURL((url) => url.href.startsWith(`${issuer}/interaction/`));
  await page.locator('input[name=login]').fill(login);
  await page.locator('input[name=password]').fill('any password');
  await Promise.all([page.waitForNavigation(), page.locator('button[type=submit]').click()]);
  const form = await page.evaluate(() => {
    const element = document.querySelector('form');
    const fields = {};
    for (const input of element.querySelectorAll('input[type=hidden]')) fields[input.name] = input.value;
    return { action: element.action, fields };
  });
  let response = await page.context().request.post(form.action, { form: form.fields, maxRedirects: 0 });
  for (let hop = 0; hop < 5; hop++) {
    const location = new URL(response.headers().location, response.url()).href;
    if (location.startsWith(origin)) return location;
    response = await page.context().request.get(location, { maxRedirects: 0 });
  }
  throw new Error('the provider never sent the browser back');
}

/** The status of /api/v1/user with the context's cookies. */
const userStatus = async (context) => (await context.request.get(`${origin}/api/v1/user`)).status();

async function checks(browser) {
  const stamp = `${process.pid}-${Date.now()}`;
  const failures = [];
  const watch = (page) => page.on('response', (response) => {
    if (response.status() >= 500) failures.push(`${response.status()} ${response.url()}`);
  });

  // A sign-in that keeps next through the round trip.
  const context = await browser.newContext();
  const page = await context.newPage();
  watch(page);
  let callback = null;
  page.on('request', (request) => {
    if (request.url().startsWith(`${origin}/auth/redirect`)) callback = request.url();
  });
  await page.goto(`${origin}/login?next=%2Fsettings`);
  const google = page.getByRole('link', { name: 'Continue with Google' });
  check('the login page offers the provider', (await google.count()) === 1);
  await google.click();
  const ada = `ada-${stamp}@example.com`;
  await atProvider(page, ada);
  check('the provider sends the browser back signed in, on to next',
    page.url() === `${origin}/settings`, page.url());
  const me = await context.request.get(`${origin}/api/v1/user`);
  const profile = me.status() === 200 ? await me.json() : {};
  check('the account has the provider\'s verified address and picture',
    profile.email === ada && profile.photo === 'https://example.com/picture.png', profile);
  const cookies = await context.cookies();
  check('the browser-binding cookie is gone after the callback',
    !cookies.some((cookie) => cookie.name.includes('oidc')), cookies.map((cookie) => cookie.name));

  // The same callback again, from a browser with no session: the state is spent.
  const replay = await browser.newContext();
  const again = await replay.newPage();
  watch(again);
  await again.goto(callback);
  check('a replayed callback is refused', again.url().startsWith(`${origin}/login?error=invalid_state`), again.url());
  check('and signs nobody in', (await userStatus(replay)) === 403);
  await replay.close();

  // A callback whose state was tampered with.
  const tamper = await browser.newContext();
  const tampered = await tamper.newPage();
  watch(tampered);
  await tampered.goto(`${origin}/auth/login`);
  const honest = new URL(await callbackOf(tampered, `grace-${stamp}@example.com`));
  honest.searchParams.set('state', `${honest.searchParams.get('state')}x`);
  await tampered.goto(honest.href);
  check('a tampered state is refused', tampered.url().startsWith(`${origin}/login?error=invalid_state`), tampered.url());
  check('and signs nobody in', (await userStatus(tamper)) === 403);
  await tamper.close();

  // An ID token for a nonce other than the sign-in's: the authorization request is rewritten
  // on its way to the provider, which then signs the forged nonce into the token.
  const forge = await browser.newContext();
  const forged = await forge.newPage();
  watch(forged);
  const begun = await forge.request.get(`${origin}/auth/login`, { maxRedirects: 0 });
  const authorize = new URL(begun.headers().location);
  authorize.searchParams.set('nonce', 'a-nonce-of-the-attackers-choosing');
  await forged.goto(authorize.href);
  await atProvider(forged, `linus-${stamp}@example.com`);
  check('an ID token with the wrong nonce is refused', forged.url().startsWith(`${origin}/login?error=invalid_token`), forged.url());
  check('and signs nobody in', (await userStatus(forge)) === 403);
  const message = await forged.locator('[role=alert]').textContent().catch(() => '');
  check('the login page says the sign-in failed', message.includes('failed'), message);
  await forge.close();

  check('no response was a 5xx', failures.length === 0, failures);
  await context.close();
}

run(executablePath, checks);
