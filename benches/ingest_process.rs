//! Ingest benchmark with qyl in its own process: the measurement the write
//! path's targets (issue 15) are judged by. `benches/ingest.rs` runs qyl in
//! the benchmark's process, where the load generator's CPU and qyl's share
//! one process; here the real `qyl serve` binary runs as a child on a fresh
//! database with default settings, and its CPU is read from its /proc.
//!
//! Phases, each measured over whole checkpoint cycles (from the end of one of
//! qyl's checkpoints to the end of the first one after
//! BENCH_SECS), after 2 s of warm-up:
//!   1. max throughput, OTLP/HTTP protobuf;
//!   2. paced at half the rate of phase 1: export latency p50/p99, timed from
//!      each export's scheduled send time (a late answer delays the next send,
//!      which must count too);
//!   3. max throughput with gzip bodies (`Content-Encoding: gzip`), from a
//!      pool of distinct bodies compressed before the phase, so compressing
//!      costs the clients nothing while qyl is measured;
//!   4. with BENCH_GRPC=1, max throughput over OTLP/gRPC.
//!
//! For each phase: spans committed per second (qyl's own counter), qyl's
//! total CPU (utime + stime of the child) per committed span, that CPU by
//! thread group, the writer's per-step times, how long checkpoints took and
//! how many commits took over 100 ms (commits wait while a checkpoint runs;
//! exports, answered once journaled, wait only when the writer falls half a
//! queue behind), the peak RSS, the write queue's depth (sampled every
//! 250 ms) and DuckDB's memory by tag at the phase's end. After
//! SIGTERM (qyl checkpoints as it stops): bytes on disk per stored span.
//! The baseline, from the same run: prost decoding the same requests in this
//! process, one thread, timed with the thread's CPU clock.
//!
//! Environment: BENCH_SECS (minimum measured time per phase, default 20),
//! BENCH_CLIENTS (connections, default 8), BENCH_READER_MS (a reader lists
//! traces this often during the phases, as an open dashboard does; each
//! read asks the writer for what it has, at once or, under load, with the
//! next full commit), BENCH_GRPC=1, BENCH_THREADS=1
//! (print qyl's threads one by one), BENCH_QYL_BIN (another `qyl` binary to
//! measure, e.g. a copy of an earlier build for a before/after table; by
//! default the one cargo built with this benchmark), BENCH_PREFILL (spans
//! stored at full speed before the phases, e.g. 10000000 for the "10 M spans
//! on disk" the memory target names; peak RSS is then counted from the end
//! of the fill). QYL_* settings pass
//! through to qyl, so settings can be compared:
//! `QYL_STORAGE_MEMORY_LIMIT_MB=256 cargo bench --bench ingest_process`.
//!
//! The machine's other work competes for the same cores (the load average
//! is printed before and after); CPU per span moves less with it than
//! spans/s does.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

mod common;
use common::grpc::RawCodec;
use common::{env_or, i, s, SPANS_PER_REQUEST};

// The allocator qyl uses, so the decode baseline allocates as qyl does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The target for total qyl CPU per stored span.
const TARGET_US_PER_SPAN: f64 = 9.0;
const WARM_UP: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// What the clients send: one encoded 512-span export whose ids are patched in
// place per request.

/// The shared template (`benches/common`) with a resource of ten
/// attributes and times near now, so retention keeps the spans, and
/// request numbers unique over the whole run (all phases share one
/// database, and a repeated id would be skipped as a retry).
struct Template {
    ids: common::Template,
    next: AtomicU32,
}

impl Template {
    fn new(t0_ns: u64) -> Template {
        let mut resource = common::default_resource();
        resource.extend([
            s(
                "service.instance.id",
                "7f3a2c1e-0b9d-4e55-a1c2-5d8e9f001122",
            ),
            s("process.runtime.name", "cpython"),
            i("process.pid", 4711),
        ]);
        Template {
            ids: common::Template::of(&common::template_request_at(t0_ns, resource)),
            next: AtomicU32::new(0),
        }
    }

    /// The next request, with ids no other request of the run has.
    fn next_request(&self) -> Vec<u8> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        self.ids.request(1, k).to_vec()
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
    enc.write_all(body).expect("compressing into memory");
    enc.finish().expect("compressing into memory")
}

/// Distinct gzip bodies made before the gzip phase; a client that runs out
/// compresses its own (counted, since that CPU then competes with qyl's).
struct GzipPool {
    bodies: Vec<Bytes>,
    next: AtomicUsize,
    on_the_fly: AtomicU64,
}

