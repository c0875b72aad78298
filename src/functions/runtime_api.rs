//! `runtime`, the second argument of every handler: the store (the same
//! `storage::Store` REST uses), the live stream, the function list,
//! per-function persistent state, logging, and (in `runtime_http`) calls
//! to allowed hosts and the secrets to make them with.
//!
//! Handlers run on the executor's worker threads, so a store call blocks
//! that thread on the Store's future (through a tokio `Handle`, never on a
//! tokio worker) for at most the invocation's remaining time. Everything a
//! call writes (logs, state, published values) is gathered in the VM's app
//! data and leaves with the invocation's row, through the one writer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use mlua::{Lua, LuaSerdeExt, Table, Value};

use super::executor::{own_log, FunctionStats};
use super::http::HttpSettings;
use super::runtime_http::{http_table, secret_function};
use super::spec::parse_duration;
use crate::model::errors::{ErrorQuery, ErrorSort};
use crate::model::function::{Published, SqlParam, StateWrite};
use crate::model::now_unix_nano;
use crate::model::query::{
    GenAiFilter, LogQuery, LogRow, PageRequest, SpanFilter, SpanQuery, SpanRow,
};
use crate::model::{Batch, Record};
use crate::storage::queries::errors::is_status_filter;
use crate::storage::reader::with_deadline;
use crate::storage::{QueryError, Store};
use crate::stream::Hub;

/// Largest page `query_spans` / `query_logs` / `stream.recent` return.
const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

/// What every VM's `runtime` reaches, shared by all functions.
pub struct RuntimeContext {
    pub store: Option<Arc<Store>>,
    /// The server's tokio runtime, to wait on the Store from a worker thread.
    pub handle: Option<tokio::runtime::Handle>,
    pub hub: Option<Arc<Hub>>,
    pub sql_row_limit: usize,
    /// `runtime.functions.list()`, replaced on every reload.
    pub catalog: ArcSwap<Vec<serde_json::Value>>,
    /// `runtime.http` and `runtime.secret` (`[functions]` of qyl.toml).
    pub http: HttpSettings,
}

impl RuntimeContext {
    /// A context without store or hub (tests, benchmarks, `qyl check`).
    pub fn detached() -> Arc<RuntimeContext> {
        Arc::new(RuntimeContext {
            store: None,
            handle: None,
            hub: None,
            sql_row_limit: 1000,
            catalog: ArcSwap::from_pointee(Vec::new()),
            http: HttpSettings::default(),
        })
    }

    /// A detached context with these network settings (tests).
    pub fn detached_with_http(http: HttpSettings) -> Arc<RuntimeContext> {
        Arc::new(RuntimeContext {
            store: None,
            handle: None,
            hub: None,
            sql_row_limit: 1000,
            catalog: ArcSwap::from_pointee(Vec::new()),
            http,
        })
    }
}

/// The invocation running in a VM (its app data while the handler runs).
#[derive(Debug, Clone)]
pub struct Current {
    pub deadline: Instant,
    pub function: String,
    /// qyl's own span of this invocation, which `runtime.log` records join.
    pub trace_id: String,
    pub span_id: String,
    /// Set at shutdown: a call blocked on the network gives up.
    pub cancel: Arc<AtomicBool>,
}

impl Default for Current {
    fn default() -> Self {
        Current {
            deadline: Instant::now(),
            function: String::new(),
            trace_id: String::new(),
            span_id: String::new(),
            cancel: Arc::default(),
        }
    }
}

pub(super) fn current(lua: &Lua) -> mlua::Result<Current> {
    lua.app_data_ref::<Current>()
        .map(|c| c.clone())
        .ok_or_else(|| mlua::Error::runtime("runtime is only available inside a handler"))
}

/// Rows produced by this call, collected by the executor after it.
fn with_rows(lua: &Lua, f: impl FnOnce(&mut Batch)) {
    if lua.app_data_ref::<Batch>().is_none() {
        lua.set_app_data(Batch::default());
    }
    if let Some(mut rows) = lua.app_data_mut::<Batch>() {
        f(&mut rows);
    }
}

pub(super) fn bad(message: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(message.into())
}

