//! Pulls the columns qyl indexes out of attribute lists: service identity from
//! the resource, session id, and the GenAI fields (current semantic-convention
//! names first, legacy names as fallbacks).
//!
//! Each rule set is a scan fed one attribute at a time, with a `match` on the
//! key, because this runs for every span and a lookup per key would scan the
//! list a dozen times. The scans take any [`AnyView`], so prost's decoded
//! types and the direct wire path (`spans`) share the rules.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::KeyValue;

use super::view::{AnyView, ValueRef};
use crate::model::GenAiFields;

/// What the resource says about who sent the data. The service's identity
/// is shared with every span of the resource rather than copied per span.
#[derive(Debug, Clone, Default)]
pub struct ResourceInfo {
    pub service_name: Arc<str>,
    pub service_version: Option<Arc<str>>,
    pub deployment_environment: Option<Arc<str>>,
    pub session_id: Option<Arc<str>>,
    pub conversation_id: Option<Arc<str>>,
    /// The resource attributes as JSON text.
    pub json: Arc<str>,
}

/// The service name used when a resource has none, as the OTel SDKs do.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The resource rules, fed one attribute at a time (in the order sent) by
/// whichever decoder walks the attributes.
#[derive(Debug, Default)]
pub struct ResourceScan {
    service_name: Option<String>,
    service_version: Option<String>,
    environment: Option<String>,
    legacy_env: Option<String>,
    session_id: Option<Arc<str>>,
    conversation_id: Option<Arc<str>>,
}

impl ResourceScan {
    pub fn attr<'a, V: AnyView<'a>>(&mut self, key: &str, v: V) {
        match key {
            "service.name" => self.service_name = string(v),
            "service.version" => self.service_version = string(v),
            "deployment.environment.name" => self.environment = string(v),
            "deployment.environment" => self.legacy_env = string(v),
            "session.id" => self.session_id = shared(v),
            "gen_ai.conversation.id" => self.conversation_id = shared(v),
            _ => {}
        }
    }

    /// `json` is the resource attributes as JSON text.
    pub fn finish(self, json: String) -> ResourceInfo {
        ResourceInfo {
            service_name: self
                .service_name
                .as_deref()
                .unwrap_or(UNKNOWN_SERVICE)
                .into(),
            service_version: self.service_version.map(Arc::from),
            deployment_environment: self.environment.or(self.legacy_env).map(Arc::from),
            session_id: self.session_id,
            conversation_id: self.conversation_id,
            json: json.into(),
        }
    }
}

pub fn resource_info(attrs: &[KeyValue]) -> ResourceInfo {
    let mut scan = ResourceScan::default();
    for kv in attrs {
        scan.attr(&kv.key, kv.value.as_ref());
    }
    scan.finish(super::jsonw::attrs_json(attrs))
}

/// Record-level attributes that qyl lifts into columns.
#[derive(Debug, Default)]
pub struct RecordInfo {
    pub genai: GenAiFields,
    /// `user.id`, else `enduser.id`.
    pub user_id: Option<Arc<str>>,
    pub session_id: Option<Arc<str>>,
    pub event_name: Option<String>,
}

impl RecordInfo {
    /// `session.id`, then `gen_ai.conversation.id`, on the record first and
    /// then on its resource.
    pub fn session(&mut self, resource: &ResourceInfo) -> Option<Arc<str>> {
        self.session_id
            .take()
            .or_else(|| resource.session_id.clone())
            .or_else(|| resource.conversation_id.clone())
    }
}

/// The record rules, fed one attribute at a time (in the order sent); the
/// last value of a key wins, current names win over legacy ones.
#[derive(Debug, Default)]
pub struct RecordScan {
    g: GenAiFields,
    user_id: Option<Arc<str>>,
    system: Option<String>,
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    legacy_cache_read: Option<i64>,
    legacy_cache_write: Option<i64>,
    legacy_reasoning: Option<i64>,
    legacy_ttfc: Option<f64>,
    enduser: Option<Arc<str>>,
    session_id: Option<Arc<str>>,
    conversation_id: Option<Arc<str>>,
    event_name: Option<String>,
}

impl RecordScan {
    pub fn attr<'a, V: AnyView<'a>>(&mut self, key: &str, v: V) {
        // Most keys are neither GenAI nor one of the few others: two
        // short matches instead of one of thirty arms.
        let first = key.as_bytes().first();
        if first == Some(&b'g') {
            if let Some(name) = key.strip_prefix("gen_ai.") {
                return self.genai(name, v);
            }
        }
        if !matches!(first, Some(b'e' | b'u' | b's')) {
            return;
        }
        match key {
            "error.type" => self.g.error_type = string(v),
            "user.id" => self.user_id = shared(v),
            "enduser.id" => self.enduser = shared(v),
            "session.id" => self.session_id = shared(v),
            "event.name" => self.event_name = string(v),
            _ => {}
        }
    }

