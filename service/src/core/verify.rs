//! The run's invariants, checked after every decision in tests (as
//! `hourglass_storage::state::verify` does for a shard).

use super::state::ExecutionState;
use super::txn::RunTxn;

/// A broken invariant of a run's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run invariant broken: {0}")]
pub struct Violation(pub String);

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), Violation> {
    if ok {
        Ok(())
    } else {
        Err(Violation(what()))
    }
}

impl ExecutionState {
    /// Checks the run's invariants given the id its next event will get.
    pub fn verify(&self, next_event_id: i64) -> Result<(), Violation> {
        let last = next_event_id - 1;
        check(next_event_id >= 1, || format!("next event id {next_event_id} < 1"))?;
        if !self.is_open() {
            check(self.workflow_task.is_none(), || "a closed run has a workflow task".into())?;
            check(self.activities.is_empty(), || "a closed run has pending activities".into())?;
            check(self.timers.is_empty(), || "a closed run has pending timers".into())?;
            check(self.buffered_events.is_empty(), || "a closed run has buffered events".into())?;
            check(self.close_event_id > 0 && self.close_event_id <= last, || format!("close event id {} of {last}", self.close_event_id))?;
        }
        self.verify_speculative(next_event_id)?;
        // A speculative workflow task's events take ids past the written ones.
        let held_last = last + self.speculative_events.len() as i64;
        if let Some(wt) = &self.workflow_task {
            check(wt.scheduled_event_id > 0 && wt.scheduled_event_id <= held_last, || {
                format!("workflow task scheduled at {}", wt.scheduled_event_id)
            })?;
            check(wt.started_event_id == 0 || (wt.started_event_id > wt.scheduled_event_id && wt.started_event_id <= held_last), || {
                format!("workflow task started at {} (scheduled {})", wt.started_event_id, wt.scheduled_event_id)
            })?;
            check(wt.attempt >= 1, || format!("workflow task attempt {}", wt.attempt))?;
        } else {
            check(self.buffered_events.is_empty(), || "events buffered without a started workflow task".into())?;
        }
        if !self.buffered_events.is_empty() {
            check(self.workflow_task_started(), || "events buffered while no workflow task is started".into())?;
        }
        for a in &self.activities {
            check(a.scheduled_event_id > 0 && a.scheduled_event_id <= last, || format!("activity scheduled at {}", a.scheduled_event_id))?;
            check(a.attempt >= 1, || format!("activity {} attempt {}", a.activity_id, a.attempt))?;
        }
        let mut ids: Vec<&str> = self.activities.iter().map(|a| a.activity_id.as_str()).collect();
        ids.sort_unstable();
        check(ids.windows(2).all(|w| w[0] != w[1]), || "two pending activities share an id".into())?;
        for t in &self.timers {
            check(t.started_event_id > 0 && t.started_event_id <= last, || {
                format!("timer {} started at {}", t.timer_id, t.started_event_id)
            })?;
        }
        let mut timer_ids: Vec<&str> = self.timers.iter().map(|t| t.timer_id.as_str()).collect();
        timer_ids.sort_unstable();
        check(timer_ids.windows(2).all(|w| w[0] != w[1]), || "two pending timers share an id".into())?;
        for c in &self.children {
            check(c.initiated_event_id > 0 && c.initiated_event_id <= last, || format!("child initiated at {}", c.initiated_event_id))?;
        }
        check(self.history_size_bytes >= 0, || format!("history size {}", self.history_size_bytes))?;
        Ok(())
    }
}

impl ExecutionState {
    /// A speculative workflow task's held events: its Scheduled (and Started) event,
    /// numbered from the next written id, for the outstanding task.
    fn verify_speculative(&self, next_event_id: i64) -> Result<(), Violation> {
        if self.speculative_events.is_empty() {
            return Ok(());
        }
        check(self.speculative_events.len() <= 2, || format!("{} held events", self.speculative_events.len()))?;
        for (i, e) in self.speculative_events.iter().enumerate() {
            check(e.event_id == next_event_id + i as i64, || format!("held event {} at position {i} (next {next_event_id})", e.event_id))?;
        }
        let wt = self.workflow_task.as_ref();
        check(wt.is_some_and(|wt| wt.scheduled_event_id == next_event_id), || "held events without their workflow task".into())?;
        let started = wt.map_or(0, |wt| wt.started_event_id);
        check((started > 0) == (self.speculative_events.len() == 2), || format!("held events of a task started at {started}"))
    }
}

impl RunTxn {
    /// Checks the invariants of the state this transaction would write, and that its
    /// events are numbered densely up to its next event id.
    pub fn verify(&self) -> Result<(), Violation> {
        let events = self.events();
        let first = self.next_written_event_id() - events.len() as i64;
        for (i, e) in events.iter().enumerate() {
            check(e.event_id == first + i as i64, || format!("event {} at position {} (first {first})", e.event_id, i))?;
        }
        self.state.verify(self.next_written_event_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::{ActivityInfo, WorkflowTaskInfo};
    use temporalio_protos::protos::temporal::api::enums::v1::WorkflowExecutionStatus;

    fn open() -> ExecutionState {
        ExecutionState { status: WorkflowExecutionStatus::Running as i32, ..Default::default() }
    }

    #[test]
    fn a_consistent_open_run_passes() {
        let mut s = open();
        s.workflow_task = Some(WorkflowTaskInfo { scheduled_event_id: 2, started_event_id: 3, attempt: 1, ..Default::default() });
        s.activities.push(ActivityInfo { scheduled_event_id: 3, activity_id: "a".into(), attempt: 1, ..Default::default() });
        assert_eq!(s.verify(4), Ok(()));
    }

    #[test]
    fn broken_runs_are_caught() {
        let mut closed = open();
        closed.status = WorkflowExecutionStatus::Completed as i32;
        closed.close_event_id = 5;
        closed.close_time_ms = 1;
        closed.workflow_task = Some(WorkflowTaskInfo { scheduled_event_id: 2, attempt: 1, ..Default::default() });
        assert!(closed.verify(6).is_err(), "closed with a workflow task");

        let mut future = open();
        future.workflow_task = Some(WorkflowTaskInfo { scheduled_event_id: 9, attempt: 1, ..Default::default() });
        assert!(future.verify(4).is_err(), "scheduled at an event not yet written");

        let mut buffered = open();
        buffered.buffered_events.push(vec![1]);
        assert!(buffered.verify(2).is_err(), "buffered without a started task");

        let mut twins = open();
        let a = ActivityInfo { scheduled_event_id: 2, activity_id: "x".into(), attempt: 1, ..Default::default() };
        twins.activities = vec![a.clone(), ActivityInfo { scheduled_event_id: 3, ..a }];
        assert!(twins.verify(4).is_err(), "two activities with one id");
    }
}
