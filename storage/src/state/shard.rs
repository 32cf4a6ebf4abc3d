//! [`ShardState`]: the state of one shard, and every read of it.

use bytes::Bytes;

use super::run::{CurrentRun, DedupeKey, RunState, Task, Timer};
use super::tables::Tables;
use super::{QueueKey, RunKey, ShardConfig, WorkflowKey};
use crate::log::LogPosition;
use crate::records::ShardId;

/// The state machine of one shard: runs (mutable state and history index), the
/// current-run index, task backlogs, timers and request dedupe. Pure: it changes
/// only through [`ShardState::apply`] (and [`ShardState::relocate`], which moves
/// history refs without changing what they refer to).
///
/// Two states compare equal when they hold the same data, whatever path led there
/// (applied transitions or a restored snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardState {
    pub(super) shard: ShardId,
    pub(super) config: ShardConfig,
    pub(super) applied_index: u64,
    pub(super) tables: Tables,
}

impl ShardState {
    /// An empty state. `config` should pass [`ShardConfig::validate`]; any value is
    /// well defined.
    pub fn new(shard: ShardId, config: ShardConfig) -> Self {
        Self { shard, config, applied_index: 0, tables: Tables::new() }
    }
    pub fn shard(&self) -> ShardId {
        self.shard
    }
    pub fn config(&self) -> &ShardConfig {
        &self.config
    }
    /// The Raft index of the last entry applied or skipped.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }
    pub fn run(&self, run: &RunKey) -> Option<&RunState> {
        self.tables.runs.get(run)
    }
    /// Every run, in key order.
    pub fn runs(&self) -> impl Iterator<Item = (&RunKey, &RunState)> + '_ {
        self.tables.runs.iter().map(|(k, r)| (&**k, r))
    }
    /// The runs of one workflow id still in the state (open, or closed within the
    /// retention), in run-id order.
    pub fn runs_of(&self, namespace: &str, workflow_id: &str) -> impl Iterator<Item = (&RunKey, &RunState)> + '_ {
        let from =
            std::sync::Arc::new(RunKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string(), run_id: String::new() });
        let (namespace, workflow_id) = (namespace.to_string(), workflow_id.to_string());
        self.tables
            .runs
            .range(from..)
            .take_while(move |(k, _)| k.namespace == namespace && k.workflow_id == workflow_id)
            .map(|(k, r)| (&**k, r))
    }
    pub fn current_run(&self, workflow: &WorkflowKey) -> Option<CurrentRun<'_>> {
        let key = self.tables.current.get(workflow)?;
        let run = self.tables.runs.get(key).expect("current run must exist");
        Some(CurrentRun { run_id: &key.run_id, open: run.is_open() })
    }
    /// The backlog of `queue` in task-id order (empty if it has none).
    pub fn backlog(&self, queue: &QueueKey) -> impl Iterator<Item = (u64, &Task)> + '_ {
        self.tables.queues.get(queue).into_iter().flat_map(|b| b.iter().map(|(id, t)| (*id, t)))
    }
    pub fn backlog_len(&self, queue: &QueueKey) -> usize {
        self.tables.backlog_len(queue)
    }
    pub fn task(&self, queue: &QueueKey, task_id: u64) -> Option<&Task> {
        self.tables.queues.get(queue)?.get(&task_id)
    }
    /// The queues with a non-empty backlog, in key order.
    pub fn queues(&self) -> impl Iterator<Item = &QueueKey> + '_ {
        self.tables.queues.keys().map(|k| &**k)
    }
    /// Timers due at or before `now_ms`, ordered by (due time, id).
    pub fn due_timers(&self, now_ms: i64) -> impl Iterator<Item = (u64, &Timer)> + '_ {
        self.tables.timers_due.range(..=(now_ms, u64::MAX)).map(|(_, id)| (*id, &self.tables.timers[id]))
    }
    pub fn timer(&self, timer_id: u64) -> Option<&Timer> {
        self.tables.timers.get(&timer_id)
    }
    /// When the earliest pending timer is due.
    pub fn next_timer_due_ms(&self) -> Option<i64> {
        self.tables.timers_due.first().map(|(due, _)| *due)
    }
    /// The result remembered for a dedupe key. It may have outlived its retention
    /// by a few transitions (see [`ShardConfig::retention_sweep_max`]); `apply`
    /// ignores expired entries.
    pub fn dedupe_result(&self, namespace: &str, request_id: &str) -> Option<&Bytes> {
        let key = DedupeKey { namespace: namespace.to_owned(), request_id: request_id.to_owned() };
        self.tables.dedupe.get(&key).map(|e| &e.result)
    }
    pub fn run_count(&self) -> usize {
        self.tables.runs.len()
    }
    pub fn open_run_count(&self) -> usize {
        self.tables.open_runs
    }
    pub fn task_count(&self) -> usize {
        self.tables.task_count
    }
    pub fn timer_count(&self) -> usize {
        self.tables.timers.len()
    }
    pub fn dedupe_count(&self) -> usize {
        self.tables.dedupe.len()
    }
    /// Approximate heap bytes held by the state (kept up to date in O(1)).
    pub fn memory_bytes(&self) -> usize {
        self.tables.memory
    }

    /// Every log position a history batch refers to, ascending, each once.
    pub fn live_positions(&self) -> impl Iterator<Item = LogPosition> + '_ {
        self.live_positions_from(LogPosition { segment_id: 0, offset: 0 })
    }

    /// The live positions within one segment, ascending.
    pub fn live_positions_in(&self, segment_id: u64) -> impl Iterator<Item = LogPosition> + '_ {
        let start = LogPosition { segment_id, offset: 0 };
        self.live_positions_from(start).take_while(move |p| p.segment_id == segment_id)
    }

    fn live_positions_from(&self, start: LogPosition) -> impl Iterator<Item = LogPosition> + '_ {
        let mut last = None;
        self.tables.positions.range((start, super::run::min_run_key())..).filter_map(move |(pos, _)| {
            let fresh = last != Some(*pos);
            last = Some(*pos);
            fresh.then_some(*pos)
        })
    }

    /// Rewrites every history ref at `from` to `to` (space reclaim copied the
    /// record), returning how many refs changed. Pure and local to this replica.
    ///
    /// # Panics
    /// If a run referring to `from` also refers to `to`: `to` must be a fresh
    /// record, and silently merging the refs would lose history.
    pub fn relocate(&mut self, from: LogPosition, to: LogPosition) -> usize {
        let runs: Vec<_> = self.tables.runs_at(from).cloned().collect();
        if from == to {
            return runs.len();
        }
        for run in &runs {
            assert!(!self.tables.positions.contains(&(to, run.clone())), "relocate target {to:?} already referenced by run {run:?}");
        }
        for run in &runs {
            self.tables.move_batch(run, from, to);
        }
        runs.len()
    }
}
