//! The history API across leader changes, on a one-shard node: a call caught by a
//! step-down (waiting for its workflow's lock while the owner stops) is run again on
//! the next owner and applied once; a query withdrawn by a stopping owner is asked
//! again once; a long poll that outlived the router's window is routed again.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use temporalio_protos::protos::temporal::api::common::v1::{Payload, Payloads};
use temporalio_protos::protos::temporal::api::enums::v1::{EventType, QueryResultType, WorkflowIdConflictPolicy};
use temporalio_protos::protos::temporal::api::query::v1::WorkflowQuery;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{
    RespondQueryTaskCompletedRequest, RespondWorkflowTaskCompletedRequest,
};
use tokio::time::Instant;

use super::*;
use crate::core::run::Timeouts;
use crate::core::token::TaskToken;
use crate::engine::external;
use crate::engine::workflow_task::testkit::{history, kit, poller, queue, start_run, token_of, types, NS, TQ};
use crate::error::ServiceError;

/// Long enough for a spawned call to be waiting for the workflow's lock.
const SETTLE: Duration = Duration::from_millis(200);

fn start_request(workflow_id: &str) -> StartWorkflow {
    let spec = RunSpec {
        workflow_type: "Wf".into(),
        task_queue: TQ.into(),
        timeouts: Timeouts::normalize(0, 0, 0, &EngineConfig::default()),
        request_id: format!("start-{workflow_id}"),
        ..Default::default()
    };
    let policies = Policies::resolve(0, 0, WorkflowIdConflictPolicy::Fail).expect("policies");
    StartWorkflow { namespace: NS.into(), workflow_id: workflow_id.into(), spec, policies }
}

fn signal_request(workflow_id: &str, name: &str) -> SignalWorkflow {
    let signal = SignalSpec { signal_name: name.into(), ..Default::default() };
    SignalWorkflow { namespace: NS.into(), workflow_id: workflow_id.into(), run_id: String::new(), signal }
}

fn term(engine: &Engine) -> u64 {
    engine.router().owners().current(0).map_or(0, |o| o.term())
}

/// Runs `call` while `workflow_id`'s lock is held by the current owner, and steps
/// that owner down while the call waits for the lock.
async fn across_a_step_down<T, Fut>(engine: &Engine, workflow_id: &str, call: impl FnOnce(Engine) -> Fut) -> T
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let guard = engine.lock_workflow(NS, workflow_id).await.expect("the workflow locks");
    let before = guard.term();
    let call = tokio::spawn(call(engine.clone()));
    tokio::time::sleep(SETTLE).await;
    engine.node().step_down(0).await.expect("steps down");
    let out = call.await.expect("the call finishes");
    drop(guard);
    assert!(engine.wait_serving(Duration::from_secs(10)).await);
    assert!(term(engine) > before, "ownership moved to a new term");
    out
}

#[tokio::test]
async fn a_signal_caught_by_a_step_down_is_applied_once_on_the_new_owner() {
    let kit = kit().await;
    let e = &kit.engine;
    HistoryApi::new(e).start_workflow(start_request("wf-s")).await.expect("starts");

    // Without the seam, the call fails with NotLeader (the client would see Unavailable).
    let direct = across_a_step_down(e, "wf-s", |e| async move {
        let r = signal_request("wf-s", "direct");
        external::signal_workflow(&e, &r.namespace, &r.workflow_id, &r.run_id, r.signal).await
    })
    .await;
    assert!(matches!(direct, Err(ServiceError::NotLeader { .. })), "{direct:?}");

    let routed =
        across_a_step_down(e, "wf-s", |e| async move { HistoryApi::new(&e).signal_workflow(signal_request("wf-s", "routed")).await }).await;
    let run = routed.expect("the signal succeeds on the new owner");
    let events = history(e, &run);
    let signaled: Vec<_> = events.iter().filter(|ev| ev.event_type == EventType::WorkflowExecutionSignaled as i32).collect();
    assert_eq!(signaled.len(), 1, "applied exactly once");
}

#[tokio::test]
async fn a_start_caught_by_a_step_down_starts_one_run() {
    let kit = kit().await;
    let e = &kit.engine;
    let outcome = across_a_step_down(e, "wf-start", |e| async move { HistoryApi::new(&e).start_workflow(start_request("wf-start")).await })
        .await
        .expect("the start succeeds on the new owner");
    assert!(outcome.started);
    let again = HistoryApi::new(e).start_workflow(start_request("wf-start")).await.expect("a retried start is deduplicated");
    assert_eq!(again.run_id, outcome.run_id);
}

#[tokio::test]
async fn a_workflow_task_completion_caught_by_a_step_down_commits_once() {
    let kit = kit().await;
    let e = &kit.engine;
    let api = HistoryApi::new(e);
    let run = start_run(e, "wf-c").await;
    let task = api.matching().poll(&queue(), Duration::from_secs(2)).await.expect("a workflow task");
    let started = api.start_workflow_task(StartWorkflowTask { queue: &queue(), task, poller: &poller() }).await.expect("starts");
    let Started::Task(response) = started else { panic!("the task is current") };
    let token = token_of(&response);
    let request = RespondWorkflowTaskCompletedRequest { task_token: response.task_token.clone(), ..Default::default() };

    across_a_step_down(
        e,
        "wf-c",
        |e| async move { HistoryApi::new(&e).complete_workflow_task(CompleteWorkflowTask { token, request }).await },
    )
    .await
    .expect("the completion succeeds on the new owner");
    let completed = types(&history(e, &run)).into_iter().filter(|t| *t == EventType::WorkflowTaskCompleted).count();
    assert_eq!(completed, 1);
}