impl GzipPool {
    fn build(template: &Template, count: usize) -> GzipPool {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = count.div_ceil(threads);
        let bodies = std::thread::scope(|scope| {
            let parts: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(move || {
                        (0..per)
                            .map(|_| Bytes::from(gzip(&template.next_request())))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|p| p.join().expect("a compressing thread"))
                .collect()
        });
        GzipPool {
            bodies,
            next: AtomicUsize::new(0),
            on_the_fly: AtomicU64::new(0),
        }
    }

    fn body(&self, template: &Template) -> Bytes {
        match self.bodies.get(self.next.fetch_add(1, Ordering::Relaxed)) {
            Some(b) => b.clone(),
            None => {
                self.on_the_fly.fetch_add(1, Ordering::Relaxed);
                Bytes::from(gzip(&template.next_request()))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The qyl child process.

struct Qyl {
    child: Child,
    pid: u32,
    http: String,
    otlp_http: String,
    grpc: String,
    db: PathBuf,
    log: PathBuf,
}

impl Qyl {
    /// `qyl serve` on free ports with a fresh database in `dir`, run from
    /// `dir` so no qyl.toml of the caller's applies (QYL_* variables do).
    fn start(dir: &Path) -> Qyl {
        let db = dir.join("qyl.duckdb");
        let log = dir.join("qyl.stderr");
        let stderr = std::fs::File::create(&log).expect("creating qyl's log");
        let mut child = Command::new(qyl_binary())
            .current_dir(dir)
            .args([
                "serve",
                "--http-port",
                "0",
                "--otlp-http-port",
                "0",
                "--grpc-port",
                "0",
                "--data",
            ])
            .arg(&db)
            // No Lua functions: the load is ingest alone.
            .arg("--scripts")
            .arg(dir.join("no-scripts"))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting qyl");
        // A wrapper (BENCH_QYL_BIN=a script running heaptrack, say) may
        // print lines of its own first.
        let mut out = BufReader::new(child.stdout.take().expect("qyl's stdout"));
        let mut line = String::new();
        for _ in 0..10 {
            line.clear();
            out.read_line(&mut line).expect("reading qyl's first line");
            if line.starts_with("qyl listening") || line.is_empty() {
                break;
            }
        }
        if !line.starts_with("qyl listening") {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "qyl did not start: {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_string()
        };
        Qyl {
            pid: child.id(),
            http: field("http"),
            otlp_http: field("otlp_http"),
            grpc: field("grpc"),
            child,
            db,
            log,
        }
    }

    /// SIGTERM, then waits (qyl commits its queue and checkpoints); returns
    /// how long that took and the peak RSS seen up to the exit, in KiB.
    fn stop(&mut self) -> (Duration, u64) {
        let started = Instant::now();
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "sending SIGTERM to qyl");
        let mut hwm = 0;
        loop {
            // Read before reaping: /proc/PID is gone after the wait.
            hwm = hwm.max(proc_status_kb(self.pid, "VmHWM").unwrap_or(0));
            if let Some(status) = self.child.try_wait().expect("waiting for qyl") {
                assert!(
                    status.success(),
                    "qyl exited with {status}\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
                return (started.elapsed(), hwm);
            }
            if started.elapsed() > Duration::from_secs(300) {
                let _ = self.child.kill();
                panic!("qyl did not stop within 300 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn qyl_binary() -> PathBuf {
    std::env::var_os("BENCH_QYL_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_qyl")), PathBuf::from)
}

impl Drop for Qyl {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Reading a process from /proc.

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// The name (comm) and utime + stime ticks in a /proc stat line.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let name = stat.get(open + 1..close)?.to_string();
    // After the name: state (field 3), ...; utime and stime are fields 14, 15.
    let fields: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// A process's CPU at one moment: all of it (exited threads included) and
/// per live thread.
#[derive(Clone, Default)]
struct Cpu {
    total: u64,
    threads: HashMap<u32, (String, u64)>,
}

fn read_cpu(pid: u32) -> Cpu {
    let total = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .map_or(0, |(_, t)| t);
    let mut threads = HashMap::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            if let Some(t) = std::fs::read_to_string(task.path().join("stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
            {
                threads.insert(tid, t);
            }
        }
    }
    Cpu { total, threads }
}

fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(key)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// The thread groups CPU is reported by.
const GROUPS: [&str; 9] = [
    "tokio runtime (HTTP, decode, convert)",
    "qyl-writer (commits, checkpoints)",
    "qyl-checkpoint (older builds)",
    "DuckDB's own threads",
    "other threads (main, named)",
    "unidentified `qyl` threads",
    "threads that exited",
    "qyl-journal (encode, write, fsync)",
    "qyl-prepare (older builds)",
];
const EXITED: usize = 6;

/// Which `qyl`-named threads are DuckDB's. Tokio's threads and DuckDB's all
/// carry the runtime's name (a thread inherits its creator's, and DuckDB
/// starts its threads from the blocking task that opens the database), and
/// thread ids say nothing about which is which (their order differs from run
/// to run). Their stacks do: Rust threads get Rust's size (2 MiB unless
/// RUST_MIN_STACK says otherwise), DuckDB's C++ threads the C library's
/// default (RLIMIT_STACK, 8 MiB usually). So a `qyl` thread whose stack is
/// the size of the qyl-writer's (a Rust thread) is tokio's, any other is
/// DuckDB's. Read from the stack pointer in /proc/PID/task/TID/syscall,
/// which only a blocked thread shows: threads are classified while qyl is
/// idle (at start and after each phase), and one never seen blocked stays
/// "unidentified". BENCH_THREADS=1 prints the result thread by thread.
#[derive(Default)]
struct ThreadKinds(HashMap<u32, bool>);

impl ThreadKinds {
    /// Classifies the `qyl` threads not classified yet.
    fn update(&mut self, pid: u32) {
        let maps = stack_maps(pid);
        let cpu = read_cpu(pid);
        let Some(rust) = cpu
            .threads
            .iter()
            .find(|(_, (name, _))| name == "qyl-writer")
            .and_then(|(tid, _)| stack_size(pid, *tid, &maps))
        else {
            return;
        };
        for (tid, (name, _)) in &cpu.threads {
            if name == "qyl" && *tid != pid && !self.0.contains_key(tid) {
                if let Some(size) = stack_size(pid, *tid, &maps) {
                    self.0.insert(*tid, size != rust);
                }
            }
        }
    }

    fn group_of(&self, pid: u32, tid: u32, name: &str) -> usize {
        match name {
            "qyl-writer" => 1,
            "qyl-checkpoint" => 2,
            "qyl-journal" => 7,
            "qyl-prepare" => 8,
            _ if tid == pid => 4,
            "qyl" => match self.0.get(&tid) {
                Some(false) => 0,
                Some(true) => 3,
                None => 5,
            },
            _ => 4,
        }
    }

    /// The ticks each group used between two readings.
    fn by_group(&self, pid: u32, before: &Cpu, after: &Cpu) -> [u64; GROUPS.len()] {
        let mut groups = [0u64; GROUPS.len()];
        let mut counted = 0;
        for (tid, (name, ticks)) in &after.threads {
            let start = before.threads.get(tid).map_or(0, |(_, t)| *t);
            let used = ticks.saturating_sub(start);
            groups[self.group_of(pid, *tid, name)] += used;
            counted += used;
        }
        // The process total keeps the time of threads that have exited.
        groups[EXITED] = after
            .total
            .saturating_sub(before.total)
            .saturating_sub(counted);
        groups
    }
}

/// The process's anonymous read-write mappings (where thread stacks live).
fn stack_maps(pid: u32) -> Vec<(u64, u64)> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    maps.lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("rw-p"))
        .filter_map(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect()
}

/// The size of the mapping holding a blocked thread's stack pointer.
fn stack_size(pid: u32, tid: u32, maps: &[(u64, u64)]) -> Option<u64> {
    let syscall = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    // "nr arg1 … arg6 sp pc" while blocked in a system call, else "running"
    // (or "-1 sp pc" when blocked outside one).
    let fields: Vec<&str> = syscall.split_whitespace().collect();
    if fields.len() < 3 {
        return None;
    }
    let sp = u64::from_str_radix(fields[fields.len() - 2].trim_start_matches("0x"), 16).ok()?;
    maps.iter()
        .find(|(a, b)| (*a..*b).contains(&sp))
        .map(|(a, b)| b - a)
}

// ---------------------------------------------------------------------------
// qyl's own counters, from GET /metrics.

#[derive(Clone, Default)]
struct Metrics(HashMap<String, f64>);

impl Metrics {
    fn parse(text: &str) -> Metrics {
        Metrics(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (name, value) = l.rsplit_once(' ')?;
                    Some((name.to_string(), value.parse().ok()?))
                })
                .collect(),
        )
    }
    fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }
    fn spans(&self) -> f64 {
        self.get("qyl_ingest_rows_total{signal=\"span\"}")
    }
    fn checkpoints(&self) -> f64 {
        self.get("qyl_checkpoints_total")
    }
    /// Seconds per writer step.
    fn steps(&self) -> BTreeMap<String, f64> {
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let step = k
                    .strip_prefix("qyl_writer_seconds_total{step=\"")?
                    .strip_suffix("\"}")?;
                Some((step.to_string(), *v))
            })
            .collect()
    }
}

async fn metrics(http: &reqwest::Client, url: &str) -> Metrics {
    let text = http
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("GET /metrics")
        .text()
        .await
        .expect("reading /metrics");
    Metrics::parse(&text)
}

/// Both sides of a phase at one moment.
struct Sample {
    at: Instant,
    metrics: Metrics,
    qyl: Cpu,
    /// This process's CPU ticks (the load generator).
    own: u64,
    /// Whether the sample was taken right after one of qyl's checkpoints.
    aligned: bool,
}

/// Waits for qyl's next background checkpoint to end (polling /metrics every
/// 100 ms), then samples; gives up after `timeout` and samples anyway.
async fn sample_after_checkpoint(
    http: &reqwest::Client,
    url: &str,
    pid: u32,
    timeout: Duration,
) -> Sample {
    let first = metrics(http, url).await.checkpoints();
    let deadline = Instant::now() + timeout;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let m = metrics(http, url).await;
        let aligned = m.checkpoints() > first;
        if aligned || Instant::now() > deadline {
            return Sample {
                at: Instant::now(),
                metrics: m,
                qyl: read_cpu(pid),
                own: read_cpu(std::process::id()).total,
                aligned,
            };
        }
    }
}

// ---------------------------------------------------------------------------
// The load.

#[derive(Clone)]
enum Load {
    Protobuf,
    Gzip(Arc<GzipPool>),
    Grpc,
}

struct Target {
    otlp_http: String,
    grpc: String,
}

#[derive(Default)]
struct Counters {
    answered_spans: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

/// One connection: sends an export, waits for the answer, repeats (at once,
/// or at `pace`'s times). Returns (send time, latency in ms) per export.
async fn client(
    load: Load,
    pace: Option<(Instant, Duration)>,
    template: Arc<Template>,
    target: Arc<Target>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> Vec<(Instant, f64)> {
    let mut exports = Vec::new();
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/traces", target.otlp_http);
    let mut grpc = match load {
        Load::Grpc => {
            let channel =
                tonic::transport::Endpoint::from_shared(format!("http://{}", target.grpc))
                    .expect("a gRPC endpoint")
                    .connect()
                    .await
                    .expect("connecting over gRPC");
            Some(tonic::client::Grpc::new(channel))
        }
        _ => None,
    };
    let mut k = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let scheduled = match pace {
            Some((first, every)) => {
                let at = first + every * k;
                tokio::time::sleep_until(at.into()).await;
                at
            }
            None => Instant::now(),
        };
        k += 1;
        let (body, gzipped) = match &load {
            Load::Gzip(pool) => (pool.body(&template), true),
            _ => (Bytes::from(template.next_request()), false),
        };
        let sent = Instant::now();
        let ok = match &mut grpc {
            Some(grpc) => {
                let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                );
                match grpc.ready().await {
                    Ok(()) => grpc
                        .unary(tonic::Request::new(body), path, RawCodec)
                        .await
                        .map_err(|e| e.code() == tonic::Code::Unavailable),
                    Err(_) => Err(false),
                }
                .map(|_| ())
            }
            None => {
                let mut req = http
                    .post(&url)
                    .header("content-type", "application/x-protobuf");
                if gzipped {
                    req = req.header("content-encoding", "gzip");
                }
                match req.body(body).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let _ = r.bytes().await;
                        match status {
                            200 => Ok(()),
                            503 | 429 => Err(true),
                            _ => Err(false),
                        }
                    }
                    Err(_) => Err(false),
                }
            }
        };
        let done = Instant::now();
        match ok {
            Ok(()) => {
                counters
                    .answered_spans
                    .fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
                exports.push((sent, (done - scheduled).as_secs_f64() * 1e3));
            }
            Err(true) => {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(false) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    exports
}

struct Phase {
    name: String,
    secs: f64,
    spans: f64,
    answered: u64,
    refused: u64,
    failed: u64,
    /// Sorted export latencies (ms) of the exports sent in the window.
    latencies: Vec<f64>,
    qyl_ticks: u64,
    own_ticks: u64,
    groups: [u64; GROUPS.len()],
    /// Writer seconds per step in the window.
    steps: BTreeMap<String, f64>,
    checkpoints: f64,
    /// Seconds spent in the phase's checkpoints (commits wait meanwhile).
    checkpoint_secs: f64,
    commits: f64,
    /// Commits that took longer than 100 ms (p99 export latency target).
    slow_commits: f64,
    duplicates: f64,
    aligned: bool,
    /// VmHWM of qyl at the end of the phase, KiB.
    hwm_kb: u64,
    memory: MemoryWatch,
    on_the_fly: u64,
}

/// Where qyl's memory went during a phase: the write queue (rows waiting
/// for the writer, which hold their batches and data chunks) sampled every
/// 250 ms, and DuckDB's own accounting (`duckdb_memory()`) at the end.
#[derive(Default)]
struct MemoryWatch {
    queue_max: f64,
    queue_mean: f64,
    rss_max_kb: u64,
    /// DuckDB's tags over 1 MiB, MiB each.
    duckdb: Vec<(String, u64)>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.spans / self.secs
    }
    fn us_per_span(&self, ticks: u64) -> f64 {
        ticks as f64 / clock_ticks_per_sec() * 1e6 / self.spans.max(1.0)
    }
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies[((self.latencies.len() - 1) as f64 * p).round() as usize]
    }
}

