//! SLO counts: good and total requests of one SLO over each burn-rate
//! window and its whole budget window, summed from `slo_minutes`; and the
//! alert level changes the SLO watcher stored in `slo_transitions`.

use std::collections::HashMap;

use duckdb::types::Value;

use super::Where;
use crate::errors::slo::{Counts, WINDOWS};
use crate::model::query::rfc3339;
use crate::model::slo::{SloLevel, SloTransition, SloTransitionQuery, SloTransitionRow};
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::Conn;

const MINUTE: u64 = 60_000_000_000;

/// Counts for each of [`WINDOWS`] (in order) and for the last `whole_ns`,
/// all ending at `now` (the current, partial minute included).
pub fn slo_counts(
    c: &Conn,
    slo: &str,
    now: u64,
    whole_ns: u64,
) -> Result<(Vec<Counts>, Counts), QueryError> {
    let end = now - now % MINUTE + MINUTE;
    let mut cols = Vec::new();
    for (_, minutes) in WINDOWS {
        let from = end.saturating_sub(minutes * MINUTE);
        cols.push(format!(
            "coalesce(sum(good) FILTER (WHERE minute_unix_nano >= {from}), 0)::UBIGINT, \
             coalesce(sum(total) FILTER (WHERE minute_unix_nano >= {from}), 0)::UBIGINT"
        ));
    }
    let from = end.saturating_sub(whole_ns);
    cols.push(format!(
        "coalesce(sum(good) FILTER (WHERE minute_unix_nano >= {from}), 0)::UBIGINT, \
         coalesce(sum(total) FILTER (WHERE minute_unix_nano >= {from}), 0)::UBIGINT"
    ));
    let sql = format!(
        "SELECT {} FROM slo_minutes WHERE slo = ? AND minute_unix_nano < {end}",
        cols.join(", ")
    );
    let values: Vec<u64> = c
        .query_row(&sql, [slo], |r| {
            (0..(WINDOWS.len() + 1) * 2)
                .map(|i| r.get::<_, u64>(i))
                .collect()
        })
        .ctx("summing SLO minutes")?;
    let mut counts: Vec<Counts> = values
        .chunks(2)
        .map(|p| Counts {
            good: p[0],
            total: p[1],
        })
        .collect();
    let whole = counts.pop().unwrap_or_default();
    Ok((counts, whole))
}

/// Each SLO's level after its newest stored change (SLOs never changed
/// are absent: they are `ok`).
pub fn last_levels(c: &Conn) -> Result<HashMap<String, SloLevel>, QueryError> {
    let mut stmt = c
        .prepare("SELECT slo, arg_max(to_level, at_unix_nano) FROM slo_transitions GROUP BY slo")
        .ctx("preparing the SLO levels")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .ctx("reading the SLO levels")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the SLO levels")?;
    Ok(rows
        .into_iter()
        .filter_map(|(slo, level)| Some((slo, SloLevel::parse(&level)?)))
        .collect())
}

/// Stored level changes, newest first.
pub fn transitions(c: &Conn, q: &SloTransitionQuery) -> Result<Vec<SloTransitionRow>, QueryError> {
    let mut w = Where::default();
    w.eq("slo", q.slo.as_ref());
    w.eq("service_name", q.service.as_ref());
    w.ge("at_unix_nano", q.since);
    w.lt("at_unix_nano", q.until);
    if let Some(level) = q.level {
        w.cond("to_level = ?", [Value::Text(level.as_str().to_string())]);
    }
    let sql = format!(
        "SELECT slo, service_name, at_unix_nano, objective, from_level, to_level, tier,
                burn_rate_long, burn_rate_short, budget_remaining
         FROM slo_transitions{} ORDER BY at_unix_nano DESC, slo LIMIT {}",
        w.sql(),
        q.limit
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the SLO history")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(w.params.iter()), |r| {
            let at: u64 = r.get(2)?;
            let level = |i: usize| -> duckdb::Result<SloLevel> {
                Ok(SloLevel::parse(&r.get::<_, String>(i)?).unwrap_or(SloLevel::Ok))
            };
            Ok(SloTransitionRow {
                time: rfc3339(at),
                transition: SloTransition {
                    slo: r.get(0)?,
                    service_name: r.get(1)?,
                    at_unix_nano: at,
                    objective: r.get(3)?,
                    from: level(4)?,
                    to: level(5)?,
                    tier: r.get(6)?,
                    burn_rate_long: r.get(7)?,
                    burn_rate_short: r.get(8)?,
                    budget_remaining: r.get(9)?,
                },
            })
        })
        .ctx("reading the SLO history")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the SLO history")?;
    Ok(rows)
}
