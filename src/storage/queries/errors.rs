//! Reads of the error engine's tables: groups (filtered, sorted, paged),
//! one group with its fingerprint explanation, its events, one event with
//! breadcrumbs (releases are in `releases`).
//!
//! Breadcrumbs are built here, when an event is read, from the spans and
//! logs stored for its trace (and earlier traces of its session): spans of
//! one trace arrive over several exports, children before parents, so at the
//! error's own commit the trail is usually incomplete; at read time it is
//! what the database holds.

use duckdb::types::Value;
use duckdb::Row;

use super::traces::paginate;
use super::{texts, Where};
use crate::errors::groups::NEW_FOR_NS;
use crate::errors::triage::TriageReport;
use crate::model::errors::{
    Breadcrumb, ErrorEventDetail, ErrorEventRow, ErrorGenAiRow, ErrorGroupDetail, ErrorGroupRow,
    ErrorHistogram, ErrorNote, ErrorQuery, ErrorSort, FingerprintExplanation, GroupCounts,
};
use crate::model::query::{rfc3339, Buckets, Cursor, Page, PageRequest};
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::{ids, Conn};

/// Breadcrumbs shown per event at most.
pub const MAX_BREADCRUMBS: usize = 100;

/// The group columns, with `new` turned `ongoing` after a week (the stored
/// substatus changes only when an event or a user touches the group).
fn group_cols(now: u64) -> String {
    let new_until = now.saturating_sub(NEW_FOR_NS);
    format!(
        "id, fingerprint, error_type, message_template, culprit, category, status,
         CASE WHEN status = 'unresolved' AND substatus = 'new'
                   AND first_seen_unix_nano < {new_until} THEN 'ongoing'
              ELSE substatus END AS substatus,
         first_seen_unix_nano, last_seen_unix_nano, first_release, last_release,
         last_environment, event_count, unhandled_count, user_count,
         from_json(services, '[\"VARCHAR\"]'), from_json(users, '[\"VARCHAR\"]'),
         from_json(sample_trace_ids, '[\"VARCHAR\"]'), resolved_at_unix_nano,
         resolved_in_release, resolved_environment, merged_into,
         gen_ai_provider, gen_ai_operation, gen_ai_model, gen_ai_error_class, gen_ai_tool"
    )
}

fn group_row(r: &Row<'_>) -> duckdb::Result<ErrorGroupRow> {
    let first: u64 = r.get(8)?;
    let last: u64 = r.get(9)?;
    let resolved_at: Option<u64> = r.get(19)?;
    let genai = ErrorGenAiRow {
        provider: r.get(23)?,
        operation: r.get(24)?,
        model: r.get(25)?,
        error_class: r.get(26)?,
        tool: r.get(27)?,
    };
    let has_genai =
        genai.provider.is_some() || genai.operation.is_some() || genai.error_class.is_some();
    Ok(ErrorGroupRow {
        id: r.get(0)?,
        fingerprint: r.get(1)?,
        error_type: r.get(2)?,
        message_template: r.get(3)?,
        culprit: r.get(4)?,
        category: r.get(5)?,
        status: r.get(6)?,
        substatus: r.get(7)?,
        first_seen: rfc3339(first),
        last_seen: rfc3339(last),
        first_seen_unix_nano: first.to_string(),
        last_seen_unix_nano: last.to_string(),
        first_release: r.get(10)?,
        last_release: r.get(11)?,
        last_environment: r.get(12)?,
        count: r.get(13)?,
        unhandled_count: r.get(14)?,
        user_count: r.get(15)?,
        services: texts(r.get(16)?),
        users: texts(r.get(17)?),
        sample_trace_ids: texts(r.get(18)?),
        resolved_at: resolved_at.map(rfc3339),
        resolved_in_release: r.get(20)?,
        resolved_environment: r.get(21)?,
        merged_into: r.get(22)?,
        gen_ai: has_genai.then_some(genai),
    })
}

const SUBSTATUSES: &[&str] = &["new", "ongoing", "regressed", "escalating"];
const STATUSES: &[&str] = &["unresolved", "resolved", "archived", "merged"];

