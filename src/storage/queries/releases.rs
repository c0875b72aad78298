//! Releases and their deploys: the list (with each deploy's window and the
//! service's error rate before and after), one release with everything
//! that changed around its deploy (groups, error rate, latency p95, GenAI
//! error classes, SLO burn), and the deploy an error group started with or
//! was resolved by.
//!
//! A deploy's window is `[first seen, end)`, where `end` is `window_ns`
//! later or the next release of the same service and environment if that
//! is sooner (`errors::deploys::window_end`, computed here in SQL); "before"
//! is as long, just before it. Groups are laid at a deploy's door from
//! `error_group_changes`, which the writer fills as groups become new or
//! regressed.

use duckdb::types::Value;

use super::Where;
use crate::errors::deploys::window_end;
use crate::errors::groups::NEW_FOR_NS;
use crate::errors::slo::{burn_rate, minute_of, Counts};
use crate::model::deploys::{
    DeployCorrelation, DeployGroup, DeployRow, DeploySlo, DeployWindow, GenAiClassChange,
    GroupDeploy, ReleaseDetail, SloObjective, SloSpan,
};
use crate::model::errors::ReleaseRow;
use crate::model::query::rfc3339;
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::writer::derived::resources::{SPANS_WITH_RESOURCES, SPAN_ENVIRONMENT_SQL};
use crate::storage::Conn;

const MINUTE: u64 = 60_000_000_000;
/// Groups listed per deploy at most.
const MAX_GROUPS: usize = 200;

/// A release row with its window in numbers.
struct Found {
    row: DeployRow,
    start: u64,
    end: u64,
    /// The next release of the service and environment, if any.
    next: Option<u64>,
}

impl Found {
    /// The start of the window before the deploy, as long as the one after.
    fn before(&self) -> u64 {
        self.start.saturating_sub(self.end - self.start)
    }
}

