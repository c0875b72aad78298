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
//! steps) still read `spans`. Beside it, `genai_minute_labels` counts the
//! calls per minute by error class and by finish reason, for the per-model
//! view. The sums wait in memory between flushes (see `writer::derived`).

use std::collections::HashMap;

use super::{Committing, Derived, Held, HeldSums, StagedUpsert};
use crate::model::SpanRecord;
use crate::storage::duck::{Chunk, ChunkBuilder, Col, DuckError, RawConn};

/// A minute, in nanoseconds.
pub const MINUTE_NS: u64 = 60_000_000_000;
/// Latency bins per doubling: 8 keeps a bin within 9% of its neighbours;
/// the per-bin min and max make a bin holding one value exact.
pub const BINS_PER_OCTAVE: f64 = 8.0;

const STAGE: &str = "qyl_genai_minutes_stage";
const LABEL_STAGE: &str = "qyl_genai_labels_stage";

/// `genai_minute_labels` in table order.
const LABEL_COLS: &[Col] = &[
    Col::UBigint, // minute
    Col::Varchar, // service
    Col::Varchar, // provider
    Col::Varchar, // request model
    Col::Varchar, // response model
    Col::Integer, // kind: 0 error class, 1 finish reason
    Col::Varchar, // label
    Col::Varchar, // model
    Col::UBigint, // requests
];

/// Fills `genai_minute_labels` from the stored spans, for the minutes
/// `genai_minutes` holds (a migration, and the benchmark's generated data).
macro_rules! labels_fill_sql {
    () => {
        r#"
-- The calls genai_minutes already holds get their labels.
INSERT INTO genai_minute_labels
SELECT minute, service_name, provider, request_model, response_model, kind, label,
       CASE WHEN response_model = '' THEN request_model ELSE response_model END,
       count(*)
FROM (
    SELECT start_time_unix_nano // 60000000000 * 60000000000 AS minute, service_name,
           coalesce(gen_ai_provider, '') AS provider,
           coalesce(gen_ai_request_model, '') AS request_model,
           coalesce(gen_ai_response_model, '') AS response_model,
           0 AS kind, coalesce(error_type, '_OTHER') AS label
    FROM spans
    WHERE (gen_ai_provider IS NOT NULL OR gen_ai_operation IS NOT NULL)
      AND coalesce(gen_ai_operation, '') NOT IN ('invoke_agent', 'invoke_workflow', 'create_agent')
      AND status_code = 'ERROR'
    UNION ALL
    SELECT start_time_unix_nano // 60000000000 * 60000000000, service_name,
           coalesce(gen_ai_provider, ''), coalesce(gen_ai_request_model, ''),
           coalesce(gen_ai_response_model, ''), 1,
           unnest(coalesce(try_cast(try_cast(gen_ai_finish_reasons AS JSON) AS VARCHAR[]), []::VARCHAR[]))
    FROM spans
    WHERE (gen_ai_provider IS NOT NULL OR gen_ai_operation IS NOT NULL)
      AND coalesce(gen_ai_operation, '') NOT IN ('invoke_agent', 'invoke_workflow', 'create_agent')
      AND gen_ai_finish_reasons IS NOT NULL
)
WHERE minute >= (SELECT coalesce(min(minute_unix_nano), 0) FROM genai_minutes)
GROUP BY ALL;
"#
    };
}

/// The fill alone (see the macro above).
pub const LABELS_FILL_SQL: &str = labels_fill_sql!();

/// The migration that adds `genai_minute_labels` to existing databases.
pub const LABELS_MIGRATION_SQL: &str = concat!(
    r#"
-- GenAI calls per minute and error class (kind 0) or finish reason (kind 1),
-- beside genai_minutes, so /genai/models need not scan spans.
CREATE TABLE genai_minute_labels (
    minute_unix_nano UBIGINT NOT NULL,
    service_name     VARCHAR NOT NULL,
    provider         VARCHAR NOT NULL,
    request_model    VARCHAR NOT NULL,
    response_model   VARCHAR NOT NULL,
    kind             INTEGER NOT NULL,
    label            VARCHAR NOT NULL,
    model            VARCHAR NOT NULL,
    requests         UBIGINT NOT NULL,
    PRIMARY KEY (minute_unix_nano, service_name, provider, request_model, response_model, kind, label)
);
"#,
    labels_fill_sql!()
);

/// Label kinds in `genai_minute_labels`.
pub const LABEL_ERROR: i32 = 0;
pub const LABEL_FINISH: i32 = 1;

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
/// (minute, service, provider, request model, response model, kind, label).
type LabelKey = (u64, String, String, String, String, i32, String);

/// What one flush writes: the sums per key and the label counts.
#[derive(Default, Clone)]
struct Rollup {
    sums: HashMap<Key, Sums>,
    labels: HashMap<LabelKey, u64>,
}

impl HeldSums for Rollup {
    fn is_empty(&self) -> bool {
        self.sums.is_empty() && self.labels.is_empty()
    }

    fn absorb(&mut self, from: &Rollup) {
        for (k, v) in &from.sums {
            match self.sums.get_mut(k) {
                Some(sums) => sums.merge(v),
                None => {
                    self.sums.insert(k.clone(), v.clone());
                }
            }
        }
        for (k, n) in &from.labels {
            *self.labels.entry(k.clone()).or_default() += n;
        }
    }
}

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

