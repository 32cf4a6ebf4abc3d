//! Shard ownership and routing.
//!
//! - [`owner::ShardOwner`]: what only a shard's leader may do, for one Raft term.
//! - [`Owners`]: the owner of each shard on this node, if any, kept in step with the
//!   shard's leadership by one supervisor task per shard ([`spawn_supervisors`]).
//! - [`Router`]: the seam every request and every cross-shard step goes through:
//!   which shard a workflow lives in, and that shard's live owner. Today owners are
//!   local or absent; a request for a shard led elsewhere fails with
//!   [`ServiceError::NotLeader`] naming the leader, which the node-to-node router of a
//!   cluster forwards instead.

pub mod owner;
pub mod queries;
pub mod updates;
pub mod watchers;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use hourglass_raft::{Leadership, Node};
use hourglass_storage::records::ShardId;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::errors::MisuseError;
use crate::error::{Result, ServiceError};
use crate::matching::Matching;
pub use owner::{ShardOwner, WorkflowGuard};

/// How long a request waits for its shard to get an owner on this node (a leader
/// change in progress) before it fails with `NotLeader` / `Unavailable`.
pub const ROUTE_WAIT: Duration = Duration::from_secs(5);

/// The live owner of each shard on this node.
#[derive(Clone)]
pub struct Owners {
    slots: Arc<Vec<watch::Sender<Option<Arc<ShardOwner>>>>>,
}

impl Owners {
    fn new(shard_count: u32) -> Self {
        Self { slots: Arc::new((0..shard_count).map(|_| watch::Sender::new(None)).collect()) }
    }

    fn slot(&self, shard: ShardId) -> Result<&watch::Sender<Option<Arc<ShardOwner>>>> {
        self.slots.get(shard as usize).ok_or_else(|| MisuseError::NoSuchShard(shard).into())
    }

    /// The live owner of `shard`, if this node has one now.
    pub fn current(&self, shard: ShardId) -> Option<Arc<ShardOwner>> {
        let owner = self.slot(shard).ok()?.borrow().clone()?;
        (!owner.is_stopped()).then_some(owner)
    }

    /// Every live owner on this node.
    pub fn all(&self) -> Vec<Arc<ShardOwner>> {
        (0..self.slots.len() as ShardId).filter_map(|s| self.current(s)).collect()
    }

    /// Waits up to `wait` for `shard` to have a live owner on this node.
    pub async fn wait(&self, shard: ShardId, wait: Duration) -> Option<Arc<ShardOwner>> {
        let mut rx = self.slot(shard).ok()?.subscribe();
        let found = tokio::time::timeout(wait, rx.wait_for(|o| o.as_ref().is_some_and(|o| !o.is_stopped()))).await;
        match found {
            Ok(Ok(owner)) => owner.clone(),
            _ => None,
        }
    }

    fn install(&self, shard: ShardId, owner: Option<Arc<ShardOwner>>) {
        if let Ok(slot) = self.slot(shard) {
            slot.send_replace(owner);
        }
    }
}

/// Which shard a workflow lives in and who owns it: the one place requests and
/// cross-shard work find their shard.
#[derive(Clone)]
pub struct Router {
    node: Node,
    owners: Owners,
}

impl Router {
    pub fn shard_count(&self) -> u32 {
        self.node.shard_count()
    }

    /// The shard owning a workflow: a stable hash (FNV-1a) of namespace and id.
    pub fn shard_for(&self, namespace: &str, workflow_id: &str) -> ShardId {
        shard_for(namespace, workflow_id, self.node.shard_count())
    }

    /// The home shard of a task queue: its leader dispatches the queue's tasks.
    pub fn queue_home(&self, namespace: &str, queue: &str) -> ShardId {
        queue_home(namespace, queue, self.node.shard_count())
    }

    pub fn owners(&self) -> &Owners {
        &self.owners
    }

