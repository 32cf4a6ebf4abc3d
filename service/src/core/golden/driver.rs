//! The runtime around the pure core, in memory: one run, its stored timers, its
//! backlog tasks, a clock that is each reference event's time. Every decision is
//! one `RunTxn`, verified, then committed the way the shard state machine applies it
//! (fenced state write, dense event ids, timer and task ids assigned here).

use std::collections::BTreeMap;

use hourglass_storage::state::{Op, QueueKey, RunKey};
use prost::Message;
use temporalio_protos::protos::temporal::api::enums::v1::EventType;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;

use crate::core::activity::timeouts::{fire_activity_timer, fire_user_timer};
use crate::core::state::ExecutionState;
use crate::core::tasks::{TaskPayload, TimerKind, TimerPayload};
use crate::core::token::TaskToken;
use crate::core::txn::RunTxn;
use crate::core::{decode_timers, lifecycle, workflow_task, EngineConfig, RunView, SequentialIds};

/// How late (ms) a timer may still fire in the reference before an input after its
/// due time counts as "the timer should have fired first" (the server's timer queue
/// fires a little late).
const TIMER_SLACK_MS: i64 = 50;

pub struct Sim {
    pub config: EngineConfig,
    pub ids: SequentialIds,
    pub view: Option<RunView>,
    /// The run's history as committed.
    pub events: Vec<HistoryEvent>,
    /// Due time of each stored timer.
    due: BTreeMap<u64, i64>,
    next_timer_id: u64,
    /// The shard's backlog tasks of this run: (task id, queue, payload).
    pub backlog: Vec<(u64, QueueKey, TaskPayload)>,
    next_task_id: u64,
    /// Time of the last transition.
    pub now_ms: i64,
    /// The workflow task the worker holds.
    pub token: Option<TaskToken>,
    /// One line per committed transition (printed with a failure).
    pub log: Vec<String>,
    /// The shard owner's update registry for this run: admitted updates not yet
    /// accepted, with the scheduled event id of the task that carried each (0: none).
    pub updates: BTreeMap<String, (temporalio_protos::protos::temporal::api::update::v1::Request, i64)>,
}

impl Sim {
    pub fn new() -> Self {
        Self {
            config: EngineConfig::default(),
            ids: SequentialIds::new("golden"),
            view: None,
            events: Vec::new(),
            due: BTreeMap::new(),
            next_timer_id: 1,
            backlog: Vec::new(),
            next_task_id: 1,
            now_ms: 0,
            token: None,
            log: Vec::new(),
            updates: BTreeMap::new(),
        }
    }

    pub fn view(&self) -> Result<&RunView, String> {
        self.view.as_ref().ok_or_else(|| "no run yet".to_string())
    }

    pub fn state(&self) -> Result<&ExecutionState, String> {
        Ok(&self.view()?.state)
    }

    /// A transaction on the run as stored, at `now_ms`.
    pub fn txn(&self, now_ms: i64) -> Result<RunTxn, String> {
        Ok(RunTxn::from_view(self.view()?.clone(), now_ms))
    }

