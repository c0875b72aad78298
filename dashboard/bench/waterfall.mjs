// Benchmark of the trace waterfall (not a test): posts one 10,000-span
// trace and one 100-span trace (OTLP JSON, a realistic tree: depth up to 8,
// several services), opens each at /traces/{id} in headless Chromium, and
// prints the time from navigation start to the first waterfall rows painted
// (with the API fetch and the page's own work apart), then scrolls through
// the whole waterfall and prints the long tasks (> 50 ms) seen meanwhile.
// Run: node bench/waterfall.mjs  (SPANS=N to change the big trace's size)
import { cpus, loadavg } from 'node:os';
import { launch, newPage, startQyl, until } from '../tests/harness.mjs';

const BIG = Number(process.env.SPANS ?? 10000);
const SMALL = 100;
const RUNS = Number(process.env.RUNS ?? 3);

/** A deterministic pseudo-random source, so every run sends the same tree. */
function prng(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 2246822507) + 0x9e3779b9) >>> 0) / 4294967296);
}

const hex = (rand, n) => Array.from({ length: n }, () => Math.floor(rand() * 16).toString(16)).join('');

/** One trace of `count` spans as an OTLP/JSON export request. */
function makeTrace(count, seed) {
  const rand = prng(seed);
  const traceId = hex(rand, 32);
  const services = ['frontend', 'cart', 'checkout', 'payments', 'inventory', 'search', 'auth', 'db-proxy'];
  const ops = ['GET /api/cart', 'POST /api/checkout', 'SELECT orders', 'redis GET', 'grpc Inventory/Reserve', 'render', 'auth.verify', 'kafka publish', 'http.client', 'compute.price'];
  const t0 = BigInt(Date.now() - 60000) * 1000000n;
  const spans = [{ id: hex(rand, 16), parent: null, depth: 0, start: 0, dur: 8000, service: 'frontend', name: 'GET /checkout' }];
  // Breadth-first: each span gets a few children inside its own window,
  // some in sequence and some in parallel, until the count is reached.
  for (let q = 0; spans.length < count && q < spans.length; q++) {
    const p = spans[q];
    if (p.depth >= 7) continue;
    const kids = 1 + Math.floor(rand() * (p.depth < 2 ? 12 : 5));
    let cursor = p.start + p.dur * 0.02;
    for (let k = 0; k < kids && spans.length < count; k++) {
      const parallel = rand() < 0.3;
      const start = parallel ? p.start + rand() * p.dur * 0.5 : cursor;
      const dur = Math.max(0.01, Math.min(p.start + p.dur - start, p.dur * (0.05 + rand() * 0.4)));
      if (!parallel) cursor = start + dur;
      spans.push({
        id: hex(rand, 16),
        parent: p.id,
        depth: p.depth + 1,
        start,
        dur,
        service: rand() < 0.7 ? p.service : services[Math.floor(rand() * services.length)],
        name: ops[Math.floor(rand() * ops.length)],
        error: rand() < 0.01,
      });
    }
  }
  const ns = (ms) => String(t0 + BigInt(Math.round(ms * 1e6)));
  const byService = new Map();
  for (const s of spans) {
    if (!byService.has(s.service)) byService.set(s.service, []);
    byService.get(s.service).push({
      traceId,
      spanId: s.id,
      parentSpanId: s.parent ?? undefined,
      name: s.name,
      kind: s.depth === 0 ? 2 : 3,
      startTimeUnixNano: ns(s.start),
      endTimeUnixNano: ns(s.start + s.dur),
      attributes: [
        { key: 'http.method', value: { stringValue: 'GET' } },
        { key: 'net.peer.name', value: { stringValue: `${s.service}.svc.cluster.local` } },
        { key: 'retry.count', value: { intValue: String(Math.floor(rand() * 3)) } },
      ],
      status: s.error ? { code: 2, message: 'boom' } : { code: 0 },
    });
  }
  const body = {
    resourceSpans: [...byService].map(([service, list]) => ({
      resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }, { key: 'service.version', value: { stringValue: '2.3.1' } }] },
      scopeSpans: [{ scope: { name: 'bench' }, spans: list }],
    })),
  };
  return { traceId, body };
}

// In the page: the moment rows first exist, and the paint after it.
const PROBE = () => {
  window.__bench = { longTasks: [] };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__bench.longTasks.push({ start: e.startTime, duration: e.duration });
  }).observe({ type: 'longtask', buffered: true });
  const mo = new MutationObserver(() => {
    if (window.__bench.rowsAt || !document.querySelector('.wf-row')) return;
    window.__bench.rowsAt = performance.now();
    requestAnimationFrame(() => setTimeout(() => (window.__bench.paintedAt = performance.now()), 0));
    mo.disconnect();
  });
  mo.observe(document, { childList: true, subtree: true });
};

