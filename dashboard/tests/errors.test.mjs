// Browser tests of the Errors pages: a Python service reports exceptions and
// a failed GenAI call with the real OpenTelemetry SDK, then a person triages
// them in the dashboard: the list with counts and trends, the search (run by
// qyl, so it covers every page of groups), a group's stack
// trace (in-app frames shown, system frames folded), resolving from the group
// page, bulk ignoring and merging from the list, and the status tabs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO, api, launch, newPage, screenshot, sendPython, startQyl, until } from './harness.mjs';

const SENDER = path.join(REPO, 'dashboard/tests/py/errors_send.py');

// Two objectives over the same traffic: the shop's entry spans (6 of 7
// fail: pages) and its suggestions endpoint (all good: OK).
const SLO_CONFIG = `
[[errors.slo]]
name = "shop-availability"
service = "shop"
objective = 99.0
window = "30d"

[[errors.slo]]
name = "suggest-latency"
service = "shop"
span_name = "POST /suggest"
objective = 99.9
window = "7d"
latency_threshold_ms = 2000
`;

let configDir;
let qyl;
let browser;
let page;
let sent;
/** Group ids by error type. */
const ids = {};

before(async () => {
  configDir = mkdtempSync(path.join(tmpdir(), 'qyl-errors-config-'));
  writeFileSync(path.join(configDir, 'qyl.toml'), SLO_CONFIG);
  qyl = await startQyl({ args: ['--config', path.join(configDir, 'qyl.toml')] });
  browser = await launch();
  sent = await sendPython(qyl, SENDER, { args: ['3'] });
  const groups = await until(
    async () => {
      const r = await api(qyl, '/api/v1/errors');
      return r.body.items?.length === 3 && r.body.items;
    },
    { what: 'three error groups', ms: 20000 },
  );
  for (const g of groups) ids[g.error_type] = g.id;
  assert.ok(ids['json.decoder.JSONDecodeError'] && ids['__main__.UserLookupError'] && ids['openai.RateLimitError'], JSON.stringify(ids));
  page = await newPage(browser);
});

after(async () => {
  await browser?.close();
  await qyl?.stop();
  if (configDir) rmSync(configDir, { recursive: true, force: true });
});

const rowOf = (id) => page.locator(`tr[data-group="${id}"]`);
const status = async (id) => (await api(qyl, `/api/v1/errors/${id}`)).body.status;

test('the list shows each group with its title, count, users, trend and badges', async () => {
  await page.goto(`${qyl.url}/errors`);
  await page.locator('tr[data-group]').nth(2).waitFor();
  assert.equal(await page.locator('tr[data-group]').count(), 3);

  const json = rowOf(ids['json.decoder.JSONDecodeError']);
  assert.match(await json.locator('.errors-title').innerText(), /JSONDecodeError/);
  assert.match(await json.innerText(), /Expecting property name enclosed in double quotes/);
  assert.match(await json.innerText(), /parse_cart in errors_send\.py/, 'culprit: the in-app frame');
  const cells = await json.locator('td.num').allInnerTexts();
  assert.deepEqual(cells.slice(1), ['3', '3'], 'events and users');
  // The trend has bars for the events sent (the histogram API).
  await json.locator('.count-bars-bar').first().waitFor();

  const user = rowOf(ids['__main__.UserLookupError']);
  assert.deepEqual((await user.locator('td.num').allInnerTexts()).slice(1), ['3', '3']);

  const genai = rowOf(ids['openai.RateLimitError']);
  assert.match(await genai.innerText(), /Rate limited/, 'GenAI class badge');
  assert.match(await genai.innerText(), /Rate limit reached for gpt-4o/);
  assert.equal(await genai.locator('a.errors-title').getAttribute('href'), `/errors/${ids['openai.RateLimitError']}`);
  for (const r of [json, user, genai]) assert.match(await r.innerText(), /New/, 'status badge');
  assert.match(await page.locator('.errors-bulkbar').innerText(), /3 groups/);

  await screenshot(page, 'errors-list');
  assert.deepEqual(page.pageErrors, []);
});