    /// Verifies `txn` and applies its transition as the shard state machine would.
    pub fn commit(&mut self, txn: RunTxn, what: &str) -> Result<(), String> {
        txn.verify().map_err(|v| format!("{what}: {v}"))?;
        let (transition, effects) = txn.into_transition();
        self.now_ms = transition.time_ms;
        let mut appended = 0;
        for op in transition.ops {
            match op {
                Op::CreateRun { run, state } => {
                    self.view =
                        Some(RunView { key: run, state: decode(&state)?, next_event_id: 1, state_version: 1, stored_timers: Vec::new() })
                }
                Op::SetState { run, expected_version, state } => {
                    let view = self.view.as_mut().ok_or("SetState before the run exists")?;
                    if run != view.key || expected_version != view.state_version {
                        return Err(format!(
                            "{what}: SetState fenced (built from version {expected_version}, run at {})",
                            view.state_version
                        ));
                    }
                    view.state = decode(&state)?;
                    view.state_version += 1;
                }
                Op::AppendEvents { first_event_id, events, .. } => {
                    let view = self.view.as_mut().ok_or("AppendEvents before the run exists")?;
                    if first_event_id as i64 != view.next_event_id {
                        return Err(format!("{what}: events appended at {first_event_id}, next event id is {}", view.next_event_id));
                    }
                    view.next_event_id += events.len() as i64;
                    appended += events.len();
                }
                Op::AddTimer { due_ms, payload, .. } => {
                    let id = self.next_timer_id;
                    self.next_timer_id += 1;
                    self.due.insert(id, due_ms);
                    self.view.as_mut().ok_or("AddTimer before the run exists")?.stored_timers.push((id, payload));
                }
                Op::RemoveTimer { timer_id } => self.remove_timer(timer_id).map_err(|e| format!("{what}: {e}"))?,
                Op::Enqueue { queue, task, .. } => {
                    let payload = TaskPayload::decode(task.as_ref()).map_err(|e| e.to_string())?;
                    self.backlog.push((self.next_task_id, queue, payload));
                    self.next_task_id += 1;
                }
                Op::Ack { task_id, .. } => {
                    let i = self
                        .backlog
                        .iter()
                        .position(|(id, _, _)| *id == task_id)
                        .ok_or(format!("{what}: ack of unknown task {task_id}"))?;
                    self.backlog.remove(i);
                }
                Op::CloseRun { .. } => {}
                Op::LegacySetState(_) => return Err(format!("{what}: a legacy SetState")),
                Op::DeleteRun { .. } => return Err(format!("{what}: a DeleteRun")),
            }
        }
        if appended != effects.events.len() {
            return Err(format!("{what}: {appended} events appended, {} in the effects", effects.events.len()));
        }
        let names: Vec<String> = effects.events.iter().map(|e| format!("{} {}", e.event_id, short(e.event_type))).collect();
        self.log.push(format!("t={} {what}: [{}]", self.now_ms, names.join(", ")));
        self.events.extend(effects.events);
        Ok(())
    }

    /// The timer service removing a timer its handler left (not a state write).
    pub fn remove_timer(&mut self, timer_id: u64) -> Result<(), String> {
        let view = self.view.as_mut().ok_or("no run")?;
        let before = view.stored_timers.len();
        view.stored_timers.retain(|(id, _)| *id != timer_id);
        if view.stored_timers.len() == before {
            return Err(format!("timer {timer_id} not found"));
        }
        self.due.remove(&timer_id);
        Ok(())
    }

    /// The stored timers, with their due times.
    pub fn timers(&self) -> Vec<(u64, i64, TimerPayload)> {
        let Some(view) = &self.view else { return Vec::new() };
        decode_timers(&view.stored_timers).map(|(id, t)| (id, self.due.get(&id).copied().unwrap_or(i64::MAX), t)).collect()
    }

    /// The stored timer of `kind` that `filter` picks and is due first.
    pub fn find_timer(&self, kind: TimerKind, filter: impl Fn(&TimerPayload) -> bool) -> Option<(u64, i64, TimerPayload)> {
        self.timers().into_iter().filter(|(_, _, t)| t.kind == kind as i32 && filter(t)).min_by_key(|(id, due, _)| (*due, *id))
    }

    /// Fires stored timer `id` the way the timer service does: the handler decides
    /// (and commits); a timer it left behind is removed afterwards. Fails if the
    /// timer is not due yet: Hourglass's deadline would be later than Temporal's.
    pub fn fire(&mut self, id: u64, t: &TimerPayload, now_ms: i64, what: &str) -> Result<(), String> {
        let due = self.due.get(&id).copied().unwrap_or(i64::MAX);
        if now_ms < due {
            return Err(format!(
                "{what}: timer {:?} (event {}) is not due until t={due}, the reference fires it at t={now_ms}",
                kind_of(t),
                t.event_id
            ));
        }
        let mut txn = self.txn(now_ms)?;
        if !self.view()?.state.is_open() || !apply_timer(&mut txn, id, t) {
            return Err(format!("{what}: timer {:?} (event {}, attempt {}) changed nothing", kind_of(t), t.event_id, t.attempt));
        }
        self.commit(txn, what)?;
        if self.view()?.has_timer(id) {
            self.remove_timer(id)?;
        }
        Ok(())
    }

