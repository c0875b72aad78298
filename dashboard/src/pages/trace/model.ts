// The trace view's data model: the API's span tree flattened once into
// pre-order arrays (so the waterfall, flame graph and keyboard navigation
// index spans by number instead of walking objects), plus the critical
// path and the helpers the trace pages share (GenAI messages, match keys).
import { niceStep } from '../../lib/format';
import { toMs } from '../../lib/time';
import type { LogRow, SpanEvent, SpanNode, SpanRow, TraceTree } from '../../lib/types';

/** One span of the flattened tree; times in ms from the trace's start. */
export interface FlatSpan {
  span: SpanRow;
  depth: number;
  /** Index of the parent, -1 for a root. */
  parent: number;
  children: number[];
  /** How many spans sit below this one (the subtree, without itself). */
  descendants: number;
  start: number;
  end: number;
  error: boolean;
}

export interface TraceModel {
  /** Pre-order: a span's subtree is the `descendants` entries after it. */
  spans: FlatSpan[];
  /** The trace's first start, Unix ms (fractional). */
  startMs: number;
  /** From the first start to the last end, ms. */
  duration: number;
  maxDepth: number;
  services: string[];
  indexById: Map<string, number>;
  /** Critical-path membership and its sections (ms, per span). */
  critical: Uint8Array;
  criticalSections: Map<number, [number, number][]>;
}

const nsToMs = (ns: string | number) => Number(ns) / 1e6;

export function buildModel(trace: TraceTree): TraceModel {
  const spans: FlatSpan[] = [];
  let minStart = Infinity;
  let maxEnd = -Infinity;
  for (const r of trace.roots) {
    minStart = Math.min(minStart, nsToMs(r.start_time_unix_nano));
  }
  // Iterative pre-order walk: deep traces must not overflow the stack.
  const stack: { node: SpanNode; depth: number; parent: number }[] = [];
  for (let i = trace.roots.length - 1; i >= 0; i--) stack.push({ node: trace.roots[i], depth: 0, parent: -1 });
  let maxDepth = 0;
  const services = new Set<string>();
  while (stack.length) {
    const { node, depth, parent } = stack.pop()!;
    const children = node.children;
    const startAbs = nsToMs(node.start_time_unix_nano);
    const endAbs = Math.max(startAbs, nsToMs(node.end_time_unix_nano));
    if (startAbs < minStart) minStart = startAbs;
    if (endAbs > maxEnd) maxEnd = endAbs;
    const idx = spans.length;
    // The node itself is the span (its `children` are not read through `span`).
    spans.push({ span: node, depth, parent, children: [], descendants: 0, start: startAbs, end: endAbs, error: node.status_code === 'ERROR' });
    if (parent >= 0) spans[parent].children.push(idx);
    if (depth > maxDepth) maxDepth = depth;
    services.add(node.service_name);
    for (let i = children.length - 1; i >= 0; i--) stack.push({ node: children[i], depth: depth + 1, parent: idx });
  }
  if (!Number.isFinite(minStart)) minStart = 0;
  for (const s of spans) {
    s.start -= minStart;
    s.end -= minStart;
  }
  // Subtree sizes, children before parents (reverse pre-order).
  for (let i = spans.length - 1; i >= 0; i--) {
    const p = spans[i].parent;
    if (p >= 0) spans[p].descendants += spans[i].descendants + 1;
  }
  const indexById = new Map<string, number>();
  spans.forEach((s, i) => indexById.set(s.span.span_id, i));
  const { critical, sections } = criticalPath(spans);
  return {
    spans,
    startMs: minStart,
    duration: Math.max(0, maxEnd - minStart),
    maxDepth,
    services: [...services].sort(),
    indexById,
    critical,
    criticalSections: sections,
  };
}

/** The critical path as Jaeger computes it: start at the root that ends
 *  last; from a span's end, walk into its last-finishing child; when a span
 *  has no child finishing before the point we came back to, the stretch of
 *  it from its start is critical and the walk returns to its parent at that
 *  start. Children are first clipped to their parent's time (clock skew). */
