//! The writer thread: takes jobs off the queue (or the journal thread),
//! groups them, skips retried spans, appends their rows as data chunks,
//! updates the derived tables, commits, then publishes the committed records
//! to the hub and answers each export the journal has not answered already.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::sync::oneshot;

use super::checkpoint::Checkpoints;
use super::derived::resources::ResourceIds;
use super::derived::{self, Committing, Derived};
use super::fill::CommitFill;
use super::handle::VisibilityMarks;
use super::journal;
use super::WriterStats;
use super::READS_WAIT;
use super::{
    put_log, put_metric, put_span, Committed, Garbage, Job, Msg, PauseState, PreHashed,
    RecentSpans, WriteError, LOG_COLS, METRIC_COLS, SPAN_COLS,
};
use crate::model::{Record, Shared};
use crate::storage::duck::RawConn;
use crate::storage::DuckError;
use crate::stream::{Event, Hub};

pub(super) struct WriterState {
    pub(super) raw: RawConn,
    pub(super) hub: Arc<Hub>,
    pub(super) seen: RecentSpans,
    /// The span keys the last `write` adds to `seen` once `finish` has it
    /// committed; kept between commits so the set does not grow from empty
    /// in each one.
    pub(super) fresh_keys: HashSet<u64, BuildHasherDefault<PreHashed>>,
    pub(super) next_seq: u64,
    pub(super) stats: Arc<WriterStats>,
    pub(super) pause: Arc<PauseState>,
    pub(super) batch_rows: usize,
    pub(super) batch_wait: Duration,
    /// Summary tables updated in each commit's transaction (sessions,
    /// error groups…); see `writer::derived`.
    pub(super) derived: Vec<Box<dyn Derived>>,
    /// When summary tables last wrote the sums they keep in memory.
    pub(super) last_flush: Instant,
    /// How long the queue must stay empty before pending sums are written.
    pub(super) idle_flush_after: Duration,
    /// Frees what commits leave behind, off this thread.
    pub(super) reaper: Sender<Garbage>,
    /// Shared with [`SummarySync`]: whether sums wait in memory.
    pub(super) summaries_pending: Arc<AtomicBool>,
    /// Readers waiting for the next flush of the summaries.
    pub(super) flush_waiters: Vec<oneshot::Sender<()>>,
    /// With a journal: where it is, and the marks readers wait on.
    pub(super) journal: Option<(PathBuf, Arc<VisibilityMarks>)>,
    /// For a file: when to checkpoint (between this thread's commits).
    pub(super) checkpoints: Option<Checkpoints>,
    /// With a journal: whether to wait for a full commit.
    pub(super) fill: Option<CommitFill>,
    /// The reads are shut out for the whole of the current commit (a retry
    /// after a read took the memory it needed; see `commit_group`).
    pub(super) reads_shut_out: bool,
    /// With batches held in the journal (`journal::hold`): the earliest a
    /// successful commit tries them again.
    pub(super) retry_held_at: Option<Instant>,
}

/// How often held batches are tried again while commits succeed: a batch
/// that cannot be stored (whatever DuckDB refuses in it) then costs one
/// failed append a second, not one per commit.
const RETRY_HELD_EVERY: Duration = Duration::from_secs(1);

impl Drop for WriterState {
    fn drop(&mut self) {
        // Derived tables may hold statements prepared on `raw`: they go
        // before the connection does (fields drop in declaration order).
        self.derived.clear();
    }
}

