//! More feature families run end to end by the real Temporal Rust SDK against an
//! in-process Hourglass server: local activities (and their workflow-task
//! heartbeats), activity start-to-close and heartbeat timeouts with retry, the
//! workflow execution timeout, memo and search attributes, and the workflow task
//! timeout (driven through raw gRPC calls).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use hourglass_tests::TestServer;
use support::{unique, with_worker, within};
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::tonic::transport::Channel;
use temporalio_client::tonic::Request;
use temporalio_client::{
    Client, RetryPolicy, WorkflowDescribeOptions, WorkflowFetchHistoryOptions, WorkflowGetResultOptions, WorkflowStartOptions,
    WorkflowTerminateOptions,
};
use temporalio_common::search_attributes::{SearchAttributeKey, SearchAttributes};
use temporalio_common::MemoValues;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_protos::protos::temporal::api::common::v1::{WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::EventType;
use temporalio_protos::protos::temporal::api::history::v1::{history_event, HistoryEvent};
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflowservice::v1::workflow_service_client::WorkflowServiceClient;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{
    GetWorkflowExecutionHistoryRequest, PollWorkflowTaskQueueRequest, PollWorkflowTaskQueueResponse, StartWorkflowExecutionRequest,
};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, ApplicationFailure, LocalActivityOptions, WorkerOptions, WorkflowContext, WorkflowResult};

// ------------------------------------------------------------------ activities

pub struct Tools;

#[activities]
impl Tools {
    #[activity]
    pub async fn shout(_ctx: ActivityContext, word: String) -> Result<String, ActivityError> {
        Ok(word.to_uppercase())
    }

    /// Sleeps `millis`, then returns them.
    #[activity]
    pub async fn nap(_ctx: ActivityContext, millis: u64) -> Result<u64, ActivityError> {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(millis)
    }

    /// Attempt 1 hangs (without heartbeating) until cancelled or for 5 s, well past
    /// the timeouts the workflows give it; later attempts return their number at once.
    #[activity]
    pub async fn hang_on_first(ctx: ActivityContext) -> Result<u32, ActivityError> {
        let attempt = ctx.info().attempt;
        if attempt == 1 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
                () = ctx.cancelled() => {}
            }
            return Err(ActivityError::application(ApplicationFailure::new("attempt 1 should have timed out")));
        }
        Ok(attempt)
    }
}

// ------------------------------------------------------------------- workflows

#[workflow]
#[derive(Default)]
pub struct LocalShout;

#[workflow_methods]
impl LocalShout {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, word: String) -> WorkflowResult<String> {
        let options = LocalActivityOptions::builder().start_to_close_timeout(Duration::from_secs(10)).build();
        Ok(ctx.execute_local_activity(Tools::shout, word, options).await?)
    }
}

#[workflow]
#[derive(Default)]
pub struct LocalNap;

#[workflow_methods]
impl LocalNap {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, millis: u64) -> WorkflowResult<u64> {
        let options = LocalActivityOptions::builder().start_to_close_timeout(Duration::from_secs(30)).build();
        Ok(ctx.execute_local_activity(Tools::nap, millis, options).await?)
    }
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy::builder().initial_interval(Duration::from_millis(100)).backoff_coefficient(1.0).maximum_attempts(3).build()
}

#[workflow]
#[derive(Default)]
pub struct StartToCloseRetry;

#[workflow_methods]
impl StartToCloseRetry {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<u32> {
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(1)).retry_policy(quick_retry()).build();
        Ok(ctx.execute_activity(Tools::hang_on_first, (), options).await?)
    }
}

#[workflow]
#[derive(Default)]
pub struct HeartbeatRetry;

#[workflow_methods]
impl HeartbeatRetry {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<u32> {
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
            .heartbeat_timeout(Duration::from_secs(1))
            .retry_policy(quick_retry())
            .build();
        Ok(ctx.execute_activity(Tools::hang_on_first, (), options).await?)
    }
}

#[workflow]
#[derive(Default)]
pub struct LongSleeper;

#[workflow_methods]
impl LongSleeper {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, millis: u64) -> WorkflowResult<String> {
        ctx.timer(Duration::from_millis(millis)).await;
        Ok(format!("slept {millis} ms"))
    }
}

/// Waits until terminated.
#[workflow]
#[derive(Default)]
pub struct Idle;

