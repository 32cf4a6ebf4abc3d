//! Reset rules: validation, the new run's history and state, the current run's
//! termination, and a golden comparison with a reset recorded on Temporal's server.

use hourglass_storage::state::RunKey;
use temporalio_protos::protos::temporal::api::common::v1::{Payload, Payloads, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::{
    EventType, UpdateAdmittedEventOrigin, WorkflowExecutionStatus, WorkflowTaskFailedCause,
};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::*;
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;

use super::*;
use crate::core::txn::{duration, new_event};
use crate::core::{EngineConfig, SequentialIds};

fn key(run_id: &str) -> RunKey {
    RunKey { namespace: "ns".into(), workflow_id: "wf".into(), run_id: run_id.into() }
}

/// A history built like `Vec::push`, each event at its index's second.
struct H(Vec<HistoryEvent>);

impl H {
    fn add(&mut self, a: Attributes) -> i64 {
        let id = self.0.len() as i64 + 1;
        self.0.push(new_event(id, id * 1_000, a));
        id
    }
    fn started() -> Self {
        let mut h = H(Vec::new());
        h.add(Attributes::WorkflowExecutionStartedEventAttributes(WorkflowExecutionStartedEventAttributes {
            workflow_type: Some(WorkflowType { name: "T".into() }),
            task_queue: Some(TaskQueue { name: "tq".into(), ..Default::default() }),
            workflow_task_timeout: Some(duration(10_000)),
            first_execution_run_id: "base".into(),
            original_execution_run_id: "base".into(),
            attempt: 1,
            ..Default::default()
        }));
        h
    }
    /// WorkflowTaskScheduled, Started, Completed; returns the Completed id.
    fn task(&mut self) -> i64 {
        let scheduled_event_id = self.add(Attributes::WorkflowTaskScheduledEventAttributes(WorkflowTaskScheduledEventAttributes {
            attempt: 1,
            start_to_close_timeout: Some(duration(10_000)),
            ..Default::default()
        }));
        let started_event_id = self.add(Attributes::WorkflowTaskStartedEventAttributes(WorkflowTaskStartedEventAttributes {
            scheduled_event_id,
            ..Default::default()
        }));
        self.add(Attributes::WorkflowTaskCompletedEventAttributes(WorkflowTaskCompletedEventAttributes {
            scheduled_event_id,
            started_event_id,
            ..Default::default()
        }))
    }
    fn signal(&mut self, data: &str) -> i64 {
        let input = Payloads { payloads: vec![Payload { data: data.as_bytes().to_vec(), ..Default::default() }] };
        self.add(Attributes::WorkflowExecutionSignaledEventAttributes(WorkflowExecutionSignaledEventAttributes {
            signal_name: "s".into(),
            input: Some(input),
            identity: "client".into(),
            request_id: format!("req-{data}"),
            ..Default::default()
        }))
    }
    fn timer(&mut self, timer_id: &str, after_ms: i64) -> i64 {
        self.add(Attributes::TimerStartedEventAttributes(TimerStartedEventAttributes {
            timer_id: timer_id.into(),
            start_to_fire_timeout: Some(duration(after_ms)),
            ..Default::default()
        }))
    }
}

fn spec(finish_event_id: i64) -> ResetSpec {
    ResetSpec { finish_event_id, reason: "why".into(), reapply_signals: true, reapply_updates: false }
}

fn run_reset(events: &[HistoryEvent], current_open: bool, spec: &ResetSpec) -> Result<ResetPlan, ResetError> {
    let base_key = key("base");
    let mut state = rebuild(events).expect("test history folds");
    state.start_request_id = "start-req".into();
    let current = current_open.then(|| RunView {
        key: base_key.clone(),
        state: state.clone(),
        next_event_id: events.len() as i64 + 1,
        state_version: 3,
        stored_timers: Vec::new(),
    });
    let config = EngineConfig::default();
    let mut ids = SequentialIds::new("id");
    let mut ctx = Ctx { now_ms: 100_000, config: &config, ids: &mut ids };
    let base = BaseRun { key: &base_key, state: &state, events };
    reset(&base, current, "new".into(), spec, &mut ctx)
}

fn types(events: &[HistoryEvent]) -> Vec<EventType> {
    events.iter().map(|e| EventType::try_from(e.event_type).unwrap()).collect()
}

#[test]
fn reset_to_the_first_task_copies_fails_reapplies_and_schedules() {
    let mut h = H::started();
    let first = h.task();
    h.signal("a");
    h.task();
    h.signal("b");
    let plan = run_reset(&h.0, true, &spec(first)).unwrap();
    let events = plan.new_run.events().to_vec();
    use EventType as E;
    assert_eq!(
        types(&events),
        vec![
            E::WorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskFailed,
            E::WorkflowExecutionSignaled,
            E::WorkflowExecutionSignaled,
            E::WorkflowTaskScheduled,
        ]
    );
    assert_eq!(events[..3], h.0[..3], "the prefix is copied as it is, times included");
    let Some(Attributes::WorkflowTaskFailedEventAttributes(f)) = &events[3].attributes else { panic!() };
    assert_eq!((f.scheduled_event_id, f.started_event_id), (2, 3));
    assert_eq!(f.cause, WorkflowTaskFailedCause::ResetWorkflow as i32);
    assert_eq!((f.base_run_id.as_str(), f.new_run_id.as_str(), f.identity.as_str()), ("base", "new", "history-service"));
    assert_eq!(f.failure, Some(reset_failure("why")));
    let Some(Attributes::WorkflowExecutionSignaledEventAttributes(s)) = &events[5].attributes else { panic!() };
    assert_eq!(s.request_id, "req-b", "reapplied with their request ids");
    assert_eq!(events[4].event_time, Some(crate::core::txn::timestamp(100_000)), "new events are written at the reset time");
    let s = &plan.new_run.state;
    assert_eq!(s.workflow_task.as_ref().map(|t| (t.scheduled_event_id, t.attempt)), Some((7, 1)));
    assert_eq!((s.start_time_ms, s.start_request_id.as_str(), s.first_execution_run_id.as_str()), (100_000, "start-req", "base"));
    assert!(s.is_open() && s.status == WorkflowExecutionStatus::Running as i32);
    let terminated = plan.terminated.expect("the open current run is terminated");
    let last = terminated.events().last().unwrap();
    let Some(Attributes::WorkflowExecutionTerminatedEventAttributes(t)) = &last.attributes else { panic!() };
    assert_eq!((t.reason.as_str(), t.identity.as_str()), ("why", RESETTER_IDENTITY));
    assert_eq!(terminated.state.status, WorkflowExecutionStatus::Terminated as i32);
}

#[test]
fn a_scheduled_only_task_is_started_by_the_server_then_failed() {
    let mut h = H::started();
    h.add(Attributes::WorkflowTaskScheduledEventAttributes(WorkflowTaskScheduledEventAttributes { attempt: 1, ..Default::default() }));
    h.signal("a");
    h.signal("b");
    let plan = run_reset(&h.0, false, &spec(4)).unwrap();
    let events = plan.new_run.events();
    let Some(Attributes::WorkflowTaskStartedEventAttributes(s)) = &events[3].attributes else { panic!("{:?}", types(events)) };
    assert_eq!((s.scheduled_event_id, s.identity.as_str(), s.request_id.as_str()), (2, "history-service", EMPTY_REQUEST_ID));
    assert!(plan.terminated.is_none(), "a closed current run is left alone");
}

#[test]
fn reset_points_are_checked_as_temporal_does() {
    let mut h = H::started();
    let first = h.task();
    h.signal("a");
    assert_eq!(run_reset(&h.0, true, &spec(1)).err(), Some(ResetError::FinishIdOutOfRange));
    assert_eq!(run_reset(&h.0, true, &spec(6)).err(), Some(ResetError::FinishIdOutOfRange), "past the last event");
    assert_eq!(run_reset(&h.0, true, &spec(first + 1)).err(), Some(ResetError::NotAWorkflowTaskPoint(first + 1)));
    assert_eq!(
        ResetError::NotAWorkflowTaskPoint(5).to_string(),
        "Can only reset workflow to event ID in range [WorkflowTaskScheduled +1, WorkflowTaskStarted + 1]: 5"
    );
    assert!(run_reset(&h.0, true, &spec(3)).is_ok(), "right after WorkflowTaskScheduled is a reset point too");
}

fn update_request(update_id: &str) -> temporalio_protos::protos::temporal::api::update::v1::Request {
    use temporalio_protos::protos::temporal::api::update::v1::{Input, Meta, Request};
    Request {
        meta: Some(Meta { update_id: update_id.into(), identity: "client".into() }),
        input: Some(Input { name: "add".into(), ..Default::default() }),
        ..Default::default()
    }
}

/// The base run's update `update_id` accepted (its request in the Accepted event
/// unless `durable`: then an Admitted event carries it) and completed.
fn accepted_update(h: &mut H, update_id: &str, durable: bool) {
    use temporalio_protos::protos::temporal::api::update::v1::{Meta, Outcome};
    if durable {
        h.add(Attributes::WorkflowExecutionUpdateAdmittedEventAttributes(WorkflowExecutionUpdateAdmittedEventAttributes {
            request: Some(update_request(update_id)),
            origin: UpdateAdmittedEventOrigin::Reapply as i32,
        }));
    }
    let accepted_event_id =
        h.add(Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(WorkflowExecutionUpdateAcceptedEventAttributes {
            protocol_instance_id: update_id.into(),
            accepted_request_message_id: format!("{update_id}/request"),
            accepted_request: (!durable).then(|| update_request(update_id)),
            ..Default::default()
        }));
    h.add(Attributes::WorkflowExecutionUpdateCompletedEventAttributes(WorkflowExecutionUpdateCompletedEventAttributes {
        meta: Some(Meta { update_id: update_id.into(), identity: "w".into() }),
        accepted_event_id,
        outcome: Some(Outcome::default()),
    }));
}

#[test]
fn reapply_settings_exclude_signals_and_updates() {
    let mut h = H::started();
    let first = h.task();
    h.signal("a");
    accepted_update(&mut h, "u1", false);
    let none = ResetSpec { reapply_signals: false, ..spec(first) };
    let plan = run_reset(&h.0, true, &none).unwrap();
    let written = types(plan.new_run.events());
    assert!(!written.contains(&EventType::WorkflowExecutionSignaled), "{written:?}");
    assert!(!written.contains(&EventType::WorkflowExecutionUpdateAdmitted), "{written:?}");
    assert!(plan.new_run.state.updates.is_empty());
}

#[test]
fn updates_come_back_durably_admitted_in_order_with_signals() {
    let mut h = H::started();
    let first = h.task();
    accepted_update(&mut h, "u1", false);
    h.signal("a");
    accepted_update(&mut h, "u2", true);
    h.task();
    let all = ResetSpec { reapply_updates: true, ..spec(first) };
    let plan = run_reset(&h.0, true, &all).unwrap();
    let events = plan.new_run.events();
    // Copied prefix (1..=3: Started, task Scheduled, Started), the task failed (4),
    // then u1, the signal, u2 — each update once — and a new task.
    let tail: Vec<EventType> = types(&events[4..]);
    assert_eq!(
        tail,
        vec![
            EventType::WorkflowExecutionUpdateAdmitted,
            EventType::WorkflowExecutionSignaled,
            EventType::WorkflowExecutionUpdateAdmitted,
            EventType::WorkflowTaskScheduled,
        ]
    );
    let admitted: Vec<(String, i32)> = events
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::WorkflowExecutionUpdateAdmittedEventAttributes(a)) => {
                Some((a.request.as_ref().and_then(|r| r.meta.as_ref()).map(|m| m.update_id.clone()).unwrap_or_default(), a.origin))
            }
            _ => None,
        })
        .collect();
    let reapply = UpdateAdmittedEventOrigin::Reapply as i32;
    assert_eq!(admitted, vec![("u1".to_string(), reapply), ("u2".to_string(), reapply)]);
    let state: Vec<(&str, i64, i64)> =
        plan.new_run.state.updates.iter().map(|u| (u.update_id.as_str(), u.admitted_event_id, u.accepted_event_id)).collect();
    assert_eq!(state, vec![("u1", 5, 0), ("u2", 7, 0)], "durably admitted, awaiting acceptance");
    // The new run's history folds back into the same updates.
    let rebuilt = rebuild(events).expect("the new history folds");
    assert_eq!(rebuilt.updates, plan.new_run.state.updates);
}

