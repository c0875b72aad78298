//! Finds the errors in an export before it is queued, on the exporting
//! request's thread rather than the writer's, so grouping costs the writer
//! nothing but a hash lookup.
//!
//! What counts as an error (issue 5, "Capture"):
//! - span events named `exception`;
//! - log records with `exception.*` attributes or an event name ending in
//!   `exception` (newer semantic conventions send exceptions as logs);
//! - spans with status ERROR that carry no exception (type from
//!   `error.type`, else the span name);
//! - GenAI calls: failures grouped by class rather than stack, and "soft"
//!   failures (`finish_reasons` with `length` or `content_filter`) as their
//!   own groups.
//!
//! Records are only parsed when a cheap text check says they may hold an
//! error: most spans are fine and must cost nothing here.

use serde_json::{Map, Value};
use xxhash_rust::xxh3::xxh3_128;

use super::fingerprint::{explicit_fingerprint, fingerprint, ErrorSignature};
use super::genai::{self, GenAiFailure, GenAiGroupKey};
use super::inapp::InAppRules;
use super::message::redact_secrets;
use super::stacktrace::{parse_stacktrace, LanguageHint, StackTrace};
use crate::model::errors::{ErrorGenAi, ErrorOccurrence};
use crate::model::{Batch, LogRecord, SpanRecord};

/// Severity numbers from ERROR up make a logged exception unhandled.
const SEVERITY_ERROR: i32 = 17;

/// The capture rules, built once from `[errors]`.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    pub in_app: InAppRules,
}

impl Capture {
    pub fn new(in_app: InAppRules) -> Capture {
        Capture { in_app }
    }

    /// The rules of `[errors]` in qyl.toml.
    pub fn from_config(config: &crate::config::ErrorsConfig) -> Capture {
        Capture::new(InAppRules {
            include: config.in_app_include.clone(),
            exclude: config.in_app_exclude.clone(),
        })
    }

    /// Every error in the batch's spans and logs.
    pub fn capture(&self, batch: &Batch) -> Vec<ErrorOccurrence> {
        let mut out = Vec::new();
        for (i, span) in batch.spans.iter().enumerate() {
            self.capture_span(i, span, &mut out);
        }
        for log in &batch.logs {
            self.capture_log(log, &mut out);
        }
        out
    }