export function criticalPath(spans: FlatSpan[]): { critical: Uint8Array; sections: Map<number, [number, number][]> } {
  const n = spans.length;
  const critical = new Uint8Array(n);
  const sections = new Map<number, [number, number][]>();
  if (n === 0) return { critical, sections };
  const cs = new Float64Array(n);
  const ce = new Float64Array(n);
  // Pre-order: parents are clipped before their children.
  for (let i = 0; i < n; i++) {
    const s = spans[i];
    const p = s.parent;
    if (p < 0) {
      cs[i] = s.start;
      ce[i] = s.end;
    } else {
      cs[i] = Math.min(Math.max(s.start, cs[p]), ce[p]);
      ce[i] = Math.max(Math.min(s.end, ce[p]), cs[i]);
    }
  }
  let root = -1;
  for (let i = 0; i < n; i++) if (spans[i].parent < 0 && (root < 0 || ce[i] > ce[root])) root = i;
  const byEnd = (i: number) => spans[i].children.slice().sort((a, b) => ce[b] - ce[a]);
  const sorted = new Map<number, number[]>();
  const kids = (i: number) => {
    let k = sorted.get(i);
    if (!k) sorted.set(i, (k = byEnd(i)));
    return k;
  };
  const visited = new Uint8Array(n);
  const add = (i: number, a: number, b: number) => {
    critical[i] = 1;
    if (b <= a) return;
    const list = sections.get(i);
    if (list) list.push([a, b]);
    else sections.set(i, [[a, b]]);
  };
  let cur = root;
  let returning: number | null = null;
  // Each step either enters an unvisited child or leaves a span for its
  // parent, so the walk ends after at most 2n steps.
  for (let guard = 0; cur >= 0 && guard <= 2 * n + 2; guard++) {
    visited[cur] = 1;
    const until = returning ?? ce[cur];
    const next = kids(cur).find((k) => !visited[k] && ce[k] <= until);
    if (next !== undefined) {
      add(cur, ce[next], until);
      cur = next;
      returning = null;
    } else {
      add(cur, cs[cur], until);
      returning = cs[cur];
      cur = spans[cur].parent;
    }
  }
  return { critical, sections };
}

/** Row order with collapsed subtrees left out. */
export function visibleRows(model: TraceModel, collapsed: Set<number>): Int32Array {
  const out = new Int32Array(model.spans.length);
  let n = 0;
  const spans = model.spans;
  for (let i = 0; i < spans.length; i++) {
    out[n++] = i;
    if (collapsed.has(i)) i += spans[i].descendants;
  }
  return out.subarray(0, n);
}

/** Nice tick spacing for a ruler over `span` ms with about `count` ticks. */
export function ticks(from: number, to: number, count = 6): number[] {
  const span = Math.max(to - from, 1e-6);
  const step = niceStep(span / count);
  const out: number[] = [];
  for (let t = Math.ceil(from / step) * step; t <= to + step * 1e-9; t += step) out.push(t);
  return out;
}

/** Whether a span is a GenAI call (has lifted gen_ai fields or attributes). */
export function isGenAi(s: SpanRow): boolean {
  return !!s.gen_ai || Object.keys(s.attributes ?? {}).some((k) => k.startsWith('gen_ai.'));
}

/** A message as the GenAI conventions record it (current `parts` shape or
 *  the older `content` / `tool_calls` shape). */
export interface GenAiMessage {
  role: string;
  parts: { type: string; text?: string; name?: string; id?: string; args?: unknown; result?: unknown }[];
  finish_reason?: string;
  source: string;
}

function asList(v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  if (typeof v === 'string') {
    try {
      const parsed = JSON.parse(v);
      if (Array.isArray(parsed)) return parsed;
      if (parsed && typeof parsed === 'object') return [parsed];
    } catch {
      return [{ content: v }];
    }
    return [{ content: v }];
  }
  if (v && typeof v === 'object') return [v];
  return [];
}

function toMessage(raw: unknown, role: string, source: string): GenAiMessage {
  let m = (raw && typeof raw === 'object' ? raw : { content: String(raw) }) as Record<string, any>;
  let finish = m.finish_reason as string | undefined;
  // `gen_ai.choice` wraps the message.
  if (m.message && typeof m.message === 'object') {
    m = m.message;
    finish = finish ?? m.finish_reason;
  }
  const parts: GenAiMessage['parts'] = [];
  if (Array.isArray(m.parts)) {
    for (const p of m.parts) {
      if (p?.type === 'tool_call') parts.push({ type: 'tool_call', name: p.name, id: p.id, args: p.arguments });
      else if (p?.type === 'tool_call_response') parts.push({ type: 'tool_result', id: p.id, result: p.response ?? p.result });
      else if (typeof p?.content === 'string' || typeof p?.text === 'string') parts.push({ type: 'text', text: p.content ?? p.text });
      else parts.push({ type: String(p?.type ?? 'part'), result: p });
    }
  } else if (typeof m.content === 'string') parts.push({ type: 'text', text: m.content });
  else if (Array.isArray(m.content)) {
    for (const p of m.content) parts.push(typeof p?.text === 'string' ? { type: 'text', text: p.text } : { type: String(p?.type ?? 'part'), result: p });
  }
  if (Array.isArray(m.tool_calls)) {
    for (const c of m.tool_calls) parts.push({ type: 'tool_call', name: c?.function?.name ?? c?.name, id: c?.id, args: c?.function?.arguments ?? c?.arguments });
  }
  return { role: String(m.role ?? role), parts, finish_reason: finish, source };
}

const EVENT_ROLES: Record<string, [boolean, string]> = {
  'gen_ai.system.message': [true, 'system'],
  'gen_ai.user.message': [true, 'user'],
  'gen_ai.content.prompt': [true, 'user'],
  'gen_ai.assistant.message': [true, 'assistant'],
  'gen_ai.tool.message': [true, 'tool'],
  'gen_ai.choice': [false, 'assistant'],
  'gen_ai.content.completion': [false, 'assistant'],
};

/** The prompt and completion of a GenAI span, from its attributes or, when
 *  those are absent, its span events (the shapes qyl's conversation view
 *  reads too). */
