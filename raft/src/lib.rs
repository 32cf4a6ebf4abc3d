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
//! - Snapshots ([`snapshot`]: this node's snapshot files, which compact the Raft
//!   log, in one-member groups and groups with peers alike) and space reclaim
//!   ([`reclaim`]).
//! - Follower snapshots ([`follower_snapshot`]): what a leader sends a follower
//!   behind its compacted log — the applied state *and* a copy of the history
//!   records it refers to, since history positions mean nothing on another node.
//!   The follower checks it on arrival and installs it crash-safely (`install`):
//!   history copied into its own log, state restored onto those copies, snapshot
//!   file as the commit point, a log floor that keeps the discarded entries
//!   discarded after a restart.
//! - Membership changes ([`membership`]: a learner added, promoted once caught up,
//!   or a node removed; one conf change per shard) and linearizable reads
//!   (`read_index`: [`Node::read_index`] confirms leadership with a quorum).
//! - Only a leader proposes; proposals are never forwarded between nodes (a
//!   duplicated `MsgProp` would be appended twice), so `NotLeader` answers a
//!   proposal made on a follower.
//!
//! **What it is not.** No network code: messages leave through a
//! [`transport::Transport`] after persistence ([`transport::NoPeers`] for a one-node
//! cluster; the networked one lives in the service crate) and arrive through
//! [`Node::step`]. A transport reports lost connections with
//! [`Node::report_unreachable`] and the fate of every snapshot message with
//! [`Node::report_snapshot`].
//!
//! **Invariants.**
//! - Entries and any term/vote change are durable before messages that depend on them
//!   are sent and before proposals are answered.
//! - A proposal is answered only after its entry is committed and applied; one whose
//!   entry a new leader overwrote is answered `NotLeader` once that index is applied,
//!   and one a snapshot skipped `OutcomeUnknown` (it may have been applied).
//! - Committed entries are applied exactly once per process, in index order; after a
//!   restart they are re-applied from the newest snapshot on, giving the same state.
//! - The commit index in the log may lag the applied one (it is rewritten at the next
//!   append or tick); Raft re-commits the durable entries on restart.
//! - A snapshot from a leader is installed (durably, file last) before any entry of
//!   the same `Ready` is persisted; a crash before its file is written leaves the
//!   previous state, after it the new one.

#[cfg(test)]
mod cluster_tests;
mod driver;
pub mod error;
pub mod follower_snapshot;
mod history;
mod install;
pub mod log_storage;
pub mod membership;
mod node;
mod read_index;
pub mod reclaim;
mod recovery;
pub mod snapshot;
mod status;
pub mod transport;

pub use error::{RaftError, Result};
pub use membership::MembershipChange;
pub use node::{Node, NodeConfig};
pub use reclaim::ReclaimReport;
pub use status::Leadership;
