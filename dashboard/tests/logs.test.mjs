// Browser tests of the Logs page: logs sent with the OpenTelemetry Python
// SDK (logging bridge) show up in the list; the severity, text and attribute
// filters narrow it and live in the URL; a log inside a span links to its
// trace; live tail brings in a log sent after it was switched on; the
// severity histogram counts every matching log in the range (from
// /api/v1/logs/histogram), not just the rows loaded.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, launch, newPage, screenshot, sendPython, startQyl, until } from './harness.mjs';

const SENDER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'py/logs_send.py');
let qyl;
let browser;
let sent;

before(async () => {
  qyl = await startQyl();
  sent = await sendPython(qyl, SENDER, { args: ['set'] });
  await until(async () => (await api(qyl, '/api/v1/logs?limit=100')).body.items?.length === sent.logs, { what: 'the logs to be stored' });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await qyl?.stop();
});

const bodies = (page) => page.locator('.logs-line .logs-body').allInnerTexts();
const squash = (t) => t.replace(/\s+/g, ' ').trim();
const legend = async (page) => (await page.locator('.logs-hist-key').allInnerTexts()).map(squash);
const histTotal = async (page) => squash(await page.locator('.logs-hist-total').innerText().catch(() => ''));

async function openLogs(query = '') {
  const page = await newPage(browser);
  await page.goto(`${qyl.url}/logs${query}`);
  await page.locator('.logs-line').first().waitFor();
  return page;
}

test('the list shows every log newest first, with its level, service and time', async () => {
  const page = await openLogs();
  await until(async () => (await page.locator('.logs-line').count()) === sent.logs, { what: `${sent.logs} rows` });
  const texts = await bodies(page);
  assert.equal(texts[0], 'retrying payment webhook (attempt 2)', 'newest first');
  assert.equal(texts.at(-1), 'cache warm: 412 entries', 'oldest last');
  const levels = await page.locator('.logs-line .logs-level').allInnerTexts();
  assert.deepEqual([...new Set(levels)].sort(), ['DEBUG', 'ERROR', 'FATAL', 'INFO', 'WARN']);
  const services = await page.locator('.logs-line .logs-service').allInnerTexts();
  assert.deepEqual([...new Set(services.map((s) => s.trim()))].sort(), ['checkout', 'inventory']);
  // Every row has a time; the histogram counts the same logs per level.
  assert.equal(await page.locator('.logs-line time').count(), sent.logs);
  await until(async () => (await histTotal(page)) === '8 logs in range', { what: 'the histogram total' });
  assert.deepEqual(await legend(page), ['DEBUG 1', 'INFO 3', 'WARN 2', 'ERROR 1', 'FATAL 1']);
  const barTotal = await page.locator('.logs-hist-col').evaluateAll((cols) => cols.reduce((n, c) => n + Number(/([\d,]+) logs/.exec(c.title)[1].replace(/,/g, '')), 0));
  assert.equal(barTotal, 8, 'the bars add up to the total');
  assert.match(await page.locator('.page-subtitle').innerText(), /8 logs in this range/);
  await screenshot(page, 'logs');
  assert.deepEqual(page.pageErrors, []);
  await page.close();
});

test('the minimum severity hides lower levels and is kept in the URL', async () => {
  const page = await openLogs();
  await page.getByLabel('Min severity').selectOption('WARN');
  await until(async () => (await page.locator('.logs-line').count()) === 4, { what: 'WARN and above only' });
  assert.match(page.url(), /severity_min=WARN/);
  const levels = await page.locator('.logs-line .logs-level').allInnerTexts();
  assert.deepEqual([...new Set(levels)].sort(), ['ERROR', 'FATAL', 'WARN']);
  assert.ok(!(await bodies(page)).includes('listening on :8080'), 'an INFO log is hidden');
  // The histogram counts with the same filter.
  await until(async () => (await histTotal(page)) === '4 logs in range', { what: 'the filtered histogram' });
  assert.deepEqual(await legend(page), ['WARN 2', 'ERROR 1', 'FATAL 1']);
  // Reloading the URL gives the same list.
  await page.reload();
  await until(async () => (await page.locator('.logs-line').count()) === 4, { what: 'the same rows after reload' });
  assert.equal(await page.getByLabel('Min severity').inputValue(), 'WARN');
  await page.close();
});

