//! Tests of `lua-stdlib/qyl.lua` (and its native JSON), run in a real sandbox.

use std::time::Duration;

use mlua::Value;

use super::sandbox::{Limits, Sandbox, SandboxError};

/// Runs `src` in a fresh sandbox and converts the result while the VM is
/// still alive (Lua strings borrow from it).
fn eval_with<R>(src: &str, f: impl FnOnce(Result<Value, SandboxError>) -> R) -> R {
    let mut sb = Sandbox::new(Limits::default()).expect("sandbox");
    let result = sb.run(Duration::from_secs(2), |lua| lua.load(src).eval::<Value>());
    f(result)
}

fn eval(src: &str) -> Result<(), SandboxError> {
    eval_with(src, |r| r.map(|_| ()))
}

fn eval_string(src: &str) -> String {
    eval_with(src, |r| match r {
        Ok(Value::String(s)) => s.to_string_lossy(),
        other => panic!("{src}: {other:?}"),
    })
}

fn eval_number(src: &str) -> f64 {
    eval_with(src, |r| match r {
        Ok(Value::Number(n)) => n,
        Ok(Value::Integer(n)) => n as f64,
        other => panic!("{src}: {other:?}"),
    })
}

#[test]
fn json_round_trips_null_and_empty_arrays() {
    let out = eval_string(
        r#"return qyl.json.encode(qyl.json.decode('{"a":null,"b":[],"c":[1,2],"d":{"e":"x"}}'))"#,
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"a": null, "b": [], "c": [1, 2], "d": {"e": "x"}})
    );
    // Key order of a Lua table is not defined: compare as JSON.
    let s = eval_string("return qyl.json.encode({ x = qyl.json.null, y = qyl.json.array({}) })");
    let v: serde_json::Value = serde_json::from_str(&s).expect("json");
    assert_eq!(v, serde_json::json!({"x": null, "y": []}));
    assert_eq!(
        eval_string("return qyl.json.encode({1, 'two', true})"),
        r#"[1,"two",true]"#
    );
    assert_eq!(eval_number("return qyl.json.decode('[10, 20]')[2]"), 20.0);
}

#[test]
fn json_errors_are_script_errors() {
    let err = eval("return qyl.json.decode('{nope')").expect_err("bad json");
    assert!(matches!(err, SandboxError::Script(_)), "{err:?}");
    let err = eval("return qyl.json.encode({ f = function() end })").expect_err("function");
    assert!(matches!(err, SandboxError::Script(_)), "{err:?}");
}

