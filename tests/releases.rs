//! Deploys as users meet them: applications send telemetry whose
//! `service.version` marks each release (raw OTLP/HTTP JSON with chosen
//! times, and the Python SDK), CI records deploys with `POST
//! /api/v1/releases`, and the REST API lays new and regressed groups,
//! error rate, latency, GenAI errors and SLO burn at each deploy's door,
//! resolves groups a deploy fixed or silenced, and escalates against a
//! rolling week.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::api::{eventually, get, get_ok, i, now, patch, post, s, send, with_body, Reply};
use common::{run_python, Qyl};
use serde_json::{json, Value};

const SEC: u64 = 1_000_000_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;

/// `POST path` with a bearer `token` when given.
async fn post_as(q: &Qyl, path: &str, body: Value, token: Option<&str>) -> Reply {
    with_body(q, reqwest::Method::POST, path, body, token).await
}

/// A span as OTLP JSON.
#[derive(Clone)]
struct Sp {
    id: u64,
    name: &'static str,
    /// 2 SERVER, 3 CLIENT.
    kind: u32,
    parent: Option<u64>,
    start: u64,
    ms: u64,
    error: bool,
    attrs: Vec<Value>,
    /// (type, message, stack trace) as an `exception` event.
    exception: Option<(String, String, String)>,
}

impl Sp {
    fn request(id: u64, start: u64, ms: u64) -> Sp {
        Sp {
            id,
            name: "POST /checkout",
            kind: 2,
            parent: None,
            start,
            ms,
            error: false,
            attrs: Vec::new(),
            exception: None,
        }
    }

    fn failing(id: u64, start: u64, ms: u64, exception: (&str, &str, String)) -> Sp {
        Sp {
            error: true,
            exception: Some((exception.0.into(), exception.1.into(), exception.2)),
            ..Sp::request(id, start, ms)
        }
    }

    fn json(&self) -> Value {
        let mut v = json!({
            "traceId": format!("{:032x}", self.id), "spanId": format!("{:016x}", self.id),
            "name": self.name, "kind": self.kind,
            "startTimeUnixNano": self.start.to_string(),
            "endTimeUnixNano": (self.start + self.ms * 1_000_000).to_string(),
            "attributes": self.attrs,
            "status": {"code": if self.error { 2 } else { 0 }},
        });
        if let Some(p) = self.parent {
            v["parentSpanId"] = json!(format!("{p:016x}"));
            v["traceId"] = json!(format!("{p:032x}"));
        }
        if let Some((t, m, st)) = &self.exception {
            v["events"] = json!([{
                "name": "exception",
                "timeUnixNano": (self.start + 1000).to_string(),
                "attributes": [s("exception.type", t), s("exception.message", m), s("exception.stacktrace", st)],
            }]);
        }
        v
    }
}

