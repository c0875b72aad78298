//! `genai_minutes`: GenAI calls summed per minute, service, provider,
//! models and latency bin, kept by the writer in each commit's transaction.
//!
//! The GenAI statistics over a day must not scan every span: on 10 M spans
//! just reading the provider and operation columns to find the calls took
//! longer than the whole answer may. This table holds a few rows per model
//! and minute (one per latency bin, plus one per time-to-first-chunk bin,
//! `kind` 1), so a day's statistics read thousands of rows; percentiles
//! come from the bins (with each bin's min and max, so a bin holding one
//! value is exact). Queries that need single spans (per session, odd
//! steps) still read `spans`. Under load the sums wait in memory between
//! flushes (see `derived.rs`).

use std::collections::HashMap;

use super::derived::{Committing, Derived, StagedUpsert};
use super::duck::{Chunk, ChunkBuilder, Col, DuckError, RawConn};
use crate::model::SpanRecord;

/// A minute, in nanoseconds.
pub const MINUTE_NS: u64 = 60_000_000_000;
/// Latency bins per doubling: 8 keeps a bin within 9% of its neighbours;
/// the per-bin min and max make a bin holding one value exact.
pub const BINS_PER_OCTAVE: f64 = 8.0;

const STAGE: &str = "qyl_genai_minutes_stage";

const COLS: &[Col] = &[
    Col::UBigint, // minute
    Col::Varchar, // service
    Col::Varchar, // provider
    Col::Varchar, // request model
    Col::Varchar, // response model
    Col::Integer, // kind
    Col::Integer, // bin
    Col::Varchar, // model: the response model, else the requested one
    Col::UBigint, // requests
    Col::UBigint, // errors
    Col::Bigint,  // input
    Col::Bigint,  // output
    Col::Bigint,  // cache read
    Col::Bigint,  // cache write
    Col::Bigint,  // reasoning
    Col::Double,  // cost
    Col::UBigint, // without cost
    Col::Double,  // min
    Col::Double,  // max
];

/// The bin of a positive value: `floor(log2(v) * 8)`, as the SQL computes it.
pub fn bin_of(v: f64) -> i32 {
    (v.max(1.0).log2() * BINS_PER_OCTAVE).floor() as i32
}

type Key = (u64, String, String, String, String, i32, i32);

#[derive(Default, Clone)]
struct Sums {
    requests: u64,
    errors: u64,
    input: i64,
    output: i64,
    cache_read: i64,
    cache_write: i64,
    reasoning: i64,
    cost: f64,
    without_cost: u64,
    min: f64,
    max: f64,
}

impl Sums {
    fn value(&mut self, v: f64) {
        if self.requests == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.requests += 1;
    }

    fn merge(&mut self, o: &Sums) {
        if o.requests == 0 {
            return;
        }
        if self.requests == 0 {
            self.min = o.min;
            self.max = o.max;
        } else {
            self.min = self.min.min(o.min);
            self.max = self.max.max(o.max);
        }
        self.requests += o.requests;
        self.errors += o.errors;
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
        self.reasoning += o.reasoning;
        self.cost += o.cost;
        self.without_cost += o.without_cost;
    }
}

