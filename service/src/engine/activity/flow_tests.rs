//! End-to-end activity and timer flows on a real one-shard node: schedule, poll,
//! fail, retry through the timer service, complete; user timers firing; stale
//! tokens. Checks the history written and that no timer is left behind.

use crate::error::code_of;
use std::sync::Arc;
use std::time::Duration;
use tonic::Code;

use hourglass_raft::{Node, NodeConfig};
use hourglass_storage::state::{QueueKey, QueueKind, RunKey};
use prost::Message;
use temporalio_protos::protos::temporal::api::command::v1::{ScheduleActivityTaskCommandAttributes, StartTimerCommandAttributes};
use temporalio_protos::protos::temporal::api::common::v1::{ActivityType, Payload, Payloads, RetryPolicy};
use temporalio_protos::protos::temporal::api::enums::v1::{EventType, WorkflowExecutionStatus};
use temporalio_protos::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_protos::protos::temporal::api::failure::v1::{ApplicationFailureInfo, Failure};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;

use super::dispatch::{start_polled_task, Dispatched};
use super::outcome;
use crate::core::activity::outcome::{Completed, Failed, Heartbeat};
use crate::core::activity::{schedule_activity, start_timer, ActivitySelector, ActivityTarget};
use crate::core::state::ExecutionState;
use crate::core::token::TaskToken;
use crate::core::txn::{duration, RunTxn};
use crate::engine::{Engine, EngineConfig, SystemClock};

const TQ: &str = "tq";

struct Kit {
    engine: Engine,
    run: RunKey,
    _dir: tempfile::TempDir,
}

/// A node, an engine and an open run with no workflow task outstanding.
async fn kit() -> Kit {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = NodeConfig::new(dir.path(), 1);
    config.tick_ms = 5;
    let node = Node::open(config).await.expect("node opens");
    let engine = Engine::new(node, EngineConfig::default(), Arc::new(SystemClock));
    assert!(engine.wait_serving(std::time::Duration::from_secs(10)).await, "the shard gets an owner");
    let run = RunKey { namespace: "default".into(), workflow_id: "wf".into(), run_id: "run-1".into() };
    let state = ExecutionState {
        workflow_type: "Wf".into(),
        task_queue: TQ.into(),
        status: WorkflowExecutionStatus::Running as i32,
        workflow_task_timeout_ms: 10_000,
        ..Default::default()
    };
    let mut txn = RunTxn::create(run.clone(), engine.now_ms(), state);
    txn.add_event(Attributes::WorkflowExecutionStartedEventAttributes(Default::default()));
    engine.commit(txn).await.expect("run created");
    Kit { engine, run, _dir: dir }
}

impl Kit {
    async fn change(&self, f: impl FnOnce(&mut RunTxn)) {
        let lock = self.engine.lock_workflow(&self.run.namespace, &self.run.workflow_id).await.unwrap();
        let mut txn = self.engine.txn(lock.load_existing(&self.run).unwrap());
        f(&mut txn);
        lock.commit(txn).await.expect("commit");
    }

    fn state(&self) -> ExecutionState {
        self.engine.load_existing(&self.run).unwrap().state
    }

    fn history(&self) -> Vec<HistoryEvent> {
        let raw = self.engine.node().read_history(0, &self.run, 1, 1_000).unwrap();
        raw.into_iter().map(|(_, b)| HistoryEvent::decode(b.as_ref()).unwrap()).collect()
    }

    fn stored_timers(&self) -> usize {
        self.engine.node().read(0, |s| s.run(&self.run).map_or(0, |r| r.timer_count())).unwrap()
    }

    async fn poll(&self) -> Option<Box<temporalio_protos::protos::temporal::api::workflowservice::v1::PollActivityTaskQueueResponse>> {
        let queue = QueueKey { namespace: "default".into(), name: TQ.into(), kind: QueueKind::Activity };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
            let task = self.engine.matching().poll(&queue, wait).await?;
            if let Dispatched::Started(r) = start_polled_task(&self.engine, &queue, &task, "worker@test").await.unwrap() {
                return Some(r);
            }
        }
    }
}

fn target(run: &RunKey, token: &[u8]) -> ActivityTarget {
    let t = TaskToken::decode_token(token).unwrap();
    ActivityTarget {
        run: run.clone(),
        selector: ActivitySelector::Attempt { scheduled_event_id: t.scheduled_event_id, attempt: t.attempt },
    }
}

fn payloads(s: &str) -> Payloads {
    Payloads { payloads: vec![Payload { data: s.as_bytes().to_vec(), ..Default::default() }] }
}

fn types(h: &[HistoryEvent]) -> Vec<EventType> {
    h.iter().map(|e| EventType::try_from(e.event_type).unwrap()).collect()
}

