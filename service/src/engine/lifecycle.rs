//! Run lifecycle on the engine side: workflow timeouts, start backoff, children.

use hourglass_storage::state::RunKey;

use super::tasks::TimerPayload;
use super::Engine;
use crate::error::{Result, ServiceError};

/// A run-level timer fired: run/execution timeout, start backoff, start a child,
/// notify a parent (see `TimerKind`).
pub async fn on_run_timer(_engine: &Engine, _run: &RunKey, _timer: &TimerPayload) -> Result<()> {
    Err(ServiceError::Unimplemented("run timers are not built yet".into()))
}
