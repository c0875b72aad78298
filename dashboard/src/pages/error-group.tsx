// One error group, as Sentry's issue page shows it: what failed and where
// (the exception chain with the application's own frames first in sight),
// how often over time, each occurrence with its tags, trace and session,
// the trail that led to it, and the buttons to resolve or ignore it; above
// them the automatic triage report, beside them the notes people leave, both
// kept current from the live stream while the page is open.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { Chart } from '../components/chart';
import { Badge, Card, PageHeader } from '../components/page';
import { Empty, ErrorBox, Loading } from '../components/states';
import { Time } from '../components/time';
import { apiGet, apiUrl } from '../lib/api';
import { useApi } from '../lib/fetch';
import { fmtNum, fmtPct, shortId, valueText } from '../lib/format';
import { useParams, useSetParams, withRange } from '../lib/params';
import { rangeParams, refreshNow, refreshTick, stepFor, toMs, useTimeRange } from '../lib/time';
import type { ErrorGroupRow, ErrorNote, Page, SpanRow, TriageReport } from '../lib/types';
import {
  ACTION_DONE,
  CATEGORY_LABEL,
  GenAiBadge,
  StatusBadge,
  StatusNotice,
  groupTitle,
  loadHistogram,
  patchStatus,
  type Histogram,
  type Notice,
  type StatusAction,
} from './errors/common';
import { DeploysCard, type GroupDeploy } from './error-group/deploys';
import { Activity } from './error-group/notes';
import { StackTrace, type ParsedFrames } from './error-group/stack';
import { TriageNone, TriagePanel } from './error-group/triage';
import './errors.css';
import './error-group.css';

interface GroupDetail extends ErrorGroupRow {
  fingerprint_explanation: {
    rule: string;
    description: string;
    version: number;
    hash: string;
    merged_hashes: string[];
    components: string[];
  };
  /** The newest automatic triage report, null when none was written. */
  triage?: TriageReport | null;
  /** Notes left on the group, oldest first. */
  notes?: ErrorNote[];
  /** The deploy whose window the group started (or came back) in. */
  deploy?: GroupDeploy | null;
  /** The deploy that resolved it: the next release, or quiet since one. */
  resolved_by_deploy?: GroupDeploy | null;
}

interface EventRow {
  event_id: string;
  group_id: number;
  time: string;
  time_unix_nano: string;
  source: string;
  trace_id: string | null;
  span_id: string | null;
  service_name: string;
  release: string | null;
  environment: string | null;
  session_id: string | null;
  user: string | null;
  error_type: string | null;
  message: string | null;
  culprit: string | null;
  handled: boolean;
  gen_ai_model: string | null;
  gen_ai_error_class: string | null;
}

interface Breadcrumb {
  time: string;
  time_unix_nano: string;
  category: string;
  message: string;
  level: string;
  trace_id: string | null;
  span_id: string | null;
  data: Record<string, unknown>;
}

interface EventDetail extends EventRow {
  stacktrace: string | null;
  frames: ParsedFrames | null;
  breadcrumbs: Breadcrumb[];
}

const EVENTS_PAGE = 100;

const SOURCE_LABEL: Record<string, string> = {
  span_event: 'exception on a span',
  log: 'exception log record',
  span_status: 'span with status ERROR',
  genai: 'failed GenAI call',
  genai_soft: 'GenAI soft failure',
};

/** The group's events, newest first, loaded a page at a time as the pager
 *  walks past the end of what is loaded. */
