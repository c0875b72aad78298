//! Lua functions: user scripts in `scripts/` that react to telemetry
//! (DESIGN §4). This part loads, checks and matches them; running them
//! against the hub (executor, registry, watcher, `runtime`) comes later.
//!
//! A script is loaded into a [`sandbox::Sandbox`] of its own, so scripts
//! never see each other's globals; [`spec::load_script`] turns what it
//! returns into validated definitions; [`trigger`] compiles their `where`
//! into native matchers; [`lint`] is `qyl check`.

pub mod lint;
pub mod sandbox;
pub mod spec;
pub mod trigger;

#[cfg(test)]
mod stdlib_tests;
