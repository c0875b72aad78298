// The Functions page: the Lua scripts qyl runs on telemetry, like Vercel's
// or Cloudflare's functions views: what each triggers on, whether it is
// running, paused by its circuit breaker or stuck on a broken save, what
// `qyl check` says, and each invocation with its result and logs. A broken
// save must show up here within a second or two while the person edits the
// script, so the list is polled every second while the page is visible.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { Badge, PageHeader } from '../components/page';
import { Empty, ErrorBox, Loading } from '../components/states';
import { Time } from '../components/time';
import { apiGet } from '../lib/api';
import { fmtMs, fmtNum, plural, shortId } from '../lib/format';
import { useParams, useSetParams, withRange } from '../lib/params';
import { refreshTick, toMs } from '../lib/time';
import type { LogRow } from '../lib/types';
import './functions.css';

interface FunctionInfo {
  name: string;
  description: string | null;
  file: string;
  line: number;
  trigger: string;
  on: string;
  state: 'active' | 'paused' | 'error' | string;
  paused_for_ms: number | null;
  load_error: string | null;
  limits: { max_concurrency: number; timeout_ms: number; memory_mb: number; rate_limit: string | null; queue_size: number };
  invocation_count: number;
  error_count: number;
  completed: number;
  failed: number;
  timed_out: number;
  skipped: number;
  queued: number;
  last_invoked_at: string | null;
  last_error: string | null;
}

interface LoadError {
  file: string;
  line: number | null;
  message: string;
}

interface FunctionList {
  dir: string;
  functions: FunctionInfo[];
  dropped_rows: number;
  load_errors: LoadError[];
}

interface Diagnostic {
  file: string;
  line: number;
  col: number;
  severity: 'error' | 'warning' | 'info' | string;
  code: string | null;
  message: string;
  text: string;
}

interface DiagnosticList {
  files: number;
  functions: number;
  diagnostics: Diagnostic[];
}

interface Invocation {
  invocation_id: string;
  function: string;
  status: 'running' | 'completed' | 'failed' | 'skipped' | 'timed_out' | string;
  result?: unknown;
  error: string | null;
  duration_ms: number;
  triggered_by_trace_id: string | null;
  triggered_by_span_id: string | null;
  started_at: string;
  started_unix_nano: string;
  finished_unix_nano: string | null;
}

const POLL_MS = 1000;

/** GETs `path` every `everyMs` while the tab is visible (and at once when
 *  it becomes visible again); keeps the last answer through failures. */
