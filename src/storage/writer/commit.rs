//! The writer thread: takes jobs off the queue, groups them, skips retried
//! spans, appends the chunks, updates the derived tables, commits, then
//! answers each export and publishes the committed records to the hub.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::sync::oneshot;

use super::derived::{self, Committing, Derived};
use super::WriterStats;
use super::{
    append_prepared, put_span, span_key, Committed, Garbage, Job, Msg, PauseState, PreHashed,
    RecentSpans, WriteError, LOG_COLS, METRIC_COLS, SPAN_COLS, SPAN_SEQ_COL,
};
use crate::model::Record;
use crate::storage::duck::{Chunk, RawConn};
use crate::storage::DuckError;
use crate::stream::{Event, Hub};

pub(super) struct WriterState {
    pub(super) raw: RawConn,
    pub(super) hub: Arc<Hub>,
    pub(super) seen: RecentSpans,
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
}

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

    pub(super) fn wait_while_paused(&self) {
        let mut n = self.pause.count.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            n = self
                .pause
                .resumed
                .wait(n)
                .unwrap_or_else(|p| p.into_inner());
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
    pub(super) fn commit(&mut self, jobs: Vec<Job>) {
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
    pub(super) fn write(&mut self, jobs: &[Job]) -> Result<Plan, DuckError> {
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
            let published: usize = self.derived.iter().map(|t| t.publishes()).sum();
            if published > 0 {
                derived::record_published(&self.raw, last_seq + published as u64)?;
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
    pub(super) fn append_all(&self, jobs: &[Job], plan: &Plan) -> Result<u64, DuckError> {
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
pub(super) struct Plan {
    /// Per job, per span: write it (true) or skip it as a duplicate.
    pub(super) keep: Vec<Vec<bool>>,
    pub(super) fresh: Vec<u64>,
    /// The summaries wrote their pending sums in this commit.
    pub(super) flushed: bool,
}
