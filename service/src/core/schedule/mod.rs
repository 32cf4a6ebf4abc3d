//! Schedules (Temporal's Schedules API) as pure rules: the stored record, the spec
//! (what times), and the state machine (what to do at a time). The engine
//! (`crate::engine::schedules`) keeps each schedule as a durable record in the shard
//! that owns `temporal-sys-scheduler:<id>`, arms one durable timer for its next
//! firing, and starts the workflows these rules ask for.

pub mod calendar;
pub mod record;
pub mod spec;

pub use record::{Due, PendingTrigger, StoredSchedule};
pub use spec::{canonicalize, CompiledSpec, SpecError};
