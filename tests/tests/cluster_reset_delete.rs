//! ResetWorkflowExecution and DeleteWorkflowExecution on a three-node cluster (three
//! servers in this process, on loopback): each call may arrive at any node and is
//! forwarded to the node leading the workflow's shard, as every workflow RPC is; what
//! one node did, every node then answers.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use hourglass_tests::in_process_cluster::{eventually, InProcessCluster};
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

/// A gRPC client of node index `node` (0-based).
async fn client(cluster: &InProcessCluster, node: usize) -> Svc {
    WorkflowServiceClient::new(Channel::from_shared(cluster.url(node)).unwrap().connect().await.unwrap())
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
    let cluster = InProcessCluster::start(NODES, "hourglass-reset-cluster-").await.expect("the nodes start");
    let mut clients = Vec::new();
    for node in 0..NODES as usize {
        clients.push(client(&cluster, node).await);
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
    cluster.stop().await.unwrap();
}
