//! Schedules (Temporal's Schedules API) against an in-process Hourglass server: raw
//! gRPC for the RPCs, the real Rust SDK worker for the workflows they start.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use hourglass_tests::TestServer;
use prost::Message;
use temporalio_client::grpc::WorkflowService;
use temporalio_client::tonic::{Code, IntoRequest};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_protos::protos::google::rpc::Status as RpcStatus;
use temporalio_protos::protos::temporal::api::common::v1::{WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::WorkflowExecutionStatus;
use temporalio_protos::protos::temporal::api::schedule::v1::schedule_action::Action;
use temporalio_protos::protos::temporal::api::schedule::v1::{
    IntervalSpec, Schedule, ScheduleAction, SchedulePatch, ScheduleSpec, ScheduleState, TriggerImmediatelyRequest,
};
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflow::v1::NewWorkflowExecutionInfo;
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use temporalio_sdk::{WorkerOptions, WorkflowContext, WorkflowResult};

use support::{unique, with_worker, within};

#[workflow]
#[derive(Default)]
pub struct Tick;

#[workflow_methods]
impl Tick {
    #[run]
    pub async fn run(_ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
        Ok("tick".to_string())
    }
}

fn every(secs: i64) -> ScheduleSpec {
    ScheduleSpec {
        interval: vec![IntervalSpec { interval: Some(prost_wkt_types::Duration { seconds: secs, nanos: 0 }), phase: None }],
        ..Default::default()
    }
}

fn schedule(spec: ScheduleSpec, task_queue: &str, paused: bool) -> Schedule {
    Schedule {
        spec: Some(spec),
        action: Some(ScheduleAction {
            action: Some(Action::StartWorkflow(NewWorkflowExecutionInfo {
                workflow_id: "scheduled".into(),
                workflow_type: Some(WorkflowType { name: "Tick".into() }),
                task_queue: Some(TaskQueue { name: task_queue.into(), ..Default::default() }),
                ..Default::default()
            })),
        }),
        policies: None,
        state: Some(ScheduleState { paused, notes: "created paused".into(), ..Default::default() }),
    }
}

fn create(id: &str, schedule: Schedule, request_id: &str) -> CreateScheduleRequest {
    CreateScheduleRequest {
        namespace: "default".into(),
        schedule_id: id.into(),
        schedule: Some(schedule),
        request_id: request_id.into(),
        identity: "e2e".into(),
        ..Default::default()
    }
}

fn describe(id: &str) -> DescribeScheduleRequest {
    DescribeScheduleRequest { namespace: "default".into(), schedule_id: id.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_schedule_is_already_exists_and_bad_input_is_refused() {
    let server = TestServer::start().await.expect("server starts");
    let mut svc = support::connect(&server).await.workflow_service();
    let id = unique("dup");
    let first = svc.create_schedule(create(&id, schedule(every(3600), "q", true), "r1").into_request()).await.expect("created");
    assert_eq!(first.into_inner().conflict_token, 1u64.to_be_bytes().to_vec());
    // The same request again is answered as the first; another is AlreadyExists with
    // the detail the Python SDK turns into ScheduleAlreadyRunningError.
    svc.create_schedule(create(&id, schedule(every(3600), "q", true), "r1").into_request()).await.expect("retried create");
    let err = svc.create_schedule(create(&id, schedule(every(3600), "q", true), "r2").into_request()).await.expect_err("duplicate");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(err.message(), format!("schedule {id:?} is already registered"));
    let status = RpcStatus::decode(err.details()).expect("status details");
    assert_eq!(status.details[0].type_url, "type.googleapis.com/temporal.api.errordetails.v1.WorkflowExecutionAlreadyStartedFailure");

    let d = svc.describe_schedule(describe(&id).into_request()).await.expect("described").into_inner();
    let s = d.schedule.unwrap();
    assert!(s.state.unwrap().paused);
    assert_eq!(s.policies.unwrap().catchup_window.unwrap().seconds, 365 * 24 * 3600);
    let info = d.info.unwrap();
    assert_eq!(info.future_action_times.len(), 10);
    assert_eq!(info.action_count, 0);

    // Bad input, codes as Temporal's server answers them.
    let bad = |id: &str, spec: ScheduleSpec| create(id, schedule(spec, "q", true), "rb");
    let cases = [
        (create("", schedule(every(60), "q", true), "r"), Code::InvalidArgument),
        (bad("b1", ScheduleSpec { cron_string: vec!["bad cron".into()], ..Default::default() }), Code::InvalidArgument),
        (bad("b2", every(0)), Code::InvalidArgument),
        (CreateScheduleRequest { namespace: "missing".into(), ..bad("b3", every(60)) }, Code::NotFound),
        (CreateScheduleRequest { namespace: String::new(), ..bad("b4", every(60)) }, Code::InvalidArgument),
        (create("b5", schedule(every(60), "", true), "r"), Code::InvalidArgument),
    ];
    for (request, code) in cases {
        let err = svc.create_schedule(request.clone().into_request()).await.expect_err("refused");
        assert_eq!(err.code(), code, "{request:?}: {err:?}");
    }
    let missing = svc.describe_schedule(describe("nope").into_request()).await.expect_err("no such schedule");
    assert_eq!(missing.code(), Code::NotFound);

    // List, then delete: gone from Describe and List; deleting again is NotFound.
    let listed = svc.list_schedules(ListSchedulesRequest { namespace: "default".into(), ..Default::default() }.into_request()).await;
    assert!(listed.unwrap().into_inner().schedules.iter().any(|e| e.schedule_id == id));
    let delete = DeleteScheduleRequest { namespace: "default".into(), schedule_id: id.clone(), identity: "e2e".into() };
    svc.delete_schedule(delete.clone().into_request()).await.expect("deleted");
    assert_eq!(svc.describe_schedule(describe(&id).into_request()).await.expect_err("deleted").code(), Code::NotFound);
    assert_eq!(svc.delete_schedule(delete.into_request()).await.expect_err("deleted twice").code(), Code::NotFound);
    // The id may be used again.
    svc.create_schedule(create(&id, schedule(every(3600), "q", true), "r3").into_request()).await.expect("created again");
}

async fn wait_for_actions(svc: &mut Box<dyn WorkflowService>, id: &str, count: i64) -> DescribeScheduleResponse {
    within("schedule actions", async {
        loop {
            let d = svc.describe_schedule(describe(id).into_request()).await.expect("described").into_inner();
            if d.info.as_ref().unwrap().action_count >= count {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_schedule_starts_workflows_a_worker_completes_until_paused() {
    let server = TestServer::start().await.expect("server starts");
    let client = support::client(&server, "default").await;
    let mut svc = client.connection().workflow_service();
    let task_queue = unique("sched");
    let id = unique("every-1s");
    let options = WorkerOptions::new(task_queue.as_str()).register_workflow::<Tick>().expect("registers").build();
    with_worker(&client, options, async {
        svc.create_schedule(create(&id, schedule(every(1), &task_queue, false), "r1").into_request()).await.expect("created");
        let d = wait_for_actions(&mut svc, &id, 2).await;
        let info = d.info.unwrap();
        assert!(info.recent_actions.len() >= 2);
        // Each started run is named <workflow id>-<nominal time> and completes.
        for action in &info.recent_actions[..2] {
            let execution = action.start_workflow_result.clone().unwrap();
            let nominal = action.schedule_time.unwrap();
            assert!(execution.workflow_id.starts_with("scheduled-"), "{execution:?}");
            assert!(execution.workflow_id.ends_with('Z'));
            assert_eq!(nominal.nanos, 0, "interval times are whole seconds");
            let status = within("scheduled run completes", async {
                loop {
                    let request = DescribeWorkflowExecutionRequest {
                        namespace: "default".into(),
                        execution: Some(WorkflowExecution { workflow_id: execution.workflow_id.clone(), run_id: execution.run_id.clone() }),
                    };
                    let d = svc.describe_workflow_execution(request.into_request()).await.expect("run described").into_inner();
                    let status = d.workflow_execution_info.unwrap().status;
                    if status != WorkflowExecutionStatus::Running as i32 {
                        return status;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await;
            assert_eq!(status, WorkflowExecutionStatus::Completed as i32);
        }
        assert!(!info.future_action_times.is_empty());

        // Paused: no more actions; a trigger still runs one.
        let pause = SchedulePatch { pause: "hold".into(), ..Default::default() };
        let patch = |patch: SchedulePatch| PatchScheduleRequest {
            namespace: "default".into(),
            schedule_id: id.clone(),
            patch: Some(patch),
            identity: "e2e".into(),
            request_id: unique("patch"),
        };
        svc.patch_schedule(patch(pause).into_request()).await.expect("paused");
        let paused = svc.describe_schedule(describe(&id).into_request()).await.unwrap().into_inner();
        let state = paused.schedule.unwrap().state.unwrap();
        assert!(state.paused);
        assert_eq!(state.notes, "hold");
        let count = paused.info.unwrap().action_count;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let later = svc.describe_schedule(describe(&id).into_request()).await.unwrap().into_inner();
        assert_eq!(later.info.unwrap().action_count, count, "a paused schedule does not fire");
        let trigger = SchedulePatch { trigger_immediately: Some(TriggerImmediatelyRequest::default()), ..Default::default() };
        svc.patch_schedule(patch(trigger).into_request()).await.expect("triggered");
        wait_for_actions(&mut svc, &id, count + 1).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_survives_a_restart_and_keeps_firing() {
    let mut server = TestServer::start().await.expect("server starts");
    let id = unique("durable");
    {
        let mut svc = support::connect(&server).await.workflow_service();
        svc.create_schedule(create(&id, schedule(every(1), "nobody-polls", false), "r1").into_request()).await.expect("created");
        wait_for_actions(&mut svc, &id, 1).await;
    }
    server.restart().await.expect("restarts");
    let mut svc = support::connect(&server).await.workflow_service();
    let before = svc.describe_schedule(describe(&id).into_request()).await.expect("still there").into_inner();
    let count = before.info.unwrap().action_count;
    assert!(count >= 1);
    // Nothing runs the workflows, and SKIP is the default: the schedule skips while
    // its last run is open, so it counts skips rather than actions.
    within("the schedule fires after the restart", async {
        loop {
            let d = svc.describe_schedule(describe(&id).into_request()).await.unwrap().into_inner();
            let info = d.info.unwrap();
            if info.overlap_skipped >= 1 {
                assert_eq!(info.running_workflows.len(), 1);
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}
