//! `ResetWorkflowExecution` on the engine side: lock the workflow, read the base
//! run's history and the current run, let [`crate::core::reset`] build the new run
//! (and the current run's termination), commit both in one transition deduplicated
//! by the request id.

use bytes::Bytes;
use hourglass_storage::state::RunKey;

use super::history::read_events;
use super::runs::find_run;
use super::start::{dedupe_result, new_run_id};
use super::Engine;
use crate::core::reset::{self, BaseRun, ResetSpec};
use crate::core::run::dedupe;
use crate::core::Ctx;
use crate::error::Result;

/// A reset as the engine takes it (`run_id` empty: the current run is the base).
#[derive(Debug, Clone)]
pub struct Reset {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
    pub request_id: String,
    pub spec: ResetSpec,
}

/// The dedupe key of a reset request (retries within the dedupe retention answer the
/// first reset's new run). It names the workflow: a request id is the client's, and a
/// shard's dedupe keys are shared by its workflows.
fn dedupe_id(workflow_id: &str, request_id: &str) -> String {
    crate::core::run::workflow_dedupe_id("reset", workflow_id, request_id)
}

/// Resets the base run; returns the new run's id.
pub async fn reset_workflow(engine: &Engine, r: &Reset) -> Result<String> {
    let lock = engine.lock_workflow(&r.namespace, &r.workflow_id).await?;
    let dedupe_id = dedupe_id(&r.workflow_id, &r.request_id);
    if let Some(first) = dedupe_result(&lock, &r.namespace, &dedupe_id)? {
        return Ok(String::from_utf8_lossy(&first).into_owned());
    }
    let base = find_run(&lock, &r.namespace, &r.workflow_id, &r.run_id)?;
    let events = read_events(&lock, &base.key, 1, usize::MAX)?;
    let current = match lock.current_run(&r.namespace, &r.workflow_id)? {
        Some((run_id, true)) if run_id == base.key.run_id => Some(base.clone()),
        Some((run_id, true)) => lock.load(&RunKey { run_id, ..base.key.clone() })?,
        _ => None,
    };
    let new_run = new_run_id();
    let plan = {
        let mut ids = engine.ids();
        let mut ctx = Ctx { now_ms: engine.now_ms(), config: engine.config(), ids: &mut ids };
        let base = BaseRun { key: &base.key, state: &base.state, events: &events };
        reset::reset(&base, current, new_run.clone(), &r.spec, &mut ctx)?
    };
    let txns = plan.terminated.into_iter().chain(std::iter::once(plan.new_run)).collect();
    let record = dedupe(&r.namespace, dedupe_id, Bytes::from(new_run.clone()));
    let (_, duplicate) = lock.commit_many(txns, Some(record)).await?;
    Ok(duplicate.map(|first| String::from_utf8_lossy(&first).into_owned()).unwrap_or(new_run))
}

#[cfg(test)]
mod tests;
