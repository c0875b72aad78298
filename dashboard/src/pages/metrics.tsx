// The metrics explorer: pick a metric, choose how to aggregate it and what
// to group it by, and read it as a chart over the global time range with a
// table of its series. Sums show as a rate or an increase, gauges as their
// last/avg/min/max, histograms as percentile lines. Metric, grouping and
// aggregation live in the URL so a chart can be shared.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { palette } from '../components/chart';
import { ServiceOptions } from '../components/options';
import { Badge, Card, PageHeader } from '../components/page';
import { Empty, ErrorBox, Loading } from '../components/states';
import { Time } from '../components/time';
import { useApi } from '../lib/fetch';
import { fmtBytes, fmtMs, fmtNum } from '../lib/format';
import { useParams, useSetParams } from '../lib/params';
import { rangeParams, stepFor, useTimeRange } from '../lib/time';
import { MetricChart, type MetricLine } from './metrics/chart';
import './metrics.css';

interface MetricInfo {
  name: string;
  kind: string;
  unit: string | null;
  description: string | null;
  temporality: string | null;
  services: string[];
  points: number;
  series: number;
  last_time: string;
  attribute_keys?: string[];
}

interface MetricBucket {
  time: string;
  time_unix_nano: string;
  value?: number;
  avg?: number;
  min?: number;
  max?: number;
  count?: number;
  sum?: number;
  p50?: number;
  p90?: number;
  p95?: number;
  p99?: number;
}

interface MetricSeries {
  service_name: string;
  attributes: Record<string, unknown>;
  points: MetricBucket[];
}

interface MetricData {
  name: string;
  kind: string;
  unit: string | null;
  step_ms: number;
  series: MetricSeries[];
}

type Agg = 'rate' | 'increase' | 'last' | 'avg' | 'min' | 'max' | 'percentiles' | 'p50' | 'p90' | 'p95' | 'p99' | 'count';

const PERCENTILES = ['p50', 'p90', 'p95', 'p99'] as const;
type Percentile = (typeof PERCENTILES)[number];

const isDistribution = (kind: string) => kind === 'histogram' || kind === 'exponential_histogram' || kind === 'summary';

/** The aggregations that make sense for a kind of metric, first = default. */
function aggsFor(kind: string): { id: Agg; label: string }[] {
  if (kind === 'sum')
    return [
      { id: 'rate', label: 'Rate (per second)' },
      { id: 'increase', label: 'Increase per step' },
    ];
  if (kind === 'gauge')
    return [
      { id: 'last', label: 'Last value' },
      { id: 'avg', label: 'Average' },
      { id: 'min', label: 'Minimum' },
      { id: 'max', label: 'Maximum' },
    ];
  return [
    { id: 'percentiles', label: 'p50 / p90 / p95 / p99' },
    ...PERCENTILES.map((p) => ({ id: p as Agg, label: p })),
    { id: 'avg', label: 'Average' },
    { id: 'count', label: 'Count (per second)' },
  ];
}

/** The typical time between a series' points (ms), from the steps that
 *  hold points: the median gap, or null with too few points to tell. */
function exportInterval(d: MetricData): number | null {
  const gaps: number[] = [];
  for (const s of d.series)
    for (let i = 1; i < s.points.length; i++) gaps.push(Number(BigInt(s.points[i].time_unix_nano) - BigInt(s.points[i - 1].time_unix_nano)) / 1e6);
  if (gaps.length < 2) return null;
  gaps.sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)];
}

/** The smallest usual step (in the API's duration syntax) of at least `ms`. */
function stepAtLeast(ms: number): string {
  const steps = [10e3, 30e3, 60e3, 2 * 60e3, 5 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3];
  const s = steps.find((x) => x >= ms) ?? 86400e3;
  return s < 60e3 ? `${s / 1e3}s` : s < 3600e3 ? `${s / 60e3}m` : s < 86400e3 ? `${s / 3600e3}h` : '1d';
}

/** 30000 → `30s`, 300000 → `5m`, 3600000 → `1h`. */
function stepText(ms: number): string {
  if (ms % 3600e3 === 0) return `${ms / 3600e3}h`;
  if (ms % 60e3 === 0) return `${ms / 60e3}m`;
  return ms % 1000 === 0 ? `${ms / 1000}s` : fmtMs(ms);
}

/** `by` values: absent = one total line, `*` = every series as sent. */
const EVERY_SERIES = '*';
const BY_SERVICE = 'service.name';

