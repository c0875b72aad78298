// One session replayed turn by turn, like Langfuse's session view: each
// trace is a turn with the user's message, the assistant's answer, tool
// calls with their arguments and results, the calls' model, tokens, cost
// and latency, and failures inline with links to the trace and its error
// group. Totals of the whole session sit in the header.
import { Link } from 'wouter-preact';
import { Badge, PageHeader, Stat } from '../components/page';
import { ErrorBox, Loading } from '../components/states';
import { Time } from '../components/time';
import { useApi } from '../lib/fetch';
import { colorFor, fmtCost, fmtMs, fmtNum, shortId } from '../lib/format';
import { withRange } from '../lib/params';
import { toMs } from '../lib/time';
import type { ErrorGroupRow, Page, SpanRow } from '../lib/types';
import { CostText } from './genai/cost';
import { ROLLUP_OPERATIONS, errorTypeLabel, type Conversation, type ConversationTurn, type SessionDetail, type SessionTrace } from './genai/types';
import { Clamped, Fold, argsInline, otherParts, pretty, toolCalls, toolResults, type ToolResult } from './session/messages';
import './session.css';

/** Spans read for the replay; a longer session shows its first ones. */
const SPAN_LIMIT = 1000;

const attr = (s: SpanRow, k: string): string | null => {
  const v = s.attributes?.[k];
  return v === undefined || v === null ? null : String(v);
};
const isCall = (s: SpanRow) => !!s.gen_ai && !ROLLUP_OPERATIONS.includes(s.gen_ai.operation ?? '') && s.gen_ai.operation !== 'execute_tool';
const isFailed = (s: SpanRow) => s.status_code === 'ERROR' || !!attr(s, 'error.type');
const spanModel = (s: SpanRow) => s.gen_ai?.response_model ?? s.gen_ai?.request_model ?? null;

/** The error group of a failed span: the group that sampled its trace, else
 *  the GenAI group with the same service, provider, operation and type. */
function groupOf(s: SpanRow, groups: ErrorGroupRow[]): ErrorGroupRow | undefined {
  const inTrace = groups.filter((g) => g.sample_trace_ids.includes(s.trace_id));
  const type = attr(s, 'error.type');
  const byKey = (g: ErrorGroupRow) =>
    g.category === 'genai' && g.gen_ai?.operation === (s.gen_ai?.operation ?? null) && g.gen_ai?.provider === (s.gen_ai?.provider ?? null) && (!type || g.error_type === type);
  return inTrace.find((g) => (s.gen_ai ? byKey(g) : g.culprit === s.name)) ?? inTrace[0] ?? groups.find(byKey);
}

function Totals({ s, turns }: { s: SessionDetail['session']; turns: number }) {
  return (
    <div class="session-tiles">
      <Stat label="Turns" value={fmtNum(s.trace_count)} sub={turns < s.trace_count ? `${turns} shown` : `${fmtNum(s.span_count)} spans`} />
      <Stat label="LLM calls" value={fmtNum(s.gen_ai_requests)} sub={s.models.join(', ') || 'no model'} />
      <Stat label="Tokens" value={fmtNum(s.input_tokens + s.output_tokens, true)} sub={`${fmtNum(s.input_tokens, true)} in · ${fmtNum(s.output_tokens, true)} out`} />
      <Stat
        label="Cost"
        value={<CostText cost={s.cost_usd} unpriced={s.unpriced_requests} requests={s.gen_ai_requests} />}
        sub={s.unpriced_requests > 0 ? <span class="tone-warn">{s.unpriced_requests} {s.unpriced_requests === 1 ? 'call' : 'calls'} unpriced</span> : 'every call priced'}
      />
      <Stat label="Duration" value={fmtMs(s.duration_ms)} sub={<Time t={s.first_seen_unix_nano} />} />
      <Stat label="Errors" value={fmtNum(s.error_count)} tone={s.error_count ? 'bad' : undefined} sub={s.error_count ? 'see the turns below' : 'none'} />
    </div>
  );
}

