//! The one read interface: every surface that shows stored data (REST, MCP,
//! the Lua runtime, the dashboard through REST) calls these methods, so a
//! query and its meaning exist once. Each method runs on the read pool
//! within its deadline; the SQL lives in `queries/`.

use std::sync::Arc;
use std::time::Duration;

use super::archive::{NamedWindows, Signal};
use super::duck::Database;
use super::queries::{errors, genai, logs, metrics, releases, sessions, sql, stats, traces};
use super::reader::{QueryError, ReadPool, SqlLane, SqlLaneStatus};
use super::writer::{SummarySync, Visibility};
use crate::model::genai::{
    Conversation, GenAiCall, GenAiModels, GenAiSpanQuery, SessionDetail, SessionQuery,
    SessionSummary, UnpricedModel,
};
use crate::model::query::{
    Buckets, GenAiFilter, GenAiStats, LogHistogram, LogQuery, LogRow, MetricData, MetricInfo,
    MetricQuery, Page, PageRequest, ServiceSummary, SpanQuery, SpanRow, SqlResult, StorageStats,
    TiersRead, TraceQuery, TraceSummary, TraceTree,
};

pub struct Store {
    pool: ReadPool,
    /// Ad-hoc SQL's bounded share of `pool`.
    sql_lane: SqlLane,
    db: Arc<Database>,
    path: String,
    /// Brings the summary tables up to date before they are read.
    summaries: Option<SummarySync>,
    /// `[errors] deploy_window`, in nanoseconds.
    deploy_window_ns: u64,
    /// The archived windows reads may touch (`[archive]`; None when off).
    archived: Option<Arc<NamedWindows>>,
}

impl Store {
    /// A store reading `db` (stored at `path`, or `:memory:`) through
    /// `pool_size` connections, each query limited to `timeout`.
    /// Ad-hoc SQL may hold half of them ([`Store::with_sql_slots`]).
    pub fn new(db: Arc<Database>, path: &str, pool_size: usize, timeout: Duration) -> Store {
        Store {
            pool: ReadPool::new(db.clone(), pool_size, timeout),
            sql_lane: SqlLane::new(0, pool_size),
            db,
            path: path.to_string(),
            summaries: None,
            deploy_window_ns: 3_600_000_000_000,
            archived: None,
        }
    }

    /// Answers over spans, logs and metrics say how many of these windows
    /// their time range covers ([`TiersRead`]).
    pub fn with_archived_windows(mut self, archived: Option<Arc<NamedWindows>>) -> Store {
        self.archived = archived;
        self
    }

    fn tiers(&self, signal: Signal, since: Option<u64>, until: Option<u64>) -> TiersRead {
        let files = self
            .archived
            .as_ref()
            .map_or(0, |a| a.overlapping(signal, since, until));
        TiersRead::new(since, until, files)
    }

    /// How long after a deploy groups and rates are laid at its door
    /// (`[errors] deploy_window`; default 1 h).
    pub fn with_deploy_window(mut self, window_ns: u64) -> Store {
        self.deploy_window_ns = window_ns;
        self
    }

    /// Reads of the summary tables (sessions, GenAI minutes, and SQL that
    /// may touch them) first wait until they hold every acknowledged export.
    pub fn with_summary_sync(mut self, sync: SummarySync) -> Store {
        self.summaries = Some(sync);
        self
    }

    /// See [`ReadPool::set_archive_refresh`].
    pub fn with_archive_refresh(
        mut self,
        refresh: Option<super::retention::ArchiveRefresh>,
    ) -> Store {
        self.pool.set_archive_refresh(refresh);
        self
    }

    /// Every read first waits (briefly) until the database holds every
    /// export answered before it: with the writer's journal, exports are
    /// answered a little before their commit.
    pub fn with_visibility(mut self, visibility: Option<Visibility>) -> Store {
        self.pool.set_visibility(visibility);
        self
    }

    /// How many read connections ad-hoc SQL may hold at once
    /// (`query.sql_slots`; 0: half); the rest stay free for every other read.
    pub fn with_sql_slots(mut self, slots: usize) -> Store {
        self.sql_lane = SqlLane::new(slots, self.pool.size());
        self
    }

    /// Ad-hoc SQL running and waiting, for the console.
    pub fn sql_lane(&self) -> SqlLaneStatus {
        self.sql_lane.status()
    }

    async fn settle(&self) {
        // The commits first: the sums to flush are the commits' sums.
        self.pool.settle(self.pool.timeout()).await;
        if let Some(sync) = &self.summaries {
            sync.settle().await;
        }
    }

