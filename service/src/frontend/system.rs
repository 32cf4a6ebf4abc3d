//! System and namespace RPCs.

use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use tonic::{Request, Status};

use super::{Frontend, RpcResult};

impl Frontend {
    pub(super) async fn get_system_info_rpc(&self, _request: Request<GetSystemInfoRequest,>) -> RpcResult<GetSystemInfoResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/GetSystemInfo yet"))
    }

    pub(super) async fn describe_namespace_rpc(&self, _request: Request<DescribeNamespaceRequest,>) -> RpcResult<DescribeNamespaceResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/DescribeNamespace yet"))
    }

    pub(super) async fn register_namespace_rpc(&self, _request: Request<RegisterNamespaceRequest,>) -> RpcResult<RegisterNamespaceResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/RegisterNamespace yet"))
    }

    pub(super) async fn list_namespaces_rpc(&self, _request: Request<ListNamespacesRequest,>) -> RpcResult<ListNamespacesResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/ListNamespaces yet"))
    }

    pub(super) async fn shutdown_worker_rpc(&self, _request: Request<ShutdownWorkerRequest,>) -> RpcResult<ShutdownWorkerResponse,> {
        Err(Status::unimplemented("Hourglass does not implement WorkflowService/ShutdownWorker yet"))
    }

}