/// Is `s` a status or substatus `list_errors` understands?
pub fn is_status_filter(s: &str) -> bool {
    STATUSES.contains(&s) || SUBSTATUSES.contains(&s)
}

pub fn list_errors(c: &Conn, q: &ErrorQuery) -> Result<Page<ErrorGroupRow>, QueryError> {
    let mut w = Where::default();
    let new_until = q.now_unix_nano.saturating_sub(NEW_FOR_NS);
    match q.status.as_deref() {
        None => w.cond("status <> 'merged'", []),
        Some(s) if STATUSES.contains(&s) => w.cond("status = ?", [Value::Text(s.into())]),
        Some("new") => w.cond(
            "status = 'unresolved' AND substatus = 'new' AND first_seen_unix_nano >= ?",
            [Value::UBigInt(new_until)],
        ),
        Some("ongoing") => w.cond(
            "status = 'unresolved' AND (substatus = 'ongoing'
                OR (substatus = 'new' AND first_seen_unix_nano < ?))",
            [Value::UBigInt(new_until)],
        ),
        Some(s) if SUBSTATUSES.contains(&s) => w.cond(
            "status = 'unresolved' AND substatus = ?",
            [Value::Text(s.into())],
        ),
        Some(s) => return Err(QueryError::Invalid(format!("status: unknown status {s:?}"))),
    }
    if let Some(service) = &q.service {
        w.cond(
            "list_contains(from_json(services, '[\"VARCHAR\"]'), ?)",
            [Value::Text(service.clone())],
        );
    }
    if let Some(release) = &q.release {
        w.cond(
            "(first_release = ? OR last_release = ?
              OR id IN (SELECT group_id FROM error_event_rows WHERE release = ?))",
            [
                Value::Text(release.clone()),
                Value::Text(release.clone()),
                Value::Text(release.clone()),
            ],
        );
    }
    w.eq("category", q.category.as_ref());
    w.ge("last_seen_unix_nano", q.since);
    if let Some(text) = &q.q {
        // contains() matches the text literally (no LIKE wildcards to
        // escape); lower() on both sides makes it case-insensitive.
        w.cond(
            "(contains(lower(error_type), lower(?))
              OR contains(lower(message_template), lower(?))
              OR contains(lower(culprit), lower(?))
              OR contains(lower(first_release), lower(?))
              OR contains(lower(last_release), lower(?))
              OR EXISTS (SELECT 1 FROM unnest(from_json(services, '[\"VARCHAR\"]')) AS s(name)
                         WHERE contains(lower(s.name), lower(?))))",
            std::iter::repeat_n(Value::Text(text.clone()), 6),
        );
    }
    let sort_col = match q.sort {
        ErrorSort::LastSeen => "last_seen_unix_nano",
        ErrorSort::Count => "event_count",
        ErrorSort::Users => "user_count",
    };
    if let Some(cur) = &q.page.cursor {
        let id: i64 = cur
            .key
            .parse()
            .map_err(|_| QueryError::Invalid("cursor: not a cursor of /errors".into()))?;
        w.cond(
            format!("({sort_col} < ? OR ({sort_col} = ? AND id < ?))"),
            [
                Value::UBigInt(cur.time),
                Value::UBigInt(cur.time),
                Value::BigInt(id),
            ],
        );
    }
    let sql = format!(
        "SELECT {} FROM errors{} ORDER BY {sort_col} DESC, id DESC LIMIT {}",
        group_cols(q.now_unix_nano),
        w.sql(),
        q.page.limit + 1
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the error group list")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(w.params.iter()), group_row)
        .ctx("listing error groups")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading error groups")?;
    let sort = q.sort;
    Ok(paginate(rows, q.page.limit, move |g| Cursor {
        time: match sort {
            ErrorSort::LastSeen => g.last_seen_unix_nano.parse().unwrap_or(0),
            ErrorSort::Count => g.count,
            ErrorSort::Users => g.user_count,
        },
        key: g.id.to_string(),
    }))
}

