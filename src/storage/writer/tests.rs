//! The writer's behaviour end to end, on an in-memory database unless a
//! test needs a file: dedup, backpressure, ordering, failures, the summary
//! flush and when checkpoints run.

use super::stats::unix_ms;
use super::*;
use crate::model::{Batch, SpanRecord};
use crate::storage::{open, StorageOptions};

fn span(trace: u8, span: u8, message: Option<&str>) -> SpanRecord {
    SpanRecord {
        trace_id: format!("{trace:032x}").into(),
        span_id: format!("{span:016x}").into(),
        name: format!("s{span}"),
        kind: "INTERNAL",
        status_code: "UNSET",
        status_message: message.map(str::to_string),
        service_name: "svc".into(),
        attributes: "{}".into(),
        resource: "{}".into(),
        events: "[]".into(),
        links: "[]".into(),
        ..Default::default()
    }
}

fn batch(spans: Vec<SpanRecord>) -> Batch {
    Batch {
        spans,
        ..Default::default()
    }
}

fn start(config: WriterConfig) -> (Writer, Arc<Hub>, Conn) {
    let db = open(&StorageOptions::in_memory()).unwrap();
    let reader = db.connect().unwrap();
    let hub = Arc::new(Hub::new(100));
    (
        Writer::start(db, hub.clone(), config, false).unwrap(),
        hub,
        reader,
    )
}

/// Span number `i`: its ids are `i` in hex.
fn numbered(i: u64) -> SpanRecord {
    SpanRecord {
        trace_id: format!("{i:032x}").into(),
        span_id: format!("{i:016x}").into(),
        ..span(0, 0, None)
    }
}

/// A writer on a database file of its own, fed spans with distinct ids.
/// The row group of a new file.
const ROW_GROUP: u64 = crate::storage::duck::FileLayout::COMPACT.row_group_rows;

struct FileWriter {
    _dir: tempfile::TempDir,
    writer: Writer,
    reader: Conn,
    next: u64,
}

impl FileWriter {
    /// A new file whose checkpoint timer is an hour away.
    fn start() -> FileWriter {
        FileWriter::start_with(WriterConfig {
            checkpoint_interval: Duration::from_secs(3600),
            ..WriterConfig::default()
        })
    }

    fn start_with(config: WriterConfig) -> FileWriter {
        FileWriter::open_in(tempfile::tempdir().unwrap(), config, 0)
    }

    fn open_in(dir: tempfile::TempDir, config: WriterConfig, next: u64) -> FileWriter {
        let db = open(&StorageOptions::file_in(dir.path())).unwrap();
        let reader = db.connect().unwrap();
        let writer = Writer::start(db, Arc::new(Hub::new(100)), config, true).unwrap();
        FileWriter {
            _dir: dir,
            writer,
            reader,
            next,
        }
    }

    /// Stops the writer and starts a new one on the same file (a restart).
    fn restart(self) -> FileWriter {
        let FileWriter {
            _dir: dir,
            writer,
            reader,
            next,
        } = self;
        writer.shutdown();
        drop(reader);
        FileWriter::open_in(dir, WriterConfig::default(), next)
    }

    /// A writer with a ten-minute fill wait that has seen 16 exports of
    /// 1,024 spans arrive as fast as they were answered: its next gather
    /// waits for a full commit.
    fn under_load() -> FileWriter {
        let mut w = FileWriter::start_with(WriterConfig {
            fill_wait: Duration::from_secs(600),
            ..WriterConfig::default()
        });
        for _ in 0..16 {
            w.send(1024);
        }
        w
    }

    /// Polls (as a plain reader, which does not hurry the writer) until
    /// `rows` spans are stored or `within` has passed; returns the count.
    fn wait_for_rows(&self, rows: i64, within: Duration) -> i64 {
        let deadline = Instant::now() + within;
        while count(&self.reader) < rows && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        count(&self.reader)
    }

    /// Submits `rows` spans not sent before as one batch and waits for
    /// its answer.
    fn send(&mut self, rows: u64) {
        let spans = (self.next..self.next + rows).map(numbered).collect();
        self.next += rows;
        let answer = self.writer.handle().submit(batch(spans)).unwrap();
        answer.blocking_recv().unwrap().unwrap();
    }
}

