//! The prepare thread: builds each batch's DuckDB data chunks just ahead of
//! the writer thread, instead of when the batch is submitted.
//!
//! A queued span costs about 1.2 KB as a `Batch` and about 5 KB more as data
//! chunks (44 columns sized for DuckDB's 2,048-row vectors, filled with an
//! export's few hundred rows). At the top rate the queue holds about 100k
//! rows, most of them waiting out a checkpoint, so chunks built at submission
//! held some 290 MB that nobody needed yet. This thread keeps at most
//! [`Lookahead`]'s limit of rows prepared; the rest of the queue waits as
//! batches. While the queue is shorter than that, `submit` builds the chunks
//! itself, where the batch is still in cache, and this thread passes them on. It sits last before the writer: after the journal thread for a
//! database file, right after the queue in memory.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::handle::Msg;
use crate::storage::{spawn_thread, StorageError};

/// The most prepared rows that may wait for the writer, whatever the
/// commit size: about what arrives at the top rate while the writer
/// commits or checkpoints (0.15–0.25 s at 120–130k spans/s), after which it
/// takes them at once and the prepare thread (about four times faster than
/// the writer) stays ahead. Two 32,768-row commits' worth, as with smaller
/// commits, held ~5 KB of chunks per row for the whole queue and measured
/// no less CPU per span (BENCHMARKS.md).
const MAX_LOOKAHEAD_ROWS: usize = 16_384;

/// The lookahead for commits of `batch_rows`: two commits' worth, so a
/// commit never waits for chunks, up to [`MAX_LOOKAHEAD_ROWS`].
pub(super) fn lookahead_rows(batch_rows: usize) -> usize {
    (2 * batch_rows.max(1)).min(MAX_LOOKAHEAD_ROWS)
}

/// How many prepared rows may wait for the writer; the writer takes rows
/// off as it receives their jobs, and closes it when it stops.
pub(super) struct Lookahead {
    state: Mutex<LookaheadState>,
    changed: Condvar,
    limit: usize,
}

#[derive(Default)]
struct LookaheadState {
    rows: usize,
    writer_gone: bool,
}

impl Lookahead {
    pub(super) fn new(limit: usize) -> Lookahead {
        Lookahead {
            state: Mutex::new(LookaheadState::default()),
            changed: Condvar::new(),
            limit: limit.max(1),
        }
    }

    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    /// Prepared rows the writer has not taken yet.
    #[cfg(test)]
    pub(super) fn rows(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).rows
    }

    /// Waits until fewer than the limit of prepared rows wait, then counts
    /// `rows` more; false once the writer has stopped.
    fn reserve(&self, rows: usize) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while state.rows >= self.limit && !state.writer_gone {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.rows += rows;
        !state.writer_gone
    }

    /// The writer has received a job of `rows` rows.
    pub(super) fn taken(&self, rows: usize) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.rows = state.rows.saturating_sub(rows);
        self.changed.notify_all();
    }

    /// The writer has stopped (also when its thread panics): nothing waits
    /// for room any more.
    pub(super) fn writer_gone(&self) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .writer_gone = true;
        self.changed.notify_all();
    }
}

/// Starts the prepare thread between `from` and the returned receiver,
/// which the writer reads.
pub(super) fn spawn_prepare(
    from: Receiver<Msg>,
    lookahead: Arc<Lookahead>,
) -> Result<(Receiver<Msg>, JoinHandle<()>), StorageError> {
    let (to_writer, writer_rx) = crossbeam_channel::unbounded();
    let thread = spawn_thread("qyl-prepare", move || run(from, to_writer, &lookahead))?;
    Ok((writer_rx, thread))
}

fn run(from: Receiver<Msg>, to_writer: Sender<Msg>, lookahead: &Lookahead) {
    while let Ok(msg) = from.recv() {
        if let Msg::Shutdown = msg {
            // Jobs submitted while the shutdown began are still accepted:
            // they go before it, so the writer commits them.
            for late in from.try_iter() {
                if !forward(late, &to_writer, lookahead) {
                    return;
                }
            }
            let _ = to_writer.send(Msg::Shutdown);
            return;
        }
        if !forward(msg, &to_writer, lookahead) {
            // The writer is gone: what is left is answered as refused when
            // its acks drop (journaled jobs are replayed at the next start).
            return;
        }
    }
    // Every sender is gone without a shutdown: the writer stops too.
}

/// Prepares a job (other messages pass as they are) and hands it on; false
/// once the writer is gone.
fn forward(msg: Msg, to_writer: &Sender<Msg>, lookahead: &Lookahead) -> bool {
    let msg = match msg {
        Msg::Job(mut job) => {
            job.prepare();
            if !lookahead.reserve(job.batch.len()) {
                return false;
            }
            Msg::Job(job)
        }
        Msg::Shutdown => return true,
        other => other,
    };
    to_writer.send(msg).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn room_opens_as_the_writer_takes_rows_and_when_it_is_gone() {
        let lookahead = Arc::new(Lookahead::new(10));
        assert!(lookahead.reserve(6));
        // Under the limit: one more job fits, whatever its size.
        assert!(lookahead.reserve(6));
        assert_eq!(lookahead.rows(), 12);
        let waiting = {
            let lookahead = lookahead.clone();
            std::thread::spawn(move || lookahead.reserve(1))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiting.is_finished(), "reserved past the limit");
        lookahead.taken(6);
        assert!(waiting.join().unwrap());
        assert_eq!(lookahead.rows(), 7);

        assert!(lookahead.reserve(5));
        let stranded = {
            let lookahead = lookahead.clone();
            std::thread::spawn(move || lookahead.reserve(1))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!stranded.is_finished());
        lookahead.writer_gone();
        assert!(!stranded.join().unwrap(), "the writer is gone");
    }
}