test('the histogram legend sets the minimum severity; a bar narrows the time range', async () => {
  const page = await openLogs();
  await until(async () => (await histTotal(page)) === '8 logs in range', { what: 'the histogram' });
  await page.locator('.logs-hist-key', { hasText: 'ERROR' }).click();
  await until(() => /severity_min=ERROR/.test(page.url()), { what: 'severity_min from the legend' });
  await until(async () => (await page.locator('.logs-line').count()) === 2, { what: 'ERROR and above' });
  await until(async () => (await histTotal(page)) === '2 logs in range', { what: 'the histogram to follow' });
  // The last non-empty bar: its tooltip names how many logs it holds.
  const bar = page.locator('.logs-hist-col:not([disabled])').last();
  const inBar = Number(/([\d,]+) logs/.exec(await bar.getAttribute('title'))[1]);
  assert.ok(inBar >= 1 && inBar <= 2, `the bar holds ${inBar} logs`);
  await bar.click();
  await until(() => /[?&]from=\d{13}/.test(page.url()) && /[?&]to=\d{13}/.test(page.url()), { what: 'an absolute range from the bar' });
  const url = new URL(page.url());
  const span = Number(url.searchParams.get('to')) - Number(url.searchParams.get('from'));
  assert.ok(span > 0 && span <= 60_000, `the range is one bucket (${span} ms)`);
  const want = `${inBar} ${inBar === 1 ? 'log' : 'logs'} in range`;
  await until(async () => (await histTotal(page)) === want, { what: 'the logs of that bucket only' });
  await until(async () => (await page.locator('.logs-line').count()) === inBar, { what: 'the list of that bucket' });
  await page.close();
});

test('the text search finds the log with the distinctive word; the URL holds q', async () => {
  const page = await openLogs();
  await page.keyboard.press('/');
  const box = page.locator('[data-search]');
  assert.equal(await box.evaluate((el) => el === document.activeElement), true, '"/" focuses the search box');
  await box.fill('ZANZIBAR');
  await until(async () => (await page.locator('.logs-line').count()) === 1, { what: 'one match' });
  assert.deepEqual(await bodies(page), ['payment declined by issuer: zanzibar rule 7']);
  await until(() => /[?&]q=ZANZIBAR/.test(page.url()), { what: 'q in the URL' });
  await page.goto(`${qyl.url}/logs?q=zanzibar`);
  await until(async () => (await page.locator('.logs-line').count()) === 1, { what: 'the match from the URL' });
  assert.equal(await box.inputValue(), 'zanzibar');
  await page.close();
});

test('a log with a trace id links to its trace; one without has no link', async () => {
  const page = await openLogs('?q=zanzibar');
  const link = page.locator('.logs-line .logs-trace-link a');
  assert.equal(await link.count(), 1);
  const [traceId] = sent.traces;
  assert.match(await link.getAttribute('href'), new RegExp(`^/traces/${traceId}(\\?|$)`));
  await page.goto(`${qyl.url}/logs?q=listening`);
  await until(async () => (await page.locator('.logs-line').count()) === 1, { what: 'the log without trace' });
  assert.equal(await page.locator('.logs-line .logs-trace-link a').count(), 0);
  await page.goto(`${qyl.url}/logs?q=zanzibar`);
  await page.locator('.logs-line .logs-trace-link a').click();
  await until(() => new URL(page.url()).pathname === `/traces/${traceId}`, { what: 'navigation to the trace' });
  await page.close();
});

test('expanding a row shows attributes, resource and ids; an attribute becomes a filter', async () => {
  const page = await openLogs('?q=order%205512');
  await until(async () => (await page.locator('.logs-line').count()) === 1, { what: 'one log' });
  await page.getByRole('button', { name: 'Expand log' }).click();
  const details = page.locator('.logs-details');
  await details.waitFor();
  const text = await details.innerText();
  for (const want of ['payment.provider', 'stripe', 'order.id', '5512', 'service.version', sent.traces[0], 'app.checkout', 'INFO']) {
    assert.ok(text.includes(want), `details show ${want}`);
  }
  assert.equal(await page.getByRole('button', { name: 'Collapse log' }).getAttribute('aria-expanded'), 'true');
  await page.goto(`${qyl.url}/logs`);
  await page.locator('.logs-line').nth(2).locator('.logs-row').click();
  await page.locator('.logs-details').waitFor();
  await screenshot(page, 'logs-expanded');
  // The expanded row pushes the next ones down instead of overlapping them.
  const open = await page.locator('.logs-line.open').boundingBox();
  const next = await page.locator('.logs-line').nth(3).boundingBox();
  assert.ok(next.y >= open.y + open.height - 1, 'the next row starts below the expanded one');
  await page.locator('.logs-details tr', { hasText: 'payment.provider' }).getByRole('button', { name: 'Filter by payment.provider' }).click();
  await until(() => /attr\.payment\.provider=stripe/.test(page.url()), { what: 'the attribute filter in the URL' });
  await until(async () => (await page.locator('.logs-line').count()) === 2, { what: 'the two stripe logs' });
  assert.equal(await page.locator('.logs-chip').innerText().then((t) => t.replace(/\s+/g, ' ').trim()), 'payment.provider = stripe ✕');
  await page.close();
});

