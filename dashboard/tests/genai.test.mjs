// Browser tests of the GenAI, Sessions and session pages on real SDK data:
// the `openai` client with OpenTelemetry's openai-v2 instrumentation talking
// to fake OpenAI servers (tests/py/genai_agent.py: a tool call, a rate-limited
// call and a long answer; ../tests/py/openai_app.py: a model without a price).
// What a person sees must match what the fake servers answered.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { REPO, api, launch, newPage, screenshot, sendPython, startQyl, until } from './harness.mjs';

const SESSION = 'trip-alice-42';
const OTHER = 'py-chat-7';
const SILENT = 'py-no-content';
const CAPTURE = { OTEL_SEMCONV_STABILITY_OPT_IN: 'gen_ai_latest_experimental', OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'SPAN_ONLY' };

let qyl;
let browser;
let agent;
let chat;
let silent;

before(async () => {
  qyl = await startQyl();
  agent = await sendPython(qyl, path.join(REPO, 'dashboard/tests/py/genai_agent.py'), { args: [SESSION], env: CAPTURE });
  chat = await sendPython(qyl, path.join(REPO, 'tests/py/openai_app.py'), { args: [OTHER], env: CAPTURE });
  // The instrumentation's default: calls without their messages.
  silent = await sendPython(qyl, path.join(REPO, 'tests/py/openai_app.py'), { args: [SILENT], env: { OTEL_SEMCONV_STABILITY_OPT_IN: 'gen_ai_latest_experimental' } });
  await until(async () => (await api(qyl, `/api/v1/sessions/${SESSION}`)).body?.session?.trace_count === 3, { what: 'the agent session' });
  await until(async () => (await api(qyl, `/api/v1/sessions/${OTHER}`)).body?.session?.trace_count === 3, { what: 'the chat session' });
  await until(async () => (await api(qyl, `/api/v1/sessions/${SILENT}`)).body?.session?.trace_count === 3, { what: 'the session without content' });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await qyl?.stop();
});

const fmt = (n) => n.toLocaleString('en-US');
const text = (loc) => loc.innerText();

test('GenAI page: the model table shows each model with the calls and tokens the server answered', async () => {
  const page = await newPage(browser);
  await page.goto(`${qyl.url}/genai`);
  const usage = [...agent.usage, ...chat.usage, ...silent.usage];
  const mini = usage.filter((u) => u.model === 'gpt-4o-mini');
  const row = page.locator('table.genai-models tr[data-model="gpt-4o-mini-2024-07-18"]');
  await row.waitFor();
  assert.equal(await text(row.locator('[data-col=calls]')), fmt(mini.length));
  assert.equal(await text(row.locator('[data-col=tokens]')), fmt(mini.reduce((a, u) => a + u.prompt + u.completion, 0)));
  assert.match(await text(row), /stop ×\d+/);
  assert.match(await text(row), /tool_calls ×1/);
  const big = usage.filter((u) => u.model === 'gpt-4o');
  const bigRow = page.locator('table.genai-models tr[data-model="gpt-4o"]');
  assert.equal(await text(bigRow.locator('[data-col=calls]')), fmt(big.length));
  assert.equal(await text(bigRow.locator('[data-col=tokens]')), fmt(big.reduce((a, u) => a + u.prompt + u.completion, 0)));
  // The failed call is counted under the model it asked for, with its error class.
  assert.match(await text(page.locator('table.genai-models tr[data-model="gpt-4o-mini"]')), /RateLimitError/);

  // Tiles: the unpriced model is counted apart, never as $0.
  const tiles = await text(page.locator('.genai-tiles'));
  assert.match(tiles, /2 calls unpriced/);
  assert.match(tiles, new RegExp(`Requests\\s+${usage.length + 1 + 1}`), tiles); // + the failed call + the tool execution
  assert.match(await text(page.locator('.genai-unpriced')), /mystery-model/);
  // Both charts drew bars, and their legends name the models.
  assert.ok((await page.locator('.stacked svg rect[fill]').count()) >= 4);
  assert.match(await text(page.locator('.stacked-legend').first()), /gpt-4o-mini-2024-07-18/);

  // Recent calls link to their trace.
  const call = page.locator('table.genai-calls tbody tr', { hasText: 'RateLimitError' });
  assert.equal(await call.count(), 1);
  assert.match(await call.locator('a').first().getAttribute('href'), new RegExp(`^/traces/${agent.trace_ids[1]}`));
  await screenshot(page, 'genai');

  // Clicking a model filters the page through the URL.
  await row.locator('button.linklike').click();
  await until(async () => new URL(page.url()).searchParams.get('model') === 'gpt-4o-mini-2024-07-18', { what: 'model in the URL' });
  await until(async () => (await page.locator('table.genai-models tbody tr').count()) === 1, { what: 'one model row' });
  assert.equal(await page.locator('input[data-search]').inputValue(), 'gpt-4o-mini-2024-07-18');
  assert.deepEqual(page.pageErrors, []);
});

