//! # hourglass-raft
//!
//! Multi-raft for Hourglass: one raft-rs group per shard, all of a node's groups
//! sharing one [`hourglass_storage::log::NodeLog`], so one `write` + `fdatasync`
//! covers every shard's pending entries (group commit).
//!
//! **What it is.**
//! - [`log_storage::ShardLog`]: raft-rs `Storage` over the node log. Entries are not
//!   copied into memory; each shard keeps their positions, and reads decode them
//!   from the memory-mapped segments. The Raft log *is* the storage log. Only
//!   entries appended by this process and not applied yet are kept, so applying
//!   them reads nothing back.
//! - The per-shard driver (`driver`): tick / step / propose, then `Ready`: persist
//!   entries and hard state (awaiting durability) *before* sending messages, apply
//!   committed entries to the shard state machine, answer proposals.
//! - [`Node`]: opens the log (recovery), loads snapshots, starts the drivers;
//!   [`Node::propose`] resolves once the transition is committed and applied.
//! - Snapshots ([`snapshot`]) and space reclaim ([`reclaim`]).
//!
//! **What it is not.** No network transport yet: groups are single-member and
//! [`transport::NoPeers`] is the only [`transport::Transport`]. Nothing here assumes a
//! single member — messages leave through the transport after persistence, and a
//! multi-node transport plugs in without changing the drivers.
//!
//! **Invariants.**
//! - Entries and any term/vote change are durable before messages that depend on them
//!   are sent and before proposals are answered.
//! - A proposal is answered only after its entry is committed and applied.
//! - Committed entries are applied exactly once per process, in index order; after a
//!   restart they are re-applied from the newest snapshot on, giving the same state.
//! - The commit index in the log may lag the applied one (it is rewritten at the next
//!   append or tick); Raft re-commits the durable entries on restart.

mod driver;
pub mod error;
mod history;
pub mod log_storage;
mod node;
pub mod reclaim;
mod recovery;
pub mod snapshot;
mod status;
pub mod transport;

pub use error::{RaftError, Result};
pub use node::{Node, NodeConfig};
pub use reclaim::ReclaimReport;
pub use status::Leadership;
