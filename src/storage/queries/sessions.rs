//! Sessions: the list (from `session_entities`, one row per session), one
//! session with its traces (from `session_traces`), its spans, and its
//! conversation rebuilt from the recorded GenAI messages.

use duckdb::types::Value;
use duckdb::Row;
use serde_json::Value as Json;

use super::traces::{paginate, span_cursor_key, span_page_sql, span_row};
use super::{texts, Where};
use crate::model::genai::{
    Conversation, ConversationTurn, SessionDetail, SessionQuery, SessionSort, SessionSummary,
    SessionTrace, ACTIVE_WINDOW_NS,
};
use crate::model::query::{rfc3339, Cursor, Page, PageRequest, SpanRow};
use crate::model::GENAI_ROLLUP_OPERATIONS;
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::{ids, Conn};

/// Traces one session answer lists at most.
const MAX_TRACES: usize = 1000;
/// Messages one conversation answer holds at most.
const MAX_TURNS: usize = 5000;

const SUMMARY_COLS: &str = "session_id, first_seen_unix_nano, last_seen_unix_nano, span_count, \
    trace_count, error_count, gen_ai_requests, gen_ai_input_tokens, gen_ai_output_tokens, \
    gen_ai_cache_read_tokens, gen_ai_cache_write_tokens, gen_ai_cost_usd, \
    gen_ai_unpriced_requests, models, services, users";

fn summary_row(r: &Row<'_>, now: u64) -> duckdb::Result<SessionSummary> {
    let first: u64 = r.get(1)?;
    let last: u64 = r.get(2)?;
    let requests: u64 = r.get(6)?;
    let unpriced: u64 = r.get(12)?;
    let cost: f64 = r.get(11)?;
    Ok(SessionSummary {
        session_id: r.get(0)?,
        first_seen: rfc3339(first),
        first_seen_unix_nano: first.to_string(),
        last_seen: rfc3339(last),
        last_seen_unix_nano: last.to_string(),
        duration_ms: last.saturating_sub(first) as f64 / 1e6,
        active: last >= now.saturating_sub(ACTIVE_WINDOW_NS),
        span_count: r.get(3)?,
        trace_count: r.get(4)?,
        error_count: r.get(5)?,
        gen_ai_requests: requests,
        input_tokens: r.get(7)?,
        output_tokens: r.get(8)?,
        cache_read_tokens: r.get(9)?,
        cache_write_tokens: r.get(10)?,
        cost_usd: (requests > unpriced).then_some(cost),
        unpriced_requests: unpriced,
        models: texts(r.get(13)?),
        services: texts(r.get(14)?),
        users: texts(r.get(15)?),
    })
}

fn sort_column(s: SessionSort) -> &'static str {
    match s {
        SessionSort::LastSeen => "last_seen_unix_nano",
        SessionSort::FirstSeen => "first_seen_unix_nano",
        SessionSort::Spans => "span_count",
        SessionSort::Traces => "trace_count",
        SessionSort::Errors => "error_count",
        SessionSort::Requests => "gen_ai_requests",
        SessionSort::Tokens => "(gen_ai_input_tokens + gen_ai_output_tokens)",
        SessionSort::Cost => "gen_ai_cost_usd",
    }
}

/// The sort value of a row as the cursor's number (costs, never negative,
/// by their bit pattern, which orders the same way).
fn sort_value(s: SessionSort, row: &SessionSummary) -> u64 {
    match s {
        SessionSort::LastSeen => row.last_seen_unix_nano.parse().unwrap_or(0),
        SessionSort::FirstSeen => row.first_seen_unix_nano.parse().unwrap_or(0),
        SessionSort::Spans => row.span_count,
        SessionSort::Traces => row.trace_count,
        SessionSort::Errors => row.error_count,
        SessionSort::Requests => row.gen_ai_requests,
        SessionSort::Tokens => (row.input_tokens + row.output_tokens).max(0) as u64,
        SessionSort::Cost => row.cost_usd.unwrap_or(0.0).max(0.0).to_bits(),
    }
}

