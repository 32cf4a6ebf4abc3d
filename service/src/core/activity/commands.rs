//! The activity and timer commands of a workflow task completion. Each runs inside
//! the completion's transaction, after its WorkflowTaskCompleted event
//! (`workflow_task_completed_event_id`), and either adds its events and state or
//! refuses with the `WorkflowTaskFailedCause` Temporal uses
//! (`go/service/history/api/respondworkflowtaskcompleted/workflow_task_completed_handler.go`).

use prost::Message;
use temporalio_protos::protos::temporal::api::command::v1::{
    CancelTimerCommandAttributes, RequestCancelActivityTaskCommandAttributes, ScheduleActivityTaskCommandAttributes,
    StartTimerCommandAttributes,
};
use temporalio_protos::protos::temporal::api::common::v1::{Payload, Payloads};
use temporalio_protos::protos::temporal::api::enums::v1::{TaskQueueKind, WorkflowTaskFailedCause as Cause};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    ActivityTaskCancelRequestedEventAttributes, ActivityTaskCanceledEventAttributes, ActivityTaskScheduledEventAttributes, HistoryEvent,
    TimerCanceledEventAttributes, TimerStartedEventAttributes,
};
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;

use super::normalize::{self, checked_ms, ID_BYTES_MAX};
use super::transitions::{self, timer};
use crate::core::state::{ActivityInfo, TimerInfo};
use crate::core::tasks::{TimerKind, TimerPayload};
use crate::core::txn::{duration, RunTxn};
use crate::core::CommandFailure;

/// Details of the ActivityTaskCanceled written when a cancel request finds the
/// activity not started (Temporal's `activityCancellationMsgActivityNotStarted`).
pub const CANCELED_NOT_STARTED_DETAILS: &str = "ACTIVITY_ID_NOT_STARTED";

fn refuse(cause: Cause, message: impl Into<String>) -> CommandFailure {
    CommandFailure { cause: cause as i32, message: message.into() }
}

// `use_workflow_build_id` is deprecated in the API but still sent by SDKs and kept in
// history by Temporal.
#[allow(deprecated)]
/// `ScheduleActivityTask`: validates and normalises the attributes, adds
/// ActivityTaskScheduled, records the activity, enqueues attempt 1 and arms its
/// schedule-to-start and schedule-to-close timers.
pub fn schedule_activity(
    txn: &mut RunTxn,
    attrs: ScheduleActivityTaskCommandAttributes,
    workflow_task_completed_event_id: i64,
) -> Result<(), CommandFailure> {
    let bad = |m: String| refuse(Cause::BadScheduleActivityAttributes, m);
    let workflow_queue = txn.state.task_queue.clone();
    let n = normalize::normalize(&attrs, txn.state.run_timeout_ms, &workflow_queue).map_err(bad)?;
    if attrs.use_workflow_build_id && n.task_queue != workflow_queue {
        return Err(bad("Activity with UseCompatibleVersion cannot run on different task queue.".into()));
    }
    if txn.state.activities.iter().any(|a| a.activity_id == attrs.activity_id) {
        return Err(refuse(
            Cause::ScheduleActivityDuplicateId,
            format!("an activity with ActivityID {} is already pending", attrs.activity_id),
        ));
    }
    let t = n.timeouts;
    let activity_type = attrs.activity_type.clone().unwrap_or_default();
    let scheduled_event_id = txn.add_event(Attributes::ActivityTaskScheduledEventAttributes(ActivityTaskScheduledEventAttributes {
        activity_id: attrs.activity_id.clone(),
        activity_type: Some(activity_type.clone()),
        task_queue: Some(TaskQueue { name: n.task_queue.clone(), kind: TaskQueueKind::Normal as i32, normal_name: String::new() }),
        header: attrs.header,
        input: attrs.input,
        schedule_to_close_timeout: Some(duration(t.schedule_to_close_ms)),
        schedule_to_start_timeout: Some(duration(t.schedule_to_start_ms)),
        start_to_close_timeout: Some(duration(t.start_to_close_ms)),
        heartbeat_timeout: Some(duration(t.heartbeat_ms)),
        workflow_task_completed_event_id,
        retry_policy: Some(n.retry_policy.clone()),
        use_workflow_build_id: attrs.use_workflow_build_id,
        priority: attrs.priority,
    }));
    let now = txn.now_ms;
    txn.state.activities.push(ActivityInfo {
        scheduled_event_id,
        activity_id: attrs.activity_id,
        activity_type: activity_type.name,
        task_queue: n.task_queue,
        schedule_to_close_ms: t.schedule_to_close_ms,
        schedule_to_start_ms: t.schedule_to_start_ms,
        start_to_close_ms: t.start_to_close_ms,
        heartbeat_ms: t.heartbeat_ms,
        retry_policy: Some(n.retry_policy),
        attempt: 1,
        scheduled_time_ms: now,
        attempt_scheduled_time_ms: now,
        ..Default::default()
    });
    transitions::enqueue_attempt(txn, scheduled_event_id);
    if t.schedule_to_close_ms > 0 {
        txn.add_timer(now.saturating_add(t.schedule_to_close_ms), timer(TimerKind::ActivityScheduleToClose, scheduled_event_id, 1));
    }
    Ok(())
}

