//! Workflow tasks: polls, completions (commands → events), failures; queries.
//! The RPCs validate and decode here; the semantics live behind the history API
//! (`history_api::workflow_task`, `history_api::query`).

pub(super) mod poll;
mod query;

use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use tonic::{Request, Response};

use super::{Frontend, RpcResult};
use crate::core::token::TaskToken;
use crate::error::ServiceError;
use crate::history_api::{CompleteWorkflowTask, FailWorkflowTask};
use crate::namespaces::Namespaces;

/// Decodes a task token (`InvalidArgument` if garbled) and checks its namespace
/// exists and agrees with the request's (when the request names one). As Temporal:
/// a request namespace that does not exist is `NotFound` before anything else.
pub(super) fn task_token(namespaces: &Namespaces, bytes: &[u8], request_namespace: &str) -> Result<TaskToken, ServiceError> {
    if !request_namespace.is_empty() {
        namespaces.require(request_namespace)?;
    }
    let token = TaskToken::decode_token(bytes)?;
    if !request_namespace.is_empty() && request_namespace != token.namespace {
        return Err(ServiceError::InvalidArgument("Operation requested with a token from a different namespace.".into()));
    }
    namespaces.require(&token.namespace)?;
    Ok(token)
}

/// Go resolves the namespace an external signal or cancellation names before it
/// checks the command: an unknown one fails the call (`NotFound`) and records nothing.
/// (A known other namespace is refused by the command's own checks.)
#[allow(deprecated)] // the commands' `namespace` field
fn target_namespaces_exist(namespaces: &Namespaces, req: &RespondWorkflowTaskCompletedRequest) -> Result<(), ServiceError> {
    use temporalio_protos::protos::temporal::api::command::v1::command::Attributes as Cmd;
    for command in &req.commands {
        let named = match &command.attributes {
            Some(Cmd::SignalExternalWorkflowExecutionCommandAttributes(a)) => &a.namespace,
            Some(Cmd::RequestCancelExternalWorkflowExecutionCommandAttributes(a)) => &a.namespace,
            _ => continue,
        };
        if !named.is_empty() && namespaces.get(named).is_none() {
            return Err(ServiceError::NotFound(format!("Namespace {named} is not found.")));
        }
    }
    Ok(())
}

impl Frontend {
    /// `ResetStickyTaskQueue`, checked as the reference checks it: the namespace, then
    /// the execution (no length limit on the workflow id: a long one is simply not
    /// found); a closed run is `NotFound` ("workflow execution already completed").
    pub(super) async fn reset_sticky_task_queue_rpc(
        &self,
        request: Request<ResetStickyTaskQueueRequest>,
    ) -> RpcResult<ResetStickyTaskQueueResponse> {
        let r = request.into_inner();
        self.namespaces.require(&r.namespace)?;
        let invalid = |m: &str| ServiceError::InvalidArgument(m.into());
        let execution = r.execution.ok_or_else(|| invalid("Execution is not set on request."))?;
        let (workflow_id, run_id) = (execution.workflow_id, execution.run_id);
        if workflow_id.is_empty() {
            return Err(invalid("WorkflowId is not set on request.").into());
        }
        if !run_id.is_empty() && uuid::Uuid::parse_str(&run_id).is_err() {
            return Err(invalid("Invalid RunId.").into());
        }
        self.history().reset_sticky_task_queue(&r.namespace, &workflow_id, &run_id).await?;
        Ok(Response::new(ResetStickyTaskQueueResponse::default()))
    }

    pub(super) async fn poll_workflow_task_queue_rpc(
        &self,
        request: Request<PollWorkflowTaskQueueRequest>,
    ) -> RpcResult<PollWorkflowTaskQueueResponse> {
        self.poll_workflow_task(request).await
    }

    pub(super) async fn respond_workflow_task_completed_rpc(
        &self,
        request: Request<RespondWorkflowTaskCompletedRequest>,
    ) -> RpcResult<RespondWorkflowTaskCompletedResponse> {
        let req = request.into_inner();
        let token = task_token(&self.namespaces, &req.task_token, &req.namespace)?;
        target_namespaces_exist(&self.namespaces, &req)?;
        let response = self.history().complete_workflow_task(CompleteWorkflowTask { token, request: req }).await?;
        Ok(Response::new(response))
    }

    pub(super) async fn respond_workflow_task_failed_rpc(
        &self,
        request: Request<RespondWorkflowTaskFailedRequest>,
    ) -> RpcResult<RespondWorkflowTaskFailedResponse> {
        let req = request.into_inner();
        let token = task_token(&self.namespaces, &req.task_token, &req.namespace)?;
        self.history().fail_workflow_task(FailWorkflowTask { token, request: req }).await?;
        Ok(Response::new(RespondWorkflowTaskFailedResponse::default()))
    }

    pub(super) async fn query_workflow_rpc(&self, request: Request<QueryWorkflowRequest>) -> RpcResult<QueryWorkflowResponse> {
        self.query_workflow(request).await
    }

    pub(super) async fn respond_query_task_completed_rpc(
        &self,
        request: Request<RespondQueryTaskCompletedRequest>,
    ) -> RpcResult<RespondQueryTaskCompletedResponse> {
        self.respond_query_task_completed(request).await
    }
}