test('the search box asks qyl for the matching groups (q), debounced, and lives in the URL', async () => {
  await page.goto(`${qyl.url}/errors`);
  await page.locator('tr[data-group]').nth(2).waitFor();
  const searches = [];
  const onRequest = (r) => {
    const u = new URL(r.url());
    if (u.pathname === '/api/v1/errors' && u.searchParams.has('q')) searches.push(u.searchParams.get('q'));
  };
  page.on('request', onRequest);
  // A word found only in one group's culprit (its in-app frame), none of
  // its type, message, service or release.
  const searched = page.waitForRequest((r) => {
    const u = new URL(r.url());
    return u.pathname === '/api/v1/errors' && u.searchParams.get('q') === 'parse_cart';
  });
  await page.keyboard.press('/');
  await page.keyboard.type('parse_cart');
  const request = await searched;
  const answer = await (await request.response()).json();
  assert.deepEqual(
    answer.items.map((g) => g.id),
    [ids['json.decoder.JSONDecodeError']],
    'qyl filtered the groups',
  );
  assert.equal(new URL(request.url()).searchParams.get('status'), 'unresolved', 'with the tab’s status');
  await until(async () => (await page.locator('tr[data-group]').count()) === 1, { what: 'one row left' });
  const row = page.locator('tr[data-group]');
  assert.match(await row.locator('.errors-title').innerText(), /JSONDecodeError/);
  assert.match(await row.locator('.errors-culprit').innerText(), /parse_cart/);
  assert.match(page.url(), /q=parse_cart/);
  assert.match(await page.locator('.errors-bulkbar').innerText(), /1 group matching “parse_cart”/);
  assert.deepEqual(searches, ['parse_cart'], 'one request once typing paused, not one per key');
  await screenshot(page, 'errors-search');

  // Case does not matter; nothing found says what was searched.
  await page.locator('[data-search]').fill('NO_SUCH_ERROR');
  await page.locator('.state-empty', { hasText: 'No error groups match “NO_SUCH_ERROR”' }).waitFor();
  await screenshot(page, 'errors-search-empty');
  assert.match(page.url(), /q=NO_SUCH_ERROR/);
  await page.locator('[data-search]').fill('userlookup');
  await until(async () => (await page.locator('tr[data-group]').count()) === 1, { what: 'the UserLookupError row' });
  assert.match(await page.locator('tr[data-group]').innerText(), /UserLookupError/);

  await page.locator('[data-search]').fill('');
  await until(async () => (await page.locator('tr[data-group]').count()) === 3, { what: 'all rows back' });
  assert.doesNotMatch(page.url(), /q=/);
  page.off('request', onRequest);
  assert.deepEqual(page.pageErrors, []);
});

test('Load more keeps the search', async () => {
  // Pages of one group, so three groups of the service make three pages.
  const oneByOne = (url) => url.pathname === '/api/v1/errors' && url.searchParams.has('q');
  await page.route(oneByOne, (route) => {
    const u = new URL(route.request().url());
    u.searchParams.set('limit', '1');
    return route.continue({ url: u.toString() });
  });
  try {
    await page.goto(`${qyl.url}/errors?q=shop`);
    await page.locator('tr[data-group]').first().waitFor();
    assert.equal(await page.locator('tr[data-group]').count(), 1);
    assert.match(await page.locator('.errors-bulkbar').innerText(), /1\+ group matching “shop”/);
    for (const rows of [2, 3]) {
      const next = page.waitForRequest((r) => new URL(r.url()).searchParams.has('cursor'));
      await page.getByRole('button', { name: 'Load more groups' }).click();
      const u = new URL((await next).url());
      assert.equal(u.searchParams.get('q'), 'shop', 'the next page is of the same search');
      await until(async () => (await page.locator('tr[data-group]').count()) === rows, { what: `${rows} rows` });
    }
    await until(async () => (await page.getByRole('button', { name: 'Load more groups' }).count()) === 0, { what: 'no more pages' });
    const shown = await page.locator('tr[data-group]').evaluateAll((rows) => rows.map((r) => Number(r.dataset.group)));
    assert.deepEqual([...shown].sort(), Object.values(ids).sort(), 'each group once');
  } finally {
    await page.unroute(oneByOne);
  }
  assert.deepEqual(page.pageErrors, []);
});