/// `RequestCancelActivityTask`: adds ActivityTaskCancelRequested. An activity whose
/// current attempt has not started is canceled at once (ActivityTaskCanceled follows);
/// a started one is marked, and the worker learns it from its next heartbeat.
///
/// When this cancels at once, the completion must schedule a new workflow task:
/// check [`activity_canceled_before_start`].
pub fn request_cancel_activity(
    txn: &mut RunTxn,
    attrs: RequestCancelActivityTaskCommandAttributes,
    workflow_task_completed_event_id: i64,
) -> Result<(), CommandFailure> {
    let bad = |m: String| refuse(Cause::BadRequestCancelActivityAttributes, m);
    let scheduled_event_id = attrs.scheduled_event_id;
    if scheduled_event_id <= 0 {
        return Err(bad("ScheduledEventId is not set on RequestCancelActivityTaskCommand.".into()));
    }
    let pending = txn.state.activity(scheduled_event_id).map(|a| (a.cancel_requested, a.started_time_ms > 0));
    match pending {
        None if !has_buffered_activity_outcome(txn, scheduled_event_id) => {
            return Err(bad(format!("no pending activity with ScheduledEventID {scheduled_event_id}")));
        }
        Some((true, _)) => return Err(bad(format!("activity with ScheduledEventID {scheduled_event_id} is already cancel-requested"))),
        _ => {}
    }
    let requested_event_id =
        txn.add_event(Attributes::ActivityTaskCancelRequestedEventAttributes(ActivityTaskCancelRequestedEventAttributes {
            scheduled_event_id,
            workflow_task_completed_event_id,
        }));
    // Already finished (its outcome waits in the buffer): the request is only recorded.
    let Some((_, started)) = pending else { return Ok(()) };
    if started {
        if let Some(ai) = txn.state.activity_mut(scheduled_event_id) {
            ai.cancel_requested = true;
            ai.cancel_requested_event_id = requested_event_id;
        }
        return Ok(());
    }
    txn.state.remove_activity(scheduled_event_id);
    let identity = completion_identity(txn, workflow_task_completed_event_id);
    txn.add_event(Attributes::ActivityTaskCanceledEventAttributes(ActivityTaskCanceledEventAttributes {
        details: Some(json_string_payloads(CANCELED_NOT_STARTED_DETAILS)),
        latest_cancel_requested_event_id: requested_event_id,
        scheduled_event_id,
        started_event_id: 0,
        identity,
        ..Default::default()
    }));
    Ok(())
}

/// Whether `events` (a completion's new events, `RunTxn::events`) cancel an activity
/// that had not started: then the workflow must get a new workflow task to see it.
pub fn activity_canceled_before_start(events: &[HistoryEvent]) -> bool {
    events.iter().any(|e| matches!(e.attributes, Some(Attributes::ActivityTaskCanceledEventAttributes(_))))
}

