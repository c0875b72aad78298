//! The database schema as numbered migrations.
//!
//! Each migration runs once, in its own transaction, and is recorded in
//! `schema_version`; starting qyl on an existing file applies only the ones it
//! has not seen, so data survives upgrades. Never edit a shipped migration:
//! add a new one. Table and column names are a public contract (users query
//! them with SQL), so keep them stable. Since migration 16, `spans`, `logs`
//! and `metrics` are views over `span_rows`, `log_rows` and `metric_rows`
//! (see `writer::derived::resources`): a new column goes on the table, and
//! the view, which selects `*`, shows it. Since migration 17 the ids of
//! `span_rows` are numbers that `spans` prints as hex (see `ids`), and
//! since migration 22 those of `error_event_rows` and `session_trace_rows`,
//! under the views `error_events` and `session_traces`; since
//! migrations 19 and 20 a span's or log's version, environment and scope
//! are in its `resources` row, which the views join back.

use duckdb::Connection;

use super::StorageError;

pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. Versions are 1, 2, 3… with no gaps.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "spans, logs and metrics",
        sql: r#"
CREATE TABLE spans (
    trace_id                 VARCHAR  NOT NULL,
    span_id                  VARCHAR  NOT NULL,
    parent_span_id           VARCHAR,
    trace_state              VARCHAR,
    name                     VARCHAR  NOT NULL,
    kind                     VARCHAR  NOT NULL,
    start_time_unix_nano     UBIGINT  NOT NULL,
    end_time_unix_nano       UBIGINT  NOT NULL,
    duration_ns              UBIGINT  NOT NULL,
    status_code              VARCHAR  NOT NULL,
    status_message           VARCHAR,
    service_name             VARCHAR  NOT NULL,
    service_version          VARCHAR,
    deployment_environment   VARCHAR,
    scope_name               VARCHAR,
    scope_version            VARCHAR,
    session_id               VARCHAR,
    gen_ai_provider          VARCHAR,
    gen_ai_operation         VARCHAR,
    gen_ai_request_model     VARCHAR,
    gen_ai_response_model    VARCHAR,
    gen_ai_input_tokens      BIGINT,
    gen_ai_output_tokens     BIGINT,
    gen_ai_cache_read_tokens BIGINT,
    gen_ai_finish_reasons    VARCHAR,
    gen_ai_cost_usd          DOUBLE,
    attributes               VARCHAR  NOT NULL,
    resource                 VARCHAR  NOT NULL,
    events                   VARCHAR  NOT NULL,
    links                    VARCHAR  NOT NULL,
    dropped_attributes_count UINTEGER NOT NULL,
    dropped_events_count     UINTEGER NOT NULL,
    dropped_links_count      UINTEGER NOT NULL,
    ingest_seq               UBIGINT  NOT NULL
);
CREATE TABLE logs (
    time_unix_nano           UBIGINT  NOT NULL,
    observed_time_unix_nano  UBIGINT  NOT NULL,
    trace_id                 VARCHAR,
    span_id                  VARCHAR,
    severity_number          INTEGER  NOT NULL,
    severity_text            VARCHAR,
    body                     VARCHAR,
    service_name             VARCHAR  NOT NULL,
    service_version          VARCHAR,
    deployment_environment   VARCHAR,
    scope_name               VARCHAR,
    session_id               VARCHAR,
    event_name               VARCHAR,
    flags                    UINTEGER NOT NULL,
    attributes               VARCHAR  NOT NULL,
    resource                 VARCHAR  NOT NULL,
    dropped_attributes_count UINTEGER NOT NULL,
    ingest_seq               UBIGINT  NOT NULL
);
CREATE TABLE metrics (
    time_unix_nano           UBIGINT  NOT NULL,
    start_time_unix_nano     UBIGINT  NOT NULL,
    name                     VARCHAR  NOT NULL,
    description              VARCHAR,
    unit                     VARCHAR,
    kind                     VARCHAR  NOT NULL,
    temporality              VARCHAR,
    is_monotonic             BOOLEAN,
    value                    DOUBLE,
    count                    UBIGINT,
    sum                      DOUBLE,
    min                      DOUBLE,
    max                      DOUBLE,
    histogram                VARCHAR,
    exemplars                VARCHAR,
    service_name             VARCHAR  NOT NULL,
    scope_name               VARCHAR,
    attributes               VARCHAR  NOT NULL,
    resource                 VARCHAR  NOT NULL,
    flags                    UINTEGER NOT NULL,
    ingest_seq               UBIGINT  NOT NULL
);
"#,
    },
    Migration {
        version: 2,
        name: "trace lookup",
        sql: super::writer::derived::trace_index::CREATE_AND_FILL_SQL,
    },
    Migration {
        version: 3,
        name: "GenAI columns and sessions",
        sql: r#"
ALTER TABLE spans ADD COLUMN gen_ai_cache_write_tokens BIGINT;
ALTER TABLE spans ADD COLUMN gen_ai_reasoning_tokens BIGINT;
ALTER TABLE spans ADD COLUMN gen_ai_tool_name VARCHAR;
ALTER TABLE spans ADD COLUMN gen_ai_tool_call_id VARCHAR;
ALTER TABLE spans ADD COLUMN gen_ai_agent_name VARCHAR;
ALTER TABLE spans ADD COLUMN gen_ai_conversation_id VARCHAR;
ALTER TABLE spans ADD COLUMN gen_ai_time_to_first_chunk_ms DOUBLE;
ALTER TABLE spans ADD COLUMN error_type VARCHAR;
ALTER TABLE spans ADD COLUMN gen_ai_cost_source VARCHAR;
CREATE TABLE session_entities (
    session_id                VARCHAR  PRIMARY KEY,
    first_seen_unix_nano      UBIGINT  NOT NULL,
    last_seen_unix_nano       UBIGINT  NOT NULL,
    span_count                UBIGINT  NOT NULL,
    trace_count               UBIGINT  NOT NULL,
    error_count               UBIGINT  NOT NULL,
    gen_ai_requests           UBIGINT  NOT NULL,
    gen_ai_input_tokens       BIGINT   NOT NULL,
    gen_ai_output_tokens      BIGINT   NOT NULL,
    gen_ai_cache_read_tokens  BIGINT   NOT NULL,
    gen_ai_cache_write_tokens BIGINT   NOT NULL,
    gen_ai_cost_usd           DOUBLE   NOT NULL,
    gen_ai_unpriced_requests  UBIGINT  NOT NULL,
    models                    VARCHAR[] NOT NULL,
    services                  VARCHAR[] NOT NULL,
    users                     VARCHAR[] NOT NULL
);
CREATE TABLE genai_minutes (
    minute_unix_nano          UBIGINT  NOT NULL,
    service_name              VARCHAR  NOT NULL,
    provider                  VARCHAR  NOT NULL,
    request_model             VARCHAR  NOT NULL,
    response_model            VARCHAR  NOT NULL,
    kind                      INTEGER  NOT NULL,
    bin                       INTEGER  NOT NULL,
    model                     VARCHAR  NOT NULL,
    requests                  UBIGINT  NOT NULL,
    errors                    UBIGINT  NOT NULL,
    input_tokens              BIGINT   NOT NULL,
    output_tokens             BIGINT   NOT NULL,
    cache_read_tokens         BIGINT   NOT NULL,
    cache_write_tokens        BIGINT   NOT NULL,
    reasoning_tokens          BIGINT   NOT NULL,
    cost_usd                  DOUBLE   NOT NULL,
    without_cost              UBIGINT  NOT NULL,
    min_value                 DOUBLE   NOT NULL,
    max_value                 DOUBLE   NOT NULL,
    PRIMARY KEY (minute_unix_nano, service_name, provider, request_model, response_model, kind, bin)
);
CREATE TABLE session_traces (
    session_id                VARCHAR  NOT NULL,
    trace_id                  VARCHAR  NOT NULL,
    first_seen_unix_nano      UBIGINT  NOT NULL,
    last_seen_unix_nano       UBIGINT  NOT NULL,
    span_count                UBIGINT  NOT NULL,
    error_count               UBIGINT  NOT NULL,
    gen_ai_requests           UBIGINT  NOT NULL,
    gen_ai_input_tokens       BIGINT   NOT NULL,
    gen_ai_output_tokens      BIGINT   NOT NULL,
    gen_ai_cache_read_tokens  BIGINT   NOT NULL,
    gen_ai_cache_write_tokens BIGINT   NOT NULL,
    gen_ai_cost_usd           DOUBLE   NOT NULL,
    gen_ai_unpriced_requests  UBIGINT  NOT NULL,
    models                    VARCHAR  NOT NULL,
    services                  VARCHAR  NOT NULL,
    users                     VARCHAR  NOT NULL
);
"#,
    },
    Migration {
        version: 4,
        name: "error groups, error events, releases, SLO rollups",
        sql: r#"
-- One row per error group, kept current by the writer (storage::error_groups).
CREATE TABLE errors (
    id                       BIGINT   NOT NULL,
    fingerprint              VARCHAR  NOT NULL,
    in_app_hash              VARCHAR,
    full_stack_hash          VARCHAR,
    -- Hashes of groups merged into this one (JSON array).
    merged_hashes            VARCHAR  NOT NULL,
    fingerprint_rule         VARCHAR  NOT NULL,
    fingerprint_version      INTEGER  NOT NULL,
    -- What went into the fingerprint (JSON array of strings).
    components               VARCHAR  NOT NULL,
    error_type               VARCHAR,
    message_template         VARCHAR,
    culprit                  VARCHAR,
    category                 VARCHAR  NOT NULL,
    gen_ai_provider          VARCHAR,
    gen_ai_operation         VARCHAR,
    gen_ai_model             VARCHAR,
    gen_ai_error_class       VARCHAR,
    gen_ai_tool              VARCHAR,
    first_seen_unix_nano     UBIGINT  NOT NULL,
    last_seen_unix_nano      UBIGINT  NOT NULL,
    first_release            VARCHAR,
    last_release             VARCHAR,
    last_environment         VARCHAR,
    event_count              UBIGINT  NOT NULL,
    unhandled_count          UBIGINT  NOT NULL,
    user_count               UBIGINT  NOT NULL,
    -- JSON arrays: every service, a sample of users and trace ids.
    services                 VARCHAR  NOT NULL,
    users                    VARCHAR  NOT NULL,
    sample_trace_ids         VARCHAR  NOT NULL,
    -- unresolved | resolved | archived | merged
    status                   VARCHAR  NOT NULL,
    -- new | ongoing | regressed | escalating (unresolved);
    -- now | in_next_release | auto (resolved); forever | until_escalating (archived)
    substatus                VARCHAR  NOT NULL,
    resolved_at_unix_nano    UBIGINT,
    resolved_in_release      VARCHAR,
    resolved_environment     VARCHAR,
    merged_into              BIGINT,
    -- Escalation state: events in the hour starting at hour_start.
    hour_start_unix_nano     UBIGINT  NOT NULL,
    hour_count               UBIGINT  NOT NULL,
    escalated_hour_unix_nano UBIGINT,
    -- The release of the event that last regressed the group.
    regressed_in_release     VARCHAR
);
-- One row per occurrence. Breadcrumbs are not stored: they are built when
-- read, from the spans and logs of the trace, which arrive over several
-- exports (children before parents), so no commit sees them all.
CREATE TABLE error_events (
    event_id                 VARCHAR  NOT NULL,
    group_id                 BIGINT   NOT NULL,
    time_unix_nano           UBIGINT  NOT NULL,
    source                   VARCHAR  NOT NULL,
    trace_id                 VARCHAR,
    span_id                  VARCHAR,
    service_name             VARCHAR  NOT NULL,
    release                  VARCHAR,
    environment              VARCHAR,
    session_id               VARCHAR,
    user_id                  VARCHAR,
    error_type               VARCHAR,
    message                  VARCHAR,
    stacktrace               VARCHAR,
    -- The parsed stack trace (JSON), innermost frame first.
    frames                   VARCHAR,
    culprit                  VARCHAR,
    handled                  BOOLEAN  NOT NULL,
    fingerprint              VARCHAR  NOT NULL,
    gen_ai_model             VARCHAR,
    gen_ai_error_class       VARCHAR
);
-- service.version per (service, environment): a deploy marker.
CREATE TABLE releases (
    service_name             VARCHAR  NOT NULL,
    environment              VARCHAR,
    version                  VARCHAR  NOT NULL,
    first_seen_unix_nano     UBIGINT  NOT NULL,
    last_seen_unix_nano      UBIGINT  NOT NULL,
    -- telemetry (first seen in data) or deploy (POST /api/v1/releases)
    source                   VARCHAR  NOT NULL
);
-- Good and total requests per SLO per minute; several rows for one minute
-- add up (late data is appended, not merged).
CREATE TABLE slo_minutes (
    slo                      VARCHAR  NOT NULL,
    minute_unix_nano         UBIGINT  NOT NULL,
    good                     UBIGINT  NOT NULL,
    total                    UBIGINT  NOT NULL
);
"#,
    },
    Migration {
        version: 5,
        name: "functions: definitions, invocations and state",
        sql: r#"
CREATE TABLE qyl_functions (
    function_id      VARCHAR  PRIMARY KEY,
    name             VARCHAR  NOT NULL,
    file             VARCHAR  NOT NULL,
    description      VARCHAR,
    trigger          VARCHAR  NOT NULL,
    max_concurrency  INTEGER  NOT NULL,
    timeout_ms       BIGINT   NOT NULL,
    memory_mb        INTEGER  NOT NULL,
    rate_limit       VARCHAR,
    enabled          BOOLEAN  NOT NULL,
    updated_unix_nano UBIGINT NOT NULL
);
CREATE TABLE function_invocations (
    invocation_id         VARCHAR NOT NULL,
    function_id           VARCHAR NOT NULL,
    status                VARCHAR NOT NULL,
    result                VARCHAR,
    error                 VARCHAR,
    duration_ms           DOUBLE  NOT NULL,
    triggered_by_trace_id VARCHAR,
    triggered_by_span_id  VARCHAR,
    started_unix_nano     UBIGINT NOT NULL,
    finished_unix_nano    UBIGINT NOT NULL
);
CREATE TABLE function_state (
    function_id       VARCHAR NOT NULL,
    key               VARCHAR NOT NULL,
    value             VARCHAR NOT NULL,
    updated_unix_nano UBIGINT NOT NULL,
    PRIMARY KEY (function_id, key)
);
-- Staging for the writer's set-based upserts; empty between commits.
CREATE TABLE function_state_staging (
    function_id       VARCHAR NOT NULL,
    key               VARCHAR NOT NULL,
    value             VARCHAR,
    updated_unix_nano UBIGINT NOT NULL
);
CREATE TABLE qyl_functions_staging (
    function_id      VARCHAR  NOT NULL,
    name             VARCHAR  NOT NULL,
    file             VARCHAR  NOT NULL,
    description      VARCHAR,
    trigger          VARCHAR  NOT NULL,
    max_concurrency  INTEGER  NOT NULL,
    timeout_ms       BIGINT   NOT NULL,
    memory_mb        INTEGER  NOT NULL,
    rate_limit       VARCHAR,
    enabled          BOOLEAN  NOT NULL,
    updated_unix_nano UBIGINT NOT NULL
);
"#,
    },
    Migration {
        version: 6,
        name: "summary watermark",
        // Up to here every commit updated the summaries, so they hold every
        // span already stored.
        sql: r#"
CREATE TABLE summary_watermark AS
SELECT coalesce(max(ingest_seq), 0)::UBIGINT AS ingest_seq FROM spans;
"#,
    },
    Migration {
        version: 7,
        name: "GenAI error classes and finish reasons per minute",
        sql: super::writer::derived::genai_rollup::LABELS_MIGRATION_SQL,
    },
    Migration {
        version: 8,
        name: "automatic triage reports",
        sql: super::writer::derived::triage::MIGRATION_SQL,
    },
    Migration {
        version: 9,
        name: "notes on error groups",
        sql: super::writer::derived::error_notes::MIGRATION_SQL,
    },
    Migration {
        version: 10,
        name: "where each trace lookup row's spans start",
        sql: super::writer::derived::trace_index::FIRST_SPAN_MIGRATION_SQL,
    },
    Migration {
        version: 11,
        name: "distinct users per error group, hub sequence watermark",
        sql: r#"
-- Each error group's distinct users (errors::users::UserSketch, base64):
-- kept so a restart does not count a user again.
CREATE TABLE error_group_users (
    group_id BIGINT  NOT NULL,
    sketch   VARCHAR NOT NULL
);
-- The last sequence number handed to records only the live stream has
-- (error group changes, function events), recorded in their commit.
CREATE TABLE hub_watermark AS SELECT 0::UBIGINT AS seq;
"#,
    },
    Migration {
        version: 12,
        name: "deploys and error group changes",
        sql: super::writer::derived::deploys::MIGRATION_SQL,
    },
    Migration {
        version: 13,
        name: "spans per service and minute",
        sql: super::writer::derived::service_minutes::MIGRATION_SQL,
    },
    Migration {
        version: 14,
        name: "SLO alert level changes",
        sql: super::writer::derived::slo_transitions::MIGRATION_SQL,
    },
    Migration {
        version: 15,
        name: "journal watermark",
        sql: r#"
-- The last entry of qyl's journal (storage::writer::journal) the database
-- holds, recorded in each commit: a start replays the entries past it. The
-- id ties a journal to this database, so one left beside a file that was
-- deleted and created anew is set aside rather than replayed into it.
CREATE TABLE journal_watermark AS
    SELECT 0::UBIGINT AS entry, uuid()::VARCHAR AS database_id;
"#,
    },
    Migration {
        version: 16,
        name: "resources stored once",
        sql: super::writer::derived::resources::MIGRATION_SQL,
    },
    Migration {
        version: 17,
        name: "span ids as numbers",
        sql: super::ids::MIGRATION_SQL,
    },
    Migration {
        version: 18,
        name: "empty span events and links as NULL",
        sql: r#"
-- A span without events or links stores NULL there (most spans: the text
-- '[]' cost the writer as much as a real column); the spans view shows '[]'
-- as before. Rows stored earlier keep their text.
ALTER TABLE span_rows ALTER COLUMN events DROP NOT NULL;
ALTER TABLE span_rows ALTER COLUMN links DROP NOT NULL;
CREATE OR REPLACE VIEW spans AS
    SELECT s.* EXCLUDE (resource_id) REPLACE (
        qyl_trace_hex(s.trace_id) AS trace_id,
        qyl_span_hex(s.span_id) AS span_id,
        qyl_span_hex(s.parent_span_id) AS parent_span_id,
        coalesce(s.resource, r.resource) AS resource,
        coalesce(s.events, '[]') AS events,
        coalesce(s.links, '[]') AS links)
    FROM span_rows s LEFT JOIN resources r ON r.resource_id = s.resource_id;
"#,
    },
    Migration {
        version: 19,
        name: "span versions, environments and scopes stored with their resource",
        sql: super::writer::derived::resources::SPAN_ORIGIN_MIGRATION_SQL,
    },
    Migration {
        version: 20,
        name: "log versions, environments and scopes stored with their resource",
        sql: super::writer::derived::resources::LOG_ORIGIN_MIGRATION_SQL,
    },
    Migration {
        version: 21,
        name: "archived Parquet files and the views over both tiers",
        sql: super::archive::MIGRATION_SQL,
    },
    Migration {
        version: 22,
        name: "session trace and error event ids as numbers",
        sql: super::ids::DERIVED_MIGRATION_SQL,
    },
];