    /// `gen_ai.{name}`.
    fn genai<'a, V: AnyView<'a>>(&mut self, name: &str, v: V) {
        let g = &mut self.g;
        match name {
            "provider.name" => g.provider = string(v),
            "system" => self.system = string(v),
            "operation.name" => g.operation = string(v),
            "request.model" => g.request_model = string(v),
            "response.model" => g.response_model = string(v),
            "usage.input_tokens" => g.input_tokens = tokens(v),
            "usage.prompt_tokens" => self.prompt_tokens = tokens(v),
            "usage.output_tokens" => g.output_tokens = tokens(v),
            "usage.completion_tokens" => self.completion_tokens = tokens(v),
            "usage.cache_read.input_tokens" => g.cache_read_tokens = tokens(v),
            "usage.cache_read_input_tokens" => self.legacy_cache_read = tokens(v),
            "response.finish_reasons" => g.finish_reasons = string_list_json(v),
            "usage.cost" => g.cost_usd = number(v).filter(|c| *c >= 0.0),
            "usage.cache_creation.input_tokens" => g.cache_write_tokens = tokens(v),
            "usage.cache_creation_input_tokens" => self.legacy_cache_write = tokens(v),
            "usage.reasoning.output_tokens" => g.reasoning_tokens = tokens(v),
            "usage.reasoning_tokens" => self.legacy_reasoning = tokens(v),
            "tool.name" => g.tool_name = string(v),
            "tool.call.id" => g.tool_call_id = string(v),
            "agent.name" => g.agent_name = string(v),
            // Seconds, as the GenAI conventions measure durations.
            "response.time_to_first_chunk" => g.time_to_first_chunk_ms = seconds_ms(v),
            "server.time_to_first_token" | "response.time_to_first_token" => {
                self.legacy_ttfc = seconds_ms(v)
            }
            "conversation.id" => self.conversation_id = shared(v),
            _ => {}
        }
    }

    pub fn finish(self) -> RecordInfo {
        let mut g = self.g;
        g.provider = g.provider.or(self.system);
        g.input_tokens = g.input_tokens.or(self.prompt_tokens);
        g.output_tokens = g.output_tokens.or(self.completion_tokens);
        g.cache_read_tokens = g.cache_read_tokens.or(self.legacy_cache_read);
        g.cache_write_tokens = g.cache_write_tokens.or(self.legacy_cache_write);
        g.reasoning_tokens = g.reasoning_tokens.or(self.legacy_reasoning);
        g.time_to_first_chunk_ms = g.time_to_first_chunk_ms.or(self.legacy_ttfc);
        g.conversation_id = self.conversation_id.as_deref().map(str::to_owned);
        RecordInfo {
            genai: g,
            user_id: self.user_id.or(self.enduser),
            session_id: self.session_id.or(self.conversation_id),
            event_name: self.event_name,
        }
    }
}

pub fn record_info(attrs: &[KeyValue]) -> RecordInfo {
    let mut scan = RecordScan::default();
    for kv in attrs {
        scan.attr(&kv.key, kv.value.as_ref());
    }
    scan.finish()
}

/// A non-empty string; numbers and bools are rendered, other types ignored.
fn string<'a, V: AnyView<'a>>(v: V) -> Option<String> {
    string_of(v.view())
}