function useEvents(id: string) {
  const [state, setState] = useState<{ items: EventRow[]; cursor: string | null; error?: Error; loading: boolean }>({ items: [], cursor: null, loading: true });
  const tick = refreshTick.value;
  useEffect(() => {
    const ctl = new AbortController();
    apiGet<Page<EventRow>>(`/errors/${encodeURIComponent(id)}/events`, { limit: EVENTS_PAGE }, ctl.signal).then(
      (p) =>
        setState((s) => {
          // A refresh keeps the older pages already walked through.
          const last = p.items[p.items.length - 1];
          const older = last ? s.items.filter((e) => BigInt(e.time_unix_nano) < BigInt(last.time_unix_nano)) : [];
          return { items: [...p.items, ...older], cursor: older.length ? s.cursor : p.next_cursor, loading: false };
        }),
      (error) => !ctl.signal.aborted && setState((s) => ({ ...s, error, loading: false })),
    );
    return () => ctl.abort();
  }, [id, tick]);
  /** Loads the next older page; resolves with its events. */
  const more = async (): Promise<EventRow[]> => {
    if (!state.cursor) return [];
    try {
      const p = await apiGet<Page<EventRow>>(`/errors/${encodeURIComponent(id)}/events`, { limit: EVENTS_PAGE, cursor: state.cursor });
      setState((s) => ({ ...s, items: [...s.items, ...p.items], cursor: p.next_cursor }));
      return p.items;
    } catch (error) {
      setState((s) => ({ ...s, error: error as Error }));
      return [];
    }
  };
  return { ...state, more };
}

