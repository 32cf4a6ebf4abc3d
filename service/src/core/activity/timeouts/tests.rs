//! Timer effects and outcome event shapes, checked against `hist-to-*.json`,
//! `hist-wf-retry.json` and `hist-wf-timer.json`.

use hourglass_storage::state::{Op, RunKey};
use prost::Message;
use temporalio_protos::protos::temporal::api::common::v1::{Payload, Payloads, RetryPolicy};
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;

use super::*;
use crate::core::retry::with_defaults;
use crate::core::state::{ActivityInfo, ExecutionState, TimerInfo, WorkflowTaskInfo};
use crate::core::txn::timestamp;

const NOW: i64 = 1_700_000_000_000;
const STARTED: i64 = NOW - 1_000;

fn activity(attempt: i32, started_time_ms: i64, policy: RetryPolicy) -> ActivityInfo {
    ActivityInfo {
        scheduled_event_id: 5,
        activity_id: "1".into(),
        activity_type: "slow_no_hb".into(),
        task_queue: "tq-to".into(),
        start_to_close_ms: 10_000,
        heartbeat_ms: 1_000,
        retry_policy: Some(policy),
        attempt,
        scheduled_time_ms: NOW - 5_000,
        attempt_scheduled_time_ms: NOW - 2_000,
        started_time_ms,
        started_identity: if started_time_ms > 0 { "20310@vm".into() } else { String::new() },
        started_request_id: if started_time_ms > 0 { "req".into() } else { String::new() },
        ..Default::default()
    }
}

fn txn(ai: ActivityInfo) -> RunTxn {
    let state = ExecutionState { task_queue: "tq-to".into(), workflow_task_timeout_ms: 10_000, activities: vec![ai], ..Default::default() };
    RunTxn::existing(RunKey { namespace: "default".into(), workflow_id: "wf".into(), run_id: "r".into() }, NOW, state, 7, 1)
}

fn payload(kind: TimerKind, attempt: i32) -> TimerPayload {
    timer(kind, 5, attempt)
}

fn timers_added(txn: RunTxn) -> Vec<(i64, TimerPayload)> {
    txn.into_transition()
        .0
        .ops
        .into_iter()
        .filter_map(|op| match op {
            Op::AddTimer { due_ms, payload, .. } => Some((due_ms, TimerPayload::decode(payload.as_ref()).unwrap())),
            _ => None,
        })
        .collect()
}

fn heartbeat_failure() -> Failure {
    timeout_failure("activity Heartbeat timeout".into(), TimeoutType::Heartbeat)
}

#[test]
fn heartbeat_timeout_retries_without_an_event() {
    let mut txn = txn(activity(1, STARTED, RetryPolicy { maximum_attempts: 2, ..with_defaults(None) }));
    assert!(apply_activity_timer(&mut txn, &payload(TimerKind::ActivityHeartbeat, 1)));
    assert!(txn.events().is_empty());
    let ai = txn.state.activity(5).unwrap();
    assert_eq!((ai.attempt, ai.started_time_ms, ai.attempt_scheduled_time_ms), (2, 0, NOW + 1_000));
    assert_eq!(ai.last_failure, Some(heartbeat_failure()), "hist-to-hb event 6 lastFailure");
    assert_eq!(ai.last_worker_identity, "20310@vm");
    let timers = timers_added(txn);
    assert_eq!(timers, [(NOW + 1_000, payload(TimerKind::ActivityRetry, 2))]);
}

#[test]
fn heartbeats_push_the_heartbeat_timeout_back() {
    let mut ai = activity(1, STARTED, with_defaults(None));
    ai.last_heartbeat_ms = NOW - 200;
    let mut txn = txn(ai);
    assert!(apply_activity_timer(&mut txn, &payload(TimerKind::ActivityHeartbeat, 1)));
    assert!(txn.events().is_empty());
    assert_eq!(txn.state.activity(5).unwrap().attempt, 1);
    assert_eq!(timers_added(txn), [(NOW + 800, payload(TimerKind::ActivityHeartbeat, 1))]);
}

