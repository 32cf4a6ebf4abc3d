//! Sticky queues in the core: the queue a task is scheduled on, the poll rules, the
//! schedule-to-start timeout, and failures ending stickiness (as Go's history service).

use hourglass_storage::state::{QueueKind, RunKey};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes as A;
use temporalio_protos::protos::temporal::api::taskqueue::v1::StickyExecutionAttributes;
use temporalio_protos::protos::temporal::api::workflowservice::v1::RespondWorkflowTaskFailedRequest;

use super::*;
use crate::core::state::WorkflowTaskInfo;
use crate::core::txn::duration;
use crate::core::workflow_task;

const NOW: i64 = 1_700_000_000_000;

fn sticky_state() -> ExecutionState {
    ExecutionState {
        task_queue: "tq".into(),
        workflow_task_timeout_ms: 10_000,
        last_completed_wft_started_id: 3,
        sticky: Some(StickyInfo { queue: "worker-1".into(), schedule_to_start_ms: 5_000 }),
        ..Default::default()
    }
}

fn txn(state: ExecutionState) -> RunTxn {
    let key = RunKey { namespace: "default".into(), workflow_id: "wf".into(), run_id: "run".into() };
    RunTxn::existing(key, NOW, state, 5, 1)
}

fn attributes(queue: &str, timeout_ms: i64) -> StickyExecutionAttributes {
    StickyExecutionAttributes {
        worker_task_queue: Some(TaskQueue { name: queue.into(), kind: TaskQueueKind::Sticky as i32, normal_name: "tq".into() }),
        schedule_to_start_timeout: Some(duration(timeout_ms)),
    }
}

#[test]
fn a_completion_sets_or_clears_stickiness() {
    let mut state = ExecutionState::default();
    on_completion(&mut state, Some(&attributes("worker-1", 10_000)));
    assert_eq!(state.sticky, Some(StickyInfo { queue: "worker-1".into(), schedule_to_start_ms: 10_000 }));
    on_completion(&mut state, Some(&StickyExecutionAttributes::default()));
    assert_eq!(state.sticky, None, "attributes naming no queue end stickiness");
    on_completion(&mut state, Some(&attributes("worker-1", 10_000)));
    on_completion(&mut state, None);
    assert_eq!(state.sticky, None, "a completion without attributes ends stickiness");
}

#[test]
fn a_sticky_task_is_scheduled_on_the_sticky_queue_with_its_timer() {
    let mut t = txn(sticky_state());
    let id = wft::schedule_workflow_task(&mut t, 1);
    let Some(A::WorkflowTaskScheduledEventAttributes(a)) = t.events()[0].attributes.clone() else { panic!("scheduled event") };
    assert_eq!(a.task_queue, Some(TaskQueue { name: "worker-1".into(), kind: TaskQueueKind::Sticky as i32, normal_name: "tq".into() }));
    assert_eq!(t.state.workflow_task.as_ref().map(|w| w.task_queue.as_str()), Some("worker-1"));
    let (_, effects) = t.into_transition();
    assert_eq!(effects.enqueued.len(), 1);
    assert_eq!(effects.enqueued[0].queue.name, "worker-1");
    assert_eq!(effects.enqueued[0].queue.kind, QueueKind::Workflow);
    assert_eq!(effects.enqueued[0].payload.normal_queue, "tq", "matching can send it to the normal queue");
    assert_eq!(effects.enqueued[0].payload.scheduled_event_id, id);
    assert_eq!(effects.timers_added, 1, "the schedule-to-start timer");
}

#[test]
fn a_normal_task_has_no_timer_and_no_normal_queue() {
    let mut t = txn(ExecutionState { sticky: None, ..sticky_state() });
    wft::schedule_workflow_task(&mut t, 1);
    let (_, effects) = t.into_transition();
    assert_eq!(effects.enqueued[0].queue.name, "tq");
    assert!(effects.enqueued[0].payload.normal_queue.is_empty());
    assert_eq!(effects.timers_added, 0);
}

