//! Completions against a real one-shard node. Event shapes follow the reference
//! histories: `hist-wf-noact.json` (complete), `hist-ex-la.json` (marker then
//! complete), `hist-ex-fail.json` (fail), `hist-wf-cancel.json` (cancel).

use std::collections::HashMap;

use temporalio_protos::protos::temporal::api::command::v1::*;
use temporalio_protos::protos::temporal::api::common::v1::{MeteringMetadata, Payload, Payloads, WorkerVersionStamp};
use temporalio_protos::protos::temporal::api::enums::v1::{
    CommandType, EventType, RetryState, WorkflowExecutionStatus, WorkflowTaskFailedCause,
};
use temporalio_protos::protos::temporal::api::failure::v1::{failure::FailureInfo, Failure};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::protocol::v1::Message as ProtocolMessage;
use temporalio_protos::protos::temporal::api::sdk::v1::WorkflowTaskCompletedMetadata;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{PollWorkflowTaskQueueResponse, RespondWorkflowTaskCompletedRequest};

use super::*;
use crate::core::commands::{bad_attributes_cause, cause_name, command_type_name, failed_cause_message, server_failure};
use crate::core::error::WorkflowTaskError;
use crate::engine::workflow_task::testkit::*;
use crate::error::code_of;
use crate::error::ServiceError;
use temporalio_protos::protos::temporal::api::command::v1::command::Attributes as Cmd;
use temporalio_protos::protos::temporal::api::history::v1::WorkflowTaskFailedEventAttributes;
use tonic::Code;

fn payloads(data: &str) -> Payloads {
    let metadata = HashMap::from([("encoding".to_string(), b"json/plain".to_vec())]);
    Payloads { payloads: vec![Payload { metadata, data: data.as_bytes().to_vec(), ..Default::default() }] }
}

fn cmd(command_type: CommandType, attributes: Cmd) -> Command {
    Command { command_type: command_type as i32, attributes: Some(attributes), ..Default::default() }
}

fn complete_cmd() -> Command {
    let a = CompleteWorkflowExecutionCommandAttributes { result: Some(payloads("\"hello a\"")) };
    cmd(CommandType::CompleteWorkflowExecution, Cmd::CompleteWorkflowExecutionCommandAttributes(a))
}

fn marker_cmd(name: &str) -> Command {
    let a = RecordMarkerCommandAttributes {
        marker_name: name.into(),
        details: HashMap::from([("result".to_string(), payloads("1"))]),
        ..Default::default()
    };
    cmd(CommandType::RecordMarker, Cmd::RecordMarkerCommandAttributes(a))
}

#[allow(deprecated)]
fn completion(resp: &PollWorkflowTaskQueueResponse, commands: Vec<Command>) -> RespondWorkflowTaskCompletedRequest {
    RespondWorkflowTaskCompletedRequest {
        task_token: resp.task_token.clone(),
        commands,
        identity: IDENTITY.into(),
        namespace: NS.into(),
        worker_version_stamp: Some(WorkerVersionStamp { build_id: BUILD_ID.into(), use_versioning: false }),
        sdk_metadata: Some(WorkflowTaskCompletedMetadata {
            core_used_flags: vec![2, 4, 3, 1],
            sdk_name: "temporal-python".into(),
            sdk_version: "1.35.0".into(),
            ..Default::default()
        }),
        metering_metadata: Some(MeteringMetadata::default()),
        return_new_workflow_task: true,
        ..Default::default()
    }
}

async fn complete(
    e: &Engine,
    resp: &PollWorkflowTaskQueueResponse,
    commands: Vec<Command>,
) -> Result<RespondWorkflowTaskCompletedResponse> {
    complete_workflow_task(e, &token_of(resp), completion(resp, commands)).await
}

fn failed_attrs(
    events: &[temporalio_protos::protos::temporal::api::history::v1::HistoryEvent],
    i: usize,
) -> WorkflowTaskFailedEventAttributes {
    match &events[i].attributes {
        Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => a.clone(),
        other => panic!("event {} is not WorkflowTaskFailed: {other:?}", i + 1),
    }
}

// ------------------------------------------------------------------ pure checks

#[test]
fn command_sequences_end_with_their_terminal_command() {
    let timer = cmd(CommandType::StartTimer, Cmd::StartTimerCommandAttributes(Default::default()));
    assert!(command_sequence(&[timer.clone(), marker_cmd("m"), complete_cmd()]).is_ok());
    assert!(command_sequence(&[]).is_ok());
    let Err(e) = command_sequence(&[complete_cmd(), timer]) else { panic!() };
    assert_eq!(
        e.to_string(),
        "invalid command sequence: [CompleteWorkflowExecution, StartTimer], command CompleteWorkflowExecution must be the last command."
    );
    let unknown = Command { command_type: 99, ..Default::default() };
    let Err(e) = command_sequence(&[unknown]) else { panic!() };
    assert_eq!(e.to_string(), "unknown command type: 99");
    let Err(e) = command_sequence(&[Command::default()]) else { panic!() };
    assert_eq!(e.to_string(), "unknown command type: Unspecified");
}

