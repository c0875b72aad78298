//! Decode benchmark: what it costs to turn one OTLP/HTTP protobuf trace
//! export (the ingest benchmark's 512 spans) into `SpanRecord`s, the way the
//! server did it before (prost into owned `opentelemetry_proto` types, then
//! `convert_traces`) and the direct path (`spans::decode_traces` walking the
//! wire bytes). Per span: CPU from the thread CPU clock (so the other cores'
//! load is not billed here) and heap allocations from a counting allocator
//! around mimalloc, the binary's allocator.
//!
//! Environment: BENCH_ROUNDS (exports per measurement, default 400),
//! BENCH_REPEATS (measurements per path, interleaved; the median is
//! printed; default 7), BENCH_EXCEPTIONS=1 (one span in 50 carries a Python
//! exception event, as in the ingest benchmark), BENCH_ONLY=i (run path i
//! alone, for a profiler).

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use qyl::ingest::convert::{convert_traces, Converted};
use qyl::ingest::spans::decode_traces;
use qyl::model::SpanRecord;

mod common;

use common::{Template, SPANS_PER_REQUEST};

/// mimalloc, counting the blocks it hands out (`realloc` counted apart).
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to mimalloc.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One measurement: CPU µs, allocations and reallocations per span over
/// `rounds` decodes of `body`. The records are dropped outside the timed
/// part (the writer frees them later, whichever path made them).
fn measure<T>(
    body: &[u8],
    rounds: usize,
    decode: fn(&[u8]) -> T,
    count: fn(&T) -> usize,
) -> (f64, f64, f64) {
    let mut cpu = Duration::ZERO;
    let mut allocs = 0;
    let mut reallocs = 0;
    let mut spans = 0;
    for _ in 0..rounds {
        let (a0, r0) = (
            ALLOCS.load(Ordering::Relaxed),
            REALLOCS.load(Ordering::Relaxed),
        );
        let t0 = thread_cpu();
        let c = black_box(decode(black_box(body)));
        cpu += thread_cpu() - t0;
        allocs += ALLOCS.load(Ordering::Relaxed) - a0;
        reallocs += REALLOCS.load(Ordering::Relaxed) - r0;
        spans += count(&c);
        drop(c);
    }
    let n = spans as f64;
    (
        cpu.as_secs_f64() * 1e6 / n,
        allocs as f64 / n,
        reallocs as f64 / n,
    )
}

fn prost_path(body: &[u8]) -> Converted<SpanRecord> {
    let req = ExportTraceServiceRequest::decode(body).expect("a valid export");
    convert_traces(req)
}

fn direct_path(body: &[u8]) -> Converted<SpanRecord> {
    decode_traces(body).expect("a valid export")
}

fn prost_decode_only(body: &[u8]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(body).expect("a valid export")
}

fn records(c: &Converted<SpanRecord>) -> usize {
    c.records.len()
}

fn request_spans(r: &ExportTraceServiceRequest) -> usize {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

/// The paths measured; the first is the baseline, the last the new path.
const PATHS: [&str; 3] = [
    "prost + convert_traces",
    "(of which prost decode)",
    "direct (spans::decode_traces)",
];

fn measure_path(i: usize, body: &[u8], rounds: usize) -> (f64, f64, f64) {
    match i {
        0 => measure(body, rounds, prost_path, records),
        1 => measure(body, rounds, prost_decode_only, request_spans),
        _ => measure(body, rounds, direct_path, records),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds = env_or("BENCH_ROUNDS", 400);
    let repeats = env_or("BENCH_REPEATS", 7).max(1);
    let body = Template::new().request(1, 0).to_vec();
    assert_eq!(
        prost_path(&body),
        direct_path(&body),
        "both paths give the same records"
    );

    if let Ok(only) = std::env::var("BENCH_ONLY") {
        // One path alone, for a profiler.
        let i = only.parse().unwrap_or(0);
        let (us, a, r) = measure_path(i, &body, rounds * repeats);
        println!(
            "{}: {us:.3} µs/span, {a:.2} allocs, {r:.2} reallocs",
            PATHS[i]
        );
        return;
    }
    for i in 0..PATHS.len() {
        measure_path(i, &body, rounds / 4 + 1); // warm up
    }
    let mut figures = vec![(Vec::new(), Vec::new(), Vec::new()); PATHS.len()];
    for _ in 0..repeats {
        for (i, (us, a, r)) in figures.iter_mut().enumerate() {
            let (u, x, y) = measure_path(i, &body, rounds);
            us.push(u);
            a.push(x);
            r.push(y);
        }
    }
    println!(
        "decode: {} bytes, {SPANS_PER_REQUEST} spans per export, {rounds} exports x {repeats} (median)",
        body.len()
    );
    println!(
        "{:<28} {:>10} {:>14} {:>14}",
        "path", "µs/span", "allocs/span", "reallocs/span"
    );
    let mut medians = Vec::new();
    for (name, (us, a, r)) in PATHS.iter().zip(figures) {
        let (us, a, r) = (median(us), median(a), median(r));
        println!("{name:<28} {us:>10.3} {a:>14.2} {r:>14.2}");
        medians.push((us, a + r));
    }
    if let ([(base_us, base_a), ..], [.., (new_us, new_a)]) = (&medians[..], &medians[..]) {
        println!(
            "direct / prost: CPU {:.3}x, allocations {:.3}x",
            new_us / base_us,
            new_a / base_a
        );
    }
}
