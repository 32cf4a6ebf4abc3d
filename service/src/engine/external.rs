//! Client requests that act on a workflow from outside: signal, signal-with-start,
//! cancellation request, termination. Each is one transition under the workflow's lock.

use bytes::Bytes;
use hourglass_storage::state::RunKey;
use temporalio_protos::protos::temporal::api::common::v1::{Header, Payloads};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    WorkflowExecutionCancelRequestedEventAttributes, WorkflowExecutionSignaledEventAttributes,
};

use super::start::{self, Decision, Policies, RunSpec, StartOutcome};
use super::txn::RunTxn;
use super::{lifecycle, wft, Engine, LoadedRun, ShardOwner};
use crate::error::{Result, ServiceError};

/// A signal as a client sent it.
#[derive(Debug, Clone, Default)]
pub struct SignalSpec {
    pub signal_name: String,
    pub input: Option<Payloads>,
    pub identity: String,
    pub header: Option<Header>,
    /// Empty when the client sent none (then retries are not deduplicated).
    pub request_id: String,
}

impl SignalSpec {
    fn event(&self) -> Attributes {
        Attributes::WorkflowExecutionSignaledEventAttributes(WorkflowExecutionSignaledEventAttributes {
            signal_name: self.signal_name.clone(),
            input: self.input.clone(),
            identity: self.identity.clone(),
            header: self.header.clone(),
            request_id: self.request_id.clone(),
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

/// The run a request names (empty `run_id`: the workflow's current run), or `NotFound`.
pub fn find_run(owner: &ShardOwner, namespace: &str, workflow_id: &str, run_id: &str) -> Result<LoadedRun> {
    let run_id = if run_id.is_empty() {
        match owner.current_run(namespace, workflow_id)? {
            Some((id, _)) => id,
            None => return Err(ServiceError::NotFound(format!("workflow not found for ID: {workflow_id}"))),
        }
    } else {
        run_id.to_string()
    };
    let key = RunKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string(), run_id };
    owner.load(&key)?.ok_or_else(|| {
        ServiceError::NotFound(format!(
            "workflow execution not found for workflow ID \"{}\" and run ID \"{}\"",
            key.workflow_id, key.run_id
        ))
    })
}

/// `NotFound` unless `run` belongs to the chain of runs `first_execution_run_id`
/// (empty: any chain).
fn check_chain(run: &LoadedRun, first_execution_run_id: &str) -> Result<()> {
    if !first_execution_run_id.is_empty() && run.state.first_execution_run_id != first_execution_run_id {
        return Err(ServiceError::NotFound("workflow execution not found".into()));
    }
    Ok(())
}

/// Like [`find_run`], but the run must be open and, when `first_execution_run_id` is
/// set, belong to that chain of runs.
fn find_open_run(owner: &ShardOwner, namespace: &str, workflow_id: &str, run_id: &str, first_execution_run_id: &str) -> Result<LoadedRun> {
    let run = find_run(owner, namespace, workflow_id, run_id)?;
    check_chain(&run, first_execution_run_id)?;
    if !run.state.is_open() {
        return Err(ServiceError::NotFound("workflow execution already completed".into()));
    }
    Ok(run)
}

/// SignalWorkflowExecution; returns the signalled run.
pub async fn signal_workflow(engine: &Engine, namespace: &str, workflow_id: &str, run_id: &str, signal: SignalSpec) -> Result<RunKey> {
    let lock = engine.lock_workflow(namespace, workflow_id).await?;
    let run = find_open_run(&lock, namespace, workflow_id, run_id, "")?;
    let key = run.key.clone();
    let mut txn = engine.txn(run);
    add_signal(&mut txn, &signal);
    let dedupe = (!signal.request_id.is_empty())
        .then(|| start::dedupe(namespace, format!("signal:{}", signal.request_id), Bytes::from(key.run_id.clone())));
    lock.commit_with(txn, dedupe).await?;
    Ok(key)
}

/// SignalWithStartWorkflowExecution: signals the open run (as the conflict policy
/// allows) or starts a new run whose history begins `Started, Signaled, WFTScheduled`.
pub async fn signal_with_start(
    engine: &Engine,
    namespace: &str,
    workflow_id: &str,
    spec: RunSpec,
    policies: Policies,
    signal: SignalSpec,
) -> Result<StartOutcome> {
    let lock = engine.lock_workflow(namespace, workflow_id).await?;
    let dedupe_id = format!("sws:{}", spec.request_id);
    if let Some(first) = start::dedupe_result(&lock, namespace, &dedupe_id)? {
        return decode_outcome(&first);
    }
    let now_ms = engine.now_ms();
    let (txns, outcome) = match start::decide(&lock, namespace, workflow_id, &spec.request_id, policies)? {
        Decision::SameRequest(run) | Decision::UseExisting(run) => {
            let outcome = StartOutcome { run_id: run.key.run_id.clone(), started: false };
            let mut txn = RunTxn::existing(run.key, now_ms, run.state, run.next_event_id, run.state_version);
            add_signal(&mut txn, &signal);
            (vec![txn], outcome)
        }
        decision => {
            let mut txns = Vec::with_capacity(2);
            if let Decision::TerminateExisting(run) = decision {
                txns.push(start::terminate_for_conflict(run, now_ms, &spec.identity));
            }
            let key = RunKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string(), run_id: start::new_run_id() };
            let outcome = StartOutcome { run_id: key.run_id.clone(), started: true };
            let mut txn = start::new_run(key, now_ms, &spec);
            txn.add_event(signal.event());
            start::begin_run(&mut txn);
            txns.push(txn);
            (txns, outcome)
        }
    };
    let record = start::dedupe(namespace, dedupe_id, encode_outcome(&outcome));
    let (_, duplicate) = lock.commit_many(txns, Some(record)).await?;
    match duplicate {
        Some(first) => decode_outcome(&first),
        None => Ok(outcome),
    }
}

fn encode_outcome(outcome: &StartOutcome) -> Bytes {
    let mut out = Vec::with_capacity(1 + outcome.run_id.len());
    out.push(u8::from(outcome.started));
    out.extend_from_slice(outcome.run_id.as_bytes());
    Bytes::from(out)
}

fn decode_outcome(bytes: &[u8]) -> Result<StartOutcome> {
    match bytes.split_first() {
        Some((&started, run_id)) if started <= 1 => {
            Ok(StartOutcome { run_id: String::from_utf8_lossy(run_id).into_owned(), started: started == 1 })
        }
        _ => Err(ServiceError::Internal("signal-with-start dedupe record does not decode".into())),
    }
}

/// Writes WorkflowExecutionCancelRequested (buffering rule) unless cancellation was
/// already requested; returns whether it wrote it.
pub fn add_cancel_request(txn: &mut RunTxn, cause: String, identity: String) -> bool {
    if txn.state.cancel_requested {
        return false;
    }
    txn.state.cancel_requested = true;
    let event = Attributes::WorkflowExecutionCancelRequestedEventAttributes(WorkflowExecutionCancelRequestedEventAttributes {
        cause,
        identity,
        ..Default::default()
    });
    wft::add_external_event(txn, event);
    true
}

/// RequestCancelWorkflowExecution. Idempotent: a second request, or one for a run
/// that already closed, succeeds without writing anything (as Temporal does).
pub async fn request_cancel(
    engine: &Engine,
    namespace: &str,
    workflow_id: &str,
    run_id: &str,
    first_execution_run_id: &str,
    reason: String,
    identity: String,
) -> Result<()> {
    let lock = engine.lock_workflow(namespace, workflow_id).await?;
    let run = find_run(&lock, namespace, workflow_id, run_id)?;
    check_chain(&run, first_execution_run_id)?;
    if !run.state.is_open() {
        return Ok(());
    }
    let mut txn = engine.txn(run);
    if add_cancel_request(&mut txn, reason, identity) {
        lock.commit(txn).await?;
    }
    Ok(())
}

/// TerminateWorkflowExecution.
#[allow(clippy::too_many_arguments)]
pub async fn terminate_workflow(
    engine: &Engine,
    namespace: &str,
    workflow_id: &str,
    run_id: &str,
    first_execution_run_id: &str,
    reason: String,
    details: Option<Payloads>,
    identity: String,
) -> Result<()> {
    let lock = engine.lock_workflow(namespace, workflow_id).await?;
    let run = find_open_run(&lock, namespace, workflow_id, run_id, first_execution_run_id)?;
    let mut txn = engine.txn(run);
    lifecycle::terminate(&mut txn, reason, details, identity);
    lock.commit(txn).await?;
    Ok(())
}
