//! Eager execution against an in-process Hourglass server, as Temporal's server does
//! it: a start with `request_eager_execution` answers the first workflow task
//! (history through WorkflowTaskStarted, event 3) and matching never sees it; a
//! retried start answers it again; a delayed start or one that uses an existing run
//! answers none; a completion's `ScheduleActivityTask` with `request_eager_execution`
//! answers the started attempt in `activity_tasks`; an eager attempt its worker never
//! runs times out and is retried through matching. Driven with raw gRPC calls (the
//! test must see the task the server hands out), and once through the Rust SDK.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use hourglass_tests::TestServer;
use support::{unique, with_worker, within};
use temporalio_client::tonic::transport::Channel;
use temporalio_client::tonic::Request;
use temporalio_client::{WorkflowFetchHistoryOptions, WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_protos::protos::temporal::api::command::v1::command::Attributes as Cmd;
use temporalio_protos::protos::temporal::api::command::v1::{
    Command, CompleteWorkflowExecutionCommandAttributes, ScheduleActivityTaskCommandAttributes,
};
use temporalio_protos::protos::temporal::api::common::v1::{ActivityType, Payload, Payloads, RetryPolicy, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::{CommandType, EventType, WorkflowIdConflictPolicy};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflowservice::v1::workflow_service_client::WorkflowServiceClient;
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, WorkerOptions, WorkflowContext, WorkflowResult};

type Svc = WorkflowServiceClient<Channel>;

const NS: &str = "default";
const STARTER: &str = "starter@e2e";
const WORKER: &str = "worker@e2e";

async fn connect(server: &TestServer) -> Svc {
    WorkflowServiceClient::new(Channel::from_shared(server.url()).unwrap().connect().await.unwrap())
}

fn tq(name: &str) -> Option<TaskQueue> {
    Some(TaskQueue { name: name.into(), ..Default::default() })
}

fn start_request(queue: &str, workflow_id: &str, request_id: &str) -> StartWorkflowExecutionRequest {
    StartWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_id: workflow_id.into(),
        workflow_type: Some(WorkflowType { name: "EagerWf".into() }),
        task_queue: tq(queue),
        identity: STARTER.into(),
        request_id: request_id.into(),
        request_eager_execution: true,
        workflow_task_timeout: Some(prost_wkt_types::Duration { seconds: 10, nanos: 0 }),
        ..Default::default()
    }
}

async fn start(svc: &mut Svc, request: StartWorkflowExecutionRequest) -> StartWorkflowExecutionResponse {
    svc.start_workflow_execution(request).await.expect("the start is accepted").into_inner()
}

fn types(events: &[HistoryEvent]) -> Vec<EventType> {
    events.iter().map(|e| e.event_type()).collect()
}

fn seconds(s: i64) -> Option<prost_wkt_types::Duration> {
    Some(prost_wkt_types::Duration { seconds: s, nanos: 0 })
}

fn payloads(data: &str) -> Option<Payloads> {
    Some(Payloads { payloads: vec![Payload { data: data.as_bytes().to_vec(), ..Default::default() }] })
}

fn schedule(queue: &str, id: &str, eager: bool, start_to_close_s: i64) -> Command {
    let attributes = ScheduleActivityTaskCommandAttributes {
        activity_id: id.into(),
        activity_type: Some(ActivityType { name: "act".into() }),
        task_queue: tq(queue),
        input: payloads(id),
        start_to_close_timeout: seconds(start_to_close_s),
        retry_policy: Some(RetryPolicy { initial_interval: seconds(1), maximum_attempts: 3, ..Default::default() }),
        request_eager_execution: eager,
        ..Default::default()
    };
    Command {
        command_type: CommandType::ScheduleActivityTask as i32,
        attributes: Some(Cmd::ScheduleActivityTaskCommandAttributes(attributes)),
        ..Default::default()
    }
}

fn complete_workflow() -> Command {
    Command {
        command_type: CommandType::CompleteWorkflowExecution as i32,
        attributes: Some(Cmd::CompleteWorkflowExecutionCommandAttributes(CompleteWorkflowExecutionCommandAttributes::default())),
        ..Default::default()
    }
}

async fn complete_task(svc: &mut Svc, token: Vec<u8>, commands: Vec<Command>) -> RespondWorkflowTaskCompletedResponse {
    let request = RespondWorkflowTaskCompletedRequest {
        namespace: NS.into(),
        task_token: token,
        commands,
        identity: WORKER.into(),
        ..Default::default()
    };
    svc.respond_workflow_task_completed(request).await.expect("the completion is accepted").into_inner()
}

