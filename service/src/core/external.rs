//! Signals and cancellation requests a workflow sends to other workflows
//! (`SignalExternalWorkflowExecution`, `RequestCancelExternalWorkflowExecution`),
//! as Temporal's history service does them, on both sides:
//!
//! - **the sender**: the command writes `...Initiated`, records the pending request
//!   (with a fresh request id) and arms an outbox timer due at once
//!   ([`signal_external`], [`request_cancel_external`]); once the outbox has reached
//!   the target, [`record_outcome`] writes `ExternalWorkflowExecutionSignaled` /
//!   `ExternalWorkflowExecutionCancelRequested` or the `...Failed` event (cause
//!   `EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND`) and schedules a workflow task;
//! - **the target**: [`deliver`] decides what the request does to it —
//!   `WorkflowExecutionSignaled` with `external_workflow_execution` (deduplicated by
//!   the request id) or `WorkflowExecutionCancelRequested` with
//!   `external_initiated_event_id` / `external_workflow_execution`.
//!
//! The engine (`engine::external_steps`) runs the outbox: read the initiated event,
//! deliver on the target's shard (wherever it is led), record the outcome.

use temporalio_protos::protos::temporal::api::command::v1::{
    RequestCancelExternalWorkflowExecutionCommandAttributes, SignalExternalWorkflowExecutionCommandAttributes,
};
use temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::protos::temporal::api::enums::v1::{
    CancelExternalWorkflowExecutionFailedCause, SignalExternalWorkflowExecutionFailedCause, WorkflowTaskFailedCause,
};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::*;

use super::commands::Refusal;
use super::lifecycle::ID_BYTES_MAX;
use super::run::SERVER_IDENTITY;
use super::signals::{add_cancel_request_event, add_signal, SignalSpec};
use super::state::{ExecutionState, ExternalRequestInfo, ExternalRequestKind};
use super::tasks::{TimerKind, TimerPayload};
use super::txn::RunTxn;
use super::{wft, CommandFailure};

/// Go's `limit.numPendingSignals.error`: pending signals to other workflows a run may have.
pub const PENDING_SIGNALS_MAX: usize = 2000;
/// Go's `limit.numPendingCancelRequests.error`.
pub const PENDING_CANCEL_REQUESTS_MAX: usize = 2000;

fn fail(cause: WorkflowTaskFailedCause, message: String) -> Refusal {
    Refusal::Fail(CommandFailure { cause: cause as i32, message })
}

/// Go's `validateCrossNamespaceCall` with cross-namespace commands disabled (the
/// default of `system.enableCrossNamespaceCommands`): only the run's own namespace.
fn same_namespace(own: &str, target: &str) -> Result<(), String> {
    if target.is_empty() || target == own {
        Ok(())
    } else {
        Err("cross namespace commands are not allowed".into())
    }
}

/// Go's `uuid.Validate` (google/uuid): 36-character hyphenated form, optionally as
/// `urn:uuid:...` or `{...}`, or 32 hex digits.
pub fn is_uuid(s: &str) -> bool {
    let s = match s.get(..9) {
        Some(p) if p.eq_ignore_ascii_case("urn:uuid:") => &s[9..],
        _ => s.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(s),
    };
    let b = s.as_bytes();
    match b.len() {
        32 => b.iter().all(u8::is_ascii_hexdigit),
        36 => b.iter().enumerate().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() }),
        _ => false,
    }
}

fn pending(state: &ExecutionState, kind: ExternalRequestKind) -> usize {
    state.external_requests.iter().filter(|r| r.kind == kind as i32).count()
}

fn limit_message(what: &str, pending: usize, max: usize) -> String {
    format!("the number of {what}, {pending}, has reached the per-workflow limit of {max}")
}

