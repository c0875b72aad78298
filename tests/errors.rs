//! The error engine as users meet it: applications report errors over OTLP
//! (the Python SDK, and raw OTLP/HTTP JSON), then the REST API, the live
//! stream and the database show the groups, their events and breadcrumbs,
//! releases, regressions, merges and retention.

mod common;

use common::api::{eventually, get, get_ok, i, now, patch, post, s, Live};
use common::{run_python, Qyl};
use serde_json::{json, Value};

const SEC: u64 = 1_000_000_000;

fn strs(k: &str, v: &[&str]) -> Value {
    let values: Vec<Value> = v.iter().map(|x| json!({"stringValue": x})).collect();
    json!({"key": k, "value": {"arrayValue": {"values": values}}})
}

/// A span as OTLP JSON. `exception`: (type, message, stacktrace) recorded
/// as a span event.
#[derive(Clone)]
struct Sp {
    trace: String,
    span: String,
    parent: Option<String>,
    name: String,
    kind: u32,
    start: u64,
    error: bool,
    attrs: Vec<Value>,
    exception: Option<(String, String, String)>,
}

impl Sp {
    fn new(trace: u64, span: u64, name: &str, start: u64) -> Sp {
        Sp {
            trace: format!("{trace:032x}"),
            span: format!("{span:016x}"),
            parent: None,
            name: name.into(),
            kind: 2,
            start,
            error: false,
            attrs: Vec::new(),
            exception: None,
        }
    }

    fn json(&self) -> Value {
        let mut v = json!({
            "traceId": self.trace, "spanId": self.span, "name": self.name, "kind": self.kind,
            "startTimeUnixNano": self.start.to_string(),
            "endTimeUnixNano": (self.start + 1_000_000).to_string(),
            "attributes": self.attrs,
            "status": {"code": if self.error { 2 } else { 0 }},
        });
        if let Some(p) = &self.parent {
            v["parentSpanId"] = json!(p);
        }
        if let Some((t, m, st)) = &self.exception {
            v["events"] = json!([{
                "name": "exception",
                "timeUnixNano": (self.start + 500_000).to_string(),
                "attributes": [s("exception.type", t), s("exception.message", m), s("exception.stacktrace", st)],
            }]);
        }
        v
    }
}

struct Res<'a> {
    service: &'a str,
    version: &'a str,
    env: &'a str,
}

async fn send_spans(q: &Qyl, res: &Res<'_>, spans: &[Sp]) {
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [
            s("service.name", res.service), s("service.version", res.version),
            s("deployment.environment.name", res.env), s("telemetry.sdk.language", "python"),
        ]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": spans.iter().map(Sp::json).collect::<Vec<_>>()}],
    }]});
    let r = post(q, "/v1/traces", body).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

fn py_trace(line: u32, id: &str) -> String {
    format!(
        "Traceback (most recent call last):\n  File \"/srv/app/billing/charge.py\", line {line}, in charge\n    card = cards.lookup(customer)\n  File \"/srv/app/billing/cards.py\", line {}, in lookup\n    raise CardMissing(f\"no card for {id}\")\nbilling.cards.CardMissing: no card for {id}\n",
        line + 40
    )
}

fn other_trace() -> String {
    "Traceback (most recent call last):\n  File \"/srv/app/shipping/quote.py\", line 12, in quote\n    return rates[zone]\nKeyError: 'zone-9'\n".into()
}

async fn groups(q: &Qyl, query: &str) -> Vec<Value> {
    get_ok(q, &format!("/api/v1/errors?{query}")).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn find<'a>(groups: &'a [Value], error_type: &str) -> &'a Value {
    groups
        .iter()
        .find(|g| g["error_type"] == error_type)
        .unwrap_or_else(|| panic!("no group of type {error_type} in {groups:#?}"))
}

