// Trace compare (/compare?a=ID&b=ID): the two traces' span trees matched
// span by span (same service and name under matched parents; repeats
// paired by their order), with each span's duration in A and in B and the
// difference, spans missing from B and extra in B marked, and the totals.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { Badge, PageHeader } from '../components/page';
import { Empty, ErrorBox, Loading } from '../components/states';
import { Time } from '../components/time';
import { useApi } from '../lib/fetch';
import { colorFor, fmtMs, fmtNum, fmtPct } from '../lib/format';
import { useParams, useSetParams, withRange } from '../lib/params';
import type { TraceTree } from '../lib/types';
import { buildModel, type FlatSpan, type TraceModel } from './trace/model';
import './traces.css';

export interface CmpRow {
  depth: number;
  service: string;
  name: string;
  /** 1-based occurrence among same-named siblings. */
  occ: number;
  a?: FlatSpan;
  b?: FlatSpan;
  /** This row or a row below it differs (missing, extra or ≥10% slower/faster). */
  changed: boolean;
}

const keyOf = (s: FlatSpan) => `${s.span.service_name}\u0000${s.span.name}`;

/** Matches two span trees; returns rows in tree order. */
export function matchTraces(a: TraceModel, b: TraceModel): CmpRow[] {
  const rows: CmpRow[] = [];
  const rootsA = a.spans.map((s, i) => (s.parent < 0 ? i : -1)).filter((i) => i >= 0);
  const rootsB = b.spans.map((s, i) => (s.parent < 0 ? i : -1)).filter((i) => i >= 0);
  const walk = (ka: number[], kb: number[], depth: number): boolean => {
    // Pair same-keyed siblings by their order of start.
    const seen = new Map<string, number>();
    const pairs: { a?: number; b?: number; occ: number; at: number }[] = [];
    const slot = new Map<string, number>();
    for (const i of ka) {
      const k = keyOf(a.spans[i]);
      const occ = (seen.get(k) ?? 0) + 1;
      seen.set(k, occ);
      slot.set(`${k}\u0000${occ}`, pairs.length);
      pairs.push({ a: i, occ, at: a.spans[i].start });
    }
    const seenB = new Map<string, number>();
    for (const i of kb) {
      const k = keyOf(b.spans[i]);
      const occ = (seenB.get(k) ?? 0) + 1;
      seenB.set(k, occ);
      const at = slot.get(`${k}\u0000${occ}`);
      if (at !== undefined) pairs[at].b = i;
      else pairs.push({ b: i, occ, at: b.spans[i].start });
    }
    pairs.sort((x, y) => x.at - y.at);
    let anyChanged = false;
    for (const pr of pairs) {
      const sa = pr.a !== undefined ? a.spans[pr.a] : undefined;
      const sb = pr.b !== undefined ? b.spans[pr.b] : undefined;
      const base = (sa ?? sb)!;
      const row: CmpRow = { depth, service: base.span.service_name, name: base.span.name, occ: pr.occ, a: sa, b: sb, changed: false };
      rows.push(row);
      const below = walk(sa ? sa.children : [], sb ? sb.children : [], depth + 1);
      const da = sa ? sa.end - sa.start : 0;
      const db = sb ? sb.end - sb.start : 0;
      const own = !sa || !sb || Math.abs(db - da) >= Math.max(0.1 * da, 0.05);
      row.changed = own || below;
      anyChanged ||= row.changed;
    }
    return anyChanged;
  };
  walk(rootsA, rootsB, 0);
  return rows;
}

