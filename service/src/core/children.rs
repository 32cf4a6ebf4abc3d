//! Child workflows on the parent's side: the StartChildWorkflowExecution command and
//! the parent's events for its child's start and close. The cross-shard steps (the
//! StartChild and NotifyParent outboxes) are the engine's (`engine::children`).

use hourglass_storage::state::RunKey;
use temporalio_protos::protos::temporal::api::command::v1::StartChildWorkflowExecutionCommandAttributes;
use temporalio_protos::protos::temporal::api::common::v1::{Header, WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::{ParentClosePolicy, WorkflowIdReusePolicy, WorkflowTaskFailedCause};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::*;

use super::lifecycle::check_name;
use super::state::ChildInfo;
use super::tasks::{TimerKind, TimerPayload};
use super::txn::{duration, duration_ms, RunTxn};
use super::CommandFailure;
use super::{cron, run};

fn bad_child(message: impl Into<String>) -> CommandFailure {
    CommandFailure { cause: WorkflowTaskFailedCause::BadStartChildExecutionAttributes as i32, message: message.into() }
}

/// The StartChildWorkflowExecution command: validates and defaults the attributes,
/// writes StartChildWorkflowExecutionInitiated, records the pending child and arms the
/// StartChild outbox timer.
#[allow(deprecated)] // `namespace`, `control`, `inherit_build_id`: deprecated, honoured as Temporal does
pub fn initiate(
    txn: &mut RunTxn,
    attrs: StartChildWorkflowExecutionCommandAttributes,
    workflow_task_completed_event_id: i64,
) -> Result<(), CommandFailure> {
    if !attrs.namespace.is_empty() && attrs.namespace != txn.key.namespace {
        return Err(bad_child("child workflows in another namespace are not supported"));
    }
    check_name("WorkflowId", &attrs.workflow_id).map_err(bad_child)?;
    let workflow_type = attrs.workflow_type.map(|t| t.name).unwrap_or_default();
    check_name("WorkflowType", &workflow_type).map_err(bad_child)?;
    if !attrs.cron_schedule.is_empty() {
        // The child's first run waits for its schedule (core::run::new_run).
        cron::validate(&attrs.cron_schedule, txn.now_ms).map_err(|e| {
            bad_child(format!(
                "invalid CronSchedule on StartChildWorkflowExecutionCommand: {e}. WorkflowId={} WorkflowType={workflow_type} Namespace={}",
                attrs.workflow_id, txn.key.namespace
            ))
        })?;
    }
    let task_queue = attrs.task_queue.map(|t| t.name).filter(|n| !n.is_empty()).unwrap_or_else(|| txn.state.task_queue.clone());
    check_name("TaskQueue", &task_queue).map_err(bad_child)?;
    for (what, d) in [
        ("WorkflowExecutionTimeout", &attrs.workflow_execution_timeout),
        ("WorkflowRunTimeout", &attrs.workflow_run_timeout),
        ("WorkflowTaskTimeout", &attrs.workflow_task_timeout),
    ] {
        if d.as_ref().is_some_and(|d| d.seconds < 0 || d.nanos < 0) {
            return Err(bad_child(format!("{what} is negative")));
        }
    }
    let policy = match ParentClosePolicy::try_from(attrs.parent_close_policy) {
        Ok(ParentClosePolicy::Unspecified) => ParentClosePolicy::Terminate,
        Ok(p) => p,
        Err(_) => return Err(bad_child(format!("unknown ParentClosePolicy {}", attrs.parent_close_policy))),
    };
    let reuse = match WorkflowIdReusePolicy::try_from(attrs.workflow_id_reuse_policy) {
        Ok(WorkflowIdReusePolicy::Unspecified) => WorkflowIdReusePolicy::AllowDuplicate,
        Ok(p) => p,
        Err(_) => return Err(bad_child(format!("unknown WorkflowIdReusePolicy {}", attrs.workflow_id_reuse_policy))),
    };
    // Temporal's defaults: the run timeout defaults to (and is capped by) the
    // execution timeout; the task timeout is inherited from the parent.
    let execution_ms = duration_ms(attrs.workflow_execution_timeout.as_ref());
    let run_ms = match (duration_ms(attrs.workflow_run_timeout.as_ref()), execution_ms) {
        (0, e) => e,
        (r, 0) => r,
        (r, e) => r.min(e),
    };
    let mut task_ms = duration_ms(attrs.workflow_task_timeout.as_ref());
    if task_ms == 0 {
        task_ms = txn.state.workflow_task_timeout_ms;
    }
    if run_ms > 0 {
        task_ms = task_ms.min(run_ms);
    }
    let namespace = txn.key.namespace.clone();
    let initiated_event_id = txn.add_event(Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(
        StartChildWorkflowExecutionInitiatedEventAttributes {
            namespace: namespace.clone(),
            workflow_id: attrs.workflow_id.clone(),
            workflow_type: Some(WorkflowType { name: workflow_type.clone() }),
            task_queue: Some(run::normal_task_queue(&task_queue)),
            input: attrs.input,
            workflow_execution_timeout: (execution_ms > 0).then(|| duration(execution_ms)),
            workflow_run_timeout: Some(duration(run_ms)),
            workflow_task_timeout: Some(duration(task_ms)),
            parent_close_policy: policy as i32,
            control: attrs.control,
            workflow_task_completed_event_id,
            workflow_id_reuse_policy: reuse as i32,
            retry_policy: attrs.retry_policy,
            cron_schedule: attrs.cron_schedule,
            header: Some(attrs.header.unwrap_or_default()),
            memo: attrs.memo,
            search_attributes: attrs.search_attributes,
            priority: Some(attrs.priority.unwrap_or_default()),
            inherit_build_id: attrs.inherit_build_id,
            ..Default::default()
        },
    ));
    txn.state.children.push(ChildInfo {
        initiated_event_id,
        started_event_id: 0,
        namespace,
        workflow_id: attrs.workflow_id,
        run_id: String::new(),
        workflow_type,
        parent_close_policy: policy as i32,
    });
    let now_ms = txn.now_ms;
    txn.add_timer(now_ms, TimerPayload { kind: TimerKind::StartChild as i32, event_id: initiated_event_id, ..Default::default() });
    Ok(())
}

/// The workflow execution `run` names.
pub fn execution_of(run: &RunKey) -> WorkflowExecution {
    WorkflowExecution { workflow_id: run.workflow_id.clone(), run_id: run.run_id.clone() }
}

/// ChildWorkflowExecutionStarted for `child`, started as run `run_id`.
pub fn child_started(child: &ChildInfo, run_id: &str, header: Option<Header>) -> Attributes {
    Attributes::ChildWorkflowExecutionStartedEventAttributes(ChildWorkflowExecutionStartedEventAttributes {
        namespace: child.namespace.clone(),
        initiated_event_id: child.initiated_event_id,
        workflow_execution: Some(WorkflowExecution { workflow_id: child.workflow_id.clone(), run_id: run_id.to_string() }),
        workflow_type: Some(WorkflowType { name: child.workflow_type.clone() }),
        header,
        ..Default::default()
    })
}

/// The parent's event for a child's close event (None for continue-as-new or a
/// non-close event).
pub fn child_closed(
    close: &HistoryEvent,
    info: &ChildInfo,
    execution: WorkflowExecution,
    initiated_event_id: i64,
    started_event_id: i64,
) -> Option<Attributes> {
    let namespace = info.namespace.clone();
    let workflow_execution = Some(execution);
    let workflow_type = Some(WorkflowType { name: info.workflow_type.clone() });
    Some(match close.attributes.as_ref()? {
        Attributes::WorkflowExecutionCompletedEventAttributes(a) => {
            Attributes::ChildWorkflowExecutionCompletedEventAttributes(ChildWorkflowExecutionCompletedEventAttributes {
                result: a.result.clone(),
                namespace,
                workflow_execution,
                workflow_type,
                initiated_event_id,
                started_event_id,
                ..Default::default()
            })
        }
        Attributes::WorkflowExecutionFailedEventAttributes(a) => {
            Attributes::ChildWorkflowExecutionFailedEventAttributes(ChildWorkflowExecutionFailedEventAttributes {
                failure: a.failure.clone(),
                namespace,
                workflow_execution,
                workflow_type,
                initiated_event_id,
                started_event_id,
                retry_state: a.retry_state,
                ..Default::default()
            })
        }
        Attributes::WorkflowExecutionCanceledEventAttributes(a) => {
            Attributes::ChildWorkflowExecutionCanceledEventAttributes(ChildWorkflowExecutionCanceledEventAttributes {
                details: a.details.clone(),
                namespace,
                workflow_execution,
                workflow_type,
                initiated_event_id,
                started_event_id,
                ..Default::default()
            })
        }
        Attributes::WorkflowExecutionTimedOutEventAttributes(a) => {
            Attributes::ChildWorkflowExecutionTimedOutEventAttributes(ChildWorkflowExecutionTimedOutEventAttributes {
                namespace,
                workflow_execution,
                workflow_type,
                initiated_event_id,
                started_event_id,
                retry_state: a.retry_state,
                ..Default::default()
            })
        }
        Attributes::WorkflowExecutionTerminatedEventAttributes(_) => {
            Attributes::ChildWorkflowExecutionTerminatedEventAttributes(ChildWorkflowExecutionTerminatedEventAttributes {
                namespace,
                workflow_execution,
                workflow_type,
                initiated_event_id,
                started_event_id,
                ..Default::default()
            })
        }
        _ => return None,
    })
}
