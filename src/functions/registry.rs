//! The functions that are live now, swapped atomically (arc-swap) on every
//! reload: the dispatcher reads a snapshot per record without a lock, and
//! a snapshot keeps the slots it was built with alive, so an invocation in
//! flight finishes on the version it started with.
//!
//! A file is compiled and checked in a fresh sandbox before anything
//! changes; when that fails, the file's previous functions stay live and
//! the error (file, line, message) is kept for the API and logged. Once a
//! file loads, what `qyl check` says about it (warnings, and what each
//! function triggers on) is logged too.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::executor::{FunctionSlot, FunctionStats};
use super::http::AllowList;
use super::lint::{check_sources_with, is_script_file, Severity};
use super::runtime_api::RuntimeContext;
use super::sandbox::{Limits, Sandbox};
use super::spec::{load_script, FunctionSpec, LoadError, Trigger};
use super::trigger::TriggerIndex;
use crate::model::function::FunctionDefinition;
use crate::model::now_unix_nano;
use crate::model::Batch;

/// One script file as last seen.
#[derive(Debug, Clone, Default)]
pub struct FileState {
    /// The functions it defines now (its last good load).
    pub functions: Vec<String>,
    /// The last load failed: the old functions (if any) still run.
    pub error: Option<LoadError>,
    pub loaded_unix_nano: u64,
}

/// What is live.
pub struct Snapshot {
    pub functions: BTreeMap<String, Arc<FunctionSlot>>,
    pub index: TriggerIndex<Arc<FunctionSlot>>,
    pub schedules: Vec<Arc<FunctionSlot>>,
    /// `on = "error"` functions (few; checked one by one).
    pub errors: Vec<Arc<FunctionSlot>>,
    /// `on = "slo"` functions (few; checked one by one).
    pub slos: Vec<Arc<FunctionSlot>>,
    pub files: BTreeMap<PathBuf, FileState>,
}

impl Snapshot {
    fn build(
        functions: BTreeMap<String, Arc<FunctionSlot>>,
        files: BTreeMap<PathBuf, FileState>,
    ) -> Snapshot {
        let mut records = Vec::new();
        let mut schedules = Vec::new();
        let mut errors = Vec::new();
        let mut slos = Vec::new();
        for slot in functions.values() {
            match &slot.spec.trigger {
                Trigger::Record { matcher, .. } => records.push((slot.clone(), matcher.clone())),
                Trigger::Schedule { .. } => schedules.push(slot.clone()),
                Trigger::Error { .. } => errors.push(slot.clone()),
                Trigger::Slo { .. } => slos.push(slot.clone()),
            }
        }
        Snapshot {
            index: TriggerIndex::new(records),
            functions,
            schedules,
            errors,
            slos,
            files,
        }
    }
}

/// Loaded functions and the files they came from.
pub struct Registry {
    dir: PathBuf,
    snapshot: ArcSwap<Snapshot>,
    /// Counters and state by function name, kept across reloads.
    stats: Mutex<HashMap<String, Arc<FunctionStats>>>,
    /// Serialises reloads (the watcher, and tests calling in).
    reload: Mutex<()>,
    queue_size: usize,
    runtime: Arc<RuntimeContext>,
    /// Where definitions go to be written (`qyl_functions`).
    definitions: Box<dyn Fn(Batch) + Send + Sync>,
}