#[test]
fn a_steady_load_is_committed_in_full_commits() {
    let mut w = FileWriter::start_with(WriterConfig {
        fill_wait: Duration::from_secs(5),
        ..WriterConfig::default()
    });
    // Two row groups' worth of exports of 1,024 spans, 10 ms apart: a
    // rate that gathers a row group well within the fill wait. Committed
    // every batch_ms (5 ms) instead, each export is a commit of its own.
    let exports = 2 * ROW_GROUP / 1024;
    for _ in 0..exports {
        w.send(1024);
        std::thread::sleep(Duration::from_millis(10));
    }
    let h = w.writer.handle();
    h.visibility()
        .unwrap()
        .settle_blocking(Duration::from_secs(30));
    assert_eq!(count(&w.reader), (exports * 1024) as i64);
    let commits = h.stats().batches_committed.load(Ordering::Relaxed);
    assert!(
        commits <= 6,
        "{commits} commits for 2 commits' worth of rows"
    );
    w.writer.shutdown();
}

#[test]
fn a_file_with_the_old_layout_never_waits_for_a_full_commit() {
    let dir = tempfile::tempdir().unwrap();
    // A file made before the compact layout: DuckDB's default blocks.
    duckdb::Connection::open(dir.path().join("q.duckdb"))
        .unwrap()
        .execute_batch("CREATE TABLE made_by_an_old_release (x INTEGER)")
        .unwrap();
    let mut w = FileWriter::open_in(
        dir,
        WriterConfig {
            fill_wait: Duration::from_secs(600),
            ..WriterConfig::default()
        },
        0,
    );
    for _ in 0..17 {
        w.send(1024);
    }
    // Nobody reads through `Visibility` (which would hurry the commit):
    // on the compact layout the last 1,024 rows would wait ten minutes
    // for a whole row group.
    assert_eq!(
        w.wait_for_rows(17 * 1024, Duration::from_secs(30)),
        17 * 1024
    );
    w.writer.shutdown();
}

#[test]
fn a_reader_does_not_wait_for_a_full_commit() {
    let mut w = FileWriter::under_load();
    let visibility = w.writer.handle().visibility().unwrap();
    visibility.settle_blocking(Duration::from_secs(30));
    w.send(1024);
    // Reading after the answer asks the writer to commit at once.
    visibility.settle_blocking(Duration::from_secs(30));
    assert_eq!(count(&w.reader), 17 * 1024);
    w.writer.shutdown();
}

/// The journal holds exports back at half the queue; a gather is cut short
/// for that only when what the journal lets through cannot fill it.
#[test]
fn the_journal_starves_only_a_gather_it_cannot_fill() {
    let marks = handle::VisibilityMarks::new(0, 50_000);
    marks.answered(49_999);
    assert!(!marks.starves(32_768), "not holding back yet");
    marks.answered(1);
    assert!(
        !marks.starves(32_768),
        "50,000 rows on their way fill a commit of 32,768"
    );
    assert!(marks.starves(65_536), "a commit larger than half the queue");
    marks.committed(32_768);
    assert!(!marks.starves(65_536), "no longer holding back");
}

#[test]
fn a_queue_smaller_than_two_commits_does_not_wait_for_a_full_commit() {
    // The journal answers while fewer than half the queue (8,192 rows)
    // wait: a gather can never reach batch_rows (32,768), so waiting for
    // it would hold every commit, and with it the journal's answers, for
    // the whole fill wait (ten seconds here: long enough to fail, short
    // enough to end after a failure). Forty-eight exports take about a
    // second when gathers commit as soon as the journal holds back.
    //
    // What the test times is the exports' answers, not the rows' arrival:
    // the last gather, once the exports stop, may rightly wait out the fill
    // wait (the recent rate said a full commit was coming; a reader would
    // hurry it), depending on where the commits before it fell.
    let w = FileWriter::start_with(WriterConfig {
        fill_wait: Duration::from_secs(10),
        queue_rows: 16_384,
        ..WriterConfig::default()
    });
    let exports = 48;
    let handle = w.writer.handle();
    let sent = Instant::now();
    let sender = std::thread::spawn(move || {
        for i in 0..exports {
            let spans = (i * 1024..(i + 1) * 1024).map(numbered).collect();
            let answer = handle.submit(batch(spans)).unwrap();
            answer.blocking_recv().unwrap().unwrap();
        }
    });
    sender.join().unwrap();
    let took = sent.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "{exports} exports took {took:?}: a gather waited for rows the journal held back"
    );
    // Stopping commits the rest at once.
    w.writer.shutdown();
    assert_eq!(count(&w.reader), (exports * 1024) as i64);
}

