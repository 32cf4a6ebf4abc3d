//! The shard state machine: pure (no I/O, no clock, no randomness).
//!
//! A [`Transition`] is the data of one Raft entry; [`ShardState::apply`] applies it
//! atomically and deterministically, so every replica (and every replay after a
//! crash) reaches the same state. History events are not kept in memory: a run
//! indexes them by the [`crate::LogPosition`] of the records that appended them,
//! and [`events_of`] reads them back out of such a record.
//!
//! Layout of the code:
//! - `transition`, `codec`, `events`: the transition type and its bytes;
//! - `shard`: [`ShardState`] and its reads; `apply`: apply, dedupe, retention;
//!   `txn`: the ops with their undo log;
//! - `tables`, `backlog`: the tables and their primitive changes, which keep every
//!   index and the memory total (`memory`) in step;
//! - `snapshot`, `restore`: the snapshot bytes; `verify`: the invariants.
//!
//! Byte layouts and semantics are specified in `docs/format-state.md`.

mod apply;
mod backlog;
mod codec;
mod config;
mod current;
mod error;
mod events;
mod memory;
mod restore;
mod run;
mod shard;
mod snapshot;
mod tables;
mod transition;
mod txn;
mod verify;

#[cfg(test)]
mod tests;

pub use codec::{TRANSITION_VERSION, TRANSITION_VERSION_V1};
pub use config::{ConfigError, ShardConfig};
pub use error::{Applied, ApplyError, InvariantError, OpError};
pub use events::events_of;
pub use run::{CurrentRun, EventBatchRef, RunState, Task, Timer};
pub use shard::ShardState;
pub use snapshot::{SNAPSHOT_VERSION, SNAPSHOT_VERSION_V1};
pub use transition::*;
