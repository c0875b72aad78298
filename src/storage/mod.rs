//! Everything that touches DuckDB. No other module writes SQL.
//!
//! `open` creates or opens the database file and runs the migrations;
//! `writer` owns the single write connection, the batching queue in front
//! of it and (`writer::derived`) the summary tables it keeps; `reader` is
//! the bounded pool of read connections and `store` the one read interface
//! built on it; `retention` deletes old data in the background (on a
//! connection of its own, see there why).

pub mod duck;
pub mod ids;
pub mod queries;
pub mod reader;
pub mod retention;
pub mod schema;
pub mod store;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use duck::{Conn, Database, DuckError};
pub use reader::QueryError;
pub use store::Store;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{context}: {source}")]
    Sql {
        context: String,
        #[source]
        source: duckdb::Error,
    },
    #[error(
        "the database has schema version {found}, newer than this qyl knows ({known}); upgrade qyl"
    )]
    TooNew { found: u32, known: u32 },
    #[error(transparent)]
    Duck(#[from] DuckError),
    #[error(transparent)]
    Journal(#[from] writer::JournalError),
    #[error("creating {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Starts one of storage's own threads (writer, journal, prepare, reaper,
/// retention) under `name`, which is how profilers and `/proc` show it.
pub(crate) fn spawn_thread(
    name: &str,
    run: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, StorageError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(run)
        .map_err(|source| StorageError::Dir {
            path: format!("{name} thread").into(),
            source,
        })
}

impl StorageError {
    pub fn sql(context: impl Into<String>, source: duckdb::Error) -> Self {
        StorageError::Sql {
            context: context.into(),
            source,
        }
    }
}

/// How the database is opened.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// A file path, or `:memory:`.
    pub path: String,
    /// DuckDB's `memory_limit` in MiB; 0 keeps DuckDB's default (80% of RAM).
    pub memory_limit_mb: u64,
    /// DuckDB's worker threads; 0 keeps DuckDB's default (one per core).
    pub threads: u64,
}

impl StorageOptions {
    pub fn in_memory() -> Self {
        StorageOptions {
            path: ":memory:".into(),
            memory_limit_mb: 0,
            threads: 0,
        }
    }

    /// A database file `q.duckdb` in `dir`, DuckDB's defaults otherwise.
    pub fn file_in(dir: &std::path::Path) -> Self {
        StorageOptions {
            path: dir.join("q.duckdb").to_string_lossy().into_owned(),
            ..StorageOptions::in_memory()
        }
    }
}

/// Opens (or creates) the database and brings its schema up to date.
///
/// A file is attached with DuckDB's write-ahead log off; the writer keeps
/// its own journal (`writer::journal`), which is what lets an export be
/// answered before the commit a checkpoint may be holding up.
///
/// Automatic checkpoints are effectively disabled: they would stall the
/// committing connection at a moment of DuckDB's choosing. The writer
/// checkpoints between its own transactions instead (see
/// `writer::checkpoint`).
pub fn open(opts: &StorageOptions) -> Result<Arc<Database>, StorageError> {
    // External access off: qyl never reads or writes files through SQL, and
    // it keeps user SQL (POST /api/v1/sql) away from the filesystem.
    // Extension autoloading and autoinstalling off: a query naming a
    // function of an extension (json, icu…) must fail clearly rather than
    // make qyl download code at run time (containers and closed networks
    // have no route out, and what runs should be what was shipped).
    // Allocator background threads: DuckDB's allocator keeps the pages a
    // query or a checkpoint freed until a later allocation on the same
    // thread returns them, so an idle qyl held what its busiest moment
    // used (473 MB against 258 MB at rest on a file of 13 M spans);
    // jemalloc's background threads return them within seconds.
    let mut settings = vec![
        ("allocator_background_threads", "true".to_string()),
        ("checkpoint_threshold", "16GB".to_string()),
        ("enable_external_access", "false".to_string()),
        ("autoinstall_known_extensions", "false".to_string()),
        ("autoload_known_extensions", "false".to_string()),
    ];
    if opts.memory_limit_mb > 0 {
        settings.push(("memory_limit", format!("{}MB", opts.memory_limit_mb)));
    }
    if opts.threads > 0 {
        settings.push(("threads", opts.threads.to_string()));
    }
    if opts.path != ":memory:" {
        let path = Path::new(&opts.path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
    }
    if opts.path == ":memory:" {
        let db = Database::open(&opts.path, &settings)?;
        let conn = db.connect()?;
        schema::migrate(&conn)?;
        return Ok(db);
    }
    // A file runs without DuckDB's WAL: the writer journals every batch
    // itself (see `writer::journal`).
    settings.retain(|(n, _)| *n != "enable_external_access");
    // Where a query larger than the memory limit spills: beside the file,
    // as DuckDB does for a file it opens itself (the in-memory database
    // the file is attached to would spill to `.tmp` in the working
    // directory).
    settings.push(("temp_directory", format!("{}.tmp", opts.path)));
    let db = Database::open_without_wal(
        &opts.path,
        &settings,
        &[("enable_external_access", "false".to_string())],
    )?;
    let conn = db.connect()?;
    let before = schema::current_version(&conn)?;
    let after = schema::migrate(&conn)?;
    if after != before {
        // No WAL holds the migrations: write them to the file now.
        conn.execute_batch("CHECKPOINT")
            .map_err(|e| StorageError::sql("checkpointing after the migrations", e))?;
    }
    Ok(db)
}