#[test]
fn after_a_partial_commit_the_next_one_fills_the_row_group() {
    let mut w = FileWriter::under_load();
    let visibility = w.writer.handle().visibility().unwrap();
    // A reader hurries a commit of 17 exports of 1,024 rows: the row
    // group is part full.
    w.send(1024);
    visibility.settle_blocking(Duration::from_secs(30));
    assert_eq!(count(&w.reader), 17 * 1024);
    // The exports that fill it make a commit that does not wait for a
    // whole `batch_rows` (nor for the ten-minute fill wait).
    let to_fill = ROW_GROUP / 1024 - 17;
    for _ in 0..to_fill {
        w.send(1024);
    }
    let filled = ROW_GROUP as i64;
    assert_eq!(w.wait_for_rows(filled, Duration::from_secs(60)), filled);
    w.writer.shutdown();
}

/// A checkpoint that falls due while a short commit has left the spans'
/// last row group part full waits, under load, for the commit that fills
/// it: a checkpoint between the two makes DuckDB rewrite the written part
/// of the row group the slow way (`checkpoint::Checkpoints::run_if_due`).
#[test]
fn a_due_checkpoint_waits_for_the_open_row_group_to_fill() {
    let mut w = FileWriter::start_with(WriterConfig {
        fill_wait: Duration::from_secs(600),
        checkpoint_interval: Duration::from_secs(1),
        ..WriterConfig::default()
    });
    for _ in 0..16 {
        w.send(1024);
    }
    let h = w.writer.handle();
    let visibility = h.visibility().unwrap();
    let checkpoints = || h.stats().checkpoints.load(Ordering::Acquire);
    // A reader hurries a commit: 17 exports, the row group is part full.
    w.send(1024);
    visibility.settle_blocking(Duration::from_secs(30));
    assert_eq!(count(&w.reader), 17 * 1024);
    let before = checkpoints();
    // The one-second timer is due meanwhile.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        checkpoints(),
        before,
        "checkpointed with the row group open"
    );
    for _ in 0..ROW_GROUP / 1024 - 17 {
        w.send(1024);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpoints() == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(count(&w.reader), ROW_GROUP as i64);
    assert!(checkpoints() > before, "no checkpoint after the fill");
    w.writer.shutdown();
}

#[test]
fn spans_stored_before_a_restart_are_not_stored_again() {
    let mut w = FileWriter::start();
    // 70,000 spans: the ids are read back at start in more than one window.
    for _ in 0..10 {
        w.send(7_000);
    }
    let w = w.restart();
    let h = w.writer.handle();
    // The first and the last span stored, and one new one.
    let retry = batch(vec![numbered(0), numbered(69_999), numbered(70_000)]);
    h.submit(retry).unwrap().blocking_recv().unwrap().unwrap();
    h.visibility()
        .unwrap()
        .settle_blocking(Duration::from_secs(30));
    assert_eq!(count(&w.reader), 70_001);
    assert_eq!(h.stats().duplicate_spans.load(Ordering::Relaxed), 2);
    w.writer.shutdown();
}

