//! The records the state machine keeps: runs, tasks, timers, dedupe entries.

use std::collections::{BTreeMap, BTreeSet};
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
    pub(super) next_event_id: u64,
    pub(super) close_time_ms: Option<i64>,
    /// Contiguous from event 1, in event order; positions are distinct.
    pub(super) history: Vec<EventBatchRef>,
    /// Pending tasks of this run: task id → its queue.
    pub(super) tasks: BTreeMap<u64, Arc<QueueKey>>,
    /// Pending timers of this run.
    pub(super) timers: BTreeSet<u64>,
}

impl RunState {
    pub(super) fn new(state: Bytes) -> Self {
        Self {
            state,
            next_event_id: 1,
            close_time_ms: None,
            history: Vec::new(),
            tasks: BTreeMap::new(),
            timers: BTreeSet::new(),
        }
    }
    /// The mutable state (opaque to storage).
    pub fn state(&self) -> &Bytes {
        &self.state
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
    /// Ids of the run's pending timers, ascending.
    pub fn timer_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.timers.iter().copied()
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
