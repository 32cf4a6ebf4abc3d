//! Command event shapes, checked field by field against the reference histories
//! (`hist-wf-oneact.json`, `hist-wf-timer.json`, `hist-ex-cancelact.json`).

use hourglass_storage::state::{Op, RunKey};
use temporalio_protos::protos::temporal::api::common::v1::{ActivityType, Header, Payloads, Priority, RetryPolicy};
use temporalio_protos::protos::temporal::api::history::v1::{TimerFiredEventAttributes, WorkflowTaskCompletedEventAttributes};

use super::*;
use crate::core::state::{ExecutionState, WorkflowTaskInfo};
use crate::core::tasks::{TaskKind, TaskPayload};

const NOW: i64 = 1_700_000_000_000;

fn txn_with(state: ExecutionState) -> RunTxn {
    let key = RunKey { namespace: "default".into(), workflow_id: "wf".into(), run_id: "run".into() };
    let mut txn = RunTxn::existing(key, NOW, state, 4, 1);
    txn.add_event(Attributes::WorkflowTaskCompletedEventAttributes(WorkflowTaskCompletedEventAttributes {
        scheduled_event_id: 2,
        started_event_id: 3,
        identity: "13919@vm".into(),
        ..Default::default()
    }));
    txn
}

fn txn() -> RunTxn {
    txn_with(ExecutionState { task_queue: "tq-cap".into(), workflow_type: "OneActWf".into(), ..Default::default() })
}

fn greet() -> ScheduleActivityTaskCommandAttributes {
    ScheduleActivityTaskCommandAttributes {
        activity_id: "1".into(),
        activity_type: Some(ActivityType { name: "greet".into() }),
        task_queue: Some(TaskQueue { name: "tq-cap".into(), kind: TaskQueueKind::Normal as i32, normal_name: String::new() }),
        header: Some(Header::default()),
        input: Some(Payloads::default()),
        start_to_close_timeout: Some(duration(10_000)),
        request_eager_execution: true,
        use_workflow_build_id: true,
        priority: Some(Priority::default()),
        ..Default::default()
    }
}

fn added_timers(txn: RunTxn) -> Vec<(i64, TimerPayload)> {
    let (t, _) = txn.into_transition();
    t.ops
        .into_iter()
        .filter_map(|op| match op {
            Op::AddTimer { due_ms, payload, .. } => Some((due_ms, TimerPayload::decode(payload.as_ref()).unwrap())),
            _ => None,
        })
        .collect()
}

fn attrs_of(e: &HistoryEvent) -> &Attributes {
    e.attributes.as_ref().unwrap()
}

#[test]
#[allow(deprecated)]
fn schedule_activity_matches_the_reference_event() {
    let mut txn = txn();
    schedule_activity(&mut txn, greet(), 4).unwrap();
    let e = &txn.events()[1];
    assert_eq!(e.event_id, 5);
    let expected = ActivityTaskScheduledEventAttributes {
        activity_id: "1".into(),
        activity_type: Some(ActivityType { name: "greet".into() }),
        task_queue: Some(TaskQueue { name: "tq-cap".into(), kind: TaskQueueKind::Normal as i32, normal_name: String::new() }),
        header: Some(Header::default()),
        input: Some(Payloads::default()),
        schedule_to_close_timeout: Some(duration(0)),
        schedule_to_start_timeout: Some(duration(0)),
        start_to_close_timeout: Some(duration(10_000)),
        heartbeat_timeout: Some(duration(0)),
        workflow_task_completed_event_id: 4,
        retry_policy: Some(RetryPolicy {
            initial_interval: Some(duration(1_000)),
            backoff_coefficient: 2.0,
            maximum_interval: Some(duration(100_000)),
            maximum_attempts: 0,
            non_retryable_error_types: vec![],
        }),
        use_workflow_build_id: true,
        priority: Some(Priority::default()),
    };
    assert_eq!(attrs_of(e), &Attributes::ActivityTaskScheduledEventAttributes(expected));
    let ai = txn.state.activity(5).unwrap();
    assert_eq!((ai.attempt, ai.start_to_close_ms, ai.scheduled_time_ms, ai.started_time_ms), (1, 10_000, NOW, 0));
    assert_eq!(ai.task_queue, "tq-cap");
    let (_, effects) = txn.into_transition();
    assert_eq!(effects.enqueued.len(), 1);
    assert_eq!(
        effects.enqueued[0].payload,
        TaskPayload { kind: TaskKind::ActivityTask as i32, scheduled_event_id: 5, attempt: 1, normal_queue: String::new() }
    );
    assert_eq!(effects.enqueued[0].queue.name, "tq-cap");
    assert_eq!(effects.timers_added, 0, "no schedule-to-* timeouts: no timers");
}

