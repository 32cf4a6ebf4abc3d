//! Shared workflow-task rules every area uses: the buffering rule for events that
//! arrive from outside a workflow task, and scheduling a workflow task.

use temporalio_protos::protos::temporal::api::enums::v1::TaskQueueKind;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::WorkflowTaskScheduledEventAttributes;

use super::state::WorkflowTaskInfo;
use super::sticky;
use super::tasks::{TaskKind, TaskPayload};
use super::txn::{duration, RunTxn};

/// Adds an event that came from outside a workflow task (signal, activity result,
/// timer fired, cancel request, child result...). If a workflow task is in flight the
/// event is buffered until it ends; otherwise it is appended, and a workflow task is
/// scheduled if none is outstanding.
pub fn add_external_event(txn: &mut RunTxn, attributes: Attributes) {
    if txn.state.workflow_task_started() {
        txn.buffer_event(attributes);
    } else {
        txn.add_event(attributes);
        ensure_workflow_task(txn);
    }
}

/// Schedules a workflow task unless one is scheduled or started; returns its
/// scheduled event id when it scheduled one.
pub fn ensure_workflow_task(txn: &mut RunTxn) -> Option<i64> {
    if txn.state.has_workflow_task() || !txn.state.is_open() {
        return None;
    }
    Some(schedule_workflow_task(txn, txn.state.workflow_task_attempt.max(1)))
}

/// Appends WorkflowTaskScheduled with `attempt`, records it in the state and enqueues
/// it on the run's current queue: the worker's sticky queue while the run is sticky
/// (with its schedule-to-start timer, [`sticky`]), else the workflow's task queue.
/// The caller guarantees none is outstanding.
pub fn schedule_workflow_task(txn: &mut RunTxn, attempt: i32) -> i64 {
    schedule(txn, attempt, false)
}

/// Schedules a speculative workflow task (Go's), to carry an update to a run that has
/// none outstanding: its events are held out of history until something else happens
/// to the run, and dropped if the task only rejects updates
/// ([`super::state::ExecutionState::speculative_events`]). Returns its scheduled event
/// id, or `None` if a task is outstanding or the run is closed.
pub fn schedule_speculative_workflow_task(txn: &mut RunTxn) -> Option<i64> {
    if txn.state.has_workflow_task() || !txn.state.is_open() {
        return None;
    }
    Some(schedule(txn, txn.state.workflow_task_attempt.max(1), true))
}

fn schedule(txn: &mut RunTxn, attempt: i32, speculative: bool) -> i64 {
    assert!(txn.state.workflow_task.is_none(), "at most one workflow task per run");
    let queue = sticky::scheduling_queue(&txn.state);
    let is_sticky = queue.kind == TaskQueueKind::Sticky as i32;
    let timeout_ms = txn.state.workflow_task_timeout_ms;
    let scheduled = Attributes::WorkflowTaskScheduledEventAttributes(WorkflowTaskScheduledEventAttributes {
        task_queue: Some(queue.clone()),
        start_to_close_timeout: Some(duration(timeout_ms)),
        attempt,
    });
    let scheduled_event_id = if speculative { txn.hold_speculative_event(scheduled) } else { txn.add_event(scheduled) };
    txn.state.workflow_task = Some(WorkflowTaskInfo {
        scheduled_event_id,
        attempt,
        scheduled_time_ms: txn.now_ms,
        task_queue: queue.name.clone(),
        timeout_ms,
        ..Default::default()
    });
    let payload = TaskPayload {
        kind: TaskKind::WorkflowTask as i32,
        scheduled_event_id,
        attempt,
        normal_queue: if is_sticky { queue.normal_name.clone() } else { String::new() },
    };
    txn.enqueue_payload(&queue.name, payload);
    if is_sticky {
        sticky::arm_schedule_to_start(txn, scheduled_event_id, attempt);
    }
    scheduled_event_id
}