fn sort_param(s: SessionSort, v: u64) -> Value {
    match s {
        SessionSort::Cost => Value::Double(f64::from_bits(v)),
        SessionSort::Tokens => Value::BigInt(v.min(i64::MAX as u64) as i64),
        _ => Value::UBigInt(v),
    }
}

fn cursor_prefix(q: &SessionQuery) -> String {
    format!(
        "{}:{}:",
        q.sort.name(),
        if q.ascending { "asc" } else { "desc" }
    )
}

/// One page of sessions.
pub fn list_sessions(
    c: &Conn,
    q: &SessionQuery,
    now: u64,
) -> Result<Page<SessionSummary>, QueryError> {
    let mut w = Where::default();
    w.ge("last_seen_unix_nano", q.active_since);
    w.ge("last_seen_unix_nano", q.since);
    w.lt("first_seen_unix_nano", q.until);
    if let Some(s) = &q.service {
        w.cond("list_contains(services, ?)", [Value::Text(s.clone())]);
    }
    if let Some(u) = &q.user {
        w.cond("list_contains(users, ?)", [Value::Text(u.clone())]);
    }
    let col = sort_column(q.sort);
    let (op, dir) = if q.ascending {
        (">", "ASC")
    } else {
        ("<", "DESC")
    };
    if let Some(cur) = &q.page.cursor {
        let id = cur
            .key
            .strip_prefix(&cursor_prefix(q))
            .ok_or_else(|| {
                QueryError::Invalid(
                    "cursor: from a list with another sort or order; start again without it".into(),
                )
            })?
            .to_string();
        let v = sort_param(q.sort, cur.time);
        w.cond(
            format!("({col} {op} ? OR ({col} = ? AND session_id {op} ?))"),
            [v.clone(), v, Value::Text(id)],
        );
    }
    let sql = format!(
        "SELECT {SUMMARY_COLS} FROM session_entities{} ORDER BY {col} {dir}, session_id {dir} LIMIT {}",
        w.sql(),
        q.page.limit + 1
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the session list")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(w.params.iter()), |r| {
            summary_row(r, now)
        })
        .ctx("listing sessions")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading sessions")?;
    let prefix = cursor_prefix(q);
    Ok(paginate(rows, q.page.limit, |s| Cursor {
        time: sort_value(q.sort, s),
        key: format!("{prefix}{}", s.session_id),
    }))
}

fn summary(c: &Conn, id: &str, now: u64) -> Result<Option<SessionSummary>, QueryError> {
    let mut stmt = c
        .prepare(&format!(
            "SELECT {SUMMARY_COLS} FROM session_entities WHERE session_id = ?"
        ))
        .ctx("preparing the session")?;
    let mut rows = stmt
        .query_map([id], |r| summary_row(r, now))
        .ctx("reading the session")?;
    rows.next().transpose().ctx("reading the session")
}

/// `WHERE` for the spans of a session's traces, narrowed to the session's
/// time range so old row groups are skipped by their min/max.
/// `session_trace_rows` keeps ids as numbers, as `span_rows` does
/// (`storage::ids`).
fn session_spans_where(s: &SessionSummary) -> Where {
    session_where(
        s,
        "start_time_unix_nano",
        "trace_id FROM session_trace_rows",
    )
}

/// [`session_spans_where`] for `log_rows`, which keeps its ids as text.
fn session_logs_where(s: &SessionSummary) -> Where {
    session_where(
        s,
        "time_unix_nano",
        "qyl_trace_hex(trace_id) FROM session_trace_rows",
    )
}

fn session_where(s: &SessionSummary, time_col: &str, traces: &str) -> Where {
    let mut w = Where::default();
    w.ge(time_col, s.first_seen_unix_nano.parse().ok());
    w.le(time_col, s.last_seen_unix_nano.parse().ok());
    w.cond(
        format!("trace_id IN (SELECT {traces} WHERE session_id = ?)"),
        [Value::Text(s.session_id.clone())],
    );
    w
}

