//! ListWorkflowExecutions for one workflow id (`WorkflowId = '...'`): every run of it
//! the shard still keeps (open, or closed within the retention), newest first, as
//! DescribeWorkflowExecution shows each.

use temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::protos::temporal::api::workflow::v1::WorkflowExecutionInfo;

use super::{describe, history, Engine};
use crate::error::Result;

/// The runs of `workflow_id`, newest start first.
pub async fn list_runs(engine: &Engine, namespace: &str, workflow_id: &str) -> Result<Vec<WorkflowExecutionInfo>> {
    let owner = engine.owner_for_read(namespace, workflow_id).await?;
    let keys = owner.read(|s| s.runs_of(namespace, workflow_id).map(|(k, _)| k.clone()).collect::<Vec<_>>())?;
    let mut runs = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(run) = owner.load(&key)? else { continue };
        let root = history::started_attributes(&owner, &key)?
            .root_workflow_execution
            .unwrap_or_else(|| WorkflowExecution { workflow_id: key.workflow_id.clone(), run_id: key.run_id.clone() });
        let start_time_ms = run.state.start_time_ms;
        if let Some(info) = describe::response(&run, root).workflow_execution_info {
            runs.push((start_time_ms, info));
        }
    }
    runs.sort_by_key(|r| std::cmp::Reverse(r.0));
    Ok(runs.into_iter().map(|(_, info)| info).collect())
}
