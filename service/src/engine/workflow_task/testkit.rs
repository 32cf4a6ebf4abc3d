//! Test scaffolding shared by the engine's flow tests: a node in a temp dir on
//! simulated engine time ([`TestClock`], moved by [`Kit::advance`]), runs created
//! directly (Started + WorkflowTaskScheduled), polls through matching, and the ways a
//! test waits: on the event itself, under a hang guard ([`guarded`]) that fails the
//! test; never on a sleep.
//!
//! Whatever a test expects to happen, it waits for through a long poll whose budget
//! ([`NEVER`]) is far past [`GUARD`], so only the event's own wake-up answers it in
//! time. Timers come due when the test moves simulated time past them
//! ([`HOUR_MS`] and more), never by the machine's clock getting there mid-test.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hourglass_raft::{Node, NodeConfig};
use hourglass_storage::state::{QueueKey, QueueKind, RunKey};
use temporalio_protos::protos::temporal::api::common::v1::WorkflowType;
use temporalio_protos::protos::temporal::api::enums::v1::{EventType, TaskQueueKind, WorkflowExecutionStatus, WorkflowIdConflictPolicy};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    HistoryEvent, WorkflowExecutionSignaledEventAttributes, WorkflowExecutionStartedEventAttributes,
};
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflowservice::v1::PollWorkflowTaskQueueResponse;
use tokio::task::JoinHandle;

use super::{read_history, start, Poller, Started};
use crate::core::run::{Policies, RunSpec, Timeouts};
use crate::core::state::ExecutionState;
use crate::core::token::TaskToken;
use crate::core::txn::{duration, RunTxn};
use crate::core::wft;
use crate::engine::history::{self as engine_history, HistoryRequest};
use crate::engine::start as engine_start;
use crate::engine::{Clock, Engine, EngineConfig, SystemClock};
use crate::matching::TaskRef;

pub const NS: &str = "default";
pub const TQ: &str = "tq";
pub const IDENTITY: &str = "1234@test";
pub const BUILD_ID: &str = "build-1";

/// How long a test waits for what it expects before it fails. A hang guard only:
/// no test passes by running into it.
pub const GUARD: Duration = Duration::from_secs(30);
/// The budget of a long poll the test expects an event to answer: far past [`GUARD`],
/// so the budget running out can never stand in for the event.
pub const NEVER: Duration = Duration::from_secs(3_600);
/// Timeouts and delays in simulated time: the machine's clock never gets there
/// during a test, only [`Kit::advance`] does.
pub const HOUR_MS: i64 = 3_600_000;

/// The engine's clock in tests: the system clock plus a lead the test adds to, so a
/// timer comes due when the test moves time past it and not before, however slow the
/// machine.
#[derive(Default)]
pub struct TestClock {
    lead_ms: AtomicI64,
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.lead_ms.load(Ordering::SeqCst)
    }
}

pub struct Kit {
    pub engine: Engine,
    pub clock: Arc<TestClock>,
    _dir: tempfile::TempDir,
}

impl Kit {
    /// Moves the engine's clock `by_ms` forward and has every shard's timer service look
    /// at the new time (it sleeps until its next timer by its own reckoning, as it
    /// would until a real clock got there).
    pub fn advance(&self, by_ms: i64) {
        self.clock.lead_ms.fetch_add(by_ms, Ordering::SeqCst);
        for owner in self.engine.router().owners().all() {
            owner.timer_wakeup().notify_one();
        }
    }
}

/// A one-shard node on [`TestClock`].
pub async fn kit() -> Kit {
    kit_with_shards(1).await
}

/// A node of `shards` shards on [`TestClock`], every shard served.
pub async fn kit_with_shards(shards: u32) -> Kit {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = NodeConfig::new(dir.path(), shards);
    config.tick_ms = 5;
    let node = Node::open(config).await.expect("node opens");
    let clock = Arc::new(TestClock::default());
    let engine = Engine::new(node, EngineConfig::default(), clock.clone());
    assert!(engine.wait_serving(GUARD).await, "every shard gets an owner");
    Kit { engine, clock, _dir: dir }
}

pub fn queue() -> QueueKey {
    QueueKey { namespace: NS.into(), name: TQ.into(), kind: QueueKind::Workflow }
}

pub fn poller() -> Poller {
    Poller { identity: IDENTITY.into(), build_id: BUILD_ID.into() }
}

