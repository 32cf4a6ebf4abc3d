//! Speculative workflow tasks (Go's) against a real one-shard node: the task that
//! carries an update to an idle run is held out of history, discarded when it only
//! rejects, written when anything else happens to the run.

use temporalio_protos::protos::temporal::api::common::v1::Payloads;
use temporalio_protos::protos::temporal::api::enums::v1::EventType;
use temporalio_protos::protos::temporal::api::failure::v1::Failure;
use temporalio_protos::protos::temporal::api::protocol::v1::Message;
use temporalio_protos::protos::temporal::api::update::v1::{Input, Meta, Rejection, Request};
use temporalio_protos::protos::temporal::api::workflowservice::v1::{
    respond_workflow_task_completed_request::Capabilities, PollWorkflowTaskQueueResponse, RespondWorkflowTaskCompletedRequest,
};

use super::*;
use crate::core::error::WorkflowTaskError;
use crate::core::updates::{request_message_id, to_any};
use crate::engine::commands::complete_workflow_task;
use crate::engine::workflow_task::testkit::*;
use crate::error::ServiceError;

fn target(run: &RunKey, update_id: &str) -> UpdateTarget {
    UpdateTarget {
        namespace: run.namespace.clone(),
        workflow_id: run.workflow_id.clone(),
        run_id: run.run_id.clone(),
        first_execution_run_id: String::new(),
        update_id: update_id.into(),
    }
}

fn request(update_id: &str) -> Request {
    Request {
        meta: Some(Meta { update_id: update_id.into(), identity: IDENTITY.into() }),
        input: Some(Input { name: "add".into(), args: Some(Payloads::default()), header: None }),
        ..Default::default()
    }
}

fn rejection(update_id: &str) -> Message {
    let body = Rejection {
        rejected_request_message_id: request_message_id(update_id),
        failure: Some(Failure { message: "negative".into(), ..Default::default() }),
        ..Default::default()
    };
    Message { id: format!("{update_id}/reject"), protocol_instance_id: update_id.into(), body: Some(to_any(&body)), sequencing_id: None }
}

/// A completion of `resp` with only `messages`, from a worker that can roll back
/// events a discarded task shipped.
fn answer(resp: &PollWorkflowTaskQueueResponse, messages: Vec<Message>) -> RespondWorkflowTaskCompletedRequest {
    RespondWorkflowTaskCompletedRequest {
        task_token: resp.task_token.clone(),
        messages,
        identity: IDENTITY.into(),
        namespace: NS.into(),
        capabilities: Some(Capabilities { discard_speculative_workflow_task_with_events: true }),
        ..Default::default()
    }
}

/// A run whose first task completed with no command: history is events 1..=4.
async fn idle_run(e: &Engine, workflow_id: &str) -> RunKey {
    let run = start_run(e, workflow_id).await;
    let first = poll(e).await;
    complete_workflow_task(e, &token_of(&first), answer(&first, vec![])).await.expect("first task completes");
    assert_eq!(history(e, &run).len(), 4);
    run
}

#[tokio::test]
async fn a_task_that_only_rejects_leaves_no_trace_and_its_token_dies_with_it() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = idle_run(e, "wf-spec-reject").await;

    admit(e, &target(&run, "u1"), request("u1")).await.expect("admitted");
    assert_eq!(history(e, &run).len(), 4, "a speculative task writes no event when scheduled");
    let resp = poll(e).await;
    assert_eq!(history(e, &run).len(), 4, "nor when started");
    let shipped = types(&resp.history.as_ref().unwrap().events);
    assert_eq!(shipped.len(), 6, "the task's own events end the history it ships");
    assert_eq!(&shipped[4..], [EventType::WorkflowTaskScheduled, EventType::WorkflowTaskStarted]);
    assert_eq!((resp.started_event_id, resp.previous_started_event_id), (6, 3));
    assert_eq!(resp.messages.len(), 1, "the update's request rides along");

    let done = complete_workflow_task(e, &token_of(&resp), answer(&resp, vec![rejection("u1")])).await.expect("completes");
    assert_eq!(done.reset_history_event_id, 3, "the worker rolls back to the last completed task");
    assert_eq!(history(e, &run).len(), 4, "history never shows the task");
    let st = state(e, &run);
    assert!(st.workflow_task.is_none() && !st.workflow_task_speculative());
    assert_eq!(st.last_completed_wft_started_id, 3);

    // The next speculative task takes the same event ids; the old token names none.
    admit(e, &target(&run, "u2"), request("u2")).await.expect("admitted");
    let next = poll(e).await;
    assert_eq!(next.started_event_id, 6);
    let stale = complete_workflow_task(e, &token_of(&resp), answer(&resp, vec![rejection("u1")])).await;
    assert!(matches!(stale, Err(ServiceError::WorkflowTask(WorkflowTaskError::NotFound))), "{stale:?}");
}

#[tokio::test]
async fn a_signal_makes_a_speculative_task_a_normal_one() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = idle_run(e, "wf-spec-signal").await;

    // Scheduled, not started: the signal writes the held Scheduled event first.
    admit(e, &target(&run, "u1"), request("u1")).await.expect("admitted");
    signal(e, &run, "s1").await;
    assert_eq!(
        types(&history(e, &run))[4..],
        [EventType::WorkflowTaskScheduled, EventType::WorkflowExecutionSignaled],
        "the task's event keeps its id, the signal follows"
    );
    assert!(!state(e, &run).workflow_task_speculative());
    let resp = poll(e).await;
    assert_eq!(resp.started_event_id, 7);
    let done = complete_workflow_task(e, &token_of(&resp), answer(&resp, vec![rejection("u1")])).await.expect("completes");
    assert_eq!(done.reset_history_event_id, 0, "a normal task is never discarded");
    assert_eq!(history(e, &run).len(), 8);

    // Started: the signal is buffered; the task is kept to write it.
    admit(e, &target(&run, "u2"), request("u2")).await.expect("admitted");
    let resp = poll(e).await;
    assert_eq!(resp.started_event_id, 10);
    signal(e, &run, "s2").await;
    let done = complete_workflow_task(e, &token_of(&resp), answer(&resp, vec![rejection("u2")])).await.expect("completes");
    assert_eq!(done.reset_history_event_id, 0);
    assert_eq!(
        types(&history(e, &run))[8..],
        [
            EventType::WorkflowTaskScheduled,
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskCompleted,
            EventType::WorkflowExecutionSignaled,
            EventType::WorkflowTaskScheduled,
        ]
    );
}
