//! Run lifecycle rules: closing a run (whatever closed it), termination, workflow
//! run/execution timeouts, the start backoff, continue-as-new.

use hourglass_storage::state::RunKey;
use prost::Message;
use temporalio_protos::protos::temporal::api::command::v1::ContinueAsNewWorkflowExecutionCommandAttributes;
use temporalio_protos::protos::temporal::api::common::v1::{Payloads, WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::{
    ContinueAsNewInitiator, EventType, ParentClosePolicy, RetryState, WorkflowExecutionStatus, WorkflowTaskFailedCause,
};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    WorkflowExecutionContinuedAsNewEventAttributes, WorkflowExecutionTerminatedEventAttributes, WorkflowExecutionTimedOutEventAttributes,
    WorkflowTaskFailedEventAttributes,
};

use temporalio_protos::protos::temporal::api::enums::v1::TimeoutType;
use temporalio_protos::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_protos::protos::temporal::api::failure::v1::{Failure, TimeoutFailureInfo};

use super::chain;
use super::run::{self, Continuation, RunSpec, Timeouts, SERVER_IDENTITY};
use super::tasks::TimerKind;
use super::txn::{duration, duration_ms, RunTxn};
use super::{wft, CommandFailure, Ctx, RunView};

/// The execution status a close event gives its run.
pub fn close_status(event_type: i32) -> Option<WorkflowExecutionStatus> {
    Some(match EventType::try_from(event_type).ok()? {
        EventType::WorkflowExecutionCompleted => WorkflowExecutionStatus::Completed,
        EventType::WorkflowExecutionFailed => WorkflowExecutionStatus::Failed,
        EventType::WorkflowExecutionCanceled => WorkflowExecutionStatus::Canceled,
        EventType::WorkflowExecutionTerminated => WorkflowExecutionStatus::Terminated,
        EventType::WorkflowExecutionContinuedAsNew => WorkflowExecutionStatus::ContinuedAsNew,
        EventType::WorkflowExecutionTimedOut => WorkflowExecutionStatus::TimedOut,
        _ => return None,
    })
}

/// Called after a handler added the run's close event (completed, failed, canceled,
/// terminated, timed out, continued-as-new): drops pending work, closes the run in
/// storage, arms the closed-run outbox (parent notification, parent close policy).
pub fn on_run_closed(txn: &mut RunTxn) {
    let close = txn.events().last().map(|e| (e.event_type, e.event_id));
    let status = close.and_then(|(t, _)| close_status(t));
    if status.is_none() {
        tracing::error!(run = ?txn.key, "run closed without a close event as its last event");
    }
    let now_ms = txn.now_ms.max(1);
    let s = &mut txn.state;
    if let Some(status) = status {
        s.status = status as i32;
    }
    s.close_time_ms = now_ms;
    s.close_event_id = close.map(|(_, id)| id).unwrap_or_default();
    s.workflow_task = None;
    s.activities.clear();
    s.timers.clear();
    if !s.buffered_events.is_empty() {
        tracing::warn!(run = ?txn.key, dropped = s.buffered_events.len(), "run closed with buffered events");
        s.buffered_events.clear();
    }
    // Temporal: a run continued by another (continue-as-new, retry, cron) does not
    // report to its parent; the last run of the chain does.
    let notify_parent = s.parent.is_some() && s.new_execution_run_id.is_empty();
    let close_children = s.children.iter().any(|c| c.parent_close_policy != ParentClosePolicy::Abandon as i32);
    if notify_parent || close_children {
        txn.add_timer(now_ms, run::timer(TimerKind::NotifyParent));
    }
    txn.close_run();
}

