//! Workflow updates on the engine side (Go's `history/api/updateworkflow` and
//! `pollupdate`): admitting an update into the shard owner's registry (scheduling a
//! workflow task to carry it when none is outstanding), finding one again (by update
//! id: in the registry, or in the run's state once accepted), and noticing a run that
//! closed under a waiting update. The rules for a completion's update messages are
//! in [`crate::core::updates`].

use hourglass_storage::state::RunKey;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::update::v1::{Outcome, Request};

use super::errors::{StoredDataError, UpdateError};
use super::history::read_event;
use super::runs::find_run;
use super::Engine;
use crate::core::error::RunError;
use crate::core::signals::check_chain;
use crate::core::state::ExecutionState;
use crate::core::wft::schedule_speculative_workflow_task;
use crate::error::Result;
use crate::shard::updates::{Abort, AdmitError, Progress, UpdateWatch};
use crate::shard::ShardOwner;

/// The update a call names: `run_id` empty for the current run.
#[derive(Debug, Clone)]
pub struct UpdateTarget {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
    pub first_execution_run_id: String,
    pub update_id: String,
}

/// An update found or admitted, and the run it belongs to.
pub struct Found {
    pub run: RunKey,
    pub watch: UpdateWatch,
}

/// UpdateWorkflowExecution's admission: the update `request` (its id in `target`)
/// joins the run's registry, or the caller is handed the one already known by that id.
pub async fn admit(engine: &Engine, target: &UpdateTarget, request: Request) -> Result<Found> {
    let lock = engine.lock_workflow(&target.namespace, &target.workflow_id).await?;
    let view = find_run(&lock, &target.namespace, &target.workflow_id, &target.run_id)?;
    check_chain(&view, &target.first_execution_run_id)?;
    let run = view.key.clone();
    if let Some(watch) = known(&lock, &run, &view.state, &target.update_id)? {
        return Ok(Found { run, watch });
    }
    if !view.state.is_open() {
        return Err(RunError::Completed.into());
    }
    if view.state.updates.len() >= crate::core::updates::UPDATES_PER_RUN_MAX {
        return Err(UpdateError::TooManyTotal { max: crate::core::updates::UPDATES_PER_RUN_MAX }.into());
    }
    let accepted_in_flight = view.state.updates.iter().filter(|u| u.completed_event_id == 0).count();
    let watch = lock.updates().admit(&run, &target.update_id, request, accepted_in_flight).map_err(|e| match e {
        AdmitError::TooManyInFlight => UpdateError::TooManyInFlight { max: crate::core::updates::UPDATES_IN_FLIGHT_MAX },
    })?;
    if needs_workflow_task(&view.state, engine.now_ms()) {
        let mut txn = engine.txn(view);
        schedule_speculative_workflow_task(&mut txn);
        if let Err(e) = lock.commit(txn).await {
            lock.updates().withdraw(&run, &target.update_id);
            return Err(e);
        }
    }
    Ok(Found { run, watch })
}

/// A workflow task must be scheduled to carry a new update: none is outstanding,
/// and the run is past its start delay (the first task carries it then).
fn needs_workflow_task(state: &ExecutionState, now_ms: i64) -> bool {
    let delayed_start = state.last_completed_wft_started_id == 0 && state.execution_time_ms > now_ms;
    !state.has_workflow_task() && !delayed_start
}

/// PollWorkflowExecutionUpdate's lookup: the update `target` names, wherever it is.
pub async fn find(engine: &Engine, target: &UpdateTarget) -> Result<Found> {
    let lock = engine.lock_workflow(&target.namespace, &target.workflow_id).await?;
    let view = find_run(&lock, &target.namespace, &target.workflow_id, &target.run_id)?;
    check_chain(&view, &target.first_execution_run_id)?;
    let run = view.key.clone();
    match known(&lock, &run, &view.state, &target.update_id)? {
        Some(watch) => Ok(Found { run, watch }),
        None => Err(UpdateError::NotFound(target.update_id.clone()).into()),
    }
}

/// The update `update_id` of `run`, if known: from the run's state once accepted or
/// durably admitted (completed: its outcome from history), else from the registry.
fn known(owner: &ShardOwner, run: &RunKey, state: &ExecutionState, update_id: &str) -> Result<Option<UpdateWatch>> {
    if let Some(info) = state.update(update_id) {
        if info.completed_event_id > 0 {
            let outcome = completed_outcome(owner, run, info.completed_event_id)?;
            return Ok(Some(UpdateWatch::done(Progress::Completed(Box::new(outcome)))));
        }
        if info.awaits_acceptance() {
            return Ok(Some(owner.updates().watch_durable(run, update_id)));
        }
        return Ok(Some(owner.updates().watch_accepted(run, update_id)));
    }
    Ok(owner.updates().watch(run, update_id))
}

fn completed_outcome(owner: &ShardOwner, run: &RunKey, event_id: i64) -> Result<Outcome> {
    match read_event(owner, run, event_id)?.attributes {
        Some(Attributes::WorkflowExecutionUpdateCompletedEventAttributes(a)) => Ok(a.outcome.unwrap_or_default()),
        _ => Err(StoredDataError::UnexpectedEvent { run: run.clone(), event_id, expected: "WorkflowExecutionUpdateCompleted" }.into()),
    }
}

/// A waiter's safety net: if `run` closed by a path that does not pass through a
/// workflow task (terminated, timed out), its updates not accepted end now.
pub async fn recheck(engine: &Engine, run: &RunKey) -> Result<()> {
    let owner = engine.owner_of_run(run).await?;
    if let Some(view) = owner.load(run)? {
        if !view.state.is_open() {
            let abort = match view.state.new_execution_run_id.as_str() {
                "" => Abort::RunClosed,
                next => Abort::ContinuedAs(next.to_string()),
            };
            owner.updates().on_run_closed(run, abort);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
