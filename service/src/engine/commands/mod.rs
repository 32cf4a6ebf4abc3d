//! `RespondWorkflowTaskCompleted` (contract §5.1–5.4, Go's
//! `respondworkflowtaskcompleted`): the completed workflow task's commands become
//! events and side effects, in command order, in ONE transition:
//!
//! WorkflowTaskCompleted → the command events → the events buffered while the task
//! ran → a new WorkflowTaskScheduled if the run is open and the worker has something
//! new to see (buffered events, an activity cancelled before it started) or asked for
//! one (`force_create_new_workflow_task`).
//!
//! A refused command applies nothing of the completion: the task fails instead
//! (WorkflowTaskFailed with the cause, a new attempt) and the call is answered
//! `InvalidArgument` naming the problem — `"UnhandledCommand"` exactly when the run
//! tried to close over events the worker has not seen.

mod close;
mod props;
mod validate;

pub use validate::{
    bad_attributes_cause, cause_name, command_sequence, command_type_name, failed_cause_message, is_terminal, server_failure,
};

use temporalio_protos::protos::temporal::api::command::v1::{command::Attributes as Cmd, Command};
use temporalio_protos::protos::temporal::api::enums::v1::{CommandType, WorkflowExecutionStatus, WorkflowTaskFailedCause};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    WorkflowExecutionTerminatedEventAttributes, WorkflowTaskCompletedEventAttributes, WorkflowTaskFailedEventAttributes,
};
use temporalio_protos::protos::temporal::api::workflowservice::v1::{
    RespondWorkflowTaskCompletedRequest, RespondWorkflowTaskCompletedResponse,
};

use super::state::WorkflowTaskInfo;
use super::token::TaskToken;
use super::txn::RunTxn;
use super::workflow_task::{current_task, drop_start_to_close_timers, retry_workflow_task, token_run};
use super::{activity, lifecycle, wft, CommandFailure, Engine, ShardOwner, WorkflowGuard};
use crate::error::{Result, ServiceError};

/// Identity Go writes on events the server itself causes.
const SERVER_IDENTITY: &str = "history-service";

/// Why a completion is not applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Fail the workflow task with this cause and message, and retry it.
    Fail(CommandFailure),
    /// Fail the workflow task and terminate the run (a limit was exceeded).
    Terminate(CommandFailure),
    /// A command closes the run while events the worker has not seen are buffered.
    Unhandled,
}

/// What applying the commands did besides adding events.
#[derive(Default)]
struct Applied {
    /// The run was closed by a command.
    closed: bool,
    /// Continue-as-new: the new run, committed together with this one.
    new_run: Option<RunTxn>,
}

/// `RespondWorkflowTaskCompleted` for the task `token` names.
pub async fn complete_workflow_task(
    engine: &Engine,
    token: &TaskToken,
    mut req: RespondWorkflowTaskCompletedRequest,
) -> Result<RespondWorkflowTaskCompletedResponse> {
    let run = token_run(token);
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    let loaded = lock.load_existing(&run)?;
    let wt = current_task(&loaded.state, token)?;
    command_sequence(&req.commands)?;

    let mut txn = engine.txn(loaded);
    let completed_event_id = txn.add_event(Attributes::WorkflowTaskCompletedEventAttributes(completed_event(&wt, &req)));
    let commands = std::mem::take(&mut req.commands);
    match apply_all(engine, &lock, &mut txn, commands, &req, completed_event_id) {
        Ok(applied) => {
            finish(&lock, txn, applied, &wt, &req).await?;
            Ok(RespondWorkflowTaskCompletedResponse::default())
        }
        Err(refusal) => {
            drop(txn);
            Err(match refuse(engine, &lock, &wt, refusal, &req, &run).await {
                Ok(answer) | Err(answer) => answer,
            })
        }
    }
}

#[allow(deprecated)]
fn completed_event(wt: &WorkflowTaskInfo, req: &RespondWorkflowTaskCompletedRequest) -> WorkflowTaskCompletedEventAttributes {
    WorkflowTaskCompletedEventAttributes {
        scheduled_event_id: wt.scheduled_event_id,
        started_event_id: wt.started_event_id,
        identity: req.identity.clone(),
        binary_checksum: req.binary_checksum.clone(),
        worker_version: req.worker_version_stamp.clone(),
        sdk_metadata: req.sdk_metadata.clone(),
        metering_metadata: req.metering_metadata,
        versioning_behavior: req.versioning_behavior,
        ..Default::default()
    }
}

