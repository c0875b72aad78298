//! `POST /api/v1/sql`: read-only SQL for power users.
//!
//! Three locks keep it read-only. DuckDB's own parser and binder must call
//! the text exactly one statement of type SELECT (so `INSERT`, `COPY`,
//! `ATTACH`, `PRAGMA`, `SET`, `CALL` and stacked statements are refused by
//! name); the statement then runs as a subquery (`SELECT * FROM (…) LIMIT
//! n`), which the parser accepts only for queries; and the database is
//! opened with external access disabled, so table functions cannot read or
//! write files. The row cap and the pool's deadline bound the cost.

use std::time::Instant;

use duckdb::types::{TimeUnit, Value};

use crate::model::query::{SqlColumn, SqlResult};
use crate::storage::duck::{Database, StatementKind};
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::Conn;

/// Checks that `sql` is a single read-only query; returns it without
/// trailing semicolons.
pub fn check(db: &std::sync::Arc<Database>, sql: &str) -> Result<String, QueryError> {
    let trimmed = sql
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    if trimmed.is_empty() {
        return Err(QueryError::Invalid("sql: the query is empty".into()));
    }
    // DuckDB turns some statements (PRAGMA, SHOW, DESCRIBE) into queries
    // internally; the user's first word decides what they asked for.
    let word = first_keyword(trimmed).to_ascii_uppercase();
    if !["SELECT", "WITH", "FROM", "VALUES", "TABLE"].contains(&word.as_str()) {
        return Err(QueryError::Invalid(format!(
            "sql: only queries (SELECT, WITH, FROM, VALUES) may run here; this is {}",
            if word.is_empty() {
                "not a query"
            } else {
                &word
            }
        )));
    }
    let raw = db.raw_connection()?;
    match raw.statement_kind(trimmed) {
        Ok(StatementKind::Select) => Ok(trimmed.to_string()),
        Ok(StatementKind::Other(name)) => Err(QueryError::Invalid(format!(
            "sql: only queries (SELECT, WITH, FROM, VALUES) may run here; this is {name}"
        ))),
        Err(e) => Err(QueryError::Invalid(format!("sql: {}", e.message))),
    }
}

