// The Logs page (GET /api/v1/logs): search by text, service, severity,
// trace and attributes within the global time range, a severity histogram
// of every matching log in the range (GET /api/v1/logs/histogram), and a
// virtualised list that loads older pages as the user scrolls (it stays
// smooth with 100k rows loaded). Live tail streams new matching logs in at
// the top from /api/v1/live; scrolled away from the top, they wait behind a
// "paused — N new" bar so the rows being read do not move.
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { DebouncedInput } from '../components/debounced-input';
import { ServiceOptions, SeverityOptions } from '../components/options';
import { PageHeader } from '../components/page';
import { Empty, ErrorBox, Loading } from '../components/states';
import { Time } from '../components/time';
import { useVirtualizer } from '../components/virtual';
import { apiGet } from '../lib/api';
import { useApi } from '../lib/fetch';
import { colorFor, fmtNum, shortId, valueText } from '../lib/format';
import { LiveStream, type StreamStatus } from '../lib/live-stream';
import { useParams, useSetParams, withRange } from '../lib/params';
import { levelLabel, levelOf, type Level } from '../lib/severity';
import { rangeParams, refreshTick, stepFor, useTimeRange } from '../lib/time';
import type { LogRow, Page } from '../lib/types';
import { SeverityHistogram, type LogHistogram } from './logs/histogram';
import './logs.css';

/** A loaded row with what the list needs, computed once. */
interface Item {
  log: LogRow;
  level: Level;
}

/** Rows per request: a few screens ahead of the reader. */
const PAGE = 500;
/** While tailing, how often the counts catch up with the streamed logs. */
const TAIL_COUNT_MS = 5000;
/** Rows kept at most; past it live tail drops the oldest. */
const MAX_ROWS = 200_000;
const ROW_HEIGHT = 30;
const rowHeight = () => ROW_HEIGHT;

function toItem(log: LogRow): Item {
  return { log, level: levelOf(log.severity_number, log.severity_text) };
}

interface LogFilters {
  q: string;
  service: string;
  severity_min: string;
  trace_id: string;
  attrs: [string, string][];
}

function readFilters(p: URLSearchParams): LogFilters {
  const attrs: [string, string][] = [];
  p.forEach((v, k) => k.startsWith('attr.') && k.length > 5 && attrs.push([k.slice(5), v]));
  return { q: p.get('q') ?? '', service: p.get('service') ?? '', severity_min: p.get('severity_min') ?? '', trace_id: p.get('trace_id') ?? '', attrs };
}

/** What the live tail has to check itself: the stream filters by service,
 *  severity and trace, not by text or attributes. */
function tailMatches(log: LogRow, f: LogFilters): boolean {
  if (f.q && !(log.body ?? '').toLowerCase().includes(f.q.toLowerCase())) return false;
  for (const [k, v] of f.attrs) {
    const a = log.attributes?.[k] ?? log.resource?.[k];
    if (a === undefined || valueText(a) !== v) return false;
  }
  return true;
}