fn start(env: &[(&str, &str)]) -> (tempfile::TempDir, Qyl) {
    let dir = tempfile::tempdir().unwrap();
    let q = Qyl::start(&dir.path().join("qyl.duckdb"), env);
    (dir, q)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_exceptions_from_spans_and_logs_count_once() {
    let (_dir, mut q) = start(&[]);
    let endpoint = format!("http://{}", q.otlp_http);
    let sent = run_python(
        "send_errors.py",
        &[],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
    );
    let all = groups(&q, "sort=count").await;
    assert_eq!(all.len(), 2, "{all:#?}");
    // Three requests failed with the same bug; each was reported as a span
    // event and as a log record, and counted once.
    let key_error = find(&all, "KeyError");
    assert_eq!(key_error["count"], 3, "{key_error:#}");
    assert_eq!(
        key_error["unhandled_count"], 3,
        "exceptions on SERVER spans"
    );
    assert_eq!(key_error["category"], "exception");
    assert_eq!(key_error["status"], "unresolved");
    assert_eq!(key_error["substatus"], "new");
    assert_eq!(key_error["services"], json!(["shop"]));
    assert_eq!(key_error["user_count"], 3);
    assert_eq!(key_error["first_release"], "2.0.0");
    assert_eq!(key_error["last_environment"], "prod");
    assert_eq!(key_error["message_template"], "'u-<num>'");
    assert!(
        key_error["culprit"].as_str().unwrap().contains("load_user"),
        "{key_error:#}"
    );
    // A status-only error: typed by error.type.
    let rejected = find(&all, "OrderRejected");
    assert_eq!(rejected["category"], "status");
    assert_eq!(rejected["count"], 1);
    assert_eq!(
        rejected["sample_trace_ids"],
        json!([sent["order_trace_id"]])
    );

    // The explanation names the rule and the frames.
    let id = key_error["id"].as_i64().unwrap();
    let detail = get_ok(&q, &format!("/api/v1/errors/{id}")).await;
    let why = &detail["fingerprint_explanation"];
    assert_eq!(why["rule"], "in_app_frames");
    let components: Vec<&str> = why["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(components.contains(&"type:KeyError"), "{components:?}");
    assert!(
        components
            .iter()
            .any(|c| c.starts_with("frame:") && c.contains("load_user")),
        "{components:?}"
    );
    assert!(
        components.iter().all(|c| !c.contains("line")),
        "{components:?}"
    );

    // Events: one per request, with frames and the trail before the error.
    let events = get_ok(&q, &format!("/api/v1/errors/{id}/events")).await;
    let events = events["items"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    let first_trace = sent["trace_ids"][0].as_str().unwrap();
    let ev = events
        .iter()
        .find(|e| e["trace_id"] == first_trace)
        .unwrap();
    assert_eq!(ev["span_id"], sent["span_ids"][0]);
    assert_eq!(ev["user"], "u-7");
    assert!(!ev["handled"].as_bool().unwrap());
    let detail = get_ok(
        &q,
        &format!(
            "/api/v1/errors/{id}/events/{}",
            ev["event_id"].as_str().unwrap()
        ),
    )
    .await;
    let frames = detail["frames"]["exceptions"][0]["frames"]
        .as_array()
        .unwrap();
    assert_eq!(detail["frames"]["language"], "python");
    assert_eq!(frames[0]["function"], "load_user", "innermost first");
    assert_eq!(frames[0]["in_app"], true);
    assert!(detail["stacktrace"].as_str().unwrap().contains("Traceback"));
    let crumbs: Vec<(String, String)> = detail["breadcrumbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["category"].as_str().unwrap().to_string(),
                b["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        crumbs,
        vec![
            ("db".to_string(), "SELECT users".to_string()),
            ("log".to_string(), "fetching user u-7".to_string()),
        ]
    );
    assert_eq!(
        detail["breadcrumbs"][0]["data"]["statement"],
        "SELECT * FROM users WHERE id = $1"
    );

    // Unknown ids and parameters are refused clearly.
    assert_eq!(get(&q, "/api/v1/errors/999").await.status, 404);
    assert_eq!(get(&q, "/api/v1/errors/abc").await.status, 400);
    let r = get(&q, "/api/v1/errors?colour=red").await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("colour"));
    assert_eq!(get(&q, "/api/v1/errors?sort=size").await.status, 400);
    assert_eq!(get(&q, "/api/v1/errors?status=fixed").await.status, 400);
    let missing = format!("/api/v1/errors/{id}/events/{}", "0".repeat(32));
    assert_eq!(get(&q, &missing).await.status, 404);

    // The tables hold the same.
    let db = q.stop_and_open();
    assert_eq!(common::count(&db, "SELECT count(*) FROM error_events"), 4);
    assert_eq!(
        common::count(
            &db,
            "SELECT count(*) FROM releases WHERE service_name = 'shop' AND version = '2.0.0' AND environment = 'prod'"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_bug_groups_across_lines_ids_and_releases_and_genai_by_class() {
    let (_dir, q) = start(&[]);
    let t = now() - 600 * SEC;
    let prod = |version| Res {
        service: "billing",
        version,
        env: "prod",
    };
    // One bug at two line numbers, three ids, two releases; another bug.
    let mut n = 0;
    for (release, line, id) in [
        ("1.0.0", 10, "c-1"),
        ("1.0.0", 10, "c-2"),
        ("1.1.0", 14, "c-3"),
    ] {
        n += 1;
        let mut sp = Sp::new(n, n, "POST /charge", t + n * SEC);
        sp.error = true;
        sp.exception = Some((
            "billing.cards.CardMissing".into(),
            format!("no card for {id}"),
            py_trace(line, id),
        ));
        send_spans(&q, &prod(release), &[sp]).await;
    }
    let mut other = Sp::new(50, 50, "GET /quote", t + 60 * SEC);
    other.error = true;
    other.exception = Some(("KeyError".into(), "'zone-9'".into(), other_trace()));
    send_spans(&q, &prod("1.1.0"), &[other]).await;

    // GenAI: rate limits on two model snapshots (one group, model a tag), a
    // context-length error (another), and two soft failures.
    let genai = |n: u64, model: &str, extra: Vec<Value>, error: bool| {
        let mut sp = Sp::new(
            100 + n,
            100 + n,
            &format!("chat {model}"),
            t + (100 + n) * SEC,
        );
        sp.kind = 3;
        sp.error = error;
        sp.attrs = vec![
            s("gen_ai.provider.name", "openai"),
            s("gen_ai.operation.name", "chat"),
            s("gen_ai.request.model", model),
        ];
        sp.attrs.extend(extra);
        sp
    };
    send_spans(
        &q,
        &prod("1.1.0"),
        &[
            genai(
                1,
                "gpt-4o-2024-08-06",
                vec![
                    s("error.type", "openai.RateLimitError"),
                    i("http.response.status_code", 429),
                ],
                true,
            ),
            genai(
                2,
                "gpt-4o-2024-11-20",
                vec![
                    s("error.type", "openai.RateLimitError"),
                    i("http.response.status_code", 429),
                ],
                true,
            ),
            genai(
                3,
                "gpt-4o",
                vec![
                    s("error.type", "openai.BadRequestError"),
                    i("http.response.status_code", 400),
                ],
                true,
            ),
            genai(
                4,
                "gpt-4o",
                vec![strs("gen_ai.response.finish_reasons", &["length"])],
                false,
            ),
            genai(
                5,
                "gpt-4o",
                vec![strs(
                    "gen_ai.response.finish_reasons",
                    &["stop", "content_filter"],
                )],
                false,
            ),
            genai(
                6,
                "gpt-4o",
                vec![strs("gen_ai.response.finish_reasons", &["stop"])],
                false,
            ),
        ],
    )
    .await;
    // The context-length class comes from the message: set it as status.
    let mut ctx = genai(
        7,
        "gpt-4o",
        vec![s("error.type", "openai.BadRequestError")],
        true,
    );
    ctx.exception = Some((
        "openai.BadRequestError".into(),
        "This model's maximum context length is 128000 tokens; you requested 130512".into(),
        String::new(),
    ));
    send_spans(&q, &prod("1.1.0"), &[ctx]).await;

    let all = groups(&q, "").await;
    let card = find(&all, "billing.cards.CardMissing");
    assert_eq!(card["count"], 3, "{all:#?}");
    assert_eq!(card["first_release"], "1.0.0");
    assert_eq!(card["last_release"], "1.1.0");
    assert_eq!(card["message_template"], "no card for c-<num>");
    assert_eq!(find(&all, "KeyError")["count"], 1);

    let genai_groups = groups(&q, "category=genai").await;
    let classes: Vec<(String, u64)> = genai_groups
        .iter()
        .map(|g| {
            (
                g["gen_ai"]["error_class"].as_str().unwrap().to_string(),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(genai_groups.len(), 3, "{genai_groups:#?}");
    assert!(classes.contains(&("rate_limited".into(), 2)), "{classes:?}");
    assert!(
        classes.contains(&("invalid_request".into(), 1)),
        "{classes:?}"
    );
    assert!(
        classes.contains(&("context_length_exceeded".into(), 1)),
        "{classes:?}"
    );
    let rate = genai_groups
        .iter()
        .find(|g| g["gen_ai"]["error_class"] == "rate_limited")
        .unwrap();
    assert_eq!(rate["gen_ai"]["model"], "gpt-4o");
    assert_eq!(rate["gen_ai"]["provider"], "openai");
    let detail = get_ok(&q, &format!("/api/v1/errors/{}", rate["id"])).await;
    assert_eq!(detail["fingerprint_explanation"]["rule"], "genai");

    let soft = groups(&q, "category=genai_soft").await;
    let mut soft_classes: Vec<&str> = soft
        .iter()
        .map(|g| g["gen_ai"]["error_class"].as_str().unwrap())
        .collect();
    soft_classes.sort();
    assert_eq!(soft_classes, vec!["content_filtered", "truncated"]);

    // Filters and sorting.
    assert_eq!(groups(&q, "service=billing").await.len(), all.len());
    assert_eq!(groups(&q, "service=nobody").await.len(), 0);
    let first = groups(&q, "sort=count&limit=1").await;
    assert_eq!(first[0]["count"], 3);
    let page = get_ok(&q, "/api/v1/errors?limit=2").await;
    let next = page["next_cursor"].as_str().unwrap();
    let rest = get_ok(&q, &format!("/api/v1/errors?limit=100&cursor={next}")).await;
    assert_eq!(
        rest["items"].as_array().unwrap().len() + 2,
        all.len(),
        "pages neither repeat nor skip"
    );
    let in_release = groups(&q, "release=1.0.0").await;
    assert_eq!(in_release.len(), 1);

    // Releases: 1.0.0 brought the card bug; 1.1.0 the rest.
    let releases = get_ok(&q, "/api/v1/releases?service=billing").await;
    let releases = releases.as_array().unwrap();
    assert_eq!(releases.len(), 2);
    assert_eq!(releases[0]["version"], "1.1.0");
    assert_eq!(releases[1]["version"], "1.0.0");
    assert_eq!(releases[1]["new_groups"], 1);
    assert_eq!(releases[0]["new_groups"], 6);
    assert_eq!(releases[1]["error_rate_after"], 1.0);

    // Text search, whatever the case: by type, by a word of the message,
    // by the culprit, by release and service; wildcards are plain text.
    let types = |gs: Vec<Value>| -> Vec<String> {
        let mut t: Vec<String> = gs
            .iter()
            .map(|g| g["error_type"].as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    assert_eq!(
        types(groups(&q, "q=cardMISSING").await),
        vec!["billing.cards.CardMissing"]
    );
    let context = groups(&q, "q=Context%20Length").await;
    assert_eq!(context.len(), 1, "{context:#?}");
    assert_eq!(
        context[0]["gen_ai"]["error_class"],
        "context_length_exceeded"
    );
    let card_id = card["id"].as_i64().unwrap();
    let culprit = card["culprit"].as_str().unwrap();
    assert!(culprit.contains("lookup"), "{card:#}");
    assert!(!card["message_template"]
        .as_str()
        .unwrap()
        .contains("lookup"));
    assert_eq!(
        types(groups(&q, "q=LookUp").await),
        vec!["billing.cards.CardMissing"],
        "found by its culprit {culprit:?} alone"
    );
    assert_eq!(
        types(groups(&q, "q=1.0.0").await),
        vec!["billing.cards.CardMissing"],
        "first release"
    );
    assert_eq!(groups(&q, "q=BILLING").await.len(), all.len(), "service");
    assert_eq!(groups(&q, "q=%25").await.len(), 0, "% is literal");
    assert_eq!(groups(&q, "q=c_rd").await.len(), 0, "_ is literal");
    assert_eq!(groups(&q, "q=no-such-words").await.len(), 0);
    assert_eq!(groups(&q, "q=%20%20").await.len(), all.len(), "blank");
    let r = get(&q, &format!("/api/v1/errors?q={}", "x".repeat(501))).await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Pages of a search neither repeat nor skip, and the cursor keeps it.
    let openai: Vec<i64> = groups(&q, "q=openai")
        .await
        .iter()
        .map(|g| g["id"].as_i64().unwrap())
        .collect();
    assert!(openai.len() >= 3, "{openai:?}");
    let mut paged = Vec::new();
    let mut path = "/api/v1/errors?q=OpenAI&limit=1".to_string();
    loop {
        let page = get_ok(&q, &path).await;
        for g in page["items"].as_array().unwrap() {
            paged.push(g["id"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(next) => path = format!("/api/v1/errors?q=OpenAI&limit=1&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(paged, openai);

    // With a status: the search keeps only groups in it.
    let r = patch(
        &q,
        &format!("/api/v1/errors/{card_id}"),
        json!({"status": "resolved"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let resolved = groups(&q, "q=card&status=resolved").await;
    assert_eq!(resolved.len(), 1, "{resolved:#?}");
    assert_eq!(resolved[0]["id"], card_id);
    assert_eq!(groups(&q, "q=card&status=unresolved").await.len(), 0);
    assert_eq!(
        groups(&q, "q=openai&status=unresolved").await.len(),
        openai.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regressions_over_releases_and_environments_with_live_events() {
    let (_dir, q) = start(&[]);
    let t = now() - 3600 * SEC;
    let mut live = Live::open(&q).await;
    let fail = |n: u64, at: u64| {
        let mut sp = Sp::new(n, n, "POST /charge", at);
        sp.error = true;
        sp.exception = Some((
            "billing.cards.CardMissing".into(),
            format!("no card for c-{n}"),
            py_trace(10, &format!("c-{n}")),
        ));
        sp
    };
    let res = |version, env| Res {
        service: "billing",
        version,
        env,
    };
    send_spans(&q, &res("1.9.0", "prod"), &[fail(1, t)]).await;
    let new = live.next_error().await;
    assert_eq!(new["change"], "new");
    let id = new["group_id"].as_i64().unwrap();
    assert_eq!(new["error_type"], "billing.cards.CardMissing");

    // Bad PATCH bodies.
    let path = format!("/api/v1/errors/{id}");
    assert_eq!(
        patch(&q, &path, json!({"status": "fixed"})).await.status,
        400
    );
    assert_eq!(
        patch(
            &q,
            &path,
            json!({"status": "archived", "in_next_release": true})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        patch(&q, &path, json!({"state": "resolved"})).await.status,
        400
    );
    assert_eq!(
        patch(&q, "/api/v1/errors/777", json!({"status": "resolved"}))
            .await
            .status,
        404
    );

    // Resolved in the next release: remembers 1.9.0 in prod.
    let r = patch(
        &q,
        &path,
        json!({"status": "resolved", "in_next_release": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "resolved");
    assert_eq!(r.body["substatus"], "in_next_release");
    assert_eq!(r.body["resolved_in_release"], "1.9.0");
    assert_eq!(r.body["resolved_environment"], "prod");
    // The unfixed release keeps failing, a newer release fails in staging,
    // an older one in prod: none regresses.
    let later = now();
    send_spans(&q, &res("1.9.0", "prod"), &[fail(2, later)]).await;
    send_spans(&q, &res("1.10.0", "staging"), &[fail(3, later)]).await;
    send_spans(&q, &res("1.8.0", "prod"), &[fail(4, later)]).await;
    let g = get_ok(&q, &path).await;
    assert_eq!(
        (g["status"].as_str(), g["count"].as_u64()),
        (Some("resolved"), Some(4))
    );
    // The fixed release in prod fails: regressed, and the stream says so.
    send_spans(&q, &res("1.10.0", "prod"), &[fail(5, later + SEC)]).await;
    let ev = live.next_error().await;
    assert_eq!(
        (ev["change"].as_str(), ev["group_id"].as_i64()),
        (Some("regressed"), Some(id))
    );
    assert_eq!(ev["release"], "1.10.0");
    let g = get_ok(&q, &path).await;
    assert_eq!(g["substatus"], "regressed");
    assert_eq!(groups(&q, "status=regressed").await.len(), 1);
    let releases = get_ok(&q, "/api/v1/releases?service=billing&environment=prod").await;
    let r110 = releases
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == "1.10.0")
        .unwrap();
    assert_eq!(r110["regressed_groups"], 1);

    // Resolve now, then a late event (from before the resolution): stays
    // resolved; a new one regresses.
    let r = patch(&q, &path, json!({"status": "resolved"})).await;
    assert_eq!(r.body["substatus"], "now");
    send_spans(&q, &res("1.10.0", "prod"), &[fail(6, t + SEC)]).await;
    assert_eq!(get_ok(&q, &path).await["status"], "resolved");
    send_spans(&q, &res("1.10.0", "prod"), &[fail(7, now() + SEC)]).await;
    assert_eq!(live.next_error().await["change"], "regressed");

    // Archive forever: further events are counted, the status stays.
    let r = patch(&q, &path, json!({"status": "archived"})).await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["substatus"].as_str()),
        (Some("archived"), Some("forever"))
    );
    send_spans(&q, &res("1.10.0", "prod"), &[fail(8, now() + 2 * SEC)]).await;
    let g = get_ok(&q, &path).await;
    assert_eq!(
        (g["status"].as_str(), g["count"].as_u64()),
        (Some("archived"), Some(8))
    );
    assert_eq!(groups(&q, "status=archived").await.len(), 1);
    let r = patch(&q, &path, json!({"status": "unresolved"})).await;
    assert_eq!(r.body["status"], "unresolved");

    // Merge another group into it; the merged one is hidden and its
    // fingerprint now finds the target.
    let mut quote = Sp::new(60, 60, "GET /quote", now());
    quote.error = true;
    quote.exception = Some(("KeyError".into(), "'zone-9'".into(), other_trace()));
    send_spans(&q, &res("1.10.0", "prod"), &[quote.clone()]).await;
    let other = live.next_error().await["group_id"].as_i64().unwrap();
    assert_eq!(
        post(
            &q,
            "/api/v1/errors/merge",
            json!({"target": id, "sources": [id]})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        post(
            &q,
            "/api/v1/errors/merge",
            json!({"target": id, "sources": [12345]})
        )
        .await
        .status,
        404
    );
    let r = post(
        &q,
        "/api/v1/errors/merge",
        json!({"target": id, "sources": [other]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["count"], 9);
    assert_eq!(
        r.body["fingerprint_explanation"]["merged_hashes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(groups(&q, "").await.len(), 1);
    assert_eq!(groups(&q, "status=merged").await[0]["merged_into"], id);
    quote.trace = format!("{:032x}", 61);
    quote.span = format!("{:016x}", 61);
    send_spans(&q, &res("1.10.0", "prod"), &[quote]).await;
    assert_eq!(get_ok(&q, &path).await["count"], 10);
    let events = get_ok(&q, &format!("{path}/events?limit=100")).await;
    assert_eq!(events["items"].as_array().unwrap().len(), 10);
    assert_eq!(
        patch(
            &q,
            &format!("/api/v1/errors/{other}"),
            json!({"status": "resolved"})
        )
        .await
        .status,
        400,
        "a merged group cannot be changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breadcrumbs_are_ordered_capped_and_backfilled_from_the_session() {
    let (_dir, q) = start(&[]);
    let t = now() - 600 * SEC;
    let res = Res {
        service: "agent",
        version: "3",
        env: "prod",
    };
    // Trace 1 (earlier, same session): a GenAI call and a tool call.
    let mut llm = Sp::new(1, 1, "chat claude", t);
    llm.kind = 3;
    llm.attrs = vec![
        s("session.id", "sess-1"),
        s("gen_ai.provider.name", "anthropic"),
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.request.model", "claude-sonnet-4-20250514"),
        i("gen_ai.usage.input_tokens", 1200),
        i("gen_ai.usage.output_tokens", 80),
        strs("gen_ai.response.finish_reasons", &["tool_use"]),
    ];
    let mut tool = Sp::new(1, 2, "execute_tool search", t + SEC);
    tool.kind = 1;
    tool.attrs = vec![
        s("session.id", "sess-1"),
        s("gen_ai.operation.name", "execute_tool"),
        s("gen_ai.tool.name", "search"),
    ];
    // Trace 2: one HTTP call, then the error. The error span arrives
    // first (children before parents, different exports).
    let mut root = Sp::new(2, 10, "POST /ask", t + 10 * SEC);
    root.attrs = vec![s("session.id", "sess-1")];
    root.error = true;
    root.exception = Some(("ValueError".into(), "bad answer".into(), String::new()));
    let mut http = Sp::new(2, 11, "GET", t + 10 * SEC + 1000);
    http.kind = 3;
    http.parent = Some(root.span.clone());
    http.attrs = vec![
        s("session.id", "sess-1"),
        s("http.request.method", "GET"),
        s("url.full", "https://api.example.com/x"),
        i("http.response.status_code", 503),
    ];
    send_spans(&q, &res, &[llm, tool]).await;
    send_spans(&q, &res, &[root]).await;
    send_spans(&q, &res, &[http]).await;
    let g = find(&groups(&q, "").await, "ValueError").clone();
    let events = get_ok(&q, &format!("/api/v1/errors/{}/events", g["id"])).await;
    let ev = &events["items"][0];
    let d = get_ok(
        &q,
        &format!(
            "/api/v1/errors/{}/events/{}",
            g["id"],
            ev["event_id"].as_str().unwrap()
        ),
    )
    .await;
    let crumbs = d["breadcrumbs"].as_array().unwrap();
    let cats: Vec<&str> = crumbs
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert_eq!(cats, vec!["genai", "tool", "http"], "{crumbs:#?}");
    assert_eq!(crumbs[0]["data"]["model"], "claude-sonnet-4-20250514");
    assert_eq!(crumbs[0]["data"]["input_tokens"], 1200);
    assert_eq!(crumbs[0]["data"]["finish_reasons"], json!(["tool_use"]));
    assert_eq!(crumbs[1]["data"]["tool"], "search");
    assert_eq!(crumbs[2]["level"], "error");
    assert_eq!(crumbs[2]["data"]["status_code"], 503);

    // A long trace: 150 calls before the error; the latest 100 are kept,
    // oldest first.
    let t2 = t + 100 * SEC;
    let mut spans: Vec<Sp> = (0..150u64)
        .map(|k| {
            let mut c = Sp::new(3, 100 + k, &format!("call {k}"), t2 + k * 1000);
            c.kind = 3;
            c.attrs = vec![s("http.request.method", "GET")];
            c
        })
        .collect();
    let mut fail = Sp::new(3, 99, "work", t2 + 200_000);
    fail.error = true;
    fail.exception = Some(("TimeoutError".into(), "slow".into(), String::new()));
    spans.push(fail);
    send_spans(&q, &res, &spans).await;
    let g = find(&groups(&q, "").await, "TimeoutError").clone();
    let events = get_ok(&q, &format!("/api/v1/errors/{}/events", g["id"])).await;
    let d = get_ok(
        &q,
        &format!(
            "/api/v1/errors/{}/events/{}",
            g["id"],
            events["items"][0]["event_id"].as_str().unwrap()
        ),
    )
    .await;
    let names: Vec<&str> = d["breadcrumbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["message"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 100);
    assert_eq!(names[0], "call 50");
    assert_eq!(names[99], "call 149");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_and_auto_resolve_keep_groups_consistent() {
    let (_dir, mut q) = start(&[
        ("QYL_STORAGE_RETENTION_HOURS", "1"),
        ("QYL_STORAGE_RETENTION_INTERVAL_SECS", "1"),
        ("QYL_ERRORS_AUTO_RESOLVE_AFTER", "30m"),
    ]);
    let res = Res {
        service: "api",
        version: "1",
        env: "prod",
    };
    let fail = |n: u64, at: u64| {
        let mut sp = Sp::new(n, n, "GET /x", at);
        sp.error = true;
        sp.attrs = vec![s("error.type", "Boom")];
        sp
    };
    // One occurrence two hours ago (its trace expires), one now.
    send_spans(&q, &res, &[fail(1, now() - 7200 * SEC)]).await;
    send_spans(&q, &res, &[fail(2, now())]).await;
    let g = find(&groups(&q, "").await, "Boom").clone();
    assert_eq!(g["count"], 2);
    let path = format!("/api/v1/errors/{}/events", g["id"]);
    eventually(|| async {
        let events = get_ok(&q, &path).await;
        (events["items"].as_array().unwrap().len() == 1).then_some(())
    })
    .await;
    let g2 = get_ok(&q, &format!("/api/v1/errors/{}", g["id"])).await;
    assert_eq!(g2["count"], 2, "groups and their counts stay");
    assert_eq!(g2["status"], "unresolved");

    // A group whose last event is older than 30 minutes resolves by itself
    // (the check runs every 5 s at most; this one is old from the start).
    send_spans(
        &q,
        &Res {
            service: "cron",
            version: "1",
            env: "prod",
        },
        &[{
            let mut sp = fail(3, now() - 2400 * SEC);
            sp.attrs = vec![s("error.type", "Stale")];
            sp
        }],
    )
    .await;
    let resolved = eventually(|| async {
        let all = get_ok(&q, "/api/v1/errors?status=resolved").await;
        all["items"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(resolved["error_type"], "Stale");
    assert_eq!(resolved["substatus"], "auto");
    let db = q.stop_and_open();
    assert_eq!(
        common::count(
            &db,
            "SELECT count(*) FROM error_events WHERE trace_id = lpad('1', 32, '0')"
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_records_releases() {
    let (_dir, q) = start(&[]);
    let r = post(
        &q,
        "/api/v1/releases",
        json!({"service": "web", "version": "5.0.1", "environment": "prod"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["source"], "deploy");
    assert_eq!(r.body["version"], "5.0.1");
    assert_eq!(r.body["new_groups"], 0);
    assert_eq!(
        post(
            &q,
            "/api/v1/releases",
            json!({"service": "", "version": "1"})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        post(
            &q,
            "/api/v1/releases",
            json!({"service": "web", "release": "1"})
        )
        .await
        .status,
        400
    );
    let all = get_ok(&q, "/api/v1/releases").await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(get(&q, "/api/v1/releases?limit=0").await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slo_burn_rates_from_ingested_spans() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("qyl.toml");
    std::fs::write(
        &config,
        r#"
[[errors.slo]]
name = "pay-availability"
service = "pay"
objective = 99.0
latency_threshold_ms = 500

[[errors.slo]]
name = "pay-llm"
service = "pay"
genai_operation = "chat"
objective = 99.9
window = "7d"
"#,
    )
    .unwrap();
    let q = Qyl::start_with(
        &dir.path().join("qyl.duckdb"),
        &["--config", config.to_str().unwrap()],
        &[],
    );
    let t = now() - 30 * SEC;
    // 100 requests: 95 fine, 3 failed, 2 too slow → 5 % bad, burn 5 at 99 %.
    let mut spans = Vec::new();
    for k in 0..100u64 {
        let mut sp = Sp::new(k + 1, k + 1, "POST /pay", t + k * 1000);
        sp.error = k < 3;
        let mut v = sp.json();
        if (3..5).contains(&k) {
            v["endTimeUnixNano"] = json!((t + k * 1000 + 900_000_000).to_string());
        }
        spans.push(v);
    }
    // Not requests of the first SLO: a client call (a chat, for the second
    // SLO) and another service's request.
    let mut llm = Sp::new(500, 500, "chat", t);
    llm.kind = 3;
    llm.parent = Some(format!("{:016x}", 1));
    llm.attrs = vec![s("gen_ai.operation.name", "chat")];
    spans.push(llm.json());
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [s("service.name", "pay")]},
        "scopeSpans": [{"spans": spans}],
    }]});
    assert_eq!(post(&q, "/v1/traces", body).await.status, 200);
    send_spans(
        &q,
        &Res {
            service: "other",
            version: "1",
            env: "prod",
        },
        &[Sp::new(900, 900, "POST /pay", t)],
    )
    .await;

    let slos = get_ok(&q, "/api/v1/slo").await;
    let slos = slos.as_array().unwrap();
    assert_eq!(slos.len(), 2);
    let pay = &slos[0];
    assert_eq!(pay["name"], "pay-availability");
    for w in pay["windows"].as_array().unwrap() {
        assert_eq!(
            (w["good"].as_u64(), w["total"].as_u64()),
            (Some(95), Some(100)),
            "{w}"
        );
        assert!((w["burn_rate"].as_f64().unwrap() - 5.0).abs() < 1e-9, "{w}");
    }
    let firing: Vec<bool> = pay["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["firing"].as_bool().unwrap())
        .collect();
    assert_eq!(firing, vec![false, false, true, true]);
    assert_eq!(pay["budget"]["window"], "30d");
    assert!((pay["budget"]["allowed_bad"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert!((pay["budget"]["remaining"].as_f64().unwrap() + 4.0).abs() < 1e-9);
    let llm = &slos[1];
    assert_eq!(llm["windows"][0]["total"], 1);
    assert_eq!(llm["budget"]["remaining"], 1.0);
    assert_eq!(get(&q, "/api/v1/slo?x=1").await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_hourly_baseline_escalates_and_is_streamed() {
    let (_dir, q) = start(&[]);
    let mut live = Live::open(&q).await;
    let hour = 3600 * SEC;
    let this_hour = now() - now() % hour;
    let res = Res {
        service: "api",
        version: "1",
        env: "prod",
    };
    let fail = |n: u64, at: u64| {
        let mut sp = Sp::new(n, n, "GET /feed", at);
        sp.error = true;
        sp.attrs = vec![s("error.type", "FeedTimeout")];
        sp
    };
    // One an hour for three hours: the baseline.
    for h in 1..=3u64 {
        send_spans(&q, &res, &[fail(h, this_hour - h * hour + 5 * SEC)]).await;
    }
    assert_eq!(live.next_error().await["change"], "new");
    // Twelve in this hour: past 10x the baseline and the minimum of 10.
    let burst: Vec<Sp> = (0..12u64)
        .map(|k| fail(100 + k, this_hour + k * 1_000_000))
        .collect();
    send_spans(&q, &res, &burst).await;
    let ev = live.next_error().await;
    assert_eq!(ev["change"], "escalating");
    assert_eq!(ev["substatus"], "escalating");
    let g = find(&groups(&q, "status=escalating").await, "FeedTimeout").clone();
    assert_eq!(g["count"], 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histogram_counts_each_groups_events_per_bucket() {
    let (_dir, q) = start(&[]);
    const HOUR: u64 = 3600 * SEC;
    // Two groups: one failing three hours ago and twice an hour ago, the
    // other once, an hour ago.
    let now = now();
    let t = now - now % HOUR;
    let mut spans = Vec::new();
    for (n, at) in [
        (1u64, t - 3 * HOUR + SEC),
        (2, t - HOUR + SEC),
        (3, t - HOUR + 2 * SEC),
    ] {
        let mut sp = Sp::new(200 + n, 200 + n, "POST /charge", at);
        sp.error = true;
        sp.exception = Some(("CardMissing".into(), "no card".into(), py_trace(10, "c-1")));
        spans.push(sp);
    }
    let mut other = Sp::new(300, 300, "GET /quote", t - HOUR + 3 * SEC);
    other.error = true;
    other.exception = Some(("KeyError".into(), "'zone-9'".into(), other_trace()));
    spans.push(other);
    let res = Res {
        service: "billing",
        version: "1.0.0",
        env: "prod",
    };
    send_spans(&q, &res, &spans).await;
    let all = eventually(|| async {
        let g = groups(&q, "").await;
        (g.len() == 2).then_some(g)
    })
    .await;
    let card = find(&all, "CardMissing")["id"].as_i64().unwrap();
    let quote = find(&all, "KeyError")["id"].as_i64().unwrap();

    let since_ms = (t - 4 * HOUR) / 1_000_000;
    let until_ms = t / 1_000_000;
    let h = get_ok(
        &q,
        &format!("/api/v1/errors/histogram?ids={card},{quote},999&since={since_ms}&until={until_ms}&step=1h"),
    )
    .await;
    assert_eq!(h["step_ms"], 3_600_000, "{h}");
    assert_eq!(h["buckets"], 4, "{h}");
    assert_eq!(h["start_unix_nano"], (t - 4 * HOUR).to_string());
    assert_eq!(h["groups"][0]["id"], card);
    assert_eq!(h["groups"][0]["counts"], json!([0, 1, 0, 2]));
    assert_eq!(h["groups"][1]["counts"], json!([0, 0, 0, 1]));
    assert_eq!(
        h["groups"][2]["counts"],
        json!([0, 0, 0, 0]),
        "unknown group: zeros"
    );

    // Without a step: about 24 buckets over the default last 24 hours.
    let d = get_ok(&q, &format!("/api/v1/errors/histogram?ids={card}")).await;
    let buckets = d["buckets"].as_u64().unwrap();
    assert!((24..=25).contains(&buckets), "{d}");
    let total: u64 = d["groups"][0]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(total, 3);

    for bad in [
        "/api/v1/errors/histogram",
        "/api/v1/errors/histogram?ids=x",
        "/api/v1/errors/histogram?ids=1&step=0",
        "/api/v1/errors/histogram?ids=1&step=1s&since=7d",
        "/api/v1/errors/histogram?ids=1&since=1h&until=2h",
        "/api/v1/errors/histogram?ids=1&bogus=1",
    ] {
        let r = get(&q, bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_on_a_group_are_kept_in_order_follow_merges_and_survive_a_restart() {
    let (dir, mut q) = start(&[]);
    let now = now();
    let mut card = Sp::new(401, 401, "POST /charge", now - 2 * SEC);
    card.error = true;
    card.exception = Some(("CardMissing".into(), "no card".into(), py_trace(10, "c-1")));
    let mut quote = Sp::new(402, 402, "GET /quote", now - SEC);
    quote.error = true;
    quote.exception = Some(("KeyError".into(), "'zone-9'".into(), other_trace()));
    let res = Res {
        service: "billing",
        version: "1.0.0",
        env: "prod",
    };
    send_spans(&q, &res, &[card, quote]).await;
    let all = eventually(|| async {
        let g = groups(&q, "").await;
        (g.len() == 2).then_some(g)
    })
    .await;
    let card = find(&all, "CardMissing")["id"].as_i64().unwrap();
    let quote = find(&all, "KeyError")["id"].as_i64().unwrap();

    let fresh = get_ok(&q, &format!("/api/v1/errors/{card}")).await;
    assert_eq!(fresh["notes"], json!([]));
    // Automatic triage writes its deterministic report shortly after the
    // group appears (it may or may not be here yet); without a [triage]
    // endpoint it never carries a model's summary.
    assert!(
        fresh["triage"].is_null() || fresh["triage"]["summary"].is_null(),
        "no [triage] endpoint, no model summary: {}",
        fresh["triage"]
    );

    let first = post(
        &q,
        &format!("/api/v1/errors/{card}/notes"),
        json!({"text": "  Started with the 1.0 checkout rewrite.\n", "author": "ana"}),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["group_id"], card);
    assert_eq!(first.body["author"], "ana");
    assert_eq!(first.body["text"], "Started with the 1.0 checkout rewrite.");
    let second = post(
        &q,
        &format!("/api/v1/errors/{card}/notes"),
        json!({"text": "Fix in #412 — it's the 'missing card' path"}),
    )
    .await;
    assert_eq!(second.status, 201, "{}", second.body);
    assert_eq!(second.body["author"], "api", "the default author");
    let on_quote = post(
        &q,
        &format!("/api/v1/errors/{quote}/notes"),
        json!({"text": "Same root cause as the card one?"}),
    )
    .await;
    assert_eq!(on_quote.status, 201, "{}", on_quote.body);

    // Bad notes: a 400 naming the field, and nothing stored.
    let long = "x".repeat(10_001);
    for (path, body, says) in [
        (
            format!("/api/v1/errors/{card}/notes"),
            json!({"text": "  "}),
            "text",
        ),
        (
            format!("/api/v1/errors/{card}/notes"),
            json!({"text": long}),
            "text",
        ),
        (
            format!("/api/v1/errors/{card}/notes"),
            json!({"note": "hi"}),
            "expected a JSON body",
        ),
        (
            format!("/api/v1/errors/{card}/notes"),
            json!({"text": "hi", "author": "a\nb"}),
            "author",
        ),
        (
            format!("/api/v1/errors/{card}/notes"),
            json!({"text": 7}),
            "expected a JSON body",
        ),
        (
            "/api/v1/errors/x/notes".to_string(),
            json!({"text": "hi"}),
            "error group id",
        ),
    ] {
        let r = post(&q, &path, body).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(says),
            "{path}: {}",
            r.body
        );
    }
    let missing = post(&q, "/api/v1/errors/999999/notes", json!({"text": "hi"})).await;
    assert_eq!(missing.status, 404, "{}", missing.body);

    // A merge carries the source's notes to the target, in time order;
    // the merged group takes no new ones.
    let merged = post(
        &q,
        "/api/v1/errors/merge",
        json!({"target": card, "sources": [quote]}),
    )
    .await;
    assert_eq!(merged.status, 200, "{}", merged.body);
    let texts = |v: &Value| -> Vec<String> {
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["text"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        texts(&merged.body),
        [
            "Started with the 1.0 checkout rewrite.",
            "Fix in #412 — it's the 'missing card' path",
            "Same root cause as the card one?"
        ]
    );
    let late = post(
        &q,
        &format!("/api/v1/errors/{quote}/notes"),
        json!({"text": "too late"}),
    )
    .await;
    assert_eq!(late.status, 400, "{}", late.body);
    assert!(late.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("merged"));

    // Stored: the same thread after a restart.
    q.stop();
    let q = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);
    let again = get_ok(&q, &format!("/api/v1/errors/{card}")).await;
    assert_eq!(texts(&again), texts(&merged.body));
    let ids: Vec<i64> = again["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["note_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
}