fn apply_all(
    engine: &Engine,
    owner: &ShardOwner,
    txn: &mut RunTxn,
    commands: Vec<Command>,
    req: &RespondWorkflowTaskCompletedRequest,
    wftc: i64,
) -> Result<Applied, Refusal> {
    let mut applied = Applied::default();
    for command in commands {
        let kind = CommandType::try_from(command.command_type).unwrap_or(CommandType::Unspecified);
        if let Some(new_run) = apply_one(engine, owner, txn, kind, command.attributes, wftc)? {
            applied.new_run = Some(new_run);
        }
        applied.closed |= is_terminal(kind);
    }
    // Updates are not supported: the server never sends update requests, so any
    // protocol message names an update it does not know.
    if let Some(message) = req.messages.first() {
        return Err(Refusal::Fail(validate::unknown_update(&message.protocol_instance_id)));
    }
    Ok(applied)
}

/// Applies one command; `Some` is the new run of a continue-as-new.
fn apply_one(
    engine: &Engine,
    owner: &ShardOwner,
    txn: &mut RunTxn,
    kind: CommandType,
    attrs: Option<Cmd>,
    wftc: i64,
) -> Result<Option<RunTxn>, Refusal> {
    let blob_max = engine.config().blob_bytes_max;
    let other_area = |r: Result<(), CommandFailure>| r.map_err(|f| Refusal::Fail(validate::with_default_cause(f, kind)));
    match (kind, attrs) {
        (CommandType::ScheduleActivityTask, Some(Cmd::ScheduleActivityTaskCommandAttributes(a))) => {
            other_area(activity::schedule_activity(txn, a, wftc))?
        }
        (CommandType::RequestCancelActivityTask, Some(Cmd::RequestCancelActivityTaskCommandAttributes(a))) => {
            other_area(activity::request_cancel_activity(txn, a, wftc))?
        }
        (CommandType::StartTimer, Some(Cmd::StartTimerCommandAttributes(a))) => other_area(activity::start_timer(txn, a, wftc))?,
        (CommandType::CancelTimer, Some(Cmd::CancelTimerCommandAttributes(a))) => other_area(activity::cancel_timer(txn, a, wftc))?,
        (CommandType::RecordMarker, Some(Cmd::RecordMarkerCommandAttributes(a))) => props::record_marker(txn, a, wftc, blob_max)?,
        (CommandType::UpsertWorkflowSearchAttributes, Some(Cmd::UpsertWorkflowSearchAttributesCommandAttributes(a))) => {
            props::upsert_search_attributes(txn, a, wftc, blob_max)?
        }
        (CommandType::ModifyWorkflowProperties, Some(Cmd::ModifyWorkflowPropertiesCommandAttributes(a))) => {
            props::modify_properties(txn, a, wftc, blob_max)?
        }
        (CommandType::StartChildWorkflowExecution, Some(Cmd::StartChildWorkflowExecutionCommandAttributes(a))) => {
            other_area(lifecycle::initiate_child(txn, a, wftc))?
        }
        (CommandType::CompleteWorkflowExecution, Some(Cmd::CompleteWorkflowExecutionCommandAttributes(a))) => {
            close::complete(txn, a, wftc, blob_max)?
        }
        (CommandType::FailWorkflowExecution, Some(Cmd::FailWorkflowExecutionCommandAttributes(a))) => close::fail(txn, a, wftc, blob_max)?,
        (CommandType::CancelWorkflowExecution, Some(Cmd::CancelWorkflowExecutionCommandAttributes(a))) => {
            close::cancel(txn, a, wftc, blob_max)?
        }
        (CommandType::ContinueAsNewWorkflowExecution, Some(Cmd::ContinueAsNewWorkflowExecutionCommandAttributes(a))) => {
            return close::continue_as_new(engine, owner, txn, a, wftc).map(Some);
        }
        (CommandType::ProtocolMessage, Some(Cmd::ProtocolMessageCommandAttributes(a))) => {
            return Err(Refusal::Fail(validate::unknown_update(&a.message_id)));
        }
        (
            CommandType::SignalExternalWorkflowExecution
            | CommandType::RequestCancelExternalWorkflowExecution
            | CommandType::ScheduleNexusOperation
            | CommandType::RequestCancelNexusOperation,
            _,
        ) => return Err(Refusal::Fail(validate::not_supported(kind))),
        (kind, _) => return Err(Refusal::Fail(validate::attributes_not_set(kind))),
    }
    Ok(None)
}

