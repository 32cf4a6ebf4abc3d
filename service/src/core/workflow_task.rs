//! The workflow task lifecycle: a poll starts the task, the worker fails it or its
//! start-to-close timer times it out, and a task that did not complete is retried.
//! Completions are [`super::commands`].

use hourglass_storage::state::{QueueKey, RunKey};
use temporalio_protos::protos::temporal::api::common::v1::WorkerVersionStamp;
use temporalio_protos::protos::temporal::api::enums::v1::{SuggestContinueAsNewReason, TimeoutType};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    WorkflowTaskFailedEventAttributes, WorkflowTaskStartedEventAttributes, WorkflowTaskTimedOutEventAttributes,
};
use temporalio_protos::protos::temporal::api::workflowservice::v1::RespondWorkflowTaskFailedRequest;

use super::error::WorkflowTaskError;
use super::state::{ExecutionState, WorkflowTaskInfo};
use super::sticky;
use super::tasks::{TaskKind, TaskPayload, TimerKind, TimerPayload};
use super::token::TaskToken;
use super::txn::RunTxn;
use super::{wft, EngineConfig};

/// From this attempt on, the start-to-close timeout grows (Go: the retry backoff of
/// a failing workflow task is folded into its timeout).
const RETRY_BACKOFF_MIN_ATTEMPTS: i32 = 3;
const RETRY_BACKOFF_INITIAL_MS: i64 = 5_000;
const RETRY_BACKOFF_MAX_MS: i64 = 600_000;

/// Who polled, as recorded in WorkflowTaskStarted.
#[derive(Debug, Clone, Default)]
pub struct Poller {
    pub identity: String,
    /// `worker_version_capabilities.build_id` of the poll, if any.
    pub build_id: String,
}

/// The run a task token names.
pub fn token_run(token: &TaskToken) -> RunKey {
    RunKey { namespace: token.namespace.clone(), workflow_id: token.workflow_id.clone(), run_id: token.run_id.clone() }
}

/// The started workflow task `token` names, or `NotFound` (as Go: the worker then
/// drops its copy of the run and the next task replays).
pub fn current_task(state: &ExecutionState, token: &TaskToken) -> Result<WorkflowTaskInfo, WorkflowTaskError> {
    // A token of another kind names no workflow task (Temporal: NotFound).
    if token.kind != TaskKind::WorkflowTask as i32 || !token.query_id.is_empty() {
        return Err(WorkflowTaskError::NotFound);
    }
    if !state.is_open() {
        return Err(WorkflowTaskError::RunCompleted);
    }
    match &state.workflow_task {
        Some(wt)
            if wt.started_event_id > 0
                && wt.scheduled_event_id == token.scheduled_event_id
                && wt.started_event_id == token.started_event_id
                && wt.attempt == token.attempt
                && token.started_time_ms == wt.started_time_ms =>
        {
            Ok(wt.clone())
        }
        _ => Err(WorkflowTaskError::NotFound),
    }
}

/// The scheduled, not yet started workflow task the backlog task `payload` names, if
/// it is still the run's current one (and the run is open).
pub fn pending_task(state: &ExecutionState, payload: &TaskPayload) -> Option<WorkflowTaskInfo> {
    let wt = state.workflow_task.as_ref()?;
    let current = payload.kind == TaskKind::WorkflowTask as i32
        && wt.scheduled_event_id == payload.scheduled_event_id
        && wt.attempt == payload.attempt
        && wt.started_event_id == 0;
    (current && state.is_open()).then(|| wt.clone())
}

