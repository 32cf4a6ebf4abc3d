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
//!
//! [`complete`] and [`refuse`] are the rules; the engine's handler
//! (`engine::workflow_task::complete`) loads the run, calls them, commits, and then
//! tells the query registry.

mod close;
mod metadata;
pub(crate) mod props;
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
use temporalio_protos::protos::temporal::api::workflowservice::v1::RespondWorkflowTaskCompletedRequest;

use super::error::WorkflowTaskError;
use super::run::SERVER_IDENTITY;
use super::state::{ExecutionState, WorkflowTaskInfo};
use super::txn::{EventMark, RunTxn};
use super::updates::{self, Messages, UpdateBook, UpdateEffect};
use super::workflow_task::{drop_start_to_close_timers, retry_workflow_task};
use super::{activity, chain, children, external, wft, CommandFailure, Ctx};

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

/// What a completed workflow task does to its run.
pub struct Completed {
    /// The run's transition: WorkflowTaskCompleted, the command events, buffered
    /// events, maybe the next workflow task.
    pub txn: RunTxn,
    /// Continue-as-new: the new run, to commit together with `txn`.
    pub new_run: Option<RunTxn>,
    /// A new workflow task was scheduled.
    pub new_task: bool,
    /// What became of the run's updates, for the registry once `txn` commits.
    pub update_effects: Vec<UpdateEffect>,
    /// A speculative task was discarded: the worker rolls its history back to this
    /// event (the run's last completed task's Started event); 0 otherwise.
    pub reset_history_event_id: i64,
}

/// What applying the commands did besides adding events.
#[derive(Default)]
struct Applied {
    /// The run was closed by a command.
    closed: bool,
    /// Continue-as-new: the new run, committed together with this one.
    new_run: Option<RunTxn>,
    update_effects: Vec<UpdateEffect>,
    /// Admitted updates the worker has not seen wait for the next workflow task.
    updates_waiting: bool,
}

/// Whether the completion continues the run as new (its handler then loads the
/// run's root execution, which the new run inherits).
pub fn continues_as_new(req: &RespondWorkflowTaskCompletedRequest) -> bool {
    req.commands.iter().any(|c| c.command_type == CommandType::ContinueAsNewWorkflowExecution as i32)
}

/// Whether the completion needs the run's Started attributes: it continues as new (the
/// new run inherits the root execution), or it completes or fails a run that a retry
/// policy or cron schedule may continue ([`chain`]).
pub fn needs_started(req: &RespondWorkflowTaskCompletedRequest, state: &ExecutionState) -> bool {
    let closes = |t: CommandType| req.commands.iter().any(|c| c.command_type == t as i32);
    continues_as_new(req)
        || (chain::may_continue(state) && (closes(CommandType::CompleteWorkflowExecution) || closes(CommandType::FailWorkflowExecution)))
}

/// `RespondWorkflowTaskCompleted` of the started task `wt` on `txn`'s run. `started`:
/// the run's Started attributes, needed only when [`needs_started`].
/// `book`: the run's admitted updates not yet accepted (the owner's registry).
pub fn complete(
    mut txn: RunTxn,
    wt: &WorkflowTaskInfo,
    mut req: RespondWorkflowTaskCompletedRequest,
    started: Option<&chain::Started>,
    mut book: UpdateBook,
    ctx: &mut Ctx,
) -> Result<Completed, Refusal> {
    let speculative = txn.state.workflow_task_speculative().then(|| txn.event_mark());
    let completed_event_id = txn.add_event(Attributes::WorkflowTaskCompletedEventAttributes(completed_event(wt, &req)));
    // Before any task is scheduled: the next one goes to the worker's sticky queue.
    super::sticky::on_completion(&mut txn.state, req.sticky_attributes.as_ref());
    let commands = std::mem::take(&mut req.commands);
    let messages = Messages::new(std::mem::take(&mut req.messages));
    let applied = apply_all(&mut txn, commands, messages, &mut book, completed_event_id, started, ctx)?;
    let mut completed = finish(txn, applied, wt, &req);
    if let Some(mark) = speculative {
        drop_if_idle(&mut completed, mark, wt, &req);
    }
    Ok(completed)
}