/// `StartTimer`: adds TimerStarted, records the timer and arms its durable timer.
pub fn start_timer(
    txn: &mut RunTxn,
    attrs: StartTimerCommandAttributes,
    workflow_task_completed_event_id: i64,
) -> Result<(), CommandFailure> {
    let bad = |m: String| refuse(Cause::BadStartTimerAttributes, m);
    let timer_id = attrs.timer_id;
    if timer_id.is_empty() {
        return Err(bad("TimerId is not set on StartTimerCommand.".into()));
    }
    if timer_id.len() > ID_BYTES_MAX {
        return Err(bad(format!("TimerId on StartTimerCommand exceeds length limit. Length={} Limit={ID_BYTES_MAX}", timer_id.len())));
    }
    let fire_after_ms = checked_ms(attrs.start_to_fire_timeout.as_ref(), "StartToFireTimeout")
        .map_err(|e| bad(format!("An invalid StartToFireTimeout is set on StartTimerCommand: {e}. TimerId={timer_id}")))?;
    if txn.state.timer(&timer_id).is_some() {
        return Err(refuse(Cause::StartTimerDuplicateId, format!("a timer with TimerID {timer_id} is already pending")));
    }
    let started_event_id = txn.add_event(Attributes::TimerStartedEventAttributes(TimerStartedEventAttributes {
        timer_id: timer_id.clone(),
        start_to_fire_timeout: Some(attrs.start_to_fire_timeout.unwrap_or_else(|| duration(0))),
        workflow_task_completed_event_id,
    }));
    let fire_time_ms = txn.now_ms.saturating_add(fire_after_ms);
    txn.state.timers.push(TimerInfo { timer_id: timer_id.clone(), started_event_id, fire_time_ms });
    txn.add_timer(fire_time_ms, TimerPayload { kind: TimerKind::UserTimer as i32, event_id: started_event_id, attempt: 0, timer_id });
    Ok(())
}

/// `CancelTimer`: adds TimerCanceled and forgets the timer (its durable timer is
/// dropped when it comes due). A timer that fired while this workflow task ran is
/// canceled too: its buffered TimerFired is discarded.
pub fn cancel_timer(
    txn: &mut RunTxn,
    attrs: CancelTimerCommandAttributes,
    workflow_task_completed_event_id: i64,
) -> Result<(), CommandFailure> {
    let bad = |m: String| refuse(Cause::BadCancelTimerAttributes, m);
    let timer_id = attrs.timer_id;
    if timer_id.is_empty() {
        return Err(bad("TimerId is not set on CancelTimerCommand.".into()));
    }
    let started_event_id = match txn.state.remove_timer(&timer_id) {
        Some(t) => t.started_event_id,
        None => take_buffered_timer_fired(txn, &timer_id).ok_or_else(|| bad(format!("no pending timer with TimerID {timer_id}")))?,
    };
    let identity = completion_identity(txn, workflow_task_completed_event_id);
    txn.add_event(Attributes::TimerCanceledEventAttributes(TimerCanceledEventAttributes {
        timer_id,
        started_event_id,
        workflow_task_completed_event_id,
        identity,
    }));
    Ok(())
}

/// Identity of the worker completing the workflow task: from its WorkflowTaskCompleted
/// event in this transaction.
fn completion_identity(txn: &RunTxn, workflow_task_completed_event_id: i64) -> String {
    txn.events()
        .iter()
        .find(|e| e.event_id == workflow_task_completed_event_id)
        .and_then(|e| match &e.attributes {
            Some(Attributes::WorkflowTaskCompletedEventAttributes(a)) => Some(a.identity.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn buffered(txn: &RunTxn) -> impl Iterator<Item = (usize, HistoryEvent)> + '_ {
    txn.state.buffered_events.iter().enumerate().filter_map(|(i, raw)| HistoryEvent::decode(raw.as_slice()).ok().map(|e| (i, e)))
}

fn has_buffered_activity_outcome(txn: &RunTxn, scheduled_event_id: i64) -> bool {
    buffered(txn).any(|(_, e)| match e.attributes {
        Some(Attributes::ActivityTaskCompletedEventAttributes(a)) => a.scheduled_event_id == scheduled_event_id,
        Some(Attributes::ActivityTaskFailedEventAttributes(a)) => a.scheduled_event_id == scheduled_event_id,
        Some(Attributes::ActivityTaskTimedOutEventAttributes(a)) => a.scheduled_event_id == scheduled_event_id,
        Some(Attributes::ActivityTaskCanceledEventAttributes(a)) => a.scheduled_event_id == scheduled_event_id,
        _ => false,
    })
}

/// Removes the buffered TimerFired of `timer_id`; returns its started event id.
fn take_buffered_timer_fired(txn: &mut RunTxn, timer_id: &str) -> Option<i64> {
    let (index, started_event_id) = buffered(txn).find_map(|(i, e)| match e.attributes {
        Some(Attributes::TimerFiredEventAttributes(a)) if a.timer_id == timer_id => Some((i, a.started_event_id)),
        _ => None,
    })?;
    txn.state.buffered_events.remove(index);
    Some(started_event_id)
}

/// A string as Temporal's default data converter encodes it (`json/plain`).
fn json_string_payloads(s: &str) -> Payloads {
    let data = format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    Payloads {
        payloads: vec![Payload {
            metadata: [("encoding".to_string(), b"json/plain".to_vec())].into_iter().collect(),
            data: data.into_bytes(),
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests;