#[test]
fn group_count_and_top() {
    let src = r#"
        local items = {
          { msg = "timeout", n = 1 }, { msg = "refused", n = 2 },
          { msg = "timeout", n = 3 }, { msg = "timeout", n = 4 }, { n = 5 },
        }
        local groups = qyl.group_by(items, "msg")
        local counts = qyl.count_by(items, function(i) return i.msg end)
        local top = qyl.top(counts, 1)
        return string.format("%d %d %d %d %s %d %d", #groups.timeout, #groups.refused,
          counts.timeout, counts.refused, top[1].key, top[1].count, #top)
    "#;
    assert_eq!(eval_string(src), "3 1 3 1 timeout 3 1");
    // Ties are broken by key so the output is stable.
    assert_eq!(
        eval_string(
            "local t = qyl.top({ b = 2, a = 2, c = 5 }) return t[1].key .. t[2].key .. t[3].key"
        ),
        "cab"
    );
}

#[test]
fn durations() {
    assert_eq!(eval_number("return qyl.duration('30s')"), 30_000.0);
    assert_eq!(eval_number("return qyl.duration('500ms')"), 500.0);
    assert_eq!(eval_number("return qyl.duration('1h30m')"), 5_400_000.0);
    assert_eq!(eval_number("return qyl.duration('2d')"), 172_800_000.0);
    assert_eq!(eval_number("return qyl.duration(250)"), 250.0);
    for bad in ["'5 minutes'", "'5x'", "''", "'s'"] {
        let err = eval(&format!("return qyl.duration({bad})")).expect_err(bad);
        match err {
            SandboxError::Script(m) => assert!(m.contains("qyl.duration"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn string_helpers() {
    assert_eq!(
        eval_string(
            "local s = qyl.str return tostring(s.starts_with('gen_ai.x', 'gen_ai.')) .. tostring(s.ends_with('a.lua', '.lua')) .. tostring(s.contains('a.b', '.')) .. tostring(s.starts_with('a', 'ab'))"
        ),
        "truetruetruefalse"
    );
    assert_eq!(
        eval_string("return '[' .. qyl.str.trim('  x y \\n') .. ']'"),
        "[x y]"
    );
    assert_eq!(
        eval_string("return table.concat(qyl.str.split('a,,b', ','), '|')"),
        "a||b"
    );
    assert_eq!(eval_string("return qyl.str.truncate('héllo', 2)"), "hé…");
    assert_eq!(eval_string("return qyl.str.truncate('hi', 5)"), "hi");
}

#[test]
fn fn_checks_the_shape_and_returns_the_definition() {
    assert_eq!(
        eval_string(
            "local d = qyl.fn { name = 'x', trigger = { on = 'span' }, handler = function() end } return d.name"
        ),
        "x"
    );
    for (src, needle) in [
        ("qyl.fn('x')", "expects a table"),
        (
            "qyl.fn { trigger = {}, handler = function() end }",
            "`name`",
        ),
        (
            "qyl.fn { name = 'x', handler = function() end }",
            "`trigger`",
        ),
        ("qyl.fn { name = 'x', trigger = {} }", "`handler`"),
    ] {
        match eval(src).expect_err(src) {
            SandboxError::Script(m) => assert!(m.contains(needle), "{src}: {m}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(eval_string("return tostring(qyl.exists)"), "qyl.exists");
}

/// The JSON a builder returns (what `runtime.http.post` would send).
fn payload(src: &str) -> serde_json::Value {
    let text = eval_string(&format!("return qyl.json.encode((function() {src} end)())"));
    serde_json::from_str(&text).expect("JSON")
}

/// An `on = "error"` record as `record:table()` gives it.
const GROUP: &str = r#"local g = { change = "new", group_id = 42, category = "genai", service_name = "chat",
  error_type = "RateLimitError", message_template = "429 <too many> & slow", count = 3,
  genai_model = "gpt-4o", genai_error_class = "rate_limit", release = "1.5.0",
  trace_id = "abc", last_seen_unix_nano = 1700000000000000000 }"#;

/// An `on = "slo"` record as `record:table()` gives it.
const SLO: &str = r#"local t = { slo = "chat-availability", service_name = "chat", objective = 99.9,
  from = "ok", to = "page", tier = "page 14.4x (1h & 5m)", burn_rate_long = 20.3,
  burn_rate_short = 30, budget_remaining = 0.5, at_unix_nano = 1700000000000000000 }"#;

#[test]
fn slack_messages_have_a_fallback_text_and_blocks() {
    let p = payload(&format!(
        "{GROUP} return qyl.slack.message(qyl.alert.from_error(g))"
    ));
    assert_eq!(
        p["text"],
        "new GenAI error in chat: RateLimitError: 429 <too many> & slow"
    );
    let blocks = p["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(
        blocks[0]["text"]["text"],
        ":red_circle: new GenAI error in chat: RateLimitError"
    );
    // mrkdwn needs &, < and > escaped.
    assert_eq!(blocks[1]["text"]["text"], "429 &lt;too many&gt; &amp; slow");
    let fields = blocks[2]["fields"].as_array().unwrap();
    assert_eq!(fields[0]["text"], "*Service*\nchat");
    assert!(fields.iter().any(|f| f["text"] == "*Events*\n3"));
    assert!(fields.len() <= 10);
    assert_eq!(blocks[3]["type"], "context");
    // A plain string is a message too.
    let p = payload("return qyl.slack.message('deploy done')");
    assert_eq!(p["text"], "deploy done");
}

#[test]
fn pagerduty_events_trigger_and_resolve_with_one_dedup_key() {
    let p = payload(&format!(
        "{SLO} return qyl.pagerduty.event(qyl.alert.from_slo(t), 'R0UT1NG')"
    ));
    assert_eq!(p["routing_key"], "R0UT1NG");
    assert_eq!(p["event_action"], "trigger");
    assert_eq!(p["dedup_key"], "qyl-slo-chat-availability-chat");
    assert_eq!(p["client"], "qyl");
    let body = &p["payload"];
    assert_eq!(
        body["summary"],
        "SLO chat-availability of chat: page level burn"
    );
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["source"], "chat");
    assert_eq!(body["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(body["custom_details"]["Objective"], "99.9%");
    assert_eq!(body["custom_details"]["Burn rate"], "20.3x");
    assert_eq!(body["custom_details"]["Budget left"], "50%");
    let p = payload(&format!(
        "{SLO} t.from = 'page' t.to = 'ok' return qyl.pagerduty.event(qyl.alert.from_slo(t), 'R0UT1NG')"
    ));
    assert_eq!(
        p,
        serde_json::json!({ "routing_key": "R0UT1NG", "event_action": "resolve",
                            "dedup_key": "qyl-slo-chat-availability-chat" })
    );
    assert_eq!(
        eval_string("return qyl.pagerduty.url"),
        "https://events.pagerduty.com/v2/enqueue"
    );
    for (src, needle) in [
        (
            format!("{SLO} return qyl.pagerduty.event(qyl.alert.from_slo(t))"),
            "routing key",
        ),
        (
            "return qyl.pagerduty.event(qyl.alert.new({ title = 'x', resolved = true }), 'k')"
                .into(),
            "dedup_key",
        ),
        (
            "return qyl.alert.new({ title = 'x', severity = 'loud' })".into(),
            "severity",
        ),
        ("return qyl.alert.from_error(5)".into(), "record"),
    ] {
        match eval(&src).expect_err(&src) {
            SandboxError::Script(m) => assert!(m.contains(needle), "{src}: {m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn webhook_payloads_are_the_alert_as_plain_json() {
    let p = payload(&format!(
        "{GROUP} return qyl.webhook.payload(qyl.alert.from_error(g))"
    ));
    assert_eq!(p["source"], "qyl");
    assert_eq!(p["title"], "new GenAI error in chat: RateLimitError");
    assert_eq!(p["severity"], "error");
    assert_eq!(p["service"], "chat");
    assert_eq!(p["dedup_key"], "qyl-error-42");
    assert_eq!(p["resolved"], false);
    assert_eq!(p["fields"]["Model"], "gpt-4o");
    assert_eq!(p["fields"]["GenAI class"], "rate_limit");
    assert_eq!(p["details"]["group_id"], 42);
    assert_eq!(p["time"], "2023-11-14T22:13:20Z");
    // Escalation is critical; custom alerts keep their own fields in order.
    let p = payload(&format!(
        "{GROUP} g.change = 'escalating' return qyl.webhook.payload(qyl.alert.from_error(g))"
    ));
    assert_eq!(p["severity"], "critical");
    let p = payload(
        "return qyl.webhook.payload(qyl.alert.new({ title = 'Spend', severity = 'info', fields = { { 'Cost', '$3' }, { 'Skipped', nil } } }))",
    );
    assert_eq!(p["fields"], serde_json::json!({ "Cost": "$3" }));
    assert!(p["time"].as_str().unwrap().ends_with('Z'));
}
