//! Raw DuckDB handles for the write path.
//!
//! duckdb-rs's `Appender::append_row` binds every value through `ToSql`,
//! allocating and validating per row; on span-shaped rows that was a tenth of
//! the writer thread's time. Appending whole data chunks (2048 rows of typed
//! column vectors) avoids it, but duckdb-rs keeps the raw connection that
//! `duckdb_append_data_chunk` needs private. So qyl opens the database itself
//! through the C API: [`Database`] owns the `duckdb_database`, hands out
//! ordinary duckdb-rs [`Conn`]ections for queries and migrations, and one
//! [`RawConn`] to the writer for chunk appends. All `unsafe` lives here.

use std::ffi::{c_char, CStr, CString};
use std::ops::Deref;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use duckdb::core::{DataChunkHandle, FlatVector, LogicalTypeHandle, LogicalTypeId};
use duckdb::ffi;

use super::gate::ReadGate;

/// An error from the C API, with what qyl was doing.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {message}")]
pub struct DuckError {
    pub context: String,
    pub message: String,
}

fn err(context: impl Into<String>, message: impl Into<String>) -> DuckError {
    DuckError {
        context: context.into(),
        message: message.into(),
    }
}

fn cstring(s: &str, what: &str) -> Result<CString, DuckError> {
    CString::new(s).map_err(|_| err(what, "contains a NUL byte"))
}

/// An open database; closed when the last `Arc` (and so the last
/// connection made from it) is dropped.
pub struct Database {
    raw: ffi::duckdb_database,
    /// The attached database every connection `USE`s, when the file is
    /// attached to an in-memory one (see [`Database::open_without_wal`]).
    catalog: Option<String>,
    /// That file.
    file_without_wal: Option<std::path::PathBuf>,
    /// The file's layout, when it is one of qyl's (see
    /// [`Database::open_without_wal`]).
    layout: Option<FileLayout>,
    /// Keeps reads out while the writer commits or checkpoints (see
    /// `storage::gate`).
    read_gate: ReadGate,
    /// DuckDB's `memory_limit` in bytes, when qyl set one.
    memory_limit: Option<u64>,
}

// SAFETY: a duckdb_database is internally synchronised; DuckDB documents it
// as usable from any thread, with one connection per thread.
unsafe impl Send for Database {}
unsafe impl Sync for Database {}

/// How a database file is cut into blocks and row groups (fixed per file
/// for blocks, per attach for row groups); see
/// [`Database::open_without_wal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLayout {
    pub block_size: u64,
    pub row_group_rows: u64,
}

impl FileLayout {
    /// qyl's layout for a new file. A row group of 32,768 rows is what the
    /// writer commits at a high rate (`ingest.batch_rows`), so each such
    /// commit is written compressed once, straight into the file. Against
    /// 8,192-row groups (`COMPACT_8K`), a commit and its checkpoint cost
    /// less CPU per span, the file is a fifth smaller, and DuckDB keeps
    /// fewer row group objects in memory (BENCHMARKS.md). Blocks of 64 KiB
    /// keep the space a row group leaves in its last block small: with
    /// DuckDB's 256 KiB blocks, 8,192-row groups made the file about twice
    /// as large.
    pub const COMPACT: FileLayout = FileLayout {
        block_size: 65_536,
        row_group_rows: 32_768,
    };

    /// The layout of files made by qyl from 2026-12-03 (436b68c) until
    /// `COMPACT`: the same blocks, 8,192-row groups. Such a file keeps its
    /// row groups, because a checkpoint under larger ones merges every old
    /// group into new ones at once: a rewrite of the whole file while the
    /// writer waits.
    pub const COMPACT_8K: FileLayout = FileLayout {
        block_size: 65_536,
        row_group_rows: 8_192,
    };
}

/// The table in which a file made with 64 KiB blocks records its row
/// group size (DuckDB keeps only the block size in the file).
const LAYOUT_TABLE: &str = "qyl_file_layout";

impl Database {
    /// Opens `path` (or `:memory:`) with the given `SET`-style options.
    pub fn open(path: &str, options: &[(&str, String)]) -> Result<Arc<Database>, DuckError> {
        let ctx = format!("opening {path}");
        let c_path = cstring(path, &ctx)?;
        let c_options = options
            .iter()
            .map(|(n, v)| Ok((cstring(n, &ctx)?, cstring(v, &ctx)?)))
            .collect::<Result<Vec<_>, DuckError>>()?;
        // SAFETY: config is created, used and destroyed here; every pointer
        // passed is a valid NUL-terminated string that outlives the call.
        unsafe {
            let mut config: ffi::duckdb_config = ptr::null_mut();
            if ffi::duckdb_create_config(&mut config) != ffi::DuckDBSuccess {
                return Err(err(ctx, "could not create a configuration"));
            }
            for ((n, v), (name, value)) in c_options.iter().zip(options) {
                if ffi::duckdb_set_config(config, n.as_ptr(), v.as_ptr()) != ffi::DuckDBSuccess {
                    ffi::duckdb_destroy_config(&mut config);
                    return Err(err(ctx, format!("invalid setting {name} = {value:?}")));
                }
            }
            let mut raw: ffi::duckdb_database = ptr::null_mut();
            let mut error: *mut c_char = ptr::null_mut();
            let state = ffi::duckdb_open_ext(c_path.as_ptr(), &mut raw, config, &mut error);
            ffi::duckdb_destroy_config(&mut config);
            if state != ffi::DuckDBSuccess {
                let message = if error.is_null() {
                    "unknown error".to_string()
                } else {
                    let m = CStr::from_ptr(error).to_string_lossy().into_owned();
                    ffi::duckdb_free(error.cast());
                    m
                };
                return Err(err(ctx, message));
            }
            Ok(Arc::new(Database {
                raw,
                catalog: None,
                file_without_wal: None,
                layout: None,
                read_gate: ReadGate::default(),
                memory_limit: options
                    .iter()
                    .find(|(name, _)| *name == "memory_limit")
                    .and_then(|(_, v)| v.strip_suffix("MB")?.parse::<u64>().ok())
                    .map(|mb| mb * 1_000_000),
            }))
        }
    }

