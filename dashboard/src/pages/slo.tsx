// The SLOs page: for each objective in qyl.toml, whether it is burning its
// error budget too fast (multi-window burn rates and the alert tiers Google's
// SRE workbook recommends), how much budget is left and the SLI itself, so an
// on-call person sees at a glance what pages and what can wait.
import { Badge, PageHeader } from '../components/page';
import { ErrorBox, Loading } from '../components/states';
import { Time } from '../components/time';
import { useApi } from '../lib/fetch';
import { fmtNum, fmtPct, plural } from '../lib/format';
import { withRange } from '../lib/params';
import { Link } from 'wouter-preact';
import './slo.css';

interface SloWindow {
  window: string;
  good: number;
  total: number;
  burn_rate: number;
}

interface SloAlert {
  severity: 'page' | 'warning' | string;
  burn_rate: number;
  long_window: string;
  short_window: string;
  firing: boolean;
}

interface SloStatus {
  name: string;
  service: string;
  span_name: string | null;
  genai_operation: string | null;
  objective: number;
  latency_threshold_ms: number;
  windows: SloWindow[];
  alerts: SloAlert[];
  firing: string[];
  level?: 'page' | 'warning' | 'ok';
  budget: { window: string; good: number; total: number; allowed_bad: number; remaining: number };
}

/** One level change the SLO watcher stored (GET /slo/transitions). */
interface SloTransition {
  time: string;
  slo: string;
  service_name: string;
  objective: number;
  from: 'ok' | 'warning' | 'page';
  to: 'ok' | 'warning' | 'page';
  tier: string | null;
  burn_rate_long: number;
  burn_rate_short: number;
  budget_remaining: number;
}

type Level = 'page' | 'warning' | 'ok' | 'idle';

function levelOf(s: SloStatus): Level {
  if (s.level && s.level !== 'ok') return s.level;
  if (s.alerts.some((a) => a.firing && a.severity === 'page')) return 'page';
  if (s.alerts.some((a) => a.firing)) return 'warning';
  if (s.budget.total === 0) return 'idle';
  return 'ok';
}

const LEVEL: Record<Level, { label: string; tone: 'bad' | 'warn' | 'good' | 'neutral'; hint: string }> = {
  page: { label: 'Page', tone: 'bad', hint: 'A page tier fires: the budget burns fast enough to be gone within days' },
  warning: { label: 'Warning', tone: 'warn', hint: 'A warning tier fires: the budget burns faster than it may' },
  ok: { label: 'OK', tone: 'good', hint: 'No tier fires' },
  idle: { label: 'No traffic', tone: 'neutral', hint: 'No requests of this SLO in its window yet' },
};

/** Burn 1× spends the budget exactly over the SLO window. */
function burnTone(burn: number, total: number): string {
  if (total === 0) return 'slo-burn-none';
  if (burn >= 6) return 'slo-burn-bad';
  if (burn >= 1) return 'slo-burn-warn';
  return 'slo-burn-good';
}

const fmtBurn = (b: number, total: number) => (total === 0 ? '–' : b >= 100 ? `${Math.round(b)}×` : b >= 10 ? `${b.toFixed(1)}×` : `${b.toFixed(2)}×`);

/** An SLI with enough digits to tell it from the objective (99.95 vs 99.9). */
function fmtSli(good: number, total: number, objective: number): string {
  if (total === 0) return '–';
  const digits = Math.max(2, (String(objective).split('.')[1]?.length ?? 0) + 1);
  return fmtPct(good / total, digits);
}

export function Slos() {
  const slos = useApi<SloStatus[]>('/slo');
  const list = slos.data ?? [];
  const counts = { page: 0, warning: 0, ok: 0, idle: 0 } as Record<Level, number>;
  list.forEach((s) => counts[levelOf(s)]++);
  return (
    <div class="slo-page">
      <PageHeader
        title="SLOs"
        subtitle="Service level objectives from qyl.toml: burn rate over 5 minutes to 3 days, alert tiers and error budget"
      >
        {list.length > 0 && (
          <div class="slo-summary" aria-label="Summary">
            {(['page', 'warning', 'ok', 'idle'] as Level[])
              .filter((l) => counts[l] > 0)
              .map((l) => (
                <Badge key={l} tone={LEVEL[l].tone}>
                  {counts[l]} {LEVEL[l].label.toLowerCase()}
                </Badge>
              ))}
          </div>
        )}
      </PageHeader>
      {slos.error && !slos.data ? (
        <ErrorBox error={slos.error} title="Could not load the SLOs" />
      ) : !slos.data ? (
        <Loading />
      ) : list.length === 0 ? (
        <NoSlos />
      ) : (
        <div class="stack">
          {[...list]
            .sort((a, b) => rank(levelOf(a)) - rank(levelOf(b)))
            .map((s) => (
              <SloCard key={s.name} s={s} />
            ))}
          <AlertHistory />
        </div>
      )}
    </div>
  );
}