fn count(conn: &Conn) -> i64 {
    conn.query_row("SELECT count(*) FROM spans", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn retried_spans_are_stored_once() {
    let (writer, hub, reader) = start(WriterConfig::default());
    let h = writer.handle();
    let first = h.submit(batch(vec![
        span(1, 1, None),
        span(1, 2, None),
        span(1, 1, None),
    ]));
    let done = first.unwrap().blocking_recv().unwrap().unwrap();
    assert_eq!((done.spans, done.duplicate_spans), (2, 1));
    let again = h.submit(batch(vec![span(1, 2, None), span(1, 3, None)]));
    let done = again.unwrap().blocking_recv().unwrap().unwrap();
    assert_eq!((done.spans, done.duplicate_spans), (1, 1));
    assert_eq!(count(&reader), 3);
    let seqs: Vec<u64> = hub.recent(10, |_| true).iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    writer.shutdown();
}

#[test]
fn ids_are_stored_as_numbers_and_empty_lists_as_null_and_the_view_shows_them_as_sent() {
    let (writer, _hub, reader) = start(WriterConfig::default());
    let with_event = SpanRecord {
        parent_span_id: Some(format!("{:016x}", 0xa1).into()),
        events: r#"[{"name":"retry"}]"#.into(),
        ..span(0xfe, 0xb2, None)
    };
    let done = writer
        .handle()
        .submit(batch(vec![span(0xfe, 0xa1, None), with_event]))
        .unwrap()
        .blocking_recv()
        .unwrap()
        .unwrap();
    assert_eq!(done.spans, 2);
    type Stored = (u128, u64, Option<u64>, Option<String>, Option<String>);
    let stored: Vec<Stored> = reader
        .prepare("SELECT trace_id, span_id, parent_span_id, events, links FROM span_rows ORDER BY span_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        stored,
        vec![
            (0xfe, 0xa1, None, None, None),
            (
                0xfe,
                0xb2,
                Some(0xa1),
                Some(r#"[{"name":"retry"}]"#.into()),
                None
            ),
        ]
    );
    let shown: Vec<(String, String, Option<String>, String, String)> = reader
        .prepare(
            "SELECT trace_id, span_id, parent_span_id, events, links FROM spans ORDER BY span_id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let trace = format!("{:032x}", 0xfe);
    assert_eq!(
        shown,
        vec![
            (
                trace.clone(),
                format!("{:016x}", 0xa1),
                None,
                "[]".into(),
                "[]".into()
            ),
            (
                trace,
                format!("{:016x}", 0xb2),
                Some(format!("{:016x}", 0xa1)),
                r#"[{"name":"retry"}]"#.into(),
                "[]".into()
            ),
        ]
    );
    writer.shutdown();
}

#[test]
fn a_failing_batch_does_not_fail_its_neighbours() {
    let (writer, hub, reader) = start(WriterConfig {
        batch_wait: Duration::from_millis(200),
        ..WriterConfig::default()
    });
    // A constraint the good batch satisfies and the bad one does not:
    // DuckDB reports it only when the Appender flushes.
    reader
        .execute_batch("ALTER TABLE span_rows ALTER COLUMN status_message SET NOT NULL")
        .unwrap();
    let h = writer.handle();
    let pause = h.pause();
    let good = h.submit(batch(vec![span(2, 1, Some("ok"))])).unwrap();
    let bad = h.submit(batch(vec![span(2, 2, None)])).unwrap();
    drop(pause);
    assert_eq!(good.blocking_recv().unwrap().unwrap().spans, 1);
    match bad.blocking_recv().unwrap() {
        Err(WriteError::Commit(msg)) => assert!(msg.contains("NOT NULL"), "{msg}"),
        other => panic!("expected a commit error, got {other:?}"),
    }
    assert_eq!(count(&reader), 1);
    assert_eq!(hub.recent(10, |_| true).len(), 1);
    assert_eq!(h.stats().commit_failures.load(Ordering::Relaxed), 1);
    // A span that failed is not remembered as stored: its retry is kept.
    reader
        .execute_batch("ALTER TABLE span_rows ALTER COLUMN status_message DROP NOT NULL")
        .unwrap();
    let retry = h.submit(batch(vec![span(2, 2, None)])).unwrap();
    assert_eq!(retry.blocking_recv().unwrap().unwrap().spans, 1);
    writer.shutdown();
}

#[test]
fn the_pulse_tells_idle_from_stuck_and_failing_from_one_bad_batch() {
    let (writer, _hub, reader) = start(WriterConfig {
        batch_wait: Duration::from_millis(1),
        ..WriterConfig::default()
    });
    let h = writer.handle();
    let pulse = &h.stats().pulse;
    let later = |d: Duration| unix_ms() + d.as_millis() as u64;
    // Idle for any length of time is running, not stuck.
    assert_eq!(
        pulse.condition_at(later(STUCK_AFTER * 10)),
        WriterCondition::Running
    );
    // Held before its commit (as a wedged step would be), it is stuck
    // once STUCK_AFTER has passed, and not before.
    let pause = h.pause();
    let held = h.submit(batch(vec![span(7, 1, Some("ok"))])).unwrap();
    let wait_idle = |idle: bool| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while pulse.idle.load(Ordering::Acquire) != idle && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_idle(false);
    assert_eq!(pulse.condition(), WriterCondition::Running);
    match pulse.condition_at(later(STUCK_AFTER)) {
        WriterCondition::Stuck(busy) => assert!(busy >= STUCK_AFTER),
        other => panic!("expected Stuck, got {other:?}"),
    }
    drop(pause);
    held.blocking_recv().unwrap().unwrap();
    wait_idle(true);
    assert_eq!(
        pulse.condition_at(later(STUCK_AFTER * 10)),
        WriterCondition::Running
    );
    // Commits failing in a row: one is a bad batch, FAILING_AFTER is a
    // writer that cannot store; a success clears it.
    reader
        .execute_batch("ALTER TABLE span_rows ALTER COLUMN status_message SET NOT NULL")
        .unwrap();
    for i in 0..FAILING_AFTER {
        let bad = h.submit(batch(vec![span(8, i as u8 + 1, None)])).unwrap();
        assert!(bad.blocking_recv().unwrap().is_err());
        let expected = if i + 1 >= FAILING_AFTER {
            WriterCondition::Failing(i + 1)
        } else {
            WriterCondition::Running
        };
        assert_eq!(pulse.condition(), expected);
    }
    let good = h.submit(batch(vec![span(8, 9, Some("ok"))])).unwrap();
    good.blocking_recv().unwrap().unwrap();
    assert_eq!(pulse.condition(), WriterCondition::Running);
    let stats = h.stats.clone();
    writer.shutdown();
    assert_eq!(stats.pulse.condition(), WriterCondition::Stopped);
}

#[test]
fn a_failing_derived_table_rolls_the_commit_back() {
    let (writer, hub, reader) = start(WriterConfig::default());
    let h = writer.handle();
    let lookup = |c: &Conn| -> i64 {
        c.query_row("SELECT count(*) FROM trace_index", [], |r| r.get(0))
            .unwrap()
    };
    let done = h.submit(batch(vec![span(6, 1, None)])).unwrap();
    assert_eq!(done.blocking_recv().unwrap().unwrap().spans, 1);
    assert_eq!((count(&reader), lookup(&reader)), (1, 1));
    // The trace lookup now fails inside the commit's transaction.
    reader
        .execute_batch("ALTER TABLE trace_index RENAME TO trace_index_away")
        .unwrap();
    let failed = h.submit(batch(vec![span(6, 2, None)])).unwrap();
    match failed.blocking_recv().unwrap() {
        Err(WriteError::Commit(msg)) => assert!(msg.contains("trace_index"), "{msg}"),
        other => panic!("expected a commit error, got {other:?}"),
    }
    // Neither the span nor its lookup row was stored or published.
    reader
        .execute_batch("ALTER TABLE trace_index_away RENAME TO trace_index")
        .unwrap();
    assert_eq!((count(&reader), lookup(&reader)), (1, 1));
    assert_eq!(hub.recent(10, |_| true).len(), 1);
    let retry = h.submit(batch(vec![span(6, 2, None)])).unwrap();
    assert_eq!(retry.blocking_recv().unwrap().unwrap().spans, 1);
    assert_eq!((count(&reader), lookup(&reader)), (2, 2));
    writer.shutdown();
}

#[test]
fn a_failing_summary_flush_keeps_its_sums_for_the_next_one() {
    let (writer, _hub, reader) = start(WriterConfig::default());
    let h = writer.handle();
    let sync = h.summary_sync();
    let session_spans = |c: &Conn| -> Option<i64> {
        c.query_row(
            "SELECT span_count FROM session_entities WHERE session_id = 's'",
            [],
            |r| r.get(0),
        )
        .ok()
    };
    let in_session = |n: u8| {
        let mut s = span(7, n, None);
        s.session_id = Some("s".into());
        batch(vec![s])
    };
    h.submit(in_session(1))
        .unwrap()
        .blocking_recv()
        .unwrap()
        .unwrap();
    sync.settle_blocking();
    assert_eq!(session_spans(&reader), Some(1));
    reader
        .execute_batch("ALTER TABLE session_entities RENAME TO session_entities_away")
        .unwrap();
    // The export itself commits; its sums wait in memory, and the
    // flush a reader asks for fails and is rolled back whole.
    let done = h.submit(in_session(2)).unwrap().blocking_recv().unwrap();
    assert_eq!(done.unwrap().spans, 1);
    sync.settle_blocking();
    let traces: i64 = reader
        .query_row("SELECT count(*) FROM session_traces", [], |r| r.get(0))
        .unwrap();
    assert_eq!(traces, 1, "the failed flush left no session_traces rows");
    reader
        .execute_batch("ALTER TABLE session_entities_away RENAME TO session_entities")
        .unwrap();
    // The next flush writes the kept sums once.
    sync.settle_blocking();
    assert_eq!(session_spans(&reader), Some(2));
    assert_eq!(count(&reader), 2);
    writer.shutdown();
}

#[test]
fn a_full_queue_refuses_and_keeps_what_it_accepted() {
    let (writer, _hub, reader) = start(WriterConfig {
        queue_rows: 3,
        ..WriterConfig::default()
    });
    let h = writer.handle();
    let pause = h.pause();
    let a = h
        .submit(batch(vec![span(3, 1, None), span(3, 2, None)]))
        .unwrap();
    assert_eq!(h.queued_rows(), 2);
    match h.submit(batch(vec![span(3, 3, None), span(3, 4, None)])) {
        Err(WriteError::QueueFull { queued: 2 }) => {}
        Err(e) => panic!("expected QueueFull, got {e:?}"),
        Ok(_) => panic!("expected QueueFull, got a queued job"),
    }
    let b = h.submit(batch(vec![span(3, 5, None)])).unwrap();
    drop(pause);
    assert_eq!(a.blocking_recv().unwrap().unwrap().spans, 2);
    assert_eq!(b.blocking_recv().unwrap().unwrap().spans, 1);
    assert_eq!(h.queued_rows(), 0);
    assert_eq!(count(&reader), 3);
    assert_eq!(h.stats().refused_exports.load(Ordering::Relaxed), 1);
    writer.shutdown();
}

#[test]
fn the_exports_of_one_commit_share_chunks_and_keep_their_order() {
    // Twelve exports of 700 spans and 3 logs in one commit: their rows
    // fill data chunks across export boundaries (2,048 rows each), and a
    // retried export's spans are left out of the middle of one.
    // The commit gathers until it holds all twelve.
    let (writer, _hub, reader) = start(WriterConfig {
        batch_rows: 12 * 703,
        batch_wait: Duration::from_secs(600),
        ..WriterConfig::default()
    });
    let h = writer.handle();
    let export = |i: u64, first: u64| Batch {
        spans: (first..first + 700).map(numbered).collect(),
        logs: (0..3)
            .map(|l| crate::model::LogRecord {
                body: Some(format!("export {i} log {l}")),
                service_name: "svc".into(),
                attributes: "{}".into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    // The sixth export repeats the fifth's spans (an SDK retry).
    let firsts: Vec<u64> = (0..12u64)
        .map(|i| if i == 5 { 4 * 700 } else { i * 700 })
        .collect();
    let acks: Vec<_> = firsts
        .iter()
        .enumerate()
        .map(|(i, first)| h.submit(export(i as u64, *first)).unwrap())
        .collect();
    let answers: Vec<_> = acks
        .into_iter()
        .map(|a| a.blocking_recv().unwrap().unwrap())
        .collect();
    assert_eq!(answers[5].duplicate_spans, 700);
    assert_eq!(h.stats().batches_committed.load(Ordering::Relaxed), 1);
    // Every stored row, in sequence order: each export's spans, then its
    // logs, export after export, numbered without gaps.
    let mut stmt = reader
        .prepare(
            "SELECT ingest_seq, 'span', span_id FROM spans
             UNION ALL SELECT ingest_seq, 'log', body FROM logs ORDER BY 1",
        )
        .unwrap();
    let rows: Vec<(u64, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut expected = Vec::new();
    for (i, first) in firsts.iter().enumerate() {
        if i != 5 {
            expected
                .extend((*first..first + 700).map(|s| ("span".to_string(), format!("{s:016x}"))));
        }
        expected.extend((0..3).map(|l| ("log".to_string(), format!("export {i} log {l}"))));
    }
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "rows out of order");
    let seqs: Vec<u64> = rows.iter().map(|(s, _, _)| *s).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gaps in ingest_seq"
    );
    writer.shutdown();
}

#[test]
fn shutdown_commits_what_was_accepted_then_refuses() {
    let (writer, _hub, reader) = start(WriterConfig {
        batch_wait: Duration::from_secs(5),
        ..WriterConfig::default()
    });
    let h = writer.handle();
    let a = h.submit(batch(vec![span(4, 1, None)])).unwrap();
    writer.shutdown();
    assert_eq!(a.blocking_recv().unwrap().unwrap().spans, 1);
    assert!(matches!(
        h.submit(batch(vec![span(4, 2, None)])),
        Err(WriteError::Closed)
    ));
    assert_eq!(count(&reader), 1);
}

#[test]
fn commit_histogram_is_cumulative_and_counts_every_commit() {
    let h = DurationHistogram::default();
    h.record(Duration::from_micros(500));
    h.record(Duration::from_millis(3));
    h.record(Duration::from_secs(60));
    let snap = h.snapshot();
    assert_eq!(snap.count, 3);
    assert_eq!(snap.buckets[0], (0.001, 1));
    assert_eq!(snap.buckets[2], (0.005, 2));
    assert_eq!(snap.buckets.last(), Some(&(5.0, 2)));
    assert!((snap.sum_secs - 60.0035).abs() < 1e-9);

    // The writer records every successful commit, split by signal.
    let (writer, _hub, _reader) = start(WriterConfig::default());
    let h = writer.handle();
    let done = h.submit(batch(vec![span(5, 1, None), span(5, 2, None)]));
    done.unwrap().blocking_recv().unwrap().unwrap();
    let stats = h.stats();
    assert_eq!(stats.spans_committed.load(Ordering::Relaxed), 2);
    assert_eq!(stats.logs_committed.load(Ordering::Relaxed), 0);
    assert_eq!(stats.commit_duration.snapshot().count, 1);
    writer.shutdown();
}

/// With the timer an hour away, the writer checkpoints once spans grow by
/// `CHECKPOINT_ROWS`, and not before: what small commits leave
/// uncompressed stays in memory until a checkpoint.
#[test]
fn a_grown_table_is_checkpointed_before_the_timer() {
    let mut w = FileWriter::start();
    let h = w.writer.handle();
    let visibility = h.visibility().expect("a file has a journal");
    let below = checkpoint::CHECKPOINT_ROWS - 2_000;
    for _ in 0..below / 4_000 {
        w.send(4_000);
    }
    w.send(below % 4_000);
    visibility.settle_blocking(Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    let checkpoints = || h.stats().checkpoints.load(Ordering::Acquire);
    assert_eq!(
        checkpoints(),
        0,
        "checkpointed before the table grew enough"
    );
    w.send(4_000);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while checkpoints() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(checkpoints(), 1, "no checkpoint once the table grew enough");
    w.writer.shutdown();
}

/// A commit of a full row group (32,768 spans, `batch_rows` by default)
/// is compressed into the file as it commits, with no checkpoint; a
/// smaller one stays uncompressed in memory until a checkpoint.
#[test]
fn a_full_commit_is_written_to_the_file_without_a_checkpoint() {
    assert_eq!(WriterConfig::default().batch_rows as u64, ROW_GROUP);
    let mut w = FileWriter::start();
    let h = w.writer.handle();
    let visibility = h.visibility().expect("a file has a journal");
    // Rows in spans' segments that are in the file, and those that are not.
    let rows_by_place = |reader: &Conn| -> (i64, i64) {
        reader
            .query_row(
                "SELECT coalesce(sum(count) FILTER (WHERE persistent), 0)::BIGINT,
                        coalesce(sum(count) FILTER (WHERE NOT persistent), 0)::BIGINT
                 FROM pragma_storage_info('span_rows') WHERE column_name = 'name' AND segment_type = 'VARCHAR'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    let whole = ROW_GROUP as i64;
    w.send(ROW_GROUP);
    visibility.settle_blocking(Duration::from_secs(60));
    assert_eq!(h.stats().checkpoints.load(Ordering::Acquire), 0);
    assert_eq!(rows_by_place(&w.reader), (whole, 0));
    w.send(1_000);
    visibility.settle_blocking(Duration::from_secs(60));
    assert_eq!(h.stats().checkpoints.load(Ordering::Acquire), 0);
    assert_eq!(rows_by_place(&w.reader), (whole, 1_000));
    assert_eq!(count(&w.reader), whole + 1_000);
    w.writer.shutdown();
}

/// An export is answered once it is journaled, so a commit that fails
/// afterwards must not lose it: the batch is kept (`journal::hold`) and
/// stored by the first commit that succeeds a second later, or at the next
/// start: a stop, whose checkpoint empties the journal, does not take it
/// away.
#[test]
fn a_journaled_batch_whose_commit_fails_is_kept_until_it_is_stored() {
    let held = |w: &FileWriter| -> usize {
        let dir = super::journal::dir_for(&w._dir.path().join("q.duckdb"));
        super::journal::held(&dir).unwrap().len()
    };
    let mut w = FileWriter::start_with(WriterConfig::default());
    let h = w.writer.handle();
    let visibility = h.visibility().unwrap();
    let settle = || visibility.settle_blocking(Duration::from_secs(60));
    w.send(10);
    settle();
    assert_eq!(count(&w.reader), 10);

    // The table goes away: the next export is answered, its commit fails.
    w.reader
        .execute_batch("ALTER TABLE span_rows RENAME TO span_rows_away")
        .unwrap();
    w.send(20);
    settle();
    assert_eq!(held(&w), 1);
    let held_gauge = || h.stats().held_batches.load(Ordering::Relaxed);
    assert_eq!(held_gauge(), 1);
    w.reader
        .execute_batch("ALTER TABLE span_rows_away RENAME TO span_rows")
        .unwrap();
    w.reader.execute_batch("CHECKPOINT").unwrap();
    // A commit within the second does not try it yet; one after does.
    w.send(5);
    settle();
    assert_eq!(count(&w.reader), 15);
    std::thread::sleep(Duration::from_millis(1100));
    w.send(5);
    settle();
    assert_eq!(count(&w.reader), 40, "the held batch is stored");
    assert_eq!((held(&w), held_gauge()), (0, 0));

    // Failing again, then a stop (whose checkpoint empties the journal)
    // and a start with the table back: the start stores it.
    w.reader
        .execute_batch("ALTER TABLE span_rows RENAME TO span_rows_away")
        .unwrap();
    w.send(7);
    settle();
    assert_eq!(held(&w), 1);
    let FileWriter {
        _dir: dir,
        writer,
        reader,
        next,
    } = w;
    writer.shutdown();
    reader
        .execute_batch("ALTER TABLE span_rows_away RENAME TO span_rows")
        .unwrap();
    drop(reader);
    let w = FileWriter::open_in(dir, WriterConfig::default(), next);
    assert_eq!(count(&w.reader), 47);
    assert_eq!(held(&w), 0);
    w.writer.shutdown();
}
