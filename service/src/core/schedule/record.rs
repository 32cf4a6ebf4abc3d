//! The stored schedule and its rules: which actions are due at `now`, what they
//! change, and when the schedule must wake next. Every function here is a function of
//! the record, the compiled spec and `now_ms` (tested with fixed clocks).

use temporalio_protos::protos::temporal::api::common::v1::{Memo, SearchAttributes, WorkflowExecution};
use temporalio_protos::protos::temporal::api::enums::v1::{ScheduleOverlapPolicy, WorkflowExecutionStatus};
use temporalio_protos::protos::temporal::api::schedule::v1::{Schedule, ScheduleActionResult, ScheduleState};

use super::spec::CompiledSpec;

/// Temporal's default catch-up window: one year.
pub const DEFAULT_CATCHUP_WINDOW_MS: i64 = 365 * 24 * 3600 * 1000;
/// Recent actions kept (and shown by Describe).
pub const RECENT_ACTIONS_MAX: usize = 10;
/// Future action times Describe shows (List shows 5).
pub const FUTURE_TIMES_DESCRIBE: usize = 10;
pub const FUTURE_TIMES_LIST: usize = 5;
/// Most actions one firing starts (ALLOW_ALL catching up after a long downtime).
pub const ACTIONS_PER_FIRING_MAX: usize = 100;

/// A schedule as stored: its definition and its running state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredSchedule {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(string, tag = "2")]
    pub schedule_id: String,
    /// The schedule with its spec in canonical form.
    #[prost(message, optional, tag = "3")]
    pub schedule: Option<Schedule>,
    #[prost(message, optional, tag = "4")]
    pub memo: Option<Memo>,
    #[prost(message, optional, tag = "5")]
    pub search_attributes: Option<SearchAttributes>,
    #[prost(int64, tag = "6")]
    pub create_time_ms: i64,
    /// 0: never updated.
    #[prost(int64, tag = "7")]
    pub update_time_ms: i64,
    /// Bumped by every client change (Temporal's conflict token, 8 bytes big-endian).
    #[prost(uint64, tag = "8")]
    pub conflict_token: u64,
    /// The create request's id (a retried create is answered as the first).
    #[prost(string, tag = "9")]
    pub request_id: String,
    /// Deleted: kept as a tombstone so the id may be created again.
    #[prost(bool, tag = "10")]
    pub deleted: bool,
    #[prost(int64, tag = "11")]
    pub action_count: i64,
    #[prost(int64, tag = "12")]
    pub missed_catchup_window: i64,
    #[prost(int64, tag = "13")]
    pub overlap_skipped: i64,
    #[prost(message, repeated, tag = "14")]
    pub recent_actions: Vec<ScheduleActionResult>,
    /// Workflows this schedule started that were running when last looked at.
    #[prost(message, repeated, tag = "15")]
    pub running_workflows: Vec<WorkflowExecution>,
    /// Nominal times at or before this were handled (taken, skipped or missed).
    #[prost(int64, tag = "16")]
    pub processed_until_ms: i64,
    /// Generation of the armed wake-up timer; a timer of another generation is stale.
    #[prost(uint64, tag = "17")]
    pub timer_generation: u64,
    /// Manual triggers not run yet (PatchSchedule `trigger_immediately`).
    #[prost(message, repeated, tag = "18")]
    pub pending_triggers: Vec<PendingTrigger>,
    /// Identity of the creator (kept for the started workflows' identity).
    #[prost(string, tag = "19")]
    pub identity: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PendingTrigger {
    #[prost(int64, tag = "1")]
    pub nominal_ms: i64,
    /// `ScheduleOverlapPolicy` (0: the schedule's).
    #[prost(int32, tag = "2")]
    pub overlap_policy: i32,
}

/// One workflow start a firing asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct DueStart {
    pub nominal_ms: i64,
    /// A manual trigger (not counted against the spec's catch-up).
    pub manual: bool,
}

/// What firing at `now` decides (before any workflow is started).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Due {
    pub starts: Vec<DueStart>,
    pub overlap_skipped: i64,
    pub missed_catchup_window: i64,
    /// The new `processed_until_ms`.
    pub processed_until_ms: i64,
    /// Manual triggers handled (started or skipped), by nominal time.
    pub triggers_handled: Vec<i64>,
}