    /// The database file, or `:memory:`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Ok when a read connection answers a trivial query within `wait`.
    pub async fn ping_within(&self, wait: Duration) -> Result<(), QueryError> {
        self.pool
            .run_within(wait, |c| {
                c.execute_batch("SELECT 1")
                    .map_err(|e| QueryError::sql("pinging the database", e))
            })
            .await
    }

    /// Spans matching the filter, newest first.
    pub async fn query_spans(&self, q: SpanQuery) -> Result<Page<SpanRow>, QueryError> {
        let read = self.tiers(Signal::Spans, q.filter.since, q.filter.until);
        let mut page = self.pool.run(move |c| traces::query_spans(c, &q)).await?;
        page.read = Some(read);
        Ok(page)
    }

    /// One row per trace, newest first.
    pub async fn list_traces(&self, q: TraceQuery) -> Result<Page<TraceSummary>, QueryError> {
        let read = self.tiers(Signal::Spans, q.filter.since, q.filter.until);
        let mut page = self.pool.run(move |c| traces::list_traces(c, &q)).await?;
        page.read = Some(read);
        Ok(page)
    }

    /// The trace as a tree with its logs; `None` when nothing has the id.
    pub async fn get_trace(&self, trace_id: &str) -> Result<Option<TraceTree>, QueryError> {
        let id = trace_id.to_string();
        let mut tree = self.pool.run(move |c| traces::get_trace(c, &id)).await?;
        if let Some(tree) = &mut tree {
            // The lookup (in the database file) gives the trace's range;
            // only archived windows inside it are read.
            let start = tree.summary.start_time_unix_nano.parse::<u64>().ok();
            let end = start.map(|s| s + (tree.summary.duration_ms * 1e6) as u64 + 1);
            tree.read = Some(self.tiers(Signal::Spans, start, end));
        }
        Ok(tree)
    }

    pub async fn query_logs(&self, q: LogQuery) -> Result<Page<LogRow>, QueryError> {
        let read = self.tiers(Signal::Logs, q.since, q.until);
        let mut page = self.pool.run(move |c| logs::query_logs(c, &q)).await?;
        page.read = Some(read);
        Ok(page)
    }

    /// The logs `q` finds (its page aside) in `[since, until)` (Unix
    /// nanoseconds), counted per severity level and per bucket.
    pub async fn log_histogram(
        &self,
        q: LogQuery,
        since: u64,
        until: u64,
        buckets: Buckets,
    ) -> Result<LogHistogram, QueryError> {
        self.pool
            .run(move |c| logs::log_histogram(c, &q, since, until, buckets))
            .await
    }

    pub async fn list_metrics(&self) -> Result<Vec<MetricInfo>, QueryError> {
        self.pool.run(metrics::list_metrics).await
    }

    /// A metric's series bucketed by step; `None` for an unknown name.
    pub async fn metric_series(&self, q: MetricQuery) -> Result<Option<MetricData>, QueryError> {
        let read = self.tiers(Signal::Metrics, q.since, q.until);
        let mut data = self
            .pool
            .run(move |c| metrics::metric_series(c, &q))
            .await?;
        if let Some(data) = &mut data {
            data.read = Some(read);
        }
        Ok(data)
    }

    /// Services with spans in `[since, until)` (Unix nanoseconds), with
    /// their activity per `step` (nanoseconds) when one is given.
    pub async fn services(
        &self,
        since: u64,
        until: u64,
        step: Option<u64>,
    ) -> Result<Vec<ServiceSummary>, QueryError> {
        self.settle().await;
        self.pool
            .run(move |c| stats::services(c, since, until, step))
            .await
    }

    /// GenAI calls in a window: totals, per model, over time.
    pub async fn genai_stats(&self, f: GenAiFilter) -> Result<GenAiStats, QueryError> {
        self.settle().await;
        self.pool.run(move |c| genai::genai_stats(c, &f)).await
    }

    /// GenAI calls per model: totals, error classes, finish reasons.
    pub async fn genai_models(&self, f: GenAiFilter) -> Result<GenAiModels, QueryError> {
        self.settle().await;
        self.pool.run(move |c| genai::genai_models(c, &f)).await
    }

    /// GenAI calls matching the query, newest first.
    pub async fn genai_spans(&self, q: GenAiSpanQuery) -> Result<Page<GenAiCall>, QueryError> {
        self.settle().await;
        let read = self.tiers(Signal::Spans, Some(q.filter.since), Some(q.filter.until));
        let mut page = self.pool.run(move |c| genai::genai_spans(c, &q)).await?;
        page.read = Some(read);
        Ok(page)
    }

