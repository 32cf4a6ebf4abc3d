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
/// owner it was asked on, so the task is bound to that owner: if the owner stops,
/// the query is withdrawn and its caller asks again (on the next owner).
pub struct LegacyQueryTask {
    owner: Arc<ShardOwner>,
    task: QueryTask,
}

/// Builds the poll response for a legacy query task.
pub struct StartQueryTask {
    pub task: LegacyQueryTask,
}

impl HistoryApi<'_> {
    pub async fn start_workflow_task(&self, req: StartWorkflowTask<'_>) -> Result<Started> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || workflow_task::start(engine, r.queue, r.task.clone(), r.poller)).await
    }

    pub async fn complete_workflow_task(&self, req: CompleteWorkflowTask) -> Result<RespondWorkflowTaskCompletedResponse> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || commands::complete_workflow_task(engine, &r.token, r.request.clone())).await
    }

    pub async fn fail_workflow_task(&self, req: FailWorkflowTask) -> Result<()> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || workflow_task::fail(engine, &r.token, r.request.clone())).await
    }

    /// No routing: the dispatcher holds every owner's query tasks.
    pub async fn poll_query_task(&self, req: PollQueryTask<'_>) -> Option<LegacyQueryTask> {
        let (owner, task) = query::poll_task(self.engine, req.queue, req.wait).await?;
        Some(LegacyQueryTask { owner, task })
    }

    /// The poll response for a legacy query task; `None` when there is nothing to
    /// hand out (the run is gone, or the owner stopped and withdrew the query: its
    /// caller asks again). Not retried: the task is bound to its owner. A transient
    /// failure puts the task back and is returned; any other fails the query.
    pub fn start_query_task(&self, req: StartQueryTask) -> Result<Option<PollWorkflowTaskQueueResponse>> {
        let LegacyQueryTask { owner, task } = req.task;
        match query::legacy_task_response(&owner, &task) {
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
}