#[workflow_methods]
impl Idle {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<()> {
        ctx.wait_condition(|_| false).await?;
        Ok(())
    }
}

// ----------------------------------------------------------------------- setup

fn worker_options(task_queue: &str) -> WorkerOptions {
    WorkerOptions::new(task_queue)
        .register_activities(Tools)
        .register_workflow::<LocalShout>()
        .and_then(|o| o.register_workflow::<LocalNap>())
        .and_then(|o| o.register_workflow::<StartToCloseRetry>())
        .and_then(|o| o.register_workflow::<HeartbeatRetry>())
        .and_then(|o| o.register_workflow::<LongSleeper>())
        .and_then(|o| o.register_workflow::<Idle>())
        .expect("workflows register")
        .build()
}

async fn setup(name: &str) -> (TestServer, Client, String) {
    let server = TestServer::start().await.expect("server starts");
    let client = support::client(&server, "default").await;
    (server, client, unique(name))
}

fn start(task_queue: &str, prefix: &str) -> WorkflowStartOptions {
    WorkflowStartOptions::new(task_queue, unique(prefix)).build()
}

fn result_options() -> WorkflowGetResultOptions {
    WorkflowGetResultOptions::default()
}

fn types(events: &[HistoryEvent]) -> Vec<EventType> {
    events.iter().map(|e| e.event_type()).collect()
}

fn count(events: &[HistoryEvent], kind: EventType) -> usize {
    events.iter().filter(|e| e.event_type() == kind).count()
}

// ------------------------------------------------------------ local activities

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_activity_result_is_recorded_as_a_marker() {
    let (_server, client, tq) = setup("local").await;
    let (result, events) = with_worker(&client, worker_options(&tq), async {
        let handle = client.start_workflow(LocalShout::run, "quiet".to_string(), start(&tq, "local")).await.expect("start");
        let result = within("result", handle.get_result(result_options())).await.expect("completes");
        let events = within("history", handle.fetch_history(WorkflowFetchHistoryOptions::default()).into_events()).await.expect("history");
        (result, events)
    })
    .await;
    assert_eq!(result, "QUIET");
    let markers: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(history_event::Attributes::MarkerRecordedEventAttributes(a)) => Some(a.marker_name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(markers, ["core_local_activity"], "{:?}", types(&events));
    assert_eq!(count(&events, EventType::ActivityTaskScheduled), 0, "a local activity is not scheduled on the server");
    assert_eq!(types(&events).last(), Some(&EventType::WorkflowExecutionCompleted), "{:?}", types(&events));
}

/// A local activity longer than the workflow task timeout: the worker keeps its
/// workflow task alive by completing it with force_create_new_workflow_task (at
/// 80% of the 1 s timeout), and the server must hand it a new workflow task each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_activity_longer_than_the_workflow_task_timeout_completes() {
    let (_server, client, tq) = setup("local-long").await;
    let (result, events) = with_worker(&client, worker_options(&tq), async {
        let options = WorkflowStartOptions::new(tq.as_str(), unique("local-long")).task_timeout(Duration::from_secs(1)).build();
        let handle = client.start_workflow(LocalNap::run, 2_000, options).await.expect("start");
        let result = within("result", handle.get_result(result_options())).await.expect("completes");
        let events = within("history", handle.fetch_history(WorkflowFetchHistoryOptions::default()).into_events()).await.expect("history");
        (result, events)
    })
    .await;
    assert_eq!(result, 2_000);
    let kinds = types(&events);
    assert_eq!(count(&events, EventType::MarkerRecorded), 1, "{kinds:?}");
    assert!(count(&events, EventType::WorkflowTaskCompleted) >= 2, "heartbeat workflow tasks expected: {kinds:?}");
    assert_eq!(count(&events, EventType::WorkflowTaskTimedOut), 0, "heartbeats keep the task alive: {kinds:?}");
    assert_eq!(kinds.last(), Some(&EventType::WorkflowExecutionCompleted), "{kinds:?}");
}

// --------------------------------------------------------- activity timeouts

