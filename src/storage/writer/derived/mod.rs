//! Tables the writer keeps current from the rows it commits.
//!
//! Some tables are not telemetry but summaries of it (sessions, error
//! groups, the trace lookup). They are updated by the writer thread inside
//! the same transaction as the rows they summarise, so a failed commit rolls
//! both back and a reader never sees one without the other. Each such table
//! is a [`Derived`] implementation listed in [`derived_tables`]; the writer
//! calls it for every group commit and knows nothing else about it.
//!
//! Tables that fold many spans into few rows (sessions, GenAI and service
//! minutes) would spend most of a commit on their upserts if they ran every
//! commit: a DuckDB `INSERT … ON CONFLICT` costs milliseconds however few
//! rows it touches. So they keep their sums in memory ([`Held`]) and write
//! them when the writer says so ([`Committing::flush`]): at least every [`FLUSH_EVERY`],
//! once the queue has stayed empty for [`FLUSH_IDLE`], when a reader of
//! those tables asks (`writer::SummarySync`, so reads include every
//! acknowledged export) and at shutdown. With each flush the writer records
//! the last ingest sequence folded in (`summary_watermark`); after a crash
//! the spans past it are folded in again at start ([`replay`]), so the
//! sums never miss or double count a span.

use std::time::Duration;

use crate::model::{Batch, GenAiFields, LogRecord, Record, SpanRecord};
use crate::storage::duck::{Chunk, RawConn, RawPrepared};
use crate::storage::{ids, Conn, DuckError, StorageError};

pub mod deploys;
pub mod error_groups;
pub mod error_notes;
pub mod functions;
pub mod genai_rollup;
pub mod resources;
pub mod service_minutes;
pub mod sessions;
pub mod slo_minutes;
pub mod slo_transitions;
pub mod trace_index;
pub mod triage;

/// Tables holding sums in memory write them at least this often.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Once the queue is empty, pending sums are written after this long
/// without a new export.
pub const FLUSH_IDLE: Duration = Duration::from_millis(20);

/// One group commit as the derived tables see it: the batches in the open
/// transaction, with the spans the writer skipped as duplicates (retried
/// exports) left out.
pub struct Committing<'a> {
    pub(super) batches: Vec<&'a Batch>,
    /// Per batch, per span: stored (true) or skipped as a duplicate.
    pub(super) keep: &'a [Vec<bool>],
    /// Whether tables holding sums in memory write them in this commit.
    pub(super) flush: bool,
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

    /// Whether tables that keep sums in memory between commits must write
    /// them (all of them, this commit's included) in this transaction.
    pub fn flush(&self) -> bool {
        self.flush
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

    /// How many records `committed` will publish for the open transaction:
    /// their sequence numbers are recorded in it (see [`record_published`]).
    fn publishes(&self) -> usize {
        0
    }

    /// Whether sums of committed spans wait in memory for a flush.
    fn pending(&self) -> bool {
        false
    }

    /// At start: spans committed after the last flush (their sums were
    /// pending when qyl stopped), to fold in as pending again. In ingest
    /// order, in slices as large as a commit.
    fn replay(&mut self, spans: &[SpanRecord]) {
        let _ = spans;
    }
}

/// Records in `summary_watermark` that every span up to `last_seq` is
/// folded into the summary tables; run by the writer in each flushing
/// commit, and at shutdown with the last sequence number it handed out
/// (the start resumes numbering after it). `last_seq` is a number, so
/// formatting it into the SQL is safe.
pub fn record_flush(raw: &RawConn, last_seq: u64) -> Result<(), DuckError> {
    raw.execute(&format!(
        "UPDATE summary_watermark SET ingest_seq = {last_seq}"
    ))
}

/// Records, in the commit's transaction, the last sequence number the
/// commit hands out, records only the hub has included (error group
/// changes, function events): after a crash the next start continues past
/// them, so a live stream resuming from one of them stays in order.
pub fn record_published(raw: &RawConn, last_seq: u64) -> Result<(), DuckError> {
    raw.execute(&format!(
        "UPDATE hub_watermark SET seq = greatest(seq, {last_seq})"
    ))
}

