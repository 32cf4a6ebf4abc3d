//! Each input applied to the in-memory run the way the engine's handler applies it
//! (`engine::{start, external, workflow_task, commands, activity, children, timers}`):
//! load the view → the core's rule → commit.

use temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::WorkflowExecutionCancelRequestedEventAttributes;

use super::driver::{run_key, Sim};
use super::inputs::{Input, Step};
use crate::core::activity::outcome;
use crate::core::children::{child_closed, child_started};
use crate::core::commands::{self, command_sequence, Completed};
use crate::core::external::{self, Delivery, ExternalRequest};
use crate::core::tasks::{TaskKind, TimerKind};
use crate::core::token::TaskToken;
use crate::core::updates::{PendingUpdate, UpdateBook, UpdateEffect};
use crate::core::{lifecycle, run, signals, wft, workflow_task, Ctx, IdSource};

impl Sim {
    /// Applies one input at its reference time.
    pub fn apply(&mut self, step: Step) -> Result<(), String> {
        let what = format!("event {} {}", step.event_id, step.kind.trim_start_matches("EVENT_TYPE_"));
        let now = step.ms.max(self.now_ms);
        self.check_overdue(now, &what)?;
        let what = what.as_str();
        match step.input {
            Input::Start { workflow_id, spec, signal } => {
                let mut txn = run::new_run(run_key(&workflow_id, self.ids.new_id()), now, &spec);
                if let Some(signal) = signal {
                    txn.add_event(signal.event());
                }
                run::begin_run(&mut txn);
                self.commit(txn, what)
            }
            Input::StartBackoff => {
                let (id, _, t) = self.find_timer(TimerKind::WorkflowStartBackoff, |_| true).ok_or("no start backoff timer")?;
                self.fire(id, &t, now, what)
            }
            Input::PollWorkflowTask(poller) => {
                let state = self.state()?;
                let (task_id, queue, wt) = self
                    .backlog
                    .iter()
                    .find_map(|(id, q, p)| workflow_task::pending_task(state, p).map(|wt| (*id, q.clone(), wt)))
                    .ok_or("no workflow task to poll")?;
                let mut txn = self.txn(now)?;
                let request_id = self.ids.new_id();
                let started = workflow_task::start(&mut txn, &wt, (&queue, task_id), &queue.name, &poller, request_id, &self.config);
                // engine: the registry's updates go out on the task that started.
                for (_, sent) in self.updates.values_mut() {
                    *sent = wt.scheduled_event_id;
                }
                let key = &txn.key;
                self.token = Some(TaskToken {
                    kind: TaskKind::WorkflowTask as i32,
                    namespace: key.namespace.clone(),
                    workflow_id: key.workflow_id.clone(),
                    run_id: key.run_id.clone(),
                    scheduled_event_id: wt.scheduled_event_id,
                    attempt: wt.attempt,
                    started_event_id: started,
                    started_time_ms: txn.now_ms,
                    ..Default::default()
                });
                self.commit(txn, what)
            }
            Input::CompleteWorkflowTask(req) => {
                let token = self.token.take().ok_or("no workflow task held")?;
                let wt = workflow_task::current_task(self.state()?, &token).map_err(|e| e.to_string())?;
                command_sequence(&req.commands).map_err(|e| e.to_string())?;
                let started = if commands::needs_started(&req, self.state()?) { self.started() } else { None };
                #[allow(deprecated)] // `binary_checksum`: deprecated, still echoed
                let (identity, checksum) = (req.identity.clone(), req.binary_checksum.clone());
                let txn = self.txn(now)?;
                let book = self.update_book(wt.scheduled_event_id);
                let config = self.config.clone();
                let mut ctx = Ctx { now_ms: now, config: &config, ids: &mut self.ids };
                match commands::complete(txn, &wt, *req, started.as_ref(), book, &mut ctx) {
                    Ok(Completed { txn, new_run, update_effects, .. }) => {
                        if let Some(new_run) = new_run {
                            new_run.verify().map_err(|v| format!("{what}: the new run: {v}"))?;
                        }
                        self.commit(txn, what)?;
                        self.apply_update_effects(&update_effects);
                        Ok(())
                    }
                    Err(refusal) => {
                        let refused = commands::refuse(self.txn(now)?, &wt, refusal.clone(), &identity, &checksum);
                        if let Some(txn) = refused.txn {
                            self.commit(txn, what)?;
                        }
                        Err(format!("{what}: the completion was refused: {refusal:?}"))
                    }
                }
            }
            Input::FailWorkflowTask(req) => {
                let token = self.token.take().ok_or("no workflow task held")?;
                let wt = workflow_task::current_task(self.state()?, &token).map_err(|e| e.to_string())?;
                let mut txn = self.txn(now)?;
                workflow_task::fail(&mut txn, &wt, *req);
                self.commit(txn, what)
            }
            Input::WorkflowTaskTimeout => {
                let wt = self.state()?.workflow_task.clone().ok_or("no workflow task")?;
                let (id, _, t) = self
                    .find_timer(TimerKind::WorkflowTaskStartToClose, |t| t.event_id == wt.scheduled_event_id && t.attempt == wt.attempt)
                    .ok_or("no start-to-close timer for the workflow task")?;
                self.token = None;
                self.fire(id, &t, now, what)
            }
            Input::StartActivity { scheduled, attempt, identity, last_failure } => {
                self.fail_earlier_attempts(scheduled, attempt, &identity, last_failure.as_ref(), what)?;
                if self.now_ms > now {
                    return Err(format!("{what}: attempt {attempt} is only enqueued at t={}, Temporal started it at t={now}", self.now_ms));
                }
                self.start_attempt(scheduled, attempt, &identity, now, what)
            }
            Input::ActivityCompleted { scheduled, attempt, outcome: c } => {
                self.activity_outcome(scheduled, attempt, now, what, |txn| outcome::complete(txn, scheduled, c))
            }
            Input::ActivityFailed { scheduled, attempt, outcome: f } => {
                self.activity_outcome(scheduled, attempt, now, what, |txn| outcome::fail(txn, scheduled, f))
            }
            Input::ActivityCanceled { scheduled, attempt, outcome: c } => {
                self.activity_outcome(scheduled, attempt, now, what, |txn| outcome::cancel(txn, scheduled, c))
            }
            Input::ActivityTimedOut { scheduled, timeout_type, gave_up } => {
                let (id, _, t) = self.activity_timer(scheduled, timeout_type, gave_up).ok_or("no such activity timer stored")?;
                self.fire(id, &t, now, what)
            }
            Input::TimerFired { timer_id, started_event_id } => {
                let (id, _, t) = self
                    .find_timer(TimerKind::UserTimer, |t| t.timer_id == timer_id && t.event_id == started_event_id)
                    .ok_or(format!("no stored user timer {timer_id}"))?;
                self.fire(id, &t, now, what)
            }
            Input::Signal(signal) => {
                let mut txn = self.txn(now)?;
                signals::add_signal(&mut txn, &signal);
                self.commit(txn, what)
            }
            Input::CancelRequest { cause, identity, external_initiated, external } => {
                let mut txn = self.txn(now)?;
                let event = WorkflowExecutionCancelRequestedEventAttributes {
                    cause,
                    identity,
                    external_initiated_event_id: external_initiated,
                    external_workflow_execution: external,
                };
                if !signals::add_cancel_request_event(&mut txn, event) {
                    return Err(format!("{what}: the cancel request wrote nothing"));
                }
                self.commit(txn, what)
            }
            Input::Terminate { reason, details, identity } => {
                let mut txn = self.txn(now)?;
                lifecycle::terminate(&mut txn, reason, details, identity);
                self.token = None;
                self.commit(txn, what)
            }
            Input::RunTimedOut => {
                let run = self.find_timer(TimerKind::WorkflowRunTimeout, |_| true);
                let execution = self.find_timer(TimerKind::WorkflowExecutionTimeout, |_| true);
                let (id, _, t) = [run, execution].into_iter().flatten().min_by_key(|(_, due, _)| *due).ok_or("no run timeout timer")?;
                self.token = None;
                self.fire(id, &t, now, what)
            }
            Input::ExternalOutcome { initiated, delivered } => self.external_outcome(initiated, delivered, now, what),
            Input::ChildStarted { initiated, run_id } => self.child_started(initiated, &run_id, now, what),
            Input::ChildClosed { initiated, close, execution } => {
                // engine::children::record_child_closed, on the parent.
                let info = self.state()?.child(initiated).cloned().ok_or(format!("no pending child initiated at {initiated}"))?;
                let mut txn = self.txn(now)?;
                let started_event_id = if info.started_event_id > 0 {
                    info.started_event_id
                } else if txn.state.workflow_task_started() {
                    return Err(format!("{what}: the child's Started event is still buffered (the engine retries later)"));
                } else {
                    self.child_started_event(initiated).ok_or("no ChildWorkflowExecutionStarted in history")?
                };
                let attrs = child_closed(&close, &info, execution, initiated, started_event_id).ok_or("not a close event")?;
                wft::add_external_event(&mut txn, attrs);
                txn.state.remove_child(initiated);
                self.commit(txn, what)
            }
            Input::AdmitUpdate(request) => {
                // engine::update::admit: the registry takes it; a run with no workflow
                // task gets a speculative one to carry it.
                let update_id = request.meta.as_ref().map(|m| m.update_id.clone()).unwrap_or_default();
                self.updates.insert(update_id, (*request, 0));
                let mut txn = self.txn(now)?;
                if wft::schedule_speculative_workflow_task(&mut txn).is_none() {
                    return Err(format!("{what}: no speculative workflow task to carry the update (one is outstanding)"));
                }
                self.commit(txn, what)
            }
        }
    }

