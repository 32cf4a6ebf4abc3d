//! Dropping activity timers a transition makes obsolete, in that same transition.
//!
//! Timers are validated when they fire, so leaving obsolete ones is correct; but each
//! would later cost a write to remove, and they count against the run's timer limit
//! (a busy run with long start-to-close timeouts would pile them up). So whenever an
//! attempt starts or ends, the run's stored timers that no longer apply are removed
//! with the change. The stored timers come with the run's view (loaded under the
//! workflow lock, which the timer service takes too), so they are still there at commit.

use crate::core::state::ExecutionState;
use crate::core::tasks::{TimerKind, TimerPayload};
use crate::core::txn::RunTxn;

/// Adds to `txn` the removal of every stored activity timer of its run that its new
/// state makes obsolete, except `keep` (a timer `txn` already removes).
pub fn drop_obsolete_timers(txn: &mut RunTxn, keep: Option<u64>) {
    let obsolete: Vec<u64> =
        txn.stored_timers().filter(|(id, t)| Some(*id) != keep && is_obsolete(&txn.state, t)).map(|(id, _)| id).collect();
    for id in obsolete {
        txn.remove_timer(id);
    }
}

/// Whether an activity timer can no longer have an effect in `state`. Timers of other
/// kinds are never obsolete here.
pub fn is_obsolete(state: &ExecutionState, t: &TimerPayload) -> bool {
    let Ok(kind) = TimerKind::try_from(t.kind) else { return false };
    let per_attempt_unstarted = matches!(kind, TimerKind::ActivityScheduleToStart | TimerKind::ActivityRetry);
    let per_attempt_started = matches!(kind, TimerKind::ActivityStartToClose | TimerKind::ActivityHeartbeat);
    if !(per_attempt_unstarted || per_attempt_started || kind == TimerKind::ActivityScheduleToClose) {
        return false;
    }
    let Some(ai) = state.activity(t.event_id) else { return true };
    let started = ai.started_time_ms > 0;
    if per_attempt_unstarted {
        t.attempt != ai.attempt || started
    } else if per_attempt_started {
        t.attempt != ai.attempt || !started
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::ActivityInfo;

    fn t(kind: TimerKind, attempt: i32) -> TimerPayload {
        TimerPayload { kind: kind as i32, event_id: 5, attempt, timer_id: String::new() }
    }

    fn state(attempt: i32, started: bool) -> ExecutionState {
        let ai = ActivityInfo { scheduled_event_id: 5, attempt, started_time_ms: if started { 1 } else { 0 }, ..Default::default() };
        ExecutionState { activities: vec![ai], ..Default::default() }
    }

    #[test]
    fn running_attempt() {
        let s = state(2, true);
        assert!(!is_obsolete(&s, &t(TimerKind::ActivityStartToClose, 2)));
        assert!(!is_obsolete(&s, &t(TimerKind::ActivityHeartbeat, 2)));
        assert!(!is_obsolete(&s, &t(TimerKind::ActivityScheduleToClose, 1)));
        assert!(is_obsolete(&s, &t(TimerKind::ActivityScheduleToStart, 2)), "it started");
        assert!(is_obsolete(&s, &t(TimerKind::ActivityStartToClose, 1)), "earlier attempt");
        assert!(is_obsolete(&s, &t(TimerKind::ActivityRetry, 2)));
    }

    #[test]
    fn waiting_attempt() {
        let s = state(3, false);
        assert!(!is_obsolete(&s, &t(TimerKind::ActivityRetry, 3)));
        assert!(!is_obsolete(&s, &t(TimerKind::ActivityScheduleToStart, 3)));
        assert!(is_obsolete(&s, &t(TimerKind::ActivityStartToClose, 3)), "not started");
        assert!(is_obsolete(&s, &t(TimerKind::ActivityHeartbeat, 2)));
    }

    #[test]
    fn closed_activity_and_other_kinds() {
        let s = ExecutionState::default();
        assert!(is_obsolete(&s, &t(TimerKind::ActivityScheduleToClose, 1)));
        assert!(!is_obsolete(&s, &t(TimerKind::UserTimer, 0)));
        assert!(!is_obsolete(&s, &t(TimerKind::WorkflowTaskStartToClose, 1)));
    }
}
