//! The in-memory registry of a shard owner's workflow updates.
//!
//! An admitted update is not durable (as in Temporal): it lives here until the
//! workflow accepts or rejects it. Once accepted it is in the run's state and
//! history, and an entry here only carries the news of its completion to those
//! waiting. Phases: `Admitted` → `Sent` (on a started workflow task; sent again on
//! every later task until answered) → `Accepted` → gone (completed, rejected or
//! aborted). Every waiter holds an [`UpdateWatch`] on the entry's progress.
//!
//! When the owner stops, every entry is aborted with [`Progress::Aborted`]
//! ([`Abort::OwnerStopped`]): the caller admits the update again on the next owner
//! (an accepted update is found there in the run's state).

use std::collections::HashMap;

use hourglass_storage::state::RunKey;
use parking_lot::Mutex;
use temporalio_protos::protos::temporal::api::failure::v1::Failure;
use temporalio_protos::protos::temporal::api::protocol::v1::Message;
use temporalio_protos::protos::temporal::api::update::v1::{outcome, Outcome, Request};
use tokio::sync::watch;

use crate::core::updates::{request_message, PendingUpdate, UpdateBook, UpdateEffect, UPDATES_IN_FLIGHT_MAX};

/// How far an update got, as its waiters see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Admitted,
    Accepted,
    /// Boxed: an outcome carries payloads.
    Completed(Box<Outcome>),
    Aborted(Abort),
}

/// Why an update ended without an outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Abort {
    /// The run closed before accepting it.
    RunClosed,
    /// The run continued as new (`run_id`) before accepting it: admit it there.
    ContinuedAs(String),
    /// The owner holding it stopped: admit it again on the next owner.
    OwnerStopped,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Admitted,
    /// Sent on the workflow task scheduled at this event id.
    Sent(i64),
    /// Durably admitted (a reset reapplied it): the run's state and history hold it,
    /// the worker reads it from history; here only its waiters are.
    Durable,
    Accepted,
}

impl Phase {
    /// Admitted in memory, to be sent (again) on workflow tasks until answered.
    fn in_memory(self) -> bool {
        matches!(self, Phase::Admitted | Phase::Sent(_))
    }
}

struct Entry {
    update_id: String,
    request: Request,
    phase: Phase,
    progress: watch::Sender<Progress>,
}

/// A waiter's view of one update's progress.
pub struct UpdateWatch {
    progress: watch::Receiver<Progress>,
}

impl UpdateWatch {
    /// A watch on an update that is already complete.
    pub fn done(progress: Progress) -> Self {
        let (_, rx) = watch::channel(progress);
        Self { progress: rx }
    }

    pub fn now(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// Waits until `reached` holds of the progress (or it can no longer change).
    pub async fn until(&mut self, reached: impl Fn(&Progress) -> bool) -> Progress {
        let ended = |p: &Progress| reached(p) || matches!(p, Progress::Completed(_) | Progress::Aborted(_));
        match self.progress.wait_for(ended).await {
            Ok(p) => p.clone(),
            // The entry is gone without a last word: only when the registry dropped.
            Err(_) => Progress::Aborted(Abort::OwnerStopped),
        }
    }
}

/// Why an update cannot be admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmitError {
    TooManyInFlight,
}

#[derive(Default)]
pub struct UpdateRegistry {
    runs: Mutex<HashMap<RunKey, Vec<Entry>>>,
}

impl UpdateRegistry {
    /// The watch of `update_id` on `run`, if the registry holds it.
    pub fn watch(&self, run: &RunKey, update_id: &str) -> Option<UpdateWatch> {
        let runs = self.runs.lock();
        let entry = runs.get(run)?.iter().find(|e| e.update_id == update_id)?;
        Some(UpdateWatch { progress: entry.progress.subscribe() })
    }

    /// Admits a new update (the caller checked it is not known).
    /// `accepted_in_flight`: the run's accepted updates not completed (its state's).
    pub fn admit(&self, run: &RunKey, update_id: &str, request: Request, accepted_in_flight: usize) -> Result<UpdateWatch, AdmitError> {
        let mut runs = self.runs.lock();
        let entries = runs.entry(run.clone()).or_default();
        let admitted = entries.iter().filter(|e| e.phase.in_memory()).count();
        if admitted + accepted_in_flight >= UPDATES_IN_FLIGHT_MAX {
            if entries.is_empty() {
                runs.remove(run);
            }
            return Err(AdmitError::TooManyInFlight);
        }
        Ok(Self::insert(entries, update_id, request, Phase::Admitted, Progress::Admitted))
    }

    /// Watches an update the run's state says is accepted and not completed (after a
    /// restart or a new owner, the registry learns it from the state).
    pub fn watch_accepted(&self, run: &RunKey, update_id: &str) -> UpdateWatch {
        self.watch_from_state(run, update_id, Phase::Accepted, Progress::Accepted)
    }

    /// Watches an update the run's state says is durably admitted and not accepted.
    pub fn watch_durable(&self, run: &RunKey, update_id: &str) -> UpdateWatch {
        self.watch_from_state(run, update_id, Phase::Durable, Progress::Admitted)
    }

