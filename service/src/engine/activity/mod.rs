//! Activities and user timers on the engine side: the handlers around the rules in
//! [`crate::core::activity`].
//!
//! - [`dispatch`]: starting an attempt for a polled activity task.
//! - [`outcome`]: what a worker reports (completed, failed, canceled, heartbeat).
//! - [`timers`]: durable timers coming due (activity timeouts, retry backoff, user timers).

pub mod dispatch;
pub mod outcome;
pub mod timers;

pub use timers::{on_activity_timer, on_user_timer};

#[cfg(test)]
mod flow_tests;