fn describe(rule: &str) -> &'static str {
    match rule {
        "explicit" => "The qyl.fingerprint attribute the application set decides the group.",
        "in_app_frames" => "The exception type and the application's own stack frames (line numbers left out) decide the group.",
        "all_frames" => "No frame is the application's own, so the exception type and all stack frames (line numbers left out) decide the group.",
        "type_message" => "There is no stack trace, so the exception type and the message with its variable parts replaced decide the group.",
        "span_name" => "There is neither stack trace nor message, so the span name and error.type decide the group.",
        "genai" => "A GenAI call: service, provider, operation, error class and tool decide the group (the model is a tag).",
        _ => "An unknown rule (written by a newer qyl).",
    }
}

pub fn get_error(c: &Conn, id: i64, now: u64) -> Result<Option<ErrorGroupDetail>, QueryError> {
    let sql = format!(
        "SELECT {}, fingerprint_rule, fingerprint_version, in_app_hash, full_stack_hash,
                from_json(merged_hashes, '[\"VARCHAR\"]'), from_json(components, '[\"VARCHAR\"]')
         FROM errors WHERE id = ?",
        group_cols(now)
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the error group read")?;
    let mut rows = stmt
        .query_map([id], |r| {
            let group = group_row(r)?;
            let rule: String = r.get(28)?;
            Ok(ErrorGroupDetail {
                fingerprint_explanation: FingerprintExplanation {
                    description: describe(&rule).to_string(),
                    rule,
                    version: r.get(29)?,
                    hash: group.fingerprint.clone(),
                    in_app_hash: r.get(30)?,
                    full_stack_hash: r.get(31)?,
                    merged_hashes: texts(r.get(32)?),
                    components: texts(r.get(33)?),
                },
                group,
                triage: None,
                notes: Vec::new(),
                deploy: None,
                resolved_by_deploy: None,
            })
        })
        .ctx("reading the error group")?;
    let Some(mut detail) = rows.next().transpose().ctx("reading the error group")? else {
        return Ok(None);
    };
    detail.triage = triage_report(c, id)?;
    detail.notes = notes(c, id)?;
    Ok(Some(detail))
}

const EVENT_COLS: &str = "event_id, group_id, time_unix_nano, source, trace_id, span_id, \
    service_name, release, environment, session_id, user_id, error_type, message, culprit, \
    handled, gen_ai_model, gen_ai_error_class";

/// A row of `error_event_rows` (ids as numbers, `storage::ids`) with
/// [`EVENT_COLS`] first.
fn event_row(r: &Row<'_>) -> duckdb::Result<ErrorEventRow> {
    let t: u64 = r.get(2)?;
    Ok(ErrorEventRow {
        event_id: ids::trace_id_at(r, 0)?,
        group_id: r.get(1)?,
        time: rfc3339(t),
        time_unix_nano: t.to_string(),
        source: r.get(3)?,
        trace_id: r.get::<_, Option<u128>>(4)?.map(ids::trace_hex),
        span_id: ids::parent_id_at(r, 5)?,
        service_name: r.get(6)?,
        release: r.get(7)?,
        environment: r.get(8)?,
        session_id: r.get(9)?,
        user: r.get(10)?,
        error_type: r.get(11)?,
        message: r.get(12)?,
        culprit: r.get(13)?,
        handled: r.get(14)?,
        gen_ai_model: r.get(15)?,
        gen_ai_error_class: r.get(16)?,
    })
}

/// Events of a group, newest first.
pub fn list_events(
    c: &Conn,
    group: i64,
    page: &PageRequest,
) -> Result<Page<ErrorEventRow>, QueryError> {
    let mut w = Where::default();
    w.cond("group_id = ?", [Value::BigInt(group)]);
    if let Some(cur) = &page.cursor {
        let event = ids::trace_id_value(&cur.key).ok_or_else(|| {
            QueryError::Invalid("cursor: not a cursor of a group's events".into())
        })?;
        w.cond(
            "(time_unix_nano < ? OR (time_unix_nano = ? AND event_id < ?))",
            [Value::UBigInt(cur.time), Value::UBigInt(cur.time), event],
        );
    }
    let sql = format!(
        "SELECT {EVENT_COLS} FROM error_event_rows{} ORDER BY time_unix_nano DESC, event_id DESC LIMIT {}",
        w.sql(),
        page.limit + 1
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the error event list")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(w.params.iter()), event_row)
        .ctx("listing error events")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading error events")?;
    Ok(paginate(rows, page.limit, |e| Cursor {
        time: e.time_unix_nano.parse().unwrap_or(0),
        key: e.event_id.clone(),
    }))
}

/// One event of a group, with frames and breadcrumbs.
pub fn get_event(
    c: &Conn,
    group: i64,
    event_id: &str,
) -> Result<Option<ErrorEventDetail>, QueryError> {
    // Event ids are the hex of a 128-bit hash, stored as the number.
    let Some(event_id) = ids::trace_id_value(event_id) else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {EVENT_COLS}, stacktrace, frames FROM error_event_rows
         WHERE group_id = ? AND event_id = ? LIMIT 1"
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the error event read")?;
    let mut rows = stmt
        .query_map(duckdb::params![group, event_id], |r| {
            let frames: Option<String> = r.get(18)?;
            Ok((event_row(r)?, r.get::<_, Option<String>>(17)?, frames))
        })
        .ctx("reading the error event")?;
    let Some((event, stacktrace, frames)) =
        rows.next().transpose().ctx("reading the error event")?
    else {
        return Ok(None);
    };
    let breadcrumbs = breadcrumbs(c, &event)?;
    Ok(Some(ErrorEventDetail {
        event,
        stacktrace,
        frames: frames.and_then(|f| serde_json::from_str(&f).ok()),
        breadcrumbs,
    }))
}

/// A stored record that may become a breadcrumb.
struct Crumb {
    time: u64,
    trace_id: Option<String>,
    span_id: Option<String>,
    kind: CrumbKind,
}

enum CrumbKind {
    Span {
        name: String,
        kind: String,
        status: String,
        duration_ns: u64,
        operation: Option<String>,
        model: Option<String>,
        input_tokens: Option<i64>,
        output_tokens: Option<i64>,
        finish_reasons: Option<String>,
        attributes: String,
    },
    Log {
        severity: i32,
        body: Option<String>,
    },
    Error {
        error_type: Option<String>,
        message: Option<String>,
    },
}

/// Spans that can be breadcrumbs: outgoing calls, GenAI and tool calls,
/// and database queries (which some instrumentations mark INTERNAL).
const CRUMB_SPANS: &str = "(kind IN ('CLIENT', 'PRODUCER') OR gen_ai_operation IS NOT NULL \
     OR attributes LIKE '%\"db.%')";

/// What preceded `event` in its trace, oldest first, at most
/// [`MAX_BREADCRUMBS`] (the latest ones); earlier traces of the same
/// session fill in when the trace has fewer.
pub fn breadcrumbs(c: &Conn, event: &ErrorEventRow) -> Result<Vec<Breadcrumb>, QueryError> {
    let at: u64 = event.time_unix_nano.parse().unwrap_or(0);
    let own_span = event.span_id.clone().unwrap_or_default();
    let mut crumbs = Vec::new();
    if let Some(trace) = &event.trace_id {
        collect_crumbs(
            c,
            Scope::Trace,
            Value::Text(trace.clone()),
            at,
            &own_span,
            &event.event_id,
            MAX_BREADCRUMBS,
            &mut crumbs,
        )?;
    }
    if crumbs.len() < MAX_BREADCRUMBS {
        if let Some(session) = &event.session_id {
            // Earlier traces of the session: strictly before the first
            // breadcrumb (or the error) and not this trace.
            let before = crumbs.iter().map(|c| c.time).min().unwrap_or(at);
            let trace = event.trace_id.clone().unwrap_or_default();
            let mut earlier = Vec::new();
            collect_crumbs(
                c,
                Scope::Session,
                Value::Text(session.clone()),
                before,
                &trace,
                &event.event_id,
                MAX_BREADCRUMBS - crumbs.len(),
                &mut earlier,
            )?;
            crumbs.extend(earlier);
        }
    }
    crumbs.sort_by_key(|c| c.time);
    if crumbs.len() > MAX_BREADCRUMBS {
        crumbs.drain(..crumbs.len() - MAX_BREADCRUMBS);
    }
    Ok(crumbs.into_iter().map(to_breadcrumb).collect())
}

#[derive(Clone, Copy, PartialEq)]
enum Scope {
    Trace,
    Session,
}

/// Appends up to `limit` of the latest candidates of the trace or session
/// `key` at or before `at` (strictly before, for a session). `other` is
/// left out: for a trace the error's own span (not a breadcrumb of itself),
/// for a session the error's trace (read already).
#[allow(clippy::too_many_arguments)]
fn collect_crumbs(
    c: &Conn,
    scope: Scope,
    key: Value,
    at: u64,
    other: &str,
    event_id: &str,
    limit: usize,
    out: &mut Vec<Crumb>,
) -> Result<(), QueryError> {
    if limit == 0 {
        return Ok(());
    }
    let session = scope == Scope::Session;
    // Logs and earlier errors on the error's own span did precede it and
    // count; the span itself is not a breadcrumb of its own error.
    // `span_rows` holds ids as numbers (`storage::ids`); an id that does
    // not parse is NULL there, which no span has.
    let as_number = |v: &Value, parse: fn(&str) -> Option<Value>| match v {
        Value::Text(t) => parse(t).unwrap_or(Value::Null),
        other => other.clone(),
    };
    let other = Value::Text(other.to_string());
    let at_v = Value::UBigInt(at);
    let (span_scope, log_scope, err_scope, params) = if session {
        let other_trace = as_number(&other, ids::trace_id_value);
        (
            "session_id = ? AND trace_id IS DISTINCT FROM ?",
            "session_id = ? AND (trace_id IS NULL OR trace_id <> ?)",
            "session_id = ? AND (trace_id IS NULL OR trace_id IS DISTINCT FROM ?)",
            vec![
                key.clone(),
                other_trace.clone(),
                at_v.clone(),
                key.clone(),
                other,
                at_v.clone(),
                key,
                other_trace,
                at_v,
            ],
        )
    } else {
        let trace = as_number(&key, ids::trace_id_value);
        (
            "trace_id = ? AND span_id IS DISTINCT FROM ?",
            "trace_id = ?",
            "trace_id = ?",
            vec![
                trace.clone(),
                as_number(&other, ids::span_id_value),
                at_v.clone(),
                key,
                at_v.clone(),
                trace,
                at_v,
            ],
        )
    };
    let mut params = params;
    params.push(ids::trace_id_value(event_id).unwrap_or(Value::Null));
    let strict = if session { "<" } else { "<=" };
    let sql = format!(
        "SELECT * FROM (
           SELECT 0 AS k, start_time_unix_nano AS t, qyl_trace_hex(trace_id),
                  qyl_span_hex(span_id), name, kind, status_code,
                  duration_ns, gen_ai_operation, coalesce(gen_ai_response_model, gen_ai_request_model),
                  gen_ai_input_tokens, gen_ai_output_tokens, gen_ai_finish_reasons, attributes,
                  NULL::INTEGER, NULL::VARCHAR
           FROM span_rows_all span_rows WHERE {span_scope} AND start_time_unix_nano {strict} ? AND {CRUMB_SPANS}
           UNION ALL
           SELECT 1, time_unix_nano, trace_id, span_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                  NULL, NULL, NULL, severity_number, body
           FROM log_rows_all log_rows WHERE {log_scope} AND time_unix_nano {strict} ? AND severity_number >= 9
           UNION ALL
           SELECT 2, time_unix_nano, qyl_trace_hex(trace_id), qyl_span_hex(span_id), error_type,
                  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, message
           FROM error_event_rows WHERE {err_scope} AND time_unix_nano {strict} ? AND event_id IS DISTINCT FROM ?
         ) ORDER BY t DESC LIMIT {limit}"
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the breadcrumb query")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(params.iter()), |r| {
            let k: i32 = r.get(0)?;
            let kind = match k {
                0 => CrumbKind::Span {
                    name: r.get(4)?,
                    kind: r.get(5)?,
                    status: r.get(6)?,
                    duration_ns: r.get(7)?,
                    operation: r.get(8)?,
                    model: r.get(9)?,
                    input_tokens: r.get(10)?,
                    output_tokens: r.get(11)?,
                    finish_reasons: r.get(12)?,
                    attributes: r.get(13)?,
                },
                1 => CrumbKind::Log {
                    severity: r.get(14)?,
                    body: r.get(15)?,
                },
                _ => CrumbKind::Error {
                    error_type: r.get(4)?,
                    message: r.get(15)?,
                },
            };
            Ok(Crumb {
                time: r.get(1)?,
                trace_id: r.get(2)?,
                span_id: r.get(3)?,
                kind,
            })
        })
        .ctx("reading breadcrumbs")?;
    for row in rows {
        out.push(row.ctx("reading breadcrumbs")?);
    }
    Ok(())
}

