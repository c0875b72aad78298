//! One record of the live stream as `qyl watch` shows it: the event's JSON
//! (kept whole for `--json` and the grep) and the few fields every view
//! needs, read once when it arrives rather than on every redraw.
//!
//! The JSON is the server's: span and log rows as `/api/v1/spans` and
//! `/api/v1/logs` return them, error group events, and function events
//! (see src/api/live.rs). A field that is missing or of another type shows
//! as blank rather than failing the watch: a newer server may add or change
//! fields, and a live view should keep going.

use serde_json::Value;

/// What a record is, from the SSE `event:` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Span,
    Log,
    /// An error group that became new, regressed or escalating.
    Error,
    /// A function invocation or a `runtime.stream.publish` value.
    Function,
}

impl Kind {
    /// `None` for events that are not records (`gap`, `lagged`) or that
    /// this view does not show (`metric`).
    pub fn from_event(name: &str) -> Option<Kind> {
        Some(match name {
            "span" => Kind::Span,
            "log" => Kind::Log,
            "error" => Kind::Error,
            "function" => Kind::Function,
            _ => return None,
        })
    }

    /// The SSE event name, also the `type` of `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Span => "span",
            Kind::Log => "log",
            Kind::Error => "error",
            Kind::Function => "function",
        }
    }
}

/// How a record should stand out: drives colours and `--errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Debug and trace logs, unset span status.
    Quiet,
    Normal,
    Ok,
    Warn,
    Error,
}

/// The GenAI fields of a span row (`gen_ai` object), for `--genai`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GenAi {
    pub model: Option<String>,
    pub operation: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct LiveRecord {
    /// The SSE `id:`, the record's ingest sequence number.
    pub seq: u64,
    pub kind: Kind,
    /// The event's data as the server sent it.
    pub data: Value,
    /// When it happened (span start, log time, error last seen, function
    /// start), Unix nanoseconds; 0 when unknown.
    pub time_ns: u64,
    pub service: String,
    /// Span name, log body, error type and message, function and outcome.
    pub text: String,
    pub duration_ms: Option<f64>,
    /// Span status, log severity, error group change, function status.
    pub status: String,
    pub level: Level,
    pub trace_id: Option<String>,
    pub gen_ai: Option<GenAi>,
}

impl LiveRecord {
    pub fn new(seq: u64, kind: Kind, data: Value) -> LiveRecord {
        let mut r = LiveRecord {
            seq,
            kind,
            time_ns: 0,
            service: String::new(),
            text: String::new(),
            duration_ms: None,
            status: String::new(),
            level: Level::Normal,
            trace_id: non_empty(&data, "trace_id"),
            gen_ai: None,
            data,
        };
        match kind {
            Kind::Span => r.read_span(),
            Kind::Log => r.read_log(),
            Kind::Error => r.read_error(),
            Kind::Function => r.read_function(),
        }
        r
    }

