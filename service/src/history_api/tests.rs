//! The history API across leader changes, on a one-shard node: a call caught by a
//! step-down (waiting for its workflow's lock while the owner stops) is run again on
//! the next owner and applied once; a query withdrawn by a stopping owner is asked
//! again once; a long poll that outlived the router's window is routed again.
//!
//! No test waits on a sleep for something to happen. A call the test wants caught
//! waiting for its workflow's lock is polled once by hand (not spawned), and the
//! owner's stop is seen to wake it ([`across_a_step_down`]); a query the test wants
//! pending is waited for through the legacy query task its ask dispatches
//! ([`query_pending`]), under the hang guard. The one stretch of real time is the
//! router's window ([`ROUTE_WAIT`]) a stand-in long poll must outlive ([`long_poll`]).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

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
use crate::engine::workflow_task::testkit::{
    guarded, history, kit, next_task, poller, queue, start_run, token_of, types, GUARD, NEVER, NS, TQ,
};
use crate::engine::{external, query};
use crate::error::ServiceError;
use crate::shard::{ShardOwner, ROUTE_WAIT};

fn start_request(workflow_id: &str) -> StartWorkflow {
    let spec = RunSpec {
        workflow_type: "Wf".into(),
        task_queue: TQ.into(),
        timeouts: Timeouts::normalize(0, 0, 0, &EngineConfig::default()),
        request_id: format!("start-{workflow_id}"),
        ..Default::default()
    };
    let policies = Policies::resolve(0, 0, WorkflowIdConflictPolicy::Fail).expect("policies");
    StartWorkflow { namespace: NS.into(), workflow_id: workflow_id.into(), spec, policies, eager: false }
}

fn signal_request(workflow_id: &str, name: &str) -> SignalWorkflow {
    let signal = SignalSpec { signal_name: name.into(), ..Default::default() };
    SignalWorkflow { namespace: NS.into(), workflow_id: workflow_id.into(), run_id: String::new(), signal }
}

fn term(engine: &Engine) -> u64 {
    engine.router().owners().current(0).map_or(0, |o| o.term())
}

/// The waker of a call waiting on `owner`: records whether it was woken, and
/// whether it was woken while the owner was still live.
struct StopWitness {
    owner: Arc<ShardOwner>,
    woken: AtomicBool,
    woken_live: AtomicBool,
}

impl StopWitness {
    fn new(owner: Arc<ShardOwner>) -> Arc<Self> {
        Arc::new(Self { owner, woken: AtomicBool::new(false), woken_live: AtomicBool::new(false) })
    }
    fn woken(&self) -> bool {
        self.woken.load(Ordering::SeqCst)
    }
    fn woken_live(&self) -> bool {
        self.woken_live.load(Ordering::SeqCst)
    }
}

impl Wake for StopWitness {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.owner.is_stopped() {
            self.woken_live.store(true, Ordering::SeqCst);
        }
        self.woken.store(true, Ordering::SeqCst);
    }
}

/// Runs `call` while `workflow_id`'s lock is held by the current owner, and steps
/// that owner down while the call waits for the lock.
///
/// The call is polled once by hand first: on a live owner nothing before the lock
/// waits, so it runs up to the lock and parks there. That it waits for the lock (and
/// not for anything else) shows twice: nothing wakes it while the owner is live,
/// even with the runtime running what is ready, and the owner's stop does (the
/// lock's wait gives up when its owner stops; nothing else this call could wait on
/// is woken by it).
async fn across_a_step_down<T, Fut>(engine: &Engine, workflow_id: &str, call: impl FnOnce(Engine) -> Fut) -> T
where
    Fut: Future<Output = T>,
{
    let guard = engine.lock_workflow(NS, workflow_id).await.expect("the workflow locks");
    let before = guard.term();
    let owner = guard.owner().clone();
    // Unconstrained: the hand poll must not be cut short by the task's coop budget.
    let mut call = std::pin::pin!(tokio::task::unconstrained(call(engine.clone())));
    let witness = StopWitness::new(owner.clone());
    assert!(call.as_mut().poll(&mut Context::from_waker(&Waker::from(witness.clone()))).is_pending(), "the call waits for the lock");
    // Let the runtime run what is ready (no time passes): a wake-up the call asked
    // for itself (a yield, anything ready at once) would show now.
    tokio::task::yield_now().await;
    assert!(!witness.woken(), "nothing but the lock holds the call");
    engine.node().step_down(0).await.expect("steps down");
    guarded("the stepped-down owner stops", owner.stopped()).await;
    assert!(witness.woken(), "the owner's stop woke the call waiting for its workflow lock");
    assert!(!witness.woken_live(), "nothing woke the call while its owner was live");
    let out = guarded("the call finishes", call).await;
    drop(guard);
    assert!(engine.wait_serving(GUARD).await, "the shard has a live owner");
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
        .expect("the start succeeds on the new owner")
        .outcome;
    assert!(outcome.started);
    let again = HistoryApi::new(e).start_workflow(start_request("wf-start")).await.expect("a retried start is deduplicated").outcome;
    assert_eq!(again.run_id, outcome.run_id);
}

#[tokio::test]
async fn a_workflow_task_completion_caught_by_a_step_down_commits_once() {
    let kit = kit().await;
    let e = &kit.engine;
    let api = HistoryApi::new(e);
    let run = start_run(e, "wf-c").await;
    let task = next_task(e).await;
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
    let task = next_task(e).await;
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
        // Never reached: the hang guard fails a test first.
        deadline: Instant::now() + NEVER,
    }
}

