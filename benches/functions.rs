//! The functions engine's costs, in one run (DESIGN §4, §7):
//! 1. what a native `where` costs per record against entering Lua for a
//!    trivial `when` (the reason triggers are data first);
//! 2. ingest with 0 functions against 100 functions that match nothing
//!    (a real server, 8 OTLP/HTTP clients; target ratio ≥ 0.9), and
//!    against 20 alert functions (on errors, SLO changes, slow spans and a
//!    schedule, posting to a loopback webhook; target ratio ≥ 0.95);
//! 3. a trivial handler's invocations per second on 2 workers (target
//!    ≥ 100,000/s);
//! 4. save-to-active reload latency through the file watcher (target
//!    ≤ 500 ms).
//!
//! `cargo bench --bench functions` prints every figure.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qyl::config::Config;
use qyl::functions::dispatch::dispatch;
use qyl::functions::engine::{Engine, EngineConfig};
use qyl::functions::executor::{ExecutorConfig, Sink};
use qyl::functions::runtime_api::RuntimeContext;
use qyl::functions::sandbox::{Limits, Sandbox};
use qyl::functions::spec::{load_script, Trigger};
use qyl::functions::trigger::RecordView;
use qyl::model::{Batch, Record, SpanRecord};
use qyl::server::Server;
use qyl::stream::Event;

mod common;
use common::{env_or, Template, SPANS_PER_REQUEST};

// As in the binary: the allocator matters for the per-record JSON parse.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SCRIPT: &str = r#"
return {
  qyl.fn {
    name = "fields",
    trigger = { on = "span", where = { service = "checkout", duration_ms = { gt = 5000 } },
                when = function(span) return true end },
    handler = function() end,
  },
  qyl.fn {
    name = "attributes",
    trigger = { on = "span", where = { ["gen_ai.provider.name"] = qyl.exists, duration_ms = { gt = 5000 } } },
    handler = function() end,
  },
}
"#;

fn span() -> SpanRecord {
    SpanRecord {
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        span_id: "b7ad6b7169203331".into(),
        name: "chat gpt-4o".into(),
        kind: "CLIENT",
        status_code: "OK",
        duration_ns: 6_200_000_000,
        service_name: "checkout".into(),
        attributes: r#"{"gen_ai.provider.name":"openai","gen_ai.request.model":"gpt-4o","gen_ai.usage.input_tokens":812,"gen_ai.usage.output_tokens":64,"http.status_code":200,"server.address":"api.openai.com"}"#.into(),
        resource: r#"{"service.name":"checkout","host.name":"web-1"}"#.into(),
        ..Default::default()
    }
}

