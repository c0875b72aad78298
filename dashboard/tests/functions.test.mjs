// Browser tests of the Functions page: qyl runs a Lua function from a
// temporary scripts folder; the page lists it with its trigger, shows its
// invocation (result and logs) once a matching span arrives, and shows a
// broken save's error (file:line and message) within 2 s without a reload,
// while the previous version keeps running.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { api, launch, newPage, screenshot, sendPython, startQyl, until } from './harness.mjs';

const GOOD = `-- Notes each failed payment: what failed and how long it took.
return qyl.fn {
  name = "payment-failures",
  description = "Summarise failed payments",
  trigger = { on = "span", where = { status = "ERROR", name = "POST /pay" } },
  handler = function(span, runtime)
    runtime.log.info("payment failed: " .. span.name)
    return { failed = span.name, ms = math.floor(span.duration_ms) }
  end,
}
`;

// The handler's table is never closed: Luau notices at `end`, line 8.
const BROKEN = `-- Notes each failed payment: what failed and how long it took.
return qyl.fn {
  name = "payment-failures",
  description = "Summarise failed payments",
  trigger = { on = "span", where = { status = "ERROR", name = "POST /pay" } },
  handler = function(span, runtime)
    return { failed = span.name
  end,
}
`;

/** One failed payment span, and one that matches nothing. */
const SEND_PAYMENT = `
import json
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

provider = TracerProvider(resource=Resource.create({"service.name": "payments"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("payments")
with tracer.start_as_current_span("GET /health", kind=SpanKind.SERVER):
    pass
with tracer.start_as_current_span("POST /pay", kind=SpanKind.SERVER) as span:
    span.set_status(Status(StatusCode.ERROR, "card declined"))
    trace_id = format(span.get_span_context().trace_id, "032x")
provider.force_flush()
provider.shutdown()
print(json.dumps({"trace_id": trace_id}))
`;

let scripts;
let qyl;
let browser;
let page;
const FILE = 'payments.lua';

before(async () => {
  scripts = mkdtempSync(path.join(tmpdir(), 'qyl-fn-scripts-'));
  writeFileSync(path.join(scripts, FILE), GOOD);
  qyl = await startQyl({ scripts });
  browser = await launch();
  page = await newPage(browser);
});

after(async () => {
  await browser?.close();
  await qyl?.stop();
  if (scripts) rmSync(scripts, { recursive: true, force: true });
});

const row = () => page.locator('tr[data-function="payment-failures"]');

