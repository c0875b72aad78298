//! `qyl query` as a user runs it from a shell against a running qyl that
//! received data from the OpenTelemetry Python SDK: SQL and the shortcuts,
//! table, JSON and CSV output, the token, and the server's message with a
//! non-zero exit on error.

mod common;

use std::process::{Command, Output};

use common::{run_python, Qyl};
use serde_json::Value;

fn query(qyl: &Qyl, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qyl"));
    cmd.arg("query")
        .args(args)
        .args(["--url", &format!("http://{}", qyl.http)])
        .env_remove("QYL_AUTH_TOKEN")
        .env_remove("QYL_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running qyl query")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "qyl query failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_lines(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn sql_and_shortcuts_print_tables_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let qyl = Qyl::start(&dir.path().join("q.duckdb"), &[]);
    let endpoint = format!("http://{}", qyl.otlp_http);
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    let sent = run_python("send_otlp.py", &["http"], &env);
    run_python("send_errors.py", &[], &env);
    let trace_id = sent["trace_id"].as_str().unwrap();

    // SQL as a table: a header and the SDK's service.
    let sql =
        "SELECT service_name, count(*) AS spans FROM spans GROUP BY ALL ORDER BY service_name";
    let table = stdout(&query(&qyl, &[sql], &[]));
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.contains("service_name") && header.contains("spans"),
        "{table}"
    );
    assert!(table.lines().any(|l| l.contains("py-http")), "{table}");
    assert!(table.lines().any(|l| l.contains("shop")), "{table}");

    // The same as JSON objects and as CSV.
    let rows = json_lines(&query(&qyl, &[sql, "--json"], &[]));
    let py = rows
        .iter()
        .find(|r| r["service_name"] == "py-http")
        .expect("py-http row");
    assert!(py["spans"].as_i64().unwrap() >= 2, "{py}");
    let csv = stdout(&query(&qyl, &[sql, "--csv"], &[]));
    assert_eq!(csv.lines().next(), Some("service_name,spans"));
    assert!(csv.lines().any(|l| l.starts_with("py-http,")), "{csv}");

    // --limit cuts and says so on stderr.
    let one = query(
        &qyl,
        &["SELECT span_id FROM spans", "--limit", "1", "--json"],
        &[],
    );
    assert_eq!(json_lines(&one).len(), 1);
    assert!(String::from_utf8_lossy(&one.stderr).contains("row limit"));

    // Shortcuts read the REST lists with their filters.
    let traces = json_lines(&query(
        &qyl,
        &["traces", "--service", "py-http", "--json"],
        &[],
    ));
    assert!(
        traces.iter().any(|t| t["trace_id"] == trace_id),
        "{traces:?}"
    );
    assert!(traces.iter().all(|t| t["services"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "py-http")));
    let failed = json_lines(&query(&qyl, &["traces", "--errors", "--json"], &[]));
    assert!(
        !failed.is_empty()
            && failed
                .iter()
                .all(|t| t["error_count"].as_u64().unwrap() > 0)
    );
    let table = stdout(&query(&qyl, &["traces", "--service", "shop"], &[]));
    assert!(
        table.lines().next().unwrap().contains("root span"),
        "{table}"
    );
    assert!(!table.contains("py-http"), "{table}");

    let groups = json_lines(&query(&qyl, &["errors", "--json"], &[]));
    assert!(!groups.is_empty(), "send_errors.py made no error groups");
    let types: Vec<&str> = groups
        .iter()
        .filter_map(|g| g["error_type"].as_str())
        .collect();
    assert!(types.iter().any(|t| t.contains("Error")), "{types:?}");
    let csv = stdout(&query(&qyl, &["errors", "--csv"], &[]));
    assert!(csv.starts_with("id,substatus,error_type,"), "{csv}");
    assert_eq!(csv.lines().count(), groups.len() + 1);
}

#[test]
fn errors_exit_1_with_the_servers_message_and_the_token_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let qyl = Qyl::start(
        &dir.path().join("q.duckdb"),
        &[("QYL_AUTH_TOKEN", "s3cret-token-for-cli")],
    );

    let refused = query(&qyl, &["SELECT 1"], &[]);
    assert_eq!(refused.status.code(), Some(1));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("401") && said.contains("--token"), "{said}");

    let ok = query(
        &qyl,
        &["SELECT 41 + 1 AS answer", "--json"],
        &[("QYL_AUTH_TOKEN", "s3cret-token-for-cli")],
    );
    assert_eq!(json_lines(&ok), vec![serde_json::json!({"answer": 42})]);
    let by_flag = query(
        &qyl,
        &[
            "SELECT 1 AS one",
            "--csv",
            "--token",
            "s3cret-token-for-cli",
        ],
        &[],
    );
    assert_eq!(stdout(&by_flag), "one\n1\n");

    let token = [("QYL_AUTH_TOKEN", "s3cret-token-for-cli")];
    let write = query(&qyl, &["DELETE FROM spans"], &token);
    assert_eq!(write.status.code(), Some(1));
    let said = String::from_utf8_lossy(&write.stderr);
    assert!(said.contains("400") && said.contains("DELETE"), "{said}");
    assert!(!said.contains("Stack backtrace"), "{said}");

    let bad = query(&qyl, &["SELEC nonsense"], &token);
    assert_eq!(bad.status.code(), Some(1));

    let misplaced = query(&qyl, &["errors", "--user", "u1"], &token);
    assert_eq!(misplaced.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&misplaced.stderr).contains("--user does not apply"));
}
