//! `slo_transitions`: each time an SLO's alert level changed, as the SLO
//! watcher (`errors::slo_watch`) decided it. Written by the writer so a
//! change is stored and published on the hub together (the live stream's
//! `slo` events, `on = "slo"` functions), and read back for the alert
//! history and to resume from the last level after a restart.

use std::sync::Arc;

use crate::model::slo::SloTransition;
use crate::model::Record;
use crate::storage::duck::{sql_text, RawConn};
use crate::storage::DuckError;

use super::{Committing, Derived};

pub const MIGRATION_SQL: &str = r#"
-- SLO alert level changes (ok, warning, page), newest last.
CREATE TABLE slo_transitions (
    slo              VARCHAR NOT NULL,
    service_name     VARCHAR NOT NULL,
    at_unix_nano     UBIGINT NOT NULL,
    objective        DOUBLE  NOT NULL,
    from_level       VARCHAR NOT NULL,
    to_level         VARCHAR NOT NULL,
    tier             VARCHAR,
    burn_rate_long   DOUBLE  NOT NULL,
    burn_rate_short  DOUBLE  NOT NULL,
    budget_remaining DOUBLE  NOT NULL,
    PRIMARY KEY (slo, at_unix_nano)
);
"#;

/// The [`Derived`] writer of `slo_transitions`.
#[derive(Default)]
pub struct SloTransitions {
    /// This commit's changes, published once it is durable.
    pending: Vec<Arc<SloTransition>>,
}

/// A finite number as SQL (burn rates are, but a NaN must not fail the
/// commit).
fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "0".into()
    }
}

impl Derived for SloTransitions {
    fn name(&self) -> &'static str {
        "slo transitions"
    }

    fn apply(&mut self, raw: &RawConn, rows: &Committing<'_>) -> Result<(), DuckError> {
        for t in rows.batches().iter().flat_map(|b| b.slo_transitions.iter()) {
            raw.execute(&format!(
                "INSERT OR REPLACE INTO slo_transitions VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
                sql_text(&t.slo),
                sql_text(&t.service_name),
                t.at_unix_nano,
                num(t.objective),
                sql_text(t.from.as_str()),
                sql_text(t.to.as_str()),
                t.tier.as_deref().map_or("NULL".into(), sql_text),
                num(t.burn_rate_long),
                num(t.burn_rate_short),
                num(t.budget_remaining),
            ))?;
            self.pending.push(t.clone());
        }
        Ok(())
    }

    fn publishes(&self) -> usize {
        self.pending.len()
    }

    fn committed(&mut self, publish: &mut Vec<Record>) {
        publish.extend(self.pending.drain(..).map(Record::Slo));
    }

    fn rolled_back(&mut self) {
        self.pending.clear();
    }
}