async fn send_spans(q: &Qyl, service: &str, version: &str, spans: &[Sp]) {
    for chunk in spans.chunks(500) {
        let body = json!({"resourceSpans": [{
            "resource": {"attributes": [
                s("service.name", service), s("service.version", version),
                s("deployment.environment.name", "prod"), s("telemetry.sdk.language", "python"),
            ]},
            "scopeSpans": [{"scope": {"name": "t"}, "spans": chunk.iter().map(Sp::json).collect::<Vec<_>>()}],
        }]});
        let r = post(q, "/v1/traces", body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

fn trace(file: &str, function: &str, line: u32, error: &str) -> String {
    format!(
        "Traceback (most recent call last):\n  File \"/srv/shop/{file}.py\", line {line}, in {function}\n    return step()\n{error}\n"
    )
}

fn key_error() -> (&'static str, &'static str, String) {
    (
        "KeyError",
        "'zone-9'",
        trace("quote", "quote", 12, "KeyError: 'zone-9'"),
    )
}

fn value_error(n: u64) -> (&'static str, &'static str, String) {
    (
        "ValueError",
        "bad coupon",
        trace(
            "coupons",
            "apply",
            40,
            &format!("ValueError: bad coupon c-{n}"),
        ),
    )
}

/// A chat call (a CLIENT child of `parent`) that failed with `error_type`.
fn failed_chat(id: u64, parent: u64, start: u64, error_type: &str, status: i64) -> Sp {
    Sp {
        name: "chat gpt-4o",
        kind: 3,
        parent: Some(parent),
        error: true,
        attrs: vec![
            s("gen_ai.provider.name", "openai"),
            s("gen_ai.operation.name", "chat"),
            s("gen_ai.request.model", "gpt-4o"),
            s("error.type", error_type),
            i("http.response.status_code", status),
        ],
        ..Sp::request(id, start, 50)
    }
}

async fn group_of(q: &Qyl, service: &str, error_type: &str) -> Value {
    let all = get_ok(q, &format!("/api/v1/errors?service={service}&limit=100")).await;
    all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["error_type"] == error_type)
        .unwrap_or_else(|| panic!("no {error_type} group of {service}: {all:#}"))
        .clone()
}

async fn group(q: &Qyl, id: i64) -> Value {
    get_ok(q, &format!("/api/v1/errors/{id}")).await
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

fn start(env: &[(&str, &str)]) -> (tempfile::TempDir, Qyl) {
    let dir = tempfile::tempdir().unwrap();
    let q = Qyl::start(&dir.path().join("qyl.duckdb"), env);
    (dir, q)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_is_blamed_for_the_groups_errors_latency_genai_and_slo_burn_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("qyl.toml");
    std::fs::write(
        &config,
        "[[errors.slo]]\nname = \"shop-availability\"\nservice = \"shop\"\nobjective = 99.0\n",
    )
    .unwrap();
    let q = Qyl::start_with(
        &dir.path().join("qyl.duckdb"),
        &["--config", config.to_str().unwrap()],
        &[],
    );
    let t0 = now() - 4 * HOUR;
    let t0 = t0 - t0 % MIN;

    // 1.4.0: twenty good requests of 100 ms, one KeyError, one chat timeout.
    let mut v140: Vec<Sp> = (0..20)
        .map(|k| Sp::request(100 + k, t0 + k * MIN + SEC, 100))
        .collect();
    v140.push(Sp::failing(150, t0 + 5 * MIN + 30 * SEC, 100, key_error()));
    v140.push(failed_chat(
        160,
        100,
        t0 + 10 * MIN + 5 * SEC,
        "openai.APITimeoutError",
        504,
    ));
    send_spans(&q, "shop", "1.4.0", &v140).await;

    // CI records 1.5.0 at t0 + 50 min, before its first span.
    let deployed = t0 + 50 * MIN;
    let r = post(
        &q,
        "/api/v1/releases",
        json!({"service": "shop", "version": "1.5.0", "environment": "prod",
               "commit": "9f1c2e7", "url": "https://ci.example/runs/42",
               "deployed_at": deployed / 1_000_000}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        (r.body["source"].as_str(), r.body["commit"].as_str()),
        (Some("deploy"), Some("9f1c2e7"))
    );
    assert_eq!(r.body["first_seen_unix_nano"], deployed.to_string());

    // 1.5.0: twenty requests of 300 ms, every other one a new ValueError;
    // the KeyError again; two rate-limited chat calls; then, after its
    // window, a TypeError.
    let mut v150: Vec<Sp> = (0..20u64)
        .map(|k| {
            let at = t0 + 51 * MIN + k * MIN;
            if k % 2 == 0 {
                Sp::failing(200 + k, at, 300, value_error(k))
            } else {
                Sp::request(200 + k, at, 300)
            }
        })
        .collect();
    v150.push(Sp::failing(250, t0 + 52 * MIN + 30 * SEC, 300, key_error()));
    for k in 0..2 {
        v150.push(failed_chat(
            260 + k,
            201,
            t0 + 55 * MIN + (k + 1) * SEC,
            "openai.RateLimitError",
            429,
        ));
    }
    send_spans(&q, "shop", "1.5.0", &v150).await;
    let late = (
        "TypeError",
        "None is not a cart",
        trace("cart", "total", 7, "TypeError: None is not a cart"),
    );
    send_spans(
        &q,
        "shop",
        "1.5.0",
        &[Sp::failing(270, t0 + 115 * MIN, 300, late)],
    )
    .await;
    // 1.6.0 at t0 + 140 min; another service shares the version 1.5.0.
    send_spans(
        &q,
        "shop",
        "1.6.0",
        &[Sp::request(300, t0 + 140 * MIN, 100)],
    )
    .await;
    send_spans(&q, "web", "1.5.0", &[Sp::request(400, t0 + 60 * MIN, 10)]).await;

    // The list: each deploy with its window.
    let list = get_ok(&q, "/api/v1/releases?service=shop").await;
    let list = list.as_array().unwrap();
    let versions: Vec<&str> = list
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, vec!["1.6.0", "1.5.0", "1.4.0"]);
    let (r150, r140) = (&list[1], &list[2]);
    assert_eq!(r150["url"], "https://ci.example/runs/42");
    assert_eq!(
        r150["window"]["end_unix_nano"],
        (deployed + HOUR).to_string()
    );
    assert_eq!(r150["window"]["ends_at_next_deploy"], false);
    // The ValueError and the rate-limit group are new in the window; the
    // TypeError came too late.
    assert_eq!(
        (
            r150["window"]["new_groups"].as_u64(),
            r150["window"]["regressed_groups"].as_u64()
        ),
        (Some(2), Some(0))
    );
    assert_eq!(r150["new_groups"], 3, "groups first seen in 1.5.0");
    assert!(close(&r150["error_rate_before"], 2.0 / 22.0), "{r150}");
    assert!(close(&r150["error_rate_after"], 13.0 / 23.0), "{r150}");
    // 1.4.0's window ends at the 1.5.0 deploy: the KeyError and the timeout.
    assert_eq!(r140["window"]["end_unix_nano"], deployed.to_string());
    assert_eq!(r140["window"]["ends_at_next_deploy"], true);
    assert_eq!(r140["window"]["new_groups"], 2);
    assert_eq!(r140["source"], "telemetry");
    assert!(r140["commit"].is_null());

    // One release: the whole correlation.
    let d = get_ok(&q, "/api/v1/releases/1.5.0?service=shop").await;
    assert_eq!(d["version"], "1.5.0");
    assert_eq!(d["commit"], "9f1c2e7");
    let c = &d["correlation"];
    assert_eq!(
        (c["spans_before"].as_u64(), c["spans_after"].as_u64()),
        (Some(22), Some(23))
    );
    assert!(close(&c["error_rate_before"], 2.0 / 22.0), "{c}");
    assert!(close(&c["error_rate_after"], 13.0 / 23.0), "{c}");
    assert!(close(&c["latency_p95_ms_before"], 100.0), "{c}");
    assert!(close(&c["latency_p95_ms_after"], 300.0), "{c}");
    assert_eq!(
        c["genai_error_classes"],
        json!([
            {"error_class": "rate_limited", "before": 0, "after": 2},
            {"error_class": "timeout", "before": 1, "after": 0},
        ])
    );
    let changed: Vec<(String, String)> = c["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["change"].as_str().unwrap().to_string(),
                g["error_type"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert_eq!(changed[0], ("new".to_string(), "ValueError".to_string()));
    assert_eq!(changed[1].0, "new");
    assert_eq!(c["groups"][1]["gen_ai_error_class"], "rate_limited");
    assert_eq!(d["resolved_groups"], json!([]));

    // "1.5.0 burns the budget 11x faster": since the deploy (90 min, to
    // 1.6.0) against the 90 min before. Requests only: chat calls are not.
    let slo = &d["slo"][0];
    assert_eq!(slo["name"], "shop-availability");
    assert_eq!(
        (
            slo["before"]["good"].as_u64(),
            slo["before"]["total"].as_u64()
        ),
        (Some(20), Some(21))
    );
    assert_eq!(
        (
            slo["since"]["good"].as_u64(),
            slo["since"]["total"].as_u64()
        ),
        (Some(10), Some(22))
    );
    let (before, since) = ((1.0 / 21.0) / 0.01, (12.0 / 22.0) / 0.01);
    assert!(close(&slo["before"]["burn_rate"], before), "{slo}");
    assert!(close(&slo["since"]["burn_rate"], since), "{slo}");
    assert!(close(&slo["burn_ratio"], since / before), "{slo}");
    assert_eq!(
        slo["since"]["until"],
        get_ok(&q, "/api/v1/releases/1.6.0").await["first_seen"]
    );

    // Each group says which deploy it started with.
    let value = group(
        &q,
        group_of(&q, "shop", "ValueError").await["id"]
            .as_i64()
            .unwrap(),
    )
    .await;
    let dep = &value["deploy"];
    assert_eq!(
        (
            dep["version"].as_str(),
            dep["change"].as_str(),
            dep["commit"].as_str()
        ),
        (Some("1.5.0"), Some("new"), Some("9f1c2e7"))
    );
    assert_eq!(dep["deployed_unix_nano"], deployed.to_string());
    assert_eq!(dep["url"], "https://ci.example/runs/42");
    let key = group(
        &q,
        group_of(&q, "shop", "KeyError").await["id"]
            .as_i64()
            .unwrap(),
    )
    .await;
    assert_eq!(key["deploy"]["version"], "1.4.0");
    // When it changed: its first event (the exception, 1 µs into the span).
    assert_eq!(
        key["deploy"]["at_unix_nano"],
        (t0 + 5 * MIN + 30 * SEC + 1000).to_string()
    );
    let typ = group(
        &q,
        group_of(&q, "shop", "TypeError").await["id"]
            .as_i64()
            .unwrap(),
    )
    .await;
    assert!(typ["deploy"].is_null(), "{typ:#}");
    assert!(typ["resolved_by_deploy"].is_null());

    // Which release, when several services have it; unknown ones.
    let r = get(&q, "/api/v1/releases/1.5.0").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("shop (prod)") && message.contains("web (prod)"),
        "{message}"
    );
    assert_eq!(
        get_ok(&q, "/api/v1/releases/1.5.0?service=web").await["service_name"],
        "web"
    );
    assert_eq!(get(&q, "/api/v1/releases/9.9.9").await.status, 404);
    assert_eq!(
        get(&q, "/api/v1/releases/1.5.0?service=shop&x=1")
            .await
            .status,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_deploy_fixes_a_group_resolved_in_next_release_and_it_regresses_on_it() {
    let (_dir, q) = start(&[]);
    let endpoint = format!("http://{}", q.otlp_http);
    let sdk = |version: &str, ok: &str, failing: &str| {
        run_python(
            "send_release.py",
            &[version, ok, failing],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
        )
    };
    // The SDK's service.version is the release: seen on its first span.
    sdk("1.0.0", "5", "2");
    let releases = get_ok(&q, "/api/v1/releases?service=cart").await;
    assert_eq!(releases[0]["version"], "1.0.0");
    assert_eq!(releases[0]["source"], "telemetry");
    let g = group_of(&q, "cart", "KeyError").await;
    let id = g["id"].as_i64().unwrap();
    let path = format!("/api/v1/errors/{id}");
    assert_eq!(group(&q, id).await["deploy"]["version"], "1.0.0");

    let r = patch(
        &q,
        &path,
        json!({"status": "resolved", "in_next_release": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body["resolved_by_deploy"].is_null(),
        "not fixed until the next deploy"
    );
    // The old release keeps failing: still resolved, still not fixed.
    sdk("1.0.0", "0", "1");
    let g = group(&q, id).await;
    assert_eq!(g["status"], "resolved");
    assert!(g["resolved_by_deploy"].is_null());

    // CI deploys 1.1.0: the group is fixed by it.
    let r = post(
        &q,
        "/api/v1/releases",
        json!({"service": "cart", "version": "1.1.0", "environment": "prod", "commit": "abc1234"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let g = group(&q, id).await;
    assert_eq!(g["status"], "resolved");
    let fixed = &g["resolved_by_deploy"];
    assert_eq!(
        (
            fixed["change"].as_str(),
            fixed["version"].as_str(),
            fixed["commit"].as_str()
        ),
        (Some("fixed"), Some("1.1.0"), Some("abc1234"))
    );
    let d = get_ok(&q, "/api/v1/releases/1.1.0?service=cart").await;
    let resolved = d["resolved_groups"].as_array().unwrap();
    assert_eq!(resolved.len(), 1, "{d:#}");
    assert_eq!(
        (resolved[0]["id"].as_i64(), resolved[0]["change"].as_str()),
        (Some(id), Some("fixed"))
    );

    // The bug is back on 1.1.0: regressed, laid at 1.1.0's door.
    sdk("1.1.0", "3", "1");
    let g = group(&q, id).await;
    assert_eq!(
        (g["status"].as_str(), g["substatus"].as_str()),
        (Some("unresolved"), Some("regressed"))
    );
    assert!(g["resolved_by_deploy"].is_null(), "{g:#}");
    assert_eq!(
        (
            g["deploy"]["version"].as_str(),
            g["deploy"]["change"].as_str()
        ),
        (Some("1.1.0"), Some("regressed"))
    );
    let d = get_ok(&q, "/api/v1/releases/1.1.0?service=cart").await;
    assert_eq!(d["regressed_groups"], 1);
    assert_eq!(d["window"]["regressed_groups"], 1);
    let changes: Vec<(i64, &str)> = d["correlation"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["id"].as_i64().unwrap(), g["change"].as_str().unwrap()))
        .collect();
    assert_eq!(changes, vec![(id, "regressed")]);
    // A deploy after that fixes nothing: the group is no longer waiting.
    let r = post(
        &q,
        "/api/v1/releases",
        json!({"service": "cart", "version": "1.2.0", "environment": "prod"}),
    )
    .await;
    assert_eq!(r.status, 201);
    let d = get_ok(&q, "/api/v1/releases/1.2.0?service=cart").await;
    assert_eq!(d["resolved_groups"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_quiet_since_a_deploy_resolve_after_the_quiet_time() {
    let (_dir, q) = start(&[("QYL_ERRORS_AUTO_RESOLVE_AFTER_DEPLOY", "5s")]);
    let t = now() - 120 * SEC;
    let stale = (
        "StaleCache",
        "stale",
        trace("cache", "get", 3, "StaleCache: stale"),
    );
    let live = ("Flaky", "flaky", trace("net", "call", 9, "Flaky: flaky"));
    // 2.0.0 replaces 1.0.0 at t + 60 s and runs for 10 s; the stale-cache bug
    // stops with it, the flaky one goes on.
    send_spans(&q, "api", "1.0.0", &[Sp::failing(1, t, 10, stale.clone())]).await;
    send_spans(
        &q,
        "api",
        "2.0.0",
        &[
            Sp::request(2, t + 60 * SEC, 10),
            Sp::failing(3, t + 65 * SEC, 10, live.clone()),
            Sp::request(4, t + 70 * SEC, 10),
        ],
    )
    .await;
    // Another service without releases: nothing resolves its groups.
    let other = ("Boom", "boom", trace("other", "run", 1, "Boom: boom"));
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [s("service.name", "batch")]},
        "scopeSpans": [{"spans": [Sp::failing(5, t, 10, other).json()]}],
    }]});
    assert_eq!(post(&q, "/v1/traces", body).await.status, 200);

    let stale_id = group_of(&q, "api", "StaleCache").await["id"]
        .as_i64()
        .unwrap();
    let g = eventually(|| async {
        let g = group(&q, stale_id).await;
        (g["status"] == "resolved").then_some(g)
    })
    .await;
    assert_eq!(g["substatus"], "auto");
    assert_eq!(
        (
            g["resolved_by_deploy"]["change"].as_str(),
            g["resolved_by_deploy"]["version"].as_str()
        ),
        (Some("quiet"), Some("2.0.0"))
    );
    assert_eq!(group_of(&q, "api", "Flaky").await["status"], "unresolved");
    assert_eq!(group_of(&q, "batch", "Boom").await["status"], "unresolved");
    let d = get_ok(&q, "/api/v1/releases/2.0.0").await;
    assert_eq!(d["resolved_groups"][0]["id"], stale_id);
    assert_eq!(d["resolved_groups"][0]["change"], "quiet");

    // It comes back: regressed, and no longer resolved by the deploy.
    send_spans(&q, "api", "2.0.0", &[Sp::failing(6, now(), 10, stale)]).await;
    let g = group(&q, stale_id).await;
    assert_eq!(g["substatus"], "regressed");
    assert!(g["resolved_by_deploy"].is_null());
    assert_eq!(g["deploy"]["change"], "regressed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_compares_with_the_last_week_and_remembers_it_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qyl.duckdb");
    let env = [("QYL_STORAGE_RETENTION_HOURS", "720")];
    let mut q = Qyl::start(&db, &env);
    let n = now();
    let this_hour = n - n % HOUR;
    let fail = |id: u64, at: u64, ty: &str| {
        Sp::failing(
            id,
            at,
            5,
            (ty, "failed", trace("jobs", ty, 1, &format!("{ty}: failed"))),
        )
    };
    // Steady: 48 a day for the last seven days (2 an hour).
    let steady: Vec<Sp> = (1..=7u64)
        .flat_map(|d| (0..48u64).map(move |k| (d, k)))
        .map(|(d, k)| {
            fail(
                1_000 + d * 100 + k,
                this_hour - d * DAY + k * 30 * MIN,
                "Steady",
            )
        })
        .collect();
    // Once noisy: 400 nine days ago, then one a day.
    let mut once: Vec<Sp> = (0..400u64)
        .map(|k| fail(5_000 + k, this_hour - 9 * DAY + k * SEC, "OnceNoisy"))
        .collect();
    once.extend((1..=7u64).map(|d| fail(6_000 + d, this_hour - d * DAY + 30 * MIN, "OnceNoisy")));
    send_spans(&q, "jobs", "1", &steady).await;
    send_spans(&q, "jobs", "1", &once).await;

    // Restarted: the week is read back from the stored events.
    q.stop();
    let q = Qyl::start(&db, &env);
    let burst = |base: u64, count: u64, ty: &str| -> Vec<Sp> {
        (0..count)
            .map(|k| fail(base + k, this_hour + k * 1_000_000, ty))
            .collect()
    };
    // 12 in this hour: six times Steady's rate (no escalation), but far
    // over OnceNoisy's week (its average since first seen, about 1.9 an
    // hour, would have hidden it).
    send_spans(&q, "jobs", "1", &burst(10_000, 12, "Steady")).await;
    send_spans(&q, "jobs", "1", &burst(20_000, 12, "OnceNoisy")).await;
    assert_ne!(
        group_of(&q, "jobs", "Steady").await["substatus"],
        "escalating"
    );
    assert_eq!(
        group_of(&q, "jobs", "OnceNoisy").await["substatus"],
        "escalating"
    );
    // Ten more make 22 for Steady: past 10x its 2 an hour.
    send_spans(&q, "jobs", "1", &burst(30_000, 10, "Steady")).await;
    assert_eq!(
        group_of(&q, "jobs", "Steady").await["substatus"],
        "escalating"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_a_deploy_needs_the_full_token_and_checks_its_fields() {
    const TOKEN: &str = "full-token";
    let (_dir, q) = start(&[
        ("QYL_AUTH_TOKEN", TOKEN),
        ("QYL_AUTH_INGEST_TOKEN", "send-only"),
        ("QYL_AUTH_READ_TOKEN", "look-only"),
    ]);
    let body = json!({"service": "api", "version": "3.1.0", "environment": "prod"});
    let path = "/api/v1/releases";
    assert_eq!(post_as(&q, path, body.clone(), None).await.status, 401);
    assert_eq!(
        post_as(&q, path, body.clone(), Some("look-only"))
            .await
            .status,
        403
    );
    // The ingest token is no API credential at all.
    assert_eq!(
        post_as(&q, path, body.clone(), Some("send-only"))
            .await
            .status,
        401
    );
    let r = post_as(&q, path, body, Some(TOKEN)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body["commit"].is_null() && r.body["url"].is_null());

    let at = now() - 10 * MIN;
    let r = post_as(
        &q,
        path,
        json!({"service": "api", "version": "3.2.0", "environment": "prod",
               "deployed_at": humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(at)).to_string()}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["first_seen_unix_nano"], at.to_string());
    // Recorded later but deployed earlier: 3.2.0 comes before 3.1.0, and
    // 3.1.0's deploy cuts 3.2.0's window short.
    let list = send(
        reqwest::Client::new()
            .get(format!("http://{}/api/v1/releases?service=api", q.http))
            .bearer_auth("look-only"),
    )
    .await;
    assert_eq!(list.status, 200);
    let versions: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, vec!["3.1.0", "3.2.0"]);
    assert_eq!(list.body[1]["window"]["ends_at_next_deploy"], true);

    for (bad, field) in [
        (json!({"service": "api", "version": " "}), "version"),
        (
            json!({"service": "api", "version": "4", "url": "ftp://x"}),
            "url",
        ),
        (
            json!({"service": "api", "version": "4", "commit": "a\nb"}),
            "commit",
        ),
        (
            json!({"service": "api", "version": "4", "deployed_at": "whenever"}),
            "deployed_at",
        ),
        (
            json!({"service": "api", "version": "4", "deployed_at": (now() / 1_000_000) + 3_600_000}),
            "deployed_at",
        ),
        (
            json!({"service": "api", "version": "4", "sha": "abc"}),
            "sha",
        ),
    ] {
        let r = post_as(&q, path, bad.clone(), Some(TOKEN)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{bad}: {message}");
    }
    let r = send(
        reqwest::Client::new()
            .get(format!("http://{}/api/v1/releases/4", q.http))
            .bearer_auth("look-only"),
    )
    .await;
    assert_eq!(r.status, 404, "nothing was stored by the refused requests");
}
