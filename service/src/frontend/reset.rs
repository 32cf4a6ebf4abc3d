//! ResetWorkflowExecution and DeleteWorkflowExecution: request validation (Temporal's
//! frontend checks and messages, in its order) and the mapping to the history API.

use temporalio_protos::protos::temporal::api::enums::v1::{ResetReapplyExcludeType, ResetReapplyType};
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use tonic::{Request, Response};

use super::workflow::execution;
use super::{Frontend, RpcResult};
use crate::core::lifecycle::ID_BYTES_MAX;
use crate::error::{Result, ServiceError};
use crate::history_api::reset::{DeleteWorkflow, Reset, ResetSpec};

impl Frontend {
    pub(super) async fn reset_workflow_execution_rpc(
        &self,
        request: Request<ResetWorkflowExecutionRequest>,
    ) -> RpcResult<ResetWorkflowExecutionResponse> {
        let r = request.into_inner();
        let reset = reset_of(r)?;
        self.namespaces.require(&reset.namespace)?;
        let run_id = self.history().reset(reset).await?;
        Ok(Response::new(ResetWorkflowExecutionResponse { run_id }))
    }

    pub(super) async fn delete_workflow_execution_rpc(
        &self,
        request: Request<DeleteWorkflowExecutionRequest>,
    ) -> RpcResult<DeleteWorkflowExecutionResponse> {
        let r = request.into_inner();
        let (workflow_id, run_id) = execution(r.workflow_execution.as_ref())?;
        self.namespaces.require(&r.namespace)?;
        self.history().delete(DeleteWorkflow { namespace: r.namespace, workflow_id, run_id }).await?;
        Ok(Response::new(DeleteWorkflowExecutionResponse::default()))
    }
}

/// Temporal's `WorkflowHandler.ResetWorkflowExecution` checks, then the reapply
/// settings (`history/api/resetworkflow.GetResetReapplyExcludeTypes`).
#[allow(deprecated)] // `reset_reapply_type`: deprecated, still honoured as Temporal does
fn reset_of(r: ResetWorkflowExecutionRequest) -> Result<Reset> {
    if r.request_id.is_empty() {
        return Err(ServiceError::InvalidArgument("RequestId is not set on request.".into()));
    }
    if r.request_id.len() > ID_BYTES_MAX {
        return Err(ServiceError::InvalidArgument("RequestId length exceeds limit.".into()));
    }
    let (workflow_id, run_id) = execution(r.workflow_execution.as_ref())?;
    let (reapply_signals, reapply_updates) = reapply(r.reset_reapply_type, &r.reset_reapply_exclude_types)?;
    if !r.post_reset_operations.is_empty() {
        return Err(ServiceError::Unimplemented("post_reset_operations are not supported by this server".into()));
    }
    let spec = ResetSpec { finish_event_id: r.workflow_task_finish_event_id, reason: r.reason, reapply_signals, reapply_updates };
    Ok(Reset { namespace: r.namespace, workflow_id, run_id, request_id: r.request_id, spec })
}

/// Whether signals and updates are reapplied: the deprecated `reset_reapply_type`
/// (unknown: Temporal's `Internal`), then every excluded type.
fn reapply(reapply_type: i32, exclude: &[i32]) -> Result<(bool, bool)> {
    let (mut signals, mut updates) = match ResetReapplyType::try_from(reapply_type) {
        Ok(ResetReapplyType::Unspecified | ResetReapplyType::AllEligible) => (true, true),
        Ok(ResetReapplyType::Signal) => (true, false),
        Ok(ResetReapplyType::None) => (false, false),
        Err(_) => return Err(ServiceError::Internal(format!("unknown reset reapply type: {reapply_type}"))),
    };
    for e in exclude {
        match ResetReapplyExcludeType::try_from(*e) {
            Ok(ResetReapplyExcludeType::Signal) => signals = false,
            Ok(ResetReapplyExcludeType::Update) => updates = false,
            _ => {}
        }
    }
    Ok((signals, updates))
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution;

    fn request() -> ResetWorkflowExecutionRequest {
        ResetWorkflowExecutionRequest {
            namespace: "default".into(),
            workflow_execution: Some(WorkflowExecution { workflow_id: "wf".into(), run_id: String::new() }),
            workflow_task_finish_event_id: 4,
            request_id: "req".into(),
            ..Default::default()
        }
    }

    fn message(r: ResetWorkflowExecutionRequest) -> String {
        reset_of(r).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    #[allow(deprecated)]
    fn requests_are_checked_in_temporals_order() {
        assert_eq!(
            message(ResetWorkflowExecutionRequest { request_id: String::new(), workflow_execution: None, ..request() }),
            "RequestId is not set on request."
        );
        assert_eq!(message(ResetWorkflowExecutionRequest { request_id: "r".repeat(1001), ..request() }), "RequestId length exceeds limit.");
        assert_eq!(message(ResetWorkflowExecutionRequest { workflow_execution: None, ..request() }), "Execution is not set on request.");
        let internal = reset_of(ResetWorkflowExecutionRequest { reset_reapply_type: 9, ..request() }).unwrap_err();
        assert!(matches!(internal, ServiceError::Internal(_)), "{internal}");
        assert!(reset_of(request()).is_ok());
    }

    #[test]
    fn reapply_settings_combine_the_type_and_the_exclusions() {
        assert_eq!(reapply(0, &[]).unwrap(), (true, true));
        assert_eq!(reapply(ResetReapplyType::Signal as i32, &[]).unwrap(), (true, false));
        assert_eq!(reapply(ResetReapplyType::None as i32, &[]).unwrap(), (false, false));
        assert_eq!(reapply(0, &[ResetReapplyExcludeType::Signal as i32]).unwrap(), (false, true));
        assert_eq!(reapply(0, &[ResetReapplyExcludeType::Update as i32, 99]).unwrap(), (true, false));
    }
}
