//! Reads that name a run the way requests do (an empty run id is the current run).

use hourglass_storage::state::RunKey;

use super::{RunView, ShardOwner};
use crate::core::error::RunError;
use crate::core::signals::check_chain;
use crate::error::Result;

/// The run a request names (empty `run_id`: the workflow's current run), or `NotFound`.
pub fn find_run(owner: &ShardOwner, namespace: &str, workflow_id: &str, run_id: &str) -> Result<RunView> {
    let run_id = if run_id.is_empty() {
        match owner.current_run(namespace, workflow_id)? {
            Some((id, _)) => id,
            None => return Err(RunError::NoRun { workflow_id: workflow_id.to_string() }.into()),
        }
    } else {
        run_id.to_string()
    };
    let key = RunKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string(), run_id };
    owner.load(&key)?.ok_or_else(|| RunError::NotFound { workflow_id: key.workflow_id, run_id: key.run_id }.into())
}

/// Like [`find_run`], but the run must be open and, when `first_execution_run_id` is
/// set, belong to that chain of runs.
pub fn find_open_run(
    owner: &ShardOwner,
    namespace: &str,
    workflow_id: &str,
    run_id: &str,
    first_execution_run_id: &str,
) -> Result<RunView> {
    let run = find_run(owner, namespace, workflow_id, run_id)?;
    check_chain(&run, first_execution_run_id)?;
    if !run.state.is_open() {
        return Err(RunError::Completed.into());
    }
    Ok(run)
}