fn ns_per(iterations: u32, mut f: impl FnMut()) -> f64 {
    // Warm up caches and the allocator first.
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("functions benchmark: run with `cargo bench --bench functions`");
        return Ok(());
    }
    triggers()?;
    let secs = env_or("BENCH_SECS", 6);
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let empty = dir.path().join("none");
    std::fs::create_dir(&empty)?;
    let hundred = dir.path().join("hundred");
    std::fs::create_dir(&hundred)?;
    write_non_matching(&hundred, 100)?;
    let alerts = dir.path().join("alerts");
    std::fs::create_dir(&alerts)?;
    let sink = runtime.block_on(webhook_sink())?;
    write_alerts(&alerts, 20, sink)?;
    let mut alerting = Vec::new();
    // Alternating phases, so a neighbour's load on the shared machine
    // falls on both sides.
    let mut base = Vec::new();
    let mut with = Vec::new();
    for round in 0..2 {
        base.push(runtime.block_on(ingest(
            &dir.path().join(format!("a{round}.duckdb")),
            &empty,
            secs,
            None,
        ))?);
        with.push(runtime.block_on(ingest(
            &dir.path().join(format!("b{round}.duckdb")),
            &hundred,
            secs,
            None,
        ))?);
        alerting.push(runtime.block_on(ingest(
            &dir.path().join(format!("c{round}.duckdb")),
            &alerts,
            secs,
            Some(sink),
        ))?);
    }
    let mean = |v: &[(f64, f64)]| v.iter().map(|p| p.0).sum::<f64>() / v.len() as f64;
    println!(
        "ingest over OTLP/HTTP, 8 clients, {secs} s per phase, phases alternating (a real server)"
    );
    for (name, v) in [
        ("0 functions:", &base),
        ("100 non-matching functions:", &with),
        ("20 alert functions:", &alerting),
    ] {
        let rates: Vec<String> = v.iter().map(|p| format!("{:.0}", p.0)).collect();
        println!(
            "  {name:<32}  {:>9.0} spans/s (phases: {})",
            mean(v),
            rates.join(", ")
        );
    }
    println!(
        "  ratio:                            {:>9.2} (target >= 0.9)",
        mean(&with) / mean(&base)
    );
    println!(
        "  ratio, 20 alert functions:        {:>9.2} (target >= 0.95)",
        mean(&alerting) / mean(&base)
    );
    let per_record: Vec<String> = with.iter().map(|p| format!("{:.2}", p.1)).collect();
    println!(
        "  dispatcher CPU per record with 100 functions: {} µs",
        per_record.join(", ")
    );
    drop(runtime);

    let (n, rate) = invocations_per_second()?;
    println!("trivial handler, 2 workers, {n} invocations");
    println!("  invocations/s:                    {rate:>9.0} (target >= 100,000)");

    let (median, worst, saves) = reload_latency()?;
    println!("reload through the watcher, {saves} saves (50 ms debounce)");
    println!("  save-to-active median / max:      {median:>6.1} / {worst:.1} ms (target <= 500)");
    Ok(())
}

/// 100 functions on spans whose `where` matches nothing the clients send:
/// half limited to other services (the index skips them), half on any
/// service (checked natively for every span).
fn write_non_matching(dir: &Path, n: usize) -> std::io::Result<()> {
    for i in 0..n {
        let where_ = if i % 2 == 0 {
            format!("service = \"other-{i}\", duration_ms = {{ gt = 5000 }}")
        } else {
            format!(
                "duration_ms = {{ gt = {} }}, [\"bench.never\"] = qyl.exists",
                3_600_000 + i
            )
        };
        std::fs::write(
            dir.join(format!("f{i:03}.lua")),
            format!(
                "return qyl.fn {{ name = \"f{i}\", trigger = {{ on = \"span\", where = {{ {where_} }} }},\n  handler = function(span) return span.name end }}\n"
            ),
        )?;
    }
    Ok(())
}

/// `n` alert rules as users write them: a webhook on each new error group,
/// a page on each SLO change, a webhook for very slow spans of one service,
/// and a summary every minute. Each posts to the loopback sink.
fn write_alerts(dir: &Path, n: usize, port: u16) -> std::io::Result<()> {
    for i in 0..n {
        let trigger = match i % 4 {
            0 => "on = \"error\", where = { change = \"new\" }".to_string(),
            1 => "on = \"slo\", where = { level = { one_of = { \"page\", \"warning\" } } }"
                .to_string(),
            2 => format!(
                "on = \"span\", where = {{ service = \"svc-{}\", duration_ms = {{ gt = 30000 }} }}",
                i % 10
            ),
            _ => "on = \"schedule\", every = \"1m\"".to_string(),
        };
        std::fs::write(
            dir.join(format!("alert{i:02}.lua")),
            format!(
                "return qyl.fn {{ name = \"alert{i}\", trigger = {{ {trigger} }},\n  handler = function(record, runtime)\n    runtime.http.post(\"http://127.0.0.1:{port}/hook\", {{ rule = \"alert{i}\" }})\n  end }}\n"
            ),
        )?;
    }
    Ok(())
}

/// A webhook receiver answering 200 to every request; returns its port.
async fn webhook_sink() -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 16384];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    Ok(port)
}