/// Most events a discarded speculative task may have shipped besides its own (the
/// command events after the last completed task; Go's
/// `DiscardSpeculativeWorkflowTaskMaximumEventsCount`): past it the task is kept, so
/// rejected updates do not ship the same events again and again.
pub const DISCARD_SPECULATIVE_SHIPPED_EVENTS_MAX: i64 = 10;

/// A speculative task that did nothing but reject updates (no command, no accepted
/// update, nothing buffered, no next task) leaves no trace in history, as in Go: its
/// held Scheduled and Started events and its WorkflowTaskCompleted are dropped, and
/// the run's last completed task stays what it was (the worker is told to roll back
/// to it: `reset_history_event_id`). A task that shipped events after that one is
/// discarded only for a worker that can roll those back (its completion says so).
fn drop_if_idle(completed: &mut Completed, mark: EventMark, wt: &WorkflowTaskInfo, req: &RespondWorkflowTaskCompletedRequest) {
    // The held Scheduled and Started, and WorkflowTaskCompleted.
    const TASK_EVENTS: usize = 3;
    let last_completed_started_id = mark.last_completed_started_id;
    let shipped = wt.scheduled_event_id - last_completed_started_id - 2;
    let worker_rolls_back = req.capabilities.as_ref().is_some_and(|c| c.discard_speculative_workflow_task_with_events);
    let discardable = shipped <= 0 || (worker_rolls_back && shipped <= DISCARD_SPECULATIVE_SHIPPED_EVENTS_MAX);
    let txn = &mut completed.txn;
    let idle = completed.new_run.is_none() && !completed.new_task && txn.state.is_open() && txn.events_since(mark) == TASK_EVENTS;
    if idle && discardable {
        txn.roll_back_events(mark);
        txn.state.last_completed_wft_started_id = last_completed_started_id;
        completed.reset_history_event_id = last_completed_started_id;
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
    txn: &mut RunTxn,
    commands: Vec<Command>,
    mut messages: Messages,
    book: &mut UpdateBook,
    wftc: i64,
    started: Option<&chain::Started>,
    ctx: &mut Ctx,
) -> Result<Applied, Refusal> {
    let mut applied = Applied::default();
    let update_failure = |f: CommandFailure| Refusal::Fail(f);
    for command in commands {
        let kind = CommandType::try_from(command.command_type).unwrap_or(CommandType::Unspecified);
        metadata::check(kind, command.user_metadata.as_ref(), ctx.config.blob_bytes_max)?;
        let first_event_id = txn.next_event_id();
        match (kind, command.attributes) {
            (CommandType::ContinueAsNewWorkflowExecution, Some(Cmd::ContinueAsNewWorkflowExecutionCommandAttributes(a))) => {
                let root = started.and_then(|s| s.root_workflow_execution.clone());
                applied.new_run = Some(close::continue_as_new(txn, a, wftc, root, ctx)?);
            }
            (CommandType::CompleteWorkflowExecution, Some(Cmd::CompleteWorkflowExecutionCommandAttributes(a))) => {
                applied.new_run = close::complete(txn, a, wftc, started, ctx)?;
            }
            (CommandType::FailWorkflowExecution, Some(Cmd::FailWorkflowExecutionCommandAttributes(a))) => {
                applied.new_run = close::fail(txn, a, wftc, started, ctx)?;
            }
            (CommandType::ProtocolMessage, Some(Cmd::ProtocolMessageCommandAttributes(a))) => {
                messages.apply_named(&a.message_id, txn, book, &mut applied.update_effects).map_err(update_failure)?;
            }
            (kind, attributes) => apply_one(txn, kind, attributes, wftc, ctx)?,
        }
        metadata::attach(txn, kind, first_event_id, command.user_metadata);
        applied.closed |= is_terminal(kind);
    }
    messages.apply_rest(txn, book, &mut applied.update_effects).map_err(update_failure)?;
    let continued_as = applied.new_run.as_ref().map(|r| r.key.run_id.clone());
    if applied.closed && continued_as.is_none() && updates::unseen(book) {
        // Like buffered events: the worker must see the updates that arrived while
        // it ran before its workflow may close.
        return Err(Refusal::Unhandled);
    }
    let closed = applied.closed || !txn.state.is_open();
    applied.updates_waiting = updates::settle(book, &txn.state, closed, continued_as.as_deref(), &mut applied.update_effects);
    Ok(applied)
}

/// Applies one command (complete, fail and continue-as-new are [`close`]'s).
fn apply_one(txn: &mut RunTxn, kind: CommandType, attrs: Option<Cmd>, wftc: i64, ctx: &mut Ctx) -> Result<(), Refusal> {
    let blob_max = ctx.config.blob_bytes_max;
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
            other_area(children::initiate(txn, a, wftc))?
        }
        (CommandType::CancelWorkflowExecution, Some(Cmd::CancelWorkflowExecutionCommandAttributes(a))) => {
            close::cancel(txn, a, wftc, blob_max)?
        }
        (CommandType::SignalExternalWorkflowExecution, Some(Cmd::SignalExternalWorkflowExecutionCommandAttributes(a))) => {
            external::signal_external(txn, a, wftc, ctx.ids.new_id(), blob_max)?
        }
        (CommandType::RequestCancelExternalWorkflowExecution, Some(Cmd::RequestCancelExternalWorkflowExecutionCommandAttributes(a))) => {
            external::request_cancel_external(txn, a, wftc, ctx.ids.new_id())?
        }
        (CommandType::ScheduleNexusOperation | CommandType::RequestCancelNexusOperation, _) => {
            return Err(Refusal::Fail(validate::not_supported(kind)))
        }
        (kind, _) => return Err(Refusal::Fail(validate::attributes_not_set(kind))),
    }
    Ok(())
}

