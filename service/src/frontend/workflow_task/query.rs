//! `QueryWorkflow` (waits, within the caller's deadline, for a worker's answer) and
//! `RespondQueryTaskCompleted` (a worker's answer to a legacy query task). Asking,
//! waiting and asking again after a leader change happen behind the history API.

use std::time::Duration;

use temporalio_protos::protos::temporal::api::query::v1::QueryRejected;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{
    QueryWorkflowRequest, QueryWorkflowResponse, RespondQueryTaskCompletedRequest, RespondQueryTaskCompletedResponse,
};
use tokio::time::Instant;
use tonic::{Request, Response};

use super::super::{Frontend, RpcResult};
use super::task_token;
use crate::error::ServiceError;
use crate::frontend::deadline;
use crate::history_api::{QueryAnswer, QueryWorkflow, RespondQuery};

/// Wait when the caller sent no deadline.
const QUERY_WAIT_DEFAULT: Duration = Duration::from_secs(60);
/// Answer this long before the caller's deadline, so our answer is the one it sees.
const QUERY_TAIL: Duration = Duration::from_millis(50);

impl Frontend {
    pub(in crate::frontend) async fn query_workflow(&self, request: Request<QueryWorkflowRequest>) -> RpcResult<QueryWorkflowResponse> {
        let wait = deadline::grpc_timeout(request.metadata()).unwrap_or(QUERY_WAIT_DEFAULT).saturating_sub(QUERY_TAIL);
        let deadline = Instant::now() + wait;
        let req = request.into_inner();
        self.namespaces.require(&req.namespace)?;
        let execution = req.execution.as_ref().ok_or_else(|| ServiceError::InvalidArgument("Execution is not set on request.".into()))?;
        if execution.workflow_id.is_empty() {
            return Err(ServiceError::InvalidArgument("WorkflowId is not set on request.".into()).into());
        }
        if !execution.run_id.is_empty() && uuid::Uuid::parse_str(&execution.run_id).is_err() {
            return Err(ServiceError::InvalidArgument("Invalid RunId.".into()).into());
        }
        let query = req.query.ok_or_else(|| ServiceError::InvalidArgument("Query is not set on request.".into()))?;
        if query.query_type.is_empty() {
            return Err(ServiceError::InvalidArgument("QueryType is not set on request.".into()).into());
        }
        let args_bytes = query.query_args.as_ref().map_or(0, prost::Message::encoded_len);
        if args_bytes > self.history().config().blob_bytes_max {
            return Err(ServiceError::InvalidArgument("Blob data size exceeds limit.".into()).into());
        }
        let ask = QueryWorkflow {
            namespace: req.namespace,
            workflow_id: execution.workflow_id.clone(),
            run_id: execution.run_id.clone(),
            query,
            reject_condition: req.query_reject_condition,
            deadline,
        };
        let response = match self.history().query_workflow(ask).await? {
            QueryAnswer::Rejected(status) => {
                QueryWorkflowResponse { query_rejected: Some(QueryRejected { status: status as i32 }), ..Default::default() }
            }
            QueryAnswer::Answered(query_result) => QueryWorkflowResponse { query_result, ..Default::default() },
        };
        Ok(Response::new(response))
    }

    pub(in crate::frontend) async fn respond_query_task_completed(
        &self,
        request: Request<RespondQueryTaskCompletedRequest>,
    ) -> RpcResult<RespondQueryTaskCompletedResponse> {
        let req = request.into_inner();
        let token = task_token(&self.namespaces, &req.task_token, &req.namespace)?;
        self.history().respond_query(RespondQuery { token, request: req }).await?;
        Ok(Response::new(RespondQueryTaskCompletedResponse::default()))
    }
}