test('live tail: a log sent after switching it on appears at the top within 2 s', async () => {
  const page = await openLogs();
  await page.getByRole('button', { name: /Live tail/ }).click();
  await until(() => /[?&]tail=1/.test(page.url()), { what: 'tail in the URL' });
  await until(async () => /Live tail: on/.test(await page.getByRole('button', { name: /Live tail/ }).innerText()), { what: 'the tail to connect' });
  await sendPython(qyl, SENDER, { args: ['one', 'checkout', 'ERROR', 'tail marker quokka'] });
  const sentAt = Date.now();
  await until(async () => (await bodies(page))[0] === 'tail marker quokka', { ms: 2000, every: 50, what: 'the tailed log at the top' });
  console.log(`live tail latency ${Date.now() - sentAt} ms`);
  // Only matching logs stream in: a DEBUG log is dropped once ERROR+ is chosen.
  await page.getByLabel('Min severity').selectOption('ERROR');
  await until(async () => (await page.locator('.logs-line').count()) === 3, { what: 'ERROR and above' });
  await sendPython(qyl, SENDER, { args: ['one', 'checkout', 'DEBUG', 'quiet debug line'] });
  await sendPython(qyl, SENDER, { args: ['one', 'inventory', 'FATAL', 'second marker wombat'] });
  await until(async () => (await bodies(page))[0] === 'second marker wombat', { ms: 2000, every: 50, what: 'the FATAL log' });
  assert.ok(!(await bodies(page)).includes('quiet debug line'));
  await page.close();
});

test('older pages load as the list is scrolled; tailed logs wait while scrolled away', async () => {
  await sendPython(qyl, SENDER, { args: ['many', 'bulk', '1200'] });
  await until(async () => (await api(qyl, '/api/v1/logs?service=bulk&limit=1000')).body.items?.length === 1000, { what: 'the bulk logs' });
  const page = await openLogs('?service=bulk&tail=1');
  assert.match(await page.locator('.page-subtitle').innerText(), /^500\+ logs loaded/);
  // Only 500 are loaded, but the histogram counts all 1,200 in the range.
  await until(async () => (await histTotal(page)) === '1,200 logs in range', { what: 'the histogram of all bulk logs' });
  assert.deepEqual(await legend(page), ['INFO 1,200']);
  assert.equal(await page.locator('.logs-hist-unloaded').count(), 0, 'nothing is shaded as not loaded');
  await screenshot(page, 'logs-bulk');
  assert.ok((await page.locator('.logs-line').count()) < 80, 'only the rows in view are rendered');
  const scroller = page.locator('.logs-scroll');
  for (const want of [1000, 1200]) {
    await scroller.evaluate((el) => el.scrollTo({ top: el.scrollHeight }));
    await until(async () => (await page.locator('.page-subtitle').innerText()).startsWith(want.toLocaleString('en-US')), { what: `${want} rows loaded` });
  }
  await until(async () => /All 1,200 logs in this range are loaded/.test(await page.locator('.logs-foot').innerText()), { what: 'the end of the list' });
  await scroller.evaluate((el) => el.scrollTo({ top: el.scrollHeight }));
  await until(async () => (await bodies(page)).at(-1) === 'bulk record 1 of 1200', { what: 'the oldest record last' });
  // Scrolled away from the top, a tailed log waits behind the "new" bar.
  await until(async () => /Live tail: on/.test(await page.getByRole('button', { name: /Live tail/ }).innerText()), { what: 'the tail' });
  await sendPython(qyl, SENDER, { args: ['one', 'bulk', 'WARN', 'arrived while reading'] });
  const bar = page.locator('.logs-pending');
  await until(async () => /Paused — 1 new log/.test(await bar.innerText().catch(() => '')), { what: 'the paused bar' });
  assert.ok(!(await bodies(page)).includes('arrived while reading'));
  await bar.click();
  await until(async () => (await bodies(page))[0] === 'arrived while reading', { what: 'the held log at the top' });
  assert.equal(await scroller.evaluate((el) => el.scrollTop), 0);
  // While tailing, the counts catch up with what the tail brought in.
  await until(async () => (await histTotal(page)) === '1,201 logs in range', { ms: 12_000, what: 'the histogram to count the tailed log' });
  assert.deepEqual(await legend(page), ['INFO 1,200', 'WARN 1']);
  await page.close();
});

test('dark theme renders the list with readable levels', async () => {
  const page = await newPage(browser, { colorScheme: 'dark' });
  await page.goto(`${qyl.url}/logs`);
  await page.locator('.logs-line').first().waitFor();
  const bg = await page.evaluate(() => getComputedStyle(document.querySelector('.logs-list-card')).backgroundColor);
  assert.notEqual(bg, 'rgb(255, 255, 255)', 'the card follows the dark theme');
  await screenshot(page, 'logs-dark');
  await page.close();
});