/// Sums the GenAI calls among `spans` into `into`.
fn fold<'s>(into: &mut Rollup, spans: impl Iterator<Item = &'s SpanRecord>) {
    for s in spans {
        let groups = &mut into.sums;
        let g = &s.genai;
        if !g.is_call() {
            continue;
        }
        let minute = s.start_time_unix_nano / MINUTE_NS * MINUTE_NS;
        let key = |kind: i32, bin: i32| -> Key {
            (
                minute,
                s.service_name.to_string(),
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
        let mut label = |kind: i32, label: &str| {
            let k = key(kind, 0);
            *into
                .labels
                .entry((k.0, k.1, k.2, k.3, k.4, kind, label.to_string()))
                .or_default() += 1;
        };
        if s.status_code == "ERROR" {
            label(LABEL_ERROR, g.error_type.as_deref().unwrap_or("_OTHER"));
        }
        if let Some(text) = &g.finish_reasons {
            // Ingest stores a JSON array of strings; anything else counts
            // as no reason rather than failing the commit.
            let reasons: Vec<String> = serde_json::from_str(text).unwrap_or_default();
            for reason in &reasons {
                label(LABEL_FINISH, reason);
            }
        }
    }
}

/// The derived table; see the module comment.
pub struct GenAiMinutes {
    /// Sums waiting for a flush (see `writer::derived`).
    sums: Held<Rollup>,
    /// The sums, folded into `genai_minutes`.
    stage: StagedUpsert,
    /// The label counts, folded into `genai_minute_labels`.
    label_stage: StagedUpsert,
}

impl Default for GenAiMinutes {
    fn default() -> Self {
        GenAiMinutes {
            sums: Held::default(),
            label_stage: StagedUpsert::new(
                LABEL_STAGE,
                format!(
                    "CREATE TEMP TABLE IF NOT EXISTS {LABEL_STAGE} AS
                     SELECT * FROM genai_minute_labels LIMIT 0"
                ),
                "INSERT INTO genai_minute_labels SELECT * FROM qyl_genai_labels_stage
                 ON CONFLICT (minute_unix_nano, service_name, provider, request_model,
                              response_model, kind, label)
                 DO UPDATE SET requests = requests + excluded.requests",
            ),
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
        let mut current = Rollup::default();
        fold(&mut current, rows.spans());
        // One row per key in the stages (the upserts need unique keys).
        let Some(all) = self.sums.apply(current, rows.flush()) else {
            return Ok(());
        };
        let sums: Vec<(Key, Sums)> = all.sums.into_iter().collect();
        if !sums.is_empty() {
            self.stage.run(raw, &Chunk::fill(COLS, &sums, put))?;
        }
        let labels: Vec<(LabelKey, u64)> = all.labels.into_iter().collect();
        if !labels.is_empty() {
            self.label_stage
                .run(raw, &Chunk::fill(LABEL_COLS, &labels, put_label))?;
        }
        Ok(())
    }

    fn committed(&mut self, _publish: &mut Vec<crate::model::Record>) {
        self.sums.committed();
        self.stage.committed();
        self.label_stage.committed();
    }

    fn rolled_back(&mut self) {
        self.sums.rolled_back();
        self.stage.rolled_back();
        self.label_stage.rolled_back();
    }

    fn pending(&self) -> bool {
        self.sums.pending()
    }

    fn replay(&mut self, spans: &[SpanRecord]) {
        fold(self.sums.pending_mut(), spans.iter());
    }
}

/// The key columns both rollups start with: minute, service, provider,
/// request and response model.
fn put_minute_model(b: &mut ChunkBuilder<'_>, minute: u64, names: [&str; 4]) {
    b.u64(minute);
    for name in names {
        b.str(name);
    }
}

/// The model that served the calls: the response model, else the requested one.
fn served<'a>(request: &'a str, response: &'a str) -> &'a str {
    if response.is_empty() {
        request
    } else {
        response
    }
}

fn put_label(b: &mut ChunkBuilder<'_>, (k, n): &(LabelKey, u64)) {
    put_minute_model(b, k.0, [&k.1, &k.2, &k.3, &k.4]);
    b.i32(k.5);
    b.str(&k.6);
    b.str(served(&k.3, &k.4));
    b.u64(*n);
}

fn put(b: &mut ChunkBuilder<'_>, (k, s): &(Key, Sums)) {
    put_minute_model(b, k.0, [&k.1, &k.2, &k.3, &k.4]);
    b.i32(k.5);
    b.i32(k.6);
    b.str(served(&k.3, &k.4));
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
pub fn prune(
    conn: &crate::storage::Conn,
    cutoff: u64,
) -> Result<u64, crate::storage::StorageError> {
    let mut deleted = 0;
    for table in ["genai_minutes", "genai_minute_labels"] {
        deleted += conn
            .execute(
                &format!("DELETE FROM {table} WHERE minute_unix_nano + ? <= ?"),
                duckdb::params![MINUTE_NS, cutoff],
            )
            .map_err(|e| crate::storage::StorageError::sql("deleting old GenAI minutes", e))?
            as u64;
    }
    Ok(deleted)
}