function attrText(v: unknown): string {
  return v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function seriesLabel(s: MetricSeries, multiService: boolean): string {
  const attrs = Object.entries(s.attributes ?? {}).map(([k, v]) => `${k}=${attrText(v)}`);
  const parts = multiService || attrs.length === 0 ? [s.service_name, ...attrs] : attrs;
  return parts.join(', ');
}

/** A display formatter for the metric's unit (UCUM as OTel sends it). */
function unitFormatter(unit: string | null, perSecond: boolean): (v: number) => string {
  const u = (unit ?? '').trim();
  const suffix = perSecond ? '/s' : '';
  if (!perSecond && u === 'ms') return fmtMs;
  if (!perSecond && u === 's') return (v) => fmtMs(v * 1000);
  if (!perSecond && u === 'us') return (v) => fmtMs(v / 1000);
  if (!perSecond && u === 'ns') return (v) => fmtMs(v / 1e6);
  if (u === 'By') return (v) => `${fmtBytes(v)}${suffix}`;
  const shown = u.replace(/^\{(.*)\}$/, '$1');
  const num = (v: number) => (Math.abs(v) >= 10000 ? fmtNum(v, true) : Math.abs(v) >= 100 ? fmtNum(Math.round(v)) : fmtNum(+v.toPrecision(3)));
  if (u === '1' || u === '') return (v) => `${num(v)}${suffix}`;
  if (u === '%') return (v) => `${num(v)}%${suffix}`;
  return (v) => `${num(v)} ${shown}${suffix}`;
}

interface Line {
  label: string;
  values: (number | null)[];
  dash?: boolean;
}

/** One statistic of a series over the step grid `times` (epoch ms); null
 *  where the series has no point. Groups are merged by the API (histogram
 *  buckets are added before percentiles are taken), so this never has to
 *  combine percentiles. */
function valuesOf(s: MetricSeries, times: number[], kind: string, stat: Agg, stepSec: number): (number | null)[] {
  const byTime = new Map(s.points.map((p) => [Number(BigInt(p.time_unix_nano) / 1000000n), p]));
  return times.map((t) => {
    const p = byTime.get(t);
    if (!p) return null;
    let v: number | undefined;
    if (kind === 'sum') v = p.value === undefined ? undefined : stat === 'rate' ? p.value / stepSec : p.value;
    else if (kind === 'gauge') v = stat === 'avg' ? p.avg : stat === 'min' ? p.min : stat === 'max' ? p.max : p.value;
    else if (stat === 'count') v = p.count === undefined ? undefined : p.count / stepSec;
    else if (stat === 'avg') v = p.avg;
    else v = p[stat as Percentile];
    return v ?? null;
  });
}

export function Metrics() {
  const params = useParams();
  const setParams = useSetParams();
  const list = useApi<MetricInfo[]>('/metrics');
  const name = params.get('metric') ?? '';
  const filter = params.get('q') ?? '';

  const metrics = list.data ?? [];
  const shown = metrics.filter((m) => {
    const f = filter.trim().toLowerCase();
    return !f || m.name.toLowerCase().includes(f) || (m.description ?? '').toLowerCase().includes(f) || m.services.some((s) => s.toLowerCase().includes(f));
  });
  const info = metrics.find((m) => m.name === name);

  return (
    <div class="metrics-page">
      <PageHeader title="Metrics" subtitle={list.data ? `${fmtNum(metrics.length)} metrics received` : undefined} />
      {list.error && !list.data ? (
        <ErrorBox error={list.error} title="Could not list the metrics" />
      ) : !list.data ? (
        <Loading />
      ) : metrics.length === 0 ? (
        <div class="card">
          <Empty title="No metrics received yet">Counters, gauges and histograms from an OpenTelemetry SDK appear here.</Empty>
        </div>
      ) : (
        <div class="metrics-layout">
          <aside class="card flush metrics-picker" aria-label="Metrics">
            <div class="metrics-search">
              <input
                type="search"
                data-search
                placeholder="Find a metric…  ( / )"
                aria-label="Find a metric"
                value={filter}
                onInput={(e) => setParams({ q: (e.target as HTMLInputElement).value }, { replace: true })}
              />
            </div>
            <ul class="metrics-list">
              {shown.map((m) => (
                <li key={`${m.name}/${m.kind}`}>
                  <button
                    class={`metrics-item${m.name === name ? ' active' : ''}`}
                    aria-current={m.name === name ? 'true' : undefined}
                    data-metric={m.name}
                    onClick={() => setParams({ metric: m.name, agg: null, by: null, service: null })}
                  >
                    <span class="metrics-item-name ellipsis" title={m.name}>
                      {m.name}
                    </span>
                    <span class="metrics-item-meta">
                      <Badge tone={m.kind === 'sum' ? 'info' : m.kind === 'gauge' ? 'good' : 'accent'}>{m.kind.replace('exponential_histogram', 'exp. histogram')}</Badge>
                      {m.unit && <span class="faint mono">{m.unit}</span>}
                      <span class="faint ellipsis">{m.services.join(', ')}</span>
                    </span>
                  </button>
                </li>
              ))}
              {shown.length === 0 && <li class="faint metrics-none">No metric matches “{filter}”.</li>}
            </ul>
          </aside>
          <div class="metrics-main">{info ? <MetricView info={info} /> : <div class="card"><Empty title="Pick a metric" hint={false}>Choose a metric on the left to chart it over the selected time range.</Empty></div>}</div>
        </div>
      )}
    </div>
  );
}

function MetricView({ info }: { info: MetricInfo }) {
  const params = useParams();
  const setParams = useSetParams();
  const range = useTimeRange();
  const step = stepFor(range);
  const service = params.get('service') ?? '';
  const by = params.get('by') ?? '';
  const aggs = aggsFor(info.kind);
  const aggParam = params.get('agg') as Agg | null;
  const agg: Agg = aggs.some((a) => a.id === aggParam) ? aggParam! : aggs[0].id;
  // A step finer than the SDK's export interval leaves most steps empty;
  // once the data shows the interval, ask again with a step that fits it.
  const [coarse, setCoarse] = useState<{ key: string; step: string } | null>(null);
  const coarseKey = `${info.name}|${range.from}|${range.to}|${service}`;
  const reqStep = coarse && coarse.key === coarseKey ? coarse.step : step;
  // `group_by=` (empty) asks the API for one merged series, so the query
  // string is built here: the shared helpers drop empty parameters.
  const query = new URLSearchParams({ ...rangeParams(range), step: reqStep });
  if (service) query.set('service', service);
  if (by !== EVERY_SERIES) query.set('group_by', by);
  const data = useApi<MetricData>(`/metrics/${encodeURIComponent(info.name)}?${query}`);

  const d = data.data && data.data.name === info.name && !data.loading ? data.data : undefined;
  useEffect(() => {
    if (!d) return;
    const interval = exportInterval(d);
    if (interval !== null && interval > d.step_ms * 1.5) {
      const wider = stepAtLeast(interval);
      if (wider !== reqStep) setCoarse({ key: coarseKey, step: wider });
    }
  }, [d]);
  const keys = info.attribute_keys ?? [];

  const distribution = isDistribution(info.kind);
  // Several percentile lines per group would be unreadable: grouped, a
  // histogram shows one statistic (p95 unless another is chosen).
  const stat: Agg = distribution && by && agg === 'percentiles' ? 'p95' : agg;
  const perSecond = stat === 'rate' || stat === 'count';
  const fmt = unitFormatter(info.unit, perSecond);

  const chart = useMemo(() => {
    if (!d) return null;
    const stepMs = d.step_ms || 1000;
    const first = Math.floor(range.startMs / stepMs) * stepMs;
    const times: number[] = [];
    for (let t = first; t < range.endMs; t += stepMs) times.push(t);
    const multiService = new Set(d.series.map((s) => s.service_name)).size > 1;
    const labelOf = (s: MetricSeries) =>
      by === EVERY_SERIES ? seriesLabel(s, multiService) : by === BY_SERVICE ? s.service_name || '(no service)' : `${by}=${attrText(s.attributes?.[by]) || '(none)'}`;
    const lines: Line[] = [];
    const stepSec = stepMs / 1000;
    const ordered = [...d.series].sort((a, b) => labelOf(a).localeCompare(labelOf(b)));
    for (const s of ordered) {
      if (!by && stat === 'percentiles') {
        for (const p of PERCENTILES) lines.push({ label: p, values: valuesOf(s, times, info.kind, p, stepSec), dash: p === 'p50' });
      } else {
        lines.push({ label: !by ? aggs.find((a) => a.id === stat)?.label ?? stat : labelOf(s), values: valuesOf(s, times, info.kind, stat, stepSec) });
      }
    }
    return { x: times.map((t) => t / 1000), lines };
  }, [d, by, stat, range.startMs, range.endMs]);

  const series: MetricLine[] = useMemo(() => (chart ? chart.lines.map((l, i) => ({ label: l.label, values: l.values, color: palette(i), dash: l.dash })) : []), [chart]);

  return (
    <div class="stack">
      <Card>
        <div class="metrics-head">
          <div class="metrics-title">
            <h2 class="mono">{info.name}</h2>
            <div class="row-wrap muted">
              <Badge tone={info.kind === 'sum' ? 'info' : info.kind === 'gauge' ? 'good' : 'accent'}>{info.kind}</Badge>
              {info.unit && <span>unit <span class="mono">{info.unit}</span></span>}
              {info.temporality && <span>{info.temporality}</span>}
              <span>
                {fmtNum(info.series)} series · last point <Time t={info.last_time} mode="ago" />
              </span>
            </div>
            {info.description && <div class="metrics-desc">{info.description}</div>}
          </div>
        </div>
        <div class="filters metrics-controls">
          <label class="field">
            Aggregation
            <select aria-label="Aggregation" value={stat} onChange={(e) => setParams({ agg: (e.target as HTMLSelectElement).value === aggs[0].id ? null : (e.target as HTMLSelectElement).value })}>
              {aggs.filter((a) => !(by && a.id === 'percentiles')).map((a) => (
                <option key={a.id} value={a.id}>
                  {a.label}
                </option>
              ))}
            </select>
          </label>
          <label class="field">
            Group by
            <select aria-label="Group by" value={by} onChange={(e) => setParams({ by: (e.target as HTMLSelectElement).value || null })}>
              <option value="">Nothing (one total)</option>
              <option value={BY_SERVICE}>service.name</option>
              {keys.map((k) => (
                <option key={k} value={k}>
                  {k}
                </option>
              ))}
              <option value={EVERY_SERIES}>Every series</option>
            </select>
          </label>
          {info.services.length > 1 && (
            <label class="field">
              Service
              <select aria-label="Service" value={service} onChange={(e) => setParams({ service: (e.target as HTMLSelectElement).value || null })}>
                <ServiceOptions names={info.services} />
              </select>
            </label>
          )}
          <div class="grow" />
          <span class="faint metrics-step">step {d ? stepText(d.step_ms) : reqStep}</span>
        </div>
        {data.error && !d ? (
          <ErrorBox error={data.error} title="Could not load the series" />
        ) : !d || !chart ? (
          <Loading />
        ) : d.series.length === 0 ? (
          <Empty title="No points in this time range" hint={false}>
            The last point of {info.name} arrived <Time t={info.last_time} />. Pick a wider range above.
          </Empty>
        ) : (
          <MetricChart x={chart.x} lines={series} fmt={fmt} joinGaps={info.kind === 'gauge' || (distribution && stat !== 'count')} ariaLabel={`${info.name} over time`} />
        )}
      </Card>
      {chart && d && d.series.length > 0 && <Legend lines={chart.lines} fmt={fmt} what={by ? aggs.find((a) => a.id === stat)?.label ?? stat : undefined} />}
    </div>
  );
}

function Legend({ lines, fmt, what }: { lines: Line[]; fmt: (v: number) => string; what?: string }) {
  const stats = (vs: (number | null)[]) => {
    const nums = vs.filter((v): v is number => v !== null && Number.isFinite(v));
    if (nums.length === 0) return null;
    return { last: nums[nums.length - 1], avg: nums.reduce((a, b) => a + b, 0) / nums.length, min: Math.min(...nums), max: Math.max(...nums) };
  };
  const cell = (v: number | undefined) => <td class="num">{v === undefined ? '–' : fmt(v)}</td>;
  return (
    <Card
      class="flush"
      title={
        <>
          Series <span class="muted metrics-count">{lines.length}</span>
          {what && <span class="muted metrics-count">· {what}</span>}
        </>
      }
    >
      <div class="table-wrap metrics-legend-wrap">
        <table class="table metrics-legend">
          <thead>
            <tr>
              <th>Series</th>
              <th class="num">Last</th>
              <th class="num">Mean</th>
              <th class="num">Min</th>
              <th class="num">Max</th>
            </tr>
          </thead>
          <tbody>
            {lines.map((l, i) => {
              const s = stats(l.values);
              return (
                <tr key={l.label} data-series={l.label}>
                  <td>
                    <span class="row">
                      <span class="dot" style={{ background: palette(i) }} aria-hidden="true" />
                      <span class="mono metrics-series-label">{l.label}</span>
                    </span>
                  </td>
                  {cell(s?.last)}
                  {cell(s?.avg)}
                  {cell(s?.min)}
                  {cell(s?.max)}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </Card>
  );
}
