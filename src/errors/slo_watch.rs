//! The SLO watcher: SLO burn alerts that fire by themselves.
//!
//! `GET /api/v1/slo` computes burn rates when someone asks; an alert must
//! not wait for that. Every `[errors] slo_check_every` this job sums each
//! SLO's minutes (a handful of rows per SLO, see `slo_minutes`), derives
//! its level (page, warning, ok) from the alert tiers, and when the level
//! differs from the last one stored it sends the change through the
//! writer like any other record: stored in `slo_transitions`, then
//! published on the hub, where the live stream sends it as an `slo` event
//! and `on = "slo"` functions (Slack, PagerDuty…) react to it. The last
//! levels are read back at start, so a restart does not fire again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::slo::{status, SloStatus};
use crate::config::SloConfig;
use crate::model::now_unix_nano;
use crate::model::slo::{SloLevel, SloTransition};
use crate::model::Batch;
use crate::storage::writer::WriterHandle;
use crate::storage::Store;

/// The change `status` makes against the last level (`None`: unchanged).
pub fn change(last: SloLevel, s: &SloStatus, at_unix_nano: u64) -> Option<SloTransition> {
    if s.level == last {
        return None;
    }
    let (tier, burn_rate_long, burn_rate_short) = s.deciding_tier();
    Some(SloTransition {
        slo: s.name.clone(),
        service_name: s.service.clone(),
        objective: s.objective,
        from: last,
        to: s.level,
        tier,
        burn_rate_long,
        burn_rate_short,
        budget_remaining: s.budget.remaining,
        at_unix_nano,
    })
}

/// Runs until `stop` turns true.
pub async fn run(
    slos: Vec<SloConfig>,
    every: Duration,
    store: Arc<Store>,
    writer: WriterHandle,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // Until the stored levels are read, nothing is compared: firing again
    // for a level already announced would page someone twice.
    let mut levels: Option<HashMap<String, SloLevel>> = None;
    loop {
        if levels.is_none() {
            match store.slo_levels().await {
                Ok(l) => levels = Some(l),
                Err(e) => tracing::warn!(error = %e, "reading the last SLO levels; retrying"),
            }
        }
        if let Some(levels) = levels.as_mut() {
            check(&slos, &store, &writer, levels).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
    }
}

/// One look at every SLO; the changes go through the writer and become
/// the new last levels once stored (a failed write is retried next look).
async fn check(
    slos: &[SloConfig],
    store: &Store,
    writer: &WriterHandle,
    levels: &mut HashMap<String, SloLevel>,
) {
    let now = now_unix_nano();
    let mut changes = Vec::new();
    for slo in slos {
        let (windows, whole) = match store
            .slo_counts(slo.name.clone(), now, slo.window_ns())
            .await
        {
            Ok(counts) => counts,
            Err(e) => {
                tracing::debug!(slo = %slo.name, error = %e, "SLO check skipped this round");
                continue;
            }
        };
        let last = levels.get(&slo.name).copied().unwrap_or(SloLevel::Ok);
        if let Some(t) = change(last, &status(slo, &windows, whole), now) {
            changes.push(Arc::new(t));
        }
    }
    if changes.is_empty() {
        return;
    }
    let batch = Batch {
        slo_transitions: changes.clone(),
        ..Batch::default()
    };
    match writer.write(batch).await {
        Ok(_) => {
            for t in changes {
                tracing::info!(slo = %t.slo, from = t.from.as_str(), to = t.to.as_str(), "SLO level changed");
                levels.insert(t.slo.clone(), t.to);
            }
        }
        Err(e) => tracing::warn!(error = %e, "storing SLO level changes; retrying next check"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::slo::Counts;

    fn config() -> SloConfig {
        SloConfig {
            name: "chat".into(),
            service: "bot".into(),
            span_name: None,
            genai_operation: None,
            objective: 99.0,
            window: "30d".into(),
            latency_threshold_ms: 0,
        }
    }

    fn all(good: u64, total: u64) -> Vec<Counts> {
        vec![Counts { good, total }; 7]
    }

    #[test]
    fn a_change_is_reported_once_with_the_tier_that_decided_it() {
        let burning = status(
            &config(),
            &all(50, 100),
            Counts {
                good: 50,
                total: 100,
            },
        );
        let t = change(SloLevel::Ok, &burning, 7).expect("ok → page");
        assert_eq!((t.from, t.to), (SloLevel::Ok, SloLevel::Page));
        assert_eq!(t.tier.as_deref(), Some("page 14.4x (1h & 5m)"));
        assert!((t.burn_rate_long - 50.0).abs() < 1e-9);
        assert_eq!(t.at_unix_nano, 7);
        assert_eq!(change(SloLevel::Page, &burning, 8), None);
        // 2 % bad at 99 %: burn 2, only the slowest tier fires.
        let slow = status(
            &config(),
            &all(98, 100),
            Counts {
                good: 98,
                total: 100,
            },
        );
        let t = change(SloLevel::Page, &slow, 9).expect("page → warning");
        assert_eq!(t.to, SloLevel::Warning);
        assert_eq!(t.tier.as_deref(), Some("warning 1x (3d & 6h)"));
        let calm = status(
            &config(),
            &all(100, 100),
            Counts {
                good: 100,
                total: 100,
            },
        );
        let t = change(SloLevel::Warning, &calm, 10).expect("warning → ok");
        assert_eq!((t.to, t.tier), (SloLevel::Ok, None));
    }
}
