//! Test scaffolding for workflow task tests: a one-shard node in a temp dir, runs
//! created directly (Started + WorkflowTaskScheduled), polls through matching.

use std::sync::Arc;
use std::time::Duration;

use hourglass_raft::{Node, NodeConfig};
use hourglass_storage::state::{QueueKey, QueueKind, RunKey};
use temporalio_protos::protos::temporal::api::common::v1::WorkflowType;
use temporalio_protos::protos::temporal::api::enums::v1::{EventType, TaskQueueKind, WorkflowExecutionStatus};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    HistoryEvent, WorkflowExecutionSignaledEventAttributes, WorkflowExecutionStartedEventAttributes,
};
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflowservice::v1::PollWorkflowTaskQueueResponse;

use super::{read_history, start, Poller, Started};
use crate::core::state::ExecutionState;
use crate::core::token::TaskToken;
use crate::core::txn::{duration, RunTxn};
use crate::core::wft;
use crate::engine::{Engine, EngineConfig, SystemClock};

pub const NS: &str = "default";
pub const TQ: &str = "tq";
pub const IDENTITY: &str = "1234@test";
pub const BUILD_ID: &str = "build-1";

pub struct Kit {
    pub engine: Engine,
    _dir: tempfile::TempDir,
}

pub async fn kit() -> Kit {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = NodeConfig::new(dir.path(), 1);
    config.tick_ms = 5;
    let node = Node::open(config).await.expect("node opens");
    let engine = Engine::new(node, EngineConfig::default(), Arc::new(SystemClock));
    assert!(engine.wait_serving(std::time::Duration::from_secs(10)).await, "the shard gets an owner");
    Kit { engine, _dir: dir }
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

/// Takes the next workflow task from matching and starts it.
pub async fn poll(engine: &Engine) -> PollWorkflowTaskQueueResponse {
    loop {
        let task = engine.matching().poll(&queue(), Duration::from_secs(2)).await.expect("a workflow task is ready");
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
