//! The records the state machine keeps: runs, tasks, timers, dedupe entries.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{QueueKey, RunKey};
use crate::log::LogPosition;

/// Where a contiguous batch of a run's history events lives: the log record of the
/// transition that appended them. Events `first_event_id .. first_event_id + count`
/// are exactly that run's `AppendEvents` events in the record, in op order (read
/// them with [`super::events_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventBatchRef {
    pub first_event_id: u64,
    pub count: u64,
    pub pos: LogPosition,
}

impl EventBatchRef {
    /// One past the last event id of the batch.
    pub fn end_event_id(&self) -> u64 {
        self.first_event_id + self.count
    }
}

/// One run of a workflow: its opaque mutable state and the index of its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    pub(super) state: Bytes,
    /// 1 at creation, +1 per applied (fenced) `SetState`: what a `SetState` must
    /// name as its `expected_version`.
    pub(super) state_version: u64,
    pub(super) next_event_id: u64,
    pub(super) close_time_ms: Option<i64>,
    /// Contiguous from event 1, in event order; positions are distinct. Grown with
    /// [`push_compact`]: most runs hold a handful of batches.
    pub(super) history: Vec<EventBatchRef>,
    /// Pending tasks of this run: task id → its queue.
    pub(super) tasks: BTreeMap<u64, Arc<QueueKey>>,
    /// Pending timers of this run.
    pub(super) timers: IdSet,
}

/// Pushes onto `v`, growing its allocation by half (at least one slot) instead of
/// doubling from four: a run's short lists then waste little room, and growth
/// stays geometric (amortized O(1) per push).
pub(super) fn push_compact<T>(v: &mut Vec<T>, item: T) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 2).max(1));
    }
    v.push(item);
}

/// A sorted set of ids in one small allocation. A run has few pending timers (at
/// most `timers_max_per_run`); a B-tree set would take a 112-byte node for one.
/// Ids are handed out in increasing order, so inserts are nearly always appends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct IdSet(Vec<u64>);

impl IdSet {
    /// Adds `id`; false if it was there.
    pub fn insert(&mut self, id: u64) -> bool {
        match self.0.binary_search(&id) {
            Ok(_) => false,
            Err(at) if at == self.0.len() => {
                push_compact(&mut self.0, id);
                true
            }
            Err(at) => {
                if self.0.len() == self.0.capacity() {
                    self.0.reserve_exact((self.0.len() / 2).max(1));
                }
                self.0.insert(at, id);
                true
            }
        }
    }

    /// Removes `id`; false if it was not there. Frees the allocation when empty.
    pub fn remove(&mut self, id: u64) -> bool {
        let Ok(at) = self.0.binary_search(&id) else { return false };
        self.0.remove(at);
        if self.0.is_empty() {
            self.0 = Vec::new();
        } else if self.0.len() * 4 <= self.0.capacity() {
            self.0.shrink_to_fit();
        }
        true
    }

    pub fn contains(&self, id: u64) -> bool {
        self.0.binary_search(&id).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().copied()
    }
}

impl RunState {
    pub(super) fn new(state: Bytes) -> Self {
        Self {
            state,
            state_version: 1,
            next_event_id: 1,
            close_time_ms: None,
            history: Vec::new(),
            tasks: BTreeMap::new(),
            timers: IdSet::default(),
        }
    }
    /// The mutable state (opaque to storage).
    pub fn state(&self) -> &Bytes {
        &self.state
    }
    /// The version of [`Self::state`]: 1 when the run was created, plus one per
    /// `SetState` applied since. A `SetState` built from this state must carry it
    /// as its `expected_version`.
    pub fn state_version(&self) -> u64 {
        self.state_version
    }
    /// The id the next appended event must have (event ids are dense from 1).
    pub fn next_event_id(&self) -> u64 {
        self.next_event_id
    }
    /// Number of history events.
    pub fn event_count(&self) -> u64 {
        self.next_event_id - 1
    }
    pub fn is_open(&self) -> bool {
        self.close_time_ms.is_none()
    }
    /// The `time_ms` of the transition that closed the run.
    pub fn close_time_ms(&self) -> Option<i64> {
        self.close_time_ms
    }
    /// Every history batch, in event order.
    pub fn history(&self) -> &[EventBatchRef] {
        &self.history
    }
    /// The batches holding events `event_id..`, starting with the one containing
    /// `event_id` (empty if the run has no such event).
    pub fn history_from(&self, event_id: u64) -> &[EventBatchRef] {
        let start = self.history.partition_point(|b| b.end_event_id() <= event_id);
        &self.history[start..]
    }
    /// Ids of the run's tasks still in a backlog, ascending.
    pub fn task_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.tasks.keys().copied()
    }
    /// The backlog queue holding the run's task `task_id`, if it is still there.
    pub fn task_queue(&self, task_id: u64) -> Option<&QueueKey> {
        self.tasks.get(&task_id).map(|q| &**q)
    }
    /// Ids of the run's pending timers, ascending.
    pub fn timer_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.timers.iter()
    }
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }
}

/// The current run of a workflow: the one most recently created, open or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentRun<'a> {
    pub run_id: &'a str,
    pub open: bool,
}

/// A task in a backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub(super) run: Arc<RunKey>,
    pub(super) payload: Bytes,
}

impl Task {
    /// The run the task belongs to.
    pub fn run(&self) -> &RunKey {
        &self.run
    }
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }
}

/// A pending timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub(super) run: Arc<RunKey>,
    pub(super) due_ms: i64,
    pub(super) payload: Bytes,
}

impl Timer {
    /// The run the timer belongs to.
    pub fn run(&self) -> &RunKey {
        &self.run
    }
    pub fn due_ms(&self) -> i64 {
        self.due_ms
    }
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct DedupeKey {
    pub namespace: String,
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DedupeEntry {
    pub result: Bytes,
    pub applied_ms: i64,
}

/// The smallest run key: a lower bound for ranges over `(_, Arc<RunKey>)` sets.
pub(super) fn min_run_key() -> Arc<RunKey> {
    Arc::new(RunKey { namespace: String::new(), workflow_id: String::new(), run_id: String::new() })
}
