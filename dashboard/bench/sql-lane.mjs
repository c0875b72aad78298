// Benchmark: do heavy ad-hoc SQL queries starve the pages? Times the trace
// view's request (GET /api/v1/traces/{id}) on an idle qyl (the baseline),
// then while four console-style queries run until the deadline stops them
// (`select count(*) from range(1e11)`): with ad-hoc SQL kept to its share of
// the read connections (query.sql_slots), the lookup should stay near idle.
import { startQyl } from '../tests/harness.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const qyl = await startQyl({ env: { QYL_QUERY_TIMEOUT_MS: '10000' } });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const max = (xs) => Math.max(...xs);
try {
  const traceId = '5b8efff798038103d269b633813fc60c';
  const t = BigInt(Date.now()) * 1000000n;
  const body = { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'bench' } }] }, scopeSpans: [{ spans: [{ traceId, spanId: 'eee19b7ec3c1b174', name: 'GET /cart', kind: 2, startTimeUnixNano: String(t), endTimeUnixNano: String(t + 5000000n) }] }] }] };
  const r = await fetch(`${qyl.otlpHttp}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`export: ${r.status}`);
  const lookup = async () => {
    const s = performance.now();
    const resp = await fetch(`${qyl.url}/api/v1/traces/${traceId}`);
    await resp.arrayBuffer();
    if (!resp.ok) throw new Error(`lookup: ${resp.status}`);
    return performance.now() - s;
  };
  for (let i = 0; i < 5; i++) await lookup();
  const idle = [];
  for (let i = 0; i < ROUNDS; i++) idle.push(await lookup());

  const heavy = Array.from({ length: 4 }, () =>
    fetch(`${qyl.url}/api/v1/sql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: 'select count(*) from range(100000000000)' }) }).then((x) => x.status),
  );
  await new Promise((res) => setTimeout(res, 500));
  const queue = await (await fetch(`${qyl.url}/api/v1/sql/queue`)).json();
  const busy = [];
  for (let i = 0; i < ROUNDS; i++) {
    busy.push(await lookup());
    await new Promise((res) => setTimeout(res, 200));
  }
  const statuses = await Promise.all(heavy);
  console.log(`trace lookup while 4 heavy SQL queries run (lane: ${queue.running} running, ${queue.waiting} waiting, ${queue.slots} slots; they ended ${statuses.join(', ')}):`);
  console.log(`  idle baseline: median ${median(idle).toFixed(1)} ms, max ${max(idle).toFixed(1)} ms`);
  console.log(`  under SQL load: median ${median(busy).toFixed(1)} ms, max ${max(busy).toFixed(1)} ms -> ${(median(busy) / median(idle)).toFixed(1)}x idle`);
} finally {
  await qyl.stop();
}
