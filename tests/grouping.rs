//! Error groups across restarts and fingerprint versions, as an operator
//! meets them: a database written by the previous grouping rules is opened
//! by this qyl, which must keep every group's history (the same bug split
//! by a deploy under the old rules becomes one group), count each user once
//! however often qyl restarts, and keep live-stream sequence numbers moving
//! forward across a crash.

mod common;

use common::api::{eventually_for, get_ok, now, post, s, Live};
use common::{count, run_python, Qyl};
use qyl::errors::fingerprint::hash_components;
use qyl::errors::{parse_stacktrace, InAppRules, LanguageHint};
use serde_json::{json, Value};

const SEC: u64 = 1_000_000_000;

/// The same browser bug as one deploy's Vite build prints it: the bundle's
/// name carries that build's content hash.
fn cart_trace(vite_hash: &str) -> String {
    format!(
        "TypeError: Cannot read properties of undefined (reading 'price')
    at renderCart (https://shop.acme.io/assets/index-{vite_hash}.js:1:20451)
    at updateCart (https://shop.acme.io/assets/index-{vite_hash}.js:1:18022)
"
    )
}

/// Another bug, in another function.
fn pay_trace(vite_hash: &str) -> String {
    format!(
        "TypeError: card is undefined
    at chargeCard (https://shop.acme.io/assets/pay-{vite_hash}.js:1:311)
"
    )
}

/// What fingerprint version 1 hashed for these traces: the file name as
/// printed (it only knew hex bundle hashes), and the function.
fn v1_components(file: &str, functions: &[&str]) -> Vec<String> {
    std::iter::once("type:TypeError".to_string())
        .chain(functions.iter().map(|f| format!("frame:{file} {f}")))
        .collect()
}

fn frames_json(trace: &str) -> String {
    let hint = LanguageHint {
        sdk_language: Some("webjs"),
        exception_type: Some("TypeError"),
    };
    let parsed = parse_stacktrace(trace, hint, &InAppRules::default()).expect("trace parses");
    serde_json::to_string(&parsed).unwrap()
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A group and its events as fingerprint version 1 stored them.
struct V1Group<'a> {
    id: i64,
    trace: String,
    components: Vec<String>,
    /// (seconds after `t0`, user) per event.
    events: &'a [(u64, &'a str)],
    release: &'a str,
}

fn write_v1_group(db: &duckdb::Connection, t0: u64, g: &V1Group<'_>) {
    let hash = hash_components(&g.components);
    let first = t0 + g.events.first().unwrap().0 * SEC;
    let last = t0 + g.events.last().unwrap().0 * SEC;
    let mut users: Vec<&str> = g.events.iter().map(|(_, u)| *u).collect();
    users.sort();
    users.dedup();
    let frame = g.components[1].trim_start_matches("frame:");
    let (file, function) = frame.split_once(' ').unwrap();
    db.execute_batch(&format!(
        "INSERT INTO errors BY NAME SELECT
            {id} AS id, {hash} AS fingerprint, {hash} AS in_app_hash, {hash} AS full_stack_hash,
            '[]' AS merged_hashes, 'in_app_frames' AS fingerprint_rule, 1 AS fingerprint_version,
            {components} AS components, 'TypeError' AS error_type,
            {template} AS message_template, {culprit} AS culprit, 'exception' AS category,
            {first} AS first_seen_unix_nano, {last} AS last_seen_unix_nano,
            {release} AS first_release, {release} AS last_release, 'prod' AS last_environment,
            {n} AS event_count, {n} AS unhandled_count, {user_count} AS user_count,
            '[\"web\"]' AS services, {users} AS users, '[]' AS sample_trace_ids,
            'unresolved' AS status, 'ongoing' AS substatus,
            {hour} AS hour_start_unix_nano, 1 AS hour_count",
        id = g.id,
        hash = sql_str(&hash),
        components = sql_str(&serde_json::to_string(&g.components).unwrap()),
        template = sql_str(
            g.trace
                .lines()
                .next()
                .unwrap()
                .trim_start_matches("TypeError: ")
        ),
        culprit = sql_str(&format!("{function} in {file}")),
        release = sql_str(g.release),
        n = g.events.len(),
        user_count = users.len(),
        users = sql_str(&serde_json::to_string(&users).unwrap()),
        hour = last - last % (3600 * SEC),
    ))
    .unwrap();
    for (i, (at, user)) in g.events.iter().enumerate() {
        db.execute_batch(&format!(
            "INSERT INTO error_events BY NAME SELECT
                {event_id} AS event_id, {id} AS group_id, {time} AS time_unix_nano,
                'span_event' AS source, {trace_id} AS trace_id, {span_id} AS span_id,
                'web' AS service_name, {release} AS release, 'prod' AS environment,
                {user} AS user_id, 'TypeError' AS error_type, {message} AS message,
                {stacktrace} AS stacktrace, {frames} AS frames, {culprit} AS culprit,
                false AS handled, {hash} AS fingerprint",
            event_id = sql_str(&format!("{:032x}", 0x7100_0000 + g.id * 100 + i as i64)),
            id = g.id,
            time = t0 + at * SEC,
            trace_id = sql_str(&format!("{:032x}", g.id * 100 + i as i64)),
            span_id = sql_str(&format!("{:016x}", g.id * 100 + i as i64)),
            release = sql_str(g.release),
            user = sql_str(user),
            message = sql_str(
                g.trace
                    .lines()
                    .next()
                    .unwrap()
                    .trim_start_matches("TypeError: ")
            ),
            stacktrace = sql_str(&g.trace),
            frames = sql_str(&frames_json(&g.trace)),
            culprit = sql_str(&format!("{function} in {file}")),
            hash = sql_str(&hash),
        ))
        .unwrap();
    }
}

/// Turns a database this qyl created back into what the release before
/// migration 11 left: the tables of migrations 11 on gone, every row
/// holding its own resource, version, environment and scope again, their
/// version numbers forgotten.
fn as_before_migration_11(db: &duckdb::Connection) {
    db.execute_batch(
        "DROP TABLE error_group_users;
         DROP TABLE hub_watermark;
         DROP TABLE deploys;
         DROP TABLE error_group_changes;
         DROP TABLE service_minutes;
         DROP TABLE slo_transitions;
         DROP TABLE journal_watermark;
         DROP VIEW spans;
         DROP VIEW logs;
         DROP VIEW metrics;
         DROP VIEW span_rows_all;
         DROP VIEW log_rows_all;
         DROP VIEW metric_rows_all;
         DROP TABLE archive_parts;
         DROP VIEW session_traces;
         ALTER TABLE session_trace_rows
             ALTER trace_id SET DATA TYPE VARCHAR USING qyl_trace_hex(trace_id);
         ALTER TABLE session_trace_rows RENAME TO session_traces;
         DROP VIEW error_events;
         ALTER TABLE error_event_rows
             ALTER event_id SET DATA TYPE VARCHAR USING qyl_trace_hex(event_id);
         ALTER TABLE error_event_rows
             ALTER trace_id SET DATA TYPE VARCHAR USING qyl_trace_hex(trace_id);
         ALTER TABLE error_event_rows
             ALTER span_id SET DATA TYPE VARCHAR USING qyl_span_hex(span_id);
         ALTER TABLE error_event_rows RENAME TO error_events;
         ALTER TABLE span_rows ALTER trace_id SET DATA TYPE VARCHAR USING qyl_trace_hex(trace_id);
         ALTER TABLE span_rows ALTER span_id SET DATA TYPE VARCHAR USING qyl_span_hex(span_id);
         ALTER TABLE span_rows ALTER parent_span_id SET DATA TYPE VARCHAR
             USING qyl_span_hex(parent_span_id);
         DROP MACRO qyl_trace_key;
         DROP MACRO qyl_span_key;
         DROP MACRO qyl_trace_hex;
         DROP MACRO qyl_span_hex;
         UPDATE span_rows SET events = coalesce(events, '[]'), links = coalesce(links, '[]');
         ALTER TABLE span_rows ALTER COLUMN events SET NOT NULL;
         ALTER TABLE span_rows ALTER COLUMN links SET NOT NULL;
         UPDATE span_rows SET resource = coalesce(span_rows.resource, r.resource),
             service_version = coalesce(span_rows.service_version, r.service_version),
             deployment_environment =
                 coalesce(span_rows.deployment_environment, r.deployment_environment),
             scope_name = coalesce(span_rows.scope_name, r.scope_name),
             scope_version = coalesce(span_rows.scope_version, r.scope_version)
         FROM resources r WHERE r.resource_id = span_rows.resource_id;
         UPDATE log_rows SET resource = coalesce(log_rows.resource, r.resource),
             service_version = coalesce(log_rows.service_version, r.service_version),
             deployment_environment =
                 coalesce(log_rows.deployment_environment, r.deployment_environment),
             scope_name = coalesce(log_rows.scope_name, r.scope_name)
         FROM resources r WHERE r.resource_id = log_rows.resource_id;
         UPDATE metric_rows SET resource = coalesce(metric_rows.resource, r.resource)
         FROM resources r WHERE r.resource_id = metric_rows.resource_id;
         ALTER TABLE span_rows DROP COLUMN resource_id;
         ALTER TABLE span_rows RENAME TO spans;
         ALTER TABLE log_rows DROP COLUMN resource_id;
         ALTER TABLE log_rows RENAME TO logs;
         ALTER TABLE metric_rows DROP COLUMN resource_id;
         ALTER TABLE metric_rows RENAME TO metrics;
         DROP TABLE resources;
         DELETE FROM schema_version WHERE version >= 11;",
    )
    .unwrap();
}

/// Sends one SERVER span per `(exception trace, user)` over OTLP/HTTP JSON,
/// as a browser SDK's export would reach qyl.
async fn send_errors(q: &Qyl, release: &str, errors: &[(String, &str)], first_id: u64) {
    let start = now();
    let spans: Vec<Value> = errors
        .iter()
        .enumerate()
        .map(|(i, (trace, user))| {
            let id = first_id + i as u64;
            let first = trace.lines().next().unwrap();
            let (ty, msg) = first.split_once(": ").unwrap();
            json!({
                "traceId": format!("{id:032x}"), "spanId": format!("{id:016x}"),
                "name": "click checkout", "kind": 2,
                "startTimeUnixNano": (start + i as u64).to_string(),
                "endTimeUnixNano": (start + i as u64 + 1_000_000).to_string(),
                "attributes": [s("enduser.id", user)],
                "status": {"code": 2},
                "events": [{
                    "name": "exception",
                    "timeUnixNano": (start + i as u64 + 500_000).to_string(),
                    "attributes": [s("exception.type", ty), s("exception.message", msg),
                                   s("exception.stacktrace", trace)],
                }],
            })
        })
        .collect();
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [
            s("service.name", "web"), s("service.version", release),
            s("deployment.environment.name", "prod"), s("telemetry.sdk.language", "webjs"),
        ]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}],
    }]});
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", q.otlp_http))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("export");
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
}

