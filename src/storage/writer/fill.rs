//! How long the writer gathers rows before it commits, and where a gather
//! ends.
//!
//! A commit of a full row group (32,768 rows in a new file; `batch_rows`
//! matches it) is compressed into the database file as it commits; a
//! smaller one waits uncompressed in memory until the next checkpoint
//! compresses it, which costs more CPU per span and makes that checkpoint
//! (during which nothing commits) long. Committing every `batch_ms` at half
//! the top rate made commits of ~1k rows and checkpoints of 0.5–1 s. So
//! when the recent rate would gather a full commit within `fill_wait`, the
//! writer waits for it instead. A commit that still ends early leaves a row
//! group part full, and the writer's next gather takes just what fills it
//! ([`CommitFill::gather_target`]): a whole row group written after a
//! partial one made the checkpoint merge the two, which cost more than the
//! wait saved.
//!
//! Waiting costs visibility, not export latency: with a database file an
//! export is answered once it is journaled. A reader that needs an export's
//! rows marks the journal entry it waits for (`VisibilityMarks::hurry`),
//! and the writer then commits at the usual `batch_ms`, unless the load
//! fills the commit within half a second anyway
//! ([`CommitFill::read_deadline`]).

use std::time::{Duration, Instant};

/// The gathering policy of the writer thread: the arrival rate it has seen
/// and the longest it may wait for a full commit.
pub(super) struct CommitFill {
    batch_rows: usize,
    /// The database file's row group.
    row_group_rows: u64,
    batch_wait: Duration,
    fill_wait: Duration,
    /// Rows per second over recent gathers (each from the start of one to
    /// the start of the next, so idle time counts), smoothed.
    rate: f64,
    /// When the current gather started.
    started: Option<Instant>,
}

/// The longest a reader waits for a full commit's rows to arrive (see
/// [`CommitFill::read_deadline`]): a full commit at half the top rate.
pub(super) const READ_FILL_WAIT: Duration = Duration::from_millis(500);

/// Weight of the newest gather in the smoothed rate: a change of load
/// shows within a few commits, one slow commit does not flip the policy.
const RATE_WEIGHT: f64 = 0.3;

impl CommitFill {
    /// `fill_wait` zero never waits for a full commit.
    pub(super) fn new(
        batch_rows: usize,
        row_group_rows: u64,
        batch_wait: Duration,
        fill_wait: Duration,
    ) -> Self {
        CommitFill {
            batch_rows: batch_rows.max(1),
            row_group_rows: row_group_rows.max(1),
            batch_wait,
            fill_wait,
            rate: 0.0,
            started: None,
        }
    }

    /// A gather starts at `now` with its first job: the previous gather's
    /// rows (`previous_rows`, over the time since it started) update the
    /// rate. Returns when this gather commits at the latest, unless its rows
    /// reach `batch_rows` first.
    pub(super) fn start(&mut self, now: Instant, previous_rows: usize) -> Instant {
        if let Some(before) = self.started.replace(now) {
            let secs = now.saturating_duration_since(before).as_secs_f64();
            if secs > 0.0 {
                let sample = previous_rows as f64 / secs;
                self.rate = if self.rate == 0.0 {
                    sample
                } else {
                    self.rate + RATE_WEIGHT * (sample - self.rate)
                };
            }
        }
        now + self.wait()
    }

    /// The rows a gather ends at, with `span_rows` spans in the table:
    /// `batch_rows`, or fewer when the table's last row group is partly
    /// filled (a commit that ended at its deadline), so that the next
    /// commit fills it and those after it are whole row groups again.
    pub(super) fn gather_target(&self, span_rows: u64) -> usize {
        match span_rows % self.row_group_rows {
            0 => self.batch_rows,
            open => usize::try_from(self.row_group_rows - open)
                .unwrap_or(usize::MAX)
                .min(self.batch_rows),
        }
    }

    /// When a gather that started at `started` commits because a reader
    /// waits for its rows: at once (after `batch_wait`), unless the recent
    /// rate fills its `target` rows within [`READ_FILL_WAIT`], when the
    /// reader waits for the full commit instead (with a quarter's slack,
    /// so a gather that falls behind still ends soon). Under load a reader
    /// every second (an open dashboard) otherwise cut every commit short:
    /// 6–27k rows, 13–24 µs of CPU per span instead of 10, and checkpoints
    /// of the part-filled row groups that held exports up for 0.3 s.
    pub(super) fn read_deadline(&self, started: Instant, target: usize) -> Instant {
        let fills_in = target as f64 / self.rate;
        if self.waits() && fills_in <= READ_FILL_WAIT.as_secs_f64() {
            started + Duration::from_secs_f64(fills_in * 1.25).max(self.batch_wait)
        } else {
            started + self.batch_wait
        }
    }