export function Logs() {
  const p = useParams();
  const set = useSetParams();
  const range = useTimeRange();
  const filters = readFilters(p);
  const tail = p.get('tail') === '1';
  const canTail = range.to === 'now';
  const tailing = tail && canTail;
  const query = {
    ...rangeParams(range),
    q: filters.q || undefined,
    service: filters.service || undefined,
    severity_min: filters.severity_min || undefined,
    trace_id: filters.trace_id || undefined,
    ...Object.fromEntries(filters.attrs.map(([k, v]) => [`attr.${k}`, v])),
  };
  const queryKey = JSON.stringify(query);
  const tick = refreshTick.value;

  const [items, setItems] = useState<Item[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [state, setState] = useState<{ loading: boolean; more: boolean; busy?: boolean; error?: Error; moreError?: Error }>({ loading: true, more: false });
  const [expanded, setExpanded] = useState<Set<number>>(() => new Set());
  const [generation, setGeneration] = useState(0);
  const [atTop, setAtTop] = useState(true);
  const [pendingCount, setPendingCount] = useState(0);
  const [tailStatus, setTailStatus] = useState<StreamStatus>('stopped');
  const [tailNote, setTailNote] = useState<string | null>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const pending = useRef<Item[]>([]);
  const maxSeq = useRef(0);
  const loadCtl = useRef<AbortController | null>(null);
  const lastKey = useRef<string | null>(null);
  const atTopRef = useRef(atTop);
  atTopRef.current = atTop;
  /** Logs the tail brought in since the counts were last fetched. */
  const tailedSinceCount = useRef(0);

  // The first page, again whenever the question changes or the refresh
  // tick fires (not while tailing: the tail keeps the list current).
  useEffect(() => {
    if (tailing && items.length > 0 && !state.error && lastKey.current === queryKey) return;
    const newQuestion = lastKey.current !== queryKey;
    lastKey.current = queryKey;
    loadCtl.current?.abort();
    const ctl = new AbortController();
    loadCtl.current = ctl;
    setState((s) => ({ loading: s.loading || items.length === 0, more: false, busy: newQuestion }));
    apiGet<Page<LogRow>>('/logs', { ...query, limit: PAGE }, ctl.signal).then(
      (page) => {
        if (ctl.signal.aborted) return;
        const next = page.items.map(toItem);
        maxSeq.current = next.reduce((m, it) => Math.max(m, it.log.ingest_seq), 0);
        pending.current = [];
        setPendingCount(0);
        setItems(next);
        setCursor(page.next_cursor);
        setExpanded(new Set());
        // A fresh list gets a fresh virtualiser (no row heights of old rows).
        setGeneration((g) => g + 1);
        if (newQuestion) scroller.current?.scrollTo({ top: 0 });
        setState({ loading: false, more: false });
      },
      (error) => !ctl.signal.aborted && error?.name !== 'AbortError' && setState({ loading: false, more: false, error }),
    );
    return () => ctl.abort();
  }, [queryKey, tick]);

  const loadMore = () => {
    if (!cursor || state.more || state.loading) return;
    const ctl = new AbortController();
    loadCtl.current = ctl;
    setState((s) => ({ ...s, more: true, moreError: undefined }));
    apiGet<Page<LogRow>>('/logs', { ...query, limit: PAGE, cursor }, ctl.signal).then(
      (page) => {
        if (ctl.signal.aborted) return;
        setItems((cur) => cur.concat(page.items.map(toItem)));
        setCursor(page.next_cursor);
        setState((s) => ({ ...s, more: false }));
      },
      (error) => !ctl.signal.aborted && error?.name !== 'AbortError' && setState((s) => ({ ...s, more: false, moreError: error })),
    );
  };

  // Live tail: new logs for the same filters, resuming after the newest
  // loaded record so nothing committed in between is lost.
  const filterKey = JSON.stringify(filters);
  useEffect(() => {
    if (!tailing) {
      setTailStatus('stopped');
      return;
    }
    const f = filters;
    const s = new LiveStream(
      { service: f.service || undefined, severity_min: f.severity_min || undefined, trace_id: f.trace_id || undefined },
      ['log'],
      {
        onRecord(_type, _id, data: LogRow) {
          if (data.ingest_seq <= maxSeq.current || !tailMatches(data, f)) return;
          maxSeq.current = data.ingest_seq;
          tailedSinceCount.current++;
          pending.current.push(toItem(data));
          if (pending.current.length > MAX_ROWS) pending.current.splice(0, pending.current.length - MAX_ROWS);
        },
        onGap(missed, fellBehind) {
          setTailNote(
            fellBehind
              ? `The tail fell behind and skipped ${fmtNum(missed)} records; refresh to load them.`
              : `${fmtNum(missed)} records committed before the tail (re)connected are no longer in qyl's replay buffer; refresh to load them.`,
          );
        },
        onStatus: setTailStatus,
      },
    );
    s.lastId = maxSeq.current || null;
    s.open();
    const flush = setInterval(() => {
      if (pending.current.length === 0) return;
      if (!atTopRef.current) {
        setPendingCount(pending.current.length);
        return;
      }
      const fresh = pending.current.reverse();
      pending.current = [];
      setPendingCount(0);
      setItems((cur) => {
        const all = fresh.concat(cur);
        return all.length > MAX_ROWS ? all.slice(0, MAX_ROWS) : all;
      });
    }, 250);
    return () => {
      clearInterval(flush);
      s.stop();
    };
  }, [tailing, filterKey, state.loading]);

  const canLoadMore = !!cursor && !state.more && !state.moreError;
  const scrollerEl = useCallback(() => scroller.current, []);

  const onScroll = () => {
    const el = scroller.current;
    if (el) setAtTop(el.scrollTop < 4);
  };
  const jumpToTop = () => {
    scroller.current?.scrollTo({ top: 0 });
    setAtTop(true);
  };

  const toggle = (seq: number) =>
    setExpanded((cur) => {
      const next = new Set(cur);
      if (next.has(seq)) next.delete(seq);
      else next.add(seq);
      return next;
    });

  // The text box is typed into; the URL (and the query) follow after a pause.
  const [traceDraft, setTraceDraft] = useState(filters.trace_id);
  const [attrDraft, setAttrDraft] = useState('');
  const [attrError, setAttrError] = useState<string | null>(null);
  useEffect(() => setTraceDraft(filters.trace_id), [filters.trace_id]);
  const applyTrace = () => {
    const t = traceDraft.trim().toLowerCase();
    if (t === filters.trace_id) return;
    set({ trace_id: t || null }, { replace: true });
  };
  const addAttr = (key: string, value: string) => set({ [`attr.${key}`]: value });
  const submitAttr = () => {
    const eq = attrDraft.indexOf('=');
    const key = eq > 0 ? attrDraft.slice(0, eq).trim() : '';
    if (!key) {
      setAttrError('Write key=value, e.g. http.route=/cart');
      return;
    }
    setAttrError(null);
    addAttr(key, attrDraft.slice(eq + 1).trim());
    setAttrDraft('');
  };
  const hasFilters = !!(filters.q || filters.service || filters.severity_min || filters.trace_id || filters.attrs.length);
  const clearFilters = () => set({ q: null, service: null, severity_min: null, trace_id: null, ...Object.fromEntries(filters.attrs.map(([k]) => [`attr.${k}`, null])) });

  const services = useApi<{ name: string }[]>('/services', rangeParams(range), { refresh: false });
  const serviceNames = useMemo(() => {
    const names = new Set((services.data ?? []).map((s) => s.name));
    if (filters.service) names.add(filters.service);
    return [...names].sort();
  }, [services.data, filters.service]);

  // Counts over the whole range with the list's filters, refreshed with the
  // list (same question, same refresh tick). A new question keeps the old
  // bars, dimmed, until its counts arrive.
  const counts = useApi<LogHistogram>('/logs/histogram', { ...query, step: stepFor(range, 80) });
  const lastCounts = useRef<LogHistogram | undefined>(undefined);
  if (counts.data) lastCounts.current = counts.data;
  // While tailing the list grows without re-fetching; the counts catch up
  // every few seconds when something new arrived.
  const reloadCounts = useRef(counts.reload);
  reloadCounts.current = counts.reload;
  useEffect(() => {
    if (!tailing) return;
    tailedSinceCount.current = 0;
    const t = setInterval(() => {
      if (tailedSinceCount.current === 0) return;
      tailedSinceCount.current = 0;
      reloadCounts.current();
    }, TAIL_COUNT_MS);
    return () => clearInterval(t);
  }, [tailing, queryKey]);
  const clock = range.endMs - range.startMs <= 20 * 3600e3;

  return (
    <div class="logs-page" style={clock ? { '--logs-time-w': '96px' } : undefined}>
      <PageHeader
        title="Logs"
        subtitle={
          state.loading && items.length === 0
            ? 'Loading…'
            : `${fmtNum(items.length)}${cursor ? '+' : ''} ${items.length === 1 ? 'log' : 'logs'} ${cursor ? 'loaded (newest first; more load as you scroll)' : 'in this range'}`
        }
      >
        <button
          class={`btn logs-tail-btn${tailing ? ' active' : ''}`}
          aria-pressed={tailing}
          disabled={!canTail}
          title={canTail ? 'Stream new matching logs in at the top' : 'Live tail needs a range that ends now'}
          onClick={() => set({ tail: tail ? null : '1' })}
        >
          <span class={`logs-tail-dot${tailing && tailStatus === 'open' ? ' on' : ''}`} aria-hidden="true" />
          Live tail{tailing ? (tailStatus === 'open' ? ': on' : tailStatus === 'reconnecting' ? ': reconnecting…' : ': connecting…') : ''}
        </button>
      </PageHeader>

      <div class="filters logs-filters">
        <label class="field logs-q">
          Search
          <DebouncedInput
            data-search
            type="search"
            placeholder="Text in the log body…  ( / )"
            value={filters.q}
            delayMs={300}
            onCommit={(text) => set({ q: text || null }, { replace: true })}
          />
        </label>
        <label class="field">
          Service
          <select value={filters.service} onChange={(e) => set({ service: (e.target as HTMLSelectElement).value || null })}>
            <ServiceOptions names={serviceNames} />
          </select>
        </label>
        <label class="field">
          Min severity
          <select value={filters.severity_min.toUpperCase()} onChange={(e) => set({ severity_min: (e.target as HTMLSelectElement).value || null })}>
            <SeverityOptions anyLabel="Any" />
          </select>
        </label>
        <label class="field">
          Trace id
          <input
            class="mono logs-trace"
            placeholder="32 hex digits"
            value={traceDraft}
            onInput={(e) => setTraceDraft((e.target as HTMLInputElement).value)}
            onBlur={applyTrace}
            onKeyDown={(e) => e.key === 'Enter' && applyTrace()}
          />
        </label>
        <form
          class="field"
          onSubmit={(e) => {
            e.preventDefault();
            submitAttr();
          }}
        >
          <label for="logs-attr">Attribute</label>
          <div class="row">
            <input id="logs-attr" class="mono logs-attr" placeholder="key=value" value={attrDraft} onInput={(e) => setAttrDraft((e.target as HTMLInputElement).value)} aria-invalid={!!attrError} />
            <button class="btn" type="submit" disabled={!attrDraft}>
              Add
            </button>
          </div>
        </form>
        {hasFilters && (
          <button class="btn logs-clear" onClick={clearFilters}>
            Clear filters
          </button>
        )}
      </div>
      {(filters.attrs.length > 0 || attrError) && (
        <div class="logs-chips">
          {attrError && <span class="form-error">{attrError}</span>}
          {filters.attrs.map(([k, val]) => (
            <span key={k} class="logs-chip mono">
              {k} = {val}
              <button class="logs-chip-x" aria-label={`Remove filter ${k}`} onClick={() => set({ [`attr.${k}`]: null })}>
                ✕
              </button>
            </span>
          ))}
        </div>
      )}

      <section class="card logs-hist-card" aria-label="Severity over time">
        <SeverityHistogram
          data={counts.data ?? (counts.loading ? lastCounts.current : undefined)}
          busy={counts.loading && !!lastCounts.current}
          error={counts.error}
          filtered={hasFilters}
          onSelect={(from, to) => set({ from: String(Math.round(from)), to: String(Math.round(to)), tail: null })}
          onLevel={(l) => set({ severity_min: l.toUpperCase() })}
        />
      </section>

      {tailNote && (
        <div class="logs-note" role="alert">
          <span class="grow">{tailNote}</span>
          <button class="btn btn-sm" onClick={() => setTailNote(null)} aria-label="Dismiss">
            ✕
          </button>
        </div>
      )}

      <section class={`card flush logs-list-card${state.busy && items.length > 0 ? ' logs-busy' : ''}`} aria-busy={state.busy}>
        <div class="logs-head" aria-hidden="true">
          <span />
          <span>Time</span>
          <span>Level</span>
          <span>Service</span>
          <span>Message</span>
          <span>Trace</span>
        </div>
        {tailing && pendingCount > 0 && !atTop && (
          <button class="logs-pending" onClick={jumpToTop}>
            Paused — {fmtNum(pendingCount)} new {pendingCount === 1 ? 'log' : 'logs'} · back to top
          </button>
        )}
        <div class="logs-scroll" ref={scroller} onScroll={onScroll}>
          {state.error && items.length === 0 ? (
            <div class="logs-state">
              <ErrorBox error={state.error} title="Could not load logs" />
            </div>
          ) : state.loading && items.length === 0 ? (
            <Loading label="Loading logs…" />
          ) : items.length === 0 ? (
            hasFilters ? (
              <Empty title="No logs match these filters" hint={false}>
                <div class="stack logs-empty-actions">
                  <span>Nothing in {range.label.toLowerCase()} matches.{tailing ? ' New matching logs will appear here.' : ''}</span>
                  <button class="btn" onClick={clearFilters}>
                    Clear filters
                  </button>
                </div>
              </Empty>
            ) : (
              <Empty title={`No logs in ${range.label.toLowerCase()}`}>{tailing ? 'Live tail is on: new logs will appear here.' : undefined}</Empty>
            )
          ) : (
            <LogList
              key={generation}
              items={items}
              expanded={expanded}
              scroller={scrollerEl}
              canLoadMore={canLoadMore}
              onNearEnd={loadMore}
              onToggle={toggle}
              onAttr={addAttr}
              onService={(svc) => set({ service: svc })}
              clock={clock}
            />
          )}
        </div>
        <div class="logs-foot muted">
          {state.busy && items.length > 0 ? (
            <span class="row">
              <span class="spinner" aria-hidden="true" /> Searching…
            </span>
          ) : state.more ? (
            <span class="row">
              <span class="spinner" aria-hidden="true" /> Loading older logs…
            </span>
          ) : state.moreError ? (
            <span class="tone-bad">
              Could not load older logs: {state.moreError.message}{' '}
              <button class="btn btn-sm" onClick={() => setState((s) => ({ ...s, moreError: undefined }))}>
                Retry
              </button>
            </span>
          ) : items.length > 0 ? (
            cursor ? 'Scroll for older logs' : `All ${fmtNum(items.length)} logs in this range are loaded`
          ) : (
            ''
          )}
          {state.error && items.length > 0 && <span class="tone-bad"> · refresh failed: {state.error.message}</span>}
        </div>
      </section>
    </div>
  );
}

interface ListProps {
  items: Item[];
  expanded: Set<number>;
  scroller: () => HTMLDivElement | null;
  canLoadMore: boolean;
  onNearEnd: () => void;
  onToggle: (seq: number) => void;
  onAttr: (key: string, value: string) => void;
  onService: (service: string) => void;
  clock: boolean;
}

/** The rows in view (and a few around them). A component of its own so
 *  that scrolling re-renders the list, not the filters and histogram. */
function LogList({ items, expanded, scroller, canLoadMore, onNearEnd, onToggle, onAttr, onService, clock }: ListProps) {
  // getItemKey must keep its identity while the rows do: the virtualiser
  // rebuilds every row's offset (O(rows)) whenever it changes.
  const getItemKey = useCallback((i: number) => items[i]?.log.ingest_seq ?? i, [items]);
  const v = useVirtualizer({ count: items.length, getScrollElement: scroller, estimateSize: rowHeight, overscan: 10, getItemKey });
  const virtualItems = v.getVirtualItems();
  const lastVisible = virtualItems.length ? virtualItems[virtualItems.length - 1].index : 0;
  // Infinite scroll: the next page is asked for well before the end shows.
  useEffect(() => {
    if (canLoadMore && lastVisible >= items.length - 60) onNearEnd();
  }, [lastVisible, items.length, canLoadMore]);
  return (
    <div class="logs-rows" style={{ height: `${v.getTotalSize()}px` }} role="list" aria-label="Log records">
      {virtualItems.map((vi) => {
        const it = items[vi.index];
        const seq = it.log.ingest_seq;
        return (
          <LogLine
            key={vi.key}
            item={it}
            index={vi.index}
            top={vi.start}
            open={expanded.has(seq)}
            // Collapsed rows are all ROW_HEIGHT: measuring only expanded ones
            // keeps scrolling through 100k rows from re-laying out the list.
            measure={expanded.has(seq) ? v.measureElement : undefined}
            onToggle={() => onToggle(seq)}
            onAttr={onAttr}
            onService={onService}
            clock={clock}
          />
        );
      })}
    </div>
  );
}

interface LineProps {
  item: Item;
  index: number;
  top: number;
  open: boolean;
  measure?: (el: HTMLElement | null) => void;
  onToggle: () => void;
  onAttr: (key: string, value: string) => void;
  onService: (service: string) => void;
  /** Time of day with milliseconds when the range is within a day. */
  clock: boolean;
}

function LogLine({ item, index, top, open, measure, onToggle, onAttr, onService, clock }: LineProps) {
  const l = item.log;
  const body = l.body ?? (l.event_name ? `event ${l.event_name}` : '');
  return (
    <div
      class={`logs-line lvl-${item.level}${open ? ' open' : ''}`}
      data-index={index}
      ref={measure}
      style={{ transform: `translateY(${top}px)` }}
      role="listitem"
    >
      <div
        class="logs-row"
        onClick={(e) => {
          // Links and buttons inside the row do their own thing.
          if ((e.target as HTMLElement).closest('a, button')) return;
          if (window.getSelection()?.toString()) return;
          onToggle();
        }}
      >
        <button class="logs-chevron" aria-expanded={open} aria-label={open ? 'Collapse log' : 'Expand log'} onClick={onToggle}>
          {open ? '▾' : '▸'}
        </button>
        <span class="logs-time mono">
          <Time t={l.time_unix_nano} mode={clock ? 'clock' : 'datetime'} />
        </span>
        <span>
          <span class={`logs-level lvl-badge-${item.level}`}>{levelLabel(item.level, l.severity_text)}</span>
        </span>
        <span class="logs-service ellipsis" title={l.service_name}>
          <span class="dot" style={{ background: colorFor(l.service_name) }} aria-hidden="true" />
          {l.service_name}
        </span>
        <span class="logs-body mono ellipsis" title={body.length > 120 ? undefined : body}>
          {body || <span class="muted">(no body)</span>}
        </span>
        <span class="logs-trace-link">
          {l.trace_id ? (
            <Link href={withRange(`/traces/${l.trace_id}`)} title={`Open trace ${l.trace_id}`} class="mono">
              {shortId(l.trace_id)} →
            </Link>
          ) : (
            ''
          )}
        </span>
      </div>
      {open && <LogDetails log={l} onAttr={onAttr} onService={onService} />}
    </div>
  );
}

function LogDetails({ log: l, onAttr, onService }: { log: LogRow; onAttr: (k: string, v: string) => void; onService: (s: string) => void }) {
  const attrs = Object.entries(l.attributes ?? {});
  const res = Object.entries(l.resource ?? {});
  return (
    <div class="logs-details">
      {l.body && <pre class="code logs-full-body">{l.body}</pre>}
      <div class="logs-detail-grid">
        <dl class="logs-fields">
          <dt>Time</dt>
          <dd>
            <Time t={l.time_unix_nano} /> <span class="muted mono">{l.time.slice(19, -1) || ''}</span>
          </dd>
          <dt>Observed</dt>
          <dd>
            <Time t={l.observed_time_unix_nano} />
          </dd>
          <dt>Severity</dt>
          <dd>
            {l.severity_text ?? '–'} <span class="muted">({l.severity_number})</span>
          </dd>
          <dt>Service</dt>
          <dd>
            <button class="logs-linkish" onClick={() => onService(l.service_name)} title="Show only this service">
              {l.service_name}
            </button>
            {l.service_version && <span class="muted"> v{l.service_version}</span>}
            {l.deployment_environment && <span class="muted"> · {l.deployment_environment}</span>}
          </dd>
          {l.scope_name && (
            <>
              <dt>Scope</dt>
              <dd class="mono">{l.scope_name}</dd>
            </>
          )}
          {l.event_name && (
            <>
              <dt>Event</dt>
              <dd class="mono">{l.event_name}</dd>
            </>
          )}
          <dt>Trace</dt>
          <dd class="mono">{l.trace_id ? <Link href={withRange(`/traces/${l.trace_id}`)}>{l.trace_id}</Link> : '–'}</dd>
          <dt>Span</dt>
          <dd class="mono">{l.span_id ?? '–'}</dd>
          {l.session_id && (
            <>
              <dt>Session</dt>
              <dd class="mono">
                <Link href={withRange(`/sessions/${encodeURIComponent(l.session_id)}`)}>{l.session_id}</Link>
              </dd>
            </>
          )}
        </dl>
        <AttrTable title="Attributes" entries={attrs} onAttr={onAttr} />
        <AttrTable title="Resource" entries={res} onAttr={onAttr} />
      </div>
    </div>
  );
}

function AttrTable({ title, entries, onAttr }: { title: string; entries: [string, unknown][]; onAttr: (k: string, v: string) => void }) {
  return (
    <div class="logs-attrs">
      <h3>
        {title} <span class="muted num">{entries.length}</span>
      </h3>
      {entries.length === 0 ? (
        <div class="muted">none</div>
      ) : (
        <table class="table logs-attr-table">
          <tbody>
            {entries.map(([k, val]) => (
              <tr key={k}>
                <td class="mono logs-attr-key">{k}</td>
                <td class="mono logs-attr-val">{valueText(val)}</td>
                <td class="logs-attr-act">
                  <button class="btn btn-sm" title={`Filter by ${k} = ${valueText(val)}`} aria-label={`Filter by ${k}`} onClick={() => onAttr(k, valueText(val))}>
                    ⊕
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