async fn group_where(q: &Qyl, id: i64, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    eventually_for(what, || async {
        let g = get_ok(q, &format!("/api/v1/errors/{id}")).await;
        ok(&g).then_some(g)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_of_the_previous_fingerprint_version_keep_their_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qyl.duckdb");
    // A database as the release with fingerprint version 1 left it.
    let mut q = Qyl::start(&path, &[]);
    let db = q.stop_and_open();
    as_before_migration_11(&db);
    let t0 = now() - 3600 * SEC;
    let (deploy_a, deploy_b, deploy_c) = ("BfK3x9Zq", "Qw3rTy5u", "Zx8cVb2n");
    // Version 1 split the cart bug at the deploy of 1.5.0 (the bundle's
    // hash changed) and kept the payment bug apart.
    let groups = [
        V1Group {
            id: 1,
            trace: cart_trace(deploy_a),
            components: v1_components(
                &format!("index-{deploy_a}.js"),
                &["renderCart", "updateCart"],
            ),
            events: &[(0, "u1"), (60, "u2"), (120, "u1")],
            release: "1.4.0",
        },
        V1Group {
            id: 2,
            trace: cart_trace(deploy_b),
            components: v1_components(
                &format!("index-{deploy_b}.js"),
                &["renderCart", "updateCart"],
            ),
            events: &[(600, "u2"), (660, "u3")],
            release: "1.5.0",
        },
        V1Group {
            id: 3,
            trace: pay_trace(deploy_b),
            components: v1_components(&format!("pay-{deploy_b}.js"), &["chargeCard"]),
            events: &[(700, "u1")],
            release: "1.5.0",
        },
    ];
    for g in &groups {
        write_v1_group(&db, t0, g);
    }
    db.execute_batch(&format!(
        "INSERT INTO error_notes (group_id, created_unix_nano, author, text)
         VALUES (2, {}, 'ann', 'started with the 1.5.0 deploy')",
        t0 + 800 * SEC
    ))
    .unwrap();
    drop(db);

    // This qyl opens it: the split groups become one, the oldest.
    let mut q = Qyl::start(&path, &[]);
    let merged = group_where(&q, 2, "group 2 merged", |g| g["status"] == "merged").await;
    assert_eq!(merged["merged_into"], 1, "{merged}");
    let g = get_ok(&q, "/api/v1/errors/1").await;
    assert_eq!(g["count"], 5, "{g}");
    assert_eq!(g["user_count"], 3, "u2 is in both groups: {g}");
    assert_eq!(g["first_seen_unix_nano"], t0.to_string());
    assert_eq!(g["first_release"], "1.4.0");
    assert_eq!(g["last_release"], "1.5.0");
    let fp = &g["fingerprint_explanation"];
    assert_eq!(fp["version"], 2, "{fp}");
    assert_eq!(
        fp["components"],
        json!([
            "type:TypeError",
            "frame:index renderCart",
            "frame:index updateCart"
        ])
    );
    assert_eq!(
        g["notes"][0]["text"], "started with the 1.5.0 deploy",
        "{g}"
    );
    let events = get_ok(&q, "/api/v1/errors/1/events?limit=50").await;
    assert_eq!(events["items"].as_array().unwrap().len(), 5, "{events}");
    // The other bug stays its own group, rekeyed too.
    let pay = get_ok(&q, "/api/v1/errors/3").await;
    assert_eq!(
        (pay["status"].as_str(), pay["count"].as_u64()),
        (Some("unresolved"), Some(1))
    );
    assert_eq!(pay["fingerprint_explanation"]["version"], 2);

    // The bug again, from a third build: the same group, nothing new.
    send_errors(&q, "1.6.0", &[(cart_trace(deploy_c), "u1")], 1000).await;
    let g = group_where(&q, 1, "the new event counted", |g| g["count"] == 6).await;
    assert_eq!(g["user_count"], 3, "u1 was counted before: {g}");
    assert_eq!(g["last_release"], "1.6.0");
    let all = get_ok(&q, "/api/v1/errors?limit=50").await;
    let ids: Vec<i64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["status"] != "merged")
        .map(|g| g["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "one group per bug: {all}");

    // A restart neither regroups again nor forgets who was counted.
    q.stop();
    let q = Qyl::start(&path, &[]);
    send_errors(
        &q,
        "1.6.0",
        &[(cart_trace(deploy_c), "u3"), (cart_trace(deploy_a), "u4")],
        2000,
    )
    .await;
    let g = group_where(&q, 1, "both events counted", |g| g["count"] == 8).await;
    assert_eq!(g["user_count"], 4, "only u4 is new: {g}");
    let mut q = q;
    let db = q.stop_and_open();
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM errors WHERE fingerprint_version <> 2"
        ),
        0
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM error_events WHERE group_id = 1"),
        8
    );
    assert_eq!(count(&db, "SELECT count(*) FROM errors"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_is_counted_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qyl.duckdb");
    let mut q = Qyl::start(&path, &[]);
    let bug = || cart_trace("BfK3x9Zq");
    // More users than a group keeps as its sample.
    let names: Vec<String> = (0..150).map(|i| format!("user-{i}")).collect();
    let everyone: Vec<(String, &str)> = names.iter().map(|n| (bug(), n.as_str())).collect();
    send_errors(&q, "1.0.0", &everyone, 1).await;
    send_errors(&q, "1.0.0", &everyone[..10], 1000).await;
    let id = eventually_for("the group", || async {
        let all = get_ok(&q, "/api/v1/errors").await;
        let g = all["items"].as_array()?.first()?.clone();
        (g["count"] == 160).then(|| g["id"].as_i64().unwrap())
    })
    .await;
    let g = get_ok(&q, &format!("/api/v1/errors/{id}")).await;
    assert_eq!(g["user_count"], 150, "{}", g["user_count"]);
    for round in 1..=2u64 {
        q.stop();
        q = Qyl::start(&path, &[]);
        // Everyone again after a restart; the second time one newcomer.
        let mut errors = everyone.clone();
        if round == 2 {
            errors.push((bug(), "newcomer"));
        }
        let stored_before = sketch_row(&q, id).await;
        send_errors(&q, "1.0.0", &errors, 10_000 * round).await;
        let want = if round == 1 { 310 } else { 461 };
        let g = group_where(&q, id, "counted", |g| g["count"] == want).await;
        let users = if round == 1 { 150 } else { 151 };
        assert_eq!(g["user_count"], users, "after restart {round}");
        // The sketch row is rewritten only when a user is new to it.
        let stored_after = sketch_row(&q, id).await;
        if round == 1 {
            assert_eq!(stored_after, stored_before, "no new user, same row");
        } else {
            assert_ne!(stored_after, stored_before, "a newcomer, a new row");
        }
    }
}

/// The row holding group `id`'s user sketch: its rowid (new when the row
/// is rewritten) and the sketch.
async fn sketch_row(q: &Qyl, id: i64) -> Value {
    let sql = format!("SELECT rowid, sketch FROM error_group_users WHERE group_id = {id}");
    let r = post(q, "/api/v1/sql", json!({ "sql": sql })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["rows"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );
    r.body["rows"][0].clone()
}

/// The application every deploy root below holds: an app factory that
/// fails on a missing setting.
const CREATE_APP: &str = "import os


def create_app():
    return {\"db\": os.environ[\"QYL_TEST_NEVER_SET_DATABASE_URL\"]}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_the_same_code_from_any_deploy_root_is_one_group() {
    let dir = tempfile::tempdir().unwrap();
    let q = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);
    // `shop` as three deploys place it (a dated release folder, a
    // `current` symlink target, installed into a virtualenv), and `billing`,
    // another package whose factory fails the same way.
    let roots = [
        ("srv/releases/20241203-1412", "shop"),
        ("home/deploy/shop/current", "shop"),
        ("venv/lib/python3.11/site-packages", "shop"),
        ("app", "billing"),
    ];
    let mut args = Vec::new();
    for (root, package) in roots {
        let root = dir.path().join(root);
        std::fs::create_dir_all(root.join(package)).unwrap();
        std::fs::write(root.join(package).join("__init__.py"), CREATE_APP).unwrap();
        args.push(format!("{}:{package}", root.display()));
    }
    let endpoint = format!("http://{}", q.otlp_http);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sent = run_python(
        "deploy_app.py",
        &args,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
    );
    assert_eq!(sent["files"].as_array().unwrap().len(), 4, "{sent}");
    let groups = eventually_for("four events grouped", || async {
        let all = get_ok(&q, "/api/v1/errors?sort=count").await;
        let items = all["items"].as_array()?.clone();
        let total: u64 = items.iter().filter_map(|g| g["count"].as_u64()).sum();
        (total == 4).then_some(items)
    })
    .await;
    let counts: Vec<(u64, String)> = groups
        .iter()
        .map(|g| {
            (
                g["count"].as_u64().unwrap(),
                g["culprit"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    // Three deploys of shop are one bug; billing's is another.
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert_eq!(counts[0].0, 3, "{counts:?}");
    assert_eq!(counts[1].0, 1, "{counts:?}");
    let shop = get_ok(&q, &format!("/api/v1/errors/{}", groups[0]["id"])).await;
    let components = shop["fingerprint_explanation"]["components"].to_string();
    assert!(
        components.contains("shop/__init__.py create_app"),
        "{components}"
    );
    assert_eq!(
        shop["user_count"], 3,
        "each deploy root reported as its own user"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_error_ids_keep_increasing_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qyl.duckdb");
    let mut q = Qyl::start(&path, &[]);
    let mut live = Live::open(&q).await;
    // One export whose two errors open two groups: two `error` records
    // numbered after the spans of their commit.
    send_errors(
        &q,
        "1.0.0",
        &[
            (cart_trace("BfK3x9Zq"), "ann"),
            (pay_trace("BfK3x9Zq"), "bob"),
        ],
        1,
    )
    .await;
    let (a, _) = live.next_error_with_id().await;
    let (b, _) = live.next_error_with_id().await;
    let last = a.max(b);
    // Killed before any flush or shutdown could record the numbers.
    q.kill();
    let q = Qyl::start(&path, &[]);
    let mut live = Live::open(&q).await;
    let other = "ReferenceError: basket is not defined
    at addToBasket (https://shop.acme.io/assets/basket-BfK3x9Zq.js:1:77)
";
    send_errors(&q, "1.0.0", &[(other.to_string(), "ann")], 50).await;
    let (id, ev) = live.next_error_with_id().await;
    assert_eq!(ev["change"], "new", "{ev}");
    assert!(
        id > last,
        "the first error after the crash is numbered {id}, not after {last}: a client \
         resuming with Last-Event-ID {last} would skip it"
    );
}