fn to_breadcrumb(c: Crumb) -> Breadcrumb {
    use serde_json::{json, Map, Value as J};
    let (category, message, level, data) = match c.kind {
        CrumbKind::Span {
            name,
            kind,
            status,
            duration_ns,
            operation,
            model,
            input_tokens,
            output_tokens,
            finish_reasons,
            attributes,
        } => {
            let attrs: Map<String, J> = serde_json::from_str(&attributes).unwrap_or_default();
            let level = if status == "ERROR" { "error" } else { "info" };
            let ms = duration_ns as f64 / 1e6;
            let pick = |keys: &[&str]| keys.iter().find_map(|k| attrs.get(*k).cloned());
            if let Some(op) = operation {
                let tool = pick(&["gen_ai.tool.name"]);
                if op == "execute_tool" {
                    (
                        "tool",
                        name,
                        level,
                        json!({ "tool": tool, "duration_ms": ms, "status": status }),
                    )
                } else {
                    let reasons: J = finish_reasons
                        .and_then(|f| serde_json::from_str(&f).ok())
                        .unwrap_or(J::Null);
                    (
                        "genai",
                        name,
                        level,
                        json!({
                            "operation": op, "model": model, "input_tokens": input_tokens,
                            "output_tokens": output_tokens, "finish_reasons": reasons,
                            "duration_ms": ms, "status": status,
                        }),
                    )
                }
            } else if let Some(system) = pick(&["db.system.name", "db.system"]) {
                let statement = pick(&["db.query.text", "db.statement"]);
                (
                    "db",
                    name,
                    level,
                    json!({ "system": system, "statement": statement, "duration_ms": ms, "status": status }),
                )
            } else {
                let method = pick(&["http.request.method", "http.method"]);
                let url = pick(&["url.full", "http.url", "server.address"]);
                let code = pick(&["http.response.status_code", "http.status_code"]);
                let level = match code.as_ref().and_then(J::as_u64) {
                    Some(c) if c >= 500 => "error",
                    Some(c) if c >= 400 => "warning",
                    _ => level,
                };
                let category = if method.is_some() || url.is_some() {
                    "http"
                } else {
                    "span"
                };
                (
                    category,
                    name,
                    level,
                    json!({ "method": method, "url": url, "status_code": code, "kind": kind, "duration_ms": ms }),
                )
            }
        }
        CrumbKind::Log { severity, body } => {
            let level = match severity {
                17.. => "error",
                13..=16 => "warning",
                _ => "info",
            };
            (
                "log",
                body.unwrap_or_default(),
                level,
                json!({ "severity_number": severity }),
            )
        }
        CrumbKind::Error {
            error_type,
            message,
        } => {
            let text = match (&error_type, &message) {
                (Some(t), Some(m)) => format!("{t}: {m}"),
                (Some(t), None) => t.clone(),
                (None, Some(m)) => m.clone(),
                (None, None) => String::new(),
            };
            ("error", text, "error", json!({ "type": error_type }))
        }
    };
    Breadcrumb {
        time: rfc3339(c.time),
        time_unix_nano: c.time.to_string(),
        category: category.to_string(),
        message,
        level: level.to_string(),
        trace_id: c.trace_id,
        span_id: c.span_id,
        data,
    }
}

