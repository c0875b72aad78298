//! SIGTERM, as a container runtime sends it on `docker stop`: qyl stops
//! accepting, answers or cuts off what is in flight, commits the queue,
//! checkpoints and exits well inside the 10 s before SIGKILL — and every
//! export it acknowledged is in the file afterwards. A client that never
//! finishes its request must not hold the stop up.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Qyl;

/// One export of `spans` spans, all in trace `trace_id`.
fn export(trace_id: &str, spans: usize) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let spans: Vec<String> = (0..spans)
        .map(|i| {
            format!(
                r#"{{"traceId":"{trace_id}","spanId":"{:016x}","name":"op {i}","kind":2,"startTimeUnixNano":"{now}","endTimeUnixNano":"{}"}}"#,
                i + 1,
                now + 1_000_000
            )
        })
        .collect();
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"stopper"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    )
}

/// Acknowledged exports, by the key each was sent with.
type Acked = Arc<Mutex<Vec<String>>>;

/// An exporter that posts `next(n)` (a key and a JSON body) to `url` for
/// n = 0, 1, … until an export is not acknowledged, keeping the key of
/// every acknowledged one in `acked`.
fn exporter(
    client: &reqwest::Client,
    url: String,
    acked: &Acked,
    next: impl Fn(u64) -> (String, String) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let (client, acked) = (client.clone(), acked.clone());
    tokio::spawn(async move {
        for n in 0u64.. {
            let (key, body) = next(n);
            let sent = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => acked.lock().unwrap().push(key),
                _ => break,
            }
        }
    })
}

/// The trace ids of the spans `export` sent, as stored.
fn stored_trace_ids(db: &duckdb::Connection) -> HashSet<String> {
    db.prepare("SELECT DISTINCT trace_id FROM spans WHERE service_name = 'stopper'")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Fails naming the acknowledged exports (`what`) that `stored` lacks.
fn assert_none_lost(acked: &[String], stored: impl Fn(&String) -> bool, what: &str) {
    let lost: Vec<&String> = acked.iter().filter(|k| !stored(k)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged {what} lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(3)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_exits_in_time_and_keeps_every_acknowledged_export() {
    let dir = tempfile::tempdir().unwrap();
    let mut qyl = Qyl::start(&dir.path().join("q.duckdb"), &[]);
    let url = format!("http://{}/v1/traces", qyl.http);
    let acked = Acked::default();
    let client = reqwest::Client::new();

    // Exporters that go on until qyl refuses them.
    let exporters: Vec<_> = (0..8u64)
        .map(|worker| {
            exporter(&client, url.clone(), &acked, move |n| {
                let trace_id = format!("{:016x}{n:016x}", worker + 1);
                let body = export(&trace_id, 20);
                (trace_id, body)
            })
        })
        .collect();
    // A client that starts an export and never finishes sending it.
    let mut stalled = TcpStream::connect(&qyl.http).unwrap();
    write!(
        stalled,
        "POST /v1/traces HTTP/1.1\r\nHost: qyl\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"resourceSpans\":["
    )
    .unwrap();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = acked.lock().unwrap().len();
    assert!(before > 0, "no export was acknowledged before the stop");
    let started = Instant::now();
    let mut qyl = tokio::task::spawn_blocking(move || {
        qyl.stop();
        qyl
    })
    .await
    .unwrap();
    let took = started.elapsed();
    for e in exporters {
        e.await.unwrap();
    }
    drop(stalled);
    assert!(
        took < Duration::from_secs(9),
        "qyl took {took:?} to stop after SIGTERM; a container runtime kills at 10 s\n{}",
        qyl.logs()
    );

    let acked = acked.lock().unwrap().clone();
    let db = qyl.stop_and_open();
    let stored = stored_trace_ids(&db);
    assert_none_lost(&acked, |t| stored.contains(t), "exports");
    let spans: i64 = db
        .query_row(
            "SELECT count(*) FROM spans WHERE service_name = 'stopper'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(spans >= acked.len() as i64 * 20);
    eprintln!(
        "{} exports acknowledged ({before} before SIGTERM), stopped in {took:?}",
        acked.len()
    );
}

/// One export of `records` log records, each carrying `marker` in its body.
fn log_export(marker: &str, records: usize) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let logs: Vec<String> = (0..records)
        .map(|i| {
            format!(
                r#"{{"timeUnixNano":"{now}","severityNumber":9,"body":{{"stringValue":"{marker} #{i}"}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"crasher"}}}}]}},"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        logs.join(",")
    )
}

/// SIGKILL, as a crash or the OOM killer delivers it, while exports stream
/// in: qyl answers an export once it is in its journal (DuckDB runs without
/// a WAL of its own), so after the restart every acknowledged span and log
/// must be stored, and exactly once (logs have no ids to skip retries by,
/// so a replay that applied an entry twice would show here).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_and_duplicates_no_acknowledged_export() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.duckdb");
    // Checkpoints every second: the kill lands after a few, so the file
    // holds part of what was answered (and the journal has let it go) and
    // the rest must come from the journal past the watermark.
    let mut qyl = Qyl::start(&path, &[("QYL_STORAGE_CHECKPOINT_INTERVAL_SECS", "1")]);
    let acked_traces = Acked::default();
    let acked_logs = Acked::default();
    let client = reqwest::Client::new();
    let mut exporters = Vec::new();
    for worker in 0..4u64 {
        let url = format!("http://{}/v1/traces", qyl.http);
        exporters.push(exporter(&client, url, &acked_traces, move |n| {
            let trace_id = format!("{:016x}{n:016x}", worker + 1);
            let body = export(&trace_id, 50);
            (trace_id, body)
        }));
        let url = format!("http://{}/v1/logs", qyl.http);
        exporters.push(exporter(&client, url, &acked_logs, move |n| {
            let marker = format!("w{worker}-n{n}");
            let body = log_export(&marker, 10);
            (marker, body)
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    qyl.kill();
    for e in exporters {
        let _ = e.await;
    }
    let traces = acked_traces.lock().unwrap().clone();
    let logs = acked_logs.lock().unwrap().clone();
    assert!(
        !traces.is_empty() && !logs.is_empty(),
        "nothing was acknowledged before the kill"
    );

    let mut qyl = Qyl::start(&path, &[]);
    qyl.stop();
    // Exports went on after the last checkpoint, so some came back from
    // the journal.
    assert!(
        qyl.logs().contains("replayed the journal"),
        "{}",
        qyl.logs()
    );
    let db = qyl.stop_and_open();
    let stored = stored_trace_ids(&db);
    assert_none_lost(&traces, |t| stored.contains(t), "trace exports");
    let (spans, distinct): (i64, i64) = db
        .query_row(
            "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans WHERE service_name = 'stopper'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(spans, distinct, "spans stored twice");
    let markers: std::collections::HashMap<String, i64> = db
        .prepare(
            "SELECT split_part(body, ' #', 1), count(*) FROM logs WHERE service_name = 'crasher' GROUP BY 1",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_none_lost(&logs, |m| markers.contains_key(m), "log exports");
    let doubled: Vec<(&String, &i64)> = markers.iter().filter(|(_, n)| **n != 10).collect();
    assert!(
        doubled.is_empty(),
        "log exports stored other than once: {:?}",
        &doubled[..doubled.len().min(3)]
    );
    eprintln!(
        "{} trace and {} log exports acknowledged before SIGKILL; {} spans stored",
        traces.len(),
        logs.len(),
        spans
    );
}
