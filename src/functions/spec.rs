//! A script file → the functions it defines. A script returns one
//! `qyl.fn{…}` or a list of them; each becomes a [`FunctionSpec`] (plain,
//! thread-safe data: what the registry, the API and the linter need) plus
//! the handler and `when` functions that live in the VM that loaded it.
//! Every mistake is a [`LoadError`] with the file, the line of the
//! definition and the field at fault, because the user sees it in an editor.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mlua::{Function, Table, Value};

use super::sandbox::{DefinitionLines, Sandbox, SandboxError};
use super::slo_filter::{parse_slo_filter, string_values, SloFilter};
use super::trigger::{compile_where, Matcher};
use crate::model::Signal;

/// Top-level code of a script only defines functions; anything slower is a
/// mistake (or an attack) and must not hold up a reload.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(2);

pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_MEMORY_MB: u32 = 16;
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
pub const MAX_MEMORY_MB: u32 = 1024;
pub const MAX_CONCURRENCY: u32 = 64;

const DEF_FIELDS: &[&str] = &[
    "name",
    "description",
    "trigger",
    "handler",
    "max_concurrency",
    "timeout_ms",
    "memory_mb",
    "rate_limit",
];
const TRIGGER_FIELDS: &[&str] = &["on", "where", "when", "every"];

/// Why a script could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}:{}: {message}", file.display(), line.unwrap_or(1))]
pub struct LoadError {
    pub file: PathBuf,
    pub line: Option<u32>,
    pub message: String,
}

/// `rate_limit = "20/s"`: at most `count` invocations per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

/// When a function runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// On committed spans or logs that satisfy `where` (and `when`, if any).
    Record { matcher: Matcher, has_when: bool },
    /// Every `every`, with no record.
    Schedule { every: Duration },
    /// When an error group becomes new, regresses or escalates (the error
    /// engine's hub records), if it passes `filter` (and `when`).
    Error { filter: ErrorFilter, has_when: bool },
    /// When an SLO's alert level changes (ok, warning, page), if it passes
    /// `filter` (and `when`).
    Slo { filter: SloFilter, has_when: bool },
}

/// `where` of an `on = "error"` trigger: each field is a value or
/// `{ one_of = {…} }`; an empty list accepts anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorFilter {
    /// `new`, `regressed`, `escalating`.
    pub change: Vec<String>,
    pub service: Vec<String>,
    /// The group's category (`exception`, `genai`, `status`, …).
    pub category: Vec<String>,
}

const ERROR_WHERE_FIELDS: &[&str] = &["change", "service", "category"];
const ERROR_CHANGES: &[&str] = &["new", "regressed", "escalating", "triaged"];

impl ErrorFilter {
    pub fn matches(&self, e: &crate::model::errors::ErrorGroupEvent) -> bool {
        let ok = |allowed: &[String], v: &str| allowed.is_empty() || allowed.iter().any(|a| a == v);
        // A triage report is the same group published again: only functions
        // that ask for it (`change = "triaged"`) get it, so existing ones
        // still run once per group change.
        let change = if e.change == crate::model::errors::GroupChange::Triaged {
            self.change.iter().any(|c| c == "triaged")
        } else {
            ok(&self.change, e.change.as_str())
        };
        change && ok(&self.service, &e.service_name) && ok(&self.category, e.category)
    }

    fn summary(&self) -> String {
        let mut s = String::from("error");
        for (name, values) in [
            ("change", &self.change),
            ("service", &self.service),
            ("category", &self.category),
        ] {
            if !values.is_empty() {
                s.push_str(&format!(" {name} in [{}]", values.join(", ")));
            }
        }
        s
    }
}

impl Trigger {
    /// "span where duration_ms > 5000 (+ when)", "schedule every 30s".
    pub fn summary(&self) -> String {
        match self {
            Trigger::Record { matcher, has_when } => {
                let mut s = matcher.summary();
                if *has_when {
                    s.push_str(" (+ when)");
                }
                s
            }
            Trigger::Schedule { every } => {
                format!("schedule every {}", humantime::format_duration(*every))
            }
            Trigger::Error { filter, has_when } => {
                let mut s = filter.summary();
                if *has_when {
                    s.push_str(" (+ when)");
                }
                s
            }
            Trigger::Slo { filter, has_when } => {
                let mut s = filter.summary();
                if *has_when {
                    s.push_str(" (+ when)");
                }
                s
            }
        }
    }

