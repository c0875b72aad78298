//! Tables the writer keeps current from the rows it commits.
//!
//! Some tables are not telemetry but summaries of it (sessions, error
//! groups, the trace lookup). They are updated by the writer thread inside
//! the same transaction as the rows they summarise, so a failed commit rolls
//! both back and a reader never sees one without the other. Each such table
//! is a [`Derived`] implementation listed in [`derived_tables`]; the writer
//! calls it for every group commit and knows nothing else about it.

use super::duck::{Chunk, RawConn, RawPrepared};
use super::{Conn, DuckError, StorageError};
use crate::model::{Batch, LogRecord, Record, SpanRecord};

/// One group commit as the derived tables see it: the batches in the open
/// transaction, with the spans the writer skipped as duplicates (retried
/// exports) left out.
pub struct Committing<'a> {
    pub(super) batches: Vec<&'a Batch>,
    /// Per batch, per span: stored (true) or skipped as a duplicate.
    pub(super) keep: &'a [Vec<bool>],
}

impl<'a> Committing<'a> {
    /// The batches in this commit, in queue order (duplicates not removed).
    pub fn batches(&self) -> &[&'a Batch] {
        &self.batches
    }

    /// Every span stored by this commit, in order; duplicates excluded.
    pub fn spans(&self) -> impl Iterator<Item = &'a SpanRecord> + '_ {
        self.batches
            .iter()
            .zip(self.keep)
            .flat_map(|(b, keep)| b.spans.iter().zip(keep).filter(|(_, k)| **k))
            .map(|(s, _)| s)
    }

    /// Whether span `span` of batch `batch` is stored by this commit (false:
    /// skipped as a retried duplicate).
    pub fn span_kept(&self, batch: usize, span: usize) -> bool {
        self.keep
            .get(batch)
            .and_then(|k| k.get(span))
            .copied()
            .unwrap_or(false)
    }

    /// Every log record stored by this commit, in order.
    pub fn logs(&self) -> impl Iterator<Item = &'a LogRecord> + '_ {
        self.batches.iter().flat_map(|b| b.logs.iter())
    }
}

/// A table maintained by the writer in the commit's transaction.
///
/// `apply` may stage in-memory state (caches of what is in the table); it
/// becomes current in `committed`, and `rolled_back` throws it away, because
/// the writer retries a failed group commit job by job.
pub trait Derived: Send {
    /// For logs and error messages.
    fn name(&self) -> &'static str;

    /// Writes this commit's share, inside the open transaction on `raw`.
    fn apply(&mut self, raw: &RawConn, rows: &Committing<'_>) -> Result<(), DuckError>;

    /// The transaction committed. Records pushed to `publish` go to the hub
    /// after the commit's own rows, with the next sequence numbers.
    fn committed(&mut self, publish: &mut Vec<Record>) {
        let _ = publish;
    }

    /// The transaction rolled back: forget what `apply` staged.
    fn rolled_back(&mut self) {}
}

/// A temporary staging table and the statement that folds it into a
/// summary table: a commit's rows are appended to the stage, one upsert
/// (planned once) moves them, and the stage is emptied. The stage is made
/// by the first commit that needs it; if that commit rolls back, the
/// CREATE goes with it and the next commit makes it again.
pub struct StagedUpsert {
    stage: &'static str,
    create_sql: String,
    upsert_sql: &'static str,
    created: bool,
    created_now: bool,
    upsert: Option<RawPrepared>,
}

impl StagedUpsert {
    /// `create_sql` makes `stage` (as a TEMP table); `upsert_sql` reads it.
    pub fn new(stage: &'static str, create_sql: String, upsert_sql: &'static str) -> Self {
        StagedUpsert {
            stage,
            create_sql,
            upsert_sql,
            created: false,
            created_now: false,
            upsert: None,
        }
    }

    /// Stages `chunks` and runs the upsert, in the open transaction.
    pub fn run(&mut self, raw: &RawConn, chunks: &[Chunk]) -> Result<(), DuckError> {
        if !self.created {
            raw.execute(&self.create_sql)?;
            self.created = true;
            self.created_now = true;
        }
        let mut app = raw.appender(self.stage)?;
        for c in chunks {
            app.append(c)?;
        }
        app.flush()?;
        drop(app);
        if self.upsert.is_none() {
            self.upsert = Some(raw.prepare(self.upsert_sql)?);
        }
        if let Some(upsert) = &self.upsert {
            upsert.execute()?;
        }
        raw.execute(&format!("DELETE FROM {}", self.stage))
    }

    pub fn committed(&mut self) {
        self.created_now = false;
    }

    pub fn rolled_back(&mut self) {
        if self.created_now {
            self.created = false;
            self.created_now = false;
            self.upsert = None;
        }
    }
}

/// Every derived table, built once when the writer starts (each may load
/// what it caches from `conn`).
pub fn derived_tables(
    conn: &Conn,
    settings: &DerivedSettings,
) -> Result<Vec<Box<dyn Derived>>, StorageError> {
    let mut tables: Vec<Box<dyn Derived>> = vec![
        Box::new(super::trace_index::TraceIndex),
        Box::new(super::functions::FunctionTables::default()),
        Box::new(super::sessions::SessionEntities::load(conn)?),
        Box::new(super::genai_rollup::GenAiMinutes::default()),
        Box::new(super::error_groups::ErrorGroups::load(
            conn,
            settings.errors.clone(),
        )?),
    ];
    if !settings.slos.is_empty() {
        tables.push(Box::new(super::slo_minutes::SloMinutes::load(
            conn,
            settings.slos.clone(),
        )?));
    }
    Ok(tables)
}

/// What the derived tables are configured with (from qyl.toml).
#[derive(Debug, Clone, Default)]
pub struct DerivedSettings {
    pub errors: super::error_groups::GroupSettings,
    /// `[[errors.slo]]`: the SLOs whose per-minute counts are kept.
    pub slos: Vec<crate::errors::slo::SloSpec>,
}

impl DerivedSettings {
    /// From `[errors]` in qyl.toml.
    pub fn from_config(config: &crate::config::ErrorsConfig) -> DerivedSettings {
        DerivedSettings {
            errors: super::error_groups::GroupSettings {
                escalation_factor: config.escalation_factor,
                escalation_min_events: config.escalation_min_events,
                duplicate_window_ns: config.duplicate_window_ms * 1_000_000,
            },
            slos: config
                .slo
                .iter()
                .map(crate::errors::slo::SloSpec::from_config)
                .collect(),
        }
    }
}
