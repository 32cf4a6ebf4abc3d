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

use temporalio_protos::protos::temporal::api::command::v1::{
    CancelTimerCommandAttributes, RequestCancelActivityTaskCommandAttributes, ScheduleActivityTaskCommandAttributes,
    StartTimerCommandAttributes,
};

use super::txn::RunTxn;
use super::CommandFailure;

fn not_built(what: &str) -> CommandFailure {
    CommandFailure { cause: 0, message: format!("{what} is not built yet") }
}

/// `ScheduleActivityTask`: validate and normalise, add ActivityTaskScheduled, record
/// the activity, enqueue its first attempt and arm its timers.
pub fn schedule_activity(
    _txn: &mut RunTxn,
    _attrs: ScheduleActivityTaskCommandAttributes,
    _workflow_task_completed_event_id: i64,
) -> Result<(), CommandFailure> {
    Err(not_built("ScheduleActivityTask"))
}

/// `RequestCancelActivityTask`.
pub fn request_cancel_activity(
    _txn: &mut RunTxn,
    _attrs: RequestCancelActivityTaskCommandAttributes,
    _workflow_task_completed_event_id: i64,
) -> Result<(), CommandFailure> {
    Err(not_built("RequestCancelActivityTask"))
}

/// `StartTimer`.
pub fn start_timer(_txn: &mut RunTxn, _attrs: StartTimerCommandAttributes, _workflow_task_completed_event_id: i64) -> Result<(), CommandFailure> {
    Err(not_built("StartTimer"))
}

/// `CancelTimer`.
pub fn cancel_timer(_txn: &mut RunTxn, _attrs: CancelTimerCommandAttributes, _workflow_task_completed_event_id: i64) -> Result<(), CommandFailure> {
    Err(not_built("CancelTimer"))
}
