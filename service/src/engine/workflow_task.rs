//! Workflow task lifecycle on the engine side (started, completed, failed, timed out).

use hourglass_storage::state::RunKey;

use super::Engine;
use crate::error::{Result, ServiceError};

/// The start-to-close timer of workflow task (`scheduled_event_id`, `attempt`) fired.
pub async fn on_workflow_task_timeout(_engine: &Engine, _run: &RunKey, _scheduled_event_id: i64, _attempt: i32) -> Result<()> {
    Err(ServiceError::Unimplemented("workflow task timeouts are not built yet".into()))
}