/// Records, in the commit's transaction, the last journal entry it holds:
/// after a crash the next start replays the entries past it (see
/// `writer::journal`).
pub fn record_journaled(raw: &RawConn, through: u64) -> Result<(), DuckError> {
    raw.execute(&format!(
        "UPDATE journal_watermark SET entry = greatest(entry, {through})"
    ))
}

/// Spans read back per [`Derived::replay`] call.
const REPLAY_SLICE: usize = 8192;

/// Folds the spans committed after the last flush back into `tables`
/// (see the module comment). Returns how many spans were replayed.
pub fn replay(conn: &Conn, tables: &mut [Box<dyn Derived>]) -> Result<u64, StorageError> {
    let ctx = |e| StorageError::sql("replaying spans into the summary tables", e);
    let watermark: u64 = conn
        .query_row("SELECT ingest_seq FROM summary_watermark", [], |r| r.get(0))
        .map_err(ctx)?;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT trace_id, span_id, start_time_unix_nano, end_time_unix_nano, duration_ns,
                    status_code, service_name, session_id, gen_ai_provider, gen_ai_operation,
                    gen_ai_request_model, gen_ai_response_model, gen_ai_input_tokens,
                    gen_ai_output_tokens, gen_ai_cache_read_tokens, gen_ai_cache_write_tokens,
                    gen_ai_reasoning_tokens, gen_ai_cost_usd, gen_ai_cost_source,
                    gen_ai_time_to_first_chunk_ms,
                    coalesce(nullif(attributes->>'$.\"user.id\"', ''),
                             nullif(attributes->>'$.\"enduser.id\"', '')),
                    error_type, gen_ai_finish_reasons, {}, {}
             FROM {} WHERE ingest_seq > ? ORDER BY ingest_seq",
            resources::SPAN_VERSION_SQL,
            resources::SPAN_ENVIRONMENT_SQL,
            resources::SPANS_WITH_RESOURCES,
        ))
        .map_err(ctx)?;
    let mut rows = stmt.query([watermark]).map_err(ctx)?;
    let mut slice = Vec::with_capacity(REPLAY_SLICE);
    let mut replayed = 0u64;
    loop {
        let row = rows.next().map_err(ctx)?;
        if let Some(row) = row {
            slice.push(replayed_span(row).map_err(ctx)?);
        }
        if slice.len() == REPLAY_SLICE || (row.is_none() && !slice.is_empty()) {
            for table in tables.iter_mut() {
                table.replay(&slice);
            }
            replayed += slice.len() as u64;
            slice.clear();
        }
        if row.is_none() {
            break;
        }
    }
    Ok(replayed)
}

/// The fields of a stored span that the summary tables read.
fn replayed_span(row: &duckdb::Row<'_>) -> duckdb::Result<SpanRecord> {
    let status: String = row.get(5)?;
    let cost_source: Option<String> = row.get(18)?;
    Ok(SpanRecord {
        trace_id: ids::trace_id_at(row, 0)?.into(),
        span_id: ids::span_id_at(row, 1)?.into(),
        start_time_unix_nano: row.get(2)?,
        end_time_unix_nano: row.get(3)?,
        duration_ns: row.get(4)?,
        status_code: match status.as_str() {
            "ERROR" => "ERROR",
            "OK" => "OK",
            _ => "UNSET",
        },
        service_name: row.get(6)?,
        service_version: row.get(23)?,
        deployment_environment: row.get(24)?,
        session_id: row.get(7)?,
        genai: GenAiFields {
            provider: row.get(8)?,
            operation: row.get(9)?,
            request_model: row.get(10)?,
            response_model: row.get(11)?,
            input_tokens: row.get(12)?,
            output_tokens: row.get(13)?,
            cache_read_tokens: row.get(14)?,
            cache_write_tokens: row.get(15)?,
            reasoning_tokens: row.get(16)?,
            cost_usd: row.get(17)?,
            cost_source: match cost_source.as_deref() {
                Some("sent") => Some("sent"),
                Some("priced") => Some("priced"),
                Some("missing") => Some("missing"),
                _ => None,
            },
            time_to_first_chunk_ms: row.get(19)?,
            error_type: row.get(21)?,
            finish_reasons: row.get(22)?,
            ..GenAiFields::default()
        }
        .into(),
        user_id: row.get(20)?,
        ..SpanRecord::default()
    })
}