#[test]
fn failure_messages_are_worded_as_go_words_them() {
    assert_eq!(failed_cause_message(WorkflowTaskFailedCause::UnhandledCommand as i32, ""), "UnhandledCommand");
    assert_eq!(
        failed_cause_message(WorkflowTaskFailedCause::BadRecordMarkerAttributes as i32, "MarkerName is not set on command."),
        "BadRecordMarkerAttributes: MarkerName is not set on command."
    );
    assert_eq!(cause_name(1234), "1234");
    assert_eq!(command_type_name(CommandType::ContinueAsNewWorkflowExecution as i32), "ContinueAsNewWorkflowExecution");
    assert_eq!(bad_attributes_cause(CommandType::UpsertWorkflowSearchAttributes), WorkflowTaskFailedCause::BadSearchAttributes);
    let f = server_failure("x".into());
    assert!(matches!(f.failure_info, Some(FailureInfo::ServerFailureInfo(ref i)) if !i.non_retryable));
}

// ------------------------------------------------------------- against the node

#[tokio::test]
async fn complete_matches_the_reference_history() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-noact").await;
    let resp = poll(e).await;
    assert_eq!(complete(e, &resp, vec![complete_cmd()]).await.unwrap(), RespondWorkflowTaskCompletedResponse::default());

    let events = history(e, &run);
    assert_eq!(types(&events[3..]), [EventType::WorkflowTaskCompleted, EventType::WorkflowExecutionCompleted]);
    let Some(Attributes::WorkflowTaskCompletedEventAttributes(done)) = &events[3].attributes else { panic!() };
    assert_eq!((done.scheduled_event_id, done.started_event_id, done.identity.as_str()), (2, 3, IDENTITY));
    #[allow(deprecated)]
    let build_id = done.worker_version.as_ref().map(|v| v.build_id.as_str());
    assert_eq!(build_id, Some(BUILD_ID));
    assert_eq!(done.sdk_metadata.as_ref().unwrap().core_used_flags, [2, 4, 3, 1], "persisted for replay");
    assert_eq!(done.sdk_metadata.as_ref().unwrap().sdk_name, "temporal-python");
    assert_eq!(done.metering_metadata, Some(MeteringMetadata::default()));
    let Some(Attributes::WorkflowExecutionCompletedEventAttributes(closed)) = &events[4].attributes else { panic!() };
    assert_eq!((closed.result.clone(), closed.workflow_task_completed_event_id), (Some(payloads("\"hello a\"")), 4));

    let st = state(e, &run);
    assert_eq!((st.status, st.close_event_id, st.last_completed_wft_started_id), (WorkflowExecutionStatus::Completed as i32, 5, 3));
    assert!(!st.is_open() && st.workflow_task.is_none());
    assert!(!e.node().read(0, |s| s.run(&run).unwrap().is_open()).unwrap(), "closed in storage");
    assert_eq!(e.node().read(0, |s| s.timer_count()).unwrap(), 0, "the start-to-close timer goes with the task");
    let again = complete(e, &resp, vec![complete_cmd()]).await;
    assert_eq!(
        again.map_err(|e| (e.code(), e.to_string())).err(),
        Some((Code::NotFound, "workflow execution already completed".to_string()))
    );
}

#[tokio::test]
async fn marker_then_complete_in_one_completion() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-la").await;
    let resp = poll(e).await;
    complete(e, &resp, vec![marker_cmd("core_local_activity"), complete_cmd()]).await.unwrap();
    let events = history(e, &run);
    assert_eq!(types(&events[3..]), [EventType::WorkflowTaskCompleted, EventType::MarkerRecorded, EventType::WorkflowExecutionCompleted]);
    let Some(Attributes::MarkerRecordedEventAttributes(m)) = &events[4].attributes else { panic!() };
    assert_eq!((m.marker_name.as_str(), m.workflow_task_completed_event_id), ("core_local_activity", 4));
    assert_eq!(m.details["result"], payloads("1"));
}

