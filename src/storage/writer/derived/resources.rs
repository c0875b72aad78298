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
//!
//! Since migration 19 a span's resource row also holds the four columns
//! that are the same for every span of one SDK and instrumentation scope:
//! `service_version`, `deployment_environment`, `scope_name` and
//! `scope_version` ([`Origin`]); since migration 20 a log's row holds its
//! three (logs have no scope version). Each cost DuckDB a string per row to
//! hash, measure and compress at commit; measured in DuckDB alone, leaving
//! them NULL in the rows cut a span's append and commit by 0.5–0.8 µs and
//! a log's by 0.5 µs. Such a record's id hashes them with the text, so one
//! resource sent by several scopes has a row per scope; a record without
//! any of them keeps the plain text's id, the row metric points use.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{Committing, Derived};
use crate::model::{LogRecord, SpanRecord};
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

/// Migration 19: the columns a span takes from its resource row
/// ([`Origin`]). Rows stored before keep their own values, which the
/// view prefers, so nothing is rewritten.
pub const SPAN_ORIGIN_MIGRATION_SQL: &str = r#"
-- A span's service_version, deployment_environment, scope_name and
-- scope_version are stored once per resource and scope in resources (NULL in
-- span_rows); the spans view shows them as before.
ALTER TABLE resources ADD COLUMN service_version VARCHAR;
ALTER TABLE resources ADD COLUMN deployment_environment VARCHAR;
ALTER TABLE resources ADD COLUMN scope_name VARCHAR;
ALTER TABLE resources ADD COLUMN scope_version VARCHAR;
CREATE OR REPLACE VIEW spans AS
    SELECT s.* EXCLUDE (resource_id) REPLACE (
        qyl_trace_hex(s.trace_id) AS trace_id,
        qyl_span_hex(s.span_id) AS span_id,
        qyl_span_hex(s.parent_span_id) AS parent_span_id,
        coalesce(s.service_version, r.service_version) AS service_version,
        coalesce(s.deployment_environment, r.deployment_environment) AS deployment_environment,
        coalesce(s.scope_name, r.scope_name) AS scope_name,
        coalesce(s.scope_version, r.scope_version) AS scope_version,
        coalesce(s.resource, r.resource) AS resource,
        coalesce(s.events, '[]') AS events,
        coalesce(s.links, '[]') AS links)
    FROM span_rows s LEFT JOIN resources r ON r.resource_id = s.resource_id;
"#;

/// Migration 20: the same for logs. Rows stored before keep their values.
pub const LOG_ORIGIN_MIGRATION_SQL: &str = r#"
-- A log's service_version, deployment_environment and scope_name are stored
-- once per resource and scope in resources (NULL in log_rows); the logs view
-- shows them as before.
CREATE OR REPLACE VIEW logs AS
    SELECT l.* EXCLUDE (resource_id) REPLACE (
        coalesce(l.service_version, r.service_version) AS service_version,
        coalesce(l.deployment_environment, r.deployment_environment) AS deployment_environment,
        coalesce(l.scope_name, r.scope_name) AS scope_name,
        coalesce(l.resource, r.resource) AS resource)
    FROM log_rows l LEFT JOIN resources r ON r.resource_id = l.resource_id;
"#;

/// A span's service version over [`SPANS_WITH_RESOURCES`], as the `spans`
/// view shows it.
pub const SPAN_VERSION_SQL: &str = "coalesce(span_rows.service_version, resources.service_version)";
/// A span's environment over [`SPANS_WITH_RESOURCES`].
pub const SPAN_ENVIRONMENT_SQL: &str =
    "coalesce(span_rows.deployment_environment, resources.deployment_environment)";

/// `span_rows` with each row's resource row, under both tables' names.
pub const SPANS_WITH_RESOURCES: &str =
    "span_rows_all span_rows LEFT JOIN resources ON resources.resource_id = span_rows.resource_id";

