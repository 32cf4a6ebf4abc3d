//! Workflow queries (`QueryWorkflow`, `RespondQueryTaskCompleted`), following Go's
//! `history/api/queryworkflow`: a query is sent to a worker directly (a legacy query
//! task) when that is consistent — the run is closed, or no workflow task is
//! outstanding — and otherwise waits for the next workflow task, which carries it in
//! `queries`. See [`crate::shard::queries`] for the life of a pending query.

pub use crate::shard::queries::{QueryOutcome, QueryRegistry, QueryTask, QueryTicket, RegisterError, QUERIES_PER_RUN_MAX};

use hourglass_storage::state::{QueueKey, QueueKind, RunKey};
use temporalio_protos::protos::temporal::api::common::v1::WorkflowType;
use temporalio_protos::protos::temporal::api::enums::v1::{EventType, QueryRejectCondition, WorkflowExecutionStatus};
use temporalio_protos::protos::temporal::api::history::v1::History;
use temporalio_protos::protos::temporal::api::query::v1::WorkflowQuery;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{PollWorkflowTaskQueueResponse, RespondQueryTaskCompletedRequest};

use super::errors::QueryError;
use super::workflow_task::{first_page, read_history, token_run, FIRST_PAGE_BYTES_MAX, FIRST_PAGE_EVENTS_MAX};
use super::{Engine, RunView, ShardOwner};
use crate::core::state::ExecutionState;
use crate::core::tasks::TaskKind;
use crate::core::token::TaskToken;
use crate::error::Result;
use crate::matching::TaskRef;
use std::sync::Arc;

/// A failing workflow task fails queries fast from this attempt on (Go).
const FAIL_QUERY_WORKFLOW_TASK_ATTEMPT: i32 = 3;

/// What `QueryWorkflow` gets back when it asks.
pub enum Asked {
    /// Rejected by the request's `query_reject_condition`: the run's status.
    Rejected(WorkflowExecutionStatus),
    /// Registered; wait on the ticket (and call [`recheck`] now and then).
    Pending(QueryTicket),
}

/// Registers `query` on `run`, dispatching it at once when that is consistent.
pub async fn ask(engine: &Engine, run: &RunKey, query: WorkflowQuery, reject_condition: i32) -> Result<Asked> {
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    let loaded = lock.load_existing(run)?;
    let state = &loaded.state;
    if let Some(status) = rejected(state, reject_condition) {
        return Ok(Asked::Rejected(status));
    }
    if state.workflow_task.is_none() && state.last_completed_wft_started_id == 0 {
        return Err(QueryError::NoWorkflowTaskYet.into());
    }
    if state.is_open() && state.workflow_task_attempt >= FAIL_QUERY_WORKFLOW_TASK_ATTEMPT {
        return Err(QueryError::WorkflowTaskFailing.into());
    }
    let queue = QueueKey { namespace: run.namespace.clone(), name: state.task_queue.clone(), kind: QueueKind::Workflow };
    let direct = direct_dispatch_ok(&lock, run, &loaded)?;
    let too_many = |e| match e {
        RegisterError::TooManyPending { max } => QueryError::TooManyPending { max },
    };
    let ticket = match sticky_route(&run.namespace, state).filter(|_| direct) {
        Some((sticky, timeout)) => {
            let ticket = lock.queries().register_sticky(run, query, queue, sticky).map_err(too_many)?;
            let (registry, run, id, engine) = (lock.queries().clone(), run.clone(), ticket.id().to_string(), engine.clone());
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                if !registry.waits_on_sticky(&run, &id) {
                    return;
                }
                // As Go's history after a sticky query timed out: the run's stickiness
                // ends (first, so the query's next poller sees a run that is not
                // sticky), and the query goes to the normal queue.
                let reset = super::workflow_task::reset_sticky_task_queue(&engine, &run.namespace, &run.workflow_id, &run.run_id);
                if let Err(e) = reset.await {
                    tracing::debug!(?run, error = %e, "stickiness not reset after a sticky query timed out");
                }
                registry.fall_back(&run, &id);
            });
            ticket
        }
        None => lock.queries().register(run, query, queue, direct).map_err(too_many)?,
    };
    Ok(Asked::Pending(ticket))
}