struct Bench {
    qyl_pid: u32,
    metrics_url: String,
    http: reqwest::Client,
    target: Arc<Target>,
    template: Arc<Template>,
    clients: usize,
    secs: u64,
    checkpoint_timeout: Duration,
    threads_detail: bool,
    /// BENCH_READER_MS: a dashboard-like reader lists traces this often
    /// during each phase (each read waits for the rows answered before it).
    reader_every: Option<Duration>,
    kinds: std::sync::Mutex<ThreadKinds>,
}

impl Bench {
    /// Stores `spans` spans at full speed, measuring nothing but the time
    /// and memory it took; then resets qyl's peak RSS (VmHWM), so that the
    /// phases report their own.
    async fn prefill(&self, spans: u64) {
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let tasks = self.start_clients(&Load::Protobuf, None, &stop, &Arc::default());
        while metrics(&self.http, &self.metrics_url).await.spans() < spans as f64 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.expect("a client task");
        }
        let took = start.elapsed().as_secs_f64();
        let hwm = proc_status_kb(self.qyl_pid, "VmHWM").unwrap_or(0) / 1024;
        // Writing 5 to clear_refs resets VmHWM to the current RSS.
        let reset = std::fs::write(format!("/proc/{}/clear_refs", self.qyl_pid), "5").is_ok();
        println!(
            "prefill: {spans} spans stored in {took:.0} s ({:.0} spans/s), peak RSS {hwm} MB meanwhile{}",
            spans as f64 / took,
            if reset { "; peak RSS counted afresh from here" } else { " (could not reset VmHWM: the phases' peak includes the fill)" }
        );
    }

    /// Starts the clients, at full speed or together at `pace_spans_per_sec`.
    fn start_clients(
        &self,
        load: &Load,
        pace_spans_per_sec: Option<f64>,
        stop: &Arc<AtomicBool>,
        counters: &Arc<Counters>,
    ) -> Vec<tokio::task::JoinHandle<Vec<(Instant, f64)>>> {
        let start = Instant::now();
        (0..self.clients)
            .map(|c| {
                // Each client sends every `every`; together they make the rate,
                // their sends spread evenly over one period.
                let pace = pace_spans_per_sec.map(|rate| {
                    let every = Duration::from_secs_f64(
                        self.clients as f64 * SPANS_PER_REQUEST as f64 / rate,
                    );
                    (start + every * c as u32 / self.clients as u32, every)
                });
                tokio::spawn(client(
                    load.clone(),
                    pace,
                    self.template.clone(),
                    self.target.clone(),
                    stop.clone(),
                    counters.clone(),
                ))
            })
            .collect()
    }

    async fn phase(&self, name: &str, load: Load, pace_spans_per_sec: Option<f64>) -> Phase {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let tasks = self.start_clients(&load, pace_spans_per_sec, &stop, &counters);
        if let Some(every) = self.reader_every {
            let (http, stop) = (self.http.clone(), stop.clone());
            let url = self
                .metrics_url
                .replace("/metrics", "/api/v1/traces?limit=50");
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(every).await;
                    if let Ok(r) = http.get(&url).send().await {
                        let _ = r.bytes().await;
                    }
                }
            });
        }
        tokio::time::sleep(WARM_UP).await;
        let a = sample_after_checkpoint(
            &self.http,
            &self.metrics_url,
            self.qyl_pid,
            self.checkpoint_timeout,
        )
        .await;
        let answered_before = counters.answered_spans.load(Ordering::Relaxed);
        let (refused_before, failed_before) = (
            counters.refused.load(Ordering::Relaxed),
            counters.failed.load(Ordering::Relaxed),
        );
        let memory = self.watch_memory(Duration::from_secs(self.secs)).await;
        let b = sample_after_checkpoint(
            &self.http,
            &self.metrics_url,
            self.qyl_pid,
            self.checkpoint_timeout,
        )
        .await;
        let answered = counters.answered_spans.load(Ordering::Relaxed) - answered_before;
        let refused = counters.refused.load(Ordering::Relaxed) - refused_before;
        let failed = counters.failed.load(Ordering::Relaxed) - failed_before;
        stop.store(true, Ordering::Relaxed);
        let mut latencies = Vec::new();
        for t in tasks {
            let exports = t.await.expect("a client task");
            latencies.extend(
                exports
                    .into_iter()
                    .filter(|(sent, _)| *sent >= a.at && *sent < b.at)
                    .map(|(_, ms)| ms),
            );
        }
        latencies.sort_by(f64::total_cmp);
        // qyl is idle now: its threads can be told apart.
        self.classify_threads().await;
        let kinds = self.kinds.lock().expect("thread kinds");
        if self.threads_detail {
            print_threads(self.qyl_pid, &kinds, &a.qyl, &b.qyl);
        }
        let (sa, sb) = (a.metrics.steps(), b.metrics.steps());
        let steps = sb
            .iter()
            .map(|(k, v)| (k.clone(), v - sa.get(k).copied().unwrap_or(0.0)))
            .collect();
        let delta = |key: &str| b.metrics.get(key) - a.metrics.get(key);
        Phase {
            name: name.to_string(),
            secs: (b.at - a.at).as_secs_f64(),
            spans: b.metrics.spans() - a.metrics.spans(),
            answered,
            refused,
            failed,
            latencies,
            qyl_ticks: b.qyl.total.saturating_sub(a.qyl.total),
            own_ticks: b.own.saturating_sub(a.own),
            groups: kinds.by_group(self.qyl_pid, &a.qyl, &b.qyl),
            steps,
            checkpoints: b.metrics.checkpoints() - a.metrics.checkpoints(),
            checkpoint_secs: delta("qyl_checkpoint_duration_seconds_sum"),
            commits: delta("qyl_commits_total"),
            slow_commits: delta("qyl_commit_duration_seconds_count")
                - delta("qyl_commit_duration_seconds_bucket{le=\"0.1\"}"),
            duplicates: delta("qyl_duplicate_spans_total"),
            aligned: a.aligned && b.aligned,
            hwm_kb: proc_status_kb(self.qyl_pid, "VmHWM").unwrap_or(0),
            memory,
            on_the_fly: match &load {
                Load::Gzip(pool) => pool.on_the_fly.load(Ordering::Relaxed),
                _ => 0,
            },
        }
    }
}