test('the page lists the function with its trigger, state and file', async () => {
  await page.goto(`${qyl.url}/functions`);
  await row().waitFor();
  assert.equal(await page.locator('tr[data-function]').count(), 1);
  const text = await row().innerText();
  assert.match(text, /payment-failures/);
  assert.match(text, /Summarise failed payments/);
  assert.match(await row().locator('.fn-on').innerText(), /^span$/);
  assert.match(await row().locator('.fn-trigger').innerText(), /status = "ERROR"/);
  assert.match(await row().locator('.fn-trigger').innerText(), /name = "POST \/pay"/);
  assert.match(await row().locator('.badge').innerText(), /^active$/);
  assert.match(await row().locator('.fn-file').innerText(), /^payments\.lua:2$/);
  assert.match(await page.locator('.page-subtitle').innerText(), new RegExp(scripts.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  assert.equal(await page.locator('.fn-load-errors').count(), 0);
  assert.match(await page.locator('.fn-diags').innerText(), /no problems/);
  assert.deepEqual(page.pageErrors, []);
});

test('a matching span triggers it: the invocation appears with its result and logs', async () => {
  await page.goto(`${qyl.url}/functions?fn=payment-failures`);
  await page.locator('.fn-invocations').waitFor();
  await page.locator('.fn-inv-empty', { hasText: 'Not run yet' }).waitFor();

  const sent = await sendPython(qyl, SEND_PAYMENT);
  // Polled every second: no reload needed.
  const inv = page.locator('tr.fn-inv');
  await inv.first().waitFor({ timeout: 10000 });
  assert.equal(await inv.count(), 1, 'the health check span matched nothing');
  assert.match(await inv.locator('.badge').innerText(), /completed/);
  const result = JSON.parse(await inv.locator('.fn-result').innerText());
  assert.equal(result.failed, 'POST /pay');
  assert.match(await inv.locator('a').getAttribute('href'), new RegExp(`^/traces/${sent.trace_id}`));
  await until(async () => /^1$/.test(await row().locator('td.num').first().innerText()), { what: 'the run counted' });

  await inv.getByRole('button', { name: 'Details' }).click();
  await page.locator('.fn-logs li', { hasText: 'payment failed: POST /pay' }).waitFor();
  assert.match(await page.locator('.fn-inv-body .fn-pre').innerText(), /"failed": "POST \/pay"/);
  await screenshot(page, 'functions');
  assert.deepEqual(page.pageErrors, []);
});

test('a broken save shows its file:line error within 2 s, without a reload, and the old version keeps running', async () => {
  await page.goto(`${qyl.url}/functions?fn=payment-failures`);
  await page.locator('tr.fn-inv').first().waitFor();
  // Anything reloading the page would lose this.
  await page.evaluate(() => (window.__sameDocument = true));

  const saved = Date.now();
  writeFileSync(path.join(scripts, FILE), BROKEN);
  const banner = page.locator('.fn-load-errors');
  await banner.waitFor({ timeout: 2000 });
  const shownAfter = Date.now() - saved;
  assert.ok(shownAfter <= 2000, `shown after ${shownAfter} ms`);
  assert.match(await banner.locator('.fn-loc').innerText(), /^payments\.lua:8$/);
  assert.match(await banner.locator('.fn-load-msg').innerText(), /Expected '\}'/);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was not reloaded');

  // Still listed and running: its previous version.
  assert.match(await row().locator('.badge').innerText(), /load error · running previous/);
  assert.match(await page.locator('.fn-inline-error').first().innerText(), /payments\.lua:8: Expected '\}'/);
  const listed = (await api(qyl, '/api/v1/functions')).body;
  assert.equal(listed.functions[0].state, 'error');
  assert.equal(listed.load_errors.length, 1);
  // qyl check agrees, with the column.
  await page.locator('.fn-diag-error', { hasText: 'payments.lua:8:' }).waitFor({ timeout: 5000 });

  await sendPython(qyl, SEND_PAYMENT);
  await until(async () => (await page.locator('tr.fn-inv').count()) === 2, { what: 'a second invocation by the old version', ms: 10000 });
  assert.match(await page.locator('tr.fn-inv').first().locator('.badge').innerText(), /completed/);
  await screenshot(page, 'functions-broken');

  // Fixing the file clears the error, still without a reload.
  writeFileSync(path.join(scripts, FILE), GOOD);
  await until(async () => (await banner.count()) === 0, { what: 'the error gone', ms: 3000 });
  assert.match(await row().locator('.badge').innerText(), /^active$/);
  assert.equal(await page.evaluate(() => window.__sameDocument), true);
  assert.deepEqual(page.pageErrors, []);
});

test('the invocations filter by status', async () => {
  await page.goto(`${qyl.url}/functions?fn=payment-failures`);
  await page.locator('tr.fn-inv').nth(1).waitFor();
  await page.getByLabel('Filter invocations by status').selectOption('failed');
  await page.locator('.fn-inv-empty', { hasText: 'No failed invocations' }).waitFor();
  assert.match(page.url(), /status=failed/);
  await page.getByLabel('Filter invocations by status').selectOption('completed');
  await until(async () => (await page.locator('tr.fn-inv').count()) === 2, { what: 'two completed' });
});

test('the page reads well in dark mode', async () => {
  const dark = await newPage(browser, { colorScheme: 'dark' });
  await dark.goto(`${qyl.url}/functions?fn=payment-failures`);
  await dark.locator('tr.fn-inv').first().waitFor();
  await screenshot(dark, 'functions-dark');
  assert.deepEqual(dark.pageErrors, []);
  await dark.context().close();
});