    fn capture_span(&self, index: usize, span: &SpanRecord, out: &mut Vec<ErrorOccurrence>) {
        let has_exception = span.events.contains("\"exception\"");
        let is_error = span.status_code == "ERROR";
        let soft = if span.genai.operation.is_some() || span.genai.provider.is_some() {
            span.genai
                .finish_reasons
                .as_deref()
                .map(genai::finish_reasons_from_json)
                .and_then(|r| genai::soft_failure(&r))
        } else {
            None
        };
        if !has_exception && !is_error && soft.is_none() {
            return;
        }
        let attrs = parse_object(&span.attributes);
        let resource = parse_object(&span.resource);
        let ctx = Context {
            service: &span.service_name,
            release: span.service_version.as_deref(),
            environment: span.deployment_environment.as_deref(),
            session: span.session_id.as_deref(),
            trace_id: Some(&span.trace_id),
            span_id: Some(&span.span_id),
            span_name: Some(&span.name),
            attrs: &attrs,
            resource: &resource,
            genai: GenAiContext {
                operation: span
                    .genai
                    .operation
                    .clone()
                    .or_else(|| text(&attrs, "gen_ai.operation.name")),
                provider: span.genai.provider.clone(),
                model: span
                    .genai
                    .response_model
                    .clone()
                    .or_else(|| span.genai.request_model.clone()),
                tool: text(&attrs, "gen_ai.tool.name"),
            },
            span_index: Some(index),
        };
        let server_side = matches!(span.kind, "SERVER" | "CONSUMER");
        let mut found = false;
        if has_exception {
            if let Ok(Value::Array(events)) = serde_json::from_str::<Value>(&span.events) {
                for ev in events {
                    if ev.get("name").and_then(Value::as_str) != Some("exception") {
                        continue;
                    }
                    let empty = Map::new();
                    let ev_attrs = ev
                        .get("attributes")
                        .and_then(Value::as_object)
                        .unwrap_or(&empty);
                    let time = ev
                        .get("time_unix_nano")
                        .and_then(Value::as_u64)
                        .filter(|t| *t > 0)
                        .unwrap_or(span.end_time_unix_nano);
                    let escaped = ev_attrs
                        .get("exception.escaped")
                        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
                    let raised = Raised {
                        exception_type: text(ev_attrs, "exception.type"),
                        message: text(ev_attrs, "exception.message"),
                        stacktrace: text(ev_attrs, "exception.stacktrace"),
                        explicit: ev_attrs
                            .get("qyl.fingerprint")
                            .or_else(|| attrs.get("qyl.fingerprint"))
                            .and_then(explicit_fingerprint),
                        error_type: text(&attrs, "error.type"),
                        http_status: http_status(&attrs),
                    };
                    out.push(self.occurrence(
                        &ctx,
                        raised,
                        "span_event",
                        time,
                        !(server_side || escaped),
                        None,
                    ));
                    found = true;
                }
            }
        }
        if !found && is_error {
            let raised = Raised {
                exception_type: text(&attrs, "error.type"),
                message: span.status_message.clone().filter(|m| !m.is_empty()),
                stacktrace: None,
                explicit: attrs.get("qyl.fingerprint").and_then(explicit_fingerprint),
                error_type: text(&attrs, "error.type"),
                http_status: http_status(&attrs),
            };
            out.push(self.occurrence(
                &ctx,
                raised,
                "span_status",
                span.end_time_unix_nano,
                !server_side,
                None,
            ));
            found = true;
        }
        if let (false, Some(class)) = (found, soft) {
            let raised = Raised {
                exception_type: None,
                message: Some(format!("finish reason: {}", class.as_str())),
                stacktrace: None,
                explicit: None,
                error_type: None,
                http_status: None,
            };
            out.push(self.occurrence(
                &ctx,
                raised,
                "genai_soft",
                span.end_time_unix_nano,
                true,
                Some(class),
            ));
        }
    }

    fn capture_log(&self, log: &LogRecord, out: &mut Vec<ErrorOccurrence>) {
        let by_name = log
            .event_name
            .as_deref()
            .is_some_and(|n| n.to_ascii_lowercase().ends_with("exception"));
        if !by_name && !log.attributes.contains("\"exception.") {
            return;
        }
        let attrs = parse_object(&log.attributes);
        let has_exception_attr = attrs.keys().any(|k| k.starts_with("exception."));
        if !by_name && !has_exception_attr {
            return;
        }
        let resource = parse_object(&log.resource);
        let ctx = Context {
            service: &log.service_name,
            release: log.service_version.as_deref(),
            environment: log.deployment_environment.as_deref(),
            session: log.session_id.as_deref(),
            trace_id: log.trace_id.as_deref(),
            span_id: log.span_id.as_deref(),
            span_name: None,
            attrs: &attrs,
            resource: &resource,
            genai: GenAiContext {
                operation: text(&attrs, "gen_ai.operation.name"),
                provider: text(&attrs, "gen_ai.provider.name")
                    .or_else(|| text(&attrs, "gen_ai.system")),
                model: text(&attrs, "gen_ai.response.model")
                    .or_else(|| text(&attrs, "gen_ai.request.model")),
                tool: text(&attrs, "gen_ai.tool.name"),
            },
            span_index: None,
        };
        let raised = Raised {
            exception_type: text(&attrs, "exception.type"),
            message: text(&attrs, "exception.message")
                .or_else(|| log.body.clone().filter(|b| !b.is_empty())),
            stacktrace: text(&attrs, "exception.stacktrace"),
            explicit: attrs.get("qyl.fingerprint").and_then(explicit_fingerprint),
            error_type: text(&attrs, "error.type"),
            http_status: http_status(&attrs),
        };
        let unhandled = log.severity_number >= SEVERITY_ERROR
            || log
                .severity_text
                .as_deref()
                .and_then(crate::model::severity_number)
                .is_some_and(|s| s >= SEVERITY_ERROR);
        out.push(self.occurrence(&ctx, raised, "log", log.time_unix_nano, !unhandled, None));
    }

