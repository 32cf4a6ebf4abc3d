//! Workflow task start / fail / timeout against a real one-shard node; shapes as in
//! the reference histories (`hist-wf-noact.json`, `hist-ex-wftfail.json`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use temporalio_protos::protos::temporal::api::enums::v1::{EventType, TaskQueueKind, TimeoutType, WorkflowTaskFailedCause};
use temporalio_protos::protos::temporal::api::failure::v1::Failure;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::workflowservice::v1::RespondWorkflowTaskFailedRequest;

use super::testkit::*;
use super::*;
use crate::core::error::WorkflowTaskError;
use crate::core::state::{ExecutionState, WorkflowTaskInfo};
use crate::core::tasks::TaskKind;
use crate::core::workflow_task::start_to_close_ms;
use crate::error::code_of;
use tonic::Code;

fn fail_request(message: &str) -> RespondWorkflowTaskFailedRequest {
    RespondWorkflowTaskFailedRequest {
        cause: WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure as i32,
        failure: Some(Failure { message: message.into(), ..Default::default() }),
        identity: IDENTITY.into(),
        namespace: NS.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn first_task_carries_what_core_requires() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-first").await;
    assert_eq!(backlog_len(e), 1);
    let resp = poll(e).await;

    let token = token_of(&resp);
    assert_eq!((token.kind, token.scheduled_event_id, token.started_event_id, token.attempt), (TaskKind::WorkflowTask as i32, 2, 3, 1));
    assert_eq!((token.namespace.as_str(), token.workflow_id.as_str(), token.run_id.as_str()), (NS, "wf-first", run.run_id.as_str()));
    let execution = resp.workflow_execution.as_ref().unwrap();
    assert_eq!((execution.workflow_id.as_str(), execution.run_id.as_str()), ("wf-first", run.run_id.as_str()));
    assert_eq!(resp.workflow_type.as_ref().unwrap().name, "Wf");
    let tq = resp.workflow_execution_task_queue.as_ref().unwrap();
    assert_eq!((tq.name.as_str(), tq.kind), (TQ, TaskQueueKind::Normal as i32));
    assert_eq!((resp.previous_started_event_id, resp.started_event_id, resp.attempt), (0, 3, 1));
    assert!(resp.scheduled_time.is_some() && resp.started_time.is_some());
    assert!(resp.next_page_token.is_empty() && resp.queries.is_empty() && resp.query.is_none());

    let events = &resp.history.as_ref().unwrap().events;
    assert_eq!(events.iter().map(|e| e.event_id).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(types(events), [EventType::WorkflowExecutionStarted, EventType::WorkflowTaskScheduled, EventType::WorkflowTaskStarted]);
    assert!(events.iter().all(|e| e.event_time.is_some() && e.attributes.is_some()));
    let Some(Attributes::WorkflowTaskStartedEventAttributes(started)) = &events[2].attributes else { panic!("WFT started attributes") };
    assert_eq!((started.scheduled_event_id, started.identity.as_str()), (2, IDENTITY));
    assert!(!started.request_id.is_empty() && started.history_size_bytes > 0 && !started.suggest_continue_as_new);
    #[allow(deprecated)]
    let build_id = started.worker_version.as_ref().map(|v| v.build_id.as_str());
    assert_eq!(build_id, Some(BUILD_ID));
    assert_eq!(events[2].event_time, resp.started_time);

    let st = state(e, &run);
    let wt = st.workflow_task.unwrap();
    assert_eq!((wt.started_event_id, wt.identity.as_str()), (3, IDENTITY));
    assert_eq!(backlog_len(e), 0, "the backlog task is acknowledged when it starts");
    assert_eq!(e.node().read(0, |s| s.timer_count()).unwrap(), 1, "start-to-close timer armed");
}

#[tokio::test]
async fn a_requeued_task_that_already_started_is_skipped() {
    let kit = kit().await;
    let e = &kit.engine;
    start_run(e, "wf-stale").await;
    let task = next_task(e).await;
    let again = task.clone();
    assert!(matches!(start(e, &queue(), task, &poller()).await.unwrap(), Started::Task(_)));
    assert!(matches!(start(e, &queue(), again, &poller()).await.unwrap(), Started::Stale));
    assert_eq!(e.matching().ready_len(&queue()), 0, "a stale task is not put back");
}

#[tokio::test]
async fn a_task_of_a_closed_run_is_acknowledged_and_skipped() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-closed").await;
    {
        let mut txn = e.txn(e.load_existing(&run).unwrap());
        crate::core::lifecycle::terminate(&mut txn, "closed".into(), None, IDENTITY.into());
        e.commit(txn).await.unwrap();
    }
    let task = next_task(e).await;
    assert!(matches!(start(e, &queue(), task, &poller()).await.unwrap(), Started::Stale));
    assert_eq!(backlog_len(e), 0);
}

/// A waker that records that it was woken.
#[derive(Default)]
struct WokenFlag(AtomicBool);

impl Wake for WokenFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_poll_dropped_while_starting_loses_no_task() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-drop").await;
    let task = next_task(e).await;
    let lock = e.lock_workflow(&run.namespace, &run.workflow_id).await.unwrap();
    // The poll's start, polled once by hand: it holds the task and waits for the
    // workflow lock the test holds.
    let (queue, poller) = (queue(), poller());
    let mut starting = Box::pin(start(e, &queue, task, &poller));
    let woken = Arc::new(WokenFlag::default());
    let waker = Waker::from(woken.clone());
    assert!(starting.as_mut().poll(&mut Context::from_waker(&waker)).is_pending(), "the start waits for the lock");
    // Releasing the lock wakes it: what it waits for is the lock, past the point
    // where it took charge of the task.
    drop(lock);
    assert!(woken.0.load(Ordering::SeqCst), "the start was waiting for the workflow lock");
    // The poll goes away (its client left) before the start runs again.
    drop(starting);
    assert_eq!(e.matching().ready_len(&queue), 1, "the task is back in matching");
    assert_eq!(poll(e).await.started_event_id, 3);
}