/// The id stored for a resource's JSON text.
pub fn resource_id(resource: &str) -> u64 {
    let digest = Sha256::digest(resource.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// What a span's or log's resource row holds besides the text (migrations
/// 19 and 20; logs have no scope version).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub service_version: Option<String>,
    pub deployment_environment: Option<String>,
    pub scope_name: Option<String>,
    pub scope_version: Option<String>,
}

impl Origin {
    fn from_values([version, environment, scope_name, scope_version]: Values<'_>) -> Origin {
        Origin {
            service_version: version.map(String::from),
            deployment_environment: environment.map(String::from),
            scope_name: scope_name.map(String::from),
            scope_version: scope_version.map(String::from),
        }
    }

    fn values(&self) -> Values<'_> {
        [
            self.service_version.as_deref(),
            self.deployment_environment.as_deref(),
            self.scope_name.as_deref(),
            self.scope_version.as_deref(),
        ]
    }

    /// The resource row id of records from `resource` with these values:
    /// the text's own id when all four are absent, else a hash of both.
    /// 0xFF never occurs in UTF-8 text, so no resource text hashes like
    /// another's text with fields.
    pub fn id(&self, resource: &str) -> u64 {
        let values = self.values();
        if values.iter().all(|v| v.is_none()) {
            return resource_id(resource);
        }
        let mut hash = Sha256::new();
        hash.update(resource.as_bytes());
        hash.update([0xFF]);
        for value in values {
            match value {
                None => hash.update([0]),
                Some(v) => {
                    hash.update([1]);
                    hash.update((v.len() as u64).to_le_bytes());
                    hash.update(v.as_bytes());
                }
            }
        }
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.finalize()[..8]);
        u64::from_be_bytes(first)
    }
}

/// An [`Origin`] borrowed from a record: version, environment, scope name
/// and scope version.
type Values<'a> = [Option<&'a str>; 4];

fn span_values(s: &SpanRecord) -> Values<'_> {
    [
        s.service_version.as_deref(),
        s.deployment_environment.as_deref(),
        s.scope_name.as_deref(),
        s.scope_version.as_deref(),
    ]
}

fn log_values(l: &LogRecord) -> Values<'_> {
    [
        l.service_version.as_deref(),
        l.deployment_environment.as_deref(),
        l.scope_name.as_deref(),
        None,
    ]
}

/// Resource row ids for a run of records, hashing each distinct resource
/// (and [`Origin`]) once: an export's records share their resource's `Arc`,
/// and mostly one scope.
#[derive(Default)]
pub struct ResourceIds {
    last: Option<(Arc<str>, u64)>,
    last_origin: Option<(Arc<str>, Origin, u64)>,
}

impl ResourceIds {
    /// The id of a metric point's resource row.
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

    /// The id of a span's resource row.
    pub fn span(&mut self, s: &SpanRecord) -> u64 {
        self.with_origin(&s.resource, span_values(s))
    }

    /// The id of a log's resource row.
    pub fn log(&mut self, l: &LogRecord) -> u64 {
        self.with_origin(&l.resource, log_values(l))
    }

    fn with_origin(&mut self, resource: &Arc<str>, values: Values<'_>) -> u64 {
        if let Some((text, origin, id)) = &self.last_origin {
            if Arc::ptr_eq(text, resource) && origin.values() == values {
                return *id;
            }
        }
        let origin = Origin::from_values(values);
        let id = origin.id(resource);
        self.last_origin = Some((resource.clone(), origin, id));
        id
    }
}

/// How often unused resources are dropped.
const COLLECT_EVERY: Duration = Duration::from_secs(3600);

/// Drops the resources no stored row uses.
const COLLECT_SQL: &str = "DELETE FROM resources WHERE resource_id NOT IN (
    SELECT resource_id FROM span_rows WHERE resource_id IS NOT NULL
    UNION SELECT resource_id FROM log_rows WHERE resource_id IS NOT NULL
    UNION SELECT resource_id FROM metric_rows WHERE resource_id IS NOT NULL)";

