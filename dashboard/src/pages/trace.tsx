// The trace view (/traces/:id): header figures, then the spans as a
// waterfall (with the critical path), a flame graph or the trace's logs,
// and the selected span's detail beside them. The tab and the selected
// span live in the URL (`tab`, `span`) so a view can be shared.
import type { ComponentChildren } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Link, useLocation } from 'wouter-preact';
import { Badge, PageHeader, Tabs } from '../components/page';
import { Empty, ErrorBox, Loading } from '../components/states';
import { Time } from '../components/time';
import { useApi } from '../lib/fetch';
import { colorFor, fmtCost, fmtMs, fmtNum, valueText } from '../lib/format';
import { useParams, useSetParams, withRange } from '../lib/params';
import type { TraceTree } from '../lib/types';
import { SpanDetail, SeverityBadge } from './trace/detail';
import { FlameGraph } from './trace/flame';
import { buildModel, visibleRows, type TraceModel } from './trace/model';
import { Waterfall } from './trace/waterfall';
import './traces.css';

export function TraceView({ id }: { id: string }) {
  const r = useApi<TraceTree>(`/traces/${encodeURIComponent(id)}`);
  const model = useMemo(() => (r.data ? buildModel(r.data) : undefined), [r.data]);
  if (r.error && !r.data) {
    const notFound = (r.error as { status?: number }).status === 404;
    return (
      <>
        <PageHeader title="Trace" subtitle={<span class="mono">{id}</span>} />
        {notFound ? (
          <Empty title="No trace with this id" hint={false}>
            It may be outside the retention window, or not sent yet. <Link href={withRange('/traces')}>Search traces</Link>
          </Empty>
        ) : (
          <ErrorBox error={r.error} />
        )}
      </>
    );
  }
  if (!r.data || !model) return <Loading label="Loading trace…" />;
  return <TraceBody trace={r.data} model={model} />;
}

