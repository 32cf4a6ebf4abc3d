//! The history engine: Temporal semantics over the shard state machine.
//!
//! Every handler follows one pattern: take the workflow's lock, load the run's
//! [`state::ExecutionState`], build a [`txn::RunTxn`] (events, new state, tasks,
//! timers), and [`Engine::commit`] it — one proposal to the shard's Raft group,
//! answered after it is durable and applied. After the commit, matching learns the
//! tasks it enqueued and the shard's timer service re-checks its next deadline.

pub mod activity;
pub mod children;
pub mod commands;
pub mod describe;
pub mod external;
pub mod history;
pub mod lifecycle;
pub mod query;
pub mod retry;
pub mod start;
pub mod state;
pub mod tasks;
pub mod token;
pub mod txn;
pub mod wft;
pub mod workflow_task;

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use hourglass_raft::Node;
use hourglass_storage::records::ShardId;
use hourglass_storage::state::{Applied, QueueKey, RunKey, WorkflowKey};
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::error::{Result, ServiceError};
use crate::matching::{Matching, TaskRef};
use state::ExecutionState;
use txn::{RunTxn, TxnEffects};

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

/// Engine limits and defaults. Every limit is explicit.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Largest payload-bearing field accepted (input, result, details...), bytes.
    pub blob_bytes_max: usize,
    /// Default workflow task timeout when the start request sets none.
    pub default_workflow_task_timeout_ms: i64,
    /// Upper bound of a workflow task timeout.
    pub workflow_task_timeout_max_ms: i64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { blob_bytes_max: 2 << 20, default_workflow_task_timeout_ms: 10_000, workflow_task_timeout_max_ms: 120_000 }
    }
}

/// Why a command in a workflow task completion is refused: the workflow task fails
/// with `cause` (`temporal.api.enums.v1.WorkflowTaskFailedCause`) and nothing of that
/// completion is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandFailure {
    pub cause: i32,
    pub message: String,
}

/// A run as loaded for a transaction.
pub struct LoadedRun {
    pub key: RunKey,
    pub state: ExecutionState,
    pub next_event_id: i64,
    /// The run's state version when loaded: a transaction built from this load
    /// names it, so its state write fails if another committed in between.
    pub state_version: u64,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    node: Node,
    matching: Matching,
    queries: query::QueryRegistry,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    locks: Mutex<HashMap<WorkflowKey, Weak<AsyncMutex<()>>>>,
    timer_wakeups: Vec<tokio::sync::Notify>,
    history_watchers: history::HistoryWatchers,
}

/// Holds a workflow's lock: at most one transaction per workflow id is built at a time.
pub struct WorkflowGuard {
    _guard: OwnedMutexGuard<()>,
}

impl Engine {
    pub fn new(node: Node, config: EngineConfig, clock: Arc<dyn Clock>) -> Self {
        let shards = node.shard_count() as usize;
        let timer_wakeups = (0..shards).map(|_| tokio::sync::Notify::new()).collect();
        Self {
            inner: Arc::new(EngineInner {
                node,
                matching: Matching::default(),
                queries: query::QueryRegistry::default(),
                clock,
                config,
                locks: Mutex::new(HashMap::new()),
                timer_wakeups,
                history_watchers: Default::default(),
            }),
        }
    }

    pub fn node(&self) -> &Node {
        &self.inner.node
    }
    pub fn matching(&self) -> &Matching {
        &self.inner.matching
    }
    /// Pending workflow queries and the legacy query-task dispatcher.
    pub fn queries(&self) -> &query::QueryRegistry {
        &self.inner.queries
    }
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The shard owning a workflow: a stable hash (FNV-1a) of namespace and id.
    pub fn shard_for(&self, namespace: &str, workflow_id: &str) -> ShardId {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in namespace.bytes().chain([0u8]).chain(workflow_id.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % u64::from(self.inner.node.shard_count())) as ShardId
    }

    pub fn shard_of_run(&self, key: &RunKey) -> ShardId {
        self.shard_for(&key.namespace, &key.workflow_id)
    }