export function ErrorGroup({ id }: { id: string }) {
  const p = useParams();
  const set = useSetParams();
  const group = useApi<GroupDetail>(`/errors/${encodeURIComponent(id)}`);
  const events = useEvents(id);
  const [override, setOverride] = useState<GroupDetail | null>(null);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<Notice | null>(null);
  useEffect(() => setOverride(null), [group.data]);
  const g = override ?? group.data;
  useGroupStream(id);

  const act = async (action: StatusAction) => {
    setBusy(true);
    setNotice(null);
    try {
      const after = (await patchStatus(Number(id), action)) as GroupDetail;
      setOverride(after);
      setNotice({ tone: 'good', text: ACTION_DONE[action] });
      group.reload();
    } catch (e) {
      setNotice({ tone: 'bad', text: (e as Error).message });
    }
    setBusy(false);
  };

  if (group.error && !g) {
    return (
      <>
        <PageHeader title={<GroupCrumbs id={id} />} />
        <ErrorBox error={group.error} title={(group.error as { status?: number }).status === 404 ? `There is no error group ${id}` : 'Could not load this error group'} />
      </>
    );
  }
  if (!g) return <Loading />;

  // A status change answers with the group alone: keep the loaded report and notes.
  const triage = g.triage ?? group.data?.triage ?? null;
  const notes = g.notes ?? group.data?.notes ?? [];
  const eventId = p.get('event') || events.items[0]?.event_id || null;
  const idx = events.items.findIndex((e) => e.event_id === eventId);

  return (
    <div class="eg-page">
      <PageHeader
        title={
          <span class="eg-title">
            <GroupCrumbs id={id} />
            <span class="eg-type">{groupTitle(g)}</span>
          </span>
        }
        subtitle={
          <span class="eg-subtitle">
            {g.message_template && <span class="eg-template mono">{g.message_template}</span>}
          </span>
        }
      >
        <StatusActions g={g} busy={busy} act={act} />
      </PageHeader>
      <div class="eg-badges">
        <StatusBadge g={g} />
        <Badge>{CATEGORY_LABEL[g.category] ?? g.category}</Badge>
        <GenAiBadge g={g} />
        {g.culprit && (
          <span class="mono muted eg-culprit" title="Culprit: the first in-app frame, else the span name">
            {g.culprit}
          </span>
        )}
        {g.services.map((s) => (
          <Link key={s} href={withRange('/traces', { service: s })} class="eg-service">
            {s}
          </Link>
        ))}
      </div>
      {notice && <StatusNotice notice={notice} onDismiss={() => setNotice(null)} />}
      {g.status === 'merged' && g.merged_into && (
        <div class="errors-notice errors-notice-bad">
          This group was merged into <Link href={withRange(`/errors/${g.merged_into}`)}>#{g.merged_into}</Link>; its events and future occurrences are counted there.
        </div>
      )}

      <div class="eg-stats">
        <div class="eg-stat">
          <div class="stat-label">Events</div>
          <div class="eg-stat-value num">{fmtNum(g.count)}</div>
        </div>
        <div class="eg-stat">
          <div class="stat-label">Users</div>
          <div class="eg-stat-value num">{fmtNum(g.user_count)}</div>
        </div>
        <div class="eg-stat">
          <div class="stat-label">Unhandled</div>
          <div class="eg-stat-value num" title={g.category === 'exception' ? undefined : 'Only exceptions are handled or not'}>{g.count && g.category === 'exception' ? fmtPct(g.unhandled_count / g.count, 0) : '–'}</div>
        </div>
        <div class="eg-stat">
          <div class="stat-label">First seen</div>
          <div class="eg-stat-when">
            <Time t={g.first_seen} mode="ago" />
            {g.first_release && <span class="eg-release">in {g.first_release}</span>}
          </div>
        </div>
        <div class="eg-stat">
          <div class="stat-label">Last seen</div>
          <div class="eg-stat-when">
            <Time t={g.last_seen} mode="ago" />
            {g.last_release && <span class="eg-release">in {g.last_release}</span>}
          </div>
        </div>
      </div>

      <div class="eg-layout">
        <div class="eg-main stack">
          {triage ? <TriagePanel report={triage} /> : <TriageNone />}
          <CountsChart id={Number(id)} />
          <Card
            class="eg-event"
            title={
              <span>
                Event{' '}
                {idx >= 0 && (
                  <span class="muted eg-event-pos">
                    {idx + 1} of {fmtNum(Math.max(g.count, events.items.length))}
                  </span>
                )}
              </span>
            }
            actions={
              <EventPager
                canNewer={idx > 0}
                canOlder={idx >= 0 && (idx + 1 < events.items.length || !!events.cursor)}
                newest={() => set({ event: null })}
                newer={() => set({ event: idx - 1 <= 0 ? null : events.items[idx - 1].event_id })}
                older={async () => {
                  if (idx + 1 < events.items.length) set({ event: events.items[idx + 1].event_id });
                  else {
                    const more = await events.more();
                    if (more.length) set({ event: more[0].event_id });
                  }
                }}
              />
            }
          >
            {events.error && events.items.length === 0 ? (
              <ErrorBox error={events.error} title="Could not load the events" />
            ) : events.loading && !eventId ? (
              <Loading />
            ) : !eventId ? (
              <Empty title="No stored events" hint={false}>
                The events of this group are gone (retention), only its counts are kept.
              </Empty>
            ) : (
              <EventView groupId={id} eventId={eventId} row={events.items[idx]} />
            )}
          </Card>
        </div>
        <aside class="eg-side stack">
          <Activity key={id} g={g} notes={notes} triage={triage} onAdded={group.reload} />
          <ReleasesCard g={g} />
          <DeploysCard g={g} />
          <TagsCard events={events.items} />
          <Card title="Grouping">
            <div class="eg-fp">
              <div>
                <Badge tone="info">{g.fingerprint_explanation.rule.replace(/_/g, ' ')}</Badge>
              </div>
              <div class="muted">{g.fingerprint_explanation.description}</div>
              <ul class="eg-components mono">
                {g.fingerprint_explanation.components.map((c, i) => (
                  <li key={i} class="ellipsis" title={c}>
                    {c}
                  </li>
                ))}
              </ul>
              <div class="faint mono" title="Fingerprint hash">
                {g.fingerprint_explanation.hash}
              </div>
              {g.fingerprint_explanation.merged_hashes.length > 0 && <div class="muted">{g.fingerprint_explanation.merged_hashes.length} merged group(s) join this one</div>}
            </div>
          </Card>
        </aside>
      </div>
    </div>
  );
}

/** Refreshes the page's data (at most once a second) when qyl streams a
 *  change of the group: a triage report written on it, or it became
 *  regressed or escalating while the page is open (new events, counts). */
