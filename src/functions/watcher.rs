//! Hot reload: watches the scripts directory (the directory, not the files,
//! so editors that save by writing a temp file and renaming it over the
//! original, like vim and helix, are seen) and, once a file has been quiet
//! for the debounce interval, brings the registry up to date with what is
//! on disk. Editors' temp and backup files are never loaded. Kubernetes
//! ConfigMap volumes, whose files are symlinks through a `..data` link that
//! an update swaps, are rescanned whole when that link changes.
//!
//! The directory need not exist: until it does, the nearest existing
//! ancestor is watched (not recursively, so nothing else in it costs more
//! than an ignored event), and when the directory appears it is watched and
//! loaded. If it is removed or renamed away, its functions stop and the
//! wait starts again; a directory re-created under the same name is
//! noticed even when the events of the old one and the new one run
//! together, because the watched directory is recognised by its inode.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use super::lint::is_script_file;
use super::registry::Registry;

/// How often to try again when nothing could be watched (no permission on
/// any ancestor, or the OS watch limit reached): then the disk is polled.
const RETRY_EVERY: Duration = Duration::from_secs(2);

enum Msg {
    Paths(Vec<PathBuf>),
    /// The OS lost events: look at everything again.
    Rescan,
    Stop,
}

pub struct Watcher {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Watches `registry.dir()`, or waits for it to exist; changes reach
    /// the registry `debounce` after a file's last event.
    pub fn start(registry: Arc<Registry>, debounce: Duration) -> anyhow::Result<Watcher> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let events = tx.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
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
        let mut place = Place::new(watcher, registry.dir());
        // The engine has just loaded what is there: this only sets up the
        // watch (and says where, if the directory is missing).
        place.settle();
        let thread = std::thread::Builder::new()
            .name("qyl-fn-watch".into())
            .spawn(move || debounce_loop(&registry, &mut place, &rx, debounce))?;
        Ok(Watcher {
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

/// What is being watched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Nothing (every attempt failed): the disk is polled instead.
    Nothing,
    /// The scripts directory itself, by identity.
    Dir(Option<DirId>),
    /// The nearest existing ancestor, until the directory exists.
    Ancestor(PathBuf),
}

/// Device and inode: the same path may name a new directory.
type DirId = (u64, u64);

fn dir_id(path: &Path) -> Option<DirId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// How the watched place changed in [`Place::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    None,
    /// The directory is watched now and was not (or was another one).
    Appeared,
    /// The directory is gone; an ancestor is watched.
    Vanished,
}

/// The notify watcher and where it points.
struct Place {
    watcher: RecommendedWatcher,
    /// The scripts directory, absolute (so its ancestors are known).
    dir: PathBuf,
    target: Target,
}

impl Place {
    fn new(watcher: RecommendedWatcher, dir: &Path) -> Place {
        Place {
            watcher,
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            target: Target::Nothing,
        }
    }

    fn watching_dir(&self) -> bool {
        matches!(self.target, Target::Dir(_))
    }

    /// Whether an event about `path` can change what should be watched:
    /// the directory itself, or (while waiting) a directory on the way to
    /// it appearing inside the watched ancestor.
    fn concerns_place(&self, path: &Path) -> bool {
        match &self.target {
            Target::Dir(_) => path == self.dir,
            Target::Ancestor(_) | Target::Nothing => self.dir.starts_with(path),
        }
    }

    /// Whether `path` is a file in the scripts directory.
    fn is_script(&self, path: &Path) -> bool {
        self.watching_dir() && path.parent() == Some(self.dir.as_path()) && is_script_file(path)
    }