test('a group shows the stack trace: in-app frames, system frames folded, the exception chain', async () => {
  await page.goto(`${qyl.url}/errors`);
  await rowOf(ids['json.decoder.JSONDecodeError']).locator('a.errors-title').click();
  await until(() => page.url().endsWith(`/errors/${ids['json.decoder.JSONDecodeError']}`), { what: 'the group URL' });
  await page.locator('.eg-frame.in-app').first().waitFor();

  assert.equal(await page.locator('.eg-type').innerText(), 'json.decoder.JSONDecodeError');
  const inApp = await page.locator('.eg-frame.in-app .eg-frame-fn').allInnerTexts();
  assert.deepEqual(inApp, ['parse_cart', 'checkout'], 'in-app frames, most recent call first');
  const toggle = page.locator('.eg-systoggle');
  assert.equal(await toggle.count(), 1);
  assert.match(await toggle.innerText(), /Show 3 system frames/);
  assert.equal(await page.locator('.eg-frame.system').count(), 0, 'system frames start folded');
  await toggle.click();
  assert.deepEqual(await page.locator('.eg-frame.system .eg-frame-fn').allInnerTexts(), ['raw_decode', 'decode', 'loads']);
  assert.match(await toggle.innerText(), /Hide 3 system frames/);

  // The event: 1 of 3, its trace and session linked, breadcrumbs listed.
  assert.match(await page.locator('.eg-event-pos').innerText(), /1 of 3/);
  const traceHref = await page.locator('.eg-tag', { hasText: 'trace' }).locator('a').getAttribute('href');
  assert.ok(sent.checkout.some((t) => traceHref.startsWith(`/traces/${t}`)), `${traceHref} is one of ${sent.checkout}`);
  assert.match(await page.locator('.eg-tag', { hasText: 'session' }).locator('a').getAttribute('href'), /^\/sessions\/sess-[01]/);
  assert.ok((await page.locator('.eg-crumb').count()) >= 1);
  assert.match(await page.locator('.eg-crumb-current').innerText(), /JSONDecodeError/);

  // Older walks through the events, each with its own trace.
  await page.getByRole('button', { name: 'Older ›' }).click();
  await until(async () => /2 of 3/.test(await page.locator('.eg-event-pos').innerText()), { what: 'event 2 of 3' });
  assert.match(page.url(), /event=[0-9a-f]{32}/);
  await until(async () => (await page.locator('.eg-tag', { hasText: 'trace' }).locator('a').getAttribute('href')) !== traceHref, { what: 'another trace' });

  await page.goto(`${qyl.url}/errors/${ids['json.decoder.JSONDecodeError']}`);
  await page.locator('.eg-frame.in-app').first().waitFor();
  await screenshot(page, 'error-group');

  // A chained exception: the outer one, then what caused it.
  await page.goto(`${qyl.url}/errors/${ids['__main__.UserLookupError']}`);
  await page.locator('.eg-exception').nth(1).waitFor();
  const heads = await page.locator('.eg-exc-head').allInnerTexts();
  assert.match(heads[0], /UserLookupError/);
  assert.match(heads[1], /KeyError/);
  assert.match(await page.locator('.eg-cause').innerText(), /caused by/i);
  assert.deepEqual(page.pageErrors, []);
});

