// Drives Debian's chromium (headless) through the cookie example:
//   node cookie_flow.mjs http://127.0.0.1:PORT
// Logs in through the page's form, checks the refresh cookie's attributes,
// refreshes by cookie, has pages of another origin (same site: 127.0.0.1
// on another port) and of another site (localhost) post forms to the
// cookie endpoints, then logs out. Prints one line per check; exits 1 on
// the first failure. CHROMIUM overrides /usr/bin/chromium.
import http from 'node:http';
import { chromium } from 'playwright-core';

const base = new URL(process.argv[2]);
const COOKIE = '__Secure-fastcore_refresh';
let checks = 0;

function check(condition, what, detail) {
  if (!condition) {
    throw new Error(`${what}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
  }
  checks += 1;
  console.log(`ok ${checks} - ${what}`);
}

// A page of another origin that posts an empty form to `target` at once.
function attackerServer() {
  const server = http.createServer((req, res) => {
    const target = new URL(req.url, 'http://x').searchParams.get('target');
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><form method="post" action="${target}"></form>
<script>document.forms[0].submit()</script>`);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function refreshCookie(context) {
  // The cookie's path is /auth: ask for the cookies a refresh would send.
  const cookies = await context.cookies(new URL('/auth/refresh', base).href);
  return cookies.find((c) => c.name === COOKIE);
}

// Opens the attacker's page at `origin` and returns the status and code of
// the app's answer to the forged post to `path`.
async function forgedPost(context, origin, path) {
  const page = await context.newPage();
  const target = new URL(path, base).href;
  const answer = page.waitForResponse((r) => r.url() === target, { timeout: 10000 });
  await page.goto(`${origin}/?target=${encodeURIComponent(target)}`);
  const response = await answer;
  let code = null;
  try { code = (await response.json()).code; } catch (_) { /* not JSON */ }
  await page.close();
  return { status: response.status(), code };
}

const server = await attackerServer();
const port = server.address().port;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox'],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(new URL('/', base).href);

  // Log in through the form.
  await page.fill('input[name=password]', 'correct-horse');
  await page.click('button[type=submit]');
  await page.waitForSelector('#out[data-status="200"]', { timeout: 10000 });
  check(await page.evaluate(() => window.app.hasAccessToken()), 'login through the page gives an access token');
  const first = await refreshCookie(context);
  check(first !== undefined, 'login sets the refresh cookie',
    (await context.cookies()).map((c) => `${c.name} path=${c.path}`));
  check(first.httpOnly && first.secure && first.sameSite === 'Strict' && first.path === '/auth',
    'the cookie is HttpOnly, Secure, SameSite=Strict, Path=/auth', { ...first, value: '(hidden)' });
  const scriptSees = await page.evaluate(() => document.cookie);
  check(!scriptSees.includes(first.value), 'page scripts cannot read the refresh token');

  const me = await page.evaluate(() => window.app.me());
  check(me.status === 200 && me.body.name === 'ada', 'the access token calls the API', me);

  const refreshed = await page.evaluate(() => window.app.refresh());
  check(refreshed.status === 200 && !('refresh_token' in refreshed.body), 'refresh by cookie', refreshed);
  const second = await refreshCookie(context);
  check(second && second.value !== first.value, 'the refresh rotates the cookie');

  // Forged posts: 127.0.0.1 on another port is the same site (SameSite lets
  // the cookie through, the origin check stops it); localhost is another site.
  for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
    for (const path of ['/auth/refresh', '/auth/logout']) {
      const forged = await forgedPost(context, origin, path);
      check(forged.status === 403 && forged.code === 'csrf_check_failed',
        `a form posted from ${origin} to ${path} is refused`, forged);
    }
  }
  const after = await refreshCookie(context);
  check(after && after.value === second.value, 'the forged posts left the cookie alone');
  const again = await page.evaluate(() => window.app.refresh());
  check(again.status === 200, 'the session still refreshes', again);

  const out = await page.evaluate(() => window.app.logout());
  check(out.status === 204, 'logout by cookie', out);
  check((await refreshCookie(context)) === undefined, 'logout deletes the cookie');
  const dead = await page.evaluate(() => window.app.refresh());
  check(dead.status === 400, 'no refresh after logout', dead);
  console.log(`${checks} passed, 0 failed`);
} catch (err) {
  console.error(`not ok - ${err.message}`);
  console.log(`${checks} passed, 1 failed`);
  process.exitCode = 1;
} finally {
  await browser.close();
  server.close();
}
