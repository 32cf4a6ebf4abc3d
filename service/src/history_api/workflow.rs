//! Client calls on a workflow: start, signal, signal-with-start, cancellation
//! request, termination, describe, history pages, and resolving a run id.

use hourglass_storage::state::RunKey;
use temporalio_protos::protos::temporal::api::common::v1::Payloads;
use temporalio_protos::protos::temporal::api::workflow::v1::WorkflowExecutionInfo;
use temporalio_protos::protos::temporal::api::workflowservice::v1::DescribeWorkflowExecutionResponse;
use tokio::time::Instant;

use super::{HistoryApi, HistoryPage, Policies, RunSpec, SignalSpec, StartOutcome};
use crate::engine::history::HistoryRequest;
use crate::engine::start::StartAnswer;
use crate::engine::{describe, external, history, list, start};
use crate::error::Result;

/// StartWorkflowExecution (`spec.request_id` set: retries are deduplicated).
#[derive(Debug, Clone)]
pub struct StartWorkflow {
    pub namespace: String,
    pub workflow_id: String,
    pub spec: RunSpec,
    pub policies: Policies,
    /// `request_eager_execution`: start the first workflow task for the caller.
    pub eager: bool,
}

/// SignalWorkflowExecution (empty `run_id`: the current run).
#[derive(Debug, Clone)]
pub struct SignalWorkflow {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
    pub signal: SignalSpec,
}

/// SignalWithStartWorkflowExecution.
#[derive(Debug, Clone)]
pub struct SignalWithStart {
    pub namespace: String,
    pub workflow_id: String,
    pub spec: RunSpec,
    pub policies: Policies,
    pub signal: SignalSpec,
}

/// RequestCancelWorkflowExecution (idempotent).
#[derive(Debug, Clone)]
pub struct RequestCancel {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
    pub first_execution_run_id: String,
    pub reason: String,
    pub identity: String,
}

/// TerminateWorkflowExecution.
#[derive(Debug, Clone)]
pub struct Terminate {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
    pub first_execution_run_id: String,
    pub reason: String,
    pub details: Option<Payloads>,
    pub identity: String,
}

/// DescribeWorkflowExecution (empty `run_id`: the current run).
#[derive(Debug, Clone)]
pub struct Describe {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
}

/// GetWorkflowExecutionHistory. A long poll (`wait_new_event`, or the close-event
/// filter on an open run) answers by `deadline`.
#[derive(Debug, Clone)]
pub struct GetHistory {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
    /// 0: the default.
    pub page_size: usize,
    pub next_page_token: Vec<u8>,
    pub wait_new_event: bool,
    pub close_event_only: bool,
    pub deadline: Instant,
}

/// GetWorkflowExecutionHistoryReverse.
#[derive(Debug, Clone)]
pub struct GetHistoryReverse {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
    /// 0: the default.
    pub page_size: usize,
    pub next_page_token: Vec<u8>,
}

/// The run a request names: an empty `run_id` is the workflow's current run.
#[derive(Debug, Clone)]
pub struct ResolveRun {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
}

impl HistoryApi<'_> {
    pub async fn start_workflow(&self, req: StartWorkflow) -> Result<StartAnswer> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || start::start_workflow_eager(engine, &r.namespace, &r.workflow_id, r.spec.clone(), r.policies, r.eager)).await
    }

    /// Returns the signalled run.
    pub async fn signal_workflow(&self, req: SignalWorkflow) -> Result<RunKey> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || external::signal_workflow(engine, &r.namespace, &r.workflow_id, &r.run_id, r.signal.clone())).await
    }

    pub async fn signal_with_start(&self, req: SignalWithStart) -> Result<StartOutcome> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || external::signal_with_start(engine, &r.namespace, &r.workflow_id, r.spec.clone(), r.policies, r.signal.clone()))
            .await
    }

    pub async fn request_cancel(&self, req: RequestCancel) -> Result<()> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || {
            external::request_cancel(
                engine,
                &r.namespace,
                &r.workflow_id,
                &r.run_id,
                &r.first_execution_run_id,
                r.reason.clone(),
                r.identity.clone(),
            )
        })
        .await
    }

    pub async fn terminate(&self, req: Terminate) -> Result<()> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || {
            external::terminate_workflow(
                engine,
                &r.namespace,
                &r.workflow_id,
                &r.run_id,
                &r.first_execution_run_id,
                r.reason.clone(),
                r.details.clone(),
                r.identity.clone(),
            )
        })
        .await
    }

    /// Every run of one workflow id the shard keeps, newest first.
    pub async fn list_runs(&self, namespace: &str, workflow_id: &str) -> Result<Vec<WorkflowExecutionInfo>> {
        let engine = self.engine;
        self.retry(move || list::list_runs(engine, namespace, workflow_id)).await
    }

    pub async fn describe(&self, req: Describe) -> Result<DescribeWorkflowExecutionResponse> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || describe::describe(engine, &r.namespace, &r.workflow_id, &r.run_id)).await
    }

    /// A page of history; a long poll routed again (with what is left of its wait)
    /// when its owner stops under it.
    pub async fn get_history(&self, req: GetHistory) -> Result<HistoryPage> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || {
            let request = HistoryRequest {
                workflow_id: r.workflow_id.clone(),
                run_id: r.run_id.clone(),
                page_size: r.page_size,
                next_page_token: r.next_page_token.clone(),
                wait_new_event: r.wait_new_event,
                close_event_only: r.close_event_only,
                wait_budget: r.deadline.saturating_duration_since(Instant::now()),
            };
            history::get_history(engine, &r.namespace, request)
        })
        .await
    }

    pub async fn get_history_reverse(&self, req: GetHistoryReverse) -> Result<HistoryPage> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || history::get_history_reverse(engine, &r.namespace, &r.workflow_id, &r.run_id, r.page_size, &r.next_page_token))
            .await
    }

    pub async fn resolve_run(&self, req: ResolveRun) -> Result<RunKey> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || engine.resolve_run(&r.namespace, &r.workflow_id, &r.run_id)).await
    }
}
