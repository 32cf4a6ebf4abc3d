//! The state changes every activity path shares: enqueueing an attempt, starting one,
//! retrying after a failure, and closing the activity with its outcome events.

use prost::Message;
use temporalio_protos::protos::temporal::api::common::v1::WorkerVersionStamp;
use temporalio_protos::protos::temporal::api::failure::v1::Failure;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::ActivityTaskStartedEventAttributes;

use crate::core::state::ActivityInfo;
use crate::core::tasks::{TaskKind, TimerKind, TimerPayload};
use crate::core::txn::{new_event, RunTxn};
use crate::core::wft::add_external_event;

/// A durable timer payload for activity `scheduled_event_id`, attempt `attempt`.
pub(super) fn timer(kind: TimerKind, scheduled_event_id: i64, attempt: i32) -> TimerPayload {
    TimerPayload { kind: kind as i32, event_id: scheduled_event_id, attempt, timer_id: String::new() }
}

/// Enqueues the current attempt of activity `scheduled_event_id` and arms its
/// schedule-to-start timer (per attempt, from now).
pub(super) fn enqueue_attempt(txn: &mut RunTxn, scheduled_event_id: i64) {
    let Some(ai) = txn.state.activity(scheduled_event_id) else { return };
    let (queue, attempt, schedule_to_start_ms) = (ai.task_queue.clone(), ai.attempt, ai.schedule_to_start_ms);
    txn.enqueue(TaskKind::ActivityTask, &queue, scheduled_event_id, attempt);
    if schedule_to_start_ms > 0 {
        let due = txn.now_ms.saturating_add(schedule_to_start_ms);
        txn.add_timer(due, timer(TimerKind::ActivityScheduleToStart, scheduled_event_id, attempt));
    }
}

/// A reset's new run takes over pending activity `scheduled_event_id`: scheduled
/// again now (Temporal's `failInflightActivity` for an activity not started), its
/// current attempt enqueued, its schedule-to-close timer armed from now.
pub fn reschedule_for_reset(txn: &mut RunTxn, scheduled_event_id: i64, now_ms: i64) {
    let Some(ai) = txn.state.activity_mut(scheduled_event_id) else { return };
    ai.scheduled_time_ms = now_ms;
    ai.attempt_scheduled_time_ms = now_ms;
    ai.started_time_ms = 0;
    ai.started_identity.clear();
    ai.started_request_id.clear();
    let schedule_to_close_ms = ai.schedule_to_close_ms;
    enqueue_attempt(txn, scheduled_event_id);
    if schedule_to_close_ms > 0 {
        let attempt = txn.state.activity(scheduled_event_id).map_or(1, |a| a.attempt);
        txn.add_timer(now_ms.saturating_add(schedule_to_close_ms), timer(TimerKind::ActivityScheduleToClose, scheduled_event_id, attempt));
    }
}

/// Records the current attempt as started by `identity` and arms its start-to-close
/// and heartbeat timers. No history event (ActivityTaskStarted is written with the
/// outcome).
pub fn start_attempt(txn: &mut RunTxn, scheduled_event_id: i64, identity: &str, request_id: &str) {
    let now = txn.now_ms;
    let Some(ai) = txn.state.activity_mut(scheduled_event_id) else { return };
    ai.started_time_ms = now;
    ai.started_identity = identity.to_string();
    ai.started_request_id = request_id.to_string();
    let (attempt, start_to_close_ms, heartbeat_ms) = (ai.attempt, ai.start_to_close_ms, ai.heartbeat_ms);
    if start_to_close_ms > 0 {
        txn.add_timer(now.saturating_add(start_to_close_ms), timer(TimerKind::ActivityStartToClose, scheduled_event_id, attempt));
    }
    if heartbeat_ms > 0 {
        txn.add_timer(now.saturating_add(heartbeat_ms), timer(TimerKind::ActivityHeartbeat, scheduled_event_id, attempt));
    }
}

