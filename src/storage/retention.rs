//! Retention: keeps the database bounded by age (`storage.retention_hours`)
//! and by size (`storage.max_db_size_mb`), and reports the free disk space
//! that `/health` checks against `storage.min_free_disk_mb`.
//!
//! A background thread runs one pass every `retention_interval_secs`. A pass
//! deletes in bounded transactions, then checkpoints, because DuckDB does
//! not give deleted space back to the filesystem (only free blocks at the
//! very end of the file are cut off): a `DELETE` only marks rows, and the
//! blocks of row groups left empty become free after a checkpoint, to be
//! reused by later data. So the file stops growing rather than shrinking;
//! it levels off at its high-water mark while the used part is kept under
//! the limit. benches/retention.rs measures it: with a 64 MiB limit and
//! steady ingest the file stayed between 60 and 135 MiB for three minutes
//! (a checkpoint writes new blocks before it releases old ones).
//!
//! What is deleted together, so nothing is left orphaned:
//! - a trace is removed whole, when its newest span started before the
//!   cutoff (a long trace with one recent span stays until all of it is
//!   old), and every log carrying its trace id goes in the same transaction;
//! - logs without a trace id, or whose trace has no stored span, and metric
//!   points are deleted by their own time.
//!
//! Retention uses a connection of its own instead of the writer's. DESIGN
//! §3 gives all telemetry writes to one writer so that appends are batched
//! and acknowledged in commit order; a retention delete is different work: it
//! scans whole tables and can take seconds. Run on the writer thread it would
//! hold every waiting export (and fill the queue) for the whole delete.
//! DuckDB's MVCC lets a delete of old rows and the writer's appends of new
//! ones commit side by side without conflicting (tested below under
//! concurrent ingest), and a delete only removes rows its transaction can
//! see, so a span committed meanwhile is never lost.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::archive::{self, ArchiveReport, ArchiveSettings, ColdTier, Dropped};
use super::{spawn_thread, Conn, Database, StorageError};

/// What to keep. `None` turns a limit off.
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    /// Data older than this is deleted.
    pub max_age: Option<Duration>,
    /// The used part of the database (plus its WAL) is kept under this.
    pub max_bytes: Option<u64>,
    /// About this many spans' worth of traces (or log / metric rows) are
    /// deleted per transaction, so no transaction grows huge.
    pub batch_rows: usize,
    /// Where old windows move first, if they do (`storage::archive`); the
    /// limits then apply to the archive too.
    pub archive: Option<ArchiveSettings>,
}

impl RetentionPolicy {
    pub fn is_off(&self) -> bool {
        self.max_age.is_none() && self.max_bytes.is_none() && self.archive.is_none()
    }
}

/// Size retention deletes until the used space is under this share of
/// `max_bytes`, leaving room for the ingest that arrives before the next pass.
const SIZE_TARGET_PERCENT: u64 = 90;

/// Size retention re-measures after each round of deletes (rows differ in
/// size); this many rounds at most per pass.
const MAX_SIZE_ROUNDS: usize = 8;

/// Counters for `/health`, updated by the retention thread.
#[derive(Debug, Default)]
pub struct RetentionStats {
    /// False when neither age nor size retention is configured.
    pub enabled: AtomicBool,
    pub passes: AtomicU64,
    pub failed_passes: AtomicU64,
    pub traces_deleted: AtomicU64,
    pub spans_deleted: AtomicU64,
    pub logs_deleted: AtomicU64,
    pub metrics_deleted: AtomicU64,
    pub last_pass_micros: AtomicU64,
    /// When the last pass ended, in Unix milliseconds (0: none yet).
    pub last_pass_unix_ms: AtomicU64,
    /// Used bytes (used blocks + WAL, or memory for `:memory:`) after the
    /// last pass.
    pub used_bytes: AtomicU64,
    /// Free blocks inside the file after the last pass, in bytes.
    pub free_bytes: AtomicU64,
    /// Windows moved to the archive, and their rows.
    pub archived_parts: AtomicU64,
    pub archived_rows: AtomicU64,
    /// Archived files dropped by the limits.
    pub dropped_parts: AtomicU64,
    /// The archive after the last pass.
    pub cold: Mutex<ColdTier>,
    /// The error of the last pass; `None` once a pass succeeds.
    pub last_error: Mutex<Option<String>>,
}

impl RetentionStats {
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn record(&self, outcome: &Result<PassReport, StorageError>, took: Duration) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.last_pass_micros
            .store(took.as_micros() as u64, Ordering::Relaxed);
        self.last_pass_unix_ms
            .store(crate::model::now_unix_nano() / 1_000_000, Ordering::Relaxed);
        let error = match outcome {
            Ok(r) => {
                self.traces_deleted.fetch_add(r.traces, Ordering::Relaxed);
                self.spans_deleted.fetch_add(r.spans, Ordering::Relaxed);
                self.logs_deleted.fetch_add(r.logs, Ordering::Relaxed);
                self.metrics_deleted.fetch_add(r.metrics, Ordering::Relaxed);
                self.used_bytes.store(r.used_bytes, Ordering::Relaxed);
                self.free_bytes.store(r.free_bytes, Ordering::Relaxed);
                self.archived_parts
                    .fetch_add(r.archived.parts, Ordering::Relaxed);
                self.archived_rows
                    .fetch_add(r.archived.rows, Ordering::Relaxed);
                self.dropped_parts
                    .fetch_add(r.dropped.parts, Ordering::Relaxed);
                *self.cold.lock().unwrap_or_else(|p| p.into_inner()) = r.cold;
                r.archive_error.clone()
            }
            Err(e) => {
                self.failed_passes.fetch_add(1, Ordering::Relaxed);
                Some(e.to_string())
            }
        };
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }
}

/// What one pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub traces: u64,
    pub spans: u64,
    pub logs: u64,
    pub metrics: u64,
    /// Rows removed from the trace lookup (`trace_index`).
    pub lookup_rows: u64,
    /// Error occurrences deleted with their traces (their groups and
    /// counts stay).
    pub error_events: u64,
    /// Function invocation rows (they point at traces; they go by their
    /// own start time, like logs without a trace).
    pub invocations: u64,
    /// Used bytes measured at the end of the pass.
    pub used_bytes: u64,
    /// Free (reusable) bytes inside the file at the end of the pass.
    pub free_bytes: u64,
    /// Windows moved to the archive.
    pub archived: ArchiveReport,
    /// Archived windows dropped by age or size.
    pub dropped: ArchiveReport,
    /// The archive at the end of the pass.
    pub cold: ColdTier,
    /// Why moving windows to the archive failed in this pass, if it did
    /// (the rest of the pass ran).
    pub archive_error: Option<String>,
}

