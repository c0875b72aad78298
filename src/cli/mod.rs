//! The client commands: `qyl watch`, `qyl query` and `qyl healthcheck` talk
//! to a running qyl over its HTTP API, like the dashboard does, so they work
//! against a remote qyl or one in a container as well as a local one. None
//! of them opens the database.
//!
//! - `client`: where qyl is (`--url`, `QYL_URL`, else the local
//!   configuration's port) and its token; JSON calls with the server's
//!   message on failure.
//! - `watch`: the live terminal view over `/api/v1/live`.
//! - `query`: SQL and named shortcuts, printed as a table, JSON or CSV.
//! - `healthcheck`: `/health/ready` as an exit code, for container
//!   HEALTHCHECKs that have no curl.

pub mod client;
pub mod healthcheck;
pub mod query;
pub mod watch;
