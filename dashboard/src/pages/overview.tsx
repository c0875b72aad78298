// The landing page: how every service is doing in the selected time range
// (throughput, errors, latency, each with its trend), what LLM calls cost,
// which error groups are open, and how much the database holds. With no
// telemetry at all, telling the user how to send some is the whole page.
import { Link, useLocation } from 'wouter-preact';
import { Card, PageHeader, Stat, Badge } from '../components/page';
import { Sparkline } from '../components/sparkline';
import { Empty, ErrorBox, Loading } from '../components/states';
import { Time } from '../components/time';
import { useApi } from '../lib/fetch';
import { colorFor, fmtBytes, fmtCost, fmtMs, fmtNum, fmtPct, plural } from '../lib/format';
import { withRange } from '../lib/params';
import { rangeParams, stepFor, useTimeRange, type TimeRange } from '../lib/time';
import type { ErrorGroupRow, GenAiStats, Page } from '../lib/types';
import './overview.css';

interface ServiceBucket {
  time: string;
  span_count: number;
  error_count: number;
  p95_ms: number | null;
}

interface ServiceSummary {
  name: string;
  versions: string[];
  environments: string[];
  span_count: number;
  error_count: number;
  error_rate: number;
  spans_per_minute: number;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  last_seen: string | null;
  series?: ServiceBucket[];
}

interface StorageOverview {
  file_bytes: number | null;
  wal_bytes: number | null;
  tables: { table: string; rows: number; oldest: string | null; newest: string | null }[];
  queue: { rows: number; capacity: number };
  refused_exports: number;
  retention?: { hours: number; max_db_size_mb: number };
}

interface SloStatus {
  name: string;
  service: string;
  objective: number;
  firing: string[];
  budget: { window: string; remaining: number; total: number };
}

/** Error groups read for the per-service counts; more shows as "N+". */
const ERROR_PAGE = 500;

/** Spans per second; below one every ten seconds, per minute reads better. */
function fmtRate(perSec: number): string {
  if (perSec === 0) return '0/s';
  if (perSec >= 100) return `${fmtNum(Math.round(perSec), true)}/s`;
  if (perSec >= 1) return `${perSec.toFixed(1)}/s`;
  if (perSec >= 0.1) return `${perSec.toFixed(2)}/s`;
  const perMin = perSec * 60;
  return `${perMin >= 1 ? perMin.toFixed(1) : perMin.toPrecision(1)}/min`;
}

function retentionText(r: StorageOverview['retention']): string {
  if (!r) return '';
  const parts: string[] = [];
  if (r.hours > 0) parts.push(r.hours % 24 === 0 ? `${r.hours / 24} d` : `${r.hours} h`);
  if (r.max_db_size_mb > 0) parts.push(`≤ ${fmtBytes(r.max_db_size_mb * 1024 * 1024)}`);
  return parts.length ? `kept ${parts.join(', ')}` : 'kept forever';
}

/** A sparse per-step series (only steps with data, as /genai/stats gives it)
 *  on the services' dense step grid, zeros where it has no step. */
function alignToSteps<T extends { time: string }>(services: ServiceSummary[], sparse: T[], value: (b: T) => number): number[] {
  const grid = services.find((s) => s.series?.length)?.series ?? [];
  const byTime = new Map(sparse.map((b) => [Date.parse(b.time), value(b)]));
  return grid.map((b) => byTime.get(Date.parse(b.time)) ?? 0);
}

/** Per-step totals over all services (their steps line up: same window and step). */
function totalsPerStep(services: ServiceSummary[]) {
  const n = Math.max(0, ...services.map((s) => s.series?.length ?? 0));
  const spans = new Array<number>(n).fill(0);
  const errors = new Array<number>(n).fill(0);
  const worstP95 = new Array<number | null>(n).fill(null);
  for (const s of services)
    s.series?.forEach((b, i) => {
      spans[i] += b.span_count;
      errors[i] += b.error_count;
      if (b.p95_ms !== null) worstP95[i] = Math.max(worstP95[i] ?? 0, b.p95_ms);
    });
  return { spans, errors, worstP95, errorRate: spans.map((c, i) => (c ? errors[i] / c : 0)) };
}

