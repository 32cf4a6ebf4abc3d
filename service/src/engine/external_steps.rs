//! The SignalExternal and CancelExternal outboxes: signals and cancellation requests
//! one workflow sends another (`core::external` has the rules).
//!
//! The command armed a timer due at once in the transition that wrote the initiated
//! event, so the request survives a crash. When it fires:
//!
//! 1. the sender's state and initiated event are read (nothing to do if the run
//!    closed or the outcome is recorded already — Go drops the task then too);
//! 2. the request is delivered on the target's shard, under the target workflow's
//!    lock, here or on the node that leads that shard ([`RemoteShards`]);
//! 3. the outcome is recorded in the sender under its lock, removing the timer in the
//!    same transition.
//!
//! Each step is idempotent: a signal is deduplicated by the request id the command
//! drew (a durable dedupe record on the target's shard, committed with the signal),
//! a cancellation by the target's cancel-requested flag, and the outcome by the
//! pending request it removes. Workflow locks are never nested.

use bytes::Bytes;
use hourglass_storage::state::RunKey;

use super::children::{elsewhere, RemoteShards};
use super::timers::firing_timer_id;
use super::{history, start, Engine};
use crate::core::children::execution_of;
use crate::core::external::{self, targets_itself, Delivery, ExternalRequest};
use crate::core::run;
use crate::core::state::ExternalRequestKind;
use crate::engine::errors::StoredDataError;
use crate::error::Result;

/// The outbox timer of the request `source` initiated at `initiated_event_id` fired.
pub async fn on_external_timer(engine: &Engine, source: &RunKey, initiated_event_id: i64) -> Result<()> {
    let owner = engine.owner_of_run(source).await?;
    let Some(view) = owner.load(source)? else { return Ok(()) };
    let Some(info) = view.state.external_request(initiated_event_id).cloned() else { return Ok(()) };
    if !view.state.is_open() {
        return Ok(());
    }
    let event = history::read_event(&owner, source, initiated_event_id)?;
    let Some(request) = ExternalRequest::from_initiated(&source.namespace, execution_of(source), &info, &event) else {
        let expected = "an external request's initiated event";
        return Err(StoredDataError::UnexpectedEvent { run: source.clone(), event_id: initiated_event_id, expected }.into());
    };
    drop(owner);

    let delivery = if targets_itself(&request, &source.namespace) {
        Delivery::NotFound
    } else {
        let here = deliver(engine, &request).await;
        match elsewhere(engine, &here) {
            Some((node, remote)) => deliver_remote(remote.as_ref(), node, &request).await?,
            None => here?,
        }
    };

    let lock = engine.lock_workflow(&source.namespace, &source.workflow_id).await?;
    let Some(view) = lock.load(source)? else { return Ok(()) };
    let timer = firing_timer_id().filter(|id| view.has_timer(*id));
    let mut txn = engine.txn(view);
    if external::record_outcome(&mut txn, &request, delivery) {
        if let Some(id) = timer {
            txn.remove_timer(id);
        }
        lock.commit(txn).await?;
    }
    Ok(())
}

async fn deliver_remote(remote: &dyn RemoteShards, node: u64, request: &ExternalRequest) -> Result<Delivery> {
    match request.kind {
        ExternalRequestKind::Cancel => remote.cancel_external(node, request).await,
        _ => remote.signal_external(node, request).await,
    }
}

/// Delivers `request` to its target, under the target workflow's lock (this node must
/// lead the target's shard: `NotLeader` otherwise). Idempotent.
pub async fn deliver(engine: &Engine, request: &ExternalRequest) -> Result<Delivery> {
    let namespace = request.namespace.as_str();
    let workflow_id = request.target.workflow_id.as_str();
    let lock = engine.lock_workflow(namespace, workflow_id).await?;
    let signal = request.kind != ExternalRequestKind::Cancel;
    let dedupe_id = run::workflow_dedupe_id("signal", workflow_id, &request.request_id);
    if signal && start::dedupe_result(&lock, namespace, &dedupe_id)?.is_some() {
        return Ok(Delivery::Delivered);
    }
    let run_id = if request.target.run_id.is_empty() {
        match lock.current_run(namespace, workflow_id)? {
            Some((run_id, _)) => run_id,
            None => return Ok(Delivery::NotFound),
        }
    } else {
        request.target.run_id.clone()
    };
    let key = RunKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string(), run_id };
    let Some(view) = lock.load(&key)? else { return Ok(Delivery::NotFound) };
    let mut txn = engine.txn(view);
    let (delivery, write) = external::deliver(&mut txn, request);
    if write {
        let dedupe = signal.then(|| run::dedupe(namespace, dedupe_id, Bytes::from(key.run_id.clone())));
        lock.commit_with(txn, dedupe).await?;
    }
    Ok(delivery)
}

#[cfg(test)]
mod tests;
