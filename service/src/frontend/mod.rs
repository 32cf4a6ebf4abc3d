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
mod multi_op;
pub mod operator;
mod reset;
mod schedule;
mod search_attributes;
mod system;
pub mod task_queue;
mod update;
mod workflow;
mod workflow_task;

use hourglass_proto::WorkflowService;
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use tonic::{Request, Response, Status};

use std::future::Future;
use std::sync::Arc;

use hourglass_proto::WorkflowServiceClient;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

use crate::cluster::forward::{self, Forwarder};
use crate::engine::Engine;
use crate::history_api::HistoryApi;
use crate::namespaces::Namespaces;
use compression::compress_if_large;

pub type RpcResult<T> = Result<Response<T>, Status>;

#[derive(Clone)]
pub struct Frontend {
    pub engine: Engine,
    pub namespaces: Namespaces,
    /// Clients of the other nodes of a cluster (`None` for a single node).
    pub forwarder: Option<Arc<Forwarder>>,
}

impl Frontend {
    /// A frontend of a single node (nothing is ever forwarded).
    pub fn single_node(engine: Engine, namespaces: Namespaces) -> Self {
        Self { engine, namespaces, forwarder: None }
    }

    /// The history operations, each routed to its shard's owner and retried there.
    fn history(&self) -> HistoryApi<'_> {
        HistoryApi::new(&self.engine)
    }

    /// What a call needs to be forwarded later: a copy of the request, kept only
    /// on a node with peers and for calls that were not forwarded here already.
    fn forward_copy<T: Clone>(&self, request: &Request<T>) -> Option<(MetadataMap, T)> {
        self.forwarder.as_ref()?;
        (!forward::is_forwarded(request.metadata())).then(|| (request.metadata().clone(), request.get_ref().clone()))
    }

    async fn forward_to<Req, Resp, F, Fut>(&self, leader: u64, metadata: MetadataMap, message: Req, call: F) -> RpcResult<Resp>
    where
        Req: Clone,
        Resp: prost::Message,
        F: Fn(WorkflowServiceClient<Channel>, Request<Req>) -> Fut,
        Fut: Future<Output = RpcResult<Resp>>,
    {
        match &self.forwarder {
            Some(forwarder) => compress_if_large(forwarder.call(leader, metadata, message, call).await),
            None => Err(Status::internal("forwarding on a node without peers")),
        }
    }
}

/// Runs a call here; if another node leads its shard (and the call was not
/// forwarded here already), sends it there (`cluster::forward`).
macro_rules! routed {
    ($self:ident, $request:ident, $local:ident, $remote:ident) => {{
        match $self.forward_copy(&$request) {
            None => compress_if_large($self.$local($request).await),
            Some((metadata, message)) => match $self.$local($request).await {
                Err(status) => match forward::leader_hint(&status) {
                    Some(leader) => $self.forward_to(leader, metadata, message, |mut c, r| async move { c.$remote(r).await }).await,
                    None => Err(status),
                },
                ok => compress_if_large(ok),
            },
        }
    }};
}

/// Runs a poll (or a DescribeTaskQueue, which reports what the queue's polls saw) on
/// the node leading its task queue's home shard: matching for the queue runs there
/// (`HistoryApi::queue_home`). On a node with peers a poll waiting
/// here ends (empty, as at its deadline) when this node stops being the queue's
/// home, so the client polls again and reaches the new home instead of waiting out
/// its long poll where no task will come.
macro_rules! routed_poll {
    ($self:ident, $request:ident, $local:ident, $remote:ident) => {{
        if $self.forwarder.is_none() {
            return compress_if_large($self.$local($request).await);
        }
        let message = $request.get_ref();
        let queue = message.task_queue.as_ref().map(|q| q.name.as_str()).unwrap_or_default();
        let home = match $self.history().queue_home(&message.namespace, queue).await {
            Ok(home) => home,
            Err(e) => return Err(e.into()),
        };
        if let crate::history_api::QueueHome::Elsewhere { shard, leader } = home {
            return match $self.forward_copy(&$request) {
                Some((metadata, message)) => {
                    $self.forward_to(leader, metadata, message, |mut c, r| async move { c.$remote(r).await }).await
                }
                // Forwarded here, but the home moved on: the sender follows the hint.
                None => Err(crate::error::ServiceError::NotLeader { shard, leader_hint: Some(leader) }.into()),
            };
        }
        tokio::select! {
            polled = $self.$local($request) => compress_if_large(polled),
            () = home.lost() => Ok(Response::new(Default::default())),
        }
    }};
}

