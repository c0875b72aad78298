//! Trace and span ids as `span_rows` stores them: numbers, not hex text.
//!
//! A trace id is 16 random bytes and a span id 8; as text they were 32 and
//! 16 hex digits, which DuckDB hashed, measured and tried to compress in
//! every commit (and could not: random text does not compress) and compared
//! byte by byte in every lookup. As `UHUGEINT` and `UBIGINT` they are fixed
//! width: measured on DuckDB alone, storing the three ids of a span went from
//! 1.6–2.4 µs to 0.3–0.5 µs, and finding a trace by id in 2.4 M rows from
//! 56 ms to 8 ms.
//!
//! Everything outside storage still sees hex: the `spans` view prints the
//! ids as before ([`MIGRATION_SQL`]), the row mappers format them
//! ([`trace_hex`], [`span_hex`]) and filters parse them ([`parse_trace_id`],
//! [`parse_span_id`]). The numbers order as their hex does (fixed width,
//! zero-padded, lower case), so pages and cursors are unchanged. Since
//! migration 22 the session traces and error events keep their ids as
//! numbers too ([`DERIVED_MIGRATION_SQL`]); logs and the session list keep
//! theirs as text, and SQL that joins them to `span_rows` converts with the
//! macros migration 17 creates.

use duckdb::types::Value;
use duckdb::Row;

/// Migration 17. Rewrites the three id columns of `span_rows` in place
/// (seconds per ten million spans, once) and redefines the `spans` view to
/// print them as hex. The hex macros skip `lpad` for the 15 in 16 random
/// ids whose top digit is not 0: it was half their cost (filtering 10 M
/// spans through the view by a hex id, 830 → 440 ms). Ingest has always
/// rejected ids of the wrong length, so every stored id converts; one that
/// did not would be stored as 0.
pub const MIGRATION_SQL: &str = r#"
-- Trace and span ids of span_rows are numbers (UHUGEINT, UBIGINT); the spans
-- view shows them as the lower-case hex of before. To filter span_rows by a
-- hex id, convert the id rather than the column (the column keeps its
-- min/max statistics): WHERE trace_id = qyl_trace_key('4bf92f35…').
CREATE MACRO qyl_trace_key(id) AS
    CASE WHEN length(id) = 32 THEN
        (TRY_CAST('0x' || left(id, 16) AS UBIGINT)::UHUGEINT << 64)
        | TRY_CAST('0x' || right(id, 16) AS UBIGINT)::UHUGEINT
    END;
CREATE MACRO qyl_span_key(id) AS
    CASE WHEN length(id) = 16 THEN TRY_CAST('0x' || id AS UBIGINT) END;
CREATE MACRO qyl_trace_hex(key) AS
    CASE WHEN key >= (1::UHUGEINT << 124) THEN lower(hex(key))
         ELSE lpad(lower(hex(key)), 32, '0') END;
CREATE MACRO qyl_span_hex(key) AS
    CASE WHEN key >= (1::UBIGINT << 60) THEN lower(hex(key))
         ELSE lpad(lower(hex(key)), 16, '0') END;
ALTER TABLE span_rows ALTER COLUMN trace_id SET DATA TYPE UHUGEINT
    USING coalesce(qyl_trace_key(trace_id), 0);
ALTER TABLE span_rows ALTER COLUMN span_id SET DATA TYPE UBIGINT
    USING coalesce(qyl_span_key(span_id), 0);
ALTER TABLE span_rows ALTER COLUMN parent_span_id SET DATA TYPE UBIGINT
    USING qyl_span_key(parent_span_id);
CREATE OR REPLACE VIEW spans AS
    SELECT s.* EXCLUDE (resource_id) REPLACE (
        qyl_trace_hex(s.trace_id) AS trace_id,
        qyl_span_hex(s.span_id) AS span_id,
        qyl_span_hex(s.parent_span_id) AS parent_span_id,
        coalesce(s.resource, r.resource) AS resource)
    FROM span_rows s LEFT JOIN resources r ON r.resource_id = s.resource_id;
"#;

