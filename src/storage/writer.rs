//! The single writer: the only code that writes telemetry to DuckDB.
//!
//! Exports become [`Batch`]es and enter a bounded queue ([`WriterHandle::submit`]).
//! One thread takes jobs off the queue, groups them until `batch_rows` rows or
//! `batch_ms` milliseconds, appends them with DuckDB Appenders inside one
//! transaction, commits, and only then answers each job and publishes the
//! records to the hub. So an acknowledged export is durable, and consumers
//! only ever see committed data.
//!
//! Backpressure: the queue is bounded in rows. When it is full `submit`
//! refuses at once (the caller answers 503 / UNAVAILABLE so the exporter
//! retries); nothing accepted is ever dropped.
//!
//! Retried exports: the writer remembers the (trace id, span id) of the last
//! `dedup_window` spans it stored (seeded from the database at start) and
//! skips spans it has already stored, so an SDK retry does not duplicate them.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::derived::{self, Committing, Derived};
use super::duck::{Chunk, ChunkAppender, ChunkBuilder, Col, RawConn};
use super::{Conn, Database, DuckError, StorageError};
use crate::model::{Batch, LogRecord, MetricPoint, Record, SpanRecord};
use crate::stream::{Event, Hub};

/// Tuning for the writer; see `[ingest]` in qyl.toml.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Rows that may wait in the queue before exports are refused.
    pub queue_rows: usize,
    /// Commit once this many rows are gathered…
    pub batch_rows: usize,
    /// …or once the oldest gathered job has waited this long.
    pub batch_wait: Duration,
    /// How many recent span ids are remembered to drop retried duplicates.
    pub dedup_window: usize,
    /// How often the checkpoint thread folds the WAL into the database file.
    pub checkpoint_interval: Duration,
    /// Settings of the summary tables (error groups…).
    pub derived: derived::DerivedSettings,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            queue_rows: 200_000,
            batch_rows: 8192,
            batch_wait: Duration::from_millis(5),
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

/// Counters for `/metrics` and `/health`.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub rows_committed: AtomicU64,
    pub batches_committed: AtomicU64,
    pub commit_failures: AtomicU64,
    pub refused_exports: AtomicU64,
    pub duplicate_spans: AtomicU64,
    pub last_commit_micros: AtomicU64,
    pub checkpoints: AtomicU64,
    /// `rows_committed` split by signal.
    pub spans_committed: AtomicU64,
    pub logs_committed: AtomicU64,
    pub metrics_committed: AtomicU64,
    /// Time from the start of a successful commit to its answer.
    pub commit_duration: DurationHistogram,
    /// Where the writer thread's time goes, step by step.
    pub steps: StepTimes,
    /// Whether the writer thread runs and gets through its work, for the
    /// health checks.
    pub pulse: WriterPulse,
}

/// A commit that has not ended after this long means the writer is stuck
/// (a normal one takes milliseconds; a big group commit beside a checkpoint
/// a few seconds), and /health/live says so, so an orchestrator restarts qyl.
pub const STUCK_AFTER: Duration = Duration::from_secs(30);

/// This many commits failing in a row (each job already retried alone)
/// means qyl cannot store what it accepts — a full disk, a broken file —
/// rather than one bad batch, and /health/ready turns away traffic.
pub const FAILING_AFTER: u64 = 3;

/// The writer thread's heartbeat. It is stamped when the thread starts
/// waiting for work and when it ends a commit, so "busy since" is the age of
/// the stamp while not idle: readers' load cannot make it look stale, and
/// an idle writer is never mistaken for a stuck one.
#[derive(Debug, Default)]
pub struct WriterPulse {
    alive: AtomicBool,
    idle: AtomicBool,
    /// Milliseconds since the Unix epoch.
    stamp_ms: AtomicU64,
    failing_commits: AtomicU64,
}

/// What the health checks conclude from the [`WriterPulse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriterCondition {
    /// Idle, or busy for less than [`STUCK_AFTER`].
    Running,
    /// The thread has ended (shutdown, or a panic).
    Stopped,
    /// Busy on one step for this long (at least [`STUCK_AFTER`]).
    Stuck(Duration),
    /// The last this many commits failed.
    Failing(u64),
}

impl WriterPulse {
    fn beat(&self, idle: bool) {
        self.stamp_ms.store(unix_ms(), Ordering::Relaxed);
        self.idle.store(idle, Ordering::Release);
    }

