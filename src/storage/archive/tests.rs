//! The archive against a real database file and real Parquet files: a
//! window moves without a row lost, repeated or changed as readers see it;
//! what a crash leaves is cleaned up; retention drops whole windows.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::model::query::{SpanFilter, SpanQuery, TraceQuery};
use crate::model::{Batch, LogRecord, MetricPoint, SpanRecord};
use crate::storage::queries::{logs, traces};
use crate::storage::retention::{run_pass, Location, RetentionPolicy};
use crate::storage::writer::{Writer, WriterConfig};
use crate::storage::{open, StorageOptions};
use crate::stream::Hub;

const MINUTE: u64 = 60_000_000_000;
/// "Now": 2026-12-04 12:00 UTC, in ns.
const NOW: u64 = 1_796_385_600_000_000_000;

struct Db {
    dir: tempfile::TempDir,
    settings: ArchiveSettings,
    conn: Option<Conn>,
    writer: Option<Writer>,
}

impl Db {
    /// Windows of 5 minutes that move 10 minutes after they end.
    fn new() -> Db {
        Db::node("n1", None)
    }

    /// Node `node`, uploading to `store` (under the prefix `qyl`) if given.
    fn node(node: &str, store: Option<Arc<dyn object_store::ObjectStore>>) -> Db {
        Db::with(node, store, 5, 10)
    }

    fn with(
        node: &str,
        store: Option<Arc<dyn object_store::ObjectStore>>,
        window_minutes: u64,
        after_minutes: u64,
    ) -> Db {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = ArchiveSettings::new(
            &dir.path().join("archive"),
            window_minutes,
            after_minutes,
            node,
        )
        .unwrap();
        if let Some(store) = store {
            settings = settings
                .with_bucket(bucket::Bucket::new(store, "qyl", "s3://test/qyl".into()).unwrap());
        }
        let mut db = Db {
            conn: None,
            writer: None,
            dir,
            settings,
        };
        db.start(true);
        db
    }

    fn conn(&self) -> &Conn {
        self.conn.as_ref().unwrap()
    }

    /// Opens the file (with or without the archive) and starts a writer.
    fn start(&mut self, archive: bool) {
        let db = open(&StorageOptions {
            path: self
                .dir
                .path()
                .join("q.duckdb")
                .to_string_lossy()
                .into_owned(),
            memory_limit_mb: 0,
            threads: 0,
            archive: archive.then(|| self.settings.clone()),
        })
        .unwrap();
        self.conn = Some(db.connect().unwrap());
        let writer = Writer::start(
            db,
            Arc::new(Hub::new(16)),
            WriterConfig {
                checkpoint_interval: Duration::from_secs(3600),
                ..WriterConfig::default()
            },
            true,
        )
        .unwrap();
        self.writer = Some(writer);
    }

    /// Stops the writer and opens the file again, as a restart does.
    fn restart(&mut self, archive: bool) {
        if let Some(w) = self.writer.take() {
            w.shutdown();
        }
        self.conn = None;
        self.start(archive);
    }

    fn write(&self, batch: Batch) {
        let writer = self.writer.as_ref().unwrap();
        let rx = writer.handle().submit(batch).unwrap();
        rx.blocking_recv().unwrap().unwrap();
        if let Some(v) = writer.handle().visibility() {
            v.settle_blocking(Duration::from_secs(60));
        }
    }