#[tokio::test]
async fn fail_and_cancel_close_the_run() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-fail").await;
    let resp = poll(e).await;
    let failure = Failure { message: "boom".into(), ..Default::default() };
    let fail_cmd = FailWorkflowExecutionCommandAttributes { failure: Some(failure.clone()) };
    complete(e, &resp, vec![cmd(CommandType::FailWorkflowExecution, Cmd::FailWorkflowExecutionCommandAttributes(fail_cmd))]).await.unwrap();
    let events = history(e, &run);
    let Some(Attributes::WorkflowExecutionFailedEventAttributes(f)) = &events[4].attributes else { panic!() };
    assert_eq!(
        (f.failure.clone(), f.retry_state, f.workflow_task_completed_event_id),
        (Some(failure), RetryState::RetryPolicyNotSet as i32, 4)
    );
    assert_eq!(state(e, &run).status, WorkflowExecutionStatus::Failed as i32);

    let run = start_run(e, "wf-cancel").await;
    let resp = poll(e).await;
    let cancel = CancelWorkflowExecutionCommandAttributes { details: None };
    complete(e, &resp, vec![cmd(CommandType::CancelWorkflowExecution, Cmd::CancelWorkflowExecutionCommandAttributes(cancel))])
        .await
        .unwrap();
    let events = history(e, &run);
    let Some(Attributes::WorkflowExecutionCanceledEventAttributes(c)) = &events[4].attributes else { panic!() };
    assert_eq!(c.workflow_task_completed_event_id, 4);
    assert_eq!(state(e, &run).status, WorkflowExecutionStatus::Canceled as i32);
}

#[tokio::test]
async fn closing_over_unseen_events_is_an_unhandled_command() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-unhandled").await;
    let resp = poll(e).await;
    signal(e, &run, "late").await;
    let answer = complete(e, &resp, vec![complete_cmd()]).await;
    assert!(matches!(answer, Err(ServiceError::WorkflowTask(WorkflowTaskError::UnhandledCommand))));
    assert_eq!(tonic::Status::from(answer.unwrap_err()).message(), "UnhandledCommand");

    let events = history(e, &run);
    assert_eq!(
        types(&events[3..]),
        [EventType::WorkflowTaskFailed, EventType::WorkflowExecutionSignaled, EventType::WorkflowTaskScheduled]
    );
    let failed = failed_attrs(&events, 3);
    assert_eq!((failed.cause, failed.identity.as_str()), (WorkflowTaskFailedCause::UnhandledCommand as i32, IDENTITY));
    assert_eq!(failed.failure.unwrap().message, "UnhandledCommand");
    let st = state(e, &run);
    assert!(st.is_open() && st.buffered_events.is_empty());
    let retry = poll(e).await;
    assert_eq!((retry.attempt, retry.started_event_id), (2, 7));
    complete(e, &retry, vec![complete_cmd()]).await.unwrap();
    assert_eq!(state(e, &run).status, WorkflowExecutionStatus::Completed as i32);
}

#[tokio::test]
async fn buffered_events_follow_the_command_events_and_need_a_new_task() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-flush").await;
    let resp = poll(e).await;
    signal(e, &run, "s").await;
    complete(e, &resp, vec![marker_cmd("m")]).await.unwrap();
    let events = history(e, &run);
    assert_eq!(
        types(&events[3..]),
        [
            EventType::WorkflowTaskCompleted,
            EventType::MarkerRecorded,
            EventType::WorkflowExecutionSignaled,
            EventType::WorkflowTaskScheduled
        ]
    );
    let Some(Attributes::WorkflowTaskScheduledEventAttributes(s)) = &events[6].attributes else { panic!() };
    assert_eq!(s.attempt, 1);
    let next = poll(e).await;
    assert_eq!((next.previous_started_event_id, next.started_event_id, next.attempt), (3, 8, 1));
}

#[tokio::test]
async fn a_new_task_only_when_there_is_news_or_the_worker_asks() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-idle").await;
    let resp = poll(e).await;
    complete(e, &resp, vec![]).await.unwrap();
    let st = state(e, &run);
    assert!(st.workflow_task.is_none() && st.is_open());
    assert_eq!((st.last_completed_wft_started_id, history(e, &run).len()), (3, 4));

    signal(e, &run, "wake").await;
    let resp = poll(e).await;
    let mut req = completion(&resp, vec![]);
    req.force_create_new_workflow_task = true;
    complete_workflow_task(e, &token_of(&resp), req).await.unwrap();
    let events = history(e, &run);
    assert_eq!(types(&events[7..]), [EventType::WorkflowTaskCompleted, EventType::WorkflowTaskScheduled]);
}

#[tokio::test]
async fn a_refused_command_fails_the_task_and_later_attempts_are_dropped() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-bad-marker").await;
    let resp = poll(e).await;
    let answer = complete(e, &resp, vec![marker_cmd("ok"), marker_cmd("")]).await;
    let expected = "BadRecordMarkerAttributes: MarkerName is not set on command.";
    assert_eq!(
        answer.as_ref().map_err(|e| (e.code(), e.to_string())).err(),
        Some((Code::InvalidArgument, expected.to_string())),
        "{answer:?}"
    );
    let events = history(e, &run);
    assert_eq!(types(&events[3..]), [EventType::WorkflowTaskFailed, EventType::WorkflowTaskScheduled], "nothing of the completion applied");
    let failed = failed_attrs(&events, 3);
    assert_eq!(failed.cause, WorkflowTaskFailedCause::BadRecordMarkerAttributes as i32);
    assert_eq!(failed.failure.unwrap().message, expected);

    let retry = poll(e).await;
    assert_eq!(retry.attempt, 2);
    let answer = complete(e, &retry, vec![marker_cmd("")]).await;
    assert!(code_of(&answer) == Some(Code::InvalidArgument));
    assert_eq!(history(e, &run).len(), 6, "attempt 2 is dropped: its timeout retries it");
    assert_eq!(state(e, &run).workflow_task.unwrap().started_event_id, 6);
}

