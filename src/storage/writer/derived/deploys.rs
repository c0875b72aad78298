//! The deploy tables: `deploys` (what CI said about a deploy: commit, URL,
//! when) and `error_group_changes` (when and where each group became new or
//! regressed, and which deploy fixed or quieted it). Both are written in the
//! commit's transaction; `queries::releases` joins them with `releases` to
//! lay groups, error rates and latency at a deploy's door.

use super::{Committing, Derived};
use crate::errors::deploys::ChangeRow;
use crate::storage::duck::{Chunk, Col, RawConn};
use crate::storage::DuckError;

pub const MIGRATION_SQL: &str = r#"
CREATE TABLE deploys (
    service_name       VARCHAR NOT NULL,
    environment        VARCHAR,
    version            VARCHAR NOT NULL,
    deployed_unix_nano UBIGINT NOT NULL,
    recorded_unix_nano UBIGINT NOT NULL,
    vcs_commit         VARCHAR,
    url                VARCHAR
);
-- new | regressed (an event of the group, from this service, environment and
-- release) | fixed | quiet (the deploy of this release resolved the group).
CREATE TABLE error_group_changes (
    group_id           BIGINT  NOT NULL,
    change             VARCHAR NOT NULL,
    time_unix_nano     UBIGINT NOT NULL,
    service_name       VARCHAR NOT NULL,
    environment        VARCHAR,
    release            VARCHAR
);
-- Groups from before this table: their first event, as well as the group
-- row remembers it (its first service, its latest environment).
INSERT INTO error_group_changes
SELECT id, 'new', first_seen_unix_nano,
       coalesce(from_json(services, '["VARCHAR"]')[1], ''), last_environment, first_release
FROM errors WHERE status <> 'merged';
"#;

const DEPLOY_COLS: &[Col] = &[
    Col::Varchar,
    Col::Varchar,
    Col::Varchar,
    Col::UBigint,
    Col::UBigint,
    Col::Varchar,
    Col::Varchar,
];

/// The [`Derived`] writer of `deploys`.
#[derive(Default)]
pub struct Deploys;

impl Derived for Deploys {
    fn name(&self) -> &'static str {
        "deploys"
    }

    fn apply(&mut self, raw: &RawConn, rows: &Committing<'_>) -> Result<(), DuckError> {
        let records: Vec<_> = rows.batches().iter().flat_map(|b| &b.deploys).collect();
        if records.is_empty() {
            return Ok(());
        }
        let chunks = Chunk::fill(DEPLOY_COLS, &records, |b, d| {
            b.str(&d.service);
            b.opt_str(d.environment.as_deref());
            b.str(&d.version);
            b.u64(d.deployed_unix_nano);
            b.u64(d.recorded_unix_nano);
            b.opt_str(d.commit.as_deref());
            b.opt_str(d.url.as_deref());
        });
        raw.append_chunks("deploys", &chunks)
    }
}

const CHANGE_COLS: &[Col] = &[
    Col::Bigint,
    Col::Varchar,
    Col::UBigint,
    Col::Varchar,
    Col::Varchar,
    Col::Varchar,
];

/// Appends a commit's group changes; called by `error_groups`, which
/// decides them with the group book in hand.
pub fn write_changes(raw: &RawConn, rows: &[ChangeRow]) -> Result<(), DuckError> {
    if rows.is_empty() {
        return Ok(());
    }
    let chunks = Chunk::fill(CHANGE_COLS, rows, |b, r| {
        b.opt_i64(Some(r.group_id));
        b.str(r.change);
        b.u64(r.time_unix_nano);
        b.str(&r.service);
        b.opt_str(r.environment.as_deref());
        b.opt_str(r.release.as_deref());
    });
    raw.append_chunks("error_group_changes", &chunks)
}

/// Moves the changes of merged groups onto the group they joined.
pub fn merge(raw: &RawConn, target: i64, sources: &[i64]) -> Result<(), DuckError> {
    let ids: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    raw.execute(&format!(
        "UPDATE error_group_changes SET group_id = {target} WHERE group_id IN ({})",
        ids.join(",")
    ))
}

#[cfg(test)]
mod tests {
    use duckdb::Connection;

    use crate::storage::schema::{migrate, MIGRATIONS};

    #[test]
    fn groups_from_before_the_migration_get_their_first_event() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL, name VARCHAR NOT NULL,
                                          applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)",
        )
        .unwrap();
        for m in MIGRATIONS.iter().filter(|m| m.version <= 10) {
            conn.execute_batch(m.sql).unwrap();
            conn.execute(
                "INSERT INTO schema_version (version, name) VALUES (?, ?)",
                duckdb::params![m.version, m.name],
            )
            .unwrap();
        }
        for (id, status, services) in [
            (1, "unresolved", r#"["api","web"]"#),
            (2, "merged", r#"["api"]"#),
            (3, "resolved", "[]"),
        ] {
            conn.execute(
                "INSERT INTO errors BY NAME SELECT ? AS id, 'f' AS fingerprint, '[]' AS merged_hashes,
                        'span_name' AS fingerprint_rule, 2 AS fingerprint_version, '[]' AS components,
                        'status' AS category, 500 AS first_seen_unix_nano, 900 AS last_seen_unix_nano,
                        '1.0' AS first_release, 'prod' AS last_environment, 1 AS event_count,
                        0 AS unhandled_count, 0 AS user_count, ? AS services, '[]' AS users,
                        '[]' AS sample_trace_ids, ? AS status, '' AS substatus,
                        0 AS hour_start_unix_nano, 0 AS hour_count",
                duckdb::params![id, services, status],
            )
            .unwrap();
        }
        migrate(&conn).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT group_id, change, time_unix_nano::BIGINT, service_name, environment, release
                 FROM error_group_changes ORDER BY group_id",
            )
            .unwrap();
        let rows: Vec<(i64, String, i64, String, String, String)> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let row = |id: i64, service: &str| {
            (
                id,
                "new".into(),
                500,
                service.into(),
                "prod".into(),
                "1.0".into(),
            )
        };
        assert_eq!(rows, vec![row(1, "api"), row(3, "")]);
    }
}
