//! Helpers shared by the e2e tests: real Temporal Rust SDK clients and workers
//! connected to an in-process [`TestServer`].

#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::time::Duration;

use hourglass_tests::TestServer;
use temporalio_client::tonic::{IntoRequest, Status};
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::protos::temporal::api::enums::v1::EventType;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::protos::temporal::api::workflowservice::v1::GetWorkflowExecutionHistoryRequest;
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

/// How long a test waits for any one outcome (a workflow result, a worker stop)
/// before failing instead of hanging.
pub const WAIT: Duration = Duration::from_secs(60);

/// A raw SDK connection (GetSystemInfo is called while connecting).
pub async fn connect(server: &TestServer) -> Connection {
    let url = Url::parse(&server.url()).expect("the server URL parses");
    Connection::connect(ConnectionOptions::new(url).identity("hourglass-e2e").build()).await.expect("the SDK connects to hourglass")
}

/// A namespace-bound SDK client.
pub async fn client(server: &TestServer, namespace: &str) -> Client {
    Client::new(connect(server).await, ClientOptions::new(namespace).build()).expect("client options are valid")
}

/// A unique name (task queue, workflow id) for one test.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// Awaits `f`, failing the test after [`WAIT`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.unwrap_or_else(|_| panic!("{what}: no outcome within {WAIT:?}"))
}

/// Runs an SDK worker for `options` on `client` while `body` runs, then shuts the
/// worker down (it sends ShutdownWorker) and returns what `body` returned. The worker
/// and `body` share the test's task: `Worker::run` is not `Send`.
pub async fn with_worker<T>(client: &Client, options: WorkerOptions, body: impl Future<Output = T>) -> T {
    // No worker heartbeats: hourglass does not advertise them.
    let runtime_options = RuntimeOptions::builder().heartbeat_interval(None).build().expect("valid runtime options");
    let runtime = Runtime::from_current_tokio(runtime_options).expect("SDK runtime");
    let mut worker = Worker::new(&runtime, client.clone(), options).expect("worker is created");
    let shutdown = worker.shutdown_handle();
    let stopping = tokio::sync::Notify::new();
    let body = async {
        let out = body.await;
        shutdown();
        stopping.notify_one();
        out
    };
    let run = async {
        let run = worker.run();
        tokio::pin!(run);
        tokio::select! {
            ran = &mut run => ran,
            () = stopping.notified() => within("worker shutdown", run).await,
        }
    };
    let (ran, out) = tokio::join!(run, body);
    ran.expect("the worker runs until shut down without error");
    out
}

/// The full history of a run (all pages), as the client reads it, without waiting.
pub async fn full_history(client: &Client, namespace: &str, workflow_id: &str, run_id: &str) -> Result<Vec<HistoryEvent>, Status> {
    let mut service = client.connection().workflow_service();
    let mut events = Vec::new();
    let mut token = Vec::new();
    loop {
        let request = GetWorkflowExecutionHistoryRequest {
            namespace: namespace.into(),
            execution: Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: run_id.into() }),
            next_page_token: token,
            ..Default::default()
        };
        let page = service.get_workflow_execution_history(request.into_request()).await?.into_inner();
        events.extend(page.history.map(|h| h.events).unwrap_or_default());
        if page.next_page_token.is_empty() {
            return Ok(events);
        }
        token = page.next_page_token;
    }
}

/// An event's type (`Unspecified` for a number this SDK does not know).
pub fn event_type(e: &HistoryEvent) -> EventType {
    EventType::try_from(e.event_type).unwrap_or(EventType::Unspecified)
}

/// Whether `t` closes a run.
pub fn is_close(t: EventType) -> bool {
    matches!(
        t,
        EventType::WorkflowExecutionCompleted
            | EventType::WorkflowExecutionFailed
            | EventType::WorkflowExecutionTimedOut
            | EventType::WorkflowExecutionCanceled
            | EventType::WorkflowExecutionTerminated
            | EventType::WorkflowExecutionContinuedAsNew
    )
}