/// `resources` in table order: id, text, then [`Origin`] (migration 19).
const COLS: &[Col] = &[
    Col::UBigint,
    Col::Varchar,
    Col::Varchar,
    Col::Varchar,
    Col::Varchar,
    Col::Varchar,
];

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
        let mut new: Vec<(u64, Arc<str>, Option<Origin>)> = Vec::new();
        // A set, not a scan of `new`: a client may send a resource per span.
        let mut added = HashSet::new();
        let mut last = None;
        let mut consider = |id: u64, resource: &Arc<str>, values: Option<Values<'_>>| {
            if last != Some(id) && !known.contains(&id) && added.insert(id) {
                new.push((id, resource.clone(), values.map(Origin::from_values)));
            }
            last = Some(id);
        };
        for batch in rows.batches() {
            for s in &batch.spans {
                consider(ids.span(s), &s.resource, Some(span_values(s)));
            }
            for l in &batch.logs {
                consider(ids.log(l), &l.resource, Some(log_values(l)));
            }
            for m in &batch.metrics {
                consider(ids.id(&m.resource), &m.resource, None);
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let chunks = Chunk::fill(
            COLS,
            &new,
            |b: &mut ChunkBuilder<'_>, (id, text, origin)| {
                b.u64(*id);
                b.str(text);
                let origin = origin.as_ref();
                b.opt_str(origin.and_then(|o| o.service_version.as_deref()));
                b.opt_str(origin.and_then(|o| o.deployment_environment.as_deref()));
                b.opt_str(origin.and_then(|o| o.scope_name.as_deref()));
                b.opt_str(origin.and_then(|o| o.scope_version.as_deref()));
            },
        );
        raw.append_chunks("resources", &chunks)?;
        self.staged = new.into_iter().map(|(id, ..)| id).collect();
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
            trace_id: format!("{i:032x}").into(),
            span_id: format!("{i:016x}").into(),
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

    /// A file left by an older release at migration `version`, holding
    /// `old_rows`, opened (and so migrated) by this one, with a writer.
    fn upgraded(version: u32, old_rows: &str) -> (tempfile::TempDir, Conn, Writer) {
        let dir = tempfile::tempdir().unwrap();
        {
            let old = duckdb::Connection::open(dir.path().join("q.duckdb")).unwrap();
            crate::storage::schema::migrate_to(&old, version).unwrap();
            old.execute_batch(old_rows).unwrap();
        }
        let db = open(&StorageOptions::file_in(dir.path())).unwrap();
        let conn = db.connect().unwrap();
        let writer =
            Writer::start(db, Arc::new(Hub::new(64)), WriterConfig::default(), true).unwrap();
        (dir, conn, writer)
    }

    /// Writes `batch` and waits until reads see it (a file's writer
    /// answers from its journal before the commit).
    fn write_and_settle(writer: &Writer, batch: Batch) {
        let rx = writer.handle().submit(batch).unwrap();
        rx.blocking_recv().unwrap().unwrap();
        writer
            .handle()
            .visibility()
            .unwrap()
            .settle_blocking(std::time::Duration::from_secs(30));
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
        // A file as the release before migration 16 left it.
        let (_dir, conn, writer) = upgraded(
            15,
            &format!(
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
            ),
        );
        let a: Arc<str> = HOST_A.into();
        write_and_settle(
            &writer,
            Batch {
                spans: vec![span(0, &a)],
                logs: vec![log(&a)],
                ..Default::default()
            },
        );
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

    #[test]
    fn a_span_s_version_environment_and_scope_are_stored_with_its_resource() {
        let old_trace = format!("{:032x}", 99);
        // A row as the release before migration 19 stored it.
        let (_dir, conn, writer) = upgraded(
            18,
            &format!(
                "INSERT INTO span_rows BY NAME SELECT
                99::UHUGEINT AS trace_id, 99::UBIGINT AS span_id, 'old' AS name,
                'INTERNAL' AS kind, 1 AS start_time_unix_nano, 2 AS end_time_unix_nano,
                1 AS duration_ns, 'UNSET' AS status_code, 'a' AS service_name,
                '1.0' AS service_version, 'staging' AS deployment_environment,
                'old-scope' AS scope_name, '0.0' AS scope_version,
                '{{}}' AS attributes, 0 AS dropped_attributes_count,
                0 AS dropped_events_count, 0 AS dropped_links_count, 1 AS ingest_seq,
                {id} AS resource_id;
             INSERT INTO resources VALUES ({id}, '{HOST_A}');",
                id = resource_id(HOST_A)
            ),
        );
        let a: Arc<str> = HOST_A.into();
        let scoped = |i: u64, scope: Option<&str>, version: Option<&str>| SpanRecord {
            service_version: Some("2.0".into()),
            deployment_environment: Some("prod".into()),
            scope_name: scope.map(Into::into),
            scope_version: version.map(Into::into),
            ..span(i, &a)
        };
        write_and_settle(
            &writer,
            Batch {
                spans: vec![
                    scoped(1, Some("fastapi"), Some("0.1")),
                    scoped(2, Some("httpx"), None),
                    scoped(3, Some("fastapi"), Some("0.1")),
                    span(4, &a),
                ],
                logs: vec![log(&a)],
                ..Default::default()
            },
        );

        let mut stmt = conn
            .prepare(
                "SELECT name, service_version, deployment_environment, scope_name,
                        scope_version, resource
                 FROM spans ORDER BY ingest_seq",
            )
            .unwrap();
        type Shown = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
        );
        let shown: Vec<Shown> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let row =
            |name: &str, v: Option<&str>, e: Option<&str>, s: Option<&str>, sv: Option<&str>| {
                let o = |x: Option<&str>| x.map(String::from);
                (
                    name.to_string(),
                    o(v),
                    o(e),
                    o(s),
                    o(sv),
                    HOST_A.to_string(),
                )
            };
        assert_eq!(
            shown,
            vec![
                row(
                    "old",
                    Some("1.0"),
                    Some("staging"),
                    Some("old-scope"),
                    Some("0.0")
                ),
                row(
                    "work",
                    Some("2.0"),
                    Some("prod"),
                    Some("fastapi"),
                    Some("0.1")
                ),
                row("work", Some("2.0"), Some("prod"), Some("httpx"), None),
                row(
                    "work",
                    Some("2.0"),
                    Some("prod"),
                    Some("fastapi"),
                    Some("0.1")
                ),
                row("work", None, None, None, None),
            ]
        );
        // Only the row from before the migration holds them itself.
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM span_rows WHERE service_version IS NOT NULL
                   OR deployment_environment IS NOT NULL OR scope_name IS NOT NULL
                   OR scope_version IS NOT NULL"
            ),
            1
        );
        // The plain resource (the old row, the unscoped span, the log) and
        // one row per scope.
        assert_eq!(count(&conn, "SELECT count(*) FROM resources"), 3);
        assert_eq!(
            count(
                &conn,
                &format!(
                    "SELECT count(*) FROM span_rows WHERE resource_id = {}",
                    resource_id(HOST_A)
                )
            ),
            2
        );

        // qyl's own reads show the same values.
        let tree = get_trace(&conn, &format!("{:032x}", 1)).unwrap().unwrap();
        let span = &tree.roots[0].span;
        assert_eq!(span.service_version.as_deref(), Some("2.0"));
        assert_eq!(span.deployment_environment.as_deref(), Some("prod"));
        assert_eq!(span.scope_name.as_deref(), Some("fastapi"));
        let old = get_trace(&conn, &old_trace).unwrap().unwrap();
        assert_eq!(old.roots[0].span.service_version.as_deref(), Some("1.0"));
        assert_eq!(old.roots[0].span.scope_name.as_deref(), Some("old-scope"));
        let logs = query_logs(&conn, &LogQuery::default()).unwrap();
        assert_eq!(logs.items[0].resource.get(), HOST_A);
        writer.shutdown();
    }

    #[test]
    fn a_log_s_version_environment_and_scope_are_stored_with_its_resource() {
        // A row as the release before migration 20 stored it.
        let (_dir, conn, writer) = upgraded(
            19,
            &format!(
                "INSERT INTO log_rows BY NAME SELECT 1 AS time_unix_nano,
                1 AS observed_time_unix_nano, 9 AS severity_number, 'a' AS service_name,
                '1.0' AS service_version, 'staging' AS deployment_environment,
                'old-scope' AS scope_name, 0 AS flags, '{{}}' AS attributes,
                0 AS dropped_attributes_count, 1 AS ingest_seq, {id} AS resource_id;
             INSERT INTO resources (resource_id, resource) VALUES ({id}, '{HOST_A}');",
                id = resource_id(HOST_A)
            ),
        );
        let a: Arc<str> = HOST_A.into();
        let from_app = LogRecord {
            time_unix_nano: 6_000,
            service_version: Some("2.0".into()),
            deployment_environment: Some("prod".into()),
            scope_name: Some("app".into()),
            ..log(&a)
        };
        // A span from the same SDK and scope (without a scope version)
        // shares the log's row.
        let span_from_app = SpanRecord {
            service_version: Some("2.0".into()),
            deployment_environment: Some("prod".into()),
            scope_name: Some("app".into()),
            ..span(1, &a)
        };
        write_and_settle(
            &writer,
            Batch {
                spans: vec![span_from_app],
                logs: vec![from_app, log(&a)],
                ..Default::default()
            },
        );
        let mut stmt = conn
            .prepare(
                "SELECT service_version, deployment_environment, scope_name, resource
                 FROM logs ORDER BY ingest_seq",
            )
            .unwrap();
        type Shown = (Option<String>, Option<String>, Option<String>, String);
        let shown: Vec<Shown> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let o = |x: &str| Some(x.to_string());
        let a_text = HOST_A.to_string();
        assert_eq!(
            shown,
            vec![
                (o("1.0"), o("staging"), o("old-scope"), a_text.clone()),
                (o("2.0"), o("prod"), o("app"), a_text.clone()),
                (None, None, None, a_text),
            ]
        );
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM log_rows WHERE service_version IS NOT NULL
                   OR deployment_environment IS NOT NULL OR scope_name IS NOT NULL"
            ),
            1
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM resources"), 2);
        assert_eq!(
            count(
                &conn,
                "SELECT count(DISTINCT resource_id) FROM (SELECT resource_id FROM span_rows
                   UNION ALL SELECT resource_id FROM log_rows WHERE ingest_seq > 1)"
            ),
            2
        );
        // qyl's own log search shows the same values, newest first.
        let page = query_logs(&conn, &LogQuery::default()).unwrap();
        let found: Vec<_> = page
            .items
            .iter()
            .map(|l| (l.service_version.clone(), l.scope_name.clone()))
            .collect();
        assert_eq!(
            found,
            vec![
                (o("2.0"), o("app")),
                (None, None),
                (o("1.0"), o("old-scope"))
            ]
        );
        writer.shutdown();
    }

    #[test]
    fn span_ids_hash_the_origin_and_fall_back_to_the_resource_s() {
        let a: Arc<str> = HOST_A.into();
        let plain = span(0, &a);
        let mut ids = ResourceIds::default();
        assert_eq!(ids.span(&plain), resource_id(HOST_A));
        let versioned = SpanRecord {
            service_version: Some("1".into()),
            ..span(1, &a)
        };
        let scoped = SpanRecord {
            scope_name: Some("1".into()),
            ..span(2, &a)
        };
        let v = ids.span(&versioned);
        let s = ids.span(&scoped);
        assert!(v != s && v != resource_id(HOST_A) && s != resource_id(HOST_A));
        // The same values in another order of calls give the same ids.
        assert_eq!(ResourceIds::default().span(&scoped), s);
        assert_eq!(ids.span(&versioned), v);
    }
}
