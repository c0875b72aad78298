//! Notes people (and assistants over MCP) leave on an error group: Sentry's
//! issue comments. A note is a user's change like a status change, so it is
//! an [`ErrorCommand`](crate::model::errors::ErrorCommand) the writer applies
//! in its transaction (ordered with merges, which carry notes along); this
//! module holds how notes are stored and read back.

use super::duck::{sql_text, RawConn};
use super::reader::{QueryError, SqlContext};
use super::{Conn, DuckError};
use crate::model::errors::ErrorNote;
use crate::model::query::rfc3339;

pub const MIGRATION_SQL: &str = r#"
CREATE SEQUENCE error_note_ids START 1;
CREATE TABLE error_notes (
    note_id           BIGINT  NOT NULL DEFAULT nextval('error_note_ids') PRIMARY KEY,
    group_id          BIGINT  NOT NULL,
    created_unix_nano UBIGINT NOT NULL,
    author            VARCHAR NOT NULL,
    text              VARCHAR NOT NULL
);
"#;

/// Stores a note; called by the writer inside its transaction.
pub fn insert(
    raw: &RawConn,
    group_id: i64,
    at_unix_nano: u64,
    author: &str,
    text: &str,
) -> Result<(), DuckError> {
    raw.execute(&format!(
        "INSERT INTO error_notes (group_id, created_unix_nano, author, text)
         VALUES ({group_id}, {at_unix_nano}, {}, {})",
        sql_text(author),
        sql_text(text)
    ))
}

/// Moves the notes of merged groups onto the group they joined.
pub fn merge(raw: &RawConn, target: i64, sources: &[i64]) -> Result<(), DuckError> {
    let ids: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    raw.execute(&format!(
        "UPDATE error_notes SET group_id = {target} WHERE group_id IN ({})",
        ids.join(",")
    ))
}

/// A group's notes, oldest first (a conversation reads down).
pub fn notes(c: &Conn, group_id: i64) -> Result<Vec<ErrorNote>, QueryError> {
    let mut stmt = c
        .prepare(
            "SELECT note_id, group_id, created_unix_nano, author, text FROM error_notes
             WHERE group_id = ? ORDER BY created_unix_nano, note_id",
        )
        .ctx("preparing the error notes query")?;
    let rows = stmt
        .query_map([group_id], |r| {
            let at: u64 = r.get(2)?;
            Ok(ErrorNote {
                note_id: r.get(0)?,
                group_id: r.get(1)?,
                created_at: rfc3339(at),
                created_unix_nano: at.to_string(),
                author: r.get(3)?,
                text: r.get(4)?,
            })
        })
        .ctx("reading error notes")?;
    rows.collect::<Result<Vec<_>, _>>()
        .ctx("reading error notes")
}
