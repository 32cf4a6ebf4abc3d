//! `ExecuteMultiOperation`: update-with-start (a StartWorkflowExecution and an
//! UpdateWorkflowExecution on the same workflow id, the only combination Temporal
//! accepts). The start runs first through the start RPC's own path (conflict
//! policy, request-id dedupe), then the update is admitted on the run it started or
//! found. A failure answers as Temporal's does: the failing operation's code, with a
//! `MultiOperationExecutionFailure` naming each operation's status (the others
//! `Aborted`).

use prost::Message;
use temporalio_protos::protos::google::rpc::Status as RpcStatus;
use temporalio_protos::protos::temporal::api::errordetails::v1::multi_operation_execution_failure::OperationStatus;
use temporalio_protos::protos::temporal::api::errordetails::v1::MultiOperationExecutionFailure;
use temporalio_protos::protos::temporal::api::failure::v1::MultiOperationExecutionAborted;
use temporalio_protos::protos::temporal::api::workflowservice::v1::execute_multi_operation_request::operation::Operation;
use temporalio_protos::protos::temporal::api::workflowservice::v1::execute_multi_operation_response::{response, Response as OpResponse};
use temporalio_protos::protos::temporal::api::workflowservice::v1::{
    ExecuteMultiOperationRequest, ExecuteMultiOperationResponse, StartWorkflowExecutionRequest, UpdateWorkflowExecutionRequest,
};
use tonic::{Code, Request, Response, Status};

use super::{Frontend, RpcResult};
use crate::error::ServiceError;

const FAILED: &str = "Update-with-Start could not be executed.";

fn invalid(message: &str) -> Status {
    ServiceError::InvalidArgument(message.to_string()).into()
}

/// The two operations of an update-with-start, checked against each other.
fn split(req: ExecuteMultiOperationRequest) -> Result<(StartWorkflowExecutionRequest, UpdateWorkflowExecutionRequest), Status> {
    let mut operations = req.operations.into_iter().map(|o| o.operation);
    let (Some(Some(Operation::StartWorkflow(start))), Some(Some(Operation::UpdateWorkflow(update))), None) =
        (operations.next(), operations.next(), operations.next())
    else {
        return Err(invalid("Operations have to be exactly [Start, Update]."));
    };
    if start.namespace != req.namespace || update.namespace != req.namespace {
        return Err(invalid("Operation namespace mismatch with request namespace."));
    }
    let update_workflow_id = update.workflow_execution.as_ref().map(|e| e.workflow_id.as_str()).unwrap_or_default();
    if update_workflow_id != start.workflow_id {
        return Err(invalid("WorkflowId is not consistent with previous operation(s)."));
    }
    if update.workflow_execution.as_ref().is_some_and(|e| !e.run_id.is_empty()) {
        return Err(invalid("RunId is not allowed."));
    }
    if !update.first_execution_run_id.is_empty() {
        return Err(invalid("FirstExecutionRunId is not allowed."));
    }
    // The start's own refusals name the start operation (Go wraps them in a
    // MultiOperationExecutionFailure, the update `Aborted`).
    if !start.cron_schedule.is_empty() {
        return Err(multi_failure(0, &invalid("CronSchedule is not allowed.")));
    }
    if start.request_eager_execution {
        return Err(multi_failure(0, &invalid("RequestEagerExecution is not supported.")));
    }
    if start.workflow_start_delay.as_ref().is_some_and(|d| d.seconds > 0 || d.nanos > 0) {
        return Err(multi_failure(0, &invalid("WorkflowStartDelay is not supported.")));
    }
    Ok((start, update))
}

/// One operation's status in a `MultiOperationExecutionFailure`.
fn operation_status(status: &Status) -> OperationStatus {
    let details = RpcStatus::decode(status.details()).map(|s| s.details).unwrap_or_default();
    OperationStatus { code: status.code() as i32, message: status.message().to_string(), details }
}

fn aborted() -> OperationStatus {
    OperationStatus {
        code: Code::Aborted as i32,
        message: "Operation was aborted.".into(),
        details: vec![prost_wkt_types::Any {
            type_url: "type.googleapis.com/temporal.api.failure.v1.MultiOperationExecutionAborted".into(),
            value: MultiOperationExecutionAborted {}.encode_to_vec(),
        }],
    }
}

/// The failure of operation `failed` (0: start, 1: update) with `status`.
fn multi_failure(failed: usize, status: &Status) -> Status {
    let statuses = (0..2).map(|i| if i == failed { operation_status(status) } else { aborted() }).collect();
    let detail = MultiOperationExecutionFailure { statuses }.encode_to_vec();
    let rpc = RpcStatus {
        code: status.code() as i32,
        message: FAILED.into(),
        details: vec![prost_wkt_types::Any {
            type_url: "type.googleapis.com/temporal.api.errordetails.v1.MultiOperationExecutionFailure".into(),
            value: detail,
        }],
    };
    Status::with_details(status.code(), FAILED, rpc.encode_to_vec().into())
}

impl Frontend {
    pub(super) async fn execute_multi_operation_rpc(
        &self,
        request: Request<ExecuteMultiOperationRequest>,
    ) -> RpcResult<ExecuteMultiOperationResponse> {
        let metadata = request.metadata().clone();
        let req = request.into_inner();
        self.namespaces.require(&req.namespace)?;
        let (start, update) = split(req)?;
        // The update is checked before anything starts (Go: both are validated first).
        if let Err(status) = self.check_update_request(&update) {
            return Err(multi_failure(1, &status));
        }
        let started = self.start_workflow_execution_rpc(Request::new(start)).await.map_err(|s| multi_failure(0, &s))?.into_inner();
        let mut update_request = Request::new(update);
        *update_request.metadata_mut() = metadata;
        let updated = self.update_workflow_execution_rpc(update_request).await.map_err(|s| multi_failure(1, &s))?.into_inner();
        Ok(Response::new(ExecuteMultiOperationResponse {
            responses: vec![
                OpResponse { response: Some(response::Response::StartWorkflow(started)) },
                OpResponse { response: Some(response::Response::UpdateWorkflow(updated)) },
            ],
        }))
    }
}
