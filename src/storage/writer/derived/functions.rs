//! The functions engine's tables, written by the one writer: invocation
//! rows (appended), function definitions and `runtime.state` (upserted
//! through staging tables), all in the commit's transaction. After the
//! commit, invocations and `runtime.stream.publish` values go on the hub
//! as `Record::Function`, which the live stream sends as `function` events.
//!
//! An invocation past one second has a `running` row before its final one
//! (see `functions::running`); the final row replaces it, so the table has
//! one row per invocation. The replacement is decided from the rows of the
//! commit alone (a running row ended in the same commit is never stored),
//! so it holds when the writer retries a failed group commit job by job.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{Committing, Derived};
use crate::model::function::{
    FunctionDefinition, FunctionEvent, Invocation, InvocationStatus, StateWrite,
};
use crate::model::Record;
use crate::storage::duck::{sql_text, Chunk, ChunkBuilder, Col, RawConn};
use crate::storage::DuckError;

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

/// At start, before the writer runs: invocations left `running` by an
/// earlier process cannot still be running. They become `failed` with a
/// message saying why, ending when they were last seen running. (A final
/// row the full write queue refused leaves its running row until then.)
pub fn close_interrupted(
    conn: &crate::storage::Conn,
) -> Result<usize, crate::storage::StorageError> {
    conn.execute(
        "UPDATE function_invocations
         SET status = 'failed',
             error = 'qyl stopped before this invocation ended (or its result was dropped)',
             finished_unix_nano = started_unix_nano + (duration_ms * 1e6)::UBIGINT
         WHERE status = 'running'",
        [],
    )
    .map_err(|e| crate::storage::StorageError::sql("closing invocations left running", e))
}