/// Waits for a store future within the invocation's remaining time.
fn block<T>(
    lua: &Lua,
    ctx: &RuntimeContext,
    what: &str,
    fut: impl Future<Output = Result<T, QueryError>>,
) -> mlua::Result<T> {
    let cur = current(lua)?;
    let remaining = cur.deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(bad(format!("{what}: the invocation's deadline has passed")));
    }
    let handle = ctx
        .handle
        .as_ref()
        .ok_or_else(|| bad(format!("{what}: the store is not available here")))?;
    // Worker threads are not tokio threads, so blocking here is allowed
    // and stalls nothing but this invocation. The query inherits the
    // invocation's deadline, which interrupts it in DuckDB.
    let deadline = tokio::time::Instant::from_std(cur.deadline);
    match handle.block_on(with_deadline(deadline, fut)) {
        Ok(v) => Ok(v),
        Err(QueryError::Timeout(_) | QueryError::Busy(_) | QueryError::SqlBusy(_))
            if Instant::now() >= cur.deadline =>
        {
            Err(bad(format!(
                "{what}: stopped at the invocation's deadline ({} ms left when it started)",
                remaining.as_millis()
            )))
        }
        Err(e) => Err(bad(format!("{what}: {e}"))),
    }
}

fn store(ctx: &RuntimeContext, what: &str) -> mlua::Result<Arc<Store>> {
    ctx.store
        .clone()
        .ok_or_else(|| bad(format!("{what}: the store is not available here")))
}

fn to_lua<T: serde::Serialize>(lua: &Lua, v: &T) -> mlua::Result<Value> {
    let json = serde_json::to_value(v).map_err(mlua::Error::external)?;
    lua.to_value(&json)
}

/// The options table of a call, with unknown keys refused by name.
pub(super) struct Opts {
    what: &'static str,
    pub(super) values: HashMap<String, Value>,
}

impl Opts {
    pub(super) fn new(
        what: &'static str,
        t: Option<Table>,
        allowed: &[&str],
    ) -> mlua::Result<Opts> {
        let mut values = HashMap::new();
        if let Some(t) = t {
            for pair in t.pairs::<String, Value>() {
                let (k, v) = pair.map_err(|e| bad(format!("{what}: {e}")))?;
                if !allowed.contains(&k.as_str()) {
                    return Err(bad(format!(
                        "{what}: unknown option `{k}` (expected one of: {})",
                        allowed.join(", ")
                    )));
                }
                values.insert(k, v);
            }
        }
        Ok(Opts { what, values })
    }

    fn string(&self, key: &str) -> mlua::Result<Option<String>> {
        match self.values.get(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.to_str()?.to_string())),
            Some(Value::Integer(i)) => Ok(Some(i.to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(bad(format!(
                "{}: `{key}` must be a string, not a {}",
                self.what,
                other.type_name()
            ))),
        }
    }

    pub(super) fn number(&self, key: &str) -> mlua::Result<Option<f64>> {
        match self.values.get(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Integer(i)) => Ok(Some(*i as f64)),
            Some(Value::Number(n)) => Ok(Some(*n)),
            Some(other) => Err(bad(format!(
                "{}: `{key}` must be a number, not a {}",
                self.what,
                other.type_name()
            ))),
        }
    }

    fn limit(&self) -> mlua::Result<usize> {
        Ok(self
            .number("limit")?
            .map_or(DEFAULT_LIMIT, |n| n.max(1.0) as usize)
            .min(MAX_LIMIT))
    }

    /// A time: a duration ago (`"1h"`) or Unix milliseconds.
    fn time(&self, key: &str) -> mlua::Result<Option<u64>> {
        match self.values.get(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::String(s)) => {
                let ago = parse_duration(&s.to_str()?)
                    .map_err(|m| bad(format!("{}: `{key}`: {m}", self.what)))?;
                Ok(Some(now_unix_nano().saturating_sub(ago.as_nanos() as u64)))
            }
            Some(_) => Ok(self.number(key)?.map(|ms| (ms.max(0.0) * 1e6) as u64)),
        }
    }

    fn attrs(&self) -> mlua::Result<Vec<(String, String)>> {
        match self.values.get("attrs") {
            None | Some(Value::Nil) => Ok(Vec::new()),
            Some(Value::Table(t)) => t
                .pairs::<String, String>()
                .map(|p| p.map_err(|e| bad(format!("{}: attrs: {e}", self.what))))
                .collect(),
            Some(other) => Err(bad(format!(
                "{}: `attrs` must be a table of key = value, not a {}",
                self.what,
                other.type_name()
            ))),
        }
    }
}

