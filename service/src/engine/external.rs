//! Client requests that act on a workflow from outside: signal, signal-with-start,
//! cancellation request, termination. Each is one transition under the workflow's lock.

use bytes::Bytes;
use hourglass_storage::state::RunKey;
use temporalio_protos::protos::temporal::api::common::v1::Payloads;

use super::runs::{find_open_run, find_run};
use super::start;
use super::Engine;
use crate::core::lifecycle;
use crate::core::run::{self, Decision, Policies, RunSpec, StartOutcome};
use crate::core::signals::{add_cancel_request, add_signal, check_chain, SignalSpec};
use crate::core::txn::RunTxn;
use crate::engine::errors::StoredDataError;
use crate::error::Result;

/// SignalWorkflowExecution; returns the signalled run.
pub async fn signal_workflow(engine: &Engine, namespace: &str, workflow_id: &str, run_id: &str, signal: SignalSpec) -> Result<RunKey> {
    let lock = engine.lock_workflow(namespace, workflow_id).await?;
    let run = find_open_run(&lock, namespace, workflow_id, run_id, "")?;
    let key = run.key.clone();
    let mut txn = engine.txn(run);
    add_signal(&mut txn, &signal);
    let dedupe = (!signal.request_id.is_empty()).then(|| {
        run::dedupe(namespace, run::workflow_dedupe_id("signal", workflow_id, &signal.request_id), Bytes::from(key.run_id.clone()))
    });
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
    let dedupe_id = run::workflow_dedupe_id("sws", workflow_id, &spec.request_id);
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
                txns.push(lifecycle::terminate_for_conflict(run, now_ms, &spec.identity));
            }
            let key = RunKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string(), run_id: start::new_run_id() };
            let outcome = StartOutcome { run_id: key.run_id.clone(), started: true };
            let mut txn = run::new_run(key, now_ms, &spec);
            txn.add_event(signal.event());
            run::begin_run(&mut txn);
            txns.push(txn);
            (txns, outcome)
        }
    };
    let record = run::dedupe(namespace, dedupe_id, encode_outcome(&outcome));
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
        _ => Err(StoredDataError::UndecodableDedupe("signal-with-start").into()),
    }
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