#[tokio::test]
async fn an_invalid_sequence_changes_nothing() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-seq").await;
    let resp = poll(e).await;
    assert!(code_of(&complete(e, &resp, vec![complete_cmd(), complete_cmd()]).await) == Some(Code::InvalidArgument));
    assert_eq!(history(e, &run).len(), 3);
    complete(e, &resp, vec![complete_cmd()]).await.unwrap();
    assert_eq!(state(e, &run).status, WorkflowExecutionStatus::Completed as i32);
}

#[tokio::test]
async fn mismatched_attributes_updates_and_unsupported_commands_fail_the_task() {
    let cases: Vec<(Vec<Command>, Vec<ProtocolMessage>, WorkflowTaskFailedCause)> = vec![
        (
            vec![cmd(CommandType::CompleteWorkflowExecution, Cmd::StartTimerCommandAttributes(Default::default()))],
            vec![],
            WorkflowTaskFailedCause::BadCompleteWorkflowExecutionAttributes,
        ),
        (
            vec![],
            vec![ProtocolMessage { protocol_instance_id: "u1".into(), ..Default::default() }],
            WorkflowTaskFailedCause::BadUpdateWorkflowExecutionMessage,
        ),
        (
            vec![cmd(
                CommandType::SignalExternalWorkflowExecution,
                Cmd::SignalExternalWorkflowExecutionCommandAttributes(Default::default()),
            )],
            vec![],
            WorkflowTaskFailedCause::BadSignalWorkflowExecutionAttributes,
        ),
        (
            vec![cmd(
                CommandType::RequestCancelExternalWorkflowExecution,
                Cmd::RequestCancelExternalWorkflowExecutionCommandAttributes(Default::default()),
            )],
            vec![],
            WorkflowTaskFailedCause::BadRequestCancelExternalWorkflowExecutionAttributes,
        ),
        (
            vec![cmd(CommandType::ScheduleNexusOperation, Cmd::ScheduleNexusOperationCommandAttributes(Default::default()))],
            vec![],
            WorkflowTaskFailedCause::FeatureDisabled,
        ),
    ];
    for (i, (commands, messages, cause)) in cases.into_iter().enumerate() {
        let kit = kit().await;
        let e = &kit.engine;
        let run = start_run(e, &format!("wf-bad-{i}")).await;
        let resp = poll(e).await;
        let mut req = completion(&resp, commands);
        req.messages = messages;
        assert!(code_of(&complete_workflow_task(e, &token_of(&resp), req).await) == Some(Code::InvalidArgument));
        assert_eq!(failed_attrs(&history(e, &run), 3).cause, cause as i32, "case {i}");
    }
}

#[tokio::test]
async fn search_attributes_and_memo_are_stored() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-props").await;
    let resp = poll(e).await;
    let sa = payloads("\"blue\"").payloads.remove(0);
    let upsert = UpsertWorkflowSearchAttributesCommandAttributes {
        search_attributes: Some(temporalio_protos::protos::temporal::api::common::v1::SearchAttributes {
            indexed_fields: HashMap::from([("Color".to_string(), sa.clone())]),
        }),
    };
    let memo = ModifyWorkflowPropertiesCommandAttributes {
        upserted_memo: Some(temporalio_protos::protos::temporal::api::common::v1::Memo {
            fields: HashMap::from([("note".to_string(), sa.clone())]),
        }),
    };
    complete(
        e,
        &resp,
        vec![
            cmd(CommandType::UpsertWorkflowSearchAttributes, Cmd::UpsertWorkflowSearchAttributesCommandAttributes(upsert)),
            cmd(CommandType::ModifyWorkflowProperties, Cmd::ModifyWorkflowPropertiesCommandAttributes(memo)),
        ],
    )
    .await
    .unwrap();
    let events = history(e, &run);
    assert_eq!(types(&events[4..]), [EventType::UpsertWorkflowSearchAttributes, EventType::WorkflowPropertiesModified]);
    let st = state(e, &run);
    assert_eq!(st.search_attributes.unwrap().indexed_fields["Color"], sa);
    assert_eq!(st.memo.unwrap().fields["note"], sa);
}
