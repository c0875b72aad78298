//! The direct path against prost + `convert_traces`, on realistic exports,
//! random ones (raw wire bytes with fields in any order, sent twice, merged,
//! unknown, mistyped or nested past prost's limit, and their canonical prost
//! re-encodings) and mutations of all of these. For every body, either both
//! refuse it or both give the same records and rejections, and neither
//! panics. The random part runs a bounded, seeded count by default (a few
//! seconds); QYL_FUZZ_ITERS=N runs N cases, QYL_FUZZ_SEED picks the seed.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use super::decode_traces;
use crate::ingest::convert::{convert_traces, Converted};
use crate::model::SpanRecord;

fn prost_path(body: &[u8]) -> Option<Converted<SpanRecord>> {
    ExportTraceServiceRequest::decode(body)
        .ok()
        .map(convert_traces)
}

fn hex_dump(body: &[u8]) -> String {
    let shown = &body[..body.len().min(4096)];
    let mut s: String = shown.iter().map(|b| format!("{b:02x}")).collect();
    if shown.len() < body.len() {
        s.push('…');
    }
    s
}

/// Both paths on one body; panics on any difference. Returns whether the
/// body was accepted.
fn same(body: &[u8], what: &str) -> bool {
    let expected = prost_path(body);
    let got = decode_traces(body);
    match (&expected, &got) {
        (None, Err(_)) => false,
        (Some(e), Ok(g)) => {
            if e != g {
                let i = e.records.iter().zip(&g.records).position(|(a, b)| a != b);
                panic!(
                    "{what}: records differ (prost {} records / {} rejected, direct {} / {}); first different record {i:?}:\nprost  {:?}\ndirect {:?}\nbody {}",
                    e.records.len(),
                    e.rejected,
                    g.records.len(),
                    g.rejected,
                    i.map(|i| &e.records[i]),
                    i.map(|i| &g.records[i]),
                    hex_dump(body)
                );
            }
            true
        }
        (None, Ok(g)) => panic!(
            "{what}: prost refuses the body, the direct path accepts it ({} records)\nbody {}",
            g.records.len(),
            hex_dump(body)
        ),
        (Some(_), Err(e)) => panic!(
            "{what}: prost accepts the body, the direct path refuses it: {e}\nbody {}",
            hex_dump(body)
        ),
    }
}

// ---------------------------------------------------------------------------
// Realistic exports.

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}
fn s(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}
fn i(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}
fn any(v: Value) -> AnyValue {
    AnyValue { value: Some(v) }
}

