//! A cluster of Hourglass nodes: who the peers are, the node-to-node transport of
//! Raft messages, forwarding of calls to a shard's leader, and where leaders sit.
//!
//! - [`ClusterConfig`]: this node's id, its peer address, and the other members.
//! - [`transport::PeerTransport`]: the `raft::Transport` of a node with peers; one
//!   long-lived gRPC stream per lane per peer ([`peer_server`] receives them).
//! - [`forward::Forwarder`]: a `WorkflowService` client per peer, used by the
//!   frontend to send a call to the node that leads its shard.
//! - [`relay`] and [`task_server`]: matching across nodes (task references go to
//!   their queue's home node; polled tasks start on their shard's leader).
//! - [`child_steps`]: the child-workflow steps that change a shard another node
//!   leads run there.
//! - [`placement`]: spreads shard leaders across the nodes and hands leadership
//!   away before a graceful shutdown.
//!
//! The peer port serves the `hourglass.peer.v1.Peer` service and the Temporal
//! `WorkflowService` itself (calls forwarded from peers), never the public port.

pub mod admin;
pub mod child_steps;
pub mod forward;
pub mod members;
pub mod peer_server;
pub mod peers;
pub mod placement;
pub mod relay;
pub mod schedule_starts;
pub mod task_server;
pub mod task_wire;
pub mod transport;

use std::collections::BTreeMap;

/// Most members a cluster may have (each is a voter of every shard).
pub const MEMBERS_MAX: usize = 7;

/// Who this node is in its cluster. A node without peers is a one-member cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's id (non-zero), stable for the life of its data directory.
    pub node_id: u64,
    /// Where this node listens for its peers (`host:port`).
    pub peer_listen: String,
    /// The other members: node id → peer address.
    pub peers: BTreeMap<u64, String>,
    /// This node joins a cluster that already exists (its data directory is new, or
    /// was wiped): it does not bootstrap the shards' membership, and serves once a
    /// member adds it (`hourglass cluster add-node`). Ignored when the data directory
    /// already holds a membership.
    pub join: bool,
}

impl ClusterConfig {
    /// Every member's id, this node's included, ascending.
    pub fn members(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.peers.keys().copied().chain([self.node_id]).collect();
        ids.sort_unstable();
        ids
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.node_id == 0 {
            return Err("--node-id must not be 0".into());
        }
        if self.peers.contains_key(&self.node_id) {
            return Err(format!("--peers names this node ({}) as its own peer", self.node_id));
        }
        if self.peers.len() + 1 > MEMBERS_MAX {
            return Err(format!("a cluster has at most {MEMBERS_MAX} members, got {}", self.peers.len() + 1));
        }
        if self.peers.contains_key(&0) {
            return Err("node ids must not be 0".into());
        }
        Ok(())
    }
}

/// Parses `--peers`: `ID=HOST:PORT` pairs separated by commas (`2=127.0.0.1:7302,3=...`).
pub fn parse_peers(text: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut peers = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item.split_once('=').ok_or_else(|| format!("peer {item:?} is not ID=HOST:PORT"))?;
        let id: u64 = id.trim().parse().map_err(|_| format!("peer id {:?} is not a number", id.trim()))?;
        let addr = addr.trim();
        if addr.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
            return Err(format!("peer address {addr:?} is not HOST:PORT"));
        }
        if peers.insert(id, addr.to_string()).is_some() {
            return Err(format!("peer {id} is named twice"));
        }
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_ones_are_refused() {
        let peers = parse_peers("2=127.0.0.1:7302, 3=localhost:7303").unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[&3], "localhost:7303");
        for bad in ["2", "x=a:1", "2=a", "2=a:99999", "2=:1", "2=a:1,2=b:2"] {
            assert!(parse_peers(bad).is_err(), "{bad:?} accepted");
        }
        let config = ClusterConfig { node_id: 1, peer_listen: "x:1".into(), peers, join: false };
        assert_eq!(config.members(), vec![1, 2, 3]);
        assert!(config.validate().is_ok());
        assert!(ClusterConfig { node_id: 2, ..config.clone() }.validate().is_err());
        assert!(ClusterConfig { node_id: 0, ..config }.validate().is_err());
    }
}
