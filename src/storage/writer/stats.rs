//! What the writer counts and how it shows it is alive: the counters behind
//! `/metrics`, and the heartbeat `/health/live` and `/health/ready` read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counters for `/metrics` and `/health`.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub rows_committed: AtomicU64,
    pub batches_committed: AtomicU64,
    pub commit_failures: AtomicU64,
    /// Answered batches whose commit failed, kept in the journal until a
    /// commit stores them (`journal::hold`).
    pub held_batches: AtomicU64,
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
    /// How long each of the writer's checkpoints took: no commit runs
    /// meanwhile, so queries wait up to this long for fresh exports.
    pub checkpoint_duration: DurationHistogram,
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
    pub(super) alive: AtomicBool,
    pub(super) idle: AtomicBool,
    /// Milliseconds since the Unix epoch.
    pub(super) stamp_ms: AtomicU64,
    pub(super) failing_commits: AtomicU64,
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
    pub(super) fn beat(&self, idle: bool) {
        self.stamp_ms.store(unix_ms(), Ordering::Relaxed);
        self.idle.store(idle, Ordering::Release);
    }

    pub(super) fn commit_result(&self, ok: bool) {
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
    pub(super) fn condition_at(&self, now_ms: u64) -> WriterCondition {
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
pub(super) struct AliveGuard(pub(super) Arc<WriterStats>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.pulse.alive.store(false, Ordering::Release);
    }
}

pub(super) fn unix_ms() -> u64 {
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
    pub(super) fn add(&self, step: &'static str, took: Duration) {
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
    pub(super) buckets: [AtomicU64; COMMIT_BUCKETS_SECS.len()],
    pub(super) sum_micros: AtomicU64,
    pub(super) count: AtomicU64,
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