impl Bench {
    /// Samples the write queue and RSS for `secs`, then asks DuckDB where
    /// its memory is (one `POST /api/v1/sql`).
    async fn watch_memory(&self, secs: Duration) -> MemoryWatch {
        let mut watch = MemoryWatch::default();
        let (mut sum, mut n) = (0.0, 0u32);
        let end = Instant::now() + secs;
        while Instant::now() < end {
            let queue = metrics(&self.http, &self.metrics_url)
                .await
                .get("qyl_write_queue_rows");
            watch.queue_max = watch.queue_max.max(queue);
            sum += queue;
            n += 1;
            let rss = proc_status_kb(self.qyl_pid, "VmRSS").unwrap_or(0);
            watch.rss_max_kb = watch.rss_max_kb.max(rss);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        watch.queue_mean = sum / f64::from(n.max(1));
        let sql_url = self.metrics_url.replace("/metrics", "/api/v1/sql");
        let body = serde_json::json!({"sql": "SELECT tag, memory_usage_bytes // 1048576 FROM duckdb_memory() WHERE memory_usage_bytes >= 1048576 ORDER BY 2 DESC"});
        if let Ok(answer) = self.http.post(&sql_url).json(&body).send().await {
            if let Ok(v) = answer.json::<serde_json::Value>().await {
                for row in v["rows"].as_array().into_iter().flatten() {
                    if let (Some(tag), Some(mb)) = (row[0].as_str(), row[1].as_u64()) {
                        watch.duckdb.push((tag.to_string(), mb));
                    }
                }
            }
        }
        watch
    }

    /// Classifies qyl's new threads, retrying a few times for those that
    /// were running when looked at.
    async fn classify_threads(&self) {
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut kinds = self.kinds.lock().expect("thread kinds");
            kinds.update(self.qyl_pid);
            let cpu = read_cpu(self.qyl_pid);
            if cpu.threads.iter().all(|(tid, (name, _))| {
                name != "qyl" || *tid == self.qyl_pid || kinds.0.contains_key(tid)
            }) {
                return;
            }
        }
    }
}

