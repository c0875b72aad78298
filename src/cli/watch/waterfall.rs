//! A trace as the screen's waterfall: `/api/v1/traces/{id}` (a tree of
//! span rows) flattened depth-first into rows whose bars sit where the span
//! ran within the trace, so the slow part of a request is seen at a glance.

use serde_json::Value;

use super::record::{Kind, LiveRecord};

#[derive(Debug, Clone, PartialEq)]
pub struct WaterfallRow {
    pub depth: usize,
    pub name: String,
    pub service: String,
    /// Where the span starts and how long it lasts, as fractions of the
    /// trace (0..=1).
    pub offset: f64,
    pub width: f64,
    pub duration_ms: f64,
    pub error: bool,
}

#[derive(Debug, Clone)]
pub struct Waterfall {
    pub trace_id: String,
    pub duration_ms: f64,
    pub rows: Vec<WaterfallRow>,
    /// Logs carrying the trace id, in time order.
    pub logs: Vec<LiveRecord>,
}

/// Reads the server's `TraceTree` JSON.
pub fn from_trace(trace_id: &str, tree: &Value) -> Waterfall {
    let roots = tree
        .get("roots")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    // Pre-order, iteratively: a deep trace must not exhaust the stack.
    let mut flat: Vec<(usize, &Value)> = Vec::new();
    let mut stack: Vec<(usize, &Value)> = roots.iter().rev().map(|r| (0, r)).collect();
    while let Some((depth, node)) = stack.pop() {
        flat.push((depth, node));
        if let Some(children) = node.get("children").and_then(Value::as_array) {
            stack.extend(children.iter().rev().map(|c| (depth + 1, c)));
        }
    }
    let times: Vec<(u64, u64)> = flat
        .iter()
        .map(|(_, n)| {
            (
                nanos(n, "start_time_unix_nano"),
                nanos(n, "end_time_unix_nano"),
            )
        })
        .collect();
    let start = times.iter().map(|t| t.0).min().unwrap_or(0);
    let end = times.iter().map(|t| t.1.max(t.0)).max().unwrap_or(start);
    let total = end.saturating_sub(start).max(1) as f64;
    let rows = flat
        .iter()
        .zip(&times)
        .map(|((depth, n), (s, e))| WaterfallRow {
            depth: *depth,
            name: str_field(n, "name"),
            service: str_field(n, "service_name"),
            offset: s.saturating_sub(start) as f64 / total,
            width: e.saturating_sub(*s) as f64 / total,
            duration_ms: n.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0),
            error: n.get("status_code").and_then(Value::as_str) == Some("ERROR"),
        })
        .collect();
    Waterfall {
        trace_id: trace_id.to_string(),
        duration_ms: end.saturating_sub(start) as f64 / 1e6,
        rows,
        logs: logs(tree),
    }
}

fn logs(tree: &Value) -> Vec<LiveRecord> {
    let mut logs: Vec<LiveRecord> = tree
        .get("logs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|l| {
            let seq = l.get("ingest_seq").and_then(Value::as_u64).unwrap_or(0);
            LiveRecord::new(seq, Kind::Log, l.clone())
        })
        .collect();
    logs.sort_by_key(|l| l.time_ns);
    logs
}

/// The bar of a row in `columns` characters: blanks up to the start, then
/// at least one block so even the shortest span is visible.
pub fn bar(row: &WaterfallRow, columns: usize) -> String {
    if columns == 0 {
        return String::new();
    }
    let lead = ((row.offset * columns as f64).floor() as usize).min(columns - 1);
    let len = ((row.width * columns as f64).round() as usize).clamp(1, columns - lead);
    format!("{}{}", " ".repeat(lead), "█".repeat(len))
}

fn nanos(v: &Value, key: &str) -> u64 {
    match v.get(key) {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(n) => n.as_u64().unwrap_or(0),
        None => 0,
    }
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span(name: &str, start: u64, end: u64, children: Vec<Value>) -> Value {
        json!({"name": name, "service_name": "shop", "start_time_unix_nano": start.to_string(),
               "end_time_unix_nano": end.to_string(), "duration_ms": (end - start) as f64 / 1e6,
               "status_code": "OK", "children": children})
    }

    #[test]
    fn children_follow_their_parent_with_bars_in_place() {
        let tree = json!({
            "roots": [span("GET /", 0, 100_000_000, vec![
                span("db", 0, 50_000_000, vec![span("connect", 0, 1_000, vec![])]),
                span("render", 50_000_000, 100_000_000, vec![]),
            ])],
            "logs": [{"body": "late", "time_unix_nano": "9"}, {"body": "early", "time_unix_nano": "1"}]
        });
        let w = from_trace("ab", &tree);
        let names: Vec<_> = w.rows.iter().map(|r| (r.depth, r.name.as_str())).collect();
        assert_eq!(
            names,
            [(0, "GET /"), (1, "db"), (2, "connect"), (1, "render")]
        );
        assert_eq!(w.duration_ms, 100.0);
        let logs: Vec<_> = w.logs.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(logs, ["early", "late"]);
        assert_eq!(bar(&w.rows[0], 10), "██████████");
        assert_eq!(bar(&w.rows[1], 10), "█████");
        // Tiny spans still get a block.
        assert_eq!(bar(&w.rows[2], 10), "█");
        assert_eq!(bar(&w.rows[3], 10), "     █████");
    }
}
