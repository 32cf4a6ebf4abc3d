//! `UpdateWorkflowExecution` and `PollWorkflowExecutionUpdate`: validation (Go's
//! wording and codes, checked against Temporal's server), then the history API.

use std::time::Duration;

use temporalio_protos::protos::temporal::api::common::v1::link::{workflow_event, WorkflowEvent};
use temporalio_protos::protos::temporal::api::common::v1::{link, Link, WorkflowExecution};
use temporalio_protos::protos::temporal::api::enums::v1::{EventType, UpdateWorkflowExecutionLifecycleStage as Stage};
use temporalio_protos::protos::temporal::api::update::v1::{Request as UpdateRequest, UpdateRef, WaitPolicy};
use temporalio_protos::protos::temporal::api::workflowservice::v1::{
    PollWorkflowExecutionUpdateRequest, PollWorkflowExecutionUpdateResponse, UpdateWorkflowExecutionRequest,
    UpdateWorkflowExecutionResponse,
};
use tokio::time::Instant;
use tonic::{Request, Response};

use super::{deadline, Frontend, RpcResult};
use crate::engine::errors::UpdateError;
use crate::error::{Result, ServiceError};
use crate::history_api::{PollUpdate, UpdateAnswer, UpdateTarget, UpdateWorkflow};

/// Wait when the caller sent no deadline.
const UPDATE_WAIT_DEFAULT: Duration = Duration::from_secs(60);
/// Answer this long before the caller's deadline, so our answer is the one it sees.
const UPDATE_TAIL: Duration = Duration::from_millis(50);

fn invalid(message: &str) -> ServiceError {
    ServiceError::InvalidArgument(message.to_string())
}

fn deadline_of<T>(request: &Request<T>) -> Instant {
    Instant::now() + deadline::grpc_timeout(request.metadata()).unwrap_or(UPDATE_WAIT_DEFAULT).saturating_sub(UPDATE_TAIL)
}

fn stage(policy: Option<&WaitPolicy>) -> Stage {
    policy.and_then(|p| Stage::try_from(p.lifecycle_stage).ok()).unwrap_or(Stage::Unspecified)
}

/// The update request, its id generated when the caller left it empty (as Go does).
fn update_request(request: Option<UpdateRequest>, blob_bytes_max: usize) -> Result<UpdateRequest> {
    let mut request = request.ok_or_else(|| invalid("Update meta is not set on request."))?;
    let meta = request.meta.as_mut().ok_or_else(|| invalid("Update meta is not set on request."))?;
    if meta.update_id.is_empty() {
        meta.update_id = uuid::Uuid::new_v4().to_string();
    }
    let input = request.input.as_ref().ok_or_else(|| invalid("Update input is not set on request."))?;
    if input.name.is_empty() {
        return Err(invalid("Update name is not set on request."));
    }
    if input.args.as_ref().map_or(0, prost::Message::encoded_len) > blob_bytes_max {
        return Err(invalid("Blob data size exceeds limit."));
    }
    Ok(request)
}

/// The link to the update's acceptance, once accepted (as Temporal answers).
fn accepted_link(namespace: &str, workflow_id: &str, answer: &UpdateAnswer) -> Option<Link> {
    (answer.stage >= Stage::Accepted).then(|| Link {
        variant: Some(link::Variant::WorkflowEvent(WorkflowEvent {
            namespace: namespace.to_string(),
            workflow_id: workflow_id.to_string(),
            run_id: answer.run_id.clone(),
            reference: Some(workflow_event::Reference::RequestIdRef(workflow_event::RequestIdReference {
                request_id: String::new(),
                event_type: EventType::WorkflowExecutionUpdateAccepted as i32,
            })),
        })),
    })
}

fn update_ref(workflow_id: &str, update_id: &str, answer: &UpdateAnswer) -> UpdateRef {
    UpdateRef {
        workflow_execution: Some(WorkflowExecution { workflow_id: workflow_id.to_string(), run_id: answer.run_id.clone() }),
        update_id: update_id.to_string(),
    }
}

