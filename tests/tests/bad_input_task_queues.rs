//! Bad input to the RPCs a user's tools call about task queues and workers:
//! `DescribeTaskQueue` (legacy and enhanced modes), `ShutdownWorker`,
//! `GetSearchAttributes` and the OperatorService's `ListSearchAttributes`, sent with a
//! raw generated client to an in-process Hourglass server (the harness of
//! `bad_input.rs`: exact codes, the server healthy after every case).
//!
//! Expected codes are those of Temporal's reference server (CLI 1.9.1 / server
//! 1.32.0, `temporal server start-dev`), probed with the same requests; its messages
//! are checked where Hourglass words them the same.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[macro_use]
#[path = "bad_input/harness.rs"]
#[allow(dead_code)] // this file uses a part of the harness
mod harness;

use harness::*;
use temporalio_client::tonic::transport::Channel;
use temporalio_client::tonic::Code;
use temporalio_protos::protos::temporal::api::enums::v1::{DescribeTaskQueueMode, TaskQueueKind, TaskQueueType};
use temporalio_protos::protos::temporal::api::operatorservice::v1::operator_service_client::OperatorServiceClient;
use temporalio_protos::protos::temporal::api::operatorservice::v1::ListSearchAttributesRequest;
use temporalio_protos::protos::temporal::api::taskqueue::v1::{TaskQueue, TaskQueueVersionSelection};
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;

const INVALID: Code = Code::InvalidArgument;
const NOT_FOUND: Code = Code::NotFound;
const OK: Code = Code::Ok;
const ENHANCED: i32 = DescribeTaskQueueMode::Enhanced as i32;

fn describe(name: &str) -> DescribeTaskQueueRequest {
    DescribeTaskQueueRequest { namespace: NS.into(), task_queue: tq(name), ..Default::default() }
}

fn queue(name: &str, kind: TaskQueueKind) -> Option<TaskQueue> {
    Some(TaskQueue { name: name.into(), kind: kind as i32, ..Default::default() })
}

#[allow(deprecated)] // api_mode, task_queue_types, versions...: what the CLI still sends
fn enhanced(name: &str) -> DescribeTaskQueueRequest {
    DescribeTaskQueueRequest { api_mode: ENHANCED, ..describe(name) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)]
