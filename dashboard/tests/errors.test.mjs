// Browser tests of the Errors pages: a Python service reports exceptions and
// a failed GenAI call with the real OpenTelemetry SDK, then a person triages
// them in the dashboard: the list with counts and trends, the search (run by
// qyl, so it covers every page of groups), a group's stack
// trace (in-app frames shown, system frames folded), the automatic triage
// report and the notes on a group, resolving from the group page, bulk
// ignoring and merging from the list, and the status tabs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO, api, launch, newPage, screenshot, sendPython, startQyl, until } from './harness.mjs';

const SENDER = path.join(REPO, 'dashboard/tests/py/errors_send.py');

// Two objectives over the same traffic: the shop's entry spans (6 of 7
// fail: pages) and its suggestions endpoint (all good: OK). The SLO watcher
// looks every second, so the page's alert history fills within the test.
const SLO_CONFIG = `
[errors]
slo_check_every = "1s"

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

// A stand-in for the OpenAI-compatible endpoint that writes triage
// summaries: it answers for the exceptions and refuses the GenAI group's
// report, so the pages show a summary on those and why there is none on
// that one.
const SUMMARY = 'The cart body reaching `parse_cart` is not JSON: since **2.0.0** it is built with str().\n\nConfidence: high. Next: build it with `json.dumps`.';
let model;
const modelCalls = [];

function startModel() {
  return new Promise((resolve) => {
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const ask = JSON.parse(body || '{}');
        const prompt = ask.messages?.find((m) => m.role === 'user')?.content ?? '';
        modelCalls.push({ path: req.url, model: ask.model, prompt });
        res.setHeader('content-type', 'application/json');
        if (prompt.includes('RateLimitError')) {
          res.statusCode = 503;
          res.end(JSON.stringify({ error: { message: 'model overloaded' } }));
          return;
        }
        const content = prompt.includes('JSONDecodeError') ? SUMMARY : 'Every user from `u-7` on is missing from `USERS`: the lookup fails for all of them.\n\nConfidence: medium.';
        res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content } }] }));
      });
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

let configDir;
let qyl;
let browser;
let page;
let sent;
/** Group ids by error type. */
const ids = {};

before(async () => {
  configDir = mkdtempSync(path.join(tmpdir(), 'qyl-errors-config-'));
  model = await startModel();
  const triage = `
