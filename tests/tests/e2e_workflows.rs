//! Workflows run by the real Temporal Rust SDK (client + worker) against an
//! in-process Hourglass server.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use hourglass_tests::TestServer;
use support::{unique, with_worker, within};
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{WorkerOptions, WorkflowContext, WorkflowResult};

/// A workflow with no activities: returns a greeting built from its input.
#[workflow]
#[derive(Default)]
pub struct Greet;

#[workflow_methods]
impl Greet {
    #[run]
    pub async fn run(_ctx: &mut WorkflowContext<Self>, name: String) -> WorkflowResult<String> {
        Ok(format!("Hello, {name}!"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_without_activities_completes_with_its_result() {
    let server = TestServer::start().await.expect("server starts");
    let client = support::client(&server, "default").await;
    let task_queue = unique("greet");
    let options = WorkerOptions::new(task_queue.as_str()).register_workflow::<Greet>().expect("registers").build();
    let result = with_worker(&client, options, async {
        let start = WorkflowStartOptions::new(task_queue.as_str(), unique("greet-wf")).build();
        let handle = client.start_workflow(Greet::run, "Hourglass".to_string(), start).await.expect("StartWorkflowExecution");
        within("workflow result", handle.get_result(WorkflowGetResultOptions::default())).await.expect("completes")
    })
    .await;
    assert_eq!(result, "Hello, Hourglass!");
}
