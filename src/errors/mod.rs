//! The error engine. Its core is pure: everything that decides *which*
//! group an error belongs to is kept free of I/O so it can be tested
//! exhaustively and run on the ingest path without touching the database.
//!
//! - [`stacktrace`]: turns the `exception.stacktrace` text of Python,
//!   Java/Kotlin, .NET, JavaScript, Go and Rust into frames, innermost first.
//! - [`inapp`]: decides which frames are the application's own code.
//! - [`normalize`]: strips what changes between builds (lines, closures,
//!   generated names, hashes) so frames compare across releases.
//! - [`paths`]: reads file paths for what survives a redeploy (package-manager
//!   stores wherever they are, file names without bundle hashes).
//! - [`message`]: turns messages into templates and removes secrets.
//! - [`fingerprint`]: picks the grouping rule and hashes its components.
//! - [`genai`]: classifies GenAI failures into a small set of error classes.
//! - [`releases`]: which of two releases is newer (semver, else deploy order).
//! - [`slo`]: which spans an SLO counts, burn rates, alert tiers, budget.
//!
//! Built on the core, with I/O at the edges:
//! - [`capture`]: finds the errors in an export (span `exception` events,
//!   exception logs, ERROR spans, GenAI failures and soft failures) on the
//!   exporting request's thread, so the writer only counts them.
//! - [`auto_resolve`]: the periodic job resolving quiet groups via the writer
//!   (quiet for `auto_resolve_after`, or since a deploy).
//! - [`deploys`]: groups around deploys: new and regressed ones, the ones a
//!   release fixes or that went quiet after it, the deploy window.
//! - [`baseline`]: the rolling week of daily counts escalation compares with.
//! - [`slo_watch`]: the periodic job turning SLO burn into level changes
//!   (ok, warning, page) stored and published via the writer.
//! - [`analysis`]: evidence about a group read through the store (exception
//!   chain, similar groups, what changed), for the MCP tools and [`triage`].
//! - [`triage`]: automatic triage reports on new, regressed and escalating
//!   groups.
//! - [`self_report`]: qyl's own panics, reported as errors of service `qyl`.
//!
//! - [`groups`]: every group in memory, which group an occurrence joins,
//!   its counts and the status workflow (the writer keeps one `GroupBook`).
//! - [`users`]: a group's distinct users as a stored sketch.
//! - [`regroup`]: moves stored groups to a new fingerprint version without
//!   splitting their history.
//!
//! Storage of groups, events, releases, SLO minutes and level changes is in
//! `storage::writer::derived` (`error_groups`, `slo_minutes`,
//! `slo_transitions`); the REST
//! surfaces in `api::errors`, `api::releases` and `api::slo`.

pub mod analysis;
pub mod auto_resolve;
pub mod baseline;
pub mod capture;
#[cfg(test)]
mod corpus;
pub mod deploys;
pub mod fingerprint;
pub mod genai;
pub mod groups;
pub mod inapp;
pub mod message;
pub mod normalize;
pub mod paths;
pub mod regroup;
pub mod releases;
pub mod self_report;
pub mod slo;
pub mod slo_watch;
pub mod stacktrace;
pub mod triage;
pub mod users;

pub use fingerprint::{
    fingerprint, ErrorSignature, Fingerprint, FingerprintRule, FINGERPRINT_VERSION,
};
pub use genai::{GenAiErrorClass, GenAiFailure, GenAiGroupKey};
pub use inapp::InAppRules;
pub use message::{parameterize_message, redact_secrets};
pub use stacktrace::{
    parse_stacktrace, ChainedException, Frame, Language, LanguageHint, StackTrace,
};
