#![allow(deprecated)] // the commands' `namespace` and `control` fields
//! The external commands' events, checked against the reference histories recorded
//! from Temporal's server (`hist-ext-signal*.json`, `hist-ext-cancel*.json`,
//! `hist-child-cancel*.json`, `hist-child-signal*.json`), and their refusals.

use hourglass_storage::state::{Op, RunKey};
use prost::Message;
use temporalio_protos::protos::temporal::api::common::v1::{Header, Payloads};
use temporalio_protos::protos::temporal::api::enums::v1::EventType;
use temporalio_protos::protos::temporal::api::history::v1::WorkflowTaskCompletedEventAttributes;

use super::*;
use crate::core::state::{ParentInfo, WorkflowTaskInfo};
use crate::core::txn::event_type_of;

const NOW: i64 = 1_700_000_000_000;
const RUN: &str = "01a23ada-9f34-7ef9-8346-0a5cac7a85a2";
const BLOB_MAX: usize = 2 << 20;

fn key() -> RunKey {
    RunKey { namespace: "default".into(), workflow_id: "sender".into(), run_id: RUN.into() }
}

/// A transaction completing workflow task 2/3 (event 4 is WorkflowTaskCompleted).
fn txn() -> RunTxn {
    let state = ExecutionState { task_queue: "tq".into(), status: 1, ..Default::default() };
    let mut txn = RunTxn::existing(key(), NOW, state, 4, 1);
    txn.add_event(Attributes::WorkflowTaskCompletedEventAttributes(WorkflowTaskCompletedEventAttributes {
        scheduled_event_id: 2,
        started_event_id: 3,
        ..Default::default()
    }));
    txn
}

fn signal_attrs(workflow_id: &str, run_id: &str) -> SignalExternalWorkflowExecutionCommandAttributes {
    SignalExternalWorkflowExecutionCommandAttributes {
        namespace: "default".into(),
        execution: Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: run_id.into() }),
        signal_name: "sig".into(),
        input: Some(Payloads::default()),
        ..Default::default()
    }
}

fn cancel_attrs(workflow_id: &str) -> RequestCancelExternalWorkflowExecutionCommandAttributes {
    RequestCancelExternalWorkflowExecutionCommandAttributes {
        namespace: "default".into(),
        workflow_id: workflow_id.into(),
        reason: "why".into(),
        ..Default::default()
    }
}

fn timers(txn: RunTxn) -> Vec<(i64, TimerPayload)> {
    let (t, _) = txn.into_transition();
    t.ops
        .into_iter()
        .filter_map(|op| match op {
            Op::AddTimer { due_ms, payload, .. } => Some((due_ms, TimerPayload::decode(payload.as_ref()).unwrap())),
            _ => None,
        })
        .collect()
}