export function genAiMessages(s: SpanRow, logs: LogRow[] = []): { input: GenAiMessage[]; output: GenAiMessage[] } {
  const a = s.attributes ?? {};
  const input: GenAiMessage[] = [];
  const output: GenAiMessage[] = [];
  const fromLists = (attrs: Record<string, unknown>, source: string) => {
    if (attrs['gen_ai.system_instructions'] !== undefined) {
      input.push(toMessage({ role: 'system', parts: asList(attrs['gen_ai.system_instructions']) }, 'system', source));
    }
    for (const m of asList(attrs['gen_ai.input.messages'])) input.push(toMessage(m, 'user', source));
    for (const m of asList(attrs['gen_ai.output.messages'])) output.push(toMessage(m, 'assistant', source));
  };
  fromLists(a, 'attributes');
  if (input.length || output.length) return { input, output };
  // Older single attributes (`gen_ai.prompt` / `gen_ai.completion`, text or
  // JSON), and the indexed ones OpenLLMetry writes
  // (`gen_ai.prompt.0.role`, `gen_ai.completion.0.tool_calls.0.name`).
  for (const m of a['gen_ai.prompt'] !== undefined ? asList(a['gen_ai.prompt']) : []) input.push(toMessage(m, 'user', 'attributes'));
  for (const m of a['gen_ai.completion'] !== undefined ? asList(a['gen_ai.completion']) : []) output.push(toMessage(m, 'assistant', 'attributes'));
  const indexed: Record<string, Record<number, Record<string, any>>> = { prompt: {}, completion: {} };
  for (const [k, v] of Object.entries(a)) {
    const m = /^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$/.exec(k);
    if (!m) continue;
    const msg = (indexed[m[1]][Number(m[2])] ??= {});
    const call = /^tool_calls\.(\d+)\.(name|arguments|id)$/.exec(m[3]);
    if (call) {
      const calls = (msg.tool_calls ??= []);
      (calls[Number(call[1])] ??= {})[call[2]] = v;
    } else msg[m[3]] = v;
  }
  for (const [kind, target, role] of [['prompt', input, 'user'], ['completion', output, 'assistant']] as const) {
    Object.keys(indexed[kind])
      .map(Number)
      .sort((x, y) => x - y)
      .forEach((i) => {
        const msg = indexed[kind][i];
        if (msg.tool_calls) msg.tool_calls = msg.tool_calls.filter(Boolean);
        target.push(toMessage(msg, role, 'attributes'));
      });
  }
  if (input.length || output.length) return { input, output };
  // Span events, else log events of the span (instrumentations that emit
  // the messages as logs, with the message in the body).
  const events: { name: string; attributes: Record<string, unknown>; body?: unknown }[] = (s.events ?? []).map((e) => ({ name: e.name, attributes: e.attributes ?? {} }));
  if (!events.some((e) => e.name.startsWith('gen_ai.'))) {
    for (const l of logs) {
      if (l.span_id !== s.span_id || !l.event_name?.startsWith('gen_ai.')) continue;
      events.push({ name: l.event_name, attributes: l.attributes ?? {}, body: l.body === null ? undefined : safeJson(l.body) });
    }
  }
  for (const ev of events) {
    const attrs = ev.attributes;
    if (ev.body !== undefined && EVENT_ROLES[ev.name]) {
      const [isInput, role] = EVENT_ROLES[ev.name];
      (isInput ? input : output).push(toMessage(ev.body, role, 'log'));
      continue;
    }
    if (ev.name === 'gen_ai.client.inference.operation.details') {
      fromLists(attrs, 'event');
      continue;
    }
    const kind = EVENT_ROLES[ev.name];
    if (!kind) continue;
    const [isInput, role] = kind;
    const target = isInput ? input : output;
    const legacy = attrs['gen_ai.prompt'] ?? attrs['gen_ai.completion'] ?? attrs['content'];
    if (attrs['message'] !== undefined || attrs['finish_reason'] !== undefined) {
      const inner = typeof attrs['message'] === 'string' ? safeJson(attrs['message'] as string) : attrs['message'];
      target.push(toMessage({ message: inner, finish_reason: attrs['finish_reason'] }, role, 'event'));
    } else if (legacy !== undefined) {
      for (const m of asList(legacy)) target.push(toMessage(m, role, 'event'));
    } else target.push(toMessage(attrs, role, 'event'));
  }
  return { input, output };
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return { content: s };
  }
}

/** Event time relative to its span's start, ms. */
export function eventOffset(ev: SpanEvent, span: SpanRow): number {
  return (Number(ev.time_unix_nano) - Number(span.start_time_unix_nano)) / 1e6;
}

/** Log time as Unix ms. */
export const logMs = (l: LogRow) => toMs(l.time_unix_nano);

/** Dark text on light service colours, white on dark ones (for labels
 *  drawn inside bars). */
export function textOn(hex: string): string {
  const n = parseInt(hex.slice(1), 16);
  const lum = (0.299 * ((n >> 16) & 255) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255)) / 255;
  return lum > 0.6 ? '#111827' : '#ffffff';
}
