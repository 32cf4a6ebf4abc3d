//! The worker's commands of a completed workflow task, rebuilt from the command
//! events the reference history has after its WorkflowTaskCompleted (those naming it
//! as `workflowTaskCompletedEventId`, in history order).

use std::collections::HashMap;

use serde_json::Value;
use temporalio_protos::protos::temporal::api::command::v1::command::Attributes as Cmd;
use temporalio_protos::protos::temporal::api::command::v1::*;
use temporalio_protos::protos::temporal::api::common::v1::{ActivityType, Payloads, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::{
    CommandType, ContinueAsNewInitiator, ParentClosePolicy, TaskQueueKind, WorkflowIdReusePolicy,
};
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;

use super::reference::{FromJson, RefEvent};

/// Event types a command writes (the first event of that command).
pub fn is_command_event(kind: &str) -> bool {
    matches!(
        kind,
        "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
            | "EVENT_TYPE_TIMER_STARTED"
            | "EVENT_TYPE_TIMER_CANCELED"
            | "EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED"
            | "EVENT_TYPE_MARKER_RECORDED"
            | "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED"
            | "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"
            | "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"
            | "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED"
            | "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"
            | "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"
            | "EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED"
            | "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED"
            | "EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED"
    )
}

/// The commands of the workflow task completed by event `completed_event_id`.
pub fn commands_of(events: &[RefEvent], completed_event_id: i64) -> Result<Vec<Command>, String> {
    events
        .iter()
        .filter(|e| e.id > completed_event_id && is_command_event(&e.kind) && e.int("workflowTaskCompletedEventId") == completed_event_id)
        .map(command)
        .collect()
}

fn queue(e: &RefEvent, path: &str) -> Option<TaskQueue> {
    let name = e.str(path);
    (!name.is_empty()).then(|| TaskQueue { name, kind: TaskQueueKind::Normal as i32, normal_name: String::new() })
}

fn workflow_type(e: &RefEvent) -> Option<WorkflowType> {
    Some(WorkflowType { name: e.str("workflowType.name") })
}

/// Marker details: a map of name → payloads.
fn marker_details(e: &RefEvent) -> HashMap<String, Payloads> {
    let Some(Value::Object(map)) = e.get("details") else { return HashMap::new() };
    map.iter()
        .map(|(k, v)| match Payloads::from_json(v) {
            Ok(p) => (k.clone(), p),
            Err(err) => panic!("event {}: marker detail `{k}` does not convert: {err}", e.id),
        })
        .collect()
}

/// The command that wrote the reference event `e`.
#[allow(deprecated)] // `namespace`, `control`, `inherit_build_id`: deprecated, still in history
pub fn command(e: &RefEvent) -> Result<Command, String> {
    let (command_type, attributes) = match e.kind.as_str() {
        "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" => (
            CommandType::ScheduleActivityTask,
            Cmd::ScheduleActivityTaskCommandAttributes(ScheduleActivityTaskCommandAttributes {
                activity_id: e.str("activityId"),
                activity_type: Some(ActivityType { name: e.str("activityType.name") }),
                task_queue: queue(e, "taskQueue.name"),
                header: e.pb("header"),
                input: e.pb("input"),
                schedule_to_close_timeout: e.duration("scheduleToCloseTimeout"),
                schedule_to_start_timeout: e.duration("scheduleToStartTimeout"),
                start_to_close_timeout: e.duration("startToCloseTimeout"),
                heartbeat_timeout: e.duration("heartbeatTimeout"),
                retry_policy: e.pb("retryPolicy"),
                request_eager_execution: false,
                use_workflow_build_id: e.bool("useWorkflowBuildId"),
                priority: e.pb("priority"),
            }),
        ),
        "EVENT_TYPE_TIMER_STARTED" => (
            CommandType::StartTimer,
            Cmd::StartTimerCommandAttributes(StartTimerCommandAttributes {
                timer_id: e.str("timerId"),
                start_to_fire_timeout: e.duration("startToFireTimeout"),
            }),
        ),
        "EVENT_TYPE_TIMER_CANCELED" => {
            (CommandType::CancelTimer, Cmd::CancelTimerCommandAttributes(CancelTimerCommandAttributes { timer_id: e.str("timerId") }))
        }
        "EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED" => (
            CommandType::RequestCancelActivityTask,
            Cmd::RequestCancelActivityTaskCommandAttributes(RequestCancelActivityTaskCommandAttributes {
                scheduled_event_id: e.int("scheduledEventId"),
            }),
        ),
        "EVENT_TYPE_MARKER_RECORDED" => (
            CommandType::RecordMarker,
            Cmd::RecordMarkerCommandAttributes(RecordMarkerCommandAttributes {
                marker_name: e.str("markerName"),
                details: marker_details(e),
                header: e.pb("header"),
                failure: e.pb("failure"),
            }),
        ),
        "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED" => (
            CommandType::StartChildWorkflowExecution,
            Cmd::StartChildWorkflowExecutionCommandAttributes(StartChildWorkflowExecutionCommandAttributes {
                namespace: e.str("namespace"),
                workflow_id: e.str("workflowId"),
                workflow_type: workflow_type(e),
                task_queue: queue(e, "taskQueue.name"),
                input: e.pb("input"),
                workflow_execution_timeout: e.duration("workflowExecutionTimeout"),
                workflow_run_timeout: e.duration("workflowRunTimeout"),
                workflow_task_timeout: e.duration("workflowTaskTimeout"),
                parent_close_policy: e.enum_of("parentClosePolicy", ParentClosePolicy::from_str_name),
                control: e.str("control"),
                workflow_id_reuse_policy: e.enum_of("workflowIdReusePolicy", WorkflowIdReusePolicy::from_str_name),
                retry_policy: e.pb("retryPolicy"),
                cron_schedule: e.str("cronSchedule"),
                header: e.pb("header"),
                memo: e.pb("memo"),
                search_attributes: e.pb("searchAttributes"),
                inherit_build_id: e.bool("inheritBuildId"),
                priority: e.pb("priority"),
                versioning_override: None,
            }),
        ),
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED" => (
            CommandType::CompleteWorkflowExecution,
            Cmd::CompleteWorkflowExecutionCommandAttributes(CompleteWorkflowExecutionCommandAttributes { result: e.pb("result") }),
        ),
        "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED" => (
            CommandType::FailWorkflowExecution,
            Cmd::FailWorkflowExecutionCommandAttributes(FailWorkflowExecutionCommandAttributes { failure: e.pb("failure") }),
        ),
        "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED" => (
            CommandType::CancelWorkflowExecution,
            Cmd::CancelWorkflowExecutionCommandAttributes(CancelWorkflowExecutionCommandAttributes { details: e.pb("details") }),
        ),
        "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW" => (
            CommandType::ContinueAsNewWorkflowExecution,
            Cmd::ContinueAsNewWorkflowExecutionCommandAttributes(ContinueAsNewWorkflowExecutionCommandAttributes {
                workflow_type: workflow_type(e),
                task_queue: queue(e, "taskQueue.name"),
                input: e.pb("input"),
                workflow_run_timeout: e.duration("workflowRunTimeout"),
                workflow_task_timeout: e.duration("workflowTaskTimeout"),
                backoff_start_interval: e.duration("backoffStartInterval"),
                initiator: e.enum_of("initiator", ContinueAsNewInitiator::from_str_name),
                failure: e.pb("failure"),
                last_completion_result: e.pb("lastCompletionResult"),
                header: e.pb("header"),
                memo: e.pb("memo"),
                search_attributes: e.pb("searchAttributes"),
                inherit_build_id: e.bool("inheritBuildId"),
                ..Default::default()
            }),
        ),
        "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED" => (
            CommandType::SignalExternalWorkflowExecution,
            Cmd::SignalExternalWorkflowExecutionCommandAttributes(SignalExternalWorkflowExecutionCommandAttributes {
                namespace: e.str("namespace"),
                execution: e.pb("workflowExecution"),
                signal_name: e.str("signalName"),
                input: e.pb("input"),
                control: e.str("control"),
                child_workflow_only: e.bool("childWorkflowOnly"),
                header: e.pb("header"),
            }),
        ),
        "EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED" => (
            CommandType::RequestCancelExternalWorkflowExecution,
            Cmd::RequestCancelExternalWorkflowExecutionCommandAttributes(RequestCancelExternalWorkflowExecutionCommandAttributes {
                namespace: e.str("namespace"),
                workflow_id: e.str("workflowExecution.workflowId"),
                run_id: e.str("workflowExecution.runId"),
                control: e.str("control"),
                child_workflow_only: e.bool("childWorkflowOnly"),
                reason: e.str("reason"),
            }),
        ),
        "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES" => (
            CommandType::UpsertWorkflowSearchAttributes,
            Cmd::UpsertWorkflowSearchAttributesCommandAttributes(UpsertWorkflowSearchAttributesCommandAttributes {
                search_attributes: e.pb("searchAttributes"),
            }),
        ),
        "EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED" => (
            CommandType::ModifyWorkflowProperties,
            Cmd::ModifyWorkflowPropertiesCommandAttributes(ModifyWorkflowPropertiesCommandAttributes {
                upserted_memo: e.pb("upsertedMemo"),
            }),
        ),
        other => return Err(format!("event {} {other}: no command rebuilt for it in the golden driver", e.id)),
    };
    Ok(Command {
        command_type: command_type as i32,
        attributes: Some(attributes),
        user_metadata: e.user_metadata.clone(),
        ..Default::default()
    })
}
