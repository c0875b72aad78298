use std::time::Instant;
use qyl::storage::{self, writer::append_span, StorageOptions};
fn main() {
    let path = std::env::args().nth(1).unwrap_or(":memory:".into());
    let conn = storage::open(&StorageOptions { path, memory_limit_mb: 0, threads: 0 }).unwrap();
    let recs: Vec<qyl::model::SpanRecord> = serde_json::from_str::<Vec<serde_json::Value>>("[]").map(|_| Vec::new()).unwrap();
    let _ = recs;
    let t = Instant::now();
    let mut v = Vec::new();
    for k in 0..800u64 { for n in 0..512u64 {
        let gen = n % 8 == 1;
        let attrs = if gen { r#"{"http.request.method":"POST","url.path":"/v1/chat/completions","http.response.status_code":200,"server.address":"api.internal.example","server.port":8443,"user.id":"u-4f1c2a9e","session.id":"sess-20261123-7f3a","network.protocol.version":"1.1","gen_ai.provider.name":"openai","gen_ai.operation.name":"chat","gen_ai.request.model":"gpt-4o-mini","gen_ai.response.model":"gpt-4o-mini-2024-07-18","gen_ai.usage.input_tokens":1834,"gen_ai.usage.output_tokens":212}"# } else { r#"{"http.request.method":"POST","url.path":"/v1/chat/completions","http.response.status_code":200,"server.address":"api.internal.example","server.port":8443,"user.id":"u-4f1c2a9e","session.id":"sess-20261123-7f3a","network.protocol.version":"1.1","db.system.name":"postgresql","db.query.text":"SELECT id, status FROM orders WHERE customer_id = $1","thread.name":"worker-3"}"# };
        let mut s = qyl::model::SpanRecord { trace_id: format!("{:032x}", (k << 20) + n / 8 + 1), span_id: format!("{:016x}", (k<<20) + n + 1), parent_span_id: (n%8!=0).then(|| format!("{:016x}", n)),
        name: "SELECT orders".into(), kind: "CLIENT", start_time_unix_nano: 1_763_900_000_000_000_000 + n*1000000, end_time_unix_nano: 1_763_900_000_000_000_000 + n*1000000 + 42_000_000, duration_ns: 42_000_000,
        status_code: "UNSET", service_name: "chat-api".into(), service_version: Some("3.14.1".into()), deployment_environment: Some("production".into()),
        scope_name: Some("opentelemetry.instrumentation.fastapi".into()), scope_version: Some("0.59b0".into()), session_id: Some("sess-20261123-7f3a".into()),
        attributes: attrs.into(), resource: r#"{"service.name":"chat-api","service.version":"3.14.1","deployment.environment.name":"production","host.name":"ip-10-0-3-17","telemetry.sdk.name":"opentelemetry","telemetry.sdk.language":"python","telemetry.sdk.version":"1.38.0"}"#.into(), events: "[]".into(), links: "[]".into(), ..Default::default() };
        if gen { s.genai.provider = Some("openai".into()); s.genai.input_tokens = Some(1834); s.genai.request_model = Some("gpt-4o-mini".into()); }
        v.push(s);
    }}
    eprintln!("gen {:?}", t.elapsed());
    let all = Instant::now();
    for (b, chunk) in v.chunks(8192).enumerate() {
        conn.execute_batch("BEGIN TRANSACTION").unwrap();
        let mut app = conn.appender("spans").unwrap();
        for (j, s) in chunk.iter().enumerate() { append_span(&mut app, s, (b*8192+j) as u64).unwrap(); }
        app.flush().unwrap(); drop(app);
        conn.execute_batch("COMMIT").unwrap();
    }
    println!("{:.0} rows/s", v.len() as f64 / all.elapsed().as_secs_f64());
}