/// Fails the started workflow task (if any) with FORCE_CLOSE_COMMAND and writes the
/// events buffered during it, as Temporal does before a terminate or timeout.
pub fn force_close_workflow_task(txn: &mut RunTxn) {
    let Some(task) = txn.state.workflow_task.clone() else { return };
    if task.started_event_id == 0 {
        return;
    }
    txn.add_event(Attributes::WorkflowTaskFailedEventAttributes(WorkflowTaskFailedEventAttributes {
        scheduled_event_id: task.scheduled_event_id,
        started_event_id: task.started_event_id,
        cause: WorkflowTaskFailedCause::ForceCloseCommand as i32,
        identity: SERVER_IDENTITY.to_string(),
        ..Default::default()
    }));
    txn.state.workflow_task = None;
    txn.flush_buffered_events();
}

/// Terminates the (open) run of `txn`.
pub fn terminate(txn: &mut RunTxn, reason: String, details: Option<Payloads>, identity: String) {
    force_close_workflow_task(txn);
    txn.add_event(Attributes::WorkflowExecutionTerminatedEventAttributes(WorkflowExecutionTerminatedEventAttributes {
        reason,
        details,
        identity,
    }));
    on_run_closed(txn);
}

/// Times the (open) run of `txn` out; `new_execution_run_id`: the run that retries it
/// or continues its cron schedule (empty: none).
pub fn time_out(txn: &mut RunTxn, retry_state: RetryState, new_execution_run_id: String) {
    force_close_workflow_task(txn);
    txn.state.new_execution_run_id = new_execution_run_id.clone();
    txn.add_event(Attributes::WorkflowExecutionTimedOutEventAttributes(WorkflowExecutionTimedOutEventAttributes {
        retry_state: retry_state as i32,
        new_execution_run_id,
    }));
    on_run_closed(txn);
}

/// What a run or execution timeout came to.
pub enum TimeoutOutcome {
    /// The run is closed, or its execution deadline has not come: nothing to do.
    NotDue,
    /// The run timed out; `new_run`: the run that retries it or continues its cron
    /// schedule, to commit with it.
    TimedOut { new_run: Option<Box<RunTxn>> },
}

/// The failure a run timeout fails the run with (Go's `NewTimeoutFailure("workflow
/// timeout", START_TO_CLOSE)`), as the retry rules and the next run see it.
pub fn run_timeout_failure() -> Failure {
    Failure {
        message: "workflow timeout".into(),
        source: "Server".into(),
        failure_info: Some(FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
            timeout_type: TimeoutType::StartToClose as i32,
            last_heartbeat_details: None,
        })),
        ..Default::default()
    }
}

/// The run timeout (`execution` false) or execution timeout fired on `txn`'s run.
/// Within the execution deadline a run timeout is retried by the run's retry policy,
/// or else its cron schedule goes on (`started`: the run's Started attributes, needed
/// only when [`chain::may_continue`]); the execution deadline ends the chain.
pub fn on_timeout(txn: &mut RunTxn, execution: bool, started: Option<&chain::Started>, ctx: &mut Ctx) -> TimeoutOutcome {
    if !txn.state.is_open() {
        return TimeoutOutcome::NotDue;
    }
    let expiration_ms = txn.state.execution_expiration_ms;
    let expired = expiration_ms > 0 && txn.now_ms >= expiration_ms;
    if execution && !expired {
        return TimeoutOutcome::NotDue;
    }
    if expired {
        time_out(txn, RetryState::Timeout, String::new());
        return TimeoutOutcome::TimedOut { new_run: None };
    }
    let failure = run_timeout_failure();
    let (retry_state, next) = chain::after_failure(&txn.state, Some(&failure), txn.now_ms, ctx.config);
    let Some(next) = next else {
        time_out(txn, retry_state, String::new());
        return TimeoutOutcome::TimedOut { new_run: None };
    };
    let new_run_id = ctx.ids.new_id();
    time_out(txn, retry_state, new_run_id.clone());
    let last_completion_result = started.and_then(|a| a.last_completion_result.clone());
    let handover = chain::Handover { continued_failure: Some(failure), last_completion_result };
    let new_run = chain::start_next_run(txn, new_run_id, started, next, handover, ctx);
    TimeoutOutcome::TimedOut { new_run: Some(Box::new(new_run)) }
}