    /// `span`, `log`, `schedule`, `error` or `slo`: what `on` says.
    pub fn on(&self) -> &'static str {
        match self {
            Trigger::Record { matcher, .. } => matcher.signal.as_str(),
            Trigger::Schedule { .. } => "schedule",
            Trigger::Error { .. } => "error",
            Trigger::Slo { .. } => "slo",
        }
    }
}

/// A function definition, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub name: String,
    pub description: Option<String>,
    pub file: PathBuf,
    /// The line of the `qyl.fn{` call (or of the handler when the script
    /// returned a plain table).
    pub line: u32,
    pub trigger: Trigger,
    pub max_concurrency: u32,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub rate_limit: Option<RateLimit>,
}

/// A spec with its Lua functions, valid in the VM that loaded it.
pub struct LoadedFunction {
    pub spec: FunctionSpec,
    pub handler: Function,
    pub when: Option<Function>,
}

/// Runs a script's top-level code in `sandbox` and validates what it returns.
pub fn load_script(
    sandbox: &mut Sandbox,
    file: &Path,
    source: &str,
) -> Result<Vec<LoadedFunction>, LoadError> {
    let chunk_name = format!("@{}", file.display());
    let returned = sandbox
        .run(LOAD_TIMEOUT, |lua| {
            lua.load(source).set_name(chunk_name).eval::<Value>()
        })
        .map_err(|e| match e {
            SandboxError::Script(m) => lua_error(file, &m),
            SandboxError::Timeout(t) => LoadError {
                file: file.to_path_buf(),
                line: None,
                message: format!(
                    "loading took longer than {} ms: top-level code should only define functions",
                    t.as_millis()
                ),
            },
            other => LoadError {
                file: file.to_path_buf(),
                line: None,
                message: format!("loading failed: {other}"),
            },
        })?;

    let defs = definitions(file, returned)?;
    let exists = sandbox.exists_sentinel();
    let lines = sandbox
        .lua()
        .app_data_ref::<DefinitionLines>()
        .map(|l| l.0.clone())
        .unwrap_or_default();
    defs.into_iter()
        .map(|def| {
            let line = lines.get(&(def.to_pointer() as usize)).copied();
            parse_definition(file, &def, line, exists)
        })
        .collect()
}