fn realistic(spans: usize) -> ExportTraceServiceRequest {
    let resource = Resource {
        attributes: vec![
            s("service.name", "chat-api"),
            s("service.version", "3.14.1"),
            s("deployment.environment.name", "production"),
            s("deployment.environment", "prod-legacy"),
            s("host.name", "ip-10-0-3-17"),
            s("telemetry.sdk.name", "opentelemetry"),
            s("telemetry.sdk.language", "python"),
            s("telemetry.sdk.version", "1.38.0"),
            i("process.pid", 4242),
            kv(
                "process.command_args",
                Value::ArrayValue(ArrayValue {
                    values: vec![
                        any(Value::StringValue("uvicorn".into())),
                        any(Value::StringValue("app:main".into())),
                    ],
                }),
            ),
        ],
        ..Default::default()
    };
    let spans = (0..spans)
        .map(|n| {
            let mut attributes = vec![
                s("http.request.method", "POST"),
                s("url.path", "/v1/chat/completions?q=\"é\"\n\t\\"),
                i("http.response.status_code", 200),
                s("server.address", "api.internal.example"),
                s("session.id", &format!("sess-{}", n % 7)),
                s("user.id", "u-4f1c2a9e"),
                kv("sampled", Value::BoolValue(n % 2 == 0)),
                kv("ratio", Value::DoubleValue(0.25 + n as f64)),
            ];
            if n % 3 == 1 {
                attributes.extend([
                    s("gen_ai.provider.name", "openai"),
                    s("gen_ai.operation.name", "chat"),
                    s("gen_ai.request.model", "gpt-4o-mini"),
                    s("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
                    i("gen_ai.usage.input_tokens", 1834),
                    kv("gen_ai.usage.output_tokens", Value::DoubleValue(212.0)),
                    s("gen_ai.usage.cache_read.input_tokens", " 100 "),
                    kv("gen_ai.usage.cost", Value::DoubleValue(0.0042)),
                    kv("gen_ai.response.time_to_first_chunk", Value::DoubleValue(0.31)),
                    kv(
                        "gen_ai.response.finish_reasons",
                        Value::ArrayValue(ArrayValue {
                            values: vec![
                                any(Value::StringValue("stop".into())),
                                any(Value::IntValue(3)),
                                any(Value::StringValue("length ✓".into())),
                            ],
                        }),
                    ),
                    s("gen_ai.conversation.id", "conv-1"),
                ]);
            } else {
                attributes.extend([
                    s("db.system.name", "postgresql"),
                    s("db.query.text", "SELECT id FROM orders WHERE note = 'a\u{1}b' -- ünïcödé 🚀"),
                    kv("payload", Value::BytesValue(vec![0, 1, 2, 0xfe, 0xff])),
                    kv(
                        "nested",
                        Value::KvlistValue(KeyValueList {
                            values: vec![
                                s("a", "x"),
                                kv(
                                    "b",
                                    Value::ArrayValue(ArrayValue {
                                        values: vec![
                                            any(Value::DoubleValue(f64::NAN)),
                                            any(Value::DoubleValue(f64::INFINITY)),
                                            AnyValue { value: None },
                                            any(Value::KvlistValue(KeyValueList {
                                                values: vec![i("deep", -7)],
                                            })),
                                        ],
                                    }),
                                ),
                                KeyValue {
                                    key: "none".into(),
                                    value: None,
                                    ..Default::default()
                                },
                            ],
                        }),
                    ),
                ]);
            }
            let mut events = Vec::new();
            if n % 4 == 2 {
                events.push(span::Event {
                    time_unix_nano: 1_763_900_000_010_000_000,
                    name: "retry".into(),
                    attributes: vec![i("attempt", 2)],
                    dropped_attributes_count: 1,
                });
            }
            if n % 5 == 0 {
                events.push(span::Event {
                    time_unix_nano: 1_763_900_000_020_000_000,
                    name: "exception".into(),
                    attributes: vec![
                        s("exception.type", "psycopg.errors.UniqueViolation"),
                        s("exception.message", "duplicate key \"orders_pkey\""),
                        s(
                            "exception.stacktrace",
                            "Traceback (most recent call last):\n  File \"/srv/app.py\", line 8\nValueError: ∅\n",
                        ),
                    ],
                    ..Default::default()
                });
            }
            let links = if n % 6 == 3 {
                vec![span::Link {
                    trace_id: vec![7; 16],
                    span_id: vec![8; 8],
                    trace_state: "vendor=1".into(),
                    attributes: vec![s("link.kind", "follows")],
                    ..Default::default()
                }]
            } else {
                Vec::new()
            };
            let mut trace_id = [1u8; 16];
            trace_id[15] = (n / 8) as u8;
            let mut span_id = [2u8; 8];
            span_id[6] = (n >> 8) as u8;
            span_id[7] = n as u8;
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: if n % 8 == 0 { Vec::new() } else { vec![2, 2, 2, 2, 2, 2, 0, 1] },
                trace_state: if n % 9 == 0 { "k=v".into() } else { String::new() },
                name: format!("op {n} «ü»"),
                kind: (n % 7) as i32,
                start_time_unix_nano: 1_763_900_000_000_000_000 + n as u64,
                end_time_unix_nano: if n % 11 == 0 {
                    1
                } else {
                    1_763_900_000_042_000_000 + n as u64
                },
                attributes,
                dropped_attributes_count: (n % 3) as u32,
                events,
                dropped_events_count: (n % 2) as u32,
                links,
                dropped_links_count: 0,
                status: match n % 4 {
                    0 => None,
                    1 => Some(Status {
                        code: 2,
                        message: "boom \"x\"".into(),
                    }),
                    _ => Some(Status {
                        code: (n % 3) as i32,
                        message: String::new(),
                    }),
                },
                flags: 0x301,
            }
        })
        .collect::<Vec<_>>();
    let mut bad = spans[3].clone();
    bad.trace_id = vec![0; 16];
    let mut short = spans[4].clone();
    short.span_id = vec![1; 7];
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![
                    ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "opentelemetry.instrumentation.fastapi".into(),
                            version: "0.59b0".into(),
                            attributes: vec![s("scope.attr", "x")],
                            dropped_attributes_count: 0,
                        }),
                        spans,
                        schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
                    },
                    ScopeSpans {
                        scope: None,
                        spans: vec![bad, short],
                        ..Default::default()
                    },
                ],
                schema_url: String::new(),
            },
            ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope::default()),
                    spans: vec![Span {
                        trace_id: vec![9; 16],
                        span_id: vec![9; 8],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    }
}

