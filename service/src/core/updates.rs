//! Workflow updates on the run's side: the protocol messages of a completed
//! workflow task (Go's `service/history/workflow/update`).
//!
//! An update is *admitted* by `UpdateWorkflowExecution` into the shard owner's
//! registry (memory only, as in Temporal), *sent* to the worker as a `Request`
//! message on the next workflow task that starts, and answered in that task's
//! completion by an `Acceptance` (→ WorkflowExecutionUpdateAccepted, durable from
//! then on) or a `Rejection` (→ no event; the caller gets the failure), and later by
//! a `Response` (→ WorkflowExecutionUpdateCompleted with the outcome).
//!
//! The rules here take what the registry knows ([`UpdateBook`]) and the completion's
//! messages, add events and state to the run's transition, and return what became
//! of each update ([`UpdateEffect`]) for the registry to carry out once the
//! transition commits. Messages named by `ProtocolMessage` commands are applied at
//! the command's place; the rest after all commands (Go's order).

use std::collections::BTreeMap;

use prost::Name;
use prost_wkt_types::Any;
use temporalio_protos::protos::temporal::api::enums::v1::{UpdateAdmittedEventOrigin, WorkflowTaskFailedCause};
use temporalio_protos::protos::temporal::api::failure::v1::{failure::FailureInfo, ApplicationFailureInfo, Failure};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    WorkflowExecutionUpdateAcceptedEventAttributes, WorkflowExecutionUpdateAdmittedEventAttributes,
    WorkflowExecutionUpdateCompletedEventAttributes,
};
use temporalio_protos::protos::temporal::api::protocol::v1::{message::SequencingId, Message};
use temporalio_protos::protos::temporal::api::update::v1::{Acceptance, Outcome, Rejection, Request, Response};

use super::state::{ExecutionState, UpdateInfo};
use super::txn::RunTxn;
use super::CommandFailure;

/// Most updates of one run that may be admitted or accepted and not completed at
/// once (Go's `history.maxInFlightUpdates`).
pub const UPDATES_IN_FLIGHT_MAX: usize = 10;
/// Most updates one run may ever accept (Go's `history.maxTotalUpdates`).
pub const UPDATES_PER_RUN_MAX: usize = 2000;

/// An admitted update the worker has not accepted yet, as the registry knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingUpdate {
    pub request: Request,
    /// It went out on the workflow task being completed.
    pub sent_on_this_task: bool,
}

/// What the rules know of a run's updates when one of its workflow tasks completes:
/// the admitted updates not yet accepted (by update id). Accepted ones are in the
/// run's state ([`super::state::ExecutionState::updates`]).
#[derive(Debug, Clone, Default)]
pub struct UpdateBook {
    pub pending: BTreeMap<String, PendingUpdate>,
}

/// What a completed workflow task did to an update, for the registry.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateEffect {
    Accepted {
        update_id: String,
        accepted_event_id: i64,
    },
    /// Rejected by the workflow (its validator), or by the server because the worker
    /// left it unanswered: no event; the caller gets the failure.
    Rejected {
        update_id: String,
        failure: Failure,
    },
    Completed {
        update_id: String,
        outcome: Outcome,
    },
    /// The run closed with the update admitted and not accepted. `continued_as`: the
    /// run that continues it (continue-as-new), where the caller may admit it again.
    Aborted {
        update_id: String,
        continued_as: Option<String>,
    },
}

/// The message id of an update's request (`<update id>/request`, as Go names it).
pub fn request_message_id(update_id: &str) -> String {
    format!("{update_id}/request")
}

/// The `Request` message sent to the worker on the workflow task scheduled at
/// `sequencing_event_id`.
pub fn request_message(update_id: &str, request: &Request, sequencing_event_id: i64) -> Message {
    Message {
        id: request_message_id(update_id),
        protocol_instance_id: update_id.to_string(),
        body: Some(to_any(request)),
        sequencing_id: Some(SequencingId::EventId(sequencing_event_id)),
    }
}

/// The update messages of one completion, applied at most once each.
pub struct Messages {
    messages: Vec<(Message, bool)>,
}

impl Messages {
    pub fn new(messages: Vec<Message>) -> Self {
        Self { messages: messages.into_iter().map(|m| (m, false)).collect() }
    }

