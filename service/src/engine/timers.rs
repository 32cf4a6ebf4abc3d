//! The timer service: one task per shard owner fires the shard's durable timers when
//! they come due, for as long as the owner's term lasts — user timers, activity timeouts and retry backoffs, workflow task
//! timeouts and run-level timers — by handing each to the engine area that owns its
//! kind ([`TimerKind`]).
//!
//! **Durability.** Timers live in the shard state machine, so they survive restarts;
//! the service only keeps in memory which ones are backing off after an error.
//!
//! **Exactly one effect.** Handlers validate a timer against the run's state (timers
//! are hints), so a timer whose work is done is a no-op. A handler that acts removes
//! the timer in the same transition as its effect: the activity and user-timer
//! handlers are given its storage id; other areas' handlers can read it with
//! [`firing_timer_id`]. A timer still present after its handler succeeded (stale, or
//! the handler did not remove it) is removed afterwards; a crash in between only
//! makes the handler see it again and find it stale.
//!
//! **Errors.** A handler error is logged and the timer retried later with exponential
//! backoff (longer for `Unimplemented`), so a failing handler never spins the CPU and
//! never loses the timer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hourglass_storage::state::{Op, RunKey, Transition};
use prost::Message;
use tokio::task::JoinHandle;

use crate::core::tasks::{TimerKind, TimerPayload};
use crate::engine::{activity, external_steps, lifecycle, schedules, workflow_task, Engine};
use crate::error::{Result, ServiceError};
use crate::shard::ShardOwner;

tokio::task_local! {
    static FIRING: u64;
}

/// Most timers fired per round before the service re-reads the shard.
const ROUND_MAX: usize = 256;
/// Longest sleep: the service re-checks its shard at least this often (a leader
/// change or a missed wakeup costs at most this much delay).
const IDLE_WAKE_MS: i64 = 1_000;
/// Retry delays after a handler error.
const BACKOFF_FIRST_MS: i64 = 200;
const BACKOFF_MAX_MS: i64 = 30_000;
/// Retry delays after a handler that is not built yet (`Unimplemented`).
const UNIMPLEMENTED_FIRST_MS: i64 = 5_000;
const UNIMPLEMENTED_MAX_MS: i64 = 60_000;

/// The storage id of the durable timer whose handler is running, for handlers that
/// remove it in their own transition (`txn.remove_timer(id)`). `None` outside the
/// timer service.
pub fn firing_timer_id() -> Option<u64> {
    FIRING.try_with(|id| *id).ok()
}

/// Starts the timer service of `owner`'s shard; it ends when the owner stops.
pub fn spawn_timer_service(engine: &Engine, owner: Arc<ShardOwner>) -> JoinHandle<()> {
    let shard = owner.shard();
    let timers = ShardTimers { engine: engine.clone(), owner: owner.clone(), backoff: HashMap::new() };
    tokio::spawn(async move {
        tokio::select! {
            () = timers.run() => {}
            () = owner.stopped() => tracing::debug!(shard, term = owner.term(), "timer service stopped with its owner"),
        }
    })
}

/// A timer waiting to be retried after its handler failed.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    retry_at_ms: i64,
    delay_ms: i64,
}

struct ShardTimers {
    engine: Engine,
    owner: Arc<ShardOwner>,
    backoff: HashMap<u64, Backoff>,
}

