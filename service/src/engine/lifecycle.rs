//! Run lifecycle on the engine side: workflow timeouts, start backoff, children.

use hourglass_storage::state::RunKey;

use super::tasks::TimerPayload;
use super::Engine;
use crate::error::{Result, ServiceError};

/// A run-level timer fired: run/execution timeout, start backoff, start a child,
/// notify a parent (see `TimerKind`).
pub async fn on_run_timer(_engine: &Engine, _run: &RunKey, _timer: &TimerPayload) -> Result<()> {
    Err(ServiceError::Unimplemented("run timers are not built yet".into()))
}

use temporalio_protos::protos::temporal::api::command::v1::{
    ContinueAsNewWorkflowExecutionCommandAttributes, StartChildWorkflowExecutionCommandAttributes,
};

use super::txn::RunTxn;
use super::CommandFailure;

/// Called after a handler added the run's close event (completed, failed, canceled,
/// terminated, timed out, continued-as-new): drops pending work, closes the run in
/// storage, arms the parent notification.
pub fn on_run_closed(txn: &mut RunTxn) {
    txn.close_run();
}

/// `ContinueAsNewWorkflowExecution`: adds the ContinuedAsNew event to `txn`'s run and
/// closes it; returns the new run's transaction (commit both with `commit_many`).
pub fn continue_as_new(
    _engine: &Engine,
    _txn: &mut RunTxn,
    _attrs: ContinueAsNewWorkflowExecutionCommandAttributes,
    _workflow_task_completed_event_id: i64,
) -> Result<RunTxn, CommandFailure> {
    Err(CommandFailure { cause: 0, message: "ContinueAsNewWorkflowExecution is not built yet".into() })
}

/// `StartChildWorkflowExecution`: adds StartChildWorkflowExecutionInitiated and arms
/// the durable StartChild outbox timer.
pub fn initiate_child(
    _txn: &mut RunTxn,
    _attrs: StartChildWorkflowExecutionCommandAttributes,
    _workflow_task_completed_event_id: i64,
) -> Result<(), CommandFailure> {
    Err(CommandFailure { cause: 0, message: "StartChildWorkflowExecution is not built yet".into() })
}