fn find(
    c: &Conn,
    service: Option<&String>,
    environment: Option<&String>,
    version: Option<&String>,
    limit: usize,
    window_ns: u64,
) -> Result<Vec<Found>, QueryError> {
    let mut w = Where::default();
    w.eq("service_name", service);
    w.eq("environment", environment);
    w.eq("version", version);
    // The next release is found over every release of the service, before
    // the filters; the window's end is decided in Rust (`window_end`).
    let sql = format!(
        "WITH r AS (
             SELECT *, lead(first_seen_unix_nano) OVER (
                        PARTITION BY service_name, environment
                        ORDER BY first_seen_unix_nano, version) AS next_seen
             FROM releases
         ), picked AS (
             SELECT * FROM r{} ORDER BY first_seen_unix_nano DESC, version DESC LIMIT {limit}
         ), win AS (
             SELECT *, CASE WHEN next_seen IS NOT NULL AND next_seen < first_seen_unix_nano + {window_ns}
                            THEN greatest(next_seen, first_seen_unix_nano)
                            ELSE first_seen_unix_nano + {window_ns} END AS win_end
             FROM picked
         ), b AS (
             SELECT *, CASE WHEN first_seen_unix_nano > win_end - first_seen_unix_nano
                            THEN first_seen_unix_nano - (win_end - first_seen_unix_nano)
                            ELSE 0 END AS win_before
             FROM win
         )
         SELECT b.service_name, b.environment, b.version, b.first_seen_unix_nano,
                b.last_seen_unix_nano, b.source, b.next_seen,
                (SELECT count(*) FROM errors e WHERE e.first_release = b.version
                    AND e.status <> 'merged'
                    AND list_contains(from_json(e.services, '[\"VARCHAR\"]'), b.service_name))::UBIGINT,
                (SELECT count(*) FROM errors e WHERE e.regressed_in_release = b.version
                    AND e.status <> 'merged'
                    AND list_contains(from_json(e.services, '[\"VARCHAR\"]'), b.service_name))::UBIGINT,
                (SELECT count(*) FILTER (WHERE status_code = 'ERROR') / nullif(count(*), 0)
                   FROM {SPANS_WITH_RESOURCES} WHERE span_rows.service_name = b.service_name
                    AND {SPAN_ENVIRONMENT_SQL} IS NOT DISTINCT FROM b.environment
                    AND span_rows.start_time_unix_nano >= b.win_before
                    AND span_rows.start_time_unix_nano < b.first_seen_unix_nano),
                (SELECT count(*) FILTER (WHERE status_code = 'ERROR') / nullif(count(*), 0)
                   FROM {SPANS_WITH_RESOURCES} WHERE span_rows.service_name = b.service_name
                    AND {SPAN_ENVIRONMENT_SQL} IS NOT DISTINCT FROM b.environment
                    AND span_rows.start_time_unix_nano >= b.first_seen_unix_nano
                    AND span_rows.start_time_unix_nano < b.win_end),
                (SELECT count(DISTINCT group_id) FILTER (WHERE change = 'new')
                   FROM error_group_changes g WHERE g.service_name = b.service_name
                    AND g.environment IS NOT DISTINCT FROM b.environment
                    AND g.time_unix_nano >= b.first_seen_unix_nano
                    AND g.time_unix_nano < b.win_end)::UBIGINT,
                (SELECT count(DISTINCT group_id) FILTER (WHERE change = 'regressed')
                   FROM error_group_changes g WHERE g.service_name = b.service_name
                    AND g.environment IS NOT DISTINCT FROM b.environment
                    AND g.time_unix_nano >= b.first_seen_unix_nano
                    AND g.time_unix_nano < b.win_end)::UBIGINT,
                (SELECT arg_max(vcs_commit, recorded_unix_nano) FILTER (WHERE vcs_commit IS NOT NULL)
                   FROM deploys d WHERE d.service_name = b.service_name
                    AND d.environment IS NOT DISTINCT FROM b.environment AND d.version = b.version),
                (SELECT arg_max(url, recorded_unix_nano) FILTER (WHERE url IS NOT NULL)
                   FROM deploys d WHERE d.service_name = b.service_name
                    AND d.environment IS NOT DISTINCT FROM b.environment AND d.version = b.version)
         FROM b ORDER BY b.first_seen_unix_nano DESC, b.version DESC",
        w.sql()
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the release list")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(w.params.iter()), |r| {
            let first: u64 = r.get(3)?;
            let last: u64 = r.get(4)?;
            let next: Option<u64> = r.get(6)?;
            let (end, cut) = window_end(first, next, window_ns);
            Ok(Found {
                start: first,
                end,
                next,
                row: DeployRow {
                    release: ReleaseRow {
                        service_name: r.get(0)?,
                        environment: r.get(1)?,
                        version: r.get(2)?,
                        first_seen: rfc3339(first),
                        last_seen: rfc3339(last),
                        first_seen_unix_nano: first.to_string(),
                        last_seen_unix_nano: last.to_string(),
                        source: r.get(5)?,
                        new_groups: r.get(7)?,
                        regressed_groups: r.get(8)?,
                        error_rate_before: r.get(9)?,
                        error_rate_after: r.get(10)?,
                    },
                    window: DeployWindow {
                        start: rfc3339(first),
                        end: rfc3339(end),
                        start_unix_nano: first.to_string(),
                        end_unix_nano: end.to_string(),
                        ends_at_next_deploy: cut,
                        new_groups: r.get(11)?,
                        regressed_groups: r.get(12)?,
                    },
                    commit: r.get(13)?,
                    url: r.get(14)?,
                },
            })
        })
        .ctx("listing releases")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading releases")?;
    Ok(rows)
}

/// Releases, newest first, with their deploy windows.
pub fn list_releases(
    c: &Conn,
    service: Option<&String>,
    environment: Option<&String>,
    limit: usize,
    window_ns: u64,
) -> Result<Vec<DeployRow>, QueryError> {
    Ok(find(c, service, environment, None, limit, window_ns)?
        .into_iter()
        .map(|f| f.row)
        .collect())
}

/// What `GET /api/v1/releases/{version}` finds.
#[derive(Debug)]
pub enum ReleaseLookup {
    Found(Box<ReleaseDetail>),
    Missing,
    /// Several services or environments have this version: `service
    /// (environment)` of each.
    Ambiguous(Vec<String>),
}

