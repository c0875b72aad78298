//! The alerting side of functions without a server: `on = "slo"` records
//! offered as the hub would, `runtime.http` against a small HTTP server on
//! a free loopback port, and secrets kept out of every row.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::executor_tests::{setup, setup_full, Setup};
use super::http::{AllowList, HttpSettings};
use super::runtime_api::RuntimeContext;
use super::secrets::SecretsConfig;
use crate::model::function::InvocationStatus;
use crate::model::slo::{SloLevel, SloTransition};
use crate::model::Record;
use crate::stream::Event;

fn slo_event(seq: u64, to: SloLevel, from: SloLevel, objective: f64) -> Event {
    Event {
        seq,
        record: Record::Slo(Arc::new(SloTransition {
            slo: "checkout-availability".into(),
            service_name: "checkout".into(),
            objective,
            from,
            to,
            tier: Some("page 14.4x (1h & 5m)".into()),
            burn_rate_long: 20.5,
            burn_rate_short: 31.0,
            budget_remaining: 0.25,
            at_unix_nano: 1_700_000_000_000_000_000,
        })),
    }
}

fn json(text: Option<&str>) -> serde_json::Value {
    serde_json::from_str(text.expect("a result")).expect("JSON")
}

const SLO_SCRIPTS: &str = r#"
return {
  qyl.fn {
    name = "paging",
    trigger = { on = "slo", where = { level = "page", service = "checkout", objective = { gte = 99 } } },
    handler = function(slo, runtime)
      local a = qyl.alert.from_slo(slo)
      return { signal = slo.signal, slo = slo.slo, name = slo.name, service = slo.service,
               level = slo.level, from = slo.from, to = slo.to, objective = slo.objective,
               tier = slo.tier, burn = slo.burn_rate_long, short = slo.burn_rate_short,
               budget = slo.budget_remaining, start = slo.start_time,
               table_to = slo:table().to, title = a.title, dedup = a.dedup_key,
               severity = a.severity, resolved = a.resolved }
    end,
  },
  qyl.fn {
    name = "any-slo",
    trigger = { on = "slo", when = function(slo) return slo.from ~= "warning" end },
    handler = function(slo) return slo.level end,
  },
  qyl.fn { name = "errors-only", trigger = { on = "error" }, handler = function() return 1 end },
  qyl.fn { name = "spans-only", trigger = { on = "span" }, handler = function() return 1 end },
}
"#;

#[test]
fn slo_level_changes_reach_slo_functions_with_their_fields() {
    let s = setup(&[("slo.lua", SLO_SCRIPTS)]);
    // page from ok, objective 99.9: both SLO functions.
    assert_eq!(s.send(&slo_event(1, SloLevel::Page, SloLevel::Ok, 99.9)), 2);
    // A warning, and a page of a looser objective: only the catch-all.
    assert_eq!(
        s.send(&slo_event(2, SloLevel::Warning, SloLevel::Ok, 99.9)),
        1
    );
    assert_eq!(s.send(&slo_event(3, SloLevel::Page, SloLevel::Ok, 95.0)), 1);
    // `where` matched, `when` declines: offered, but not an invocation.
    assert_eq!(
        s.send(&slo_event(4, SloLevel::Ok, SloLevel::Warning, 99.9)),
        1
    );
    let rows = s.wait_rows("paging", 1);
    assert_eq!(rows[0].status, InvocationStatus::Completed, "{rows:?}");
    let r = json(rows[0].result.as_deref());
    assert_eq!(r["signal"], "slo");
    assert_eq!(r["slo"], "checkout-availability");
    assert_eq!(r["name"], "checkout-availability");
    assert_eq!(r["service"], "checkout");
    assert_eq!(r["level"], "page");
    assert_eq!(r["to"], "page");
    assert_eq!(r["table_to"], "page");
    assert_eq!(r["from"], "ok");
    assert_eq!(r["objective"], 99.9);
    assert_eq!(r["tier"], "page 14.4x (1h & 5m)");
    assert_eq!(r["burn"], 20.5);
    assert_eq!(r["short"], 31.0);
    assert_eq!(r["budget"], 0.25);
    assert_eq!(r["start"], "1700000000000000000");
    assert_eq!(
        r["title"],
        "SLO checkout-availability of checkout: page level burn"
    );
    assert_eq!(r["dedup"], "qyl-slo-checkout-availability-checkout");
    assert_eq!(r["severity"], "critical");
    assert_eq!(r["resolved"], false);
    // No trace: an SLO change comes from many requests.
    assert_eq!(rows[0].trace_id, None);

    let any = s.wait_rows("any-slo", 3);
    let mut levels: Vec<String> = any
        .iter()
        .map(|r| r.result.clone().unwrap_or_default())
        .collect();
    levels.sort();
    assert_eq!(levels, ["\"page\"", "\"page\"", "\"warning\""]);
    std::thread::sleep(Duration::from_millis(100));
    s.engine.executor().outbox().flush();
    assert_eq!(s.sink.invocations("any-slo").len(), 3);
    assert!(s.sink.invocations("errors-only").is_empty());
    assert!(s.sink.invocations("spans-only").is_empty());
    let listed = s.engine.list();
    let paging = listed.iter().find(|f| f.name == "paging").unwrap();
    assert_eq!(paging.on, "slo");
    assert_eq!(
        paging.trigger,
        "slo service in [checkout], level in [page], objective >= 99"
    );
}

