//! `DescribeTaskQueue` and `ShutdownWorker` on a three-node cluster (three servers in
//! this process, on loopback): a task queue's polls are served by the node leading
//! its home shard, wherever they arrive, so a describe sent to any node reports the
//! pollers that node's peers took in, and a worker's shutdown sent to any node ends
//! its polls wherever they wait.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hourglass_tests::in_process_cluster::{eventually, InProcessCluster};
use temporalio_client::tonic::transport::Channel;
use temporalio_client::tonic::Request;
use temporalio_protos::protos::temporal::api::enums::v1::{DescribeTaskQueueMode, TaskQueueType};
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflowservice::v1::workflow_service_client::WorkflowServiceClient;
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;

type Svc = WorkflowServiceClient<Channel>;

const NODES: u64 = 3;
const NS: &str = "default";
/// Task queues tried: their homes fall on different nodes.
const QUEUES: usize = 6;

/// A gRPC client of node index `node` (0-based).
async fn client(cluster: &InProcessCluster, node: usize) -> Svc {
    WorkflowServiceClient::new(Channel::from_shared(cluster.url(node)).unwrap().connect().await.unwrap())
}

fn tq(name: &str) -> Option<TaskQueue> {
    Some(TaskQueue { name: name.into(), ..Default::default() })
}

/// The pollers of `queue`'s workflow kind as `svc`'s node reports them (enhanced).
#[allow(deprecated)]
async fn pollers(svc: &mut Svc, queue: &str) -> Result<Vec<String>, String> {
    let request = DescribeTaskQueueRequest {
        namespace: NS.into(),
        task_queue: tq(queue),
        api_mode: DescribeTaskQueueMode::Enhanced as i32,
        report_pollers: true,
        ..Default::default()
    };
    let described = svc.describe_task_queue(request).await.map_err(|s| s.to_string())?.into_inner();
    let info = described.versions_info.get("").and_then(|v| v.types_info.get(&(TaskQueueType::Workflow as i32)));
    Ok(info.map(|i| i.pollers.iter().map(|p| p.identity.clone()).collect()).unwrap_or_default())
}

/// Polls `queue` as `identity` of worker "cluster-worker" until a poll answers after
/// `shutting_down` is set (or hands out a task); returns that answer.
async fn poll_until_shutdown(
    mut svc: Svc,
    queue: String,
    identity: String,
    shutting_down: Arc<AtomicBool>,
) -> Result<PollWorkflowTaskQueueResponse, temporalio_client::tonic::Status> {
    loop {
        let mut request = Request::new(PollWorkflowTaskQueueRequest {
            namespace: NS.into(),
            task_queue: tq(&queue),
            identity: identity.clone(),
            worker_instance_key: "cluster-worker".into(),
            ..Default::default()
        });
        request.set_timeout(Duration::from_secs(40));
        let answer = svc.poll_workflow_task_queue(request).await.map(|r| r.into_inner());
        if shutting_down.load(Ordering::SeqCst) {
            return answer;
        }
        match answer {
            Ok(a) if a != PollWorkflowTaskQueueResponse::default() => return Ok(a),
            Ok(_) => {}
            // A node between leaders answers Unavailable: an SDK retries.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_describes_the_pollers_and_ends_a_stopping_workers_polls() {
    let cluster = InProcessCluster::start(NODES, "hourglass-tq-cluster-").await.expect("the nodes start");
    let mut clients = Vec::new();
    for node in 0..NODES as usize {
        clients.push(client(&cluster, node).await);
    }
    // Every node serves once the shards have leaders.
    for svc in &clients {
        let describe = || {
            let mut svc = svc.clone();
            async move {
                svc.describe_namespace(DescribeNamespaceRequest { namespace: NS.into(), ..Default::default() })
                    .await
                    .map_err(|s| s.to_string())
            }
        };
        eventually("the cluster serves", describe, |_| true).await;
    }

    // One worker polls each queue through node 1. Like an SDK worker it polls again
    // when a poll answers empty before the shutdown (the queue's home moved while the
    // shards' leaders settled: the poll ended there and must wait at the new home).
    let queues: Vec<String> = (0..QUEUES).map(|i| format!("tq-cluster-{i}-{}", uuid::Uuid::new_v4())).collect();
    let shutting_down = Arc::new(AtomicBool::new(false));
    let mut polls = Vec::new();
    for (i, queue) in queues.iter().enumerate() {
        let (svc, queue, shutting_down) = (clients[0].clone(), queue.clone(), shutting_down.clone());
        polls.push(tokio::spawn(poll_until_shutdown(svc, queue, format!("poller-{i}"), shutting_down)));
    }
    // Every node reports each queue's poller (forwarded to the queue's home).
    for (i, queue) in queues.iter().enumerate() {
        for svc in &clients {
            let svc = svc.clone();
            let seen = eventually(
                "the poller is reported",
                || {
                    let mut svc = svc.clone();
                    async move { pollers(&mut svc, queue).await }
                },
                |p| !p.is_empty(),
            )
            .await;
            assert_eq!(seen, [format!("poller-{i}")]);
        }
    }

    // The worker shuts down through node 3: every poll ends at once, wherever it waits.
    let started = Instant::now();
    shutting_down.store(true, Ordering::SeqCst);
    let mut svc = clients[2].clone();
    svc.shutdown_worker(ShutdownWorkerRequest {
        namespace: NS.into(),
        identity: "poller-0".into(),
        worker_instance_key: "cluster-worker".into(),
        task_queue: queues[0].clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    for poll in polls {
        let answer = tokio::time::timeout(Duration::from_secs(10), poll).await.expect("the poll ended").unwrap();
        assert_eq!(answer.expect("answered"), PollWorkflowTaskQueueResponse::default(), "empty");
    }
    assert!(started.elapsed() < Duration::from_secs(10), "at once: {:?}", started.elapsed());
    // The identity it named is no longer reported for its queue, on any node.
    for svc in &clients {
        assert!(pollers(&mut svc.clone(), &queues[0]).await.unwrap().is_empty());
    }
    cluster.stop().await.unwrap();
}
