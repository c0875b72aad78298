//! Keeps reads out of DuckDB while the writer commits or checkpoints.
//!
//! Reads and the writer share DuckDB's `memory_limit`. A read that takes
//! what is left can make the writer's COMMIT or CHECKPOINT fail to pin a
//! block, and DuckDB then invalidates the database ("Corrupted in-memory
//! column" after a failed commit, or the checkpoint's own error): every
//! later commit fails until qyl restarts. With the 64 MB default and a trace
//! list every second during top-rate ingest, that happened within a minute
//! (BENCHMARKS.md, "What a long checkpoint holds up"). A read that runs out
//! of memory on its own only fails itself. So the writer closes this gate
//! around those two statements: new reads wait at it. Reads already inside
//! that hold much of DuckDB's memory get a moment to end and are then
//! interrupted (they fail, their callers see an error), so that a hungry
//! query costs itself, not the writer; a light one (a scan, however long)
//! goes on beside the statement.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use duckdb::InterruptHandle;

/// The reads inside DuckDB, and whether a commit or checkpoint has them
/// shut out.
#[derive(Default)]
pub struct ReadGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    /// Each read inside, by a number of its own, with what interrupts it.
    reading: HashMap<u64, Arc<InterruptHandle>>,
    next: u64,
    closed: bool,
}

/// A read inside the gate; leaving it is dropping this.
#[must_use = "the read is inside the gate only while this lives"]
pub struct Reading<'a> {
    gate: &'a ReadGate,
    id: u64,
}

/// The gate closed to new reads; it opens when this is dropped.
#[must_use = "the gate is closed only while this lives"]
pub struct Closed<'a>(&'a ReadGate);

/// The memory DuckDB's reads hold for their operators (hash tables,
/// sorts, collected results); the rest of its pool is the writer's, the
/// cache of blocks (evicted at need) and the rows not yet checkpointed.
pub const READ_MEMORY_SQL: &str = "SELECT coalesce(sum(memory_usage_bytes), 0)::UBIGINT
     FROM duckdb_memory() WHERE tag IN ('HASH_TABLE', 'ORDER_BY', 'COLUMN_DATA')";

/// Whether reads holding `used` bytes ([`READ_MEMORY_SQL`]) leave too little
/// of DuckDB's `limit` for a commit or checkpoint: a quarter of it (16 MB
/// of the 64 MB default). Without a limit qyl set, never.
pub fn hungry(used: u64, limit: Option<u64>) -> bool {
    limit.is_some_and(|limit| used >= limit / 4)
}

/// How often a closer that gave up waiting interrupts the reads still
/// inside: an interrupt that lands between two statements of a read is
/// forgotten.
const INTERRUPT_EVERY: Duration = Duration::from_millis(20);

impl ReadGate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait_timeout<'g>(
        &self,
        state: MutexGuard<'g, GateState>,
        wait: Duration,
    ) -> MutexGuard<'g, GateState> {
        self.changed
            .wait_timeout(state, wait)
            .unwrap_or_else(|p| p.into_inner())
            .0
    }

    /// Enters for one read on the connection `interrupt` belongs to,
    /// waiting while the gate is closed.
    pub fn enter(&self, interrupt: Arc<InterruptHandle>) -> Reading<'_> {
        let mut state = self.lock();
        while state.closed {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        let id = state.next;
        state.next += 1;
        state.reading.insert(id, interrupt);
        Reading { gate: self, id }
    }

    /// Closes the gate (after whoever has it closed opens it): new reads
    /// wait until the returned guard is dropped. Reads already inside go on
    /// unless `hungry()` says they hold memory the closer may need; then
    /// they get `wait` to end, are interrupted, and this returns once they
    /// have left. So a long but light query (a scan) never holds the writer
    /// up, and a hungry one holds it up for `wait` at most.
    pub fn close(&self, wait: Duration, hungry: impl FnOnce() -> bool) -> Closed<'_> {
        let mut state = self.lock();
        while state.closed {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.closed = true;
        if state.reading.is_empty() {
            return Closed(self);
        }
        drop(state);
        if !hungry() {
            return Closed(self);
        }
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        while !state.reading.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let pause = if left.is_zero() {
                for interrupt in state.reading.values() {
                    interrupt.interrupt();
                }
                INTERRUPT_EVERY
            } else {
                left
            };
            state = self.wait_timeout(state, pause);
        }
        Closed(self)
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.gate.lock().reading.remove(&self.id);
        self.gate.changed.notify_all();
    }
}

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        self.0.lock().closed = false;
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread::sleep;

    fn connection() -> duckdb::Connection {
        duckdb::Connection::open_in_memory().unwrap()
    }

    #[test]
    fn a_closer_waits_for_the_reads_inside_and_keeps_new_ones_out() {
        let gate = ReadGate::default();
        let conn = connection();
        let interrupt = conn.interrupt_handle();
        let reading = gate.enter(interrupt.clone());
        let closed = std::thread::scope(|s| {
            s.spawn(|| {
                sleep(Duration::from_millis(50));
                drop(reading);
            });
            gate.close(Duration::from_secs(60), || true)
        });
        let waited = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let _read = gate.enter(interrupt.clone());
                Instant::now()
            });
            sleep(Duration::from_millis(100));
            let opened = Instant::now();
            drop(closed);
            reader.join().unwrap() >= opened
        });
        assert!(waited, "a read entered while the gate was closed");
    }

    #[test]
    fn a_read_that_outlasts_the_wait_is_interrupted() {
        let gate = &ReadGate::default();
        let conn = connection();
        let interrupt = conn.interrupt_handle();
        let (entered, inside) = std::sync::mpsc::channel();
        let result = std::thread::scope(|s| {
            let reader = s.spawn(move || {
                let _read = gate.enter(interrupt);
                entered.send(()).unwrap();
                // Minutes of work, unless interrupted.
                conn.query_row(
                    "SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = 3",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            });
            inside.recv().unwrap();
            drop(gate.close(Duration::from_millis(100), || true));
            reader.join().unwrap()
        });
        let err = result.expect_err("the read ran to its end");
        assert!(err.to_string().contains("nterrupt"), "{err}");
    }

    #[test]
    fn a_light_read_that_outlasts_the_wait_goes_on() {
        let gate = &ReadGate::default();
        let conn = connection();
        let interrupt = conn.interrupt_handle();
        let stop = interrupt.clone();
        let (entered, inside) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let reader = s.spawn(move || {
                let _read = gate.enter(interrupt);
                entered.send(()).unwrap();
                conn.query_row("SELECT count(*) FROM range(100000000000)", [], |r| {
                    r.get::<_, i64>(0)
                })
            });
            inside.recv().unwrap();
            let closed = gate.close(Duration::from_millis(100), || false);
            assert!(!reader.is_finished(), "a light read was stopped");
            drop(closed);
            while !reader.is_finished() {
                stop.interrupt();
                sleep(INTERRUPT_EVERY);
            }
            assert!(reader.join().unwrap().is_err());
        });
    }
}
