//! [`ShardState::verify`]: every invariant that ties the tables together, checked
//! from scratch. Restore runs it on every snapshot; tests run it after every step.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::memory;
use super::run::RunState;
use super::tables::Tables;
use super::{InvariantError, RunKey, ShardState};

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(InvariantError(format!($($fmt)+)));
        }
    };
}

impl ShardState {
    /// Checks every invariant of the state in O(size). A failure is a bug (or, in
    /// [`ShardState::restore`], bytes that are no snapshot).
    pub fn verify(&self) -> Result<(), InvariantError> {
        let t = &self.tables;
        verify_runs(t)?;
        verify_current(t)?;
        verify_tasks(t)?;
        verify_timers(t)?;
        verify_dedupe(t)?;
        let recount = memory::recount(t);
        ensure!(recount == t.memory, "memory total {} but recount {recount}", t.memory);
        Ok(())
    }
}

fn verify_runs(t: &Tables) -> Result<(), InvariantError> {
    let (mut open, mut batches) = (0, 0);
    for (key, run) in &t.runs {
        ensure!(run.state_version >= 1, "run {key:?} at state version 0");
        verify_history(t, key, run)?;
        verify_links(t, key, run)?;
        batches += run.history.len();
        match run.close_time_ms {
            None => {
                open += 1;
                ensure!(t.current.get(&**key) == Some(key), "open run {key:?} is not its workflow's current run");
            }
            Some(at) => {
                ensure!(t.closed.contains(&(at, key.clone())), "closed run {key:?} missing from the retention index")
            }
        }
    }
    ensure!(open == t.open_runs, "{open} open runs, counter says {}", t.open_runs);
    ensure!(t.runs.len() - open == t.closed.len(), "retention index has {} entries", t.closed.len());
    ensure!(batches == t.positions.len(), "{batches} batches, position index has {}", t.positions.len());
    Ok(())
}

fn verify_history(t: &Tables, key: &Arc<RunKey>, run: &RunState) -> Result<(), InvariantError> {
    let mut next = 1u64;
    let mut positions = BTreeSet::new();
    for batch in &run.history {
        ensure!(batch.count > 0 && batch.first_event_id == next, "run {key:?} history not dense at {next}: {batch:?}");
        next = batch.first_event_id.checked_add(batch.count).ok_or_else(|| InvariantError(format!("run {key:?} event ids overflow")))?;
        ensure!(positions.insert(batch.pos), "run {key:?} refers to {:?} twice", batch.pos);
        ensure!(t.positions.contains(&(batch.pos, key.clone())), "batch {batch:?} of {key:?} not indexed");
    }
    ensure!(run.next_event_id == next, "run {key:?} next event id {} but history ends at {next}", run.next_event_id);
    Ok(())
}

/// The run's task and timer links point at tasks and timers of this run.
fn verify_links(t: &Tables, key: &Arc<RunKey>, run: &RunState) -> Result<(), InvariantError> {
    for (id, queue) in &run.tasks {
        let task = t.queues.get(queue).and_then(|b| b.get(id));
        ensure!(task.is_some_and(|task| task.run == *key), "task {id} of run {key:?} not in backlog {queue:?}");
    }
    for id in run.timers.iter() {
        ensure!(t.timers.get(&id).is_some_and(|timer| timer.run == *key), "timer {id} of run {key:?} missing");
    }
    Ok(())
}

fn verify_current(t: &Tables) -> Result<(), InvariantError> {
    for key in t.current.runs() {
        ensure!(t.runs.contains_key(key), "current run {key:?} does not exist");
    }
    Ok(())
}

fn verify_tasks(t: &Tables) -> Result<(), InvariantError> {
    let mut ids = BTreeSet::new();
    for (queue, backlog) in &t.queues {
        ensure!(!backlog.is_empty(), "empty backlog {queue:?} kept");
        for (id, task) in backlog {
            ensure!(*id >= 1 && *id < t.next_task_id, "task id {id} outside 1..{}", t.next_task_id);
            ensure!(ids.insert(*id), "task id {id} in two backlogs");
            let link = t.runs.get(&task.run).and_then(|r| r.tasks.get(id));
            ensure!(link == Some(queue), "task {id} in {queue:?} not linked from run {:?}", task.run);
        }
    }
    ensure!(ids.len() == t.task_count, "{} tasks, counter says {}", ids.len(), t.task_count);
    let links: usize = t.runs.values().map(|r| r.tasks.len()).sum();
    ensure!(links == ids.len(), "{links} task links for {} tasks", ids.len());
    Ok(())
}

fn verify_timers(t: &Tables) -> Result<(), InvariantError> {
    ensure!(t.timers_due.len() == t.timers.len(), "due index has {} of {} timers", t.timers_due.len(), t.timers.len());
    for (id, timer) in &t.timers {
        ensure!(*id >= 1 && *id < t.next_timer_id, "timer id {id} outside 1..{}", t.next_timer_id);
        ensure!(t.timers_due.contains(&(timer.due_ms, *id)), "timer {id} missing from the due index");
        let linked = t.runs.get(&timer.run).is_some_and(|r| r.timers.contains(*id));
        ensure!(linked, "timer {id} not linked from run {:?}", timer.run);
    }
    let links: usize = t.runs.values().map(|r| r.timers.len()).sum();
    ensure!(links == t.timers.len(), "{links} timer links for {} timers", t.timers.len());
    Ok(())
}

fn verify_dedupe(t: &Tables) -> Result<(), InvariantError> {
    ensure!(t.dedupe_expiry.len() == t.dedupe.len(), "expiry index has {} of {} entries", t.dedupe_expiry.len(), t.dedupe.len());
    for (key, entry) in &t.dedupe {
        ensure!(t.dedupe_expiry.contains(&(entry.applied_ms, key.clone())), "dedupe {key:?} missing from the expiry index");
    }
    Ok(())
}
