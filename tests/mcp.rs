//! The MCP server at `/mcp`, driven the way coding assistants drive it: the
//! official Python `mcp` SDK over streamable HTTP (the current protocol
//! revision, and the older session handshake) against a real qyl holding
//! data sent by the Python OpenTelemetry SDK: exceptions raised by real code
//! (tests/py/send_errors.py) and GenAI spans from the real openai
//! instrumentation (tests/py/openai_app.py). Every tool is called and its
//! answer checked for content; auth refusals, the read-only token and bad
//! arguments are checked too.

mod common;

use common::{run_mcp_client, run_python, Qyl};
use serde_json::{json, Value};

const TOKEN: &str = "mcp-full-token";
const READ_TOKEN: &str = "mcp-read-token";
const SESSION: &str = "mcp-chat-1";
/// The protocol revision of this SDK that has no handshake.
const CURRENT_PROTOCOL: &str = "2026-07-28";

const TOOLS: [&str; 18] = [
    "find_similar_errors",
    "genai_stats",
    "get_conversation",
    "get_error",
    "get_error_events",
    "get_span",
    "get_trace",
    "list_errors",
    "list_functions",
    "list_sessions",
    "merge_errors",
    "overview",
    "release_health",
    "run_sql",
    "search_logs",
    "search_spans",
    "update_error",
    "what_changed",
];

/// Runs tests/py/mcp_client.py: connects with `token` in `mode`, lists the
/// tools, reads `resource` and makes `calls` in order.
fn mcp(q: &Qyl, token: &str, mode: &str, calls: Value, resource: Option<&str>) -> Value {
    mcp_with_prompts(q, token, mode, calls, resource, json!([]))
}

/// [`mcp`], also asking for `prompts` (`[{"name", "args"}]`).
fn mcp_with_prompts(
    q: &Qyl,
    token: &str,
    mode: &str,
    calls: Value,
    resource: Option<&str>,
    prompts: Value,
) -> Value {
    let plan = json!({"calls": calls, "resource": resource, "prompts": prompts});
    run_mcp_client(q, token, mode, &plan)
}

/// The answer of call `i`, which must have succeeded with structured
/// content, a text and a dashboard link.
fn ok(answers: &Value, i: usize) -> (&Value, &str) {
    let r = &answers["results"][i];
    assert_eq!(r["is_error"], false, "call {i}: {r:#}");
    let text = r["text"].as_str().unwrap_or_default();
    assert!(!text.is_empty(), "call {i} has no text: {r:#}");
    assert!(
        r["structured"].is_object(),
        "call {i} has no structuredContent: {r:#}"
    );
    (&r["structured"], text)
}

