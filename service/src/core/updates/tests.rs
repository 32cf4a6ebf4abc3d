//! The update messages of a completion: events, state, effects and refusals, with
//! the event shapes of the reference (`hist-wf-signal.json`, events 12–13).

use hourglass_storage::state::RunKey;
use temporalio_protos::protos::temporal::api::common::v1::Payloads;
use temporalio_protos::protos::temporal::api::update::v1::{outcome, Input, Meta};

use super::*;
use crate::core::state::ExecutionState;

const NOW: i64 = 1_700_000_000_000;

fn txn() -> RunTxn {
    let key = RunKey { namespace: "default".into(), workflow_id: "wf".into(), run_id: "run".into() };
    RunTxn::existing(key, NOW, ExecutionState { task_queue: "tq".into(), ..Default::default() }, 12, 1)
}

fn request(update_id: &str) -> Request {
    Request {
        meta: Some(Meta { update_id: update_id.into(), identity: "13919@vm".into() }),
        input: Some(Input { name: "upd".into(), args: Some(Payloads::default()), header: None }),
        ..Default::default()
    }
}

fn book(ids: &[(&str, bool)]) -> UpdateBook {
    let pending = ids.iter().map(|(id, sent)| (id.to_string(), PendingUpdate { request: request(id), sent_on_this_task: *sent })).collect();
    UpdateBook { pending }
}

fn message(update_id: &str, suffix: &str, body: Any) -> Message {
    Message { id: format!("{update_id}/request/{suffix}"), protocol_instance_id: update_id.into(), body: Some(body), sequencing_id: None }
}

fn acceptance(update_id: &str) -> Message {
    let body = Acceptance {
        accepted_request_message_id: request_message_id(update_id),
        accepted_request_sequencing_event_id: 9,
        accepted_request: Some(request(update_id)),
    };
    message(update_id, "accept", to_any(&body))
}

fn response(update_id: &str, value: outcome::Value) -> Message {
    let body = Response {
        meta: Some(Meta { update_id: update_id.into(), identity: "13919@vm".into() }),
        outcome: Some(Outcome { value: Some(value) }),
    };
    message(update_id, "complete", to_any(&body))
}

fn rejection(update_id: &str) -> Message {
    let body = Rejection {
        rejected_request_message_id: request_message_id(update_id),
        failure: Some(Failure { message: "neg".into(), ..Default::default() }),
        ..Default::default()
    };
    message(update_id, "reject", to_any(&body))
}

#[test]
fn the_request_message_is_named_and_sequenced_as_go_does() {
    let m = request_message("u1", &request("u1"), 9);
    assert_eq!(m.id, "u1/request");
    assert_eq!(m.protocol_instance_id, "u1");
    assert_eq!(m.sequencing_id, Some(SequencingId::EventId(9)));
    let body = m.body.expect("a body");
    assert_eq!(body.type_url, "type.googleapis.com/temporal.api.update.v1.Request");
    assert_eq!(<Request as prost::Message>::decode(body.value.as_slice()).unwrap(), request("u1"));
}

#[test]
fn accept_then_complete_in_one_completion_writes_both_events_and_the_state() {
    let mut txn = txn();
    let mut book = book(&[("u1", true)]);
    let mut effects = Vec::new();
    let success = outcome::Value::Success(Payloads::default());
    let mut messages = Messages::new(vec![acceptance("u1"), response("u1", success.clone())]);
    messages.apply_named("u1/request/accept", &mut txn, &mut book, &mut effects).unwrap();
    messages.apply_rest(&mut txn, &mut book, &mut effects).unwrap();

    let events = txn.events();
    assert_eq!(events.len(), 2);
    let Some(Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(a)) = &events[0].attributes else { panic!("accepted first") };
    assert_eq!((a.protocol_instance_id.as_str(), a.accepted_request_message_id.as_str()), ("u1", "u1/request"));
    assert_eq!(a.accepted_request_sequencing_event_id, 9);
    assert_eq!(a.accepted_request, Some(request("u1")));
    let Some(Attributes::WorkflowExecutionUpdateCompletedEventAttributes(c)) = &events[1].attributes else { panic!("completed next") };
    assert_eq!((c.accepted_event_id, c.meta.as_ref().map(|m| m.update_id.as_str())), (12, Some("u1")));
    assert_eq!(c.outcome, Some(Outcome { value: Some(success.clone()) }));
    assert_eq!(
        txn.state.updates,
        vec![UpdateInfo { update_id: "u1".into(), accepted_event_id: 12, completed_event_id: 13, ..Default::default() }]
    );
    assert_eq!(
        effects,
        vec![
            UpdateEffect::Accepted { update_id: "u1".into(), accepted_event_id: 12 },
            UpdateEffect::Completed { update_id: "u1".into(), outcome: Outcome { value: Some(success) } },
        ]
    );
    assert!(book.pending.is_empty());
}

#[test]
fn a_rejection_writes_no_event() {
    let mut txn = txn();
    let mut book = book(&[("u1", true)]);
    let mut effects = Vec::new();
    Messages::new(vec![rejection("u1")]).apply_rest(&mut txn, &mut book, &mut effects).unwrap();
    assert!(txn.events().is_empty());
    assert!(txn.state.updates.is_empty());
    assert!(matches!(&effects[..], [UpdateEffect::Rejected { update_id, failure }] if update_id == "u1" && failure.message == "neg"));
}

