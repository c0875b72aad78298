//! The journal thread: between the queue ingest submits to and the writer
//! thread. It takes every job already waiting (the fsync of the previous
//! group is the only wait, so groups form by themselves), appends their
//! batches to the journal, syncs once, answers the exports and passes the
//! jobs on. A checkpoint holding the writer's commits up no longer holds up
//! the answers; the queue's row budget, released only at commit, still
//! bounds what waits between the two threads.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::super::handle::{Job, Msg, PauseState, VisibilityMarks};
use super::super::{Committed, WriteError, WriterStats};
use super::Journal;
use crate::storage::{spawn_thread, StorageError};

pub(in crate::storage::writer) struct JournalThread {
    pub journal: Journal,
    pub from_ingest: Receiver<Msg>,
    pub to_writer: Sender<Msg>,
    pub marks: Arc<VisibilityMarks>,
    pub pause: Arc<PauseState>,
    pub stats: Arc<WriterStats>,
    pub batch_rows: usize,
}

impl JournalThread {
    pub fn spawn(self) -> Result<JoinHandle<()>, StorageError> {
        spawn_thread("qyl-journal", move || self.run())
    }

    fn run(mut self) {
        loop {
            let Ok(first) = self.from_ingest.recv() else {
                break;
            };
            let mut group = Vec::new();
            let mut stop = false;
            let mut rows = 0;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Job(job) => {
                        rows += job.batch.len();
                        group.push(job);
                    }
                    // Passed on after this group's jobs, in the order they came.
                    other @ Msg::Flush(_) => {
                        self.pass_on(&mut group);
                        let _ = self.to_writer.send(other);
                    }
                    Msg::Shutdown => {
                        // Everything accepted before the shutdown is kept.
                        stop = true;
                        next = self.from_ingest.try_recv().ok();
                        continue;
                    }
                }
                if rows < self.batch_rows || stop {
                    next = self.from_ingest.try_recv().ok();
                }
            }
            self.pass_on(&mut group);
            if stop {
                let _ = self.to_writer.send(Msg::Shutdown);
                break;
            }
        }
    }

    /// Journals `group`, answers its exports and hands it to the writer.
    // Boxed as the queues carry them, so passing one on moves a pointer.
    #[allow(clippy::vec_box)]
    fn pass_on(&mut self, group: &mut Vec<Box<Job>>) {
        if group.is_empty() {
            return;
        }
        self.pause.wait();
        self.marks.wait_for_writer();
        let started = Instant::now();
        let mut last = 0;
        for job in group.iter_mut() {
            job.journaled = self.journal.append(&job.batch);
            last = job.journaled;
        }
        let synced = self.journal.sync();
        self.stats.steps.add("journal", started.elapsed());
        match synced {
            Ok(()) => {
                self.marks.journaled.store(last, Ordering::Release);
                self.marks
                    .answered(group.iter().map(|j| j.batch.len()).sum());
                for mut job in group.drain(..) {
                    job.answer(Ok(Committed {
                        spans: job.batch.spans.len(),
                        logs: job.batch.logs.len(),
                        metrics: job.batch.metrics.len(),
                        duplicate_spans: 0,
                    }));
                    if let Err(crossbeam_channel::SendError(Msg::Job(job))) =
                        self.to_writer.send(Msg::Job(job))
                    {
                        // The writer is gone (its thread panicked): the
                        // entry is replayed at the next start.
                        drop(job);
                    }
                }
            }
            Err(e) => {
                self.stats.commit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "writing the journal failed; exports refused");
                // Refused, so no reader waits for them.
                for mut job in group.drain(..) {
                    job.answer(Err(WriteError::Commit(e.to_string())));
                }
            }
        }
    }
}
