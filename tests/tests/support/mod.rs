//! Helpers shared by the e2e tests: real Temporal Rust SDK clients and workers
//! connected to an in-process [`TestServer`].

#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::time::Duration;

use hourglass_tests::TestServer;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
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
