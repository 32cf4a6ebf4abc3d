//! A run's mutable state rebuilt from its history (Temporal's `MutableStateRebuilder`):
//! a pure fold of the events, in order, over an empty [`ExecutionState`]. Reset uses it
//! to build the new run's state from the events it copies from the base run.
//!
//! The fold keeps what the events say: the Started event's run-wide settings, the
//! workflow task in flight, pending activities, user timers, children, requests to
//! other workflows, updates (durably admitted and accepted), the cancel request, memo and search attribute
//! changes. What history does not carry (the start request id, the run's own times)
//! the caller sets. A history that breaks its own links (an outcome for an activity
//! that is not pending, ids that are not dense...) is [`RebuildError`], never a panic.

use prost::Message;
use temporalio_protos::protos::temporal::api::common::v1::{Memo, SearchAttributes};
use temporalio_protos::protos::temporal::api::enums::v1::WorkflowExecutionStatus;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    ActivityTaskScheduledEventAttributes, HistoryEvent, StartChildWorkflowExecutionInitiatedEventAttributes,
    WorkflowExecutionStartedEventAttributes,
};

use crate::core::commands::props::merge_payloads;
use crate::core::state::{
    ActivityInfo, ChildInfo, ExecutionState, ExternalRequestInfo, ExternalRequestKind, ParentInfo, TimerInfo, UpdateInfo, WorkflowTaskInfo,
};
use crate::core::txn::duration_ms;

/// History that cannot be folded into a run's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event_id}: {what}")]
pub struct RebuildError {
    pub event_id: i64,
    pub what: String,
}

fn broken(e: &HistoryEvent, what: impl Into<String>) -> RebuildError {
    RebuildError { event_id: e.event_id, what: what.into() }
}

/// Milliseconds since the epoch of an event's time (0 if unset).
pub fn event_time_ms(e: &HistoryEvent) -> i64 {
    e.event_time.as_ref().map_or(0, |t| t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos) / 1_000_000))
}

/// The state of a run whose history is `events` (dense ids from 1, the first a
/// WorkflowExecutionStarted, none a close event).
pub fn rebuild(events: &[HistoryEvent]) -> Result<ExecutionState, RebuildError> {
    let mut state = ExecutionState::default();
    for (i, e) in events.iter().enumerate() {
        if e.event_id != i as i64 + 1 {
            return Err(broken(e, format!("found where event {} belongs (ids are dense from 1)", i + 1)));
        }
        if (i == 0) != matches!(e.attributes, Some(Attributes::WorkflowExecutionStartedEventAttributes(_))) {
            return Err(broken(e, "a history starts with WorkflowExecutionStarted, and only once"));
        }
        apply(&mut state, e)?;
        state.history_size_bytes += e.encoded_len() as i64;
    }
    Ok(state)
}

