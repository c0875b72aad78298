// The SQL console: read-only DuckDB SQL over the stored tables, for the
// questions no page answers. The query lives in the URL (?q=) so it can be
// shared; results download as CSV; past queries are kept in localStorage.
// While a query runs it shows its elapsed time and, when the server's SQL
// lane is full, its place in the queue, so a slow answer never looks hung.
import { useEffect, useRef, useState } from 'preact/hooks';
import { PageHeader, Card } from '../components/page';
import { Loading } from '../components/states';
import { apiGet, apiSend, ApiError } from '../lib/api';
import { fmtMs, fmtNum, plural } from '../lib/format';
import { useParams, useSetParams } from '../lib/params';
import { fmtAgo } from '../lib/time';
import './sql.css';

interface SqlColumn {
  name: string;
  type: string;
}

interface SqlResult {
  columns: SqlColumn[];
  rows: unknown[][];
  truncated: boolean;
  elapsed_ms: number;
}

interface SqlQueue {
  running: number;
  waiting: number;
  slots: number;
}

interface HistoryEntry {
  sql: string;
  at: number;
  rows?: number;
  failed?: boolean;
}

const HISTORY_KEY = 'qyl.sql.history';
const HISTORY_MAX = 30;
const LIMITS = [100, 1000, 10000];

/** Starting points over the real tables (see README "Storage"). */
const EXAMPLES: { title: string; sql: string }[] = [
  { title: 'Spans per service', sql: 'select service_name, count(*) n from spans group by 1 order by 1' },
  {
    title: 'Slowest operations, last hour',
    sql: `select service_name, name,
       count(*) as calls,
       round(quantile_cont(duration_ns, 0.95) / 1e6, 2) as p95_ms,
       round(max(duration_ns) / 1e6, 2) as max_ms
from spans
where start_time_unix_nano >= epoch_ns(now() - interval 1 hour)
group by all
order by p95_ms desc
limit 20`,
  },
  {
    title: 'Error rate by operation',
    sql: `select service_name, name,
       count(*) as span_count,
       count(*) filter (where status_code = 'ERROR') as error_count,
       round(100.0 * error_count / span_count, 2) as error_pct
from spans
group by all
having error_count > 0
order by error_pct desc, span_count desc
limit 50`,
  },
  {
    title: 'Log volume by severity',
    sql: `select service_name, coalesce(severity_text, severity_number::varchar) as severity, count(*) as n
from logs
group by all
order by service_name, n desc`,
  },
  {
    title: 'LLM tokens and cost by model',
    sql: `select gen_ai_request_model as model,
       count(*) as calls,
       sum(gen_ai_input_tokens) as input_tokens,
       sum(gen_ai_output_tokens) as output_tokens,
       round(sum(gen_ai_cost_usd), 4) as cost_usd
from spans
where gen_ai_request_model is not null
group by 1
order by cost_usd desc nulls last`,
  },
  {
    title: 'Metrics and their points',
    sql: `select name, kind, any_value(unit) as unit, count(*) as points,
       count(distinct attributes) as series,
       to_timestamp(max(time_unix_nano) / 1e9) as last_point
from metrics
group by name, kind
order by name`,
  },
  {
    title: 'Spans per minute, last hour',
    sql: `select time_bucket(interval 1 minute, to_timestamp(start_time_unix_nano / 1e9)) as minute,
       count(*) as spans,
       count(*) filter (where status_code = 'ERROR') as errors
from spans
where start_time_unix_nano >= epoch_ns(now() - interval 1 hour)
group by 1
order by 1`,
  },
];

function readHistory(): HistoryEntry[] {
  try {
    const v = JSON.parse(localStorage.getItem(HISTORY_KEY) ?? '[]');
    return Array.isArray(v) ? v.filter((e) => e && typeof e.sql === 'string') : [];
  } catch {
    return [];
  }
}

function writeHistory(h: HistoryEntry[]) {
  try {
    localStorage.setItem(HISTORY_KEY, JSON.stringify(h.slice(0, HISTORY_MAX)));
  } catch {
    /* storage full or disabled: history is a convenience */
  }
}

/** One CSV field (RFC 4180): quoted when it holds a comma, quote or line break. */
function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(result: SqlResult): string {
  const lines = [result.columns.map((c) => csvField(c.name)).join(',')];
  for (const row of result.rows) lines.push(row.map(csvField).join(','));
  return lines.join('\r\n') + '\r\n';
}