/// A sticky run's sticky queue, and how long a legacy query task waits there before
/// it goes to the normal queue (the sticky schedule-to-start timeout, as Go's
/// history waits on its sticky query).
fn sticky_route(namespace: &str, state: &ExecutionState) -> Option<(QueueKey, std::time::Duration)> {
    let sticky = state.sticky.as_ref().filter(|s| !s.queue.is_empty() && s.schedule_to_start_ms > 0)?;
    let queue = QueueKey { namespace: namespace.to_string(), name: sticky.queue.clone(), kind: QueueKind::Workflow };
    Some((queue, std::time::Duration::from_millis(sticky.schedule_to_start_ms.unsigned_abs())))
}

/// Re-evaluates a waiting query: dispatches it if the run closed or has no workflow
/// task outstanding (a safety net for paths that end a task without telling us).
pub async fn recheck(engine: &Engine, ticket: &QueryTicket) -> Result<()> {
    let run = ticket.run();
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    let Some(loaded) = lock.load(run)? else { return Ok(()) };
    if direct_dispatch_ok(&lock, run, &loaded)? {
        lock.queries().on_workflow_task_closed(run, false);
    }
    Ok(())
}

/// The status a query is rejected with, per `query_reject_condition`.
fn rejected(state: &ExecutionState, reject_condition: i32) -> Option<WorkflowExecutionStatus> {
    if state.is_open() {
        return None;
    }
    let status = WorkflowExecutionStatus::try_from(state.status).unwrap_or(WorkflowExecutionStatus::Unspecified);
    match QueryRejectCondition::try_from(reject_condition) {
        Ok(QueryRejectCondition::NotOpen) => Some(status),
        Ok(QueryRejectCondition::NotCompletedCleanly) if status != WorkflowExecutionStatus::Completed => Some(status),
        _ => None,
    }
}

/// A query may go to a worker directly when the worker can replay the history (some
/// workflow task has started) and the run is closed or has no task outstanding.
/// `None`: a closed run that never completed a task; its history decides.
fn direct_dispatch_from_state(state: &ExecutionState) -> Option<bool> {
    let ever_started =
        state.last_completed_wft_started_id > 0 || state.workflow_task.as_ref().is_some_and(|wt| wt.started_event_id > 0 || wt.attempt > 1);
    if state.is_open() {
        return Some(ever_started && state.workflow_task.is_none());
    }
    ever_started.then_some(true)
}

/// Whether a query on `loaded` may be dispatched as a legacy query task now.
pub fn direct_dispatch_ok(owner: &ShardOwner, run: &RunKey, loaded: &RunView) -> Result<bool> {
    if let Some(decided) = direct_dispatch_from_state(&loaded.state) {
        return Ok(decided);
    }
    let history = read_history(owner, run, loaded.next_event_id - 1)?;
    Ok(history.events.iter().any(|e| e.event_type == EventType::WorkflowTaskStarted as i32))
}

/// A legacy query task a poll took: of an owner on this node (claimed), or of a shard
/// another node leads (started there).
pub enum PolledQuery {
    Here(Arc<ShardOwner>, QueryTask),
    Elsewhere { node: u64, task: TaskRef },
}

/// Waits up to `wait` for a legacy query task on `queue`, from any shard's owner
/// (on a cluster node, also of shards led elsewhere). Cancellation-safe.
pub async fn poll_task(engine: &Engine, queue: &QueueKey, wait: std::time::Duration) -> Option<PolledQuery> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let task = engine.query_dispatch().poll(queue, left).await?;
        match engine.router().owners().current(task.shard) {
            Some(owner) => {
                if let Some(query) = owner.queries().claim(task) {
                    return Some(PolledQuery::Here(owner, query));
                }
            }
            None => {
                let me = engine.node().node_id();
                match engine.node().leader(task.shard) {
                    Ok(Some(node)) if node != me && engine.remote_tasks().is_some() => return Some(PolledQuery::Elsewhere { node, task }),
                    // No leader known: the query's owner is gone and withdrew it.
                    _ => continue,
                }
            }
        }
    }
}

