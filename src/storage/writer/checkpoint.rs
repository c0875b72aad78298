//! When the writer checkpoints: a table grew by [`CHECKPOINT_ROWS`], or
//! time passed.
//!
//! A commit of a full row group or more (32,768 rows in a new file: the
//! writer's commits at a high rate, see `storage::duck::FileLayout`) is
//! compressed into the file as it commits. Smaller commits (a low rate,
//! and the summary tables) are appended to the table uncompressed and,
//! without a WAL, live
//! in DuckDB's memory (about 1.2 KB per span, against ~40 bytes once
//! written) until a checkpoint compresses them, so the time between
//! checkpoints sets what they cost in memory. A checkpoint also rewrites
//! the row group still open in each table, so checkpointing on a timer at
//! a high rate rewrote the same half-filled row group again and again.
//! Checkpointing each time spans, logs or metric points have grown by
//! [`CHECKPOINT_ROWS`] (DuckDB's default row group, which files made before
//! qyl's layout still use) bounds that memory and writes each row group
//! about once; the timer (`every`) remains for low rates, so the journal
//! stays short and replays quickly.
//!
//! A checkpoint that falls due between a short commit (a reader asked for
//! its rows, or the load paused) and the commit that fills its row group
//! waits for the fill under load: DuckDB rewrites a row group that a
//! checkpoint has written part of and a later commit filled the slow way
//! (1.26 s for 32,768 spans in DuckDB alone, against 0.075 s when one
//! checkpoint takes both commits), and such checkpoints, 0.5–1.3 s long,
//! held commits up long enough to hold exports up too.
//!
//! The writer runs the checkpoint itself, between two of its transactions:
//! DuckDB refuses a CHECKPOINT while another connection holds a write
//! transaction open, and at a high rate the writer nearly always does, so a
//! checkpoint from another thread was mostly refused and memory grew (4 GB
//! at 100k spans/s with a 3 s timer). Commits wait for a running checkpoint
//! anyway, and the journal thread keeps answering exports meanwhile.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::handle::VisibilityMarks;
use super::journal;
use super::WriterStats;
use super::READS_WAIT;
use crate::storage::duck::RawConn;
use crate::storage::DuckError;

/// Rows a growing table takes between checkpoints: DuckDB's default row
/// group (see the module comment).
pub(super) const CHECKPOINT_ROWS: u64 = 122_880;

/// The rows (deleted ones included, as row groups hold them until a
/// vacuum) of the tables that grow with ingest, in the order
/// [`Checkpoints::committed`] takes them: spans, logs, metric points.
const GROWING_TABLES: &str = "SELECT
    (SELECT estimated_size FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'span_rows'),
    (SELECT estimated_size FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'log_rows'),
    (SELECT estimated_size FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'metric_rows')";

/// How long the writer trusts its own count before reading DuckDB's again:
/// a checkpoint may vacuum rows deleted by retention, which moves where row
/// groups end.
const RESYNC_EVERY: Duration = Duration::from_secs(1);

/// How long the writer waits when DuckDB's worker threads hold the
/// checkpoint's remaining tasks (see `RawConn::execute_without_polling`).
const CHECKPOINT_IDLE: Duration = Duration::from_millis(1);

/// How long a refused checkpoint waits before the next attempt.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// The longest a due checkpoint waits for the writer to fill a span row
/// group that a short commit left open (see [`Checkpoints::run_if_due`]):
/// a gather under load fills it within the fill wait.
const FILL_GRACE: Duration = Duration::from_secs(2);

/// The writer's checkpoint schedule, for a database file.
pub(super) struct Checkpoints {
    every: Duration,
    rows: [u64; 3],
    synced: Option<Instant>,
    /// A table grew past a multiple of [`CHECKPOINT_ROWS`] since the last
    /// checkpoint.
    filled: bool,
    /// Since when a due checkpoint waits for an open row group to fill.
    deferred_since: Option<Instant>,
    /// Something was committed since the last checkpoint.
    dirty: bool,
    last: Instant,
    /// After a refusal: no attempt before this.
    not_before: Instant,
}