impl PassReport {
    fn add(&mut self, other: &PassReport) {
        self.traces += other.traces;
        self.spans += other.spans;
        self.logs += other.logs;
        self.metrics += other.metrics;
        self.lookup_rows += other.lookup_rows;
        self.error_events += other.error_events;
        self.invocations += other.invocations;
    }

    fn rows(&self) -> u64 {
        self.spans + self.logs + self.metrics + self.invocations + self.archived.rows
    }
}

/// Where the database lives, which decides how its size is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Memory,
}

impl Location {
    pub fn from_path(path: &str) -> Location {
        if path == ":memory:" {
            Location::Memory
        } else {
            Location::File(PathBuf::from(path))
        }
    }

    /// The write-ahead log DuckDB keeps next to the file.
    fn wal(&self) -> Option<PathBuf> {
        match self {
            Location::File(p) => {
                let mut wal = p.clone().into_os_string();
                wal.push(".wal");
                Some(PathBuf::from(wal))
            }
            Location::Memory => None,
        }
    }
}

/// How much of the database is in use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbSize {
    /// For a file: used blocks × block size plus the WAL (one left by an
    /// older qyl), not the file length, which stays at its high-water mark.
    /// The writer's journal is not counted: it holds the rows committed
    /// since the last checkpoint uncompressed (~0.6 KB a span against ~25
    /// bytes in blocks), which a checkpoint forgets and no delete shrinks,
    /// so counting it made a small limit delete nearly everything (97 % of
    /// the spans at 10k spans/s with a 64 MiB limit). For `:memory:` (no
    /// blocks): DuckDB's memory use.
    pub used: u64,
    /// Free blocks inside the file, which new data reuses (0 in memory).
    pub free: u64,
}

pub fn db_size(conn: &Conn, location: &Location) -> Result<DbSize, StorageError> {
    match location {
        Location::File(_) => {
            let (used, free): (u64, u64) = conn
                .query_row(
                    "SELECT (used_blocks * block_size)::UBIGINT,
                            (free_blocks * block_size)::UBIGINT
                     FROM pragma_database_size() WHERE database_name = current_database()",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(|e| StorageError::sql("reading the database size", e))?;
            let wal = location
                .wal()
                .and_then(|w| std::fs::metadata(w).ok())
                .map_or(0, |m| m.len());
            Ok(DbSize {
                used: used + wal,
                free,
            })
        }
        Location::Memory => conn
            .query_row(
                "SELECT coalesce(sum(memory_usage_bytes), 0)::UBIGINT FROM duckdb_memory()",
                [],
                |r| {
                    Ok(DbSize {
                        used: r.get(0)?,
                        free: 0,
                    })
                },
            )
            .map_err(|e| StorageError::sql("reading DuckDB's memory use", e)),
    }
}

pub fn used_bytes(conn: &Conn, location: &Location) -> Result<u64, StorageError> {
    db_size(conn, location).map(|s| s.used)
}

/// Bytes available to qyl on the filesystem holding `path` (a file or a
/// directory that exists).
#[cfg(unix)]
pub fn disk_free_bytes(path: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(not(unix))]
pub fn disk_free_bytes(_path: &Path) -> std::io::Result<u64> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "free disk space is only measured on Unix",
    ))
}

/// Asked between batches whether the pass should give up (shutdown).
pub type ShouldStop<'a> = &'a dyn Fn() -> bool;

/// One retention pass at time `now` (Unix ns): age, then size, then a
/// checkpoint when anything was deleted. Stops early, keeping what it
/// already did, when `stop` says so.
pub fn run_pass(
    conn: &Conn,
    location: &Location,
    policy: &RetentionPolicy,
    now: u64,
    stop: ShouldStop<'_>,
) -> Result<PassReport, StorageError> {
    let batch = policy.batch_rows.max(1) as u64;
    let mut report = PassReport::default();
    let archive = policy.archive.as_ref();
    let mut dropped = Dropped::default();
    if let Some(settings) = archive {
        // A failing archive (its disk full, say) must not stop retention,
        // or the database would grow without bound: the error is reported
        // and the rest of the pass runs.
        match archive::archive_due(conn, settings, now, stop) {
            Ok(moved) => report.archived = moved,
            Err(e) => {
                tracing::warn!(error = %e, "archiving failed; retention goes on");
                report.archive_error = Some(e.to_string());
            }
        }
    }
    if let Some(age) = policy.max_age {
        let cutoff = now.saturating_sub(age.as_nanos().min(u64::MAX as u128) as u64);
        report.add(&delete_older_than(conn, cutoff, batch, stop)?);
        if let Some(settings) = archive {
            dropped.add(archive::drop_before(conn, settings, cutoff)?);
        }
    }
    let mut checkpointed = false;
    if let Some(limit) = policy.max_bytes {
        let target = limit / 100 * SIZE_TARGET_PERCENT;
        let cold = |conn: &Conn| match archive {
            Some(_) => archive::cold_tier(conn).map(|c| c.bytes),
            None => Ok(0),
        };
        // Used blocks plus the WAL only shrink with a checkpoint, so when
        // they fit, nothing needs measuring more closely.
        if used_bytes(conn, location)? + cold(conn)? > target {
            // Measure after a checkpoint: the WAL holds recent rows
            // uncompressed (several times their size in blocks), and age
            // deletes free blocks only once checkpointed; counting either
            // would delete data that fits.
            checkpoint(conn)?;
            checkpointed = true;
            // The archive holds the oldest data: its windows go first,
            // whole, and then the database's rows if it alone is too big.
            if let Some(settings) = archive {
                let over = (used_bytes(conn, location)? + cold(conn)?).saturating_sub(target);
                if over > 0 {
                    let oldest = archive::drop_oldest(conn, settings, over)?;
                    // What the file keeps of the dropped windows goes with
                    // them: their traces' lookup rows, the GenAI and
                    // service minutes, sessions, error events and any
                    // late rows. Left, it would grow the file until its
                    // newest data had to go instead.
                    if let Some(until) = oldest.until {
                        report.add(&delete_older_than(conn, until, batch, stop)?);
                    }
                    dropped.add(oldest);
                }
            }
            let hot_target = target.saturating_sub(cold(conn)?);
            report.add(&shrink_to(conn, location, hot_target, batch, stop)?);
        }
    }
    report.dropped = dropped.report;
    // Dropped files are deleted only once the catalog's change is in the
    // file (see `Dropped::remove_files`).
    if (report.rows() > 0 && !checkpointed) || report.dropped.parts > 0 {
        checkpoint(conn)?;
    }
    if let Some(settings) = archive {
        dropped.remove_files(settings);
        report.cold = archive::cold_tier(conn)?;
    }
    let size = db_size(conn, location)?;
    report.used_bytes = size.used;
    report.free_bytes = size.free;
    Ok(report)
}