/// Waits until an owner of a term after `after` holds the spawned query pending;
/// returns that owner's term. On an idle run the ask dispatches a legacy query task
/// as it registers the query, so the wait is a long poll of the query dispatcher
/// (budget [`NEVER`], under the hang guard) that this dispatch answers. The task is
/// put back untouched: the query stays as the ask left it.
async fn query_pending(e: &Engine, after: u64) -> u64 {
    let what = format!("the query is asked on an owner of a term after {after}");
    let polled = guarded(&what, query::poll_task(e, &queue(), NEVER)).await.expect("a query task");
    let query::PolledQuery::Here(owner, task) = polled else { panic!("{what}: a one-node engine's query task is its own") };
    assert!(owner.term() > after, "{what}: asked in term {}", owner.term());
    assert_eq!(owner.queries().pending_count(&task.run), 1, "{what}: pending there");
    let term = owner.term();
    owner.queries().requeue(task);
    term
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
    let queue = queue();
    let polled = api.poll_query_task(PollQueryTask { queue: &queue, wait: NEVER });
    let task = guarded("the query task of the second ask", polled).await.expect("a query task");
    let response = api.start_query_task(StartQueryTask { queue: &queue, task }).await.expect("builds").expect("the query is live");
    let token = TaskToken::decode_token(&response.task_token).expect("token decodes");
    let answer = Payloads { payloads: vec![Payload { data: b"42".to_vec(), ..Default::default() }] };
    let request = RespondQueryTaskCompletedRequest {
        task_token: response.task_token.clone(),
        completed_type: QueryResultType::Answered as i32,
        query_result: Some(answer.clone()),
        ..Default::default()
    };
    api.respond_query(RespondQuery { token, request }).await.expect("the answer is delivered");
    assert_eq!(guarded("the query is answered", query).await.expect("joins").expect("answered"), QueryAnswer::Answered(Some(answer)));
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
    let outcome = guarded("the query gives up", query).await.expect("joins");
    assert!(matches!(outcome, Err(ServiceError::Unavailable(_))), "{outcome:?}");
}

/// A stand-in for a long poll of `shard`: the first attempt waits out the router's
/// window, then fails with `NotLeader` naming `hint`; later attempts answer 7.
///
/// The wait is real time (the runtime's clock cannot be paused here: tokio's
/// `test-util` is not enabled), and it is a bound, not an expectation: nothing is
/// expected to happen during it. A tokio sleep never ends early, and the attempt
/// begins after the router's window does, so when it fails the window is over,
/// however slow the machine; that the attempt used the window up is the input
/// the router must not hold against it. No margin is added, and no outcome depends on how much
/// longer the sleep takes.
#[allow(clippy::needless_lifetimes)] // `'_` cannot name it inside `FnMut() -> …`
fn long_poll<'a>(
    calls: &'a AtomicU32,
    shard: u32,
    hint: Option<u64>,
) -> impl FnMut() -> std::pin::Pin<Box<dyn Future<Output = Result<u32>> + Send + 'a>> {
    move || {
        Box::pin(async move {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::time::sleep(ROUTE_WAIT).await;
                return Err(ServiceError::NotLeader { shard, leader_hint: hint });
            }
            Ok(7)
        })
    }
}

/// A stand-in for a call of `shard` that always fails with `NotLeader` at once.
#[allow(clippy::needless_lifetimes)] // `'_` cannot name it inside `FnMut() -> …`
fn always_moving<'a>(calls: &'a AtomicU32, shard: u32) -> impl FnMut() -> std::pin::Pin<Box<dyn Future<Output = Result<u32>> + Send + 'a>> {
    move || {
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ServiceError::NotLeader { shard, leader_hint: None })
        })
    }
}

#[tokio::test]
async fn a_long_poll_that_outlived_the_router_window_is_routed_again() {
    let kit = kit().await;
    let api = HistoryApi::new(&kit.engine);
    let counters: Vec<AtomicU32> = (0..4).map(|_| AtomicU32::new(0)).collect();
    let rounds = async {
        tokio::join!(
            // The router's wait for a new owner counts from the failure, not from the
            // first attempt: a call that ran longer than ROUTE_WAIT is routed again.
            api.retry(long_poll(&counters[0], 0, None)),
            // Another node leads: the client is sent there.
            api.retry(long_poll(&counters[1], 0, Some(99))),
            // A shard whose owner keeps moving: at most RETRIES_MAX repeats.
            api.retry(always_moving(&counters[2], 0)),
            // No owner turns up (this node has no shard 7).
            api.retry(long_poll(&counters[3], 7, None)),
        )
    };
    let (routed, elsewhere, moving, no_owner) = guarded("the long polls end", rounds).await;
    assert_eq!(routed.expect("routed again"), 7);
    assert!(matches!(elsewhere, Err(ServiceError::NotLeader { leader_hint: Some(99), .. })), "{elsewhere:?}");
    assert!(matches!(moving, Err(ServiceError::NotLeader { leader_hint: None, .. })), "{moving:?}");
    assert!(matches!(no_owner, Err(ServiceError::NotLeader { shard: 7, .. })), "{no_owner:?}");
    let calls: Vec<u32> = counters.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(calls, [2, 1, crate::shard::RETRIES_MAX + 1, 1]);
}