impl StoredSchedule {
    pub fn state(&self) -> ScheduleState {
        self.schedule.as_ref().and_then(|s| s.state.clone()).unwrap_or_default()
    }

    fn state_mut(&mut self) -> &mut ScheduleState {
        self.schedule.get_or_insert_with(Default::default).state.get_or_insert_with(Default::default)
    }

    pub fn overlap_policy(&self) -> ScheduleOverlapPolicy {
        let raw = self.schedule.as_ref().and_then(|s| s.policies.as_ref()).map_or(0, |p| p.overlap_policy);
        match ScheduleOverlapPolicy::try_from(raw) {
            Ok(ScheduleOverlapPolicy::Unspecified) | Err(_) => ScheduleOverlapPolicy::Skip,
            Ok(p) => p,
        }
    }

    pub fn catchup_window_ms(&self) -> i64 {
        let window = self.schedule.as_ref().and_then(|s| s.policies.as_ref()).and_then(|p| p.catchup_window.as_ref());
        match window {
            Some(d) if d.seconds > 0 || d.nanos > 0 => d.seconds.saturating_mul(1000).saturating_add(i64::from(d.nanos) / 1_000_000),
            _ => DEFAULT_CATCHUP_WINDOW_MS,
        }
    }

    /// Actions still allowed (`None`: unlimited).
    pub fn remaining_actions(&self) -> Option<i64> {
        let state = self.state();
        state.limited_actions.then_some(state.remaining_actions.max(0))
    }

    /// Pauses or unpauses (notes replaced when given). Unpausing forgets the times
    /// that passed while paused, as Temporal does.
    pub fn set_paused(&mut self, paused: bool, notes: &str, now_ms: i64) {
        let state = self.state_mut();
        state.paused = paused;
        state.notes = notes.to_string();
        if !paused {
            self.processed_until_ms = self.processed_until_ms.max(now_ms);
        }
    }
}

/// Which actions are due at `now_ms`. `running` are the schedule's workflows still
/// running (the engine refreshed them).
///
/// - Paused: nothing runs; the times that passed are dropped.
/// - Spec times in `(processed_until, now]`: those older than the catch-up window are
///   missed; with SKIP (the default) only the latest of the rest is a candidate, and
///   it is skipped while a workflow of the schedule runs; ALLOW_ALL starts each (at
///   most [`ACTIONS_PER_FIRING_MAX`], the rest wait for the next firing).
/// - Manual triggers run even when paused, with their own overlap policy.
/// - Limited actions: each start uses one; none once they are used up.
pub fn due(record: &StoredSchedule, spec: &CompiledSpec, now_ms: i64, running: usize) -> Due {
    let mut out = Due { processed_until_ms: record.processed_until_ms.max(record.create_time_ms), ..Default::default() };
    let mut remaining = record.remaining_actions();
    let mut running = running;
    let mut take = |out: &mut Due, nominal_ms: i64, manual: bool, policy: ScheduleOverlapPolicy| {
        if remaining == Some(0) {
            return;
        }
        if policy == ScheduleOverlapPolicy::AllowAll || running == 0 {
            out.starts.push(DueStart { nominal_ms, manual });
            running += 1;
            if let Some(r) = remaining.as_mut() {
                *r -= 1;
            }
        } else {
            out.overlap_skipped += 1;
        }
    };
    for trigger in &record.pending_triggers {
        let policy = match ScheduleOverlapPolicy::try_from(trigger.overlap_policy) {
            Ok(ScheduleOverlapPolicy::Unspecified) | Err(_) => record.overlap_policy(),
            Ok(p) => p,
        };
        take(&mut out, trigger.nominal_ms, true, policy);
        out.triggers_handled.push(trigger.nominal_ms);
    }
    if record.state().paused {
        out.processed_until_ms = out.processed_until_ms.max(now_ms);
        return out;
    }
    let policy = record.overlap_policy();
    let window_ms = record.catchup_window_ms();
    let mut candidates = Vec::new();
    let mut t = out.processed_until_ms;
    while let Some(next) = spec.next_after(t).filter(|&n| n <= now_ms) {
        t = next;
        if now_ms - next > window_ms {
            out.missed_catchup_window += 1;
            continue;
        }
        candidates.push(next);
        if candidates.len() >= ACTIONS_PER_FIRING_MAX {
            break;
        }
    }
    out.processed_until_ms = if candidates.len() >= ACTIONS_PER_FIRING_MAX { t } else { now_ms.max(out.processed_until_ms) };
    if policy != ScheduleOverlapPolicy::AllowAll {
        // Only the latest missed time can run; the earlier ones would overlap it.
        if let Some(&latest) = candidates.last() {
            candidates = vec![latest];
        }
    }
    for nominal_ms in candidates {
        take(&mut out, nominal_ms, false, policy);
    }
    out
}

