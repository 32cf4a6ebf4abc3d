//! Client-side workflow RPCs: start, signal, signal-with-start, cancel, terminate, describe, history.

use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use tonic::{Request, Status};

use super::{Frontend, RpcResult};

impl Frontend {
    pub(super) async fn start_workflow_execution_rpc(&self, _request: Request<StartWorkflowExecutionRequest,>) -> RpcResult<StartWorkflowExecutionResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/StartWorkflowExecution yet"))
    }

    pub(super) async fn signal_workflow_execution_rpc(&self, _request: Request<SignalWorkflowExecutionRequest,>) -> RpcResult<SignalWorkflowExecutionResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/SignalWorkflowExecution yet"))
    }

    pub(super) async fn signal_with_start_workflow_execution_rpc(&self, _request: Request<SignalWithStartWorkflowExecutionRequest,>) -> RpcResult<SignalWithStartWorkflowExecutionResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/SignalWithStartWorkflowExecution yet"))
    }

    pub(super) async fn get_workflow_execution_history_rpc(&self, _request: Request<GetWorkflowExecutionHistoryRequest,>) -> RpcResult<GetWorkflowExecutionHistoryResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/GetWorkflowExecutionHistory yet"))
    }

    pub(super) async fn get_workflow_execution_history_reverse_rpc(&self, _request: Request<GetWorkflowExecutionHistoryReverseRequest,>) -> RpcResult<GetWorkflowExecutionHistoryReverseResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/GetWorkflowExecutionHistoryReverse yet"))
    }

    pub(super) async fn describe_workflow_execution_rpc(&self, _request: Request<DescribeWorkflowExecutionRequest,>) -> RpcResult<DescribeWorkflowExecutionResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/DescribeWorkflowExecution yet"))
    }

    pub(super) async fn request_cancel_workflow_execution_rpc(&self, _request: Request<RequestCancelWorkflowExecutionRequest,>) -> RpcResult<RequestCancelWorkflowExecutionResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/RequestCancelWorkflowExecution yet"))
    }

    pub(super) async fn terminate_workflow_execution_rpc(&self, _request: Request<TerminateWorkflowExecutionRequest,>) -> RpcResult<TerminateWorkflowExecutionResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/TerminateWorkflowExecution yet"))
    }

}
