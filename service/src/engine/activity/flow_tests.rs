//! End-to-end activity and timer flows on a real one-shard node: schedule, poll,
//! fail, retry through the timer service, complete; user timers firing; stale
//! tokens. Checks the history written and that no timer is left behind.
//!
//! No test sleeps or measures time: timeouts and backoffs are hours of simulated
//! time ([`Kit::advance`]), checked not to fire before they are due
//! ([`timers_caught_up`]), and what a test expects it waits for through a history long
//! poll or a task poll answered by the event itself, under the hang guard
//! ([`guarded`]).

use crate::error::code_of;
use tonic::Code;

use hourglass_storage::state::{QueueKey, QueueKind, RunKey};
use prost::Message;
use temporalio_protos::protos::temporal::api::command::v1::{ScheduleActivityTaskCommandAttributes, StartTimerCommandAttributes};
use temporalio_protos::protos::temporal::api::common::v1::{ActivityType, Payload, Payloads, RetryPolicy};
use temporalio_protos::protos::temporal::api::enums::v1::{EventType, WorkflowExecutionStatus};
use temporalio_protos::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_protos::protos::temporal::api::failure::v1::{ApplicationFailureInfo, Failure};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::protos::temporal::api::workflowservice::v1::PollActivityTaskQueueResponse;

use super::dispatch::{start_polled_task, Dispatched};
use super::outcome;
use crate::core::activity::outcome::{Completed, Failed, Heartbeat};
use crate::core::activity::{schedule_activity, start_timer, ActivitySelector, ActivityTarget};
use crate::core::state::ExecutionState;
use crate::core::token::TaskToken;
use crate::core::txn::{duration, RunTxn};
use crate::engine::workflow_task::testkit::{self, guarded, has, history_until, time_ms, timers_caught_up, HOUR_MS, NEVER, NS};
use crate::engine::Engine;

const TQ: &str = "tq";

struct Kit {
    base: testkit::Kit,
    engine: Engine,
    run: RunKey,
}