/// One release with what changed around its deploy.
pub fn release_detail(
    c: &Conn,
    version: &str,
    service: Option<&String>,
    environment: Option<&String>,
    window_ns: u64,
    slos: &[SloObjective],
    now: u64,
) -> Result<ReleaseLookup, QueryError> {
    let version = version.to_string();
    let mut found = find(c, service, environment, Some(&version), 20, window_ns)?;
    if found.len() > 1 {
        return Ok(ReleaseLookup::Ambiguous(
            found
                .iter()
                .map(|f| {
                    let r = &f.row.release;
                    match &r.environment {
                        Some(e) => format!("{} ({e})", r.service_name),
                        None => r.service_name.clone(),
                    }
                })
                .collect(),
        ));
    }
    let Some(f) = found.pop() else {
        return Ok(ReleaseLookup::Missing);
    };
    let correlation = correlation(c, &f, now)?;
    let slo = slos
        .iter()
        .filter(|s| s.service == f.row.release.service_name)
        .map(|s| deploy_slo(c, &f, s, now))
        .collect::<Result<Vec<_>, _>>()?;
    let resolved_groups = changed_groups(
        c,
        &f,
        "change IN ('fixed', 'quiet') AND c.release = ?",
        Some(&f.row.release.version),
        now,
    )?;
    Ok(ReleaseLookup::Found(Box::new(ReleaseDetail {
        deploy: f.row,
        correlation,
        slo,
        resolved_groups,
    })))
}

fn service_env(f: &Found) -> [Value; 2] {
    let r = &f.row.release;
    [
        Value::Text(r.service_name.clone()),
        r.environment.clone().map_or(Value::Null, Value::Text),
    ]
}

fn correlation(c: &Conn, f: &Found, now: u64) -> Result<DeployCorrelation, QueryError> {
    let (before, start, end) = (f.before(), f.start, f.end);
    let sql = format!(
        "SELECT count(*) FILTER (WHERE start_time_unix_nano < {start})::UBIGINT,
                count(*) FILTER (WHERE start_time_unix_nano < {start} AND status_code = 'ERROR')::UBIGINT,
                count(*) FILTER (WHERE start_time_unix_nano >= {start})::UBIGINT,
                count(*) FILTER (WHERE start_time_unix_nano >= {start} AND status_code = 'ERROR')::UBIGINT,
                quantile_cont(duration_ns::DOUBLE, 0.95) FILTER (WHERE start_time_unix_nano < {start}
                    AND (kind IN ('SERVER', 'CONSUMER') OR parent_span_id IS NULL)),
                quantile_cont(duration_ns::DOUBLE, 0.95) FILTER (WHERE start_time_unix_nano >= {start}
                    AND (kind IN ('SERVER', 'CONSUMER') OR parent_span_id IS NULL))
         FROM {SPANS_WITH_RESOURCES}
         WHERE service_name = ? AND {SPAN_ENVIRONMENT_SQL} IS NOT DISTINCT FROM ?
          AND start_time_unix_nano >= {before} AND start_time_unix_nano < {end}"
    );
    let (spans_before, errors_before, spans_after, errors_after, p95_before, p95_after) = c
        .query_row(&sql, duckdb::params_from_iter(service_env(f)), |r| {
            Ok((
                r.get::<_, u64>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, u64>(2)?,
                r.get::<_, u64>(3)?,
                r.get::<_, Option<f64>>(4)?,
                r.get::<_, Option<f64>>(5)?,
            ))
        })
        .ctx("comparing spans before and after a deploy")?;
    let rate = |errors: u64, spans: u64| (spans > 0).then(|| errors as f64 / spans as f64);
    let ms = |ns: Option<f64>| ns.map(|v| v / 1e6);

    let sql = format!(
        "SELECT gen_ai_error_class,
                count(*) FILTER (WHERE time_unix_nano < {start})::UBIGINT,
                count(*) FILTER (WHERE time_unix_nano >= {start})::UBIGINT
         FROM error_event_rows WHERE service_name = ? AND environment IS NOT DISTINCT FROM ?
          AND gen_ai_error_class IS NOT NULL
          AND time_unix_nano >= {before} AND time_unix_nano < {end}
         GROUP BY 1 ORDER BY 3 DESC, 2 DESC, 1"
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the GenAI error classes")?;
    let genai_error_classes = stmt
        .query_map(duckdb::params_from_iter(service_env(f)), |r| {
            Ok(GenAiClassChange {
                error_class: r.get(0)?,
                before: r.get(1)?,
                after: r.get(2)?,
            })
        })
        .ctx("counting GenAI error classes around a deploy")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading GenAI error classes")?;
    let groups = changed_groups(
        c,
        f,
        &format!(
            "change IN ('new', 'regressed') AND c.time_unix_nano >= {start} AND c.time_unix_nano < {end}"
        ),
        None,
        now,
    )?;
    Ok(DeployCorrelation {
        spans_before,
        spans_after,
        error_rate_before: rate(errors_before, spans_before),
        error_rate_after: rate(errors_after, spans_after),
        latency_p95_ms_before: ms(p95_before),
        latency_p95_ms_after: ms(p95_after),
        genai_error_classes,
        groups,
    })
}

/// Change rows of the release's service and environment matching `cond`
/// (with `release` bound to its `?`, if given), with their groups.
fn changed_groups(
    c: &Conn,
    f: &Found,
    cond: &str,
    release: Option<&String>,
    now: u64,
) -> Result<Vec<DeployGroup>, QueryError> {
    let new_until = now.saturating_sub(NEW_FOR_NS);
    let sql = format!(
        "SELECT c.group_id, c.change, c.time_unix_nano, e.error_type, e.message_template,
                e.culprit, e.status,
                CASE WHEN e.status = 'unresolved' AND e.substatus = 'new'
                          AND e.first_seen_unix_nano < {new_until} THEN 'ongoing'
                     ELSE e.substatus END,
                e.event_count, e.gen_ai_error_class
         FROM error_group_changes c JOIN errors e ON e.id = c.group_id
         WHERE c.service_name = ? AND c.environment IS NOT DISTINCT FROM ? AND {cond}
         ORDER BY c.time_unix_nano, c.group_id LIMIT {MAX_GROUPS}"
    );
    let mut params = service_env(f).to_vec();
    if let Some(r) = release {
        params.push(Value::Text(r.clone()));
    }
    let mut stmt = c.prepare(&sql).ctx("preparing the deploy's groups")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(params.iter()), |r| {
            let at: u64 = r.get(2)?;
            Ok(DeployGroup {
                id: r.get(0)?,
                change: r.get(1)?,
                at: rfc3339(at),
                at_unix_nano: at.to_string(),
                error_type: r.get(3)?,
                message_template: r.get(4)?,
                culprit: r.get(5)?,
                status: r.get(6)?,
                substatus: r.get(7)?,
                count: r.get(8)?,
                gen_ai_error_class: r.get(9)?,
            })
        })
        .ctx("listing the deploy's groups")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the deploy's groups")?;
    Ok(rows)
}