/// Moves the activity to its next attempt after `failure`, to run after `delay_ms`:
/// no history event; the failure becomes `last_failure`, heartbeat details are kept.
pub(super) fn retry(txn: &mut RunTxn, scheduled_event_id: i64, failure: Option<Failure>, delay_ms: i64) {
    let now = txn.now_ms;
    let Some(ai) = txn.state.activity_mut(scheduled_event_id) else { return };
    ai.attempt = ai.attempt.saturating_add(1);
    ai.attempt_scheduled_time_ms = now.saturating_add(delay_ms);
    ai.last_worker_identity = std::mem::take(&mut ai.started_identity);
    ai.started_time_ms = 0;
    ai.started_request_id.clear();
    ai.last_failure = failure;
    let attempt = ai.attempt;
    if delay_ms <= 0 {
        enqueue_attempt(txn, scheduled_event_id);
    } else {
        txn.add_timer(now.saturating_add(delay_ms), timer(TimerKind::ActivityRetry, scheduled_event_id, attempt));
    }
}

/// Ends activity `scheduled_event_id`: removes it from the state and writes
/// ActivityTaskStarted (if its last attempt started) then the outcome built by
/// `outcome(started_event_id)`, as external events (buffered while a workflow task is
/// in flight; a workflow task is scheduled otherwise).
///
/// While a workflow task is in flight the Started event's id is not known yet: the
/// outcome carries `started_event_id` 0 and the buffered Started event precedes it
/// directly (the flush of buffered events wires the id).
pub(super) fn close(
    txn: &mut RunTxn,
    scheduled_event_id: i64,
    worker_version: Option<WorkerVersionStamp>,
    outcome: impl FnOnce(i64) -> Attributes,
) {
    let Some(ai) = txn.state.remove_activity(scheduled_event_id) else { return };
    if ai.started_time_ms <= 0 {
        add_external_event(txn, outcome(0));
        return;
    }
    let started = new_event(0, ai.started_time_ms, started_attributes(&ai, worker_version));
    if txn.state.workflow_task_started() {
        txn.state.buffered_events.push(started.encode_to_vec());
        add_external_event(txn, outcome(0));
    } else {
        let started_event_id = txn.add_built_event(started);
        add_external_event(txn, outcome(started_event_id));
    }
}

/// ActivityTaskStarted of the activity's current attempt. `worker_version` is
/// deprecated in the API, but Temporal still records the completing worker's stamp.
#[allow(deprecated)]
fn started_attributes(ai: &ActivityInfo, worker_version: Option<WorkerVersionStamp>) -> Attributes {
    Attributes::ActivityTaskStartedEventAttributes(ActivityTaskStartedEventAttributes {
        scheduled_event_id: ai.scheduled_event_id,
        identity: ai.started_identity.clone(),
        request_id: ai.started_request_id.clone(),
        attempt: ai.attempt,
        last_failure: ai.last_failure.clone(),
        worker_version,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::txn::wire_started_event_id;
    use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
    use temporalio_protos::protos::temporal::api::history::v1::{ActivityTaskCompletedEventAttributes, TimerFiredEventAttributes};

    fn started(event_id: i64, scheduled_event_id: i64) -> HistoryEvent {
        let attrs = ActivityTaskStartedEventAttributes { scheduled_event_id, ..Default::default() };
        HistoryEvent { event_id, ..new_event(0, 0, Attributes::ActivityTaskStartedEventAttributes(attrs)) }
    }

    fn completed(scheduled_event_id: i64) -> HistoryEvent {
        let attrs = ActivityTaskCompletedEventAttributes { scheduled_event_id, ..Default::default() };
        new_event(0, 0, Attributes::ActivityTaskCompletedEventAttributes(attrs))
    }

    fn started_id(e: &HistoryEvent) -> i64 {
        match &e.attributes {
            Some(Attributes::ActivityTaskCompletedEventAttributes(a)) => a.started_event_id,
            _ => -1,
        }
    }

    #[test]
    fn a_buffered_outcome_gets_its_started_event_id() {
        let mut e = completed(5);
        wire_started_event_id(&mut e, Some(&started(12, 5)));
        assert_eq!(started_id(&e), 12);
    }

    #[test]
    fn other_pairs_are_left_alone() {
        let mut e = completed(5);
        wire_started_event_id(&mut e, Some(&started(12, 6)));
        assert_eq!(started_id(&e), 0, "another activity's Started");
        wire_started_event_id(&mut e, None);
        let fired = new_event(11, 0, Attributes::TimerFiredEventAttributes(TimerFiredEventAttributes::default()));
        wire_started_event_id(&mut e, Some(&fired));
        assert_eq!(started_id(&e), 0);
    }
}