    /// Opens the file at `path` with DuckDB's write-ahead log off: an
    /// in-memory database with the file attached
    /// (`RECOVERY_MODE NO_WAL_WRITES`, which exists only as an ATTACH
    /// option) and made every connection's default. A WAL left by an
    /// earlier run is still replayed. Settings named in `after_attach` are
    /// applied once the file is attached (`enable_external_access = false`
    /// would refuse the ATTACH itself).
    ///
    /// A new file is laid out as [`FileLayout::COMPACT`]: a commit of a
    /// full row group or more is then compressed into the file as it
    /// commits (DuckDB's optimistic write), instead of being copied
    /// uncompressed into the table and compressed again by the next
    /// checkpoint. The row group size is an ATTACH option that DuckDB does
    /// not keep in the file, so qyl records it in a table of the file, and
    /// a file made with [`FileLayout::COMPACT_8K`] keeps its row groups. A
    /// file made with DuckDB's default blocks (every qyl file before
    /// 2026-12-03) keeps DuckDB's default row groups: its block size is fixed
    /// when it is made, and a small row group in a 256 KiB block leaves
    /// most of a block unused per row group.
    pub fn open_without_wal(
        path: &str,
        options: &[(&str, String)],
        after_attach: &[(&str, String)],
    ) -> Result<Arc<Database>, DuckError> {
        let mut db = Database::open(":memory:", options)?;
        let catalog = "qyl";
        let raw = db.raw_connection()?;
        let context = || format!("opening {path}");
        let attach = |layout: Option<FileLayout>| {
            let layout = layout.map_or_else(String::new, |l| {
                format!(
                    ", BLOCK_SIZE {}, ROW_GROUP_SIZE {}",
                    l.block_size, l.row_group_rows
                )
            });
            raw.execute(&format!(
                "ATTACH {} AS {catalog} (RECOVERY_MODE NO_WAL_WRITES{layout})",
                sql_text(path)
            ))
            .map_err(|e| err(context(), e.message))
        };
        let layout = match attach(Some(FileLayout::COMPACT)) {
            Ok(()) => {
                let in_context = |e: DuckError| err(context(), e.message);
                let (layout, recorded) = file_layout(&raw, catalog).map_err(in_context)?;
                if layout != FileLayout::COMPACT {
                    // Before anything is written: a checkpoint under the
                    // wrong row groups would merge the file's.
                    raw.execute(&format!("DETACH {catalog}"))?;
                    attach(Some(layout))?;
                    tracing::info!(
                        path,
                        row_group_rows = layout.row_group_rows,
                        "the database file keeps the row groups it was made with"
                    );
                }
                if !recorded {
                    record_layout(&raw, catalog, layout).map_err(in_context)?;
                }
                Some(layout)
            }
            // DuckDB refuses a block size that is not the file's.
            Err(e) if e.message.contains("block size") => {
                attach(None)?;
                tracing::info!(
                    path,
                    "the database file has DuckDB's default 256 KiB blocks; it keeps DuckDB's default row groups, and commits are compressed by checkpoints"
                );
                None
            }
            Err(e) => return Err(e),
        };
        // In order: DuckDB takes `allowed_directories` only while external
        // access is still on.
        for (name, value) in after_attach {
            raw.execute(&format!("SET GLOBAL {name} = {value}"))?;
        }
        drop(raw);
        let only =
            Arc::get_mut(&mut db).ok_or_else(|| err(context(), "database shared while opening"))?;
        only.catalog = Some(catalog.to_string());
        only.file_without_wal = Some(path.into());
        only.layout = layout;
        Ok(db)
    }

    /// The gate reads pass and commits and checkpoints close (see
    /// `storage::gate`).
    pub fn read_gate(&self) -> &ReadGate {
        &self.read_gate
    }