#[tonic::async_trait]
impl WorkflowService for Frontend {
    // system.rs
    async fn get_system_info(&self, request: Request<GetSystemInfoRequest>) -> RpcResult<GetSystemInfoResponse> {
        compress_if_large(self.get_system_info_rpc(request).await)
    }
    async fn get_cluster_info(&self, request: Request<GetClusterInfoRequest>) -> RpcResult<GetClusterInfoResponse> {
        compress_if_large(self.get_cluster_info_rpc(request).await)
    }
    async fn describe_namespace(&self, request: Request<DescribeNamespaceRequest>) -> RpcResult<DescribeNamespaceResponse> {
        compress_if_large(self.describe_namespace_rpc(request).await)
    }
    async fn register_namespace(&self, request: Request<RegisterNamespaceRequest>) -> RpcResult<RegisterNamespaceResponse> {
        routed!(self, request, register_namespace_rpc, register_namespace)
    }
    async fn list_namespaces(&self, request: Request<ListNamespacesRequest>) -> RpcResult<ListNamespacesResponse> {
        compress_if_large(self.list_namespaces_rpc(request).await)
    }
    async fn shutdown_worker(&self, request: Request<ShutdownWorkerRequest>) -> RpcResult<ShutdownWorkerResponse> {
        compress_if_large(self.shutdown_worker_rpc(request).await)
    }
    // search_attributes.rs
    async fn get_search_attributes(&self, request: Request<GetSearchAttributesRequest>) -> RpcResult<GetSearchAttributesResponse> {
        compress_if_large(self.get_search_attributes_rpc(request).await)
    }
    // task_queue.rs
    async fn describe_task_queue(&self, request: Request<DescribeTaskQueueRequest>) -> RpcResult<DescribeTaskQueueResponse> {
        routed_poll!(self, request, describe_task_queue_rpc, describe_task_queue)
    }
    // workflow.rs
    async fn start_workflow_execution(&self, request: Request<StartWorkflowExecutionRequest>) -> RpcResult<StartWorkflowExecutionResponse> {
        routed!(self, request, start_workflow_execution_rpc, start_workflow_execution)
    }
    async fn signal_workflow_execution(
        &self,
        request: Request<SignalWorkflowExecutionRequest>,
    ) -> RpcResult<SignalWorkflowExecutionResponse> {
        routed!(self, request, signal_workflow_execution_rpc, signal_workflow_execution)
    }
    async fn signal_with_start_workflow_execution(
        &self,
        request: Request<SignalWithStartWorkflowExecutionRequest>,
    ) -> RpcResult<SignalWithStartWorkflowExecutionResponse> {
        routed!(self, request, signal_with_start_workflow_execution_rpc, signal_with_start_workflow_execution)
    }
    async fn get_workflow_execution_history(
        &self,
        request: Request<GetWorkflowExecutionHistoryRequest>,
    ) -> RpcResult<GetWorkflowExecutionHistoryResponse> {
        routed!(self, request, get_workflow_execution_history_rpc, get_workflow_execution_history)
    }
    async fn get_workflow_execution_history_reverse(
        &self,
        request: Request<GetWorkflowExecutionHistoryReverseRequest>,
    ) -> RpcResult<GetWorkflowExecutionHistoryReverseResponse> {
        routed!(self, request, get_workflow_execution_history_reverse_rpc, get_workflow_execution_history_reverse)
    }
    async fn list_workflow_executions(&self, request: Request<ListWorkflowExecutionsRequest>) -> RpcResult<ListWorkflowExecutionsResponse> {
        routed!(self, request, list_workflow_executions_rpc, list_workflow_executions)
    }
    async fn describe_workflow_execution(
        &self,
        request: Request<DescribeWorkflowExecutionRequest>,
    ) -> RpcResult<DescribeWorkflowExecutionResponse> {
        routed!(self, request, describe_workflow_execution_rpc, describe_workflow_execution)
    }
    async fn request_cancel_workflow_execution(
        &self,
        request: Request<RequestCancelWorkflowExecutionRequest>,
    ) -> RpcResult<RequestCancelWorkflowExecutionResponse> {
        routed!(self, request, request_cancel_workflow_execution_rpc, request_cancel_workflow_execution)
    }
    async fn terminate_workflow_execution(
        &self,
        request: Request<TerminateWorkflowExecutionRequest>,
    ) -> RpcResult<TerminateWorkflowExecutionResponse> {
        routed!(self, request, terminate_workflow_execution_rpc, terminate_workflow_execution)
    }
    // reset.rs
    async fn reset_workflow_execution(&self, request: Request<ResetWorkflowExecutionRequest>) -> RpcResult<ResetWorkflowExecutionResponse> {
        routed!(self, request, reset_workflow_execution_rpc, reset_workflow_execution)
    }
    async fn delete_workflow_execution(
        &self,
        request: Request<DeleteWorkflowExecutionRequest>,
    ) -> RpcResult<DeleteWorkflowExecutionResponse> {
        routed!(self, request, delete_workflow_execution_rpc, delete_workflow_execution)
    }
    // workflow_task.rs
    async fn reset_sticky_task_queue(&self, request: Request<ResetStickyTaskQueueRequest>) -> RpcResult<ResetStickyTaskQueueResponse> {
        routed!(self, request, reset_sticky_task_queue_rpc, reset_sticky_task_queue)
    }
    async fn poll_workflow_task_queue(&self, request: Request<PollWorkflowTaskQueueRequest>) -> RpcResult<PollWorkflowTaskQueueResponse> {
        routed_poll!(self, request, poll_workflow_task_queue_rpc, poll_workflow_task_queue)
    }
    async fn respond_workflow_task_completed(
        &self,
        request: Request<RespondWorkflowTaskCompletedRequest>,
    ) -> RpcResult<RespondWorkflowTaskCompletedResponse> {
        routed!(self, request, respond_workflow_task_completed_rpc, respond_workflow_task_completed)
    }
    async fn respond_workflow_task_failed(
        &self,
        request: Request<RespondWorkflowTaskFailedRequest>,
    ) -> RpcResult<RespondWorkflowTaskFailedResponse> {
        routed!(self, request, respond_workflow_task_failed_rpc, respond_workflow_task_failed)
    }
    async fn query_workflow(&self, request: Request<QueryWorkflowRequest>) -> RpcResult<QueryWorkflowResponse> {
        routed!(self, request, query_workflow_rpc, query_workflow)
    }
    async fn update_workflow_execution(
        &self,
        request: Request<UpdateWorkflowExecutionRequest>,
    ) -> RpcResult<UpdateWorkflowExecutionResponse> {
        routed!(self, request, update_workflow_execution_rpc, update_workflow_execution)
    }
    async fn execute_multi_operation(&self, request: Request<ExecuteMultiOperationRequest>) -> RpcResult<ExecuteMultiOperationResponse> {
        routed!(self, request, execute_multi_operation_rpc, execute_multi_operation)
    }
    async fn poll_workflow_execution_update(
        &self,
        request: Request<PollWorkflowExecutionUpdateRequest>,
    ) -> RpcResult<PollWorkflowExecutionUpdateResponse> {
        routed!(self, request, poll_workflow_execution_update_rpc, poll_workflow_execution_update)
    }
    async fn respond_query_task_completed(
        &self,
        request: Request<RespondQueryTaskCompletedRequest>,
    ) -> RpcResult<RespondQueryTaskCompletedResponse> {
        routed!(self, request, respond_query_task_completed_rpc, respond_query_task_completed)
    }
    // schedule.rs
    async fn create_schedule(&self, request: Request<CreateScheduleRequest>) -> RpcResult<CreateScheduleResponse> {
        routed!(self, request, create_schedule_rpc, create_schedule)
    }
    async fn describe_schedule(&self, request: Request<DescribeScheduleRequest>) -> RpcResult<DescribeScheduleResponse> {
        routed!(self, request, describe_schedule_rpc, describe_schedule)
    }
    async fn patch_schedule(&self, request: Request<PatchScheduleRequest>) -> RpcResult<PatchScheduleResponse> {
        routed!(self, request, patch_schedule_rpc, patch_schedule)
    }
    async fn update_schedule(&self, request: Request<UpdateScheduleRequest>) -> RpcResult<UpdateScheduleResponse> {
        routed!(self, request, update_schedule_rpc, update_schedule)
    }
    async fn delete_schedule(&self, request: Request<DeleteScheduleRequest>) -> RpcResult<DeleteScheduleResponse> {
        routed!(self, request, delete_schedule_rpc, delete_schedule)
    }
    async fn list_schedules(&self, request: Request<ListSchedulesRequest>) -> RpcResult<ListSchedulesResponse> {
        compress_if_large(self.list_schedules_rpc(request).await)
    }
    async fn list_schedule_matching_times(
        &self,
        request: Request<ListScheduleMatchingTimesRequest>,
    ) -> RpcResult<ListScheduleMatchingTimesResponse> {
        routed!(self, request, list_schedule_matching_times_rpc, list_schedule_matching_times)
    }
    // activity.rs
    async fn poll_activity_task_queue(&self, request: Request<PollActivityTaskQueueRequest>) -> RpcResult<PollActivityTaskQueueResponse> {
        routed_poll!(self, request, poll_activity_task_queue_rpc, poll_activity_task_queue)
    }
    async fn respond_activity_task_completed(
        &self,
        request: Request<RespondActivityTaskCompletedRequest>,
    ) -> RpcResult<RespondActivityTaskCompletedResponse> {
        routed!(self, request, respond_activity_task_completed_rpc, respond_activity_task_completed)
    }
    async fn respond_activity_task_completed_by_id(
        &self,
        request: Request<RespondActivityTaskCompletedByIdRequest>,
    ) -> RpcResult<RespondActivityTaskCompletedByIdResponse> {
        routed!(self, request, respond_activity_task_completed_by_id_rpc, respond_activity_task_completed_by_id)
    }
    async fn respond_activity_task_failed(
        &self,
        request: Request<RespondActivityTaskFailedRequest>,
    ) -> RpcResult<RespondActivityTaskFailedResponse> {
        routed!(self, request, respond_activity_task_failed_rpc, respond_activity_task_failed)
    }
    async fn respond_activity_task_failed_by_id(
        &self,
        request: Request<RespondActivityTaskFailedByIdRequest>,
    ) -> RpcResult<RespondActivityTaskFailedByIdResponse> {
        routed!(self, request, respond_activity_task_failed_by_id_rpc, respond_activity_task_failed_by_id)
    }
    async fn respond_activity_task_canceled(
        &self,
        request: Request<RespondActivityTaskCanceledRequest>,
    ) -> RpcResult<RespondActivityTaskCanceledResponse> {
        routed!(self, request, respond_activity_task_canceled_rpc, respond_activity_task_canceled)
    }
    async fn respond_activity_task_canceled_by_id(
        &self,
        request: Request<RespondActivityTaskCanceledByIdRequest>,
    ) -> RpcResult<RespondActivityTaskCanceledByIdResponse> {
        routed!(self, request, respond_activity_task_canceled_by_id_rpc, respond_activity_task_canceled_by_id)
    }
    async fn record_activity_task_heartbeat(
        &self,
        request: Request<RecordActivityTaskHeartbeatRequest>,
    ) -> RpcResult<RecordActivityTaskHeartbeatResponse> {
        routed!(self, request, record_activity_task_heartbeat_rpc, record_activity_task_heartbeat)
    }
    async fn record_activity_task_heartbeat_by_id(
        &self,
        request: Request<RecordActivityTaskHeartbeatByIdRequest>,
    ) -> RpcResult<RecordActivityTaskHeartbeatByIdResponse> {
        routed!(self, request, record_activity_task_heartbeat_by_id_rpc, record_activity_task_heartbeat_by_id)
    }
}