/// Builds `runtime` in `lua` for the function whose counters and state are
/// `stats`.
pub fn install(
    lua: &Lua,
    ctx: Arc<RuntimeContext>,
    stats: Arc<FunctionStats>,
) -> mlua::Result<Table> {
    let runtime = lua.create_table()?;
    runtime.set("store", store_table(lua, &ctx)?)?;
    runtime.set("stream", stream_table(lua, &ctx)?)?;
    runtime.set("functions", functions_table(lua, &ctx)?)?;
    runtime.set("state", state_table(lua, stats)?)?;
    runtime.set("log", log_table(lua)?)?;
    runtime.set("http", http_table(lua, &ctx)?)?;
    for pair in runtime.pairs::<Value, Table>() {
        let (_, t) = pair?;
        t.set_readonly(true);
    }
    runtime.set("secret", secret_function(lua, &ctx)?)?;
    runtime.set_readonly(true);
    Ok(runtime)
}

fn store_table(lua: &Lua, ctx: &Arc<RuntimeContext>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    {
        let ctx = ctx.clone();
        t.set(
            "query_spans",
            lua.create_function(move |lua, opts: Option<Table>| {
                const WHAT: &str = "runtime.store.query_spans";
                let o = Opts::new(
                    WHAT,
                    opts,
                    &[
                        "service",
                        "name",
                        "status",
                        "kind",
                        "min_duration_ms",
                        "max_duration_ms",
                        "since",
                        "until",
                        "attrs",
                        "session_id",
                        "trace_id",
                        "limit",
                    ],
                )?;
                let ms = |k| -> mlua::Result<Option<u64>> {
                    Ok(o.number(k)?.map(|v| (v.max(0.0) * 1e6) as u64))
                };
                let q = SpanQuery {
                    filter: SpanFilter {
                        service: o.string("service")?,
                        name: o.string("name")?,
                        status: o.string("status")?.map(|s| s.to_ascii_uppercase()),
                        kind: o.string("kind")?.map(|s| s.to_ascii_uppercase()),
                        min_duration_ns: ms("min_duration_ms")?,
                        max_duration_ns: ms("max_duration_ms")?,
                        since: o.time("since")?,
                        until: o.time("until")?,
                        attrs: o.attrs()?,
                        session_id: o.string("session_id")?,
                        trace_id: o.string("trace_id")?.map(|s| s.to_ascii_lowercase()),
                    },
                    page: PageRequest {
                        limit: o.limit()?,
                        cursor: None,
                    },
                };
                let store = store(&ctx, WHAT)?;
                let page = block(lua, &ctx, WHAT, store.query_spans(q))?;
                to_lua(lua, &page.items)
            })?,
        )?;
    }
    {
        let ctx = ctx.clone();
        t.set(
            "query_logs",
            lua.create_function(move |lua, opts: Option<Table>| {
                const WHAT: &str = "runtime.store.query_logs";
                let o = Opts::new(
                    WHAT,
                    opts,
                    &[
                        "service",
                        "severity_min",
                        "trace_id",
                        "span_id",
                        "session_id",
                        "text",
                        "since",
                        "until",
                        "attrs",
                        "limit",
                    ],
                )?;
                let severity_min = match o.values.get("severity_min") {
                    None | Some(Value::Nil) => None,
                    Some(Value::String(s)) => {
                        Some(crate::model::severity_number(&s.to_str()?).ok_or_else(|| {
                            bad(format!("{WHAT}: severity_min is not a severity"))
                        })?)
                    }
                    Some(_) => o.number("severity_min")?.map(|n| n as i32),
                };
                let q = LogQuery {
                    service: o.string("service")?,
                    severity_min,
                    trace_id: o.string("trace_id")?.map(|s| s.to_ascii_lowercase()),
                    span_id: o.string("span_id")?.map(|s| s.to_ascii_lowercase()),
                    session_id: o.string("session_id")?,
                    text: o.string("text")?,
                    since: o.time("since")?,
                    until: o.time("until")?,
                    attrs: o.attrs()?,
                    page: PageRequest {
                        limit: o.limit()?,
                        cursor: None,
                    },
                };
                let store = store(&ctx, WHAT)?;
                let page = block(lua, &ctx, WHAT, store.query_logs(q))?;
                to_lua(lua, &page.items)
            })?,
        )?;
    }
    {
        let ctx = ctx.clone();
        t.set(
            "get_trace",
            lua.create_function(move |lua, id: String| {
                const WHAT: &str = "runtime.store.get_trace";
                let store = store(&ctx, WHAT)?;
                let id = id.to_ascii_lowercase();
                let Some(tree) = block(lua, &ctx, WHAT, store.get_trace(&id))? else {
                    return Ok(Value::Nil);
                };
                let mut json = serde_json::to_value(&tree).map_err(mlua::Error::external)?;
                // `trace.root`: the first root span, the one a user means.
                if let Some(root) = json.get("roots").and_then(|r| r.get(0)).cloned() {
                    json["root"] = root;
                }
                lua.to_value(&json)
            })?,
        )?;
    }
    {
        let ctx = ctx.clone();
        t.set(
            "genai_stats",
            lua.create_function(move |lua, opts: Option<Table>| {
                const WHAT: &str = "runtime.store.genai_stats";
                let o = Opts::new(WHAT, opts, &["window", "service", "provider", "model"])?;
                let window = match o.string("window")? {
                    Some(w) => {
                        parse_duration(&w).map_err(|m| bad(format!("{WHAT}: window: {m}")))?
                    }
                    None => Duration::from_secs(3600),
                };
                let until = now_unix_nano();
                let window_ns = (window.as_nanos() as u64).max(1);
                let f = GenAiFilter {
                    since: until.saturating_sub(window_ns),
                    until,
                    service: o.string("service")?,
                    provider: o.string("provider")?,
                    model: o.string("model")?,
                    session_id: None,
                    step_ns: window_ns,
                };
                let store = store(&ctx, WHAT)?;
                let stats = block(lua, &ctx, WHAT, store.genai_stats(f))?;
                to_lua(lua, &stats)
            })?,
        )?;
    }
    {
        let ctx = ctx.clone();
        t.set(
            "storage_stats",
            lua.create_function(move |lua, ()| {
                const WHAT: &str = "runtime.store.storage_stats";
                let store = store(&ctx, WHAT)?;
                let stats = block(lua, &ctx, WHAT, store.storage_stats())?;
                to_lua(lua, &stats)
            })?,
        )?;
    }
    {
        let ctx = ctx.clone();
        t.set(
            "errors",
            lua.create_function(move |lua, opts: Option<Table>| {
                const WHAT: &str = "runtime.store.errors";
                let o = Opts::new(
                    WHAT,
                    opts,
                    &[
                        "status", "service", "release", "category", "since", "sort", "limit",
                    ],
                )?;
                let status = o.string("status")?.map(|s| s.to_ascii_lowercase());
                if let Some(s) = &status {
                    if !is_status_filter(s) {
                        return Err(bad(format!(
                            "{WHAT}: status {s:?} is not one of unresolved, resolved, archived, merged, new, ongoing, regressed, escalating"
                        )));
                    }
                }
                let sort = match o.string("sort")?.as_deref() {
                    None | Some("last_seen") => ErrorSort::LastSeen,
                    Some("count") => ErrorSort::Count,
                    Some("users") => ErrorSort::Users,
                    Some(other) => {
                        return Err(bad(format!(
                            "{WHAT}: sort {other:?} is not one of last_seen, count, users"
                        )))
                    }
                };
                let q = ErrorQuery {
                    status,
                    service: o.string("service")?,
                    release: o.string("release")?,
                    category: o.string("category")?,
                    since: o.time("since")?,
                    q: None,
                    sort,
                    page: PageRequest {
                        limit: o.limit()?,
                        cursor: None,
                    },
                    now_unix_nano: now_unix_nano(),
                };
                let store = store(&ctx, WHAT)?;
                let page = block(lua, &ctx, WHAT, store.list_errors(q))?;
                to_lua(lua, &page.items)
            })?,
        )?;
    }
    {
        let ctx = ctx.clone();
        t.set(
            "sql",
            lua.create_function(move |lua, (text, params): (String, Option<Table>)| {
                const WHAT: &str = "runtime.store.sql";
                let mut values = Vec::new();
                if let Some(p) = params {
                    for v in p.sequence_values::<Value>() {
                        values.push(match v? {
                            Value::Nil => SqlParam::Null,
                            Value::Boolean(b) => SqlParam::Bool(b),
                            Value::Integer(i) => SqlParam::Int(i),
                            Value::Number(n) if n.fract() == 0.0 && n.abs() < 9e15 => {
                                SqlParam::Int(n as i64)
                            }
                            Value::Number(n) => SqlParam::Float(n),
                            Value::String(s) => SqlParam::Text(s.to_str()?.to_string()),
                            other => {
                                return Err(bad(format!(
                                    "{WHAT}: a parameter cannot be a {}",
                                    other.type_name()
                                )))
                            }
                        });
                    }
                }
                let store = store(&ctx, WHAT)?;
                let result = block(
                    lua,
                    &ctx,
                    WHAT,
                    store.sql_with_params(text, values, ctx.sql_row_limit),
                )?;
                // Rows as tables keyed by column name: what a script wants.
                let rows: Vec<serde_json::Map<String, serde_json::Value>> = result
                    .rows
                    .into_iter()
                    .map(|row| {
                        result
                            .columns
                            .iter()
                            .map(|c| c.name.clone())
                            .zip(row)
                            .collect()
                    })
                    .collect();
                to_lua(lua, &rows)
            })?,
        )?;
    }
    Ok(t)
}