async function measure(browser, traceId) {
  const page = await newPage(browser);
  await page.addInitScript(PROBE);
  await page.goto(`${qyl.url}/traces/${traceId}`);
  await page.waitForFunction(() => window.__bench?.paintedAt, null, { timeout: 60000 });
  const first = await page.evaluate((id) => {
    const api = performance.getEntriesByType('resource').find((e) => e.name.includes(`/api/v1/traces/${id}`));
    return { painted: window.__bench.paintedAt, rows: window.__bench.rowsAt, apiStart: api?.startTime ?? 0, apiEnd: api?.responseEnd ?? 0, bytes: api?.encodedBodySize ?? 0 };
  }, traceId);
  // Main-thread CPU time (not wall time, which a busy machine inflates).
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable', { timeDomain: 'threadTicks' });
  const cpu = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((x) => [x.name, x.value]));
  const before = await cpu();
  // Scroll the whole waterfall, one screen per frame, and count long tasks.
  const scroll = await page.evaluate(async () => {
    const el = document.querySelector('.wf-scroll');
    const from = performance.now();
    let frames = 0;
    let blank = 0;
    while (el.scrollTop + el.clientHeight < el.scrollHeight - 1) {
      el.scrollTop += el.clientHeight * 0.9;
      await new Promise((r) => requestAnimationFrame(() => r()));
      await new Promise((r) => setTimeout(r, 0));
      frames++;
      // Rows must cover what is in view after each step.
      const top = el.getBoundingClientRect().top + 4;
      const hit = document.elementFromPoint(el.getBoundingClientRect().left + 40, top + el.clientHeight / 2);
      if (!hit?.closest('.wf-row')) blank++;
    }
    await new Promise((r) => setTimeout(r, 100));
    const tasks = window.__bench.longTasks.filter((t) => t.start >= from);
    return { frames, blank, ms: performance.now() - from, longTasks: tasks.length, maxLongTask: Math.max(0, ...tasks.map((t) => t.duration)), rowsInDom: document.querySelectorAll('.wf-row').length };
  });
  const afterScroll = await cpu();
  const per = (k) => ((afterScroll[k] - before[k]) * 1000) / Math.max(scroll.frames, 1);
  await page.context().close();
  return { ...first, ...scroll, cpuPerScreen: per('TaskDuration'), scriptPerScreen: per('ScriptDuration'), layoutPerScreen: per('LayoutDuration') + per('RecalcStyleDuration') };
}

const qyl = await startQyl();
let browser;
try {
  const big = makeTrace(BIG, 7);
  const small = makeTrace(SMALL, 11);
  for (const t of [big, small]) {
    const r = await fetch(`${qyl.otlpHttp}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(t.body) });
    if (!r.ok) throw new Error(`export failed: ${r.status} ${await r.text()}`);
  }
  await until(async () => (await (await fetch(`${qyl.url}/api/v1/traces/${big.traceId}`)).json()).summary?.span_count === BIG, { ms: 60000, what: 'big trace stored' });
  browser = await launch();
  const runs = { big: [], small: [] };
  // One warm-up of each (browser caches, qyl's first query), then RUNS measured.
  await measure(browser, small.traceId);
  await measure(browser, big.traceId);
  for (let i = 0; i < RUNS; i++) {
    runs.small.push(await measure(browser, small.traceId));
    runs.big.push(await measure(browser, big.traceId));
  }
  const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const row = (label, list) => {
    const painted = median(list.map((r) => r.painted));
    const api = median(list.map((r) => r.apiEnd - r.apiStart));
    const afterApi = median(list.map((r) => r.painted - r.apiEnd));
    const lt = Math.max(...list.map((r) => r.longTasks));
    const ltMax = Math.max(...list.map((r) => r.maxLongTask));
    console.log(
      `${label.padEnd(14)} first rows painted ${painted.toFixed(0).padStart(5)} ms after navigation start ` +
        `(API fetch ${api.toFixed(0)} ms, ${(list[0].bytes / 1e6).toFixed(2)} MB; page work after the answer ${afterApi.toFixed(0)} ms) · ` +
        `scroll: ${list[0].frames} screens in ${median(list.map((r) => r.ms)).toFixed(0)} ms, long tasks ${lt} (max ${ltMax.toFixed(0)} ms), ` +
        `main-thread CPU per screen ${median(list.map((r) => r.cpuPerScreen)).toFixed(1)} ms (script ${median(list.map((r) => r.scriptPerScreen)).toFixed(1)}, style+layout ${median(list.map((r) => r.layoutPerScreen)).toFixed(1)}), ` +
        `blank screens ${Math.max(...list.map((r) => r.blank))}, rows in DOM ${list[0].rowsInDom}`,
    );
    return { painted, afterApi };
  };
  console.log(`waterfall benchmark: median of ${RUNS} runs, headless Chromium, 1440×900, ${cpus().length} CPUs, load average ${loadavg()[0].toFixed(1)}`);
  const b = row(`${BIG} spans`, runs.big);
  const s = row(`${SMALL} spans`, runs.small);
  console.log(`ratio ${BIG}/${SMALL} spans: first paint ×${(b.painted / s.painted).toFixed(2)}, page work after the answer ×${(b.afterApi / Math.max(s.afterApi, 1)).toFixed(2)}`);
} finally {
  await browser?.close();
  await qyl.stop();
}