export function TraceCompare() {
  const p = useParams();
  const set = useSetParams();
  const a = (p.get('a') ?? '').trim();
  const b = (p.get('b') ?? '').trim();
  const onlyChanged = p.get('changed') === '1';
  const [da, setDa] = useState(a);
  const [db, setDb] = useState(b);
  useEffect(() => setDa(a), [a]);
  useEffect(() => setDb(b), [b]);
  const ra = useApi<TraceTree>(a ? `/traces/${encodeURIComponent(a)}` : null);
  const rb = useApi<TraceTree>(b ? `/traces/${encodeURIComponent(b)}` : null);
  const ma = useMemo(() => (ra.data ? buildModel(ra.data) : undefined), [ra.data]);
  const mb = useMemo(() => (rb.data ? buildModel(rb.data) : undefined), [rb.data]);
  const rows = useMemo(() => (ma && mb ? matchTraces(ma, mb) : []), [ma, mb]);

  const form = (
    <form
      class="cmp-form"
      onSubmit={(e) => {
        e.preventDefault();
        set({ a: da.trim().toLowerCase(), b: db.trim().toLowerCase() });
      }}
    >
      <label class="field">
        Trace A (baseline)
        <input class="mono" data-search value={da} placeholder="32 hex digits" aria-label="Trace A" onInput={(e) => setDa((e.target as HTMLInputElement).value)} />
      </label>
      <button class="btn" type="button" title="Swap A and B" aria-label="Swap A and B" onClick={() => set({ a: b, b: a })}>
        ⇄
      </button>
      <label class="field">
        Trace B
        <input class="mono" value={db} placeholder="32 hex digits" aria-label="Trace B" onInput={(e) => setDb((e.target as HTMLInputElement).value)} />
      </label>
      <button class="btn btn-primary" type="submit">
        Compare
      </button>
    </form>
  );

  let body;
  if (!a || !b)
    body = (
      <Empty title="Pick two traces" hint={false}>
        Enter two trace ids above, tick two traces in the <Link href={withRange('/traces')}>trace list</Link>, or use “Compare with…” in a trace.
      </Empty>
    );
  else if (ra.error || rb.error) body = <ErrorBox error={ra.error ?? rb.error} title={`Could not load trace ${ra.error ? 'A' : 'B'}`} />;
  else if (!ma || !mb || !ra.data || !rb.data) body = <Loading label="Loading both traces…" />;
  else body = <CompareBody ta={ra.data} tb={rb.data} ma={ma} mb={mb} rows={rows} onlyChanged={onlyChanged} setOnlyChanged={(v) => set({ changed: v ? '1' : null }, { replace: true })} />;

  return (
    <div class="compare-page">
      <PageHeader title="Compare traces" subtitle="Spans matched by service and name; B against A." />
      {form}
      {body}
    </div>
  );
}

