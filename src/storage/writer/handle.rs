//! The writer's front: the bounded queue ingest submits batches to (and is
//! refused by when it is full), the pause used for maintenance, and the
//! flush readers of the summary tables wait for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crossbeam_channel::Sender;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::dedup::record_key;
use super::{Committed, WriteError};
use super::{WriterCondition, WriterStats};
use crate::model::Batch;

pub(super) struct Job {
    pub(super) batch: Batch,
    /// The spans' retry keys (`dedup::span_key`), hashed where the job is
    /// made rather than on the writer thread.
    pub(super) span_keys: Vec<u64>,
    /// Taken by whoever answers the export: the journal thread once the
    /// batch is in the journal, else the writer after the commit; `None`
    /// for jobs replayed from the journal.
    pub(super) ack: Option<oneshot::Sender<Result<Committed, WriteError>>>,
    /// The batch's journal number; 0 when there is no journal.
    pub(super) journaled: u64,
    /// The queue rows the job holds until it is committed (none when
    /// replayed at start).
    pub(super) _permit: Option<OwnedSemaphorePermit>,
}

impl Job {
    /// A job that nobody waits for: a batch replayed from the journal.
    pub(super) fn replayed(batch: Batch, journaled: u64) -> Job {
        Job::new(batch, None, journaled, None)
    }

    fn new(
        batch: Batch,
        ack: Option<oneshot::Sender<Result<Committed, WriteError>>>,
        journaled: u64,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Job {
        Job {
            span_keys: batch
                .spans
                .iter()
                .map(|s| record_key(&s.trace_id, &s.span_id))
                .collect(),
            batch,
            ack,
            journaled,
            _permit: permit,
        }
    }

    pub(super) fn answer(&mut self, result: Result<Committed, WriteError>) {
        if let Some(ack) = self.ack.take() {
            let _ = ack.send(result);
        }
    }
}

/// Lets reads see every export answered before they began, although with
/// a journal an export is answered once it is in the journal, a few
/// milliseconds before the writer commits it to DuckDB (longer while a
/// checkpoint holds commits up): [`Visibility::settle`] waits until the
/// writer has applied every journal entry written before the call.
#[derive(Clone)]
pub struct Visibility {
    pub(super) marks: Arc<VisibilityMarks>,
}

pub(super) struct VisibilityMarks {
    /// The last journal number written and synced (answered).
    pub(super) journaled: std::sync::atomic::AtomicU64,
    /// The last journal number the writer has committed (or given up on).
    pub(super) applied: tokio::sync::watch::Sender<u64>,
    /// The newest journal number a reader waits to see committed; the
    /// writer stops waiting for a full commit while it is past `applied`.
    wanted: std::sync::atomic::AtomicU64,
    /// Rows answered but not yet committed, and how many may be.
    backlog: Mutex<usize>,
    drained: Condvar,
    max_backlog: usize,
}

impl VisibilityMarks {
    pub(super) fn new(start: u64, max_backlog: usize) -> VisibilityMarks {
        VisibilityMarks {
            journaled: std::sync::atomic::AtomicU64::new(start),
            applied: tokio::sync::watch::Sender::new(start),
            wanted: std::sync::atomic::AtomicU64::new(start),
            backlog: Mutex::new(0),
            drained: Condvar::new(),
            max_backlog: max_backlog.max(1),
        }
    }

