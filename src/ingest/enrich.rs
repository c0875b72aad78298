//! Pulls the columns qyl indexes out of attribute lists: service identity from
//! the resource, session id, and the GenAI fields (current semantic-convention
//! names first, legacy names as fallbacks).
//!
//! Each function makes a single pass over the attributes with a `match` on the
//! key, because this runs for every span and a lookup per key would scan the
//! list a dozen times.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};

use crate::model::GenAiFields;

/// What the resource says about who sent the data.
#[derive(Debug, Clone, Default)]
pub struct ResourceInfo {
    pub service_name: String,
    pub service_version: Option<String>,
    pub deployment_environment: Option<String>,
    pub session_id: Option<String>,
    pub conversation_id: Option<String>,
    /// The resource attributes as JSON text.
    pub json: String,
}

/// The service name used when a resource has none, as the OTel SDKs do.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

pub fn resource_info(attrs: &[KeyValue]) -> ResourceInfo {
    let mut info = ResourceInfo::default();
    let mut legacy_env = None;
    for kv in attrs {
        match kv.key.as_str() {
            "service.name" => info.service_name = string(kv).unwrap_or_default(),
            "service.version" => info.service_version = string(kv),
            "deployment.environment.name" => info.deployment_environment = string(kv),
            "deployment.environment" => legacy_env = string(kv),
            "session.id" => info.session_id = string(kv),
            "gen_ai.conversation.id" => info.conversation_id = string(kv),
            _ => {}
        }
    }
    if info.service_name.is_empty() {
        info.service_name = UNKNOWN_SERVICE.to_string();
    }
    if info.deployment_environment.is_none() {
        info.deployment_environment = legacy_env;
    }
    info.json = super::jsonw::attrs_json(attrs);
    info
}

/// Record-level attributes that qyl lifts into columns.
#[derive(Debug, Default)]
pub struct RecordInfo {
    pub genai: GenAiFields,
    pub session_id: Option<String>,
    pub event_name: Option<String>,
}

impl RecordInfo {
    /// `session.id`, then `gen_ai.conversation.id`, on the record first and
    /// then on its resource.
    pub fn session(&mut self, resource: &ResourceInfo) -> Option<String> {
        self.session_id
            .take()
            .or_else(|| resource.session_id.clone())
            .or_else(|| resource.conversation_id.clone())
    }
}

pub fn record_info(attrs: &[KeyValue]) -> RecordInfo {
    let mut g = GenAiFields::default();
    let mut system = None;
    let mut prompt_tokens = None;
    let mut completion_tokens = None;
    let mut legacy_cache_read = None;
    let mut legacy_cache_write = None;
    let mut legacy_reasoning = None;
    let mut legacy_ttfc = None;
    let mut enduser = None;
    let mut session_id = None;
    let mut conversation_id = None;
    let mut event_name = None;
    for kv in attrs {
        match kv.key.as_str() {
            "gen_ai.provider.name" => g.provider = string(kv),
            "gen_ai.system" => system = string(kv),
            "gen_ai.operation.name" => g.operation = string(kv),
            "gen_ai.request.model" => g.request_model = string(kv),
            "gen_ai.response.model" => g.response_model = string(kv),
            "gen_ai.usage.input_tokens" => g.input_tokens = tokens(kv),
            "gen_ai.usage.prompt_tokens" => prompt_tokens = tokens(kv),
            "gen_ai.usage.output_tokens" => g.output_tokens = tokens(kv),
            "gen_ai.usage.completion_tokens" => completion_tokens = tokens(kv),
            "gen_ai.usage.cache_read.input_tokens" => g.cache_read_tokens = tokens(kv),
            "gen_ai.usage.cache_read_input_tokens" => legacy_cache_read = tokens(kv),
            "gen_ai.response.finish_reasons" => g.finish_reasons = string_list_json(kv),
            "gen_ai.usage.cost" => g.cost_usd = number(kv).filter(|c| *c >= 0.0),
            "gen_ai.usage.cache_creation.input_tokens" => g.cache_write_tokens = tokens(kv),
            "gen_ai.usage.cache_creation_input_tokens" => legacy_cache_write = tokens(kv),
            "gen_ai.usage.reasoning.output_tokens" => g.reasoning_tokens = tokens(kv),
            "gen_ai.usage.reasoning_tokens" => legacy_reasoning = tokens(kv),
            "gen_ai.tool.name" => g.tool_name = string(kv),
            "gen_ai.tool.call.id" => g.tool_call_id = string(kv),
            "gen_ai.agent.name" => g.agent_name = string(kv),
            // Seconds, as the GenAI conventions measure durations.
            "gen_ai.response.time_to_first_chunk" => g.time_to_first_chunk_ms = seconds_ms(kv),
            "gen_ai.server.time_to_first_token" | "gen_ai.response.time_to_first_token" => {
                legacy_ttfc = seconds_ms(kv)
            }
            "error.type" => g.error_type = string(kv),
            "user.id" => g.user_id = string(kv),
            "enduser.id" => enduser = string(kv),
            "gen_ai.conversation.id" => conversation_id = string(kv),
            "session.id" => session_id = string(kv),
            "event.name" => event_name = string(kv),
            _ => {}
        }
    }
    g.provider = g.provider.or(system);
    g.input_tokens = g.input_tokens.or(prompt_tokens);
    g.output_tokens = g.output_tokens.or(completion_tokens);
    g.cache_read_tokens = g.cache_read_tokens.or(legacy_cache_read);
    g.cache_write_tokens = g.cache_write_tokens.or(legacy_cache_write);
    g.reasoning_tokens = g.reasoning_tokens.or(legacy_reasoning);
    g.time_to_first_chunk_ms = g.time_to_first_chunk_ms.or(legacy_ttfc);
    g.user_id = g.user_id.or(enduser);
    g.conversation_id = conversation_id.clone();
    RecordInfo {
        genai: g,
        session_id: session_id.or(conversation_id),
        event_name,
    }
}