/// A new open run with events 1 WorkflowExecutionStarted, 2 WorkflowTaskScheduled.
pub async fn start_run(engine: &Engine, workflow_id: &str) -> RunKey {
    let run = RunKey { namespace: NS.into(), workflow_id: workflow_id.into(), run_id: uuid::Uuid::new_v4().to_string() };
    let now = engine.now_ms();
    let state = ExecutionState {
        workflow_type: "Wf".into(),
        task_queue: TQ.into(),
        status: WorkflowExecutionStatus::Running as i32,
        start_time_ms: now,
        execution_time_ms: now,
        workflow_task_timeout_ms: 10_000,
        first_execution_run_id: run.run_id.clone(),
        original_execution_run_id: run.run_id.clone(),
        attempt: 1,
        workflow_task_attempt: 1,
        ..Default::default()
    };
    let mut txn = RunTxn::create(run.clone(), now, state);
    txn.add_event(Attributes::WorkflowExecutionStartedEventAttributes(WorkflowExecutionStartedEventAttributes {
        workflow_type: Some(WorkflowType { name: "Wf".into() }),
        task_queue: Some(TaskQueue { name: TQ.into(), kind: TaskQueueKind::Normal as i32, normal_name: String::new() }),
        workflow_task_timeout: Some(duration(10_000)),
        original_execution_run_id: run.run_id.clone(),
        first_execution_run_id: run.run_id.clone(),
        attempt: 1,
        workflow_id: workflow_id.into(),
        ..Default::default()
    }));
    wft::schedule_workflow_task(&mut txn, 1);
    engine.commit(txn).await.expect("run created");
    run
}

/// Takes the next workflow task from matching (not started); fails the test if none
/// comes within the hang guard.
pub async fn next_task(engine: &Engine) -> TaskRef {
    guarded("a workflow task is ready", engine.matching().poll(&queue(), NEVER)).await.expect("a workflow task")
}

/// Takes the next workflow task from matching and starts it.
pub async fn poll(engine: &Engine) -> PollWorkflowTaskQueueResponse {
    loop {
        let task = next_task(engine).await;
        match start(engine, &queue(), task, &poller()).await.expect("task starts") {
            Started::Task(response) => return *response,
            Started::Stale => continue,
        }
    }
}

pub fn token_of(response: &PollWorkflowTaskQueueResponse) -> TaskToken {
    TaskToken::decode_token(&response.task_token).expect("token decodes")
}

pub fn state(engine: &Engine, run: &RunKey) -> ExecutionState {
    engine.load_existing(run).expect("run exists").state
}

pub fn history(engine: &Engine, run: &RunKey) -> Vec<HistoryEvent> {
    let last = engine.load_existing(run).expect("run exists").next_event_id - 1;
    read_history(&engine.owner_now(run), run, last).expect("history reads").events
}

pub fn types(events: &[HistoryEvent]) -> Vec<EventType> {
    events.iter().map(|e| EventType::try_from(e.event_type).expect("known event type")).collect()
}

/// A signal, through the buffering rule (as the signal RPC adds it).
pub async fn signal(engine: &Engine, run: &RunKey, name: &str) {
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await.expect("the shard has an owner");
    let mut txn = engine.txn(lock.load_existing(run).expect("run exists"));
    wft::add_external_event(
        &mut txn,
        Attributes::WorkflowExecutionSignaledEventAttributes(WorkflowExecutionSignaledEventAttributes {
            signal_name: name.into(),
            identity: IDENTITY.into(),
            ..Default::default()
        }),
    );
    lock.commit(txn).await.expect("signal commits");
}

pub fn backlog_len(engine: &Engine) -> usize {
    engine.node().read(0, |s| s.backlog_len(&queue())).expect("shard 0")
}

/// `fut`, or a failure naming `what` once [`GUARD`] passes.
pub async fn guarded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(GUARD, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: not within {GUARD:?}"),
    }
}

