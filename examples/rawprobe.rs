use std::time::Instant;
use qyl::storage::{self, writer::append_span, StorageOptions};
use qyl::model::SpanRecord;
fn main() {
    let path = std::env::args().nth(1).unwrap_or(":memory:".into());
    let conn = storage::open(&StorageOptions { path, memory_limit_mb: 0, threads: 0 }).unwrap();
    let attrs = r#"{"http.request.method":"POST","url.path":"/v1/chat/completions","http.response.status_code":200,"server.address":"api.internal.example","server.port":8443,"user.id":"u-4f1c2a9e","session.id":"sess-20261123-7f3a","network.protocol.version":"1.1","db.system.name":"postgresql","db.query.text":"SELECT id, status FROM orders WHERE customer_id = $1","thread.name":"worker-3"}"#;
    let res = r#"{"service.name":"chat-api","service.version":"3.14.1","deployment.environment.name":"production","host.name":"ip-10-0-3-17","telemetry.sdk.name":"opentelemetry","telemetry.sdk.language":"python","telemetry.sdk.version":"1.38.0"}"#;
    let recs: Vec<SpanRecord> = (0..400_000u64).map(|n| SpanRecord {
        trace_id: format!("{:032x}", n / 8 + 1), span_id: format!("{:016x}", n + 1), parent_span_id: Some(format!("{:016x}", n)),
        name: "SELECT orders".into(), kind: "CLIENT", start_time_unix_nano: 1_763_900_000_000_000_000 + n, end_time_unix_nano: 1_763_900_000_000_000_000 + n + 42_000_000, duration_ns: 42_000_000,
        status_code: "UNSET", service_name: "chat-api".into(), service_version: Some("3.14.1".into()), deployment_environment: Some("production".into()),
        scope_name: Some("opentelemetry.instrumentation.fastapi".into()), scope_version: Some("0.59b0".into()), session_id: Some("sess-20261123-7f3a".into()),
        attributes: attrs.into(), resource: res.into(), events: "[]".into(), links: "[]".into(), ..Default::default() }).collect();
    let mut t_app = 0.0; let mut t_flush = 0.0; let mut t_commit = 0.0;
    let all = Instant::now();
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(400_000); let bs: usize = std::env::var("BS").ok().and_then(|v| v.parse().ok()).unwrap_or(8192);
    for (b, chunk) in recs[..n].chunks(bs).enumerate() {
        conn.execute_batch("BEGIN TRANSACTION").unwrap();
        let mut app = conn.appender("spans").unwrap();
        let t = Instant::now();
        for (j, s) in chunk.iter().enumerate() { append_span(&mut app, s, (b*8192+j) as u64).unwrap(); }
        t_app += t.elapsed().as_secs_f64();
        let t = Instant::now(); app.flush().unwrap(); drop(app); t_flush += t.elapsed().as_secs_f64();
        let t = Instant::now(); conn.execute_batch("COMMIT").unwrap(); t_commit += t.elapsed().as_secs_f64();
    }
    let secs = all.elapsed().as_secs_f64();
    let _ = n; println!("{:.0} rows/s  append {:.2}s flush {:.2}s commit {:.2}s", n as f64 / secs, t_app, t_flush, t_commit);
}
