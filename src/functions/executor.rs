//! Runs function invocations on dedicated OS threads (never tokio's), with
//! the limits of DESIGN §4: a bounded queue and at most `max_concurrency`
//! running invocations per function, an optional rate limit, a deadline per
//! invocation, a VM rebuilt after it hit a limit, and a circuit breaker
//! that pauses a function that keeps failing.
//!
//! The producer (the dispatcher) never waits: [`Executor::offer`] either
//! queues the job or records it as `skipped` (exact counters, plus one
//! sampled row per function per second so the table shows why).
//!
//! Scheduling: a function with queued work and fewer than
//! `max_concurrency` tasks gets a task on the shared ready channel; a
//! worker takes it, runs up to [`DRAIN`] jobs, and either gives the task
//! back (more work, so other functions get a turn) or retires it. Luau VMs
//! are not `Send`, so each worker keeps its own VM per function version;
//! because a worker runs one task at a time, that is one VM per function
//! per worker at most, and `max_concurrency` bounds how many run at once.
//!
//! Results leave through the [`Outbox`]: rows are gathered per drain and
//! handed to the writer as one batch every few milliseconds, so the cost
//! per invocation is a few pushes, not a commit. The thread that hands them
//! over also writes `running` rows for invocations that take longer than a
//! second (see [`super::running`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use mlua::{AnyUserData, Function, Lua, LuaSerdeExt, Table, Value};

use super::http::HttpCall;
use super::record::LuaRecord;
use super::running::InFlight;
use super::runtime_api::{self, Current, RuntimeContext};
use super::runtime_http::HttpCalls;
use super::sandbox::{Limits, Sandbox, SandboxError};
use super::secrets::SeenSecrets;
use super::spec::{load_script, FunctionSpec};
use crate::ingest::Exporter;
use crate::model::function::{FunctionRows, Invocation, InvocationStatus};
use crate::model::now_unix_nano;
use crate::model::{Batch, LogRecord, Record, SpanRecord, OWN_SERVICE};
use crate::storage::writer::DurationHistogram;
use crate::stream::Event;

/// Jobs a worker runs for one function before giving others a turn.
const DRAIN: usize = 64;
/// The scope of qyl's own telemetry about functions; the dispatcher never
/// feeds records of this scope back to functions.
pub const OWN_SCOPE: &str = "qyl.functions";
/// How often the outbox hands gathered rows to the writer.
const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// The resource of qyl's own telemetry.
const OWN_RESOURCE: &str = "{\"service.name\":\"qyl\"}";
const PAUSED: &str = "paused by the circuit breaker";
/// VMs a worker keeps before dropping the least recently used.
const MAX_VMS_PER_WORKER: usize = 512;

/// Limits and sizes; see `[functions]` in qyl.toml.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    pub workers: usize,
    pub queue_size: usize,
    /// A function's `timeout_ms` is capped at this.
    pub max_timeout: Duration,
    /// The deadline of a `when` refinement.
    pub when_timeout: Duration,
    pub breaker_failures: u32,
    pub breaker_window: Duration,
    pub breaker_cooldown: Duration,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            workers: 2,
            queue_size: 1000,
            max_timeout: Duration::from_secs(60),
            when_timeout: Duration::from_millis(50),
            breaker_failures: 5,
            breaker_window: Duration::from_secs(60),
            breaker_cooldown: Duration::from_secs(60),
        }
    }
}

/// Where finished rows go: the writer in the server, a counter in benches.
pub trait Sink: Send + Sync + 'static {
    /// Takes a batch without blocking; false if it had to drop it.
    fn submit(&self, batch: Batch) -> bool;
}

impl Sink for Exporter {
    fn submit(&self, batch: Batch) -> bool {
        // A failed invocation's own span is an error of service `qyl`,
        // found the way ingest finds errors in an export. The receiver
        // resolves at commit; nobody waits for it.
        Exporter::submit(self, batch).is_ok()
    }
}

/// Counters of one function, kept across reloads (by name).
#[derive(Debug, Default)]
pub struct FunctionStats {
    by_status: [AtomicU64; 5],
    pub last_invoked_unix_nano: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    pub duration: DurationHistogram,
    /// `runtime.state`: key → JSON text, loaded at start, written behind.
    pub state: Mutex<HashMap<String, String>>,
    /// The second (Unix) of the last sampled `skipped` row.
    skipped_sampled: AtomicU64,
    /// `runtime.http` attempts, and those that got no 2xx answer.
    pub http_calls: AtomicU64,
    pub http_failed: AtomicU64,
}

