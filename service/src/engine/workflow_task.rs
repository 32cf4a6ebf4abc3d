//! Workflow task lifecycle on the engine side: started (a poll takes the task),
//! completed (`RespondWorkflowTaskCompleted`, [`super::commands`]), failed
//! (`RespondWorkflowTaskFailed`), timed out (start-to-close timer). Each handler:
//! route → lock → load → the rule in [`crate::core::workflow_task`] → commit → tell
//! the query registry.

mod response;

use hourglass_storage::state::{QueueKey, QueueKind, RunKey};
use temporalio_protos::protos::temporal::api::workflowservice::v1::{PollWorkflowTaskQueueResponse, RespondWorkflowTaskFailedRequest};

pub use crate::core::workflow_task::{current_task, token_run, Poller};
pub use response::{
    execution_of, first_event_for, first_page, normal_queue, page_from, read_history, read_range, workflow_task_response,
    FIRST_PAGE_BYTES_MAX, FIRST_PAGE_EVENTS_MAX,
};

use super::start::new_run_id;
use super::{Engine, RunView, WorkflowGuard};
use crate::core::sticky;
use crate::core::token::TaskToken;
use crate::core::workflow_task as rule;
use crate::engine::errors::StoredDataError;
use crate::error::Result;
use crate::matching::TaskRef;

/// What became of a task a poll took from matching.
#[derive(Debug)]
pub enum Started {
    /// The task is started; hand this to the poller.
    Task(Box<PollWorkflowTaskQueueResponse>),
    /// The task no longer matches the run (completed, retried, run closed): skipped.
    Stale,
}

/// Records that a poller took `task` (from `queue`): WorkflowTaskStarted, the task
/// acknowledged, the start-to-close timer armed, all in one transition. Stale tasks
/// are acknowledged (if still in the backlog) and skipped.
pub async fn start(engine: &Engine, queue: &QueueKey, task: TaskRef, poller: &Poller) -> Result<Started> {
    let mut guard = engine.matching().hold(queue, task.clone());
    let run = task.run.clone();
    let lock = match engine.lock_workflow(&run.namespace, &run.workflow_id).await {
        Ok(lock) => lock,
        Err(e) => {
            // Not started: the caller puts a task back on `NotLeader` (or starts it
            // on the node that leads its shard); anything else the guard puts back.
            if matches!(e, crate::error::ServiceError::NotLeader { .. }) {
                guard.release();
            }
            return Err(e);
        }
    };
    if lock.term() != task.term {
        // Handed over by an owner whose term ended: the current owner has the task
        // from its shard's backlog.
        guard.release();
        return Ok(Started::Stale);
    }
    let Some(loaded) = lock.load(&run)? else {
        guard.release();
        return Ok(Started::Stale);
    };
    let pending = rule::pending_task(&loaded.state, &task.payload);
    let Some(wt) = pending.filter(|_| sticky::poll_fit(&loaded.state, &queue.name) != sticky::PollFit::Stale) else {
        guard.release();
        ack_stale(engine, &lock, &task, loaded).await;
        return Ok(Started::Stale);
    };
    // The backlog holding the task: the poll's queue, or the sticky queue matching
    // sent the task away from.
    let backlog = lock.read(|s| s.run(&run).and_then(|r| r.task_queue(task.task_id)).cloned())?.unwrap_or_else(|| queue.clone());

    let mut txn = engine.txn(loaded);
    let request_id = new_run_id();
    let started_event_id = rule::start(&mut txn, &wt, (&backlog, task.task_id), &queue.name, poller, request_id, engine.config());
    let state = txn.state.clone();
    match lock.commit(txn).await {
        Ok(_) => guard.release(),
        // Transient: the guard puts the task back for the next poll (matching drops
        // it if its owner's term has ended).
        Err(e) if e.is_transient() => return Err(e),
        Err(e) => {
            guard.release();
            tracing::error!(?run, task_id = task.task_id, error = %e, "recording a workflow task started failed; task dropped from matching");
            return Err(e);
        }
    }
    let queries = lock.queries().attach(&run, started_event_id);
    let messages = lock.updates().attach(&run, wt.scheduled_event_id);
    let owner = lock.owner().clone();
    drop(lock);
    let Some(started) = state.workflow_task.as_ref() else {
        return Err(StoredDataError::Vanished { run, what: "the started workflow task" }.into());
    };
    let mut response = workflow_task_response(&owner, &run, &state, started, queries)?;
    response.messages = messages;
    Ok(Started::Task(Box::new(response)))
}