#[test]
fn realistic_export_is_converted_the_same() {
    let body = realistic(120).encode_to_vec();
    assert!(same(&body, "realistic"));
    let c = decode_traces(&body).expect("a valid export");
    assert_eq!(c.records.len(), 121);
    assert_eq!(c.rejected, 2);
    assert!(c.error_message("spans").contains("trace_id"));
    let chat = &c.records[1];
    assert_eq!(chat.genai.provider.as_deref(), Some("openai"));
    assert_eq!(chat.genai.cache_read_tokens, Some(100));
    assert_eq!(chat.session_id.as_deref(), Some("sess-1"));
    assert_eq!(&*chat.service_name, "chat-api");
    assert_eq!(chat.deployment_environment.as_deref(), Some("production"));
    assert_eq!(&*c.records[120].service_name, "unknown_service");
    serde_json::from_str::<serde_json::Value>(&c.records[0].attributes).expect("valid JSON");
    serde_json::from_str::<serde_json::Value>(&c.records[0].events).expect("valid JSON");
}

#[test]
fn spans_of_one_user_share_its_id() {
    let c = decode_traces(&realistic(20).encode_to_vec()).expect("a valid export");
    let first = c.records[0].user_id.clone().expect("a user id");
    assert_eq!(&*first, "u-4f1c2a9e");
    for span in &c.records[1..20] {
        let user = span.user_id.as_ref().expect("a user id");
        assert!(
            std::sync::Arc::ptr_eq(&first, user),
            "one allocation for every span"
        );
    }
    // Seven sessions take turns: each span still has its own, whether or
    // not its text was still among the thread's recent ones.
    for (n, span) in c.records[..20].iter().enumerate() {
        assert_eq!(
            span.session_id.as_deref(),
            Some(&*format!("sess-{}", n % 7))
        );
    }
}

// ---------------------------------------------------------------------------
// Merges and limits, spelled out.

fn field(out: &mut Vec<u8>, tag: u32, wire_type: u8) {
    prost::encoding::encode_varint(u64::from(tag << 3 | u32::from(wire_type)), out);
}
fn len_field(out: &mut Vec<u8>, tag: u32, body: &[u8]) {
    field(out, tag, 2);
    prost::encoding::encode_varint(body.len() as u64, out);
    out.extend_from_slice(body);
}
fn varint_field(out: &mut Vec<u8>, tag: u32, v: u64) {
    field(out, tag, 0);
    prost::encoding::encode_varint(v, out);
}

/// A request of one span (ids included) whose other fields are `span`.
fn one_span(span: &[u8], resource: &[u8]) -> Vec<u8> {
    let mut sp = Vec::new();
    len_field(&mut sp, 1, &[1; 16]);
    len_field(&mut sp, 2, &[2; 8]);
    sp.extend_from_slice(span);
    let mut ss = Vec::new();
    len_field(&mut ss, 2, &sp);
    let mut rs = Vec::new();
    len_field(&mut rs, 2, &ss);
    rs.extend_from_slice(resource);
    let mut req = Vec::new();
    len_field(&mut req, 1, &rs);
    req
}

fn kv_bytes(key: &str, values: &[&[u8]]) -> Vec<u8> {
    let mut kv = Vec::new();
    for v in values {
        len_field(&mut kv, 2, v);
    }
    len_field(&mut kv, 1, key.as_bytes());
    kv
}

#[test]
fn merged_fields_as_prost_merges_them() {
    let arr = |items: &[&str]| {
        let mut a = Vec::new();
        for it in items {
            let mut v = Vec::new();
            len_field(&mut v, 1, it.as_bytes());
            len_field(&mut a, 1, &v);
        }
        let mut any = Vec::new();
        len_field(&mut any, 5, &a);
        any
    };
    let mut str_any = Vec::new();
    len_field(&mut str_any, 1, b"plain");
    let mut span = Vec::new();
    // A value sent in three pieces: arrays merge, a string in between resets.
    len_field(
        &mut span,
        9,
        &kv_bytes(
            "gen_ai.response.finish_reasons",
            &[&arr(&["a"]), &arr(&["b"])],
        ),
    );
    len_field(
        &mut span,
        9,
        &kv_bytes("x", &[&arr(&["a"]), &str_any, &arr(&["c", "d"])]),
    );
    // Status in two pieces, the name twice, the kind as an overlong varint.
    let mut st = Vec::new();
    varint_field(&mut st, 3, 2);
    len_field(&mut span, 15, &st);
    let mut st = Vec::new();
    len_field(&mut st, 2, b"late message");
    len_field(&mut span, 15, &st);
    len_field(&mut span, 5, b"first");
    len_field(&mut span, 5, b"second");
    field(&mut span, 6, 0);
    span.extend_from_slice(&[0x83, 0x80, 0x00]);
    // The resource after the spans, in two pieces.
    let mut resource = Vec::new();
    let mut r1 = Vec::new();
    len_field(&mut r1, 1, &kv_bytes("service.name", &[&str_any]));
    len_field(&mut resource, 1, &r1);
    let mut r2 = Vec::new();
    len_field(&mut r2, 1, &kv_bytes("service.version", &[&str_any]));
    len_field(&mut resource, 1, &r2);
    let body = one_span(&span, &resource);
    assert!(same(&body, "merges"));
    let r = &decode_traces(&body).expect("valid").records[0];
    assert_eq!(r.genai.finish_reasons.as_deref(), Some("[\"a\",\"b\"]"));
    assert!(
        r.attributes.contains("\"x\":[\"c\",\"d\"]"),
        "{}",
        r.attributes
    );
    assert_eq!(
        (r.status_code, r.status_message.as_deref()),
        ("ERROR", Some("late message"))
    );
    assert_eq!((r.name.as_str(), r.kind), ("second", "CLIENT"));
    assert_eq!(&*r.service_name, "plain");
    assert_eq!(r.service_version.as_deref(), Some("plain"));
}