/// Sums that can wait in memory for a flush: the rollups' per-key sums.
pub trait HeldSums: Default + Clone {
    /// Adds `other`'s sums into these.
    fn absorb(&mut self, other: &Self);
    fn is_empty(&self) -> bool;
}

/// The sums a rollup keeps between flushes (see the module comment): those
/// of earlier commits, not written yet, and those of the open transaction,
/// which join them when it commits without a flush and are forgotten when
/// it rolls back.
#[derive(Default)]
pub struct Held<S> {
    pending: S,
    current: S,
    flushing: bool,
}

impl<S: HeldSums> Held<S> {
    /// Takes this commit's sums; when the commit flushes and there is
    /// anything to write, returns all the sums to write (earlier commits'
    /// and this one's).
    pub fn apply(&mut self, current: S, flush: bool) -> Option<S> {
        self.current = current;
        self.flushing = flush;
        if !flush || (self.pending.is_empty() && self.current.is_empty()) {
            return None;
        }
        let mut all = self.pending.clone();
        all.absorb(&self.current);
        Some(all)
    }

    pub fn committed(&mut self) {
        let current = std::mem::take(&mut self.current);
        if self.flushing {
            self.pending = S::default();
        } else {
            self.pending.absorb(&current);
        }
        self.flushing = false;
    }

    pub fn rolled_back(&mut self) {
        self.current = S::default();
        self.flushing = false;
    }

    /// Whether sums of committed spans wait for a flush.
    pub fn pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The pending sums, for [`Derived::replay`] to fold spans into.
    pub fn pending_mut(&mut self) -> &mut S {
        &mut self.pending
    }
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
        raw.append_chunks(self.stage, chunks)?;
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
        Box::new(resources::Resources::load(conn)?),
        Box::new(trace_index::TraceIndex),
        Box::new(functions::FunctionTables::default()),
        Box::new(sessions::SessionEntities::load(conn)?),
        Box::new(genai_rollup::GenAiMinutes::default()),
        Box::new(service_minutes::ServiceMinutes::default()),
        Box::new(error_groups::ErrorGroups::load(
            conn,
            settings.errors.clone(),
        )?),
        Box::new(triage::TriageReports::default()),
        Box::new(slo_transitions::SloTransitions::default()),
        Box::new(deploys::Deploys),
    ];
    if !settings.slos.is_empty() {
        tables.push(Box::new(slo_minutes::SloMinutes::load(
            conn,
            settings.slos.clone(),
        )?));
    }
    Ok(tables)
}

/// What the derived tables are configured with (from qyl.toml).
#[derive(Debug, Clone, Default)]
pub struct DerivedSettings {
    pub errors: crate::errors::groups::GroupSettings,
    /// `[[errors.slo]]`: the SLOs whose per-minute counts are kept.
    pub slos: Vec<crate::errors::slo::SloSpec>,
}

impl DerivedSettings {
    /// From `[errors]` in qyl.toml.
    pub fn from_config(config: &crate::config::ErrorsConfig) -> DerivedSettings {
        DerivedSettings {
            errors: crate::errors::groups::GroupSettings {
                escalation_factor: config.escalation_factor,
                escalation_min_events: config.escalation_min_events,
                duplicate_window_ns: config.duplicate_window_ms * 1_000_000,
                in_app: std::sync::Arc::new(crate::errors::InAppRules {
                    include: config.in_app_include.clone(),
                    exclude: config.in_app_exclude.clone(),
                }),
            },
            slos: config
                .slo
                .iter()
                .map(crate::errors::slo::SloSpec::from_config)
                .collect(),
        }
    }
}
