//! Sticky task queues, as Temporal's server keeps them.
//!
//! A worker that caches a run's state completes its workflow task with
//! `sticky_attributes`: its own queue (kind STICKY) and a schedule-to-start timeout.
//! The run remembers both ([`StickyInfo`], durable on [`ExecutionState`]). While the
//! run is sticky:
//!
//! - every workflow task is scheduled on the sticky queue (WorkflowTaskScheduled names
//!   it, `normalName` the run's queue) with a schedule-to-start timer
//!   ([`TimerKind::WorkflowTaskScheduleToStart`]); the backlog task carries the normal
//!   queue so matching can send it there when the sticky worker is gone;
//! - a task started from the sticky queue carries only the events after the previous
//!   started workflow task (the engine's poll response);
//! - a task started from the normal queue (matching sent it there) ends stickiness, and
//!   a task polled from a sticky queue the run left is stale;
//! - the schedule-to-start timer of a task nobody started records WorkflowTaskTimedOut
//!   (SCHEDULE_TO_START, no started id), ends stickiness and schedules the task again on
//!   the normal queue, attempt not incremented ([`time_out_schedule_to_start`]);
//! - a failed or timed-out task ends stickiness (its retry goes to the normal queue,
//!   attempt 1, see `workflow_task::retry_workflow_task`), as does a completion without
//!   sticky attributes and `ResetStickyTaskQueue`.

use temporalio_protos::protos::temporal::api::enums::v1::{TaskQueueKind, TimeoutType};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::WorkflowTaskTimedOutEventAttributes;
use temporalio_protos::protos::temporal::api::taskqueue::v1::{StickyExecutionAttributes, TaskQueue};

use super::state::ExecutionState;
use super::tasks::{TimerKind, TimerPayload};
use super::txn::{duration_ms, RunTxn};
use super::wft;

/// How recently a sticky queue must have been polled for a task to wait there (Go's
/// matching: `stickyPollerUnavailableWindow`); otherwise matching sends it to the
/// normal queue at once.
pub const STICKY_POLLER_WINDOW_MS: i64 = 10_000;

/// The sticky queue of a run (durable, tag 70 of [`ExecutionState`]).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StickyInfo {
    /// The worker's sticky queue name (never empty while set).
    #[prost(string, tag = "1")]
    pub queue: String,
    /// How long a task waits there before it goes back to the normal queue.
    #[prost(int64, tag = "2")]
    pub schedule_to_start_ms: i64,
}

/// The sticky queue the run's tasks go to, if any.
pub fn sticky_queue(state: &ExecutionState) -> Option<&str> {
    state.sticky.as_ref().map(|s| s.queue.as_str()).filter(|q| !q.is_empty())
}

/// A completion's `sticky_attributes` make the run sticky (or not, when absent or
/// naming no queue), as Go's RespondWorkflowTaskCompleted does before the next task is
/// scheduled.
pub fn on_completion(state: &mut ExecutionState, attributes: Option<&StickyExecutionAttributes>) {
    let queue = attributes.and_then(|a| a.worker_task_queue.as_ref()).map(|q| q.name.as_str()).unwrap_or_default();
    state.sticky = match attributes {
        Some(a) if !queue.is_empty() => {
            Some(StickyInfo { queue: queue.to_string(), schedule_to_start_ms: duration_ms(a.schedule_to_start_timeout.as_ref()) })
        }
        _ => None,
    };
}

/// Ends stickiness; true when the run was sticky.
pub fn clear(state: &mut ExecutionState) -> bool {
    state.sticky.take().is_some()
}

/// The task queue a workflow task scheduled now goes to, as WorkflowTaskScheduled
/// records it: the sticky queue (with the normal name) while sticky, else the normal.
pub fn scheduling_queue(state: &ExecutionState) -> TaskQueue {
    match sticky_queue(state) {
        Some(sticky) => TaskQueue { name: sticky.to_string(), kind: TaskQueueKind::Sticky as i32, normal_name: state.task_queue.clone() },
        None => TaskQueue { name: state.task_queue.clone(), kind: TaskQueueKind::Normal as i32, normal_name: String::new() },
    }
}

/// Arms the schedule-to-start timer of the sticky task (`scheduled_event_id`,
/// `attempt`) just scheduled.
pub fn arm_schedule_to_start(txn: &mut RunTxn, scheduled_event_id: i64, attempt: i32) {
    let timeout_ms = txn.state.sticky.as_ref().map_or(0, |s| s.schedule_to_start_ms.max(0));
    let timer = TimerPayload {
        kind: TimerKind::WorkflowTaskScheduleToStart as i32,
        event_id: scheduled_event_id,
        attempt,
        timer_id: String::new(),
    };
    txn.add_timer(txn.now_ms.saturating_add(timeout_ms), timer);
}

/// How a poll from queue `polled` may start the run's scheduled task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollFit {
    /// Start it.
    Start,
    /// Start it, and end stickiness (a sticky task matching sent to the normal queue:
    /// the poller has no cached state, it gets the full history).
    StartUnstuck,
    /// A task polled from a sticky queue the run has left: skip it (Go:
    /// ObsoleteMatchingTask); the schedule-to-start timer moves the task on.
    Stale,
}

/// Go's RecordWorkflowTaskStarted rules for a poll of queue `polled` (a name).
pub fn poll_fit(state: &ExecutionState, polled: &str) -> PollFit {
    match sticky_queue(state) {
        Some(sticky) if sticky == polled => PollFit::Start,
        Some(_) => PollFit::StartUnstuck,
        None if polled == state.task_queue => PollFit::Start,
        None => PollFit::Stale,
    }
}

/// The schedule-to-start timer of sticky task (`scheduled_event_id`, `attempt`) fired:
/// if that task is still scheduled and not started, WorkflowTaskTimedOut
/// (SCHEDULE_TO_START), stickiness ends and the task is scheduled again on the normal
/// queue, attempt 1 (Go does not count it as a failed attempt). False (nothing
/// changed) for a stale timer.
pub fn time_out_schedule_to_start(txn: &mut RunTxn, scheduled_event_id: i64, attempt: i32) -> bool {
    let pending = txn
        .state
        .workflow_task
        .as_ref()
        .is_some_and(|wt| wt.scheduled_event_id == scheduled_event_id && wt.attempt == attempt && wt.started_event_id == 0);
    if !pending || !txn.state.is_open() {
        return false;
    }
    txn.add_event(Attributes::WorkflowTaskTimedOutEventAttributes(WorkflowTaskTimedOutEventAttributes {
        scheduled_event_id,
        started_event_id: 0,
        timeout_type: TimeoutType::ScheduleToStart as i32,
    }));
    clear(&mut txn.state);
    txn.state.workflow_task = None;
    txn.flush_buffered_events();
    txn.state.workflow_task_attempt = 1;
    wft::schedule_workflow_task(txn, 1);
    true
}

#[cfg(test)]
mod tests;
