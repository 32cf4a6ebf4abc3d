//! The shard owner: everything only the shard's leader may do, for one Raft term.
//!
//! An owner is started when this node becomes the serving leader of its shard for a
//! term and stopped when that term ends (a leader change, a step-down, shutdown).
//! It holds the workflow locks, the pending queries, the history long-poll
//! watchers and the timer service's wake-up of its shard, and it commits only in its
//! own term ([`hourglass_raft::Node::propose_in_term`]). A transaction built under
//! an owner that has stopped fails with [`ServiceError::NotLeader`]; one built from
//! stale state is rejected at apply by the state-version precondition.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use hourglass_raft::Node;
use hourglass_storage::records::ShardId;
use hourglass_storage::state::{Applied, QueueKey, RequestDedupe, RunKey, ShardState, Transition, WorkflowKey};
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::{Mutex as AsyncMutex, Notify, OwnedMutexGuard};

use crate::core::error::RunError;
use crate::core::state::ExecutionState;
use crate::core::txn::{RunTxn, TxnEffects};
use crate::core::RunView;
use crate::engine::errors::{MisuseError, StoredDataError};
use crate::error::{Result, ServiceError};
use crate::matching::{Matching, TaskRef};
use crate::shard::queries::QueryRegistry;
use crate::shard::updates::UpdateRegistry;
use crate::shard::watchers::HistoryWatchers;

pub struct ShardOwner {
    shard: ShardId,
    term: u64,
    node: Node,
    matching: Matching,
    locks: Mutex<HashMap<WorkflowKey, Weak<AsyncMutex<()>>>>,
    queries: QueryRegistry,
    updates: UpdateRegistry,
    watchers: HistoryWatchers,
    timer_wakeup: Notify,
    stopped: AtomicBool,
    stop_notify: Notify,
}

/// Locks kept before dead entries are swept.
const LOCKS_SWEEP_AT: usize = 4096;

impl ShardOwner {
    pub(crate) fn new(shard: ShardId, term: u64, node: Node, matching: Matching, query_dispatch: Matching) -> Self {
        Self {
            shard,
            term,
            node,
            matching,
            locks: Mutex::new(HashMap::new()),
            queries: QueryRegistry::new(shard, term, query_dispatch),
            updates: UpdateRegistry::default(),
            watchers: HistoryWatchers::default(),
            timer_wakeup: Notify::new(),
            stopped: AtomicBool::new(false),
            stop_notify: Notify::new(),
        }
    }

    pub fn shard(&self) -> ShardId {
        self.shard
    }
    /// The Raft term this owner serves.
    pub fn term(&self) -> u64 {
        self.term
    }
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
    /// Pending queries of this shard's runs and their legacy query tasks.
    pub fn queries(&self) -> &QueryRegistry {
        &self.queries
    }
    /// Long-poll waiters on this shard's histories; woken after every commit.
    pub fn updates(&self) -> &UpdateRegistry {
        &self.updates
    }

    pub fn watchers(&self) -> &HistoryWatchers {
        &self.watchers
    }
    /// Woken when a commit adds a timer to this shard.
    pub fn timer_wakeup(&self) -> &Notify {
        &self.timer_wakeup
    }

    fn not_leader(&self) -> ServiceError {
        let leader = self.node.leader(self.shard).ok().flatten();
        ServiceError::NotLeader { shard: self.shard, leader_hint: leader }
    }

    /// Confirms, for a read that must see every acknowledged write, that this owner's
    /// node still leads the shard (Raft ReadIndex with a quorum) and has applied
    /// everything committed so far. Free for a one-member group (its membership as
    /// applied now: a node added later makes the next read confirm).
    pub async fn confirm_leadership(&self) -> Result<()> {
        self.check_live()?;
        if !self.node.has_peers(self.shard).map_err(|e| ServiceError::from_raft(e, self.shard))? {
            return Ok(());
        }
        self.node.read_index(self.shard).await.map_err(|e| ServiceError::from_raft(e, self.shard))?;
        self.check_live()
    }

    /// `NotLeader` once this owner's term has ended.
    pub fn check_live(&self) -> Result<()> {
        if self.is_stopped() {
            return Err(self.not_leader());
        }
        Ok(())
    }

    /// Resolves when the owner stops (at once if it has).
    pub async fn stopped(&self) {
        loop {
            let notified = self.stop_notify.notified();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }

    /// Ends the owner's term: nothing new starts under it, waiters wake up and see
    /// `NotLeader`, pending queries fail, its tasks leave matching.
    pub(crate) fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        self.matching.retire_shard(self.shard, self.term);
        self.queries.retire();
        self.updates.retire();
        self.watchers.notify_all();
        self.timer_wakeup.notify_waiters();
        self.stop_notify.notify_waiters();
    }