#[test]
fn final_heartbeat_timeout_matches_hist_to_hb() {
    let mut ai = activity(2, STARTED, RetryPolicy { maximum_attempts: 2, ..with_defaults(None) });
    ai.last_failure = Some(heartbeat_failure());
    let mut txn = txn(ai);
    assert!(apply_activity_timer(&mut txn, &payload(TimerKind::ActivityHeartbeat, 2)));
    let events = txn.events();
    assert_eq!(events.len(), 3, "Started, TimedOut, WorkflowTaskScheduled");
    assert_eq!(events[0].event_time, Some(timestamp(STARTED)), "Started carries the attempt's start time");
    let Some(Attributes::ActivityTaskStartedEventAttributes(s)) = &events[0].attributes else { panic!() };
    assert_eq!((s.scheduled_event_id, s.attempt, s.identity.as_str(), s.request_id.as_str()), (5, 2, "20310@vm", "req"));
    assert_eq!(s.last_failure, Some(heartbeat_failure()));
    let Some(Attributes::ActivityTaskTimedOutEventAttributes(t)) = &events[1].attributes else { panic!() };
    let mut expected = heartbeat_failure();
    expected.cause = Some(Box::new(heartbeat_failure()));
    assert_eq!(t.failure, Some(expected));
    assert_eq!((t.scheduled_event_id, t.started_event_id, t.retry_state), (5, 7, RetryState::MaximumAttemptsReached as i32));
    assert!(matches!(events[2].attributes, Some(Attributes::WorkflowTaskScheduledEventAttributes(_))));
    assert!(txn.state.activity(5).is_none());
}

#[test]
fn schedule_to_close_timeout_matches_hist_to_s2c() {
    let mut ai = activity(1, STARTED, with_defaults(None));
    ai.schedule_to_close_ms = 1_000;
    let mut txn = txn(ai);
    assert!(apply_activity_timer(&mut txn, &payload(TimerKind::ActivityScheduleToClose, 1)));
    let Some(Attributes::ActivityTaskTimedOutEventAttributes(t)) = &txn.events()[1].attributes else { panic!() };
    let expected = timeout_failure(NOT_ENOUGH_TIME_MESSAGE.into(), TimeoutType::ScheduleToClose);
    assert_eq!(t.failure, Some(expected));
    assert_eq!((t.started_event_id, t.retry_state), (7, RetryState::Timeout as i32));
}

#[test]
fn start_to_close_past_the_deadline_gives_up_as_schedule_to_close() {
    let mut ai = activity(1, STARTED, with_defaults(None));
    ai.schedule_to_close_ms = 5_500; // deadline NOW + 500: no room for a 1 s backoff
    let mut txn = txn(ai);
    assert!(apply_activity_timer(&mut txn, &payload(TimerKind::ActivityStartToClose, 1)));
    let Some(Attributes::ActivityTaskTimedOutEventAttributes(t)) = &txn.events()[1].attributes else { panic!() };
    assert_eq!(t.failure.as_ref().unwrap().message, NOT_ENOUGH_TIME_MESSAGE);
    assert_eq!(t.retry_state, RetryState::Timeout as i32);
}

#[test]
fn schedule_to_start_timeout_has_no_started_event() {
    let mut ai = activity(1, 0, with_defaults(None));
    ai.schedule_to_start_ms = 2_000;
    ai.heartbeat_details = Some(Payloads { payloads: vec![Payload { data: b"1".to_vec(), ..Default::default() }] });
    let mut txn = txn(ai);
    assert!(apply_activity_timer(&mut txn, &payload(TimerKind::ActivityScheduleToStart, 1)));
    let events = txn.events();
    assert_eq!(events.len(), 2, "TimedOut, WorkflowTaskScheduled");
    let Some(Attributes::ActivityTaskTimedOutEventAttributes(t)) = &events[0].attributes else { panic!() };
    let f = t.failure.as_ref().unwrap();
    assert_eq!(f.message, "activity ScheduleToStart timeout");
    let Some(FailureInfo::TimeoutFailureInfo(info)) = &f.failure_info else { panic!() };
    assert_eq!(info.timeout_type, TimeoutType::ScheduleToStart as i32);
    assert!(info.last_heartbeat_details.is_some());
    assert_eq!((t.started_event_id, t.retry_state), (0, RetryState::Timeout as i32));
}