fn absorb(into: &mut HashMap<Key, Sums>, from: &HashMap<Key, Sums>) {
    for (k, v) in from {
        match into.get_mut(k) {
            Some(sums) => sums.merge(v),
            None => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Sums the GenAI calls among `spans` into `groups`.
fn fold<'s>(groups: &mut HashMap<Key, Sums>, spans: impl Iterator<Item = &'s SpanRecord>) {
    for s in spans {
        let g = &s.genai;
        if !g.is_call() {
            continue;
        }
        let minute = s.start_time_unix_nano / MINUTE_NS * MINUTE_NS;
        let key = |kind: i32, bin: i32| -> Key {
            (
                minute,
                s.service_name.clone(),
                g.provider.clone().unwrap_or_default(),
                g.request_model.clone().unwrap_or_default(),
                g.response_model.clone().unwrap_or_default(),
                kind,
                bin,
            )
        };
        let d = s.duration_ns as f64;
        let e = groups.entry(key(0, bin_of(d))).or_default();
        e.value(d);
        if s.status_code == "ERROR" {
            e.errors += 1;
        }
        e.input += g.input_tokens.unwrap_or(0);
        e.output += g.output_tokens.unwrap_or(0);
        e.cache_read += g.cache_read_tokens.unwrap_or(0);
        e.cache_write += g.cache_write_tokens.unwrap_or(0);
        e.reasoning += g.reasoning_tokens.unwrap_or(0);
        e.cost += g.cost_usd.unwrap_or(0.0);
        if g.cost_usd.is_none() && (g.input_tokens.is_some() || g.output_tokens.is_some()) {
            e.without_cost += 1;
        }
        if let Some(t) = g.time_to_first_chunk_ms {
            groups.entry(key(1, bin_of(t))).or_default().value(t);
        }
    }
}

/// The derived table; see the module comment.
pub struct GenAiMinutes {
    /// Sums of earlier commits not written yet (see `derived.rs`).
    pending: HashMap<Key, Sums>,
    /// This commit's sums.
    current: HashMap<Key, Sums>,
    /// Whether this commit writes `pending` and `current`.
    flushing: bool,
    /// The sums, folded into `genai_minutes`.
    stage: StagedUpsert,
}

impl Default for GenAiMinutes {
    fn default() -> Self {
        GenAiMinutes {
            pending: HashMap::new(),
            current: HashMap::new(),
            flushing: false,
            stage: StagedUpsert::new(
                STAGE,
                format!(
                    "CREATE TEMP TABLE IF NOT EXISTS {STAGE} AS SELECT * FROM genai_minutes LIMIT 0"
                ),
                upsert_sql(),
            ),
        }
    }
}

impl Derived for GenAiMinutes {
    fn name(&self) -> &'static str {
        "genai_minutes"
    }

    fn apply(&mut self, raw: &RawConn, rows: &Committing<'_>) -> Result<(), DuckError> {
        let mut current = HashMap::new();
        fold(&mut current, rows.spans());
        self.current = current;
        self.flushing = rows.flush();
        if !self.flushing || (self.pending.is_empty() && self.current.is_empty()) {
            return Ok(());
        }
        // One row per key in the stage (the upsert needs unique keys).
        let mut groups = self.pending.clone();
        absorb(&mut groups, &self.current);
        let rows: Vec<(Key, Sums)> = groups.into_iter().collect();
        self.stage.run(raw, &Chunk::fill(COLS, &rows, put))
    }

    fn committed(&mut self, _publish: &mut Vec<crate::model::Record>) {
        let current = std::mem::take(&mut self.current);
        if self.flushing {
            self.pending.clear();
        } else {
            absorb(&mut self.pending, &current);
        }
        self.flushing = false;
        self.stage.committed();
    }

    fn rolled_back(&mut self) {
        self.current.clear();
        self.flushing = false;
        self.stage.rolled_back();
    }

    fn pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn replay(&mut self, spans: &[SpanRecord]) {
        fold(&mut self.pending, spans.iter());
    }
}

fn put(b: &mut ChunkBuilder<'_>, (k, s): &(Key, Sums)) {
    b.u64(k.0);
    b.str(&k.1);
    b.str(&k.2);
    b.str(&k.3);
    b.str(&k.4);
    b.i32(k.5);
    b.i32(k.6);
    b.str(if k.4.is_empty() { &k.3 } else { &k.4 });
    b.u64(s.requests);
    b.u64(s.errors);
    b.opt_i64(Some(s.input));
    b.opt_i64(Some(s.output));
    b.opt_i64(Some(s.cache_read));
    b.opt_i64(Some(s.cache_write));
    b.opt_i64(Some(s.reasoning));
    b.opt_f64(Some(s.cost));
    b.u64(s.without_cost);
    b.opt_f64(Some(s.min));
    b.opt_f64(Some(s.max));
}

fn upsert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let add = [
            "requests",
            "errors",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "cost_usd",
            "without_cost",
        ]
        .iter()
        .map(|c| format!("{c} = {c} + excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
        format!(
            "INSERT INTO genai_minutes SELECT * FROM {STAGE}
             ON CONFLICT (minute_unix_nano, service_name, provider, request_model,
                          response_model, kind, bin)
             DO UPDATE SET {add}, min_value = least(min_value, excluded.min_value),
                max_value = greatest(max_value, excluded.max_value)"
        )
    })
}

/// Retention: drops the minutes before `cutoff` (whole minutes only).
pub fn prune(conn: &super::Conn, cutoff: u64) -> Result<u64, super::StorageError> {
    conn.execute(
        "DELETE FROM genai_minutes WHERE minute_unix_nano + ? <= ?",
        duckdb::params![MINUTE_NS, cutoff],
    )
    .map(|n| n as u64)
    .map_err(|e| super::StorageError::sql("deleting old GenAI minutes", e))
}
