//! Live data: the hub that hands committed records to consumers.

pub mod hub;

pub use hub::{Event, Hub, Subscription};
