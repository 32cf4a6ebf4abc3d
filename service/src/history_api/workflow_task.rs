//! Workflow tasks: starting one a poll took from matching, its completion and
//! failure; legacy query tasks, which workflow pollers take too.

use std::sync::Arc;
use std::time::Duration;

use hourglass_storage::state::QueueKey;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{
    PollWorkflowTaskQueueResponse, RespondWorkflowTaskCompletedRequest, RespondWorkflowTaskCompletedResponse,
    RespondWorkflowTaskFailedRequest,
};

use super::{HistoryApi, Poller, Started};
use crate::core::token::TaskToken;
use crate::engine::query::{self, QueryOutcome, QueryTask};
use crate::engine::{commands, workflow_task};
use crate::error::{Result, ServiceError};
use crate::matching::TaskRef;
use crate::shard::ShardOwner;

/// Records that a poller took `task` from `queue` (WorkflowTaskStarted) and builds
/// its poll response; [`Started::Stale`] for a task that no longer matches its run.
#[derive(Debug, Clone)]
pub struct StartWorkflowTask<'a> {
    pub queue: &'a QueueKey,
    pub task: TaskRef,
    pub poller: &'a Poller,
}

/// RespondWorkflowTaskCompleted for the task `token` names.
#[derive(Debug, Clone)]
pub struct CompleteWorkflowTask {
    pub token: TaskToken,
    pub request: RespondWorkflowTaskCompletedRequest,
}

/// RespondWorkflowTaskFailed for the task `token` names.
#[derive(Debug, Clone)]
pub struct FailWorkflowTask {
    pub token: TaskToken,
    pub request: RespondWorkflowTaskFailedRequest,
}

/// Waits up to `wait` for a legacy query task on `queue`, from any shard owner on
/// this node. Cancellation-safe.
#[derive(Debug, Clone)]
pub struct PollQueryTask<'a> {
    pub queue: &'a QueueKey,
    pub wait: Duration,
}

/// A legacy query task a poll took. A pending query lives only in the memory of the
/// owner it was asked on, so the task is bound to that owner (here, or on the node
/// leading its shard): if the owner stops, the query is withdrawn and its caller asks
/// again (on the next owner).
pub enum LegacyQueryTask {
    Here { owner: Arc<ShardOwner>, task: QueryTask },
    Elsewhere { node: u64, task: TaskRef },
}

/// Builds the poll response for a legacy query task taken from `queue`.
pub struct StartQueryTask<'a> {
    pub queue: &'a QueueKey,
    pub task: LegacyQueryTask,
}

impl HistoryApi<'_> {
    /// Starts the task here, or, when another node leads its shard, there.
    pub async fn start_workflow_task(&self, req: StartWorkflowTask<'_>) -> Result<Started> {
        let here = self.start_workflow_task_here(req.clone()).await;
        let Some((node, remote)) = self.elsewhere(&here) else { return here };
        // Until the peer decides, a poll dropped here gives the task back.
        let mut held = self.engine.matching().hold(req.queue, req.task.clone());
        let started = remote.start_workflow_task(node, req.queue, &req.task, req.poller).await;
        if !started.as_ref().is_err_and(|e| e.is_transient() && !matches!(e, ServiceError::NotLeader { .. })) {
            held.release();
        }
        started
    }

    /// Starts the task on this node only (for a poll here, or a peer's).
    pub async fn start_workflow_task_here(&self, req: StartWorkflowTask<'_>) -> Result<Started> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || workflow_task::start(engine, r.queue, r.task.clone(), r.poller)).await
    }

    pub async fn complete_workflow_task(&self, req: CompleteWorkflowTask) -> Result<RespondWorkflowTaskCompletedResponse> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || commands::complete_workflow_task(engine, &r.token, r.request.clone())).await
    }

    /// `ResetStickyTaskQueue` of run (`namespace`, `workflow_id`, `run_id`).
    pub async fn reset_sticky_task_queue(&self, namespace: &str, workflow_id: &str, run_id: &str) -> Result<()> {
        let engine = self.engine;
        self.retry(move || workflow_task::reset_sticky_task_queue(engine, namespace, workflow_id, run_id)).await
    }

    pub async fn fail_workflow_task(&self, req: FailWorkflowTask) -> Result<()> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || workflow_task::fail(engine, &r.token, r.request.clone())).await
    }

    /// No routing: the dispatcher holds the query tasks of every owner whose
    /// queries this node's pollers take.
    pub async fn poll_query_task(&self, req: PollQueryTask<'_>) -> Option<LegacyQueryTask> {
        Some(match query::poll_task(self.engine, req.queue, req.wait).await? {
            query::PolledQuery::Here(owner, task) => LegacyQueryTask::Here { owner, task },
            query::PolledQuery::Elsewhere { node, task } => LegacyQueryTask::Elsewhere { node, task },
        })
    }

    /// The poll response for a legacy query task; `None` when there is nothing to
    /// hand out (the run is gone, or the owner stopped and withdrew the query: its
    /// caller asks again). Not retried: the task is bound to its owner. A transient
    /// failure puts the task back and is returned; any other fails the query.
    pub async fn start_query_task(&self, req: StartQueryTask<'_>) -> Result<Option<PollWorkflowTaskQueueResponse>> {
        let (node, task) = match req.task {
            LegacyQueryTask::Here { owner, task } => return start_claimed_query(&owner, task, req.queue),
            LegacyQueryTask::Elsewhere { node, task } => (node, task),
        };
        let Some(remote) = self.engine.remote_tasks() else { return Ok(None) };
        let mut held = self.engine.query_dispatch().hold(req.queue, task.clone());
        match remote.start_query_task(node, req.queue, &task).await {
            Ok(response) => {
                held.release();
                Ok(response)
            }
            // The query's owner stopped (it withdrew the query) or moved.
            Err(ServiceError::NotLeader { .. }) => {
                held.release();
                Ok(None)
            }
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                held.release();
                tracing::error!(?task, node, error = %e, "starting a query task on its owner's node failed; skipped");
                Ok(None)
            }
        }
    }

    /// For a peer: claims and starts query task `task` (polled from `queue`) of a
    /// shard this node leads.
    pub fn start_query_task_here(&self, queue: &QueueKey, task: TaskRef) -> Result<Option<PollWorkflowTaskQueueResponse>> {
        let shard = task.shard;
        let Some(owner) = self.engine.router().owners().current(shard) else {
            return Err(ServiceError::NotLeader { shard, leader_hint: self.engine.node().leader(shard).ok().flatten() });
        };
        match owner.queries().claim(task) {
            Some(query) => start_claimed_query(&owner, query, queue),
            None => Ok(None),
        }
    }
}

/// [`HistoryApi::start_query_task`] for a query claimed from `owner`, polled from `queue`.
fn start_claimed_query(owner: &ShardOwner, task: QueryTask, queue: &QueueKey) -> Result<Option<PollWorkflowTaskQueueResponse>> {
    match query::legacy_task_response(owner, &task, queue) {
        Ok(response) => Ok(response),
        Err(ServiceError::NotLeader { .. }) => Ok(None),
        Err(e @ (ServiceError::Unavailable(_) | ServiceError::ResourceExhausted(_))) => {
            owner.queries().requeue(task);
            Err(e)
        }
        Err(e) => {
            tracing::error!(run = ?task.run, error = %e, "building a query task failed; the query fails");
            let failed = QueryOutcome::Failed(format!("the query could not be dispatched: {e}"));
            owner.queries().answer(&task.run, &task.query_id, failed);
            Ok(None)
        }
    }
}
