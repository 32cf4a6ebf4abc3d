//! Eager execution on the engine side (the rules are [`crate::core::eager`]): the
//! poll responses of tasks started in the transition of the call that asked for them
//! (a start's first workflow task, a completion's activities).

use std::collections::{HashMap, HashSet};

use hourglass_storage::state::RunKey;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{PollActivityTaskQueueResponse, PollWorkflowTaskQueueResponse};

use super::activity::dispatch::{response as activity_response, ScheduledEvent};
use super::workflow_task::workflow_task_response;
use super::ShardOwner;
use crate::core::eager;
use crate::core::state::ExecutionState;
use crate::core::txn::RunTxn;
use crate::engine::errors::StoredDataError;
use crate::error::Result;

/// The poll response of `run`'s started workflow task (`state` as committed), or
/// `None` if no task is started.
pub fn task_response(owner: &ShardOwner, run: &RunKey, state: &ExecutionState) -> Result<Option<Box<PollWorkflowTaskQueueResponse>>> {
    let Some(wt) = state.workflow_task.as_ref().filter(|wt| wt.started_event_id > 0) else { return Ok(None) };
    Ok(Some(Box::new(workflow_task_response(owner, run, state, wt, HashMap::new())?)))
}

/// A retried eager start of `run` (same request id): its first workflow task again
/// if that is still the started one, else nothing (it went to matching).
pub fn retried_task(owner: &ShardOwner, run: &RunKey) -> Result<Option<Box<PollWorkflowTaskQueueResponse>>> {
    let Some(view) = owner.load(run)? else { return Ok(None) };
    if eager::first_task_still_started(&view.state).is_none() {
        return Ok(None);
    }
    task_response(owner, run, &view.state)
}

/// In a completion's transition `txn` (commands applied, not committed): starts the
/// activities the completion scheduled and asked to run eagerly (`requested` activity
/// ids) for the completing worker `identity`; returns their poll responses, to be
/// answered once `txn` commits.
pub fn start_activities(txn: &mut RunTxn, requested: &HashSet<String>, identity: &str) -> Result<Vec<PollActivityTaskQueueResponse>> {
    if requested.is_empty() {
        return Ok(Vec::new());
    }
    let mut tasks = Vec::new();
    for scheduled_event_id in eager::scheduled_in(txn, requested) {
        let request_id = uuid::Uuid::new_v4().to_string();
        if !eager::start_activity(txn, scheduled_event_id, identity, &request_id) {
            continue;
        }
        let scheduled = scheduled_event(txn, scheduled_event_id)?;
        let ai = txn
            .state
            .activity(scheduled_event_id)
            .ok_or_else(|| StoredDataError::Vanished { run: txn.key.clone(), what: "the activity being started eagerly" })?;
        tasks.push(activity_response(&txn.key, &txn.state, ai, scheduled));
    }
    Ok(tasks)
}

/// The ActivityTaskScheduled event `txn` added as `scheduled_event_id`.
fn scheduled_event(txn: &RunTxn, scheduled_event_id: i64) -> Result<ScheduledEvent> {
    let event = txn.events().iter().find(|e| e.event_id == scheduled_event_id);
    match event.and_then(|e| e.attributes.clone().map(|a| (e.event_time, a))) {
        Some((time, Attributes::ActivityTaskScheduledEventAttributes(attributes))) => Ok(ScheduledEvent { time, attributes }),
        _ => {
            Err(StoredDataError::UnexpectedEvent { run: txn.key.clone(), event_id: scheduled_event_id, expected: "ActivityTaskScheduled" }
                .into())
        }
    }
}

#[cfg(test)]
mod tests;
