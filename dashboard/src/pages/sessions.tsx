// The session list: what users of an LLM application did, one row per
// session (activity, turns, spans, GenAI calls, tokens, cost, models,
// errors). Sorting is the API's (sort/order), so it holds across pages;
// filters, sort and the page cursor live in the URL.
import { Link } from 'wouter-preact';
import { Badge, Card, PageHeader } from '../components/page';
import { Empty, ErrorBox, Loading } from '../components/states';
import { Time } from '../components/time';
import { useApi } from '../lib/fetch';
import { colorFor, fmtMs, fmtNum } from '../lib/format';
import { useParams, useSetParams, withRange } from '../lib/params';
import { rangeParams, useTimeRange } from '../lib/time';
import type { Page } from '../lib/types';
import { CostText } from './genai/cost';
import type { SessionSummary } from './genai/types';
import './sessions.css';

type SortKey = 'last_seen' | 'first_seen' | 'spans' | 'traces' | 'errors' | 'requests' | 'tokens' | 'cost';

function SortHeader({ label, sortKey, num }: { label: string; sortKey: SortKey; num?: boolean }) {
  const p = useParams();
  const set = useSetParams();
  const sort = p.get('sort') ?? 'last_seen';
  const order = p.get('order') ?? 'desc';
  const active = sort === sortKey;
  const next = active && order === 'desc' ? 'asc' : 'desc';
  return (
    <th class={num ? 'num' : undefined} aria-sort={active ? (order === 'asc' ? 'ascending' : 'descending') : 'none'}>
      <button
        type="button"
        class={`th-sort${active ? ' active' : ''}`}
        title={`Sort by ${label.toLowerCase()}`}
        onClick={() => set({ sort: sortKey === 'last_seen' && next === 'desc' ? null : sortKey, order: next === 'desc' ? null : next, cursor: null, prev: null })}
      >
        {label}
        <span class="th-arrow" aria-hidden="true">
          {active ? (order === 'asc' ? '▲' : '▼') : '↕'}
        </span>
      </button>
    </th>
  );
}

function List({ names, max = 2, mono }: { names: string[]; max?: number; mono?: boolean }) {
  if (!names.length) return <span class="faint">–</span>;
  return (
    <span class="sessions-names" title={names.join('\n')}>
      <span class={`sessions-list${mono ? ' mono' : ''}`}>{names.slice(0, max).join(', ')}</span>
      {names.length > max && <span class="muted">+{names.length - max}</span>}
    </span>
  );
}