/// Ends the task after its commands applied: buffered events, the next task, commit.
async fn finish(
    lock: &WorkflowGuard,
    mut txn: RunTxn,
    applied: Applied,
    wt: &WorkflowTaskInfo,
    req: &RespondWorkflowTaskCompletedRequest,
) -> Result<()> {
    let run = txn.key.clone();
    let open = !applied.closed && applied.new_run.is_none() && txn.state.is_open();
    let flushed = if open {
        txn.flush_buffered_events()
    } else {
        // Closing commands are refused while events are buffered, so there are none.
        txn.state.buffered_events.clear();
        0
    };
    let activity_cancelled = activity::activity_canceled_before_start(txn.events());
    txn.state.workflow_task = None;
    txn.state.last_completed_wft_started_id = wt.started_event_id;
    txn.state.workflow_task_attempt = 1;
    let new_task = open && (req.force_create_new_workflow_task || flushed > 0 || activity_cancelled);
    if new_task {
        wft::schedule_workflow_task(&mut txn, 1);
    }
    drop_start_to_close_timers(lock, &mut txn)?;
    match applied.new_run {
        Some(new_run) => {
            lock.commit_many(vec![txn, new_run], None).await?;
        }
        None => {
            lock.commit(txn).await?;
        }
    }
    lock.queries().answer_attached(&run, wt.started_event_id, &req.query_results);
    lock.queries().on_workflow_task_closed(&run, new_task);
    Ok(())
}

/// Fails the task for `refusal` (unless Go would merely drop it) and returns the
/// error that answers the call.
async fn refuse(
    engine: &Engine,
    lock: &WorkflowGuard,
    wt: &WorkflowTaskInfo,
    refusal: Refusal,
    req: &RespondWorkflowTaskCompletedRequest,
    run: &hourglass_storage::state::RunKey,
) -> Result<ServiceError, ServiceError> {
    let unhandled = WorkflowTaskFailedCause::UnhandledCommand as i32;
    let (failure, terminate) = match refusal {
        Refusal::Unhandled => (CommandFailure { cause: unhandled, message: String::new() }, false),
        Refusal::Fail(f) => (f, false),
        Refusal::Terminate(f) => (f, true),
    };
    // Answers to queries attached to this task count even when the task fails (Go).
    lock.queries().answer_attached(run, wt.started_event_id, &req.query_results);
    let message = failed_cause_message(failure.cause, &failure.message);
    let answer = if failure.cause == unhandled { ServiceError::UnhandledCommand } else { ServiceError::InvalidArgument(message.clone()) };
    if wt.attempt > 1 && failure.cause != unhandled {
        // Go: a task that keeps failing is dropped; its timeout retries it.
        return Ok(answer);
    }
    let loaded = lock.load_existing(run)?;
    let mut txn = engine.txn(loaded);
    #[allow(deprecated)]
    let failed = WorkflowTaskFailedEventAttributes {
        scheduled_event_id: wt.scheduled_event_id,
        started_event_id: wt.started_event_id,
        cause: failure.cause,
        failure: Some(server_failure(message.clone())),
        identity: req.identity.clone(),
        binary_checksum: req.binary_checksum.clone(),
        ..Default::default()
    };
    txn.add_event(Attributes::WorkflowTaskFailedEventAttributes(failed));
    if terminate {
        txn.flush_buffered_events();
        txn.state.workflow_task = None;
        let id = txn.add_event(Attributes::WorkflowExecutionTerminatedEventAttributes(WorkflowExecutionTerminatedEventAttributes {
            reason: message,
            identity: SERVER_IDENTITY.to_string(),
            ..Default::default()
        }));
        close::close_run(&mut txn, WorkflowExecutionStatus::Terminated, id);
    } else {
        retry_workflow_task(&mut txn, wt.attempt);
    }
    drop_start_to_close_timers(lock, &mut txn)?;
    let outstanding = txn.state.has_workflow_task();
    lock.commit(txn).await?;
    lock.queries().on_workflow_task_closed(run, outstanding);
    Ok(answer)
}

#[cfg(test)]
mod tests;