impl ShardTimers {
    async fn run(mut self) {
        loop {
            let fired = match self.round().await {
                Ok(n) => n,
                // The owner stopped: its service ends (quietly; the select in
                // `spawn_timer_service` would end it at its next await anyway).
                Err(_) if self.owner.is_stopped() => return,
                Err(e) => {
                    tracing::warn!(shard = self.owner.shard(), error = %e, "timer service round failed");
                    0
                }
            };
            if fired >= ROUND_MAX {
                tokio::task::yield_now().await;
                continue;
            }
            let now = self.engine.now_ms();
            let wake = match self.next_wake() {
                Ok(Some(at)) => at.min(now + IDLE_WAKE_MS),
                Ok(None) => now + IDLE_WAKE_MS,
                Err(_) if self.owner.is_stopped() => return,
                Err(e) => {
                    tracing::warn!(shard = self.owner.shard(), error = %e, "timer service cannot read its shard");
                    now + IDLE_WAKE_MS
                }
            };
            let sleep = Duration::from_millis(u64::try_from(wake - now).unwrap_or(0));
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = self.owner.timer_wakeup().notified() => {}
            }
        }
    }

    /// Fires the timers due now (up to [`ROUND_MAX`]); returns how many it tried.
    async fn round(&mut self) -> Result<usize> {
        let now = self.engine.now_ms();
        let owner = self.owner.clone();
        let backoff = &mut self.backoff;
        let due: Vec<(u64, RunKey, Bytes)> = owner.read(|s| {
            backoff.retain(|id, _| s.timer(*id).is_some());
            s.due_timers(now)
                .filter(|(id, _)| backoff.get(id).is_none_or(|b| b.retry_at_ms <= now))
                .take(ROUND_MAX)
                .map(|(id, t)| (id, t.run().clone(), t.payload().clone()))
                .collect()
        })?;
        let mut leftover = Vec::new();
        for (id, run, payload) in &due {
            match self.fire(*id, run, payload).await {
                Ok(()) => {
                    self.backoff.remove(id);
                    if owner.read(|s| s.timer(*id).is_some())? {
                        leftover.push((*id, run));
                    }
                }
                Err(e) => self.back_off(*id, run, &e),
            }
        }
        self.remove(&leftover).await;
        Ok(due.len())
    }

    /// Runs the handler of timer `id` (with [`firing_timer_id`] set).
    async fn fire(&self, id: u64, run: &RunKey, raw: &Bytes) -> Result<()> {
        let Ok(timer) = TimerPayload::decode(raw.as_ref()) else {
            tracing::error!(shard = self.owner.shard(), timer = id, ?run, "timer payload does not decode; dropping it");
            return Ok(());
        };
        FIRING.scope(id, dispatch(&self.engine, run, id, &timer)).await
    }

    fn back_off(&mut self, id: u64, run: &RunKey, error: &ServiceError) {
        let (first, max) = match error {
            ServiceError::Unimplemented(_) => (UNIMPLEMENTED_FIRST_MS, UNIMPLEMENTED_MAX_MS),
            _ => (BACKOFF_FIRST_MS, BACKOFF_MAX_MS),
        };
        let delay_ms = self.backoff.get(&id).map_or(first, |b| b.delay_ms.saturating_mul(2).clamp(first, max));
        let retry_at_ms = self.engine.now_ms().saturating_add(delay_ms);
        self.backoff.insert(id, Backoff { retry_at_ms, delay_ms });
        tracing::warn!(shard = self.owner.shard(), timer = id, ?run, error = %error, retry_in_ms = delay_ms, "timer handler failed; will retry");
    }

    /// Removes timers whose handlers are done with them, one transition per run. A
    /// run's timers change only under its workflow lock (handlers drop obsolete timers
    /// in their own transitions), so the lock is taken and the ids re-checked.
    async fn remove(&self, timers: &[(u64, &RunKey)]) {
        let mut by_run: Vec<(&RunKey, Vec<u64>)> = Vec::new();
        for (id, run) in timers {
            match by_run.iter_mut().find(|(r, _)| r == run) {
                Some((_, ids)) => ids.push(*id),
                None => by_run.push((run, vec![*id])),
            }
        }
        for (run, ids) in by_run {
            let lock = match self.owner.lock(&run.namespace, &run.workflow_id).await {
                Ok(lock) => lock,
                Err(e) => {
                    tracing::debug!(shard = self.owner.shard(), ?run, error = %e, "fired timers not removed; the next owner sees them");
                    return;
                }
            };
            let present: Vec<u64> = match lock.owner().read(|s| ids.iter().copied().filter(|id| s.timer(*id).is_some()).collect()) {
                Ok(present) => present,
                Err(e) => {
                    tracing::warn!(shard = self.owner.shard(), ?run, error = %e, "cannot read fired timers; they will be seen again");
                    continue;
                }
            };
            if present.is_empty() {
                continue;
            }
            let transition = Transition {
                time_ms: self.engine.now_ms(),
                dedupe: None,
                ops: present.iter().map(|&timer_id| Op::RemoveTimer { timer_id }).collect(),
            };
            if let Err(e) = lock.owner().propose(&transition).await {
                tracing::warn!(shard = self.owner.shard(), ?run, error = %e, "cannot remove fired timers; they will be seen again");
            }
        }
    }

    /// When the next timer that is not backing off is due, or the earliest backoff ends.
    fn next_wake(&self) -> Result<Option<i64>> {
        let next_due =
            self.owner.read(|s| s.due_timers(i64::MAX).find(|(id, _)| !self.backoff.contains_key(id)).map(|(_, t)| t.due_ms()))?;
        let next_retry = self.backoff.values().map(|b| b.retry_at_ms).min();
        Ok(match (next_due, next_retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }
}

/// Hands a timer to the area that owns its kind.
async fn dispatch(engine: &Engine, run: &RunKey, id: u64, timer: &TimerPayload) -> Result<()> {
    match TimerKind::try_from(timer.kind) {
        Ok(TimerKind::UserTimer) => activity::on_user_timer(engine, run, id, timer).await,
        Ok(
            TimerKind::ActivityScheduleToStart
            | TimerKind::ActivityScheduleToClose
            | TimerKind::ActivityStartToClose
            | TimerKind::ActivityHeartbeat
            | TimerKind::ActivityRetry,
        ) => activity::on_activity_timer(engine, run, id, timer).await,
        Ok(TimerKind::WorkflowTaskStartToClose) => {
            workflow_task::on_workflow_task_timeout(engine, run, timer.event_id, timer.attempt).await
        }
        Ok(TimerKind::WorkflowTaskScheduleToStart) => {
            workflow_task::on_schedule_to_start_timeout(engine, run, timer.event_id, timer.attempt).await
        }
        Ok(
            TimerKind::WorkflowRunTimeout
            | TimerKind::WorkflowExecutionTimeout
            | TimerKind::WorkflowStartBackoff
            | TimerKind::StartChild
            | TimerKind::NotifyParent,
        ) => lifecycle::on_run_timer(engine, run, timer).await,
        Ok(TimerKind::SignalExternal | TimerKind::CancelExternal) => external_steps::on_external_timer(engine, run, timer.event_id).await,
        Ok(TimerKind::ScheduleWake) => schedules::fire::on_wake(engine, run, timer).await,
        Ok(TimerKind::Unspecified) | Err(_) => {
            tracing::error!(timer = id, ?run, kind = timer.kind, "timer of unknown kind; dropping it");
            Ok(())
        }
    }
}