fn refusal_message(r: Result<(), Refusal>) -> (i32, String, bool) {
    match r {
        Err(Refusal::Fail(f)) => (f.cause, f.message, false),
        Err(Refusal::Terminate(f)) => (f.cause, f.message, true),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
#[allow(deprecated)]
fn signal_command_writes_initiated_records_the_request_and_arms_the_outbox() {
    let mut t = txn();
    signal_external(&mut t, signal_attrs("target", ""), 4, "req-1".into(), BLOB_MAX).unwrap();
    let e = t.events().last().unwrap().clone();
    assert_eq!(e.event_id, 5);
    let Some(Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(a)) = e.attributes else { panic!("{e:?}") };
    // hist-ext-signal.json event 5: as the command sent it, no header when none was sent.
    assert_eq!(a.workflow_task_completed_event_id, 4);
    assert_eq!(a.namespace, "default");
    assert_eq!(a.workflow_execution, Some(WorkflowExecution { workflow_id: "target".into(), run_id: String::new() }));
    assert_eq!(a.signal_name, "sig");
    assert_eq!(a.header, None);
    assert!(!a.child_workflow_only);
    assert_eq!(t.state.external_requests, vec![ExternalRequestInfo { initiated_event_id: 5, kind: 1, request_id: "req-1".into() }]);
    let armed = timers(t);
    assert_eq!(armed.len(), 1);
    assert_eq!(armed[0].0, NOW, "due at once");
    assert_eq!(armed[0].1.kind, TimerKind::SignalExternal as i32);
    assert_eq!(armed[0].1.event_id, 5);
}

#[test]
fn cancel_command_writes_initiated_with_the_reason() {
    let mut t = txn();
    let mut attrs = cancel_attrs("child");
    attrs.run_id = RUN.into();
    attrs.child_workflow_only = true;
    request_cancel_external(&mut t, attrs, 4, "req-2".into()).unwrap();
    let e = t.events().last().unwrap().clone();
    let Some(Attributes::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(a)) = e.attributes else { panic!("{e:?}") };
    assert_eq!(a.workflow_execution, Some(WorkflowExecution { workflow_id: "child".into(), run_id: RUN.into() }));
    assert!(a.child_workflow_only);
    assert_eq!(a.reason, "why");
    assert_eq!(t.state.external_requests[0].kind, ExternalRequestKind::Cancel as i32);
    assert_eq!(timers(t)[0].1.kind, TimerKind::CancelExternal as i32);
}

#[test]
fn bad_signal_commands_are_refused_with_gos_words() {
    let cause = WorkflowTaskFailedCause::BadSignalWorkflowExecutionAttributes as i32;
    let cases: Vec<(SignalExternalWorkflowExecutionCommandAttributes, &str)> = vec![
        (
            SignalExternalWorkflowExecutionCommandAttributes { execution: None, ..signal_attrs("t", "") },
            "Execution is not set on SignalExternalWorkflowExecutionCommand.",
        ),
        (signal_attrs("", ""), "WorkflowId is not set on SignalExternalWorkflowExecutionCommand. Namespace=default RunId= SignalName=sig"),
        (
            signal_attrs("t", "not-a-uuid"),
            "Invalid RunId set on SignalExternalWorkflowExecutionCommand. WorkflowId=t Namespace=default RunId=not-a-uuid SignalName=sig",
        ),
        (
            SignalExternalWorkflowExecutionCommandAttributes { signal_name: String::new(), ..signal_attrs("t", "") },
            "SignalName is not set on SignalExternalWorkflowExecutionCommand. WorkflowId=t Namespace=default RunId=",
        ),
        (
            SignalExternalWorkflowExecutionCommandAttributes { namespace: "other".into(), ..signal_attrs("t", "") },
            "cross namespace commands are not allowed",
        ),
    ];
    for (attrs, message) in cases {
        let mut t = txn();
        assert_eq!(refusal_message(signal_external(&mut t, attrs, 4, "r".into(), BLOB_MAX)), (cause, message.to_string(), false));
    }
    let big = SignalExternalWorkflowExecutionCommandAttributes {
        input: Some(Payloads {
            payloads: vec![temporalio_protos::protos::temporal::api::common::v1::Payload { data: vec![0; 64], ..Default::default() }],
        }),
        ..signal_attrs("t", "")
    };
    let (_, message, terminate) = refusal_message(signal_external(&mut txn(), big, 4, "r".into(), 16));
    assert_eq!(message, "SignalExternalWorkflowExecutionCommandAttributes.Input exceeds size limit.");
    assert!(terminate, "Go terminates the run for an oversized signal input");
}

#[test]
fn too_many_pending_requests_fail_the_task() {
    let mut t = txn();
    t.state.external_requests = (0..PENDING_SIGNALS_MAX as i64)
        .map(|i| ExternalRequestInfo { initiated_event_id: i + 1, kind: ExternalRequestKind::Signal as i32, request_id: i.to_string() })
        .collect();
    let (cause, message, _) = refusal_message(signal_external(&mut t, signal_attrs("t", ""), 4, "r".into(), BLOB_MAX));
    assert_eq!(cause, WorkflowTaskFailedCause::PendingSignalsLimitExceeded as i32);
    assert_eq!(message, "the number of pending signals to external workflows, 2000, has reached the per-workflow limit of 2000");
    // Signals do not count against cancellation requests.
    request_cancel_external(&mut t, cancel_attrs("t"), 4, "r".into()).unwrap();
}

#[test]
fn cancelling_a_child_started_in_the_same_task_is_refused() {
    let mut t = txn();
    t.add_event(Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(StartChildWorkflowExecutionInitiatedEventAttributes {
        workflow_id: "kid".into(),
        workflow_task_completed_event_id: 4,
        ..Default::default()
    }));
    let (cause, message, _) = refusal_message(request_cancel_external(&mut t, cancel_attrs("kid"), 4, "r".into()));
    assert_eq!(cause, WorkflowTaskFailedCause::BadRequestCancelExternalWorkflowExecutionAttributes as i32);
    assert_eq!(
        message,
        "Start and RequestCancel for child workflow is not allowed in same workflow task. WorkflowId=kid RunId= Namespace=default"
    );
    request_cancel_external(&mut t, cancel_attrs("other"), 4, "r".into()).unwrap();
}

#[test]
fn uuids_are_checked_as_go_checks_them() {
    assert!(is_uuid(RUN));
    assert!(is_uuid("01A23ADA9F347EF983460A5CAC7A85A2"));
    assert!(is_uuid("urn:uuid:01a23ada-9f34-7ef9-8346-0a5cac7a85a2"));
    assert!(is_uuid("{01a23ada-9f34-7ef9-8346-0a5cac7a85a2}"));
    assert!(!is_uuid("run-1"));
    assert!(!is_uuid("01a23ada-9f34-7ef9-8346-0a5cac7a85a"));
    assert!(!is_uuid("01a23ada+9f34-7ef9-8346-0a5cac7a85a2"));
}

/// A request `sender` initiated at event 5, pending in `state`.
fn request(kind: ExternalRequestKind, child_only: bool) -> ExternalRequest {
    let source = WorkflowExecution { workflow_id: "sender".into(), run_id: RUN.into() };
    let info = ExternalRequestInfo { initiated_event_id: 5, kind: kind as i32, request_id: "req-1".into() };
    let attributes = match kind {
        ExternalRequestKind::Cancel => Attributes::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(
            RequestCancelExternalWorkflowExecutionInitiatedEventAttributes {
                workflow_execution: Some(WorkflowExecution { workflow_id: "target".into(), run_id: String::new() }),
                child_workflow_only: child_only,
                reason: "why".into(),
                ..Default::default()
            },
        ),
        _ => Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(SignalExternalWorkflowExecutionInitiatedEventAttributes {
            workflow_execution: Some(WorkflowExecution { workflow_id: "target".into(), run_id: String::new() }),
            signal_name: "sig".into(),
            header: Some(Header::default()),
            child_workflow_only: child_only,
            ..Default::default()
        }),
    };
    let event = crate::core::txn::new_event(5, NOW, attributes);
    ExternalRequest::from_initiated("default", source, &info, &event).unwrap()
}

fn target(parent: Option<&str>) -> RunTxn {
    let state = ExecutionState {
        task_queue: "tq".into(),
        status: 1,
        parent: parent.map(|p| ParentInfo {
            namespace: "default".into(),
            workflow_id: "sender".into(),
            run_id: p.into(),
            initiated_event_id: 5,
        }),
        workflow_task: Some(WorkflowTaskInfo { scheduled_event_id: 2, started_event_id: 3, attempt: 1, ..Default::default() }),
        ..Default::default()
    };
    let key = RunKey { namespace: "default".into(), workflow_id: "target".into(), run_id: "t-run".into() };
    RunTxn::existing(key, NOW, state, 5, 1)
}

#[test]
fn the_target_records_the_sender() {
    // hist-ext-signal-target.json event 5 (buffered here: the target's task is started).
    let mut t = target(None);
    assert_eq!(deliver(&mut t, &request(ExternalRequestKind::Signal, false)), (Delivery::Delivered, true));
    let event = HistoryEvent::decode(t.state.buffered_events[0].as_slice()).unwrap();
    let Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) = event.attributes else { panic!() };
    assert_eq!(a.identity, "history-service");
    assert_eq!(a.request_id, "req-1");
    assert_eq!(a.external_workflow_execution, Some(WorkflowExecution { workflow_id: "sender".into(), run_id: RUN.into() }));
    assert_eq!(a.header, Some(Header::default()));

    // hist-ext-cancel-target.json event 5.
    let mut t = target(None);
    t.state.workflow_task = None;
    assert_eq!(deliver(&mut t, &request(ExternalRequestKind::Cancel, false)), (Delivery::Delivered, true));
    let Some(Attributes::WorkflowExecutionCancelRequestedEventAttributes(a)) = t.events()[0].attributes.clone() else { panic!() };
    assert_eq!(a.cause, "why");
    assert_eq!(a.identity, "history-service");
    assert_eq!(a.external_initiated_event_id, 5);
    assert_eq!(a.external_workflow_execution, Some(WorkflowExecution { workflow_id: "sender".into(), run_id: RUN.into() }));
    assert_eq!(event_type_of(t.events()[1].attributes.as_ref().unwrap()), EventType::WorkflowTaskScheduled);
    // Cancellation is idempotent.
    assert_eq!(deliver(&mut t, &request(ExternalRequestKind::Cancel, false)), (Delivery::Delivered, false));
}

#[test]
fn child_only_requests_reach_only_the_senders_child() {
    for kind in [ExternalRequestKind::Signal, ExternalRequestKind::Cancel] {
        assert_eq!(deliver(&mut target(None), &request(kind, true)), (Delivery::NotFound, false), "{kind:?} to a non-child");
        assert_eq!(
            deliver(&mut target(Some("other-run")), &request(kind, true)),
            (Delivery::NotFound, false),
            "{kind:?} to another run's child"
        );
        assert_eq!(deliver(&mut target(Some(RUN)), &request(kind, true)), (Delivery::Delivered, true), "{kind:?} to our child");
    }
}

#[test]
fn closed_targets() {
    let mut closed = target(None);
    closed.state.workflow_task = None;
    closed.state.close_time_ms = NOW;
    // Go: signalling a closed run is NotFound; cancelling one succeeds without a write.
    assert_eq!(deliver(&mut closed, &request(ExternalRequestKind::Signal, false)), (Delivery::NotFound, false));
    assert_eq!(deliver(&mut closed, &request(ExternalRequestKind::Cancel, false)), (Delivery::Delivered, false));
}

fn sender_with_pending(kind: ExternalRequestKind, task_started: bool) -> RunTxn {
    let mut state = ExecutionState { task_queue: "tq".into(), status: 1, ..Default::default() };
    state.external_requests.push(ExternalRequestInfo { initiated_event_id: 5, kind: kind as i32, request_id: "req-1".into() });
    if task_started {
        state.workflow_task = Some(WorkflowTaskInfo { scheduled_event_id: 6, started_event_id: 7, attempt: 1, ..Default::default() });
    }
    RunTxn::existing(key(), NOW, state, if task_started { 8 } else { 6 }, 1)
}

#[test]
#[allow(deprecated)]
fn outcomes_in_the_sender() {
    // hist-ext-signal.json 6-7, hist-ext-signal-notfound.json 6-7,
    // hist-ext-cancel.json 6-7, hist-ext-cancel-notfound.json 6-7: the outcome, then a
    // workflow task.
    let target = Some(WorkflowExecution { workflow_id: "target".into(), run_id: String::new() });
    for (kind, delivery, expected) in [
        (ExternalRequestKind::Signal, Delivery::Delivered, EventType::ExternalWorkflowExecutionSignaled),
        (ExternalRequestKind::Signal, Delivery::NotFound, EventType::SignalExternalWorkflowExecutionFailed),
        (ExternalRequestKind::Cancel, Delivery::Delivered, EventType::ExternalWorkflowExecutionCancelRequested),
        (ExternalRequestKind::Cancel, Delivery::NotFound, EventType::RequestCancelExternalWorkflowExecutionFailed),
    ] {
        let mut t = sender_with_pending(kind, false);
        assert!(record_outcome(&mut t, &request(kind, false), delivery));
        let types: Vec<EventType> = t.events().iter().map(|e| event_type_of(e.attributes.as_ref().unwrap())).collect();
        assert_eq!(types, vec![expected, EventType::WorkflowTaskScheduled]);
        assert!(t.state.external_requests.is_empty());
        match t.events()[0].attributes.clone().unwrap() {
            Attributes::ExternalWorkflowExecutionSignaledEventAttributes(a) => {
                assert_eq!((a.initiated_event_id, a.namespace.as_str(), a.workflow_execution.clone()), (5, "default", target.clone()))
            }
            Attributes::SignalExternalWorkflowExecutionFailedEventAttributes(a) => {
                assert_eq!(a.cause, SignalExternalWorkflowExecutionFailedCause::ExternalWorkflowExecutionNotFound as i32);
                assert_eq!((a.initiated_event_id, a.namespace.as_str(), a.workflow_execution.clone()), (5, "default", target.clone()));
                assert_eq!(a.workflow_task_completed_event_id, 0);
            }
            Attributes::ExternalWorkflowExecutionCancelRequestedEventAttributes(a) => {
                assert_eq!((a.initiated_event_id, a.namespace.as_str(), a.workflow_execution.clone()), (5, "default", target.clone()))
            }
            Attributes::RequestCancelExternalWorkflowExecutionFailedEventAttributes(a) => {
                assert_eq!(a.cause, CancelExternalWorkflowExecutionFailedCause::ExternalWorkflowExecutionNotFound as i32);
                assert_eq!((a.initiated_event_id, a.namespace.as_str(), a.workflow_execution.clone()), (5, "default", target.clone()));
            }
            other => panic!("{other:?}"),
        }
        // Recorded once: a repeated outbox step finds nothing pending.
        assert!(!record_outcome(&mut t, &request(kind, false), delivery));
    }
    // While the sender's workflow task is started, the outcome is buffered.
    let mut t = sender_with_pending(ExternalRequestKind::Signal, true);
    assert!(record_outcome(&mut t, &request(ExternalRequestKind::Signal, false), Delivery::Delivered));
    assert!(t.events().is_empty());
    assert_eq!(t.state.buffered_events.len(), 1);
    // A closed sender records nothing.
    let mut t = sender_with_pending(ExternalRequestKind::Signal, false);
    t.state.close_time_ms = NOW;
    assert!(!record_outcome(&mut t, &request(ExternalRequestKind::Signal, false), Delivery::Delivered));
}

#[test]
fn a_request_to_the_sender_itself_fails_without_delivery() {
    let mut r = request(ExternalRequestKind::Signal, false);
    assert!(!targets_itself(&r, "default"));
    r.target.workflow_id = "sender".into();
    assert!(targets_itself(&r, "default"));
    r.target.run_id = "another-run".into();
    assert!(targets_itself(&r, "default"), "whatever the run id (Go)");
}
