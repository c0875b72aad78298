//! The OpenTelemetry Python SDK exports to qyl over gRPC and HTTP/protobuf,
//! configured by nothing but the endpoint, and everything lands in DuckDB
//! normalised.

mod common;

use common::{count, run_python, string, Qyl};

fn sdk_roundtrip(protocol: &str, compression: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let mut qyl = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);
    let endpoint = match protocol {
        "grpc" => format!("http://{}", qyl.grpc),
        _ => format!("http://{}", qyl.otlp_http),
    };
    let mut env = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    if let Some(c) = compression {
        env.push(("OTEL_EXPORTER_OTLP_COMPRESSION", c));
    }
    let sent = run_python("send_otlp.py", &[protocol], &env);
    let db = qyl.stop_and_open();

    let service = sent["service"].as_str().unwrap();
    let trace_id = sent["trace_id"].as_str().unwrap();
    let llm = sent["llm_span_id"].as_str().unwrap();
    let root = sent["root_span_id"].as_str().unwrap();

    // Spans: ids in lowercase hex, tree intact, resource identity in columns.
    assert_eq!(count(&db, "SELECT count(*) FROM spans"), 3);
    let q = |col: &str, span: &str| {
        string(
            &db,
            &format!("SELECT {col}::VARCHAR FROM spans WHERE span_id = '{span}'"),
        )
    };
    assert_eq!(q("trace_id", llm).as_deref(), Some(trace_id));
    assert_eq!(q("parent_span_id", llm).as_deref(), Some(root));
    assert_eq!(q("parent_span_id", root), None);
    assert_eq!(q("name", llm).as_deref(), Some("chat gpt-4o"));
    assert_eq!(q("kind", llm).as_deref(), Some("CLIENT"));
    assert_eq!(q("kind", root).as_deref(), Some("SERVER"));
    assert_eq!(q("status_code", llm).as_deref(), Some("ERROR"));
    assert_eq!(q("status_message", llm).as_deref(), Some("rate limited"));
    assert_eq!(q("service_name", llm).as_deref(), Some(service));
    assert_eq!(q("service_version", llm).as_deref(), Some("1.4.2"));
    assert_eq!(q("deployment_environment", llm).as_deref(), Some("test"));
    assert_eq!(q("scope_name", llm).as_deref(), Some("qyl.tests"));
    assert_eq!(q("scope_version", llm).as_deref(), Some("0.1.0"));
    assert_eq!(q("session_id", root).as_deref(), Some("sess-42"));
    // GenAI columns from current and legacy attribute names.
    assert_eq!(q("gen_ai_provider", llm).as_deref(), Some("openai"));
    assert_eq!(q("gen_ai_operation", llm).as_deref(), Some("chat"));
    assert_eq!(q("gen_ai_request_model", llm).as_deref(), Some("gpt-4o"));
    assert_eq!(
        q("gen_ai_response_model", llm).as_deref(),
        Some("gpt-4o-2024-08-06")
    );
    assert_eq!(q("gen_ai_input_tokens", llm).as_deref(), Some("120"));
    assert_eq!(q("gen_ai_output_tokens", llm).as_deref(), Some("30"));
    assert_eq!(
        q("gen_ai_finish_reasons", llm).as_deref(),
        Some("[\"stop\"]")
    );
    assert!(
        count(
            &db,
            &format!("SELECT duration_ns FROM spans WHERE span_id = '{llm}'")
        ) > 0
    );
    // Every attribute kept, with its type.
    let attrs: serde_json::Value = serde_json::from_str(&q("attributes", llm).unwrap()).unwrap();
    assert_eq!(attrs["gen_ai.usage.prompt_tokens"], 120);
    assert_eq!(attrs["temperatures"], serde_json::json!([0.1, 0.2]));
    assert_eq!(attrs["retry"], false);
    let resource: serde_json::Value = serde_json::from_str(&q("resource", llm).unwrap()).unwrap();
    assert_eq!(resource["host.name"], "ci");
    assert_eq!(resource["telemetry.sdk.language"], "python");
    let events: serde_json::Value = serde_json::from_str(&q("events", llm).unwrap()).unwrap();
    assert_eq!(events[0]["name"], "gen_ai.content.prompt");
    assert_eq!(events[0]["attributes"]["gen_ai.prompt"], "hello");
    let links: serde_json::Value = serde_json::from_str(&q("links", llm).unwrap()).unwrap();
    assert_eq!(links[0]["trace_id"], sent["warm_trace_id"]);
    assert_eq!(links[0]["span_id"], sent["warm_span_id"]);
    assert_eq!(links[0]["attributes"]["link.reason"], "warmup");

    // Logs: body, severity, trace correlation, attributes.
    assert_eq!(count(&db, "SELECT count(*) FROM logs"), 1);
    let l = |col: &str| string(&db, &format!("SELECT {col}::VARCHAR FROM logs"));
    assert_eq!(l("body").as_deref(), Some("quota at 91%"));
    assert_eq!(l("severity_number").as_deref(), Some("13"));
    let severity = l("severity_text").unwrap_or_default();
    assert!(severity == "WARN" || severity == "WARNING", "{severity}");
    assert_eq!(l("trace_id").as_deref(), Some(trace_id));
    assert_eq!(l("span_id").as_deref(), Some(root));
    assert_eq!(l("service_name").as_deref(), Some(service));
    let log_attrs: serde_json::Value = serde_json::from_str(&l("attributes").unwrap()).unwrap();
    assert_eq!(log_attrs["tenant"], "acme");
    assert!(count(&db, "SELECT time_unix_nano FROM logs") > 1_600_000_000_000_000_000);

    // Metrics: one row per point, with kind, temporality and values.
    let m = |name: &str, col: &str| {
        string(
            &db,
            &format!("SELECT {col}::VARCHAR FROM metrics WHERE name = '{name}'"),
        )
    };
    assert_eq!(m("requests", "kind").as_deref(), Some("sum"));
    assert_eq!(m("requests", "value").as_deref(), Some("3.0"));
    assert_eq!(m("requests", "is_monotonic").as_deref(), Some("true"));
    assert_eq!(m("requests", "temporality").as_deref(), Some("cumulative"));
    assert_eq!(m("requests", "unit").as_deref(), Some("1"));
    assert_eq!(m("latency", "kind").as_deref(), Some("histogram"));
    assert_eq!(m("latency", "count").as_deref(), Some("1"));
    assert_eq!(m("latency", "sum").as_deref(), Some("42.0"));
    let hist: serde_json::Value =
        serde_json::from_str(&m("latency", "histogram").unwrap()).unwrap();
    assert_eq!(
        hist["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum::<u64>(),
        1
    );
    assert_eq!(m("queue.depth", "kind").as_deref(), Some("gauge"));
    assert_eq!(m("queue.depth", "value").as_deref(), Some("7.0"));
    let mattrs: serde_json::Value =
        serde_json::from_str(&m("requests", "attributes").unwrap()).unwrap();
    assert_eq!(mattrs["route"], "/chat");

    // Sequence numbers are unique across tables.
    assert_eq!(
        count(&db, "SELECT count(DISTINCT ingest_seq) FROM (SELECT ingest_seq FROM spans UNION ALL SELECT ingest_seq FROM logs UNION ALL SELECT ingest_seq FROM metrics)"),
        count(&db, "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM logs) + (SELECT count(*) FROM metrics)")
    );
}

#[test]
fn python_sdk_over_grpc_with_gzip() {
    sdk_roundtrip("grpc", Some("gzip"));
}

#[test]
fn python_sdk_over_http_protobuf() {
    sdk_roundtrip("http", None);
}

#[test]
fn python_sdk_over_http_protobuf_with_gzip() {
    sdk_roundtrip("http", Some("gzip"));
}
