//! Durable timers of activities and user timers coming due (the timer service
//! loads the run and calls these under its lock). Each checks the timer against the run's state: a timer that no longer
//! applies changes nothing (the timer service then drops it); one that applies has its
//! effect and its own removal committed as one transition.
//!
//! Timeout failures have Temporal's shapes (`processSingleActivityTimeoutTask`,
//! `go/service/history/timer_queue_active_task_executor.go`).

use temporalio_protos::protos::temporal::api::enums::v1::{RetryState, TimeoutType};
use temporalio_protos::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_protos::protos::temporal::api::failure::v1::{Failure, TimeoutFailureInfo};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{ActivityTaskTimedOutEventAttributes, TimerFiredEventAttributes};

use super::cleanup::{self, is_obsolete};
use super::outcome::decide;
use super::transitions::{self, timer};
use crate::core::retry::{timeout_type_name, RetryDecision};
use crate::core::tasks::{TimerKind, TimerPayload};
use crate::core::txn::RunTxn;
use crate::core::wft::add_external_event;

/// Message of the failure that ends an activity when no retry fits before its
/// schedule-to-close deadline (`common.FailureReasonActivityRetryScheduleToCloseTimeout`).
pub const NOT_ENOUGH_TIME_MESSAGE: &str =
    "Not enough time to schedule next retry before activity ScheduleToClose timeout, giving up retrying";

/// An activity timer (a timeout or the end of a retry backoff), stored as timer
/// `storage_timer_id`, came due on `txn`'s (open) run: its effect, its removal and the
/// timers it makes obsolete. False: it no longer applies and `txn` is unchanged.
pub fn fire_activity_timer(txn: &mut RunTxn, storage_timer_id: u64, timer: &TimerPayload) -> bool {
    if !apply_activity_timer(txn, timer) {
        return false;
    }
    txn.remove_timer(storage_timer_id);
    cleanup::drop_obsolete_timers(txn, Some(storage_timer_id));
    true
}

/// A user timer (`StartTimer`), stored as timer `storage_timer_id`, came due:
/// TimerFired (by the buffering rule) and the timer is forgotten. False: it no
/// longer applies (canceled, or a later timer reuses its id).
pub fn fire_user_timer(txn: &mut RunTxn, storage_timer_id: u64, timer: &TimerPayload) -> bool {
    if !apply_user_timer(txn, timer) {
        return false;
    }
    txn.remove_timer(storage_timer_id);
    true
}

/// Applies a user timer to `txn`; false if it no longer applies (canceled, or a
/// later timer reuses its id).
pub fn apply_user_timer(txn: &mut RunTxn, t: &TimerPayload) -> bool {
    let current = txn.state.timer(&t.timer_id).is_some_and(|ti| ti.started_event_id == t.event_id);
    if !current {
        return false;
    }
    txn.state.remove_timer(&t.timer_id);
    add_external_event(
        txn,
        Attributes::TimerFiredEventAttributes(TimerFiredEventAttributes { timer_id: t.timer_id.clone(), started_event_id: t.event_id }),
    );
    true
}

/// Applies an activity timer to `txn`; false if it no longer applies.
pub fn apply_activity_timer(txn: &mut RunTxn, t: &TimerPayload) -> bool {
    let scheduled_event_id = t.event_id;
    if is_obsolete(&txn.state, t) {
        return false;
    }
    let Some(ai) = txn.state.activity(scheduled_event_id) else { return false };
    match TimerKind::try_from(t.kind) {
        Ok(TimerKind::ActivityScheduleToClose) => time_out(txn, scheduled_event_id, TimeoutType::ScheduleToClose),
        Ok(TimerKind::ActivityScheduleToStart) => time_out(txn, scheduled_event_id, TimeoutType::ScheduleToStart),
        Ok(TimerKind::ActivityStartToClose) => time_out(txn, scheduled_event_id, TimeoutType::StartToClose),
        Ok(TimerKind::ActivityHeartbeat) => {
            let deadline = ai.last_heartbeat_ms.max(ai.started_time_ms).saturating_add(ai.heartbeat_ms);
            if txn.now_ms < deadline {
                // Heartbeats moved the deadline: wait for the new one.
                txn.add_timer(deadline, timer(TimerKind::ActivityHeartbeat, scheduled_event_id, t.attempt));
            } else {
                time_out(txn, scheduled_event_id, TimeoutType::Heartbeat);
            }
        }
        Ok(TimerKind::ActivityRetry) => transitions::enqueue_attempt(txn, scheduled_event_id),
        _ => return false,
    }
    true
}

/// The activity's current attempt (or the activity) timed out: retried if the policy
/// allows, else Started (if it ran) + ActivityTaskTimedOut + a workflow task.
fn time_out(txn: &mut RunTxn, scheduled_event_id: i64, timeout_type: TimeoutType) {
    let Some(ai) = txn.state.activity(scheduled_event_id) else { return };
    let failure = timeout_failure(format!("activity {} timeout", timeout_type_name(timeout_type)), timeout_type);
    let retry_state = match decide(ai, Some(&failure), txn.now_ms) {
        RetryDecision::Retry { delay_ms } => return transitions::retry(txn, scheduled_event_id, Some(failure), delay_ms),
        RetryDecision::Final(state) => state,
    };
    let mut failure = if retry_state == RetryState::Timeout && timeout_type != TimeoutType::ScheduleToStart {
        timeout_failure(NOT_ENOUGH_TIME_MESSAGE.to_string(), TimeoutType::ScheduleToClose)
    } else {
        failure
    };
    if let Some(FailureInfo::TimeoutFailureInfo(info)) = failure.failure_info.as_mut() {
        info.last_heartbeat_details = ai.heartbeat_details.clone();
    }
    failure.cause = ai.last_failure.clone().map(Box::new);
    transitions::close(txn, scheduled_event_id, None, |started_event_id| {
        Attributes::ActivityTaskTimedOutEventAttributes(ActivityTaskTimedOutEventAttributes {
            failure: Some(failure),
            scheduled_event_id,
            started_event_id,
            retry_state: retry_state as i32,
        })
    });
}

/// A timeout failure as the server reports it (`source: "Server"`).
pub fn timeout_failure(message: String, timeout_type: TimeoutType) -> Failure {
    Failure {
        message,
        source: "Server".into(),
        failure_info: Some(FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
            timeout_type: timeout_type as i32,
            last_heartbeat_details: None,
        })),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
