//! `running` rows for invocations that take a while.
//!
//! An invocation's row is written when it ends, which for nearly all of
//! them is microseconds after it starts. A handler that runs for seconds (a
//! slow store query, a large report) would stay invisible until it ends, so
//! each worker announces the invocation it is running in its [`InFlight`]
//! cell, and the outbox thread, each time it flushes, writes a `running` row
//! for an invocation that has run longer than [`RUNNING_AFTER`]. That row
//! goes through the outbox and the writer like every other, so it reaches
//! the table and the live stream the same way. The final row then says it
//! replaces the running one, and storage swaps them, so the table keeps one
//! row per invocation. An invocation that ends sooner costs two uncontended
//! lock operations and no row at all.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::executor::{ids, trigger_ids, FunctionSlot, Outbox, Trigger};
use crate::model::function::{Invocation, InvocationStatus};
use crate::model::Batch;

/// How long an invocation runs before it gets a `running` row. Long enough
/// that the common case (well under a millisecond) never writes one, short
/// enough that a person watching a slow handler sees it.
pub const RUNNING_AFTER: Duration = Duration::from_secs(1);

/// The invocation a worker is running.
struct Running {
    slot: Arc<FunctionSlot>,
    trigger: Trigger,
    /// Also the id of qyl's own span of the invocation.
    invocation_id: u64,
    started: Instant,
    started_unix_nano: u64,
    /// Its `running` row is in the outbox (or further on).
    reported: bool,
}

/// One worker's announcement of the invocation it runs.
#[derive(Default)]
pub struct InFlight(Mutex<Option<Running>>);

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, Option<Running>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The worker starts running a handler.
    pub fn begin(
        &self,
        slot: &Arc<FunctionSlot>,
        trigger: &Trigger,
        invocation_id: u64,
        started: Instant,
        started_unix_nano: u64,
    ) {
        *self.lock() = Some(Running {
            slot: slot.clone(),
            trigger: trigger.clone(),
            invocation_id,
            started,
            started_unix_nano,
            reported: false,
        });
    }

    /// The handler returned: true if a `running` row was written for it,
    /// which its final row must then replace.
    pub fn end(&self) -> bool {
        self.lock().take().is_some_and(|r| r.reported)
    }

    /// Writes the `running` row of the invocation in flight if it has run
    /// for [`RUNNING_AFTER`] and has none yet. The row enters the outbox
    /// while the cell is locked, so the worker, which must take the lock to
    /// end the invocation, can only queue the final row after it.
    pub fn report(&self, outbox: &Outbox, now: Instant) {
        let mut cell = self.lock();
        let Some(running) = cell.as_mut() else {
            return;
        };
        let ran = now.saturating_duration_since(running.started);
        if running.reported || ran < RUNNING_AFTER {
            return;
        }
        running.reported = true;
        let (trace_id, span_id) = trigger_ids(&running.trigger);
        let mut batch = Batch::default();
        batch.functions.invocations.push(Invocation {
            invocation_id: ids::span_id_text(running.invocation_id),
            function: running.slot.spec.name.clone(),
            status: InvocationStatus::Running,
            result: None,
            error: None,
            duration_ms: ran.as_secs_f64() * 1e3,
            trace_id,
            span_id,
            started_unix_nano: running.started_unix_nano,
            finished_unix_nano: 0,
            replaces_running: false,
        });
        tracing::debug!(
            function = %running.slot.spec.name,
            ran_ms = ran.as_millis() as u64,
            "function invocation still running"
        );
        outbox.push(batch);
    }
}