#[test]
fn schedule_activity_arms_schedule_timeouts_and_defaults_the_queue() {
    let mut txn = txn();
    let mut a = greet();
    a.task_queue = None;
    a.schedule_to_close_timeout = Some(duration(3_000));
    a.start_to_close_timeout = None;
    schedule_activity(&mut txn, a, 4).unwrap();
    assert_eq!(txn.state.activity(5).unwrap().task_queue, "tq-cap");
    let timers = added_timers(txn);
    let kinds: Vec<_> = timers.iter().map(|(due, t)| (*due - NOW, t.kind, t.event_id, t.attempt)).collect();
    assert_eq!(kinds, [(3_000, TimerKind::ActivityScheduleToStart as i32, 5, 1), (3_000, TimerKind::ActivityScheduleToClose as i32, 5, 1)]);
}

#[test]
fn schedule_activity_refusals() {
    let mut txn = txn();
    schedule_activity(&mut txn, greet(), 4).unwrap();
    let dup = schedule_activity(&mut txn, greet(), 4).unwrap_err();
    assert_eq!(dup.cause, Cause::ScheduleActivityDuplicateId as i32);
    let mut no_timeout = greet();
    no_timeout.activity_id = "2".into();
    no_timeout.start_to_close_timeout = None;
    assert_eq!(schedule_activity(&mut txn, no_timeout, 4).unwrap_err().cause, Cause::BadScheduleActivityAttributes as i32);
    let mut other_queue = greet();
    other_queue.activity_id = "3".into();
    other_queue.task_queue = Some(TaskQueue { name: "elsewhere".into(), ..Default::default() });
    assert_eq!(schedule_activity(&mut txn, other_queue.clone(), 4).unwrap_err().cause, Cause::BadScheduleActivityAttributes as i32);
    other_queue.use_workflow_build_id = false;
    assert!(schedule_activity(&mut txn, other_queue, 4).is_ok());
}

#[test]
fn cancel_of_an_activity_not_started_cancels_it_at_once() {
    let mut txn = txn();
    schedule_activity(&mut txn, greet(), 4).unwrap();
    request_cancel_activity(&mut txn, RequestCancelActivityTaskCommandAttributes { scheduled_event_id: 5 }, 4).unwrap();
    let events = txn.events();
    assert_eq!(
        attrs_of(&events[2]),
        &Attributes::ActivityTaskCancelRequestedEventAttributes(ActivityTaskCancelRequestedEventAttributes {
            scheduled_event_id: 5,
            workflow_task_completed_event_id: 4,
        })
    );
    let Attributes::ActivityTaskCanceledEventAttributes(c) = attrs_of(&events[3]) else { panic!("{:?}", events[3]) };
    assert_eq!((c.latest_cancel_requested_event_id, c.scheduled_event_id, c.started_event_id), (6, 5, 0));
    assert_eq!(c.identity, "13919@vm", "the completing worker");
    let p = &c.details.as_ref().unwrap().payloads[0];
    assert_eq!((p.metadata["encoding"].as_slice(), p.data.as_slice()), (&b"json/plain"[..], &b"\"ACTIVITY_ID_NOT_STARTED\""[..]));
    assert!(txn.state.activity(5).is_none());
    assert!(activity_canceled_before_start(txn.events()));
}

#[test]
fn cancel_of_a_started_activity_marks_it() {
    let mut txn = txn();
    schedule_activity(&mut txn, greet(), 4).unwrap();
    txn.state.activity_mut(5).unwrap().started_time_ms = NOW;
    request_cancel_activity(&mut txn, RequestCancelActivityTaskCommandAttributes { scheduled_event_id: 5 }, 4).unwrap();
    assert_eq!(txn.events().len(), 3, "only ActivityTaskCancelRequested");
    let ai = txn.state.activity(5).unwrap();
    assert!(ai.cancel_requested);
    assert_eq!(ai.cancel_requested_event_id, 6);
    assert!(!activity_canceled_before_start(txn.events()));
    let again = request_cancel_activity(&mut txn, RequestCancelActivityTaskCommandAttributes { scheduled_event_id: 5 }, 4);
    assert_eq!(again.unwrap_err().cause, Cause::BadRequestCancelActivityAttributes as i32, "a second request");
}

