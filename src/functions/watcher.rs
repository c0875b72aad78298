//! Hot reload: watches the scripts directory (the directory, not the files,
//! so editors that save by writing a temp file and renaming it over the
//! original, like vim and helix, are seen) and, once a file has been quiet
//! for the debounce interval, brings the registry up to date with what is
//! on disk. Editors' temp and backup files are never loaded.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use super::lint::is_script_file;
use super::registry::Registry;

enum Msg {
    Paths(Vec<PathBuf>),
    /// The OS lost events: look at everything again.
    Rescan,
    Stop,
}

pub struct Watcher {
    _watcher: RecommendedWatcher,
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Watches `registry.dir()`; changes reach the registry `debounce`
    /// after a file's last event.
    pub fn start(registry: Arc<Registry>, debounce: Duration) -> anyhow::Result<Watcher> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let events = tx.clone();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let msg = match res {
                    // Reading a script to load it opens and closes it: if
                    // those events reloaded it, every load would cause the
                    // next one (and reset its schedule each time).
                    Ok(e) if matches!(e.kind, notify::EventKind::Access(_)) => return,
                    Ok(e) if e.need_rescan() => Msg::Rescan,
                    Ok(e) => Msg::Paths(e.paths),
                    Err(e) => {
                        tracing::warn!(error = %e, "watching the scripts directory");
                        Msg::Rescan
                    }
                };
                let _ = events.send(msg);
            })?;
        watcher.watch(registry.dir(), RecursiveMode::NonRecursive)?;
        let thread = std::thread::Builder::new()
            .name("qyl-fn-watch".into())
            .spawn(move || debounce_loop(&registry, &rx, debounce))?;
        Ok(Watcher {
            _watcher: watcher,
            tx,
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

fn debounce_loop(registry: &Registry, rx: &Receiver<Msg>, debounce: Duration) {
    let mut pending: BTreeSet<PathBuf> = BTreeSet::new();
    let mut rescan = false;
    let mut quiet_at: Option<Instant> = None;
    loop {
        let msg = match quiet_at {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_deadline(at),
        };
        match msg {
            Ok(Msg::Paths(paths)) => {
                pending.extend(paths.into_iter().filter(|p| is_script_file(p)));
                quiet_at = Some(Instant::now() + debounce);
            }
            Ok(Msg::Rescan) => {
                rescan = true;
                quiet_at = Some(Instant::now() + debounce);
            }
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                quiet_at = None;
                if std::mem::take(&mut rescan) {
                    let known: Vec<PathBuf> = registry.snapshot().files.keys().cloned().collect();
                    pending.extend(known);
                    registry.scan();
                }
                // Removals first: after a rename, the new file's functions
                // must not clash (QYL2003) with the old file's, still loaded.
                let (gone, present): (Vec<PathBuf>, Vec<PathBuf>) = std::mem::take(&mut pending)
                    .into_iter()
                    .partition(|p| !p.exists());
                for path in gone.iter().chain(&present) {
                    registry.refresh(path);
                }
            }
        }
    }
}