    /// Closes the [`ReadGate`] for a COMMIT or CHECKPOINT, interrupting
    /// reads that outlast `wait` if they hold much of DuckDB's memory
    /// (`read_memory`: [`super::gate::READ_MEMORY_SQL`] run on the closer's
    /// connection; 0 if it fails).
    fn shut_out_reads(
        &self,
        wait: Duration,
        read_memory: impl FnOnce() -> u64,
    ) -> super::gate::Closed<'_> {
        self.read_gate.close(wait, || {
            super::gate::hungry(read_memory(), self.memory_limit)
        })
    }

    /// The rows in a row group of the file's tables, when the file has one
    /// of qyl's layouts: a commit of that many rows (or a multiple) is
    /// written compressed as it commits.
    pub fn row_group_rows(&self) -> Option<u64> {
        self.layout.map(|l| l.row_group_rows)
    }

    /// The database file, when it was opened without DuckDB's WAL (and so
    /// needs the writer's journal to be durable).
    pub fn file_without_wal(&self) -> Option<&std::path::Path> {
        self.file_without_wal.as_deref()
    }

    /// A duckdb-rs connection for queries, migrations and checkpoints.
    pub fn connect(self: &Arc<Self>) -> Result<Conn, DuckError> {
        // SAFETY: `raw` is open, and `Conn` keeps this database alive for as
        // long as the connection exists (the connection is dropped first).
        let conn = unsafe { duckdb::Connection::open_from_raw(self.raw) }
            .map_err(|e| err("connecting to the database", e.to_string()))?;
        if let Some(catalog) = &self.catalog {
            conn.execute_batch(&format!("USE {catalog}"))
                .map_err(|e| err("connecting to the database", e.to_string()))?;
        }
        Ok(Conn {
            conn,
            _db: self.clone(),
        })
    }

    /// A raw connection for chunk appends (the writer's).
    pub fn raw_connection(self: &Arc<Self>) -> Result<RawConn, DuckError> {
        let mut con: ffi::duckdb_connection = ptr::null_mut();
        // SAFETY: `raw` is open; `con` is written by DuckDB on success.
        if unsafe { ffi::duckdb_connect(self.raw, &mut con) } != ffi::DuckDBSuccess {
            return Err(err("connecting to the database", "duckdb_connect failed"));
        }
        let raw = RawConn {
            con,
            _db: self.clone(),
        };
        if let Some(catalog) = &self.catalog {
            raw.execute(&format!("USE {catalog}"))?;
        }
        Ok(raw)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: every connection holds an Arc to this database, so none is
        // left when this runs.
        unsafe { ffi::duckdb_close(&mut self.raw) }
    }
}

/// A duckdb-rs connection that keeps its database open.
///
/// Clone it with [`Conn::try_clone`], never with duckdb-rs's own
/// `Connection::try_clone` (reachable through `Deref`): that clone would
/// not keep the database open.
pub struct Conn {
    conn: duckdb::Connection,
    _db: Arc<Database>,
}

impl Conn {
    /// Another connection to the same database.
    pub fn try_clone(&self) -> Result<Conn, DuckError> {
        self._db.connect()
    }

    /// The database's [`ReadGate`].
    pub fn read_gate(&self) -> &ReadGate {
        self._db.read_gate()
    }

    /// [`RawConn::shut_out_reads`] for this connection.
    pub fn shut_out_reads(&self, wait: Duration) -> super::gate::Closed<'_> {
        self._db.shut_out_reads(wait, || {
            self.query_row(super::gate::READ_MEMORY_SQL, [], |r| r.get(0))
                .unwrap_or(0)
        })
    }
}

impl Deref for Conn {
    type Target = duckdb::Connection;
    fn deref(&self) -> &duckdb::Connection {
        &self.conn
    }
}

/// The writer's raw connection: statements and chunk appenders.
pub struct RawConn {
    con: ffi::duckdb_connection,
    _db: Arc<Database>,
}

// SAFETY: a connection may move between threads; it is used by one at a time.
unsafe impl Send for RawConn {}

impl RawConn {
    /// The database this connection belongs to.
    pub fn database(&self) -> Arc<Database> {
        self._db.clone()
    }

