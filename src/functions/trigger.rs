//! The native side of a trigger: `where = {…}` compiled into conditions that
//! are checked in Rust against every committed span or log, and an index by
//! signal and service so that a record only meets the functions that could
//! match it. Entering Lua costs microseconds; a record that matches no
//! `where` must never pay that.

use std::borrow::Cow;
use std::collections::HashMap;

use mlua::{Table, Value};

use super::sandbox::ExistsSentinel;
use crate::model::{LogRecord, Signal, SpanRecord};

/// A `where` entry that cannot be compiled; names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("trigger.where field `{field}`: {message}")]
pub struct TriggerError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> TriggerError {
    TriggerError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// A plain value a field is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Str(s) => write!(f, "{s:?}"),
            Scalar::Num(n) => write!(f, "{n}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One test on one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq(Scalar),
    Exists,
    Range {
        gt: Option<f64>,
        gte: Option<f64>,
        lt: Option<f64>,
        lte: Option<f64>,
    },
    Prefix(String),
    OneOf(Vec<Scalar>),
    Glob(String),
    /// `severity_min = "WARN"` or `= 13`: severity number at least this.
    SeverityAtLeast(i32),
}

/// What a `where` key reads from a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Service,
    Name,
    Status,
    StatusMessage,
    Kind,
    DurationMs,
    TraceId,
    SpanId,
    ParentSpanId,
    Scope,
    ServiceVersion,
    Environment,
    SessionId,
    Severity,
    SeverityNumber,
    SeverityMin,
    Body,
    EventName,
    /// An attribute: the record's own first, then the resource's.
    Attr(String),
    /// `["attributes.key"]`: the record's attributes only.
    SpanAttr(String),
    /// `["resource.key"]`: the resource attributes only.
    ResourceAttr(String),
}

const SPAN: u8 = 1;
const LOG: u8 = 2;

/// Named fields, and the signals that have them.
const FIELDS: &[(&str, u8, Field)] = &[
    ("service", SPAN | LOG, Field::Service),
    ("name", SPAN, Field::Name),
    ("status", SPAN, Field::Status),
    ("status_message", SPAN, Field::StatusMessage),
    ("kind", SPAN, Field::Kind),
    ("duration_ms", SPAN, Field::DurationMs),
    ("trace_id", SPAN | LOG, Field::TraceId),
    ("span_id", SPAN | LOG, Field::SpanId),
    ("parent_span_id", SPAN, Field::ParentSpanId),
    ("scope", SPAN | LOG, Field::Scope),
    ("service_version", SPAN | LOG, Field::ServiceVersion),
    ("environment", SPAN | LOG, Field::Environment),
    ("session_id", SPAN | LOG, Field::SessionId),
    ("severity", LOG, Field::Severity),
    ("severity_number", LOG, Field::SeverityNumber),
    ("severity_min", LOG, Field::SeverityMin),
    ("body", LOG, Field::Body),
    ("event_name", LOG, Field::EventName),
];

fn signal_bit(signal: Signal) -> u8 {
    match signal {
        Signal::Span => SPAN,
        Signal::Log => LOG,
        Signal::Metric => 0,
    }
}

fn field_for(key: &str, signal: Signal) -> Result<Field, TriggerError> {
    if let Some(rest) = key.strip_prefix("attributes.") {
        return Ok(Field::SpanAttr(rest.to_string()));
    }
    if let Some(rest) = key.strip_prefix("resource.") {
        return Ok(Field::ResourceAttr(rest.to_string()));
    }
    if let Some((_, signals, field)) = FIELDS.iter().find(|(name, _, _)| *name == key) {
        if signals & signal_bit(signal) == 0 {
            return Err(err(key, format!("{}s have no such field", signal.as_str())));
        }
        return Ok(field.clone());
    }
    // OpenTelemetry attribute names are dotted; a bare word that is not a
    // field is far more likely a typo than an attribute.
    if key.contains('.') {
        return Ok(Field::Attr(key.to_string()));
    }
    let known: Vec<&str> = FIELDS
        .iter()
        .filter(|(_, s, _)| s & signal_bit(signal) != 0)
        .map(|(n, _, _)| *n)
        .collect();
    Err(err(
        key,
        format!(
            "unknown field (fields of {}s: {}; for an attribute without a dot write [\"attributes.{key}\"])",
            signal.as_str(),
            known.join(", ")
        ),
    ))
}