/// A run spec on `task_queue`, as a client's start sends it.
pub fn spec(task_queue: &str) -> RunSpec {
    RunSpec {
        workflow_type: "Wf".into(),
        task_queue: task_queue.into(),
        timeouts: Timeouts::normalize(0, 0, 0, &EngineConfig::default()),
        identity: "client".into(),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

pub fn policies() -> Policies {
    Policies::resolve(0, 0, WorkflowIdConflictPolicy::Fail).unwrap()
}

/// A history request for all of `run`, not waiting, with a [`NEVER`] budget.
pub fn history_req(run: &RunKey) -> HistoryRequest {
    HistoryRequest {
        workflow_id: run.workflow_id.clone(),
        run_id: run.run_id.clone(),
        page_size: 0,
        next_page_token: Vec::new(),
        wait_new_event: false,
        close_event_only: false,
        wait_budget: NEVER,
    }
}

/// Long-polls `run`'s history for new events until `done` holds for the events so
/// far, and returns them. Each poll is answered by the commit that appends an event
/// (its budget is [`NEVER`]).
pub async fn history_until(e: &Engine, run: &RunKey, what: &str, done: impl Fn(&[HistoryEvent]) -> bool) -> Vec<HistoryEvent> {
    let mut req = history_req(run);
    req.wait_new_event = true;
    guarded(what, async {
        let mut seen = Vec::new();
        loop {
            let page = engine_history::get_history(e, &run.namespace, req.clone()).await.expect("history reads");
            assert!(!page.events.is_empty() || req.next_page_token.is_empty(), "{what}: a long poll answered with nothing, not waiting");
            seen.extend(page.events);
            if done(&seen) {
                return seen;
            }
            assert!(!page.next_page_token.is_empty(), "{what}: the run closed first");
            req.next_page_token = page.next_page_token;
        }
    })
    .await
}

pub fn has(events: &[HistoryEvent], t: EventType) -> bool {
    events.iter().any(|e| e.event_type == t as i32)
}

/// The close event of `run`, long-polled (answered by the commit that closes it).
pub async fn close_event(e: &Engine, run: &RunKey, what: &str) -> HistoryEvent {
    let mut req = history_req(run);
    req.close_event_only = true;
    req.wait_new_event = true;
    let page = guarded(what, engine_history::get_history(e, &run.namespace, req)).await.expect("history reads");
    assert!(page.next_page_token.is_empty(), "{what}: a closed run's close-event page is the last");
    let [close]: [HistoryEvent; 1] = page.events.try_into().unwrap_or_else(|p| panic!("{what}: one close event, got {p:?}"));
    close
}

pub fn time_ms(event: &HistoryEvent) -> i64 {
    let t = event.event_time.as_ref().expect("events have a time");
    t.seconds * 1_000 + i64::from(t.nanos) / 1_000_000
}

/// Returns once `run`'s shard's timer service has fired a timer armed after all of
/// `run`'s and due 1 ms after it was armed: a sentinel run on that shard, started with
/// a 1 ms delay, has its first task scheduled. The service fires due timers in due
/// order, so any timer of `run` armed to come due by then has fired too: what `run`
/// still waits for is held by its due time, not by the service not having looked yet.
pub async fn timers_caught_up(e: &Engine, run: &RunKey) {
    let shard = e.router().shard_for(&run.namespace, &run.workflow_id);
    let id =
        (0..).map(|i| format!("sentinel-{i}")).find(|id| e.router().shard_for(&run.namespace, id) == shard).expect("some id hashes there");
    let mut s = spec("tq-sentinel");
    s.start_delay_ms = 1;
    let out = engine_start::start_workflow(e, &run.namespace, &id, s, policies()).await.expect("the sentinel starts");
    let sentinel = RunKey { namespace: run.namespace.clone(), workflow_id: id, run_id: out.run_id };
    history_until(e, &sentinel, "the sentinel's 1 ms start delay passes", |ev| has(ev, EventType::WorkflowTaskScheduled)).await;
}

/// Returns once the spawned long poll `poll` is parked on `run`'s history watcher,
/// yielding to it meanwhile (no time passes). On a current-thread runtime a poll
/// that holds the watcher is in `wait_until`'s select: it enabled its wake-up, then
/// read the run, and there is no await point between; so whatever commits next
/// can reach it only by the watcher's notification (or its budget).
pub async fn parked<T>(e: &Engine, run: &RunKey, poll: &JoinHandle<T>) {
    let owner = e.owner_now(run);
    for _ in 0..10_000 {
        if Arc::strong_count(&owner.watchers().watch(run)) > 1 {
            return;
        }
        assert!(!poll.is_finished(), "the long poll answered without waiting");
        tokio::task::yield_now().await;
    }
    panic!("the long poll never parked on the run's watcher");
}