/// A poller of queue `polled` (a name) takes the task `wt` (backlog task `task_id` of
/// `queue`): WorkflowTaskStarted, the task acknowledged, the start-to-close timer
/// armed; returns the Started event id. A sticky task polled from the normal queue
/// ends stickiness first ([`sticky::poll_fit`]; the caller skips
/// [`sticky::PollFit::Stale`] polls). `request_id`: a fresh id for the attempt;
/// `config`: the default task timeout (when the task has none) and the history limits
/// that suggest continue-as-new.
pub fn start(
    txn: &mut RunTxn,
    wt: &WorkflowTaskInfo,
    (queue, task_id): (&QueueKey, u64),
    polled: &str,
    poller: &Poller,
    request_id: String,
    config: &EngineConfig,
) -> i64 {
    if sticky::poll_fit(&txn.state, polled) == sticky::PollFit::StartUnstuck {
        sticky::clear(&mut txn.state);
    }
    txn.ack(queue.clone(), task_id);
    start_unqueued(txn, wt, poller, request_id, config)
}

/// Starts the scheduled task `wt` that is in no backlog (eager dispatch:
/// WorkflowTaskStarted and the start-to-close timer); returns the Started event id.
pub fn start_unqueued(txn: &mut RunTxn, wt: &WorkflowTaskInfo, poller: &Poller, request_id: String, config: &EngineConfig) -> i64 {
    let started_event_id = record_started(txn, wt, poller, request_id, config);
    drop_timers(txn, TimerKind::WorkflowTaskScheduleToStart);
    let base_timeout = if wt.timeout_ms > 0 { wt.timeout_ms } else { config.default_workflow_task_timeout_ms };
    let timer = TimerPayload {
        kind: TimerKind::WorkflowTaskStartToClose as i32,
        event_id: wt.scheduled_event_id,
        attempt: wt.attempt,
        timer_id: String::new(),
    };
    txn.add_timer(txn.now_ms.saturating_add(start_to_close_ms(base_timeout, wt.attempt)), timer);
    started_event_id
}

/// Why a workflow task started now should suggest continue-as-new (Temporal's
/// `getHistorySizeInfo`): the history's size before the Started event, and its length
/// counting the Started event (`next_event_id`), against `config`'s limits.
pub fn suggest_continue_as_new_reasons(history_size_bytes: i64, next_event_id: i64, config: &EngineConfig) -> Vec<i32> {
    let mut reasons = Vec::new();
    if history_size_bytes >= config.suggest_continue_as_new_history_bytes {
        reasons.push(SuggestContinueAsNewReason::HistorySizeTooLarge as i32);
    }
    if next_event_id >= config.suggest_continue_as_new_history_events {
        reasons.push(SuggestContinueAsNewReason::TooManyHistoryEvents as i32);
    }
    reasons
}

/// Adds WorkflowTaskStarted for `wt` and marks it started; returns the event id.
fn record_started(txn: &mut RunTxn, wt: &WorkflowTaskInfo, poller: &Poller, request_id: String, config: &EngineConfig) -> i64 {
    let history_size_bytes = txn.state.history_size_bytes;
    let reasons = suggest_continue_as_new_reasons(history_size_bytes, txn.next_event_id(), config);
    #[allow(deprecated)]
    let attributes = WorkflowTaskStartedEventAttributes {
        scheduled_event_id: wt.scheduled_event_id,
        identity: poller.identity.clone(),
        request_id: request_id.clone(),
        suggest_continue_as_new: !reasons.is_empty(),
        suggest_continue_as_new_reasons: reasons,
        history_size_bytes,
        worker_version: (!poller.build_id.is_empty())
            .then(|| WorkerVersionStamp { build_id: poller.build_id.clone(), use_versioning: false }),
        ..Default::default()
    };
    let started = Attributes::WorkflowTaskStartedEventAttributes(attributes);
    let started_event_id = if txn.state.workflow_task_speculative() { txn.hold_speculative_event(started) } else { txn.add_event(started) };
    let now = txn.now_ms;
    if let Some(task) = txn.state.workflow_task.as_mut() {
        task.started_event_id = started_event_id;
        task.started_time_ms = now;
        task.identity = poller.identity.clone();
        task.request_id = request_id;
    }
    started_event_id
}