    /// Applies the message `message_id` (a `ProtocolMessage` command's).
    pub fn apply_named(
        &mut self,
        message_id: &str,
        txn: &mut RunTxn,
        book: &mut UpdateBook,
        effects: &mut Vec<UpdateEffect>,
    ) -> Result<(), CommandFailure> {
        let Some((message, done)) = self.messages.iter_mut().find(|(m, _)| m.id == message_id) else {
            return Err(bad_message(format!("ProtocolMessageCommand referenced absent message ID {message_id}.")));
        };
        if std::mem::replace(done, true) {
            return Ok(());
        }
        apply(message, txn, book, effects)
    }

    /// Applies the messages no command named, in their order.
    pub fn apply_rest(&mut self, txn: &mut RunTxn, book: &mut UpdateBook, effects: &mut Vec<UpdateEffect>) -> Result<(), CommandFailure> {
        for (message, done) in self.messages.iter_mut() {
            if !std::mem::replace(done, true) {
                apply(message, txn, book, effects)?;
            }
        }
        Ok(())
    }
}

fn bad_message(message: String) -> CommandFailure {
    CommandFailure { cause: WorkflowTaskFailedCause::BadUpdateWorkflowExecutionMessage as i32, message }
}

/// Go's wording for a message about an update the server does not hold.
fn not_found(update_id: &str) -> CommandFailure {
    bad_message(format!(
        "update {update_id} wasn't found on the server. This is most likely a transient error which will be resolved automatically by retries"
    ))
}

/// `message` packed in an `Any`, its type URL as Go writes it
/// (`type.googleapis.com/temporal.api.update.v1.Request`).
pub fn to_any<T: Name>(message: &T) -> Any {
    Any { type_url: format!("type.googleapis.com/{}", T::full_name()), value: message.encode_to_vec() }
}

/// Whether `body` holds a `T` (by the type name after the URL's last `/`).
fn holds<T: Name>(body: &Any) -> bool {
    body.type_url.rsplit('/').next() == Some(T::full_name().as_str())
}

fn decode<T: Name + Default>(body: &Any) -> Result<T, CommandFailure> {
    T::decode(body.value.as_slice()).map_err(|e| bad_message(format!("cannot decode {}: {e}", T::full_name())))
}

/// One message of a completion.
fn apply(message: &Message, txn: &mut RunTxn, book: &mut UpdateBook, effects: &mut Vec<UpdateEffect>) -> Result<(), CommandFailure> {
    let update_id = message.protocol_instance_id.as_str();
    let Some(body) = message.body.as_ref() else {
        return Err(bad_message(format!("message {} has no body", message.id)));
    };
    if holds::<Acceptance>(body) {
        accept(update_id, message, decode(body)?, txn, book, effects)
    } else if holds::<Rejection>(body) {
        let rejection: Rejection = decode(body)?;
        if book.pending.remove(update_id).is_none() && !forget_durable(txn, update_id) {
            return Err(not_found(update_id));
        }
        let failure = rejection.failure.unwrap_or_else(|| Failure { message: "update rejected".into(), ..Default::default() });
        effects.push(UpdateEffect::Rejected { update_id: update_id.to_string(), failure });
        Ok(())
    } else if holds::<Response>(body) {
        respond(update_id, decode(body)?, txn, effects)
    } else {
        Err(bad_message(format!("unsupported protocol message type {}", body.type_url)))
    }
}

fn accept(
    update_id: &str,
    message: &Message,
    acceptance: Acceptance,
    txn: &mut RunTxn,
    book: &mut UpdateBook,
    effects: &mut Vec<UpdateEffect>,
) -> Result<(), CommandFailure> {
    // An update admitted in memory carries its request into the Accepted event; one
    // durably admitted has it in its Admitted event already (Go writes none again).
    let accepted_request = match book.pending.remove(update_id) {
        Some(pending) => Some(acceptance.accepted_request.unwrap_or(pending.request)),
        None if txn.state.update(update_id).is_some_and(UpdateInfo::awaits_acceptance) => None,
        None => return Err(not_found(update_id)),
    };
    let durable = accepted_request.is_none();
    if !durable && txn.state.updates.len() >= UPDATES_PER_RUN_MAX {
        return Err(bad_message(format!("limit on number of total updates has been reached ({UPDATES_PER_RUN_MAX})")));
    }
    let accepted_event_id =
        txn.add_event(Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(WorkflowExecutionUpdateAcceptedEventAttributes {
            protocol_instance_id: message.protocol_instance_id.clone(),
            // Go names the request message it sent (or would have sent), whatever
            // the acceptance says.
            accepted_request_message_id: request_message_id(update_id),
            accepted_request_sequencing_event_id: acceptance.accepted_request_sequencing_event_id,
            accepted_request,
        }));
    match txn.state.updates.iter_mut().find(|u| u.update_id == update_id) {
        Some(info) => info.accepted_event_id = accepted_event_id,
        None => txn.state.updates.push(UpdateInfo { update_id: update_id.to_string(), accepted_event_id, ..Default::default() }),
    }
    effects.push(UpdateEffect::Accepted { update_id: update_id.to_string(), accepted_event_id });
    Ok(())
}

