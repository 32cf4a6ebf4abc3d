//! The seam between shard drivers and the network. Groups are single-member for now:
//! [`NoPeers`] is the transport of a one-node cluster and must never be handed a
//! message. A networked transport (batched per destination node) plugs in here
//! without touching the drivers.

use hourglass_storage::records::ShardId;
use raft::eraftpb::Message;

pub trait Transport: Send + Sync + 'static {
    /// Hands `messages` of shard `shard` to their destination nodes. Must not block.
    fn send(&self, shard: ShardId, messages: Vec<Message>);
}

/// Transport of a single-member cluster: there is nobody to talk to.
pub struct NoPeers;

impl Transport for NoPeers {
    fn send(&self, shard: ShardId, messages: Vec<Message>) {
        if let Some(m) = messages.first() {
            tracing::error!(shard, to = m.to, count = messages.len(), "single-member group produced messages for a peer; dropped");
            debug_assert!(false, "single-member group of shard {shard} sent {} messages to {}", messages.len(), m.to);
        }
    }
}
