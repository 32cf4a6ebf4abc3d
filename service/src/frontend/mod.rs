//! The `WorkflowService` implementation: a thin layer that hands each RPC to the
//! inherent method of [`Frontend`] that implements it, grouped by area in the sibling
//! files. Methods not listed answer `Unimplemented` naming the method (generated).
//!
//! The frontend validates and normalises requests and maps errors; it reaches the
//! history handlers only through [`HistoryApi`] (one request type per operation,
//! each routed and retried there), and never names a shard.

mod activity;
mod compression;
mod deadline;
mod system;
mod workflow;
mod workflow_task;

use hourglass_proto::WorkflowService;
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use tonic::{Request, Response, Status};

use crate::engine::Engine;
use crate::history_api::HistoryApi;
use crate::namespaces::Namespaces;
use compression::compress_if_large;

pub type RpcResult<T> = Result<Response<T>, Status>;

#[derive(Clone)]
pub struct Frontend {
    pub engine: Engine,
    pub namespaces: Namespaces,
}

impl Frontend {
    /// The history operations, each routed to its shard's owner and retried there.
    fn history(&self) -> HistoryApi<'_> {
        HistoryApi::new(&self.engine)
    }
}

#[tonic::async_trait]
impl WorkflowService for Frontend {
    // system.rs
    async fn get_system_info(&self, request: Request<GetSystemInfoRequest>) -> RpcResult<GetSystemInfoResponse> {
        compress_if_large(self.get_system_info_rpc(request).await)
    }
    async fn describe_namespace(&self, request: Request<DescribeNamespaceRequest>) -> RpcResult<DescribeNamespaceResponse> {
        compress_if_large(self.describe_namespace_rpc(request).await)
    }
    async fn register_namespace(&self, request: Request<RegisterNamespaceRequest>) -> RpcResult<RegisterNamespaceResponse> {
        compress_if_large(self.register_namespace_rpc(request).await)
    }
    async fn list_namespaces(&self, request: Request<ListNamespacesRequest>) -> RpcResult<ListNamespacesResponse> {
        compress_if_large(self.list_namespaces_rpc(request).await)
    }
    async fn shutdown_worker(&self, request: Request<ShutdownWorkerRequest>) -> RpcResult<ShutdownWorkerResponse> {
        compress_if_large(self.shutdown_worker_rpc(request).await)
    }
    // workflow.rs
    async fn start_workflow_execution(&self, request: Request<StartWorkflowExecutionRequest>) -> RpcResult<StartWorkflowExecutionResponse> {
        compress_if_large(self.start_workflow_execution_rpc(request).await)
    }
    async fn signal_workflow_execution(
        &self,
        request: Request<SignalWorkflowExecutionRequest>,
    ) -> RpcResult<SignalWorkflowExecutionResponse> {
        compress_if_large(self.signal_workflow_execution_rpc(request).await)
    }
    async fn signal_with_start_workflow_execution(
        &self,
        request: Request<SignalWithStartWorkflowExecutionRequest>,
    ) -> RpcResult<SignalWithStartWorkflowExecutionResponse> {
        compress_if_large(self.signal_with_start_workflow_execution_rpc(request).await)
    }
    async fn get_workflow_execution_history(
        &self,
        request: Request<GetWorkflowExecutionHistoryRequest>,
    ) -> RpcResult<GetWorkflowExecutionHistoryResponse> {
        compress_if_large(self.get_workflow_execution_history_rpc(request).await)
    }
    async fn get_workflow_execution_history_reverse(
        &self,
        request: Request<GetWorkflowExecutionHistoryReverseRequest>,
    ) -> RpcResult<GetWorkflowExecutionHistoryReverseResponse> {
        compress_if_large(self.get_workflow_execution_history_reverse_rpc(request).await)
    }
    async fn describe_workflow_execution(
        &self,
        request: Request<DescribeWorkflowExecutionRequest>,
    ) -> RpcResult<DescribeWorkflowExecutionResponse> {
        compress_if_large(self.describe_workflow_execution_rpc(request).await)
    }
    async fn request_cancel_workflow_execution(
        &self,
        request: Request<RequestCancelWorkflowExecutionRequest>,
    ) -> RpcResult<RequestCancelWorkflowExecutionResponse> {
        compress_if_large(self.request_cancel_workflow_execution_rpc(request).await)
    }
    async fn terminate_workflow_execution(
        &self,
        request: Request<TerminateWorkflowExecutionRequest>,
    ) -> RpcResult<TerminateWorkflowExecutionResponse> {
        compress_if_large(self.terminate_workflow_execution_rpc(request).await)
    }
    // workflow_task.rs
    async fn poll_workflow_task_queue(&self, request: Request<PollWorkflowTaskQueueRequest>) -> RpcResult<PollWorkflowTaskQueueResponse> {
        compress_if_large(self.poll_workflow_task_queue_rpc(request).await)
    }
    async fn respond_workflow_task_completed(
        &self,
        request: Request<RespondWorkflowTaskCompletedRequest>,
    ) -> RpcResult<RespondWorkflowTaskCompletedResponse> {
        compress_if_large(self.respond_workflow_task_completed_rpc(request).await)
    }
    async fn respond_workflow_task_failed(
        &self,
        request: Request<RespondWorkflowTaskFailedRequest>,
    ) -> RpcResult<RespondWorkflowTaskFailedResponse> {
        compress_if_large(self.respond_workflow_task_failed_rpc(request).await)
    }
    async fn query_workflow(&self, request: Request<QueryWorkflowRequest>) -> RpcResult<QueryWorkflowResponse> {
        compress_if_large(self.query_workflow_rpc(request).await)
    }
    async fn respond_query_task_completed(
        &self,
        request: Request<RespondQueryTaskCompletedRequest>,
    ) -> RpcResult<RespondQueryTaskCompletedResponse> {
        compress_if_large(self.respond_query_task_completed_rpc(request).await)
    }
    // activity.rs
    async fn poll_activity_task_queue(&self, request: Request<PollActivityTaskQueueRequest>) -> RpcResult<PollActivityTaskQueueResponse> {
        compress_if_large(self.poll_activity_task_queue_rpc(request).await)
    }
    async fn respond_activity_task_completed(
        &self,
        request: Request<RespondActivityTaskCompletedRequest>,
    ) -> RpcResult<RespondActivityTaskCompletedResponse> {
        compress_if_large(self.respond_activity_task_completed_rpc(request).await)
    }
    async fn respond_activity_task_completed_by_id(
        &self,
        request: Request<RespondActivityTaskCompletedByIdRequest>,
    ) -> RpcResult<RespondActivityTaskCompletedByIdResponse> {
        compress_if_large(self.respond_activity_task_completed_by_id_rpc(request).await)
    }
    async fn respond_activity_task_failed(
        &self,
        request: Request<RespondActivityTaskFailedRequest>,
    ) -> RpcResult<RespondActivityTaskFailedResponse> {
        compress_if_large(self.respond_activity_task_failed_rpc(request).await)
    }
    async fn respond_activity_task_failed_by_id(
        &self,
        request: Request<RespondActivityTaskFailedByIdRequest>,
    ) -> RpcResult<RespondActivityTaskFailedByIdResponse> {
        compress_if_large(self.respond_activity_task_failed_by_id_rpc(request).await)
    }
    async fn respond_activity_task_canceled(
        &self,
        request: Request<RespondActivityTaskCanceledRequest>,
    ) -> RpcResult<RespondActivityTaskCanceledResponse> {
        compress_if_large(self.respond_activity_task_canceled_rpc(request).await)
    }
    async fn respond_activity_task_canceled_by_id(
        &self,
        request: Request<RespondActivityTaskCanceledByIdRequest>,
    ) -> RpcResult<RespondActivityTaskCanceledByIdResponse> {
        compress_if_large(self.respond_activity_task_canceled_by_id_rpc(request).await)
    }
    async fn record_activity_task_heartbeat(
        &self,
        request: Request<RecordActivityTaskHeartbeatRequest>,
    ) -> RpcResult<RecordActivityTaskHeartbeatResponse> {
        compress_if_large(self.record_activity_task_heartbeat_rpc(request).await)
    }
    async fn record_activity_task_heartbeat_by_id(
        &self,
        request: Request<RecordActivityTaskHeartbeatByIdRequest>,
    ) -> RpcResult<RecordActivityTaskHeartbeatByIdResponse> {
        compress_if_large(self.record_activity_task_heartbeat_by_id_rpc(request).await)
    }
}
