// The Traces page (/traces): search traces by service, operation, status,
// duration and attribute within the global time range; a duration-over-time
// scatter of the results (click a dot to open the trace); the result list
// with proportional duration bars, "load more" paging, and a pick-two
// "Compare". Filters live in the URL so searches can be shared.
import { useMemo, useState } from 'preact/hooks';
import { Link, useLocation } from 'wouter-preact';
import { Chart } from '../components/chart';
import { DebouncedInput } from '../components/debounced-input';
import { ServiceOptions } from '../components/options';
import { Badge, Card, PageHeader } from '../components/page';
import { Empty, ErrorBox, Loading } from '../components/states';
import { Time } from '../components/time';
import { apiGet, type Params } from '../lib/api';
import { useApi } from '../lib/fetch';
import { colorFor, fmtCost, fmtMs, fmtNum, plural } from '../lib/format';
import { useParams, useSetParams, withRange } from '../lib/params';
import { rangeParams, toMs, useTimeRange } from '../lib/time';
import type { Page, TraceSummary } from '../lib/types';
import './traces.css';

interface Service {
  name: string;
}

/** `http.route=/cart; user.id=42` → [['http.route', '/cart'], ['user.id', '42']]. */
export function parseAttrFilter(text: string): [string, string][] | null {
  const out: [string, string][] = [];
  for (const part of text.split(';')) {
    const t = part.trim();
    if (!t) continue;
    const eq = t.indexOf('=');
    if (eq <= 0) return null;
    out.push([t.slice(0, eq).trim(), t.slice(eq + 1).trim()]);
  }
  return out;
}

const DURATION_RE = /^\d+(\.\d+)?\s*(ns|us|µs|ms|s|m|h)?$/;

