//! Activity tasks: polls, completions, failures, cancellations, heartbeats (and their ById forms).
//! Validation here; the attempts and outcomes behind the history API.

use hourglass_storage::state::{QueueKey, QueueKind, RunKey};
use prost::Message;
use temporalio_protos::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use tokio::time::Instant;
use tonic::{Request, Response};

use super::deadline::long_poll_wait;
use super::workflow_task::poll::NOT_LEADER_PAUSE;
use super::workflow_task::task_token;
use super::{Frontend, RpcResult};
use crate::core::error::ActivityError;
use crate::core::lifecycle::ID_BYTES_MAX;
use crate::core::tasks::TaskKind;
use crate::error::{Result, ServiceError};
use crate::history_api::{
    ActivityRef, CancelActivity, Canceled, CompleteActivity, Completed, Dispatched, FailActivity, Failed, Heartbeat, HeartbeatActivity,
    StartActivityTask,
};
use crate::matching::pollers::PollerMeta;

impl Frontend {
    pub(super) async fn poll_activity_task_queue_rpc(
        &self,
        request: Request<PollActivityTaskQueueRequest>,
    ) -> RpcResult<PollActivityTaskQueueResponse> {
        let deadline = Instant::now() + long_poll_wait(request.metadata());
        let req = request.into_inner();
        self.namespaces.require(&req.namespace)?;
        let name = req.task_queue.map(|q| q.name).unwrap_or_default();
        if name.is_empty() {
            return Err(ServiceError::InvalidArgument("TaskQueue is not set on request.".into()).into());
        }
        if name.len() > ID_BYTES_MAX {
            return Err(ServiceError::InvalidArgument(format!("TaskQueue length exceeds limit of {ID_BYTES_MAX}.")).into());
        }
        let queue = QueueKey { namespace: req.namespace, name, kind: QueueKind::Activity };
        let history = self.history();
        // Deprecated, but SDKs still send it and Temporal reports it back.
        #[allow(deprecated)]
        let meta = PollerMeta {
            identity: req.identity.clone(),
            worker_instance_key: req.worker_instance_key,
            rate_per_second: req.task_queue_metadata.and_then(|m| m.max_tasks_per_second),
            worker_version_capabilities: req.worker_version_capabilities,
            deployment_options: req.deployment_options,
        };
        // A poll of a worker that just shut down answers empty at once; one waiting
        // when its worker shuts down answers empty then.
        let Some(mut ticket) = history.pollers().begin(&queue, meta, self.engine.now_ms()) else {
            return Ok(Response::new(PollActivityTaskQueueResponse::default()));
        };
        let matching = history.matching();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let polled = tokio::select! {
                task = matching.poll(&queue, remaining) => task,
                () = ticket.ended() => None,
            };
            let Some(task) = polled else { break };
            // Until the start is decided, a poll dropped by its caller gives the task back.
            let mut held = matching.hold(&queue, task.clone());
            match history.start_activity_task(StartActivityTask { queue: &queue, task: &task, identity: &req.identity }).await {
                Ok(Dispatched::Started(response)) => {
                    held.release();
                    return Ok(Response::new(*response));
                }
                Ok(Dispatched::Stale) => held.release(),
                // Transient: the task goes back to its queue, the worker retries.
                Err(e @ (ServiceError::Unavailable(_) | ServiceError::ResourceExhausted(_))) => return Err(e.into()),
                // A leadership change under way (nothing was applied): the task goes
                // back to its queue (dropped there if its owner's term ended: the next
                // owner loads it from the backlog), and the poll goes on after a pause.
                Err(ServiceError::NotLeader { .. }) => {
                    drop(held);
                    tokio::time::sleep(NOT_LEADER_PAUSE.min(deadline.saturating_duration_since(Instant::now()))).await;
                }
                Err(e) => {
                    // Anything else would not pass on retry, and a poll must not fail a
                    // worker for one task: it is left in the backlog (dispatched again
                    // after a restart) and the poll goes on.
                    held.release();
                    tracing::error!(?task, error = %e, "cannot start an activity task; left in the backlog");
                }
            }
        }
        Ok(Response::new(PollActivityTaskQueueResponse::default()))
    }

    // `worker_version` is deprecated but core still sends it; it goes into ActivityTaskStarted.
    #[allow(deprecated)]
    pub(super) async fn respond_activity_task_completed_rpc(
        &self,
        request: Request<RespondActivityTaskCompletedRequest>,
    ) -> RpcResult<RespondActivityTaskCompletedResponse> {
        let req = request.into_inner();
        let activity = self.token_target(&req.task_token, &req.namespace)?;
        self.check_blob("result", size(&req.result))?;
        let completed = Completed { result: req.result, identity: req.identity, worker_version: req.worker_version };
        self.history().complete_activity(CompleteActivity { activity, completed }).await?;
        Ok(Response::new(RespondActivityTaskCompletedResponse::default()))
    }

    pub(super) async fn respond_activity_task_completed_by_id_rpc(
        &self,
        request: Request<RespondActivityTaskCompletedByIdRequest>,
    ) -> RpcResult<RespondActivityTaskCompletedByIdResponse> {
        let req = request.into_inner();
        let activity = self.id_target(req.namespace, req.workflow_id, req.run_id, req.activity_id)?;
        self.check_blob("result", size(&req.result))?;
        let completed = Completed { result: req.result, identity: req.identity, worker_version: None };
        self.history().complete_activity(CompleteActivity { activity, completed }).await?;
        Ok(Response::new(RespondActivityTaskCompletedByIdResponse::default()))
    }

    #[allow(deprecated)]
    pub(super) async fn respond_activity_task_failed_rpc(
        &self,
        request: Request<RespondActivityTaskFailedRequest>,
    ) -> RpcResult<RespondActivityTaskFailedResponse> {
        let req = request.into_inner();
        let activity = self.token_target(&req.task_token, &req.namespace)?;
        // Temporal's frontend: a worker fails an attempt with an application failure.
        if req.failure.as_ref().is_some_and(|f| !matches!(f.failure_info, Some(FailureInfo::ApplicationFailureInfo(_)))) {
            return Err(ServiceError::InvalidArgument("Failure must have ApplicationFailureInfo.".into()).into());
        }
        self.check_blob("failure", size(&req.failure))?;
        self.check_blob("last_heartbeat_details", size(&req.last_heartbeat_details))?;
        let failed = Failed {
            failure: req.failure,
            identity: req.identity,
            last_heartbeat_details: req.last_heartbeat_details,
            worker_version: req.worker_version,
        };
        self.history().fail_activity(FailActivity { activity, failed }).await?;
        Ok(Response::new(RespondActivityTaskFailedResponse::default()))
    }

    pub(super) async fn respond_activity_task_failed_by_id_rpc(
        &self,
        request: Request<RespondActivityTaskFailedByIdRequest>,
    ) -> RpcResult<RespondActivityTaskFailedByIdResponse> {
        let req = request.into_inner();
        let activity = self.id_target(req.namespace, req.workflow_id, req.run_id, req.activity_id)?;
        self.check_blob("failure", size(&req.failure))?;
        self.check_blob("last_heartbeat_details", size(&req.last_heartbeat_details))?;
        let failed = Failed {
            failure: req.failure,
            identity: req.identity,
            last_heartbeat_details: req.last_heartbeat_details,
            worker_version: None,
        };
        self.history().fail_activity(FailActivity { activity, failed }).await?;
        Ok(Response::new(RespondActivityTaskFailedByIdResponse::default()))
    }

    pub(super) async fn respond_activity_task_canceled_rpc(
        &self,
        request: Request<RespondActivityTaskCanceledRequest>,
    ) -> RpcResult<RespondActivityTaskCanceledResponse> {
        let req = request.into_inner();
        let activity = self.token_target(&req.task_token, &req.namespace)?;
        self.check_blob("details", size(&req.details))?;
        let canceled = Canceled { details: req.details, identity: req.identity };
        self.history().cancel_activity(CancelActivity { activity, canceled }).await?;
        Ok(Response::new(RespondActivityTaskCanceledResponse::default()))
    }

    pub(super) async fn respond_activity_task_canceled_by_id_rpc(
        &self,
        request: Request<RespondActivityTaskCanceledByIdRequest>,
    ) -> RpcResult<RespondActivityTaskCanceledByIdResponse> {
        let req = request.into_inner();
        let activity = self.id_target(req.namespace, req.workflow_id, req.run_id, req.activity_id)?;
        self.check_blob("details", size(&req.details))?;
        let canceled = Canceled { details: req.details, identity: req.identity };
        self.history().cancel_activity(CancelActivity { activity, canceled }).await?;
        Ok(Response::new(RespondActivityTaskCanceledByIdResponse::default()))
    }

    pub(super) async fn record_activity_task_heartbeat_rpc(
        &self,
        request: Request<RecordActivityTaskHeartbeatRequest>,
    ) -> RpcResult<RecordActivityTaskHeartbeatResponse> {
        let req = request.into_inner();
        let activity = self.token_target(&req.task_token, &req.namespace)?;
        self.check_blob("details", size(&req.details))?;
        let heartbeat = Heartbeat { details: req.details, identity: req.identity };
        let cancel_requested = self.history().heartbeat_activity(HeartbeatActivity { activity, heartbeat }).await?;
        Ok(Response::new(RecordActivityTaskHeartbeatResponse { cancel_requested, ..Default::default() }))
    }

    pub(super) async fn record_activity_task_heartbeat_by_id_rpc(
        &self,
        request: Request<RecordActivityTaskHeartbeatByIdRequest>,
    ) -> RpcResult<RecordActivityTaskHeartbeatByIdResponse> {
        let req = request.into_inner();
        let activity = self.id_target(req.namespace, req.workflow_id, req.run_id, req.activity_id)?;
        self.check_blob("details", size(&req.details))?;
        let heartbeat = Heartbeat { details: req.details, identity: req.identity };
        let cancel_requested = self.history().heartbeat_activity(HeartbeatActivity { activity, heartbeat }).await?;
        Ok(Response::new(RecordActivityTaskHeartbeatByIdResponse { cancel_requested, ..Default::default() }))
    }

    /// The attempt an activity task token names. A token that does not decode is
    /// `InvalidArgument`; one naming something other than an activity task can name
    /// no pending activity (`NotFound`). The request's namespace, when set, must
    /// exist and be the token's (as for workflow task tokens).
    fn token_target(&self, token: &[u8], request_namespace: &str) -> Result<ActivityRef> {
        let t = task_token(&self.namespaces, token, request_namespace)?;
        if t.kind != TaskKind::ActivityTask as i32 {
            return Err(ActivityError::NotFound.into());
        }
        Ok(ActivityRef::Attempt {
            run: RunKey { namespace: t.namespace, workflow_id: t.workflow_id, run_id: t.run_id },
            scheduled_event_id: t.scheduled_event_id,
            attempt: t.attempt,
        })
    }

    /// The activity a `…ById` request names (an empty run id means the current run,
    /// resolved behind the history API).
    fn id_target(&self, namespace: String, workflow_id: String, run_id: String, activity_id: String) -> Result<ActivityRef> {
        self.namespaces.require(&namespace)?;
        if activity_id.is_empty() {
            return Err(ServiceError::InvalidArgument("ActivityId is not set on request.".into()));
        }
        // Temporal (1.32) reads an empty workflow id as naming a standalone activity,
        // which this server has none of.
        if workflow_id.is_empty() {
            return Err(ServiceError::NotFound(format!("activity not found for ID: {activity_id}")));
        }
        if !run_id.is_empty() && uuid::Uuid::parse_str(&run_id).is_err() {
            return Err(ServiceError::InvalidArgument("RunId is not valid UUID.".into()));
        }
        Ok(ActivityRef::Id { namespace, workflow_id, run_id, activity_id })
    }

    fn check_blob(&self, what: &str, bytes: usize) -> Result<()> {
        let max = self.history().config().blob_bytes_max;
        if bytes > max {
            return Err(ServiceError::InvalidArgument(format!("{what} exceeds the size limit: {bytes} bytes > {max} bytes")));
        }
        Ok(())
    }
}

/// Encoded size of an optional message.
fn size<M: Message>(m: &Option<M>) -> usize {
    m.as_ref().map_or(0, Message::encoded_len)
}
