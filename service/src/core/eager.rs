//! Eager execution: a task handed to the calling worker in the answer of the call
//! that made it, started in the same transition, never through matching (Temporal's
//! `service/history/api/startworkflow` and `respondworkflowtaskcompleted`).
//!
//! - **Eager workflow start**: a start with `request_eager_execution` whose first
//!   workflow task is due at once (no start delay, no cron wait) starts that task in
//!   the transition that creates the run (WorkflowTaskStarted is event 3, its
//!   `request_id` and `identity` the start request's) and answers it in
//!   `eager_workflow_task`. The Started event records `eager_execution_accepted`.
//!   A retried start (same request id) answers the task again while it is still that
//!   first one (started event 3, attempt 1); a start that finds an open run it uses
//!   answers none.
//! - **Eager activities**: each `ScheduleActivityTask` of a completion with
//!   `request_eager_execution` whose activity is still pending and not started once
//!   the completion's commands are applied (the run still open) is started in the
//!   completion's transition for the completing worker. As for a polled attempt, no
//!   ActivityTaskStarted is written until the outcome; the start-to-close (and
//!   heartbeat) timers are armed, so an attempt whose worker never runs it times out
//!   and is retried through matching. Temporal applies no per-completion cap (the
//!   SDK asks only for what it has slots for); neither does this.

use std::collections::HashSet;

use temporalio_protos::protos::temporal::api::command::v1::command::Attributes as Cmd;
use temporalio_protos::protos::temporal::api::command::v1::Command;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;

use super::activity::transitions;
use super::run::RunSpec;
use super::state::{ExecutionState, WorkflowTaskInfo};
use super::tasks::{TaskKind, TimerKind, TimerPayload};
use super::txn::RunTxn;
use super::workflow_task::{self, Poller};
use super::{cron, EngineConfig};

/// The event id of the first workflow task's WorkflowTaskStarted of a run started
/// eagerly (Started, Scheduled, Started).
pub const FIRST_TASK_STARTED_EVENT_ID: i64 = 3;

/// Whether a start of `spec` (asking for eagerness) at `now_ms` may start its first
/// workflow task eagerly: eagerness is on and the task is due at once (Temporal
/// declines when the first workflow task has a backoff: a start delay or a cron wait).
pub fn may_start_eagerly(config: &EngineConfig, spec: &RunSpec, now_ms: i64) -> bool {
    if !config.eager_workflow_start || spec.continuation.is_some() || spec.parent.is_some() {
        return false;
    }
    let cron_wait_ms = if spec.cron_schedule.is_empty() { 0 } else { cron::backoff_ms(&spec.cron_schedule, now_ms, now_ms).unwrap_or(0) };
    spec.start_delay_ms <= 0 && cron_wait_ms <= 0
}

/// In the transition creating a run (built by `new_run` + `begin_run` from a spec
/// [`may_start_eagerly`] accepted): takes the first workflow task out of matching and
/// starts it for `poller` (with the start's `request_id`), and marks the Started
/// event `eager_execution_accepted`. Returns the started task.
pub fn start_first_task(txn: &mut RunTxn, poller: &Poller, request_id: String, config: &EngineConfig) -> WorkflowTaskInfo {
    let wt = txn.state.workflow_task.clone().filter(|wt| wt.started_event_id == 0);
    let wt = wt.expect("a run accepted for eager start has its first workflow task scheduled");
    assert_eq!(wt.scheduled_event_id, FIRST_TASK_STARTED_EVENT_ID - 1, "the first workflow task of {:?} is not event 2", txn.key);
    let retracted = txn.retract_enqueue(TaskKind::WorkflowTask, wt.scheduled_event_id, wt.attempt);
    assert!(retracted, "the first workflow task of {:?} was not enqueued by its creation", txn.key);
    let started_event_id = workflow_task::start_unqueued(txn, &wt, poller, request_id, config);
    assert_eq!(started_event_id, FIRST_TASK_STARTED_EVENT_ID, "eager WorkflowTaskStarted of {:?} is not event 3", txn.key);
    txn.amend_event(1, |e| {
        if let Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) = e.attributes.as_mut() {
            a.eager_execution_accepted = true;
        }
    });
    // Temporal's eager WorkflowTaskStarted carries no history size (the run's size is
    // not known until its creating transaction closes); a polled one does.
    txn.amend_event(started_event_id, |e| {
        if let Some(Attributes::WorkflowTaskStartedEventAttributes(a)) = e.attributes.as_mut() {
            a.history_size_bytes = 0;
        }
    });
    txn.state.workflow_task.clone().expect("the eager task was just started")
}

/// For a retried eager start: the run's first workflow task if it is still the
/// started one the first answer handed out (Temporal: started event 3, attempt 1).
pub fn first_task_still_started(state: &ExecutionState) -> Option<WorkflowTaskInfo> {
    let wt = state.workflow_task.as_ref()?;
    (state.is_open() && wt.started_event_id == FIRST_TASK_STARTED_EVENT_ID && wt.attempt == 1).then(|| wt.clone())
}

/// The activity ids a completion's commands ask to run eagerly.
pub fn requested_activities(commands: &[Command]) -> HashSet<String> {
    commands
        .iter()
        .filter_map(|c| match &c.attributes {
            Some(Cmd::ScheduleActivityTaskCommandAttributes(a)) if a.request_eager_execution => Some(a.activity_id.clone()),
            _ => None,
        })
        .collect()
}

/// The activities scheduled in `txn` (ActivityTaskScheduled events it added) that
/// `requested` names: their scheduled event ids, in schedule order.
pub fn scheduled_in(txn: &RunTxn, requested: &HashSet<String>) -> Vec<i64> {
    txn.events()
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::ActivityTaskScheduledEventAttributes(a)) if requested.contains(&a.activity_id) => Some(e.event_id),
            _ => None,
        })
        .collect()
}

/// Starts activity `scheduled_event_id`, scheduled in this transition, for the
/// completing worker `identity`: its first attempt leaves matching (and its
/// schedule-to-start timer goes), and is recorded started with its start-to-close and
/// heartbeat timers armed. False (nothing changed) if the run closed or the activity
/// is gone, started or past its first attempt.
pub fn start_activity(txn: &mut RunTxn, scheduled_event_id: i64, identity: &str, request_id: &str) -> bool {
    if !txn.state.is_open() {
        return false;
    }
    let Some(ai) = txn.state.activity(scheduled_event_id) else { return false };
    if ai.started_time_ms > 0 || ai.attempt != 1 {
        return false;
    }
    let attempt = ai.attempt;
    if !txn.retract_enqueue(TaskKind::ActivityTask, scheduled_event_id, attempt) {
        return false;
    }
    let schedule_to_start =
        TimerPayload { kind: TimerKind::ActivityScheduleToStart as i32, event_id: scheduled_event_id, attempt, timer_id: String::new() };
    txn.retract_timer(&schedule_to_start);
    transitions::start_attempt(txn, scheduled_event_id, identity, request_id);
    true
}

/// The poller an eager workflow task is started for: the start request's identity.
pub fn start_poller(identity: &str) -> Poller {
    Poller { identity: identity.to_string(), build_id: String::new() }
}

#[cfg(test)]
mod tests;
