// The Errors page: error groups as Sentry's Issues view shows them, so a
// person can see what is failing, how often and since when, and triage
// several groups at once (resolve, ignore, reopen, merge).
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Link, useLocation } from 'wouter-preact';
import { DebouncedInput } from '../components/debounced-input';
import { ServiceOptions } from '../components/options';
import { PageHeader, Tabs } from '../components/page';
import { Empty, ErrorBox, Loading } from '../components/states';
import { Time } from '../components/time';
import { apiGet, apiSend, apiUrl } from '../lib/api';
import { useApi } from '../lib/fetch';
import { fmtNum } from '../lib/format';
import { useParams, useSetParams, withRange } from '../lib/params';
import { rangeParams, refreshTick, stepFor, useTimeRange } from '../lib/time';
import type { ErrorGroupRow, Page } from '../lib/types';
import {
  ACTION_DONE,
  CATEGORY_LABEL,
  CountBars,
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
import './errors.css';

const TABS = [
  { id: 'unresolved', label: 'Unresolved' },
  { id: 'regressed', label: 'Regressed' },
  { id: 'escalating', label: 'Escalating' },
  { id: 'resolved', label: 'Resolved' },
  { id: 'archived', label: 'Ignored' },
  { id: 'all', label: 'All' },
];

const PAGE_SIZE = 100;

/** Groups of the current filters, page after page (Load more). */
function useGroups(query: Record<string, string | undefined>) {
  const key = JSON.stringify(query);
  const tick = refreshTick.value;
  const [state, setState] = useState<{ key: string; items: ErrorGroupRow[]; cursor: string | null; error?: Error; loading: boolean }>({ key: '', items: [], cursor: null, loading: true });
  const [bump, setBump] = useState(0);
  useEffect(() => {
    const ctl = new AbortController();
    if (state.key !== key) setState({ key, items: [], cursor: null, loading: true });
    // A refresh reloads as many groups as were shown, so Load more is kept.
    const limit = Math.min(Math.max(PAGE_SIZE, state.key === key ? state.items.length : 0), 1000);
    apiGet<Page<ErrorGroupRow>>('/errors', { ...query, limit }, ctl.signal).then(
      (p) => setState({ key, items: p.items, cursor: p.next_cursor, loading: false }),
      (error) => !ctl.signal.aborted && setState((s) => ({ ...s, key, error, loading: false })),
    );
    return () => ctl.abort();
  }, [key, tick, bump]);
  const more = async () => {
    if (!state.cursor) return;
    try {
      const p = await apiGet<Page<ErrorGroupRow>>('/errors', { ...query, limit: PAGE_SIZE, cursor: state.cursor });
      setState((s) => ({ ...s, items: [...s.items, ...p.items.filter((g) => !s.items.some((x) => x.id === g.id))], cursor: p.next_cursor }));
    } catch (error) {
      setState((s) => ({ ...s, error: error as Error }));
    }
  };
  const current = state.key === key;
  return { items: current ? state.items : [], cursor: current ? state.cursor : null, error: state.error, loading: !current || state.loading, more, reload: () => setBump((b) => b + 1) };
}

/** Calls `onChange` (at most once a second) when qyl streams an error
 *  group that became new, regressed or escalating, so such groups show up
 *  without waiting for a refresh. */
function useErrorStream(onChange: () => void) {
  const latest = useRef(onChange);
  latest.current = onChange;
  useEffect(() => {
    if (typeof EventSource === 'undefined') return;
    const source = new EventSource(apiUrl('/live', { types: 'error' }), { withCredentials: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    // The stream's own event is named `error`, like EventSource's failure
    // event: only the stream's carries data.
    const onEvent = (e: Event) => {
      if (!(e instanceof MessageEvent) || !e.data || timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        latest.current();
      }, 1000);
    };
    source.addEventListener('error', onEvent);
    return () => {
      clearTimeout(timer);
      source.close();
    };
  }, []);
}

/** Counts over time for the groups shown, aligned with the global range. */
function useHistogram(ids: number[], since: string, until: string | undefined, step: string) {
  const [h, setH] = useState<Histogram | null>(null);
  const key = `${ids.join(',')}|${since}|${until}|${step}|${refreshTick.value}`;
  useEffect(() => {
    const ctl = new AbortController();
    const shown = ids.slice(0, 200);
    loadHistogram(shown, { since, until, step }, ctl.signal).then(
      (r) => !ctl.signal.aborted && setH(r),
      () => undefined,
    );
    return () => ctl.abort();
  }, [key]);
  return useMemo(() => new Map((h?.groups ?? []).map((g) => [g.id, g.counts])), [h]);
}

export function Errors() {
  const p = useParams();
  const set = useSetParams();
  const [, navigate] = useLocation();
  const range = useTimeRange();
  const tab = p.get('status') || 'unresolved';
  const q = p.get('q') ?? '';
  const service = p.get('service') ?? '';
  const category = p.get('category') ?? '';
  const sort = p.get('sort') || 'last_seen';
  const { since, until } = rangeParams(range);

  // The search runs in qyl (`q`), so it covers every group, not only the
  // pages loaded; the box writes `q` to the URL once typing pauses.
  const groups = useGroups({ status: tab === 'all' ? undefined : tab, q: q.trim() || undefined, service: service || undefined, category: category || undefined, sort: sort === 'last_seen' ? undefined : sort, since });
  useErrorStream(groups.reload);
  const services = useApi<{ name: string }[]>('/services', rangeParams(range));
  const shown = groups.items;
  const step = stepFor(range, 24);
  const hist = useHistogram(
    groups.items.map((g) => g.id),
    since,
    until,
    step,
  );

  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<Notice | null>(null);
  const [confirmMerge, setConfirmMerge] = useState(false);
  // Selections belong to one list: changing filters or tab starts afresh.
  useEffect(() => {
    setSelected(new Set());
    setConfirmMerge(false);
  }, [tab, q, service, category, sort, since]);

  const selectedGroups = shown.filter((g) => selected.has(g.id));
  const allChecked = shown.length > 0 && selectedGroups.length === shown.length;
  const toggle = (id: number) =>
    setSelected((s) => {
      const n = new Set(s);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });
  const toggleAll = () => setSelected(allChecked ? new Set() : new Set(shown.map((g) => g.id)));

  const bulk = async (action: StatusAction) => {
    const ids = selectedGroups.map((g) => g.id);
    setBusy(true);
    setNotice(null);
    const results = await Promise.allSettled(ids.map((id) => patchStatus(id, action)));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    setBusy(false);
    setSelected(new Set());
    if (failed.length) setNotice({ tone: 'bad', text: `${ids.length - failed.length} of ${ids.length} changed; ${failed[0].reason?.message ?? 'failed'}` });
    else setNotice({ tone: 'good', text: `${ACTION_DONE[action]}: ${ids.length} group${ids.length === 1 ? '' : 's'}` });
    groups.reload();
  };

  // Merge into the group with the most events: its history is the longest.
  const mergeTarget = selectedGroups.length > 1 ? selectedGroups.reduce((a, b) => (b.count > a.count ? b : a)) : null;
  const merge = async () => {
    if (!mergeTarget) return;
    const sources = selectedGroups.filter((g) => g.id !== mergeTarget.id).map((g) => g.id);
    setBusy(true);
    setNotice(null);
    try {
      await apiSend('POST', '/errors/merge', { target: mergeTarget.id, sources });
      setNotice({ tone: 'good', text: `Merged ${sources.length + 1} groups into #${mergeTarget.id}` });
      setSelected(new Set());
    } catch (e) {
      setNotice({ tone: 'bad', text: `Merge failed: ${(e as Error).message}` });
    }
    setBusy(false);
    setConfirmMerge(false);
    groups.reload();
  };

  const open = (g: ErrorGroupRow) => navigate(withRange(`/errors/${g.id}`));
  const canUnresolve = selectedGroups.some((g) => g.status !== 'unresolved');
  const canResolve = selectedGroups.some((g) => g.status !== 'resolved');
  const canIgnore = selectedGroups.some((g) => g.status !== 'archived');

  return (
    <div class="errors-page">
      <PageHeader title="Errors" subtitle="Exceptions, failed requests and GenAI failures, grouped by cause" />
      <Tabs tabs={TABS} active={tab} onChange={(id) => set({ status: id === 'unresolved' ? null : id })} />
      <div class="filters">
        <label class="field grow errors-search">
          Search
          <DebouncedInput
            data-search
            type="search"
            placeholder="Type, message, culprit, service, release…  ( / )"
            value={q}
            delayMs={300}
            onCommit={(text) => set({ q: text || null }, { replace: true })}
          />
        </label>
        <label class="field">
          Service
          <select value={service} onChange={(e) => set({ service: (e.target as HTMLSelectElement).value })}>
            <ServiceOptions names={(services.data ?? []).map((s) => s.name).concat(service && !(services.data ?? []).some((s) => s.name === service) ? [service] : [])} />
          </select>
        </label>
        <label class="field">
          Kind
          <select value={category} onChange={(e) => set({ category: (e.target as HTMLSelectElement).value })}>
            <option value="">All kinds</option>
            {Object.entries(CATEGORY_LABEL).map(([k, label]) => (
              <option key={k} value={k}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <label class="field">
          Sort by
          <select value={sort} onChange={(e) => set({ sort: (e.target as HTMLSelectElement).value === 'last_seen' ? null : (e.target as HTMLSelectElement).value })}>
            <option value="last_seen">Last seen</option>
            <option value="count">Events</option>
            <option value="users">Users</option>
          </select>
        </label>
      </div>

      {notice && <StatusNotice notice={notice} onDismiss={() => setNotice(null)} />}

      <section class="card flush">
        <div class={`errors-bulkbar${selectedGroups.length ? ' active' : ''}`}>
          <input type="checkbox" aria-label="Select all groups shown" checked={allChecked} disabled={shown.length === 0} onChange={toggleAll} />
          {selectedGroups.length ? (
            <>
              <strong class="errors-selcount">{selectedGroups.length} selected</strong>
              <button class="btn btn-sm" disabled={busy || !canResolve} onClick={() => bulk('resolve')}>
                ✓ Resolve
              </button>
              <button class="btn btn-sm" disabled={busy || !canIgnore} onClick={() => bulk('ignore')}>
                Ignore
              </button>
              <button class="btn btn-sm" disabled={busy || !canUnresolve} onClick={() => bulk('unresolve')}>
                Unresolve
              </button>
              <button class="btn btn-sm" disabled={busy || selectedGroups.length < 2} title={selectedGroups.length < 2 ? 'Select two or more groups to merge' : undefined} onClick={() => setConfirmMerge(true)}>
                Merge
              </button>
              {confirmMerge && mergeTarget && (
                <span class="errors-confirm">
                  Merge into <strong>#{mergeTarget.id}</strong> ({groupTitle(mergeTarget)}, most events)?
                  <button class="btn btn-sm btn-primary" disabled={busy} onClick={merge}>
                    Merge {selectedGroups.length}
                  </button>
                  <button class="btn btn-sm" onClick={() => setConfirmMerge(false)}>
                    Cancel
                  </button>
                </span>
              )}
              <span class="grow" />
              <button class="btn btn-sm" onClick={() => setSelected(new Set())}>
                Clear selection
              </button>
            </>
          ) : (
            <span class="muted">
              {groups.loading ? 'Loading…' : `${fmtNum(shown.length)}${groups.cursor ? '+' : ''} group${shown.length === 1 ? '' : 's'}${q ? ` matching “${q}”` : ''}`}
            </span>
          )}
        </div>
        <GroupTable
          groups={shown}
          loading={groups.loading}
          error={groups.error}
          selected={selected}
          toggle={toggle}
          open={open}
          hist={hist}
          filtered={!!(q || service || category || tab !== 'all')}
          search={q.trim()}
        />
        {groups.cursor && (
          <div class="errors-more">
            <button class="btn" onClick={groups.more}>
              Load more groups
            </button>
          </div>
        )}
      </section>
    </div>
  );
}

function GroupTable({
  groups,
  loading,
  error,
  selected,
  toggle,
  open,
  hist,
  filtered,
  search,
}: {
  groups: ErrorGroupRow[];
  loading: boolean;
  error?: Error;
  selected: Set<number>;
  toggle: (id: number) => void;
  open: (g: ErrorGroupRow) => void;
  hist: Map<number, number[]>;
  filtered: boolean;
  search: string;
}) {
  if (error && groups.length === 0) return <ErrorBox error={error} title="Could not load error groups" />;
  if (loading && groups.length === 0) return <Loading />;
  if (groups.length === 0)
    return filtered ? (
      <Empty title={search ? `No error groups match “${search}”` : 'No error groups match'} hint={false}>
        {search ? 'The search looks in the type, message, culprit, services and first and last release of every group with these filters in this time range.' : 'Nothing here for these filters in this time range.'} Try the All tab or a longer range.
      </Empty>
    ) : (
      <Empty title="No errors in this time range">Exceptions recorded on spans, error logs, failed spans and failed GenAI calls appear here, grouped.</Empty>
    );
  return (
    <div class="table-wrap">
      <table class="table errors-table">
        <thead>
          <tr>
            <th class="errors-check" aria-label="Select" />
            <th>Issue</th>
            <th class="num">Trend</th>
            <th class="num">Events</th>
            <th class="num">Users</th>
            <th>Last seen</th>
            <th>First seen</th>
            <th>Status</th>
          </tr>
        </thead>
        <tbody>
          {groups.map((g) => (
            <tr
              key={g.id}
              class={`clickable${selected.has(g.id) ? ' selected' : ''}`}
              data-group={g.id}
              onClick={(e) => {
                const t = e.target as HTMLElement;
                if (t.closest('a, button, input, label')) return;
                open(g);
              }}
            >
              <td class="errors-check">
                <input type="checkbox" aria-label={`Select group ${g.id}`} checked={selected.has(g.id)} onChange={() => toggle(g.id)} />
              </td>
              <td class="errors-issue">
                <div class="errors-title-line">
                  <Link href={withRange(`/errors/${g.id}`)} class="errors-title">
                    {groupTitle(g)}
                  </Link>
                  <GenAiBadge g={g} />
                  {g.unhandled_count > 0 && g.category === 'exception' && (
                    <span class="badge badge-bad" title={`${g.unhandled_count} unhandled`}>
                      unhandled
                    </span>
                  )}
                </div>
                {g.message_template && <div class="errors-message ellipsis" title={g.message_template}>{g.message_template}</div>}
                <div class="errors-meta">
                  {g.culprit && (
                    <span class="mono errors-culprit ellipsis" title={g.culprit}>
                      {g.culprit}
                    </span>
                  )}
                  {g.services.map((s) => (
                    <span key={s} class="errors-service">
                      {s}
                    </span>
                  ))}
                  {g.first_release && <span title="First seen in release">⎇ {g.first_release}</span>}
                  <span class="faint">#{g.id}</span>
                </div>
              </td>
              <td class="num errors-trend">
                {hist.has(g.id) ? <CountBars counts={hist.get(g.id)!} label={`${hist.get(g.id)!.reduce((a, b) => a + b, 0)} events in the time range`} /> : <span class="faint">–</span>}
              </td>
              <td class="num">{fmtNum(g.count, true)}</td>
              <td class="num">{fmtNum(g.user_count, true)}</td>
              <td class="nowrap">
                <Time t={g.last_seen} mode="ago" />
              </td>
              <td class="nowrap">
                <Time t={g.first_seen} mode="ago" />
              </td>
              <td>
                <StatusBadge g={g} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
