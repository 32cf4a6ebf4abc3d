//! ResetWorkflowExecution and DeleteWorkflowExecution, routed to the workflow's
//! shard owner and retried there (`crate::engine::reset`, `crate::engine::delete`).

use super::HistoryApi;
use crate::engine::delete::delete_workflow;
use crate::engine::reset::reset_workflow;
use crate::error::Result;

pub use crate::core::reset::ResetSpec;
pub use crate::engine::reset::Reset;

/// DeleteWorkflowExecution (`run_id` empty: the current run).
#[derive(Debug, Clone)]
pub struct DeleteWorkflow {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
}

impl HistoryApi<'_> {
    /// Resets a run; the new run's id.
    pub async fn reset(&self, req: Reset) -> Result<String> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || reset_workflow(engine, r)).await
    }

    pub async fn delete(&self, req: DeleteWorkflow) -> Result<()> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || delete_workflow(engine, &r.namespace, &r.workflow_id, &r.run_id)).await
    }
}