    /// Closes the database's [`ReadGate`] for a COMMIT or CHECKPOINT on this
    /// connection, interrupting reads that outlast `wait` if they hold much
    /// of DuckDB's memory.
    pub fn shut_out_reads(&self, wait: Duration) -> super::gate::Closed<'_> {
        self._db.shut_out_reads(wait, || {
            self.query_u64_row(super::gate::READ_MEMORY_SQL)
                .ok()
                .and_then(|row| row.first().copied())
                .unwrap_or(0)
        })
    }

    /// Runs statements that return nothing of interest (BEGIN, COMMIT…).
    pub fn execute(&self, sql: &str) -> Result<(), DuckError> {
        let c_sql = cstring(sql, sql)?;
        // SAFETY: result is zero-initialised, filled by duckdb_query and
        // destroyed by `finish`.
        unsafe {
            let mut result: ffi::duckdb_result = std::mem::zeroed();
            let state = ffi::duckdb_query(self.con, c_sql.as_ptr(), &mut result);
            finish(state, &mut result, sql)
        }
    }

    /// The first row of `sql`'s result as unsigned integers (NULL reads as
    /// 0; no row gives an empty vector): for the writer's few reads of
    /// DuckDB's own counters, which duckdb-rs's connection is not used for.
    pub fn query_u64_row(&self, sql: &str) -> Result<Vec<u64>, DuckError> {
        let c_sql = cstring(sql, sql)?;
        // SAFETY: result is zero-initialised, filled by duckdb_query, read
        // within its row and column counts, and destroyed by `finish`.
        unsafe {
            let mut result: ffi::duckdb_result = std::mem::zeroed();
            let state = ffi::duckdb_query(self.con, c_sql.as_ptr(), &mut result);
            let row = if state == ffi::DuckDBSuccess && ffi::duckdb_row_count(&mut result) > 0 {
                (0..ffi::duckdb_column_count(&mut result))
                    .map(|col| ffi::duckdb_value_uint64(&mut result, col, 0))
                    .collect()
            } else {
                Vec::new()
            };
            finish(state, &mut result, sql).map(|()| row)
        }
    }

    /// The first column of every row of `sql`'s result as unsigned
    /// integers (NULL reads as 0).
    pub fn query_u64_column(&self, sql: &str) -> Result<Vec<u64>, DuckError> {
        let c_sql = cstring(sql, sql)?;
        // SAFETY: as in `query_u64_row`; rows are read below the row count.
        unsafe {
            let mut result: ffi::duckdb_result = std::mem::zeroed();
            let state = ffi::duckdb_query(self.con, c_sql.as_ptr(), &mut result);
            let column = if state == ffi::DuckDBSuccess && ffi::duckdb_column_count(&mut result) > 0
            {
                (0..ffi::duckdb_row_count(&mut result))
                    .map(|row| ffi::duckdb_value_uint64(&mut result, 0, row))
                    .collect()
            } else {
                Vec::new()
            };
            finish(state, &mut result, sql).map(|()| column)
        }
    }

    /// Runs a statement that DuckDB spreads over its worker threads
    /// (CHECKPOINT), sleeping for `idle` whenever none of its tasks is left
    /// for this thread to take.
    ///
    /// `duckdb_query` drives such a statement by polling: while the last
    /// tasks run on worker threads, the calling thread asks for a task in a
    /// tight loop. On two cores a background checkpoint spent most of a
    /// core that way (its thread was 17% of qyl's CPU under
    /// ingest, nearly all of it in the scheduler's queue and mutexes), taken
    /// from decoding and the writer. Driving the pending result by hand
    /// takes every task this thread can run, and waits instead of polling.
    pub fn execute_without_polling(&self, sql: &str, idle: Duration) -> Result<(), DuckError> {
        let stmt = self.prepare(sql)?;
        // SAFETY: stmt is a successful prepared statement without
        // parameters; pending and result are filled by DuckDB and destroyed
        // before returning, on every path.
        unsafe {
            let mut pending: ffi::duckdb_pending_result = ptr::null_mut();
            if ffi::duckdb_pending_prepared(stmt.stmt, &mut pending) != ffi::DuckDBSuccess {
                let message = pending_error(pending);
                ffi::duckdb_destroy_pending(&mut pending);
                return Err(err(sql, message));
            }
            loop {
                match ffi::duckdb_pending_execute_task(pending) {
                    ffi::duckdb_pending_state_DUCKDB_PENDING_RESULT_READY => break,
                    ffi::duckdb_pending_state_DUCKDB_PENDING_NO_TASKS_AVAILABLE => {
                        std::thread::sleep(idle)
                    }
                    ffi::duckdb_pending_state_DUCKDB_PENDING_RESULT_NOT_READY => {}
                    _ => {
                        let message = pending_error(pending);
                        ffi::duckdb_destroy_pending(&mut pending);
                        return Err(err(sql, message));
                    }
                }
            }
            let mut result: ffi::duckdb_result = std::mem::zeroed();
            let state = ffi::duckdb_execute_pending(pending, &mut result);
            ffi::duckdb_destroy_pending(&mut pending);
            finish(state, &mut result, sql)
        }
    }

    /// Plans `sql` once, to run many times with [`RawPrepared::execute`]:
    /// the writer's per-commit statements would otherwise be parsed and
    /// planned on every commit, which for an upsert costs more than running
    /// it.
    pub fn prepare(&self, sql: &str) -> Result<RawPrepared, DuckError> {
        let c_sql = cstring(sql, sql)?;
        let mut stmt: ffi::duckdb_prepared_statement = ptr::null_mut();
        // SAFETY: stmt is filled by duckdb_prepare (also on failure, to carry
        // the error) and destroyed here on failure or by RawPrepared's Drop.
        unsafe {
            if ffi::duckdb_prepare(self.con, c_sql.as_ptr(), &mut stmt) != ffi::DuckDBSuccess {
                let e = ffi::duckdb_prepare_error(stmt);
                let message = c_message(e, "unknown error");
                ffi::duckdb_destroy_prepare(&mut stmt);
                return Err(err(sql, message));
            }
        }
        Ok(RawPrepared {
            stmt,
            sql: sql.to_string(),
        })
    }

    /// Appends `chunks` to `table` in the open transaction: the derived
    /// tables' whole write when their rows are built as data chunks.
    pub fn append_chunks(&self, table: &str, chunks: &[Chunk]) -> Result<(), DuckError> {
        let mut app = self.appender(table)?;
        for chunk in chunks {
            app.append(chunk)?;
        }
        app.flush()
    }

    /// An appender for `table`, valid until dropped.
    pub fn appender(&self, table: &str) -> Result<ChunkAppender<'_>, DuckError> {
        let c_table = cstring(table, table)?;
        let mut app: ffi::duckdb_appender = ptr::null_mut();
        // SAFETY: the connection is open; on failure the appender (if any)
        // is destroyed before returning.
        unsafe {
            if ffi::duckdb_appender_create(self.con, ptr::null(), c_table.as_ptr(), &mut app)
                != ffi::DuckDBSuccess
            {
                let message = appender_error(app);
                ffi::duckdb_appender_destroy(&mut app);
                return Err(err(format!("appending to {table}"), message));
            }
        }
        Ok(ChunkAppender {
            app,
            table: table.to_string(),
            _conn: self,
        })
    }
}

/// The layout of a file with 64 KiB blocks, attached as `catalog`, and
/// whether the file records it. A file without the record is new, and
/// gets [`FileLayout::COMPACT`], or was made before the record, with
/// [`FileLayout::COMPACT_8K`].
fn file_layout(raw: &RawConn, catalog: &str) -> Result<(FileLayout, bool), DuckError> {
    let tables_named = |filter: &str| {
        raw.query_u64_row(&format!(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = {} {filter}",
            sql_text(catalog)
        ))
        .map(|row| row.first().copied().unwrap_or(0))
    };
    if tables_named(&format!("AND table_name = '{LAYOUT_TABLE}'"))? > 0 {
        let rows = raw.query_u64_column(&format!(
            "SELECT row_group_rows FROM {catalog}.main.{LAYOUT_TABLE}"
        ))?;
        let row_group_rows = rows.first().copied().filter(|r| *r > 0).ok_or_else(|| {
            err(
                "reading the file's layout",
                format!("{LAYOUT_TABLE} has no row group size"),
            )
        })?;
        let layout = FileLayout {
            block_size: FileLayout::COMPACT.block_size,
            row_group_rows,
        };
        return Ok((layout, true));
    }
    let layout = if tables_named("")? > 0 {
        FileLayout::COMPACT_8K
    } else {
        FileLayout::COMPACT
    };
    Ok((layout, false))
}

