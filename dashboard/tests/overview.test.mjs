// Browser tests of the Overview, Metrics and SQL pages against a real qyl fed
// by the OpenTelemetry Python SDK: what a person sees on each page (rows,
// numbers, legends, errors, downloads) and where clicks lead.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, launch, newPage, screenshot, sendPython, startQyl, until } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const py = (name) => path.join(here, 'py', name);

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

/** Cell texts of the table rows matching `selector`. */
async function rowTexts(page, selector) {
  return page.$$eval(selector, (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent.trim())));
}

test('overview: with no data at all, the empty state tells how to send some', async () => {
  const page = await newPage(browser);
  await page.goto(`${qyl.url}/`);
  await page.getByText('No telemetry yet').waitFor();
  const hint = await page.locator('.empty-hint pre').textContent();
  assert.match(hint, /export OTEL_EXPORTER_OTLP_ENDPOINT=http:\/\/[^\s]+:4317/);
  assert.equal(await page.locator('.overview-services').count(), 0, 'no services table without data');
  await screenshot(page, 'overview-empty');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('overview: lists both services with counts, error rates and trends; a service leads to its traces', async () => {
  const sent = await sendPython(qyl, py('overview_spans.py'));
  assert.deepEqual(sent.spans, { 'shop-web': 6, 'shop-api': 7 });
  await until(async () => {
    const r = await api(qyl, '/api/v1/services');
    return r.body.length === 2 && r.body.every((s) => s.span_count > 0) && (await api(qyl, '/api/v1/errors?status=unresolved')).body.items.length > 0;
  }, { what: 'both services and the error group stored' });

  const page = await newPage(browser);
  await page.goto(`${qyl.url}/`);
  await page.locator('.overview-services tbody tr').nth(1).waitFor();
  const rows = await rowTexts(page, '.overview-services tbody tr');
  assert.equal(rows.length, 2);
  // Busiest first: shop-api (7 spans, 2 failed) then shop-web (6, none).
  const [apiRow, webRow] = rows;
  assert.match(apiRow[0], /^shop-api/);
  assert.equal(apiRow[1], '7');
  assert.equal(apiRow[3], '28.57%');
  assert.equal(apiRow[6], '1', 'one open error group for shop-api');
  assert.match(webRow[0], /^shop-web/);
  assert.equal(webRow[1], '6');
  assert.equal(webRow[3], '0%');
  assert.equal(webRow[6], '0');
  // Throughput, error rate and p95 each have a trend line per service.
  assert.equal(await page.locator('tr[data-service="shop-api"] svg.sparkline').count(), 3);
  // p95 is a duration.
  assert.match(apiRow[5], /\d(\.\d+)?(ms|µs|s)$/);

  // The tiles add the services up.
  const tile = async (label) => page.locator('.stat', { has: page.locator('.stat-label', { hasText: label }) }).locator('.stat-value').textContent();
  assert.equal(await tile('Error rate'), '15.38%', '2 failed of 13 spans');
  assert.equal(await tile('Open error groups'), '1');
  assert.match(await tile('GenAI spend'), /^\$0\.000\d+$/, 'the one priced LLM call');
  assert.match(await tile('Storage'), /\d+(\.\d)? (KB|MB)/);
  const storageSub = await page.locator('.stat', { has: page.locator('.stat-label', { hasText: 'Storage' }) }).locator('.stat-sub').textContent();
  assert.match(storageSub, /kept 7 d/, 'the default retention of 168 hours');
  // The error group and the model are listed below.
  await page.getByText('cart <num> not found').waitFor();
  assert.match(await page.locator('.overview-lower').textContent(), /gpt-4o-mini/);
  await screenshot(page, 'overview');

  await page.locator('tr[data-service="shop-api"] a', { hasText: 'shop-api' }).click();
  await page.waitForURL((u) => u.pathname === '/traces');
  assert.equal(new URL(page.url()).searchParams.get('service'), 'shop-api');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();

  // Clicking elsewhere in a row goes there too; dark theme checked once.
  const dark = await newPage(browser, { colorScheme: 'dark' });
  await dark.goto(`${qyl.url}/?from=15m`);
  await dark.locator('tr[data-service="shop-web"]').waitFor();
  await screenshot(dark, 'overview-dark');
  await dark.locator('tr[data-service="shop-web"] td').nth(4).click();
  await dark.waitForURL((u) => u.pathname === '/traces');
  const url = new URL(dark.url());
  assert.equal(url.searchParams.get('service'), 'shop-web');
  assert.equal(url.searchParams.get('from'), '15m', 'the time range is kept');
  await dark.context().close();
});

test('metrics: the picker lists metrics; a histogram shows percentiles; grouping gives one series per attribute value', async () => {
  const sent = await sendPython(qyl, py('overview_metrics.py'));
  await until(async () => {
    const r = await api(qyl, '/api/v1/metrics');
    return r.body.length >= 2 && r.body.every((m) => m.series >= 2);
  }, { what: 'both metrics with both regions' });

  // Reached from the sidebar; the page lives at /explore/metrics because
  // /metrics is qyl's own Prometheus text.
  const page = await newPage(browser);
  await page.goto(`${qyl.url}/?from=15m`);
  await page.locator('.sidebar .nav-link', { hasText: 'Metrics' }).click();
  await page.waitForURL((u) => u.pathname === '/explore/metrics' && u.searchParams.get('from') === '15m');
  await page.locator('[data-metric]').nth(1).waitFor();
  const names = await page.$$eval('[data-metric]', (els) => els.map((e) => e.getAttribute('data-metric')));
  assert.deepEqual(names, [sent.histogram, sent.counter]);
  assert.match(await page.locator(`[data-metric="${sent.histogram}"]`).textContent(), /histogram/);
  assert.match(await page.locator(`[data-metric="${sent.counter}"]`).textContent(), /sum/);

  // The search box (focused by "/") narrows the list and is kept in the URL.
  await page.locator('body').press('/');
  await page.keyboard.type('checkout');
  await until(async () => (await page.locator('[data-metric]').count()) === 1, { what: 'the list narrowed' });
  assert.equal(new URL(page.url()).searchParams.get('q'), 'checkout');

  await page.locator(`[data-metric="${sent.histogram}"]`).click();
  await page.waitForURL((u) => u.searchParams.get('metric') === sent.histogram);
  await page.locator('.metrics-legend tbody tr').nth(3).waitFor();
  const legend = await page.$$eval('.metrics-legend tbody tr', (rows) => rows.map((r) => r.getAttribute('data-series')));
  assert.deepEqual(legend, ['p50', 'p90', 'p95', 'p99']);
  const lastOf = async (label) => parseFloat((await page.locator(`.metrics-legend tr[data-series="${label}"] td`).nth(1).textContent()).replace(/[^\d.]/g, ''));
  assert.ok((await lastOf('p50')) < (await lastOf('p99')), 'p99 above p50');
  assert.equal(await page.locator('.metrics-page .chart canvas').count(), 1, 'one chart');
  await screenshot(page, 'metrics-histogram');

  await page.getByLabel('Group by').selectOption('region');
  await page.waitForURL((u) => u.searchParams.get('by') === 'region');
  await until(async () => (await page.locator('.metrics-legend tbody tr').count()) === 2, { what: 'one series per region' });
  const grouped = await page.$$eval('.metrics-legend tbody tr', (rows) => rows.map((r) => r.getAttribute('data-series')));
  assert.deepEqual(grouped, sent.regions.map((r) => `region=${r}`));
  // us-east was sent slower: its p95 is higher.
  assert.ok((await lastOf('region=us-east')) > (await lastOf('region=eu-west')));
  assert.equal(await page.locator('.metrics-note').count(), 0, 'one series per group: exact percentiles');
  await screenshot(page, 'metrics-grouped');

  // The counter, grouped the same way, reads as a rate in its unit.
  await page.locator('[data-search]').fill('');
  await page.locator(`[data-metric="${sent.counter}"]`).click();
  await page.waitForURL((u) => u.searchParams.get('metric') === sent.counter && !u.searchParams.get('by'));
  await page.getByLabel('Group by').selectOption('region');
  await until(async () => (await page.locator('.metrics-legend tbody tr').count()) === 2, { what: 'counter grouped by region' });
  assert.match(await page.locator('.metrics-legend tbody').textContent(), /order\/s/);
  assert.equal(await page.getByLabel('Aggregation').inputValue(), 'rate');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('sql: runs a query into a table, shows DuckDB errors as they are, downloads CSV, keeps history', async () => {
  const page = await newPage(browser);
  await page.goto(`${qyl.url}/sql`);
  const editor = page.locator('textarea[data-search]');
  const query = 'select service_name, count(*) n from spans group by 1 order by 1';
  await editor.fill(query);
  await editor.press('Control+Enter');
  await page.locator('.sql-table tbody tr').nth(1).waitFor();
  const rows = await rowTexts(page, '.sql-table tbody tr');
  assert.deepEqual(rows, [
    ['1', 'shop-api', '7'],
    ['2', 'shop-web', '6'],
  ]);
  assert.deepEqual(await page.$$eval('.sql-table thead th', (ths) => ths.map((th) => th.firstChild.textContent.trim())), ['#', 'service_name', 'n']);
  assert.equal(await page.locator('.sql-rowcount').textContent(), '2 rows');
  assert.match(await page.locator('.sql-meta').textContent(), /in DuckDB/);
  assert.equal(new URL(page.url()).searchParams.get('q'), query, 'the query is in the URL');
  await screenshot(page, 'sql-results');

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: /Download CSV/ }).click()]);
  assert.match(download.suggestedFilename(), /\.csv$/);
  assert.equal(readFileSync(await download.path(), 'utf8'), 'service_name,n\r\nshop-api,7\r\nshop-web,6\r\n');

  // Fields with commas, quotes and line breaks are quoted; NULL is empty.
  await editor.fill(`select 'a,b' as x, 'say "hi"' as y, 'two' || chr(10) || 'lines' as z, null as w`);
  await page.getByRole('button', { name: /Run/ }).click();
  await page.locator('.sql-table tbody tr td.sql-null').waitFor();
  const [quoted] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: /Download CSV/ }).click()]);
  assert.equal(readFileSync(await quoted.path(), 'utf8'), 'x,y,z,w\r\n"a,b","say ""hi""","two\nlines",\r\n');

  // A bad query: the page shows DuckDB's message exactly as the API gives it.
  const bad = 'select nope from spans';
  const expected = await api(qyl, '/api/v1/sql', { method: 'POST', body: JSON.stringify({ sql: bad }) });
  assert.equal(expected.status, 400);
  await editor.fill(bad);
  await editor.press('Control+Enter');
  await page.locator('.sql-error').waitFor();
  assert.equal(await page.locator('.sql-error-text').textContent(), expected.body.error.message);
  assert.match(await page.locator('.sql-error').textContent(), /Binder Error/);
  await screenshot(page, 'sql-error');

  // A query that waits for the SQL lane says so, with its elapsed time, and
  // Cancel gives the page back. The lane is made busy by holding the POST
  // and answering the queue poll as a full lane does.
  let held;
  await page.route('**/api/v1/sql', (route) => {
    held = route;
  });
  let polls = 0;
  await page.route('**/api/v1/sql/queue', (route) => {
    polls++;
    route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ running: 1, waiting: 3, slots: 1 }) });
  });
  await editor.fill('select 1');
  await editor.press('Control+Enter');
  await page.getByText('Waiting for a free SQL slot (2 ahead)').waitFor();
  assert.match(await page.locator('.sql-status').textContent(), /· \d/, 'elapsed time shown');
  assert.ok(held, 'the query was sent');
  await page.getByRole('button', { name: /Cancel/ }).click();
  await page.getByText(/Cancelled after/).waitFor();
  const pollsAtCancel = polls;
  await page.waitForTimeout(1200);
  assert.equal(polls, pollsAtCancel, 'polling stops with the query');
  assert.equal(await page.getByRole('button', { name: /Run/ }).isEnabled(), true);
  await page.unrouteAll({ behavior: 'ignoreErrors' });

  // A shared link runs its query; history survives a reload; examples fill the editor.
  await page.goto(`${qyl.url}/sql?q=${encodeURIComponent('select 41 + 1 as answer')}`);
  await page.locator('.sql-table tbody tr').waitFor();
  assert.deepEqual(await rowTexts(page, '.sql-table tbody tr'), [['1', '42']]);
  const history = await page.$$eval('.sql-history li', (lis) => lis.map((li) => li.textContent));
  assert.equal(history.length, 4);
  assert.match(history[0], /select 41 \+ 1/);
  assert.match(history[1], /select nope from spans.*failed/);
  await page.getByRole('button', { name: 'Log volume by severity' }).click();
  assert.match(await editor.inputValue(), /from logs/);
  // Every example runs against the real tables.
  const examples = await page.$$eval('.sql-side .card:first-child .menu-item', (bs) => bs.map((b) => b.textContent));
  assert.ok(examples.length >= 5);
  for (const title of examples) {
    await page.getByRole('button', { name: title, exact: true }).click();
    const sql = (await editor.inputValue()).replace(/\s+/g, ' ').trim();
    await page.getByRole('button', { name: /Run/ }).click();
    // Done when it heads the history (written when the answer arrives).
    await until(async () => (await page.locator('.sql-history li').first().textContent()).includes(sql), { what: `${title} to finish` });
    assert.equal(await page.locator('.sql-error').count(), 0, `${title}: ${await page.locator('.sql-error').textContent().catch(() => '')}`);
  }
  // Only the refused query's 400 reached the console.
  assert.deepEqual(
    page.pageErrors.filter((e) => !/status of 400/.test(e.message)),
    [],
  );
  await page.context().close();
});
