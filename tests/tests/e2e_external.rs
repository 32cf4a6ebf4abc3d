//! Workflows that signal or cancel other workflows (`SignalExternalWorkflowExecution`,
//! `RequestCancelExternalWorkflowExecution`), run end to end by the real Temporal
//! Rust SDK against an in-process Hourglass server: an external signal and an
//! external cancel, a parent cancelling and signalling its started child, and targets
//! that do not exist (the failed events and the SDK's errors). Histories are checked
//! against what Temporal's server writes (`service/tests/reference/hist-ext-*.json`,
//! `hist-child-{cancel,signal}*.json`).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use hourglass_tests::TestServer;
use support::{event_type, full_history, unique, with_worker, within};
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_protos::protos::temporal::api::enums::v1::EventType;
use temporalio_protos::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_sdk::{
    ChildWorkflowOptions, SignalWorkflowOptions, SyncWorkflowContext, WorkerOptions, WorkflowContext, WorkflowResult, WorkflowSignalError,
};

// ------------------------------------------------------------------- workflows

/// Waits for one `poke` signal and returns its value.
#[workflow]
#[derive(Default)]
pub struct Receiver {
    got: Option<String>,
}

#[workflow_methods]
impl Receiver {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
        ctx.wait_condition(|s| s.got.is_some()).await?;
        Ok(format!("got {}", ctx.state(|s| s.got.clone()).unwrap_or_default()))
    }

    #[signal]
    pub fn poke(&mut self, _ctx: &mut SyncWorkflowContext<Self>, value: String) {
        self.got = Some(value);
    }
}

/// Waits until cancelled.
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

/// Signals the workflow `target` and says how that went.
#[workflow]
#[derive(Default)]
pub struct Signaler;

#[workflow_methods]
impl Signaler {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, target: String) -> WorkflowResult<String> {
        let handle = ctx.external_workflow(target, None);
        Ok(match handle.signal(Receiver::poke, "hello".to_string(), SignalWorkflowOptions::default()).await {
            Ok(()) => "signalled".to_string(),
            Err(WorkflowSignalError::NotFound(e)) => format!("not found: {}", e.failure().message),
            Err(e) => format!("failed: {e}"),
        })
    }
}

/// Requests cancellation of the workflow `target` and says how that went.
#[workflow]
#[derive(Default)]
pub struct Canceler;

#[workflow_methods]
impl Canceler {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, target: String) -> WorkflowResult<String> {
        let handle = ctx.external_workflow(target, None);
        Ok(match handle.cancel(Some("stop".to_string())).await {
            Ok(()) => "cancel requested".to_string(),
            Err(e) => format!("failed: {e}"),
        })
    }
}

/// Starts an `Idle` child, cancels it once started and reports what its result was.
#[workflow]
#[derive(Default)]
pub struct CancelsChild;

#[workflow_methods]
impl CancelsChild {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
        let id = format!("{}-child", ctx.info().workflow_id());
        let child = ctx.start_child_workflow(Idle::run, (), ChildWorkflowOptions::workflow_id(id)).await?;
        child.cancel("parent says stop".to_string());
        Ok(match child.result().await {
            Ok(()) => "child completed".to_string(),
            Err(e) => {
                let cancelled = e.failure().and_then(|f| f.cause.as_deref()).and_then(|c| c.failure_info.as_ref());
                match cancelled {
                    Some(FailureInfo::CanceledFailureInfo(_)) => "child cancelled".to_string(),
                    other => format!("child failed otherwise: {e} / {other:?}"),
                }
            }
        })
    }
}

/// Starts a `Receiver` child, signals it and returns its result.
#[workflow]
#[derive(Default)]
pub struct SignalsChild;

#[workflow_methods]
impl SignalsChild {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
        let id = format!("{}-child", ctx.info().workflow_id());
        let child = ctx.start_child_workflow(Receiver::run, (), ChildWorkflowOptions::workflow_id(id)).await?;
        child.signal(Receiver::poke, "from parent".to_string(), SignalWorkflowOptions::default()).await?;
        Ok(child.result().await?)
    }
}

// ----------------------------------------------------------------------- setup