    /// Kubernetes ConfigMap and Secret volumes update atomically: the files
    /// are symlinks into `..data`, itself a symlink to a timestamped
    /// `..2026_…` folder, and an update renames a new `..data_tmp` link over
    /// `..data`. Names starting with `..` are never scripts or editors'.
    fn is_volume_swap(&self, path: &Path) -> bool {
        self.watching_dir()
            && path.parent() == Some(self.dir.as_path())
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".."))
    }

    fn unwatch(&mut self) {
        let path = match std::mem::replace(&mut self.target, Target::Nothing) {
            Target::Dir(_) => self.dir.clone(),
            Target::Ancestor(p) => p,
            Target::Nothing => return,
        };
        // A directory that was deleted is no longer watched: an error here
        // only says so.
        let _ = self.watcher.unwatch(&path);
    }

    /// Watches the directory if it exists, else its nearest existing
    /// ancestor, and says how that changed.
    fn settle(&mut self) -> Change {
        let was_dir = self.watching_dir();
        // Each round either settles or follows a change on disk that
        // happened meanwhile; the bound only guards against a directory
        // that is created and deleted without pause.
        for _ in 0..8 {
            if self.dir.is_dir() {
                let id = dir_id(&self.dir);
                if self.target == Target::Dir(id) {
                    return Change::None;
                }
                self.unwatch();
                match self.watcher.watch(&self.dir, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.target = Target::Dir(id);
                        // Created between the check and the watch? Then
                        // the next round sees a different directory.
                        if dir_id(&self.dir) == id {
                            tracing::info!(dir = %self.dir.display(), "watching the scripts directory");
                            return Change::Appeared;
                        }
                    }
                    Err(e) if !self.dir.is_dir() => {
                        tracing::debug!(error = %e, "the scripts directory went away while being watched");
                    }
                    Err(e) => {
                        tracing::warn!(dir = %self.dir.display(), error = %e, "cannot watch the scripts directory; checking it every {} s instead", RETRY_EVERY.as_secs());
                        return if was_dir {
                            Change::Vanished
                        } else {
                            Change::None
                        };
                    }
                }
                continue;
            }
            let Some(ancestor) = self.dir.ancestors().skip(1).find(|p| p.is_dir()) else {
                self.unwatch();
                return self.lost(was_dir);
            };
            let ancestor = ancestor.to_path_buf();
            if self.target == Target::Ancestor(ancestor.clone()) {
                return self.lost(was_dir);
            }
            self.unwatch();
            match self.watcher.watch(&ancestor, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::info!(
                        dir = %self.dir.display(),
                        watching = %ancestor.display(),
                        "the scripts directory does not exist; watching its nearest existing parent until it appears"
                    );
                    self.target = Target::Ancestor(ancestor);
                    // Loop: the directory (or a step towards it) may have
                    // been made before the watch began.
                }
                Err(e) if !ancestor.is_dir() => {
                    tracing::debug!(error = %e, "the watched parent went away");
                }
                Err(e) => {
                    tracing::warn!(watching = %ancestor.display(), error = %e, "cannot watch for the scripts directory; checking for it every {} s instead", RETRY_EVERY.as_secs());
                    return self.lost(was_dir);
                }
            }
        }
        self.lost(was_dir)
    }

    fn lost(&self, was_dir: bool) -> Change {
        if was_dir && !self.watching_dir() {
            tracing::warn!(dir = %self.dir.display(), "the scripts directory was removed; its functions stopped until it is back");
            Change::Vanished
        } else {
            Change::None
        }
    }
}

fn debounce_loop(registry: &Registry, place: &mut Place, rx: &Receiver<Msg>, debounce: Duration) {
    let mut pending: BTreeSet<PathBuf> = BTreeSet::new();
    let mut rescan = false;
    let mut quiet_at: Option<Instant> = None;
    loop {
        // Without a watch, the disk is looked at now and then instead.
        let wake = match (quiet_at, &place.target) {
            (Some(at), _) => Some(at),
            (None, Target::Nothing) => Some(Instant::now() + RETRY_EVERY),
            (None, _) => None,
        };
        let msg = match wake {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_deadline(at),
        };
        match msg {
            Ok(Msg::Paths(paths)) => {
                let mut relevant = false;
                for p in paths {
                    if place.is_script(&p) {
                        pending.insert(p);
                        relevant = true;
                    } else if place.is_volume_swap(&p) {
                        // The scripts are symlinks through `..data`, which
                        // was swapped: no event names them, so look at all.
                        rescan = true;
                        relevant = true;
                    } else if place.concerns_place(&p) {
                        relevant = true;
                    }
                }
                // Other files next to a missing directory (a database in
                // the same folder, say) do not wake anything up.
                if relevant {
                    quiet_at = Some(Instant::now() + debounce);
                }
            }
            Ok(Msg::Rescan) => {
                rescan = true;
                quiet_at = Some(Instant::now() + debounce);
            }
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                quiet_at = None;
                match place.settle() {
                    Change::Appeared => {
                        tracing::info!(dir = %place.dir.display(), "the scripts directory appeared; loading its scripts");
                        rescan = true;
                    }
                    Change::Vanished => rescan = true,
                    Change::None => {}
                }
                if std::mem::take(&mut rescan) {
                    // The scan loads every script there is; what remains
                    // is to unload the files that are gone.
                    registry.scan();
                    pending.retain(|p| !p.exists());
                    let known = registry
                        .snapshot()
                        .files
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>();
                    pending.extend(known.into_iter().filter(|p| !p.exists()));
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