export function Overview() {
  const range = useTimeRange();
  const step = stepFor(range, 40);
  const window = rangeParams(range);
  const services = useApi<ServiceSummary[]>('/services', { ...window, step });
  const storage = useApi<StorageOverview>('/storage');
  const genai = useApi<GenAiStats>('/genai/stats', { ...window, step });
  const errors = useApi<Page<ErrorGroupRow>>('/errors', { status: 'unresolved', sort: 'last_seen', limit: ERROR_PAGE });
  const slos = useApi<SloStatus[]>('/slo');

  const header = <PageHeader title="Overview" subtitle={`All services · ${range.label}`} />;

  if (services.error && !services.data) {
    return (
      <>
        {header}
        <ErrorBox error={services.error} title="Could not load the services" />
      </>
    );
  }
  if (!services.data || !storage.data) {
    if (storage.error) return (<>{header}<ErrorBox error={storage.error} title="Could not read the storage figures" /></>);
    return (<>{header}<Loading /></>);
  }

  const nothingStored = storage.data.tables.every((t) => t.rows === 0);
  if (nothingStored) {
    return (
      <>
        {header}
        <div class="card overview-hero">
          <Empty title="No telemetry yet">
            qyl is running and waiting for data. Traces, logs and metrics from any OpenTelemetry SDK or Collector show up here within a second.
          </Empty>
        </div>
      </>
    );
  }

  const list = services.data;
  const openErrors = errors.data?.items ?? [];
  const errorsByService = new Map<string, number>();
  for (const g of openErrors) for (const s of g.services) errorsByService.set(s, (errorsByService.get(s) ?? 0) + 1);
  const moreErrors = !!errors.data?.next_cursor;

  return (
    <div class="overview">
      {header}
      <StatTiles range={range} services={list} storage={storage.data} genai={genai.data} errors={errors.data ? openErrors : undefined} moreErrors={moreErrors} />
      <Card
        class="flush"
        title={
          <>
            Services <span class="muted overview-count">{list.length}</span>
          </>
        }
        actions={<Link href={withRange('/traces')}>All traces →</Link>}
      >
        {list.length === 0 ? (
          <Empty title="No spans in this time range" hint={false}>
            Data is stored, but no span started in {range.label.toLowerCase()}. Pick a wider range above.
          </Empty>
        ) : (
          <ServicesTable services={list} range={range} errorsByService={errorsByService} moreErrors={moreErrors} />
        )}
      </Card>
      <div class="grid-2 overview-lower">
        <TopErrors result={errors} />
        <GenAiCard stats={genai.data} error={genai.error} />
      </div>
      {slos.data && slos.data.length > 0 && <SloCard slos={slos.data} />}
    </div>
  );
}

function StatTiles({ range, services, storage, genai, errors, moreErrors }: { range: TimeRange; services: ServiceSummary[]; storage: StorageOverview; genai?: GenAiStats; errors?: ErrorGroupRow[]; moreErrors: boolean }) {
  const seconds = Math.max(1, (range.endMs - range.startMs) / 1000);
  const spans = services.reduce((a, s) => a + s.span_count, 0);
  const errs = services.reduce((a, s) => a + s.error_count, 0);
  const steps = totalsPerStep(services);
  const slowest = services.reduce<ServiceSummary | null>((w, s) => (s.p95_ms !== null && (w === null || (w.p95_ms ?? 0) < s.p95_ms) ? s : w), null);
  const rate = spans ? errs / spans : 0;
  const g = genai?.totals;
  const tokens = g ? g.input_tokens + g.output_tokens : 0;
  const newGroups = errors?.filter((e) => e.substatus === 'new' || e.substatus === 'regressed').length ?? 0;
  const bytes = storage.file_bytes === null ? null : (storage.file_bytes ?? 0) + (storage.wal_bytes ?? 0);
  const oldest = storage.tables.map((t) => t.oldest).filter((t): t is string => !!t).sort()[0];
  const spark = (values: (number | null)[], color: string, label: string) => <Sparkline values={values} width={150} height={26} color={color} label={label} />;
  return (
    <div class="overview-tiles">
      <Stat label="Throughput" value={fmtRate(spans / seconds)} sub={<>{spark(steps.spans, 'var(--accent)', 'spans per step')}<span>{fmtNum(spans)} spans</span></>} href={withRange('/traces')} />
      <Stat
        label="Error rate"
        value={fmtPct(rate)}
        tone={rate > 0.05 ? 'bad' : rate > 0 ? 'warn' : undefined}
        sub={<>{spark(steps.errorRate, 'var(--bad)', 'error rate per step')}<span>{fmtNum(errs)} failed spans</span></>}
        href={withRange('/traces', { status: 'error' })}
      />
      <Stat
        label="p95 latency"
        value={fmtMs(slowest?.p95_ms)}
        sub={<>{spark(steps.worstP95, 'var(--info)', 'slowest service p95 per step')}<span class="ellipsis">{slowest ? `slowest service: ${slowest.name}` : 'no spans'}</span></>}
      />
      <Stat
        label="GenAI spend"
        value={g ? fmtCost(g.cost_usd) : '–'}
        sub={
          g ? (
            <>
              {spark(alignToSteps(services, genai!.over_time, (b) => b.cost_usd ?? 0), 'var(--good)', 'spend per step')}
              <span>
                {fmtNum(tokens, true)} tokens · {plural(g.requests, 'call')}
                {g.requests_without_cost ? ` · ${g.requests_without_cost} unpriced` : ''}
              </span>
            </>
          ) : (
            'loading…'
          )
        }
        href={withRange('/genai')}
      />
      <Stat
        label="Open error groups"
        value={errors ? `${fmtNum(errors.length)}${moreErrors ? '+' : ''}` : '–'}
        tone={errors && errors.length > 0 ? 'bad' : undefined}
        sub={errors ? (newGroups ? `${newGroups} new or regressed` : errors.length ? 'none new' : 'all clear') : 'loading…'}
        href={withRange('/errors', { status: 'unresolved' })}
      />
      <Stat
        label="Storage"
        value={fmtBytes(bytes)}
        sub={
          <>
            <span>{retentionText(storage.retention)}</span>
            {oldest && (
              <span>
                oldest data <Time t={oldest} mode="ago" />
              </span>
            )}
          </>
        }
        tone={storage.refused_exports > 0 ? 'warn' : undefined}
        href={withRange('/sql')}
      />
    </div>
  );
}

