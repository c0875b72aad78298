// The selected span in full: timing, status, attributes (with a filter over
// keys and values), resource, events relative to the span, links to other
// traces, the span's logs, and for GenAI calls the model, tokens, cost and
// the messages and tool calls of the exchange.
import { useMemo, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { Badge } from '../../components/page';
import { Time } from '../../components/time';
import { colorFor, fmtCost, fmtMs, fmtNum, valueText } from '../../lib/format';
import { withRange } from '../../lib/params';
import type { GenAiRow, LogRow, SpanRow } from '../../lib/types';
import { eventOffset, genAiMessages, isGenAi, type FlatSpan, type GenAiMessage } from './model';

export function SpanDetail({ s, logs, traceStartMs, onClose }: { s: FlatSpan; logs: LogRow[]; traceStartMs: number; onClose: () => void }) {
  const span = s.span;
  const spanLogs = useMemo(() => logs.filter((l) => l.span_id === span.span_id), [logs, span.span_id]);
  return (
    <aside class="span-detail card" aria-label="Span detail">
      <div class="sd-head">
        <div class="grow">
          <div class="sd-title">
            <span class="dot" style={{ background: colorFor(span.service_name) }} />
            <h2 class="ellipsis" title={span.name}>
              {span.name}
            </h2>
          </div>
          <div class="muted sd-sub">
            {span.service_name}
            {span.service_version ? ` ${span.service_version}` : ''} · {span.kind}
          </div>
        </div>
        <button class="btn btn-sm" onClick={onClose} aria-label="Close span detail">
          ✕
        </button>
      </div>
      <dl class="sd-facts">
        <dt>Duration</dt>
        <dd class="mono">{fmtMs(span.duration_ms)}</dd>
        <dt>Starts at</dt>
        <dd class="mono">+{fmtMs(s.start)}</dd>
        <dt>Start</dt>
        <dd>
          <Time t={span.start_time_unix_nano} />
        </dd>
        <dt>Status</dt>
        <dd>
          <Badge tone={span.status_code === 'ERROR' ? 'bad' : span.status_code === 'OK' ? 'good' : 'neutral'}>{span.status_code}</Badge>
          {span.status_message && <span class="sd-status-msg"> {span.status_message}</span>}
        </dd>
        <dt>Span id</dt>
        <dd class="mono">{span.span_id}</dd>
        {span.parent_span_id && (
          <>
            <dt>Parent</dt>
            <dd class="mono">{span.parent_span_id}</dd>
          </>
        )}
        {span.scope_name && (
          <>
            <dt>Scope</dt>
            <dd class="mono ellipsis">{span.scope_name}</dd>
          </>
        )}
        {span.session_id && (
          <>
            <dt>Session</dt>
            <dd>
              <Link href={withRange(`/sessions/${encodeURIComponent(span.session_id)}`)}>{span.session_id}</Link>
            </dd>
          </>
        )}
      </dl>
      {isGenAi(span) && <GenAiSection span={span} logs={spanLogs} />}
      <AttrTable title="Attributes" attrs={span.attributes} searchable />
      <AttrTable title="Resource" attrs={span.resource} />
      <section class="sd-section">
        <h3>Events {span.events.length > 0 && <span class="muted">({span.events.length})</span>}</h3>
        {span.events.length === 0 ? (
          <div class="muted">No events.</div>
        ) : (
          <ul class="sd-events">
            {span.events.map((ev, k) => (
              <li key={k}>
                <div class="row">
                  <span class="mono sd-rel">+{fmtMs(eventOffset(ev, span))}</span>
                  <strong class={ev.name === 'exception' ? 'tone-bad' : ''}>{ev.name}</strong>
                </div>
                {ev.attributes && Object.keys(ev.attributes).length > 0 && <KeyValues attrs={ev.attributes} />}
              </li>
            ))}
          </ul>
        )}
      </section>
      {span.links.length > 0 && (
        <section class="sd-section">
          <h3>Links</h3>
          <ul class="sd-links">
            {span.links.map((l, k) => (
              <li key={k}>
                <Link href={withRange(`/traces/${l.trace_id}`, { span: l.span_id })} class="mono">
                  {l.trace_id.slice(0, 16)}… / {l.span_id}
                </Link>
                {l.attributes && Object.keys(l.attributes).length > 0 && <KeyValues attrs={l.attributes} />}
              </li>
            ))}
          </ul>
        </section>
      )}
      <section class="sd-section">
        <h3>Logs {spanLogs.length > 0 && <span class="muted">({spanLogs.length})</span>}</h3>
        {spanLogs.length === 0 ? (
          <div class="muted">No logs carry this span's id.</div>
        ) : (
          <ul class="sd-logs">
            {spanLogs.map((l, k) => (
              <li key={k}>
                <span class="mono sd-rel">+{fmtMs(Number(l.time_unix_nano) / 1e6 - traceStartMs)}</span>
                <SeverityBadge n={l.severity_number} text={l.severity_text} />
                <span class="sd-log-body">{l.body ?? l.event_name ?? ''}</span>
              </li>
            ))}
          </ul>
        )}
      </section>
    </aside>
  );
}

export function SeverityBadge({ n, text }: { n: number; text: string | null }) {
  const tone = n >= 17 ? 'bad' : n >= 13 ? 'warn' : n >= 9 ? 'info' : 'neutral';
  return <Badge tone={tone}>{text || (n >= 17 ? 'ERROR' : n >= 13 ? 'WARN' : n >= 9 ? 'INFO' : 'DEBUG')}</Badge>;
}

function KeyValues({ attrs }: { attrs: Record<string, unknown> }) {
  return (
    <table class="sd-kv">
      <tbody>
        {Object.entries(attrs).map(([k, v]) => (
          <tr key={k}>
            <th class="mono">{k}</th>
            <td class="mono">{valueText(v)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function AttrTable({ title, attrs, searchable }: { title: string; attrs: Record<string, unknown>; searchable?: boolean }) {
  const [q, setQ] = useState('');
  const entries = useMemo(() => Object.entries(attrs ?? {}).sort(([a], [b]) => a.localeCompare(b)), [attrs]);
  const needle = q.trim().toLowerCase();
  const shown = needle ? entries.filter(([k, v]) => k.toLowerCase().includes(needle) || valueText(v).toLowerCase().includes(needle)) : entries;
  return (
    <section class="sd-section">
      <div class="sd-section-head">
        <h3>
          {title} <span class="muted">({needle ? `${shown.length} of ${entries.length}` : entries.length})</span>
        </h3>
        {searchable && entries.length > 0 && (
          <input
            type="search"
            class="sd-filter"
            placeholder="Filter keys and values"
            aria-label={`Filter ${title.toLowerCase()}`}
            value={q}
            onInput={(e) => setQ((e.target as HTMLInputElement).value)}
          />
        )}
      </div>
      {entries.length === 0 ? (
        <div class="muted">None.</div>
      ) : shown.length === 0 ? (
        <div class="muted">Nothing matches “{q}”.</div>
      ) : (
        <table class="sd-kv" data-attrs={title.toLowerCase()}>
          <tbody>
            {shown.map(([k, v]) => (
              <tr key={k}>
                <th class="mono" title={k}>
                  {k}
                </th>
                <td class="mono">{valueText(v)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const num = (v: unknown): number | null => (typeof v === 'number' ? v : typeof v === 'string' && v !== '' && !Number.isNaN(Number(v)) ? Number(v) : null);

function GenAiSection({ span, logs }: { span: SpanRow; logs: LogRow[] }) {
  const a = span.attributes ?? {};
  const g: Partial<GenAiRow> = span.gen_ai ?? {};
  const model = g.response_model ?? g.request_model ?? (a['gen_ai.response.model'] as string) ?? (a['gen_ai.request.model'] as string);
  const provider = g.provider ?? (a['gen_ai.provider.name'] as string) ?? (a['gen_ai.system'] as string);
  const operation = g.operation ?? (a['gen_ai.operation.name'] as string);
  const input = g.input_tokens ?? num(a['gen_ai.usage.input_tokens']) ?? num(a['gen_ai.usage.prompt_tokens']);
  const output = g.output_tokens ?? num(a['gen_ai.usage.output_tokens']) ?? num(a['gen_ai.usage.completion_tokens']);
  const cacheRead = g.cache_read_tokens ?? num(a['gen_ai.usage.cache_read.input_tokens']);
  const cacheWrite = num(a['gen_ai.usage.cache_creation.input_tokens']);
  const tool = a['gen_ai.tool.name'] as string | undefined;
  const { input: inMsgs, output: outMsgs } = useMemo(() => genAiMessages(span, logs), [span, logs]);
  return (
    <section class="sd-section sd-genai">
      <h3>
        GenAI {operation && <Badge tone="accent">{operation}</Badge>}
      </h3>
      <dl class="sd-facts">
        {model && (
          <>
            <dt>Model</dt>
            <dd class="mono">{model}</dd>
          </>
        )}
        {provider && (
          <>
            <dt>Provider</dt>
            <dd>{provider}</dd>
          </>
        )}
        {tool && (
          <>
            <dt>Tool</dt>
            <dd class="mono">{tool}</dd>
          </>
        )}
        {(input !== null || output !== null) && (
          <>
            <dt>Tokens</dt>
            <dd class="sd-tokens">
              <span>
                <b>{fmtNum(input)}</b> in
              </span>
              <span>
                <b>{fmtNum(output)}</b> out
              </span>
              {cacheRead !== null && cacheRead !== undefined && (
                <span>
                  <b>{fmtNum(cacheRead)}</b> cache read
                </span>
              )}
              {cacheWrite !== null && (
                <span>
                  <b>{fmtNum(cacheWrite)}</b> cache write
                </span>
              )}
            </dd>
          </>
        )}
        {(input !== null || g.cost_usd !== undefined) && (
          <>
            <dt>Cost</dt>
            <dd>{g.cost_usd === null || g.cost_usd === undefined ? <span class="muted">no price for this model</span> : fmtCost(g.cost_usd)}</dd>
          </>
        )}
        {g.finish_reasons && g.finish_reasons.length > 0 && (
          <>
            <dt>Finish</dt>
            <dd>{g.finish_reasons.join(', ')}</dd>
          </>
        )}
      </dl>
      {inMsgs.length + outMsgs.length > 0 && (
        <div class="sd-messages">
          {inMsgs.length > 0 && <div class="sd-msg-group">Prompt</div>}
          {inMsgs.map((m, k) => (
            <Message key={`i${k}`} m={m} />
          ))}
          {outMsgs.length > 0 && <div class="sd-msg-group">Completion</div>}
          {outMsgs.map((m, k) => (
            <Message key={`o${k}`} m={m} />
          ))}
        </div>
      )}
    </section>
  );
}

function Message({ m }: { m: GenAiMessage }) {
  const tone = m.role === 'system' ? 'neutral' : m.role === 'user' ? 'info' : m.role === 'tool' ? 'warn' : 'accent';
  return (
    <div class={`sd-msg sd-msg-${m.role}`}>
      <div class="row">
        <Badge tone={tone}>{m.role}</Badge>
        {m.finish_reason && <span class="muted">finish: {m.finish_reason}</span>}
      </div>
      {m.parts.map((p, k) =>
        p.type === 'text' ? (
          <div key={k} class="sd-msg-text">
            {p.text}
          </div>
        ) : p.type === 'tool_call' ? (
          <div key={k} class="sd-tool">
            <span class="muted">tool call</span> <b class="mono">{p.name}</b>
            {p.id && <span class="muted mono"> {p.id}</span>}
            <pre class="code">{typeof p.args === 'string' ? p.args : JSON.stringify(p.args, null, 2)}</pre>
          </div>
        ) : (
          <div key={k} class="sd-tool">
            <span class="muted">{p.type === 'tool_result' ? 'tool result' : p.type}</span>
            {p.id && <span class="muted mono"> {p.id}</span>}
            <pre class="code">{typeof p.result === 'string' ? p.result : JSON.stringify(p.result, null, 2)}</pre>
          </div>
        ),
      )}
    </div>
  );
}
