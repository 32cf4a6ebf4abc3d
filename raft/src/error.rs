//! Typed errors of the multi-raft layer.

use hourglass_storage::records::ShardId;
use hourglass_storage::state::ApplyError;
use hourglass_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error(transparent)]
    Storage(#[from] StorageError),

    /// The transition was committed but the state machine rejected it (deterministically,
    /// on every replica); nothing changed.
    #[error("transition rejected: {0}")]
    Rejected(#[from] ApplyError),

    /// This node does not lead the shard's group; `leader` is the hint, if known.
    #[error("node is not the leader of shard {shard} (leader hint: {leader:?})")]
    NotLeader { shard: ShardId, leader: Option<u64> },

    #[error("shard {shard} does not exist on this node (shards: {shard_count})")]
    NoSuchShard { shard: ShardId, shard_count: u32 },

    /// The shard's proposal queue is full; back off and retry.
    #[error("shard {shard} has {queue_max} proposals queued")]
    Overloaded { shard: ShardId, queue_max: usize },

    /// The node is shutting down or the shard's driver stopped (after a storage failure).
    #[error("shard {shard} is stopped: {reason}")]
    Stopped { shard: ShardId, reason: String },

    /// raft-rs refused an operation.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),

    #[error("snapshot file {file}: {detail}")]
    Snapshot { file: String, detail: String },

    /// A snapshot for a follower would exceed `NodeConfig::snapshot_bytes_max`
    /// (building one, or receiving one).
    #[error("snapshot of shard {shard} is larger than {bytes_max} bytes (at least {bytes} bytes)")]
    SnapshotTooLarge { shard: ShardId, bytes: u64, bytes_max: u64 },

    /// A snapshot received from a leader is not one (bad checksum, layout or content).
    #[error("snapshot of shard {shard} from the leader is invalid: {detail}")]
    SnapshotInvalid { shard: ShardId, detail: String },

    /// A proposal's entry was appended but this node can no longer tell whether it
    /// was committed (it installed a snapshot past it). Not `NotLeader`: the
    /// transition may have been applied, so it must not be retried blindly.
    #[error("shard {shard}: the outcome of the proposal is unknown (a snapshot replaced this node's log)")]
    OutcomeUnknown { shard: ShardId },

    /// A membership change was refused (not caught up, one already in flight...).
    #[error("membership change of shard {shard} refused: {detail}")]
    Membership { shard: ShardId, detail: String },

    #[error("invalid configuration: {0}")]
    Config(String),
}

pub type Result<T, E = RaftError> = std::result::Result<T, E>;