/// One `where` entry: every op must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub key: String,
    pub field: Field,
    pub ops: Vec<Op>,
}

/// A compiled `where`: every condition must hold. An empty one matches
/// every record of its signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub signal: Signal,
    pub conditions: Vec<Condition>,
}

impl Matcher {
    pub fn matches(&self, record: &RecordView<'_>) -> bool {
        record.signal() == self.signal
            && self.conditions.iter().all(|c| {
                let val = record.get(&c.field);
                c.ops.iter().all(|op| op_holds(op, &c.field, &val))
            })
    }

    /// The services this matcher is limited to, when it has a
    /// `service = "x"` or `service = { one_of = {…} }` condition.
    pub fn services(&self) -> Option<Vec<&str>> {
        self.conditions
            .iter()
            .filter(|c| c.field == Field::Service)
            .flat_map(|c| c.ops.iter())
            .find_map(|op| match op {
                Op::Eq(Scalar::Str(s)) => Some(vec![s.as_str()]),
                Op::OneOf(values) => values
                    .iter()
                    .map(|v| match v {
                        Scalar::Str(s) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            })
    }

    /// "span where duration_ms > 5000, gen_ai.provider.name exists", for
    /// diagnostics and the functions list.
    pub fn summary(&self) -> String {
        if self.conditions.is_empty() {
            return format!("every {}", self.signal.as_str());
        }
        let parts: Vec<String> = self
            .conditions
            .iter()
            .flat_map(|c| c.ops.iter().map(move |op| describe(&c.key, op)))
            .collect();
        format!("{} where {}", self.signal.as_str(), parts.join(", "))
    }
}

fn describe(key: &str, op: &Op) -> String {
    match op {
        Op::Eq(v) => format!("{key} = {v}"),
        Op::Exists => format!("{key} exists"),
        Op::Range { gt, gte, lt, lte } => {
            let mut parts = Vec::new();
            for (sym, bound) in [(">", gt), (">=", gte), ("<", lt), ("<=", lte)] {
                if let Some(b) = bound {
                    parts.push(format!("{key} {sym} {b}"));
                }
            }
            parts.join(", ")
        }
        Op::Prefix(p) => format!("{key} starts with {p:?}"),
        Op::OneOf(vs) => {
            let vs: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
            format!("{key} in [{}]", vs.join(", "))
        }
        Op::Glob(g) => format!("{key} like {g:?}"),
        Op::SeverityAtLeast(n) => format!("severity >= {n}"),
    }
}

/// A field's value in one record. Strings are borrowed from the record
/// unless the JSON had escapes to undo.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Missing,
    Str(Cow<'a, str>),
    Num(f64),
    Bool(bool),
    /// Present, but an array or object.
    Other,
}

impl Val<'_> {
    fn as_num(&self) -> Option<f64> {
        match self {
            Val::Num(n) => Some(*n),
            Val::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

fn scalar_eq(val: &Val<'_>, want: &Scalar) -> bool {
    match (val, want) {
        (Val::Str(s), Scalar::Str(w)) => s == w,
        (Val::Bool(b), Scalar::Bool(w)) => b == w,
        // Attribute numbers may arrive as strings (64-bit ints from JSON SDKs).
        (v, Scalar::Num(w)) => v.as_num() == Some(*w),
        _ => false,
    }
}

fn op_holds(op: &Op, field: &Field, val: &Val<'_>) -> bool {
    match op {
        Op::Exists => !matches!(val, Val::Missing),
        Op::Eq(want) => scalar_eq(val, want),
        Op::OneOf(wants) => wants.iter().any(|w| scalar_eq(val, w)),
        Op::Range { gt, gte, lt, lte } => match val.as_num() {
            None => false,
            Some(n) => {
                gt.is_none_or(|b| n > b)
                    && gte.is_none_or(|b| n >= b)
                    && lt.is_none_or(|b| n < b)
                    && lte.is_none_or(|b| n <= b)
            }
        },
        Op::Prefix(p) => matches!(val, Val::Str(s) if s.starts_with(p.as_str())),
        Op::Glob(g) => matches!(val, Val::Str(s) if glob_match(g, s)),
        Op::SeverityAtLeast(min) => {
            debug_assert_eq!(*field, Field::SeverityMin);
            matches!(val, Val::Num(n) if *n >= f64::from(*min))
        }
    }
}

/// `*` matches any run of characters, `?` one character. Linear-time
/// (greedy with one backtrack point), so no pattern can blow up.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The raw text of the value of top-level `key` in a JSON object, found by
/// skipping over the others without parsing them. Parsing the whole
/// attribute object (even into borrowed values) cost more than entering Lua;
/// this costs a scan of the bytes before the key.
pub(crate) fn find_attr<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let b = json.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i)?;
        let raw_key = json.get(i + 1..key_end - 1)?;
        let matches = if raw_key.contains('\\') {
            serde_json::from_str::<String>(json.get(i..key_end)?).is_ok_and(|k| k == key)
        } else {
            raw_key == key
        };
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let value_end = value_end(b, i)?;
        if matches {
            return json.get(i..value_end);
        }
        i = skip_ws(b, value_end);
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

/// `b[start]` is the opening quote; returns the index after the closing one.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The index just after the JSON value starting at `start`.
fn value_end(b: &[u8], start: usize) -> Option<usize> {
    match b.get(start)? {
        b'"' => string_end(b, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            while let Some(&c) = b.get(i) {
                match c {
                    b'"' => {
                        i = string_end(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let mut i = start;
            while b
                .get(i)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace())
            {
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

/// One attribute value, parsed only when a condition asks for it.
fn raw_val(text: &str) -> Val<'_> {
    match text.as_bytes().first() {
        Some(b'"') => match serde_json::from_str::<&str>(text) {
            Ok(s) => Val::Str(Cow::Borrowed(s)),
            Err(_) => {
                serde_json::from_str::<String>(text).map_or(Val::Other, |s| Val::Str(Cow::Owned(s)))
            }
        },
        Some(b't') => Val::Bool(true),
        Some(b'f') => Val::Bool(false),
        Some(b'n') | None => Val::Missing,
        Some(b'[' | b'{') => Val::Other,
        Some(_) => text.parse().map_or(Val::Other, Val::Num),
    }
}

fn opt<S: std::ops::Deref<Target = str>>(s: &Option<S>) -> Val<'_> {
    s.as_deref().map_or(Val::Missing, borrowed)
}

fn borrowed(s: &str) -> Val<'_> {
    Val::Str(Cow::Borrowed(s))
}

/// A span or log as triggers see it. Attribute JSON is only looked into
/// when a condition asks for an attribute.
pub struct RecordView<'a> {
    record: RecordRef<'a>,
}

#[derive(Clone, Copy)]
enum RecordRef<'a> {
    Span(&'a SpanRecord),
    Log(&'a LogRecord),
}

impl<'a> RecordView<'a> {
    pub fn span(span: &'a SpanRecord) -> Self {
        Self::new(RecordRef::Span(span))
    }

    pub fn log(log: &'a LogRecord) -> Self {
        Self::new(RecordRef::Log(log))
    }

    fn new(record: RecordRef<'a>) -> Self {
        RecordView { record }
    }

    pub fn signal(&self) -> Signal {
        match self.record {
            RecordRef::Span(_) => Signal::Span,
            RecordRef::Log(_) => Signal::Log,
        }
    }

    pub fn service(&self) -> &'a str {
        match self.record {
            RecordRef::Span(s) => &s.service_name,
            RecordRef::Log(l) => &l.service_name,
        }
    }

    fn attr(&self, key: &str) -> Val<'_> {
        let json: &'a str = match self.record {
            RecordRef::Span(s) => &s.attributes,
            RecordRef::Log(l) => &l.attributes,
        };
        find_attr(json, key).map_or(Val::Missing, raw_val)
    }

    fn resource_attr(&self, key: &str) -> Val<'_> {
        let json: &'a str = match self.record {
            RecordRef::Span(s) => &s.resource,
            RecordRef::Log(l) => &l.resource,
        };
        find_attr(json, key).map_or(Val::Missing, raw_val)
    }

    pub fn get(&self, field: &Field) -> Val<'_> {
        match (field, self.record) {
            (Field::Attr(k), _) => match self.attr(k) {
                Val::Missing => self.resource_attr(k),
                v => v,
            },
            (Field::SpanAttr(k), _) => self.attr(k),
            (Field::ResourceAttr(k), _) => self.resource_attr(k),
            (Field::Service, _) => borrowed(self.service()),
            (Field::Name, RecordRef::Span(s)) => borrowed(&s.name),
            (Field::Status, RecordRef::Span(s)) => borrowed(s.status_code),
            (Field::StatusMessage, RecordRef::Span(s)) => opt(&s.status_message),
            (Field::Kind, RecordRef::Span(s)) => borrowed(s.kind),
            (Field::DurationMs, RecordRef::Span(s)) => Val::Num(s.duration_ns as f64 / 1e6),
            (Field::TraceId, RecordRef::Span(s)) => borrowed(&s.trace_id),
            (Field::TraceId, RecordRef::Log(l)) => opt(&l.trace_id),
            (Field::SpanId, RecordRef::Span(s)) => borrowed(&s.span_id),
            (Field::SpanId, RecordRef::Log(l)) => opt(&l.span_id),
            (Field::ParentSpanId, RecordRef::Span(s)) => opt(&s.parent_span_id),
            (Field::Scope, RecordRef::Span(s)) => opt(&s.scope_name),
            (Field::Scope, RecordRef::Log(l)) => opt(&l.scope_name),
            (Field::ServiceVersion, RecordRef::Span(s)) => opt(&s.service_version),
            (Field::ServiceVersion, RecordRef::Log(l)) => opt(&l.service_version),
            (Field::Environment, RecordRef::Span(s)) => opt(&s.deployment_environment),
            (Field::Environment, RecordRef::Log(l)) => opt(&l.deployment_environment),
            (Field::SessionId, RecordRef::Span(s)) => opt(&s.session_id),
            (Field::SessionId, RecordRef::Log(l)) => opt(&l.session_id),
            (Field::Severity, RecordRef::Log(l)) => opt(&l.severity_text),
            (Field::SeverityNumber | Field::SeverityMin, RecordRef::Log(l)) => {
                Val::Num(f64::from(l.severity_number))
            }
            (Field::Body, RecordRef::Log(l)) => opt(&l.body),
            (Field::EventName, RecordRef::Log(l)) => opt(&l.event_name),
            // Fields of the other signal; compile_where refuses them.
            _ => Val::Missing,
        }
    }
}

/// OpenTelemetry severity names → the lowest severity number of the range.
fn severity_number(name: &str) -> Option<i32> {
    Some(match name.to_ascii_uppercase().as_str() {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" | "WARNING" => 13,
        "ERROR" => 17,
        "FATAL" => 21,
        _ => return None,
    })
}

fn lua_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

fn lua_scalar(key: &str, v: &Value) -> Result<Scalar, TriggerError> {
    match v {
        Value::String(s) => Ok(Scalar::Str(s.to_string_lossy())),
        Value::Boolean(b) => Ok(Scalar::Bool(*b)),
        v => lua_number(v).map(Scalar::Num).ok_or_else(|| {
            err(
                key,
                format!(
                    "expected a string, number or boolean, got {}",
                    v.type_name()
                ),
            )
        }),
    }
}

/// Status and kind are stored upper-case; let users write `status = "error"`.
fn normalise(field: &Field, s: Scalar) -> Scalar {
    match (field, s) {
        (Field::Status | Field::Kind, Scalar::Str(s)) => Scalar::Str(s.to_ascii_uppercase()),
        (_, s) => s,
    }
}

fn compile_ops(key: &str, field: &Field, table: &Table) -> Result<Vec<Op>, TriggerError> {
    let mut range = (None, None, None, None);
    let mut ops = Vec::new();
    for pair in table.pairs::<Value, Value>() {
        let (op, value) = pair.map_err(|e| err(key, e.to_string()))?;
        let Value::String(op) = op else {
            return Err(err(
                key,
                "expected an operator table such as { gt = 5 } or { one_of = {...} }",
            ));
        };
        let op = op.to_string_lossy();
        let number =
            || lua_number(&value).ok_or_else(|| err(key, format!("`{op}` needs a number")));
        let string = || match &value {
            Value::String(s) => Ok(s.to_string_lossy()),
            _ => Err(err(key, format!("`{op}` needs a string"))),
        };
        match op.as_str() {
            "gt" => range.0 = Some(number()?),
            "gte" => range.1 = Some(number()?),
            "lt" => range.2 = Some(number()?),
            "lte" => range.3 = Some(number()?),
            "prefix" => ops.push(Op::Prefix(string()?)),
            "glob" => ops.push(Op::Glob(string()?)),
            "one_of" => {
                let Value::Table(list) = &value else {
                    return Err(err(key, "`one_of` needs a list such as { \"a\", \"b\" }"));
                };
                let mut values = Vec::new();
                for v in list.sequence_values::<Value>() {
                    let v = v.map_err(|e| err(key, e.to_string()))?;
                    values.push(normalise(field, lua_scalar(key, &v)?));
                }
                if values.is_empty() {
                    return Err(err(key, "`one_of` needs at least one value"));
                }
                ops.push(Op::OneOf(values));
            }
            other => {
                return Err(err(
                    key,
                    format!("unknown operator `{other}` (operators: gt, gte, lt, lte, prefix, one_of, glob)"),
                ))
            }
        }
    }
    if let (None, None, None, None) = range {
    } else {
        let (gt, gte, lt, lte) = range;
        ops.push(Op::Range { gt, gte, lt, lte });
    }
    if ops.is_empty() {
        return Err(err(key, "empty operator table"));
    }
    // Deterministic order whatever order the Lua table iterated in.
    ops.sort_by_key(|op| match op {
        Op::Range { .. } => 0,
        Op::Prefix(_) => 1,
        Op::Glob(_) => 2,
        Op::OneOf(_) => 3,
        _ => 4,
    });
    Ok(ops)
}

/// Compiles `trigger.where` (nil means "every record of the signal").
pub(crate) fn compile_where(
    signal: Signal,
    where_: Option<&Table>,
    exists: ExistsSentinel,
) -> Result<Matcher, TriggerError> {
    let mut conditions = Vec::new();
    if let Some(table) = where_ {
        for pair in table.pairs::<Value, Value>() {
            let (key, value) = pair.map_err(|e| err("?", e.to_string()))?;
            let Value::String(key) = key else {
                return Err(err(
                    &key.to_string().unwrap_or_default(),
                    "keys of `where` must be field or attribute names",
                ));
            };
            let key = key.to_string_lossy();
            let field = field_for(&key, signal)?;
            let ops = if field == Field::SeverityMin {
                let n = match &value {
                    Value::String(s) => severity_number(&s.to_string_lossy()),
                    v => lua_number(v).map(|n| n as i32),
                };
                vec![Op::SeverityAtLeast(n.ok_or_else(|| {
                    err(&key, "expected a severity name (TRACE, DEBUG, INFO, WARN, ERROR, FATAL) or number")
                })?)]
            } else {
                match &value {
                    Value::Table(t) if t.to_pointer() as usize == exists.0 => vec![Op::Exists],
                    Value::Table(t) => compile_ops(&key, &field, t)?,
                    v => vec![Op::Eq(normalise(&field, lua_scalar(&key, v)?))],
                }
            };
            conditions.push(Condition { key, field, ops });
        }
    }
    conditions.sort_by(|a, b| a.key.cmp(&b.key));
    // Cheap named fields first, attribute lookups (which parse JSON) last.
    conditions.sort_by_key(|c| {
        matches!(
            c.field,
            Field::Attr(_) | Field::SpanAttr(_) | Field::ResourceAttr(_)
        )
    });
    Ok(Matcher { signal, conditions })
}

/// Matchers indexed by signal and service.
#[derive(Debug)]
pub struct TriggerIndex<T> {
    entries: Vec<(T, Matcher)>,
    spans: SignalIndex,
    logs: SignalIndex,
}

#[derive(Debug, Default)]
struct SignalIndex {
    by_service: HashMap<String, Vec<usize>>,
    any_service: Vec<usize>,
}

impl<T> TriggerIndex<T> {
    pub fn new(entries: impl IntoIterator<Item = (T, Matcher)>) -> Self {
        let entries: Vec<(T, Matcher)> = entries.into_iter().collect();
        let mut spans = SignalIndex::default();
        let mut logs = SignalIndex::default();
        for (i, (_, m)) in entries.iter().enumerate() {
            let idx = match m.signal {
                Signal::Span => &mut spans,
                Signal::Log => &mut logs,
                Signal::Metric => continue,
            };
            match m.services() {
                Some(services) => {
                    for s in services {
                        idx.by_service.entry(s.to_string()).or_default().push(i);
                    }
                }
                None => idx.any_service.push(i),
            }
        }
        TriggerIndex {
            entries,
            spans,
            logs,
        }
    }

