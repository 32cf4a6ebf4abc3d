//! Activity and user timers coming due: the timer service calls these with the stored
//! timer; each loads the run under its workflow lock, lets the core decide
//! ([`crate::core::activity::timeouts`]) and commits. A timer that no longer applies
//! (its run closed, or a transition since the timer service read it dropped it)
//! changes nothing; the timer service then drops it.

use hourglass_storage::state::RunKey;

use crate::core::activity::timeouts::{fire_activity_timer, fire_user_timer};
use crate::core::tasks::TimerPayload;
use crate::core::txn::RunTxn;
use crate::engine::Engine;
use crate::error::Result;

/// An activity timer (a timeout or the end of a retry backoff), stored as timer
/// `storage_timer_id`, came due.
pub async fn on_activity_timer(engine: &Engine, run: &RunKey, storage_timer_id: u64, timer: &TimerPayload) -> Result<()> {
    fire(engine, run, storage_timer_id, |txn| fire_activity_timer(txn, storage_timer_id, timer)).await
}

/// A user timer (`StartTimer`), stored as timer `storage_timer_id`, came due.
pub async fn on_user_timer(engine: &Engine, run: &RunKey, storage_timer_id: u64, timer: &TimerPayload) -> Result<()> {
    fire(engine, run, storage_timer_id, |txn| fire_user_timer(txn, storage_timer_id, timer)).await
}

/// Route → lock → load the view → decide → commit, for a timer still stored on an
/// open run.
async fn fire(engine: &Engine, run: &RunKey, storage_timer_id: u64, decide: impl FnOnce(&mut RunTxn) -> bool) -> Result<()> {
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    let Some(view) = lock.load(run)? else { return Ok(()) };
    if !view.state.is_open() || !view.has_timer(storage_timer_id) {
        return Ok(());
    }
    let mut txn = engine.txn(view);
    if decide(&mut txn) {
        lock.commit(txn).await?;
    }
    Ok(())
}
