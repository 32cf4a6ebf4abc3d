//! Workflow retry policies and cron schedules, run end to end by the real Temporal
//! Rust SDK against an in-process Hourglass server: the chain of runs (each close
//! event naming the next run, each new run's Started attributes), the retry states
//! Temporal reports, the client's `get_result` following the chain to its last run,
//! and a cron chain stopped by termination. Expectations are those Temporal's server
//! (CLI 1.9.1 / server 1.32.0) showed for the same workflows.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use hourglass_tests::TestServer;
use support::{full_history, unique, with_worker, within};
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::tonic::IntoRequest;
use temporalio_client::{Client, RetryPolicy, WorkflowDescribeOptions, WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::protos::temporal::api::enums::v1::{ContinueAsNewInitiator, EventType, RetryState, WorkflowExecutionStatus};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{HistoryEvent, WorkflowExecutionStartedEventAttributes};
use temporalio_protos::protos::temporal::api::workflowservice::v1::{
    DescribeWorkflowExecutionRequest, ListWorkflowExecutionsRequest, TerminateWorkflowExecutionRequest,
};
use temporalio_sdk::{ApplicationFailure, WorkerOptions, WorkflowContext, WorkflowResult};

const NS: &str = "default";

// ------------------------------------------------------------------- workflows

/// Fails on attempts 1 and 2, succeeds on attempt 3.
#[workflow]
#[derive(Default)]
pub struct FailTwice;

#[workflow_methods]
impl FailTwice {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
        let attempt = ctx.info().attempt();
        if attempt < 3 {
            return Err(ApplicationFailure::builder(format!("fail attempt {attempt}")).type_name("Flaky".to_string()).build().into());
        }
        Ok(format!("ok at {attempt}"))
    }
}

/// Fails with the error type `Bad`.
#[workflow]
#[derive(Default)]
pub struct FailBad;

#[workflow_methods]
impl FailBad {
    #[run]
    pub async fn run(_ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
        Err(ApplicationFailure::builder("bad input").type_name("Bad".to_string()).build().into())
    }
}

/// Outlives its run timeout on attempt 1; later attempts return at once.
#[workflow]
#[derive(Default)]
pub struct SlowFirst;

#[workflow_methods]
impl SlowFirst {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
        let attempt = ctx.info().attempt();
        if attempt == 1 {
            ctx.timer(Duration::from_secs(100)).await;
        }
        Ok(format!("attempt {attempt}"))
    }
}

/// One cron run: returns its schedule.
#[workflow]
#[derive(Default)]
pub struct CronRun;

#[workflow_methods]
impl CronRun {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
        Ok(ctx.info().cron_schedule().unwrap_or_default().to_string())
    }
}

// ----------------------------------------------------------------------- setup

fn worker_options(task_queue: &str) -> WorkerOptions {
    WorkerOptions::new(task_queue)
        .register_workflow::<FailTwice>()
        .and_then(|o| o.register_workflow::<FailBad>())
        .and_then(|o| o.register_workflow::<SlowFirst>())
        .and_then(|o| o.register_workflow::<CronRun>())
        .expect("workflows register")
        .build()
}

async fn setup(name: &str) -> (TestServer, Client, String) {
    let server = TestServer::start().await.expect("server starts");
    let client = support::client(&server, NS).await;
    (server, client, unique(name))
}

fn one_second_retries() -> RetryPolicy {
    RetryPolicy::builder().initial_interval(Duration::from_secs(1)).build()
}

/// One run of a chain: its id and full history.
struct Run {
    run_id: String,
    events: Vec<HistoryEvent>,
}

impl Run {
    fn started(&self) -> WorkflowExecutionStartedEventAttributes {
        match self.events.first().and_then(|e| e.attributes.clone()) {
            Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => a,
            other => panic!("run {} does not begin with Started: {other:?}", self.run_id),
        }
    }

    fn close(&self) -> (EventType, i32, String) {
        let last = self.events.last().expect("events");
        match last.attributes.clone() {
            Some(Attributes::WorkflowExecutionFailedEventAttributes(a)) => {
                (EventType::WorkflowExecutionFailed, a.retry_state, a.new_execution_run_id)
            }
            Some(Attributes::WorkflowExecutionTimedOutEventAttributes(a)) => {
                (EventType::WorkflowExecutionTimedOut, a.retry_state, a.new_execution_run_id)
            }
            Some(Attributes::WorkflowExecutionCompletedEventAttributes(a)) => {
                (EventType::WorkflowExecutionCompleted, 0, a.new_execution_run_id)
            }
            _ => (support::event_type(last), 0, String::new()),
        }
    }
}

/// The chain of runs from `first_run_id`, following each close event's new run.
async fn chain(client: &Client, workflow_id: &str, first_run_id: &str) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut run_id = first_run_id.to_string();
    while !run_id.is_empty() {
        let events = full_history(client, NS, workflow_id, &run_id).await.expect("history");
        let run = Run { run_id, events };
        run_id = if support::is_close(support::event_type(run.events.last().expect("events"))) { run.close().2 } else { String::new() };
        runs.push(run);
    }
    runs
}

