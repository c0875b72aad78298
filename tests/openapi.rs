//! The OpenAPI document and the router must agree: every route qyl serves
//! is described, and every path described is one the real server answers.
//! A route added without its `#[utoipa::path]` (or listed but not mounted)
//! fails here rather than in a generated client.

mod common;

use common::Qyl;
use serde_json::{json, Value};

/// What the router serves. A new route belongs here and in
/// `src/api/openapi.rs`.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/traces"),
    ("get", "/api/v1/traces/{trace_id}"),
    ("get", "/api/v1/spans"),
    ("get", "/api/v1/logs"),
    ("get", "/api/v1/logs/histogram"),
    ("get", "/api/v1/metrics"),
    ("get", "/api/v1/metrics/{name}"),
    ("get", "/api/v1/services"),
    ("get", "/api/v1/storage"),
    ("get", "/api/v1/genai/stats"),
    ("get", "/api/v1/genai/models"),
    ("get", "/api/v1/genai/spans"),
    ("get", "/api/v1/genai/pricing"),
    ("get", "/api/v1/sessions"),
    ("get", "/api/v1/sessions/{session_id}"),
    ("get", "/api/v1/sessions/{session_id}/spans"),
    ("get", "/api/v1/sessions/{session_id}/conversation"),
    ("post", "/api/v1/sql"),
    ("get", "/api/v1/sql/queue"),
    ("get", "/api/v1/errors"),
    ("get", "/api/v1/errors/{id}"),
    ("patch", "/api/v1/errors/{id}"),
    ("post", "/api/v1/errors/merge"),
    ("get", "/api/v1/errors/histogram"),
    ("get", "/api/v1/errors/{id}/events"),
    ("get", "/api/v1/errors/{id}/triage"),
    ("post", "/api/v1/errors/{id}/notes"),
    ("get", "/api/v1/errors/{id}/events/{event_id}"),
    ("get", "/api/v1/releases"),
    ("post", "/api/v1/releases"),
    ("get", "/api/v1/releases/{version}"),
    ("get", "/api/v1/slo"),
    ("get", "/api/v1/slo/transitions"),
    ("get", "/api/v1/functions"),
    ("get", "/api/v1/functions/diagnostics"),
    ("get", "/api/v1/functions/{name}/invocations"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/live"),
    ("get", "/metrics"),
    ("get", "/health"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
];

/// Status and body (JSON, or null when there is none or it is not JSON).
async fn request(q: &Qyl, method: &str, path: &str) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("http://{}{path}", q.http);
    let req = match method {
        "get" => client.get(url),
        "post" => client
            .post(url)
            .header("content-type", "application/json")
            .body(json!({"sql": "SELECT 1"}).to_string()),
        "patch" => client
            .patch(url)
            .header("content-type", "application/json")
            .body(json!({"status": "resolved"}).to_string()),
        other => panic!("the test cannot send {other} yet"),
    };
    let resp = req.send().await.expect("sending the request");
    let status = resp.status().as_u16();
    // A live stream never ends: its status is the answer.
    if resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        == Some("text/event-stream")
    {
        return (status, Value::Null);
    }
    let bytes = resp.bytes().await.expect("reading the body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Every `$ref` in the document, so each can be checked to resolve.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_and_router_agree() {
    let dir = tempfile::tempdir().unwrap();
    let q = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);

    let resp = reqwest::get(format!("http://{}/api/v1/openapi.json", q.http))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let doc: Value =
        serde_json::from_slice(&resp.bytes().await.unwrap()).expect("the document is JSON");

    let version = doc["openapi"].as_str().expect("an openapi field");
    assert!(version.starts_with("3."), "openapi {version}");
    assert_eq!(doc["info"]["title"], "qyl");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is served but not in the document"
        );
    }

    // Every operation described is one the server answers: the fallback
    // (JSON "no such API route" under /api/v1, a plain-text 404 elsewhere) would
    // mean the document lists a route the router lacks.
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{trace_id}", &"ab".repeat(16))
            .replace("{name}", "no.such.metric")
            .replace("{session_id}", "no-such-session")
            .replace("{id}", "1")
            .replace("{event_id}", &"0".repeat(32))
            .replace("{version}", "1.0.0");
        assert!(!concrete.contains('{'), "untested path parameter in {path}");
        for method in item.as_object().unwrap().keys() {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let (status, body) = request(&q, method, &concrete).await;
            let message = body["error"]["message"].as_str().unwrap_or_default();
            let unrouted = status == 405
                || (status == 404 && (body.is_null() || message.starts_with("no such API route")));
            assert!(
                !unrouted,
                "{method} {path} is in the document but the router answers {status} {body}"
            );
            assert!(status < 500, "{method} {concrete}: {status} {body}");
            assert!(
                ROUTES.contains(&(method.as_str(), path.as_str())),
                "{method} {path} is documented but missing from ROUTES here"
            );
        }
    }
    assert_eq!(operations, ROUTES.len());

    // The list filters are documented, not just the path.
    let names: Vec<&str> = doc["paths"]["/api/v1/traces"]["get"]["parameters"]
        .as_array()
        .expect("parameters of /traces")
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for want in ["service", "since", "until", "status", "cursor", "limit"] {
        assert!(names.contains(&want), "/traces lacks {want}: {names:?}");
    }

    // Bearer auth everywhere but the health checks.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    assert_eq!(doc["paths"]["/health/ready"]["get"]["security"], json!([]));

    // Errors are described with their one shape.
    let not_found = &doc["paths"]["/api/v1/traces/{trace_id}"]["get"]["responses"]["404"];
    assert_eq!(
        not_found["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ApiError"
    );

    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(schemas.contains_key(name), "$ref {r} does not resolve");
    }
}
