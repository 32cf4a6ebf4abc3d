//! What the server keeps and hands back, run end to end by the real Temporal Rust SDK
//! against an in-process Hourglass server: the user metadata (summary, details) of a
//! start, a timer, an activity and a child on their events and in Describe (the
//! child's own Started event and Describe too; an update-with-start's too), run ids
//! as UUIDv7, and `suggest_continue_as_new` once a history passes a configured length.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use hourglass_service::engine::EngineConfig;
use hourglass_tests::TestServer;
use support::{full_history, unique, with_worker, within};
use temporalio_client::tonic::IntoRequest;
use temporalio_client::{
    Client, WorkflowDescribeOptions, WorkflowGetResultOptions, WorkflowIdConflictPolicy, WorkflowStartOptions,
    WorkflowUpdateWithStartOptions,
};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_protos::protos::temporal::api::common::v1::{Payload, WorkflowExecution};
use temporalio_protos::protos::temporal::api::enums::v1::{EventType, SuggestContinueAsNewReason};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::protos::temporal::api::sdk::v1::UserMetadata;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{DescribeWorkflowExecutionRequest, DescribeWorkflowExecutionResponse};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{
    ActivityOptions, ApplicationFailure, ChildWorkflowOptions, ContinueAsNewOptions, SyncWorkflowContext, TimerOptions, WorkerOptions,
    WorkflowContext, WorkflowResult,
};

const NS: &str = "default";

pub struct Echo;

#[activities]
impl Echo {
    #[activity]
    pub async fn echo(_ctx: ActivityContext, text: String) -> Result<String, ActivityError> {
        Ok(text)
    }
}

#[workflow]
#[derive(Default)]
pub struct Kid;

#[workflow_methods]
impl Kid {
    #[run]
    pub async fn run(_ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
        Ok("kid".to_string())
    }
}

/// A timer, an activity and a child, each with a summary (the child also details).
#[workflow]
#[derive(Default)]
pub struct Annotated;

#[workflow_methods]
impl Annotated {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
        ctx.timer(TimerOptions::builder(Duration::from_millis(10)).summary("nap summary".to_string()).build()).await;
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10)).summary("act summary".to_string()).build();
        let echoed = ctx.execute_activity(Echo::echo, "hi".to_string(), options).await?;
        let child_options = ChildWorkflowOptions::builder()
            .workflow_id(format!("{}-kid", ctx.info().workflow_id()))
            .static_summary("kid summary".to_string())
            .static_details("kid details".to_string())
            .build();
        let kid = ctx.start_child_workflow(Kid::run, (), child_options).await?;
        Ok(format!("{echoed} {}", kid.result().await?))
    }
}

/// Sleeps 1 ms at a time until the server suggests continue-as-new, then continues
/// as new once (`run` 0) or returns how many timers the second run took.
#[workflow]
#[derive(Default)]
pub struct Grower;

/// A bound on the timers of one run, so a server that never suggests fails the test.
const TIMERS_MAX: u32 = 200;

#[workflow_methods]
impl Grower {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, run: u32) -> WorkflowResult<u32> {
        let mut timers = 0;
        while !ctx.continue_as_new_suggested() {
            if timers == TIMERS_MAX {
                return Err(ApplicationFailure::non_retryable(format!("no continue-as-new suggested after {TIMERS_MAX} timers")).into());
            }
            ctx.timer(Duration::from_millis(1)).await;
            timers += 1;
        }
        if run == 0 {
            ctx.continue_as_new(1, ContinueAsNewOptions::default())?;
        }
        Ok(timers)
    }
}

/// Completes once its `open` update ran.
#[workflow]
#[derive(Default)]
pub struct Gate {
    open: bool,
}

#[workflow_methods]
impl Gate {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<()> {
        ctx.wait_condition(|s| s.open).await?;
        Ok(())
    }

    #[update]
    pub fn open(&mut self, _ctx: &mut SyncWorkflowContext<Self>) -> bool {
        self.open = true;
        true
    }
}

fn worker_options(task_queue: &str) -> WorkerOptions {
    WorkerOptions::new(task_queue)
        .register_activities(Echo)
        .register_workflow::<Annotated>()
        .expect("workflow registers")
        .register_workflow::<Kid>()
        .expect("workflow registers")
        .register_workflow::<Grower>()
        .expect("workflow registers")
        .register_workflow::<Gate>()
        .expect("workflow registers")
        .build()
}