    /// Fails if a stored timer was due (by more than the slack) before `now_ms` and
    /// would have changed the run: Hourglass would have written something the
    /// reference does not have at this point.
    pub fn check_overdue(&self, now_ms: i64, what: &str) -> Result<(), String> {
        let Some(view) = &self.view else { return Ok(()) };
        if !view.state.is_open() {
            return Ok(());
        }
        for (id, due, t) in self.timers() {
            let outbox = matches!(
                kind_of(&t),
                Some(TimerKind::StartChild | TimerKind::NotifyParent | TimerKind::SignalExternal | TimerKind::CancelExternal)
            );
            if outbox || due + TIMER_SLACK_MS >= now_ms {
                continue;
            }
            let mut txn = RunTxn::from_view(view.clone(), due);
            if apply_timer(&mut txn, id, &t) {
                let fired: Vec<String> = txn.events().iter().map(|e| short(e.event_type)).collect();
                return Err(format!(
                    "timer {:?} (event {}, attempt {}) due at t={due} would have fired before {what} at t={now_ms} (writing {fired:?})",
                    kind_of(&t),
                    t.event_id,
                    t.attempt
                ));
            }
        }
        Ok(())
    }
}

/// Runs the core's handler of timer `t` (stored as `id`) on `txn`.
fn apply_timer(txn: &mut RunTxn, id: u64, t: &TimerPayload) -> bool {
    match kind_of(t) {
        Some(TimerKind::UserTimer) => fire_user_timer(txn, id, t),
        Some(
            TimerKind::ActivityScheduleToStart
            | TimerKind::ActivityScheduleToClose
            | TimerKind::ActivityStartToClose
            | TimerKind::ActivityHeartbeat
            | TimerKind::ActivityRetry,
        ) => fire_activity_timer(txn, id, t),
        Some(TimerKind::WorkflowTaskStartToClose) => workflow_task::time_out(txn, t.event_id, t.attempt),
        Some(TimerKind::WorkflowTaskScheduleToStart) => crate::core::sticky::time_out_schedule_to_start(txn, t.event_id, t.attempt),
        Some(kind @ (TimerKind::WorkflowRunTimeout | TimerKind::WorkflowExecutionTimeout)) => {
            // The reference histories have no workflow retry policies or cron schedules:
            // a timeout never starts another run here.
            let config = crate::core::EngineConfig::default();
            let mut ids = crate::core::SequentialIds::new("golden-timeout");
            let mut ctx = crate::core::Ctx { now_ms: txn.now_ms, config: &config, ids: &mut ids };
            let execution = kind == TimerKind::WorkflowExecutionTimeout;
            matches!(lifecycle::on_timeout(txn, execution, None, &mut ctx), lifecycle::TimeoutOutcome::TimedOut { .. })
        }
        Some(TimerKind::WorkflowStartBackoff) => lifecycle::on_start_backoff(txn),
        // The outboxes act on other runs; the driver plays them as inputs.
        // Outboxes and schedules: their timers never reach the run's own rules here.
        Some(
            TimerKind::StartChild
            | TimerKind::NotifyParent
            | TimerKind::SignalExternal
            | TimerKind::CancelExternal
            | TimerKind::ScheduleWake
            | TimerKind::Unspecified,
        )
        | None => false,
    }
}

pub fn kind_of(t: &TimerPayload) -> Option<TimerKind> {
    TimerKind::try_from(t.kind).ok()
}

fn decode(state: &[u8]) -> Result<ExecutionState, String> {
    ExecutionState::decode(state).map_err(|e| format!("state does not decode: {e}"))
}

/// `EVENT_TYPE_TIMER_FIRED` → `TIMER_FIRED`.
pub fn short(event_type: i32) -> String {
    EventType::try_from(event_type)
        .map(|t| t.as_str_name().trim_start_matches("EVENT_TYPE_").to_string())
        .unwrap_or_else(|_| event_type.to_string())
}

/// The run key of a new run.
pub fn run_key(workflow_id: &str, run_id: String) -> RunKey {
    RunKey { namespace: "default".into(), workflow_id: workflow_id.to_string(), run_id }
}