/// Deletes the oldest data until the used bytes are under `target`.
///
/// DuckDB frees space only by whole row groups (32,768 rows of a table in
/// qyl's file layout; 8,192 or 122,880 in files made before it),
/// so a round can delete rows and free nothing yet. Then the pass stops
/// rather than delete ever more to force a result; the next pass deletes the
/// next share and crosses the row group's end. So the database may sit a
/// row group per table above the target for a pass or two, and what is
/// deleted stays close to what has to go.
fn shrink_to(
    conn: &Conn,
    location: &Location,
    target: u64,
    batch: u64,
    stop: ShouldStop<'_>,
) -> Result<PassReport, StorageError> {
    let mut report = PassReport::default();
    let mut used = used_bytes(conn, location)?;
    for _ in 0..MAX_SIZE_ROUNDS {
        if used <= target || stop() {
            break;
        }
        let share = (used - target) as f64 / used as f64;
        let Some(cutoff) = size_cutoff(conn, share)? else {
            break;
        };
        let round = delete_older_than(conn, cutoff, batch, stop)?;
        report.add(&round);
        if round.rows() == 0 {
            // What is left cannot go by time (e.g. one trace still
            // receiving spans); more rounds would find the same.
            break;
        }
        checkpoint(conn)?;
        let now_used = used_bytes(conn, location)?;
        if now_used >= used {
            break;
        }
        used = now_used;
    }
    Ok(report)
}

/// The time before which `share` of the stored rows lie: deleting them
/// frees about that share of the bytes if rows are of similar size. Later
/// rounds correct the guess.
fn size_cutoff(conn: &Conn, share: f64) -> Result<Option<u64>, StorageError> {
    let cutoff: Option<u64> = conn
        .query_row(
            "SELECT quantile_disc(t, ?) FROM (
                SELECT start_time_unix_nano AS t FROM span_rows
                UNION ALL SELECT time_unix_nano FROM log_rows
                UNION ALL SELECT time_unix_nano FROM metric_rows)",
            [share.clamp(0.0, 1.0)],
            |r| r.get(0),
        )
        .map_err(|e| StorageError::sql("finding the oldest data to delete", e))?;
    // Exclusive cutoff: the row at the quantile goes too, so every round
    // deletes something while there is anything old to delete.
    Ok(cutoff.map(|t| t.saturating_add(1)))
}

/// Deletes traces whose newest span started before `cutoff` (whole, with
/// their logs), then unattached logs and metric points older than `cutoff`.
pub fn delete_older_than(
    conn: &Conn,
    cutoff: u64,
    batch: u64,
    stop: ShouldStop<'_>,
) -> Result<PassReport, StorageError> {
    let mut report = PassReport::default();
    delete_traces(conn, cutoff, batch, stop, &mut report)?;
    super::writer::derived::genai_rollup::prune(conn, cutoff)?;
    super::writer::derived::service_minutes::prune(conn, cutoff)?;
    // Logs of a stored trace live and die with it (above); the rest go
    // by their own time.
    report.logs += delete_in_batches(
        conn,
        "deleting old logs",
        "DELETE FROM log_rows WHERE rowid IN (
            SELECT rowid FROM log_rows l
            WHERE l.time_unix_nano < ?
              AND (l.trace_id IS NULL
                   OR NOT EXISTS (SELECT 1 FROM span_rows s
                                  WHERE s.trace_id = qyl_trace_key(l.trace_id)))
            LIMIT ?)",
        cutoff,
        batch,
        stop,
    )?;
    if !stop() {
        // A trace's lookup rows go once all of them are older than the
        // cutoff: its spans and logs are gone by now (above). A trace still
        // alive has a row at least as new as its newest span or log.
        report.lookup_rows += execute(
            conn,
            "pruning the trace lookup",
            "DELETE FROM trace_index WHERE trace_key IN (
                SELECT trace_key FROM trace_index
                GROUP BY trace_key HAVING max(last_time_unix_nano) < ?)",
            [cutoff],
        )?;
    }
    // Error occurrences of a stored trace went with it (above); those
    // without one (logs outside traces) go by their own time.
    report.error_events += delete_in_batches(
        conn,
        "deleting old error events",
        "DELETE FROM error_event_rows WHERE rowid IN (
            SELECT rowid FROM error_event_rows e
            WHERE e.time_unix_nano < ?
              AND (e.trace_id IS NULL
                   OR NOT EXISTS (SELECT 1 FROM span_rows s
                                  WHERE s.trace_id = e.trace_id))
            LIMIT ?)",
        cutoff,
        batch,
        stop,
    )?;
    report.metrics += delete_in_batches(
        conn,
        "deleting old metric points",
        "DELETE FROM metric_rows WHERE rowid IN (
            SELECT rowid FROM metric_rows WHERE time_unix_nano < ? LIMIT ?)",
        cutoff,
        batch,
        stop,
    )?;
    report.invocations += delete_in_batches(
        conn,
        "deleting old function invocations",
        "DELETE FROM function_invocations WHERE rowid IN (
            SELECT rowid FROM function_invocations WHERE started_unix_nano < ? LIMIT ?)",
        cutoff,
        batch,
        stop,
    )?;
    Ok(report)
}

fn delete_traces(
    conn: &Conn,
    cutoff: u64,
    batch: u64,
    stop: ShouldStop<'_>,
    report: &mut PassReport,
) -> Result<(), StorageError> {
    for b in list_expired_traces(conn, cutoff, batch)? {
        if stop() {
            break;
        }
        report.add(&delete_trace_batch(conn, b, cutoff)?);
    }
    execute(
        conn,
        "dropping the expired trace list",
        "DROP TABLE IF EXISTS retention_traces",
        [],
    )?;
    Ok(())
}

