//! Matching across nodes: task references travel to the node that dispatches their
//! queue, and polled tasks are started on the node that owns them.
//!
//! A task queue's home is a shard (`shard::queue_home`); the node leading it runs the
//! queue's matching and its polls (`HistoryApi::queue_home`). The task itself stays in
//! its own shard's durable backlog until the transition that starts it commits, so
//! what crosses the network is only a reference, and losing one loses nothing:
//!
//! - **Handing over** ([`TaskRelay`], the matching [`Relay`] of a cluster node): a
//!   task of a queue homed elsewhere goes into an outbox; [`run_outbox`] sends it to
//!   the home's leader (`PeerTasks/OfferTasks`, batched per peer, one call in flight
//!   per peer), keeps it while no leader is known or the call fails, and drops it once
//!   its owner's term has ended (the next owner hands over the backlog again).
//! - **Following the homes** ([`follow_homes`]): when a shard's leadership changes,
//!   queues homed there lose their ready tasks here (unless this node is the new
//!   home), and every owner on this node hands the backlog tasks of those queues (and
//!   their pending legacy queries) to the new home.
//! - **Sweeping** ([`follow_homes`] too): every [`SWEEP_INTERVAL`], each owner hands
//!   over again the tasks that were already in its backlog at the previous sweep; the
//!   home holds a task once, so this only fills gaps (a call lost with its peer).
//! - **Starting** ([`PeerTaskClients`]): a poll that took a task of a shard another
//!   node leads starts it there (`PeerTasks/StartTask`) and returns what it answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hourglass_proto::peer::peer_tasks_client::PeerTasksClient;
use hourglass_proto::peer::start_task_response::Outcome;
use hourglass_proto::peer::{OfferTasksRequest, QueueTask, StartTaskRequest};
use hourglass_raft::Node;
use hourglass_storage::records::ShardId;
use hourglass_storage::state::QueueKey;
use prost::Message;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{PollActivityTaskQueueResponse, PollWorkflowTaskQueueResponse};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::peers::PeerChannels;
use super::task_wire;
use crate::engine::Engine;
use crate::error::{Result, ServiceError};
use crate::history_api::{Dispatched, Poller, RemoteTasks, Started};
use crate::matching::{Dispatcher, Relay, TaskRef};
use crate::shard::queue_home;

/// Task references waiting in the outbox before new ones are dropped (the sweep
/// hands them over later).
pub const OUTBOX_TASKS_MAX: usize = 100_000;
/// Most task references in one `OfferTasks` call.
pub const OFFER_BATCH_MAX: usize = 1024;
/// How often references that found no home (no leader known, a failed call) are
/// routed again.
pub const PARKED_RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// How often every owner hands over again the tasks still in its backlog.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Longest a peer may take to start a task for a poll here.
pub const START_TASK_TIMEOUT: Duration = Duration::from_secs(10);

/// One task reference on its way to its queue's home.
struct Outgoing {
    dispatcher: Dispatcher,
    queue: QueueKey,
    task: TaskRef,
}

/// The [`Relay`] installed in a cluster node's matching.
pub struct TaskRelay {
    node: Node,
    outbox: mpsc::UnboundedSender<Outgoing>,
    queued: Arc<AtomicUsize>,
}

impl Relay for TaskRelay {
    fn is_home(&self, queue: &QueueKey) -> bool {
        is_home(&self.node, queue)
    }

