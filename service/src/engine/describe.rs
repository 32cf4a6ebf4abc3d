//! DescribeWorkflowExecution: a run's mutable state as Temporal's API shows it.

use temporalio_protos::protos::temporal::api::common::v1::{ActivityType, WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::{PendingActivityState, PendingWorkflowTaskState};
use temporalio_protos::protos::temporal::api::workflow::v1::{
    PendingActivityInfo, PendingChildExecutionInfo, PendingWorkflowTaskInfo, WorkflowExecutionConfig, WorkflowExecutionExtendedInfo,
    WorkflowExecutionInfo,
};
use temporalio_protos::protos::temporal::api::workflowservice::v1::DescribeWorkflowExecutionResponse;

use super::{history, runs, Engine, RunView};
use crate::core::state::ActivityInfo;
use crate::core::txn::{duration, timestamp};
use crate::error::Result;

/// DescribeWorkflowExecution (empty `run_id`: the current run).
pub async fn describe(engine: &Engine, namespace: &str, workflow_id: &str, run_id: &str) -> Result<DescribeWorkflowExecutionResponse> {
    let owner = engine.owner_for_read(namespace, workflow_id).await?;
    let run = runs::find_run(&owner, namespace, workflow_id, run_id)?;
    let (started, user_metadata) = history::started_event(&owner, &run.key)?;
    let root = started
        .root_workflow_execution
        .unwrap_or_else(|| WorkflowExecution { workflow_id: run.key.workflow_id.clone(), run_id: run.key.run_id.clone() });
    let mut described = response(&run, root);
    // Temporal: the start's summary and details, from the Started event.
    if let Some(config) = described.execution_config.as_mut() {
        config.user_metadata = user_metadata;
    }
    Ok(described)
}

fn positive(ms: i64) -> Option<prost_wkt_types::Duration> {
    (ms > 0).then(|| duration(ms))
}

fn at(ms: i64) -> Option<prost_wkt_types::Timestamp> {
    (ms > 0).then(|| timestamp(ms))
}

pub(super) fn response(run: &RunView, root: WorkflowExecution) -> DescribeWorkflowExecutionResponse {
    let s = &run.state;
    let closed = !s.is_open();
    let info = WorkflowExecutionInfo {
        execution: Some(WorkflowExecution { workflow_id: run.key.workflow_id.clone(), run_id: run.key.run_id.clone() }),
        r#type: Some(WorkflowType { name: s.workflow_type.clone() }),
        start_time: at(s.start_time_ms),
        close_time: if closed { at(s.close_time_ms) } else { None },
        status: s.status,
        history_length: run.next_event_id - 1,
        parent_execution: s.parent.as_ref().map(|p| WorkflowExecution { workflow_id: p.workflow_id.clone(), run_id: p.run_id.clone() }),
        execution_time: at(s.execution_time_ms),
        memo: Some(s.memo.clone().unwrap_or_default()),
        search_attributes: s.search_attributes.clone(),
        task_queue: s.task_queue.clone(),
        history_size_bytes: s.history_size_bytes,
        // Negative for a run closed during its start backoff, as Temporal shows it.
        execution_duration: if closed { Some(duration(s.close_time_ms - s.execution_time_ms)) } else { None },
        root_execution: Some(root),
        first_run_id: s.first_execution_run_id.clone(),
        ..Default::default()
    };
    let config = WorkflowExecutionConfig {
        task_queue: Some(crate::core::run::normal_task_queue(&s.task_queue)),
        workflow_execution_timeout: positive(s.execution_timeout_ms),
        workflow_run_timeout: positive(s.run_timeout_ms),
        default_workflow_task_timeout: positive(s.workflow_task_timeout_ms),
        ..Default::default()
    };
    let run_expiration_ms = if s.run_timeout_ms > 0 { s.execution_time_ms.saturating_add(s.run_timeout_ms) } else { 0 };
    DescribeWorkflowExecutionResponse {
        execution_config: Some(config),
        workflow_execution_info: Some(info),
        pending_activities: s.activities.iter().map(pending_activity).collect(),
        pending_children: s
            .children
            .iter()
            .map(|c| PendingChildExecutionInfo {
                workflow_id: c.workflow_id.clone(),
                run_id: c.run_id.clone(),
                workflow_type_name: c.workflow_type.clone(),
                initiated_id: c.initiated_event_id,
                parent_close_policy: c.parent_close_policy,
            })
            .collect(),
        pending_workflow_task: s.workflow_task.as_ref().map(|t| PendingWorkflowTaskInfo {
            state: if t.started_event_id > 0 {
                PendingWorkflowTaskState::Started as i32
            } else {
                PendingWorkflowTaskState::Scheduled as i32
            },
            scheduled_time: at(t.scheduled_time_ms),
            original_scheduled_time: at(t.scheduled_time_ms),
            started_time: at(t.started_time_ms),
            attempt: t.attempt,
        }),
        workflow_extended_info: Some(WorkflowExecutionExtendedInfo {
            execution_expiration_time: at(s.execution_expiration_ms),
            run_expiration_time: at(run_expiration_ms),
            cancel_requested: s.cancel_requested,
            original_start_time: at(s.start_time_ms),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pending_activity(a: &ActivityInfo) -> PendingActivityInfo {
    let state = if a.cancel_requested {
        PendingActivityState::CancelRequested
    } else if a.started_time_ms > 0 {
        PendingActivityState::Started
    } else {
        PendingActivityState::Scheduled
    };
    PendingActivityInfo {
        activity_id: a.activity_id.clone(),
        activity_type: Some(ActivityType { name: a.activity_type.clone() }),
        state: state as i32,
        heartbeat_details: a.heartbeat_details.clone(),
        last_heartbeat_time: at(a.last_heartbeat_ms),
        last_started_time: at(a.started_time_ms),
        attempt: a.attempt.max(1),
        maximum_attempts: a.retry_policy.as_ref().map(|p| p.maximum_attempts).unwrap_or_default(),
        scheduled_time: at(a.attempt_scheduled_time_ms),
        expiration_time: if a.schedule_to_close_ms > 0 { at(a.scheduled_time_ms.saturating_add(a.schedule_to_close_ms)) } else { None },
        last_failure: a.last_failure.clone(),
        last_worker_identity: if a.started_identity.is_empty() { a.last_worker_identity.clone() } else { a.started_identity.clone() },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::{ChildInfo, ExecutionState, ParentInfo};
    use hourglass_storage::state::RunKey;
    use temporalio_protos::protos::temporal::api::enums::v1::WorkflowExecutionStatus;

    #[test]
    fn describe_shows_state_and_pending_work() {
        let state = ExecutionState {
            workflow_type: "Wf".into(),
            task_queue: "tq".into(),
            status: WorkflowExecutionStatus::Running as i32,
            start_time_ms: 1_000,
            execution_time_ms: 1_000,
            workflow_task_timeout_ms: 10_000,
            first_execution_run_id: "first".into(),
            parent: Some(ParentInfo { namespace: "ns".into(), workflow_id: "p".into(), run_id: "pr".into(), initiated_event_id: 5 }),
            activities: vec![
                ActivityInfo { activity_id: "1".into(), activity_type: "echo".into(), attempt: 2, ..Default::default() },
                ActivityInfo { activity_id: "2".into(), started_time_ms: 3_000, started_identity: "w".into(), ..Default::default() },
            ],
            children: vec![ChildInfo { initiated_event_id: 7, workflow_id: "c".into(), workflow_type: "C".into(), ..Default::default() }],
            ..Default::default()
        };
        let run = RunView {
            key: RunKey { namespace: "ns".into(), workflow_id: "wf".into(), run_id: "r".into() },
            state,
            next_event_id: 9,
            state_version: 1,
            stored_timers: Vec::new(),
        };
        let root = WorkflowExecution { workflow_id: "p".into(), run_id: "pr".into() };
        let d = response(&run, root.clone());
        let info = d.workflow_execution_info.unwrap();
        assert_eq!(info.history_length, 8);
        assert_eq!(info.r#type.unwrap().name, "Wf");
        assert!(info.close_time.is_none());
        assert_eq!(info.first_run_id, "first");
        assert_eq!(info.root_execution, Some(root));
        assert_eq!(info.parent_execution.unwrap().workflow_id, "p");
        assert_eq!(d.execution_config.unwrap().default_workflow_task_timeout, Some(duration(10_000)));
        assert_eq!(d.pending_activities[0].state, PendingActivityState::Scheduled as i32);
        assert_eq!(d.pending_activities[0].attempt, 2);
        assert_eq!(d.pending_activities[1].state, PendingActivityState::Started as i32);
        assert_eq!(d.pending_activities[1].last_worker_identity, "w");
        assert_eq!(d.pending_children[0].initiated_id, 7);
    }
}