async fn describe_task_queue_refuses_what_temporal_refuses() {
    let mut env = Env::start().await;
    let long = "a".repeat(1001);
    let just = "a".repeat(1000);
    for (input, code, request) in [
        ("missing namespace", INVALID, DescribeTaskQueueRequest { namespace: String::new(), ..describe("x") }),
        ("unknown namespace", NOT_FOUND, DescribeTaskQueueRequest { namespace: UNKNOWN_NS.into(), ..describe("x") }),
        ("no task queue", INVALID, DescribeTaskQueueRequest { task_queue: None, ..describe("x") }),
        ("empty task queue name", INVALID, describe("")),
        ("task queue name over 1000 bytes", INVALID, describe(&long)),
        ("enhanced: no task queue", INVALID, DescribeTaskQueueRequest { task_queue: None, ..enhanced("x") }),
        ("enhanced: empty task queue name", INVALID, enhanced("")),
        ("enhanced: task queue name over 1000 bytes", INVALID, enhanced(&long)),
        ("enhanced: a sticky queue", INVALID, DescribeTaskQueueRequest { task_queue: queue("x", TaskQueueKind::Sticky), ..enhanced("x") }),
        ("enhanced: a partition's name (reserved prefix)", INVALID, enhanced("/_sys/x/1")),
        (
            "enhanced: reachability of 6 build ids (limit 5)",
            INVALID,
            DescribeTaskQueueRequest {
                report_task_reachability: true,
                versions: Some(TaskQueueVersionSelection { build_ids: (0..6).map(|i| format!("b{i}")).collect(), ..Default::default() }),
                ..enhanced("x")
            },
        ),
        ("legacy: not a partition name (/_sys/x)", INVALID, describe("/_sys/x")),
        ("legacy: partition 0 is the root's name, not /_sys/x/0", INVALID, describe("/_sys/x/0")),
        ("legacy: stats of a non-root partition", INVALID, DescribeTaskQueueRequest { report_stats: true, ..describe("/_sys/x/1") }),
        // Accepted by Temporal, so here too.
        ("task queue name of 1000 bytes", OK, describe(&just)),
        ("a blank task queue name", OK, describe("   ")),
        ("legacy: a partition", OK, describe("/_sys/x/1")),
        ("legacy: a sticky queue", OK, DescribeTaskQueueRequest { task_queue: queue("x", TaskQueueKind::Sticky), ..describe("x") }),
        (
            "legacy: unknown queue kind 9",
            OK,
            DescribeTaskQueueRequest { task_queue: Some(TaskQueue { name: "x".into(), kind: 9, ..Default::default() }), ..describe("x") },
        ),
        ("legacy: unknown task queue type 99", OK, DescribeTaskQueueRequest { task_queue_type: 99, ..describe("x") }),
        ("legacy: the nexus type", OK, DescribeTaskQueueRequest { task_queue_type: TaskQueueType::Nexus as i32, ..describe("x") }),
        ("unknown api mode 7 (legacy)", OK, DescribeTaskQueueRequest { api_mode: 7, ..describe("x") }),
        ("enhanced: unknown task queue type 99", OK, DescribeTaskQueueRequest { task_queue_types: vec![99], ..enhanced("x") }),
        (
            "enhanced: reachability of the default build id",
            OK,
            DescribeTaskQueueRequest { report_task_reachability: true, ..enhanced("x") },
        ),
        ("report_config (legacy)", OK, DescribeTaskQueueRequest { report_config: true, ..describe("x") }),
    ] {
        call!(env, describe_task_queue, input, code, request);
    }
    env.finish("DescribeTaskQueue").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_worker_and_search_attributes_refuse_only_a_bad_namespace() {
    let mut env = Env::start().await;
    for (input, code, request) in [
        ("missing namespace", INVALID, ShutdownWorkerRequest::default()),
        ("unknown namespace", NOT_FOUND, ShutdownWorkerRequest { namespace: UNKNOWN_NS.into(), ..Default::default() }),
        // Temporal accepts the rest as they come.
        ("nothing but the namespace", OK, ShutdownWorkerRequest { namespace: NS.into(), ..Default::default() }),
        (
            "a sticky queue that does not exist",
            OK,
            ShutdownWorkerRequest { namespace: NS.into(), sticky_task_queue: "no-such-sticky".into(), ..Default::default() },
        ),
        (
            "a sticky queue name over 1000 bytes",
            OK,
            ShutdownWorkerRequest { namespace: NS.into(), sticky_task_queue: "s".repeat(1001), ..Default::default() },
        ),
        (
            "unknown task queue type 99",
            OK,
            ShutdownWorkerRequest {
                namespace: NS.into(),
                worker_instance_key: "k".into(),
                task_queue: "x".into(),
                task_queue_types: vec![99],
                ..Default::default()
            },
        ),
    ] {
        call!(env, shutdown_worker, input, code, request);
    }
    call!(env, get_search_attributes, "no fields (nothing to get wrong)", OK, GetSearchAttributesRequest::default());

    // The OperatorService's ListSearchAttributes, on the same port.
    let channel = Channel::from_shared(env.server.url()).unwrap().connect().await.unwrap();
    let mut operator = OperatorServiceClient::new(channel);
    for (input, code, namespace) in
        [("missing namespace", INVALID, ""), ("unknown namespace", NOT_FOUND, UNKNOWN_NS), ("the default namespace", OK, NS)]
    {
        let result = operator.list_search_attributes(req(ListSearchAttributesRequest { namespace: namespace.into() })).await;
        if code == INVALID {
            assert_eq!(result.as_ref().map_err(|s| s.message()).err(), Some("Namespace is not set on request."), "Temporal's message");
        }
        env.check("list_search_attributes", input, code, result).await;
    }
    env.finish("ShutdownWorker, GetSearchAttributes, ListSearchAttributes").await;
}