/// A reset's new run takes over the pending request initiated at
/// `initiated_event_id` (`kind`: an [`ExternalRequestKind`]), delivered with a new
/// `request_id`.
pub(crate) fn rearm(txn: &mut RunTxn, initiated_event_id: i64, kind: i32, request_id: String) {
    let kind = ExternalRequestKind::try_from(kind).unwrap_or(ExternalRequestKind::Signal);
    arm(txn, initiated_event_id, kind, request_id);
}

/// Records the pending request initiated at `initiated_event_id` and arms its outbox.
fn arm(txn: &mut RunTxn, initiated_event_id: i64, kind: ExternalRequestKind, request_id: String) {
    txn.state.external_requests.push(ExternalRequestInfo { initiated_event_id, kind: kind as i32, request_id });
    let timer = match kind {
        ExternalRequestKind::Cancel => TimerKind::CancelExternal,
        _ => TimerKind::SignalExternal,
    };
    let now_ms = txn.now_ms;
    txn.add_timer(now_ms, TimerPayload { kind: timer as i32, event_id: initiated_event_id, ..Default::default() });
}

/// The SignalExternalWorkflowExecution command (Go's
/// `handleCommandSignalExternalWorkflow`): checks, SignalExternalWorkflowExecutionInitiated,
/// the pending signal with `request_id`, its outbox timer.
#[allow(deprecated)] // `control`: deprecated, still recorded as Temporal does
pub fn signal_external(
    txn: &mut RunTxn,
    attrs: SignalExternalWorkflowExecutionCommandAttributes,
    wftc: i64,
    request_id: String,
    blob_max: usize,
) -> Result<(), Refusal> {
    let bad = |message: String| fail(WorkflowTaskFailedCause::BadSignalWorkflowExecutionAttributes, message);
    let Some(execution) = attrs.execution.clone() else {
        return Err(bad("Execution is not set on SignalExternalWorkflowExecutionCommand.".into()));
    };
    same_namespace(&txn.key.namespace, &attrs.namespace).map_err(bad)?;
    let (ns, wid, rid, name) = (&attrs.namespace, &execution.workflow_id, &execution.run_id, &attrs.signal_name);
    if wid.is_empty() {
        return Err(bad(format!(
            "WorkflowId is not set on SignalExternalWorkflowExecutionCommand. Namespace={ns} RunId={rid} SignalName={name}"
        )));
    }
    if ns.len() > ID_BYTES_MAX {
        return Err(bad(format!(
            "Namespace on SignalExternalWorkflowExecutionCommand exceeds length limit. WorkflowId={wid} Namespace={ns} Length={} Limit={ID_BYTES_MAX} RunId={rid} SignalName={name}",
            ns.len()
        )));
    }
    if wid.len() > ID_BYTES_MAX {
        return Err(bad(format!(
            "WorkflowId on SignalExternalWorkflowExecutionCommand exceeds length limit. WorkflowId={wid} Length={} Limit={ID_BYTES_MAX} Namespace={ns} RunId={rid} SignalName={name}",
            wid.len()
        )));
    }
    if !rid.is_empty() && !is_uuid(rid) {
        return Err(bad(format!(
            "Invalid RunId set on SignalExternalWorkflowExecutionCommand. WorkflowId={wid} Namespace={ns} RunId={rid} SignalName={name}"
        )));
    }
    if name.is_empty() {
        return Err(bad(format!(
            "SignalName is not set on SignalExternalWorkflowExecutionCommand. WorkflowId={wid} Namespace={ns} RunId={rid}"
        )));
    }
    let n = pending(&txn.state, ExternalRequestKind::Signal);
    if n >= PENDING_SIGNALS_MAX {
        let message = limit_message("pending signals to external workflows", n, PENDING_SIGNALS_MAX);
        return Err(fail(WorkflowTaskFailedCause::PendingSignalsLimitExceeded, message));
    }
    if attrs.input.as_ref().map_or(0, prost::Message::encoded_len) > blob_max {
        return Err(Refusal::Terminate(CommandFailure {
            cause: WorkflowTaskFailedCause::BadSignalWorkflowExecutionAttributes as i32,
            message: "SignalExternalWorkflowExecutionCommandAttributes.Input exceeds size limit.".into(),
        }));
    }
    let initiated = txn.add_event(Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(
        SignalExternalWorkflowExecutionInitiatedEventAttributes {
            workflow_task_completed_event_id: wftc,
            namespace: attrs.namespace,
            namespace_id: String::new(),
            workflow_execution: Some(execution),
            signal_name: attrs.signal_name,
            input: attrs.input,
            control: attrs.control,
            child_workflow_only: attrs.child_workflow_only,
            header: attrs.header,
        },
    ));
    arm(txn, initiated, ExternalRequestKind::Signal, request_id);
    Ok(())
}

