//! Service level objectives and their burn rate: which requests an SLO
//! counts, whether each was good, and what the per-minute good/total counts
//! say about the error budget.
//!
//! Burn rate over a window = (bad / total) / (1 − objective): 1 means the
//! budget would last exactly the SLO window. Alerts follow the multiwindow,
//! multi-burn-rate scheme: a tier fires only when both its long and its
//! short window burn faster than its threshold, so a past spike that is
//! over (short window calm) does not page, and a brief blip (long window
//! calm) does not either.

use serde::Serialize;

use crate::config::SloConfig;
use crate::model::slo::SloLevel;
use crate::model::SpanRecord;

const MINUTE: u64 = 60_000_000_000;

/// An SLO as the writer applies it to spans.
#[derive(Debug, Clone, PartialEq)]
pub struct SloSpec {
    pub name: String,
    pub service: String,
    pub span_name: Option<String>,
    pub genai_operation: Option<String>,
    /// Slower requests are bad too (0: off).
    pub latency_threshold_ns: u64,
}

impl SloSpec {
    pub fn from_config(c: &SloConfig) -> SloSpec {
        SloSpec {
            name: c.name.clone(),
            service: c.service.clone(),
            span_name: c.span_name.clone().filter(|s| !s.is_empty()),
            genai_operation: c.genai_operation.clone().filter(|s| !s.is_empty()),
            latency_threshold_ns: c.latency_threshold_ms.saturating_mul(1_000_000),
        }
    }

    /// `None` when the span is not one of the SLO's requests; else whether
    /// it was good. Without a span name or operation, the requests are the
    /// service's entry spans: SERVER and CONSUMER spans and root spans.
    pub fn judge(&self, span: &SpanRecord) -> Option<bool> {
        if *span.service_name != *self.service {
            return None;
        }
        if let Some(name) = &self.span_name {
            if span.name != *name {
                return None;
            }
        }
        if let Some(op) = &self.genai_operation {
            if span.genai.operation.as_deref() != Some(op.as_str()) {
                return None;
            }
        }
        if self.span_name.is_none()
            && self.genai_operation.is_none()
            && !matches!(span.kind, "SERVER" | "CONSUMER")
            && span.parent_span_id.is_some()
        {
            return None;
        }
        let fast = self.latency_threshold_ns == 0 || span.duration_ns <= self.latency_threshold_ns;
        Some(span.status_code != "ERROR" && fast)
    }
}

/// The minute a span is counted in.
pub fn minute_of(unix_nano: u64) -> u64 {
    unix_nano - unix_nano % MINUTE
}

/// The windows burn rates are reported over, in minutes.
pub const WINDOWS: [(&str, u64); 7] = [
    ("5m", 5),
    ("30m", 30),
    ("1h", 60),
    ("2h", 120),
    ("6h", 360),
    ("1d", 1440),
    ("3d", 4320),
];

/// The alert tiers: (severity, burn threshold, long window, short window).
/// The severities are the levels an SLO moves between ([`SloLevel`]): the
/// fast-burning tiers page, the slow ones warn (a ticket, in the SRE
/// workbook's words).
pub const TIERS: [(&str, f64, &str, &str); 4] = [
    ("page", 14.4, "1h", "5m"),
    ("page", 6.0, "6h", "30m"),
    ("warning", 3.0, "1d", "2h"),
    ("warning", 1.0, "3d", "6h"),
];

/// Good and total requests in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub good: u64,
    pub total: u64,
}

impl Counts {
    pub fn bad(&self) -> u64 {
        self.total.saturating_sub(self.good)
    }
}

/// Burn rate for `counts` under `objective` percent; 0 without requests.
pub fn burn_rate(counts: Counts, objective: f64) -> f64 {
    if counts.total == 0 {
        return 0.0;
    }
    let allowed = 1.0 - objective / 100.0;
    let error_rate = counts.bad() as f64 / counts.total as f64;
    error_rate / allowed
}