/// A node on simulated time, an engine and an open run with no workflow task
/// outstanding.
async fn kit() -> Kit {
    let base = testkit::kit().await;
    let engine = base.engine.clone();
    let run = RunKey { namespace: NS.into(), workflow_id: "wf".into(), run_id: "run-1".into() };
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
    Kit { base, engine, run }
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

    fn queue() -> QueueKey {
        QueueKey { namespace: NS.into(), name: TQ.into(), kind: QueueKind::Activity }
    }

    /// Activity tasks ready in matching, not handed to any poller.
    fn ready(&self) -> usize {
        self.engine.matching().ready_len(&Self::queue())
    }

    /// Takes the next activity task and starts it; fails the test (as `what`) if none
    /// comes within the hang guard.
    async fn poll(&self, what: &str) -> Box<PollActivityTaskQueueResponse> {
        guarded(what, async {
            loop {
                let task = self.engine.matching().poll(&Self::queue(), NEVER).await.expect("an activity task");
                if let Dispatched::Started(r) = start_polled_task(&self.engine, &Self::queue(), &task, "worker@test").await.unwrap() {
                    return r;
                }
            }
        })
        .await
    }

    /// Moves simulated time `by_ms` forward (see [`testkit::Kit::advance`]).
    fn advance(&self, by_ms: i64) {
        self.base.advance(by_ms);
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
    // The retry backoff, and the attempts' timeouts, are hours of simulated time: the
    // retry comes when the test moves time past its backoff, through the shard
    // owner's timer service, and no timeout comes at all.
    let policy = RetryPolicy { initial_interval: Some(duration(HOUR_MS)), ..Default::default() };
    k.change(|txn| {
        let attrs = ScheduleActivityTaskCommandAttributes {
            activity_id: "a".into(),
            activity_type: Some(ActivityType { name: "act".into() }),
            input: Some(payloads("in")),
            start_to_close_timeout: Some(duration(10 * HOUR_MS)),
            heartbeat_timeout: Some(duration(5 * HOUR_MS)),
            retry_policy: Some(policy),
            ..Default::default()
        };
        schedule_activity(txn, attrs, 1).unwrap();
    })
    .await;

    let first = k.poll("attempt 1 is dispatched").await;
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
    timers_caught_up(&k.engine, &k.run).await;
    assert_eq!(k.ready(), 0, "attempt 2 waits for its backoff");

    // The backoff passes (in simulated time): the retry timer dispatches attempt 2.
    k.advance(HOUR_MS);
    let second = k.poll("the retry timer dispatches attempt 2").await;
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
    k.change(|txn| {
        start_timer(txn, StartTimerCommandAttributes { timer_id: "t".into(), start_to_fire_timeout: Some(duration(HOUR_MS)) }, 1).unwrap();
    })
    .await;
    assert_eq!(k.stored_timers(), 1);
    timers_caught_up(&k.engine, &k.run).await;
    assert_eq!(types(&k.history()), [EventType::WorkflowExecutionStarted, EventType::TimerStarted], "not fired before it is due");

    // The timer comes due (in simulated time); the long poll is answered by the
    // commit that fires it.
    k.advance(HOUR_MS);
    let h = history_until(&k.engine, &k.run, "the timer service fires the timer", |ev| has(ev, EventType::TimerFired)).await;
    // Looked at as soon as the event shows, before the timer service could remove a
    // leftover timer in a transition of its own: the handler removed it with its effect.
    assert_eq!(k.stored_timers(), 0, "the fired timer was removed with its effect");
    assert_eq!(
        types(&h),
        [EventType::WorkflowExecutionStarted, EventType::TimerStarted, EventType::TimerFired, EventType::WorkflowTaskScheduled]
    );
    assert!(time_ms(&h[2]) >= time_ms(&h[1]) + HOUR_MS, "fired once due, not before");
    assert!(k.state().timers.is_empty());
}

#[tokio::test]
async fn start_to_close_timeout_without_retries_times_out() {
    let k = kit().await;
    k.change(|txn| {
        let attrs = ScheduleActivityTaskCommandAttributes {
            activity_id: "a".into(),
            activity_type: Some(ActivityType { name: "act".into() }),
            start_to_close_timeout: Some(duration(HOUR_MS)),
            retry_policy: Some(RetryPolicy { maximum_attempts: 1, ..Default::default() }),
            ..Default::default()
        };
        schedule_activity(txn, attrs, 1).unwrap();
    })
    .await;
    k.poll("attempt 1 is dispatched").await;
    assert_eq!(k.stored_timers(), 1, "start-to-close");
    timers_caught_up(&k.engine, &k.run).await;
    assert!(!has(&k.history(), EventType::ActivityTaskTimedOut), "not timed out before its timeout");
    assert_eq!(k.state().activities.len(), 1);

    // The timeout passes (in simulated time); the long poll is answered by the commit
    // that times the activity out.
    k.advance(HOUR_MS);
    let h = history_until(&k.engine, &k.run, "the start-to-close timeout fires", |ev| has(ev, EventType::ActivityTaskTimedOut)).await;
    assert_eq!(k.stored_timers(), 0, "the fired timer was removed with its effect");
    assert_eq!(types(&h)[2..], [EventType::ActivityTaskStarted, EventType::ActivityTaskTimedOut, EventType::WorkflowTaskScheduled]);
    let Some(Attributes::ActivityTaskTimedOutEventAttributes(t)) = &h[3].attributes else { panic!() };
    assert_eq!(t.failure.as_ref().unwrap().message, "activity StartToClose timeout");
    assert!(time_ms(&h[3]) >= time_ms(&h[2]) + HOUR_MS, "timed out once due after the start, not before");
    assert!(k.state().activities.is_empty());
}