    fn commit_result(&self, ok: bool) {
        if ok {
            self.failing_commits.store(0, Ordering::Relaxed);
        } else {
            self.failing_commits.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn condition(&self) -> WriterCondition {
        self.condition_at(unix_ms())
    }

    /// The condition as seen at `now_ms` (tests look into the future).
    fn condition_at(&self, now_ms: u64) -> WriterCondition {
        if !self.alive.load(Ordering::Acquire) {
            return WriterCondition::Stopped;
        }
        if !self.idle.load(Ordering::Acquire) {
            let busy = now_ms.saturating_sub(self.stamp_ms.load(Ordering::Relaxed));
            let busy = Duration::from_millis(busy);
            if busy >= STUCK_AFTER {
                return WriterCondition::Stuck(busy);
            }
        }
        match self.failing_commits.load(Ordering::Relaxed) {
            n if n >= FAILING_AFTER => WriterCondition::Failing(n),
            _ => WriterCondition::Running,
        }
    }
}

/// Marks the pulse dead when the writer thread ends, however it ends.
struct AliveGuard(Arc<WriterStats>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.pulse.alive.store(false, Ordering::Release);
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Time the writer thread spent in each step of its commits (appending the
/// rows, each derived table, the COMMIT itself), summed since start: what
/// `/metrics` and the ingest benchmark show to say where commit time goes.
#[derive(Debug, Default)]
pub struct StepTimes(Mutex<Vec<(&'static str, Duration)>>);

impl StepTimes {
    fn add(&self, step: &'static str, took: Duration) {
        let mut steps = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match steps.iter_mut().find(|(s, _)| *s == step) {
            Some((_, total)) => *total += took,
            None => steps.push((step, took)),
        }
    }

    /// (step, seconds), in the order the steps first ran.
    pub fn snapshot(&self) -> Vec<(&'static str, f64)> {
        let steps = self.0.lock().unwrap_or_else(|p| p.into_inner());
        steps.iter().map(|(s, d)| (*s, d.as_secs_f64())).collect()
    }
}

/// Upper bounds, in seconds, of the commit-duration buckets: from a small
/// in-memory commit to the checkpoint stalls DESIGN §7 warns about.
pub const COMMIT_BUCKETS_SECS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A fixed-bucket histogram of atomics, so the writer records into it
/// without a lock and `/metrics` reads it at any time.
#[derive(Debug, Default)]
pub struct DurationHistogram {
    /// Per bucket (not cumulative); anything above the last bound is only
    /// in `count`.
    buckets: [AtomicU64; COMMIT_BUCKETS_SECS.len()],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// A reading of a [`DurationHistogram`], buckets cumulative as Prometheus
/// expects.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound in seconds, observations at or below it).
    pub buckets: Vec<(f64, u64)>,
    pub sum_secs: f64,
    pub count: u64,
}

impl DurationHistogram {
    pub fn record(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = COMMIT_BUCKETS_SECS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        // Count first: a record racing with this read then shows in a bucket
        // but not yet in the count, never the other way round.
        let count = self.count.load(Ordering::Relaxed);
        let mut total = 0;
        let buckets = COMMIT_BUCKETS_SECS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| {
                total += n.load(Ordering::Relaxed);
                (*bound, total.min(count))
            })
            .collect();
        HistogramSnapshot {
            buckets,
            sum_secs: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count,
        }
    }
}

/// Set once to stop the checkpoint thread, which sleeps on the condvar.
type StopFlag = (Mutex<bool>, Condvar);

struct Job {
    batch: Batch,
    /// The batch as DuckDB data chunks, built by the submitting thread so the
    /// writer thread only appends them (sequence numbers are filled in then).
    chunks: Prepared,
    ack: oneshot::Sender<Result<Committed, WriteError>>,
    _permit: OwnedSemaphorePermit,
}

enum Msg {
    // Boxed: a job (with its batch) is large, and the queue holds many.
    Job(Box<Job>),
    /// A reader waits for the summaries' pending sums to be written.
    Flush(oneshot::Sender<()>),
    Shutdown,
}

#[derive(Default)]
struct PauseState {
    count: Mutex<u32>,
    resumed: Condvar,
}

/// The cloneable front of the writer that ingest holds.
#[derive(Clone)]
pub struct WriterHandle {
    tx: Sender<Msg>,
    budget: Arc<Semaphore>,
    capacity: usize,
    closed: Arc<AtomicBool>,
    pause: Arc<PauseState>,
    stats: Arc<WriterStats>,
    summaries_pending: Arc<AtomicBool>,
}

/// Lets readers of the summary tables (sessions, GenAI minutes) see every
/// acknowledged export although the writer may hold their sums in memory
/// for a while (see `derived.rs`): [`SummarySync::settle`] asks for a flush
/// when sums are pending and waits for it.
#[derive(Clone)]
pub struct SummarySync {
    tx: Sender<Msg>,
    pending: Arc<AtomicBool>,
}

/// How long a reader waits for a flush before it reads what is stored.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

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

    fn request(&self) -> Option<oneshot::Receiver<()>> {
        if !self.pending.load(Ordering::Acquire) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Flush(tx)).ok()?;
        Some(rx)
    }
}

impl WriterHandle {
    /// What readers of the summary tables use to see current sums.
    pub fn summary_sync(&self) -> SummarySync {
        SummarySync {
            tx: self.tx.clone(),
            pending: self.summaries_pending.clone(),
        }
    }

    /// Queues a batch; the receiver resolves once it is committed (or not).
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
        let job = Job {
            chunks: Prepared::new(&batch),
            batch,
            ack,
            _permit: permit,
        };
        self.tx
            .send(Msg::Job(Box::new(job)))
            .map_err(|_| WriteError::Closed)?;
        Ok(rx)
    }

    /// Queues a batch and waits for its commit.
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
    pause: Arc<PauseState>,
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        let mut n = self.pause.count.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        self.pause.resumed.notify_all();
    }
}

/// What a commit leaves behind (records leaving the hub's ring, the
/// batches' data chunks): tens of thousands of small frees per commit, done
/// on a thread of its own so they do not hold up the next commit.
type Garbage = Box<dyn Send>;

fn spawn_reaper() -> Result<(Sender<Garbage>, JoinHandle<()>), StorageError> {
    // Bounded: if freeing ever falls behind, the writer waits for it
    // rather than holding ever more memory.
    let (tx, rx) = crossbeam_channel::bounded::<Garbage>(64);
    let thread = std::thread::Builder::new()
        .name("qyl-reaper".into())
        .spawn(move || rx.iter().for_each(drop))
        .map_err(|e| StorageError::Dir {
            path: "qyl-reaper thread".into(),
            source: e,
        })?;
    Ok((tx, thread))
}

/// The running writer; [`Writer::shutdown`] commits what is queued and stops.
pub struct Writer {
    handle: WriterHandle,
    thread: Option<JoinHandle<()>>,
    reaper: Option<JoinHandle<()>>,
    checkpointer: Option<(Arc<StopFlag>, JoinHandle<()>)>,
}

impl Writer {
    /// Starts the writer thread (and the checkpoint thread, for a file) on
    /// an open, migrated database.
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
        let closed = super::functions::close_interrupted(&conn)?;
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
        // Everything fallible that needs no thread comes first, so an error
        // cannot leave the checkpoint thread running.
        let raw = db.raw_connection()?;
        let (reaper_tx, reaper) = spawn_reaper()?;
        // Replayed sums are pending from the start: readers must wait for them.
        let summaries_pending = Arc::new(AtomicBool::new(derived.iter().any(|t| t.pending())));
        let checkpointer = if is_file {
            let stop = Arc::new((Mutex::new(false), Condvar::new()));
            let thread = spawn_checkpointer(
                conn,
                config.checkpoint_interval,
                stop.clone(),
                stats.clone(),
            )?;
            Some((stop, thread))
        } else {
            None
        };
        let mut state = WriterState {
            raw,
            hub,
            seen,
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
        };
        stats.pulse.alive.store(true, Ordering::Release);
        stats.pulse.beat(true);
        let alive = AliveGuard(stats.clone());
        let thread = std::thread::Builder::new()
            .name("qyl-writer".into())
            .spawn(move || {
                let _alive = alive;
                state.run(rx)
            })
            .map_err(|e| StorageError::Dir {
                path: "qyl-writer thread".into(),
                source: e,
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
            },
            thread: Some(thread),
            reaper: Some(reaper),
            checkpointer,
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
        if let Some((stop, thread)) = self.checkpointer.take() {
            *stop.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
            stop.1.notify_all();
            let _ = thread.join();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The writer thread has ended, so the reaper's channel is closed.
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

/// The last sequence number in use: the newest stored row's, or the one
/// recorded at the last flush or shutdown, which also counts records only
/// the hub had (see `derived::record_flush`).
fn max_seq(conn: &Conn) -> Result<u64, StorageError> {
    conn.query_row(
        "SELECT greatest(
            (SELECT coalesce(max(ingest_seq), 0) FROM spans),
            (SELECT coalesce(max(ingest_seq), 0) FROM logs),
            (SELECT coalesce(max(ingest_seq), 0) FROM metrics),
            (SELECT coalesce(max(ingest_seq), 0) FROM summary_watermark))::UBIGINT",
        [],
        |r| r.get::<_, u64>(0),
    )
    .map_err(|e| StorageError::sql("reading the last ingest sequence", e))
}

fn seed_recent_spans(
    conn: &Conn,
    next_seq: u64,
    seen: &mut RecentSpans,
) -> Result<(), StorageError> {
    let ctx = |e| StorageError::sql("loading recent span ids", e);
    let from = next_seq.saturating_sub(seen.capacity as u64 * 2);
    let mut stmt = conn
        .prepare("SELECT trace_id, span_id FROM spans WHERE ingest_seq >= ? ORDER BY ingest_seq")
        .map_err(ctx)?;
    let mut rows = stmt.query([from]).map_err(ctx)?;
    while let Some(row) = rows.next().map_err(ctx)? {
        let trace_id: String = row.get(0).map_err(ctx)?;
        let span_id: String = row.get(1).map_err(ctx)?;
        seen.insert(span_key(&trace_id, &span_id));
    }
    Ok(())
}

fn spawn_checkpointer(
    conn: Conn,
    every: Duration,
    stop: Arc<StopFlag>,
    stats: Arc<WriterStats>,
) -> Result<JoinHandle<()>, StorageError> {
    std::thread::Builder::new()
        .name("qyl-checkpoint".into())
        .spawn(move || loop {
            let stopped = stop.0.lock().unwrap_or_else(|p| p.into_inner());
            let (stopped, _) = stop
                .1
                .wait_timeout_while(stopped, every, |s| !*s)
                .unwrap_or_else(|p| p.into_inner());
            if *stopped {
                return;
            }
            drop(stopped);
            match conn.execute_batch("CHECKPOINT") {
                Ok(()) => {
                    stats.checkpoints.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(error = %e, "background checkpoint skipped"),
            }
        })
        .map_err(|e| StorageError::Dir {
            path: "qyl-checkpoint thread".into(),
            source: e,
        })
}

/// Hashes of recently stored (trace id, span id) pairs, oldest evicted first.
struct RecentSpans {
    set: HashSet<u64, BuildHasherDefault<PreHashed>>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl RecentSpans {
    fn new(capacity: usize) -> Self {
        RecentSpans {
            set: HashSet::default(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn contains(&self, key: u64) -> bool {
        self.set.contains(&key)
    }

    fn insert(&mut self, key: u64) {
        if self.capacity == 0 {
            return;
        }
        if self.set.insert(key) {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// The keys are already keyed hashes; hashing them again would only cost time.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn span_key(trace_id: &str, span_id: &str) -> u64 {
    // SipHash with keys chosen at random per process: senders cannot pick
    // ids that collide (in the set or in value) on purpose, and the keys need
    // not survive a restart because the set is rebuilt from the database.
    // A 64-bit key collides by chance with probability ~n²/2⁶⁵ (about 3e-8
    // for a million spans).
    static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    use std::hash::BuildHasher;
    KEYS.get_or_init(std::hash::RandomState::new)
        .hash_one((trace_id, span_id))
}

struct WriterState {
    raw: RawConn,
    hub: Arc<Hub>,
    seen: RecentSpans,
    next_seq: u64,
    stats: Arc<WriterStats>,
    pause: Arc<PauseState>,
    batch_rows: usize,
    batch_wait: Duration,
    /// Summary tables updated in each commit's transaction (sessions,
    /// error groups…); see `derived.rs`.
    derived: Vec<Box<dyn Derived>>,
    /// When summary tables last wrote the sums they keep in memory.
    last_flush: Instant,
    /// How long the queue must stay empty before pending sums are written.
    idle_flush_after: Duration,
    /// Frees what commits leave behind, off this thread.
    reaper: Sender<Garbage>,
    /// Shared with [`SummarySync`]: whether sums wait in memory.
    summaries_pending: Arc<AtomicBool>,
    /// Readers waiting for the next flush of the summaries.
    flush_waiters: Vec<oneshot::Sender<()>>,
}

impl Drop for WriterState {
    fn drop(&mut self) {
        // Derived tables may hold statements prepared on `raw`: they go
        // before the connection does (fields drop in declaration order).
        self.derived.clear();
    }
}

impl WriterState {
    fn run(&mut self, rx: Receiver<Msg>) {
        let mut shutting_down = false;
        while !shutting_down {
            self.stats.pulse.beat(true);
            let next = if self.summaries_pending() || !self.flush_waiters.is_empty() {
                match rx.recv_timeout(self.idle_flush_after) {
                    Err(RecvTimeoutError::Timeout) => {
                        // The queue ran dry: write the summaries now.
                        self.flush_summaries();
                        continue;
                    }
                    other => other.map_err(|_| ()),
                }
            } else {
                rx.recv().map_err(|_| ())
            };
            self.stats.pulse.beat(false);
            let first = match next {
                Ok(Msg::Job(job)) => *job,
                Ok(Msg::Flush(done)) => {
                    self.flush_waiters.push(done);
                    self.flush_summaries();
                    continue;
                }
                Ok(Msg::Shutdown) | Err(()) => break,
            };
            let deadline = Instant::now() + self.batch_wait;
            let mut rows = first.batch.len();
            let mut jobs = vec![first];
            while rows < self.batch_rows {
                match rx.recv_deadline(deadline) {
                    Ok(Msg::Job(job)) => {
                        rows += job.batch.len();
                        jobs.push(*job);
                    }
                    Ok(Msg::Flush(done)) => self.flush_waiters.push(done),
                    Ok(Msg::Shutdown) => {
                        shutting_down = true;
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        shutting_down = true;
                        break;
                    }
                }
            }
            self.wait_while_paused();
            self.commit(jobs);
        }
        // Commit whatever was accepted before the shutdown.
        let mut rest = Vec::new();
        for m in rx.try_iter() {
            match m {
                Msg::Job(j) => rest.push(*j),
                Msg::Flush(done) => self.flush_waiters.push(done),
                Msg::Shutdown => {}
            }
        }
        if !rest.is_empty() {
            self.commit(rest);
        }
        self.flush_summaries();
        if !self.summaries_pending() {
            // Records the last sequence number handed out, including those of
            // hub-only records (error groups, function events) that no table
            // stores with a number, so the next start does not reuse them.
            if let Err(e) = derived::record_flush(&self.raw, self.next_seq - 1) {
                tracing::warn!(error = %e, "could not record the last sequence number");
            }
        }
        if let Err(e) = self.raw.execute("CHECKPOINT") {
            tracing::warn!(error = %e, "final checkpoint failed; DuckDB replays the WAL on next start");
        }
    }

    fn wait_while_paused(&self) {
        let mut n = self.pause.count.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            n = self
                .pause
                .resumed
                .wait(n)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn summaries_pending(&self) -> bool {
        self.derived.iter().any(|t| t.pending())
    }

    /// Writes the summaries' pending sums in a transaction of their own
    /// (the queue ran dry, a reader asked, or qyl is stopping). After a
    /// failure the idle flush waits longer each time; the sums stay
    /// pending and the next flush tries them again. Readers waiting for
    /// the flush are answered either way.
    fn flush_summaries(&mut self) {
        if self.summaries_pending() {
            self.wait_while_paused();
            let started = Instant::now();
            match self.write(&[]) {
                Ok(plan) => {
                    self.idle_flush_after = derived::FLUSH_IDLE;
                    self.finish(Vec::new(), plan, started);
                }
                Err(e) => {
                    self.idle_flush_after = (self.idle_flush_after * 2).min(Duration::from_secs(5));
                    tracing::warn!(error = %e, retry_in = ?self.idle_flush_after, "writing the summary tables failed");
                }
            }
        }
        for waiter in self.flush_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    /// Commits `jobs` in one transaction (none: only the summaries' pending
    /// sums). If that fails, each job is tried alone so that one bad batch
    /// cannot fail its neighbours.
    fn commit(&mut self, jobs: Vec<Job>) {
        let started = Instant::now();
        match self.write(&jobs) {
            Ok(plan) => {
                // Before the acks, so a client that saw its export stored
                // sees a writer that is not failing.
                self.stats.pulse.commit_result(true);
                let t = Instant::now();
                self.finish(jobs, plan, started);
                self.stats.steps.add("publish", t.elapsed());
                self.stats.pulse.beat(false);
            }
            Err(e) if jobs.len() == 1 => {
                self.stats.commit_failures.fetch_add(1, Ordering::Relaxed);
                self.stats.pulse.commit_result(false);
                self.stats.pulse.beat(false);
                tracing::error!(error = %e, "commit failed");
                for job in jobs {
                    let _ = job.ack.send(Err(WriteError::Commit(e.to_string())));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = jobs.len(), "group commit failed; retrying jobs one by one");
                for job in jobs {
                    self.commit(vec![job]);
                }
            }
        }
    }

    /// Appends and commits; returns which spans were written (the rest were
    /// duplicates). Nothing in `self` changes unless the commit succeeds.
    fn write(&mut self, jobs: &[Job]) -> Result<Plan, DuckError> {
        let mut plan = Plan::default();
        let mut fresh = HashSet::<u64, BuildHasherDefault<PreHashed>>::default();
        for job in jobs {
            let keep: Vec<bool> = job
                .batch
                .spans
                .iter()
                .map(|s| {
                    let k = span_key(&s.trace_id, &s.span_id);
                    !self.seen.contains(k) && fresh.insert(k)
                })
                .collect();
            plan.keep.push(keep);
        }
        self.raw.execute("BEGIN TRANSACTION")?;
        let stats = self.stats.clone();
        let steps = &stats.steps;
        let t = Instant::now();
        let result = self.append_all(jobs, &plan);
        steps.add("append", t.elapsed());
        // Summaries are written when due, when a reader waits for them,
        // and by a commit of nothing else.
        let flush = jobs.is_empty()
            || !self.flush_waiters.is_empty()
            || self.last_flush.elapsed() >= derived::FLUSH_EVERY;
        let result = result.and_then(|last_seq| {
            self.apply_derived(jobs, &plan, flush)?;
            if flush {
                derived::record_flush(&self.raw, last_seq)?;
            }
            Ok(())
        });
        let t = Instant::now();
        let result = result.and_then(|()| self.raw.execute("COMMIT"));
        steps.add("commit", t.elapsed());
        if let Err(e) = result {
            let _ = self.raw.execute("ROLLBACK");
            for table in &mut self.derived {
                table.rolled_back();
            }
            return Err(e);
        }
        if flush {
            self.last_flush = Instant::now();
        }
        plan.flushed = flush;
        plan.fresh = fresh.into_iter().collect();
        Ok(plan)
    }

    /// Appends every job's rows, numbering them from `next_seq` in the
    /// order `finish` expects: all spans, then all logs, then all metrics.
    /// Returns the last sequence number in use afterwards.
    fn append_all(&self, jobs: &[Job], plan: &Plan) -> Result<u64, DuckError> {
        let mut seq = self.next_seq;
        if jobs.is_empty() {
            return Ok(seq - 1);
        }
        let mut app = self.raw.appender("spans")?;
        for (job, keep) in jobs.iter().zip(&plan.keep) {
            if keep.iter().all(|k| *k) {
                seq = append_prepared(&mut app, &job.chunks.spans, SPAN_SEQ_COL, seq)?;
            } else {
                // Rare: a retried export. Rebuild without the duplicates.
                let rows: Vec<_> = job
                    .batch
                    .spans
                    .iter()
                    .zip(keep)
                    .filter(|(_, k)| **k)
                    .map(|(s, _)| s)
                    .collect();
                let chunks = Chunk::fill(SPAN_COLS, &rows, |b, s| put_span(b, s));
                seq = append_prepared(&mut app, &chunks, SPAN_SEQ_COL, seq)?;
            }
        }
        app.flush()?;
        drop(app);
        let mut app = self.raw.appender("logs")?;
        for job in jobs {
            seq = append_prepared(&mut app, &job.chunks.logs, LOG_COLS.len() - 1, seq)?;
        }
        app.flush()?;
        drop(app);
        let mut app = self.raw.appender("metrics")?;
        for job in jobs {
            seq = append_prepared(&mut app, &job.chunks.metrics, METRIC_COLS.len() - 1, seq)?;
        }
        app.flush()?;
        Ok(seq - 1)
    }

    /// Lets each derived table write its share of the commit.
    fn apply_derived(&mut self, jobs: &[Job], plan: &Plan, flush: bool) -> Result<(), DuckError> {
        if self.derived.is_empty() {
            return Ok(());
        }
        let rows = Committing {
            batches: jobs.iter().map(|j| &j.batch).collect(),
            keep: &plan.keep,
            flush,
        };
        for table in &mut self.derived {
            let t = Instant::now();
            let result = table.apply(&self.raw, &rows);
            self.stats.steps.add(table.name(), t.elapsed());
            result.map_err(|e| DuckError {
                context: format!("updating {}: {}", table.name(), e.context),
                message: e.message,
            })?;
        }
        Ok(())
    }

    /// After a successful commit: remember span ids, publish, answer.
    /// Sequence numbers are handed out in the order `append_all` used.
    fn finish(&mut self, jobs: Vec<Job>, plan: Plan, started: Instant) {
        for k in plan.fresh {
            self.seen.insert(k);
        }
        let mut events = Vec::new();
        let mut logs = Vec::new();
        let mut metrics = Vec::new();
        let mut acks = Vec::with_capacity(jobs.len());
        let mut seq = self.next_seq;
        let mut chunks = Vec::with_capacity(jobs.len());
        for (job, keep) in jobs.into_iter().zip(plan.keep) {
            chunks.push(job.chunks);
            let mut done = Committed {
                logs: job.batch.logs.len(),
                metrics: job.batch.metrics.len(),
                ..Committed::default()
            };
            for (span, k) in job.batch.spans.into_iter().zip(keep) {
                if k {
                    events.push(Event {
                        seq,
                        record: Record::Span(Arc::new(span)),
                    });
                    seq += 1;
                    done.spans += 1;
                } else {
                    done.duplicate_spans += 1;
                }
            }
            logs.extend(job.batch.logs);
            metrics.extend(job.batch.metrics);
            acks.push((job.ack, done));
        }
        let (spans, log_rows, metric_rows) = (events.len(), logs.len(), metrics.len());
        for log in logs {
            events.push(Event {
                seq,
                record: Record::Log(Arc::new(log)),
            });
            seq += 1;
        }
        for point in metrics {
            events.push(Event {
                seq,
                record: Record::Metric(Arc::new(point)),
            });
            seq += 1;
        }
        let mut derived_records = Vec::new();
        for table in &mut self.derived {
            table.committed(&mut derived_records);
        }
        // Before the answers: a reader that has an answer and sees no
        // pending sums must find this commit's in the tables.
        self.summaries_pending
            .store(self.summaries_pending(), Ordering::Release);
        if plan.flushed {
            for waiter in self.flush_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
        let rows = events.len();
        for record in derived_records {
            events.push(Event { seq, record });
            seq += 1;
        }
        self.next_seq = seq;
        let dups: usize = acks.iter().map(|(_, d)| d.duplicate_spans).sum();
        self.stats
            .rows_committed
            .fetch_add(rows as u64, Ordering::Relaxed);
        if !acks.is_empty() {
            // A commit of pending summaries alone is not a group commit.
            self.stats.batches_committed.fetch_add(1, Ordering::Relaxed);
        }
        self.stats
            .duplicate_spans
            .fetch_add(dups as u64, Ordering::Relaxed);
        for (counter, n) in [
            (&self.stats.spans_committed, spans),
            (&self.stats.logs_committed, log_rows),
            (&self.stats.metrics_committed, metric_rows),
        ] {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
        if !acks.is_empty() {
            let took = started.elapsed();
            self.stats
                .last_commit_micros
                .store(took.as_micros() as u64, Ordering::Relaxed);
            self.stats.commit_duration.record(took);
        }
        // Publish before answering, so that once an export returns, live
        // streams and functions already have its records (publishing is a
        // few hundred nanoseconds per record and never waits on consumers).
        let evicted = self.hub.publish(events);
        for (ack, done) in acks {
            let _ = ack.send(Ok(done));
        }
        // Fails only if the reaper is gone; the garbage is then freed here.
        let _ = self.reaper.send(Box::new((evicted, chunks)));
    }
}

#[derive(Default)]
struct Plan {
    /// Per job, per span: write it (true) or skip it as a duplicate.
    keep: Vec<Vec<bool>>,
    fresh: Vec<u64>,
    /// The summaries wrote their pending sums in this commit.
    flushed: bool,
}

/// A batch's rows as data chunks, `ingest_seq` still unset.
struct Prepared {
    spans: Vec<Chunk>,
    logs: Vec<Chunk>,
    metrics: Vec<Chunk>,
}

impl Prepared {
    fn new(batch: &Batch) -> Prepared {
        Prepared {
            spans: Chunk::fill(SPAN_COLS, &batch.spans, put_span),
            logs: Chunk::fill(LOG_COLS, &batch.logs, put_log),
            metrics: Chunk::fill(METRIC_COLS, &batch.metrics, put_metric),
        }
    }
}

/// Numbers the chunks' rows from `seq` (the last column is `ingest_seq`)
/// and appends them; returns the next free sequence number.
fn append_prepared(
    app: &mut ChunkAppender<'_>,
    chunks: &[Chunk],
    seq_col: usize,
    mut seq: u64,
) -> Result<u64, DuckError> {
    for chunk in chunks {
        chunk.number_rows(seq_col, seq);
        app.append(chunk)?;
        seq += chunk.len() as u64;
    }
    Ok(seq)
}

/// Appends span rows (numbered from `first_seq`) in the open transaction of
/// `raw`; used by the benchmark to measure the raw Appender rate.
pub fn append_spans(raw: &RawConn, spans: &[SpanRecord], first_seq: u64) -> Result<(), DuckError> {
    let chunks = Chunk::fill(SPAN_COLS, spans, put_span);
    let mut app = raw.appender("spans")?;
    append_prepared(&mut app, &chunks, SPAN_SEQ_COL, first_seq)?;
    app.flush()
}

use Col::{Bigint, Boolean, Double, Integer, UBigint, UInteger, Varchar};

/// Where `ingest_seq` is among the span columns (the last of migration 1;
/// later migrations add columns after it).
const SPAN_SEQ_COL: usize = 33;

/// The `spans` columns in table order (migrations 1 and 2).
const SPAN_COLS: &[Col] = &[
    Varchar, Varchar, Varchar, Varchar, Varchar, Varchar, // ids, state, name, kind
    UBigint, UBigint, UBigint, // start, end, duration
    Varchar, Varchar, Varchar, Varchar, Varchar, Varchar, Varchar,
    Varchar, // status…session
    Varchar, Varchar, Varchar, Varchar, // gen_ai provider, operation, models
    Bigint, Bigint, Bigint, // tokens
    Varchar, Double, // finish reasons, cost
    Varchar, Varchar, Varchar, Varchar, // attributes, resource, events, links
    UInteger, UInteger, UInteger, // dropped counts
    UBigint,  // ingest_seq
    Bigint, Bigint, // gen_ai cache write, reasoning tokens (migration 2)
    Varchar, Varchar, Varchar, Varchar, // tool name, tool call id, agent, conversation
    Double, Varchar, Varchar, // time to first chunk, error.type, cost source
];

fn put_span(b: &mut ChunkBuilder<'_>, s: &SpanRecord) {
    let g = &s.genai;
    b.str(&s.trace_id);
    b.str(&s.span_id);
    b.opt_str(s.parent_span_id.as_deref());
    b.opt_str(s.trace_state.as_deref());
    b.str(&s.name);
    b.str(s.kind);
    b.u64(s.start_time_unix_nano);
    b.u64(s.end_time_unix_nano);
    b.u64(s.duration_ns);
    b.str(s.status_code);
    b.opt_str(s.status_message.as_deref());
    b.str(&s.service_name);
    b.opt_str(s.service_version.as_deref());
    b.opt_str(s.deployment_environment.as_deref());
    b.opt_str(s.scope_name.as_deref());
    b.opt_str(s.scope_version.as_deref());
    b.opt_str(s.session_id.as_deref());
    b.opt_str(g.provider.as_deref());
    b.opt_str(g.operation.as_deref());
    b.opt_str(g.request_model.as_deref());
    b.opt_str(g.response_model.as_deref());
    b.opt_i64(g.input_tokens);
    b.opt_i64(g.output_tokens);
    b.opt_i64(g.cache_read_tokens);
    b.opt_str(g.finish_reasons.as_deref());
    b.opt_f64(g.cost_usd);
    b.str(&s.attributes);
    b.str(&s.resource);
    b.str(&s.events);
    b.str(&s.links);
    b.u32(s.dropped_attributes_count);
    b.u32(s.dropped_events_count);
    b.u32(s.dropped_links_count);
    b.u64(0); // ingest_seq: numbered when appended
    b.opt_i64(g.cache_write_tokens);
    b.opt_i64(g.reasoning_tokens);
    b.opt_str(g.tool_name.as_deref());
    b.opt_str(g.tool_call_id.as_deref());
    b.opt_str(g.agent_name.as_deref());
    b.opt_str(g.conversation_id.as_deref());
    b.opt_f64(g.time_to_first_chunk_ms);
    b.opt_str(g.error_type.as_deref());
    b.opt_str(g.cost_source);
}

/// The `logs` columns in table order (migration 1).
const LOG_COLS: &[Col] = &[
    UBigint, UBigint, Varchar, Varchar, Integer, Varchar, Varchar, // time…body
    Varchar, Varchar, Varchar, Varchar, Varchar, Varchar, // service…event_name
    UInteger, Varchar, Varchar, UInteger, UBigint, // flags…ingest_seq
];

fn put_log(b: &mut ChunkBuilder<'_>, l: &LogRecord) {
    b.u64(l.time_unix_nano);
    b.u64(l.observed_time_unix_nano);
    b.opt_str(l.trace_id.as_deref());
    b.opt_str(l.span_id.as_deref());
    b.i32(l.severity_number);
    b.opt_str(l.severity_text.as_deref());
    b.opt_str(l.body.as_deref());
    b.str(&l.service_name);
    b.opt_str(l.service_version.as_deref());
    b.opt_str(l.deployment_environment.as_deref());
    b.opt_str(l.scope_name.as_deref());
    b.opt_str(l.session_id.as_deref());
    b.opt_str(l.event_name.as_deref());
    b.u32(l.flags);
    b.str(&l.attributes);
    b.str(&l.resource);
    b.u32(l.dropped_attributes_count);
    b.u64(0); // ingest_seq: numbered when appended
}

/// The `metrics` columns in table order (migration 1).
const METRIC_COLS: &[Col] = &[
    UBigint, UBigint, Varchar, Varchar, Varchar, Varchar, Varchar,
    Boolean, // time…is_monotonic
    Double, UBigint, Double, Double, Double, Varchar, Varchar, // value…exemplars
    Varchar, Varchar, Varchar, Varchar, UInteger, UBigint, // service…ingest_seq
];

fn put_metric(b: &mut ChunkBuilder<'_>, m: &MetricPoint) {
    b.u64(m.time_unix_nano);
    b.u64(m.start_time_unix_nano);
    b.str(&m.name);
    b.opt_str(m.description.as_deref());
    b.opt_str(m.unit.as_deref());
    b.str(m.kind);
    b.opt_str(m.temporality);
    b.opt_bool(m.is_monotonic);
    b.opt_f64(m.value);
    b.opt_u64(m.count);
    b.opt_f64(m.sum);
    b.opt_f64(m.min);
    b.opt_f64(m.max);
    b.opt_str(m.histogram.as_deref());
    b.opt_str(m.exemplars.as_deref());
    b.str(&m.service_name);
    b.opt_str(m.scope_name.as_deref());
    b.str(&m.attributes);
    b.str(&m.resource);
    b.u32(m.flags);
    b.u64(0); // ingest_seq: numbered when appended
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{open, StorageOptions};

    fn span(trace: u8, span: u8, message: Option<&str>) -> SpanRecord {
        SpanRecord {
            trace_id: format!("{trace:032x}"),
            span_id: format!("{span:016x}"),
            name: format!("s{span}"),
            kind: "INTERNAL",
            status_code: "UNSET",
            status_message: message.map(str::to_string),
            service_name: "svc".into(),
            attributes: "{}".into(),
            resource: "{}".into(),
            events: "[]".into(),
            links: "[]".into(),
            ..Default::default()
        }
    }

    fn batch(spans: Vec<SpanRecord>) -> Batch {
        Batch {
            spans,
            ..Default::default()
        }
    }

    fn start(config: WriterConfig) -> (Writer, Arc<Hub>, Conn) {
        let db = open(&StorageOptions::in_memory()).unwrap();
        let reader = db.connect().unwrap();
        let hub = Arc::new(Hub::new(100));
        (
            Writer::start(db, hub.clone(), config, false).unwrap(),
            hub,
            reader,
        )
    }

    fn count(conn: &Conn) -> i64 {
        conn.query_row("SELECT count(*) FROM spans", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn retried_spans_are_stored_once() {
        let (writer, hub, reader) = start(WriterConfig::default());
        let h = writer.handle();
        let first = h.submit(batch(vec![
            span(1, 1, None),
            span(1, 2, None),
            span(1, 1, None),
        ]));
        let done = first.unwrap().blocking_recv().unwrap().unwrap();
        assert_eq!((done.spans, done.duplicate_spans), (2, 1));
        let again = h.submit(batch(vec![span(1, 2, None), span(1, 3, None)]));
        let done = again.unwrap().blocking_recv().unwrap().unwrap();
        assert_eq!((done.spans, done.duplicate_spans), (1, 1));
        assert_eq!(count(&reader), 3);
        let seqs: Vec<u64> = hub.recent(10, |_| true).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        writer.shutdown();
    }

    #[test]
    fn a_failing_batch_does_not_fail_its_neighbours() {
        let (writer, hub, reader) = start(WriterConfig {
            batch_wait: Duration::from_millis(200),
            ..WriterConfig::default()
        });
        // A constraint the good batch satisfies and the bad one does not:
        // DuckDB reports it only when the Appender flushes.
        reader
            .execute_batch("ALTER TABLE spans ALTER COLUMN status_message SET NOT NULL")
            .unwrap();
        let h = writer.handle();
        let pause = h.pause();
        let good = h.submit(batch(vec![span(2, 1, Some("ok"))])).unwrap();
        let bad = h.submit(batch(vec![span(2, 2, None)])).unwrap();
        drop(pause);
        assert_eq!(good.blocking_recv().unwrap().unwrap().spans, 1);
        match bad.blocking_recv().unwrap() {
            Err(WriteError::Commit(msg)) => assert!(msg.contains("NOT NULL"), "{msg}"),
            other => panic!("expected a commit error, got {other:?}"),
        }
        assert_eq!(count(&reader), 1);
        assert_eq!(hub.recent(10, |_| true).len(), 1);
        assert_eq!(h.stats().commit_failures.load(Ordering::Relaxed), 1);
        // A span that failed is not remembered as stored: its retry is kept.
        reader
            .execute_batch("ALTER TABLE spans ALTER COLUMN status_message DROP NOT NULL")
            .unwrap();
        let retry = h.submit(batch(vec![span(2, 2, None)])).unwrap();
        assert_eq!(retry.blocking_recv().unwrap().unwrap().spans, 1);
        writer.shutdown();
    }

    #[test]
    fn the_pulse_tells_idle_from_stuck_and_failing_from_one_bad_batch() {
        let (writer, _hub, reader) = start(WriterConfig {
            batch_wait: Duration::from_millis(1),
            ..WriterConfig::default()
        });
        let h = writer.handle();
        let pulse = &h.stats().pulse;
        let later = |d: Duration| unix_ms() + d.as_millis() as u64;
        // Idle for any length of time is running, not stuck.
        assert_eq!(
            pulse.condition_at(later(STUCK_AFTER * 10)),
            WriterCondition::Running
        );
        // Held before its commit (as a wedged step would be), it is stuck
        // once STUCK_AFTER has passed, and not before.
        let pause = h.pause();
        let held = h.submit(batch(vec![span(7, 1, Some("ok"))])).unwrap();
        let wait_idle = |idle: bool| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while pulse.idle.load(Ordering::Acquire) != idle && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        wait_idle(false);
        assert_eq!(pulse.condition(), WriterCondition::Running);
        match pulse.condition_at(later(STUCK_AFTER)) {
            WriterCondition::Stuck(busy) => assert!(busy >= STUCK_AFTER),
            other => panic!("expected Stuck, got {other:?}"),
        }
        drop(pause);
        held.blocking_recv().unwrap().unwrap();
        wait_idle(true);
        assert_eq!(
            pulse.condition_at(later(STUCK_AFTER * 10)),
            WriterCondition::Running
        );
        // Commits failing in a row: one is a bad batch, FAILING_AFTER is a
        // writer that cannot store; a success clears it.
        reader
            .execute_batch("ALTER TABLE spans ALTER COLUMN status_message SET NOT NULL")
            .unwrap();
        for i in 0..FAILING_AFTER {
            let bad = h.submit(batch(vec![span(8, i as u8 + 1, None)])).unwrap();
            assert!(bad.blocking_recv().unwrap().is_err());
            let expected = if i + 1 >= FAILING_AFTER {
                WriterCondition::Failing(i + 1)
            } else {
                WriterCondition::Running
            };
            assert_eq!(pulse.condition(), expected);
        }
        let good = h.submit(batch(vec![span(8, 9, Some("ok"))])).unwrap();
        good.blocking_recv().unwrap().unwrap();
        assert_eq!(pulse.condition(), WriterCondition::Running);
        let stats = h.stats.clone();
        writer.shutdown();
        assert_eq!(stats.pulse.condition(), WriterCondition::Stopped);
    }

    #[test]
    fn a_failing_derived_table_rolls_the_commit_back() {
        let (writer, hub, reader) = start(WriterConfig::default());
        let h = writer.handle();
        let lookup = |c: &Conn| -> i64 {
            c.query_row("SELECT count(*) FROM trace_index", [], |r| r.get(0))
                .unwrap()
        };
        let done = h.submit(batch(vec![span(6, 1, None)])).unwrap();
        assert_eq!(done.blocking_recv().unwrap().unwrap().spans, 1);
        assert_eq!((count(&reader), lookup(&reader)), (1, 1));
        // The trace lookup now fails inside the commit's transaction.
        reader
            .execute_batch("ALTER TABLE trace_index RENAME TO trace_index_away")
            .unwrap();
        let failed = h.submit(batch(vec![span(6, 2, None)])).unwrap();
        match failed.blocking_recv().unwrap() {
            Err(WriteError::Commit(msg)) => assert!(msg.contains("trace_index"), "{msg}"),
            other => panic!("expected a commit error, got {other:?}"),
        }
        // Neither the span nor its lookup row was stored or published.
        reader
            .execute_batch("ALTER TABLE trace_index_away RENAME TO trace_index")
            .unwrap();
        assert_eq!((count(&reader), lookup(&reader)), (1, 1));
        assert_eq!(hub.recent(10, |_| true).len(), 1);
        let retry = h.submit(batch(vec![span(6, 2, None)])).unwrap();
        assert_eq!(retry.blocking_recv().unwrap().unwrap().spans, 1);
        assert_eq!((count(&reader), lookup(&reader)), (2, 2));
        writer.shutdown();
    }

    #[test]
    fn a_failing_summary_flush_keeps_its_sums_for_the_next_one() {
        let (writer, _hub, reader) = start(WriterConfig::default());
        let h = writer.handle();
        let sync = h.summary_sync();
        let session_spans = |c: &Conn| -> Option<i64> {
            c.query_row(
                "SELECT span_count FROM session_entities WHERE session_id = 's'",
                [],
                |r| r.get(0),
            )
            .ok()
        };
        let in_session = |n: u8| {
            let mut s = span(7, n, None);
            s.session_id = Some("s".into());
            batch(vec![s])
        };
        h.submit(in_session(1))
            .unwrap()
            .blocking_recv()
            .unwrap()
            .unwrap();
        sync.settle_blocking();
        assert_eq!(session_spans(&reader), Some(1));
        reader
            .execute_batch("ALTER TABLE session_entities RENAME TO session_entities_away")
            .unwrap();
        // The export itself commits; its sums wait in memory, and the
        // flush a reader asks for fails and is rolled back whole.
        let done = h.submit(in_session(2)).unwrap().blocking_recv().unwrap();
        assert_eq!(done.unwrap().spans, 1);
        sync.settle_blocking();
        let traces: i64 = reader
            .query_row("SELECT count(*) FROM session_traces", [], |r| r.get(0))
            .unwrap();
        assert_eq!(traces, 1, "the failed flush left no session_traces rows");
        reader
            .execute_batch("ALTER TABLE session_entities_away RENAME TO session_entities")
            .unwrap();
        // The next flush writes the kept sums once.
        sync.settle_blocking();
        assert_eq!(session_spans(&reader), Some(2));
        assert_eq!(count(&reader), 2);
        writer.shutdown();
    }

    #[test]
    fn a_full_queue_refuses_and_keeps_what_it_accepted() {
        let (writer, _hub, reader) = start(WriterConfig {
            queue_rows: 3,
            ..WriterConfig::default()
        });
        let h = writer.handle();
        let pause = h.pause();
        let a = h
            .submit(batch(vec![span(3, 1, None), span(3, 2, None)]))
            .unwrap();
        assert_eq!(h.queued_rows(), 2);
        match h.submit(batch(vec![span(3, 3, None), span(3, 4, None)])) {
            Err(WriteError::QueueFull { queued: 2 }) => {}
            Err(e) => panic!("expected QueueFull, got {e:?}"),
            Ok(_) => panic!("expected QueueFull, got a queued job"),
        }
        let b = h.submit(batch(vec![span(3, 5, None)])).unwrap();
        drop(pause);
        assert_eq!(a.blocking_recv().unwrap().unwrap().spans, 2);
        assert_eq!(b.blocking_recv().unwrap().unwrap().spans, 1);
        assert_eq!(h.queued_rows(), 0);
        assert_eq!(count(&reader), 3);
        assert_eq!(h.stats().refused_exports.load(Ordering::Relaxed), 1);
        writer.shutdown();
    }

    #[test]
    fn shutdown_commits_what_was_accepted_then_refuses() {
        let (writer, _hub, reader) = start(WriterConfig {
            batch_wait: Duration::from_secs(5),
            ..WriterConfig::default()
        });
        let h = writer.handle();
        let a = h.submit(batch(vec![span(4, 1, None)])).unwrap();
        writer.shutdown();
        assert_eq!(a.blocking_recv().unwrap().unwrap().spans, 1);
        assert!(matches!(
            h.submit(batch(vec![span(4, 2, None)])),
            Err(WriteError::Closed)
        ));
        assert_eq!(count(&reader), 1);
    }

    #[test]
    fn commit_histogram_is_cumulative_and_counts_every_commit() {
        let h = DurationHistogram::default();
        h.record(Duration::from_micros(500));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(60));
        let snap = h.snapshot();
        assert_eq!(snap.count, 3);
        assert_eq!(snap.buckets[0], (0.001, 1));
        assert_eq!(snap.buckets[2], (0.005, 2));
        assert_eq!(snap.buckets.last(), Some(&(5.0, 2)));
        assert!((snap.sum_secs - 60.0035).abs() < 1e-9);

        // The writer records every successful commit, split by signal.
        let (writer, _hub, _reader) = start(WriterConfig::default());
        let h = writer.handle();
        let done = h.submit(batch(vec![span(5, 1, None), span(5, 2, None)]));
        done.unwrap().blocking_recv().unwrap().unwrap();
        let stats = h.stats();
        assert_eq!(stats.spans_committed.load(Ordering::Relaxed), 2);
        assert_eq!(stats.logs_committed.load(Ordering::Relaxed), 0);
        assert_eq!(stats.commit_duration.snapshot().count, 1);
        writer.shutdown();
    }
}