    /// Models seen since `since` in calls that had no price.
    pub async fn unpriced_models(&self, since: u64) -> Result<Vec<UnpricedModel>, QueryError> {
        self.settle().await;
        self.pool
            .run(move |c| genai::unpriced_models(c, since))
            .await
    }

    /// One page of sessions (`now` decides which are active).
    pub async fn list_sessions(
        &self,
        q: SessionQuery,
        now: u64,
    ) -> Result<Page<SessionSummary>, QueryError> {
        self.settle().await;
        self.pool
            .run(move |c| sessions::list_sessions(c, &q, now))
            .await
    }

    /// A session with its traces; `None` for an unknown id.
    pub async fn get_session(
        &self,
        id: String,
        now: u64,
    ) -> Result<Option<SessionDetail>, QueryError> {
        self.settle().await;
        self.pool
            .run(move |c| sessions::get_session(c, &id, now))
            .await
    }

    /// A session's spans, oldest first; `None` for an unknown id.
    pub async fn session_spans(
        &self,
        id: String,
        page: PageRequest,
        now: u64,
    ) -> Result<Option<Page<SpanRow>>, QueryError> {
        self.settle().await;
        self.pool
            .run(move |c| sessions::session_spans(c, &id, &page, now))
            .await
    }

    /// A session's conversation; `None` for an unknown id.
    pub async fn conversation(
        &self,
        id: String,
        now: u64,
    ) -> Result<Option<Conversation>, QueryError> {
        self.settle().await;
        self.pool
            .run(move |c| sessions::conversation(c, &id, now))
            .await
    }

    pub async fn storage_stats(&self) -> Result<StorageStats, QueryError> {
        let path = self.path.clone();
        self.pool.run(move |c| stats::storage_stats(c, &path)).await
    }

    /// Error groups matching the filter, in the asked order.
    pub async fn list_errors(
        &self,
        q: crate::model::errors::ErrorQuery,
    ) -> Result<Page<crate::model::errors::ErrorGroupRow>, QueryError> {
        self.pool.run(move |c| errors::list_errors(c, &q)).await
    }

    /// One error group with its fingerprint explanation and the deploys it
    /// started with or was resolved by.
    pub async fn get_error(
        &self,
        id: i64,
        now: u64,
    ) -> Result<Option<crate::model::errors::ErrorGroupDetail>, QueryError> {
        let window = self.deploy_window_ns;
        self.pool
            .run(move |c| {
                let Some(mut detail) = errors::get_error(c, id, now)? else {
                    return Ok(None);
                };
                (detail.deploy, detail.resolved_by_deploy) =
                    releases::group_deploys(c, id, window)?;
                Ok(Some(detail))
            })
            .await
    }

    /// A group's notes, oldest first.
    pub async fn error_notes(
        &self,
        id: i64,
    ) -> Result<Vec<crate::model::errors::ErrorNote>, QueryError> {
        self.pool.run(move |c| errors::notes(c, id)).await
    }

    /// The newest automatic triage report on a group.
    pub async fn triage_report(
        &self,
        id: i64,
    ) -> Result<Option<crate::errors::triage::TriageReport>, QueryError> {
        self.pool.run(move |c| errors::triage_report(c, id)).await
    }

    /// A group's status (`None`: no such group), to check before changing it.
    pub async fn error_status(&self, id: i64) -> Result<Option<String>, QueryError> {
        self.pool.run(move |c| errors::group_state(c, id)).await
    }

    /// A group's events, newest first.
    pub async fn error_events(
        &self,
        group: i64,
        page: crate::model::query::PageRequest,
    ) -> Result<Page<crate::model::errors::ErrorEventRow>, QueryError> {
        self.pool
            .run(move |c| errors::list_events(c, group, &page))
            .await
    }

    /// One event with its frames and breadcrumbs.
    pub async fn error_event(
        &self,
        group: i64,
        event_id: String,
    ) -> Result<Option<crate::model::errors::ErrorEventDetail>, QueryError> {
        self.pool
            .run(move |c| errors::get_event(c, group, &event_id))
            .await
    }

    /// Events of each group of `ids` per bucket, before `until`.
    pub async fn error_histogram(
        &self,
        ids: Vec<i64>,
        buckets: Buckets,
        until: u64,
    ) -> Result<crate::model::errors::ErrorHistogram, QueryError> {
        self.pool
            .run(move |c| errors::group_histogram(c, &ids, buckets, until))
            .await
    }