    /// The registry's book for the completion of the task scheduled at `scheduled`.
    fn update_book(&self, scheduled: i64) -> UpdateBook {
        let pending = self
            .updates
            .iter()
            .map(|(id, (request, sent))| (id.clone(), PendingUpdate { request: request.clone(), sent_on_this_task: *sent == scheduled }))
            .collect();
        UpdateBook { pending }
    }

    /// The registry after a committed completion: accepted, rejected, completed or
    /// aborted updates leave it (an accepted one is in the run's state).
    fn apply_update_effects(&mut self, effects: &[UpdateEffect]) {
        for effect in effects {
            let (UpdateEffect::Accepted { update_id, .. }
            | UpdateEffect::Rejected { update_id, .. }
            | UpdateEffect::Completed { update_id, .. }
            | UpdateEffect::Aborted { update_id, .. }) = effect;
            self.updates.remove(update_id);
        }
    }

    /// The run's root execution, from its Started event.
    fn started(&self) -> Option<crate::core::chain::Started> {
        match self.events.first()?.attributes.as_ref()? {
            Attributes::WorkflowExecutionStartedEventAttributes(a) => Some(a.clone()),
            _ => None,
        }
    }

    /// The StartChild outbox fired and the child started
    /// (`engine::children::start_child`, the parent's side).
    fn child_started(&mut self, initiated: i64, run_id: &str, now: i64, what: &str) -> Result<(), String> {
        let (timer_id, _, _) = self.find_timer(TimerKind::StartChild, |t| t.event_id == initiated).ok_or("no StartChild timer")?;
        let child = self.state()?.child(initiated).cloned().ok_or(format!("no child initiated at {initiated}"))?;
        if !child.run_id.is_empty() {
            return Err(format!("{what}: child {initiated} already started"));
        }
        let header = self.events.iter().find(|e| e.event_id == initiated).and_then(|e| match &e.attributes {
            Some(Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(a)) => a.header.clone(),
            _ => None,
        });
        let mut txn = self.txn(now)?;
        let buffered = txn.state.workflow_task_started();
        let started_event_id = txn.next_event_id();
        wft::add_external_event(&mut txn, child_started(&child, run_id, header));
        if let Some(c) = txn.state.child_mut(initiated) {
            c.run_id = run_id.to_string();
            c.started_event_id = if buffered { 0 } else { started_event_id };
        }
        self.commit(txn, what)?;
        self.remove_timer(timer_id)
    }

