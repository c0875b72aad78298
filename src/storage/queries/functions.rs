//! Reads of the functions engine's tables: an invocation history page, and
//! the persisted `runtime.state` loaded when qyl starts.

use std::collections::HashMap;

use duckdb::types::Value;
use duckdb::Row;

use super::traces::paginate;
use super::Where;
use crate::model::function::{InvocationQuery, InvocationRow};
use crate::model::query::{raw_json, rfc3339, Cursor, Page};
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::Conn;

const INVOCATION_COLS: &str = "invocation_id, function_id, status, result, error, duration_ms, \
    triggered_by_trace_id, triggered_by_span_id, started_unix_nano, finished_unix_nano";

fn invocation_row(r: &Row<'_>) -> duckdb::Result<InvocationRow> {
    let started: u64 = r.get(8)?;
    let finished: u64 = r.get(9)?;
    Ok(InvocationRow {
        invocation_id: r.get(0)?,
        function: r.get(1)?,
        status: r.get(2)?,
        result: r.get::<_, Option<String>>(3)?.map(|j| raw_json(&j)),
        error: r.get(4)?,
        duration_ms: r.get(5)?,
        triggered_by_trace_id: r.get(6)?,
        triggered_by_span_id: r.get(7)?,
        started_at: rfc3339(started),
        started_unix_nano: started.to_string(),
        finished_unix_nano: (finished > 0).then(|| finished.to_string()),
    })
}

/// A function's invocations, newest first.
pub fn invocations(c: &Conn, q: &InvocationQuery) -> Result<Page<InvocationRow>, QueryError> {
    let mut w = Where::default();
    w.eq("function_id", Some(&q.function));
    if let Some(status) = q.status {
        w.cond("status = ?", [Value::Text(status.as_str().into())]);
    }
    if let Some(cur) = &q.page.cursor {
        w.cond(
            "(started_unix_nano < ? OR (started_unix_nano = ? AND invocation_id < ?))",
            [
                Value::UBigInt(cur.time),
                Value::UBigInt(cur.time),
                Value::Text(cur.key.clone()),
            ],
        );
    }
    let sql = format!(
        "SELECT {INVOCATION_COLS} FROM function_invocations{} \
         ORDER BY started_unix_nano DESC, invocation_id DESC LIMIT {}",
        w.sql(),
        q.page.limit + 1
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the invocation list")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(w.params.iter()), invocation_row)
        .ctx("listing invocations")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading invocations")?;
    Ok(paginate(rows, q.page.limit, |i| Cursor {
        time: i.started_unix_nano.parse().unwrap_or(0),
        key: i.invocation_id.clone(),
    }))
}

/// Every function's `runtime.state`: function → key → JSON text.
pub fn load_state(c: &Conn) -> Result<HashMap<String, HashMap<String, String>>, QueryError> {
    let mut stmt = c
        .prepare("SELECT function_id, key, value FROM function_state")
        .ctx("preparing the function state load")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .ctx("loading function state")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading function state")?;
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    for (function, key, value) in rows {
        out.entry(function).or_default().insert(key, value);
    }
    Ok(out)
}
