//! Client requests and the outcomes of other runs, rebuilt from reference events:
//! the start request (WorkflowExecutionStarted), a signal, and a child's close event
//! (from the parent's ChildWorkflowExecution{Completed,Failed,...}).

use temporalio_protos::protos::temporal::api::enums::v1::{ContinueAsNewInitiator, RetryState};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::*;

use super::reference::RefEvent;
use crate::core::run::{Continuation, RunSpec, Timeouts};
use crate::core::signals::SignalSpec;
use crate::core::state::ParentInfo;
use crate::core::txn::new_event;
use crate::core::EngineConfig;

/// The start request, from WorkflowExecutionStarted.
pub fn spec(e: &RefEvent, config: &EngineConfig) -> RunSpec {
    let parent = e.get("parentWorkflowExecution").map(|_| ParentInfo {
        namespace: e.str("parentWorkflowNamespace"),
        workflow_id: e.str("parentWorkflowExecution.workflowId"),
        run_id: e.str("parentWorkflowExecution.runId"),
        initiated_event_id: e.int("parentInitiatedEventId"),
    });
    let continued = e.str("continuedExecutionRunId");
    let continuation = (!continued.is_empty()).then(|| Continuation {
        first_execution_run_id: e.str("firstExecutionRunId"),
        continued_execution_run_id: continued,
        initiator: e.enum_of("initiator", ContinueAsNewInitiator::from_str_name),
        execution_expiration_ms: 0,
        continued_failure: e.pb("continuedFailure"),
        last_completion_result: e.pb("lastCompletionResult"),
        echoed_run_timeout: None,
    });
    RunSpec {
        workflow_type: e.str("workflowType.name"),
        task_queue: e.str("taskQueue.name"),
        input: e.pb("input"),
        timeouts: Timeouts::normalize(
            e.ms_of("workflowExecutionTimeout"),
            e.ms_of("workflowRunTimeout"),
            e.ms_of("workflowTaskTimeout"),
            config,
        ),
        identity: e.str("identity"),
        request_id: format!("start-{}", e.id),
        retry_policy: e.pb("retryPolicy"),
        memo: e.pb("memo"),
        search_attributes: e.pb("searchAttributes"),
        header: e.pb("header"),
        start_delay_ms: e.ms_of("firstWorkflowTaskBackoff"),
        priority: e.pb("priority"),
        parent,
        root: e.pb("rootWorkflowExecution"),
        continuation,
        cron_schedule: e.str("cronSchedule"),
        attempt: 1,
        user_metadata: e.user_metadata.clone(),
    }
}

pub fn signal(e: &RefEvent) -> SignalSpec {
    SignalSpec {
        signal_name: e.str("signalName"),
        input: e.pb("input"),
        identity: e.str("identity"),
        header: e.pb("header"),
        request_id: e.str("requestId"),
        external: e.pb("externalWorkflowExecution"),
    }
}

/// The child's close event (as the child's history has it), from the parent's event.
pub fn child_close_event(e: &RefEvent) -> Result<HistoryEvent, String> {
    let attributes = match e.kind.as_str() {
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED" => {
            Attributes::WorkflowExecutionCompletedEventAttributes(WorkflowExecutionCompletedEventAttributes {
                result: e.pb("result"),
                ..Default::default()
            })
        }
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED" => {
            Attributes::WorkflowExecutionFailedEventAttributes(WorkflowExecutionFailedEventAttributes {
                failure: e.pb("failure"),
                retry_state: e.enum_of("retryState", RetryState::from_str_name),
                ..Default::default()
            })
        }
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED" => {
            Attributes::WorkflowExecutionCanceledEventAttributes(WorkflowExecutionCanceledEventAttributes {
                details: e.pb("details"),
                ..Default::default()
            })
        }
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT" => {
            Attributes::WorkflowExecutionTimedOutEventAttributes(WorkflowExecutionTimedOutEventAttributes {
                retry_state: e.enum_of("retryState", RetryState::from_str_name),
                ..Default::default()
            })
        }
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED" => {
            Attributes::WorkflowExecutionTerminatedEventAttributes(WorkflowExecutionTerminatedEventAttributes::default())
        }
        other => return Err(format!("event {} {other}: the golden driver has no input for it", e.id)),
    };
    Ok(new_event(1, e.ms(), attributes))
}
