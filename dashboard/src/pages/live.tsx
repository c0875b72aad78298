// The Live page: qyl's live stream (spans, logs, error groups, function
// results) as it arrives, newest on top, like `vector tap` or Datadog's live
// tail. Filters live in the URL and reconnect the stream, resuming after the
// last event seen. Pausing keeps the connection and keeps counting what
// arrives into a bounded buffer; resuming shows it. At most MAX_ROWS rows are
// kept, and only those in view are rendered.
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { DebouncedInput } from '../components/debounced-input';
import { SeverityOptions } from '../components/options';
import { PageHeader, Badge } from '../components/page';
import { Time } from '../components/time';
import { useVirtualizer } from '../components/virtual';
import { useApi } from '../lib/fetch';
import { colorFor, fmtMs, fmtNum, plural, valueText } from '../lib/format';
import { LiveStream, type StreamStatus } from '../lib/live-stream';
import { useParams, useSetParams, withRange } from '../lib/params';
import { LEVELS, levelLabel, levelOf, type Level } from '../lib/severity';
import { rangeParams, useTimeRange } from '../lib/time';
import './live.css';

/** Rows kept in memory (and the most a paused buffer holds). */
export const MAX_ROWS = 2000;
const ROW_HEIGHT = 32;
const rowHeight = () => ROW_HEIGHT;
const ALL_TYPES = ['span', 'log', 'error', 'function'] as const;
type LiveType = (typeof ALL_TYPES)[number];
const TYPE_LABEL: Record<LiveType, string> = { span: 'Spans', log: 'Logs', error: 'Errors', function: 'Functions' };

/** What a row needs, cut down from the record so 2,000 rows stay small. */
interface LiveRow {
  key: string;
  type: LiveType;
  time: string | number;
  service: string;
  title: string;
  /** Span duration (ms), function duration. */
  durationMs?: number;
  badge?: { text: string; tone: 'neutral' | 'bad' | 'warn' | 'good' | 'info' | 'accent' };
  href?: string;
  /** For re-filtering kept rows when the filters change. */
  status?: string;
  severity?: number;
  level?: Level;
}

interface Filters {
  types: LiveType[];
  service: string;
  status: string;
  minMs: string;
  severity: string;
}

const LEVEL_TONE: Record<Level, NonNullable<LiveRow['badge']>['tone']> = {
  trace: 'neutral',
  debug: 'neutral',
  info: 'info',
  warn: 'warn',
  error: 'bad',
  fatal: 'bad',
  unset: 'neutral',
};

const FUNCTION_TONE: Record<string, NonNullable<LiveRow['badge']>['tone']> = {
  completed: 'good',
  running: 'info',
  skipped: 'warn',
  failed: 'bad',
  timed_out: 'bad',
};

