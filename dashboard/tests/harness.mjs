// Browser-test harness: runs the real qyl binary on free ports with a
// temporary database, sends telemetry with the OpenTelemetry Python SDK
// (the repository's .venv, made by `make venv`), and drives Debian's
// Chromium through playwright-core (never a downloaded browser).
//
// QYL_BIN names the binary (the Makefile passes the one `cargo test` built);
// CHROMIUM the browser (default: chromium-headless-shell, else chromium).
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
export const SCREENSHOTS = path.join(REPO, 'dashboard/screenshots');

export function qylBin() {
  if (process.env.QYL_BIN) return process.env.QYL_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? path.join(REPO, 'target');
  return path.join(target, 'debug/qyl');
}

export function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  for (const p of ['/usr/bin/chromium-headless-shell', '/usr/lib/chromium/chromium-headless-shell', '/usr/bin/chromium']) if (existsSync(p)) return p;
  throw new Error('no Chromium: install Debian chromium-headless-shell or chromium (.ci/run does)');
}

/** Starts `qyl serve` on free ports. Options: token, scripts (a folder),
 *  data (a database file to serve instead of a new one, kept on stop),
 *  args (more flags), env. Returns { url, otlpHttp, grpc, dir, logs(), stop() }. */
export async function startQyl(opts = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'qyl-dash-'));
  const scripts = opts.scripts ?? path.join(dir, 'no-scripts');
  const args = ['serve', '--http-port', '0', '--otlp-http-port', '0', '--grpc-port', '0', '--data', opts.data ?? path.join(dir, 'qyl.duckdb'), '--scripts', scripts, ...(opts.args ?? [])];
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn', ...(opts.env ?? {}) };
  if (opts.token) env.QYL_AUTH_TOKEN = opts.token;
  const child = spawn(qylBin(), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const line = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`qyl did not start in 30 s\n${stderr}`)), 30000);
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`qyl exited with ${code} before listening\n${stderr}`));
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${qylBin()}: ${e.message} (set QYL_BIN, or build with cargo test)`));
    });
  });
  const field = (k) => {
    const m = new RegExp(`${k}=(\\S+)`).exec(line);
    if (!m) throw new Error(`no ${k} in ${line}`);
    return m[1];
  };
  const http = field('http');
  return {
    url: `http://${http}`,
    otlpHttp: `http://${field('otlp_http')}`,
    grpc: `http://${field('grpc')}`,
    dir,
    logs: () => stderr,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => {
          const t = setTimeout(() => {
            child.kill('SIGKILL');
            r();
          }, 15000);
          child.on('exit', () => {
            clearTimeout(t);
            r();
          });
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function python() {
  const p = path.join(REPO, '.venv/bin/python');
  if (!existsSync(p)) throw new Error('no .venv: run `make venv` (make test does)');
  return p;
}

/** Runs a Python script (a path, or source text when it contains a newline)
 *  with the OTel SDK pointed at `qyl` (HTTP/protobuf to its OTLP port).
 *  Resolves with the script's stdout parsed as JSON when it is JSON. */
export function sendPython(qyl, script, { args = [], env = {}, protocol = 'http' } = {}) {
  let file = script;
  if (script.includes('\n')) {
    file = path.join(qyl.dir, `send-${Date.now()}-${Math.random().toString(16).slice(2)}.py`);
    writeFileSync(file, script);
  }
  const endpoint = protocol === 'grpc' ? qyl.grpc : qyl.otlpHttp;
  return new Promise((resolve, reject) => {
    execFile(
      python(),
      [file, ...args],
      {
        env: {
          ...process.env,
          OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
          OTEL_EXPORTER_OTLP_PROTOCOL: protocol === 'grpc' ? 'grpc' : 'http/protobuf',
          OTEL_METRIC_EXPORT_INTERVAL: '500',
          OTEL_BSP_SCHEDULE_DELAY: '100',
          QYL_URL: qyl.url,
          ...env,
        },
        maxBuffer: 64 << 20,
        timeout: 120000,
      },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`${file} failed: ${err.message}\n${stderr}`));
        try {
          resolve(JSON.parse(stdout));
        } catch {
          resolve(stdout);
        }
      },
    );
  });
}

/** GET/POST JSON against qyl's API (for checking what the UI did). */
export async function api(qyl, pathAndQuery, init = {}) {
  const resp = await fetch(`${qyl.url}${pathAndQuery}`, {
    ...init,
    headers: { 'content-type': 'application/json', ...(init.headers ?? {}) },
  });
  const text = await resp.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: resp.status, body, headers: resp.headers };
}

/** Polls `fn` until it returns a truthy value (or throws after `ms`). */
export async function until(fn, { ms = 10000, every = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, every));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

/** Launches headless Chromium. `colorScheme`: 'light' | 'dark'. */
export async function launch() {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
  });
}

/** A new page at 1440×900 that fails the test on uncaught page errors. */
export async function newPage(browser, { colorScheme = 'light', viewport = { width: 1440, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport, colorScheme });
  const page = await context.newPage();
  page.pageErrors = [];
  page.on('pageerror', (e) => page.pageErrors.push(e));
  page.on('console', (m) => m.type() === 'error' && page.pageErrors.push(new Error(`console: ${m.text()}`)));
  return page;
}

/** Saves a full-page screenshot as dashboard/screenshots/NAME.png (git-ignored). */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: false });
}