/// Folds one event into `state`.
fn apply(s: &mut ExecutionState, e: &HistoryEvent) -> Result<(), RebuildError> {
    let Some(attributes) = e.attributes.as_ref() else { return Err(broken(e, "no attributes")) };
    let id = e.event_id;
    match attributes {
        Attributes::WorkflowExecutionStartedEventAttributes(a) => started(s, a, event_time_ms(e)),
        Attributes::WorkflowTaskScheduledEventAttributes(a) => {
            if s.workflow_task.is_some() {
                return Err(broken(e, "a workflow task scheduled while another is outstanding"));
            }
            s.workflow_task = Some(WorkflowTaskInfo {
                scheduled_event_id: id,
                attempt: a.attempt.max(1),
                scheduled_time_ms: event_time_ms(e),
                task_queue: s.task_queue.clone(),
                timeout_ms: duration_ms(a.start_to_close_timeout.as_ref()),
                ..Default::default()
            });
            s.workflow_task_attempt = a.attempt.max(1);
        }
        Attributes::WorkflowTaskStartedEventAttributes(a) => {
            let task = workflow_task(s, e, a.scheduled_event_id)?;
            task.started_event_id = id;
            task.started_time_ms = event_time_ms(e);
            task.request_id = a.request_id.clone();
            task.identity = a.identity.clone();
        }
        Attributes::WorkflowTaskCompletedEventAttributes(a) => {
            workflow_task(s, e, a.scheduled_event_id)?;
            s.workflow_task = None;
            s.last_completed_wft_started_id = a.started_event_id;
            s.workflow_task_attempt = 1;
        }
        Attributes::WorkflowTaskFailedEventAttributes(a) => end_failed_task(s, e, a.scheduled_event_id)?,
        Attributes::WorkflowTaskTimedOutEventAttributes(a) => end_failed_task(s, e, a.scheduled_event_id)?,
        Attributes::ActivityTaskScheduledEventAttributes(a) => s.activities.push(activity(a, id, event_time_ms(e))),
        Attributes::ActivityTaskStartedEventAttributes(a) => {
            let ai = s.activity_mut(a.scheduled_event_id).ok_or_else(|| broken(e, "started an activity that is not pending"))?;
            ai.started_time_ms = event_time_ms(e);
            ai.started_identity = a.identity.clone();
            ai.started_request_id = a.request_id.clone();
            ai.attempt = a.attempt.max(1);
            ai.last_failure = a.last_failure.clone();
        }
        Attributes::ActivityTaskCompletedEventAttributes(a) => end_activity(s, e, a.scheduled_event_id)?,
        Attributes::ActivityTaskFailedEventAttributes(a) => end_activity(s, e, a.scheduled_event_id)?,
        Attributes::ActivityTaskTimedOutEventAttributes(a) => end_activity(s, e, a.scheduled_event_id)?,
        Attributes::ActivityTaskCanceledEventAttributes(a) => end_activity(s, e, a.scheduled_event_id)?,
        Attributes::ActivityTaskCancelRequestedEventAttributes(a) => {
            let ai = s.activity_mut(a.scheduled_event_id).ok_or_else(|| broken(e, "cancel of an activity that is not pending"))?;
            ai.cancel_requested = true;
            ai.cancel_requested_event_id = id;
        }
        Attributes::TimerStartedEventAttributes(a) => {
            let fire_time_ms = event_time_ms(e).saturating_add(duration_ms(a.start_to_fire_timeout.as_ref()));
            s.timers.push(TimerInfo { timer_id: a.timer_id.clone(), started_event_id: id, fire_time_ms });
        }
        Attributes::TimerFiredEventAttributes(a) => end_timer(s, e, &a.timer_id)?,
        Attributes::TimerCanceledEventAttributes(a) => end_timer(s, e, &a.timer_id)?,
        Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(a) => s.children.push(child(a, id)),
        Attributes::ChildWorkflowExecutionStartedEventAttributes(a) => {
            let c = s.child_mut(a.initiated_event_id).ok_or_else(|| broken(e, "started a child that is not pending"))?;
            c.started_event_id = id;
            c.run_id = a.workflow_execution.as_ref().map(|x| x.run_id.clone()).unwrap_or_default();
        }
        Attributes::StartChildWorkflowExecutionFailedEventAttributes(a) => end_child(s, e, a.initiated_event_id)?,
        Attributes::ChildWorkflowExecutionCompletedEventAttributes(a) => end_child(s, e, a.initiated_event_id)?,
        Attributes::ChildWorkflowExecutionFailedEventAttributes(a) => end_child(s, e, a.initiated_event_id)?,
        Attributes::ChildWorkflowExecutionCanceledEventAttributes(a) => end_child(s, e, a.initiated_event_id)?,
        Attributes::ChildWorkflowExecutionTimedOutEventAttributes(a) => end_child(s, e, a.initiated_event_id)?,
        Attributes::ChildWorkflowExecutionTerminatedEventAttributes(a) => end_child(s, e, a.initiated_event_id)?,
        Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(_) => external(s, id, ExternalRequestKind::Signal),
        Attributes::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(_) => external(s, id, ExternalRequestKind::Cancel),
        Attributes::ExternalWorkflowExecutionSignaledEventAttributes(a) => end_external(s, e, a.initiated_event_id)?,
        Attributes::SignalExternalWorkflowExecutionFailedEventAttributes(a) => end_external(s, e, a.initiated_event_id)?,
        Attributes::ExternalWorkflowExecutionCancelRequestedEventAttributes(a) => end_external(s, e, a.initiated_event_id)?,
        Attributes::RequestCancelExternalWorkflowExecutionFailedEventAttributes(a) => end_external(s, e, a.initiated_event_id)?,
        Attributes::WorkflowExecutionCancelRequestedEventAttributes(_) => s.cancel_requested = true,
        Attributes::UpsertWorkflowSearchAttributesEventAttributes(a) => {
            let upsert = a.search_attributes.as_ref().map(|x| x.indexed_fields.clone()).unwrap_or_default();
            merge_payloads(&mut s.search_attributes.get_or_insert_with(SearchAttributes::default).indexed_fields, &upsert);
        }
        Attributes::WorkflowPropertiesModifiedEventAttributes(a) => {
            let upsert = a.upserted_memo.as_ref().map(|m| m.fields.clone()).unwrap_or_default();
            merge_payloads(&mut s.memo.get_or_insert_with(Memo::default).fields, &upsert);
        }
        Attributes::WorkflowExecutionUpdateAdmittedEventAttributes(a) => {
            let update_id = a.request.as_ref().and_then(|r| r.meta.as_ref()).map(|m| m.update_id.clone()).unwrap_or_default();
            if s.update(&update_id).is_some() {
                return Err(broken(e, format!("update {update_id:?} admitted twice")));
            }
            s.updates.push(UpdateInfo { update_id, admitted_event_id: id, ..Default::default() });
        }
        Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(a) => {
            let update_id = a.protocol_instance_id.clone();
            match s.updates.iter_mut().find(|u| u.update_id == update_id) {
                Some(u) if u.awaits_acceptance() => u.accepted_event_id = id,
                Some(_) => return Err(broken(e, format!("update {update_id:?} accepted twice"))),
                None => s.updates.push(UpdateInfo { update_id, accepted_event_id: id, ..Default::default() }),
            }
        }
        Attributes::WorkflowExecutionUpdateCompletedEventAttributes(a) => {
            let update_id = a.meta.as_ref().map(|m| m.update_id.as_str()).unwrap_or_default();
            let u = s.updates.iter_mut().find(|u| u.update_id == update_id && !u.awaits_acceptance());
            u.ok_or_else(|| broken(e, format!("completed update {update_id:?} was never accepted")))?.completed_event_id = id;
        }
        Attributes::WorkflowExecutionSignaledEventAttributes(_)
        | Attributes::MarkerRecordedEventAttributes(_)
        | Attributes::WorkflowExecutionUpdateRejectedEventAttributes(_) => {}
        other => {
            let kind = crate::core::txn::event_type_of(other);
            return Err(broken(e, format!("{} is not an event a rebuilt open run can hold", kind.as_str_name())));
        }
    }
    Ok(())
}

