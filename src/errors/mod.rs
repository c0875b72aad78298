//! The error engine's pure core: everything that decides *which* group an
//! error belongs to, kept free of I/O so it can be tested exhaustively and run
//! on the ingest path without touching the database.
//!
//! - [`stacktrace`]: turns the `exception.stacktrace` text of Python,
//!   Java/Kotlin, .NET, JavaScript, Go and Rust into frames, innermost first.
//! - [`inapp`]: decides which frames are the application's own code.
//! - [`normalize`]: strips what changes between builds (lines, closures,
//!   generated names, hashes) so frames compare across releases.
//! - [`message`]: turns messages into templates and removes secrets.
//! - [`fingerprint`]: picks the grouping rule and hashes its components.
//! - [`genai`]: classifies GenAI failures into a small set of error classes.
//!
//! Capture (span events, logs, ERROR spans), storage, breadcrumbs, releases
//! and SLOs build on these and live elsewhere.

pub mod auto_resolve;
pub mod capture;
#[cfg(test)]
mod corpus;
pub mod fingerprint;
pub mod genai;
pub mod inapp;
pub mod message;
pub mod normalize;
pub mod releases;
pub mod settings;
pub mod slo;
pub mod stacktrace;

pub use fingerprint::{
    fingerprint, ErrorSignature, Fingerprint, FingerprintRule, FINGERPRINT_VERSION,
};
pub use genai::{GenAiErrorClass, GenAiFailure, GenAiGroupKey};
pub use inapp::InAppRules;
pub use message::{parameterize_message, redact_secrets};
pub use stacktrace::{
    parse_stacktrace, ChainedException, Frame, Language, LanguageHint, StackTrace,
};