/// A workflow poll that waits at most `wait` (an empty answer when nothing came).
async fn poll_workflow(svc: &mut Svc, queue: &str, wait: Duration) -> PollWorkflowTaskQueueResponse {
    let mut request = Request::new(PollWorkflowTaskQueueRequest {
        namespace: NS.into(),
        task_queue: tq(queue),
        identity: WORKER.into(),
        ..Default::default()
    });
    request.set_timeout(wait);
    svc.poll_workflow_task_queue(request).await.expect("the poll answers").into_inner()
}

async fn poll_activity(svc: &mut Svc, queue: &str) -> PollActivityTaskQueueResponse {
    let request =
        PollActivityTaskQueueRequest { namespace: NS.into(), task_queue: tq(queue), identity: WORKER.into(), ..Default::default() };
    within("an activity task", async {
        loop {
            let task = svc.poll_activity_task_queue(request.clone()).await.expect("the poll answers").into_inner();
            if !task.task_token.is_empty() {
                return task;
            }
        }
    })
    .await
}

async fn next_workflow_task(svc: &mut Svc, queue: &str) -> PollWorkflowTaskQueueResponse {
    within("a workflow task", async {
        loop {
            let task = poll_workflow(svc, queue, Duration::from_secs(20)).await;
            if !task.task_token.is_empty() {
                return task;
            }
        }
    })
    .await
}

async fn history(svc: &mut Svc, workflow_id: &str, run_id: &str) -> Vec<HistoryEvent> {
    let request = GetWorkflowExecutionHistoryRequest {
        namespace: NS.into(),
        execution: Some(temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution {
            workflow_id: workflow_id.into(),
            run_id: run_id.into(),
        }),
        ..Default::default()
    };
    svc.get_workflow_execution_history(request).await.expect("history").into_inner().history.unwrap_or_default().events
}