/// Lists the expired traces, oldest first, numbered into batches of about
/// `batch` spans (a trace larger than that is a batch of its own), in a
/// temporary table of this connection; returns the batch numbers. Listed
/// once per pass; each batch is checked again inside its transaction.
fn list_expired_traces(conn: &Conn, cutoff: u64, batch: u64) -> Result<Vec<u64>, StorageError> {
    // Only traces with a span before the cutoff can have expired; the time
    // filter skips recent row groups by their min/max, so a pass over a
    // database with nothing old costs little, and the grouping below
    // touches the old traces only.
    execute(
        conn,
        "finding expired traces",
        "CREATE OR REPLACE TEMP TABLE retention_traces AS
         SELECT trace_id, qyl_trace_hex(trace_id) AS trace_hex,
                (sum(n) OVER (ORDER BY newest, trace_id ROWS UNBOUNDED PRECEDING) - n) // ?
                    AS batch
         FROM (SELECT trace_id, count(*) AS n, max(start_time_unix_nano) AS newest
               FROM span_rows
               WHERE trace_id IN (
                   SELECT trace_id FROM span_rows WHERE start_time_unix_nano < ?)
               GROUP BY trace_id HAVING max(start_time_unix_nano) < ?)",
        duckdb::params![batch, cutoff, cutoff],
    )?;
    let ctx = |e| StorageError::sql("listing retention batches", e);
    let mut stmt = conn
        .prepare("SELECT DISTINCT batch::UBIGINT FROM retention_traces ORDER BY 1")
        .map_err(ctx)?;
    let rows = stmt.query_map([], |r| r.get(0)).map_err(ctx)?;
    rows.collect::<Result<_, _>>().map_err(ctx)
}

/// Deletes one batch of listed traces, spans and logs in one transaction.
fn delete_trace_batch(conn: &Conn, b: u64, cutoff: u64) -> Result<PassReport, StorageError> {
    in_transaction(conn, || {
        // A span committed since the list was made may have made its trace
        // recent again: such a trace stays, whole.
        execute(
            conn,
            "re-checking expired traces",
            "DELETE FROM retention_traces WHERE batch = ? AND trace_id IN (
                SELECT trace_id FROM span_rows WHERE start_time_unix_nano >= ?)",
            duckdb::params![b, cutoff],
        )?;
        let traces = conn
            .query_row(
                "SELECT count(*)::UBIGINT FROM retention_traces WHERE batch = ?",
                [b],
                |r| r.get(0),
            )
            .map_err(|e| StorageError::sql("counting expired traces", e))?;
        super::writer::derived::sessions::forget_traces(
            conn,
            "SELECT trace_id FROM retention_traces WHERE batch = ?",
            b,
        )?;
        let logs = execute(
            conn,
            "deleting the logs of expired traces",
            "DELETE FROM log_rows WHERE trace_id IN (
                SELECT trace_hex FROM retention_traces WHERE batch = ?)",
            [b],
        )?;
        let error_events = execute(
            conn,
            "deleting the error events of expired traces",
            "DELETE FROM error_event_rows WHERE trace_id IN (
                SELECT trace_id FROM retention_traces WHERE batch = ?)",
            [b],
        )?;
        // After the re-check, every span of these traces in this
        // transaction's snapshot started before the cutoff; saying so lets
        // DuckDB skip newer row groups by their min/max instead of reading
        // every trace id.
        let spans = execute(
            conn,
            "deleting expired traces",
            "DELETE FROM span_rows WHERE start_time_unix_nano < ? AND trace_id IN (
                SELECT trace_id FROM retention_traces WHERE batch = ?)",
            duckdb::params![cutoff, b],
        )?;
        Ok(PassReport {
            traces,
            spans,
            logs,
            error_events,
            ..PassReport::default()
        })
    })
}

/// Runs `sql` (a DELETE taking the cutoff and a row limit) until it
/// deletes fewer than `batch` rows or `stop` says so; returns the rows
/// deleted. Small batches keep each transaction short beside the writer.
fn delete_in_batches(
    conn: &Conn,
    context: &str,
    sql: &str,
    cutoff: u64,
    batch: u64,
    stop: ShouldStop<'_>,
) -> Result<u64, StorageError> {
    let mut deleted = 0;
    while !stop() {
        let n = execute(conn, context, sql, duckdb::params![cutoff, batch])?;
        deleted += n;
        if n < batch {
            break;
        }
    }
    Ok(deleted)
}

fn execute(
    conn: &Conn,
    context: &str,
    sql: &str,
    params: impl duckdb::Params,
) -> Result<u64, StorageError> {
    conn.execute(sql, params)
        .map(|n| n as u64)
        .map_err(|e| StorageError::sql(context, e))
}