    fn strings(&self, sql: &str) -> Vec<String> {
        let mut stmt = self.conn().prepare(sql).unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    fn count(&self, sql: &str) -> u64 {
        self.conn().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// A retention pass at NOW with the archive and a 45-minute age limit.
    fn pass_keeping_45_minutes(&self) -> crate::storage::retention::PassReport {
        let location = Location::from_path(&self.dir.path().join("q.duckdb").to_string_lossy());
        let policy = RetentionPolicy {
            max_age: Some(Duration::from_secs(45 * 60)),
            max_bytes: None,
            batch_rows: 1000,
            archive: Some(self.settings.clone()),
        };
        run_pass(self.conn(), &location, &policy, NOW, &|| false).unwrap()
    }

    fn archive(&self, now: u64) -> ArchiveReport {
        archive_due(self.conn(), &self.settings, now, &|| false).unwrap()
    }

    /// What readers see: every span and log through the public views, a
    /// whole trace, the trace list and a span search, as JSON.
    fn answers(&self, trace_id: &str) -> Vec<String> {
        let rows = |sql: &str| self.strings(sql).join("\n");
        vec![
            rows("SELECT s::VARCHAR FROM spans s ORDER BY s.ingest_seq"),
            rows("SELECT s::VARCHAR FROM logs s ORDER BY s.ingest_seq"),
            rows("SELECT s::VARCHAR FROM metrics s ORDER BY s.ingest_seq"),
            json(&traces::get_trace(self.conn(), trace_id).unwrap()),
            json(
                &traces::list_traces(self.conn(), &TraceQuery::default())
                    .unwrap()
                    .items,
            ),
            json(
                &traces::query_spans(
                    self.conn(),
                    &SpanQuery {
                        filter: SpanFilter {
                            status: Some("ERROR".into()),
                            ..Default::default()
                        },
                        page: Default::default(),
                    },
                )
                .unwrap()
                .items,
            ),
            json(
                &logs::query_logs(self.conn(), &Default::default())
                    .unwrap()
                    .items,
            ),
        ]
    }

    fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.settings.root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if !path.ends_with(format!(".node={}.lock", self.settings.node)) {
                    out.push(
                        path.strip_prefix(&self.settings.root)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
        }
        out.sort();
        out
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            w.shutdown();
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap()
}

fn trace_id(n: u64) -> String {
    format!("{:032x}", 0xabc0_0000 + n)
}

fn span(trace: u64, n: u64, parent: Option<u64>, start: u64) -> SpanRecord {
    SpanRecord {
        trace_id: trace_id(trace).into(),
        span_id: format!("{:016x}", 0x5000 + n).into(),
        parent_span_id: parent.map(|p| format!("{:016x}", 0x5000 + p).into()),
        name: format!("op-{}", n % 3),
        kind: "SERVER",
        status_code: if n % 4 == 0 { "ERROR" } else { "OK" },
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000,
        duration_ns: 1_000_000,
        service_name: format!("svc-{}", n % 2).into(),
        service_version: Some("1.2.3".into()),
        attributes: format!(r#"{{"n":{n}}}"#),
        resource: format!(r#"{{"service.name":"svc-{}"}}"#, n % 2).into(),
        events: if n % 5 == 0 {
            r#"[{"name":"e"}]"#.into()
        } else {
            "[]".into()
        },
        links: "[]".into(),
        ..Default::default()
    }
}

fn log(trace: u64, time: u64) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: time,
        trace_id: Some(trace_id(trace)),
        body: Some(format!("log at {time}")),
        severity_number: 9,
        service_name: "svc-0".into(),
        attributes: "{}".into(),
        resource: r#"{"service.name":"svc-0"}"#.into(),
        ..Default::default()
    }
}

fn metric(time: u64) -> MetricPoint {
    MetricPoint {
        time_unix_nano: time,
        start_time_unix_nano: time,
        name: "requests".into(),
        kind: "sum",
        value: Some(1.0),
        service_name: "svc-0".into(),
        attributes: "{}".into(),
        resource: r#"{"service.name":"svc-0"}"#.into(),
        ..Default::default()
    }
}

/// Traces 1–6, one every 3 minutes from an hour before NOW; trace 6 has a
/// span in a window too recent to move. Each trace has a log and a metric
/// point beside it.
fn fill(db: &Db) {
    let base = NOW - 60 * MINUTE;
    let mut n = 0;
    for t in 1..=6u64 {
        let start = base + t * 3 * MINUTE;
        let mut batch = Batch::default();
        for i in 0..4 {
            n += 1;
            let parent = (i > 0).then_some(n - i);
            batch.spans.push(span(t, n, parent, start + i * 1_000_000));
        }
        if t == 6 {
            n += 1;
            batch.spans.push(span(t, n, Some(n - 4), NOW - MINUTE));
        }
        batch.logs.push(log(t, start + 500));
        batch.metrics.push(metric(start + 700));
        db.write(batch);
    }
}

#[test]
fn moving_windows_keeps_every_answer_the_same() {
    let db = Db::new();
    fill(&db);
    let before = db.answers(&trace_id(6));
    let spans = db.count("SELECT count(*) FROM span_rows");
    let report = db.archive(NOW);
    // Windows ending before NOW - 10 min, i.e. starting at or before
    // 11:45: traces 1-5 (and trace 6's first spans at 11:18) move.
    assert!(report.parts >= 3, "{report:?}");
    assert_eq!(db.count("SELECT count(*) FROM span_rows"), 1);
    assert_eq!(report.rows, (spans - 1) + 6 + 6);
    assert_eq!(db.answers(&trace_id(6)), before);
    // The read side knows which windows the views name.
    let named = &db.settings.named;
    let span_files = db.count("SELECT count(*) FROM archive_parts WHERE signal = 'spans'");
    assert_eq!(named.overlapping(Signal::Spans, None, None), span_files);
    assert_eq!(
        named.overlapping(Signal::Spans, Some(NOW - 10 * MINUTE), None),
        0
    );
    assert_eq!(
        named.overlapping(
            Signal::Logs,
            Some(NOW - 57 * MINUTE),
            Some(NOW - 56 * MINUTE)
        ),
        1
    );
    // A second pass has nothing left to move.
    assert_eq!(db.archive(NOW), ArchiveReport::default());
    // Every file the catalog lists, and nothing else.
    let listed = db.strings("SELECT path FROM archive_parts ORDER BY path");
    assert_eq!(db.files(), listed);
    assert!(listed
        .iter()
        .all(|p| p.starts_with("signal=") && p.contains("/date=2026-12-04/hour=11/node=n1/part-")));
}

#[test]
fn archived_files_have_the_public_columns() {
    let db = Db::new();
    fill(&db);
    db.archive(NOW);
    let dir = db.settings.root.join("signal=spans");
    let glob = format!("{}/*/*/*/*.parquet", dir.display());
    let columns = |sql: &str| db.strings(sql);
    let view = columns(
        "SELECT column_name || ' ' || data_type FROM duckdb_columns()
         WHERE table_name = 'spans' ORDER BY column_index",
    );
    let file = columns(&format!(
        "SELECT column_name || ' ' || column_type FROM (DESCRIBE SELECT * FROM read_parquet('{glob}', hive_partitioning = false))"
    ));
    assert_eq!(file, view);
    // Ids are the hex users know, events and links JSON text.
    let first = columns(&format!(
        "SELECT trace_id || ' ' || events FROM read_parquet('{glob}') ORDER BY start_time_unix_nano LIMIT 1"
    ));
    assert_eq!(first, vec![format!("{} []", trace_id(1))]);
}

#[test]
fn rows_arriving_for_a_moved_window_move_in_a_file_of_their_own() {
    let db = Db::new();
    fill(&db);
    db.archive(NOW);
    let parts = db.count("SELECT count(*) FROM archive_parts WHERE signal = 'spans'");
    // A late span of trace 1, in its old window.
    let start = NOW - 57 * MINUTE;
    db.write(Batch {
        spans: vec![span(1, 100, Some(1), start)],
        ..Default::default()
    });
    assert_eq!(
        db.count("SELECT count(*) FROM spans WHERE span_id = '0000000000005064'"),
        1
    );
    let report = db.archive(NOW);
    assert_eq!((report.parts, report.rows), (1, 1));
    assert_eq!(
        db.count("SELECT count(*) FROM archive_parts WHERE signal = 'spans'"),
        parts + 1
    );
    let tree = traces::get_trace(db.conn(), &trace_id(1)).unwrap().unwrap();
    assert_eq!(tree.summary.span_count, 5);
    assert_eq!(db.count("SELECT count(*) FROM spans"), 26);
}

#[test]
fn what_a_crash_leaves_is_removed_at_the_next_start() {
    let mut db = Db::new();
    fill(&db);
    db.archive(NOW);
    let answers = db.answers(&trace_id(3));
    let files = db.files();
    let some_dir = db
        .settings
        .root
        .join(Path::new(&files[0]).parent().unwrap());
    // A crash while a file was written leaves a hidden one; a crash after
    // the rename but before the commit leaves a named file the catalog
    // does not list (its rows are still in the database).
    std::fs::write(some_dir.join(".part-1-2-3.parquet.tmp"), b"half").unwrap();
    std::fs::copy(
        db.settings.root.join(&files[0]),
        some_dir.join("part-1-2-3.parquet"),
    )
    .unwrap();
    // Another node's file is not this node's to judge.
    let other = db
        .settings
        .root
        .join("signal=spans/date=2026-12-04/hour=11/node=n2");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join(".part-9-9-9.parquet.tmp"), b"theirs").unwrap();
    db.restart(true);
    let mut expected = files.clone();
    expected.push("signal=spans/date=2026-12-04/hour=11/node=n2/.part-9-9-9.parquet.tmp".into());
    expected.sort();
    assert_eq!(db.files(), expected);
    assert_eq!(db.answers(&trace_id(3)), answers);
}

#[test]
fn a_file_that_disappeared_is_forgotten_and_reads_still_work() {
    let mut db = Db::new();
    fill(&db);
    db.archive(NOW);
    let spans = db.count("SELECT count(*) FROM spans");
    let (path, rows): (String, u64) = db
        .conn()
        .query_row(
            "SELECT path, rows FROM archive_parts WHERE signal = 'spans' ORDER BY path LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    std::fs::remove_file(db.settings.root.join(&path)).unwrap();
    db.restart(true);
    assert_eq!(db.count("SELECT count(*) FROM spans"), spans - rows);
}

#[test]
fn with_the_archive_off_reads_see_the_database_alone() {
    let mut db = Db::new();
    fill(&db);
    db.archive(NOW);
    // Restarted without [archive]: the views name no files.
    db.restart(false);
    assert_eq!(db.count("SELECT count(*) FROM spans"), 1);
    // And with it again, they do.
    db.restart(true);
    assert_eq!(db.count("SELECT count(*) FROM spans"), 25);
}

#[test]
fn retention_drops_archived_windows_whole_by_age_and_by_size() {
    let db = Db::new();
    fill(&db);
    // Age: 45 minutes keeps the windows from 11:15 on.
    let report = db.pass_keeping_45_minutes();
    assert!(report.archived.parts > 0);
    assert!(report.dropped.parts > 0, "{report:?}");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM archive_parts WHERE window_end_unix_nano <= 1796382900000000000"
        ),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM archive_parts"),
        report.cold.parts
    );
    // Dropped files are gone from the disk too.
    assert_eq!(db.files().len() as u64, report.cold.parts);
    // Traces 1-4 (11:03-11:12) went whole; 5 and 6 stay.
    assert_eq!(db.count("SELECT count(DISTINCT trace_id) FROM spans"), 2,);
    // Size: a limit below what the archive holds drops its oldest windows
    // first, whole.
    let cold = cold_tier(db.conn()).unwrap();
    let oldest_left = cold.oldest.unwrap();
    let dropped = drop_oldest(db.conn(), &db.settings, 1).unwrap();
    assert!(dropped.report.parts >= 1);
    let after = cold_tier(db.conn()).unwrap();
    assert!(after.oldest.is_none_or(|o| o > oldest_left));
    assert_eq!(after.parts + dropped.report.parts, cold.parts);
    dropped.remove_files(&db.settings);
    assert_eq!(db.files().len() as u64, after.parts);
}

#[test]
fn a_failing_archive_does_not_stop_retention() {
    let db = Db::new();
    fill(&db);
    // The archive's directory is gone and a file stands in its place: no
    // window can be written.
    std::fs::remove_dir_all(&db.settings.root).unwrap();
    std::fs::write(&db.settings.root, b"not a directory").unwrap();
    let report = db.pass_keeping_45_minutes();
    assert!(report.archive_error.is_some(), "{report:?}");
    assert_eq!(report.archived, ArchiveReport::default());
    // Traces 1-4 went by age all the same, and nothing was lost to the
    // failed move.
    assert_eq!(report.spans, 16);
    assert_eq!(db.count("SELECT count(*) FROM spans"), 25 - 16);
}

/// Every key in `store`, sorted.
fn keys(store: &Arc<dyn object_store::ObjectStore>) -> Vec<String> {
    use futures_util::TryStreamExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut keys: Vec<String> = rt
        .block_on(store.list(None).try_collect::<Vec<_>>())
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .collect();
    keys.sort();
    keys
}

fn in_memory() -> Arc<dyn object_store::ObjectStore> {
    Arc::new(object_store::memory::InMemory::new())
}

#[test]
fn with_a_bucket_every_file_is_uploaded_and_the_bucket_follows_the_catalog() {
    let store = in_memory();
    let mut db = Db::node("n1", Some(store.clone()));
    fill(&db);
    let answers = db.answers(&trace_id(4));
    db.archive(NOW);
    let listed = db.strings("SELECT 'qyl/' || path FROM archive_parts ORDER BY path");
    assert!(listed.len() >= 3, "{listed:?}");
    assert_eq!(keys(&store), listed);
    // A crash between an upload and its commit leaves an object no commit
    // lists: the next start deletes it, and leaves other nodes' alone.
    let leftover = "signal=spans/date=2026-12-04/hour=11/node=n1/part-1-2-3.parquet";
    let theirs = "signal=spans/date=2026-12-04/hour=11/node=n9/part-1-2-3.parquet";
    let bucket = db.settings.bucket.clone().unwrap();
    let any_file = db.settings.root.join(&listed[0]["qyl/".len()..]);
    bucket.upload(&any_file, leftover).unwrap();
    bucket.upload(&any_file, theirs).unwrap();
    // A lost disk: the local archive is gone; the start restores it from
    // the bucket, and every answer is as before.
    std::fs::remove_dir_all(&db.settings.root).unwrap();
    std::fs::create_dir_all(&db.settings.root).unwrap();
    db.restart(true);
    let mut expected = listed.clone();
    expected.push(format!("qyl/{theirs}"));
    expected.sort();
    assert_eq!(keys(&store), expected);
    bucket.delete(theirs).unwrap();
    db.restart(true);
    assert_eq!(db.answers(&trace_id(4)), answers);
    // Retention deletes dropped windows from the bucket too.
    let report = db.pass_keeping_45_minutes();
    assert!(report.dropped.parts > 0, "{report:?}");
    assert_eq!(
        keys(&store),
        db.strings("SELECT 'qyl/' || path FROM archive_parts ORDER BY path")
    );
}

#[test]
fn a_failed_upload_leaves_the_rows_in_the_database() {
    // Nothing listens on port 1: every upload fails.
    let unreachable = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("b")
        .with_endpoint("http://127.0.0.1:1")
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("k")
        .with_secret_access_key("s")
        .with_retry(object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        })
        .build()
        .unwrap();
    let mut db = Db::new();
    fill(&db);
    let answers = db.answers(&trace_id(2));
    let bucket = bucket::Bucket::new(Arc::new(unreachable), "", "s3://b".into()).unwrap();
    db.settings = db.settings.clone().with_bucket(bucket);
    let moved = archive_due(db.conn(), &db.settings, NOW, &|| false);
    assert!(moved.is_err(), "{moved:?}");
    assert!(db.files().is_empty(), "{:?}", db.files());
    assert_eq!(db.count("SELECT count(*) FROM archive_parts"), 0);
    assert_eq!(db.answers(&trace_id(2)), answers);
    assert_eq!(db.count("SELECT count(*) FROM span_rows"), 25);
    // Nor does it stop a start.
    db.restart(true);
    assert_eq!(db.answers(&trace_id(2)), answers);
}