    /// The live owner of `shard`, waiting up to [`ROUTE_WAIT`] while a leader change
    /// is under way: until this node owns the shard, or another node is known to
    /// lead it (`NotLeader` naming that node, for the caller to forward to), or the
    /// wait ends (`NotLeader` with whatever leader is known). `Unavailable` at once
    /// for a shard whose group stopped on this node.
    pub async fn owner(&self, shard: ShardId) -> Result<Arc<ShardOwner>> {
        if let Some(owner) = self.owners.current(shard) {
            return Ok(owner);
        }
        let me = self.node.node_id();
        let deadline = tokio::time::Instant::now() + ROUTE_WAIT;
        let mut leadership = self.node.watch_leadership(shard)?;
        let mut owner_slot = self.owners.slot(shard)?.subscribe();
        loop {
            if let Some(owner) = self.owners.current(shard) {
                return Ok(owner);
            }
            // A shard stopped here (its log failed) has no owner to wait for: the
            // caller learns at once, and retries where another node leads.
            if let Some(reason) = self.node.stopped(shard)? {
                return Err(ServiceError::Unavailable(format!("shard {shard} is stopped on this node: {reason}")));
            }
            let leader = leadership.borrow_and_update().leader_id;
            if leader != 0 && leader != me {
                return Err(ServiceError::NotLeader { shard, leader_hint: Some(leader) });
            }
            let changed = tokio::time::timeout_at(deadline, async {
                tokio::select! {
                    r = leadership.changed() => r.is_ok(),
                    r = owner_slot.changed() => r.is_ok(),
                }
            });
            if !matches!(changed.await, Ok(true)) {
                let hint = self.node.leader(shard)?.filter(|id| *id != me);
                return Err(ServiceError::NotLeader { shard, leader_hint: hint });
            }
        }
    }

    /// The live owner of the shard holding `(namespace, workflow_id)`.
    pub async fn owner_for(&self, namespace: &str, workflow_id: &str) -> Result<Arc<ShardOwner>> {
        self.owner(self.shard_for(namespace, workflow_id)).await
    }

    /// Locks a workflow under its shard's live owner.
    pub async fn lock(&self, namespace: &str, workflow_id: &str) -> Result<WorkflowGuard> {
        self.owner_for(namespace, workflow_id).await?.lock(namespace, workflow_id).await
    }

    /// Runs `call` and, while it fails because its shard's owner changed under it
    /// (`NotLeader` naming no other node), runs it again on the new owner: at most
    /// [`RETRIES_MAX`] times, each once a new owner is live here, waiting for it at
    /// most [`ROUTE_WAIT`] ([`Router::owner`]: no owner by then, or another node
    /// leads: that `NotLeader` is the answer).
    /// The wait is counted from each failure, not from the first attempt, so a call
    /// that ran long before failing (a long poll) is routed again like a short one;
    /// a call past its own deadline answers for itself. Every call routed this way
    /// must be safe to repeat after a `NotLeader`: a proposal refused for its term, or
    /// fenced at apply, was never applied.
    pub async fn retry<T, F, Fut>(&self, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(ServiceError::NotLeader { shard, leader_hint })
                    if attempt < RETRIES_MAX && leader_hint.is_none_or(|id| id == self.node.node_id()) =>
                {
                    attempt += 1;
                    tracing::debug!(shard, attempt, "owner changed during a call; retrying on the new owner");
                    // Wait for the next owner here, or learn that another node leads
                    // (that `NotLeader` is the answer: the caller forwards it).
                    match self.owner(shard).await {
                        Ok(_) => {}
                        Err(moved @ ServiceError::NotLeader { .. }) => return Err(moved),
                        Err(_) => return Err(ServiceError::NotLeader { shard, leader_hint }),
                    }
                }
                other => return other,
            }
        }
    }
}

/// Most times [`Router::retry`] repeats a call whose shard changed owners under it.
pub const RETRIES_MAX: u32 = 8;

/// The home shard of task queue `queue` of `namespace` (its leader dispatches it).
pub fn queue_home(namespace: &str, queue: &str, shard_count: u32) -> ShardId {
    shard_for(namespace, &format!("\0task-queue\0{queue}"), shard_count)
}