#[test]
fn pending_timers_and_activities_are_armed_again_and_children_refused() {
    let mut h = H::started();
    h.task();
    let timer = h.timer("t1", 60_000);
    h.add(Attributes::ActivityTaskScheduledEventAttributes(ActivityTaskScheduledEventAttributes {
        activity_id: "a1".into(),
        task_queue: Some(TaskQueue { name: "atq".into(), ..Default::default() }),
        schedule_to_close_timeout: Some(duration(30_000)),
        ..Default::default()
    }));
    let point = h.task();
    let plan = run_reset(&h.0, false, &spec(point)).unwrap();
    let s = &plan.new_run.state;
    assert_eq!(s.timers.iter().map(|t| (t.timer_id.as_str(), t.fire_time_ms)).collect::<Vec<_>>(), vec![("t1", timer * 1_000 + 60_000)]);
    let ai = s.activities.first().expect("the pending activity is kept");
    assert_eq!((ai.scheduled_time_ms, ai.attempt), (100_000, 1), "scheduled again at the reset");
    let (t, _) = plan.new_run.into_transition();
    let enqueued = t.ops.iter().filter(|op| matches!(op, hourglass_storage::state::Op::Enqueue { .. })).count();
    assert_eq!(enqueued, 2, "the activity and the new workflow task");
    let timers = t.ops.iter().filter(|op| matches!(op, hourglass_storage::state::Op::AddTimer { .. })).count();
    assert_eq!(timers, 2, "the user timer and the activity's schedule-to-close");

    let mut h = H::started();
    h.task();
    h.add(Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(Default::default()));
    let point = h.task();
    assert_eq!(run_reset(&h.0, true, &spec(point)).err(), Some(ResetError::PendingChildren));
}