impl Frontend {
    /// Validates an UpdateWorkflowExecution request: the target, the update request
    /// (its id generated if empty) and the stage to wait for.
    fn parse_update(&self, req: &UpdateWorkflowExecutionRequest) -> Result<(UpdateTarget, UpdateRequest, Stage)> {
        self.namespaces.require(&req.namespace)?;
        let (workflow_id, run_id) = super::workflow::execution(req.workflow_execution.as_ref())?;
        let wait_stage = match stage(req.wait_policy.as_ref()) {
            Stage::Admitted => return Err(UpdateError::WaitForAdmitted.into()),
            Stage::Accepted => Stage::Accepted,
            // Unspecified waits for the outcome, as Temporal's server does.
            Stage::Unspecified | Stage::Completed => Stage::Completed,
        };
        let request = update_request(req.request.clone(), self.history().config().blob_bytes_max)?;
        let update_id = request.meta.as_ref().map(|m| m.update_id.clone()).unwrap_or_default();
        let target = UpdateTarget {
            namespace: req.namespace.clone(),
            workflow_id,
            run_id,
            first_execution_run_id: req.first_execution_run_id.clone(),
            update_id,
        };
        Ok((target, request, wait_stage))
    }

    /// The checks of [`Self::parse_update`] alone (update-with-start runs them
    /// before it starts anything).
    pub(super) fn check_update_request(&self, req: &UpdateWorkflowExecutionRequest) -> std::result::Result<(), tonic::Status> {
        self.parse_update(req).map(|_| ()).map_err(Into::into)
    }

    pub(super) async fn update_workflow_execution_rpc(
        &self,
        request: Request<UpdateWorkflowExecutionRequest>,
    ) -> RpcResult<UpdateWorkflowExecutionResponse> {
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        let (target, request, wait_stage) = self.parse_update(&req)?;
        let (workflow_id, update_id) = (target.workflow_id.clone(), target.update_id.clone());
        let answer = self.history().update_workflow(UpdateWorkflow { target, request, wait_stage, deadline }).await?;
        Ok(Response::new(UpdateWorkflowExecutionResponse {
            update_ref: Some(update_ref(&workflow_id, &update_id, &answer)),
            link: accepted_link(&req.namespace, &workflow_id, &answer),
            stage: answer.stage as i32,
            outcome: answer.outcome,
        }))
    }

    pub(super) async fn poll_workflow_execution_update_rpc(
        &self,
        request: Request<PollWorkflowExecutionUpdateRequest>,
    ) -> RpcResult<PollWorkflowExecutionUpdateResponse> {
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        self.namespaces.require(&req.namespace)?;
        let reference = req.update_ref.ok_or_else(|| invalid("UpdateRef is not set on request."))?;
        // Go words these two differently for polls.
        let execution = reference.workflow_execution.as_ref().filter(|e| !e.workflow_id.is_empty());
        let execution = execution.ok_or_else(|| invalid("Can't load workflow execution.  WorkflowId not set."))?;
        if !execution.run_id.is_empty() && uuid::Uuid::parse_str(&execution.run_id).is_err() {
            return Err(invalid("RunId is not valid UUID.").into());
        }
        let target = UpdateTarget {
            namespace: req.namespace.clone(),
            workflow_id: execution.workflow_id.clone(),
            run_id: execution.run_id.clone(),
            first_execution_run_id: String::new(),
            update_id: reference.update_id.clone(),
        };
        let wait_stage = stage(req.wait_policy.as_ref());
        let answer = self.history().poll_update(PollUpdate { target, wait_stage, deadline }).await?;
        Ok(Response::new(PollWorkflowExecutionUpdateResponse {
            update_ref: Some(update_ref(&execution.workflow_id, &reference.update_id, &answer)),
            stage: answer.stage as i32,
            outcome: answer.outcome,
        }))
    }
}
