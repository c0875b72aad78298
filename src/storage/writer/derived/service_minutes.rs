//! `service_minutes`: spans counted per minute, service, version,
//! environment and latency bin, kept by the writer in each commit's
//! transaction.
//!
//! The service overview (`/api/v1/services`, the dashboard's home page,
//! MCP `overview`) must not scan every span of its window: over a day of
//! 10 M spans that took seconds. This table holds a few dozen rows per
//! service and minute, so a day reads tens of thousands of rows; the
//! percentiles come from the latency bins as in `genai_minutes` (with each
//! bin's min and max, so a bin holding one value is exact). Like that
//! table, the sums wait in memory between flushes and are folded in again
//! after a crash (see `writer::derived`).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hashbrown::{Equivalent, HashMap};

use super::genai_rollup::{bin_of, MINUTE_NS};
use super::{Committing, Derived, Held, HeldSums, StagedUpsert};
use crate::model::SpanRecord;
use crate::storage::duck::{Chunk, ChunkBuilder, Col, DuckError, RawConn};

const STAGE: &str = "qyl_service_minutes_stage";

/// Sums the stored spans matching `$cond` into the table.
macro_rules! fill_sql {
    ($cond:literal) => {
        concat!(
            "INSERT INTO service_minutes
SELECT start_time_unix_nano // 60000000000 * 60000000000, service_name,
       coalesce(service_version, ''), coalesce(deployment_environment, ''),
       floor(log2(greatest(duration_ns, 1)) * 8)::INTEGER,
       count(*), count(*) FILTER (WHERE status_code = 'ERROR'),
       min(duration_ns)::DOUBLE, max(duration_ns)::DOUBLE, max(start_time_unix_nano)
FROM spans WHERE ",
            $cond,
            "
GROUP BY ALL;
"
        )
    };
}

/// The migration that adds the table, filled from the spans the summary
/// watermark covers (later ones are folded in by the replay at start, so
/// none is counted twice).
pub const MIGRATION_SQL: &str = concat!(
    "
-- Spans per minute, service, version, environment and latency bin, so the
-- service overview need not scan every span of its window.
CREATE TABLE service_minutes (
    minute_unix_nano     UBIGINT NOT NULL,
    service_name         VARCHAR NOT NULL,
    service_version      VARCHAR NOT NULL,
    environment          VARCHAR NOT NULL,
    bin                  INTEGER NOT NULL,
    spans                UBIGINT NOT NULL,
    errors               UBIGINT NOT NULL,
    min_ns               DOUBLE  NOT NULL,
    max_ns               DOUBLE  NOT NULL,
    last_start_unix_nano UBIGINT NOT NULL,
    PRIMARY KEY (minute_unix_nano, service_name, service_version, environment, bin)
);
",
    fill_sql!("ingest_seq <= (SELECT ingest_seq FROM summary_watermark)")
);

/// Fills the table from every stored span, for data written straight
/// into `spans` with no writer to fold it in (the query benchmark's).
pub const FILL_SQL: &str = fill_sql!("true");

const COLS: &[Col] = &[
    Col::UBigint, // minute
    Col::Varchar, // service
    Col::Varchar, // version ('' for none)
    Col::Varchar, // environment ('' for none)
    Col::Integer, // bin
    Col::UBigint, // spans
    Col::UBigint, // errors
    Col::Double,  // min
    Col::Double,  // max
    Col::UBigint, // last start
];

/// (minute, service, version, environment, latency bin).
type Key = (u64, Arc<str>, Arc<str>, Arc<str>, i32);

/// A span's [`Key`] borrowed from the span: found in the map without
/// cloning three `Arc`s per span (atomic counts touched on every span and
/// again when the key is dropped). Hashes as the tuple does.
struct KeyRef<'a>(u64, &'a str, &'a str, &'a str, i32);

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.0, self.1, self.2, self.3, self.4).hash(state);
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0 == key.0
            && self.1 == &*key.1
            && self.2 == &*key.2
            && self.3 == &*key.3
            && self.4 == key.4
    }
}

#[derive(Clone, Copy)]
struct Sums {
    spans: u64,
    errors: u64,
    min: f64,
    max: f64,
    last_start: u64,
}

impl Sums {
    fn merge(&mut self, o: &Sums) {
        self.spans += o.spans;
        self.errors += o.errors;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.last_start = self.last_start.max(o.last_start);
    }
}

#[derive(Default, Clone)]
struct Rollup(HashMap<Key, Sums, foldhash::fast::RandomState>);