function useGroupStream(id: string) {
  useEffect(() => {
    if (typeof EventSource === 'undefined') return;
    const source = new EventSource(apiUrl('/live', { types: 'error,triage' }), { withCredentials: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    // The stream's `error` event shares its name with EventSource's failure
    // event: only the stream's carries data.
    const onEvent = (e: Event) => {
      if (!(e instanceof MessageEvent) || !e.data || timer) return;
      let groupId: unknown;
      try {
        groupId = JSON.parse(e.data)?.group_id;
      } catch {
        return;
      }
      if (String(groupId) !== id) return;
      timer = setTimeout(() => {
        timer = undefined;
        refreshNow();
      }, 1000);
    };
    source.addEventListener('error', onEvent);
    source.addEventListener('triage', onEvent);
    return () => {
      clearTimeout(timer);
      source.close();
    };
  }, [id]);
}

function GroupCrumbs({ id }: { id: string }) {
  return (
    <span class="eg-crumbs">
      <Link href={withRange('/errors')}>Errors</Link>
      <span class="faint"> / </span>
      <span class="muted">#{id}</span>
    </span>
  );
}

function StatusActions({ g, busy, act }: { g: ErrorGroupRow; busy: boolean; act: (a: StatusAction) => void }) {
  if (g.status === 'merged') return null;
  if (g.status !== 'unresolved') {
    return (
      <>
        <span class="muted eg-resolved-note">
          {g.status === 'resolved' ? (
            <>
              Resolved {g.resolved_at && <Time t={g.resolved_at} mode="ago" />}
              {g.resolved_in_release && <> · until a release after {g.resolved_in_release}</>}
            </>
          ) : (
            <>Ignored{g.substatus === 'until_escalating' ? ' until it escalates' : ''}</>
          )}
        </span>
        <button class="btn" disabled={busy} onClick={() => act('unresolve')}>
          ↺ Unresolve
        </button>
      </>
    );
  }
  return (
    <>
      <button class="btn btn-primary" disabled={busy} onClick={() => act('resolve')}>
        ✓ Resolve
      </button>
      <button class="btn" disabled={busy || !g.last_release} title={g.last_release ? `Resolved until an event from a release newer than ${g.last_release}` : 'The events carry no service.version'} onClick={() => act('resolve_next')}>
        Resolve in next release
      </button>
      <button class="btn" disabled={busy} onClick={() => act('ignore')}>
        Ignore
      </button>
      <button class="btn" disabled={busy} title="Ignored until its hourly rate escalates" onClick={() => act('ignore_until_escalating')}>
        Ignore until escalating
      </button>
    </>
  );
}

function EventPager({ canNewer, canOlder, newest, newer, older }: { canNewer: boolean; canOlder: boolean; newest: () => void; newer: () => void; older: () => Promise<void> }) {
  const [pending, setPending] = useState(false);
  return (
    <div class="row eg-pager" role="group" aria-label="Events">
      <button class="btn btn-sm" disabled={!canNewer} onClick={newest} title="The newest event">
        ⇤ Newest
      </button>
      <button class="btn btn-sm" disabled={!canNewer} onClick={newer}>
        ‹ Newer
      </button>
      <button
        class="btn btn-sm"
        disabled={!canOlder || pending}
        onClick={async () => {
          setPending(true);
          await older().finally(() => setPending(false));
        }}
      >
        Older ›
      </button>
    </div>
  );
}

function EventView({ groupId, eventId, row }: { groupId: string; eventId: string; row?: EventRow }) {
  const ev = useApi<EventDetail>(`/errors/${encodeURIComponent(groupId)}/events/${eventId}`, undefined, { refresh: false });
  const [raw, setRaw] = useState(false);
  if (ev.error) return <ErrorBox error={ev.error} title="Could not load this event" />;
  const e = ev.data ?? (row as EventDetail | undefined);
  if (!e) return <Loading />;
  const exceptions = e.frames?.exceptions ?? [];
  return (
    <div class="stack eg-event-body">
      <div class="eg-event-head">
        <Time t={e.time_unix_nano} />
        <span class="muted">{SOURCE_LABEL[e.source] ?? e.source}</span>
        {!e.handled && e.source !== 'genai' && e.source !== 'genai_soft' && <Badge tone="bad">unhandled</Badge>}
        <span class="grow" />
        <span class="faint mono" title="Event id">
          {shortId(e.event_id, 12)}
        </span>
      </div>
      <EventTags e={e} />
      <section>
        <div class="eg-section-head">
          <h3>{exceptions.length > 1 ? `Exceptions (${exceptions.length}, chained)` : exceptions.length === 1 ? 'Exception' : 'Error'}</h3>
          {exceptions.length > 0 && <span class="faint">most recent call first</span>}
          <span class="grow" />
          {e.stacktrace && (
            <button class={`btn btn-sm${raw ? ' active' : ''}`} aria-pressed={raw} onClick={() => setRaw(!raw)}>
              Raw
            </button>
          )}
        </div>
        {raw && e.stacktrace ? (
          <pre class="code eg-raw">{e.stacktrace}</pre>
        ) : exceptions.length > 0 ? (
          <StackTrace frames={e.frames!} />
        ) : (
          <div class="eg-noframes">
            <div>
              <strong>{e.error_type ?? 'Error'}</strong>
              {e.message && <span>: {e.message}</span>}
            </div>
            <div class="muted">{ev.data ? 'No stack trace was sent with this event.' : 'Loading the stack trace…'}</div>
          </div>
        )}
      </section>
      <Breadcrumbs crumbs={e.breadcrumbs ?? []} loading={!ev.data} current={e} />
      {e.trace_id && e.span_id && <SpanAttributes traceId={e.trace_id} spanId={e.span_id} timeNs={e.time_unix_nano} />}
    </div>
  );
}

/** The attributes of the span the error happened in (the event itself
 *  carries only the tags above), read from the span search. */
function SpanAttributes({ traceId, spanId, timeNs }: { traceId: string; spanId: string; timeNs: string }) {
  const ms = Math.floor(toMs(timeNs));
  // The span started before its error and ended after: an hour either side.
  const spans = useApi<{ items: SpanRow[] }>('/spans', { trace_id: traceId, since: String(ms - 3600e3), until: String(ms + 3600e3), limit: 1000 }, { refresh: false });
  const [showResource, setShowResource] = useState(false);
  const span = spans.data?.items.find((x) => x.span_id === spanId);
  if (spans.error || (spans.data && !span)) return null;
  const rows = span ? Object.entries(showResource ? span.resource : span.attributes).sort(([a], [b]) => a.localeCompare(b)) : [];
  return (
    <section>
      <div class="eg-section-head">
        <h3>{showResource ? 'Resource' : 'Span attributes'}</h3>
        {span && <span class="faint mono">{span.name}</span>}
        <span class="grow" />
        <button class={`btn btn-sm${showResource ? ' active' : ''}`} aria-pressed={showResource} onClick={() => setShowResource(!showResource)}>
          Resource
        </button>
      </div>
      {!span ? (
        <Loading />
      ) : rows.length === 0 ? (
        <div class="muted eg-nocrumbs">None.</div>
      ) : (
        <table class="table eg-attrs">
          <tbody>
            {rows.map(([k, v]) => (
              <tr key={k}>
                <td class="mono eg-attr-key">{k}</td>
                <td class="mono eg-attr-val">{valueText(v)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function EventTags({ e }: { e: EventRow }) {
  const tags: [string, preact.ComponentChildren][] = [
    ['service', e.service_name],
    ['release', e.release],
    ['environment', e.environment],
    ['user', e.user],
    [
      'trace',
      e.trace_id && (
        <Link href={withRange(`/traces/${e.trace_id}`, e.span_id ? { span: e.span_id } : undefined)} class="mono">
          {shortId(e.trace_id, 16)} →
        </Link>
      ),
    ],
    [
      'session',
      e.session_id && (
        <Link href={withRange(`/sessions/${encodeURIComponent(e.session_id)}`)} class="mono">
          {e.session_id} →
        </Link>
      ),
    ],
    ['handled', e.source === 'span_event' || e.source === 'log' ? (e.handled ? 'yes' : 'no') : null],
    ['gen_ai.model', e.gen_ai_model],
    ['gen_ai.error', e.gen_ai_error_class],
    ['culprit', e.culprit && <span class="mono">{e.culprit}</span>],
  ];
  return (
    <dl class="eg-tags">
      {tags
        .filter(([, v]) => v !== null && v !== undefined && v !== '')
        .map(([k, v]) => (
          <div key={k} class="eg-tag">
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      {e.message && (
        <div class="eg-tag eg-tag-wide">
          <dt>message</dt>
          <dd class="mono">{e.message}</dd>
        </div>
      )}
    </dl>
  );
}

const CRUMB_ICON: Record<string, string> = { http: '⇄', db: '⛁', genai: '✦', tool: '⚙', log: '☰', error: '⚠' };

function Breadcrumbs({ crumbs, loading, current }: { crumbs: Breadcrumb[]; loading: boolean; current: EventRow }) {
  const [all, setAll] = useState(false);
  const LIMIT = 12;
  const shown = all ? crumbs : crumbs.slice(-LIMIT);
  return (
    <section>
      <div class="eg-section-head">
        <h3>Breadcrumbs</h3>
        <span class="faint">what happened before, oldest first</span>
        <span class="grow" />
        {crumbs.length > LIMIT && (
          <button class="btn btn-sm" onClick={() => setAll(!all)}>
            {all ? `Show the last ${LIMIT}` : `Show all ${crumbs.length}`}
          </button>
        )}
      </div>
      {loading ? (
        <Loading />
      ) : (
        <table class="table eg-crumbs-table">
          <tbody>
            {shown.map((c, i) => (
              <tr key={i} class={`eg-crumb eg-crumb-${c.level}`}>
                <td class="eg-crumb-cat">
                  <span class={`eg-crumb-icon eg-crumb-icon-${c.category}`} aria-hidden="true">
                    {CRUMB_ICON[c.category] ?? '•'}
                  </span>
                  {c.category}
                </td>
                <td class="eg-crumb-msg">
                  <div class="ellipsis" title={c.message}>
                    {c.message}
                  </div>
                  <CrumbData data={c.data} />
                </td>
                <td class="eg-crumb-trace">
                  {c.trace_id && c.trace_id !== current.trace_id ? (
                    <Link href={withRange(`/traces/${c.trace_id}`)} class="mono faint" title="In another trace of the session">
                      {shortId(c.trace_id)}
                    </Link>
                  ) : null}
                </td>
                <td class="nowrap eg-crumb-time">
                  <Time t={c.time_unix_nano} mode="clock" />
                </td>
              </tr>
            ))}
            <tr class="eg-crumb eg-crumb-error eg-crumb-current">
              <td class="eg-crumb-cat">
                <span class="eg-crumb-icon eg-crumb-icon-error" aria-hidden="true">
                  ⚠
                </span>
                exception
              </td>
              <td class="eg-crumb-msg">
                <div class="ellipsis">
                  <strong>{current.error_type ?? 'Error'}</strong>
                  {current.message ? `: ${current.message}` : ''}
                </div>
              </td>
              <td />
              <td class="nowrap eg-crumb-time">
                <Time t={current.time_unix_nano} mode="clock" />
              </td>
            </tr>
          </tbody>
        </table>
      )}
      {!loading && crumbs.length === 0 && <div class="muted eg-nocrumbs">No earlier HTTP, database, GenAI, tool or log records in this trace or its session.</div>}
    </section>
  );
}

function CrumbData({ data }: { data: Record<string, unknown> }) {
  const entries = Object.entries(data ?? {}).filter(([, v]) => v !== null && v !== undefined && v !== '');
  if (entries.length === 0) return null;
  return (
    <div class="eg-crumb-data mono">
      {entries.map(([k, v]) => (
        <span key={k}>
          <span class="faint">{k}</span> {typeof v === 'object' ? JSON.stringify(v) : String(v)}
        </span>
      ))}
    </div>
  );
}

/** Events per bucket of the global range, as bars. */
function CountsChart({ id }: { id: number }) {
  const range = useTimeRange();
  const { since, until } = rangeParams(range);
  const step = stepFor(range, 60);
  const [h, setH] = useState<Histogram | null | undefined>(undefined);
  const tick = refreshTick.value;
  useEffect(() => {
    const ctl = new AbortController();
    loadHistogram([id], { since, until, step }, ctl.signal).then(
      (r) => !ctl.signal.aborted && setH(r),
      () => undefined,
    );
    return () => ctl.abort();
  }, [id, since, until, step, tick]);
  const data = useMemo(() => {
    if (!h) return null;
    const start = toMs(h.start_unix_nano);
    const counts = h.groups[0]?.counts ?? [];
    // One empty bucket past the end keeps the newest bar off the chart's edge.
    const x = [...counts, null].map((_, i) => (start + i * h.step_ms) / 1000);
    const values = [...counts.map((c) => (c === 0 ? null : c)), null];
    return { x, series: [{ label: 'Events', values, color: 'var(--bad)' }], total: counts.reduce((a, b) => a + b, 0) };
  }, [h]);
  if (h === null) return null;
  return (
    <Card title="Events over time" actions={data && <span class="muted">{fmtNum(data.total)} in {range.label.toLowerCase()}</span>}>
      {data ? <Chart x={data.x} series={data.series.map((s) => ({ ...s, color: cssColor('--bad') }))} kind="bars" height={140} fmt={(v) => (Number.isInteger(v) ? fmtNum(v, true) : '')} ariaLabel="Events over time" /> : <Loading />}
    </Card>
  );
}

/** uPlot draws on a canvas: it needs a colour value, not a CSS variable. */
function cssColor(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#dc2626';
}

/** Where the group stands across releases (the service's deploys are in
 *  the Deploys card below). */
function ReleasesCard({ g }: { g: ErrorGroupRow }) {
  const rows: [string, preact.ComponentChildren][] = [
    ['First seen in', g.first_release ? <span class="mono">{g.first_release}</span> : null],
    ['Last seen in', g.last_release ? <span class="mono">{g.last_release}</span> : null],
    ['Regressed in', g.substatus === 'regressed' && g.last_release ? <span class="mono tone-bad">{g.last_release}</span> : null],
    ['Resolved for', g.resolved_in_release ? <span class="mono">{g.resolved_in_release}{g.resolved_environment ? ` (${g.resolved_environment})` : ''}</span> : null],
    ['Environment', g.last_environment],
  ];
  const shown = rows.filter(([, v]) => v);
  return (
    <Card title="Releases">
      {shown.length === 0 ? (
        <div class="muted">The events carry no service.version, so releases are unknown.</div>
      ) : (
        <dl class="eg-kv">
          {shown.map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd>{v}</dd>
            </div>
          ))}
        </dl>
      )}
    </Card>
  );
}

/** Tag values across the loaded events, as Sentry's tag bars. */
function TagsCard({ events }: { events: EventRow[] }) {
  const keys: [string, (e: EventRow) => string | null][] = [
    ['release', (e) => e.release],
    ['environment', (e) => e.environment],
    ['service', (e) => e.service_name],
    ['user', (e) => e.user],
    ['gen_ai.model', (e) => e.gen_ai_model],
    ['handled', (e) => (e.source === 'span_event' || e.source === 'log' ? (e.handled ? 'yes' : 'no') : null)],
  ];
  const dists = keys
    .map(([k, f]) => {
      const counts = new Map<string, number>();
      let n = 0;
      for (const e of events) {
        const v = f(e);
        if (v === null || v === undefined || v === '') continue;
        counts.set(v, (counts.get(v) ?? 0) + 1);
        n++;
      }
      const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3);
      return { k, n, top, distinct: counts.size };
    })
    .filter((d) => d.n > 0);
  return (
    <Card title="Tags" actions={events.length > 0 && <span class="faint">{events.length === 1 ? 'the one event' : `latest ${fmtNum(events.length)} events`}</span>}>
      {dists.length === 0 ? (
        <div class="muted">No tags.</div>
      ) : (
        <div class="eg-dists">
          {dists.map((d) => (
            <div key={d.k} class="eg-dist">
              <div class="eg-dist-head">
                <span>{d.k}</span>
                <span class="faint">{d.distinct} value{d.distinct === 1 ? '' : 's'}</span>
              </div>
              {d.top.map(([v, c]) => (
                <div key={v} class="eg-dist-row" title={`${v}: ${c} of ${d.n}`}>
                  <span class="eg-dist-bar" style={{ width: `${(c / d.n) * 100}%` }} />
                  <span class="eg-dist-val ellipsis">{v}</span>
                  <span class="eg-dist-pct num">{fmtPct(c / d.n, 0)}</span>
                </div>
              ))}
            </div>
          ))}
        </div>
      )}
    </Card>
  );
}