#[test]
fn malformed_bodies_are_refused_by_both() {
    let mut kind_as_len = Vec::new();
    len_field(&mut kind_as_len, 6, &[2]);
    let mut bad_utf8 = Vec::new();
    len_field(&mut bad_utf8, 5, &[b'a', 0xff]);
    let mut end_group = Vec::new();
    field(&mut end_group, 40, 4);
    let mut strindex_key = Vec::new();
    len_field(&mut strindex_key, 9, &kv_bytes("k", &[&[0x40, 0x01]]));
    for (what, span) in [
        ("kind as a packed field", kind_as_len),
        ("invalid UTF-8 name", bad_utf8),
        ("lone end group", end_group),
        ("a strindex value", strindex_key),
    ] {
        same(&one_span(&span, &[]), what);
    }
    assert!(decode_traces(&one_span(&[0x32, 0x01, 0x02], &[])).is_err());
}

/// Attributes whose value nests `levels` arrays: prost's limit falls inside
/// the range, and both paths must put it at the same place.
#[test]
fn recursion_limit_at_the_same_depth() {
    for bottom in 0..3 {
        let mut accepted = Vec::new();
        for levels in 40..56 {
            // The innermost array holds an int, nothing, or an unknown
            // field, which prost refuses a level earlier than nothing.
            let mut arr = Vec::new();
            match bottom {
                0 => {
                    let mut leaf = Vec::new();
                    varint_field(&mut leaf, 3, 7);
                    len_field(&mut arr, 1, &leaf);
                }
                1 => varint_field(&mut arr, 40, 7),
                _ => {}
            }
            let mut v = Vec::new();
            len_field(&mut v, 5, &arr);
            for _ in 0..levels {
                let mut arr = Vec::new();
                len_field(&mut arr, 1, &v);
                let mut any = Vec::new();
                len_field(&mut any, 5, &arr);
                v = any;
            }
            let mut span = Vec::new();
            len_field(&mut span, 9, &kv_bytes("deep", &[&v]));
            accepted.push(same(&one_span(&span, &[]), "nested arrays"));
        }
        assert!(accepted.first() == Some(&true) && accepted.last() == Some(&false));
    }
    // Groups nest against the same budget.
    let mut accepted = Vec::new();
    for levels in 90..101u32 {
        let mut span = Vec::new();
        for l in 0..levels {
            field(&mut span, 100 + l, 3);
        }
        for l in (0..levels).rev() {
            field(&mut span, 100 + l, 4);
        }
        accepted.push(same(&one_span(&span, &[]), "nested groups"));
    }
    assert!(accepted.first() == Some(&true) && accepted.last() == Some(&false));
}

// ---------------------------------------------------------------------------
// Random exports, written field by field from the OTLP trace schema.

/// splitmix64: small, seeded, good enough to pick cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum M {
    Request,
    ResourceSpans,
    Resource,
    EntityRef,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KvList,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K {
    Varint,
    Fixed64,
    Fixed32,
    Bytes,
    Str,
    Msg(M),
}