/// CPU seconds of this process's threads named `name`.
fn thread_cpu(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != name {
            continue;
        }
        // After the name: state, then fields 4..; utime and stime are 14 and 15.
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        for i in [11, 12] {
            ticks += fields
                .get(i)
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ticks as f64 / 100.0
}

/// Spans per second, and the dispatcher's CPU per record in µs.
async fn ingest(
    db: &Path,
    scripts: &Path,
    secs: u64,
    sink: Option<u16>,
) -> anyhow::Result<(f64, f64)> {
    let mut config = Config::from_layers(None, std::env::vars())?.on_free_ports(db);
    config.functions.dir = scripts.to_path_buf();
    if let Some(port) = sink {
        // The alert functions may post to the sink, and an SLO over the
        // clients' traffic is checked every second.
        config.functions.http_allow = vec![format!("127.0.0.1:{port}")];
        config.errors.slo_check_every = "1s".into();
        config.errors.slo = vec![qyl::config::SloConfig {
            name: "bench".into(),
            service: "svc-1".into(),
            span_name: None,
            genai_operation: None,
            objective: 99.9,
            window: "30d".into(),
            latency_threshold_ms: 0,
        }];
    }
    let server = Server::start(&config).await?;
    let loaded = server.functions().list().len();
    let template = Arc::new(Template::new());
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..8u8 {
        let (template, stop, sent) = (template.clone(), stop.clone(), sent.clone());
        let url = format!("http://{}/v1/traces", server.addrs.otlp_http);
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut k = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let r = http
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(template.request(c + 1, k))
                    .send()
                    .await
                    .expect("export");
                assert_eq!(r.status().as_u16(), 200, "export refused");
                k += 1;
                sent.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (before, started) = (sent.load(Ordering::Relaxed), Instant::now());
    let engine = server.functions();
    let records_before = engine.dispatch_stats().records.load(Ordering::Relaxed);
    let cpu_before = thread_cpu("qyl-fn-dispatch");
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let rate = (sent.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64();
    let records = engine.dispatch_stats().records.load(Ordering::Relaxed) - records_before;
    let cpu_per_record = (thread_cpu("qyl-fn-dispatch") - cpu_before) * 1e6 / records.max(1) as f64;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let dispatched = server
        .functions()
        .dispatch_stats()
        .records
        .load(Ordering::Relaxed);
    let matched = server
        .functions()
        .dispatch_stats()
        .matched
        .load(Ordering::Relaxed);
    println!(
        "  ({loaded} functions loaded; dispatcher checked {dispatched} records, {matched} matched)"
    );
    drop(engine);
    server.shutdown().await?;
    Ok((rate, cpu_per_record))
}

/// Counts what the writer would have received.
#[derive(Default, Clone)]
struct Count(Arc<AtomicU64>);

impl Sink for Count {
    fn submit(&self, batch: Batch) -> bool {
        self.0
            .fetch_add(batch.functions.invocations.len() as u64, Ordering::Relaxed);
        true
    }
}

fn invocations_per_second() -> anyhow::Result<(u64, f64)> {
    let n = env_or("BENCH_INVOCATIONS", 400_000);
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("trivial.lua"),
        r#"return qyl.fn { name = "trivial", trigger = { on = "span" },
             handler = function(span) return nil end, max_concurrency = 2 }"#,
    )?;
    let rows = Count::default();
    let engine = Engine::start(
        EngineConfig {
            dir: dir.path().to_path_buf(),
            executor: ExecutorConfig {
                workers: 2,
                queue_size: n as usize,
                ..ExecutorConfig::default()
            },
            debounce: Duration::from_millis(50),
        },
        Box::new(rows.clone()),
        RuntimeContext::detached(),
        None,
        Default::default(),
    )?;
    let event = Event {
        seq: 1,
        record: Record::Span(span().into()),
    };
    // Warm the VMs up first.
    for _ in 0..1000 {
        dispatch(&engine.registry, engine.executor(), &event);
    }
    while rows.0.load(Ordering::Relaxed) < 1000 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let started = Instant::now();
    for _ in 0..n {
        dispatch(&engine.registry, engine.executor(), &event);
    }
    while rows.0.load(Ordering::Relaxed) < n + 1000 {
        std::thread::sleep(Duration::from_micros(200));
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    engine.stop();
    Ok((n, rate))
}

fn reload_latency() -> anyhow::Result<(f64, f64, usize)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("reload.lua");
    let source = |v: usize| {
        format!(
            "return qyl.fn {{ name = \"reload\", description = \"v{v}\", trigger = {{ on = \"span\" }},\n  handler = function() return {v} end }}\n"
        )
    };
    std::fs::write(&path, source(0))?;
    let engine = Engine::start(
        EngineConfig {
            dir: dir.path().to_path_buf(),
            executor: ExecutorConfig::default(),
            debounce: Duration::from_millis(50),
        },
        Box::new(Count::default()),
        RuntimeContext::detached(),
        None,
        Default::default(),
    )?;
    let saves = 20;
    let mut took = Vec::new();
    for v in 1..=saves {
        let want = format!("v{v}");
        let started = Instant::now();
        std::fs::write(&path, source(v))?;
        loop {
            let live = engine.registry.snapshot();
            if live
                .functions
                .get("reload")
                .and_then(|f| f.spec.description.as_deref())
                == Some(&want)
            {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "save {v} never became active"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        took.push(started.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(100));
    }
    engine.stop();
    took.sort_by(f64::total_cmp);
    Ok((took[took.len() / 2], took[took.len() - 1], saves))
}

fn triggers() -> anyhow::Result<()> {
    let mut sandbox = Sandbox::new(Limits::default())?;
    let loaded = load_script(&mut sandbox, Path::new("bench.lua"), SCRIPT)?;
    let matcher = |i: usize| match loaded.get(i).map(|f| &f.spec.trigger) {
        Some(Trigger::Record { matcher, .. }) => Ok(matcher.clone()),
        _ => Err(anyhow::anyhow!(
            "bench function {i} should trigger on spans"
        )),
    };
    let (fields, attributes) = (matcher(0)?, matcher(1)?);
    let when = loaded[0]
        .when
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the first bench function has a when"))?;
    let record = span();

    let native_fields = ns_per(2_000_000, || {
        let view = RecordView::span(black_box(&record));
        assert!(fields.matches(&view));
    });
    // A fresh view per record, so the attribute JSON is scanned every time,
    // as it would be for every committed span.
    let native_attrs = ns_per(500_000, || {
        let view = RecordView::span(black_box(&record));
        assert!(attributes.matches(&view));
    });
    let lua_err = |e: mlua::Error| anyhow::anyhow!("{e}");
    let arg = sandbox.lua().create_table().map_err(lua_err)?;
    arg.set("name", record.name.as_str()).map_err(lua_err)?;
    let lua_when = ns_per(500_000, || {
        let hit = sandbox
            .run(Duration::from_millis(50), |_| when.call::<bool>(&arg))
            .map_err(|e| e.to_string());
        assert_eq!(hit, Ok(true));
    });
    // Closer to what the executor will pay: a record built per call.
    let lua = sandbox.lua().clone();
    let lua_fresh = ns_per(200_000, || {
        let hit = sandbox
            .run(Duration::from_millis(50), |_| {
                let rec = lua.create_table_with_capacity(0, 4)?;
                rec.set("name", record.name.as_str())?;
                rec.set("service", &*record.service_name)?;
                rec.set("trace_id", record.trace_id.as_str())?;
                rec.set("duration_ms", record.duration_ns as f64 / 1e6)?;
                when.call::<bool>(rec)
            })
            .map_err(|e| e.to_string());
        assert_eq!(hit, Ok(true));
    });

    println!("functions trigger benchmark (one span, all checks match)");
    println!("  native where, fields only:        {native_fields:>8.1} ns/record");
    println!("  native where, attribute + field:  {native_attrs:>8.1} ns/record (scans the attribute JSON)");
    println!(
        "  entering Lua, trivial when:       {lua_when:>8.1} ns/call (deadline armed per call)"
    );
    println!("  entering Lua, 4-field record built: {lua_fresh:>8.1} ns/call");
    println!(
        "  ratio Lua (record built) / native: {:.0}x (fields), {:.1}x (attributes)",
        lua_fresh / native_fields,
        lua_fresh / native_attrs
    );
    Ok(())
}