    /// The SignalExternal / CancelExternal outbox fired and the target answered
    /// (`engine::external_steps::on_external_timer`, the sender's side).
    fn external_outcome(&mut self, initiated: i64, delivered: bool, now: i64, what: &str) -> Result<(), String> {
        let (timer_id, _, _) = self
            .find_timer(TimerKind::SignalExternal, |t| t.event_id == initiated)
            .or_else(|| self.find_timer(TimerKind::CancelExternal, |t| t.event_id == initiated))
            .ok_or(format!("no outbox timer for the request initiated at {initiated}"))?;
        let info = self.state()?.external_request(initiated).cloned().ok_or(format!("no pending request initiated at {initiated}"))?;
        let event = self.events.iter().find(|e| e.event_id == initiated).ok_or("no initiated event")?;
        let key = self.view()?.key.clone();
        let source = WorkflowExecution { workflow_id: key.workflow_id.clone(), run_id: key.run_id.clone() };
        let request = ExternalRequest::from_initiated(&key.namespace, source, &info, event).ok_or("not an initiated event")?;
        let delivery = if delivered { Delivery::Delivered } else { Delivery::NotFound };
        let mut txn = self.txn(now)?;
        if !external::record_outcome(&mut txn, &request, delivery) {
            return Err(format!("{what}: the outcome changed nothing"));
        }
        txn.remove_timer(timer_id);
        self.commit(txn, what)
    }

    /// The id of the ChildWorkflowExecutionStarted of `initiated` in the history.
    fn child_started_event(&self, initiated: i64) -> Option<i64> {
        self.events.iter().find_map(|e| match &e.attributes {
            Some(Attributes::ChildWorkflowExecutionStartedEventAttributes(a)) if a.initiated_event_id == initiated => Some(e.event_id),
            _ => None,
        })
    }
}
