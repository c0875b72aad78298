//! The executor, registry and dispatcher driven together without a server:
//! scripts in a temporary directory, records offered as the hub would, and
//! the rows that would go to the writer collected by a test sink.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::dispatch::dispatch;
use super::engine::{Engine, EngineConfig};
use super::executor::{ExecutorConfig, Sink};
use super::runtime_api::RuntimeContext;
use crate::model::function::{Invocation, InvocationStatus};
use crate::model::{Batch, LogRecord, Record, Shared, SpanRecord};
use crate::stream::Event;

#[derive(Default, Clone)]
pub(super) struct Collect(pub(super) Arc<Mutex<Batch>>);

impl Sink for Collect {
    fn submit(&self, mut b: Batch) -> bool {
        let mut all = self.0.lock().unwrap();
        all.spans.append(&mut b.spans);
        all.logs.append(&mut b.logs);
        all.functions
            .invocations
            .append(&mut b.functions.invocations);
        all.functions
            .definitions
            .append(&mut b.functions.definitions);
        all.functions.state.append(&mut b.functions.state);
        all.functions.published.append(&mut b.functions.published);
        true
    }
}

impl Collect {
    pub(super) fn invocations(&self, function: &str) -> Vec<Invocation> {
        self.0
            .lock()
            .unwrap()
            .functions
            .invocations
            .iter()
            .filter(|i| i.function == function)
            .cloned()
            .collect()
    }
}

pub(super) struct Setup {
    pub(super) engine: Arc<Engine>,
    pub(super) sink: Collect,
    _dir: tempfile::TempDir,
}

pub(super) fn config(dir: &Path) -> EngineConfig {
    EngineConfig {
        dir: dir.to_path_buf(),
        executor: ExecutorConfig {
            workers: 2,
            queue_size: 100,
            max_timeout: Duration::from_secs(10),
            when_timeout: Duration::from_millis(50),
            breaker_failures: 1000,
            breaker_window: Duration::from_secs(60),
            breaker_cooldown: Duration::from_secs(60),
        },
        debounce: Duration::from_millis(20),
    }
}

fn setup_with(files: &[(&str, &str)], tweak: impl FnOnce(&mut EngineConfig)) -> Setup {
    setup_full(files, tweak, RuntimeContext::detached())
}

/// Scripts in a fresh folder, run by an engine with `runtime` (no hub).
pub(super) fn setup_full(
    files: &[(&str, &str)],
    tweak: impl FnOnce(&mut EngineConfig),
    runtime: Arc<RuntimeContext>,
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    for (name, src) in files {
        std::fs::write(dir.path().join(name), src).unwrap();
    }
    let sink = Collect::default();
    let mut cfg = config(dir.path());
    tweak(&mut cfg);
    let engine = Engine::start(
        cfg,
        Box::new(sink.clone()),
        runtime,
        None,
        Default::default(),
    )
    .unwrap();
    Setup {
        engine,
        sink,
        _dir: dir,
    }
}

pub(super) fn setup(files: &[(&str, &str)]) -> Setup {
    setup_with(files, |_| {})
}

pub(super) fn span_event(seq: u64, service: &str, duration_ms: u64) -> Event {
    Event {
        seq,
        record: Record::Span(Shared::from(SpanRecord {
            trace_id: format!("{seq:032x}").into(),
            span_id: format!("{seq:016x}").into(),
            name: format!("op{seq}"),
            kind: "SERVER",
            status_code: "OK",
            service_name: service.into(),
            start_time_unix_nano: 1_700_000_000_123_456_789,
            duration_ns: duration_ms * 1_000_000,
            attributes: r#"{"gen_ai.request.model":"gpt-4o","n":3}"#.into(),
            resource: r#"{"service.name":"x","host.name":"h"}"#.into(),
            events: "[]".into(),
            links: "[]".into(),
            ..Default::default()
        })),
    }
}

impl Setup {
    pub(super) fn send(&self, event: &Event) -> usize {
        dispatch(&self.engine.registry, self.engine.executor(), event)
    }