/// The text of call `i`, which must have been a tool error (`isError`).
fn tool_error(answers: &Value, i: usize) -> &str {
    let r = &answers["results"][i];
    assert_eq!(r["is_error"], true, "call {i} should fail: {r:#}");
    r["text"].as_str().unwrap_or_default()
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assistant_triages_errors_traces_and_a_conversation_over_mcp() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = Qyl::start(
        &dir.path().join("qyl.duckdb"),
        &[
            ("QYL_AUTH_TOKEN", TOKEN),
            ("QYL_AUTH_READ_TOKEN", READ_TOKEN),
        ],
    );
    let endpoint = format!("http://{}", q.otlp_http);
    let headers = format!("authorization=Bearer {TOKEN}");
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_HEADERS", headers.as_str()),
        (
            "OTEL_SEMCONV_STABILITY_OPT_IN",
            "gen_ai_latest_experimental",
        ),
        (
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
            "SPAN_ONLY",
        ),
    ];
    let errors_sent = run_python("send_errors.py", &[], &otel);
    let chat_sent = run_python("openai_app.py", &[SESSION], &otel);
    // The same kind of failure in another service's code: another group,
    // which find_similar_errors should find.
    let billing = reqwest::Client::new()
        .post(format!("{endpoint}/v1/traces"))
        .bearer_auth(TOKEN)
        .json(&billing_export())
        .send()
        .await
        .unwrap();
    assert_eq!(billing.status(), 200);
    let trace_id = errors_sent["trace_ids"][0].as_str().unwrap();
    let span_id = errors_sent["span_ids"][0].as_str().unwrap();

    // The current protocol: tools, the schema resource, the read tools.
    let first = mcp(
        &q,
        TOKEN,
        "auto",
        json!([
            {"tool": "overview", "args": {"window": "1h"}},
            {"tool": "list_errors", "args": {"query": "KeyError", "service": "shop"}},
            {"tool": "list_errors", "args": {"genai_only": true}},
            {"tool": "list_sessions", "args": {"user": "py-user"}},
            {"tool": "search_spans", "args": {"status": "error", "service": "shop", "limit": 2}},
            {"tool": "search_logs", "args": {"service": "shop", "severity_min": "INFO"}},
            {"tool": "genai_stats", "args": {"since": "1h", "session_id": SESSION}},
            {"tool": "list_functions", "args": {}},
            {"tool": "run_sql", "args": {"sql": "SELECT service_name, count(*) AS n FROM spans GROUP BY 1 ORDER BY 1"}},
            // Bad input: each a tool error naming what is wrong, or for an
            // unknown tool the protocol's invalid-params error.
            {"tool": "run_sql", "args": {"sql": "DELETE FROM spans"}},
            {"tool": "get_error", "args": {"id": "seven"}},
            {"tool": "get_error", "args": {"id": 999999}},
            {"tool": "list_errors", "args": {"limitt": 3}},
            {"tool": "get_trace", "args": {"trace_id": "not-a-trace"}},
            {"tool": "get_trace", "args": {"trace_id": "0123456789abcdef0123456789abcdef"}},
            {"tool": "overview", "args": {"window": "forever"}},
            {"tool": "no_such_tool", "args": {}},
        ]),
        Some("qyl://schema/sql"),
    );
    assert_eq!(first["protocol_version"], CURRENT_PROTOCOL, "{first:#}");
    assert_eq!(first["server_name"], "qyl");
    let tools = first["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, TOOLS);
    for t in tools {
        let name = t["name"].as_str().unwrap();
        assert_eq!(t["has_output_schema"], true, "{name}");
        let read_only = t["annotations"]["readOnlyHint"].as_bool();
        match name {
            "update_error" => {
                assert_eq!(read_only, Some(false));
                assert_eq!(t["annotations"]["destructiveHint"], false);
            }
            "merge_errors" => {
                assert_eq!(read_only, Some(false));
                assert_eq!(t["annotations"]["destructiveHint"], true);
            }
            _ => assert_eq!(read_only, Some(true), "{name}: {t}"),
        }
    }
    assert_eq!(strs(&first["resources"]), ["qyl://schema/sql"]);
    assert!(first["resource_text"]
        .as_str()
        .unwrap()
        .contains("CREATE TABLE spans"));

    let base = format!("http://{}", q.http);
    let (overview, text) = ok(&first, 0);
    let new_types: Vec<&str> = overview["new_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["error_type"].as_str().unwrap_or_default())
        .collect();
    assert!(new_types.contains(&"KeyError"), "{overview:#}");
    assert!(new_types.contains(&"OrderRejected"), "{overview:#}");
    assert_eq!(overview["genai"]["requests"], 3, "{overview:#}");
    assert!(
        overview["latest_release"]["version"].is_string(),
        "{overview:#}"
    );
    assert!(text.contains("KeyError") && text.contains(&base), "{text}");

    let (errors, text) = ok(&first, 1);
    let items = errors["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{errors:#}");
    let key_error = &items[0];
    assert_eq!(key_error["error_type"], "KeyError");
    assert_eq!(key_error["count"], 3, "one group for the three users");
    let key_error_id = key_error["id"].as_i64().unwrap();
    assert_eq!(
        key_error["link"],
        format!("{base}/errors/{key_error_id}").as_str()
    );
    assert!(
        text.contains(&format!("#{key_error_id} KeyError")),
        "{text}"
    );
    let (genai_errors, _) = ok(&first, 2);
    assert_eq!(genai_errors["items"], json!([]), "no GenAI call failed");

    let (sessions, _) = ok(&first, 3);
    assert_eq!(sessions["items"][0]["session_id"], SESSION);
    assert_eq!(sessions["items"][0]["genai_requests"], 3);

    let (spans, text) = ok(&first, 4);
    assert_eq!(spans["items"].as_array().unwrap().len(), 2);
    assert!(
        spans["next_cursor"].is_string(),
        "a third failed span exists"
    );
    assert!(text.contains("cursor="), "{text}");

    let (logs, text) = ok(&first, 5);
    let patterns: Vec<(&str, u64)> = logs["patterns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["pattern"].as_str().unwrap(), p["count"].as_u64().unwrap()))
        .collect();
    assert!(patterns.contains(&("fetching user <*>", 3)), "{patterns:?}");
    assert!(text.contains("3× fetching user <*>"), "{text}");

    let (stats, _) = ok(&first, 6);
    let usage = chat_sent["usage"].as_array().unwrap();
    let prompt: i64 = usage.iter().map(|u| u["prompt"].as_i64().unwrap()).sum();
    assert_eq!(stats["totals"]["requests"], 3);
    assert_eq!(stats["totals"]["input_tokens"], prompt);
    assert_eq!(stats["totals"]["requests_without_cost"], 1);

    let (functions, _) = ok(&first, 7);
    assert_eq!(functions["functions"], json!([]));

    let (sql, _) = ok(&first, 8);
    assert_eq!(
        sql["rows"],
        json!([["billing", 7], ["py-chat", 6], ["shop", 7]]),
        "{sql:#}"
    );

    // run_sql refuses a write with the words POST /api/v1/sql uses.
    let rest = reqwest::Client::new()
        .post(format!("{base}/api/v1/sql"))
        .bearer_auth(TOKEN)
        .json(&json!({"sql": "DELETE FROM spans"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 400);
    let rest: Value = rest.json().await.unwrap();
    assert_eq!(tool_error(&first, 9), rest["error"]["message"]);

    let wrong_type = tool_error(&first, 10);
    assert!(wrong_type.contains("`id`"), "{wrong_type}");
    assert!(tool_error(&first, 11).contains("no error group 999999"));
    assert!(tool_error(&first, 12).contains("limitt"));
    assert!(tool_error(&first, 13).starts_with("trace_id:"));
    assert!(tool_error(&first, 14).contains("no trace"));
    assert!(tool_error(&first, 15).starts_with("window:"));
    let unknown = &first["results"][16]["protocol_error"];
    assert_eq!(unknown["code"], -32602, "{unknown}");
    assert!(unknown["message"]
        .as_str()
        .unwrap()
        .contains("\"no_such_tool\""));

    // An older client: the initialize handshake and a session.
    let group = key_error_id;
    let second = mcp(
        &q,
        TOKEN,
        "legacy",
        json!([
            {"tool": "get_error", "args": {"id": group}},
            {"tool": "get_error_events", "args": {"id": group, "limit": 2}},
            {"tool": "get_trace", "args": {"trace_id": trace_id}},
            {"tool": "get_trace", "args": {"trace_id": trace_id, "mode": "critical_path"}},
            {"tool": "get_trace", "args": {"trace_id": trace_id, "mode": "errors"}},
            {"tool": "get_span", "args": {"trace_id": trace_id, "span_id": span_id}},
            {"tool": "get_conversation", "args": {"session_id": SESSION}},
            {"tool": "list_errors", "args": {"query": "OrderRejected"}},
            {"tool": "find_similar_errors", "args": {"id": group}},
            {"tool": "release_health", "args": {"service": "shop"}},
            {"tool": "release_health", "args": {"version": "9.9.9"}},
            {"tool": "what_changed", "args": {"service": "billing"}},
            {"tool": "what_changed", "args": {"id": group, "window": "1h"}},
            {"tool": "what_changed", "args": {"window": "1h"}},
        ]),
        None,
    );
    let handshake = second["protocol_version"].as_str().unwrap();
    assert_ne!(
        handshake, CURRENT_PROTOCOL,
        "legacy mode negotiates a session revision"
    );
    assert!(handshake.starts_with("20"), "{handshake}");

    let (report, text) = ok(&second, 0);
    assert_eq!(report["group"]["error_type"], "KeyError");
    let chain = report["exceptions"].as_array().unwrap();
    assert_eq!(chain[0]["type_name"], "KeyError", "{report:#}");
    let frames = chain[0]["frames"].as_array().unwrap();
    let in_app: Vec<bool> = frames.iter().map(|f| f["in_app"] == true).collect();
    assert!(in_app[0], "{frames:#?}");
    assert!(
        in_app.windows(2).all(|w| w[0] || !w[1]),
        "in-app frames come first: {in_app:?}"
    );
    // Innermost first: where the KeyError was raised, then its caller.
    assert_eq!(frames[0]["function"], "load_user");
    assert_eq!(frames[1]["function"], "handle");
    assert!(frames[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("tests/py/send_errors.py"));
    let releases = report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "release")
        .unwrap();
    assert_eq!(releases["values"], json!([{"value": "2.0.0", "count": 3}]));
    let crumbs = report["latest_event"]["breadcrumbs"].as_array().unwrap();
    assert!(
        crumbs.iter().any(|b| b["message"] == "SELECT users"),
        "{crumbs:#?}"
    );
    let latest_trace = report["latest_event"]["trace_id"].as_str().unwrap();
    assert!(strs(&errors_sent["trace_ids"]).contains(&latest_trace));
    assert_eq!(
        report["trace_link"],
        format!("{base}/traces/{latest_trace}").as_str()
    );
    assert!(text.contains("[app] #0 send_errors.py.load_user"), "{text}");

    let (events, _) = ok(&second, 1);
    assert_eq!(events["items"].as_array().unwrap().len(), 2);
    assert!(events["next_cursor"].is_string());

    let (summary, text) = ok(&second, 2);
    assert_eq!(summary["trace_id"], trace_id);
    assert_eq!(summary["span_count"], 2);
    let root = &summary["spans"][0];
    assert_eq!(root["span_id"], span_id);
    assert!(strs(&root["why"]).contains(&"error"), "{summary:#}");
    assert!(text.contains("✗ GET /users/{id}"), "{text}");
    let (critical, _) = ok(&second, 3);
    assert_eq!(critical["spans"].as_array().unwrap().len(), 2);
    assert_eq!(critical["spans"][1]["name"], "SELECT users");
    let (failed, _) = ok(&second, 4);
    let failed = failed["spans"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["status_code"], "ERROR");
    assert_eq!(failed[0]["hidden_descendants"], 1);

    let (span, _) = ok(&second, 5);
    assert_eq!(span["span"]["span_id"], span_id);
    assert_eq!(span["span"]["attributes"]["enduser.id"], "u-7");
    let bodies: Vec<&str> = span["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(bodies.contains(&"lookup of u-7 failed"), "{bodies:?}");

    let (conversation, text) = ok(&second, 6);
    assert_eq!(conversation["message_count"], 7, "{conversation:#}");
    assert_eq!(conversation["user_turns"], 3);
    let roles: Vec<&str> = conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant"
        ]
    );
    let calls = conversation["calls"].as_array().unwrap();
    let models: Vec<&str> = calls.iter().map(|c| c["model"].as_str().unwrap()).collect();
    assert_eq!(
        models,
        [
            "gpt-4o-mini-2024-07-18",
            "gpt-4o-mini-2024-07-18",
            "mystery-model"
        ]
    );
    assert_eq!(calls[0]["input_tokens"], usage[0]["prompt"]);
    assert!(
        text.contains("assistant (mystery-model): echo: ?"),
        "{text}"
    );
    assert_eq!(
        conversation["link"],
        format!("{base}/sessions/{SESSION}").as_str()
    );
    let (orders, _) = ok(&second, 7);
    let order_id = orders["items"][0]["id"].as_i64().unwrap();
    let (similar, text) = ok(&second, 8);
    let first_similar = &similar["similar"][0];
    assert_eq!(
        first_similar["group"]["error_type"], "KeyError",
        "{similar:#}"
    );
    assert_eq!(first_similar["group"]["services"], json!(["billing"]));
    assert_eq!(first_similar["message_similarity"], 1.0, "same template");
    assert!(
        strs(&first_similar["shared_parts"]).contains(&"type:KeyError"),
        "{similar:#}"
    );
    assert!(text.contains("billing"), "{text}");
    let (release, text) = ok(&second, 9);
    assert_eq!(release["release"]["version"], "2.0.0");
    let new_in_release: Vec<&str> = release["new_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["error_type"].as_str().unwrap())
        .collect();
    assert!(new_in_release.contains(&"KeyError"), "{release:#}");
    assert!(text.contains("Release 2.0.0 of shop"), "{text}");
    assert!(tool_error(&second, 10).starts_with("version:"));
    // Release 1.1 on host h2 is what the billing failures have in common.
    let (changed, text) = ok(&second, 11);
    let found: Vec<(&str, &str, bool)> = changed["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap(),
                c["value"].as_str().unwrap(),
                c["new_value"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [("host", "h2", true), ("release", "1.1", true)],
        "{changed:#}"
    );
    assert_eq!(changed["failing_sampled"], 2);
    assert_eq!(changed["baseline_sampled"], 5);
    assert!(text.contains("release=1.1"), "{text}");
    let (group_changed, _) = ok(&second, 12);
    assert_eq!(group_changed["failing_sampled"], 3, "{group_changed:#}");
    let release = group_changed["changed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "release")
        .unwrap();
    assert_eq!(release["value"], "2.0.0");
    assert_eq!(release["failing_count"], 3);
    assert!(tool_error(&second, 13).contains("exactly one"));

    // The read-only token reads, and the tools that change state refuse it.
    let read = mcp_with_prompts(
        &q,
        READ_TOKEN,
        "auto",
        json!([
            {"tool": "get_error", "args": {"id": group}},
            {"tool": "update_error", "args": {"id": group, "status": "resolved"}},
            {"tool": "merge_errors", "args": {"target": group, "sources": [order_id]}},
        ]),
        None,
        json!([
            {"name": "triage_error", "args": {"id": group.to_string()}},
            {"name": "investigate_cost_spike", "args": {"window": "1h"}},
        ]),
    );
    assert_eq!(
        strs(&read["prompts"]),
        ["investigate_cost_spike", "triage_error"]
    );
    let triage = read["prompt_texts"][0].as_str().unwrap();
    assert!(
        triage.contains("[app] #0 send_errors.py.load_user"),
        "{triage}"
    );
    assert!(triage.contains("get_trace"), "{triage}");
    let cost = read["prompt_texts"][1].as_str().unwrap();
    assert!(
        cost.contains("mystery-model") && cost.contains(SESSION),
        "{cost}"
    );
    ok(&read, 0);
    assert!(tool_error(&read, 1).contains("read-only"));
    assert!(tool_error(&read, 2).contains("read-only"));

    // The full token changes them, through the writer.
    let changes = mcp(
        &q,
        TOKEN,
        "auto",
        json!([
            {"tool": "update_error", "args": {"id": group, "status": "resolved", "in_next_release": true}},
            {"tool": "update_error", "args": {"id": group, "status": "loud"}},
            {"tool": "merge_errors", "args": {"target": group, "sources": [order_id]}},
            {"tool": "update_error", "args": {"id": order_id, "status": "archived"}},
            {"tool": "get_error", "args": {"id": order_id}},
            {"tool": "update_error", "args": {"id": group, "note": "  Caused by the 1.1 cache change; fix in #412.  "}},
            {"tool": "update_error", "args": {"id": group}},
            {"tool": "update_error", "args": {"id": group, "note": "   "}},
            {"tool": "get_error", "args": {"id": group}},
        ]),
        None,
    );
    let (updated, _) = ok(&changes, 0);
    assert_eq!(updated["status"], "resolved");
    assert_eq!(updated["substatus"], "in_next_release");
    assert!(tool_error(&changes, 1).contains("`status`"));
    let (merged, text) = ok(&changes, 2);
    assert_eq!(merged["id"], group);
    assert_eq!(merged["count"], 4, "3 KeyErrors + 1 OrderRejected");
    assert!(text.contains(&format!("Merged #{order_id} into #{group}")));
    assert!(tool_error(&changes, 3).contains("merged into another"));
    let (source, _) = ok(&changes, 4);
    assert_eq!(source["group"]["status"], "merged");
    assert_eq!(source["merged_into"], group);
    let (_, text) = ok(&changes, 5);
    assert!(text.starts_with("Note added."), "{text}");
    assert!(tool_error(&changes, 6).contains("a note, or both"));
    assert!(tool_error(&changes, 7).contains("note: text"));
    let (noted, text) = ok(&changes, 8);
    let notes = noted["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{noted:#}");
    assert_eq!(
        notes[0]["author"], "qyl-tests",
        "signed by the client's name"
    );
    assert_eq!(
        notes[0]["text"],
        "Caused by the 1.1 cache change; fix in #412."
    );
    assert!(text.contains("qyl-tests: Caused by the 1.1"), "{text}");

    // And over REST the group is the same.
    let rest: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/errors/{group}"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["count"], 4);
    assert_eq!(rest["status"], "resolved");
    assert_eq!(rest["notes"][0]["author"], "qyl-tests");
    q.stop();
}

/// An OTLP/JSON export of a billing service: a quiet baseline two hours
/// ago (release 1.0 on host h1), then release 1.1 on host h2 failing now,
/// once with a KeyError raised in billing code.
fn billing_export() -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let attr = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let resource = |version: &str, host: &str| {
        json!({"attributes": [
            attr("service.name", "billing"),
            attr("service.version", version),
            attr("host.name", host),
        ]})
    };
    let span = |i: u64, at: u64, failed: bool| {
        json!({
            "traceId": format!("b1110000000000000000000000000{i:03x}"),
            "spanId": format!("b111000000000{i:03x}"),
            "name": "POST /charge",
            "kind": 2,
            "startTimeUnixNano": (at - 2_000_000).to_string(),
            "endTimeUnixNano": at.to_string(),
            "status": {"code": if failed { 2 } else { 1 }},
        })
    };
    let two_hours_ago = now - 7_200_000_000_000;
    let baseline: Vec<Value> = (0..5)
        .map(|i| span(i, two_hours_ago + i * 1_000_000_000, false))
        .collect();
    let mut key_error = span(100, now, true);
    key_error["status"]["message"] = json!("'u-42'");
    key_error["events"] = json!([{
        "name": "exception",
        "timeUnixNano": (now - 1_000_000).to_string(),
        "attributes": [
            attr("exception.type", "KeyError"),
            attr("exception.message", "'u-42'"),
            attr("exception.stacktrace", "Traceback (most recent call last):\n  File \"/srv/billing/accounts.py\", line 10, in charge\n    owner = OWNERS[account]\nKeyError: 'u-42'"),
        ]
    }]);
    json!({"resourceSpans": [
        {"resource": resource("1.0", "h1"), "scopeSpans": [{"spans": baseline}]},
        {"resource": resource("1.1", "h2"), "scopeSpans": [{"spans": [key_error, span(101, now, true)]}]},
    ]})
}

/// What an MCP client sends first.
fn initialize() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "curl", "version": "1"}
        }
    })
}

