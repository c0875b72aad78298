//! What the benchmarks share. For ingest: one pre-encoded OTLP/HTTP
//! protobuf export of 512 spans whose trace and span ids are patched in
//! place, so clients cost little CPU and `ingest` and `live` measure the
//! same load. For reads: the generated span database (`generated`).
#![allow(dead_code)]

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

pub const SPANS_PER_REQUEST: usize = 512;
pub const SPANS_PER_TRACE: usize = 8;

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}
pub fn s(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}
pub fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

/// A 512-span export shaped like real traffic: HTTP server spans, DB and
/// GenAI client spans, a dozen attributes each, SDK resource attributes.
/// Ids are marker bytes that `Template` finds and overwrites per request.
///
/// Error-heavy variants for the error engine (BENCH_ERROR_EVERY, default
/// 50: one span in N has status ERROR; BENCH_EXCEPTIONS=1: those spans also
/// carry an `exception` event with a Python stack trace, each a different
/// id in the message so grouping has work to do).
pub fn template_request() -> ExportTraceServiceRequest {
    template_request_at(TEMPLATE_T0_NS, default_resource())
}

/// Where the template's spans start by default (2025-11-23).
pub const TEMPLATE_T0_NS: u64 = 1_763_900_000_000_000_000;

/// The SDK resource attributes of [`template_request`].
pub fn default_resource() -> Vec<KeyValue> {
    vec![
        s("service.name", "chat-api"),
        s("service.version", "3.14.1"),
        s("deployment.environment.name", "production"),
        s("host.name", "ip-10-0-3-17"),
        s("telemetry.sdk.name", "opentelemetry"),
        s("telemetry.sdk.language", "python"),
        s("telemetry.sdk.version", "1.38.0"),
    ]
}

