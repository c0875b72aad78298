//! Resources stored once: each distinct resource (the JSON object of an
//! export's resource attributes) is a row of `resources`, and span, log and
//! metric rows carry its id instead of the text.
//!
//! A resource is the same for every record an SDK sends (service, host,
//! process, SDK version…), about 340 bytes of JSON on every row. Stored per
//! row, DuckDB copied it into each commit and compressed it again in every
//! row group; measured at the top rate, leaving it out saved 2–3 µs of
//! qyl's ~20 µs per span. The `spans`, `logs` and `metrics` views join the
//! text back ([`MIGRATION_SQL`]), so users' SQL is unchanged.
//!
//! The id is the first 8 bytes of the text's SHA-256: stable across
//! restarts and versions, computed once per export (an export's records
//! share one `Arc<str>`), and not one a client can aim at another
//! service's resource. Only this writer thread adds rows (the ones its
//! known set lacks, in the commit that first uses them), so ids are unique
//! without an index. Retention deletes telemetry rows but never resources:
//! [`Resources`] drops the unused ones itself, hourly, in a commit, where
//! no new row can start using one between the check and the delete.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{Committing, Derived};
use crate::storage::duck::{Chunk, ChunkBuilder, Col, RawConn};
use crate::storage::{Conn, DuckError, StorageError};

/// Migration 16. The tables keep their columns and order; each becomes
/// `<signal>_rows`, and a view with the old name puts the text back (rows
/// stored before keep theirs in `resource`, so the migration rewrites
/// nothing). The views select `*`, so a column added to a table later shows
/// in its view.
pub const MIGRATION_SQL: &str = r#"
-- From here on spans, logs and metrics are views with the same columns as
-- before: query them. Each distinct resource is stored once in resources;
-- the rows (span_rows, log_rows, metric_rows) carry its resource_id, and
-- the views join the text back into the resource column.
CREATE TABLE resources (
    resource_id UBIGINT NOT NULL,
    resource    VARCHAR NOT NULL
);
ALTER TABLE spans RENAME TO span_rows;
ALTER TABLE span_rows ALTER COLUMN resource DROP NOT NULL;
ALTER TABLE span_rows ADD COLUMN resource_id UBIGINT;
CREATE VIEW spans AS
    SELECT s.* EXCLUDE (resource_id) REPLACE (coalesce(s.resource, r.resource) AS resource)
    FROM span_rows s LEFT JOIN resources r ON r.resource_id = s.resource_id;
ALTER TABLE logs RENAME TO log_rows;
ALTER TABLE log_rows ALTER COLUMN resource DROP NOT NULL;
ALTER TABLE log_rows ADD COLUMN resource_id UBIGINT;
CREATE VIEW logs AS
    SELECT l.* EXCLUDE (resource_id) REPLACE (coalesce(l.resource, r.resource) AS resource)
    FROM log_rows l LEFT JOIN resources r ON r.resource_id = l.resource_id;
ALTER TABLE metrics RENAME TO metric_rows;
ALTER TABLE metric_rows ALTER COLUMN resource DROP NOT NULL;
ALTER TABLE metric_rows ADD COLUMN resource_id UBIGINT;
CREATE VIEW metrics AS
    SELECT m.* EXCLUDE (resource_id) REPLACE (coalesce(m.resource, r.resource) AS resource)
    FROM metric_rows m LEFT JOIN resources r ON r.resource_id = m.resource_id;
"#;