[triage]
endpoint = "http://127.0.0.1:${model.address().port}/v1"
model = "triage-test-model"
`;
  writeFileSync(path.join(configDir, 'qyl.toml'), SLO_CONFIG + triage);
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
  model?.close();
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

test('the group page leads with the automatic triage report: suspected cause, releases, what changed, next steps', async () => {
  const id = ids['json.decoder.JSONDecodeError'];
  // Triage runs in the background ([triage] is on by default) once a group is new.
  const report = await until(async () => (await api(qyl, `/api/v1/errors/${id}`)).body.triage, { what: 'a triage report', ms: 20000 });
  await page.goto(`${qyl.url}/errors/${id}`);
  const panel = page.locator('.eg-triage');
  await panel.waitFor();
  assert.match(await panel.locator('.card-head').innerText(), /Triage\s+new/);

  // The innermost in-app frame, where it is, and what it raised.
  const suspect = panel.locator('[data-suspect]');
  assert.equal(await suspect.locator('.eg-tri-frame').innerText(), 'parse_cart');
  assert.match(await suspect.locator('.eg-tri-where').innerText(), /errors_send\.py:\d+$/);
  assert.match(await suspect.innerText(), /raising\s+json\.decoder\.JSONDecodeError\s+Expecting property name/);
  // The frame links to its row in the event's stack trace.
  await suspect.locator('.eg-tri-frame').click();
  const row = page.locator('.eg-frame.eg-frame-flash');
  await row.waitFor();
  assert.equal(await row.locator('.eg-frame-fn').innerText(), 'parse_cart');
  assert.equal(await row.getAttribute('data-frame'), report.suspected_cause.frame);

  // Releases: the sender's past is 1.9.0, the failures come with 2.0.0.
  const facts = await panel.locator('.eg-tri-fact').allInnerTexts();
  assert.match(facts[0], /First release\s+2\.0\.0/);
  assert.match(facts[1], /Deploy before first event\s+2\.0\.0 first seen \d+s before/);
  assert.match(facts[2], /Affected\s+3 events · 3 users · 2 sessions/);
  assert.deepEqual((await panel.locator('.eg-tri-ids a').evaluateAll((as) => as.map((a) => a.getAttribute('href')))).sort(), ['/sessions/sess-0', '/sessions/sess-1']);

  // What changed against that baseline: the new release.
  const changed = panel.locator('.eg-tri-changed tbody tr');
  assert.equal(await changed.count(), 1);
  assert.deepEqual(
    (await changed.locator('td').allInnerTexts()).map((t) => t.trim()),
    ['release', '2.0.0new', '100%', '0%'],
  );
  assert.equal(await changed.locator('.badge').innerText(), 'new', 'not seen in the baseline');

  const steps = await panel.locator('.eg-tri-steps li').allInnerTexts();
  assert.equal(steps.length, report.next_steps.length);
  assert.match(steps[0], /^Read .*errors_send\.py:parse_cart:\d+ first/);
  assert.ok(steps.some((s) => /release=2\.0\.0 is over-represented/.test(s)), steps.join('\n'));
  // Sessions and traces named in a step link to their pages.
  const replay = panel.locator('.eg-tri-steps li', { hasText: 'Replay session' });
  assert.match(await replay.locator('a').getAttribute('href'), /^\/sessions\/sess-[01]$/);
  // The model's summary, with the model's name, its code spans as code.
  const summary = panel.locator('[data-summary]');
  assert.match(await summary.locator('.eg-tri-summary-head').innerText(), /AI summary\s+triage-test-model/);
  assert.deepEqual(await summary.locator('code').allInnerTexts(), ['parse_cart', 'json.dumps']);
  assert.equal(await summary.locator('strong').innerText(), '2.0.0');
  assert.equal(await summary.locator('p').count(), 2);
  assert.equal(await panel.locator('.eg-tri-summary-error').count(), 0);
  const call = modelCalls.find((c) => c.prompt.includes(`error group #${id} `));
  assert.equal(call?.path, '/v1/chat/completions');
  assert.equal(call?.model, 'triage-test-model');

  // The whole report as Markdown, for pasting elsewhere.
  await panel.getByRole('button', { name: 'Markdown' }).click();
  assert.match(await panel.locator('.eg-tri-markdown').innerText(), /^## Triage of error group #\d+ \(new\)/);
  await panel.getByRole('button', { name: 'Markdown' }).click();
  await panel.locator('.eg-tri-steps').waitFor();
  await page.locator('.content').evaluate((el) => el.scrollTo(0, 0));
  await screenshot(page, 'error-group-triage');

  // A failed GenAI call: its class and provider instead of a stack frame.
  const genai = ids['openai.RateLimitError'];
  await until(async () => (await api(qyl, `/api/v1/errors/${genai}`)).body.triage, { what: 'the GenAI group’s report', ms: 20000 });
  await page.goto(`${qyl.url}/errors/${genai}`);
  const gen = page.locator('.eg-triage .eg-tri-genai');
  await gen.waitFor();
  assert.match(await gen.innerText(), /Rate limited\s+gpt-4o\s+via openai\s+chat/);
  assert.match(await gen.innerText(), /openai is refusing or slow for this group only/);
  assert.equal(await page.locator('.eg-triage [data-suspect]').count(), 0);
  assert.match(await page.locator('.eg-tri-steps').innerText(), /Rate limited by openai: add retries with backoff/);
  // The model refused this one: said in one quiet line, no summary box.
  assert.equal(await page.locator('.eg-triage [data-summary]').count(), 0);
  assert.match(await page.locator('.eg-tri-summary-error').innerText(), /^No AI summary from triage-test-model: the model endpoint answered 503/);
  await screenshot(page, 'error-group-triage-genai');
  assert.deepEqual(page.pageErrors, []);
});