#[test]
fn stale_timers_change_nothing() {
    let cases = [
        (activity(2, STARTED, with_defaults(None)), TimerKind::ActivityStartToClose, 1),
        (activity(1, 0, with_defaults(None)), TimerKind::ActivityStartToClose, 1),
        (activity(1, STARTED, with_defaults(None)), TimerKind::ActivityScheduleToStart, 1),
        (activity(2, STARTED, with_defaults(None)), TimerKind::ActivityRetry, 2),
        (activity(3, 0, with_defaults(None)), TimerKind::ActivityRetry, 2),
        (activity(1, STARTED, with_defaults(None)), TimerKind::UserTimer, 1),
    ];
    for (ai, kind, attempt) in cases {
        let mut txn = txn(ai);
        assert!(!apply_activity_timer(&mut txn, &payload(kind, attempt)), "{kind:?} attempt {attempt}");
        assert!(txn.is_noop());
    }
    let mut txn = txn(activity(1, STARTED, with_defaults(None)));
    txn.state.activities.clear();
    assert!(!apply_activity_timer(&mut txn, &payload(TimerKind::ActivityScheduleToClose, 1)), "activity gone");
}

#[test]
fn retry_timer_enqueues_the_next_attempt() {
    let mut ai = activity(2, 0, with_defaults(None));
    ai.schedule_to_start_ms = 3_000;
    let mut txn = txn(ai);
    assert!(apply_activity_timer(&mut txn, &payload(TimerKind::ActivityRetry, 2)));
    let (t, effects) = txn.into_transition();
    assert_eq!(effects.enqueued.len(), 1);
    assert_eq!((effects.enqueued[0].payload.attempt, effects.enqueued[0].queue.name.as_str()), (2, "tq-to"));
    assert!(t.ops.iter().any(|op| matches!(op, Op::AddTimer { due_ms, .. } if *due_ms == NOW + 3_000)));
}

#[test]
fn outcome_during_a_workflow_task_is_buffered_with_its_started_event() {
    let mut txn = txn(activity(1, STARTED, RetryPolicy { maximum_attempts: 1, ..with_defaults(None) }));
    txn.state.workflow_task = Some(WorkflowTaskInfo { scheduled_event_id: 5, started_event_id: 6, ..Default::default() });
    assert!(apply_activity_timer(&mut txn, &payload(TimerKind::ActivityStartToClose, 1)));
    assert!(txn.events().is_empty());
    let buffered: Vec<HistoryEvent> = txn.state.buffered_events.iter().map(|b| HistoryEvent::decode(b.as_slice()).unwrap()).collect();
    assert!(matches!(buffered[0].attributes, Some(Attributes::ActivityTaskStartedEventAttributes(_))));
    assert_eq!(buffered[0].event_time, Some(timestamp(STARTED)));
    assert!(matches!(buffered[1].attributes, Some(Attributes::ActivityTaskTimedOutEventAttributes(_))));
}

#[test]
fn user_timer_fires_once() {
    let state = ExecutionState {
        task_queue: "tq".into(),
        timers: vec![TimerInfo { timer_id: "1".into(), started_event_id: 5, fire_time_ms: NOW }],
        ..Default::default()
    };
    let key = RunKey { namespace: "default".into(), workflow_id: "wf".into(), run_id: "r".into() };
    let mut txn = RunTxn::existing(key, NOW, state, 6, 1);
    let fired = TimerPayload { kind: TimerKind::UserTimer as i32, event_id: 5, attempt: 0, timer_id: "1".into() };
    let stale = TimerPayload { event_id: 3, ..fired.clone() };
    assert!(!apply_user_timer(&mut txn, &stale), "an earlier timer with the same id");
    assert!(apply_user_timer(&mut txn, &fired));
    let e = &txn.events()[0];
    assert_eq!(e.event_id, 6);
    assert_eq!(
        e.attributes,
        Some(Attributes::TimerFiredEventAttributes(TimerFiredEventAttributes { timer_id: "1".into(), started_event_id: 5 }))
    );
    assert!(matches!(txn.events()[1].attributes, Some(Attributes::WorkflowTaskScheduledEventAttributes(_))), "hist-wf-timer 7");
    assert!(txn.state.timers.is_empty());
    assert!(!apply_user_timer(&mut txn, &fired), "fires once");
}