impl Registry {
    pub fn new(
        dir: PathBuf,
        queue_size: usize,
        runtime: Arc<RuntimeContext>,
        definitions: Box<dyn Fn(Batch) + Send + Sync>,
    ) -> Registry {
        Registry {
            dir,
            snapshot: ArcSwap::from_pointee(Snapshot::build(BTreeMap::new(), BTreeMap::new())),
            stats: Mutex::new(HashMap::new()),
            reload: Mutex::new(()),
            queue_size,
            runtime,
            definitions,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The hosts `runtime.http` may call, for `qyl check` over the folder.
    pub fn http_allow(&self) -> &AllowList {
        &self.runtime.http.allow
    }

    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    pub fn stats_map(&self) -> &Mutex<HashMap<String, Arc<FunctionStats>>> {
        &self.stats
    }

    fn stats_for(&self, name: &str) -> Arc<FunctionStats> {
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Loads every script in the directory (at start).
    pub fn scan(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            tracing::info!(dir = %self.dir.display(), "no functions directory; no functions loaded");
            return;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_script_file(p) && p.is_file())
            .collect();
        paths.sort();
        for p in paths {
            self.refresh(&p);
        }
    }

    /// Brings `path` up to date with the disk: loads it if it is a script
    /// that exists, unloads its functions if it is gone.
    pub fn refresh(&self, path: &Path) {
        if !is_script_file(path) {
            return;
        }
        let key = self.key(path);
        match std::fs::read_to_string(path) {
            Ok(source) => self.load(key, source),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.remove(&key),
            Err(e) => {
                // Unreadable for now (a partial write, permissions): keep
                // what runs and say why.
                self.fail(
                    key.clone(),
                    LoadError {
                        file: key,
                        line: None,
                        message: format!("cannot read the file: {e}"),
                    },
                );
            }
        }
    }

    /// How a file is named in the API and diagnostics: as under the
    /// configured directory.
    fn key(&self, path: &Path) -> PathBuf {
        match path.file_name() {
            Some(name) => self.dir.join(name),
            None => path.to_path_buf(),
        }
    }

    fn fail(&self, file: PathBuf, error: LoadError) {
        let _guard = self.reload.lock().unwrap_or_else(|p| p.into_inner());
        tracing::warn!(file = %file.display(), line = error.line.unwrap_or(1), error = %error.message, "function script not loaded; its previous version (if any) keeps running");
        let old = self.snapshot.load_full();
        let mut files = old.files.clone();
        let entry = files.entry(file).or_default();
        entry.error = Some(error);
        self.snapshot
            .store(Arc::new(Snapshot::build(old.functions.clone(), files)));
    }

    fn load(&self, file: PathBuf, source: String) {
        let specs = match compile(&file, &source) {
            Ok(specs) => specs,
            Err(e) => return self.fail(file, e),
        };
        let _guard = self.reload.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot.load_full();
        // QYL2003: a name must be unique across the folder.
        for spec in &specs {
            if let Some(other) = old.functions.get(&spec.name) {
                if other.spec.file != file {
                    drop(_guard);
                    return self.fail(
                        file.clone(),
                        LoadError {
                            file: file.clone(),
                            line: Some(spec.line),
                            message: format!(
                                "QYL2003: function name {:?} is already defined in {}",
                                spec.name,
                                other.spec.file.display()
                            ),
                        },
                    );
                }
            }
        }
        let source: Arc<str> = source.into();
        let mut functions = old.functions.clone();
        let previous: Vec<String> = old
            .files
            .get(&file)
            .map(|f| f.functions.clone())
            .unwrap_or_default();
        let mut retired = Vec::new();
        for name in &previous {
            if let Some(slot) = functions.remove(name) {
                retired.push(slot);
            }
        }
        let now = now_unix_nano();
        let mut batch = Batch::default();
        let mut names = Vec::new();
        for spec in specs {
            names.push(spec.name.clone());
            batch
                .functions
                .definitions
                .push(definition(&spec, true, now));
            let slot = FunctionSlot::new(
                spec.clone(),
                source.clone(),
                self.stats_for(&spec.name),
                self.queue_size,
            );
            functions.insert(spec.name.clone(), slot);
        }
        for slot in &retired {
            if !names.contains(&slot.spec.name) {
                batch
                    .functions
                    .definitions
                    .push(definition(&slot.spec, false, now));
            }
        }
        let mut files = old.files.clone();
        files.insert(
            file.clone(),
            FileState {
                functions: names.clone(),
                error: None,
                loaded_unix_nano: now,
            },
        );
        self.swap(functions, files, retired);
        (self.definitions)(batch);
        drop(_guard);
        tracing::info!(file = %file.display(), functions = ?names, "function script loaded");
        log_diagnostics(&file, &source, &self.runtime.http.allow);
    }

    fn remove(&self, file: &Path) {
        let _guard = self.reload.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot.load_full();
        let Some(state) = old.files.get(file) else {
            return;
        };
        let mut functions = old.functions.clone();
        let mut retired = Vec::new();
        let now = now_unix_nano();
        let mut batch = Batch::default();
        for name in &state.functions {
            if let Some(slot) = functions.remove(name) {
                batch
                    .functions
                    .definitions
                    .push(definition(&slot.spec, false, now));
                retired.push(slot);
            }
        }
        let mut files = old.files.clone();
        files.remove(file);
        self.swap(functions, files, retired);
        (self.definitions)(batch);
        tracing::info!(file = %file.display(), "function script removed; its functions stopped");
    }

    fn swap(
        &self,
        functions: BTreeMap<String, Arc<FunctionSlot>>,
        files: BTreeMap<PathBuf, FileState>,
        retired: Vec<Arc<FunctionSlot>>,
    ) {
        let snapshot = Snapshot::build(functions, files);
        self.runtime.catalog.store(Arc::new(
            snapshot
                .functions
                .values()
                .map(|s| {
                    serde_json::json!({
                        "name": s.spec.name,
                        "description": s.spec.description,
                        "file": s.spec.file.display().to_string(),
                        "trigger": s.spec.trigger.summary(),
                    })
                })
                .collect(),
        ));
        self.snapshot.store(Arc::new(snapshot));
        for slot in retired {
            slot.retire();
        }
    }
}

/// What `qyl check` says about a file that just loaded, in the log: its
/// warnings (QYL2001, QYL2002, QYL2005, suppression misuse) and what each function
/// triggers on (QYL2004). Names across the folder (QYL2003) were checked by
/// the load itself.
fn log_diagnostics(file: &Path, source: &str, http_allow: &AllowList) {
    let report = check_sources_with(&[(file.to_path_buf(), source.to_string())], http_allow);
    for d in report.diagnostics {
        match d.severity {
            Severity::Info => tracing::info!("{d}"),
            Severity::Warning | Severity::Error => tracing::warn!("{d}"),
        }
    }
}

fn definition(spec: &FunctionSpec, enabled: bool, now: u64) -> FunctionDefinition {
    FunctionDefinition {
        name: spec.name.clone(),
        file: spec.file.display().to_string(),
        description: spec.description.clone(),
        trigger: spec.trigger.summary(),
        max_concurrency: spec.max_concurrency,
        timeout_ms: spec.timeout.as_millis() as u64,
        memory_mb: spec.memory_mb,
        rate_limit: spec
            .rate_limit
            .map(|r| format!("{}/{}", r.count, humantime::format_duration(r.per))),
        enabled,
        updated_unix_nano: now,
    }
}

/// Compiles a script in a throwaway sandbox: the check before anything
/// changes.
pub fn compile(file: &Path, source: &str) -> Result<Vec<FunctionSpec>, LoadError> {
    let mut sandbox = Sandbox::new(Limits::default()).map_err(|e| LoadError {
        file: file.to_path_buf(),
        line: None,
        message: e.to_string(),
    })?;
    let loaded = load_script(&mut sandbox, file, source)?;
    let mut seen = std::collections::HashSet::new();
    let mut specs = Vec::new();
    for f in loaded {
        if !seen.insert(f.spec.name.clone()) {
            return Err(LoadError {
                file: file.to_path_buf(),
                line: Some(f.spec.line),
                message: format!(
                    "QYL2003: function name {:?} is defined twice in this file",
                    f.spec.name
                ),
            });
        }
        specs.push(f.spec);
    }
    Ok(specs)
}
