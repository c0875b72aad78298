//! The writer's two helper threads: the checkpointer, which writes what
//! was committed into the database file on a timer (and then lets the
//! journal forget it) so commits never pay for it, and the
//! reaper, which frees what a commit leaves behind off the writer thread.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::handle::VisibilityMarks;
use super::journal;
use super::WriterStats;
use crate::storage::duck::RawConn;
use crate::storage::StorageError;

/// Set once to stop the checkpoint thread, which sleeps on the condvar.
pub(super) type StopFlag = (Mutex<bool>, Condvar);

/// What a commit leaves behind (records leaving the hub's ring, the
/// batches' data chunks): tens of thousands of small frees per commit, done
/// on a thread of its own so they do not hold up the next commit.
pub(super) type Garbage = Box<dyn Send>;

pub(super) fn spawn_reaper() -> Result<(Sender<Garbage>, JoinHandle<()>), StorageError> {
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

/// How long the checkpoint thread waits when DuckDB's worker threads hold
/// the checkpoint's remaining tasks (see `RawConn::execute_without_polling`).
const CHECKPOINT_IDLE: Duration = Duration::from_millis(1);

pub(super) fn spawn_checkpointer(
    conn: RawConn,
    every: Duration,
    stop: Arc<StopFlag>,
    stats: Arc<WriterStats>,
    journal: Option<(PathBuf, Arc<VisibilityMarks>)>,
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
            let started = std::time::Instant::now();
            // Committed before the checkpoint begins, so in the file after it.
            let applied = journal.as_ref().map(|(_, marks)| *marks.applied.borrow());
            match conn.execute_without_polling("CHECKPOINT", CHECKPOINT_IDLE) {
                Ok(()) => {
                    stats.checkpoints.fetch_add(1, Ordering::Relaxed);
                    stats.checkpoint_duration.record(started.elapsed());
                    if let (Some((dir, _)), Some(applied)) = (&journal, applied) {
                        if let Err(e) = journal::forget_through(dir, applied) {
                            tracing::warn!(error = %e, "could not delete old journal segments");
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "background checkpoint skipped"),
            }
        })
        .map_err(|e| StorageError::Dir {
            path: "qyl-checkpoint thread".into(),
            source: e,
        })
}
