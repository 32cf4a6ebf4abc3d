//! ResetWorkflowExecution and DeleteWorkflowExecution run end to end by the real
//! Temporal Rust SDK against an in-process Hourglass server: a workflow reset to its
//! first workflow task runs again in the new run with the signals and updates
//! reapplied (from an open run, which the reset terminates, and from a closed one), the new run survives
//! a server restart, and a deleted workflow is gone from Describe, GetHistory and List
//! as Temporal's server answers (NotFound). Expectations are those Temporal's server
//! (CLI 1.9.1 / server 1.32.0) showed for the same calls.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use hourglass_tests::TestServer;
use support::{event_type, full_history, unique, with_worker, within};
use temporalio_client::tonic::{Code, IntoRequest};
use temporalio_client::{Client, WorkflowExecuteUpdateOptions, WorkflowGetResultOptions, WorkflowSignalOptions, WorkflowStartOptions};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::protos::temporal::api::enums::v1::{
    EventType, UpdateAdmittedEventOrigin, WorkflowExecutionStatus, WorkflowTaskFailedCause,
};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::protos::temporal::api::update::v1::{outcome, UpdateRef};
use temporalio_protos::protos::temporal::api::workflowservice::v1::{
    DeleteWorkflowExecutionRequest, DescribeWorkflowExecutionRequest, ListWorkflowExecutionsRequest, PollWorkflowExecutionUpdateRequest,
    ResetWorkflowExecutionRequest,
};
use temporalio_sdk::{SyncWorkflowContext, WorkerOptions, WorkflowContext, WorkflowResult};

const NS: &str = "default";

/// Collects `want` signals and returns them joined.
#[workflow]
#[derive(Default)]
pub struct Collect {
    got: Vec<String>,
}

#[workflow_methods]
impl Collect {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, want: usize) -> WorkflowResult<String> {
        ctx.wait_condition(|s| s.got.len() >= want).await?;
        Ok(ctx.state(|s| s.got.join(",")))
    }

    #[signal]
    pub fn add(&mut self, _ctx: &mut SyncWorkflowContext<Self>, value: String) {
        self.got.push(value);
    }

    /// As the signal, through an update; returns how many values it holds now.
    #[update]
    pub fn push(&mut self, _ctx: &mut SyncWorkflowContext<Self>, value: String) -> usize {
        self.got.push(value);
        self.got.len()
    }
}

fn worker_options(task_queue: &str) -> WorkerOptions {
    WorkerOptions::new(task_queue).register_workflow::<Collect>().expect("workflow registers").build()
}

async fn setup(name: &str) -> (TestServer, Client, String) {
    let server = TestServer::start().await.expect("server starts");
    let client = support::client(&server, NS).await;
    (server, client, unique(name))
}

fn execution(workflow_id: &str, run_id: &str) -> Option<WorkflowExecution> {
    Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: run_id.into() })
}

/// The id of the first WorkflowTaskCompleted (the CLI's `--type FirstWorkflowTask`).
fn first_task_completed(events: &[HistoryEvent]) -> i64 {
    events.iter().find(|e| event_type(e) == EventType::WorkflowTaskCompleted).expect("a completed workflow task").event_id
}

async fn reset(client: &Client, workflow_id: &str, run_id: &str, finish_event_id: i64, request_id: &str) -> Result<String, Code> {
    let request = ResetWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_execution: execution(workflow_id, run_id),
        reason: "e2e reset".into(),
        workflow_task_finish_event_id: finish_event_id,
        request_id: request_id.into(),
        ..Default::default()
    };
    match client.connection().workflow_service().reset_workflow_execution(request.into_request()).await {
        Ok(r) => Ok(r.into_inner().run_id),
        Err(status) => Err(status.code()),
    }
}

async fn signal(client: &Client, workflow_id: &str, value: &str) {
    let handle = client.get_workflow_handle::<Collect>(workflow_id.to_string());
    handle.signal(Collect::add, value.to_string(), WorkflowSignalOptions::default()).await.expect("signal");
}

