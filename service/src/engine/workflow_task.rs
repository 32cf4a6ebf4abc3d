//! Workflow task lifecycle on the engine side: started (a poll takes the task),
//! failed (`RespondWorkflowTaskFailed`), timed out (start-to-close timer), plus what
//! completions share: matching a token to the run's current task, and retrying a
//! task that did not complete. Completions themselves are in [`super::commands`].

mod response;

use hourglass_storage::state::{QueueKey, RunKey};
use prost::Message;
use temporalio_protos::protos::temporal::api::common::v1::WorkerVersionStamp;
use temporalio_protos::protos::temporal::api::enums::v1::{SuggestContinueAsNewReason, TimeoutType};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    WorkflowTaskFailedEventAttributes, WorkflowTaskStartedEventAttributes, WorkflowTaskTimedOutEventAttributes,
};
use temporalio_protos::protos::temporal::api::workflowservice::v1::{PollWorkflowTaskQueueResponse, RespondWorkflowTaskFailedRequest};

pub use response::{
    execution_of, first_page, normal_queue, read_history, workflow_task_response, FIRST_PAGE_BYTES_MAX, FIRST_PAGE_EVENTS_MAX,
};

use super::state::{ExecutionState, WorkflowTaskInfo};
use super::tasks::{TaskKind, TimerKind, TimerPayload};
use super::token::TaskToken;
use super::txn::RunTxn;
use super::{wft, Engine, ShardOwner, WorkflowGuard};
use crate::error::{Result, ServiceError};
use crate::matching::{Matching, TaskRef};

/// History size from which WorkflowTaskStarted suggests continue-as-new (Go default).
const SUGGEST_CAN_HISTORY_BYTES: i64 = 4 * 1024 * 1024;
/// History length from which WorkflowTaskStarted suggests continue-as-new (Go default).
const SUGGEST_CAN_HISTORY_EVENTS: i64 = 4 * 1024;
/// From this attempt on, the start-to-close timeout grows (Go: the retry backoff of
/// a failing workflow task is folded into its timeout).
const RETRY_BACKOFF_MIN_ATTEMPTS: i32 = 3;
const RETRY_BACKOFF_INITIAL_MS: i64 = 5_000;
const RETRY_BACKOFF_MAX_MS: i64 = 600_000;

/// Who polled, as recorded in WorkflowTaskStarted.
#[derive(Debug, Clone, Default)]
pub struct Poller {
    pub identity: String,
    /// `worker_version_capabilities.build_id` of the poll, if any.
    pub build_id: String,
}

/// What became of a task a poll took from matching.
#[derive(Debug)]
pub enum Started {
    /// The task is started; hand this to the poller.
    Task(Box<PollWorkflowTaskQueueResponse>),
    /// The task no longer matches the run (completed, retried, run closed): skipped.
    Stale,
}

/// The run a task token names.
pub fn token_run(token: &TaskToken) -> RunKey {
    RunKey { namespace: token.namespace.clone(), workflow_id: token.workflow_id.clone(), run_id: token.run_id.clone() }
}

/// The started workflow task `token` names, or `NotFound` (as Go: the worker then
/// drops its copy of the run and the next task replays).
pub fn current_task(state: &ExecutionState, token: &TaskToken) -> Result<WorkflowTaskInfo> {
    // A token of another kind names no workflow task (Temporal: NotFound).
    if token.kind != TaskKind::WorkflowTask as i32 || !token.query_id.is_empty() {
        return Err(ServiceError::NotFound("Workflow task not found.".into()));
    }
    if !state.is_open() {
        return Err(ServiceError::NotFound("workflow execution already completed".into()));
    }
    match &state.workflow_task {
        Some(wt)
            if wt.started_event_id > 0
                && wt.scheduled_event_id == token.scheduled_event_id
                && wt.started_event_id == token.started_event_id
                && wt.attempt == token.attempt =>
        {
            Ok(wt.clone())
        }
        _ => Err(ServiceError::NotFound("Workflow task not found.".into())),
    }
}

/// Puts a task taken from matching back unless the caller settled it: a poll that is
/// dropped (client gone) or fails transiently loses no task.
struct TaskGuard<'a> {
    matching: &'a Matching,
    queue: &'a QueueKey,
    task: Option<TaskRef>,
}

impl TaskGuard<'_> {
    fn settle(&mut self) {
        self.task = None;
    }
}

impl Drop for TaskGuard<'_> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.matching.requeue(self.queue.clone(), task);
        }
    }
}

