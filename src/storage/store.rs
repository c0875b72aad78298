//! The one read interface: every surface that shows stored data (REST, MCP,
//! the Lua runtime, the dashboard through REST) calls these methods, so a
//! query and its meaning exist once. Each method runs on the read pool with
//! its deadline.

use std::sync::Arc;
use std::time::Duration;

use super::duck::Database;
use super::reader::{QueryError, ReadPool};

pub struct Store {
    pool: ReadPool,
    path: String,
}

impl Store {
    /// A store reading `db` (stored at `path`, or `:memory:`) through
    /// `pool_size` connections, each query limited to `timeout`.
    pub fn new(db: Arc<Database>, path: &str, pool_size: usize, timeout: Duration) -> Store {
        Store {
            pool: ReadPool::new(db, pool_size, timeout),
            path: path.to_string(),
        }
    }

    /// The database file, or `:memory:`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn pool(&self) -> &ReadPool {
        &self.pool
    }

    /// True when a read connection answers a trivial query.
    pub async fn ping(&self) -> Result<(), QueryError> {
        self.pool
            .run_within(Duration::from_secs(2), |c| {
                c.execute_batch("SELECT 1")
                    .map_err(|e| QueryError::sql("pinging the database", e))
            })
            .await
    }
}