    /// Waits until `function` has `n` rows (or panics after 20 s).
    pub(super) fn wait_rows(&self, function: &str, n: usize) -> Vec<Invocation> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.engine.executor().outbox().flush();
            let rows = self.sink.invocations(function);
            if rows.len() >= n {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "{function}: {} of {n} rows: {rows:?}",
                rows.len()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

const ECHO: &str = r#"
return {
  qyl.fn {
    name = "echo",
    trigger = { on = "span", where = { service = "shop" } },
    handler = function(span, runtime)
      return { name = span.name, ms = span.duration_ms, start = span.start_time,
               start_ms = span.start_ms, model = span:attr("gen_ai.request.model"),
               host = span:attr("host.name"), n = span:attrs().n,
               kind = span:table().kind }
    end,
  },
  qyl.fn {
    name = "nothing",
    trigger = { on = "span", where = { service = "shop" } },
    handler = function() return nil end,
  },
}
"#;

#[test]
fn handlers_see_the_record_and_results_become_rows() {
    let s = setup(&[("echo.lua", ECHO)]);
    assert_eq!(s.send(&span_event(1, "shop", 1500)), 2);
    assert_eq!(s.send(&span_event(2, "elsewhere", 1500)), 0);
    let rows = s.wait_rows("echo", 1);
    let row = &rows[0];
    assert_eq!(row.status, InvocationStatus::Completed, "{row:?}");
    let result: serde_json::Value = serde_json::from_str(row.result.as_deref().unwrap()).unwrap();
    assert_eq!(result["name"], "op1");
    assert_eq!(result["ms"], 1500.0);
    assert_eq!(result["start"], "1700000000123456789");
    assert_eq!(result["start_ms"], 1_700_000_000_123.456_8);
    assert_eq!(result["model"], "gpt-4o");
    assert_eq!(result["host"], "h");
    assert_eq!(result["n"], 3);
    assert_eq!(result["kind"], "SERVER");
    assert_eq!(row.trace_id.as_deref(), Some(&*format!("{:032x}", 1)));
    let nothing = s.wait_rows("nothing", 1);
    assert_eq!(nothing[0].status, InvocationStatus::Completed);
    assert_eq!(nothing[0].result, None);
    // Each invocation is also a span of qyl's own.
    let all = s.sink.0.lock().unwrap();
    let own = all
        .spans
        .iter()
        .find(|sp| sp.name == "execute_tool echo")
        .expect("own span");
    assert_eq!(&*own.service_name, "qyl");
    assert!(own
        .attributes
        .contains(r#""gen_ai.operation.name":"execute_tool""#));
    assert!(own.attributes.contains(r#""gen_ai.tool.name":"echo""#));
    assert!(own.links.contains(&format!("{:016x}", 1)));
    // Definitions are recorded for qyl_functions.
    assert!(all
        .functions
        .definitions
        .iter()
        .any(|d| d.name == "echo" && d.enabled));
}

/// A function that must keep working next to the hostile ones.
const GOOD: &str = r#"
return qyl.fn {
  name = "good",
  trigger = { on = "span" },
  handler = function(span) return span.name end,
}
"#;

fn hostile(name: &str, body: &str) -> String {
    format!(
        r#"return qyl.fn {{
  name = "{name}",
  trigger = {{ on = "span" }},
  handler = function(span, runtime)
    {body}
  end,
  timeout_ms = 300,
  memory_mb = 8,
}}"#
    )
}

#[test]
fn hostile_handlers_are_contained_and_others_keep_running() {
    let cases: &[(&str, &str, &[InvocationStatus], &str)] = &[
        (
            "spin",
            "while true do end",
            &[InvocationStatus::TimedOut],
            "timed out",
        ),
        (
            "pcall-spin",
            "while true do pcall(function() while true do end end) end",
            &[InvocationStatus::TimedOut],
            "timed out",
        ),
        (
            "backtrack",
            "return string.find(string.rep('a', 5000), '.-.-.-.-.-.-b')",
            &[InvocationStatus::TimedOut],
            "timed out",
        ),
        (
            "rep-bomb",
            "return #string.rep('x', 2^28)",
            &[InvocationStatus::Failed],
            "memory",
        ),
        (
            "table-growth",
            "local t = {} for i = 1, 1e9 do t[i] = i end",
            &[InvocationStatus::Failed, InvocationStatus::TimedOut],
            "",
        ),
        (
            "recursion",
            "local function f(n) return 1 + f(n + 1) end return f(1)",
            &[InvocationStatus::Failed],
            "",
        ),
        (
            "os-execute",
            "return os.execute('true')",
            &[InvocationStatus::Failed],
            "nil value",
        ),
        (
            "io",
            "return io.open('/etc/passwd')",
            &[InvocationStatus::Failed],
            "nil",
        ),
        (
            "require",
            "return require('os')",
            &[InvocationStatus::Failed],
            "nil value",
        ),
        (
            "load",
            "return load('return 1')()",
            &[InvocationStatus::Failed],
            "nil value",
        ),
        (
            "debug",
            "return debug.getinfo(1)",
            &[InvocationStatus::Failed],
            "nil",
        ),
        (
            "getfenv",
            "return getfenv(1)",
            &[InvocationStatus::Failed],
            "nil value",
        ),
        (
            "string-mt",
            "getmetatable('').__index = { x = 1 } return ('a').x",
            &[InvocationStatus::Failed],
            "",
        ),
        (
            "errors",
            "error('boom')",
            &[InvocationStatus::Failed],
            "boom",
        ),
        (
            "bad-result",
            "return { f = function() end }",
            &[InvocationStatus::Failed],
            "JSON",
        ),
    ];
    let mut files: Vec<(String, String)> = cases
        .iter()
        .map(|(name, body, _, _)| (format!("{name}.lua"), hostile(name, body)))
        .collect();
    files.push(("good.lua".into(), GOOD.into()));
    files.push((
        "when-errors.lua".into(),
        r#"return qyl.fn { name = "when-errors",
             trigger = { on = "span", when = function(span) return span.nope.x end },
             handler = function() return 1 end }"#
            .into(),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let s = setup(&refs);
    assert!(
        s.engine.load_errors().is_empty(),
        "{:?}",
        s.engine.load_errors()
    );
    for seq in 1..=2 {
        s.send(&span_event(seq, "svc", 10));
    }
    assert_eq!(s.wait_rows("good", 2).len(), 2);
    for (name, _, statuses, needle) in cases {
        let rows = s.wait_rows(name, 2);
        for row in &rows {
            assert!(statuses.contains(&row.status), "{name}: {row:?}");
            let err = row.error.as_deref().unwrap_or_default();
            assert!(err.contains(needle), "{name}: {err}");
        }
    }
    let rows = s.wait_rows("when-errors", 2);
    assert!(rows.iter().all(|r| r.status == InvocationStatus::Failed
        && r.error
            .as_deref()
            .unwrap_or_default()
            .contains("trigger.when")));
    // After all that, the good function still answers at once.
    s.send(&span_event(3, "svc", 10));
    let good = s.wait_rows("good", 3);
    assert!(good.iter().all(|r| r.status == InvocationStatus::Completed));
}

#[test]
fn rate_limits_and_full_queues_skip_without_blocking() {
    let s = setup_with(
        &[
            (
                "limited.lua",
                r#"return qyl.fn { name = "limited", trigger = { on = "span" },
                     handler = function() return 1 end, rate_limit = "2/m" }"#,
            ),
            (
                "slow.lua",
                r#"return qyl.fn { name = "slow", trigger = { on = "span" },
                     handler = function() local t = os.clock() while os.clock() - t < 0.05 do end end }"#,
            ),
        ],
        |c| c.executor.queue_size = 3,
    );
    // The clock and the second the executor samples by.
    let unix_second = || crate::model::now_unix_nano() / 1_000_000_000;
    let (started, first_second) = (Instant::now(), unix_second());
    for seq in 1..=50 {
        s.send(&span_event(seq, "svc", 1));
    }
    // Offering never waited for the slow handler.
    assert!(started.elapsed() < Duration::from_secs(2));
    let seconds = (unix_second() - first_second + 1) as usize;
    let list = s.engine.list();
    let get = |n: &str| list.iter().find(|f| f.name == n).unwrap().clone();
    assert_eq!(get("limited").skipped, 48);
    assert!(get("slow").skipped >= 40, "{:?}", get("slow"));
    let limited = s.wait_rows("limited", 3);
    assert_eq!(
        limited
            .iter()
            .filter(|r| r.status == InvocationStatus::Completed)
            .count(),
        2
    );
    // Skipped invocations are sampled: one row per (Unix) second the
    // offers took, with why; not one per skip.
    let skipped: Vec<_> = limited
        .iter()
        .filter(|r| r.status == InvocationStatus::Skipped)
        .collect();
    assert!(
        (1..=seconds).contains(&skipped.len()),
        "{} sampled rows over {seconds} s",
        skipped.len()
    );
    assert!(skipped
        .iter()
        .all(|r| r.error.as_deref() == Some("rate limit reached")));
}

#[test]
fn the_circuit_breaker_pauses_a_failing_function() {
    let s = setup_with(
        &[(
            "flaky.lua",
            r#"return qyl.fn { name = "flaky", trigger = { on = "span" },
                 handler = function() error("upstream down") end }"#,
        )],
        |c| c.executor.breaker_failures = 3,
    );
    for seq in 1..=3 {
        s.send(&span_event(seq, "svc", 1));
        s.wait_rows("flaky", seq as usize);
    }
    let f = s
        .engine
        .list()
        .into_iter()
        .find(|f| f.name == "flaky")
        .unwrap();
    assert_eq!(f.state, "paused");
    assert!(f.last_error.unwrap().contains("upstream down"));
    s.send(&span_event(4, "svc", 1));
    let f = s
        .engine
        .list()
        .into_iter()
        .find(|f| f.name == "flaky")
        .unwrap();
    assert_eq!((f.invocation_count, f.skipped), (3, 1));
    // Saving the file again starts a fresh version, unpaused.
    s.engine
        .registry
        .refresh(&s.engine.config.dir.join("flaky.lua"));
    let f = s
        .engine
        .list()
        .into_iter()
        .find(|f| f.name == "flaky")
        .unwrap();
    assert_eq!(f.state, "active");
}

#[test]
fn runtime_state_log_and_publish_leave_as_rows() {
    let s = setup(&[(
        "count.lua",
        r#"return qyl.fn { name = "count", trigger = { on = "span" },
             handler = function(span, runtime)
               local n = runtime.state.incr("seen")
               runtime.state.set("last", { name = span.name })
               runtime.log.warn("seen " .. n)
               runtime.stream.publish("counts", { n = n })
               return { n = n, last = runtime.state.get("last").name,
                        fns = #runtime.functions.list() }
             end }"#,
    )]);
    for seq in 1..=3 {
        s.send(&span_event(seq, "svc", 1));
    }
    let rows = s.wait_rows("count", 3);
    let last: serde_json::Value = serde_json::from_str(rows[2].result.as_deref().unwrap()).unwrap();
    assert_eq!(last, serde_json::json!({ "n": 3, "last": "op3", "fns": 1 }));
    let all = s.sink.0.lock().unwrap();
    let seen: Vec<_> = all
        .functions
        .state
        .iter()
        .filter(|w| w.key == "seen")
        .map(|w| w.value.clone().unwrap())
        .collect();
    assert_eq!(seen, ["1", "2", "3"]);
    let log = all
        .logs
        .iter()
        .find(|l| l.body.as_deref() == Some("seen 3"))
        .unwrap();
    assert_eq!(
        (log.service_name.as_str(), log.severity_number),
        ("qyl", 13)
    );
    assert!(log.attributes.contains(r#""qyl.function.name":"count""#));
    assert_eq!(all.functions.published.len(), 3);
    assert_eq!(all.functions.published[0].topic, "counts");
}

#[test]
fn own_telemetry_never_triggers_functions() {
    let s = setup(&[("good.lua", GOOD)]);
    let own = Event {
        seq: 1,
        record: Record::Span(Shared::from(SpanRecord {
            service_name: "qyl".into(),
            scope_name: Some("qyl.functions".into()),
            attributes: "{}".into(),
            resource: "{}".into(),
            ..Default::default()
        })),
    };
    assert_eq!(s.send(&own), 0);
    let log = Event {
        seq: 2,
        record: Record::Log(Shared::from(LogRecord {
            service_name: "qyl".into(),
            scope_name: Some("qyl.functions".into()),
            attributes: "{}".into(),
            resource: "{}".into(),
            ..Default::default()
        })),
    };
    assert_eq!(s.send(&log), 0);
}

#[test]
fn reloads_swap_versions_and_broken_saves_keep_the_old_one() {
    let s = setup(&[("v.lua", &GOOD.replace("return span.name", "return 'v1'"))]);
    let path = s.engine.config.dir.join("v.lua");
    s.send(&span_event(1, "svc", 1));
    assert_eq!(s.wait_rows("good", 1)[0].result.as_deref(), Some("\"v1\""));
    std::fs::write(&path, GOOD.replace("return span.name", "return 'v2'")).unwrap();
    s.engine.registry.refresh(&path);
    s.send(&span_event(2, "svc", 1));
    assert_eq!(s.wait_rows("good", 2)[1].result.as_deref(), Some("\"v2\""));
    // Broken: the old version keeps running, the error is reported.
    std::fs::write(
        &path,
        "return qyl.fn {\n name = 'good',\n trigger = { on = 'spam' }, handler = function() end }",
    )
    .unwrap();
    s.engine.registry.refresh(&path);
    let errors = s.engine.load_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].1.line, Some(1));
    assert!(
        errors[0].1.message.contains("trigger.on"),
        "{:?}",
        errors[0].1
    );
    assert_eq!(s.engine.list()[0].state, "error");
    s.send(&span_event(3, "svc", 1));
    assert_eq!(s.wait_rows("good", 3)[2].result.as_deref(), Some("\"v2\""));
    // A name taken by another file is refused (QYL2003).
    let other = s.engine.config.dir.join("other.lua");
    std::fs::write(&other, GOOD).unwrap();
    s.engine.registry.refresh(&other);
    assert!(s
        .engine
        .load_errors()
        .iter()
        .any(|(p, e)| p == &other && e.message.contains("QYL2003")));
    std::fs::remove_file(&other).unwrap();
    s.engine.registry.refresh(&other);
    // Deleted: its functions stop.
    std::fs::remove_file(&path).unwrap();
    s.engine.registry.refresh(&path);
    assert!(s.engine.list().is_empty());
    assert_eq!(s.send(&span_event(4, "svc", 1)), 0);
}

#[test]
fn the_watcher_loads_new_files_and_ignores_editor_temp_files() {
    let s = setup(&[]);
    let dir = s.engine.config.dir.clone();
    let wait_for = |want: &[&str]| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let names: Vec<String> = s.engine.list().into_iter().map(|f| f.name).collect();
            if names == want {
                return;
            }
            assert!(Instant::now() < deadline, "have {names:?}, want {want:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    std::fs::write(dir.join("good.lua"), GOOD).unwrap();
    wait_for(&["good"]);
    for temp in [".good.lua.swp", "good.lua~", ".#good.lua", "4913"] {
        std::fs::write(dir.join(temp), "this is not lua").unwrap();
    }
    // vim-style save: write a temp file, rename it over the original.
    std::fs::write(dir.join("tmp.swx"), GOOD.replace("\"good\"", "\"renamed\"")).unwrap();
    std::fs::rename(dir.join("tmp.swx"), dir.join("good.lua")).unwrap();
    wait_for(&["renamed"]);
    // Renaming the file to something that is not a script unloads it.
    std::fs::rename(dir.join("good.lua"), dir.join("good.lua.bak")).unwrap();
    wait_for(&[]);
    assert!(
        s.engine.load_errors().is_empty(),
        "{:?}",
        s.engine.load_errors()
    );
}

#[test]
fn schedules_fire_without_a_record() {
    // Schedules need the dispatcher's scheduler thread, which needs a hub.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tick.lua"),
        r#"return qyl.fn { name = "tick", trigger = { on = "schedule", every = "1s" },
             handler = function(record) return record == nil end }"#,
    )
    .unwrap();
    let sink = Collect::default();
    let engine = Engine::start(
        config(dir.path()),
        Box::new(sink.clone()),
        RuntimeContext::detached(),
        Some(Arc::new(crate::stream::Hub::new(16))),
        Default::default(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.invocations("tick").is_empty() {
        assert!(Instant::now() < deadline, "the schedule never fired");
        engine.executor().outbox().flush();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sink.invocations("tick")[0].result.as_deref(), Some("true"));
    engine.stop();
}

#[test]
fn a_record_kept_past_its_invocation_says_so() {
    // One worker, so both invocations run in the same VM.
    let s = setup_with(
        &[(
            "keep.lua",
            r#"local kept
           return qyl.fn { name = "keep", trigger = { on = "span" },
             handler = function(span)
               if kept then return kept.name end
               kept = span
               return span:table().name
             end }"#,
        )],
        |c| c.executor.workers = 1,
    );
    s.send(&span_event(1, "svc", 1));
    s.wait_rows("keep", 1);
    s.send(&span_event(2, "svc", 1));
    let rows = s.wait_rows("keep", 2);
    assert_eq!(rows[0].result.as_deref(), Some("\"op1\""));
    assert_eq!(rows[1].status, InvocationStatus::Failed);
    assert!(
        rows[1]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("keep record:table() instead"),
        "{:?}",
        rows[1]
    );
}

#[test]
fn stopping_interrupts_a_running_handler() {
    let s = setup(&[(
        "slow.lua",
        r#"return qyl.fn { name = "slow", trigger = { on = "span" },
             handler = function() while true do end end, timeout_ms = 600000 }"#,
    )]);
    s.send(&span_event(1, "svc", 1));
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    s.engine.stop();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop waited {:?} for a handler with a 10 s deadline",
        started.elapsed()
    );
}

#[test]
fn an_invocation_past_a_second_gets_a_running_row_that_its_final_row_replaces() {
    let s = setup(&[(
        "slow.lua",
        r#"return {
  qyl.fn {
    name = "slow",
    trigger = { on = "span", where = { service = "slow" } },
    handler = function(span)
      local t = os.clock()
      while os.clock() - t < 1.5 do end
      return "done"
    end,
  },
  qyl.fn {
    name = "quick",
    trigger = { on = "span", where = { service = "quick" } },
    handler = function(span) return span.name end,
  },
}"#,
    )]);
    for seq in 1..=50 {
        s.send(&span_event(seq, "quick", 1));
    }
    s.send(&span_event(100, "slow", 1));
    let rows = s.wait_rows("slow", 1);
    assert_eq!(rows[0].status, InvocationStatus::Running, "{rows:?}");
    assert!(!rows[0].replaces_running);
    assert_eq!(rows[0].finished_unix_nano, 0);
    assert!(rows[0].duration_ms >= 1000.0, "{rows:?}");
    assert_eq!(rows[0].trace_id.as_deref(), Some(&*format!("{:032x}", 100)));