    /// Serializes transactions on one workflow id (all its runs).
    pub async fn lock_workflow(&self, namespace: &str, workflow_id: &str) -> WorkflowGuard {
        let key = WorkflowKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string() };
        let mutex = {
            let mut locks = self.inner.locks.lock();
            if locks.len() > 4096 {
                locks.retain(|_, weak| weak.strong_count() > 0);
            }
            match locks.get(&key).and_then(Weak::upgrade) {
                Some(m) => m,
                None => {
                    let m = Arc::new(AsyncMutex::new(()));
                    locks.insert(key, Arc::downgrade(&m));
                    m
                }
            }
        };
        WorkflowGuard { _guard: mutex.lock_owned().await }
    }

    /// The current run of a workflow: (run id, open).
    pub fn current_run(&self, namespace: &str, workflow_id: &str) -> Result<Option<(String, bool)>> {
        let shard = self.shard_for(namespace, workflow_id);
        let wf = WorkflowKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string() };
        Ok(self.inner.node.read(shard, |s| s.current_run(&wf).map(|c| (c.run_id.to_string(), c.open)))?)
    }

    /// Resolves an empty run id to the current run.
    pub fn resolve_run(&self, namespace: &str, workflow_id: &str, run_id: &str) -> Result<RunKey> {
        let run_id = if run_id.is_empty() {
            self.current_run(namespace, workflow_id)?
                .map(|(id, _)| id)
                .ok_or_else(|| ServiceError::NotFound(format!("workflow {workflow_id} not found")))?
        } else {
            run_id.to_string()
        };
        Ok(RunKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string(), run_id })
    }

    /// Loads a run's state; `None` if the run does not exist (or was dropped).
    pub fn load(&self, key: &RunKey) -> Result<Option<LoadedRun>> {
        let shard = self.shard_of_run(key);
        let raw = self.inner.node.read(shard, |s| s.run(key).map(|r| (r.state().clone(), r.next_event_id(), r.state_version())))?;
        let Some((bytes, next_event_id, state_version)) = raw else { return Ok(None) };
        let state = ExecutionState::decode(bytes.as_ref())
            .map_err(|e| ServiceError::Internal(format!("mutable state of {key:?} does not decode: {e}")))?;
        Ok(Some(LoadedRun { key: key.clone(), state, next_event_id: next_event_id as i64, state_version }))
    }

    /// Loads a run or fails with `NotFound`.
    pub fn load_existing(&self, key: &RunKey) -> Result<LoadedRun> {
        self.load(key)?.ok_or_else(|| ServiceError::NotFound(format!("workflow execution {}/{} not found", key.workflow_id, key.run_id)))
    }

    /// A transaction on a loaded run at the current time.
    pub fn txn(&self, run: LoadedRun) -> RunTxn {
        RunTxn::existing(run.key, self.now_ms(), run.state, run.next_event_id).with_expected_version(run.state_version)
    }

    /// Proposes `txn` to its shard and waits until it is committed and applied. Then
    /// hands enqueued tasks to matching and wakes the shard's timer service.
    pub async fn commit(&self, txn: RunTxn) -> Result<TxnEffects> {
        self.commit_with(txn, None).await.map(|(effects, _)| effects)
    }

    /// Like [`Engine::commit`], with request dedupe: a duplicate returns the first
    /// commit's `result` and changes nothing.
    pub async fn commit_with(
        &self,
        txn: RunTxn,
        dedupe: Option<hourglass_storage::state::RequestDedupe>,
    ) -> Result<(TxnEffects, Option<bytes::Bytes>)> {
        let (mut effects, duplicate) = self.commit_many(vec![txn], dedupe).await?;
        Ok((effects.pop().unwrap_or_default(), duplicate))
    }

    /// Commits several runs' transactions as ONE transition (e.g. continue-as-new: the
    /// old run closes and the new one starts atomically). All must be on one shard,
    /// which holds for runs of one workflow id.
    pub async fn commit_many(
        &self,
        txns: Vec<RunTxn>,
        dedupe: Option<hourglass_storage::state::RequestDedupe>,
    ) -> Result<(Vec<TxnEffects>, Option<bytes::Bytes>)> {
        let first = txns.first().ok_or_else(|| ServiceError::Internal("commit of no transactions".into()))?;
        let shard = self.shard_of_run(&first.key);
        let time_ms = first.now_ms;
        let mut ops = Vec::new();
        let mut all_effects = Vec::with_capacity(txns.len());
        let mut keys = Vec::with_capacity(txns.len());
        for txn in txns {
            if self.shard_of_run(&txn.key) != shard {
                return Err(ServiceError::Internal(format!("runs of one transition span shards: {:?}", txn.key)));
            }
            keys.push(txn.key.clone());
            let (t, effects) = txn.into_transition();
            ops.extend(t.ops);
            all_effects.push(effects);
        }
        let transition = hourglass_storage::state::Transition { time_ms, dedupe, ops };
        match self.inner.node.propose(shard, &transition).await? {
            Applied::Duplicate { result } => Ok((all_effects.iter().map(|_| TxnEffects::default()).collect(), Some(result))),
            Applied::Done { task_ids, .. } => {
                let enqueued = all_effects.iter().zip(&keys).flat_map(|(e, k)| e.enqueued.iter().map(move |t| (k, t)));
                let enqueued: Vec<_> = enqueued.collect();
                assert_eq!(task_ids.len(), enqueued.len(), "one assigned id per enqueued task");
                for ((run, task), id) in enqueued.into_iter().zip(task_ids) {
                    let task_ref = TaskRef { shard, task_id: id, run: run.clone(), payload: task.payload.clone() };
                    self.inner.matching.add(task.queue.clone(), task_ref);
                }
                for key in &keys {
                    self.inner.history_watchers.notify(key);
                }
                if all_effects.iter().any(|e| e.timers_added > 0) {
                    self.inner.timer_wakeups[shard as usize].notify_one();
                }
                Ok((all_effects, None))
            }
        }
    }

    /// Long-poll waiters on runs' histories; notified after every commit to the run.
    pub fn history_watchers(&self) -> &history::HistoryWatchers {
        &self.inner.history_watchers
    }

    /// Woken when a commit adds a timer to `shard`.
    pub fn timer_wakeup(&self, shard: ShardId) -> &tokio::sync::Notify {
        &self.inner.timer_wakeups[shard as usize]
    }

    /// Hands every task in every shard's backlog to matching (after a restart).
    pub fn load_backlogs(&self) -> Result<usize> {
        let mut loaded = 0;
        for shard in 0..self.inner.node.shard_count() {
            let tasks: Vec<(QueueKey, u64, RunKey, bytes::Bytes)> = self.inner.node.read(shard, |s| {
                s.queues().flat_map(|q| s.backlog(q).map(move |(id, t)| (q.clone(), id, t.run().clone(), t.payload().clone()))).collect()
            })?;
            for (queue, task_id, run, payload) in tasks {
                let Ok(payload) = tasks::TaskPayload::decode(payload.as_ref()) else {
                    tracing::error!(shard, task_id, "backlog task payload does not decode; left in place");
                    continue;
                };
                self.inner.matching.add(queue, TaskRef { shard, task_id, run, payload });
                loaded += 1;
            }
        }
        Ok(loaded)
    }
}
