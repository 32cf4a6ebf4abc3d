//! `QueryWorkflow` (waits, within the caller's deadline, for a worker's answer) and
//! `RespondQueryTaskCompleted` (a worker's answer to a legacy query task).

use std::time::Duration;

use temporalio_protos::protos::temporal::api::query::v1::QueryRejected;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{
    QueryWorkflowRequest, QueryWorkflowResponse, RespondQueryTaskCompletedRequest, RespondQueryTaskCompletedResponse,
};
use tokio::time::Instant;
use tonic::{Request, Response};

use super::super::{Frontend, RpcResult};
use super::{deadline, task_token};
use crate::engine::query::{self, Asked, QueryOutcome};
use crate::error::ServiceError;

/// Wait when the caller sent no deadline.
const QUERY_WAIT_DEFAULT: Duration = Duration::from_secs(60);
/// Answer this long before the caller's deadline, so our answer is the one it sees.
const QUERY_TAIL: Duration = Duration::from_millis(50);
/// How often a waiting query re-checks whether it can go to a worker directly.
const QUERY_RECHECK: Duration = Duration::from_secs(1);

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
        let query = req.query.clone().ok_or_else(|| ServiceError::InvalidArgument("Query is not set on request.".into()))?;
        if query.query_type.is_empty() {
            return Err(ServiceError::InvalidArgument("QueryType is not set on request.".into()).into());
        }
        let args_bytes = query.query_args.as_ref().map_or(0, prost::Message::encoded_len);
        if args_bytes > self.engine.config().blob_bytes_max {
            return Err(ServiceError::InvalidArgument("Blob data size exceeds limit.".into()).into());
        }
        let run = self.engine.resolve_run(&req.namespace, &execution.workflow_id, &execution.run_id).await?;
        let mut ticket = match query::ask(&self.engine, &run, query, req.query_reject_condition).await? {
            Asked::Rejected(status) => {
                let rejected = QueryRejected { status: status as i32 };
                return Ok(Response::new(QueryWorkflowResponse { query_rejected: Some(rejected), ..Default::default() }));
            }
            Asked::Pending(ticket) => ticket,
        };
        loop {
            tokio::select! {
                outcome = ticket.outcome() => {
                    return match outcome {
                        Some(QueryOutcome::Answered(result)) => {
                            Ok(Response::new(QueryWorkflowResponse { query_result: result, ..Default::default() }))
                        }
                        Some(QueryOutcome::Failed(message)) => Err(ServiceError::QueryFailed(message).into()),
                        None => Err(ServiceError::Unavailable("the query was withdrawn before it was answered; retry".into()).into()),
                    };
                }
                _ = tokio::time::sleep(QUERY_RECHECK) => {
                    if let Err(e) = query::recheck(&self.engine, &ticket).await {
                        tracing::warn!(?run, error = %e, "re-checking a waiting query failed");
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ServiceError::DeadlineExceeded("query timed out before a worker answered it".into()).into());
                }
            }
        }
    }

    pub(in crate::frontend) async fn respond_query_task_completed(
        &self,
        request: Request<RespondQueryTaskCompletedRequest>,
    ) -> RpcResult<RespondQueryTaskCompletedResponse> {
        let req = request.into_inner();
        let token = task_token(&self.namespaces, &req.task_token, &req.namespace)?;
        query::respond(&self.engine, &token, req).await?;
        Ok(Response::new(RespondQueryTaskCompletedResponse::default()))
    }
}
