//! Flow tests of the SignalExternal / CancelExternal outboxes over a real four-shard
//! node with the timer service running: the sender and the target on different
//! shards, outcomes recorded back, idempotent delivery, a parent cancelling its child.
//! Waits are on history long polls (see `engine::lifecycle::tests`).
#![allow(deprecated)] // the commands' `namespace` field

use std::time::Duration;

use hourglass_storage::state::{QueueKey, QueueKind};
use temporalio_protos::protos::temporal::api::command::v1::{
    command, CancelWorkflowExecutionCommandAttributes, Command, RequestCancelExternalWorkflowExecutionCommandAttributes,
    SignalExternalWorkflowExecutionCommandAttributes, StartChildWorkflowExecutionCommandAttributes,
};
use temporalio_protos::protos::temporal::api::common::v1::{Payload, Payloads, WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::{CommandType, EventType};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{PollWorkflowTaskQueueResponse, RespondWorkflowTaskCompletedRequest};

use super::*;
use crate::core::state::ExternalRequestKind;
use crate::core::token::TaskToken;
use crate::engine::workflow_task::testkit::{has, history_until, kit_with_shards, policies, spec, NS};
use crate::engine::workflow_task::{self, Poller, Started};
use crate::engine::{commands, start};

fn key(workflow_id: &str, run_id: &str) -> RunKey {
    RunKey { namespace: NS.into(), workflow_id: workflow_id.into(), run_id: run_id.into() }
}

async fn start_on(engine: &Engine, workflow_id: &str, task_queue: &str) -> RunKey {
    let outcome = start::start_workflow(engine, NS, workflow_id, spec(task_queue), policies()).await.expect("starts");
    key(workflow_id, &outcome.run_id)
}

async fn poll(engine: &Engine, task_queue: &str) -> PollWorkflowTaskQueueResponse {
    let queue = QueueKey { namespace: NS.into(), name: task_queue.into(), kind: QueueKind::Workflow };
    let poller = Poller { identity: "worker".into(), build_id: String::new() };
    loop {
        let task = engine.matching().poll(&queue, Duration::from_secs(5)).await.expect("a workflow task is ready");
        match workflow_task::start(engine, &queue, task, &poller).await.expect("task starts") {
            Started::Task(response) => return *response,
            Started::Stale => continue,
        }
    }
}

async fn complete(engine: &Engine, task: &PollWorkflowTaskQueueResponse, commands: Vec<Command>) {
    let token = TaskToken::decode_token(&task.task_token).unwrap();
    let req = RespondWorkflowTaskCompletedRequest { commands, identity: "worker".into(), ..Default::default() };
    commands::complete_workflow_task(engine, &token, req).await.expect("completion accepted");
}

fn events(engine: &Engine, run: &RunKey) -> Vec<HistoryEvent> {
    history::read_events(&engine.owner_now(run), run, 1, 10_000).expect("history reads")
}

fn signal_command(workflow_id: &str, run_id: &str, child_only: bool) -> Command {
    Command {
        command_type: CommandType::SignalExternalWorkflowExecution as i32,
        attributes: Some(command::Attributes::SignalExternalWorkflowExecutionCommandAttributes(
            SignalExternalWorkflowExecutionCommandAttributes {
                namespace: NS.into(),
                execution: Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: run_id.into() }),
                signal_name: "sig".into(),
                input: Some(Payloads { payloads: vec![Payload { data: b"hello".to_vec(), ..Default::default() }] }),
                child_workflow_only: child_only,
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn cancel_command(workflow_id: &str, child_only: bool) -> Command {
    Command {
        command_type: CommandType::RequestCancelExternalWorkflowExecution as i32,
        attributes: Some(command::Attributes::RequestCancelExternalWorkflowExecutionCommandAttributes(
            RequestCancelExternalWorkflowExecutionCommandAttributes {
                namespace: NS.into(),
                workflow_id: workflow_id.into(),
                child_workflow_only: child_only,
                reason: "stop".into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// Two workflow ids on different shards of `engine`.
fn on_other_shards(engine: &Engine, a: &str, b: &str) {
    assert_ne!(engine.router().shard_for(NS, a), engine.router().shard_for(NS, b), "{a} and {b} must be on different shards");
}

#[tokio::test]
async fn a_signal_reaches_a_workflow_on_another_shard_and_the_sender_hears_back() {
    let k = kit_with_shards(4).await;
    let e = &k.engine;
    on_other_shards(e, "sender", "target-1");
    let target = start_on(e, "target-1", "tq-target").await;
    let sender = start_on(e, "sender", "tq-sender").await;
    let task = poll(e, "tq-sender").await;
    complete(e, &task, vec![signal_command("target-1", "", false)]).await;

    let sent =
        history_until(e, &sender, "the signal is recorded as delivered", |ev| has(ev, EventType::ExternalWorkflowExecutionSignaled)).await;
    let types: Vec<i32> = sent.iter().map(|x| x.event_type).collect();
    assert_eq!(
        &types[4..],
        &[
            EventType::SignalExternalWorkflowExecutionInitiated as i32,
            EventType::ExternalWorkflowExecutionSignaled as i32,
            EventType::WorkflowTaskScheduled as i32
        ]
    );
    let state = e.load_existing(&sender).unwrap();
    assert!(state.state.external_requests.is_empty());
    assert!(state.stored_timers.is_empty(), "the outbox timer went with the outcome");

    let received = events(e, &target);
    let signaled = received.iter().find(|x| x.event_type == EventType::WorkflowExecutionSignaled as i32).expect("the target is signalled");
    let Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) = &signaled.attributes else { panic!() };
    assert_eq!(a.signal_name, "sig");
    assert_eq!(a.identity, "history-service");
    assert_eq!(a.external_workflow_execution, Some(WorkflowExecution { workflow_id: "sender".into(), run_id: sender.run_id.clone() }));
    assert!(!a.request_id.is_empty());
}

#[tokio::test]
async fn requests_to_missing_workflows_fail() {
    let k = kit_with_shards(4).await;
    let e = &k.engine;
    let sender = start_on(e, "sender", "tq-sender").await;
    let task = poll(e, "tq-sender").await;
    complete(e, &task, vec![signal_command("nobody", "", false), cancel_command("nobody", false), signal_command("sender", "", false)])
        .await;
    let ev = history_until(e, &sender, "all three fail", |ev| {
        ev.iter().filter(|x| x.event_type == EventType::SignalExternalWorkflowExecutionFailed as i32).count() == 2
            && has(ev, EventType::RequestCancelExternalWorkflowExecutionFailed)
    })
    .await;
    assert!(ev.iter().any(|x| matches!(&x.attributes,
        Some(Attributes::SignalExternalWorkflowExecutionFailedEventAttributes(a)) if a.initiated_event_id == 7 && a.namespace == NS)));
    assert!(e.load_existing(&sender).unwrap().state.external_requests.is_empty());
}

#[tokio::test]
async fn cancellation_reaches_the_target_once_and_delivery_is_idempotent() {
    let k = kit_with_shards(4).await;
    let e = &k.engine;
    let target = start_on(e, "target-2", "tq-target").await;
    let sender = start_on(e, "sender", "tq-sender").await;
    let task = poll(e, "tq-sender").await;
    complete(e, &task, vec![cancel_command("target-2", false), cancel_command("target-2", false)]).await;
    history_until(e, &sender, "both requests are recorded", |ev| {
        ev.iter().filter(|x| x.event_type == EventType::ExternalWorkflowExecutionCancelRequested as i32).count() == 2
    })
    .await;
    let received = events(e, &target);
    let requested: Vec<&HistoryEvent> =
        received.iter().filter(|x| x.event_type == EventType::WorkflowExecutionCancelRequested as i32).collect();
    assert_eq!(requested.len(), 1, "cancellation is requested once");
    let Some(Attributes::WorkflowExecutionCancelRequestedEventAttributes(a)) = &requested[0].attributes else { panic!() };
    assert_eq!((a.cause.as_str(), a.external_initiated_event_id, a.identity.as_str()), ("stop", 5, "history-service"));
    assert_eq!(a.external_workflow_execution.as_ref().unwrap().run_id, sender.run_id);

    // A signal delivered twice (a step retried after a crash) is written once.
    let request = ExternalRequest {
        kind: ExternalRequestKind::Signal,
        source: WorkflowExecution { workflow_id: "sender".into(), run_id: sender.run_id.clone() },
        initiated_event_id: 99,
        namespace: NS.into(),
        target: WorkflowExecution { workflow_id: "target-2".into(), run_id: String::new() },
        child_workflow_only: false,
        control: String::new(),
        request_id: "one-request".into(),
        signal_name: "again".into(),
        input: None,
        header: None,
        reason: String::new(),
    };
    assert_eq!(deliver(e, &request).await.unwrap(), Delivery::Delivered);
    assert_eq!(deliver(e, &request).await.unwrap(), Delivery::Delivered);
    let signals = events(e, &target).iter().filter(|x| x.event_type == EventType::WorkflowExecutionSignaled as i32).count();
    assert_eq!(signals, 1);
    // The sender's outbox fired again after its outcome is recorded: nothing happens.
    let before = events(e, &sender).len();
    on_external_timer(e, &sender, 5).await.unwrap();
    assert_eq!(events(e, &sender).len(), before);
}

#[tokio::test]
async fn a_parent_cancels_its_started_child_and_hears_it_was_canceled() {
    let k = kit_with_shards(4).await;
    let e = &k.engine;
    let parent = start_on(e, "parent", "tq-parent").await;
    let task = poll(e, "tq-parent").await;
    let start_child = Command {
        command_type: CommandType::StartChildWorkflowExecution as i32,
        attributes: Some(command::Attributes::StartChildWorkflowExecutionCommandAttributes(StartChildWorkflowExecutionCommandAttributes {
            workflow_id: "kid".into(),
            workflow_type: Some(WorkflowType { name: "Child".into() }),
            task_queue: Some(TaskQueue { name: "tq-child".into(), ..Default::default() }),
            ..Default::default()
        })),
        ..Default::default()
    };
    complete(e, &task, vec![start_child]).await;
    history_until(e, &parent, "the child started", |ev| has(ev, EventType::ChildWorkflowExecutionStarted)).await;
    let kid_task = poll(e, "tq-child").await;
    let kid = key("kid", &kid_task.workflow_execution.as_ref().unwrap().run_id);
    complete(e, &kid_task, vec![]).await;

    // A workflow that is not the parent cannot cancel it as its child.
    let stranger = start_on(e, "stranger", "tq-stranger").await;
    let t = poll(e, "tq-stranger").await;
    complete(e, &t, vec![cancel_command("kid", true)]).await;
    history_until(e, &stranger, "not its child", |ev| has(ev, EventType::RequestCancelExternalWorkflowExecutionFailed)).await;

    let task = poll(e, "tq-parent").await;
    let mut cancel = cancel_command("kid", true);
    if let Some(command::Attributes::RequestCancelExternalWorkflowExecutionCommandAttributes(a)) = &mut cancel.attributes {
        a.run_id = kid.run_id.clone();
        a.reason = String::new();
    }
    complete(e, &task, vec![cancel]).await;
    history_until(e, &parent, "the cancel request is delivered", |ev| has(ev, EventType::ExternalWorkflowExecutionCancelRequested)).await;
    let kid_task = poll(e, "tq-child").await;
    let cancel_child = Command {
        command_type: CommandType::CancelWorkflowExecution as i32,
        attributes: Some(
            command::Attributes::CancelWorkflowExecutionCommandAttributes(CancelWorkflowExecutionCommandAttributes::default()),
        ),
        ..Default::default()
    };
    complete(e, &kid_task, vec![cancel_child]).await;
    history_until(e, &parent, "the parent hears the child was canceled", |ev| has(ev, EventType::ChildWorkflowExecutionCanceled)).await;
    let kid_events = events(e, &kid);
    let requested = kid_events.iter().find(|x| x.event_type == EventType::WorkflowExecutionCancelRequested as i32).unwrap();
    let Some(Attributes::WorkflowExecutionCancelRequestedEventAttributes(a)) = &requested.attributes else { panic!() };
    assert_eq!(a.external_workflow_execution.as_ref().unwrap().workflow_id, "parent");
    assert!(a.external_initiated_event_id > 0);
}