/// The poll response for a legacy query task polled from queue `polled`: no new
/// workflow task (`started_event_id` 0); the full history to date, or none on the
/// run's sticky queue (Go sends a sticky worker no events for a query: it has the
/// run cached, or fetches the history itself). `None` if the run is gone (the query
/// is then failed).
pub fn legacy_task_response(owner: &ShardOwner, task: &QueryTask, polled: &QueueKey) -> Result<Option<PollWorkflowTaskQueueResponse>> {
    let Some(loaded) = owner.load(&task.run)? else {
        let gone = format!("workflow execution {}/{} no longer exists", task.run.workflow_id, task.run.run_id);
        owner.queries().answer(&task.run, &task.query_id, QueryOutcome::Failed(gone));
        return Ok(None);
    };
    let last_event_id = loaded.next_event_id - 1;
    let token = TaskToken {
        kind: TaskKind::WorkflowTask as i32,
        namespace: task.run.namespace.clone(),
        workflow_id: task.run.workflow_id.clone(),
        run_id: task.run.run_id.clone(),
        scheduled_event_id: last_event_id.max(1),
        attempt: 1,
        query_id: task.query_id.clone(),
        ..Default::default()
    };
    let state = &loaded.state;
    let (history, next_page_token) = if polled.name != state.task_queue {
        (History::default(), Vec::new())
    } else {
        first_page(owner, &task.run, last_event_id, FIRST_PAGE_EVENTS_MAX, FIRST_PAGE_BYTES_MAX)?
    };
    Ok(Some(PollWorkflowTaskQueueResponse {
        task_token: token.encode_token(),
        workflow_execution: Some(super::workflow_task::execution_of(&task.run)),
        workflow_type: Some(WorkflowType { name: state.workflow_type.clone() }),
        previous_started_event_id: state.last_completed_wft_started_id,
        started_event_id: 0,
        attempt: 1,
        history: Some(history),
        next_page_token,
        query: Some(task.query.clone()),
        workflow_execution_task_queue: Some(super::workflow_task::normal_queue(state)),
        ..Default::default()
    }))
}

/// `RespondQueryTaskCompleted`: hands the worker's answer to the waiting caller.
pub async fn respond(engine: &Engine, token: &TaskToken, req: RespondQueryTaskCompletedRequest) -> Result<()> {
    // A token of another kind names no query task (Temporal: NotFound).
    if token.query_id.is_empty() {
        return Err(QueryError::TaskNotFound.into());
    }
    let failure_message = req.failure.as_ref().map(|f| f.message.as_str());
    let outcome = QueryOutcome::from_result(req.completed_type, req.query_result, &req.error_message, failure_message)
        .ok_or(QueryError::BadCompletedType)?;
    let run = token_run(token);
    if !engine.owner_of_run(&run).await?.queries().answer(&run, &token.query_id, outcome) {
        return Err(QueryError::AlreadyAnswered.into());
    }
    Ok(())
}

#[cfg(test)]
mod flow_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::WorkflowTaskInfo;

    fn state(open: bool, last_completed: i64, wft: Option<(i64, i32)>) -> ExecutionState {
        ExecutionState {
            close_time_ms: if open { 0 } else { 5 },
            status: if open { WorkflowExecutionStatus::Running } else { WorkflowExecutionStatus::Failed } as i32,
            last_completed_wft_started_id: last_completed,
            workflow_task: wft.map(|(started, attempt)| WorkflowTaskInfo {
                scheduled_event_id: 2,
                started_event_id: started,
                attempt,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn direct_dispatch_rules() {
        assert_eq!(direct_dispatch_from_state(&state(true, 3, None)), Some(true), "idle run");
        assert_eq!(direct_dispatch_from_state(&state(true, 3, Some((0, 1)))), Some(false), "a task is scheduled: attach to it");
        assert_eq!(direct_dispatch_from_state(&state(true, 3, Some((7, 1)))), Some(false), "in flight: attach to the next");
        assert_eq!(direct_dispatch_from_state(&state(false, 3, None)), Some(true), "closed");
        assert_eq!(direct_dispatch_from_state(&state(true, 0, Some((0, 1)))), Some(false), "first task not started yet");
        assert_eq!(direct_dispatch_from_state(&state(false, 0, None)), None, "closed before completing a task: ask the history");
    }

    #[test]
    fn reject_conditions() {
        let closed = state(false, 3, None);
        assert_eq!(rejected(&closed, QueryRejectCondition::NotOpen as i32), Some(WorkflowExecutionStatus::Failed));
        assert_eq!(rejected(&closed, QueryRejectCondition::NotCompletedCleanly as i32), Some(WorkflowExecutionStatus::Failed));
        assert_eq!(rejected(&closed, QueryRejectCondition::None as i32), None);
        assert_eq!(rejected(&state(true, 3, None), QueryRejectCondition::NotOpen as i32), None);
        let completed = ExecutionState { status: WorkflowExecutionStatus::Completed as i32, ..closed };
        assert_eq!(rejected(&completed, QueryRejectCondition::NotCompletedCleanly as i32), None);
    }
}
