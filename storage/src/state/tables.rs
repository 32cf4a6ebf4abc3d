//! The state's tables and the primitive changes to them. Each primitive keeps
//! every index and the memory total in step; callers (ops, undo, retention,
//! restore) check preconditions first, and the primitives assert them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;

use super::current::{CurrentIndex, WorkflowIdent};
use super::memory;
use super::run::{min_run_key, push_compact, DedupeEntry, DedupeKey, EventBatchRef, RunState, Task, Timer};
use super::{QueueKey, RunKey};
use crate::log::LogPosition;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tables {
    pub runs: BTreeMap<Arc<RunKey>, RunState>,
    /// Workflow → its most recently created run (open or closed).
    pub current: CurrentIndex,
    /// Closed runs by close time: the retention index.
    pub closed: BTreeSet<(i64, Arc<RunKey>)>,
    /// Every (position, run) a history batch refers to.
    pub positions: BTreeSet<(LogPosition, Arc<RunKey>)>,
    /// Non-empty backlogs, tasks by id.
    pub queues: BTreeMap<Arc<QueueKey>, BTreeMap<u64, Task>>,
    pub timers: BTreeMap<u64, Timer>,
    pub timers_due: BTreeSet<(i64, u64)>,
    pub dedupe: BTreeMap<Arc<DedupeKey>, DedupeEntry>,
    /// Dedupe entries by applied time: their retention index.
    pub dedupe_expiry: BTreeSet<(i64, Arc<DedupeKey>)>,
    pub next_task_id: u64,
    pub next_timer_id: u64,
    pub open_runs: usize,
    pub task_count: usize,
    pub memory: usize,
}

impl Tables {
    pub fn new() -> Self {
        Self {
            runs: BTreeMap::new(),
            current: CurrentIndex::default(),
            closed: BTreeSet::new(),
            positions: BTreeSet::new(),
            queues: BTreeMap::new(),
            timers: BTreeMap::new(),
            timers_due: BTreeSet::new(),
            dedupe: BTreeMap::new(),
            dedupe_expiry: BTreeSet::new(),
            next_task_id: 1,
            next_timer_id: 1,
            open_runs: 0,
            task_count: 0,
            memory: 0,
        }
    }

    /// Changes an existing run, keeping the memory total in step.
    pub(super) fn run_mut<R>(&mut self, key: &RunKey, change: impl FnOnce(&mut RunState) -> R) -> R {
        let run = self.runs.get_mut(key).unwrap_or_else(|| panic!("run {key:?} must exist"));
        let before = memory::run(key, run);
        let out = change(run);
        self.memory = self.memory - before + memory::run(key, run);
        out
    }

    /// Inserts an open run with no history at state version `state_version`.
    pub fn insert_run(&mut self, key: Arc<RunKey>, state: Bytes, state_version: u64) {
        let run = RunState { state_version, ..RunState::new(state) };
        self.memory += memory::run(&key, &run);
        let old = self.runs.insert(key, run);
        assert!(old.is_none(), "run created twice");
        self.open_runs += 1;
    }

    /// Removes a run with everything hanging off it: tasks, timers, history refs,
    /// its retention entry and the current-run entry if it points at it.
    pub fn remove_run(&mut self, key: &RunKey) -> RunState {
        let (key, run) = self.runs.remove_entry(key).unwrap_or_else(|| panic!("run {key:?} must exist"));
        self.memory -= memory::run(&key, &run);
        for (id, queue) in &run.tasks {
            self.unlink_task(queue, *id);
        }
        for id in run.timers.iter() {
            self.unlink_timer(id);
        }
        for batch in &run.history {
            assert!(self.positions.remove(&(batch.pos, key.clone())), "batch at {:?} not indexed", batch.pos);
        }
        match run.close_time_ms {
            Some(at) => assert!(self.closed.remove(&(at, key.clone())), "closed run {key:?} not indexed"),
            None => self.open_runs -= 1,
        }
        if self.current.get(&*key) == Some(&key) {
            self.set_current(&*key, None);
        }
        run
    }