/// Records that a poller took `task` (from `queue`): WorkflowTaskStarted, the task
/// acknowledged, the start-to-close timer armed, all in one transition. Stale tasks
/// are acknowledged (if still in the backlog) and skipped.
pub async fn start(engine: &Engine, queue: &QueueKey, task: TaskRef, poller: &Poller) -> Result<Started> {
    let mut guard = TaskGuard { matching: engine.matching(), queue, task: Some(task.clone()) };
    let run = task.run.clone();
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    if lock.term() != task.term {
        // Handed over by an owner whose term ended: the current owner has the task
        // from its shard's backlog.
        guard.settle();
        return Ok(Started::Stale);
    }
    let Some(loaded) = lock.load(&run)? else {
        guard.settle();
        return Ok(Started::Stale);
    };
    let p = &task.payload;
    let current = loaded.state.workflow_task.clone().filter(|wt| {
        p.kind == TaskKind::WorkflowTask as i32
            && wt.scheduled_event_id == p.scheduled_event_id
            && wt.attempt == p.attempt
            && wt.started_event_id == 0
    });
    let Some(wt) = current.filter(|_| loaded.state.is_open()) else {
        guard.settle();
        ack_stale(engine, &lock, queue, &task, loaded).await;
        return Ok(Started::Stale);
    };

    let mut txn = engine.txn(loaded);
    let started_event_id = record_started(&mut txn, &wt, poller);
    txn.ack(queue.clone(), task.task_id);
    let base_timeout = if wt.timeout_ms > 0 { wt.timeout_ms } else { engine.config().default_workflow_task_timeout_ms };
    let timer = TimerPayload {
        kind: TimerKind::WorkflowTaskStartToClose as i32,
        event_id: wt.scheduled_event_id,
        attempt: wt.attempt,
        timer_id: String::new(),
    };
    txn.add_timer(txn.now_ms.saturating_add(start_to_close_ms(base_timeout, wt.attempt)), timer);
    let state = txn.state.clone();
    match lock.commit(txn).await {
        Ok(_) => guard.settle(),
        // Transient: the guard puts the task back for the next poll (matching drops
        // it if its owner's term has ended).
        Err(e @ (ServiceError::Unavailable(_) | ServiceError::ResourceExhausted(_) | ServiceError::NotLeader { .. })) => return Err(e),
        Err(e) => {
            guard.settle();
            tracing::error!(?run, task_id = task.task_id, error = %e, "recording a workflow task started failed; task dropped from matching");
            return Err(e);
        }
    }
    let queries = lock.queries().attach(&run, started_event_id);
    let owner = lock.owner().clone();
    drop(lock);
    let Some(started) = state.workflow_task.as_ref() else {
        return Err(ServiceError::Internal("started workflow task vanished from the state".into()));
    };
    let response = workflow_task_response(&owner, &run, &state, started, queries)?;
    Ok(Started::Task(Box::new(response)))
}

