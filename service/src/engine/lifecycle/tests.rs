//! Flow tests of the run lifecycle over a real two-shard node with the timer service
//! running: start and its policies, signals, signal-with-start, cancel, terminate,
//! timeouts, continue-as-new, children, history reads and describe.
//!
//! No test waits on a sleep or asserts on elapsed wall time. Timers come due by
//! simulated time ([`TestClock`], moved by [`Kit::advance`]); whatever a test waits
//! for, it waits on the event itself, mostly through history long polls whose budget
//! ([`NEVER`]) is far past the hang guard ([`GUARD`]): only the commit's wake-up can
//! answer them in time, and a guard that runs out fails the test. The kit and these
//! helpers are shared with the other flow tests ([`crate::engine::workflow_task::testkit`]).
//!
//! [`TestClock`]: crate::engine::workflow_task::testkit::TestClock
//! [`GUARD`]: crate::engine::workflow_task::testkit::GUARD

use crate::error::code_of;
use std::time::Duration;
use tonic::Code;

use hourglass_storage::state::{QueueKey, QueueKind, RunKey};
use temporalio_protos::protos::temporal::api::command::v1::{
    command, Command, CompleteWorkflowExecutionCommandAttributes, ContinueAsNewWorkflowExecutionCommandAttributes,
    StartChildWorkflowExecutionCommandAttributes,
};
use temporalio_protos::protos::temporal::api::common::v1::{Payload, Payloads, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::{
    CommandType, ContinueAsNewInitiator, EventType, RetryState, WorkflowExecutionStatus, WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
    WorkflowTaskFailedCause,
};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{PollWorkflowTaskQueueResponse, RespondWorkflowTaskCompletedRequest};

use crate::core::error::StartError;
use crate::core::run::{Policies, StartOutcome, Timeouts};
use crate::core::signals::SignalSpec;
use crate::core::token::TaskToken;
use crate::engine::external;
use crate::engine::history::{self, HistoryRequest, PageToken};
use crate::engine::start;
use crate::engine::workflow_task::testkit::{
    close_event, guarded, has, history_req, history_until, kit_with_shards, parked, policies, spec, time_ms, timers_caught_up, Kit,
    HOUR_MS, NEVER, NS, TQ,
};
use crate::engine::workflow_task::{self, Poller, Started};
use crate::engine::{commands, describe, Engine, EngineConfig};
use crate::error::ServiceError;

/// A node of two shards on simulated time.
async fn kit() -> Kit {
    kit_with_shards(2).await
}

fn payloads(data: &str) -> Option<Payloads> {
    Some(Payloads { payloads: vec![Payload { data: data.as_bytes().to_vec(), ..Default::default() }] })
}

async fn start(engine: &Engine, workflow_id: &str) -> RunKey {
    let outcome = start::start_workflow(engine, NS, workflow_id, spec(TQ), policies()).await.expect("starts");
    assert!(outcome.started);
    key(workflow_id, &outcome.run_id)
}

fn key(workflow_id: &str, run_id: &str) -> RunKey {
    RunKey { namespace: NS.into(), workflow_id: workflow_id.into(), run_id: run_id.into() }
}

fn events(engine: &Engine, run: &RunKey) -> Vec<HistoryEvent> {
    history::read_events(&engine.owner_now(run), run, 1, 10_000).expect("history reads")
}

fn types(engine: &Engine, run: &RunKey) -> Vec<EventType> {
    events(engine, run).iter().map(|e| EventType::try_from(e.event_type).unwrap()).collect()
}

fn status(engine: &Engine, run: &RunKey) -> WorkflowExecutionStatus {
    WorkflowExecutionStatus::try_from(engine.load_existing(run).unwrap().state.status).unwrap()
}

/// Takes the next workflow task of `task_queue` and starts it.
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

fn complete_command(result: &str) -> Command {
    Command {
        command_type: CommandType::CompleteWorkflowExecution as i32,
        attributes: Some(command::Attributes::CompleteWorkflowExecutionCommandAttributes(CompleteWorkflowExecutionCommandAttributes {
            result: payloads(result),
        })),
        ..Default::default()
    }
}

#[tokio::test]
async fn start_is_idempotent_and_applies_the_policies() {
    let k = kit().await;
    let e = &k.engine;
    let s = spec(TQ);
    let first = start::start_workflow(e, NS, "wf", s.clone(), policies()).await.unwrap();
    assert!(first.started);
    let run = key("wf", &first.run_id);
    assert_eq!(types(e, &run), vec![EventType::WorkflowExecutionStarted, EventType::WorkflowTaskScheduled]);
    // Same request id: the same run.
    assert_eq!(start::start_workflow(e, NS, "wf", s.clone(), policies()).await.unwrap(), first);
    // Another request: AlreadyExists with the running run's details.
    match start::start_workflow(e, NS, "wf", spec(TQ), policies()).await {
        Err(ServiceError::Start(StartError::AlreadyStarted { start_request_id, run_id })) => {
            assert_eq!((start_request_id, run_id), (s.request_id.clone(), first.run_id.clone()));
        }
        other => panic!("expected AlreadyStarted, got {other:?}"),
    }
    let use_existing = Policies::resolve(0, WorkflowIdConflictPolicy::UseExisting as i32, WorkflowIdConflictPolicy::Fail).unwrap();
    let again = start::start_workflow(e, NS, "wf", spec(TQ), use_existing).await.unwrap();
    assert_eq!(again, StartOutcome { run_id: first.run_id.clone(), started: false });
    // Terminate-existing: the old run is terminated in the same transition.
    let terminate = Policies::resolve(0, WorkflowIdConflictPolicy::TerminateExisting as i32, WorkflowIdConflictPolicy::Fail).unwrap();
    let second = start::start_workflow(e, NS, "wf", spec(TQ), terminate).await.unwrap();
    assert!(second.started);
    assert_ne!(second.run_id, first.run_id);
    assert_eq!(status(e, &run), WorkflowExecutionStatus::Terminated);
    assert_eq!(e.current_run_now(NS, "wf").unwrap(), Some((second.run_id.clone(), true)));

    // Reuse policies on a closed run.
    external::terminate_workflow(e, NS, "wf", "", "", "done".into(), None, "me".into()).await.unwrap();
    let reject = Policies::resolve(WorkflowIdReusePolicy::RejectDuplicate as i32, 0, WorkflowIdConflictPolicy::Fail).unwrap();
    assert!(matches!(
        start::start_workflow(e, NS, "wf", spec(TQ), reject).await,
        Err(ServiceError::Start(StartError::AlreadyStarted { .. }))
    ));
    let failed_only = Policies::resolve(WorkflowIdReusePolicy::AllowDuplicateFailedOnly as i32, 0, WorkflowIdConflictPolicy::Fail).unwrap();
    let third = start::start_workflow(e, NS, "wf", spec(TQ), failed_only).await.unwrap();
    assert!(third.started, "a terminated run counts as failed");
}

#[tokio::test]
async fn signals_follow_the_buffering_rule_and_dedupe() {
    let k = kit().await;
    let e = &k.engine;
    let run = start(e, "sig").await;
    let task = poll(e, TQ).await;
    let signal = |rid: &str| SignalSpec { signal_name: "s".into(), identity: "c".into(), request_id: rid.into(), ..Default::default() };
    external::signal_workflow(e, NS, "sig", "", signal("r1")).await.unwrap();
    external::signal_workflow(e, NS, "sig", "", signal("r1")).await.unwrap(); // duplicate
                                                                              // A workflow task is in flight: the signal waits in the buffer.
    assert_eq!(types(e, &run).len(), 3);
    assert_eq!(e.load_existing(&run).unwrap().state.buffered_events.len(), 1);
    complete(e, &task, vec![]).await;
    let t = types(e, &run);
    assert_eq!(&t[3..], &[EventType::WorkflowTaskCompleted, EventType::WorkflowExecutionSignaled, EventType::WorkflowTaskScheduled]);
    external::terminate_workflow(e, NS, "sig", "", "", "bye".into(), None, "c".into()).await.unwrap();
    assert!(code_of(&external::signal_workflow(e, NS, "sig", "", signal("r2")).await) == Some(Code::NotFound));
    assert!(code_of(&external::signal_workflow(e, NS, "nope", "", signal("r3")).await) == Some(Code::NotFound));
}

#[tokio::test]
async fn signal_with_start_starts_or_signals() {
    let k = kit().await;
    let e = &k.engine;
    let sws = |rid: &str| {
        let mut s = spec(TQ);
        s.request_id = rid.into();
        let p = Policies::resolve(0, 0, WorkflowIdConflictPolicy::UseExisting).unwrap();
        let signal = SignalSpec { signal_name: "go".into(), input: payloads("x"), request_id: rid.into(), ..Default::default() };
        (s, p, signal)
    };
    let (s, p, sig) = sws("a");
    let first = external::signal_with_start(e, NS, "sws", s, p, sig).await.unwrap();
    assert!(first.started);
    let run = key("sws", &first.run_id);
    assert_eq!(
        types(e, &run),
        vec![EventType::WorkflowExecutionStarted, EventType::WorkflowExecutionSignaled, EventType::WorkflowTaskScheduled]
    );
    let (s, p, sig) = sws("a");
    assert_eq!(external::signal_with_start(e, NS, "sws", s, p, sig).await.unwrap(), first, "retried request");
    let (s, p, sig) = sws("b");
    let second = external::signal_with_start(e, NS, "sws", s, p, sig).await.unwrap();
    assert_eq!(second, StartOutcome { run_id: first.run_id.clone(), started: false });
    // The pending workflow task delivers it: no second WorkflowTaskScheduled.
    assert_eq!(types(e, &run).last(), Some(&EventType::WorkflowExecutionSignaled));
}

#[tokio::test]
async fn start_delay_holds_the_first_task_and_signals_do_not_schedule_one() {
    let k = kit().await;
    let e = &k.engine;
    let mut s = spec(TQ);
    s.start_delay_ms = HOUR_MS;
    let out = start::start_workflow(e, NS, "delayed", s, policies()).await.unwrap();
    let run = key("delayed", &out.run_id);
    let signal = SignalSpec { signal_name: "s".into(), ..Default::default() };
    external::signal_workflow(e, NS, "delayed", "", signal).await.unwrap();
    assert_eq!(types(e, &run), vec![EventType::WorkflowExecutionStarted, EventType::WorkflowExecutionSignaled]);
    timers_caught_up(e, &run).await;
    assert_eq!(types(e, &run), vec![EventType::WorkflowExecutionStarted, EventType::WorkflowExecutionSignaled], "held by its delay");
    // The delay passes (in simulated time): the backoff timer schedules the task.
    k.advance(HOUR_MS);
    let ev = history_until(e, &run, "the backoff timer schedules the task", |ev| has(ev, EventType::WorkflowTaskScheduled)).await;
    let t: Vec<_> = ev.iter().map(|e| EventType::try_from(e.event_type).unwrap()).collect();
    assert_eq!(t, vec![EventType::WorkflowExecutionStarted, EventType::WorkflowExecutionSignaled, EventType::WorkflowTaskScheduled]);
    assert!(time_ms(&ev[2]) >= time_ms(&ev[0]) + HOUR_MS, "scheduled once the delay passed, not before");
}

#[tokio::test]
async fn cancel_is_idempotent_and_terminate_force_closes_the_task() {
    let k = kit().await;
    let e = &k.engine;
    let run = start(e, "c").await;
    let task = poll(e, TQ).await;
    external::request_cancel(e, NS, "c", "", "", "why".into(), "me".into()).await.unwrap();
    external::request_cancel(e, NS, "c", "", "", "again".into(), "me".into()).await.unwrap();
    let state = e.load_existing(&run).unwrap().state;
    assert!(state.cancel_requested);
    assert_eq!(state.buffered_events.len(), 1, "one cancel request, buffered behind the started task");
    assert_eq!(
        code_of(&external::request_cancel(e, NS, "c", "", "not-the-chain", String::new(), String::new()).await),
        Some(Code::NotFound)
    );
    external::terminate_workflow(e, NS, "c", "", "", "stop".into(), payloads("d"), "me".into()).await.unwrap();
    let ev = events(e, &run);
    let t: Vec<_> = ev.iter().map(|e| EventType::try_from(e.event_type).unwrap()).collect();
    assert_eq!(
        &t[2..],
        &[
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskFailed,
            EventType::WorkflowExecutionCancelRequested,
            EventType::WorkflowExecutionTerminated
        ]
    );
    match &ev[3].attributes {
        Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => {
            assert_eq!(a.cause, WorkflowTaskFailedCause::ForceCloseCommand as i32);
            assert_eq!((a.scheduled_event_id, a.started_event_id), (2, 3));
        }
        other => panic!("{other:?}"),
    }
    match &ev[5].attributes {
        Some(Attributes::WorkflowExecutionTerminatedEventAttributes(a)) => {
            assert_eq!((a.reason.as_str(), a.identity.as_str()), ("stop", "me"));
            assert_eq!(a.details, payloads("d"));
        }
        other => panic!("{other:?}"),
    }
    let state = e.load_existing(&run).unwrap().state;
    assert_eq!(state.status, WorkflowExecutionStatus::Terminated as i32);
    assert_eq!(state.close_event_id, 6);
    assert!(state.workflow_task.is_none() && state.buffered_events.is_empty());
    // Closed: cancel is a quiet success, terminate is NotFound, the completion is stale.
    external::request_cancel(e, NS, "c", "", "", String::new(), String::new()).await.unwrap();
    assert_eq!(code_of(&external::terminate_workflow(e, NS, "c", "", "", String::new(), None, String::new()).await), Some(Code::NotFound));
    let token = TaskToken::decode_token(&task.task_token).unwrap();
    let late = commands::complete_workflow_task(e, &token, RespondWorkflowTaskCompletedRequest::default()).await;
    assert!(code_of(&late) == Some(Code::NotFound));
}

#[tokio::test]
async fn execution_timeout_times_the_run_out() {
    let k = kit().await;
    let e = &k.engine;
    let mut s = spec(TQ);
    s.timeouts = Timeouts::normalize(HOUR_MS, 0, 0, &EngineConfig::default());
    let out = start::start_workflow(e, NS, "to", s, policies()).await.unwrap();
    let run = key("to", &out.run_id);
    timers_caught_up(e, &run).await;
    assert_eq!(status(e, &run), WorkflowExecutionStatus::Running, "not timed out before its timeout");
    // The timeout passes (in simulated time): the close-event long poll is answered
    // by the timer's commit.
    k.advance(HOUR_MS);
    let close = close_event(e, &run, "the execution timeout closes the run").await;
    match &close.attributes {
        Some(Attributes::WorkflowExecutionTimedOutEventAttributes(a)) => assert_eq!(a.retry_state, RetryState::Timeout as i32),
        other => panic!("{other:?}"),
    }
    assert!(time_ms(&close) >= time_ms(&events(e, &run)[0]) + HOUR_MS, "timed out once the timeout passed, not before");
    assert_eq!(status(e, &run), WorkflowExecutionStatus::TimedOut);
}

#[tokio::test]
async fn history_pages_forward_and_back_and_long_polls() {
    let k = kit().await;
    let e = &k.engine;
    let run = start(e, "h").await;
    for i in 0..3 {
        let signal = SignalSpec { signal_name: format!("s{i}"), ..Default::default() };
        external::signal_workflow(e, NS, "h", "", signal).await.unwrap();
    }
    // 1 Started, 2 WFTScheduled, 3-5 Signaled.
    let mut req = history_req(&run);
    req.page_size = 2;
    let mut ids = Vec::new();
    loop {
        let page = history::get_history(e, NS, req.clone()).await.unwrap();
        ids.extend(page.events.iter().map(|e| e.event_id));
        if page.next_page_token.is_empty() {
            break;
        }
        req.next_page_token = page.next_page_token;
    }
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    // Reverse.
    let mut token = Vec::new();
    let mut back = Vec::new();
    loop {
        let page = history::get_history_reverse(e, NS, "h", "", 2, &token).await.unwrap();
        back.extend(page.events.iter().map(|e| e.event_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(back, vec![5, 4, 3, 2, 1]);
    // Garbled and foreign tokens.
    let mut bad = history_req(&run);
    bad.next_page_token = b"garbage".to_vec();
    assert!(code_of(&history::get_history(e, NS, bad.clone()).await) == Some(Code::InvalidArgument));
    bad.next_page_token = PageToken { run_id: "other".into(), next_event_id: 1, ..Default::default() }.encode_token();
    assert!(code_of(&history::get_history(e, NS, bad).await) == Some(Code::InvalidArgument));
    // Long poll for new events: nothing new → once its budget runs out, an empty page
    // and a token (that it answers at all is guarded; that it waits, below).
    let mut wait = history_req(&run);
    wait.wait_new_event = true;
    let first = history::get_history(e, NS, wait.clone()).await.unwrap();
    assert_eq!(first.events.len(), 5);
    wait.next_page_token = first.next_page_token;
    wait.wait_budget = Duration::from_millis(50);
    let idle = guarded("an idle long poll answers when its budget runs out", history::get_history(e, NS, wait.clone())).await.unwrap();
    assert!(idle.events.is_empty() && !idle.next_page_token.is_empty());
    // A new event wakes a parked poll. Its budget is far past the guard, so only the
    // commit's notification can answer it: the test fails if wake-ups break.
    wait.next_page_token = idle.next_page_token;
    wait.wait_budget = NEVER;
    let poller = {
        let e = e.clone();
        let wait = wait.clone();
        tokio::spawn(async move { history::get_history(&e, NS, wait).await })
    };
    parked(e, &run, &poller).await;
    external::signal_workflow(e, NS, "h", "", SignalSpec { signal_name: "late".into(), ..Default::default() }).await.unwrap();
    let woke = guarded("the new event wakes the parked long poll", poller).await.unwrap().unwrap();
    assert_eq!(woke.events.iter().map(|e| e.event_id).collect::<Vec<_>>(), vec![6]);
    // CLOSE_EVENT on a running run: empty + token when waiting.
    let mut close = history_req(&run);
    close.close_event_only = true;
    close.wait_new_event = true;
    close.wait_budget = Duration::from_millis(50);
    let open =
        guarded("a close-event long poll answers when its budget runs out", history::get_history(e, NS, close.clone())).await.unwrap();
    assert!(open.events.is_empty() && !open.next_page_token.is_empty());
    assert_eq!(
        code_of(&history::get_history(e, NS, HistoryRequest { workflow_id: "nope".into(), run_id: String::new(), ..close }).await),
        Some(Code::NotFound)
    );
}

#[tokio::test]
async fn continue_as_new_chains_runs() {
    let k = kit().await;
    let e = &k.engine;
    let mut s = spec(TQ);
    s.timeouts = Timeouts::normalize(60_000, 0, 0, &EngineConfig::default());
    let out = start::start_workflow(e, NS, "can", s, policies()).await.unwrap();
    let first = key("can", &out.run_id);
    let task = poll(e, TQ).await;
    let can = Command {
        command_type: CommandType::ContinueAsNewWorkflowExecution as i32,
        attributes: Some(command::Attributes::ContinueAsNewWorkflowExecutionCommandAttributes(
            ContinueAsNewWorkflowExecutionCommandAttributes {
                workflow_type: Some(WorkflowType::default()),
                task_queue: Some(TaskQueue::default()),
                input: payloads("2"),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    complete(e, &task, vec![can]).await;
    let old = e.load_existing(&first).unwrap().state;
    assert_eq!(old.status, WorkflowExecutionStatus::ContinuedAsNew as i32);
    let second = key("can", &old.new_execution_run_id);
    assert_eq!(e.current_run_now(NS, "can").unwrap(), Some((second.run_id.clone(), true)));
    let ev = events(e, &first);
    match &ev.last().unwrap().attributes {
        Some(Attributes::WorkflowExecutionContinuedAsNewEventAttributes(a)) => {
            assert_eq!(a.new_execution_run_id, second.run_id);
            assert_eq!(a.workflow_type.as_ref().unwrap().name, "Wf", "inherited");
            assert_eq!(a.task_queue.as_ref().unwrap().name, TQ, "inherited");
            assert_eq!(a.workflow_task_completed_event_id, 4);
        }
        other => panic!("{other:?}"),
    }
    let started = history::started_attributes(&e.owner_now(&second), &second).unwrap();
    assert_eq!(started.continued_execution_run_id, first.run_id);
    assert_eq!(started.first_execution_run_id, first.run_id);
    assert_eq!(started.original_execution_run_id, second.run_id);
    assert_eq!(started.initiator, ContinueAsNewInitiator::Workflow as i32);
    assert_eq!(started.input, payloads("2"));
    assert_eq!(
        started.workflow_execution_expiration_time,
        history::started_attributes(&e.owner_now(&first), &first).unwrap().workflow_execution_expiration_time
    );
    assert_eq!(types(e, &second), vec![EventType::WorkflowExecutionStarted, EventType::WorkflowTaskScheduled]);
    // The result waiter on the old run gets the ContinuedAsNew event.
    let mut close = history_req(&first);
    close.close_event_only = true;
    let page = history::get_history(e, NS, close).await.unwrap();
    assert_eq!(page.events[0].event_type, EventType::WorkflowExecutionContinuedAsNew as i32);
    // The new run is the one its workers get.
    let task = poll(e, TQ).await;
    assert_eq!(task.workflow_execution.unwrap().run_id, second.run_id);
}

fn start_child_command(workflow_id: &str) -> Command {
    Command {
        command_type: CommandType::StartChildWorkflowExecution as i32,
        attributes: Some(command::Attributes::StartChildWorkflowExecutionCommandAttributes(StartChildWorkflowExecutionCommandAttributes {
            workflow_id: workflow_id.into(),
            workflow_type: Some(WorkflowType { name: "Child".into() }),
            task_queue: Some(TaskQueue { name: "tq-child".into(), ..Default::default() }),
            input: payloads("in"),
            ..Default::default()
        })),
        ..Default::default()
    }
}

#[tokio::test]
async fn children_start_report_back_and_follow_the_parent_close_policy() {
    let k = kit().await;
    let e = &k.engine;
    let parent = start(e, "parent").await;
    let task = poll(e, TQ).await;
    complete(e, &task, vec![start_child_command("kid"), start_child_command("kid2")]).await;
    // The StartChild outbox starts both children and records them in the parent.
    history_until(e, &parent, "both children started", |ev| {
        ev.iter().filter(|x| x.event_type == EventType::ChildWorkflowExecutionStarted as i32).count() == 2
    })
    .await;
    assert!(e.load_existing(&parent).unwrap().state.children.iter().all(|c| !c.run_id.is_empty()));
    let (kid_run, _) = e.current_run_now(NS, "kid").unwrap().unwrap();
    let kid = key("kid", &kid_run);
    let started = history::started_attributes(&e.owner_now(&kid), &kid).unwrap();
    assert_eq!(started.parent_workflow_namespace, NS);
    assert_eq!(started.parent_workflow_execution.as_ref().unwrap().run_id, parent.run_id);
    assert_eq!(started.parent_initiated_event_id, 5);
    assert_eq!(started.root_workflow_execution.as_ref().unwrap().workflow_id, "parent");
    assert_eq!(started.input, payloads("in"));
    let t = types(e, &parent);
    assert_eq!(&t[4..6], &[EventType::StartChildWorkflowExecutionInitiated, EventType::StartChildWorkflowExecutionInitiated]);
    assert_eq!(t.iter().filter(|t| **t == EventType::ChildWorkflowExecutionStarted).count(), 2);
    assert_eq!(t.iter().filter(|t| **t == EventType::WorkflowTaskScheduled).count(), 2, "one new task for both");

    // A child completes: the parent hears of it.
    let child_task = poll(e, "tq-child").await;
    let child_run = child_task.workflow_execution.clone().unwrap().run_id;
    let done = key(&child_task.workflow_execution.as_ref().unwrap().workflow_id, &child_run);
    complete(e, &child_task, vec![complete_command("out")]).await;
    history_until(e, &parent, "the parent records the child's result", |ev| has(ev, EventType::ChildWorkflowExecutionCompleted)).await;
    let ev = events(e, &parent);
    let completed = ev.iter().find(|x| x.event_type == EventType::ChildWorkflowExecutionCompleted as i32).unwrap();
    match &completed.attributes {
        Some(Attributes::ChildWorkflowExecutionCompletedEventAttributes(a)) => {
            assert_eq!(a.result, payloads("out"));
            assert_eq!(a.workflow_execution.as_ref().unwrap().run_id, done.run_id);
            let started_id = ev
                .iter()
                .find(|x| match &x.attributes {
                    Some(Attributes::ChildWorkflowExecutionStartedEventAttributes(s)) => s.initiated_event_id == a.initiated_event_id,
                    _ => false,
                })
                .unwrap()
                .event_id;
            assert_eq!(a.started_event_id, started_id);
        }
        other => panic!("{other:?}"),
    }
    // The parent is terminated: the other child is terminated by its close policy.
    let other = if done.workflow_id == "kid" { "kid2" } else { "kid" };
    external::terminate_workflow(e, NS, "parent", "", "", "bye".into(), None, "me".into()).await.unwrap();
    let (other_run, _) = e.current_run_now(NS, other).unwrap().unwrap();
    let other = key(other, &other_run);
    let close = close_event(e, &other, "the open child is terminated").await;
    assert_eq!(close.event_type, EventType::WorkflowExecutionTerminated as i32);
    assert_eq!(status(e, &other), WorkflowExecutionStatus::Terminated);
    let d = describe::describe(e, NS, "parent", "").await.unwrap();
    assert_eq!(d.workflow_execution_info.unwrap().status, WorkflowExecutionStatus::Terminated as i32);
}

#[tokio::test]
async fn a_child_id_already_running_fails_the_start() {
    let k = kit().await;
    let e = &k.engine;
    start::start_workflow(e, NS, "taken", spec("tq-other"), policies()).await.unwrap();
    let parent = start(e, "p2").await;
    let task = poll(e, TQ).await;
    complete(e, &task, vec![start_child_command("taken")]).await;
    history_until(e, &parent, "the start fails", |ev| has(ev, EventType::StartChildWorkflowExecutionFailed)).await;
    assert!(e.load_existing(&parent).unwrap().state.children.is_empty());
}
