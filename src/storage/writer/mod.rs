//! The single writer: the only code that writes telemetry to DuckDB.
//!
//! Exports become [`Batch`]es and enter a bounded queue ([`WriterHandle::submit`]).
//! For a database file, the journal thread takes them first: it appends each
//! batch to qyl's write-ahead journal, fsyncs the group and answers the
//! exports, which are durable from then on (DuckDB itself runs without a
//! WAL; see `journal`). One writer thread groups jobs until `batch_rows`
//! rows or `batch_ms` milliseconds (under load, until a whole row group:
//! see `fill`), appends their rows as DuckDB data chunks filled one at a
//! time inside one transaction, commits, and publishes the records to the
//! hub; so consumers only ever see committed data, and reads wait (through
//! [`Visibility`]) for the commits of exports answered before them. In
//! memory there is no journal and an export is answered after its commit.
//!
//! Backpressure: the queue is bounded in rows, released at commit. When it
//! is full `submit` refuses at once (the caller answers 503 / UNAVAILABLE so
//! the exporter retries); nothing accepted is ever dropped. The journal
//! thread holds answers back while the writer is half a queue behind, so
//! exporters are paced by latency before they are refused.
//!
//! Retried exports: the writer remembers the (trace id, span id) of the last
//! `dedup_window` spans it stored (seeded from the database at start) and
//! skips spans it has already stored, so an SDK retry does not duplicate them.
//!
//! The folder follows a batch: `handle` (the queue ingest submits to, the
//! backpressure, and what reads wait on), `journal` (the journal thread,
//! the journal's files and its byte format), `chunks` (rows to DuckDB
//! data chunks: the column layouts), `commit` (the writer thread's
//! loop: group, dedup, append, derived tables, commit, publish), `fill`
//! (how long a commit gathers), `dedup`
//! (recently stored span ids), `derived` (the summary tables kept in the
//! same transaction), `checkpoint` (when the writer checkpoints: a row
//! group filled, or time passed), `reaper` (frees what commits leave behind
//! on a thread of its own) and `stats` (counters and the heartbeat the
//! health checks read).

mod checkpoint;
mod chunks;
mod commit;
mod dedup;
pub mod derived;
mod fill;
mod handle;
mod journal;
mod reaper;
mod stats;
#[cfg(test)]
mod tests;

use checkpoint::Checkpoints;
use chunks::{put_log, put_metric, put_span, LOG_COLS, METRIC_COLS, SPAN_COLS};
use commit::WriterState;
use dedup::{seed_recent_spans, PreHashed, RecentSpans};
use handle::{Job, Msg, PauseState, VisibilityMarks};
use journal::thread::JournalThread;
use journal::Journal;
use reaper::{spawn_reaper, Garbage};
use stats::AliveGuard;

pub use chunks::append_spans;
pub use handle::{PauseGuard, SummarySync, Visibility, WriterHandle};
pub use journal::JournalError;
pub use stats::{
    DurationHistogram, HistogramSnapshot, StepTimes, WriterCondition, WriterPulse, WriterStats,
    COMMIT_BUCKETS_SECS, FAILING_AFTER, STUCK_AFTER,
};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::storage::{spawn_thread, Conn, Database, StorageError};
use crate::stream::Hub;

/// How long the writer's COMMIT and CHECKPOINT (and retention's) wait for
/// reads holding much of DuckDB's memory to end before interrupting them
/// (`storage::gate`): long enough for a page of the dashboard, short enough
/// that a query cannot hold ingest up.
pub const READS_WAIT: Duration = Duration::from_secs(1);

/// Tuning for the writer; see `[ingest]` in qyl.toml.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Rows that may wait in the queue before exports are refused.
    pub queue_rows: usize,
    /// Commit once this many rows are gathered…
    pub batch_rows: usize,
    /// …or once the oldest gathered job has waited this long, except that
    /// at a rate that gathers `batch_rows` within `fill_wait` a commit
    /// waits for them (a database file only; see `fill`).
    pub batch_wait: Duration,
    pub fill_wait: Duration,
    /// How many recent span ids are remembered to drop retried duplicates.
    pub dedup_window: usize,
    /// The longest time between checkpoints (which write what was committed
    /// into the database file); the writer also checkpoints whenever a row
    /// group of spans, logs or metric points fills.
    pub checkpoint_interval: Duration,
    /// Settings of the summary tables (error groups…).
    pub derived: derived::DerivedSettings,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            queue_rows: 100_000,
            batch_rows: 32_768,
            batch_wait: Duration::from_millis(5),
            fill_wait: Duration::from_millis(1600),
            dedup_window: 1_000_000,
            checkpoint_interval: Duration::from_secs(10),
            derived: derived::DerivedSettings::default(),
        }
    }
}

