//! # hourglass-service
//!
//! The Temporal API on top of Hourglass's storage: the `WorkflowService` frontend, the
//! history engine (commands → events, the mutable state of runs, timeouts and
//! retries), matching (task queues and long polls) and the timer service, plus the
//! `hourglass` binary.
//!
//! **Not here:** storage and replication (`hourglass-storage`, `hourglass-raft`).
//!
//! **Invariants.**
//! - Every state change of a run is one transition proposed to the run's shard, and a
//!   call that changes state is answered only after that transition is committed.
//! - Transactions on one workflow id are serialized by the workflow's lock.
//! - At most one workflow task is scheduled or started per run; events that arrive
//!   while one is started are buffered and written after it ends.
//! - Bad input gets a precise status (`error::ServiceError` → `tonic::Status` in one
//!   place) and changes nothing.

pub mod cluster;
pub mod core;
pub mod engine;
pub mod error;
pub mod frontend;
pub mod history_api;
pub mod matching;
pub mod namespaces;
pub mod server;
pub mod shard;
pub mod system_record;
