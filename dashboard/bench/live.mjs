// Benchmark of the Live and Logs pages under load (not a test; prints
// figures). `node bench/live.mjs` from dashboard/, after `npx vite build`.
//
// 1. Live: opens /live in headless Chromium, then sends RATE spans/s for
//    SECONDS s over OTLP/HTTP JSON (batches every 100 ms), sampling the
//    page's JS heap (CDP Performance.getMetrics, after a forced GC) and its
//    DOM rows every 5 s; prints the baseline (page loaded, no traffic), the
//    samples, the peak/baseline ratio and the events the page received vs
//    those sent.
// 2. Logs: stores LOGS log records in bulk, opens /logs, scrolls until every
//    page is loaded (infinite scroll) and then sweeps the whole list,
//    counting long tasks (PerformanceObserver 'longtask') per phase.
//
// Environment: BENCH_RATE (2000), BENCH_SECONDS (60), BENCH_LOGS (100000),
// QYL_BIN / CARGO_TARGET_DIR as for the tests.
import { api, launch, newPage, startQyl, until } from '../tests/harness.mjs';

const RATE = Number(process.env.BENCH_RATE ?? 2000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const LOGS = Number(process.env.BENCH_LOGS ?? 100000);
const TICK_MS = 100;

const hex = (n) => Array.from({ length: n }, () => ((Math.random() * 16) | 0).toString(16)).join('');
const str = (v) => ({ stringValue: v });
const resource = (service) => ({ attributes: [{ key: 'service.name', value: str(service) }, { key: 'host.name', value: str('bench-1') }] });

function spans(n) {
  const now = BigInt(Date.now()) * 1000000n;
  const out = [];
  for (let i = 0; i < n; i++) {
    const dur = BigInt(1 + Math.floor(Math.random() * 200)) * 1000000n;
    out.push({
      traceId: hex(32),
      spanId: hex(16),
      name: ['GET /api/cart', 'POST /checkout', 'SELECT orders', 'chat gpt-4o'][i % 4],
      kind: 2,
      startTimeUnixNano: String(now - dur),
      endTimeUnixNano: String(now),
      status: { code: i % 50 === 0 ? 2 : 1 },
      attributes: [{ key: 'http.route', value: str('/api/cart') }],
    });
  }
  return { resourceSpans: [{ resource: resource('bench-live'), scopeSpans: [{ scope: { name: 'bench' }, spans: out }] }] };
}

const LEVELS = [
  [5, 'DEBUG'],
  [9, 'INFO'],
  [9, 'INFO'],
  [9, 'INFO'],
  [13, 'WARN'],
  [17, 'ERROR'],
];
function logs(n, startMs, spanMs) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const [num, text] = LEVELS[i % LEVELS.length];
    const t = BigInt(Math.floor(startMs + (spanMs * i) / n)) * 1000000n + BigInt(i % 1000);
    out.push({
      timeUnixNano: String(t),
      severityNumber: num,
      severityText: text,
      body: str(`request ${i} handled for tenant t${i % 97} in ${i % 400} ms (path /api/items/${i % 1000})`),
      attributes: [
        { key: 'tenant', value: str(`t${i % 97}`) },
        { key: 'http.route', value: str('/api/items/{id}') },
      ],
      ...(i % 3 === 0 ? { traceId: hex(32), spanId: hex(16) } : {}),
    });
  }
  return { resourceLogs: [{ resource: resource(`bench-logs-${(startMs / 1000) % 3 | 0}`), scopeLogs: [{ scope: { name: 'bench' }, logRecords: out }] }] };
}