#[test]
fn rebuild_refuses_histories_that_break_their_links() {
    let mut h = H::started();
    h.add(Attributes::ActivityTaskCompletedEventAttributes(ActivityTaskCompletedEventAttributes {
        scheduled_event_id: 9,
        ..Default::default()
    }));
    assert_eq!(rebuild(&h.0).unwrap_err().event_id, 2);
    let mut h = H::started();
    h.0[0].event_id = 2;
    assert!(rebuild(&h.0).is_err(), "ids are dense from 1");
    assert!(rebuild(&[]).is_ok_and(|s| s == ExecutionState::default()));
}

#[test]
fn rebuild_tracks_tasks_activities_timers_and_updates() {
    let mut h = H::started();
    h.task();
    let t = h.timer("t", 5_000);
    h.add(Attributes::TimerFiredEventAttributes(TimerFiredEventAttributes { timer_id: "t".into(), started_event_id: t }));
    h.add(Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(WorkflowExecutionUpdateAcceptedEventAttributes {
        protocol_instance_id: "u1".into(),
        ..Default::default()
    }));
    let s = rebuild(&h.0).unwrap();
    assert!(s.timers.is_empty());
    assert_eq!((s.last_completed_wft_started_id, s.workflow_task_attempt), (3, 1));
    assert_eq!(s.updates.first().map(|u| (u.update_id.as_str(), u.completed_event_id)), Some(("u1", 0)));
    assert_eq!(s.history_size_bytes, h.0.iter().map(|e| prost::Message::encoded_len(e) as i64).sum::<i64>());
}
