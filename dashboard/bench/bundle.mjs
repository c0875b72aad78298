// Benchmark: what a first visit to the dashboard downloads. Prints the JS
// and CSS of dist/ gzipped (as qyl serves them) against the 150 KB budget,
// then loads `/` from a real qyl in headless Chromium and sums the bytes
// that went over the wire, so the figure is what a user's browser fetched.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { launch, newPage, startQyl } from '../tests/harness.mjs';

const BUDGET_KB = 150;
const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist');
const files = [];
const walk = (d) => {
  for (const f of readdirSync(d)) {
    const p = path.join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else files.push(p);
  }
};
walk(dist);

let raw = 0;
let gz = 0;
console.log('dashboard bundle (dist/):');
for (const f of files.filter((f) => /\.(js|css)$/.test(f)).sort()) {
  const data = readFileSync(f);
  const z = gzipSync(data, { level: 9 }).length;
  raw += data.length;
  gz += z;
  console.log(`  ${path.relative(dist, f).padEnd(36)} ${(data.length / 1024).toFixed(1).padStart(7)} KB  gzip ${(z / 1024).toFixed(1).padStart(6)} KB`);
}
console.log(`  every page's JS + CSS together: ${(raw / 1024).toFixed(1)} KB, gzipped ${(gz / 1024).toFixed(1)} KB; budget ${BUDGET_KB} KB -> ${(gz / 1024 / BUDGET_KB).toFixed(2)}x of budget`);

const qyl = await startQyl();
const browser = await launch();
try {
  const page = await newPage(browser);
  const client = await page.context().newCDPSession(page);
  await client.send('Network.enable');
  let wire = 0;
  const byType = {};
  client.on('Network.loadingFinished', (e) => {
    wire += e.encodedDataLength;
  });
  client.on('Network.responseReceived', (e) => {
    byType[e.type] = (byType[e.type] ?? 0) + 1;
  });
  const t0 = Date.now();
  await page.goto(`${qyl.url}/`, { waitUntil: 'networkidle' });
  const loadMs = Date.now() - t0;
  const nav = await page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    return { dcl: n?.domContentLoadedEventEnd ?? 0, fcp: fcp?.startTime ?? 0 };
  });
  console.log(`first load of / from qyl: ${(wire / 1024).toFixed(1)} KB over the wire (${Object.entries(byType).map(([k, v]) => `${v} ${k}`).join(', ')}), first contentful paint ${nav.fcp.toFixed(0)} ms, DOMContentLoaded ${nav.dcl.toFixed(0)} ms, network idle after ${loadMs} ms`);
} finally {
  await browser.close();
  await qyl.stop();
}
