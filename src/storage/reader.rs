//! The read side: a bounded pool of DuckDB connections that REST, MCP and the
//! Lua runtime share, and the [`Store`] every one of them queries through.
//!
//! Queries run on tokio's blocking threads, never on the async workers, and
//! never on the writer's connection: DuckDB's MVCC lets a read see the last
//! commit while the writer keeps appending. Each query has a deadline; when
//! it passes, the connection is interrupted (repeatedly, so an interrupt that
//! lands between two statements is not lost) and the caller gets
//! [`QueryError::Timeout`]. A caller with a deadline of its own (a Lua
//! handler, whose queries must end with its invocation) runs its queries
//! inside [`with_deadline`], which tightens that deadline.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::duck::{Conn, Database, DuckError};
use super::writer::Visibility;

/// Why a read failed. The API maps these to HTTP statuses.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The caller asked for something malformed (bad id, bad filter, bad SQL).
    #[error("{0}")]
    Invalid(String),
    /// The query ran past its deadline and was interrupted.
    #[error("the query ran longer than {0:?} and was stopped")]
    Timeout(Duration),
    /// Every read connection stayed busy until the deadline.
    #[error("all {0} read connections are busy; retry shortly")]
    Busy(usize),
    /// Every ad-hoc SQL slot stayed busy until the deadline.
    #[error("all {0} ad-hoc SQL slots stayed busy (other SQL queries are running); retry shortly")]
    SqlBusy(usize),
    #[error("{context}: {source}")]
    Sql {
        context: String,
        #[source]
        source: duckdb::Error,
    },
    #[error(transparent)]
    Duck(#[from] DuckError),
    #[error("the query task failed: {0}")]
    Task(String),
}

impl QueryError {
    pub fn sql(context: impl Into<String>, source: duckdb::Error) -> Self {
        QueryError::Sql {
            context: context.into(),
            source,
        }
    }
}

/// Adds what was being read to a duckdb-rs error.
pub(crate) trait SqlContext<T> {
    fn ctx(self, context: &str) -> Result<T, QueryError>;
}

impl<T> SqlContext<T> for Result<T, duckdb::Error> {
    fn ctx(self, context: &str) -> Result<T, QueryError> {
        self.map_err(|e| QueryError::sql(context, e))
    }
}

tokio::task_local! {
    /// The deadline of the caller's own, for every query in its scope.
    static CALLER_DEADLINE: tokio::time::Instant;
}

/// Runs `fut` with each of its pool queries limited to `deadline` too (the
/// pool's timeout still applies): at the deadline a query is interrupted,
/// its connection returns to the pool, and it fails with
/// [`QueryError::Timeout`]. Dropping a query's future at the deadline
/// instead would leave DuckDB running it with nobody waiting.
pub async fn with_deadline<F: std::future::Future>(
    deadline: tokio::time::Instant,
    fut: F,
) -> F::Output {
    CALLER_DEADLINE.scope(deadline, fut).await
}

/// The share of the read connections that ad-hoc SQL (`POST /sql`, the
/// dashboard's console, Lua `runtime.store.sql`) may hold at once. Such
/// queries can run for seconds each; without a share of their own, a few of
/// them took every connection and a trace lookup waited for them (9 s
/// instead of 8 ms). Beyond the share they wait in line, visibly
/// ([`SqlLane::status`]), and the pages keep the other connections.
pub struct SqlLane {
    permits: Arc<Semaphore>,
    slots: usize,
    running: AtomicUsize,
    waiting: AtomicUsize,
}

/// What the SQL lane is doing, for `GET /api/v1/sql/queue`.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct SqlLaneStatus {
    /// Ad-hoc queries holding a slot now.
    pub running: usize,
    /// Ad-hoc queries waiting for a slot.
    pub waiting: usize,
    /// Slots in all (`query.sql_slots`).
    pub slots: usize,
}

