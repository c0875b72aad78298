//! GenAI call statistics: requests, errors, tokens, cost and latency over a
//! window, per model and per time bucket; per-model detail (error classes,
//! finish reasons); single calls; models lacking a price. All from the
//! `gen_ai_*` columns the writer fills at ingest (no JSON parsing at query
//! time).

use std::collections::HashMap;

use duckdb::types::Value;
use duckdb::Row;

use super::histogram::{bin_sql, Histogram};
use super::traces::paginate;
use super::Where;
use crate::model::genai::{
    Counted, GenAiCall, GenAiModelDetail, GenAiModels, GenAiSpanQuery, UnpricedModel,
};
use crate::model::query::{
    raw_json, rfc3339, Cursor, GenAiBucket, GenAiFilter, GenAiModelBucket, GenAiModelStats,
    GenAiStats, GenAiTotals, Page,
};
use crate::model::GENAI_ROLLUP_OPERATIONS;
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::{ids, Conn};

use crate::storage::writer::derived::genai_rollup::{LABEL_ERROR, LABEL_FINISH, MINUTE_NS};

/// The sums of one fine group (bucket × provider × model × latency bin), in
/// the column order `Acc::add_row` reads.
const SUMS: &str = "count(*)::UBIGINT, \
    count(*) FILTER (WHERE status_code = 'ERROR')::UBIGINT, \
    coalesce(sum(gen_ai_input_tokens), 0)::BIGINT, \
    coalesce(sum(gen_ai_output_tokens), 0)::BIGINT, \
    coalesce(sum(gen_ai_cache_read_tokens), 0)::BIGINT, \
    coalesce(sum(gen_ai_cache_write_tokens), 0)::BIGINT, \
    coalesce(sum(gen_ai_reasoning_tokens), 0)::BIGINT, \
    coalesce(sum(gen_ai_cost_usd), 0)::DOUBLE, \
    count(*) FILTER (WHERE gen_ai_cost_usd IS NULL \
        AND (gen_ai_input_tokens IS NOT NULL OR gen_ai_output_tokens IS NOT NULL))::UBIGINT, \
    min(v)::DOUBLE, max(v)::DOUBLE";

/// Totals being rolled up from fine groups.
#[derive(Default, Clone)]
struct Acc {
    t: GenAiTotals,
    latency: Histogram,
    first_chunk: Histogram,
}

impl Acc {
    /// Adds one fine row: `bin`, then [`SUMS`] from `at`.
    fn add_row(&mut self, r: &Row<'_>, bin_at: usize, at: usize) -> duckdb::Result<()> {
        let t = &mut self.t;
        let n: u64 = r.get(at)?;
        t.requests += n;
        t.errors += r.get::<_, u64>(at + 1)?;
        t.input_tokens += r.get::<_, i64>(at + 2)?;
        t.output_tokens += r.get::<_, i64>(at + 3)?;
        t.cache_read_tokens += r.get::<_, i64>(at + 4)?;
        t.cache_write_tokens += r.get::<_, i64>(at + 5)?;
        t.reasoning_tokens += r.get::<_, i64>(at + 6)?;
        t.cost_usd += r.get::<_, f64>(at + 7)?;
        t.requests_without_cost += r.get::<_, u64>(at + 8)?;
        let bin: i32 = r.get(bin_at)?;
        self.latency.add(bin, n, r.get(at + 9)?, r.get(at + 10)?);
        Ok(())
    }

    /// Adds a time-to-first-chunk bin: `bin`, count, min, max from `at`.
    fn add_first_chunk(&mut self, r: &Row<'_>, at: usize) -> duckdb::Result<()> {
        self.first_chunk
            .add(r.get(at)?, r.get(at + 1)?, r.get(at + 2)?, r.get(at + 3)?);
        Ok(())
    }

    fn merge(&mut self, o: &Acc) {
        let (t, u) = (&mut self.t, &o.t);
        t.requests += u.requests;
        t.errors += u.errors;
        t.input_tokens += u.input_tokens;
        t.output_tokens += u.output_tokens;
        t.cache_read_tokens += u.cache_read_tokens;
        t.cache_write_tokens += u.cache_write_tokens;
        t.reasoning_tokens += u.reasoning_tokens;
        t.cost_usd += u.cost_usd;
        t.requests_without_cost += u.requests_without_cost;
        self.latency.merge(&o.latency);
        self.first_chunk.merge(&o.first_chunk);
    }