function Rows({ items }: { items: SessionSummary[] }) {
  return (
    <div class="table-wrap">
      <table class="table sessions-table">
        <thead>
          <tr>
            <th>Session</th>
            <SortHeader label="First seen" sortKey="first_seen" />
            <SortHeader label="Last seen" sortKey="last_seen" />
            <th class="num">Duration</th>
            <SortHeader label="Turns" sortKey="traces" num />
            <SortHeader label="Spans" sortKey="spans" num />
            <SortHeader label="Calls" sortKey="requests" num />
            <SortHeader label="Tokens" sortKey="tokens" num />
            <SortHeader label="Cost" sortKey="cost" num />
            <th>Models</th>
            <SortHeader label="Errors" sortKey="errors" num />
          </tr>
        </thead>
        <tbody>
          {items.map((s) => (
            <tr key={s.session_id} data-session={s.session_id}>
              <td>
                <span class="sessions-id">
                  {s.active ? <span class="dot sessions-live" title="Active in the last 30 minutes" /> : <span class="dot sessions-idle" title="No activity in the last 30 minutes" />}
                  <Link href={withRange(`/sessions/${encodeURIComponent(s.session_id)}`)} class="mono ellipsis" title={s.session_id}>
                    {s.session_id}
                  </Link>
                </span>
                <div class="sessions-who">
                  <span class="sessions-user" title="user.id">
                    <List names={s.users} />
                  </span>
                  {s.services.slice(0, 2).map((n) => (
                    <span key={n} class="sessions-service">
                      <span class="dot" style={{ background: colorFor(n) }} />
                      {n}
                    </span>
                  ))}
                  {s.services.length > 2 && <span class="muted"> +{s.services.length - 2}</span>}
                </div>
              </td>
              <td class="nowrap">
                <Time t={s.first_seen_unix_nano} />
              </td>
              <td class="nowrap">
                <Time t={s.last_seen_unix_nano} mode="ago" />
              </td>
              <td class="num">{fmtMs(s.duration_ms)}</td>
              <td class="num" data-col="turns">
                {fmtNum(s.trace_count)}
              </td>
              <td class="num">{fmtNum(s.span_count)}</td>
              <td class="num">{fmtNum(s.gen_ai_requests)}</td>
              <td class="num" title={`input ${fmtNum(s.input_tokens)} · output ${fmtNum(s.output_tokens)}`}>
                {fmtNum(s.input_tokens + s.output_tokens, true)}
              </td>
              <td class="num">
                <CostText cost={s.cost_usd} unpriced={s.unpriced_requests} requests={s.gen_ai_requests} />
                {s.unpriced_requests > 0 && s.cost_usd !== null && <span class="tone-warn" title={`${s.unpriced_requests} calls without a price`}> +?</span>}
              </td>
              <td>
                <List names={s.models} max={1} mono />
              </td>
              <td class="num">{s.error_count > 0 ? <Badge tone="bad">{fmtNum(s.error_count)}</Badge> : <span class="faint">0</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Sessions() {
  const range = useTimeRange();
  const p = useParams();
  const set = useSetParams();
  const cursor = p.get('cursor') ?? undefined;
  // The cursors of the pages before this one, so "Previous" works without a
  // backwards cursor from the API.
  const prev = (p.get('prev') ?? '').split(',').filter(Boolean);
  const active = p.get('active') === 'true';
  const params = {
    ...rangeParams(range),
    active: active ? 'true' : undefined,
    service: p.get('service') ?? undefined,
    user: p.get('user') ?? undefined,
    sort: p.get('sort') ?? undefined,
    order: p.get('order') ?? undefined,
    cursor,
    limit: 50,
  };
  const list = useApi<Page<SessionSummary>>('/sessions', params);
  const filtering = !!(params.service || params.user || active);
  const resetPage = { cursor: null, prev: null };

  return (
    <div class="sessions-page stack">
      <PageHeader title="Sessions" subtitle="Conversations and user journeys, one row per session.id">
        <label class="row sessions-active">
          <input type="checkbox" checked={active} onChange={(e) => set({ active: (e.target as HTMLInputElement).checked ? 'true' : null, ...resetPage })} />
          Active only (last 30 min)
        </label>
      </PageHeader>
      <div class="filters">
        <label class="field">
          User
          <input data-search placeholder="user.id ( / )" value={p.get('user') ?? ''} onInput={(e) => set({ user: (e.target as HTMLInputElement).value.trim(), ...resetPage }, { replace: true })} />
        </label>
        <label class="field">
          Service
          <input placeholder="service.name" value={p.get('service') ?? ''} onInput={(e) => set({ service: (e.target as HTMLInputElement).value.trim(), ...resetPage }, { replace: true })} />
        </label>
        {filtering && (
          <button class="btn" onClick={() => set({ user: null, service: null, active: null, ...resetPage })}>
            Clear filters
          </button>
        )}
      </div>
      {list.error && !list.data ? (
        <ErrorBox error={list.error} />
      ) : !list.data ? (
        <Loading />
      ) : list.data.items.length === 0 ? (
        filtering || cursor ? (
          <Card>
            <Empty title="No sessions match these filters" hint={false} />
          </Card>
        ) : (
          <Empty title="No sessions in this time range">
            Spans with a <code>session.id</code> (or <code>gen_ai.conversation.id</code>) attribute form sessions; GenAI traces without one are a session each.
          </Empty>
        )
      ) : (
        <Card class="flush">
          <Rows items={list.data.items} />
          <div class="sessions-pager row">
            <span class="muted grow">
              Page {prev.length + (cursor ? 2 : 1)} · {list.data.items.length} sessions
            </span>
            <button class="btn btn-sm" disabled={!cursor} onClick={() => set({ cursor: prev[prev.length - 1] ?? null, prev: prev.slice(0, -1).join(',') || null })}>
              ← Previous
            </button>
            <button class="btn btn-sm" disabled={!list.data.next_cursor} onClick={() => set({ cursor: list.data!.next_cursor, prev: cursor ? [...prev, cursor].join(',') : null })}>
              Next →
            </button>
          </div>
        </Card>
      )}
    </div>
  );
}