    /// Whether `--errors` keeps it: error spans, logs at ERROR or above,
    /// error group events, failed function runs.
    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }

    fn read_span(&mut self) {
        let d = &self.data;
        self.time_ns = number_text(d, "start_time_unix_nano");
        self.service = text(d, "service_name");
        self.text = text(d, "name");
        self.duration_ms = d.get("duration_ms").and_then(Value::as_f64);
        self.status = text(d, "status_code");
        self.level = match self.status.as_str() {
            "ERROR" => Level::Error,
            "OK" => Level::Ok,
            _ => Level::Normal,
        };
        if let Some(msg) = non_empty(d, "status_message") {
            if self.level == Level::Error {
                self.text = format!("{}: {msg}", self.text);
            }
        }
        let g = d.get("gen_ai").unwrap_or(&Value::Null);
        let gen_ai = GenAi {
            model: non_empty(g, "response_model").or_else(|| non_empty(g, "request_model")),
            operation: non_empty(g, "operation"),
            input_tokens: g.get("input_tokens").and_then(Value::as_i64),
            output_tokens: g.get("output_tokens").and_then(Value::as_i64),
            cost_usd: g.get("cost_usd").and_then(Value::as_f64),
        };
        // Any span with a user or an error type carries a `gen_ai` object;
        // a call, as the GenAI page counts them, names a provider or an
        // operation and is not an agent's roll-up of the calls inside it.
        let is_call = (gen_ai.operation.is_some() || non_empty(g, "provider").is_some())
            && !gen_ai
                .operation
                .as_deref()
                .is_some_and(|op| crate::model::GENAI_ROLLUP_OPERATIONS.contains(&op));
        self.gen_ai = is_call.then_some(gen_ai);
    }

    fn read_log(&mut self) {
        let d = &self.data;
        self.time_ns = match number_text(d, "time_unix_nano") {
            // SDKs may leave the event time unset; the receive time is next best.
            0 => number_text(d, "observed_time_unix_nano"),
            t => t,
        };
        self.service = text(d, "service_name");
        self.text = non_empty(d, "body")
            .or_else(|| non_empty(d, "event_name"))
            .unwrap_or_default();
        let number = d
            .get("severity_number")
            .and_then(Value::as_i64)
            .filter(|n| *n > 0)
            .map(|n| n as i32);
        let severity_text = non_empty(d, "severity_text");
        let severity = number.or_else(|| {
            severity_text
                .as_deref()
                .and_then(crate::model::severity_number)
        });
        self.status = severity_text
            .or_else(|| severity.map(|n| severity_name(n).to_string()))
            .unwrap_or_default()
            .to_ascii_uppercase();
        self.level = match severity {
            Some(n) if n >= 17 => Level::Error,
            Some(n) if n >= 13 => Level::Warn,
            Some(n) if n >= 9 => Level::Normal,
            Some(_) => Level::Quiet,
            None => Level::Normal,
        };
    }

    fn read_error(&mut self) {
        let d = &self.data;
        self.time_ns = d
            .get("last_seen_unix_nano")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        self.service = text(d, "service_name");
        let kind = non_empty(d, "error_type").unwrap_or_else(|| "error".into());
        self.text = match non_empty(d, "message_template") {
            Some(m) => format!("{kind}: {m}"),
            None => kind,
        };
        if let Some(n) = d.get("count").and_then(Value::as_u64) {
            self.text.push_str(&format!(" (×{n})"));
        }
        self.status = text(d, "change").to_ascii_uppercase();
        self.level = Level::Error;
    }

    fn read_function(&mut self) {
        let d = &self.data;
        let function = text(d, "function");
        self.service = "qyl".into();
        match d.get("kind").and_then(Value::as_str) {
            Some("publish") => {
                self.time_ns = rfc3339_ns(d, "time");
                self.status = "publish".into();
                self.text = format!(
                    "{function} → {} {}",
                    text(d, "topic"),
                    compact(d.get("value"))
                );
            }
            _ => {
                self.time_ns = rfc3339_ns(d, "started_at");
                self.duration_ms = d.get("duration_ms").and_then(Value::as_f64);
                self.status = text(d, "status");
                self.trace_id = non_empty(d, "triggered_by_trace_id");
                self.text = match non_empty(d, "error") {
                    Some(e) => format!("{function}: {e}"),
                    None => match d.get("result").filter(|v| !v.is_null()) {
                        Some(v) => format!("{function} → {}", compact(Some(v))),
                        None => function,
                    },
                };
                self.level = match self.status.as_str() {
                    "failed" | "timed_out" => Level::Error,
                    "skipped" => Level::Quiet,
                    _ => Level::Ok,
                };
            }
        }
    }

    /// What `--grep` and the screen's filter search besides the line: the
    /// attributes (span, log) and the whole event otherwise.
    pub fn searchable_extra(&self) -> String {
        match self.kind {
            Kind::Span | Kind::Log => self
                .data
                .get("attributes")
                .map(Value::to_string)
                .unwrap_or_default(),
            Kind::Error | Kind::Function => self.data.to_string(),
        }
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn non_empty(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Nanosecond times are JSON strings in the rows (they exceed what a
/// JavaScript number holds exactly); accept a number as well.
fn number_text(v: &Value, key: &str) -> u64 {
    match v.get(key) {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(n) => n.as_u64().unwrap_or(0),
        None => 0,
    }
}

fn rfc3339_ns(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_str)
        .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A JSON value on one line, strings without their quotes.
fn compact(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn severity_name(n: i32) -> &'static str {
    match n {
        ..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        _ => "FATAL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn span_rows_give_name_duration_status_and_genai() {
        let r = LiveRecord::new(
            7,
            Kind::Span,
            json!({
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "name": "chat gpt-4o", "service_name": "shop",
                "start_time_unix_nano": "1700000000123000000",
                "duration_ms": 812.5, "status_code": "ERROR", "status_message": "rate limited",
                "gen_ai": {"provider": "openai", "request_model": "gpt-4o", "input_tokens": 120, "output_tokens": 30, "cost_usd": 0.0012}
            }),
        );
        assert_eq!(r.time_ns, 1_700_000_000_123_000_000);
        assert_eq!(r.text, "chat gpt-4o: rate limited");
        assert_eq!(r.duration_ms, Some(812.5));
        assert!(r.is_error());
        let g = r.gen_ai.unwrap();
        assert_eq!(g.model.as_deref(), Some("gpt-4o"));
        assert_eq!((g.input_tokens, g.output_tokens), (Some(120), Some(30)));
        let plain = LiveRecord::new(
            8,
            Kind::Span,
            json!({"name": "GET /", "gen_ai": {"request_model": null, "input_tokens": null}}),
        );
        assert!(plain.gen_ai.is_none());
        let agent = LiveRecord::new(
            9,
            Kind::Span,
            json!({"name": "agent", "gen_ai": {"operation": "invoke_agent", "input_tokens": 900}}),
        );
        assert!(agent.gen_ai.is_none());
    }

    #[test]
    fn log_severity_comes_from_the_number_or_the_text() {
        let warn = LiveRecord::new(
            1,
            Kind::Log,
            json!({"severity_number": 13, "severity_text": "WARNING", "body": "quota", "time_unix_nano": "0", "observed_time_unix_nano": "5"}),
        );
        assert_eq!(
            (warn.level, warn.status.as_str(), warn.time_ns),
            (Level::Warn, "WARNING", 5)
        );
        let error = LiveRecord::new(
            2,
            Kind::Log,
            json!({"severity_number": 0, "severity_text": "error", "body": "boom"}),
        );
        assert!(error.is_error());
        let bare = LiveRecord::new(3, Kind::Log, json!({"severity_number": 5}));
        assert_eq!((bare.level, bare.status.as_str()), (Level::Quiet, "DEBUG"));
    }

    #[test]
    fn error_and_function_events_read_their_own_shapes() {
        let e = LiveRecord::new(
            4,
            Kind::Error,
            json!({"change": "new", "error_type": "KeyError", "message_template": "'u-<n>'", "count": 3, "service_name": "shop", "trace_id": null}),
        );
        assert_eq!(
            (e.text.as_str(), e.status.as_str()),
            ("KeyError: 'u-<n>' (×3)", "NEW")
        );
        assert!(e.is_error() && e.trace_id.is_none());
        let f = LiveRecord::new(
            5,
            Kind::Function,
            json!({"kind": "invocation", "function": "alert", "status": "failed", "error": "boom", "duration_ms": 2.0, "started_at": "2023-11-14T22:13:20Z"}),
        );
        assert_eq!(f.text, "alert: boom");
        assert_eq!(f.time_ns, 1_700_000_000_000_000_000);
        assert!(f.is_error());
        let p = LiveRecord::new(
            6,
            Kind::Function,
            json!({"kind": "publish", "function": "rollup", "topic": "cost", "value": {"usd": 1}, "time": "2023-11-14T22:13:20Z"}),
        );
        assert_eq!(p.text, "rollup → cost {\"usd\":1}");
    }
}