fn eager_accepted(events: &[HistoryEvent]) -> bool {
    match events.first().and_then(|e| e.attributes.as_ref()) {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => a.eager_execution_accepted,
        other => panic!("event 1 is not WorkflowExecutionStarted: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eager_start_answers_the_first_task_and_its_eager_activity_runs_without_matching() {
    let server = TestServer::start().await.expect("server starts");
    let mut svc = connect(&server).await;
    let (queue, workflow_id) = (unique("eager-tq"), unique("eager"));

    let started = start(&mut svc, start_request(&queue, &workflow_id, "req-1")).await;
    assert!(started.started);
    let task = started.eager_workflow_task.expect("the first workflow task comes with the start");
    let events = task.history.clone().unwrap_or_default().events;
    assert_eq!(types(&events), [EventType::WorkflowExecutionStarted, EventType::WorkflowTaskScheduled, EventType::WorkflowTaskStarted]);
    assert_eq!((task.started_event_id, task.attempt, task.previous_started_event_id), (3, 1, 0));
    assert_eq!(task.workflow_execution.as_ref().map(|e| e.run_id.as_str()), Some(started.run_id.as_str()));
    assert_eq!(task.workflow_type.as_ref().map(|t| t.name.as_str()), Some("EagerWf"));
    assert!(task.next_page_token.is_empty() && !task.task_token.is_empty());
    assert!(eager_accepted(&events), "the Started event records that eagerness was accepted");
    match events[2].attributes.as_ref() {
        Some(Attributes::WorkflowTaskStartedEventAttributes(a)) => {
            assert_eq!((a.identity.as_str(), a.request_id.as_str()), (STARTER, "req-1"), "started for the caller, with its request id")
        }
        other => panic!("event 3: {other:?}"),
    }
    // Matching never had it: a poll of the queue finds nothing.
    let polled = poll_workflow(&mut svc, &queue, Duration::from_secs(3)).await;
    assert!(polled.task_token.is_empty(), "the eager task also went to matching");

    let answer = complete_task(&mut svc, task.task_token, vec![schedule(&queue, "a", true, 30), schedule(&queue, "b", false, 30)]).await;
    let [eager] = &answer.activity_tasks[..] else { panic!("one eager activity expected: {:?}", answer.activity_tasks) };
    assert_eq!((eager.activity_id.as_str(), eager.attempt), ("a", 1));
    assert_eq!(eager.input, payloads("a"));
    assert_eq!(eager.workflow_execution.as_ref().map(|e| e.workflow_id.as_str()), Some(workflow_id.as_str()));
    assert_eq!(eager.start_to_close_timeout, seconds(30));
    // The other activity goes through matching, and only it.
    let polled = poll_activity(&mut svc, &queue).await;
    assert_eq!(polled.activity_id, "b");
    for token in [eager.task_token.clone(), polled.task_token] {
        let done =
            RespondActivityTaskCompletedRequest { namespace: NS.into(), task_token: token, identity: WORKER.into(), ..Default::default() };
        svc.respond_activity_task_completed(done).await.expect("the activity completes");
    }
    let next = next_workflow_task(&mut svc, &queue).await;
    complete_task(&mut svc, next.task_token, vec![complete_workflow()]).await;

    let events = history(&mut svc, &workflow_id, &started.run_id).await;
    assert_eq!(events.last().map(|e| e.event_type()), Some(EventType::WorkflowExecutionCompleted));
    let started_identities: Vec<&str> = events
        .iter()
        .filter_map(|e| match e.attributes.as_ref() {
            Some(Attributes::ActivityTaskStartedEventAttributes(a)) => Some(a.identity.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(started_identities, [WORKER, WORKER], "both activities' Started events, written with their outcome");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_eager_start_answers_the_task_again_and_a_delayed_or_existing_run_none() {
    let server = TestServer::start().await.expect("server starts");
    let mut svc = connect(&server).await;
    let (queue, workflow_id) = (unique("eager-tq"), unique("eager-retried"));

    let first = start(&mut svc, start_request(&queue, &workflow_id, "req-1")).await;
    let again = start(&mut svc, start_request(&queue, &workflow_id, "req-1")).await;
    assert_eq!(again.run_id, first.run_id);
    let (t1, t2) = (first.eager_workflow_task.expect("eager"), again.eager_workflow_task.expect("the retried start answers it again"));
    assert_eq!(t1.task_token, t2.task_token, "the same started task");

    // Another request meeting the open run with USE_EXISTING: no task.
    let use_existing = StartWorkflowExecutionRequest {
        workflow_id_conflict_policy: WorkflowIdConflictPolicy::UseExisting as i32,
        ..start_request(&queue, &workflow_id, "req-2")
    };
    let existing = start(&mut svc, use_existing).await;
    assert!(!existing.started && existing.eager_workflow_task.is_none(), "{existing:?}");

    // Once the task completed, a retried start answers no task.
    complete_task(&mut svc, t1.task_token, vec![complete_workflow()]).await;
    let late = start(&mut svc, start_request(&queue, &workflow_id, "req-1")).await;
    assert_eq!(late.run_id, first.run_id);
    assert!(late.eager_workflow_task.is_none(), "the first task is gone");

    // A start delay declines eagerness: the task goes through matching after it.
    let delayed_id = unique("eager-delayed");
    let delayed = StartWorkflowExecutionRequest { workflow_start_delay: seconds(1), ..start_request(&queue, &delayed_id, "req-3") };
    let delayed = start(&mut svc, delayed).await;
    assert!(delayed.started && delayed.eager_workflow_task.is_none());
    let events = history(&mut svc, &delayed_id, &delayed.run_id).await;
    assert!(!eager_accepted(&events), "eagerness declined is not recorded as accepted");
    let task = next_workflow_task(&mut svc, &queue).await;
    assert_eq!(task.workflow_execution.map(|e| e.workflow_id), Some(delayed_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eager_activity_its_worker_never_runs_is_retried_through_matching() {
    let server = TestServer::start().await.expect("server starts");
    let mut svc = connect(&server).await;
    let (queue, workflow_id) = (unique("eager-tq"), unique("eager-lost"));
    let started = start(&mut svc, start_request(&queue, &workflow_id, "req-1")).await;
    let task = started.eager_workflow_task.expect("eager");
    let answer = complete_task(&mut svc, task.task_token, vec![schedule(&queue, "lost", true, 1)]).await;
    assert_eq!(answer.activity_tasks.len(), 1, "the eager attempt was handed out");
    // The worker "crashed": the attempt times out after 1 s and attempt 2 is polled.
    let retried = poll_activity(&mut svc, &queue).await;
    assert_eq!((retried.activity_id.as_str(), retried.attempt), ("lost", 2));
    let done = RespondActivityTaskCompletedRequest {
        namespace: NS.into(),
        task_token: retried.task_token,
        identity: WORKER.into(),
        ..Default::default()
    };
    svc.respond_activity_task_completed(done).await.expect("attempt 2 completes");
    let next = next_workflow_task(&mut svc, &queue).await;
    let events = next.history.unwrap_or_default().events;
    assert!(types(&events).contains(&EventType::ActivityTaskCompleted), "{:?}", types(&events));
}

// ------------------------------------------------------------------ the Rust SDK

pub struct Echo;

#[activities]
impl Echo {
    #[activity]
    pub async fn echo(_ctx: ActivityContext, text: String) -> Result<String, ActivityError> {
        Ok(text)
    }
}

#[workflow]
#[derive(Default)]
pub struct EchoTwice;

#[workflow_methods]
impl EchoTwice {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, text: String) -> WorkflowResult<String> {
        let first = ctx.execute_activity(Echo::echo, text, ActivityOptions::start_to_close_timeout(Duration::from_secs(10))).await?;
        Ok(ctx.execute_activity(Echo::echo, first, ActivityOptions::start_to_close_timeout(Duration::from_secs(10))).await?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_starts_eagerly_with_a_worker_in_the_same_process() {
    let server = TestServer::start().await.expect("server starts");
    let client = support::client(&server, NS).await;
    assert!(client.connection().capabilities().expect("system info").eager_workflow_start, "advertised");
    let queue = unique("eager-sdk");
    let options = WorkerOptions::new(&queue).register_activities(Echo).register_workflow::<EchoTwice>().expect("registers").build();
    let (result, events) = with_worker(&client, options, async {
        let start = WorkflowStartOptions::new(&queue, unique("eager-sdk")).enable_eager_workflow_start(true).build();
        let handle = client.start_workflow(EchoTwice::run, "hi".to_string(), start).await.expect("start");
        let result = within("result", handle.get_result(WorkflowGetResultOptions::default())).await.expect("completes");
        let events = within("history", handle.fetch_history(WorkflowFetchHistoryOptions::default()).into_events()).await.expect("history");
        (result, events)
    })
    .await;
    assert_eq!(result, "hi");
    assert!(eager_accepted(&events), "the SDK asked (a worker of the queue had a slot) and the server accepted");
    assert_eq!(events.last().map(|e| e.event_type()), Some(EventType::WorkflowExecutionCompleted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_with_start_refuses_eager_execution_as_temporal_does() {
    use execute_multi_operation_request::operation::Operation;
    use prost::Message;
    use temporalio_protos::protos::google::rpc::Status as RpcStatus;
    use temporalio_protos::protos::temporal::api::errordetails::v1::MultiOperationExecutionFailure;
    use temporalio_protos::protos::temporal::api::update::v1::{Input, Meta, Request as UpdateRequest};
    let server = TestServer::start().await.expect("server starts");
    let mut svc = connect(&server).await;
    let (queue, workflow_id) = (unique("eager-tq"), unique("eager-uws"));
    let update = UpdateWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_execution: Some(temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution {
            workflow_id: workflow_id.clone(),
            run_id: String::new(),
        }),
        request: Some(UpdateRequest {
            meta: Some(Meta { update_id: "u".into(), identity: STARTER.into() }),
            input: Some(Input { name: "u".into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let operations = vec![
        execute_multi_operation_request::Operation {
            operation: Some(Operation::StartWorkflow(start_request(&queue, &workflow_id, "req-1"))),
        },
        execute_multi_operation_request::Operation { operation: Some(Operation::UpdateWorkflow(update)) },
    ];
    let request = ExecuteMultiOperationRequest { namespace: NS.into(), operations, ..Default::default() };
    let refused = svc.execute_multi_operation(request).await.expect_err("eager update-with-start is refused");
    // The reference: InvalidArgument "Update-with-Start could not be executed.", the start's
    // status "RequestEagerExecution is not supported.".
    assert_eq!(refused.code(), temporalio_client::tonic::Code::InvalidArgument, "{refused:?}");
    assert_eq!(refused.message(), "Update-with-Start could not be executed.");
    let rpc = RpcStatus::decode(refused.details()).expect("google.rpc.Status details");
    let failure = MultiOperationExecutionFailure::decode(rpc.details[0].value.as_slice()).expect("a MultiOperationExecutionFailure");
    let (code, message) = (failure.statuses[0].code, failure.statuses[0].message.as_str());
    assert_eq!((code, message), (temporalio_client::tonic::Code::InvalidArgument as i32, "RequestEagerExecution is not supported."));
    assert_eq!(failure.statuses[1].code, temporalio_client::tonic::Code::Aborted as i32, "the update is aborted");
    let described = svc.describe_workflow_execution(DescribeWorkflowExecutionRequest {
        namespace: NS.into(),
        execution: Some(temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution { workflow_id, run_id: String::new() }),
    });
    assert_eq!(described.await.expect_err("nothing was started").code(), temporalio_client::tonic::Code::NotFound);
}