fn worker_options(task_queue: &str) -> WorkerOptions {
    WorkerOptions::new(task_queue)
        .register_workflow::<Receiver>()
        .and_then(|o| o.register_workflow::<Idle>())
        .and_then(|o| o.register_workflow::<Signaler>())
        .and_then(|o| o.register_workflow::<Canceler>())
        .and_then(|o| o.register_workflow::<CancelsChild>())
        .and_then(|o| o.register_workflow::<SignalsChild>())
        .expect("workflows register")
        .build()
}

async fn setup(name: &str) -> (TestServer, Client, String) {
    let server = TestServer::start().await.expect("server starts");
    let client = support::client(&server, "default").await;
    (server, client, unique(name))
}

async fn history(client: &Client, workflow_id: &str) -> Vec<HistoryEvent> {
    full_history(client, "default", workflow_id, "").await.expect("history reads")
}

fn types(events: &[HistoryEvent]) -> Vec<EventType> {
    events.iter().map(event_type).collect()
}

fn attributes(events: &[HistoryEvent], kind: EventType) -> Attributes {
    let found: Vec<&HistoryEvent> = events.iter().filter(|e| event_type(e) == kind).collect();
    let [event] = found[..] else { panic!("one {kind:?} expected, got {}", found.len()) };
    event.attributes.clone().unwrap()
}

