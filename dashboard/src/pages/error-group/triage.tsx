// The automatic triage report at the top of an error group's page, where
// Sentry puts its "Suspect" and AI summary panels: whoever opens the group
// first starts from the evidence qyl gathered when the group became new,
// regressed or escalating (the frame to read first, the provider's state,
// the release before it, what changed, who is hit, look-alike groups, next
// steps) rather than from a bare stack trace.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { Badge, Card } from '../../components/page';
import { Time } from '../../components/time';
import { fmtNum, fmtPct } from '../../lib/format';
import { withRange } from '../../lib/params';
import { GenAiBadge } from '../errors/common';
import type { TriageReport, TriageSuspectedCause } from '../../lib/types';

const CHANGE_TONE: Record<string, 'warn' | 'bad' | 'neutral'> = { new: 'warn', regressed: 'bad', escalating: 'bad' };

/** Scrolls the event's stack trace to the frame and flashes it; the event
 *  shown may be another one than the report read, so the card itself is
 *  the fallback. */
function showFrame(frame: string) {
  const row = [...document.querySelectorAll<HTMLElement>('[data-frame]')].find((el) => el.dataset.frame === frame);
  const target = row ?? document.querySelector<HTMLElement>('.eg-event');
  if (!target) return;
  target.scrollIntoView({ block: 'center', behavior: 'smooth' });
  if (row) {
    row.classList.remove('eg-frame-flash');
    // Restarts the animation when clicked twice.
    void row.offsetWidth;
    row.classList.add('eg-frame-flash');
  }
}

/** `3h 12m` from seconds. */
function fmtSeconds(s: number): string {
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.round(s / 60)}m`;
  if (s < 86400) {
    const h = Math.floor(s / 3600);
    const m = Math.round((s % 3600) / 60);
    return m ? `${h}h ${m}m` : `${h}h`;
  }
  const d = Math.floor(s / 86400);
  const h = Math.round((s % 86400) / 3600);
  return h ? `${d}d ${h}h` : `${d}d`;
}

/** Text with group references (`#12`), trace ids and the report's session
 *  ids turned into links to their pages. */
function Linked({ text, sessions }: { text: string; sessions: string[] }) {
  // Short ids would match inside ordinary words; whole tokens only.
  const escaped = sessions.filter((s) => s.length >= 4).map((s) => `(?<![\\w.-])${s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w-])`);
  const re = new RegExp(`(#\\d+\\b|\\b[0-9a-f]{32}\\b${escaped.length ? `|${escaped.join('|')}` : ''})`, 'g');
  const parts = text.split(re);
  return (
    <>
      {parts.map((p, i) => {
        if (i % 2 === 0) return p;
        if (p.startsWith('#')) return <Link key={i} href={withRange(`/errors/${p.slice(1)}`)}>{p}</Link>;
        if (/^[0-9a-f]{32}$/.test(p))
          return (
            <Link key={i} href={`/traces/${p}`} class="mono">
              {p.slice(0, 12)}…
            </Link>
          );
        return (
          <Link key={i} href={withRange(`/sessions/${encodeURIComponent(p)}`)} class="mono">
            {p}
          </Link>
        );
      })}
    </>
  );
}

/** The model's summary: short plain prose, maybe with `code` and **bold**;
 *  rendered as text (never as HTML: it is a model's output). */
