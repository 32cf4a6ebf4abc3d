//! The history engine: Temporal semantics over the shard state machine.
//!
//! Every handler follows one pattern: route to the shard's owner and take the
//! workflow's lock there ([`Engine::lock_workflow`]), load the run's view
//! ([`RunView`]), let the pure core ([`crate::core`]) build a [`RunTxn`] (events, new
//! state, tasks, timers), and commit it through the lock ([`WorkflowGuard::commit`]) — one
//! proposal to the shard's Raft group in the owner's term, answered after it is
//! durable and applied. After the commit, matching learns the tasks it enqueued and
//! the owner's timer service re-checks its next deadline.

pub mod activity;
pub mod backlog;
pub mod children;
pub mod commands;
pub mod delete;
pub mod describe;
pub mod eager;
pub mod errors;
pub mod external;
pub mod external_steps;
pub mod history;
pub mod lifecycle;
pub mod list;
pub mod query;
pub mod reset;
pub mod runs;
pub mod schedules;
pub mod start;
pub mod timers;
pub mod update;
pub mod workflow_task;

use std::sync::Arc;

use hourglass_raft::Node;
use hourglass_storage::state::RunKey;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::core::error::RunError;
use crate::core::txn::RunTxn;
use crate::core::IdSource;
pub use crate::core::{CommandFailure, EngineConfig, RunView};
use crate::error::Result;
use crate::matching::pollers::Pollers;
use crate::matching::{Dispatcher, Matching};
use crate::shard::{OnOwnerStart, Router};
pub use crate::shard::{ShardOwner, WorkflowGuard};

/// Wall-clock time source (a seam for tests).
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// Fresh ids (UUIDv7, [`start::new_run_id`]) for the rules: the engine's [`IdSource`].
pub struct RandomIds;

impl IdSource for RandomIds {
    fn new_id(&mut self) -> String {
        start::new_run_id()
    }
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    node: Node,
    router: Router,
    matching: Matching,
    query_dispatch: Matching,
    /// Who polls this node's task queues, and their outstanding polls.
    pollers: Pollers,
    /// Starts tasks of shards led by other nodes (set on a cluster node).
    remote_tasks: std::sync::OnceLock<Arc<dyn crate::history_api::RemoteTasks>>,
    /// Runs child-workflow steps on shards led by other nodes (set on a cluster node).
    remote_shards: std::sync::OnceLock<Arc<dyn children::RemoteShards>>,
    /// Starts and reads scheduled workflows on other nodes (set on a cluster node).
    remote_workflows: std::sync::OnceLock<Arc<dyn schedules::RemoteWorkflows>>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    background: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    /// Builds the engine over `node` and starts following every shard's leadership:
    /// each shard this node serves gets an owner (locks, queries, watchers, its
    /// backlog in matching) and a timer service that lives as long as the owner.
    pub fn new(node: Node, config: EngineConfig, clock: Arc<dyn Clock>) -> Self {
        let matching = Matching::new(Dispatcher::Backlog);
        let query_dispatch = Matching::new(Dispatcher::Query);
        let pollers = Pollers::default();
        let (seen, now) = (pollers.clone(), clock.clone());
        let polled_lately: crate::matching::PolledLately =
            Arc::new(move |queue| seen.polled_since(queue, now.now_ms() - crate::core::sticky::STICKY_POLLER_WINDOW_MS));
        // Workflow tasks and legacy query tasks alike leave a sticky queue whose worker is gone.
        matching.set_polled_lately(polled_lately.clone());
        query_dispatch.set_polled_lately(polled_lately);
        let (started_tx, mut started) = mpsc::unbounded_channel::<Arc<ShardOwner>>();
        let on_start: OnOwnerStart = Arc::new(move |owner| {
            let _ = started_tx.send(owner);
        });
        let (router, mut background) = crate::shard::start_ownership(&node, &matching, &query_dispatch, on_start);
        let engine = Self {
            inner: Arc::new(EngineInner {
                node,
                router,
                matching,
                query_dispatch,
                pollers,
                remote_tasks: std::sync::OnceLock::new(),
                remote_shards: std::sync::OnceLock::new(),
                remote_workflows: std::sync::OnceLock::new(),
                clock,
                config,
                background: Mutex::new(Vec::new()),
            }),
        };
        let timers_for = engine.clone();
        background.push(tokio::spawn(async move {
            while let Some(owner) = started.recv().await {
                timers::spawn_timer_service(&timers_for, owner);
            }
        }));
        *engine.inner.background.lock() = background;
        engine
    }

    /// Runs `task` until the engine shuts down.
    pub fn spawn_background(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.inner.background.lock().push(tokio::spawn(task));
    }

    /// Stops following leadership and stops every owner (and so its timer service).
    pub fn shutdown(&self) {
        for task in self.inner.background.lock().drain(..) {
            task.abort();
        }
        for owner in self.inner.router.owners().all() {
            owner.stop();
        }
    }

