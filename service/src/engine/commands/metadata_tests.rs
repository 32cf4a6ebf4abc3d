//! User metadata of commands (Temporal's `Command.user_metadata`): on the event the
//! command produces, counted in the history size, refused over the blob limit.

use std::collections::HashMap;

use prost::Message;
use temporalio_protos::protos::temporal::api::command::v1::command::Attributes as Cmd;
use temporalio_protos::protos::temporal::api::command::v1::*;
use temporalio_protos::protos::temporal::api::common::v1::{ActivityType, Payload};
use temporalio_protos::protos::temporal::api::enums::v1::{CommandType, EventType, WorkflowExecutionStatus, WorkflowTaskFailedCause};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::sdk::v1::UserMetadata;
use temporalio_protos::protos::temporal::api::workflowservice::v1::RespondWorkflowTaskCompletedRequest;

use super::*;
use crate::core::txn::duration;
use crate::engine::workflow_task::testkit::*;

fn text(s: &str) -> Payload {
    let metadata = HashMap::from([("encoding".to_string(), b"json/plain".to_vec())]);
    Payload { metadata, data: format!("{s:?}").into_bytes(), ..Default::default() }
}

fn summary(s: &str) -> Option<UserMetadata> {
    Some(UserMetadata { summary: Some(text(s)), details: None })
}

fn with_metadata(command_type: CommandType, attributes: Cmd, user_metadata: Option<UserMetadata>) -> Command {
    Command { command_type: command_type as i32, attributes: Some(attributes), user_metadata, ..Default::default() }
}

fn timer(id: &str, user_metadata: Option<UserMetadata>) -> Command {
    let a = StartTimerCommandAttributes { timer_id: id.into(), start_to_fire_timeout: Some(duration(HOUR_MS)) };
    with_metadata(CommandType::StartTimer, Cmd::StartTimerCommandAttributes(a), user_metadata)
}

fn activity(id: &str, user_metadata: Option<UserMetadata>) -> Command {
    let a = ScheduleActivityTaskCommandAttributes {
        activity_id: id.into(),
        activity_type: Some(ActivityType { name: "act".into() }),
        start_to_close_timeout: Some(duration(HOUR_MS)),
        ..Default::default()
    };
    with_metadata(CommandType::ScheduleActivityTask, Cmd::ScheduleActivityTaskCommandAttributes(a), user_metadata)
}

fn completion(task_token: Vec<u8>, commands: Vec<Command>) -> RespondWorkflowTaskCompletedRequest {
    RespondWorkflowTaskCompletedRequest { task_token, commands, identity: IDENTITY.into(), namespace: NS.into(), ..Default::default() }
}

#[tokio::test]
async fn the_event_a_command_produces_carries_its_metadata() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-meta").await;
    let resp = poll(e).await;
    let commands = vec![timer("t1", summary("nap")), activity("a1", summary("act")), timer("t2", None)];
    let first =
        RespondWorkflowTaskCompletedRequest { force_create_new_workflow_task: true, ..completion(resp.task_token.clone(), commands) };
    complete_workflow_task(e, &token_of(&resp), first).await.unwrap();

    // The worker cancels the activity before it starts: CancelRequested (the
    // command's event) gets the metadata, the Canceled event that follows does not.
    let resp = poll(e).await;
    let cancel = RequestCancelActivityTaskCommandAttributes { scheduled_event_id: 6 };
    let cancel =
        with_metadata(CommandType::RequestCancelActivityTask, Cmd::RequestCancelActivityTaskCommandAttributes(cancel), summary("stop"));
    let marker = RecordMarkerCommandAttributes { marker_name: "m".into(), ..Default::default() };
    let marker = with_metadata(CommandType::RecordMarker, Cmd::RecordMarkerCommandAttributes(marker), summary("mark"));
    complete_workflow_task(e, &token_of(&resp), completion(resp.task_token.clone(), vec![cancel, marker])).await.unwrap();

    let events = history(e, &run);
    let of =
        |t: EventType| events.iter().filter(move |ev| ev.event_type == t as i32).map(|ev| ev.user_metadata.clone()).collect::<Vec<_>>();
    assert_eq!(of(EventType::TimerStarted), vec![summary("nap"), None]);
    assert_eq!(of(EventType::ActivityTaskScheduled), vec![summary("act")]);
    assert_eq!(of(EventType::ActivityTaskCancelRequested), vec![summary("stop")]);
    assert_eq!(of(EventType::ActivityTaskCanceled), vec![None]);
    assert_eq!(of(EventType::MarkerRecorded), vec![summary("mark")]);
    for kind in [EventType::WorkflowTaskCompleted, EventType::WorkflowExecutionStarted, EventType::WorkflowTaskScheduled] {
        assert!(of(kind).iter().all(Option::is_none), "{kind:?} carries no metadata");
    }
    let written: i64 = events.iter().map(|ev| ev.encoded_len() as i64).sum();
    assert_eq!(state(e, &run).history_size_bytes, written, "the history size counts the metadata as written");
}

#[tokio::test]
async fn metadata_over_the_blob_limit_fails_the_task_and_terminates_the_run() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-meta-big").await;
    let resp = poll(e).await;
    let huge = "x".repeat(e.config().blob_bytes_max + 1);
    let refused = complete_workflow_task(e, &token_of(&resp), completion(resp.task_token.clone(), vec![timer("t", summary(&huge))])).await;
    let refused = refused.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");
    assert!(refused.to_string().contains("StartTimer.UserMetadata exceeds size limit."), "{refused}");
    let events = history(e, &run);
    assert!(!events.iter().any(|ev| ev.event_type == EventType::TimerStarted as i32), "nothing of the completion applies");
    let failed = events.iter().find_map(|ev| match &ev.attributes {
        Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => Some(a.cause),
        _ => None,
    });
    assert_eq!(failed, Some(WorkflowTaskFailedCause::BadStartTimerAttributes as i32));
    assert_eq!(state(e, &run).status, WorkflowExecutionStatus::Terminated as i32);
}