#[tokio::test]
async fn a_failed_task_is_retried_with_the_next_attempt() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-fail").await;
    let first = poll(e).await;
    fail(e, &token_of(&first), fail_request("task failure once")).await.unwrap();

    let events = history(e, &run);
    assert_eq!(types(&events[3..]), [EventType::WorkflowTaskFailed, EventType::WorkflowTaskScheduled]);
    let Some(Attributes::WorkflowTaskFailedEventAttributes(failed)) = &events[3].attributes else { panic!() };
    assert_eq!((failed.scheduled_event_id, failed.started_event_id), (2, 3));
    assert_eq!(failed.cause, WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure as i32);
    assert_eq!((failed.failure.as_ref().unwrap().message.as_str(), failed.identity.as_str()), ("task failure once", IDENTITY));
    let Some(Attributes::WorkflowTaskScheduledEventAttributes(scheduled)) = &events[4].attributes else { panic!() };
    assert_eq!(scheduled.attempt, 2);
    assert_eq!(e.node().read(0, |s| s.timer_count()).unwrap(), 0, "the failed task's timer is removed with it");

    let second = poll(e).await;
    assert_eq!((second.attempt, second.started_event_id, second.previous_started_event_id), (2, 6, 0));
    assert!(code_of(&fail(e, &token_of(&first), fail_request("again")).await) == Some(Code::NotFound), "stale token");
}

#[tokio::test]
async fn events_buffered_during_a_task_follow_its_failure() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-buffer").await;
    let resp = poll(e).await;
    signal(e, &run, "s").await;
    assert_eq!(history(e, &run).len(), 3, "buffered while the task is started");
    fail(e, &token_of(&resp), fail_request("boom")).await.unwrap();
    let events = history(e, &run);
    assert_eq!(
        types(&events[3..]),
        [EventType::WorkflowTaskFailed, EventType::WorkflowExecutionSignaled, EventType::WorkflowTaskScheduled]
    );
    assert!(state(e, &run).buffered_events.is_empty());
}

