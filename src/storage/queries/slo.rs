//! SLO counts: good and total requests of one SLO over each burn-rate
//! window and its whole budget window, summed from `slo_minutes`.

use crate::errors::slo::{Counts, WINDOWS};
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
