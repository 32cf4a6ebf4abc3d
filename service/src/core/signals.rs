//! Events that reach a run from outside: signals and cancellation requests.

use temporalio_protos::protos::temporal::api::common::v1::{Header, Payloads, WorkflowExecution};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    WorkflowExecutionCancelRequestedEventAttributes, WorkflowExecutionSignaledEventAttributes,
};

use super::error::RunError;
use super::txn::RunTxn;
use super::{lifecycle, wft, RunView};

/// A signal as a client sent it.
#[derive(Debug, Clone, Default)]
pub struct SignalSpec {
    pub signal_name: String,
    pub input: Option<Payloads>,
    pub identity: String,
    pub header: Option<Header>,
    /// Empty when the client sent none (then retries are not deduplicated).
    pub request_id: String,
    /// The workflow that sent it (a SignalExternalWorkflowExecution command), if any.
    pub external: Option<WorkflowExecution>,
}

impl SignalSpec {
    pub fn event(&self) -> Attributes {
        Attributes::WorkflowExecutionSignaledEventAttributes(WorkflowExecutionSignaledEventAttributes {
            signal_name: self.signal_name.clone(),
            input: self.input.clone(),
            identity: self.identity.clone(),
            header: self.header.clone(),
            request_id: self.request_id.clone(),
            external_workflow_execution: self.external.clone(),
            ..Default::default()
        })
    }
}

/// Adds a signal to an open run: the buffering rule, except that a run still in its
/// start delay gets the event without a workflow task (the backoff timer schedules it).
pub fn add_signal(txn: &mut RunTxn, signal: &SignalSpec) {
    if lifecycle::pending_start_backoff(txn) {
        txn.add_event(signal.event());
    } else {
        wft::add_external_event(txn, signal.event());
    }
}

/// `NotFound` unless `run` belongs to the chain of runs `first_execution_run_id`
/// (empty: any chain).
pub fn check_chain(run: &RunView, first_execution_run_id: &str) -> Result<(), RunError> {
    if !first_execution_run_id.is_empty() && run.state.first_execution_run_id != first_execution_run_id {
        return Err(RunError::OtherChain);
    }
    Ok(())
}

/// Writes WorkflowExecutionCancelRequested (buffering rule) unless cancellation was
/// already requested; returns whether it wrote it.
pub fn add_cancel_request(txn: &mut RunTxn, cause: String, identity: String) -> bool {
    add_cancel_request_event(txn, WorkflowExecutionCancelRequestedEventAttributes { cause, identity, ..Default::default() })
}

/// [`add_cancel_request`] with the event's attributes given whole (a request from
/// another workflow names it in `external_*`).
pub fn add_cancel_request_event(txn: &mut RunTxn, event: WorkflowExecutionCancelRequestedEventAttributes) -> bool {
    if txn.state.cancel_requested {
        return false;
    }
    txn.state.cancel_requested = true;
    wft::add_external_event(txn, Attributes::WorkflowExecutionCancelRequestedEventAttributes(event));
    true
}