/// The first word of `sql`, past comments and opening parentheses.
fn first_keyword(sql: &str) -> &str {
    let mut rest = sql;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Runs a query that [`check`] accepted, returning at most `row_limit` rows.
pub fn run(c: &Conn, checked_sql: &str, row_limit: usize) -> Result<SqlResult, QueryError> {
    run_with(c, checked_sql, &[], row_limit)
}

/// [`run`] with values for the query's `?` placeholders.
pub fn run_with(
    c: &Conn,
    checked_sql: &str,
    params: &[Value],
    row_limit: usize,
) -> Result<SqlResult, QueryError> {
    let started = Instant::now();
    let wrapped = format!("SELECT * FROM ({checked_sql}\n) LIMIT {}", row_limit + 1);
    let mut stmt = c
        .prepare(&wrapped)
        .map_err(|e| QueryError::Invalid(format!("sql: {e}")))?;
    let mut rows_out = Vec::new();
    let mut rows = stmt
        .query(duckdb::params_from_iter(params.iter()))
        .map_err(|e| QueryError::Invalid(format!("sql: {e}")))?;
    let mut truncated = false;
    while let Some(row) = rows.next().ctx("running the query")? {
        if rows_out.len() == row_limit {
            truncated = true;
            break;
        }
        let n = row.as_ref().column_count();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            out.push(json_value(row.get::<_, Value>(i).ctx("reading a value")?));
        }
        rows_out.push(out);
    }
    drop(rows);
    let columns = (0..stmt.column_count())
        .map(|i| SqlColumn {
            name: stmt
                .column_name(i)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            type_name: format!("{}", stmt.column_type(i)),
        })
        .collect();
    Ok(SqlResult {
        columns,
        rows: rows_out,
        truncated,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

fn timestamp(unit: TimeUnit, v: i64) -> serde_json::Value {
    let nanos: i128 = match unit {
        TimeUnit::Second => v as i128 * 1_000_000_000,
        TimeUnit::Millisecond => v as i128 * 1_000_000,
        TimeUnit::Microsecond => v as i128 * 1_000,
        TimeUnit::Nanosecond => v as i128,
    };
    if nanos >= 0 && nanos <= u64::MAX as i128 {
        crate::model::query::rfc3339(nanos as u64).into()
    } else {
        nanos.to_string().into()
    }
}

/// A DuckDB value as JSON. Integers beyond 64 bits become strings; times
/// become RFC 3339; blobs become base64.
fn json_value(v: Value) -> serde_json::Value {
    use base64::Engine;
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Boolean(b) => b.into(),
        Value::TinyInt(i) => i.into(),
        Value::SmallInt(i) => i.into(),
        Value::Int(i) => i.into(),
        Value::BigInt(i) => i.into(),
        Value::UTinyInt(i) => i.into(),
        Value::USmallInt(i) => i.into(),
        Value::UInt(i) => i.into(),
        Value::UBigInt(i) => i.into(),
        Value::HugeInt(i) => match i64::try_from(i) {
            Ok(n) => n.into(),
            Err(_) => i.to_string().into(),
        },
        Value::UHugeInt(i) => match u64::try_from(i) {
            Ok(n) => n.into(),
            Err(_) => i.to_string().into(),
        },
        Value::Float(f) => serde_json::Number::from_f64(f as f64).map_or(J::Null, J::Number),
        Value::Double(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        Value::Text(s) => s.into(),
        Value::Blob(b) => base64::engine::general_purpose::STANDARD.encode(b).into(),
        Value::Timestamp(unit, v) => timestamp(unit, v),
        Value::List(items) | Value::Array(items) => {
            J::Array(items.into_iter().map(json_value).collect())
        }
        Value::Struct(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), json_value(v.clone())))
                .collect(),
        ),
        Value::Enum(s) => s.into(),
        other => format!("{other:?}").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{open, StorageOptions};

    #[test]
    fn only_single_queries_pass_the_check() {
        let db = open(&StorageOptions::in_memory()).unwrap();
        assert!(check(&db, "SELECT count(*) FROM spans;").is_ok());
        assert!(check(&db, "WITH x AS (SELECT 1) SELECT * FROM x").is_ok());
        assert!(check(&db, "FROM spans").is_ok());
        assert!(check(&db, "-- count\n(SELECT 1)").is_ok());
        for (sql, expect) in [
            ("INSERT INTO spans SELECT * FROM spans", "INSERT"),
            ("DELETE FROM logs", "DELETE"),
            ("COPY spans TO '/tmp/x.csv'", "COPY"),
            ("ATTACH '/tmp/other.db' AS o", "ATTACH"),
            ("PRAGMA database_size", "PRAGMA"),
            ("SELECT 1; DROP TABLE spans", "one statement"),
            ("DROP TABLE spans", "DROP"),
            ("SET threads = 1", "SET"),
            ("", "empty"),
            ("SELECT FROM WHERE", "syntax"),
            (
                "SELECT 1 UNION ALL SELECT 2; INSERT INTO logs SELECT * FROM logs",
                "one statement",
            ),
            ("SELEC 1", "SELEC"),
            ("-- hi\n/* x */ DESCRIBE spans", "DESCRIBE"),
        ] {
            let e = check(&db, sql).unwrap_err().to_string();
            assert!(e.contains(expect), "{sql}: {e}");
        }
        let e = check(&db, "SELECT * FROM read_text('/etc/hostname')")
            .unwrap_err()
            .to_string();
        assert!(e.to_lowercase().contains("disabled"), "{e}");
    }

    #[test]
    fn results_are_capped_and_typed() {
        let db = open(&StorageOptions::in_memory()).unwrap();
        let c = db.connect().unwrap();
        let sql = check(&db, "SELECT range AS n, 'x' || range AS s FROM range(10)").unwrap();
        let r = run(&c, &sql, 3).unwrap();
        assert!(r.truncated);
        assert_eq!(r.rows.len(), 3);
        assert_eq!(r.columns[0].name, "n");
        assert_eq!(
            r.rows[1],
            vec![serde_json::json!(1), serde_json::json!("x1")]
        );
        let r = run(&c, &check(&db, "SELECT 1 AS a").unwrap(), 3).unwrap();
        assert!(!r.truncated);
    }
}