/// A workflow a firing started (or found started by an earlier attempt).
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub nominal_ms: i64,
    pub manual: bool,
    pub actual_ms: i64,
    pub execution: WorkflowExecution,
}

/// Records a firing's outcome in the (freshly loaded) record: counts, recent actions,
/// running workflows, used triggers and actions, and the processed time.
pub fn record_firing(record: &mut StoredSchedule, due: &Due, started: &[Started]) {
    record.overlap_skipped += due.overlap_skipped;
    record.missed_catchup_window += due.missed_catchup_window;
    record.processed_until_ms = record.processed_until_ms.max(due.processed_until_ms);
    record.pending_triggers.retain(|t| !due.triggers_handled.contains(&t.nominal_ms));
    for s in started {
        record.action_count += 1;
        let state = record.state_mut();
        if state.limited_actions {
            state.remaining_actions = (state.remaining_actions - 1).max(0);
        }
        record.recent_actions.push(ScheduleActionResult {
            schedule_time: Some(timestamp(s.nominal_ms)),
            actual_time: Some(timestamp(s.actual_ms)),
            start_workflow_result: Some(s.execution.clone()),
            start_workflow_status: WorkflowExecutionStatus::Running as i32,
        });
        if !record.running_workflows.iter().any(|w| w.workflow_id == s.execution.workflow_id) {
            record.running_workflows.push(s.execution.clone());
        }
    }
    let excess = record.recent_actions.len().saturating_sub(RECENT_ACTIONS_MAX);
    record.recent_actions.drain(..excess);
}

/// When the schedule must wake next (`None`: not until a client changes it).
pub fn next_wake_ms(record: &StoredSchedule, spec: &CompiledSpec, now_ms: i64) -> Option<i64> {
    if record.deleted {
        return None;
    }
    if !record.pending_triggers.is_empty() {
        return Some(now_ms);
    }
    if record.state().paused || record.remaining_actions() == Some(0) {
        return None;
    }
    spec.next_after(record.processed_until_ms.max(record.create_time_ms)).map(|t| t.max(now_ms))
}

/// The next times the schedule would act (Describe's `future_action_times`).
pub fn future_times(record: &StoredSchedule, spec: &CompiledSpec, now_ms: i64, n: usize) -> Vec<i64> {
    let n = match record.remaining_actions() {
        Some(r) => n.min(usize::try_from(r).unwrap_or(0)),
        None => n,
    };
    spec.upcoming(record.processed_until_ms.max(now_ms), n)
}