/// Why a batch was not stored. All are retryable by the exporter.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("write queue is full ({queued} rows waiting); retry later")]
    QueueFull { queued: usize },
    #[error("qyl is shutting down")]
    Closed,
    #[error("commit failed: {0}")]
    Commit(String),
}

/// What the writer did with one job's batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    pub spans: usize,
    pub logs: usize,
    pub metrics: usize,
    /// Spans skipped because they were already stored (retried exports).
    pub duplicate_spans: usize,
}

/// The running writer; [`Writer::shutdown`] commits what is queued and stops.
pub struct Writer {
    handle: WriterHandle,
    thread: Option<JoinHandle<()>>,
    journal: Option<JoinHandle<()>>,
    reaper: Option<JoinHandle<()>>,
    /// Told to let go of the reaper when the writer stops.
    hub: Arc<Hub>,
}

impl Writer {
    /// Starts the writer thread (and the journal thread, for a file) on an
    /// open, migrated database.
    pub fn start(
        db: Arc<Database>,
        hub: Arc<Hub>,
        config: WriterConfig,
        is_file: bool,
    ) -> Result<Writer, StorageError> {
        let conn = db.connect()?;
        let next_seq = max_seq(&conn)? + 1;
        // Consumers resuming from before a restart learn what they missed.
        hub.resume_after(next_seq - 1);
        let mut seen = RecentSpans::new(config.dedup_window);
        seed_recent_spans(&conn, next_seq, &mut seen)?;
        let closed = derived::functions::close_interrupted(&conn)?;
        if closed > 0 {
            tracing::info!(
                invocations = closed,
                "function invocations left running by the previous process marked failed"
            );
        }
        let mut derived = derived::derived_tables(&conn, &config.derived)?;
        let replayed = derived::replay(&conn, &mut derived)?;
        if replayed > 0 {
            tracing::info!(
                spans = replayed,
                "summary tables caught up with spans stored after their last flush"
            );
        }
        let capacity = config.queue_rows.clamp(1, u32::MAX as usize / 2);
        let (tx, rx) = crossbeam_channel::unbounded();
        let stats = Arc::new(WriterStats::default());
        let pause = Arc::new(PauseState::default());
        // A database file without DuckDB's WAL has qyl's journal instead.
        let journal_dir = db.file_without_wal().map(journal::dir_for);
        let marks = journal_dir
            .as_ref()
            .map(|_| Arc::new(VisibilityMarks::new(0, capacity / 2)));
        // Everything fallible that needs no thread comes first, so an error
        // cannot leave a thread running.
        let raw = db.raw_connection()?;
        let (reaper_tx, reaper) = spawn_reaper()?;
        let hub_for_stop = hub.clone();
        // Subscribers hand the hub's batches they are done with to the
        // reaper too; if it is behind (or gone), the subscriber frees them.
        hub.dispose_with({
            let reaper = reaper_tx.clone();
            move |garbage| {
                let _ = reaper.try_send(garbage);
            }
        });
        // Replayed sums are pending from the start: readers must wait for them.
        let summaries_pending = Arc::new(AtomicBool::new(derived.iter().any(|t| t.pending())));
        let mut state = WriterState {
            raw,
            hub,
            seen,
            fresh_keys: Default::default(),
            next_seq,
            stats: stats.clone(),
            pause: pause.clone(),
            batch_rows: config.batch_rows.max(1),
            batch_wait: config.batch_wait,
            derived,
            last_flush: Instant::now(),
            idle_flush_after: derived::FLUSH_IDLE,
            reaper: reaper_tx,
            summaries_pending: summaries_pending.clone(),
            flush_waiters: Vec::new(),
            journal: journal_dir.clone().zip(marks.clone()),
            checkpoints: None,
            // In memory an export is answered after its commit: no waiting.
            // A file made before the compact layout compresses commits at
            // checkpoints whatever their size: waiting would only delay
            // the live stream.
            fill: journal_dir
                .as_ref()
                .and(db.row_group_rows())
                .map(|row_group_rows| {
                    fill::CommitFill::new(
                        config.batch_rows,
                        row_group_rows,
                        config.batch_wait,
                        config.fill_wait,
                    )
                }),
            reads_shut_out: false,
            retry_held_at: None,
        };
        let mut journal_thread = None;
        let writer_rx = match (&journal_dir, &marks) {
            (Some(dir), Some(marks)) => {
                let (watermark, database_id) = journal_watermark(&conn)?;
                if let Some(aside) = journal::claim(dir, &database_id)? {
                    tracing::warn!(
                        journal = %aside.display(),
                        "the journal belongs to another database (this file was created anew); set aside, not replayed"
                    );
                }
                let next = state.replay_journal(dir, watermark)?;
                marks.journaled.store(next - 1, Ordering::Release);
                marks.applied(next - 1);
                let (to_writer, writer_rx) = crossbeam_channel::unbounded();
                let thread = JournalThread {
                    journal: Journal::open(dir, next)?,
                    from_ingest: rx,
                    to_writer,
                    marks: marks.clone(),
                    pause: pause.clone(),
                    stats: stats.clone(),
                    batch_rows: config.batch_rows.max(1),
                };
                journal_thread = Some(thread.spawn()?);
                writer_rx
            }
            _ => rx,
        };
        if is_file {
            state.checkpoints = Some(Checkpoints::new(config.checkpoint_interval));
        }
        stats.pulse.alive.store(true, Ordering::Release);
        stats.pulse.beat(true);
        let alive = AliveGuard(stats.clone());
        let thread = spawn_thread("qyl-writer", move || {
            let _alive = alive;
            state.run(writer_rx)
        })?;
        Ok(Writer {
            handle: WriterHandle {
                tx,
                budget: Arc::new(Semaphore::new(capacity)),
                capacity,
                closed: Arc::new(AtomicBool::new(false)),
                pause,
                stats,
                summaries_pending,
                visibility: marks.map(|marks| Visibility { marks }),
            },
            thread: Some(thread),
            journal: journal_thread,
            reaper: Some(reaper),
            hub: hub_for_stop,
        })
    }