impl WriterState {
    pub(super) fn run(&mut self, rx: Receiver<Msg>) {
        let mut shutting_down = false;
        // Since when the queue has been empty (for the summaries' idle flush).
        let mut idle_since = Instant::now();
        // Rows of the previous commit (for the arrival rate).
        let mut gathered = 0;
        while !shutting_down {
            self.stats.pulse.beat(true);
            let wants_flush = self.summaries_pending() || !self.flush_waiters.is_empty();
            let flush_at = wants_flush.then_some(idle_since + self.idle_flush_after);
            let checkpoint_at = self.checkpoints.as_ref().and_then(|c| c.timer_due_at());
            let next = match flush_at.into_iter().chain(checkpoint_at).min() {
                Some(at) => match rx.recv_deadline(at) {
                    Err(RecvTimeoutError::Timeout) => {
                        if flush_at.is_some_and(|at| Instant::now() >= at) {
                            // The queue ran dry: write the summaries now.
                            self.flush_summaries();
                        }
                        self.checkpoint_if_due();
                        continue;
                    }
                    other => other.map_err(|_| ()),
                },
                None => rx.recv().map_err(|_| ()),
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
            let started = Instant::now();
            let mut deadline = match &mut self.fill {
                Some(fill) => fill.start(started, gathered),
                None => started + self.batch_wait,
            };
            let target = self.gather_target();
            let mut rows = first.batch.len();
            let mut jobs = vec![first];
            while rows < target {
                if self.starved(target) {
                    deadline = deadline.min(started + self.batch_wait);
                } else if self.read_waits() {
                    let read_deadline = match &self.fill {
                        Some(fill) => fill.read_deadline(started, target),
                        None => started + self.batch_wait,
                    };
                    deadline = deadline.min(read_deadline);
                }
                // Waiting for a full commit, look up every batch_wait for a
                // reader that waits for these rows.
                let wake = deadline.min(Instant::now() + self.batch_wait);
                match rx.recv_deadline(wake) {
                    Ok(Msg::Job(job)) => {
                        rows += job.batch.len();
                        jobs.push(*job);
                    }
                    Ok(Msg::Flush(done)) => self.flush_waiters.push(done),
                    Ok(Msg::Shutdown) => {
                        shutting_down = true;
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        shutting_down = true;
                        break;
                    }
                }
            }
            gathered = rows;
            self.pause.wait();
            self.commit(jobs);
            self.checkpoint_if_due();
            idle_since = Instant::now();
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
        // Reads still running at shutdown get a moment to end (`storage::gate`).
        let reads_out = self.raw.shut_out_reads(READS_WAIT);
        let checkpointed = self.raw.execute("CHECKPOINT");
        drop(reads_out);
        match checkpointed {
            Ok(()) => {
                // The file holds every journal entry now.
                if let Some((dir, _)) = &self.journal {
                    if let Err(e) = journal::forget_all(dir) {
                        tracing::warn!(error = %e, "could not empty the journal; the next start skips what the database holds");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "final checkpoint failed; the next start replays the journal (or DuckDB its WAL)")
            }
        }
    }

    /// Commits the journal entries past `watermark` (what a crash left out
    /// of the database file), checkpoints, and empties the journal.
    /// Returns the number the next entry takes.
    pub(super) fn replay_journal(
        &mut self,
        dir: &std::path::Path,
        watermark: u64,
    ) -> Result<u64, crate::storage::StorageError> {
        let mut group = Vec::new();
        let mut rows = 0;
        let replayed = journal::replay(dir, watermark, |number, batch| {
            rows += batch.len();
            group.push(Job::replayed(batch, number));
            if rows >= self.batch_rows {
                self.commit(std::mem::take(&mut group));
                rows = 0;
            }
            Ok(())
        })?;
        if !group.is_empty() {
            self.commit(group);
        }
        // Batches an earlier run could not commit, after what followed them.
        let held = journal::held(dir)?;
        let next = held
            .iter()
            .map(|(number, _)| number + 1)
            .fold(replayed.next, u64::max);
        if !held.is_empty() {
            self.retry_held();
        }
        if replayed.entries > 0 || replayed.undecodable > 0 || !held.is_empty() {
            tracing::info!(
                entries = replayed.entries,
                undecodable = replayed.undecodable,
                torn_segments = replayed.torn,
                held = held.len(),
                "replayed the journal: exports answered before a crash are stored"
            );
            self.raw.execute("CHECKPOINT")?;
        }
        journal::forget_all(dir)?;
        // Held batches' numbers are not given out again.
        Ok(next)
    }

    /// The rows a gather ends at (see [`CommitFill::gather_target`]).
    fn gather_target(&self) -> usize {
        match (&self.fill, &self.checkpoints) {
            (Some(fill), Some(checkpoints)) => fill.gather_target(checkpoints.span_rows()),
            _ => self.batch_rows,
        }
    }

    /// Whether a reader waits for what the writer gathers: an export's rows
    /// or the summaries.
    fn read_waits(&self) -> bool {
        !self.flush_waiters.is_empty()
            || self
                .journal
                .as_ref()
                .is_some_and(|(_, marks)| marks.hurried())
    }

    /// Whether the journal holds exports back before a gather of `target`
    /// rows could fill, so the gather should not wait for a full commit.
    /// Without this, a queue smaller than two commits
    /// (`ingest.queue_rows` < 2 × `batch_rows`) let every gather wait out
    /// `fill_ms` for rows the journal would not pass on: 13k spans/s
    /// instead of 120k. The journal holds back at the top rate too, and
    /// after a long checkpoint at half of it, with a full commit's rows
    /// answered and on their way to this gather: hurrying then would cut
    /// the commit short for nothing, and a short commit leaves its row
    /// group for the next checkpoint to compress.
    fn starved(&self, target: usize) -> bool {
        self.journal
            .as_ref()
            .is_some_and(|(_, marks)| marks.starves(target))
    }

    fn checkpoint_if_due(&mut self) {
        let filling = self.gather_target() < self.batch_rows
            && self.fill.as_ref().is_some_and(CommitFill::waits);
        if let Some(checkpoints) = &mut self.checkpoints {
            checkpoints.run_if_due(&self.raw, &self.stats, self.journal.as_ref(), filling);
        }
    }

    pub(super) fn summaries_pending(&self) -> bool {
        self.derived.iter().any(|t| t.pending())
    }

    /// Writes the summaries' pending sums in a transaction of their own
    /// (the queue ran dry, a reader asked, or qyl is stopping). After a
    /// failure the idle flush waits longer each time; the sums stay
    /// pending and the next flush tries them again. Readers waiting for
    /// the flush are answered either way.
    pub(super) fn flush_summaries(&mut self) {
        if self.summaries_pending() {
            self.pause.wait();
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
    pub(super) fn commit(&mut self, jobs: Vec<Job>) {
        let journaled = jobs.iter().map(|j| j.journaled).max().unwrap_or(0);
        let answered: usize = jobs
            .iter()
            .filter(|j| j.journaled > 0)
            .map(|j| j.batch.len())
            .sum();
        self.commit_group(jobs);
        // Stored or given up on: readers no longer wait for these entries.
        if let Some((_, marks)) = &self.journal {
            marks.applied(journaled);
            marks.committed(answered);
        }
    }

    /// [`WriterState::commit`] without the marks; returns whether every
    /// job was stored.
    fn commit_group(&mut self, jobs: Vec<Job>) -> bool {
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
                if self.retry_held_at.is_some_and(|at| Instant::now() >= at) {
                    self.retry_held();
                }
                true
            }
            Err(e) if !self.reads_shut_out && out_of_memory(&e) => {
                // Reads share DuckDB's memory limit: one took what the
                // append needed. Again, with the reads shut out, and whole:
                // split into its jobs, a group of 64 exports became 64
                // commits of 512 rows each (measured with a reader every
                // second at the top rate: 7,900 rows a commit on average
                // instead of 32,000).
                tracing::warn!(error = %e, "a commit ran out of memory beside reads; retrying with reads shut out");
                let db = self.raw.database();
                // Whatever they hold: the append itself ran out.
                let _reads_out = db.read_gate().close(READS_WAIT, || true);
                self.reads_shut_out = true;
                let stored = self.commit_group(jobs);
                self.reads_shut_out = false;
                stored
            }
            Err(e) if jobs.len() == 1 => {
                self.stats.commit_failures.fetch_add(1, Ordering::Relaxed);
                self.stats.pulse.commit_result(false);
                self.stats.pulse.beat(false);
                for mut job in jobs {
                    if job.ack.is_none() && job.journaled > 0 {
                        self.hold(&job, &e);
                    } else {
                        tracing::error!(error = %e, "commit failed");
                    }
                    job.answer(Err(WriteError::Commit(e.to_string())));
                }
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = jobs.len(), "group commit failed; retrying jobs one by one");
                let mut stored = true;
                for job in jobs {
                    stored &= self.commit_group(vec![job]);
                }
                stored
            }
        }
    }

    /// Keeps a journaled batch whose commit failed (its export was answered
    /// when it was journaled) until a later commit stores it.
    fn hold(&mut self, job: &Job, e: &DuckError) {
        let Some((dir, _)) = &self.journal else {
            tracing::error!(error = %e, "commit of a replayed batch failed; the batch is lost");
            return;
        };
        match journal::hold(dir, job.journaled, &job.batch) {
            Ok((path, new)) => {
                self.count_held(dir);
                if new {
                    tracing::error!(error = %e, held = %path.display(), "commit of a journaled batch failed; the batch is kept and tried again after the next commit that succeeds, and at start");
                } else {
                    tracing::warn!(error = %e, held = %path.display(), "a held batch failed to commit again; kept");
                }
                self.retry_held_at
                    .get_or_insert_with(|| Instant::now() + RETRY_HELD_EVERY);
            }
            Err(held) => {
                tracing::error!(error = %e, hold_error = %held, "commit of a journaled batch failed and it could not be kept; the batch is lost");
            }
        }
    }

    /// Commits the batches held in the journal, each on its own, oldest
    /// first; deletes the file of each one stored.
    pub(super) fn retry_held(&mut self) {
        let Some((dir, _)) = &self.journal else {
            return;
        };
        let dir = dir.clone();
        self.retry_held_at = None;
        let held = match journal::held(&dir) {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "could not list the held batches; trying again later");
                self.retry_held_at = Some(Instant::now() + RETRY_HELD_EVERY);
                return;
            }
        };
        for (number, path) in held {
            let batch = match journal::read_held(&path) {
                Ok(Some(batch)) => batch,
                Ok(None) => {
                    tracing::error!(held = %path.display(), "a held batch cannot be read back; left where it is");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read a held batch; trying again later");
                    self.retry_held_at = Some(Instant::now() + RETRY_HELD_EVERY);
                    continue;
                }
            };
            let spans = batch.spans.len();
            // On failure `hold` leaves the file and sets the next try.
            if self.commit_group(vec![Job::replayed(batch, number)]) {
                tracing::info!(entry = number, spans, "a held batch is stored");
                if let Err(e) = journal::release(&path) {
                    tracing::warn!(error = %e, "could not delete a stored held batch; the retry's dedup keeps it from being stored twice");
                }
            }
        }
        self.count_held(&dir);
    }