test('Resolve on the group page resolves it in the page and in the API', async () => {
  const id = ids['json.decoder.JSONDecodeError'];
  await page.goto(`${qyl.url}/errors/${id}`);
  await page.getByRole('button', { name: '✓ Resolve' }).click();
  await page.getByRole('button', { name: '↺ Unresolve' }).waitFor();
  assert.match(await page.locator('.eg-badges .badge').first().innerText(), /Resolved/);
  assert.match(await page.locator('.page-actions').innerText(), /Resolved/);
  assert.equal(await status(id), 'resolved');
});

test('bulk ignore from the list, and the status tabs move groups between them', async () => {
  await page.goto(`${qyl.url}/errors`);
  // The resolved group left the Unresolved tab.
  await until(async () => (await page.locator('tr[data-group]').count()) === 2, { what: 'two unresolved groups' });
  assert.equal(await rowOf(ids['json.decoder.JSONDecodeError']).count(), 0);

  await rowOf(ids['__main__.UserLookupError']).locator('input[type=checkbox]').check();
  await rowOf(ids['openai.RateLimitError']).locator('input[type=checkbox]').check();
  assert.match(await page.locator('.errors-bulkbar').innerText(), /2 selected/);
  await page.locator('.errors-bulkbar').getByRole('button', { name: 'Ignore' }).click();
  await page.locator('.errors-notice', { hasText: 'Ignored: 2 groups' }).waitFor();
  assert.equal(await status(ids['__main__.UserLookupError']), 'archived');
  assert.equal(await status(ids['openai.RateLimitError']), 'archived');
  await page.locator('.state-empty', { hasText: 'No error groups match' }).waitFor();

  const tab = (name) => page.getByRole('tab', { name, exact: true });
  const shownIds = async () => (await page.locator('tr[data-group]').evaluateAll((rows) => rows.map((r) => Number(r.dataset.group)))).sort();

  await tab('Ignored').click();
  await until(async () => (await page.locator('tr[data-group]').count()) === 2, { what: 'two ignored groups' });
  assert.match(page.url(), /status=archived/);
  assert.deepEqual(await shownIds(), [ids['__main__.UserLookupError'], ids['openai.RateLimitError']].sort());

  await tab('Resolved').click();
  await until(async () => (await page.locator('tr[data-group]').count()) === 1, { what: 'one resolved group' });
  assert.deepEqual(await shownIds(), [ids['json.decoder.JSONDecodeError']]);

  await tab('All').click();
  await until(async () => (await page.locator('tr[data-group]').count()) === 3, { what: 'all groups' });

  // Reopen one ignored group from the Ignored tab: it moves to Unresolved.
  await tab('Ignored').click();
  await until(async () => (await page.locator('tr[data-group]').count()) === 2, { what: 'two ignored groups' });
  await rowOf(ids['openai.RateLimitError']).locator('input[type=checkbox]').check();
  await page.locator('.errors-bulkbar').getByRole('button', { name: 'Unresolve' }).click();
  await until(async () => (await page.locator('tr[data-group]').count()) === 1, { what: 'one ignored group left' });
  assert.equal(await status(ids['openai.RateLimitError']), 'unresolved');
  await tab('Unresolved').click();
  await until(async () => (await page.locator('tr[data-group]').count()) === 1, { what: 'the reopened group' });
  assert.deepEqual(await shownIds(), [ids['openai.RateLimitError']]);
  assert.deepEqual(page.pageErrors, []);
});

test('merging two groups from the list folds one into the other', async () => {
  await page.goto(`${qyl.url}/errors?status=all`);
  await until(async () => (await page.locator('tr[data-group]').count()) === 3, { what: 'all groups' });
  const target = ids['__main__.UserLookupError'];
  const source = ids['openai.RateLimitError'];
  await rowOf(target).locator('input[type=checkbox]').check();
  await rowOf(source).locator('input[type=checkbox]').check();
  await page.locator('.errors-bulkbar').getByRole('button', { name: 'Merge' }).click();
  // Into the group with the most events.
  assert.match(await page.locator('.errors-confirm').innerText(), new RegExp(`Merge into\\s+#${target}\\b`));
  await page.locator('.errors-confirm').getByRole('button', { name: 'Merge 2' }).click();
  await page.locator('.errors-notice', { hasText: `Merged 2 groups into #${target}` }).waitFor();
  assert.equal(await status(source), 'merged');
  const merged = (await api(qyl, `/api/v1/errors/${target}`)).body;
  assert.equal(merged.count, 4);
  await until(async () => (await page.locator('tr[data-group]').count()) === 2, { what: 'the merged group gone from All' });
  assert.match(await rowOf(target).locator('td.num').nth(1).innerText(), /^4$/);
});