async fn status_of(client: &Client, workflow_id: &str, run_id: &str) -> WorkflowExecutionStatus {
    let request = DescribeWorkflowExecutionRequest {
        namespace: NS.into(),
        execution: Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: run_id.into() }),
    };
    let described = client.connection().workflow_service().describe_workflow_execution(request.into_request()).await.expect("describe");
    described.into_inner().workflow_execution_info.expect("info").status()
}

fn ms(d: &Option<prost_wkt_types::Duration>) -> i64 {
    d.as_ref().map_or(-1, |d| d.seconds * 1000 + i64::from(d.nanos) / 1_000_000)
}

// ------------------------------------------------------------------- retries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_failing_twice_is_retried_into_a_chain_of_three_runs() {
    let (_server, client, tq) = setup("retry").await;
    let workflow_id = unique("fail-twice");
    let (result, first_run_id) = with_worker(&client, worker_options(&tq), async {
        let options = WorkflowStartOptions::new(tq.as_str(), workflow_id.as_str()).retry_policy(one_second_retries()).build();
        let handle = client.start_workflow(FailTwice::run, (), options).await.expect("start");
        let first = handle.info().run_id.clone().expect("a run id");
        (within("result", handle.get_result(WorkflowGetResultOptions::default())).await, first)
    })
    .await;
    assert_eq!(result.expect("the client follows the chain to the last run"), "ok at 3");

    let runs = chain(&client, &workflow_id, &first_run_id).await;
    assert_eq!(runs.len(), 3);
    for (i, run) in runs.iter().enumerate() {
        let a = run.started();
        assert_eq!(a.attempt, i as i32 + 1);
        assert_eq!(a.first_execution_run_id, first_run_id);
        assert_eq!(a.original_execution_run_id, run.run_id);
        let policy = a.retry_policy.expect("the defaulted policy is recorded");
        assert_eq!((ms(&policy.initial_interval), ms(&policy.maximum_interval), policy.backoff_coefficient), (1_000, 100_000, 2.0));
        if i == 0 {
            assert_eq!(a.initiator, ContinueAsNewInitiator::Unspecified as i32);
            assert_eq!(ms(&a.first_workflow_task_backoff), 0);
        } else {
            assert_eq!(a.initiator, ContinueAsNewInitiator::Retry as i32);
            assert_eq!(a.continued_execution_run_id, runs[i - 1].run_id);
            assert_eq!(ms(&a.first_workflow_task_backoff), 1_000 << (i - 1), "1 s, then 2 s");
            assert_eq!(a.continued_failure.expect("the failure retried").message, format!("fail attempt {i}"));
        }
    }
    for run in &runs[..2] {
        let (kind, retry_state, next) = run.close();
        assert_eq!((kind, retry_state), (EventType::WorkflowExecutionFailed, RetryState::InProgress as i32));
        assert!(!next.is_empty());
        assert_eq!(status_of(&client, &workflow_id, &run.run_id).await, WorkflowExecutionStatus::Failed);
    }
    assert_eq!(runs[2].close().0, EventType::WorkflowExecutionCompleted);
    assert_eq!(status_of(&client, &workflow_id, "").await, WorkflowExecutionStatus::Completed, "the current run is the last");
}