/// The definition tables a script returned: one, or a list.
fn definitions(file: &Path, returned: Value) -> Result<Vec<Table>, LoadError> {
    let fail = |message: String| LoadError {
        file: file.to_path_buf(),
        line: None,
        message,
    };
    let Value::Table(table) = returned else {
        return Err(fail(format!(
            "the script must end with `return qyl.fn {{ ... }}` (or a list of them), but returned {}",
            returned.type_name()
        )));
    };
    let is_list = table.raw_len() > 0 && !table.contains_key("name").unwrap_or(false);
    if !is_list {
        return Ok(vec![table]);
    }
    let mut defs = Vec::new();
    for (i, v) in table.sequence_values::<Value>().enumerate() {
        match v {
            Ok(Value::Table(t)) => defs.push(t),
            Ok(other) => {
                return Err(fail(format!(
                    "item {} of the returned list is a {}, not a qyl.fn {{ ... }}",
                    i + 1,
                    other.type_name()
                )))
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    Ok(defs)
}

/// A Lua error message "path:12: message" → file, line, message.
fn lua_error(file: &Path, message: &str) -> LoadError {
    let message = message
        .split("\nstack traceback")
        .next()
        .unwrap_or(message)
        .trim();
    let (line, rest) = split_position(message).unwrap_or((None, message));
    LoadError {
        file: file.to_path_buf(),
        line,
        message: rest.to_string(),
    }
}

/// Finds the first ":<digits>: " and splits there. Chunk names are paths,
/// which may themselves contain ':' but not ":<digits>: ".
fn split_position(message: &str) -> Option<(Option<u32>, &str)> {
    let bytes = message.as_bytes();
    let mut i = 0;
    while let Some(off) = message[i..].find(':') {
        let start = i + off + 1;
        let digits = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let end = start + digits;
        if digits > 0 && message[end..].starts_with(": ") {
            let line = message[start..end].parse().ok();
            return Some((line, &message[end + 2..]));
        }
        i = start;
    }
    None
}

struct DefContext<'a> {
    file: &'a Path,
    line: Option<u32>,
    name: String,
}

impl DefContext<'_> {
    fn fail(&self, message: impl std::fmt::Display) -> LoadError {
        LoadError {
            file: self.file.to_path_buf(),
            line: self.line,
            message: if self.name.is_empty() {
                format!("qyl.fn: {message}")
            } else {
                format!("qyl.fn {:?}: {message}", self.name)
            },
        }
    }

    fn field(&self, field: &str, message: impl std::fmt::Display) -> LoadError {
        self.fail(format!("field `{field}`: {message}"))
    }
}

fn check_keys(
    ctx: &DefContext<'_>,
    table: &Table,
    allowed: &[&str],
    prefix: &str,
) -> Result<(), LoadError> {
    for pair in table.pairs::<Value, Value>() {
        let (key, _) = pair.map_err(|e| ctx.fail(e))?;
        let key = match key {
            Value::String(s) => s.to_string_lossy(),
            other => {
                return Err(ctx.fail(format!(
                    "unexpected {} key in {}",
                    other.type_name(),
                    if prefix.is_empty() {
                        "the definition"
                    } else {
                        prefix
                    }
                )))
            }
        };
        if !allowed.contains(&key.as_str()) {
            return Err(ctx.field(
                &format!("{prefix}{key}"),
                format!("unknown field (expected one of: {})", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn whole_number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => *n,
        Value::Integer(i) => *i as f64,
        _ => return None,
    };
    (n.fract() == 0.0).then_some(n)
}

fn optional_int(
    ctx: &DefContext<'_>,
    def: &Table,
    field: &str,
    range: (u64, u64),
    default: u64,
) -> Result<u64, LoadError> {
    let v: Value = def.get(field).map_err(|e| ctx.field(field, e))?;
    if v.is_nil() {
        return Ok(default);
    }
    match whole_number(&v) {
        Some(n) if n >= range.0 as f64 && n <= range.1 as f64 => Ok(n as u64),
        _ => Err(ctx.field(
            field,
            format!(
                "expected a whole number from {} to {}, got {}",
                range.0,
                range.1,
                show(&v)
            ),
        )),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{:?}", s.to_string_lossy()),
        Value::Number(n) => n.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Boolean(b) => b.to_string(),
        other => other.type_name().to_string(),
    }
}

fn parse_definition(
    file: &Path,
    def: &Table,
    line: Option<u32>,
    exists: super::sandbox::ExistsSentinel,
) -> Result<LoadedFunction, LoadError> {
    let mut ctx = DefContext {
        file,
        line,
        name: String::new(),
    };
    let handler: Option<Function> = match def.get::<Value>("handler") {
        Ok(Value::Function(f)) => Some(f),
        _ => None,
    };
    // Plain tables (not made by qyl.fn) have no recorded line: the
    // handler's is the next best place to point at.
    if ctx.line.is_none() {
        ctx.line = handler
            .as_ref()
            .and_then(|h| h.info().line_defined)
            .and_then(|l| u32::try_from(l).ok());
    }
    let name = match def.get::<Value>("name") {
        Ok(Value::String(s)) => s.to_string_lossy(),
        Ok(v) => return Err(ctx.field("name", format!("expected a string, got {}", show(&v)))),
        Err(e) => return Err(ctx.field("name", e)),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ctx.field(
            "name",
            format!("{name:?}: use letters, digits, '-', '_' and '.' only (it appears in URLs)"),
        ));
    }
    ctx.name = name.clone();
    check_keys(&ctx, def, DEF_FIELDS, "")?;
    let handler =
        handler.ok_or_else(|| ctx.field("handler", "expected a function(record, runtime)"))?;
    let description = match def.get::<Value>("description") {
        Ok(Value::Nil) => None,
        Ok(Value::String(s)) => Some(s.to_string_lossy()),
        Ok(v) => {
            return Err(ctx.field(
                "description",
                format!("expected a string, got {}", show(&v)),
            ))
        }
        Err(e) => return Err(ctx.field("description", e)),
    };

    let trigger_table = match def.get::<Value>("trigger") {
        Ok(Value::Table(t)) => t,
        Ok(v) => {
            return Err(ctx.field(
                "trigger",
                format!(
                    "expected a table such as {{ on = \"span\", where = {{...}} }}, got {}",
                    show(&v)
                ),
            ))
        }
        Err(e) => return Err(ctx.field("trigger", e)),
    };
    let (trigger, when) = parse_trigger(&ctx, &trigger_table, exists)?;

    let max_concurrency =
        optional_int(&ctx, def, "max_concurrency", (1, MAX_CONCURRENCY.into()), 1)?;
    let timeout_ms = optional_int(
        &ctx,
        def,
        "timeout_ms",
        (1, MAX_TIMEOUT_MS),
        DEFAULT_TIMEOUT_MS,
    )?;
    let memory_mb = optional_int(
        &ctx,
        def,
        "memory_mb",
        (1, MAX_MEMORY_MB.into()),
        DEFAULT_MEMORY_MB.into(),
    )?;
    let rate_limit = match def.get::<Value>("rate_limit") {
        Ok(Value::Nil) => None,
        Ok(Value::String(s)) => {
            Some(parse_rate_limit(&s.to_string_lossy()).map_err(|m| ctx.field("rate_limit", m))?)
        }
        Ok(v) => {
            return Err(ctx.field(
                "rate_limit",
                format!(
                    "expected a string such as \"20/s\" or \"100/m\", got {}",
                    show(&v)
                ),
            ))
        }
        Err(e) => return Err(ctx.field("rate_limit", e)),
    };

    Ok(LoadedFunction {
        spec: FunctionSpec {
            name,
            description,
            file: file.to_path_buf(),
            line: ctx.line.unwrap_or(1),
            trigger,
            // The ranges checked above fit in u32.
            max_concurrency: u32::try_from(max_concurrency).unwrap_or(1),
            timeout: Duration::from_millis(timeout_ms),
            memory_mb: u32::try_from(memory_mb).unwrap_or(DEFAULT_MEMORY_MB),
            rate_limit,
        },
        handler,
        when,
    })
}

/// `trigger.where`, if given: a table.
fn where_table(ctx: &DefContext<'_>, where_: Value) -> Result<Option<Table>, LoadError> {
    match where_ {
        Value::Nil => Ok(None),
        Value::Table(t) => Ok(Some(t)),
        v => Err(ctx.field(
            "trigger.where",
            format!("expected a table, got {}", show(&v)),
        )),
    }
}

/// `trigger.when`, if given: a function of the record.
fn when_function(ctx: &DefContext<'_>, when: Value) -> Result<Option<Function>, LoadError> {
    match when {
        Value::Nil => Ok(None),
        Value::Function(f) => Ok(Some(f)),
        v => Err(ctx.field(
            "trigger.when",
            format!("expected a function(record), got {}", show(&v)),
        )),
    }
}

fn parse_trigger(
    ctx: &DefContext<'_>,
    t: &Table,
    exists: super::sandbox::ExistsSentinel,
) -> Result<(Trigger, Option<Function>), LoadError> {
    check_keys(ctx, t, TRIGGER_FIELDS, "trigger.")?;
    let on = match t.get::<Value>("on") {
        Ok(Value::String(s)) => s.to_string_lossy(),
        Ok(v) => {
            return Err(ctx.field(
                "trigger.on",
                format!(
                    "expected \"span\", \"log\", \"schedule\", \"error\" or \"slo\", got {}",
                    show(&v)
                ),
            ))
        }
        Err(e) => return Err(ctx.field("trigger.on", e)),
    };
    let where_: Value = t.get("where").map_err(|e| ctx.field("trigger.where", e))?;
    let when: Value = t.get("when").map_err(|e| ctx.field("trigger.when", e))?;
    let every: Value = t.get("every").map_err(|e| ctx.field("trigger.every", e))?;
    let signal = match on.as_str() {
        "span" => Signal::Span,
        "log" => Signal::Log,
        "schedule" => {
            for (field, v) in [("trigger.where", &where_), ("trigger.when", &when)] {
                if !v.is_nil() {
                    return Err(ctx.field(field, "a schedule has no record to match; remove it"));
                }
            }
            let every = match &every {
                Value::String(s) => parse_duration(&s.to_string_lossy())
                    .map_err(|m| ctx.field("trigger.every", m))?,
                Value::Nil => {
                    return Err(ctx.field(
                        "trigger.every",
                        "on = \"schedule\" needs every = \"30s\" (or \"5m\", \"1h\")",
                    ))
                }
                v => {
                    return Err(ctx.field(
                        "trigger.every",
                        format!("expected a string such as \"30s\", got {}", show(v)),
                    ))
                }
            };
            if every < Duration::from_secs(1) {
                return Err(ctx.field("trigger.every", "must be at least 1s"));
            }
            return Ok((Trigger::Schedule { every }, None));
        }
        "error" => {
            if !every.is_nil() {
                return Err(ctx.field("trigger.every", "only for on = \"schedule\""));
            }
            let filter = match where_table(ctx, where_)? {
                None => ErrorFilter::default(),
                Some(t) => parse_error_filter(ctx, &t)?,
            };
            let when = when_function(ctx, when)?;
            return Ok((
                Trigger::Error {
                    filter,
                    has_when: when.is_some(),
                },
                when,
            ));
        }
        "slo" => {
            if !every.is_nil() {
                return Err(ctx.field("trigger.every", "only for on = \"schedule\""));
            }
            let filter = match where_table(ctx, where_)? {
                None => SloFilter::default(),
                Some(t) => parse_slo_filter(&t).map_err(|(field, m)| ctx.field(&field, m))?,
            };
            let when = when_function(ctx, when)?;
            return Ok((
                Trigger::Slo {
                    filter,
                    has_when: when.is_some(),
                },
                when,
            ));
        }
        other => {
            return Err(ctx.field(
                "trigger.on",
                format!(
                "unknown trigger {other:?} (expected \"span\", \"log\", \"schedule\", \"error\" or \"slo\")"
            ),
            ))
        }
    };
    if !every.is_nil() {
        return Err(ctx.field("trigger.every", "only for on = \"schedule\""));
    }
    let where_table = where_table(ctx, where_)?;
    let matcher = compile_where(signal, where_table.as_ref(), exists).map_err(|e| ctx.fail(e))?;
    let when = when_function(ctx, when)?;
    Ok((
        Trigger::Record {
            matcher,
            has_when: when.is_some(),
        },
        when,
    ))
}

fn parse_error_filter(ctx: &DefContext<'_>, t: &Table) -> Result<ErrorFilter, LoadError> {
    let mut filter = ErrorFilter::default();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| ctx.field("trigger.where", e))?;
        let key = match &k {
            Value::String(s) => s.to_string_lossy(),
            other => {
                return Err(ctx.field(
                    "trigger.where",
                    format!("keys must be field names, got {}", show(other)),
                ))
            }
        };
        let field = format!("trigger.where.{key}");
        let slot = match key.as_str() {
            "change" => &mut filter.change,
            "service" => &mut filter.service,
            "category" => &mut filter.category,
            _ => {
                return Err(ctx.field(
                    &field,
                    format!(
                        "unknown field for on = \"error\" (expected one of {})",
                        ERROR_WHERE_FIELDS.join(", ")
                    ),
                ))
            }
        };
        slot.extend(string_values(&field, &v).map_err(|(f, m)| ctx.field(&f, m))?);
    }
    if let Some(bad) = filter
        .change
        .iter()
        .find(|c| !ERROR_CHANGES.contains(&c.as_str()))
    {
        return Err(ctx.field(
            "trigger.where.change",
            format!("{bad:?} is not one of {}", ERROR_CHANGES.join(", ")),
        ));
    }
    Ok(filter)
}

/// "30s", "1h30m", "500ms", "2d" (the same forms as `qyl.duration`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "cannot read {text:?} as a duration (use ms, s, m, h or d, e.g. \"30s\" or \"1h30m\")"
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        let unit_len = rest[digits..]
            .bytes()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        if digits == 0 || unit_len == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let ms = match &rest[digits..digits + unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        total += Duration::from_millis(n.checked_mul(ms).ok_or_else(bad)?);
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

/// "20/s", "100/m", "1000/h".
pub fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    let bad = || {
        format!("cannot read {text:?} (expected a count per s, m or h, e.g. \"20/s\" or \"100/m\")")
    };
    let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    if count == 0 {
        return Err(format!("{text:?}: the count must be at least 1"));
    }
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    Ok(RateLimit { count, per })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::sandbox::Limits;

    fn load(src: &str) -> Result<Vec<FunctionSpec>, LoadError> {
        let mut sb = Sandbox::new(Limits::default()).expect("sandbox");
        load_script(&mut sb, Path::new("scripts/test.lua"), src)
            .map(|fs| fs.into_iter().map(|f| f.spec).collect())
    }

    fn load_err(src: &str) -> LoadError {
        load(src).expect_err("must fail")
    }

    const GOOD: &str = r#"-- a comment
local threshold = 5000

return qyl.fn {
  name = "alert-high-latency",
  description = "Alert when GenAI calls exceed 5s",
  trigger = {
    on = "span",
    where = { ["gen_ai.provider.name"] = qyl.exists, duration_ms = { gt = threshold } },
    when = function(span) return true end,
  },
  handler = function(span, runtime) return span.name end,
  max_concurrency = 2, timeout_ms = 10000, memory_mb = 8, rate_limit = "20/s",
}
"#;

    #[test]
    fn loads_a_full_definition() {
        let specs = load(GOOD).expect("loads");
        assert_eq!(specs.len(), 1);
        let s = &specs[0];
        assert_eq!(s.name, "alert-high-latency");
        assert_eq!(
            s.description.as_deref(),
            Some("Alert when GenAI calls exceed 5s")
        );
        assert_eq!(s.line, 4);
        assert_eq!(s.max_concurrency, 2);
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!(s.memory_mb, 8);
        assert_eq!(
            s.rate_limit,
            Some(RateLimit {
                count: 20,
                per: Duration::from_secs(1)
            })
        );
        assert_eq!(
            s.trigger.summary(),
            "span where duration_ms > 5000, gen_ai.provider.name exists (+ when)"
        );
    }

    #[test]
    fn defaults_and_lists() {
        let specs = load(
            r#"
local a = qyl.fn { name = "a", trigger = { on = "log" }, handler = function() end }
return {
  a,
  qyl.fn { name = "b", trigger = { on = "schedule", every = "1m30s" }, handler = function() end },
}"#,
        )
        .expect("loads");
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].line, 2);
        assert_eq!(specs[0].max_concurrency, 1);
        assert_eq!(specs[0].timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert_eq!(specs[0].memory_mb, DEFAULT_MEMORY_MB);
        assert_eq!(specs[0].rate_limit, None);
        assert_eq!(specs[0].trigger.summary(), "every log");
        assert_eq!(specs[1].line, 5);
        assert_eq!(
            specs[1].trigger,
            Trigger::Schedule {
                every: Duration::from_secs(90)
            }
        );
    }

    #[test]
    fn a_plain_table_points_at_its_handler() {
        let specs =
            load("return {\n name = 'p', trigger = { on = 'span' },\n handler = function() end }")
                .expect("loads");
        assert_eq!(specs[0].line, 3);
    }

    #[test]
    fn syntax_and_runtime_errors_carry_the_line() {
        let e = load_err("local x = 1\nreturn qyl.fn {\n  name = 'x'\n  trigger = {} }");
        assert_eq!(e.file, Path::new("scripts/test.lua"));
        assert_eq!(e.line, Some(4), "{e}");
        let e = load_err("local x = 1\nlocal y = nil\nreturn y.z");
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("attempt to index nil"), "{e}");
        assert!(e.to_string().starts_with("scripts/test.lua:3: "), "{e}");
        // qyl.fn's own shape check points at the caller.
        let e = load_err("\n\nreturn qyl.fn { name = 'x', trigger = { on = 'span' } }");
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("`handler`"), "{e}");
    }

    #[test]
    fn field_errors_name_the_field_and_the_definition_line() {
        let cases = [
            (
                "trigger = { on = 'span', where = { duraton_ms = 1 } }",
                "`duraton_ms`",
            ),
            (
                "trigger = { on = 'span', wher = {} }",
                "field `trigger.wher`: unknown field",
            ),
            (
                "trigger = { on = 'spam' }",
                "field `trigger.on`: unknown trigger \"spam\"",
            ),
            (
                "trigger = { on = 'error', where = { severity = 'high' } }",
                "field `trigger.where.severity`: unknown field for on = \"error\"",
            ),
            (
                "trigger = { on = 'error', where = { change = 'fixed' } }",
                "\"fixed\" is not one of new, regressed, escalating, triaged",
            ),
            (
                "trigger = { on = 'error', where = { service = { prefix = 'a' } } }",
                "unknown operator",
            ),
            (
                "trigger = { on = 'error', every = '1m' }",
                "only for on = \"schedule\"",
            ),
            (
                "trigger = { on = 'slo', where = { level = 'critical' } }",
                "field `trigger.where.level`: \"critical\" is not one of ok, warning, page",
            ),
            (
                "trigger = { on = 'slo', where = { objective = { above = 99 } } }",
                "field `trigger.where.objective`: unknown operator",
            ),
            (
                "trigger = { on = 'slo', where = { change = 'new' } }",
                "unknown field for on = \"slo\"",
            ),
            (
                "trigger = { on = 'slo', every = '1m' }",
                "only for on = \"schedule\"",
            ),
            ("trigger = { on = 'schedule' }", "field `trigger.every`"),
            (
                "trigger = { on = 'schedule', every = 'often' }",
                "cannot read \"often\"",
            ),
            (
                "trigger = { on = 'schedule', every = '500ms' }",
                "at least 1s",
            ),
            (
                "trigger = { on = 'schedule', every = '1m', where = {} }",
                "`trigger.where`",
            ),
            (
                "trigger = { on = 'span', every = '1m' }",
                "only for on = \"schedule\"",
            ),
            ("trigger = { on = 'span', when = 5 }", "`trigger.when`"),
            (
                "trigger = { on = 'span' }, timeout_ms = '30s'",
                "field `timeout_ms`: expected a whole number",
            ),
            (
                "trigger = { on = 'span' }, timeout_ms = 0",
                "field `timeout_ms`",
            ),
            (
                "trigger = { on = 'span' }, max_concurrency = 1.5",
                "field `max_concurrency`",
            ),
            (
                "trigger = { on = 'span' }, memory_mb = 4096",
                "field `memory_mb`",
            ),
            (
                "trigger = { on = 'span' }, rate_limit = '20 per second'",
                "field `rate_limit`",
            ),
            (
                "trigger = { on = 'span' }, rate_limit = 20",
                "field `rate_limit`",
            ),
            (
                "trigger = { on = 'span' }, retries = 3",
                "field `retries`: unknown field",
            ),
        ];
        for (body, needle) in cases {
            let src = format!(
                "-- header\n\nreturn qyl.fn {{ name = 'f', handler = function() end, {body} }}"
            );
            let e = load_err(&src);
            assert!(e.message.contains(needle), "{body}: {e}");
            assert!(e.message.starts_with("qyl.fn \"f\": "), "{body}: {e}");
            assert_eq!(e.line, Some(3), "{body}: {e}");
        }
        let e = load_err("return qyl.fn { name = 'has space', trigger = { on = 'span' }, handler = function() end }");
        assert!(e.message.contains("field `name`"), "{e}");
    }

    #[test]
    fn bad_returns_are_explained() {
        let e = load_err("local x = 1");
        assert!(e.message.contains("return qyl.fn"), "{e}");
        let e = load_err("return { 1, 2 }");
        assert!(e.message.contains("item 1"), "{e}");
    }

    #[test]
    fn top_level_code_cannot_hang_a_reload() {
        let start = std::time::Instant::now();
        let e = load_err("while true do end");
        assert!(e.message.contains("loading took longer"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn durations_and_rate_limits() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(
            parse_rate_limit("100/m"),
            Ok(RateLimit {
                count: 100,
                per: Duration::from_secs(60)
            })
        );
        assert!(parse_rate_limit("0/s").is_err());
        assert!(parse_rate_limit("5/day").is_err());
        assert!(parse_rate_limit("fast").is_err());
    }
}