/// Is there a group with this id, and is it merged into another?
pub fn group_state(c: &Conn, id: i64) -> Result<Option<String>, QueryError> {
    let mut stmt = c
        .prepare("SELECT status FROM errors WHERE id = ?")
        .ctx("preparing the error group check")?;
    let mut rows = stmt
        .query_map([id], |r| r.get::<_, String>(0))
        .ctx("checking the error group")?;
    rows.next().transpose().ctx("checking the error group")
}

/// Events per group per time bucket before `until`, for the counts-over-time
/// sparklines of the group list: one entry per id of `ids`, in that order.
pub fn group_histogram(
    c: &Conn,
    ids: &[i64],
    buckets: Buckets,
    until: u64,
) -> Result<ErrorHistogram, QueryError> {
    let mut groups: Vec<GroupCounts> = ids
        .iter()
        .map(|id| GroupCounts {
            id: *id,
            counts: vec![0; buckets.count],
        })
        .collect();
    let answer = |groups| ErrorHistogram {
        start_unix_nano: buckets.start.to_string(),
        step_ms: buckets.step / 1_000_000,
        buckets: buckets.count,
        groups,
    };
    if ids.is_empty() {
        return Ok(answer(groups));
    }
    let marks = vec!["?"; ids.len()].join(", ");
    // BIGINT: Unix ns fit (until 2262), and the subtraction cannot wrap.
    let sql = format!(
        "SELECT group_id, ((time_unix_nano::BIGINT - ?) // ?)::UBIGINT AS bucket,
                count(*)::UBIGINT
         FROM error_event_rows
         WHERE group_id IN ({marks}) AND time_unix_nano >= ? AND time_unix_nano < ?
         GROUP BY 1, 2"
    );
    let mut params = vec![
        Value::BigInt(buckets.start as i64),
        Value::BigInt(buckets.step as i64),
    ];
    params.extend(ids.iter().map(|id| Value::BigInt(*id)));
    params.push(Value::UBigInt(buckets.start));
    params.push(Value::UBigInt(until));
    let mut stmt = c.prepare(&sql).ctx("preparing the error histogram")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(params.iter()), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, u64>(2)?,
            ))
        })
        .ctx("counting error events per bucket")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the error histogram")?;
    for (id, bucket, count) in rows {
        // An id asked for twice gets its counts twice.
        for g in groups.iter_mut().filter(|g| g.id == id) {
            if let Some(slot) = g.counts.get_mut(bucket as usize) {
                *slot = count;
            }
        }
    }
    Ok(answer(groups))
}

