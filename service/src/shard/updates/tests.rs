//! The registry's phases and what waiters see, without a server.

use temporalio_protos::protos::temporal::api::common::v1::Payloads;
use temporalio_protos::protos::temporal::api::update::v1::{Input, Meta};

use super::*;

fn run() -> RunKey {
    RunKey { namespace: "default".into(), workflow_id: "wf".into(), run_id: "r1".into() }
}

fn request(id: &str) -> Request {
    Request {
        meta: Some(Meta { update_id: id.into(), identity: "me".into() }),
        input: Some(Input { name: "upd".into(), ..Default::default() }),
        ..Default::default()
    }
}

fn success() -> Outcome {
    Outcome { value: Some(outcome::Value::Success(Payloads::default())) }
}

#[tokio::test]
async fn an_update_goes_admitted_sent_accepted_completed_and_every_waiter_sees_it() {
    let registry = UpdateRegistry::default();
    let mut first = registry.admit(&run(), "u1", request("u1"), 0).unwrap();
    let mut second = registry.watch(&run(), "u1").expect("deduplicated by id");
    assert_eq!(first.now(), Progress::Admitted);

    let messages = registry.attach(&run(), 9);
    assert_eq!(messages.len(), 1);
    assert_eq!((messages[0].id.as_str(), messages[0].protocol_instance_id.as_str()), ("u1/request", "u1"));
    let book = registry.book(&run(), 9);
    assert!(book.pending["u1"].sent_on_this_task);
    assert!(!registry.book(&run(), 12).pending["u1"].sent_on_this_task, "sent on another task");

    registry.apply(&run(), vec![UpdateEffect::Accepted { update_id: "u1".into(), accepted_event_id: 12 }]);
    assert_eq!(first.until(|p| *p == Progress::Accepted).await, Progress::Accepted);
    assert!(registry.attach(&run(), 14).is_empty(), "an accepted update is not sent again");
    assert!(registry.book(&run(), 14).pending.is_empty());

    registry.apply(&run(), vec![UpdateEffect::Completed { update_id: "u1".into(), outcome: success() }]);
    assert_eq!(second.until(|_| false).await, Progress::Completed(Box::new(success())));
    assert!(registry.watch(&run(), "u1").is_none(), "a completed update is forgotten (its outcome is in history)");
}

#[tokio::test]
async fn a_rejection_completes_with_the_failure_and_unsent_updates_are_known() {
    let registry = UpdateRegistry::default();
    let mut watch = registry.admit(&run(), "u1", request("u1"), 0).unwrap();
    assert!(registry.has_unsent(&run()));
    registry.attach(&run(), 5);
    assert!(!registry.has_unsent(&run()));
    let failure = Failure { message: "neg".into(), ..Default::default() };
    registry.apply(&run(), vec![UpdateEffect::Rejected { update_id: "u1".into(), failure: failure.clone() }]);
    assert_eq!(watch.until(|_| false).await, Progress::Completed(Box::new(Outcome { value: Some(outcome::Value::Failure(failure)) })));
}

#[test]
fn admission_is_bounded_by_the_in_flight_limit_counting_accepted_updates() {
    let registry = UpdateRegistry::default();
    for i in 0..UPDATES_IN_FLIGHT_MAX - 2 {
        registry.admit(&run(), &format!("u{i}"), request("u"), 2).unwrap();
    }
    assert_eq!(registry.admit(&run(), "one-more", request("u"), 2).err(), Some(AdmitError::TooManyInFlight));
    assert!(registry.admit(&run(), "one-more", request("u"), 1).is_ok());
}

#[tokio::test]
async fn closing_retiring_and_withdrawing_abort_waiters() {
    let registry = UpdateRegistry::default();
    let mut admitted = registry.admit(&run(), "a", request("a"), 0).unwrap();
    let mut accepted = registry.watch_accepted(&run(), "b");
    registry.on_run_closed(&run(), Abort::RunClosed);
    assert_eq!(admitted.until(|_| false).await, Progress::Aborted(Abort::RunClosed));
    assert_eq!(accepted.now(), Progress::Accepted, "an accepted update outlives its run's close");
    registry.retire();
    assert_eq!(accepted.until(|_| false).await, Progress::Aborted(Abort::OwnerStopped));

    let mut withdrawn = registry.admit(&run(), "c", request("c"), 0).unwrap();
    registry.withdraw(&run(), "c");
    assert_eq!(withdrawn.until(|_| false).await, Progress::Aborted(Abort::OwnerStopped));
    assert!(registry.watch(&run(), "c").is_none());
}

#[tokio::test]
async fn continue_as_new_aborts_with_the_new_run() {
    let registry = UpdateRegistry::default();
    let mut watch = registry.admit(&run(), "u", request("u"), 0).unwrap();
    registry.apply(&run(), vec![UpdateEffect::Aborted { update_id: "u".into(), continued_as: Some("r2".into()) }]);
    assert_eq!(watch.until(|_| false).await, Progress::Aborted(Abort::ContinuedAs("r2".into())));
}

#[tokio::test]
async fn a_durably_admitted_update_is_watched_but_never_sent_as_a_message() {
    let registry = UpdateRegistry::default();
    let mut watch = registry.watch_durable(&run(), "u1");
    assert_eq!(watch.now(), Progress::Admitted);
    assert!(!registry.has_unsent(&run()), "its request is in history, not waiting for a task");
    assert!(registry.attach(&run(), 7).is_empty(), "the worker reads it from the Admitted event");
    assert!(registry.book(&run(), 7).pending.is_empty(), "the run's state holds it, not the book");
    let _others = registry.admit(&run(), "u2", request("u2"), 1).expect("counted once: in the run's state");

    registry.apply(&run(), vec![UpdateEffect::Accepted { update_id: "u1".into(), accepted_event_id: 10 }]);
    assert_eq!(watch.until(|p| *p == Progress::Accepted).await, Progress::Accepted);
    registry.apply(&run(), vec![UpdateEffect::Completed { update_id: "u1".into(), outcome: success() }]);
    assert_eq!(watch.until(|_| false).await, Progress::Completed(Box::new(success())));
}