/// Records `layout` in the file attached as `catalog` (under that layout),
/// and checkpoints: without a WAL nothing else makes it durable.
fn record_layout(raw: &RawConn, catalog: &str, layout: FileLayout) -> Result<(), DuckError> {
    raw.execute(&format!(
        "CREATE TABLE {catalog}.main.{LAYOUT_TABLE} (row_group_rows BIGINT NOT NULL);
         INSERT INTO {catalog}.main.{LAYOUT_TABLE} VALUES ({});
         CHECKPOINT {catalog}",
        layout.row_group_rows
    ))
}

/// A SQL string literal (DuckDB: quotes doubled, no backslash escapes; NUL
/// dropped), for the few statements the writer builds as text.
pub fn sql_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for ch in s.chars().filter(|c| *c != '\0') {
        if ch == '\'' {
            out.push('\'');
        }
        out.push(ch);
    }
    out.push('\'');
    out
}

/// What kind of statement a piece of SQL is, as DuckDB's parser sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    Select,
    /// Anything else, named as DuckDB names the statement type.
    Other(&'static str),
}

fn statement_kind(t: ffi::duckdb_statement_type) -> StatementKind {
    #[allow(non_upper_case_globals)]
    let name = match t {
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_SELECT => return StatementKind::Select,
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_INSERT => "INSERT",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_UPDATE => "UPDATE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXPLAIN => "EXPLAIN",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DELETE => "DELETE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_PREPARE => "PREPARE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CREATE => "CREATE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXECUTE => "EXECUTE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_ALTER => "ALTER",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_TRANSACTION => "a transaction statement",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_COPY => "COPY",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_ANALYZE => "ANALYZE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_VARIABLE_SET => "SET VARIABLE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CREATE_FUNC => "CREATE FUNCTION",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DROP => "DROP",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXPORT => "EXPORT",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_PRAGMA => "PRAGMA",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_VACUUM => "VACUUM",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CALL => "CALL",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_SET => "SET",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_LOAD => "LOAD",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_ATTACH => "ATTACH",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DETACH => "DETACH",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_COPY_DATABASE => "COPY DATABASE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_MERGE_INTO => "MERGE INTO",
        _ => "a statement that is not a query",
    };
    StatementKind::Other(name)
}

impl RawConn {
    /// Parses and binds `sql`, which must be exactly one statement, without
    /// running it, and says what kind of statement it is. Errors are DuckDB's
    /// parser or binder messages, or how many statements there were.
    pub fn statement_kind(&self, sql: &str) -> Result<StatementKind, DuckError> {
        let c_sql = cstring(sql, "the SQL")?;
        let kind;
        // SAFETY: the extracted statements and each prepared statement are
        // destroyed on every path; error strings are copied before that.
        unsafe {
            let mut extracted: ffi::duckdb_extracted_statements = ptr::null_mut();
            let n = ffi::duckdb_extract_statements(self.con, c_sql.as_ptr(), &mut extracted);
            if n == 0 {
                let e = ffi::duckdb_extract_statements_error(extracted);
                let message = c_message(e, "no statement found");
                ffi::duckdb_destroy_extracted(&mut extracted);
                return Err(err("parsing the SQL", message));
            }
            if n > 1 {
                ffi::duckdb_destroy_extracted(&mut extracted);
                return Err(err(
                    "checking the SQL",
                    format!("expected one statement, found {n}"),
                ));
            }
            {
                let i = 0;
                let mut prepared: ffi::duckdb_prepared_statement = ptr::null_mut();
                let state =
                    ffi::duckdb_prepare_extracted_statement(self.con, extracted, i, &mut prepared);
                if state != ffi::DuckDBSuccess {
                    let e = ffi::duckdb_prepare_error(prepared);
                    let message = c_message(e, "could not prepare the statement");
                    ffi::duckdb_destroy_prepare(&mut prepared);
                    ffi::duckdb_destroy_extracted(&mut extracted);
                    return Err(err("preparing the SQL", message));
                }
                kind = statement_kind(ffi::duckdb_prepared_statement_type(prepared));
                ffi::duckdb_destroy_prepare(&mut prepared);
            }
            ffi::duckdb_destroy_extracted(&mut extracted);
        }
        Ok(kind)
    }
}

/// A statement prepared on the writer's connection (no parameters).
pub struct RawPrepared {
    stmt: ffi::duckdb_prepared_statement,
    sql: String,
}

// SAFETY: like the connection it was prepared on, used by one thread at a
// time; DuckDB keeps the connection's context alive for it.
unsafe impl Send for RawPrepared {}

impl RawPrepared {
    pub fn execute(&self) -> Result<(), DuckError> {
        // SAFETY: as in RawConn::execute; stmt is live until Drop.
        unsafe {
            let mut result: ffi::duckdb_result = std::mem::zeroed();
            let state = ffi::duckdb_execute_prepared(self.stmt, &mut result);
            finish(state, &mut result, &self.sql)
        }
    }
}