/// (tag, kind, weight) of each known field.
fn schema(m: M) -> &'static [(u32, K, u32)] {
    use K::*;
    match m {
        M::Request => &[(1, Msg(M::ResourceSpans), 1)],
        M::ResourceSpans => &[
            (1, Msg(M::Resource), 3),
            (2, Msg(M::ScopeSpans), 4),
            (3, Str, 1),
        ],
        M::Resource => &[
            (1, Msg(M::KeyValue), 10),
            (2, Varint, 1),
            (3, Msg(M::EntityRef), 1),
        ],
        M::EntityRef => &[(1, Str, 1), (2, Str, 1), (3, Str, 1), (4, Str, 1)],
        M::ScopeSpans => &[(1, Msg(M::Scope), 2), (2, Msg(M::Span), 6), (3, Str, 1)],
        M::Scope => &[
            (1, Str, 3),
            (2, Str, 3),
            (3, Msg(M::KeyValue), 1),
            (4, Varint, 1),
        ],
        M::Span => &[
            (3, Str, 1),
            (4, Bytes, 3),
            (5, Str, 4),
            (6, Varint, 2),
            (7, Fixed64, 2),
            (8, Fixed64, 2),
            (9, Msg(M::KeyValue), 16),
            (10, Varint, 1),
            (11, Msg(M::Event), 2),
            (12, Varint, 1),
            (13, Msg(M::Link), 2),
            (14, Varint, 1),
            (15, Msg(M::Status), 3),
            (16, Fixed32, 1),
            (1, Bytes, 1),
            (2, Bytes, 1),
        ],
        M::Event => &[
            (1, Fixed64, 2),
            (2, Str, 2),
            (3, Msg(M::KeyValue), 4),
            (4, Varint, 1),
        ],
        M::Link => &[
            (1, Bytes, 2),
            (2, Bytes, 2),
            (3, Str, 1),
            (4, Msg(M::KeyValue), 3),
            (5, Varint, 1),
            (6, Fixed32, 1),
        ],
        M::Status => &[(2, Str, 2), (3, Varint, 2)],
        M::KeyValue => &[(1, Str, 4), (2, Msg(M::AnyValue), 4), (3, Varint, 1)],
        M::AnyValue => &[
            (1, Str, 6),
            (2, Varint, 2),
            (3, Varint, 4),
            (4, Fixed64, 3),
            (5, Msg(M::ArrayValue), 2),
            (6, Msg(M::KvList), 2),
            (7, Bytes, 2),
            (8, Varint, 1),
        ],
        M::ArrayValue => &[(1, Msg(M::AnyValue), 1)],
        M::KvList => &[(1, Msg(M::KeyValue), 1)],
    }
}

const KEYS: &[&str] = &[
    "service.name",
    "service.version",
    "deployment.environment.name",
    "deployment.environment",
    "session.id",
    "gen_ai.conversation.id",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.response.finish_reasons",
    "gen_ai.usage.cost",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.agent.name",
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.server.time_to_first_token",
    "gen_ai.response.time_to_first_token",
    "error.type",
    "user.id",
    "enduser.id",
    "event.name",
    "http.request.method",
    "db.query.text",
    "",
    "ünï\"cödé\\\n",
];

const STRINGS: &[&str] = &[
    "",
    "x",
    "chat",
    "gpt-4o-mini",
    "12",
    " 42 ",
    "-3",
    "1.5",
    "1e3",
    "inf",
    "NaN",
    "0.000001",
    "stop",
    "a\"b\\c\n\r\t\u{1}\u{1f}\u{7f}",
    "ünïcödé ✓ 🚀 ∅",
    "\u{2028}\u{feff}",
    "SELECT * FROM t WHERE x = 'y'",
];

const DOUBLES: &[f64] = &[
    0.0,
    -0.0,
    0.25,
    1.5,
    2.0,
    -1.0,
    1e300,
    -1e-300,
    123456789.0,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::MAX,
    5e-324,
];

/// Writes random messages of the trace schema. With `anomalies` off it
/// writes what a real (if odd) encoder could send: fields in any order,
/// sent more than once, unknown ones; with it on, also mistyped fields,
/// invalid UTF-8, broken groups, and nesting past the recursion limit.
struct Gen<'r> {
    rng: &'r mut Rng,
    /// Chance per field (per mille) of an anomaly; 0 writes none.
    anomalies: u64,
}

