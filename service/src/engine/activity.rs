//! Activity lifecycle on the engine side: dispatch, results, retries, timeouts.

use hourglass_storage::state::RunKey;

use super::tasks::TimerPayload;
use super::Engine;
use crate::error::{Result, ServiceError};

/// An activity timer (timeouts, retry backoff) fired.
pub async fn on_activity_timer(_engine: &Engine, _run: &RunKey, _timer: &TimerPayload) -> Result<()> {
    Err(ServiceError::Unimplemented("activity timers are not built yet".into()))
}

/// A user timer (`StartTimer`) fired.
pub async fn on_user_timer(_engine: &Engine, _run: &RunKey, _timer: &TimerPayload) -> Result<()> {
    Err(ServiceError::Unimplemented("user timers are not built yet".into()))
}
