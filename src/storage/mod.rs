//! Everything that touches DuckDB. No other module writes SQL.
//!
//! `open` creates or opens the database file and runs the migrations;
//! `writer` owns the single write connection and the batching queue in front
//! of it. Read-side queries arrive with the query API.

pub mod schema;
pub mod writer;

use std::path::{Path, PathBuf};

use duckdb::{Config, Connection};

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
    #[error("creating {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
}

/// Opens (or creates) the database and brings its schema up to date.
///
/// Automatic checkpoints are effectively disabled: they stall the committing
/// connection for most of a second, which would stall every export waiting on
/// that commit. The writer checkpoints from its own thread between batches
/// instead (see `writer`).
pub fn open(opts: &StorageOptions) -> Result<Connection, StorageError> {
    let mut config = Config::default();
    let ctx = |what: &str| format!("configuring DuckDB ({what})");
    config = config
        .with("checkpoint_threshold", "16GB")
        .map_err(|e| StorageError::sql(ctx("checkpoint_threshold"), e))?;
    if opts.memory_limit_mb > 0 {
        config = config
            .max_memory(&format!("{}MB", opts.memory_limit_mb))
            .map_err(|e| StorageError::sql(ctx("memory_limit"), e))?;
    }
    if opts.threads > 0 {
        config = config
            .threads(opts.threads as i64)
            .map_err(|e| StorageError::sql(ctx("threads"), e))?;
    }
    let conn = if opts.path == ":memory:" {
        Connection::open_in_memory_with_flags(config)
    } else {
        let path = Path::new(&opts.path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        Connection::open_with_flags(path, config)
    }
    .map_err(|e| StorageError::sql(format!("opening {}", opts.path), e))?;
    schema::migrate(&conn)?;
    Ok(conn)
}
