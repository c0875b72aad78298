// The GenAI page: what the application's LLM calls cost and how they behave
// (requests, errors, tokens, cost, latency), per model and over time, and
// the calls themselves — the first screen for users coming from Langfuse or
// Helicone. Filters (service, provider, model) live in the URL.
import { useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { Badge, Card, PageHeader, Stat } from '../components/page';
import { Empty, ErrorBox, Loading } from '../components/states';
import { Time } from '../components/time';
import { useApi } from '../lib/fetch';
import { colorFor, fmtCost, fmtMs, fmtNum, fmtPct, plural } from '../lib/format';
import { useParams, useSetParams, withRange } from '../lib/params';
import { rangeParams, stepFor, toMs, useTimeRange } from '../lib/time';
import type { GenAiStats, Page } from '../lib/types';
import { CostText } from './genai/cost';
import { StackedBars, type StackSeries } from './genai/stacked';
import { callModel, errorTypeLabel, type GenAiCall, type GenAiModels, type Pricing } from './genai/types';
import './genai.css';

/** Models drawn on their own in the charts; the rest are summed as "other". */
const CHART_MODELS = 8;
const NO_MODEL = '(no model)';

const modelLabel = (m: string | null) => m ?? NO_MODEL;

/** A bucket width in words: `1 min`, `30 s`, `6 h`. */
const stepLabel = (ms: number) => (ms % 86400e3 === 0 ? `${ms / 86400e3} d` : ms % 3600e3 === 0 ? `${ms / 3600e3} h` : ms % 60e3 === 0 ? `${ms / 60e3} min` : `${Math.round(ms / 1000)} s`);

function Filters({ services, providers, models }: { services: string[]; providers: string[]; models: string[] }) {
  const p = useParams();
  const set = useSetParams();
  const model = p.get('model') ?? '';
  const select = (key: string, label: string, options: string[]) => {
    const cur = p.get(key) ?? '';
    const all = cur && !options.includes(cur) ? [cur, ...options] : options;
    return (
      <label class="field">
        {label}
        <select value={cur} onChange={(e) => set({ [key]: (e.target as HTMLSelectElement).value })}>
          <option value="">All</option>
          {all.map((o) => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
        </select>
      </label>
    );
  };
  return (
    <form
      class="filters"
      onSubmit={(e) => {
        e.preventDefault();
        set({ model: model.trim() });
      }}
    >
      {select('service', 'Service', services)}
      {select('provider', 'Provider', providers)}
      <label class="field">
        Model
        <input
          data-search
          list="genai-models"
          placeholder="Any model ( / )"
          value={model}
          onInput={(e) => {
            set({ model: (e.target as HTMLInputElement).value.trim() }, { replace: true });
          }}
        />
        <datalist id="genai-models">
          {models.map((m) => (
            <option key={m} value={m} />
          ))}
        </datalist>
      </label>
      {p.get('session_id') && (
        <span class="genai-chip">
          session <span class="mono">{p.get('session_id')}</span>
          <button type="button" class="linklike" aria-label="Remove the session filter" onClick={() => set({ session_id: null })}>
            ✕
          </button>
        </span>
      )}
      {(p.get('service') || p.get('provider') || p.get('model') || p.get('session_id')) && (
        <button
          type="button"
          class="btn"
          onClick={() => set({ service: null, provider: null, model: null, session_id: null })}
        >
          Clear filters
        </button>
      )}
    </form>
  );
}

function Tiles({ stats }: { stats: GenAiStats }) {
  const t = stats.totals;
  const models = stats.by_model.filter((m) => m.model).length;
  return (
    <div class="genai-tiles">
      <Stat label="Requests" value={fmtNum(t.requests, true)} sub={`${models} model${models === 1 ? '' : 's'}`} />
      <Stat label="Errors" value={fmtNum(t.errors)} tone={t.errors > 0 ? 'bad' : undefined} sub={`${fmtPct(t.requests ? t.errors / t.requests : 0)} error rate`} />
      <Stat label="Input tokens" value={fmtNum(t.input_tokens, true)} sub={`cache read ${fmtNum(t.cache_read_tokens, true)} · write ${fmtNum(t.cache_write_tokens, true)}`} />
      <Stat label="Output tokens" value={fmtNum(t.output_tokens, true)} sub={t.reasoning_tokens ? `${fmtNum(t.reasoning_tokens, true)} reasoning` : 'no reasoning tokens'} />
      <Stat
        label="Cost"
        value={<CostText cost={t.cost_usd} unpriced={t.requests_without_cost} requests={t.requests} />}
        sub={t.requests_without_cost > 0 ? <span class="tone-warn">{plural(t.requests_without_cost, 'call')} unpriced</span> : 'every call priced'}
      />
      <Stat label="Latency p95" value={fmtMs(t.latency_p95_ms)} sub={`p50 ${fmtMs(t.latency_p50_ms)} · p99 ${fmtMs(t.latency_p99_ms)}`} />
      <Stat label="Time to first chunk" value={fmtMs(t.time_to_first_chunk_p50_ms)} sub={t.time_to_first_chunk_p50_ms === null ? 'no streamed calls' : `p50 · p95 ${fmtMs(t.time_to_first_chunk_p95_ms)}`} />
    </div>
  );
}

/** Tokens and cost per model per bucket, every bucket of the window present. */
function Charts({ stats, startMs, endMs }: { stats: GenAiStats; startMs: number; endMs: number }) {
  const step = Math.max(stats.step_ms, 1000);
  const first = Math.floor(startMs / step) * step;
  const x: number[] = [];
  for (let t = first; t <= endMs && x.length < 2000; t += step) x.push(t);
  const index = new Map(x.map((t, i) => [t, i]));
  const ranked = stats.by_model.map((m) => modelLabel(m.model));
  const shown = new Set(ranked.slice(0, CHART_MODELS));
  const names = [...ranked.slice(0, CHART_MODELS), ...(ranked.length > CHART_MODELS ? ['other models'] : [])];
  const tokens = new Map(names.map((n) => [n, x.map(() => 0)]));
  const cost = new Map(names.map((n) => [n, x.map(() => 0)]));
  for (const b of stats.by_model_over_time) {
    const i = index.get(Math.floor(toMs(b.time_unix_nano) / step) * step);
    if (i === undefined) continue;
    const name = shown.has(modelLabel(b.model)) ? modelLabel(b.model) : 'other models';
    tokens.get(name)![i] += b.input_tokens + b.output_tokens;
    cost.get(name)![i] += b.cost_usd;
  }
  const series = (m: Map<string, number[]>): StackSeries[] => names.filter((n) => m.get(n)!.some((v) => v > 0)).map((n) => ({ label: n, color: colorFor(n), values: m.get(n)! }));
  const tokenSeries = series(tokens);
  const costSeries = series(cost);
  return (
    <div class="grid-2">
      <Card title="Tokens by model" actions={<span class="muted">input + output per {stepLabel(step)}</span>}>
        {tokenSeries.length ? <StackedBars x={x} series={tokenSeries} fmt={(v) => fmtNum(v, true)} ariaLabel="Tokens over time by model" /> : <div class="state">No tokens in this range</div>}
      </Card>
      <Card title="Cost by model" actions={<span class="muted">known prices, per {stepLabel(step)}</span>}>
        {costSeries.length ? <StackedBars x={x} series={costSeries} fmt={(v) => (v === 0 ? '$0' : fmtCost(v))} ariaLabel="Cost over time by model" /> : <div class="state">No priced calls in this range</div>}
      </Card>
    </div>
  );
}

function ModelTable({ models, onModel }: { models: GenAiModels; onModel: (m: string) => void }) {
  if (!models.models.length) return <div class="state">No model calls match these filters</div>;
  return (
    <div class="table-wrap">
      <table class="table genai-models">
        <thead>
          <tr>
            <th>Provider</th>
            <th>Model</th>
            <th class="num">Calls</th>
            <th class="num">Errors</th>
            <th class="num">p50</th>
            <th class="num">p95</th>
            <th class="num">p99</th>
            <th class="num">Input tok</th>
            <th class="num">Output tok</th>
            <th class="num">Tokens</th>
            <th class="num">Cost</th>
            <th>Errors &amp; finish reasons</th>
          </tr>
        </thead>
        <tbody>
          {models.models.map((m) => (
            <tr key={`${m.provider}/${m.model}`} data-model={m.model ?? ''}>
              <td class="muted">{m.provider ?? '–'}</td>
              <td>
                <span class="genai-model-cell">
                <span class="dot" style={{ background: colorFor(modelLabel(m.model)) }} />
                {m.model ? (
                  <button type="button" class="linklike mono" title="Show only this model" onClick={() => onModel(m.model!)}>
                    {m.model}
                  </button>
                ) : (
                  <span class="muted" title="Calls without a model: tool executions and the like">
                    {NO_MODEL}
                  </span>
                )}
                </span>
              </td>
              <td class="num" data-col="calls">{fmtNum(m.requests)}</td>
              <td class={`num${m.errors ? ' tone-bad' : ''}`}>{fmtNum(m.errors)}</td>
              <td class="num">{fmtMs(m.latency_p50_ms)}</td>
              <td class="num">{fmtMs(m.latency_p95_ms)}</td>
              <td class="num">{fmtMs(m.latency_p99_ms)}</td>
              <td class="num">{fmtNum(m.input_tokens)}</td>
              <td class="num">{fmtNum(m.output_tokens)}</td>
              <td class="num" data-col="tokens">{fmtNum(m.input_tokens + m.output_tokens)}</td>
              <td class="num">
                <CostText cost={m.cost_usd} unpriced={m.requests_without_cost} requests={m.requests} tokens={m.input_tokens + m.output_tokens} />
                {m.requests_without_cost > 0 && m.requests_without_cost < m.requests && <div class="faint">{m.requests_without_cost} unpriced</div>}
              </td>
              <td>
                <div class="row-wrap genai-badges">
                  {m.error_types.map((e) => (
                    <Badge key={`e${e.value}`} tone="bad" title={`error.type ${e.value}`}>
                      {errorTypeLabel(e.value)} ×{e.count}
                    </Badge>
                  ))}
                  {m.finish_reasons.map((f) => (
                    <Badge key={`f${f.value}`} tone={f.value === 'length' || f.value === 'content_filter' ? 'warn' : f.value === 'stop' ? 'good' : 'info'} title="finish reason">
                      {f.value} ×{f.count}
                    </Badge>
                  ))}
                </div>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function CallStatus({ c }: { c: GenAiCall }) {
  if (c.status_code === 'ERROR' || c.error_type)
    return (
      <Badge tone="bad" title={c.error_type ?? 'status ERROR'}>
        {c.error_type ? errorTypeLabel(c.error_type) : 'error'}
      </Badge>
    );
  const fr = c.finish_reasons ?? [];
  if (fr.length) return <Badge tone={fr.includes('length') || fr.includes('content_filter') ? 'warn' : 'good'}>{fr.join(', ')}</Badge>;
  return <Badge tone="good">ok</Badge>;
}

function CallsTable({ calls }: { calls: GenAiCall[] }) {
  // Many instrumentations put session.id on the request span only, not on
  // the call: the column is shown when some call names its session.
  const sessions = calls.some((c) => c.session_id);
  return (
    <div class="table-wrap">
      <table class="table genai-calls">
        <thead>
          <tr>
            <th>Time</th>
            <th>Call</th>
            <th>Service</th>
            <th>Model</th>
            <th class="num">Input</th>
            <th class="num">Output</th>
            <th class="num">Duration</th>
            <th class="num">Cost</th>
            <th>Status</th>
            {sessions && <th>Session</th>}
          </tr>
        </thead>
        <tbody>
          {calls.map((c) => (
            <tr key={c.span_id}>
              <td class="nowrap">
                <Time t={c.start_time_unix_nano} />
              </td>
              <td class="ellipsis genai-call-name">
                <Link href={withRange(`/traces/${c.trace_id}`, { span: c.span_id })} title="Open the trace">
                  {c.name}
                </Link>
              </td>
              <td class="ellipsis">{c.service_name}</td>
              <td class="mono ellipsis">{callModel(c) ?? (c.tool_name ? <span class="muted">tool {c.tool_name}</span> : '–')}</td>
              <td class="num">{fmtNum(c.input_tokens)}</td>
              <td class="num">{fmtNum(c.output_tokens)}</td>
              <td class="num">{fmtMs(c.duration_ms)}</td>
              <td class="num">{c.cost_source === 'missing' ? <span class="tone-warn" title="No price for this model">unpriced</span> : fmtCost(c.cost_usd)}</td>
              <td>
                <CallStatus c={c} />
              </td>
              {sessions && <td class="ellipsis mono genai-session-cell">{c.session_id ? <Link href={withRange(`/sessions/${encodeURIComponent(c.session_id)}`)}>{c.session_id}</Link> : <span class="faint">–</span>}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function RecentCalls({ filters }: { filters: Record<string, string | undefined> }) {
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const key = JSON.stringify(filters);
  const [lastKey, setLastKey] = useState(key);
  if (key !== lastKey) {
    setLastKey(key);
    setCursors([]);
  }
  const calls = useApi<Page<GenAiCall>>('/genai/spans', { ...filters, limit: 50, cursor });
  return (
    <Card
      title="Recent calls"
      class="flush"
      actions={
        <div class="row">
          {cursors.length > 0 && (
            <button class="btn btn-sm" onClick={() => setCursors([])}>
              Newest
            </button>
          )}
          {calls.data?.next_cursor && (
            <button class="btn btn-sm" onClick={() => setCursors([...cursors, calls.data!.next_cursor!])}>
              Older →
            </button>
          )}
        </div>
      }
    >
      {calls.error && !calls.data ? <ErrorBox error={calls.error} /> : !calls.data ? <Loading /> : calls.data.items.length === 0 ? <div class="state">No calls match these filters</div> : <CallsTable calls={calls.data.items} />}
    </Card>
  );
}

function Unpriced({ pricing }: { pricing: Pricing | undefined }) {
  const list = pricing?.unpriced_models ?? [];
  if (!list.length) return null;
  return (
    <div class="genai-unpriced" role="note">
      <strong>Models without a price:</strong>{' '}
      {list.map((m, i) => (
        <span key={`${m.provider}/${m.model}`}>
          {i > 0 && ', '}
          <code>{m.model ?? '?'}</code> <span class="muted">({plural(m.requests, 'call')})</span>
        </span>
      ))}
      . Their calls are counted apart, not as $0 — add them under <code>[genai]</code> in qyl.toml.
    </div>
  );
}

export function GenAi() {
  const range = useTimeRange();
  const p = useParams();
  const set = useSetParams();
  const filters = { ...rangeParams(range), service: p.get('service') ?? undefined, provider: p.get('provider') ?? undefined, model: p.get('model') ?? undefined, session_id: p.get('session_id') ?? undefined };
  const stats = useApi<GenAiStats>('/genai/stats', { ...filters, step: stepFor(range) });
  const models = useApi<GenAiModels>('/genai/models', filters);
  // The choices for the filters come from the whole window, not the filtered
  // answer; without a filter the two are the same request, made once.
  const filtered = !!(filters.service || filters.provider || filters.model || filters.session_id);
  const unfiltered = useApi<GenAiModels>(filtered ? '/genai/models' : null, rangeParams(range));
  const choices = filtered ? unfiltered : models;
  const services = useApi<{ name: string }[]>('/services', rangeParams(range));
  const pricing = useApi<Pricing>('/genai/pricing', { since: range.from });
  const providers = [...new Set((choices.data?.models ?? []).map((m) => m.provider).filter((x): x is string => !!x))].sort();
  const modelNames = [...new Set((choices.data?.models ?? []).map((m) => m.model).filter((x): x is string => !!x))].sort();

  const nothing = stats.data && stats.data.totals.requests === 0 && !filtered;
  return (
    <div class="genai-page stack">
      <PageHeader title="GenAI" subtitle="LLM calls: tokens, cost, latency and errors per model" />
      <Filters services={(services.data ?? []).map((s) => s.name)} providers={providers} models={modelNames} />
      {stats.error && !stats.data ? (
        <ErrorBox error={stats.error} />
      ) : !stats.data ? (
        <Loading />
      ) : nothing ? (
        <Empty title="No LLM calls in this time range">Instrument your LLM client (e.g. opentelemetry-instrumentation-openai-v2) and send its spans to qyl.</Empty>
      ) : (
        <>
          <Tiles stats={stats.data} />
          {stats.data.totals.requests_without_cost > 0 && <Unpriced pricing={pricing.data} />}
          <Charts stats={stats.data} startMs={range.startMs} endMs={range.endMs} />
          <Card title="Models" class="flush">
            {models.error && !models.data ? <ErrorBox error={models.error} /> : !models.data ? <Loading /> : <ModelTable models={models.data} onModel={(m) => set({ model: m })} />}
          </Card>
          <RecentCalls filters={filters} />
        </>
      )}
    </div>
  );
}
