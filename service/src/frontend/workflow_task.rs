//! Workflow tasks: polls, completions (commands → events), failures; queries.

use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use tonic::{Request, Status};

use super::{Frontend, RpcResult};

impl Frontend {
    pub(super) async fn poll_workflow_task_queue_rpc(&self, _request: Request<PollWorkflowTaskQueueRequest,>) -> RpcResult<PollWorkflowTaskQueueResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/PollWorkflowTaskQueue yet"))
    }

    pub(super) async fn respond_workflow_task_completed_rpc(&self, _request: Request<RespondWorkflowTaskCompletedRequest,>) -> RpcResult<RespondWorkflowTaskCompletedResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/RespondWorkflowTaskCompleted yet"))
    }

    pub(super) async fn respond_workflow_task_failed_rpc(&self, _request: Request<RespondWorkflowTaskFailedRequest,>) -> RpcResult<RespondWorkflowTaskFailedResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/RespondWorkflowTaskFailed yet"))
    }

    pub(super) async fn query_workflow_rpc(&self, _request: Request<QueryWorkflowRequest,>) -> RpcResult<QueryWorkflowResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/QueryWorkflow yet"))
    }

    pub(super) async fn respond_query_task_completed_rpc(&self, _request: Request<RespondQueryTaskCompletedRequest,>) -> RpcResult<RespondQueryTaskCompletedResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/RespondQueryTaskCompleted yet"))
    }

}
