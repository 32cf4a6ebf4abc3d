//! Where shard leaders sit.
//!
//! **Spread leaders.** Each shard has a preferred leader: the members of its group
//! that are not leaving, in id order, taken round-robin by shard number (shard `s`
//! prefers the `s mod n`-th). Every [`PLACEMENT_INTERVAL`] a node hands each shard it
//! leads to that shard's preferred node, which Raft does only once that node answers
//! and holds every committed entry (`Node::transfer_leader`), so a node that is down
//! or behind is skipped, and a node that comes back gets its shards back once it has
//! caught up. Matching across nodes ([`super::relay`]) lets a task queue's tasks be
//! dispatched by one node whichever nodes lead the tasks' shards.
//!
//! **Graceful shutdown** ([`hand_off`]): the node tells its peers it is leaving (so
//! their placement stops sending it shards), then hands every shard it leads to its
//! most up-to-date follower, so clients see one short leader change instead of an
//! election timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hourglass_proto::peer::peer_client::PeerClient;
use hourglass_proto::peer::LeavingRequest;
use hourglass_raft::Node;
use hourglass_storage::records::ShardId;
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::peers::PeerChannels;

/// How often a node checks that the shards it leads sit on their preferred nodes.
pub const PLACEMENT_INTERVAL: Duration = Duration::from_millis(250);
/// How long a node that said it is leaving gets no shards (it stops well within it;
/// started again, it gets its shards back afterwards).
pub const LEAVING_FOR: Duration = Duration::from_secs(30);
/// Longest a peer may take to hear that this node is leaving.
const LEAVING_NOTICE_TIMEOUT: Duration = Duration::from_millis(500);

/// This node's view of where leaders should sit.
pub struct Placement {
    node: Node,
    /// Nodes that said they are leaving, and until when they get no shards.
    leaving: Mutex<HashMap<u64, Instant>>,
}

impl Placement {
    pub fn new(node: Node) -> Arc<Self> {
        Arc::new(Self { node, leaving: Mutex::new(HashMap::new()) })
    }

    /// Node `id` is shutting down: no shard is handed to it for [`LEAVING_FOR`].
    pub fn mark_leaving(&self, id: u64) {
        self.leaving.lock().insert(id, Instant::now() + LEAVING_FOR);
    }

    /// The node `shard`'s leader should be on, among its voters that are not leaving.
    pub fn preferred(&self, shard: ShardId) -> Option<u64> {
        let mut voters = self.node.voters(shard).ok()?;
        voters.sort_unstable();
        let now = Instant::now();
        let mut leaving = self.leaving.lock();
        leaving.retain(|_, until| *until > now);
        voters.retain(|v| !leaving.contains_key(v));
        let count = u32::try_from(voters.len()).ok().filter(|c| *c > 0)?;
        voters.get((shard % count) as usize).copied()
    }

    /// Hands each shard this node leads to its preferred node, when that is another.
    async fn spread(&self) {
        let me = self.node.node_id();
        for shard in 0..self.node.shard_count() {
            if !self.node.leadership(shard).is_ok_and(|l| l.leader_id == me) {
                continue;
            }
            match self.preferred(shard) {
                Some(to) if to != me => {
                    let _ = self.node.transfer_leader(shard, to).await;
                }
                _ => {}
            }
        }
    }
}

/// Runs [`Placement::spread`] every [`PLACEMENT_INTERVAL`].
pub fn spawn_spreading(placement: Arc<Placement>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PLACEMENT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            placement.spread().await;
        }
    })
}

/// Tells every peer that this node is leaving (best effort, concurrently).
async fn announce_leaving(me: u64, peers: &PeerChannels) {
    let mut notices = tokio::task::JoinSet::new();
    for id in peers.ids() {
        let Some(channel) = peers.get(id) else { continue };
        notices.spawn(async move {
            let mut request = tonic::Request::new(LeavingRequest { node_id: me });
            request.set_timeout(LEAVING_NOTICE_TIMEOUT);
            if let Err(e) = PeerClient::new(channel).leaving(request).await {
                tracing::debug!(peer = id, error = %e, "peer did not hear that this node is leaving");
            }
        });
    }
    while notices.join_next().await.is_some() {}
}

/// Tells the peers this node is leaving, then hands every shard it leads to a
/// follower, waiting at most `wait`. Returns the shards this node still leads (none
/// when the hand-off completed).
pub async fn hand_off(node: &Node, peers: &PeerChannels, wait: Duration) -> Vec<ShardId> {
    let me = node.node_id();
    let deadline = Instant::now() + wait;
    announce_leaving(me, peers).await;
    let led = |node: &Node| -> Vec<ShardId> {
        (0..node.shard_count()).filter(|s| node.leadership(*s).is_ok_and(|l| l.leader_id == me)).collect()
    };
    loop {
        let still = led(node);
        if still.is_empty() || Instant::now() >= deadline {
            return still;
        }
        for shard in still {
            let _ = node.step_down(shard).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
