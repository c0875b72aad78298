//! Feeds the executor: a hub consumer on its own thread matches every
//! committed span and log against the registry's trigger index (native,
//! no Lua) and offers the matches, error group changes to `on =
//! "error"` functions and SLO level changes to `on = "slo"` functions; a
//! scheduler thread fires `on = "schedule"` functions. qyl's own function telemetry (the
//! `execute_tool` spans and `runtime.log` records) is never offered, so a
//! function cannot trigger itself in a loop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::executor::{Executor, Job, Trigger, OWN_SCOPE};
use super::registry::Registry;
use super::spec;
use super::trigger::RecordView;
use crate::model::{Record, OWN_SERVICE};
use crate::stream::hub::RecvError;
use crate::stream::{Event, Hub};

/// How often the scheduler looks for due schedules.
const SCHEDULE_TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
pub struct DispatchStats {
    /// Records checked against the index.
    pub records: AtomicU64,
    /// Jobs offered to the executor.
    pub matched: AtomicU64,
    /// Records the dispatcher missed because it fell a whole ring behind.
    pub lagged: AtomicU64,
}

pub struct Dispatcher {
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    pub stats: Arc<DispatchStats>,
}

/// True for qyl's own function telemetry, which must not trigger functions.
fn is_own(record: &Record) -> bool {
    let (service, scope) = match record {
        Record::Span(s) => (&*s.service_name, s.scope_name.as_deref()),
        Record::Log(l) => (l.service_name.as_str(), l.scope_name.as_deref()),
        // A failed invocation is an error of service `qyl` too, but groups
        // only publish when new, regressed or escalating, so an `on =
        // "error"` function failing on them cannot loop faster than that.
        Record::Error(_) | Record::Slo(_) => return false,
        _ => return true,
    };
    service == OWN_SERVICE && scope == Some(OWN_SCOPE)
}

/// Offers one committed record to every function whose `where` it meets.
pub fn dispatch(registry: &Registry, executor: &Executor, event: &Event) -> usize {
    let snapshot = registry.snapshot();
    // Without span or log functions (most servers), a committed span is
    // passed over without reading it: it was written on another core, and
    // reading it here cost ~0.2 µs per span under load.
    if matches!(event.record, Record::Span(_) | Record::Log(_)) && snapshot.index.is_empty() {
        return 0;
    }
    if is_own(&event.record) {
        return 0;
    }
    let view = match &event.record {
        Record::Span(s) => RecordView::span(s),
        Record::Log(l) => RecordView::log(l),
        Record::Error(group) => {
            let mut n = 0;
            for slot in &snapshot.errors {
                if let spec::Trigger::Error { filter, .. } = &slot.spec.trigger {
                    if filter.matches(group) {
                        executor.offer(
                            slot,
                            Job {
                                trigger: Trigger::Record(event.clone()),
                            },
                        );
                        n += 1;
                    }
                }
            }
            return n;
        }
        Record::Slo(transition) => {
            let mut n = 0;
            for slot in &snapshot.slos {
                if let spec::Trigger::Slo { filter, .. } = &slot.spec.trigger {
                    if filter.matches(transition) {
                        executor.offer(
                            slot,
                            Job {
                                trigger: Trigger::Record(event.clone()),
                            },
                        );
                        n += 1;
                    }
                }
            }
            return n;
        }
        _ => return 0,
    };
    let hits = snapshot.index.matching(&view);
    if hits.is_empty() {
        return 0;
    }
    // A queued job holds its record for as long as the function is behind
    // (up to its queue size): a copy of its own, not the export's whole
    // vector that the hub's record shares (`model::Shared`).
    let event = Event {
        seq: event.seq,
        record: event.record.detached(),
    };
    for slot in &hits {
        executor.offer(
            slot,
            Job {
                trigger: Trigger::Record(event.clone()),
            },
        );
    }
    hits.len()
}

impl Dispatcher {
    pub fn start(
        hub: Arc<Hub>,
        registry: Arc<Registry>,
        executor: Arc<Executor>,
    ) -> std::io::Result<Dispatcher> {
        let (stop, stopped) = watch::channel(false);
        let stats = Arc::new(DispatchStats::default());
        let mut threads = Vec::new();
        {
            let mut rx = hub.subscribe();
            let mut stopped = stopped.clone();
            let (registry, executor, stats) = (registry.clone(), executor.clone(), stats.clone());
            let rt = tokio::runtime::Builder::new_current_thread().build()?;
            threads.push(
                std::thread::Builder::new()
                    .name("qyl-fn-dispatch".into())
                    .spawn(move || {
                        rt.block_on(async move {
                            loop {
                                let event = tokio::select! {
                                    _ = stopped.wait_for(|s| *s) => return,
                                    e = rx.recv() => e,
                                };
                                match event {
                                    Ok(event) => {
                                        stats.records.fetch_add(1, Ordering::Relaxed);
                                        let n = dispatch(&registry, &executor, &event);
                                        stats.matched.fetch_add(n as u64, Ordering::Relaxed);
                                    }
                                    Err(RecvError::Lagged(n)) => {
                                        stats.lagged.fetch_add(n, Ordering::Relaxed);
                                        tracing::warn!(missed = n, "function dispatcher fell behind the hub; records skipped");
                                    }
                                    Err(RecvError::Closed) => return,
                                }
                            }
                        })
                    })?,
            );
        }
        {
            let stopped = stopped.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("qyl-fn-schedule".into())
                    .spawn(move || schedule_loop(&registry, &executor, &stopped))?,
            );
        }
        Ok(Dispatcher {
            stop,
            threads,
            stats,
        })
    }

    pub fn stop(&mut self) {
        let _ = self.stop.send(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.stop();
    }
}

fn schedule_loop(registry: &Registry, executor: &Executor, stopped: &watch::Receiver<bool>) {
    // Next firing per slot (by address: a reload makes a new slot, which
    // starts its own period).
    let mut next: HashMap<usize, Instant> = HashMap::new();
    while !*stopped.borrow() {
        let now = Instant::now();
        let snapshot = registry.snapshot();
        let mut live = Vec::with_capacity(snapshot.schedules.len());
        for slot in &snapshot.schedules {
            let spec::Trigger::Schedule { every } = slot.spec.trigger else {
                continue;
            };
            let key = Arc::as_ptr(slot) as usize;
            live.push(key);
            let due = next.entry(key).or_insert(now + every);
            if *due <= now {
                *due = now + every;
                executor.offer(
                    slot,
                    Job {
                        trigger: Trigger::Schedule,
                    },
                );
            }
        }
        next.retain(|k, _| live.contains(k));
        drop(snapshot);
        std::thread::sleep(SCHEDULE_TICK);
    }
}
