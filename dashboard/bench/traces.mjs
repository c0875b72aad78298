// Benchmark: the Traces page over a large database. Generates (once, kept
// in the temp folder) a DuckDB file of BENCH_SPANS spans (default 10 M,
// spread over 24 h) with the query benchmark's generator, serves it with
// qyl, and times navigation → first trace rows painted in headless
// Chromium. Baseline in the same run: the same API request from Node
// (`GET /api/v1/traces?since=24h`), so the ratio is what the page adds.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO, launch, newPage, startQyl, until } from '../tests/harness.mjs';

const spans = Number(process.env.BENCH_SPANS ?? 10_000_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
const db = process.env.BENCH_DB ?? path.join(tmpdir(), `qyl-bench-traces-${spans}.duckdb`);

if (!existsSync(db)) {
  console.log(`generating ${spans} spans into ${db} (cargo bench --bench query, once)…`);
  execFileSync('cargo', ['bench', '--bench', 'query'], {
    cwd: REPO,
    stdio: 'inherit',
    env: { ...process.env, BENCH_SPANS: String(spans), BENCH_KEEP_DB: db },
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const qyl = await startQyl({ data: db });
const browser = await launch();
try {
  await until(async () => (await fetch(`${qyl.url}/health/ready`)).ok, { ms: 600000, every: 500, what: 'qyl ready' });
  const api = [];
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    const r = await fetch(`${qyl.url}/api/v1/traces?since=24h&limit=50`);
    const body = await r.json();
    if (!r.ok || body.items.length === 0) throw new Error(`trace list failed: ${JSON.stringify(body).slice(0, 300)}`);
    api.push(performance.now() - t);
  }
  const page = await newPage(browser);
  const paint = [];
  for (let i = 0; i < rounds + 1; i++) {
    await page.goto('about:blank');
    await page.goto(`${qyl.url}/traces?from=24h`, { waitUntil: 'commit' });
    // The generated root spans are named `GET /api/N`: wait for the first
    // one in the list, then for the frame that paints it.
    await page.waitForFunction(() => document.querySelector('.content')?.textContent?.includes('GET /api/'), null, { timeout: 30000, polling: 'raf' });
    const ms = await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(performance.now()))));
    if (i > 0) paint.push(ms); // the first round warms caches
  }
  console.log(`traces page, ${spans.toLocaleString('en-US')} spans stored, ${rounds} rounds:`);
  console.log(`  navigation -> first trace rows painted: median ${median(paint).toFixed(0)} ms, max ${Math.max(...paint).toFixed(0)} ms (target <= 1000 ms)`);
  console.log(`  baseline, the same API request from Node: median ${median(api).toFixed(0)} ms -> page/API ${(median(paint) / median(api)).toFixed(1)}x`);
} finally {
  await browser.close();
  await qyl.stop();
}
