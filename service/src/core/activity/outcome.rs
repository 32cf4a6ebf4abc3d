//! What workers report about an attempt: completed, failed (maybe retried), canceled,
//! heartbeat: what each does to the activity's run (the engine loads the run, finds
//! the activity with [`locate`], applies one of these and commits).
//! Mirrors `go/service/history/api/{respondactivitytask*,recordactivitytaskheartbeat}`.

use temporalio_protos::protos::temporal::api::common::v1::{Payloads, WorkerVersionStamp};
use temporalio_protos::protos::temporal::api::failure::v1::Failure;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    ActivityTaskCanceledEventAttributes, ActivityTaskCompletedEventAttributes, ActivityTaskFailedEventAttributes,
};

use super::{transitions, ActivitySelector};
use crate::core::error::ActivityError;
use crate::core::retry::{self, FailedAttempt, RetryDecision};
use crate::core::state::{ActivityInfo, ExecutionState};
use crate::core::txn::RunTxn;
type Result<T, E = ActivityError> = std::result::Result<T, E>;

/// RespondActivityTaskCompleted(ById).
#[derive(Debug, Clone, Default)]
pub struct Completed {
    pub result: Option<Payloads>,
    pub identity: String,
    pub worker_version: Option<WorkerVersionStamp>,
}

/// RespondActivityTaskFailed(ById).
#[derive(Debug, Clone, Default)]
pub struct Failed {
    pub failure: Option<Failure>,
    pub identity: String,
    pub last_heartbeat_details: Option<Payloads>,
    pub worker_version: Option<WorkerVersionStamp>,
}

/// RespondActivityTaskCanceled(ById).
#[derive(Debug, Clone, Default)]
pub struct Canceled {
    pub details: Option<Payloads>,
    pub identity: String,
}

/// RecordActivityTaskHeartbeat(ById).
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub details: Option<Payloads>,
    pub identity: String,
}

/// The activity completed: Started (if needed) + ActivityTaskCompleted + a workflow
/// task. By id, an activity whose attempt has not started is completed too (its
/// Started event is made up, as Temporal does).
pub fn complete(txn: &mut RunTxn, scheduled_event_id: i64, c: Completed) -> Result<()> {
    let now = txn.now_ms;
    if let Some(ai) = txn.state.activity_mut(scheduled_event_id) {
        if ai.started_time_ms <= 0 {
            ai.started_time_ms = now;
            ai.started_identity = c.identity.clone();
            ai.started_request_id.clear();
        }
    }
    transitions::close(txn, scheduled_event_id, c.worker_version, |started_event_id| {
        Attributes::ActivityTaskCompletedEventAttributes(ActivityTaskCompletedEventAttributes {
            result: c.result,
            scheduled_event_id,
            started_event_id,
            identity: c.identity,
            ..Default::default()
        })
    });
    Ok(())
}

/// The attempt failed: retried per the retry policy (no event), or Started +
/// ActivityTaskFailed{retry_state} + a workflow task.
pub fn fail(txn: &mut RunTxn, scheduled_event_id: i64, f: Failed) -> Result<()> {
    let now = txn.now_ms;
    let ai = current(&mut txn.state, scheduled_event_id)?;
    if f.last_heartbeat_details.is_some() {
        ai.heartbeat_details = f.last_heartbeat_details;
        ai.last_heartbeat_ms = now;
    }
    match decide(ai, f.failure.as_ref(), now) {
        RetryDecision::Retry { delay_ms } => transitions::retry(txn, scheduled_event_id, f.failure, delay_ms),
        RetryDecision::Final(retry_state) => transitions::close(txn, scheduled_event_id, f.worker_version, |started_event_id| {
            Attributes::ActivityTaskFailedEventAttributes(ActivityTaskFailedEventAttributes {
                failure: f.failure,
                scheduled_event_id,
                started_event_id,
                identity: f.identity,
                retry_state: retry_state as i32,
                ..Default::default()
            })
        }),
    }
    Ok(())
}

