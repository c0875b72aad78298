// Browser tests of the Traces area (trace list, trace view, compare),
// driven as a user: traces sent with the OpenTelemetry Python SDK
// (tests/py/traces_send.py, which documents their shape and timings),
// then searched, opened, collapsed, filtered and compared in Chromium.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, launch, newPage, screenshot, sendPython, startQyl, until } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

describe('traces', () => {
  let qyl, browser, ids;
  const rows = (page) => page.locator('.wf-row');
  /** Waits for `n` waterfall rows; on failure says what the page showed. */
  const waitRows = async (page, n, what = `${n} waterfall rows`) => {
    try {
      await until(async () => (await rows(page).count()) === n, { what });
    } catch (e) {
      await screenshot(page, 'traces-failure');
      const shown = await page.locator('.content').innerText().catch(() => '(no content)');
      throw new Error(`${e.message}; ${await rows(page).count()} rows; page errors: ${page.pageErrors.map((x) => x.message).join(' | ')}; page: ${shown.slice(0, 400)}`);
    }
  };

  before(async () => {
    qyl = await startQyl();
    ids = await sendPython(qyl, path.join(here, 'py/traces_send.py'));
    await until(async () => (await api(qyl, '/api/v1/traces?since=1h')).body.items?.length === 5, { what: 'the five traces stored' });
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await qyl?.stop();
  });

  test('the list shows the sent traces; service and status filters narrow it, live in the URL, and back restores them', async () => {
    const page = await newPage(browser);
    await page.goto(`${qyl.url}/traces`);
    const names = page.locator('.traces-table .trace-link');
    await until(async () => (await names.count()) === 5, { what: 'five traces listed' });
    const listed = await names.allTextContents();
    for (const n of ['GET /checkout', 'GET /health', 'batch-job', 'agent.run']) assert.ok(listed.includes(n), `${n} listed in ${listed}`);
    // GenAI tokens and the proportional bars are shown.
    const agentRow = page.locator(`tr[data-trace-id="${ids.agent}"]`);
    assert.match(await agentRow.textContent(), /1,285 tok/);
    assert.equal(await page.locator('.traces-table .dur-fill').count(), 5);
    await page.locator('.traces-scatter canvas').first().waitFor();
    await screenshot(page, 'traces-list');

    // The scatter: a click picks the nearest trace in time; at the right
    // edge that is the newest one (agent.run), which opens.
    const over = await page.locator('.traces-scatter .u-over').boundingBox();
    await page.mouse.move(over.x + over.width - 2, over.y + over.height / 2);
    await page.mouse.click(over.x + over.width - 2, over.y + over.height / 2);
    await page.waitForURL(new RegExp(`/traces/${ids.agent}`));
    await page.goBack();
    await until(async () => (await names.count()) === 5, { what: 'the list again' });

    await page.selectOption('select[aria-label="Service"]', 'worker');
    await until(async () => (await names.count()) === 2, { what: 'two worker traces' });
    assert.deepEqual(await names.allTextContents(), ['batch-job', 'batch-job']);
    assert.match(page.url(), /service=worker/);

    await page.selectOption('select[aria-label="Service"]', '');
    await page.selectOption('select[aria-label="Status"]', 'error');
    await until(async () => (await names.count()) === 1, { what: 'one error trace' });
    assert.deepEqual(await names.allTextContents(), ['GET /checkout']);
    assert.match(page.url(), /status=error/);
    assert.doesNotMatch(page.url(), /service=/);

    // Back: the status filter goes, then the service filter comes back.
    await page.goBack();
    await until(async () => (await names.count()) === 5, { what: 'all traces after back' });
    await page.goBack();
    await until(async () => (await names.count()) === 2, { what: 'worker traces after back' });
    assert.equal(await page.locator('select[aria-label="Service"]').inputValue(), 'worker');

    // Paging: two per page, "Load more" appends the next pages.
    await page.goto(`${qyl.url}/traces?limit=2`);
    await until(async () => (await names.count()) === 2, { what: 'first page of two' });
    await page.getByRole('button', { name: 'Load more' }).click();
    await until(async () => (await names.count()) === 4, { what: 'second page appended' });
    await page.getByRole('button', { name: 'Load more' }).click();
    await until(async () => (await names.count()) === 5, { what: 'last page appended' });
    assert.match(await page.locator('.traces-more').textContent(), /5 traces · end of results/);
    assert.equal(new Set(await page.locator('.traces-table tr[data-trace-id]').evaluateAll((els) => els.map((e) => e.dataset.traceId))).size, 5);

    // Typing a duration and an attribute narrows too (debounced into the URL).
    await page.goto(`${qyl.url}/traces`);
    await until(async () => (await names.count()) === 5, { what: 'all traces' });
    await page.fill('input[aria-label="Min duration"]', '90ms');
    await until(async () => (await names.count()) === 3, { what: 'traces of 90 ms or more' });
    assert.match(page.url(), /min=90ms/);
    await page.fill('input[aria-label="Attribute"]', 'http.route=/checkout');
    await until(async () => (await names.count()) === 1, { what: 'the /checkout trace' });
    assert.deepEqual(page.pageErrors, []);
    await page.context().close();
  });

  test('a click opens the trace; the waterfall has a row per span with the right nesting; collapsing hides descendants; arrows move', async () => {
    const page = await newPage(browser);
    await page.goto(`${qyl.url}/traces?service=frontend`);
    await page.locator('.traces-table .trace-link', { hasText: 'GET /checkout' }).click();
    await page.waitForURL(new RegExp(`/traces/${ids.checkout}`));
    await waitRows(page, 6);
    const depthOf = async () =>
      Object.fromEntries(await rows(page).evaluateAll((els) => els.map((e) => [e.querySelector('.wf-op').textContent, Number(e.dataset.depth)])));
    assert.deepEqual(await depthOf(), { 'GET /checkout': 0, 'auth.verify': 1, 'place-order': 1, 'db.select': 2, 'charge-card': 2, 'stripe.post': 3 });
    // Error markers on the two error spans.
    assert.equal(await page.locator('.wf-row.error').count(), 2);
    await screenshot(page, 'trace-waterfall');

    await page.locator('.wf-row', { hasText: 'place-order' }).locator('.wf-toggle').click();
    await waitRows(page, 3, 'place-order collapsed');
    assert.deepEqual(Object.keys(await depthOf()), ['GET /checkout', 'auth.verify', 'place-order']);
    assert.equal(await page.locator('.wf-row', { hasText: 'place-order' }).locator('.wf-count').textContent(), '3');
    await page.locator('.wf-row', { hasText: 'place-order' }).locator('.wf-toggle').click();
    await waitRows(page, 6, 'place-order expanded');

    // Keyboard: select the root, down twice to place-order, left collapses it, right expands it.
    await page.locator('.wf-row', { hasText: 'GET /checkout' }).click();
    await page.locator('.wf-scroll').focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    await until(async () => (await page.locator('.wf-row.selected .wf-op').textContent()) === 'place-order', { what: 'place-order selected by keys' });
    await page.keyboard.press('ArrowLeft');
    await waitRows(page, 3, 'collapsed by ArrowLeft');
    await page.keyboard.press('ArrowRight');
    await waitRows(page, 6, 'expanded by ArrowRight');
    assert.match(page.url(), /span=/);
    await page.keyboard.press('Escape');
    await until(async () => (await page.locator('.span-detail').count()) === 0, { what: 'detail closed by Escape' });

    // Minimap: dragging over 40–70% of it zooms the ruler to 40–70 ms.
    const box = await page.locator('.wf-minimap').boundingBox();
    await page.mouse.move(box.x + box.width * 0.4, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.55, box.y + box.height / 2, { steps: 3 });
    await page.mouse.move(box.x + box.width * 0.7, box.y + box.height / 2, { steps: 3 });
    await page.mouse.up();
    await page.getByRole('button', { name: 'Reset zoom' }).waitFor({ timeout: 5000 }).catch(async (e) => {
      await screenshot(page, 'traces-failure');
      throw new Error(`${e.message}; ticks ${await page.locator('.wf-tick').allTextContents()}; box ${JSON.stringify(box)}`);
    });
    const ticks = (await page.locator('.wf-tick').allTextContents()).map((t) => parseFloat(t));
    assert.ok(ticks[0] >= 39 && ticks[ticks.length - 1] <= 71, `ticks within 40–70 ms: ${ticks}`);
    await page.getByRole('button', { name: 'Reset zoom' }).click();
    await until(async () => (await page.locator('.wf-tick').allTextContents()).includes('100ms'), { what: 'ruler back to 0–100 ms' });
    assert.deepEqual(page.pageErrors, []);
    await page.context().close();
  });

  test('the critical path marks the chain that decides the end, not the short span overlapped by it', async () => {
    const page = await newPage(browser);
    await page.goto(`${qyl.url}/traces/${ids.checkout}`);
    await waitRows(page, 6);
    const marks = Object.fromEntries(await rows(page).evaluateAll((els) => els.map((e) => [e.querySelector('.wf-op').textContent, e.dataset.critical])));
    // place-order (10–95 ms) ends last under the root, then charge-card and
    // stripe.post; db.select (12–30) runs before charge-card (32–90) starts;
    // auth.verify (2–12) ends after place-order starts, so it is not critical.
    assert.deepEqual(marks, {
      'GET /checkout': 'true',
      'auth.verify': 'false',
      'place-order': 'true',
      'db.select': 'true',
      'charge-card': 'true',
      'stripe.post': 'true',
    });
    assert.match(await page.locator('.crit-toggle').textContent(), /5 spans/);

    // Find in trace ("/" focuses it): by name or attribute value; Enter selects the next match.
    await page.keyboard.press('/');
    await page.keyboard.type('stripe');
    await until(async () => (await page.locator('.wf-row.match').count()) === 2, { what: 'two matches' });
    assert.deepEqual(await page.locator('.wf-row.match .wf-op').allTextContents(), ['charge-card', 'stripe.post']);
    assert.match(await page.locator('.trace-find-count').textContent(), /2 matches/);
    assert.match(page.url(), /find=stripe/);
    await page.keyboard.press('Enter');
    await until(async () => (await page.locator('.wf-row.selected .wf-op').textContent().catch(() => '')) === 'charge-card', { what: 'first match selected' });
    await page.keyboard.press('Enter');
    await until(async () => (await page.locator('.wf-row.selected .wf-op').textContent().catch(() => '')) === 'stripe.post', { what: 'second match selected' });
    await screenshot(page, 'trace-find');
    // Segments drawn on the critical spans only.
    assert.equal(await page.locator('.wf-row', { hasText: 'auth.verify' }).locator('.wf-crit').count(), 0);
    assert.ok((await page.locator('.wf-row', { hasText: 'stripe.post' }).locator('.wf-crit').count()) >= 1);
    assert.deepEqual(page.pageErrors, []);
    await page.context().close();
  });

  test('span detail: attributes filter by key and value; events relative to the span; the span’s logs; GenAI messages', async () => {
    const page = await newPage(browser);
    await page.goto(`${qyl.url}/traces/${ids.checkout}`);
    await page.locator('.wf-row', { hasText: 'GET /checkout' }).click();
    const attrs = page.locator('table[data-attrs="attributes"] tr');
    await until(async () => (await attrs.count()) === 5, { what: 'five root attributes' });
    await page.fill('input[aria-label="Filter attributes"]', 'route');
    await until(async () => (await attrs.count()) === 1, { what: 'one attribute by key' });
    assert.match(await attrs.first().textContent(), /http\.route\/checkout/);
    await page.fill('input[aria-label="Filter attributes"]', 'u-42');
    await until(async () => (await attrs.count()) === 1, { what: 'one attribute by value' });
    assert.match(await attrs.first().textContent(), /user\.id/);
    assert.match(await page.locator('.span-detail h3', { hasText: 'Attributes' }).textContent(), /1 of 5/);
    await screenshot(page, 'trace-span-detail');

    await page.locator('.wf-row', { hasText: 'charge-card' }).click();
    await until(async () => /retry/.test(await page.locator('.sd-events').textContent()), { what: 'the retry event' });
    assert.match(await page.locator('.sd-events').textContent(), /\+8\.00ms\s*retry/);
    assert.match(await page.locator('.span-detail').textContent(), /card declined/);
    await page.locator('.wf-row', { hasText: 'place-order' }).click();
    await until(async () => /payment failed for order o-981/.test(await page.locator('.sd-logs').textContent()), { what: 'the span log' });

    // Links lead to the linked trace, with the linked span selected.
    await page.goto(`${qyl.url}/traces/${ids.batch_b}`);
    await page.locator('.wf-row', { hasText: 'batch-job' }).click();
    await page.locator('.sd-links a').click();
    await page.waitForURL(new RegExp(`/traces/${ids.batch_a}\\?.*span=`));
    await until(async () => (await page.locator('.wf-row.selected .wf-op').textContent().catch(() => '')) === 'batch-job', { what: 'linked span selected' });

    await page.goto(`${qyl.url}/traces/${ids.agent}`);
    await page.locator('.wf-row', { hasText: 'chat gpt-4o-mini' }).click();
    const genai = page.locator('.sd-genai');
    await genai.waitFor();
    const text = await genai.textContent();
    assert.match(text, /gpt-4o-mini-2024-07-18/);
    assert.match(text, /openai/);
    assert.match(text, /1,200 in/);
    assert.match(text, /85 out/);
    assert.match(text, /400 cache read/);
    assert.match(text, /Weather in Paris\?/);
    assert.match(text, /tool call\s*get_weather/);
    assert.match(text, /"city": "Paris"/);
    await screenshot(page, 'trace-genai-detail');

    // The official OpenAI instrumentation, recording the messages as a log
    // event of the call: the detail shows the conversation from it.
    const openai = await sendPython(qyl, path.join(here, '../../tests/py/openai_app.py'), {
      args: ['s-traces-openai'],
      env: { OTEL_SEMCONV_STABILITY_OPT_IN: 'gen_ai_latest_experimental', OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'EVENT_ONLY' },
    });
    await until(async () => (await api(qyl, `/api/v1/traces/${openai.trace_ids[1]}`)).body.logs?.length === 1, { what: 'the call and its log event stored' });
    await page.goto(`${qyl.url}/traces/${openai.trace_ids[1]}`);
    await page.locator('.wf-row', { hasText: 'chat gpt-4o-mini' }).click();
    await until(async () => /echo: hi/.test(await page.locator('.sd-genai').textContent()), { what: 'messages from the log event' });
    const roles = await page.locator('.sd-msg .badge').allTextContents();
    assert.deepEqual(roles, ['system', 'user', 'assistant', 'user', 'assistant']);
    assert.deepEqual(page.pageErrors, []);
    await page.context().close();
  });

  test('the flame graph draws one rect per span and zooms on click', async () => {
    const page = await newPage(browser);
    await page.goto(`${qyl.url}/traces/${ids.checkout}`);
    await page.getByRole('tab', { name: 'Flame graph' }).click();
    await until(async () => (await page.locator('.flame-svg rect').count()) === 6, { what: 'six rects' });
    assert.match(page.url(), /tab=flame/);
    await page.locator('.flame-node', { hasText: 'charge-card' }).click();
    await until(async () => /Zoomed to charge-card/.test(await page.locator('.flame-bar').textContent()), { what: 'zoomed' });
    // Zoomed to charge-card: it spans the whole width; its child stripe.post
    // (53 of its 58 ms) most of it; auth.verify (outside) is gone.
    await page.locator('.span-detail').waitFor();
    const width = async (name) => Number(await page.locator('.flame-node', { hasText: name }).locator('rect').getAttribute('width'));
    const full = Number(await page.locator('.flame-svg').getAttribute('width'));
    await until(async () => Math.abs((await width('charge-card')) - full) < 2, { what: 'charge-card full width' });
    assert.ok(Math.abs((await width('stripe.post')) / full - 53 / 58) < 0.02);
    assert.equal(await page.locator('.flame-node', { hasText: 'auth.verify' }).count(), 0);
    await page.getByRole('button', { name: 'Reset zoom' }).click();
    await until(async () => (await page.locator('.flame-svg rect').count()) === 6, { what: 'six rects again' });
    await screenshot(page, 'trace-flamegraph');
    await page.getByRole('tab', { name: /Logs/ }).click();
    await until(async () => /payment failed/.test(await page.locator('.trace-logs').textContent()), { what: 'logs tab' });
    assert.deepEqual(page.pageErrors, []);
    await page.context().close();
  });

  test('compare: picking two traces in the list opens compare; the injected span shows as extra in B', async () => {
    const page = await newPage(browser);
    await page.goto(`${qyl.url}/traces?service=worker`);
    await until(async () => (await page.locator('.traces-table .trace-link').count()) === 2, { what: 'worker traces' });
    // Pick A (older) first, then B.
    await page.locator(`tr[data-trace-id="${ids.batch_a}"] input[type=checkbox]`).check();
    await page.locator(`tr[data-trace-id="${ids.batch_b}"] input[type=checkbox]`).check();
    await page.getByRole('button', { name: /Compare/ }).click();
    await page.waitForURL(/\/compare\?/);
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('a'), ids.batch_a);
    assert.equal(url.searchParams.get('b'), ids.batch_b);
    const trs = page.locator('.cmp-table tbody tr');
    await until(async () => (await trs.count()) === 6, { what: 'six compare rows' });
    const byState = async (state) => page.locator(`.cmp-table tr[data-match="${state}"]`).evaluateAll((els) => els.map((e) => e.dataset.name));
    assert.deepEqual(await byState('extra'), ['cache.lookup']);
    assert.deepEqual(await byState('missing'), []);
    assert.equal((await byState('matched')).length, 5);
    assert.equal(await page.locator('.cmp-table tr[data-name="cache.lookup"]').getAttribute('data-depth'), '2');
    assert.match(await page.locator('.cmp-table tr[data-name="cache.lookup"]').textContent(), /extra in B/);
    // The repeated "fetch" spans are paired by order; transform is 20 ms slower.
    assert.match(await page.locator('.cmp-table tr[data-name="transform"]').textContent(), /\+20\.0ms/);
    assert.match(await page.locator('[data-testid="total-delta"]').textContent(), /\+20\.0ms/);
    assert.match(await page.locator('.cmp-summary').textContent(), /1 extra in B/);
    await screenshot(page, 'trace-compare');

    // Swapped, the same span is missing in B.
    await page.getByRole('button', { name: 'Swap A and B' }).click();
    await until(async () => (await page.locator('.cmp-table tr[data-match="missing"]').count()) === 1, { what: 'missing after swap' });

    // From a trace view: "Compare with…".
    await page.goto(`${qyl.url}/traces/${ids.batch_a}`);
    await page.fill('input[aria-label="Compare with trace id"]', ids.batch_b);
    await page.getByRole('button', { name: 'Compare', exact: true }).click();
    await page.waitForURL(new RegExp(`/compare\\?.*b=${ids.batch_b}`));
    await until(async () => (await page.locator('.cmp-table tr[data-match="extra"]').count()) === 1, { what: 'extra from trace view' });
    assert.deepEqual(page.pageErrors, []);
    await page.context().close();
  });

  test('dark mode waterfall', async () => {
    const page = await newPage(browser, { colorScheme: 'dark' });
    await page.goto(`${qyl.url}/traces/${ids.checkout}`);
    await waitRows(page, 6);
    await page.locator('.wf-row', { hasText: 'charge-card' }).click();
    await page.locator('.span-detail').waitFor();
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, 'rgb(15, 17, 21)');
    await screenshot(page, 'trace-waterfall-dark');
    assert.deepEqual(page.pageErrors, []);
    await page.context().close();
  });
});
