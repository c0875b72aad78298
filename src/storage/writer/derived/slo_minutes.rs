//! `slo_minutes`: good and total requests per SLO per minute, counted by
//! the writer in the same transaction as the spans, so burn rates never see
//! a span twice or miss one.
//!
//! The minutes near the newest data stay in memory and their rows are
//! rewritten as they fill (one row per SLO and minute); a late span for an
//! older minute adds a row of its own, and readers sum the rows of a
//! minute. Rows older than the longest window any SLO can have (90 days)
//! are deleted about once an hour.

use std::collections::HashMap;

use super::{Committing, Derived};
use crate::errors::slo::{minute_of, SloSpec};
use crate::storage::duck::{sql_text, Chunk, Col, RawConn};
use crate::storage::{Conn, DuckError, StorageError};

const MINUTE: u64 = 60_000_000_000;
/// Minutes kept in memory behind the newest one seen.
const OPEN_MINUTES: u64 = 10;
/// Rows are kept this long (the longest SLO window allowed).
const KEEP_NS: u64 = 90 * 24 * 3600 * 1_000_000_000;
const PRUNE_EVERY_NS: u64 = 3600 * 1_000_000_000;

pub struct SloMinutes {
    slos: Vec<SloSpec>,
    /// (slo index, minute) → (good, total), for open minutes.
    open: HashMap<(usize, u64), (u64, u64)>,
    newest: u64,
    last_prune: u64,
    staged: HashMap<(usize, u64), (u64, u64)>,
    staged_newest: u64,
}

impl SloMinutes {
    /// Loads the open minutes' counts.
    pub fn load(conn: &Conn, slos: Vec<SloSpec>) -> Result<SloMinutes, StorageError> {
        let ctx = |e| StorageError::sql("loading SLO minutes", e);
        let newest: u64 = conn
            .query_row(
                "SELECT coalesce(max(minute_unix_nano), 0)::UBIGINT FROM slo_minutes",
                [],
                |r| r.get(0),
            )
            .map_err(ctx)?;
        let mut open = HashMap::new();
        let from = newest.saturating_sub(OPEN_MINUTES * MINUTE);
        let mut stmt = conn
            .prepare(
                "SELECT slo, minute_unix_nano, sum(good)::UBIGINT, sum(total)::UBIGINT
                 FROM slo_minutes WHERE minute_unix_nano >= ? GROUP BY 1, 2",
            )
            .map_err(ctx)?;
        let mut rows = stmt.query([from]).map_err(ctx)?;
        while let Some(r) = rows.next().map_err(ctx)? {
            let name: String = r.get(0).map_err(ctx)?;
            if let Some(i) = slos.iter().position(|s| s.name == name) {
                open.insert(
                    (i, r.get(1).map_err(ctx)?),
                    (r.get(2).map_err(ctx)?, r.get(3).map_err(ctx)?),
                );
            }
        }
        Ok(SloMinutes {
            slos,
            open,
            newest,
            last_prune: 0,
            staged: HashMap::new(),
            staged_newest: newest,
        })
    }
}

impl Derived for SloMinutes {
    fn name(&self) -> &'static str {
        "slo_minutes"
    }

    fn apply(&mut self, raw: &RawConn, rows: &Committing<'_>) -> Result<(), DuckError> {
        let mut delta: HashMap<(usize, u64), (u64, u64)> = HashMap::new();
        for span in rows.spans() {
            for (i, slo) in self.slos.iter().enumerate() {
                if let Some(good) = slo.judge(span) {
                    let e = delta
                        .entry((i, minute_of(span.end_time_unix_nano)))
                        .or_default();
                    e.0 += u64::from(good);
                    e.1 += 1;
                }
            }
        }
        if delta.is_empty() {
            return Ok(());
        }
        let newest = delta
            .keys()
            .map(|(_, m)| *m)
            .max()
            .unwrap_or(0)
            .max(self.newest);
        let open_from = newest.saturating_sub(OPEN_MINUTES * MINUTE);
        // Open minutes: the whole count, replacing their row; older ones:
        // the delta as a row of its own.
        let mut rewrite: Vec<(usize, u64, u64, u64)> = Vec::new();
        let mut append: Vec<(usize, u64, u64, u64)> = Vec::new();
        for ((i, m), (g, t)) in delta {
            if m >= open_from {
                let (og, ot) = self.open.get(&(i, m)).copied().unwrap_or((0, 0));
                rewrite.push((i, m, og + g, ot + t));
            } else {
                append.push((i, m, g, t));
            }
        }
        if !rewrite.is_empty() {
            let conds: Vec<String> = rewrite
                .iter()
                .map(|(i, m, _, _)| {
                    format!(
                        "(slo = {} AND minute_unix_nano = {m})",
                        sql_text(&self.slos[*i].name)
                    )
                })
                .collect();
            raw.execute(&format!(
                "DELETE FROM slo_minutes WHERE {}",
                conds.join(" OR ")
            ))?;
        }
        let all: Vec<&(usize, u64, u64, u64)> = rewrite.iter().chain(append.iter()).collect();
        let slos = &self.slos;
        let chunks = Chunk::fill(SLO_COLS, &all, |b, (i, m, g, t)| {
            b.str(&slos[*i].name);
            b.u64(*m);
            b.u64(*g);
            b.u64(*t);
        });
        raw.append_chunks("slo_minutes", &chunks)?;
        if newest >= self.last_prune + PRUNE_EVERY_NS {
            raw.execute(&format!(
                "DELETE FROM slo_minutes WHERE minute_unix_nano < {}",
                newest.saturating_sub(KEEP_NS)
            ))?;
        }
        self.staged = rewrite
            .into_iter()
            .map(|(i, m, g, t)| ((i, m), (g, t)))
            .collect();
        self.staged_newest = newest;
        Ok(())
    }

    fn committed(&mut self, _publish: &mut Vec<crate::model::Record>) {
        let newest = self.staged_newest;
        if newest >= self.last_prune + PRUNE_EVERY_NS {
            self.last_prune = newest;
        }
        self.newest = newest;
        self.open.extend(self.staged.drain());
        let from = newest.saturating_sub(OPEN_MINUTES * MINUTE);
        self.open.retain(|(_, m), _| *m >= from);
    }

    fn rolled_back(&mut self) {
        self.staged.clear();
        self.staged_newest = self.newest;
    }
}

const SLO_COLS: &[Col] = &[Col::Varchar, Col::UBigint, Col::UBigint, Col::UBigint];