function short(v: unknown, n = 160): string {
  const s = valueText(v);
  if (s === undefined) return '';
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

let keySeq = 0;

/** A stream record as a row; null for kinds the page does not show. */
export function toRow(type: string, id: number | null, d: any): LiveRow | null {
  const key = id !== null ? `${type}:${id}` : `${type}:n${keySeq++}`;
  switch (type) {
    case 'span': {
      const status = String(d.status_code ?? 'UNSET');
      return {
        key,
        type,
        time: d.start_time ?? d.start_time_unix_nano,
        service: d.service_name ?? '',
        title: d.name ?? '',
        durationMs: typeof d.duration_ms === 'number' ? d.duration_ms : undefined,
        badge: status === 'ERROR' ? { text: 'ERROR', tone: 'bad' } : status === 'OK' ? { text: 'OK', tone: 'good' } : { text: 'UNSET', tone: 'neutral' },
        href: d.trace_id ? `/traces/${d.trace_id}` : undefined,
        status,
      };
    }
    case 'log': {
      const level = levelOf(d.severity_number, d.severity_text);
      const sev = d.severity_number || (level === 'unset' ? 0 : LEVELS.find((l) => l.id === level)!.min);
      return {
        key,
        type,
        time: d.time ?? d.time_unix_nano,
        service: d.service_name ?? '',
        title: d.body ?? d.event_name ?? '',
        badge: { text: levelLabel(level, d.severity_text), tone: LEVEL_TONE[level] },
        href: d.trace_id ? `/traces/${d.trace_id}` : undefined,
        severity: sev,
        level,
      };
    }
    case 'error': {
      const what = [d.error_type, d.message_template].filter(Boolean).join(': ') || d.culprit || `group ${d.group_id}`;
      return {
        key,
        type,
        time: d.last_seen_unix_nano,
        service: d.service_name ?? '',
        title: `${what} · ${plural(d.count, 'event')}`,
        badge: { text: String(d.change ?? 'changed').toUpperCase(), tone: d.change === 'new' ? 'accent' : 'bad' },
        href: d.group_id !== undefined ? `/errors/${d.group_id}` : undefined,
      };
    }
    case 'function': {
      const fn = String(d.function ?? '');
      if (d.kind === 'publish') {
        return {
          key,
          type,
          time: d.time,
          service: fn,
          title: `${d.topic} ← ${short(d.value)}`,
          badge: { text: 'PUBLISH', tone: 'info' },
          href: `/functions?fn=${encodeURIComponent(fn)}`,
        };
      }
      const status = String(d.status ?? '');
      return {
        // A running invocation's row is replaced by its final one.
        key: d.invocation_id ? `function:${d.invocation_id}` : key,
        type,
        time: d.started_at,
        service: fn,
        title: d.error ? short(d.error) : d.result === null || d.result === undefined ? (status === 'running' ? 'running…' : '(no result)') : short(d.result),
        durationMs: typeof d.duration_ms === 'number' && status !== 'running' ? d.duration_ms : undefined,
        badge: { text: status.replace('_', ' ').toUpperCase(), tone: FUNCTION_TONE[status] ?? 'neutral' },
        href: `/functions?fn=${encodeURIComponent(fn)}`,
      };
    }
    default:
      return null;
  }
}

/** Whether a kept row passes the filters (the server applies the same). */
function rowMatches(r: LiveRow, f: Filters): boolean {
  if (!f.types.includes(r.type)) return false;
  if (r.type === 'function') return true;
  if (f.service && r.service !== f.service) return false;
  if (r.type === 'span') {
    if (f.status && r.status !== f.status.toUpperCase()) return false;
    if (f.minMs && (r.durationMs ?? 0) < Number(f.minMs)) return false;
  }
  if (r.type === 'log' && f.severity) {
    const min = LEVELS.find((l) => l.label === f.severity)?.min ?? 0;
    if ((r.severity ?? 0) < min) return false;
  }
  return true;
}

function readFilters(p: URLSearchParams): Filters {
  const t = p.get('types');
  const types = t === null ? [...ALL_TYPES] : (t.split(',').filter((x) => (ALL_TYPES as readonly string[]).includes(x)) as LiveType[]);
  return { types, service: p.get('service') ?? '', status: p.get('status') ?? '', minMs: p.get('min_duration_ms') ?? '', severity: p.get('severity_min') ?? '' };
}

const STATUS_TEXT: Record<StreamStatus, string> = { connecting: 'Connecting…', open: 'Connected', reconnecting: 'Reconnecting…', stopped: 'Stopped' };

export function Live() {
  const p = useParams();
  const set = useSetParams();
  const filters = readFilters(p);
  const filterKey = JSON.stringify(filters);
  const range = useTimeRange();
  const services = useApi<{ name: string }[]>('/services', rangeParams(range), { refresh: false });
  const serviceNames = useMemo(() => (services.data ?? []).map((s) => s.name), [services.data]);

  const [rows, setRows] = useState<LiveRow[]>([]);
  const [status, setStatus] = useState<StreamStatus>('connecting');
  const [paused, setPaused] = useState(false);
  const [stopped, setStopped] = useState(false);
  const [atTop, setAtTop] = useState(true);
  const [pendingCount, setPendingCount] = useState(0);
  const [rate, setRate] = useState(0);
  const [received, setReceived] = useState(0);
  const [notices, setNotices] = useState<{ id: number; text: string }[]>([]);

  const pending = useRef<LiveRow[]>([]);
  const dropped = useRef(0);
  const stamps = useRef<number[]>([]);
  const total = useRef(0);
  const stream = useRef<LiveStream | null>(null);
  const lastId = useRef<number | null>(null);
  const held = paused || !atTop;
  const heldRef = useRef(held);
  heldRef.current = held;
  const scroller = useRef<HTMLDivElement>(null);

  const notice = (text: string) => setNotices((n) => [...n.slice(-3), { id: Date.now() + Math.random(), text }]);

  // One stream per filter set; a new one resumes after the last id seen.
  useEffect(() => {
    setRows((rs) => rs.filter((r) => rowMatches(r, filters)));
    pending.current = pending.current.filter((r) => rowMatches(r, filters));
    if (filters.types.length === 0 || stopped) {
      setStatus('stopped');
      return;
    }
    const params = {
      service: filters.service || undefined,
      status: filters.status || undefined,
      min_duration_ms: filters.minMs || undefined,
      severity_min: filters.severity || undefined,
    };
    const s = new LiveStream(params, filters.types, {
      onRecord(type, id, data) {
        const row = toRow(type, id, data);
        if (!row) return;
        pending.current.push(row);
        if (pending.current.length > MAX_ROWS) {
          dropped.current += pending.current.length - MAX_ROWS;
          pending.current.splice(0, pending.current.length - MAX_ROWS);
        }
        stamps.current.push(performance.now());
        total.current++;
      },
      onGap(missed, fellBehind) {
        notice(
          fellBehind
            ? `The page fell behind the stream and ${fmtNum(missed)} events were skipped (no longer in qyl's replay buffer).`
            : `${fmtNum(missed)} events were missed while disconnected: they had already left qyl's replay buffer.`,
        );
      },
      onStatus: setStatus,
    });
    s.lastId = lastId.current;
    stream.current = s;
    s.open();
    return () => {
      lastId.current = s.lastId;
      s.stop();
      stream.current = null;
    };
  }, [filterKey, stopped]);

  // Rows are added a few times a second, not once per event: at thousands
  // of events a second that is what keeps the page responsive.
  useEffect(() => {
    const flush = () => {
      const now = performance.now();
      const st = stamps.current;
      let i = 0;
      while (i < st.length && st[i] < now - 5000) i++;
      if (i) st.splice(0, i);
      setRate(st.length / Math.min(5, Math.max(1, (now - mountedAt) / 1000)));
      setReceived(total.current);
      if (stream.current) lastId.current = stream.current.lastId;
      if (heldRef.current) {
        setPendingCount(pending.current.length + dropped.current);
        return;
      }
      if (pending.current.length === 0) return;
      const fresh = pending.current.reverse();
      pending.current = [];
      dropped.current = 0;
      setPendingCount(0);
      setRows((rs) => {
        // Keys repeat only for an invocation's running and final rows.
        const seen = new Set<string>();
        const merged: LiveRow[] = [];
        for (const r of [...fresh, ...rs]) {
          if (merged.length >= MAX_ROWS) break;
          if (seen.has(r.key)) continue;
          seen.add(r.key);
          merged.push(r);
        }
        return merged;
      });
    };
    const mountedAt = performance.now();
    const t = setInterval(flush, 250);
    return () => clearInterval(t);
  }, []);

  // Scrolling away from the top holds new rows back (the "N new" bar), so
  // what the user reads does not move under them.
  const onScroll = () => {
    const el = scroller.current;
    if (el) setAtTop(el.scrollTop < 4);
  };

  // The list re-renders when rows change or it scrolls, not on every
  // counter update of the header (an identical vnode is not re-diffed).
  const list = useMemo(() => <LiveList rows={rows} scroller={() => scroller.current} />, [rows]);

  const jumpToTop = () => {
    scroller.current?.scrollTo({ top: 0 });
    setAtTop(true);
    setPaused(false);
  };

  const setFilter = (changes: Record<string, string | null>, replace = false) => set(changes, { replace });

  const toggleType = (t: LiveType) => {
    const next = filters.types.includes(t) ? filters.types.filter((x) => x !== t) : ALL_TYPES.filter((x) => x === t || filters.types.includes(x));
    setFilter({ types: next.length === ALL_TYPES.length ? null : next.join(',') || 'none' });
  };
  const spansOn = filters.types.includes('span');
  const logsOn = filters.types.includes('log');
  const statusTone = status === 'open' ? 'good' : status === 'stopped' ? 'idle' : 'warn';

  return (
    <div class="live-page">
      <PageHeader
        title="Live"
        subtitle="Spans, logs, error groups and function results as qyl commits them, newest first."
      >
        <span class={`live-status live-status-${statusTone}`} data-status={status} data-received={received}>
          <span class="live-status-dot" aria-hidden="true" />
          <span class="live-status-text" role="status" aria-live="polite">
            {STATUS_TEXT[status]}
          </span>
          <span class="live-status-rate num" title="Events received per second, over the last 5 s">
            {rate >= 10 ? fmtNum(Math.round(rate)) : rate.toFixed(1)} ev/s
          </span>
          <span class="muted num" title="Events received since the page opened">
            {fmtNum(received, true)} received
          </span>
        </span>
        <button class={`btn${paused ? ' btn-primary' : ''}`} onClick={() => (paused ? jumpToTop() : setPaused(true))} aria-pressed={paused} disabled={stopped}>
          {paused ? '▶ Resume' : '❚❚ Pause'}
        </button>
        <button class="btn" onClick={() => setStopped(!stopped)} title={stopped ? 'Reconnect, resuming after the last event received' : 'Close the connection to qyl'}>
          {stopped ? 'Reconnect' : 'Disconnect'}
        </button>
        <button class="btn" onClick={() => { setRows([]); pending.current = []; dropped.current = 0; setPendingCount(0); }} disabled={rows.length === 0}>
          Clear
        </button>
      </PageHeader>

      <div class="filters live-filters" role="group" aria-label="Stream filters">
        <fieldset class="live-types">
          <legend class="sr-only">Record types</legend>
          {ALL_TYPES.map((t) => (
            <label key={t} class={`live-type${filters.types.includes(t) ? ' on' : ''}`}>
              <input type="checkbox" checked={filters.types.includes(t)} onChange={() => toggleType(t)} />
              {TYPE_LABEL[t]}
            </label>
          ))}
        </fieldset>
        <label class="field">
          Service
          {/* Typed into: the URL (and the stream) follow after a pause. */}
          <DebouncedInput
            data-search
            list="live-services"
            placeholder="any service"
            value={filters.service}
            delayMs={400}
            onCommit={(text) => setFilter({ service: text || null }, true)}
          />
          <datalist id="live-services">
            {serviceNames.map((s) => (
              <option key={s} value={s} />
            ))}
          </datalist>
        </label>
        <label class="field">
          Span status
          <select value={filters.status} disabled={!spansOn} onChange={(e) => setFilter({ status: (e.target as HTMLSelectElement).value || null })}>
            <option value="">any</option>
            <option value="ok">OK</option>
            <option value="error">Error</option>
            <option value="unset">Unset</option>
          </select>
        </label>
        <label class="field">
          Min span duration (ms)
          <input
            type="number"
            min="0"
            step="any"
            class="live-num"
            placeholder="0"
            disabled={!spansOn}
            value={filters.minMs}
            onChange={(e) => setFilter({ min_duration_ms: (e.target as HTMLInputElement).value || null }, true)}
          />
        </label>
        <label class="field">
          Min log severity
          <select value={filters.severity} disabled={!logsOn} onChange={(e) => setFilter({ severity_min: (e.target as HTMLSelectElement).value || null })}>
            <SeverityOptions anyLabel="any" />
          </select>
        </label>
      </div>

      {notices.length > 0 && (
        <div class="live-notices">
          {notices.map((n) => (
            <div key={n.id} class="live-notice" role="alert">
              <span aria-hidden="true">⚠</span>
              <span class="grow">{n.text}</span>
              <button class="btn btn-sm" onClick={() => setNotices((ns) => ns.filter((x) => x.id !== n.id))} aria-label="Dismiss">
                ✕
              </button>
            </div>
          ))}
        </div>
      )}

      <section class="card flush live-list-card">
        <div class="live-head" role="row">
          <span>Type</span>
          <span>Time</span>
          <span>Service / function</span>
          <span>Status</span>
          <span>Summary</span>
          <span class="num">Duration</span>
        </div>
        {held && pendingCount > 0 && (
          <button class="live-pending" onClick={jumpToTop}>
            {paused ? 'Paused' : 'Scrolled away'} — {fmtNum(pendingCount)} new {pendingCount === 1 ? 'event' : 'events'}
            {pendingCount > MAX_ROWS ? ` (showing the newest ${fmtNum(MAX_ROWS)})` : ''} · show them
          </button>
        )}
        <div class="live-scroll" ref={scroller} onScroll={onScroll} role="table" aria-label="Live events" aria-rowcount={rows.length}>
          {rows.length === 0 ? (
            <div class="state state-empty live-empty">
              <strong>{status === 'stopped' ? 'Disconnected' : filters.types.length === 0 ? 'No record types selected' : 'Waiting for events…'}</strong>
              <span>
                {status === 'stopped'
                  ? 'Reconnect to resume after the last event received.'
                  : filters.types.length === 0
                    ? 'Tick at least one type above.'
                    : 'New records matching the filters appear here as soon as qyl commits them.'}
              </span>
              {paused && pendingCount > 0 && <span>{fmtNum(pendingCount)} events are waiting: press Resume.</span>}
            </div>
          ) : (
            list
          )}
        </div>
        <div class="live-foot muted">
          {plural(rows.length, 'row')} shown · the newest {fmtNum(MAX_ROWS)} are kept
          {paused ? ' · paused: events keep arriving and are counted above' : ''}
        </div>
      </section>
    </div>
  );
}

/** The rows in view (and a few around them). */
function LiveList({ rows, scroller }: { rows: LiveRow[]; scroller: () => HTMLDivElement | null }) {
  // A stable getItemKey: the virtualiser rebuilds all offsets when it changes.
  const getItemKey = useCallback((i: number) => rows[i]?.key ?? i, [rows]);
  const v = useVirtualizer({ count: rows.length, getScrollElement: scroller, estimateSize: rowHeight, overscan: 12, getItemKey });
  return (
    <div class="live-rows" style={{ height: `${v.getTotalSize()}px` }}>
      {v.getVirtualItems().map((it) => {
        const r = rows[it.index];
        return (
          <div key={it.key} class={`live-row live-row-${r.type}`} role="row" style={{ transform: `translateY(${it.start}px)` }}>
            <span role="cell">
              <span class={`live-kind live-kind-${r.type}`}>{r.type}</span>
            </span>
            <span role="cell" class="mono live-time">
              <Time t={r.time} mode="clock" />
            </span>
            <span role="cell" class="live-service ellipsis" title={r.service}>
              <span class="dot" style={{ background: colorFor(r.service) }} aria-hidden="true" />
              {r.service || '–'}
            </span>
            <span role="cell">{r.badge && <Badge tone={r.badge.tone}>{r.badge.text}</Badge>}</span>
            <span role="cell" class={`live-summary ellipsis${r.type === 'log' || r.type === 'function' ? ' mono' : ''}`} title={r.title}>
              {r.href ? <Link href={withRange(r.href)}>{r.title || '(empty)'}</Link> : r.title || <span class="muted">(empty)</span>}
            </span>
            <span role="cell" class="num">
              {r.durationMs !== undefined ? fmtMs(r.durationMs) : ''}
            </span>
          </div>
        );
      })}
    </div>
  );
}