    /// Whether the recent rate makes a gather wait for a full commit.
    pub(super) fn waits(&self) -> bool {
        self.wait() == self.fill_wait && self.fill_wait > self.batch_wait
    }

    /// `fill_wait` when the rate gathers a full commit within it, otherwise
    /// `batch_wait`.
    fn wait(&self) -> Duration {
        let fills_in = self.batch_rows as f64 / self.rate;
        if self.fill_wait > self.batch_wait && fills_in <= self.fill_wait.as_secs_f64() {
            self.fill_wait
        } else {
            self.batch_wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// `n` gathers of `rows` rows every `every` from `now`; returns each
    /// gather's wait.
    fn waits(
        fill: &mut CommitFill,
        now: &mut Instant,
        rows: usize,
        every: Duration,
        n: usize,
    ) -> Vec<Duration> {
        let mut out = Vec::new();
        for _ in 0..n {
            *now += every;
            out.push(fill.start(*now, rows) - *now);
        }
        out
    }

    #[test]
    fn a_rate_that_fills_a_commit_in_time_waits_for_it() {
        // 1,000 rows every 30 ms: 33k rows/s fills 8,192 in ~250 ms.
        let mut fill = CommitFill::new(8192, 8192, 5 * MS, 400 * MS);
        let w = waits(&mut fill, &mut Instant::now(), 1000, 30 * MS, 5);
        assert_eq!(w[0], 5 * MS, "no rate known before the first gather");
        assert!(w[1..].iter().all(|w| *w == 400 * MS), "{w:?}");
    }

    #[test]
    fn a_slow_rate_commits_at_batch_wait() {
        // 100 rows every 20 ms: 5k rows/s would take 1.6 s to fill.
        let mut fill = CommitFill::new(8192, 8192, 5 * MS, 400 * MS);
        let w = waits(&mut fill, &mut Instant::now(), 100, 20 * MS, 10);
        assert!(w.iter().all(|w| *w == 5 * MS), "{w:?}");
    }

    #[test]
    fn the_wait_ends_within_a_few_gathers_of_the_load_dropping() {
        let mut fill = CommitFill::new(8192, 8192, 5 * MS, 400 * MS);
        let now = &mut Instant::now();
        waits(&mut fill, now, 8192, 100 * MS, 5);
        // The load drops to a trickle: a gather that waited 400 ms for 10 rows.
        let w = waits(&mut fill, now, 10, 400 * MS, 10);
        assert!(w[..2].contains(&(400 * MS)), "{w:?}");
        assert!(w[5..].iter().all(|w| *w == 5 * MS), "{w:?}");
    }

    #[test]
    fn zero_fill_wait_never_waits() {
        let mut fill = CommitFill::new(8192, 8192, 5 * MS, Duration::ZERO);
        let w = waits(&mut fill, &mut Instant::now(), 8192, MS, 5);
        assert!(w.iter().all(|w| *w == 5 * MS), "{w:?}");
    }

    #[test]
    fn a_reader_waits_for_a_full_commit_only_when_the_load_fills_it_soon() {
        let mut fill = CommitFill::new(32_768, 32_768, 5 * MS, 1600 * MS);
        let now = &mut Instant::now();
        // 130k rows/s: 32,768 rows in ~250 ms; the reader waits ~315 ms.
        waits(&mut fill, now, 13_000, 100 * MS, 5);
        let wait = fill.read_deadline(*now, 32_768) - *now;
        assert!(wait > 250 * MS && wait < 400 * MS, "{wait:?}");
        // A row group's last 1,000 rows come within a few milliseconds.
        let wait = fill.read_deadline(*now, 1_000) - *now;
        assert!(wait < 20 * MS && wait >= 5 * MS, "{wait:?}");
        // 40k rows/s fills the commit in 0.8 s, within fill_ms but past
        // what a reader waits: the reader gets its rows at once.
        waits(&mut fill, now, 4_000, 100 * MS, 10);
        assert!(fill.waits());
        assert_eq!(fill.read_deadline(*now, 32_768) - *now, 5 * MS);
    }

    #[test]
    fn a_gather_ends_where_the_row_group_ends() {
        let fill = CommitFill::new(32_768, 32_768, 5 * MS, 400 * MS);
        assert_eq!(fill.gather_target(0), 32_768);
        assert_eq!(fill.gather_target(3 * 32_768), 32_768);
        assert_eq!(fill.gather_target(32_768 + 1_000), 31_768);
        // A file made with 8,192-row groups takes commits of several.
        let old_file = CommitFill::new(32_768, 8_192, 5 * MS, 400 * MS);
        assert_eq!(old_file.gather_target(5 * 8_192), 32_768);
        assert_eq!(old_file.gather_target(5 * 8_192 + 192), 8_000);
        // A batch smaller than the row group never grows past itself.
        let small = CommitFill::new(1_000, 32_768, 5 * MS, 400 * MS);
        assert_eq!(small.gather_target(10), 1_000);
    }
}
