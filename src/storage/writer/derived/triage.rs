//! The table of automatic triage reports (`errors::triage`): written by the
//! writer in a commit like any other batch item, so a report is stored and
//! published on the hub together, in order with the group's events
//! (`queries::errors` reads them back for REST and MCP). Reports are few (one per group change), so they
//! are kept whole as JSON rather than column by column.

use std::sync::Arc;

use crate::model::errors::ErrorGroupEvent;
use crate::model::Record;
use crate::storage::duck::{sql_text, RawConn};
use crate::storage::DuckError;

use super::{Committing, Derived};

pub const MIGRATION_SQL: &str = r#"
CREATE TABLE error_triage (
    group_id          BIGINT   NOT NULL,
    created_unix_nano UBIGINT  NOT NULL,
    change            VARCHAR  NOT NULL,
    report            VARCHAR  NOT NULL,
    PRIMARY KEY (group_id, created_unix_nano)
);
"#;

/// The [`Derived`] writer of `error_triage`.
#[derive(Default)]
pub struct TriageReports {
    /// This commit's reports, published once it is durable.
    pending: Vec<Arc<ErrorGroupEvent>>,
}

impl Derived for TriageReports {
    fn name(&self) -> &'static str {
        "triage reports"
    }

    fn apply(&mut self, raw: &RawConn, rows: &Committing<'_>) -> Result<(), DuckError> {
        for event in rows.batches().iter().flat_map(|b| b.triage.iter()) {
            let Some(report) = &event.triage else {
                continue;
            };
            // The report is our own struct: serialising it cannot fail, but
            // a report that did would be dropped rather than fail the commit.
            let Ok(json) = serde_json::to_string(&**report) else {
                continue;
            };
            raw.execute(&format!(
                "INSERT OR REPLACE INTO error_triage VALUES ({}, {}, {}, {})",
                report.group_id,
                report.created_unix_nano,
                sql_text(&report.change),
                sql_text(&json)
            ))?;
            self.pending.push(event.clone());
        }
        Ok(())
    }

    fn publishes(&self) -> usize {
        self.pending.len()
    }

    fn committed(&mut self, publish: &mut Vec<Record>) {
        publish.extend(self.pending.drain(..).map(Record::Error));
    }

    fn rolled_back(&mut self) {
        self.pending.clear();
    }
}
