// The severity histogram above the Logs list: how many logs match the
// filters per time bucket, stacked by level (Loki/Datadog style), counted by
// GET /api/v1/logs/histogram over the whole range, whatever the list has
// loaded. Plain DOM bars: stacked bars in the theme's colours, crisp at any
// width, and a click on a bar narrows the time range to it.
import { useMemo } from 'preact/hooks';
import { fmtNum } from '../../lib/format';
import { fmtClock, fmtDateTime, toMs } from '../../lib/time';
import { LEVELS, type Level } from '../../lib/severity';

/** The answer of /api/v1/logs/histogram. */
export interface LogHistogram {
  start_unix_nano: string;
  step_ms: number;
  buckets: number;
  levels: { severity: string; total: number; counts: number[] }[];
  total: number;
}

/** Stacking order, top to bottom. */
const ORDER: Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'unset'];
const EMPTY: Record<Level, number> = { trace: 0, debug: 0, info: 0, warn: 0, error: 0, fatal: 0, unset: 0 };

interface Props {
  data: LogHistogram | undefined;
  /** A new question is being counted: the old bars stay, dimmed. */
  busy: boolean;
  error: Error | undefined;
  /** Filters narrow the counts (for the empty message). */
  filtered: boolean;
  onSelect: (fromMs: number, toMs: number) => void;
  onLevel: (level: Level) => void;
}

export function SeverityHistogram({ data, busy, error, filtered, onSelect, onLevel }: Props) {
  const { buckets, first, stepMs, max, totals } = useMemo(() => {
    const totals: Record<Level, number> = { ...EMPTY };
    if (!data) return { buckets: [] as Record<Level, number>[], first: 0, stepMs: 60e3, max: 0, totals };
    const buckets: Record<Level, number>[] = Array.from({ length: data.buckets }, () => ({ ...EMPTY }));
    for (const l of data.levels) {
      const level = l.severity.toLowerCase() as Level;
      if (!(level in totals)) continue;
      totals[level] += l.total;
      l.counts.forEach((n, i) => buckets[i] && (buckets[i][level] += n));
    }
    let max = 0;
    for (const b of buckets) max = Math.max(max, sum(b));
    return { buckets, first: toMs(data.start_unix_nano), stepMs: data.step_ms, max, totals };
  }, [data]);

  const end = first + buckets.length * stepMs;
  const span = Math.max(1, end - first);
  const sameDay = new Date(first).toDateString() === new Date(end).toDateString();
  const label = (ms: number) => (sameDay ? fmtClock(ms).slice(0, stepMs >= 60e3 ? 5 : 8) : fmtDateTime(ms).slice(5, 16));
  const ticks = 6;
  const shown = [...LEVELS.map((l) => l.id), 'unset' as const].filter((l) => totals[l] > 0);

  return (
    <div class={`logs-hist${busy ? ' logs-hist-busy' : ''}`} aria-busy={busy}>
      <div class="logs-hist-legend">
        {error && !data ? (
          <span class="tone-bad">Could not count logs: {error.message}</span>
        ) : !data ? (
          <span class="muted">Counting logs…</span>
        ) : shown.length === 0 ? (
          <span class="muted">{filtered ? 'No logs match in this range' : 'No logs in this range'}</span>
        ) : (
          shown.map((l) => (
            <button key={l} class="logs-hist-key" onClick={() => l !== 'unset' && onLevel(l)} title={l === 'unset' ? 'No severity' : `Show ${l.toUpperCase()} and above`} disabled={l === 'unset'}>
              <span class={`logs-swatch lvl-bg-${l}`} aria-hidden="true" />
              {l === 'unset' ? 'no level' : l.toUpperCase()} <span class="num muted">{fmtNum(totals[l])}</span>
            </button>
          ))
        )}
        {data && (
          <span class="logs-hist-total muted" title={error ? `Refresh failed: ${error.message}` : undefined}>
            <span class="num">{fmtNum(data.total)}</span> {data.total === 1 ? 'log' : 'logs'} in range
            {error && <span class="tone-bad"> · refresh failed</span>}
          </span>
        )}
      </div>
      <div class="logs-hist-plot">
        <div class="logs-hist-y" aria-hidden="true">
          <span>{max > 0 ? fmtNum(max, true) : ''}</span>
          <span>{max > 1 ? fmtNum(Math.round(max / 2), true) : ''}</span>
          <span>0</span>
        </div>
        <div class="logs-hist-area" role="img" aria-label={`Log counts per ${fmtStep(stepMs)} by severity, maximum ${max}`}>
          <div class="logs-hist-bars">
            {buckets.map((b, i) => {
              const total = sum(b);
              const from = first + i * stepMs;
              const tip = `${fmtDateTime(from)} – ${fmtClock(from + stepMs).slice(0, 8)}\n${fmtNum(total)} logs${ORDER.filter((l) => b[l]).map((l) => `\n${l === 'unset' ? 'no level' : l.toUpperCase()}: ${fmtNum(b[l])}`).join('')}`;
              return (
                <button key={i} class="logs-hist-col" tabIndex={-1} title={tip} aria-label={tip.replace(/\n/g, ', ')} disabled={total === 0} onClick={() => onSelect(from, from + stepMs)}>
                  <span class="logs-hist-stack" style={{ height: max ? `${(total / max) * 100}%` : '0' }}>
                    {ORDER.map((l) => (b[l] ? <span key={l} class={`lvl-bg-${l}`} style={{ flexGrow: b[l] }} /> : null))}
                  </span>
                </button>
              );
            })}
          </div>
        </div>
      </div>
      <div class="logs-hist-x" aria-hidden="true">
        {data && Array.from({ length: ticks }, (_, i) => <span key={i}>{label(first + (span * i) / (ticks - 1))}</span>)}
      </div>
    </div>
  );
}

function sum(b: Record<Level, number>): number {
  return b.trace + b.debug + b.info + b.warn + b.error + b.fatal + b.unset;
}

/** `30 s`, `5 min`, `1 h` for the chart's label. */
function fmtStep(ms: number): string {
  if (ms < 60e3) return `${+(ms / 1e3).toFixed(3)} s`;
  if (ms < 3600e3) return `${+(ms / 60e3).toFixed(2)} min`;
  return `${+(ms / 3600e3).toFixed(2)} h`;
}
