// The service's recent deploys beside an error group, so "did a deploy do
// this?" is answered where the question comes up: each deploy with the
// groups that appeared or came back in its window and the error rate
// before → after, the one this group started with marked, and for that
// one (else the newest) latency p95, GenAI error classes and SLO burn
// against the window before it.
import { Badge, Card } from '../../components/page';
import { Time } from '../../components/time';
import { useApi } from '../../lib/fetch';
import { fmtMs, fmtNum, fmtPct } from '../../lib/format';
import type { ErrorGroupRow } from '../../lib/types';

/** The deploy a group started with, or the one that resolved it. */
export interface GroupDeploy {
  change: 'new' | 'regressed' | 'fixed' | 'quiet' | string;
  at: string;
  service_name: string;
  environment: string | null;
  version: string;
  deployed_at: string;
  commit: string | null;
  url: string | null;
}

interface DeployRow {
  service_name: string;
  environment: string | null;
  version: string;
  first_seen: string;
  source: string;
  error_rate_before: number | null;
  error_rate_after: number | null;
  commit: string | null;
  url: string | null;
  window: { end: string; ends_at_next_deploy: boolean; new_groups: number; regressed_groups: number };
}

interface ReleaseDetail extends DeployRow {
  correlation: {
    latency_p95_ms_before: number | null;
    latency_p95_ms_after: number | null;
    genai_error_classes: { error_class: string; before: number; after: number }[];
  };
  slo: { name: string; before: { burn_rate: number }; since: { burn_rate: number }; burn_ratio: number | null }[];
}

type Group = ErrorGroupRow & { deploy?: GroupDeploy | null; resolved_by_deploy?: GroupDeploy | null };

/** `a → b`, red when it got worse by half again or more. */
function Delta({ before, after, fmt, label }: { before: number | null; after: number | null; fmt: (v: number | null) => string; label: string }) {
  const worse = after !== null && (before === null || before === 0 ? after > 0 : after >= before * 1.5);
  return (
    <span class={`eg-dep-delta${worse ? ' tone-bad' : ''}`} title={`${label} in the window before the deploy → after it`}>
      {fmt(before)} → {fmt(after)}
    </span>
  );
}

function Commit({ d }: { d: { commit: string | null; url: string | null } }) {
  if (!d.commit && !d.url) return null;
  const text = d.commit ? d.commit.slice(0, 7) : 'link';
  return d.url ? (
    <a class="mono eg-dep-commit" href={d.url} target="_blank" rel="noreferrer" title={d.commit ?? d.url}>
      {text}
    </a>
  ) : (
    <span class="mono eg-dep-commit" title={d.commit ?? undefined}>
      {text}
    </span>
  );
}

const CHANGE_TEXT: Record<string, string> = { new: 'Started with', regressed: 'Came back with', fixed: 'Fixed in', quiet: 'Quiet since' };

export function DeploysCard({ g }: { g: Group }) {
  const service = g.deploy?.service_name ?? g.services[0];
  const env = g.deploy?.environment ?? g.last_environment;
  const list = useApi<DeployRow[]>(service ? '/releases' : null, { service, limit: 6 });
  const deploys = (list.data ?? []).filter((r) => !env || !r.environment || r.environment === env);
  const focus = g.deploy?.version ?? deploys[0]?.version;
  const focusEnv = g.deploy ? g.deploy.environment : deploys[0]?.environment;
  const detail = useApi<ReleaseDetail>(focus ? `/releases/${encodeURIComponent(focus)}` : null, { service, environment: focusEnv ?? undefined });
  const marks = [g.deploy, g.resolved_by_deploy].filter((d): d is GroupDeploy => !!d);
  if (!service || (deploys.length === 0 && marks.length === 0)) return null;
  const d = detail.data;
  const classes = (d?.correlation.genai_error_classes ?? []).slice(0, 3);
  return (
    <Card title="Deploys" class="eg-deploys-card">
      {marks.length > 0 && (
        <dl class="eg-kv eg-dep-marks">
          {marks.map((m) => (
            <div key={m.change}>
              <dt>{CHANGE_TEXT[m.change] ?? m.change}</dt>
              <dd>
                <span class={`mono${m.change === 'new' || m.change === 'regressed' ? ' tone-bad' : ''}`}>{m.version}</span> <Commit d={m} />
              </dd>
            </div>
          ))}
        </dl>
      )}
      <ol class="eg-deploys" aria-label={`Recent deploys of ${service}`}>
        {deploys.map((r) => {
          const mine = r.version === g.deploy?.version;
          return (
            <li key={`${r.version}|${r.environment}`} class={mine ? 'eg-deploy-marked' : ''} data-version={r.version}>
              <span class="eg-deploy-dot" aria-hidden="true" />
              <span class="mono eg-deploy-version">{r.version}</span>
              {r.window.new_groups > 0 && (
                <Badge tone="bad" title="Groups first seen in the window after this deploy">
                  +{fmtNum(r.window.new_groups)} new
                </Badge>
              )}
              {r.window.regressed_groups > 0 && (
                <Badge tone="warn" title="Groups that came back in the window after this deploy">
                  {fmtNum(r.window.regressed_groups)} regr.
                </Badge>
              )}
              <span class="grow" />
              {(r.error_rate_before !== null || r.error_rate_after !== null) && <Delta before={r.error_rate_before} after={r.error_rate_after} fmt={(v) => fmtPct(v, 1)} label="Error rate" />}
              <span class="faint eg-dep-ago">
                <Time t={r.first_seen} mode="ago" />
              </span>
            </li>
          );
        })}
      </ol>
      {d && (
        <div class="eg-dep-detail" aria-label={`What changed with ${d.version}`}>
          <div class="eg-dep-head">
            <span class="mono">{d.version}</span> <Commit d={d} />
            <span class="faint"> · {d.window.ends_at_next_deploy ? 'until the next deploy' : 'after the deploy'} vs before</span>
          </div>
          <dl class="eg-kv">
            <div>
              <dt>Error rate</dt>
              <dd>
                <Delta before={d.error_rate_before} after={d.error_rate_after} fmt={(v) => fmtPct(v, 1)} label="Error rate" />
              </dd>
            </div>
            <div>
              <dt>Latency p95</dt>
              <dd>
                <Delta before={d.correlation.latency_p95_ms_before} after={d.correlation.latency_p95_ms_after} fmt={fmtMs} label="Latency p95" />
              </dd>
            </div>
            {classes.map((c) => (
              <div key={c.error_class}>
                <dt class="mono">{c.error_class}</dt>
                <dd>
                  <Delta before={c.before} after={c.after} fmt={(v) => fmtNum(v)} label={`GenAI ${c.error_class} errors`} />
                </dd>
              </div>
            ))}
            {d.slo.map((s) => (
              <div key={s.name}>
                <dt class="ellipsis" title={`SLO ${s.name}: error budget burn rate since the deploy vs before`}>
                  {s.name}
                </dt>
                <dd>
                  <Delta before={s.before.burn_rate} after={s.since.burn_rate} fmt={(v) => (v === null ? '–' : `${v.toFixed(1)}×`)} label={`${s.name} burn rate`} />
                </dd>
              </div>
            ))}
          </dl>
        </div>
      )}
    </Card>
  );
}