function Prose({ text }: { text: string }) {
  return (
    <>
      {text
        .split(/\n\s*\n/)
        .filter((p) => p.trim())
        .map((para, i) => (
          <p key={i}>
            {para.split(/(`[^`\n]+`|\*\*[^*\n]+\*\*)/g).map((s, j) =>
              s.startsWith('`') && s.endsWith('`') && s.length > 1 ? (
                <code key={j}>{s.slice(1, -1)}</code>
              ) : s.startsWith('**') && s.endsWith('**') && s.length > 3 ? (
                <strong key={j}>{s.slice(2, -2)}</strong>
              ) : (
                s
              ),
            )}
          </p>
        ))}
    </>
  );
}

/** The frame to read first, and what it raised. */
function Suspect({ c }: { c: TriageSuspectedCause | null }) {
  return (
    <div class="eg-tri-suspect" data-suspect>
      <div class="stat-label">Suspected cause</div>
      {c ? (
        <div class="eg-tri-suspect-body">
          <div class="eg-tri-suspect-line">
            <button class="eg-tri-frame mono" title={`Show ${c.frame} in the stack trace`} onClick={() => showFrame(c.frame)}>
              {c.function ?? c.frame}
            </button>
            {(c.path || c.module) && (
              <span class="mono muted eg-tri-where" title={c.frame}>
                <span>{c.path ?? c.module}</span>
                {c.line != null && <span class="eg-frame-line">:{c.line}</span>}
              </span>
            )}
          </div>
          {(c.exception_type || c.exception_message) && (
            <div class="eg-tri-raising">
              <span class="faint">raising </span>
              {c.exception_type && <span class="eg-exc-type">{c.exception_type}</span>}
              {c.exception_message && <span class="eg-tri-msg">{c.exception_message}</span>}
            </div>
          )}
        </div>
      ) : (
        <div class="muted">No in-app frame in the latest event.</div>
      )}
    </div>
  );
}

function Fact({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="eg-tri-fact">
      <div class="stat-label">{label}</div>
      <div class="eg-tri-fact-value">{children}</div>
    </div>
  );
}

export function TriagePanel({ report: r }: { report: TriageReport }) {
  const [markdown, setMarkdown] = useState(false);
  const c = r.suspected_cause;
  const a = r.affected;
  const d = r.deploy_before_first_event;
  const gen = r.genai;
  return (
    <Card
      class="eg-triage"
      title={
        <span class="eg-tri-title">
          <span class="eg-tri-mark" aria-hidden="true">
            ✦
          </span>
          Triage
          <Badge tone={CHANGE_TONE[r.change] ?? 'neutral'} title={`Written when the group became ${r.change}`}>
            {r.change}
          </Badge>
          <span class="faint eg-tri-when">
            written <Time t={r.created_at} mode="ago" />
          </span>
        </span>
      }
      actions={
        <button class={`btn btn-sm${markdown ? ' active' : ''}`} aria-pressed={markdown} onClick={() => setMarkdown(!markdown)} title="The report as Markdown, to paste into an issue or a chat">
          Markdown
        </button>
      }
    >
      {markdown ? (
        <pre class="code eg-tri-markdown">{r.text}</pre>
      ) : (
        <div class="eg-tri-body">
          {r.summary && (
            <div class="eg-tri-summary" data-summary>
              <div class="eg-tri-summary-head">
                <span>AI summary</span>
                {r.summary_model && <span class="faint mono">{r.summary_model}</span>}
              </div>
              <Prose text={r.summary} />
            </div>
          )}

          {/* A failed GenAI call has no stack: its class says more than "no frame". */}
          {(c || !gen) && <Suspect c={c} />}

          {gen && (
            <div class="eg-tri-genai">
              <div class="stat-label">GenAI</div>
              <div class="eg-tri-genai-body">
                <div class="row-wrap">
                  <GenAiBadge g={{ category: 'genai', gen_ai: { error_class: gen.class, model: gen.model, provider: gen.provider, operation: gen.operation, tool: null } }} />
                  {gen.model && (
                    <Link href={withRange('/genai', { model: gen.model })} class="mono">
                      {gen.model}
                    </Link>
                  )}
                  {gen.provider && (
                    <span class="muted">
                      via{' '}
                      <Link href={withRange('/genai', { provider: gen.provider })}>{gen.provider}</Link>
                    </span>
                  )}
                  {gen.operation && <span class="faint">{gen.operation}</span>}
                </div>
                <div class="muted eg-tri-status">{gen.provider_status}</div>
              </div>
            </div>
          )}

          <div class="eg-tri-facts">
            <Fact label="First release">
              {r.first_release ? (
                <>
                  <span class="mono">{r.first_release}</span>
                  {r.last_release && r.last_release !== r.first_release && <span class="muted"> · last in <span class="mono">{r.last_release}</span></span>}
                </>
              ) : (
                <span class="muted">unknown (no service.version)</span>
              )}
            </Fact>
            <Fact label="Deploy before first event">
              {d ? (
                <span title={`${d.service}${d.environment ? ` (${d.environment})` : ''} ${d.version}, ${d.source === 'deploy' ? 'deployed' : 'first seen in telemetry'} at ${d.at}`}>
                  <span class="mono">{d.version}</span>
                  <span class="muted">
                    {' '}
                    {d.source === 'deploy' ? 'deployed' : 'first seen'} {fmtSeconds(d.seconds_before_first_event)} before
                  </span>
                </span>
              ) : (
                <span class="muted">none known</span>
              )}
            </Fact>
            <Fact label="Affected">
              <span>
                {fmtNum(a.events)} event{a.events === 1 ? '' : 's'} · {fmtNum(a.users)} user{a.users === 1 ? '' : 's'}
                {a.events_sampled > 0 && (
                  <span title={`Distinct sessions among the latest ${a.events_sampled} events`}>
                    {' '}
                    · {fmtNum(a.sessions)} session{a.sessions === 1 ? '' : 's'}
                  </span>
                )}
              </span>
              {(a.session_ids.length > 0 || a.models.length > 0) && (
                <span class="eg-tri-ids">
                  {a.session_ids.map((s) => (
                    <Link key={s} href={withRange(`/sessions/${encodeURIComponent(s)}`)} class="mono" title="Open the session">
                      {s}
                    </Link>
                  ))}
                  {a.models.map((m) => (
                    <Link key={m} href={withRange('/genai', { model: m })} class="mono" title="GenAI calls of this model">
                      {m}
                    </Link>
                  ))}
                </span>
              )}
            </Fact>
          </div>

          <section class="eg-tri-section">
            <div class="eg-section-head">
              <h3>What changed</h3>
              <span class="faint">last hour vs the 24 hours before</span>
            </div>
            {r.what_changed.length > 0 ? (
              <table class="table eg-tri-changed">
                <thead>
                  <tr>
                    <th>Attribute</th>
                    <th>Value</th>
                    <th class="num">Failing</th>
                    <th class="num">Baseline</th>
                  </tr>
                </thead>
                <tbody>
                  {r.what_changed.map((x) => (
                    <tr key={`${x.key}=${x.value}`}>
                      <td class="muted">{x.key}</td>
                      <td class="mono eg-tri-value">
                        <span class="ellipsis" title={x.value}>
                          {x.value}
                        </span>
                        {x.new_value && <Badge tone="warn">new</Badge>}
                      </td>
                      <td class="num eg-tri-share">
                        <span class="eg-tri-bar" aria-hidden="true">
                          <span class="eg-tri-bar-fill bad" style={{ width: `${Math.min(100, x.failing_share * 100)}%` }} />
                        </span>
                        {fmtPct(x.failing_share, 0)}
                      </td>
                      <td class="num eg-tri-share">
                        <span class="eg-tri-bar" aria-hidden="true">
                          <span class="eg-tri-bar-fill" style={{ width: `${Math.min(100, x.baseline_share * 100)}%` }} />
                        </span>
                        {fmtPct(x.baseline_share, 0)}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : (
              <div class="muted eg-tri-quiet">{r.baseline_spans === 0 ? 'No baseline: the group’s services sent no spans in the 24 hours before.' : `Nothing stands out against ${fmtNum(r.baseline_spans)} baseline spans.`}</div>
            )}
          </section>

          {r.similar.length > 0 && (
            <section class="eg-tri-section">
              <div class="eg-section-head">
                <h3>Similar groups</h3>
                <span class="faint">merge them if they are the same bug</span>
              </div>
              <ul class="eg-tri-similar">
                {r.similar.map((s) => (
                  <li key={s.id}>
                    <Link href={withRange(`/errors/${s.id}`)} class="ellipsis" title={s.title}>
                      <span class="faint">#{s.id}</span> {s.title}
                    </Link>
                    <span class={`eg-tri-score num${s.score >= 0.5 ? ' high' : ''}`} title="Similarity (0–1)">
                      {s.score.toFixed(2)}
                    </span>
                  </li>
                ))}
              </ul>
            </section>
          )}

          {r.next_steps.length > 0 && (
            <section class="eg-tri-section">
              <div class="eg-section-head">
                <h3>Next steps</h3>
              </div>
              <ol class="eg-tri-steps">
                {r.next_steps.map((s, i) => (
                  <li key={i}>
                    <Linked text={s} sessions={a.session_ids} />
                  </li>
                ))}
              </ol>
            </section>
          )}

          {r.summary_error && !r.summary && (
            <div class="faint eg-tri-summary-error" title={r.summary_error}>
              No AI summary{r.summary_model ? ` from ${r.summary_model}` : ''}: {r.summary_error}
            </div>
          )}
        </div>
      )}
    </Card>
  );
}

/** One quiet line where the report will be. */
export function TriageNone() {
  return (
    <div class="eg-tri-none faint" data-triage-none>
      <span class="eg-tri-mark" aria-hidden="true">
        ✦
      </span>
      No triage report yet: qyl writes one when a group is new, regressed or escalating.
    </div>
  );
}