/// The outcome of a statement whose rows are not wanted; destroys `result`
/// after copying its error, if any.
///
/// # Safety
/// `result` must have been filled by a DuckDB query or execute call.
unsafe fn finish(
    state: ffi::duckdb_state,
    result: &mut ffi::duckdb_result,
    sql: &str,
) -> Result<(), DuckError> {
    let outcome = if state == ffi::DuckDBSuccess {
        Ok(())
    } else {
        let e = unsafe { ffi::duckdb_result_error(result) };
        Err(err(sql, unsafe { c_message(e, "unknown error") }))
    };
    unsafe { ffi::duckdb_destroy_result(result) };
    outcome
}

impl Drop for RawPrepared {
    fn drop(&mut self) {
        // SAFETY: stmt came from a successful duckdb_prepare.
        unsafe { ffi::duckdb_destroy_prepare(&mut self.stmt) }
    }
}

impl Drop for RawConn {
    fn drop(&mut self) {
        // SAFETY: appenders borrow the connection, so none is alive here.
        unsafe { ffi::duckdb_disconnect(&mut self.con) }
    }
}

/// # Safety
/// `app` must be null or a live appender.
unsafe fn appender_error(app: ffi::duckdb_appender) -> String {
    if app.is_null() {
        return "could not create the appender".into();
    }
    unsafe { c_message(ffi::duckdb_appender_error(app), "unknown appender error") }
}

/// The error message a pending result carries.
///
/// # Safety
/// `pending` must be null or a pending result not yet destroyed.
unsafe fn pending_error(pending: ffi::duckdb_pending_result) -> String {
    if pending.is_null() {
        return "unknown error".to_string();
    }
    unsafe { c_message(ffi::duckdb_pending_error(pending), "unknown error") }
}

/// A message DuckDB returned as a C string, or `default` for none.
///
/// # Safety
/// `e` must be null or a NUL-terminated string that outlives this call.
unsafe fn c_message(e: *const c_char, default: &str) -> String {
    if e.is_null() {
        default.to_string()
    } else {
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

/// Appends whole data chunks to one table.
pub struct ChunkAppender<'c> {
    app: ffi::duckdb_appender,
    table: String,
    _conn: &'c RawConn,
}

impl ChunkAppender<'_> {
    pub fn append(&mut self, chunk: &Chunk) -> Result<(), DuckError> {
        // SAFETY: both handles are live; DuckDB copies the chunk's data.
        let state = unsafe { ffi::duckdb_append_data_chunk(self.app, chunk.0.get_ptr()) };
        self.check(state)
    }

    /// Appends `rows` (of any number of batches) in chunks of DuckDB's
    /// vector size, filled and appended one at a time: a chunk's vectors are
    /// sized for 2,048 rows whatever it holds, so a chunk per export of a few
    /// hundred rows, or every chunk of a commit at once, would hold several
    /// times the rows' size.
    pub fn append_rows<R>(
        &mut self,
        cols: &'static [Col],
        rows: impl IntoIterator<Item = R>,
        mut put: impl FnMut(&mut ChunkBuilder<'_>, R),
    ) -> Result<(), DuckError> {
        let mut rows = rows.into_iter();
        while let Some(chunk) = Chunk::fill_next(cols, &mut rows, &mut put) {
            self.append(&chunk)?;
        }
        Ok(())
    }

    /// Writes buffered rows into the transaction. Constraint violations are
    /// reported here, so always flush before committing.
    pub fn flush(&mut self) -> Result<(), DuckError> {
        // SAFETY: the appender is live.
        let state = unsafe { ffi::duckdb_appender_flush(self.app) };
        self.check(state)
    }

    fn check(&self, state: ffi::duckdb_state) -> Result<(), DuckError> {
        if state == ffi::DuckDBSuccess {
            Ok(())
        } else {
            // SAFETY: the appender is live.
            Err(err(format!("appending to {}", self.table), unsafe {
                appender_error(self.app)
            }))
        }
    }
}

impl Drop for ChunkAppender<'_> {
    fn drop(&mut self) {
        // SAFETY: destroying discards anything not flushed; callers flush
        // (and see errors) before this.
        unsafe {
            ffi::duckdb_appender_destroy(&mut self.app);
        }
    }
}

/// Column types of a table, in order, for building chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Varchar,
    UHugeint,
    UBigint,
    Bigint,
    Integer,
    UInteger,
    Double,
    Boolean,
}

/// The rows of one data chunk being filled. Values are written in column
/// order per row with the typed `put_*` methods.
pub struct ChunkBuilder<'a> {
    vectors: Vec<FlatVector<'a>>,
    raw_vectors: Vec<ffi::duckdb_vector>,
    types: &'static [Col],
    row: usize,
    col: usize,
}

/// Rows per chunk: DuckDB's vector size.
fn chunk_capacity() -> usize {
    // SAFETY: a pure function of the library build.
    unsafe { ffi::duckdb_vector_size() as usize }
}

impl Col {
    fn type_id(self) -> LogicalTypeId {
        match self {
            Col::Varchar => LogicalTypeId::Varchar,
            Col::UHugeint => LogicalTypeId::UHugeint,
            Col::UBigint => LogicalTypeId::UBigint,
            Col::Bigint => LogicalTypeId::Bigint,
            Col::Integer => LogicalTypeId::Integer,
            Col::UInteger => LogicalTypeId::UInteger,
            Col::Double => LogicalTypeId::Double,
            Col::Boolean => LogicalTypeId::Boolean,
        }
    }
}

fn new_chunk(cols: &[Col]) -> DataChunkHandle {
    let types: Vec<LogicalTypeHandle> = cols
        .iter()
        .map(|c| LogicalTypeHandle::from(c.type_id()))
        .collect();
    DataChunkHandle::new(&types)
}