fn started(s: &mut ExecutionState, a: &WorkflowExecutionStartedEventAttributes, time_ms: i64) {
    let backoff_ms = duration_ms(a.first_workflow_task_backoff.as_ref());
    let parent = a.parent_workflow_execution.as_ref().map(|p| ParentInfo {
        namespace: a.parent_workflow_namespace.clone(),
        workflow_id: p.workflow_id.clone(),
        run_id: p.run_id.clone(),
        initiated_event_id: a.parent_initiated_event_id,
    });
    *s = ExecutionState {
        workflow_type: a.workflow_type.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
        task_queue: a.task_queue.as_ref().map(|q| q.name.clone()).unwrap_or_default(),
        status: WorkflowExecutionStatus::Running as i32,
        start_time_ms: time_ms,
        execution_time_ms: time_ms.saturating_add(backoff_ms),
        workflow_task_timeout_ms: duration_ms(a.workflow_task_timeout.as_ref()),
        run_timeout_ms: duration_ms(a.workflow_run_timeout.as_ref()),
        execution_timeout_ms: duration_ms(a.workflow_execution_timeout.as_ref()),
        execution_expiration_ms: a
            .workflow_execution_expiration_time
            .as_ref()
            .map_or(0, |t| t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos) / 1_000_000)),
        first_execution_run_id: a.first_execution_run_id.clone(),
        retry_policy: a.retry_policy.clone(),
        attempt: a.attempt.max(1),
        memo: a.memo.clone(),
        search_attributes: a.search_attributes.clone(),
        parent,
        workflow_task_attempt: 1,
        header: a.header.clone(),
        original_execution_run_id: a.original_execution_run_id.clone(),
        cron_schedule: a.cron_schedule.clone(),
        ..Default::default()
    };
}