#[test]
fn poll_rules() {
    let sticky = sticky_state();
    assert_eq!(poll_fit(&sticky, "worker-1"), PollFit::Start);
    assert_eq!(poll_fit(&sticky, "tq"), PollFit::StartUnstuck);
    let normal = ExecutionState { sticky: None, ..sticky };
    assert_eq!(poll_fit(&normal, "tq"), PollFit::Start);
    assert_eq!(poll_fit(&normal, "worker-1"), PollFit::Stale, "a sticky queue the run left");
}

/// A run whose task 5 (attempt 1) is scheduled on the queue `state` says.
fn scheduled(mut state: ExecutionState) -> RunTxn {
    let queue = sticky_queue(&state).unwrap_or("tq").to_string();
    state.workflow_task = Some(WorkflowTaskInfo { scheduled_event_id: 5, attempt: 1, task_queue: queue, ..Default::default() });
    RunTxn::existing(RunKey { namespace: "default".into(), workflow_id: "wf".into(), run_id: "run".into() }, NOW + 5_000, state, 6, 2)
}

#[test]
fn schedule_to_start_timeout_falls_back_to_the_normal_queue() {
    let mut t = scheduled(sticky_state());
    assert!(!time_out_schedule_to_start(&mut t, 5, 2), "another attempt's timer is stale");
    assert!(!time_out_schedule_to_start(&mut t, 4, 1), "another task's timer is stale");
    assert!(time_out_schedule_to_start(&mut t, 5, 1));
    let Some(A::WorkflowTaskTimedOutEventAttributes(timed_out)) = t.events()[0].attributes.clone() else { panic!("timed out") };
    assert_eq!((timed_out.scheduled_event_id, timed_out.started_event_id), (5, 0));
    assert_eq!(timed_out.timeout_type, TimeoutType::ScheduleToStart as i32);
    let Some(A::WorkflowTaskScheduledEventAttributes(again)) = t.events()[1].attributes.clone() else { panic!("scheduled") };
    assert_eq!(again.task_queue.as_ref().map(|q| (q.name.as_str(), q.kind)), Some(("tq", TaskQueueKind::Normal as i32)));
    assert_eq!(again.attempt, 1, "not a failed attempt");
    assert_eq!(t.state.sticky, None);
}

#[test]
fn a_started_task_ignores_its_schedule_to_start_timer() {
    let mut t = scheduled(sticky_state());
    if let Some(wt) = t.state.workflow_task.as_mut() {
        wt.started_event_id = 6;
    }
    assert!(!time_out_schedule_to_start(&mut t, 5, 1));
    assert!(t.events().is_empty());
}

#[test]
fn a_failure_on_the_sticky_queue_retries_on_the_normal_queue_as_attempt_one() {
    let mut t = scheduled(sticky_state());
    let wt = WorkflowTaskInfo { started_event_id: 6, ..t.state.workflow_task.clone().unwrap_or_default() };
    t.state.workflow_task = Some(wt.clone());
    workflow_task::fail(&mut t, &wt, RespondWorkflowTaskFailedRequest::default());
    assert_eq!(t.state.sticky, None);
    let Some(A::WorkflowTaskScheduledEventAttributes(again)) = t.events()[1].attributes.clone() else { panic!("scheduled") };
    assert_eq!(again.task_queue.map(|q| q.name), Some("tq".to_string()));
    assert_eq!(again.attempt, 1);
    assert_eq!(t.state.workflow_task.as_ref().map(|w| w.attempt), Some(1));
}

#[test]
fn a_failure_off_sticky_counts_the_attempt() {
    let mut state = sticky_state();
    state.sticky = None;
    let mut t = scheduled(state);
    let wt = WorkflowTaskInfo { started_event_id: 6, task_queue: "tq".into(), ..t.state.workflow_task.clone().unwrap_or_default() };
    t.state.workflow_task = Some(wt.clone());
    workflow_task::fail(&mut t, &wt, RespondWorkflowTaskFailedRequest::default());
    assert_eq!(t.state.workflow_task.as_ref().map(|w| w.attempt), Some(2));
}