/// An engine whose `runtime.http` settings are `http`.
fn setup_http(files: &[(&str, &str)], http: HttpSettings) -> Setup {
    setup_full(files, |_| {}, RuntimeContext::detached_with_http(http))
}

fn allow(entries: &[String]) -> AllowList {
    AllowList::parse(entries).expect("valid allow list")
}

#[test]
fn hosts_not_allowed_are_refused_with_an_error_the_script_can_catch() {
    let s = setup(&[(
        "refused.lua",
        r#"return {
  qyl.fn { name = "caught", trigger = { on = "span" }, handler = function(_, runtime)
    local ok, err = pcall(runtime.http.post, "https://hooks.example.com/services/T/B/xyz", { text = "hi" })
    return { ok = ok, err = tostring(err) }
  end },
  qyl.fn { name = "uncaught", trigger = { on = "span" }, handler = function(_, runtime)
    return runtime.http.get("https://hooks.example.com/services/T/B/xyz")
  end },
  qyl.fn { name = "nil-url", trigger = { on = "span" }, handler = function(_, runtime)
    return runtime.http.post(runtime.secret("not_configured"), "x")
  end },
  qyl.fn { name = "in-when", trigger = { on = "span", when = function(span)
    return runtime.http.get("https://hooks.example.com/") end }, handler = function() end },
}"#,
    )]);
    s.send(&super::executor_tests::span_event(1, "svc", 1));
    let caught = s.wait_rows("caught", 1);
    let r = json(caught[0].result.as_deref());
    assert_eq!(r["ok"], false);
    let err = r["err"].as_str().unwrap();
    assert!(
        err.contains("runtime.http.post: host hooks.example.com is not in [functions] http_allow"),
        "{err}"
    );
    assert!(err.contains("nothing is allowed by default"), "{err}");
    let uncaught = s.wait_rows("uncaught", 1);
    assert_eq!(uncaught[0].status, InvocationStatus::Failed);
    let e = uncaught[0].error.as_deref().unwrap();
    assert!(
        e.starts_with("runtime.http.get: host hooks.example.com is not in"),
        "{e}"
    );
    assert!(!e.contains("xyz"), "the URL's path stays out: {e}");
    let nil_url = s.wait_rows("nil-url", 1);
    assert_eq!(
        nil_url[0].error.as_deref(),
        Some("runtime.http.post: the URL must be a string, not nil (a secret that is not set reads as nil)")
    );
    // `when` has no runtime at all (the sandbox has no global `runtime`).
    let when = s.wait_rows("in-when", 1);
    assert_eq!(when[0].status, InvocationStatus::Failed, "{when:?}");

    // The refused call is on the invocation's span and in the counters.
    let spans = s.sink.0.lock().unwrap().spans.clone();
    let own = spans
        .iter()
        .find(|sp| sp.name == "execute_tool uncaught")
        .expect("own span");
    let attrs: serde_json::Value = serde_json::from_str(&own.attributes).unwrap();
    assert_eq!(attrs["qyl.function.http.calls"], 1);
    assert_eq!(attrs["qyl.function.http.failed"], 1);
    assert_eq!(
        attrs["qyl.function.http.origins"],
        serde_json::json!(["https://hooks.example.com"])
    );
    let events: serde_json::Value = serde_json::from_str(&own.events).unwrap();
    assert_eq!(events[0]["name"], "http.request");
    assert_eq!(events[0]["attributes"]["http.request.method"], "GET");
    assert!(events[0]["attributes"]["error.message"]
        .as_str()
        .unwrap()
        .contains("not in [functions] http_allow"));
    assert!(!own.events.contains("xyz"), "{}", own.events);
    let listed = s.engine.list();
    let f = listed.iter().find(|f| f.name == "uncaught").unwrap();
    assert_eq!((f.http_calls, f.http_failed), (1, 1));
}