    pub fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    /// Refuses new batches, commits everything already accepted, checkpoints
    /// and closes the database. Blocks; call from a blocking context.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.handle.closed.store(true, Ordering::Release);
        let _ = self.handle.tx.send(Msg::Shutdown);
        // The journal thread passes the shutdown on to the writer.
        if let Some(thread) = self.journal.take() {
            let _ = thread.join();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The writer thread has ended and the hub lets go of the reaper's
        // channel, so the channel is closed.
        self.hub.stop_disposing();
        if let Some(thread) = self.reaper.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Bytes the writer's journal of the database at `path` holds on disk
/// (entries not yet checkpointed into the file).
pub fn journal_bytes(path: &std::path::Path) -> u64 {
    journal::bytes_on_disk(&journal::dir_for(path))
}

/// The last journal entry the database file holds, and the id its journal
/// must carry.
fn journal_watermark(conn: &Conn) -> Result<(u64, String), StorageError> {
    conn.query_row(
        "SELECT entry, database_id FROM journal_watermark",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(|e| StorageError::sql("reading the journal watermark", e))
}

/// The last sequence number in use: the newest stored row's, or the one
/// recorded at the last flush or shutdown, or the last one a commit handed
/// to records only the hub had (see `derived::record_flush` and
/// `derived::record_published`).
fn max_seq(conn: &Conn) -> Result<u64, StorageError> {
    conn.query_row(
        "SELECT greatest(
            (SELECT coalesce(max(ingest_seq), 0) FROM span_rows),
            (SELECT coalesce(max(ingest_seq), 0) FROM log_rows),
            (SELECT coalesce(max(ingest_seq), 0) FROM metric_rows),
            (SELECT coalesce(max(ingest_seq), 0) FROM summary_watermark),
            (SELECT coalesce(max(seq), 0) FROM hub_watermark))::UBIGINT",
        [],
        |r| r.get::<_, u64>(0),
    )
    .map_err(|e| StorageError::sql("reading the last ingest sequence", e))
}