/// [`template_request`] with spans from `t0_ns` on and another resource.
pub fn template_request_at(t0_ns: u64, resource: Vec<KeyValue>) -> ExportTraceServiceRequest {
    let error_every = env_or("BENCH_ERROR_EVERY", 50).max(1) as usize;
    let exceptions = env_or("BENCH_EXCEPTIONS", 0) != 0;
    let spans = (0..SPANS_PER_REQUEST)
        .map(|n| {
            let pos = n % SPANS_PER_TRACE;
            let mut attributes = vec![
                s("http.request.method", "POST"),
                s("url.path", "/v1/chat/completions"),
                i("http.response.status_code", 200),
                s("server.address", "api.internal.example"),
                i("server.port", 8443),
                s("user.id", "u-4f1c2a9e"),
                s("session.id", "sess-20261123-7f3a"),
                s("network.protocol.version", "1.1"),
            ];
            if pos == 1 {
                attributes.extend([
                    s("gen_ai.provider.name", "openai"),
                    s("gen_ai.operation.name", "chat"),
                    s("gen_ai.request.model", "gpt-4o-mini"),
                    s("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
                    i("gen_ai.usage.input_tokens", 1834),
                    i("gen_ai.usage.output_tokens", 212),
                ]);
            } else {
                attributes.extend([
                    s("db.system.name", "postgresql"),
                    s(
                        "db.query.text",
                        "SELECT id, status FROM orders WHERE customer_id = $1",
                    ),
                    s("thread.name", "worker-3"),
                ]);
            }
            Span {
                trace_id: marker(0xA0, n, 16),
                span_id: marker(0xB0, n, 8),
                parent_span_id: if pos == 0 {
                    Vec::new()
                } else {
                    marker(0xC0, n, 8)
                },
                name: if pos == 1 {
                    "chat gpt-4o-mini".into()
                } else {
                    "SELECT orders".into()
                },
                kind: if pos == 0 { 2 } else { 3 },
                start_time_unix_nano: t0_ns + n as u64 * 1_000_000,
                end_time_unix_nano: t0_ns + n as u64 * 1_000_000 + 42_000_000,
                attributes,
                events: if exceptions && n % error_every == 0 {
                    vec![exception_event(n, t0_ns)]
                } else if pos == 2 {
                    vec![span::Event {
                        time_unix_nano: t0_ns + 10_000_000,
                        name: "retry".into(),
                        attributes: vec![i("attempt", 2)],
                        ..Default::default()
                    }]
                } else {
                    Vec::new()
                },
                status: Some(Status {
                    code: if n % error_every == 0 { 2 } else { 0 },
                    message: String::new(),
                }),
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "opentelemetry.instrumentation.fastapi".into(),
                    version: "0.59b0".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// An `exception` span event as the Python SDK records it.
fn exception_event(n: usize, t0_ns: u64) -> span::Event {
    let trace = format!(
        "Traceback (most recent call last):\n  File \"/srv/app/api/routes.py\", line 88, in create_order\n    order = service.place(cart)\n  File \"/srv/app/orders/service.py\", line 41, in place\n    self.repo.save(order)\n  File \"/srv/app/orders/repo.py\", line 17, in save\n    cursor.execute(SQL, order.values())\n  File \"/usr/lib/python3.12/site-packages/psycopg/cursor.py\", line 732, in execute\n    raise ex.with_traceback(None)\npsycopg.errors.UniqueViolation: duplicate key value violates unique constraint \"orders_pkey\" (id=ord-{n})\n"
    );
    span::Event {
        time_unix_nano: t0_ns + 20_000_000,
        name: "exception".into(),
        attributes: vec![
            s("exception.type", "psycopg.errors.UniqueViolation"),
            s(
                "exception.message",
                &format!(
                    "duplicate key value violates unique constraint \"orders_pkey\" (id=ord-{n})"
                ),
            ),
            s("exception.stacktrace", &trace),
        ],
        ..Default::default()
    }
}

/// Unique, searchable bytes: tag, then the span number, then filler.
pub fn marker(tag: u8, n: usize, len: usize) -> Vec<u8> {
    let mut v = vec![tag, 0x5A, (n >> 8) as u8, n as u8];
    v.resize(len, 0x77);
    v
}

/// The encoded template plus where each id sits in it.
pub struct Template {
    pub bytes: Vec<u8>,
    pub trace_ids: Vec<usize>,
    pub span_ids: Vec<usize>,
    pub parent_ids: Vec<Option<usize>>,
}

impl Template {
    pub fn new() -> Template {
        Template::of(&template_request())
    }

    /// The template of `request`, which [`template_request_at`] made.
    pub fn of(request: &ExportTraceServiceRequest) -> Template {
        let bytes = request.encode_to_vec();
        let find = |needle: &[u8]| {
            bytes
                .windows(needle.len())
                .position(|w| w == needle)
                .expect("marker in the encoded request")
        };
        let mut t = Template {
            trace_ids: Vec::new(),
            span_ids: Vec::new(),
            parent_ids: Vec::new(),
            bytes: bytes.clone(),
        };
        for n in 0..SPANS_PER_REQUEST {
            t.trace_ids.push(find(&marker(0xA0, n, 16)));
            t.span_ids.push(find(&marker(0xB0, n, 8)));
            t.parent_ids
                .push((n % SPANS_PER_TRACE != 0).then(|| find(&marker(0xC0, n, 8))));
        }
        t
    }

    /// A copy with ids unique to (client, request number).
    pub fn request(&self, client: u8, k: u32) -> Bytes {
        let mut b = self.bytes.clone();
        for n in 0..SPANS_PER_REQUEST {
            let trace = (n / SPANS_PER_TRACE) as u16;
            let mut tid = [1u8; 16];
            tid[1] = client;
            tid[2..6].copy_from_slice(&k.to_be_bytes());
            tid[6..8].copy_from_slice(&trace.to_be_bytes());
            b[self.trace_ids[n]..self.trace_ids[n] + 16].copy_from_slice(&tid);
            let sid = |n: usize| {
                let mut sid = [2u8; 8];
                sid[1] = client;
                sid[2..6].copy_from_slice(&k.to_be_bytes());
                sid[6..8].copy_from_slice(&(n as u16).to_be_bytes());
                sid
            };
            b[self.span_ids[n]..self.span_ids[n] + 8].copy_from_slice(&sid(n));
            if let Some(p) = self.parent_ids[n] {
                let root = n - n % SPANS_PER_TRACE;
                b[p..p + 8].copy_from_slice(&sid(root));
            }
        }
        Bytes::from(b)
    }
}

/// The read-side benchmarks' database (`query`, `mcp`): spans generated
/// inside DuckDB, traces of 10 spans evenly over `window_ns` after `t0`
/// (24 h, or 10 minutes for the dense shape), across 10 services, one
/// GenAI call and ~1% errors per trace, so the read paths are measured on
/// the same data.
pub mod generated {
    use qyl::storage;

    pub const SPANS_PER_TRACE: u64 = 10;

    /// Generated inside DuckDB (vectorised), in time order as ingest would
    /// have stored it.
    pub fn generate(conn: &storage::Conn, spans: u64, t0: u64, window_ns: u64) {
        let traces = spans / SPANS_PER_TRACE;
        let gap = window_ns / traces.max(1);
        let sql = format!(
            "INSERT INTO resources SELECT r * 5 + v + 1,
                    '{{\"service.name\":\"svc-' || r || '\",\"host.name\":\"bench-1\"}}',
                    '1.0.' || v, 'prod', 'bench', NULL
                FROM range(10) t(r), range(5) u(v);
             INSERT INTO span_rows SELECT
                md5_number(CAST(i // 10 AS VARCHAR)) AS trace_id,
                md5_number_lower(CAST(i AS VARCHAR)) AS span_id,
                CASE WHEN i % 10 = 0 THEN NULL ELSE md5_number_lower(CAST(i - i % 10 AS VARCHAR)) END,
                NULL,
                CASE WHEN i % 10 = 0 THEN 'GET /api/' || ((i // 10) % 20) WHEN i % 10 = 5 THEN 'chat gpt-4o' ELSE 'op-' || (i % 10) END,
                CASE WHEN i % 10 = 0 THEN 'SERVER' WHEN i % 10 = 5 THEN 'CLIENT' ELSE 'INTERNAL' END,
                {t0} + (i // 10) * {gap} + (i % 10) * 1000000 AS start_ns,
                {t0} + (i // 10) * {gap} + (i % 10) * 1000000 + ((i * 7919) % 500 + 1) * 1000000,
                ((i * 7919) % 500 + 1) * 1000000,
                CASE WHEN i % 97 = 0 THEN 'ERROR' ELSE 'UNSET' END,
                NULL,
                'svc-' || ((i // 10) % 10),
                NULL, NULL, NULL, NULL, -- version, environment, scope: in resources
                'sess-' || ((i // 10) % 50000),
                CASE WHEN i % 10 = 5 THEN 'openai' END,
                CASE WHEN i % 10 = 5 THEN 'chat' END,
                CASE WHEN i % 10 = 5 THEN 'gpt-4o' END,
                CASE WHEN i % 10 = 5 THEN 'gpt-4o-2024-08-06' END,
                CASE WHEN i % 10 = 5 THEN 100 + i % 900 END,
                CASE WHEN i % 10 = 5 THEN 10 + i % 300 END,
                NULL,
                CASE WHEN i % 10 = 5 THEN '[\"stop\"]' END,
                NULL,
                '{{\"http.route\":\"/api/' || ((i // 10) % 20) || '\",\"user.id\":\"u' || ((i // 10) % 1000) || '\",\"op.index\":' || (i % 10) || '}}',
                NULL,
                NULL, NULL, 0, 0, 0,
                i + 1,
                NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                CASE WHEN i % 10 = 5 THEN 'priced' END,
                ((i // 10) % 10) * 5 + (i // 100000) % 5 + 1
             FROM range({spans}) t(i)"
        );
        // One thread, so row groups hold consecutive times as the writer's
        // appends do (parallel inserts interleave them and defeat zone maps).
        conn.execute_batch("SET threads = 1").expect("one thread");
        conn.execute_batch(&sql).expect("generating spans");
        conn.execute_batch("RESET threads").expect("threads");
        // The writer keeps the trace lookup as it commits; rows generated in
        // SQL get theirs the way a database from before the lookup does.
        conn.execute_batch(storage::writer::derived::trace_index::FILL_SQL)
            .expect("filling the trace lookup");
        in_commit_order(conn);
        conn.execute_batch("CHECKPOINT").expect("checkpointing");
    }

    /// Rewrites `trace_index` in time order. The writer appends a commit's
    /// rows after the previous commit's, so the table's row groups hold
    /// consecutive times and their min/max skip old ones; the fill groups
    /// by key, which leaves the rows in hash order.
    pub fn in_commit_order(conn: &storage::Conn) {
        conn.execute_batch(
            "SET threads = 1;
             CREATE TEMP TABLE trace_index_sorted AS
                 SELECT * FROM trace_index ORDER BY first_time_unix_nano, trace_key;
             DELETE FROM trace_index;
             INSERT INTO trace_index SELECT * FROM trace_index_sorted;
             DROP TABLE trace_index_sorted;
             RESET threads;",
        )
        .expect("ordering the trace lookup");
    }
}

/// Sends already-encoded protobuf bytes over gRPC, so gRPC and HTTP clients
/// do the same (small) amount of work.
pub mod grpc {
    use bytes::{Buf, BufMut, Bytes};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use prost::Message;

    #[derive(Clone, Default)]
    pub struct RawCodec;

    pub struct RawEncoder;
    pub struct ResponseDecoder;

    impl tonic::codec::Encoder for RawEncoder {
        type Item = Bytes;
        type Error = tonic::Status;
        fn encode(
            &mut self,
            item: Bytes,
            dst: &mut tonic::codec::EncodeBuf<'_>,
        ) -> Result<(), tonic::Status> {
            dst.put(item);
            Ok(())
        }
    }

    impl tonic::codec::Decoder for ResponseDecoder {
        type Item = ExportTraceServiceResponse;
        type Error = tonic::Status;
        fn decode(
            &mut self,
            src: &mut tonic::codec::DecodeBuf<'_>,
        ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
            let bytes = src.copy_to_bytes(src.remaining());
            ExportTraceServiceResponse::decode(bytes)
                .map(Some)
                .map_err(|e| tonic::Status::internal(e.to_string()))
        }
    }

    impl tonic::codec::Codec for RawCodec {
        type Encode = Bytes;
        type Decode = ExportTraceServiceResponse;
        type Encoder = RawEncoder;
        type Decoder = ResponseDecoder;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> ResponseDecoder {
            ResponseDecoder
        }
    }
}