function download(name: string, text: string) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Column types (as the API names them: `int64`, `float64`, `decimal128(…)`,
 *  or DuckDB's own names) whose values read best right-aligned. */
const NUMERIC = /^(u?int(8|16|32|64|128)?|float(16|32|64)?|double|real|decimal.*|tinyint|smallint|integer|bigint|hugeint|utinyint|usmallint|uinteger|ubigint|uhugeint)$/i;

function Cell({ value, numeric }: { value: unknown; numeric: boolean }) {
  if (value === null || value === undefined) return <td class={`faint sql-null${numeric ? ' num' : ''}`}>NULL</td>;
  if (typeof value === 'object') return <td class="mono sql-json" title={JSON.stringify(value)}>{JSON.stringify(value)}</td>;
  const text = String(value);
  return (
    <td class={numeric ? 'num' : 'sql-text'} title={text.length > 80 ? text : undefined}>
      {text}
    </td>
  );
}

type RunState =
  | { phase: 'idle' }
  | { phase: 'running'; started: number; sql: string }
  | { phase: 'done'; result: SqlResult; sql: string; wallMs: number }
  | { phase: 'failed'; error: ApiError | Error; sql: string }
  | { phase: 'cancelled'; sql: string; afterMs: number };

export function Sql() {
  const params = useParams();
  const setParams = useSetParams();
  const urlSql = params.get('q') ?? '';
  const limit = Number(params.get('limit')) || LIMITS[0];
  const [text, setText] = useState(urlSql || EXAMPLES[0].sql);
  const [run, setRun] = useState<RunState>({ phase: 'idle' });
  const [history, setHistory] = useState<HistoryEntry[]>(readHistory);
  const [now, setNow] = useState(Date.now());
  const [queue, setQueue] = useState<SqlQueue | null>(null);
  const abort = useRef<AbortController | null>(null);
  const editor = useRef<HTMLTextAreaElement>(null);

  // The URL is the source of truth for a shared link or the back button.
  useEffect(() => {
    if (urlSql && urlSql !== text) setText(urlSql);
  }, [urlSql]);

  const execute = async (sql: string) => {
    const q = sql.trim();
    if (!q || run.phase === 'running') return;
    abort.current?.abort();
    const ctl = new AbortController();
    abort.current = ctl;
    const started = Date.now();
    setQueue(null);
    setRun({ phase: 'running', started, sql: q });
    setParams({ q }, { replace: true });
    let entry: HistoryEntry = { sql: q, at: started };
    try {
      const result = await apiSend<SqlResult>('POST', '/sql', { sql: q, limit }, ctl.signal);
      setRun({ phase: 'done', result, sql: q, wallMs: Date.now() - started });
      entry = { ...entry, rows: result.rows.length };
    } catch (e) {
      if ((e as Error)?.name === 'AbortError') {
        setRun({ phase: 'cancelled', sql: q, afterMs: Date.now() - started });
        return;
      }
      setRun({ phase: 'failed', error: e as Error, sql: q });
      entry = { ...entry, failed: true };
    } finally {
      if (abort.current === ctl) abort.current = null;
    }
    const next = [entry, ...readHistory().filter((h) => h.sql !== q)].slice(0, HISTORY_MAX);
    writeHistory(next);
    setHistory(next);
  };

  // A shared link runs its query once on arrival.
  useEffect(() => {
    if (urlSql) execute(urlSql);
    return () => abort.current?.abort();
  }, []);

  // While running: tick the clock, and ask where the query is in the SQL
  // lane. Without that endpoint (404) the elapsed time alone is shown.
  useEffect(() => {
    if (run.phase !== 'running') return;
    const clock = setInterval(() => setNow(Date.now()), 100);
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const q = await apiGet<SqlQueue>('/sql/queue');
        if (!stopped) setQueue(q);
      } catch (e) {
        if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return;
      }
      if (!stopped) timer = setTimeout(poll, 500);
    };
    timer = setTimeout(poll, 500);
    return () => {
      stopped = true;
      clearInterval(clock);
      clearTimeout(timer);
    };
  }, [run.phase]);

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      execute(text);
    }
  };

  const pick = (sql: string) => {
    setText(sql);
    setParams({ q: sql }, { replace: true });
    editor.current?.focus();
  };

  const running = run.phase === 'running';
  const result = run.phase === 'done' ? run.result : null;
  // The lane is full and someone waits: this query is most likely among
  // them, so the others waiting are ahead of it.
  const waiting = running && queue && queue.waiting > 0 && queue.running >= queue.slots ? queue.waiting - 1 : null;

  return (
    <div class="sql-page">
      <PageHeader title="SQL" subtitle="Read-only DuckDB SQL over spans, logs and metrics (times are Unix nanoseconds)" />
      <div class="sql-layout">
        <div class="stack sql-main">
          <Card class="sql-editor-card">
            <label class="sr-only" for="sql-editor">
              SQL query
            </label>
            <textarea
              id="sql-editor"
              ref={editor}
              class="sql-editor"
              data-search
              spellcheck={false}
              rows={Math.min(18, Math.max(6, text.split('\n').length + 1))}
              value={text}
              onInput={(e) => {
                const v = (e.target as HTMLTextAreaElement).value;
                setText(v);
                setParams({ q: v }, { replace: true });
              }}
              onKeyDown={onKeyDown}
              placeholder="select service_name, count(*) from spans group by 1"
            />
            <div class="sql-toolbar">
              {running ? (
                <button class="btn btn-danger" onClick={() => abort.current?.abort()}>
                  ■ Cancel
                </button>
              ) : (
                <button class="btn btn-primary" onClick={() => execute(text)} disabled={!text.trim()} title="Ctrl+Enter / ⌘+Enter">
                  ▶ Run
                </button>
              )}
              <span class="faint sql-kbd">Ctrl+Enter</span>
              <label class="sql-limit muted">
                Rows
                <select value={String(limit)} onChange={(e) => setParams({ limit: (e.target as HTMLSelectElement).value === String(LIMITS[0]) ? null : (e.target as HTMLSelectElement).value }, { replace: true })}>
                  {LIMITS.map((l) => (
                    <option key={l} value={l}>
                      {fmtNum(l)}
                    </option>
                  ))}
                </select>
              </label>
              <div class="grow" />
              {running && (
                <span class="sql-status" role="status" aria-live="polite">
                  <span class="spinner" aria-hidden="true" />
                  {waiting !== null ? `Waiting for a free SQL slot (${waiting} ahead)` : 'Running'} · {fmtMs(now - run.started)}
                </span>
              )}
              {result && (
                <button class="btn" onClick={() => download(`qyl-query-${new Date().toISOString().replace(/[:.]/g, '-')}.csv`, toCsv(result))}>
                  ⤓ Download CSV
                </button>
              )}
            </div>
          </Card>
          <Results run={run} />
        </div>
        <aside class="stack sql-side">
          <Card title="Examples">
            <ul class="sql-list">
              {EXAMPLES.map((ex) => (
                <li key={ex.title}>
                  <button class="menu-item" onClick={() => pick(ex.sql)} title={ex.sql}>
                    {ex.title}
                  </button>
                </li>
              ))}
            </ul>
          </Card>
          <Card
            title="History"
            actions={
              history.length > 0 && (
                <button
                  class="btn btn-sm"
                  onClick={() => {
                    writeHistory([]);
                    setHistory([]);
                  }}
                >
                  Clear
                </button>
              )
            }
          >
            {history.length === 0 ? (
              <div class="faint">Queries you run are kept here, in this browser.</div>
            ) : (
              <ul class="sql-list sql-history">
                {history.map((h) => (
                  <li key={h.at + h.sql}>
                    <button class="menu-item" onClick={() => pick(h.sql)} title={h.sql}>
                      <span class="mono ellipsis">{h.sql.replace(/\s+/g, ' ')}</span>
                      <span class="faint sql-history-meta">
                        {fmtAgo(h.at)}
                        {h.failed ? ' · failed' : h.rows !== undefined ? ` · ${fmtNum(h.rows)} rows` : ''}
                      </span>
                    </button>
                  </li>
                ))}
              </ul>
            )}
          </Card>
        </aside>
      </div>
    </div>
  );
}

