//! Run-level timers on the engine side: run/execution timeouts, the start backoff,
//! starting a child, the closed-run outbox. The rules are in
//! [`crate::core::lifecycle`]; children's steps in [`super::children`].

use hourglass_storage::state::RunKey;

use super::{children, Engine};
use crate::core::lifecycle;
use crate::core::tasks::{TimerKind, TimerPayload};
use crate::core::txn::RunTxn;
use crate::engine::errors::MisuseError;
use crate::error::Result;

/// A run-level timer fired: run/execution timeout, start backoff, start a child,
/// the closed-run outbox (see `TimerKind`). Idempotent: a timer may fire again after
/// a crash, and one whose work is gone does nothing.
pub async fn on_run_timer(engine: &Engine, run: &RunKey, timer: &TimerPayload) -> Result<()> {
    match TimerKind::try_from(timer.kind) {
        Ok(TimerKind::WorkflowRunTimeout) => update(engine, run, |txn| lifecycle::on_timeout(txn, false)).await,
        Ok(TimerKind::WorkflowExecutionTimeout) => update(engine, run, |txn| lifecycle::on_timeout(txn, true)).await,
        Ok(TimerKind::WorkflowStartBackoff) => update(engine, run, lifecycle::on_start_backoff).await,
        Ok(TimerKind::StartChild) => children::start_child(engine, run, timer.event_id).await,
        Ok(TimerKind::NotifyParent) => children::on_closed_run(engine, run).await,
        _ => Err(MisuseError::NotARunTimer(timer.kind).into()),
    }
}

/// Route → lock → load → decide → commit (when the rule changed something).
async fn update(engine: &Engine, run: &RunKey, decide: impl FnOnce(&mut RunTxn) -> bool) -> Result<()> {
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    let Some(view) = lock.load(run)? else { return Ok(()) };
    let mut txn = engine.txn(view);
    if decide(&mut txn) {
        lock.commit(txn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