/// The SLO's burn since the deploy (until the next one, or now) against as
/// long before it, in whole minutes of `slo_minutes`.
fn deploy_slo(c: &Conn, f: &Found, slo: &SloObjective, now: u64) -> Result<DeploySlo, QueryError> {
    let from = minute_of(f.start);
    let until = match f.next {
        Some(next) => minute_of(next),
        None => minute_of(now) + MINUTE,
    }
    .max(from + MINUTE);
    let before = from.saturating_sub(until - from);
    let sql = format!(
        "SELECT coalesce(sum(good) FILTER (WHERE minute_unix_nano < {from}), 0)::UBIGINT,
                coalesce(sum(total) FILTER (WHERE minute_unix_nano < {from}), 0)::UBIGINT,
                coalesce(sum(good) FILTER (WHERE minute_unix_nano >= {from}), 0)::UBIGINT,
                coalesce(sum(total) FILTER (WHERE minute_unix_nano >= {from}), 0)::UBIGINT
         FROM slo_minutes WHERE slo = ?
          AND minute_unix_nano >= {before} AND minute_unix_nano < {until}"
    );
    let (bg, bt, sg, st) = c
        .query_row(&sql, [&slo.name], |r| {
            Ok((
                r.get::<_, u64>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, u64>(2)?,
                r.get::<_, u64>(3)?,
            ))
        })
        .ctx("summing SLO minutes around a deploy")?;
    let span = |from: u64, until: u64, counts: Counts| SloSpan {
        from: rfc3339(from),
        until: rfc3339(until),
        good: counts.good,
        total: counts.total,
        burn_rate: burn_rate(counts, slo.objective),
    };
    let before = span(
        before,
        from,
        Counts {
            good: bg,
            total: bt,
        },
    );
    let since = span(
        from,
        until,
        Counts {
            good: sg,
            total: st,
        },
    );
    let burn_ratio = (before.burn_rate > 0.0).then(|| since.burn_rate / before.burn_rate);
    Ok(DeploySlo {
        name: slo.name.clone(),
        objective: slo.objective,
        before,
        since,
        burn_ratio,
    })
}

/// A row of `error_group_changes`.
struct Change {
    kind: String,
    at: u64,
    service: String,
    environment: Option<String>,
    release: Option<String>,
}

