//! The JSON of a `function` event on the live stream: an invocation that
//! ended, or a value a function published with `runtime.stream.publish`.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::model::function::FunctionEvent;
use crate::model::query::{raw_json, rfc3339};

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FunctionEventRow<'a> {
    Invocation {
        invocation_id: &'a str,
        function: &'a str,
        status: &'static str,
        result: Option<Box<RawValue>>,
        error: Option<&'a str>,
        duration_ms: f64,
        triggered_by_trace_id: Option<&'a str>,
        triggered_by_span_id: Option<&'a str>,
        started_at: String,
        seq: u64,
    },
    Publish {
        function: &'a str,
        topic: &'a str,
        value: Box<RawValue>,
        time: String,
        seq: u64,
    },
}

impl<'a> FunctionEventRow<'a> {
    pub fn new(event: &'a FunctionEvent, seq: u64) -> Self {
        match event {
            FunctionEvent::Invocation(i) => FunctionEventRow::Invocation {
                invocation_id: &i.invocation_id,
                function: &i.function,
                status: i.status.as_str(),
                result: i.result.as_deref().map(raw_json),
                error: i.error.as_deref(),
                duration_ms: i.duration_ms,
                triggered_by_trace_id: i.trace_id.as_deref(),
                triggered_by_span_id: i.span_id.as_deref(),
                started_at: rfc3339(i.started_unix_nano),
                seq,
            },
            FunctionEvent::Published(p) => FunctionEventRow::Publish {
                function: &p.function,
                topic: &p.topic,
                value: raw_json(&p.value),
                time: rfc3339(p.time_unix_nano),
                seq,
            },
        }
    }
}
