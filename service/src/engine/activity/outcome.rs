//! What workers report about an attempt (completed, failed, canceled, heartbeat):
//! route → lock → load → locate the activity → the core's rule
//! ([`crate::core::activity::outcome`]) → drop the timers it made obsolete → commit.
//! Each is one transition, answered after commit. Mirrors
//! `go/service/history/api/{respondactivitytask*,recordactivitytaskheartbeat}`.

use crate::core::activity::outcome::{self as rule, locate, Canceled, Completed, Failed, Heartbeat};
use crate::core::activity::{cleanup, ActivitySelector, ActivityTarget};
use crate::core::error::ActivityError;
use crate::core::txn::RunTxn;
use crate::engine::Engine;
use crate::error::Result;

/// The activity completed. By id, an activity whose attempt has not started is
/// completed too (its Started event is made up, as Temporal does).
pub async fn complete(engine: &Engine, target: &ActivityTarget, c: Completed) -> Result<()> {
    let by_token = matches!(target.selector, ActivitySelector::Attempt { .. });
    update(engine, target, by_token, true, |txn, id| Ok(rule::complete(txn, id, c)?)).await
}

/// The attempt failed: retried per the retry policy, or the activity fails.
pub async fn fail(engine: &Engine, target: &ActivityTarget, f: Failed) -> Result<()> {
    update(engine, target, true, true, |txn, id| Ok(rule::fail(txn, id, f)?)).await
}

/// The worker canceled the attempt after a cancel request.
pub async fn cancel(engine: &Engine, target: &ActivityTarget, c: Canceled) -> Result<()> {
    update(engine, target, true, true, |txn, id| Ok(rule::cancel(txn, id, c)?)).await
}

/// Records a heartbeat; returns whether the workflow asked to cancel the activity.
pub async fn heartbeat(engine: &Engine, target: &ActivityTarget, h: Heartbeat) -> Result<bool> {
    update(engine, target, true, false, |txn, id| Ok(rule::heartbeat(txn, id, h)?)).await
}

/// Locks the workflow, finds the target activity in its open run, applies `change`
/// (given the activity's scheduled event id) and commits; `ends_attempt`: the change
/// ends the running attempt, so its timers are dropped with it.
async fn update<T>(
    engine: &Engine,
    target: &ActivityTarget,
    require_started: bool,
    ends_attempt: bool,
    change: impl FnOnce(&mut RunTxn, i64) -> Result<T>,
) -> Result<T> {
    let run = &target.run;
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    let loaded = lock.load_existing(run)?;
    if !loaded.state.is_open() {
        return Err(ActivityError::RunCompleted.into());
    }
    let scheduled_event_id = locate(&loaded.state, &target.selector, require_started)?;
    let mut txn = engine.txn(loaded);
    let out = change(&mut txn, scheduled_event_id)?;
    if ends_attempt {
        cleanup::drop_obsolete_timers(&mut txn, None);
    }
    lock.commit(txn).await?;
    Ok(out)
}
