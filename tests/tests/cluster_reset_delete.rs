//! ResetWorkflowExecution and DeleteWorkflowExecution on a three-node cluster (three
//! servers in this process, on loopback): each call may arrive at any node and is
//! forwarded to the node leading the workflow's shard, as every workflow RPC is; what
//! one node did, every node then answers.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hourglass_service::cluster::ClusterConfig;
use hourglass_service::server::{ServeConfig, Server};
use hourglass_tests::TEST_SHARDS;
use temporalio_client::tonic::transport::Channel;
use temporalio_client::tonic::Code;
use temporalio_protos::protos::temporal::api::common::v1::{WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::{EventType, WorkflowExecutionStatus, WorkflowTaskFailedCause};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflowservice::v1::workflow_service_client::WorkflowServiceClient;
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;

type Svc = WorkflowServiceClient<Channel>;

const NODES: u64 = 3;
const NS: &str = "default";

struct Cluster {
    servers: Vec<Server>,
    _dirs: Vec<tempfile::TempDir>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    async fn start() -> Cluster {
        let peer_ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
        let mut starts = Vec::new();
        let mut dirs = Vec::new();
        for id in 1..=NODES {
            let dir = tempfile::Builder::new().prefix("hourglass-reset-cluster-").tempdir().unwrap();
            let peers: BTreeMap<u64, String> =
                (1..=NODES).filter(|&p| p != id).map(|p| (p, format!("127.0.0.1:{}", peer_ports[(p - 1) as usize]))).collect();
            let config = ServeConfig {
                listen: "127.0.0.1:0".into(),
                shards: Some(TEST_SHARDS * 2),
                shutdown_grace: Duration::from_secs(2),
                cluster: Some(ClusterConfig {
                    node_id: id,
                    peer_listen: format!("127.0.0.1:{}", peer_ports[(id - 1) as usize]),
                    peers,
                    join: false,
                }),
                ..ServeConfig::new(dir.path())
            };
            dirs.push(dir);
            starts.push(tokio::spawn(Server::start(config)));
        }
        let mut servers = Vec::new();
        for start in starts {
            servers.push(start.await.unwrap().expect("a node starts"));
        }
        Cluster { servers, _dirs: dirs }
    }

    async fn client(&self, node: usize) -> Svc {
        let url = format!("http://{}", self.servers[node].local_addr());
        WorkflowServiceClient::new(Channel::from_shared(url).unwrap().connect().await.unwrap())
    }

    async fn stop(self) {
        for server in self.servers {
            server.shutdown().await.unwrap();
        }
    }
}

/// Retries `f` until it answers `Ok(v)` with `done(&v)`, for at most 20 s.
async fn eventually<T: std::fmt::Debug, F, Fut>(what: &str, mut f: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = f().await;
        match got {
            Ok(v) if done(&v) => return v,
            other if Instant::now() > deadline => panic!("{what}: still {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn execution(workflow_id: &str, run_id: &str) -> Option<WorkflowExecution> {
    Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: run_id.into() })
}

async fn describe(svc: &mut Svc, workflow_id: &str) -> Result<DescribeWorkflowExecutionResponse, Code> {
    let request = DescribeWorkflowExecutionRequest { namespace: NS.into(), execution: execution(workflow_id, "") };
    svc.describe_workflow_execution(request).await.map(|r| r.into_inner()).map_err(|s| s.code())
}

async fn reset(svc: &mut Svc, workflow_id: &str, request_id: &str) -> Result<String, String> {
    let request = ResetWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_execution: execution(workflow_id, ""),
        reason: "cluster reset".into(),
        workflow_task_finish_event_id: 3, // right after the first WorkflowTaskScheduled
        request_id: request_id.into(),
        ..Default::default()
    };
    svc.reset_workflow_execution(request).await.map(|r| r.into_inner().run_id).map_err(|s| s.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_and_delete_through_every_node() {
    let cluster = Cluster::start().await;
    let mut clients = Vec::new();
    for node in 0..NODES as usize {
        clients.push(cluster.client(node).await);
    }
    let id = format!("wf-{}", std::process::id());
    let start = StartWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_id: id.clone(),
        workflow_type: Some(WorkflowType { name: "Wf".into() }),
        task_queue: Some(TaskQueue { name: "tq-reset".into(), ..Default::default() }),
        request_id: "start-1".into(),
        ..Default::default()
    };
    let base = eventually(
        "start via node 1",
        || {
            let (mut svc, start) = (clients[0].clone(), start.clone());
            async move { svc.start_workflow_execution(start).await.map(|r| r.into_inner().run_id).map_err(|s| s.to_string()) }
        },
        |_| true,
    )
    .await;
    let signal = SignalWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_execution: execution(&id, ""),
        signal_name: "s".into(),
        request_id: "signal-1".into(),
        ..Default::default()
    };
    clients[1].signal_workflow_execution(signal).await.expect("signal via node 2");

    let new_run = eventually(
        "reset via node 3",
        || {
            let (mut svc, id) = (clients[2].clone(), id.clone());
            async move { reset(&mut svc, &id, "reset-1").await }
        },
        |_| true,
    )
    .await;
    assert_ne!(new_run, base);
    assert_eq!(reset(&mut clients[1].clone(), &id, "reset-1").await.unwrap(), new_run, "a retry through another node");
    for (node, svc) in clients.iter_mut().enumerate() {
        let info = describe(svc, &id).await.unwrap().workflow_execution_info.unwrap();
        assert_eq!(info.execution.unwrap().run_id, new_run, "node {}: the current run", node + 1);
        assert_eq!((info.status, info.first_run_id.as_str()), (WorkflowExecutionStatus::Running as i32, base.as_str()));
    }
    let history = GetWorkflowExecutionHistoryRequest { namespace: NS.into(), execution: execution(&id, &new_run), ..Default::default() };
    let events = clients[0].get_workflow_execution_history(history).await.unwrap().into_inner().history.unwrap().events;
    let types: Vec<EventType> = events.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        &types[2..],
        &[
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskFailed,
            EventType::WorkflowExecutionSignaled,
            EventType::WorkflowTaskScheduled
        ]
    );
    let Some(Attributes::WorkflowTaskFailedEventAttributes(f)) = &events[3].attributes else { panic!() };
    assert_eq!((f.cause, f.base_run_id.as_str()), (WorkflowTaskFailedCause::ResetWorkflow as i32, base.as_str()));

    let delete = DeleteWorkflowExecutionRequest { namespace: NS.into(), workflow_execution: execution(&id, "") };
    clients[1].delete_workflow_execution(delete).await.expect("delete via node 2");
    for (node, svc) in clients.iter_mut().enumerate() {
        assert_eq!(describe(svc, &id).await.err(), Some(Code::NotFound), "node {}", node + 1);
    }
    cluster.stop().await;
}