#[test]
fn messages_about_updates_the_server_does_not_hold_fail_the_task() {
    let cause = WorkflowTaskFailedCause::BadUpdateWorkflowExecutionMessage as i32;
    for m in [acceptance("ghost"), rejection("ghost"), response("ghost", outcome::Value::Success(Payloads::default()))] {
        let err = Messages::new(vec![m]).apply_rest(&mut txn(), &mut book(&[]), &mut Vec::new()).unwrap_err();
        assert_eq!(err.cause, cause);
        assert!(err.message.starts_with("update ghost wasn't found on the server"), "{}", err.message);
    }
    let err = Messages::new(vec![]).apply_named("nope", &mut txn(), &mut book(&[]), &mut Vec::new()).unwrap_err();
    assert_eq!((err.cause, err.message.as_str()), (cause, "ProtocolMessageCommand referenced absent message ID nope."));
    let junk = message("u1", "x", Any { type_url: "type.googleapis.com/nope".into(), value: vec![] });
    let err = Messages::new(vec![junk]).apply_rest(&mut txn(), &mut book(&[("u1", true)]), &mut Vec::new()).unwrap_err();
    assert_eq!(err.cause, cause);
}

#[test]
fn a_second_response_to_a_completed_update_is_refused() {
    let mut txn = txn();
    txn.state.updates.push(UpdateInfo { update_id: "u1".into(), accepted_event_id: 5, completed_event_id: 6, ..Default::default() });
    let err = Messages::new(vec![response("u1", outcome::Value::Success(Payloads::default()))])
        .apply_rest(&mut txn, &mut book(&[]), &mut Vec::new())
        .unwrap_err();
    assert!(err.message.contains("already completed"), "{}", err.message);
}

#[test]
fn settle_rejects_unanswered_sent_updates_keeps_unseen_ones_and_aborts_on_close() {
    let mut effects = Vec::new();
    let mut open = book(&[("sent", true), ("new", false)]);
    assert!(unseen(&open));
    assert!(settle(&mut open, &ExecutionState::default(), false, None, &mut effects), "the unseen update needs a task");
    assert_eq!(open.pending.keys().collect::<Vec<_>>(), vec!["new"]);
    assert!(
        matches!(&effects[..], [UpdateEffect::Rejected { update_id, failure }] if update_id == "sent" && failure.message.contains("wasn't processed"))
    );

    let mut effects = Vec::new();
    let mut closing = book(&[("a", true), ("b", false)]);
    assert!(!settle(&mut closing, &ExecutionState::default(), true, Some("run-2"), &mut effects));
    assert!(closing.pending.is_empty());
    assert_eq!(
        effects,
        vec![
            UpdateEffect::Aborted { update_id: "a".into(), continued_as: Some("run-2".into()) },
            UpdateEffect::Aborted { update_id: "b".into(), continued_as: Some("run-2".into()) },
        ]
    );
}

/// The run's state after a reset reapplied `u1` (its Admitted event is event 5).
fn durably_admitted() -> RunTxn {
    let mut txn = txn();
    txn.state.updates.push(UpdateInfo { update_id: "u1".into(), admitted_event_id: 5, ..Default::default() });
    txn
}

#[test]
fn a_durably_admitted_update_is_accepted_without_its_request_and_completed() {
    let mut txn = durably_admitted();
    let mut effects = Vec::new();
    let success = outcome::Value::Success(Payloads::default());
    Messages::new(vec![acceptance("u1"), response("u1", success)]).apply_rest(&mut txn, &mut book(&[]), &mut effects).unwrap();
    let events = txn.events();
    let Some(Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(a)) = &events[0].attributes else { panic!("accepted first") };
    assert_eq!(a.accepted_request, None, "the Admitted event holds the request (Go writes none again)");
    assert_eq!(a.accepted_request_message_id, "u1/request");
    assert_eq!(
        txn.state.updates,
        vec![UpdateInfo { update_id: "u1".into(), admitted_event_id: 5, accepted_event_id: 12, completed_event_id: 13 }]
    );
    assert!(matches!(&effects[..], [UpdateEffect::Accepted { .. }, UpdateEffect::Completed { .. }]));
}

#[test]
fn a_durably_admitted_update_rejected_or_answered_early_or_left_by_a_close() {
    let mut txn = durably_admitted();
    let mut effects = Vec::new();
    let err = Messages::new(vec![response("u1", outcome::Value::Success(Payloads::default()))])
        .apply_rest(&mut txn, &mut book(&[]), &mut effects)
        .unwrap_err();
    assert!(err.message.contains("wasn't found"), "a response before the acceptance: {}", err.message);
    Messages::new(vec![rejection("u1")]).apply_rest(&mut txn, &mut book(&[]), &mut effects).unwrap();
    assert!(txn.events().is_empty() && txn.state.updates.is_empty(), "rejected: no event, the run forgets it");
    assert!(matches!(&effects[..], [UpdateEffect::Rejected { .. }]));

    let closing = durably_admitted();
    let mut effects = Vec::new();
    settle(&mut book(&[]), &closing.state, true, None, &mut effects);
    assert_eq!(effects, vec![UpdateEffect::Aborted { update_id: "u1".into(), continued_as: None }]);
}
