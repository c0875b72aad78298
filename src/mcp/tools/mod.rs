//! The tools, one router per subject; `QylMcp::new` adds them together.
//! Each reads through the [`Store`](crate::storage::Store) exactly as the
//! REST handler for the same data does, and changes go through the writer.

pub(crate) mod changes;
mod data;
pub(crate) mod errors;
mod genai;
mod releases;
mod traces;

pub(super) use errors::ErrorIdArgs;
pub(super) use genai::{GenAiStatsArgs, ListSessionsArgs};
