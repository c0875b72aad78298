//! GenAI call statistics: requests, errors, tokens, cost and latency over a
//! window, per model and per time bucket; per-model detail (error classes,
//! finish reasons); single calls; models lacking a price. All from the
//! `gen_ai_*` columns the writer fills at ingest (no JSON parsing at query
//! time).

use std::collections::HashMap;

use duckdb::types::Value;
use duckdb::Row;

use super::traces::paginate;
use super::Where;
use crate::model::genai::{
    Counted, GenAiCall, GenAiModelDetail, GenAiModels, GenAiSpanQuery, UnpricedModel,
};
use crate::model::query::{
    raw_json, rfc3339, Cursor, GenAiBucket, GenAiFilter, GenAiModelStats, GenAiStats, GenAiTotals,
    Page,
};
use crate::model::GENAI_ROLLUP_OPERATIONS;
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::Conn;

/// Aggregates of one group, in the column order `totals` reads.
const TOTALS: &str = "count(*), \
    count(*) FILTER (WHERE status_code = 'ERROR'), \
    coalesce(sum(gen_ai_input_tokens), 0)::BIGINT, \
    coalesce(sum(gen_ai_output_tokens), 0)::BIGINT, \
    coalesce(sum(gen_ai_cache_read_tokens), 0)::BIGINT, \
    coalesce(sum(gen_ai_cache_write_tokens), 0)::BIGINT, \
    coalesce(sum(gen_ai_reasoning_tokens), 0)::BIGINT, \
    coalesce(sum(gen_ai_cost_usd), 0)::DOUBLE, \
    count(*) FILTER (WHERE gen_ai_cost_usd IS NULL \
        AND (gen_ai_input_tokens IS NOT NULL OR gen_ai_output_tokens IS NOT NULL)), \
    approx_quantile(duration_ns, 0.5)::DOUBLE, \
    approx_quantile(duration_ns, 0.95)::DOUBLE, \
    approx_quantile(duration_ns, 0.99)::DOUBLE, \
    approx_quantile(gen_ai_time_to_first_chunk_ms, 0.5)::DOUBLE, \
    approx_quantile(gen_ai_time_to_first_chunk_ms, 0.95)::DOUBLE";

fn totals(r: &Row<'_>, at: usize) -> duckdb::Result<GenAiTotals> {
    let ms = |v: Option<f64>| v.map(|ns| ns / 1e6);
    Ok(GenAiTotals {
        requests: r.get(at)?,
        errors: r.get(at + 1)?,
        input_tokens: r.get(at + 2)?,
        output_tokens: r.get(at + 3)?,
        cache_read_tokens: r.get(at + 4)?,
        cache_write_tokens: r.get(at + 5)?,
        reasoning_tokens: r.get(at + 6)?,
        cost_usd: r.get(at + 7)?,
        requests_without_cost: r.get(at + 8)?,
        latency_p50_ms: ms(r.get(at + 9)?),
        latency_p95_ms: ms(r.get(at + 10)?),
        latency_p99_ms: ms(r.get(at + 11)?),
        time_to_first_chunk_p50_ms: r.get(at + 12)?,
        time_to_first_chunk_p95_ms: r.get(at + 13)?,
    })
}