fn value(kv: &KeyValue) -> Option<&Value> {
    kv.value.as_ref().and_then(|v| v.value.as_ref())
}

/// A non-empty string; numbers and bools are rendered, other types ignored.
fn string(kv: &KeyValue) -> Option<String> {
    let s = match value(kv)? {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BoolValue(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

fn number(kv: &KeyValue) -> Option<f64> {
    match value(kv)? {
        Value::IntValue(i) => Some(*i as f64),
        Value::DoubleValue(d) if d.is_finite() => Some(*d),
        Value::StringValue(s) => s.trim().parse::<f64>().ok().filter(|d| d.is_finite()),
        _ => None,
    }
}

/// A non-negative duration in seconds, as milliseconds.
fn seconds_ms(kv: &KeyValue) -> Option<f64> {
    number(kv).filter(|s| *s >= 0.0).map(|s| s * 1000.0)
}

/// Token counts arrive as ints from most SDKs, as doubles from JavaScript and
/// sometimes as strings; negative or fractional values are not counts.
fn tokens(kv: &KeyValue) -> Option<i64> {
    match value(kv)? {
        Value::IntValue(i) => Some(*i),
        Value::DoubleValue(d) if d.fract() == 0.0 && d.is_finite() => Some(*d as i64),
        Value::StringValue(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .filter(|t| *t >= 0)
}

fn string_list_json(kv: &KeyValue) -> Option<String> {
    let mut items = Vec::new();
    match value(kv)? {
        Value::StringValue(s) => items.push(s.as_str()),
        Value::ArrayValue(a) => {
            for v in &a.values {
                if let Some(Value::StringValue(s)) = &v.value {
                    items.push(s.as_str());
                }
            }
        }
        _ => return None,
    }
    let mut out = String::from("[");
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        super::jsonw::push_str(&mut out, s);
    }
    out.push(']');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue};

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }
    fn s(k: &str, v: &str) -> KeyValue {
        kv(k, Value::StringValue(v.into()))
    }

    #[test]
    fn current_genai_names() {
        let info = record_info(&[
            s("gen_ai.provider.name", "openai"),
            s("gen_ai.operation.name", "chat"),
            s("gen_ai.request.model", "gpt-4o"),
            s("gen_ai.response.model", "gpt-4o-2024-08-06"),
            kv("gen_ai.usage.input_tokens", Value::IntValue(120)),
            kv("gen_ai.usage.output_tokens", Value::DoubleValue(30.0)),
            kv(
                "gen_ai.usage.cache_read.input_tokens",
                Value::StringValue("100".into()),
            ),
            kv(
                "gen_ai.response.finish_reasons",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::StringValue("stop".into())),
                    }],
                }),
            ),
            s("gen_ai.conversation.id", "conv-1"),
        ]);
        let g = info.genai;
        assert_eq!(g.provider.as_deref(), Some("openai"));
        assert_eq!(g.operation.as_deref(), Some("chat"));
        assert_eq!(g.request_model.as_deref(), Some("gpt-4o"));
        assert_eq!(g.response_model.as_deref(), Some("gpt-4o-2024-08-06"));
        assert_eq!(g.input_tokens, Some(120));
        assert_eq!(g.output_tokens, Some(30));
        assert_eq!(g.cache_read_tokens, Some(100));
        assert_eq!(g.finish_reasons.as_deref(), Some("[\"stop\"]"));
        assert_eq!(info.session_id.as_deref(), Some("conv-1"));
    }

    #[test]
    fn legacy_genai_names_are_fallbacks() {
        let g = record_info(&[
            s("gen_ai.system", "anthropic"),
            kv("gen_ai.usage.prompt_tokens", Value::IntValue(7)),
            kv("gen_ai.usage.completion_tokens", Value::IntValue(9)),
            kv("gen_ai.usage.cache_read_input_tokens", Value::IntValue(3)),
            s("gen_ai.response.finish_reasons", "length"),
        ])
        .genai;
        assert_eq!(g.provider.as_deref(), Some("anthropic"));
        assert_eq!(g.input_tokens, Some(7));
        assert_eq!(g.output_tokens, Some(9));
        assert_eq!(g.cache_read_tokens, Some(3));
        assert_eq!(g.finish_reasons.as_deref(), Some("[\"length\"]"));

        // The current name wins whatever the order.
        let g = record_info(&[
            kv("gen_ai.usage.prompt_tokens", Value::IntValue(7)),
            kv("gen_ai.usage.input_tokens", Value::IntValue(8)),
            s("gen_ai.system", "old"),
            s("gen_ai.provider.name", "new"),
        ])
        .genai;
        assert_eq!(g.input_tokens, Some(8));
        assert_eq!(g.provider.as_deref(), Some("new"));
    }

    #[test]
    fn newer_genai_columns_current_and_legacy() {
        let g = record_info(&[
            kv(
                "gen_ai.usage.cache_creation.input_tokens",
                Value::IntValue(11),
            ),
            kv("gen_ai.usage.reasoning.output_tokens", Value::IntValue(12)),
            s("gen_ai.tool.name", "search"),
            s("gen_ai.tool.call.id", "call_1"),
            s("gen_ai.agent.name", "planner"),
            s("gen_ai.conversation.id", "conv-9"),
            kv(
                "gen_ai.response.time_to_first_chunk",
                Value::DoubleValue(0.25),
            ),
            s("error.type", "RateLimitError"),
            s("user.id", "u-1"),
            s("enduser.id", "old-u"),
        ])
        .genai;
        assert_eq!(g.cache_write_tokens, Some(11));
        assert_eq!(g.reasoning_tokens, Some(12));
        assert_eq!(g.tool_name.as_deref(), Some("search"));
        assert_eq!(g.tool_call_id.as_deref(), Some("call_1"));
        assert_eq!(g.agent_name.as_deref(), Some("planner"));
        assert_eq!(g.conversation_id.as_deref(), Some("conv-9"));
        assert_eq!(g.time_to_first_chunk_ms, Some(250.0));
        assert_eq!(g.error_type.as_deref(), Some("RateLimitError"));
        assert_eq!(g.user_id.as_deref(), Some("u-1"));

        let g = record_info(&[
            kv(
                "gen_ai.usage.cache_creation_input_tokens",
                Value::IntValue(5),
            ),
            kv("gen_ai.usage.reasoning_tokens", Value::IntValue(6)),
            kv("gen_ai.server.time_to_first_token", Value::IntValue(2)),
            s("enduser.id", "old-u"),
        ])
        .genai;
        assert_eq!(g.cache_write_tokens, Some(5));
        assert_eq!(g.reasoning_tokens, Some(6));
        assert_eq!(g.time_to_first_chunk_ms, Some(2000.0));
        assert_eq!(g.user_id.as_deref(), Some("old-u"));
    }

    #[test]
    fn bad_token_values_are_ignored() {
        let g = record_info(&[
            kv("gen_ai.usage.input_tokens", Value::IntValue(-1)),
            kv("gen_ai.usage.output_tokens", Value::DoubleValue(1.5)),
            kv(
                "gen_ai.usage.cache_read.input_tokens",
                Value::BoolValue(true),
            ),
        ])
        .genai;
        assert!(g.is_empty());
    }

    #[test]
    fn session_prefers_session_id_then_conversation() {
        let info = record_info(&[s("gen_ai.conversation.id", "c"), s("session.id", "s")]);
        assert_eq!(info.session_id.as_deref(), Some("s"));
        let res = resource_info(&[s("session.id", "from-resource")]);
        let mut rec = record_info(&[]);
        assert_eq!(rec.session(&res).as_deref(), Some("from-resource"));
    }

    #[test]
    fn resource_environment_falls_back_to_deprecated_name() {
        let r = resource_info(&[s("deployment.environment", "staging")]);
        assert_eq!(r.deployment_environment.as_deref(), Some("staging"));
        assert_eq!(r.service_name, UNKNOWN_SERVICE);
        let r = resource_info(&[
            s("deployment.environment", "old"),
            s("deployment.environment.name", "prod"),
            s("service.name", "api"),
            s("service.version", "1.2.3"),
        ]);
        assert_eq!(r.deployment_environment.as_deref(), Some("prod"));
        assert_eq!(r.service_name, "api");
        assert_eq!(r.service_version.as_deref(), Some("1.2.3"));
    }
}