/// FNV-1a of `namespace \0 workflow_id`, modulo the shard count.
pub fn shard_for(namespace: &str, workflow_id: &str, shard_count: u32) -> ShardId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in namespace.bytes().chain([0u8]).chain(workflow_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(shard_count.max(1))) as ShardId
}

/// What the layer above does when an owner starts (spawn its timer service...).
pub type OnOwnerStart = Arc<dyn Fn(Arc<ShardOwner>) + Send + Sync>;

/// Builds the router and starts one supervisor per shard: each follows its shard's
/// leadership, starting an owner when this node serves as leader for a term and
/// stopping it when the term ends. `on_start` runs for every new owner, after its
/// backlog was handed to matching.
pub fn start_ownership(
    node: &Node,
    matching: &Matching,
    query_dispatch: &Matching,
    on_start: OnOwnerStart,
) -> (Router, Vec<JoinHandle<()>>) {
    let owners = Owners::new(node.shard_count());
    let router = Router { node: node.clone(), owners: owners.clone() };
    let tasks = (0..node.shard_count())
        .map(|shard| {
            let sup = Supervisor {
                shard,
                node: node.clone(),
                owners: owners.clone(),
                matching: matching.clone(),
                query_dispatch: query_dispatch.clone(),
                on_start: on_start.clone(),
            };
            tokio::spawn(sup.run())
        })
        .collect();
    (router, tasks)
}

struct Supervisor {
    shard: ShardId,
    node: Node,
    owners: Owners,
    matching: Matching,
    query_dispatch: Matching,
    on_start: OnOwnerStart,
}

impl Supervisor {
    async fn run(self) {
        let Ok(mut rx) = self.node.watch_leadership(self.shard) else { return };
        loop {
            let seen = *rx.borrow_and_update();
            self.follow(seen);
            if rx.changed().await.is_err() {
                break;
            }
        }
        self.stop_current();
    }

    /// Makes the installed owner match `leadership`.
    fn follow(&self, leadership: Leadership) {
        let serving = leadership.serving && leadership.leader_id == self.node.node_id();
        let current = self.owners.current(self.shard);
        if current.as_ref().is_some_and(|o| serving && o.term() == leadership.term) {
            return;
        }
        self.stop_current();
        if serving {
            self.start(leadership.term);
        }
    }

    fn stop_current(&self) {
        let Ok(slot) = self.owners.slot(self.shard) else { return };
        if let Some(owner) = slot.send_replace(None) {
            tracing::info!(shard = self.shard, term = owner.term(), "shard owner stopped");
            owner.stop();
        }
    }

    fn start(&self, term: u64) {
        let owner = Arc::new(ShardOwner::new(self.shard, term, self.node.clone(), self.matching.clone(), self.query_dispatch.clone()));
        self.matching.activate_shard(self.shard, term);
        self.query_dispatch.activate_shard(self.shard, term);
        match owner.load_backlog() {
            Ok(tasks) => tracing::info!(shard = self.shard, term, backlog_tasks = tasks, "shard owner started"),
            Err(e) => {
                tracing::error!(shard = self.shard, term, error = %e, "shard owner cannot load its backlog; not serving");
                return;
            }
        }
        self.owners.install(self.shard, Some(owner.clone()));
        (self.on_start)(owner);
    }
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    #[test]
    fn shard_hash_is_stable_and_spreads() {
        // Fixed values: the hash decides where existing data lives and must never change.
        let shards: Vec<u32> = (0..8).map(|i| shard_for("default", &format!("wf-{i}"), 4)).collect();
        assert_eq!(shards, [2, 1, 0, 3, 2, 1, 0, 3]);
        let counts = (0..1000).fold([0u32; 4], |mut c, i| {
            c[shard_for("default", &format!("wf-{i}"), 4) as usize] += 1;
            c
        });
        assert!(counts.iter().all(|&n| n > 150), "{counts:?}");
        assert_eq!(shard_for("ns", "x", 1), 0);
    }
}
