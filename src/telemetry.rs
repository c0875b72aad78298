//! qyl's own health as Prometheus text at `GET /metrics` on the main HTTP
//! port, so the collector itself can be scraped and alerted on like any
//! other service: ingest rates, queue fill, commit latency, live clients.
//!
//! Every figure already lives in an atomic owned by the part that changes it
//! (the writer's `WriterStats`, the live streams' `LiveClients`), so this
//! module only reads them and writes the text format (version 0.0.4) by
//! hand: a registry crate would want to own the metrics instead.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::api::AppState;
use crate::storage::writer::HistogramSnapshot;

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// qyl's own figures in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    responses((status = 200, description = "Prometheus text exposition, version 0.0.4", content_type = "text/plain; version=0.0.4", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Counters move at commit, up to `ingest.fill_ms` after an export is
    // answered; a scrape does not wait for it (as queries do), since asking
    // the writer to commit at once would cut its commits short for every
    // frequent scraper.
    let text = render(&Snapshot::read(&state));
    (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
}

/// One reading of every figure `/metrics` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub spans: u64,
    pub logs: u64,
    pub metrics: u64,
    pub queue_rows: usize,
    pub queue_capacity: usize,
    pub refused_exports: u64,
    pub commit_failures: u64,
    pub held_batches: u64,
    pub duplicate_spans: u64,
    pub commits: u64,
    pub commit_duration: HistogramSnapshot,
    /// The writer thread's time by step (seconds since start).
    pub writer_steps: Vec<(&'static str, f64)>,
    pub checkpoints: u64,
    pub checkpoint_duration: HistogramSnapshot,
    pub live_clients: usize,
    pub live_lagged: u64,
    pub live_skipped: u64,
    pub uptime_secs: f64,
    pub version: &'static str,
    /// Per loaded function: invocations by status and their durations.
    pub functions: Vec<FunctionFigures>,
    /// Function result rows the write queue refused (see `Outbox`).
    pub function_dropped_rows: u64,
    /// Committed records the function dispatcher missed by falling behind.
    pub function_dispatch_lagged: u64,
}

/// One function's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionFigures {
    pub name: String,
    pub by_status: Vec<(&'static str, u64)>,
    pub duration: HistogramSnapshot,
}

impl Snapshot {
    pub fn read(state: &AppState) -> Snapshot {
        use std::sync::atomic::Ordering::Relaxed;
        let w = state.writer.stats();
        Snapshot {
            spans: w.spans_committed.load(Relaxed),
            logs: w.logs_committed.load(Relaxed),
            metrics: w.metrics_committed.load(Relaxed),
            queue_rows: state.writer.queued_rows(),
            queue_capacity: state.writer.queue_capacity(),
            refused_exports: w.refused_exports.load(Relaxed),
            commit_failures: w.commit_failures.load(Relaxed),
            held_batches: w.held_batches.load(Relaxed),
            duplicate_spans: w.duplicate_spans.load(Relaxed),
            commits: w.batches_committed.load(Relaxed),
            commit_duration: w.commit_duration.snapshot(),
            writer_steps: w.steps.snapshot(),
            checkpoints: w.checkpoints.load(Relaxed),
            checkpoint_duration: w.checkpoint_duration.snapshot(),
            live_clients: state.live.open(),
            live_lagged: state.live.lagged_streams(),
            live_skipped: state.live.skipped_events(),
            uptime_secs: state.started.elapsed().as_secs_f64(),
            version: env!("CARGO_PKG_VERSION"),
            functions: state
                .functions
                .registry
                .snapshot()
                .functions
                .values()
                .map(|slot| FunctionFigures {
                    name: slot.spec.name.clone(),
                    // How invocations ended: `running` is not an end.
                    by_status: crate::model::function::InvocationStatus::ALL
                        .iter()
                        .filter(|s| **s != crate::model::function::InvocationStatus::Running)
                        .map(|s| (s.as_str(), slot.stats.count(*s)))
                        .collect(),
                    duration: slot.stats.duration.snapshot(),
                })
                .collect(),
            function_dropped_rows: state
                .functions
                .executor()
                .outbox()
                .dropped_rows
                .load(Relaxed),
            function_dispatch_lagged: state.functions.dispatch_stats().lagged.load(Relaxed),
        }
    }
}