async fn result(client: &Client, workflow_id: &str) -> String {
    let handle = client.get_workflow_handle::<Collect>(workflow_id.to_string());
    within("result", handle.get_result(WorkflowGetResultOptions::default())).await.expect("completes")
}

/// Waits until the run has completed `n` workflow tasks.
async fn completed_tasks(client: &Client, workflow_id: &str, run_id: &str, n: usize) {
    within("workflow tasks complete", async {
        loop {
            let events = full_history(client, NS, workflow_id, run_id).await.unwrap();
            if events.iter().filter(|e| event_type(e) == EventType::WorkflowTaskCompleted).count() >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn types(events: &[HistoryEvent]) -> Vec<EventType> {
    events.iter().map(event_type).collect()
}

/// Checks the new run's history up to its new workflow task: the base's first events,
/// the RESET_WORKFLOW failure naming both runs, then the reapplied signals.
fn assert_reset_history(events: &[HistoryEvent], base_run: &str, new_run: &str, reapplied: &[&str]) {
    use EventType as E;
    assert_eq!(
        &types(events)[..4],
        &[E::WorkflowExecutionStarted, E::WorkflowTaskScheduled, E::WorkflowTaskStarted, E::WorkflowTaskFailed]
    );
    let Some(Attributes::WorkflowTaskFailedEventAttributes(f)) = &events[3].attributes else { panic!("{:?}", events[3]) };
    assert_eq!(f.cause, WorkflowTaskFailedCause::ResetWorkflow as i32);
    assert_eq!((f.base_run_id.as_str(), f.new_run_id.as_str()), (base_run, new_run));
    let signals: Vec<String> = events[4..]
        .iter()
        .take_while(|e| event_type(e) == E::WorkflowExecutionSignaled)
        .map(|e| match &e.attributes {
            Some(Attributes::WorkflowExecutionSignaledEventAttributes(s)) => {
                String::from_utf8_lossy(&s.input.as_ref().unwrap().payloads[0].data).trim_matches('"').to_string()
            }
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(signals, reapplied, "the signals after the reset point, in order");
    assert_eq!(event_type(&events[4 + reapplied.len()]), E::WorkflowTaskScheduled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_run_reset_to_its_first_task_runs_again_with_its_signals_and_survives_a_restart() {
    let (mut server, client, tq) = setup("reset-open").await;
    let id = unique("collect");
    let base = with_worker(&client, worker_options(&tq), async {
        let handle = client.start_workflow(Collect::run, 2, WorkflowStartOptions::new(&tq, &id).build()).await.unwrap();
        let base = handle.run_id().unwrap().to_string();
        completed_tasks(&client, &id, &base, 1).await;
        signal(&client, &id, "a").await;
        completed_tasks(&client, &id, &base, 2).await;
        base
    })
    .await;
    let events = full_history(&client, NS, &id, &base).await.unwrap();
    let request_id = uuid::Uuid::new_v4().to_string();
    let new_run = reset(&client, &id, &base, first_task_completed(&events), &request_id).await.expect("reset");
    assert_ne!(new_run, base);
    let again = reset(&client, &id, &base, first_task_completed(&events), &request_id).await.expect("retried reset");
    assert_eq!(again, new_run, "the same request id answers the same new run");

    let base_events = full_history(&client, NS, &id, &base).await.unwrap();
    let last = base_events.last().unwrap();
    let Some(Attributes::WorkflowExecutionTerminatedEventAttributes(t)) = &last.attributes else { panic!("{last:?}") };
    assert_eq!((t.reason.as_str(), t.identity.as_str()), ("e2e reset", "history-resetter"));
    assert_reset_history(&full_history(&client, NS, &id, &new_run).await.unwrap(), &base, &new_run, &["a"]);

    server.restart().await.expect("restarts on the same data directory");
    let done = with_worker(&client, worker_options(&tq), async {
        signal(&client, &id, "b").await;
        result(&client, &id).await
    })
    .await;
    assert_eq!(done, "a,b", "the new run saw the reapplied signal, then the new one");
    let described = describe(&client, &id, "").await.expect("describe");
    let info = described.workflow_execution_info.unwrap();
    assert_eq!(info.execution.unwrap().run_id, new_run);
    assert_eq!(info.status, WorkflowExecutionStatus::Completed as i32);
    assert_eq!(info.first_run_id, base, "the chain keeps its first run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_run_reset_to_its_first_task_completes_again_with_its_signals() {
    let (_server, client, tq) = setup("reset-closed").await;
    let id = unique("collect");
    let (first, second, base) = with_worker(&client, worker_options(&tq), async {
        let handle = client.start_workflow(Collect::run, 2, WorkflowStartOptions::new(&tq, &id).build()).await.unwrap();
        let base = handle.run_id().unwrap().to_string();
        completed_tasks(&client, &id, &base, 1).await;
        signal(&client, &id, "a").await;
        signal(&client, &id, "b").await;
        let first = result(&client, &id).await;
        let events = full_history(&client, NS, &id, &base).await.unwrap();
        let new_run = reset(&client, &id, "", first_task_completed(&events), "reset-closed-1").await.expect("reset");
        let second = result(&client, &id).await;
        assert_reset_history(&full_history(&client, NS, &id, &new_run).await.unwrap(), &base, &new_run, &["a", "b"]);
        (first, second, base)
    })
    .await;
    assert_eq!((first.as_str(), second.as_str()), ("a,b", "a,b"));
    let base_status = describe(&client, &id, &base).await.unwrap().workflow_execution_info.unwrap().status;
    assert_eq!(base_status, WorkflowExecutionStatus::Completed as i32, "a closed base run is left as it was");
    assert_eq!(reset(&client, &id, "", 1, "reset-closed-2").await, Err(Code::InvalidArgument));
}

/// Reset reapplies updates as Temporal's server does (checked with the Python SDK against
/// `temporal server start-dev`): an update accepted after the reset point comes back
/// as WorkflowExecutionUpdateAdmitted (origin REAPPLY) in its place among the
/// signals; the worker reads it from history and accepts it again, and the new
/// Accepted event carries no request (the Admitted event has it). The update's id
/// answers with its outcome on the new run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_reapplies_updates_and_the_worker_accepts_them_again() {
    let (_server, client, tq) = setup("reset-update").await;
    let id = unique("collect");
    let (base, new_run, done) = with_worker(&client, worker_options(&tq), async {
        let handle = client.start_workflow(Collect::run, 3, WorkflowStartOptions::new(&tq, &id).build()).await.unwrap();
        let base = handle.run_id().unwrap().to_string();
        completed_tasks(&client, &id, &base, 1).await;
        let options = WorkflowExecuteUpdateOptions::builder().update_id("u-x".to_string()).build();
        let held = within("update", handle.execute_update(Collect::push, "x".to_string(), options)).await.expect("update");
        assert_eq!(held, 1);
        signal(&client, &id, "a").await;
        completed_tasks(&client, &id, &base, 3).await;
        let events = full_history(&client, NS, &id, &base).await.unwrap();
        let new_run = reset(&client, &id, &base, first_task_completed(&events), "reset-update-1").await.expect("reset");
        completed_tasks(&client, &id, &new_run, 1).await;
        signal(&client, &id, "b").await;
        (base, new_run, result(&client, &id).await)
    })
    .await;
    assert_eq!(done, "x,a,b", "the new run applied the reapplied update, the signal, then the new signal");

    use EventType as E;
    let events = full_history(&client, NS, &id, &new_run).await.unwrap();
    assert_eq!(&types(&events)[4..6], &[E::WorkflowExecutionUpdateAdmitted, E::WorkflowExecutionSignaled], "{:?}", types(&events));
    let Some(Attributes::WorkflowExecutionUpdateAdmittedEventAttributes(admitted)) = &events[4].attributes else { unreachable!() };
    assert_eq!(admitted.origin, UpdateAdmittedEventOrigin::Reapply as i32);
    assert_eq!(admitted.request.as_ref().and_then(|r| r.meta.as_ref()).map(|m| m.update_id.as_str()), Some("u-x"));
    let accepted: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(a)) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(accepted.len(), 1, "{:?}", types(&events));
    assert_eq!(accepted[0].protocol_instance_id, "u-x");
    assert_eq!(accepted[0].accepted_request, None, "the Admitted event holds the request");
    assert_eq!(accepted[0].accepted_request_message_id, "u-x/request");

    let poll = PollWorkflowExecutionUpdateRequest {
        namespace: NS.into(),
        update_ref: Some(UpdateRef { workflow_execution: execution(&id, &new_run), update_id: "u-x".into() }),
        ..Default::default()
    };
    let polled =
        client.connection().workflow_service().poll_workflow_execution_update(poll.into_request()).await.expect("poll").into_inner();
    assert!(matches!(polled.outcome.and_then(|o| o.value), Some(outcome::Value::Success(_))), "the update's outcome on the new run");
    let base_events = full_history(&client, NS, &id, &base).await.unwrap();
    assert_eq!(types(&base_events).iter().filter(|t| **t == E::WorkflowExecutionUpdateCompleted).count(), 1);
}

async fn describe(
    client: &Client,
    workflow_id: &str,
    run_id: &str,
) -> Result<temporalio_protos::protos::temporal::api::workflowservice::v1::DescribeWorkflowExecutionResponse, Code> {
    let request = DescribeWorkflowExecutionRequest { namespace: NS.into(), execution: execution(workflow_id, run_id) };
    client
        .connection()
        .workflow_service()
        .describe_workflow_execution(request.into_request())
        .await
        .map(|r| r.into_inner())
        .map_err(|s| s.code())
}

async fn delete(client: &Client, workflow_id: &str, run_id: &str) -> Result<(), Code> {
    let request = DeleteWorkflowExecutionRequest { namespace: NS.into(), workflow_execution: execution(workflow_id, run_id) };
    client.connection().workflow_service().delete_workflow_execution(request.into_request()).await.map(drop).map_err(|s| s.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_workflow_is_not_found() {
    let (_server, client, tq) = setup("delete").await;
    let (running, done) = (unique("running"), unique("done"));
    let running_run = client
        .start_workflow(Collect::run, 1, WorkflowStartOptions::new(&tq, &running).build())
        .await
        .unwrap()
        .run_id()
        .unwrap()
        .to_string();
    with_worker(&client, worker_options(&tq), async {
        client.start_workflow(Collect::run, 1, WorkflowStartOptions::new(&tq, &done).build()).await.unwrap();
        signal(&client, &done, "x").await;
        assert_eq!(result(&client, &done).await, "x");
    })
    .await;

    delete(&client, &running, "").await.expect("a running workflow is terminated, then deleted");
    delete(&client, &done, "").await.expect("a closed workflow is deleted");
    for id in [&running, &done] {
        assert_eq!(describe(&client, id, "").await.err(), Some(Code::NotFound), "{id}: describe");
        let history = full_history(&client, NS, id, "").await.map_err(|s| s.code());
        assert_eq!(history.err(), Some(Code::NotFound), "{id}: history");
        let list = ListWorkflowExecutionsRequest { namespace: NS.into(), query: format!("WorkflowId = '{id}'"), ..Default::default() };
        let listed = client.connection().workflow_service().list_workflow_executions(list.into_request()).await.expect("list").into_inner();
        assert!(listed.executions.is_empty(), "{id}: listed {:?}", listed.executions);
    }
    assert_eq!(describe(&client, &running, &running_run).await.err(), Some(Code::NotFound));
    assert_eq!(delete(&client, &running, &running_run).await, Err(Code::NotFound), "deleting it again");
}