    /// The entry of an update the run's state holds, made in `phase` if new.
    fn watch_from_state(&self, run: &RunKey, update_id: &str, phase: Phase, progress: Progress) -> UpdateWatch {
        let mut runs = self.runs.lock();
        let entries = runs.entry(run.clone()).or_default();
        if let Some(entry) = entries.iter().find(|e| e.update_id == update_id) {
            return UpdateWatch { progress: entry.progress.subscribe() };
        }
        Self::insert(entries, update_id, Request::default(), phase, progress)
    }

    fn insert(entries: &mut Vec<Entry>, update_id: &str, request: Request, phase: Phase, progress: Progress) -> UpdateWatch {
        let (tx, rx) = watch::channel(progress);
        entries.push(Entry { update_id: update_id.to_string(), request, phase, progress: tx });
        UpdateWatch { progress: rx }
    }

    /// Forgets an admitted update whose admission did not commit.
    pub fn withdraw(&self, run: &RunKey, update_id: &str) {
        self.finish(run, update_id, Progress::Aborted(Abort::OwnerStopped));
    }

    /// The request messages for the workflow task scheduled at `scheduled_event_id`
    /// that just started: every update not yet answered, in admission order.
    pub fn attach(&self, run: &RunKey, scheduled_event_id: i64) -> Vec<Message> {
        let mut runs = self.runs.lock();
        let Some(entries) = runs.get_mut(run) else { return Vec::new() };
        let mut messages = Vec::new();
        for entry in entries.iter_mut().filter(|e| e.phase.in_memory()) {
            entry.phase = Phase::Sent(scheduled_event_id);
            messages.push(request_message(&entry.update_id, &entry.request, scheduled_event_id));
        }
        messages
    }

    /// What the completion of the task scheduled at `scheduled_event_id` decides on.
    pub fn book(&self, run: &RunKey, scheduled_event_id: i64) -> UpdateBook {
        let runs = self.runs.lock();
        let pending = runs
            .get(run)
            .into_iter()
            .flatten()
            .filter(|e| e.phase.in_memory())
            .map(|e| {
                let pending = PendingUpdate { request: e.request.clone(), sent_on_this_task: e.phase == Phase::Sent(scheduled_event_id) };
                (e.update_id.clone(), pending)
            })
            .collect();
        UpdateBook { pending }
    }

    /// Whether updates wait for a workflow task to carry them.
    pub fn has_unsent(&self, run: &RunKey) -> bool {
        self.runs.lock().get(run).is_some_and(|entries| entries.iter().any(|e| e.phase == Phase::Admitted))
    }

    /// Carries out what a committed completion decided.
    pub fn apply(&self, run: &RunKey, effects: Vec<UpdateEffect>) {
        for effect in effects {
            match effect {
                UpdateEffect::Accepted { update_id, .. } => self.accepted(run, &update_id),
                UpdateEffect::Rejected { update_id, failure } => self.finish(run, &update_id, rejected(failure)),
                UpdateEffect::Completed { update_id, outcome } => self.finish(run, &update_id, Progress::Completed(Box::new(outcome))),
                UpdateEffect::Aborted { update_id, continued_as } => {
                    let abort = continued_as.map_or(Abort::RunClosed, Abort::ContinuedAs);
                    self.finish(run, &update_id, Progress::Aborted(abort))
                }
            }
        }
    }

    fn accepted(&self, run: &RunKey, update_id: &str) {
        let mut runs = self.runs.lock();
        if let Some(entry) = runs.get_mut(run).and_then(|entries| entries.iter_mut().find(|e| e.update_id == update_id)) {
            entry.phase = Phase::Accepted;
            entry.progress.send_replace(Progress::Accepted);
        }
    }

    /// Ends one update with `progress` and forgets it.
    pub fn finish(&self, run: &RunKey, update_id: &str, progress: Progress) {
        let mut runs = self.runs.lock();
        let Some(entries) = runs.get_mut(run) else { return };
        if let Some(i) = entries.iter().position(|e| e.update_id == update_id) {
            entries.remove(i).progress.send_replace(progress);
        }
        if entries.is_empty() {
            runs.remove(run);
        }
    }

    /// The run closed by another path than a workflow task (terminated, timed out,
    /// cancelled by the server): its updates not accepted end with `abort`.
    pub fn on_run_closed(&self, run: &RunKey, abort: Abort) {
        let mut runs = self.runs.lock();
        let Some(entries) = runs.get_mut(run) else { return };
        entries.retain(|e| {
            let accepted = e.phase == Phase::Accepted;
            if !accepted {
                e.progress.send_replace(Progress::Aborted(abort.clone()));
            }
            accepted
        });
        if entries.is_empty() {
            runs.remove(run);
        }
    }

    /// The owner stopped: every waiter learns it and admits again elsewhere.
    pub fn retire(&self) {
        for (_, entries) in self.runs.lock().drain() {
            for entry in entries {
                entry.progress.send_replace(Progress::Aborted(Abort::OwnerStopped));
            }
        }
    }
}

fn rejected(failure: Failure) -> Progress {
    Progress::Completed(Box::new(Outcome { value: Some(outcome::Value::Failure(failure)) }))
}

#[cfg(test)]
mod tests;
