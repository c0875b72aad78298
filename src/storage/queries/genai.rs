//! GenAI call statistics: requests, errors, tokens, cost and latency over a
//! window, per model and per time bucket, from the `gen_ai_*` columns the
//! writer fills at ingest (no JSON parsing at query time).

use duckdb::types::Value;
use duckdb::Row;

use super::Where;
use crate::model::query::{
    rfc3339, GenAiBucket, GenAiFilter, GenAiModelStats, GenAiStats, GenAiTotals,
};
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::Conn;

/// Aggregates of one group, in the column order `totals` reads.
const TOTALS: &str = "count(*), \
    count(*) FILTER (WHERE status_code = 'ERROR'), \
    coalesce(sum(gen_ai_input_tokens), 0)::BIGINT, \
    coalesce(sum(gen_ai_output_tokens), 0)::BIGINT, \
    coalesce(sum(gen_ai_cache_read_tokens), 0)::BIGINT, \
    coalesce(sum(gen_ai_cost_usd), 0)::DOUBLE, \
    count(*) FILTER (WHERE gen_ai_cost_usd IS NULL), \
    approx_quantile(duration_ns, 0.5)::DOUBLE, \
    approx_quantile(duration_ns, 0.95)::DOUBLE, \
    approx_quantile(duration_ns, 0.99)::DOUBLE";

fn totals(r: &Row<'_>, at: usize) -> duckdb::Result<GenAiTotals> {
    let ms = |v: Option<f64>| v.map(|ns| ns / 1e6);
    Ok(GenAiTotals {
        requests: r.get(at)?,
        errors: r.get(at + 1)?,
        input_tokens: r.get(at + 2)?,
        output_tokens: r.get(at + 3)?,
        cache_read_tokens: r.get(at + 4)?,
        cost_usd: r.get(at + 5)?,
        requests_without_cost: r.get(at + 6)?,
        latency_p50_ms: ms(r.get(at + 7)?),
        latency_p95_ms: ms(r.get(at + 8)?),
        latency_p99_ms: ms(r.get(at + 9)?),
    })
}

fn calls(f: &GenAiFilter) -> Where {
    let mut w = Where::default();
    w.cond(
        "(gen_ai_provider IS NOT NULL OR gen_ai_operation IS NOT NULL)",
        [],
    );
    w.cond(
        "coalesce(gen_ai_operation, '') NOT IN ('invoke_agent', 'invoke_workflow', 'create_agent')",
        [],
    );
    w.ge("start_time_unix_nano", Some(f.since));
    w.lt("start_time_unix_nano", Some(f.until));
    w.eq("service_name", f.service.as_ref());
    w.eq("gen_ai_provider", f.provider.as_ref());
    w.eq("session_id", f.session_id.as_ref());
    if let Some(m) = &f.model {
        w.cond(
            "(gen_ai_request_model = ? OR gen_ai_response_model = ?)",
            [Value::Text(m.clone()), Value::Text(m.clone())],
        );
    }
    w
}

pub fn genai_stats(c: &Conn, f: &GenAiFilter) -> Result<GenAiStats, QueryError> {
    let w = calls(f);
    let step = f.step_ns.max(1);
    let params = || duckdb::params_from_iter(w.params.iter());

    let total = c
        .query_row(
            &format!("SELECT {TOTALS} FROM spans{}", w.sql()),
            params(),
            |r| totals(r, 0),
        )
        .ctx("totalling GenAI calls")?;

    let mut stmt = c
        .prepare(&format!(
            "SELECT gen_ai_provider, coalesce(gen_ai_response_model, gen_ai_request_model) AS model, {TOTALS} \
             FROM spans{} GROUP BY ALL ORDER BY count(*) DESC, model",
            w.sql()
        ))
        .ctx("preparing GenAI stats by model")?;
    let by_model = stmt
        .query_map(params(), |r| {
            Ok(GenAiModelStats {
                provider: r.get(0)?,
                model: r.get(1)?,
                totals: totals(r, 2)?,
            })
        })
        .ctx("GenAI stats by model")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading GenAI stats by model")?;

    let mut stmt = c
        .prepare(&format!(
            "SELECT (start_time_unix_nano // {step}) * {step} AS bucket, {TOTALS} \
             FROM spans{} GROUP BY bucket ORDER BY bucket",
            w.sql()
        ))
        .ctx("preparing GenAI stats over time")?;
    let over_time = stmt
        .query_map(params(), |r| {
            let t: u64 = r.get(0)?;
            Ok(GenAiBucket {
                time: rfc3339(t),
                time_unix_nano: t.to_string(),
                totals: totals(r, 1)?,
            })
        })
        .ctx("GenAI stats over time")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading GenAI stats over time")?;

    Ok(GenAiStats {
        since: rfc3339(f.since),
        until: rfc3339(f.until),
        step_ms: step / 1_000_000,
        totals: total,
        by_model,
        over_time,
    })
}
