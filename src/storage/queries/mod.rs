//! The SQL behind [`Store`](super::Store): one file per kind of read, sharing
//! a small WHERE-clause builder and the row mappers, so every surface gets
//! the same filters and the same row shapes.

pub mod errors;
pub mod functions;
pub mod genai;
mod histogram;
pub mod logs;
pub mod metrics;
pub mod releases;
pub mod sessions;
pub mod slo;
pub mod sql;
pub mod stats;
pub mod traces;

use duckdb::types::Value;

/// The strings of a DuckDB `LIST(VARCHAR)` value (`list(DISTINCT …)`).
pub(crate) fn texts(v: Value) -> Vec<String> {
    match v {
        Value::List(items) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::Text(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Conditions joined by AND, with their bound parameters in order.
#[derive(Default)]
pub(crate) struct Where {
    conds: Vec<String>,
    pub params: Vec<Value>,
}

impl Where {
    /// Adds a condition whose `?` placeholders take `params` in order.
    pub fn cond(&mut self, cond: impl Into<String>, params: impl IntoIterator<Item = Value>) {
        self.conds.push(cond.into());
        self.params.extend(params);
    }

    pub fn eq(&mut self, column: &str, value: Option<&String>) {
        if let Some(v) = value {
            self.cond(format!("{column} = ?"), [Value::Text(v.clone())]);
        }
    }

    /// `trace_id = ?` on `span_rows`, whose ids are numbers
    /// (`storage::ids`): an id that is not 32 hex digits matches no span.
    pub fn trace_id(&mut self, value: Option<&String>) {
        if let Some(v) = value {
            match crate::storage::ids::trace_id_value(v) {
                Some(id) => self.cond("trace_id = ?", [id]),
                None => self.cond("false", []),
            }
        }
    }

    pub fn ge(&mut self, column: &str, value: Option<u64>) {
        if let Some(v) = value {
            self.cond(format!("{column} >= ?"), [Value::UBigInt(v)]);
        }
    }

    pub fn lt(&mut self, column: &str, value: Option<u64>) {
        if let Some(v) = value {
            self.cond(format!("{column} < ?"), [Value::UBigInt(v)]);
        }
    }

    pub fn le(&mut self, column: &str, value: Option<u64>) {
        if let Some(v) = value {
            self.cond(format!("{column} <= ?"), [Value::UBigInt(v)]);
        }
    }

    /// `attr.KEY=VALUE`: the record attribute KEY, or failing that the
    /// resource attribute, has the text VALUE. Keys are checked by the API
    /// (no quotes or backslashes) and bound as parameters.
    ///
    /// For the `*_rows` tables: a row's resource is its own `resource`
    /// text (rows stored before migration 16) or the `resources` row its
    /// `resource_id` names, found by an uncorrelated `IN` (the few matching
    /// resources, not a join per row).
    pub fn attrs(&mut self, attrs: &[(String, String)]) {
        for (key, value) in attrs {
            let path = Value::Text(format!("$.\"{key}\""));
            let value = Value::Text(value.clone());
            self.cond(
                "CASE WHEN json_extract_string(attributes, ?) IS NOT NULL
                      THEN json_extract_string(attributes, ?) = ?
                      WHEN resource IS NOT NULL THEN json_extract_string(resource, ?) = ?
                      ELSE resource_id IN (SELECT resource_id FROM resources
                                           WHERE json_extract_string(resource, ?) = ?) END",
                [
                    path.clone(),
                    path.clone(),
                    value.clone(),
                    path.clone(),
                    value.clone(),
                    path,
                    value,
                ],
            );
        }
    }

    pub fn is_empty(&self) -> bool {
        self.conds.is_empty()
    }

    /// ` WHERE a AND b`, or nothing.
    pub fn sql(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conds.join(" AND "))
        }
    }

    /// `a AND b` (or `true`), for HAVING and nested clauses.
    pub fn joined(&self) -> String {
        if self.conds.is_empty() {
            "true".into()
        } else {
            self.conds.join(" AND ")
        }
    }
}