    fn send(&self, dispatcher: Dispatcher, queue: QueueKey, task: TaskRef) {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= OUTBOX_TASKS_MAX {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!(?queue, task_id = task.task_id, "relay outbox full; the task is handed over at the next sweep");
            return;
        }
        if self.outbox.send(Outgoing { dispatcher, queue, task }).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The node leading `queue`'s home shard, as this node knows it.
fn home_leader(node: &Node, queue: &QueueKey) -> Option<u64> {
    node.leader(queue_home(&queue.namespace, &queue.name, node.shard_count())).ok().flatten()
}

/// This node leads `queue`'s home shard.
pub fn is_home(node: &Node, queue: &QueueKey) -> bool {
    home_leader(node, queue) == Some(node.node_id())
}

/// Installs matching across nodes on `engine`: the relay in both dispatchers, the
/// peers' task starts, and the background loops (they end with the engine).
pub fn install(engine: &Engine, peers: &Arc<PeerChannels>) {
    let (outbox, outbox_rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let relay: Arc<dyn Relay> = Arc::new(TaskRelay { node: engine.node().clone(), outbox, queued: queued.clone() });
    engine.matching().set_relay(relay.clone());
    engine.query_dispatch().set_relay(relay);
    engine.set_remote_tasks(Arc::new(PeerTaskClients { peers: peers.clone() }));
    engine.spawn_background(run_outbox(engine.clone(), peers.clone(), outbox_rx, queued));
    engine.spawn_background(follow_homes(engine.clone()));
}

/// The owner that handed `task` over still serves its term here.
fn still_owned(engine: &Engine, task: &TaskRef) -> bool {
    engine.router().owners().current(task.shard).is_some_and(|o| o.term() == task.term && !o.is_stopped())
}

/// Routes every reference in the outbox to its queue's home: here, a peer's lane,
/// or parked until a leader is known.
async fn run_outbox(engine: Engine, peers: Arc<PeerChannels>, mut outbox: mpsc::UnboundedReceiver<Outgoing>, queued: Arc<AtomicUsize>) {
    let (parked_tx, mut parked_rx) = mpsc::unbounded_channel::<Vec<Outgoing>>();
    let mut lanes: HashMap<u64, mpsc::UnboundedSender<Outgoing>> = HashMap::new();
    let mut parked: Vec<Outgoing> = Vec::new();
    let mut retry = tokio::time::interval(PARKED_RETRY_INTERVAL);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(OFFER_BATCH_MAX);
    loop {
        let route_now: Vec<Outgoing> = tokio::select! {
            n = outbox.recv_many(&mut batch, OFFER_BATCH_MAX) => {
                if n == 0 {
                    return;
                }
                queued.fetch_sub(n, Ordering::AcqRel);
                std::mem::take(&mut batch)
            }
            Some(back) = parked_rx.recv() => {
                parked.extend(back);
                if parked.len() > OUTBOX_TASKS_MAX {
                    let excess = parked.len() - OUTBOX_TASKS_MAX;
                    parked.drain(..excess);
                }
                continue;
            }
            _ = retry.tick(), if !parked.is_empty() => std::mem::take(&mut parked),
        };
        for item in route_now {
            if !still_owned(&engine, &item.task) {
                continue;
            }
            match home_leader(engine.node(), &item.queue) {
                Some(me) if me == engine.node().node_id() => engine.dispatcher(item.dispatcher).add_here(item.queue, item.task),
                Some(peer) if peers.get(peer).is_some() => {
                    let lane = lanes.entry(peer).or_insert_with(|| {
                        let (tx, rx) = mpsc::unbounded_channel();
                        let client = peers.get(peer).map(PeerTasksClient::new);
                        if let Some(client) = client {
                            engine.spawn_background(run_lane(engine.node().node_id(), peer, client, rx, parked_tx.clone()));
                        }
                        tx
                    });
                    if let Err(mpsc::error::SendError(item)) = lane.send(item) {
                        parked.push(item);
                    }
                }
                _ => parked.push(item),
            }
        }
    }
}

/// Sends the references queued for `peer`, one call at a time; whatever the peer
/// refused or a failed call carried goes back to be routed again.
async fn run_lane(
    me: u64,
    peer: u64,
    mut client: PeerTasksClient<Channel>,
    mut lane: mpsc::UnboundedReceiver<Outgoing>,
    parked: mpsc::UnboundedSender<Vec<Outgoing>>,
) {
    let mut batch = Vec::with_capacity(OFFER_BATCH_MAX);
    while lane.recv_many(&mut batch, OFFER_BATCH_MAX).await > 0 {
        let items = std::mem::take(&mut batch);
        let tasks: Vec<QueueTask> = items.iter().map(|o| task_wire::encode(o.dispatcher, &o.queue, &o.task)).collect();
        match client.offer_tasks(OfferTasksRequest { from_node: me, tasks }).await {
            Ok(response) => {
                let refused = response.into_inner().refused;
                if !refused.is_empty() {
                    let mut items: Vec<Option<Outgoing>> = items.into_iter().map(Some).collect();
                    let back = refused.iter().filter_map(|&i| items.get_mut(i as usize).and_then(Option::take)).collect();
                    let _ = parked.send(back);
                }
            }
            Err(status) => {
                tracing::debug!(peer, error = %status, tasks = items.len(), "handing tasks to their home failed; routed again");
                let _ = parked.send(items);
                // The peer is down or cut off: do not spin on it.
                tokio::time::sleep(PARKED_RETRY_INTERVAL).await;
            }
        }
    }
}

/// Follows every shard's leadership: when a shard's leader or term changes, the
/// queues homed there move (see the module docs); and sweeps every
/// [`SWEEP_INTERVAL`].
async fn follow_homes(engine: Engine) {
    let node = engine.node().clone();
    let (changed_tx, mut changed) = mpsc::unbounded_channel::<ShardId>();
    for shard in 0..node.shard_count() {
        let Ok(mut watch) = node.watch_leadership(shard) else { continue };
        let changed_tx = changed_tx.clone();
        engine.spawn_background(async move {
            let mut last = (0, 0);
            loop {
                let now = {
                    let l = watch.borrow_and_update();
                    (l.leader_id, l.term)
                };
                if now != last && now.0 != 0 {
                    last = now;
                    if changed_tx.send(shard).is_err() {
                        return;
                    }
                }
                if watch.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    drop(changed_tx);
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut swept_up_to: HashMap<ShardId, (u64, u64)> = HashMap::new();
    loop {
        tokio::select! {
            Some(shard) = changed.recv() => move_home(&engine, shard),
            _ = sweep.tick() => sweep_backlogs(&engine, &mut swept_up_to),
        }
    }
}

/// Shard `home` has a new leader (or term): its queues' tasks go there.
fn move_home(engine: &Engine, home: ShardId) {
    let node = engine.node();
    let count = node.shard_count();
    let homed_here = |q: &QueueKey| queue_home(&q.namespace, &q.name, count) == home;
    if node.leader(home).ok().flatten() != Some(node.node_id()) {
        engine.matching().drop_foreign_queues(|q| is_home(node, q));
        engine.query_dispatch().drop_foreign_queues(|q| is_home(node, q));
    }
    for owner in engine.router().owners().all().into_iter().filter(|o| !o.is_stopped()) {
        if let Err(e) = owner.offer_backlog(|q, _| homed_here(q)) {
            tracing::warn!(shard = owner.shard(), home, error = %e, "cannot hand the backlog to a moved queue home; the sweep retries");
        }
        owner.queries().redispatch(homed_here);
    }
}

/// Hands over again, per owner, the tasks that were in its backlog at the last
/// sweep of the same term (`swept_up_to`: shard → (term, highest task id seen)).
fn sweep_backlogs(engine: &Engine, swept_up_to: &mut HashMap<ShardId, (u64, u64)>) {
    for owner in engine.router().owners().all().into_iter().filter(|o| !o.is_stopped()) {
        let (term, up_to) = swept_up_to.get(&owner.shard()).copied().unwrap_or((0, 0));
        let up_to = if term == owner.term() { up_to } else { 0 };
        let highest = std::cell::Cell::new(up_to);
        let offered = owner.offer_backlog(|_, id| {
            highest.set(highest.get().max(id));
            id <= up_to
        });
        if let Err(e) = offered {
            tracing::warn!(shard = owner.shard(), error = %e, "sweeping the backlog failed");
        }
        swept_up_to.insert(owner.shard(), (owner.term(), highest.get()));
    }
}

/// Starts tasks on the peers that own them ([`RemoteTasks`]).
pub struct PeerTaskClients {
    peers: Arc<PeerChannels>,
}

impl PeerTaskClients {
    /// Asks `node` to start `task` (taken from `queue` of `dispatcher`).
    async fn start(&self, node: u64, dispatcher: Dispatcher, queue: &QueueKey, task: &TaskRef, poller: &Poller) -> Result<Option<Outcome>> {
        let Some(channel) = self.peers.get(node) else {
            return Err(ServiceError::Unavailable(format!("node {node} leads shard {} but is not a known peer", task.shard)));
        };
        let mut request = tonic::Request::new(StartTaskRequest {
            task: Some(task_wire::encode(dispatcher, queue, task)),
            identity: poller.identity.clone(),
            build_id: poller.build_id.clone(),
        });
        request.set_timeout(START_TASK_TIMEOUT);
        let response =
            PeerTasksClient::new(channel).start_task(request).await.map_err(|s| ServiceError::from_peer_status(&s, task.shard))?;
        Ok(response.into_inner().outcome)
    }
}

fn bad_answer(node: u64, what: &str) -> ServiceError {
    ServiceError::Internal(format!("node {node} answered a task start with {what}"))
}

#[tonic::async_trait]
impl RemoteTasks for PeerTaskClients {
    async fn start_workflow_task(&self, node: u64, queue: &QueueKey, task: &TaskRef, poller: &Poller) -> Result<Started> {
        match self.start(node, Dispatcher::Backlog, queue, task, poller).await? {
            Some(Outcome::Stale(_)) => Ok(Started::Stale),
            Some(Outcome::WorkflowTask(bytes)) => PollWorkflowTaskQueueResponse::decode(bytes.as_slice())
                .map(|r| Started::Task(Box::new(r)))
                .map_err(|e| bad_answer(node, &format!("a workflow task that does not decode: {e}"))),
            _ => Err(bad_answer(node, "no workflow task")),
        }
    }

    async fn start_activity_task(&self, node: u64, queue: &QueueKey, task: &TaskRef, identity: &str) -> Result<Dispatched> {
        let poller = Poller { identity: identity.to_string(), build_id: String::new() };
        match self.start(node, Dispatcher::Backlog, queue, task, &poller).await? {
            Some(Outcome::Stale(_)) => Ok(Dispatched::Stale),
            Some(Outcome::ActivityTask(bytes)) => PollActivityTaskQueueResponse::decode(bytes.as_slice())
                .map(|r| Dispatched::Started(Box::new(r)))
                .map_err(|e| bad_answer(node, &format!("an activity task that does not decode: {e}"))),
            _ => Err(bad_answer(node, "no activity task")),
        }
    }

    async fn start_query_task(&self, node: u64, queue: &QueueKey, task: &TaskRef) -> Result<Option<PollWorkflowTaskQueueResponse>> {
        let poller = Poller { identity: String::new(), build_id: String::new() };
        match self.start(node, Dispatcher::Query, queue, task, &poller).await? {
            Some(Outcome::Stale(_)) => Ok(None),
            Some(Outcome::WorkflowTask(bytes)) => PollWorkflowTaskQueueResponse::decode(bytes.as_slice())
                .map(Some)
                .map_err(|e| bad_answer(node, &format!("a query task that does not decode: {e}"))),
            _ => Err(bad_answer(node, "no query task")),
        }
    }
}