function CompareBody({ ta, tb, ma, mb, rows, onlyChanged, setOnlyChanged }: { ta: TraceTree; tb: TraceTree; ma: TraceModel; mb: TraceModel; rows: CmpRow[]; onlyChanged: boolean; setOnlyChanged: (v: boolean) => void }) {
  const missing = rows.filter((r) => r.a && !r.b).length;
  const extra = rows.filter((r) => r.b && !r.a).length;
  const matched = rows.length - missing - extra;
  const delta = mb.duration - ma.duration;
  const shown = onlyChanged ? rows.filter((r) => r.changed) : rows;
  const maxAbs = Math.max(...rows.map((r) => (r.a && r.b ? Math.abs(r.b.end - r.b.start - (r.a.end - r.a.start)) : 0)), 1e-9);
  return (
    <>
      <div class="grid-4 cmp-summary">
        <SideCard label="A (baseline)" t={ta} m={ma} />
        <SideCard label="B" t={tb} m={mb} />
        <div class="stat card">
          <div class="stat-label">Duration difference</div>
          <div class={`stat-value ${delta > 0 ? 'delta-up' : delta < 0 ? 'delta-down' : ''}`} data-testid="total-delta">
            {delta > 0 ? '+' : ''}
            {fmtMs(delta)}
          </div>
          <div class="stat-sub">{ma.duration > 0 ? `${delta >= 0 ? '+' : ''}${fmtPct(delta / ma.duration, 1)} of A` : '–'}</div>
        </div>
        <div class="stat card">
          <div class="stat-label">Spans</div>
          <div class="stat-value">{fmtNum(matched)} matched</div>
          <div class="stat-sub">
            <span class={missing ? 'tone-bad' : ''}>{fmtNum(missing)} missing in B</span> · <span style={extra ? { color: 'var(--info)' } : undefined}>{fmtNum(extra)} extra in B</span>
          </div>
        </div>
      </div>
      <div class="card flush">
        <div class="card-head" style={{ padding: '10px 14px 6px' }}>
          <div class="cmp-legend">
            <span>
              <span class="cmp-swatch" style={{ background: 'var(--bad-soft)', border: '1px solid var(--bad)' }} /> missing in B
            </span>
            <span>
              <span class="cmp-swatch" style={{ background: 'var(--info-soft)', border: '1px solid var(--info)' }} /> extra in B
            </span>
            <span>
              <span class="delta-up">+slower</span> / <span class="delta-down">−faster</span> in B
            </span>
          </div>
          <label class="row" style={{ fontSize: '12px' }}>
            <input type="checkbox" checked={onlyChanged} onChange={(e) => setOnlyChanged((e.target as HTMLInputElement).checked)} /> Only differences
          </label>
        </div>
        <div class="table-wrap">
          <table class="table cmp-table">
            <thead>
              <tr>
                <th>Span</th>
                <th class="num">A</th>
                <th class="num">B</th>
                <th class="num">Δ (B − A)</th>
                <th class="num">Δ %</th>
                <th>Match</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((r, k) => {
                const da = r.a ? r.a.end - r.a.start : null;
                const db = r.b ? r.b.end - r.b.start : null;
                const d = da !== null && db !== null ? db - da : null;
                const state = !r.b ? 'missing' : !r.a ? 'extra' : 'matched';
                return (
                  <tr key={k} class={state} data-match={state} data-name={r.name} data-depth={r.depth}>
                    <td>
                      <div class="cmp-name">
                        <span class="cmp-indent" style={{ width: `${r.depth * 14}px` }} />
                        <span class="dot" style={{ background: colorFor(r.service) }} title={r.service} />
                        <span class="muted">{r.service}</span>
                        <span class={(r.a ?? r.b)!.error ? 'tone-bad' : ''}>{r.name}</span>
                        {r.occ > 1 && <span class="cmp-occ">#{r.occ}</span>}
                      </div>
                    </td>
                    <td class="num">{da === null ? <span class="faint">–</span> : fmtMs(da)}</td>
                    <td class="num">{db === null ? <span class="faint">–</span> : fmtMs(db)}</td>
                    <td class="num">
                      {d === null ? (
                        <span class="faint">–</span>
                      ) : (
                        <span class={d > 0 ? 'delta-up' : d < 0 ? 'delta-down' : 'muted'}>
                          <span class="delta-bar" style={{ width: `${Math.round((Math.abs(d) / maxAbs) * 50)}px`, background: 'currentColor', opacity: 0.5 }} />
                          {d > 0 ? '+' : ''}
                          {fmtMs(d)}
                        </span>
                      )}
                    </td>
                    <td class="num">{d === null || !da ? <span class="faint">–</span> : <span class={d > 0 ? 'delta-up' : d < 0 ? 'delta-down' : 'muted'}>{`${d > 0 ? '+' : ''}${fmtPct(d / da, 0)}`}</span>}</td>
                    <td>{state === 'missing' ? <Badge tone="bad">missing in B</Badge> : state === 'extra' ? <Badge tone="info">extra in B</Badge> : <span class="faint">matched</span>}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {shown.length === 0 && <div class="state">The traces match: no span differs by 10% or more.</div>}
        </div>
      </div>
    </>
  );
}

function SideCard({ label, t, m }: { label: string; t: TraceTree; m: TraceModel }) {
  return (
    <div class="stat card">
      <div class="stat-label">{label}</div>
      <div class="stat-value">{fmtMs(m.duration)}</div>
      <div class="stat-sub cmp-side">
        <Link href={withRange(`/traces/${t.summary.trace_id}`)} class="ellipsis">
          {t.summary.root_name}
        </Link>
        <span>· {fmtNum(m.spans.length)} spans ·</span>
        <Time t={t.summary.start_time_unix_nano} mode="clock" />
      </div>
    </div>
  );
}
