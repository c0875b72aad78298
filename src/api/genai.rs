//! `GET /api/v1/genai/stats`, `/genai/models`, `/genai/spans` and
//! `/genai/pricing`: what the application's LLM calls cost and how they
//! behave — requests, errors, tokens, cost and latency, per model and over
//! time — the calls themselves, and the price table in force.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::error::ErrorBody;
use super::openapi::{GenAiParams, PageParams};
use super::params::{Params, QueryPairs, Steps};
use super::{ApiError, AppState};
use crate::ingest::pricing::Price;
use crate::model::genai::{GenAiCall, GenAiModels, GenAiSpanQuery, UnpricedModel};
use crate::model::now_unix_nano;
use crate::model::query::{GenAiFilter, GenAiStats, Page};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/genai/stats", get(genai_stats))
        .route("/genai/models", get(genai_models))
        .route("/genai/spans", get(genai_spans))
        .route("/genai/pricing", get(genai_pricing))
}

/// GenAI calls in a window (the last 24 hours by default).
#[utoipa::path(
    get,
    path = "/api/v1/genai/stats",
    tag = "genai",
    params(GenAiParams),
    responses(
        (status = 200, description = "Totals, per model and over time", body = GenAiStats),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn genai_stats(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<GenAiStats>, ApiError> {
    let mut p = Params::new(pairs);
    let f = filter(&mut p)?;
    let step = p.duration_ms("step")?;
    p.reject_unknown()?;
    let step_ns = Steps::SECONDS.width(step, f.since, f.until)?;
    let f = GenAiFilter { step_ns, ..f };
    Ok(Json(state.store.genai_stats(f).await?))
}

/// The window (the last 24 hours by default) and the filters every GenAI
/// endpoint shares.
fn filter(p: &mut Params) -> Result<GenAiFilter, ApiError> {
    let until = p.time("until")?.unwrap_or_else(now_unix_nano);
    let since = p
        .time("since")?
        .unwrap_or(until.saturating_sub(86_400_000_000_000));
    if since >= until {
        return Err(ApiError::bad_request("since: must be before until"));
    }
    Ok(GenAiFilter {
        since,
        until,
        service: p.get("service"),
        provider: p.get("provider"),
        model: p.get("model"),
        session_id: p.get("session_id"),
        step_ns: 0,
    })
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct GenAiWindowParams {
    since: Option<String>,
    until: Option<String>,
    service: Option<String>,
    provider: Option<String>,
    /// The request or response model.
    model: Option<String>,
    session_id: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct GenAiSpanParams {
    /// `chat`, `embeddings`, `execute_tool`…; naming a roll-up
    /// (`invoke_agent`) lists those, which are otherwise left out.
    operation: Option<String>,
    /// `true`: failed calls only; `false`: successful ones only.
    error: Option<bool>,
    /// `sent`, `priced` or `missing`.
    cost_source: Option<String>,
}

/// Per model: requests, tokens, cost, latency percentiles, error classes
/// and finish reasons.
#[utoipa::path(
    get,
    path = "/api/v1/genai/models",
    tag = "genai",
    params(GenAiWindowParams),
    responses(
        (status = 200, description = "The models used in the window", body = GenAiModels),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn genai_models(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<GenAiModels>, ApiError> {
    let mut p = Params::new(pairs);
    let f = filter(&mut p)?;
    p.reject_unknown()?;
    Ok(Json(state.store.genai_models(f).await?))
}

/// GenAI calls, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/genai/spans",
    tag = "genai",
    params(GenAiWindowParams, GenAiSpanParams, PageParams),
    responses(
        (status = 200, description = "One page of GenAI calls", body = Page<GenAiCall>),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn genai_spans(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Page<GenAiCall>>, ApiError> {
    let mut p = Params::new(pairs);
    let cost_source = p.get("cost_source");
    if let Some(c) = &cost_source {
        if !["sent", "priced", "missing"].contains(&c.as_str()) {
            return Err(ApiError::bad_request(format!(
                "cost_source: {c:?} is not sent, priced or missing"
            )));
        }
    }
    let q = GenAiSpanQuery {
        filter: filter(&mut p)?,
        operation: p.get("operation"),
        error: p.parse::<bool>("error")?,
        cost_source,
        page: p.page(state.config.query.max_page)?,
    };
    p.reject_unknown()?;
    Ok(Json(state.store.genai_spans(q).await?))
}

/// The price table in force and the models seen without a price.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pricing {
    /// Every price period, by model then date (USD per million tokens).
    pub prices: Vec<Price>,
    /// Models of calls since `since` (default: 7 days ago) that had tokens
    /// but no price, most frequent first. Add them under `[genai]` in
    /// qyl.toml.
    pub unpriced_models: Vec<UnpricedModel>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PricingParams {
    since: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/genai/pricing",
    tag = "genai",
    params(PricingParams),
    responses(
        (status = 200, description = "The prices and the unpriced models", body = Pricing),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn genai_pricing(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Pricing>, ApiError> {
    let mut p = Params::new(pairs);
    let since = p
        .time("since")?
        .unwrap_or_else(|| now_unix_nano().saturating_sub(7 * 86_400_000_000_000));
    p.reject_unknown()?;
    Ok(Json(Pricing {
        prices: state.pricing.entries().to_vec(),
        unpriced_models: state.store.unpriced_models(since).await?,
    }))
}
