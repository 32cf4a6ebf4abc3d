//! Three nodes, each on its own simulated disk, joined by the simulated network:
//! open, crash (the disk forgets what was not synced; the node is dropped), restart
//! on what the disk kept, and make a node's next fsync fail.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hourglass_raft::transport::Transport;
use hourglass_raft::{Node, NodeConfig};
use hourglass_storage::disk::sim::SimDisk;
use hourglass_storage::records::ShardId;
use tokio::task::JoinHandle;

use super::disk::{Activity, TrackedDisk};
use super::net::SimNet;
use super::rng::SimRng;

pub const NODE_IDS: [u64; 3] = [1, 2, 3];

/// Small, so logs roll over segments and a follower's catch-up `Ready` is larger
/// than a segment (the driver appends it in pieces; see `sim_cluster.rs`).
fn segment_bytes() -> u64 {
    std::env::var("HOURGLASS_SIM_SEGMENT_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(16 << 10)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    /// Crashed; waiting for a restart.
    Down,
    /// Its disk failed an fsync at `since_ms`; the node should have stopped serving.
    FsyncFailed {
        since_ms: u64,
    },
}

struct Slot {
    disk: SimDisk,
    node: Option<Node>,
    health: Health,
    /// The disk holds every sync until released (or crashed).
    stalled: Arc<AtomicBool>,
}

pub struct Cluster {
    net: Arc<SimNet>,
    activity: Arc<Activity>,
    shard_count: u32,
    slots: BTreeMap<u64, Slot>,
    /// Shutdowns of crashed nodes, finishing in the background.
    shutdowns: Vec<JoinHandle<()>>,
}

impl Cluster {
    pub async fn start(seed: u64, shard_count: u32, net: Arc<SimNet>, activity: Arc<Activity>) -> Result<Cluster, String> {
        let slots = NODE_IDS
            .iter()
            .map(|id| {
                let disk = SimDisk::new(SimRng::derive(seed, &[2, *id]).next_u64());
                (*id, Slot { disk, node: None, health: Health::Down, stalled: Arc::default() })
            })
            .collect();
        let mut cluster = Cluster { net, activity, shard_count, slots, shutdowns: Vec::new() };
        for id in NODE_IDS {
            cluster.open(id).await?;
        }
        Ok(cluster)
    }

    pub fn shard_count(&self) -> u32 {
        self.shard_count
    }

    fn config(&self, id: u64) -> NodeConfig {
        let mut config = NodeConfig::new(format!("/node{id}"), self.shard_count);
        config.node_id = id;
        config.initial_voters = NODE_IDS.to_vec();
        config.log.segment_bytes = segment_bytes();
        config.log.record_bytes_max = 4 * 1024;
        config.tick_ms = 10;
        config.election_tick = 10;
        config.heartbeat_tick = 3;
        config.proposal_queue_max = 1024;
        config
    }

    async fn open(&mut self, id: u64) -> Result<(), String> {
        let config = self.config(id);
        let slot = self.slots.get_mut(&id).ok_or_else(|| format!("no node {id}"))?;
        slot.stalled = Arc::default();
        let disk = Arc::new(TrackedDisk::new(slot.disk.clone(), self.activity.clone(), slot.stalled.clone()));
        let transport: Arc<dyn Transport> = self.net.clone();
        let node = Node::open_with(disk, config, transport).await.map_err(|e| format!("node {id} failed to open: {e}"))?;
        self.net.register(node.clone());
        slot.node = Some(node);
        slot.health = Health::Up;
        Ok(())
    }

    /// Power loss: the node leaves the network, its disk keeps only what a crash
    /// may leave (synced data, maybe parts of the rest), and the process is gone.
    pub fn crash(&mut self, id: u64) {
        self.net.unregister(id);
        let Some(slot) = self.slots.get_mut(&id) else { return };
        slot.disk = slot.disk.crash();
        slot.stalled.store(false, Ordering::SeqCst);
        slot.health = Health::Down;
        if let Some(node) = slot.node.take() {
            // The halted disk fails every write, so this only ends the tasks.
            self.shutdowns.push(tokio::spawn(async move { node.shutdown().await }));
        }
    }

    /// Starts a crashed (or fsync-failed, which is crashed first) node again on what
    /// its disk kept.
    pub async fn restart(&mut self, id: u64) -> Result<(), String> {
        if self.health(id) != Health::Down {
            self.crash(id);
        }
        self.open(id).await
    }

    /// The node's next fsync fails: its log fails for good and every shard stops.
    pub fn fail_next_sync(&mut self, id: u64, now_ms: u64) {
        if let Some(slot) = self.slots.get_mut(&id) {
            if slot.health == Health::Up {
                slot.disk.fail_next_sync();
                slot.health = Health::FsyncFailed { since_ms: now_ms };
            }
        }
    }

    /// The node's disk holds every sync from now on: appends are written but not
    /// durable, and the node's drivers wait. A crash then loses or tears them.
    pub fn stall_disk(&mut self, id: u64) {
        if let Some(slot) = self.slots.get_mut(&id).filter(|s| s.health != Health::Down) {
            slot.stalled.store(true, Ordering::SeqCst);
            slot.disk.hold_syncs(true);
        }
    }

    pub fn stalled(&self) -> Vec<u64> {
        self.slots.iter().filter(|(_, s)| s.stalled.load(Ordering::SeqCst)).map(|(id, _)| *id).collect()
    }

    pub fn release_disks(&mut self) {
        for slot in self.slots.values_mut() {
            slot.stalled.store(false, Ordering::SeqCst);
            slot.disk.hold_syncs(false);
        }
    }

    pub fn health(&self, id: u64) -> Health {
        self.slots.get(&id).map_or(Health::Down, |s| s.health)
    }

    pub fn node(&self, id: u64) -> Option<Node> {
        self.slots.get(&id).and_then(|s| s.node.clone())
    }

    /// Nodes that are not [`Health::Up`].
    pub fn unhealthy(&self) -> Vec<u64> {
        self.slots.iter().filter(|(_, s)| s.health != Health::Up).map(|(id, _)| *id).collect()
    }

    /// The node that believes it leads `shard`, if one does.
    pub fn leader_of(&self, shard: ShardId) -> Option<u64> {
        self.slots.iter().filter(|(_, s)| s.health == Health::Up).find_map(|(id, s)| {
            let leadership = s.node.as_ref()?.leadership(shard).ok()?;
            (leadership.leader_id == *id).then_some(*id)
        })
    }

    /// Shuts every node down and waits for the crashed ones' tasks.
    pub async fn stop_all(&mut self) {
        for id in NODE_IDS {
            self.net.unregister(id);
            if let Some(node) = self.slots.get_mut(&id).and_then(|s| s.node.take()) {
                node.shutdown().await;
            }
        }
        for task in self.shutdowns.drain(..) {
            let _ = task.await;
        }
    }
}
