//! The peers this node knows and lazily connected channels to their peer ports,
//! shared by the calls a node makes to its peers (forwarded calls, task hand-over
//! and starts, child-workflow steps, admin) and by the Raft transport, which opens
//! its own streams to the same addresses.
//!
//! The book starts from `--peers` and grows as the cluster's replicated member
//! addresses ([`super::members`]) name nodes added at run time.

use std::collections::BTreeMap;

use parking_lot::RwLock;
use tonic::transport::Channel;

use super::forward::peer_channel;

pub struct PeerChannels {
    node_id: u64,
    peers: RwLock<BTreeMap<u64, Peer>>,
}

struct Peer {
    address: String,
    channel: Channel,
}

impl PeerChannels {
    /// The book of `--peers` (`id → peer address`); nothing connects until used.
    pub fn new(node_id: u64, peers: &BTreeMap<u64, String>) -> Result<Self, String> {
        let book = Self { node_id, peers: RwLock::new(BTreeMap::new()) };
        for (&id, address) in peers {
            book.learn(id, address)?;
        }
        Ok(book)
    }

    /// Records peer `id` at `address` (a node added at run time, or one that moved);
    /// `true` when that is new. This node's own id is ignored.
    pub fn learn(&self, id: u64, address: &str) -> Result<bool, String> {
        if id == self.node_id || self.address(id).as_deref() == Some(address) {
            return Ok(false);
        }
        let channel = peer_channel(id, address)?;
        self.peers.write().insert(id, Peer { address: address.to_string(), channel });
        Ok(true)
    }

    /// The channel to peer `id`, if it is known.
    pub fn get(&self, id: u64) -> Option<Channel> {
        self.peers.read().get(&id).map(|p| p.channel.clone())
    }

    /// Peer `id`'s address, if it is known.
    pub fn address(&self, id: u64) -> Option<String> {
        self.peers.read().get(&id).map(|p| p.address.clone())
    }

    /// Every known peer's id.
    pub fn ids(&self) -> Vec<u64> {
        self.peers.read().keys().copied().collect()
    }

    /// Every known peer's address.
    pub fn addresses(&self) -> BTreeMap<u64, String> {
        self.peers.read().iter().map(|(id, p)| (*id, p.address.clone())).collect()
    }
}