/// Adds WorkflowTaskStarted for `wt` and marks it started; returns the event id.
fn record_started(txn: &mut RunTxn, wt: &WorkflowTaskInfo, poller: &Poller) -> i64 {
    let history_size_bytes = txn.state.history_size_bytes;
    let mut reasons = Vec::new();
    if history_size_bytes >= SUGGEST_CAN_HISTORY_BYTES {
        reasons.push(SuggestContinueAsNewReason::HistorySizeTooLarge as i32);
    }
    if txn.next_event_id() >= SUGGEST_CAN_HISTORY_EVENTS {
        reasons.push(SuggestContinueAsNewReason::TooManyHistoryEvents as i32);
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    #[allow(deprecated)]
    let attributes = WorkflowTaskStartedEventAttributes {
        scheduled_event_id: wt.scheduled_event_id,
        identity: poller.identity.clone(),
        request_id: request_id.clone(),
        suggest_continue_as_new: !reasons.is_empty(),
        suggest_continue_as_new_reasons: reasons,
        history_size_bytes,
        worker_version: (!poller.build_id.is_empty())
            .then(|| WorkerVersionStamp { build_id: poller.build_id.clone(), use_versioning: false }),
        ..Default::default()
    };
    let started_event_id = txn.add_event(Attributes::WorkflowTaskStartedEventAttributes(attributes));
    let now = txn.now_ms;
    if let Some(task) = txn.state.workflow_task.as_mut() {
        task.started_event_id = started_event_id;
        task.started_time_ms = now;
        task.identity = poller.identity.clone();
        task.request_id = request_id;
    }
    started_event_id
}

/// Start-to-close timeout of `attempt`: the workflow's, plus a growing backoff once a
/// task keeps failing (so a broken workflow is retried ever more slowly).
pub fn start_to_close_ms(base_ms: i64, attempt: i32) -> i64 {
    if attempt <= RETRY_BACKOFF_MIN_ATTEMPTS {
        return base_ms;
    }
    let doublings = (attempt - RETRY_BACKOFF_MIN_ATTEMPTS - 1).clamp(0, 20) as u32;
    let backoff = RETRY_BACKOFF_INITIAL_MS.saturating_mul(1i64 << doublings).min(RETRY_BACKOFF_MAX_MS);
    base_ms.saturating_add(backoff)
}

/// A task that no longer matches its run leaves the backlog (if it is still there:
/// a dropped poll may have requeued a task whose start did commit).
async fn ack_stale(engine: &Engine, lock: &WorkflowGuard, queue: &QueueKey, task: &TaskRef, loaded: super::LoadedRun) {
    let in_backlog = lock.read(|s| s.task(queue, task.task_id).is_some());
    match in_backlog {
        Ok(true) => {
            let mut txn = engine.txn(loaded);
            txn.ack(queue.clone(), task.task_id);
            if let Err(e) = lock.commit(txn).await {
                tracing::warn!(run = ?task.run, task_id = task.task_id, error = %e, "acknowledging a stale workflow task failed; it is retried after a restart");
            }
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(run = ?task.run, task_id = task.task_id, error = %e, "cannot check the backlog for a stale workflow task"),
    }
}

/// Removes, in `txn`, the run's stored start-to-close timers of workflow tasks. Call
/// when the started task ends: the timer would only fire stale, and costs a write to
/// remove then (timers only change under the workflow lock, so the ids hold).
pub fn drop_start_to_close_timers(owner: &ShardOwner, txn: &mut RunTxn) -> Result<()> {
    let key = &txn.key;
    let ids: Vec<u64> = owner.read(|s| {
        let Some(run) = s.run(key) else { return Vec::new() };
        run.timer_ids()
            .filter(|&id| {
                s.timer(id).is_some_and(|t| {
                    TimerPayload::decode(t.payload().as_ref()).is_ok_and(|p| p.kind == TimerKind::WorkflowTaskStartToClose as i32)
                })
            })
            .collect()
    })?;
    for id in ids {
        txn.remove_timer(id);
    }
    Ok(())
}

/// After WorkflowTaskFailed/TimedOut of `attempt`: the events buffered meanwhile are
/// written, and (if the run is open) the task is scheduled again with `attempt + 1`.
pub fn retry_workflow_task(txn: &mut RunTxn, attempt: i32) {
    txn.flush_buffered_events();
    txn.state.workflow_task = None;
    if !txn.state.is_open() {
        return;
    }
    let next = attempt.max(1).saturating_add(1);
    txn.state.workflow_task_attempt = next;
    wft::schedule_workflow_task(txn, next);
}

/// `RespondWorkflowTaskFailed`: WorkflowTaskFailed, then the task again (attempt + 1).
pub async fn fail(engine: &Engine, token: &TaskToken, req: RespondWorkflowTaskFailedRequest) -> Result<()> {
    let run = token_run(token);
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    let loaded = lock.load_existing(&run)?;
    let wt = current_task(&loaded.state, token)?;
    let mut txn = engine.txn(loaded);
    #[allow(deprecated)]
    let attributes = WorkflowTaskFailedEventAttributes {
        scheduled_event_id: wt.scheduled_event_id,
        started_event_id: wt.started_event_id,
        cause: req.cause,
        failure: req.failure,
        identity: req.identity,
        binary_checksum: req.binary_checksum,
        worker_version: req.worker_version,
        ..Default::default()
    };
    txn.add_event(Attributes::WorkflowTaskFailedEventAttributes(attributes));
    retry_workflow_task(&mut txn, wt.attempt);
    drop_start_to_close_timers(&lock, &mut txn)?;
    let outstanding = txn.state.has_workflow_task();
    lock.commit(txn).await?;
    lock.queries().on_workflow_task_closed(&run, outstanding);
    Ok(())
}

/// The start-to-close timer of workflow task (`scheduled_event_id`, `attempt`) fired:
/// if that task is still the started one, WorkflowTaskTimedOut and the task again
/// (attempt + 1). A stale timer changes nothing.
pub async fn on_workflow_task_timeout(engine: &Engine, run: &RunKey, scheduled_event_id: i64, attempt: i32) -> Result<()> {
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    let Some(loaded) = lock.load(run)? else { return Ok(()) };
    let current = loaded
        .state
        .workflow_task
        .clone()
        .filter(|wt| wt.scheduled_event_id == scheduled_event_id && wt.attempt == attempt && wt.started_event_id > 0);
    let Some(wt) = current.filter(|_| loaded.state.is_open()) else { return Ok(()) };
    let mut txn = engine.txn(loaded);
    txn.add_event(Attributes::WorkflowTaskTimedOutEventAttributes(WorkflowTaskTimedOutEventAttributes {
        scheduled_event_id: wt.scheduled_event_id,
        started_event_id: wt.started_event_id,
        timeout_type: TimeoutType::StartToClose as i32,
    }));
    retry_workflow_task(&mut txn, wt.attempt);
    drop_start_to_close_timers(&lock, &mut txn)?;
    let outstanding = txn.state.has_workflow_task();
    lock.commit(txn).await?;
    lock.queries().on_workflow_task_closed(run, outstanding);
    Ok(())
}

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;