    let rows = s.wait_rows("slow", 2);
    let (running, done) = (&rows[0], &rows[1]);
    assert_eq!(done.status, InvocationStatus::Completed, "{rows:?}");
    assert!(done.replaces_running);
    assert_eq!(done.invocation_id, running.invocation_id);
    assert_eq!(done.started_unix_nano, running.started_unix_nano);
    assert!(done.finished_unix_nano > done.started_unix_nano);
    assert!(done.duration_ms >= 1500.0, "{done:?}");
    // The invocation's own span has the invocation's id.
    let own = s.sink.0.lock().unwrap();
    assert!(own
        .spans
        .iter()
        .any(|sp| sp.name == "execute_tool slow" && sp.span_id == done.invocation_id));
    drop(own);

    // Quick invocations: one row each, when they end, and no running row.
    let quick = s.wait_rows("quick", 50);
    assert_eq!(quick.len(), 50);
    assert!(quick
        .iter()
        .all(|r| r.status == InvocationStatus::Completed && !r.replaces_running));
}

#[test]
fn a_slow_invocation_does_not_hold_back_the_rows_of_quick_ones_before_it() {
    let s = setup(&[(
        "mixed.lua",
        r#"return qyl.fn {
  name = "mixed",
  trigger = { on = "span", where = { service = "mixed" } },
  handler = function(span)
    if span.name == "op100" then
      local t = os.clock()
      while os.clock() - t < 1.5 do end
      return "slow"
    end
    return span.name
  end,
}"#,
    )]);
    // One function, one at a time: the quick ones and the slow one are run
    // by the same worker, one after the other.
    for seq in 1..=5 {
        s.send(&span_event(seq, "mixed", 1));
    }
    s.send(&span_event(100, "mixed", 1));
    let rows = s.wait_rows("mixed", 5);
    assert!(
        rows.iter().all(|r| r.result.as_deref() != Some("\"slow\"")),
        "the quick rows came only with the slow one: {rows:?}"
    );
    let done = s.wait_rows("mixed", 7);
    assert!(done.iter().any(|r| r.result.as_deref() == Some("\"slow\"")));
}