    /// Serializes transactions on one workflow id (all its runs). Fails with
    /// `NotLeader` if the owner stopped, before or while waiting.
    pub async fn lock(self: &Arc<Self>, namespace: &str, workflow_id: &str) -> Result<WorkflowGuard> {
        self.check_live()?;
        let key = WorkflowKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string() };
        let mutex = {
            let mut locks = self.locks.lock();
            if locks.len() > LOCKS_SWEEP_AT {
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
        let guard = tokio::select! {
            guard = mutex.lock_owned() => guard,
            () = self.stopped() => return Err(self.not_leader()),
        };
        self.check_live()?;
        Ok(WorkflowGuard { owner: self.clone(), _guard: guard })
    }

    /// Runs `read` against the shard's applied state (this owner must be live).
    pub fn read<R>(&self, read: impl FnOnce(&ShardState) -> R) -> Result<R> {
        self.check_live()?;
        Ok(self.node.read(self.shard, read)?)
    }

    /// The current run of a workflow: (run id, open).
    pub fn current_run(&self, namespace: &str, workflow_id: &str) -> Result<Option<(String, bool)>> {
        let wf = WorkflowKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string() };
        self.read(|s| s.current_run(&wf).map(|c| (c.run_id.to_string(), c.open)))
    }

    /// Loads a run's state; `None` if the run does not exist (or was dropped).
    pub fn load(&self, key: &RunKey) -> Result<Option<RunView>> {
        let raw = self.read(|s| {
            s.run(key).map(|r| {
                let timers: Vec<(u64, Bytes)> = r.timer_ids().filter_map(|id| s.timer(id).map(|t| (id, t.payload().clone()))).collect();
                (r.state().clone(), r.next_event_id(), r.state_version(), timers)
            })
        })?;
        let Some((bytes, next_event_id, state_version, stored_timers)) = raw else { return Ok(None) };
        let state =
            ExecutionState::decode(bytes.as_ref()).map_err(|source| StoredDataError::UndecodableState { run: key.clone(), source })?;
        Ok(Some(RunView { key: key.clone(), state, next_event_id: next_event_id as i64, state_version, stored_timers }))
    }

    /// Loads a run or fails with `NotFound`.
    pub fn load_existing(&self, key: &RunKey) -> Result<RunView> {
        self.load(key)?.ok_or_else(|| RunError::NotFound { workflow_id: key.workflow_id.clone(), run_id: key.run_id.clone() }.into())
    }

    /// The first answer recorded for a deduplicated request in this shard.
    pub fn dedupe_result(&self, namespace: &str, dedupe_id: &str) -> Result<Option<Bytes>> {
        self.read(|s| s.dedupe_result(namespace, dedupe_id).cloned())
    }

    /// Events `from..` of `run` (at most `max`), raw.
    pub fn read_history(&self, run: &RunKey, from: u64, max: usize) -> Result<Vec<(u64, Bytes)>> {
        self.check_live()?;
        Ok(self.node.read_history(self.shard, run, from, max)?)
    }

    /// Like [`ShardOwner::read_history`], also after this owner stopped: for events a
    /// transition of its own committed (applied on this node, so never rolled back
    /// and never changed), read to answer that transition's caller. A workflow task
    /// started by a committed transition must reach its poller even if the owner
    /// stops before the response is built: no other owner would hand it out again.
    pub fn read_committed_history(&self, run: &RunKey, from: u64, max: usize) -> Result<Vec<(u64, Bytes)>> {
        Ok(self.node.read_history(self.shard, run, from, max)?)
    }

    /// Proposes `transition` in this owner's term; answered once committed and applied.
    pub async fn propose(&self, transition: &Transition) -> Result<Applied> {
        self.check_live()?;
        match self.node.propose_in_term(self.shard, self.term, transition).await {
            Ok(applied) => Ok(applied),
            Err(e) => Err(ServiceError::from_raft(e, self.shard)),
        }
    }