fn stream_table(lua: &Lua, ctx: &Arc<RuntimeContext>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    {
        let ctx = ctx.clone();
        t.set(
            "recent",
            lua.create_function(move |lua, opts: Option<Table>| {
                const WHAT: &str = "runtime.stream.recent";
                let o = Opts::new(WHAT, opts, &["type", "service", "trace_id", "limit"])?;
                let kind = o.string("type")?;
                if kind.as_deref().is_some_and(|k| k != "span" && k != "log") {
                    return Err(bad(format!("{WHAT}: `type` is \"span\" or \"log\"")));
                }
                let service = o.string("service")?;
                let trace_id = o.string("trace_id")?.map(|s| s.to_ascii_lowercase());
                let hub = ctx
                    .hub
                    .as_ref()
                    .ok_or_else(|| bad(format!("{WHAT}: the live stream is not available here")))?;
                let events = hub.recent(o.limit()?, |e| {
                    let (signal, trace) = match &e.record {
                        Record::Span(s) => ("span", Some(s.trace_id.as_str())),
                        Record::Log(l) => ("log", l.trace_id.as_deref()),
                        _ => return false,
                    };
                    kind.as_deref().is_none_or(|k| k == signal)
                        && service
                            .as_deref()
                            .is_none_or(|s| s == e.record.service_name())
                        && trace_id.as_deref().is_none_or(|t| Some(t) == trace)
                });
                let rows: Vec<serde_json::Value> = events
                    .iter()
                    .filter_map(|e| match &e.record {
                        Record::Span(s) => {
                            serde_json::to_value(SpanRow::from_record(s, e.seq)).ok()
                        }
                        Record::Log(l) => serde_json::to_value(LogRow::from_record(l, e.seq)).ok(),
                        _ => None,
                    })
                    .collect();
                lua.to_value(&rows)
            })?,
        )?;
    }
    t.set(
        "publish",
        lua.create_function(|lua, (topic, value): (String, Value)| {
            let cur = current(lua)?;
            let json: serde_json::Value = lua.from_value(value).map_err(|e| {
                bad(format!(
                    "runtime.stream.publish: the value is not JSON: {e}"
                ))
            })?;
            with_rows(lua, |rows| {
                rows.functions.published.push(Published {
                    function: cur.function,
                    topic,
                    value: json.to_string(),
                    time_unix_nano: now_unix_nano(),
                })
            });
            Ok(())
        })?,
    )?;
    Ok(t)
}