impl Gen<'_> {
    fn anomaly(&mut self) -> bool {
        self.anomalies > 0 && self.rng.next() % 1000 < self.anomalies
    }

    fn varint(&mut self, out: &mut Vec<u8>, v: u64) {
        if self.anomaly() {
            // Ten bytes: prost takes a last byte of 0 or 1 only.
            out.extend_from_slice(&[0xff; 9]);
            out.push(self.rng.below(4) as u8);
        } else if self.rng.chance(3) {
            // Overlong but valid: a 0x80 continuation before the end.
            let mut enc = Vec::new();
            prost::encoding::encode_varint(v, &mut enc);
            if enc.len() < 10 {
                let last = enc.len() - 1;
                enc[last] |= 0x80;
                enc.push(0);
            }
            out.extend_from_slice(&enc);
        } else {
            prost::encoding::encode_varint(v, out);
        }
    }

    fn key(&mut self, out: &mut Vec<u8>, tag: u32, wire_type: u8) {
        let k = u64::from(tag) << 3 | u64::from(wire_type);
        self.varint(out, k);
    }

    fn len(&mut self, out: &mut Vec<u8>, tag: u32, body: &[u8]) {
        self.key(out, tag, 2);
        self.varint(out, body.len() as u64);
        out.extend_from_slice(body);
    }

    fn number(&mut self) -> u64 {
        match self.rng.below(8) {
            0 => 0,
            1 => 1,
            2 => self.rng.below(200) as u64,
            3 => self.rng.next(),
            4 => (-(self.rng.below(1000) as i64)) as u64,
            5 => u32::MAX as u64 + self.rng.below(3) as u64,
            6 => self.rng.below(8) as u64,
            _ => 1_000 + self.rng.below(100_000) as u64,
        }
    }

    fn string(&mut self, m: M, tag: u32) -> Vec<u8> {
        if self.anomaly() {
            return match self.rng.below(3) {
                0 => vec![b'a', 0xff],
                1 => vec![0xe2, 0x82],
                _ => vec![0xed, 0xa0, 0x80],
            };
        }
        let s = if m == M::KeyValue && tag == 1 {
            self.rng.pick(KEYS)
        } else {
            self.rng.pick(STRINGS)
        };
        s.as_bytes().to_vec()
    }

    fn id(&mut self, expected: usize) -> Vec<u8> {
        let len = match self.rng.below(20) {
            0 => 0,
            1 => expected - 1,
            2 => expected + 1,
            3 => 16 + 8 - expected,
            _ => expected,
        };
        if self.rng.chance(5) {
            return vec![0; len];
        }
        (0..len).map(|_| self.rng.next() as u8).collect()
    }

    fn unknown(&mut self, m: M, out: &mut Vec<u8>, depth: u32) {
        let known = schema(m);
        let tag = loop {
            let t = *self
                .rng
                .pick(&[1u32, 2, 3, 9, 17, 19, 20, 33, 100, 1000, (1 << 29) - 1]);
            if !known.iter().any(|(k, _, _)| *k == t) {
                break t;
            }
        };
        match self.rng.below(5) {
            0 => {
                self.key(out, tag, 0);
                let n = self.number();
                self.varint(out, n);
            }
            1 => {
                self.key(out, tag, 1);
                out.extend_from_slice(&self.rng.next().to_le_bytes());
            }
            2 => {
                let body: Vec<u8> = (0..self.rng.below(6))
                    .map(|_| self.rng.next() as u8)
                    .collect();
                self.len(out, tag, &body);
            }
            3 => {
                self.key(out, tag, 5);
                out.extend_from_slice(&(self.rng.next() as u32).to_le_bytes());
            }
            _ => self.group(out, tag, depth),
        }
    }

    fn group(&mut self, out: &mut Vec<u8>, tag: u32, depth: u32) {
        self.key(out, tag, 3);
        for _ in 0..self.rng.below(3) {
            if depth < 4 && self.rng.chance(30) {
                let inner = 1 + self.rng.below(50) as u32;
                self.group(out, inner, depth + 1);
            } else {
                let inner = 1 + self.rng.below(50) as u32;
                self.key(out, inner, 0);
                let n = self.number();
                self.varint(out, n);
            }
        }
        let end = if self.anomaly() { tag + 1 } else { tag };
        self.key(out, end, 4);
    }

    /// A chain of arrays `levels` deep (or of groups), to probe the limit.
    fn deep(&mut self, out: &mut Vec<u8>) {
        if self.rng.chance(50) {
            // The innermost array holds a value, nothing, or an unknown
            // field, which prost refuses one level earlier than nothing.
            let mut arr = Vec::new();
            match self.rng.below(3) {
                0 => {
                    let mut leaf = Vec::new();
                    self.len(&mut leaf, 1, b"bottom");
                    self.len(&mut arr, 1, &leaf);
                }
                1 => self.unknown(M::ArrayValue, &mut arr, 0),
                _ => {}
            }
            let mut v = Vec::new();
            self.len(&mut v, 5, &arr);
            for _ in 0..38 + self.rng.below(14) {
                let mut arr = Vec::new();
                if self.rng.chance(10) {
                    self.unknown(M::ArrayValue, &mut arr, 0);
                }
                self.len(&mut arr, 1, &v);
                let mut any = Vec::new();
                self.len(&mut any, 5, &arr);
                v = any;
            }
            out.extend_from_slice(&v);
        } else {
            let levels = 88 + self.rng.below(12) as u32;
            for l in 0..levels {
                self.key(out, 50 + l, 3);
            }
            for l in (0..levels).rev() {
                self.key(out, 50 + l, 4);
            }
        }
    }

    fn value(&mut self, m: M, tag: u32, kind: K, out: &mut Vec<u8>, depth: u32) {
        if self.anomaly() {
            // A known field with another wire type (a "packed" scalar
            // among them).
            match kind {
                K::Varint | K::Fixed32 | K::Fixed64 => {
                    let mut packed = Vec::new();
                    prost::encoding::encode_varint(self.number(), &mut packed);
                    self.len(out, tag, &packed);
                }
                _ => {
                    self.key(out, tag, 0);
                    self.varint(out, 1);
                }
            }
            return;
        }
        match kind {
            K::Varint => {
                self.key(out, tag, 0);
                let n = self.number();
                self.varint(out, n);
            }
            K::Fixed64 => {
                self.key(out, tag, 1);
                let v = if m == M::AnyValue {
                    self.rng.pick(DOUBLES).to_bits()
                } else if self.rng.chance(80) {
                    1_763_900_000_000_000_000 + self.rng.below(1 << 40) as u64
                } else {
                    self.rng.next()
                };
                out.extend_from_slice(&v.to_le_bytes());
            }
            K::Fixed32 => {
                self.key(out, tag, 5);
                out.extend_from_slice(&(self.rng.next() as u32).to_le_bytes());
            }
            K::Bytes => {
                let b = match (m, tag) {
                    (M::Span | M::Link, 1) => self.id(16),
                    (M::Span | M::Link, 2 | 4) => self.id(8),
                    _ => (0..self.rng.below(12))
                        .map(|_| self.rng.next() as u8)
                        .collect(),
                };
                self.len(out, tag, &b);
            }
            K::Str => {
                let s = self.string(m, tag);
                self.len(out, tag, &s);
            }
            K::Msg(sub) => {
                let body = if sub == M::AnyValue && self.anomaly() {
                    let mut b = Vec::new();
                    self.deep(&mut b);
                    b
                } else {
                    self.message(sub, depth + 1)
                };
                self.len(out, tag, &body);
            }
        }
    }

    fn field_count(&mut self, m: M, depth: u32) -> usize {
        let nested = depth > 11;
        match m {
            M::Request => 1 + self.rng.below(3),
            M::ResourceSpans => 1 + self.rng.below(4),
            M::Resource => self.rng.below(10),
            M::ScopeSpans => 1 + self.rng.below(6),
            M::Span => 2 + self.rng.below(18),
            M::KeyValue => 1 + self.rng.below(3),
            M::AnyValue => [0, 1, 1, 1, 1, 1, 1, 2, 3][self.rng.below(9)],
            M::ArrayValue | M::KvList if nested => 0,
            M::ArrayValue | M::KvList => self.rng.below(4),
            _ => self.rng.below(5),
        }
    }

    fn message(&mut self, m: M, depth: u32) -> Vec<u8> {
        let fields = schema(m);
        let total: u32 = fields.iter().map(|f| f.2).sum();
        let mut parts: Vec<Vec<u8>> = Vec::new();
        for _ in 0..self.field_count(m, depth) {
            let mut out = Vec::new();
            if self.rng.chance(4) {
                self.unknown(m, &mut out, 0);
            } else {
                let mut w = self.rng.below(total as usize) as u32;
                let &(mut tag, mut kind, _) = fields
                    .iter()
                    .find(|f| {
                        if w < f.2 {
                            true
                        } else {
                            w -= f.2;
                            false
                        }
                    })
                    .unwrap_or(&fields[0]);
                if matches!(kind, K::Msg(M::ArrayValue | M::KvList)) && depth > 10 {
                    // Deep enough: an int instead.
                    (tag, kind) = (3, K::Varint);
                }
                self.value(m, tag, kind, &mut out, depth);
            }
            parts.push(out);
        }
        if m == M::Span && self.rng.chance(90) {
            for (tag, len) in [(1, 16), (2, 8)] {
                let mut out = Vec::new();
                let id = self.id(len);
                self.len(&mut out, tag, &id);
                let at = self.rng.below(parts.len() + 1);
                parts.insert(at, out);
            }
        }
        if m == M::KeyValue && self.rng.chance(70) {
            // Most pairs have a key and a value, in either order.
            let mut key = Vec::new();
            let k = self.string(m, 1);
            self.len(&mut key, 1, &k);
            let at = self.rng.below(parts.len() + 1);
            parts.insert(at, key);
        }
        parts.concat()
    }
}