fn print_threads(pid: u32, kinds: &ThreadKinds, before: &Cpu, after: &Cpu) {
    let mut tids: Vec<_> = after.threads.keys().copied().collect();
    tids.sort_unstable();
    for tid in tids {
        let (name, ticks) = &after.threads[&tid];
        let used = ticks.saturating_sub(before.threads.get(&tid).map_or(0, |(_, t)| *t));
        println!(
            "    thread {tid:>8} {name:<16} {:>7.2} s CPU  -> {}",
            used as f64 / clock_ticks_per_sec(),
            GROUPS[kinds.group_of(pid, tid, name)]
        );
    }
}

// ---------------------------------------------------------------------------
// The baseline: prost decoding the same requests here, on one thread.

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU µs per span to turn `bodies` into requests (one pass to warm up,
/// then at least a second of CPU).
fn decode_us_per_span(bodies: &[Vec<u8>], gunzip: bool) -> f64 {
    let decode = |body: &[u8]| {
        let req = if gunzip {
            let mut raw = Vec::with_capacity(body.len() * 8);
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut raw)
                .expect("gunzip");
            ExportTraceServiceRequest::decode(&raw[..])
        } else {
            ExportTraceServiceRequest::decode(body)
        };
        let spans = req.expect("decoding the template").resource_spans[0].scope_spans[0]
            .spans
            .len();
        std::hint::black_box(spans)
    };
    for b in bodies {
        decode(b);
    }
    let (start, mut spans) = (thread_cpu(), 0);
    while thread_cpu() - start < Duration::from_secs(1) {
        for b in bodies {
            spans += decode(b);
        }
    }
    (thread_cpu() - start).as_secs_f64() * 1e6 / spans as f64
}