/// The session and its traces in time order; `None` for an unknown id.
pub fn get_session(c: &Conn, id: &str, now: u64) -> Result<Option<SessionDetail>, QueryError> {
    let Some(session) = summary(c, id, now)? else {
        return Ok(None);
    };
    let mut stmt = c
        .prepare(&format!(
            "SELECT trace_id, min(first_seen_unix_nano), max(last_seen_unix_nano),
                    sum(span_count)::UBIGINT, sum(error_count)::UBIGINT,
                    sum(gen_ai_requests)::UBIGINT, sum(gen_ai_input_tokens)::BIGINT,
                    sum(gen_ai_output_tokens)::BIGINT, sum(gen_ai_cost_usd),
                    sum(gen_ai_unpriced_requests)::UBIGINT, string_agg(models, chr(31))
             FROM session_trace_rows WHERE session_id = ?
             GROUP BY trace_id ORDER BY 2, 1 LIMIT {}",
            MAX_TRACES + 1
        ))
        .ctx("preparing the session's traces")?;
    let mut traces = stmt
        .query_map([id], |r| {
            let first: u64 = r.get(1)?;
            let last: u64 = r.get(2)?;
            let requests: u64 = r.get(5)?;
            let unpriced: u64 = r.get(9)?;
            let mut models: Vec<String> = r
                .get::<_, Option<String>>(10)?
                .unwrap_or_default()
                .split('\u{1f}')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect();
            models.sort();
            models.dedup();
            Ok(SessionTrace {
                trace_id: ids::trace_id_at(r, 0)?,
                root_name: None,
                start_time: rfc3339(first),
                start_time_unix_nano: first.to_string(),
                end_time_unix_nano: last.to_string(),
                duration_ms: last.saturating_sub(first) as f64 / 1e6,
                span_count: r.get(3)?,
                error_count: r.get(4)?,
                gen_ai_requests: requests,
                input_tokens: r.get(6)?,
                output_tokens: r.get(7)?,
                cost_usd: (requests > unpriced).then_some(r.get(8)?),
                models,
            })
        })
        .ctx("reading the session's traces")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the session's traces")?;
    let traces_truncated = traces.len() > MAX_TRACES;
    traces.truncate(MAX_TRACES);

    let mut w = session_spans_where(&session);
    w.cond("parent_span_id IS NULL", []);
    let mut stmt = c
        .prepare(&format!(
            "SELECT trace_id, arg_min(name, start_time_unix_nano) FROM span_rows_all span_rows{} GROUP BY trace_id",
            w.sql()
        ))
        .ctx("preparing the session's root spans")?;
    let roots: std::collections::HashMap<String, String> = stmt
        .query_map(duckdb::params_from_iter(w.params.iter()), |r| {
            Ok((ids::trace_id_at(r, 0)?, r.get(1)?))
        })
        .ctx("reading the session's root spans")?
        .collect::<Result<_, _>>()
        .ctx("reading the session's root spans")?;
    for t in &mut traces {
        t.root_name = roots.get(&t.trace_id).cloned();
    }
    Ok(Some(SessionDetail {
        session,
        traces,
        traces_truncated,
    }))
}