const rank = (l: Level) => ({ page: 0, warning: 1, ok: 2, idle: 3 })[l];

function NoSlos() {
  return (
    <div class="state state-empty">
      <strong>No SLOs configured</strong>
      <div>Add one <code>[[errors.slo]]</code> table per objective to qyl.toml and restart qyl:</div>
      <pre class="code slo-example">{`[[errors.slo]]
name = "checkout-availability"
service = "checkout"
span_name = "POST /checkout"   # optional: else the service's entry spans
objective = 99.9               # percent of good requests
window = "30d"
latency_threshold_ms = 2000    # optional: slower requests are bad too`}</pre>
    </div>
  );
}

function SloCard({ s }: { s: SloStatus }) {
  const level = levelOf(s);
  const lv = LEVEL[level];
  const b = s.budget;
  const bad = b.total - b.good;
  const remaining = b.remaining;
  const barPct = Math.max(0, Math.min(1, remaining));
  const budgetTone = b.total === 0 ? 'good' : remaining <= 0 ? 'bad' : remaining < 0.25 ? 'warn' : 'good';
  return (
    <section class={`card slo-card slo-level-${level}`} aria-label={`SLO ${s.name}`}>
      <div class="slo-head">
        <div class="slo-ident">
          <h2>{s.name}</h2>
          <div class="slo-scope muted">
            <Link href={withRange('/traces', { service: s.service, ...(s.span_name ? { name: s.span_name } : {}) })}>{s.service}</Link>
            {s.span_name ? (
              <>
                {' · '}
                <span class="mono">{s.span_name}</span>
              </>
            ) : (
              ' · entry spans'
            )}
            {s.genai_operation && (
              <>
                {' · GenAI '}
                <span class="mono">{s.genai_operation}</span>
              </>
            )}
            {' · '}
            <strong class="slo-objective">{s.objective}%</strong> good over {b.window}
            {s.latency_threshold_ms > 0 && <> · slower than {fmtNum(s.latency_threshold_ms)} ms counts as bad</>}
          </div>
        </div>
        <span class={`slo-level slo-level-badge-${lv.tone}`} title={lv.hint}>
          <span class="dot" aria-hidden="true" />
          {lv.label}
        </span>
      </div>

      <div class="slo-body">
        <div class="slo-budget">
          <div class="stat-label">Error budget left ({b.window})</div>
          <div class={`slo-budget-value tone-${budgetTone}`}>{b.total === 0 ? '100%' : remaining <= 0 ? '0%' : fmtPct(remaining, 1)}</div>
          <div class="slo-bar" role="meter" aria-label="Error budget left" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(barPct * 100)}>
            <div class={`slo-bar-fill slo-fill-${budgetTone}`} style={{ width: `${barPct * 100}%` }} />
          </div>
          <div class="slo-budget-sub muted">
            {b.total === 0 ? (
              'No requests yet'
            ) : (
              <>
                {fmtNum(bad)} bad of {b.allowed_bad < 10 ? String(Number(b.allowed_bad.toPrecision(2))) : fmtNum(Math.floor(b.allowed_bad))} allowed
                {remaining < 0 && <strong class="tone-bad"> · overspent {fmtNum(Number((1 - remaining).toFixed(1)))}×</strong>}
              </>
            )}
          </div>
          <div class="slo-sli">
            <div class="stat-label">SLI over {b.window}</div>
            <div class="slo-sli-value">
              <span class={b.total > 0 && (b.good / b.total) * 100 < s.objective ? 'tone-bad' : ''}>{fmtSli(b.good, b.total, s.objective)}</span>
              <span class="muted slo-sli-target">target {s.objective}%</span>
            </div>
            <div class="muted slo-budget-sub">
              {fmtNum(b.good)} good of {plural(b.total, 'request')}
            </div>
          </div>
        </div>

        <div class="slo-windows">
          <div class="table-wrap">
          <table class="table slo-table">
            <thead>
              <tr>
                <th>Window</th>
                {s.windows.map((w) => (
                  <th key={w.window} class="num">
                    {w.window}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              <tr>
                <th scope="row">Burn rate</th>
                {s.windows.map((w) => (
                  <td key={w.window} class="num">
                    <span class={`slo-burn ${burnTone(w.burn_rate, w.total)}`}>{fmtBurn(w.burn_rate, w.total)}</span>
                  </td>
                ))}
              </tr>
              <tr>
                <th scope="row">SLI</th>
                {s.windows.map((w) => (
                  <td key={w.window} class="num">
                    {fmtSli(w.good, w.total, s.objective)}
                  </td>
                ))}
              </tr>
              <tr>
                <th scope="row">Requests</th>
                {s.windows.map((w) => (
                  <td key={w.window} class="num muted">
                    {fmtNum(w.total, true)}
                  </td>
                ))}
              </tr>
            </tbody>
          </table>
          </div>
          <div class="slo-tiers">
            {s.alerts.map((a, i) => {
              const long = s.windows.find((w) => w.window === a.long_window);
              const short = s.windows.find((w) => w.window === a.short_window);
              return (
                <div key={i} class={`slo-tier${a.firing ? ` firing firing-${a.severity}` : ''}`}>
                  <Badge tone={a.firing ? (a.severity === 'page' ? 'bad' : 'warn') : 'neutral'}>{a.severity}</Badge>
                  <span class="slo-tier-rule">
                    burn ≥ <strong>{a.burn_rate}×</strong> over {a.long_window} and {a.short_window}
                  </span>
                  <span class="slo-tier-now muted num">
                    now {long ? fmtBurn(long.burn_rate, long.total) : '–'} / {short ? fmtBurn(short.burn_rate, short.total) : '–'}
                  </span>
                  <span class={`slo-tier-state ${a.firing ? 'tone-bad' : 'faint'}`}>{a.firing ? 'firing' : 'quiet'}</span>
                </div>
              );
            })}
          </div>
        </div>
      </div>
    </section>
  );
}

const TRANSITION_TONE = { page: 'bad', warning: 'warn', ok: 'good' } as const;

/** The level changes qyl announced (live stream `slo` events, `on = "slo"`
 *  functions), newest first: what paged whom, and when it calmed down. */
function AlertHistory() {
  const history = useApi<SloTransition[]>('/slo/transitions', { limit: '50' });
  const rows = history.data ?? [];
  return (
    <section class="card slo-history" aria-label="Alert history">
      <div class="card-head">
        <h2>Alert history</h2>
        <span class="muted">level changes qyl announced on the live stream and to <code>on = "slo"</code> functions</span>
      </div>
      {history.error && !history.data ? (
        <ErrorBox error={history.error} title="Could not load the alert history" />
      ) : !history.data ? (
        <Loading />
      ) : rows.length === 0 ? (
        <div class="state state-empty slo-history-empty">No level changes yet: every SLO has stayed OK.</div>
      ) : (
        <div class="table-wrap">
          <table class="table slo-history-table">
            <thead>
              <tr>
                <th>When</th>
                <th>SLO</th>
                <th>Change</th>
                <th>Tier</th>
                <th class="num">Burn long / short</th>
                <th class="num">Budget left</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((t) => (
                <tr key={`${t.slo}-${t.time}`} data-to={t.to}>
                  <td>
                    <Time t={t.time} mode="ago" />
                  </td>
                  <td>
                    <strong>{t.slo}</strong> <span class="muted">{t.service_name}</span>
                  </td>
                  <td class="slo-change">
                    <Badge tone={TRANSITION_TONE[t.from]}>{t.from}</Badge>
                    <span class="muted" aria-hidden="true">→</span>
                    <Badge tone={TRANSITION_TONE[t.to]}>{t.to}</Badge>
                  </td>
                  <td class="mono">{t.tier ?? <span class="faint">no tier fires</span>}</td>
                  <td class="num">
                    {fmtBurn(t.burn_rate_long, 1)} / {fmtBurn(t.burn_rate_short, 1)}
                  </td>
                  <td class={`num ${t.budget_remaining <= 0 ? 'tone-bad' : ''}`}>{t.budget_remaining <= 0 ? '0%' : fmtPct(t.budget_remaining, 1)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