async fn post_mcp(addr: &str, host: Option<&str>, auth: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize());
    if let Some(h) = host {
        req = req.header("host", h);
    }
    if let Some(a) = auth {
        req = req.bearer_auth(a);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_auth_answers_plain_bearer_and_the_read_token_only_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = Qyl::start(
        &dir.path().join("qyl.duckdb"),
        &[
            ("QYL_AUTH_TOKEN", TOKEN),
            ("QYL_AUTH_READ_TOKEN", READ_TOKEN),
        ],
    );
    let http = reqwest::Client::new();
    let base = format!("http://{}", q.http);

    // No token, a wrong one: 401 with a plain Bearer challenge (no OAuth
    // resource metadata, which makes clients ignore the configured header).
    for auth in [None, Some("wrong")] {
        let r = post_mcp(&q.http, None, auth).await;
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()["www-authenticate"].to_str().unwrap(),
            "Bearer realm=\"qyl\""
        );
    }
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    // Both tokens open MCP.
    for token in [TOKEN, READ_TOKEN] {
        let r = post_mcp(&q.http, None, Some(token)).await;
        assert_eq!(r.status(), 200, "{token}");
    }
    // Bound to loopback, a foreign Host (DNS rebinding) is refused.
    let r = post_mcp(&q.http, Some("evil.example"), Some(TOKEN)).await;
    assert_eq!(r.status(), 403);

    // The read-only token reads the REST API (and runs read-only SQL)...
    let r = http
        .get(format!("{base}/api/v1/errors"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{base}/api/v1/sql"))
        .bearer_auth(READ_TOKEN)
        .json(&json!({"sql": "SELECT 1 AS one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // ...and changes nothing: 403 with a message saying why.
    for (method, path, body) in [
        ("PATCH", "/api/v1/errors/1", json!({"status": "resolved"})),
        (
            "POST",
            "/api/v1/errors/merge",
            json!({"target": 1, "sources": [2]}),
        ),
        (
            "POST",
            "/api/v1/releases",
            json!({"service": "a", "version": "1"}),
        ),
    ] {
        let r = http
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(READ_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("read-only"),
            "{v}"
        );
    }
    // Nor does it send telemetry.
    let r = http
        .post(format!("http://{}/v1/traces", q.otlp_http))
        .bearer_auth(READ_TOKEN)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    q.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_mcp_accepts_any_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = Qyl::start_with(
        &dir.path().join("qyl.duckdb"),
        &["--bind", "0.0.0.0"],
        &[("QYL_AUTH_TOKEN", TOKEN)],
    );
    let local = q.http.replace("0.0.0.0", "127.0.0.1");
    // Docker, a hostname, a proxy: names qyl cannot know; the token guards.
    for host in ["qyl.internal:5100", "qyl", "10.1.2.3:5100"] {
        let r = post_mcp(&local, Some(host), Some(TOKEN)).await;
        assert_eq!(r.status(), 200, "{host}");
    }
    let r = post_mcp(&local, Some("qyl"), None).await;
    assert_eq!(r.status(), 401);
    q.stop();
}