/// The session's spans in time order (oldest first); `None` for an
/// unknown session.
pub fn session_spans(
    c: &Conn,
    id: &str,
    page: &PageRequest,
    now: u64,
) -> Result<Option<Page<SpanRow>>, QueryError> {
    let Some(session) = summary(c, id, now)? else {
        return Ok(None);
    };
    let mut w = session_spans_where(&session);
    if let Some(cur) = &page.cursor {
        let (trace, span) = span_cursor_key(&cur.key, "a session's spans")?;
        w.cond(
            "(start_time_unix_nano > ? OR (start_time_unix_nano = ? AND (trace_id > ? OR (trace_id = ? AND span_id > ?))))",
            [
                Value::UBigInt(cur.time),
                Value::UBigInt(cur.time),
                trace.clone(),
                trace,
                span,
            ],
        );
    }
    let sql = span_page_sql(
        &w.sql(),
        "start_time_unix_nano, trace_id, span_id",
        page.limit + 1,
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the session's spans")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(w.params.iter()), span_row)
        .ctx("reading the session's spans")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the session's spans")?;
    Ok(Some(paginate(rows, page.limit, |s| Cursor {
        time: s.start_unix_nano(),
        key: format!("{}:{}", s.trace_id, s.span_id),
    })))
}

/// One GenAI call's recorded messages.
struct Call {
    time: u64,
    trace_id: String,
    span_id: Option<String>,
    model: Option<String>,
    inputs: Vec<(Json, String)>,
    outputs: Vec<(Json, String)>,
}

/// A message list as recorded: a JSON array, or a JSON string holding one
/// (attributes set as strings), or a single message object.
fn messages(v: Json) -> Vec<Json> {
    match v {
        Json::Array(items) => items,
        Json::String(s) => match serde_json::from_str::<Json>(&s) {
            Ok(Json::Array(items)) => items,
            Ok(obj @ Json::Object(_)) => vec![obj],
            // Plain text (a legacy `gen_ai.prompt`): one message.
            _ => vec![serde_json::json!({ "content": s })],
        },
        obj @ Json::Object(_) => vec![obj],
        _ => Vec::new(),
    }
}

/// The text of a message: its text parts (`parts`, the current
/// conventions), else `content` as a string or a list of parts.
fn text_of(m: &Json) -> Option<String> {
    let join = |items: &Vec<Json>, keys: &[&str]| {
        let texts: Vec<&str> = items
            .iter()
            .filter(|p| {
                p.get("type")
                    .and_then(Json::as_str)
                    .is_none_or(|t| t == "text")
            })
            .filter_map(|p| keys.iter().find_map(|k| p.get(*k).and_then(Json::as_str)))
            .collect();
        (!texts.is_empty()).then(|| texts.join(""))
    };
    if let Some(Json::Array(parts)) = m.get("parts") {
        return join(parts, &["content", "text"]);
    }
    match m.get("content") {
        Some(Json::String(s)) => Some(s.clone()),
        Some(Json::Array(parts)) => join(parts, &["text", "content"]),
        _ => None,
    }
}

/// A turn of `role` (the message's own role wins).
fn turn(call: &Call, message: Json, role: &str, source: &str) -> ConversationTurn {
    let role = message
        .get("role")
        .and_then(Json::as_str)
        .unwrap_or(role)
        .to_string();
    ConversationTurn {
        content: text_of(&message),
        finish_reason: message
            .get("finish_reason")
            .and_then(Json::as_str)
            .map(str::to_string),
        role,
        message,
        time: rfc3339(call.time),
        time_unix_nano: call.time.to_string(),
        trace_id: call.trace_id.clone(),
        span_id: call.span_id.clone(),
        model: call.model.clone(),
        source: source.to_string(),
    }
}

/// Where a span event or log event's messages go: (input?, role).
fn event_kind(name: &str) -> Option<(bool, &'static str)> {
    Some(match name {
        "gen_ai.system.message" => (true, "system"),
        "gen_ai.user.message" | "gen_ai.content.prompt" => (true, "user"),
        "gen_ai.assistant.message" => (true, "assistant"),
        "gen_ai.tool.message" => (true, "tool"),
        "gen_ai.choice" | "gen_ai.content.completion" => (false, "assistant"),
        _ => return None,
    })
}

/// The messages one event carries: the current `…operation.details`
/// event holds whole lists; the older per-message events one message (in
/// the body for log events, in attributes for span events).
fn event_messages(name: &str, attrs: &Json, body: Option<&Json>, call: &mut Call, source: &str) {
    if name == "gen_ai.client.inference.operation.details" {
        for (key, input) in [
            ("gen_ai.system_instructions", true),
            ("gen_ai.input.messages", true),
            ("gen_ai.output.messages", false),
        ] {
            if let Some(v) = attrs.get(key) {
                let mut list = messages(v.clone());
                if key == "gen_ai.system_instructions" {
                    list = vec![serde_json::json!({"role": "system", "parts": list})];
                }
                let target = if input {
                    &mut call.inputs
                } else {
                    &mut call.outputs
                };
                target.extend(list.into_iter().map(|m| (m, source.to_string())));
            }
        }
        return;
    }
    let Some((input, role)) = event_kind(name) else {
        return;
    };
    let mut message = match body {
        Some(Json::Object(o)) => Json::Object(o.clone()),
        Some(Json::String(s)) => serde_json::json!({ "content": s }),
        _ => {
            let legacy = attrs
                .get("gen_ai.prompt")
                .or_else(|| attrs.get("gen_ai.completion"))
                .or_else(|| attrs.get("content"));
            match legacy {
                Some(v) => {
                    let list = messages(v.clone());
                    let target = if input {
                        &mut call.inputs
                    } else {
                        &mut call.outputs
                    };
                    for mut m in list {
                        if m.get("role").is_none() {
                            m["role"] = Json::String(role.into());
                        }
                        target.push((m, source.to_string()));
                    }
                    return;
                }
                None => serde_json::json!({}),
            }
        }
    };
    // `gen_ai.choice` wraps the message.
    if let Some(inner) = message.get("message").cloned() {
        let finish = message.get("finish_reason").cloned();
        message = inner;
        if let (Some(f), Json::Object(o)) = (finish, &mut message) {
            o.insert("finish_reason".into(), f);
        }
    }
    if message.get("role").is_none() {
        if let Json::Object(o) = &mut message {
            o.insert("role".into(), Json::String(role.into()));
        }
    }
    let target = if input {
        &mut call.inputs
    } else {
        &mut call.outputs
    };
    target.push((message, source.to_string()));
}

/// The identity of a message for recognising repeated history.
fn same_message(a: &Json, b: &Json) -> bool {
    let role = |m: &Json| m.get("role").and_then(Json::as_str).map(str::to_string);
    role(a) == role(b)
        && match (text_of(a), text_of(b)) {
            (Some(x), Some(y)) => x == y,
            (None, None) => a.get("parts") == b.get("parts"),
            _ => false,
        }
}

/// The session's conversation; `None` for an unknown session.
pub fn conversation(c: &Conn, id: &str, now: u64) -> Result<Option<Conversation>, QueryError> {
    let Some(session) = summary(c, id, now)? else {
        return Ok(None);
    };
    let mut w = session_spans_where(&session);
    w.cond(
        "(gen_ai_provider IS NOT NULL OR gen_ai_operation IS NOT NULL)",
        [],
    );
    let rollups = GENAI_ROLLUP_OPERATIONS
        .iter()
        .map(|op| format!("'{op}'"))
        .collect::<Vec<_>>()
        .join(", ");
    w.cond(
        format!("coalesce(gen_ai_operation, '') NOT IN ({rollups})"),
        [],
    );
    let sql = format!(
        "SELECT trace_id, span_id, start_time_unix_nano,
                coalesce(gen_ai_response_model, gen_ai_request_model),
                json_extract(attributes, '$.\"gen_ai.system_instructions\"')::VARCHAR,
                json_extract(attributes, '$.\"gen_ai.input.messages\"')::VARCHAR,
                json_extract(attributes, '$.\"gen_ai.output.messages\"')::VARCHAR,
                events
         FROM span_rows_all span_rows{} ORDER BY start_time_unix_nano, trace_id, span_id LIMIT {MAX_TURNS}",
        w.sql()
    );
    let parse = |t: Option<String>| t.and_then(|t| serde_json::from_str::<Json>(&t).ok());
    let mut calls: Vec<Call> = Vec::new();
    {
        let mut stmt = c.prepare(&sql).ctx("preparing the conversation")?;
        let mut rows = stmt
            .query(duckdb::params_from_iter(w.params.iter()))
            .ctx("reading the conversation")?;
        while let Some(r) = rows.next().ctx("reading the conversation")? {
            let get = |i| {
                r.get::<_, Option<String>>(i)
                    .ctx("reading the conversation")
            };
            let mut call = Call {
                trace_id: ids::trace_id_at(r, 0).ctx("reading the conversation")?,
                span_id: Some(ids::span_id_at(r, 1).ctx("reading the conversation")?),
                time: r.get(2).ctx("reading the conversation")?,
                model: get(3)?,
                inputs: Vec::new(),
                outputs: Vec::new(),
            };
            if let Some(system) = parse(get(4)?) {
                let parts = messages(system);
                call.inputs.push((
                    serde_json::json!({"role": "system", "parts": parts}),
                    "span_attributes".into(),
                ));
            }
            for (i, input) in [(5, true), (6, false)] {
                if let Some(v) = parse(get(i)?) {
                    let list = messages(v);
                    let target = if input {
                        &mut call.inputs
                    } else {
                        &mut call.outputs
                    };
                    target.extend(list.into_iter().map(|m| (m, "span_attributes".to_string())));
                }
            }
            if call.inputs.is_empty() && call.outputs.is_empty() {
                if let Some(Json::Array(events)) = parse(get(7)?) {
                    for e in events {
                        let name = e.get("name").and_then(Json::as_str).unwrap_or_default();
                        let attrs = e.get("attributes").cloned().unwrap_or(Json::Null);
                        event_messages(name, &attrs, None, &mut call, "span_event");
                    }
                }
            }
            calls.push(call);
        }
    }

    // Log events (the Events API): attached to their span's call, or a
    // call of their own.
    let mut w = session_logs_where(&session);
    w.cond("event_name LIKE 'gen_ai.%'", []);
    let sql = format!(
        "SELECT time_unix_nano, trace_id, span_id, event_name, body, attributes
         FROM log_rows_all log_rows{} ORDER BY time_unix_nano LIMIT {MAX_TURNS}",
        w.sql()
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the conversation's events")?;
    let mut rows = stmt
        .query(duckdb::params_from_iter(w.params.iter()))
        .ctx("reading the conversation's events")?;
    while let Some(r) = rows.next().ctx("reading the conversation's events")? {
        let ctx = "reading the conversation's events";
        let time: u64 = r.get(0).ctx(ctx)?;
        let trace_id: Option<String> = r.get(1).ctx(ctx)?;
        let span_id: Option<String> = r.get(2).ctx(ctx)?;
        let name: String = r.get::<_, Option<String>>(3).ctx(ctx)?.unwrap_or_default();
        let body = r
            .get::<_, Option<String>>(4)
            .ctx(ctx)?
            .map(|b| serde_json::from_str::<Json>(&b).unwrap_or(Json::String(b)));
        let attrs = parse(r.get(5).ctx(ctx)?).unwrap_or(Json::Null);
        let at = calls.iter().position(|c| {
            span_id.is_some() && c.span_id == span_id && Some(&c.trace_id) == trace_id.as_ref()
        });
        let i = match at {
            Some(i) => i,
            None => {
                calls.push(Call {
                    time,
                    trace_id: trace_id.unwrap_or_default(),
                    span_id,
                    model: None,
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                });
                calls.len() - 1
            }
        };
        // A call whose span already recorded messages keeps those.
        let from_span = calls[i]
            .inputs
            .iter()
            .chain(&calls[i].outputs)
            .any(|(_, s)| s != "log");
        if !from_span {
            event_messages(&name, &attrs, body.as_ref(), &mut calls[i], "log");
        }
    }
    calls.sort_by_key(|c| c.time);

    // Each call resends the history so far: show only what is new.
    let mut turns: Vec<ConversationTurn> = Vec::new();
    for call in &calls {
        let mut skip = 0;
        while skip < call.inputs.len()
            && skip < turns.len()
            && same_message(&call.inputs[skip].0, &turns[skip].message)
        {
            skip += 1;
        }
        for (m, source) in call.inputs.iter().skip(skip) {
            turns.push(turn(call, m.clone(), "user", source));
        }
        for (m, source) in &call.outputs {
            turns.push(turn(call, m.clone(), "assistant", source));
        }
        if turns.len() >= MAX_TURNS {
            turns.truncate(MAX_TURNS);
            break;
        }
    }
    Ok(Some(Conversation {
        session_id: session.session_id,
        turns,
    }))
}