    pub fn node(&self) -> &Node {
        &self.inner.node
    }
    /// Which shard a workflow lives in and its live owner.
    pub fn router(&self) -> &Router {
        &self.inner.router
    }
    /// Workflow and activity task dispatch (every shard's tasks, by task queue).
    pub fn matching(&self) -> &Matching {
        &self.inner.matching
    }
    /// Legacy query tasks of every shard, by task queue.
    pub fn query_dispatch(&self) -> &Matching {
        &self.inner.query_dispatch
    }
    /// The pollers of the task queues whose polls this node serves.
    pub fn pollers(&self) -> &Pollers {
        &self.inner.pollers
    }
    /// The dispatcher a task handed over by a peer goes to.
    pub fn dispatcher(&self, dispatcher: Dispatcher) -> &Matching {
        match dispatcher {
            Dispatcher::Backlog => &self.inner.matching,
            Dispatcher::Query => &self.inner.query_dispatch,
        }
    }
    /// Installs the cluster's way of starting tasks on other nodes (once).
    pub fn set_remote_tasks(&self, remote: Arc<dyn crate::history_api::RemoteTasks>) {
        let _ = self.inner.remote_tasks.set(remote);
    }
    /// Starts tasks of shards other nodes lead (`None` on a node without peers).
    pub fn remote_tasks(&self) -> Option<&Arc<dyn crate::history_api::RemoteTasks>> {
        self.inner.remote_tasks.get()
    }
    /// Installs the cluster's way of running child-workflow steps on other nodes (once).
    pub fn set_remote_shards(&self, remote: Arc<dyn children::RemoteShards>) {
        let _ = self.inner.remote_shards.set(remote);
    }
    /// Runs child-workflow steps on shards other nodes lead (`None` without peers).
    pub fn remote_shards(&self) -> Option<&Arc<dyn children::RemoteShards>> {
        self.inner.remote_shards.get()
    }
    /// Installs the cluster's way of starting scheduled workflows on other nodes (once).
    pub fn set_remote_workflows(&self, remote: Arc<dyn schedules::RemoteWorkflows>) {
        let _ = self.inner.remote_workflows.set(remote);
    }
    /// Starts scheduled workflows on shards other nodes lead (`None` without peers).
    pub fn remote_workflows(&self) -> Option<&Arc<dyn schedules::RemoteWorkflows>> {
        self.inner.remote_workflows.get()
    }
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The live owner of the shard holding `(namespace, workflow_id)`, for a read that
    /// must see every acknowledged write (Describe, history): the owner confirms it
    /// still leads first ([`ShardOwner::confirm_leadership`]).
    pub async fn owner_for_read(&self, namespace: &str, workflow_id: &str) -> Result<Arc<ShardOwner>> {
        let owner = self.owner_for(namespace, workflow_id).await?;
        owner.confirm_leadership().await?;
        Ok(owner)
    }

    /// The live owner of the shard holding `(namespace, workflow_id)`.
    pub async fn owner_for(&self, namespace: &str, workflow_id: &str) -> Result<Arc<ShardOwner>> {
        self.inner.router.owner_for(namespace, workflow_id).await
    }

    /// The live owner of `run`'s shard.
    pub async fn owner_of_run(&self, run: &RunKey) -> Result<Arc<ShardOwner>> {
        self.owner_for(&run.namespace, &run.workflow_id).await
    }

    /// Serializes transactions on one workflow id (all its runs), under the live
    /// owner of its shard; what the guard loads and commits goes through that owner.
    pub async fn lock_workflow(&self, namespace: &str, workflow_id: &str) -> Result<WorkflowGuard> {
        self.inner.router.lock(namespace, workflow_id).await
    }

    /// The current run of a workflow: (run id, open).
    pub async fn current_run(&self, namespace: &str, workflow_id: &str) -> Result<Option<(String, bool)>> {
        self.owner_for(namespace, workflow_id).await?.current_run(namespace, workflow_id)
    }

    /// Resolves an empty run id to the current run.
    pub async fn resolve_run(&self, namespace: &str, workflow_id: &str, run_id: &str) -> Result<RunKey> {
        let run_id = if run_id.is_empty() {
            self.current_run(namespace, workflow_id)
                .await?
                .map(|(id, _)| id)
                .ok_or_else(|| RunError::NoRun { workflow_id: workflow_id.to_string() })?
        } else {
            run_id.to_string()
        };
        Ok(RunKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string(), run_id })
    }

    /// Reads a run's state without its lock (for reads: describe, history, queries).
    pub async fn load(&self, key: &RunKey) -> Result<Option<RunView>> {
        self.owner_of_run(key).await?.load(key)
    }

    /// A transaction on a loaded run at the current time, fenced on its state version.
    pub fn txn(&self, run: RunView) -> RunTxn {
        RunTxn::from_view(run, self.now_ms())
    }

    /// Where the rules this engine runs get new ids.
    pub fn ids(&self) -> RandomIds {
        RandomIds
    }
}

impl Engine {
    /// Waits until every shard has a live owner on this node (or `wait` passes);
    /// returns whether they all do. A one-node server serves every shard.
    pub async fn wait_serving(&self, wait: std::time::Duration) -> bool {
        let router = self.router();
        for shard in 0..router.shard_count() {
            if router.owners().wait(shard, wait).await.is_none() {
                return false;
            }
        }
        true
    }
}

/// Shortcuts for unit tests that drive the engine directly.
#[cfg(test)]
impl Engine {
    /// The live owner of `run`'s shard, now.
    pub fn owner_now(&self, run: &RunKey) -> Arc<ShardOwner> {
        let shard = self.router().shard_for(&run.namespace, &run.workflow_id);
        self.router().owners().current(shard).expect("the run's shard has a live owner")
    }
    pub fn load_existing(&self, key: &RunKey) -> Result<RunView> {
        self.owner_now(key).load_existing(key)
    }
    pub fn current_run_now(&self, namespace: &str, workflow_id: &str) -> Result<Option<(String, bool)>> {
        let shard = self.router().shard_for(namespace, workflow_id);
        self.router().owners().current(shard).expect("the shard has a live owner").current_run(namespace, workflow_id)
    }
    /// Commits `txn` under its workflow's lock.
    pub async fn commit(&self, txn: RunTxn) -> Result<crate::core::txn::TxnEffects> {
        let lock = self.lock_workflow(&txn.key.namespace, &txn.key.workflow_id).await?;
        lock.commit(txn).await
    }
}