fn rollups() -> String {
    GENAI_ROLLUP_OPERATIONS
        .iter()
        .map(|op| format!("'{op}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// GenAI spans in the filter's window; roll-ups left out unless `rollups`.
fn calls(f: &GenAiFilter, with_rollups: bool) -> Where {
    let mut w = Where::default();
    w.cond(
        "(gen_ai_provider IS NOT NULL OR gen_ai_operation IS NOT NULL)",
        [],
    );
    if !with_rollups {
        w.cond(
            format!("coalesce(gen_ai_operation, '') NOT IN ({})", rollups()),
            [],
        );
    }
    w.ge("start_time_unix_nano", Some(f.since));
    w.lt("start_time_unix_nano", Some(f.until));
    w.eq("service_name", f.service.as_ref());
    w.eq("gen_ai_provider", f.provider.as_ref());
    if let Some(s) = &f.session_id {
        // A session's spans are those of its traces: spans without a
        // session id of their own belong through their trace.
        w.cond(
            "trace_id IN (SELECT trace_id FROM session_traces WHERE session_id = ?)",
            [Value::Text(s.clone())],
        );
    }
    if let Some(m) = &f.model {
        w.cond(
            "(gen_ai_request_model = ? OR gen_ai_response_model = ?)",
            [Value::Text(m.clone()), Value::Text(m.clone())],
        );
    }
    w
}

/// Totals, per model and per bucket, in one pass over the window.
pub fn genai_stats(c: &Conn, f: &GenAiFilter) -> Result<GenAiStats, QueryError> {
    let w = calls(f, false);
    let step = f.step_ns.max(1);
    let sql = format!(
        "SELECT grouping(gen_ai_provider, model, bucket)::INTEGER AS g,
                gen_ai_provider, model, bucket, {TOTALS}
         FROM (SELECT *, coalesce(gen_ai_response_model, gen_ai_request_model) AS model,
                      (start_time_unix_nano // {step}) * {step} AS bucket
               FROM spans{})
         GROUP BY GROUPING SETS ((), (gen_ai_provider, model), (bucket))",
        w.sql()
    );
    let mut stmt = c.prepare(&sql).ctx("preparing GenAI stats")?;
    let mut total = None;
    let mut by_model = Vec::new();
    let mut over_time = Vec::new();
    let mut rows = stmt
        .query(duckdb::params_from_iter(w.params.iter()))
        .ctx("GenAI stats")?;
    while let Some(r) = rows.next().ctx("reading GenAI stats")? {
        let g: i32 = r.get(0).ctx("reading GenAI stats")?;
        let t = totals(r, 4).ctx("reading GenAI stats")?;
        match g {
            1 => by_model.push(GenAiModelStats {
                provider: r.get(1).ctx("reading GenAI stats")?,
                model: r.get(2).ctx("reading GenAI stats")?,
                totals: t,
            }),
            6 => {
                let b: u64 = r.get(3).ctx("reading GenAI stats")?;
                over_time.push(GenAiBucket {
                    time: rfc3339(b),
                    time_unix_nano: b.to_string(),
                    totals: t,
                });
            }
            _ => total = Some(t),
        }
    }
    by_model.sort_by(|a, b| {
        b.totals
            .requests
            .cmp(&a.totals.requests)
            .then_with(|| a.model.cmp(&b.model))
    });
    over_time.sort_by_key(|b| b.time_unix_nano.parse::<u64>().unwrap_or(0));
    Ok(GenAiStats {
        since: rfc3339(f.since),
        until: rfc3339(f.until),
        step_ms: step / 1_000_000,
        totals: total.unwrap_or_default(),
        by_model,
        over_time,
    })
}

/// Per model: totals, error classes and finish reasons.
pub fn genai_models(c: &Conn, f: &GenAiFilter) -> Result<GenAiModels, QueryError> {
    let w = calls(f, false);
    let params = || duckdb::params_from_iter(w.params.iter());
    let model = "coalesce(gen_ai_response_model, gen_ai_request_model)";
    let mut stmt = c
        .prepare(&format!(
            "SELECT gen_ai_provider, {model} AS model, {TOTALS}
             FROM spans{} GROUP BY ALL ORDER BY count(*) DESC, model",
            w.sql()
        ))
        .ctx("preparing GenAI models")?;
    let mut models: Vec<GenAiModelDetail> = stmt
        .query_map(params(), |r| {
            Ok(GenAiModelDetail {
                provider: r.get(0)?,
                model: r.get(1)?,
                totals: totals(r, 2)?,
                error_types: Vec::new(),
                finish_reasons: Vec::new(),
            })
        })
        .ctx("GenAI models")?
        .collect::<Result<_, _>>()
        .ctx("reading GenAI models")?;
    let index: HashMap<(Option<String>, Option<String>), usize> = models
        .iter()
        .enumerate()
        .map(|(i, m)| ((m.provider.clone(), m.model.clone()), i))
        .collect();

    // Error classes and finish reasons in one more pass: the finish
    // reasons are JSON arrays, counted per distinct array text and split
    // here (few distinct values).
    let mut stmt = c
        .prepare(&format!(
            "SELECT gen_ai_provider, {model}, 
                    CASE WHEN status_code = 'ERROR' THEN coalesce(error_type, '_OTHER') END,
                    gen_ai_finish_reasons, count(*)
             FROM spans{} GROUP BY ALL",
            w.sql()
        ))
        .ctx("preparing GenAI model outcomes")?;
    let mut rows = stmt.query(params()).ctx("GenAI model outcomes")?;
    let mut errors: Vec<HashMap<String, u64>> = vec![HashMap::new(); models.len()];
    let mut finishes: Vec<HashMap<String, u64>> = vec![HashMap::new(); models.len()];
    while let Some(r) = rows.next().ctx("reading GenAI model outcomes")? {
        let key: (Option<String>, Option<String>) = (
            r.get(0).ctx("reading GenAI model outcomes")?,
            r.get(1).ctx("reading GenAI model outcomes")?,
        );
        let Some(&i) = index.get(&key) else { continue };
        let error: Option<String> = r.get(2).ctx("reading GenAI model outcomes")?;
        let finish: Option<String> = r.get(3).ctx("reading GenAI model outcomes")?;
        let n: u64 = r.get(4).ctx("reading GenAI model outcomes")?;
        if let Some(e) = error {
            *errors[i].entry(e).or_default() += n;
        }
        if let Some(text) = finish {
            let reasons: Vec<String> = serde_json::from_str(&text).unwrap_or_default();
            for reason in reasons {
                *finishes[i].entry(reason).or_default() += n;
            }
        }
    }
    for (i, m) in models.iter_mut().enumerate() {
        m.error_types = counted(std::mem::take(&mut errors[i]));
        m.finish_reasons = counted(std::mem::take(&mut finishes[i]));
    }
    Ok(GenAiModels {
        since: rfc3339(f.since),
        until: rfc3339(f.until),
        models,
    })
}

fn counted(map: HashMap<String, u64>) -> Vec<Counted> {
    let mut v: Vec<Counted> = map
        .into_iter()
        .map(|(value, count)| Counted { value, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    v
}

const CALL_COLS: &str = "trace_id, span_id, parent_span_id, name, service_name, session_id, \
    start_time_unix_nano, duration_ns, status_code, error_type, gen_ai_provider, \
    gen_ai_operation, gen_ai_request_model, gen_ai_response_model, gen_ai_input_tokens, \
    gen_ai_output_tokens, gen_ai_cache_read_tokens, gen_ai_cache_write_tokens, \
    gen_ai_reasoning_tokens, gen_ai_finish_reasons, gen_ai_cost_usd, gen_ai_cost_source, \
    gen_ai_time_to_first_chunk_ms, gen_ai_tool_name, gen_ai_tool_call_id, \
    gen_ai_agent_name, gen_ai_conversation_id";

fn call_row(r: &Row<'_>) -> duckdb::Result<GenAiCall> {
    let start: u64 = r.get(6)?;
    let duration: u64 = r.get(7)?;
    Ok(GenAiCall {
        trace_id: r.get(0)?,
        span_id: r.get(1)?,
        parent_span_id: r.get(2)?,
        name: r.get(3)?,
        service_name: r.get(4)?,
        session_id: r.get(5)?,
        start_time: rfc3339(start),
        start_time_unix_nano: start.to_string(),
        duration_ms: duration as f64 / 1e6,
        status_code: r.get(8)?,
        error_type: r.get(9)?,
        provider: r.get(10)?,
        operation: r.get(11)?,
        request_model: r.get(12)?,
        response_model: r.get(13)?,
        input_tokens: r.get(14)?,
        output_tokens: r.get(15)?,
        cache_read_tokens: r.get(16)?,
        cache_write_tokens: r.get(17)?,
        reasoning_tokens: r.get(18)?,
        finish_reasons: r
            .get::<_, Option<String>>(19)?
            .and_then(|t| serde_json::from_str(raw_json(&t).get()).ok()),
        cost_usd: r.get(20)?,
        cost_source: r.get(21)?,
        time_to_first_chunk_ms: r.get(22)?,
        tool_name: r.get(23)?,
        tool_call_id: r.get(24)?,
        agent_name: r.get(25)?,
        conversation_id: r.get(26)?,
    })
}

/// GenAI calls matching the query, newest first. An `operation` filter
/// may name a roll-up (`invoke_agent`), which is otherwise left out.
pub fn genai_spans(c: &Conn, q: &GenAiSpanQuery) -> Result<Page<GenAiCall>, QueryError> {
    let mut w = calls(&q.filter, q.operation.is_some());
    w.eq("gen_ai_operation", q.operation.as_ref());
    w.eq("gen_ai_cost_source", q.cost_source.as_ref());
    match q.error {
        Some(true) => w.cond("status_code = 'ERROR'", []),
        Some(false) => w.cond("status_code <> 'ERROR'", []),
        None => {}
    }
    if let Some(cur) = &q.page.cursor {
        let (trace, span) = cur
            .key
            .split_once(':')
            .ok_or_else(|| QueryError::Invalid("cursor: not a cursor of /genai/spans".into()))?;
        w.cond(
            "(start_time_unix_nano < ? OR (start_time_unix_nano = ? AND (trace_id < ? OR (trace_id = ? AND span_id < ?))))",
            [
                Value::UBigInt(cur.time),
                Value::UBigInt(cur.time),
                Value::Text(trace.to_string()),
                Value::Text(trace.to_string()),
                Value::Text(span.to_string()),
            ],
        );
    }
    let sql = format!(
        "SELECT {CALL_COLS} FROM spans{} ORDER BY start_time_unix_nano DESC, trace_id DESC, span_id DESC LIMIT {}",
        w.sql(),
        q.page.limit + 1
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the GenAI call search")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(w.params.iter()), call_row)
        .ctx("searching GenAI calls")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading GenAI calls")?;
    Ok(paginate(rows, q.page.limit, |r| Cursor {
        time: r.start_time_unix_nano.parse().unwrap_or(0),
        key: format!("{}:{}", r.trace_id, r.span_id),
    }))
}

/// Models of calls since `since` that had tokens but no price.
pub fn unpriced_models(c: &Conn, since: u64) -> Result<Vec<UnpricedModel>, QueryError> {
    let mut stmt = c
        .prepare(
            "SELECT gen_ai_provider, coalesce(gen_ai_response_model, gen_ai_request_model) AS model,
                    count(*), max(start_time_unix_nano)
             FROM spans
             WHERE start_time_unix_nano >= ? AND gen_ai_cost_source = 'missing'
             GROUP BY ALL ORDER BY count(*) DESC, model",
        )
        .ctx("preparing the unpriced models")?;
    let rows = stmt
        .query_map([since], |r| {
            Ok(UnpricedModel {
                provider: r.get(0)?,
                model: r.get(1)?,
                requests: r.get(2)?,
                last_seen: rfc3339(r.get(3)?),
            })
        })
        .ctx("unpriced models")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the unpriced models")?;
    Ok(rows)
}
