//! The retry and cron rules on fixed clocks, through the same entry points the engine
//! uses (a completed workflow task's commands, a run timeout), against what Temporal's
//! server recorded for the same cases.

use hourglass_storage::state::Op;
use temporalio_protos::protos::temporal::api::command::v1::{
    command::Attributes as Cmd, Command, CompleteWorkflowExecutionCommandAttributes, FailWorkflowExecutionCommandAttributes,
};
use temporalio_protos::protos::temporal::api::common::v1::{Payload, RetryPolicy};
use temporalio_protos::protos::temporal::api::enums::v1::{CommandType, EventType, WorkflowExecutionStatus};
use temporalio_protos::protos::temporal::api::failure::v1::{failure::FailureInfo, ApplicationFailureInfo};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::workflowservice::v1::RespondWorkflowTaskCompletedRequest;

use super::*;
use crate::core::commands::{self, Completed};
use crate::core::lifecycle::{self, TimeoutOutcome};
use crate::core::state::{ParentInfo, WorkflowTaskInfo};
use crate::core::tasks::{TimerKind, TimerPayload};
use crate::core::txn::duration;
use crate::core::SequentialIds;

const T0: i64 = 1_800_000_000_000;

fn key() -> RunKey {
    RunKey { namespace: "ns".into(), workflow_id: "wf".into(), run_id: "run-1".into() }
}

fn spec(retry_policy: Option<RetryPolicy>, cron_schedule: &str) -> RunSpec {
    RunSpec {
        workflow_type: "Wf".into(),
        task_queue: "tq".into(),
        input: Some(Payloads { payloads: vec![Payload { data: b"in".to_vec(), ..Default::default() }] }),
        timeouts: Timeouts::normalize(0, 0, 0, &EngineConfig::default()),
        identity: "client".into(),
        request_id: "req".into(),
        retry_policy,
        cron_schedule: cron_schedule.into(),
        ..Default::default()
    }
}

fn policy(maximum_attempts: i32) -> Option<RetryPolicy> {
    Some(retry::with_defaults(Some(RetryPolicy { maximum_attempts, ..Default::default() })))
}

/// A run started at [`T0`] from `spec`, its first workflow task started, seen at `now`.
fn running(spec: &RunSpec, now: i64) -> (RunTxn, Started) {
    let mut created = run::new_run(key(), T0, spec);
    run::begin_run(&mut created);
    let started = match created.events()[0].attributes.clone() {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => a,
        other => panic!("{other:?}"),
    };
    let mut state = created.state.clone();
    state.workflow_task =
        Some(WorkflowTaskInfo { scheduled_event_id: 2, started_event_id: 3, attempt: 1, task_queue: "tq".into(), ..Default::default() });
    (RunTxn::existing(key(), now, state, 4, 1), started)
}

fn command(kind: CommandType, attributes: Cmd) -> RespondWorkflowTaskCompletedRequest {
    RespondWorkflowTaskCompletedRequest {
        commands: vec![Command { command_type: kind as i32, attributes: Some(attributes), ..Default::default() }],
        ..Default::default()
    }
}

