//! `RespondWorkflowTaskCompleted` on the engine side: route → lock → load → the
//! rules ([`crate::core::commands::complete`], or [`crate::core::commands::refuse`] when
//! a command is refused) → commit → the query registry learns the task closed (and
//! the answers to queries attached to it). Activities the worker asked to run
//! eagerly are started in the same transition and answered in `activity_tasks`.

use temporalio_protos::protos::temporal::api::workflowservice::v1::{
    RespondWorkflowTaskCompletedRequest, RespondWorkflowTaskCompletedResponse,
};

use super::workflow_task::{current_task, token_run};
use super::{history, Engine};
use crate::core::commands::{self as rule, command_sequence, Completed};
use crate::core::eager;
use crate::core::token::TaskToken;
use crate::core::Ctx;
use crate::error::Result;

/// `RespondWorkflowTaskCompleted` for the task `token` names.
pub async fn complete_workflow_task(
    engine: &Engine,
    token: &TaskToken,
    req: RespondWorkflowTaskCompletedRequest,
) -> Result<RespondWorkflowTaskCompletedResponse> {
    let run = token_run(token);
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    let view = lock.load_existing(&run)?;
    let wt = current_task(&view.state, token)?;
    command_sequence(&req.commands)?;
    // Continue-as-new hands the run's root execution to the new run; a retry or cron
    // successor starts from the run's Started attributes.
    let started = if rule::needs_started(&req, &view.state) { Some(history::started_attributes(&lock, &run)?) } else { None };
    let query_results = req.query_results.clone();
    #[allow(deprecated)] // `binary_checksum`: deprecated, still echoed on WorkflowTaskFailed
    let (identity, binary_checksum) = (req.identity.clone(), req.binary_checksum.clone());
    let eager_activities =
        if engine.config().eager_activity_dispatch { eager::requested_activities(&req.commands) } else { Default::default() };
    let book = lock.updates().book(&run, wt.scheduled_event_id);
    let decided = {
        let mut ids = engine.ids();
        let mut ctx = Ctx { now_ms: engine.now_ms(), config: engine.config(), ids: &mut ids };
        rule::complete(engine.txn(view), &wt, req, started.as_ref(), book, &mut ctx)
    };
    match decided {
        Ok(Completed { mut txn, new_run, new_task, update_effects, reset_history_event_id }) => {
            let activity_tasks = super::eager::start_activities(&mut txn, &eager_activities, &identity)?;
            match new_run {
                Some(new_run) => drop(lock.commit_many(vec![txn, new_run], None).await?),
                None => drop(lock.commit(txn).await?),
            }
            lock.updates().apply(&run, update_effects);
            lock.queries().answer_attached(&run, wt.started_event_id, &query_results);
            lock.queries().on_workflow_task_closed(&run, new_task);
            Ok(RespondWorkflowTaskCompletedResponse { activity_tasks, reset_history_event_id, ..Default::default() })
        }
        Err(refusal) => {
            // Answers to queries attached to this task count even when the task fails (Go).
            lock.queries().answer_attached(&run, wt.started_event_id, &query_results);
            let refused = rule::refuse(engine.txn(lock.load_existing(&run)?), &wt, refusal, &identity, &binary_checksum);
            if let Some(txn) = refused.txn {
                let outstanding = txn.state.has_workflow_task();
                lock.commit(txn).await?;
                lock.queries().on_workflow_task_closed(&run, outstanding);
            }
            Err(refused.answer.into())
        }
    }
}

#[cfg(test)]
mod metadata_tests;
#[cfg(test)]
mod tests;
