//! An SLO's alert level changing: what the SLO watcher (`errors::slo_watch`)
//! decides each minute from the burn rates, stores through the writer and
//! publishes on the hub, where the live stream sends it as an `slo` event
//! and `on = "slo"` functions react to it.

use serde::Serialize;

/// How loudly an SLO's error budget burns: `page` when a page tier fires
/// (both its windows burn faster than 14.4× or 6×), `warning` when only a
/// slower tier does (3× or 1×), else `ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SloLevel {
    Ok,
    Warning,
    Page,
}

impl SloLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            SloLevel::Ok => "ok",
            SloLevel::Warning => "warning",
            SloLevel::Page => "page",
        }
    }

    pub fn parse(text: &str) -> Option<SloLevel> {
        match text.trim().to_ascii_lowercase().as_str() {
            "ok" => Some(SloLevel::Ok),
            "warning" => Some(SloLevel::Warning),
            "page" => Some(SloLevel::Page),
            _ => None,
        }
    }
}

/// One change of level, as stored in `slo_transitions` and sent on the hub.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SloTransition {
    /// The `[[errors.slo]]` name.
    pub slo: String,
    pub service_name: String,
    /// Percent of good requests promised (`99.9`).
    pub objective: f64,
    /// The level before (`ok` for an SLO never seen firing).
    pub from: SloLevel,
    pub to: SloLevel,
    /// The most urgent tier firing (`page 14.4x (1h & 5m)`); none for `ok`.
    pub tier: Option<String>,
    /// Burn rates of that tier's long and short windows (for `ok`: the 1 h
    /// and 5 m windows).
    pub burn_rate_long: f64,
    pub burn_rate_short: f64,
    /// Share of the SLO window's budget left (1 untouched, below 0 overspent).
    pub budget_remaining: f64,
    pub at_unix_nano: u64,
}

/// `GET /api/v1/slo/transitions`: which changes to list.
#[derive(Debug, Clone, Default)]
pub struct SloTransitionQuery {
    pub slo: Option<String>,
    pub service: Option<String>,
    /// Only changes to this level.
    pub level: Option<SloLevel>,
    pub since: Option<u64>,
    pub until: Option<u64>,
    pub limit: usize,
}

/// One stored change with its time in RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SloTransitionRow {
    pub time: String,
    #[serde(flatten)]
    pub transition: SloTransition,
}