/// The start delay (or continue-as-new backoff) of `txn`'s run is over: schedules its
/// first workflow task unless something already did (false: nothing to do).
pub fn on_start_backoff(txn: &mut RunTxn) -> bool {
    if !txn.state.is_open() || txn.state.last_completed_wft_started_id > 0 {
        return false;
    }
    wft::ensure_workflow_task(txn).is_some()
}

/// True while a run waits out its start delay: no workflow task has been scheduled
/// yet. Signals during the delay are written without scheduling one (as Temporal does).
pub fn pending_start_backoff(txn: &RunTxn) -> bool {
    let s = &txn.state;
    s.workflow_task.is_none() && s.last_completed_wft_started_id == 0 && txn.now_ms < s.execution_time_ms
}

fn bad_continue_as_new(message: impl Into<String>) -> CommandFailure {
    CommandFailure { cause: WorkflowTaskFailedCause::BadContinueAsNewAttributes as i32, message: message.into() }
}

/// `ContinueAsNewWorkflowExecution`: adds the ContinuedAsNew event to `txn`'s run and
/// closes it; returns the new run's transaction (commit both with `commit_many`).
#[allow(deprecated)] // `inherit_build_id`: deprecated, echoed as Temporal does
pub fn continue_as_new(
    txn: &mut RunTxn,
    attrs: ContinueAsNewWorkflowExecutionCommandAttributes,
    workflow_task_completed_event_id: i64,
    root: Option<WorkflowExecution>,
    ctx: &mut Ctx,
) -> Result<RunTxn, CommandFailure> {
    let config = ctx.config;
    let s = &txn.state;
    let workflow_type = attrs.workflow_type.map(|t| t.name).filter(|n| !n.is_empty()).unwrap_or_else(|| s.workflow_type.clone());
    let task_queue = attrs.task_queue.map(|t| t.name).filter(|n| !n.is_empty()).unwrap_or_else(|| s.task_queue.clone());
    check_name("WorkflowType", &workflow_type).map_err(bad_continue_as_new)?;
    check_name("TaskQueue", &task_queue).map_err(bad_continue_as_new)?;
    for (what, d) in [
        ("WorkflowRunTimeout", &attrs.workflow_run_timeout),
        ("WorkflowTaskTimeout", &attrs.workflow_task_timeout),
        ("BackoffStartInterval", &attrs.backoff_start_interval),
    ] {
        if d.as_ref().is_some_and(|d| d.seconds < 0 || d.nanos < 0) {
            return Err(bad_continue_as_new(format!("{what} is negative")));
        }
    }
    let sizes = [
        ("input", attrs.input.as_ref().map(Message::encoded_len)),
        ("header", attrs.header.as_ref().map(Message::encoded_len)),
        ("memo", attrs.memo.as_ref().map(Message::encoded_len)),
        ("search_attributes", attrs.search_attributes.as_ref().map(Message::encoded_len)),
        ("last_completion_result", attrs.last_completion_result.as_ref().map(Message::encoded_len)),
    ];
    if let Some((what, n)) = sizes.iter().find_map(|(w, n)| n.filter(|n| *n > config.blob_bytes_max).map(|n| (w, n))) {
        return Err(bad_continue_as_new(format!("{what} is {n} bytes, over the {} byte limit", config.blob_bytes_max)));
    }
    let initiator = match ContinueAsNewInitiator::try_from(attrs.initiator) {
        Ok(ContinueAsNewInitiator::Unspecified) => ContinueAsNewInitiator::Workflow,
        Ok(i) => i,
        Err(_) => return Err(bad_continue_as_new(format!("unknown initiator {}", attrs.initiator))),
    };
    let run_ms = duration_ms(attrs.workflow_run_timeout.as_ref());
    let task_ms = duration_ms(attrs.workflow_task_timeout.as_ref());
    let timeouts = Timeouts::normalize(
        s.execution_timeout_ms,
        if run_ms > 0 { run_ms } else { s.run_timeout_ms },
        if task_ms > 0 { task_ms } else { s.workflow_task_timeout_ms },
        config,
    );
    let backoff_ms = duration_ms(attrs.backoff_start_interval.as_ref());
    let memo = attrs.memo.or_else(|| s.memo.clone());
    let search_attributes = attrs.search_attributes.or_else(|| s.search_attributes.clone());
    let retry_policy = attrs.retry_policy.or_else(|| s.retry_policy.clone());
    let new_key = RunKey { run_id: ctx.ids.new_id(), ..txn.key.clone() };
    let spec = RunSpec {
        workflow_type: workflow_type.clone(),
        task_queue: task_queue.clone(),
        input: attrs.input.clone(),
        timeouts,
        identity: String::new(),
        request_id: ctx.ids.new_id(),
        retry_policy,
        memo: memo.clone(),
        search_attributes: search_attributes.clone(),
        header: attrs.header.clone(),
        start_delay_ms: backoff_ms,
        priority: None,
        parent: s.parent.clone(),
        root,
        continuation: Some(Continuation {
            first_execution_run_id: s.first_execution_run_id.clone(),
            continued_execution_run_id: txn.key.run_id.clone(),
            initiator: initiator as i32,
            execution_expiration_ms: s.execution_expiration_ms,
            continued_failure: attrs.failure.clone(),
            last_completion_result: attrs.last_completion_result.clone(),
            echoed_run_timeout: None,
        }),
        // Temporal: the new run's cron schedule is the command's.
        cron_schedule: attrs.cron_schedule.clone(),
        attempt: 1,
        // Temporal: the new run's start has no user metadata (the command's is on
        // the ContinuedAsNew event).
        user_metadata: None,
    };
    txn.add_event(Attributes::WorkflowExecutionContinuedAsNewEventAttributes(WorkflowExecutionContinuedAsNewEventAttributes {
        new_execution_run_id: new_key.run_id.clone(),
        workflow_type: Some(WorkflowType { name: workflow_type }),
        task_queue: Some(run::normal_task_queue(&task_queue)),
        input: attrs.input,
        workflow_run_timeout: Some(duration(timeouts.run_ms)),
        workflow_task_timeout: Some(duration(timeouts.task_ms)),
        workflow_task_completed_event_id,
        backoff_start_interval: (backoff_ms > 0).then(|| duration(backoff_ms)),
        // The event echoes the command (Temporal); the new run gets the default.
        initiator: attrs.initiator,
        inherit_build_id: attrs.inherit_build_id,
        last_completion_result: attrs.last_completion_result,
        header: attrs.header,
        memo,
        search_attributes,
        ..Default::default()
    }));
    txn.state.new_execution_run_id = new_key.run_id.clone();
    on_run_closed(txn);
    let mut new_txn = run::new_run(new_key, txn.now_ms, &spec);
    run::begin_run(&mut new_txn);
    Ok(new_txn)
}

/// Identifier rules shared by requests and commands: non-empty, at most 1000 bytes.
pub fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{what} is not set"));
    }
    if value.len() > ID_BYTES_MAX {
        return Err(format!("{what} is {} bytes, over the {ID_BYTES_MAX} byte limit", value.len()));
    }
    Ok(())
}

/// Longest workflow id, type name, task queue name, signal name or request id (as Temporal).
pub const ID_BYTES_MAX: usize = 1000;

/// The transaction terminating `run` because a new start's conflict policy said so.
pub fn terminate_for_conflict(run: RunView, now_ms: i64, identity: &str) -> RunTxn {
    let mut txn = RunTxn::from_view(run, now_ms);
    terminate(&mut txn, "terminated by WorkflowIdConflictPolicy TERMINATE_EXISTING".into(), None, identity.to_string());
    txn
}
