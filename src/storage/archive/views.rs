//! The relations every read goes through, hot and cold alike.
//!
//! The writer appends to `span_rows`, `log_rows` and `metric_rows`; the
//! archive moves their old windows to Parquet files. Reads must not care
//! where a row lives, so each table has a view over both tiers,
//! `span_rows_all` (and `log_rows_all`, `metric_rows_all`), with the
//! table's own columns: archived rows come back with numeric span ids and
//! their resource as text (the table's older rows carry it the same way).
//! The public views (`spans`, `logs`, `metrics`), whose columns are the
//! contract users' SQL relies on, are built over those.
//!
//! Each `_all` view names its Parquet files one by one, taken from the
//! catalog (`archive_parts`), instead of a glob: it is replaced in the same
//! transaction that deletes the rows a new file holds (or forgets a file
//! retention drops), so a read sees a row exactly once, in one tier or the
//! other, and never a file another process is still writing.

use super::Signal;

/// The columns of `signal`'s public view, over a source with its table's
/// columns aliased `s` and its resource row aliased `r`. The archive
/// writes these same columns, so other engines read the names users know.
fn public_columns(signal: Signal) -> &'static str {
    match signal {
        Signal::Spans => {
            "s.* EXCLUDE (resource_id) REPLACE (
        qyl_trace_hex(s.trace_id) AS trace_id,
        qyl_span_hex(s.span_id) AS span_id,
        qyl_span_hex(s.parent_span_id) AS parent_span_id,
        coalesce(s.service_version, r.service_version) AS service_version,
        coalesce(s.deployment_environment, r.deployment_environment) AS deployment_environment,
        coalesce(s.scope_name, r.scope_name) AS scope_name,
        coalesce(s.scope_version, r.scope_version) AS scope_version,
        coalesce(s.resource, r.resource) AS resource,
        coalesce(s.events, '[]') AS events,
        coalesce(s.links, '[]') AS links)"
        }
        Signal::Logs => {
            "s.* EXCLUDE (resource_id) REPLACE (
        coalesce(s.service_version, r.service_version) AS service_version,
        coalesce(s.deployment_environment, r.deployment_environment) AS deployment_environment,
        coalesce(s.scope_name, r.scope_name) AS scope_name,
        coalesce(s.resource, r.resource) AS resource)"
        }
        Signal::Metrics => {
            "s.* EXCLUDE (resource_id) REPLACE (coalesce(s.resource, r.resource) AS resource)"
        }
    }
}

/// `signal`'s public columns over `source` (a table or view with the
/// table's columns).
pub fn public_select(signal: Signal, source: &str) -> String {
    format!(
        "SELECT {} FROM {source} s LEFT JOIN resources r ON r.resource_id = s.resource_id",
        public_columns(signal)
    )
}

/// An archived file's columns turned back into the table's: ids parsed,
/// no resource id (the resource is in the row, as text).
fn cold_as_table(signal: Signal) -> &'static str {
    match signal {
        Signal::Spans => {
            "* REPLACE (qyl_trace_key(trace_id) AS trace_id, qyl_span_key(span_id) AS span_id,
               qyl_span_key(parent_span_id) AS parent_span_id), NULL::UBIGINT AS resource_id"
        }
        Signal::Logs | Signal::Metrics => "*, NULL::UBIGINT AS resource_id",
    }
}

/// An archived file as the views name it: its absolute path and its
/// window (Unix ns; the end is a bound for other nodes' files).
pub struct ColdFile {
    pub path: std::path::PathBuf,
    pub window_start: u64,
    pub window_end: u64,
}

const DAY_NS: u64 = 86_400_000_000_000;

/// Replaces `signal`'s `_all` view: its table, and the files `parts` if
/// there are any.
///
/// The files are grouped by day, each day's `read_parquet` under a filter
/// on the day's time range. A query's own time range then rules out whole
/// days while it is planned, before any of their files is opened: DuckDB
/// otherwise opens every named file to check its statistics (a query on
/// the last hour over a week of hourly files took 3–5 ms against 1.5–2.3
/// ms by days, and 30–47 ms against 8–9 ms over a thousand files).
pub fn install_rows_all(
    conn: &duckdb::Connection,
    signal: Signal,
    parts: &[ColdFile],
) -> duckdb::Result<()> {
    let (table, time) = (signal.table(), signal.time_column());
    let mut sql = format!(
        "CREATE OR REPLACE VIEW {} AS SELECT * FROM {table}",
        signal.rows_all()
    );
    let mut archived = Vec::new();
    let mut days: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    for part in parts {
        days.entry(part.window_start / DAY_NS)
            .or_default()
            .push(super::sql_path(&part.path));
    }
    for (day, files) in days {
        let (from, to) = (day * DAY_NS, (day + 1) * DAY_NS);
        // Hive partitioning off: the path's `date=`, `hour=` and `node=`
        // are for other engines and must not become columns here.
        let day_files = format!(
            "FROM read_parquet([{}], hive_partitioning = false, union_by_name = true) \
             WHERE {time} >= {from} AND {time} < {to}",
            files.join(", ")
        );
        sql.push_str(&format!(
            " UNION ALL BY NAME SELECT {} {day_files}",
            cold_as_table(signal)
        ));
        archived.push(format!("SELECT * {day_files}"));
    }
    conn.execute_batch(&sql)?;
    if signal == Signal::Spans {
        // The files as they are, hex ids and all: a filter on `trace_id`
        // reaches the Parquet reader, which skips every row group whose
        // bloom filter rules the id out. Through `span_rows_all` the ids
        // are parsed first and every row is read.
        let archived = if archived.is_empty() {
            "SELECT * FROM spans WHERE false".to_string()
        } else {
            archived.join(" UNION ALL BY NAME ")
        };
        conn.execute_batch(&format!(
            "CREATE OR REPLACE VIEW {ARCHIVED_SPANS} AS {archived}"
        ))?;
    }
    Ok(())
}

/// The archived spans alone, with the files' (public) columns.
pub const ARCHIVED_SPANS: &str = "archived_spans";

/// Creates the public views over the `_all` views (and those over the
/// tables alone, as a database with nothing archived has them).
pub fn install_public(conn: &duckdb::Connection) -> duckdb::Result<()> {
    for signal in Signal::ALL {
        conn.execute_batch(&format!(
            "CREATE OR REPLACE VIEW {} AS {}",
            signal.name(),
            public_select(signal, signal.rows_all())
        ))?;
    }
    Ok(())
}
