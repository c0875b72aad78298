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
                "DELETE FROM function_state USING function_state_staging s
                     WHERE function_state.function_id = s.function_id
                       AND function_state.key = s.key AND s.value IS NULL;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::model::function::{
        FunctionDefinition, FunctionEvent, Invocation, InvocationStatus, StateWrite,
    };
    use crate::model::{Batch, Record};
    use crate::storage::writer::{Writer, WriterConfig};
    use crate::storage::{open, StorageOptions};
    use crate::stream::Hub;

    fn state(function: &str, key: &str, value: Option<&str>) -> StateWrite {
        StateWrite {
            function: function.into(),
            key: key.into(),
            value: value.map(str::to_string),
        }
    }

    fn def(enabled: bool) -> FunctionDefinition {
        FunctionDefinition {
            name: "f".into(),
            file: "scripts/f.lua".into(),
            description: None,
            trigger: "every span".into(),
            max_concurrency: 1,
            timeout_ms: 30_000,
            memory_mb: 16,
            rate_limit: Some("20/1s".into()),
            enabled,
            updated_unix_nano: 1,
        }
    }

    #[test]
    fn rows_upserts_and_deletes_land_in_one_commit_then_reach_the_hub() {
        let db = open(&StorageOptions::in_memory()).unwrap();
        let conn = db.connect().unwrap();
        let hub = Arc::new(Hub::new(100));
        let writer = Writer::start(db, hub.clone(), WriterConfig::default(), false).unwrap();
        let h = writer.handle();
        let mut b = Batch::default();
        b.functions.definitions.push(def(true));
        b.functions.state.push(state("f", "a", Some("1")));
        b.functions.state.push(state("f", "a", Some("2")));
        b.functions.state.push(state("f", "b", Some("\"x\"")));
        b.functions.invocations.push(Invocation {
            invocation_id: "i1".into(),
            function: "f".into(),
            status: InvocationStatus::Failed,
            result: None,
            error: Some("boom".into()),
            duration_ms: 2.5,
            trace_id: Some("t".into()),
            span_id: Some("s".into()),
            started_unix_nano: 10,
            finished_unix_nano: 12,
        });
        h.submit(b).unwrap().blocking_recv().unwrap().unwrap();
        let mut b = Batch::default();
        b.functions.definitions.push(def(false));
        b.functions.state.push(state("f", "b", None));
        h.submit(b).unwrap().blocking_recv().unwrap().unwrap();

        let rows: Vec<(String, String)> = conn
            .prepare("SELECT key, value FROM function_state ORDER BY key")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, vec![("a".to_string(), "2".to_string())]);
        let (enabled, n): (bool, i64) = conn
            .query_row(
                "SELECT bool_and(enabled), count(*) FROM qyl_functions",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((enabled, n), (false, 1));
        let (status, error): (String, String) = conn
            .query_row("SELECT status, error FROM function_invocations", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((status.as_str(), error.as_str()), ("failed", "boom"));
        for staging in ["function_state_staging", "qyl_functions_staging"] {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {staging}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 0, "{staging} is emptied");
        }
        let events = hub.recent(10, |_| true);
        assert_eq!(events.len(), 1);
        match &events[0].record {
            Record::Function(f) => match &**f {
                FunctionEvent::Invocation(i) => assert_eq!(i.invocation_id, "i1"),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        writer.shutdown();
    }
}
