//! Eager start and eager activities against a real one-shard node: what matching
//! holds afterwards and what the answers carry.

use hourglass_storage::state::{QueueKey, QueueKind};
use temporalio_protos::protos::temporal::api::command::v1::command::Attributes as Cmd;
use temporalio_protos::protos::temporal::api::command::v1::{Command, ScheduleActivityTaskCommandAttributes};
use temporalio_protos::protos::temporal::api::common::v1::ActivityType;
use temporalio_protos::protos::temporal::api::enums::v1::{CommandType, EventType};
use temporalio_protos::protos::temporal::api::workflowservice::v1::RespondWorkflowTaskCompletedRequest;

use crate::core::txn::duration;
use crate::engine::commands::complete_workflow_task;
use crate::engine::start::start_workflow_eager;
use crate::engine::workflow_task::testkit::*;

fn activity_backlog(engine: &crate::engine::Engine) -> usize {
    let queue = QueueKey { namespace: NS.into(), name: TQ.into(), kind: QueueKind::Activity };
    engine.node().read(0, |s| s.backlog_len(&queue)).expect("shard 0")
}

fn schedule(id: &str, eager: bool) -> Command {
    let a = ScheduleActivityTaskCommandAttributes {
        activity_id: id.into(),
        activity_type: Some(ActivityType { name: "act".into() }),
        start_to_close_timeout: Some(duration(5_000)),
        request_eager_execution: eager,
        ..Default::default()
    };
    Command {
        command_type: CommandType::ScheduleActivityTask as i32,
        attributes: Some(Cmd::ScheduleActivityTaskCommandAttributes(a)),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_eager_start_and_its_eager_activity_bypass_matching() {
    let kit = kit().await;
    let e = &kit.engine;
    let answer = start_workflow_eager(e, NS, "wf-eager", spec(TQ), policies(), true).await.expect("starts");
    let task = answer.eager_task.expect("the first task comes with the start");
    assert_eq!(backlog_len(e), 0, "no workflow task in matching");
    let run = crate::engine::workflow_task::token_run(&token_of(&task));
    let want = [EventType::WorkflowExecutionStarted, EventType::WorkflowTaskScheduled, EventType::WorkflowTaskStarted];
    assert_eq!(types(&history(e, &run)), want, "committed as handed out");
    assert_eq!(types(&task.history.clone().unwrap_or_default().events), want);

    let req = RespondWorkflowTaskCompletedRequest {
        task_token: task.task_token.clone(),
        identity: "worker".into(),
        commands: vec![schedule("a", true), schedule("b", false)],
        ..Default::default()
    };
    let done = complete_workflow_task(e, &token_of(&task), req).await.expect("completes");
    let ids: Vec<&str> = done.activity_tasks.iter().map(|t| t.activity_id.as_str()).collect();
    assert_eq!(ids, ["a"]);
    assert_eq!(activity_backlog(e), 1, "only b is in matching");
    let a = state(e, &run).activities.into_iter().find(|a| a.activity_id == "a").expect("a pending");
    assert!(a.started_time_ms > 0 && a.started_identity == "worker", "a is started for the completing worker");
}

#[tokio::test]
async fn eagerness_switched_off_or_a_delay_goes_through_matching() {
    let kit = kit().await;
    let e = &kit.engine;
    let delayed = crate::core::run::RunSpec { start_delay_ms: HOUR_MS, ..spec(TQ) };
    let answer = start_workflow_eager(e, NS, "wf-delayed", delayed, policies(), true).await.expect("starts");
    assert!(answer.eager_task.is_none() && answer.outcome.started);
    let plain = start_workflow_eager(e, NS, "wf-plain", spec(TQ), policies(), false).await.expect("starts");
    assert!(plain.eager_task.is_none());
    assert_eq!(backlog_len(e), 1, "the plain start's task is in matching (the delayed one waits for its timer)");
}