    /// Releases, newest first, with new/regressed groups and error rates.
    pub async fn releases(
        &self,
        service: Option<String>,
        environment: Option<String>,
        limit: usize,
    ) -> Result<Vec<crate::model::errors::ReleaseRow>, QueryError> {
        Ok(self
            .deploys(service, environment, limit)
            .await?
            .into_iter()
            .map(|d| d.release)
            .collect())
    }

    /// Releases, newest first, with their deploys' windows, commits and URLs.
    pub async fn deploys(
        &self,
        service: Option<String>,
        environment: Option<String>,
        limit: usize,
    ) -> Result<Vec<crate::model::deploys::DeployRow>, QueryError> {
        let window = self.deploy_window_ns;
        self.pool
            .run(move |c| {
                releases::list_releases(c, service.as_ref(), environment.as_ref(), limit, window)
            })
            .await
    }

    /// One release with what changed around its deploy: groups, error rate,
    /// latency, GenAI error classes, and the burn of `slos` of its service.
    pub async fn release_detail(
        &self,
        version: String,
        service: Option<String>,
        environment: Option<String>,
        slos: Vec<crate::model::deploys::SloObjective>,
        now: u64,
    ) -> Result<releases::ReleaseLookup, QueryError> {
        let window = self.deploy_window_ns;
        self.pool
            .run(move |c| {
                releases::release_detail(
                    c,
                    &version,
                    service.as_ref(),
                    environment.as_ref(),
                    window,
                    &slos,
                    now,
                )
            })
            .await
    }

    /// Good/total counts of an SLO per burn window and over `whole_ns`.
    pub async fn slo_counts(
        &self,
        slo: String,
        now: u64,
        whole_ns: u64,
    ) -> Result<(Vec<crate::errors::slo::Counts>, crate::errors::slo::Counts), QueryError> {
        self.pool
            .run(move |c| super::queries::slo::slo_counts(c, &slo, now, whole_ns))
            .await
    }

    /// Each SLO's level after its newest stored change.
    pub async fn slo_levels(
        &self,
    ) -> Result<std::collections::HashMap<String, crate::model::slo::SloLevel>, QueryError> {
        self.pool.run(super::queries::slo::last_levels).await
    }

    /// Stored SLO level changes, newest first.
    pub async fn slo_transitions(
        &self,
        q: crate::model::slo::SloTransitionQuery,
    ) -> Result<Vec<crate::model::slo::SloTransitionRow>, QueryError> {
        self.pool
            .run(move |c| super::queries::slo::transitions(c, &q))
            .await
    }

    /// A function's stored invocations, newest first.
    pub async fn function_invocations(
        &self,
        q: crate::model::function::InvocationQuery,
    ) -> Result<Page<crate::model::function::InvocationRow>, QueryError> {
        self.pool
            .run(move |c| super::queries::functions::invocations(c, &q))
            .await
    }

    /// Every function's persisted `runtime.state` (function → key → JSON).
    pub async fn function_state(
        &self,
    ) -> Result<
        std::collections::HashMap<String, std::collections::HashMap<String, String>>,
        QueryError,
    > {
        self.pool.run(super::queries::functions::load_state).await
    }

    /// Read-only SQL with values for its `?` placeholders (`runtime.store.sql`).
    pub async fn sql_with_params(
        &self,
        text: String,
        params: Vec<crate::model::function::SqlParam>,
        row_limit: usize,
    ) -> Result<SqlResult, QueryError> {
        self.settle().await;
        use crate::model::function::SqlParam;
        use duckdb::types::Value;
        let db = self.db.clone();
        let params: Vec<Value> = params
            .into_iter()
            .map(|p| match p {
                SqlParam::Null => Value::Null,
                SqlParam::Bool(b) => Value::Boolean(b),
                SqlParam::Int(i) => Value::BigInt(i),
                SqlParam::Float(f) => Value::Double(f),
                SqlParam::Text(s) => Value::Text(s),
            })
            .collect();
        let _slot = self.sql_lane.enter(self.pool.timeout()).await?;
        self.pool
            .run(move |c| {
                let checked = sql::check(&db, &text)?;
                sql::run_with(c, &checked, &params, row_limit)
            })
            .await
    }

    /// Read-only SQL: one query, at most `row_limit` rows.
    pub async fn sql(&self, text: String, row_limit: usize) -> Result<SqlResult, QueryError> {
        self.settle().await;
        let db = self.db.clone();
        let _slot = self.sql_lane.enter(self.pool.timeout()).await?;
        self.pool
            .run(move |c| {
                let checked = sql::check(&db, &text)?;
                sql::run(c, &checked, row_limit)
            })
            .await
    }
}