/// Writes `request` into history as durably admitted (a reset reapplying an update
/// of the base run, origin REAPPLY): the worker gets it from this event. An update
/// id the run already holds is not admitted twice. Returns whether it was written.
pub fn admit_durably(txn: &mut RunTxn, request: Request, origin: UpdateAdmittedEventOrigin) -> bool {
    let update_id = request.meta.as_ref().map(|m| m.update_id.clone()).unwrap_or_default();
    if txn.state.update(&update_id).is_some() {
        return false;
    }
    let admitted_event_id =
        txn.add_event(Attributes::WorkflowExecutionUpdateAdmittedEventAttributes(WorkflowExecutionUpdateAdmittedEventAttributes {
            request: Some(request),
            origin: origin as i32,
        }));
    txn.state.updates.push(UpdateInfo { update_id, admitted_event_id, ..Default::default() });
    true
}

/// A rejection of a durably admitted update: the run forgets it (its Admitted event
/// stays in history). False if the run holds no such update.
fn forget_durable(txn: &mut RunTxn, update_id: &str) -> bool {
    let Some(i) = txn.state.updates.iter().position(|u| u.update_id == update_id && u.awaits_acceptance()) else {
        return false;
    };
    txn.state.updates.remove(i);
    true
}

fn respond(update_id: &str, response: Response, txn: &mut RunTxn, effects: &mut Vec<UpdateEffect>) -> Result<(), CommandFailure> {
    let Some(info) = txn.state.updates.iter_mut().find(|u| u.update_id == update_id && !u.awaits_acceptance()) else {
        return Err(not_found(update_id));
    };
    if info.completed_event_id != 0 {
        return Err(bad_message(format!("update {update_id} is already completed")));
    }
    let accepted_event_id = info.accepted_event_id;
    let outcome = response.outcome.unwrap_or_default();
    let completed_event_id =
        txn.add_event(Attributes::WorkflowExecutionUpdateCompletedEventAttributes(WorkflowExecutionUpdateCompletedEventAttributes {
            meta: response.meta,
            accepted_event_id,
            outcome: Some(outcome.clone()),
        }));
    if let Some(info) = txn.state.updates.iter_mut().find(|u| u.update_id == update_id) {
        info.completed_event_id = completed_event_id;
    }
    effects.push(UpdateEffect::Completed { update_id: update_id.to_string(), outcome });
    Ok(())
}

/// Go's failure for an update sent on a task whose completion did not answer it.
pub fn unprocessed_failure() -> Failure {
    Failure {
        message:
            "Workflow Update is rejected because it wasn't processed by worker. Probably, Workflow Update is not supported by the worker."
                .into(),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo { non_retryable: true, ..Default::default() })),
        ..Default::default()
    }
}

/// After the messages: what becomes of the updates still pending. Returns whether
/// some wait for the next workflow task (admitted while this one ran).
/// A run that closes aborts its durably admitted updates too (`state`: the run's).
pub fn settle(
    book: &mut UpdateBook,
    state: &ExecutionState,
    closed: bool,
    continued_as: Option<&str>,
    effects: &mut Vec<UpdateEffect>,
) -> bool {
    if closed {
        for info in state.updates.iter().filter(|u| u.awaits_acceptance()) {
            effects.push(UpdateEffect::Aborted { update_id: info.update_id.clone(), continued_as: continued_as.map(str::to_string) });
        }
    }
    let mut waiting = false;
    for (update_id, pending) in std::mem::take(&mut book.pending) {
        if closed {
            effects.push(UpdateEffect::Aborted { update_id, continued_as: continued_as.map(str::to_string) });
        } else if pending.sent_on_this_task {
            effects.push(UpdateEffect::Rejected { update_id, failure: unprocessed_failure() });
        } else {
            waiting = true;
            book.pending.insert(update_id, pending);
        }
    }
    waiting
}

/// Whether updates arrived that the worker has not seen (a close must then wait,
/// as it must for buffered events).
pub fn unseen(book: &UpdateBook) -> bool {
    book.pending.values().any(|p| !p.sent_on_this_task)
}

#[cfg(test)]
mod tests;