#[test]
fn nodes_on_different_machines_read_each_other_through_the_bucket() {
    let store = in_memory();
    let a = Db::node("n1", Some(store.clone()));
    let b = Db::node("n2", Some(store.clone()));
    fill(&b);
    b.archive(NOW);
    let b_files = b.count("SELECT count(*) FROM archive_parts WHERE signal = 'spans'");
    assert!(b_files >= 3);
    // A's first pass mirrors B's files (all but B's oldest window) into its
    // own directory, which B never wrote to.
    a.archive(NOW);
    let oldest_rows = b.count(
        "SELECT sum(rows) FROM archive_parts WHERE signal = 'spans'
         AND window_start_unix_nano = (SELECT min(window_start_unix_nano) FROM archive_parts)",
    );
    let b_cold = b.count("SELECT sum(rows) FROM archive_parts WHERE signal = 'spans'");
    assert_eq!(a.count("SELECT count(*) FROM spans"), b_cold - oldest_rows);
    assert!(a.files().iter().all(|f| f.contains("/node=n2/")));
    let tree = traces::get_trace(a.conn(), &trace_id(4));
    // Trace 4 is not in A's lookup: found by its id in B's files.
    assert_eq!(tree.unwrap().unwrap().summary.span_count, 4);
    // B's retention drops windows: A's next pass stops naming them and
    // deletes its copies, and every read works throughout.
    let dropped = b.pass_keeping_45_minutes();
    assert!(dropped.dropped.parts > 0);
    assert!(a.count("SELECT count(*) FROM spans") > 0);
    a.archive(NOW);
    let a_sees = a.count("SELECT count(*) FROM spans");
    let b_left = b.count(
        "SELECT coalesce(sum(rows), 0)::UBIGINT FROM archive_parts WHERE signal = 'spans'
         AND window_start_unix_nano > (SELECT min(window_start_unix_nano) FROM archive_parts)",
    );
    assert_eq!(a_sees, b_left);
    let mirrored = a.files().len() as u64;
    let b_all = b.count("SELECT count(*) FROM archive_parts");
    assert_eq!(mirrored, b_all, "A keeps a copy of each file B has");
}