impl Checkpoints {
    pub(super) fn new(every: Duration) -> Checkpoints {
        Checkpoints {
            every,
            rows: [0; 3],
            synced: None,
            filled: false,
            deferred_since: None,
            dirty: false,
            last: Instant::now(),
            not_before: Instant::now(),
        }
    }

    /// After a commit that appended `appended` rows (spans, logs, metric
    /// points). The writer is the only connection that appends, so DuckDB's
    /// counts read here stay exact until a checkpoint vacuums.
    pub(super) fn committed(&mut self, raw: &RawConn, appended: [u64; 3]) {
        self.dirty = true;
        if self.synced.is_none_or(|at| at.elapsed() >= RESYNC_EVERY) {
            match read_counts(raw) {
                Ok(now) => {
                    self.rows = std::array::from_fn(|i| now[i].saturating_sub(appended[i]));
                    self.synced = Some(Instant::now());
                }
                Err(e) => tracing::debug!(error = %e, "could not read the tables' row counts"),
            }
        }
        for (rows, added) in self.rows.iter_mut().zip(appended) {
            self.filled |= (*rows + added) / CHECKPOINT_ROWS > *rows / CHECKPOINT_ROWS;
            *rows += added;
        }
    }

    /// Spans the table holds (deleted ones included) as far as the writer
    /// knows: where its last row group ends.
    pub(super) fn span_rows(&self) -> u64 {
        self.rows[0]
    }

    /// When the timer makes a checkpoint due, if anything waits for one;
    /// for a checkpoint waiting for a fill, when its grace ends.
    pub(super) fn timer_due_at(&self) -> Option<Instant> {
        match self.deferred_since {
            Some(since) => Some(since + FILL_GRACE),
            None => self
                .dirty
                .then_some((self.last + self.every).max(self.not_before)),
        }
    }

    /// Checkpoints if a table grew enough or the timer ran out; on the
    /// writer thread, outside any transaction. A refused checkpoint (a
    /// retention transaction was open) stays due for the next commit.
    /// After one, the `journal` forgets the entries the file now holds.
    ///
    /// `filling`: a short commit left the spans' last row group part full
    /// and the next gather, under load, fills it; the checkpoint waits for
    /// that commit (see the module comment), for at most [`FILL_GRACE`].
    pub(super) fn run_if_due(
        &mut self,
        raw: &RawConn,
        stats: &WriterStats,
        journal: Option<&(PathBuf, Arc<VisibilityMarks>)>,
        filling: bool,
    ) {
        let now = Instant::now();
        let timer = self.timer_due_at().is_some_and(|at| now >= at);
        if !(self.filled || timer) || now < self.not_before {
            return;
        }
        if filling {
            let since = *self.deferred_since.get_or_insert(now);
            if now.saturating_duration_since(since) < FILL_GRACE {
                return;
            }
        }
        self.deferred_since = None;
        let _reads_out = raw.shut_out_reads(READS_WAIT);
        stats.pulse.beat(false);
        let started = Instant::now();
        // Everything applied is committed, so in the file once this ends.
        let applied = journal.map(|(_, m)| *m.applied.borrow());
        match raw.execute_without_polling("CHECKPOINT", CHECKPOINT_IDLE) {
            Ok(()) => {
                let took = started.elapsed();
                stats.checkpoints.fetch_add(1, Ordering::Relaxed);
                stats.checkpoint_duration.record(took);
                stats.steps.add("checkpoint", took);
                self.filled = false;
                self.dirty = false;
                self.last = Instant::now();
                if let (Some((dir, _)), Some(applied)) = (journal, applied) {
                    if let Err(e) = journal::forget_through(dir, applied) {
                        tracing::warn!(error = %e, "could not delete old journal segments");
                    }
                }
            }
            Err(e) => {
                self.not_before = Instant::now() + RETRY_AFTER;
                tracing::debug!(error = %e, "checkpoint refused; retried shortly");
            }
        }
    }
}

fn read_counts(raw: &RawConn) -> Result<[u64; 3], DuckError> {
    let row = raw.query_u64_row(GROWING_TABLES)?;
    Ok(std::array::from_fn(|i| row.get(i).copied().unwrap_or(0)))
}
