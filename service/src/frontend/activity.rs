//! Activity tasks: polls, completions, failures, cancellations, heartbeats (and their ById forms).

use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use tonic::{Request, Status};

use super::{Frontend, RpcResult};

impl Frontend {
    pub(super) async fn poll_activity_task_queue_rpc(&self, _request: Request<PollActivityTaskQueueRequest,>) -> RpcResult<PollActivityTaskQueueResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/PollActivityTaskQueue yet"))
    }

    pub(super) async fn respond_activity_task_completed_rpc(&self, _request: Request<RespondActivityTaskCompletedRequest,>) -> RpcResult<RespondActivityTaskCompletedResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/RespondActivityTaskCompleted yet"))
    }

    pub(super) async fn respond_activity_task_completed_by_id_rpc(&self, _request: Request<RespondActivityTaskCompletedByIdRequest,>) -> RpcResult<RespondActivityTaskCompletedByIdResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/RespondActivityTaskCompletedById yet"))
    }

    pub(super) async fn respond_activity_task_failed_rpc(&self, _request: Request<RespondActivityTaskFailedRequest,>) -> RpcResult<RespondActivityTaskFailedResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/RespondActivityTaskFailed yet"))
    }

    pub(super) async fn respond_activity_task_failed_by_id_rpc(&self, _request: Request<RespondActivityTaskFailedByIdRequest,>) -> RpcResult<RespondActivityTaskFailedByIdResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/RespondActivityTaskFailedById yet"))
    }

    pub(super) async fn respond_activity_task_canceled_rpc(&self, _request: Request<RespondActivityTaskCanceledRequest,>) -> RpcResult<RespondActivityTaskCanceledResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/RespondActivityTaskCanceled yet"))
    }

    pub(super) async fn respond_activity_task_canceled_by_id_rpc(&self, _request: Request<RespondActivityTaskCanceledByIdRequest,>) -> RpcResult<RespondActivityTaskCanceledByIdResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/RespondActivityTaskCanceledById yet"))
    }

    pub(super) async fn record_activity_task_heartbeat_rpc(&self, _request: Request<RecordActivityTaskHeartbeatRequest,>) -> RpcResult<RecordActivityTaskHeartbeatResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/RecordActivityTaskHeartbeat yet"))
    }

    pub(super) async fn record_activity_task_heartbeat_by_id_rpc(&self, _request: Request<RecordActivityTaskHeartbeatByIdRequest,>) -> RpcResult<RecordActivityTaskHeartbeatByIdResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/RecordActivityTaskHeartbeatById yet"))
    }

}