/// A mutation of a valid body: most break it, some keep it valid in ways
/// no encoder would write.
fn mutate(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    if b.is_empty() {
        b.push(rng.next() as u8);
        return b;
    }
    for _ in 0..1 + rng.below(3) {
        if b.is_empty() {
            break;
        }
        let at = rng.below(b.len());
        match rng.below(9) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = rng.next() as u8,
            2 => b.truncate(at),
            3 => {
                let mut v = Vec::new();
                prost::encoding::encode_varint(rng.next() >> rng.below(64), &mut v);
                b.splice(at..at, v);
            }
            4 => {
                // An unknown field of each wire type.
                let tag = 17 + rng.below(100) as u64;
                let wire_type = *rng.pick(&[0u64, 1, 2, 3, 5]);
                let mut bytes = Vec::new();
                prost::encoding::encode_varint(tag << 3 | wire_type, &mut bytes);
                match wire_type {
                    0 => bytes.push(5),
                    1 => bytes.extend_from_slice(&[9; 8]),
                    2 => bytes.extend_from_slice(&[2, b'h', b'i']),
                    3 => prost::encoding::encode_varint(tag << 3 | 4, &mut bytes),
                    _ => bytes.extend_from_slice(&[1, 2, 3, 4]),
                }
                b.splice(at..at, bytes);
            }
            5 => {
                let end = (at + 1 + rng.below(32)).min(b.len());
                let copy = b[at..end].to_vec();
                let to = rng.below(b.len());
                b.splice(to..to, copy);
            }
            6 => {
                let end = (at + 1 + rng.below(16)).min(b.len());
                b.drain(at..end);
            }
            7 => b[at] = b[at].wrapping_add(1 + rng.below(3) as u8),
            _ => b[at] = b[at].wrapping_sub(1),
        }
    }
    b
}

