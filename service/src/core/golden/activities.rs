//! Activity inputs on the in-memory run: a poller starting an attempt
//! (`engine::activity::dispatch`), the worker's report on it
//! (`engine::activity::outcome`), and the attempts before the one the reference
//! shows starting (its `lastFailure` says how they ended).

use temporalio_protos::protos::temporal::api::enums::v1::TimeoutType;
use temporalio_protos::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_protos::protos::temporal::api::failure::v1::Failure;

use super::driver::Sim;
use crate::core::activity::outcome::{self, locate, Failed};
use crate::core::activity::{cleanup, transitions, ActivitySelector};
use crate::core::tasks::{TaskKind, TimerKind, TimerPayload};
use crate::core::txn::RunTxn;
use crate::core::IdSource;

impl Sim {
    /// A poller takes attempt `attempt` of activity `scheduled`
    /// (`engine::activity::dispatch::start_polled_task`).
    pub(super) fn start_attempt(&mut self, scheduled: i64, attempt: i32, identity: &str, now: i64, what: &str) -> Result<(), String> {
        let (task_id, queue) = self
            .backlog
            .iter()
            .find(|(_, _, p)| p.kind == TaskKind::ActivityTask as i32 && p.scheduled_event_id == scheduled && p.attempt == attempt)
            .map(|(id, q, _)| (*id, q.clone()))
            .ok_or(format!("{what}: attempt {attempt} of activity {scheduled} was never enqueued"))?;
        let mut txn = self.txn(now)?;
        txn.ack(queue, task_id);
        let request_id = self.ids.new_id();
        transitions::start_attempt(&mut txn, scheduled, identity, &request_id);
        cleanup::drop_obsolete_timers(&mut txn, None);
        self.commit(txn, &format!("{what} (attempt {attempt} starts)"))
    }

    /// The reference shows attempt `attempt` starting: run attempts before it, each
    /// failing the way `last_failure` says (the worker failed it, or a server timeout
    /// fired), then wait out the retry backoff.
    pub(super) fn fail_earlier_attempts(
        &mut self,
        scheduled: i64,
        attempt: i32,
        identity: &str,
        last_failure: Option<&Failure>,
        what: &str,
    ) -> Result<(), String> {
        loop {
            let ai = self.state()?.activity(scheduled).ok_or(format!("{what}: activity {scheduled} is not pending"))?;
            let (current, scheduled_at) = (ai.attempt, ai.attempt_scheduled_time_ms);
            if current >= attempt {
                return if current == attempt { Ok(()) } else { Err(format!("{what}: activity is at attempt {current}")) };
            }
            let failure = last_failure.ok_or(format!("{what}: attempt {attempt} without a last failure"))?;
            let start = self.now_ms.max(scheduled_at);
            self.start_attempt(scheduled, current, identity, start, what)?;
            let label = format!("{what} (attempt {current} fails)");
            match timeout_of(failure) {
                Some(kind) => {
                    let (id, due, t) = self
                        .find_timer(kind, |t| t.event_id == scheduled && t.attempt == current)
                        .ok_or(format!("{label}: no {kind:?} timer"))?;
                    self.fire(id, &t, due.max(self.now_ms), &label)?;
                }
                None => {
                    let f = Failed { failure: Some(failure.clone()), identity: identity.to_string(), ..Default::default() };
                    self.activity_outcome(scheduled, current, start, &label, |txn| outcome::fail(txn, scheduled, f))?;
                }
            }
            if let Some((id, due, t)) = self.find_timer(TimerKind::ActivityRetry, |t| t.event_id == scheduled && t.attempt == current + 1) {
                self.fire(id, &t, due.max(self.now_ms), &format!("{what} (retry backoff of attempt {} over)", current + 1))?;
            }
        }
    }

    /// A worker's report on the running attempt (`engine::activity::outcome::update`).
    pub(super) fn activity_outcome(
        &mut self,
        scheduled: i64,
        attempt: i32,
        now: i64,
        what: &str,
        change: impl FnOnce(&mut RunTxn) -> Result<(), crate::core::error::ActivityError>,
    ) -> Result<(), String> {
        let state = self.state()?;
        if !state.is_open() {
            return Err(format!("{what}: the run is closed"));
        }
        locate(state, &ActivitySelector::Attempt { scheduled_event_id: scheduled, attempt }, true).map_err(|e| format!("{what}: {e}"))?;
        let mut txn = self.txn(now)?;
        change(&mut txn).map_err(|e| format!("{what}: {e}"))?;
        cleanup::drop_obsolete_timers(&mut txn, None);
        self.commit(txn, what)
    }

    /// The activity timer behind an ActivityTaskTimedOut: the one of its timeout type;
    /// for "not enough time to retry", whichever of the attempt's timeouts is due
    /// first (ties as Go orders them: start-to-close, schedule-to-close, heartbeat).
    pub(super) fn activity_timer(&self, scheduled: i64, timeout_type: TimeoutType, gave_up: bool) -> Option<(u64, i64, TimerPayload)> {
        let attempt = self.state().ok()?.activity(scheduled)?.attempt;
        let kinds: &[TimerKind] = if gave_up {
            &[TimerKind::ActivityStartToClose, TimerKind::ActivityScheduleToClose, TimerKind::ActivityHeartbeat]
        } else {
            match timeout_type {
                TimeoutType::StartToClose => &[TimerKind::ActivityStartToClose],
                TimeoutType::ScheduleToStart => &[TimerKind::ActivityScheduleToStart],
                TimeoutType::ScheduleToClose => &[TimerKind::ActivityScheduleToClose],
                TimeoutType::Heartbeat => &[TimerKind::ActivityHeartbeat],
                TimeoutType::Unspecified => &[],
            }
        };
        let per_attempt = |k: TimerKind| k != TimerKind::ActivityScheduleToClose;
        kinds
            .iter()
            .enumerate()
            .filter_map(|(rank, k)| {
                self.find_timer(*k, |t| t.event_id == scheduled && (!per_attempt(*k) || t.attempt == attempt)).map(|found| (rank, found))
            })
            .min_by_key(|(rank, (_, due, _))| (*due, *rank))
            .map(|(_, found)| found)
    }
}

/// The timer behind a server timeout failure (`source: "Server"`), if it is one.
fn timeout_of(failure: &Failure) -> Option<TimerKind> {
    let Some(FailureInfo::TimeoutFailureInfo(t)) = failure.failure_info.as_ref() else { return None };
    if failure.source != "Server" {
        return None;
    }
    match TimeoutType::try_from(t.timeout_type).ok()? {
        TimeoutType::StartToClose => Some(TimerKind::ActivityStartToClose),
        TimeoutType::Heartbeat => Some(TimerKind::ActivityHeartbeat),
        _ => None,
    }
}
