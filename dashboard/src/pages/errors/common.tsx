// What the Errors list and the error group page share: the API's shapes for
// groups and their histogram, how a status reads to a person (the API says
// "archived", people coming from Sentry say "ignored"), the GenAI error
// classes, and the status changes both pages send.
import { Badge } from '../../components/page';
import { apiGet, apiSend } from '../../lib/api';
import type { ErrorGroupRow } from '../../lib/types';

export interface Histogram {
  start_unix_nano: string;
  step_ms: number;
  buckets: number;
  groups: { id: number; counts: number[] }[];
}

/** The group's headline: its type, else what failed. */
export function groupTitle(g: Pick<ErrorGroupRow, 'error_type' | 'culprit' | 'category'>): string {
  return g.error_type || g.culprit || (g.category === 'genai_soft' ? 'GenAI soft failure' : 'Error');
}

/** `json.decoder.JSONDecodeError` → `JSONDecodeError` for tight places. */
export function shortType(t: string | null | undefined): string {
  if (!t) return '';
  const parts = t.split(/[.:]+/).filter(Boolean);
  return parts[parts.length - 1] ?? t;
}

export const STATUS_LABEL: Record<string, string> = {
  unresolved: 'Unresolved',
  resolved: 'Resolved',
  archived: 'Ignored',
  merged: 'Merged',
};

const SUBSTATUS_LABEL: Record<string, string> = {
  new: 'New',
  ongoing: 'Ongoing',
  regressed: 'Regressed',
  escalating: 'Escalating',
  now: 'Resolved',
  in_next_release: 'Resolved in next release',
  auto: 'Auto-resolved',
  forever: 'Ignored',
  until_escalating: 'Ignored until escalating',
};

/** One badge saying where the group stands (substatus when it says more). */
export function StatusBadge({ g }: { g: Pick<ErrorGroupRow, 'status' | 'substatus' | 'merged_into'> }) {
  if (g.status === 'merged') return <Badge title={g.merged_into ? `Merged into #${g.merged_into}` : undefined}>Merged</Badge>;
  const label = SUBSTATUS_LABEL[g.substatus] ?? STATUS_LABEL[g.status] ?? g.status;
  const tone =
    g.status === 'resolved'
      ? 'good'
      : g.status === 'archived'
        ? 'neutral'
        : g.substatus === 'regressed' || g.substatus === 'escalating'
          ? 'bad'
          : g.substatus === 'new'
            ? 'warn'
            : 'info';
  return (
    <Badge tone={tone} title={`status ${g.status}, ${g.substatus}`}>
      {label}
    </Badge>
  );
}

const GENAI_CLASS_LABEL: Record<string, string> = {
  rate_limited: 'Rate limited',
  context_length_exceeded: 'Context too long',
  content_filtered: 'Content filtered',
  auth: 'Auth',
  timeout: 'Timeout',
  overloaded: 'Overloaded',
  invalid_request: 'Invalid request',
  tool_error: 'Tool error',
  output_parse_error: 'Output parse error',
  truncated: 'Truncated',
  other: 'Other',
};

/** The GenAI error class (`rate_limited` → “Rate limited”), for GenAI groups. */
export function GenAiBadge({ g }: { g: Pick<ErrorGroupRow, 'gen_ai' | 'category'> }) {
  const cls = g.gen_ai?.error_class;
  if (!cls && g.category !== 'genai' && g.category !== 'genai_soft') return null;
  const label = cls ? (GENAI_CLASS_LABEL[cls] ?? cls) : 'GenAI';
  const model = g.gen_ai?.model;
  return (
    <Badge tone="accent" title={`GenAI ${g.category === 'genai_soft' ? 'soft failure' : 'failure'}${cls ? `: ${cls}` : ''}${model ? ` (model ${model})` : ''}`}>
      ✦ {label}
    </Badge>
  );
}

/** What a status change or merge did, shown above the list until dismissed. */
export interface Notice {
  tone: 'good' | 'bad';
  text: string;
}

export function StatusNotice({ notice, onDismiss }: { notice: Notice; onDismiss: () => void }) {
  return (
    <div class={`errors-notice errors-notice-${notice.tone}`} role="status">
      {notice.text}
      <button class="btn btn-sm" onClick={onDismiss} aria-label="Dismiss">
        ×
      </button>
    </div>
  );
}

export const CATEGORY_LABEL: Record<string, string> = {
  exception: 'Exception',
  status: 'Failed span',
  genai: 'GenAI failure',
  genai_soft: 'GenAI soft failure',
};

/** The status changes the UI offers, as the PATCH body each sends. */
export type StatusAction = 'resolve' | 'resolve_next' | 'ignore' | 'ignore_until_escalating' | 'unresolve';

export const ACTION_BODY: Record<StatusAction, { status: string; in_next_release?: boolean; until_escalating?: boolean }> = {
  resolve: { status: 'resolved' },
  resolve_next: { status: 'resolved', in_next_release: true },
  ignore: { status: 'archived' },
  ignore_until_escalating: { status: 'archived', until_escalating: true },
  unresolve: { status: 'unresolved' },
};

export const ACTION_DONE: Record<StatusAction, string> = {
  resolve: 'Resolved',
  resolve_next: 'Resolved in the next release',
  ignore: 'Ignored',
  ignore_until_escalating: 'Ignored until it escalates',
  unresolve: 'Reopened',
};

export function patchStatus(id: number, action: StatusAction): Promise<ErrorGroupRow> {
  return apiSend<ErrorGroupRow>('PATCH', `/errors/${id}`, ACTION_BODY[action]);
}

/** Counts per bucket for `ids` over the range, or null when the histogram
 *  cannot be had (the list still works without its sparklines). */
export async function loadHistogram(ids: number[], params: { since: string; until?: string; step: string }, signal?: AbortSignal): Promise<Histogram | null> {
  if (ids.length === 0) return null;
  try {
    return await apiGet<Histogram>('/errors/histogram', { ids: ids.join(','), ...params }, signal);
  } catch (e) {
    if ((e as Error)?.name === 'AbortError') throw e;
    return null;
  }
}

/** Events per bucket as tiny bars (counts read better as bars than as a
 *  line); the shared Sparkline draws lines only. */
export function CountBars({ counts, width = 96, height = 26, label }: { counts: number[]; width?: number; height?: number; label?: string }) {
  const max = Math.max(1, ...counts);
  const n = Math.max(counts.length, 1);
  const slot = width / n;
  const bar = Math.max(1, slot - (slot > 3 ? 1 : 0));
  const total = counts.reduce((a, b) => a + b, 0);
  return (
    <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`} class="count-bars" role="img" aria-label={label ?? `${total} events`}>
      <line x1="0" x2={width} y1={height - 0.5} y2={height - 0.5} class="count-bars-base" />
      {counts.map((c, i) => {
        if (c === 0) return null;
        const h = Math.max(2, (c / max) * (height - 2));
        return <rect key={i} x={i * slot} y={height - h} width={bar} height={h} rx="1" class="count-bars-bar" />;
      })}
    </svg>
  );
}