/// The newest report on group `id`, if any.
pub fn triage_report(c: &Conn, id: i64) -> Result<Option<TriageReport>, QueryError> {
    let mut stmt = c
        .prepare(
            "SELECT report FROM error_triage WHERE group_id = ?
             ORDER BY created_unix_nano DESC LIMIT 1",
        )
        .ctx("preparing the triage report query")?;
    let mut rows = stmt
        .query_map([id], |r| r.get::<_, String>(0))
        .ctx("reading the triage report")?;
    let Some(json) = rows.next().transpose().ctx("reading the triage report")? else {
        return Ok(None);
    };
    // A report an older build wrote in another shape is not worth failing
    // the group's page over: it reads as no report until the next one.
    match serde_json::from_str(&json) {
        Ok(report) => Ok(Some(report)),
        Err(e) => {
            tracing::warn!(group = id, error = %e, "a stored triage report does not parse");
            Ok(None)
        }
    }
}

/// A group's notes, oldest first (a conversation reads down).
pub fn notes(c: &Conn, group_id: i64) -> Result<Vec<ErrorNote>, QueryError> {
    let mut stmt = c
        .prepare(
            "SELECT note_id, group_id, created_unix_nano, author, text FROM error_notes
             WHERE group_id = ? ORDER BY created_unix_nano, note_id",
        )
        .ctx("preparing the error notes query")?;
    let rows = stmt
        .query_map([group_id], |r| {
            let at: u64 = r.get(2)?;
            Ok(ErrorNote {
                note_id: r.get(0)?,
                group_id: r.get(1)?,
                created_at: rfc3339(at),
                created_unix_nano: at.to_string(),
                author: r.get(3)?,
                text: r.get(4)?,
            })
        })
        .ctx("reading error notes")?;
    rows.collect::<Result<Vec<_>, _>>()
        .ctx("reading error notes")
}
