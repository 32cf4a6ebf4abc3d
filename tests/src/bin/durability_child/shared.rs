//! What the `durability_child` process and `tests/durability.rs` share: the
//! READY/FAILED lines a child prints, and the workload — the [`Durable`] workflow, the
//! [`Acts`] activities and the SDK worker that runs them. The test includes this file
//! as a module (`#[path]`), so the worker process it kills and the workers in the test
//! process run the same definitions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, RetryPolicy, Url};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::{ActivityOptions, ApplicationFailure, Runtime, Worker, WorkerOptions, WorkflowContext, WorkflowResult};

/// The line a child process prints once it serves: `<READY> <detail>` (the server's
/// address, or `worker`).
pub const READY: &str = "HG_DURABILITY_READY";
/// The line it prints when it cannot start: `<FAILED> <bind|other> <error>`.
pub const FAILED: &str = "HG_DURABILITY_FAILED";

/// Connects an SDK client to the server at `addr` (namespace `default`).
pub async fn connect(addr: SocketAddr) -> Result<Client, String> {
    let url = Url::parse(&format!("http://{addr}")).map_err(|e| format!("the server URL: {e}"))?;
    let connection = Connection::connect(ConnectionOptions::new(url).identity("hourglass-durability").build())
        .await
        .map_err(|e| format!("the SDK connecting to hourglass at {addr}: {e}"))?;
    Client::new(connection, ClientOptions::new("default").build()).map_err(|e| format!("client options: {e}"))
}

/// An SDK worker for [`Durable`] and [`Acts`] on `task_queue`.
pub fn new_worker(client: &Client, task_queue: &str, stats: Arc<Stats>) -> Result<Worker, String> {
    let options = WorkerOptions::new(task_queue)
        .register_activities(Acts { stats })
        .register_workflow::<Durable>()
        .map_err(|e| format!("registering the workflow: {e}"))?
        .build();
    // No worker heartbeats: hourglass does not advertise them.
    let runtime_options = RuntimeOptions::builder().heartbeat_interval(None).build().map_err(|e| format!("SDK runtime options: {e}"))?;
    let runtime = Runtime::from_current_tokio(runtime_options).map_err(|e| format!("SDK runtime: {e}"))?;
    Worker::new(&runtime, client.clone(), options).map_err(|e| format!("creating the worker: {e}"))
}

// ------------------------------------------------------------------ activities

/// What the activities did, seen by the test when they run in its process.
#[derive(Default)]
pub struct Stats {
    /// Slow activities executing right now.
    pub slow_running: AtomicU32,
    /// Per workflow number: failed attempts of `flaky`, and whether one succeeded.
    pub flaky: Mutex<HashMap<u32, (u32, bool)>>,
}

/// How long a slow activity works.
pub const SLOW_MS: u64 = 2_000;
/// `flaky` fails attempts before this one.
pub const FLAKY_SUCCEEDS_ON: u32 = 3;

pub struct Acts {
    stats: Arc<Stats>,
}

/// Counts a running slow activity (also when the attempt is dropped).
struct Running<'a>(&'a AtomicU32);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[activities]
impl Acts {
    #[activity]
    pub async fn quick(self: Arc<Self>, _ctx: ActivityContext, n: u32) -> Result<String, ActivityError> {
        Ok(format!("quick {n}"))
    }

    #[activity]
    pub async fn slow(self: Arc<Self>, _ctx: ActivityContext, n: u32) -> Result<String, ActivityError> {
        self.stats.slow_running.fetch_add(1, Ordering::SeqCst);
        let _running = Running(&self.stats.slow_running);
        tokio::time::sleep(Duration::from_millis(SLOW_MS)).await;
        Ok(format!("slow {n}"))
    }

    #[activity]
    pub async fn flaky(self: Arc<Self>, ctx: ActivityContext, n: u32) -> Result<String, ActivityError> {
        let attempt = ctx.info().attempt;
        // A panic elsewhere while holding the lock leaves the counts usable.
        let mut flaky = self.stats.flaky.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = flaky.entry(n).or_default();
        if attempt < FLAKY_SUCCEEDS_ON {
            entry.0 += 1;
            return Err(ActivityError::application(ApplicationFailure::new(format!("flaky {n}: attempt {attempt} fails"))));
        }
        entry.1 = true;
        Ok(format!("flaky {n}"))
    }
}

// ------------------------------------------------------------------- workflow

/// What a workflow does: a timer, then an activity (or, `SlowThenTimer`, the reverse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Quick = 0,
    Slow = 1,
    Flaky = 2,
    SlowThenTimer = 3,
}

impl Kind {
    pub fn of(n: u32) -> Kind {
        match n % 4 {
            0 => Kind::Quick,
            1 => Kind::Slow,
            2 => Kind::Flaky,
            _ => Kind::SlowThenTimer,
        }
    }
}

#[workflow]
#[derive(Default)]
pub struct Durable;

/// The (macro-generated, in a private module) type of `Durable::run`, which typed
/// workflow handles carry: used by the test, which starts the workflows, not by the
/// binary.
#[allow(dead_code)]
pub type DurableRun = durable::Run;

#[workflow_methods]
impl Durable {
    /// Input: (number, kind, timer milliseconds).
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: (u32, u32, u64)) -> WorkflowResult<String> {
        let (n, kind, timer_ms) = input;
        let retry = RetryPolicy::builder().initial_interval(Duration::from_secs(1)).backoff_coefficient(1.0).build();
        // Long enough for a slow attempt; short enough that an attempt whose outcome
        // was lost is retried within the test's bounds.
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(6)).retry_policy(retry).build();
        let timer = Duration::from_millis(timer_ms);
        let activity = match Kind::of(kind) {
            Kind::Quick => {
                ctx.timer(timer).await;
                ctx.execute_activity(Acts::quick, n, options).await?
            }
            Kind::Slow => {
                ctx.timer(timer).await;
                ctx.execute_activity(Acts::slow, n, options).await?
            }
            Kind::Flaky => {
                ctx.timer(timer).await;
                ctx.execute_activity(Acts::flaky, n, options).await?
            }
            Kind::SlowThenTimer => {
                let out = ctx.execute_activity(Acts::slow, n, options).await?;
                ctx.timer(timer).await;
                out
            }
        };
        Ok(format!("workflow {n} (kind {kind}): timer {timer_ms} ms, {activity}"))
    }
}