/// The worker canceled the attempt after a cancel request: Started +
/// ActivityTaskCanceled + a workflow task.
pub fn cancel(txn: &mut RunTxn, scheduled_event_id: i64, c: Canceled) -> Result<()> {
    let ai = current(&mut txn.state, scheduled_event_id)?;
    if !ai.cancel_requested {
        return Err(ActivityError::CancelNotRequested);
    }
    let latest_cancel_requested_event_id = ai.cancel_requested_event_id;
    transitions::close(txn, scheduled_event_id, None, |started_event_id| {
        Attributes::ActivityTaskCanceledEventAttributes(ActivityTaskCanceledEventAttributes {
            details: c.details,
            latest_cancel_requested_event_id,
            scheduled_event_id,
            started_event_id,
            identity: c.identity,
            ..Default::default()
        })
    });
    Ok(())
}

/// Records a heartbeat (details and time, which pushes the heartbeat timeout back);
/// returns whether the workflow asked to cancel the activity.
pub fn heartbeat(txn: &mut RunTxn, scheduled_event_id: i64, h: Heartbeat) -> Result<bool> {
    let now = txn.now_ms;
    let ai = current(&mut txn.state, scheduled_event_id)?;
    ai.heartbeat_details = h.details;
    ai.last_heartbeat_ms = now;
    if !h.identity.is_empty() {
        ai.last_worker_identity = h.identity;
    }
    Ok(ai.cancel_requested)
}

/// The retry decision for the activity's current attempt failing with `failure` now.
pub fn decide(ai: &ActivityInfo, failure: Option<&Failure>, now_ms: i64) -> RetryDecision {
    let policy = ai.retry_policy.clone().unwrap_or_else(|| retry::with_defaults(None));
    let expiration_ms = if ai.schedule_to_close_ms > 0 { ai.scheduled_time_ms.saturating_add(ai.schedule_to_close_ms) } else { 0 };
    retry::decide(&FailedAttempt {
        policy: &policy,
        attempt: ai.attempt,
        failure,
        now_ms,
        expiration_ms,
        cancel_requested: ai.cancel_requested,
    })
}

/// The scheduled event id of the activity `selector` names, if it is pending (and,
/// when required, its attempt is running).
pub fn locate(state: &ExecutionState, selector: &ActivitySelector, require_started: bool) -> Result<i64> {
    let ai = match selector {
        ActivitySelector::Attempt { scheduled_event_id, attempt } => state.activity(*scheduled_event_id).filter(|a| a.attempt == *attempt),
        ActivitySelector::ActivityId(id) => state.activities.iter().find(|a| &a.activity_id == id),
    }
    .ok_or(ActivityError::NotFound)?;
    if require_started && ai.started_time_ms <= 0 {
        return Err(ActivityError::NotFound);
    }
    Ok(ai.scheduled_event_id)
}

fn current(state: &mut ExecutionState, scheduled_event_id: i64) -> Result<&mut ActivityInfo> {
    state.activity_mut(scheduled_event_id).ok_or(ActivityError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ExecutionState {
        let ai = |id: i64, aid: &str, attempt: i32, started: i64| ActivityInfo {
            scheduled_event_id: id,
            activity_id: aid.into(),
            attempt,
            started_time_ms: started,
            ..Default::default()
        };
        ExecutionState { activities: vec![ai(5, "a", 2, 100), ai(6, "b", 1, 0)], ..Default::default() }
    }

    #[test]
    fn tokens_name_the_running_attempt() {
        let s = state();
        let by = |scheduled_event_id, attempt| ActivitySelector::Attempt { scheduled_event_id, attempt };
        assert_eq!(locate(&s, &by(5, 2), true).unwrap(), 5);
        for (sel, started) in [(by(5, 1), true), (by(6, 1), true), (by(7, 1), false)] {
            assert!(matches!(locate(&s, &sel, started), Err(ActivityError::NotFound)), "{sel:?}");
        }
    }

    #[test]
    fn ids_name_any_attempt() {
        let s = state();
        let id = |s: &str| ActivitySelector::ActivityId(s.into());
        assert_eq!(locate(&s, &id("b"), false).unwrap(), 6);
        assert!(locate(&s, &id("b"), true).is_err(), "not started");
        assert!(locate(&s, &id("zz"), false).is_err());
    }
}