fn string_of<A, K>(v: ValueRef<'_, A, K>) -> Option<String> {
    let s = match v {
        ValueRef::Str(s) => s.to_string(),
        ValueRef::Int(i) => i.to_string(),
        ValueRef::Double(d) => d.to_string(),
        ValueRef::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// Like [`string`], for the values that repeat span after span: the
/// session and user ids an application sets on every span of a session.
/// Each thread remembers the last few it made, so the spans of a session
/// share one allocation instead of holding a copy each.
fn shared<'a, V: AnyView<'a>>(v: V) -> Option<Arc<str>> {
    match v.view() {
        ValueRef::Str("") => None,
        ValueRef::Str(s) => Some(recent_strings::get(s)),
        other => string_of(other).map(Arc::from),
    }
}

mod recent_strings {
    use std::cell::RefCell;
    use std::sync::Arc;

    /// How many distinct values each thread keeps: an export interleaves
    /// the spans of a few sessions at most.
    const KEPT: usize = 4;

    thread_local! {
        static RECENT: RefCell<[Option<Arc<str>>; KEPT]> = const { RefCell::new([const { None }; KEPT]) };
    }

    /// `s` as a shared string: one this thread used recently, else a new
    /// one that replaces the least recently used.
    pub(super) fn get(s: &str) -> Arc<str> {
        RECENT.with(|recent| {
            let mut recent = recent.borrow_mut();
            let at = recent
                .iter()
                .position(|r| r.as_deref() == Some(s))
                .unwrap_or(KEPT - 1);
            // The one found (or the slot to reuse) moves to the front.
            recent[..=at].rotate_right(1);
            match &recent[0] {
                Some(found) if &**found == s => found.clone(),
                _ => {
                    let made: Arc<str> = Arc::from(s);
                    recent[0] = Some(made.clone());
                    made
                }
            }
        })
    }
}

fn number<'a, V: AnyView<'a>>(v: V) -> Option<f64> {
    match v.view() {
        ValueRef::Int(i) => Some(i as f64),
        ValueRef::Double(d) if d.is_finite() => Some(d),
        ValueRef::Str(s) => s.trim().parse::<f64>().ok().filter(|d| d.is_finite()),
        _ => None,
    }
}

/// A non-negative duration in seconds, as milliseconds.
fn seconds_ms<'a, V: AnyView<'a>>(v: V) -> Option<f64> {
    number(v).filter(|s| *s >= 0.0).map(|s| s * 1000.0)
}

/// Token counts arrive as ints from most SDKs, as doubles from JavaScript and
/// sometimes as strings; negative or fractional values are not counts.
fn tokens<'a, V: AnyView<'a>>(v: V) -> Option<i64> {
    match v.view() {
        ValueRef::Int(i) => Some(i),
        ValueRef::Double(d) if d.fract() == 0.0 && d.is_finite() => Some(d as i64),
        ValueRef::Str(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .filter(|t| *t >= 0)
}

fn string_list_json<'a, V: AnyView<'a>>(v: V) -> Option<String> {
    let mut out = String::from("[");
    let mut push = |i: usize, s: &str| {
        if i > 0 {
            out.push(',');
        }
        super::jsonw::push_str(&mut out, s);
    };
    match v.view() {
        ValueRef::Str(s) => push(0, s),
        ValueRef::Array(values) => {
            let mut n = 0;
            for v in values {
                if let ValueRef::Str(s) = v.view() {
                    push(n, s);
                    n += 1;
                }
            }
        }
        _ => return None,
    }
    out.push(']');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, ArrayValue};

    #[test]
    fn recent_strings_are_shared_until_four_others_replace_them() {
        let a = recent_strings::get("sess-a");
        assert!(Arc::ptr_eq(&a, &recent_strings::get("sess-a")));
        // A value in use stays while others come and go around it.
        for other in ["b", "c", "d", "e", "f"] {
            recent_strings::get(other);
            assert!(Arc::ptr_eq(&a, &recent_strings::get("sess-a")));
        }
        for other in ["b", "c", "d", "e"] {
            recent_strings::get(other);
        }
        let again = recent_strings::get("sess-a");
        assert_eq!(again, a);
        assert!(!Arc::ptr_eq(&a, &again));
    }

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
        let info = record_info(&[
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
        ]);
        assert_eq!(info.user_id.as_deref(), Some("u-1"));
        let g = info.genai;
        assert_eq!(g.cache_write_tokens, Some(11));
        assert_eq!(g.reasoning_tokens, Some(12));
        assert_eq!(g.tool_name.as_deref(), Some("search"));
        assert_eq!(g.tool_call_id.as_deref(), Some("call_1"));
        assert_eq!(g.agent_name.as_deref(), Some("planner"));
        assert_eq!(g.conversation_id.as_deref(), Some("conv-9"));
        assert_eq!(g.time_to_first_chunk_ms, Some(250.0));
        assert_eq!(g.error_type.as_deref(), Some("RateLimitError"));

        let info = record_info(&[
            kv(
                "gen_ai.usage.cache_creation_input_tokens",
                Value::IntValue(5),
            ),
            kv("gen_ai.usage.reasoning_tokens", Value::IntValue(6)),
            kv("gen_ai.server.time_to_first_token", Value::IntValue(2)),
            s("enduser.id", "old-u"),
        ]);
        assert_eq!(info.user_id.as_deref(), Some("old-u"));
        let g = info.genai;
        assert_eq!(g.cache_write_tokens, Some(5));
        assert_eq!(g.reasoning_tokens, Some(6));
        assert_eq!(g.time_to_first_chunk_ms, Some(2000.0));
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
        assert_eq!(&*r.service_name, UNKNOWN_SERVICE);
        let r = resource_info(&[
            s("deployment.environment", "old"),
            s("deployment.environment.name", "prod"),
            s("service.name", "api"),
            s("service.version", "1.2.3"),
        ]);
        assert_eq!(r.deployment_environment.as_deref(), Some("prod"));
        assert_eq!(&*r.service_name, "api");
        assert_eq!(r.service_version.as_deref(), Some("1.2.3"));
    }
}
