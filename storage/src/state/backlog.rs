//! Primitive changes to the task backlogs, timers and dedupe entries (see
//! `tables.rs` for the contract).

use std::sync::Arc;

use bytes::Bytes;

use super::memory;
use super::run::{DedupeEntry, DedupeKey, Task, Timer};
use super::tables::Tables;
use super::QueueKey;

impl Tables {
    /// The map's own key for `queue`, to share instead of copying the strings.
    pub fn queue_key(&self, queue: &QueueKey) -> Option<Arc<QueueKey>> {
        self.queues.get_key_value(queue).map(|(k, _)| k.clone())
    }

    pub fn backlog_len(&self, queue: &QueueKey) -> usize {
        self.queues.get(queue).map_or(0, |b| b.len())
    }

    pub fn insert_task(&mut self, queue: Arc<QueueKey>, id: u64, task: Task) {
        let run = task.run.clone();
        self.memory += memory::task(&task);
        if !self.queues.contains_key(&queue) {
            self.memory += memory::queue(&queue);
        }
        let old = self.queues.entry(queue.clone()).or_default().insert(id, task);
        assert!(old.is_none(), "task id {id} reused");
        self.run_mut(&run, |r| assert!(r.tasks.insert(id, queue).is_none(), "task {id} linked twice"));
        self.task_count += 1;
    }

    /// Removes a task from its backlog and its run; returns the backlog's key too.
    pub fn remove_task(&mut self, queue: &QueueKey, id: u64) -> (Arc<QueueKey>, Task) {
        let task = self.unlink_task(queue, id);
        let key = self.run_mut(&task.run, |r| r.tasks.remove(&id));
        (key.unwrap_or_else(|| panic!("task {id} not linked from its run")), task)
    }

    /// Removes a task from its backlog only (its run is going away).
    pub(super) fn unlink_task(&mut self, queue: &QueueKey, id: u64) -> Task {
        let backlog = self.queues.get_mut(queue).unwrap_or_else(|| panic!("backlog {queue:?} must exist"));
        let task = backlog.remove(&id).unwrap_or_else(|| panic!("task {id} must be in {queue:?}"));
        if backlog.is_empty() {
            self.queues.remove(queue);
            self.memory -= memory::queue(queue);
        }
        self.memory -= memory::task(&task);
        self.task_count -= 1;
        task
    }

    pub fn insert_timer(&mut self, id: u64, timer: Timer) {
        let run = timer.run.clone();
        self.memory += memory::timer(&timer);
        assert!(self.timers_due.insert((timer.due_ms, id)), "timer {id} due twice");
        assert!(self.timers.insert(id, timer).is_none(), "timer id {id} reused");
        self.run_mut(&run, |r| assert!(r.timers.insert(id), "timer {id} linked twice"));
    }

    /// Removes a timer from the timer tables and its run.
    pub fn remove_timer(&mut self, id: u64) -> Timer {
        let timer = self.unlink_timer(id);
        let linked = self.run_mut(&timer.run, |r| r.timers.remove(id));
        assert!(linked, "timer {id} not linked from its run");
        timer
    }

    /// Removes a timer from the timer tables only (its run is going away).
    pub(super) fn unlink_timer(&mut self, id: u64) -> Timer {
        let timer = self.timers.remove(&id).unwrap_or_else(|| panic!("timer {id} must exist"));
        assert!(self.timers_due.remove(&(timer.due_ms, id)), "timer {id} not in the due index");
        self.memory -= memory::timer(&timer);
        timer
    }

    /// Remembers a dedupe key, replacing an earlier (expired) entry for it.
    pub fn remember(&mut self, key: DedupeKey, result: Bytes, applied_ms: i64) {
        if self.dedupe.contains_key(&key) {
            self.forget(&key);
        }
        let key = Arc::new(key);
        let entry = DedupeEntry { result, applied_ms };
        self.memory += memory::dedupe(&key, &entry);
        assert!(self.dedupe_expiry.insert((applied_ms, key.clone())), "dedupe expiry indexed twice");
        self.dedupe.insert(key, entry);
    }

    pub fn forget(&mut self, key: &DedupeKey) {
        let (key, entry) = self.dedupe.remove_entry(key).unwrap_or_else(|| panic!("dedupe {key:?} must exist"));
        assert!(self.dedupe_expiry.remove(&(entry.applied_ms, key.clone())), "dedupe {key:?} not in expiry index");
        self.memory -= memory::dedupe(&key, &entry);
    }
}