/// A loopback HTTP/1.1 server answering each connection with the next of
/// `answers` (status, content type, body, delay) and keeping what it got.
struct TestServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    fn start(answers: Vec<(u16, &'static str, String, Duration)>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let got = requests.clone();
        std::thread::spawn(move || {
            for (status, content_type, body, delay) in answers {
                let Ok((mut conn, _)) = listener.accept() else {
                    return;
                };
                let request = read_request(&mut conn);
                got.lock().unwrap().push(request);
                std::thread::sleep(delay);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\nx-answer: yes\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TestServer { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn read_request(conn: &mut std::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return text;
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&buf).to_string(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn calls_to_an_allowed_host_send_json_and_return_the_answer() {
    let server = TestServer::start(vec![
        (
            200,
            "application/json",
            r#"{"echo":"hi"}"#.into(),
            Duration::ZERO,
        ),
        (500, "text/plain", "nope".into(), Duration::ZERO),
        (503, "text/plain", "later".into(), Duration::ZERO),
        (200, "text/plain", "x".repeat(5000), Duration::ZERO),
    ]);
    let http = HttpSettings {
        allow: allow(&[format!("127.0.0.1:{}", server.port)]),
        max_response_bytes: 1024,
        ..HttpSettings::default()
    };
    let script = format!(
        r#"local URL = "http://127.0.0.1:{port}/hook?token=abc"
return qyl.fn {{ name = "poster", trigger = {{ on = "span" }}, handler = function(span, runtime)
  local r = runtime.http.post(URL, {{ text = "hello", n = 2 }}, {{ headers = {{ ["x-test"] = "1" }} }})
  local failed = {{ pcall(runtime.http.post, URL, "plain") }}
  local any = runtime.http.get(URL, {{ any_status = true, timeout = 2000 }})
  local big = {{ pcall(runtime.http.get, URL) }}
  return {{ status = r.status, ok = r.ok, ct = r.headers["content-type"], answer = r.headers["x-answer"],
           echo = r:json().echo, body = r.body, failed = tostring(failed[2]),
           any_status = any.status, any_ok = any.ok, any_body = any.body, big = tostring(big[2]) }}
end, timeout_ms = 10000 }}"#,
        port = server.port
    );
    let s = setup_http(&[("poster.lua", &script)], http);
    s.send(&super::executor_tests::span_event(1, "svc", 1));
    let rows = s.wait_rows("poster", 1);
    assert_eq!(rows[0].status, InvocationStatus::Completed, "{rows:?}");
    let r = json(rows[0].result.as_deref());
    assert_eq!(r["status"], 200);
    assert_eq!(r["ok"], true);
    assert_eq!(r["ct"], "application/json");
    assert_eq!(r["answer"], "yes");
    assert_eq!(r["echo"], "hi");
    let failed = r["failed"].as_str().unwrap();
    assert!(
        failed.contains(&format!(
            "runtime.http.post: http://127.0.0.1:{} answered 500: nope",
            server.port
        )),
        "{failed}"
    );
    assert!(!failed.contains("token=abc"), "{failed}");
    assert_eq!(r["any_status"], 503);
    assert_eq!(r["any_ok"], false);
    assert_eq!(r["any_body"], "later");
    let big = r["big"].as_str().unwrap();
    assert!(
        big.contains("larger than [functions] http_max_response_kb"),
        "{big}"
    );

    let got = server.requests();
    assert_eq!(got.len(), 4, "{got:#?}");
    let first = got[0].to_ascii_lowercase();
    assert!(
        first.starts_with("post /hook?token=abc http/1.1"),
        "{first}"
    );
    assert!(first.contains("content-type: application/json"), "{first}");
    assert!(first.contains("x-test: 1"), "{first}");
    assert!(first.contains("user-agent: qyl/"), "{first}");
    let body = &got[0][got[0].find("\r\n\r\n").unwrap() + 4..];
    let sent: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(sent, serde_json::json!({ "text": "hello", "n": 2 }));
    assert!(got[1]
        .to_ascii_lowercase()
        .contains("content-type: text/plain"));

    let spans = s.sink.0.lock().unwrap().spans.clone();
    let own = spans
        .iter()
        .find(|sp| sp.name == "execute_tool poster")
        .unwrap();
    let attrs: serde_json::Value = serde_json::from_str(&own.attributes).unwrap();
    assert_eq!(attrs["qyl.function.http.calls"], 4);
    assert_eq!(attrs["qyl.function.http.failed"], 3);
    assert_eq!(
        attrs["qyl.function.http.statuses"],
        serde_json::json!([200, 500, 503, null])
    );
    assert!(!own.events.contains("token"), "{}", own.events);
}

#[test]
fn a_slow_endpoint_times_out_within_the_call_and_the_deadline() {
    let server = TestServer::start(vec![
        (200, "text/plain", "late".into(), Duration::from_secs(3)),
        (200, "text/plain", "late".into(), Duration::from_secs(3)),
    ]);
    let http = HttpSettings {
        allow: allow(&[format!("127.0.0.1:{}", server.port)]),
        ..HttpSettings::default()
    };
    let script = format!(
        r#"return {{
  qyl.fn {{ name = "own-timeout", trigger = {{ on = "span", where = {{ service = "a" }} }}, handler = function(span, runtime)
    return runtime.http.get("http://127.0.0.1:{port}/", {{ timeout = "300ms" }})
  end }},
  qyl.fn {{ name = "deadline", trigger = {{ on = "span", where = {{ service = "b" }} }}, timeout_ms = 400, handler = function(span, runtime)
    return runtime.http.get("http://127.0.0.1:{port}/")
  end }},
}}"#,
        port = server.port
    );
    let s = setup_http(&[("slow.lua", &script)], http);
    let started = std::time::Instant::now();
    s.send(&super::executor_tests::span_event(1, "a", 1));
    s.send(&super::executor_tests::span_event(2, "b", 1));
    let own = s.wait_rows("own-timeout", 1);
    assert_eq!(own[0].status, InvocationStatus::Failed, "{own:?}");
    let e = own[0].error.as_deref().unwrap();
    assert!(e.contains("no answer within 300 ms"), "{e}");
    let deadline = s.wait_rows("deadline", 1);
    let e = deadline[0].error.as_deref().unwrap();
    assert!(
        matches!(
            deadline[0].status,
            InvocationStatus::Failed | InvocationStatus::TimedOut
        ),
        "{deadline:?}"
    );
    assert!(
        e.contains("the invocation's deadline") || e.contains("timed out"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn secrets_are_read_from_config_and_scrubbed_from_every_row() {
    const VALUE: &str = "https://hooks.example.com/T000/B000/s3cr3t-T0KEN";
    let http = HttpSettings {
        secrets: SecretsConfig(
            [("hook".to_string(), VALUE.to_string())]
                .into_iter()
                .collect(),
        ),
        ..HttpSettings::default()
    };
    let script = r#"return qyl.fn { name = "leaky", trigger = { on = "span" }, handler = function(span, runtime)
  local s = runtime.secret("hook")
  assert(runtime.secret("not_configured") == nil)
  runtime.log.info("using " .. s)
  runtime.stream.publish("t", { url = s })
  runtime.state.set("kept", s)
  if span.name == "op1" then
    return { url = s, len = #s }
  end
  -- Refused (nothing is allowed), with the secret URL in the message.
  runtime.http.post(s, "x")
end }"#;
    let s = setup_http(&[("leaky.lua", script)], http);
    s.send(&super::executor_tests::span_event(1, "svc", 1));
    s.wait_rows("leaky", 1);
    s.send(&super::executor_tests::span_event(2, "svc", 1));
    let rows = s.wait_rows("leaky", 2);
    let ok = &rows[0];
    assert_eq!(ok.status, InvocationStatus::Completed, "{ok:?}");
    let r = json(ok.result.as_deref());
    assert_eq!(r["url"], "[secret hook]");
    // The script itself had the real value.
    assert_eq!(r["len"], VALUE.len());
    let failed = &rows[1];
    assert_eq!(failed.status, InvocationStatus::Failed);
    let e = failed.error.as_deref().unwrap();
    assert!(e.contains("host hooks.example.com is not in"), "{e}");
    let all = s.sink.0.lock().unwrap();
    let everything = format!(
        "{:?} {:?} {:?} {:?} {:?}",
        all.functions.invocations,
        all.logs,
        all.functions.published,
        all.functions.state,
        all.spans
    );
    assert!(!everything.contains("s3cr3t"), "{everything}");
    assert!(all
        .logs
        .iter()
        .any(|l| l.body.as_deref() == Some("using [secret hook]")));
    assert!(all
        .functions
        .published
        .iter()
        .any(|p| p.value == r#"{"url":"[secret hook]"}"#));
    assert!(all
        .functions
        .state
        .iter()
        .any(|w| w.value.as_deref() == Some(r#""[secret hook]""#)));
}