function Results({ run }: { run: RunState }) {
  if (run.phase === 'idle')
    return (
      <div class="card sql-hint muted">
        Write a query or pick an example, then press <strong>Run</strong> (Ctrl+Enter). Tables: <code>spans</code>, <code>logs</code>, <code>metrics</code>; attributes are JSON text (
        <code>attributes-&gt;&gt;'$.http.route'</code>).
      </div>
    );
  if (run.phase === 'running') return <Loading label="Running the query…" />;
  if (run.phase === 'cancelled')
    return <div class="card sql-hint muted">Cancelled after {fmtMs(run.afterMs)}. The browser stopped waiting; the server stops the query at its deadline.</div>;
  if (run.phase === 'failed') {
    const e = run.error as ApiError;
    return (
      <div class="state state-error sql-error" role="alert">
        <strong>{e.status ? `Query failed (${e.status} ${e.code})` : 'Query failed'}</strong>
        <pre class="sql-error-text">{e.message}</pre>
      </div>
    );
  }
  const { result } = run;
  const numeric = result.columns.map((c) => NUMERIC.test(c.type));
  return (
    <Card class="flush sql-results">
      <div class="sql-meta">
        <strong class="sql-rowcount">
          {plural(result.rows.length, 'row')}
        </strong>
        <span class="muted">
          {result.columns.length} columns · {fmtMs(result.elapsed_ms)} in DuckDB · {fmtMs(run.wallMs)} total
        </span>
        {result.truncated && (
          <span class="badge badge-warn sql-truncated" title="The row limit cut the result; raise Rows or add a LIMIT/aggregation">
            truncated at {fmtNum(result.rows.length)} rows
          </span>
        )}
      </div>
      {result.columns.length === 0 ? null : (
        <div class="table-wrap sql-table-wrap">
          <table class="table sql-table">
            <thead>
              <tr>
                <th class="sql-rownum num">#</th>
                {result.columns.map((c, i) => (
                  <th key={i} class={numeric[i] ? 'num' : ''} title={c.type}>
                    {c.name} <span class="faint sql-type">{c.type.toLowerCase()}</span>
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {result.rows.map((row, r) => (
                <tr key={r}>
                  <td class="num faint sql-rownum">{r + 1}</td>
                  {row.map((v, i) => (
                    <Cell key={i} value={v} numeric={numeric[i]} />
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
          {result.rows.length === 0 && <div class="state">The query returned no rows.</div>}
        </div>
      )}
    </Card>
  );
}