/// Migration 22. The two derived tables that append a row per trace or per
/// error in every commit stored their ids as hex text, which a checkpoint
/// analysed and tried to compress again each time it rewrote their open
/// row group (measured in qyl: each table ~0.5 µs of CPU per ingested span,
/// nearly all of it in checkpoints). As numbers, in DuckDB alone with the
/// tables' columns, a checkpoint of the error events' open row group took
/// 45% less time and of the session traces' 28% less. `error_events` and
/// `session_traces` become views printing the hex of before, over
/// `error_event_rows` and `session_trace_rows`; an event id is the hex of
/// a 128-bit hash, so it is a `UHUGEINT` like a trace id.
pub const DERIVED_MIGRATION_SQL: &str = r#"
ALTER TABLE session_traces RENAME TO session_trace_rows;
ALTER TABLE session_trace_rows ALTER COLUMN trace_id SET DATA TYPE UHUGEINT
    USING coalesce(qyl_trace_key(trace_id), 0);
CREATE VIEW session_traces AS
    SELECT * REPLACE (qyl_trace_hex(trace_id) AS trace_id) FROM session_trace_rows;
ALTER TABLE error_events RENAME TO error_event_rows;
ALTER TABLE error_event_rows ALTER COLUMN event_id SET DATA TYPE UHUGEINT
    USING coalesce(qyl_trace_key(event_id), 0);
ALTER TABLE error_event_rows ALTER COLUMN trace_id SET DATA TYPE UHUGEINT
    USING qyl_trace_key(trace_id);
ALTER TABLE error_event_rows ALTER COLUMN span_id SET DATA TYPE UBIGINT
    USING qyl_span_key(span_id);
CREATE VIEW error_events AS
    SELECT * REPLACE (
        qyl_trace_hex(event_id) AS event_id,
        qyl_trace_hex(trace_id) AS trace_id,
        qyl_span_hex(span_id) AS span_id)
    FROM error_event_rows;
"#;

/// A trace id's 32 hex digits as stored, or `None` for anything else.
pub fn parse_trace_id(hex: &str) -> Option<u128> {
    parse_hex(hex, 32).map(|(high, low)| (u128::from(high) << 64) | u128::from(low))
}

/// A span id's 16 hex digits as stored, or `None` for anything else.
pub fn parse_span_id(hex: &str) -> Option<u64> {
    parse_hex(hex, 16).map(|(_, low)| low)
}

/// `digits` (32 or 16) hex digits as (high, low) 64-bit halves.
///
/// One pass over the bytes with a table: every span's ids are parsed on the
/// writer (and the dedup key on ingest), where validating first and then
/// calling `from_str_radix` twice was ~1.3 % of qyl's CPU.
fn parse_hex(hex: &str, digits: usize) -> Option<(u64, u64)> {
    if hex.len() != digits {
        return None;
    }
    let mut halves = [0u64; 2];
    let (high, low) = hex.as_bytes().split_at(digits - 16);
    for (half, bytes) in halves.iter_mut().zip([high, low]) {
        for &b in bytes {
            let nibble = HEX_VALUE[usize::from(b)];
            if nibble > 15 {
                return None;
            }
            *half = (*half << 4) | u64::from(nibble);
        }
    }
    Some((halves[0], halves[1]))
}

/// Each byte's value as a hex digit, or 0xff.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

pub fn trace_hex(id: u128) -> String {
    format!("{id:032x}")
}

pub fn span_hex(id: u64) -> String {
    format!("{id:016x}")
}

/// The trace id in column `i` of a `span_rows` row, as hex.
pub fn trace_id_at(r: &Row<'_>, i: usize) -> duckdb::Result<String> {
    r.get::<_, u128>(i).map(trace_hex)
}

/// The span id in column `i` of a `span_rows` row, as hex.
pub fn span_id_at(r: &Row<'_>, i: usize) -> duckdb::Result<String> {
    r.get::<_, u64>(i).map(span_hex)
}

/// The parent span id in column `i` of a `span_rows` row, as hex.
pub fn parent_id_at(r: &Row<'_>, i: usize) -> duckdb::Result<Option<String>> {
    r.get::<_, Option<u64>>(i).map(|id| id.map(span_hex))
}

/// A hex trace id as a parameter for a `span_rows` id column.
pub fn trace_id_value(hex: &str) -> Option<Value> {
    parse_trace_id(hex).map(Value::UHugeInt)
}