/// Start-to-close timeout of `attempt`: the workflow's, plus a growing backoff once a
/// task keeps failing (so a broken workflow is retried ever more slowly).
pub fn start_to_close_ms(base_ms: i64, attempt: i32) -> i64 {
    if attempt <= RETRY_BACKOFF_MIN_ATTEMPTS {
        return base_ms;
    }
    let doublings = (attempt - RETRY_BACKOFF_MIN_ATTEMPTS - 1).clamp(0, 20) as u32;
    let backoff = RETRY_BACKOFF_INITIAL_MS.saturating_mul(1i64 << doublings).min(RETRY_BACKOFF_MAX_MS);
    base_ms.saturating_add(backoff)
}

/// Removes, in `txn`, the run's stored start-to-close timers of workflow tasks. Call
/// when the started task ends: the timer would only fire stale, and costs a write to
/// remove then.
pub fn drop_start_to_close_timers(txn: &mut RunTxn) {
    drop_timers(txn, TimerKind::WorkflowTaskStartToClose);
}

/// Removes, in `txn`, the run's stored timers of `kind` (a started task's sticky
/// schedule-to-start timer would only fire stale, and cost a write to remove then).
fn drop_timers(txn: &mut RunTxn, kind: TimerKind) {
    let ids: Vec<u64> = txn.stored_timers().filter(|(_, t)| t.kind == kind as i32).map(|(id, _)| id).collect();
    for id in ids {
        txn.remove_timer(id);
    }
}

/// After WorkflowTaskFailed/TimedOut of `attempt`: the events buffered meanwhile are
/// written, and (if the run is open) the task is scheduled again with `attempt + 1`.
/// A task that fails on a sticky queue ends stickiness and is retried on the normal
/// queue as attempt 1 (Go's `failWorkflowTask`: the attempt grows only off sticky).
pub fn retry_workflow_task(txn: &mut RunTxn, attempt: i32) {
    txn.flush_buffered_events();
    txn.state.workflow_task = None;
    let was_sticky = sticky::clear(&mut txn.state);
    if !txn.state.is_open() {
        return;
    }
    let next = if was_sticky { 1 } else { attempt.max(1).saturating_add(1) };
    txn.state.workflow_task_attempt = next;
    wft::schedule_workflow_task(txn, next);
}

/// `RespondWorkflowTaskFailed` of the started task `wt`: WorkflowTaskFailed, then the
/// task again (attempt + 1).
pub fn fail(txn: &mut RunTxn, wt: &WorkflowTaskInfo, req: RespondWorkflowTaskFailedRequest) {
    #[allow(deprecated)]
    let attributes = WorkflowTaskFailedEventAttributes {
        scheduled_event_id: wt.scheduled_event_id,
        started_event_id: wt.started_event_id,
        cause: req.cause,
        failure: req.failure,
        identity: req.identity,
        binary_checksum: req.binary_checksum,
        worker_version: req.worker_version,
        ..Default::default()
    };
    txn.add_event(Attributes::WorkflowTaskFailedEventAttributes(attributes));
    retry_workflow_task(txn, wt.attempt);
    drop_start_to_close_timers(txn);
}