    /// Sets the held batches' gauge (`qyl_held_batches`) from the folder.
    fn count_held(&self, dir: &std::path::Path) {
        let held = journal::held(dir).map_or(0, |h| h.len());
        self.stats
            .held_batches
            .store(held as u64, Ordering::Relaxed);
    }

    /// Appends and commits; returns which spans were written (the rest were
    /// duplicates). Nothing in `self` changes unless the commit succeeds.
    pub(super) fn write(&mut self, jobs: &[Job]) -> Result<Plan, DuckError> {
        let mut plan = Plan::default();
        let fresh = &mut self.fresh_keys;
        fresh.clear();
        for job in jobs {
            let keep: Vec<bool> = job
                .span_keys
                .iter()
                .map(|&k| !self.seen.contains(k) && fresh.insert(k))
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
            let journaled = jobs.iter().map(|j| j.journaled).max().unwrap_or(0);
            if journaled > 0 {
                derived::record_journaled(&self.raw, journaled)?;
            }
            let published: usize = self.derived.iter().map(|t| t.publishes()).sum();
            if published > 0 {
                derived::record_published(&self.raw, last_seq + published as u64)?;
            }
            Ok(())
        });
        let t = Instant::now();
        let result = result.and_then(|()| {
            let _reads_out = (!self.reads_shut_out).then(|| self.raw.shut_out_reads(READS_WAIT));
            self.raw.execute("COMMIT")
        });
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
        Ok(plan)
    }

    /// Appends every job's rows, numbering them from `next_seq` job by job
    /// (a job's spans, then its logs, then its metrics) in the order `finish`
    /// publishes them: exports answered one after another may share a
    /// commit, and their records stay in the order they were sent.
    /// Returns the last sequence number in use afterwards.
    pub(super) fn append_all(&self, jobs: &[Job], plan: &Plan) -> Result<u64, DuckError> {
        let mut seq = self.next_seq;
        // Where each job's spans, logs and metrics start.
        let mut starts = Vec::with_capacity(jobs.len());
        for (job, keep) in jobs.iter().zip(&plan.keep) {
            let spans = keep.iter().filter(|k| **k).count() as u64;
            let logs = job.batch.logs.len() as u64;
            starts.push((seq, seq + spans, seq + spans + logs));
            seq += spans + logs + job.batch.metrics.len() as u64;
        }
        if jobs.is_empty() {
            return Ok(seq - 1);
        }
        // One resource cache for the whole commit: its exports mostly come
        // from the same few services.
        let mut ids = ResourceIds::default();
        let mut app = self.raw.appender("span_rows")?;
        let spans = jobs
            .iter()
            .zip(&plan.keep)
            .zip(&starts)
            .flat_map(|((job, keep), start)| {
                job.batch
                    .spans
                    .iter()
                    .zip(keep)
                    .filter(|(_, k)| **k)
                    .map(|(s, _)| s)
                    .zip(start.0..)
            });
        app.append_rows(SPAN_COLS, spans, |b, (s, seq)| {
            put_span(b, s, seq, &mut ids)
        })?;
        app.flush()?;
        drop(app);
        let mut app = self.raw.appender("log_rows")?;
        let logs = jobs
            .iter()
            .zip(&starts)
            .flat_map(|(job, start)| job.batch.logs.iter().zip(start.1..));
        app.append_rows(LOG_COLS, logs, |b, (l, seq)| put_log(b, l, seq, &mut ids))?;
        app.flush()?;
        drop(app);
        let mut app = self.raw.appender("metric_rows")?;
        let metrics = jobs
            .iter()
            .zip(&starts)
            .flat_map(|(job, start)| job.batch.metrics.iter().zip(start.2..));
        app.append_rows(METRIC_COLS, metrics, |b, (m, seq)| {
            put_metric(b, m, seq, &mut ids)
        })?;
        app.flush()?;
        Ok(seq - 1)
    }

    /// Lets each derived table write its share of the commit.
    pub(super) fn apply_derived(
        &mut self,
        jobs: &[Job],
        plan: &Plan,
        flush: bool,
    ) -> Result<(), DuckError> {
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
    pub(super) fn finish(&mut self, jobs: Vec<Job>, plan: Plan, started: Instant) {
        // `write` left this commit's new keys in `fresh_keys`, each looked
        // up in `seen` and found missing.
        for &k in &self.fresh_keys {
            self.seen.insert_new(k, ());
        }
        let mut events = Vec::with_capacity(jobs.iter().map(|j| j.batch.len()).sum());
        let mut acks = Vec::with_capacity(jobs.len());
        let mut seq = self.next_seq;
        let (mut spans, mut log_rows, mut metric_rows) = (0, 0, 0);
        for (job, keep) in jobs.into_iter().zip(plan.keep) {
            let mut done = Committed {
                logs: job.batch.logs.len(),
                metrics: job.batch.metrics.len(),
                ..Committed::default()
            };
            let mut number = |record| {
                events.push(Event { seq, record });
                seq += 1;
            };
            let offered = job.batch.spans.len();
            for span in Shared::kept(job.batch.spans, keep) {
                number(Record::Span(span));
                done.spans += 1;
            }
            done.duplicate_spans = offered - done.spans;
            for log in Shared::all(job.batch.logs) {
                number(Record::Log(log));
            }
            for point in Shared::all(job.batch.metrics) {
                number(Record::Metric(point));
            }
            spans += done.spans;
            log_rows += done.logs;
            metric_rows += done.metrics;
            acks.push((job.ack, done));
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
        if let Some(checkpoints) = &mut self.checkpoints {
            checkpoints.committed(
                &self.raw,
                [spans as u64, log_rows as u64, metric_rows as u64],
            );
        }
        if !acks.is_empty() {
            let took = started.elapsed();
            self.stats
                .last_commit_micros
                .store(took.as_micros() as u64, Ordering::Relaxed);
            self.stats.commit_duration.record(took);
        }
        // Publish before answering (without a journal; with one, the journal
        // thread answered already, and a read waits for `applied`, set after
        // this), so that once an export returns, live streams and functions
        // already have its records (publishing is a few hundred nanoseconds
        // per record and never waits on consumers).
        let evicted = self.hub.publish(events);
        for (ack, done) in acks {
            if let Some(ack) = ack {
                let _ = ack.send(Ok(done));
            }
        }
        // Fails only if the reaper is gone; the garbage is then freed here.
        let _ = self.reaper.send(Box::new(evicted));
    }
}

#[derive(Default)]
pub(super) struct Plan {
    /// Per job, per span: write it (true) or skip it as a duplicate.
    pub(super) keep: Vec<Vec<bool>>,
    /// The summaries wrote their pending sums in this commit.
    pub(super) flushed: bool,
}

/// Whether DuckDB failed for want of memory under its limit (its messages
/// vary by where the allocation failed).
fn out_of_memory(e: &DuckError) -> bool {
    let text = e.to_string();
    text.contains("Out of Memory")
        || text.contains("failed to allocate")
        || text.contains("could not allocate")
        || text.contains("failed to pin block")
}