    /// Blocks the journal thread while the writer is `max_backlog` rows
    /// behind. Answering exports faster than they can be committed would
    /// only fill the queue and refuse exports that were already decoded;
    /// waiting here paces exporters by latency instead, as committing
    /// before answering did. What arrives during a checkpoint (0.1–0.4 s of
    /// ingest with whole row groups) fits under the limit, so it does not
    /// reach the answers.
    pub(super) fn wait_for_writer(&self) {
        let mut backlog = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        while *backlog >= self.max_backlog {
            backlog = self
                .drained
                .wait(backlog)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Whether the journal thread waits for a commit before it answers more
    /// exports ([`Self::wait_for_writer`]) although fewer than `rows` rows
    /// are answered and not committed: a gather of `rows` would then wait
    /// for rows the journal does not pass on. Only a queue smaller than two
    /// commits starves the writer so; otherwise every row the journal holds
    /// back for is already on its way to the writer.
    pub(super) fn starves(&self, rows: usize) -> bool {
        let backlog = *self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        backlog >= self.max_backlog && backlog < rows
    }

    /// A reader waits for journal entry `entry` to be committed.
    fn hurry(&self, entry: u64) {
        self.wanted.fetch_max(entry, Ordering::AcqRel);
    }

    /// Whether a reader waits for an entry the writer has not committed.
    pub(super) fn hurried(&self) -> bool {
        self.wanted.load(Ordering::Acquire) > *self.applied.borrow()
    }

    pub(super) fn answered(&self, rows: usize) {
        *self.backlog.lock().unwrap_or_else(|p| p.into_inner()) += rows;
    }

    pub(super) fn committed(&self, rows: usize) {
        let mut backlog = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        *backlog = backlog.saturating_sub(rows);
        self.drained.notify_all();
    }

    pub(super) fn applied(&self, through: u64) {
        self.applied.send_if_modified(|a| {
            let newer = through > *a;
            if newer {
                *a = through;
            }
            newer
        });
    }
}

impl Visibility {
    /// Returns once every export answered before the call is committed,
    /// or after `wait` (at most 2 s, the summaries' settle timeout).
    pub async fn settle(&self, wait: Duration) {
        if let Some(target) = self.unapplied() {
            self.wait_applied(target, wait.min(SETTLE_TIMEOUT)).await
        }
    }

    /// [`Visibility::settle`] for threads outside the async runtime, with
    /// a wait of the caller's choosing (tests that read the file directly
    /// may wait for a writer far behind in a debug build).
    pub fn settle_blocking(&self, wait: Duration) {
        let Some(target) = self.unapplied() else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            rt.block_on(self.wait_applied(target, wait));
        }
    }

    /// The last answered journal entry, if the writer has not applied it;
    /// the writer is asked to commit it without waiting for a full commit.
    fn unapplied(&self) -> Option<u64> {
        let target = self.marks.journaled.load(Ordering::Acquire);
        let unapplied = *self.marks.applied.borrow() < target;
        if unapplied {
            self.marks.hurry(target);
        }
        unapplied.then_some(target)
    }

    async fn wait_applied(&self, target: u64, wait: Duration) {
        let mut applied = self.marks.applied.subscribe();
        let _ = tokio::time::timeout(wait, applied.wait_for(|a| *a >= target)).await;
    }
}

pub(super) enum Msg {
    // Boxed: a job (with its batch) is large, and the queue holds many.
    Job(Box<Job>),
    /// A reader waits for the summaries' pending sums to be written.
    Flush(oneshot::Sender<()>),
    Shutdown,
}

#[derive(Default)]
pub(super) struct PauseState {
    pub(super) count: Mutex<u32>,
    pub(super) resumed: Condvar,
}

impl PauseState {
    /// Returns once no [`PauseGuard`] is held.
    pub(super) fn wait(&self) {
        let mut n = self.count.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            n = self.resumed.wait(n).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The cloneable front of the writer that ingest holds.
#[derive(Clone)]
pub struct WriterHandle {
    pub(super) tx: Sender<Msg>,
    pub(super) budget: Arc<Semaphore>,
    pub(super) capacity: usize,
    pub(super) closed: Arc<AtomicBool>,
    pub(super) pause: Arc<PauseState>,
    pub(super) stats: Arc<WriterStats>,
    pub(super) summaries_pending: Arc<AtomicBool>,
    pub(super) visibility: Option<Visibility>,
}

/// Lets readers of the summary tables (sessions, GenAI minutes) see every
/// acknowledged export although the writer may hold their sums in memory
/// for a while (see `writer::derived`): [`SummarySync::settle`] asks for a flush
/// when sums are pending and waits for it.
#[derive(Clone)]
pub struct SummarySync {
    pub(super) tx: Sender<Msg>,
    pub(super) pending: Arc<AtomicBool>,
}

/// How long a reader waits for a flush before it reads what is stored.
pub(super) const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

impl SummarySync {
    /// Returns once the summaries hold every export acknowledged before
    /// the call (or after [`SETTLE_TIMEOUT`], or at once if qyl is
    /// stopping).
    pub async fn settle(&self) {
        if let Some(done) = self.request() {
            let _ = tokio::time::timeout(SETTLE_TIMEOUT, done).await;
        }
    }

    /// [`SummarySync::settle`] for threads outside the async runtime.
    /// The writer answers every request once it has tried a flush (a
    /// failing one backs off to at most 5 s), or drops it when stopping.
    pub fn settle_blocking(&self) {
        if let Some(done) = self.request() {
            let _ = done.blocking_recv();
        }
    }

    pub(super) fn request(&self) -> Option<oneshot::Receiver<()>> {
        if !self.pending.load(Ordering::Acquire) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Flush(tx)).ok()?;
        Some(rx)
    }
}

impl WriterHandle {
    /// What readers use to see every answered export (with a journal;
    /// without one an export is answered after its commit).
    pub fn visibility(&self) -> Option<Visibility> {
        self.visibility.clone()
    }