    /// Commits several runs' transactions of this shard as ONE transition, with an
    /// optional request dedupe; then hands enqueued tasks to matching, wakes the
    /// timer service and the runs' history watchers. Callers hold the runs'
    /// workflow lock ([`WorkflowGuard::commit_many`]).
    async fn commit_txns(&self, txns: Vec<RunTxn>, dedupe: Option<RequestDedupe>) -> Result<(Vec<TxnEffects>, Option<Bytes>)> {
        let first = txns.first().ok_or(MisuseError::EmptyCommit)?;
        // One workflow's runs only: they share its lock and its shard.
        if let Some(other) = txns.iter().find(|t| (&t.key.namespace, &t.key.workflow_id) != (&first.key.namespace, &first.key.workflow_id))
        {
            return Err(MisuseError::TwoWorkflowsInOneCommit(first.key.clone(), other.key.clone()).into());
        }
        let time_ms = first.now_ms;
        let mut ops = Vec::new();
        let mut all_effects = Vec::with_capacity(txns.len());
        let mut keys = Vec::with_capacity(txns.len());
        for txn in txns {
            // Every decision of the core keeps its run's invariants; debug builds
            // (all tests) check them on every commit.
            #[cfg(debug_assertions)]
            if let Err(violation) = txn.verify() {
                panic!("{violation} in {:?} (events {:?})", txn.key, txn.events().iter().map(|e| e.event_type).collect::<Vec<_>>());
            }
            keys.push(txn.key.clone());
            let (t, effects) = txn.into_transition();
            ops.extend(t.ops);
            all_effects.push(effects);
        }
        let transition = Transition { time_ms, dedupe, ops };
        match self.propose(&transition).await? {
            Applied::Duplicate { result } => Ok((all_effects.iter().map(|_| TxnEffects::default()).collect(), Some(result))),
            Applied::Done { task_ids, .. } => {
                self.after_commit(&keys, &all_effects, task_ids);
                Ok((all_effects, None))
            }
        }
    }

    fn after_commit(&self, keys: &[RunKey], all_effects: &[TxnEffects], task_ids: Vec<u64>) {
        let enqueued: Vec<_> = all_effects.iter().zip(keys).flat_map(|(e, k)| e.enqueued.iter().map(move |t| (k, t))).collect();
        assert_eq!(task_ids.len(), enqueued.len(), "one assigned id per enqueued task");
        for ((run, task), id) in enqueued.into_iter().zip(task_ids) {
            let task_ref = TaskRef { shard: self.shard, term: self.term, task_id: id, run: run.clone(), payload: task.payload.clone() };
            self.matching.add(task.queue.clone(), task_ref);
        }
        for key in keys {
            self.watchers.notify(key);
        }
        if all_effects.iter().any(|e| e.timers_added > 0) {
            self.timer_wakeup.notify_one();
        }
    }

    /// Hands every task in this shard's backlog to matching (when the owner starts).
    pub(crate) fn load_backlog(&self) -> Result<usize> {
        self.offer_backlog(|_, _| true)
    }

    /// Hands the backlog tasks that `pick` selects (by queue and task id) to
    /// matching, which sends each to its queue's home; returns how many.
    pub fn offer_backlog(&self, pick: impl Fn(&QueueKey, u64) -> bool) -> Result<usize> {
        let tasks: Vec<(QueueKey, u64, RunKey, Bytes)> = self.node.read(self.shard, |s| {
            s.queues()
                .flat_map(|q| s.backlog(q).map(move |(id, t)| (q, id, t)))
                .filter(|(q, id, _)| pick(q, *id))
                .map(|(q, id, t)| (q.clone(), id, t.run().clone(), t.payload().clone()))
                .collect()
        })?;
        let mut offered = 0;
        for (queue, task_id, run, payload) in tasks {
            let Ok(payload) = crate::core::tasks::TaskPayload::decode(payload.as_ref()) else {
                tracing::error!(shard = self.shard, task_id, "backlog task payload does not decode; left in place");
                continue;
            };
            self.matching.add(queue, TaskRef { shard: self.shard, term: self.term, task_id, run, payload });
            offered += 1;
        }
        Ok(offered)
    }
}

/// Holds a workflow's lock under one owner: at most one transaction per workflow id
/// is built at a time, and everything it loads (through `Deref` to the owner) and
/// commits goes through that owner.
pub struct WorkflowGuard {
    owner: Arc<ShardOwner>,
    _guard: OwnedMutexGuard<()>,
}

impl std::ops::Deref for WorkflowGuard {
    type Target = ShardOwner;
    fn deref(&self) -> &ShardOwner {
        &self.owner
    }
}

impl WorkflowGuard {
    pub fn owner(&self) -> &Arc<ShardOwner> {
        &self.owner
    }
    /// Commits one run's transaction.
    pub async fn commit(&self, txn: RunTxn) -> Result<TxnEffects> {
        self.commit_with(txn, None).await.map(|(effects, _)| effects)
    }
    /// Like [`WorkflowGuard::commit`], with request dedupe: a duplicate returns the
    /// first commit's `result` and changes nothing.
    pub async fn commit_with(&self, txn: RunTxn, dedupe: Option<RequestDedupe>) -> Result<(TxnEffects, Option<Bytes>)> {
        let (mut effects, duplicate) = self.owner.commit_txns(vec![txn], dedupe).await?;
        Ok((effects.pop().unwrap_or_default(), duplicate))
    }
    /// Several runs of this workflow id in ONE transition (e.g. continue-as-new).
    pub async fn commit_many(&self, txns: Vec<RunTxn>, dedupe: Option<RequestDedupe>) -> Result<(Vec<TxnEffects>, Option<Bytes>)> {
        self.owner.commit_txns(txns, dedupe).await
    }
}