impl<'a> ChunkBuilder<'a> {
    /// A builder over `chunk`, which must have been made by
    /// `new_chunk(types)`.
    fn new(chunk: &'a DataChunkHandle, types: &'static [Col]) -> Self {
        assert_eq!(
            chunk.num_columns(),
            types.len(),
            "chunk and column list differ"
        );
        let vectors: Vec<FlatVector<'a>> = (0..chunk.num_columns())
            .map(|i| chunk.flat_vector(i))
            .collect();
        // The typed setters trust `types`; make sure it is the chunk's truth.
        for (i, (vector, col)) in vectors.iter().zip(types).enumerate() {
            assert_eq!(
                vector.logical_type().id(),
                col.type_id(),
                "column {i} of the chunk is not {col:?}"
            );
        }
        ChunkBuilder {
            vectors,
            // SAFETY: the chunk is live for 'a and has these columns.
            raw_vectors: (0..chunk.num_columns())
                .map(|i| unsafe { ffi::duckdb_data_chunk_get_vector(chunk.get_ptr(), i as u64) })
                .collect(),
            types,
            row: 0,
            col: 0,
        }
    }

    /// Starts the next row (the first call starts row 0).
    pub fn next_row(&mut self, row: usize) {
        assert!(row < chunk_capacity(), "row {row} is past the chunk");
        self.row = row;
        self.col = 0;
    }

    fn vector(&mut self) -> &mut FlatVector<'a> {
        let c = self.col;
        self.col += 1;
        &mut self.vectors[c]
    }

    pub fn str(&mut self, v: &str) {
        let declared = self.types[self.col];
        assert_eq!(
            declared,
            Col::Varchar,
            "column {} is {declared:?}",
            self.col
        );
        assert!(self.row < chunk_capacity());
        let vector = self.raw_vectors[self.col];
        self.col += 1;
        // SAFETY: a VARCHAR vector of the live chunk, a row within its
        // capacity, and a &str, which is valid UTF-8, so DuckDB's own
        // validation (a measurable share of the writer's time) can be skipped.
        unsafe {
            ffi::duckdb_unsafe_vector_assign_string_element_len(
                vector,
                self.row as u64,
                v.as_ptr().cast(),
                v.len() as u64,
            )
        }
    }

    pub fn opt_str(&mut self, v: Option<&str>) {
        match v {
            Some(s) => self.str(s),
            None => self.null(),
        }
    }

    pub fn null(&mut self) {
        let row = self.row;
        self.vector().set_null(row);
    }

    /// Writes a fixed-width value. The column's declared type is checked
    /// first, so a column list out of step with the code panics instead of
    /// writing past a vector.
    fn put<T: Copy>(&mut self, expected: Col, v: T) {
        let declared = self.types[self.col];
        assert_eq!(declared, expected, "column {} is {declared:?}", self.col);
        let row = self.row;
        let vector = self.vector();
        assert!(row < vector.capacity());
        // SAFETY: `expected` names the DuckDB type whose physical storage
        // is T (see the setters), `new` checked that the vector has that
        // type, and the row is within the vector's capacity. Written through
        // a raw pointer: the buffer may hold uninitialised bytes.
        unsafe { vector.as_mut_ptr::<T>().add(row).write(v) };
    }

    pub fn u64(&mut self, v: u64) {
        self.put(Col::UBigint, v)
    }
    /// DuckDB's `uhugeint_t` is `{ uint64_t lower; uint64_t upper; }`.
    pub fn u128(&mut self, v: u128) {
        self.put(Col::UHugeint, [v as u64, (v >> 64) as u64])
    }
    pub fn i32(&mut self, v: i32) {
        self.put(Col::Integer, v)
    }
    pub fn u32(&mut self, v: u32) {
        self.put(Col::UInteger, v)
    }
    pub fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => self.put(Col::UBigint, v),
            None => self.null(),
        }
    }
    pub fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.put(Col::Bigint, v),
            None => self.null(),
        }
    }
    pub fn opt_f64(&mut self, v: Option<f64>) {
        match v {
            Some(v) => self.put(Col::Double, v),
            None => self.null(),
        }
    }
    pub fn opt_bool(&mut self, v: Option<bool>) {
        match v {
            Some(v) => self.put(Col::Boolean, v),
            None => self.null(),
        }
    }
}

/// A filled data chunk that can move to the writer thread.
pub struct Chunk(DataChunkHandle);

// SAFETY: a data chunk is plain memory owned by this handle; it is built on
// one thread, then moved (never shared) to the writer thread.
unsafe impl Send for Chunk {}