/// The RequestCancelExternalWorkflowExecution command (Go's
/// `handleCommandRequestCancelExternalWorkflow`).
#[allow(deprecated)] // `control`: deprecated, still recorded as Temporal does
pub fn request_cancel_external(
    txn: &mut RunTxn,
    attrs: RequestCancelExternalWorkflowExecutionCommandAttributes,
    wftc: i64,
    request_id: String,
) -> Result<(), Refusal> {
    let bad = |message: String| fail(WorkflowTaskFailedCause::BadRequestCancelExternalWorkflowExecutionAttributes, message);
    same_namespace(&txn.key.namespace, &attrs.namespace).map_err(bad)?;
    let (ns, wid, rid) = (&attrs.namespace, &attrs.workflow_id, &attrs.run_id);
    if wid.is_empty() {
        return Err(bad(format!("WorkflowId is not set on RequestCancelExternalWorkflowExecutionCommand. Namespace={ns} RunId={rid}")));
    }
    if ns.len() > ID_BYTES_MAX {
        return Err(bad(format!(
            "Namespace on RequestCancelExternalWorkflowExecutionCommand exceeds length limit. WorkflowId={wid} RunId={rid} Namespace={ns} Length={} Limit={ID_BYTES_MAX}",
            ns.len()
        )));
    }
    if wid.len() > ID_BYTES_MAX {
        return Err(bad(format!(
            "WorkflowId on RequestCancelExternalWorkflowExecutionCommand exceeds length limit. WorkflowId={wid} Length={} Limit={ID_BYTES_MAX} RunId={rid} Namespace={ns}",
            wid.len()
        )));
    }
    if !rid.is_empty() && !is_uuid(rid) {
        return Err(bad(format!(
            "Invalid RunId set on RequestCancelExternalWorkflowExecutionCommand. WorkflowId={wid} RunId={rid} Namespace={ns}"
        )));
    }
    let started_in_this_task = txn.events().iter().any(|e| {
        matches!(&e.attributes, Some(Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(a))
            if a.workflow_task_completed_event_id == wftc && &a.workflow_id == wid)
    });
    if started_in_this_task {
        return Err(bad(format!(
            "Start and RequestCancel for child workflow is not allowed in same workflow task. WorkflowId={wid} RunId={rid} Namespace={ns}"
        )));
    }
    let n = pending(&txn.state, ExternalRequestKind::Cancel);
    if n >= PENDING_CANCEL_REQUESTS_MAX {
        let message = limit_message("pending requests to cancel external workflows", n, PENDING_CANCEL_REQUESTS_MAX);
        return Err(fail(WorkflowTaskFailedCause::PendingRequestCancelLimitExceeded, message));
    }
    let initiated = txn.add_event(Attributes::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(
        RequestCancelExternalWorkflowExecutionInitiatedEventAttributes {
            workflow_task_completed_event_id: wftc,
            namespace: attrs.namespace,
            namespace_id: String::new(),
            workflow_execution: Some(WorkflowExecution { workflow_id: attrs.workflow_id, run_id: attrs.run_id }),
            control: attrs.control,
            child_workflow_only: attrs.child_workflow_only,
            reason: attrs.reason,
        },
    ));
    arm(txn, initiated, ExternalRequestKind::Cancel, request_id);
    Ok(())
}

