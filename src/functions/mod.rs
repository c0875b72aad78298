//! Lua functions: user scripts in `scripts/` that react to telemetry
//! (DESIGN §4). This part loads, checks and matches them; running them
//! against the hub (executor, registry, watcher, `runtime`) comes later.

pub mod lint;
pub mod sandbox;
pub mod spec;
pub mod trigger;

#[cfg(test)]
mod stdlib_tests;