    /// The positions of the matchers a record of this signal and service
    /// could satisfy.
    fn candidates(&self, signal: Signal, service: &str) -> impl Iterator<Item = usize> + '_ {
        let idx = match signal {
            Signal::Span => Some(&self.spans),
            Signal::Log => Some(&self.logs),
            Signal::Metric => None,
        };
        let by_service = idx
            .and_then(|i| i.by_service.get(service))
            .map(|v| v.as_slice())
            .unwrap_or_default();
        let any = idx.map(|i| i.any_service.as_slice()).unwrap_or_default();
        by_service.iter().chain(any).copied()
    }

    /// How many matchers a record of this signal and service is checked against.
    pub fn candidate_count(&self, signal: Signal, service: &str) -> usize {
        self.candidates(signal, service).count()
    }

    /// Every entry whose matcher the record satisfies, in insertion order.
    pub fn matching(&self, record: &RecordView<'_>) -> Vec<&T> {
        let mut hits: Vec<usize> = self
            .candidates(record.signal(), record.service())
            .filter(|&i| self.entries[i].1.matches(record))
            .collect();
        hits.sort_unstable();
        hits.dedup();
        hits.into_iter().map(|i| &self.entries[i].0).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::functions::sandbox::{Limits, Sandbox};

    fn compile(signal: Signal, src: &str) -> Result<Matcher, TriggerError> {
        let mut sb = Sandbox::new(Limits::default()).expect("sandbox");
        let exists = sb.exists_sentinel();
        let table: Table = sb
            .run(Duration::from_secs(1), |lua| {
                lua.load(format!("return {src}")).eval()
            })
            .expect("table");
        compile_where(signal, Some(&table), exists)
    }

    fn span_matcher(src: &str) -> Matcher {
        compile(Signal::Span, src).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    fn span() -> SpanRecord {
        SpanRecord {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            name: "chat gpt-4o".into(),
            kind: "CLIENT",
            status_code: "ERROR",
            duration_ns: 6_200_000_000,
            service_name: "checkout".into(),
            attributes: r#"{"gen_ai.provider.name":"openai","gen_ai.request.model":"gpt-4o","http.status_code":503,"retries":"2","cached":false,"tags":["a"]}"#.into(),
            resource: r#"{"service.name":"checkout","host.name":"web-1"}"#.into(),
            ..Default::default()
        }
    }

    fn matches(src: &str) -> bool {
        let s = span();
        span_matcher(src).matches(&RecordView::span(&s))
    }

    #[test]
    fn equality_on_fields_and_attributes() {
        assert!(matches(r#"{ service = "checkout", name = "chat gpt-4o" }"#));
        assert!(!matches(r#"{ service = "billing" }"#));
        assert!(matches(r#"{ status = "error", kind = "client" }"#));
        assert!(matches(r#"{ ["gen_ai.request.model"] = "gpt-4o" }"#));
        assert!(matches(r#"{ ["http.status_code"] = 503 }"#));
        assert!(!matches(r#"{ ["http.status_code"] = "503" }"#));
        assert!(matches(r#"{ ["attributes.retries"] = 2 }"#));
        assert!(matches(r#"{ ["attributes.cached"] = false }"#));
        // Resource attributes are found when the span has no such attribute.
        assert!(matches(r#"{ ["host.name"] = "web-1" }"#));
        assert!(matches(r#"{ ["resource.host.name"] = "web-1" }"#));
        assert!(!matches(r#"{ ["attributes.host.name"] = "web-1" }"#));
        assert!(matches(
            r#"{ trace_id = "0af7651916cd43dd8448eb211c80319c" }"#
        ));
    }

    #[test]
    fn escaped_attribute_keys_and_values_are_decoded() {
        let mut s = span();
        s.attributes = r#"{"we\"ird.key":"a\nb","exception.message":"line1\nline2 \"quoted\"","n":1.5e3,"nul":null}"#.into();
        let view = RecordView::span(&s);
        let m = |src: &str| span_matcher(src).matches(&view);
        assert!(m(r#"{ ['we"ird.key'] = "a\nb" }"#));
        assert!(m(r#"{ ["exception.message"] = { glob = "*\"quoted\"" } }"#));
        assert!(m(r#"{ ["attributes.n"] = { gt = 1000 } }"#));
        // null is absent, as in OTLP an empty value is.
        assert!(!m(r#"{ ["attributes.nul"] = qyl.exists }"#));
        // Unparseable attribute JSON matches no attribute condition.
        let mut bad = span();
        bad.attributes = "{not json".into();
        assert!(
            !span_matcher(r#"{ ["gen_ai.provider.name"] = qyl.exists }"#)
                .matches(&RecordView::span(&bad))
        );
    }

    #[test]
    fn the_attribute_scanner_skips_nested_values() {
        let json = r#" { "a" : {"x":[1,{"y":"}"}]}, "s":"q\"}" , "n":-1.5e3,"t":true,"z":null, "b":"last" } "#;
        assert_eq!(find_attr(json, "b"), Some(r#""last""#));
        assert_eq!(find_attr(json, "n"), Some("-1.5e3"));
        assert_eq!(find_attr(json, "t"), Some("true"));
        assert_eq!(find_attr(json, "z"), Some("null"));
        assert_eq!(find_attr(json, "x"), None, "nested keys are not top-level");
        assert_eq!(find_attr(json, "y"), None);
        assert_eq!(find_attr(json, "missing"), None);
        assert_eq!(find_attr("{}", "a"), None);
        assert_eq!(find_attr("[1]", "a"), None);
        assert_eq!(find_attr(r#"{"a":"unterminated"#, "a"), None);
        assert_eq!(raw_val(r#""q\"x""#), Val::Str(Cow::Owned("q\"x".into())));
    }

    #[test]
    fn exists() {
        assert!(matches(r#"{ ["gen_ai.provider.name"] = qyl.exists }"#));
        assert!(matches(r#"{ ["attributes.tags"] = qyl.exists }"#));
        assert!(!matches(r#"{ ["gen_ai.system"] = qyl.exists }"#));
        assert!(!matches(r#"{ parent_span_id = qyl.exists }"#));
    }

    #[test]
    fn ranges() {
        assert!(matches("{ duration_ms = { gt = 5000 } }"));
        assert!(!matches("{ duration_ms = { gt = 6200 } }"));
        assert!(matches("{ duration_ms = { gte = 6200 } }"));
        assert!(matches("{ duration_ms = { lt = 7000, gt = 6000 } }"));
        assert!(!matches("{ duration_ms = { lt = 6200 } }"));
        assert!(matches("{ duration_ms = { lte = 6200 } }"));
        assert!(matches(
            r#"{ ["http.status_code"] = { gte = 500, lt = 600 } }"#
        ));
        // Numeric strings compare as numbers; non-numbers never match a range.
        assert!(matches(r#"{ ["attributes.retries"] = { gt = 1 } }"#));
        assert!(!matches(r#"{ ["gen_ai.request.model"] = { gt = 1 } }"#));
        assert!(!matches(r#"{ ["missing.attr"] = { lt = 1 } }"#));
    }

    #[test]
    fn prefix_one_of_and_glob() {
        assert!(matches(r#"{ name = { prefix = "chat " } }"#));
        assert!(!matches(r#"{ name = { prefix = "embed" } }"#));
        assert!(matches(
            r#"{ service = { one_of = { "billing", "checkout" } } }"#
        ));
        assert!(!matches(r#"{ service = { one_of = { "billing" } } }"#));
        assert!(matches(
            r#"{ ["http.status_code"] = { one_of = { 502, 503 } } }"#
        ));
        assert!(matches(r#"{ status = { one_of = { "error" } } }"#));
        assert!(matches(
            r#"{ ["gen_ai.request.model"] = { glob = "gpt-*" } }"#
        ));
        assert!(matches(r#"{ name = { glob = "chat gpt-?o" } }"#));
        assert!(!matches(r#"{ name = { glob = "embed*" } }"#));
        // Several operators on one field must all hold.
        assert!(!matches(
            r#"{ name = { prefix = "chat", glob = "*claude*" } }"#
        ));
    }

    #[test]
    fn glob_has_no_backtracking_blowup() {
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("*", ""));
        assert!(glob_match("**a", "a"));
        assert!(!glob_match("?", ""));
        let text = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(50));
        let start = std::time::Instant::now();
        assert!(!glob_match(&pattern, &text));
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn logs_and_severity() {
        let log = LogRecord {
            severity_number: 17,
            severity_text: Some("ERROR".into()),
            body: Some("connection refused".into()),
            service_name: "api".into(),
            attributes: r#"{"exception.type":"IOError"}"#.into(),
            ..Default::default()
        };
        let view = RecordView::log(&log);
        let m = |src: &str| {
            compile(Signal::Log, src)
                .unwrap_or_else(|e| panic!("{src}: {e}"))
                .matches(&view)
        };
        assert!(m(r#"{ severity_min = "WARN" }"#));
        assert!(m(r#"{ severity_min = "error" }"#));
        assert!(!m(r#"{ severity_min = "FATAL" }"#));
        assert!(m("{ severity_min = 17 }"));
        assert!(m(
            r#"{ body = { glob = "*refused*" }, ["exception.type"] = "IOError" }"#
        ));
        assert!(m(r#"{ severity = "ERROR", service = "api" }"#));
        // A log matcher never matches a span and the other way round.
        let s = span();
        assert!(!compile(Signal::Log, "{}")
            .expect("empty")
            .matches(&RecordView::span(&s)));
        assert!(compile(Signal::Log, "{}").expect("empty").matches(&view));
    }

    #[test]
    fn unknown_fields_and_operators_are_errors_naming_the_field() {
        let e = compile(Signal::Span, "{ duraton_ms = { gt = 1 } }").expect_err("typo");
        assert_eq!(e.field, "duraton_ms");
        assert!(e.to_string().contains("`duraton_ms`"), "{e}");
        assert!(e.message.contains("unknown field"), "{e}");
        let e = compile(Signal::Span, "{ duration_ms = { greater = 1 } }").expect_err("op");
        assert_eq!(e.field, "duration_ms");
        assert!(e.message.contains("unknown operator `greater`"), "{e}");
        let e = compile(Signal::Log, "{ duration_ms = { gt = 1 } }").expect_err("span field");
        assert!(e.message.contains("logs have no such field"), "{e}");
        let e = compile(Signal::Span, "{ severity_min = 'WARN' }").expect_err("log field");
        assert_eq!(e.field, "severity_min");
        let e = compile(Signal::Span, "{ duration_ms = { gt = 'slow' } }").expect_err("type");
        assert!(e.message.contains("needs a number"), "{e}");
        let e = compile(Signal::Span, "{ name = {} }").expect_err("empty");
        assert!(e.message.contains("empty"), "{e}");
        let e = compile(Signal::Span, "{ name = function() end }").expect_err("fn");
        assert!(e.message.contains("got function"), "{e}");
        let e = compile(Signal::Log, "{ severity_min = 'LOUD' }").expect_err("sev");
        assert!(e.message.contains("severity name"), "{e}");
    }

    #[test]
    fn summary_describes_the_trigger() {
        let m = span_matcher(
            r#"{ ["gen_ai.provider.name"] = qyl.exists, duration_ms = { gt = 5000 } }"#,
        );
        assert_eq!(
            m.summary(),
            "span where duration_ms > 5000, gen_ai.provider.name exists"
        );
        assert_eq!(span_matcher("{}").summary(), "every span");
    }

    #[test]
    fn index_only_checks_candidates() {
        let entries = vec![
            (
                "checkout-slow",
                span_matcher(r#"{ service = "checkout", duration_ms = { gt = 1000 } }"#),
            ),
            ("billing", span_matcher(r#"{ service = "billing" }"#)),
            (
                "two",
                span_matcher(r#"{ service = { one_of = { "billing", "checkout" } } }"#),
            ),
            (
                "genai",
                span_matcher(r#"{ ["gen_ai.provider.name"] = qyl.exists }"#),
            ),
            ("logs", compile(Signal::Log, "{}").expect("log")),
        ];
        let index = TriggerIndex::new(entries);
        assert_eq!(index.len(), 5);
        assert_eq!(index.candidate_count(Signal::Span, "checkout"), 3);
        assert_eq!(index.candidate_count(Signal::Span, "billing"), 3);
        assert_eq!(index.candidate_count(Signal::Span, "other"), 1);
        assert_eq!(index.candidate_count(Signal::Log, "checkout"), 1);
        let s = span();
        assert_eq!(
            index.matching(&RecordView::span(&s)),
            vec![&"checkout-slow", &"two", &"genai"]
        );
        let log = LogRecord {
            service_name: "x".into(),
            ..Default::default()
        };
        assert_eq!(index.matching(&RecordView::log(&log)), vec![&"logs"]);
    }
}