#[test]
fn cancel_of_an_unknown_activity_fails_unless_its_outcome_is_buffered() {
    let mut txn = txn();
    let cancel = |txn: &mut RunTxn| request_cancel_activity(txn, RequestCancelActivityTaskCommandAttributes { scheduled_event_id: 9 }, 4);
    assert_eq!(cancel(&mut txn).unwrap_err().cause, Cause::BadRequestCancelActivityAttributes as i32);
    txn.buffer_event(Attributes::ActivityTaskCompletedEventAttributes(
        temporalio_protos::protos::temporal::api::history::v1::ActivityTaskCompletedEventAttributes {
            scheduled_event_id: 9,
            ..Default::default()
        },
    ));
    cancel(&mut txn).unwrap();
    assert_eq!(txn.events().len(), 2, "the request is recorded, nothing else");
}

#[test]
fn start_timer_matches_the_reference_event() {
    let mut txn = txn();
    let one_and_a_half = prost_wkt_types::Duration { seconds: 1, nanos: 500_000_000 };
    start_timer(&mut txn, StartTimerCommandAttributes { timer_id: "1".into(), start_to_fire_timeout: Some(one_and_a_half) }, 4).unwrap();
    assert_eq!(
        attrs_of(&txn.events()[1]),
        &Attributes::TimerStartedEventAttributes(TimerStartedEventAttributes {
            timer_id: "1".into(),
            start_to_fire_timeout: Some(one_and_a_half),
            workflow_task_completed_event_id: 4,
        })
    );
    assert_eq!(txn.state.timer("1").unwrap(), &TimerInfo { timer_id: "1".into(), started_event_id: 5, fire_time_ms: NOW + 1_500 });
    let dup = start_timer(&mut txn, StartTimerCommandAttributes { timer_id: "1".into(), start_to_fire_timeout: None }, 4);
    assert_eq!(dup.unwrap_err().cause, Cause::StartTimerDuplicateId as i32);
    let empty = start_timer(&mut txn, StartTimerCommandAttributes::default(), 4);
    assert_eq!(empty.unwrap_err().cause, Cause::BadStartTimerAttributes as i32);
    let timers = added_timers(txn);
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0].0, NOW + 1_500);
    assert_eq!(timers[0].1, TimerPayload { kind: TimerKind::UserTimer as i32, event_id: 5, attempt: 0, timer_id: "1".into() });
}

#[test]
fn cancel_timer_matches_the_reference_event() {
    let mut txn = txn();
    start_timer(&mut txn, StartTimerCommandAttributes { timer_id: "1".into(), start_to_fire_timeout: Some(duration(1_000)) }, 4).unwrap();
    cancel_timer(&mut txn, CancelTimerCommandAttributes { timer_id: "1".into() }, 4).unwrap();
    assert_eq!(
        attrs_of(&txn.events()[2]),
        &Attributes::TimerCanceledEventAttributes(TimerCanceledEventAttributes {
            timer_id: "1".into(),
            started_event_id: 5,
            workflow_task_completed_event_id: 4,
            identity: "13919@vm".into(),
        })
    );
    assert!(txn.state.timer("1").is_none());
    let unknown = cancel_timer(&mut txn, CancelTimerCommandAttributes { timer_id: "1".into() }, 4);
    assert_eq!(unknown.unwrap_err().cause, Cause::BadCancelTimerAttributes as i32);
}

#[test]
fn cancel_timer_discards_a_buffered_fire() {
    let mut state = ExecutionState { task_queue: "tq".into(), ..Default::default() };
    state.workflow_task = Some(WorkflowTaskInfo { scheduled_event_id: 2, started_event_id: 3, ..Default::default() });
    let mut txn = txn_with(state);
    txn.buffer_event(Attributes::TimerFiredEventAttributes(TimerFiredEventAttributes { timer_id: "t".into(), started_event_id: 2 }));
    cancel_timer(&mut txn, CancelTimerCommandAttributes { timer_id: "t".into() }, 4).unwrap();
    assert!(txn.state.buffered_events.is_empty());
    let Attributes::TimerCanceledEventAttributes(c) = attrs_of(&txn.events()[1]) else { panic!() };
    assert_eq!(c.started_event_id, 2);
}