function Role({ role }: { role: string }) {
  return <span class={`msg-role role-${role}`}>{role}</span>;
}

/** The call that produced an assistant message, in a few words. */
function CallMeta({ span }: { span: SpanRow | undefined }) {
  if (!span?.gen_ai) return null;
  const g = span.gen_ai;
  return (
    <span class="msg-meta">
      <span class="mono">{spanModel(span)}</span>
      {g.input_tokens !== null && (
        <span title="input → output tokens">
          {fmtNum(g.input_tokens)} → {fmtNum(g.output_tokens)} tok
        </span>
      )}
      <span>{fmtMs(span.duration_ms)}</span>
      {g.cost_usd !== null && <span>{fmtCost(g.cost_usd)}</span>}
    </span>
  );
}

function ToolBlock({ name, args, result, id, span }: { name: string; args: unknown; result: ToolResult | undefined; id: string | null; span: SpanRow | undefined }) {
  return (
    <Fold
      tone="tool"
      summary={
        <span class="tool-summary">
          <span class="tool-icon" aria-hidden="true">
            ƒ
          </span>
          <span class="mono tool-name">{name}</span>
          <span class="mono muted ellipsis">({argsInline(args)})</span>
          {span && <span class="muted nowrap">{fmtMs(span.duration_ms)}</span>}
          {result ? <Badge tone="good">result</Badge> : <Badge>no result recorded</Badge>}
        </span>
      }
    >
      <div class="tool-grid">
        <div>
          <div class="fold-label">Arguments{id && <span class="faint mono"> · {id}</span>}</div>
          <pre class="code">{pretty(args)}</pre>
        </div>
        {result && (
          <div>
            <div class="fold-label">Result</div>
            <pre class="code">{pretty(result.response)}</pre>
          </div>
        )}
      </div>
    </Fold>
  );
}

function Message({ t, calls, results, toolSpans, resultShownWithCall }: { t: ConversationTurn; calls: Map<string, SpanRow>; results: Map<string, ToolResult>; toolSpans: Map<string, SpanRow>; resultShownWithCall: Set<string> }) {
  if (t.role === 'system')
    return (
      <div class="msg msg-system">
        <Fold tone="system" summary={<span class="row"><Role role="system" /> <span class="muted ellipsis">System prompt · {fmtNum(t.content?.length ?? 0)} characters</span></span>}>
          <Clamped text={t.content ?? pretty(t.message)} lines={14} />
        </Fold>
      </div>
    );
  const tcs = toolCalls(t);
  const trs = toolResults(t).filter((r) => !(r.id && resultShownWithCall.has(r.id)));
  // A tool message is its result: shown with the call that asked for it.
  if (t.role === 'tool' && !trs.length) return null;
  const span = t.span_id ? calls.get(t.span_id) : undefined;
  const extra = otherParts(t);
  return (
    <div class={`msg msg-${t.role}`} data-role={t.role}>
      <div class="msg-head">
        <Role role={t.role} />
        {t.role === 'assistant' && <CallMeta span={span} />}
        {t.finish_reason && t.finish_reason !== 'stop' && <Badge tone={t.finish_reason === 'length' || t.finish_reason === 'content_filter' ? 'warn' : 'info'}>{t.finish_reason}</Badge>}
        <span class="grow" />
        <span class="faint">
          <Time t={t.time_unix_nano} mode="clock" />
        </span>
      </div>
      {t.content && !(t.role === 'tool' && trs.length) && <Clamped text={t.content} />}
      {tcs.map((c, i) => (
        <ToolBlock key={c.id ?? i} name={c.name} args={c.arguments} id={c.id} result={c.id ? results.get(c.id) : undefined} span={c.id ? toolSpans.get(c.id) : undefined} />
      ))}
      {trs.map((r, i) => (
        <Fold key={r.id ?? i} tone="tool" summary={<span class="tool-summary"><span class="mono">tool result</span>{r.id && <span class="faint mono">{r.id}</span>}</span>}>
          <pre class="code">{pretty(r.response)}</pre>
        </Fold>
      ))}
      {extra.map((p, i) => (
        <Fold key={`x${i}`} summary={<span class="muted">{String(p.type ?? 'part')}</span>}>
          <pre class="code">{pretty(p)}</pre>
        </Fold>
      ))}
    </div>
  );
}