/// A task that no longer matches its run leaves the backlog (if it is still there:
/// a dropped poll may have requeued a task whose start did commit), from whichever
/// queue holds it (a sticky task may have been polled from the normal queue).
async fn ack_stale(engine: &Engine, lock: &WorkflowGuard, task: &TaskRef, loaded: RunView) {
    let in_backlog = lock.read(|s| s.run(&task.run).and_then(|r| r.task_queue(task.task_id)).cloned());
    match in_backlog {
        Ok(Some(queue)) => {
            let mut txn = engine.txn(loaded);
            txn.ack(queue, task.task_id);
            if let Err(e) = lock.commit(txn).await {
                tracing::warn!(run = ?task.run, task_id = task.task_id, error = %e, "acknowledging a stale workflow task failed; it is retried after a restart");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(run = ?task.run, task_id = task.task_id, error = %e, "cannot check the backlog for a stale workflow task"),
    }
}

/// `RespondWorkflowTaskFailed`: WorkflowTaskFailed, then the task again (attempt + 1).
pub async fn fail(engine: &Engine, token: &TaskToken, req: RespondWorkflowTaskFailedRequest) -> Result<()> {
    let run = token_run(token);
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    let loaded = lock.load_existing(&run)?;
    let wt = current_task(&loaded.state, token)?;
    let mut txn = engine.txn(loaded);
    rule::fail(&mut txn, &wt, req);
    let outstanding = txn.state.has_workflow_task();
    lock.commit(txn).await?;
    lock.queries().on_workflow_task_closed(&run, outstanding);
    Ok(())
}

/// The start-to-close timer of workflow task (`scheduled_event_id`, `attempt`) fired.
pub async fn on_workflow_task_timeout(engine: &Engine, run: &RunKey, scheduled_event_id: i64, attempt: i32) -> Result<()> {
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    let Some(loaded) = lock.load(run)? else { return Ok(()) };
    let mut txn = engine.txn(loaded);
    if !rule::time_out(&mut txn, scheduled_event_id, attempt) {
        return Ok(());
    }
    let outstanding = txn.state.has_workflow_task();
    lock.commit(txn).await?;
    lock.queries().on_workflow_task_closed(run, outstanding);
    Ok(())
}

/// The schedule-to-start timer of sticky workflow task (`scheduled_event_id`,
/// `attempt`) fired: if nobody started it, WorkflowTaskTimedOut (SCHEDULE_TO_START)
/// and the task again on the normal queue ([`sticky::time_out_schedule_to_start`]);
/// the old task leaves the sticky queue's backlog in the same transition.
pub async fn on_schedule_to_start_timeout(engine: &Engine, run: &RunKey, scheduled_event_id: i64, attempt: i32) -> Result<()> {
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    let Some(loaded) = lock.load(run)? else { return Ok(()) };
    let Some(old_queue) = loaded.state.workflow_task.as_ref().map(|wt| wt.task_queue.clone()) else { return Ok(()) };
    let leftovers = lock.read(|s| backlog_tasks_in(s, run, &old_queue))?;
    let mut txn = engine.txn(loaded);
    if !sticky::time_out_schedule_to_start(&mut txn, scheduled_event_id, attempt) {
        return Ok(());
    }
    for (queue, task_id) in leftovers {
        txn.ack(queue, task_id);
    }
    let outstanding = txn.state.has_workflow_task();
    lock.commit(txn).await?;
    lock.queries().on_workflow_task_closed(run, outstanding);
    Ok(())
}

/// `ResetStickyTaskQueue`: the open run (empty `run_id`: the current one) is no longer
/// sticky; its next workflow task goes to the normal queue with full history. A task
/// already waiting on the sticky queue stays there until its schedule-to-start timer
/// moves it (Go: the sticky poller's start is refused as obsolete). No event.
pub async fn reset_sticky_task_queue(engine: &Engine, namespace: &str, workflow_id: &str, run_id: &str) -> Result<()> {
    let lock = engine.lock_workflow(namespace, workflow_id).await?;
    let run = super::runs::find_open_run(&lock, namespace, workflow_id, run_id, "")?;
    if run.state.sticky.is_none() {
        return Ok(());
    }
    let mut txn = engine.txn(run);
    sticky::clear(&mut txn.state);
    lock.commit(txn).await?;
    Ok(())
}

/// The run's workflow tasks still in the backlog of workflow queue `name`.
fn backlog_tasks_in(state: &hourglass_storage::state::ShardState, run: &RunKey, name: &str) -> Vec<(QueueKey, u64)> {
    let Some(r) = state.run(run) else { return Vec::new() };
    r.task_ids()
        .filter_map(|id| r.task_queue(id).filter(|q| q.kind == QueueKind::Workflow && q.name == name).map(|q| (q.clone(), id)))
        .collect()
}

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;