function TraceBody({ trace, model }: { trace: TraceTree; model: TraceModel }) {
  const p = useParams();
  const set = useSetParams();
  const [, navigate] = useLocation();
  const tab = p.get('tab') || 'waterfall';
  const selectedId = p.get('span');
  const selected = selectedId ? (model.indexById.get(selectedId) ?? -1) : -1;
  const [showCritical, setShowCritical] = useState(true);
  const [compareWith, setCompareWith] = useState('');
  // Collapsed spans by id, so a refresh that re-numbers spans keeps them.
  const [collapsedIds, setCollapsedIds] = useState<Set<string>>(() => new Set());
  const collapsed = useMemo(() => {
    const out = new Set<number>();
    collapsedIds.forEach((sid) => {
      const i = model.indexById.get(sid);
      if (i !== undefined) out.add(i);
    });
    return out;
  }, [collapsedIds, model]);
  const rows = useMemo(() => visibleRows(model, collapsed), [model, collapsed]);
  // Find in trace: name, service, span id, attribute keys and values.
  const find = (p.get('find') ?? '').trim().toLowerCase();
  const [findText, setFindText] = useState(p.get('find') ?? '');
  const matches = useMemo(() => {
    if (!find) return null;
    const out = new Uint8Array(model.spans.length);
    model.spans.forEach((x, i) => {
      const s = x.span;
      if (s.name.toLowerCase().includes(find) || s.service_name.toLowerCase().includes(find) || s.span_id.startsWith(find)) out[i] = 1;
      else
        for (const [k, v] of Object.entries(s.attributes ?? {})) {
          if (k.toLowerCase().includes(find) || valueText(v).toLowerCase().includes(find)) {
            out[i] = 1;
            break;
          }
        }
    });
    return out;
  }, [model, find]);
  const matchCount = matches ? matches.reduce((n, x) => n + x, 0) : 0;
  /** Selects the next (or previous) matching span after the selected one. */
  const nextMatch = (dir: 1 | -1) => {
    if (!matches || matchCount === 0) return;
    const n = model.spans.length;
    for (let k = 1; k <= n; k++) {
      const i = (((selected < 0 ? (dir === 1 ? -1 : 0) : selected) + dir * k) % n + n) % n;
      if (matches[i]) return select(i);
    }
  };
  const s = trace.summary;

  // A selected span hidden in a collapsed subtree is revealed.
  useEffect(() => {
    if (selected < 0) return;
    let a = model.spans[selected].parent;
    const open: string[] = [];
    while (a >= 0) {
      if (collapsed.has(a)) open.push(model.spans[a].span.span_id);
      a = model.spans[a].parent;
    }
    if (open.length) setCollapsedIds((c) => new Set([...c].filter((x) => !open.includes(x))));
  }, [selected]);

  const select = (i: number) => set({ span: i >= 0 ? model.spans[i].span.span_id : null }, { replace: true });
  const toggle = (i: number, collapse?: boolean) => {
    const sid = model.spans[i].span.span_id;
    setCollapsedIds((c) => {
      const next = new Set(c);
      const shut = collapse ?? !next.has(sid);
      if (shut) next.add(sid);
      else next.delete(sid);
      return next;
    });
  };
  const collapseAll = (shut: boolean) => {
    if (!shut) return setCollapsedIds(new Set());
    const next = new Set<string>();
    model.spans.forEach((x) => x.depth === 1 && x.children.length > 0 && next.add(x.span.span_id));
    setCollapsedIds(next);
  };

  const errors = model.spans.reduce((n, x) => n + (x.error ? 1 : 0), 0);
  const genai = s.gen_ai_input_tokens + s.gen_ai_output_tokens > 0 || s.gen_ai_cost_usd !== null;
  const criticalCount = model.critical.reduce((n, x) => n + x, 0);
  const detail = selected >= 0 ? model.spans[selected] : undefined;

  return (
    <div class="trace-page">
      <PageHeader
        title={
          <span class="row">
            <span class="dot" style={{ background: colorFor(s.root_service) }} />
            <span class="ellipsis">{s.root_name || '(no root span)'}</span>
            {errors > 0 && <Badge tone="bad">{errors === 1 ? '1 error' : `${errors} errors`}</Badge>}
          </span>
        }
        subtitle={
          <span class="row-wrap">
            <span class="mono">{s.trace_id}</span>
            <span>·</span>
            <Time t={s.start_time_unix_nano} />
          </span>
        }
      >
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            const other = compareWith.trim().toLowerCase();
            if (/^[0-9a-f]{32}$/.test(other)) navigate(withRange('/compare', { a: s.trace_id, b: other }));
          }}
        >
          <input
            class="mono trace-compare-input"
            placeholder="Compare with trace id…"
            aria-label="Compare with trace id"
            value={compareWith}
            pattern="[0-9a-fA-F]{32}"
            title="32 hex digits"
            onInput={(e) => setCompareWith((e.target as HTMLInputElement).value)}
          />
          <button class="btn" type="submit" disabled={!/^[0-9a-fA-F]{32}$/.test(compareWith.trim())}>
            Compare
          </button>
        </form>
        <Link class="btn" href={withRange('/logs', { trace_id: s.trace_id })}>
          Logs
        </Link>
        <a class="btn" href={`/api/v1/traces/${s.trace_id}`} target="_blank" rel="noreferrer">
          JSON
        </a>
      </PageHeader>

      <div class="trace-facts">
        <Fact label="Duration" value={fmtMs(model.duration)} />
        <Fact label="Spans" value={fmtNum(model.spans.length)} />
        <Fact label="Errors" value={fmtNum(errors)} tone={errors > 0 ? 'bad' : undefined} />
        <Fact label="Depth" value={fmtNum(model.maxDepth + 1)} />
        {genai && (
          <Fact
            label="GenAI"
            value={
              <>
                {fmtNum(s.gen_ai_input_tokens, true)} in · {fmtNum(s.gen_ai_output_tokens, true)} out · {fmtCost(s.gen_ai_cost_usd)}
              </>
            }
          />
        )}
        <div class="trace-fact trace-services">
          <div class="stat-label">Services</div>
          <div class="row-wrap">
            {model.services.map((svc) => (
              <span key={svc} class="svc-chip">
                <span class="dot" style={{ background: colorFor(svc) }} />
                {svc}
              </span>
            ))}
          </div>
        </div>
      </div>

      <div class="trace-tabs-row">
        <Tabs
          tabs={[
            { id: 'waterfall', label: 'Waterfall' },
            { id: 'flame', label: 'Flame graph' },
            { id: 'logs', label: `Logs (${trace.logs.length})` },
          ]}
          active={tab}
          onChange={(t) => set({ tab: t === 'waterfall' ? null : t })}
        />
        {tab !== 'logs' && (
          <div class="trace-find">
            <input
              type="search"
              data-search
              placeholder="Find in trace: name, service, attribute"
              aria-label="Find spans"
              value={findText}
              onInput={(e) => {
                const v = (e.target as HTMLInputElement).value;
                setFindText(v);
                set({ find: v }, { replace: true });
              }}
              onKeyDown={(e) => {
                if (e.key === 'Enter') {
                  e.preventDefault();
                  nextMatch(e.shiftKey ? -1 : 1);
                }
              }}
            />
            {find && (
              <span class={`muted trace-find-count${matchCount === 0 ? ' tone-bad' : ''}`} aria-live="polite">
                {matchCount === 0 ? 'no match' : `${fmtNum(matchCount)} match${matchCount === 1 ? '' : 'es'}`}
              </span>
            )}
          </div>
        )}
        {tab === 'waterfall' && (
          <label class="crit-toggle" title="The chain of spans that determines when the trace ends">
            <input type="checkbox" checked={showCritical} onChange={(e) => setShowCritical((e.target as HTMLInputElement).checked)} />
            <span class="crit-swatch" aria-hidden="true" /> Critical path <span class="muted">({criticalCount} spans)</span>
          </label>
        )}
      </div>

      <div class={`trace-main${detail && tab !== 'logs' ? ' with-detail' : ''}`}>
        <div class="trace-pane card flush">
          {tab === 'waterfall' && (
            <Waterfall
              model={model}
              rows={rows}
              collapsed={collapsed}
              onToggle={toggle}
              onCollapseAll={collapseAll}
              selected={selected}
              onSelect={select}
              showCritical={showCritical}
              matches={matches}
            />
          )}
          {tab === 'flame' && <FlameGraph model={model} selected={selected} onSelect={select} matches={matches} />}
          {tab === 'logs' && <TraceLogs trace={trace} model={model} onSelect={(i) => set({ span: model.spans[i].span.span_id, tab: null })} />}
        </div>
        {detail && tab !== 'logs' && <SpanDetail key={detail.span.span_id} s={detail} logs={trace.logs} traceStartMs={model.startMs} onClose={() => select(-1)} />}
      </div>
    </div>
  );
}

