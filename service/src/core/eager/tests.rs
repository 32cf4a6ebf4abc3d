//! The eager rules on bare transactions: what a creation or completion transition
//! holds (events, enqueues, timers) once its task is started eagerly.

use hourglass_storage::state::{Op, RunKey};
use prost::Message;
use temporalio_protos::protos::temporal::api::command::v1::{Command, ScheduleActivityTaskCommandAttributes};
use temporalio_protos::protos::temporal::api::common::v1::ActivityType;
use temporalio_protos::protos::temporal::api::enums::v1::EventType;
use temporalio_protos::protos::temporal::api::history::v1::WorkflowTaskCompletedEventAttributes;

use super::*;
use crate::core::activity::schedule_activity;
use crate::core::run::{begin_run, new_run, Timeouts};
use crate::core::txn::duration;

const NOW: i64 = 1_700_000_000_000;

fn key() -> RunKey {
    RunKey { namespace: "default".into(), workflow_id: "wf".into(), run_id: "run".into() }
}

fn spec() -> RunSpec {
    RunSpec {
        workflow_type: "Wf".into(),
        task_queue: "tq".into(),
        timeouts: Timeouts::normalize(0, 0, 0, &EngineConfig::default()),
        identity: "starter@host".into(),
        request_id: "req-1".into(),
        ..Default::default()
    }
}

fn ops(txn: RunTxn) -> Vec<Op> {
    txn.into_transition().0.ops
}

fn timers(ops: &[Op]) -> Vec<TimerPayload> {
    ops.iter()
        .filter_map(|op| match op {
            Op::AddTimer { payload, .. } => Some(TimerPayload::decode(payload.as_ref()).expect("timer decodes")),
            _ => None,
        })
        .collect()
}

fn enqueues(ops: &[Op]) -> usize {
    ops.iter().filter(|op| matches!(op, Op::Enqueue { .. })).count()
}

#[test]
fn eagerness_is_declined_for_a_start_delay_a_cron_wait_or_when_off() {
    let config = EngineConfig::default();
    assert!(may_start_eagerly(&config, &spec(), NOW));
    assert!(!may_start_eagerly(&config, &RunSpec { start_delay_ms: 1, ..spec() }, NOW), "a start delay");
    // NOW is not on a whole hour: an hourly cron waits.
    assert!(!may_start_eagerly(&config, &RunSpec { cron_schedule: "0 * * * *".into(), ..spec() }, NOW + 1), "a cron wait");
    let off = EngineConfig { eager_workflow_start: false, ..EngineConfig::default() };
    assert!(!may_start_eagerly(&off, &spec(), NOW), "switched off");
}

#[test]
fn an_eager_start_starts_event_3_in_the_creating_transition_and_enqueues_nothing() {
    let mut txn = new_run(key(), NOW, &spec());
    begin_run(&mut txn);
    let wt = start_first_task(&mut txn, &start_poller("starter@host"), "req-1".into(), &EngineConfig::default());
    assert_eq!((wt.scheduled_event_id, wt.started_event_id, wt.attempt), (2, 3, 1));
    assert_eq!(wt.request_id, "req-1");
    let types: Vec<i32> = txn.events().iter().map(|e| e.event_type).collect();
    let want = [EventType::WorkflowExecutionStarted, EventType::WorkflowTaskScheduled, EventType::WorkflowTaskStarted];
    assert_eq!(types, want.map(|t| t as i32));
    match &txn.events()[0].attributes {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => assert!(a.eager_execution_accepted),
        other => panic!("event 1 is {other:?}"),
    }
    match &txn.events()[2].attributes {
        Some(Attributes::WorkflowTaskStartedEventAttributes(a)) => {
            assert_eq!((a.identity.as_str(), a.request_id.as_str()), ("starter@host", "req-1"));
            assert_eq!(a.history_size_bytes, 0, "as the reference's eager WorkflowTaskStarted");
        }
        other => panic!("event 3 is {other:?}"),
    }
    let size: i64 = txn.events().iter().map(|e| e.encoded_len() as i64).sum();
    assert_eq!(txn.state.history_size_bytes, size, "the amended Started event is counted at its final size");
    let ops = ops(txn);
    assert_eq!(enqueues(&ops), 0, "the eager task never goes to matching");
    let kinds: Vec<i32> = timers(&ops).iter().map(|t| t.kind).collect();
    assert_eq!(kinds, vec![TimerKind::WorkflowTaskStartToClose as i32], "its start-to-close timer is armed");
}