// ---------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it without.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ingest_process benchmark: run with `cargo bench --bench ingest_process`");
        return;
    }
    let secs = env_or("BENCH_SECS", 20);
    let clients = env_or("BENCH_CLIENTS", 8).max(1) as usize;
    let with_grpc = env_or("BENCH_GRPC", 0) != 0;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let checkpoint_every = env_or("QYL_STORAGE_CHECKPOINT_INTERVAL_SECS", 10);
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos() as u64;
    // Spans start within the last minute, so retention (7 days by default)
    // never deletes them during the run.
    let template = Arc::new(Template::new(now_ns - 60_000_000_000));

    // Baseline first, while nothing else runs.
    let samples: Vec<Vec<u8>> = (0..32).map(|_| template.next_request()).collect();
    let decode_us = decode_us_per_span(&samples, false);
    let gz_samples: Vec<Vec<u8>> = samples.iter().map(|b| gzip(b)).collect();
    let gunzip_decode_us = decode_us_per_span(&gz_samples, true);
    println!(
        "qyl ingest, qyl in its own process: {cores} cores, {clients} clients, {SPANS_PER_REQUEST} spans per export ({} KB protobuf, {} KB gzip), phases of >= {secs} s from checkpoint to checkpoint (every {checkpoint_every} s)",
        template.ids.bytes.len() / 1024,
        gz_samples[0].len() / 1024,
    );
    println!(
        "baseline (this process, one thread, thread CPU clock): prost decode {decode_us:.2} µs/span, gunzip + prost decode {gunzip_decode_us:.2} µs/span"
    );

    println!("load average before: {}", load_average());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut qyl = Qyl::start(dir.path());
    println!("qyl: {} (pid {})", qyl_binary().display(), qyl.pid);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.clamp(1, 2))
        .enable_all()
        .thread_name("bench-client")
        .build()
        .expect("the load generator's runtime");
    let bench = Bench {
        qyl_pid: qyl.pid,
        metrics_url: format!("http://{}/metrics", qyl.http),
        reader_every: std::env::var("BENCH_READER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis),
        http: reqwest::Client::new(),
        target: Arc::new(Target {
            otlp_http: qyl.otlp_http.clone(),
            grpc: qyl.grpc.clone(),
        }),
        template: template.clone(),
        clients,
        secs,
        checkpoint_timeout: Duration::from_secs(checkpoint_every * 2 + 10),
        threads_detail: env_or("BENCH_THREADS", 0) != 0,
        kinds: Default::default(),
    };
    let mut phases = Vec::new();
    let (stored, hwm_before_stop) = runtime.block_on(async {
        bench.classify_threads().await;
        let prefill = env_or("BENCH_PREFILL", 0);
        if prefill > 0 {
            bench.prefill(prefill).await;
        }
        let max = bench.phase("max, protobuf", Load::Protobuf, None).await;
        let half = max.rate() / 2.0;
        phases.push(max);
        let paced = bench
            .phase(
                &format!("paced {:.0}k/s", half / 1e3),
                Load::Protobuf,
                Some(half),
            )
            .await;
        phases.push(paced);
        // Enough distinct bodies for a phase at 1.3x phase 1's rate.
        let longest = (WARM_UP.as_secs() + secs + 2 * checkpoint_every + 2) as f64;
        let count = (phases[0].rate() * 1.3 * longest / SPANS_PER_REQUEST as f64) as usize;
        let built = Instant::now();
        let pool = {
            let template = template.clone();
            tokio::task::spawn_blocking(move || GzipPool::build(&template, count.max(64)))
                .await
                .expect("compressing the gzip bodies")
        };
        let pool_mb = pool.bodies.iter().map(|b| b.len()).sum::<usize>() as f64 / 1e6;
        println!(
            "(gzip: {} distinct bodies, {pool_mb:.0} MB, compressed in {:.1} s before the phase)",
            pool.bodies.len(),
            built.elapsed().as_secs_f64()
        );
        phases.push(
            bench
                .phase("max, gzip", Load::Gzip(Arc::new(pool)), None)
                .await,
        );
        if with_grpc {
            phases.push(bench.phase("max, gRPC", Load::Grpc, None).await);
        }
        let m = metrics(&bench.http, &bench.metrics_url).await;
        (m.spans(), proc_status_kb(qyl.pid, "VmHWM").unwrap_or(0))
    });
    let (stop_took, hwm) = qyl.stop();
    let disk = [
        qyl.db.clone(),
        PathBuf::from(format!("{}.wal", qyl.db.display())),
    ]
    .iter()
    .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
    .sum::<u64>();

    report(&phases, decode_us, gunzip_decode_us);
    println!(
        "load average after: {} (the machine's other work competes for the same cores)",
        load_average()
    );
    println!(
        "peak RSS of qyl (VmHWM): {:.0} MB under load, {:.0} MB including its stop (target <= 400 MB)",
        hwm_before_stop as f64 / 1024.0,
        hwm.max(hwm_before_stop) as f64 / 1024.0
    );
    println!(
        "on disk after SIGTERM (stop took {:.1} s): {:.1} MB for {:.0} spans = {:.0} bytes/span",
        stop_took.as_secs_f64(),
        disk as f64 / 1e6,
        stored,
        disk as f64 / stored.max(1.0)
    );
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn report(phases: &[Phase], decode_us: f64, gunzip_decode_us: f64) {
    let hz = clock_ticks_per_sec();
    println!();
    println!(
        "{:<16} {:>9} {:>7} {:>8} {:>8} {:>9} {:>12} {:>13} {:>8} {:>11}",
        "phase",
        "spans/s",
        "secs",
        "p50 ms",
        "p99 ms",
        "qyl cores",
        "client cores",
        "qyl µs/span",
        "/decode",
        "target µs"
    );
    for p in phases {
        let us = p.us_per_span(p.qyl_ticks);
        let base = if p.name.contains("gzip") {
            gunzip_decode_us
        } else {
            decode_us
        };
        println!(
            "{:<16} {:>9.0} {:>7.1} {:>8.1} {:>8.1} {:>9.2} {:>12.2} {:>13.2} {:>7.1}x {:>11.1}",
            p.name,
            p.rate(),
            p.secs,
            p.percentile(0.5),
            p.percentile(0.99),
            p.qyl_ticks as f64 / hz / p.secs,
            p.own_ticks as f64 / hz / p.secs,
            us,
            us / base,
            TARGET_US_PER_SPAN
        );
    }
    println!("(\"/decode\": qyl's CPU per span over prost's decode of the same request in this process; gzip phases over gunzip + decode)");
    println!();
    print!("{:<40}", "qyl CPU by thread, µs per span");
    for p in phases {
        print!(" {:>16}", p.name);
    }
    println!();
    for (g, name) in GROUPS.iter().enumerate() {
        // A group no thread of this build belongs to (an older build's
        // checkpoint thread, or none exited) says nothing.
        if phases.iter().all(|p| p.groups[g] == 0) {
            continue;
        }
        print!("{name:<40}");
        for p in phases {
            print!(" {:>16.2}", p.us_per_span(p.groups[g]));
        }
        println!();
    }
    print!("{:<40}", "total (utime + stime of the process)");
    for p in phases {
        print!(" {:>16.2}", p.us_per_span(p.qyl_ticks));
    }
    println!();
    println!();
    print!("{:<40}", "writer steps, wall µs per span");
    for p in phases {
        print!(" {:>16}", p.name);
    }
    println!();
    let mut steps: Vec<&String> = phases.iter().flat_map(|p| p.steps.keys()).collect();
    steps.sort();
    steps.dedup();
    for step in steps {
        print!("{step:<40}");
        for p in phases {
            let secs = p.steps.get(step).copied().unwrap_or(0.0);
            print!(" {:>16.2}", secs * 1e6 / p.spans.max(1.0));
        }
        println!();
    }
    println!();
    for p in phases {
        let mut notes = vec![
            format!("{:.0} spans committed", p.spans),
            format!("{} answered", p.answered),
            format!("{} exports timed", p.latencies.len()),
            format!("{:.0} commits", p.commits),
            format!("{:.0} rows/commit", p.spans / p.commits.max(1.0)),
            format!(
                "{:.0} checkpoints of {:.0} ms on average",
                p.checkpoints,
                p.checkpoint_secs * 1e3 / p.checkpoints.max(1.0)
            ),
            format!("{:.0} commits over 100 ms", p.slow_commits),
            format!("VmHWM {:.0} MB", p.hwm_kb as f64 / 1024.0),
            format!(
                "VmRSS at most {:.0} MB, write queue at most {:.0} rows ({:.0} on average)",
                p.memory.rss_max_kb as f64 / 1024.0,
                p.memory.queue_max,
                p.memory.queue_mean
            ),
            format!(
                "DuckDB's memory at the end: {}",
                p.memory
                    .duckdb
                    .iter()
                    .map(|(tag, mb)| format!("{tag} {mb} MB"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ];
        if !p.aligned {
            notes.push("NOT aligned to checkpoints (none came in time)".into());
        }
        if p.duplicates > 0.0 {
            notes.push(format!("{:.0} duplicate spans", p.duplicates));
        }
        if p.refused + p.failed > 0 {
            notes.push(format!(
                "{} exports refused (queue full), {} failed",
                p.refused, p.failed
            ));
        }
        if p.on_the_fly > 0 {
            notes.push(format!(
                "{} gzip bodies compressed during the phase",
                p.on_the_fly
            ));
        }
        println!("{:<16} {}", p.name, notes.join(", "));
    }
}