    fn totals(mut self) -> GenAiTotals {
        let ms = |v: Option<f64>| v.map(|ns| ns / 1e6);
        self.t.latency_p50_ms = ms(self.latency.quantile(0.5));
        self.t.latency_p95_ms = ms(self.latency.quantile(0.95));
        self.t.latency_p99_ms = ms(self.latency.quantile(0.99));
        self.t.time_to_first_chunk_p50_ms = self.first_chunk.quantile(0.5);
        self.t.time_to_first_chunk_p95_ms = self.first_chunk.quantile(0.95);
        self.t
    }
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
            "trace_id IN (SELECT trace_id FROM session_trace_rows WHERE session_id = ?)",
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

type Key = (Option<String>, Option<String>, u64);

/// Fine groups of the window — (provider, model, bucket) × latency bin —
/// rolled up into `Acc`s per (provider, model, bucket), with the time to
/// first chunk in its own smaller pass. Two hash aggregations and a few
/// thousand rows, instead of quantile sketches per group.
fn fine_groups(c: &Conn, f: &GenAiFilter) -> Result<HashMap<Key, Acc>, QueryError> {
    if f.session_id.is_none() && f.step_ns.max(1) % MINUTE_NS == 0 {
        return minute_groups(c, f);
    }
    let w = calls(f, false);
    let step = f.step_ns.max(1);
    let select = |value: &str, sums: &str, extra: &str| {
        format!(
            "SELECT gen_ai_provider, coalesce(gen_ai_response_model, gen_ai_request_model),
                    (start_time_unix_nano // {step}) * {step}, {} AS bin, {sums}
             FROM (SELECT *, {value} AS v FROM span_rows_all span_rows{}{extra}) GROUP BY ALL",
            bin_sql("v"),
            w.sql()
        )
    };
    let params = || duckdb::params_from_iter(w.params.iter());
    let mut groups: HashMap<Key, Acc> = HashMap::new();
    let ctx = "reading GenAI stats";
    let mut stmt = c
        .prepare(&select("duration_ns", SUMS, ""))
        .ctx("preparing GenAI stats")?;
    let mut rows = stmt.query(params()).ctx("GenAI stats")?;
    while let Some(r) = rows.next().ctx(ctx)? {
        let key: Key = (r.get(0).ctx(ctx)?, r.get(1).ctx(ctx)?, r.get(2).ctx(ctx)?);
        groups.entry(key).or_default().add_row(r, 3, 4).ctx(ctx)?;
    }
    let extra = if w.is_empty() {
        " WHERE gen_ai_time_to_first_chunk_ms IS NOT NULL"
    } else {
        " AND gen_ai_time_to_first_chunk_ms IS NOT NULL"
    };
    let mut stmt = c
        .prepare(&select(
            "gen_ai_time_to_first_chunk_ms",
            "count(*)::UBIGINT, min(v)::DOUBLE, max(v)::DOUBLE",
            extra,
        ))
        .ctx("preparing GenAI time to first chunk")?;
    let mut rows = stmt.query(params()).ctx("GenAI time to first chunk")?;
    while let Some(r) = rows.next().ctx(ctx)? {
        let key: Key = (r.get(0).ctx(ctx)?, r.get(1).ctx(ctx)?, r.get(2).ctx(ctx)?);
        groups
            .entry(key)
            .or_default()
            .add_first_chunk(r, 3)
            .ctx(ctx)?;
    }
    Ok(groups)
}

/// The filter over the per-minute rollups (`genai_minutes`,
/// `genai_minute_labels`): the window's edges are taken at whole minutes.
fn minute_where(f: &GenAiFilter) -> Where {
    let mut w = Where::default();
    w.ge("minute_unix_nano", Some(f.since / MINUTE_NS * MINUTE_NS));
    w.lt("minute_unix_nano", Some(f.until));
    w.eq("service_name", f.service.as_ref());
    w.eq("provider", f.provider.as_ref());
    if let Some(m) = &f.model {
        w.cond(
            "(request_model = ? OR response_model = ?)",
            [Value::Text(m.clone()), Value::Text(m.clone())],
        );
    }
    w
}

/// [`fine_groups`] from the per-minute rollup (`genai_minutes`).
fn minute_groups(c: &Conn, f: &GenAiFilter) -> Result<HashMap<Key, Acc>, QueryError> {
    let step = f.step_ns.max(1);
    let w = minute_where(f);
    let select = |kind: u8, sums: &str| {
        format!(
            "SELECT provider, model, (minute_unix_nano // {step}) * {step}, bin, {sums}
             FROM genai_minutes{} AND kind = {kind} GROUP BY ALL",
            w.sql()
        )
    };
    let params = || duckdb::params_from_iter(w.params.iter());
    let ctx = "reading GenAI stats";
    let mut groups: HashMap<Key, Acc> = HashMap::new();
    let sums = "sum(requests)::UBIGINT, sum(errors)::UBIGINT, sum(input_tokens)::BIGINT, \
        sum(output_tokens)::BIGINT, sum(cache_read_tokens)::BIGINT, \
        sum(cache_write_tokens)::BIGINT, sum(reasoning_tokens)::BIGINT, \
        sum(cost_usd)::DOUBLE, sum(without_cost)::UBIGINT, min(min_value), max(max_value)";
    // The rollup stores a missing provider or model as ''.
    let key = |r: &Row<'_>| -> duckdb::Result<Key> {
        let text = |s: String| (!s.is_empty()).then_some(s);
        Ok((text(r.get(0)?), text(r.get(1)?), r.get(2)?))
    };
    let mut stmt = c.prepare(&select(0, sums)).ctx("preparing GenAI stats")?;
    let mut rows = stmt.query(params()).ctx("GenAI stats")?;
    while let Some(r) = rows.next().ctx(ctx)? {
        let key = key(r).ctx(ctx)?;
        groups.entry(key).or_default().add_row(r, 3, 4).ctx(ctx)?;
    }
    let mut stmt = c
        .prepare(&select(
            1,
            "sum(requests)::UBIGINT, min(min_value), max(max_value)",
        ))
        .ctx("preparing GenAI time to first chunk")?;
    let mut rows = stmt.query(params()).ctx("GenAI time to first chunk")?;
    while let Some(r) = rows.next().ctx(ctx)? {
        let key: Key = (r.get(0).ctx(ctx)?, r.get(1).ctx(ctx)?, r.get(2).ctx(ctx)?);
        groups
            .entry(key)
            .or_default()
            .add_first_chunk(r, 3)
            .ctx(ctx)?;
    }
    Ok(groups)
}

/// Totals, per model and per bucket.
pub fn genai_stats(c: &Conn, f: &GenAiFilter) -> Result<GenAiStats, QueryError> {
    let step = f.step_ns.max(1);
    let groups = fine_groups(c, f)?;
    let mut total = Acc::default();
    let mut models: HashMap<(Option<String>, Option<String>), Acc> = HashMap::new();
    let mut buckets: HashMap<u64, Acc> = HashMap::new();
    let mut model_buckets: Vec<(u64, GenAiModelBucket)> = Vec::with_capacity(groups.len());
    for ((provider, model, bucket), acc) in groups {
        total.merge(&acc);
        buckets.entry(bucket).or_default().merge(&acc);
        models
            .entry((provider.clone(), model.clone()))
            .or_default()
            .merge(&acc);
        model_buckets.push((
            bucket,
            GenAiModelBucket {
                provider,
                model,
                time: rfc3339(bucket),
                time_unix_nano: bucket.to_string(),
                totals: acc.totals(),
            },
        ));
    }
    model_buckets
        .sort_by(|(ta, a), (tb, b)| (ta, &a.model, &a.provider).cmp(&(tb, &b.model, &b.provider)));
    let mut by_model: Vec<GenAiModelStats> = models
        .into_iter()
        .map(|((provider, model), acc)| GenAiModelStats {
            provider,
            model,
            totals: acc.totals(),
        })
        .collect();
    by_model.sort_by(|a, b| {
        b.totals
            .requests
            .cmp(&a.totals.requests)
            .then_with(|| a.model.cmp(&b.model))
    });
    let mut over_time: Vec<(u64, Acc)> = buckets.into_iter().collect();
    over_time.sort_by_key(|(b, _)| *b);
    Ok(GenAiStats {
        since: rfc3339(f.since),
        until: rfc3339(f.until),
        step_ms: step / 1_000_000,
        totals: total.totals(),
        by_model,
        over_time: over_time
            .into_iter()
            .map(|(b, acc)| GenAiBucket {
                time: rfc3339(b),
                time_unix_nano: b.to_string(),
                totals: acc.totals(),
            })
            .collect(),
        by_model_over_time: model_buckets.into_iter().map(|(_, b)| b).collect(),
    })
}

/// Per model: totals, error classes and finish reasons.
pub fn genai_models(c: &Conn, f: &GenAiFilter) -> Result<GenAiModels, QueryError> {
    // One bucket for the whole window: per-model totals.
    let whole = GenAiFilter {
        step_ns: (f.until.saturating_sub(f.since) / MINUTE_NS + 1) * MINUTE_NS,
        ..f.clone()
    };
    let mut per_model: HashMap<(Option<String>, Option<String>), Acc> = HashMap::new();
    for ((provider, model, _), acc) in fine_groups(c, &whole)? {
        per_model.entry((provider, model)).or_default().merge(&acc);
    }
    let mut models: Vec<GenAiModelDetail> = per_model
        .into_iter()
        .map(|((provider, model), acc)| GenAiModelDetail {
            provider,
            model,
            totals: acc.totals(),
            error_types: Vec::new(),
            finish_reasons: Vec::new(),
        })
        .collect();
    models.sort_by(|a, b| {
        b.totals
            .requests
            .cmp(&a.totals.requests)
            .then_with(|| a.model.cmp(&b.model))
    });
    let index: HashMap<(Option<String>, Option<String>), usize> = models
        .iter()
        .enumerate()
        .map(|(i, m)| ((m.provider.clone(), m.model.clone()), i))
        .collect();
    let mut errors: Vec<HashMap<String, u64>> = vec![HashMap::new(); models.len()];
    let mut finishes: Vec<HashMap<String, u64>> = vec![HashMap::new(); models.len()];
    let mut count = |key: (Option<String>, Option<String>),
                     error: Option<String>,
                     reasons: Vec<String>,
                     n: u64| {
        let Some(&i) = index.get(&key) else { return };
        if let Some(e) = error {
            *errors[i].entry(e).or_default() += n;
        }
        for reason in reasons {
            *finishes[i].entry(reason).or_default() += n;
        }
    };
    let ctx = "reading GenAI model outcomes";
    if f.session_id.is_none() {
        // From the per-minute label counts, as the totals came from the
        // per-minute rollup.
        let w = minute_where(f);
        let mut stmt = c
            .prepare(&format!(
                "SELECT provider, model, kind, label, sum(requests)::UBIGINT
                 FROM genai_minute_labels{} GROUP BY ALL",
                w.sql()
            ))
            .ctx("preparing GenAI model outcomes")?;
        let mut rows = stmt
            .query(duckdb::params_from_iter(w.params.iter()))
            .ctx(ctx)?;
        let text = |s: String| (!s.is_empty()).then_some(s);
        while let Some(r) = rows.next().ctx(ctx)? {
            let key = (text(r.get(0).ctx(ctx)?), text(r.get(1).ctx(ctx)?));
            let kind: i32 = r.get(2).ctx(ctx)?;
            let label: String = r.get(3).ctx(ctx)?;
            let n: u64 = r.get(4).ctx(ctx)?;
            match kind {
                LABEL_ERROR => count(key, Some(label), Vec::new(), n),
                LABEL_FINISH => count(key, None, vec![label], n),
                _ => {}
            }
        }
    } else {
        // A session's calls: from its spans. Error classes and finish
        // reasons in one pass; the finish reasons are JSON arrays, counted
        // per distinct array text and split here (few distinct values).
        let w = calls(f, false);
        let model = "coalesce(gen_ai_response_model, gen_ai_request_model)";
        let mut stmt = c
            .prepare(&format!(
                "SELECT gen_ai_provider, {model},
                        CASE WHEN status_code = 'ERROR' THEN coalesce(error_type, '_OTHER') END,
                        gen_ai_finish_reasons, count(*)
                 FROM span_rows_all span_rows{} GROUP BY ALL",
                w.sql()
            ))
            .ctx("preparing GenAI model outcomes")?;
        let mut rows = stmt
            .query(duckdb::params_from_iter(w.params.iter()))
            .ctx(ctx)?;
        while let Some(r) = rows.next().ctx(ctx)? {
            let key = (r.get(0).ctx(ctx)?, r.get(1).ctx(ctx)?);
            let finish: Option<String> = r.get(3).ctx(ctx)?;
            let reasons = finish
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default();
            count(key, r.get(2).ctx(ctx)?, reasons, r.get(4).ctx(ctx)?);
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
        trace_id: ids::trace_id_at(r, 0)?,
        span_id: ids::span_id_at(r, 1)?,
        parent_span_id: ids::parent_id_at(r, 2)?,
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
        let (trace, span) = super::traces::span_cursor_key(&cur.key, "/genai/spans")?;
        w.cond(
            "(start_time_unix_nano < ? OR (start_time_unix_nano = ? AND (trace_id < ? OR (trace_id = ? AND span_id < ?))))",
            [
                Value::UBigInt(cur.time),
                Value::UBigInt(cur.time),
                trace.clone(),
                trace,
                span,
            ],
        );
    }
    let sql = format!(
        "SELECT {CALL_COLS} FROM span_rows_all span_rows{} ORDER BY start_time_unix_nano DESC, trace_id DESC, span_id DESC LIMIT {}",
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
             FROM span_rows_all span_rows
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