/// The JSON payload the SDKs write for a string.
fn text(payload: Option<&Payload>) -> Option<String> {
    let payload = payload?;
    assert_eq!(payload.metadata.get("encoding").map(Vec::as_slice), Some(&b"json/plain"[..]), "{payload:?}");
    Some(String::from_utf8(payload.data.clone()).unwrap().trim_matches('"').to_string())
}

/// (summary, details) as text.
fn texts(metadata: Option<&UserMetadata>) -> (Option<String>, Option<String>) {
    (text(metadata.and_then(|m| m.summary.as_ref())), text(metadata.and_then(|m| m.details.as_ref())))
}

fn some(summary: &str, details: Option<&str>) -> (Option<String>, Option<String>) {
    (Some(summary.to_string()), details.map(str::to_string))
}

fn only(events: &[HistoryEvent], kind: EventType) -> &HistoryEvent {
    let mut of_kind = events.iter().filter(|e| e.event_type() == kind);
    let event = of_kind.next().unwrap_or_else(|| panic!("no {kind:?} in history"));
    assert!(of_kind.next().is_none(), "more than one {kind:?}");
    event
}

async fn describe(client: &Client, workflow_id: &str) -> DescribeWorkflowExecutionResponse {
    let request = DescribeWorkflowExecutionRequest {
        namespace: NS.into(),
        execution: Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: String::new() }),
    };
    client.connection().workflow_service().describe_workflow_execution(request.into_request()).await.expect("describe").into_inner()
}

/// A UUIDv7: the version nibble (the first of the third group) is 7.
fn assert_v7(run_id: &str) {
    let id = uuid::Uuid::parse_str(run_id).unwrap_or_else(|e| panic!("run id {run_id:?} is not a UUID: {e}"));
    assert_eq!(id.get_version_num(), 7, "run id {run_id} is not a UUIDv7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_and_details_are_kept_on_events_and_described() {
    let server = TestServer::start().await.expect("server starts");
    let client = support::client(&server, NS).await;
    let tq = unique("meta");
    let workflow_id = unique("annotated");
    let start = WorkflowStartOptions::new(&tq, &workflow_id)
        .static_summary("start summary".to_string())
        .static_details("start details".to_string())
        .build();
    let (result, description) = with_worker(&client, worker_options(&tq), async {
        let handle = client.start_workflow(Annotated::run, (), start).await.expect("start");
        let result = within("result", handle.get_result(WorkflowGetResultOptions::default())).await.expect("completes");
        let description = handle.describe(WorkflowDescribeOptions::default()).await.expect("describe");
        (result, description)
    })
    .await;
    assert_eq!(result, "hi kid");
    // The SDK's own reading of Describe.
    assert_eq!((description.static_summary(), description.static_details()), (Some("start summary"), Some("start details")));

    let events = full_history(&client, NS, &workflow_id, "").await.expect("history");
    assert_eq!(
        texts(only(&events, EventType::WorkflowExecutionStarted).user_metadata.as_ref()),
        some("start summary", Some("start details"))
    );
    assert_eq!(texts(only(&events, EventType::TimerStarted).user_metadata.as_ref()), some("nap summary", None));
    assert_eq!(texts(only(&events, EventType::ActivityTaskScheduled).user_metadata.as_ref()), some("act summary", None));
    let initiated = only(&events, EventType::StartChildWorkflowExecutionInitiated);
    assert_eq!(texts(initiated.user_metadata.as_ref()), some("kid summary", Some("kid details")));
    let carriers = [
        EventType::WorkflowExecutionStarted,
        EventType::TimerStarted,
        EventType::ActivityTaskScheduled,
        EventType::StartChildWorkflowExecutionInitiated,
    ];
    for e in events.iter().filter(|e| !carriers.contains(&e.event_type())) {
        assert_eq!(e.user_metadata, None, "event {} {:?} carries no metadata", e.event_id, e.event_type());
    }
    let config = describe(&client, &workflow_id).await.execution_config.expect("execution config");
    assert_eq!(texts(config.user_metadata.as_ref()), some("start summary", Some("start details")));

    // The child: its Started event and Describe show the metadata of the parent's command.
    let kid_id = format!("{workflow_id}-kid");
    let kid_events = full_history(&client, NS, &kid_id, "").await.expect("child history");
    assert_eq!(texts(kid_events[0].user_metadata.as_ref()), some("kid summary", Some("kid details")));
    let kid_config = describe(&client, &kid_id).await.execution_config.expect("execution config");
    assert_eq!(texts(kid_config.user_metadata.as_ref()), some("kid summary", Some("kid details")));

    // Run ids are UUIDv7, the parent's and the child's.
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) = &events[0].attributes else { panic!("{:?}", events[0]) };
    assert_v7(&started.original_execution_run_id);
    let Some(Attributes::ChildWorkflowExecutionStartedEventAttributes(kid)) =
        &only(&events, EventType::ChildWorkflowExecutionStarted).attributes
    else {
        panic!("no child started attributes")
    };
    assert_v7(&kid.workflow_execution.as_ref().unwrap().run_id);
}

