//! Lua functions: user scripts in `scripts/` that react to telemetry
//! (DESIGN §4).
//!
//! A script is loaded into a [`sandbox::Sandbox`] of its own, so scripts
//! never see each other's globals; [`spec::load_script`] turns what it
//! returns into validated definitions; [`trigger`] compiles their `where`
//! into native matchers; [`lint`] is `qyl check`.
//!
//! Running them: [`registry`] holds the live versions (swapped atomically
//! on reload), [`watcher`] reloads changed files, [`dispatch`] matches
//! every committed record from the hub against the trigger index (and
//! fires schedules), [`executor`] runs invocations on its own threads with
//! queues, limits and a circuit breaker, handing the rows to the writer
//! ([`running`] adds a `running` row for an invocation that takes over a
//! second); [`record`] is the record a handler sees and [`runtime_api`] the
//! `runtime` it gets, with [`runtime_http`] over [`http`] (calls to the
//! hosts [`http_allow`] lets through) and [`secrets`]. [`engine`]
//! starts and stops the lot.

pub mod dispatch;
pub mod engine;
pub mod events;
pub mod executor;
pub mod http;
pub mod http_allow;
pub mod lint;
pub mod record;
pub mod registry;
pub mod running;
pub mod runtime_api;
pub mod runtime_http;
pub mod sandbox;
pub mod secrets;
pub mod slo_filter;
pub mod spec;
pub mod trigger;
pub mod watcher;

#[cfg(test)]
mod executor_tests;
#[cfg(test)]
mod notify_tests;
#[cfg(test)]
mod stdlib_tests;