function Fact({ label, value, tone }: { label: string; value: ComponentChildren; tone?: 'bad' }) {
  return (
    <div class="trace-fact">
      <div class="stat-label">{label}</div>
      <div class={`trace-fact-value${tone ? ` tone-${tone}` : ''}`}>{value}</div>
    </div>
  );
}

function TraceLogs({ trace, model, onSelect }: { trace: TraceTree; model: TraceModel; onSelect: (i: number) => void }) {
  if (trace.logs.length === 0)
    return (
      <Empty title="No logs carry this trace's id" hint={false}>
        Logs join a trace when the SDK's log bridge runs inside an active span.
      </Empty>
    );
  return (
    <div class="table-wrap trace-logs">
      <table class="table">
        <thead>
          <tr>
            <th>Time</th>
            <th class="num">Offset</th>
            <th>Severity</th>
            <th>Service</th>
            <th>Span</th>
            <th>Message</th>
          </tr>
        </thead>
        <tbody>
          {trace.logs.map((l, k) => {
            const si = l.span_id ? model.indexById.get(l.span_id) : undefined;
            return (
              <tr key={k}>
                <td class="nowrap">
                  <Time t={l.time_unix_nano} mode="clock" />
                </td>
                <td class="num mono">+{fmtMs(Number(l.time_unix_nano) / 1e6 - model.startMs)}</td>
                <td>
                  <SeverityBadge n={l.severity_number} text={l.severity_text} />
                </td>
                <td class="nowrap">
                  <span class="dot" style={{ background: colorFor(l.service_name) }} /> {l.service_name}
                </td>
                <td>
                  {si !== undefined ? (
                    <button class="linklike" onClick={() => onSelect(si)}>
                      {model.spans[si].span.name}
                    </button>
                  ) : (
                    <span class="muted">–</span>
                  )}
                </td>
                <td class="trace-log-body">{l.body ?? l.event_name ?? ''}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