/// Drops the running rows of invocations that also end in this commit and
/// deletes the stored running rows of those that ended now; returns the
/// invocation rows to append, in order.
fn replace_running<'a>(
    raw: &RawConn,
    invocations: Vec<&'a Invocation>,
) -> Result<Vec<&'a Invocation>, DuckError> {
    let ended: HashSet<&str> = invocations
        .iter()
        .filter(|i| i.replaces_running)
        .map(|i| i.invocation_id.as_str())
        .collect();
    let running_here: HashSet<&str> = invocations
        .iter()
        .filter(|i| i.status == InvocationStatus::Running)
        .map(|i| i.invocation_id.as_str())
        .collect();
    let stored_before: Vec<&&Invocation> = invocations
        .iter()
        .filter(|i| i.replaces_running && !running_here.contains(i.invocation_id.as_str()))
        .collect();
    if !stored_before.is_empty() {
        // Few rows (invocations that ran over a second), by ids qyl made;
        // the time bounds let DuckDB skip the row groups of other times.
        let ids: Vec<String> = stored_before
            .iter()
            .map(|i| sql_text(&i.invocation_id))
            .collect();
        let from = stored_before.iter().map(|i| i.started_unix_nano).min();
        let to = stored_before.iter().map(|i| i.started_unix_nano).max();
        raw.execute(&format!(
            "DELETE FROM function_invocations WHERE status = 'running' \
             AND started_unix_nano BETWEEN {} AND {} AND invocation_id IN ({})",
            from.unwrap_or(0),
            to.unwrap_or(u64::MAX),
            ids.join(", ")
        ))?;
    }
    Ok(invocations
        .into_iter()
        .filter(|i| {
            !(i.status == InvocationStatus::Running && ended.contains(i.invocation_id.as_str()))
        })
        .collect())
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
        raw.append_chunks(table, &chunks)
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
        let mut invocations: Vec<&Invocation> = batches
            .iter()
            .flat_map(|b| b.functions.invocations.iter())
            .collect();
        // Nearly every commit has neither running rows nor rows replacing
        // one: then this costs one pass and nothing else.
        let ended_long = invocations
            .iter()
            .any(|i| i.replaces_running || i.status == InvocationStatus::Running);
        if ended_long {
            invocations = replace_running(raw, invocations)?;
        }
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
            let now = crate::model::now_unix_nano();
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

        // Events in the order of the rows (the published values of each
        // batch after its invocations); a running row not stored is not
        // announced either.
        let mut stored = invocations.into_iter().peekable();
        for b in batches {
            for i in &b.functions.invocations {
                if stored.peek().is_some_and(|s| std::ptr::eq(*s, i)) {
                    stored.next();
                    self.pending
                        .push(Record::Function(Arc::new(FunctionEvent::Invocation(
                            i.clone(),
                        ))));
                }
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

    fn publishes(&self) -> usize {
        self.pending.len()
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
            replaces_running: false,
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

    fn invocation(id: &str, status: InvocationStatus, replaces_running: bool) -> Invocation {
        let running = status == InvocationStatus::Running;
        Invocation {
            invocation_id: id.into(),
            function: "slow".into(),
            status,
            result: (!running).then(|| "\"done\"".into()),
            error: None,
            duration_ms: if running { 1000.0 } else { 2000.0 },
            trace_id: None,
            span_id: None,
            started_unix_nano: 100,
            finished_unix_nano: if running { 0 } else { 200 },
            replaces_running,
        }
    }

    fn with_invocations(invocations: Vec<Invocation>) -> Batch {
        let mut b = Batch::default();
        b.functions.invocations = invocations;
        b
    }

    /// (invocation id, status) pairs.
    type Pairs = Vec<(String, String)>;

    /// (invocation id, status) of every stored row, and of every
    /// invocation event on the hub, in order.
    fn stored_and_published(conn: &crate::storage::Conn, hub: &Hub) -> (Pairs, Pairs) {
        let rows = conn
            .prepare(
                "SELECT invocation_id, status FROM function_invocations ORDER BY invocation_id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let events = hub
            .recent(100, |_| true)
            .iter()
            .filter_map(|e| match &e.record {
                Record::Function(f) => match &**f {
                    FunctionEvent::Invocation(i) => Some(pair(&i.invocation_id, i.status.as_str())),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        (rows, events)
    }

    /// A writer that waits 200 ms to group jobs into one commit.
    fn start_grouping() -> (Writer, crate::storage::Conn, Arc<Hub>) {
        let db = open(&StorageOptions::in_memory()).unwrap();
        let conn = db.connect().unwrap();
        let hub = Arc::new(Hub::new(100));
        let config = WriterConfig {
            batch_wait: std::time::Duration::from_millis(200),
            ..WriterConfig::default()
        };
        let writer = Writer::start(db, hub.clone(), config, false).unwrap();
        (writer, conn, hub)
    }

    fn pair(id: &str, status: &str) -> (String, String) {
        (id.to_string(), status.to_string())
    }

    #[test]
    fn after_a_restart_numbering_resumes_after_records_only_the_hub_had() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StorageOptions::file_in(dir.path());
        let last_published = |hub: &Hub| hub.recent(1, |_| true)[0].seq;
        // Starts a writer on the file and stores one finished invocation.
        let run = |id: &str| {
            let hub = Arc::new(Hub::new(100));
            let db = open(&opts).unwrap();
            let writer = Writer::start(db, hub.clone(), WriterConfig::default(), true).unwrap();
            let resumed_at = hub.last_seq();
            let done = with_invocations(vec![invocation(id, InvocationStatus::Completed, false)]);
            let ack = writer.handle().submit(done).unwrap().blocking_recv();
            ack.unwrap().unwrap();
            writer.shutdown();
            (resumed_at, last_published(&hub))
        };
        let (_, before) = run("a");
        // The invocation event's number is in no table's ingest_seq.
        let (resumed_at, after) = run("b");
        assert_eq!(resumed_at, before);
        assert!(after > before);
    }

    #[test]
    fn invocations_left_running_by_an_earlier_process_are_closed_as_failed() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StorageOptions::file_in(dir.path());
        let start = || {
            let db = open(&opts).unwrap();
            let conn = db.connect().unwrap();
            let w = Writer::start(db, Arc::new(Hub::new(10)), WriterConfig::default(), true);
            (w.unwrap(), conn)
        };
        let (writer, _) = start();
        let running = with_invocations(vec![invocation("long", InvocationStatus::Running, false)]);
        writer
            .handle()
            .submit(running)
            .unwrap()
            .blocking_recv()
            .unwrap()
            .unwrap();
        writer.shutdown();

        let (writer, conn) = start();
        let row: (String, String, u64) = conn
            .query_row(
                "SELECT status, error, finished_unix_nano FROM function_invocations",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(row.0, "failed");
        assert!(row.1.contains("qyl stopped"), "{}", row.1);
        // Started at 100 ns, seen running for 1000 ms.
        assert_eq!(row.2, 100 + 1_000_000_000);
        writer.shutdown();
    }

    #[test]
    fn a_final_row_replaces_the_running_row_of_an_earlier_commit() {
        let db = open(&StorageOptions::in_memory()).unwrap();
        let conn = db.connect().unwrap();
        let hub = Arc::new(Hub::new(100));
        let writer = Writer::start(db, hub.clone(), WriterConfig::default(), false).unwrap();
        let h = writer.handle();
        let running = with_invocations(vec![
            invocation("long", InvocationStatus::Running, false),
            invocation("short", InvocationStatus::Completed, false),
        ]);
        h.submit(running).unwrap().blocking_recv().unwrap().unwrap();
        let (rows, events) = stored_and_published(&conn, &hub);
        assert_eq!(
            rows,
            vec![pair("long", "running"), pair("short", "completed")]
        );
        assert_eq!(
            events,
            vec![pair("long", "running"), pair("short", "completed")]
        );
        let finished: u64 = conn
            .query_row(
                "SELECT finished_unix_nano FROM function_invocations WHERE status = 'running'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(finished, 0);

        let done = with_invocations(vec![invocation("long", InvocationStatus::Completed, true)]);
        h.submit(done).unwrap().blocking_recv().unwrap().unwrap();
        let (rows, events) = stored_and_published(&conn, &hub);
        assert_eq!(
            rows,
            vec![pair("long", "completed"), pair("short", "completed")]
        );
        assert_eq!(events.last(), Some(&pair("long", "completed")));
        assert_eq!(events.len(), 3);
        writer.shutdown();
    }

    #[test]
    fn a_running_row_that_ends_in_the_same_commit_is_neither_stored_nor_published() {
        let (writer, conn, hub) = start_grouping();
        let h = writer.handle();
        // Two jobs of one group commit, and the two rows in one batch.
        let pause = h.pause();
        let a = h
            .submit(with_invocations(vec![invocation(
                "a",
                InvocationStatus::Running,
                false,
            )]))
            .unwrap();
        let b = h
            .submit(with_invocations(vec![
                invocation("b", InvocationStatus::Running, false),
                invocation("a", InvocationStatus::Failed, true),
                invocation("b", InvocationStatus::TimedOut, true),
            ]))
            .unwrap();
        drop(pause);
        a.blocking_recv().unwrap().unwrap();
        b.blocking_recv().unwrap().unwrap();
        let (rows, events) = stored_and_published(&conn, &hub);
        assert_eq!(rows, vec![pair("a", "failed"), pair("b", "timed_out")]);
        assert_eq!(events, vec![pair("a", "failed"), pair("b", "timed_out")]);
        writer.shutdown();
    }

    #[test]
    fn a_group_commit_retried_job_by_job_still_keeps_one_row_per_invocation() {
        let (writer, conn, hub) = start_grouping();
        // A constraint only the middle job breaks, so the group commit fails
        // and the writer retries each job alone.
        conn.execute_batch("ALTER TABLE function_invocations ALTER COLUMN error SET NOT NULL")
            .unwrap();
        let with_error = |mut i: Invocation| {
            i.error = Some("-".into());
            i
        };
        let h = writer.handle();
        let pause = h.pause();
        let running = h
            .submit(with_invocations(vec![with_error(invocation(
                "long",
                InvocationStatus::Running,
                false,
            ))]))
            .unwrap();
        let bad = h
            .submit(with_invocations(vec![invocation(
                "bad",
                InvocationStatus::Completed,
                false,
            )]))
            .unwrap();
        let done = h
            .submit(with_invocations(vec![with_error(invocation(
                "long",
                InvocationStatus::Completed,
                true,
            ))]))
            .unwrap();
        drop(pause);
        running.blocking_recv().unwrap().unwrap();
        assert!(bad.blocking_recv().unwrap().is_err());
        done.blocking_recv().unwrap().unwrap();
        let (rows, events) = stored_and_published(&conn, &hub);
        assert_eq!(rows, vec![pair("long", "completed")]);
        assert_eq!(
            events,
            vec![pair("long", "running"), pair("long", "completed")]
        );
        writer.shutdown();
    }
}