// ----------------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_signals_another() {
    let (_server, client, tq) = setup("ext-signal").await;
    let (target, sender) = (unique("receiver"), unique("signaler"));
    let (sent, received) = with_worker(&client, worker_options(&tq), async {
        let receiver = client.start_workflow(Receiver::run, (), WorkflowStartOptions::new(&tq, &target).build()).await.unwrap();
        let signaler = client.start_workflow(Signaler::run, target.clone(), WorkflowStartOptions::new(&tq, &sender).build()).await.unwrap();
        let sent = within("signaler", signaler.get_result(WorkflowGetResultOptions::default())).await.unwrap();
        let received = within("receiver", receiver.get_result(WorkflowGetResultOptions::default())).await.unwrap();
        (sent, received)
    })
    .await;
    assert_eq!(sent, "signalled");
    assert_eq!(received, "got hello");

    // hist-ext-signal.json: Initiated, ExternalWorkflowExecutionSignaled, a new task.
    let events = history(&client, &sender).await;
    let t = types(&events);
    let i = t.iter().position(|x| *x == EventType::SignalExternalWorkflowExecutionInitiated).unwrap();
    assert_eq!(&t[i + 1..i + 3], &[EventType::ExternalWorkflowExecutionSignaled, EventType::WorkflowTaskScheduled]);
    let Attributes::ExternalWorkflowExecutionSignaledEventAttributes(a) = attributes(&events, EventType::ExternalWorkflowExecutionSignaled)
    else {
        panic!()
    };
    assert_eq!((a.initiated_event_id, a.namespace.as_str()), (events[i].event_id, "default"));
    assert_eq!(a.workflow_execution.unwrap().workflow_id, target);
    // hist-ext-signal-target.json: the signal names its sender.
    let events = history(&client, &target).await;
    let Attributes::WorkflowExecutionSignaledEventAttributes(a) = attributes(&events, EventType::WorkflowExecutionSignaled) else {
        panic!()
    };
    assert_eq!(a.signal_name, "poke");
    assert_eq!(a.identity, "history-service");
    assert_eq!(a.external_workflow_execution.unwrap().workflow_id, sender);
    assert!(!a.request_id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_cancels_another() {
    let (_server, client, tq) = setup("ext-cancel").await;
    let (target, sender) = (unique("idle"), unique("canceler"));
    let (sent, ended) = with_worker(&client, worker_options(&tq), async {
        let idle = client.start_workflow(Idle::run, (), WorkflowStartOptions::new(&tq, &target).build()).await.unwrap();
        let canceler = client.start_workflow(Canceler::run, target.clone(), WorkflowStartOptions::new(&tq, &sender).build()).await.unwrap();
        let sent = within("canceler", canceler.get_result(WorkflowGetResultOptions::default())).await.unwrap();
        let ended = within("idle", idle.get_result(WorkflowGetResultOptions::default())).await;
        (sent, ended)
    })
    .await;
    assert_eq!(sent, "cancel requested");
    assert!(matches!(ended, Err(WorkflowGetResultError::Cancelled { .. })), "{ended:?}");
    let events = history(&client, &sender).await;
    assert!(types(&events).contains(&EventType::ExternalWorkflowExecutionCancelRequested));
    let events = history(&client, &target).await;
    let Attributes::WorkflowExecutionCancelRequestedEventAttributes(a) = attributes(&events, EventType::WorkflowExecutionCancelRequested)
    else {
        panic!()
    };
    assert_eq!(a.identity, "history-service");
    assert_eq!(a.external_workflow_execution.unwrap().workflow_id, sender);
    assert!(a.external_initiated_event_id > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_cancels_its_started_child() {
    let (_server, client, tq) = setup("child-cancel").await;
    let parent = unique("parent");
    let result = with_worker(&client, worker_options(&tq), async {
        let handle = client.start_workflow(CancelsChild::run, (), WorkflowStartOptions::new(&tq, &parent).build()).await.unwrap();
        within("parent", handle.get_result(WorkflowGetResultOptions::default())).await.unwrap()
    })
    .await;
    // Temporal's server finishes such a parent with ChildWorkflowError(CancelledError).
    assert_eq!(result, "child cancelled");
    // hist-child-cancel.json: the request is for the child only, and delivered.
    let events = history(&client, &parent).await;
    let Attributes::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(a) =
        attributes(&events, EventType::RequestCancelExternalWorkflowExecutionInitiated)
    else {
        panic!()
    };
    assert!(a.child_workflow_only);
    let t = types(&events);
    assert!(t.contains(&EventType::ExternalWorkflowExecutionCancelRequested), "{t:?}");
    assert!(t.contains(&EventType::ChildWorkflowExecutionCanceled), "{t:?}");
    let child = history(&client, &format!("{parent}-child")).await;
    assert_eq!(types(&child).last(), Some(&EventType::WorkflowExecutionCanceled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_signals_its_started_child() {
    let (_server, client, tq) = setup("child-signal").await;
    let parent = unique("parent");
    let result = with_worker(&client, worker_options(&tq), async {
        let handle = client.start_workflow(SignalsChild::run, (), WorkflowStartOptions::new(&tq, &parent).build()).await.unwrap();
        within("parent", handle.get_result(WorkflowGetResultOptions::default())).await.unwrap()
    })
    .await;
    assert_eq!(result, "got from parent");
    let events = history(&client, &parent).await;
    let Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(a) =
        attributes(&events, EventType::SignalExternalWorkflowExecutionInitiated)
    else {
        panic!()
    };
    assert!(a.child_workflow_only);
    assert!(types(&events).contains(&EventType::ExternalWorkflowExecutionSignaled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_that_do_not_exist_fail() {
    let (_server, client, tq) = setup("ext-missing").await;
    let (signaler, canceler) = (unique("signaler"), unique("canceler"));
    let (signalled, cancelled) = with_worker(&client, worker_options(&tq), async {
        let s =
            client.start_workflow(Signaler::run, "nobody".to_string(), WorkflowStartOptions::new(&tq, &signaler).build()).await.unwrap();
        let c =
            client.start_workflow(Canceler::run, "nobody".to_string(), WorkflowStartOptions::new(&tq, &canceler).build()).await.unwrap();
        let signalled = within("signaler", s.get_result(WorkflowGetResultOptions::default())).await.unwrap();
        let cancelled = within("canceler", c.get_result(WorkflowGetResultOptions::default())).await.unwrap();
        (signalled, cancelled)
    })
    .await;
    assert!(signalled.starts_with("not found"), "{signalled}");
    assert!(cancelled.starts_with("failed") && cancelled.contains("not found"), "{cancelled}");
    let events = history(&client, &signaler).await;
    let Attributes::SignalExternalWorkflowExecutionFailedEventAttributes(a) =
        attributes(&events, EventType::SignalExternalWorkflowExecutionFailed)
    else {
        panic!()
    };
    assert_eq!(a.cause, 1, "EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND");
    let events = history(&client, &canceler).await;
    assert!(types(&events).contains(&EventType::RequestCancelExternalWorkflowExecutionFailed));
}