/// Update-with-start (`ExecuteMultiOperation`): the start's metadata is kept as a
/// plain start's is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_with_start_keeps_the_starts_metadata() {
    let server = TestServer::start().await.expect("server starts");
    let client = support::client(&server, NS).await;
    let tq = unique("uws-meta");
    let workflow_id = unique("gate");
    let options = WorkflowUpdateWithStartOptions::new(tq.clone(), workflow_id.clone(), WorkflowIdConflictPolicy::UseExisting)
        .static_summary("uws summary".to_string())
        .static_details("uws details".to_string())
        .build();
    with_worker(&client, worker_options(&tq), async {
        let opened = client.execute_update_with_start_workflow(Gate::run, (), Gate::open, (), options);
        assert!(within("update-with-start", opened).await.expect("starts and updates"));
        let handle = client.get_workflow_handle::<Gate>(&workflow_id);
        within("result", handle.get_result(WorkflowGetResultOptions::default())).await.expect("completes");
    })
    .await;
    let events = full_history(&client, NS, &workflow_id, "").await.expect("history");
    assert_eq!(texts(events[0].user_metadata.as_ref()), some("uws summary", Some("uws details")));
    let config = describe(&client, &workflow_id).await.execution_config.expect("execution config");
    assert_eq!(texts(config.user_metadata.as_ref()), some("uws summary", Some("uws details")));
}

/// The WorkflowTaskStarted events of `events`: (event id, suggested, reasons).
fn suggestions(events: &[HistoryEvent]) -> Vec<(i64, bool, Vec<i32>)> {
    events
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::WorkflowTaskStartedEventAttributes(a)) => {
                Some((e.event_id, a.suggest_continue_as_new, a.suggest_continue_as_new_reasons.clone()))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_past_the_configured_length_is_suggested_to_continue_as_new() {
    const EVENTS_LIMIT: i64 = 20;
    let engine = EngineConfig { suggest_continue_as_new_history_events: EVENTS_LIMIT, ..EngineConfig::default() };
    let server = TestServer::start_with(engine).await.expect("server starts");
    let client = support::client(&server, NS).await;
    let tq = unique("grow");
    let workflow_id = unique("grower");
    let start = WorkflowStartOptions::new(&tq, &workflow_id).build();
    let (first_run, timers) = with_worker(&client, worker_options(&tq), async {
        let handle = client.start_workflow(Grower::run, 0, start).await.expect("start");
        let first_run = handle.info().run_id.clone().expect("the started run");
        let timers = within("result", handle.get_result(WorkflowGetResultOptions::default())).await.expect("completes");
        (first_run, timers)
    })
    .await;
    assert_v7(&first_run);
    assert!(timers > 0 && timers < TIMERS_MAX, "the second run slept {timers} times before the suggestion");

    let first = full_history(&client, NS, &workflow_id, &first_run).await.expect("first run's history");
    let started = suggestions(&first);
    let reason = vec![SuggestContinueAsNewReason::TooManyHistoryEvents as i32];
    for (event_id, suggested, reasons) in &started {
        // Temporal's rule: the Started event's own id reaches the limit.
        let expected = *event_id >= EVENTS_LIMIT;
        assert_eq!(*suggested, expected, "WorkflowTaskStarted {event_id}: suggested {suggested}");
        assert_eq!(reasons, &if expected { reason.clone() } else { Vec::new() }, "WorkflowTaskStarted {event_id}");
    }
    assert!(started.last().unwrap().1, "the last task of the first run was told to continue as new");
    let close = first.last().unwrap();
    let Some(Attributes::WorkflowExecutionContinuedAsNewEventAttributes(can)) = &close.attributes else { panic!("{close:?}") };
    assert_v7(&can.new_execution_run_id);
    let second = full_history(&client, NS, &workflow_id, &can.new_execution_run_id).await.expect("second run's history");
    assert_eq!(second.last().unwrap().event_type(), EventType::WorkflowExecutionCompleted);
    assert!(suggestions(&second).last().unwrap().1, "the second run was told too");
    assert_eq!(second[0].user_metadata, None, "a continued run has no start metadata");
}