/// A held SQL slot; dropping it frees the slot.
pub struct SqlSlot<'a> {
    lane: &'a SqlLane,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for SqlSlot<'_> {
    fn drop(&mut self) {
        self.lane.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl SqlLane {
    /// `slots` of a pool of `pool_size` connections; 0 means half of them
    /// (`query.sql_slots`' default). Always at least one.
    pub fn new(slots: usize, pool_size: usize) -> SqlLane {
        let slots = match slots {
            0 => pool_size / 2,
            n => n,
        }
        .max(1);
        SqlLane {
            permits: Arc::new(Semaphore::new(slots)),
            slots,
            running: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    pub fn status(&self) -> SqlLaneStatus {
        SqlLaneStatus {
            running: self.running.load(Ordering::Acquire),
            waiting: self.waiting.load(Ordering::Acquire),
            slots: self.slots,
        }
    }

    /// Waits in line for a slot, at most `wait` (or the caller's own
    /// deadline, if [`with_deadline`] set a sooner one).
    pub async fn enter(&self, wait: Duration) -> Result<SqlSlot<'_>, QueryError> {
        let wait = CALLER_DEADLINE
            .try_with(|d| d.saturating_duration_since(tokio::time::Instant::now()))
            .map_or(wait, |left| left.min(wait));
        self.waiting.fetch_add(1, Ordering::AcqRel);
        // Counted as waiting until this future ends, however it ends (a
        // client that disconnects drops it).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let waiting = Waiting(&self.waiting);
        let acquired = tokio::time::timeout(wait, self.permits.clone().acquire_owned()).await;
        let permit = match acquired {
            Ok(Ok(p)) => p,
            Ok(Err(_)) | Err(_) => return Err(QueryError::SqlBusy(self.slots)),
        };
        self.running.fetch_add(1, Ordering::AcqRel);
        drop(waiting);
        Ok(SqlSlot {
            lane: self,
            _permit: permit,
        })
    }
}

/// A bounded set of read connections.
pub struct ReadPool {
    idle: Mutex<Vec<Conn>>,
    db: Arc<Database>,
    permits: Arc<Semaphore>,
    size: usize,
    timeout: Duration,
    visibility: Option<Visibility>,
    archive_refresh: Option<super::retention::ArchiveRefresh>,
}

/// A read failed because a file the archive's views name is gone (another
/// node's retention dropped it since the views were made).
fn is_missing_file(e: &QueryError) -> bool {
    // User SQL reports DuckDB's errors as invalid input, as its own.
    let text = match e {
        QueryError::Sql { source, .. } => source.to_string(),
        QueryError::Invalid(text) => text.clone(),
        _ => return false,
    };
    text.contains("No files found")
        || text.contains("No such file")
        || text.contains("Cannot open file")
}

impl ReadPool {
    pub fn new(db: Arc<Database>, size: usize, timeout: Duration) -> ReadPool {
        let size = size.max(1);
        ReadPool {
            idle: Mutex::new(Vec::with_capacity(size)),
            db,
            permits: Arc::new(Semaphore::new(size)),
            size,
            timeout,
            visibility: None,
            archive_refresh: None,
        }
    }

    /// Reads that fail on a file gone from the archive ask for new views,
    /// so the next read succeeds instead of every read until the next
    /// retention pass.
    pub fn set_archive_refresh(&mut self, refresh: Option<super::retention::ArchiveRefresh>) {
        self.archive_refresh = refresh;
    }

    /// See [`super::Store::with_visibility`].
    pub fn set_visibility(&mut self, visibility: Option<Visibility>) {
        self.visibility = visibility;
    }

    /// Waits (at most `wait`) until every export answered so far is
    /// committed; at once without a journal.
    pub async fn settle(&self, wait: Duration) {
        if let Some(visibility) = &self.visibility {
            visibility.settle(wait).await;
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Connections in all.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `f` on a pooled connection on a blocking thread, within the
    /// pool's deadline (or the caller's, if [`with_deadline`] set a sooner
    /// one).
    pub async fn run<T, F>(&self, f: F) -> Result<T, QueryError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, QueryError> + Send + 'static,
    {
        let timeout = CALLER_DEADLINE
            .try_with(|d| d.saturating_duration_since(tokio::time::Instant::now()))
            .map_or(self.timeout, |left| left.min(self.timeout));
        self.run_within(timeout, f).await
    }

    /// [`ReadPool::run`] with a deadline of its own.
    pub async fn run_within<T, F>(&self, deadline: Duration, f: F) -> Result<T, QueryError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, QueryError> + Send + 'static,
    {
        let started = tokio::time::Instant::now();
        self.settle(deadline).await;
        let permit =
            match tokio::time::timeout(deadline, self.permits.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return Err(QueryError::Busy(self.size)),
                Err(_) => return Err(QueryError::Busy(self.size)),
            };
        let conn = match self.take_idle() {
            Some(c) => c,
            None => self.db.connect()?,
        };
        let interrupt = conn.interrupt_handle();
        let done = Arc::new(AtomicBool::new(false));
        let task = {
            let done = done.clone();
            let interrupt = interrupt.clone();
            tokio::task::spawn_blocking(move || {
                let out = {
                    // Out of DuckDB while the writer commits or checkpoints
                    // (`storage::gate`).
                    let _reading = conn.read_gate().enter(interrupt);
                    f(&conn)
                };
                done.store(true, Ordering::Release);
                (out, conn)
            })
        };
        tokio::pin!(task);
        let remaining = deadline.saturating_sub(started.elapsed());
        let (out, conn) = match tokio::time::timeout(remaining, &mut task).await {
            Ok(joined) => joined.map_err(|e| QueryError::Task(e.to_string()))?,
            Err(_) => {
                // Keep interrupting until the task gives the connection back:
                // an interrupt that arrives between statements is forgotten.
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                let joined = loop {
                    tokio::select! {
                        joined = &mut task => break joined,
                        _ = tick.tick() => {
                            if !done.load(Ordering::Acquire) {
                                interrupt.interrupt();
                            }
                        }
                    }
                };
                let (_, conn) = joined.map_err(|e| QueryError::Task(e.to_string()))?;
                self.put_idle(conn);
                drop(permit);
                return Err(QueryError::Timeout(deadline));
            }
        };
        self.put_idle(conn);
        drop(permit);
        if let (Err(e), Some(refresh)) = (&out, &self.archive_refresh) {
            if is_missing_file(e) {
                tracing::warn!(error = %e, "a read found an archived file gone; replacing the views");
                refresh.request();
            }
        }
        out
    }

    fn take_idle(&self) -> Option<Conn> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn put_idle(&self, conn: Conn) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{open, StorageOptions};

    /// A query that would run for hours.
    fn endless(c: &Conn) -> Result<i64, QueryError> {
        c.query_row(
            "SELECT count(*) FROM range(100000000000) a, range(100000) b",
            [],
            |r| r.get::<_, i64>(0),
        )
        .ctx("counting")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_queries_are_interrupted_and_the_connection_reused() {
        let db = open(&StorageOptions::in_memory()).unwrap();
        let pool = ReadPool::new(db, 1, Duration::from_millis(200));
        let err = pool.run(endless).await.unwrap_err();
        assert!(matches!(err, QueryError::Timeout(_)), "{err}");
        let n = pool
            .run(|c| {
                c.query_row("SELECT 42", [], |r| r.get::<_, i64>(0))
                    .ctx("x")
            })
            .await
            .unwrap();
        assert_eq!(n, 42);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_callers_deadline_interrupts_the_query_and_frees_its_connection() {
        let db = open(&StorageOptions::in_memory()).unwrap();
        let pool = ReadPool::new(db, 1, Duration::from_secs(600));
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        let err = with_deadline(deadline, pool.run(endless))
            .await
            .unwrap_err();
        assert!(matches!(err, QueryError::Timeout(_)), "{err}");
        // Interrupted, not abandoned: the connection is back in the pool.
        assert_eq!(pool.idle.lock().unwrap().len(), 1);
        assert_eq!(pool.permits.available_permits(), 1);
        // Outside the scope the pool's own timeout applies again.
        let n = pool
            .run(|c| {
                c.query_row("SELECT 42", [], |r| r.get::<_, i64>(0))
                    .ctx("x")
            })
            .await
            .unwrap();
        assert_eq!(n, 42);
    }
}