/// The id stored for a resource's JSON text.
pub fn resource_id(resource: &str) -> u64 {
    let digest = Sha256::digest(resource.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// [`resource_id`] for a run of records, hashing each distinct `Arc` once
/// (an export's records share their resource's).
#[derive(Default)]
pub struct ResourceIds {
    last: Option<(Arc<str>, u64)>,
}

impl ResourceIds {
    pub fn id(&mut self, resource: &Arc<str>) -> u64 {
        match &self.last {
            Some((text, id)) if Arc::ptr_eq(text, resource) => *id,
            _ => {
                let id = resource_id(resource);
                self.last = Some((resource.clone(), id));
                id
            }
        }
    }
}

/// How often unused resources are dropped.
const COLLECT_EVERY: Duration = Duration::from_secs(3600);

/// Drops the resources no stored row uses.
const COLLECT_SQL: &str = "DELETE FROM resources WHERE resource_id NOT IN (
    SELECT resource_id FROM span_rows WHERE resource_id IS NOT NULL
    UNION SELECT resource_id FROM log_rows WHERE resource_id IS NOT NULL
    UNION SELECT resource_id FROM metric_rows WHERE resource_id IS NOT NULL)";

const COLS: &[Col] = &[Col::UBigint, Col::Varchar];

/// The `resources` table, as the writer keeps it.
pub struct Resources {
    /// Every id in the table as of the last commit.
    known: HashSet<u64>,
    /// Ids added by the open transaction.
    staged: Vec<u64>,
    /// The table's ids after a collection in the open transaction.
    collected: Option<HashSet<u64>>,
    last_collected: Instant,
}

impl Resources {
    pub fn load(conn: &Conn) -> Result<Resources, StorageError> {
        let ctx = |e| StorageError::sql("loading resource ids", e);
        let mut stmt = conn
            .prepare("SELECT resource_id FROM resources")
            .map_err(ctx)?;
        let known = stmt
            .query_map([], |r| r.get::<_, u64>(0))
            .map_err(ctx)?
            .collect::<Result<HashSet<u64>, _>>()
            .map_err(ctx)?;
        Ok(Resources {
            known,
            staged: Vec::new(),
            collected: None,
            last_collected: Instant::now(),
        })
    }

    /// Deletes unused resources and reads back the ids that remain. The
    /// commit's own rows are already appended, so the resources they use
    /// stay.
    fn collect(&mut self, raw: &RawConn) -> Result<(), DuckError> {
        raw.execute(COLLECT_SQL)?;
        let left = raw.query_u64_column("SELECT resource_id FROM resources")?;
        self.collected = Some(left.into_iter().collect());
        Ok(())
    }
}

impl Derived for Resources {
    fn name(&self) -> &'static str {
        "resources"
    }

    fn apply(&mut self, raw: &RawConn, rows: &Committing<'_>) -> Result<(), DuckError> {
        if rows.flush() && self.last_collected.elapsed() >= COLLECT_EVERY {
            self.collect(raw)?;
        }
        let known = self.collected.as_ref().unwrap_or(&self.known);
        let mut ids = ResourceIds::default();
        let mut new: Vec<(u64, Arc<str>)> = Vec::new();
        // A set, not a scan of `new`: a client may send a resource per span.
        let mut added = HashSet::new();
        let mut last = None;
        let mut consider = |resource: &Arc<str>| {
            let id = ids.id(resource);
            if last != Some(id) && !known.contains(&id) && added.insert(id) {
                new.push((id, resource.clone()));
            }
            last = Some(id);
        };
        for batch in rows.batches() {
            batch.spans.iter().for_each(|s| consider(&s.resource));
            batch.logs.iter().for_each(|l| consider(&l.resource));
            batch.metrics.iter().for_each(|m| consider(&m.resource));
        }
        if new.is_empty() {
            return Ok(());
        }
        let chunks = Chunk::fill(COLS, &new, |b: &mut ChunkBuilder<'_>, (id, text)| {
            b.u64(*id);
            b.str(text);
        });
        raw.append_chunks("resources", &chunks)?;
        self.staged = new.into_iter().map(|(id, _)| id).collect();
        Ok(())
    }

    fn committed(&mut self, _publish: &mut Vec<crate::model::Record>) {
        if let Some(left) = self.collected.take() {
            self.known = left;
            self.last_collected = Instant::now();
        }
        self.known.extend(self.staged.drain(..));
    }

    fn rolled_back(&mut self) {
        self.staged.clear();
        self.collected = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::query::{LogQuery, PageRequest, SpanFilter, SpanQuery};
    use crate::model::{Batch, LogRecord, MetricPoint, SpanRecord};
    use crate::storage::queries::logs::query_logs;
    use crate::storage::queries::traces::{get_trace, query_spans};
    use crate::storage::writer::{Writer, WriterConfig};
    use crate::storage::{open, StorageOptions};
    use crate::stream::Hub;

    const HOST_A: &str = r#"{"service.name":"a","host.name":"one"}"#;
    const HOST_B: &str = r#"{"service.name":"b","host.name":"two"}"#;

    fn span(i: u64, resource: &Arc<str>) -> SpanRecord {
        SpanRecord {
            trace_id: format!("{i:032x}"),
            span_id: format!("{i:016x}"),
            name: "work".into(),
            kind: "INTERNAL",
            status_code: "UNSET",
            start_time_unix_nano: 1_000 + i,
            end_time_unix_nano: 2_000 + i,
            duration_ns: 1_000,
            service_name: "a".into(),
            attributes: "{}".into(),
            resource: resource.clone(),
            events: "[]".into(),
            links: "[]".into(),
            ..Default::default()
        }
    }

    fn log(resource: &Arc<str>) -> LogRecord {
        LogRecord {
            time_unix_nano: 5_000,
            observed_time_unix_nano: 5_000,
            body: Some("hello".into()),
            service_name: "a".into(),
            attributes: "{}".into(),
            resource: resource.clone(),
            ..Default::default()
        }
    }

    fn metric(resource: &Arc<str>) -> MetricPoint {
        MetricPoint {
            time_unix_nano: 5_000,
            name: "requests".into(),
            kind: "sum",
            value: Some(1.0),
            service_name: "b".into(),
            attributes: "{}".into(),
            resource: resource.clone(),
            ..Default::default()
        }
    }

    fn strings(conn: &Conn, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn count(conn: &Conn, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_resource_is_stored_once_and_read_back_with_every_record() {
        let db = open(&StorageOptions::in_memory()).unwrap();
        let conn = db.connect().unwrap();
        let writer =
            Writer::start(db, Arc::new(Hub::new(64)), WriterConfig::default(), false).unwrap();
        let a: Arc<str> = HOST_A.into();
        let b: Arc<str> = HOST_B.into();
        let write = |batch: Batch| {
            let rx = writer.handle().submit(batch).unwrap();
            rx.blocking_recv().unwrap().unwrap();
        };
        write(Batch {
            spans: (0..3).map(|i| span(i, &a)).collect(),
            logs: vec![log(&a)],
            metrics: vec![metric(&b)],
            ..Default::default()
        });
        // The same text in another export (another Arc): no second row.
        let a_again: Arc<str> = HOST_A.to_string().into();
        write(Batch {
            spans: vec![span(3, &a_again), span(4, &b)],
            ..Default::default()
        });
        assert_eq!(count(&conn, "SELECT count(*) FROM resources"), 2);
        assert_eq!(
            strings(&conn, "SELECT resource FROM spans ORDER BY ingest_seq"),
            vec![HOST_A, HOST_A, HOST_A, HOST_A, HOST_B]
        );
        assert_eq!(strings(&conn, "SELECT resource FROM logs"), vec![HOST_A]);
        assert_eq!(strings(&conn, "SELECT resource FROM metrics"), vec![HOST_B]);
        // The text is not stored per row, and the views keep the columns
        // where users' SQL finds them.
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM span_rows WHERE resource IS NOT NULL"
            ),
            0
        );
        assert_eq!(
            strings(
                &conn,
                "SELECT column_name FROM (DESCRIBE spans) WHERE column_name LIKE 'resource%'"
            ),
            vec!["resource"]
        );
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM resources WHERE resource_id = (SELECT any_value(resource_id)
                   FROM span_rows WHERE ingest_seq = 1)"
            ),
            1
        );
        writer.shutdown();
    }

    #[test]
    fn an_export_with_a_resource_per_span_stores_each_once() {
        let db = open(&StorageOptions::in_memory()).unwrap();
        let conn = db.connect().unwrap();
        let writer =
            Writer::start(db, Arc::new(Hub::new(64)), WriterConfig::default(), false).unwrap();
        let resources: Vec<Arc<str>> = (0..2_000)
            .map(|i| format!(r#"{{"service.name":"a","service.instance.id":"{i}"}}"#).into())
            .collect();
        for _ in 0..2 {
            let rx = writer
                .handle()
                .submit(Batch {
                    spans: (0..2_000u64)
                        .map(|i| span(i, &resources[i as usize]))
                        .collect(),
                    ..Default::default()
                })
                .unwrap();
            rx.blocking_recv().unwrap().unwrap();
        }
        assert_eq!(count(&conn, "SELECT count(*) FROM resources"), 2_000);
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM spans
                 WHERE resource->>'$.\"service.instance.id\"' = (('0x' || span_id)::BIGINT)::VARCHAR"
            ),
            2_000,
            "each span has its own resource (the second export was dropped as a retry)"
        );
        writer.shutdown();
    }

    #[test]
    fn unused_resources_are_dropped_and_a_dropped_one_comes_back_when_used() {
        let db = open(&StorageOptions::in_memory()).unwrap();
        let conn = db.connect().unwrap();
        let writer = Writer::start(
            db.clone(),
            Arc::new(Hub::new(64)),
            WriterConfig::default(),
            false,
        )
        .unwrap();
        let a: Arc<str> = HOST_A.into();
        let b: Arc<str> = HOST_B.into();
        let rx = writer
            .handle()
            .submit(Batch {
                spans: vec![span(0, &a), span(1, &b)],
                ..Default::default()
            })
            .unwrap();
        rx.blocking_recv().unwrap().unwrap();
        writer.shutdown();
        // Retention took every row that used A.
        conn.execute_batch("DELETE FROM span_rows WHERE span_id = 0")
            .unwrap();

        let raw = db.raw_connection().unwrap();
        let mut resources = Resources::load(&conn).unwrap();
        assert_eq!(resources.known.len(), 2);
        let with_a = Batch {
            spans: vec![span(2, &a)],
            ..Default::default()
        };
        let keep = vec![vec![true]];
        let committing = |flush| Committing {
            batches: vec![&with_a],
            keep: &keep,
            flush,
        };
        raw.execute("BEGIN TRANSACTION").unwrap();
        resources.collect(&raw).unwrap();
        // A rolled-back collection leaves the known ids as they were.
        raw.execute("ROLLBACK").unwrap();
        resources.rolled_back();
        assert_eq!(resources.known.len(), 2);

        raw.execute("BEGIN TRANSACTION").unwrap();
        resources.collect(&raw).unwrap();
        raw.execute("COMMIT").unwrap();
        resources.committed(&mut Vec::new());
        assert_eq!(
            strings(&conn, "SELECT resource FROM resources"),
            vec![HOST_B]
        );
        assert_eq!(resources.known, HashSet::from([resource_id(HOST_B)]));

        // The next commit that uses A stores it again.
        raw.execute("BEGIN TRANSACTION").unwrap();
        resources.apply(&raw, &committing(false)).unwrap();
        raw.execute("COMMIT").unwrap();
        resources.committed(&mut Vec::new());
        assert_eq!(
            strings(&conn, "SELECT resource FROM resources ORDER BY resource"),
            vec![HOST_A, HOST_B]
        );
        assert_eq!(resources.known.len(), 2);
    }

    #[test]
    fn rows_stored_before_the_migration_keep_their_resource() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.duckdb");
        {
            // A file as the release before migration 16 left it.
            let old = duckdb::Connection::open(&path).unwrap();
            crate::storage::schema::migrate_to(&old, 15).unwrap();
            old.execute_batch(&format!(
                "INSERT INTO spans BY NAME SELECT
                    '{:032x}' AS trace_id, '{:016x}' AS span_id, 'old' AS name,
                    'INTERNAL' AS kind, 1 AS start_time_unix_nano, 2 AS end_time_unix_nano,
                    1 AS duration_ns, 'UNSET' AS status_code, 'a' AS service_name,
                    '{{}}' AS attributes, '{HOST_B}' AS resource, '[]' AS events,
                    '[]' AS links, 0 AS dropped_attributes_count, 0 AS dropped_events_count,
                    0 AS dropped_links_count, 1 AS ingest_seq;
                 INSERT INTO logs BY NAME SELECT 1 AS time_unix_nano,
                    1 AS observed_time_unix_nano, 9 AS severity_number, 'a' AS service_name,
                    0 AS flags, '{{}}' AS attributes, '{HOST_B}' AS resource,
                    0 AS dropped_attributes_count, 2 AS ingest_seq;",
                99, 99
            ))
            .unwrap();
        }
        let db = open(&StorageOptions::file_in(dir.path())).unwrap();
        let conn = db.connect().unwrap();
        let writer =
            Writer::start(db, Arc::new(Hub::new(64)), WriterConfig::default(), true).unwrap();
        let a: Arc<str> = HOST_A.into();
        let rx = writer
            .handle()
            .submit(Batch {
                spans: vec![span(0, &a)],
                logs: vec![log(&a)],
                ..Default::default()
            })
            .unwrap();
        rx.blocking_recv().unwrap().unwrap();
        writer
            .handle()
            .visibility()
            .unwrap()
            .settle_blocking(std::time::Duration::from_secs(30));
        assert_eq!(
            strings(&conn, "SELECT resource FROM spans ORDER BY ingest_seq"),
            vec![HOST_B, HOST_A]
        );
        assert_eq!(
            strings(&conn, "SELECT resource FROM logs ORDER BY ingest_seq"),
            vec![HOST_B, HOST_A]
        );
        // qyl's own reads resolve both kinds of row too, and filter on a
        // resource attribute of either.
        let by_host = |host: &str| {
            let page = query_spans(
                &conn,
                &SpanQuery {
                    filter: SpanFilter {
                        attrs: vec![("host.name".into(), host.into())],
                        ..Default::default()
                    },
                    page: PageRequest::default(),
                },
            )
            .unwrap();
            page.items
                .iter()
                .map(|s| (s.name.clone(), s.resource.get().to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            by_host("two"),
            vec![("old".to_string(), HOST_B.to_string())]
        );
        assert_eq!(
            by_host("one"),
            vec![("work".to_string(), HOST_A.to_string())]
        );
        assert!(by_host("three").is_empty());
        let logs = query_logs(
            &conn,
            &LogQuery {
                attrs: vec![("host.name".into(), "one".into())],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(logs.items.len(), 1);
        assert_eq!(logs.items[0].resource.get(), HOST_A);
        let trace = get_trace(&conn, &format!("{:032x}", 0)).unwrap().unwrap();
        assert_eq!(trace.roots[0].span.resource.get(), HOST_A);
        writer.shutdown();
    }

    #[test]
    fn ids_are_stable_and_differ_by_text() {
        // The first 8 bytes of SHA-256("{}"), so ids written by one build
        // match the next.
        assert_eq!(resource_id("{}"), 0x44136fa355b3678a);
        assert_ne!(resource_id(HOST_A), resource_id(HOST_B));
        let mut ids = ResourceIds::default();
        let a: Arc<str> = HOST_A.into();
        assert_eq!(ids.id(&a), resource_id(HOST_A));
        assert_eq!(ids.id(&HOST_B.into()), resource_id(HOST_B));
    }
}