async function post(qyl, path, body) {
  const r = await fetch(`${qyl.otlpHttp}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
}

const mb = (b) => `${(b / 1048576).toFixed(1)} MB`;

async function heap(cdp) {
  await cdp.send('HeapProfiler.collectGarbage');
  const { metrics } = await cdp.send('Performance.getMetrics');
  const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
  return { used: m.JSHeapUsedSize, nodes: m.Nodes };
}

async function benchLive(qyl, browser) {
  const page = await newPage(browser);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  await page.goto(`${qyl.url}/live`);
  await until(async () => (await page.locator('.live-status').getAttribute('data-status')) === 'open', { what: 'the stream' });
  await page.waitForTimeout(1000);
  const base = await heap(cdp);
  const rows = () => page.locator('.live-row').count();
  console.log(`\n== Live: ${RATE} spans/s for ${SECONDS} s (batches of ${(RATE * TICK_MS) / 1000} every ${TICK_MS} ms)`);
  console.log(`baseline  heap ${mb(base.used)}  DOM nodes ${base.nodes}  rows ${await rows()}`);

  let sent = 0;
  let sendErrors = 0;
  const perTick = Math.round((RATE * TICK_MS) / 1000);
  const started = Date.now();
  let sending = true;
  const sender = (async () => {
    let next = Date.now();
    while (Date.now() - started < SECONDS * 1000) {
      post(qyl, '/v1/traces', spans(perTick)).then(
        () => (sent += perTick),
        () => sendErrors++,
      );
      next += TICK_MS;
      await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
    }
    sending = false;
  })();
  const samples = [];
  while (sending) {
    await new Promise((r) => setTimeout(r, 5000));
    const h = await heap(cdp);
    const received = Number(await page.locator('.live-status').getAttribute('data-received'));
    const s = { t: Math.round((Date.now() - started) / 1000), used: h.used, nodes: h.nodes, rows: await rows(), received, sent };
    samples.push(s);
    console.log(`t=${String(s.t).padStart(3)}s heap ${mb(s.used)}  DOM nodes ${s.nodes}  rows in DOM ${s.rows}  received ${s.received} / sent ${s.sent}`);
  }
  await sender;
  await new Promise((r) => setTimeout(r, 3000));
  const received = Number(await page.locator('.live-status').getAttribute('data-received'));
  const shown = await page.locator('.live-foot').innerText();
  const notices = await page.locator('.live-notice .grow').allInnerTexts();
  const peak = Math.max(...samples.map((s) => s.used));
  const last = samples.at(-1);
  console.log(`peak heap ${mb(peak)} = ${(peak / base.used).toFixed(2)}× baseline; last ${mb(last.used)} = ${(last.used / base.used).toFixed(2)}×`);
  console.log(`events: sent ${sent} (send errors ${sendErrors}), page received ${received} (${((received / Math.max(1, sent)) * 100).toFixed(1)}%)`);
  console.log(`list: ${shown.split('·')[0].trim()}; notices: ${notices.length ? notices.join(' | ') : 'none'}`);
  if (page.pageErrors.length) console.log(`page errors: ${page.pageErrors.map(String).join('; ')}`);
  await page.close();
}

async function benchLogs(qyl, browser) {
  console.log(`\n== Logs: ${LOGS} records stored, list loaded by infinite scroll, then swept`);
  const t0 = Date.now();
  const batch = 5000;
  const spanMs = 50 * 60e3;
  const from = Date.now() - spanMs;
  for (let i = 0; i < LOGS; i += batch) {
    const n = Math.min(batch, LOGS - i);
    await post(qyl, '/v1/logs', logs(n, from + (spanMs * i) / LOGS, (spanMs * n) / LOGS));
  }
  await until(
    async () => {
      const r = await api(qyl, '/api/v1/sql', { method: 'POST', body: JSON.stringify({ sql: 'SELECT count(*) AS n FROM logs' }) });
      return Number(r.body?.rows?.[0]?.[0] ?? r.body?.rows?.[0]?.n ?? 0) >= LOGS;
    },
    { ms: 120000, every: 500, what: 'the logs to be stored' },
  );
  console.log(`stored ${LOGS} logs in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const page = await newPage(browser);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  await page.addInitScript(() => {
    window.__longtasks = [];
    new PerformanceObserver((list) => list.getEntries().forEach((e) => window.__longtasks.push(e.duration))).observe({ type: 'longtask', buffered: true });
  });
  const opened = Date.now();
  await page.goto(`${qyl.url}/logs`);
  await page.locator('.logs-line').first().waitFor({ timeout: 60000 });
  console.log(`first rows visible after ${Date.now() - opened} ms`);
  const takeLongTasks = () => page.evaluate(() => window.__longtasks.splice(0));
  const report = (phase, tasks, ms) =>
    console.log(`${phase}: ${tasks.length} long tasks (max ${tasks.length ? Math.round(Math.max(...tasks)) : 0} ms, total ${Math.round(tasks.reduce((a, b) => a + b, 0))} ms) over ${(ms / 1000).toFixed(1)} s`);
  report('page load', await takeLongTasks(), Date.now() - opened);

  // Load every page by jumping to the end of the list until it stops growing.
  const loaded = () => page.locator('.page-subtitle').innerText();
  const loadStart = Date.now();
  for (;;) {
    await page.locator('.logs-scroll').evaluate((el) => el.scrollTo({ top: el.scrollHeight }));
    await page.waitForTimeout(60);
    const foot = await page.locator('.logs-foot').innerText();
    if (/All [\d,]+ logs/.test(foot) || Date.now() - loadStart > 240000) break;
  }
  const loadMs = Date.now() - loadStart;
  console.log(`loaded by scrolling: ${(await loaded()).trim()} in ${(loadMs / 1000).toFixed(1)} s`);
  report('loading while scrolling', await takeLongTasks(), loadMs);
  const h = await heap(cdp);
  console.log(`heap with the list loaded ${mb(h.used)}, DOM nodes ${h.nodes}, rows in DOM ${await page.locator('.logs-line').count()}`);

  // Sweep: wheel-like steps from the top to the bottom, then random jumps.
  await page.locator('.logs-scroll').evaluate((el) => el.scrollTo({ top: 0 }));
  await page.waitForTimeout(300);
  await takeLongTasks();
  const sweepStart = Date.now();
  const frames = await page.locator('.logs-scroll').evaluate(
    (el) =>
      new Promise((resolve) => {
        let n = 0;
        let worst = 0;
        let prev = performance.now();
        const step = () => {
          const now = performance.now();
          worst = Math.max(worst, now - prev);
          prev = now;
          n++;
          if (n < 600) el.scrollTop += 400;
          else if (n < 800) el.scrollTop = Math.random() * el.scrollHeight;
          else return resolve({ frames: n, worstFrameMs: Math.round(worst) });
          requestAnimationFrame(step);
        };
        requestAnimationFrame(step);
      }),
  );
  const sweepMs = Date.now() - sweepStart;
  report('scroll sweep (600 steps of 400 px, 200 random jumps)', await takeLongTasks(), sweepMs);
  console.log(`sweep frames ${frames.frames} in ${(sweepMs / 1000).toFixed(1)} s (${Math.round(frames.frames / (sweepMs / 1000))} fps), worst frame ${frames.worstFrameMs} ms`);
  if (page.pageErrors.length) console.log(`page errors: ${page.pageErrors.map(String).join('; ')}`);
  await page.close();
}

const qyl = await startQyl();
const browser = await launch();
try {
  if (!process.env.BENCH_SKIP_LIVE) await benchLive(qyl, browser);
  if (!process.env.BENCH_SKIP_LOGS) await benchLogs(qyl, browser);
} finally {
  await browser.close();
  await qyl.stop();
}
