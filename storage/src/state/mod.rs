//! The shard state machine (pure: no I/O, no clock). See `docs/architecture.md`.

mod transition;
pub use transition::*;