impl FunctionStats {
    pub fn count(&self, status: InvocationStatus) -> u64 {
        self.by_status[status as usize].load(Ordering::Relaxed)
    }

    /// Invocations that ran (completed, failed or timed out).
    pub fn invocations(&self) -> u64 {
        self.count(InvocationStatus::Completed) + self.errors()
    }

    pub fn errors(&self) -> u64 {
        self.count(InvocationStatus::Failed) + self.count(InvocationStatus::TimedOut)
    }

    fn add(&self, status: InvocationStatus) {
        self.by_status[status as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What triggered a job.
#[derive(Clone)]
pub enum Trigger {
    Record(Event),
    Schedule,
}

pub struct Job {
    pub trigger: Trigger,
}

#[derive(Debug, Default)]
struct Breaker {
    failures: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

/// One loaded version of one function: its spec, the source its VMs are
/// built from, its queue and limits. A reload makes a new slot; the old
/// one is retired and finishes what it holds.
pub struct FunctionSlot {
    id: u64,
    pub spec: FunctionSpec,
    source: Arc<str>,
    pub stats: Arc<FunctionStats>,
    queue: Mutex<VecDeque<Job>>,
    queue_size: usize,
    /// Tasks of this slot on the ready channel or running.
    active: AtomicU32,
    limiter: Option<DefaultDirectRateLimiter>,
    breaker: Mutex<Breaker>,
    retired: AtomicBool,
    /// `execute_tool {name}`, and its span attributes up to the status,
    /// built once rather than per invocation.
    own_span_name: String,
    own_attrs_prefix: String,
}

static NEXT_SLOT: AtomicU64 = AtomicU64::new(1);

impl FunctionSlot {
    pub fn new(
        spec: FunctionSpec,
        source: Arc<str>,
        stats: Arc<FunctionStats>,
        queue_size: usize,
    ) -> Arc<FunctionSlot> {
        let limiter = spec.rate_limit.and_then(|r| {
            let period = r.per / r.count.max(1);
            let burst = std::num::NonZeroU32::new(r.count)?;
            Quota::with_period(period).map(|q| RateLimiter::direct(q.allow_burst(burst)))
        });
        Arc::new(FunctionSlot {
            id: NEXT_SLOT.fetch_add(1, Ordering::Relaxed),
            source,
            stats,
            queue: Mutex::new(VecDeque::new()),
            queue_size: queue_size.max(1),
            active: AtomicU32::new(0),
            limiter,
            breaker: Mutex::new(Breaker::default()),
            retired: AtomicBool::new(false),
            own_attrs_prefix: {
                let n = serde_json::Value::from(spec.name.as_str()).to_string();
                format!(
                    "{{\"gen_ai.operation.name\":\"execute_tool\",\"gen_ai.tool.name\":{n},\"gen_ai.tool.type\":\"function\",\"qyl.function.name\":{n},\"qyl.function.status\":\""
                )
            },
            own_span_name: format!("execute_tool {}", spec.name),
            spec,
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Stops new work reaching this version (a reload or delete replaced
    /// it); what is queued or running finishes on it.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// `Some(until)` while the circuit breaker holds the function.
    pub fn paused_until(&self) -> Option<Instant> {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        match b.paused_until {
            Some(t) if t > Instant::now() => Some(t),
            Some(_) => {
                b.paused_until = None;
                b.failures.clear();
                None
            }
            None => None,
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn queued(&self) -> usize {
        self.queue().len()
    }

    /// One more task, unless `max_concurrency` are already out.
    fn try_activate(&self) -> bool {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                (a < self.spec.max_concurrency.max(1)).then_some(a + 1)
            })
            .is_ok()
    }

    /// Records a failure; true if it tripped the breaker.
    fn failed(&self, config: &ExecutorConfig) -> bool {
        let now = Instant::now();
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        b.failures.push_back(now);
        while b
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > config.breaker_window)
        {
            b.failures.pop_front();
        }
        if b.failures.len() >= config.breaker_failures.max(1) as usize && b.paused_until.is_none() {
            b.paused_until = Some(now + config.breaker_cooldown);
            return true;
        }
        false
    }
}

/// Rows waiting to be handed to the writer.
pub struct Outbox {
    rows: Mutex<Batch>,
    sink: Box<dyn Sink>,
    /// Rows the writer refused (its queue was full).
    pub dropped_rows: AtomicU64,
}

impl Outbox {
    pub fn new(sink: Box<dyn Sink>) -> Arc<Outbox> {
        Arc::new(Outbox {
            rows: Mutex::new(Batch::default()),
            sink,
            dropped_rows: AtomicU64::new(0),
        })
    }

    pub fn push(&self, mut part: Batch) {
        self.take_from(&mut part);
    }

    /// Moves `part`'s rows in, leaving it empty with its capacity kept.
    pub fn take_from(&self, part: &mut Batch) {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        rows.spans.append(&mut part.spans);
        rows.logs.append(&mut part.logs);
        let f = &mut rows.functions;
        f.invocations.append(&mut part.functions.invocations);
        f.definitions.append(&mut part.functions.definitions);
        f.state.append(&mut part.functions.state);
        f.published.append(&mut part.functions.published);
    }

    pub fn flush(&self) {
        let batch = std::mem::take(&mut *self.rows.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        if !self.sink.submit(batch) {
            self.dropped_rows.fetch_add(n, Ordering::Relaxed);
            tracing::warn!(
                rows = n,
                "the write queue is full; function results dropped"
            );
        }
    }
}

enum Task {
    Run(Arc<FunctionSlot>),
    Stop,
}

struct Shared {
    config: ExecutorConfig,
    /// Set at shutdown: running handlers are interrupted, queued jobs dropped.
    cancel: Arc<AtomicBool>,
    ready: Sender<Task>,
    outbox: Arc<Outbox>,
    runtime: Arc<RuntimeContext>,
    /// What each worker is running, by worker number.
    in_flight: Vec<InFlight>,
}

/// The worker pool.
pub struct Executor {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    flusher: Mutex<Option<(Arc<AtomicBool>, JoinHandle<()>)>>,
}

impl Executor {
    pub fn start(
        config: ExecutorConfig,
        outbox: Arc<Outbox>,
        runtime: Arc<RuntimeContext>,
    ) -> std::io::Result<Executor> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let workers = config.workers.max(1);
        let shared = Arc::new(Shared {
            config,
            cancel: Arc::new(AtomicBool::new(false)),
            ready: tx,
            outbox,
            runtime,
            in_flight: (0..workers).map(|_| InFlight::default()).collect(),
        });
        let mut threads = Vec::new();
        for i in 0..workers {
            let shared = shared.clone();
            let rx = rx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("qyl-fn-{i}"))
                    .spawn(move || Worker::new(shared, i).run(rx))?,
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flusher = {
            let stop = stop.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("qyl-fn-outbox".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        std::thread::sleep(FLUSH_EVERY);
                        let now = Instant::now();
                        for cell in &shared.in_flight {
                            cell.report(&shared.outbox, now);
                        }
                        shared.outbox.flush();
                    }
                    shared.outbox.flush();
                })?
        };
        Ok(Executor {
            shared,
            workers: Mutex::new(threads),
            flusher: Mutex::new(Some((stop, flusher))),
        })
    }

    pub fn config(&self) -> &ExecutorConfig {
        &self.shared.config
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.shared.outbox
    }

    /// Queues a job, or records it as skipped; never blocks.
    pub fn offer(&self, slot: &Arc<FunctionSlot>, job: Job) {
        if slot.retired.load(Ordering::Acquire) {
            return;
        }
        if slot.paused_until().is_some() {
            return self.skip(slot, &job, PAUSED);
        }
        if slot.limiter.as_ref().is_some_and(|l| l.check().is_err()) {
            return self.skip(slot, &job, "rate limit reached");
        }
        {
            let mut q = slot.queue();
            if q.len() >= slot.queue_size {
                drop(q);
                return self.skip(slot, &job, "queue full");
            }
            q.push_back(job);
        }
        if slot.try_activate() {
            let _ = self.shared.ready.send(Task::Run(slot.clone()));
        }
    }

    fn skip(&self, slot: &FunctionSlot, job: &Job, reason: &str) {
        skip(&self.shared.outbox, slot, job, reason);
    }

    /// Stops the workers once their current drain ends (queued jobs are
    /// dropped) and flushes the outbox. Idempotent.
    pub fn stop(&self) {
        let workers: Vec<_> =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        if !workers.is_empty() {
            self.shared.cancel.store(true, Ordering::Release);
        }
        for _ in 0..workers.len() {
            let _ = self.shared.ready.send(Task::Stop);
        }
        for w in workers {
            let _ = w.join();
        }
        if let Some((stop, t)) = self
            .flusher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            stop.store(true, Ordering::Release);
            let _ = t.join();
        }
    }
}

/// Counts a skipped invocation; writes a row for the first one of each
/// second per function, so the table says why without a row each.
fn skip(outbox: &Outbox, slot: &FunctionSlot, job: &Job, reason: &str) {
    slot.stats.add(InvocationStatus::Skipped);
    let now = now_unix_nano();
    let second = now / 1_000_000_000;
    let last = slot.stats.skipped_sampled.load(Ordering::Relaxed);
    if last == second
        || slot
            .stats
            .skipped_sampled
            .compare_exchange(last, second, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let (trace_id, span_id) = trigger_ids(&job.trigger);
    let mut batch = Batch::default();
    batch.functions.invocations.push(Invocation {
        invocation_id: ids::span_id(),
        function: slot.spec.name.clone(),
        status: InvocationStatus::Skipped,
        result: None,
        error: Some(reason.to_string()),
        duration_ms: 0.0,
        trace_id,
        span_id,
        started_unix_nano: now,
        finished_unix_nano: now,
        replaces_running: false,
    });
    outbox.push(batch);
}
impl Drop for Executor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The trace and span ids of the record that triggered a job.
pub(super) fn trigger_ids(t: &Trigger) -> (Option<String>, Option<String>) {
    match t {
        Trigger::Record(e) => match &e.record {
            Record::Span(s) => (Some(s.trace_id.to_string()), Some(s.span_id.to_string())),
            Record::Log(l) => (l.trace_id.clone(), l.span_id.clone()),
            Record::Error(g) => (g.trace_id.clone(), None),
            // An SLO level change comes from many requests, not one.
            _ => (None, None),
        },
        Trigger::Schedule => (None, None),
    }
}

/// A VM with one function version loaded.
struct Vm {
    sandbox: Sandbox,
    handler: Function,
    when: Option<Function>,
    runtime: Table,
    slot: Weak<FunctionSlot>,
    last_used: Instant,
}

struct Worker {
    shared: Arc<Shared>,
    /// This worker's number: its cell in `shared.in_flight`.
    index: usize,
    vms: HashMap<u64, Vm>,
    /// Rows of the invocation running, moved to the outbox when it ends
    /// (kept here so their vectors' capacity is reused).
    out: Batch,
    last_sweep: Instant,
}

/// How one invocation ended, before it becomes a row.
struct Outcome {
    status: InvocationStatus,
    result: Option<String>,
    error: Option<String>,
}

impl Worker {
    fn new(shared: Arc<Shared>, index: usize) -> Worker {
        Worker {
            shared,
            index,
            vms: HashMap::new(),
            out: Batch::default(),
            last_sweep: Instant::now(),
        }
    }

    fn run(mut self, rx: Receiver<Task>) {
        while let Ok(task) = rx.recv() {
            let slot = match task {
                Task::Run(slot) => slot,
                Task::Stop => break,
            };
            self.drain(&slot);
            if self.last_sweep.elapsed() > Duration::from_secs(5) {
                self.sweep();
            }
        }
    }

    /// Drops VMs of versions that were replaced or deleted.
    fn sweep(&mut self) {
        self.last_sweep = Instant::now();
        self.vms.retain(|_, vm| {
            vm.slot
                .upgrade()
                .is_some_and(|s| !s.retired.load(Ordering::Acquire) || s.queued() > 0)
        });
    }

    fn drain(&mut self, slot: &Arc<FunctionSlot>) {
        let mut ran = 0;
        loop {
            let jobs: Vec<Job> = {
                let mut q = slot.queue();
                let n = q.len().min(DRAIN - ran);
                q.drain(..n).collect()
            };
            if jobs.is_empty() {
                slot.active.fetch_sub(1, Ordering::AcqRel);
                // A job may have been queued after the check but before the
                // release, by an offer that saw the task still active.
                if slot.queued() > 0 && slot.try_activate() {
                    continue;
                }
                return;
            }
            for job in jobs {
                ran += 1;
                self.invoke(slot, job);
            }
            if ran >= DRAIN {
                // Still active: hand the task back so others get a turn.
                let _ = self.shared.ready.send(Task::Run(slot.clone()));
                return;
            }
        }
    }

    fn vm(&mut self, slot: &Arc<FunctionSlot>) -> Result<&mut Vm, String> {
        if !self.vms.contains_key(&slot.id) {
            if self.vms.len() >= MAX_VMS_PER_WORKER {
                if let Some((&oldest, _)) = self.vms.iter().min_by_key(|(_, vm)| vm.last_used) {
                    self.vms.remove(&oldest);
                }
            }
            let vm = build_vm(slot, &self.shared.runtime, &self.shared.cancel)?;
            self.vms.insert(slot.id, vm);
        }
        let vm = self
            .vms
            .get_mut(&slot.id)
            .ok_or_else(|| "the VM vanished".to_string())?;
        vm.last_used = Instant::now();
        Ok(vm)
    }

    fn invoke(&mut self, slot: &Arc<FunctionSlot>, job: Job) {
        // Shutting down: what is still queued is dropped, not run.
        if self.shared.cancel.load(Ordering::Acquire) {
            return;
        }
        // Jobs queued before the breaker tripped do not run either.
        if slot.paused_until().is_some() {
            return skip(&self.shared.outbox, slot, &job, PAUSED);
        }
        let started = Instant::now();
        let started_ns = now_unix_nano();
        let shared = self.shared.clone();
        let config = &shared.config;
        let timeout = slot.spec.timeout.min(config.max_timeout);
        let record = match &job.trigger {
            Trigger::Record(e) => Some(e.clone()),
            Trigger::Schedule => None,
        };
        let invocation = ids::next();
        let mut current = Current {
            deadline: started + timeout,
            function: slot.spec.name.clone(),
            trace_id: ids::trace_id(),
            span_id: ids::span_id_text(invocation),
            cancel: shared.cancel.clone(),
        };
        let in_flight = &shared.in_flight[self.index];
        // Announced once `when` said yes: only a handler gets a running row.
        let begin = || in_flight.begin(slot, &job.trigger, invocation, started, started_ns);
        let outcome = match self.vm(slot) {
            Err(e) => Some(Outcome {
                status: InvocationStatus::Failed,
                result: None,
                error: Some(format!("loading the function: {e}")),
            }),
            Ok(vm) => run_in_vm(vm, record, config, timeout, &mut current, &begin),
        };
        let replaces_running = in_flight.end();
        let Current {
            trace_id,
            span_id: invocation_id,
            ..
        } = current;
        // Taken even from a VM about to be dropped: a call that ran into the
        // deadline is the one worth seeing.
        let (http, secrets) = match self.vms.get(&slot.id) {
            Some(vm) => {
                let lua = vm.sandbox.lua();
                (
                    lua.remove_app_data::<HttpCalls>()
                        .map(|c| c.0)
                        .unwrap_or_default(),
                    lua.app_data_ref::<SeenSecrets>()
                        .filter(|s| !s.is_empty())
                        .map(|s| s.clone()),
                )
            }
            None => (Vec::new(), None),
        };
        // A VM that hit a limit may be half-updated: build a fresh one next time.
        if self
            .vms
            .get(&slot.id)
            .is_some_and(|vm| vm.sandbox.is_poisoned())
        {
            self.vms.remove(&slot.id);
        }
        let Some(mut outcome) = outcome else {
            return; // `when` said no: not an invocation.
        };
        let stats = &slot.stats;
        if let Some(secrets) = &secrets {
            secrets.scrub_option(&mut outcome.error);
            secrets.scrub_option(&mut outcome.result);
        }
        if !http.is_empty() {
            let failed = http.iter().filter(|c| !c.ok()).count() as u64;
            stats
                .http_calls
                .fetch_add(http.len() as u64, Ordering::Relaxed);
            stats.http_failed.fetch_add(failed, Ordering::Relaxed);
        }
        let took = started.elapsed();
        let finished_ns = now_unix_nano();
        stats.add(outcome.status);
        stats
            .last_invoked_unix_nano
            .store(started_ns, Ordering::Relaxed);
        stats.duration.record(took);
        if outcome.status != InvocationStatus::Completed {
            if let Some(e) = &outcome.error {
                *stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
            }
            if slot.failed(config) {
                tracing::warn!(
                    function = %slot.spec.name,
                    error = outcome.error.as_deref().unwrap_or(""),
                    cooldown_secs = config.breaker_cooldown.as_secs(),
                    "function paused by the circuit breaker after repeated failures"
                );
            }
        }
        let (trigger_trace, trigger_span) = trigger_ids(&job.trigger);
        let mut span = own_span(
            slot,
            trace_id,
            invocation_id.clone(),
            started_ns,
            finished_ns,
            &outcome,
            trigger_trace.as_deref().zip(trigger_span.as_deref()),
        );
        if !http.is_empty() {
            add_http_calls(&mut span, &http);
        }
        if let Some(secrets) = &secrets {
            secrets.scrub_in_place(&mut span.attributes);
            secrets.scrub_in_place(&mut span.events);
        }
        self.out.spans.push(span);
        self.out.functions.invocations.push(Invocation {
            invocation_id,
            function: slot.spec.name.clone(),
            status: outcome.status,
            result: outcome.result,
            error: outcome.error,
            duration_ms: took.as_secs_f64() * 1e3,
            trace_id: trigger_trace,
            span_id: trigger_span,
            started_unix_nano: started_ns,
            finished_unix_nano: finished_ns,
            replaces_running,
        });
        // Rows `runtime` produced during the call (logs, state, publish).
        if let Some(mut rows) = self
            .vms
            .get(&slot.id)
            .and_then(|vm| vm.sandbox.lua().remove_app_data::<Batch>())
        {
            if let Some(secrets) = &secrets {
                scrub_rows(secrets, &mut rows);
            }
            self.out.logs.extend(rows.logs);
            merge_functions(&mut self.out.functions, rows.functions);
        }
        // Into the outbox at once (the outbox thread hands it to the writer
        // within 10 ms), so a slow invocation after this one does not hold
        // this one's rows back.
        self.shared.outbox.take_from(&mut self.out);
    }
}

/// Replaces the secrets a VM read in the rows it wrote: none reaches the
/// database. (Its in-memory `runtime.state` keeps the value it set.)
fn scrub_rows(secrets: &SeenSecrets, rows: &mut Batch) {
    for log in &mut rows.logs {
        secrets.scrub_option(&mut log.body);
        secrets.scrub_in_place(&mut log.attributes);
    }
    for p in &mut rows.functions.published {
        secrets.scrub_in_place(&mut p.value);
    }
    for w in &mut rows.functions.state {
        secrets.scrub_option(&mut w.value);
    }
}

/// `runtime.http` on the invocation's span: totals as attributes
/// (`qyl.function.http.*`) and one `http.request` event per attempt, with
/// the origin (never the path, which may hold a token), status, timing
/// and error.
fn add_http_calls(span: &mut SpanRecord, calls: &[HttpCall]) {
    let mut attrs: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&span.attributes).unwrap_or_default();
    let mut origins: Vec<&str> = Vec::new();
    for c in calls {
        if !origins.contains(&c.origin.as_str()) {
            origins.push(&c.origin);
        }
    }
    let failed = calls.iter().filter(|c| !c.ok()).count();
    let ms: f64 = calls.iter().map(|c| c.duration.as_secs_f64() * 1e3).sum();
    attrs.insert("qyl.function.http.calls".into(), calls.len().into());
    attrs.insert("qyl.function.http.failed".into(), failed.into());
    attrs.insert("qyl.function.http.duration_ms".into(), ms.into());
    attrs.insert("qyl.function.http.origins".into(), origins.into());
    attrs.insert(
        "qyl.function.http.statuses".into(),
        calls
            .iter()
            .map(|c| c.status.map_or(serde_json::Value::Null, Into::into))
            .collect::<Vec<_>>()
            .into(),
    );
    span.attributes = serde_json::Value::Object(attrs).to_string();
    let mut events: Vec<serde_json::Value> = serde_json::from_str(&span.events).unwrap_or_default();
    for c in calls {
        let mut a = serde_json::json!({
            "http.request.method": c.method,
            "url.origin": c.origin,
            "qyl.http.duration_ms": c.duration.as_secs_f64() * 1e3,
            "qyl.http.request_bytes": c.request_bytes,
            "qyl.http.response_bytes": c.response_bytes,
        });
        if let Some(status) = c.status {
            a["http.response.status_code"] = status.into();
        }
        if let Some(e) = &c.error {
            a["error.message"] = e.as_str().into();
        }
        events.push(serde_json::json!({
            "time_unix_nano": c.started_unix_nano,
            "name": "http.request",
            "attributes": a,
        }));
    }
    span.events = serde_json::Value::Array(events).to_string();
}

fn merge_functions(into: &mut FunctionRows, from: FunctionRows) {
    into.state.extend(from.state);
    into.published.extend(from.published);
    into.invocations.extend(from.invocations);
    into.definitions.extend(from.definitions);
}

fn build_vm(
    slot: &Arc<FunctionSlot>,
    runtime: &Arc<RuntimeContext>,
    cancel: &Arc<AtomicBool>,
) -> Result<Vm, String> {
    let mut sandbox =
        Sandbox::with_cancel(Limits::with_memory_mb(slot.spec.memory_mb), cancel.clone())
            .map_err(|e| e.to_string())?;
    let loaded =
        load_script(&mut sandbox, &slot.spec.file, &slot.source).map_err(|e| e.to_string())?;
    let f = loaded
        .into_iter()
        .find(|f| f.spec.name == slot.spec.name)
        .ok_or_else(|| format!("the script no longer defines {:?}", slot.spec.name))?;
    let runtime = runtime_api::install(sandbox.lua(), runtime.clone(), slot.stats.clone())
        .map_err(|e| format!("building `runtime`: {e}"))?;
    Ok(Vm {
        sandbox,
        handler: f.handler,
        when: f.when,
        runtime,
        slot: Arc::downgrade(slot),
        last_used: Instant::now(),
    })
}

fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Nil | Value::Boolean(false))
}

/// Runs `when` (if any) then the handler; `None` when `when` declined.
fn run_in_vm(
    vm: &mut Vm,
    record: Option<Event>,
    config: &ExecutorConfig,
    timeout: Duration,
    current: &mut Current,
    begin: &dyn Fn(),
) -> Option<Outcome> {
    let failed = |status, error: String| Outcome {
        status,
        result: None,
        error: Some(error),
    };
    let record = match record {
        Some(event) => match vm.sandbox.lua().create_userdata(LuaRecord(Some(event))) {
            Ok(ud) => Some(ud),
            Err(e) => return Some(failed(InvocationStatus::Failed, format!("the record: {e}"))),
        },
        None => None,
    };
    let arg = record.clone().map_or(Value::Nil, Value::UserData);
    let outcome = run_with_record(vm, &arg, config, timeout, current, begin);
    // A script that kept the record gets a clear error when it uses it later.
    if let Some(Ok(mut r)) = record.as_ref().map(|ud| ud.borrow_mut::<LuaRecord>()) {
        r.0 = None;
    }
    outcome
}

fn run_with_record(
    vm: &mut Vm,
    arg: &Value,
    config: &ExecutorConfig,
    timeout: Duration,
    current: &mut Current,
    begin: &dyn Fn(),
) -> Option<Outcome> {
    let failed = |status, error: String| Outcome {
        status,
        result: None,
        error: Some(error),
    };
    if let Some(when) = &vm.when {
        let when_timeout = config.when_timeout.min(timeout);
        // No `runtime` here: a refinement only looks at the record.
        vm.sandbox.lua().remove_app_data::<Current>();
        let r = vm
            .sandbox
            .run(when_timeout, |_| when.call::<Value>(arg.clone()));
        match r {
            Ok(v) if truthy(&v) => {}
            Ok(_) => return None,
            Err(e) => {
                let status = match e {
                    SandboxError::Timeout(_) => InvocationStatus::TimedOut,
                    _ => InvocationStatus::Failed,
                };
                return Some(failed(
                    status,
                    format!("trigger.when: {}", without_traceback(&e.to_string())),
                ));
            }
        }
    }
    begin();
    vm.sandbox.lua().set_app_data(std::mem::take(current));
    let handler = vm.handler.clone();
    let runtime = vm.runtime.clone();
    let r = vm.sandbox.run(timeout, |lua| {
        let v: Value = handler.call((arg.clone(), runtime))?;
        result_json(lua, v)
    });
    if let Some(back) = vm.sandbox.lua().remove_app_data::<Current>() {
        *current = back;
    }
    Some(match r {
        Ok(result) => Outcome {
            status: InvocationStatus::Completed,
            result,
            error: None,
        },
        Err(e @ SandboxError::Timeout(_)) => failed(InvocationStatus::TimedOut, e.to_string()),
        Err(e) => failed(InvocationStatus::Failed, without_traceback(&e.to_string())),
    })
}

/// An error as the user should read it: the message, not mlua's traceback.
fn without_traceback(message: &str) -> String {
    message
        .split("\nstack traceback")
        .next()
        .unwrap_or(message)
        .trim()
        .to_string()
}

/// The handler's return value as JSON text; nil is "nothing to keep".
fn result_json(lua: &Lua, v: Value) -> mlua::Result<Option<String>> {
    match v {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(
            serde_json::to_string(&*s.to_str()?).map_err(mlua::Error::external)?,
        )),
        Value::Boolean(b) => Ok(Some(b.to_string())),
        Value::Integer(i) => Ok(Some(i.to_string())),
        Value::Number(n) => Ok(Some(runtime_api::number_json(n))),
        Value::UserData(ud) => userdata_json(&ud),
        other => {
            let json: serde_json::Value = lua.from_value(other).map_err(|e| {
                mlua::Error::runtime(format!("the result cannot be stored as JSON: {e}"))
            })?;
            Ok(Some(json.to_string()))
        }
    }
}

fn userdata_json(ud: &AnyUserData) -> mlua::Result<Option<String>> {
    match ud.borrow::<LuaRecord>() {
        Ok(r) => Ok(Some(r.to_json()?.to_string())),
        Err(_) => Err(mlua::Error::runtime(
            "the result cannot be stored as JSON: a userdata",
        )),
    }
}

/// qyl's own span for an invocation (`execute_tool {function}`, after the
/// GenAI semantic conventions for tool calls), linked to the record that
/// triggered it rather than inside its trace, so users' traces stay theirs.
fn own_span(
    slot: &FunctionSlot,
    trace_id: String,
    span_id: String,
    start: u64,
    end: u64,
    outcome: &Outcome,
    link: Option<(&str, &str)>,
) -> SpanRecord {
    let ok = outcome.status == InvocationStatus::Completed;
    let status = outcome.status.as_str();
    let mut attributes = String::with_capacity(slot.own_attrs_prefix.len() + status.len() + 2);
    attributes.push_str(&slot.own_attrs_prefix);
    attributes.push_str(status);
    attributes.push_str("\"}");
    let links = match link {
        Some((t, s)) => serde_json::json!([{
            "trace_id": t, "span_id": s, "trace_state": null, "attributes": {}
        }])
        .to_string(),
        None => "[]".into(),
    };
    SpanRecord {
        trace_id: trace_id.into(),
        span_id: span_id.into(),
        name: slot.own_span_name.clone(),
        kind: "INTERNAL",
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        duration_ns: end.saturating_sub(start),
        status_code: if ok { "OK" } else { "ERROR" },
        status_message: outcome.error.clone(),
        service_name: OWN_SERVICE.into(),
        scope_name: Some(OWN_SCOPE.into()),
        attributes,
        resource: OWN_RESOURCE.into(),
        events: "[]".into(),
        links,
        ..Default::default()
    }
}

/// A log record of qyl's own from `runtime.log`, inside the invocation's span.
pub(crate) fn own_log(current: &Current, severity: (i32, &str), message: String) -> LogRecord {
    let now = now_unix_nano();
    LogRecord {
        time_unix_nano: now,
        observed_time_unix_nano: now,
        trace_id: Some(current.trace_id.clone()),
        span_id: Some(current.span_id.clone()),
        severity_number: severity.0,
        severity_text: Some(severity.1.to_string()),
        body: Some(message),
        service_name: OWN_SERVICE.into(),
        scope_name: Some(OWN_SCOPE.into()),
        attributes: serde_json::json!({ "qyl.function.name": current.function }).to_string(),
        resource: OWN_RESOURCE.into(),
        ..Default::default()
    }
}

/// Trace and span ids for qyl's own spans: random, from a per-thread
/// generator seeded by the OS (ids need to be unique, not secret).
pub(crate) mod ids {
    use std::cell::Cell;

    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }

    fn seed() -> u64 {
        let mut b = [0u8; 8];
        if getrandom::fill(&mut b).is_err() {
            // Without OS randomness, time and thread still make ids unique
            // enough for one process.
            let t = crate::model::now_unix_nano();
            b = t.to_le_bytes();
        }
        u64::from_le_bytes(b) | 1
    }

    /// splitmix64: fast, full-period, good enough for ids.
    pub fn next() -> u64 {
        STATE.with(|s| {
            let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            s.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    }

    pub fn span_id() -> String {
        span_id_text(next())
    }

    /// A span id from [`next`], as text.
    pub fn span_id_text(id: u64) -> String {
        format!("{id:016x}")
    }

    pub fn trace_id() -> String {
        format!("{:016x}{:016x}", next(), next())
    }
}