impl Chunk {
    /// Fills chunks of up to `chunk_capacity()` rows from `rows`.
    pub fn fill<R>(
        cols: &'static [Col],
        rows: &[R],
        mut put: impl FnMut(&mut ChunkBuilder<'_>, &R),
    ) -> Vec<Chunk> {
        let mut rows = rows.iter();
        std::iter::from_fn(|| Chunk::fill_next(cols, &mut rows, &mut put)).collect()
    }

    /// One chunk of the next `chunk_capacity()` rows at most; `None` when
    /// `rows` is used up.
    fn fill_next<R>(
        cols: &'static [Col],
        rows: &mut impl Iterator<Item = R>,
        put: &mut impl FnMut(&mut ChunkBuilder<'_>, R),
    ) -> Option<Chunk> {
        let mut rows = rows.take(chunk_capacity()).peekable();
        rows.peek()?;
        let chunk = new_chunk(cols);
        let mut len = 0;
        {
            let mut b = ChunkBuilder::new(&chunk, cols);
            for (i, row) in rows.enumerate() {
                b.next_row(i);
                put(&mut b, row);
                len = i + 1;
            }
        }
        chunk.set_len(len);
        Some(Chunk(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_size(db: &Arc<Database>) -> i64 {
        db.connect()
            .unwrap()
            .query_row(
                "SELECT block_size FROM pragma_database_size() WHERE database_name = current_database()",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// A new file gets qyl's layout; a file made with DuckDB's default
    /// blocks (as every qyl file was before) still opens, keeps its blocks
    /// and its rows, and takes new ones.
    #[test]
    fn new_files_get_the_compact_layout_and_old_files_still_open() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.duckdb");
        let db = Database::open_without_wal(new.to_str().unwrap(), &[], &[]).unwrap();
        assert_eq!(block_size(&db) as u64, FileLayout::COMPACT.block_size);
        assert_eq!(
            db.row_group_rows(),
            Some(FileLayout::COMPACT.row_group_rows)
        );
        drop(db);
        // Reopened: the file's block size is the one asked for.
        let db = Database::open_without_wal(new.to_str().unwrap(), &[], &[]).unwrap();
        assert_eq!(block_size(&db) as u64, FileLayout::COMPACT.block_size);
        assert_eq!(
            db.row_group_rows(),
            Some(FileLayout::COMPACT.row_group_rows)
        );
        drop(db);

        let old = dir.path().join("old.duckdb");
        let db = Database::open(old.to_str().unwrap(), &[]).unwrap();
        let raw = db.raw_connection().unwrap();
        raw.execute("CREATE TABLE t AS SELECT range AS i FROM range(1000)")
            .unwrap();
        raw.execute("CHECKPOINT").unwrap();
        drop(raw);
        drop(db);
        let db = Database::open_without_wal(old.to_str().unwrap(), &[], &[]).unwrap();
        assert_eq!(block_size(&db), 262_144);
        assert_eq!(db.row_group_rows(), None);
        let raw = db.raw_connection().unwrap();
        raw.execute("INSERT INTO t SELECT range FROM range(1000, 1500)")
            .unwrap();
        raw.execute("CHECKPOINT").unwrap();
        let n: i64 = db
            .connect()
            .unwrap()
            .query_row("SELECT count(DISTINCT i) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1500);
    }

    /// The sizes of the row groups of table `t`, in order.
    fn row_groups(db: &Arc<Database>) -> Vec<i64> {
        let conn = db.connect().unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT max(start + count) - min(start) FROM pragma_storage_info('t')
                 WHERE column_name = 'i' GROUP BY row_group_id ORDER BY row_group_id",
            )
            .unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// A file made with 8,192-row groups (qyl's layout before 32,768) keeps
    /// them: under larger ones, DuckDB's next checkpoint would merge every
    /// old row group into new ones, rewriting the whole file at once.
    #[test]
    fn a_file_made_with_small_row_groups_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("8k.duckdb");
        let db = Database::open(":memory:", &[]).unwrap();
        let raw = db.raw_connection().unwrap();
        raw.execute(&format!(
            "ATTACH {} AS old (BLOCK_SIZE 65536, ROW_GROUP_SIZE 8192);
             CREATE TABLE old.t AS SELECT range AS i FROM range(4 * 8192);
             CHECKPOINT old",
            sql_text(path.to_str().unwrap())
        ))
        .unwrap();
        drop(raw);
        drop(db);

        for _ in 0..2 {
            let db = Database::open_without_wal(path.to_str().unwrap(), &[], &[]).unwrap();
            assert_eq!(db.row_group_rows(), Some(8_192));
            drop(db);
        }
        let db = Database::open_without_wal(path.to_str().unwrap(), &[], &[]).unwrap();
        let raw = db.raw_connection().unwrap();
        raw.execute("INSERT INTO t SELECT range FROM range(4 * 8192, 8 * 8192); CHECKPOINT")
            .unwrap();
        assert_eq!(row_groups(&db), vec![8_192; 8]);
        drop(raw);
        drop(db);

        // A new file's row groups are the compact layout's.
        let new = dir.path().join("new.duckdb");
        let db = Database::open_without_wal(new.to_str().unwrap(), &[], &[]).unwrap();
        let raw = db.raw_connection().unwrap();
        raw.execute("CREATE TABLE t AS SELECT range AS i FROM range(2 * 32_768); CHECKPOINT")
            .unwrap();
        assert_eq!(row_groups(&db), vec![32_768; 2]);
    }

    #[test]
    fn statements_run_without_polling_finish_and_report_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.duckdb");
        let db = Database::open(path.to_str().unwrap(), &[("threads", "2".to_string())]).unwrap();
        let raw = db.raw_connection().unwrap();
        let idle = Duration::from_millis(1);
        // Large enough that DuckDB splits it into tasks for its workers.
        raw.execute_without_polling(
            "CREATE TABLE t AS SELECT range AS i, range::VARCHAR AS s FROM range(3000000)",
            idle,
        )
        .unwrap();
        let wal = dir.path().join("t.duckdb.wal");
        assert!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0);
        raw.execute_without_polling("CHECKPOINT", idle).unwrap();
        assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
        let conn = db.connect().unwrap();
        let (n, sum): (i64, i64) = conn
            .query_row("SELECT count(*), sum(i)::BIGINT FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((n, sum), (3_000_000, 3_000_000 * 2_999_999 / 2));

        let e = raw
            .execute_without_polling("CHECKPOINT no_such_database", idle)
            .unwrap_err();
        assert!(e.to_string().contains("no_such_database"), "{e}");
        let e = raw
            .execute_without_polling("SELECT 1 / 0::INTEGER + 'x'::INTEGER", idle)
            .unwrap_err();
        assert!(e.to_string().contains("Conversion"), "{e}");
    }
}
