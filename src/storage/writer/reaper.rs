//! The reaper thread: frees what a commit leaves behind off the writer
//! thread, so freeing never holds up the next commit.

use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use crate::storage::{spawn_thread, StorageError};

/// What a commit leaves behind (records leaving the hub's ring): tens of
/// thousands of small frees per commit, done on a thread of its own so they
/// do not hold up the next commit.
pub(super) type Garbage = Box<dyn Send>;

pub(super) fn spawn_reaper() -> Result<(Sender<Garbage>, JoinHandle<()>), StorageError> {
    // Bounded: if freeing ever falls behind, the writer waits for it
    // rather than holding ever more memory.
    let (tx, rx) = crossbeam_channel::bounded::<Garbage>(64);
    let thread = spawn_thread("qyl-reaper", move || rx.iter().for_each(drop))?;
    Ok((tx, thread))
}