async fn run_failing(prefix: &str, policy: RetryPolicy) -> (Result<String, WorkflowGetResultError>, Vec<Run>) {
    let (_server, client, tq) = setup(prefix).await;
    let workflow_id = unique(prefix);
    let (result, first) = with_worker(&client, worker_options(&tq), async {
        let options = WorkflowStartOptions::new(tq.as_str(), workflow_id.as_str()).retry_policy(policy).build();
        let handle = client.start_workflow(FailBad::run, (), options).await.expect("start");
        let first = handle.info().run_id.clone().expect("a run id");
        (within("result", handle.get_result(WorkflowGetResultOptions::default())).await, first)
    })
    .await;
    (result, chain(&client, &workflow_id, &first).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_retryable_error_type_ends_the_workflow_at_once() {
    let policy = RetryPolicy::builder().initial_interval(Duration::from_secs(1)).non_retryable_error_types(vec!["Bad".to_string()]).build();
    let (result, runs) = run_failing("non-retryable", policy).await;
    assert!(matches!(result, Err(WorkflowGetResultError::Failed(_))), "{result:?}");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].close(), (EventType::WorkflowExecutionFailed, RetryState::NonRetryableFailure as i32, String::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_maximum_attempts() {
    let policy = RetryPolicy::builder().initial_interval(Duration::from_secs(1)).maximum_attempts(2).build();
    let (result, runs) = run_failing("max-attempts", policy).await;
    assert!(matches!(result, Err(WorkflowGetResultError::Failed(_))), "{result:?}");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].close().1, RetryState::InProgress as i32);
    assert_eq!(runs[1].close(), (EventType::WorkflowExecutionFailed, RetryState::MaximumAttemptsReached as i32, String::new()));
    assert_eq!(runs[1].started().attempt, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_run_timeout_is_retried() {
    let (_server, client, tq) = setup("run-timeout").await;
    let workflow_id = unique("run-timeout");
    let (result, first) = with_worker(&client, worker_options(&tq), async {
        let policy = RetryPolicy::builder().initial_interval(Duration::from_secs(1)).maximum_attempts(3).build();
        let options =
            WorkflowStartOptions::new(tq.as_str(), workflow_id.as_str()).run_timeout(Duration::from_secs(2)).retry_policy(policy).build();
        let handle = client.start_workflow(SlowFirst::run, (), options).await.expect("start");
        let first = handle.info().run_id.clone().expect("a run id");
        (within("result", handle.get_result(WorkflowGetResultOptions::default())).await, first)
    })
    .await;
    assert_eq!(result.expect("attempt 2 completes"), "attempt 2");
    let runs = chain(&client, &workflow_id, &first).await;
    assert_eq!(runs.len(), 2);
    let (kind, retry_state, next) = runs[0].close();
    assert_eq!(
        (kind, retry_state, next.as_str()),
        (EventType::WorkflowExecutionTimedOut, RetryState::InProgress as i32, runs[1].run_id.as_str())
    );
    let a = runs[1].started();
    assert_eq!((a.attempt, a.initiator), (2, ContinueAsNewInitiator::Retry as i32));
    assert_eq!(ms(&a.workflow_run_timeout), 2_000);
    assert_eq!(a.continued_failure.expect("the timeout").message, "workflow timeout");
    assert_eq!(status_of(&client, &workflow_id, &first).await, WorkflowExecutionStatus::TimedOut);
}

// ----------------------------------------------------------------------- cron

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_workflow_chains_runs_until_terminated() {
    let (_server, client, tq) = setup("cron").await;
    let workflow_id = unique("cron");
    let first = with_worker(&client, worker_options(&tq), async {
        let options = WorkflowStartOptions::new(tq.as_str(), workflow_id.as_str()).cron_schedule("@every 2s".to_string()).build();
        let handle = client.start_workflow(CronRun::run, (), options).await.expect("start");
        let first = handle.info().run_id.clone().expect("a run id");
        // Two runs complete (each about 2 s after the one before), then terminate.
        within("two cron runs", async {
            loop {
                let runs = chain(&client, &workflow_id, &first).await;
                let completed = runs.iter().filter(|r| r.close().0 == EventType::WorkflowExecutionCompleted).count();
                if completed >= 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        let terminate = TerminateWorkflowExecutionRequest {
            namespace: NS.into(),
            workflow_execution: Some(WorkflowExecution { workflow_id: workflow_id.clone(), run_id: String::new() }),
            reason: "enough".into(),
            first_execution_run_id: first.clone(),
            ..Default::default()
        };
        client.connection().workflow_service().terminate_workflow_execution(terminate.into_request()).await.expect("terminate");
        first
    })
    .await;

    let runs = chain(&client, &workflow_id, &first).await;
    assert!(runs.len() >= 3, "two completed runs and the terminated one: {}", runs.len());
    let last = runs.last().expect("runs");
    assert_eq!(support::event_type(last.events.last().expect("events")), EventType::WorkflowExecutionTerminated);
    for (i, run) in runs.iter().enumerate() {
        let a = run.started();
        assert_eq!(a.initiator, ContinueAsNewInitiator::CronSchedule as i32, "run {i}");
        assert_eq!(a.cron_schedule, "@every 2s");
        assert_eq!(a.attempt, 1);
        let backoff = ms(&a.first_workflow_task_backoff);
        assert!((1_000..=2_000).contains(&backoff) && backoff % 1_000 == 0, "run {i}: whole seconds to the next even second: {backoff}");
        if i > 0 {
            assert_eq!(a.continued_execution_run_id, runs[i - 1].run_id);
            assert!(a.last_completion_result.is_some(), "run {i} gets the previous result");
        }
    }
    for run in &runs[..runs.len() - 1] {
        let (kind, _, next) = run.close();
        assert_eq!(kind, EventType::WorkflowExecutionCompleted);
        assert!(!next.is_empty());
    }
    // The chain is over: nothing runs any more.
    let described =
        client.get_workflow_handle::<CronRun>(workflow_id.clone()).describe(WorkflowDescribeOptions::default()).await.expect("describe");
    assert_eq!(described.raw().workflow_execution_info.as_ref().map(|i| i.status()), Some(WorkflowExecutionStatus::Terminated));

    // ListWorkflowExecutions by workflow id (what the features suite's cron check reads).
    let list = ListWorkflowExecutionsRequest { namespace: NS.into(), query: format!("WorkflowId = '{workflow_id}'"), ..Default::default() };
    let listed = client.connection().workflow_service().list_workflow_executions(list.into_request()).await.expect("list").into_inner();
    assert_eq!(listed.executions.len(), runs.len());
    assert_eq!(listed.executions[0].execution.as_ref().map(|e| e.run_id.as_str()), Some(last.run_id.as_str()), "newest first");
    let completed = listed.executions.iter().filter(|e| e.status() == WorkflowExecutionStatus::Completed).count();
    assert_eq!(completed, runs.len() - 1);
}