fn fuzz_iters(default: u64) -> u64 {
    std::env::var("QYL_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_and_mutated_bodies_agree() {
    let iters = fuzz_iters(1500);
    let seed = std::env::var("QYL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_0715);
    let mut rng = Rng(seed);
    let realistic = realistic(12).encode_to_vec();
    // Bodies and those accepted by both, per kind: plain random, random
    // with anomalies, prost's re-encodings, mutations.
    let mut tally = [(0u64, 0u64); 4];
    let mut records = 0usize;
    let mut check = |kind: usize, body: &[u8], what: &str| {
        tally[kind].0 += 1;
        if same(body, what) {
            tally[kind].1 += 1;
            records += decode_traces(body).map(|c| c.records.len()).unwrap_or(0);
        }
    };
    for n in 0..iters {
        // One case in three with anomalies, at various rates: many
        // bodies then hold a single one.
        let anomalies = if n % 3 == 2 {
            *rng.pick(&[2, 5, 20])
        } else {
            0
        };
        let body = Gen {
            rng: &mut rng,
            anomalies,
        }
        .message(M::Request, 0);
        check(
            usize::from(anomalies > 0),
            &body,
            &format!("random #{n} (seed {seed})"),
        );
        // The same content as prost writes it, when prost takes it.
        if let Ok(req) = ExportTraceServiceRequest::decode(&body[..]) {
            check(
                2,
                &req.encode_to_vec(),
                &format!("re-encoded random #{n} (seed {seed})"),
            );
        }
        let base = if n % 4 == 0 {
            &realistic[..]
        } else {
            &body[..]
        };
        for m in 0..3 {
            let mutated = mutate(&mut rng, base);
            check(
                3,
                &mutated,
                &format!("mutation {m} of case #{n} (seed {seed})"),
            );
        }
    }
    let [plain, odd, canonical, mutated] = tally;
    eprintln!(
        "differential fuzz, {iters} cases, seed {seed}: bodies accepted by both / compared: random {}/{}, random with anomalies {}/{}, re-encoded {}/{}, mutated {}/{}; {records} records compared",
        plain.1, plain.0, odd.1, odd.0, canonical.1, canonical.0, mutated.1, mutated.0
    );
    // The generator must mostly write bodies worth comparing.
    assert!(plain.1 * 10 >= plain.0 * 9, "random: {plain:?}");
    assert!(mutated.1 * 20 >= mutated.0, "mutated: {mutated:?}");
}
