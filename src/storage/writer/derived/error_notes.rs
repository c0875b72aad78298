//! Notes people (and assistants over MCP) leave on an error group: Sentry's
//! issue comments. A note is a user's change like a status change, so it is
//! an [`ErrorCommand`](crate::model::errors::ErrorCommand) the writer applies
//! in its transaction (ordered with merges, which carry notes along); this
//! module stores them (`queries::errors` reads them back).

use crate::storage::duck::{sql_text, RawConn};
use crate::storage::DuckError;

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