/// The newest change of group `id` matching `cond`.
fn latest_change(c: &Conn, id: i64, cond: &str) -> Result<Option<Change>, QueryError> {
    let sql = format!(
        "SELECT c.change, c.time_unix_nano, c.service_name, c.environment, c.release
         FROM error_group_changes c JOIN errors e ON e.id = c.group_id
         WHERE c.group_id = ? AND {cond}
         ORDER BY c.time_unix_nano DESC LIMIT 1"
    );
    let mut stmt = c.prepare(&sql).ctx("preparing a group's changes")?;
    let mut rows = stmt
        .query_map([id], |r| {
            Ok(Change {
                kind: r.get(0)?,
                at: r.get(1)?,
                service: r.get(2)?,
                environment: r.get(3)?,
                release: r.get(4)?,
            })
        })
        .ctx("reading a group's changes")?;
    rows.next().transpose().ctx("reading a group's changes")
}

/// The deploy group `id` started with (its latest `new` or `regressed`
/// change, if that fell in a deploy's window), and the deploy that
/// resolved it (while it stays resolved by it).
pub fn group_deploys(
    c: &Conn,
    id: i64,
    window_ns: u64,
) -> Result<(Option<GroupDeploy>, Option<GroupDeploy>), QueryError> {
    let started = match latest_change(c, id, "c.change IN ('new', 'regressed')")? {
        Some(ch) => deploy_at(c, &ch.service, ch.environment.as_ref(), None, ch.at)?
            .filter(|(_, deployed)| ch.at < deployed.saturating_add(window_ns))
            .map(|(version, deployed)| deploy_info(c, ch, version, deployed))
            .transpose()?,
        None => None,
    };
    // A later resolution by hand (or a regression) supersedes the deploy's.
    let resolved = match latest_change(
        c,
        id,
        "c.change IN ('fixed', 'quiet') AND e.status = 'resolved'
         AND c.time_unix_nano >= e.resolved_at_unix_nano",
    )? {
        Some(ch) => match &ch.release {
            Some(version) => deploy_at(
                c,
                &ch.service,
                ch.environment.as_ref(),
                Some(version),
                u64::MAX,
            )?
            .map(|(version, deployed)| deploy_info(c, ch, version, deployed))
            .transpose()?,
            None => None,
        },
        None => None,
    };
    Ok((started, resolved))
}

/// The release of `service` in `environment` (this `version`, or the latest)
/// first seen at or before `at`: (version, first seen).
fn deploy_at(
    c: &Conn,
    service: &str,
    environment: Option<&String>,
    version: Option<&String>,
    at: u64,
) -> Result<Option<(String, u64)>, QueryError> {
    let mut w = Where::default();
    w.cond("service_name = ?", [Value::Text(service.to_string())]);
    w.cond(
        "environment IS NOT DISTINCT FROM ?",
        [environment.cloned().map_or(Value::Null, Value::Text)],
    );
    w.eq("version", version);
    w.le("first_seen_unix_nano", Some(at));
    let sql = format!(
        "SELECT version, first_seen_unix_nano FROM releases{}
         ORDER BY first_seen_unix_nano DESC, version DESC LIMIT 1",
        w.sql()
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the deploy lookup")?;
    let mut rows = stmt
        .query_map(duckdb::params_from_iter(w.params.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .ctx("finding a deploy")?;
    rows.next().transpose().ctx("finding a deploy")
}

fn deploy_info(
    c: &Conn,
    change: Change,
    version: String,
    deployed: u64,
) -> Result<GroupDeploy, QueryError> {
    let (commit, url) = c
        .query_row(
            "SELECT arg_max(vcs_commit, recorded_unix_nano) FILTER (WHERE vcs_commit IS NOT NULL),
                    arg_max(url, recorded_unix_nano) FILTER (WHERE url IS NOT NULL)
             FROM deploys WHERE service_name = ? AND environment IS NOT DISTINCT FROM ?
              AND version = ?",
            duckdb::params![change.service, change.environment, version],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ctx("reading a deploy's commit")?;
    Ok(GroupDeploy {
        change: change.kind,
        at: rfc3339(change.at),
        at_unix_nano: change.at.to_string(),
        service_name: change.service,
        environment: change.environment,
        version,
        deployed_at: rfc3339(deployed),
        deployed_unix_nano: deployed.to_string(),
        commit,
        url,
    })
}