pub fn timestamp(ms: i64) -> prost_wkt_types::Timestamp {
    prost_wkt_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// The conflict token as Temporal encodes it (8 bytes, big-endian).
pub fn conflict_token_bytes(token: u64) -> Vec<u8> {
    token.to_be_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::schedule::spec::canonicalize;
    use prost_wkt_types::Duration;
    use temporalio_protos::protos::temporal::api::schedule::v1::{IntervalSpec, SchedulePolicies, ScheduleSpec};

    const MIN: i64 = 60_000;

    fn record(policy: ScheduleOverlapPolicy, paused: bool) -> (StoredSchedule, CompiledSpec) {
        let spec = canonicalize(&ScheduleSpec {
            interval: vec![IntervalSpec { interval: Some(Duration { seconds: 60, nanos: 0 }), phase: None }],
            ..Default::default()
        })
        .unwrap();
        let compiled = CompiledSpec::new(&spec);
        let schedule = Schedule {
            spec: Some(spec),
            policies: Some(SchedulePolicies { overlap_policy: policy as i32, ..Default::default() }),
            state: Some(ScheduleState { paused, ..Default::default() }),
            action: None,
        };
        (StoredSchedule { schedule: Some(schedule), create_time_ms: 10 * MIN + 1, ..Default::default() }, compiled)
    }

    fn started(nominal_ms: i64) -> Started {
        Started {
            nominal_ms,
            manual: false,
            actual_ms: nominal_ms + 5,
            execution: WorkflowExecution { workflow_id: format!("w-{nominal_ms}"), run_id: "r".into() },
        }
    }

    #[test]
    fn an_interval_fires_once_per_period_and_wakes_for_the_next() {
        let (mut r, spec) = record(ScheduleOverlapPolicy::Skip, false);
        assert_eq!(next_wake_ms(&r, &spec, 10 * MIN + 2), Some(11 * MIN));
        let d = due(&r, &spec, 11 * MIN, 0);
        assert_eq!(d.starts, vec![DueStart { nominal_ms: 11 * MIN, manual: false }]);
        record_firing(&mut r, &d, &[started(11 * MIN)]);
        assert_eq!(r.action_count, 1);
        assert_eq!(r.running_workflows.len(), 1);
        assert_eq!(next_wake_ms(&r, &spec, 11 * MIN), Some(12 * MIN));
        assert_eq!(future_times(&r, &spec, 11 * MIN, 3), vec![12 * MIN, 13 * MIN, 14 * MIN]);
    }

    #[test]
    fn skip_runs_only_the_latest_missed_time_and_only_when_nothing_runs() {
        let (r, spec) = record(ScheduleOverlapPolicy::Skip, false);
        // Down from 10:01 to 15:30: five times missed, the latest (15:00) runs.
        let d = due(&r, &spec, 15 * MIN + 30_000, 0);
        assert_eq!(d.starts, vec![DueStart { nominal_ms: 15 * MIN, manual: false }]);
        assert_eq!(d.processed_until_ms, 15 * MIN + 30_000);
        // A workflow of the schedule still runs: skipped.
        let d = due(&r, &spec, 11 * MIN, 1);
        assert!(d.starts.is_empty());
        assert_eq!(d.overlap_skipped, 1);
    }

    #[test]
    fn allow_all_catches_up_every_time_in_the_window() {
        let (mut r, spec) = record(ScheduleOverlapPolicy::AllowAll, false);
        r.schedule.as_mut().unwrap().policies.as_mut().unwrap().catchup_window = Some(Duration { seconds: 150, nanos: 0 });
        let d = due(&r, &spec, 15 * MIN, 3);
        assert_eq!(d.starts.iter().map(|s| s.nominal_ms).collect::<Vec<_>>(), vec![13 * MIN, 14 * MIN, 15 * MIN]);
        assert_eq!(d.missed_catchup_window, 2);
    }

    #[test]
    fn paused_schedules_drop_times_but_run_triggers() {
        let (mut r, spec) = record(ScheduleOverlapPolicy::Skip, true);
        assert_eq!(next_wake_ms(&r, &spec, 11 * MIN), None);
        assert!(due(&r, &spec, 12 * MIN, 0).starts.is_empty());
        r.pending_triggers.push(PendingTrigger { nominal_ms: 12 * MIN + 7, overlap_policy: 0 });
        assert_eq!(next_wake_ms(&r, &spec, 12 * MIN + 7), Some(12 * MIN + 7));
        let d = due(&r, &spec, 12 * MIN + 8, 0);
        assert_eq!(d.starts, vec![DueStart { nominal_ms: 12 * MIN + 7, manual: true }]);
        record_firing(&mut r, &d, &[Started { manual: true, ..started(12 * MIN + 7) }]);
        assert!(r.pending_triggers.is_empty());
        // Unpausing forgets what passed while paused.
        r.set_paused(false, "back", 20 * MIN + 1);
        assert_eq!(next_wake_ms(&r, &spec, 20 * MIN + 1), Some(21 * MIN));
        assert_eq!(r.state().notes, "back");
    }

    #[test]
    fn limited_actions_run_out() {
        let (mut r, spec) = record(ScheduleOverlapPolicy::AllowAll, false);
        r.schedule.as_mut().unwrap().state = Some(ScheduleState { limited_actions: true, remaining_actions: 2, ..Default::default() });
        assert_eq!(future_times(&r, &spec, 11 * MIN, 10).len(), 2);
        let d = due(&r, &spec, 14 * MIN, 0);
        assert_eq!(d.starts.len(), 2);
        record_firing(&mut r, &d, &[started(11 * MIN), started(12 * MIN)]);
        assert_eq!(r.remaining_actions(), Some(0));
        assert_eq!(next_wake_ms(&r, &spec, 14 * MIN), None);
    }
}