#[test]
fn a_retried_start_gets_the_task_only_while_it_is_the_first_attempt_still_started() {
    let mut txn = new_run(key(), NOW, &spec());
    begin_run(&mut txn);
    start_first_task(&mut txn, &start_poller("w"), "req-1".into(), &EngineConfig::default());
    let mut state = txn.state.clone();
    assert!(first_task_still_started(&state).is_some());
    state.workflow_task.as_mut().expect("task").attempt = 2;
    assert!(first_task_still_started(&state).is_none(), "a retried task went through matching");
    state.workflow_task = None;
    assert!(first_task_still_started(&state).is_none(), "the task completed");
}

fn schedule(eager: bool, id: &str) -> ScheduleActivityTaskCommandAttributes {
    ScheduleActivityTaskCommandAttributes {
        activity_id: id.into(),
        activity_type: Some(ActivityType { name: "act".into() }),
        start_to_close_timeout: Some(duration(5_000)),
        schedule_to_start_timeout: Some(duration(60_000)),
        request_eager_execution: eager,
        ..Default::default()
    }
}

fn completion() -> RunTxn {
    let state = ExecutionState { task_queue: "tq".into(), workflow_type: "Wf".into(), ..Default::default() };
    let mut txn = RunTxn::existing(key(), NOW, state, 4, 1);
    txn.add_event(Attributes::WorkflowTaskCompletedEventAttributes(WorkflowTaskCompletedEventAttributes {
        scheduled_event_id: 2,
        started_event_id: 3,
        ..Default::default()
    }));
    txn
}

#[test]
fn only_the_activities_asked_for_are_started_and_they_leave_matching() {
    let commands: Vec<Command> = [schedule(true, "a"), schedule(false, "b")]
        .into_iter()
        .map(|a| Command { attributes: Some(Cmd::ScheduleActivityTaskCommandAttributes(a)), ..Default::default() })
        .collect();
    let requested = requested_activities(&commands);
    assert_eq!(requested, HashSet::from(["a".to_string()]));
    let mut txn = completion();
    schedule_activity(&mut txn, schedule(true, "a"), 4).expect("schedules a");
    schedule_activity(&mut txn, schedule(false, "b"), 4).expect("schedules b");
    let eager = scheduled_in(&txn, &requested);
    assert_eq!(eager, vec![5]);
    assert!(start_activity(&mut txn, 5, "worker@host", "r-1"));
    assert!(!start_activity(&mut txn, 5, "worker@host", "r-2"), "started once");
    let ai = txn.state.activity(5).expect("a is pending");
    assert_eq!((ai.started_identity.as_str(), ai.started_time_ms), ("worker@host", NOW));
    assert!(!txn.events().iter().any(|e| e.event_type == EventType::ActivityTaskStarted as i32), "no Started event until the outcome");
    let ops = ops(txn);
    assert_eq!(enqueues(&ops), 1, "only b goes to matching");
    let a_timers: Vec<i32> = timers(&ops).iter().filter(|t| t.event_id == 5).map(|t| t.kind).collect();
    assert_eq!(a_timers, vec![TimerKind::ActivityStartToClose as i32], "a's schedule-to-start timer is gone, start-to-close armed");
}

#[test]
fn no_eager_activity_once_the_run_closed_or_the_activity_went() {
    let mut txn = completion();
    schedule_activity(&mut txn, schedule(true, "a"), 4).expect("schedules a");
    txn.state.activities.clear();
    assert!(!start_activity(&mut txn, 5, "w", "r"), "canceled in the same completion");
    let mut txn = completion();
    schedule_activity(&mut txn, schedule(true, "a"), 4).expect("schedules a");
    txn.state.close_time_ms = NOW;
    assert!(!start_activity(&mut txn, 5, "w", "r"), "the run completed in the same completion");
}
