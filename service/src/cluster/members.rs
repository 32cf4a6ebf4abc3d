//! The cluster's member addresses, replicated: the system record
//! `(SYSTEM_NAMESPACE, "cluster", "members")` maps node ids to peer addresses.
//!
//! A node learns its peers from `--peers` at start, and from this record the nodes
//! added at run time (`hourglass cluster add-node ID --address HOST:PORT` writes it
//! before the node joins the groups). Every node reads its replica every
//! [`REFRESH_INTERVAL`] and adds what it finds to its [`PeerChannels`] (the Raft
//! transport, forwarding and the other peer calls then reach the new node). The
//! record is replicated, snapshotted and recovered like any run, so a node restarted
//! with its original `--peers` still knows every member added since.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;

use super::peers::PeerChannels;
use crate::engine::Engine;
use crate::error::{Result, ServiceError};
use crate::system_record::SystemRecord;

/// How often a node reloads the member addresses from its replica.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// Most addresses the record holds (removed members keep theirs).
pub const ADDRESSES_MAX: usize = 64;
/// Longest address, bytes.
pub const ADDRESS_BYTES_MAX: usize = 255;

#[derive(Clone, PartialEq, Message)]
pub struct StoredMembers {
    #[prost(message, repeated, tag = "1")]
    pub members: Vec<StoredMember>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StoredMember {
    #[prost(uint64, tag = "1")]
    pub node_id: u64,
    #[prost(string, tag = "2")]
    pub address: String,
}

fn record(engine: &Engine) -> SystemRecord {
    SystemRecord::new(engine, "cluster", "members")
}

fn decode(bytes: &[u8]) -> Result<BTreeMap<u64, String>> {
    let stored = StoredMembers::decode(bytes).map_err(|e| ServiceError::Internal(format!("the member addresses do not decode: {e}")))?;
    Ok(stored.members.into_iter().map(|m| (m.node_id, m.address)).collect())
}

fn encode(members: &BTreeMap<u64, String>) -> Bytes {
    let stored = StoredMembers { members: members.iter().map(|(&node_id, a)| StoredMember { node_id, address: a.clone() }).collect() };
    Bytes::from(stored.encode_to_vec())
}

/// The member addresses as this node's replica has applied them.
pub fn load(engine: &Engine) -> Result<BTreeMap<u64, String>> {
    match record(engine).load()? {
        Some((bytes, _)) => decode(&bytes),
        None => Ok(BTreeMap::new()),
    }
}

/// Records that node `node_id` listens for its peers at `address` (on the record
/// shard's leader; `NotLeader` elsewhere). `InvalidArgument` for a bad id or address,
/// `ResourceExhausted` past [`ADDRESSES_MAX`].
pub async fn set_address(engine: &Engine, node_id: u64, address: &str) -> Result<()> {
    if node_id == 0 {
        return Err(ServiceError::InvalidArgument("node id must not be 0".into()));
    }
    if address.len() > ADDRESS_BYTES_MAX || super::parse_peers(&format!("{node_id}={address}")).is_err() {
        return Err(ServiceError::InvalidArgument(format!("peer address {address:?} is not HOST:PORT")));
    }
    record(engine)
        .update(engine.now_ms(), |current| {
            let mut members = current.map(|bytes| decode(&bytes)).transpose()?.unwrap_or_default();
            if members.get(&node_id).map(String::as_str) == Some(address) {
                return Ok(None);
            }
            if !members.contains_key(&node_id) && members.len() >= ADDRESSES_MAX {
                return Err(ServiceError::ResourceExhausted(format!("at most {ADDRESSES_MAX} member addresses are kept")));
            }
            members.insert(node_id, address.to_string());
            Ok(Some(encode(&members)))
        })
        .await?;
    tracing::info!(node_id, address, "member address recorded");
    Ok(())
}

/// Adds the recorded member addresses to `peers` now and every
/// [`REFRESH_INTERVAL`] (a background task that ends with the engine).
pub fn follow(engine: &Engine, peers: Arc<PeerChannels>) {
    learn_all(engine, &peers);
    let engine_for = engine.clone();
    engine.spawn_background(async move {
        let mut tick = tokio::time::interval(REFRESH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            learn_all(&engine_for, &peers);
        }
    });
}

fn learn_all(engine: &Engine, peers: &PeerChannels) {
    let members = match load(engine) {
        Ok(members) => members,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the member addresses from this node's replica");
            return;
        }
    };
    for (id, address) in members {
        match peers.learn(id, &address) {
            Ok(true) => tracing::info!(peer = id, %address, "peer learnt from the member addresses"),
            Ok(false) => {}
            Err(e) => tracing::warn!(peer = id, error = %e, "recorded member address is unusable"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_the_stored_form() {
        let members = BTreeMap::from([(1, "127.0.0.1:7301".to_string()), (4, "host:7304".to_string())]);
        assert_eq!(decode(&encode(&members)).unwrap(), members);
        assert!(decode(&[0xff, 0xff]).is_err(), "garbage is an error, not a panic");
    }
}
