// Browser test of the Deploys card on an error group's page: a service
// sends OTLP with service.version 1.4.0, CI records the 1.5.0 deploy with
// its commit and URL, 1.5.0 fails more, slower and with rate limits; the
// page of a group that started with 1.5.0 says so and shows what changed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { api, launch, newPage, screenshot, startQyl, until } from './harness.mjs';

const MIN = 60_000_000_000n;
const s = (key, value) => ({ key, value: { stringValue: value } });
const n = (key, value) => ({ key, value: { intValue: String(value) } });

/** An OTLP JSON span: a request (root SERVER span) unless `parent` is set. */
function span(id, start, ms, { error, exception, parent, attrs = [], name = 'POST /checkout', kind = 2 } = {}) {
  const hex = (v, len) => v.toString(16).padStart(len, '0');
  const sp = {
    traceId: hex(parent ?? id, 32),
    spanId: hex(id, 16),
    name,
    kind,
    startTimeUnixNano: String(start),
    endTimeUnixNano: String(start + BigInt(ms) * 1_000_000n),
    attributes: attrs,
    status: { code: error ? 2 : 0 },
  };
  if (parent) sp.parentSpanId = hex(parent, 16);
  if (exception) {
    const [type, message, line] = exception;
    sp.events = [
      {
        name: 'exception',
        timeUnixNano: String(start + 1000n),
        attributes: [s('exception.type', type), s('exception.message', message), s('exception.stacktrace', `Traceback (most recent call last):\n  File "/srv/shop/coupons.py", line ${line}, in apply\n    return step()\n${type}: ${message}\n`)],
      },
    ];
  }
  return sp;
}

async function send(qyl, version, spans) {
  const body = {
    resourceSpans: [
      {
        resource: { attributes: [s('service.name', 'shop'), s('service.version', version), s('deployment.environment.name', 'prod')] },
        scopeSpans: [{ scope: { name: 't' }, spans }],
      },
    ],
  };
  const r = await api(qyl, '/v1/traces', { method: 'POST', body: JSON.stringify(body) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

let configDir;
let qyl;
let browser;
let page;
let groupId;

before(async () => {
  configDir = mkdtempSync(path.join(tmpdir(), 'qyl-deploys-config-'));
  writeFileSync(path.join(configDir, 'qyl.toml'), '[[errors.slo]]\nname = "shop-availability"\nservice = "shop"\nobjective = 99.0\n');
  qyl = await startQyl({ args: ['--config', path.join(configDir, 'qyl.toml')] });
  browser = await launch();
  let t0 = BigInt(Date.now()) * 1_000_000n - 180n * MIN;
  t0 -= t0 % MIN;
  // 1.4.0: twenty requests of 100 ms, one of them failing.
  const v140 = [];
  for (let k = 0n; k < 20n; k++) v140.push(span(100n + k, t0 + k * MIN + 1_000_000_000n, 100));
  v140.push(span(150n, t0 + 5n * MIN, 100, { error: true, exception: ['KeyError', "'zone-9'", 12] }));
  await send(qyl, '1.4.0', v140);
  // CI records 1.5.0 at t0 + 50 min with its commit.
  const deployed = t0 + 50n * MIN;
  const r = await api(qyl, '/api/v1/releases', {
    method: 'POST',
    body: JSON.stringify({ service: 'shop', version: '1.5.0', environment: 'prod', commit: '9f1c2e7b5d', url: 'https://ci.example/runs/42', deployed_at: Number(deployed / 1_000_000n) }),
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  // 1.5.0: twenty requests of 300 ms, every other one a new ValueError,
  // and two rate-limited chat calls.
  const v150 = [];
  for (let k = 0n; k < 20n; k++) {
    const at = t0 + 51n * MIN + k * MIN;
    v150.push(k % 2n === 0n ? span(200n + k, at, 300, { error: true, exception: ['ValueError', `bad coupon c-${k}`, 40] }) : span(200n + k, at, 300));
  }
  for (let k = 0n; k < 2n; k++) {
    v150.push(
      span(260n + k, t0 + 55n * MIN + k * 1_000_000_000n, 50, {
        parent: 201n,
        kind: 3,
        name: 'chat gpt-4o',
        error: true,
        attrs: [s('gen_ai.provider.name', 'openai'), s('gen_ai.operation.name', 'chat'), s('gen_ai.request.model', 'gpt-4o'), s('error.type', 'openai.RateLimitError'), n('http.response.status_code', 429)],
      }),
    );
  }
  await send(qyl, '1.5.0', v150);
  const value = await until(
    async () => {
      const all = await api(qyl, '/api/v1/errors?service=shop');
      return all.body.items?.find((g) => g.error_type === 'ValueError');
    },
    { what: 'the ValueError group' },
  );
  groupId = value.id;
  page = await newPage(browser);
});

after(async () => {
  await browser?.close();
  await qyl?.stop();
  if (configDir) rmSync(configDir, { recursive: true, force: true });
});

test("a group's page names the deploy it started with and what changed with it", async () => {
  await page.goto(`${qyl.url}/errors/${groupId}`);
  const card = page.locator('.eg-deploys-card');
  await card.locator('.eg-dep-detail').waitFor();

  // Started with 1.5.0, its commit linking to the CI run.
  const marks = await card.locator('.eg-dep-marks').innerText();
  assert.match(marks, /Started with\s+1\.5\.0\s+9f1c2e7/);
  assert.equal(await card.locator('.eg-dep-marks a.eg-dep-commit').getAttribute('href'), 'https://ci.example/runs/42');

  // The service's deploys, newest first: 1.5.0 (marked) brought two new
  // groups (the ValueError and the rate limits), 1.4.0 one.
  // The list and the detail are two requests; either may answer first.
  const rows = card.locator('.eg-deploys li');
  await rows.nth(1).waitFor();
  assert.equal(await rows.count(), 2);
  const r150 = card.locator('li[data-version="1.5.0"]');
  assert.match(await r150.getAttribute('class'), /eg-deploy-marked/);
  assert.match(await r150.innerText(), /\+2 new/);
  // 1 of 21 spans failed before; 12 of 22 after.
  assert.match(await r150.innerText(), /4\.8% → 54\.5%/);
  assert.match(await card.locator('li[data-version="1.4.0"]').innerText(), /\+1 new/);

  // What changed with 1.5.0: error rate, latency, GenAI classes, SLO burn.
  const detail = await card.locator('.eg-dep-detail').innerText();
  assert.match(detail, /Latency p95\s+100ms → 300ms/);
  assert.match(detail, /rate_limited\s+0 → 2/);
  // Entry spans only: 1 bad of 21 before (burn 4.8), 10 of 20 since (50).
  assert.match(detail, /shop-availability\s+4\.8× → 50\.0×/);
  assert.equal(await card.locator('.eg-dep-detail .tone-bad').count(), 4, 'all four got worse');

  await card.scrollIntoViewIfNeeded();
  await screenshot(page, 'deploys');
  assert.deepEqual(page.pageErrors, []);
});