fn workflow_task<'a>(
    s: &'a mut ExecutionState,
    e: &HistoryEvent,
    scheduled_event_id: i64,
) -> Result<&'a mut WorkflowTaskInfo, RebuildError> {
    match s.workflow_task.as_mut() {
        Some(t) if t.scheduled_event_id == scheduled_event_id => Ok(t),
        _ => Err(broken(e, format!("names workflow task {scheduled_event_id}, which is not the outstanding one"))),
    }
}

fn end_failed_task(s: &mut ExecutionState, e: &HistoryEvent, scheduled_event_id: i64) -> Result<(), RebuildError> {
    let attempt = workflow_task(s, e, scheduled_event_id)?.attempt;
    s.workflow_task = None;
    s.workflow_task_attempt = attempt.saturating_add(1);
    Ok(())
}

fn activity(a: &ActivityTaskScheduledEventAttributes, scheduled_event_id: i64, time_ms: i64) -> ActivityInfo {
    ActivityInfo {
        scheduled_event_id,
        activity_id: a.activity_id.clone(),
        activity_type: a.activity_type.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
        task_queue: a.task_queue.as_ref().map(|q| q.name.clone()).unwrap_or_default(),
        schedule_to_close_ms: duration_ms(a.schedule_to_close_timeout.as_ref()),
        schedule_to_start_ms: duration_ms(a.schedule_to_start_timeout.as_ref()),
        start_to_close_ms: duration_ms(a.start_to_close_timeout.as_ref()),
        heartbeat_ms: duration_ms(a.heartbeat_timeout.as_ref()),
        retry_policy: a.retry_policy.clone(),
        attempt: 1,
        scheduled_time_ms: time_ms,
        attempt_scheduled_time_ms: time_ms,
        ..Default::default()
    }
}

fn end_activity(s: &mut ExecutionState, e: &HistoryEvent, scheduled_event_id: i64) -> Result<(), RebuildError> {
    s.remove_activity(scheduled_event_id).map(drop).ok_or_else(|| broken(e, format!("activity {scheduled_event_id} is not pending")))
}

fn end_timer(s: &mut ExecutionState, e: &HistoryEvent, timer_id: &str) -> Result<(), RebuildError> {
    s.remove_timer(timer_id).map(drop).ok_or_else(|| broken(e, format!("timer {timer_id:?} is not pending")))
}

fn child(a: &StartChildWorkflowExecutionInitiatedEventAttributes, initiated_event_id: i64) -> ChildInfo {
    ChildInfo {
        initiated_event_id,
        namespace: a.namespace.clone(),
        workflow_id: a.workflow_id.clone(),
        workflow_type: a.workflow_type.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
        parent_close_policy: a.parent_close_policy,
        ..Default::default()
    }
}

fn end_child(s: &mut ExecutionState, e: &HistoryEvent, initiated_event_id: i64) -> Result<(), RebuildError> {
    s.remove_child(initiated_event_id).map(drop).ok_or_else(|| broken(e, format!("child {initiated_event_id} is not pending")))
}

/// A pending request to another workflow; its delivery id is the caller's to set.
fn external(s: &mut ExecutionState, initiated_event_id: i64, kind: ExternalRequestKind) {
    s.external_requests.push(ExternalRequestInfo { initiated_event_id, kind: kind as i32, request_id: String::new() });
}

fn end_external(s: &mut ExecutionState, e: &HistoryEvent, initiated_event_id: i64) -> Result<(), RebuildError> {
    s.remove_external_request(initiated_event_id)
        .map(drop)
        .ok_or_else(|| broken(e, format!("request {initiated_event_id} to another workflow is not pending")))
}