/// An idle run (its first workflow task completed): queries go to workers as
/// legacy query tasks.
async fn idle_run(e: &Engine, workflow_id: &str) {
    let api = HistoryApi::new(e);
    start_run(e, workflow_id).await;
    let task = api.matching().poll(&queue(), Duration::from_secs(2)).await.expect("a workflow task");
    let Started::Task(response) = api.start_workflow_task(StartWorkflowTask { queue: &queue(), task, poller: &poller() }).await.unwrap()
    else {
        panic!("the task is current")
    };
    let request = RespondWorkflowTaskCompletedRequest { task_token: response.task_token.clone(), ..Default::default() };
    api.complete_workflow_task(CompleteWorkflowTask { token: token_of(&response), request }).await.expect("completes");
}

fn query_request(workflow_id: &str) -> QueryWorkflow {
    QueryWorkflow {
        namespace: NS.into(),
        workflow_id: workflow_id.into(),
        run_id: String::new(),
        query: WorkflowQuery { query_type: "count".into(), ..Default::default() },
        reject_condition: 0,
        deadline: Instant::now() + Duration::from_secs(20),
    }
}

/// Waits until the current owner (of a term after `after`) holds a pending query;
/// returns its term.
async fn query_pending(e: &Engine, after: u64) -> u64 {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let (Some(owner), Ok(run)) = (e.router().owners().current(0), e.resolve_run(NS, "wf-q", "").await) {
            if owner.term() > after && owner.queries().pending_count(&run) == 1 {
                return owner.term();
            }
        }
        assert!(Instant::now() < until, "the query is pending on an owner of a term after {after}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_query_withdrawn_by_a_stopping_owner_is_asked_again() {
    let kit = kit().await;
    let e = &kit.engine;
    idle_run(e, "wf-q").await;
    let asker = e.clone();
    let query = tokio::spawn(async move { HistoryApi::new(&asker).query_workflow(query_request("wf-q")).await });
    let first = query_pending(e, 0).await;
    e.node().step_down(0).await.expect("steps down");
    query_pending(e, first).await;

    let api = HistoryApi::new(e);
    let task = api.poll_query_task(PollQueryTask { queue: &queue(), wait: Duration::from_secs(5) }).await.expect("a query task");
    let response = api.start_query_task(StartQueryTask { task }).expect("builds").expect("the query is live");
    let token = TaskToken::decode_token(&response.task_token).expect("token decodes");
    let answer = Payloads { payloads: vec![Payload { data: b"42".to_vec(), ..Default::default() }] };
    let request = RespondQueryTaskCompletedRequest {
        task_token: response.task_token.clone(),
        completed_type: QueryResultType::Answered as i32,
        query_result: Some(answer.clone()),
        ..Default::default()
    };
    api.respond_query(RespondQuery { token, request }).await.expect("the answer is delivered");
    assert_eq!(query.await.expect("joins").expect("answered"), QueryAnswer::Answered(Some(answer)));
}

#[tokio::test]
async fn a_query_withdrawn_twice_is_unavailable() {
    let kit = kit().await;
    let e = &kit.engine;
    idle_run(e, "wf-q").await;
    let asker = e.clone();
    let query = tokio::spawn(async move { HistoryApi::new(&asker).query_workflow(query_request("wf-q")).await });
    let first = query_pending(e, 0).await;
    e.node().step_down(0).await.expect("steps down");
    query_pending(e, first).await;
    e.node().step_down(0).await.expect("steps down again");
    let outcome = query.await.expect("joins");
    assert!(matches!(outcome, Err(ServiceError::Unavailable(_))), "{outcome:?}");
}

/// A stand-in for a long poll of `shard`: the first attempt waits past the router's
/// window, then fails with `NotLeader` naming `hint`; later attempts answer 7.
#[allow(clippy::needless_lifetimes)] // `'_` cannot name it inside `FnMut() -> …`
fn long_poll<'a>(
    calls: &'a AtomicU32,
    shard: u32,
    hint: Option<u64>,
) -> impl FnMut() -> std::pin::Pin<Box<dyn Future<Output = Result<u32>> + Send + 'a>> {
    move || {
        Box::pin(async move {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::time::sleep(ROUTE_WAIT + Duration::from_millis(100)).await;
                return Err(ServiceError::NotLeader { shard, leader_hint: hint });
            }
            Ok(7)
        })
    }
}

#[tokio::test]
async fn a_long_poll_that_outlived_the_router_window_is_routed_again() {
    let kit = kit().await;
    let api = HistoryApi::new(&kit.engine);
    let later = Instant::now() + Duration::from_secs(20);
    let counters: Vec<AtomicU32> = (0..4).map(|_| AtomicU32::new(0)).collect();
    let (routed, elsewhere, too_late, no_owner) = tokio::join!(
        api.retry_until(later, long_poll(&counters[0], 0, None)),
        // Another node leads: the client is sent there.
        api.retry_until(later, long_poll(&counters[1], 0, Some(99))),
        // The caller's deadline has passed.
        api.retry_until(Instant::now() + ROUTE_WAIT, long_poll(&counters[2], 0, None)),
        // No owner turns up (this node has no shard 7).
        api.retry_until(later, long_poll(&counters[3], 7, None)),
    );
    assert_eq!(routed.expect("routed again"), 7);
    assert!(matches!(elsewhere, Err(ServiceError::NotLeader { leader_hint: Some(99), .. })), "{elsewhere:?}");
    assert!(matches!(too_late, Err(ServiceError::NotLeader { leader_hint: None, .. })), "{too_late:?}");
    assert!(matches!(no_owner, Err(ServiceError::NotLeader { shard: 7, .. })), "{no_owner:?}");
    let calls: Vec<u32> = counters.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(calls, [2, 1, 1, 1]);
}
