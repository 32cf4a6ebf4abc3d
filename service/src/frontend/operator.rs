//! The `OperatorService` (what `temporal operator ...` calls besides the
//! WorkflowService): `ListSearchAttributes` only. Every other method answers
//! `Unimplemented` naming the method (generated).

use hourglass_proto::OperatorService;
use temporalio_protos::protos::temporal::api::operatorservice::v1::{ListSearchAttributesRequest, ListSearchAttributesResponse};
use tonic::Request;

use super::compression::compress_if_large;
use super::{Frontend, RpcResult};

/// The OperatorService of a node (a view of its [`Frontend`]).
#[derive(Clone)]
pub struct Operator {
    pub frontend: Frontend,
}

#[tonic::async_trait]
impl OperatorService for Operator {
    async fn list_search_attributes(&self, request: Request<ListSearchAttributesRequest>) -> RpcResult<ListSearchAttributesResponse> {
        compress_if_large(self.frontend.list_search_attributes_rpc(request).await)
    }
}