    fn occurrence(
        &self,
        ctx: &Context<'_>,
        raised: Raised,
        source: &'static str,
        time: u64,
        handled: bool,
        soft: Option<genai::GenAiErrorClass>,
    ) -> ErrorOccurrence {
        let message = raised
            .message
            .as_deref()
            .map(|m| redact_secrets(m).into_owned());
        let stacktrace = raised
            .stacktrace
            .as_deref()
            .map(|s| redact_secrets(s).into_owned());
        let trace: Option<StackTrace> = stacktrace.as_deref().and_then(|s| {
            parse_stacktrace(
                s,
                LanguageHint {
                    sdk_language: ctx
                        .resource
                        .get("telemetry.sdk.language")
                        .and_then(Value::as_str),
                    exception_type: raised.exception_type.as_deref(),
                },
                &self.in_app,
            )
        });
        let mut fp = fingerprint(&ErrorSignature {
            exception_type: raised.exception_type.as_deref(),
            message: message.as_deref(),
            stacktrace: trace.as_ref(),
            span_name: ctx.span_name,
            error_type: raised.error_type.as_deref(),
            explicit: raised.explicit.as_deref(),
        });
        let culprit = trace
            .as_ref()
            .and_then(|t| t.culprit())
            .map(|f| {
                if f.function.is_empty() {
                    f.module.clone()
                } else {
                    format!("{} in {}", f.function, f.module)
                }
            })
            .or_else(|| ctx.span_name.map(str::to_string));
        let is_genai = ctx.genai.operation.is_some() || ctx.genai.provider.is_some();
        let mut category = if source == "span_status" {
            "status"
        } else {
            "exception"
        };
        let mut genai_tags = None;
        if is_genai {
            let class = soft.unwrap_or_else(|| {
                genai::classify(&GenAiFailure {
                    error_type: raised
                        .error_type
                        .as_deref()
                        .or(raised.exception_type.as_deref()),
                    http_status: raised.http_status,
                    message: message.as_deref(),
                    operation: ctx.genai.operation.as_deref(),
                })
            });
            let key = GenAiGroupKey::new(
                ctx.service,
                ctx.genai.provider.as_deref().unwrap_or(""),
                ctx.genai.operation.as_deref().unwrap_or(""),
                class,
                ctx.genai.tool.as_deref(),
                soft.is_some(),
            );
            category = if soft.is_some() {
                "genai_soft"
            } else {
                "genai"
            };
            // An explicit fingerprint still wins; otherwise the GenAI key is
            // the only key, so a rate limit never joins a stack-trace group
            // through the SDK's frames.
            if raised.explicit.is_none() {
                fp.components = key.components();
                fp.hash = key.hash();
                fp.in_app_hash = None;
                fp.full_stack_hash = None;
            }
            genai_tags = Some(ErrorGenAi {
                provider: (!key.provider.is_empty()).then(|| key.provider.clone()),
                operation: (!key.operation.is_empty()).then(|| key.operation.clone()),
                model: ctx.genai.model.as_deref().map(genai::model_tag),
                error_class: class.as_str(),
                tool: key.tool_name.clone(),
            });
        }
        let rule = if genai_tags.is_some() && raised.explicit.is_none() {
            "genai"
        } else {
            fp.rule.as_str()
        };
        let user = ["enduser.id", "user.id"]
            .iter()
            .find_map(|k| text(ctx.attrs, k).or_else(|| text(ctx.resource, k)));
        let event_id = {
            let key = format!(
                "{}|{}|{}|{}|{}",
                ctx.trace_id.unwrap_or(""),
                ctx.span_id.unwrap_or(""),
                time,
                source,
                fp.hash
            );
            format!("{:032x}", xxh3_128(key.as_bytes()))
        };
        ErrorOccurrence {
            event_id,
            source,
            span_index: ctx.span_index,
            time_unix_nano: time,
            trace_id: ctx.trace_id.map(str::to_string),
            span_id: ctx.span_id.map(str::to_string),
            service_name: ctx.service.to_string(),
            release: ctx.release.map(str::to_string),
            environment: ctx.environment.map(str::to_string),
            session_id: ctx.session.map(str::to_string),
            user,
            exception_type: raised
                .exception_type
                .or_else(|| {
                    trace
                        .as_ref()
                        .and_then(|t| t.exceptions.first()?.type_name.clone())
                })
                .or_else(|| {
                    (source == "span_status").then(|| ctx.span_name.unwrap_or("").to_string())
                })
                .filter(|t| !t.is_empty()),
            message,
            message_template: fp.message_template.clone(),
            fingerprint: fp.hash,
            in_app_hash: fp.in_app_hash,
            full_stack_hash: fp.full_stack_hash,
            fingerprint_rule: rule,
            fingerprint_version: fp.version,
            components: serde_json::to_string(&fp.components).unwrap_or_else(|_| "[]".into()),
            frames: trace.as_ref().and_then(|t| serde_json::to_string(t).ok()),
            culprit,
            category,
            handled,
            genai: genai_tags,
            stacktrace,
        }
    }
}

