//! # hourglass-storage
//!
//! The storage engine of Hourglass, purpose-built for one job: appending workflow
//! histories and moving tasks.
//!
//! **What it is.**
//! - [`log`]: the *node log*, one append-only sequence of preallocated segment files
//!   shared by every shard on a node. Records are framed with length, CRC32 and kind.
//!   Many concurrent appenders feed one writer (group commit: one write + one
//!   `fdatasync` per batch), through io_uring where the kernel allows and `pwrite`
//!   otherwise. Reads are zero-copy slices of memory-mapped segments. Recovery checks
//!   every CRC, truncates a torn tail and refuses corruption in the middle.
//! - [`state`]: the *shard state machine*, pure (no I/O, no clock): it applies
//!   [`state::Transition`]s — history appends, mutable state, the current-run index,
//!   request deduplication, task backlogs and timers — and can be snapshotted.
//! - [`records`]: the payloads stored in the log (Raft entries, hard state, ...).
//! - [`disk`]: the file-system seam, with a simulated disk for crash tests.
//!
//! **What it is not.** It knows nothing of gRPC, Temporal's protobufs or Raft's
//! algorithm: events and mutable state are opaque bytes; Raft (crate `hourglass-raft`)
//! decides what is committed and feeds transitions to the state machine.
//!
//! **Invariants.**
//! - An append is acknowledged only after its batch is durable.
//! - After a failed write or sync the log accepts no more appends; syncs are never retried.
//! - Every record read back has passed its CRC; corrupt data is an error, never a panic.
//! - Within a run, event ids are dense from 1; a workflow has at most one open run.
//! - Applying the same transitions to the same state gives the same state (no clock,
//!   no randomness), so a state rebuilt by replay equals the one before the crash.

pub mod codec;
pub mod disk;
pub mod error;
pub mod log;
pub mod reclaim;
pub mod records;
pub mod state;

pub use error::{Result, StorageError};
pub use log::{LogConfig, LogPosition};