fn app_failure(kind: &str) -> Failure {
    Failure {
        message: "boom".into(),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo { r#type: kind.into(), ..Default::default() })),
        ..Default::default()
    }
}

fn fail_cmd(failure: Failure) -> RespondWorkflowTaskCompletedRequest {
    let attrs = FailWorkflowExecutionCommandAttributes { failure: Some(failure) };
    command(CommandType::FailWorkflowExecution, Cmd::FailWorkflowExecutionCommandAttributes(attrs))
}

fn result(data: &[u8]) -> Option<Payloads> {
    Some(Payloads { payloads: vec![Payload { data: data.to_vec(), ..Default::default() }] })
}

fn complete_cmd(data: &[u8]) -> RespondWorkflowTaskCompletedRequest {
    let attrs = CompleteWorkflowExecutionCommandAttributes { result: result(data) };
    command(CommandType::CompleteWorkflowExecution, Cmd::CompleteWorkflowExecutionCommandAttributes(attrs))
}

/// Completes the started task with `req`; (the closed run, its successor).
fn close_with(txn: RunTxn, started: &Started, req: RespondWorkflowTaskCompletedRequest) -> (RunTxn, Option<RunTxn>) {
    let wt = txn.state.workflow_task.clone().expect("a started task");
    let config = EngineConfig::default();
    let mut ids = SequentialIds::new("new");
    let mut ctx = Ctx { now_ms: txn.now_ms, config: &config, ids: &mut ids };
    match commands::complete(txn, &wt, req, Some(started), Default::default(), &mut ctx) {
        Ok(Completed { txn, new_run, .. }) => (txn, new_run),
        Err(refusal) => panic!("refused: {refusal:?}"),
    }
}

fn close_event(txn: &RunTxn) -> Attributes {
    txn.events().last().and_then(|e| e.attributes.clone()).expect("a close event")
}

fn started_of(txn: &RunTxn) -> Started {
    match txn.events()[0].attributes.clone() {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => a,
        other => panic!("not a Started event: {other:?}"),
    }
}

/// The (kind, due) of every timer `txn` arms.
fn timers(txn: RunTxn) -> Vec<(TimerKind, i64)> {
    let (t, _) = txn.into_transition();
    t.ops
        .iter()
        .filter_map(|op| match op {
            Op::AddTimer { due_ms, payload, .. } => {
                let p = <TimerPayload as prost::Message>::decode(payload.as_ref()).expect("decodes");
                Some((TimerKind::try_from(p.kind).expect("known kind"), *due_ms))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_failed_run_with_attempts_left_is_retried_after_the_backoff() {
    let now = T0 + 240;
    let (txn, started) = running(&spec(policy(0), ""), now);
    let (closed, new_run) = close_with(txn, &started, fail_cmd(app_failure("Flaky")));
    let Attributes::WorkflowExecutionFailedEventAttributes(failed) = close_event(&closed) else { panic!() };
    assert_eq!(failed.retry_state, RetryState::InProgress as i32);
    assert_eq!(failed.new_execution_run_id, "new-1");
    assert_eq!(closed.state.status, WorkflowExecutionStatus::Failed as i32);
    assert_eq!(closed.state.new_execution_run_id, "new-1");

    let new_run = new_run.expect("a retry");
    assert_eq!(new_run.key.run_id, "new-1");
    let a = started_of(&new_run);
    assert_eq!(a.attempt, 2);
    assert_eq!(a.initiator, ContinueAsNewInitiator::Retry as i32);
    assert_eq!(a.first_workflow_task_backoff, Some(duration(1_000)));
    assert_eq!(a.continued_execution_run_id, "run-1");
    assert_eq!(a.first_execution_run_id, "run-1");
    assert_eq!(a.original_execution_run_id, "new-1");
    assert_eq!(a.continued_failure.as_ref().map(|f| f.message.as_str()), Some("boom"));
    assert_eq!(a.last_completion_result, None);
    assert_eq!(a.identity, "", "Temporal names no identity on a retry");
    assert_eq!(a.workflow_run_timeout, None, "echoes the first run's (unset) run timeout");
    assert_eq!(a.input, started.input);
    assert_eq!(a.retry_policy, policy(0));
    assert_eq!(new_run.state.attempt, 2);
    assert_eq!(new_run.state.execution_time_ms, now + 1_000);
    assert_eq!(new_run.events().len(), 1, "no workflow task until the backoff is over");
    assert_eq!(timers(new_run), vec![(TimerKind::WorkflowStartBackoff, now + 1_000)]);
}

#[test]
fn the_backoff_grows_with_the_attempt() {
    let mut s = spec(policy(0), "");
    s.attempt = 2;
    let (txn, started) = running(&s, T0 + 100);
    let (_, new_run) = close_with(txn, &started, fail_cmd(app_failure("Flaky")));
    let a = started_of(&new_run.expect("a retry"));
    assert_eq!((a.attempt, a.first_workflow_task_backoff), (3, Some(duration(2_000))));
}

#[test]
fn retries_end_with_the_retry_state_temporal_reports() {
    let cases = [
        (spec(None, ""), app_failure("X"), RetryState::RetryPolicyNotSet),
        (spec(policy(1), ""), app_failure("X"), RetryState::MaximumAttemptsReached),
        (
            spec(Some(retry::with_defaults(Some(RetryPolicy { non_retryable_error_types: vec!["Bad".into()], ..Default::default() }))), ""),
            app_failure("Bad"),
            RetryState::NonRetryableFailure,
        ),
    ];
    for (s, failure, expected) in cases {
        let (txn, started) = running(&s, T0 + 100);
        let (closed, new_run) = close_with(txn, &started, fail_cmd(failure));
        let Attributes::WorkflowExecutionFailedEventAttributes(failed) = close_event(&closed) else { panic!() };
        assert_eq!(failed.retry_state, expected as i32);
        assert_eq!(failed.new_execution_run_id, "");
        assert!(new_run.is_none());
        assert_eq!(closed.state.new_execution_run_id, "");
    }
    // The next run would start after the execution deadline: TIMEOUT.
    let mut s = spec(policy(0), "");
    s.timeouts = Timeouts::normalize(3_000, 0, 0, &EngineConfig::default());
    let (txn, started) = running(&s, T0 + 2_500);
    let (closed, new_run) = close_with(txn, &started, fail_cmd(app_failure("X")));
    let Attributes::WorkflowExecutionFailedEventAttributes(failed) = close_event(&closed) else { panic!() };
    assert_eq!((failed.retry_state, new_run.is_none()), (RetryState::Timeout as i32, true));
}

#[test]
fn runs_of_a_chain_start_at_least_a_second_apart() {
    let mut failure = app_failure("X");
    if let Some(FailureInfo::ApplicationFailureInfo(a)) = failure.failure_info.as_mut() {
        a.next_retry_delay = Some(duration(100));
    }
    let (txn, started) = running(&spec(policy(0), ""), T0 + 200);
    let (_, new_run) = close_with(txn, &started, fail_cmd(failure.clone()));
    assert_eq!(started_of(&new_run.expect("a retry")).first_workflow_task_backoff, Some(duration(800)));
    // Recorded from Temporal: 100 ms asked for, 186 ms after the run's start → 814 ms.
    let (txn, started) = running(&spec(policy(0), ""), T0 + 186);
    let (_, new_run) = close_with(txn, &started, fail_cmd(failure));
    assert_eq!(started_of(&new_run.expect("a retry")).first_workflow_task_backoff, Some(duration(814)));
}

#[test]
fn a_cron_run_started_early_keeps_its_schedule_backoff() {
    // Recorded from Temporal: a run due at 41.785 (@every 2s) was cancel-requested
    // during its backoff, ran at once and completed at 40.148: the next run waits for
    // 41.785, rounded up to 2 s, with no minimum interval added.
    let mut s = spec(None, "@every 2s");
    s.cron_schedule = "@every 2s".into();
    let (mut txn, started) = running(&s, 40_148);
    txn.state.execution_time_ms = 41_785;
    let (_, new_run) = close_with(txn, &started, complete_cmd(b"r"));
    assert_eq!(started_of(&new_run.expect("the next cron run")).first_workflow_task_backoff, Some(duration(2_000)));
}

#[test]
fn a_run_timeout_is_retried_and_the_execution_timeout_ends_the_chain() {
    let mut s = spec(policy(3), "");
    s.timeouts = Timeouts::normalize(0, 2_000, 0, &EngineConfig::default());
    let (mut txn, started) = running(&s, T0 + 2_000);
    let config = EngineConfig::default();
    let mut ids = SequentialIds::new("new");
    let mut ctx = Ctx { now_ms: txn.now_ms, config: &config, ids: &mut ids };
    let TimeoutOutcome::TimedOut { new_run: Some(new_run) } = lifecycle::on_timeout(&mut txn, false, Some(&started), &mut ctx) else {
        panic!("a retry")
    };
    let kinds: Vec<i32> = txn.events().iter().map(|e| e.event_type).collect();
    assert_eq!(
        kinds,
        [EventType::WorkflowTaskFailed as i32, EventType::WorkflowExecutionTimedOut as i32],
        "the started task is force-closed"
    );
    let Attributes::WorkflowExecutionTimedOutEventAttributes(timed_out) = close_event(&txn) else { panic!() };
    assert_eq!((timed_out.retry_state, timed_out.new_execution_run_id.as_str()), (RetryState::InProgress as i32, "new-1"));
    let a = started_of(&new_run);
    assert_eq!(a.continued_failure, Some(lifecycle::run_timeout_failure()));
    assert_eq!(a.workflow_run_timeout, Some(duration(2_000)));
    // The run timeout counts from the end of the backoff.
    assert_eq!(timers(*new_run), vec![(TimerKind::WorkflowStartBackoff, T0 + 3_000), (TimerKind::WorkflowRunTimeout, T0 + 5_000)]);

    let mut s = spec(policy(0), "");
    s.timeouts = Timeouts::normalize(3_000, 0, 0, &EngineConfig::default());
    let (mut txn, started) = running(&s, T0 + 3_000);
    let mut ids = SequentialIds::new("new");
    let mut ctx = Ctx { now_ms: txn.now_ms, config: &config, ids: &mut ids };
    assert!(matches!(lifecycle::on_timeout(&mut txn, true, Some(&started), &mut ctx), TimeoutOutcome::TimedOut { new_run: None }));
    let Attributes::WorkflowExecutionTimedOutEventAttributes(timed_out) = close_event(&txn) else { panic!() };
    assert_eq!(timed_out.retry_state, RetryState::Timeout as i32);
    // Without a retry policy a run timeout reports RETRY_POLICY_NOT_SET.
    let mut s = spec(None, "");
    s.timeouts = Timeouts::normalize(0, 2_000, 0, &EngineConfig::default());
    let (mut txn, _) = running(&s, T0 + 2_000);
    let mut ids = SequentialIds::new("new");
    let mut ctx = Ctx { now_ms: txn.now_ms, config: &config, ids: &mut ids };
    assert!(matches!(lifecycle::on_timeout(&mut txn, false, None, &mut ctx), TimeoutOutcome::TimedOut { new_run: None }));
    let Attributes::WorkflowExecutionTimedOutEventAttributes(timed_out) = close_event(&txn) else { panic!() };
    assert_eq!(timed_out.retry_state, RetryState::RetryPolicyNotSet as i32);
}

#[test]
fn a_cron_chain_starts_each_run_at_the_next_schedule_time() {
    // Recorded from Temporal: started at .919 with `@every 2s` → first task 2 s later.
    let first = run::new_run(key(), 33_919, &spec(None, "@every 2s"));
    let a = started_of(&first);
    assert_eq!(a.initiator, ContinueAsNewInitiator::CronSchedule as i32);
    assert_eq!(a.first_workflow_task_backoff, Some(duration(2_000)));
    assert_eq!(a.cron_schedule, "@every 2s");
    assert_eq!(first.state.execution_time_ms, 35_919);

    // That run completes at 36.606: the next one waits for 37.000 (rounded up: 1 s).
    let mut s = spec(None, "@every 2s");
    s.start_delay_ms = 0;
    let mut created = run::new_run(key(), 33_919, &s);
    run::begin_run(&mut created);
    let started = started_of(&created);
    let mut state = created.state.clone();
    state.workflow_task = Some(WorkflowTaskInfo { scheduled_event_id: 2, started_event_id: 3, attempt: 1, ..Default::default() });
    let txn = RunTxn::existing(key(), 36_606, state, 4, 1);
    let (closed, new_run) = close_with(txn, &started, complete_cmd(b"r1"));
    let Attributes::WorkflowExecutionCompletedEventAttributes(done) = close_event(&closed) else { panic!() };
    assert_eq!(done.new_execution_run_id, "new-1");
    assert_eq!(closed.state.status, WorkflowExecutionStatus::Completed as i32);
    let new_run = new_run.expect("the next cron run");
    let a = started_of(&new_run);
    assert_eq!(a.initiator, ContinueAsNewInitiator::CronSchedule as i32);
    assert_eq!(a.first_workflow_task_backoff, Some(duration(1_000)));
    assert_eq!(a.last_completion_result, result(b"r1"));
    assert_eq!(a.continued_failure, None);
    assert_eq!(a.attempt, 1);
    assert_eq!(a.cron_schedule, "@every 2s");
    assert_eq!(a.first_execution_run_id, "run-1");
    assert_eq!(new_run.state.cron_schedule, "@every 2s");
}

#[test]
fn cron_takes_over_once_retries_are_exhausted() {
    let mut s = spec(policy(2), "@every 3s");
    s.attempt = 2;
    let (mut txn, mut started) = running(&s, T0 + 3_500);
    started.last_completion_result = result(b"earlier");
    txn.state.execution_time_ms = T0 + 3_000;
    let (closed, new_run) = close_with(txn, &started, fail_cmd(app_failure("X")));
    let Attributes::WorkflowExecutionFailedEventAttributes(failed) = close_event(&closed) else { panic!() };
    assert_eq!(failed.retry_state, RetryState::MaximumAttemptsReached as i32);
    assert_eq!(failed.new_execution_run_id, "new-1");
    let a = started_of(&new_run.expect("the next cron run"));
    assert_eq!((a.initiator, a.attempt), (ContinueAsNewInitiator::CronSchedule as i32, 1));
    assert_eq!(a.continued_failure.as_ref().map(|f| f.message.as_str()), Some("boom"));
    assert_eq!(a.last_completion_result, result(b"earlier"), "a failed cron run hands on the last completion result it got");
    // 1_800_000_003.000 is a schedule time (every 3 s); now is .500 past it → the next, 6.000.
    assert_eq!(a.first_workflow_task_backoff, Some(duration(3_000)));
}

#[test]
fn a_retried_child_leaves_the_report_to_its_last_run() {
    let mut s = spec(policy(0), "");
    s.parent = Some(ParentInfo { namespace: "ns".into(), workflow_id: "p".into(), run_id: "pr".into(), initiated_event_id: 5 });
    let (txn, started) = running(&s, T0 + 100);
    let (closed, new_run) = close_with(txn, &started, fail_cmd(app_failure("X")));
    assert!(!timers(closed).iter().any(|(kind, _)| *kind == TimerKind::NotifyParent));
    let new_run = new_run.expect("a retry");
    assert_eq!(new_run.state.parent, s.parent, "the new run keeps the parent");

    let (txn, started) = running(&spec(None, ""), T0 + 100);
    let mut txn = txn;
    txn.state.parent = s.parent.clone();
    let (closed, _) = close_with(txn, &started, fail_cmd(app_failure("X")));
    assert!(timers(closed).iter().any(|(kind, _)| *kind == TimerKind::NotifyParent));
}

#[test]
fn terminate_ends_the_chain() {
    let (mut txn, _) = running(&spec(policy(0), "@every 2s"), T0 + 100);
    lifecycle::terminate(&mut txn, "enough".into(), None, "me".into());
    assert_eq!(txn.state.new_execution_run_id, "");
    assert_eq!(txn.state.status, WorkflowExecutionStatus::Terminated as i32);
    assert!(!timers(txn).iter().any(|(kind, _)| *kind == TimerKind::WorkflowStartBackoff));
}
