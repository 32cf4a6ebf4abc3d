//! Commands that close the run: complete, fail, cancel, continue-as-new. Each first
//! applies the buffering rule: a run with events the worker has not seen yet cannot
//! close (`UnhandledCommand`, the task is retried with those events). Complete and
//! fail may start the run's retry or cron successor ([`crate::core::chain`]).

use prost::Message;
use temporalio_protos::protos::temporal::api::command::v1::{
    CancelWorkflowExecutionCommandAttributes, CompleteWorkflowExecutionCommandAttributes, ContinueAsNewWorkflowExecutionCommandAttributes,
    FailWorkflowExecutionCommandAttributes,
};
use temporalio_protos::protos::temporal::api::enums::v1::{
    CommandType, ContinueAsNewInitiator, WorkflowExecutionStatus, WorkflowTaskFailedCause,
};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    WorkflowExecutionCanceledEventAttributes, WorkflowExecutionCompletedEventAttributes, WorkflowExecutionFailedEventAttributes,
};

use super::validate::with_default_cause;
use super::Refusal;
use crate::core::txn::RunTxn;
use crate::core::{chain, lifecycle, CommandFailure, Ctx};
use temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution;

fn unhandled_check(txn: &RunTxn) -> Result<(), Refusal> {
    if txn.state.buffered_events.is_empty() {
        Ok(())
    } else {
        Err(Refusal::Unhandled)
    }
}

/// Payloads over the blob limit terminate the run (as Go does).
fn size_check(bytes: usize, blob_max: usize, cause: WorkflowTaskFailedCause, what: &str) -> Result<(), Refusal> {
    if bytes > blob_max {
        return Err(Refusal::Terminate(CommandFailure { cause: cause as i32, message: format!("{what} exceeds size limit.") }));
    }
    Ok(())
}

/// Records the run as closed by the event `close_event_id`, then lets the run
/// lifecycle drop its pending work.
pub(crate) fn close_run(txn: &mut RunTxn, status: WorkflowExecutionStatus, close_event_id: i64) {
    txn.state.status = status as i32;
    txn.state.close_time_ms = txn.now_ms.max(1);
    txn.state.close_event_id = close_event_id;
    lifecycle::on_run_closed(txn);
}

/// `CompleteWorkflowExecution`; returns the next run of the run's cron schedule (to
/// commit with this one), if it has one.
pub(super) fn complete(
    txn: &mut RunTxn,
    attrs: CompleteWorkflowExecutionCommandAttributes,
    wftc: i64,
    started: Option<&chain::Started>,
    ctx: &mut Ctx,
) -> Result<Option<RunTxn>, Refusal> {
    unhandled_check(txn)?;
    let size = attrs.result.as_ref().map_or(0, Message::encoded_len);
    size_check(
        size,
        ctx.config.blob_bytes_max,
        WorkflowTaskFailedCause::BadCompleteWorkflowExecutionAttributes,
        "CompleteWorkflowExecutionCommandAttributes.Result",
    )?;
    let next = chain::after_completion(&txn.state, txn.now_ms, ctx.config);
    let new_run_id = next.map(|_| ctx.ids.new_id()).unwrap_or_default();
    let id = txn.add_event(Attributes::WorkflowExecutionCompletedEventAttributes(WorkflowExecutionCompletedEventAttributes {
        result: attrs.result.clone(),
        workflow_task_completed_event_id: wftc,
        new_execution_run_id: new_run_id.clone(),
    }));
    txn.state.new_execution_run_id = new_run_id.clone();
    close_run(txn, WorkflowExecutionStatus::Completed, id);
    let handover = chain::Handover { continued_failure: None, last_completion_result: attrs.result };
    Ok(next.map(|next| chain::start_next_run(txn, new_run_id, started, next, handover, ctx)))
}

/// `FailWorkflowExecution`: the run's retry policy, then its cron schedule, may start
/// the next run (returned, to commit with this one).
pub(super) fn fail(
    txn: &mut RunTxn,
    attrs: FailWorkflowExecutionCommandAttributes,
    wftc: i64,
    started: Option<&chain::Started>,
    ctx: &mut Ctx,
) -> Result<Option<RunTxn>, Refusal> {
    unhandled_check(txn)?;
    let cause = WorkflowTaskFailedCause::BadFailWorkflowExecutionAttributes;
    let Some(failure) = attrs.failure else {
        return Err(Refusal::Fail(CommandFailure { cause: cause as i32, message: "Failure is not set on command.".into() }));
    };
    size_check(failure.encoded_len(), ctx.config.blob_bytes_max, cause, "FailWorkflowExecutionCommandAttributes.Failure")?;
    let (retry_state, next) = chain::after_failure(&txn.state, Some(&failure), txn.now_ms, ctx.config);
    let new_run_id = next.map(|_| ctx.ids.new_id()).unwrap_or_default();
    let id = txn.add_event(Attributes::WorkflowExecutionFailedEventAttributes(WorkflowExecutionFailedEventAttributes {
        failure: Some(failure.clone()),
        retry_state: retry_state as i32,
        workflow_task_completed_event_id: wftc,
        new_execution_run_id: new_run_id.clone(),
    }));
    txn.state.new_execution_run_id = new_run_id.clone();
    close_run(txn, WorkflowExecutionStatus::Failed, id);
    // A retry starts afresh; a cron run keeps the last completion result it was given.
    let last_completion_result = match next {
        Some(n) if n.initiator == ContinueAsNewInitiator::CronSchedule => started.and_then(|a| a.last_completion_result.clone()),
        _ => None,
    };
    let handover = chain::Handover { continued_failure: Some(failure), last_completion_result };
    Ok(next.map(|next| chain::start_next_run(txn, new_run_id, started, next, handover, ctx)))
}

pub(super) fn cancel(txn: &mut RunTxn, attrs: CancelWorkflowExecutionCommandAttributes, wftc: i64, blob_max: usize) -> Result<(), Refusal> {
    unhandled_check(txn)?;
    let size = attrs.details.as_ref().map_or(0, Message::encoded_len);
    size_check(
        size,
        blob_max,
        WorkflowTaskFailedCause::BadCancelWorkflowExecutionAttributes,
        "CancelWorkflowExecutionCommandAttributes.Details",
    )?;
    let id = txn.add_event(Attributes::WorkflowExecutionCanceledEventAttributes(WorkflowExecutionCanceledEventAttributes {
        workflow_task_completed_event_id: wftc,
        details: attrs.details,
    }));
    close_run(txn, WorkflowExecutionStatus::Canceled, id);
    Ok(())
}

/// Continue-as-new (the run lifecycle builds the new run): returns the new run's
/// transaction, to commit with this one.
pub(super) fn continue_as_new(
    txn: &mut RunTxn,
    attrs: ContinueAsNewWorkflowExecutionCommandAttributes,
    wftc: i64,
    root: Option<WorkflowExecution>,
    ctx: &mut Ctx,
) -> Result<RunTxn, Refusal> {
    unhandled_check(txn)?;
    lifecycle::continue_as_new(txn, attrs, wftc, root, ctx)
        .map_err(|f| Refusal::Fail(with_default_cause(f, CommandType::ContinueAsNewWorkflowExecution)))
}