export function Traces() {
  const p = useParams();
  const set = useSetParams();
  const [, navigate] = useLocation();
  const range = useTimeRange();
  const service = p.get('service') ?? '';
  const name = p.get('name') ?? '';
  const status = p.get('status') ?? '';
  const min = p.get('min') ?? '';
  const max = p.get('max') ?? '';
  const attr = p.get('attr') ?? '';
  const limit = Math.min(Math.max(Number(p.get('limit')) || 50, 1), 1000);

  const attrs = parseAttrFilter(attr);
  const badMin = min !== '' && !DURATION_RE.test(min.trim());
  const badMax = max !== '' && !DURATION_RE.test(max.trim());
  const params: Params = { ...rangeParams(range), service, name, status, limit };
  if (!badMin) params.min_duration_ms = min.trim();
  if (!badMax) params.max_duration_ms = max.trim();
  for (const [k, v] of attrs ?? []) params[`attr.${k}`] = v;

  const services = useApi<Service[]>('/services', rangeParams(range));
  const first = useApi<Page<TraceSummary>>('/traces', params);
  const key = JSON.stringify(params);

  // Pages after the first, fetched by "load more"; dropped when the search changes.
  const [more, setMore] = useState<{ key: string; items: TraceSummary[]; cursor: string | null; loading: boolean; error?: Error }>({ key, items: [], cursor: null, loading: false });
  const extra = more.key === key ? more : { key, items: [], cursor: null, loading: false, error: undefined };
  // A refresh of the first page may bring traces already loaded further down.
  const items = useMemo(() => {
    const seen = new Set<string>();
    return [...(first.data?.items ?? []), ...extra.items].filter((t) => !seen.has(t.trace_id) && seen.add(t.trace_id));
  }, [first.data, extra.items]);
  const nextCursor = extra.items.length ? extra.cursor : (first.data?.next_cursor ?? null);
  const loadMore = () => {
    if (!nextCursor) return;
    setMore({ ...extra, loading: true });
    apiGet<Page<TraceSummary>>('/traces', { ...params, cursor: nextCursor }).then(
      (page) => setMore({ key, items: [...extra.items, ...page.items], cursor: page.next_cursor, loading: false }),
      (error) => setMore({ ...extra, loading: false, error }),
    );
  };

  const [picked, setPicked] = useState<string[]>([]);
  const pick = (id: string, on: boolean) => setPicked((cur) => (on ? [...cur.filter((x) => x !== id), id].slice(-2) : cur.filter((x) => x !== id)));

  const anyFilter = service || name || status || min || max || attr;
  const serviceNames = useMemo(() => {
    const names = new Set((services.data ?? []).map((s) => s.name));
    if (service) names.add(service);
    return [...names].sort();
  }, [services.data, service]);

  return (
    <div class="traces-page">
      <PageHeader title="Traces" subtitle={`Traces with a span matching the search · ${range.label}`}>
        <button
          class="btn btn-primary"
          disabled={picked.length !== 2}
          title={picked.length === 2 ? 'Compare the two picked traces' : 'Pick two traces with the checkboxes'}
          onClick={() => navigate(withRange('/compare', { a: picked[0], b: picked[1] }))}
        >
          Compare{picked.length ? ` (${picked.length}/2)` : ''}
        </button>
      </PageHeader>

      <form class="filters traces-filters" onSubmit={(e) => e.preventDefault()} role="search">
        <label class="field">
          Service
          <select value={service} onChange={(e) => set({ service: (e.target as HTMLSelectElement).value })} aria-label="Service">
            <ServiceOptions names={serviceNames} />
          </select>
        </label>
        <label class="field">
          Operation
          <DebouncedInput delayMs={350} class="wide" data-search value={name} placeholder="span name, e.g. GET /cart" aria-label="Operation" onCommit={(v: string) => set({ name: v.trim() }, { replace: true })} />
        </label>
        <label class="field">
          Status
          <select value={status} onChange={(e) => set({ status: (e.target as HTMLSelectElement).value })} aria-label="Status">
            <option value="">Any status</option>
            <option value="error">Error</option>
            <option value="ok">OK</option>
            <option value="unset">Unset</option>
          </select>
        </label>
        <label class="field">
          Min duration
          <DebouncedInput delayMs={350} value={min} placeholder="250ms" aria-label="Min duration" aria-invalid={badMin} onCommit={(v: string) => set({ min: v.trim() }, { replace: true })} />
        </label>
        <label class="field">
          Max duration
          <DebouncedInput delayMs={350} value={max} placeholder="2s" aria-label="Max duration" aria-invalid={badMax} onCommit={(v: string) => set({ max: v.trim() }, { replace: true })} />
        </label>
        <label class="field">
          Attribute
          <DebouncedInput delayMs={350} class="wide mono" value={attr} placeholder="http.route=/cart" aria-label="Attribute" aria-invalid={attrs === null} onCommit={(v: string) => set({ attr: v.trim() }, { replace: true })} />
        </label>
        {anyFilter && (
          <button class="btn" type="button" onClick={() => set({ service: null, name: null, status: null, min: null, max: null, attr: null })}>
            Clear
          </button>
        )}
      </form>
      {(badMin || badMax || attrs === null) && (
        <div class="form-error" role="alert" style={{ marginBottom: '12px' }}>
          {badMin || badMax ? 'Durations are a number of milliseconds or have a unit: 250ms, 2s, 1m. ' : ''}
          {attrs === null ? 'Attributes are key=value (several separated by ";").' : ''}
        </div>
      )}

      {first.error && !first.data ? (
        <ErrorBox error={first.error} title="Could not search traces" />
      ) : first.loading && !first.data ? (
        <Loading label="Searching traces…" />
      ) : items.length === 0 ? (
        anyFilter ? (
          <Empty title="No traces match this search" hint={false}>
            Widen the time range or clear a filter.
          </Empty>
        ) : (
          <Empty />
        )
      ) : (
        <>
          <Scatter items={items} onOpen={(id) => navigate(withRange(`/traces/${id}`))} />
          <TraceTable items={items} picked={picked} onPick={pick} onOpen={(id) => navigate(withRange(`/traces/${id}`))} />
          <div class="card flush">
            <div class="traces-more">
              {extra.error && <ErrorBox error={extra.error} title="Could not load more" />}
              {nextCursor ? (
                <button class="btn" onClick={loadMore} disabled={extra.loading}>
                  {extra.loading ? 'Loading…' : 'Load more'}
                </button>
              ) : (
                <span class="muted">
                  {plural(items.length, 'trace')} · end of results
                </span>
              )}
            </div>
          </div>
        </>
      )}
    </div>
  );
}