fn functions_table(lua: &Lua, ctx: &Arc<RuntimeContext>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let ctx = ctx.clone();
    t.set(
        "list",
        lua.create_function(move |lua, ()| lua.to_value(&**ctx.catalog.load()))?,
    )?;
    Ok(t)
}

fn state_table(lua: &Lua, stats: Arc<FunctionStats>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    fn lock(stats: &FunctionStats) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        stats.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn write(lua: &Lua, key: String, value: Option<String>) -> mlua::Result<()> {
        let function = current(lua)?.function;
        with_rows(lua, |rows| {
            rows.functions.state.push(StateWrite {
                function,
                key,
                value,
            })
        });
        Ok(())
    }
    {
        let stats = stats.clone();
        t.set(
            "get",
            lua.create_function(move |lua, key: String| {
                current(lua)?;
                let text = lock(&stats).get(&key).cloned();
                match text {
                    Some(text) => {
                        let v: serde_json::Value =
                            serde_json::from_str(&text).map_err(mlua::Error::external)?;
                        lua.to_value(&v)
                    }
                    None => Ok(Value::Nil),
                }
            })?,
        )?;
    }
    {
        let stats = stats.clone();
        t.set(
            "set",
            lua.create_function(move |lua, (key, value): (String, Value)| {
                if value.is_nil() {
                    write(lua, key.clone(), None)?;
                    lock(&stats).remove(&key);
                    return Ok(());
                }
                let json: serde_json::Value = lua
                    .from_value(value)
                    .map_err(|e| bad(format!("runtime.state.set: the value is not JSON: {e}")))?;
                let text = json.to_string();
                write(lua, key.clone(), Some(text.clone()))?;
                lock(&stats).insert(key, text);
                Ok(())
            })?,
        )?;
    }
    {
        let stats = stats.clone();
        t.set(
            "incr",
            lua.create_function(move |lua, (key, by): (String, Option<f64>)| {
                current(lua)?;
                let by = by.unwrap_or(1.0);
                let total = {
                    let mut state = lock(&stats);
                    let old = match state.get(&key) {
                        None => 0.0,
                        Some(text) => text.parse::<f64>().map_err(|_| {
                            bad(format!(
                                "runtime.state.incr: {key:?} holds {text}, not a number"
                            ))
                        })?,
                    };
                    let total = old + by;
                    let text = number_json(total);
                    state.insert(key.clone(), text.clone());
                    drop(state);
                    write(lua, key, Some(text))?;
                    total
                };
                Ok(total)
            })?,
        )?;
    }
    t.set(
        "delete",
        lua.create_function(move |lua, key: String| {
            write(lua, key.clone(), None)?;
            lock(&stats).remove(&key);
            Ok(())
        })?,
    )?;
    Ok(t)
}