test('the list reads well in dark mode', async () => {
  const dark = await newPage(browser, { colorScheme: 'dark' });
  await dark.goto(`${qyl.url}/errors?status=all`);
  await dark.locator('tr[data-group]').first().waitFor();
  const bg = await dark.evaluate(() => getComputedStyle(document.querySelector('.card')).backgroundColor);
  assert.equal(bg, 'rgb(22, 25, 32)', 'dark panel');
  await screenshot(dark, 'errors-list-dark');
  await dark.goto(`${qyl.url}/errors/${ids['json.decoder.JSONDecodeError']}`);
  await dark.locator('.eg-frame.in-app').first().waitFor();
  await screenshot(dark, 'error-group-dark');
  assert.deepEqual(dark.pageErrors, []);
  await dark.context().close();
});

test('the SLO page shows alert levels, burn rates per window and the budget left', async () => {
  await page.goto(`${qyl.url}/slo`);
  await page.locator('.slo-card').nth(1).waitFor();
  // The one paging comes first.
  const first = page.locator('.slo-card').first();
  assert.match(await first.locator('h2').innerText(), /shop-availability/);
  assert.match(await first.locator('.slo-level').innerText(), /page/i);
  assert.match(await first.locator('.slo-budget-value').innerText(), /^0%$/, 'budget spent');
  assert.match(await first.locator('.slo-budget').innerText(), /overspent/);
  assert.match(await first.locator('.slo-sli-value').innerText(), /14\.29%/, '1 good of 7');
  const headers = await first.locator('.slo-table thead th').allInnerTexts();
  assert.deepEqual(headers, ['Window', '5m', '30m', '1h', '2h', '6h', '1d', '3d']);
  const burn1h = await first.locator('.slo-table tbody tr').first().locator('td').nth(2).innerText();
  assert.match(burn1h, /85\.7×/, '6 bad of 7 against a 1% budget');
  assert.equal(await first.locator('.slo-tier.firing').count(), 4, 'every tier fires');

  const second = page.locator('.slo-card').nth(1);
  assert.match(await second.locator('h2').innerText(), /suggest-latency/);
  assert.match(await second.locator('.slo-level').innerText(), /ok/i);
  assert.match(await second.locator('.slo-budget-value').innerText(), /100/);
  assert.equal(await second.locator('.slo-tier.firing').count(), 0);
  assert.match(await page.locator('.slo-summary').innerText(), /1 page/);
  await screenshot(page, 'slo');
  assert.deepEqual(page.pageErrors, []);
});

test('a new group appears on the open list as it happens (live stream)', async () => {
  // Every group so far is resolved, ignored or merged: Unresolved is empty.
  await page.goto(`${qyl.url}/errors`);
  await page.locator('.state-empty').waitFor();
  await page.evaluate(() => (window.__sameDocument = true));
  await sendPython(
    qyl,
    `
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
with provider.get_tracer("shop").start_as_current_span("GET /ratio") as span:
    try:
        1 / 0
    except ZeroDivisionError as e:
        span.record_exception(e)
        span.set_status(Status(StatusCode.ERROR, str(e)))
provider.shutdown()
`,
  );
  await page.locator('tr[data-group]', { hasText: 'ZeroDivisionError' }).waitFor({ timeout: 8000 });
  assert.equal(await page.locator('tr[data-group]').count(), 1);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
  assert.deepEqual(page.pageErrors, []);
});