    /// Points the current-run entry of workflow `wf` at `run` (or removes it),
    /// returning what it pointed at before.
    pub fn set_current(&mut self, wf: &dyn WorkflowIdent, run: Option<Arc<RunKey>>) -> Option<Arc<RunKey>> {
        let prev = match run {
            Some(run) => {
                assert!(self.runs.contains_key(&run), "current run {run:?} must exist");
                let same = run.namespace == wf.namespace() && run.workflow_id == wf.workflow_id();
                assert!(same, "current run {run:?} must belong to workflow {:?}", wf.workflow_id());
                self.memory += memory::CURRENT;
                self.current.set(run)
            }
            None => self.current.remove(wf),
        };
        if prev.is_some() {
            self.memory -= memory::CURRENT;
        }
        prev
    }

    /// Appends a batch of `count` events at `pos`, merging it into the last batch
    /// when that one is at the same position (two appends in one transition).
    /// Returns whether it merged.
    pub fn append_batch(&mut self, key: &Arc<RunKey>, count: u64, pos: LogPosition) -> bool {
        assert!(count > 0, "empty batch");
        let merged = self.run_mut(key, |run| {
            let first_event_id = run.next_event_id;
            run.next_event_id = first_event_id.checked_add(count).expect("event id overflow must be rejected first");
            match run.history.last_mut() {
                Some(last) if last.pos == pos => {
                    last.count += count;
                    true
                }
                _ => {
                    push_compact(&mut run.history, EventBatchRef { first_event_id, count, pos });
                    false
                }
            }
        });
        if !merged {
            assert!(self.positions.insert((pos, key.clone())), "run {key:?} already refers to {pos:?}");
        }
        merged
    }

    /// Undoes [`Self::append_batch`].
    pub fn unappend_batch(&mut self, key: &Arc<RunKey>, count: u64, merged: bool) {
        let removed = self.run_mut(key, |run| {
            let last = run.history.last_mut().expect("batch to undo");
            assert!(last.count >= count, "undo of {count} events from a batch of {}", last.count);
            run.next_event_id -= count;
            if merged {
                assert!(last.count > count, "merged batch must keep events");
                last.count -= count;
                None
            } else {
                assert_eq!(last.count, count, "undo must remove the whole batch");
                run.history.pop()
            }
        });
        if let Some(batch) = removed {
            assert!(self.positions.remove(&(batch.pos, key.clone())), "batch at {:?} not indexed", batch.pos);
        }
    }

    /// Points the batch of `key` at `from` to `to`.
    pub fn move_batch(&mut self, key: &Arc<RunKey>, from: LogPosition, to: LogPosition) {
        assert!(self.positions.remove(&(from, key.clone())), "run {key:?} does not refer to {from:?}");
        assert!(self.positions.insert((to, key.clone())), "run {key:?} already refers to {to:?}");
        self.run_mut(key, |run| {
            let batch = run.history.iter_mut().find(|b| b.pos == from).expect("indexed batch must exist");
            batch.pos = to;
        });
    }

    /// The runs with a history batch at `pos`.
    pub fn runs_at(&self, pos: LogPosition) -> impl Iterator<Item = &Arc<RunKey>> + '_ {
        self.positions.range((pos, min_run_key())..).take_while(move |(p, _)| *p == pos).map(|(_, k)| k)
    }

    /// Replaces a run's state and sets its state version, returning the old pair.
    pub fn replace_state(&mut self, key: &RunKey, state: Bytes, version: u64) -> (Bytes, u64) {
        self.run_mut(key, |run| (std::mem::replace(&mut run.state, state), std::mem::replace(&mut run.state_version, version)))
    }

    pub fn close_run(&mut self, key: &Arc<RunKey>, time_ms: i64) {
        self.run_mut(key, |run| {
            assert!(run.is_open(), "closing closed run");
            run.close_time_ms = Some(time_ms);
        });
        assert!(self.closed.insert((time_ms, key.clone())), "closed run indexed twice");
        self.open_runs -= 1;
    }

    /// Undoes [`Self::close_run`].
    pub fn reopen_run(&mut self, key: &Arc<RunKey>) {
        let at = self.run_mut(key, |run| run.close_time_ms.take().expect("reopening open run"));
        assert!(self.closed.remove(&(at, key.clone())), "closed run not indexed");
        self.open_runs += 1;
    }
}
