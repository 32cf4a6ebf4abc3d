//! Run-level timers on the engine side: run/execution timeouts (and the retry or
//! cron run that may follow a run timeout), the start backoff,
//! starting a child, the closed-run outbox. The rules are in
//! [`crate::core::lifecycle`]; children's steps in [`super::children`].

use hourglass_storage::state::RunKey;

use super::{children, history, Engine};
use crate::core::lifecycle::{self, TimeoutOutcome};
use crate::core::tasks::{TimerKind, TimerPayload};
use crate::core::txn::RunTxn;
use crate::core::{chain, Ctx};
use crate::engine::errors::MisuseError;
use crate::error::Result;

/// A run-level timer fired: run/execution timeout, start backoff, start a child,
/// the closed-run outbox (see `TimerKind`). Idempotent: a timer may fire again after
/// a crash, and one whose work is gone does nothing.
pub async fn on_run_timer(engine: &Engine, run: &RunKey, timer: &TimerPayload) -> Result<()> {
    match TimerKind::try_from(timer.kind) {
        Ok(TimerKind::WorkflowRunTimeout) => time_out(engine, run, false).await,
        Ok(TimerKind::WorkflowExecutionTimeout) => time_out(engine, run, true).await,
        Ok(TimerKind::WorkflowStartBackoff) => update(engine, run, lifecycle::on_start_backoff).await,
        Ok(TimerKind::StartChild) => children::start_child(engine, run, timer.event_id).await,
        Ok(TimerKind::NotifyParent) => children::on_closed_run(engine, run).await,
        _ => Err(MisuseError::NotARunTimer(timer.kind).into()),
    }
}

/// The run (or execution) timeout of `run` fired: the run times out, and its retry
/// or cron successor, if any, is committed with it.
async fn time_out(engine: &Engine, run: &RunKey, execution: bool) -> Result<()> {
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    let Some(view) = lock.load(run)? else { return Ok(()) };
    let started =
        if view.state.is_open() && chain::may_continue(&view.state) { Some(history::started_attributes(&lock, run)?) } else { None };
    let mut txn = engine.txn(view);
    let outcome = {
        let mut ids = engine.ids();
        let mut ctx = Ctx { now_ms: txn.now_ms, config: engine.config(), ids: &mut ids };
        lifecycle::on_timeout(&mut txn, execution, started.as_ref(), &mut ctx)
    };
    match outcome {
        TimeoutOutcome::NotDue => {}
        TimeoutOutcome::TimedOut { new_run: None } => drop(lock.commit(txn).await?),
        TimeoutOutcome::TimedOut { new_run: Some(new_run) } => drop(lock.commit_many(vec![txn, *new_run], None).await?),
    }
    Ok(())
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