function ServicesTable({ services, range, errorsByService, moreErrors }: { services: ServiceSummary[]; range: TimeRange; errorsByService: Map<string, number>; moreErrors: boolean }) {
  const [, navigate] = useLocation();
  const seconds = Math.max(1, (range.endMs - range.startMs) / 1000);
  const sorted = [...services].sort((a, b) => b.span_count - a.span_count || a.name.localeCompare(b.name));
  return (
    <div class="table-wrap">
      <table class="table overview-services">
        <thead>
          <tr>
            <th>Service</th>
            <th class="num">Spans</th>
            <th class="num">Throughput</th>
            <th class="num">Error rate</th>
            <th class="num">p50</th>
            <th class="num">p95</th>
            <th class="num">Open errors</th>
            <th class="num">Last span</th>
          </tr>
        </thead>
        <tbody>
          {sorted.map((s) => {
            const href = withRange('/traces', { service: s.name });
            const steps = s.series ?? [];
            const errs = errorsByService.get(s.name) ?? 0;
            return (
              <tr key={s.name} class="clickable" data-service={s.name} onClick={(e) => !(e.target as HTMLElement).closest('a') && navigate(href)}>
                <td>
                  <div class="row overview-service">
                    <span class="dot" style={{ background: colorFor(s.name) }} aria-hidden="true" />
                    <Link href={href} class="overview-service-name">
                      {s.name}
                    </Link>
                    {s.versions.slice(-1).map((v) => (
                      <Badge key={v} title={s.versions.join(', ')}>
                        {v}
                      </Badge>
                    ))}
                    {s.environments.slice(0, 1).map((env) => (
                      <Badge key={env} tone="info">
                        {env}
                      </Badge>
                    ))}
                  </div>
                </td>
                <td class="num">{fmtNum(s.span_count)}</td>
                <td class="num">
                  <div class="overview-cell">
                    <Sparkline values={steps.map((b) => b.span_count)} width={90} height={22} color={colorFor(s.name)} label={`${s.name} spans per step`} />
                    <span>{fmtRate(s.span_count / seconds)}</span>
                  </div>
                </td>
                <td class={`num${s.error_rate > 0.05 ? ' tone-bad' : s.error_rate > 0 ? ' tone-warn' : ''}`}>
                  <div class="overview-cell">
                    <Sparkline values={steps.map((b) => (b.span_count ? b.error_count / b.span_count : 0))} width={90} height={22} color="var(--bad)" label={`${s.name} error rate per step`} />
                    <span class="overview-error-rate">{fmtPct(s.error_rate)}</span>
                  </div>
                </td>
                <td class="num">{fmtMs(s.p50_ms)}</td>
                <td class="num">
                  <div class="overview-cell">
                    <Sparkline values={steps.map((b) => b.p95_ms)} width={90} height={22} color="var(--info)" label={`${s.name} p95 per step`} />
                    <span>{fmtMs(s.p95_ms)}</span>
                  </div>
                </td>
                <td class="num">
                  {errs > 0 ? (
                    <Link href={withRange('/errors', { service: s.name, status: 'unresolved' })} class="tone-bad">
                      {errs}
                      {moreErrors ? '+' : ''}
                    </Link>
                  ) : (
                    <span class="faint">0</span>
                  )}
                </td>
                <td class="num muted">
                  <Time t={s.last_seen} mode="ago" />
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function TopErrors({ result }: { result: { data?: { items: ErrorGroupRow[] }; error?: unknown } }) {
  const items = result.data?.items ?? [];
  return (
    <Card class="flush" title="Open error groups" actions={<Link href={withRange('/errors', { status: 'unresolved' })}>All errors →</Link>}>
      {result.error && !result.data ? (
        <div class="overview-pad">
          <ErrorBox error={result.error} />
        </div>
      ) : !result.data ? (
        <Loading />
      ) : items.length === 0 ? (
        <Empty title="No open error groups" hint={false} />
      ) : (
        <table class="table">
          <tbody>
            {[...items]
              .sort((a, b) => b.count - a.count)
              .slice(0, 6)
              .map((g) => (
                <tr key={g.id}>
                  <td class="overview-error">
                    <Link href={withRange(`/errors/${g.id}`)} class="ellipsis overview-error-title">
                      <strong>{g.error_type ?? g.category}</strong> <span class="muted">{g.message_template ?? ''}</span>
                    </Link>
                    <div class="faint ellipsis">
                      {g.services.join(', ')}
                      {g.culprit ? ` · ${g.culprit}` : ''}
                    </div>
                  </td>
                  <td>{g.substatus && g.substatus !== 'ongoing' && <Badge tone={g.substatus === 'new' ? 'info' : 'bad'}>{g.substatus}</Badge>}</td>
                  <td class="num">{fmtNum(g.count)}×</td>
                  <td class="num muted">
                    <Time t={g.last_seen} mode="ago" />
                  </td>
                </tr>
              ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}

function GenAiCard({ stats, error }: { stats?: GenAiStats; error?: unknown }) {
  return (
    <Card class="flush" title="GenAI by model" actions={<Link href={withRange('/genai')}>GenAI →</Link>}>
      {error && !stats ? (
        <div class="overview-pad">
          <ErrorBox error={error} />
        </div>
      ) : !stats ? (
        <Loading />
      ) : stats.by_model.length === 0 ? (
        <Empty title="No LLM calls in this time range" hint={false} />
      ) : (
        <table class="table">
          <thead>
            <tr>
              <th>Model</th>
              <th class="num">Calls</th>
              <th class="num">Errors</th>
              <th class="num">Tokens in / out</th>
              <th class="num">Cost</th>
            </tr>
          </thead>
          <tbody>
            {[...stats.by_model]
              .sort((a, b) => (b.cost_usd ?? 0) - (a.cost_usd ?? 0) || b.requests - a.requests)
              .slice(0, 6)
              .map((m) => (
                <tr key={`${m.provider}/${m.model}`}>
                  <td>
                    <Link href={withRange('/genai', { model: m.model ?? undefined })}>{m.model ?? 'unknown model'}</Link> <span class="faint">{m.provider}</span>
                  </td>
                  <td class="num">{fmtNum(m.requests)}</td>
                  <td class={`num${m.errors ? ' tone-bad' : ''}`}>{fmtNum(m.errors)}</td>
                  <td class="num">
                    {fmtNum(m.input_tokens, true)} / {fmtNum(m.output_tokens, true)}
                  </td>
                  <td class="num" title={m.requests_without_cost ? `${m.requests_without_cost} calls without a price are not counted` : undefined}>
                    {fmtCost(m.cost_usd)}
                    {m.requests_without_cost ? '*' : ''}
                  </td>
                </tr>
              ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}

function SloCard({ slos }: { slos: SloStatus[] }) {
  return (
    <Card class="flush overview-slos" title="Service level objectives" actions={<Link href={withRange('/slo')}>SLOs →</Link>}>
      <table class="table">
        <thead>
          <tr>
            <th>SLO</th>
            <th>Service</th>
            <th class="num">Objective</th>
            <th class="num">Budget left</th>
            <th>Alerts</th>
          </tr>
        </thead>
        <tbody>
          {slos.map((s) => (
            <tr key={s.name}>
              <td>{s.name}</td>
              <td>{s.service}</td>
              <td class="num">{fmtPct(s.objective, s.objective >= 0.999 ? 2 : 1)}</td>
              <td class={`num${s.budget.remaining < 0 ? ' tone-bad' : s.budget.remaining < 0.25 ? ' tone-warn' : ''}`}>
                {s.budget.total ? fmtPct(s.budget.remaining, 0) : '–'} <span class="faint">/ {s.budget.window}</span>
              </td>
              <td>{s.firing.length ? s.firing.map((f) => <Badge key={f} tone={f === 'page' ? 'bad' : 'warn'}>{f}</Badge>) : <span class="faint">none firing</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Card>
  );
}
