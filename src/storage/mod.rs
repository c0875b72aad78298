//! Everything that touches DuckDB. No other module writes SQL.
//!
//! `open` creates or opens the database file and runs the migrations;
//! `writer` owns the single write connection, the batching queue in front
//! of it and (`writer::derived`) the summary tables it keeps; `reader` is
//! the bounded pool of read connections and `store` the one read interface
//! built on it; `retention` deletes old data in the background (on a
//! connection of its own, see there why), after `archive` has moved old
//! time windows to Parquet files when `[archive]` is set; `archive::views`
//! defines the views every read goes through, over both.

pub mod archive;
pub mod duck;
pub mod gate;
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
    #[error("archiving: {0}")]
    Archive(String),
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
    /// The cold tier, if old windows move to Parquet (files only).
    pub archive: Option<archive::ArchiveSettings>,
}

impl StorageOptions {
    pub fn in_memory() -> Self {
        StorageOptions {
            path: ":memory:".into(),
            memory_limit_mb: 0,
            threads: 0,
            archive: None,
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

/// Replaces the views reads go through: the public ones, and those over
/// both tiers ([`archive::open`], which also settles the archive after a
/// crash).
fn install_views(
    conn: &Conn,
    archive_settings: Option<&archive::ArchiveSettings>,
) -> Result<(), StorageError> {
    archive::open(conn, archive_settings)?;
    archive::views::install_public(conn)
        .map_err(|e| StorageError::sql("creating the public views", e))
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
        install_views(&conn, None)?;
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
    // The archive's directory stays reachable (its files are written and
    // read through SQL), and nothing else: user SQL can read the archive,
    // as it can the database, and no other file.
    let mut after_attach = Vec::new();
    if let Some(archive) = &opts.archive {
        let mut root = archive.root.to_string_lossy().into_owned();
        if !root.ends_with('/') {
            root.push('/');
        }
        after_attach.push((
            "allowed_directories",
            format!("[{}]", duck::sql_text(&root)),
        ));
        // Parquet footers stay in memory between reads: a read of the
        // cold tier otherwise opens every file it names.
        after_attach.push(("parquet_metadata_cache", "true".to_string()));
    }
    after_attach.push(("enable_external_access", "false".to_string()));
    let db = Database::open_without_wal(&opts.path, &settings, &after_attach)?;
    let conn = db.connect()?;
    schema::migrate(&conn)?;
    install_views(&conn, opts.archive.as_ref())?;
    // No WAL holds the migrations or the views: write them to the file now.
    conn.execute_batch("CHECKPOINT")
        .map_err(|e| StorageError::sql("checkpointing after the migrations", e))?;
    Ok(db)
}