impl HeldSums for Rollup {
    fn absorb(&mut self, from: &Rollup) {
        for (k, v) in &from.0 {
            match self.0.get_mut(k) {
                Some(sums) => sums.merge(v),
                None => {
                    self.0.insert(k.clone(), *v);
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn fold<'s>(into: &mut Rollup, spans: impl Iterator<Item = &'s SpanRecord>) {
    for s in spans {
        let d = s.duration_ns as f64;
        let one = Sums {
            spans: 1,
            errors: u64::from(s.status_code == "ERROR"),
            min: d,
            max: d,
            last_start: s.start_time_unix_nano,
        };
        let key = KeyRef(
            s.start_time_unix_nano / MINUTE_NS * MINUTE_NS,
            &s.service_name,
            s.service_version.as_deref().unwrap_or_default(),
            s.deployment_environment.as_deref().unwrap_or_default(),
            bin_of(d),
        );
        match into.0.get_mut(&key) {
            Some(sums) => sums.merge(&one),
            None => {
                let owned = (
                    key.0,
                    s.service_name.clone(),
                    s.service_version.clone().unwrap_or_default(),
                    s.deployment_environment.clone().unwrap_or_default(),
                    key.4,
                );
                into.0.insert(owned, one);
            }
        }
    }
}

/// The derived table; see the module comment.
pub struct ServiceMinutes {
    sums: Held<Rollup>,
    stage: StagedUpsert,
}

impl Default for ServiceMinutes {
    fn default() -> Self {
        ServiceMinutes {
            sums: Held::default(),
            stage: StagedUpsert::new(
                STAGE,
                format!(
                    "CREATE TEMP TABLE IF NOT EXISTS {STAGE} AS SELECT * FROM service_minutes LIMIT 0"
                ),
                "INSERT INTO service_minutes SELECT * FROM qyl_service_minutes_stage
                 ON CONFLICT (minute_unix_nano, service_name, service_version, environment, bin)
                 DO UPDATE SET spans = spans + excluded.spans, errors = errors + excluded.errors,
                    min_ns = least(min_ns, excluded.min_ns), max_ns = greatest(max_ns, excluded.max_ns),
                    last_start_unix_nano = greatest(last_start_unix_nano, excluded.last_start_unix_nano)",
            ),
        }
    }
}

impl Derived for ServiceMinutes {
    fn name(&self) -> &'static str {
        "service_minutes"
    }

    fn apply(&mut self, raw: &RawConn, rows: &Committing<'_>) -> Result<(), DuckError> {
        let mut current = Rollup::default();
        fold(&mut current, rows.spans());
        let Some(all) = self.sums.apply(current, rows.flush()) else {
            return Ok(());
        };
        let rows: Vec<(Key, Sums)> = all.0.into_iter().collect();
        self.stage.run(raw, &Chunk::fill(COLS, &rows, put))
    }

    fn committed(&mut self, _publish: &mut Vec<crate::model::Record>) {
        self.sums.committed();
        self.stage.committed();
    }

    fn rolled_back(&mut self) {
        self.sums.rolled_back();
        self.stage.rolled_back();
    }

    fn pending(&self) -> bool {
        self.sums.pending()
    }

    fn replay(&mut self, spans: &[SpanRecord]) {
        fold(self.sums.pending_mut(), spans.iter());
    }
}

fn put(b: &mut ChunkBuilder<'_>, (k, s): &(Key, Sums)) {
    b.u64(k.0);
    b.str(&k.1);
    b.str(&k.2);
    b.str(&k.3);
    b.i32(k.4);
    b.u64(s.spans);
    b.u64(s.errors);
    b.opt_f64(Some(s.min));
    b.opt_f64(Some(s.max));
    b.u64(s.last_start);
}

/// Retention: drops the minutes before `cutoff` (whole minutes only).
pub fn prune(
    conn: &crate::storage::Conn,
    cutoff: u64,
) -> Result<u64, crate::storage::StorageError> {
    conn.execute(
        "DELETE FROM service_minutes WHERE minute_unix_nano + ? <= ?",
        duckdb::params![MINUTE_NS, cutoff],
    )
    .map(|n| n as u64)
    .map_err(|e| crate::storage::StorageError::sql("deleting old service minutes", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(service: &str, version: Option<&str>, start: u64, ms: u64) -> SpanRecord {
        SpanRecord {
            service_name: service.into(),
            service_version: version.map(Into::into),
            start_time_unix_nano: start,
            duration_ns: ms * 1_000_000,
            ..SpanRecord::default()
        }
    }

    #[test]
    fn spans_sum_per_minute_service_version_environment_and_bin() {
        let minute = 1_700_000_040 * 1_000_000_000;
        let spans = [
            span("api", Some("1.0"), minute, 40),
            // Same key from another export: equal names, not the same Arcs.
            span("api", Some("1.0"), minute + 5, 40),
            span("api", Some("1.1"), minute + 6, 40),
            span("api", None, minute + 7, 40),
            span("api", Some("1.0"), minute + MINUTE_NS, 40),
            span("api", Some("1.0"), minute + 8, 900),
        ];
        let mut rollup = Rollup::default();
        fold(&mut rollup, spans.iter());
        let bin = bin_of(40e6);
        let key = |start: u64, version: &str, bin: i32| {
            (
                start,
                Arc::from("api"),
                Arc::from(version),
                Arc::from(""),
                bin,
            )
        };
        let count = |k: &Key| rollup.0.get(k).map(|s| s.spans);
        assert_eq!(rollup.0.len(), 5);
        assert_eq!(count(&key(minute, "1.0", bin)), Some(2));
        assert_eq!(count(&key(minute, "1.1", bin)), Some(1));
        assert_eq!(count(&key(minute, "", bin)), Some(1));
        assert_eq!(count(&key(minute + MINUTE_NS, "1.0", bin)), Some(1));
        assert_eq!(count(&key(minute, "1.0", bin_of(900e6))), Some(1));
        let sums = rollup.0[&key(minute, "1.0", bin)];
        assert_eq!(sums.last_start, minute + 5);
    }
}