    /// What readers of the summary tables use to see current sums.
    pub fn summary_sync(&self) -> SummarySync {
        SummarySync {
            tx: self.tx.clone(),
            pending: self.summaries_pending.clone(),
        }
    }

    /// Queues a batch; the receiver resolves once it is durable (in the
    /// journal, or committed when there is none) or refused.
    /// Refuses at once when the queue cannot take the batch's rows.
    pub fn submit(
        &self,
        batch: Batch,
    ) -> Result<oneshot::Receiver<Result<Committed, WriteError>>, WriteError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(WriteError::Closed);
        }
        // A batch larger than the whole queue is admitted only when the
        // queue is empty, rather than never.
        let rows = batch.len().clamp(1, self.capacity) as u32;
        let permit = match self.budget.clone().try_acquire_many_owned(rows) {
            Ok(p) => p,
            Err(_) => {
                self.stats.refused_exports.fetch_add(1, Ordering::Relaxed);
                return Err(WriteError::QueueFull {
                    queued: self.queued_rows(),
                });
            }
        };
        let (ack, rx) = oneshot::channel();
        let job = Job::new(batch, Some(ack), 0, Some(permit));
        self.tx
            .send(Msg::Job(Box::new(job)))
            .map_err(|_| WriteError::Closed)?;
        Ok(rx)
    }

    /// Queues a batch and waits until it is durable (see [`WriterHandle::submit`]).
    pub async fn write(&self, batch: Batch) -> Result<Committed, WriteError> {
        let rx = self.submit(batch)?;
        rx.await.unwrap_or(Err(WriteError::Closed))
    }

    /// Rows accepted but not yet committed.
    pub fn queued_rows(&self) -> usize {
        self.capacity - self.budget.available_permits().min(self.capacity)
    }

    pub fn queue_capacity(&self) -> usize {
        self.capacity
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Whether the writer can store what ingest accepts.
    pub fn condition(&self) -> WriterCondition {
        self.stats.pulse.condition()
    }

    /// Shutdown has begun: new batches are refused.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Holds the writer before its next commit until the guard is dropped
    /// (drop it before shutting down: shutdown waits for the writer).
    /// Exports keep queueing (and are refused once the queue is full). Used
    /// for maintenance and to exercise backpressure in tests.
    pub fn pause(&self) -> PauseGuard {
        *self.pause.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        PauseGuard {
            pause: self.pause.clone(),
        }
    }
}

pub struct PauseGuard {
    pub(super) pause: Arc<PauseState>,
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        let mut n = self.pause.count.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        self.pause.resumed.notify_all();
    }
}