/// The share of the window's error budget not yet spent (negative when
/// overspent); 1 without requests.
pub fn budget_remaining(counts: Counts, objective: f64) -> f64 {
    if counts.total == 0 {
        return 1.0;
    }
    let allowed = counts.total as f64 * (1.0 - objective / 100.0);
    1.0 - counts.bad() as f64 / allowed
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SloWindow {
    /// `5m`, `30m`, `1h`, `2h`, `6h`, `1d` or `3d`.
    pub window: &'static str,
    pub good: u64,
    pub total: u64,
    pub burn_rate: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SloAlert {
    /// `page` or `warning`.
    pub severity: &'static str,
    /// Both windows must burn faster than this.
    pub burn_rate: f64,
    pub long_window: &'static str,
    pub short_window: &'static str,
    pub firing: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SloBudget {
    /// The SLO window (`30d`).
    pub window: String,
    pub good: u64,
    pub total: u64,
    /// Bad requests the objective allows over the window, given its traffic.
    pub allowed_bad: f64,
    /// 1 = untouched, 0 = spent, below 0 = overspent.
    pub remaining: f64,
}

/// `GET /api/v1/slo`: one SLO's state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SloStatus {
    pub name: String,
    pub service: String,
    pub span_name: Option<String>,
    pub genai_operation: Option<String>,
    pub objective: f64,
    pub latency_threshold_ms: u64,
    pub windows: Vec<SloWindow>,
    pub alerts: Vec<SloAlert>,
    /// Tiers firing now, most urgent first (empty: none).
    pub firing: Vec<String>,
    /// `page` when a page tier fires, `warning` when only a slower one
    /// does, else `ok`; the SLO watcher stores and publishes each change.
    pub level: SloLevel,
    pub budget: SloBudget,
}

/// The most urgent level among the firing tiers.
fn level_of(alerts: &[SloAlert]) -> SloLevel {
    alerts
        .iter()
        .filter(|a| a.firing)
        .map(|a| match a.severity {
            "page" => SloLevel::Page,
            _ => SloLevel::Warning,
        })
        .max()
        .unwrap_or(SloLevel::Ok)
}

impl SloStatus {
    /// The tier that set the level (the first firing one: tiers are listed
    /// most urgent first) with its long and short windows' burn rates; for
    /// `ok`, the fastest tier's windows.
    pub fn deciding_tier(&self) -> (Option<String>, f64, f64) {
        let burn = |w: &str| {
            self.windows
                .iter()
                .find(|x| x.window == w)
                .map_or(0.0, |x| x.burn_rate)
        };
        match self.alerts.iter().find(|a| a.firing) {
            Some(a) => (
                self.firing.first().cloned(),
                burn(a.long_window),
                burn(a.short_window),
            ),
            None => {
                let (_, _, long, short) = TIERS[0];
                (None, burn(long), burn(short))
            }
        }
    }
}

/// Builds the status from counts per [`WINDOWS`] entry (same order) and
/// over the whole SLO window.
pub fn status(config: &SloConfig, windows: &[Counts], whole: Counts) -> SloStatus {
    let objective = config.objective;
    let windows: Vec<SloWindow> = WINDOWS
        .iter()
        .zip(windows)
        .map(|((name, _), c)| SloWindow {
            window: name,
            good: c.good,
            total: c.total,
            burn_rate: burn_rate(*c, objective),
        })
        .collect();
    let burn = |w: &str| {
        windows
            .iter()
            .find(|x| x.window == w)
            .map_or(0.0, |x| x.burn_rate)
    };
    let alerts: Vec<SloAlert> = TIERS
        .iter()
        .map(|(severity, threshold, long, short)| SloAlert {
            severity,
            burn_rate: *threshold,
            long_window: long,
            short_window: short,
            firing: burn(long) >= *threshold && burn(short) >= *threshold,
        })
        .collect();
    let firing = alerts
        .iter()
        .filter(|a| a.firing)
        .map(|a| {
            format!(
                "{} {}x ({} & {})",
                a.severity, a.burn_rate, a.long_window, a.short_window
            )
        })
        .collect();
    let level = level_of(&alerts);
    SloStatus {
        level,
        name: config.name.clone(),
        service: config.service.clone(),
        span_name: config.span_name.clone(),
        genai_operation: config.genai_operation.clone(),
        objective,
        latency_threshold_ms: config.latency_threshold_ms,
        windows,
        alerts,
        firing,
        budget: SloBudget {
            window: config.window.clone(),
            good: whole.good,
            total: whole.total,
            allowed_bad: whole.total as f64 * (1.0 - objective / 100.0),
            remaining: budget_remaining(whole, objective),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SloConfig {
        SloConfig {
            name: "checkout".into(),
            service: "shop".into(),
            span_name: None,
            genai_operation: None,
            objective: 99.9,
            window: "30d".into(),
            latency_threshold_ms: 0,
        }
    }

    fn c(good: u64, total: u64) -> Counts {
        Counts { good, total }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn burn_rate_by_hand() {
        // 99.9 %: 0.1 % may fail. 1 bad in 1000 burns at exactly 1.
        assert!(close(burn_rate(c(999, 1000), 99.9), 1.0));
        // 2 % failing: 20 times the allowed rate.
        assert!(close(burn_rate(c(98, 100), 99.9), 20.0));
        // 99 %: 1 % allowed; 3 bad in 200 = 1.5 %: burn 1.5.
        assert!(close(burn_rate(c(197, 200), 99.0), 1.5));
        assert_eq!(burn_rate(c(0, 0), 99.9), 0.0);
    }

    #[test]
    fn budget_by_hand() {
        // 1,000,000 requests at 99.9 % allow 1000 bad; 250 spent → 75 % left.
        assert!(close(budget_remaining(c(999_750, 1_000_000), 99.9), 0.75));
        // 1500 bad: overspent by half.
        assert!(close(budget_remaining(c(998_500, 1_000_000), 99.9), -0.5));
        assert_eq!(budget_remaining(c(0, 0), 99.9), 1.0);
    }

    #[test]
    fn a_tier_fires_only_when_both_windows_burn() {
        // 5m: 3 % bad (burn 30); 1h: 2 % (burn 20): page 14.4 fires; 6h
        // at 0.5 % (burn 5) keeps page 6 quiet even though 30m burns.
        let w = [
            c(97, 100),        // 5m   burn 30
            c(970, 1000),      // 30m  burn 30
            c(1960, 2000),     // 1h   burn 20
            c(3960, 4000),     // 2h   burn 10
            c(11940, 12000),   // 6h   burn 5
            c(47904, 48000),   // 1d   burn 2
            c(143904, 144000), // 3d  burn ~0.667
        ];
        let s = status(&config(), &w, c(999_000, 1_000_000));
        let firing: Vec<bool> = s.alerts.iter().map(|a| a.firing).collect();
        assert_eq!(firing, vec![true, false, false, false]);
        assert_eq!(s.firing, vec!["page 14.4x (1h & 5m)".to_string()]);
        assert_eq!(s.level, SloLevel::Page);
        let (tier, long, short) = s.deciding_tier();
        assert_eq!(tier.as_deref(), Some("page 14.4x (1h & 5m)"));
        assert!(close(long, 20.0) && close(short, 30.0), "{long} {short}");
        assert!(close(s.windows[6].burn_rate, 96.0 / 144.0));
        assert!(close(s.budget.remaining, 0.0));
        assert!(close(s.budget.allowed_bad, 1000.0));

        // The spike is over: 1h still burns 20 but 5m is clean → no page.
        let mut calm = w;
        calm[0] = c(100, 100);
        let s = status(&config(), &calm, c(0, 0));
        assert!(s.alerts.iter().all(|a| !a.firing));
        assert_eq!(s.level, SloLevel::Ok);

        // Only the slow tier: 2 % over the day and 2 h is a warning.
        let slow = [
            c(100, 100),
            c(100, 100),
            c(100, 100),
            c(9600, 10000),
            c(100, 100),
            c(96, 100),
            c(100, 100),
        ];
        let s = status(&config(), &slow, c(0, 0));
        assert_eq!(s.level, SloLevel::Warning);
        assert_eq!(s.firing, vec!["warning 3x (1d & 2h)".to_string()]);
    }

    #[test]
    fn which_spans_count_and_which_are_good() {
        let slo = SloSpec {
            latency_threshold_ns: 2_000_000_000,
            ..SloSpec::from_config(&config())
        };
        let span = |kind: &'static str, parent: bool, status: &'static str, ms: u64| SpanRecord {
            service_name: "shop".into(),
            kind,
            parent_span_id: parent.then(|| "p".into()),
            status_code: status,
            duration_ns: ms * 1_000_000,
            ..SpanRecord::default()
        };
        assert_eq!(slo.judge(&span("SERVER", true, "OK", 10)), Some(true));
        assert_eq!(slo.judge(&span("SERVER", true, "ERROR", 10)), Some(false));
        assert_eq!(slo.judge(&span("SERVER", true, "UNSET", 2500)), Some(false));
        assert_eq!(slo.judge(&span("INTERNAL", false, "OK", 1)), Some(true));
        assert_eq!(slo.judge(&span("CLIENT", true, "OK", 1)), None);
        let mut other = span("SERVER", false, "OK", 1);
        other.service_name = "else".into();
        assert_eq!(slo.judge(&other), None);
        let chat = SloSpec {
            genai_operation: Some("chat".into()),
            ..slo.clone()
        };
        let mut llm = span("CLIENT", true, "OK", 1);
        assert_eq!(chat.judge(&llm), None);
        llm.genai.operation = Some("chat".into());
        assert_eq!(chat.judge(&llm), Some(true));
        assert_eq!(minute_of(61_000_000_123), 60_000_000_000);
    }
}