struct GenAiContext {
    operation: Option<String>,
    provider: Option<String>,
    model: Option<String>,
    tool: Option<String>,
}

/// What the record around an error says.
struct Context<'a> {
    service: &'a str,
    release: Option<&'a str>,
    environment: Option<&'a str>,
    session: Option<&'a str>,
    trace_id: Option<&'a str>,
    span_id: Option<&'a str>,
    span_name: Option<&'a str>,
    attrs: &'a Map<String, Value>,
    resource: &'a Map<String, Value>,
    genai: GenAiContext,
    span_index: Option<usize>,
}

/// What the error itself says.
struct Raised {
    exception_type: Option<String>,
    message: Option<String>,
    stacktrace: Option<String>,
    explicit: Option<Vec<String>>,
    error_type: Option<String>,
    http_status: Option<u16>,
}

fn parse_object(json: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// A non-empty attribute as text (numbers and booleans rendered).
fn text(attrs: &Map<String, Value>, key: &str) -> Option<String> {
    match attrs.get(key)? {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

fn http_status(attrs: &Map<String, Value>) -> Option<u16> {
    ["http.response.status_code", "http.status_code"]
        .iter()
        .find_map(|k| match attrs.get(*k)? {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(status: &'static str, events: &str, attrs: &str) -> SpanRecord {
        SpanRecord {
            trace_id: "a".repeat(32).into(),
            span_id: "b".repeat(16).into(),
            name: "GET /users".into(),
            kind: "SERVER",
            status_code: status,
            service_name: "api".into(),
            service_version: Some("1.0.0".into()),
            attributes: attrs.into(),
            resource: r#"{"telemetry.sdk.language":"python"}"#.into(),
            events: events.into(),
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 2_000,
            ..SpanRecord::default()
        }
    }

    const PY_TRACE: &str = "Traceback (most recent call last):\n  File \"/app/handlers/users.py\", line 42, in get_user\n    return db.load(user_id)\n  File \"/app/store/db.py\", line 10, in load\n    raise KeyError(key)\nKeyError: 'u-1'\n";

    fn capture(batch: &Batch) -> Vec<ErrorOccurrence> {
        Capture::default().capture(batch)
    }

    #[test]
    fn exception_events_become_unhandled_errors_on_server_spans() {
        let events = format!(
            r#"[{{"time_unix_nano":1500,"name":"exception","attributes":{{"exception.type":"KeyError","exception.message":"'u-1' with key sk-abcdefghijklmnopqrstuvwx","exception.stacktrace":{}}}}}]"#,
            serde_json::to_string(PY_TRACE).unwrap()
        );
        let batch = Batch {
            spans: vec![span("ERROR", &events, "{}")],
            ..Batch::default()
        };
        let found = capture(&batch);
        assert_eq!(found.len(), 1, "the exception, not also the ERROR status");
        let e = &found[0];
        assert_eq!(e.source, "span_event");
        assert_eq!(e.time_unix_nano, 1500);
        assert_eq!(e.exception_type.as_deref(), Some("KeyError"));
        assert!(!e.handled);
        assert_eq!(e.fingerprint_rule, "in_app_frames");
        assert!(e.culprit.as_deref().unwrap().contains("load"));
        assert!(
            !e.message.as_deref().unwrap().contains("sk-abc"),
            "{:?}",
            e.message
        );
        assert!(e.frames.is_some());
        assert_eq!(e.span_index, Some(0));
    }

    #[test]
    fn status_errors_without_exception_use_error_type_else_name() {
        let batch = Batch {
            spans: vec![
                span("ERROR", "[]", r#"{"error.type":"timeout"}"#),
                span("ERROR", "[]", "{}"),
                span("OK", "[]", "{}"),
            ],
            ..Batch::default()
        };
        let found = capture(&batch);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].exception_type.as_deref(), Some("timeout"));
        assert_eq!(found[1].exception_type.as_deref(), Some("GET /users"));
        assert_eq!(found[0].category, "status");
        assert_ne!(found[0].fingerprint, found[1].fingerprint);
    }

    #[test]
    fn logs_with_exception_attributes_or_event_names() {
        let log = |attrs: &str, event: Option<&str>, severity: i32| LogRecord {
            time_unix_nano: 5,
            severity_number: severity,
            service_name: "api".into(),
            attributes: attrs.into(),
            resource: "{}".into(),
            event_name: event.map(str::to_string),
            body: Some("boom".into()),
            ..LogRecord::default()
        };
        let batch = Batch {
            logs: vec![
                log(
                    r#"{"exception.type":"ValueError","exception.message":"bad 42"}"#,
                    None,
                    17,
                ),
                log("{}", Some("app.exception"), 9),
                log(r#"{"note":"exception.type is mentioned"}"#, None, 17),
                log("{}", None, 21),
            ],
            ..Batch::default()
        };
        let found = capture(&batch);
        assert_eq!(found.len(), 2);
        assert!(!found[0].handled);
        assert!(found[1].handled);
        assert_eq!(found[0].message_template.as_deref(), Some("bad <num>"));
    }

    #[test]
    fn genai_failures_group_by_class_and_soft_failures_apart() {
        let mut rate = span(
            "ERROR",
            "[]",
            r#"{"error.type":"openai.RateLimitError","http.response.status_code":429}"#,
        );
        rate.genai.operation = Some("chat".into());
        rate.genai.provider = Some("openai".into());
        rate.genai.request_model = Some("gpt-4o-2024-08-06".into());
        let mut rate2 = rate.clone();
        rate2.genai.request_model = Some("gpt-4o-2024-11-20".into());
        rate2.status_message = Some("Rate limit reached for org-xyz in 20s".into());
        let mut soft = span("UNSET", "[]", "{}");
        soft.genai.operation = Some("chat".into());
        soft.genai.provider = Some("openai".into());
        soft.genai.finish_reasons = Some(r#"["length"]"#.into());
        let mut fine = soft.clone();
        fine.genai.finish_reasons = Some(r#"["stop"]"#.into());
        let batch = Batch {
            spans: vec![rate, rate2, soft, fine],
            ..Batch::default()
        };
        let found = capture(&batch);
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].fingerprint, found[1].fingerprint);
        let g = found[0].genai.as_ref().unwrap();
        assert_eq!(g.error_class, "rate_limited");
        assert_eq!(g.model.as_deref(), Some("gpt-4o"));
        assert_eq!(found[0].category, "genai");
        assert_eq!(found[2].category, "genai_soft");
        assert_eq!(found[2].genai.as_ref().unwrap().error_class, "truncated");
        assert_ne!(found[2].fingerprint, found[0].fingerprint);
    }

    #[test]
    fn explicit_fingerprint_attribute_decides() {
        let a = span(
            "ERROR",
            "[]",
            r#"{"qyl.fingerprint":["billing","{{ default }}"]}"#,
        );
        let b = span("ERROR", "[]", r#"{"qyl.fingerprint":"billing"}"#);
        let found = capture(&Batch {
            spans: vec![a, b],
            ..Batch::default()
        });
        assert_eq!(found[0].fingerprint_rule, "explicit");
        assert_ne!(found[0].fingerprint, found[1].fingerprint);
    }
}