#[tokio::test]
async fn fail_retry_then_complete() {
    let k = kit().await;
    // The shard owner's timer service runs on its own.
    let policy = RetryPolicy { initial_interval: Some(duration(100)), ..Default::default() };
    k.change(|txn| {
        let attrs = ScheduleActivityTaskCommandAttributes {
            activity_id: "a".into(),
            activity_type: Some(ActivityType { name: "act".into() }),
            input: Some(payloads("in")),
            start_to_close_timeout: Some(duration(10_000)),
            heartbeat_timeout: Some(duration(5_000)),
            retry_policy: Some(policy),
            ..Default::default()
        };
        schedule_activity(txn, attrs, 1).unwrap();
    })
    .await;

    let first = k.poll().await.expect("attempt 1");
    assert_eq!((first.attempt, first.activity_id.as_str()), (1, "a"));
    assert_eq!(first.input, Some(payloads("in")));
    assert_eq!(k.stored_timers(), 2, "start-to-close and heartbeat");
    let t1 = target(&k.run, &first.task_token);
    assert!(!outcome::heartbeat(&k.engine, &t1, Heartbeat { details: Some(payloads("hb")), identity: "w".into() }).await.unwrap());
    let failure = Failure {
        message: "boom".into(),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo { r#type: "X".into(), ..Default::default() })),
        ..Default::default()
    };
    outcome::fail(&k.engine, &t1, Failed { failure: Some(failure.clone()), identity: "w".into(), ..Default::default() }).await.unwrap();
    assert_eq!(k.state().activity(2).unwrap().attempt, 2);
    assert_eq!(types(&k.history()).len(), 2, "a retry writes no event");
    assert_eq!(k.stored_timers(), 1, "only the retry backoff; the attempt's timers went with it");

    let second = k.poll().await.expect("attempt 2 after the backoff");
    assert_eq!(second.attempt, 2);
    assert_eq!(second.heartbeat_details, Some(payloads("hb")), "details survive the retry");
    let stale = outcome::complete(&k.engine, &t1, Completed::default()).await;
    assert!(code_of(&stale) == Some(Code::NotFound), "{stale:?}");
    let t2 = target(&k.run, &second.task_token);
    outcome::complete(&k.engine, &t2, Completed { result: Some(payloads("out")), identity: "w".into(), ..Default::default() })
        .await
        .unwrap();

    let h = k.history();
    assert_eq!(
        types(&h),
        [
            EventType::WorkflowExecutionStarted,
            EventType::ActivityTaskScheduled,
            EventType::ActivityTaskStarted,
            EventType::ActivityTaskCompleted,
            EventType::WorkflowTaskScheduled,
        ]
    );
    let Some(Attributes::ActivityTaskStartedEventAttributes(s)) = &h[2].attributes else { panic!() };
    assert_eq!((s.attempt, s.identity.as_str(), s.last_failure.as_ref()), (2, "worker@test", Some(&failure)));
    let Some(Attributes::ActivityTaskCompletedEventAttributes(c)) = &h[3].attributes else { panic!() };
    assert_eq!((c.scheduled_event_id, c.started_event_id, c.result.clone()), (2, 3, Some(payloads("out"))));
    assert!(k.state().activities.is_empty());
    assert_eq!(k.stored_timers(), 0, "no timer left behind");
    let again = outcome::complete(&k.engine, &t2, Completed::default()).await;
    assert!(code_of(&again) == Some(Code::NotFound), "{again:?}");
}

#[tokio::test]
async fn user_timer_fires_through_the_timer_service() {
    let k = kit().await;
    // The shard owner's timer service runs on its own.
    k.change(|txn| {
        start_timer(txn, StartTimerCommandAttributes { timer_id: "t".into(), start_to_fire_timeout: Some(duration(200)) }, 1).unwrap();
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while k.history().len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "timer did not fire: {:?}", types(&k.history()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        types(&k.history()),
        [EventType::WorkflowExecutionStarted, EventType::TimerStarted, EventType::TimerFired, EventType::WorkflowTaskScheduled]
    );
    assert!(k.state().timers.is_empty());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let wft_timers = k.stored_timers();
    assert_eq!(wft_timers, 0, "the fired timer was removed with its effect");
}

#[tokio::test]
async fn start_to_close_timeout_without_retries_times_out() {
    let k = kit().await;
    // The shard owner's timer service runs on its own.
    k.change(|txn| {
        let attrs = ScheduleActivityTaskCommandAttributes {
            activity_id: "a".into(),
            activity_type: Some(ActivityType { name: "act".into() }),
            start_to_close_timeout: Some(duration(200)),
            retry_policy: Some(RetryPolicy { maximum_attempts: 1, ..Default::default() }),
            ..Default::default()
        };
        schedule_activity(txn, attrs, 1).unwrap();
    })
    .await;
    k.poll().await.expect("attempt 1");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while k.history().len() < 5 {
        assert!(tokio::time::Instant::now() < deadline, "no timeout: {:?}", types(&k.history()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let h = k.history();
    assert_eq!(types(&h)[2..], [EventType::ActivityTaskStarted, EventType::ActivityTaskTimedOut, EventType::WorkflowTaskScheduled]);
    let Some(Attributes::ActivityTaskTimedOutEventAttributes(t)) = &h[3].attributes else { panic!() };
    assert_eq!(t.failure.as_ref().unwrap().message, "activity StartToClose timeout");
    assert_eq!(k.stored_timers(), 0);
}