/// The exposition text for a snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut out = Text(String::with_capacity(4096));
    out.family(
        "qyl_ingest_rows_total",
        "counter",
        "Rows committed to storage, by signal.",
    );
    for (signal, n) in [("span", s.spans), ("log", s.logs), ("metric", s.metrics)] {
        out.sample("qyl_ingest_rows_total", &[("signal", signal)], n as f64);
    }
    out.single(
        "qyl_write_queue_rows",
        "gauge",
        "Rows accepted and waiting for the writer.",
        s.queue_rows as f64,
    );
    out.single(
        "qyl_write_queue_capacity_rows",
        "gauge",
        "Rows the write queue holds before exports are refused.",
        s.queue_capacity as f64,
    );
    out.single(
        "qyl_refused_exports_total",
        "counter",
        "Exports refused because the write queue was full (the exporter retries).",
        s.refused_exports as f64,
    );
    out.single(
        "qyl_commit_failures_total",
        "counter",
        "Commits that failed (their exports were answered with an error).",
        s.commit_failures as f64,
    );
    out.single(
        "qyl_held_batches",
        "gauge",
        "Answered batches whose commit failed, kept in the journal and committed again until stored.",
        s.held_batches as f64,
    );
    out.single(
        "qyl_duplicate_spans_total",
        "counter",
        "Spans skipped because they were already stored (retried exports).",
        s.duplicate_spans as f64,
    );
    out.single(
        "qyl_commits_total",
        "counter",
        "Successful group commits.",
        s.commits as f64,
    );
    out.histogram(
        "qyl_commit_duration_seconds",
        "Time from the start of a group commit to its answer.",
        &s.commit_duration,
    );
    out.family(
        "qyl_writer_seconds_total",
        "counter",
        "Time the writer thread spent per step of its commits: append, each summary table, commit, publish.",
    );
    for (step, secs) in &s.writer_steps {
        out.sample("qyl_writer_seconds_total", &[("step", step)], *secs);
    }
    out.single(
        "qyl_checkpoints_total",
        "counter",
        "Background checkpoints of the write-ahead log.",
        s.checkpoints as f64,
    );
    out.histogram(
        "qyl_checkpoint_duration_seconds",
        "Time each checkpoint took; the writer commits nothing meanwhile.",
        &s.checkpoint_duration,
    );
    out.single(
        "qyl_live_clients",
        "gauge",
        "Open live streams (GET /api/v1/live).",
        s.live_clients as f64,
    );
    out.single(
        "qyl_live_lagged_streams_total",
        "counter",
        "Live streams ended because their client fell a whole ring behind.",
        s.live_lagged as f64,
    );
    out.single(
        "qyl_live_skipped_events_total",
        "counter",
        "Events those lagging live streams did not receive.",
        s.live_skipped as f64,
    );
    out.single(
        "qyl_uptime_seconds",
        "gauge",
        "Seconds since qyl started.",
        s.uptime_secs,
    );
    out.family(
        "qyl_function_invocations_total",
        "counter",
        "Lua function invocations, by function and status (skipped: queue full, rate limit or paused).",
    );
    for f in &s.functions {
        for (status, n) in &f.by_status {
            out.sample(
                "qyl_function_invocations_total",
                &[("function", &f.name), ("status", status)],
                *n as f64,
            );
        }
    }
    out.family(
        "qyl_function_duration_seconds",
        "histogram",
        "How long Lua function invocations ran, by function.",
    );
    for f in &s.functions {
        out.labelled_histogram(
            "qyl_function_duration_seconds",
            "function",
            &f.name,
            &f.duration,
        );
    }
    out.single(
        "qyl_function_dropped_rows_total",
        "counter",
        "Rows of Lua function results (invocations, their execute_tool spans, runtime.log records, state changes) dropped because the write queue was full.",
        s.function_dropped_rows as f64,
    );
    out.single(
        "qyl_function_dispatch_lagged_records_total",
        "counter",
        "Committed records the Lua function dispatcher missed because it fell a whole ring behind (no function saw them).",
        s.function_dispatch_lagged as f64,
    );
    out.family(
        "qyl_build_info",
        "gauge",
        "The running qyl build; the value is always 1.",
    );
    out.sample("qyl_build_info", &[("version", s.version)], 1.0);
    out.0
}

struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The samples of one labelled series of a histogram family.
    fn labelled_histogram(&mut self, name: &str, key: &str, value: &str, h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        for (bound, n) in &h.buckets {
            self.sample(&bucket, &[(key, value), ("le", &number(*bound))], *n as f64);
        }
        self.sample(&bucket, &[(key, value), ("le", "+Inf")], h.count as f64);
        self.sample(&format!("{name}_sum"), &[(key, value)], h.sum_secs);
        self.sample(&format!("{name}_count"), &[(key, value)], h.count as f64);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (bound, n) in &h.buckets {
            self.sample(&bucket, &[("le", &number(*bound))], *n as f64);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count as f64);
        self.sample(&format!("{name}_sum"), &[], h.sum_secs);
        self.sample(&format!("{name}_count"), &[], h.count as f64);
    }
}

/// Go-style float text, as Prometheus writes it (`+Inf`, `NaN`, integers
/// without a fraction).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            spans: 7,
            logs: 2,
            metrics: 0,
            queue_rows: 3,
            queue_capacity: 200_000,
            refused_exports: 1,
            commit_failures: 0,
            held_batches: 1,
            duplicate_spans: 4,
            commits: 5,
            commit_duration: HistogramSnapshot {
                buckets: vec![(0.001, 2), (0.5, 4)],
                sum_secs: 0.75,
                count: 5,
            },
            writer_steps: vec![("append", 1.5), ("session_entities", 0.25)],
            checkpoints: 6,
            checkpoint_duration: HistogramSnapshot {
                buckets: vec![(0.5, 1), (1.0, 5)],
                sum_secs: 4.25,
                count: 6,
            },
            live_clients: 2,
            live_lagged: 1,
            live_skipped: 96,
            uptime_secs: 12.5,
            version: "0.1.0\"x",
            functions: vec![FunctionFigures {
                name: "alert".into(),
                by_status: vec![("completed", 3), ("failed", 1)],
                duration: HistogramSnapshot {
                    buckets: vec![(0.001, 3), (0.5, 4)],
                    sum_secs: 0.01,
                    count: 4,
                },
            }],
            function_dropped_rows: 9,
            function_dispatch_lagged: 0,
        }
    }

    #[test]
    fn renders_every_family_with_help_type_and_samples() {
        let text = render(&snapshot());
        for line in [
            "# TYPE qyl_ingest_rows_total counter",
            "qyl_ingest_rows_total{signal=\"span\"} 7",
            "qyl_ingest_rows_total{signal=\"log\"} 2",
            "qyl_write_queue_capacity_rows 200000",
            "qyl_commit_duration_seconds_bucket{le=\"0.001\"} 2",
            "qyl_commit_duration_seconds_bucket{le=\"0.5\"} 4",
            "qyl_commit_duration_seconds_bucket{le=\"+Inf\"} 5",
            "qyl_commit_duration_seconds_sum 0.75",
            "qyl_commit_duration_seconds_count 5",
            "qyl_uptime_seconds 12.5",
            "# TYPE qyl_held_batches gauge",
            "qyl_held_batches 1",
            "# TYPE qyl_checkpoint_duration_seconds histogram",
            "qyl_checkpoint_duration_seconds_bucket{le=\"1\"} 5",
            "qyl_checkpoint_duration_seconds_bucket{le=\"+Inf\"} 6",
            "qyl_checkpoint_duration_seconds_sum 4.25",
            "qyl_writer_seconds_total{step=\"session_entities\"} 0.25",
            "qyl_build_info{version=\"0.1.0\\\"x\"} 1",
            "qyl_function_invocations_total{function=\"alert\",status=\"failed\"} 1",
            "qyl_function_duration_seconds_bucket{function=\"alert\",le=\"+Inf\"} 4",
            "qyl_function_duration_seconds_count{function=\"alert\"} 4",
            "# TYPE qyl_function_dropped_rows_total counter",
            "qyl_function_dropped_rows_total 9",
            "qyl_function_dispatch_lagged_records_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        // Each family is declared once, before its samples.
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!(types, 21);
        assert!(text.ends_with('\n'));
    }
}