/// A hex span id as a parameter for a `span_rows` id column.
pub fn span_id_value(hex: &str) -> Option<Value> {
    parse_span_id(hex).map(Value::UBigInt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_orders_as_text() {
        let ids = [
            "00000000000000000000000000000001",
            "0af7651916cd43dd8448eb211c80319c",
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "ffffffffffffffffffffffffffffffff",
        ];
        let keys: Vec<u128> = ids.iter().map(|t| parse_trace_id(t).unwrap()).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (id, key) in ids.iter().zip(&keys) {
            assert_eq!(&trace_hex(*key), id);
        }
        assert_eq!(
            parse_span_id("00f067aa0ba902b7"),
            Some(0x00f0_67aa_0ba9_02b7)
        );
        assert_eq!(span_hex(0xb7), "00000000000000b7");
        // Upper case is read (the SQL macro reads it too) and printed lower.
        assert_eq!(
            parse_span_id("00F067AA0BA902B7"),
            Some(0x00f0_67aa_0ba9_02b7)
        );
        // Anything but 16 (or 32) hex digits is refused, wherever the odd
        // byte sits.
        for bad in [
            "00f067aa0ba902bg",
            "+0f067aa0ba902b7",
            "00f067aa0ba902b",
            "00f067aa0ba902b70",
            "00f067aa0ba902\u{e9}",
            "",
        ] {
            assert_eq!(parse_span_id(bad), None, "{bad:?}");
        }
        assert_eq!(parse_trace_id("0af7651916cd43dd8448eb211c80319g"), None);
        assert_eq!(parse_trace_id("0af7651916cd43d-8448eb211c80319c"), None);
        assert_eq!(parse_trace_id("00f067aa0ba902b7"), None);
    }

    #[test]
    fn migration_17_keeps_every_span_as_the_view_showed_it() {
        use crate::storage::schema::{latest_version, migrate, migrate_to};
        let conn = duckdb::Connection::open_in_memory().unwrap();
        // A database as the release before migration 17 left it: ids as text.
        migrate_to(&conn, 16).unwrap();
        conn.execute_batch(
            "INSERT INTO span_rows BY NAME SELECT
                md5(i::VARCHAR) AS trace_id, left(md5((i * 7)::VARCHAR), 16) AS span_id,
                CASE WHEN i % 3 > 0 THEN left(md5((i * 5)::VARCHAR), 16) END AS parent_span_id,
                'op' AS name, 'INTERNAL' AS kind, i AS start_time_unix_nano,
                i + 1 AS end_time_unix_nano, 1 AS duration_ns, 'UNSET' AS status_code,
                'svc' AS service_name, '{}' AS attributes, '{}' AS resource, '[]' AS events,
                '[]' AS links, 0 AS dropped_attributes_count, 0 AS dropped_events_count,
                0 AS dropped_links_count, i AS ingest_seq
             FROM range(2000) r(i)",
        )
        .unwrap();
        let rows = |conn: &duckdb::Connection| -> Vec<String> {
            let mut stmt = conn
                .prepare("SELECT spans::VARCHAR FROM spans ORDER BY ingest_seq")
                .unwrap();
            let rows = stmt.query_map([], |r| r.get(0)).unwrap();
            rows.collect::<Result<_, _>>().unwrap()
        };
        let before = rows(&conn);
        assert_eq!(migrate(&conn).unwrap(), latest_version());
        assert_eq!(rows(&conn), before);
        let types: Vec<String> = conn
            .prepare(
                "SELECT data_type FROM information_schema.columns
                 WHERE table_name = 'span_rows'
                   AND column_name IN ('trace_id', 'span_id', 'parent_span_id')
                 ORDER BY ordinal_position",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(types, ["UHUGEINT", "UBIGINT", "UBIGINT"]);
        // The macros convert both ways, and a hex id finds its span.
        let id: String = conn
            .query_row(
                "SELECT trace_id FROM spans WHERE ingest_seq = 1234",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let seq: u64 = conn
            .query_row(
                "SELECT ingest_seq FROM span_rows WHERE trace_id = qyl_trace_key(?)",
                [&id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(seq, 1234);
        let stored: u128 = conn
            .query_row(
                "SELECT trace_id FROM span_rows WHERE ingest_seq = 1234",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(parse_trace_id(&id), Some(stored));
    }

    #[test]
    fn migration_22_keeps_every_session_trace_and_error_event_as_shown() {
        use crate::storage::schema::{latest_version, migrate, migrate_to};
        let conn = duckdb::Connection::open_in_memory().unwrap();
        // A database as the release before migration 22 left it.
        migrate_to(&conn, 21).unwrap();
        conn.execute_batch(
            "INSERT INTO session_traces SELECT
                'sess-' || (i % 7), md5(i::VARCHAR), i, i + 5, 3, i % 2, 1, 10, 20, 0, 0,
                0.5, 0, 'gpt-4o', 'chat', 'u1'
             FROM range(500) r(i);
             INSERT INTO error_events BY NAME SELECT
                md5('e' || i) AS event_id, i % 3 AS group_id, 1000 + i AS time_unix_nano,
                CASE WHEN i % 4 = 0 THEN 'log' ELSE 'span_status' END AS source,
                CASE WHEN i % 4 > 0 THEN md5(i::VARCHAR) END AS trace_id,
                CASE WHEN i % 4 > 0 THEN left(md5('s' || i), 16) END AS span_id,
                'svc' AS service_name, 'boom ' || i AS message, false AS handled,
                'f' || (i % 3) AS fingerprint
             FROM range(500) r(i);",
        )
        .unwrap();
        let rows = |conn: &duckdb::Connection, sql: &str| -> Vec<String> {
            let mut stmt = conn.prepare(sql).unwrap();
            let rows = stmt.query_map([], |r| r.get(0)).unwrap();
            rows.collect::<Result<_, _>>().unwrap()
        };
        let traces = "SELECT t::VARCHAR FROM session_traces t ORDER BY first_seen_unix_nano";
        let events = "SELECT e::VARCHAR FROM error_events e ORDER BY time_unix_nano";
        let (traces_before, events_before) = (rows(&conn, traces), rows(&conn, events));
        assert_eq!(migrate(&conn).unwrap(), latest_version());
        assert_eq!(rows(&conn, traces), traces_before);
        assert_eq!(rows(&conn, events), events_before);
        let types = rows(
            &conn,
            "SELECT table_name || '.' || column_name || ' ' || data_type
             FROM information_schema.columns
             WHERE table_name IN ('session_trace_rows', 'error_event_rows')
               AND column_name IN ('event_id', 'trace_id', 'span_id')
             ORDER BY table_name, ordinal_position",
        );
        assert_eq!(
            types,
            [
                "error_event_rows.event_id UHUGEINT",
                "error_event_rows.trace_id UHUGEINT",
                "error_event_rows.span_id UBIGINT",
                "session_trace_rows.trace_id UHUGEINT",
            ]
        );
        // An occurrence without a trace keeps none.
        let untraced: i64 = conn
            .query_row(
                "SELECT count(*) FROM error_event_rows WHERE trace_id IS NULL AND span_id IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(untraced, 125);
    }

    #[test]
    fn the_sql_macros_agree_with_the_rust_side() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        crate::storage::schema::migrate(&conn).unwrap();
        for id in [0, 1, (1 << 124) - 1, 1 << 124, u128::MAX, 0x4bf9_2f35 << 90] {
            let (hex, back): (String, u128) = conn
                .query_row(
                    "SELECT qyl_trace_hex(?::UHUGEINT), qyl_trace_key(qyl_trace_hex(?::UHUGEINT))",
                    [id, id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((hex.as_str(), back), (trace_hex(id).as_str(), id));
        }
        for id in [0, 1, (1 << 60) - 1, 1 << 60, u64::MAX, 0xb7] {
            let (hex, back): (String, u64) = conn
                .query_row(
                    "SELECT qyl_span_hex(?::UBIGINT), qyl_span_key(qyl_span_hex(?::UBIGINT))",
                    [id, id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((hex.as_str(), back), (span_hex(id).as_str(), id));
        }
    }

    #[test]
    fn anything_but_the_exact_digits_is_refused() {
        for bad in [
            "",
            "4bf92f3577b34da6a3ce929d0e0e473",
            "4bf92f3577b34da6a3ce929d0e0e47366",
            "+bf92f3577b34da6a3ce929d0e0e4736",
            "4bf92f3577b34da6a3ce929d0e0e473g",
            "4bf92f3577b34da6a3ce929d0e0e473é",
        ] {
            assert_eq!(parse_trace_id(bad), None, "{bad:?}");
        }
        for bad in [
            "",
            "00f067aa0ba902b",
            "+0f067aa0ba902b7",
            "00f067aa0ba902b7 ",
        ] {
            assert_eq!(parse_span_id(bad), None, "{bad:?}");
        }
    }
}
