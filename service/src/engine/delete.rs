//! `DeleteWorkflowExecution` (Temporal's `deleteworkflow`): an open run is
//! terminated first ("Delete workflow execution", by `history-service`), its closed
//! run's outbox (parent notification, parent close policy) is carried out, then the
//! run is deleted from the shard state machine in its own transition
//! ([`hourglass_storage::state::Op::DeleteRun`]): from then on Describe, GetHistory
//! and List do not know it, and its history records are reclaimed by the log's
//! garbage collection as those of a run past its retention are.

use super::runs::find_run;
use super::{children, Engine};
use crate::core::lifecycle;
use crate::core::run::SERVER_IDENTITY;
use crate::core::tasks::{TimerKind, TimerPayload};
use crate::error::Result;

/// The reason Temporal gives the termination of a run it deletes.
pub const DELETE_REASON: &str = "Delete workflow execution";

/// Deletes the run (`run_id` empty: the current run).
pub async fn delete_workflow(engine: &Engine, namespace: &str, workflow_id: &str, run_id: &str) -> Result<()> {
    let key = {
        let lock = engine.lock_workflow(namespace, workflow_id).await?;
        let run = find_run(&lock, namespace, workflow_id, run_id)?;
        let key = run.key.clone();
        if run.state.is_open() {
            let mut txn = engine.txn(run);
            lifecycle::terminate(&mut txn, DELETE_REASON.to_string(), None, SERVER_IDENTITY.to_string());
            lock.commit(txn).await?;
        }
        key
    };
    let view = engine.load(&key).await?;
    if view.as_ref().is_some_and(|v| crate::core::decode_timers(&v.stored_timers).any(|(_, t)| is_notify_parent(&t))) {
        children::on_closed_run(engine, &key).await?;
    }
    let lock = engine.lock_workflow(namespace, workflow_id).await?;
    let Some(run) = lock.load(&key)? else { return Ok(()) };
    let mut txn = engine.txn(run);
    txn.delete_run();
    lock.commit(txn).await?;
    Ok(())
}

fn is_notify_parent(t: &TimerPayload) -> bool {
    t.kind == TimerKind::NotifyParent as i32
}
