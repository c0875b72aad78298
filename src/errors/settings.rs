//! `[errors]` in qyl.toml turned into what each part of the engine needs:
//! capture rules for ingest, tuning for the writer's error tables.

use super::capture::Capture;
use super::inapp::InAppRules;
use crate::config::ErrorsConfig;
use crate::storage::derived::DerivedSettings;
use crate::storage::error_groups::GroupSettings;

pub fn capture(config: &ErrorsConfig) -> Capture {
    Capture::new(InAppRules {
        include: config.in_app_include.clone(),
        exclude: config.in_app_exclude.clone(),
    })
}

pub fn derived_settings(config: &ErrorsConfig) -> DerivedSettings {
    DerivedSettings {
        errors: GroupSettings {
            escalation_factor: config.escalation_factor,
            escalation_min_events: config.escalation_min_events,
            duplicate_window_ns: config.duplicate_window_ms * 1_000_000,
        },
        slos: config
            .slo
            .iter()
            .map(super::slo::SloSpec::from_config)
            .collect(),
    }
}
