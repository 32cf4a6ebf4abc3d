//! `PollWorkflowTaskQueue`: a long poll on a workflow task queue that hands out
//! either a workflow task (from the durable backlog, via matching) or a legacy query
//! task (from the query dispatcher), whichever comes first, and otherwise answers the
//! all-default response shortly before the caller's deadline.
//!
//! A sticky queue (a worker's own, `crate::core::sticky`) is polled like any other:
//! the tasks of the runs that worker caches wait there, and start with only their new
//! events.
//!
//! Every poll is remembered as its queue's poller, and ends (empty) when its worker
//! shuts down (`ShutdownWorker`, see `crate::matching::pollers`).

use hourglass_storage::state::{QueueKey, QueueKind};
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{PollWorkflowTaskQueueRequest, PollWorkflowTaskQueueResponse};
use tokio::time::Instant;
use tonic::{Request, Response};

use super::super::{Frontend, RpcResult};
use crate::error::ServiceError;
use crate::frontend::deadline;
use crate::history_api::{HistoryApi, LegacyQueryTask, PollQueryTask, Poller, StartQueryTask, StartWorkflowTask, Started};
use crate::matching::pollers::{PollTicket, PollerMeta};
use crate::matching::TaskRef;

/// Longest task queue name accepted (Go's default limit).
pub const TASK_QUEUE_NAME_MAX: usize = 1000;

enum Work {
    Task(TaskRef),
    Query(LegacyQueryTask),
}

/// The task queue of a poll: present, named, not too long.
pub fn validate_task_queue(task_queue: Option<&TaskQueue>) -> Result<&TaskQueue, ServiceError> {
    let tq = task_queue.ok_or_else(|| ServiceError::InvalidArgument("TaskQueue is not set on request.".into()))?;
    if tq.name.trim().is_empty() {
        return Err(ServiceError::InvalidArgument("TaskQueue is not set on request.".into()));
    }
    if tq.name.len() > TASK_QUEUE_NAME_MAX {
        return Err(ServiceError::InvalidArgument(format!("TaskQueue length exceeds limit of {TASK_QUEUE_NAME_MAX}.")));
    }
    Ok(tq)
}

impl Frontend {
    pub(in crate::frontend) async fn poll_workflow_task(
        &self,
        request: Request<PollWorkflowTaskQueueRequest>,
    ) -> RpcResult<PollWorkflowTaskQueueResponse> {
        let deadline = Instant::now() + deadline::long_poll_wait(request.metadata());
        let req = request.into_inner();
        self.namespaces.require(&req.namespace)?;
        let tq = validate_task_queue(req.task_queue.as_ref())?;
        let queue = QueueKey { namespace: req.namespace.clone(), name: tq.name.clone(), kind: QueueKind::Workflow };
        // Deprecated, but SDKs still send it and Temporal reports it back.
        #[allow(deprecated)]
        let meta = PollerMeta {
            identity: req.identity.clone(),
            worker_instance_key: req.worker_instance_key.clone(),
            rate_per_second: None,
            worker_version_capabilities: req.worker_version_capabilities.clone(),
            deployment_options: req.deployment_options.clone(),
        };
        // A poll of a worker that just shut down answers empty at once.
        let Some(mut ticket) = self.history().pollers().begin(&queue, meta, self.engine.now_ms()) else {
            return Ok(Response::new(PollWorkflowTaskQueueResponse::default()));
        };
        #[allow(deprecated)]
        let build_id = req.worker_version_capabilities.as_ref().map(|c| c.build_id.clone()).unwrap_or_default();
        let poller = Poller { identity: req.identity.clone(), build_id };
        let response = poll_until(self.history(), &queue, &poller, deadline, &mut ticket).await?;
        Ok(Response::new(response.unwrap_or_default()))
    }
}

/// How long a poll waits before polling on after a task's start met `NotLeader` (a
/// leadership change under way), so it does not spin on the same task.
pub(in crate::frontend) const NOT_LEADER_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Waits for work on `queue` until `deadline`; `None` when there was none, or when the
/// poll's worker shut down while it waited (a task already taken is still started and
/// handed over: the worker waits for its polls to end, so it is not lost).
async fn poll_until(
    history: HistoryApi<'_>,
    queue: &QueueKey,
    poller: &Poller,
    deadline: Instant,
    ticket: &mut PollTicket,
) -> Result<Option<PollWorkflowTaskQueueResponse>, ServiceError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let work = tokio::select! {
            task = history.matching().poll(queue, left) => task.map(Work::Task),
            query = history.poll_query_task(PollQueryTask { queue, wait: left }) => query.map(Work::Query),
            () = ticket.ended() => None,
        };
        match work {
            None => return Ok(None),
            Some(Work::Task(task)) => match history.start_workflow_task(StartWorkflowTask { queue, task: task.clone(), poller }).await {
                Ok(Started::Task(response)) => return Ok(Some(*response)),
                Ok(Started::Stale) => continue,
                // Not started (nothing was applied): back to its queue. If its owner's
                // term ended, matching drops it and the next owner loads it from the
                // backlog; if the owner lives on (a leader transfer that was abandoned
                // dropped the proposal), it must not be lost from matching.
                Err(ServiceError::NotLeader { .. }) => {
                    history.matching().requeue(queue.clone(), task);
                    tokio::time::sleep(NOT_LEADER_PAUSE.min(deadline.saturating_duration_since(Instant::now()))).await;
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => tracing::error!(?queue, error = %e, "starting a workflow task failed; polling on"),
            },
            // Nothing to hand out (the query was withdrawn or failed): poll on.
            Some(Work::Query(task)) => match history.start_query_task(StartQueryTask { queue, task }).await? {
                Some(response) => return Ok(Some(response)),
                None => continue,
            },
        }
    }
}