fn log_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for (name, severity) in [
        ("info", (9, "INFO")),
        ("warn", (13, "WARN")),
        ("error", (17, "ERROR")),
    ] {
        t.set(
            name,
            lua.create_function(move |lua, message: Value| {
                let cur = current(lua)?;
                let text = match &message {
                    Value::String(s) => s.to_str()?.to_string(),
                    other => {
                        let json: serde_json::Value = lua
                            .from_value(other.clone())
                            .unwrap_or_else(|_| serde_json::Value::String(format!("{other:?}")));
                        json.to_string()
                    }
                };
                with_rows(lua, |rows| rows.logs.push(own_log(&cur, severity, text)));
                Ok(())
            })?,
        )?;
    }
    Ok(t)
}

/// Loads persisted state into each function's stats (at start).
pub fn seed_state(
    stats: &Mutex<HashMap<String, Arc<FunctionStats>>>,
    state: HashMap<String, HashMap<String, String>>,
) {
    let mut all = stats.lock().unwrap_or_else(|p| p.into_inner());
    for (function, values) in state {
        let s = all.entry(function).or_default();
        *s.state.lock().unwrap_or_else(|p| p.into_inner()) = values;
    }
}

/// A Lua number as JSON: whole numbers without a fraction (`3`, not `3.0`).
pub(crate) fn number_json(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        (n as i64).to_string()
    } else if n.is_finite() {
        n.to_string()
    } else {
        "null".into()
    }
}