#[test]
fn under_sustained_load_disk_use_follows_the_size_limit() {
    // One-minute windows, moved as soon as they end, and a pass a minute.
    const SPANS_A_MINUTE: u64 = 4000;
    let db = Db::with("n1", None, 1, 0);
    let location = Location::from_path(&db.dir.path().join("q.duckdb").to_string_lossy());
    let on_disk = |db: &Db| -> u64 {
        crate::storage::retention::checkpoint(db.conn()).unwrap();
        let used: u64 = db
            .conn()
            .query_row(
                "SELECT (used_blocks * block_size)::UBIGINT FROM pragma_database_size()
                 WHERE database_name = current_database()",
                [],
                |r| r.get(0),
            )
            .unwrap();
        used + cold_tier(db.conn()).unwrap().bytes
    };
    // The file's floor (every table, nearly empty), plus room for the
    // newest minute in the file and about 20 in the archive: the run
    // writes 50.
    let limit = on_disk(&db) + (3 << 20);
    let policy = RetentionPolicy {
        max_age: None,
        max_bytes: Some(limit),
        batch_rows: 1000,
        archive: Some(db.settings.clone()),
    };
    let t0 = NOW - 60 * MINUTE;
    let (mut dropped, mut deleted_one_by_one, mut peak) = (0, 0, 0);
    let mut n = 0;
    for minute in 0..50u64 {
        let start = t0 + minute * MINUTE;
        let mut batch = Batch::default();
        for k in 0..SPANS_A_MINUTE {
            n += 1;
            batch
                .spans
                .push(span(1000 + n / 10, n, None, start + k * 10_000_000));
        }
        db.write(batch);
        let report =
            run_pass(db.conn(), &location, &policy, start + MINUTE + 1, &|| false).unwrap();
        dropped += report.dropped.parts;
        deleted_one_by_one += report.spans;
        let total = on_disk(&db);
        peak = peak.max(total);
        assert!(
            total <= limit,
            "minute {minute}: {total} bytes on disk against a limit of {limit}: {report:?}"
        );
        // What the catalog lists is what is on disk, and what goes is the
        // oldest: the minute just written is all there.
        assert_eq!(db.files().len() as u64, report.cold.parts);
        let newest = db.count(&format!(
            "SELECT count(*) FROM spans WHERE start_time_unix_nano >= {start}"
        ));
        assert_eq!(newest, SPANS_A_MINUTE, "minute {minute}");
    }
    assert!(dropped >= 10, "windows dropped whole: {dropped}");
    assert_eq!(deleted_one_by_one, 0, "no span deleted one by one");
    assert!(
        peak > limit / 2,
        "the archive took part: peak {peak} of {limit}"
    );
    // What the file kept of the dropped windows went with them: the
    // lookup rows of traces that ended there, and their service minutes.
    let oldest = db.count("SELECT min(start_time_unix_nano) FROM spans");
    let lingering = db.count(&format!(
        "SELECT (SELECT count(*) FROM (SELECT trace_key FROM trace_index GROUP BY trace_key
                                       HAVING max(last_time_unix_nano) < {oldest}))
              + (SELECT count(*) FROM service_minutes WHERE minute_unix_nano < {oldest} - 60000000000)"
    ));
    assert_eq!(lingering, 0);
}