/// Runs `body` in one transaction on `conn` (retention's connection, which
/// the archive shares): committed if it succeeds, rolled back if not.
pub(super) fn in_transaction<T>(
    conn: &Conn,
    body: impl FnOnce() -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    conn.execute_batch("BEGIN TRANSACTION")
        .map_err(|e| StorageError::sql("starting a retention transaction", e))?;
    let result = body().and_then(|v| {
        conn.execute_batch("COMMIT")
            .map_err(|e| StorageError::sql("committing a retention transaction", e))?;
        Ok(v)
    });
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

/// Checkpoints so freed blocks become reusable. DuckDB refuses while the
/// writer is inside a transaction or checkpointing itself; that is retried
/// briefly.
pub(super) fn checkpoint(conn: &Conn) -> Result<(), StorageError> {
    let mut attempt = 0;
    loop {
        // No read may take the memory the checkpoint needs (`storage::gate`).
        let reads_out = conn.shut_out_reads(super::writer::READS_WAIT);
        let checkpointed = conn.execute_batch("CHECKPOINT");
        drop(reads_out);
        match checkpointed {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= 20 => {
                return Err(StorageError::sql("checkpointing after retention", e))
            }
            Err(e) => {
                tracing::debug!(error = %e, attempt, "retention checkpoint retried");
                attempt += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// What wakes the retention thread, which sleeps on the condvar between
/// passes: a stop (for good), or a read that found an archived file gone.
#[derive(Default)]
struct Wake {
    stop: bool,
    refresh: bool,
}

type StopFlag = (Mutex<Wake>, Condvar);

/// Asks the retention thread to replace the archive's views now, between
/// its passes: a read failed on a file another node had dropped, and every
/// read would fail on it until the next pass (`archive::refresh_views`).
#[derive(Clone)]
pub struct ArchiveRefresh(Arc<StopFlag>);

impl ArchiveRefresh {
    pub fn request(&self) {
        self.0 .0.lock().unwrap_or_else(|p| p.into_inner()).refresh = true;
        self.0 .1.notify_all();
    }
}

/// The running retention thread; [`Retention::shutdown`] stops it.
pub struct Retention {
    stats: Arc<RetentionStats>,
    stop: Arc<StopFlag>,
    thread: Option<JoinHandle<()>>,
}

impl Retention {
    /// Starts the thread (none when the policy keeps everything), which
    /// runs a pass every `every` on its own connection to `db`.
    pub fn start(
        db: &Arc<Database>,
        location: Location,
        policy: RetentionPolicy,
        every: Duration,
    ) -> Result<Retention, StorageError> {
        let stats = Arc::new(RetentionStats::default());
        let stop: Arc<StopFlag> = Arc::new((Mutex::new(Wake::default()), Condvar::new()));
        if policy.is_off() {
            return Ok(Retention {
                stats,
                stop,
                thread: None,
            });
        }
        stats.enabled.store(true, Ordering::Relaxed);
        let conn = db.connect()?;
        let thread = {
            let (stats, stop) = (stats.clone(), stop.clone());
            spawn_thread("qyl-retention", move || {
                run_thread(conn, location, policy, every, stop, stats)
            })?
        };
        Ok(Retention {
            stats,
            stop,
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> Arc<RetentionStats> {
        self.stats.clone()
    }

    /// What reads call when an archived file they were told of is gone.
    pub fn archive_refresh(&self) -> ArchiveRefresh {
        ArchiveRefresh(self.stop.clone())
    }

    /// Stops the thread, after its current batch if a pass is running.
    /// Blocks; call from a blocking context, before the writer shuts down.
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.0.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Retention {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn run_thread(
    conn: Conn,
    location: Location,
    policy: RetentionPolicy,
    every: Duration,
    stop: Arc<StopFlag>,
    stats: Arc<RetentionStats>,
) {
    let stopped = || stop.0.lock().unwrap_or_else(|p| p.into_inner()).stop;
    let mut next_pass = Instant::now() + every;
    loop {
        let guard = stop.0.lock().unwrap_or_else(|p| p.into_inner());
        let wait = next_pass.saturating_duration_since(Instant::now());
        let (mut guard, _) = stop
            .1
            .wait_timeout_while(guard, wait, |w| !w.stop && !w.refresh)
            .unwrap_or_else(|p| p.into_inner());
        if guard.stop {
            return;
        }
        if std::mem::take(&mut guard.refresh) {
            drop(guard);
            if let Some(settings) = &policy.archive {
                match super::archive::refresh_views(&conn, settings) {
                    Ok(()) => tracing::info!(
                        "replaced the archive's views after a read found a file gone"
                    ),
                    Err(e) => tracing::warn!(error = %e, "replacing the archive's views failed"),
                }
            }
            continue;
        }
        if Instant::now() < next_pass {
            continue;
        }
        drop(guard);
        next_pass = Instant::now() + every;
        let started = Instant::now();
        let outcome = run_pass(
            &conn,
            &location,
            &policy,
            crate::model::now_unix_nano(),
            &stopped,
        );
        let took = started.elapsed();
        match &outcome {
            Ok(r) if r.rows() > 0 || r.dropped.parts > 0 => tracing::info!(
                archived_parts = r.archived.parts,
                archived_rows = r.archived.rows,
                dropped_parts = r.dropped.parts,
                traces = r.traces,
                spans = r.spans,
                logs = r.logs,
                metrics = r.metrics,
                used_bytes = r.used_bytes,
                ms = took.as_millis() as u64,
                "retention pass deleted old data"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention pass failed; retrying next interval"),
        }
        stats.record(&outcome, took);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Batch, LogRecord, MetricPoint, SpanRecord};
    use crate::storage::writer::{WriteError, Writer, WriterConfig, WriterHandle};
    use crate::storage::{open, StorageOptions};
    use crate::stream::Hub;

    const HOUR: u64 = 3_600_000_000_000;
    /// "Now" for the age tests: day 30 after the epoch, in ns.
    const NOW: u64 = 30 * 24 * HOUR;

    fn span(trace: &str, span: &str, start: u64) -> SpanRecord {
        SpanRecord {
            trace_id: trace.into(),
            span_id: span.into(),
            name: "work".into(),
            kind: "INTERNAL",
            status_code: "UNSET",
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1000,
            duration_ns: 1000,
            service_name: "svc".into(),
            attributes: r#"{"http.route":"/api/v1/things/{id}","user.id":"u-1234"}"#.into(),
            resource: r#"{"service.name":"svc"}"#.into(),
            events: "[]".into(),
            links: "[]".into(),
            ..Default::default()
        }
    }

    fn log(trace: Option<&str>, time: u64, body: &str) -> LogRecord {
        LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: time,
            trace_id: trace.map(str::to_string),
            body: Some(body.into()),
            service_name: "svc".into(),
            attributes: "{}".into(),
            resource: "{}".into(),
            ..Default::default()
        }
    }

    fn metric(time: u64) -> MetricPoint {
        MetricPoint {
            time_unix_nano: time,
            start_time_unix_nano: time,
            name: "requests".into(),
            kind: "sum",
            value: Some(1.0),
            service_name: "svc".into(),
            attributes: "{}".into(),
            resource: "{}".into(),
            ..Default::default()
        }
    }

    struct Db {
        _dir: Option<tempfile::TempDir>,
        location: Location,
        db: Arc<Database>,
        conn: Conn,
        writer: Option<Writer>,
    }

    impl Db {
        fn file() -> Db {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("qyl.duckdb");
            Self::start(Some(dir), path.to_string_lossy().into_owned())
        }

        fn memory() -> Db {
            Self::start(None, ":memory:".into())
        }

        fn start(dir: Option<tempfile::TempDir>, path: String) -> Db {
            let db = open(&StorageOptions {
                path: path.clone(),
                memory_limit_mb: 0,
                threads: 0,
                archive: None,
            })
            .unwrap();
            let location = Location::from_path(&path);
            let writer = Writer::start(
                db.clone(),
                Arc::new(Hub::new(16)),
                // No background checkpoints: the passes checkpoint, and
                // one landing in the middle of a size test would change how
                // much space the test sees freed.
                WriterConfig {
                    checkpoint_interval: Duration::from_secs(3600),
                    ..WriterConfig::default()
                },
                location != Location::Memory,
            )
            .unwrap();
            Db {
                _dir: dir,
                location,
                conn: db.connect().unwrap(),
                db,
                writer: Some(writer),
            }
        }

        fn handle(&self) -> WriterHandle {
            self.writer.as_ref().unwrap().handle()
        }

        fn write(&self, batch: Batch) {
            let rx = self.handle().submit(batch).unwrap();
            rx.blocking_recv().unwrap().unwrap();
            // Answered once journaled: wait for the commit before reading.
            self.settle();
        }

        fn pass(&self, policy: &RetentionPolicy, now: u64) -> PassReport {
            self.settle();
            run_pass(&self.conn, &self.location, policy, now, &|| false).unwrap()
        }

        /// Waits for the commits of everything answered so far.
        fn settle(&self) {
            if let Some(v) = self.writer.as_ref().and_then(|w| w.handle().visibility()) {
                v.settle_blocking(Duration::from_secs(60));
            }
        }

        fn count(&self, sql: &str) -> i64 {
            self.settle();
            self.conn.query_row(sql, [], |r| r.get(0)).unwrap()
        }

        fn strings(&self, sql: &str) -> Vec<String> {
            self.settle();
            let mut stmt = self.conn.prepare(sql).unwrap();
            let rows = stmt.query_map([], |r| r.get(0)).unwrap();
            rows.collect::<Result<_, _>>().unwrap()
        }
    }

    impl Drop for Db {
        fn drop(&mut self) {
            if let Some(w) = self.writer.take() {
                w.shutdown();
            }
        }
    }

    fn by_age(hours: u64, batch_rows: usize) -> RetentionPolicy {
        RetentionPolicy {
            max_age: Some(Duration::from_secs(hours * 3600)),
            max_bytes: None,
            batch_rows,
            archive: None,
        }
    }

    /// The age fixture: 40 old traces of 3 spans, a long trace with an old
    /// root and a recent child, a recent trace; logs with and without trace
    /// ids; metric points either side of the cutoff (24 h before NOW).
    fn age_fixture(db: &Db) {
        let old = NOW - 48 * HOUR;
        let recent = NOW - HOUR;
        let mut batch = Batch::default();
        for t in 0..40u64 {
            let trace = format!("{:032x}", 0xa000 + t);
            for s in 0..3u64 {
                batch
                    .spans
                    .push(span(&trace, &format!("{:016x}", t * 10 + s), old + t + s));
            }
            batch.logs.push(log(Some(&trace), old + t, "old trace log"));
        }
        let long = format!("{:032x}", 0xb0);
        batch.spans.push(span(&long, "00000000000000b1", old));
        batch.spans.push(span(&long, "00000000000000b2", recent));
        // Older than the cutoff, but its trace is kept: it stays too.
        batch.logs.push(log(Some(&long), old, "long trace log"));
        let fresh = format!("{:032x}", 0xc0);
        batch.spans.push(span(&fresh, "00000000000000c1", recent));
        batch
            .logs
            .push(log(Some(&fresh), recent, "fresh trace log"));
        batch.logs.push(log(None, old, "old plain log"));
        batch.logs.push(log(None, recent, "recent plain log"));
        // A trace id qyl has no spans for: the log goes by its own time.
        batch
            .logs
            .push(log(Some(&format!("{:032x}", 0xd0)), old, "old stray log"));
        batch.metrics.push(metric(old));
        batch.metrics.push(metric(old + 1));
        batch.metrics.push(metric(recent));
        // Function invocations go by their own start time.
        for (id, started) in [("old", old), ("new", recent)] {
            batch
                .functions
                .invocations
                .push(crate::model::function::Invocation {
                    invocation_id: id.into(),
                    function: "f".into(),
                    status: crate::model::function::InvocationStatus::Completed,
                    result: None,
                    error: None,
                    duration_ms: 1.0,
                    trace_id: Some(format!("{:032x}", 0xa000)),
                    span_id: None,
                    started_unix_nano: started,
                    finished_unix_nano: started,
                    replaces_running: false,
                });
        }
        db.write(batch);
    }

    fn check_age_result(db: &Db, report: &PassReport) {
        assert_eq!(
            report,
            &PassReport {
                traces: 40,
                spans: 120,
                logs: 42,
                metrics: 2,
                // The 40 old traces and the stray log's trace id.
                lookup_rows: 41,
                error_events: 0,
                invocations: 1,
                used_bytes: report.used_bytes,
                free_bytes: report.free_bytes,
                ..Default::default()
            }
        );
        assert_eq!(
            db.strings("SELECT DISTINCT trace_id FROM spans ORDER BY 1"),
            vec![format!("{:032x}", 0xb0), format!("{:032x}", 0xc0)]
        );
        // Kept traces are whole, and nothing of a deleted trace remains.
        assert_eq!(db.count("SELECT count(*) FROM spans"), 3);
        assert_eq!(
            db.strings("SELECT body FROM logs ORDER BY body"),
            vec!["fresh trace log", "long trace log", "recent plain log"]
        );
        assert_eq!(
            db.count(
                "SELECT count(*) FROM logs l WHERE trace_id IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = l.trace_id)"
            ),
            0,
            "a log outlived its trace"
        );
        assert_eq!(db.count("SELECT count(*) FROM metrics"), 1);
        // The kept traces can still be looked up.
        assert_eq!(db.count("SELECT count(*) FROM trace_index"), 2);
        assert_eq!(
            db.strings("SELECT invocation_id FROM function_invocations"),
            vec!["new"]
        );
    }

    #[test]
    fn age_removes_whole_traces_with_their_logs_in_batches() {
        let db = Db::file();
        age_fixture(&db);
        // Batches of 7 spans: the 40 old traces take several transactions.
        let report = db.pass(&by_age(24, 7), NOW);
        check_age_result(&db, &report);
        // Nothing further is old: a second pass deletes nothing.
        let again = db.pass(&by_age(24, 7), NOW);
        assert_eq!(again.rows(), 0);
        // Once the long trace's recent span is old too, it goes whole.
        let later = db.pass(&by_age(24, 7), NOW + 24 * HOUR);
        assert_eq!((later.traces, later.spans, later.logs), (2, 3, 3));
    }

    #[test]
    fn age_retention_applies_in_memory() {
        let db = Db::memory();
        age_fixture(&db);
        let report = db.pass(&by_age(24, 50_000), NOW);
        check_age_result(&db, &report);
        assert!(report.used_bytes > 0, "memory use is measured");
    }

    #[test]
    fn a_trace_that_turned_recent_after_listing_is_kept_whole() {
        let db = Db::file();
        let old = NOW - 48 * HOUR;
        let (a, b) = (format!("{:032x}", 0xe0), format!("{:032x}", 0xf0));
        db.write(Batch {
            spans: vec![
                span(&a, "00000000000000e1", old),
                span(&b, "00000000000000f1", old),
            ],
            logs: vec![log(Some(&a), old, "a"), log(Some(&b), old, "b")],
            ..Batch::default()
        });
        let cutoff = NOW - 24 * HOUR;
        let batches = list_expired_traces(&db.conn, cutoff, 100).unwrap();
        assert_eq!(batches, vec![0]);
        // A late span of trace a arrives between listing and deleting.
        db.write(Batch {
            spans: vec![span(&a, "00000000000000e2", NOW)],
            ..Batch::default()
        });
        let report = delete_trace_batch(&db.conn, 0, cutoff).unwrap();
        assert_eq!((report.traces, report.spans, report.logs), (1, 1, 1));
        assert_eq!(
            db.strings("SELECT span_id FROM spans ORDER BY 1"),
            vec!["00000000000000e1", "00000000000000e2"]
        );
        assert_eq!(db.strings("SELECT body FROM logs"), vec!["a"]);
    }

    /// `traces` traces of 4 spans and 4 logs each, plus 4 metric points per
    /// trace, with times increasing by trace number from `first`. Inserted
    /// by SQL: through the writer, a debug build needs half a minute for it.
    fn fill(db: &Db, first: u64, traces: u64) {
        // In time order, as ingest appends them: retention frees space
        // by row groups, which holds up only if old rows share them.
        let rows = format!(
            "FROM range({first}, {}) r(t), range(4) k(k) ORDER BY t, k",
            first + traces
        );
        db.conn
            .execute_batch(&format!(
                "INSERT INTO span_rows BY NAME SELECT
                    t::UHUGEINT AS trace_id, (t * 4 + k)::UBIGINT AS span_id,
                    'work' AS name, 'INTERNAL' AS kind, t AS start_time_unix_nano,
                    t + 1000 AS end_time_unix_nano, 1000 AS duration_ns,
                    'UNSET' AS status_code, 'svc' AS service_name,
                    '{{\"user.id\":\"u-' || (t % 977) || '\"}}' AS attributes,
                    '{{}}' AS resource, '[]' AS events, '[]' AS links,
                    0 AS dropped_attributes_count, 0 AS dropped_events_count,
                    0 AS dropped_links_count, t * 4 + k AS ingest_seq {rows};
                 INSERT INTO log_rows BY NAME SELECT
                    t AS time_unix_nano, t AS observed_time_unix_nano,
                    printf('%032x', t) AS trace_id, 9 AS severity_number,
                    'log line ' || t AS body, 'svc' AS service_name, 0 AS flags,
                    '{{}}' AS attributes, '{{}}' AS resource,
                    0 AS dropped_attributes_count, t * 4 + k AS ingest_seq {rows};
                 INSERT INTO metric_rows BY NAME SELECT
                    t AS time_unix_nano, t AS start_time_unix_nano, 'requests' AS name,
                    'sum' AS kind, k::DOUBLE AS value, 'svc' AS service_name,
                    '{{}}' AS attributes, '{{}}' AS resource, 0 AS flags,
                    t * 4 + k AS ingest_seq {rows};"
            ))
            .unwrap();
    }

    /// The journal holds what was committed since the writer's last
    /// checkpoint, uncompressed; deleting stored rows cannot shrink it, so
    /// it must not count toward the size limit.
    #[test]
    fn the_journal_does_not_count_toward_the_size_limit() {
        let db = Db::file();
        for b in 0..20u64 {
            let mut batch = Batch::default();
            for n in 0..1_000u64 {
                let trace = format!("{:032x}", b * 1_000 + n + 1);
                batch
                    .spans
                    .push(span(&trace, "0000000000000001", NOW - HOUR + n));
            }
            db.write(batch);
        }
        checkpoint(&db.conn).unwrap();
        let used = db.count(
            "SELECT used_blocks * block_size FROM pragma_database_size()
             WHERE database_name = current_database()",
        ) as u64;
        let path = db._dir.as_ref().unwrap().path().join("qyl.duckdb");
        let journal = crate::storage::writer::journal_bytes(&path);
        // Room for the stored rows, not for the journal as well.
        let limit = used + journal / 2;
        assert!(
            used < limit / 100 * SIZE_TARGET_PERCENT,
            "{used} of {limit}"
        );
        assert!(
            used + journal > limit,
            "journal {journal} bytes, limit {limit}"
        );
        let policy = RetentionPolicy {
            max_age: None,
            max_bytes: Some(limit),
            batch_rows: 50_000,
            archive: None,
        };
        assert_eq!(db.pass(&policy, NOW).rows(), 0);
        assert_eq!(db.count("SELECT count(*) FROM spans"), 20_000);
    }

    #[test]
    fn size_limit_deletes_the_oldest_until_it_fits() {
        let db = Db::file();
        // DuckDB frees space by whole row groups (32,768 rows in qyl's file
        // layout, 122,880 in the oldest files), so each table needs several for
        // a limit of half the data to be reachable in either.
        const TRACES: i64 = 125_000;
        fill(&db, 1, TRACES as u64);
        checkpoint(&db.conn).unwrap();
        let used = used_bytes(&db.conn, &db.location).unwrap();
        let limit = used / 2;
        let policy = RetentionPolicy {
            max_age: None,
            max_bytes: Some(limit),
            batch_rows: 50_000,
            archive: None,
        };
        // A pass stops when a round frees nothing yet (a row group only
        // partly deleted); the passes that follow finish the job.
        let target = limit / 100 * SIZE_TARGET_PERCENT;
        let mut report = PassReport::default();
        let mut passes = 0;
        loop {
            let pass = db.pass(&policy, NOW);
            report.add(&pass);
            passes += 1;
            if pass.used_bytes <= target {
                break;
            }
            assert!(
                passes < 6,
                "still {} > {target} after {passes} passes",
                pass.used_bytes
            );
        }
        assert!(report.traces > 0 && report.spans == report.traces * 4);
        // Not much more went than had to: the limit is half the data, and
        // space is freed in steps of a row group (a quarter of each table).
        let kept_share = 1.0 - report.traces as f64 / TRACES as f64;
        assert!(
            kept_share > 0.2,
            "only {kept_share:.2} of the data kept, {passes} passes"
        );
        // The oldest went: what is left is one contiguous run of the newest.
        let oldest_kept = db.count("SELECT min(start_time_unix_nano)::BIGINT FROM spans");
        assert!(oldest_kept > 1);
        let kept = TRACES + 1 - oldest_kept;
        assert_eq!(db.count("SELECT count(DISTINCT trace_id) FROM spans"), kept);
        assert_eq!(db.count("SELECT count(*) FROM spans"), 4 * kept);
        assert_eq!(
            db.count("SELECT min(time_unix_nano)::BIGINT FROM logs"),
            oldest_kept
        );
        assert_eq!(db.count("SELECT count(*) FROM logs"), 4 * kept);
        assert_eq!(
            db.count("SELECT min(time_unix_nano)::BIGINT FROM metrics"),
            oldest_kept
        );
        // Under the limit, a pass leaves everything alone.
        assert_eq!(db.pass(&policy, NOW).rows(), 0);
        // The freed blocks are reused: refilling as much as was deleted
        // fills them before the file grows.
        let path = db._dir.as_ref().unwrap().path().join("qyl.duckdb");
        let file = std::fs::metadata(&path).unwrap().len();
        let before = db_size(&db.conn, &db.location).unwrap();
        fill(&db, 100_000, report.traces);
        checkpoint(&db.conn).unwrap();
        let after = db_size(&db.conn, &db.location).unwrap();
        let file_after = std::fs::metadata(&path).unwrap().len();
        assert!(
            after.free < before.free / 4,
            "free space not reused: {before:?} then {after:?}"
        );
        let needed = (after.used - before.used).saturating_sub(before.free);
        assert!(
            file_after <= file + needed + file / 10,
            "file grew from {file} to {file_after}, with {before:?} then {after:?}"
        );
    }

    #[test]
    fn passes_run_beside_concurrent_ingest() {
        let db = Db::file();
        let handle = db.handle();
        let stop = Arc::new(AtomicBool::new(false));
        // Ingest: each batch holds an old trace and a recent trace.
        let ingest = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut batch = Batch::default();
                    for _ in 0..200 {
                        n += 1;
                        for (kind, time) in [(0xa, NOW - 48 * HOUR + n), (0xb, NOW - HOUR + n)] {
                            let trace = format!("{kind:x}{n:031x}");
                            batch.spans.push(span(&trace, "0000000000000001", time));
                            batch.spans.push(span(&trace, "0000000000000002", time + 1));
                            batch.logs.push(log(Some(&trace), time, "x"));
                        }
                        batch.metrics.push(metric(NOW - 48 * HOUR + n));
                    }
                    // Answered at the journal, ingest can outrun the
                    // commits: a full queue is retried, as exporters do.
                    loop {
                        match handle.submit(batch.clone()) {
                            Ok(rx) => {
                                rx.blocking_recv().unwrap().unwrap();
                                break;
                            }
                            Err(WriteError::QueueFull { .. }) => {
                                std::thread::sleep(Duration::from_millis(20))
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                n
            })
        };
        let mut deleted = PassReport::default();
        let deadline = Instant::now() + Duration::from_secs(4);
        while Instant::now() < deadline {
            let report = run_pass(&db.conn, &db.location, &by_age(24, 1000), NOW, &|| false)
                .expect("a pass beside ingest succeeds");
            deleted.add(&report);
        }
        stop.store(true, Ordering::Relaxed);
        let written = ingest.join().unwrap() as i64;
        deleted.add(&db.pass(&by_age(24, 1000), NOW));
        assert!(deleted.traces > 0, "passes ran while data arrived");
        // Every recent trace is there whole, every old one is gone whole.
        assert_eq!(
            db.count("SELECT count(*) FROM spans WHERE trace_id LIKE 'b%'"),
            2 * written
        );
        assert_eq!(
            db.count("SELECT count(*) FROM logs WHERE trace_id LIKE 'b%'"),
            written
        );
        assert_eq!(
            db.count("SELECT count(*) FROM spans WHERE trace_id LIKE 'a%'")
                + db.count("SELECT count(*) FROM logs WHERE trace_id LIKE 'a%'")
                + db.count("SELECT count(*) FROM metrics"),
            0
        );
        assert_eq!(deleted.traces as i64, written);
        assert_eq!(deleted.spans as i64, 2 * written);
        assert_eq!(deleted.metrics as i64, written);
    }

    #[test]
    fn the_thread_records_passes_and_stops() {
        let db = Db::file();
        age_fixture(&db);
        let retention = Retention::start(
            &db.db,
            db.location.clone(),
            by_age(24, 100),
            Duration::from_millis(20),
        )
        .unwrap();
        let stats = retention.stats();
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.passes.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "no pass ran");
            std::thread::sleep(Duration::from_millis(10));
        }
        retention.shutdown();
        assert!(stats.enabled.load(Ordering::Relaxed));
        assert_eq!(stats.last_error(), None);
        assert_eq!(stats.failed_passes.load(Ordering::Relaxed), 0);
        assert!(stats.last_pass_unix_ms.load(Ordering::Relaxed) > 0);
        let off = Retention::start(
            &db.db,
            db.location.clone(),
            RetentionPolicy {
                max_age: None,
                max_bytes: None,
                batch_rows: 1,
                archive: None,
            },
            Duration::from_millis(1),
        )
        .unwrap();
        assert!(!off.stats().enabled.load(Ordering::Relaxed));
    }

    #[test]
    fn free_disk_space_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        let free = disk_free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        assert!(disk_free_bytes(&dir.path().join("missing")).is_err());
    }
}