#[tokio::test]
async fn a_timed_out_task_is_retried_and_stale_timeouts_change_nothing() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-timeout").await;
    let resp = poll(e).await;
    on_workflow_task_timeout(e, &run, 2, 1).await.unwrap();
    let events = history(e, &run);
    assert_eq!(types(&events[3..]), [EventType::WorkflowTaskTimedOut, EventType::WorkflowTaskScheduled]);
    let Some(Attributes::WorkflowTaskTimedOutEventAttributes(timed_out)) = &events[3].attributes else { panic!() };
    assert_eq!(
        (timed_out.scheduled_event_id, timed_out.started_event_id, timed_out.timeout_type),
        (2, 3, TimeoutType::StartToClose as i32)
    );
    assert_eq!(state(e, &run).workflow_task_attempt, 2);
    assert_eq!(e.node().read(0, |s| s.timer_count()).unwrap(), 0);

    on_workflow_task_timeout(e, &run, 2, 1).await.unwrap();
    on_workflow_task_timeout(e, &run, 5, 2).await.unwrap();
    assert_eq!(history(e, &run).len(), 5, "the old timer and the unstarted task's timer are stale");
    assert!(code_of(&fail(e, &token_of(&resp), fail_request("late")).await) == Some(Code::NotFound));
    on_workflow_task_timeout(e, &RunKey { run_id: "nope".into(), ..run }, 2, 1).await.unwrap();
}

#[test]
fn start_to_close_grows_once_a_task_keeps_failing() {
    let grown: Vec<i64> = (1..=7).map(|a| start_to_close_ms(10_000, a)).collect();
    assert_eq!(grown, [10_000, 10_000, 10_000, 15_000, 20_000, 30_000, 50_000]);
    assert_eq!(start_to_close_ms(10_000, i32::MAX), 610_000);
}

#[test]
fn tokens_must_name_the_started_task() {
    let st = ExecutionState {
        workflow_task: Some(WorkflowTaskInfo {
            scheduled_event_id: 2,
            started_event_id: 3,
            attempt: 1,
            started_time_ms: 99,
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = TaskToken {
        kind: TaskKind::WorkflowTask as i32,
        scheduled_event_id: 2,
        started_event_id: 3,
        attempt: 1,
        started_time_ms: 99,
        ..Default::default()
    };
    assert!(current_task(&st, &token).is_ok());
    for stale in [
        TaskToken { attempt: 2, ..token.clone() },
        TaskToken { started_event_id: 4, ..token.clone() },
        TaskToken { scheduled_event_id: 5, ..token.clone() },
        // A discarded speculative task's token: same ids, an earlier start.
        TaskToken { started_time_ms: 7, ..token.clone() },
    ] {
        assert_eq!(current_task(&st, &stale), Err(WorkflowTaskError::NotFound));
    }
    let closed = ExecutionState { close_time_ms: 1, ..st.clone() };
    assert_eq!(current_task(&closed, &token), Err(WorkflowTaskError::RunCompleted));
    // Tokens of another kind name no workflow task (Temporal: NotFound).
    let activity = TaskToken { kind: TaskKind::ActivityTask as i32, ..token.clone() };
    assert_eq!(current_task(&st, &activity), Err(WorkflowTaskError::NotFound));
    let query = TaskToken { query_id: "q".into(), ..token };
    assert_eq!(current_task(&st, &query), Err(WorkflowTaskError::NotFound));
}

#[tokio::test]
async fn a_long_history_is_paged_up_to_the_started_event() {
    use crate::engine::history::{get_history, HistoryRequest, PageToken};
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-paged").await;
    for i in 0..5 {
        signal(e, &run, &format!("s{i}")).await;
    }
    let resp = poll(e).await;
    assert_eq!(resp.started_event_id, 8);
    assert!(resp.next_page_token.is_empty(), "small histories come whole");

    let (first, token) = first_page(&e.owner_now(&run), &run, 8, 3, FIRST_PAGE_BYTES_MAX).unwrap();
    assert_eq!(first.events.iter().map(|e| e.event_id).collect::<Vec<_>>(), [1, 2, 3]);
    let decoded = PageToken::decode_token(&token).unwrap();
    assert_eq!((decoded.next_event_id, decoded.end_event_id), (4, 9));
    let (by_bytes, _) = first_page(&e.owner_now(&run), &run, 8, 100, 1).unwrap();
    assert_eq!(by_bytes.events.len(), 1, "at least one event per page");

    signal(e, &run, "buffered").await;
    let request = HistoryRequest {
        workflow_id: run.workflow_id.clone(),
        run_id: run.run_id.clone(),
        page_size: 0,
        next_page_token: token.clone(),
        wait_new_event: false,
        close_event_only: false,
        wait_budget: NEVER,
    };
    let rest = guarded("a bounded page answers without waiting", get_history(e, NS, request)).await.unwrap();
    assert_eq!(rest.events.iter().map(|e| e.event_id).collect::<Vec<_>>(), [4, 5, 6, 7, 8]);
    assert!(rest.next_page_token.is_empty());
}
