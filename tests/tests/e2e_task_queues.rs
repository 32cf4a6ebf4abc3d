//! The RPCs a user's tools call about task queues and workers, against an in-process
//! Hourglass server: `DescribeTaskQueue` (pollers, backlog, rates; legacy and
//! enhanced shapes, as Temporal's server answers them), `ShutdownWorker` (a worker's
//! polls end at once, its later polls too, other workers' polls go on), a real Rust
//! SDK worker stopping promptly (it waits for its polls: the namespace says
//! `worker_poll_complete_on_shutdown`), and the search attributes.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use hourglass_tests::TestServer;
use support::{unique, with_worker, within};
use temporalio_client::tonic::transport::Channel;
use temporalio_client::tonic::Request;
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_protos::protos::temporal::api::common::v1::{WorkerVersionCapabilities, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::{
    BuildIdTaskReachability, DescribeTaskQueueMode, IndexedValueType, TaskQueueKind, TaskQueueType,
};
use temporalio_protos::protos::temporal::api::operatorservice::v1::operator_service_client::OperatorServiceClient;
use temporalio_protos::protos::temporal::api::operatorservice::v1::ListSearchAttributesRequest;
use temporalio_protos::protos::temporal::api::taskqueue::v1::{
    PollerInfo, TaskQueue, TaskQueueMetadata, TaskQueueStats, TaskQueueTypeInfo,
};
use temporalio_protos::protos::temporal::api::workflowservice::v1::workflow_service_client::WorkflowServiceClient;
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use temporalio_sdk::{WorkerOptions, WorkflowContext, WorkflowResult};
use tokio::task::JoinHandle;

type Svc = WorkflowServiceClient<Channel>;

const NS: &str = "default";
const WORKFLOW: i32 = TaskQueueType::Workflow as i32;
const ACTIVITY: i32 = TaskQueueType::Activity as i32;
/// Long enough that a poll still running when checked is one that was not ended.
const LONG_POLL: Duration = Duration::from_secs(30);

async fn connect(server: &TestServer) -> Svc {
    WorkflowServiceClient::new(Channel::from_shared(server.url()).unwrap().connect().await.unwrap())
}

fn tq(name: &str) -> Option<TaskQueue> {
    Some(TaskQueue { name: name.into(), ..Default::default() })
}

fn with_timeout<T>(message: T, timeout: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(timeout);
    request
}

/// A raw workflow poll of worker `key` (identity `identity`), running in the background.
fn poll_workflow(svc: &Svc, queue: Option<TaskQueue>, identity: &str, key: &str) -> JoinHandle<PollWorkflowTaskQueueResponse> {
    let mut svc = svc.clone();
    #[allow(deprecated)]
    let request = PollWorkflowTaskQueueRequest {
        namespace: NS.into(),
        task_queue: queue,
        identity: identity.into(),
        worker_instance_key: key.into(),
        worker_version_capabilities: Some(WorkerVersionCapabilities { build_id: "build-1".into(), ..Default::default() }),
        ..Default::default()
    };
    tokio::spawn(async move { svc.poll_workflow_task_queue(with_timeout(request, LONG_POLL)).await.unwrap().into_inner() })
}

fn poll_activity(svc: &Svc, queue: &str, identity: &str, key: &str) -> JoinHandle<PollActivityTaskQueueResponse> {
    let mut svc = svc.clone();
    let request = PollActivityTaskQueueRequest {
        namespace: NS.into(),
        task_queue: tq(queue),
        identity: identity.into(),
        worker_instance_key: key.into(),
        task_queue_metadata: Some(TaskQueueMetadata { max_tasks_per_second: Some(7.0) }),
        ..Default::default()
    };
    tokio::spawn(async move { svc.poll_activity_task_queue(with_timeout(request, LONG_POLL)).await.unwrap().into_inner() })
}

#[allow(deprecated)] // api_mode, report_pollers: what the CLI and SDKs send
fn enhanced(queue: &str) -> DescribeTaskQueueRequest {
    DescribeTaskQueueRequest {
        namespace: NS.into(),
        task_queue: tq(queue),
        api_mode: DescribeTaskQueueMode::Enhanced as i32,
        report_pollers: true,
        report_stats: true,
        ..Default::default()
    }
}

#[allow(deprecated)]
fn legacy(queue: &str, task_queue_type: i32) -> DescribeTaskQueueRequest {
    DescribeTaskQueueRequest {
        namespace: NS.into(),
        task_queue: tq(queue),
        task_queue_type,
        include_task_queue_status: true,
        report_stats: true,
        ..Default::default()
    }
}

/// The enhanced answer's info for the unversioned queue of `task_queue_type`.
#[allow(deprecated)]
async fn type_info(svc: &mut Svc, queue: &str, task_queue_type: i32) -> TaskQueueTypeInfo {
    let described = svc.describe_task_queue(enhanced(queue)).await.unwrap().into_inner();
    assert_eq!(described.versions_info.keys().collect::<Vec<_>>(), [""], "only the unversioned queue");
    let info = &described.versions_info[""];
    assert_eq!(info.types_info.keys().copied().collect::<std::collections::BTreeSet<_>>(), [WORKFLOW, ACTIVITY].into());
    info.types_info[&task_queue_type].clone()
}

/// The pollers of `queue` (kind `task_queue_type`) once `expected` of them are seen.
async fn pollers_once(svc: &mut Svc, queue: &str, task_queue_type: i32, expected: usize) -> Vec<PollerInfo> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pollers = type_info(svc, queue, task_queue_type).await.pollers;
        if pollers.len() == expected || Instant::now() > deadline {
            assert_eq!(pollers.len(), expected, "pollers of {queue}: {pollers:?}");
            return pollers;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn start_request(queue: &str) -> StartWorkflowExecutionRequest {
    StartWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_id: unique("backlog"),
        workflow_type: Some(WorkflowType { name: "Backlogged".into() }),
        task_queue: tq(queue),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_task_queue_reports_pollers_in_both_shapes() {
    let server = TestServer::start().await.unwrap();
    let mut svc = connect(&server).await;
    let queue = unique("pollers");
    let wf_poll = poll_workflow(&svc, tq(&queue), "poller-1", "key-1");
    let act_poll = poll_activity(&svc, &queue, "poller-1", "key-1");
    let before_ms = chrono_ms() - 1_000;

    let wf = pollers_once(&mut svc, &queue, WORKFLOW, 1).await;
    assert_eq!(wf[0].identity, "poller-1");
    assert_eq!(wf[0].rate_per_second, 100_000.0, "no rate set: Temporal's default");
    #[allow(deprecated)]
    let build_id = wf[0].worker_version_capabilities.as_ref().map(|c| c.build_id.as_str());
    assert_eq!(build_id, Some("build-1"), "the poll's versioning is reported back");
    let seen_ms = wf[0].last_access_time.as_ref().map(|t| t.seconds * 1000).unwrap_or_default();
    assert!(seen_ms >= before_ms && seen_ms <= chrono_ms() + 1_000, "last access is the poll's start: {seen_ms}");
    let act = pollers_once(&mut svc, &queue, ACTIVITY, 1).await;
    assert_eq!(act[0].rate_per_second, 7.0, "the activity poll's max_tasks_per_second");

    // The legacy shape: one kind, with the status and the stats asked for.
    #[allow(deprecated)]
    {
        let legacy_wf = svc.describe_task_queue(legacy(&queue, WORKFLOW)).await.unwrap().into_inner();
        assert_eq!(legacy_wf.pollers, wf);
        assert_eq!(legacy_wf.task_queue_status.map(|s| s.backlog_count_hint), Some(0));
        let versioning = legacy_wf.versioning_info.unwrap();
        assert_eq!(versioning.current_version, "__unversioned__", "as Temporal reports an unversioned queue");
        assert_eq!(versioning.update_time.map(|t| t.seconds), Some(-62_135_596_800), "Go's zero time");
        assert!(legacy_wf.versions_info.is_empty());
        let unspecified = svc.describe_task_queue(legacy(&queue, 0)).await.unwrap().into_inner();
        assert_eq!(unspecified.pollers, wf, "an unspecified type is the workflow type");
        let partition =
            svc.describe_task_queue(DescribeTaskQueueRequest { report_stats: false, ..legacy(&format!("/_sys/{queue}/1"), WORKFLOW) });
        assert!(partition.await.unwrap().into_inner().pollers.is_empty(), "one partition per queue: the others are empty");
    }

    // Enhanced with reachability, and a build id no worker has.
    #[allow(deprecated)]
    {
        let request = DescribeTaskQueueRequest {
            report_task_reachability: true,
            versions: Some(temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueueVersionSelection {
                build_ids: vec!["other".into()],
                unversioned: true,
                all_active: false,
            }),
            task_queue_types: vec![WORKFLOW],
            ..enhanced(&queue)
        };
        let described = svc.describe_task_queue(request).await.unwrap().into_inner();
        let unversioned = &described.versions_info[""];
        assert_eq!(unversioned.task_reachability, BuildIdTaskReachability::Reachable as i32);
        assert_eq!(unversioned.types_info[&WORKFLOW].pollers.len(), 1);
        let other = &described.versions_info["other"];
        assert_eq!(other.task_reachability, BuildIdTaskReachability::Unreachable as i32);
        assert!(other.types_info[&WORKFLOW].pollers.is_empty(), "every Hourglass poller is unversioned");
        assert_eq!(other.types_info.len(), 1, "only the type asked for");
    }

    // A worker's shutdown ends its polls and forgets it.
    let mut svc2 = svc.clone();
    let shutdown = ShutdownWorkerRequest {
        namespace: NS.into(),
        identity: "poller-1".into(),
        worker_instance_key: "key-1".into(),
        task_queue: queue.clone(),
        ..Default::default()
    };
    svc2.shutdown_worker(shutdown).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), async { (wf_poll.await.unwrap(), act_poll.await.unwrap()) }).await;
    let (wf_answer, act_answer) = ended.expect("both polls ended at once");
    assert_eq!((wf_answer, act_answer), Default::default(), "empty, as at a poll's deadline");
    assert!(type_info(&mut svc, &queue, WORKFLOW).await.pollers.is_empty(), "the worker is no longer reported");
    assert!(type_info(&mut svc, &queue, ACTIVITY).await.pollers.is_empty());
}

/// Milliseconds since the epoch, now.
fn chrono_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_task_queue_reports_the_backlog_across_shards() {
    let server = TestServer::start().await.unwrap();
    let mut svc = connect(&server).await;
    let queue = unique("backlog");
    let empty = type_info(&mut svc, &queue, WORKFLOW).await.stats.unwrap();
    assert_eq!(empty, TaskQueueStats { approximate_backlog_age: Some(Default::default()), ..Default::default() }, "nothing: zero age");
    // Workflows of different ids land on different shards; no worker takes them.
    for _ in 0..6 {
        svc.start_workflow_execution(start_request(&queue)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = type_info(&mut svc, &queue, WORKFLOW).await.stats.unwrap();
    assert_eq!(stats.approximate_backlog_count, 6);
    let age = stats.approximate_backlog_age.unwrap();
    assert!(age.seconds > 0 || age.nanos >= 250_000_000, "the oldest task waited since it was scheduled: {age:?}");
    assert!(stats.tasks_add_rate > 0.0, "six tasks were added: {stats:?}");
    assert_eq!(stats.tasks_dispatch_rate, 0.0, "none handed out");
    assert_eq!(type_info(&mut svc, &queue, ACTIVITY).await.stats.unwrap().approximate_backlog_count, 0, "no activity task");

    #[allow(deprecated)]
    {
        let legacy = svc.describe_task_queue(legacy(&queue, WORKFLOW)).await.unwrap().into_inner();
        assert_eq!(legacy.task_queue_status.map(|s| s.backlog_count_hint), Some(6));
        let stats = legacy.stats.unwrap();
        assert_eq!(stats.approximate_backlog_count, 6);
        assert_eq!(legacy.stats_by_priority_key.get(&3), Some(&stats), "all under the default priority key");
    }

    // Handing a task out shows in the dispatch rate, and the backlog shrinks once started.
    let mut polled = svc.clone();
    let poll =
        PollWorkflowTaskQueueRequest { namespace: NS.into(), task_queue: tq(&queue), identity: "taker".into(), ..Default::default() };
    let task = polled.poll_workflow_task_queue(with_timeout(poll, LONG_POLL)).await.unwrap().into_inner();
    assert!(!task.task_token.is_empty(), "a task was ready");
    let stats = type_info(&mut svc, &queue, WORKFLOW).await.stats.unwrap();
    assert_eq!(stats.approximate_backlog_count, 5);
    assert!(stats.tasks_dispatch_rate > 0.0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_worker_ends_that_workers_polls_only() {
    let server = TestServer::start().await.unwrap();
    let mut svc = connect(&server).await;
    let queue = unique("shutdown");
    let sticky = unique("sticky");
    let stopping = poll_workflow(&svc, tq(&queue), "stopping", "key-stop");
    let stopping_sticky = poll_workflow(
        &svc,
        Some(TaskQueue { name: sticky.clone(), kind: TaskQueueKind::Sticky as i32, normal_name: queue.clone() }),
        "stopping",
        "key-stop",
    );
    let staying = poll_workflow(&svc, tq(&queue), "staying", "key-stay");
    pollers_once(&mut svc, &queue, WORKFLOW, 2).await;

    let started = Instant::now();
    let request = ShutdownWorkerRequest {
        namespace: NS.into(),
        sticky_task_queue: sticky.clone(),
        identity: "stopping".into(),
        reason: "graceful shutdown".into(),
        worker_instance_key: "key-stop".into(),
        task_queue: queue.clone(),
        task_queue_types: vec![WORKFLOW],
        ..Default::default()
    };
    svc.shutdown_worker(request).await.unwrap();
    let answers = within("the stopping worker's polls", async { (stopping.await.unwrap(), stopping_sticky.await.unwrap()) }).await;
    assert_eq!(answers, Default::default(), "both answered empty");
    assert!(started.elapsed() < Duration::from_secs(5), "at once, not at their deadline: {:?}", started.elapsed());

    // A poll the stopping worker sends after its shutdown answers at once too.
    let late = within("a late poll", poll_workflow(&svc, tq(&queue), "stopping", "key-stop")).await.unwrap();
    assert_eq!(late, Default::default());

    // The other worker still polls, and gets the next task.
    assert!(!staying.is_finished(), "another worker's poll goes on");
    svc.start_workflow_execution(start_request(&queue)).await.unwrap();
    let task = within("the staying worker's task", staying).await.unwrap();
    assert!(!task.task_token.is_empty(), "the new task went to the worker still polling");
    let pollers: Vec<String> = pollers_once(&mut svc, &queue, WORKFLOW, 1).await.into_iter().map(|p| p.identity).collect();
    assert_eq!(pollers, ["staying"]);
}

// ----------------------------------------------------------- a real SDK worker

#[workflow]
#[derive(Default)]
pub struct Quick;

#[workflow_methods]
impl Quick {
    #[run]
    pub async fn run(_ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
        Ok("done".to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_worker_is_described_while_it_polls_and_stops_promptly() {
    let server = TestServer::start().await.unwrap();
    let client = support::client(&server, NS).await;
    let mut svc = connect(&server).await;
    let queue = unique("sdk");
    let options = WorkerOptions::new(&queue).register_workflow::<Quick>().expect("registers").build();
    let body_done = with_worker(&client, options, async {
        let handle = client.start_workflow(Quick::run, (), WorkflowStartOptions::new(&queue, unique("quick")).build()).await.unwrap();
        let result = within("result", handle.get_result(WorkflowGetResultOptions::default())).await.unwrap();
        assert_eq!(result, "done");
        let wf = pollers_once(&mut svc, &queue, WORKFLOW, 1).await;
        assert!(!wf[0].identity.is_empty(), "the SDK worker polls with its identity");
        Instant::now()
    })
    .await;
    // The worker waited for its polls to end (the namespace advertises
    // worker_poll_complete_on_shutdown): ShutdownWorker ended them at once.
    assert!(body_done.elapsed() < Duration::from_secs(10), "the worker stopped in {:?}", body_done.elapsed());
    assert!(type_info(&mut svc, &queue, WORKFLOW).await.pollers.is_empty(), "a stopped worker is not reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_attributes_are_those_of_temporals_dev_server() {
    let server = TestServer::start().await.unwrap();
    let mut svc = connect(&server).await;
    let keys = svc.get_search_attributes(GetSearchAttributesRequest::default()).await.unwrap().into_inner().keys;
    assert_eq!(keys.len(), 61, "33 system attributes and 28 custom slots");
    assert_eq!(keys.get("WorkflowType"), Some(&(IndexedValueType::Keyword as i32)));
    assert_eq!(keys.get("CloseTime"), Some(&(IndexedValueType::Datetime as i32)));
    assert_eq!(keys.get("Double02"), Some(&(IndexedValueType::Double as i32)));
    let channel = Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let listed = OperatorServiceClient::new(channel)
        .list_search_attributes(ListSearchAttributesRequest { namespace: NS.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.system_attributes.len(), 33);
    assert!(listed.system_attributes.iter().all(|(k, v)| keys.get(k) == Some(v)), "the same system attributes");
    assert!(listed.custom_attributes.is_empty() && listed.storage_schema.is_empty());
}