/// A pending request as its initiated event and the sender's state describe it:
/// everything the outbox needs to deliver it and record the outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalRequest {
    pub kind: ExternalRequestKind,
    /// The sending run.
    pub source: WorkflowExecution,
    pub initiated_event_id: i64,
    /// The target's namespace (the sender's when the command named none).
    pub namespace: String,
    /// The target as the command named it (the run id may be empty: the current run).
    pub target: WorkflowExecution,
    pub child_workflow_only: bool,
    pub control: String,
    pub request_id: String,
    /// The signal (kind `Signal`).
    pub signal_name: String,
    pub input: Option<temporalio_protos::protos::temporal::api::common::v1::Payloads>,
    pub header: Option<temporalio_protos::protos::temporal::api::common::v1::Header>,
    /// The cancellation reason (kind `Cancel`).
    pub reason: String,
}

impl ExternalRequest {
    /// The request initiated by `event` in the run `source` of `namespace`, pending as
    /// `info`; `None` if the event is not the initiated event of that kind.
    #[allow(deprecated)] // `control`
    pub fn from_initiated(namespace: &str, source: WorkflowExecution, info: &ExternalRequestInfo, event: &HistoryEvent) -> Option<Self> {
        let kind = ExternalRequestKind::try_from(info.kind).ok()?;
        let base = |ns: &str, target: Option<&WorkflowExecution>, child_only: bool, control: &str| ExternalRequest {
            kind,
            source: source.clone(),
            initiated_event_id: info.initiated_event_id,
            namespace: if ns.is_empty() { namespace.to_string() } else { ns.to_string() },
            target: target.cloned().unwrap_or_default(),
            child_workflow_only: child_only,
            control: control.to_string(),
            request_id: info.request_id.clone(),
            signal_name: String::new(),
            input: None,
            header: None,
            reason: String::new(),
        };
        match (kind, event.attributes.as_ref()?) {
            (ExternalRequestKind::Signal, Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(a)) => {
                Some(ExternalRequest {
                    signal_name: a.signal_name.clone(),
                    input: a.input.clone(),
                    header: a.header.clone(),
                    ..base(&a.namespace, a.workflow_execution.as_ref(), a.child_workflow_only, &a.control)
                })
            }
            (ExternalRequestKind::Cancel, Attributes::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(a)) => {
                Some(ExternalRequest {
                    reason: a.reason.clone(),
                    ..base(&a.namespace, a.workflow_execution.as_ref(), a.child_workflow_only, &a.control)
                })
            }
            _ => None,
        }
    }

    /// The signal as the target records it (Go: identity `history-service`, the
    /// sender as `external_workflow_execution`, the request id for deduplication).
    pub fn signal(&self) -> SignalSpec {
        SignalSpec {
            signal_name: self.signal_name.clone(),
            input: self.input.clone(),
            identity: SERVER_IDENTITY.to_string(),
            header: self.header.clone(),
            request_id: self.request_id.clone(),
            external: Some(self.source.clone()),
        }
    }
}

/// What the target made of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Signalled, cancellation requested, or nothing to do (a cancellation already
    /// requested, a closed run asked to cancel): the sender records success.
    Delivered,
    /// No such run, a signal to a closed run, or not the sender's child when the
    /// request was for a child only: the sender records the failure.
    NotFound,
}

/// Whether a request from `source` may reach the run with state `target`: any run,
/// or only a child of `source` (`child_workflow_only`, Go's `ErrWorkflowParent`).
fn reaches(request: &ExternalRequest, target: &ExecutionState) -> bool {
    !request.child_workflow_only
        || target.parent.as_ref().is_some_and(|p| p.workflow_id == request.source.workflow_id && p.run_id == request.source.run_id)
}