async fn run_timed_out_once(prefix: &str, heartbeat: bool) -> (u32, Vec<HistoryEvent>) {
    let (_server, client, tq) = setup(prefix).await;
    with_worker(&client, worker_options(&tq), async {
        if heartbeat {
            let handle = client.start_workflow(HeartbeatRetry::run, (), start(&tq, prefix)).await.expect("start");
            let attempt = within("result", handle.get_result(result_options())).await.expect("completes");
            let history = handle.fetch_history(WorkflowFetchHistoryOptions::default()).into_events();
            (attempt, within("history", history).await.expect("history"))
        } else {
            let handle = client.start_workflow(StartToCloseRetry::run, (), start(&tq, prefix)).await.expect("start");
            let attempt = within("result", handle.get_result(result_options())).await.expect("completes");
            let history = handle.fetch_history(WorkflowFetchHistoryOptions::default()).into_events();
            (attempt, within("history", history).await.expect("history"))
        }
    })
    .await
}

fn assert_one_started_on_attempt_2(events: &[HistoryEvent]) {
    let kinds = types(events);
    assert_eq!(count(events, EventType::ActivityTaskScheduled), 1, "{kinds:?}");
    assert_eq!(count(events, EventType::ActivityTaskStarted), 1, "only the last attempt is recorded: {kinds:?}");
    assert_eq!(count(events, EventType::ActivityTaskCompleted), 1, "{kinds:?}");
    assert_eq!(count(events, EventType::ActivityTaskTimedOut), 0, "a retried timeout is not recorded: {kinds:?}");
    let started_attempt = events
        .iter()
        .find_map(|e| match &e.attributes {
            Some(history_event::Attributes::ActivityTaskStartedEventAttributes(a)) => Some(a.attempt),
            _ => None,
        })
        .expect("an ActivityTaskStarted event");
    assert_eq!(started_attempt, 2);
    assert_eq!(kinds.last(), Some(&EventType::WorkflowExecutionCompleted), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_past_its_start_to_close_timeout_is_retried() {
    let (attempt, events) = run_timed_out_once("start-to-close", false).await;
    assert_eq!(attempt, 2, "attempt 1 timed out, attempt 2 succeeded");
    assert_one_started_on_attempt_2(&events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_past_its_heartbeat_timeout_is_retried() {
    let (attempt, events) = run_timed_out_once("heartbeat", true).await;
    assert_eq!(attempt, 2, "attempt 1 missed its heartbeat, attempt 2 succeeded");
    assert_one_started_on_attempt_2(&events);
}

// ------------------------------------------------- workflow execution timeout

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_past_its_execution_timeout_times_out() {
    let (_server, client, tq) = setup("exec-timeout").await;
    let (outcome, events) = with_worker(&client, worker_options(&tq), async {
        let options = WorkflowStartOptions::new(tq.as_str(), unique("exec-timeout")).execution_timeout(Duration::from_secs(1)).build();
        let handle = client.start_workflow(LongSleeper::run, 30_000, options).await.expect("start");
        let outcome = within("result", handle.get_result(result_options())).await;
        let events = within("history", handle.fetch_history(WorkflowFetchHistoryOptions::default()).into_events()).await.expect("history");
        (outcome, events)
    })
    .await;
    assert!(matches!(outcome, Err(WorkflowGetResultError::TimedOut)), "{outcome:?}");
    let kinds = types(&events);
    assert_eq!(kinds.last(), Some(&EventType::WorkflowExecutionTimedOut), "{kinds:?}");
    assert_eq!(count(&events, EventType::TimerFired), 0, "{kinds:?}");
}

// ------------------------------------------------ memo and search attributes

const COLOR: SearchAttributeKey<String> = SearchAttributeKey::keyword("CustomKeywordField");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memo_and_search_attributes_are_described() {
    let (_server, client, tq) = setup("memo").await;
    let mut memo = MemoValues::new();
    memo.insert("owner", "hourglass".to_string());
    memo.insert("priority", 7_i64);
    let options = WorkflowStartOptions::new(tq.as_str(), unique("memo"))
        .memo(memo)
        .search_attributes(SearchAttributes::new([COLOR.value_set("teal".to_string())]))
        .build();
    // No worker is needed: the run stays open while it is described.
    let handle = client.start_workflow(Idle::run, (), options).await.expect("start");
    let description = within("describe", handle.describe(WorkflowDescribeOptions::default())).await.expect("describe");
    let memo = description.memo();
    assert_eq!(memo.len(), 2, "{:?}", memo.raw());
    assert_eq!(memo.get::<String>("owner").expect("decodes"), Some("hourglass".to_string()));
    assert_eq!(memo.get::<i64>("priority").expect("decodes"), Some(7));
    let attributes = description.search_attributes();
    assert_eq!(attributes.get(&COLOR), Some("teal".to_string()), "{:?}", description.raw());
    handle.terminate(WorkflowTerminateOptions::builder().reason("done").build()).await.expect("terminate");
}

// ---------------------------------------------------- workflow task timeout

const NS: &str = "default";

fn call<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(Duration::from_secs(10));
    request
}

/// Polls until a workflow task arrives (empty long-poll answers are retried), bounded.
async fn poll_task(svc: &mut WorkflowServiceClient<Channel>, task_queue: &str) -> PollWorkflowTaskQueueResponse {
    within("a workflow task", async {
        loop {
            let poll = PollWorkflowTaskQueueRequest {
                namespace: NS.into(),
                task_queue: Some(TaskQueue { name: task_queue.into(), ..Default::default() }),
                identity: "never-answers".into(),
                ..Default::default()
            };
            match svc.poll_workflow_task_queue(call(poll)).await {
                Ok(response) if !response.get_ref().task_token.is_empty() => return response.into_inner(),
                Ok(_) => {}
                Err(status) if status.code() == temporalio_client::tonic::Code::DeadlineExceeded => {}
                Err(status) => panic!("PollWorkflowTaskQueue failed: {status:?}"),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_workflow_task_times_out_and_is_retried() {
    let server = TestServer::start().await.expect("server starts");
    let channel = Channel::from_shared(server.url()).expect("valid url").connect().await.expect("connects");
    let mut svc = WorkflowServiceClient::new(channel);
    let task_queue = unique("wft-timeout");
    let workflow_id = unique("wft-timeout");
    let start = StartWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_id: workflow_id.clone(),
        workflow_type: Some(WorkflowType { name: "NeverAnswered".into() }),
        task_queue: Some(TaskQueue { name: task_queue.clone(), ..Default::default() }),
        workflow_task_timeout: Some(prost_wkt_types::Duration { seconds: 1, nanos: 0 }),
        identity: "raw".into(),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let run_id = svc.start_workflow_execution(call(start)).await.expect("StartWorkflowExecution").into_inner().run_id;

    let first = poll_task(&mut svc, &task_queue).await;
    assert_eq!(first.attempt, 1);
    // Never answered: after 1 s the server times the task out and schedules attempt 2.
    let second = poll_task(&mut svc, &task_queue).await;
    let execution = second.workflow_execution.clone().expect("the task names its run");
    assert_eq!((execution.workflow_id.as_str(), execution.run_id.as_str()), (workflow_id.as_str(), run_id.as_str()));
    assert_eq!(second.attempt, 2, "the same workflow task, retried");
    assert_ne!(second.task_token, first.task_token);
    let polled = types(&second.history.clone().unwrap_or_default().events);
    assert!(
        polled.ends_with(&[EventType::WorkflowTaskTimedOut, EventType::WorkflowTaskScheduled, EventType::WorkflowTaskStarted]),
        "history handed to the worker: {polled:?}"
    );
    assert_eq!(
        polled[..3],
        [EventType::WorkflowExecutionStarted, EventType::WorkflowTaskScheduled, EventType::WorkflowTaskStarted],
        "{polled:?}"
    );

    let history = GetWorkflowExecutionHistoryRequest {
        namespace: NS.into(),
        execution: Some(WorkflowExecution { workflow_id: workflow_id.clone(), run_id: run_id.clone() }),
        ..Default::default()
    };
    let fetched = svc.get_workflow_execution_history(call(history)).await.expect("GetWorkflowExecutionHistory").into_inner();
    let fetched = types(&fetched.history.unwrap_or_default().events);
    // Temporal keeps attempt-2 Scheduled/Started transient, but appends them to
    // GetWorkflowExecutionHistory for SDK clients: the fetched history ends the same way.
    assert_eq!(
        fetched,
        [
            EventType::WorkflowExecutionStarted,
            EventType::WorkflowTaskScheduled,
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskTimedOut,
            EventType::WorkflowTaskScheduled,
            EventType::WorkflowTaskStarted,
        ],
        "GetWorkflowExecutionHistory after the timeout"
    );
}