/// Ends the task after its commands applied: buffered events, the next task.
fn finish(mut txn: RunTxn, applied: Applied, wt: &WorkflowTaskInfo, req: &RespondWorkflowTaskCompletedRequest) -> Completed {
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
    let needs_task = open && (req.force_create_new_workflow_task || flushed > 0 || activity_cancelled);
    let new_task = needs_task || (open && applied.updates_waiting);
    if needs_task {
        wft::schedule_workflow_task(&mut txn, 1);
    } else if new_task {
        // Only updates wait (Go): a speculative task carries them.
        wft::schedule_speculative_workflow_task(&mut txn);
    }
    drop_start_to_close_timers(&mut txn);
    Completed { txn, new_run: applied.new_run, new_task, update_effects: applied.update_effects, reset_history_event_id: 0 }
}

/// A refused completion: the transition failing the task (none when Go would merely
/// drop it) and the error that answers the call.
pub struct Refused {
    pub txn: Option<RunTxn>,
    pub answer: WorkflowTaskError,
}

/// Fails the task `wt` for `refusal` on `txn`'s run (freshly loaded: nothing of the
/// completion is in it).
pub fn refuse(mut txn: RunTxn, wt: &WorkflowTaskInfo, refusal: Refusal, identity: &str, binary_checksum: &str) -> Refused {
    let unhandled = WorkflowTaskFailedCause::UnhandledCommand as i32;
    let (failure, terminate) = match refusal {
        Refusal::Unhandled => (CommandFailure { cause: unhandled, message: String::new() }, false),
        Refusal::Fail(f) => (f, false),
        Refusal::Terminate(f) => (f, true),
    };
    let message = failed_cause_message(failure.cause, &failure.message);
    let answer =
        if failure.cause == unhandled { WorkflowTaskError::UnhandledCommand } else { WorkflowTaskError::CommandRefused(failure.clone()) };
    if wt.attempt > 1 && failure.cause != unhandled {
        // Go: a task that keeps failing is dropped; its timeout retries it.
        return Refused { txn: None, answer };
    }
    #[allow(deprecated)]
    let failed = WorkflowTaskFailedEventAttributes {
        scheduled_event_id: wt.scheduled_event_id,
        started_event_id: wt.started_event_id,
        cause: failure.cause,
        failure: Some(server_failure(message.clone())),
        identity: identity.to_string(),
        binary_checksum: binary_checksum.to_string(),
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
    drop_start_to_close_timers(&mut txn);
    Refused { txn: Some(txn), answer }
}
