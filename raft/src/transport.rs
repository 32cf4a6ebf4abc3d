//! The seam between shard drivers and the network. [`NoPeers`] is the transport of
//! a one-node cluster and must never be handed a message; a networked transport
//! (the service crate's) plugs in here without touching the drivers.

use hourglass_storage::records::ShardId;
use raft::eraftpb::Message;

pub trait Transport: Send + Sync + 'static {
    /// Hands `messages` of shard `shard` to their destination nodes. Must not block.
    /// For every `MsgSnapshot` among them, the transport must later call
    /// [`crate::Node::report_snapshot`] on the sending node (delivered or not):
    /// raft-rs sends that follower nothing more until it hears.
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
