// The dashboard's shell as a user meets it: the login flow with a token,
// the sidebar, the global time range in the URL (back button included), the
// "/" shortcut, and the pages that are not pages.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, launch, newPage, screenshot, startQyl } from './harness.mjs';

const TOKEN = 'dash-token-123';

describe('login with a token', () => {
  let qyl;
  let browser;
  before(async () => {
    qyl = await startQyl({ token: TOKEN });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await qyl?.stop();
  });

  test('an unauthenticated visit shows the login page; a wrong token is refused inline; the right one lands on the overview', async () => {
    const page = await newPage(browser);
    await page.goto(`${qyl.url}/traces?from=6h`);
    await page.waitForURL(/\/login\?next=/);
    await page.getByLabel('Token').waitFor();
    assert.match(await page.textContent('body'), /This qyl needs a token/);
    await screenshot(page, 'login');

    await page.getByLabel('Token').fill('wrong-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'not valid' }).waitFor();
    assert.match(page.url(), /\/login/);

    await page.getByLabel('Token').fill(TOKEN);
    await page.getByRole('button', { name: 'Log in' }).click();
    // Back where the visit started, the token gone from the address bar.
    await page.waitForURL((u) => u.pathname === '/traces' && u.searchParams.get('from') === '6h');
    assert.equal(new URL(page.url()).searchParams.get('t'), null);
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    const cookies = await page.context().cookies();
    const c = cookies.find((c) => c.name === 'qyl_token');
    assert.ok(c, 'the login cookie is set');
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, 'Strict');
  });

  test('/?t=TOKEN logs in and lands on the overview; a wrong ?t= lands on the login page saying so', async () => {
    const page = await newPage(browser);
    await page.goto(`${qyl.url}/?t=${TOKEN}`);
    await page.waitForURL((u) => u.pathname === '/' && !u.search.includes('t='));
    await page.getByRole('link', { name: 'Overview' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'Overview' }).getAttribute('aria-current'), 'page');

    const other = await newPage(browser);
    await other.goto(`${qyl.url}/?t=nope`);
    await other.waitForURL(/\/login\?error=invalid/);
    await other.getByRole('alert').filter({ hasText: 'not valid' }).waitFor();
  });

  test('a 401 from the API (the cookie gone) returns to the login page', async () => {
    const page = await newPage(browser);
    await page.goto(`${qyl.url}/?t=${TOKEN}`);
    await page.waitForURL((u) => u.pathname === '/');
    await page.getByRole('link', { name: 'Logs' }).click();
    await page.waitForURL((u) => u.pathname === '/logs');
    await page.context().clearCookies();
    await page.reload();
    await page.waitForURL(/\/login\?next=%2Flogs/);
    // The API itself still refuses without the token.
    assert.equal((await api(qyl, '/api/v1/storage')).status, 401);
  });
});

describe('shell', () => {
  let qyl;
  let browser;
  before(async () => {
    qyl = await startQyl();
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await qyl?.stop();
  });

  test('the time range lives in the URL, is kept across pages and the back button restores it', async () => {
    const page = await newPage(browser);
    await page.goto(`${qyl.url}/logs`);
    await page.getByRole('button', { name: /Last 1 hour/ }).click();
    await page.getByRole('button', { name: 'Last 24 hours' }).click();
    await page.waitForURL((u) => u.searchParams.get('from') === '24h');
    await page.getByRole('button', { name: /Last 24 hours/ }).waitFor();

    await page.getByRole('link', { name: 'Traces' }).click();
    await page.waitForURL((u) => u.pathname === '/traces' && u.searchParams.get('from') === '24h');

    await page.goBack();
    await page.waitForURL((u) => u.pathname === '/logs' && u.searchParams.get('from') === '24h');
    await page.goBack();
    await page.waitForURL((u) => u.pathname === '/logs' && !u.searchParams.has('from'));
    await page.getByRole('button', { name: /Last 1 hour/ }).waitFor();

    // Auto-refresh is a URL setting too.
    await page.getByLabel('Auto-refresh').selectOption('10s');
    await page.waitForURL((u) => u.searchParams.get('refresh') === '10s');
  });

  test('"/" focuses the page search; unknown pages say so', async () => {
    const page = await newPage(browser);
    await page.goto(`${qyl.url}/logs`);
    const search = page.locator('[data-search]');
    await search.waitFor();
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('/');
    assert.equal(await search.evaluate((el) => el === document.activeElement), true);

    await page.goto(`${qyl.url}/no-such-page`);
    await page.getByText('No such page').waitFor();
    assert.deepEqual(page.pageErrors, []);
  });
});