function Failure({ span, group }: { span: SpanRow; group: ErrorGroupRow | undefined }) {
  const type = attr(span, 'error.type') ?? group?.error_type ?? 'error';
  return (
    <div class="msg msg-error" role="alert" data-error-span={span.span_id}>
      <div class="msg-head">
        <span class="msg-role role-error">error</span>
        <strong class="mono error-type" title={type}>
          {errorTypeLabel(type)}
        </strong>
        {group?.gen_ai?.error_class && <Badge tone="bad">{group.gen_ai.error_class}</Badge>}
        <span class="grow" />
        <span class="faint">
          <Time t={span.start_time_unix_nano} mode="clock" />
        </span>
      </div>
      <div class="error-line">
        <span class="mono">{span.name}</span>
        {spanModel(span) && <span class="muted"> · {spanModel(span)}</span>}
        <span class="muted"> · failed after {fmtMs(span.duration_ms)}</span>
      </div>
      {(span.status_message || group?.message_template) && <div class="error-message">{span.status_message ?? group?.message_template}</div>}
      <div class="row error-links">
        <Link href={withRange(`/traces/${span.trace_id}`, { span: span.span_id })}>Open in trace</Link>
        {group && <Link href={withRange(`/errors/${group.id}`)}>Error group #{group.id}</Link>}
      </div>
    </div>
  );
}

/** A call of a turn whose messages were not recorded. */
function CallRow({ span }: { span: SpanRow }) {
  return (
    <div class="msg msg-call">
      <div class="msg-head">
        <span class="msg-role">call</span>
        <Link href={withRange(`/traces/${span.trace_id}`, { span: span.span_id })} class="mono">
          {span.name}
        </Link>
        <CallMeta span={span} />
        {(span.gen_ai?.finish_reasons ?? []).map((f) => (
          <Badge key={f} tone={f === 'stop' ? 'good' : f === 'length' || f === 'content_filter' ? 'warn' : 'info'}>
            {f}
          </Badge>
        ))}
        <span class="grow" />
        <span class="faint">
          <Time t={span.start_time_unix_nano} mode="clock" />
        </span>
      </div>
    </div>
  );
}

interface TurnData {
  trace: SessionTrace;
  messages: ConversationTurn[];
  spans: SpanRow[];
}

function Turn({ n, d, groups, contentRecorded }: { n: number; d: TurnData; groups: ErrorGroupRow[]; contentRecorded: boolean }) {
  const calls = d.spans.filter(isCall);
  const callById = new Map(calls.map((s) => [s.span_id, s]));
  const toolSpans = new Map(d.spans.filter((s) => s.gen_ai?.operation === 'execute_tool' && attr(s, 'gen_ai.tool.call.id')).map((s) => [attr(s, 'gen_ai.tool.call.id')!, s]));
  const results = new Map<string, ToolResult>();
  for (const m of d.messages) for (const r of toolResults(m)) if (r.id) results.set(r.id, r);
  const calledIds = new Set(d.messages.flatMap((m) => toolCalls(m).map((c) => c.id).filter((x): x is string => !!x)));
  const shownWithCall = new Set([...results.keys()].filter((id) => calledIds.has(id)));

  // Failed calls go right after the last message their call sent; a failed
  // span without messages goes where its start time falls.
  // Failures shown: failed LLM calls, and other failed spans whose failure no
  // failed child explains (a turn failing because its call failed is one error).
  const failedSpans = d.spans.filter(isFailed);
  const failedCalls = failedSpans.filter((s) => isCall(s) || !failedSpans.some((c) => c.parent_span_id === s.span_id));
  type Item = { kind: 'msg'; m: ConversationTurn } | { kind: 'err'; s: SpanRow } | { kind: 'call'; s: SpanRow };
  // Without recorded content, the turn lists its calls instead of messages.
  const items: Item[] = d.messages.length ? d.messages.map((m) => ({ kind: 'msg', m })) : calls.filter((c) => !isFailed(c)).map((s) => ({ kind: 'call', s }));
  const itemTime = (it: Item) => toMs(it.kind === 'msg' ? it.m.time_unix_nano : it.s.start_time_unix_nano);
  for (const s of failedCalls) {
    let at = -1;
    items.forEach((it, i) => it.kind === 'msg' && it.m.span_id === s.span_id && (at = i));
    if (at < 0) {
      const t = toMs(s.start_time_unix_nano);
      at = items.findIndex((it) => itemTime(it) > t) - 1;
      if (at < -1) at = items.length - 1;
    }
    items.splice(at + 1, 0, { kind: 'err', s });
  }

  const input = calls.reduce((a, s) => a + (s.gen_ai?.input_tokens ?? 0), 0);
  const output = calls.reduce((a, s) => a + (s.gen_ai?.output_tokens ?? 0), 0);
  const priced = calls.filter((s) => s.gen_ai?.cost_usd !== null && s.gen_ai?.cost_usd !== undefined);
  const unpriced = calls.filter((s) => (s.gen_ai?.input_tokens ?? 0) + (s.gen_ai?.output_tokens ?? 0) > 0 && (s.gen_ai?.cost_usd ?? null) === null).length;
  const cost = priced.reduce((a, s) => a + (s.gen_ai?.cost_usd ?? 0), 0);
  const models = [...new Set(calls.map(spanModel).filter((x): x is string => !!x))];
  const errors = d.spans.length ? failedCalls.length : d.trace.error_count;

  return (
    <section class={`turn card${errors ? ' turn-failed' : ''}`} data-turn={n} aria-label={`Turn ${n}`}>
      <header class="turn-head">
        <span class="turn-n">Turn {n}</span>
        <Link href={withRange(`/traces/${d.trace.trace_id}`)} class="turn-trace" title="Open the trace">
          {d.trace.root_name ?? 'trace'} <span class="mono faint">{shortId(d.trace.trace_id)}</span> →
        </Link>
        <span class="grow" />
        {models.map((m) => (
          <span key={m} class="turn-model mono">
            <span class="dot" style={{ background: colorFor(m) }} />
            {m}
          </span>
        ))}
        {input + output > 0 && (
          <span class="turn-fig" title="input → output tokens">
            {fmtNum(input)} → {fmtNum(output)} tok
          </span>
        )}
        {(priced.length > 0 || unpriced > 0) && (
          <span class="turn-fig" title={unpriced ? `${unpriced} calls without a price` : 'cost'}>
            {priced.length ? fmtCost(cost) : <span class="tone-warn">unpriced</span>}
            {unpriced > 0 && priced.length > 0 && <span class="tone-warn"> +?</span>}
          </span>
        )}
        <span class="turn-fig" title="trace duration">
          {fmtMs(d.trace.duration_ms)}
        </span>
        {errors > 0 && <Badge tone="bad">{errors === 1 ? '1 error' : `${errors} errors`}</Badge>}
        <span class="faint nowrap">
          <Time t={d.trace.start_time_unix_nano} />
        </span>
      </header>
      <div class="turn-body">
        {items.length === 0 && <div class="muted turn-empty">No LLM call in this turn.</div>}
        {contentRecorded && d.messages.length === 0 && calls.length > 0 && <div class="muted turn-empty">No message content was recorded for this turn; its calls:</div>}
        {items.map((it, i) =>
          it.kind === 'msg' ? (
            <Message key={`m${i}`} t={it.m} calls={callById} results={results} toolSpans={toolSpans} resultShownWithCall={shownWithCall} />
          ) : it.kind === 'call' ? (
            <CallRow key={`c${it.s.span_id}`} span={it.s} />
          ) : (
            <Failure key={`e${it.s.span_id}`} span={it.s} group={groupOf(it.s, groups)} />
          ),
        )}
      </div>
    </section>
  );
}

export function SessionView({ id }: { id: string }) {
  const enc = encodeURIComponent(id);
  const detail = useApi<SessionDetail>(`/sessions/${enc}`);
  const conv = useApi<Conversation>(`/sessions/${enc}/conversation`);
  const spans = useApi<Page<SpanRow>>(`/sessions/${enc}/spans`, { limit: SPAN_LIMIT });
  const firstMs = detail.data ? Math.floor(toMs(detail.data.session.first_seen_unix_nano)) - 60e3 : null;
  const groups = useApi<Page<ErrorGroupRow>>(detail.data && detail.data.session.error_count > 0 ? '/errors' : null, { since: firstMs ?? undefined, limit: 200 });

  if (detail.error && !detail.data) return (
    <div class="stack">
      <PageHeader title="Session" subtitle={<span class="mono">{id}</span>} />
      <ErrorBox error={detail.error} title={(detail.error as { status?: number }).status === 404 ? 'No such session' : 'Could not load this session'} />
      <Link href={withRange('/sessions')}>← All sessions</Link>
    </div>
  );
  if (!detail.data) return <Loading />;
  const { session: s, traces } = detail.data;
  const msgs = conv.data?.turns ?? [];
  const spanRows = spans.data?.items ?? [];
  const turns: TurnData[] = traces.map((t) => ({ trace: t, messages: msgs.filter((m) => m.trace_id === t.trace_id), spans: spanRows.filter((r) => r.trace_id === t.trace_id) }));

  return (
    <div class="session-page stack">
      <PageHeader
        title={
          <span class="row">
            Session <span class="mono session-id" title={s.session_id}>{s.session_id}</span>
            {s.active && <Badge tone="good">active</Badge>}
          </span>
        }
        subtitle={
          <span class="row-wrap">
            {s.users.length > 0 && <span>user {s.users.join(', ')}</span>}
            <span>
              {s.services.map((n) => (
                <span key={n} class="session-service">
                  <span class="dot" style={{ background: colorFor(n) }} /> {n}
                </span>
              ))}
            </span>
            <span>
              <Time t={s.first_seen_unix_nano} /> → <Time t={s.last_seen_unix_nano} />
            </span>
          </span>
        }
      >
        <Link class="btn" href={withRange('/sessions')}>
          ← Sessions
        </Link>
        <Link class="btn" href={withRange('/traces', { session_id: s.session_id })}>
          Traces
        </Link>
        <Link class="btn" href={withRange('/genai', { session_id: s.session_id })}>
          LLM calls
        </Link>
        <Link class="btn" href={withRange('/logs', { session_id: s.session_id })}>
          Logs
        </Link>
      </PageHeader>
      <Totals s={s} turns={traces.length} />
      {conv.error && <ErrorBox error={conv.error} title="Could not load the conversation" />}
      {spans.error && <ErrorBox error={spans.error} title="Could not load the session's spans" />}
      {(!conv.data && !conv.error) || (!spans.data && !spans.error) ? (
        <Loading label="Loading the conversation…" />
      ) : (
        <div class="turns">
          {msgs.length === 0 && spanRows.some(isCall) && (
            <div class="session-hint" role="note">
              This session's LLM calls were recorded without their messages, so only the calls are listed. To replay the conversation, have the instrumentation record message content, e.g. <code>OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY</code> (with <code>OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental</code>) for opentelemetry-instrumentation-openai-v2.
            </div>
          )}
          {turns.map((t, i) => (
            <Turn key={t.trace.trace_id} n={i + 1} d={t} groups={groups.data?.items ?? []} contentRecorded={msgs.length > 0} />
          ))}
          {(detail.data.traces_truncated || spans.data?.next_cursor) && (
            <div class="muted turn-empty">
              This session is longer than one page: {detail.data.traces_truncated ? `the first ${traces.length} turns are shown` : `the first ${SPAN_LIMIT} spans are used`}. The full list is in <Link href={withRange('/traces', { session_id: s.session_id })}>Traces</Link>.
            </div>
          )}
        </div>
      )}
    </div>
  );
}