/// The newest schema this build knows.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// The schema version of an open database (0 for a new one).
pub fn current_version(conn: &Connection) -> Result<u32, StorageError> {
    let exists: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM duckdb_tables() WHERE table_name = 'schema_version'
               AND database_name = current_database()",
            [],
            |r| r.get(0),
        )
        .map_err(|e| StorageError::sql("reading schema_version", e))?;
    if !exists {
        return Ok(0);
    }
    conn.query_row(
        "SELECT coalesce(max(version), 0)::INTEGER FROM schema_version",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|v| v as u32)
    .map_err(|e| StorageError::sql("reading schema_version", e))
}

/// Applies every migration the database has not seen; returns the version
/// the database is at afterwards.
pub fn migrate(conn: &Connection) -> Result<u32, StorageError> {
    migrate_to(conn, latest_version())
}

/// Applies the migrations the database has not seen, up to `target`: tests
/// make a database as an older release left it this way.
pub(crate) fn migrate_to(conn: &Connection, target: u32) -> Result<u32, StorageError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version    INTEGER   NOT NULL,
            name       VARCHAR   NOT NULL,
            applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )",
    )
    .map_err(|e| StorageError::sql("creating schema_version", e))?;
    let current = current_version(conn)?;
    if current > latest_version() {
        return Err(StorageError::TooNew {
            found: current,
            known: latest_version(),
        });
    }
    for m in MIGRATIONS
        .iter()
        .filter(|m| m.version > current && m.version <= target)
    {
        let apply = || -> duckdb::Result<()> {
            conn.execute_batch("BEGIN TRANSACTION")?;
            conn.execute_batch(m.sql)?;
            conn.execute(
                "INSERT INTO schema_version (version, name) VALUES (?, ?)",
                duckdb::params![m.version, m.name],
            )?;
            conn.execute_batch("COMMIT")
        };
        if let Err(e) = apply() {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(StorageError::sql(
                format!("applying migration {} ({})", m.version, m.name),
                e,
            ));
        }
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    Ok(current.max(target.min(latest_version())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_6_and_7_backfill_the_watermark_and_the_label_counts() {
        let conn = Connection::open_in_memory().unwrap();
        // A database as the release before migration 6 left it.
        migrate_to(&conn, 5).unwrap();
        let span = |seq: u32, op: &str, status: &str, error: &str, finish: &str| {
            format!(
                "INSERT INTO spans BY NAME SELECT
                    't{seq}' AS trace_id, 's{seq}' AS span_id, 'call' AS name, 'CLIENT' AS kind,
                    120000000000 AS start_time_unix_nano, 120000000001 AS end_time_unix_nano,
                    1 AS duration_ns, '{status}' AS status_code, 'svc' AS service_name,
                    'openai' AS gen_ai_provider, '{op}' AS gen_ai_operation,
                    'gpt-4o' AS gen_ai_request_model, {error} AS error_type,
                    {finish} AS gen_ai_finish_reasons,
                    '{{}}' AS attributes, '{{}}' AS resource, '[]' AS events, '[]' AS links,
                    0 AS dropped_attributes_count, 0 AS dropped_events_count,
                    0 AS dropped_links_count, {seq} AS ingest_seq"
            )
        };
        for sql in [
            span(7, "chat", "ERROR", "'rate_limit'", "NULL"),
            span(8, "chat", "OK", "NULL", r#"'["stop","length"]'"#),
            span(9, "chat", "ERROR", "NULL", "'not json'"),
            // An agent roll-up is not a call: not counted.
            span(10, "invoke_agent", "ERROR", "'boom'", "NULL"),
        ] {
            conn.execute_batch(&sql).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO genai_minutes VALUES (120000000000, 'svc', 'openai', 'gpt-4o', '', 0, 0,
                 'gpt-4o', 3, 2, 0, 0, 0, 0, 0, 0, 0, 1, 1)",
        )
        .unwrap();
        assert_eq!(migrate(&conn).unwrap(), latest_version());
        let mut stmt = conn
            .prepare(
                "SELECT kind, label, requests::BIGINT FROM genai_minute_labels
                 WHERE minute_unix_nano = 120000000000 AND model = 'gpt-4o'
                 ORDER BY kind, label",
            )
            .unwrap();
        let labels: Vec<(i32, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            labels,
            vec![
                (0, "_OTHER".into(), 1),
                (0, "rate_limit".into(), 1),
                (1, "length".into(), 1),
                (1, "stop".into(), 1),
            ]
        );
        let watermark: i64 = conn
            .query_row("SELECT ingest_seq FROM summary_watermark", [], |r| r.get(0))
            .unwrap();
        assert_eq!(watermark, 10);
    }
}