test('notes: adding one shows it at once, it persists, and a refusal is shown beside the box', async () => {
  const id = ids['__main__.UserLookupError'];
  await page.goto(`${qyl.url}/errors/${id}`);
  const activity = page.locator('.eg-activity');
  await activity.locator('.eg-milestone').first().waitFor();
  assert.equal(await activity.locator('.eg-note').count(), 0);
  const button = activity.getByRole('button', { name: 'Add note' });
  assert.equal(await button.isDisabled(), true, 'nothing to post yet');
  await page.evaluate(() => (window.__sameDocument = true));

  const text = 'Looked into it: u-7 and later never made it into USERS after the 2.0.0 import.\nAnn is on it.';
  await activity.locator('textarea').fill(text);
  const posted = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === `/api/v1/errors/${id}/notes`);
  await button.click();
  assert.equal((await posted).status(), 201);
  const note = activity.locator('.eg-note');
  await note.first().waitFor();
  assert.equal(await note.count(), 1);
  assert.equal(await note.locator('.eg-note-text').innerText(), text);
  assert.match(await note.locator('.eg-note-head').innerText(), /Dashboard\s+\d+s ago/);
  assert.equal(await activity.locator('textarea').inputValue(), '', 'the box is emptied');
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
  assert.match(await activity.locator('.card-head').innerText(), /1 note/);
  const stored = (await api(qyl, `/api/v1/errors/${id}`)).body.notes;
  assert.deepEqual(
    stored.map((n) => [n.author, n.text]),
    [['dashboard', text]],
  );

  // One written through the API (signed `api`): newest first, above the first.
  const second = await api(qyl, `/api/v1/errors/${id}/notes`, { method: 'POST', body: JSON.stringify({ text: 'Second note' }) });
  assert.equal(second.status, 201);
  await page.reload();
  await activity.locator('.eg-note').nth(1).waitFor();
  assert.deepEqual(await activity.locator('.eg-note-text').allInnerTexts(), ['Second note', text]);
  assert.deepEqual(
    (await activity.locator('.eg-note-author').allInnerTexts()),
    ['API', 'Dashboard'],
  );
  // Milestones after the notes: triaged, then first seen.
  assert.match(await activity.locator('.eg-milestone').last().innerText(), /First seen in 2\.0\.0/);
  await screenshot(page, 'error-group-notes');

  // qyl refusing a note (a read-only token, say): said beside the box, the text kept.
  await page.route(`**/api/v1/errors/${id}/notes`, (route) =>
    route.fulfill({ status: 403, contentType: 'application/json', body: JSON.stringify({ error: { code: 'forbidden', message: 'this token may only read' } }) }),
  );
  await activity.locator('textarea').fill('Will not be stored');
  await activity.getByRole('button', { name: 'Add note' }).click();
  assert.match(await activity.locator('.eg-note-error').innerText(), /this token may only read/);
  assert.equal(await activity.locator('textarea').inputValue(), 'Will not be stored');
  assert.equal(await activity.locator('.eg-note').count(), 2);
  await page.unroute(`**/api/v1/errors/${id}/notes`);
  // The browser logs the refused request; that one was asked for.
  page.pageErrors = page.pageErrors.filter((e) => !/status of 403/.test(e.message));
  // Typing again clears the complaint.
  await activity.locator('textarea').fill('');
  assert.equal(await activity.locator('.eg-note-error').count(), 0);
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
  // The watcher announced the page without anyone asking; the history
  // lists that change (a reload picks it up if the page came first).
  const paged = page.locator('.slo-history-table tr[data-to="page"]');
  for (let i = 0; i < 10 && (await paged.count()) === 0; i++) {
    await page.waitForTimeout(1000);
    await page.reload();
    await page.locator('.slo-history').waitFor();
  }
  const row = await paged.first().innerText();
  assert.match(row, /shop-availability/);
  assert.match(row, /ok\s*→\s*page/);
  assert.match(row, /page 14\.4x \(1h & 5m\)/);
  assert.equal(await page.locator('.slo-history-table tbody tr').count(), 1, 'suggest-latency never changed');
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
