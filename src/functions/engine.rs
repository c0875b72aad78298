//! The functions engine as the server runs it: registry + watcher +
//! dispatcher + executor, started together and stopped in order (no new
//! work, then the workers, then the last rows to the writer).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

use super::dispatch::{DispatchStats, Dispatcher};
use super::executor::{Executor, ExecutorConfig, Outbox, Sink};
use super::registry::Registry;
use super::runtime_api::{seed_state, RuntimeContext};
use crate::model::function::InvocationStatus;
use crate::model::query::rfc3339;
use crate::stream::Hub;

/// `[functions]` as the engine needs it.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub dir: PathBuf,
    pub executor: ExecutorConfig,
    pub debounce: Duration,
}

pub struct Engine {
    pub registry: Arc<Registry>,
    executor: Arc<Executor>,
    dispatcher: Mutex<Option<Dispatcher>>,
    watcher: Mutex<Option<super::watcher::Watcher>>,
    dispatch_stats: Arc<DispatchStats>,
    pub config: EngineConfig,
}

impl Engine {
    /// Loads the scripts, starts the workers, and (given a hub) the
    /// dispatcher and the watcher. `state` is the persisted `runtime.state`.
    pub fn start(
        config: EngineConfig,
        sink: Box<dyn Sink>,
        runtime: Arc<RuntimeContext>,
        hub: Option<Arc<Hub>>,
        state: std::collections::HashMap<String, std::collections::HashMap<String, String>>,
    ) -> anyhow::Result<Arc<Engine>> {
        let outbox = Outbox::new(sink);
        let executor = Arc::new(Executor::start(
            config.executor.clone(),
            outbox.clone(),
            runtime.clone(),
        )?);
        let definitions = {
            let outbox = outbox.clone();
            Box::new(move |b| outbox.push(b)) as Box<dyn Fn(_) + Send + Sync>
        };
        let registry = Arc::new(Registry::new(
            config.dir.clone(),
            config.executor.queue_size,
            runtime,
            definitions,
        ));
        seed_state(registry.stats_map(), state);
        registry.scan();
        let (dispatcher, dispatch_stats) = match hub {
            Some(hub) => {
                let d = Dispatcher::start(hub, registry.clone(), executor.clone())?;
                let stats = d.stats.clone();
                (Some(d), stats)
            }
            None => (None, Arc::default()),
        };
        // Also for a directory that does not exist yet: it is waited for.
        let watcher = match super::watcher::Watcher::start(registry.clone(), config.debounce) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(dir = %config.dir.display(), error = %e, "cannot watch the scripts directory; scripts load at start only");
                None
            }
        };
        Ok(Arc::new(Engine {
            registry,
            executor,
            dispatcher: Mutex::new(dispatcher),
            watcher: Mutex::new(watcher),
            dispatch_stats,
            config,
        }))
    }

    pub fn executor(&self) -> &Arc<Executor> {
        &self.executor
    }

    pub fn dispatch_stats(&self) -> &DispatchStats {
        &self.dispatch_stats
    }

    /// Stops watching and dispatching, then the workers; the outbox's last
    /// rows go to the writer (which must still be running). Idempotent.
    pub fn stop(&self) {
        if let Some(mut w) = self
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            w.stop();
        }
        if let Some(mut d) = self
            .dispatcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            d.stop();
        }
        self.executor.stop();
    }

    /// Every function, for `GET /api/v1/functions`; functions whose file
    /// failed to load keep their old version, shown with the error.
    pub fn list(&self) -> Vec<FunctionInfo> {
        let snapshot = self.registry.snapshot();
        let mut out = Vec::new();
        for slot in snapshot.functions.values() {
            let spec = &slot.spec;
            let stats = &slot.stats;
            let file_error = snapshot
                .files
                .get(&spec.file)
                .and_then(|f| f.error.as_ref());
            let paused_until = slot.paused_until();
            let state = if file_error.is_some() {
                "error"
            } else if paused_until.is_some() {
                "paused"
            } else {
                "active"
            };
            let last = stats.last_invoked_unix_nano.load(Ordering::Relaxed);
            out.push(FunctionInfo {
                name: spec.name.clone(),
                description: spec.description.clone(),
                file: spec.file.display().to_string(),
                line: spec.line,
                trigger: spec.trigger.summary(),
                on: spec.trigger.on().to_string(),
                state: state.into(),
                paused_for_ms: paused_until
                    .map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64),
                load_error: file_error.map(|e| e.to_string()),
                limits: FunctionLimits {
                    max_concurrency: spec.max_concurrency,
                    timeout_ms: spec
                        .timeout
                        .min(self.config.executor.max_timeout)
                        .as_millis() as u64,
                    memory_mb: spec.memory_mb,
                    rate_limit: spec
                        .rate_limit
                        .map(|r| format!("{}/{}", r.count, humantime::format_duration(r.per))),
                    queue_size: self.config.executor.queue_size,
                },
                invocation_count: stats.invocations(),
                error_count: stats.errors(),
                completed: stats.count(InvocationStatus::Completed),
                failed: stats.count(InvocationStatus::Failed),
                timed_out: stats.count(InvocationStatus::TimedOut),
                skipped: stats.count(InvocationStatus::Skipped),
                queued: slot.queued(),
                last_invoked_at: (last > 0).then(|| rfc3339(last)),
                last_error: stats.last_error(),
                http_calls: stats.http_calls.load(Ordering::Relaxed),
                http_failed: stats.http_failed.load(Ordering::Relaxed),
            });
        }
        out
    }

    /// Load errors of files, including those that define nothing now.
    pub fn load_errors(&self) -> Vec<(PathBuf, super::spec::LoadError)> {
        self.registry
            .snapshot()
            .files
            .iter()
            .filter_map(|(p, f)| f.error.clone().map(|e| (p.clone(), e)))
            .collect()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A function as `GET /api/v1/functions` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<String>,
    pub file: String,
    /// The line of its definition.
    pub line: u32,
    /// What it triggers on, e.g. `span where duration_ms > 5000`.
    pub trigger: String,
    /// `span`, `log`, `schedule`, `error` or `slo`.
    pub on: String,
    /// `active`; `paused` (the circuit breaker holds it after repeated
    /// failures); `error` (its file's last save failed to load, so this is
    /// the previous version, still running).
    pub state: String,
    pub paused_for_ms: Option<u64>,
    /// Why the file's last save did not load (`file:line: message`).
    pub load_error: Option<String>,
    pub limits: FunctionLimits,
    /// Invocations that ran (completed, failed or timed out).
    pub invocation_count: u64,
    /// Failed or timed out.
    pub error_count: u64,
    pub completed: u64,
    pub failed: u64,
    pub timed_out: u64,
    /// Not run: queue full, rate limit, or paused.
    pub skipped: u64,
    pub queued: usize,
    pub last_invoked_at: Option<String>,
    pub last_error: Option<String>,
    /// `runtime.http` attempts since start (each retry counts), and those
    /// that got no 2xx answer (refused, failed, timed out or an error
    /// status). Each invocation's span has its calls.
    pub http_calls: u64,
    pub http_failed: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FunctionLimits {
    pub max_concurrency: u32,
    pub timeout_ms: u64,
    pub memory_mb: u32,
    pub rate_limit: Option<String>,
    pub queue_size: usize,
}