/// The start-to-close timer of workflow task (`scheduled_event_id`, `attempt`) fired:
/// if that task is still the started one, WorkflowTaskTimedOut and the task again
/// (attempt + 1); false (nothing changed) for a stale timer.
pub fn time_out(txn: &mut RunTxn, scheduled_event_id: i64, attempt: i32) -> bool {
    let current = txn
        .state
        .workflow_task
        .clone()
        .filter(|wt| wt.scheduled_event_id == scheduled_event_id && wt.attempt == attempt && wt.started_event_id > 0);
    let Some(wt) = current.filter(|_| txn.state.is_open()) else { return false };
    txn.add_event(Attributes::WorkflowTaskTimedOutEventAttributes(WorkflowTaskTimedOutEventAttributes {
        scheduled_event_id: wt.scheduled_event_id,
        started_event_id: wt.started_event_id,
        timeout_type: TimeoutType::StartToClose as i32,
    }));
    retry_workflow_task(txn, wt.attempt);
    drop_start_to_close_timers(txn);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use hourglass_storage::state::QueueKind;

    fn limits(events: i64, bytes: i64) -> EngineConfig {
        EngineConfig {
            suggest_continue_as_new_history_events: events,
            suggest_continue_as_new_history_bytes: bytes,
            ..EngineConfig::default()
        }
    }

    fn started_attributes(txn: &RunTxn, event_id: i64) -> WorkflowTaskStartedEventAttributes {
        let event = txn.events().iter().find(|e| e.event_id == event_id).expect("the Started event");
        match &event.attributes {
            Some(Attributes::WorkflowTaskStartedEventAttributes(a)) => a.clone(),
            other => panic!("not WorkflowTaskStarted: {other:?}"),
        }
    }

    /// Starts the scheduled task of a run whose next event id is `next_event_id` and
    /// whose history so far is `history_bytes` long.
    fn start_with(next_event_id: i64, history_bytes: i64, config: &EngineConfig) -> WorkflowTaskStartedEventAttributes {
        let key = RunKey { namespace: "ns".into(), workflow_id: "wf".into(), run_id: "r".into() };
        let state = ExecutionState { task_queue: "tq".into(), history_size_bytes: history_bytes, ..Default::default() };
        let mut txn = RunTxn::existing(key, 1_000, state, next_event_id, 1);
        wft::schedule_workflow_task(&mut txn, 1);
        let wt = txn.state.workflow_task.clone().expect("scheduled");
        let queue = QueueKey { namespace: "ns".into(), name: "tq".into(), kind: QueueKind::Workflow };
        let size_before_started = txn.state.history_size_bytes;
        let id = start(&mut txn, &wt, (&queue, 1), "tq", &Poller::default(), "req".into(), config);
        let a = started_attributes(&txn, id);
        assert_eq!(a.history_size_bytes, size_before_started, "the size the Started event reports is the history before it");
        a
    }

    #[test]
    fn reasons_follow_the_configured_limits() {
        let c = limits(10, 1_000);
        assert!(suggest_continue_as_new_reasons(999, 9, &c).is_empty());
        assert_eq!(suggest_continue_as_new_reasons(1_000, 9, &c), vec![SuggestContinueAsNewReason::HistorySizeTooLarge as i32]);
        assert_eq!(suggest_continue_as_new_reasons(0, 10, &c), vec![SuggestContinueAsNewReason::TooManyHistoryEvents as i32]);
        assert_eq!(suggest_continue_as_new_reasons(5_000, 50, &c).len(), 2);
        let defaults = EngineConfig::default();
        assert_eq!(defaults.suggest_continue_as_new_history_events, 4_096, "Temporal's default");
        assert_eq!(defaults.suggest_continue_as_new_history_bytes, 4 << 20, "Temporal's default");
        assert!(suggest_continue_as_new_reasons(4 << 20, 4_095, &defaults).len() == 1);
    }

    #[test]
    fn the_started_event_suggests_continue_as_new_past_a_configured_limit() {
        // Events 5 (Scheduled) and 6 (Started): 6 reaches a limit of 6 events, not of 7.
        let quiet = start_with(5, 100, &limits(7, 1 << 20));
        assert!(!quiet.suggest_continue_as_new && quiet.suggest_continue_as_new_reasons.is_empty());
        let long = start_with(5, 100, &limits(6, 1 << 20));
        assert!(long.suggest_continue_as_new);
        assert_eq!(long.suggest_continue_as_new_reasons, vec![SuggestContinueAsNewReason::TooManyHistoryEvents as i32]);
        let big = start_with(5, 10_000, &limits(1_000, 10_000));
        assert!(big.suggest_continue_as_new);
        assert_eq!(big.suggest_continue_as_new_reasons, vec![SuggestContinueAsNewReason::HistorySizeTooLarge as i32]);
    }
}
