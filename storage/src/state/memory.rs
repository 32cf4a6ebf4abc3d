//! Approximate heap footprint of each kind of record, so the state can keep a
//! running total in O(1) per change. Estimates, not measurements: fixed sizes plus
//! string and payload lengths, with a flat allowance for B-tree and Arc overhead.

use std::mem::size_of;

use super::run::{DedupeEntry, DedupeKey, EventBatchRef, RunState, Task, Timer};
use super::{QueueKey, RunKey};

/// Per-entry overhead of a B-tree slot, an Arc header and allocator rounding.
const ENTRY: usize = 48;
/// A history batch: the ref plus its entry in the position index.
const BATCH: usize = size_of::<EventBatchRef>() + 24 + ENTRY / 2;
/// A task id in its run's map.
const LINK: usize = 16 + ENTRY / 2;
/// A timer id in its run's sorted id list.
const TIMER_LINK: usize = 16;
/// An entry of the current-run index: a shared run key in a B-tree slot.
pub(super) const CURRENT: usize = 8 + ENTRY / 2;

fn run_key(k: &RunKey) -> usize {
    size_of::<RunKey>() + k.namespace.len() + k.workflow_id.len() + k.run_id.len()
}

/// A run with its key, history refs, links to its tasks and timers and, when
/// closed, its entry in the retention index.
pub(super) fn run(key: &RunKey, run: &RunState) -> usize {
    let closed = if run.is_open() { 0 } else { 24 + ENTRY / 2 };
    ENTRY
        + run_key(key)
        + size_of::<RunState>()
        + run.state.len()
        + run.history.len() * BATCH
        + run.tasks.len() * LINK
        + run.timers.len() * TIMER_LINK
        + closed
}

/// A backlog (the queue key and its empty map).
pub(super) fn queue(q: &QueueKey) -> usize {
    ENTRY + size_of::<QueueKey>() + q.namespace.len() + q.name.len() + 24
}

pub(super) fn task(t: &Task) -> usize {
    ENTRY + 8 + size_of::<Task>() + t.payload.len()
}

/// A timer with its entry in the due index.
pub(super) fn timer(t: &Timer) -> usize {
    2 * ENTRY + 24 + size_of::<Timer>() + t.payload.len()
}

/// A dedupe entry with its entry in the expiry index.
pub(super) fn dedupe(k: &DedupeKey, e: &DedupeEntry) -> usize {
    2 * ENTRY + 16 + size_of::<DedupeKey>() + k.namespace.len() + k.request_id.len() + size_of::<DedupeEntry>() + e.result.len()
}

/// The total computed from scratch; equals the running total of a sound state.
pub(super) fn recount(t: &super::tables::Tables) -> usize {
    let runs: usize = t.runs.iter().map(|(k, r)| run(k, r)).sum();
    let current = t.current.len() * CURRENT;
    let queues: usize = t.queues.iter().map(|(q, b)| queue(q) + b.values().map(task).sum::<usize>()).sum();
    let timers: usize = t.timers.values().map(timer).sum();
    let dedupe: usize = t.dedupe.iter().map(|(k, e)| dedupe(k, e)).sum();
    runs + current + queues + timers + dedupe
}
