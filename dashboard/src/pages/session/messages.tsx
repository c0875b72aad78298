// How one recorded LLM message reads in the session replay: its text
// (clamped when long), its tool calls and tool results as collapsible blocks
// with pretty-printed JSON, whatever the recording format (semantic
// convention "parts", or OpenAI-style `tool_calls` from older instrumentations).
import type { ComponentChildren } from 'preact';
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { ConversationTurn } from '../genai/types';

export interface ToolCall {
  id: string | null;
  name: string;
  arguments: unknown;
}

export interface ToolResult {
  id: string | null;
  response: unknown;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

function parts(m: Obj): Obj[] {
  return Array.isArray(m.parts) ? m.parts.filter(isObj) : [];
}

export function toolCalls(t: ConversationTurn): ToolCall[] {
  const m = t.message;
  const out: ToolCall[] = [];
  for (const p of parts(m)) if (p.type === 'tool_call') out.push({ id: str(p.id), name: str(p.name) ?? '?', arguments: p.arguments });
  if (Array.isArray(m.tool_calls))
    for (const c of m.tool_calls.filter(isObj)) {
      const f = isObj(c.function) ? c.function : c;
      out.push({ id: str(c.id), name: str(f.name) ?? '?', arguments: f.arguments });
    }
  return out;
}

export function toolResults(t: ConversationTurn): ToolResult[] {
  const m = t.message;
  const out: ToolResult[] = [];
  for (const p of parts(m)) if (p.type === 'tool_call_response') out.push({ id: str(p.id), response: p.response ?? p.result });
  if (!out.length && t.role === 'tool') out.push({ id: str(m.tool_call_id) ?? str(m.id), response: m.content ?? t.content });
  return out;
}

/** Parts that are neither text nor tool traffic (images, reasoning, …). */
export function otherParts(t: ConversationTurn): Obj[] {
  return parts(t.message).filter((p) => p.type !== 'text' && p.type !== 'tool_call' && p.type !== 'tool_call_response');
}

/** A JSON value (or a string holding JSON) pretty-printed; other text as is. */
export function pretty(v: unknown): string {
  if (typeof v === 'string') {
    const s = v.trim();
    if ((s.startsWith('{') && s.endsWith('}')) || (s.startsWith('[') && s.endsWith(']'))) {
      try {
        return JSON.stringify(JSON.parse(s), null, 2);
      } catch {
        return v;
      }
    }
    return v;
  }
  if (v === undefined) return '';
  return JSON.stringify(v, null, 2);
}

/** `city: "Paris", unit: "celsius"` — the arguments in one line, for the summary. */
export function argsInline(v: unknown, max = 80): string {
  let o: unknown = v;
  if (typeof v === 'string') {
    try {
      o = JSON.parse(v);
    } catch {
      o = v;
    }
  }
  const s = isObj(o)
    ? Object.entries(o)
        .map(([k, x]) => `${k}: ${JSON.stringify(x)}`)
        .join(', ')
    : typeof o === 'string'
      ? o
      : JSON.stringify(o ?? '');
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** Text clamped to a few lines, with "Show more" when it overflows. */
export function Clamped({ text, lines = 8 }: { text: string; lines?: number }) {
  const ref = useRef<HTMLDivElement>(null);
  const [open, setOpen] = useState(false);
  const [overflows, setOverflows] = useState(false);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el || open) return;
    // Chromium's line clamp hides the rest instead of overflowing, so
    // scrollHeight cannot tell: measure the text once without the clamp.
    const clamped = el.getBoundingClientRect().height;
    el.classList.remove('clamped');
    const full = el.getBoundingClientRect().height;
    el.classList.add('clamped');
    setOverflows(full > clamped + 2);
  }, [text, open]);
  return (
    <div>
      <div ref={ref} class={`msg-text${open ? '' : ' clamped'}`} style={{ '--lines': lines }}>
        {text}
      </div>
      {(overflows || open) && (
        <button type="button" class="linklike msg-more" aria-expanded={open} onClick={() => setOpen(!open)}>
          {open ? 'Show less' : `Show more (${text.length.toLocaleString('en-US')} characters)`}
        </button>
      )}
    </div>
  );
}

/** A collapsible block: a one-line summary that opens on click or Enter. */
export function Fold({ summary, open = false, tone, children }: { summary: ComponentChildren; open?: boolean; tone?: 'tool' | 'system' | 'bad'; children: ComponentChildren }) {
  return (
    <details class={`fold${tone ? ` fold-${tone}` : ''}`} open={open}>
      <summary>{summary}</summary>
      <div class="fold-body">{children}</div>
    </details>
  );
}