function Scatter({ items, onOpen }: { items: TraceSummary[]; onOpen: (id: string) => void }) {
  // uPlot wants x ascending; OK and error traces are two series.
  const { x, series, order } = useMemo(() => {
    const order = items.slice().sort((a, b) => toMs(a.start_time_unix_nano) - toMs(b.start_time_unix_nano));
    return {
      order,
      x: order.map((t) => toMs(t.start_time_unix_nano) / 1000),
      series: [
        { label: 'OK', values: order.map((t) => (t.error_count > 0 ? null : t.duration_ms)), color: '#6d5dfc' },
        { label: 'Error', values: order.map((t) => (t.error_count > 0 ? t.duration_ms : null)), color: '#dc2626' },
      ],
    };
  }, [items]);
  return (
    <Card
      title="Duration over time"
      class="traces-scatter"
    >
      <Chart x={x} series={series} kind="points" height={170} fmt={(v) => fmtMs(v)} onClick={(idx) => order[idx] && onOpen(order[idx].trace_id)} ariaLabel="Trace durations over time; click a dot to open the trace" />
    </Card>
  );
}

function TraceTable({ items, picked, onPick, onOpen }: { items: TraceSummary[]; picked: string[]; onPick: (id: string, on: boolean) => void; onOpen: (id: string) => void }) {
  const maxDur = Math.max(...items.map((t) => t.duration_ms), 1e-9);
  const anyGenAi = items.some((t) => t.gen_ai_input_tokens + t.gen_ai_output_tokens > 0 || t.gen_ai_cost_usd !== null);
  return (
    <div class="card flush" style={{ borderBottomLeftRadius: 0, borderBottomRightRadius: 0, borderBottom: 0 }}>
      <div class="table-wrap">
        <table class="table traces-table">
          <thead>
            <tr>
              <th class="col-check">
                <span class="sr-only">Pick</span>
              </th>
              <th>Trace</th>
              <th>Start</th>
              <th class="num col-dur">Duration</th>
              <th class="num">Spans</th>
              <th class="num">Errors</th>
              <th>Services</th>
              {anyGenAi && <th class="num">GenAI</th>}
            </tr>
          </thead>
          <tbody>
            {items.map((t) => {
              const on = picked.includes(t.trace_id);
              return (
                <tr
                  key={t.trace_id}
                  class={`clickable${on ? ' selected' : ''}`}
                  data-trace-id={t.trace_id}
                  onClick={(e) => {
                    // The checkbox and the link handle their own clicks.
                    if (!(e.target as HTMLElement).closest('a, input, button')) onOpen(t.trace_id);
                  }}
                >
                  <td class="col-check">
                    <input type="checkbox" checked={on} aria-label={`Pick ${t.root_name} for compare`} onChange={(e) => onPick(t.trace_id, (e.target as HTMLInputElement).checked)} />
                  </td>
                  <td>
                    <div class="trace-name">
                      <span class="dot" style={{ background: colorFor(t.root_service) }} title={t.root_service} />
                      <span class="muted">{t.root_service}</span>
                      <Link href={withRange(`/traces/${t.trace_id}`)} class="ellipsis trace-link">
                        {t.root_name || '(no root span)'}
                      </Link>
                    </div>
                    <div class="mono trace-id">{t.trace_id}</div>
                  </td>
                  <td class="nowrap">
                    <Time t={t.start_time_unix_nano} />
                  </td>
                  <td class="col-dur">
                    <div class="dur-cell">
                      <span class="dur-track" aria-hidden="true">
                        <span class={`dur-fill${t.error_count > 0 ? ' bad' : ''}`} style={{ width: `${Math.max((t.duration_ms / maxDur) * 100, 1)}%`, display: 'block' }} />
                      </span>
                      <span class="num">{fmtMs(t.duration_ms)}</span>
                    </div>
                  </td>
                  <td class="num">{fmtNum(t.span_count)}</td>
                  <td class="num">{t.error_count > 0 ? <Badge tone="bad">{fmtNum(t.error_count)}</Badge> : <span class="faint">0</span>}</td>
                  <td>
                    <div class="svc-list">
                      {t.services.slice(0, 5).map((s) => (
                        <span key={s} class="svc-chip">
                          <span class="dot" style={{ background: colorFor(s) }} />
                          {s}
                        </span>
                      ))}
                      {t.services.length > 5 && <span class="svc-chip" title={t.services.slice(5).join(', ')}>+{t.services.length - 5}</span>}
                    </div>
                  </td>
                  {anyGenAi && (
                    <td class="num">
                      {t.gen_ai_input_tokens + t.gen_ai_output_tokens > 0 ? (
                        <>
                          {fmtNum(t.gen_ai_input_tokens + t.gen_ai_output_tokens, true)} tok
                          <div class="faint">{fmtCost(t.gen_ai_cost_usd)}</div>
                        </>
                      ) : (
                        <span class="faint">–</span>
                      )}
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </div>
  );
}
