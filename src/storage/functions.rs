//! The functions engine's tables, written by the one writer: invocation
//! rows (appended), function definitions and `runtime.state` (upserted
//! through staging tables), all in the commit's transaction. After the
//! commit, invocations and `runtime.stream.publish` values go on the hub
//! as `Record::Function`, which the live stream sends as `function` events.

use std::collections::HashMap;
use std::sync::Arc;

use super::derived::{Committing, Derived};
use super::duck::{Chunk, ChunkBuilder, Col, RawConn};
use super::DuckError;
use crate::model::function::{FunctionDefinition, FunctionEvent, Invocation, StateWrite};
use crate::model::Record;

use Col::{Boolean, Double, Integer, UBigint, Varchar};

/// `function_invocations` in table order (migration 4).
const INVOCATION_COLS: &[Col] = &[
    Varchar, Varchar, Varchar, Varchar, Varchar, Double, Varchar, Varchar, UBigint, UBigint,
];

/// `qyl_functions` / `qyl_functions_staging` in table order.
const DEFINITION_COLS: &[Col] = &[
    Varchar,
    Varchar,
    Varchar,
    Varchar,
    Varchar,
    Integer,
    Col::Bigint,
    Integer,
    Varchar,
    Boolean,
    UBigint,
];

/// `function_state_staging` in table order.
const STATE_COLS: &[Col] = &[Varchar, Varchar, Varchar, UBigint];

fn put_invocation(b: &mut ChunkBuilder<'_>, i: &Invocation) {
    b.str(&i.invocation_id);
    b.str(&i.function);
    b.str(i.status.as_str());
    b.opt_str(i.result.as_deref());
    b.opt_str(i.error.as_deref());
    b.opt_f64(Some(i.duration_ms));
    b.opt_str(i.trace_id.as_deref());
    b.opt_str(i.span_id.as_deref());
    b.u64(i.started_unix_nano);
    b.u64(i.finished_unix_nano);
}

fn put_definition(b: &mut ChunkBuilder<'_>, d: &FunctionDefinition) {
    b.str(&d.name);
    b.str(&d.name);
    b.str(&d.file);
    b.opt_str(d.description.as_deref());
    b.str(&d.trigger);
    b.i32(i32::try_from(d.max_concurrency).unwrap_or(i32::MAX));
    b.opt_i64(Some(i64::try_from(d.timeout_ms).unwrap_or(i64::MAX)));
    b.i32(i32::try_from(d.memory_mb).unwrap_or(i32::MAX));
    b.opt_str(d.rate_limit.as_deref());
    b.opt_bool(Some(d.enabled));
    b.u64(d.updated_unix_nano);
}

fn put_state(b: &mut ChunkBuilder<'_>, (w, time): &(&StateWrite, u64)) {
    b.str(&w.function);
    b.str(&w.key);
    b.opt_str(w.value.as_deref());
    b.u64(*time);
}

/// The [`Derived`] table set of the functions engine.
#[derive(Default)]
pub struct FunctionTables {
    /// Events of the open transaction, published once it commits.
    pending: Vec<Record>,
}

impl FunctionTables {
    fn append(raw: &RawConn, table: &str, chunks: Vec<Chunk>) -> Result<(), DuckError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let mut app = raw.appender(table)?;
        for chunk in &chunks {
            app.append(chunk)?;
        }
        app.flush()
    }
}

impl Derived for FunctionTables {
    fn name(&self) -> &'static str {
        "function tables"
    }

    fn apply(&mut self, raw: &RawConn, rows: &Committing<'_>) -> Result<(), DuckError> {
        self.pending.clear();
        let batches = rows.batches();
        if batches.iter().all(|b| b.functions.is_empty()) {
            return Ok(());
        }
        let invocations: Vec<&Invocation> = batches
            .iter()
            .flat_map(|b| b.functions.invocations.iter())
            .collect();
        Self::append(
            raw,
            "function_invocations",
            Chunk::fill(INVOCATION_COLS, &invocations, |b, i| put_invocation(b, i)),
        )?;

        // Upserts: the last write of a key in this commit wins, and a key
        // may appear once per statement.
        let mut defs: HashMap<&str, &FunctionDefinition> = HashMap::new();
        for d in batches.iter().flat_map(|b| b.functions.definitions.iter()) {
            defs.insert(&d.name, d);
        }
        if !defs.is_empty() {
            let defs: Vec<&FunctionDefinition> = defs.into_values().collect();
            Self::append(
                raw,
                "qyl_functions_staging",
                Chunk::fill(DEFINITION_COLS, &defs, |b, d| put_definition(b, d)),
            )?;
            raw.execute(
                "INSERT OR REPLACE INTO qyl_functions SELECT * FROM qyl_functions_staging;
                 DELETE FROM qyl_functions_staging",
            )?;
        }
        let mut state: HashMap<(&str, &str), &StateWrite> = HashMap::new();
        for w in batches.iter().flat_map(|b| b.functions.state.iter()) {
            state.insert((&w.function, &w.key), w);
        }
        if !state.is_empty() {
            let now = crate::ingest::convert::now_unix_nano();
            let writes: Vec<(&StateWrite, u64)> = state.into_values().map(|w| (w, now)).collect();
            Self::append(
                raw,
                "function_state_staging",
                Chunk::fill(STATE_COLS, &writes, put_state),
            )?;
            raw.execute(
                "DELETE FROM function_state WHERE (function_id, key) IN
                     (SELECT (function_id, key) FROM function_state_staging WHERE value IS NULL);
                 INSERT OR REPLACE INTO function_state
                     SELECT function_id, key, value, updated_unix_nano
                     FROM function_state_staging WHERE value IS NOT NULL;
                 DELETE FROM function_state_staging",
            )?;
        }

        for b in batches {
            for i in &b.functions.invocations {
                self.pending
                    .push(Record::Function(Arc::new(FunctionEvent::Invocation(
                        i.clone(),
                    ))));
            }
            for p in &b.functions.published {
                self.pending
                    .push(Record::Function(Arc::new(FunctionEvent::Published(
                        p.clone(),
                    ))));
            }
        }
        Ok(())
    }

    fn committed(&mut self, publish: &mut Vec<Record>) {
        publish.append(&mut self.pending);
    }

    fn rolled_back(&mut self) {
        self.pending.clear();
    }
}