function usePoll<T>(path: string, everyMs: number) {
  const [state, setState] = useState<{ data?: T; error?: Error; at?: number }>({});
  const tick = refreshTick.value;
  useEffect(() => {
    let stopped = false;
    let inFlight = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ctl = new AbortController();
    const run = async () => {
      clearTimeout(timer);
      if (stopped || inFlight) return;
      if (document.visibilityState === 'visible') {
        inFlight = true;
        try {
          const data = await apiGet<T>(path, undefined, ctl.signal);
          if (!stopped) setState({ data, at: Date.now() });
        } catch (error) {
          if (!stopped) setState((s) => ({ ...s, error: error as Error }));
        }
        inFlight = false;
      }
      if (!stopped) timer = setTimeout(run, everyMs);
    };
    const onVisible = () => document.visibilityState === 'visible' && run();
    document.addEventListener('visibilitychange', onVisible);
    run();
    return () => {
      stopped = true;
      clearTimeout(timer);
      ctl.abort();
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [path, everyMs, tick]);
  return state;
}


/** `/srv/scripts/a.lua` → `a.lua` when it is in the scripts folder. */
function rel(dir: string, file: string): string {
  const d = dir.endsWith('/') ? dir : `${dir}/`;
  return file.startsWith(d) ? file.slice(d.length) : file;
}

export function Functions() {
  const p = useParams();
  const set = useSetParams();
  const q = p.get('q') ?? '';
  const open = p.get('fn');
  const list = usePoll<FunctionList>('/functions', POLL_MS);
  const data = list.data;

  // `qyl check` runs every script: ask again only when what is loaded changes.
  const signature = data ? JSON.stringify([data.functions.map((f) => [f.name, f.state, f.load_error, f.file, f.line]), data.load_errors]) : '';
  const [diags, setDiags] = useState<{ data?: DiagnosticList; error?: Error }>({});
  useEffect(() => {
    if (!signature) return;
    const ctl = new AbortController();
    apiGet<DiagnosticList>('/functions/diagnostics', undefined, ctl.signal).then(
      (d) => setDiags({ data: d }),
      (error) => !ctl.signal.aborted && setDiags((s) => ({ ...s, error })),
    );
    return () => ctl.abort();
  }, [signature, refreshTick.value]);

  const fns = useMemo(() => {
    const all = data?.functions ?? [];
    const words = q.toLowerCase().split(/\s+/).filter(Boolean);
    return all.filter((f) => {
      const hay = `${f.name}\n${f.description ?? ''}\n${f.trigger}\n${f.file}\n${f.state}`.toLowerCase();
      return words.every((w) => hay.includes(w));
    });
  }, [data, q]);

  if (list.error && !data) {
    return (
      <>
        <PageHeader title="Functions" />
        <ErrorBox error={list.error} title="Could not load the functions" />
      </>
    );
  }
  if (!data) return <Loading />;

  const totals = data.functions.reduce(
    (t, f) => ({ runs: t.runs + f.invocation_count, failed: t.failed + f.error_count, skipped: t.skipped + f.skipped }),
    { runs: 0, failed: 0, skipped: 0 },
  );
  const paused = data.functions.filter((f) => f.state === 'paused').length;
  const stale = list.at !== undefined && list.error !== undefined;

  return (
    <div class="fn-page">
      <PageHeader
        title="Functions"
        subtitle={
          <>
            Lua scripts in <span class="mono">{data.dir}</span>, reloaded on save
          </>
        }
      >
        <span class={`fn-live${stale ? ' stale' : ''}`} title={stale ? `Not updating: ${list.error?.message}` : 'Updated every second'}>
          <span class="dot" aria-hidden="true" />
          {stale ? 'Reconnecting…' : 'Live'}
        </span>
      </PageHeader>

      <LoadErrors errors={data.load_errors} dir={data.dir} />

      <div class="fn-stats">
        <Figure label="Functions" value={fmtNum(data.functions.length)} />
        <Figure label="Paused by breaker" value={fmtNum(paused)} tone={paused ? 'warn' : undefined} />
        <Figure label="Scripts not loading" value={fmtNum(data.load_errors.length)} tone={data.load_errors.length ? 'bad' : undefined} />
        <Figure label="Invocations" value={fmtNum(totals.runs, true)} />
        <Figure label="Failed or timed out" value={fmtNum(totals.failed, true)} tone={totals.failed ? 'bad' : undefined} />
        <Figure label="Skipped" value={fmtNum(totals.skipped, true)} tone={totals.skipped ? 'warn' : undefined} sub={data.dropped_rows ? `${fmtNum(data.dropped_rows)} result rows dropped` : undefined} />
      </div>

      <div class="filters">
        <label class="field grow fn-search">
          Search
          <input data-search type="search" placeholder="Name, trigger, file…  ( / )" value={q} onInput={(e) => set({ q: (e.target as HTMLInputElement).value }, { replace: true })} />
        </label>
      </div>

      <section class="card flush">
        {data.functions.length === 0 ? (
          <Empty title="No functions loaded" hint={false}>
            Save a Lua script returning <code>qyl.fn {'{ name, trigger, handler }'}</code> in <span class="mono">{data.dir}</span>; it loads within a second. <code>qyl check</code> lints the folder.
          </Empty>
        ) : fns.length === 0 ? (
          <Empty title={`No function matches “${q}”`} hint={false} />
        ) : (
          <table class="table fn-table">
            <thead>
              <tr>
                <th class="fn-expand-col" aria-label="Expand" />
                <th>Function</th>
                <th>Trigger</th>
                <th>State</th>
                <th class="num">Runs</th>
                <th class="num">Failed</th>
                <th class="num">Skipped</th>
                <th>Last run</th>
                <th>File</th>
              </tr>
            </thead>
            <tbody>
              {fns.map((f) => (
                <FunctionRows key={f.name} f={f} dir={data.dir} open={open === f.name} toggle={() => set({ fn: open === f.name ? null : f.name, status: null })} />
              ))}
            </tbody>
          </table>
        )}
      </section>

      <Diagnostics diags={diags} dir={data.dir} />
    </div>
  );
}

function Figure({ label, value, tone, sub }: { label: string; value: string; tone?: 'bad' | 'warn'; sub?: string }) {
  return (
    <div class="fn-stat">
      <div class="stat-label">{label}</div>
      <div class={`fn-stat-value${tone ? ` tone-${tone}` : ''}`}>{value}</div>
      {sub && <div class="stat-sub">{sub}</div>}
    </div>
  );
}

function LoadErrors({ errors, dir }: { errors: LoadError[]; dir: string }) {
  if (errors.length === 0) return null;
  return (
    <section class="fn-load-errors" role="alert" aria-label="Scripts that did not load">
      <div class="fn-load-head">
        <strong>
          ⚠ {errors.length === 1 ? 'A script did not load' : `${errors.length} scripts did not load`}
        </strong>
        <span class="muted">The last good version of each keeps running until the file is fixed.</span>
      </div>
      <ul>
        {errors.map((e) => (
          <li key={e.file} class="fn-load-error">
            <span class="mono fn-loc">
              {rel(dir, e.file)}
              {e.line ? `:${e.line}` : ''}
            </span>
            <span class="mono fn-load-msg">{e.message}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

function StateBadge({ f }: { f: FunctionInfo }) {
  if (f.state === 'active') return <Badge tone="good">active</Badge>;
  if (f.state === 'paused')
    return (
      <Badge tone="warn" title="The circuit breaker paused it after repeated failures; saving the file resumes it">
        paused{f.paused_for_ms ? ` · ${fmtMs(f.paused_for_ms)}` : ''}
      </Badge>
    );
  if (f.state === 'error')
    return (
      <Badge tone="bad" title="The file's last save did not load; the previous version is still running">
        load error · running previous
      </Badge>
    );
  return <Badge>{f.state}</Badge>;
}

function FunctionRows({ f, dir, open, toggle }: { f: FunctionInfo; dir: string; open: boolean; toggle: () => void }) {
  return (
    <>
      <tr class={`clickable fn-row${open ? ' selected' : ''}`} data-function={f.name} onClick={(e) => !(e.target as HTMLElement).closest('a, button') && toggle()}>
        <td class="fn-expand-col">
          <button class={`fn-expand${open ? ' open' : ''}`} aria-expanded={open} aria-label={`${open ? 'Hide' : 'Show'} invocations of ${f.name}`} onClick={toggle}>
            ▸
          </button>
        </td>
        <td class="fn-name-cell">
          <div class="fn-name mono">{f.name}</div>
          {f.description && <div class="muted fn-desc ellipsis">{f.description}</div>}
        </td>
        <td class="fn-trigger-cell">
          <span class={`fn-on fn-on-${f.on}`}>{f.on}</span>
          <span class="mono fn-trigger" title={f.trigger}>
            {/* The badge names the kind; the text says the rest. */}
            {f.trigger.startsWith(`${f.on} `) ? f.trigger.slice(f.on.length + 1) : f.trigger}
          </span>
        </td>
        <td>
          <StateBadge f={f} />
        </td>
        <td class="num">{fmtNum(f.invocation_count, true)}</td>
        <td class={`num${f.error_count ? ' tone-bad' : ''}`}>{fmtNum(f.error_count, true)}</td>
        <td class={`num${f.skipped ? ' tone-warn' : ''}`}>{fmtNum(f.skipped, true)}</td>
        <td class="nowrap">{f.last_invoked_at ? <Time t={f.last_invoked_at} mode="ago" /> : <span class="faint">never</span>}</td>
        <td class="mono fn-file" title={`${f.file}:${f.line}`}>
          {rel(dir, f.file)}:{f.line}
        </td>
      </tr>
      {(f.load_error || (f.last_error && f.error_count > 0)) && (
        <tr class="fn-subrow">
          <td />
          <td colSpan={8}>
            {f.load_error && (
              <div class="fn-inline-error">
                <span class="fn-inline-label">Load error</span>
                <span class="mono">{f.load_error.startsWith(dir) ? rel(dir, f.load_error) : f.load_error}</span>
              </div>
            )}
            {f.last_error && f.error_count > 0 && (
              <div class="fn-inline-error fn-last-error">
                <span class="fn-inline-label">Last failure</span>
                <span class="mono ellipsis" title={f.last_error}>
                  {f.last_error}
                </span>
              </div>
            )}
          </td>
        </tr>
      )}
      {open && (
        <tr class="fn-detail-row">
          <td colSpan={9}>
            <Invocations f={f} />
          </td>
        </tr>
      )}
    </>
  );
}

const STATUSES = ['completed', 'failed', 'timed_out', 'skipped', 'running'];

function statusTone(s: string): 'good' | 'bad' | 'warn' | 'info' | 'neutral' {
  return s === 'completed' ? 'good' : s === 'failed' || s === 'timed_out' ? 'bad' : s === 'skipped' ? 'warn' : s === 'running' ? 'info' : 'neutral';
}

/** A function's invocations, newest first; re-read whenever its counters
 *  move, older pages on demand. */
function Invocations({ f }: { f: FunctionInfo }) {
  const p = useParams();
  const set = useSetParams();
  const status = p.get('status') ?? '';
  const [state, setState] = useState<{ items: Invocation[]; cursor: string | null; error?: Error; loading: boolean }>({ items: [], cursor: null, loading: true });
  const pages = useRef(1);
  const moved = `${f.invocation_count}|${f.skipped}|${f.queued}`;
  useEffect(() => {
    pages.current = 1;
    setState({ items: [], cursor: null, loading: true });
  }, [f.name, status]);
  useEffect(() => {
    const ctl = new AbortController();
    apiGet<{ items: Invocation[]; next_cursor: string | null }>(`/functions/${encodeURIComponent(f.name)}/invocations`, { status: status || undefined, limit: 25 * pages.current }, ctl.signal).then(
      (r) => setState({ items: r.items, cursor: r.next_cursor, loading: false }),
      (error) => !ctl.signal.aborted && setState((s) => ({ ...s, error, loading: false })),
    );
    return () => ctl.abort();
  }, [f.name, status, moved]);
  const more = async () => {
    if (!state.cursor) return;
    try {
      const r = await apiGet<{ items: Invocation[]; next_cursor: string | null }>(`/functions/${encodeURIComponent(f.name)}/invocations`, { status: status || undefined, limit: 25, cursor: state.cursor });
      pages.current++;
      setState((s) => ({ ...s, items: [...s.items, ...r.items], cursor: r.next_cursor }));
    } catch (error) {
      setState((s) => ({ ...s, error: error as Error }));
    }
  };
  return (
    <div class="fn-invocations">
      <div class="fn-inv-head">
        <h3>Recent invocations</h3>
        <div class="fn-limits muted">
          limits: {f.limits.max_concurrency} at a time · timeout {fmtMs(f.limits.timeout_ms)} · {f.limits.memory_mb} MB
          {f.limits.rate_limit ? ` · rate ${f.limits.rate_limit}` : ''} · queue {fmtNum(f.queued)}/{fmtNum(f.limits.queue_size)}
        </div>
        <span class="grow" />
        <label class="row fn-status-filter">
          <span class="muted">Status</span>
          <select value={status} onChange={(e) => set({ status: (e.target as HTMLSelectElement).value || null })} aria-label="Filter invocations by status">
            <option value="">All</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s.replace('_', ' ')}
              </option>
            ))}
          </select>
        </label>
      </div>
      {state.error && state.items.length === 0 ? (
        <ErrorBox error={state.error} title="Could not load the invocations" />
      ) : state.loading ? (
        <Loading />
      ) : state.items.length === 0 ? (
        <div class="muted fn-inv-empty">{status ? `No ${status.replace('_', ' ')} invocations.` : f.on === 'schedule' ? 'Not run yet: it runs on its schedule.' : `Not run yet: it runs when a record matches “${f.trigger}”.`}</div>
      ) : (
        <table class="table fn-inv-table">
          <thead>
            <tr>
              <th>Status</th>
              <th>Started</th>
              <th class="num">Duration</th>
              <th>Result</th>
              <th>Triggered by</th>
              <th aria-label="Logs" />
            </tr>
          </thead>
          <tbody>
            {state.items.map((inv) => (
              <InvocationRow key={inv.invocation_id + inv.status} inv={inv} />
            ))}
          </tbody>
        </table>
      )}
      {state.cursor && (
        <div class="fn-more">
          <button class="btn btn-sm" onClick={more}>
            Load older invocations
          </button>
        </div>
      )}
    </div>
  );
}

function InvocationRow({ inv }: { inv: Invocation }) {
  const [open, setOpen] = useState(false);
  const result = inv.result === undefined || inv.result === null ? null : JSON.stringify(inv.result);
  return (
    <>
      <tr class="fn-inv" data-invocation={inv.invocation_id}>
        <td>
          <Badge tone={statusTone(inv.status)}>{inv.status.replace('_', ' ')}</Badge>
        </td>
        <td class="nowrap">
          <Time t={inv.started_unix_nano} />
        </td>
        <td class="num">{inv.status === 'skipped' ? '–' : fmtMs(inv.duration_ms)}</td>
        <td class="fn-result-cell">
          {inv.error ? (
            <span class="mono tone-bad fn-result ellipsis" title={inv.error}>
              {inv.error}
            </span>
          ) : result !== null ? (
            <span class="mono fn-result ellipsis" title={result}>
              {result}
            </span>
          ) : (
            <span class="faint">nil</span>
          )}
        </td>
        <td class="nowrap">
          {inv.triggered_by_trace_id ? (
            <Link href={withRange(`/traces/${inv.triggered_by_trace_id}`, inv.triggered_by_span_id ? { span: inv.triggered_by_span_id } : undefined)} class="mono">
              trace {shortId(inv.triggered_by_trace_id)}
            </Link>
          ) : (
            <span class="faint">schedule</span>
          )}
        </td>
        <td class="nowrap">
          <button class={`btn btn-sm${open ? ' active' : ''}`} aria-expanded={open} onClick={() => setOpen(!open)}>
            {open ? 'Hide' : 'Details'}
          </button>
        </td>
      </tr>
      {open && (
        <tr class="fn-inv-detail">
          <td colSpan={6}>
            <InvocationDetail inv={inv} result={result} />
          </td>
        </tr>
      )}
    </>
  );
}

/** The full result and error, and what the handler logged (its logs are
 *  qyl's own records on the invocation's span, whose id is the invocation id). */
function InvocationDetail({ inv, result }: { inv: Invocation; result: string | null }) {
  const [logs, setLogs] = useState<{ items?: LogRow[]; error?: Error }>({});
  useEffect(() => {
    const ctl = new AbortController();
    const start = Math.floor(toMs(inv.started_unix_nano)) - 1000;
    const end = inv.finished_unix_nano ? Math.ceil(toMs(inv.finished_unix_nano)) + 60_000 : Date.now() + 60_000;
    apiGet<{ items: LogRow[] }>('/logs', { service: 'qyl', span_id: inv.invocation_id, since: String(start), until: String(end), limit: 200 }, ctl.signal).then(
      (r) => setLogs({ items: [...r.items].reverse() }),
      (error) => !ctl.signal.aborted && setLogs({ error }),
    );
    return () => ctl.abort();
  }, [inv.invocation_id, inv.status]);
  let pretty = result;
  try {
    if (result !== null) pretty = JSON.stringify(JSON.parse(result), null, 2);
  } catch {
    /* shown as sent */
  }
  return (
    <div class="fn-inv-body">
      <div class="fn-inv-col">
        <div class="stat-label">{inv.error ? 'Error' : 'Result'}</div>
        <pre class={`code fn-pre${inv.error ? ' tone-bad' : ''}`}>{inv.error ?? pretty ?? 'nil'}</pre>
        <div class="faint fn-inv-id mono">invocation {inv.invocation_id}</div>
      </div>
      <div class="fn-inv-col">
        <div class="stat-label">Logs</div>
        {logs.error ? (
          <div class="form-error">{logs.error.message}</div>
        ) : !logs.items ? (
          <Loading />
        ) : logs.items.length === 0 ? (
          <div class="muted">Nothing logged (runtime.log).</div>
        ) : (
          <ol class="fn-logs mono">
            {logs.items.map((l, i) => (
              <li key={i}>
                <Time t={l.time_unix_nano} mode="clock" /> <span class={`fn-sev fn-sev-${(l.severity_text ?? 'info').toLowerCase()}`}>{l.severity_text ?? l.severity_number}</span> {l.body}
              </li>
            ))}
          </ol>
        )}
      </div>
    </div>
  );
}

function Diagnostics({ diags, dir }: { diags: { data?: DiagnosticList; error?: Error }; dir: string }) {
  const [showInfo, setShowInfo] = useState(false);
  if (diags.error && !diags.data) return <ErrorBox error={diags.error} title="Could not run qyl check" />;
  if (!diags.data) return null;
  const all = diags.data.diagnostics;
  const problems = all.filter((d) => d.severity !== 'info');
  const info = all.filter((d) => d.severity === 'info');
  const shown = showInfo ? all : problems;
  return (
    <section class="card fn-diags">
      <div class="card-head">
        <h2>
          qyl check{' '}
          <span class="muted fn-diag-sum">
            {plural(diags.data.files, 'file')}, {plural(diags.data.functions, 'function')}
            {' · '}
            {problems.length === 0 ? 'no problems' : [plural(problems.filter((d) => d.severity === 'error').length, 'error'), plural(problems.filter((d) => d.severity === 'warning').length, 'warning')].join(', ')}
          </span>
        </h2>
        {info.length > 0 && (
          <button class="btn btn-sm" aria-pressed={showInfo} onClick={() => setShowInfo(!showInfo)}>
            {showInfo ? 'Hide info lines' : `Show ${info.length} info line${info.length === 1 ? '' : 's'}`}
          </button>
        )}
      </div>
      {shown.length === 0 ? (
        <div class="muted">Every script loads and nothing is worth a warning.</div>
      ) : (
        <ul class="fn-diag-list">
          {shown.map((d, i) => (
            <li key={i} class={`fn-diag fn-diag-${d.severity}`}>
              <Badge tone={d.severity === 'error' ? 'bad' : d.severity === 'warning' ? 'warn' : 'info'}>{d.severity}</Badge>
              {d.code && <span class="mono faint">{d.code}</span>}
              <span class="mono fn-loc">
                {rel(dir, d.file)}:{d.line}:{d.col}
              </span>
              <span class="fn-diag-msg">{d.message}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