/// The request delivered to the target run `txn` (the run the command named, or the
/// workflow's current run): Go's history `SignalWorkflowExecution` /
/// `RequestCancelWorkflowExecution` with the external fields. Returns whether the
/// target took it and so whether `txn` must be committed. A signal's request id was
/// checked against the shard's dedupe records before (a retried delivery finds it).
pub fn deliver(txn: &mut RunTxn, request: &ExternalRequest) -> (Delivery, bool) {
    match request.kind {
        ExternalRequestKind::Cancel => {
            if !txn.state.is_open() {
                // Cancelling a run that already closed succeeds (Go: a no-op).
                return (Delivery::Delivered, false);
            }
            if !reaches(request, &txn.state) {
                return (Delivery::NotFound, false);
            }
            let event = WorkflowExecutionCancelRequestedEventAttributes {
                cause: request.reason.clone(),
                external_initiated_event_id: request.initiated_event_id,
                external_workflow_execution: Some(request.source.clone()),
                identity: SERVER_IDENTITY.to_string(),
            };
            let wrote = add_cancel_request_event(txn, event);
            (Delivery::Delivered, wrote)
        }
        _ => {
            if !txn.state.is_open() || !reaches(request, &txn.state) {
                return (Delivery::NotFound, false);
            }
            add_signal(txn, &request.signal());
            (Delivery::Delivered, true)
        }
    }
}

/// Records the outcome of `request` in the sending run `txn` (its outbox fired and
/// the target answered): the completed or failed event, a workflow task if none is
/// outstanding (the buffering rule). False if there is nothing to record (the run
/// closed, or the outcome is recorded already).
#[allow(deprecated)] // `control`
pub fn record_outcome(txn: &mut RunTxn, request: &ExternalRequest, delivery: Delivery) -> bool {
    if !txn.state.is_open() || txn.state.remove_external_request(request.initiated_event_id).is_none() {
        return false;
    }
    let namespace = request.namespace.clone();
    let workflow_execution = Some(request.target.clone());
    let initiated_event_id = request.initiated_event_id;
    let event = match (request.kind, delivery) {
        (ExternalRequestKind::Cancel, Delivery::Delivered) => {
            Attributes::ExternalWorkflowExecutionCancelRequestedEventAttributes(ExternalWorkflowExecutionCancelRequestedEventAttributes {
                initiated_event_id,
                namespace,
                namespace_id: String::new(),
                workflow_execution,
            })
        }
        (ExternalRequestKind::Cancel, Delivery::NotFound) => Attributes::RequestCancelExternalWorkflowExecutionFailedEventAttributes(
            RequestCancelExternalWorkflowExecutionFailedEventAttributes {
                cause: CancelExternalWorkflowExecutionFailedCause::ExternalWorkflowExecutionNotFound as i32,
                workflow_task_completed_event_id: 0,
                namespace,
                namespace_id: String::new(),
                workflow_execution,
                initiated_event_id,
                control: String::new(),
            },
        ),
        (_, Delivery::Delivered) => {
            Attributes::ExternalWorkflowExecutionSignaledEventAttributes(ExternalWorkflowExecutionSignaledEventAttributes {
                initiated_event_id,
                namespace,
                namespace_id: String::new(),
                workflow_execution,
                control: request.control.clone(),
            })
        }
        (_, Delivery::NotFound) => {
            Attributes::SignalExternalWorkflowExecutionFailedEventAttributes(SignalExternalWorkflowExecutionFailedEventAttributes {
                cause: SignalExternalWorkflowExecutionFailedCause::ExternalWorkflowExecutionNotFound as i32,
                workflow_task_completed_event_id: 0,
                namespace,
                namespace_id: String::new(),
                workflow_execution,
                initiated_event_id,
                control: request.control.clone(),
            })
        }
    };
    wft::add_external_event(txn, event);
    true
}

/// Whether the request targets the sending workflow itself (Go fails it with
/// `EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND` without asking anyone, whatever the run id).
pub fn targets_itself(request: &ExternalRequest, source_namespace: &str) -> bool {
    request.namespace == source_namespace && request.target.workflow_id == request.source.workflow_id
}

#[cfg(test)]
mod tests;