test('Sessions page: lists the session with its turns, sorts through the API and links to the replay', async () => {
  const page = await newPage(browser);
  await page.goto(`${qyl.url}/sessions`);
  const row = page.locator(`tr[data-session="${SESSION}"]`);
  await row.waitFor();
  assert.equal(await text(row.locator('[data-col=turns]')), '3');
  assert.match(await text(row), /alice/);
  assert.match(await text(row), /travel-bot/);
  assert.match(await text(row), /gpt-4o/);
  assert.equal(await text(page.locator(`tr[data-session="${OTHER}"] [data-col=turns]`)), '3');
  await screenshot(page, 'sessions');

  // Sorting by errors ascending puts the failing session last of the two.
  await page.getByRole('button', { name: /^Errors/ }).click();
  await until(async () => new URL(page.url()).searchParams.get('sort') === 'errors', { what: 'sort in the URL' });
  await page.getByRole('button', { name: /^Errors/ }).click();
  await until(async () => new URL(page.url()).searchParams.get('order') === 'asc', { what: 'order in the URL' });
  await until(async () => {
    const ids = await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-session')));
    return ids.indexOf(OTHER) >= 0 && ids.indexOf(OTHER) < ids.indexOf(SESSION);
  }, { what: 'ascending order by errors' });

  // The user filter narrows the list.
  await page.locator('input[data-search]').fill('alice');
  await until(async () => (await page.locator('tbody tr').count()) === 1, { what: 'one session of alice' });
  await page.locator(`tr[data-session="${SESSION}"] a`).first().click();
  await until(async () => new URL(page.url()).pathname === `/sessions/${SESSION}`, { what: 'the session view' });
  await page.locator('section.turn').first().waitFor();
  assert.deepEqual(page.pageErrors, []);
});

test('Session view: replays the turns in order with the tool call and the failed call inline', async () => {
  const page = await newPage(browser);
  await page.goto(`${qyl.url}/sessions/${SESSION}`);
  const turns = page.locator('section.turn');
  await turns.first().waitFor();
  assert.equal(await turns.count(), 3);

  // Turn 1: the question, the tool call, then the answer, in that order.
  const first = turns.nth(0);
  const t1 = await text(first);
  const q = t1.indexOf(agent.question);
  const tool = t1.indexOf('get_weather');
  const a = t1.indexOf(agent.answer);
  assert.ok(q >= 0 && tool > q && a > tool, t1);
  assert.match(t1, /gpt-4o-mini-2024-07-18/);
  // Tool call: collapsed, then its pretty-printed arguments and result.
  const fold = first.locator('details.fold-tool');
  assert.equal(await fold.count(), 1);
  assert.equal(await fold.evaluate((d) => d.open), false);
  await fold.locator('summary').click();
  assert.match(await text(fold), /"city": "Paris"/);
  assert.match(await text(fold), /"temperature_c": 18/);
  await screenshot(page, 'session-view');
  // The system prompt is collapsed.
  const system = first.locator('details.fold-system');
  assert.equal(await system.evaluate((d) => d.open), false);
  assert.match(await text(first.locator('.turn-head a')), /chat turn/);
  assert.match(await first.locator('.turn-head a').getAttribute('href'), new RegExp(`^/traces/${agent.trace_ids[0]}`));

  // Turn 2: the user's message, then the failure in red with its links.
  const second = turns.nth(1);
  assert.match(await text(second.locator('.msg-user')), new RegExp(agent.failing));
  const err = second.locator('.msg-error');
  assert.equal(await err.count(), 1);
  assert.match(await text(err), /RateLimitError/);
  assert.match(await text(err), /Rate limit reached/);
  assert.match(await err.getByRole('link', { name: 'Open in trace' }).getAttribute('href'), new RegExp(`^/traces/${agent.trace_ids[1]}`));
  assert.match(await err.getByRole('link', { name: /Error group #\d+/ }).getAttribute('href'), /^\/errors\/\d+/);
  const bad = await err.evaluate((el) => getComputedStyle(el.querySelector('.error-type')).color);
  assert.equal(bad, 'rgb(220, 38, 38)');

  // Turn 3: the long answer is clamped until "Show more".
  const third = turns.nth(2);
  assert.match(await text(third.locator('.msg-user')), new RegExp(agent.story_ask));
  const more = third.getByRole('button', { name: /Show more/ });
  await more.waitFor();
  const clamped = await third.locator('.msg-assistant .msg-text').evaluate((el) => el.clientHeight);
  await more.click();
  const full = await third.locator('.msg-assistant .msg-text').evaluate((el) => el.clientHeight);
  assert.ok(full > clamped, `${full} > ${clamped}`);
  assert.match(await text(third.locator('.msg-assistant')), /Paragraph 12/);
  await screenshot(page, 'session-view-long-answer');

  // Totals in the header.
  assert.match(await text(page.locator('.session-tiles')), /Turns\s+3/);
  assert.deepEqual(page.pageErrors, []);
});

test('Session view in dark mode, and an unknown session', async () => {
  const page = await newPage(browser, { colorScheme: 'dark' });
  await page.goto(`${qyl.url}/sessions/${SESSION}`);
  await page.locator('section.turn .msg-error').waitFor();
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, 'rgb(15, 17, 21)');
  await screenshot(page, 'session-view-dark');

  await page.goto(`${qyl.url}/sessions/no-such-session`);
  await page.getByText('No such session').waitFor();
});

test('Session view without recorded messages lists the calls and says how to record them', async () => {
  const page = await newPage(browser);
  await page.goto(`${qyl.url}/sessions/${SILENT}`);
  await page.locator('.session-hint').waitFor();
  assert.match(await text(page.locator('.session-hint')), /OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT/);
  const turns = page.locator('section.turn');
  assert.equal(await turns.count(), 3);
  const models = silent.usage.map((u) => (u.model === 'gpt-4o-mini' ? 'gpt-4o-mini-2024-07-18' : u.model));
  for (let i = 0; i < 3; i++) {
    const call = turns.nth(i).locator('.msg-call');
    assert.equal(await call.count(), 1);
    assert.match(await text(call), new RegExp(`${models[i]}\\s+${silent.usage[i].prompt} → ${silent.usage[i].completion} tok`));
  }
  // The model without a price says so instead of showing $0.
  assert.match(await text(turns.nth(2).locator('.turn-head')), /unpriced/);
  assert.deepEqual(page.pageErrors, []);
});
