// Signs in to the Khoj example as a person would, in Chromium: the login page by keyboard
// alone, the code and the link read from the mail a real SMTP sink received, an API key made
// on the settings page and used, sign-out; the pages on a 390 px wide screen. Screenshots of
// the login, code and settings pages go to the artifacts directory. See tests/khoj_browser.rs.
// argv = server origin, Chromium executable, the sink's maildir, the artifacts directory.
// Prints one JSON line per check and exits 0 only when every check holds.
'use strict';

const fs = require('fs');
const path = require('path');
const { check, run } = require('../../../../tests/browser/checks.cjs');

const [origin, executablePath, maildir, artifacts] = process.argv.slice(2);
fs.mkdirSync(artifacts, { recursive: true });

/** The next unread mail to `to`, quoted-printable soft breaks undone, waiting up to 10 s. */
const read = new Set();
async function mailTo(to) {
  for (let i = 0; i < 200; i++) {
    const dir = path.join(maildir, 'new');
    for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      const file = path.join(dir, name);
      if (read.has(file)) continue;
      const raw = fs.readFileSync(file, 'utf8');
      if (raw.includes(`To: ${to}`)) {
        read.add(file);
        return raw.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no mail to ${to}`);
}
const codeOf = (mail) => (mail.match(/sign-in code for Khoj is (\d{6})/) || [])[1];
const linkOf = (mail) => (mail.match(/(http:\/\/[^\s"<]+\/auth\/magic\?[^\s"<]+)/) || [])[1];

async function checks(browser) {
  const stamp = `${process.pid}-${Date.now()}`;
  const ada = `ada-${stamp}@example.com`;
  const context = await browser.newContext();
  const page = await context.newPage();
  const failures = [];
  page.on('response', (response) => {
    if (response.status() >= 500) failures.push(`${response.status()} ${response.url()}`);
  });
  let scripts = 0;
  page.on('request', (request) => { if (request.resourceType() === 'script') scripts += 1; });

  // The login page, by keyboard alone: the address field has the focus, Enter submits.
  await page.goto(`${origin}/settings`);
  check('a page that needs a sign-in sends the browser to the login page with next',
    page.url() === `${origin}/login?next=%2Fsettings`, page.url());
  await page.screenshot({ path: path.join(artifacts, 'login.png'), fullPage: true });
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  check('the address field has the focus', focused === 'email', focused);
  await page.keyboard.type(ada);
  await Promise.all([page.waitForURL(/\/login\?email=/), page.keyboard.press('Enter')]);
  check('Enter sends the magic link and opens the code page',
    (await page.locator('h1').textContent()) === 'Check your email', page.url());
  await page.screenshot({ path: path.join(artifacts, 'code.png'), fullPage: true });

  const mail = await mailTo(ada);
  const code = codeOf(mail);
  check('the mail holds a 6-digit code and a link under the configured address',
    /^\d{6}$/.test(code || '') && (linkOf(mail) || '').startsWith(`${origin}/auth/magic?code=${code}&email=`),
    { code: Boolean(code), link: linkOf(mail) });

  // A wrong code first: a clear message, still on the code page.
  const wrong = code === '000000' ? '000001' : '000000';
  await page.keyboard.type(wrong);
  await Promise.all([page.waitForURL(/\/auth\/magic\?/), page.keyboard.press('Enter')]);
  const alert = await page.locator('[role=alert]').textContent().catch(() => '');
  check('a wrong code is shown as such, with no session', alert.includes('not right'), alert);
  await page.locator('#code').fill('');
  await page.locator('#code').focus();
  await page.keyboard.type(code);
  await Promise.all([page.waitForURL(`${origin}/settings`), page.keyboard.press('Enter')]);
  check('the right code signs in and goes on to next', page.url() === `${origin}/settings`, page.url());
  const cookies = await context.cookies();
  const session = cookies.find((cookie) => cookie.name === 'khoj_session');
  check('the session cookie is HttpOnly and SameSite=Lax',
    session && session.httpOnly && session.sameSite === 'Lax', session && { ...session, value: '…' });

  // The settings page: name a key, create it by keyboard, read it once.
  await page.locator('#name').focus();
  await page.keyboard.type('Desktop');
  await Promise.all([page.waitForURL(`${origin}/settings/keys`), page.keyboard.press('Enter')]);
  const key = (await page.locator('#new-key').textContent().catch(() => '')).trim();
  check('the settings page shows the new kk- key once', key.startsWith('kk-'), key.slice(0, 3));
  await page.screenshot({ path: path.join(artifacts, 'settings.png'), fullPage: true });
  const byKey = await context.request.get(`${origin}/api/v1/user`, { headers: { Authorization: `Bearer ${key}` } });
  check('the key authenticates /api/v1/user', byKey.status() === 200 && (await byKey.json()).email === ada, byKey.status());
  await page.goto(`${origin}/settings`);
  check('the settings page lists the key by name, never its secret',
    (await page.content()).includes('Desktop') && !(await page.content()).includes(key));

  // Sign-out: the session ends, the key stays.
  await page.goto(`${origin}/`);
  await Promise.all([page.waitForURL(/\/login/), page.getByRole('link', { name: 'Sign out' }).click()]);
  // The browser dropped the cookie; the session it named is over too. (Asked from outside
  // the page: the pages' CSP lets no script fetch anything.)
  const gone = !(await context.cookies()).some((cookie) => cookie.name === 'khoj_session');
  const replayed = await context.request.get(`${origin}/api/v1/user`,
    { headers: { Cookie: `khoj_session=${session.value}` } });
  check('after sign-out the cookie is gone and its session refused with Khoj\'s 403',
    gone && replayed.status() === 403, { gone, status: replayed.status() });
  const keyAfter = await context.request.get(`${origin}/api/v1/user`, { headers: { Authorization: `Bearer ${key}` } });
  check('the key still works after sign-out', keyAfter.status() === 200, keyAfter.status());

  // The link from the mail, followed in a fresh browser, on a phone-sized screen.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const small = await phone.newPage();
  await small.goto(`${origin}/login`);
  const fits = await small.evaluate(() => document.documentElement.scrollWidth <= 390);
  check('the login page fits a 390 px wide screen', fits);
  await small.screenshot({ path: path.join(artifacts, 'login-390.png'), fullPage: true });
  const grace = `grace-${stamp}@example.com`;
  await small.locator('#email').fill(grace);
  await Promise.all([small.waitForURL(/\/login\?email=/), small.getByRole('button', { name: 'Send magic link' }).click()]);
  const link = linkOf(await mailTo(grace));
  await small.goto(link);
  check('following the mailed link signs in and lands on /',
    small.url() === `${origin}/` && (await small.locator('#user').textContent()) === grace, small.url());
  await small.goto(link);
  check('the link works once', small.url().startsWith(`${origin}/auth/magic`) &&
    (await small.locator('[role=alert]').count()) === 1, small.url());
  await phone.close();

  check('no page loaded a script', scripts === 0, scripts);
  check('no response was a 5xx', failures.length === 0, failures);
  await context.close();
}

run(executablePath, checks);
